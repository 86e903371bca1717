//! Keys: listing them, and creating one across all nodes under a key-id reservation.

use std::sync::Arc;
use std::time::Instant;

use protocol::policy::{Canonical, CreateKey, REQUEST_ID_LEN, REQUEST_VERSION};
use protocol::receipt::{KEY_RECEIPT_VERSION, KeyReceipt, verify_key_receipts_in};
use protocol::session::{FailureCode, Outcome, SessionKind};
use sha2::{Digest, Sha256};
use tracing::info;

use super::admins::AdminSet;
use super::checks::{
    check_admin_approvals, check_version_and_cluster, check_window, keys_of, not_before,
};
use super::failover::refusal;
use super::ledger::{Claim, Entry, StoredResponse};
use super::{Coordinator, err, unix_now};
use crate::api::{
    ApiError, ApprovedJson, ClusterHex, CreateKeyJson, ErrorCode, GenesisBody, Hex, ImportKeyJson,
    KeyInfo, KeyReceipts, NodeReceipt, PolicyJson, Wire, valid_key_id,
};
use crate::audit::AuditEntry;
use crate::nodes::{SessionRun, new_session_id, run_session};
use crate::store::{KeyRow, RequestState};

pub(super) fn key_info(row: &KeyRow) -> Result<KeyInfo, ApiError> {
    Ok(KeyInfo {
        key_id: row.key_id.clone(),
        scheme: row
            .scheme
            .parse()
            .map_err(|e: String| err(ErrorCode::Storage, e))?,
        threshold: row.threshold,
        public_key: Hex(row.public_key.clone()),
        chain_code: row.chain_code.clone().map(Hex),
        policy: serde_json::from_str(&row.policy)
            .map_err(|e| err(ErrorCode::Storage, format!("stored policy: {e}")))?,
        created: row.created,
        receipts: row
            .receipts
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| err(ErrorCode::Storage, format!("stored receipts: {e}")))?,
        refresh_every: row.refresh_every,
        refreshed: row.refreshed,
        policy_version: row.policy_version,
    })
}

/// A new key's public key, (ECDSA) chain code and receipts.
type NewKey = (Vec<u8>, Option<Vec<u8>>, KeyReceipts);

/// A key to make at every node: created by a key generation or imported from legacy shares.
pub(super) struct NewKeyJob {
    /// The key's fields.
    pub(super) r: CreateKey,
    /// SHA-256 of the approved request's canonical bytes (what the receipts sign).
    pub(super) request_hash: Vec<u8>,
    /// The import request, for an import.
    pub(super) import: Option<ImportKeyJson>,
    /// The session every node runs.
    pub(super) kind: SessionKind,
    /// The admins who approved it.
    pub(super) actors: Vec<String>,
    /// `create_key` or `import_key`: the audit action and the metrics label.
    pub(super) action: &'static str,
}

/// The new key the nodes agree on, from a finished generation: every node created it and
/// signed its receipt with the node key the roster in force (`roster`) lists for it (the same
/// check a client makes, `protocol::receipt::verify_key_receipts_in`). Else the code and
/// message to fail with.
fn key_from_outcomes(
    roster: &super::roster::ClusterRoster,
    job: &NewKeyJob,
    participants: &[u16],
    run: &SessionRun,
) -> Result<NewKey, (ErrorCode, String)> {
    let r = &job.r;
    if let Some((node, code, message)) = run.failure() {
        let api_code =
            if refusal(code) || matches!(code, FailureCode::InProgress | FailureCode::Replayed) {
                ErrorCode::Refused
            } else {
                ErrorCode::KeygenFailed
            };
        return Err((api_code, format!("node {node}: {code}: {message}")));
    }
    let mut created: Option<(Vec<u8>, Option<Vec<u8>>)> = None;
    let mut signatures = Vec::new();
    for (node, o) in &run.outcomes {
        let Outcome::KeyCreated {
            public_key,
            chain_code,
            receipt,
            scheme,
            ..
        } = o
        else {
            return Err((
                ErrorCode::KeygenFailed,
                format!("node {node} answered {o:?}"),
            ));
        };
        if *scheme != r.scheme {
            return Err((
                ErrorCode::KeygenFailed,
                format!("node {node} made a {scheme} key"),
            ));
        }
        let this = (public_key.to_vec(), chain_code.as_ref().map(|c| c.to_vec()));
        if let Some(prev) = &created
            && *prev != this
        {
            return Err((
                ErrorCode::KeygenFailed,
                "nodes disagree on the new key: refusing it".into(),
            ));
        }
        created = Some(this);
        signatures.push((*node, receipt.to_vec()));
    }
    let (public_key, chain_code) =
        created.ok_or((ErrorCode::KeygenFailed, "no node answered".into()))?;
    let claim = KeyReceipt {
        v: KEY_RECEIPT_VERSION,
        cluster: roster.cluster_id(),
        node: 0,
        key_id: r.key_id.clone(),
        scheme: r.scheme,
        threshold: r.threshold,
        participants: participants.to_vec(),
        public_key: serde_bytes::ByteBuf::from(public_key.clone()),
        chain_code: chain_code.clone().map(serde_bytes::ByteBuf::from),
        generation: 0,
        request: serde_bytes::ByteBuf::from(job.request_hash.clone()),
        policy_version: 0,
        policy: None,
    };
    verify_key_receipts_in((&roster.cluster_id(), &roster.roster), &claim, &signatures).map_err(
        |e| {
            (
                ErrorCode::KeygenFailed,
                format!("the key's receipts do not verify: {e}"),
            )
        },
    )?;
    let receipts = KeyReceipts {
        cluster: ClusterHex(claim.cluster),
        participants: participants.to_vec(),
        generation: 0,
        creation: CreateKeyJson::from_wire(r),
        import: job.import.clone(),
        signatures: signatures
            .into_iter()
            .map(|(node, signature)| NodeReceipt {
                node,
                signature: Hex(signature),
            })
            .collect(),
        reshared: None,
        roster: roster.version,
        moved: 0,
    };
    Ok((public_key, chain_code, receipts))
}

/// Checks a key-creation request against the cluster's genesis and size: its fields, validity
/// window, and the approvals of the admin set in force (`admins`), whose version it names.
fn validate_create_key(
    body: &ApprovedJson<CreateKeyJson>,
    genesis: &GenesisBody,
    admins: &AdminSet,
    nodes: u16,
) -> Result<NewKeyJob, ApiError> {
    let r = check_new_key(&body.request, genesis, nodes)?;
    let wire = body.to_wire();
    let actors = check_admin_approvals(&r, r.admins, &wire.approvals, admins)?;
    Ok(NewKeyJob {
        request_hash: Sha256::digest(r.canonical_bytes()).to_vec(),
        r,
        import: None,
        kind: SessionKind::CreateKey { request: wire },
        actors,
        action: "create_key",
    })
}

/// Checks a new key's fields (creation or import) against the cluster's genesis and size: its
/// version, cluster, request id, key id, threshold, approval policy and validity window.
pub(super) fn check_new_key(
    body: &CreateKeyJson,
    genesis: &GenesisBody,
    nodes: u16,
) -> Result<CreateKey, ApiError> {
    let r = body.to_wire();
    check_version_and_cluster((r.v, REQUEST_VERSION), &r.cluster, genesis)?;
    if r.request_id.len() != REQUEST_ID_LEN {
        return Err(err(ErrorCode::InvalidRequest, "a request id has 16 bytes"));
    }
    if !valid_key_id(&r.key_id) {
        return Err(err(
            ErrorCode::InvalidRequest,
            "a key id has 1 to 128 characters from A-Z a-z 0-9 . _ -",
        ));
    }
    if r.threshold < 2 || r.threshold > nodes {
        return Err(err(
            ErrorCode::InvalidRequest,
            format!("the threshold must be between 2 and {nodes}"),
        ));
    }
    keys_of(&body.policy.approvers, "approver")?;
    r.policy
        .check()
        .map_err(|e| err(ErrorCode::InvalidRequest, format!("the key's policy: {e}")))?;
    check_window(r.created, r.expiry, unix_now())?;
    Ok(r)
}

/// How long a coordinator serves a key from its cache: after a resharing at another
/// coordinator, signing picks quorums of the old threshold for at most this long (the enclaves
/// refuse them: nothing is signed wrongly).
pub(super) const KEY_CACHE_SECS: u64 = 10;

/// How many times a key generation is run while an enclave answers `not_yet` or `busy`.
const NOT_YET_TRIES: u32 = 5;

impl Coordinator {
    /// Every key.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>, ApiError> {
        self.db(|s| s.keys()).await?.iter().map(key_info).collect()
    }

    /// One key.
    pub async fn key(&self, key_id: &str) -> Result<KeyInfo, ApiError> {
        let id = key_id.to_string();
        let row = self
            .db(move |s| s.key(&id))
            .await?
            .ok_or_else(|| err(ErrorCode::NotFound, format!("no key {key_id}")))?;
        key_info(&row)
    }

    /// A stored key, cached for [`KEY_CACHE_SECS`]: a key changes only when it is reshared
    /// (threshold and receipts), here or at another coordinator.
    pub(super) async fn key_row(&self, key_id: &str) -> Result<KeyRow, ApiError> {
        let cached = self
            .key_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
            .filter(|(_, at)| at.elapsed().as_secs() < KEY_CACHE_SECS)
            .map(|(k, _)| k.clone());
        if let Some(k) = cached {
            return Ok(k);
        }
        let id = key_id.to_string();
        let row = self
            .db(move |s| s.key(&id))
            .await?
            .ok_or_else(|| err(ErrorCode::NotFound, format!("no key {key_id}")))?;
        self.key_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key_id.to_string(), (row.clone(), Instant::now()));
        Ok(row)
    }

    /// Every node's index, when every node is healthy and admitted by every other (what key
    /// generation and resharing need); else `no_quorum` naming `what`.
    pub(super) async fn every_node(&self, what: &str) -> Result<Vec<u16>, ApiError> {
        let all: Vec<u16> = (0..self.nodes.count()).collect();
        let ready = || self.nodes.healthy_nodes().len() == all.len() && self.nodes.usable(&all);
        if !ready() {
            // The last health round may predate a change: look again before refusing.
            self.nodes.check(self.settings.attest_interval).await;
        }
        if !ready() {
            return Err(err(
                ErrorCode::NoQuorum,
                format!("{what} needs every node healthy and admitted by every other"),
            ));
        }
        Ok(all)
    }

    /// Drops a key from this coordinator's cache (it changed).
    pub(super) fn forget_key(&self, key_id: &str) {
        self.key_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key_id);
    }

    /// Creates a key across all nodes.
    pub async fn create_key(
        self: &Arc<Self>,
        body: ApprovedJson<CreateKeyJson>,
        credential: String,
    ) -> Result<KeyInfo, ApiError> {
        self.measured("create_key", async {
            let genesis = self.cluster().await?;
            let admins = self.current_admins(&genesis).await?;
            let job = validate_create_key(&body, &genesis, &admins, self.nodes.count())?;
            self.new_key(job, credential).await
        })
        .await
    }

    /// Makes `job`'s key at every node (a generation or an import) under a key-id
    /// reservation, checks that every node holds the same key and signed its receipt, and
    /// stores it.
    pub(super) async fn new_key(
        self: &Arc<Self>,
        job: NewKeyJob,
        credential: String,
    ) -> Result<KeyInfo, ApiError> {
        let r = &job.r;
        // The roster the request was made for (an import's holders dealt to its nodes): every
        // enclave refuses another too (attacker review helper-79).
        let roster = self.roster_in_force().await?;
        super::roster::check_roster_version("the request names", r.roster, roster.version)?;
        let id = r.key_id.clone();
        if self.db(move |s| s.key(&id)).await?.is_some() {
            return Err(err(
                ErrorCode::KeyExists,
                format!("key {} exists", r.key_id),
            ));
        }
        let all = self.every_node("key generation").await?;
        // Reserve the key id: one generation of a key at a time, across coordinators too.
        // A `/` cannot appear in client idempotency keys: no client request can take this one.
        let reservation = format!("create-key/{}", r.key_id);
        not_before(r.created).await;
        let lease = self
            .reserve_key_id(&reservation, r, &job.request_hash, &credential)
            .await?;
        // An enclave whose clock is behind ours answers `not_yet` (the request is valid from its
        // creation time on), one at its cap of setup sessions `busy` (they end or idle out):
        // the generation is tried again after 1, 2, 4 and 8 s.
        let kind = &job.kind;
        let mut run = None;
        for attempt in 0..NOT_YET_TRIES {
            let this = run_session(
                &self.nodes,
                &new_session_id(),
                &all,
                kind,
                self.settings.setup_round_timeout,
            )
            .await;
            // Any node's `not_yet` or `busy` (the others' outcomes are `aborted` once one fails).
            let later = this.outcomes.values().any(|o| {
                matches!(
                    o,
                    Outcome::Failed {
                        code: FailureCode::NotYet | FailureCode::Busy,
                        ..
                    }
                )
            });
            run = Some(this);
            if !later || attempt + 1 == NOT_YET_TRIES {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
        }
        let run = run.expect("NOT_YET_TRIES is at least 1");
        let mut entry = AuditEntry {
            action: job.action.into(),
            actors: job.actors.clone(),
            key_id: Some(r.key_id.clone()),
            payload_digests: vec![],
            path: vec![],
            nodes: all.clone(),
            outcome: "ok".into(),
            request_id: Some(hex::encode(&r.request_id)),
            credential: Some(credential),
            // An import's record names what the admins approved: the request's hash and the
            // legacy key it brings in (a creation's request id says enough).
            detail: job.import.as_ref().map(|i| {
                format!(
                    "import request sha256 {}, legacy public key {}",
                    hex::encode(&job.request_hash),
                    hex::encode(&i.public_key.0)
                )
            }),
        };
        // A failed generation frees the key id again, with its audit record.
        let fail = |code: ErrorCode, message: String, mut entry: AuditEntry| {
            let reservation = reservation.clone();
            async move {
                entry.outcome = code.as_str().into();
                let _ = self
                    .db(move |s| s.drop_request(&reservation, lease, unix_now(), &[entry]))
                    .await;
                Err(err(code, message))
            }
        };
        // The receipts are checked under the roster in force (issue 20): a key made after a
        // committed change is signed by the nodes of the roster that change made.
        let checked = match self.roster_in_force().await {
            Ok(roster) => key_from_outcomes(&roster, &job, &all, &run),
            Err(e) => Err((ErrorCode::KeygenFailed, e.message)),
        };
        let (public_key, chain_code, receipts) = match checked {
            Ok(key) => key,
            Err((code, message)) => return fail(code, message, entry).await,
        };
        let row = KeyRow {
            key_id: r.key_id.clone(),
            scheme: r.scheme.to_string(),
            threshold: r.threshold,
            public_key,
            chain_code,
            policy: serde_json::to_string(&PolicyJson::from_wire(&r.policy))
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
            created: unix_now(),
            receipts: Some(
                serde_json::to_string(&receipts)
                    .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
            ),
            pending: None,
            refresh_every: 0,
            refreshed: 0,
            pending_since: 0,
            policy_version: 0,
        };
        let stored = row.clone();
        entry.outcome = "ok".into();
        let info = key_info(&row)?;
        let response = StoredResponse {
            status: 201,
            body: serde_json::to_value(&info)
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
        }
        .encode()?;
        let inserted = self
            .db(move |s| {
                let inserted = s.insert_key(&stored, unix_now(), &entry)?;
                s.finish_request(
                    &reservation,
                    lease,
                    RequestState::Completed,
                    &response,
                    unix_now(),
                    &[],
                )?;
                Ok(inserted)
            })
            .await?;
        if !inserted {
            return Err(err(
                ErrorCode::KeyExists,
                format!("key {} exists", r.key_id),
            ));
        }
        info!(key = r.key_id, scheme = %r.scheme, action = job.action, "key made");
        Ok(info)
    }

    /// The recorded answer of the key creation `body` asks, if it ended with the key made
    /// (issue 21: a `create_key` message redelivered after its key was made is answered from
    /// it, as a signing request is from its idempotency record).
    pub async fn create_key_record(
        &self,
        body: &ApprovedJson<CreateKeyJson>,
    ) -> Result<Option<StoredResponse>, ApiError> {
        let r = body.request.to_wire();
        let hash = Sha256::digest(r.canonical_bytes()).to_vec();
        self.replay(&format!("create-key/{}", r.key_id), &hash)
            .await
    }

    /// Reserves a key id for one generation; returns the lease it is held under.
    async fn reserve_key_id(
        &self,
        reservation: &str,
        r: &CreateKey,
        request_hash: &[u8],
        credential: &str,
    ) -> Result<u64, ApiError> {
        let claim = Claim {
            idem: reservation.to_string(),
            kind: "create_key",
            request_id: hex::encode(&r.request_id),
            hash: request_hash.to_vec(),
            request: serde_json::to_string(&CreateKeyJson::from_wire(r))
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
            lease_secs: self
                .settings
                .setup_round_timeout
                .as_secs()
                .saturating_mul(4)
                + 60,
            same_request: false,
            credential: credential.into(),
        };
        match self.claim(&claim).await? {
            // A reservation whose coordinator stopped mid-generation is taken over (enclaves
            // still running the old generation refuse the new one until it idles out).
            Entry::Fresh(lease) | Entry::TakenOver { lease, .. } => Ok(lease),
            Entry::Conflict(_) => Err(err(
                ErrorCode::IdempotencyConflict,
                format!(
                    "request {} was already submitted",
                    hex::encode(&r.request_id)
                ),
            )),
            Entry::Busy => Err(err(
                ErrorCode::KeyExists,
                format!("key {} is being created", r.key_id),
            )),
            Entry::Replay(_) => Err(err(
                ErrorCode::KeyExists,
                format!("key {} exists", r.key_id),
            )),
        }
    }
}
