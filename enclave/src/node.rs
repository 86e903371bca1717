//! The enclave as a cluster member: genesis, sealed state, admitted peers, keys, presignatures
//! and the threshold-protocol sessions that the coordinator relays.
//!
//! Every decision that protects keys is taken here, inside the enclave: approvals are checked
//! against the genesis admins or the key's policy, requests expire and are single use, peers are
//! admitted only on their own verified attestation, every envelope is authenticated, and every
//! signature is verified before it is released. Presignatures live only in memory and are
//! removed before the partial signature made from them leaves the enclave.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use attestation::Policy;
use protocol::peer::{PeerEnvelope, SESSION_ID_LEN};
use protocol::policy::{
    Approved, Canonical, CreateKey, Genesis, KeyPolicy, REQUEST_ID_LEN, REQUEST_VERSION, Scheme,
    SignRequest,
};
use protocol::session::{
    FailureCode, Outcome, PeerDocument, SessionKind, SessionUpdate, genesis_receipt_message,
    key_receipt_message,
};
use protocol::{EnclaveError, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::Digest;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::identity::SecretIdentity;
use crate::mpc::ecdsa::{self, SecretAuxInfo, SecretKeyShare, SecretPresignature};
use crate::mpc::eddsa::{self, SecretEddsaShare};
use crate::mpc::{IncomingMessage, MpcError, OutgoingMessage, PartyIndex, Step};
use crate::peer::{Channel, PeerError, Roster};
use crate::policy::{PolicyError, RequestGuard, check_approvals, keys32};
use crate::primes::PrimePool;
use crate::seal::{self, BlobKind, Sealer};

/// The cluster as this enclave knows it from its genesis.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisState {
    genesis: Genesis,
    node: u16,
}

/// A key record as sealed: metadata and the share.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRecord {
    key_id: String,
    scheme: Scheme,
    threshold: u16,
    policy: KeyPolicy,
    share: ByteBuf,
}

impl Drop for KeyRecord {
    fn drop(&mut self) {
        // The plaintext share bytes are not left behind in freed memory.
        zeroize::Zeroize::zeroize(&mut *self.share);
    }
}

enum Share {
    Ecdsa(SecretKeyShare),
    Eddsa(Box<SecretEddsaShare>),
}

struct Key {
    threshold: u16,
    approvers: Vec<[u8; 32]>,
    approvals_needed: u16,
    share: Share,
}

struct Presignature {
    key_id: String,
    participants: Vec<u16>,
    secret: SecretPresignature,
}

enum Machine {
    Aux(ecdsa::AuxInfoGen),
    EcdsaKeygen(ecdsa::Keygen, CreateKey),
    EddsaDkg(eddsa::Dkg, CreateKey),
    Presign(ecdsa::Presign, String),
    EcdsaSign(ecdsa::Sign, Signing),
    /// One-round signing from a presignature: collecting the others' partial signatures.
    EcdsaPresigned(BTreeMap<PartyIndex, ecdsa::PartialSignature>, Signing),
    EddsaSign(eddsa::Sign, Signing),
}

/// What a signing session signs, for the outcome.
struct Signing {
    use_key: Vec<u8>,
    public_key: Vec<u8>,
    digest: [u8; 32],
    /// SHA-256 of the request's canonical bytes, to recognise exactly this request again.
    request_hash: [u8; 32],
    created: u64,
    expiry: u64,
}

/// A signature this enclave released, kept until its request expires: a relay that lost it
/// (its coordinator died) gets the same signature again instead of a refusal. It is public.
struct Released {
    /// SHA-256 of the approved request's canonical bytes: only exactly that request gets it.
    request_hash: [u8; 32],
    signature: Vec<u8>,
    public_key: Vec<u8>,
    expiry: u64,
}

struct Session {
    channel: Channel,
    participants: Vec<u16>,
    machine: Machine,
    /// Request held in flight by this session (released on failure, consumed on success).
    use_key: Option<Vec<u8>>,
    /// When the relay last touched the session (Unix seconds).
    last_active: u64,
    /// The data key its result (auxiliary info, a key share) will be sealed under, fetched
    /// before the session started.
    data_key: Option<seal::DataKey>,
}

/// How long a signing session may sit without a message before the enclave drops it and
/// releases the request it holds (a relay that died mid-session must not block a retry forever).
pub const SIGNING_SESSION_IDLE_SECS: u64 = 30;
/// The same for key generation, auxiliary info and presignatures, whose rounds take long.
pub const SETUP_SESSION_IDLE_SECS: u64 = 900;

impl Session {
    /// Whether protocol party indices are positions among the participants (ECDSA signing) or
    /// node indices (keygen, auxiliary info, FROST, whose indices are those of keygen).
    fn idle_limit(&self) -> u64 {
        match self.machine {
            Machine::EcdsaSign(..) | Machine::EcdsaPresigned(..) | Machine::EddsaSign(..) => {
                SIGNING_SESSION_IDLE_SECS
            }
            _ => SETUP_SESSION_IDLE_SECS,
        }
    }

    fn positional(&self) -> bool {
        matches!(
            self.machine,
            Machine::Presign(..) | Machine::EcdsaSign(..) | Machine::EcdsaPresigned(..)
        )
    }

    fn party_of(&self, node: u16) -> Option<PartyIndex> {
        if self.positional() {
            self.participants
                .iter()
                .position(|p| *p == node)
                .map(|p| p as PartyIndex)
        } else {
            self.participants.contains(&node).then_some(node)
        }
    }

    fn node_of(&self, party: PartyIndex) -> Option<u16> {
        if self.positional() {
            self.participants.get(usize::from(party)).copied()
        } else {
            Some(party)
        }
    }
}

/// Why a cluster request failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The request is malformed or inconsistent.
    #[error("{0}")]
    BadRequest(String),
    /// Refused by policy (approvals, expiry, unknown key).
    #[error("refused: {0}")]
    Refused(String),
    /// Another session at this enclave holds the request (or the key id being generated).
    #[error("refused: {0}")]
    InProgress(String),
    /// The request id was used before.
    #[error("refused: {0}")]
    Replayed(String),
    /// A peer failed attestation or misbehaved.
    #[error("{0}")]
    Peer(#[from] PeerError),
    /// Sealing failed.
    #[error("{0}")]
    Seal(#[from] seal::SealError),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<PolicyError> for NodeError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Replayed => Self::Replayed(e.to_string()),
            other => Self::Refused(other.to_string()),
        }
    }
}

impl From<NodeError> for EnclaveError {
    fn from(e: NodeError) -> Self {
        let code = match &e {
            NodeError::BadRequest(_) => ErrorCode::BadRequest,
            NodeError::Refused(_) => ErrorCode::Refused,
            NodeError::InProgress(_) => ErrorCode::InProgress,
            NodeError::Replayed(_) => ErrorCode::Replayed,
            NodeError::Peer(_) => ErrorCode::Peer,
            NodeError::Seal(e) if e.is_retryable() => ErrorCode::SealingUnavailable,
            NodeError::Seal(_) => ErrorCode::Sealing,
            NodeError::Internal(_) => ErrorCode::Internal,
        };
        EnclaveError::new(code, e.to_string())
    }
}

fn bad(m: impl Into<String>) -> NodeError {
    NodeError::BadRequest(m.into())
}

fn internal(e: MpcError) -> NodeError {
    NodeError::Internal(e.to_string())
}

fn session_id(bytes: &[u8]) -> Result<[u8; SESSION_ID_LEN], NodeError> {
    bytes
        .try_into()
        .map_err(|_| bad("session id must be 32 bytes"))
}

fn failed(code: FailureCode, message: impl Into<String>, culprits: Vec<u16>) -> Outcome {
    Outcome::Failed {
        code,
        message: message.into(),
        culprits,
    }
}

/// What a restore loaded: key ids, whether auxiliary info was loaded, migrated blobs.
pub type Restored = (Vec<String>, bool, Vec<Option<ByteBuf>>);

/// Admitted node indices, and refused ones with the reason.
pub type Admission = (Vec<u16>, Vec<(u16, String)>);

/// Cluster state of one enclave.
pub struct Node {
    genesis: Option<GenesisState>,
    roster: Roster,
    peer_policy: Policy,
    aux: Option<SecretAuxInfo>,
    keys: BTreeMap<String, Key>,
    presignatures: HashMap<[u8; SESSION_ID_LEN], Presignature>,
    sessions: HashMap<[u8; SESSION_ID_LEN], Session>,
    used_sessions: HashSet<[u8; SESSION_ID_LEN]>,
    in_flight: HashSet<Vec<u8>>,
    released: HashMap<Vec<u8>, Released>,
    guard: RequestGuard,
    sealing: Sealer,
    primes: PrimePool,
    clock: fn() -> Duration,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("node", &self.genesis.as_ref().map(|g| g.node))
            .field("keys", &self.keys.len())
            .field("presignatures", &self.presignatures.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

fn system_clock() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

impl Node {
    /// A node without genesis. `peer_policy` pins the root and this enclave's own PCRs: peers
    /// must run the same image.
    pub fn new(peer_policy: Policy, sealing: Sealer, primes: PrimePool) -> Self {
        let clock: fn() -> Duration = system_clock;
        Self {
            genesis: None,
            roster: Roster::default(),
            peer_policy,
            aux: None,
            keys: BTreeMap::new(),
            presignatures: HashMap::new(),
            sessions: HashMap::new(),
            used_sessions: HashSet::new(),
            in_flight: HashSet::new(),
            released: HashMap::new(),
            guard: RequestGuard::new(clock().as_secs()),
            sealing,
            primes,
            clock,
        }
    }

    /// This node's index, once genesis is known.
    pub fn index(&self) -> Option<u16> {
        self.genesis.as_ref().map(|g| g.node)
    }

    /// Number of keys held.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Number of presignatures ready.
    pub fn presignature_count(&self) -> usize {
        self.presignatures.len()
    }

    /// Whether safe primes are ready for an auxiliary-info run.
    pub fn primes_ready(&self) -> bool {
        self.primes.ready()
    }

    fn now(&self) -> u64 {
        (self.clock)().as_secs()
    }

    fn genesis(&self) -> Result<&GenesisState, NodeError> {
        self.genesis.as_ref().ok_or_else(|| bad("no genesis yet"))
    }

    /// Accepts a genesis approved by its own admin quorum.
    pub fn genesis_request(
        &mut self,
        identity: &SecretIdentity,
        request: &Approved<Genesis>,
        node: u16,
    ) -> Result<(Vec<u8>, Vec<u8>), NodeError> {
        if self.genesis.is_some() {
            return Err(NodeError::Refused("genesis already done".into()));
        }
        let g = &request.request;
        if g.v != REQUEST_VERSION {
            return Err(bad("unsupported genesis version"));
        }
        if g.cluster.is_empty() || g.nodes < 2 || node >= g.nodes {
            return Err(bad(
                "a cluster needs a name, at least 2 nodes, and this node among them",
            ));
        }
        let admins = keys32(&g.admins)?;
        if g.admin_quorum == 0 || usize::from(g.admin_quorum) > admins.len() {
            return Err(bad(
                "admin quorum must be between 1 and the number of admins",
            ));
        }
        check_approvals(g, &request.approvals, &admins, g.admin_quorum)?;
        let state = GenesisState {
            genesis: g.clone(),
            node,
        };
        let mut plain = Zeroizing::new(Vec::new());
        ciborium::into_writer(&state, &mut *plain)
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        let sealed = self.sealing.seal(BlobKind::Genesis, &g.cluster, &plain)?;
        self.sealing.retire_legacy();
        self.roster.insert_self(node, identity.public());
        let receipt = identity.sign(&genesis_receipt_message(&g.canonical_bytes(), node));
        info!(cluster = %g.cluster, node, nodes = g.nodes, "genesis accepted");
        self.primes.warm_up();
        self.genesis = Some(state);
        Ok((sealed, receipt.to_vec()))
    }

    /// Reloads sealed state: the genesis blob, auxiliary info and key shares. Returns the keys
    /// loaded, whether auxiliary info was, and blobs sealed again in the current format (entry
    /// `i` replaces `blobs[i]`). Nothing changes unless every blob opens.
    pub fn restore(
        &mut self,
        identity: &SecretIdentity,
        blobs: &[ByteBuf],
    ) -> Result<Restored, NodeError> {
        if self.genesis.is_some() {
            return Err(NodeError::Refused("state already loaded".into()));
        }
        let mut genesis = None;
        let mut aux = None;
        let mut records = Vec::new();
        let mut resealed = Vec::with_capacity(blobs.len());
        // Migration reads local blobs only while the genesis itself is still one.
        let genesis_authority = blobs
            .iter()
            .find(|b| seal::peek(b).is_ok_and(|(k, _)| k == BlobKind::Genesis))
            .map(|b| seal::authority_of(b))
            .transpose()?;
        if genesis_authority.is_some_and(|a| a != seal::AuthorityKind::Local) {
            self.sealing.retire_legacy();
        }
        for blob in blobs {
            let (kind, _) = seal::peek(blob)?;
            let (_, plain, migrated) = self.sealing.open(blob, kind, None)?;
            resealed.push(migrated.map(ByteBuf::from));
            match kind {
                BlobKind::Genesis => {
                    let state: GenesisState = ciborium::from_reader(plain.as_slice())
                        .map_err(|e| bad(format!("genesis blob: {e}")))?;
                    genesis = Some(state);
                }
                BlobKind::AuxInfo => {
                    aux = Some(SecretAuxInfo::from_bytes(&plain).map_err(internal)?);
                }
                BlobKind::EcdsaShare | BlobKind::EddsaShare => {
                    let record: KeyRecord = ciborium::from_reader(plain.as_slice())
                        .map_err(|e| bad(format!("key blob: {e}")))?;
                    records.push((kind, record));
                }
            }
        }
        let state = genesis.ok_or_else(|| bad("restore needs the genesis blob"))?;
        let mut keys = BTreeMap::new();
        for (kind, record) in records {
            let share = match (kind, record.scheme) {
                (BlobKind::EcdsaShare, Scheme::EcdsaSecp256k1) => {
                    Share::Ecdsa(SecretKeyShare::from_bytes(&record.share).map_err(internal)?)
                }
                (BlobKind::EddsaShare, Scheme::EddsaEd25519) => Share::Eddsa(Box::new(
                    SecretEddsaShare::from_bytes(&record.share).map_err(internal)?,
                )),
                _ => {
                    return Err(bad(format!(
                        "key {} has a blob of the wrong kind",
                        record.key_id
                    )));
                }
            };
            let index = match &share {
                Share::Ecdsa(s) => s.index(),
                Share::Eddsa(s) => s.index(),
            };
            if index != state.node {
                return Err(bad(format!(
                    "share of {} belongs to node {index}",
                    record.key_id
                )));
            }
            keys.insert(
                record.key_id.clone(),
                Key {
                    threshold: record.threshold,
                    approvers: keys32(&record.policy.approvers)?,
                    approvals_needed: record.policy.approvals_needed,
                    share,
                },
            );
        }
        self.roster.insert_self(state.node, identity.public());
        let names: Vec<String> = keys.keys().cloned().collect();
        let has_aux = aux.is_some();
        info!(
            node = state.node,
            keys = names.len(),
            aux = has_aux,
            "sealed state restored"
        );
        self.genesis = Some(state);
        self.keys = keys;
        if aux.is_none() {
            self.primes.warm_up();
        }
        self.aux = aux;
        Ok((names, has_aux, resealed))
    }

    /// Verifies peers' attestation documents and admits those that pass.
    pub fn admit_peers(&mut self, documents: &[PeerDocument]) -> Result<Admission, NodeError> {
        let g = self.genesis()?.clone();
        let now = (self.clock)();
        let mut admitted = Vec::new();
        let mut refused = Vec::new();
        for doc in documents {
            if doc.node >= g.genesis.nodes || doc.node == g.node {
                refused.push((doc.node, "not a peer node index".to_string()));
                continue;
            }
            match self
                .roster
                .admit(doc.node, &doc.document, &self.peer_policy, now)
            {
                Ok(_) => admitted.push(doc.node),
                Err(e) => {
                    warn!(node = doc.node, error = %e, "peer refused");
                    refused.push((doc.node, e.to_string()));
                }
            }
        }
        Ok((admitted, refused))
    }

    fn check_participants(&self, participants: &[u16]) -> Result<u16, NodeError> {
        let g = self.genesis()?;
        let mut seen = HashSet::new();
        for p in participants {
            if *p >= g.genesis.nodes || !seen.insert(*p) {
                return Err(bad(
                    "participants must be distinct node indices of the cluster",
                ));
            }
            if self.roster.get(*p).is_none() {
                return Err(bad(format!(
                    "node {p} has not been admitted (no verified attestation)"
                )));
            }
        }
        participants
            .iter()
            .position(|p| *p == g.node)
            .map(|p| p as u16)
            .ok_or_else(|| bad("this node is not a participant"))
    }

    /// Starts a session.
    pub fn start_session(
        &mut self,
        identity: &SecretIdentity,
        session: &[u8],
        participants: &[u16],
        kind: &SessionKind,
    ) -> Result<SessionUpdate, NodeError> {
        let sid = session_id(session)?;
        self.expire_idle_sessions();
        if self.used_sessions.contains(&sid) {
            return Err(NodeError::Refused("session id already used".into()));
        }
        let my_position = self.check_participants(participants)?;
        let me = self.genesis()?.node;
        let nodes = self.genesis()?.genesis.nodes;
        let all_nodes: Vec<u16> = (0..nodes).collect();
        let mut use_key = None;
        let mut data_key = None;
        let (machine, first) = match kind {
            SessionKind::AuxInfo => {
                if participants != all_nodes.as_slice() {
                    return Err(bad(
                        "auxiliary info is generated by all nodes, in index order",
                    ));
                }
                if self.aux.is_some() {
                    return Err(NodeError::Refused("auxiliary info already exists".into()));
                }
                if !self.primes_ready() {
                    return Err(NodeError::Refused(
                        "safe primes are still being generated".into(),
                    ));
                }
                // The data key first: with KMS unreachable the session fails now, not after
                // every node has done the work.
                data_key = Some(self.sealing.data_key()?);
                let primes = self.primes.take().ok_or_else(|| {
                    NodeError::Refused("safe primes are still being generated".into())
                })?;
                let (m, out) =
                    ecdsa::AuxInfoGen::start(&sid, me, nodes, primes).map_err(internal)?;
                (Machine::Aux(m), out)
            }
            SessionKind::CreateKey { request } => {
                if participants != all_nodes.as_slice() {
                    return Err(bad("key generation involves all nodes, in index order"));
                }
                let r = &request.request;
                self.check_create_key(request)?;
                data_key = Some(self.sealing.data_key()?);
                // Held for the whole generation: no second generation of this key id (under
                // this request or another) runs at the same time.
                let key = key_id_use(&r.key_id);
                self.claim(&key)?;
                use_key = Some(key);
                match r.scheme {
                    Scheme::EcdsaSecp256k1 => {
                        let (m, out) =
                            ecdsa::Keygen::start(&sid, me, nodes, r.threshold).map_err(internal)?;
                        (Machine::EcdsaKeygen(m, r.clone()), out)
                    }
                    Scheme::EddsaEd25519 => {
                        let (m, out) =
                            eddsa::Dkg::start(&sid, me, nodes, r.threshold, &mut rand::rngs::OsRng)
                                .map_err(internal)?;
                        (Machine::EddsaDkg(m, r.clone()), out)
                    }
                }
            }
            SessionKind::Presign { key_id, path } => {
                let key = self
                    .keys
                    .get(key_id)
                    .ok_or_else(|| NodeError::Refused(format!("unknown key {key_id}")))?;
                let Share::Ecdsa(share) = &key.share else {
                    return Err(bad("presignatures exist for ECDSA keys only"));
                };
                if participants.len() != usize::from(key.threshold) {
                    return Err(bad("a presignature needs exactly threshold participants"));
                }
                let (m, out) = ecdsa::Presign::start(&sid, my_position, participants, share, path)
                    .map_err(internal)?;
                (Machine::Presign(m, key_id.clone()), out)
            }
            SessionKind::Sign {
                request,
                payload,
                presignature,
            } => {
                if let Some(outcome) = self.released_signature(request, *payload)? {
                    self.used_sessions.insert(sid);
                    return Ok(SessionUpdate {
                        session: ByteBuf::from(sid.to_vec()),
                        outgoing: vec![],
                        outcome: Some(outcome),
                    });
                }
                let (key, signing) = self.check_sign(request, *payload)?;
                let threshold = usize::from(key.threshold);
                let r = &request.request;
                match (&key.share, presignature) {
                    (Share::Ecdsa(share), None) => {
                        if participants.len() != threshold {
                            return Err(bad("ECDSA signing needs exactly threshold participants"));
                        }
                        let (m, out) = ecdsa::Sign::start(
                            &sid,
                            my_position,
                            participants,
                            share,
                            &r.path,
                            signing.digest,
                        )
                        .map_err(internal)?;
                        self.claim(&signing.use_key)?;
                        use_key = Some(signing.use_key.clone());
                        (Machine::EcdsaSign(m, signing), out)
                    }
                    (Share::Ecdsa(_), Some(id)) => {
                        let pid = session_id(id)?;
                        let matches = self.presignatures.get(&pid).is_some_and(|p| {
                            p.key_id == r.key_id
                                && p.participants == participants
                                && p.secret.path() == r.path
                        });
                        if !matches {
                            return Ok(SessionUpdate {
                                session: ByteBuf::from(sid.to_vec()),
                                outgoing: vec![],
                                outcome: Some(failed(
                                    FailureCode::NoPresignature,
                                    "no ready presignature for this key, path and quorum",
                                    vec![],
                                )),
                            });
                        }
                        self.claim(&signing.use_key)?;
                        use_key = Some(signing.use_key.clone());
                        // Removed before the partial signature exists: never used twice.
                        let presig = self
                            .presignatures
                            .remove(&pid)
                            .ok_or_else(|| NodeError::Internal("presignature vanished".into()))?;
                        let partial = presig
                            .secret
                            .issue_partial_signature(signing.digest, &r.path)
                            .map_err(internal)?;
                        let bytes = partial.to_bytes().map_err(internal)?;
                        let mut partials = BTreeMap::new();
                        partials.insert(my_position, partial);
                        (
                            Machine::EcdsaPresigned(partials, signing),
                            vec![OutgoingMessage {
                                to: None,
                                payload: bytes,
                            }],
                        )
                    }
                    (Share::Eddsa(share), None) => {
                        if participants.len() < threshold {
                            return Err(bad("FROST signing needs at least threshold participants"));
                        }
                        let message = r
                            .payloads
                            .get(usize::from(*payload))
                            .ok_or_else(|| bad("payload index out of range"))?;
                        let (m, out) = eddsa::Sign::start(
                            share,
                            &sid,
                            participants,
                            message,
                            &mut rand::rngs::OsRng,
                        )
                        .map_err(internal)?;
                        self.claim(&signing.use_key)?;
                        use_key = Some(signing.use_key.clone());
                        (Machine::EddsaSign(m, signing), out)
                    }
                    (Share::Eddsa(_), Some(_)) => {
                        return Err(bad("presignatures exist for ECDSA keys only"));
                    }
                }
            }
        };
        self.used_sessions.insert(sid);
        let mut session = Session {
            channel: Channel::new(sid, me, participants.iter().copied()),
            participants: participants.to_vec(),
            machine,
            use_key,
            last_active: self.now(),
            data_key,
        };
        info!(session = %hex_short(&sid), kind = kind.name(), "session started");
        let outgoing = match seal_all(identity, &self.roster, &mut session, first) {
            Ok(o) => o,
            Err(e) => {
                self.release(&session);
                return Err(e);
            }
        };
        self.sessions.insert(sid, session);
        Ok(SessionUpdate {
            session: ByteBuf::from(sid.to_vec()),
            outgoing,
            outcome: None,
        })
    }

    /// The signature this enclave already released for exactly this approved request and
    /// payload, if it still holds it. Approvals are checked as for a new signature.
    fn released_signature(
        &mut self,
        request: &Approved<SignRequest>,
        payload: u16,
    ) -> Result<Option<Outcome>, NodeError> {
        let now = self.now();
        self.released.retain(|_, r| r.expiry >= now);
        let r = &request.request;
        let mut use_key = r.request_id.to_vec();
        use_key.extend_from_slice(&payload.to_be_bytes());
        let Some(released) = self.released.get(&use_key) else {
            return Ok(None);
        };
        let hash: [u8; 32] = sha2::Sha256::digest(r.canonical_bytes()).into();
        if hash != released.request_hash {
            return Ok(None);
        }
        let g = self.genesis()?;
        if r.cluster != g.genesis.cluster {
            return Ok(None);
        }
        let key = self
            .keys
            .get(&r.key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {}", r.key_id)))?;
        check_approvals(r, &request.approvals, &key.approvers, key.approvals_needed)?;
        info!(request = %hex_short(&r.request_id), "signature released again");
        Ok(Some(Outcome::Signed {
            signature: ByteBuf::from(released.signature.clone()),
            public_key: ByteBuf::from(released.public_key.clone()),
        }))
    }

    /// Abandons a session at the relay's request, releasing the request it held.
    pub fn abort_session(&mut self, session: &[u8]) -> Result<SessionUpdate, NodeError> {
        let sid = session_id(session)?;
        if let Some(s) = self.sessions.remove(&sid) {
            info!(session = %hex_short(&sid), "session aborted by the relay");
            self.release(&s);
        }
        // Never reusable, even if it had not started here yet.
        self.used_sessions.insert(sid);
        Ok(SessionUpdate {
            session: ByteBuf::from(sid.to_vec()),
            outgoing: vec![],
            outcome: Some(failed(
                FailureCode::Aborted,
                "session aborted by the relay",
                vec![],
            )),
        })
    }

    /// Drops sessions idle for longer than their limit and releases what they held.
    fn expire_idle_sessions(&mut self) {
        let now = self.now();
        let idle: Vec<[u8; SESSION_ID_LEN]> = self
            .sessions
            .iter()
            .filter(|(_, s)| now.saturating_sub(s.last_active) > s.idle_limit())
            .map(|(id, _)| *id)
            .collect();
        for sid in idle {
            if let Some(s) = self.sessions.remove(&sid) {
                warn!(session = %hex_short(&sid), "idle session dropped");
                self.release(&s);
            }
        }
    }

    /// Number of sessions in progress.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    fn claim(&mut self, use_key: &[u8]) -> Result<(), NodeError> {
        if !self.in_flight.insert(use_key.to_vec()) {
            return Err(NodeError::InProgress("request already in progress".into()));
        }
        Ok(())
    }

    fn release(&mut self, session: &Session) {
        if let Some(k) = &session.use_key {
            self.in_flight.remove(k);
        }
    }

    fn check_create_key(&self, request: &Approved<CreateKey>) -> Result<(), NodeError> {
        let g = self.genesis()?;
        let r = &request.request;
        if r.v != REQUEST_VERSION || r.cluster != g.genesis.cluster {
            return Err(bad("request is for another cluster or version"));
        }
        if r.request_id.len() != REQUEST_ID_LEN {
            return Err(bad("request id must be 16 bytes"));
        }
        if r.key_id.is_empty() || r.key_id.len() > 128 || self.keys.contains_key(&r.key_id) {
            return Err(NodeError::Refused(format!(
                "key id {} is empty, too long or taken",
                r.key_id
            )));
        }
        if r.threshold < 2 || r.threshold > g.genesis.nodes {
            return Err(bad("threshold must be between 2 and the number of nodes"));
        }
        let approvers = keys32(&r.policy.approvers)?;
        if r.policy.approvals_needed == 0
            || usize::from(r.policy.approvals_needed) > approvers.len()
        {
            return Err(bad(
                "approvals needed must be between 1 and the number of approvers",
            ));
        }
        if r.scheme == Scheme::EcdsaSecp256k1 && self.aux.is_none() {
            return Err(NodeError::Refused(
                "ECDSA keys need auxiliary info first".into(),
            ));
        }
        let admins = keys32(&g.genesis.admins)?;
        check_approvals(r, &request.approvals, &admins, g.genesis.admin_quorum)?;
        self.guard
            .check(&create_key_use(r), r.created, r.expiry, self.now())?;
        Ok(())
    }

    fn check_sign(
        &self,
        request: &Approved<SignRequest>,
        payload: u16,
    ) -> Result<(&Key, Signing), NodeError> {
        let g = self.genesis()?;
        let r = &request.request;
        if r.v != REQUEST_VERSION || r.cluster != g.genesis.cluster {
            return Err(bad("request is for another cluster or version"));
        }
        if r.request_id.len() != REQUEST_ID_LEN {
            return Err(bad("request id must be 16 bytes"));
        }
        let key = self
            .keys
            .get(&r.key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {}", r.key_id)))?;
        check_approvals(r, &request.approvals, &key.approvers, key.approvals_needed)?;
        let message = r
            .payloads
            .get(usize::from(payload))
            .ok_or_else(|| bad("payload index out of range"))?;
        let mut use_key = r.request_id.to_vec();
        use_key.extend_from_slice(&payload.to_be_bytes());
        self.guard
            .check(&use_key, r.created, r.expiry, self.now())?;
        let (public_key, digest) = match &key.share {
            Share::Ecdsa(share) => {
                let digest: [u8; 32] = message
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad("ECDSA payloads are 32-byte digests"))?;
                (
                    share
                        .derive_public_key(&r.path)
                        .map_err(|e| bad(e.to_string()))?
                        .to_vec(),
                    digest,
                )
            }
            Share::Eddsa(share) => {
                if !r.path.is_empty() {
                    return Err(bad("derivation paths apply to ECDSA keys only"));
                }
                (share.public_key().to_vec(), [0; 32])
            }
        };
        Ok((
            key,
            Signing {
                use_key,
                public_key,
                digest,
                request_hash: sha2::Sha256::digest(r.canonical_bytes()).into(),
                created: r.created,
                expiry: r.expiry,
            },
        ))
    }

    /// Delivers envelopes to a running session.
    pub fn deliver(
        &mut self,
        identity: &SecretIdentity,
        session: &[u8],
        envelopes: &[PeerEnvelope],
    ) -> Result<SessionUpdate, NodeError> {
        let sid = session_id(session)?;
        self.expire_idle_sessions();
        let mut s = self
            .sessions
            .remove(&sid)
            .ok_or_else(|| NodeError::Refused("unknown or finished session".into()))?;
        s.last_active = self.now();
        let mut outgoing = Vec::new();
        for envelope in envelopes {
            match self.feed(identity, &mut s, envelope) {
                Ok((out, None)) => outgoing.extend(out),
                Ok((out, Some(outcome))) => {
                    outgoing.extend(out);
                    return Ok(self.finish(sid, s, outgoing, outcome));
                }
                Err(outcome) => return Ok(self.finish(sid, s, outgoing, *outcome)),
            }
        }
        self.sessions.insert(sid, s);
        Ok(SessionUpdate {
            session: ByteBuf::from(sid.to_vec()),
            outgoing,
            outcome: None,
        })
    }

    fn finish(
        &mut self,
        sid: [u8; SESSION_ID_LEN],
        s: Session,
        outgoing: Vec<PeerEnvelope>,
        outcome: Outcome,
    ) -> SessionUpdate {
        match &outcome {
            Outcome::Failed {
                code,
                message,
                culprits,
            } => {
                warn!(session = %hex_short(&sid), code = code.as_str(), message, ?culprits, "session failed");
                self.release(&s);
            }
            _ => {
                info!(session = %hex_short(&sid), "session done");
                if let Some(k) = &s.use_key {
                    // Consumed: the request (payload) can never be used again.
                    self.in_flight.remove(k);
                    if let Machine::EcdsaSign(_, sg)
                    | Machine::EcdsaPresigned(_, sg)
                    | Machine::EddsaSign(_, sg) = &s.machine
                    {
                        let _ = self.guard.consume(k, sg.created, sg.expiry, self.now());
                        if let Outcome::Signed {
                            signature,
                            public_key,
                        } = &outcome
                        {
                            self.released.insert(
                                k.clone(),
                                Released {
                                    request_hash: sg.request_hash,
                                    signature: signature.to_vec(),
                                    public_key: public_key.to_vec(),
                                    expiry: sg.expiry,
                                },
                            );
                        }
                    } else if let Machine::EcdsaKeygen(_, r) | Machine::EddsaDkg(_, r) = &s.machine
                    {
                        let _ =
                            self.guard
                                .consume(&create_key_use(r), r.created, r.expiry, self.now());
                    }
                }
            }
        }
        SessionUpdate {
            session: ByteBuf::from(sid.to_vec()),
            outgoing,
            outcome: Some(outcome),
        }
    }

    /// Feeds one envelope. `Err` carries the failure outcome.
    fn feed(
        &mut self,
        identity: &SecretIdentity,
        s: &mut Session,
        envelope: &PeerEnvelope,
    ) -> Result<(Vec<PeerEnvelope>, Option<Outcome>), Box<Outcome>> {
        let (from, broadcast, body) =
            s.channel
                .open(identity, &self.roster, envelope)
                .map_err(|e| {
                    Box::new(failed(
                        FailureCode::Peer,
                        e.to_string(),
                        e.culprit().into_iter().collect(),
                    ))
                })?;
        let party = s.party_of(from).ok_or_else(|| {
            Box::new(failed(
                FailureCode::Peer,
                format!("node {from} is not a participant"),
                vec![from],
            ))
        })?;
        let msg = IncomingMessage {
            from: party,
            broadcast,
            payload: body,
        };
        let step = self.step(identity, s, msg).map_err(|e| {
            let culprits = match &e {
                MpcError::BadMessage { from, .. } => s.node_of(*from).into_iter().collect(),
                MpcError::Aborted { culprits, .. } => {
                    culprits.iter().filter_map(|c| s.node_of(*c)).collect()
                }
                _ => vec![],
            };
            Box::new(failed(FailureCode::Protocol, e.to_string(), culprits))
        })?;
        let (out, outcome) = match step {
            StepOut::Continue(out) => (out, None),
            StepOut::Done(outcome, out) => (out, Some(outcome)),
        };
        let sealed = seal_all(identity, &self.roster, s, out)
            .map_err(|e| Box::new(failed(FailureCode::Internal, e.to_string(), vec![])))?;
        Ok((sealed, outcome))
    }

    fn step(
        &mut self,
        identity: &SecretIdentity,
        s: &mut Session,
        msg: IncomingMessage,
    ) -> Result<StepOut, MpcError> {
        Ok(match &mut s.machine {
            Machine::Aux(m) => match m.handle(msg)? {
                Step::Continue(o) => StepOut::Continue(o),
                Step::Done(aux, o) => {
                    let plain = aux.to_bytes()?;
                    let data_key = s.data_key.take().ok_or_else(|| {
                        MpcError::Internal("no data key for the auxiliary info".into())
                    })?;
                    let sealed = self
                        .sealing
                        .seal_with(data_key, BlobKind::AuxInfo, "aux", &plain)
                        .map_err(|e| MpcError::Internal(e.to_string()))?;
                    self.aux = Some(aux);
                    StepOut::Done(
                        Outcome::AuxReady {
                            sealed: ByteBuf::from(sealed),
                        },
                        o,
                    )
                }
            },
            Machine::EcdsaKeygen(m, request) => match m.handle(msg)? {
                Step::Continue(o) => StepOut::Continue(o),
                Step::Done(incomplete, o) => {
                    let aux = self
                        .aux
                        .as_ref()
                        .ok_or_else(|| MpcError::Internal("auxiliary info disappeared".into()))?;
                    let aux = SecretAuxInfo::from_bytes(&aux.to_bytes()?)?;
                    let share = SecretKeyShare::from_parts(incomplete, aux)?;
                    let public_key = share.master_public_key().to_vec();
                    let chain_code = share.extended_public_key().chain_code.to_vec();
                    let bytes = share.to_bytes()?;
                    let data_key = s.data_key.take().ok_or_else(|| {
                        MpcError::Internal("no data key for the key share".into())
                    })?;
                    let outcome = self.store_key(
                        identity,
                        data_key,
                        request.clone(),
                        Share::Ecdsa(share),
                        &bytes,
                        public_key,
                        Some(chain_code),
                    )?;
                    StepOut::Done(outcome, o)
                }
            },
            Machine::EddsaDkg(m, request) => match m.handle(msg)? {
                Step::Continue(o) => StepOut::Continue(o),
                Step::Done(share, o) => {
                    let public_key = share.public_key().to_vec();
                    let bytes = share.to_bytes()?;
                    let data_key = s.data_key.take().ok_or_else(|| {
                        MpcError::Internal("no data key for the key share".into())
                    })?;
                    let outcome = self.store_key(
                        identity,
                        data_key,
                        request.clone(),
                        Share::Eddsa(Box::new(share)),
                        &bytes,
                        public_key,
                        None,
                    )?;
                    StepOut::Done(outcome, o)
                }
            },
            Machine::Presign(m, key_id) => match m.handle(msg)? {
                Step::Continue(o) => StepOut::Continue(o),
                Step::Done(secret, o) => {
                    let sid = s.channel.session();
                    self.presignatures.insert(
                        sid,
                        Presignature {
                            key_id: key_id.clone(),
                            participants: s.participants.clone(),
                            secret,
                        },
                    );
                    StepOut::Done(Outcome::PresignatureReady, o)
                }
            },
            Machine::EcdsaSign(m, signing) => match m.handle(msg)? {
                Step::Continue(o) => StepOut::Continue(o),
                Step::Done(sig, o) => StepOut::Done(signed(sig.to_bytes().to_vec(), signing), o),
            },
            Machine::EcdsaPresigned(partials, signing) => {
                let partial = ecdsa::PartialSignature::from_bytes(&msg.payload)?;
                if partials.insert(msg.from, partial).is_some() {
                    return Err(MpcError::BadMessage {
                        from: msg.from,
                        reason: "second partial signature".into(),
                    });
                }
                if partials.len() < s.participants.len() {
                    StepOut::Continue(vec![])
                } else {
                    let all: Vec<_> = partials.values().cloned().collect();
                    let pk: [u8; 33] = signing
                        .public_key
                        .as_slice()
                        .try_into()
                        .map_err(|_| MpcError::Internal("bad public key length".into()))?;
                    let sig = ecdsa::combine(&all, &signing.digest, &pk)?;
                    StepOut::Done(signed(sig.to_bytes().to_vec(), signing), vec![])
                }
            }
            Machine::EddsaSign(m, signing) => match m.handle(msg)? {
                Step::Continue(o) => StepOut::Continue(o),
                Step::Done(sig, o) => StepOut::Done(signed(sig.to_vec(), signing), o),
            },
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn store_key(
        &mut self,
        identity: &SecretIdentity,
        data_key: seal::DataKey,
        request: CreateKey,
        share: Share,
        share_bytes: &[u8],
        public_key: Vec<u8>,
        chain_code: Option<Vec<u8>>,
    ) -> Result<Outcome, MpcError> {
        if self.keys.contains_key(&request.key_id) {
            // Never replace a key: its shares may already guard funds.
            return Err(MpcError::Internal(format!(
                "key {} exists; refusing to replace it",
                request.key_id
            )));
        }
        let record = KeyRecord {
            key_id: request.key_id.clone(),
            scheme: request.scheme,
            threshold: request.threshold,
            policy: request.policy.clone(),
            share: ByteBuf::from(share_bytes.to_vec()),
        };
        let mut plain = Zeroizing::new(Vec::new());
        ciborium::into_writer(&record, &mut *plain)
            .map_err(|e| MpcError::Internal(e.to_string()))?;
        drop(record);
        let kind = match request.scheme {
            Scheme::EcdsaSecp256k1 => BlobKind::EcdsaShare,
            Scheme::EddsaEd25519 => BlobKind::EddsaShare,
        };
        let sealed = self
            .sealing
            .seal_with(data_key, kind, &request.key_id, &plain)
            .map_err(|e| MpcError::Internal(e.to_string()))?;
        let approvers =
            keys32(&request.policy.approvers).map_err(|e| MpcError::Internal(e.to_string()))?;
        self.keys.insert(
            request.key_id.clone(),
            Key {
                threshold: request.threshold,
                approvers,
                approvals_needed: request.policy.approvals_needed,
                share,
            },
        );
        let receipt = identity.sign(&key_receipt_message(
            &request.key_id,
            request.scheme,
            &public_key,
        ));
        Ok(Outcome::KeyCreated {
            key_id: request.key_id,
            scheme: request.scheme,
            public_key: ByteBuf::from(public_key),
            chain_code: chain_code.map(ByteBuf::from),
            sealed: ByteBuf::from(sealed),
            receipt: ByteBuf::from(receipt.to_vec()),
        })
    }
}

enum StepOut {
    Continue(Vec<OutgoingMessage>),
    Done(Outcome, Vec<OutgoingMessage>),
}

fn signed(signature: Vec<u8>, signing: &Signing) -> Outcome {
    Outcome::Signed {
        signature: ByteBuf::from(signature),
        public_key: ByteBuf::from(signing.public_key.clone()),
    }
}

fn key_id_use(key_id: &str) -> Vec<u8> {
    let mut k = b"key-id:".to_vec();
    k.extend_from_slice(key_id.as_bytes());
    k
}

fn create_key_use(r: &CreateKey) -> Vec<u8> {
    let mut k = b"create-key:".to_vec();
    k.extend_from_slice(&r.request_id);
    k
}

fn seal_all(
    identity: &SecretIdentity,
    roster: &Roster,
    s: &mut Session,
    messages: Vec<OutgoingMessage>,
) -> Result<Vec<PeerEnvelope>, NodeError> {
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let to = match m.to {
            None => None,
            Some(p) => Some(
                s.node_of(p)
                    .ok_or_else(|| NodeError::Internal(format!("no node for party {p}")))?,
            ),
        };
        out.push(s.channel.seal(identity, roster, to, &m.payload)?);
    }
    Ok(out)
}

fn hex_short(id: &[u8]) -> String {
    id.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
