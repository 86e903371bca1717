//! Sessions: starting one with the protocol machine its kind needs, feeding it the envelopes
//! the relay delivers, finishing it with its outcome, and dropping it when aborted or idle.

use protocol::peer::{PeerEnvelope, SESSION_ID_LEN};
use protocol::policy::CreateKey;
use protocol::session::{FailureCode, Outcome, Participant, SessionKind, SessionUpdate};
use serde_bytes::ByteBuf;
use tracing::{info, warn};

use super::background::{Home, Lane, Launch, Progress, Then};
use super::bounds::{check_session_id, panic_reason};
use super::machine::Machine;
use super::membership::MembershipError;
use super::signing::Signing;
use super::{Node, NodeError, bad, failed, hex_short, session_id};

/// How many ids of sessions aborted before they started are remembered (so that a start
/// arriving after its abort is refused): 2 MiB at most, and far more than a coordinator taking
/// over a request aborts at once (64 payloads x 16 attempts).
const RECENTLY_ABORTED: usize = 65_536;
use crate::identity::SecretIdentity;
use crate::mpc::{IncomingMessage, MpcError, OutgoingMessage, PartyIndex, Step};
use crate::peer::{Channel, Roster};
use crate::seal::DataKey;

/// How long a signing session may sit without a message before the enclave drops it and
/// releases the request it holds (a relay that died mid-session must not block a retry forever).
pub const SIGNING_SESSION_IDLE_SECS: u64 = 30;
/// The same for key generation, auxiliary info and presignatures, whose rounds take long.
pub const SETUP_SESSION_IDLE_SECS: u64 = 900;

/// Most envelopes one delivery may carry, per party of the session: twice what an honest round
/// brings (a broadcast and a direct message from each other party).
pub const ENVELOPES_PER_PARTY: usize = 4;

/// What a session is for, and what it needs to keep its result.
pub(super) enum Purpose {
    AuxInfo,
    CreateKey(CreateKey),
    /// An import: the key as it will be held, and the hash of the approved import request
    /// (its receipts name it).
    ImportKey(CreateKey, [u8; 32]),
    /// A presignature for this key id, with the key's generation when it started.
    Presign(String, u32),
    /// A resharing: the new generation it makes, pending.
    ReshareKey(super::reshare::Resharing),
    /// A key's move to the pending roster: the incoming generation it makes (issue 20).
    MoveKey(Box<super::move_key::Moving>),
    /// The auxiliary information of the pending roster's party set (issue 20).
    MoveAux(super::move_aux::AuxMoving),
    Sign(Signing),
}

/// How a session's machine is made: here, on the node's thread (an online session: FROST
/// signing, signing from a presignature, a dealing's confirmation), or on a worker thread of
/// the pool (background work: `node/background.rs`).
pub(super) enum Made {
    Here(Box<dyn Machine>),
    Background {
        launch: Launch,
        /// As [`Machine::positional`].
        positional: bool,
    },
}

/// A session as its kind starts it: the machine, its first messages, and what it holds.
pub(super) struct Start {
    machine: Made,
    purpose: Purpose,
    first: Vec<OutgoingMessage>,
    use_key: Option<Vec<u8>>,
    data_key: Option<DataKey>,
}

impl Start {
    pub(super) fn new(
        machine: Box<dyn Machine>,
        purpose: Purpose,
        first: Vec<OutgoingMessage>,
    ) -> Self {
        Self {
            machine: Made::Here(machine),
            purpose,
            first,
            use_key: None,
            data_key: None,
        }
    }

    /// A background session: its machine is built, and stepped, on a worker thread; its first
    /// messages come from there.
    pub(super) fn background(launch: Launch, positional: bool, purpose: Purpose) -> Self {
        Self {
            machine: Made::Background { launch, positional },
            purpose,
            first: Vec::new(),
            use_key: None,
            data_key: None,
        }
    }

    /// The session holds `use_key` in flight (released on failure, consumed on success).
    pub(super) fn holding(mut self, use_key: Vec<u8>) -> Self {
        self.use_key = Some(use_key);
        self
    }

    /// Its result will be sealed under `data_key`, fetched before the session starts.
    pub(super) fn sealed_under(mut self, data_key: DataKey) -> Self {
        self.data_key = Some(data_key);
        self
    }
}

/// A session's identity once its start is checked: its id, execution id, this node's index
/// in it and the peers' identity keys as admitted for it.
pub(super) struct Opened {
    pub(super) sid: [u8; SESSION_ID_LEN],
    pub(super) eid: [u8; 32],
    pub(super) me: u16,
    pub(super) peers: Roster,
}

/// How a session kind opens: a running session, or an outcome given at once.
pub(super) enum Opening {
    Run(Start),
    Answered(Outcome),
}

pub(super) struct Session {
    pub(super) channel: Channel,
    pub(super) participants: Vec<u16>,
    /// The participants' identity keys as admitted when the session started: a peer admitted
    /// again meanwhile (a new document at its index) takes part only in later sessions.
    peers: Roster,
    pub(super) machine: Home,
    pub(super) purpose: Purpose,
    /// Request held in flight by this session (released on failure, consumed on success).
    pub(super) use_key: Option<Vec<u8>>,
    /// When the relay last touched the session (Unix seconds).
    pub(super) last_active: u64,
    /// The data key its result (auxiliary info, a key share) will be sealed under, fetched
    /// before the session started.
    pub(super) data_key: Option<DataKey>,
}

impl Session {
    fn idle_limit(&self) -> u64 {
        match self.purpose {
            Purpose::Sign(_) => SIGNING_SESSION_IDLE_SECS,
            _ => SETUP_SESSION_IDLE_SECS,
        }
    }

    fn positional(&self) -> bool {
        match &self.machine {
            Home::Here(machine) => machine.positional(),
            Home::Away(away) => away.positional,
        }
    }

    /// Whether the session's machine is working on a worker thread now: it is not idle.
    fn working(&self) -> bool {
        matches!(&self.machine, Home::Away(away) if away.busy > 0)
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

    /// The nodes a protocol error blames.
    pub(super) fn culprits(&self, e: &MpcError) -> Vec<u16> {
        match e {
            MpcError::BadMessage { from, .. } => self.node_of(*from).into_iter().collect(),
            MpcError::Aborted { culprits, .. } => {
                culprits.iter().filter_map(|c| self.node_of(*c)).collect()
            }
            _ => vec![],
        }
    }

    /// Opens one envelope of this session: authenticated from a participant, as the message
    /// its machine takes. `Err` carries the failure outcome.
    pub(super) fn open(
        &mut self,
        identity: &SecretIdentity,
        envelope: &PeerEnvelope,
    ) -> Result<IncomingMessage, Box<Outcome>> {
        let (from, broadcast, body) =
            self.channel
                .open(identity, &self.peers, envelope)
                .map_err(|e| {
                    Box::new(failed(
                        FailureCode::Peer,
                        e.to_string(),
                        e.culprit().into_iter().collect(),
                    ))
                })?;
        let party = self.party_of(from).ok_or_else(|| {
            Box::new(failed(
                FailureCode::Peer,
                format!("node {from} is not a participant"),
                vec![from],
            ))
        })?;
        Ok(IncomingMessage {
            from: party,
            broadcast,
            payload: body,
        })
    }
}

/// Whether a session of `purpose` makes key material.
fn makes_keys(purpose: &Purpose) -> bool {
    matches!(
        purpose,
        Purpose::CreateKey(_)
            | Purpose::ImportKey(..)
            | Purpose::ReshareKey(_)
            | Purpose::MoveKey(_)
    )
}

pub(super) fn update(
    sid: [u8; SESSION_ID_LEN],
    outgoing: Vec<PeerEnvelope>,
    outcome: Option<Outcome>,
) -> SessionUpdate {
    SessionUpdate {
        session: ByteBuf::from(sid.to_vec()),
        outgoing,
        outcome,
    }
}

impl Node {
    /// Starts a session.
    pub fn start_session(
        &mut self,
        identity: &SecretIdentity,
        session: &[u8],
        participants: &[u16],
        kind: &SessionKind,
        then: &dyn Fn() -> Then,
    ) -> Result<Progress, NodeError> {
        let sid = session_id(session)?;
        self.expire_idle_sessions();
        let now = self.session_clock();
        self.forget_expired_session_ids(now);
        self.forget_stale_presignatures(now);
        check_session_id(&sid, now)?;
        if self.used_sessions.contains(&sid) || self.aborted_set.contains(&sid) {
            return Err(NodeError::Refused("session id already used".into()));
        }
        self.check_capacity(kind)?;
        // A key's move to the pending roster runs in the change's party space, with peers
        // admitted for the session alone (`node/move_key.rs`).
        if let SessionKind::MoveKey {
            key_id,
            generation,
            dealers,
            key,
            documents,
        } = kind
        {
            let moved = super::move_key::Move {
                key_id,
                generation: *generation,
                dealers,
                key,
                documents,
            };
            let (start, opened) = self.start_move(identity, &sid, participants, kind, &moved)?;
            self.used_sessions.insert(sid);
            return self.run(identity, opened, participants, start, (kind.name(), then));
        }
        if let SessionKind::MoveAux { documents } = kind {
            let (start, opened) =
                self.start_move_aux(identity, &sid, participants, kind, documents)?;
            self.used_sessions.insert(sid);
            return self.run(identity, opened, participants, start, (kind.name(), then));
        }
        let my_position = self.check_participants(participants)?;
        let me = self.genesis()?.node;
        let peers = self.roster.subset(participants);
        let eid = self.execution_id(&sid, participants, &peers, kind)?;
        let start = match kind {
            SessionKind::AuxInfo => self.start_aux(&eid, participants)?,
            SessionKind::CreateKey { request } => self.start_keygen(&eid, participants, request)?,
            SessionKind::ImportKey { request, dealings } => {
                self.start_import(identity, participants, request, dealings)?
            }
            SessionKind::ReshareKey { request } => self.start_reshare(participants, request)?,
            SessionKind::RetireGeneration {
                key_id,
                generation,
                receipts,
                thaw,
            } => {
                let outcome =
                    self.retire_generation(key_id, *generation, receipts, thaw.as_ref())?;
                self.used_sessions.insert(sid);
                return Ok(Progress::Now(update(sid, vec![], Some(outcome))));
            }
            SessionKind::ResolveGeneration { request } => {
                let outcome = self.resolve_generation(request)?;
                self.used_sessions.insert(sid);
                return Ok(Progress::Now(update(sid, vec![], Some(outcome))));
            }
            SessionKind::DisownGeneration { request } => {
                let outcome = self.disown_generation(request)?;
                self.used_sessions.insert(sid);
                return Ok(Progress::Now(update(sid, vec![], Some(outcome))));
            }
            SessionKind::AbandonGeneration {
                key_id,
                generation,
                request,
                statements,
            } => {
                let outcome = self.abandon_generation(key_id, *generation, request, statements)?;
                self.used_sessions.insert(sid);
                return Ok(Progress::Now(update(sid, vec![], Some(outcome))));
            }
            SessionKind::AcceptImages { request, catch_up } => {
                let outcome = self.accept_images(request, catch_up.as_ref())?;
                self.used_sessions.insert(sid);
                return Ok(Progress::Now(update(sid, vec![], Some(outcome))));
            }
            SessionKind::SetAdmins { request, catch_up } => {
                let outcome = self.set_admins(request, catch_up.as_ref())?;
                self.used_sessions.insert(sid);
                return Ok(Progress::Now(update(sid, vec![], Some(outcome))));
            }
            SessionKind::ProposeRoster { request, catch_up } => {
                let outcome = self.propose_roster(request, catch_up.as_ref())?;
                self.used_sessions.insert(sid);
                return Ok(Progress::Now(update(sid, vec![], Some(outcome))));
            }
            SessionKind::Presign { key_id, path } => {
                self.start_presign(&eid, participants, my_position, key_id, path)?
            }
            SessionKind::MoveKey { .. } | SessionKind::MoveAux { .. } => {
                return Err(NodeError::Internal(
                    "a roster change's session starts in its own party space".into(),
                ));
            }
            SessionKind::Sign {
                request,
                payload,
                presignature,
            } => {
                let presignature = presignature.as_deref().map(|id| id.as_slice());
                match self.start_sign(
                    &eid,
                    participants,
                    my_position,
                    request,
                    *payload,
                    presignature,
                )? {
                    Opening::Run(start) => start,
                    Opening::Answered(outcome) => {
                        // The session id is spent all the same.
                        self.used_sessions.insert(sid);
                        return Ok(Progress::Now(update(sid, vec![], Some(outcome))));
                    }
                }
            }
        };
        self.used_sessions.insert(sid);
        let opened = Opened {
            sid,
            eid,
            me,
            peers,
        };
        self.run(identity, opened, participants, start, (kind.name(), then))
    }

    /// Runs a session whose start succeeded: seals its first messages and keeps it. A
    /// background session is homed on a worker, which builds its machine and makes its first
    /// messages; they are answered through `then` (`Node::resume`).
    fn run(
        &mut self,
        identity: &SecretIdentity,
        opened: Opened,
        participants: &[u16],
        start: Start,
        (name, then): (&'static str, &dyn Fn() -> Then),
    ) -> Result<Progress, NodeError> {
        let Opened {
            sid,
            eid,
            me,
            peers,
        } = opened;
        let machine = match start.machine {
            Made::Here(machine) => Home::Here(machine),
            Made::Background { launch, positional } => {
                // Full signing is a client's request: the interactive lane.
                let lane = match &start.purpose {
                    Purpose::Sign(_) => Lane::Interactive,
                    _ => Lane::Background,
                };
                match self.launch_away(sid, (launch, positional, lane), then()) {
                    Ok(away) => Home::Away(away),
                    Err(e) => {
                        if let Some(key) = &start.use_key {
                            self.in_flight.remove(key);
                        }
                        return Err(e);
                    }
                }
            }
        };
        let away = matches!(machine, Home::Away(_));
        let mut session = Session {
            channel: Channel::new(sid, eid, me, participants.iter().copied()),
            participants: participants.to_vec(),
            peers,
            machine,
            purpose: start.purpose,
            use_key: start.use_key,
            last_active: self.now(),
            data_key: start.data_key,
        };
        let home = if away { "background" } else { "online" };
        info!(session = %hex_short(&sid), kind = name, home, "session started");
        if away {
            self.sessions.insert(sid, session);
            return Ok(Progress::Later);
        }
        let outgoing = match seal_all(identity, &mut session, start.first) {
            Ok(o) => o,
            Err(e) => {
                self.release(&session);
                return Err(e);
            }
        };
        self.sessions.insert(sid, session);
        Ok(Progress::Now(update(sid, outgoing, None)))
    }

    /// The execution id of session `sid` of `kind` among `participants`, with their identities
    /// as this enclave admitted them (`peers`, its own included): what every participant must
    /// have been asked to run for their envelopes to verify (ADR 0013, section 3).
    fn execution_id(
        &self,
        sid: &[u8; SESSION_ID_LEN],
        participants: &[u16],
        peers: &Roster,
        kind: &SessionKind,
    ) -> Result<[u8; 32], NodeError> {
        let pinned = self
            .genesis()?
            .pinned
            .as_ref()
            .ok_or(MembershipError::LegacyGenesis)?;
        let named = participants
            .iter()
            .map(|&node| {
                let keys = peers.get(node).ok_or_else(|| {
                    bad(format!(
                        "node {node} has not been admitted (no verified attestation)"
                    ))
                })?;
                Ok(Participant {
                    node,
                    signing: keys.signing,
                    encryption: keys.encryption,
                })
            })
            .collect::<Result<Vec<_>, NodeError>>()?;
        Ok(kind.execution_id(&pinned.cluster, &pinned.roster_digest, sid, &named))
    }

    /// Delivers envelopes to a running session. A background session's are opened here and
    /// stepped on its home thread, answered through `then` (`Node::resume`).
    pub fn deliver(
        &mut self,
        identity: &SecretIdentity,
        session: &[u8],
        envelopes: &[PeerEnvelope],
        then: &dyn Fn() -> Then,
    ) -> Result<Progress, NodeError> {
        let sid = session_id(session)?;
        self.expire_idle_sessions();
        // A round brings at most a broadcast and a direct message from each party: a delivery
        // of more is refused before any envelope is opened, since opening costs a signature
        // check each (helper-85, M1: tens of thousands in one delivery held the node's thread).
        if let Some(s) = self.sessions.get(&sid) {
            let most = s.participants.len().saturating_mul(ENVELOPES_PER_PARTY);
            if envelopes.len() > most {
                return Err(bad(format!(
                    "a delivery carries at most {most} envelopes in a session of {} parties",
                    s.participants.len()
                )));
            }
        }
        let mut s = self
            .sessions
            .remove(&sid)
            .ok_or_else(|| NodeError::Refused("unknown or finished session".into()))?;
        // Only a delivery with something in it keeps a session alive (helper-42, finding 3: an
        // empty one kept a signing session open for as long as a relay liked).
        if !envelopes.is_empty() {
            s.last_active = self.now();
        }
        // A signing session ends with its request's validity: a relay that held its rounds
        // back gets no signature for a request past its expiry.
        if let Purpose::Sign(signing) = &s.purpose
            && self.now() > signing.expiry
        {
            let outcome = failed(
                FailureCode::Refused,
                "the signing request expired while its session ran",
                vec![],
            );
            return Ok(Progress::Now(self.finish(sid, s, vec![], outcome)));
        }
        if matches!(s.machine, Home::Away(_)) {
            return Ok(self.deliver_away(identity, sid, s, envelopes, then));
        }
        let mut outgoing = Vec::new();
        for envelope in envelopes {
            match self.feed(identity, &mut s, envelope) {
                Ok((out, None)) => outgoing.extend(out),
                Ok((out, Some(outcome))) => {
                    outgoing.extend(out);
                    return Ok(Progress::Now(self.finish(sid, s, outgoing, outcome)));
                }
                Err(outcome) => {
                    return Ok(Progress::Now(self.finish(sid, s, outgoing, *outcome)));
                }
            }
        }
        self.sessions.insert(sid, s);
        Ok(Progress::Now(update(sid, outgoing, None)))
    }

    pub(super) fn finish(
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
                warn!(session = %hex_short(&sid), code = %code, message, ?culprits, "session failed");
                self.release(&s);
            }
            _ => {
                info!(session = %hex_short(&sid), "session done");
                self.consume(&s, &outcome);
            }
        }
        update(sid, outgoing, Some(outcome))
    }

    /// Feeds one envelope. `Err` carries the failure outcome.
    fn feed(
        &mut self,
        identity: &SecretIdentity,
        s: &mut Session,
        envelope: &PeerEnvelope,
    ) -> Result<(Vec<PeerEnvelope>, Option<Outcome>), Box<Outcome>> {
        let msg = s.open(identity, envelope)?;
        let (out, outcome) = self.step(s, msg).map_err(|e| match e {
            Stepped::Failed(e) => {
                let culprits = s.culprits(&e);
                Box::new(failed(FailureCode::Protocol, e.to_string(), culprits))
            }
            Stepped::Panicked(reason) => Box::new(failed(FailureCode::Internal, reason, vec![])),
        })?;
        let sealed = seal_all(identity, s, out)
            .map_err(|e| Box::new(failed(FailureCode::Internal, e.to_string(), vec![])))?;
        Ok((sealed, outcome))
    }

    /// Steps the session's machine with one message; a finished protocol's output is kept.
    ///
    /// A panic inside the machine is contained to this session (issue 18): the machine works
    /// on its own state only (this node's state is not borrowed while it runs), so the session
    /// fails with the reason, its state is dropped, and the enclave goes on. A panic anywhere
    /// else in the worker is the server's to handle (the enclave stops as `failed`).
    fn step(
        &mut self,
        s: &mut Session,
        msg: IncomingMessage,
    ) -> Result<(Vec<OutgoingMessage>, Option<Outcome>), Stepped> {
        #[cfg(test)]
        let inject = std::mem::take(&mut self.test.panic_next_step);
        let Home::Here(machine) = &mut s.machine else {
            return Err(Stepped::Failed(MpcError::Internal(
                "a background session is stepped on its worker".into(),
            )));
        };
        let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            #[cfg(test)]
            if inject {
                panic!("injected panic in a protocol machine");
            }
            machine.step(msg)
        }));
        let step = match stepped {
            Ok(step) => step.map_err(Stepped::Failed)?,
            Err(payload) => {
                let reason = format!(
                    "the protocol machine panicked: {}",
                    panic_reason(payload.as_ref())
                );
                warn!(session = %hex_short(&s.channel.session()), reason, "panic contained to its session");
                self.note_contained_panic(&reason);
                return Err(Stepped::Panicked(reason));
            }
        };
        Ok(match step {
            Step::Continue(out) => (out, None),
            Step::Done(product, out) => (
                out,
                Some(self.complete(s, product).map_err(Stepped::Failed)?),
            ),
        })
    }

    /// Abandons a session at the relay's request, releasing the request it held.
    pub fn abort_session(&mut self, session: &[u8]) -> Result<SessionUpdate, NodeError> {
        let sid = session_id(session)?;
        if let Some(s) = self.sessions.remove(&sid) {
            info!(session = %hex_short(&sid), "session aborted by the relay");
            self.release(&s);
        }
        // A session that had not started here yet (its start may still be on its way) is
        // remembered among the last few aborted, not forever: an abort of an unknown id costs
        // nothing that grows (issue 18). A started session's id is used already, and an id
        // that could not be started (expired, or too far ahead) needs no memory at all.
        else if !self.used_sessions.contains(&sid)
            && check_session_id(&sid, self.latest.max(self.now())).is_ok()
            && self.aborted_set.insert(sid)
        {
            if self.recently_aborted.len() == RECENTLY_ABORTED
                && let Some(oldest) = self.recently_aborted.pop_front()
            {
                self.aborted_set.remove(&oldest);
            }
            self.recently_aborted.push_back(sid);
        }
        let outcome = failed(FailureCode::Aborted, "session aborted by the relay", vec![]);
        Ok(update(sid, vec![], Some(outcome)))
    }

    /// Drops every signing and presigning session of key `key_id` and releases what each
    /// held: once the key's generation changes, nothing started under the old one (its shares,
    /// its approval policy) finishes (attacker review helper-42, finding 3). The relay learns
    /// it at its next delivery (`unknown or finished session`).
    pub(super) fn drop_sessions_of(&mut self, key_id: &str) {
        self.drop_sessions_where("a session of a retired generation dropped", |p| match p {
            Purpose::Sign(signing) => signing.key_id == key_id,
            Purpose::Presign(key, _) => key == key_id,
            _ => false,
        });
    }

    /// Whether a session that makes key material (a key creation, an import, a resharing) is
    /// running here.
    pub(super) fn makes_keys(&self) -> bool {
        self.sessions.values().any(|s| makes_keys(&s.purpose))
    }

    /// Whether an auxiliary-information run is in progress here (it makes the party set's
    /// auxiliary information, which the commit of a roster change must not outlive: attacker
    /// review helper-66, finding M3).
    pub(super) fn aux_running(&self) -> bool {
        self.sessions
            .values()
            .any(|s| matches!(s.purpose, Purpose::AuxInfo | Purpose::MoveAux(_)))
    }

    /// Drops every running session that makes key material on an admin approval (a key
    /// creation, an import, a resharing): an admin change ends what the replaced set approved
    /// (attacker review helper-45, finding 1). A scheduled refresh goes too; it runs again.
    pub(super) fn drop_admin_sessions(&mut self) {
        self.drop_sessions_where(
            "a session approved by a replaced admin set dropped",
            makes_keys,
        );
    }

    /// Drops every running signing and presigning session: a node that vouched for a roster
    /// change signs nothing until it commits (`Node::refuse_while_vouched`).
    pub(super) fn drop_signing_sessions(&mut self) {
        self.drop_sessions_where(
            "a signing session dropped: this node vouched for a roster change",
            |p| matches!(p, Purpose::Sign(_) | Purpose::Presign(..)),
        );
    }

    /// Drops the running sessions whose purpose `stale` picks, and releases what they held.
    fn drop_sessions_where(&mut self, why: &'static str, stale: impl Fn(&Purpose) -> bool) {
        let ids: Vec<[u8; SESSION_ID_LEN]> = self
            .sessions
            .iter()
            .filter(|(_, s)| stale(&s.purpose))
            .map(|(id, _)| *id)
            .collect();
        for sid in ids {
            if let Some(s) = self.sessions.remove(&sid) {
                warn!(session = %hex_short(&sid), "{why}");
                self.release(&s);
            }
        }
    }

    /// Drops sessions idle for longer than their limit and releases what they held.
    fn expire_idle_sessions(&mut self) {
        let now = self.now();
        let idle: Vec<[u8; SESSION_ID_LEN]> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.working() && now.saturating_sub(s.last_active) > s.idle_limit())
            .map(|(id, _)| *id)
            .collect();
        for sid in idle {
            if let Some(s) = self.sessions.remove(&sid) {
                warn!(session = %hex_short(&sid), "idle session dropped");
                self.release(&s);
            }
        }
    }
}

/// Why stepping a machine failed: the protocol's own error, or a panic contained to the
/// session (with its reason).
enum Stepped {
    Failed(MpcError),
    Panicked(String),
}

pub(super) fn seal_all(
    identity: &SecretIdentity,
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
        out.push(s.channel.seal(identity, &s.peers, to, &m.payload)?);
    }
    Ok(out)
}
