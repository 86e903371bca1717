#!/usr/bin/env bash
# Installs what building and testing Cohort needs on a fresh Debian machine, and nothing that is
# already there. Called by scripts/demo.sh and scripts/test.sh; safe to run again.
set -euo pipefail

need_apt=()
command -v m4 >/dev/null 2>&1 || need_apt+=(m4)            # GMP (cggmp21 via rug) builds with m4
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install the Rust toolchain (rustc 1.95) first" >&2
  exit 1
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "setup: adding rustup component $component"
    rustup component add "$component"
  fi
done
