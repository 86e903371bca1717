//! `cohort audit verify`: the audit log's hash chain, read from the store or asked of the
//! coordinator.

use std::process::ExitCode;

use clap::Subcommand;

use super::ClusterArgs;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the audit log; exit 1 at the first broken link. Reads the
    /// coordinator's store directly with --store, or asks the coordinator.
    Verify {
        /// The coordinator's store: sqlite:PATH or postgres://...
        #[arg(long)]
        store: Option<String>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

/// Runs an audit command.
pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            store: Some(store), ..
        } => verify_store(&store),
        AuditCommand::Verify {
            store: None,
            cluster,
        } => verify_remote(&cluster).await,
    }
}

fn verify_store(store: &str) -> anyhow::Result<ExitCode> {
    let mut store = coordinator::store::open(store)?;
    Ok(match coordinator::store::verify_log(&mut store)? {
        Ok(n) => {
            println!("audit chain intact: {n} records");
            ExitCode::SUCCESS
        }
        Err(broken) => {
            println!("{broken}");
            ExitCode::from(1)
        }
    })
}

async fn verify_remote(cluster: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let v: coordinator::api::AuditVerification = cluster.get("/v1/audit/verify").await?;
    Ok(if v.ok {
        println!("audit chain intact: {} records", v.records);
        ExitCode::SUCCESS
    } else {
        println!(
            "audit chain broken at record {}: {}",
            v.broken_at.unwrap_or_default(),
            v.reason.unwrap_or_default()
        );
        ExitCode::from(1)
    })
}
