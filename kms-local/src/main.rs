//! `cohort-kms`: the local KMS stand-in of simulated clusters.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kms_local::LocalKms;
use tokio::net::TcpListener;
use tracing::info;

/// `cohort-kms` configuration.
#[derive(Debug, Parser)]
#[command(
    name = "cohort-kms",
    version,
    about = "Local AWS KMS stand-in (simulated clusters only)"
)]
struct Config {
    /// Directory of the keys (key material, policies) and the audit log.
    #[arg(long, env = "COHORT_KMS_DATA_DIR")]
    data_dir: PathBuf,
    /// HTTP listen address (port 0 picks a free port; see --addr-file).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Write the bound address into this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// PEM of the root Recipient attestation documents must chain to (the simulated root).
    #[arg(long)]
    attestation_root: PathBuf,
    /// Region in key ARNs.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Maximum age of a Recipient attestation document, seconds.
    #[arg(long, default_value_t = 300)]
    max_age_secs: u64,
}

async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let root = match std::fs::read_to_string(&config.attestation_root)
        .map_err(|e| e.to_string())
        .and_then(|pem| attestation::pem_to_der(&pem).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "cohort-kms: cannot read the attestation root {}: {e}",
                config.attestation_root.display()
            );
            return ExitCode::from(2);
        }
    };
    let kms = match LocalKms::open(
        &config.data_dir,
        &config.region,
        root,
        Duration::from_secs(config.max_age_secs),
    ) {
        Ok(k) => Arc::new(k),
        Err(e) => {
            eprintln!("cohort-kms: cannot use {}: {e}", config.data_dir.display());
            return ExitCode::from(1);
        }
    };
    let listener = match TcpListener::bind(&config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cohort-kms: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a.to_string(),
        Err(e) => {
            eprintln!("cohort-kms: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(path) = &config.addr_file {
        let tmp = path.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, &addr).and_then(|()| std::fs::rename(&tmp, path)) {
            eprintln!("cohort-kms: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    info!(%addr, data_dir = %config.data_dir.display(), "local KMS stand-in listening");
    match kms_local::server::serve(listener, kms, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cohort-kms: {e}");
            ExitCode::from(1)
        }
    }
}
