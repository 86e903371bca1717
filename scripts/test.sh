#!/usr/bin/env bash
# All of Cohort's tests, as CI runs them: formatting, lints, every unit, protocol and
# simulated-cluster test. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The cluster tests start the real binaries: build them before the tests run.
cargo build --workspace --bins --locked
cargo test --workspace --locked
