//! The enclave as a cluster member: genesis, sealed state, admitted peers, keys, presignatures
//! and the threshold-protocol sessions that the coordinator relays.
//!
//! Every decision that protects keys is taken here, inside the enclave: approvals are checked
//! against the genesis admins or the key's policy, requests expire and are single use, peers are
//! admitted only on their own verified attestation, every envelope is authenticated, and every
//! signature is verified before it is released. Presignatures live only in memory and are
//! removed before the partial signature made from them leaves the enclave.
//!
//! The concerns, one module each:
//!
//! * `enroll`: the long-term node key (ADR 0013), made once and sealed under the named KMS key;
//! * `membership`: the typed membership refusals;
//! * `genesis`: accepting the genesis, admitting peers, checking a session's participants;
//! * `join`: a node to add joining the cluster at a pending roster change (issue 20);
//! * `prepare`, `move_key`, `commit`: the prepare gate, a key's move to the pending roster,
//!   and the commit that makes the new roster current;
//! * `admins`: the admin set over time, its changes and the admin version requests name;
//! * `images`: the enclave images the cluster accepts over time (rolling rotation);
//! * `keys`: auxiliary info and key shares: creation, sealing, receipts, restore;
//! * `reshare`, `generations`: resharing and refresh, a key's pending and current generations;
//! * `signing`: presignatures and signing sessions;
//! * `session`: starting, stepping, finishing and aborting sessions;
//! * `background`: the worker threads background sessions are built and stepped on, so that
//!   the online path never waits behind them (issue 22);
//! * `machine`: the one interface every protocol machine is stepped through;
//! * `single_use`: requests held in flight, consumed request ids, released signatures;
//! * `bounds`: caps on sessions and presignatures, expiring session ids, contained panics.

mod admins;
mod background;
mod bounds;
mod commit;
mod enroll;
mod generations;
mod genesis;
mod images;
mod import;
mod inventory;
mod join;
mod keys;
mod machine;
pub mod membership;
mod move_aux;
mod move_key;
mod prepare;
mod redistribute;
mod reshare;
mod resolve;
mod roster;
mod session;
mod signing;
mod single_use;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use attestation::Policy;
use protocol::peer::SESSION_ID_LEN;
use protocol::session::{FailureCode, Outcome};
use protocol::{EnclaveError, ErrorCode};
use serde_bytes::ByteBuf;

use crate::mpc::MpcError;
use crate::mpc::ecdsa::SecretAuxInfo;
use crate::peer::{PeerError, Roster};
use crate::policy::{PolicyError, RequestGuard};
use crate::primes::PrimePool;
use crate::seal::{self, Sealer};

#[cfg(test)]
pub use background::Gate;
pub use background::{Background, Progress, Resumed, Then, default_workers};
#[cfg(test)]
pub use bounds::TestHook;
pub use bounds::{Limits, panic_reason};
pub use commit::Committed;
use enroll::NodeKey;
use genesis::GenesisState;
pub use genesis::OwnPcrs;
use keys::Key;
pub use membership::MembershipError;
pub use prepare::Held;
#[cfg(test)]
pub use redistribute::Cheat;
use session::Session;
pub use session::{SETUP_SESSION_IDLE_SECS, SIGNING_SESSION_IDLE_SECS};
use signing::Presignature;
use single_use::Released;

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
    /// The request is valid only from its creation time, which is after this enclave's clock.
    #[error("refused: {0}")]
    NotYet(String),
    /// At a cap on live sessions or remembered session ids: retry elsewhere or later.
    #[error("busy: {0}")]
    Busy(String),
    /// At the cap on presignatures: ask for no more until some are used.
    #[error("limit: {0}")]
    Limit(String),
    /// A peer failed attestation or misbehaved.
    #[error("{0}")]
    Peer(#[from] PeerError),
    /// Sealing failed.
    #[error("{0}")]
    Seal(#[from] seal::SealError),
    /// Refused for membership (ADR 0013).
    #[error("{0}")]
    Membership(#[from] MembershipError),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<PolicyError> for NodeError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Replayed => Self::Replayed(e.to_string()),
            PolicyError::NotYet { .. } => Self::NotYet(e.to_string()),
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
            NodeError::NotYet(_) => ErrorCode::NotYet,
            NodeError::Busy(_) => ErrorCode::Busy,
            NodeError::Limit(_) => ErrorCode::Limit,
            NodeError::Peer(_) => ErrorCode::Peer,
            NodeError::Seal(e) if e.is_retryable() => ErrorCode::SealingUnavailable,
            NodeError::Seal(_) => ErrorCode::Sealing,
            NodeError::Membership(_) => ErrorCode::Membership,
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

fn hex_short(id: &[u8]) -> String {
    id.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// What a restore loaded: key ids, whether auxiliary info was loaded, migrated blobs.
pub type Restored = (Vec<String>, bool, Vec<Option<ByteBuf>>);

/// Admitted node indices, and refused ones with the reason.
pub type Admission = (Vec<u16>, Vec<(u16, String)>);

/// Cluster state of one enclave.
pub struct Node {
    node_key: Option<NodeKey>,
    own_pcrs: OwnPcrs,
    genesis: Option<GenesisState>,
    roster: Roster,
    peer_policy: Policy,
    aux: Option<SecretAuxInfo>,
    keys: BTreeMap<String, Key>,
    /// Keys' incoming generations, dealt to the pending roster change (issue 20).
    incoming: BTreeMap<String, move_key::Incoming>,
    /// The auxiliary information of the pending roster change's party set (issue 20).
    incoming_aux: Option<move_aux::IncomingAux>,
    presignatures: HashMap<[u8; SESSION_ID_LEN], Presignature>,
    sessions: HashMap<[u8; SESSION_ID_LEN], Session>,
    /// Ids of sessions started here that have not expired yet (ordered by expiry: the expiry
    /// is their first bytes); an expired one is refused by its expiry alone.
    used_sessions: BTreeSet<[u8; SESSION_ID_LEN]>,
    /// The latest time the session-id checks saw.
    latest: u64,
    limits: Limits,
    contained_panics: usize,
    last_panic: Option<String>,
    /// Ids of sessions aborted before they started here, the last few only (in order, and as
    /// a set for lookups).
    recently_aborted: std::collections::VecDeque<[u8; SESSION_ID_LEN]>,
    aborted_set: HashSet<[u8; SESSION_ID_LEN]>,
    in_flight: HashSet<Vec<u8>>,
    released: HashMap<Vec<u8>, Released>,
    guard: RequestGuard,
    sealing: Sealer,
    /// The genesis blobs sealed here ([`genesis::GenesisSeals`]).
    genesis_seals: std::sync::Mutex<genesis::GenesisSeals>,
    primes: PrimePool,
    /// The worker threads background sessions run on.
    pool: background::Pool,
    clock: fn() -> Duration,
    #[cfg(test)]
    test: bounds::TestState,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("node", &self.genesis.as_ref().map(|g| g.node))
            .field("node_key", &self.node_key)
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

/// The enclave's clock, Unix seconds: what a node checks documents and requests against
/// (status reports it, so that watchers see it drift).
pub fn clock_now() -> u64 {
    system_clock().as_secs()
}

impl Node {
    /// A node without genesis. `peer_policy` pins the root and this enclave's own PCRs: peers
    /// must run the same image. `own_pcrs` are this enclave's PCRs (a genesis names the image
    /// and may pin the parent's PCR3 and PCR4). Background sessions run on `workers` threads a
    /// lane, the background lane's yielding as `background` says.
    pub fn new(
        peer_policy: Policy,
        own_pcrs: OwnPcrs,
        (sealing, primes): (Sealer, PrimePool),
        (workers, background): (usize, Background),
    ) -> Self {
        let clock: fn() -> Duration = system_clock;
        Self {
            node_key: None,
            own_pcrs,
            genesis: None,
            roster: Roster::default(),
            peer_policy,
            aux: None,
            keys: BTreeMap::new(),
            incoming: BTreeMap::new(),
            incoming_aux: None,
            presignatures: HashMap::new(),
            sessions: HashMap::new(),
            used_sessions: BTreeSet::new(),
            latest: clock().as_secs(),
            limits: Limits::DEFAULT,
            contained_panics: 0,
            last_panic: None,
            recently_aborted: std::collections::VecDeque::new(),
            aborted_set: HashSet::new(),
            in_flight: HashSet::new(),
            released: HashMap::new(),
            guard: RequestGuard::new(clock().as_secs()),
            sealing,
            genesis_seals: std::sync::Mutex::default(),
            primes,
            pool: background::Pool::new(workers, background),
            clock,
            #[cfg(test)]
            test: bounds::TestState::default(),
        }
    }

    /// This node's index in the roster in force, once genesis is known; `None` on a node that
    /// joined a roster change not committed yet (its index in the pending roster may be a
    /// member's in force: attacker review helper-59, finding 5).
    pub fn index(&self) -> Option<u16> {
        self.genesis
            .as_ref()
            .filter(|g| !g.joining())
            .map(|g| g.node)
    }

    /// Number of keys held.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Number of presignatures ready.
    pub fn presignature_count(&self) -> usize {
        self.presignatures.len()
    }

    /// Number of session ids remembered as used (sessions started here whose ids have not
    /// expired yet).
    pub fn used_session_count(&self) -> usize {
        self.used_sessions.len()
    }

    /// Number of ids of sessions aborted before they started that are remembered (bounded).
    pub fn aborted_remembered_count(&self) -> usize {
        self.recently_aborted.len()
    }

    /// Number of consumed request use keys remembered (requests not expired yet).
    pub fn remembered_request_count(&self) -> usize {
        self.guard.remembered()
    }

    /// Number of sessions in progress.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether safe primes are ready for an auxiliary-info run.
    pub fn primes_ready(&self) -> bool {
        self.primes.ready()
    }

    fn now(&self) -> u64 {
        (self.clock)().as_secs() + self.clock_ahead()
    }

    #[cfg(test)]
    fn clock_ahead(&self) -> u64 {
        self.test.clock_ahead
    }

    #[cfg(not(test))]
    fn clock_ahead(&self) -> u64 {
        0
    }

    /// The cluster as a member knows it: refused before a genesis, and on a node that joined a
    /// roster change not committed yet (it takes no part in the cluster's work until then).
    fn genesis(&self) -> Result<&GenesisState, NodeError> {
        match &self.genesis {
            None => Err(bad("no genesis yet")),
            Some(g) if g.joining() => Err(MembershipError::Joining {
                version: g.roster_version().saturating_add(1),
            }
            .into()),
            Some(g) => Ok(g),
        }
    }
}
