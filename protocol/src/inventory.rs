//! A node's inventory (issue 20, disaster recovery): what its enclave holds, signed by its node
//! key, so that a coordinator whose database was lost can rebuild its key records from what
//! the nodes hold rather than from what anyone tells it.
//!
//! Each page names the caller's fresh nonce (a report cannot be replayed from before a later
//! change), the page's start and whether more follow, and carries each key's current receipt
//! as the node signed it when it sealed that generation (an Ed25519 signature is
//! deterministic: the same bytes again), so that a key's archived receipts can be matched with
//! what the node holds now.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::admins::SetAdmins;
use crate::genesis::{ClusterId, RosterEntry};
use crate::images::AcceptImages;
use crate::policy::{Approved, KeyPolicy};
use crate::receipt::KeyReceipt;
use crate::roster::commit::CommittedRoster;

/// Version of [`InventoryReport`].
pub const INVENTORY_VERSION: u8 = 1;
/// Domain tag of an inventory report, which a node key signs.
pub const INVENTORY_DOMAIN: &[u8] = b"cohort/inventory/v1\0";
/// Shortest nonce an inventory request carries (bytes): the report is fresh.
pub const MIN_INVENTORY_NONCE: usize = 16;
/// Longest nonce (bytes).
pub const MAX_INVENTORY_NONCE: usize = 64;
/// Most keys in one page (each at most a few KiB with a 32-approver policy and 64 public
/// shares: a page stays under a third of the frame limit).
pub const INVENTORY_PAGE: usize = 500;
/// Longest key id an inventory names or starts a page after (key ids are far shorter: the
/// coordinator takes at most 64 bytes).
pub const MAX_INVENTORY_KEY_ID: usize = 128;

/// One page of what a node holds, as its node key signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryReport {
    /// [`INVENTORY_VERSION`].
    pub v: u8,
    /// The cluster.
    pub cluster: ClusterId,
    /// The reporting node's index.
    pub node: u16,
    /// The caller's nonce.
    pub nonce: ByteBuf,
    /// The page starts after this key id (`None`: the first page).
    pub after: Option<String>,
    /// Whether keys after the last one listed follow.
    pub more: bool,
    /// The admin version in force at this node.
    pub admins: u32,
    /// The image version in force at this node.
    pub images: u32,
    /// Whether this node holds auxiliary info (ECDSA): a coordinator given the genesis again
    /// runs no auxiliary-info generation when every node says it does.
    pub aux: bool,
    /// On the first page (`after` is `None`; empty on the others): every admin change this
    /// node applied, in version order (change `i` makes admin version `i + 1`), each with the
    /// statement it gave when it applied it (signed again: the same bytes), so that a
    /// coordinator whose database was lost records the chain again.
    pub admin_changes: Vec<AppliedChange<SetAdmins>>,
    /// The same for image changes.
    pub image_changes: Vec<AppliedChange<AcceptImages>>,
    /// On the first page: the roster change this node holds as proposed (issue 20, ADR 0022;
    /// a withdrawal too: it orders the proposals after it), with its statement over
    /// [`crate::roster::roster_proposed_message`] signed again. Absent when there is none, so a
    /// report without one is what it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster_proposal: Option<AppliedChange<crate::roster::ChangeRoster>>,
    /// The roster version in force at this node (issue 20): 0, the genesis', until a roster
    /// change is committed. Absent when 0, so that a report of a node whose roster never
    /// changed is what it was.
    #[serde(default, skip_serializing_if = "crate::skip::is_zero_u32")]
    pub roster: u32,
    /// On the first page: every roster change this node committed, in version order (change
    /// `i` makes roster version `i + 1`), as its genesis blob keeps it less the last one's key
    /// set (`keys` and `aux` empty: the keys are the pages'), so that a coordinator whose
    /// database was lost follows the roster in force again (`POST /v1/recover`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rosters: Vec<CommittedRoster>,
    /// On the first page: this node's word that it committed each change of `rosters` whose
    /// roster lists it ([`crate::roster::commit::roster_set_message`] under its node key,
    /// signed again: the same bytes it gave at the commit), in version order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roster_words: Vec<RosterWord>,
    /// The keys held, in key-id order.
    pub keys: Vec<HeldKey>,
}

/// A node's word that it committed the roster change that made roster version `version`
/// ([`InventoryReport::roster_words`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterWord {
    /// The roster version the change made.
    pub version: u32,
    /// The node key's signature over [`crate::roster::commit::roster_set_message`].
    pub statement: ByteBuf,
}

/// An approved change a node applied, and its statement that it did (under
/// `cohort/admins-set/v1\0` or `cohort/images-set/v1\0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedChange<T> {
    /// The approved change.
    pub request: Approved<T>,
    /// The node's statement (Ed25519 signature by its node key).
    pub statement: ByteBuf,
}

/// A key a node holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldKey {
    /// The current generation's receipt, with this node's index (its `request` is empty for a
    /// generation sealed before its request was kept, whose receipt cannot be given again).
    pub receipt: KeyReceipt,
    /// This node's signature over `receipt` (`None` where its request is unknown).
    pub signature: Option<ByteBuf>,
    /// The approval policy in force (at policy version 0 the receipt does not carry it).
    pub policy: KeyPolicy,
    /// Whether the policy approves nothing (a change of it was disowned here).
    pub policy_void: bool,
    /// The key's refresh schedule, seconds (0: off).
    pub refresh_every: u64,
    /// A resharing's pending generation, sealed and not retired into yet.
    pub pending: Option<u32>,
    /// Every holder's public share of the current generation, by index (compressed points):
    /// with the rest, the key's facts a node joining is told when the key moves to a new
    /// roster ([`HeldKey::key_info`]). Empty from a node that predates them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_shares: Vec<ByteBuf>,
}

impl HeldKey {
    /// The key's facts as this node states them (`crate::roster::transfer::KeyInfo`), for a
    /// key's move to a new roster: `None` for a generation whose request is unknown (it is not
    /// moved) or a report without public shares. Every holder checks them against its own
    /// record, so a coordinator takes them from any one node's report.
    pub fn key_info(&self) -> Option<crate::roster::transfer::KeyInfo> {
        let r = &self.receipt;
        if r.request.is_empty() || self.public_shares.is_empty() {
            return None;
        }
        let info = crate::roster::transfer::KeyInfo {
            v: crate::roster::transfer::KEY_INFO_VERSION,
            key_id: r.key_id.clone(),
            scheme: r.scheme,
            generation: r.generation,
            threshold: r.threshold,
            public_key: r.public_key.clone(),
            chain_code: r.chain_code.clone(),
            public_shares: self.public_shares.clone(),
            request: r.request.clone(),
            policy_version: r.policy_version,
            policy: self.policy.clone(),
            refresh_every: self.refresh_every,
        };
        info.check().is_ok().then_some(info)
    }
}

impl InventoryReport {
    /// The bytes a node key signs: `"cohort/inventory/v1\0" || CBOR(report)`.
    pub fn message(&self) -> Vec<u8> {
        let mut m = INVENTORY_DOMAIN.to_vec();
        ciborium::into_writer(self, &mut m)
            .expect("serializing an inventory into a Vec cannot fail");
        m
    }
}

/// Why a node's inventory page is not believed (each its own variant; the message starts with
/// a stable kind).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// The node is not in the roster.
    #[error("unknown_node: node {0} is not in the roster")]
    UnknownNode(u16),
    /// The report does not verify under the node's key in the roster.
    #[error("bad_signature: node {0}'s inventory does not verify under its roster node key")]
    BadSignature(u16),
    /// The report is not the answer to this request (another cluster, node, nonce or page).
    #[error("not_this_request: node {node}'s inventory names another {what}")]
    NotThisRequest {
        /// The node.
        node: u16,
        /// What differs.
        what: &'static str,
    },
    /// A key in it is malformed or out of order, or its receipt's signature does not verify.
    #[error("bad_key: node {node}'s inventory lists key {key_id}: {why}")]
    BadKey {
        /// The node.
        node: u16,
        /// The key.
        key_id: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// Checks node `node`'s inventory page `report` against the roster in force of cluster
/// `cluster` and the request it answers (`nonce`, `after`): signed by the roster's node key
/// for `node`, naming this cluster, node,
/// nonce and page, its keys in increasing id order after `after`, each receipt this node's and
/// signed by it.
pub fn verify_inventory(
    (cluster, roster): (&ClusterId, &[RosterEntry]),
    node: u16,
    (nonce, after): (&[u8], Option<&str>),
    report: &InventoryReport,
    signature: &[u8],
) -> Result<(), InventoryError> {
    let entry = roster
        .get(usize::from(node))
        .ok_or(InventoryError::UnknownNode(node))?;
    if !entry.signed(&report.message(), signature) {
        return Err(InventoryError::BadSignature(node));
    }
    let cluster = *cluster;
    let differs = [
        (report.v != INVENTORY_VERSION, "version"),
        (report.cluster != cluster, "cluster"),
        (report.node != node, "node"),
        (report.nonce.as_slice() != nonce, "nonce"),
        (report.after.as_deref() != after, "page"),
        (report.keys.len() > INVENTORY_PAGE, "page size"),
        // The chains on the first page only, each as long as the version the node is at: a
        // node cannot drop the newest changes and still report its version (helper-51).
        (
            chain_length(after, report.admin_changes.len(), report.admins),
            "admin change chain",
        ),
        (
            chain_length(after, report.image_changes.len(), report.images),
            "image change chain",
        ),
        (
            chain_length(after, report.rosters.len(), report.roster),
            "committed roster chain",
        ),
        (
            report.roster_words.len() > report.rosters.len(),
            "committed roster words",
        ),
    ];
    if let Some((_, what)) = differs.into_iter().find(|(d, _)| *d) {
        return Err(InventoryError::NotThisRequest { node, what });
    }
    let mut last = after;
    for k in &report.keys {
        let r = &k.receipt;
        let bad = |why| InventoryError::BadKey {
            node,
            key_id: r.key_id.clone(),
            why,
        };
        if r.key_id.len() > MAX_INVENTORY_KEY_ID {
            return Err(bad("key id too long"));
        }
        if last.is_some_and(|l| r.key_id.as_str() <= l) {
            return Err(bad("out of order"));
        }
        last = Some(r.key_id.as_str());
        if r.cluster != cluster || r.node != node {
            return Err(bad("its receipt names another cluster or node"));
        }
        if let Some(s) = &k.signature
            && !entry.signed(&r.message(), s)
        {
            return Err(bad("its receipt's signature does not verify"));
        }
        // Public shares, where listed: one per participant, each the key's point size
        // (helper-65, finding 5).
        let point = match r.scheme {
            crate::policy::Scheme::EcdsaSecp256k1 => 33,
            crate::policy::Scheme::EddsaEd25519 => 32,
        };
        if !k.public_shares.is_empty()
            && (k.public_shares.len() != r.participants.len()
                || k.public_shares.iter().any(|p| p.len() != point))
        {
            return Err(bad("its public shares are not one point per participant"));
        }
    }
    Ok(())
}

/// Whether a page's chain of `len` changes is wrong for a node at `version`: the first page
/// carries every change, the others none.
fn chain_length(after: Option<&str>, len: usize, version: u32) -> bool {
    let expected = if after.is_none() {
        usize::try_from(version).unwrap_or(usize::MAX)
    } else {
        0
    };
    len != expected
}

#[cfg(test)]
mod tests;
