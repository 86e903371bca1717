//! The `cohort` commands: one module per top-level command or command group, each with its
//! clap arguments and a `run`; here what several of them share.

pub mod address;
pub mod admins;
pub mod attest;
pub mod audit;
pub mod bench;
pub mod credential;
pub mod demo;
pub mod events;
pub mod genesis;
pub mod images;
pub mod import;
pub mod key;
pub mod keygen;
pub mod kms;
pub mod node;
pub mod sign;
pub mod sim;
pub mod trust;
pub mod tx;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use coordinator::api::PresignatureUse;
use coordinator::client::ApiClient;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How a command finds the cluster: the coordinator's URL, or the directory of a running
/// `cohort sim up` that names it.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Cluster directory (from `cohort sim up`), to find its coordinator.
    #[arg(long, default_value = ".cohort-sim")]
    dir: PathBuf,
    /// The coordinator's URL (default: the one of the sim cluster in --dir).
    #[arg(long, env = "COHORT_COORDINATOR")]
    coordinator: Option<String>,
    /// The API key calls are signed with (`cohort credential new` writes one; default: the sim
    /// cluster's admin key, DIR/api-key.json, when there is one).
    #[arg(long, env = "COHORT_API_KEY", value_name = "FILE")]
    api_key: Option<PathBuf>,
    /// The pinned genesis keys are checked against (default: DIR/trusted-genesis.json for a
    /// sim cluster, else ~/.config/cohort/trusted-genesis.json).
    #[arg(long, env = "COHORT_TRUST")]
    trust: Option<PathBuf>,
}

impl ClusterArgs {
    /// A client of the coordinator: --coordinator, else the URL in `DIR/cluster.json`.
    pub fn api(&self) -> anyhow::Result<ApiClient> {
        cli::ops::api(
            self.coordinator.as_deref(),
            &self.dir,
            self.api_key.as_deref(),
        )
    }

    /// The sim cluster's directory, when no --coordinator is given.
    pub fn sim_dir(&self) -> Option<&std::path::Path> {
        self.coordinator.is_none().then_some(self.dir.as_path())
    }

    /// Where the pinned genesis is (see [`cli::trust::trust_path`]).
    pub fn trust_path(&self) -> PathBuf {
        cli::trust::trust_path(self.trust.as_deref(), self.sim_dir())
    }

    /// The pinned genesis.
    pub fn trust(&self) -> anyhow::Result<cli::trust::Trust> {
        Ok(cli::trust::Trust::load(&self.trust_path())?)
    }

    /// GETs `path` of the coordinator's API.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.api()?
            .get(path)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// Which key, on which cluster.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The key.
    #[arg(long)]
    pub key: String,
}

impl KeyArgs {
    /// A client of the cluster's coordinator (see [`ClusterArgs::api`]).
    pub fn api(&self) -> anyhow::Result<ApiClient> {
        self.cluster.api()
    }

    /// The pinned genesis (see [`ClusterArgs::trust`]).
    pub fn trust(&self) -> anyhow::Result<cli::trust::Trust> {
        self.cluster.trust()
    }
}

/// `--approver`: the approvers' key files.
#[derive(Debug, Args)]
pub struct ApproverFiles {
    /// Approver key files.
    #[arg(long = "approver", required = true)]
    approvers: Vec<PathBuf>,
}

impl ApproverFiles {
    /// Reads the approvers' Ed25519 keys.
    pub fn read(&self) -> anyhow::Result<Vec<ed25519_dalek::SigningKey>> {
        read_keys(&self.approvers)
    }
}

/// `--json`: print JSON instead of text.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl JsonFlag {
    /// Prints `value` as pretty JSON with --json, else as `text` prints it.
    pub fn print<T: Serialize>(&self, value: &T, text: impl FnOnce(&T)) -> anyhow::Result<()> {
        if self.json {
            print_json(value)
        } else {
            text(value);
            Ok(())
        }
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Public keys given on the command line, each read by `parse`.
pub fn public_keys(
    texts: &[String],
    parse: fn(&str) -> anyhow::Result<[u8; 32]>,
) -> anyhow::Result<Vec<[u8; 32]>> {
    texts.iter().map(|t| parse(t)).collect()
}

/// Bytes given as hex on the command line (a newtype, so that clap does not read
/// `Option<Vec<u8>>` as a list of numbers).
#[derive(Debug, Clone)]
pub struct Hex(pub Vec<u8>);

/// Parses hex bytes.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s).map_err(|e| format!("not hex: {e}"))
}

/// Parses hex bytes into [`Hex`].
pub fn parse_hex_arg(s: &str) -> Result<Hex, String> {
    parse_hex(s).map(Hex)
}

/// Parses `--presignature prefer|never`.
pub fn parse_presignature(s: &str) -> Result<PresignatureUse, String> {
    match s {
        "prefer" => Ok(PresignatureUse::Prefer),
        "never" => Ok(PresignatureUse::Never),
        other => Err(format!("`{other}`: expected prefer or never")),
    }
}

/// A 32-byte public key given in hex.
pub fn hex_public(text: &str) -> Option<[u8; 32]> {
    <[u8; 32]>::try_from(hex::decode(text).ok()?.as_slice()).ok()
}

/// Reads Ed25519 key files (admins, approvers).
pub fn read_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<ed25519_dalek::SigningKey>> {
    paths.iter().map(|p| cli::ops::read_key(p)).collect()
}

/// The time since the Unix epoch.
pub fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
