//! `cohort-enclave`: boots the enclave and serves its proxy.

use std::process::ExitCode;
use std::sync::Arc;

use attestation::Nsm;
use attestation::sim::{SimulatedCa, SimulatedNsm, measure_file, simulated_pcrs};
use clap::Parser;
use enclave::config::{Config, Mode};
use enclave::nsm::NitroNsm;
use enclave::primes::PrimePool;
use enclave::seal::{LocalSealingAuthority, SealingAuthority, UnavailableSealing};
use enclave::server::BootConfig;
use enclave::transport::Listener;
use enclave::{Enclave, run};
use tracing::{error, info};

type SimParts = (Box<dyn Nsm>, Box<dyn SealingAuthority>, Vec<u8>);

/// Simulated mode: the NSM, the local sealing authority and the root, from the CA directory.
fn simulated(config: &Config) -> Result<SimParts, String> {
    let dir = config
        .sim_ca
        .as_ref()
        .ok_or("simulated mode needs --sim-ca")?;
    let ca = SimulatedCa::load(dir).map_err(|e| e.to_string())?;
    let root = ca.root_der().to_vec();
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate own executable: {e}"))?;
    let digest =
        measure_file(&exe).map_err(|e| format!("cannot measure {}: {e}", exe.display()))?;
    let module_id = config
        .module_id
        .clone()
        .unwrap_or_else(|| format!("sim-enclave-{}", std::process::id()));
    let sealing: Box<dyn SealingAuthority> =
        match LocalSealingAuthority::from_file(&dir.join("sealing.key"), &digest) {
            Ok(a) => Box::new(a),
            Err(e) => Box::new(UnavailableSealing(e.to_string())),
        };
    let nsm = SimulatedNsm::new(ca, module_id, simulated_pcrs(&digest));
    Ok((Box::new(nsm), sealing, root))
}

fn primes(config: &Config) -> PrimePool {
    #[cfg(feature = "test-fixtures")]
    if let Some(i) = config.fixture_primes {
        match enclave::mpc::ecdsa::fixtures::primes(i) {
            Ok(p) => return PrimePool::preloaded(p),
            Err(e) => error!(error = %e, "cannot load fixture primes; generating"),
        }
    }
    let _ = config;
    PrimePool::background()
}

fn boot_config(config: &Config) -> BootConfig {
    match config.mode {
        Mode::Production => BootConfig {
            nsm: NitroNsm::open()
                .map(|n| Box::new(n) as Box<dyn Nsm>)
                .map_err(|e| e.to_string()),
            sealing: Box::new(UnavailableSealing(
                "production sealing (KMS with attestation) is not built yet".into(),
            )),
            root_der: attestation::aws_nitro_root_der(),
            primes: primes(config),
        },
        Mode::Simulated => match simulated(config) {
            Ok((nsm, sealing, root_der)) => BootConfig {
                nsm: Ok(nsm),
                sealing,
                root_der,
                primes: primes(config),
            },
            Err(reason) => BootConfig {
                nsm: Err(reason.clone()),
                sealing: Box::new(UnavailableSealing(reason)),
                root_der: Vec::new(),
                primes: PrimePool::default(),
            },
        },
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
        // Colour only on a terminal: log files stay plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        tracing_subscriber::fmt()
            .with_ansi(ansi)
            .with_env_filter(filter)
            .init();
    }
    if let Err(e) = config.validate() {
        eprintln!("cohort-enclave: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    let enclave = Arc::new(Enclave::boot(boot_config(&config)));
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
