//! What the coordinator does: genesis, key creation, signing with quorum choice and failover,
//! idempotent requests, presignature pools, and the background tasks that keep node health,
//! pools and interrupted requests in order.
//!
//! The coordinator checks requests (shape, validity window, approvals) before it bothers the
//! enclaves, so bad requests are refused cheaply and change nothing; the enclaves check the same
//! things again themselves, because the coordinator is not trusted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::Verifier;
use protocol::policy::{
    Approval, Approved, Canonical, CreateKey, MAX_CLOCK_SKEW_SECS, MAX_REQUEST_VALIDITY_SECS,
    REQUEST_ID_LEN, REQUEST_VERSION, Scheme, SignRequest,
};
use protocol::session::{FailureCode, Outcome, SessionKind, key_receipt_message};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::api::{
    ApiError, ApprovedJson, CreateKeyJson, ErrorCode, GenesisJson, GenesisStatus, Hex, KeyInfo,
    PolicyJson, PoolLevel, PresignatureUse, SignRequestJson, SignResult, SignatureInfo, Wire,
    path_string,
};
use crate::audit::AuditEntry;
use crate::metrics::{Gauges, Metrics};
use crate::nodes::{NodeEvent, Nodes, new_session_id, run_session, run_session_yielding};
use crate::store::{Begin, ClusterRow, KeyRow, PresigRow, Store, StoreError};

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
    /// How often node health is checked.
    pub health_interval: Duration,
    /// How often each node is attested again.
    pub attest_interval: Duration,
    /// Chains and their JSON-RPC endpoints.
    pub chains: crate::chains::ChainSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sign_round_timeout: Duration::from_secs(5),
            setup_round_timeout: Duration::from_secs(300),
            sign_deadline: Duration::from_secs(30),
            pool_level: 4,
            pool_paths: vec![vec![]],
            health_interval: Duration::from_millis(1000),
            attest_interval: Duration::from_secs(10),
            chains: crate::chains::ChainSettings::default(),
        }
    }
}

/// Most payloads one signing request may carry.
pub const MAX_PAYLOADS: usize = 64;
/// Largest EdDSA message, bytes.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn err(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}

/// A response as an idempotency record stores it: status and body, replayed exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: serde_json::Value,
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
    presign_gate: tokio::sync::Mutex<()>,
    initialising: tokio::sync::Mutex<()>,
    ready_genesis: std::sync::OnceLock<ApprovedJson<GenesisJson>>,
    key_cache: Mutex<std::collections::HashMap<String, KeyRow>>,
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

fn check_approvals<T: Canonical>(
    request: &T,
    approvals: &[Approval],
    allowed: &[Vec<u8>],
    needed: u16,
) -> Result<Vec<String>, ApiError> {
    let message = request.canonical_bytes();
    let mut seen = BTreeSet::new();
    for a in approvals {
        if !allowed
            .iter()
            .any(|k| k.as_slice() == a.approver.as_slice())
        {
            return Err(err(
                ErrorCode::Unapproved,
                format!(
                    "{} is not an approver of this request",
                    hex::encode(&a.approver)
                ),
            ));
        }
        let key: [u8; 32] = a
            .approver
            .as_slice()
            .try_into()
            .map_err(|_| err(ErrorCode::Unapproved, "an approver key is not 32 bytes"))?;
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| {
            err(
                ErrorCode::Unapproved,
                "an approver key is not a valid point",
            )
        })?;
        let sig = ed25519_dalek::Signature::from_slice(&a.signature).map_err(|_| {
            err(
                ErrorCode::Unapproved,
                "an approval signature is not 64 bytes",
            )
        })?;
        vk.verify_strict(&message, &sig).map_err(|_| {
            err(
                ErrorCode::Unapproved,
                format!(
                    "the approval of {} does not sign this request",
                    hex::encode(&a.approver)
                ),
            )
        })?;
        seen.insert(a.approver.to_vec());
    }
    if seen.len() < usize::from(needed) {
        return Err(err(
            ErrorCode::Unapproved,
            format!("{} distinct approvals, {needed} needed", seen.len()),
        ));
    }
    Ok(seen.into_iter().map(hex::encode).collect())
}

fn check_window(created: u64, expiry: u64, now: u64) -> Result<(), ApiError> {
    if expiry <= created || expiry - created > MAX_REQUEST_VALIDITY_SECS {
        return Err(err(
            ErrorCode::InvalidRequest,
            format!("a request is valid for at most {MAX_REQUEST_VALIDITY_SECS} s"),
        ));
    }
    if now >= expiry {
        return Err(err(ErrorCode::RequestExpired, "the request has expired"));
    }
    if created > now + MAX_CLOCK_SKEW_SECS {
        return Err(err(
            ErrorCode::RequestExpired,
            "the request was made in the future",
        ));
    }
    Ok(())
}

fn keys_of(hexes: &[Hex], what: &str) -> Result<Vec<Vec<u8>>, ApiError> {
    hexes
        .iter()
        .map(|h| {
            if h.0.len() != 32 {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    format!("{what} keys are 32-byte Ed25519 public keys"),
                ));
            }
            ed25519_dalek::VerifyingKey::from_bytes(&h.0.clone().try_into().unwrap_or([0; 32]))
                .map_err(|_| {
                    err(
                        ErrorCode::InvalidRequest,
                        format!("a {what} key is not a valid point"),
                    )
                })?;
            Ok(h.0.clone())
        })
        .collect()
}

/// All `k`-subsets of `nodes`, in order.
pub fn combinations(nodes: &[u16], k: usize) -> Vec<Vec<u16>> {
    fn go(nodes: &[u16], k: usize, start: usize, cur: &mut Vec<u16>, out: &mut Vec<Vec<u16>>) {
        if cur.len() == k {
            out.push(cur.clone());
            return;
        }
        for i in start..nodes.len() {
            cur.push(nodes[i]);
            go(nodes, k, i + 1, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    if k > 0 && k <= nodes.len() {
        go(nodes, k, 0, &mut Vec::new(), &mut out);
    }
    out
}

fn quorum_string(q: &[u16]) -> String {
    q.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

fn parse_quorum(q: &str) -> Vec<u16> {
    q.split(',').filter_map(|n| n.parse().ok()).collect()
}

/// Derives the non-hardened BIP32 child public key of an ECDSA key.
pub fn derive_public_key(
    master: &[u8],
    chain_code: &[u8],
    path: &[u32],
) -> Result<Vec<u8>, String> {
    let chain_code: [u8; 32] = chain_code
        .try_into()
        .map_err(|_| "chain code is not 32 bytes".to_string())?;
    let attrs = bip32::ExtendedKeyAttrs {
        depth: 0,
        parent_fingerprint: [0; 4],
        child_number: bip32::ChildNumber(0),
        chain_code,
    };
    let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(master).map_err(|e| e.to_string())?;
    let mut xpub = bip32::XPub::new(vk, attrs);
    for i in path {
        let child = bip32::ChildNumber::new(*i, false).map_err(|e| e.to_string())?;
        xpub = xpub.derive_child(child).map_err(|e| e.to_string())?;
    }
    Ok(xpub.public_key().to_encoded_point(true).as_bytes().to_vec())
}

/// Verifies a signature the enclaves returned against the key the coordinator expects.
pub fn verify_signature(
    scheme: Scheme,
    public_key: &[u8],
    payload: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    match scheme {
        Scheme::EcdsaSecp256k1 => {
            use k256::ecdsa::signature::hazmat::PrehashVerifier;
            let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
                .map_err(|e| e.to_string())?;
            let sig = k256::ecdsa::Signature::from_slice(signature).map_err(|e| e.to_string())?;
            if sig.normalize_s().is_some() {
                return Err("signature s is not low".into());
            }
            vk.verify_prehash(payload, &sig).map_err(|e| e.to_string())
        }
        Scheme::EddsaEd25519 => {
            let key: [u8; 32] = public_key
                .try_into()
                .map_err(|_| "public key is not 32 bytes".to_string())?;
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|e| e.to_string())?;
            let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|e| e.to_string())?;
            vk.verify_strict(payload, &sig).map_err(|e| e.to_string())
        }
    }
}

fn key_info(row: &KeyRow) -> Result<KeyInfo, ApiError> {
    Ok(KeyInfo {
        key_id: row.key_id.clone(),
        scheme: row
            .scheme
            .parse()
            .map_err(|e: String| err(ErrorCode::Storage, e))?,
        threshold: row.threshold,
        public_key: Hex(row.public_key.clone()),
        chain_code: row.chain_code.clone().map(Hex),
        policy: serde_json::from_str(&row.policy)
            .map_err(|e| err(ErrorCode::Storage, format!("stored policy: {e}")))?,
        created: row.created,
    })
}

fn digest_hex(payload: &[u8]) -> String {
    hex::encode(Sha256::digest(payload))
}

/// Most sessions one payload may take (failover included).
pub const MAX_ATTEMPTS: u32 = 16;

/// Who runs a signing request: its idempotency key and the lease it holds it under. Session ids
/// derive from it, so a coordinator taking over an interrupted request can abort the sessions
/// its predecessor left at the enclaves (releasing the request there) before signing again.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The idempotency key.
    pub idem: String,
    /// The lease (Unix seconds) the request is held under.
    pub lease: u64,
}

impl Ticket {
    /// The session id of attempt `attempt` at payload `payload`.
    pub fn session(&self, payload: u16, attempt: u32) -> ByteBuf {
        let mut h = Sha256::new();
        h.update(b"cohort/sign-session/v1\0");
        h.update((self.idem.len() as u32).to_be_bytes());
        h.update(self.idem.as_bytes());
        h.update(self.lease.to_be_bytes());
        h.update(payload.to_be_bytes());
        h.update(attempt.to_be_bytes());
        ByteBuf::from(h.finalize().to_vec())
    }
}

/// One payload's signing attempt ended.
enum Attempt {
    Signed(SignatureInfo),
    /// Try again (with another quorum, or without the presignature).
    Retry {
        /// Nodes not to use again for this payload.
        exclude: Vec<u16>,
        /// Nodes that misbehaved or did not answer: left out of every quorum for a while.
        suspend: Vec<u16>,
        why: String,
    },
    /// Stop: retrying cannot help.
    Fatal(ApiError),
}

impl Coordinator {
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
            presign_gate: tokio::sync::Mutex::new(()),
            initialising: tokio::sync::Mutex::new(()),
            ready_genesis: std::sync::OnceLock::new(),
            key_cache: Mutex::new(std::collections::HashMap::new()),
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

    /// Runs `f` on the store, off the async threads.
    pub async fn db<R: Send + 'static>(
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
            .map(|n| (n.node, n.reachable, n.attested, n.healthy))
            .collect();
        self.metrics.render(&Gauges {
            pools,
            nodes,
            live_requests: self.live.load(Ordering::SeqCst),
        })
    }

    // ----- cluster -------------------------------------------------------------------------

    /// Genesis progress.
    pub async fn genesis_status(&self) -> Result<GenesisStatus, ApiError> {
        let row = self.db(|s| s.cluster()).await?;
        Ok(match row {
            None => GenesisStatus {
                state: "none".into(),
                detail: "no genesis yet".into(),
                cluster: None,
            },
            Some(r) => GenesisStatus {
                state: r.state,
                detail: r.detail,
                cluster: serde_json::from_str::<ApprovedJson<GenesisJson>>(&r.genesis)
                    .ok()
                    .map(|g| g.request.cluster),
            },
        })
    }

    async fn cluster(&self) -> Result<ApprovedJson<GenesisJson>, ApiError> {
        // A ready genesis never changes: read it once.
        if let Some(g) = self.ready_genesis.get() {
            return Ok(g.clone());
        }
        let row = self
            .db(|s| s.cluster())
            .await?
            .ok_or_else(|| err(ErrorCode::NotInitialised, "the cluster has no genesis yet"))?;
        if row.state != "ready" {
            return Err(err(
                ErrorCode::NotInitialised,
                format!("the cluster is not ready: {} ({})", row.state, row.detail),
            ));
        }
        let g: ApprovedJson<GenesisJson> = serde_json::from_str(&row.genesis)
            .map_err(|e| err(ErrorCode::Storage, format!("stored genesis: {e}")))?;
        let _ = self.ready_genesis.set(g.clone());
        Ok(g)
    }

    /// Accepts a genesis and starts initialising the cluster in the background.
    pub async fn genesis(
        self: &Arc<Self>,
        body: ApprovedJson<GenesisJson>,
    ) -> Result<GenesisStatus, ApiError> {
        let g = body.request.to_wire();
        if g.v != REQUEST_VERSION {
            return Err(err(
                ErrorCode::InvalidRequest,
                "unsupported request version",
            ));
        }
        if g.cluster.is_empty() || g.cluster.len() > 128 {
            return Err(err(
                ErrorCode::InvalidRequest,
                "a cluster name has 1 to 128 bytes",
            ));
        }
        if g.nodes != self.nodes.count() {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!(
                    "the genesis names {} nodes; this coordinator relays to {}",
                    g.nodes,
                    self.nodes.count()
                ),
            ));
        }
        let admins = keys_of(&body.request.admins, "admin")?;
        if g.admin_quorum == 0 || usize::from(g.admin_quorum) > admins.len() {
            return Err(err(
                ErrorCode::InvalidRequest,
                "the admin quorum must be between 1 and the number of admins",
            ));
        }
        let wire = body.to_wire();
        let actors = check_approvals(&g, &wire.approvals, &admins, g.admin_quorum)?;
        let row = ClusterRow {
            genesis: serde_json::to_string(&body)
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
            state: "initialising".into(),
            detail: "sending the genesis to every node".into(),
        };
        let entry = AuditEntry {
            action: "genesis".into(),
            actors,
            key_id: None,
            payload_digests: vec![],
            path: vec![],
            nodes: (0..g.nodes).collect(),
            outcome: "accepted".into(),
            request_id: None,
        };
        let inserted = self
            .db(move |s| s.insert_cluster(&row, unix_now(), &entry))
            .await?;
        if !inserted {
            return Err(err(
                ErrorCode::GenesisExists,
                "genesis was already submitted",
            ));
        }
        let me = self.clone();
        tokio::spawn(async move { me.initialise().await });
        self.genesis_status().await
    }

    async fn set_state(&self, state: &'static str, detail: String, entry: Option<AuditEntry>) {
        info!(state, detail, "cluster state");
        // Retried: a lost "ready" would leave the cluster initialising until the next start.
        for attempt in 0..5u64 {
            let (d, e) = (detail.clone(), entry.clone());
            match self
                .db(move |s| s.set_cluster_state(state, &d, unix_now(), e.as_ref()))
                .await
            {
                Ok(()) => return,
                Err(e) => {
                    warn!(error = %e, attempt, "cannot record the cluster state");
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
    }

    /// Brings the cluster from an accepted genesis to ready: genesis at every node, peer
    /// admission, safe primes, auxiliary info. Each step tolerates having been done before, so
    /// a coordinator that restarts mid-way resumes here.
    pub async fn initialise(self: Arc<Self>) {
        // One run at a time (the API and the start-up resume may both ask).
        let Ok(_running) = self.initialising.try_lock() else {
            return;
        };
        let Ok(Some(row)) = self.db(|s| s.cluster()).await else {
            return;
        };
        if row.state != "initialising" {
            return;
        }
        let Ok(body) = serde_json::from_str::<ApprovedJson<GenesisJson>>(&row.genesis) else {
            self.set_state("failed", "stored genesis does not decode".into(), None)
                .await;
            return;
        };
        match self.initialise_steps(&body).await {
            Ok(()) => {
                let entry = self.cluster_ready_entry("ok");
                self.set_state(
                    "ready",
                    "auxiliary info ready on every node".into(),
                    Some(entry),
                )
                .await;
            }
            Err(e) => {
                let entry = self.cluster_ready_entry(e.code.as_str());
                self.set_state("failed", e.message, Some(entry)).await;
            }
        }
    }

    fn cluster_ready_entry(&self, outcome: &str) -> AuditEntry {
        AuditEntry {
            action: "cluster_ready".into(),
            actors: vec![],
            key_id: None,
            payload_digests: vec![],
            path: vec![],
            nodes: (0..self.nodes.count()).collect(),
            outcome: outcome.into(),
            request_id: None,
        }
    }

    async fn initialise_steps(&self, body: &ApprovedJson<GenesisJson>) -> Result<(), ApiError> {
        let approved = body.to_wire();
        for node in 0..self.nodes.count() {
            let r = self
                .nodes
                .call(
                    node,
                    &protocol::EnclaveRequest::Genesis {
                        request: approved.clone(),
                        node,
                    },
                    Duration::from_secs(30),
                )
                .await
                .map_err(|e| err(ErrorCode::NoQuorum, e.0))?;
            match r {
                protocol::EnclaveResponse::GenesisAccepted { .. } => {}
                // Done before (a resumed genesis), or restored from its sealed blobs: only if the
                // node is operational as this very node of a cluster.
                protocol::EnclaveResponse::Error(e)
                    if e.message.contains("already")
                        || e.code == protocol::ErrorCode::WrongPhase =>
                {
                    let status = self
                        .nodes
                        .call(
                            node,
                            &protocol::EnclaveRequest::Status,
                            Duration::from_secs(10),
                        )
                        .await
                        .map_err(|e| err(ErrorCode::NoQuorum, e.0))?;
                    let ok = matches!(
                        status,
                        protocol::EnclaveResponse::Status {
                            phase: protocol::Phase::Operational,
                            node: Some(n),
                            ..
                        } if n == node
                    );
                    if !ok {
                        return Err(err(
                            ErrorCode::Refused,
                            format!(
                                "node {node} refused the genesis and is not node {node} of a cluster: {e}"
                            ),
                        ));
                    }
                }
                protocol::EnclaveResponse::Error(e) => {
                    return Err(err(ErrorCode::Refused, format!("node {node}: {e}")));
                }
                other => {
                    return Err(err(
                        ErrorCode::Internal,
                        format!("node {node}: unexpected {other}"),
                    ));
                }
            }
        }
        self.set_state("initialising", "admitting peers".into(), None)
            .await;
        let refusals = self.nodes.admit_all().await;
        if let Some((node, peer, why)) = refusals.first() {
            return Err(err(
                ErrorCode::Refused,
                format!("node {node} refused peer {peer}: {why}"),
            ));
        }
        let started = Instant::now();
        let mut shown = None;
        loop {
            self.nodes.check(self.settings.attest_interval).await;
            let (ready, total) = self.nodes.primes_progress();
            if shown != Some(ready) {
                // Progress for `GET /v1/cluster` (and `cohort genesis`): each enclave generates
                // its safe primes in the background from boot.
                self.set_state(
                    "initialising",
                    format!("safe primes (Paillier keys) ready in {ready} of {total} enclaves"),
                    None,
                )
                .await;
                shown = Some(ready);
            }
            if ready == total {
                break;
            }
            if started.elapsed() > Duration::from_secs(1800) {
                return Err(err(
                    ErrorCode::DeadlineExceeded,
                    "safe primes not ready after 30 minutes",
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.set_state("initialising", "generating auxiliary info".into(), None)
            .await;
        let all: Vec<u16> = (0..self.nodes.count()).collect();
        let run = run_session(
            &self.nodes,
            &new_session_id(),
            &all,
            &SessionKind::AuxInfo,
            self.settings.setup_round_timeout,
        )
        .await;
        if let Some((node, code, message)) = run.failure() {
            // A resumed genesis: every node that refused already has auxiliary info (the
            // others only saw the session aborted).
            let done = |o: &Outcome| match o {
                Outcome::Failed { code, message, .. } => {
                    message.contains("auxiliary info already exists")
                        || *code == FailureCode::Aborted
                }
                _ => false,
            };
            if message.contains("auxiliary info already exists") && run.outcomes.values().all(done)
            {
                return Ok(());
            }
            return Err(err(
                ErrorCode::Refused,
                format!("auxiliary info failed at node {node}: {code}: {message}"),
            ));
        }
        self.nodes.check(self.settings.attest_interval).await;
        Ok(())
    }

    // ----- keys ----------------------------------------------------------------------------

    /// Every key.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>, ApiError> {
        self.db(|s| s.keys()).await?.iter().map(key_info).collect()
    }

    /// One key.
    pub async fn key(&self, key_id: &str) -> Result<KeyInfo, ApiError> {
        let id = key_id.to_string();
        let row = self
            .db(move |s| s.key(&id))
            .await?
            .ok_or_else(|| err(ErrorCode::NotFound, format!("no key {key_id}")))?;
        key_info(&row)
    }

    /// A stored key (cached: keys never change once created).
    async fn key_row(&self, key_id: &str) -> Result<KeyRow, ApiError> {
        let cached = self
            .key_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
            .cloned();
        if let Some(k) = cached {
            return Ok(k);
        }
        let id = key_id.to_string();
        let row = self
            .db(move |s| s.key(&id))
            .await?
            .ok_or_else(|| err(ErrorCode::NotFound, format!("no key {key_id}")))?;
        self.key_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key_id.to_string(), row.clone());
        Ok(row)
    }

    /// Creates a key across all nodes.
    pub async fn create_key(
        self: &Arc<Self>,
        body: ApprovedJson<CreateKeyJson>,
    ) -> Result<KeyInfo, ApiError> {
        let started = Instant::now();
        let result = self.create_key_inner(body).await;
        self.metrics.observe("create_key", started.elapsed());
        if let Err(e) = &result {
            self.metrics.failure("create_key", e.code.as_str());
        }
        result
    }

    async fn create_key_inner(
        self: &Arc<Self>,
        body: ApprovedJson<CreateKeyJson>,
    ) -> Result<KeyInfo, ApiError> {
        let genesis = self.cluster().await?;
        let r = body.request.to_wire();
        let nodes = self.nodes.count();
        if r.v != REQUEST_VERSION || r.cluster != genesis.request.cluster {
            return Err(err(
                ErrorCode::InvalidRequest,
                "the request is for another cluster or version",
            ));
        }
        if r.request_id.len() != REQUEST_ID_LEN {
            return Err(err(ErrorCode::InvalidRequest, "a request id has 16 bytes"));
        }
        if r.key_id.is_empty()
            || r.key_id.len() > 128
            || !r
                .key_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(err(
                ErrorCode::InvalidRequest,
                "a key id has 1 to 128 characters from A-Z a-z 0-9 . _ -",
            ));
        }
        if r.threshold < 2 || r.threshold > nodes {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!("the threshold must be between 2 and {nodes}"),
            ));
        }
        let approvers = keys_of(&body.request.policy.approvers, "approver")?;
        if r.policy.approvals_needed == 0
            || usize::from(r.policy.approvals_needed) > approvers.len()
        {
            return Err(err(
                ErrorCode::InvalidRequest,
                "approvals needed must be between 1 and the number of approvers",
            ));
        }
        check_window(r.created, r.expiry, unix_now())?;
        let admins = keys_of(&genesis.request.admins, "admin")?;
        let wire = body.to_wire();
        let actors = check_approvals(&r, &wire.approvals, &admins, genesis.request.admin_quorum)?;
        let id = r.key_id.clone();
        if self.db(move |s| s.key(&id)).await?.is_some() {
            return Err(err(
                ErrorCode::KeyExists,
                format!("key {} exists", r.key_id),
            ));
        }
        let all: Vec<u16> = (0..nodes).collect();
        if self.nodes.healthy_nodes().len() != all.len() {
            // The last health round may predate a change: look again before refusing.
            self.nodes.check(self.settings.attest_interval).await;
        }
        if self.nodes.healthy_nodes().len() != all.len() {
            return Err(err(
                ErrorCode::NoQuorum,
                "key generation needs every node healthy",
            ));
        }
        // Reserve the key id: one generation of a key at a time, across coordinators too.
        // A `/` cannot appear in client idempotency keys: no client request can take this one.
        let reservation = format!("create-key/{}", r.key_id);
        let lease = self.reserve_key_id(&reservation, &r).await?;
        let run = run_session(
            &self.nodes,
            &new_session_id(),
            &all,
            &SessionKind::CreateKey { request: wire },
            self.settings.setup_round_timeout,
        )
        .await;
        let mut entry = AuditEntry {
            action: "create_key".into(),
            actors,
            key_id: Some(r.key_id.clone()),
            payload_digests: vec![],
            path: vec![],
            nodes: all.clone(),
            outcome: "ok".into(),
            request_id: Some(hex::encode(&r.request_id)),
        };
        // A failed generation frees the key id again, with its audit record.
        let fail = |code: ErrorCode, message: String, mut entry: AuditEntry| {
            let reservation = reservation.clone();
            async move {
                entry.outcome = code.as_str().into();
                let _ = self
                    .db(move |s| s.drop_request(&reservation, lease, unix_now(), &[entry]))
                    .await;
                Err(err(code, message))
            }
        };
        if let Some((node, code, message)) = run.failure() {
            let api_code = if matches!(
                code.as_str(),
                "refused" | "bad_request" | "in_progress" | "replayed"
            ) {
                ErrorCode::Refused
            } else {
                ErrorCode::KeygenFailed
            };
            return fail(api_code, format!("node {node}: {code}: {message}"), entry).await;
        }
        let mut created: Option<(Vec<u8>, Option<Vec<u8>>)> = None;
        for (node, o) in &run.outcomes {
            let Outcome::KeyCreated {
                public_key,
                chain_code,
                receipt,
                scheme,
                ..
            } = o
            else {
                return fail(
                    ErrorCode::KeygenFailed,
                    format!("node {node} answered {o:?}"),
                    entry,
                )
                .await;
            };
            // Every receipt must be signed by the node's attested identity key.
            let identity = self.nodes.identity(*node);
            let receipt_ok = identity.is_some_and(|id| {
                let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&id.signing) else {
                    return false;
                };
                let Ok(sig) = ed25519_dalek::Signature::from_slice(receipt) else {
                    return false;
                };
                vk.verify(&key_receipt_message(&r.key_id, *scheme, public_key), &sig)
                    .is_ok()
            });
            if !receipt_ok || *scheme != r.scheme {
                return fail(
                    ErrorCode::KeygenFailed,
                    format!("node {node}'s key receipt does not verify"),
                    entry,
                )
                .await;
            }
            let this = (public_key.to_vec(), chain_code.as_ref().map(|c| c.to_vec()));
            if let Some(prev) = &created
                && *prev != this
            {
                return fail(
                    ErrorCode::KeygenFailed,
                    "nodes disagree on the new key: refusing it".into(),
                    entry,
                )
                .await;
            }
            created = Some(this);
        }
        let Some((public_key, chain_code)) = created else {
            return fail(ErrorCode::KeygenFailed, "no node answered".into(), entry).await;
        };
        let row = KeyRow {
            key_id: r.key_id.clone(),
            scheme: r.scheme.to_string(),
            threshold: r.threshold,
            public_key,
            chain_code,
            policy: serde_json::to_string(&PolicyJson::from_wire(&r.policy))
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
            created: unix_now(),
        };
        let stored = row.clone();
        entry.outcome = "ok".into();
        let info = key_info(&row)?;
        let response = serde_json::to_string(&StoredResponse {
            status: 201,
            body: serde_json::to_value(&info)
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
        })
        .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        let inserted = self
            .db(move |s| {
                let inserted = s.insert_key(&stored, unix_now(), &entry)?;
                s.finish_request(&reservation, lease, "completed", &response, unix_now(), &[])?;
                Ok(inserted)
            })
            .await?;
        if !inserted {
            return Err(err(
                ErrorCode::KeyExists,
                format!("key {} exists", r.key_id),
            ));
        }
        info!(key = r.key_id, scheme = %r.scheme, "key created");
        Ok(info)
    }

    /// Reserves a key id for one generation; returns the lease it is held under.
    async fn reserve_key_id(&self, reservation: &str, r: &CreateKey) -> Result<u64, ApiError> {
        let lease_secs = self
            .settings
            .setup_round_timeout
            .as_secs()
            .saturating_mul(4)
            + 60;
        let (k, rid) = (reservation.to_string(), hex::encode(&r.request_id));
        let hash = Sha256::digest(r.canonical_bytes()).to_vec();
        let json = serde_json::to_string(&CreateKeyJson::from_wire(r))
            .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        let now = unix_now();
        let begun = self
            .db(move |s| {
                s.begin_request(&k, "create_key", &rid, &hash, &json, now + lease_secs, now)
            })
            .await?;
        match begun {
            Begin::Started(lease) => Ok(lease),
            Begin::Existing(row) if row.state == "in_progress" && row.lease_until < now => {
                // Its coordinator stopped mid-generation: take the reservation over (enclaves
                // still running the old generation refuse the new one until it idles out).
                let (k, old, new) = (reservation.to_string(), row.lease_until, now + lease_secs);
                if self
                    .db(move |s| s.take_over_request(&k, old, new, now))
                    .await?
                {
                    Ok(new)
                } else {
                    Err(err(
                        ErrorCode::KeyExists,
                        format!("key {} is being created", r.key_id),
                    ))
                }
            }
            Begin::Existing(row) if row.idem_key != reservation => Err(err(
                ErrorCode::IdempotencyConflict,
                format!(
                    "request {} was already submitted",
                    hex::encode(&r.request_id)
                ),
            )),
            Begin::Existing(row) if row.state == "in_progress" => Err(err(
                ErrorCode::KeyExists,
                format!("key {} is being created", r.key_id),
            )),
            Begin::Existing(_) => Err(err(
                ErrorCode::KeyExists,
                format!("key {} exists", r.key_id),
            )),
        }
    }

    // ----- signing -------------------------------------------------------------------------

    /// The stored result of an idempotency key.
    pub async fn signature_record(&self, idem: &str) -> Result<StoredResponse, ApiError> {
        let key = idem.to_string();
        let row = self
            .db(move |s| s.request(&key))
            .await?
            .ok_or_else(|| err(ErrorCode::NotFound, format!("no request {idem}")))?;
        match row.response {
            Some(r) => serde_json::from_str(&r)
                .map_err(|e| err(ErrorCode::Storage, format!("stored response: {e}"))),
            None => Ok(StoredResponse {
                status: 202,
                body: serde_json::json!({"idempotency_key": idem, "status": "in_progress"}),
            }),
        }
    }

    /// Signs every payload of an approved request, once per idempotency key.
    pub async fn sign(
        self: &Arc<Self>,
        body: ApprovedJson<SignRequestJson>,
        idempotency_key: Option<String>,
    ) -> Result<StoredResponse, ApiError> {
        let r = body.request.to_wire();
        let idem = match idempotency_key {
            Some(k)
                if k.is_empty()
                    || k.len() > 128
                    || !k
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)) =>
            {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    "an idempotency key has 1 to 128 characters from A-Z a-z 0-9 . _ : -",
                ));
            }
            Some(k) => k,
            None => hex::encode(&r.request_id),
        };
        let hash = Sha256::digest(r.canonical_bytes()).to_vec();
        let genesis = self.cluster().await?;
        let key_row = self.key_row(&r.key_id).await?;
        let key = key_info(&key_row)?;
        if let Err(e) = self.check_sign(&r, &key, &genesis.request.cluster) {
            // A resubmission of a finished request gets its first answer, even after it
            // expired (a fresh request is recorded below; only this case needs a lookup).
            if e.code == ErrorCode::RequestExpired {
                let k = idem.clone();
                if let Some(row) = self.db(move |s| s.request(&k)).await?
                    && row.request_hash == hash
                    && row.state != "retryable"
                    && let Some(resp) = &row.response
                {
                    return serde_json::from_str(resp)
                        .map_err(|e| err(ErrorCode::Storage, format!("stored response: {e}")));
                }
            }
            return Err(e);
        }
        let wire = body.to_wire();
        let approvers = keys_of(&key.policy.approvers, "approver")?;
        let actors = check_approvals(&r, &wire.approvals, &approvers, key.policy.approvals_needed)?;
        let request_json =
            serde_json::to_string(&body).map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        let request_id = hex::encode(&r.request_id);
        let lease = loop {
            let lease = unix_now() + self.lease_secs();
            let (k, rid, h, j) = (
                idem.clone(),
                request_id.clone(),
                hash.clone(),
                request_json.clone(),
            );
            let begun = self
                .db(move |s| s.begin_request(&k, "sign", &rid, &h, &j, lease, unix_now()))
                .await?;
            match begun {
                Begin::Started(lease) => break lease,
                Begin::Existing(row) => {
                    if row.idem_key != idem {
                        return Err(err(
                            ErrorCode::IdempotencyConflict,
                            format!(
                                "request {request_id} was submitted under another idempotency key"
                            ),
                        ));
                    }
                    if row.request_hash != hash {
                        return Err(err(
                            ErrorCode::IdempotencyConflict,
                            format!("idempotency key {idem} was used for a different request"),
                        ));
                    }
                    if let Some(resp) = &row.response {
                        return serde_json::from_str(resp)
                            .map_err(|e| err(ErrorCode::Storage, format!("stored response: {e}")));
                    }
                    let now = unix_now();
                    if row.lease_until < now {
                        // Its coordinator stopped: take it over and run it (the enclaves refuse
                        // it if it was consumed meanwhile, and it then fails visibly).
                        let new_lease = (now + self.lease_secs()).max(row.lease_until + 1);
                        let k = idem.clone();
                        let old = row.lease_until;
                        if self
                            .db(move |s| s.take_over_request(&k, old, new_lease, now))
                            .await?
                        {
                            warn!(idem, "taking over an interrupted request");
                            let previous = Ticket {
                                idem: idem.clone(),
                                lease: old,
                            };
                            self.abort_sessions_of(&previous, r.payloads.len() as u16)
                                .await;
                            break new_lease;
                        }
                    }
                    // In flight elsewhere: wait for its end.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let ticket = Ticket {
            idem: idem.clone(),
            lease,
        };
        let response = self
            .run_sign(&r, &wire, &key, &key_row, &ticket, body.presignature)
            .await;
        let (state, stored, entries) = match response {
            Ok((result, entry)) => (
                "completed",
                StoredResponse {
                    status: 200,
                    body: serde_json::to_value(&result)
                        .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
                },
                vec![AuditEntry {
                    actors: actors.clone(),
                    ..entry
                }],
            ),
            Err((e, nodes)) => (
                // A request the cluster could not serve now (no quorum, deadline, every quorum
                // failed) may be resubmitted under the same key and run again; one it refused
                // or that was interrupted ends here.
                if e.code.retryable() {
                    "retryable"
                } else {
                    "failed"
                },
                StoredResponse {
                    status: e.code.status(),
                    body: serde_json::to_value(e.body())
                        .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
                },
                vec![AuditEntry {
                    action: "sign".into(),
                    actors: actors.clone(),
                    key_id: Some(r.key_id.clone()),
                    payload_digests: r.payloads.iter().map(|p| digest_hex(p)).collect(),
                    path: r.path.clone(),
                    nodes,
                    outcome: e.code.as_str().into(),
                    request_id: Some(hex::encode(&r.request_id)),
                }],
            ),
        };
        let text =
            serde_json::to_string(&stored).map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        let k = idem.clone();
        let finished = self
            .db(move |s| s.finish_request(&k, lease, state, &text, unix_now(), &entries))
            .await?;
        if !finished {
            // Another coordinator took it over (our lease ran out): its result stands.
            return self.signature_record(&idem).await;
        }
        Ok(stored)
    }

    /// How long a signing request is owned: its deadline, the aborts after a failed last
    /// attempt, and a margin.
    fn lease_secs(&self) -> u64 {
        self.settings.sign_deadline.as_secs() + 10
    }

    fn check_sign(&self, r: &SignRequest, key: &KeyInfo, cluster: &str) -> Result<(), ApiError> {
        if r.v != REQUEST_VERSION || r.cluster != cluster {
            return Err(err(
                ErrorCode::InvalidRequest,
                "the request is for another cluster or version",
            ));
        }
        if r.request_id.len() != REQUEST_ID_LEN {
            return Err(err(ErrorCode::InvalidRequest, "a request id has 16 bytes"));
        }
        if r.payloads.is_empty() || r.payloads.len() > MAX_PAYLOADS {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!("a request carries 1 to {MAX_PAYLOADS} payloads"),
            ));
        }
        match key.scheme {
            Scheme::EcdsaSecp256k1 => {
                if r.payloads.iter().any(|p| p.len() != 32) {
                    return Err(err(
                        ErrorCode::InvalidRequest,
                        "ECDSA payloads are 32-byte digests",
                    ));
                }
                if r.path.len() > 255 || r.path.iter().any(|i| *i >= 1 << 31) {
                    return Err(err(
                        ErrorCode::InvalidRequest,
                        "a path has at most 255 non-hardened indices",
                    ));
                }
            }
            Scheme::EddsaEd25519 => {
                if !r.path.is_empty() {
                    return Err(err(
                        ErrorCode::InvalidRequest,
                        "derivation paths apply to ECDSA keys only",
                    ));
                }
                if r.payloads.iter().any(|p| p.len() > MAX_MESSAGE_LEN) {
                    return Err(err(
                        ErrorCode::InvalidRequest,
                        format!("EdDSA messages have at most {MAX_MESSAGE_LEN} bytes"),
                    ));
                }
            }
        }
        check_window(r.created, r.expiry, unix_now())
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_sign(
        self: &Arc<Self>,
        r: &SignRequest,
        wire: &Approved<SignRequest>,
        key: &KeyInfo,
        key_row: &KeyRow,
        ticket: &Ticket,
        presign: Option<PresignatureUse>,
    ) -> Result<(SignResult, AuditEntry), (ApiError, Vec<u16>)> {
        self.live.fetch_add(1, Ordering::SeqCst);
        let _live = Live(&self.live, &self.last_live);
        let expected_key = match (key.scheme, &key_row.chain_code) {
            (Scheme::EcdsaSecp256k1, Some(cc)) => {
                derive_public_key(&key_row.public_key, cc, &r.path)
                    .map_err(|e| (err(ErrorCode::Internal, format!("derivation: {e}")), vec![]))?
            }
            _ => key_row.public_key.clone(),
        };
        // The deadline: the coordinator's budget, and never past the request's expiry.
        let budget = self.settings.sign_deadline;
        let to_expiry = Duration::from_secs(r.expiry.saturating_sub(unix_now()));
        let deadline = Instant::now() + budget.min(to_expiry);
        let mut signatures = Vec::new();
        let mut attempts = 0u32;
        let mut all_nodes = BTreeSet::new();
        for index in 0..r.payloads.len() as u16 {
            let started = Instant::now();
            let result = self
                .sign_payload(
                    wire,
                    key,
                    index,
                    &expected_key,
                    ticket,
                    deadline,
                    presign,
                    &mut attempts,
                )
                .await;
            match result {
                Ok(sig) => {
                    let op = match (key.scheme, sig.presigned) {
                        (Scheme::EcdsaSecp256k1, true) => "sign_ecdsa_presigned",
                        (Scheme::EcdsaSecp256k1, false) => "sign_ecdsa_full",
                        (Scheme::EddsaEd25519, _) => "sign_eddsa",
                    };
                    self.metrics.observe(op, started.elapsed());
                    all_nodes.extend(sig.nodes.iter().copied());
                    signatures.push(sig);
                }
                Err(e) => {
                    self.metrics.failure("sign", e.code.as_str());
                    return Err((e, all_nodes.into_iter().collect()));
                }
            }
        }
        let entry = AuditEntry {
            action: "sign".into(),
            actors: vec![],
            key_id: Some(r.key_id.clone()),
            payload_digests: r.payloads.iter().map(|p| digest_hex(p)).collect(),
            path: r.path.clone(),
            nodes: all_nodes.into_iter().collect(),
            outcome: "ok".into(),
            request_id: Some(hex::encode(&r.request_id)),
        };
        Ok((
            SignResult {
                idempotency_key: ticket.idem.clone(),
                request_id: Hex(r.request_id.to_vec()),
                key_id: r.key_id.clone(),
                status: "completed".into(),
                signatures,
                error: None,
                attempts,
            },
            entry,
        ))
    }

    /// Picks a quorum among healthy nodes not excluded: one holding a ready presignature when
    /// allowed (claimed atomically), otherwise the next in rotation.
    async fn pick_quorum(
        &self,
        key: &KeyInfo,
        path: &[u32],
        excluded: &BTreeSet<u16>,
        use_presignature: bool,
    ) -> Result<(Vec<u16>, Option<Vec<u8>>), ApiError> {
        let healthy: Vec<u16> = self
            .nodes
            .healthy_nodes()
            .into_iter()
            .filter(|n| !excluded.contains(n))
            .collect();
        let t = usize::from(key.threshold);
        let quorums = combinations(&healthy, t);
        if quorums.is_empty() {
            return Err(err(
                ErrorCode::NoQuorum,
                format!("{} healthy node(s) available, {t} needed", healthy.len()),
            ));
        }
        if use_presignature && key.scheme == Scheme::EcdsaSecp256k1 && self.settings.pool_level > 0
        {
            let (k, p) = (key.key_id.clone(), path_string(path));
            let qs: Vec<String> = quorums.iter().map(|q| quorum_string(q)).collect();
            if let Some((id, q)) = self
                .db(move |s| s.claim_best_presignature(&k, &p, &qs, unix_now()))
                .await?
            {
                return Ok((parse_quorum(&q), Some(id)));
            }
        }
        let i = self.rotation.fetch_add(1, Ordering::Relaxed) % quorums.len();
        Ok((quorums[i].clone(), None))
    }

    #[allow(clippy::too_many_arguments)]
    async fn sign_payload(
        &self,
        wire: &Approved<SignRequest>,
        key: &KeyInfo,
        index: u16,
        expected_key: &[u8],
        ticket: &Ticket,
        deadline: Instant,
        presign: Option<PresignatureUse>,
        attempts: &mut u32,
    ) -> Result<SignatureInfo, ApiError> {
        let r = &wire.request;
        let mut attempt_no = 0u32;
        let mut excluded = BTreeSet::new();
        let mut use_presig = presign != Some(PresignatureUse::Never);
        let mut last_error = String::new();
        loop {
            if Instant::now() >= deadline {
                return Err(err(
                    ErrorCode::DeadlineExceeded,
                    format!("no quorum signed before the deadline; last error: {last_error}"),
                ));
            }
            if attempt_no >= MAX_ATTEMPTS {
                return Err(err(
                    ErrorCode::SigningFailed,
                    format!("{MAX_ATTEMPTS} sessions failed; last error: {last_error}"),
                ));
            }
            let (quorum, presig) = match self.pick_quorum(key, &r.path, &excluded, use_presig).await
            {
                Ok(q) => q,
                Err(e) if e.code == ErrorCode::NoQuorum => {
                    // Wait, within the deadline, for enough nodes to be healthy again (a node
                    // restarting, a coordinator that just started and has not attested yet).
                    if Instant::now() + NO_QUORUM_POLL >= deadline {
                        let why = if last_error.is_empty() {
                            e.message
                        } else {
                            format!("{}; last error: {last_error}", e.message)
                        };
                        return Err(err(ErrorCode::NoQuorum, why));
                    }
                    self.nodes.check(self.settings.attest_interval).await;
                    tokio::time::sleep(NO_QUORUM_POLL).await;
                    excluded.clear();
                    continue;
                }
                Err(e) => return Err(e),
            };
            if attempt_no > 0 {
                self.metrics.failover();
            }
            let session = ticket.session(index, attempt_no);
            attempt_no += 1;
            *attempts += 1;
            let attempt = self
                .attempt(
                    wire,
                    key,
                    index,
                    expected_key,
                    &quorum,
                    presig.clone(),
                    &session,
                    deadline,
                )
                .await;
            match attempt {
                Attempt::Signed(sig) => return Ok(sig),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry {
                    exclude,
                    suspend,
                    why,
                } => {
                    warn!(
                        key = r.key_id,
                        ?quorum,
                        why,
                        "signing attempt failed; retrying"
                    );
                    if why.contains("no_presignature") {
                        use_presig = false;
                    }
                    for n in &suspend {
                        self.nodes.suspend(*n, &why);
                    }
                    excluded.extend(exclude);
                    last_error = why;
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        wire: &Approved<SignRequest>,
        key: &KeyInfo,
        index: u16,
        expected_key: &[u8],
        quorum: &[u16],
        presignature: Option<Vec<u8>>,
        session: &ByteBuf,
        deadline: Instant,
    ) -> Attempt {
        let presigned = presignature.is_some();
        let kind = SessionKind::Sign {
            request: wire.clone(),
            payload: index,
            presignature: presignature.map(ByteBuf::from),
        };
        let round = self
            .settings
            .sign_round_timeout
            .min(deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(100));
        let run = run_session_yielding(
            &self.nodes,
            session,
            quorum,
            &kind,
            round,
            Some(deadline),
            &|| false,
        )
        .await;
        let payload = &wire.request.payloads[usize::from(index)];
        for (node, o) in &run.outcomes {
            if let Outcome::Signed {
                signature,
                public_key,
            } = o
            {
                if public_key.as_slice() != expected_key {
                    return Attempt::Retry {
                        exclude: vec![*node],
                        suspend: vec![*node],
                        why: format!("node {node} signed under an unexpected public key"),
                    };
                }
                if let Err(e) = verify_signature(key.scheme, expected_key, payload, signature) {
                    return Attempt::Retry {
                        exclude: vec![*node],
                        suspend: vec![*node],
                        why: format!("node {node} returned a signature that does not verify: {e}"),
                    };
                }
                return Attempt::Signed(SignatureInfo {
                    payload: index,
                    signature: Hex(signature.to_vec()),
                    public_key: Hex(expected_key.to_vec()),
                    nodes: quorum.to_vec(),
                    presigned,
                });
            }
        }
        let failures: Vec<(u16, FailureCode, String)> = run
            .outcomes
            .iter()
            .filter_map(|(n, o)| match o {
                Outcome::Failed { code, message, .. } if *code != FailureCode::Aborted => {
                    Some((*n, *code, message.clone()))
                }
                _ => None,
            })
            .collect();
        let why = failures
            .iter()
            .map(|(n, c, m)| format!("node {n}: {c}: {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        if failures
            .iter()
            .any(|(_, c, _)| *c == FailureCode::NoPresignature)
        {
            return Attempt::Retry {
                exclude: vec![],
                suspend: vec![],
                why: format!("no_presignature: {why}"),
            };
        }
        // An enclave that consumed the request but no longer holds its signature (`replayed`):
        // the request was signed in a session whose result was lost, and cannot be signed again.
        if let Some((n, _, m)) = failures
            .iter()
            .find(|(_, c, _)| *c == FailureCode::Replayed)
        {
            return Attempt::Fatal(err(
                ErrorCode::Interrupted,
                format!(
                    "node {n} refuses this request ({m}): it was signed in a session whose result \
                     was lost; make a new request"
                ),
            ));
        }
        // `in_progress`: a session the relay lost track of still holds the request at these
        // nodes (until they hear the abort, or it idles out): other nodes are tried.
        let busy: Vec<u16> = failures
            .iter()
            .filter(|(_, c, _)| *c == FailureCode::InProgress)
            .map(|(n, _, _)| *n)
            .collect();
        // Refused by every participant: the request itself is refused (approvals, expiry).
        let refused: Vec<&(u16, FailureCode, String)> = failures
            .iter()
            .filter(|(_, c, _)| matches!(c, FailureCode::Refused | FailureCode::BadRequest))
            .collect();
        if !refused.is_empty() && refused.len() == quorum.len() {
            return Attempt::Fatal(err(ErrorCode::Refused, refused[0].2.clone()));
        }
        let suspend = run.blamed();
        let mut exclude = suspend.clone();
        exclude.extend(refused.iter().map(|(n, _, _)| *n));
        exclude.extend(busy);
        if exclude.is_empty() {
            // A failure no one is blamed for: leave out whoever reported it.
            exclude.extend(failures.iter().map(|(n, _, _)| *n));
        }
        Attempt::Retry {
            exclude,
            suspend,
            why: if why.is_empty() {
                "session did not finish".into()
            } else {
                why
            },
        }
    }

    /// Aborts, at every node, every session a previous owner of a request may have started.
    async fn abort_sessions_of(&self, previous: &Ticket, payloads: u16) {
        let mut tasks = tokio::task::JoinSet::new();
        let permits = Arc::new(tokio::sync::Semaphore::new(32));
        for payload in 0..payloads {
            for attempt in 0..MAX_ATTEMPTS {
                for node in 0..self.nodes.count() {
                    let nodes = self.nodes.clone();
                    let request = protocol::EnclaveRequest::AbortSession {
                        session: previous.session(payload, attempt),
                    };
                    let permits = permits.clone();
                    tasks.spawn(async move {
                        let _permit = permits.acquire().await;
                        let _ = nodes.call(node, &request, Duration::from_secs(2)).await;
                    });
                }
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    // ----- presignature pools ---------------------------------------------------------------

    async fn pool_counts(&self) -> Result<BTreeMap<(String, String, String), u32>, ApiError> {
        self.db(|s| s.presignature_counts()).await
    }

    /// Pool levels: every (ECDSA key, pool path, quorum) the pools serve, and any other
    /// presignatures counted.
    pub async fn pool_levels(&self) -> Result<Vec<PoolLevel>, ApiError> {
        let mut counts = self.pool_counts().await?;
        let mut out = Vec::new();
        if self.settings.pool_level > 0 {
            let all: Vec<u16> = (0..self.nodes.count()).collect();
            for key in self.keys().await.unwrap_or_default() {
                if key.scheme != Scheme::EcdsaSecp256k1 {
                    continue;
                }
                for path in &self.settings.pool_paths {
                    for q in combinations(&all, usize::from(key.threshold)) {
                        let id = (key.key_id.clone(), path_string(path), quorum_string(&q));
                        let ready = counts.remove(&id).unwrap_or(0);
                        out.push(PoolLevel {
                            key_id: id.0,
                            path: id.1,
                            quorum: q,
                            ready,
                            target: self.settings.pool_level,
                        });
                    }
                }
            }
        }
        for ((key_id, path, quorum), ready) in counts {
            out.push(PoolLevel {
                key_id,
                path,
                quorum: parse_quorum(&quorum),
                ready,
                target: 0,
            });
        }
        Ok(out)
    }

    /// Runs one presignature session for the emptiest pool below its level, if any; returns
    /// whether it made one. Yields to live signing requests: it starts only when none runs.
    pub async fn refill_once(&self) -> Result<bool, ApiError> {
        let quiet = self
            .last_live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            >= REFILL_QUIET;
        if self.settings.pool_level == 0 || self.live.load(Ordering::SeqCst) > 0 || !quiet {
            return Ok(false);
        }
        if self.cluster().await.is_err() {
            return Ok(false);
        }
        let _gate = self.presign_gate.lock().await;
        let healthy = self.nodes.healthy_nodes();
        let levels = self.pool_levels().await?;
        let Some(target) = levels
            .iter()
            .filter(|p| p.target > 0 && p.ready < p.target)
            .filter(|p| p.quorum.iter().all(|n| healthy.contains(n)))
            .min_by_key(|p| p.ready)
            .cloned()
        else {
            return Ok(false);
        };
        let path = crate::api::parse_path(&target.path).map_err(|e| err(ErrorCode::Internal, e))?;
        let session = new_session_id();
        let started = Instant::now();
        let live = || self.live.load(Ordering::SeqCst) > 0;
        let run = run_session_yielding(
            &self.nodes,
            &session,
            &target.quorum,
            &SessionKind::Presign {
                key_id: target.key_id.clone(),
                path,
            },
            self.settings.setup_round_timeout,
            None,
            &live,
        )
        .await;
        if run
            .outcomes
            .values()
            .all(|o| matches!(o, Outcome::PresignatureReady))
            && run.outcomes.len() == target.quorum.len()
        {
            self.metrics.observe("presign", started.elapsed());
            let row = PresigRow {
                id: session.to_vec(),
                key_id: target.key_id,
                path: target.path,
                quorum: quorum_string(&target.quorum),
                created: unix_now(),
            };
            self.db(move |s| s.add_presignature(&row)).await?;
            Ok(true)
        } else {
            self.metrics.failure("presign", "failed");
            for n in run.blamed() {
                self.nodes.suspend(n, "presignature session failed");
            }
            if let Some((node, code, message)) = run.failure() {
                warn!(
                    node,
                    code = code.as_str(),
                    message,
                    "presignature session failed"
                );
            }
            Ok(false)
        }
    }

    /// Forgets presignatures a node no longer holds (it restarted, or reports none).
    async fn drop_presignatures_of(&self, node: u16) {
        let Ok(rows) = self.db(|s| s.ready_presignatures()).await else {
            return;
        };
        // One recorded in the last seconds may be newer than the status that said "none".
        let cutoff = unix_now().saturating_sub(5);
        for p in rows {
            if p.created < cutoff && parse_quorum(&p.quorum).contains(&node) {
                let id = p.id;
                let _ = self
                    .db(move |s| s.set_presignature_state(&id, "dead"))
                    .await;
            }
        }
    }

    // ----- background ----------------------------------------------------------------------

    /// Ends requests whose coordinator stopped before recording their result: they fail
    /// visibly (`interrupted`), with an audit record, instead of staying in progress forever.
    pub async fn fail_stale_requests(&self) -> Result<usize, ApiError> {
        // A client resubmitting within the grace period takes the request over and may still
        // complete it; after that it ends as failed.
        let cutoff = unix_now().saturating_sub(STALE_GRACE.as_secs());
        let stale = self.db(move |s| s.stale_requests(cutoff)).await?;
        let mut n = 0;
        for row in stale {
            let e = err(
                ErrorCode::Interrupted,
                "the coordinator running this request stopped before it finished; \
                 whether the enclaves signed is unknown to it: make a new request",
            );
            let stored = StoredResponse {
                status: e.code.status(),
                body: serde_json::to_value(e.body()).unwrap_or_default(),
            };
            let request: Option<ApprovedJson<SignRequestJson>> =
                serde_json::from_str(&row.request).ok();
            let entry = AuditEntry {
                action: "sign".into(),
                actors: request
                    .as_ref()
                    .map(|b| {
                        b.approvals
                            .iter()
                            .map(|a| hex::encode(&a.approver.0))
                            .collect()
                    })
                    .unwrap_or_default(),
                key_id: request.as_ref().map(|b| b.request.key_id.clone()),
                payload_digests: request
                    .as_ref()
                    .map(|b| {
                        b.request
                            .payloads
                            .iter()
                            .map(|p| digest_hex(&p.0))
                            .collect()
                    })
                    .unwrap_or_default(),
                path: request
                    .as_ref()
                    .map(|b| b.request.path.clone())
                    .unwrap_or_default(),
                nodes: vec![],
                outcome: e.code.as_str().into(),
                request_id: request
                    .as_ref()
                    .map(|b| hex::encode(&b.request.request_id.0)),
            };
            let text = serde_json::to_string(&stored).unwrap_or_default();
            let (k, lease) = (row.idem_key.clone(), row.lease_until);
            if self
                .db(move |s| s.finish_request(&k, lease, "failed", &text, unix_now(), &[entry]))
                .await?
            {
                warn!(idem = row.idem_key, "interrupted request marked failed");
                n += 1;
            }
        }
        Ok(n)
    }

    /// Starts the background tasks: health checks (re-admitting restarted nodes), pool refills,
    /// the stale-request sweep, and a genesis left half-done by a previous run.
    pub fn spawn_background(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut last_admission: Option<Instant> = None;
            loop {
                let events = me.nodes.check(me.settings.attest_interval).await;
                let mut readmit = false;
                for e in events {
                    match e {
                        NodeEvent::Restarted(n) => {
                            readmit = true;
                            me.drop_presignatures_of(n).await;
                        }
                        NodeEvent::FirstSeen(_) => readmit = true,
                        NodeEvent::NoPresignatures(n) => me.drop_presignatures_of(n).await,
                    }
                }
                let genesis = me.genesis_status().await.map(|g| g.state);
                // Also, after genesis, whenever an operational node has not admitted its peers
                // under its current identity (its state came back after it restarted, e.g.
                // after a KMS outage, or a round missed a peer): every 2 s at most.
                let unadmitted = genesis.as_ref().is_ok_and(|g| g == "ready")
                    && !me.nodes.unadmitted().is_empty()
                    && last_admission
                        .is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(2));
                let readmit = readmit && genesis.as_ref().is_ok_and(|g| g != "none") || unadmitted;
                if readmit {
                    last_admission = Some(Instant::now());
                    info!("a node restarted: peers admit each other again");
                    me.nodes.admit_all().await;
                }
                tokio::time::sleep(me.settings.health_interval).await;
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match me.refill_once().await {
                    Ok(true) => {}
                    Ok(false) => tokio::time::sleep(Duration::from_millis(200)).await,
                    Err(e) => {
                        warn!(error = %e, "pool refill");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.fail_stale_requests().await {
                    warn!(error = %e, "stale request sweep");
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            // Let the first health round land before resuming a genesis.
            tokio::time::sleep(Duration::from_secs(1)).await;
            me.initialise().await;
        });
    }

    /// Signing requests in flight.
    pub fn live_requests(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Whether the coordinator can serve signing: store reachable, cluster ready, and enough
    /// healthy nodes for the smallest threshold (2).
    pub async fn ready(&self) -> Result<(), String> {
        let g = self.genesis_status().await.map_err(|e| e.message)?;
        if g.state != "ready" {
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
    use super::*;

    #[test]
    fn combinations_are_all_subsets() {
        assert_eq!(
            combinations(&[0, 1, 2], 2),
            vec![vec![0, 1], vec![0, 2], vec![1, 2]]
        );
        assert_eq!(combinations(&[0, 1], 3), Vec::<Vec<u16>>::new());
        assert_eq!(combinations(&[0, 1, 2, 3, 4], 3).len(), 10);
    }

    #[test]
    fn session_ids_are_derived_per_owner_payload_and_attempt() {
        let t = Ticket {
            idem: "k".into(),
            lease: 10,
        };
        let ids: BTreeSet<Vec<u8>> = (0..3u16)
            .flat_map(|p| (0..MAX_ATTEMPTS).map(move |a| (p, a)))
            .map(|(p, a)| t.session(p, a).to_vec())
            .collect();
        assert_eq!(ids.len(), 3 * MAX_ATTEMPTS as usize);
        assert_eq!(t.session(1, 2), t.clone().session(1, 2));
        let next_owner = Ticket {
            lease: 11,
            ..t.clone()
        };
        assert!(!ids.contains(&next_owner.session(0, 0).to_vec()));
        assert_eq!(t.session(0, 0).len(), 32);
    }

    #[test]
    fn retryable_codes() {
        assert!(ErrorCode::NoQuorum.retryable());
        assert!(!ErrorCode::Refused.retryable());
        assert!(!ErrorCode::Interrupted.retryable());
    }

    #[test]
    fn windows() {
        assert!(check_window(100, 200, 150).is_ok());
        assert_eq!(
            check_window(100, 200, 200).unwrap_err().code,
            ErrorCode::RequestExpired
        );
        assert_eq!(
            check_window(100, 100 + MAX_REQUEST_VALIDITY_SECS + 1, 150)
                .unwrap_err()
                .code,
            ErrorCode::InvalidRequest
        );
    }
}
