//! `cohort-kms`: the local KMS stand-in of simulated clusters.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use host::startup;
use kms_local::LocalKms;
use tracing::info;

/// Local AWS KMS stand-in (simulated clusters only).
#[derive(Debug, Parser)]
#[command(name = "cohort-kms", version)]
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
    /// HTTPS listen address for enclaves (through their parent's tunnel), with a certificate
    /// for `kms.<region>.amazonaws.com` from the simulated CA in --tls-ca.
    #[arg(long, requires = "tls_ca")]
    tls_listen: Option<String>,
    /// Write the bound HTTPS address into this file once listening.
    #[arg(long)]
    tls_addr_file: Option<PathBuf>,
    /// Directory of the simulated CA that issues the HTTPS certificate.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Maximum age of a Recipient attestation document, seconds.
    #[arg(long, default_value_t = 300)]
    max_age_secs: u64,
    /// `ACCESS_KEY_ID=ARN`: requests signed with this access key id come from this principal
    /// (repeatable). With none, callers are unnamed and match every `Principal` of a key policy;
    /// with some, a request signed with another access key id is refused.
    #[arg(long = "principal", value_parser = principal)]
    principals: Vec<(String, String)>,
}

fn principal(s: &str) -> Result<(String, String), String> {
    let (id, arn) = s.split_once('=').ok_or("expected ACCESS_KEY_ID=ARN")?;
    if id.is_empty() || !arn.starts_with("arn:") {
        return Err("expected ACCESS_KEY_ID=ARN".into());
    }
    Ok((id.to_string(), arn.to_string()))
}

const NAME: &str = "cohort-kms";

#[tokio::main]
async fn main() -> ExitCode {
    startup::run_with_policy(NAME, |_: &Config| false, attestation_root, run).await
}

/// The DER root Recipient attestation documents must chain to (a bad configuration if unread).
fn attestation_root(config: &Config) -> Result<Vec<u8>, String> {
    std::fs::read_to_string(&config.attestation_root)
        .map_err(|e| e.to_string())
        .and_then(|pem| attestation::pem_to_der(&pem).map_err(|e| e.to_string()))
        .map_err(|e| {
            let root = config.attestation_root.display();
            format!("cannot read the attestation root {root}: {e}")
        })
}

async fn run(config: Config, root: Vec<u8>) -> Result<(), String> {
    let kms = LocalKms::open(
        &config.data_dir,
        &config.region,
        root,
        Duration::from_secs(config.max_age_secs),
    )
    .map(|kms| kms.with_principals(config.principals.iter().cloned().collect()))
    .map(Arc::new)
    .map_err(|e| format!("cannot use {}: {e}", config.data_dir.display()))?;
    if let (Some(listen), Some(ca)) = (&config.tls_listen, &config.tls_ca) {
        let tls = kms_local::server::tls_config(ca, &config.region)?;
        let (listener, addr) =
            startup::listen_and_announce(listen, config.tls_addr_file.as_deref()).await?;
        info!(%addr, "local KMS stand-in listening for HTTPS");
        let kms = kms.clone();
        tokio::spawn(async move {
            let _ = kms_local::server::serve_tls(&listener, kms, tls, std::future::pending()).await;
        });
    }
    let (listener, addr) =
        startup::listen_and_announce(&config.listen, config.addr_file.as_deref()).await?;
    info!(%addr, data_dir = %config.data_dir.display(), "local KMS stand-in listening");
    kms_local::server::serve(&listener, kms, startup::shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}
