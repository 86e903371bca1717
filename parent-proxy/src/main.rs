//! `cohort-parent-proxy`: attests its enclave and relays frames to it.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use parent_proxy::config::Config;
use parent_proxy::kms::{self, KmsListener, KmsRelay, KmsSettings};
use parent_proxy::link::EnclaveLink;
use tokio::net::TcpListener;
use tracing::{error, info};

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

fn write_addr_file(path: &std::path::Path, addr: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, addr)?;
    std::fs::rename(tmp, path)
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if config.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        // Colour only on a terminal: log files stay plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        tracing_subscriber::fmt()
            .with_ansi(ansi)
            .with_env_filter(filter)
            .init();
    }
    let policy = match config.policy() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cohort-parent-proxy: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "cohort-parent-proxy: cannot listen on {}: {e}",
                config.listen
            );
            return ExitCode::from(1);
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a.to_string(),
        Err(e) => {
            eprintln!("cohort-parent-proxy: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(path) = &config.addr_file
        && let Err(e) = write_addr_file(path, &addr)
    {
        eprintln!("cohort-parent-proxy: cannot write {}: {e}", path.display());
        return ExitCode::from(1);
    }
    let blobs = match &config.blob_dir {
        Some(dir) => match parent_proxy::blobs::BlobStore::open(dir) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!(
                    "cohort-parent-proxy: cannot use blob directory {}: {e}",
                    dir.display()
                );
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    if let (Some(endpoint), Some(key_id)) = (&config.kms_listen, &config.kms_key_id) {
        let settings = KmsSettings {
            key_id: key_id.clone(),
            endpoint: config.kms_endpoint.clone(),
            region: config.kms_region.clone(),
        };
        let listener = match KmsListener::bind(endpoint).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("cohort-parent-proxy: cannot listen for KMS calls on {endpoint}: {e}");
                return ExitCode::from(1);
            }
        };
        let relay = Arc::new(KmsRelay::new(kms::client(&settings).await, key_id.clone()));
        info!(%endpoint, key = %key_id, "KMS channel listening");
        tokio::spawn(kms::serve(listener, relay));
    }
    info!(%addr, enclave = %config.enclave, "listening");
    let result = parent_proxy::run(
        listener,
        EnclaveLink::new(config.enclave.clone()),
        policy,
        Duration::from_secs(config.reattest_secs.max(1)),
        blobs,
        shutdown_signal(),
    )
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "proxy stopped");
            ExitCode::from(1)
        }
    }
}
