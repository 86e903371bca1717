#!/usr/bin/env bash
# Signing under load through the whole architecture (cohort bench against a simulated 2-of-3
# cluster: coordinator, proxies, enclaves as processes), then the in-process floor (the same
# protocols with no proxies, sockets, HTTP, coordinator or database) in the same run. Results go
# to stdout as JSON; docs/benchmarks.md records them.
#
#   ./scripts/bench.sh [SECONDS]      (default 120 s per sustained run)
#   ./scripts/bench.sh keys [N]       key creation, import and resharing latency only (N of each,
#                                     default 5)
#   ./scripts/bench.sh online [SECONDS]
#                                     the online path while pools refill at full speed, beside
#                                     the same runs with refill paused (default 60 s per run)
#   ./scripts/bench.sh broker [SECONDS]
#                                     the broker path (issue 21) beside HTTP in one run: presigned
#                                     ECDSA bursts of 60 and EdDSA at concurrency 1 and 16,
#                                     each over HTTP then through the RabbitMQ intake
#                                     (COHORT_AMQP, default the machine's), and the outbox's
#                                     backlog after each (default 60 s per run)
#   ./scripts/bench.sh scaling [SECONDS]
#                                     sustained full ECDSA with the cluster pinned to 1 core,
#                                     then to 2 cores (taskset), and the floor's presignature
#                                     cost for the CPU ceiling (default 120 s per run)
#
# Runs: presigned ECDSA latency (a burst the pools serve), then sustained runs of SECONDS each:
# EdDSA at concurrency 1, 4 and 16; ECDSA preferring presignatures at 1 and 4 (the pools drain
# and signing falls back to full ECDSA); full ECDSA at 1 and 4.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The enclaves' background workers as a production enclave runs them (SCHED_IDLE; simulated
# mode's own default is nice 10): the figures are the product's. The online mode sets it per run.
export COHORT_ENCLAVE_BACKGROUND="${COHORT_ENCLAVE_BACKGROUND:-idle}"
MODE=sustained
case "${1:-}" in
  keys | online | scaling | broker) MODE=$1; shift ;;
esac
if [ "$MODE" = keys ]; then
  ROUNDS="${1:-5}"
  SECONDS_EACH=0
else
  ROUNDS=5
  default=120; [ "$MODE" = online ] || [ "$MODE" = broker ] && default=60
  SECONDS_EACH="${1:-$default}"
fi
FEATURES=(--features enclave/test-fixtures)
cargo build --workspace --bins --locked "${FEATURES[@]}"
cargo build -p enclave --example floor --locked "${FEATURES[@]}"
BIN="${CARGO_TARGET_DIR:-target}/debug"
WORK="$(mktemp -d)"
SIM=
trap 'if [ -n "$SIM" ]; then kill "$SIM" 2>/dev/null || true; wait "$SIM" 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT
C=("$BIN/cohort")
B=(bench --dir "$WORK/sim" --approver "$WORK/approver.key" --json)
machine() {
  echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)" >&2
}

# start_sim [PREFIX...] -- [COORDINATOR-ARG...]: a fresh simulated 2-of-3 cluster, genesis
# done, one ECDSA key "ecdsa" and one EdDSA key "eddsa" created. PREFIX runs the cluster's
# processes (taskset).
start_sim() {
  local prefix=() args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do prefix+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  for a in "$@"; do args+=("--coordinator-arg=$a"); done
  rm -rf "$WORK/sim"
  ${prefix[@]+"${prefix[@]}"} "$BIN/cohort" sim up --nodes 3 --dir "$WORK/sim" --fixture-primes \
    ${args[@]+"${args[@]}"} > "$WORK/sim.log" 2>&1 &
  SIM=$!
  for _ in $(seq 1 600); do [ -f "$WORK/sim/cluster.json" ] && break; sleep 0.1; done
  [ -f "$WORK/admin.key" ] || "${C[@]}" keygen --out "$WORK/admin.key" > /dev/null
  [ -f "$WORK/approver.key" ] || "${C[@]}" keygen --out "$WORK/approver.key" > /dev/null
  "${C[@]}" genesis --dir "$WORK/sim" --admin "$WORK/admin.key" > /dev/null
  for k in "ecdsa ecdsa-secp256k1" "eddsa eddsa-ed25519"; do
    set -- $k
    "${C[@]}" key create --dir "$WORK/sim" --id "$1" --scheme "$2" --threshold 2 \
      --admin "$WORK/admin.key" --approver "$WORK/approver.key" > /dev/null
  done
}

stop_sim() {
  kill "$SIM"
  wait "$SIM" || true
  SIM=
}

if [ "$MODE" = online ]; then
  # Issue 22. Refill at full speed: pools of 1,000 per quorum, which the run never fills, so
  # every node runs one presignature session per worker thread throughout; once with the
  # background workers at SCHED_IDLE (production's default), once at nice 10 (simulated
  # mode's). Then a fresh cluster with refill paused: pools of 10 that wait for a quiet moment
  # (--refill-yield), which a back-to-back run never gives. Each: a presigned burst of 30 from
  # 10 per quorum, then EdDSA at concurrency 1 for SECONDS.
  machine
  for setting in "idle refilling --pool-level=1000" "nice refilling --pool-level=1000" \
    "idle paused --pool-level=10 --refill-yield"; do
    set -- $setting
    yielding=$1 label=$2; shift 2
    COHORT_ENCLAVE_BACKGROUND=$yielding start_sim -- "$@"
    echo "# refill: $label; background workers: $yielding" >&2
    "${C[@]}" "${B[@]}" --key ecdsa --presignature prefer --concurrency 1 --count 30 \
      --warmup 0 --wait-pool 10
    "${C[@]}" "${B[@]}" --key eddsa --presignature never --concurrency 1 --duration "$SECONDS_EACH"
    stop_sim
  done
  "$BIN/examples/floor" --count 50
  exit 0
fi

if [ "$MODE" = broker ]; then
  # Issue 21: the same requests over HTTP and through the broker's intake queue (answers on
  # the client's own reply queue), against one cluster; after each, the outbox's backlog
  # (events the broker has not confirmed), which must not grow.
  AMQP="${COHORT_AMQP:-amqp://guest:guest@127.0.0.1:5672/%2f}"
  RUN="cohort-bench-$$"
  machine
  start_sim -- "--amqp=$AMQP" "--amqp-queue=$RUN.requests" "--amqp-exchange=$RUN.events" \
    --pool-level=40
  url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["coordinator_url"])' \
    "$WORK/sim/cluster.json")
  backlog() {
    sleep 1
    local n
    n=$(curl -sf "$url/metrics" | awk '/^cohort_outbox_unsent / {print $2}')
    echo "{\"op\":\"outbox_backlog\",\"after\":\"$1\",\"unsent\":${n:-null}}"
  }
  for via in http amqp; do
    V=(--via "$via"); [ "$via" = amqp ] && V+=(--amqp "$AMQP" --amqp-queue "$RUN.requests")
    for c in 1 16; do
      "${C[@]}" "${B[@]}" "${V[@]}" --key ecdsa --presignature prefer --concurrency "$c" \
        --count 60 --warmup 2 --wait-pool 30
      backlog "presigned burst c=$c via $via"
    done
    for c in 1 16; do
      "${C[@]}" "${B[@]}" "${V[@]}" --key eddsa --presignature never --concurrency "$c" \
        --duration "$SECONDS_EACH"
      backlog "eddsa c=$c via $via"
    done
  done
  stop_sim
  if command -v rabbitmqctl > /dev/null; then
    for q in "$RUN.requests" "$RUN.requests.dead"; do rabbitmqctl -q delete_queue "$q" > /dev/null 2>&1 || true; done
  fi
  "$BIN/examples/floor" --count 50
  exit 0
fi

if [ "$MODE" = scaling ]; then
  # Issue 22: sustained full ECDSA (no pools) at concurrency 4 with every process of the
  # cluster pinned to one core, then to two; the floor's presignature cost gives the CPU
  # ceiling (cores / CPU-seconds per presignature).
  machine
  for cpus in 0 0,1; do
    start_sim taskset -c "$cpus" -- --pool-level=0
    echo "# cluster pinned to cpus $cpus" >&2
    "${C[@]}" "${B[@]}" --key ecdsa --presignature never --concurrency 4 --warmup 4 \
      --duration "$SECONDS_EACH"
    stop_sim
  done
  "$BIN/examples/floor" --count 10
  exit 0
fi

# Presignatures kept per quorum (three quorums).
LEVEL=20
start_sim -- "--pool-level=$LEVEL"
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

machine
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
stop_sim
"$BIN/examples/floor" --count 50
