//! `cohort keygen`: an Ed25519 key file for an admin or approver.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key (hex seed, mode 0600).
    #[arg(long)]
    out: PathBuf,
}

/// Writes the key; prints its public key.
pub fn run(a: KeygenArgs) -> anyhow::Result<ExitCode> {
    let public = cli::ops::keygen(&a.out)?;
    println!("public key: {}", hex::encode(public));
    Ok(ExitCode::SUCCESS)
}
