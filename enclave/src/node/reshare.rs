//! Resharing and refreshing a key the cluster holds (issue 19, ADR 0018, `docs/resharing.md`):
//! the dealers the admin-approved request names deal their Lagrange-weighted shares of the
//! key's current generation to every node — the Feldman commitments broadcast, each node's
//! sub-share point to point (encrypted to that node's attested identity key under the
//! session's execution id) — and every node checks every dealing against the public shares of
//! the generation it holds itself, confirms the same digest with every other node and seals
//! its share of the next generation as pending. The pending generation signs nothing until the
//! node is shown every node's receipt of it ([`Node::retire_generation`]); only then is the old
//! one dropped.
//!
//! The old committee comes from this node's own share, never from the request or the relay:
//! a dealer that deals anything but its share of this key fails the constant-term check, and
//! every envelope is signed by its sender, so a dealing is its dealer's word.

use std::collections::BTreeMap;

use protocol::policy::{Approved, Canonical};
use protocol::receipt::KeyReceipt;
use protocol::reshare::{
    MAX_REFRESH_EVERY, RESHARE_VERSION, ReshareKey, ScheduleError, scheduled_refresh,
};
use protocol::session::Outcome;
use reshare::generic_ec::{Curve, Point, SecretScalar};
use reshare::{Commitments, NewShare, OldCommittee, Points, ReshareError, sealed};
use serde_bytes::ByteBuf;
use sha2::Digest;
use zeroize::Zeroizing;

use super::keys::Share;
use super::machine::{Machine, Product};
use super::session::{Purpose, Start};
use super::single_use::{key_id_use, reshare_use};
use super::{Node, NodeError, bad, internal};
use crate::mpc::ecdsa::{SecretAuxInfo, SecretKeyShare};
use crate::mpc::eddsa::SecretEddsaShare;
use crate::mpc::{Held, IncomingMessage, MpcError, OutgoingMessage, PartyIndex, Step};
use crate::seal::BlobKind;

/// A dealer's commitments (broadcast): CBOR list of compressed points.
const COMMITMENTS: u8 = 1;
/// A dealer's sub-share for the receiver (point to point): 32 bytes, big-endian.
const SUB_SHARE: u8 = 2;
/// A node's confirmation (broadcast): the digest of the whole redistribution.
const CONFIRM: u8 = 3;

/// How a compromised dealer cheats (tests only: [`super::TestHook::CheatInNextDealing`]).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub enum Cheat {
    /// Deals a secret of its own instead of its share of the key.
    OtherSecret,
    /// Sends this node a sub-share off the committed polynomial.
    OffPolynomial(u16),
}

/// What a resharing session makes once it ends well: the next generation, pending.
#[derive(Clone)]
pub(super) struct Resharing {
    pub(super) key_id: String,
    /// The new generation.
    pub(super) generation: u32,
    pub(super) threshold: u16,
    /// SHA-256 of the approved request's canonical bytes (the new receipts name it).
    pub(super) request_hash: [u8; 32],
    /// What the request consumes once the session succeeds (`single_use::reshare_use`).
    pub(super) use_key: Vec<u8>,
    pub(super) created: u64,
    pub(super) expiry: u64,
    /// The new generation's refresh schedule (seconds; 0: off).
    pub(super) refresh_every: u64,
    /// The key's new policy, if the resharing replaces it (issue 20).
    pub(super) policy: Option<protocol::policy::KeyPolicy>,
}

/// An approved resharing is never marked `scheduled`: that mark is what tells the hash of an
/// unapproved request from the same bytes approved (attacker review helper-40).
pub(super) fn not_scheduled(r: &ReshareKey) -> Result<(), NodeError> {
    if r.scheduled {
        return Err(bad(
            "a resharing the admins approve is never marked scheduled",
        ));
    }
    Ok(())
}

/// Makes this node's key share of the new generation from its redistributed share.
type MakeShare<E> = Box<dyn FnOnce(NewShare<E>) -> Result<Share, MpcError>>;

/// One node's resharing: collects every dealer's commitments and its own sub-share from each,
/// checks them, makes its new share, and keeps it once every other node confirmed the same
/// digest. Party indices are node indices.
struct Reshare<E: Curve> {
    me: u16,
    threshold: u16,
    dealers: Vec<u16>,
    old: OldCommittee<E>,
    members: Points<E>,
    context: [u8; 32],
    others: usize,
    commitments: BTreeMap<u16, Commitments<E>>,
    sub_shares: BTreeMap<u16, SecretScalar<E>>,
    confirmations: BTreeMap<u16, [u8; 32]>,
    make: Option<MakeShare<E>>,
    made: Option<(Share, [u8; 32])>,
}

fn bad_message(from: PartyIndex, reason: impl Into<String>) -> MpcError {
    MpcError::BadMessage {
        from,
        reason: reason.into(),
    }
}

/// A dealing refused by the protocol's checks, blaming the dealer it names.
fn blame(e: ReshareError, dealers: &[u16]) -> MpcError {
    let position = match &e {
        ReshareError::ConstantTerm(i)
        | ReshareError::SubShare(i)
        | ReshareError::Encoding { index: i, .. }
        | ReshareError::CommitmentLength { dealer: i, .. } => Some(*i),
        _ => None,
    };
    let dealer = position.and_then(|i| dealers.get(i).copied().map(|node| (i, node)));
    MpcError::Aborted {
        culprits: dealer.map(|(_, node)| node).into_iter().collect(),
        reason: match dealer {
            Some((i, node)) => {
                format!("the dealing of node {node} (dealer {i} of the request) is refused: {e}")
            }
            None => format!("the resharing is refused: {e}"),
        },
    }
}

impl<E: Curve> Reshare<E> {
    fn dealer_position(&self, from: PartyIndex) -> Result<usize, MpcError> {
        self.dealers
            .iter()
            .position(|d| *d == from)
            .ok_or_else(|| bad_message(from, "a dealing from a node the request does not name"))
    }

    fn take_commitments(&mut self, from: PartyIndex, body: &[u8]) -> Result<(), MpcError> {
        let position = self.dealer_position(from)?;
        if self.commitments.contains_key(&from) {
            return Err(bad_message(from, "a second set of commitments"));
        }
        let list: Vec<ByteBuf> = ciborium::from_reader(body)
            .map_err(|e| bad_message(from, format!("commitments do not decode: {e}")))?;
        if list.len() != usize::from(self.threshold) {
            return Err(blame(
                ReshareError::CommitmentLength {
                    dealer: position,
                    got: list.len(),
                    want: usize::from(self.threshold),
                },
                &self.dealers,
            ));
        }
        let points = list
            .iter()
            .map(|c| sealed::point::<E>(c, false, "a commitment of dealer", position))
            .collect::<Result<Vec<Point<E>>, _>>()
            .map_err(|e| blame(e, &self.dealers))?;
        let commitments = Commitments::new(points);
        // The constant term at once: a dealer that does not deal its share of this key is
        // named before anything else of it is looked at.
        self.old
            .check_commitments(position, &commitments, self.threshold)
            .map_err(|e| blame(e, &self.dealers))?;
        self.commitments.insert(from, commitments);
        Ok(())
    }

    fn take_sub_share(&mut self, from: PartyIndex, body: &[u8]) -> Result<(), MpcError> {
        let position = self.dealer_position(from)?;
        if self.sub_shares.contains_key(&from) {
            return Err(bad_message(from, "a second sub-share"));
        }
        let mut scalar = sealed::scalar::<E>(body, "the sub-share of dealer", position)
            .map_err(|e| blame(e, &self.dealers))?;
        self.sub_shares.insert(from, SecretScalar::new(&mut scalar));
        Ok(())
    }

    /// Once every dealing is in: checks them all and makes the new share; once every other
    /// node confirmed the same digest: done.
    fn advance(&mut self) -> Result<Step<Product>, MpcError> {
        let mut out = Vec::new();
        let complete = self.commitments.len() == self.dealers.len()
            && self.sub_shares.len() == self.dealers.len();
        if self.made.is_none() && complete {
            let mut dealt = Vec::with_capacity(self.dealers.len());
            for d in &self.dealers {
                let c = self.commitments.get(d).cloned();
                let s = self.sub_shares.remove(d);
                let (Some(c), Some(s)) = (c, s) else {
                    return Err(MpcError::Internal("a dealing went missing".into()));
                };
                dealt.push((c, s));
            }
            let new = reshare::receive(
                &self.old,
                &self.members,
                self.threshold,
                usize::from(self.me),
                &dealt,
            )
            .map_err(|e| blame(e, &self.dealers))?;
            let all: Vec<Commitments<E>> = dealt.into_iter().map(|(c, _)| c).collect();
            let digest = reshare::commitments_digest(
                &self.context,
                &self.old,
                &self.members,
                self.threshold,
                &all,
            );
            let make = self
                .make
                .take()
                .ok_or_else(|| MpcError::Internal("the share was made already".into()))?;
            self.made = Some((make(new)?, digest));
            let mut payload = Zeroizing::new(Vec::with_capacity(33));
            payload.push(CONFIRM);
            payload.extend_from_slice(&digest);
            out.push(OutgoingMessage { to: None, payload });
        }
        if let Some((_, digest)) = &self.made {
            if let Some((from, _)) = self.confirmations.iter().find(|(_, d)| *d != digest) {
                return Err(MpcError::Aborted {
                    culprits: vec![*from],
                    reason: format!(
                        "node {from} confirmed another redistribution (its digest differs): \
                         the dealings it checked are not the ones this node checked"
                    ),
                });
            }
            if self.confirmations.len() == self.others {
                let (share, _) = self
                    .made
                    .take()
                    .ok_or_else(|| MpcError::Internal("the new share is gone".into()))?;
                return Ok(Step::Done(Product::Share(share), out));
            }
        }
        Ok(Step::Continue(out))
    }
}

impl<E: Curve> Machine for Reshare<E> {
    fn step(&mut self, msg: IncomingMessage) -> Result<Step<Product>, MpcError> {
        let from = msg.from;
        let Some((&tag, body)) = msg.payload.split_first() else {
            return Err(bad_message(from, "an empty message"));
        };
        match (tag, msg.broadcast) {
            (COMMITMENTS, true) => self.take_commitments(from, body)?,
            (SUB_SHARE, false) => self.take_sub_share(from, body)?,
            (CONFIRM, true) => {
                let digest: [u8; 32] = body
                    .try_into()
                    .map_err(|_| bad_message(from, "a confirmation is 32 bytes"))?;
                if self.confirmations.insert(from, digest).is_some() {
                    return Err(bad_message(from, "a second confirmation"));
                }
            }
            _ => return Err(bad_message(from, "not a message of a resharing")),
        }
        self.advance()
    }

    fn positional(&self) -> bool {
        false
    }
}

/// A node's place in a resharing: its index among nodes `0..nodes`, the key's current
/// threshold and the request's hash.
#[derive(Clone, Copy)]
struct Part {
    me: u16,
    nodes: u16,
    old_threshold: u16,
    context: [u8; 32],
}

/// Starts node `me`'s part (of nodes `0..nodes`): the old committee from its own share, and
/// its dealing if it is a dealer.
fn start<E: Curve>(
    held: Held<E>,
    part: Part,
    request: &ReshareKey,
    make: MakeShare<E>,
    cheat: Option<Cheat>,
) -> Result<(Reshare<E>, Vec<OutgoingMessage>), ReshareError> {
    let Part {
        me,
        nodes,
        old_threshold,
        context,
    } = part;
    let dealer_points = Points::<E>::of_indices(&request.dealers)?;
    let public_shares = request
        .dealers
        .iter()
        .map(|d| {
            held.public_shares
                .get(usize::from(*d))
                .copied()
                .ok_or(ReshareError::Member(usize::from(*d)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let old = OldCommittee::new(
        dealer_points.clone(),
        public_shares,
        old_threshold,
        held.public_key,
    )?;
    let members = Points::<E>::of_indices(&(0..nodes).collect::<Vec<_>>())?;
    let mut machine = Reshare {
        me,
        threshold: request.threshold,
        dealers: request.dealers.clone(),
        old,
        members,
        context,
        others: usize::from(nodes).saturating_sub(1),
        commitments: BTreeMap::new(),
        sub_shares: BTreeMap::new(),
        confirmations: BTreeMap::new(),
        make: Some(make),
        made: None,
    };
    let mut first = Vec::new();
    if let Some(position) = request.dealers.iter().position(|d| *d == me) {
        let own = held
            .public_shares
            .get(usize::from(me))
            .ok_or(ReshareError::Member(usize::from(me)))?;
        let (secret, public) = match cheat {
            Some(Cheat::OtherSecret) => {
                let other = SecretScalar::<E>::random(&mut rand::rngs::OsRng);
                let public = Point::generator() * &other;
                (other, public)
            }
            _ => (held.secret, *own),
        };
        let mut dealing = reshare::deal(
            &mut rand::rngs::OsRng,
            &dealer_points,
            position,
            &secret,
            &public,
            &machine.members,
            request.threshold,
        )?;
        if let Some(Cheat::OffPolynomial(node)) = cheat
            && let Some(s) = dealing.sub_shares.get_mut(usize::from(node))
        {
            let mut off = reshare::generic_ec::Scalar::<E>::one() + s.as_ref();
            *s = SecretScalar::new(&mut off);
        }
        let list: Vec<ByteBuf> = dealing
            .commitments
            .as_slice()
            .iter()
            .map(|c| ByteBuf::from(c.to_bytes(true).as_ref().to_vec()))
            .collect();
        let mut payload = Zeroizing::new(vec![COMMITMENTS]);
        ciborium::into_writer(&list, &mut *payload).map_err(|_| ReshareError::Sealed(position))?;
        first.push(OutgoingMessage { to: None, payload });
        for (node, sub_share) in (0u16..).zip(dealing.sub_shares) {
            if node == me {
                machine.sub_shares.insert(me, sub_share);
                continue;
            }
            let mut payload = Zeroizing::new(Vec::with_capacity(33));
            payload.push(SUB_SHARE);
            let mut encoded = sub_share.as_ref().to_be_bytes();
            payload.extend_from_slice(encoded.as_ref());
            zeroize::Zeroize::zeroize(encoded.as_mut());
            first.push(OutgoingMessage {
                to: Some(node),
                payload,
            });
        }
        machine.commitments.insert(me, dealing.commitments);
    }
    Ok((machine, first))
}

impl Node {
    /// Starts a resharing (all nodes, in index order): checks the request against this node's
    /// own record of the key, and deals if it is one of the dealers.
    pub(super) fn start_reshare(
        &mut self,
        participants: &[u16],
        request: &Approved<ReshareKey>,
    ) -> Result<Start, NodeError> {
        if !self.all_nodes(participants)? {
            return Err(bad("a resharing involves all nodes, in index order"));
        }
        let cheat = self.take_cheat();
        let r = &request.request;
        let g = self.check_request((r.v, RESHARE_VERSION), &r.cluster, &r.request_id)?;
        let (me, nodes) = (g.node, g.nodes);
        self.authorize_reshare(request)?;
        let use_key = reshare_use(r);
        self.guard
            .check(&use_key, r.created, r.expiry, self.now())?;
        let key = self
            .keys
            .get(&r.key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {}", r.key_id)))?;
        if key.generation != r.generation {
            return Err(NodeError::Refused(format!(
                "key {} is at generation {} here; the request reshares generation {}",
                r.key_id, key.generation, r.generation
            )));
        }
        // One resharing of a generation at a time, everywhere: a pending generation is never
        // replaced, only retired into (every node sealed it) or abandoned (every node disowned
        // it, `node/resolve.rs`). Replacing it at some nodes would let a coordinator retire one resharing at
        // some nodes and another elsewhere (attacker review helper-36).
        if let Some(p) = &key.pending {
            return Err(NodeError::Refused(format!(
                "key {} has a pending generation {} (request sha256 {}): it is resolved (retired \
                 into or abandoned) first",
                r.key_id,
                p.generation,
                p.request_hash
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )));
        }
        let next = r
            .generation
            .checked_add(1)
            .ok_or_else(|| bad("the key is at its last generation"))?;
        if r.threshold < 2 || r.threshold > nodes {
            return Err(bad("threshold must be between 2 and the number of nodes"));
        }
        let increasing = r.dealers.windows(2).all(|w| w[0] < w[1]);
        if !increasing
            || r.dealers.iter().any(|d| *d >= nodes)
            || r.dealers.len() < usize::from(key.threshold)
        {
            return Err(bad(format!(
                "the dealers must be at least the key's threshold ({}) of its nodes, each once, \
                 in increasing order (got {:?})",
                key.threshold, r.dealers
            )));
        }
        let request_hash: [u8; 32] = sha2::Sha256::digest(r.canonical_bytes()).into();
        let threshold = r.threshold;
        if r.refresh_every.is_some_and(|s| s > MAX_REFRESH_EVERY) {
            return Err(bad(format!(
                "a refresh schedule is at most {MAX_REFRESH_EVERY} s (ten years)"
            )));
        }
        let refresh_every = r.refresh_every.unwrap_or(key.schedule.every);
        if let Some(policy) = &r.policy {
            policy
                .check()
                .map_err(|e| bad(format!("the key's new policy: {e}")))?;
        }
        let part = Part {
            me,
            nodes,
            old_threshold: key.threshold,
            context: request_hash,
        };
        let refused = |e: ReshareError| bad(format!("resharing refused: {e}"));
        let (machine, first, kind): (Box<dyn Machine>, _, _) = match &key.share {
            Share::Ecdsa(share) => {
                let held = share.held().map_err(internal)?;
                let chain_code = share.extended_public_key().chain_code;
                let aux = self.aux.as_ref().ok_or_else(|| {
                    NodeError::Refused("ECDSA keys need auxiliary info first".into())
                })?;
                let aux = SecretAuxInfo::from_bytes(&aux.to_bytes().map_err(internal)?)
                    .map_err(internal)?;
                let make: MakeShare<_> = Box::new(move |new| {
                    SecretKeyShare::from_redistributed(me, new, threshold, chain_code, aux)
                        .map(Share::from)
                });
                let (m, first) = start(held, part, r, make, cheat).map_err(refused)?;
                (Box::new(m), first, BlobKind::EcdsaShare)
            }
            Share::Eddsa(share) => {
                let held = share.held().map_err(internal)?;
                let make: MakeShare<_> = Box::new(move |new| {
                    SecretEddsaShare::from_redistributed(me, new, threshold)
                        .map(|s| Share::from(Box::new(s)))
                });
                let (m, first) = start(held, part, r, make, cheat).map_err(refused)?;
                (Box::new(m), first, BlobKind::EddsaShare)
            }
        };
        let data_key = self.sealing.data_key(kind, &r.key_id)?;
        // Held for the whole resharing: no other resharing or import of this key id meanwhile.
        let hold = key_id_use(&r.key_id);
        self.claim(&hold)?;
        let resharing = Resharing {
            key_id: r.key_id.clone(),
            generation: next,
            threshold,
            request_hash,
            use_key,
            created: r.created,
            expiry: r.expiry,
            refresh_every,
            policy: r.policy.clone(),
        };
        Ok(Start::new(machine, Purpose::ReshareKey(resharing), first)
            .holding(hold)
            .sealed_under(data_key))
    }

    /// Whether `request` may start a resharing of its key here: approved by the admin quorum,
    /// or, with no approvals at all, a refresh the key's sealed schedule allows now by this
    /// enclave's clock ([`protocol::reshare::scheduled_refresh`]).
    pub(super) fn authorize_reshare(
        &self,
        request: &Approved<ReshareKey>,
    ) -> Result<(), NodeError> {
        let r = &request.request;
        if !request.approvals.is_empty() {
            self.genesis()?
                .check_admins(r, &request.approvals, r.admins)?;
            return not_scheduled(r);
        }
        let key = self
            .keys
            .get(&r.key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {}", r.key_id)))?;
        match scheduled_refresh(r, key.threshold, key.schedule, self.now()) {
            Ok(()) => Ok(()),
            Err(e @ ScheduleError::NotDue { .. }) => Err(NodeError::NotYet(format!(
                "an unapproved refresh of key {}: {e}",
                r.key_id
            ))),
            Err(e) => Err(NodeError::Refused(format!(
                "an unapproved resharing of key {}: {e}",
                r.key_id
            ))),
        }
    }

    #[cfg(test)]
    fn take_cheat(&mut self) -> Option<Cheat> {
        self.test.cheat.take()
    }

    #[cfg(not(test))]
    fn take_cheat(&mut self) -> Option<Cheat> {
        None
    }

    /// Makes key `key_id`'s pending generation `generation` its current one, once `receipts`
    /// (one node-key signature per node, by index) show that every node of the roster sealed
    /// exactly that generation: the same public key, chain code, threshold and request. Drops
    /// the old generation's share and its presignatures. Answered again (the current share
    /// sealed anew) when `generation` is current already, so a relay that lost the answer can
    /// finish.
    ///
    /// A pending generation this node froze (it disowned it) is retired into only with
    /// `thaw`: another roster node's signed statement that the generation is current there
    /// (`protocol::reshare::retired_message`). That node was shown every node's receipt, and,
    /// current there, it never signs that the generation is disowned, so the generation can
    /// never be abandoned anywhere: this node's own disowning statement can never count, and
    /// staying frozen would only leave the key split between generations (attacker review
    /// helper-39, finding 1, the open attack of helper-37).
    pub(super) fn retire_generation(
        &mut self,
        key_id: &str,
        generation: u32,
        receipts: &[ByteBuf],
        thaw: Option<&(u16, ByteBuf)>,
    ) -> Result<Outcome, NodeError> {
        let g = self.genesis()?;
        let roster = &g
            .pinned
            .as_ref()
            .ok_or(super::MembershipError::LegacyGenesis)?
            .roster;
        let cluster = g
            .cluster_id()
            .ok_or(super::MembershipError::LegacyGenesis)?;
        let nodes = g.nodes;
        if self.in_flight.contains(&key_id_use(key_id)) {
            return Err(NodeError::InProgress(format!(
                "a session of key {key_id} that changes its shares is running"
            )));
        }
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {key_id}")))?;
        if generation == 0 {
            return Err(bad(
                "generation 0 is a key's first: nothing is retired into it",
            ));
        }
        if key.generation == generation && key.pending.is_none() {
            let request = key.request.ok_or_else(|| {
                NodeError::Refused(format!(
                    "key {key_id}'s current generation names no request"
                ))
            })?;
            let sealed = self.seal_as_current(key_id, false)?;
            let statement = self.retired_statement(key_id, generation, &request)?;
            return Ok(Outcome::GenerationRetired {
                key_id: key_id.to_string(),
                generation,
                sealed: ByteBuf::from(sealed),
                statement: ByteBuf::from(statement),
            });
        }
        let pending = key
            .pending
            .as_ref()
            .filter(|p| p.generation == generation)
            .ok_or_else(|| {
                NodeError::Refused(format!(
                    "key {key_id} has no pending generation {generation} here (current {})",
                    key.generation
                ))
            })?;
        if pending.frozen {
            let pinned = g
                .pinned
                .as_ref()
                .ok_or(super::MembershipError::LegacyGenesis)?;
            let shown = thaw.is_some_and(|(node, statement)| {
                *node != g.node
                    && pinned.roster.get(usize::from(*node)).is_some_and(|entry| {
                        entry.signed(
                            &protocol::reshare::retired_message(
                                &cluster,
                                *node,
                                key_id,
                                generation,
                                &pending.request_hash,
                            ),
                            statement,
                        )
                    })
            });
            if !shown {
                return Err(NodeError::Refused(format!(
                    "generation {generation} of key {key_id} is frozen here (disowned): it is \
                     retired into only on another node's signed word that it is current there, \
                     else abandoned"
                )));
            }
        }
        if receipts.len() != usize::from(nodes) {
            return Err(NodeError::Refused(format!(
                "retiring into generation {generation} takes every node's receipt ({nodes}), \
                 not {}",
                receipts.len()
            )));
        }
        let (public_key, chain_code) = pending.share.public_key();
        let claimed = KeyReceipt {
            v: protocol::receipt::KEY_RECEIPT_VERSION,
            cluster,
            node: 0,
            key_id: key_id.to_string(),
            scheme: pending.share.scheme(),
            threshold: pending.threshold,
            participants: (0..nodes).collect(),
            public_key: ByteBuf::from(public_key),
            chain_code: chain_code.map(ByteBuf::from),
            generation,
            request: ByteBuf::from(pending.request_hash.to_vec()),
            policy_version: 0,
            policy: None,
        }
        .with_policy(pending.policy.version, &pending.policy.policy);
        for (node, (signature, entry)) in (0u16..).zip(receipts.iter().zip(roster)) {
            let receipt = KeyReceipt {
                node,
                ..claimed.clone()
            };
            if !entry.signed(&receipt.message(), signature) {
                return Err(NodeError::Refused(format!(
                    "node {node}'s receipt does not show it sealed generation {generation} of \
                     key {key_id} as this node did (same key, threshold and request): the old \
                     generation stays"
                )));
            }
        }
        // Sealed and signed before anything changes: if either fails, the old generation stays
        // current.
        let request = pending.request_hash;
        let sealed = self.seal_as_current(key_id, true)?;
        let statement = self.retired_statement(key_id, generation, &request)?;
        self.promote(key_id)?;
        self.presignatures.retain(|_, p| p.key_id != key_id);
        self.drop_sessions_of(key_id);
        tracing::info!(key = key_id, generation, "generation retired into");
        Ok(Outcome::GenerationRetired {
            key_id: key_id.to_string(),
            generation,
            sealed: ByteBuf::from(sealed),
            statement: ByteBuf::from(statement),
        })
    }

    /// This node's signed statement that generation `generation` of key `key_id`, made by the
    /// resharing whose hash is `request`, is the one it signs with
    /// (`protocol::reshare::retired_message`).
    fn retired_statement(
        &self,
        key_id: &str,
        generation: u32,
        request: &[u8; 32],
    ) -> Result<Vec<u8>, NodeError> {
        let g = self.genesis()?;
        let cluster = g
            .cluster_id()
            .ok_or(super::MembershipError::LegacyGenesis)?;
        let message =
            protocol::reshare::retired_message(&cluster, g.node, key_id, generation, request);
        Ok(self
            .node_key
            .as_ref()
            .ok_or_else(|| NodeError::Internal("no node key".into()))?
            .key
            .sign(&message)
            .map_err(|e| NodeError::Internal(e.to_string()))?
            .to_vec())
    }
}
