//! `cohort-parent-proxy`: attests its enclave and relays frames to it.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use host::startup::{self, FAILED};
use parent_proxy::blobs::BlobStore;
use parent_proxy::config::Config;
use parent_proxy::kms::{self, KmsListener, KmsRelay, KmsSettings};
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
        endpoint: config.kms_endpoint.clone(),
        region: config.kms_region.clone(),
    };
    let listener = KmsListener::bind(endpoint)
        .await
        .map_err(|e| format!("cannot listen for KMS calls on {endpoint}: {e}"))?;
    let relay = Arc::new(KmsRelay::new(kms::client(&settings).await, key_id.clone()));
    info!(%endpoint, key = %key_id, "KMS channel listening");
    tokio::spawn(kms::serve(listener, relay));
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let (config, policy) =
        match startup::start_with_policy(NAME, |c: &Config| c.log_json, Config::policy) {
            Ok(started) => started,
            Err(code) => return code,
        };
    let (listener, addr) = match startup::listen_tcp(&config.listen).await {
        Ok(bound) => bound,
        Err(e) => return startup::exit(NAME, FAILED, e),
    };
    if let Err(e) = startup::write_addr_file(config.addr_file.as_deref(), &addr) {
        return startup::exit(NAME, FAILED, e);
    }
    let blobs = match config.blob_dir.as_deref().map(BlobStore::open).transpose() {
        Ok(b) => b,
        Err(e) => {
            let dir = config
                .blob_dir
                .as_deref()
                .unwrap_or(std::path::Path::new(""));
            let message = format!("cannot use blob directory {}: {e}", dir.display());
            return startup::exit(NAME, FAILED, message);
        }
    };
    if let Err(e) = start_kms_channel(&config).await {
        return startup::exit(NAME, FAILED, e);
    }
    info!(%addr, enclave = %config.enclave, "listening");
    let result = parent_proxy::run(
        listener,
        EnclaveLink::new(config.enclave.clone()),
        policy,
        Duration::from_secs(config.reattest_secs.max(1)),
        blobs,
        startup::shutdown_signal(),
    )
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "proxy stopped");
            ExitCode::from(FAILED)
        }
    }
}
