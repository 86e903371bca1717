#!/usr/bin/env bash
# All of Cohort's tests, as CI runs them: formatting, lints, every unit, protocol and
# simulated-cluster test. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

# Test builds load committed safe primes instead of generating them (feature `test-fixtures`,
# off in production builds).
FEATURES=(--features enclave/test-fixtures)

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --workspace --all-targets --locked "${FEATURES[@]}" -- -D warnings
# The cluster tests start the real binaries: build them before the tests run.
cargo build --workspace --bins --locked "${FEATURES[@]}"
cargo test --workspace --locked "${FEATURES[@]}"

# The enclave image: the image tool's own workspace (fmt, clippy, tests) and the production
# pipeline run twice (static release cohort-enclave, EIF, PCRs recomputed, identical images).
./eif-build/check.sh

# The AWS deployment: terraform fmt, validate and tests (offline, against /opt/tf-plugins; a
# notice where terraform or the mirror is absent), checkov with zero failed checks.
./scripts/terraform-check.sh
