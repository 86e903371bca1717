//! `POST /v1/recover` (issue 20, disaster recovery): a coordinator whose database was lost
//! rebuilds its key records from what every node reports it holds, signed by its node key
//! (`protocol::inventory`), and from the operator's archive of the keys as `GET /v1/keys`
//! showed them (`cohort key list`), each checked as a client checks a key.

use protocol::genesis::{ClusterId, RosterEntry};
use protocol::receipt::{ReceiptError, verify_key_receipts_in};
use serde::{Deserialize, Serialize};

use super::KeyInfo;

/// The body of `POST /v1/recover`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// Archived key records (`GET /v1/keys` as it was), at most [`MAX_RECOVER_KEYS`]: each is
    /// restored with its receipts when it checks against the pinned genesis and is the
    /// generation every node holds now.
    pub keys: Vec<KeyInfo>,
    /// Keys to restore without receipts, by id, at most [`MAX_RECOVER_KEYS`]: each only if
    /// every node holds it, it is not stored and no record of it is in this request. Named
    /// one by one (`cohort key recover --without-receipts` names the keys an earlier request
    /// refused as `no_archive`), so that a key whose record was refused as tampered or stale
    /// is never restored this way by accident. Such keys sign, but clients cannot check them
    /// (`no_receipts`) and the coordinator reshares none of them, until a record that checks
    /// is posted, which gives the stored key its receipts.
    #[serde(default)]
    pub without_receipts: Vec<String>,
}

/// Most archived records in one request (the body limit bounds it too; post more in turns).
pub const MAX_RECOVER_KEYS: usize = 200;

/// What `POST /v1/recover` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverReport {
    /// How many nodes reported (every roster node).
    pub nodes: u16,
    /// How many keys every node holds.
    pub held: usize,
    /// Keys restored with their archived receipts.
    pub restored: Vec<String>,
    /// Keys restored without receipts (`without_receipts`).
    pub restored_without_receipts: Vec<String>,
    /// Keys this coordinator already had (left as they are).
    pub already_stored: Vec<String>,
    /// Keys not restored, and why.
    pub not_restored: Vec<NotRestored>,
    /// Keys with a resharing's generation sealed and not retired into: the admins' resharing
    /// request, posted again (`POST /v1/keys/{key_id}/reshare`), resolves it.
    pub pending: Vec<PendingGeneration>,
    /// The admin version the nodes are at.
    pub admins: u32,
    /// The image version the nodes are at.
    pub images: u32,
    /// Admin changes recorded again from the nodes' inventories (each with every node's
    /// statement), when this coordinator had fewer than the nodes.
    pub admin_changes_restored: u32,
    /// The same for image changes.
    pub image_changes_restored: u32,
    /// Roster change proposals recorded again (issue 20, membership): each a node's inventory
    /// names as the change it holds, with its statement under its roster node key, approved
    /// by the admins in force, and not recorded yet.
    #[serde(default)]
    pub roster_proposals_restored: u32,
    /// The roster version in force at every node (0: the genesis'), which this coordinator
    /// follows from now on.
    #[serde(default)]
    pub roster: u32,
    /// Committed roster changes recorded again from the nodes' inventories (issue 20: a
    /// coordinator whose database was lost after a node was added, replaced or removed): each
    /// checked as the enclaves checked it when they committed it, with the words of the nodes
    /// of the roster in force that they committed it.
    #[serde(default)]
    pub roster_commits_restored: u32,
}

/// A key left out, and why (the message starts with a stable kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotRestored {
    /// The key.
    pub key_id: String,
    /// Why.
    pub reason: String,
}

/// A key's pending generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingGeneration {
    /// The key.
    pub key_id: String,
    /// The pending generation.
    pub generation: u32,
}

/// Why a key record does not check against a pinned genesis and the rosters committed since.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyCheckError {
    /// The receipts (current or of generation 0) do not show that every roster node holds it.
    #[error("{0}")]
    Receipts(ReceiptError),
    /// A field differs from the approved creation, import or resharing request.
    #[error("creation_mismatch: the key's {0} differs from its approved request")]
    Creation(&'static str),
    /// A node has not said that the current generation is the one it signs with.
    #[error(
        "not_retired: node {node} has not said that generation {generation} is the one it signs with"
    )]
    NotRetired {
        /// The generation.
        generation: u32,
        /// The node.
        node: u16,
    },
    /// The receipts name a roster version the rosters checked do not hold (a committed change
    /// the client has not checked, or none).
    #[error(
        "unknown_roster: the receipts are signed under roster version {0}, which the committed \
         roster changes checked here do not make"
    )]
    Roster(u32),
}

impl KeyInfo {
    /// Checks this key as a client does, against the pinned cluster `cluster` and its rosters
    /// by version (`rosters[0]` the genesis', then each committed change's, as the client
    /// checked them): every node of the roster its receipts name signed its receipt with the
    /// node key listed for it, over exactly these fields and the hash of the request served
    /// with it, whose id, scheme, threshold and approval policy are the key's; for a reshared
    /// key, its origin's receipts too and every node's word that the generation the resharing
    /// made is the one it signs with (a committed roster change that moved the key since made
    /// its next generation current at every node of the new roster: the roster-set words a
    /// client checks with the rosters).
    pub fn check(
        &self,
        cluster: &ClusterId,
        rosters: &[Vec<RosterEntry>],
    ) -> Result<(), KeyCheckError> {
        let (claim, signatures) = self
            .receipt_claim()
            .ok_or(KeyCheckError::Receipts(ReceiptError::Missing))?;
        if let Some(what) = self.creation_mismatch() {
            return Err(KeyCheckError::Creation(what));
        }
        let Some(r) = &self.receipts else {
            return Err(KeyCheckError::Receipts(ReceiptError::Missing));
        };
        let roster = |version: u32| {
            usize::try_from(version)
                .ok()
                .and_then(|v| rosters.get(v))
                .map(Vec::as_slice)
                .ok_or(KeyCheckError::Roster(version))
        };
        verify_key_receipts_in((cluster, roster(r.roster)?), &claim, &signatures)
            .map_err(KeyCheckError::Receipts)?;
        if let Some(x) = &r.reshared {
            let origin_roster = roster(x.origin_roster)?;
            let nodes = u16::try_from(origin_roster.len()).unwrap_or(u16::MAX);
            let (origin, signatures) = self
                .origin_claim(nodes)
                .ok_or(KeyCheckError::Receipts(ReceiptError::Missing))?;
            verify_key_receipts_in((cluster, origin_roster), &origin, &signatures)
                .map_err(KeyCheckError::Receipts)?;
        }
        if let (Some(x), Some((generation, request, signatures))) =
            (&r.reshared, self.retired_claim())
        {
            protocol::reshare::verify_retired_in(
                (cluster, roster(x.roster)?),
                (&self.key_id, generation),
                &request,
                &signatures,
            )
            .map_err(|node| KeyCheckError::NotRetired { generation, node })?;
        }
        Ok(())
    }
}
