//! One party's part in a redistribution (`docs/resharing.md`), by party index in its session.
//!
//! A party deals (its share of the key's current generation, to every receiver), receives
//! (checks every dealing against the old committee and makes its share of the next
//! generation), or both; every party then confirms the digest of the whole redistribution and
//! waits for every other party's equal digest. Within the roster (issue 19) every node receives
//! and the dealers are nodes of the same roster, so party indices are node indices. Across a
//! roster change (issue 20) the dealers are nodes of the current roster, named by their index
//! in it, and the receivers are the new roster's nodes in its index order, whatever their party
//! index: a node leaving only deals, a node joining only receives ([`Committee`]).
//!
//! The old committee — the dealers' public shares and the key — is what every dealing is
//! checked against. A party that holds a share of the key takes it from that share, never from
//! the request or the relay; a party that holds none (a node joining) is given it, and the
//! confirmed digest covers it, so its view is the view of every party that holds a share.

use std::collections::{BTreeMap, BTreeSet};

use reshare::generic_ec::{Curve, Point, SecretScalar};
use reshare::{Commitments, NewShare, OldCommittee, Points, ReshareError, sealed};
use serde_bytes::ByteBuf;
use zeroize::Zeroizing;

use super::keys::Share;
use super::machine::{Machine, Product};
use crate::mpc::{Held, IncomingMessage, MpcError, OutgoingMessage, PartyIndex, Step};

/// A dealer's commitments (broadcast): CBOR list of compressed points.
const COMMITMENTS: u8 = 1;
/// A dealer's sub-share for the receiver (point to point): 32 bytes, big-endian.
const SUB_SHARE: u8 = 2;
/// A party's confirmation (broadcast): the digest of the whole redistribution.
const CONFIRM: u8 = 3;

/// How a compromised dealer cheats (tests only: [`super::TestHook::CheatInNextDealing`]).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub enum Cheat {
    /// Deals a secret of its own instead of its share of the key.
    OtherSecret,
    /// Sends the receiver at this index of the new roster a sub-share off the committed
    /// polynomial.
    OffPolynomial(u16),
}

/// Makes this party's key share of the new generation from its redistributed share and its
/// index among the receivers (the committee's, never the caller's idea of it: across a roster
/// change a node that stays may move to a lower index).
pub(super) type MakeShare<E> = Box<dyn FnOnce(u16, NewShare<E>) -> Result<Share, MpcError>>;

/// Who deals and who receives, by party index in the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Committee {
    /// The dealers: (party, its index in the roster the current generation was dealt to), by
    /// increasing index.
    pub(super) dealers: Vec<(PartyIndex, u16)>,
    /// The receivers in the index order of the roster the next generation is dealt to: the
    /// receiver at index `j` is party `receivers[j]` (evaluation point `j + 1`).
    pub(super) receivers: Vec<PartyIndex>,
}

impl Committee {
    /// Within one roster of `nodes` nodes: the `dealers` (node indices) deal, every node
    /// receives at its own index.
    pub(super) fn within(nodes: u16, dealers: &[u16]) -> Self {
        Self {
            dealers: dealers.iter().map(|d| (*d, *d)).collect(),
            receivers: (0..nodes).collect(),
        }
    }

    /// Every party, dealer or receiver.
    fn parties(&self) -> BTreeSet<PartyIndex> {
        self.dealers
            .iter()
            .map(|(p, _)| *p)
            .chain(self.receivers.iter().copied())
            .collect()
    }

    /// Dealers by strictly increasing index, no party dealing twice or receiving at two
    /// indices, and at least one of each.
    fn check(&self) -> Result<(), StartError> {
        let increasing = self.dealers.windows(2).all(|w| w[0].1 < w[1].1);
        let dealer_parties: BTreeSet<_> = self.dealers.iter().map(|(p, _)| *p).collect();
        if !increasing || dealer_parties.len() != self.dealers.len() || self.dealers.is_empty() {
            return Err(StartError::Committee(
                "the dealers are one party each, by strictly increasing index",
            ));
        }
        let receivers: BTreeSet<_> = self.receivers.iter().collect();
        if receivers.len() != self.receivers.len() || self.receivers.is_empty() {
            return Err(StartError::Committee(
                "the receivers are one party each, at one index each",
            ));
        }
        Ok(())
    }
}

/// Why a party cannot start its part.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    /// The committee is not one (a party twice, dealers out of order, no receiver).
    #[error("{0}")]
    Committee(&'static str),
    /// This party is neither a dealer nor a receiver.
    #[error("this node neither deals nor receives")]
    NotAParty,
    /// This party deals but holds no share of the key's current generation.
    #[error("this node deals but holds no share of the key")]
    NoShare,
    /// The redistribution itself refuses (`docs/resharing.md`).
    #[error(transparent)]
    Reshare(#[from] ReshareError),
}

/// What a party knows of the key's current generation: every holder's public share by index
/// in the roster it was dealt to, the key, and this party's own share if it holds one.
pub(super) struct OldKey<E: Curve> {
    pub(super) public_shares: Vec<Point<E>>,
    pub(super) public_key: Point<E>,
    pub(super) secret: Option<SecretScalar<E>>,
}

impl<E: Curve> From<Held<E>> for OldKey<E> {
    fn from(held: Held<E>) -> Self {
        Self {
            public_shares: held.public_shares,
            public_key: held.public_key,
            secret: Some(held.secret),
        }
    }
}

/// A party's place in a redistribution: its party index, who deals and receives, the key's
/// current threshold, the next generation's, and the context every digest names (the request
/// or change it carries out).
#[derive(Clone)]
pub(super) struct Part {
    pub(super) me: PartyIndex,
    pub(super) committee: Committee,
    pub(super) old_threshold: u16,
    pub(super) threshold: u16,
    pub(super) context: [u8; 32],
}

/// One party's redistribution: collects every dealer's commitments and, if it receives, its
/// own sub-share from each; checks them; makes its new share; and keeps it once every other
/// party confirmed the same digest.
pub(super) struct Redistribution<E: Curve> {
    /// Its index among the receivers (in the new roster), if it receives.
    receiver: Option<u16>,
    /// Whether its view of the old committee was given to it (it holds no share of the key):
    /// a dealing that does not fit that view may be the giver's lie, not the dealer's, so no
    /// dealer is blamed for it.
    view_given: bool,
    threshold: u16,
    /// The dealers' parties, in dealer order.
    dealers: Vec<PartyIndex>,
    old: OldCommittee<E>,
    members: Points<E>,
    context: [u8; 32],
    /// Every party but this one: the confirmations it waits for.
    others: BTreeSet<PartyIndex>,
    commitments: BTreeMap<PartyIndex, Commitments<E>>,
    sub_shares: BTreeMap<PartyIndex, SecretScalar<E>>,
    confirmations: BTreeMap<PartyIndex, [u8; 32]>,
    make: Option<MakeShare<E>>,
    /// Once every dealing is in: the new share (a receiver's) and the digest it confirmed.
    made: Option<(Option<Share>, [u8; 32])>,
}

fn bad_message(from: PartyIndex, reason: impl Into<String>) -> MpcError {
    MpcError::BadMessage {
        from,
        reason: reason.into(),
    }
}

/// A dealing refused by the protocol's checks, blaming the dealer it names (by party). With a
/// view of the old committee that was given (`view_given`), a dealing that does not fit that
/// view blames no one: the giver may have lied (attacker review helper-62, finding 6); a
/// sub-share off its dealer's own commitments, or bytes that do not decode, are the dealer's
/// alone.
fn blame(e: ReshareError, dealers: &[PartyIndex], view_given: bool) -> MpcError {
    let position = match &e {
        ReshareError::SubShare(i) | ReshareError::Encoding { index: i, .. } => Some(*i),
        ReshareError::ConstantTerm(i) | ReshareError::CommitmentLength { dealer: i, .. }
            if !view_given =>
        {
            Some(*i)
        }
        _ => None,
    };
    let dealer = position.and_then(|i| dealers.get(i).copied().map(|node| (i, node)));
    MpcError::Aborted {
        culprits: dealer.map(|(_, node)| node).into_iter().collect(),
        reason: match dealer {
            Some((i, node)) => {
                format!("the dealing of node {node} (dealer {i} of the request) is refused: {e}")
            }
            None if view_given => format!(
                "the resharing is refused: {e} (against the view of the key this node was \
                 given: the giver or a dealer lied)"
            ),
            None => format!("the resharing is refused: {e}"),
        },
    }
}

impl<E: Curve> Redistribution<E> {
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
                self.view_given,
            ));
        }
        let points = list
            .iter()
            .map(|c| sealed::point::<E>(c, false, "a commitment of dealer", position))
            .collect::<Result<Vec<Point<E>>, _>>()
            .map_err(|e| blame(e, &self.dealers, self.view_given))?;
        let commitments = Commitments::new(points);
        // The constant term at once: a dealer that does not deal its share of this key is
        // named before anything else of it is looked at.
        self.old
            .check_commitments(position, &commitments, self.threshold)
            .map_err(|e| blame(e, &self.dealers, self.view_given))?;
        self.commitments.insert(from, commitments);
        Ok(())
    }

    fn take_sub_share(&mut self, from: PartyIndex, body: &[u8]) -> Result<(), MpcError> {
        let position = self.dealer_position(from)?;
        if self.receiver.is_none() {
            return Err(bad_message(
                from,
                "a sub-share to a node that receives none (it leaves the roster)",
            ));
        }
        if self.sub_shares.contains_key(&from) {
            return Err(bad_message(from, "a second sub-share"));
        }
        let mut scalar = sealed::scalar::<E>(body, "the sub-share of dealer", position)
            .map_err(|e| blame(e, &self.dealers, self.view_given))?;
        self.sub_shares.insert(from, SecretScalar::new(&mut scalar));
        Ok(())
    }

    /// Once every dealing is in: checks them all, makes the new share (a receiver) and
    /// confirms the digest; once every other party confirmed the same digest: done.
    fn advance(&mut self) -> Result<Step<Product>, MpcError> {
        let mut out = Vec::new();
        let complete = self.commitments.len() == self.dealers.len()
            && (self.receiver.is_none() || self.sub_shares.len() == self.dealers.len());
        if self.made.is_none() && complete {
            let all = self
                .dealers
                .iter()
                .map(|d| self.commitments.get(d).cloned())
                .collect::<Option<Vec<Commitments<E>>>>()
                .ok_or_else(|| MpcError::Internal("a dealing went missing".into()))?;
            let share =
                match self.receiver {
                    Some(me) => {
                        let mut dealt = Vec::with_capacity(self.dealers.len());
                        for (d, c) in self.dealers.iter().zip(&all) {
                            let s = self.sub_shares.remove(d).ok_or_else(|| {
                                MpcError::Internal("a dealing went missing".into())
                            })?;
                            dealt.push((c.clone(), s));
                        }
                        let new = reshare::receive(
                            &self.old,
                            &self.members,
                            self.threshold,
                            usize::from(me),
                            &dealt,
                        )
                        .map_err(|e| blame(e, &self.dealers, self.view_given))?;
                        let make = self.make.take().ok_or_else(|| {
                            MpcError::Internal("the share was made already".into())
                        })?;
                        Some(make(me, new)?)
                    }
                    None => None,
                };
            let digest = reshare::commitments_digest(
                &self.context,
                &self.old,
                &self.members,
                self.threshold,
                &all,
            );
            self.made = Some((share, digest));
            let mut payload = Zeroizing::new(Vec::with_capacity(33));
            payload.push(CONFIRM);
            payload.extend_from_slice(&digest);
            out.push(OutgoingMessage { to: None, payload });
        }
        if let Some((_, digest)) = &self.made {
            if let Some((from, _)) = self.confirmations.iter().find(|(_, d)| *d != digest) {
                // No one is blamed: a dealer that sent other commitments to other parties (a
                // broadcast has no echo round), or a party given another view of the key,
                // makes an honest party confirm another digest (helper-62, finding 7).
                return Err(MpcError::Aborted {
                    culprits: vec![],
                    reason: format!(
                        "node {from} confirmed another redistribution (its digest differs): \
                         the dealings or the view of the key it checked are not the ones this \
                         node checked"
                    ),
                });
            }
            if self.confirmations.len() == self.others.len() {
                let (share, confirmed) = self
                    .made
                    .take()
                    .ok_or_else(|| MpcError::Internal("the new share is gone".into()))?;
                return Ok(Step::Done(Product::Redistributed { share, confirmed }, out));
            }
        }
        Ok(Step::Continue(out))
    }
}

impl<E: Curve> Machine for Redistribution<E> {
    fn step(&mut self, msg: IncomingMessage) -> Result<Step<Product>, MpcError> {
        let from = msg.from;
        let Some((&tag, body)) = msg.payload.split_first() else {
            return Err(bad_message(from, "an empty message"));
        };
        match (tag, msg.broadcast) {
            (COMMITMENTS, true) => self.take_commitments(from, body)?,
            (SUB_SHARE, false) => self.take_sub_share(from, body)?,
            (CONFIRM, true) => {
                if !self.others.contains(&from) {
                    return Err(bad_message(from, "a confirmation from no party"));
                }
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

/// Starts party `part.me`'s redistribution: the old committee from `old` (its own share's
/// view, or the one it was given if it holds none), and its dealing if it is a dealer.
/// `make` is used only if it receives.
pub(super) fn start<E: Curve>(
    old: OldKey<E>,
    part: Part,
    make: MakeShare<E>,
    cheat: Option<Cheat>,
) -> Result<(Redistribution<E>, Vec<OutgoingMessage>), StartError> {
    let Part {
        me,
        committee,
        old_threshold,
        threshold,
        context,
    } = part;
    committee.check()?;
    let indices: Vec<u16> = committee.dealers.iter().map(|(_, i)| *i).collect();
    let dealer_points = Points::<E>::of_indices(&indices)?;
    let public_shares = indices
        .iter()
        .map(|d| {
            old.public_shares
                .get(usize::from(*d))
                .copied()
                .ok_or(ReshareError::Member(usize::from(*d)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let old_committee = OldCommittee::new(
        dealer_points.clone(),
        public_shares,
        old_threshold,
        old.public_key,
    )?;
    let n = u16::try_from(committee.receivers.len())
        .map_err(|_| StartError::Committee("too many receivers"))?;
    // Every party checks the new threshold at once, not only when every dealing is in.
    if threshold < 2 || threshold > n {
        return Err(ReshareError::Threshold {
            threshold,
            members: usize::from(n),
        }
        .into());
    }
    let members = Points::<E>::of_indices(&(0..n).collect::<Vec<_>>())?;
    let mut others = committee.parties();
    if !others.remove(&me) {
        return Err(StartError::NotAParty);
    }
    let mut machine = Redistribution {
        receiver: committee
            .receivers
            .iter()
            .position(|r| *r == me)
            .and_then(|j| u16::try_from(j).ok()),
        view_given: old.secret.is_none(),
        threshold,
        dealers: committee.dealers.iter().map(|(p, _)| *p).collect(),
        old: old_committee,
        members,
        context,
        others,
        commitments: BTreeMap::new(),
        sub_shares: BTreeMap::new(),
        confirmations: BTreeMap::new(),
        make: Some(make),
        made: None,
    };
    let mut first = Vec::new();
    if let Some(position) = committee.dealers.iter().position(|(p, _)| *p == me) {
        let index = committee.dealers[position].1;
        let own = old
            .public_shares
            .get(usize::from(index))
            .ok_or(ReshareError::Member(usize::from(index)))?;
        let secret = old.secret.ok_or(StartError::NoShare)?;
        let (secret, public) = match cheat {
            Some(Cheat::OtherSecret) => {
                let other = SecretScalar::<E>::random(&mut rand::rngs::OsRng);
                let public = Point::generator() * &other;
                (other, public)
            }
            _ => (secret, *own),
        };
        let mut dealing = reshare::deal(
            &mut rand::rngs::OsRng,
            &dealer_points,
            position,
            &secret,
            &public,
            &machine.members,
            threshold,
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
        for (party, sub_share) in committee.receivers.iter().zip(dealing.sub_shares) {
            if *party == me {
                machine.sub_shares.insert(me, sub_share);
                continue;
            }
            let mut payload = Zeroizing::new(Vec::with_capacity(33));
            payload.push(SUB_SHARE);
            let mut encoded = sub_share.as_ref().to_be_bytes();
            payload.extend_from_slice(encoded.as_ref());
            zeroize::Zeroize::zeroize(encoded.as_mut());
            first.push(OutgoingMessage {
                to: Some(*party),
                payload,
            });
        }
        machine.commitments.insert(me, dealing.commitments);
    }
    Ok((machine, first))
}

#[cfg(test)]
#[path = "redistribute_tests.rs"]
mod tests;
