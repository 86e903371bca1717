//! What the coordinator does: genesis, key creation, signing with quorum choice and failover,
//! idempotent requests, presignature pools, and the background tasks that keep node health,
//! pools and interrupted requests in order.
//!
//! The coordinator checks requests (shape, validity window, approvals) before it bothers the
//! enclaves, so bad requests are refused cheaply and change nothing; the enclaves check the same
//! things again themselves (with the same rules, [`protocol::policy`]), because the coordinator
//! is not trusted.
//!
//! One concern per module: [`genesis`](self) (cluster set-up), `admins` (the admin set in force
//! and its changes), `images` (the enclave images accepted and their changes; what the two
//! kinds of change share is `changes`), `keys`, `signing`, `failover` (quorum choice and one
//! attempt), `ledger` (idempotency records and their leases), `pools`, `background`, `checks`
//! (early refusals) and `crypto` (derivation and signature checks).

mod admins;
mod background;
mod backups;
mod changes;
mod checks;
mod credentials;
mod crypto;
mod failover;
mod genesis;
mod images;
mod import;
mod keys;
mod ledger;
mod pools;
mod recover;
mod reshare;
mod roster;
mod schedule;
mod signing;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::api::{ApiError, ErrorCode, GenesisBody};
use crate::metrics::{Gauges, Metrics, NodeGauge};
use crate::nodes::Nodes;
use crate::store::{ClusterState, KeyRow, Store, StoreError};
use failover::quorum_string;

pub use credentials::{BOOTSTRAP, check_public_credential};
pub use crypto::{derive_public_key, verify_signature};
pub use failover::combinations;
pub use ledger::{StoredResponse, Ticket};

/// Tunables of the coordinator.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Time limit of one round of a signing session (per enclave call).
    pub sign_round_timeout: Duration,
    /// Time limit of one round of key generation, auxiliary info or presigning.
    pub setup_round_timeout: Duration,
    /// How long one signing request may take in all, failover included.
    pub sign_deadline: Duration,
    /// Presignatures to keep ready per ECDSA key, path and quorum (0: no pools).
    pub pool_level: u32,
    /// Derivation paths pools serve (the key's root `m` by default).
    pub pool_paths: Vec<Vec<u32>>,
    /// Presignature sessions each node runs at once while pools refill (0: one per worker
    /// thread the node reports).
    pub refill_sessions: usize,
    /// Whether refills wait while live signing requests run (off: the enclaves serve the
    /// online path beside background work, issue 22).
    pub refill_yield: bool,
    /// How often node health is checked.
    pub health_interval: Duration,
    /// How often each node is attested again.
    pub attest_interval: Duration,
    /// Chains and their JSON-RPC endpoints.
    pub chains: crate::chains::ChainSettings,
    /// How often keys are checked for a due scheduled refresh and for a resharing left
    /// unfinished.
    pub schedule_interval: Duration,
    /// How long a recorded resharing may stay unfinished before the background pass resolves
    /// it (longer than a resharing takes: it must not race one under way).
    pub resolve_after: Duration,
    /// How long events stay in the outbox (issue 21): sent or not, they go after this.
    pub outbox_retention: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sign_round_timeout: Duration::from_secs(5),
            setup_round_timeout: Duration::from_secs(300),
            sign_deadline: Duration::from_secs(30),
            pool_level: 4,
            pool_paths: vec![vec![]],
            refill_sessions: 0,
            refill_yield: false,
            health_interval: Duration::from_millis(1000),
            attest_interval: Duration::from_secs(10),
            chains: crate::chains::ChainSettings::default(),
            schedule_interval: Duration::from_secs(30),
            resolve_after: Duration::from_secs(30 * 60),
            outbox_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Most payloads one signing request may carry (the enclaves' limit).
pub const MAX_PAYLOADS: usize = protocol::policy::MAX_PAYLOADS;
/// Largest payload (EdDSA message, ECDSA preimage), bytes (the enclaves' limit).
pub const MAX_MESSAGE_LEN: usize = protocol::policy::MAX_PAYLOAD_LEN;

/// The time, Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn err(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}

/// The coordinator.
pub struct Coordinator {
    settings: Settings,
    nodes: Arc<Nodes>,
    store: Arc<Mutex<Store>>,
    metrics: Arc<Metrics>,
    live: AtomicUsize,
    /// When the last live signing request ended: refills wait for a quiet moment.
    last_live: Mutex<Instant>,
    rotation: AtomicUsize,
    /// Held shared by every refill session, and alone while a roster commit is recorded.
    presign_gate: tokio::sync::RwLock<()>,
    /// The refill sessions running (`service/pools.rs`).
    refilling: Mutex<pools::Refilling>,
    /// Woken when a refill session ends.
    refill_done: tokio::sync::Notify,
    /// Nodes the refiller leaves alone for a while (`limit`, `busy`).
    pool_backoff: Mutex<pools::PoolBackoff>,
    initialising: tokio::sync::Mutex<()>,
    ready_genesis: std::sync::OnceLock<GenesisBody>,
    key_cache: Mutex<std::collections::HashMap<String, (KeyRow, std::time::Instant)>>,
    /// Credentials as last read, briefly (`credentials::CREDENTIAL_CACHE_TTL`): a flood of
    /// calls under made-up or real names costs the store one read per name and second.
    credential_cache: Mutex<credentials::CredentialCache>,
    /// Keys whose scheduled refresh failed, left alone for a while (`schedule::Backoff`).
    schedule_backoff: Mutex<schedule::Backoff>,
    /// The broker, when `--amqp` names one (issue 21).
    broker: crate::broker::BrokerStatus,
    /// Signalled after store work that may have written events: the relay looks at once.
    outbox_signal: tokio::sync::Notify,
    /// Pools below half their level, reported by a `pool.low` event (key, path, quorum).
    low_pools: Mutex<std::collections::BTreeSet<(String, String, String)>>,
}

/// Keeps the count of live signing requests while alive.
struct Live<'a>(&'a AtomicUsize, &'a Mutex<Instant>);
impl Drop for Live<'_> {
    fn drop(&mut self) {
        *self.1.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How often a request waiting for a healthy quorum looks again.
pub const NO_QUORUM_POLL: Duration = Duration::from_millis(200);

/// How long after its lease ended an interrupted request is marked failed, if no client
/// resubmitted it meanwhile.
pub const STALE_GRACE: Duration = Duration::from_secs(60);

/// How long the coordinator must have had no live signing request before a refill starts.
pub const REFILL_QUIET: Duration = Duration::from_millis(250);

/// Most sessions one payload may take (failover included).
pub const MAX_ATTEMPTS: u32 = 16;

fn digest_hex(payload: &[u8]) -> String {
    hex::encode(Sha256::digest(payload))
}

impl Coordinator {
    /// Runs `work`, recording its duration and, if it fails, its error code under `op`.
    async fn measured<T>(
        &self,
        op: &'static str,
        work: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let started = Instant::now();
        let result = work.await;
        self.metrics.observe(op, started.elapsed());
        if let Err(e) = &result {
            self.metrics.failure(op, e.code.as_str());
        }
        result
    }

    /// A coordinator over `nodes` and `store`.
    pub fn new(settings: Settings, nodes: Arc<Nodes>, store: Store) -> Arc<Self> {
        Arc::new(Self {
            settings,
            nodes,
            store: Arc::new(Mutex::new(store)),
            metrics: Arc::new(Metrics::default()),
            live: AtomicUsize::new(0),
            last_live: Mutex::new(Instant::now()),
            rotation: AtomicUsize::new(0),
            presign_gate: tokio::sync::RwLock::new(()),
            refilling: Mutex::new(pools::Refilling::default()),
            refill_done: tokio::sync::Notify::new(),
            pool_backoff: Mutex::new(pools::PoolBackoff::default()),
            initialising: tokio::sync::Mutex::new(()),
            ready_genesis: std::sync::OnceLock::new(),
            key_cache: Mutex::new(std::collections::HashMap::new()),
            credential_cache: Mutex::new(Default::default()),
            schedule_backoff: Mutex::new(Default::default()),
            broker: Default::default(),
            outbox_signal: tokio::sync::Notify::new(),
            low_pools: Mutex::new(Default::default()),
        })
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Its metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Its nodes.
    pub fn nodes(&self) -> &Arc<Nodes> {
        &self.nodes
    }

    /// Its broker's status.
    pub fn broker(&self) -> &crate::broker::BrokerStatus {
        &self.broker
    }

    /// The broker's part of `/readyz`, when one is configured.
    pub async fn broker_readiness(&self) -> Option<crate::broker::BrokerReadiness> {
        if !self.broker.configured() {
            return None;
        }
        let level = self.outbox_level().await;
        self.broker.readiness(level, unix_now())
    }

    /// The outbox's backlog, read at most once a second (`/readyz` and `/metrics` need no
    /// credential: a flood of them costs the store one count a second).
    async fn outbox_level(&self) -> crate::store::OutboxLevel {
        if let Some(level) = self.broker.cached_level() {
            return level;
        }
        let level = self
            .db_quiet(|s| s.outbox_level())
            .await
            .unwrap_or_default();
        self.broker.cache_level(level);
        level
    }

    /// Runs `f` on the store, off the async threads; then wakes the outbox relay (what `f`
    /// wrote may have events).
    pub async fn db<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let r = self.db_quiet(f).await;
        self.outbox_signal.notify_one();
        r
    }

    /// Waits until store work may have written events (the relay's idle wait).
    pub async fn outbox_written(&self) {
        self.outbox_signal.notified().await;
    }

    /// [`Coordinator::db`] without waking the relay: the relay's own store work.
    pub async fn db_quiet<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut s)
        })
        .await
        .map_err(|e| err(ErrorCode::Internal, format!("store task: {e}")))?
        .map_err(ApiError::from)
    }

    /// Metrics text, with gauges read now.
    pub async fn render_metrics(&self) -> String {
        let pools = self
            .pool_levels()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.key_id, p.path, quorum_string(&p.quorum), p.ready))
            .collect();
        let nodes = self
            .nodes
            .status()
            .into_iter()
            .map(|n| NodeGauge {
                node: n.node,
                up: n.reachable,
                attested: n.attested,
                healthy: n.healthy,
                clock_skew_secs: n.clock_skew_secs,
            })
            .collect();
        let mut text = self.metrics.render(&Gauges {
            pools,
            nodes,
            live_requests: self.live.load(Ordering::SeqCst),
        });
        if self.broker.configured() {
            let level = self.outbox_level().await;
            text.push_str(&self.broker.render(level, unix_now()));
        }
        text
    }

    /// Signing requests in flight.
    pub fn live_requests(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Whether the coordinator can serve signing: store reachable, cluster ready, and enough
    /// healthy nodes for the smallest threshold (2).
    pub async fn ready(&self) -> Result<(), String> {
        let g = self.genesis_status().await.map_err(|e| e.message)?;
        if g.state != ClusterState::Ready.as_str() {
            return Err(format!("cluster {}: {}", g.state, g.detail));
        }
        let healthy = self.nodes.healthy_nodes().len();
        if healthy < 2 {
            return Err(format!("{healthy} healthy node(s)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::api::ErrorCode;

    #[test]
    fn retryable_codes() {
        assert!(ErrorCode::NoQuorum.retryable());
        assert!(!ErrorCode::Refused.retryable());
        assert!(!ErrorCode::Interrupted.retryable());
    }
}
