//! `cohort address`: a key's address on a chain, made on this machine from the key checked
//! against the pinned genesis.

use std::process::ExitCode;

use clap::Args;

use super::{JsonFlag, KeyArgs};

#[derive(Debug, Args)]
pub struct AddressArgs {
    #[command(flatten)]
    target: KeyArgs,
    /// bitcoin, solana, or an EVM chain of the registry (ethereum, …).
    #[arg(long)]
    chain: String,
    /// Network (default mainnet): bitcoin testnet/signet/regtest, ethereum sepolia/anvil, …
    #[arg(long)]
    network: Option<String>,
    /// Derivation path (ECDSA keys), e.g. m/0/1.
    #[arg(long, default_value = "m", value_parser = cli::requests::parse_path)]
    path: std::vec::Vec<u32>,
    #[command(flatten)]
    output: JsonFlag,
}

/// Prints the address (or its JSON description).
pub async fn run(a: AddressArgs) -> anyhow::Result<ExitCode> {
    let api = a.target.api()?;
    let trust = a.target.trust()?;
    let address = cli::tx::address(
        &api,
        &trust,
        &adapters::Registry::builtin(),
        &a.target.key,
        &a.chain,
        a.network.as_deref(),
        &a.path,
    )
    .await?;
    a.output.print(&address, |a| println!("{}", a.address))?;
    Ok(ExitCode::SUCCESS)
}
