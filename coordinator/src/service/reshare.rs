//! Resharing and refreshing a key (issue 19): the approved request is checked against the
//! stored key and relayed to every node, which deals, checks and seals the next generation as
//! pending (`enclave::node::reshare`); once every node's receipt of it verifies against the
//! pinned roster, every node is shown all of them and retires the old generation. The stored
//! key's threshold and receipts change last, with the audit record; its presignature pool is
//! emptied (the enclaves dropped them).
//!
//! A failure before the retire leaves the old generation current everywhere; the resharing
//! stays recorded (`keys.pending`) until it is resolved: retired into where every node sealed
//! it, else disowned by every node and abandoned. That happens after the failure, before the
//! key's next resharing, and in the background pass (`service/schedule.rs`) for one left
//! unfinished. A failure during the retire leaves nodes of both generations: the retire is
//! tried again, and the resolution retires the rest.

use std::sync::Arc;

use protocol::policy::Canonical;
use protocol::receipt::{KEY_RECEIPT_VERSION, KeyReceipt, verify_key_receipts_in};
use protocol::reshare::{MAX_REFRESH_EVERY, RESHARE_VERSION, retired_by};
use protocol::session::{FailureCode, Outcome, SessionKind};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use tracing::info;

use super::admins::AdminSet;
use super::checks::{check_admin_approvals, check_version_and_cluster, check_window, not_before};
use super::failover::refusal;
use super::keys::key_info;
use super::roster::ClusterRoster;
use super::{Coordinator, err, unix_now};
use crate::api::{
    ApiError, ApprovedJson, ErrorCode, GenesisBody, Hex, KeyInfo, KeyReceipts, NodeReceipt,
    PolicyJson, ReshareKeyJson, Reshared, Wire,
};
use crate::audit::AuditEntry;
use crate::nodes::{SessionRun, new_session_id, run_session};
use crate::store::NewGeneration;

/// Each node's receipt signature (node index, bytes).
type Signatures = Vec<(u16, Vec<u8>)>;

/// How many times the retire is run while some node has not retired yet.
const RETIRE_TRIES: u32 = 3;

/// The stored key's receipts, which a resharing needs (a key without receipts predates them).
fn stored_receipts(info: &KeyInfo) -> Result<&KeyReceipts, ApiError> {
    info.receipts.as_ref().ok_or_else(|| {
        err(
            ErrorCode::Refused,
            format!("key {} has no receipts to reshare from", info.key_id),
        )
    })
}

/// Who asked for a resharing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// A client, with the admin quorum's approvals.
    Approved,
    /// The coordinator itself, on the key's refresh schedule: no approvals; each enclave
    /// checks it against the schedule it sealed with the key.
    Schedule,
}

/// Checks a resharing against the stored key, the cluster and the admin set in force
/// (`admins`, whose version an approved resharing names); the admins who approved it.
fn validate(
    key_id: &str,
    body: &ApprovedJson<ReshareKeyJson>,
    genesis: &GenesisBody,
    admins: &AdminSet,
    nodes: u16,
    key: &KeyInfo,
    origin: Origin,
) -> Result<Vec<String>, ApiError> {
    let invalid = |m: String| err(ErrorCode::InvalidRequest, m);
    let wire = body.to_wire();
    let r = &wire.request;
    check_version_and_cluster((r.v, RESHARE_VERSION), &r.cluster, genesis)?;
    if r.key_id != key_id {
        return Err(invalid(format!(
            "the request reshares key {}, not {key_id}",
            r.key_id
        )));
    }
    if r.request_id.len() != protocol::policy::REQUEST_ID_LEN {
        return Err(invalid("a request id has 16 bytes".into()));
    }
    let generation = stored_receipts(key)?.generation;
    if r.generation != generation {
        return Err(err(
            ErrorCode::Refused,
            format!(
                "key {key_id} is at generation {generation}; the request reshares generation {}",
                r.generation
            ),
        ));
    }
    if r.threshold < 2 || r.threshold > nodes {
        return Err(invalid(format!(
            "the threshold must be between 2 and {nodes}"
        )));
    }
    if r.refresh_every.is_some_and(|e| e > MAX_REFRESH_EVERY) {
        return Err(invalid(format!(
            "a refresh schedule is at most {MAX_REFRESH_EVERY} s (ten years)"
        )));
    }
    if let Some(policy) = &r.policy {
        policy
            .check()
            .map_err(|e| invalid(format!("the key's new policy: {e}")))?;
    }
    if !r.dealers.windows(2).all(|w| w[0] < w[1])
        || r.dealers.iter().any(|d| *d >= nodes)
        || r.dealers.len() < usize::from(key.threshold)
    {
        return Err(invalid(format!(
            "the dealers must be at least the key's threshold ({}) of nodes 0..{nodes}, each \
             once, in increasing order",
            key.threshold
        )));
    }
    check_window(r.created, r.expiry, unix_now())?;
    if origin == Origin::Schedule {
        if !r.is_scheduled_shape(key.threshold) || !wire.approvals.is_empty() {
            return Err(invalid(
                "a scheduled refresh keeps the key's threshold and schedule, unapproved".into(),
            ));
        }
        return Ok(vec![]);
    }
    if r.scheduled {
        return Err(invalid(
            "a request the admins approve is never marked scheduled".into(),
        ));
    }
    check_admin_approvals(r, r.admins, &wire.approvals, admins)
}

/// The new generation's receipts, from a finished resharing: every node sealed the same key
/// and signed its receipt with its roster node key. Else the code and message to fail with.
fn new_generation(
    roster: &ClusterRoster,
    key: &KeyInfo,
    request: &ReshareKeyJson,
    all: &[u16],
    run: &SessionRun,
) -> Result<Signatures, (ErrorCode, String)> {
    if let Some((node, code, message)) = run.failure() {
        let api =
            if refusal(code) || matches!(code, FailureCode::InProgress | FailureCode::Replayed) {
                ErrorCode::Refused
            } else {
                ErrorCode::KeygenFailed
            };
        return Err((api, format!("node {node}: {code}: {message}")));
    }
    let mut signatures = Vec::new();
    for (node, o) in &run.outcomes {
        match o {
            Outcome::KeyReshared {
                public_key,
                generation,
                receipt,
                ..
            } if public_key.as_slice() == key.public_key.0.as_slice()
                && *generation == request.generation + 1 =>
            {
                signatures.push((*node, receipt.to_vec()));
            }
            other => {
                return Err((
                    ErrorCode::KeygenFailed,
                    format!(
                        "node {node} answered {} instead of the new generation",
                        outcome_name(Some(other))
                    ),
                ));
            }
        }
    }
    check_receipts(roster, key, request, all, &signatures)?;
    Ok(signatures)
}

/// The approval policy, and its version, of the generation `request` makes of `key`: the one it
/// sets, a version up, or the key's own.
fn next_policy(key: &KeyInfo, request: &ReshareKeyJson) -> (u32, PolicyJson) {
    match &request.policy {
        Some(policy) => (key.policy_version.saturating_add(1), policy.clone()),
        None => (key.policy_version, key.policy.clone()),
    }
}

/// Checks that `signatures` are every node's receipt of the generation `request` makes, under
/// the node keys of the roster in force (`roster`): the key's public key and chain code, the
/// new threshold, the request.
fn check_receipts(
    roster: &ClusterRoster,
    key: &KeyInfo,
    request: &ReshareKeyJson,
    all: &[u16],
    signatures: &Signatures,
) -> Result<(), (ErrorCode, String)> {
    let claim = KeyReceipt {
        v: KEY_RECEIPT_VERSION,
        cluster: roster.cluster_id(),
        node: 0,
        key_id: key.key_id.clone(),
        scheme: key.scheme,
        threshold: request.threshold,
        participants: all.to_vec(),
        public_key: ByteBuf::from(key.public_key.0.clone()),
        chain_code: key.chain_code.as_ref().map(|c| ByteBuf::from(c.0.clone())),
        generation: request.generation + 1,
        request: ByteBuf::from(request_hash(request).to_vec()),
        policy_version: 0,
        policy: None,
    };
    let (version, policy) = next_policy(key, request);
    let claim = claim.with_policy(version, &policy.to_wire());
    verify_key_receipts_in((&roster.cluster_id(), &roster.roster), &claim, signatures).map_err(
        |e| {
            (
                ErrorCode::KeygenFailed,
                format!("the new generation's receipts do not verify: {e}"),
            )
        },
    )
}

/// An outcome's name, for errors (never its contents: it may carry sealed blobs).
fn outcome_name(o: Option<&Outcome>) -> String {
    match o {
        None => "no answer".into(),
        Some(Outcome::Failed { code, message, .. }) => format!("{code}: {message}"),
        Some(Outcome::KeyReshared { generation, .. }) => format!("generation {generation} sealed"),
        Some(Outcome::Sealed { .. }) => "sealed".into(),
        Some(Outcome::NotSealed { .. }) => "not sealed".into(),
        Some(Outcome::Disowned { .. }) => "disowned".into(),
        Some(_) => "another outcome".into(),
    }
}

fn request_hash(request: &ReshareKeyJson) -> [u8; 32] {
    Sha256::digest(request.to_wire().canonical_bytes()).into()
}

/// How an unfinished resharing ended.
pub(super) enum Resolved {
    /// Every node had sealed it: it is the key's current generation now.
    Retired(Box<KeyInfo>),
    /// A node never sealed it: every node that did dropped it.
    Abandoned,
}

impl Coordinator {
    /// Reshares (or refreshes) a key across every node.
    pub async fn reshare_key(
        self: &Arc<Self>,
        key_id: String,
        body: ApprovedJson<ReshareKeyJson>,
        credential: String,
    ) -> Result<KeyInfo, ApiError> {
        self.measured(
            "reshare_key",
            self.reshare(&key_id, body, credential, Origin::Approved),
        )
        .await
    }

    pub(super) async fn reshare(
        self: &Arc<Self>,
        key_id: &str,
        body: ApprovedJson<ReshareKeyJson>,
        credential: String,
        origin: Origin,
    ) -> Result<KeyInfo, ApiError> {
        let genesis = self.cluster().await?;
        // Receipts and words are checked under the roster in force (issue 20).
        let roster = self.roster_in_force().await?;
        let nodes = self.nodes.count();
        let all = self.every_node("a resharing").await?;
        let mut row = self.stored_key(key_id).await?;
        // A scheduled refresh never resolves another resharing: that one may be under way at
        // another coordinator (helper-39, finding 4); the background pass resolves it once it
        // is old enough.
        if origin == Origin::Schedule && row.pending.is_some() {
            return Err(err(
                ErrorCode::Refused,
                format!("a resharing of key {key_id} is recorded: the scheduled refresh waits"),
            ));
        }
        // An earlier resharing that did not finish everywhere is resolved first: no node takes
        // another while one is pending.
        if let Some(previous) = row.pending.clone() {
            let previous: ApprovedJson<ReshareKeyJson> = serde_json::from_str(&previous)
                .map_err(|e| err(ErrorCode::Storage, format!("stored resharing: {e}")))?;
            match self
                .resolve(&roster, key_id, &previous, &row, &credential)
                .await?
            {
                Resolved::Retired(info) => {
                    return Err(err(
                        ErrorCode::Refused,
                        format!(
                            "an earlier resharing of key {key_id} (request sha256 {}) had been \
                             sealed by every node and is now its generation {}: approve a new \
                             request for that generation",
                            hex::encode(request_hash(&previous.request)),
                            info.receipts.as_ref().map_or(0, |r| r.generation)
                        ),
                    ));
                }
                Resolved::Abandoned => row = self.stored_key(key_id).await?,
            }
        }
        let admins = self.current_admins(&genesis).await?;
        // A key a committed roster change moved is recorded at the generation it moved to
        // first (the commit records it, unless a node had not committed then), for a request
        // the admins approved that names a later generation, or the coordinator's own
        // schedule: a caller cannot make every node list its keys at will (attacker review
        // helper-78, M1). A failure leaves the record, and the request is refused below.
        let stale = key_info(&row)?
            .receipts
            .is_some_and(|r| r.roster < roster.version && body.request.generation > r.generation);
        let wire = body.to_wire();
        let approved = origin == Origin::Schedule
            || check_admin_approvals(&wire.request, wire.request.admins, &wire.approvals, &admins)
                .is_ok();
        if stale && approved {
            if let Err(e) = self.record_moved_keys().await {
                tracing::warn!(key = key_id, error = %e, "the moved key is not recorded yet");
            }
            row = self.stored_key(key_id).await?;
        }
        let key = key_info(&row)?;
        let actors = validate(key_id, &body, &genesis, &admins, nodes, &key, origin)?;
        not_before(body.request.created).await;
        let request = body.request.clone();
        let entry = AuditEntry {
            action: match origin {
                Origin::Approved => "reshare_key",
                Origin::Schedule => "refresh_scheduled",
            }
            .into(),
            actors,
            key_id: Some(key_id.to_string()),
            payload_digests: vec![],
            path: vec![],
            nodes: all.clone(),
            outcome: "ok".into(),
            request_id: Some(hex::encode(&request.request_id.0)),
            credential: Some(credential.clone()),
            detail: Some(format!(
                "generation {} -> {}, threshold {} -> {}, dealers {:?}, refresh schedule {}, \
                 policy {}, request sha256 {}",
                request.generation,
                request.generation + 1,
                key.threshold,
                request.threshold,
                request.dealers,
                match request.refresh_every {
                    None => "unchanged".to_string(),
                    Some(0) => "off".to_string(),
                    Some(s) => format!("every {s} s"),
                },
                match &request.policy {
                    None => "unchanged".to_string(),
                    Some(p) => format!(
                        "version {} -> {}: {} of approvers [{}]",
                        key.policy_version,
                        key.policy_version.saturating_add(1),
                        p.approvals_needed,
                        p.approvers
                            .iter()
                            .map(|a| hex::encode(&a.0))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
                hex::encode(request_hash(&request))
            )),
        };
        // Recorded before any node deals: whatever happens next, the next request resolves it.
        let json =
            serde_json::to_string(&body).map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        let (id, recorded) = (key_id.to_string(), json.clone());
        if !self
            .db(move |s| s.start_key_pending(&id, &recorded, unix_now()))
            .await?
        {
            return Err(err(
                ErrorCode::Refused,
                format!("another resharing of key {key_id} is under way"),
            ));
        }
        row.pending = Some(json);
        let run = run_session(
            &self.nodes,
            &new_session_id(),
            &all,
            &SessionKind::ReshareKey {
                request: body.to_wire(),
            },
            self.settings.setup_round_timeout,
        )
        .await;
        match new_generation(&roster, &key, &request, &all, &run) {
            Ok(signatures) => {
                self.retire_and_store(&roster, (key_id, &row, &key), &request, signatures, entry)
                    .await
            }
            Err((code, message)) => {
                // Resolved at once where every node answers (else at the next request).
                let _ = self
                    .resolve(&roster, key_id, &body, &row, &credential)
                    .await;
                let mut entry = entry;
                entry.outcome = code.as_str().into();
                let _ = self.db(move |s| s.append_audit(unix_now(), &entry)).await;
                Err(err(code, message))
            }
        }
    }

    pub(super) async fn stored_key(&self, key_id: &str) -> Result<crate::store::KeyRow, ApiError> {
        let id = key_id.to_string();
        self.db(move |s| s.key(&id))
            .await?
            .ok_or_else(|| err(ErrorCode::NotFound, format!("no key {key_id}")))
    }

    /// Resolves a resharing that did not finish everywhere (`enclave/src/node/resolve.rs`):
    /// every node sealed it (it is retired into), or no node has it current (every node
    /// disowns it, then every node holding it abandons it on all their statements).
    pub(super) async fn resolve(
        self: &Arc<Self>,
        roster: &ClusterRoster,
        key_id: &str,
        approved: &ApprovedJson<ReshareKeyJson>,
        row: &crate::store::KeyRow,
        credential: &str,
    ) -> Result<Resolved, ApiError> {
        let all: Vec<u16> = (0..self.nodes.count()).collect();
        let request = &approved.request;
        let generation = request.generation + 1;
        let hash = request_hash(request);
        let run = |kind: SessionKind| {
            let all = all.clone();
            async move {
                run_session(
                    &self.nodes,
                    &new_session_id(),
                    &all,
                    &kind,
                    self.settings.setup_round_timeout,
                )
                .await
            }
        };
        let unresolved = |why: String| {
            err(
                ErrorCode::NoQuorum,
                format!(
                    "an earlier resharing of key {key_id} (request sha256 {}) is unresolved: {why}",
                    hex::encode(hash)
                ),
            )
        };
        let asked = run(SessionKind::ResolveGeneration {
            request: approved.to_wire(),
        })
        .await;
        let mut sealed: Signatures = Vec::new();
        let (mut current, mut frozen) = (Vec::new(), false);
        for node in &all {
            match asked.outcomes.get(node) {
                Some(Outcome::Sealed {
                    receipt,
                    current: c,
                    frozen: f,
                    ..
                }) => {
                    sealed.push((*node, receipt.to_vec()));
                    if *c {
                        current.push(*node);
                    }
                    frozen |= *f;
                }
                Some(Outcome::NotSealed { .. }) => {}
                other => {
                    return Err(unresolved(format!(
                        "node {node} did not answer ({})",
                        outcome_name(other)
                    )));
                }
            }
        }
        let entry = |action: &str, detail: String| AuditEntry {
            action: action.into(),
            actors: vec![],
            key_id: Some(key_id.to_string()),
            payload_digests: vec![],
            path: vec![],
            nodes: all.clone(),
            outcome: "ok".into(),
            request_id: Some(hex::encode(&request.request_id.0)),
            credential: Some(credential.to_string()),
            detail: Some(detail),
        };
        // Every node sealed it and none froze it, or some node has it current (then it can never
        // be abandoned, and a node that froze it is thawed by that node's statement).
        if sealed.len() == all.len() && (!frozen || !current.is_empty()) {
            let key = key_info(row)?;
            check_receipts(roster, &key, request, &all, &sealed)
                .map_err(|(code, message)| err(code, message))?;
            let entry = entry(
                if approved.approvals.is_empty() {
                    "refresh_scheduled"
                } else {
                    "reshare_key"
                },
                format!(
                    "generation {} -> {generation} resolved: sealed by every node (request \
                     sha256 {})",
                    request.generation,
                    hex::encode(hash)
                ),
            );
            let info = self
                .retire_and_store(roster, (key_id, row, &key), request, sealed, entry)
                .await?;
            return Ok(Resolved::Retired(Box::new(info)));
        }
        if !current.is_empty() {
            return Err(unresolved(format!(
                "it is current at nodes {current:?} but not every node still holds it (a \
                 node's blob of it is gone): the old generation signs where it is current; \
                 see docs/threat-model.md"
            )));
        }
        // No node has it current: every node makes sure none ever will, then it is dropped.
        let disowned = run(SessionKind::DisownGeneration {
            request: approved.to_wire(),
        })
        .await;
        let mut statements = Vec::with_capacity(all.len());
        for node in &all {
            match disowned.outcomes.get(node) {
                Some(Outcome::Disowned { statement, .. }) => statements.push(statement.clone()),
                other => {
                    return Err(unresolved(format!(
                        "node {node} did not disown it ({})",
                        outcome_name(other)
                    )));
                }
            }
        }
        let abandoned = run(SessionKind::AbandonGeneration {
            key_id: key_id.to_string(),
            generation,
            request: ByteBuf::from(hash.to_vec()),
            statements,
        })
        .await;
        if let Some((n, code, message)) = abandoned.failure() {
            return Err(unresolved(format!(
                "node {n} did not abandon it: {code}: {message}"
            )));
        }
        let holders: Vec<u16> = sealed.iter().map(|(n, _)| *n).collect();
        let entry = entry(
            "abandon_generation",
            format!(
                "generation {generation} (request sha256 {}) disowned by every node, dropped \
                 by nodes {holders:?}",
                hex::encode(hash)
            ),
        );
        let (id, expected) = (key_id.to_string(), row.pending.clone().unwrap_or_default());
        self.db(move |s| s.clear_key_pending(&id, &expected, unix_now(), &entry))
            .await?;
        Ok(Resolved::Abandoned)
    }

    /// Retires every node of the roster in force (`roster`) into the generation `request`
    /// made (`signatures`: every node's receipt of it), then stores the key's new generation.
    async fn retire_and_store(
        &self,
        roster: &ClusterRoster,
        (key_id, row, key): (&str, &crate::store::KeyRow, &KeyInfo),
        request: &ReshareKeyJson,
        signatures: Signatures,
        mut entry: AuditEntry,
    ) -> Result<KeyInfo, ApiError> {
        let all: Vec<u16> = (0..self.nodes.count()).collect();
        let generation = request.generation + 1;
        let receipts: Vec<ByteBuf> = signatures
            .iter()
            .map(|(_, s)| ByteBuf::from(s.clone()))
            .collect();
        let mut pending: Vec<u16> = all.clone();
        let mut retired: Vec<NodeReceipt> = Vec::new();
        for _ in 0..RETIRE_TRIES {
            // A node that froze the generation (it disowned it) retires into it on another
            // node's statement that it is current there (helper-39, finding 1).
            let retire = SessionKind::RetireGeneration {
                key_id: key_id.to_string(),
                generation,
                receipts: receipts.clone(),
                thaw: retired
                    .first()
                    .map(|r| (r.node, ByteBuf::from(r.signature.0.clone()))),
            };
            let run = run_session(
                &self.nodes,
                &new_session_id(),
                &pending,
                &retire,
                self.settings.setup_round_timeout,
            )
            .await;
            // A node counts as retired once its statement verifies (the check a client makes).
            for (node, o) in &run.outcomes {
                if let Outcome::GenerationRetired { statement, .. } = o
                    && pending.contains(node)
                    && retired_by(
                        (&roster.cluster_id(), &roster.roster),
                        *node,
                        (key_id, generation),
                        &request_hash(request),
                        statement,
                    )
                {
                    retired.push(NodeReceipt {
                        node: *node,
                        signature: Hex(statement.to_vec()),
                    });
                }
            }
            pending.retain(|n| !retired.iter().any(|r| r.node == *n));
            if pending.is_empty() {
                break;
            }
        }
        if !pending.is_empty() {
            entry.outcome = ErrorCode::KeygenFailed.as_str().into();
            let _ = self.db(move |s| s.append_audit(unix_now(), &entry)).await;
            return Err(err(
                ErrorCode::KeygenFailed,
                format!(
                    "generation {generation} of key {key_id} is sealed at every node but nodes \
                     {pending:?} have not retired the old one yet: the next request for the \
                     key retires them first"
                ),
            ));
        }
        let old = stored_receipts(key)?;
        // The key's origin: the receipts its first resharing kept, or, at its first, the
        // receipts of its creation's generation (or of the one committed roster changes moved
        // it to since), under the roster that signed them.
        let origin = match &old.reshared {
            Some(x) => (
                x.origin_threshold,
                x.origin_signatures.clone(),
                (x.origin_generation, x.origin_roster),
            ),
            None => (
                key.threshold,
                old.signatures.clone(),
                (old.generation, old.roster),
            ),
        };
        let receipts = KeyReceipts {
            generation,
            signatures: signatures
                .into_iter()
                .map(|(node, s)| NodeReceipt {
                    node,
                    signature: Hex(s),
                })
                .collect(),
            reshared: Some(Reshared {
                request: request.clone(),
                origin_threshold: origin.0,
                origin_signatures: origin.1,
                retired: {
                    retired.sort_by_key(|r| r.node);
                    retired
                },
                roster: roster.version,
                origin_generation: origin.2.0,
                origin_roster: origin.2.1,
            }),
            participants: all.clone(),
            roster: roster.version,
            moved: 0,
            ..old.clone()
        };
        let json = serde_json::to_string(&receipts)
            .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        let expected = row.receipts.clone().unwrap_or_default();
        let (id, threshold, refresh_every) =
            (key_id.to_string(), request.threshold, request.refresh_every);
        let (policy_version, policy) = next_policy(key, request);
        let policy_json = request
            .policy
            .as_ref()
            .map(|_| serde_json::to_string(&policy))
            .transpose()
            .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        entry.outcome = "ok".into();
        // One instant for the row and the answer: two readings of the clock may straddle a
        // second, and the answer must be what any later fetch reads.
        let now = unix_now();
        let updated = self
            .db(move |s| {
                let generation = NewGeneration {
                    threshold,
                    receipts: &json,
                    refresh_every,
                    policy: policy_json.as_deref().map(|p| (p, policy_version)),
                };
                s.update_key_generation(&id, &generation, &expected, now, &entry)
            })
            .await?;
        if !updated {
            return Err(err(
                ErrorCode::Refused,
                format!("key {key_id} changed while it was reshared"),
            ));
        }
        self.forget_key(key_id);
        info!(key = key_id, generation, threshold, "key reshared");
        let mut info = key.clone();
        info.threshold = request.threshold;
        info.receipts = Some(receipts);
        info.refresh_every = request.refresh_every.unwrap_or(key.refresh_every);
        info.refreshed = now;
        (info.policy_version, info.policy) = (policy_version, policy);
        Ok(info)
    }
}
