#!/usr/bin/env bash
# Signing latency through the whole architecture (cohort bench against a simulated 2-of-3
# cluster: coordinator, proxies, enclaves as processes) beside the in-process floor (the same
# protocols with no proxies, sockets, HTTP, coordinator or database). Results go to stdout as
# JSON lines; docs/benchmarks.md records them.
#
#   ./scripts/bench.sh [COUNT]        (default 200 requests per operation)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
COUNT="${1:-200}"
FEATURES=(--features enclave/test-fixtures)
cargo build --workspace --bins --locked "${FEATURES[@]}"
cargo build -p enclave --example floor --locked "${FEATURES[@]}"
BIN="${CARGO_TARGET_DIR:-target}/debug"
WORK="$(mktemp -d)"
trap 'kill "$SIM" 2>/dev/null || true; wait "$SIM" 2>/dev/null || true; rm -rf "$WORK"' EXIT

# Enough presignatures for every measured request: COUNT per run, spread over three quorums.
LEVEL=$(( COUNT / 3 + 10 ))
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
echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)" >&2
B=(bench --dir "$WORK/sim" --approver "$WORK/approver.key" --json)
# Pools refill only while no signing request runs: fill them first, so no refill competes with
# the measured requests (full ECDSA signing does not use them).
"${C[@]}" "${B[@]}" --key ecdsa --presignature never --concurrency 1 --count $(( COUNT / 4 )) \
  --warmup 2 --wait-pool "$LEVEL"
"${C[@]}" "${B[@]}" --key eddsa --presignature never --concurrency 1 --count "$COUNT"
"${C[@]}" "${B[@]}" --key eddsa --presignature never --concurrency 4 --count "$COUNT"
"${C[@]}" "${B[@]}" --key ecdsa --presignature prefer --concurrency 1 --count "$COUNT" --warmup 0
# The floor runs alone: stop the cluster first (its pools would start refilling).
kill "$SIM"
wait "$SIM" || true
"$BIN/examples/floor" --count "$COUNT"
