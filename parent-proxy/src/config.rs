//! Proxy configuration: flags or environment variables, one struct.

use std::path::PathBuf;
use std::time::Duration;

use attestation::Policy;
use clap::Parser;
use host::PolicyArgs;
use protocol::Endpoint;

/// `cohort-parent-proxy` configuration.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "cohort-parent-proxy",
    version,
    about = "Cohort parent-instance proxy",
    mut_arg("root", |a| a.env("COHORT_PROXY_ROOT")),
    mut_arg("measurements", |a| a.env("COHORT_PROXY_MEASUREMENTS"))
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
    /// The attestation policy: root, PCR0-2, measurements files, debug mode.
    #[command(flatten)]
    pub attestation: PolicyArgs,
    /// Allowed PCR3 values (parent IAM role), hex.
    #[arg(long = "pcr3", value_parser = attestation::parse_pcr_hex)]
    pub pcr3: Vec<Vec<u8>>,
    /// Allowed PCR4 values (parent instance id), hex.
    #[arg(long = "pcr4", value_parser = attestation::parse_pcr_hex)]
    pub pcr4: Vec<Vec<u8>>,
    /// Allowed PCR8 values (image signing certificate), hex.
    #[arg(long = "pcr8", value_parser = attestation::parse_pcr_hex)]
    pub pcr8: Vec<Vec<u8>>,
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
    /// The manifest of the blobs confirmed copied off the instance (JSON `{"checked": SECS,
    /// "blobs": {NAME: SHA256_HEX}}`, written by the deployment's blob sync once S3 holds each
    /// exact content), which `GET /v1/backups` compares every blob with.
    #[arg(long, env = "COHORT_PROXY_BACKUP_MANIFEST", requires = "blob_dir")]
    pub backup_manifest: Option<PathBuf>,
    /// Where the enclave reaches the proxy for KMS calls: vsock:any:PORT in production (the
    /// enclave connects to CID 3), unix:PATH or tcp:HOST:PORT in simulated mode.
    #[arg(long, env = "COHORT_PROXY_KMS_LISTEN", requires = "kms_key_id")]
    pub kms_listen: Option<Endpoint>,
    /// This node's KMS key (id or ARN), whose policy admits only the enclave's measurements.
    #[arg(long, env = "COHORT_PROXY_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// Where the enclave's KMS tunnel connects, HOST:PORT, instead of
    /// `kms.<region>.amazonaws.com:443` (the local stand-in's HTTPS port in simulated mode). The
    /// enclave checks KMS's certificate itself: this changes where bytes go, not whom it trusts.
    #[arg(long, env = "COHORT_PROXY_KMS_TUNNEL_TO")]
    pub kms_tunnel_to: Option<String>,
    /// Region for the AWS credential chain (default: the AWS SDK's region chain).
    #[arg(long, env = "COHORT_PROXY_KMS_REGION")]
    pub kms_region: Option<String>,
    /// Where the enclave sends its log records (its `--log-to`): vsock:any:PORT in production,
    /// unix:PATH or tcp:HOST:PORT in simulated mode. Each becomes a line of this proxy's
    /// standard output, `{"source":"enclave","record":{...}}`.
    #[arg(long, env = "COHORT_PROXY_ENCLAVE_LOG_LISTEN")]
    pub enclave_log_listen: Option<Endpoint>,
    /// Log as JSON lines.
    #[arg(long, env = "COHORT_LOG_JSON")]
    pub log_json: bool,
}

impl Config {
    /// The verification policy (the nonce is set per attestation).
    pub fn policy(&self) -> Result<Policy, String> {
        self.attestation.policy(
            &[(3, &self.pcr3), (4, &self.pcr4), (8, &self.pcr8)],
            Duration::from_secs(self.max_age_secs),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_policy_flags_keep_their_environment_variables() {
        let command = Config::command();
        let env = |id: &str| {
            command
                .get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        assert_eq!(env("root").as_deref(), Some("COHORT_PROXY_ROOT"));
        assert_eq!(
            env("measurements").as_deref(),
            Some("COHORT_PROXY_MEASUREMENTS")
        );
    }
}
