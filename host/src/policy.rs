//! The attestation-policy flags of the binaries that verify enclaves (the parent proxy and the
//! coordinator), flattened into each one's configuration.

use std::path::PathBuf;
use std::time::Duration;

use attestation::Policy;
use clap::Args;

/// `--root`, `--pcr0`..`--pcr2`, `--measurements`, `--allow-debug`.
///
/// Each binary names its own environment variables for `--root` and `--measurements` with
/// `#[command(mut_arg("root", |a| a.env("..."))]`.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// PEM of the root to pin instead of the AWS Nitro root (simulated mode: the simulated root).
    #[arg(long)]
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
    /// The enclave image's measurements file (eif-build's measurements.json or `nitro-cli
    /// describe-eif` output): allows its PCR0, PCR1, PCR2 (and PCR8). Repeat during an image
    /// rotation. Adds to the --pcrN flags.
    #[arg(long = "measurements")]
    pub measurements: Vec<PathBuf>,
    /// Accept a debug-mode enclave (all-zero PCRs). Never in production.
    #[arg(long)]
    pub allow_debug: bool,
}

impl PolicyArgs {
    /// The verification policy (the nonce is set per attestation): these flags, the binary's
    /// further PCR flags `more_pcrs`, documents at most `max_age` old.
    pub fn policy(
        &self,
        more_pcrs: &[(usize, &Vec<Vec<u8>>)],
        max_age: Duration,
    ) -> Result<Policy, String> {
        let mut pcrs = vec![(0, &self.pcr0), (1, &self.pcr1), (2, &self.pcr2)];
        pcrs.extend_from_slice(more_pcrs);
        Policy::configured(
            self.root.as_deref(),
            &pcrs,
            &self.measurements,
            self.allow_debug,
            max_age,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(mut_arg("root", |a| a.env("HOST_TEST_ROOT")))]
    struct Binary {
        #[command(flatten)]
        policy: PolicyArgs,
    }

    #[test]
    fn pcr0_or_measurements_is_required_and_env_names_are_the_binarys() {
        assert!(Binary::try_parse_from(["b"]).is_err());
        let hex = "ab".repeat(48);
        let b = Binary::try_parse_from(["b", "--pcr0", &hex, "--allow-debug"]).unwrap();
        assert_eq!(b.policy.pcr0, vec![vec![0xab; 48]]);
        assert!(b.policy.allow_debug);
        let command = <Binary as clap::CommandFactory>::command();
        let root = command
            .get_arguments()
            .find(|a| a.get_id() == "root")
            .unwrap();
        assert_eq!(root.get_env().unwrap(), "HOST_TEST_ROOT");
    }
}
