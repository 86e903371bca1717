//! The cluster's nodes as the coordinator sees them: their proxies, their health and attestation,
//! peer admission, and the relay that runs a protocol session among some of them with a time
//! limit on every round.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use attestation::{IdentityKeys, Policy};
use protocol::relay::Relay;
use protocol::session::{FailureCode, Outcome, PeerDocument, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse, Phase};
use rand::RngCore;
use serde_bytes::ByteBuf;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::api::{Hex, NodeStatus};
use crate::client::HttpClient;

/// How long a node that just failed a session is left out of new quorums (unless the health
/// check sees it well again first).
pub const SUSPEND_AFTER_FAILURE: Duration = Duration::from_secs(3);

/// What the coordinator knows of one node.
#[derive(Debug, Clone, Default)]
struct NodeState {
    /// Its parent proxy (base URL).
    proxy: String,
    reachable: bool,
    phase: Option<Phase>,
    attested: bool,
    attestation_error: Option<String>,
    module_id: Option<String>,
    identity: Option<IdentityKeys>,
    keys: u32,
    presignatures: u32,
    primes_ready: bool,
    /// The worker threads the enclave runs background protocol work on, as it reports them
    /// (`None` from an enclave that does not).
    workers: Option<u16>,
    error: Option<String>,
    /// The enclave's clock minus ours, seconds, at its last status answer.
    clock_skew_secs: Option<i64>,
    suspended_until: Option<Instant>,
    last_attested: Option<Instant>,
    /// The identity (signing key) the node had when it last admitted its peers: it can run
    /// sessions only while that is still its identity.
    admitted: Option<[u8; 32]>,
    /// The identity of each peer this node admitted, as last answered: the node can run
    /// sessions with a peer only while that is still the peer's identity.
    admitted_peers: BTreeMap<u16, [u8; 32]>,
    /// The identity of each peer this node refused, as last answered, and when. The two are
    /// not put in a quorum together; the refusal is asked again after [`REFUSAL_RETRY`], or
    /// when the refused node's phase changes.
    refused_peers: BTreeMap<u16, ([u8; 32], Instant)>,
}

/// How long a peer's refusal stands before an admission round asks again (a refusal may be
/// passing: a document corrupted on the way, a clock skew).
pub const REFUSAL_RETRY: Duration = Duration::from_secs(60);

/// A change the health check noticed that the coordinator must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A node came (back) with a new identity: a new enclave process. Its peers must admit it
    /// again, and presignatures it held are gone.
    Restarted(u16),
    /// The coordinator sees a node for the first time since it started: its peers are admitted
    /// again in case it restarted while no coordinator watched.
    FirstSeen(u16),
    /// A node holds no presignatures: any the pool counts for it are gone.
    NoPresignatures(u16),
}

/// The nodes, by index.
pub struct Nodes {
    http: HttpClient,
    /// Each node of the roster in force, by index: its proxy and what is known of it.
    states: RwLock<Vec<NodeState>>,
    /// How many times the nodes followed a new roster: an answer asked of a node before the
    /// count changed is another node's, and is dropped (attacker review helper-77, L2).
    epoch: std::sync::atomic::AtomicU64,
    policy: Policy,
    /// The image set in force once the genesis is ready (issue 20, ADR 0021): each image's
    /// PCR0, PCR1 and PCR2. It replaces the configured PCR0-2 (`--pcr0`.., `--measurements`)
    /// in `policy`, so that a node restarted onto an image the admins accepted is attested and
    /// used, and one on a retired image is not; `None` before (the configured values apply).
    images: RwLock<Option<Vec<[Vec<u8>; 3]>>>,
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Why a call to a node failed.
#[derive(Debug, Clone)]
pub struct CallError(pub String);

impl Nodes {
    /// Nodes behind `proxies`; attestation documents are checked against `policy`.
    pub fn new(proxies: Vec<String>, policy: Policy) -> Self {
        Self {
            // Every call sets its own limit (`call`); the client's must not cut a long round.
            http: HttpClient::new().with_timeout(Duration::from_secs(3600)),
            states: RwLock::new(Self::fresh(proxies)),
            epoch: std::sync::atomic::AtomicU64::new(0),
            policy,
            images: RwLock::new(None),
        }
    }

    /// Follows the cluster's image set in force (`images`: each image's PCR0, PCR1, PCR2): the
    /// next attestations admit exactly these images, and every node is attested again at the
    /// next health check. Returns whether the set changed.
    pub fn follow_images(&self, images: Vec<[Vec<u8>; 3]>) -> bool {
        let mut held = self.images.write().unwrap_or_else(|p| p.into_inner());
        if held.as_ref() == Some(&images) {
            return false;
        }
        *held = Some(images);
        drop(held);
        // Every node is attested again under the new set at the next health check.
        let mut states = self.states.write().unwrap_or_else(|p| p.into_inner());
        for s in states.iter_mut() {
            s.last_attested = None;
        }
        true
    }

    /// The policy a node's document is checked against: the configured one, with PCR0-2 those
    /// of the image set in force once there is one (and PCR8 no longer pinned). The values are allowed per index, so a
    /// document mixing two accepted images' values passes here; the enclaves check each image's
    /// three values together, and the coordinator is outside the trust boundary anyway.
    pub(crate) fn attestation_policy(&self) -> Policy {
        let mut policy = self.policy.clone();
        if let Some(images) = &*self.images.read().unwrap_or_else(|p| p.into_inner()) {
            // PCR8 (the certificate a signed image was signed with) is no part of an accepted
            // image, and the enclaves do not pin it: a new image signed with another
            // certificate must not be refused here (the KMS key policies pin it).
            policy.pcrs.remove(&8);
            for pcr in 0..3 {
                policy
                    .pcrs
                    .insert(pcr, images.iter().map(|i| i[pcr].clone()).collect());
            }
        }
        policy
    }

    fn fresh(proxies: Vec<String>) -> Vec<NodeState> {
        proxies
            .into_iter()
            .map(|proxy| NodeState {
                proxy,
                ..NodeState::default()
            })
            .collect()
    }

    /// Follows the roster in force (issue 20, membership): its nodes are those behind
    /// `proxies`, by index. When they change (a roster change was committed), everything
    /// known of the old nodes is dropped: each node is attested, and admitted by its peers,
    /// again at its new index. Returns whether they changed.
    pub fn follow_roster(&self, proxies: Vec<String>) -> bool {
        let mut states = self.states.write().unwrap_or_else(|p| p.into_inner());
        if states.iter().map(|s| &s.proxy).eq(proxies.iter()) {
            return false;
        }
        *states = Self::fresh(proxies);
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        true
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Node `node`'s parent proxy (base URL).
    pub fn proxy(&self, node: u16) -> Option<String> {
        self.states()
            .get(usize::from(node))
            .map(|s| s.proxy.clone())
    }

    /// Every node's parent proxy, by index.
    pub fn proxies(&self) -> Vec<String> {
        self.states().iter().map(|s| s.proxy.clone()).collect()
    }

    /// Number of nodes.
    pub fn count(&self) -> u16 {
        self.states().len() as u16
    }

    fn states(&self) -> std::sync::RwLockReadGuard<'_, Vec<NodeState>> {
        self.states.read().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, node: u16, f: impl FnOnce(&mut NodeState)) {
        let mut states = self.states.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = states.get_mut(usize::from(node)) {
            f(s);
        }
    }

    /// Sends one request to node `node`, with a time limit.
    pub async fn call(
        &self,
        node: u16,
        request: &EnclaveRequest,
        timeout: Duration,
    ) -> Result<EnclaveResponse, CallError> {
        let proxy = self
            .proxy(node)
            .ok_or_else(|| CallError(format!("no node {node}")))?;
        match tokio::time::timeout(timeout, self.http.enclave_call(&proxy, request)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(CallError(format!("node {node}: {e:#}"))),
            Err(_) => Err(CallError(format!(
                "node {node}: no answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    /// Sends one request to the enclave behind the parent proxy at `proxy`, with a time limit:
    /// a node that is not one of these nodes (one joining the cluster, issue 20).
    pub async fn call_proxy(
        &self,
        proxy: &str,
        request: &EnclaveRequest,
        timeout: Duration,
    ) -> Result<EnclaveResponse, CallError> {
        match tokio::time::timeout(timeout, self.http.enclave_call(proxy, request)).await {
            Ok(Ok(r)) => Ok(r),
            // What a URL a client named answered is logged, never passed back to the caller
            // (attacker review helper-76, finding L2).
            Ok(Err(e)) => {
                warn!(proxy, error = %format!("{e:#}"), "no usable answer from a parent proxy");
                Err(CallError(format!(
                    "{proxy}: no usable enclave answer (the coordinator's log has why)"
                )))
            }
            Err(_) => Err(CallError(format!(
                "{proxy}: no answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    /// Node `node`'s parent's sealed blobs and which of them its backup manifest confirms
    /// copied off the instance (`GET /v1/backups` on its proxy: the parent's word).
    pub async fn backups(
        &self,
        node: u16,
        timeout: Duration,
    ) -> Result<protocol::backups::Backups, CallError> {
        let proxy = self
            .proxy(node)
            .ok_or_else(|| CallError(format!("no node {node}")))?;
        let url = format!("{}/v1/backups", proxy.trim_end_matches('/'));
        let (status, body) = match tokio::time::timeout(timeout, self.http.get(&url)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(CallError(format!("node {node}: {e:#}"))),
            Err(_) => {
                return Err(CallError(format!(
                    "node {node}: no answer within {} ms",
                    timeout.as_millis()
                )));
            }
        };
        if !status.is_success() {
            let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(CallError(format!("node {node}: {status}: {text}")));
        }
        serde_json::from_slice(&body)
            .map_err(|e| CallError(format!("node {node}: bad backups answer: {e}")))
    }

    /// Whether a node admitted its peers under its current identity.
    fn admitted_own(s: &NodeState) -> bool {
        s.admitted.is_some() && s.admitted == s.identity.map(|k| k.signing)
    }

    /// Whether node `a` admitted node `b`'s current identity (as `a`'s own enclave answered).
    fn admitted_by(states: &[NodeState], a: usize, b: usize) -> bool {
        states[b]
            .identity
            .is_some_and(|k| states[a].admitted_peers.get(&(b as u16)) == Some(&k.signing))
    }

    /// Whether node `a` answered for node `b`'s current identity: admitted it, or refused it
    /// less than [`REFUSAL_RETRY`] ago.
    fn answered(states: &[NodeState], a: usize, b: usize) -> bool {
        let Some(id) = states[b].identity.map(|k| k.signing) else {
            return true;
        };
        Self::admitted_by(states, a, b)
            || states[a]
                .refused_peers
                .get(&(b as u16))
                .is_some_and(|(k, at)| *k == id && at.elapsed() < REFUSAL_RETRY)
    }

    /// A node's identity while it is up: reachable, attested and operational.
    fn live_identity(s: &NodeState) -> Option<[u8; 32]> {
        (s.reachable && s.attested && s.phase == Some(Phase::Operational))
            .then_some(s.identity.map(|k| k.signing))
            .flatten()
    }

    /// The peers that admitted `node`'s current identity.
    fn known_to(states: &[NodeState], node: usize) -> Vec<u16> {
        (0..states.len())
            .filter(|p| *p != node && Self::admitted_by(states, *p, node))
            .map(|p| p as u16)
            .collect()
    }

    /// Whether the nodes of `quorum` can run a session together: each admitted every other's
    /// current identity, as each one's own enclave answered. Checked per pair, so what one
    /// node answers (a parent can forge its node's answers) decides only the pairs it is in: a
    /// node that refuses, or claims to refuse, everyone keeps only itself out, and a restarted
    /// node that an admission round did not get to a peer (or a peer to it) is not put in a
    /// quorum with that peer until another round has.
    pub fn usable(&self, quorum: &[u16]) -> bool {
        let states = self.states();
        let n = states.len();
        quorum.iter().all(|a| {
            quorum.iter().all(|b| {
                a == b
                    || usize::from(*a) < n
                        && usize::from(*b) < n
                        && Self::admitted_by(&states, usize::from(*a), usize::from(*b))
            })
        })
    }

    /// Nodes that are up and either have not admitted their peers under their current identity
    /// (a restarted enclave whose state came back) or whose current identity some other node
    /// that is up has not answered for (a round that missed one of them, a refusal to ask
    /// again): the coordinator runs an admission round for them.
    pub fn unadmitted(&self) -> Vec<u16> {
        let states = self.states();
        let live: Vec<usize> = (0..states.len())
            .filter(|i| Self::live_identity(&states[*i]).is_some())
            .collect();
        live.iter()
            .copied()
            .filter(|i| {
                !Self::admitted_own(&states[*i])
                    || live
                        .iter()
                        .any(|p| *p != *i && !Self::answered(&states, *p, *i))
            })
            .map(|i| i as u16)
            .collect()
    }

    /// Records `node`'s identity as attested. A new identity is a new enclave process: the
    /// peers the old one admitted or refused are unknown to it.
    fn set_identity(&self, node: u16, identity: Option<IdentityKeys>) {
        self.update(node, |s| {
            if s.identity != identity {
                s.admitted_peers.clear();
                s.refused_peers.clear();
            }
            s.identity = identity;
        });
    }

    /// The peers whose enclaves refused `node`'s current identity (and are up).
    fn refused_by(states: &[NodeState], node: usize) -> Vec<u16> {
        let Some(id) = states[node].identity.map(|k| k.signing) else {
            return vec![];
        };
        (0..states.len())
            .filter(|p| {
                *p != node
                    && Self::live_identity(&states[*p]).is_some()
                    && states[*p]
                        .refused_peers
                        .get(&(node as u16))
                        .is_some_and(|(k, _)| *k == id)
            })
            .map(|p| p as u16)
            .collect()
    }

    /// Clears every peer's refusal of `node`.
    fn forget_refusals_of(&self, node: u16) {
        let mut states = self.states.write().unwrap_or_else(|p| p.into_inner());
        for s in states.iter_mut() {
            s.refused_peers.remove(&node);
        }
    }

    /// Whether a node may take part in new sessions.
    pub fn healthy(&self, node: u16) -> bool {
        let states = self.states();
        usize::from(node) < states.len() && Self::is_healthy(&states, usize::from(node))
    }

    fn is_healthy(states: &[NodeState], node: usize) -> bool {
        let s = &states[node];
        s.reachable
            && s.attested
            && s.phase == Some(Phase::Operational)
            && Self::admitted_own(s)
            && s.suspended_until.is_none_or(|t| Instant::now() >= t)
    }

    /// How many presignature sessions node `node` runs at once while pools refill: one per
    /// worker thread it reports, one if it reports none.
    pub fn presign_capacity(&self, node: u16) -> usize {
        self.states()
            .get(usize::from(node))
            .and_then(|s| s.workers)
            .map_or(1, |w| usize::from(w.max(1)))
    }

    /// Healthy node indices.
    pub fn healthy_nodes(&self) -> Vec<u16> {
        (0..self.count()).filter(|n| self.healthy(*n)).collect()
    }

    /// Leaves a node out of new quorums for a while after it failed a session.
    pub fn suspend(&self, node: u16, why: &str) {
        warn!(node, why, "node suspended from quorums");
        self.update(node, |s| {
            s.suspended_until = Some(Instant::now() + SUSPEND_AFTER_FAILURE);
            s.error = Some(why.to_string());
        });
    }

    /// Every node's status, for the API.
    pub fn status(&self) -> Vec<NodeStatus> {
        let states = self.states();
        states
            .iter()
            .enumerate()
            .map(|(i, s)| NodeStatus {
                node: i as u16,
                proxy: s.proxy.clone(),
                reachable: s.reachable,
                healthy: Self::is_healthy(&states, i),
                phase: s.phase.map(|p| p.to_string()),
                attested: s.attested,
                attestation_error: s.attestation_error.clone(),
                module_id: s.module_id.clone(),
                identity: s.identity.as_ref().map(|k| Hex(k.signing.to_vec())),
                keys: s.keys,
                presignatures: s.presignatures,
                primes_ready: s.primes_ready,
                known_to: Self::known_to(&states, i),
                error: s.error.clone().or_else(|| {
                    let by = Self::refused_by(&states, i);
                    (!by.is_empty()).then(|| format!("refused as a peer by node(s) {by:?}"))
                }),
                clock_skew_secs: s.clock_skew_secs,
            })
            .collect()
    }

    /// The identity keys of a node, as last attested.
    pub fn identity(&self, node: u16) -> Option<IdentityKeys> {
        self.states()
            .get(usize::from(node))
            .and_then(|s| s.identity)
    }

    /// How many nodes have their safe primes ready, of how many.
    pub fn primes_progress(&self) -> (usize, usize) {
        let states = self.states();
        (
            states.iter().filter(|s| s.primes_ready).count(),
            states.len(),
        )
    }

    /// Whether every node has safe primes ready.
    pub fn primes_ready(&self) -> bool {
        self.states().iter().all(|s| s.primes_ready)
    }

    /// Attests a node with a fresh nonce and verifies its document; returns the document and
    /// the identity it binds.
    pub async fn attest(&self, node: u16) -> Result<(Vec<u8>, Option<IdentityKeys>), CallError> {
        let mut nonce = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let epoch = self.epoch();
        let r = self
            .call(
                node,
                &EnclaveRequest::Attest {
                    nonce: Some(ByteBuf::from(nonce.clone())),
                },
                Duration::from_secs(5),
            )
            .await?;
        let document = match r {
            EnclaveResponse::Attestation { document } => document.into_vec(),
            other => return Err(CallError(format!("node {node}: unexpected {other}"))),
        };
        let mut policy = self.attestation_policy();
        policy.nonce = Some(nonce);
        policy.require_identity = true;
        if self.epoch() != epoch {
            return Err(CallError(format!(
                "node {node}: the nodes followed a committed roster while it was attested"
            )));
        }
        match attestation::verify(&document, &policy, now()) {
            Ok(v) => {
                self.update(node, |s| {
                    s.attested = true;
                    s.attestation_error = None;
                    s.module_id = Some(v.module_id.clone());
                    s.last_attested = Some(Instant::now());
                });
                self.set_identity(node, v.identity);
                Ok((document, v.identity))
            }
            Err(e) => {
                let why = format!("{} ({})", e, e.kind());
                self.update(node, |s| {
                    s.attested = false;
                    s.attestation_error = Some(why.clone());
                });
                Err(CallError(format!("node {node} failed attestation: {why}")))
            }
        }
    }

    /// One health round: status of every node, attestation when due. Returns what changed.
    pub async fn check(self: &Arc<Self>, attest_every: Duration) -> Vec<NodeEvent> {
        let mut tasks = JoinSet::new();
        for node in 0..self.count() {
            let me = self.clone();
            tasks.spawn(async move { (node, me.check_one(node, attest_every).await) });
        }
        let mut events = Vec::new();
        while let Some(Ok((_, e))) = tasks.join_next().await {
            events.extend(e);
        }
        events
    }

    /// The node's enclave clock minus ours, in seconds, or `None` if it did not say (an
    /// enclave older than the `Clock` request answers it with an error). The answer is the
    /// parent's word (unsigned) and a slow one makes the enclave look behind: for operators
    /// and alarms, never for a decision.
    async fn clock_skew(&self, node: u16) -> Option<i64> {
        let answer = self
            .call(node, &EnclaveRequest::Clock, Duration::from_secs(2))
            .await;
        let Ok(EnclaveResponse::Clock { time }) = answer else {
            return None;
        };
        let here = now().as_secs();
        Some(
            i64::try_from(time)
                .ok()?
                .saturating_sub(i64::try_from(here).ok()?),
        )
    }

    async fn check_one(&self, node: u16, attest_every: Duration) -> Vec<NodeEvent> {
        let mut events = Vec::new();
        let epoch = self.epoch();
        let answer = self
            .call(node, &EnclaveRequest::Status, Duration::from_secs(2))
            .await;
        if self.epoch() != epoch {
            // Another node's answer now: the next round asks the node at this index.
            return events;
        }
        match answer {
            Ok(EnclaveResponse::Status {
                phase,
                keys,
                presignatures,
                primes_ready,
                failure,
                identity,
                workers,
                ..
            }) => {
                let skew = self.clock_skew(node).await;
                // An identity other than the one last attested is a new enclave process, even
                // when no poll saw it down or in another phase (a restart between two polls).
                // The hint is the parent's word: it only makes the coordinator attest again.
                let new_process = identity.is_some_and(|hint| {
                    self.identity(node)
                        .is_some_and(|k| k.signing.as_slice() != hint.as_slice())
                });
                // The nodes followed a committed roster since (its clock skew was asked after
                // the status): the answer is another node's now, and is dropped.
                let Some((was_reachable, due, phase_changed)) =
                    self.states().get(usize::from(node)).map(|s| {
                        (
                            s.reachable,
                            // A phase change (operational -> ready is a restart the status
                            // poll did not see as an outage) also calls for a fresh
                            // attestation.
                            s.last_attested.is_none_or(|t| t.elapsed() >= attest_every)
                                || s.phase != Some(phase)
                                || new_process,
                            s.phase != Some(phase),
                        )
                    })
                else {
                    return events;
                };
                if new_process {
                    // Out of quorums until the attestation below: if it shows a new identity,
                    // the node stays out until it has admitted its peers again; if the hint
                    // was forged, it is back at once, and no admission round is run for it.
                    self.update(node, |s| s.attested = false);
                }
                if phase_changed {
                    // What its peers refused was another phase's document (a restarted enclave
                    // before its node key came back): they are asked again.
                    self.forget_refusals_of(node);
                }
                self.update(node, |s| {
                    s.reachable = true;
                    s.phase = Some(phase);
                    s.keys = keys;
                    s.presignatures = presignatures;
                    s.primes_ready = primes_ready;
                    s.workers = workers;
                    s.clock_skew_secs = skew;
                    // What the enclave reports went wrong (a failed phase's reason, a panic it
                    // contained), for operators.
                    // The parent relays this text: cut and escaped before it reaches status and logs.
                    s.error = failure.map(|f| {
                        let f: String = f.chars().take(200).flat_map(char::escape_debug).collect();
                        format!("enclave: {f}")
                    });
                    if s.suspended_until.is_some_and(|t| Instant::now() >= t) {
                        s.suspended_until = None;
                    }
                });
                if presignatures == 0 && phase == Phase::Operational {
                    events.push(NodeEvent::NoPresignatures(node));
                }
                if (due || !was_reachable)
                    && !matches!(phase, Phase::Booting | Phase::BootFailed | Phase::Failed)
                {
                    let before = self.identity(node);
                    if self.attest(node).await.is_ok() {
                        let after = self.identity(node);
                        if before.is_some() && before != after {
                            info!(node, "node has a new identity: it restarted");
                            events.push(NodeEvent::Restarted(node));
                        } else if before.is_none() {
                            events.push(NodeEvent::FirstSeen(node));
                        }
                    }
                }
            }
            Ok(other) => self.update(node, |s| {
                s.reachable = true;
                s.error = Some(format!("unexpected answer {other} to status"));
            }),
            Err(e) => self.update(node, |s| {
                s.reachable = false;
                s.error = Some(e.0);
                // Not read this time: no stale skew keeps an alarm in its state.
                s.clock_skew_secs = None;
            }),
        }
        events
    }

    /// Fetches every reachable node's attestation document and has every node verify and admit
    /// the others. Returns the refusals (node, peer, reason).
    pub async fn admit_all(&self) -> Vec<(u16, u16, String)> {
        let mut documents = Vec::new();
        let mut attested = std::collections::BTreeMap::new();
        for node in 0..self.count() {
            if let Ok((document, identity)) = self.attest(node).await {
                documents.push(PeerDocument {
                    node,
                    document: ByteBuf::from(document),
                });
                attested.insert(node, identity.map(|k| k.signing));
            }
        }
        let mut refusals = Vec::new();
        for node in 0..self.count() {
            let others: Vec<PeerDocument> = documents
                .iter()
                .filter(|d| d.node != node)
                .cloned()
                .collect();
            match self
                .call(
                    node,
                    &EnclaveRequest::AdmitPeers { documents: others },
                    Duration::from_secs(10),
                )
                .await
            {
                Ok(EnclaveResponse::PeersAdmitted { nodes, refused }) => {
                    // Under the identities attested in this round; a peer that was down now is
                    // admitted in the round its return triggers.
                    let identity = attested.get(&node).copied().flatten();
                    let of = |p: &u16| attested.get(p).copied().flatten().map(|k| (*p, k));
                    self.update(node, |s| {
                        if s.identity.map(|k| k.signing) != identity {
                            // It restarted during the round: this was another process's answer.
                            return;
                        }
                        s.admitted = identity;
                        for (p, k) in nodes.iter().filter_map(of) {
                            s.admitted_peers.insert(p, k);
                            s.refused_peers.remove(&p);
                        }
                        for (p, k) in refused.iter().filter_map(|(p, _)| of(p)) {
                            s.refused_peers.insert(p, (k, Instant::now()));
                            s.admitted_peers.remove(&p);
                        }
                    });
                    for (peer, why) in refused {
                        warn!(node, peer, why, "peer refused");
                        refusals.push((node, peer, why));
                    }
                }
                Ok(EnclaveResponse::Error(e)) => {
                    warn!(node, error = %e, "cannot admit peers")
                }
                Ok(other) => warn!(node, response = %other, "unexpected answer to admit"),
                Err(e) => warn!(node, error = e.0, "cannot admit peers"),
            }
        }
        refusals
    }
}

mod session;

pub use session::{
    MAX_YIELD, Route, SESSION_ID_LIFETIME_SECS, SessionRun, Target, new_session_id,
    run_routed_session, run_session, run_session_yielding,
};

#[cfg(test)]
mod tests;
