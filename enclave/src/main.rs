//! `cohort-enclave`: boots the enclave and serves its proxy.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use attestation::Nsm;
#[cfg(feature = "simulated")]
use attestation::sim::{SimulatedCa, SimulatedNsm, measure_file, simulated_pcrs};
use clap::Parser;
use enclave::config::{Config, Mode};
use enclave::kms::{KmsSealingAuthority, Roots};
use enclave::logship::LogChannel;
use enclave::nsm::NitroNsm;
use enclave::primes::PrimePool;
use enclave::seal::{LocalSealingAuthority, Sealer, SealingAuthority, UnavailableSealing};
use enclave::server::BootConfig;
use enclave::transport::Listener;
use enclave::{Enclave, run};
use nix::sys::signal::{SigSet, Signal};
use tracing::{error, info};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt};

/// The NSM, the root peers' documents chain to, the legacy local sealing authority, and the
/// roots KMS's TLS certificate must chain to.
type Parts = (Arc<dyn Nsm>, Vec<u8>, Option<LocalSealingAuthority>, Roots);

/// Simulated mode: the NSM, the root, and the interim local authority if this cluster ever
/// sealed with it (to read and migrate those blobs), from the CA directory.
#[cfg(feature = "simulated")]
fn simulated(config: &Config) -> Result<Parts, String> {
    let dir = config
        .sim_ca
        .as_ref()
        .ok_or("simulated mode needs --sim-ca")?;
    let ca = SimulatedCa::load(dir).map_err(|e| e.to_string())?;
    let root = ca.root_der().to_vec();
    // The local KMS stand-in's certificate is issued by the simulated CA: pinned the same way
    // as Amazon's roots are in production.
    let kms_roots = Roots::from_der(std::slice::from_ref(&root))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate own executable: {e}"))?;
    let digest =
        measure_file(&exe).map_err(|e| format!("cannot measure {}: {e}", exe.display()))?;
    let module_id = config
        .module_id
        .clone()
        .unwrap_or_else(|| format!("sim-enclave-{}", std::process::id()));
    let legacy = match LocalSealingAuthority::from_existing_file(&dir.join("sealing.key"), &digest)
    {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "blobs of the interim local sealing authority cannot be read");
            None
        }
    };
    let mut pcrs = simulated_pcrs(&digest);
    if let Some(role) = &config.sim_parent_role {
        pcrs.insert(3, attestation::parent::pcr3_of_role(role).to_vec());
    }
    let nsm = SimulatedNsm::new(ca, module_id, pcrs);
    Ok((Arc::new(nsm), root, legacy, kms_roots))
}

/// A production build (without the `simulated` feature) has no simulated NSM to start.
#[cfg(not(feature = "simulated"))]
fn simulated(_: &Config) -> Result<Parts, String> {
    Err("this cohort-enclave was built without simulated mode (a production image)".into())
}

fn primes(config: &Config) -> PrimePool {
    #[cfg(feature = "test-fixtures")]
    if let Some(i) = config.fixture_primes {
        match enclave::mpc::ecdsa::fixtures::primes(i) {
            // The committed set again after each use: a roster change makes auxiliary
            // information a second time.
            Ok(p) => {
                return PrimePool::reloading(p, move || {
                    enclave::mpc::ecdsa::fixtures::primes(i).ok()
                });
            }
            Err(e) => error!(error = %e, "cannot load fixture primes; generating"),
        }
    }
    let _ = config;
    PrimePool::background()
}

/// KMS through the parent, attested by `nsm`, over TLS checked against `roots`.
fn kms(config: &Config, nsm: &Arc<dyn Nsm>, roots: Roots) -> Box<dyn SealingAuthority> {
    match &config.parent {
        Some(parent) => Box::new(KmsSealingAuthority::new(parent.clone(), nsm.clone(), roots)),
        None => Box::new(UnavailableSealing(
            "no --parent endpoint: sealing needs KMS through the parent proxy".into(),
        )),
    }
}

fn boot_config(config: &Config) -> BootConfig {
    let parts = match config.mode {
        Mode::Production => NitroNsm::open()
            .map(|n| {
                (
                    Arc::new(n) as Arc<dyn Nsm>,
                    attestation::aws_nitro_root_der(),
                    None,
                    Roots::amazon(),
                )
            })
            .map_err(|e| e.to_string()),
        Mode::Simulated => simulated(config),
    };
    match parts {
        Ok((nsm, root_der, legacy, roots)) => BootConfig {
            sealing: Sealer::new(kms(config, &nsm, roots), legacy),
            nsm: Ok(nsm),
            root_der,
            primes: primes(config),
            workers: config.workers.map(usize::from),
            background: config.background(),
        },
        Err(reason) => BootConfig {
            nsm: Err(reason.clone()),
            sealing: Sealer::new(Box::new(UnavailableSealing(reason)), None),
            root_der: Vec::new(),
            primes: PrimePool::default(),
            workers: Some(1),
            background: config.background(),
        },
    }
}

/// Exit code for a bad configuration: the one every Cohort binary uses (`host::startup::BAD_CONFIG`,
/// which the enclave cannot link).
const BAD_CONFIG: u8 = 2;

/// Blocks SIGINT and SIGTERM in this thread and in every thread it starts from now on, and
/// returns what waits for one of them. Call it before any thread is started.
fn shutdown_signal() -> impl FnOnce() {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    let blocked = signals.thread_block();
    move || match blocked.and_then(|()| signals.wait()) {
        Ok(signal) => info!(signal = signal.as_str(), "signal received"),
        Err(e) => {
            // Signals keep their default action (they end the process): wait for one.
            error!(error = %e, "cannot wait for SIGINT or SIGTERM");
            loop {
                std::thread::park();
            }
        }
    }
}

/// Logs to standard output (text or JSON lines) and, with `--log-to`, as JSON lines to the
/// parent over the log channel, whose shipper runs on a thread of its own.
fn init_logs(config: &Config) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let stdout: Box<dyn Layer<Registry> + Send + Sync> = match config.log_json {
        true => Box::new(fmt::layer().json()),
        false => Box::new(fmt::layer().with_ansi(std::io::stdout().is_terminal())),
    };
    let channel = config.log_to.clone().map(|endpoint| {
        let (channel, shipper) = LogChannel::new(endpoint);
        std::thread::Builder::new()
            .name("log-channel".into())
            .spawn(move || shipper.run())
            .map(|_| fmt::layer().json().with_writer(channel))
    });
    let (channel, failed) = match channel {
        Some(Ok(layer)) => (Some(layer), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(stdout)
        .with(channel)
        .with(filter)
        .init();
    if let Some(e) = failed {
        error!(error = %e, "cannot start the log channel's thread: logging to standard output only");
    }
}

fn main() -> ExitCode {
    let config = Config::parse();
    let shutdown = shutdown_signal();
    if let Err(e) = config.validate() {
        eprintln!("cohort-enclave: invalid configuration: {e}");
        return ExitCode::from(BAD_CONFIG);
    }
    init_logs(&config);
    let enclave = Arc::new(Enclave::boot(boot_config(&config)));
    let listener = match Listener::bind(&config.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cohort-enclave: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    info!(listen = %config.listen, mode = ?config.mode, phase = %enclave.phase(), "listening");
    match run(listener, enclave, shutdown) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "enclave stopped");
            ExitCode::from(1)
        }
    }
}
