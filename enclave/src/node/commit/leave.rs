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

use protocol::roster::commit::{CommitRoster, roster_left_message};
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
        let highest = self.keys.values().map(|k| usize::from(k.threshold)).max();
        let need = self.words_needed_for(&pending.request, highest);
        check_committed(g, &pending.request, &commit.committed, need)?;
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
        })
    }
}
