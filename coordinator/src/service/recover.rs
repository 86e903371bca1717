//! `POST /v1/recover` (issue 20, disaster recovery): a coordinator whose database was lost
//! (and given the pinned genesis again, `cohort genesis restore`) rebuilds its key records.
//!
//! Every roster node is asked, with a fresh nonce, for what it holds (`Inventory`), and each
//! page is checked under the node key the genesis lists for it. A key is restored only when
//! every node holds the same generation of it (the same receipt but for the node index), and
//! then with the archived record whose current receipt is exactly that one and which checks
//! against the genesis as a client checks a key; or, when asked, without receipts from what
//! the nodes hold. Nothing is replaced: a key this coordinator has is left as it is. The
//! enclaves decide everything that signs; this rebuilds the coordinator's copy.

use std::collections::BTreeMap;
use std::time::Duration;

use protocol::inventory::{AppliedChange, HeldKey, InventoryReport, RosterWord, verify_inventory};
use protocol::receipt::KeyReceipt;
use protocol::roster::commit::CommittedRoster;
use protocol::{EnclaveRequest, EnclaveResponse};
use rand::RngCore;
use serde_bytes::ByteBuf;
use tracing::info;

use super::changes::ChangeJson;
use super::{Coordinator, err, unix_now};
use crate::api::{
    AcceptImagesJson, ApiError, ApprovedJson, ErrorCode, GenesisBody, KeyInfo, MAX_RECOVER_KEYS,
    NotRestored, PendingGeneration, PolicyJson, RecoverReport, RecoverRequest, SetAdminsJson, Wire,
};
use crate::audit::AuditEntry;
use crate::store::{ChangeRow, KeyRow};

/// Pages one node may answer (each at most `protocol::inventory::INVENTORY_PAGE` keys).
const MAX_PAGES: usize = 1_000;

/// Every node's view of one key, by node index.
pub(super) type Views = BTreeMap<String, Vec<HeldKey>>;

/// Each node's chain of changes of one kind, by node index, as its first page reports it.
type Chains<W> = Vec<Vec<AppliedChange<W>>>;

/// What every node's inventory says: the keys, the admin and image versions, and the chains.
pub(super) struct Inventories {
    pub(super) views: Views,
    versions: (u32, u32),
    admin_changes: Chains<protocol::admins::SetAdmins>,
    image_changes: Chains<protocol::images::AcceptImages>,
    /// The roster change each node holds as proposed, by node index.
    roster_proposals: Vec<(u16, AppliedChange<protocol::roster::ChangeRoster>)>,
    /// Each node's committed roster chain, by node index, as its first page reports it.
    roster_chains: Vec<Vec<CommittedRoster>>,
    /// Each node's words that it committed the changes of its chain, by node index.
    roster_words: Vec<(u16, Vec<RosterWord>)>,
}

impl Coordinator {
    /// Rebuilds the key records the nodes hold from `body`'s archive (see the module).
    pub async fn recover(
        &self,
        body: RecoverRequest,
        credential: String,
    ) -> Result<RecoverReport, ApiError> {
        if body.keys.len().max(body.without_receipts.len()) > MAX_RECOVER_KEYS {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!(
                    "at most {MAX_RECOVER_KEYS} archived keys and {MAX_RECOVER_KEYS} keys to \
                     restore without receipts a request"
                ),
            ));
        }
        let genesis = match self.cluster().await? {
            GenesisBody::V2(g) => g.request.to_wire(),
            GenesisBody::V1(_) => return Err(super::genesis::legacy_genesis()),
        };
        let mut archive: BTreeMap<&str, &KeyInfo> = BTreeMap::new();
        for k in &body.keys {
            if archive.insert(k.key_id.as_str(), k).is_some() {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    format!("key {} is archived twice", k.key_id),
                ));
            }
        }
        // The roster in force, as the nodes' committed chains make it of the genesis (issue 20:
        // changes committed since the genesis): every node must report the same chain, its
        // first page checked under the node key listed for it in the roster that chain makes.
        let (first, rosters) = self.reported_chain(&genesis).await?;
        let in_force = rosters
            .last()
            .cloned()
            .ok_or_else(|| err(ErrorCode::Internal, "no roster, not even the genesis'"))?;
        if in_force.roster.len() != usize::from(self.nodes.count()) {
            return Err(err(
                ErrorCode::Refused,
                format!(
                    "the nodes report roster version {} of {} nodes; this coordinator relays to \
                     {}: start it with the parent proxy of each node of the roster in force, in \
                     its order",
                    in_force.version,
                    in_force.roster.len(),
                    self.nodes.count()
                ),
            ));
        }
        let Inventories {
            views,
            versions: (admins, images),
            admin_changes,
            image_changes,
            roster_proposals,
            roster_chains,
            roster_words,
        } = self.inventories(&in_force, true).await?;
        for (node, chain) in (0u16..).zip(&roster_chains) {
            if !super::roster::same_chain(chain, &first) {
                return Err(err(
                    ErrorCode::Refused,
                    format!(
                        "fork: node {node} reports other committed roster changes than before, \
                         at roster version {}",
                        in_force.version
                    ),
                ));
            }
        }
        // The chains first: admin requests made after this name the admin version in force.
        let admin_changes_restored = self
            .recover_changes::<SetAdminsJson>(&in_force, &admin_changes, &credential)
            .await?;
        let image_changes_restored = self
            .recover_changes::<AcceptImagesJson>(&in_force, &image_changes, &credential)
            .await?;
        let reported = super::roster::ReportedChain {
            rosters: rosters.clone(),
            chain: first,
            words: roster_words,
        };
        let roster_commits_restored = self
            .recover_commits(
                &genesis,
                &reported,
                (&requests_of(&admin_changes), &requests_of(&image_changes)),
                &credential,
            )
            .await?;
        let roster_proposals_restored = self
            .recover_roster_proposals(&in_force, roster_proposals, &credential)
            .await?;
        let roster_entries: Vec<Vec<protocol::genesis::RosterEntry>> =
            rosters.into_iter().map(|r| r.roster).collect();
        let stored: BTreeMap<String, bool> = self
            .db(|s| s.keys())
            .await?
            .into_iter()
            .map(|k| (k.key_id, k.receipts.is_some()))
            .collect();
        let mut report = RecoverReport {
            nodes: self.nodes.count(),
            held: views.len(),
            restored: Vec::new(),
            restored_without_receipts: Vec::new(),
            already_stored: Vec::new(),
            not_restored: Vec::new(),
            pending: Vec::new(),
            admins,
            images,
            admin_changes_restored,
            image_changes_restored,
            roster_proposals_restored,
            roster: in_force.version,
            roster_commits_restored,
        };
        for (key_id, held) in &views {
            if let Some(generation) = held.first().and_then(|k| k.pending) {
                report.pending.push(PendingGeneration {
                    key_id: key_id.clone(),
                    generation,
                });
            }
            let with_receipts = stored.get(key_id).copied();
            if with_receipts == Some(true) {
                report.already_stored.push(key_id.clone());
                continue;
            }
            let refuse = |reason: String| NotRestored {
                key_id: key_id.clone(),
                reason,
            };
            let current = match agreed(held, self.nodes.count()) {
                Ok(r) => r,
                Err(reason) => {
                    report.not_restored.push(refuse(reason));
                    continue;
                }
            };
            // A record that does not check, or is another generation, is reported, never
            // replaced by what the nodes hold alone (helper-50, finding 1): it may be the sign
            // of a rollback or a tampered archive the operator must see.
            let (row, receipts) = match archive.get(key_id.as_str()) {
                Some(info) => match archived_row(
                    (&genesis.cluster_id(), &roster_entries),
                    info,
                    &current,
                    &held[0],
                ) {
                    Ok(row) => (row, true),
                    Err(reason) => {
                        report.not_restored.push(refuse(reason));
                        continue;
                    }
                },
                None if with_receipts.is_none() && body.without_receipts.contains(key_id) => {
                    (held_row(&held[0])?, false)
                }
                None if with_receipts.is_some() => {
                    report.already_stored.push(key_id.clone());
                    continue;
                }
                None => {
                    report.not_restored.push(refuse(
                        "no_archive: no archived record of this key was given (restore it \
                         without receipts only if none exists)"
                            .into(),
                    ));
                    continue;
                }
            };
            let entry = AuditEntry {
                action: "recover_key".into(),
                actors: vec![],
                key_id: Some(key_id.clone()),
                payload_digests: vec![],
                path: vec![],
                nodes: (0..self.nodes.count()).collect(),
                outcome: "ok".into(),
                request_id: None,
                credential: Some(credential.clone()),
                detail: Some(format!(
                    "generation {}, {}",
                    current.generation,
                    if receipts {
                        "archived receipts"
                    } else {
                        "no receipts"
                    }
                )),
            };
            // A key stored without receipts gets them from a record that checks (an upgrade);
            // any other stored key is left as it is.
            let upgrade = with_receipts == Some(false);
            let done = self
                .db(move |s| {
                    if upgrade {
                        s.restore_key_receipts(&row, unix_now(), &entry)
                    } else {
                        s.insert_key(&row, unix_now(), &entry)
                    }
                })
                .await?;
            match (done, receipts) {
                (false, _) => report.already_stored.push(key_id.clone()),
                (true, true) => report.restored.push(key_id.clone()),
                (true, false) => report.restored_without_receipts.push(key_id.clone()),
            }
        }
        info!(
            held = report.held,
            restored = report.restored.len(),
            without_receipts = report.restored_without_receipts.len(),
            refused = report.not_restored.len(),
            "key records recovered from the nodes' inventories"
        );
        Ok(report)
    }

    /// Every node's inventory, each page checked under the node key `roster` lists for it
    /// with this call's nonce; by key id, each key's view at every node (a key some node lacks
    /// has fewer). Also the admin and image versions, which every node must agree on when
    /// `agree` (a recovery).
    pub(super) async fn inventories(
        &self,
        roster: &super::roster::ClusterRoster,
        agree: bool,
    ) -> Result<Inventories, ApiError> {
        let mut nonce = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut views: Views = BTreeMap::new();
        let mut versions = None;
        let (mut admin_changes, mut image_changes) = (Vec::new(), Vec::new());
        let mut roster_proposals = Vec::new();
        let (mut roster_chains, mut roster_words) = (Vec::new(), Vec::new());
        for node in (0u16..).take(roster.roster.len()) {
            let mut after: Option<String> = None;
            for page in 0.. {
                if page == MAX_PAGES {
                    return Err(err(
                        ErrorCode::Refused,
                        format!("node {node} answered more than {MAX_PAGES} inventory pages"),
                    ));
                }
                let mut report = self
                    .inventory_page(roster, node, &nonce, after.clone())
                    .await?;
                if agree && report.roster != roster.version {
                    return Err(err(
                        ErrorCode::Refused,
                        format!(
                            "node {node} is at roster version {}, not {}: every node of the \
                             roster in force must have committed it (run the commit again)",
                            report.roster, roster.version
                        ),
                    ));
                }
                if page == 0 {
                    admin_changes.push(std::mem::take(&mut report.admin_changes));
                    image_changes.push(std::mem::take(&mut report.image_changes));
                    roster_chains.push(std::mem::take(&mut report.rosters));
                    roster_words.push((node, std::mem::take(&mut report.roster_words)));
                    if let Some(p) = report.roster_proposal.take() {
                        roster_proposals.push((node, p));
                    }
                }
                let v = (report.admins, report.images);
                if *versions.get_or_insert(v) != v && agree {
                    return Err(err(
                        ErrorCode::Refused,
                        format!(
                            "the nodes are at different admin or image versions ({:?} and {v:?} at node {node}): catch the lagging nodes up first",
                            versions.unwrap_or(v)
                        ),
                    ));
                }
                after = report.keys.last().map(|k| k.receipt.key_id.clone());
                for k in report.keys {
                    // A key node 0 does not list is not held everywhere: no entry, so that a
                    // node cannot fill this coordinator's memory with keys (helper-50).
                    if node == 0 {
                        views.entry(k.receipt.key_id.clone()).or_default().push(k);
                    } else if let Some(seen) = views.get_mut(&k.receipt.key_id)
                        && seen.len() == usize::from(node)
                    {
                        seen.push(k);
                    }
                }
                if !report.more || after.is_none() {
                    break;
                }
            }
        }
        Ok(Inventories {
            views,
            versions: versions.unwrap_or((0, 0)),
            admin_changes,
            image_changes,
            roster_proposals,
            roster_chains,
            roster_words,
        })
    }

    /// Records again the changes of one kind every node applied that this coordinator has not
    /// recorded (its database was lost): each only when every roster node reports the same
    /// approved change of that version, approvals included, with a statement that verifies
    /// under its roster node key (an enclave applies only a change the admins approved, each
    /// against the set before it); in version order after the last one recorded, which must be
    /// the nodes' own changes (a fork at any version is refused by name: helper-51). Returns
    /// how many were recorded.
    async fn recover_changes<T: ChangeJson>(
        &self,
        roster: &super::roster::ClusterRoster,
        chains: &Chains<T::Wire>,
        credential: &str,
    ) -> Result<u32, ApiError> {
        let refused = |m: String| err(ErrorCode::Refused, m);
        if chains.len() != roster.roster.len() {
            return Err(refused(format!(
                "{} chains for a roster of {} nodes: every roster node's is needed",
                chains.len(),
                roster.roster.len()
            )));
        }
        let recorded = self.recorded_changes::<T>().await?;
        let cluster = roster.cluster_id();
        let longest = chains.iter().map(Vec::len).max().unwrap_or(0);
        if recorded.len() > longest {
            return Err(refused(format!(
                "this coordinator has recorded {} version {} that no node applied",
                T::WHAT,
                longest + 1
            )));
        }
        let mut restored = 0;
        for index in 0..longest {
            let version = u32::try_from(index + 1).unwrap_or(u32::MAX);
            // Every node's copy, JSON (approvals included), and its request's hash.
            let mut copies = Vec::new();
            for (node, chain) in (0u16..).zip(chains) {
                let Some(c) = chain.get(index) else {
                    return Err(refused(format!(
                        "node {node} has not applied {} version {version}: catch it up first",
                        T::WHAT
                    )));
                };
                copies.push((node, ApprovedJson::<T>::from_wire(&c.request), &c.statement));
            }
            let (_, body, _) = &copies[0];
            let hash = body.request.sha256();
            let text =
                serde_json::to_string(body).map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
            if body.request.replaces().checked_add(1) != Some(version) {
                return Err(refused(format!(
                    "node 0's {} chain is out of order at version {version}",
                    T::WHAT
                )));
            }
            if let Some(r) = recorded.get(index)
                && r.hash != hash
            {
                return Err(refused(format!(
                    "fork at {} version {version}: this coordinator recorded request sha256 \
                     {}, the nodes applied {}",
                    T::WHAT,
                    hex::encode(r.hash),
                    hex::encode(hash)
                )));
            }
            // The version and hash it names are `version` and `hash` (checked above).
            let expected = body.request.expected();
            let mut statements = BTreeMap::new();
            for (node, copy, statement) in &copies {
                let same = serde_json::to_string(copy).is_ok_and(|t| t == text);
                let signed = expected.signed_by((&cluster, &roster.roster), *node, statement);
                if !same || !signed {
                    return Err(refused(format!(
                        "node {node} does not report the {} change of version {version} node \
                         0 does (approvals included), with a statement under its roster node \
                         key",
                        T::WHAT
                    )));
                }
                statements.insert(*node, hex::encode(statement));
            }
            if index < recorded.len() {
                continue;
            }
            let row = ChangeRow {
                version,
                request: text,
                request_hash: hash.to_vec(),
                statements,
                created_at: unix_now(),
            };
            let entry = self.recovered_entry(
                "recover_change",
                body.request.request_id(),
                credential,
                format!("{} version {version}", T::WHAT),
            );
            if !self
                .db(move |s| s.insert_change(T::TABLE, &row, unix_now(), &entry))
                .await?
            {
                return Err(refused(format!(
                    "{} version {version} could not be recorded (another coordinator recorded \
                     changes meanwhile?)",
                    T::WHAT
                )));
            }
            restored += 1;
        }
        Ok(restored)
    }

    /// Node `node`'s inventory page after `after`, checked under the node key `roster` lists
    /// for it, with `nonce`.
    pub(super) async fn inventory_page(
        &self,
        roster: &super::roster::ClusterRoster,
        node: u16,
        nonce: &[u8],
        after: Option<String>,
    ) -> Result<InventoryReport, ApiError> {
        let (report, signature) = self.inventory_call(node, nonce, after.clone()).await?;
        Self::verify_page(roster, node, (nonce, after.as_deref()), &report, &signature)?;
        Ok(report)
    }

    /// Node `node`'s inventory page after `after` with `nonce`, and its signature, unchecked.
    pub(super) async fn inventory_call(
        &self,
        node: u16,
        nonce: &[u8],
        after: Option<String>,
    ) -> Result<(InventoryReport, Vec<u8>), ApiError> {
        let request = EnclaveRequest::Inventory {
            nonce: ByteBuf::from(nonce.to_vec()),
            after,
        };
        let answer = self
            .nodes
            .call(node, &request, Duration::from_secs(30))
            .await
            .map_err(|e| {
                err(
                    ErrorCode::NoQuorum,
                    format!("node {node} (every node's inventory is needed): {}", e.0),
                )
            })?;
        match answer {
            EnclaveResponse::Inventory { report, signature } => Ok((*report, signature.to_vec())),
            EnclaveResponse::Error(e) => Err(err(ErrorCode::Refused, format!("node {node}: {e}"))),
            other => Err(err(
                ErrorCode::Internal,
                format!("node {node}: unexpected {other}"),
            )),
        }
    }
}

impl Coordinator {
    /// The audit record of a change a recovery recorded again (`action`), on every node's word.
    pub(super) fn recovered_entry(
        &self,
        action: &str,
        request_id: &[u8],
        credential: &str,
        detail: String,
    ) -> AuditEntry {
        AuditEntry {
            action: action.into(),
            actors: vec![],
            key_id: None,
            payload_digests: vec![],
            path: vec![],
            nodes: (0..self.nodes.count()).collect(),
            outcome: "ok".into(),
            request_id: Some(hex::encode(request_id)),
            credential: Some(credential.to_string()),
            detail: Some(detail),
        }
    }

    /// Checks node `node`'s page `report` for `(nonce, after)` under the node key `roster`
    /// lists for it.
    pub(super) fn verify_page(
        roster: &super::roster::ClusterRoster,
        node: u16,
        (nonce, after): (&[u8], Option<&str>),
        report: &InventoryReport,
        signature: &[u8],
    ) -> Result<(), ApiError> {
        verify_inventory(
            (&roster.cluster_id(), roster.roster.as_slice()),
            node,
            (nonce, after),
            report,
            signature,
        )
        .map_err(|e| err(ErrorCode::Refused, e.to_string()))
    }
}

/// Node 0's copy of a chain of changes, the requests alone (every node's is the same, approvals
/// included: `recover_changes` checked it).
fn requests_of<W: Clone>(chains: &Chains<W>) -> Vec<protocol::policy::Approved<W>> {
    chains
        .first()
        .map(|c| c.iter().map(|a| a.request.clone()).collect())
        .unwrap_or_default()
}

/// The receipt every one of the `nodes` nodes holds for a key (with node index 0), if each
/// holds it, the same generation and the same policy; else why not. `held` is the key's view
/// at nodes 0, 1, … up to the first node that does not hold it.
pub(super) fn agreed(held: &[HeldKey], nodes: u16) -> Result<KeyReceipt, String> {
    if held.len() != usize::from(nodes) {
        return Err(format!(
            "not_everywhere: node {} does not hold it (every node must)",
            held.len()
        ));
    }
    let Some(first) = held.first() else {
        return Err("not_held: no node holds it".into());
    };
    let as_node0 = |k: &HeldKey| KeyReceipt {
        node: 0,
        ..k.receipt.clone()
    };
    let receipt = as_node0(first);
    if let Some((node, _)) = held.iter().enumerate().find(|(_, k)| {
        as_node0(k) != receipt
            || k.policy != first.policy
            || k.policy_void != first.policy_void
            || k.refresh_every != first.refresh_every
            || k.pending != first.pending
    }) {
        return Err(format!(
            "disagree: node {node} holds another generation, threshold, policy, schedule or \
             pending generation of it than node 0"
        ));
    }
    Ok(receipt)
}

/// The row of an archived record that checks against the cluster's rosters by version (the
/// genesis' first) and is the generation every node holds; else why not.
fn archived_row(
    (cluster, rosters): (
        &protocol::genesis::ClusterId,
        &[Vec<protocol::genesis::RosterEntry>],
    ),
    info: &KeyInfo,
    current: &KeyReceipt,
    held: &HeldKey,
) -> Result<KeyRow, String> {
    if current.request.is_empty() {
        return Err(
            "no_request: the nodes sealed this generation before its request was kept".into(),
        );
    }
    info.check(cluster, rosters)
        .map_err(|e| format!("archive: {e}"))?;
    let (claim, _) = info
        .receipt_claim()
        .ok_or_else(|| "archive: no receipts".to_string())?;
    if claim != *current {
        // An archive newer than every node: the nodes' blobs were rolled back together
        // (helper-50, finding 2), or the archive is of another key.
        let kind = if (claim.generation, claim.policy_version)
            > (current.generation, current.policy_version)
        {
            "rollback_suspected"
        } else {
            "stale_archive"
        };
        return Err(format!(
            "{kind}: the archived record is generation {} (policy version {}); every node \
             holds generation {} (policy version {})",
            claim.generation, info.policy_version, current.generation, current.policy_version
        ));
    }
    Ok(KeyRow {
        key_id: info.key_id.clone(),
        scheme: info.scheme.to_string(),
        threshold: info.threshold,
        public_key: info.public_key.0.clone(),
        chain_code: info.chain_code.as_ref().map(|c| c.0.clone()),
        policy: serde_json::to_string(&info.policy).map_err(|e| e.to_string())?,
        created: info.created,
        receipts: info
            .receipts
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| e.to_string())?,
        pending: None,
        refresh_every: held.refresh_every,
        // Unsigned in the record: never later than now, so that a record cannot put the key's
        // next scheduled refresh off (helper-50, finding 6).
        refreshed: info.refreshed.min(unix_now()),
        pending_since: 0,
        policy_version: info.policy_version,
    })
}

/// The row of a key from what the nodes hold alone: no receipts.
fn held_row(held: &HeldKey) -> Result<KeyRow, ApiError> {
    let r = &held.receipt;
    Ok(KeyRow {
        key_id: r.key_id.clone(),
        scheme: r.scheme.to_string(),
        threshold: r.threshold,
        public_key: r.public_key.to_vec(),
        chain_code: r.chain_code.as_ref().map(|c| c.to_vec()),
        policy: serde_json::to_string(&PolicyJson::from_wire(&held.policy))
            .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
        created: unix_now(),
        receipts: None,
        pending: None,
        refresh_every: held.refresh_every,
        refreshed: 0,
        pending_since: 0,
        policy_version: r.policy_version,
    })
}
