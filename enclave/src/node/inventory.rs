//! What this node holds, for a coordinator rebuilding its records after its database was lost
//! (issue 20, disaster recovery): one page of keys, each with its current receipt signed again
//! (Ed25519 is deterministic: the same bytes the node gave when it sealed that generation),
//! the whole page signed by the node key with the caller's nonce. Read only: nothing changes.

use protocol::admins::admins_set_message;
use protocol::images::images_set_message;
use protocol::inventory::{
    AppliedChange, HeldKey, INVENTORY_PAGE, INVENTORY_VERSION, InventoryReport,
    MAX_INVENTORY_KEY_ID, MAX_INVENTORY_NONCE, MIN_INVENTORY_NONCE, RosterWord,
};
use protocol::receipt::{KEY_RECEIPT_VERSION, KeyReceipt};
use protocol::roster::commit::{CommittedRoster, roster_set_message};
use protocol::roster::roster_proposed_message;
use serde_bytes::ByteBuf;

use super::membership::MembershipError;
use super::{Node, NodeError, bad, internal};

impl Node {
    /// One page of this node's keys after `after`, signed with `nonce`.
    pub(crate) fn inventory(
        &self,
        nonce: &[u8],
        after: Option<&str>,
    ) -> Result<(InventoryReport, Vec<u8>), NodeError> {
        if !(MIN_INVENTORY_NONCE..=MAX_INVENTORY_NONCE).contains(&nonce.len()) {
            return Err(bad(format!(
                "an inventory nonce is {MIN_INVENTORY_NONCE} to {MAX_INVENTORY_NONCE} bytes, not {}",
                nonce.len()
            )));
        }
        if after.is_some_and(|a| a.len() > MAX_INVENTORY_KEY_ID) {
            return Err(bad(format!(
                "an inventory page starts after a key id of at most {MAX_INVENTORY_KEY_ID} bytes"
            )));
        }
        let g = self.genesis()?;
        let cluster = g.cluster_id().ok_or(MembershipError::LegacyGenesis)?;
        let node_key = self
            .node_key
            .as_ref()
            .ok_or_else(|| NodeError::Internal("no node key".into()))?;
        let start = match after {
            Some(a) => std::ops::Bound::Excluded(a.to_string()),
            None => std::ops::Bound::Unbounded,
        };
        let mut keys = Vec::new();
        let mut listed = self.keys.range((start, std::ops::Bound::Unbounded));
        for (key_id, key) in listed.by_ref().take(INVENTORY_PAGE) {
            let (public_key, chain_code) = key.share.public_key();
            let receipt = KeyReceipt {
                v: KEY_RECEIPT_VERSION,
                cluster,
                node: g.node,
                key_id: key_id.clone(),
                scheme: key.share.scheme(),
                threshold: key.threshold,
                participants: (0..g.nodes).collect(),
                public_key: ByteBuf::from(public_key),
                chain_code: chain_code.map(ByteBuf::from),
                generation: key.generation,
                request: ByteBuf::from(key.request.map(|r| r.to_vec()).unwrap_or_default()),
                policy_version: 0,
                policy: None,
            }
            .with_policy(key.policy_version, &key.policy);
            let signature = match key.request {
                Some(_) => Some(ByteBuf::from(
                    self.sign_receipt(receipt.clone()).map_err(internal)?,
                )),
                None => None,
            };
            keys.push(HeldKey {
                receipt,
                signature,
                policy: key.policy.clone(),
                policy_void: key.policy_void,
                refresh_every: key.schedule.every,
                pending: key.pending.as_ref().map(|p| p.generation),
                // A share whose public side does not convert lists none (its facts are then
                // unknown here), rather than failing every key's report (helper-65, finding 4).
                public_shares: super::move_key::public_shares(&key.share).unwrap_or_else(|e| {
                    tracing::warn!(key = %key_id, error = %e, "public shares not listed");
                    Vec::new()
                }),
            });
        }
        // The chains of changes on the first page only: each with this node's statement,
        // signed again (the same bytes it gave when it applied the change).
        let (mut admin_changes, mut image_changes) = (Vec::new(), Vec::new());
        let mut roster_proposal = None;
        let (mut rosters, mut roster_words) = (Vec::new(), Vec::new());
        if after.is_none() {
            if let Some(request) = &g.sealed.proposed_roster {
                let r = &request.request;
                let message = roster_proposed_message(
                    &cluster,
                    &node_key.key.public(),
                    r.new_version(),
                    &r.hash(),
                );
                roster_proposal = Some(AppliedChange {
                    request: request.clone(),
                    statement: ByteBuf::from(self.node_statement(&message)?),
                });
            }
            for (version, request) in (1u32..).zip(&g.sealed.admins) {
                let message =
                    admins_set_message(&cluster, g.node, version, &request.request.hash());
                admin_changes.push(AppliedChange {
                    request: request.clone(),
                    statement: ByteBuf::from(self.node_statement(&message)?),
                });
            }
            // The committed roster changes, and this node's word for each whose roster lists
            // it (it committed each such change: the same bytes as then).
            let own = node_key.key.public();
            for (version, committed) in (1u32..).zip(&g.sealed.rosters) {
                let r = &committed.change.request;
                rosters.push(CommittedRoster {
                    keys: Vec::new(),
                    aux: None,
                    ..committed.clone()
                });
                if r.roster.iter().any(|e| e.node_key.as_slice() == own) {
                    let message = roster_set_message(&cluster, &own, version, &r.hash());
                    roster_words.push(RosterWord {
                        version,
                        statement: ByteBuf::from(self.node_statement(&message)?),
                    });
                }
            }
            for (version, request) in (1u32..).zip(&g.sealed.images) {
                let message =
                    images_set_message(&cluster, g.node, version, &request.request.hash());
                image_changes.push(AppliedChange {
                    request: request.clone(),
                    statement: ByteBuf::from(self.node_statement(&message)?),
                });
            }
        }
        let report = InventoryReport {
            v: INVENTORY_VERSION,
            cluster,
            node: g.node,
            nonce: ByteBuf::from(nonce.to_vec()),
            after: after.map(str::to_string),
            more: listed.next().is_some(),
            admins: g.admin_version(),
            images: g.image_version(),
            aux: self.aux.is_some(),
            admin_changes,
            image_changes,
            roster_proposal,
            roster: g.roster_version(),
            rosters,
            roster_words,
            keys,
        };
        let signature = node_key
            .key
            .sign(&report.message())
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        Ok((report, signature.to_vec()))
    }
}
