//! The commit of a roster change (issue 20, membership step 4 of `docs/lifecycle.md`, ADR
//! 0022): once every key has moved to the pending roster, every node of that roster says so
//! over one digest of the whole key set ([`protocol::roster::commit`]), and each node, shown
//! every such statement over its *own* digest, makes the new roster and the keys' incoming
//! generations current in one sealed step: its genesis blob with the committed change.
//!
//! A node's key set is recomputed from its own records at each step: the incoming generation
//! of every key it holds (a member's every key has one, and each still holds: the change
//! pending, the chain held, the key's facts unchanged since its move; helper-64, finding 1),
//! each named by its id, the generation dealt from, the digest of its facts and the digest its
//! move confirmed. One digest at every node means one sharing per key: a relay that let a
//! later move of a key finish at some nodes only, or replays an earlier move's statements,
//! leaves two digests, and no node commits (helper-65, finding 2; helper-62, finding 2).
//!
//! The genesis blob is the commit point. Its committed changes are replayed at every restore
//! (each under the admins of the version it names), the node is found in the roster in force
//! by its node key, and the key records are read for that roster version only: a key's
//! incoming generation for the change that made it is its current one (the parent keeps the
//! blob; nothing else is sealed at the commit), a record of another roster version is a stale
//! copy, ignored ([`for_roster`]).

use std::collections::{BTreeMap, BTreeSet};

use protocol::genesis::roster_digest;
use protocol::roster::commit::{
    CommitRoster, CommittedRoster, HeldKey, KeysHeldStatement, MovedKey, keys_held_message,
    roster_set_message, set_digest,
};
use protocol::roster::{ChangeRoster, chain_digest_with_rosters};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tracing::info;

use super::admins::hex;
use super::genesis::GenesisState;
use super::keys::{Key, KeyRecord};
use super::membership::MembershipError;
use super::move_key::Frame;
use super::prepare::{Word, check_words};
use super::{Node, NodeError, bad};
use crate::identity::SecretIdentity;
use crate::peer::Roster;
use crate::seal::BlobKind;

mod catch_up;
mod leave;

pub(super) use leave::LeftOn;

/// This node's answer to a commit step.
#[derive(Debug)]
pub struct Committed {
    /// The roster version the change makes.
    pub version: u32,
    /// The digest of the key set it holds incoming.
    pub keys: [u8; 32],
    /// How many keys the set holds.
    pub count: u32,
    /// Its node key's signature over [`keys_held_message`].
    pub statement: Vec<u8>,
    /// When this answer committed: its signature over [`roster_set_message`].
    pub set_statement: Option<Vec<u8>>,
    /// When this answer committed: the sealed genesis blob.
    pub sealed: Option<Vec<u8>>,
    /// The key set `keys` is the digest of (public), and the auxiliary information's digest
    /// it names, if any.
    pub set: Vec<MovedKey>,
    /// With `set`.
    pub aux: Option<ByteBuf>,
    /// This answer is a node leaving (`statement` is its `cohort/roster-left/v1` word).
    pub left: bool,
}

impl GenesisState {
    /// Applies a committed roster change at a restore or a join: checked as its proposal was
    /// (its cluster, the roster version it replaces, its rules against every roster version so
    /// far, the approvals of the admins of the version it names), then its roster is the one in
    /// force. The caller finds this node in it ([`GenesisState::locate`]). Returns the chain
    /// digest its statements were checked under.
    pub(super) fn apply_committed(
        &mut self,
        committed: &CommittedRoster,
    ) -> Result<[u8; 32], NodeError> {
        let change = &committed.change;
        let r = &change.request;
        let ours = self.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        self.check_names(r)?;
        r.diff(&self.rosters(), 0)
            .map_err(MembershipError::RosterChange)?;
        self.check_admins_at(r, &change.approvals, r.admins)?;
        // The statements it was committed on, under the chain of that moment: every node of
        // its roster vouched for one key set (evidence that the change could be committed, not
        // that each node did; the prepare gate pins a joining node's chain to the members').
        let (admins, images) = (
            usize::try_from(r.admins).unwrap_or(usize::MAX),
            usize::try_from(committed.images).unwrap_or(usize::MAX),
        );
        let (Some(admins), Some(images)) = (
            self.sealed.admins.get(..admins),
            self.sealed.images.get(..images),
        ) else {
            return Err(bad(format!(
                "committed roster version {}: its chain holds {} admin and {} image changes, \
                 more than this chain",
                r.new_version(),
                r.admins,
                committed.images
            )));
        };
        let chain = chain_digest_with_rosters(&ours, admins, images, &self.sealed.rosters);
        let named = committed
            .statements
            .first()
            .and_then(|s| <[u8; 32]>::try_from(s.keys.as_slice()).ok())
            .unwrap_or_default();
        check_keys_held(&ours, r, &chain, &named, &committed.statements)?;
        let held: Vec<HeldKey<'_>> = committed.keys.iter().map(MovedKey::held).collect();
        let aux = committed
            .aux
            .as_deref()
            .map(|a| <[u8; 32]>::try_from(a.as_slice()).unwrap_or_default());
        if (!committed.keys.is_empty() || aux.is_some()) && set_digest(&held, aux.as_ref()) != named
        {
            return Err(bad(format!(
                "committed roster version {}: its key set is not the one its statements name",
                r.new_version()
            )));
        }
        self.commit_to(committed.clone());
        Ok(chain)
    }

    /// Makes `committed`'s roster the one in force (its digest, its size) and keeps it in the
    /// chain. This node's index is found by the caller.
    fn commit_to(&mut self, committed: CommittedRoster) {
        let version = committed.change.request.new_version();
        let roster = committed.change.request.roster.clone();
        self.nodes = u16::try_from(roster.len()).unwrap_or(u16::MAX);
        if let Some(p) = self.pinned.as_mut() {
            p.roster_digest = roster_digest(&p.cluster, version, &roster);
            p.roster = roster;
        }
        self.sealed.rosters.push(committed);
    }

    /// The hash of the committed change that made roster version `version` (none for the
    /// genesis' roster).
    pub(super) fn made_by(&self, version: u32) -> Option<[u8; 32]> {
        let i = usize::try_from(version).ok()?.checked_sub(1)?;
        self.sealed.rosters.get(i).map(|c| c.change.request.hash())
    }
}

/// Checks the commit's statements against this node's own key set `ours`: one per node of
/// the new roster (by node key; none of a stranger or twice), each its node key's signature
/// over the key set it names, and that set this node's.
fn check_keys_held(
    cluster: &protocol::genesis::ClusterId,
    change: &ChangeRoster,
    chain: &[u8; 32],
    ours: &[u8; 32],
    statements: &[KeysHeldStatement],
) -> Result<(), MembershipError> {
    let (version, hash) = (change.new_version(), change.hash());
    let words = statements.iter().map(|s| Word {
        node_key: &s.node_key,
        named: &s.keys,
        statement: &s.statement,
    });
    let listed = |key: &[u8]| change.roster.iter().find(|e| e.node_key.as_slice() == key);
    check_words(
        words,
        listed,
        &change.roster,
        |key, theirs| keys_held_message(cluster, key, (version, &hash), chain, theirs),
        ours,
        |node_key, theirs, ours| MembershipError::KeysDiffer {
            node_key,
            theirs,
            ours,
        },
    )
}

/// The key records a restore loads with the roster in force, version `v` of `state`: a
/// record sealed at `v`; a key's incoming generation for the change that made `v`, as its
/// current one, if it is the one the change was committed with (its generation, facts and
/// confirmed digest in the committed set: helper-66, finding M4) and no current record of the
/// key sealed at `v` exists (a later generation, or the same one sealed again); an incoming
/// generation for the next version, kept as incoming (checked once the state is loaded). Any
/// other record is a stale copy of another roster version or another run of a move: ignored,
/// never loaded, so a share of a roster replaced since never signs.
pub(super) fn for_roster(
    records: Vec<(BlobKind, KeyRecord)>,
    state: &GenesisState,
) -> Vec<(BlobKind, KeyRecord)> {
    let v = state.roster_version();
    let committed = state
        .made_by(v)
        .zip(state.sealed.rosters.last().map(|c| c.keys.as_slice()));
    // The new party set's auxiliary information the change was committed with: an ECDSA
    // share completed with another is not the one committed (helper-73, finding 7).
    let committed_aux = state.sealed.rosters.last().and_then(|c| c.aux.clone());
    let sealed_at_v: BTreeSet<String> = records
        .iter()
        .filter(|(_, r)| r.incoming.is_none() && r.current && r.roster == v)
        .map(|(_, r)| r.key_id.clone())
        .collect();
    let mut promoted = BTreeSet::new();
    let mut kept = Vec::with_capacity(records.len());
    for (kind, mut r) in records {
        let keep = match &r.incoming {
            Some(on) if on.version == v.saturating_add(1) => true,
            Some(on) => {
                let of_the_set = committed.is_some_and(|(change, keys)| {
                    on.change.as_slice() == change
                        && keys.iter().any(|k| {
                            k.key_id == r.key_id
                                && k.generation == on.key.generation
                                && k.confirmed == on.confirmed
                                && k.facts.as_slice() == on.key.digest()
                        })
                }) && (on.key.scheme != protocol::policy::Scheme::EcdsaSecp256k1
                    || (on.aux.is_some() && on.aux == committed_aux));
                let current = on.version == v
                    && r.roster == v
                    && of_the_set
                    && !sealed_at_v.contains(&r.key_id)
                    && promoted.insert(r.key_id.clone());
                if current {
                    r.incoming = None;
                    r.current = true;
                }
                current
            }
            None => r.roster == v,
        };
        if keep {
            kept.push((kind, r));
        } else {
            info!(
                key = %r.key_id,
                generation = r.generation,
                roster = r.roster,
                in_force = v,
                "a key record of another roster version, or of another run of a move, is ignored"
            );
        }
    }
    kept
}

/// The one key set a node vouched for at the commit step of a change, under a chain: sealed
/// with its genesis the first time it vouches, so that it never vouches for another set for
/// that change, and no key moves to it again (attacker review helper-66, finding H1: with
/// statements over two sets, a relay could commit nodes on different sharings of a key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Vouched {
    /// SHA-256 of the change.
    change: ByteBuf,
    /// The chain's digest.
    chain: ByteBuf,
    /// The key set's digest.
    keys: ByteBuf,
    /// The roster version the change makes.
    #[serde(default)]
    version: u32,
    /// This node's index in the change's roster (what its incoming shares are dealt at).
    #[serde(default)]
    index: u16,
    /// The node keys of the roster in force that the change keeps: whose word it takes to be
    /// prepared for another change (none sealed: every node of the roster in force).
    #[serde(default)]
    kept: Vec<ByteBuf>,
    /// Whether this node has since given its word on another change: a catch-up then needs
    /// the committed words of a threshold of nodes that stay (attacker review helper-70,
    /// finding 1).
    #[serde(default)]
    renounced: bool,
}

impl GenesisState {
    /// The key set this node vouched for, for the change pending here under the chain held
    /// now; none if it did not vouch (or vouched for a change or chain it no longer holds).
    pub(super) fn vouched_now(&self) -> Option<[u8; 32]> {
        let v = self.sealed.vouched.as_ref()?;
        let pending = self.pending_roster()?;
        let same = v.change.as_slice() == pending.request.hash()
            && self
                .chain_digest()
                .is_some_and(|chain| v.chain.as_slice() == chain);
        same.then(|| <[u8; 32]>::try_from(v.keys.as_slice()).ok())
            .flatten()
    }

    /// What an incoming generation of the change this node vouched for must match to be kept
    /// for a catch-up ([`Node::prune_incoming`]): that change, the chain it vouched under, its
    /// index in the change's roster. Held until this node commits, or is prepared for another
    /// change on the word of every node of the roster in force (proof that none committed this
    /// one: [`GenesisState::check_held`]); a change merely proposed keeps it (attacker review
    /// helper-69, finding 1).
    pub(super) fn vouched_frame(&self) -> Option<Frame> {
        let v = self.sealed.vouched.as_ref()?;
        let change = <[u8; 32]>::try_from(v.change.as_slice()).ok()?;
        let chain = <[u8; 32]>::try_from(v.chain.as_slice()).ok()?;
        Some((change, v.version, chain, v.index))
    }

    /// The node keys whose word this node needs to be prepared for a change other than the one
    /// it vouched for (none if it vouched for no other change): the nodes that one keeps of the
    /// roster in force, or the whole roster in force for a record that names none.
    pub(super) fn words_needed(&self, change: &[u8; 32]) -> Option<Vec<ByteBuf>> {
        let v = self.sealed.vouched.as_ref()?;
        if v.change.as_slice() == change {
            return None;
        }
        let in_force = self.rosters().last().copied().unwrap_or_default();
        Some(
            in_force
                .iter()
                .map(|e| e.node_key.clone())
                .filter(|k| v.kept.is_empty() || v.kept.contains(k))
                .collect(),
        )
    }

    /// Whether this node's word on the change `change` renounces the one it vouched for: it
    /// vouched for another and has not renounced it yet.
    pub(super) fn renounces_for(&self, change: &[u8; 32]) -> bool {
        self.sealed
            .vouched
            .as_ref()
            .is_some_and(|v| v.change.as_slice() != change && !v.renounced)
    }

    /// Marks that this node gives its word on the change `change`, other than the one it
    /// vouched for ([`GenesisState::renounces_for`]; the caller seals it).
    pub(super) fn renounce_for(&mut self, change: &[u8; 32]) {
        if self.renounces_for(change)
            && let Some(v) = self.sealed.vouched.as_mut()
        {
            v.renounced = true;
        }
    }

    /// The change pending here, if it is the one whose SHA-256 is `named` (`other_change`
    /// otherwise), with its hash.
    pub(super) fn pending_named(
        &self,
        named: &[u8],
    ) -> Result<(protocol::policy::Approved<ChangeRoster>, [u8; 32]), MembershipError> {
        let pending = self
            .pending_roster()
            .ok_or(MembershipError::NoPendingChange)?
            .clone();
        let hash = pending.request.hash();
        if named != hash {
            return Err(MembershipError::OtherChange {
                pending: hex(&hash),
                named: hex(named),
            });
        }
        Ok((pending, hash))
    }

    /// Whether this node gave its word on another change since it vouched.
    pub(super) fn renounced(&self) -> bool {
        self.sealed.vouched.as_ref().is_some_and(|v| v.renounced)
    }

    /// The key set this node vouched for, for the change whose SHA-256 is `change`, with the
    /// chain it vouched under (none if it vouched for no such change).
    pub(super) fn vouched_for(&self, change: &[u8; 32]) -> Option<([u8; 32], [u8; 32])> {
        let v = self
            .sealed
            .vouched
            .as_ref()
            .filter(|v| v.change.as_slice() == change)?;
        Some((
            <[u8; 32]>::try_from(v.keys.as_slice()).ok()?,
            <[u8; 32]>::try_from(v.chain.as_slice()).ok()?,
        ))
    }
}

impl Node {
    /// The roster version in force here (0 before any commit, or without a genesis).
    pub(super) fn roster_now(&self) -> u32 {
        self.genesis
            .as_ref()
            .map_or(0, GenesisState::roster_version)
    }

    /// The key set this node holds incoming for the change pending, checked: it is prepared
    /// for the change; every incoming generation still holds (ones that do not are dropped
    /// first, and one kept for a catch-up counts only under its own frame); a member's every
    /// key has one; it holds no auxiliary information for the roster in force (an ECDSA party
    /// set's is made for the new roster first, planned). Returns the set and its digest.
    fn incoming_set(&mut self) -> Result<(Vec<MovedKey>, [u8; 32]), NodeError> {
        self.prune_incoming();
        let g = self.genesis.as_ref().ok_or_else(|| bad("no genesis yet"))?;
        let pending = g.pending_roster().ok_or(MembershipError::NoPendingChange)?;
        let version = pending.request.new_version();
        if !self.prepared() {
            return Err(MembershipError::NotPrepared { version }.into());
        }
        match self.incoming_frame() {
            Some(frame) => self.set_under(&frame),
            // A node leaving holds no incoming generation.
            None => Err(match self.keys.keys().next() {
                Some(key_id) => MembershipError::KeyNotMoved {
                    key_id: key_id.clone(),
                },
                None => MembershipError::NotInChange {
                    node_key: hex(&self.node_key_public()?),
                },
            }
            .into()),
        }
    }

    /// The key set this node holds incoming under `frame`: every incoming generation that
    /// holds there, and one for each key this node holds (`key_not_moved`); where this node
    /// holds auxiliary information for the roster in force, the new party set's made for the
    /// change (`aux_not_moved`). The set and its digest, which names the new party set's
    /// auxiliary information with the keys where this node holds it ([`set_digest`]).
    fn set_under(&self, frame: &Frame) -> Result<(Vec<MovedKey>, [u8; 32]), NodeError> {
        let aux = self.incoming_aux_under(frame).map(|a| a.digest);
        if self.aux.is_some() && aux.is_none() {
            return Err(MembershipError::AuxNotMoved.into());
        }
        let holds = |key_id: &str| {
            self.incoming
                .get(key_id)
                .is_some_and(|i| self.incoming_holds(frame, key_id, &i.on, i.share.index()))
        };
        if let Some(key_id) = self.keys.keys().find(|k| !holds(k)) {
            return Err(MembershipError::KeyNotMoved {
                key_id: key_id.clone(),
            }
            .into());
        }
        let moved: Vec<MovedKey> = self
            .incoming
            .iter()
            .filter(|(key_id, _)| holds(key_id))
            .map(|(key_id, i)| MovedKey {
                key_id: key_id.clone(),
                generation: i.on.key.generation,
                facts: ByteBuf::from(i.on.key.digest().to_vec()),
                confirmed: i.on.confirmed.clone(),
            })
            .collect();
        let held: Vec<HeldKey<'_>> = moved.iter().map(MovedKey::held).collect();
        let digest = set_digest(&held, aux.as_ref());
        Ok((moved, digest))
    }

    /// A node asked again for the change it committed answers as it did: its own statement as
    /// the change was committed with it, its roster-set statement, and the genesis blob sealed
    /// again (a parent that lost the first answer stores it now: helper-66, finding M2).
    fn committed_answer(&self, change: &[u8]) -> Result<Option<Committed>, NodeError> {
        let Some(g) = self.genesis.as_ref().filter(|g| !g.joining()) else {
            return Ok(None);
        };
        let version = g.roster_version();
        let (Some(hash), Some(committed)) = (g.made_by(version), g.sealed.rosters.last()) else {
            return Ok(None);
        };
        if change != hash {
            return Ok(None);
        }
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let key = self.node_key_public()?;
        let own = committed
            .statements
            .iter()
            .find(|s| s.node_key.as_slice() == key)
            .ok_or_else(|| {
                NodeError::Internal("the committed change has no statement of this node".into())
            })?;
        Ok(Some(Committed {
            version,
            keys: <[u8; 32]>::try_from(own.keys.as_slice()).unwrap_or_default(),
            count: u32::try_from(committed.keys.len()).unwrap_or(u32::MAX),
            statement: own.statement.to_vec(),
            set_statement: Some(
                self.node_statement(&roster_set_message(&cluster, &key, version, &hash))?,
            ),
            sealed: Some(self.seal_genesis(&g.sealed, &cluster)?),
            set: committed.keys.clone(),
            aux: committed.aux.clone(),
            left: false,
        }))
    }

    /// The commit step (`EnclaveRequest::CommitRoster`), at a member or a joining node of the
    /// new roster. With no statements, this node's own over the key set it holds incoming; the
    /// first time, it seals that set as the only one it vouches for, for this change (no key
    /// moves to it after that; helper-66, finding H1). With statements, every check of
    /// [`check_keys_held`] against its own set (the one it vouched for, if it did), at a
    /// joining node the committed words of a threshold of nodes that stay
    /// ([`CommitRoster::committed`]), then the commit ([`Node::install`]). With a catch-up, the commit of a change this node vouched
    /// for that is no longer pending here ([`Node::catch_up`]). Asked again after its commit,
    /// it answers the same. A refusal changes nothing. A node the change removes vouches for
    /// nothing; shown that the change was committed, it leaves ([`Node::leave`]).
    pub fn commit_roster(
        &mut self,
        identity: &SecretIdentity,
        commit: &CommitRoster,
    ) -> Result<Committed, NodeError> {
        if let Some(answer) = self.committed_answer(&commit.change)? {
            return Ok(answer);
        }
        if let Some(up) = &commit.catch_up {
            return self.catch_up(identity, commit, up);
        }
        if self.removed_by_pending() {
            return self.leave(commit);
        }
        let (moved, digest) = self.incoming_set()?;
        let g = self.genesis.as_ref().ok_or_else(|| bad("no genesis yet"))?;
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let (pending, hash) = g.pending_named(&commit.change)?;
        let version = pending.request.new_version();
        let chain = g.chain_digest().ok_or(MembershipError::LegacyGenesis)?;
        let vouched = g.vouched_now();
        if let Some(vouched) = vouched
            && vouched != digest
        {
            return Err(MembershipError::VouchedOther {
                vouched: hex(&vouched),
                holds: hex(&digest),
            }
            .into());
        }
        let statement = self.keys_held_statement(&cluster, (version, &hash), &chain, &digest)?;
        let count = u32::try_from(moved.len()).unwrap_or(u32::MAX);
        let aux = self.aux_digest_under(self.incoming_frame());
        let answer = |set_statement, sealed| Committed {
            version,
            keys: digest,
            count,
            statement: statement.clone(),
            set_statement,
            sealed,
            set: moved.clone(),
            aux: aux.clone(),
            left: false,
        };
        if commit.statements.is_empty() {
            if vouched.is_some() {
                // Sealed again: a parent that lost the first answer's blob stores it now
                // (helper-67, finding 5).
                let sealed = self.seal_genesis(&g.sealed, &cluster)?;
                return Ok(answer(None, Some(sealed)));
            }
            let index = self.incoming_frame().map_or(0, |f| f.3);
            let in_force = g.rosters().last().copied().unwrap_or_default();
            let kept = pending
                .request
                .roster
                .iter()
                .filter(|e| in_force.iter().any(|f| f.node_key == e.node_key))
                .map(|e| e.node_key.clone())
                .collect();
            // Nothing that makes key material or auxiliary information may outlive the vouching
            // (helper-73, finding 4).
            if self.makes_keys() || self.aux_running() {
                return Err(NodeError::InProgress(
                    "a key creation, import, resharing, move or auxiliary-information run is \
                     running here: the node vouches once it ends"
                        .into(),
                ));
            }
            let mut next = g.clone();
            next.sealed.vouched = Some(Vouched {
                change: ByteBuf::from(hash.to_vec()),
                chain: ByteBuf::from(chain.to_vec()),
                keys: ByteBuf::from(digest.to_vec()),
                version,
                index,
                kept,
                renounced: false,
            });
            let sealed = self.seal_genesis(&next.sealed, &cluster)?;
            info!(version, keys = count, set = %hex(&digest), "vouched for the key set moved to the pending roster");
            self.genesis = Some(next);
            // It signs nothing from here until it commits (helper-71, finding 1), also in a
            // session started before (helper-73, finding 4).
            self.drop_signing_sessions();
            return Ok(answer(None, Some(sealed)));
        }
        check_keys_held(
            &cluster,
            &pending.request,
            &chain,
            &digest,
            &commit.statements,
        )?;
        // A joining node commits after a threshold of the nodes that stay did: an honest one
        // among them takes no withdrawal and gives no word on another change, so the members
        // cannot abandon a change that nodes which joined committed and sign on (attacker
        // review helper-70, finding 3).
        if g.joining() {
            catch_up::check_committed(
                g,
                &pending.request,
                &commit.committed,
                self.threshold_of(&pending.request, &moved),
            )?;
        }
        // The chain a restore recomputes the statements' over: the admin changes up to the
        // change's admin version (an admin change drops a pending change, so these are all).
        let current = g.admin_version();
        if pending.request.admins != current {
            return Err(MembershipError::StaleAdmins {
                named: pending.request.admins,
                current,
            }
            .into());
        }
        let mut next = g.clone();
        next.commit_to(CommittedRoster {
            change: pending,
            images: u32::try_from(g.sealed.images.len()).unwrap_or(u32::MAX),
            statements: commit.statements.clone(),
            keys: moved.clone(),
            aux: self.aux_digest_under(self.incoming_frame()),
        });
        let (sealed, set_statement) = self.install(identity, next, &moved, &hash)?;
        Ok(answer(Some(set_statement), Some(sealed)))
    }

    /// The digest of the new party set's auxiliary information held under `frame`, as a
    /// committed change keeps it.
    fn aux_digest_under(&self, frame: Option<Frame>) -> Option<ByteBuf> {
        frame
            .and_then(|f| self.incoming_aux_under(&f))
            .map(|a| ByteBuf::from(a.digest.to_vec()))
    }

    /// This node's word ([`keys_held_message`]) that it holds the key set `keys` for the change
    /// `change` (making roster version `version`) under the chain `chain`.
    fn keys_held_statement(
        &self,
        cluster: &protocol::genesis::ClusterId,
        (version, change): (u32, &[u8; 32]),
        chain: &[u8; 32],
        keys: &[u8; 32],
    ) -> Result<Vec<u8>, NodeError> {
        let key = self.node_key_public()?;
        self.node_statement(&keys_held_message(
            cluster,
            &key,
            (version, change),
            chain,
            keys,
        ))
    }

    /// Commits `next`, this node's genesis state with the change whose SHA-256 is `change`
    /// committed last ([`GenesisState::commit_to`] or [`GenesisState::apply_committed`]), on
    /// the key set `moved`, every key of which this node holds incoming: no key-making or
    /// auxiliary-information session may run. The genesis blob is sealed with the change
    /// committed (no change pending, no prepared record, no `joined` marker, no vouched set;
    /// only this change keeps its key set, for the restore), and only then, in memory: this
    /// node is found in the new roster by its node key, the keys' incoming generations are
    /// current and the old ones dropped, the peers admitted under the old roster are forgotten
    /// (they are admitted again under the new one), presignatures of the old shares dropped.
    /// Returns the sealed blob and the roster-set statement.
    fn install(
        &mut self,
        identity: &SecretIdentity,
        mut next: GenesisState,
        moved: &[MovedKey],
        change: &[u8; 32],
    ) -> Result<(Vec<u8>, Vec<u8>), NodeError> {
        if self.makes_keys() || self.aux_running() {
            return Err(NodeError::InProgress(
                "a key creation, import, resharing, move or auxiliary-information run is \
                 running here: the commit waits for it to end"
                    .into(),
            ));
        }
        let cluster = next.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let version = next.roster_version();
        next.sealed.proposed_roster = None;
        next.sealed.prepared = None;
        next.sealed.joined = None;
        next.sealed.vouched = None;
        if let Some((last, earlier)) = next.sealed.rosters.split_last_mut() {
            for e in earlier {
                e.keys.clear();
                e.aux = None;
            }
            last.keys = moved.to_vec();
        }
        // The new party set's auxiliary information the set was committed with, if any: it
        // replaces the roster in force's.
        let aux = next
            .sealed
            .rosters
            .last()
            .and_then(|c| c.aux.as_deref())
            .map(|a| <[u8; 32]>::try_from(a.as_slice()).unwrap_or_default());
        if aux.is_some() && self.incoming_aux.as_ref().map(|a| a.digest) != aux {
            return Err(NodeError::Internal(
                "the committed set names auxiliary information this node does not hold".into(),
            ));
        }
        let node_key = self.node_key.as_ref().ok_or(MembershipError::NoNodeKey)?;
        next.locate(node_key, &self.own_pcrs)?;
        // Everything that can fail before anything changes: each key's incoming generation
        // and approvers, the seal.
        for k in moved {
            let i = self.incoming.get(&k.key_id).ok_or_else(|| {
                NodeError::Internal(format!("key {} is in the set but not held", k.key_id))
            })?;
            crate::policy::keys32(&i.on.key.policy.approvers).map_err(|e| {
                NodeError::Internal(format!("key {}'s approvers as moved: {e}", k.key_id))
            })?;
        }
        let sealed = self.seal_genesis(&next.sealed, &cluster)?;
        let key = self.node_key_public()?;
        let set_statement =
            self.node_statement(&roster_set_message(&cluster, &key, version, change))?;

        let wanted: BTreeSet<&str> = moved.iter().map(|k| k.key_id.as_str()).collect();
        let mut keys = BTreeMap::new();
        for (key_id, i) in std::mem::take(&mut self.incoming) {
            if !wanted.contains(key_id.as_str()) {
                continue;
            }
            let facts = i.on.key;
            let mut key = Key::new(facts.threshold, &facts.policy, i.share)
                .map_err(|e| NodeError::Internal(e.to_string()))?;
            key.generation = facts.generation.saturating_add(1);
            key.request = <[u8; 32]>::try_from(facts.request.as_slice()).ok();
            key.policy_version = facts.policy_version;
            key.schedule = protocol::reshare::Schedule {
                every: facts.refresh_every,
                since: i.since,
            };
            keys.insert(key_id, key);
        }
        let dropped = self.keys.len();
        self.keys = keys;
        let incoming_aux = self.incoming_aux.take();
        self.aux = aux.and(incoming_aux).map(|a| a.aux);
        self.presignatures.clear();
        self.roster = Roster::default();
        self.roster.insert_self(next.node, identity.public());
        let index = next.node;
        // A node that joined saw none of the requests the members consumed before: it takes
        // none created before now (helper-62, finding 12).
        if self.genesis.as_ref().is_some_and(GenesisState::joining) {
            let now = self.now();
            self.guard.refuse_created_before(now);
        }
        self.genesis = Some(next);
        info!(
            version,
            change = %hex(change),
            index,
            keys = moved.len(),
            dropped,
            "roster change committed: the new roster and the keys' incoming generations are current"
        );
        Ok((sealed, set_statement))
    }
}
