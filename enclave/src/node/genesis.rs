//! The cluster this enclave belongs to: accepting its genesis, admitting peers on their
//! attestation, and checking that a session's participants are admitted members.

use std::collections::HashSet;

use protocol::policy::{Approved, Canonical, Genesis, REQUEST_VERSION};
use protocol::session::{PeerDocument, genesis_receipt_message};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::{Admission, Node, NodeError, bad};
use crate::identity::SecretIdentity;
use crate::peer::PeerError;
use crate::policy::{check_approvals, keys32};
use crate::seal::BlobKind;

/// The cluster as this enclave knows it from its genesis.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GenesisState {
    pub(super) genesis: Genesis,
    pub(super) node: u16,
}

impl Node {
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

    /// Verifies peers' attestation documents and admits those that pass.
    ///
    /// The batch is admitted as a whole: a document refused because its identity is held by
    /// another index that the same batch re-admits is tried again once that index has taken
    /// its new document, until a pass admits nothing more. So an identity once placed at a
    /// wrong index (one identity is never at two, `PeerError::DuplicateIdentity`) does not
    /// keep its rightful node out of the next honest round.
    pub fn admit_peers(&mut self, documents: &[PeerDocument]) -> Result<Admission, NodeError> {
        let g = self.genesis()?.clone();
        let now = (self.clock)();
        let mut admitted = Vec::new();
        let mut refused = Vec::new();
        let mut pending = Vec::new();
        for doc in documents {
            if doc.node >= g.genesis.nodes || doc.node == g.node {
                refused.push((doc.node, "not a peer node index".to_string()));
            } else {
                pending.push(doc);
            }
        }
        let offered: HashSet<u16> = pending.iter().map(|d| d.node).collect();
        loop {
            let mut again = Vec::new();
            let before = admitted.len();
            for doc in pending {
                match self
                    .roster
                    .admit(doc.node, &doc.document, &self.peer_policy, now)
                {
                    Ok(_) => admitted.push(doc.node),
                    Err(e @ PeerError::DuplicateIdentity { other, .. })
                        if offered.contains(&other) =>
                    {
                        again.push((doc, e.to_string()))
                    }
                    Err(e) => {
                        warn!(node = doc.node, error = %e, "peer refused");
                        refused.push((doc.node, e.to_string()));
                    }
                }
            }
            if again.is_empty() || admitted.len() == before {
                for (doc, e) in again {
                    warn!(node = doc.node, error = %e, "peer refused");
                    refused.push((doc.node, e));
                }
                break;
            }
            pending = again.into_iter().map(|(doc, _)| doc).collect();
        }
        admitted.sort_unstable();
        admitted.dedup();
        refused.sort();
        Ok((admitted, refused))
    }

    /// Checks that `participants` are distinct admitted members; returns this node's position
    /// among them.
    pub(super) fn check_participants(&self, participants: &[u16]) -> Result<u16, NodeError> {
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

    /// Whether `participants` are all the cluster's nodes in index order.
    pub(super) fn all_nodes(&self, participants: &[u16]) -> Result<bool, NodeError> {
        let nodes = self.genesis()?.genesis.nodes;
        Ok(participants.iter().copied().eq(0..nodes))
    }
}
