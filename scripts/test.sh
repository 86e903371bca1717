#!/usr/bin/env bash
# All of Cohort's tests, as CI runs them: formatting, lints, every unit, protocol and
# simulated-cluster test (fault injection and known attacks included), bounded fuzzing, the
# enclave image and the Terraform checks. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each phase's wall time goes to stderr at the end, so a slow cold run shows where it went.
phases=()
phase_start=$SECONDS
phase() {
  phases+=("$(printf '%5d s  %s' $((SECONDS - phase_start)) "$1")")
  echo "test: ${phases[-1]}" >&2
  phase_start=$SECONDS
}
report_phases() {
  echo "test: wall time by phase:" >&2
  printf '  %s\n' "${phases[@]}" >&2
  echo "test: $SECONDS s in all" >&2
}
./scripts/setup.sh
phase setup

# The AWS deployment: terraform fmt, validate and tests (offline, against /opt/tf-plugins; a
# notice where terraform or the mirror is absent), checkov with zero failed checks. They need
# little CPU (pip, terraform), so they run beside the Rust builds; their log and verdict come
# at the end.
tf_log=$(mktemp)
./scripts/terraform-check.sh > "$tf_log" 2>&1 &
tf_pid=$!
# The fuzz targets' build (release, instrumented, in its own target directory) needs nothing
# from the phases before the fuzzing: it runs from the start at the lowest priority, on the CPU
# the lints, builds and cluster tests leave idle (the tests wait on their processes and
# sockets), and the fuzzing phase waits for what is left of it.
fuzz_log=$(mktemp)
nice -n 19 ./scripts/fuzz.sh --build-only > "$fuzz_log" 2>&1 &
fuzz_pid=$!
trap 'kill "$tf_pid" "$fuzz_pid" 2> /dev/null || true; rm -f "$tf_log" "$fuzz_log"' EXIT

# Test builds load committed safe primes instead of generating them (feature `test-fixtures`,
# off in production builds).
FEATURES=(--features enclave/test-fixtures)

cargo fmt --all -- --check
# The supply-chain gate: cargo-deny (advisories from the offline RustSec snapshot in
# ../shared/advisory-db, licences, bans, sources; reasons in deny.toml).
./scripts/supply-chain.sh
phase "fmt, supply-chain gate"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --workspace --all-targets --locked "${FEATURES[@]}" -- -D warnings
# The production enclave's feature set (no simulated mode), as eif-build/build.sh builds it.
cargo clippy -p enclave -p attestation --locked --no-default-features -- -D warnings
phase "clippy (3 feature sets)"
# The cluster tests start the real binaries: build them before the tests run.
cargo build --workspace --bins --locked "${FEATURES[@]}"
phase "build the binaries"
# The enclave image's checks (eif-build/check.sh: the image tool's lints and tests, the static
# release cohort-enclave in a target directory of its own, the EIF twice) need nothing but the
# simulated binary just built, its control: they run from here at the lowest priority, on the
# CPU the cluster tests leave idle, and their phase waits for what is left of them.
eif_log=$(mktemp)
COHORT_SIMULATED_ENCLAVE="${CARGO_TARGET_DIR:-$PWD/target}/debug/cohort-enclave" \
  CARGO_TARGET_DIR="$HOME/.cache/cohort/eif-target" \
  nice -n 19 ./eif-build/check.sh > "$eif_log" 2>&1 &
eif_pid=$!
trap 'kill "$tf_pid" "$fuzz_pid" "$eif_pid" 2> /dev/null || true; rm -f "$tf_log" "$fuzz_log" "$eif_log"' EXIT
cargo test --workspace --locked "${FEATURES[@]}"
phase "cargo test (build and run)"
# The fault-injection suite's failure rates (tests/tests/faults.rs; COHORT_FAULT_REPORT moves them).
if [ -z "${COHORT_FAULT_REPORT:-}" ]; then
  cat "${CARGO_TARGET_DIR:-target}/tmp/fault-report.md"
fi

# Bounded fuzzing of every decoder of untrusted bytes (fuzz/README.md): the targets built with
# cargo-fuzz's flags, the committed seeds and regressions replayed, each target fuzzed for a while.
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
fuzz_status=0
wait "$fuzz_pid" || fuzz_status=$?
if [ "$fuzz_status" -ne 0 ]; then
  cat "$fuzz_log" >&2
  echo "test: building the fuzz targets failed (exit $fuzz_status)" >&2
  exit "$fuzz_status"
fi
tail -n 1 "$fuzz_log" >&2
./scripts/fuzz.sh "${COHORT_FUZZ_SECONDS:-20}"
phase "fuzzing (build, seeds, 20 s a target)"

# The enclave image, started after the binaries: the image tool's own workspace (fmt, clippy,
# tests) and the production pipeline run twice (static release cohort-enclave, EIF, PCRs
# recomputed, identical images).
eif_status=0
wait "$eif_pid" || eif_status=$?
cat "$eif_log" >&2
if [ "$eif_status" -ne 0 ]; then
  echo "test: the enclave image's checks failed (exit $eif_status)" >&2
  exit "$eif_status"
fi
phase "waiting for the enclave image, twice"

# The Terraform checks started at the top.
tf_status=0
wait "$tf_pid" || tf_status=$?
phase "waiting for the Terraform checks"
cat "$tf_log"
report_phases
if [ "$tf_status" -ne 0 ]; then
  echo "test: the Terraform checks failed (exit $tf_status)" >&2
  exit "$tf_status"
fi
