#!/usr/bin/env bash
# Re-run every probe: build, run, and check the EVM transactions against a local anvil.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR=/tmp/adapters-probe/target
cargo build --workspace
cargo run -q -p btc-probe | tee /tmp/btc.out
cargo run -q -p btc106-probe -- "$(sed -n 's/^raw: //p' /tmp/btc.out)"
cargo run -q -p sol-probe
(cd npm && npm install --no-audit --no-fund >/dev/null && node compile.js > Token.bin)
A=npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
"$A" --version | head -1
"$A" --host 127.0.0.1 --port 8547 --silent & APID=$!
trap 'kill $APID' EXIT
rpc(){ curl -s -H 'content-type: application/json' -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\",\"params\":$2}" http://127.0.0.1:8547; echo; }
until rpc eth_chainId '[]' >/dev/null 2>&1 && [ -n "$(rpc eth_chainId '[]')" ]; do sleep 0.1; done
FROM=1563915e194D8CfBA1943570603F7606A3115508; TO=70997970C51812dc3A010C7d01b50e0d17dc79C8
TOKEN=0x5FbDB2315678afecb367f032d93F642f64180aa3   # first contract of anvil account 0
rpc anvil_setBalance "[\"0x$FROM\",\"0xde0b6b3a7640000\"]" >/dev/null
rpc eth_sendTransaction "[{\"from\":\"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\",\"data\":\"0x$(cat npm/Token.bin)000000000000000000000000$FROM\"}]" >/dev/null
eval "$(cargo run -q -p eth-probe | tee /dev/stderr | grep '^RAW')"
echo "balance before: $(rpc eth_getBalance "[\"0x$TO\",\"latest\"]")"
for RAW in "$RAW1559" "$RAWLEGACY" "$RAWERC20"; do rpc eth_sendRawTransaction "[\"$RAW\"]"; done
sleep 1
echo "balance after:  $(rpc eth_getBalance "[\"0x$TO\",\"latest\"]")"
echo "token balance:  $(rpc eth_call "[{\"to\":\"$TOKEN\",\"data\":\"0x70a08231000000000000000000000000$TO\"},\"latest\"]")"
