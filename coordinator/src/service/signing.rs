//! Signing: one approved request, every payload signed once per idempotency key, within the
//! coordinator's deadline and the request's expiry.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use protocol::policy::{
    Approved, Canonical, Payload, REQUEST_ID_LEN, SIGN_REQUEST_VERSION, Scheme, SignRequest,
};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::checks::{
    check_approvals, check_version_and_cluster, check_window, keys_of, not_before,
};
use super::keys::key_info;
use super::ledger::{Claim, Conflict, Entry, StoredResponse, Ticket};
use super::{
    Coordinator, Live, MAX_MESSAGE_LEN, MAX_PAYLOADS, derive_public_key, digest_hex, err, unix_now,
};
use crate::api::{
    ApiError, ApprovedJson, ErrorCode, GenesisBody, Hex, KeyInfo, PresignatureUse, SignRequestJson,
    SignResult, Wire, valid_idempotency_key,
};
use crate::audit::AuditEntry;
use crate::store::{KeyRow, RequestState};

impl Coordinator {
    /// Signs every payload of an approved request, once per idempotency key.
    pub async fn sign(
        self: &Arc<Self>,
        body: ApprovedJson<SignRequestJson>,
        idempotency_key: Option<String>,
        credential: String,
    ) -> Result<StoredResponse, ApiError> {
        let r = body.request.to_wire();
        let idem = match idempotency_key {
            Some(k) if !valid_idempotency_key(&k) => {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    "an idempotency key has 1 to 128 characters from A-Z a-z 0-9 . _ : -",
                ));
            }
            Some(k) => k,
            None => hex::encode(&r.request_id),
        };
        let hash = Sha256::digest(r.canonical_bytes()).to_vec();
        let genesis = self.cluster().await?;
        let key_row = self.key_row(&r.key_id).await?;
        let key = key_info(&key_row)?;
        if let Err(e) = self.check_sign(&r, &key, &genesis) {
            // A resubmission of a finished request gets its first answer, even after it
            // expired (a fresh request is recorded below; only this case needs a lookup).
            if e.code == ErrorCode::RequestExpired
                && let Some(stored) = self.replay(&idem, &hash).await?
            {
                return Ok(stored);
            }
            return Err(e);
        }
        if r.policy != key.policy_version {
            // A request that finished under the old version still gets its first answer
            // (helper-42, finding 4): a client that lost it must not approve the payload again.
            if let Some(stored) = self.replay(&idem, &hash).await? {
                return Ok(stored);
            }
            return Err(err(
                ErrorCode::Unapproved,
                format!(
                    "stale_policy: the request was approved under policy version {} of key {}; \
                     its policy is version {}",
                    r.policy, r.key_id, key.policy_version
                ),
            ));
        }
        let wire = body.to_wire();
        let approvers = keys_of(&key.policy.approvers, "approver")?;
        let actors = check_approvals(&r, &wire.approvals, &approvers, key.policy.approvals_needed)?;
        let claim = Claim {
            idem: idem.clone(),
            kind: "sign",
            request_id: hex::encode(&r.request_id),
            hash,
            request: serde_json::to_string(&body)
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
            lease_secs: self.lease_secs(),
            same_request: true,
            credential: credential.clone(),
        };
        // Held before the lease is taken (a lease that ran out while waiting would let a retry
        // or another coordinator run the request at the same time).
        not_before(r.created).await;
        let lease = match self.take_request(&claim, r.payloads.len() as u16).await? {
            Ok(lease) => lease,
            Err(stored) => return Ok(stored),
        };
        let ticket = Ticket { idem, lease };
        let response = self
            .run_sign(&r, &wire, &key, &key_row, &ticket, body.presignature)
            .await;
        self.record_sign(&r, &ticket, (actors, credential), response)
            .await
    }

    /// Takes the ledger record of a signing request: the lease to run it under, or its stored
    /// answer when it ended before. Waits while another coordinator runs it.
    async fn take_request(
        &self,
        claim: &Claim,
        payloads: u16,
    ) -> Result<Result<u64, StoredResponse>, ApiError> {
        loop {
            match self.claim(claim).await? {
                Entry::Fresh(lease) => return Ok(Ok(lease)),
                Entry::TakenOver { previous, lease } => {
                    warn!(idem = claim.idem, "taking over an interrupted request");
                    let previous = Ticket {
                        idem: claim.idem.clone(),
                        lease: previous,
                    };
                    self.abort_sessions_of(&previous, payloads).await;
                    return Ok(Ok(lease));
                }
                Entry::Replay(text) => return StoredResponse::decode(&text).map(Err),
                Entry::Conflict(Conflict::OtherKey) => {
                    return Err(err(
                        ErrorCode::IdempotencyConflict,
                        format!(
                            "request {} was submitted under another idempotency key",
                            claim.request_id
                        ),
                    ));
                }
                Entry::Conflict(Conflict::OtherRequest) => {
                    return Err(err(
                        ErrorCode::IdempotencyConflict,
                        format!(
                            "idempotency key {} was used for a different request",
                            claim.idem
                        ),
                    ));
                }
                // In flight elsewhere: wait for its end.
                Entry::Busy => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Records the end of a signing request we ran under `ticket`: its answer and audit record.
    async fn record_sign(
        self: &Arc<Self>,
        r: &SignRequest,
        ticket: &Ticket,
        (actors, credential): (Vec<String>, String),
        response: Result<(SignResult, AuditEntry), (ApiError, Vec<u16>)>,
    ) -> Result<StoredResponse, ApiError> {
        let (state, stored, entry) = match response {
            Ok((result, entry)) => (
                RequestState::Completed,
                StoredResponse {
                    status: 200,
                    body: serde_json::to_value(&result)
                        .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
                },
                AuditEntry {
                    actors,
                    credential: Some(credential),
                    detail: None,
                    ..entry
                },
            ),
            Err((e, nodes)) => (
                // A request the cluster could not serve now (no quorum, deadline, every quorum
                // failed) may be resubmitted under the same key and run again; one it refused
                // or that was interrupted ends here.
                if e.code.retryable() {
                    RequestState::Retryable
                } else {
                    RequestState::Failed
                },
                StoredResponse::of_error(&e)?,
                AuditEntry {
                    action: "sign".into(),
                    actors,
                    key_id: Some(r.key_id.clone()),
                    payload_digests: r.payloads.iter().map(|p| digest_hex(p.bytes())).collect(),
                    path: r.path.clone(),
                    nodes,
                    outcome: e.code.as_str().into(),
                    request_id: Some(hex::encode(&r.request_id)),
                    credential: Some(credential),
                    detail: None,
                },
            ),
        };
        if !self
            .finish(&ticket.idem, ticket.lease, state, &stored, vec![entry])
            .await?
        {
            // Another coordinator took it over (our lease ran out): its result stands.
            return self.signature_record(&ticket.idem).await;
        }
        Ok(stored)
    }

    /// How long a signing request is owned: its deadline, the aborts after a failed last
    /// attempt, and a margin.
    fn lease_secs(&self) -> u64 {
        self.settings.sign_deadline.as_secs() + 10
    }

    fn check_sign(
        &self,
        r: &SignRequest,
        key: &KeyInfo,
        genesis: &GenesisBody,
    ) -> Result<(), ApiError> {
        check_version_and_cluster((r.v, SIGN_REQUEST_VERSION), &r.cluster, genesis)?;
        if r.request_id.len() != REQUEST_ID_LEN {
            return Err(err(ErrorCode::InvalidRequest, "a request id has 16 bytes"));
        }
        if r.payloads.is_empty() || r.payloads.len() > MAX_PAYLOADS {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!("a request carries 1 to {MAX_PAYLOADS} payloads"),
            ));
        }
        if r.payloads.iter().any(|p| p.bytes().len() > MAX_MESSAGE_LEN) {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!("a payload (message or preimage) has at most {MAX_MESSAGE_LEN} bytes"),
            ));
        }
        match key.scheme {
            Scheme::EcdsaSecp256k1 => {
                if r.payloads.iter().any(|p| p.ecdsa_digest().is_none()) {
                    return Err(err(
                        ErrorCode::InvalidRequest,
                        "a raw ECDSA payload is a 32-byte digest (or give a hash and a preimage)",
                    ));
                }
                if r.path.len() > 255 || r.path.iter().any(|i| *i >= 1 << 31) {
                    return Err(err(
                        ErrorCode::InvalidRequest,
                        "a path has at most 255 non-hardened indices",
                    ));
                }
            }
            Scheme::EddsaEd25519 => {
                if !r.path.is_empty() {
                    return Err(err(
                        ErrorCode::InvalidRequest,
                        "derivation paths apply to ECDSA keys only",
                    ));
                }
                if r.payloads.iter().any(Payload::is_hashed) {
                    return Err(err(
                        ErrorCode::InvalidRequest,
                        "EdDSA payloads are raw messages (Ed25519 hashes them itself)",
                    ));
                }
            }
        }
        check_window(r.created, r.expiry, unix_now())
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_sign(
        self: &Arc<Self>,
        r: &SignRequest,
        wire: &Approved<SignRequest>,
        key: &KeyInfo,
        key_row: &KeyRow,
        ticket: &Ticket,
        presign: Option<PresignatureUse>,
    ) -> Result<(SignResult, AuditEntry), (ApiError, Vec<u16>)> {
        self.live.fetch_add(1, Ordering::SeqCst);
        let _live = Live(&self.live, &self.last_live);
        let expected_key = match (key.scheme, &key_row.chain_code) {
            (Scheme::EcdsaSecp256k1, Some(cc)) => {
                derive_public_key(&key_row.public_key, cc, &r.path)
                    .map_err(|e| (err(ErrorCode::Internal, format!("derivation: {e}")), vec![]))?
            }
            _ => key_row.public_key.clone(),
        };
        // The deadline: the coordinator's budget, and never past the request's expiry.
        let budget = self.settings.sign_deadline;
        let to_expiry = Duration::from_secs(r.expiry.saturating_sub(unix_now()));
        let deadline = Instant::now() + budget.min(to_expiry);
        let mut signatures = Vec::new();
        let mut attempts = 0u32;
        let mut all_nodes = BTreeSet::new();
        for index in 0..r.payloads.len() as u16 {
            let started = Instant::now();
            let result = self
                .sign_payload(
                    wire,
                    key,
                    index,
                    &expected_key,
                    ticket,
                    deadline,
                    presign,
                    &mut attempts,
                )
                .await;
            match result {
                Ok(sig) => {
                    let op = match (key.scheme, sig.presigned) {
                        (Scheme::EcdsaSecp256k1, true) => "sign_ecdsa_presigned",
                        (Scheme::EcdsaSecp256k1, false) => "sign_ecdsa_full",
                        (Scheme::EddsaEd25519, _) => "sign_eddsa",
                    };
                    self.metrics.observe(op, started.elapsed());
                    all_nodes.extend(sig.nodes.iter().copied());
                    signatures.push(sig);
                }
                Err(e) => {
                    self.metrics.failure("sign", e.code.as_str());
                    return Err((e, all_nodes.into_iter().collect()));
                }
            }
        }
        let entry = AuditEntry {
            action: "sign".into(),
            actors: vec![],
            key_id: Some(r.key_id.clone()),
            payload_digests: r.payloads.iter().map(|p| digest_hex(p.bytes())).collect(),
            path: r.path.clone(),
            nodes: all_nodes.into_iter().collect(),
            outcome: "ok".into(),
            request_id: Some(hex::encode(&r.request_id)),
            credential: None,
            detail: None,
        };
        Ok((
            SignResult {
                idempotency_key: ticket.idem.clone(),
                request_id: Hex(r.request_id.to_vec()),
                key_id: r.key_id.clone(),
                status: RequestState::Completed.to_string(),
                signatures,
                error: None,
                attempts,
            },
            entry,
        ))
    }
}
