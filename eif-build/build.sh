#!/usr/bin/env bash
# Builds Cohort's enclave image reproducibly and prints its measurements (PCR0/1/2, PCR8 when
# signed) as JSON.
#
#   eif-build/build.sh --blobs /usr/share/nitro_enclaves/blobs --out DIR      # on AWS (nitro-cli's
#                                                                             # kernel, cmdline, init, nsm.ko)
#   eif-build/build.sh --kernel FILE --cmdline-file FILE --init FILE [--nsm-module FILE] --out DIR
#   ... [--signing-key KEY.pem --signing-cert CERT.pem] [--arg ARG]... [--allow-dirty]
#
# Writes DIR/cohort.eif, DIR/measurements.json (the file Terraform, `cohort kms policy` and the
# verifiers' --measurements read) and DIR/cohort-enclave (the static binary in the image).
#
# Reproducibility: the compiler is pinned (rustc 1.95.0, from rustup; checked below); dependencies come from
# Cargo.lock, fetched before the build, which then runs with --offline (no network); the binary
# is statically linked (crt-static) so the image needs no libc; source and registry paths are
# remapped so that the checkout's location does not show; every time in the image is
# SOURCE_DATE_EPOCH, the time of the last commit unless set; GMP is built from its vendored
# source in this build (gmp-mpfr-sys's cache off: a cached GMP from another build would not show
# in the inputs). A tree with uncommitted changes is refused (--allow-dirty: the tests' builds),
# so the commit recorded is what was built. Everything else that shapes the binary is recorded
# under Inputs.Build of measurements.json: the commit and whether the tree was clean, rustc,
# cargo, gcc, glibc, the base image digest and nitro-cli version (COHORT_BASE_IMAGE and
# COHORT_NITRO_CLI, which the Containerfile sets), and the kernel (Inputs.Kernel).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

blobs="" kernel="" cmdline_file="" init="" nsm="" out="" sign=() extra=() allow_dirty=""
while [ $# -gt 0 ]; do
  case "$1" in
    --blobs) blobs="$2"; shift 2 ;;
    --kernel) kernel="$2"; shift 2 ;;
    --cmdline-file) cmdline_file="$2"; shift 2 ;;
    --init) init="$2"; shift 2 ;;
    --nsm-module) nsm="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --signing-key|--signing-cert) sign+=("$1" "$2"); shift 2 ;;
    --arg) extra+=("--arg=$2"); shift 2 ;;
    --allow-dirty) allow_dirty=1; shift ;;
    *) echo "eif-build: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -n "$blobs" ]; then
  kernel="${kernel:-$blobs/bzImage}"
  cmdline_file="${cmdline_file:-$blobs/cmdline}"
  init="${init:-$blobs/init}"
  nsm="${nsm:-$blobs/nsm.ko}"
fi
if [ -z "$kernel" ] || [ -z "$init" ] || [ -z "$cmdline_file" ] || [ -z "$out" ]; then
  echo "eif-build: give --blobs DIR (or --kernel, --cmdline-file and --init) and --out DIR" >&2
  exit 2
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# The commit the image is built from, and a refusal if the tree differs from it.
commit=$(git -C "$ROOT" rev-parse HEAD)
dirty=false
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=normal)" ]; then
  dirty=true
  if [ -z "$allow_dirty" ]; then
    echo "eif-build: the tree at $ROOT has uncommitted changes (git status): an image is built" \
      "from a commit; commit or stash them (--allow-dirty for test builds)" >&2
    exit 2
  fi
fi

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct)}"
export CARGO_TARGET_DIR="${COHORT_EIF_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}}"
export CARGO_INCREMENTAL=0
# gmp-mpfr-sys: "_" turns its cache off (~/.cache/gmp-mpfr-sys), so GMP is compiled here.
export GMP_MPFR_SYS_CACHE="_"

# The pinned compiler: another one gives another binary, hence other PCRs.
PINNED_RUSTC="rustc 1.95.0 (59807616e 2026-04-14)"
export RUSTUP_TOOLCHAIN="${COHORT_EIF_TOOLCHAIN:-1.95.0}"
if [ -z "${COHORT_EIF_TOOLCHAIN:-}" ] && [ "$(rustc -V)" != "$PINNED_RUSTC" ]; then
  echo "eif-build: images are built with $PINNED_RUSTC, this machine has $(rustc -V);" \
    "set COHORT_EIF_TOOLCHAIN to build with another (and expect other PCRs)" >&2
  exit 2
fi
TARGET="$(uname -m)-unknown-linux-gnu"
CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"

# Everything the build reads comes from Cargo.lock, fetched now; the build itself is offline.
(cd "$ROOT" && cargo fetch --locked --target "$TARGET" >/dev/null)
(cd "$ROOT/eif-build" && cargo fetch --locked >/dev/null)

# RUSTFLAGS apply to the target only (build scripts and proc macros run on the host).
export RUSTFLAGS="-C target-feature=+crt-static \
  --remap-path-prefix=$CARGO_HOME/registry/src=/cargo/registry/src \
  --remap-path-prefix=$ROOT=/cohort \
  -C link-arg=-Wl,--build-id=none"
# Without the enclave's default `simulated` feature: the production image has no simulated NSM
# or CA (attestation's `sim` module is not compiled in; eif-build/check.sh proves it).
(cd "$ROOT" && cargo build --release --locked --offline --target "$TARGET" \
  -p enclave --bin cohort-enclave --no-default-features)
install -m 0755 "$CARGO_TARGET_DIR/$TARGET/release/cohort-enclave" "$out/cohort-enclave"

# The image tool is a workspace of its own (eif-build/Cargo.toml), built for this machine.
(cd "$ROOT/eif-build" && env -u RUSTFLAGS cargo build --locked --bin cohort-eif)
EIF="$CARGO_TARGET_DIR/debug/cohort-eif"

nsm_args=()
[ -n "$nsm" ] && nsm_args=(--nsm-module "$nsm")
# What shaped the binary besides the sources, recorded beside the PCRs (not measured).
first_line() { "$@" 2>/dev/null | head -n 1 || true; }
build_info=(
  --build-info "Commit=$commit"
  --build-info "Dirty=$dirty"
  --build-info "Rustc=$(rustc -V)"
  --build-info "Cargo=$(cargo -V)"
  --build-info "Gcc=$(first_line gcc --version)"
  --build-info "Glibc=$(first_line ldd --version)"
  --build-info "Host=$(uname -sm)"
  --build-info "GmpCache=off"
  --build-info "BaseImage=${COHORT_BASE_IMAGE:-not built in eif-build/Containerfile}"
  --build-info "NitroCli=${COHORT_NITRO_CLI:-not built in eif-build/Containerfile}"
)

"$EIF" build \
  --kernel "$kernel" --cmdline-file "$cmdline_file" --init "$init" "${nsm_args[@]}" \
  --enclave "$out/cohort-enclave" \
  --arg=--mode --arg=production --arg=--listen --arg=vsock:any:5005 --arg=--parent --arg=vsock:3:8001 \
  --arg=--log-to --arg=vsock:3:8002 --arg=--log-json "${extra[@]}" \
  "${sign[@]}" "${build_info[@]}" \
  --out "$out/cohort.eif" --measurements-out "$out/measurements.json" >/dev/null

# Recompute the PCRs from the file just written, as a security team would.
"$EIF" describe "$out/cohort.eif" --expect "$out/measurements.json" >/dev/null
cat "$out/measurements.json"
