//! `cohort trust`: pin a cluster's approved genesis on this machine (ADR 0013 §4). Every key
//! the CLI uses afterwards is checked against it (`cohort key show`, `cohort address`,
//! `cohort tx send`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::ClusterArgs;

#[derive(Debug, Args)]
pub struct TrustArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The approved genesis (JSON, as `cohort genesis --out` writes it), obtained from the
    /// ceremony's admins, not from the coordinator.
    #[arg(long)]
    genesis: PathBuf,
}

/// Checks the genesis (structure, admin approvals), pins it and prints what it pins.
pub fn run(a: TrustArgs) -> anyhow::Result<ExitCode> {
    let path = a.cluster.trust_path();
    let trust = cli::trust::Trust::pin_file(&a.genesis, &path)?;
    let g = trust.genesis();
    println!(
        "pinned cluster {} ({}) at {}",
        trust.cluster_id(),
        g.name,
        path.display()
    );
    println!("  admins: {} (quorum {})", g.admins.len(), g.admin_quorum);
    for (i, e) in g.roster.iter().enumerate() {
        println!(
            "  node {i}: node key {}, KMS key {}",
            hex::encode(&e.node_key),
            e.kms_key_arn
        );
    }
    Ok(ExitCode::SUCCESS)
}
