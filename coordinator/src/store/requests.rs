//! The requests table: idempotency records, their leases and their stored responses.

use super::{RequestState, Row, Store, StoreError, Value};
use crate::audit::AuditEntry;

/// An idempotency record: one request and, once it ended, its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    /// The idempotency key.
    pub idem_key: String,
    /// What kind of request (`sign`).
    pub kind: String,
    /// SHA-256 of the request's canonical body: a resubmission must match it.
    pub request_hash: Vec<u8>,
    /// The request as submitted (JSON), for the audit record of an interrupted request.
    pub request: String,
    /// The approved request's id (hex): one record per request id, whatever the key.
    pub request_id: String,
    /// Where it is.
    pub state: RequestState,
    /// The response (JSON) once ended.
    pub response: Option<String>,
    /// Until when (Unix seconds) the coordinator running it owns it.
    pub lease_until: u64,
    /// The API credential that submitted it (none for requests from before credentials).
    pub credential: Option<String>,
}

/// What [`Store::begin_request`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// A new record (or a retryable one run again), owned by the caller under this lease.
    Started(u64),
    /// A record with this key exists.
    Existing(RequestRow),
}

fn request_row(r: &Row) -> Result<RequestRow, StoreError> {
    Ok(RequestRow {
        idem_key: r.text(0)?,
        kind: r.text(1)?,
        request_hash: r.bytes(2)?,
        request: r.text(3)?,
        state: r.text(4)?.parse()?,
        response: r.opt_text(5)?,
        lease_until: r.int(6)? as u64,
        request_id: r.text(7)?,
        credential: r.opt_text(8)?,
    })
}

const REQUEST_COLUMNS: &str =
    "idem_key, kind, request_hash, request, state, response, lease_until, request_id, credential";
impl Store {
    /// Starts an idempotent request, or returns the record already holding its key.
    #[allow(clippy::too_many_arguments)]
    pub fn begin_request(
        &mut self,
        idem_key: &str,
        kind: &str,
        request_id: &str,
        request_hash: &[u8],
        request: &str,
        credential: Option<&str>,
        lease_until: u64,
        now: u64,
    ) -> Result<Begin, StoreError> {
        self.transaction(|tx| {
            let n = tx.exec(
                "INSERT INTO requests (idem_key, kind, request_hash, request, state, response, lease_until, created, updated, request_id, credential)
                 VALUES ($1, $2, $3, $4, 'in_progress', NULL, $5, $6, $6, $7, $8) ON CONFLICT DO NOTHING",
                &[
                    Value::Text(idem_key.into()),
                    Value::Text(kind.into()),
                    Value::Bytes(request_hash.to_vec()),
                    Value::Text(request.into()),
                    Value::Int(lease_until as i64),
                    Value::Int(now as i64),
                    Value::Text(request_id.into()),
                    Value::OptText(credential.map(str::to_string)),
                ],
            )?;
            if n == 1 {
                return Ok(Begin::Started(lease_until));
            }
            // A request that failed in a way worth retrying runs again under the same key, with
            // a lease later than any before (session ids derive from it).
            let again = tx.query_opt(
                "UPDATE requests SET state = 'in_progress', response = NULL, updated = $1,
                     lease_until = CASE WHEN lease_until >= $2 THEN lease_until + 1 ELSE $2 END
                 WHERE idem_key = $3 AND state = 'retryable' AND request_hash = $4
                 RETURNING lease_until",
                &[
                    Value::Int(now as i64),
                    Value::Int(lease_until as i64),
                    Value::Text(idem_key.into()),
                    Value::Bytes(request_hash.to_vec()),
                ],
            )?;
            if let Some(r) = again {
                return Ok(Begin::Started(r.int(0)? as u64));
            }
            let row = match tx.query_opt(
                &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE idem_key = $1"),
                &[Value::Text(idem_key.into())],
            )? {
                Some(row) => row,
                // The request id is recorded under another idempotency key.
                None => tx
                    .query_opt(
                        &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE request_id = $1"),
                        &[Value::Text(request_id.into())],
                    )?
                    .ok_or_else(|| StoreError::Corrupt("request vanished".into()))?,
            };
            Ok(Begin::Existing(request_row(&row)?))
        })
    }

    /// Removes an in-progress record owned under `lease` (a key creation that failed frees its
    /// key id for another attempt), with its audit records, in one transaction.
    pub fn drop_request(
        &mut self,
        idem_key: &str,
        lease: u64,
        time: u64,
        entries: &[AuditEntry],
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            let n = tx.exec(
                "DELETE FROM requests WHERE idem_key = $1 AND state = 'in_progress' AND lease_until = $2",
                &[Value::Text(idem_key.into()), Value::Int(lease as i64)],
            )?;
            for e in entries {
                tx.append_audit(time, e)?;
            }
            Ok(n == 1)
        })
    }

    /// The record of an idempotency key.
    pub fn request(&mut self, idem_key: &str) -> Result<Option<RequestRow>, StoreError> {
        self.transaction(|tx| {
            tx.query_opt(
                &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE idem_key = $1"),
                &[Value::Text(idem_key.into())],
            )?
            .as_ref()
            .map(request_row)
            .transpose()
        })
    }

    /// Ends an in-progress request owned under `lease` with its response and audit records,
    /// in one transaction. `false` (and nothing written) if another coordinator took it over.
    pub fn finish_request(
        &mut self,
        idem_key: &str,
        lease: u64,
        state: RequestState,
        response: &str,
        time: u64,
        entries: &[AuditEntry],
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            let n = tx.exec(
                "UPDATE requests SET state = $1, response = $2, updated = $3
                 WHERE idem_key = $4 AND state = 'in_progress' AND lease_until = $5",
                &[
                    Value::Text(state.as_str().into()),
                    Value::Text(response.into()),
                    Value::Int(time as i64),
                    Value::Text(idem_key.into()),
                    Value::Int(lease as i64),
                ],
            )?;
            if n == 1 {
                // The events report the request's answer (the body a client reads back).
                let answer = serde_json::from_str::<serde_json::Value>(response)
                    .ok()
                    .and_then(|mut r| r.get_mut("body").map(serde_json::Value::take));
                for e in entries {
                    tx.append_audit_reported(time, e, answer.clone().map(|a| (idem_key, a)))?;
                }
            }
            Ok(n == 1)
        })
    }

    /// Takes over an in-progress request whose lease `old_lease` has ended (its coordinator
    /// stopped); `false` if someone else did first or it ended meanwhile.
    pub fn take_over_request(
        &mut self,
        idem_key: &str,
        old_lease: u64,
        new_lease: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            Ok(tx.exec(
                "UPDATE requests SET lease_until = $1, updated = $2
                 WHERE idem_key = $3 AND state = 'in_progress' AND lease_until = $4",
                &[
                    Value::Int(new_lease as i64),
                    Value::Int(now as i64),
                    Value::Text(idem_key.into()),
                    Value::Int(old_lease as i64),
                ],
            )? == 1)
        })
    }

    /// In-progress requests whose lease ended before `now`.
    pub fn stale_requests(&mut self, now: u64) -> Result<Vec<RequestRow>, StoreError> {
        self.transaction(|tx| {
            tx.query(
                &format!(
                    "SELECT {REQUEST_COLUMNS} FROM requests WHERE state = 'in_progress' AND lease_until < $1"
                ),
                &[Value::Int(now as i64)],
            )?
            .iter()
            .map(request_row)
            .collect()
        })
    }
}
