//! `cohort genesis`: initialise the cluster (admins, their quorum, peer admission, auxiliary
//! info).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{ClusterArgs, hex_public, public_keys, read_keys};

#[derive(Debug, Args)]
pub struct GenesisArgs {
    #[command(flatten)]
    cluster_args: ClusterArgs,
    /// The cluster's name.
    #[arg(long, default_value = "cohort")]
    cluster: String,
    /// Key files of the admins approving the genesis here (at least QUORUM of them; all of
    /// them sign).
    #[arg(long = "admin", required = true)]
    admins: Vec<PathBuf>,
    /// Public key (hex) of a further admin, who does not sign the genesis (repeat). Their key
    /// files stay with them.
    #[arg(long = "admin-public")]
    admin_publics: Vec<String>,
    /// How many admins must approve admin requests.
    #[arg(long, default_value_t = 1)]
    quorum: u16,
}

fn admin_public(text: &str) -> anyhow::Result<[u8; 32]> {
    hex_public(text)
        .ok_or_else(|| anyhow::anyhow!("--admin-public {text}: not a 32-byte hex public key"))
}

/// Submits the genesis and waits until every node is ready.
pub async fn run(a: GenesisArgs) -> anyhow::Result<ExitCode> {
    let api = a.cluster_args.api()?;
    let others = public_keys(&a.admin_publics, admin_public)?;
    let admins = read_keys(&a.admins)?;
    cli::ops::genesis_with(&api, &a.cluster, None, &admins, &others, a.quorum).await?;
    println!("genesis done on every node; peers admitted; auxiliary info ready");
    Ok(ExitCode::SUCCESS)
}
