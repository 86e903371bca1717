#!/usr/bin/env bash
# Bounded fuzzing of Cohort's untrusted-bytes decoders (fuzz/README.md): builds every cargo-fuzz
# target once, replays the committed seeds and regressions, then fuzzes each target for
# SECONDS_PER_TARGET with libFuzzer, and reports executions and crashes.
#
#   ./scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 30)
#   ./scripts/fuzz.sh --build-only              (build the targets, nothing else: scripts/test.sh
#                                                runs it early, beside the other phases)
#
# Builds with the stable toolchain and the flags `cargo fuzz build` (cargo-fuzz 0.13.2) passes,
# given here so that no tool has to be installed before the build can start (a cold install of
# cargo-fuzz held the build back by 13 minutes of a cold CI run): release with debug assertions,
# one codegen unit, libFuzzer's coverage instrumentation, `--cfg fuzzing` and AddressSanitizer,
# which RUSTC_BOOTSTRAP=1 lets stable rustc take (stable ships the ASan runtime). The targets
# are cargo-fuzz targets all the same: `cargo fuzz run` works on them (fuzz/README.md). Work
# files stay out of the tree, under ~/.cache/cohort: fuzz-target/ (CARGO_TARGET_DIR),
# fuzz-corpus/<target>/ (the growing corpus; fuzz/seeds/<target>/ is read as a second corpus),
# fuzz-runs/<time>/ (logs and crash artifacts). The report goes to stdout as a table and to $COHORT_FUZZ_REPORT
# (default ~/.cache/cohort/fuzz-report.json) as JSON. Exits non-zero if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_ONLY=""
if [ "${1:-}" = "--build-only" ]; then
  BUILD_ONLY=1
  shift
fi
SECONDS_EACH="${1:-30}"
case "$SECONDS_EACH" in
  '' | *[!0-9]* | 0)
    echo "usage: $0 [SECONDS_PER_TARGET]  (a positive whole number)" >&2
    exit 2
    ;;
esac

# cargo fuzz's default --target: the binaries land in $CARGO_TARGET_DIR/$TRIPLE/release.
TRIPLE=x86_64-unknown-linux-gnu
CACHE="${COHORT_CACHE:-$HOME/.cache/cohort}"
export CARGO_TARGET_DIR="$CACHE/fuzz-target"
REPORT="${COHORT_FUZZ_REPORT:-$CACHE/fuzz-report.json}"
CORPORA="$CACHE/fuzz-corpus"
RUN="$CACHE/fuzz-runs/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RUN" "$(dirname "$REPORT")"

# Exactly what cargo-fuzz 0.13.2's `cargo fuzz build` sets (its defaults: address sanitizer,
# comparisons traced, release with debug assertions), so that a build by either reuses the
# other's artifacts.
FUZZ_RUSTFLAGS=(
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  --cfg fuzzing
  -Cllvm-args=-simplifycfg-branch-fold-threshold=0
  -Zsanitizer=address
  -Cllvm-args=-sanitizer-coverage-stack-depth
  -Cdebug-assertions
  -Ccodegen-units=1
)
started=$(date +%s)
RUSTC_BOOTSTRAP=1 RUSTFLAGS="${FUZZ_RUSTFLAGS[*]}" cargo build --manifest-path fuzz/Cargo.toml \
  --target "$TRIPLE" --release --config 'profile.release.debug="line-tables-only"' --locked --bins
echo "fuzz: targets built in $(($(date +%s) - started)) s ($(rustc --version))" >&2
if [ -n "$BUILD_ONLY" ]; then
  rmdir "$RUN" 2> /dev/null || true
  exit 0
fi

# The targets: every [[bin]] of fuzz/Cargo.toml (what `cargo fuzz list` lists).
mapfile -t TARGETS < <(awk '/^\[\[bin\]\]/ { bin = 1; next }
  bin && /^name *= */ { gsub(/"/, "", $3); print $3; bin = 0 }' fuzz/Cargo.toml)
if [ "${#TARGETS[@]}" -eq 0 ]; then
  echo "fuzz: fuzz/Cargo.toml lists no targets" >&2
  exit 1
fi

# Replay the seeds and every regression first, one run per file, with the instrumented binaries
# (the same check as `cargo test --manifest-path fuzz/Cargo.toml`, without a second build).
shopt -s nullglob
for target in "${TARGETS[@]}"; do
  seeds=(fuzz/seeds/"$target"/*)
  if [ "${#seeds[@]}" -eq 0 ]; then
    echo "fuzz: fuzz/seeds/$target/ is empty" >&2
    exit 1
  fi
  inputs=("${seeds[@]}" fuzz/regressions/"$target"/*)
  if ! "$CARGO_TARGET_DIR/$TRIPLE/release/$target" "${inputs[@]}" > "$RUN/$target.replay.log" 2>&1; then
    echo "fuzz: $target fails on a committed seed or regression (log $RUN/$target.replay.log)" >&2
    tail -n 30 "$RUN/$target.replay.log" >&2
    exit 1
  fi
done
shopt -u nullglob
echo "fuzz: committed seeds and regressions replayed" >&2

json_string() {
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}

# Each target fuzzes for SECONDS_EACH on one core (libFuzzer runs one process per target);
# JOBS of them at a time, one per core by default, so every target still gets its full time.
JOBS="${COHORT_FUZZ_JOBS:-$(nproc)}"
fuzz_target() {
  local target=$1 t0 status=0
  mkdir -p "$CORPORA/$target" "$RUN/$target"
  t0=$(date +%s)
  "$CARGO_TARGET_DIR/$TRIPLE/release/$target" "$CORPORA/$target" "fuzz/seeds/$target" \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -max_len=65536 -timeout=30 \
    -artifact_prefix="$RUN/$target/" -print_final_stats=1 > "$RUN/$target.log" 2>&1 || status=$?
  echo "$status $(($(date +%s) - t0))" > "$RUN/$target.status"
}
running=0
for target in "${TARGETS[@]}"; do
  echo "fuzz: $target for ${SECONDS_EACH} s (log $RUN/$target.log)" >&2
  fuzz_target "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

rows=()
entries=()
crashed=()
for target in "${TARGETS[@]}"; do
  corpus="$CORPORA/$target"
  artifacts="$RUN/$target"
  log="$RUN/$target.log"
  read -r status elapsed < "$RUN/$target.status"

  # libFuzzer's last line on success: "Done N runs in S second(s)"; after a crash, the final
  # stats it prints still count the executions.
  execs=""
  seconds="$elapsed"
  done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1 || true)
  if [ -n "$done_line" ]; then
    read -r _ execs _ _ seconds _ <<< "$done_line"
  else
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  fi
  execs="${execs:-0}"
  per_second=$((execs / (seconds > 0 ? seconds : 1)))

  found=()
  while IFS= read -r -d '' f; do
    found+=("$f")
  done < <(find "$artifacts" -maxdepth 1 -type f \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) -print0)
  if [ "$status" -ne 0 ] && [ "${#found[@]}" -eq 0 ]; then
    found=("$log")
  fi
  corpus_size=$(find "$corpus" -maxdepth 1 -type f | wc -l)

  rows+=("$(printf '%-16s %12s %12s %8s %8s' "$target" "$execs" "$per_second" "${#found[@]}" "$corpus_size")")
  artifact_json=""
  for f in "${found[@]}"; do
    artifact_json+="${artifact_json:+, }$(json_string "$f")"
    crashed+=("$target:$f")
  done
  entries+=("$(printf '{"target": "%s", "execs": %s, "seconds": %s, "execs_per_sec": %s, "crashes": %s, "corpus": %s, "log": %s, "artifacts": [%s]}' \
    "$target" "$execs" "$seconds" "$per_second" "${#found[@]}" "$corpus_size" \
    "$(json_string "$log")" "$artifact_json")")
done

printf '%-16s %12s %12s %8s %8s\n' target execs execs/s crashes corpus
printf '%s\n' "${rows[@]}"
{
  printf '{\n  "seconds_per_target": %s,\n  "rustc": %s,\n  "run": %s,\n  "targets": [\n' \
    "$SECONDS_EACH" "$(json_string "$(rustc --version)")" "$(json_string "$RUN")"
  last=$((${#entries[@]} - 1))
  for i in "${!entries[@]}"; do
    printf '    %s%s\n' "${entries[$i]}" "$([ "$i" -lt "$last" ] && echo ,)"
  done
  printf '  ]\n}\n'
} > "$REPORT"
echo "fuzz: report in $REPORT" >&2

if [ "${#crashed[@]}" -gt 0 ]; then
  for c in "${crashed[@]}"; do
    target="${c%%:*}"
    file="${c#*:}"
    cat >&2 << EOF

fuzz: $target crashed: $file
  reproduce: $CARGO_TARGET_DIR/$TRIPLE/release/$target $file
  minimise:  $CARGO_TARGET_DIR/$TRIPLE/release/$target -minimize_crash=1 -runs=100000 $file
  then copy the (minimised) input to fuzz/regressions/$target/ and fix the bug:
  cargo test --manifest-path fuzz/Cargo.toml replays it from then on.
EOF
  done
  exit 1
fi
