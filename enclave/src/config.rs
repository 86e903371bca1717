//! The enclave's configuration: flags or environment variables, one struct.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use protocol::Endpoint;

use crate::node::Background;

/// Which NSM and which kind of socket the enclave uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Inside a Nitro Enclave: `/dev/nsm` and vsock.
    Production,
    /// On any Linux machine: the simulated NSM and Unix or TCP sockets.
    Simulated,
}

/// Cohort threshold-signing enclave.
#[derive(Debug, Clone, Parser)]
#[command(name = "cohort-enclave", version)]
pub struct Config {
    /// Production (Nitro Enclave) or simulated mode.
    #[arg(
        long,
        env = "COHORT_ENCLAVE_MODE",
        value_enum,
        default_value = "production"
    )]
    pub mode: Mode,
    /// Where to listen: vsock:any:PORT in production, unix:PATH or tcp:HOST:PORT in simulated mode.
    #[arg(long, env = "COHORT_ENCLAVE_LISTEN", default_value = "vsock:any:5005")]
    pub listen: Endpoint,
    /// The parent proxy's KMS channel, where sealing requests go: vsock:3:PORT in production
    /// (CID 3 is the parent), unix:PATH or tcp:HOST:PORT in simulated mode. Without it the
    /// enclave boots and attests but cannot seal or unseal.
    #[arg(long, env = "COHORT_ENCLAVE_PARENT")]
    pub parent: Option<Endpoint>,
    /// Simulated mode: directory of the simulated CA (root.pem, intermediate.pem, intermediate.key.pem).
    #[arg(long, env = "COHORT_SIM_CA")]
    pub sim_ca: Option<PathBuf>,
    /// Simulated mode: the module id reported in attestation documents.
    #[arg(long, env = "COHORT_SIM_MODULE_ID")]
    pub module_id: Option<String>,
    /// Simulated mode: the IAM role ARN of the simulated parent instance; documents report its
    /// PCR3 as Nitro measures it (zero without).
    #[arg(long, env = "COHORT_SIM_PARENT_ROLE")]
    pub sim_parent_role: Option<String>,
    /// Test builds only (feature `test-fixtures`): load committed safe primes number N instead
    /// of generating them. Absent from production builds.
    #[cfg(feature = "test-fixtures")]
    #[arg(long)]
    pub fixture_primes: Option<usize>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "COHORT_LOG_JSON")]
    pub log_json: bool,
    /// Where the log records also go, a JSON line each (`enclave::logship`): the parent
    /// proxy's `--enclave-log-listen`, vsock:3:PORT in production, unix:PATH or tcp:HOST:PORT
    /// in simulated mode. Without it the records go to standard output only, which is the
    /// console of a production enclave and shown by nothing but a debug-mode one.
    #[arg(long, env = "COHORT_ENCLAVE_LOG_TO")]
    pub log_to: Option<Endpoint>,
    /// Worker threads for background protocol work (presignatures, auxiliary information, key
    /// generation, full ECDSA signing). Default: one per CPU the enclave has.
    #[arg(long, env = "COHORT_ENCLAVE_WORKERS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
    /// How the background worker threads yield the CPU to the online path: `idle`
    /// (`SCHED_IDLE`, the default in production, where the enclave's vCPUs run nothing else) or
    /// `nice` (nice 10, the default in simulated mode, where the machine is shared).
    #[arg(long, env = "COHORT_ENCLAVE_BACKGROUND", value_enum)]
    pub background: Option<Background>,
}

impl Config {
    /// How the background lane yields: as configured, or the mode's default.
    pub fn background(&self) -> Background {
        self.background.unwrap_or(match self.mode {
            Mode::Production => Background::Idle,
            Mode::Simulated => Background::Nice,
        })
    }

    /// Checks combinations clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        match self.mode {
            Mode::Production => {
                if !matches!(self.listen, Endpoint::Vsock { .. }) {
                    return Err("production mode listens on vsock only".into());
                }
                if self
                    .parent
                    .as_ref()
                    .is_some_and(|p| !matches!(p, Endpoint::Vsock { cid: Some(_), .. }))
                {
                    return Err("production mode reaches its parent on vsock:3:PORT only".into());
                }
                if self
                    .log_to
                    .as_ref()
                    .is_some_and(|p| !matches!(p, Endpoint::Vsock { cid: Some(_), .. }))
                {
                    return Err("production mode sends its logs to vsock:3:PORT only".into());
                }
                if self.sim_ca.is_some()
                    || self.module_id.is_some()
                    || self.sim_parent_role.is_some()
                {
                    return Err(
                        "--sim-ca, --module-id and --sim-parent-role belong to simulated mode"
                            .into(),
                    );
                }
            }
            Mode::Simulated => {
                if matches!(self.listen, Endpoint::Vsock { .. }) {
                    return Err("simulated mode listens on unix:PATH or tcp:HOST:PORT".into());
                }
                if self.sim_ca.is_none() {
                    return Err("simulated mode needs --sim-ca DIR".into());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Background, Config};

    /// A production image passes no `--background` (`eif-build/build.sh`): it idles.
    #[test]
    fn the_background_lane_idles_in_production_and_is_nice_in_simulated_mode() {
        let background = |args: &[&str]| {
            Config::try_parse_from([&["cohort-enclave"][..], args].concat())
                .unwrap()
                .background()
        };
        assert_eq!(background(&["--mode", "production"]), Background::Idle);
        assert_eq!(background(&["--mode", "simulated"]), Background::Nice);
        assert_eq!(
            background(&["--mode", "production", "--background", "nice"]),
            Background::Nice
        );
        assert_eq!(
            background(&["--mode", "simulated", "--background", "idle"]),
            Background::Idle
        );
    }
}
