//! Coordinator configuration: flags or environment variables, one struct.

use std::path::PathBuf;
use std::time::Duration;

use attestation::Policy;
use clap::Parser;
use host::PolicyArgs;

use crate::chains::ChainSettings;
use crate::service::Settings;
use crate::store::{PostgresTls, TlsMode};

/// `cohort-coordinator` configuration.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "cohort-coordinator",
    version,
    about = "Cohort coordinator",
    mut_arg("root", |a| a.env("COHORT_COORDINATOR_ROOT")),
    mut_arg("measurements", |a| a.env("COHORT_COORDINATOR_MEASUREMENTS"))
)]
pub struct Config {
    /// HTTP listen address (port 0 picks a free port; see --addr-file).
    #[arg(
        long,
        env = "COHORT_COORDINATOR_LISTEN",
        default_value = "127.0.0.1:7000"
    )]
    pub listen: String,
    /// Write the bound address into this file once listening.
    #[arg(long, env = "COHORT_COORDINATOR_ADDR_FILE")]
    pub addr_file: Option<PathBuf>,
    /// Base URL of node I's parent proxy (repeat, in node order).
    #[arg(long = "proxy", required_unless_present = "store_grant")]
    pub proxies: Vec<String>,
    /// Storage: sqlite:PATH or postgres://... (default: sqlite in --data-dir). PostgreSQL is
    /// reached over TLS (see --store-tls). Its value (a URL may hold a password) is never shown
    /// by --help.
    #[arg(long, env = "COHORT_COORDINATOR_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// TLS to PostgreSQL. `require`: TLS only, the server's certificate checked (its host name,
    /// and a chain to --store-ca or the system's roots); a server without TLS is refused.
    /// `disable`: plaintext, logged as a warning; only for a database on a path nobody else
    /// shares (a local test server).
    #[arg(
        long,
        env = "COHORT_COORDINATOR_STORE_TLS",
        value_enum,
        default_value_t = TlsMode::Require
    )]
    pub store_tls: TlsMode,
    /// PEM file of the roots PostgreSQL's certificate must chain to (on AWS, the RDS CA bundle);
    /// without it, the system's roots.
    #[arg(long, env = "COHORT_COORDINATOR_STORE_CA", value_name = "FILE")]
    pub store_ca: Option<PathBuf>,
    /// Instead of serving: apply the store's migrations, make ROLE the coordinator's own
    /// PostgreSQL role (made if absent; usage of the schema and exactly the rights it needs on
    /// each table, the audit log append-only, no schema change), and exit. Run as the schema's
    /// owner; coordinators then connect as ROLE (docs/operator-guide.md, "The database").
    #[arg(long, value_name = "ROLE")]
    pub store_grant: Option<String>,
    /// With --store-grant: ROLE logs in with RDS IAM authentication tokens (`rds_iam`).
    #[arg(long, requires = "store_grant")]
    pub store_grant_iam: bool,
    /// Directory for the default SQLite database.
    #[arg(
        long,
        env = "COHORT_COORDINATOR_DATA_DIR",
        default_value = "./coordinator-data"
    )]
    pub data_dir: PathBuf,
    /// The attestation policy: root, PCR0-2, measurements files, debug mode.
    #[command(flatten)]
    pub attestation: PolicyArgs,
    /// Ready presignatures to keep per ECDSA key, path and quorum (0 disables pools).
    #[arg(long, default_value_t = 4)]
    pub pool_level: u32,
    /// Derivation paths the pools serve, like m/0/0 (repeat; default: the key itself, m).
    #[arg(long = "pool-path", value_parser = crate::api::parse_path)]
    pub pool_paths: Vec<Vec<u32>>,
    /// Presignature sessions each node runs at once while pools refill (0: one per worker
    /// thread the node's enclave reports, that is one per vCPU by default).
    #[arg(long, default_value_t = 0)]
    pub refill_sessions: usize,
    /// Refills wait while live signing requests run (the behaviour before issue 22, when an
    /// enclave computed one request at a time; kept for comparison: docs/benchmarks.md).
    #[arg(long)]
    pub refill_yield: bool,
    /// Time limit of one signing round at one enclave, milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub sign_round_timeout_ms: u64,
    /// Time limit of one round of key generation, auxiliary info or presigning, seconds.
    #[arg(long, default_value_t = 300)]
    pub setup_round_timeout_secs: u64,
    /// Time one signing request may take in all, failover included, milliseconds (at most
    /// 30 minutes: its session ids must expire within the hour enclaves accept).
    #[arg(long, default_value_t = 30_000)]
    pub sign_deadline_ms: u64,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = crate::http::DEFAULT_MAX_BODY)]
    pub max_body_bytes: usize,
    /// Node health check interval, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub health_interval_ms: u64,
    /// How often keys are checked for a due scheduled refresh, and for a resharing left
    /// unfinished, seconds.
    #[arg(long, default_value_t = 30)]
    pub schedule_interval_secs: u64,
    /// How long a resharing may stay unfinished before the coordinator resolves it by itself,
    /// seconds (far longer than a resharing takes: a resolution of one under way fails it).
    #[arg(long, default_value_t = 1800)]
    pub resolve_after_secs: u64,
    /// JSON-RPC endpoint of a chain, `CHAIN[:NETWORK]=URL` (repeat): the prepare endpoint
    /// fetches EVM nonces and fees and Solana blockhashes from it.
    #[arg(long = "rpc", value_parser = crate::chains::parse_rpc)]
    pub rpc: Vec<(String, String)>,
    /// More EVM chains: a TOML file in the format of adapters/src/evm_chains.toml.
    #[arg(long)]
    pub evm_chains: Option<PathBuf>,
    /// An admin credential to register at start, unless one of that name exists (repeat): a
    /// JSON file `{"credential", "public_key"}` (`cohort credential new` writes one). The first
    /// admin of a new deployment comes from here; the others are registered through the API.
    #[arg(
        long = "admin-key",
        env = "COHORT_COORDINATOR_ADMIN_KEY",
        value_name = "FILE"
    )]
    pub admin_keys: Vec<PathBuf>,
    /// RabbitMQ (issue 21): `amqp://` or `amqps://` (TLS, checked against the system's roots)
    /// URL of a broker to take requests from and publish events to; off without it. Its value
    /// (it may hold a password) is never shown by --help or logged.
    #[arg(long, env = "COHORT_COORDINATOR_AMQP", hide_env_values = true)]
    pub amqp: Option<String>,
    /// The durable queue requests are taken from.
    #[arg(
        long,
        env = "COHORT_COORDINATOR_AMQP_QUEUE",
        default_value = "cohort.requests"
    )]
    pub amqp_queue: String,
    /// The durable queue refused requests go to, with their reason (default: the intake
    /// queue's name and `.dead`).
    #[arg(long, env = "COHORT_COORDINATOR_AMQP_DEAD_LETTER_QUEUE")]
    pub amqp_dead_letter_queue: Option<String>,
    /// The durable topic exchange events are published to.
    #[arg(
        long,
        env = "COHORT_COORDINATOR_AMQP_EXCHANGE",
        default_value = "cohort.events"
    )]
    pub amqp_exchange: String,
    /// Requests each coordinator takes from the queue at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub amqp_prefetch: u16,
    /// Oldest request message accepted, seconds since its signature (a message may wait in the
    /// queue; its idempotency key, not a nonce, makes a replay harmless).
    #[arg(long, default_value_t = 3600)]
    pub amqp_max_age_secs: u64,
    /// How long events stay in the outbox, seconds: those the broker confirmed, and those no
    /// broker took in all that time (with no `--amqp` on any coordinator sharing the store).
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    pub outbox_retention_secs: u64,
    /// Log as JSON lines.
    #[arg(long, env = "COHORT_LOG_JSON")]
    pub log_json: bool,
}

/// The longest `--amqp-max-age-secs` (a week).
pub const MAX_AMQP_AGE_SECS: u64 = 7 * 24 * 3600;

/// The longest `--sign-deadline-ms` (30 minutes).
pub const MAX_SIGN_DEADLINE_MS: u64 = 30 * 60 * 1000;

impl Config {
    /// The attestation policy nodes must satisfy (the nonce is set per attestation).
    pub fn policy(&self) -> Result<Policy, String> {
        self.attestation.policy(&[], Duration::from_secs(60))
    }

    /// The `--admin-key` files' credentials.
    pub fn admin_keys(&self) -> Result<Vec<crate::api::PublicCredential>, String> {
        self.admin_keys
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| format!("--admin-key {}: {e}", f.display()))?;
                let c: crate::api::PublicCredential = serde_json::from_str(&text).map_err(|e| {
                    format!(
                        "--admin-key {}: not {{\"credential\", \"public_key\"}} JSON: {e}",
                        f.display()
                    )
                })?;
                crate::service::check_public_credential(&c)
                    .map_err(|e| format!("--admin-key {}: {}", f.display(), e.message))?;
                Ok(c)
            })
            .collect()
    }

    /// The broker, when `--amqp` names one.
    pub fn broker(&self) -> Result<Option<crate::broker::BrokerConfig>, String> {
        let Some(url) = self.amqp.clone() else {
            return Ok(None);
        };
        if !url.starts_with("amqp://") && !url.starts_with("amqps://") {
            return Err(format!(
                "--amqp {}: expected an amqp:// or amqps:// URL",
                crate::broker::redact(&url)
            ));
        }
        let dead_letter = self
            .amqp_dead_letter_queue
            .clone()
            .unwrap_or_else(|| format!("{}.dead", self.amqp_queue));
        if dead_letter == self.amqp_queue {
            return Err(
                "--amqp-dead-letter-queue: the intake queue itself (refused messages would be \
                 taken again)"
                    .into(),
            );
        }
        if self.amqp_max_age_secs > MAX_AMQP_AGE_SECS {
            return Err(format!(
                "--amqp-max-age-secs {}: at most {MAX_AMQP_AGE_SECS} (a week)",
                self.amqp_max_age_secs
            ));
        }
        Ok(Some(crate::broker::BrokerConfig {
            url,
            dead_letter,
            queue: self.amqp_queue.clone(),
            exchange: self.amqp_exchange.clone(),
            prefetch: self.amqp_prefetch,
            max_age: self.amqp_max_age_secs,
            max_body: self.max_body_bytes,
        }))
    }

    /// The store URL.
    pub fn store_url(&self) -> String {
        self.store
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("coordinator.db").display()))
    }

    /// How the store reaches PostgreSQL (--store-tls, --store-ca).
    pub fn store_tls(&self) -> PostgresTls {
        PostgresTls {
            mode: self.store_tls,
            ca_file: self.store_ca.clone(),
        }
    }

    /// The service settings (fails when the EVM chain file does not load).
    pub fn settings(&self) -> Result<Settings, String> {
        let mut registry = adapters::Registry::builtin();
        if let Some(f) = &self.evm_chains {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("--evm-chains {}: {e}", f.display()))?;
            registry = registry
                .with_evm_chains(&text)
                .map_err(|e| format!("--evm-chains {}: {e}", f.display()))?;
        }
        if self.sign_deadline_ms > MAX_SIGN_DEADLINE_MS {
            return Err(format!(
                "--sign-deadline-ms {}: at most {MAX_SIGN_DEADLINE_MS} (30 minutes): a signing \
                 attempt's session id expires {} s after the request's lease, and enclaves \
                 refuse ids expiring more than {} s ahead",
                self.sign_deadline_ms,
                crate::nodes::SESSION_ID_LIFETIME_SECS,
                protocol::session::MAX_SESSION_ID_LIFETIME_SECS
            ));
        }
        Ok(Settings {
            sign_round_timeout: Duration::from_millis(self.sign_round_timeout_ms.max(50)),
            setup_round_timeout: Duration::from_secs(self.setup_round_timeout_secs.max(1)),
            sign_deadline: Duration::from_millis(self.sign_deadline_ms.max(100)),
            pool_level: self.pool_level,
            refill_sessions: self.refill_sessions,
            refill_yield: self.refill_yield,
            pool_paths: if self.pool_paths.is_empty() {
                vec![vec![]]
            } else {
                self.pool_paths.clone()
            },
            health_interval: Duration::from_millis(self.health_interval_ms.max(50)),
            schedule_interval: Duration::from_secs(self.schedule_interval_secs.max(1)),
            resolve_after: Duration::from_secs(self.resolve_after_secs.max(1)),
            outbox_retention: Duration::from_secs(self.outbox_retention_secs.max(60)),
            chains: ChainSettings {
                registry,
                rpc: self.rpc.iter().cloned().collect(),
            },
            ..Settings::default()
        })
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(env("root").as_deref(), Some("COHORT_COORDINATOR_ROOT"));
        assert_eq!(
            env("measurements").as_deref(),
            Some("COHORT_COORDINATOR_MEASUREMENTS")
        );
    }

    #[test]
    fn postgres_tls_is_required_unless_disabled_explicitly() {
        let base = [
            "cohort-coordinator",
            "--proxy",
            "http://p",
            "--pcr0",
            &"00".repeat(48),
        ];
        let config = Config::try_parse_from(base).unwrap();
        assert_eq!(config.store_tls(), PostgresTls::require(None));
        let config =
            Config::try_parse_from(base.iter().copied().chain(["--store-tls", "disable"])).unwrap();
        assert_eq!(config.store_tls(), PostgresTls::disabled());
        let config =
            Config::try_parse_from(base.iter().copied().chain(["--store-ca", "/etc/rds.pem"]))
                .unwrap();
        assert_eq!(
            config.store_tls(),
            PostgresTls::require(Some("/etc/rds.pem".into()))
        );
        assert!(
            Config::try_parse_from(base.iter().copied().chain(["--store-tls", "prefer"])).is_err()
        );
        // --help never prints the store URL from the environment (it may hold a password).
        let command = Config::command();
        let store = command.get_arguments().find(|a| a.get_id() == "store");
        assert!(store.is_some_and(|a| a.is_hide_env_values_set()));
    }

    /// A signing deadline longer than session ids may live is refused with the reason.
    #[test]
    fn a_sign_deadline_beyond_thirty_minutes_is_refused() {
        let config = |ms: u64| {
            Config::try_parse_from([
                "cohort-coordinator",
                "--proxy",
                "http://127.0.0.1:1",
                "--pcr0",
                &"ab".repeat(48),
                "--sign-deadline-ms",
                &ms.to_string(),
            ])
            .unwrap()
        };
        assert!(config(MAX_SIGN_DEADLINE_MS).settings().is_ok());
        let e = config(MAX_SIGN_DEADLINE_MS + 1).settings().unwrap_err();
        assert!(e.contains("--sign-deadline-ms"), "{e}");
    }
}
