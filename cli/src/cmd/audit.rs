//! `cohort audit verify`: the audit log's hash chain, read from the store or asked of the
//! coordinator.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use coordinator::store::{PostgresTls, TlsMode};

use super::ClusterArgs;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the audit log; exit 1 at the first broken link. Reads the
    /// coordinator's store directly with --store, or asks the coordinator.
    Verify {
        /// The coordinator's store: sqlite:PATH or postgres://... (over TLS, see --store-tls).
        #[arg(long)]
        store: Option<String>,
        /// TLS to PostgreSQL, as the coordinator's flag: `require` (TLS only, the certificate
        /// checked against --store-ca or the system's roots) or `disable` (plaintext, warned).
        #[arg(long, value_enum, default_value_t = TlsMode::Require)]
        store_tls: TlsMode,
        /// PEM file of the roots PostgreSQL's certificate must chain to (default: the system's).
        #[arg(long, value_name = "FILE")]
        store_ca: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

/// Runs an audit command.
pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            store: Some(store),
            store_tls,
            store_ca,
            ..
        } => verify_store(
            &store,
            &PostgresTls {
                mode: store_tls,
                ca_file: store_ca,
            },
        ),
        AuditCommand::Verify {
            store: None,
            cluster,
            ..
        } => verify_remote(&cluster).await,
    }
}

fn verify_store(store: &str, tls: &PostgresTls) -> anyhow::Result<ExitCode> {
    if tls.mode == TlsMode::Disable && store.starts_with("postgres") {
        eprintln!("warning: reading PostgreSQL without TLS (--store-tls disable)");
    }
    let mut store = coordinator::store::open(store, tls)?;
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
