//! `cohort-kms`: the local KMS stand-in of simulated clusters.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use host::startup::{self, BAD_CONFIG, FAILED};
use kms_local::LocalKms;
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

const NAME: &str = "cohort-kms";

#[tokio::main]
async fn main() -> ExitCode {
    let config = startup::start(|_: &Config| false);
    let root = match std::fs::read_to_string(&config.attestation_root)
        .map_err(|e| e.to_string())
        .and_then(|pem| attestation::pem_to_der(&pem).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            let root = config.attestation_root.display();
            let message = format!("cannot read the attestation root {root}: {e}");
            return startup::exit(NAME, BAD_CONFIG, message);
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
            let message = format!("cannot use {}: {e}", config.data_dir.display());
            return startup::exit(NAME, FAILED, message);
        }
    };
    let (listener, addr) = match startup::listen_tcp(&config.listen).await {
        Ok(bound) => bound,
        Err(e) => return startup::exit(NAME, FAILED, e),
    };
    if let Err(e) = startup::write_addr_file(config.addr_file.as_deref(), &addr) {
        return startup::exit(NAME, FAILED, e);
    }
    info!(%addr, data_dir = %config.data_dir.display(), "local KMS stand-in listening");
    match kms_local::server::serve(&listener, kms, startup::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => startup::exit(NAME, FAILED, e),
    }
}
