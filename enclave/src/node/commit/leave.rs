//! A node a roster change removes, told that the change was committed (issue 20): it drops
//! its shares, their presignatures and its auxiliary information, and seals that it left, so
//! that no restore loads them again. Until then a removed node keeps its old shares (it never
//! vouches, so nothing else stops it signing on the old roster), and a threshold of removed
//! nodes could go on signing with them after the nodes that stay moved on (attacker review
//! helper-71, finding 1; the runbook's "terminate the removed nodes" made an enclave rule).
//!
//! The proof that the change was committed is the one a joining node needs
//! ([`super::catch_up::check_committed`]): the `cohort/roster-set/v1` words of as many nodes
//! that stay as the highest threshold of this node's keys, so that an honest one, which commits
//! only a change every node of the new roster vouched for, is among them. A relay alone cannot
//! make a node drop its shares of a change that is not committed.

use protocol::roster::commit::{
    CommitRoster, HeldKey, MovedKey, keys_held_message, roster_left_message, set_digest,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tracing::info;

use super::super::admins::hex;
use super::super::membership::MembershipError;
use super::super::{Node, NodeError, bad};
use super::Committed;
use super::catch_up::check_committed;

/// The change that removed a node, as its genesis keeps it once it left.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::node) struct LeftOn {
    /// SHA-256 of the change.
    change: ByteBuf,
    /// The roster version it made.
    version: u32,
}

impl Node {
    /// Checks that every key this node holds is in the key set the change was committed with
    /// (`commit.keys`, with `commit.aux`), as each node whose committed word is shown vouched
    /// for it: its keys-held statement, in `commit.statements`, over that set's digest under
    /// the chain held here. A key no node that stays holds (a creation the relay let finish at
    /// removed nodes only, a blob withheld from every stayer) is never dropped with the last
    /// copies (`key_not_moved`; attacker review helper-75, finding 1).
    fn check_all_moved(
        &self,
        commit: &CommitRoster,
        (version, change): (u32, &[u8; 32]),
    ) -> Result<(), NodeError> {
        let g = self.genesis.as_ref().ok_or_else(|| bad("no genesis yet"))?;
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let chain = g.chain_digest().ok_or(MembershipError::LegacyGenesis)?;
        let pending = g.pending_roster().ok_or(MembershipError::NoPendingChange)?;
        let aux = match commit.aux.as_deref() {
            Some(a) => Some(<[u8; 32]>::try_from(a.as_slice()).map_err(|_| {
                bad("the committed set's auxiliary information digest is not 32 bytes")
            })?),
            None => None,
        };
        let held: Vec<HeldKey<'_>> = commit.keys.iter().map(MovedKey::held).collect();
        let named = set_digest(&held, aux.as_ref());
        for word in &commit.committed {
            let node_key = hex(&word.node_key);
            let statement = commit
                .statements
                .iter()
                .find(|s| s.node_key == word.node_key)
                .ok_or_else(|| MembershipError::MissingStatement {
                    node_key: node_key.clone(),
                })?;
            if statement.keys.as_slice() != named {
                return Err(MembershipError::KeysDiffer {
                    node_key,
                    theirs: hex(&statement.keys),
                    ours: hex(&named),
                }
                .into());
            }
            let key = <[u8; 32]>::try_from(word.node_key.as_slice()).unwrap_or_default();
            let message = keys_held_message(&cluster, &key, (version, change), &chain, &named);
            let signed = pending
                .request
                .roster
                .iter()
                .find(|e| e.node_key == word.node_key)
                .is_some_and(|e| e.signed(&message, &statement.statement));
            if !signed {
                return Err(MembershipError::UnprovenStatement { node_key }.into());
            }
        }
        for (key_id, key) in &self.keys {
            let facts = self.key_info(key_id)?.digest();
            let moved = commit.keys.iter().any(|k| {
                &k.key_id == key_id && k.generation == key.generation && k.facts.as_slice() == facts
            });
            if !moved {
                return Err(MembershipError::KeyNotMoved {
                    key_id: key_id.clone(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Whether a committed roster change removed this node and it left (its genesis says so):
    /// its phase is `left`.
    pub fn has_left(&self) -> bool {
        self.genesis
            .as_ref()
            .is_some_and(|g| g.sealed.left.is_some())
    }

    /// Whether this node is a member of the roster in force that the change pending here
    /// removes.
    pub(super) fn removed_by_pending(&self) -> bool {
        let Some(g) = self.genesis.as_ref().filter(|g| !g.joining()) else {
            return false;
        };
        let (Some(pending), Ok(key)) = (g.pending_roster(), self.node_key_public()) else {
            return false;
        };
        protocol::genesis::index_in(&pending.request.roster, &key).is_none()
    }

    /// Leaves the roster the pending change replaces, shown that it was committed
    /// (`commit.committed`: module docs). Refused without that proof; asked with none, the
    /// answer names how many words it needs (`too_few_committed`). The genesis blob sealed with
    /// the change's hash, then, in memory, every share, presignature, incoming generation and
    /// the auxiliary information dropped. Answers with an empty key set, its
    /// `cohort/roster-left/v1` word as the statement, no roster-set word (it is in no roster
    /// now), and the genesis blob, which the parent stores as it stores a vouching node's.
    pub(super) fn leave(&mut self, commit: &CommitRoster) -> Result<Committed, NodeError> {
        let g = self.genesis.as_ref().ok_or_else(|| bad("no genesis yet"))?;
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let (pending, hash) = g.pending_named(&commit.change)?;
        let version = pending.request.new_version();
        // A node that vouched for another change keeps that set until it commits it or is
        // prepared for another on every kept node's word (helper-75, finding 2).
        if let Some((_, vouched, _, _)) = g.vouched_frame() {
            return Err(MembershipError::VouchedNotCommitted { version: vouched }.into());
        }
        let highest = self.keys.values().map(|k| usize::from(k.threshold)).max();
        let need = self.words_needed_for(&pending.request, highest);
        check_committed(g, &pending.request, &commit.committed, need)?;
        self.check_all_moved(commit, (version, &hash))?;
        if self.makes_keys() || self.aux_running() {
            return Err(NodeError::InProgress(
                "a key creation, import, resharing, move or auxiliary-information run is running \
                 here: the node leaves once it ends"
                    .into(),
            ));
        }
        let mut next = g.clone();
        next.sealed.prepared = None;
        next.sealed.vouched = None;
        next.sealed.left = Some(LeftOn {
            change: ByteBuf::from(hash.to_vec()),
            version,
        });
        let sealed = self.seal_genesis(&next.sealed, &cluster)?;
        let key = self.node_key_public()?;
        let statement =
            self.node_statement(&roster_left_message(&cluster, &key, version, &hash))?;
        let dropped = self.keys.len();
        self.keys.clear();
        self.incoming.clear();
        self.incoming_aux = None;
        self.presignatures.clear();
        self.aux = None;
        self.drop_signing_sessions();
        self.genesis = Some(next);
        info!(
            version,
            change = %hex(&hash),
            dropped,
            "removed by a committed roster change: every share dropped"
        );
        Ok(Committed {
            version,
            keys: [0; 32],
            count: 0,
            statement,
            set_statement: None,
            sealed: Some(sealed),
            set: Vec::new(),
            aux: None,
            left: true,
        })
    }
}
