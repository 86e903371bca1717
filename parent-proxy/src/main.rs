//! `cohort-parent-proxy`: attests its enclave and relays frames to it.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use host::startup;
use parent_proxy::blobs::BlobStore;
use parent_proxy::config::Config;
use parent_proxy::kms::{self, KmsGateway, KmsListener, KmsSettings};
use parent_proxy::link::EnclaveLink;
use tracing::{error, info};

const NAME: &str = "cohort-parent-proxy";

/// Starts the KMS channel, when configured, on a task of its own.
async fn start_kms_channel(config: &Config) -> Result<(), String> {
    let (Some(endpoint), Some(key_id)) = (&config.kms_listen, &config.kms_key_id) else {
        return Ok(());
    };
    let settings = KmsSettings {
        key_id: key_id.clone(),
        tunnel_to: config.kms_tunnel_to.clone(),
        region: config.kms_region.clone(),
    };
    let listener = KmsListener::bind(endpoint)
        .await
        .map_err(|e| format!("cannot listen for KMS calls on {endpoint}: {e}"))?;
    let gateway = Arc::new(KmsGateway::new(
        kms::credentials(&settings).await?,
        settings,
    ));
    info!(%endpoint, key = %key_id, "KMS channel listening");
    tokio::spawn(kms::serve(listener, gateway));
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    startup::run_with_policy(NAME, |c: &Config| c.log_json, Config::policy, run).await
}

async fn run(config: Config, policy: attestation::Policy) -> Result<(), String> {
    let (listener, addr) =
        startup::listen_and_announce(&config.listen, config.addr_file.as_deref()).await?;
    let blobs = match config.blob_dir.as_deref() {
        Some(dir) => Some(
            BlobStore::open(dir)
                .map_err(|e| format!("cannot use blob directory {}: {e}", dir.display()))?,
        ),
        None => None,
    };
    start_kms_channel(&config).await?;
    if let Some(endpoint) = &config.enclave_log_listen {
        let listener = host::Listener::bind(endpoint)
            .await
            .map_err(|e| format!("cannot listen for the enclave's logs on {endpoint}: {e}"))?;
        info!(%endpoint, "enclave log channel listening");
        tokio::spawn(parent_proxy::enclave_logs::serve(listener));
    }
    info!(%addr, enclave = %config.enclave, "listening");
    parent_proxy::run(
        listener,
        EnclaveLink::new(config.enclave.clone()),
        policy,
        Duration::from_secs(config.reattest_secs.max(1)),
        (blobs, config.backup_manifest.clone()),
        startup::shutdown_signal(),
    )
    .await
    .map_err(|e| {
        error!(error = %e, "proxy stopped");
        format!("proxy stopped: {e}")
    })
}
