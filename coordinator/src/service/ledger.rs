//! The request ledger: idempotency records and the leases they are run under. One rule for
//! every kind of request (key creation, signing): a new record is ours; an ended one replays its
//! stored answer; one recorded for another request conflicts; one whose coordinator stopped
//! (its lease ran out) is taken over; one in flight elsewhere is busy.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use super::{Coordinator, err, unix_now};
use crate::api::{ApiError, ErrorCode};
use crate::audit::AuditEntry;
use crate::nodes::SESSION_ID_LIFETIME_SECS;
use crate::store::{Begin, RequestState};

/// A response as an idempotency record stores it: status and body, replayed exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: serde_json::Value,
}

impl StoredResponse {
    /// Decodes a stored response.
    pub(super) fn decode(text: &str) -> Result<Self, ApiError> {
        serde_json::from_str(text)
            .map_err(|e| err(ErrorCode::Storage, format!("stored response: {e}")))
    }

    /// The stored form of an error.
    pub fn of_error(e: &ApiError) -> Result<Self, ApiError> {
        Ok(Self {
            status: e.code.status(),
            body: serde_json::to_value(e.body())
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
        })
    }

    /// The response's stored text.
    pub(super) fn encode(&self) -> Result<String, ApiError> {
        serde_json::to_string(self).map_err(|e| err(ErrorCode::Internal, e.to_string()))
    }
}

/// Who runs a signing request: its idempotency key and the lease it holds it under. Session ids
/// derive from it, so a coordinator taking over an interrupted request can abort the sessions
/// its predecessor left at the enclaves (releasing the request there) before signing again.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The idempotency key.
    pub idem: String,
    /// The lease (Unix seconds) the request is held under.
    pub lease: u64,
}

impl Ticket {
    /// The session id of attempt `attempt` at payload `payload`: it expires
    /// [`SESSION_ID_LIFETIME_SECS`] after the lease (every attempt starts within the lease),
    /// the rest derived from the ticket.
    pub fn session(&self, payload: u16, attempt: u32) -> ByteBuf {
        let mut h = Sha256::new();
        h.update(b"cohort/sign-session/v1\0");
        h.update((self.idem.len() as u32).to_be_bytes());
        h.update(self.idem.as_bytes());
        h.update(self.lease.to_be_bytes());
        h.update(payload.to_be_bytes());
        h.update(attempt.to_be_bytes());
        let digest = h.finalize();
        let mut rest = [0u8; 24];
        rest.copy_from_slice(&digest[..24]);
        let expiry = self.lease + SESSION_ID_LIFETIME_SECS;
        ByteBuf::from(protocol::session::session_id_expiring(expiry, &rest).to_vec())
    }
}

/// A request to record in the ledger.
pub(super) struct Claim {
    /// Its idempotency key.
    pub idem: String,
    /// What kind of request (`sign`, `create_key`).
    pub kind: &'static str,
    /// The request id (hex).
    pub request_id: String,
    /// SHA-256 of the request's canonical bytes.
    pub hash: Vec<u8>,
    /// The request as submitted (JSON).
    pub request: String,
    /// How long a lease lasts, seconds.
    pub lease_secs: u64,
    /// Whether a record under this key must hold this very request (signing); a key-id
    /// reservation is held by whichever request for the key came first.
    pub same_request: bool,
    /// The API credential that submitted it.
    pub credential: String,
}

/// Why a claim conflicts with the record holding its key or its request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Conflict {
    /// The request id is recorded under another idempotency key.
    OtherKey,
    /// The idempotency key holds a different request.
    OtherRequest,
}

/// What the ledger says about a claim.
#[derive(Debug)]
pub(super) enum Entry {
    /// Ours, new (or a retryable one run again), under this lease.
    Fresh(u64),
    /// Ours after its previous owner's lease (`previous`) ran out, under `lease`.
    TakenOver {
        /// The lease the previous owner held it under.
        previous: u64,
        /// Ours.
        lease: u64,
    },
    /// It ended: its stored answer (text).
    Replay(String),
    /// Recorded for another request.
    Conflict(Conflict),
    /// In flight under another coordinator's live lease.
    Busy,
}

impl Coordinator {
    /// Records `claim`, or says what holds its key already (taking over an expired lease).
    pub(super) async fn claim(&self, claim: &Claim) -> Result<Entry, ApiError> {
        let now = unix_now();
        let lease = now + claim.lease_secs;
        let (k, kind, rid, h, j, who) = (
            claim.idem.clone(),
            claim.kind,
            claim.request_id.clone(),
            claim.hash.clone(),
            claim.request.clone(),
            claim.credential.clone(),
        );
        let row = match self
            .db(move |s| s.begin_request(&k, kind, &rid, &h, &j, Some(&who), lease, now))
            .await?
        {
            Begin::Started(lease) => return Ok(Entry::Fresh(lease)),
            Begin::Existing(row) => row,
        };
        if row.idem_key != claim.idem {
            return Ok(Entry::Conflict(Conflict::OtherKey));
        }
        if claim.same_request && row.request_hash != claim.hash {
            return Ok(Entry::Conflict(Conflict::OtherRequest));
        }
        if let Some(resp) = row.response {
            return Ok(Entry::Replay(resp));
        }
        if row.lease_until < now {
            // Its coordinator stopped: take it over (the enclaves refuse it if it was consumed
            // meanwhile, and it then fails visibly).
            let new = lease.max(row.lease_until + 1);
            let (k, old) = (claim.idem.clone(), row.lease_until);
            if self
                .db(move |s| s.take_over_request(&k, old, new, now))
                .await?
            {
                return Ok(Entry::TakenOver {
                    previous: old,
                    lease: new,
                });
            }
        }
        Ok(Entry::Busy)
    }

    /// The stored answer of `idem` if it holds this request (`hash`) and ended for good.
    pub(super) async fn replay(
        &self,
        idem: &str,
        hash: &[u8],
    ) -> Result<Option<StoredResponse>, ApiError> {
        let k = idem.to_string();
        match self.db(move |s| s.request(&k)).await? {
            Some(row) if row.request_hash == hash && row.state != RequestState::Retryable => row
                .response
                .as_deref()
                .map(StoredResponse::decode)
                .transpose(),
            _ => Ok(None),
        }
    }

    /// Ends a request we hold under `lease` with its answer and audit records; `false` if
    /// another coordinator took it over meanwhile (its result stands).
    pub(super) async fn finish(
        &self,
        idem: &str,
        lease: u64,
        state: RequestState,
        answer: &StoredResponse,
        entries: Vec<AuditEntry>,
    ) -> Result<bool, ApiError> {
        let (k, text) = (idem.to_string(), answer.encode()?);
        self.db(move |s| s.finish_request(&k, lease, state, &text, unix_now(), &entries))
            .await
    }

    /// The stored result of an idempotency key.
    pub async fn signature_record(&self, idem: &str) -> Result<StoredResponse, ApiError> {
        let key = idem.to_string();
        let row = self
            .db(move |s| s.request(&key))
            .await?
            .ok_or_else(|| err(ErrorCode::NotFound, format!("no request {idem}")))?;
        match row.response {
            Some(r) => StoredResponse::decode(&r),
            None => Ok(StoredResponse {
                status: 202,
                body: serde_json::json!({
                    "idempotency_key": idem,
                    "status": RequestState::InProgress.as_str(),
                }),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::service::MAX_ATTEMPTS;

    #[test]
    fn session_ids_are_derived_per_owner_payload_and_attempt() {
        let t = Ticket {
            idem: "k".into(),
            lease: 10,
        };
        let ids: BTreeSet<Vec<u8>> = (0..3u16)
            .flat_map(|p| (0..MAX_ATTEMPTS).map(move |a| (p, a)))
            .map(|(p, a)| t.session(p, a).to_vec())
            .collect();
        assert_eq!(ids.len(), 3 * MAX_ATTEMPTS as usize);
        assert_eq!(t.session(1, 2), t.clone().session(1, 2));
        let next_owner = Ticket {
            lease: 11,
            ..t.clone()
        };
        assert!(!ids.contains(&next_owner.session(0, 0).to_vec()));
        assert_eq!(t.session(0, 0).len(), 32);
        // Each carries its expiry, after the lease.
        let id: [u8; 32] = t.session(2, 3).to_vec().try_into().unwrap();
        assert_eq!(
            protocol::session::session_id_expiry(&id),
            10 + SESSION_ID_LIFETIME_SECS
        );
    }
}
