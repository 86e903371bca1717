#!/usr/bin/env bash
# The main job: boots a simulated Cohort cluster (enclaves, proxies), attests and verifies every
# node, and shuts it down. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

cargo build --workspace --bins --locked
cargo run --locked --quiet --package cli --bin cohort -- demo "$@"
