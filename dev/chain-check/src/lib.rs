//! Checks transactions with chain software none of us wrote.
//!
//! * Bitcoin: [`bitcoin::verify`] runs every input of a signed transaction through Bitcoin
//!   Core's script interpreter (libbitcoinconsensus, Core 26.0) against the outputs it spends.
//!   It sees raw bytes, scripts and amounts only, not rust-bitcoin's types.
//! * Solana: [`solana::LocalSolana`] runs the Solana runtime (LiteSVM, agave 3.1) behind a
//!   subset of Solana's JSON-RPC (`getLatestBlockhash`, `sendTransaction`, `getBalance`,
//!   `requestAirdrop`, `getTokenAccountBalance`, plus `cohort_mintTo` to seed SPL tokens), so
//!   the coordinator and `cohort tx send --rpc` talk to it as to a real cluster.
//! * EVM: anvil (a separate program, npm `@foundry-rs/anvil-linux-amd64`) is driven over its
//!   JSON-RPC by the callers.
//!
//! The binary `cohort-chain-check` exposes both for `cohort demo` (which keeps the Solana
//! runtime out of the `cohort` binary).

pub mod bitcoin;
pub mod solana;
