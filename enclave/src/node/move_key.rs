//! Moving a key to the pending roster (issue 20, membership step 3 of `docs/lifecycle.md`,
//! ADR 0022): the dealers, nodes of the roster in force, deal their shares of the key's
//! current generation to every node of the roster the change makes ([`super::redistribute`]),
//! and each of those seals its share as the key's *incoming* generation once every party
//! confirmed the same digest. The current generation keeps signing; the commit ([`super::commit`]) makes
//! the incoming one current.
//!
//! No request starts it: the change the admins approved, sealed pending and prepared at each
//! party ([`Node::prepared`]), is the authority, checked at the start and again before anything
//! is sealed. Everything a party binds it computes from its own sealed state, never from the
//! relay: the party space ([`protocol::roster::RosterDiff::parties`]), the committee, the
//! threshold (the key's own), the peers' identities (each party's document verified against
//! the entry the rosters list for that party and the images of the chain it holds, for this
//! session only), and the context the confirmed digest covers
//! ([`protocol::roster::transfer::transfer_context`]: both rosters, the change, the chain,
//! the party space, the dealers and the digest of the key's facts). A holder states the key's
//! facts from its own record; a joining node takes the ones it is given, checks that the
//! public shares lie on one polynomial of the key's threshold, and gets no confirmation from
//! any holder if they are not the key's.

use std::collections::{BTreeMap, BTreeSet};

use protocol::genesis::{RosterEntry, roster_digest};
use protocol::policy::Scheme;
use protocol::roster::ChangeParty;
use protocol::roster::transfer::{
    KEY_INFO_VERSION, KeyInfo, Transfer, key_moved_message, transfer_context,
};
use protocol::session::{Outcome, Participant, SessionKind};
use reshare::Points;
use reshare::generic_ec::curves::{Ed25519, Secp256k1};
use reshare::generic_ec::{Curve, Point};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tracing::{info, warn};

use super::genesis::{GenesisState, admit_under};
use super::keys::{KeyRecord, Share};
use super::machine::Machine;
use super::membership::MembershipError;
use super::redistribute::{Committee, MakeShare, OldKey, Part, start};
use super::session::{Opened, Purpose, Start};
use super::single_use::key_id_use;
use super::{Node, NodeError, bad, internal};
use crate::identity::SecretIdentity;
use crate::mpc::MpcError;
use crate::mpc::ecdsa::SecretKeyShare;
use crate::mpc::eddsa::SecretEddsaShare;
use crate::peer::Roster;
use crate::seal::{BlobKind, DataKey};

/// What a [`SessionKind::MoveKey`] names.
pub(super) struct Move<'a> {
    pub(super) key_id: &'a str,
    pub(super) generation: u32,
    pub(super) dealers: &'a [u16],
    pub(super) key: &'a KeyInfo,
    pub(super) documents: &'a [ByteBuf],
}

/// A move under way at this node: what its incoming generation will be named by.
#[derive(Clone)]
pub(super) struct Moving {
    pub(super) key_id: String,
    /// SHA-256 of the change.
    pub(super) change: [u8; 32],
    /// The roster version it makes.
    pub(super) version: u32,
    /// The digest of the chain this node was prepared under.
    pub(super) chain: [u8; 32],
    /// This node's index in the new roster, if it receives.
    pub(super) index: Option<u16>,
    /// The key's facts: this node's own record's, or, at a joining node, the ones given.
    pub(super) info: KeyInfo,
    pub(super) info_digest: [u8; 32],
    /// An ECDSA receiver's: the digest of the new party set's auxiliary information its share
    /// is completed with.
    pub(super) aux: Option<[u8; 32]>,
}

/// What an incoming generation's sealed record names besides the share: the change it was
/// dealt to, the chain it was prepared under, the digest its move confirmed and the key's
/// facts it was dealt under. It holds only while all of them are this node's now
/// ([`Node::incoming_holds`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IncomingOn {
    /// SHA-256 of the roster change.
    pub(super) change: ByteBuf,
    /// The roster version the change makes.
    pub(super) version: u32,
    /// The digest of the chain (`protocol::roster::chain_digest`) it was prepared under.
    pub(super) chain: ByteBuf,
    /// The digest every party of the move confirmed.
    pub(super) confirmed: ByteBuf,
    /// The key's facts.
    pub(super) key: KeyInfo,
    /// An ECDSA share's: the digest of the new party set's auxiliary information it is
    /// completed with ([`crate::mpc::ecdsa::SecretAuxInfo::public_digest`]); it holds only
    /// with that auxiliary information (a later run of it leaves the key to move again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) aux: Option<ByteBuf>,
}

/// A key's incoming generation at this node: its share at its index in the pending roster,
/// sealed as the generation after the one dealt from. It signs nothing; the commit
/// makes it current.
pub(super) struct Incoming {
    pub(super) on: IncomingOn,
    pub(super) share: Share,
    /// When this node sealed it (its refresh schedule's start), as the record says.
    pub(super) since: u64,
}

/// The entry the rosters list for `party`: the new roster's at its new index, else the roster
/// in force's (a node leaving).
fn entry_of<'a>(
    party: &ChangeParty,
    next: &'a [RosterEntry],
    in_force: &'a [RosterEntry],
) -> Option<&'a RosterEntry> {
    match (party.next, party.current) {
        (Some(j), _) => next.get(usize::from(j)),
        (None, Some(i)) => in_force.get(usize::from(i)),
        (None, None) => None,
    }
}

/// Points as `KeyInfo` carries them (compressed).
fn encoded<E: Curve>(points: &[Point<E>]) -> Vec<ByteBuf> {
    points
        .iter()
        .map(|p| ByteBuf::from(p.to_bytes(true).as_ref().to_vec()))
        .collect()
}

/// Every holder's public share of `share`'s generation, by index, as `KeyInfo` and the
/// inventory carry them.
pub(super) fn public_shares(share: &Share) -> Result<Vec<ByteBuf>, NodeError> {
    Ok(match share {
        Share::Ecdsa(s) => encoded(&s.held().map_err(internal)?.public_shares),
        Share::Eddsa(s) => encoded(&s.held().map_err(internal)?.public_shares),
    })
}

/// The old committee's public side as a joining node is given it: the key and every holder's
/// public share, which must lie on one polynomial of the key's threshold whose value at zero
/// is the key (helper-63, finding 5: a forged view is refused at once, not stalled).
fn given_view<E: Curve>(info: &KeyInfo) -> Result<OldKey<E>, NodeError> {
    let point = |b: &[u8]| {
        Point::<E>::from_bytes(b).map_err(|_| bad("the key's facts name a point off the curve"))
    };
    let public_key = point(&info.public_key)?;
    let public_shares = info
        .public_shares
        .iter()
        .map(|s| point(s))
        .collect::<Result<Vec<_>, _>>()?;
    let n = u16::try_from(public_shares.len()).map_err(|_| bad("too many public shares"))?;
    let points = Points::<E>::of_indices(&(0..n).collect::<Vec<_>>())
        .map_err(|e| bad(format!("the key's holders: {e}")))?;
    reshare::check_public_shares(&points, &public_shares, info.threshold, &public_key)
        .map_err(|e| bad(format!("the key's public shares as given: {e}")))?;
    Ok(OldKey {
        public_shares,
        public_key,
        secret: None,
    })
}

impl Node {
    /// The facts this node states of key `key_id` from its own record ([`KeyInfo`]). A key
    /// whose current generation names no request (sealed before requests were kept) is not
    /// moved: the admins refresh it first.
    pub(super) fn key_info(&self, key_id: &str) -> Result<KeyInfo, NodeError> {
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| NodeError::Refused(format!("unknown key {key_id}")))?;
        let request = key.request.ok_or_else(|| {
            NodeError::Refused(format!(
                "key {key_id}'s current generation names no request: the admins refresh it \
                 before it moves to another roster"
            ))
        })?;
        let (public_key, chain_code) = key.share.public_key();
        let public_shares = public_shares(&key.share)?;
        Ok(KeyInfo {
            v: KEY_INFO_VERSION,
            key_id: key_id.to_string(),
            scheme: key.share.scheme(),
            generation: key.generation,
            threshold: key.threshold,
            public_key: ByteBuf::from(public_key),
            chain_code: chain_code.map(ByteBuf::from),
            public_shares,
            request: ByteBuf::from(request.to_vec()),
            policy_version: key.policy_version,
            policy: key.policy.clone(),
            refresh_every: key.schedule.every,
        })
    }

    /// Starts this node's part in a key's move to the pending roster (module docs): every
    /// check runs before anything is sent or held.
    pub(super) fn start_move(
        &mut self,
        identity: &SecretIdentity,
        sid: &[u8; 32],
        participants: &[u16],
        kind: &SessionKind,
        m: &Move<'_>,
    ) -> Result<(Start, Opened), NodeError> {
        let g: &GenesisState = self.genesis.as_ref().ok_or_else(|| bad("no genesis yet"))?;
        let pending = g.pending_roster().ok_or(MembershipError::NoPendingChange)?;
        let change = pending.request.clone();
        let version = change.new_version();
        if !self.prepared() {
            return Err(MembershipError::NotPrepared { version }.into());
        }
        // A node that vouched for its key set keeps that set (helper-66, finding H1).
        if g.vouched_frame().is_some() {
            return Err(MembershipError::Vouched { version }.into());
        }
        let joining = g.joining();
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let pinned = g.pinned.as_ref().ok_or(MembershipError::LegacyGenesis)?;
        let chain = g.chain_digest().ok_or(MembershipError::LegacyGenesis)?;
        let in_force = pinned.roster.clone();
        let current_digest = pinned.roster_digest;
        let images = g.images.last().cloned().unwrap_or_default();
        let parties = change
            .diff(&g.rosters(), 0)
            .map_err(MembershipError::RosterChange)?
            .parties();
        let hash = change.hash();
        let n = u16::try_from(parties.len()).map_err(|_| bad("too many parties"))?;
        let my_key = self.node_key_public()?;
        let me = parties
            .iter()
            .position(|p| {
                entry_of(p, &change.roster, &in_force)
                    .is_some_and(|e| e.node_key.as_slice() == my_key)
            })
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| bad("this node is no party of the change"))?;
        let index = parties[usize::from(me)].next;

        // The key's facts: a holder's own, compared with what the relay states; a joining
        // node's as given, checked by shape.
        let info = if joining {
            m.key
                .check()
                .map_err(|e| bad(format!("the key's facts: {e}")))?;
            m.key.clone()
        } else {
            self.key_info(m.key_id)?
        };
        if info.key_id != m.key_id || info.generation != m.generation {
            return Err(NodeError::Refused(format!(
                "key {} is at generation {} here; the move names key {} at generation {}",
                info.key_id, info.generation, m.key_id, m.generation
            )));
        }
        if !joining && info != *m.key {
            return Err(MembershipError::KeyInfoDiffers {
                key_id: m.key_id.to_string(),
            }
            .into());
        }
        if info.public_shares.len() != in_force.len() {
            return Err(bad(format!(
                "the key's facts name {} holders; the roster in force has {}",
                info.public_shares.len(),
                in_force.len()
            )));
        }
        // An ECDSA share is completed with the new party set's auxiliary information, made
        // for this change first ([`super::move_aux`]); a node that only deals needs none.
        let (aux, aux_digest) = match (info.scheme, index) {
            (Scheme::EcdsaSecp256k1, Some(i)) => {
                let frame = (hash, version, chain, i);
                let aux = self
                    .incoming_aux_under(&frame)
                    .ok_or(MembershipError::AuxNotMoved)?;
                (Some(aux.copy().map_err(internal)?), Some(aux.digest))
            }
            _ => (None, None),
        };
        let increasing = m.dealers.windows(2).all(|w| w[0] < w[1]);
        if !increasing || m.dealers.len() < usize::from(info.threshold) {
            return Err(bad(format!(
                "the dealers must be at least the key's threshold ({}) of the roster in force, \
                 each once, in increasing order (got {:?})",
                info.threshold, m.dealers
            )));
        }
        let mut dealers = Vec::with_capacity(m.dealers.len());
        for d in m.dealers {
            let party = parties
                .iter()
                .position(|p| p.current == Some(*d))
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| bad(format!("dealer {d} is no node of the roster in force")))?;
            dealers.push((party, *d));
        }
        let receivers: Vec<u16> = (0..n)
            .filter(|p| parties[usize::from(*p)].next.is_some())
            .collect();
        // The session is the committee's: every node of the new roster and the dealers, in
        // party order. A node that leaves without dealing takes no part, so a node lost for
        // good is replaced without it; one asked anyway is refused, as is a session that
        // leaves out a receiver or a dealer.
        let committee: BTreeSet<u16> = receivers
            .iter()
            .copied()
            .chain(dealers.iter().map(|(p, _)| *p))
            .collect();
        if !participants.iter().copied().eq(committee.iter().copied()) {
            return Err(bad(format!(
                "a key's move involves the new roster's nodes and the dealers ({:?}, by party: \
                 the new roster, then the nodes leaving), in party order; got {participants:?}",
                committee
            )));
        }

        let info_digest = info.digest();
        let next_digest = roster_digest(&cluster, version, &change.roster);
        let context = transfer_context(&Transfer {
            cluster: &cluster,
            change: &hash,
            current: &current_digest,
            version,
            roster: &next_digest,
            chain: &chain,
            parties: &parties,
            dealers: m.dealers,
            key: &info_digest,
        });

        // The peers, for this session alone: each participant's document against the entry
        // the rosters list for its party.
        if m.documents.len() != participants.len() {
            return Err(bad(format!(
                "a key's move carries one document per participant ({}), not {}",
                participants.len(),
                m.documents.len()
            )));
        }
        let entries = participants
            .iter()
            .map(|p| {
                (
                    *p,
                    entry_of(&parties[usize::from(*p)], &change.roster, &in_force),
                )
            })
            .collect::<Vec<_>>();
        let (peers, named) = self.admit_parties(identity, me, &entries, m.documents, &images)?;
        let eid = kind.execution_id(&cluster, &context, sid, &named);

        let threshold = info.threshold;
        let part = Part {
            me,
            committee: Committee { dealers, receivers },
            old_threshold: threshold,
            threshold,
            context,
        };
        let cheat = self.take_cheat();
        let refused = |e: super::redistribute::StartError| bad(format!("the key's move: {e}"));
        let held = self.keys.get(m.key_id).map(|k| &k.share);
        let (machine, first, blob): (Box<dyn Machine>, _, _) = match (info.scheme, held) {
            (Scheme::EddsaEd25519, Some(Share::Eddsa(_)) | None) => {
                let old: OldKey<Ed25519> = match held {
                    Some(Share::Eddsa(share)) => share.held().map_err(internal)?.into(),
                    _ => given_view(&info)?,
                };
                let make: MakeShare<Ed25519> = Box::new(move |index, new| {
                    SecretEddsaShare::from_redistributed(index, new, threshold)
                        .map(|s| Share::from(Box::new(s)))
                });
                let (m, first) = start(old, part, make, cheat).map_err(refused)?;
                (Box::new(m), first, BlobKind::EddsaShare)
            }
            (Scheme::EcdsaSecp256k1, Some(Share::Ecdsa(_)) | None) => {
                let old: OldKey<Secp256k1> = match held {
                    Some(Share::Ecdsa(share)) => share.held().map_err(internal)?.into(),
                    _ => given_view(&info)?,
                };
                let chain_code = info
                    .chain_code
                    .as_deref()
                    .and_then(|c| <[u8; 32]>::try_from(c.as_slice()).ok())
                    .ok_or_else(|| bad("an ECDSA key's facts name no chain code"))?;
                let make: MakeShare<Secp256k1> = Box::new(move |index, new| {
                    let aux = aux.ok_or_else(|| {
                        MpcError::Internal("a share dealt to a node that only deals".into())
                    })?;
                    SecretKeyShare::from_redistributed(index, new, threshold, chain_code, aux)
                        .map(Share::from)
                });
                let (m, first) = start(old, part, make, cheat).map_err(refused)?;
                (Box::new(m), first, BlobKind::EcdsaShare)
            }
            _ => return Err(bad("the key's scheme is not its share's")),
        };
        let data_key = match index {
            Some(_) => Some(self.sealing.data_key(blob, m.key_id)?),
            None => None,
        };
        // Held for the whole move: no resharing or other move of this key meanwhile.
        let hold = key_id_use(m.key_id);
        self.claim(&hold)?;
        let moving = Moving {
            key_id: m.key_id.to_string(),
            change: hash,
            version,
            chain,
            index,
            info,
            info_digest,
            aux: aux_digest,
        };
        let mut start =
            Start::new(machine, Purpose::MoveKey(Box::new(moving)), first).holding(hold);
        if let Some(data_key) = data_key {
            start = start.sealed_under(data_key);
        }
        Ok((
            start,
            Opened {
                sid: *sid,
                eid,
                me,
                peers,
            },
        ))
    }

    /// The peers of a roster change's session (a key's move, the new party set's auxiliary
    /// information), admitted for it alone: for each participant, in session order, its party
    /// `p` and the roster entry listed for it (`entries`), its document (`documents`, in the
    /// same order; this node's, `me`, is not read) against that entry and the images of the
    /// chain held (`images`). Returns them with every participant as the execution id names
    /// it.
    pub(super) fn admit_parties(
        &self,
        identity: &SecretIdentity,
        me: u16,
        entries: &[(u16, Option<&RosterEntry>)],
        documents: &[ByteBuf],
        images: &[protocol::genesis::Image],
    ) -> Result<(Roster, Vec<Participant>), NodeError> {
        let now = (self.clock)();
        let mut peers = Roster::default();
        peers.insert_self(me, identity.public());
        for ((p, entry), document) in entries.iter().copied().zip(documents) {
            if p == me {
                continue;
            }
            let entry = entry
                .ok_or_else(|| NodeError::Internal(format!("party {p} has no roster entry")))?;
            let policy = self.peer_policy_for(Some(entry));
            admit_under(&mut peers, images, p, document, &policy, now).map_err(|e| {
                MembershipError::PartyRefused {
                    party: p,
                    reason: e.to_string(),
                }
            })?;
        }
        let named = entries
            .iter()
            .map(|(p, _)| {
                let p = *p;
                let keys = peers
                    .get(p)
                    .ok_or_else(|| NodeError::Internal(format!("party {p} was not admitted")))?;
                Ok(Participant {
                    node: p,
                    signing: keys.signing,
                    encryption: keys.encryption,
                })
            })
            .collect::<Result<Vec<_>, NodeError>>()?;
        Ok((peers, named))
    }

    /// Keeps what a key's move made here once every party confirmed `confirmed`: a
    /// receiver's share, sealed as the key's incoming generation (it replaces an earlier one
    /// of the key: the commit compares every node's digests). Refused, keeping nothing, if
    /// this node is no longer prepared for the same change or the key changed meanwhile.
    pub(super) fn keep_incoming(
        &mut self,
        moving: Moving,
        share: Option<Share>,
        confirmed: [u8; 32],
        data_key: Option<DataKey>,
    ) -> Result<Outcome, MpcError> {
        let refused = |reason: String| MpcError::Aborted {
            culprits: vec![],
            reason,
        };
        let g = self.genesis.as_ref();
        let same_change = g
            .and_then(GenesisState::pending_roster)
            .map(|p| p.request.hash())
            == Some(moving.change);
        let same_chain = g.and_then(GenesisState::chain_digest) == Some(moving.chain);
        let vouched = g.and_then(GenesisState::vouched_frame).is_some();
        if !same_change || !same_chain || vouched || !self.prepared() {
            return Err(refused(format!(
                "this node is no longer prepared for roster version {}: the move of key {} \
                 keeps nothing",
                moving.version, moving.key_id
            )));
        }
        // A share completed with a run of the new party set's auxiliary information that a
        // later run replaced keeps nothing (helper-73, finding 5).
        if let Some(aux) = moving.aux
            && self.incoming_aux.as_ref().map(|a| a.digest) != Some(aux)
        {
            return Err(refused(format!(
                "the new party set's auxiliary information was made again while key {} moved: \
                 the move keeps nothing",
                moving.key_id
            )));
        }
        if let Some(key) = self.keys.get(&moving.key_id)
            && (key.generation != moving.info.generation || key.pending.is_some())
        {
            return Err(refused(format!(
                "key {} changed here while it moved: the move keeps nothing",
                moving.key_id
            )));
        }
        let on = IncomingOn {
            change: ByteBuf::from(moving.change.to_vec()),
            version: moving.version,
            chain: ByteBuf::from(moving.chain.to_vec()),
            confirmed: ByteBuf::from(confirmed.to_vec()),
            key: moving.info.clone(),
            aux: moving.aux.map(|d| ByteBuf::from(d.to_vec())),
        };
        let (index, sealed, statement) = match (share, moving.index) {
            (None, None) => (None, None, None),
            (None, Some(_)) | (Some(_), None) => {
                return Err(MpcError::Internal(
                    "a receiver without a share, or a share at a node that only deals".into(),
                ));
            }
            (Some(share), Some(_)) => {
                let (public_key, chain_code) = share.public_key();
                if public_key != moving.info.public_key.to_vec()
                    || chain_code.map(ByteBuf::from) != moving.info.chain_code
                    || Some(share.index()) != moving.index
                {
                    return Err(MpcError::Internal(
                        "the incoming share is not the key's at this node's new index".into(),
                    ));
                }
                let data_key = data_key.ok_or_else(|| {
                    MpcError::Internal("no data key for the incoming share".into())
                })?;
                let info = &moving.info;
                let generation = info.generation.checked_add(1).ok_or_else(|| {
                    MpcError::Internal(format!("key {} is at its last generation", info.key_id))
                })?;
                // A schedule starts again from the moment this node sealed the generation.
                let since = if info.refresh_every == 0 {
                    0
                } else {
                    self.now()
                };
                let record = KeyRecord {
                    key_id: moving.key_id.clone(),
                    scheme: share.scheme(),
                    threshold: info.threshold,
                    policy: info.policy.clone(),
                    policy_version: info.policy_version,
                    policy_void: false,
                    share: ByteBuf::from(share.to_bytes()?.to_vec()),
                    generation,
                    current: false,
                    request: Some(info.request.clone()),
                    frozen: false,
                    refresh_every: info.refresh_every,
                    since,
                    incoming: Some(on.clone()),
                    roster: moving.version,
                };
                let sealed = self.seal_key_record(data_key, record)?;
                let index = share.index();
                let statement = self
                    .moved_statement(&moving, index, &confirmed)
                    .map_err(|e| MpcError::Internal(e.to_string()))?;
                self.incoming
                    .insert(moving.key_id.clone(), Incoming { on, share, since });
                (
                    Some(index),
                    Some(ByteBuf::from(sealed)),
                    Some(ByteBuf::from(statement)),
                )
            }
        };
        info!(key = %moving.key_id, version = moving.version, ?index, "key moved to the pending roster");
        Ok(Outcome::KeyMoved {
            key_id: moving.key_id,
            generation: moving.info.generation,
            version: moving.version,
            index,
            confirmed: ByteBuf::from(confirmed.to_vec()),
            key: ByteBuf::from(moving.info_digest.to_vec()),
            sealed,
            statement,
        })
    }

    /// This node's signature over [`key_moved_message`] for `moving`, sealed at `index`.
    fn moved_statement(
        &self,
        moving: &Moving,
        index: u16,
        confirmed: &[u8; 32],
    ) -> Result<Vec<u8>, NodeError> {
        let g = self.genesis.as_ref().ok_or_else(|| bad("no genesis yet"))?;
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let key = self.node_key_public()?;
        self.node_statement(&key_moved_message(
            &cluster,
            &key,
            (moving.version, &moving.change),
            (&moving.key_id, moving.info.generation),
            index,
            confirmed,
            &moving.info_digest,
        ))
    }

    /// What every incoming generation must match to hold here, computed once: the change
    /// pending (hash, version), the chain held and this node's index in the change's roster.
    pub(super) fn incoming_frame(&self) -> Option<Frame> {
        let g = self.genesis.as_ref()?;
        let pending = g.pending_roster()?;
        let my_key = self.node_key.as_ref()?.key.public();
        let index = protocol::genesis::index_in(&pending.request.roster, &my_key)?;
        Some((
            pending.request.hash(),
            pending.request.new_version(),
            g.chain_digest()?,
            index,
        ))
    }

    /// Whether the incoming generation `on` of key `key_id`, at `index`, still holds within
    /// `frame` ([`Node::incoming_frame`]): for the change pending and the chain held now, at
    /// this node's index in the change's roster, and, where this node holds the key, dealt
    /// from its current generation with the facts its record states now (a key reshared,
    /// re-policied or refreshed since is moved again; the public shares change only with the
    /// generation, so the record's scalar facts are compared, not rebuilt). A joining node
    /// holds no key: the facts are the ones it was dealt under. Cheap: no hashing, no point
    /// conversion (attacker review helper-65, finding 1).
    pub(super) fn incoming_holds(
        &self,
        frame: &Frame,
        key_id: &str,
        on: &IncomingOn,
        index: u16,
    ) -> bool {
        let (change, version, chain, my_index) = frame;
        let facts = match self.keys.get(key_id) {
            Some(key) => {
                on.key.generation == key.generation
                    && key.pending.is_none()
                    && !key.policy_void
                    && key.request.is_some_and(|r| on.key.request.as_slice() == r)
                    && on.key.threshold == key.threshold
                    && on.key.scheme == key.share.scheme()
                    && on.key.policy_version == key.policy_version
                    && on.key.policy == key.policy
                    && on.key.refresh_every == key.schedule.every
            }
            None => self.genesis.as_ref().is_some_and(GenesisState::joining),
        };
        // An ECDSA share holds with the party set's auxiliary information it was completed
        // with, and no other run of it.
        let aux = match on.key.scheme {
            Scheme::EcdsaSecp256k1 => on.aux.as_deref().is_some_and(|named| {
                self.incoming_aux_under(frame)
                    .is_some_and(|a| a.digest.as_slice() == named)
            }),
            Scheme::EddsaEd25519 => on.aux.is_none(),
        };
        on.change.as_slice() == change
            && on.version == *version
            && on.chain.as_slice() == chain
            && index == *my_index
            && on.key.key_id == key_id
            && facts
            && aux
    }

    /// Drops every incoming generation that no longer holds ([`Node::incoming_holds`]): at
    /// each prepare step and restore. The commit checks each key's again, and its
    /// own confirmed digest against the one every node signed (helper-65, finding 2). One
    /// that holds for the change this node vouched for, under the chain it vouched under, is
    /// kept while no other change is pending here ([`GenesisState::vouched_frame`]): a
    /// withdrawal, an admin or an image change that reached this node before its commit
    /// leaves it what a catch-up commits (helper-67, finding 1).
    pub(super) fn prune_incoming(&mut self) {
        let frames: Vec<Frame> = [
            self.incoming_frame(),
            self.genesis.as_ref().and_then(GenesisState::vouched_frame),
        ]
        .into_iter()
        .flatten()
        .collect();
        if self
            .incoming_aux
            .as_ref()
            .is_some_and(|a| !frames.contains(&a.frame))
        {
            info!("the auxiliary information of a party set no longer pending is dropped");
            self.incoming_aux = None;
        }
        let stale: Vec<String> = self
            .incoming
            .iter()
            .filter(|(k, i)| {
                !frames
                    .iter()
                    .any(|f| self.incoming_holds(f, k, &i.on, i.share.index()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key_id in stale {
            info!(key = %key_id, "an incoming generation that no longer holds is dropped");
            self.incoming.remove(&key_id);
        }
    }

    /// The incoming generations this node holds: its index, and the key id with the
    /// confirmed digest in hex.
    #[cfg(test)]
    pub(crate) fn incoming_generations(&self) -> Vec<(u16, String)> {
        self.incoming
            .iter()
            .map(|(k, i)| {
                let hex: String = i.on.confirmed.iter().map(|b| format!("{b:02x}")).collect();
                (i.share.index(), format!("{k} {hex}"))
            })
            .collect()
    }
}

/// What an incoming generation must match to hold: the change (hash, the roster version it
/// makes), the chain it was moved under and this node's index in the change's roster.
pub(super) type Frame = ([u8; 32], u32, [u8; 32], u16);

/// The key records a restore loads as generations, and the incoming ones by key.
pub(super) type Split = (Vec<(BlobKind, KeyRecord)>, BTreeMap<String, Incoming>);

/// Sets the incoming generations apart from the key records a restore opened; whether each
/// still holds is checked once the node's state is loaded ([`Node::prune_incoming`]). Two of
/// one key are both ignored: neither is known to be the last move's, and the move runs again.
pub(super) fn incoming_of(records: Vec<(BlobKind, KeyRecord)>) -> Result<Split, NodeError> {
    let mut kept = Vec::with_capacity(records.len());
    let mut incoming: BTreeMap<String, Incoming> = BTreeMap::new();
    let mut twice = Vec::new();
    for (kind, mut record) in records {
        let Some(on) = record.incoming.take() else {
            kept.push((kind, record));
            continue;
        };
        let share = super::keys::load_share(kind, &record)?;
        let since = record.since;
        if incoming
            .insert(record.key_id.clone(), Incoming { on, share, since })
            .is_some()
        {
            twice.push(record.key_id.clone());
        }
    }
    for key_id in twice {
        warn!(key = %key_id, "two incoming generations of one key: both ignored, the move runs again");
        incoming.remove(&key_id);
    }
    Ok((kept, incoming))
}
