//! Proxy configuration: flags or environment variables, one struct.

use std::path::PathBuf;
use std::time::Duration;

use attestation::Policy;
use clap::Parser;
use protocol::Endpoint;

/// `cohort-parent-proxy` configuration.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "cohort-parent-proxy",
    version,
    about = "Cohort parent-instance proxy"
)]
pub struct Config {
    /// The enclave: vsock:CID:PORT (production), unix:PATH or tcp:HOST:PORT (simulated).
    #[arg(long, env = "COHORT_PROXY_ENCLAVE")]
    pub enclave: Endpoint,
    /// HTTP listen address (port 0 picks a free port; see --addr-file).
    #[arg(long, env = "COHORT_PROXY_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: String,
    /// Write the bound HTTP address into this file once listening.
    #[arg(long, env = "COHORT_PROXY_ADDR_FILE")]
    pub addr_file: Option<PathBuf>,
    /// PEM of the root to pin instead of the AWS Nitro root (simulated mode: the simulated root).
    #[arg(long, env = "COHORT_PROXY_ROOT")]
    pub root: Option<PathBuf>,
    /// Allowed PCR0 values, hex (repeat for several). Required unless --measurements is given.
    #[arg(
        long = "pcr0",
        required_unless_present = "measurements",
        value_parser = attestation::parse_pcr_hex
    )]
    pub pcr0: Vec<Vec<u8>>,
    /// Allowed PCR1 values, hex.
    #[arg(long = "pcr1", value_parser = attestation::parse_pcr_hex)]
    pub pcr1: Vec<Vec<u8>>,
    /// Allowed PCR2 values, hex.
    #[arg(long = "pcr2", value_parser = attestation::parse_pcr_hex)]
    pub pcr2: Vec<Vec<u8>>,
    /// Allowed PCR3 values (parent IAM role), hex.
    #[arg(long = "pcr3", value_parser = attestation::parse_pcr_hex)]
    pub pcr3: Vec<Vec<u8>>,
    /// Allowed PCR4 values (parent instance id), hex.
    #[arg(long = "pcr4", value_parser = attestation::parse_pcr_hex)]
    pub pcr4: Vec<Vec<u8>>,
    /// Allowed PCR8 values (image signing certificate), hex.
    #[arg(long = "pcr8", value_parser = attestation::parse_pcr_hex)]
    pub pcr8: Vec<Vec<u8>>,
    /// Accept a debug-mode enclave (all-zero PCRs). Never in production.
    #[arg(long)]
    pub allow_debug: bool,
    /// The enclave image's measurements file (eif-build's measurements.json or `nitro-cli
    /// describe-eif` output): allows its PCR0, PCR1, PCR2 (and PCR8). Repeat during an image
    /// rotation. Adds to the --pcrN flags.
    #[arg(long = "measurements", env = "COHORT_PROXY_MEASUREMENTS")]
    pub measurements: Vec<PathBuf>,
    /// Maximum age of an attestation document, seconds.
    #[arg(long, default_value_t = 60)]
    pub max_age_secs: u64,
    /// Re-attest the enclave this often, seconds.
    #[arg(long, default_value_t = 60)]
    pub reattest_secs: u64,
    /// Directory for the enclave's sealed blobs (stored as the enclave returns them, handed
    /// back after it restarts).
    #[arg(long, env = "COHORT_PROXY_BLOB_DIR")]
    pub blob_dir: Option<PathBuf>,
    /// Where the enclave reaches the proxy for KMS calls: vsock:any:PORT in production (the
    /// enclave connects to CID 3), unix:PATH or tcp:HOST:PORT in simulated mode.
    #[arg(long, env = "COHORT_PROXY_KMS_LISTEN", requires = "kms_key_id")]
    pub kms_listen: Option<Endpoint>,
    /// This node's KMS key (id or ARN), whose policy admits only the enclave's measurements.
    #[arg(long, env = "COHORT_PROXY_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// KMS endpoint override (the local stand-in in simulated mode).
    #[arg(long, env = "COHORT_PROXY_KMS_ENDPOINT")]
    pub kms_endpoint: Option<String>,
    /// KMS region (default: the AWS SDK's region chain).
    #[arg(long, env = "COHORT_PROXY_KMS_REGION")]
    pub kms_region: Option<String>,
    /// Log as JSON lines.
    #[arg(long, env = "COHORT_LOG_JSON")]
    pub log_json: bool,
}

impl Config {
    /// The verification policy (the nonce is set per attestation).
    pub fn policy(&self) -> Result<Policy, String> {
        Policy::configured(
            self.root.as_deref(),
            &[
                (0, &self.pcr0),
                (1, &self.pcr1),
                (2, &self.pcr2),
                (3, &self.pcr3),
                (4, &self.pcr4),
                (8, &self.pcr8),
            ],
            &self.measurements,
            self.allow_debug,
            Duration::from_secs(self.max_age_secs),
        )
    }
}
