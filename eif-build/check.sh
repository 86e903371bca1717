#!/usr/bin/env bash
# The enclave image build's checks, as scripts/test.sh runs them: formatting, lints and tests of
# the image tool, then the production pipeline (eif-build/build.sh: the static release
# cohort-enclave, the EIF, its PCRs recomputed from the file) run twice on the same inputs,
# which must give byte-identical images.
#
# Off AWS there are no nitro-cli blobs: the kernel is Debian's cloud kernel (scripts/setup.sh
# fetches it) and `init` is Debian's static busybox. Such an image is measured, not booted.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${COHORT_CACHE:-$HOME/.cache/cohort}"
KERNEL="${COHORT_EIF_KERNEL:-$CACHE/kernel/vmlinuz}"
INIT="${COHORT_EIF_INIT:-/bin/busybox}"
for f in "$KERNEL" "$INIT"; do
  [ -f "$f" ] || { echo "eif-build: $f is missing: run scripts/setup.sh" >&2; exit 1; }
done

cd "$ROOT/eif-build"
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for run in 1 2; do
  "$ROOT/eif-build/build.sh" --kernel "$KERNEL" --cmdline-file "$ROOT/eif-build/dev-cmdline" \
    --init "$INIT" --out "$scratch/$run" --allow-dirty >/dev/null
done
if ! cmp -s "$scratch/1/cohort.eif" "$scratch/2/cohort.eif" \
  || ! cmp -s "$scratch/1/measurements.json" "$scratch/2/measurements.json"; then
  echo "eif-build: two builds of the same inputs differ" >&2
  diff "$scratch/1/measurements.json" "$scratch/2/measurements.json" >&2 || true
  exit 1
fi
echo "eif-build: two builds, identical images; PCRs:"
grep -E '"PCR[0-9]"' "$scratch/1/measurements.json"
# Every input that shaped the binary is recorded beside the PCRs.
for key in Commit Dirty Rustc Cargo Gcc Glibc GmpCache BaseImage NitroCli; do
  if ! grep -q "\"$key\": \"[^\"]" "$scratch/1/measurements.json"; then
    echo "eif-build: measurements.json does not record Inputs.Build.$key" >&2
    exit 1
  fi
done
# A release build refuses a tree with uncommitted changes (this one may have some: made here).
probe="$ROOT/.eif-build-dirty-probe"
touch "$probe"
if "$ROOT/eif-build/build.sh" --kernel "$KERNEL" --cmdline-file "$ROOT/eif-build/dev-cmdline" \
  --init "$INIT" --out "$scratch/dirty" >/dev/null 2>"$scratch/dirty.err"; then
  rm -f "$probe"
  echo "eif-build: a build from a dirty tree was not refused" >&2
  exit 1
fi
rm -f "$probe"
grep -q "uncommitted changes" "$scratch/dirty.err" || {
  cat "$scratch/dirty.err" >&2
  exit 1
}
echo "eif-build: a dirty tree is refused without --allow-dirty; the build inputs are recorded"

# The production enclave contains no simulated NSM or CA: not in the feature graph it is built
# with, and not in the binary (neither the simulated measurement's domain string nor the
# simulated NSM's certificate names, which simulated mode always uses). The control: a
# simulated-mode build does contain both, so the binary check can fail.
MARKERS=("cohort-simulated-application/v1" ".simulated.cohort,OU=simulation")
# Normal and build edges only: the enclave's dev-dependencies (its tests) do enable the sim.
if (cd "$ROOT" && cargo tree --locked -p enclave --no-default-features -e features,normal,build \
  --prefix none) | grep -q '^attestation feature "sim"'; then
  echo "eif-build: the production enclave's feature graph enables attestation/sim" >&2
  exit 1
fi
for marker in "${MARKERS[@]}"; do
  if grep -qaF "$marker" "$scratch/1/cohort-enclave"; then
    echo "eif-build: the production cohort-enclave contains the simulated NSM ($marker)" >&2
    exit 1
  fi
done
# The workspace's simulated-mode build (scripts/test.sh names it when this script builds in a
# target directory of its own).
SIMULATED="${COHORT_SIMULATED_ENCLAVE:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/cohort-enclave}"
if [ ! -f "$SIMULATED" ]; then
  echo "eif-build: no simulated-mode $SIMULATED for the control: build the workspace first" >&2
  exit 1
fi
for marker in "${MARKERS[@]}"; do
  if ! grep -qaF "$marker" "$SIMULATED"; then
    echo "eif-build: control failed: the simulated-mode $SIMULATED lacks \"$marker\"" >&2
    exit 1
  fi
done
echo "eif-build: the production cohort-enclave has no simulated NSM (feature graph and binary)"

# The image tool's tests, on the real static cohort-enclave just built.
COHORT_EIF_ENCLAVE="$scratch/1/cohort-enclave" COHORT_EIF_KERNEL="$KERNEL" cargo test --locked
