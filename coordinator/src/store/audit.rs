//! The audit log table: appends chained to the last record, pages, and whole-log verification.

use super::{LOCK_KEY, Store, StoreError, Tx, Value};
use crate::audit::{AuditEntry, AuditRecord, decode_entry, encode_entry, record_hash};

impl Tx<'_> {
    /// Appends an audit record chained to the last one, and the event reporting it (issue 21),
    /// inside this transaction.
    pub fn append_audit(
        &mut self,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<AuditRecord, StoreError> {
        self.append_audit_reported(time, entry, None)
    }

    /// Appends an audit record chained to the last one, alone: every caller goes through
    /// [`Tx::append_audit`] or [`Tx::append_audit_reported`], which write its event too.
    pub(super) fn append_record(
        &mut self,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<AuditRecord, StoreError> {
        if let Tx::Postgres(tx) = self {
            // Two coordinators appending at once take turns: the chain stays linear.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
        }
        let last = self.query_opt(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            &[],
        )?;
        let (seq, prev_hash) = match last {
            Some(row) => (row.int(0)? as u64 + 1, hash32(row.bytes(1)?)?),
            None => (1, [0u8; 32]),
        };
        let hash = record_hash(seq, time, entry, &prev_hash);
        self.exec(
            "INSERT INTO audit_log (seq, time, entry, prev_hash, hash) VALUES ($1, $2, $3, $4, $5)",
            &[
                Value::Int(seq as i64),
                Value::Int(time as i64),
                Value::Bytes(encode_entry(entry)),
                Value::Bytes(prev_hash.to_vec()),
                Value::Bytes(hash.to_vec()),
            ],
        )?;
        Ok(AuditRecord {
            seq,
            time,
            entry: entry.clone(),
            prev_hash,
            hash,
        })
    }
}

impl Store {
    /// Appends an audit record, chained to the last one, atomically.
    pub fn append_audit(
        &mut self,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<AuditRecord, StoreError> {
        self.transaction(|tx| tx.append_audit(time, entry))
    }

    /// Records with `seq > after`, in order, at most `limit`.
    pub fn audit_page(&mut self, after: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        self.transaction(|tx| {
            tx.query(
                "SELECT seq, time, entry, prev_hash, hash FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[Value::Int(after as i64), Value::Int(i64::from(limit))],
            )?
            .iter()
            .map(|r| {
                Ok(AuditRecord {
                    seq: r.int(0)? as u64,
                    time: r.int(1)? as u64,
                    entry: decode_entry(&r.bytes(2)?).map_err(StoreError::Corrupt)?,
                    prev_hash: hash32(r.bytes(3)?)?,
                    hash: hash32(r.bytes(4)?)?,
                })
            })
            .collect()
        })
    }
}

fn hash32(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("stored hash is not 32 bytes".into()))
}

/// Verifies the whole audit log page by page; returns the number of records.
pub fn verify_log(store: &mut Store) -> Result<Result<u64, crate::audit::BrokenLink>, StoreError> {
    let mut prev = (0u64, [0u8; 32]);
    loop {
        let page = store.audit_page(prev.0, 1000)?;
        if page.is_empty() {
            return Ok(Ok(prev.0));
        }
        match crate::audit::verify_chain(&page, prev) {
            Ok(last) => prev = last,
            Err(broken) => return Ok(Err(broken)),
        }
    }
}
