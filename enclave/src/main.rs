//! `cohort-enclave`: boots the enclave and serves its proxy.

use std::process::ExitCode;
use std::sync::Arc;

use attestation::Nsm;
use attestation::sim::{SimulatedCa, SimulatedNsm, measure_file, simulated_pcrs};
use clap::Parser;
use enclave::config::{Config, Mode};
use enclave::nsm::NitroNsm;
use enclave::transport::Listener;
use enclave::{Enclave, run};
use tracing::{error, info};

fn open_nsm(config: &Config) -> Result<Box<dyn Nsm>, String> {
    match config.mode {
        Mode::Production => Ok(Box::new(NitroNsm::open().map_err(|e| e.to_string())?)),
        Mode::Simulated => {
            let dir = config
                .sim_ca
                .as_ref()
                .ok_or("simulated mode needs --sim-ca")?;
            let ca = SimulatedCa::load(dir).map_err(|e| e.to_string())?;
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot locate own executable: {e}"))?;
            let digest =
                measure_file(&exe).map_err(|e| format!("cannot measure {}: {e}", exe.display()))?;
            let module_id = config
                .module_id
                .clone()
                .unwrap_or_else(|| format!("sim-enclave-{}", std::process::id()));
            Ok(Box::new(SimulatedNsm::new(
                ca,
                module_id,
                simulated_pcrs(&digest),
            )))
        }
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot install SIGTERM handler");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
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
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    if let Err(e) = config.validate() {
        eprintln!("cohort-enclave: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    let enclave = Arc::new(Enclave::boot(open_nsm(&config)));
    let listener = match Listener::bind(&config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cohort-enclave: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    info!(listen = %config.listen, mode = ?config.mode, phase = %enclave.phase(), "listening");
    match run(listener, enclave, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "enclave stopped");
            ExitCode::from(1)
        }
    }
}
