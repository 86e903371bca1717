//! `cohort attest`: fetch an attestation document through a proxy; verify one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use attestation::Policy;
use clap::{Args, Subcommand};
use cli::client::HttpClient;
use rand::RngCore;

use super::{Hex, now, parse_hex, parse_hex_arg, print_json};

#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Fetch an attestation document (raw COSE bytes) through a proxy.
    Fetch {
        /// The proxy's base URL, e.g. http://127.0.0.1:7070.
        #[arg(long)]
        proxy: String,
        /// Nonce to include, hex (default: 32 random bytes, printed).
        #[arg(long, value_parser = parse_hex_arg)]
        nonce: Option<Hex>,
        /// Where to write the document.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a document; exit 0 if it verifies, 1 if not.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The document (raw COSE bytes).
    file: PathBuf,
    /// PEM of the root to pin instead of the AWS Nitro root.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Allowed PCR0 values (hex, repeatable).
    #[arg(long, value_parser = parse_hex)]
    pcr0: Vec<Vec<u8>>,
    /// Allowed PCR1 values (hex, repeatable).
    #[arg(long, value_parser = parse_hex)]
    pcr1: Vec<Vec<u8>>,
    /// Allowed PCR2 values (hex, repeatable).
    #[arg(long, value_parser = parse_hex)]
    pcr2: Vec<Vec<u8>>,
    /// Allowed PCR8 values (hex, repeatable).
    #[arg(long, value_parser = parse_hex)]
    pcr8: Vec<Vec<u8>>,
    /// The image's measurements file (eif-build's measurements.json or `nitro-cli describe-eif`
    /// output): allows its PCR0, PCR1, PCR2 (and PCR8). Repeatable.
    #[arg(long = "measurements")]
    measurements: Vec<PathBuf>,
    /// The nonce the document must carry (hex).
    #[arg(long, value_parser = parse_hex_arg)]
    nonce: Option<Hex>,
    /// Maximum age of the document at the validation time, seconds.
    #[arg(long)]
    max_age: Option<u64>,
    /// Validation time, seconds since the Unix epoch (default: now).
    #[arg(long)]
    at: Option<u64>,
    /// Accept debug-mode documents (all-zero PCRs).
    #[arg(long)]
    allow_debug: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs an attest command.
pub async fn run(command: AttestCommand) -> anyhow::Result<ExitCode> {
    match command {
        AttestCommand::Fetch { proxy, nonce, out } => fetch(&proxy, nonce, &out).await,
        AttestCommand::Verify(args) => verify(args),
    }
}

/// The DER of the PEM certificate at `path`.
pub fn read_root(path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    attestation::sim::pem_to_der(&pem)
        .with_context(|| format!("{} is not a PEM certificate", path.display()))
}

async fn fetch(proxy: &str, nonce: Option<Hex>, out: &Path) -> anyhow::Result<ExitCode> {
    let nonce = nonce.map(|h| h.0).unwrap_or_else(|| {
        let mut n = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut n);
        n
    });
    let document = HttpClient::new().fetch_attestation(proxy, &nonce).await?;
    std::fs::write(out, &document).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} bytes to {}", document.len(), out.display());
    println!("nonce: {}", hex::encode(&nonce));
    Ok(ExitCode::SUCCESS)
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let document = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let mut policy = Policy::default();
    if let Some(root) = &args.root {
        policy = policy.with_root(read_root(root)?);
    }
    let mut pcrs = BTreeMap::new();
    for (i, v) in [
        (0, args.pcr0),
        (1, args.pcr1),
        (2, args.pcr2),
        (8, args.pcr8),
    ] {
        if !v.is_empty() {
            pcrs.insert(i, v);
        }
    }
    policy.pcrs = pcrs;
    for file in &args.measurements {
        policy = policy
            .allow_measurements(file)
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    policy.nonce = args.nonce.map(|h| h.0);
    policy.max_age = args.max_age.map(Duration::from_secs);
    policy.allow_debug = args.allow_debug;
    let at = args.at.map(Duration::from_secs).unwrap_or_else(now);
    let report = cli::attest::report(&document, &policy, at);
    if args.json {
        print_json(&report)?;
    } else {
        print!("{report}");
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
