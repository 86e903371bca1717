#!/usr/bin/env bash
# Signing under load through the whole architecture (cohort bench against a simulated 2-of-3
# cluster: coordinator, proxies, enclaves as processes), then the in-process floor (the same
# protocols with no proxies, sockets, HTTP, coordinator or database) in the same run. Results go
# to stdout as JSON; docs/benchmarks.md records them.
#
#   ./scripts/bench.sh [SECONDS]      (default 120 s per sustained run)
#   ./scripts/bench.sh keys [N]       key creation, import and resharing latency only (N of each,
#                                     default 5)
#
# Runs: presigned ECDSA latency (a burst the pools serve), then sustained runs of SECONDS each:
# EdDSA at concurrency 1, 4 and 16; ECDSA preferring presignatures at 1 and 4 (the pools drain
# and signing falls back to full ECDSA); full ECDSA at 1 and 4.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
MODE=sustained
if [ "${1:-}" = keys ]; then MODE=keys; fi
SECONDS_EACH="${1:-120}"
ROUNDS="${2:-5}"
FEATURES=(--features enclave/test-fixtures)
cargo build --workspace --bins --locked "${FEATURES[@]}"
cargo build -p enclave --example floor --locked "${FEATURES[@]}"
BIN="${CARGO_TARGET_DIR:-target}/debug"
WORK="$(mktemp -d)"
trap 'kill "$SIM" 2>/dev/null || true; wait "$SIM" 2>/dev/null || true; rm -rf "$WORK"' EXIT

# Presignatures kept per quorum (three quorums).
LEVEL=20
"$BIN/cohort" sim up --nodes 3 --dir "$WORK/sim" --fixture-primes \
  --coordinator-arg="--pool-level=$LEVEL" > "$WORK/sim.log" 2>&1 &
SIM=$!
for _ in $(seq 1 600); do [ -f "$WORK/sim/cluster.json" ] && break; sleep 0.1; done
C=("$BIN/cohort")
"${C[@]}" keygen --out "$WORK/admin.key" > /dev/null
"${C[@]}" keygen --out "$WORK/approver.key" > /dev/null
"${C[@]}" genesis --dir "$WORK/sim" --admin "$WORK/admin.key" > /dev/null
for k in "ecdsa ecdsa-secp256k1" "eddsa eddsa-ed25519"; do
  set -- $k
  "${C[@]}" key create --dir "$WORK/sim" --id "$1" --scheme "$2" --threshold 2 \
    --admin "$WORK/admin.key" --approver "$WORK/approver.key" > /dev/null
done
# Key setup latency: creation by DKG beside import by redistribution (tss-lib's files, 3 of 5
# holders dealing), each through the CLI as an operator runs it (holder's checks, attestation
# of every node, approvals, the session, receipts checked against the pinned genesis).
VECTORS=cli/tests/vectors/tss-lib
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
for op in create-ecdsa create-eddsa import-ecdsa import-eddsa; do
  times=()
  for i in $(seq 1 "$ROUNDS"); do
    id="$op-$i"
    t0=$(date +%s%N)
    case $op in
      create-*)
        scheme=ecdsa-secp256k1; [ "$op" = create-eddsa ] && scheme=eddsa-ed25519
        "${C[@]}" key create --dir "$WORK/sim" --id "$id" --scheme "$scheme" --threshold 2 \
          --admin "$WORK/admin.key" --approver "$WORK/approver.key" > /dev/null ;;
      import-*)
        kind=${op#import-}
        "${C[@]}" key import --dir "$WORK/sim" --id "$id" --format "tss-lib-$kind" \
          --share "$VECTORS/$kind/keygen_data_0.json" --share "$VECTORS/$kind/keygen_data_2.json" \
          --share "$VECTORS/$kind/keygen_data_4.json" --threshold 2 \
          --admin "$WORK/admin.key" --approver "$WORK/approver.key" > /dev/null ;;
    esac
    times+=("$(ms "$t0")")
  done
  echo "{\"op\":\"$op\",\"nodes\":3,\"threshold\":2,\"ms\":[$(IFS=,; echo "${times[*]}")]}"
done
# Resharing latency (issue 19), through the CLI as an admin runs it (the key fetched and
# checked, the approvals, dealing, checks and sealing at every node, the retire, the new
# receipts checked): a refresh of a 2-of-3 key, and a resharing that moves it 2-of-3 -> 3-of-3
# and back on alternate rounds.
for op in refresh-ecdsa refresh-eddsa reshare-ecdsa reshare-eddsa; do
  times=()
  key=${op#*-}
  for i in $(seq 1 "$ROUNDS"); do
    t0=$(date +%s%N)
    case $op in
      refresh-*)
        "${C[@]}" key refresh --dir "$WORK/sim" --key "$key" --admin "$WORK/admin.key" > /dev/null ;;
      reshare-*)
        t=3; [ $((i % 2)) -eq 0 ] && t=2
        "${C[@]}" key reshare --dir "$WORK/sim" --key "$key" --threshold "$t" \
          --admin "$WORK/admin.key" > /dev/null ;;
    esac
    times+=("$(ms "$t0")")
  done
  # An odd number of rounds leaves the key 3-of-3: bring it back for the signing runs.
  if [ "$op" != "${op#reshare-}" ] && [ $((ROUNDS % 2)) -eq 1 ]; then
    "${C[@]}" key reshare --dir "$WORK/sim" --key "$key" --threshold 2 \
      --admin "$WORK/admin.key" > /dev/null
  fi
  echo "{\"op\":\"$op\",\"nodes\":3,\"ms\":[$(IFS=,; echo "${times[*]}")]}"
done
if [ "$MODE" = keys ]; then exit 0; fi

echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)" >&2
B=(bench --dir "$WORK/sim" --approver "$WORK/approver.key" --json)
# Presigned latency: fill the pools first (refills run only while no signing request does), then
# a burst they serve entirely.
"${C[@]}" "${B[@]}" --key ecdsa --presignature prefer --concurrency 1 --count $(( LEVEL * 3 / 2 )) \
  --warmup 2 --wait-pool "$LEVEL"
for c in 1 4 16; do
  "${C[@]}" "${B[@]}" --key eddsa --presignature never --concurrency "$c" --duration "$SECONDS_EACH"
done
for c in 1 4; do
  "${C[@]}" "${B[@]}" --key ecdsa --presignature prefer --concurrency "$c" --duration "$SECONDS_EACH" \
    --warmup 0 --wait-pool "$LEVEL"
done
for c in 1 4; do
  "${C[@]}" "${B[@]}" --key ecdsa --presignature never --concurrency "$c" --duration "$SECONDS_EACH"
done
# The floor runs alone: stop the cluster first (its pools would start refilling).
kill "$SIM"
wait "$SIM" || true
"$BIN/examples/floor" --count 50
