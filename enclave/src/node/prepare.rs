//! The prepare step's gate of a roster change (issue 20, step 3 of `docs/lifecycle.md`,
//! ADR 0022): before anything is reshared to the new roster, every node of it holds the same
//! change under the same chain (the approved genesis, every admin and image change since).
//!
//! A node's word on it is its node key's signature over [`roster_held_message`]: the change's
//! hash and the digest of its chain ([`chain_digest`]). Asked with no statements, a node
//! holding the change (a member, or a node that joined it) answers its own and seals nothing.
//! Shown a statement of every node of the new roster (and, optionally, of leaving nodes that
//! still answer), each over this change and this node's own chain and verifying under the node
//! key it names, it seals them with its genesis as *prepared*; a member first checks the change
//! again against the keys it holds then (thresholds, no pending generation).
//!
//! This detects what the join left open (attacker review helper-59, findings 2 and 3): a relay
//! that gave a joining node another approved prefix of the image chain, or walked it back to
//! an earlier change across a restart, leaves that node with another chain digest or another
//! change, and no node of the new roster is prepared with it. Being prepared is read from the
//! sealed state at every use ([`Node::prepared`]): for the change pending and the chain held
//! now, and at a member with the change still holding for the keys it holds. At a member an
//! admin or image change, or a replacing proposal, clears it. At a restore the sealed
//! statements are verified again; ones that no longer hold are dropped, never fatal. A node
//! restored from an older prepared blob is prepared by its own record for what the members
//! replaced (attacker review helper-60, finding 1): its word prepares no one, and the resharing
//! (planned) must bind the change and the chain, not this flag (`docs/threat-model.md`).
//!
//! The chain digest covers the admin and image changes and the committed roster changes.

use std::collections::BTreeSet;

use protocol::genesis::RosterEntry;
use protocol::roster::{
    HeldStatement, MAX_PREPARE_NONCE, PrepareRoster, chain_digest_with_rosters,
    roster_held_message, roster_prepared_message, statements_digest,
};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::admins::hex;
use super::genesis::GenesisState;
use super::membership::MembershipError;
use super::{Node, NodeError, bad};

/// What a node sealed when it was prepared for a roster change: the change's hash, the digest
/// of the chain it held it under, and every node's statement it was shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PreparedOn {
    /// SHA-256 of the change.
    change: serde_bytes::ByteBuf,
    /// The chain's digest.
    chain: serde_bytes::ByteBuf,
    /// Every node's statement.
    statements: Vec<HeldStatement>,
}

/// This node's answer to a prepare step.
#[derive(Debug)]
pub struct Held {
    /// The roster version the change makes.
    pub version: u32,
    /// The digest of the chain this node holds the change under.
    pub chain: [u8; 32],
    /// Its node key's signature over [`roster_held_message`].
    pub statement: Vec<u8>,
    /// When (and only when) it is prepared: its signature over [`roster_prepared_message`] of the sealed
    /// statements and the request's nonce.
    pub prepared_statement: Option<Vec<u8>>,
    /// Whether it is a joining node.
    pub joining: bool,
    /// The sealed genesis blob, when this answer sealed it.
    pub sealed: Option<Vec<u8>>,
}

impl GenesisState {
    /// The digest of the chain this node holds: its cluster, every admin and image change and
    /// every committed roster change.
    pub(super) fn chain_digest(&self) -> Option<[u8; 32]> {
        let cluster = self.cluster_id()?;
        Some(chain_digest_with_rosters(
            &cluster,
            &self.sealed.admins,
            &self.sealed.images,
            &self.sealed.rosters,
        ))
    }

    /// Whether this node is prepared for the roster change pending here: every node's
    /// statement over that change and the chain this node holds now is sealed.
    pub(super) fn prepared(&self) -> bool {
        // The sealed record first: the chain digest (hashing every change) only when it exists.
        let (Some(p), Some(pending)) = (&self.sealed.prepared, self.pending_roster()) else {
            return false;
        };
        p.change.as_slice() == pending.request.hash()
            && self
                .chain_digest()
                .is_some_and(|chain| p.chain.as_slice() == chain)
    }

    /// Checks `statements` for the change pending here under `chain`: one per node key, each of
    /// a node of the new roster or a leaving node of the roster in force, over this chain,
    /// verifying under that key; every node of the new roster has one. At a node that vouched
    /// for another change, every node of the roster in force has one too: a node that
    /// committed that change holds a later roster and gives none, so these words prove that
    /// none did, and being prepared drops the vouched set (attacker review helper-69, finding
    /// 1).
    fn check_held(
        &self,
        chain: &[u8; 32],
        statements: &[HeldStatement],
    ) -> Result<(), MembershipError> {
        let pending = self
            .pending_roster()
            .ok_or(MembershipError::NoPendingChange)?;
        let cluster = self.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let r = &pending.request;
        let (version, hash) = (r.new_version(), r.hash());
        let in_force: Vec<RosterEntry> = self
            .rosters()
            .last()
            .map(|r| r.to_vec())
            .unwrap_or_default();
        let entry = |key: &[u8]| {
            r.roster
                .iter()
                .chain(in_force.iter())
                .find(|e| e.node_key.as_slice() == key)
        };
        let words = statements.iter().map(|s| Word {
            node_key: &s.node_key,
            named: &s.chain,
            statement: &s.statement,
        });
        let mut required = r.roster.clone();
        if let Some(needed) = self.words_needed(&hash) {
            required.extend(
                in_force
                    .iter()
                    .filter(|e| needed.contains(&e.node_key))
                    .filter(|e| !r.roster.iter().any(|n| n.node_key == e.node_key))
                    .cloned(),
            );
        }
        // The node's own word over the chain it names first: a relay cannot pin another chain
        // on an honest node (attacker review helper-60, finding 4).
        check_words(
            words,
            entry,
            &required,
            |key, theirs| roster_held_message(&cluster, key, version, &hash, theirs),
            chain,
            |node_key, theirs, ours| MembershipError::ChainDiffers {
                node_key,
                theirs,
                ours,
            },
        )
    }
}

/// One node's signed word over a digest it names (a chain, a key set).
pub(super) struct Word<'a> {
    pub(super) node_key: &'a [u8],
    pub(super) named: &'a [u8],
    pub(super) statement: &'a [u8],
}

/// Checks nodes' words on a roster change: one per node key, each of a node `listed` finds
/// (else `stranger_statement`, also for a node key named twice), each its node key's signature
/// over `message(node key, the digest it names)` (`unproven_statement`: checked before the
/// digest is compared, so a relay cannot pin another digest on an honest node), the digest it
/// names this node's own, `ours` (else `differs(node key, theirs, ours)`, in hex), and every
/// node of `required` has one (`missing_statement`).
pub(super) fn check_words<'a, 'e>(
    words: impl Iterator<Item = Word<'a>>,
    listed: impl Fn(&[u8]) -> Option<&'e RosterEntry>,
    required: &[RosterEntry],
    message: impl Fn(&[u8; 32], &[u8; 32]) -> Vec<u8>,
    ours: &[u8; 32],
    differs: impl Fn(String, String, String) -> MembershipError,
) -> Result<(), MembershipError> {
    let mut seen = BTreeSet::new();
    for w in words {
        let node_key = hex(w.node_key);
        let (Some(entry), Ok(key)) = (listed(w.node_key), <[u8; 32]>::try_from(w.node_key)) else {
            return Err(MembershipError::StrangerStatement { node_key });
        };
        if !seen.insert(key) {
            return Err(MembershipError::StrangerStatement { node_key });
        }
        let theirs = <[u8; 32]>::try_from(w.named).unwrap_or_default();
        if w.named.len() != 32 || !entry.signed(&message(&key, &theirs), w.statement) {
            return Err(MembershipError::UnprovenStatement { node_key });
        }
        if &theirs != ours {
            return Err(differs(node_key, hex(&theirs), hex(ours)));
        }
    }
    match required
        .iter()
        .find(|e| !seen.iter().any(|k| k.as_slice() == e.node_key.as_slice()))
    {
        Some(missing) => Err(MembershipError::MissingStatement {
            node_key: hex(&missing.node_key),
        }),
        None => Ok(()),
    }
}

/// Keeps the prepared record sealed in a restored genesis blob only if it still holds: for the
/// change pending and the chain held, every statement verifying. One that no longer holds is
/// dropped, never fatal: being prepared lets nothing sign.
pub(super) fn restore_prepared(state: &mut GenesisState, sealed: Option<&PreparedOn>) {
    let Some(prepared) = sealed else {
        return;
    };
    state.sealed.prepared = Some(prepared.clone());
    if !state.prepared() {
        // For a change replaced since, or a chain changed since: the node is prepared again
        // when shown every node's statement over the change and chain it holds now.
        state.sealed.prepared = None;
        return;
    }
    let chain = state.chain_digest().unwrap_or_default();
    if let Err(e) = state.check_held(&chain, &prepared.statements) {
        warn!(error = %e, "the sealed prepared record no longer holds: dropped");
        state.sealed.prepared = None;
    }
}

impl Node {
    /// At a member: the change pending here checked again with the keys it holds now (their
    /// highest threshold; no pending generation). A joining node holds no key. Run before this
    /// node vouches for the change and again wherever being prepared is used
    /// ([`Node::prepared`]), since keys may be created or reshared after the gate.
    fn holds_for_prepare(&self) -> Result<(), NodeError> {
        let g = self.genesis.as_ref().ok_or_else(|| bad("no genesis yet"))?;
        if g.joining() {
            return Ok(());
        }
        let pending = g.pending_roster().ok_or(MembershipError::NoPendingChange)?;
        let max_threshold = self.keys.values().map(|k| k.threshold).max().unwrap_or(0);
        g.check_roster_change(pending, max_threshold)?;
        if let Some((key_id, _)) = self.keys.iter().find(|(_, k)| k.pending.is_some()) {
            return Err(MembershipError::PendingGeneration {
                key_id: key_id.clone(),
            }
            .into());
        }
        if let Some((key_id, _)) = self.keys.iter().find(|(_, k)| k.policy_void) {
            return Err(MembershipError::VoidPolicy {
                key_id: key_id.clone(),
            }
            .into());
        }
        Ok(())
    }

    /// Refuses work that changes the cluster's keys (creating, importing, resharing within
    /// the roster) while this node is prepared for a roster change: the keys moved to the new
    /// roster are then the keys the cluster holds (attacker review helper-62, finding 4). The
    /// admins withdraw the change to make keys before it.
    ///
    /// It reads the sealed record alone, not [`Node::prepared`]: a key with a pending
    /// generation or a void policy makes a member unprepared, and must not thereby let key
    /// work through while the record stands (attacker review helper-63, finding 1).
    ///
    /// It refuses the same while this node vouched for a change it has not committed and no
    /// other change is pending (a withdrawal, an admin or an image change reached it first):
    /// the keys it vouched for stay the keys a catch-up commits (helper-68, finding 2).
    pub(super) fn refuse_while_prepared(&self) -> Result<(), NodeError> {
        if !self.genesis.as_ref().is_some_and(GenesisState::prepared) {
            if let Some((_, version, _, _)) =
                self.genesis.as_ref().and_then(GenesisState::vouched_frame)
            {
                return Err(MembershipError::VouchedNotCommitted { version }.into());
            }
            return Ok(());
        }
        let version = self
            .genesis
            .as_ref()
            .and_then(GenesisState::pending_roster)
            .map_or(0, |p| p.request.new_version());
        Err(MembershipError::RosterChangePrepared { version }.into())
    }

    /// Refuses signing and presigning while this node vouched for a roster change it has not
    /// committed (attacker review helper-71, finding 1): a node that vouched may be one a
    /// commit elsewhere already left behind, and the nodes that committed sign on the new
    /// sharing with their own record of the request ids consumed; with one parent's rollback
    /// of a node that committed, the old roster and the new would otherwise both reach a
    /// threshold and sign one request twice. It signs again once it commits (or is caught
    /// up), or once it is prepared for another change on the word of every node the first
    /// change keeps (proof that none committed it). The pause lasts the commit step.
    pub(super) fn refuse_while_vouched(&self) -> Result<(), NodeError> {
        match self.genesis.as_ref().and_then(GenesisState::vouched_frame) {
            Some((_, version, _, _)) => {
                Err(MembershipError::VouchedNotCommitted { version }.into())
            }
            None => Ok(()),
        }
    }

    /// This node's signature over [`roster_prepared_message`]: prepared for the change under
    /// the chain, on `statements`, answering `nonce`.
    fn prepared_statement(
        &self,
        (cluster, key): (&protocol::genesis::ClusterId, &[u8; 32]),
        (version, hash, chain): (u32, &[u8; 32], &[u8; 32]),
        statements: &[HeldStatement],
        nonce: &[u8],
    ) -> Result<Vec<u8>, NodeError> {
        let set = statements_digest(statements);
        self.node_statement(&roster_prepared_message(
            cluster,
            key,
            (version, hash),
            chain,
            &set,
            nonce,
        ))
    }

    /// Whether this node is prepared for the roster change pending here now: the sealed
    /// statements are for that change and the chain it holds, and (at a member) the change
    /// still holds with the keys held now. What the resharing to the new roster (planned)
    /// starts from.
    pub(super) fn prepared(&self) -> bool {
        self.genesis.as_ref().is_some_and(GenesisState::prepared)
            && self.holds_for_prepare().is_ok()
    }

    /// The prepare step's gate (`EnclaveRequest::PrepareRoster`), at a member or a joining
    /// node: with no statements, this node's own over the change pending here and the chain it
    /// holds; with statements, every check of [`GenesisState::check_held`] (and at a member,
    /// the change against the keys held now: thresholds, no pending generation) before this
    /// node seals itself as prepared. A refusal changes nothing.
    pub fn prepare_roster(&mut self, prepare: &PrepareRoster) -> Result<Held, NodeError> {
        // Keys' incoming generations for a change or chain no longer held go first.
        self.prune_incoming();
        let g = self.genesis.as_ref().ok_or_else(|| bad("no genesis yet"))?;
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let pending = g.pending_roster().ok_or(MembershipError::NoPendingChange)?;
        let hash = pending.request.hash();
        if prepare.change.as_slice() != hash {
            return Err(MembershipError::OtherChange {
                pending: hex(&hash),
                named: hex(&prepare.change),
            }
            .into());
        }
        let version = pending.request.new_version();
        let chain = g.chain_digest().ok_or(MembershipError::LegacyGenesis)?;
        // A member checks the change again with the keys it holds now, before it vouches for
        // it or is prepared: every key is reshared to the new roster from one generation, at
        // a threshold the new roster can hold (attacker review helper-60, finding 2).
        self.holds_for_prepare()?;
        let key = self.node_key_public()?;
        if prepare.nonce.len() > MAX_PREPARE_NONCE {
            return Err(bad(format!(
                "a prepare step's nonce is at most {MAX_PREPARE_NONCE} bytes"
            )));
        }
        let statement =
            self.node_statement(&roster_held_message(&cluster, &key, version, &hash, &chain))?;
        if prepare.statements.is_empty() {
            // Its word on another change than the one it vouched for: sealed first, so that
            // a catch-up of that one then needs a threshold of committed words (helper-70,
            // finding 1).
            let sealed = if g.renounces_for(&hash) {
                let mut renounced = g.clone();
                renounced.renounce_for(&hash);
                let sealed = self.seal_genesis(&renounced.sealed, &cluster)?;
                info!(
                    version,
                    "gave its word on another change than the one it vouched for"
                );
                self.genesis = Some(renounced);
                Some(sealed)
            } else {
                None
            };
            let g = self.genesis.as_ref().ok_or_else(|| bad("no genesis yet"))?;
            let prepared_statement = match (&g.sealed.prepared, self.prepared()) {
                (Some(p), true) => Some(self.prepared_statement(
                    (&cluster, &key),
                    (version, &hash, &chain),
                    &p.statements,
                    &prepare.nonce,
                )?),
                _ => None,
            };
            return Ok(Held {
                version,
                chain,
                statement,
                prepared_statement,
                joining: g.joining(),
                sealed,
            });
        }
        g.check_held(&chain, &prepare.statements)?;
        // No session that makes key material or auxiliary information may span the gate: one
        // started before it and ending after it would change the keys of a prepared node
        // (helper-63, finding 1), or leave the roster in force's auxiliary information made at
        // some nodes only (helper-74, finding 1).
        if self.makes_keys() || self.aux_running() {
            return Err(NodeError::InProgress(
                "a key creation, import, resharing or auxiliary-information run is running \
                 here: the prepare step waits for it to end"
                    .into(),
            ));
        }
        let joining = g.joining();
        let mut next = g.clone();
        if g.vouched_for(&hash).is_none() && next.sealed.vouched.take().is_some() {
            info!(
                version,
                "prepared for another change on every current node's word: the key set vouched \
                 for an earlier change is abandoned"
            );
        }
        next.sealed.prepared = Some(PreparedOn {
            change: serde_bytes::ByteBuf::from(hash.to_vec()),
            chain: serde_bytes::ByteBuf::from(chain.to_vec()),
            statements: prepare.statements.clone(),
        });
        let sealed = self.seal_genesis(&next.sealed, &cluster)?;
        let prepared_statement = self.prepared_statement(
            (&cluster, &key),
            (version, &hash, &chain),
            &prepare.statements,
            &prepare.nonce,
        )?;
        info!(
            version,
            change = %hex(&hash),
            chain = %hex(&chain),
            nodes = prepare.statements.len(),
            "prepared for the pending roster change"
        );
        self.genesis = Some(next);
        // The new party set's auxiliary information needs safe primes, ready by the time it
        // runs (a restored node has none generating: helper-73, finding 2).
        if !joining && self.aux.is_some() {
            self.primes.warm_up();
        }
        Ok(Held {
            version,
            chain,
            statement,
            prepared_statement: Some(prepared_statement),
            joining,
            sealed: Some(sealed),
        })
    }
}
