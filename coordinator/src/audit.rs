//! The audit log: append-only records, each hash-chained to the one before it.
//!
//! `hash = SHA-256("cohort/audit/v1\0" || CBOR([seq, time, entry, prev_hash]))`; the first record's
//! `prev_hash` is 32 zero bytes. Changing, removing or reordering any stored record breaks the
//! chain at that record, and [`verify_chain`] names the first broken link.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

const DOMAIN: &[u8] = b"cohort/audit/v1\0";

/// What happened: who asked, for what, which nodes took part, and the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// The action (`genesis`, `create_key`, `sign`, ...).
    pub action: String,
    /// Approver (or admin) public keys, hex.
    pub actors: Vec<String>,
    /// The key concerned, if any.
    pub key_id: Option<String>,
    /// SHA-256 of each payload, hex.
    pub payload_digests: Vec<String>,
    /// Derivation path.
    pub path: Vec<u32>,
    /// Nodes that took part.
    pub nodes: Vec<u16>,
    /// `ok`, or the failure code.
    pub outcome: String,
    /// The request id (hex) of an approved request, when there is one. Absent from records
    /// written before it existed (and then not part of their encoding or hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The API credential that asked (ADR 0017), when one did. Absent from records written
    /// before credentials existed, and from the coordinator's own records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// What the action was about when no other field says it (the credential registered or
    /// revoked, and its role). Absent when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the log, from 1.
    pub seq: u64,
    /// Unix seconds.
    pub time: u64,
    /// The entry.
    pub entry: AuditEntry,
    /// Hash of the previous record (zeros for the first).
    pub prev_hash: [u8; 32],
    /// This record's hash.
    pub hash: [u8; 32],
}

/// The hash of a record's contents and its predecessor's hash.
pub fn record_hash(seq: u64, time: u64, entry: &AuditEntry, prev_hash: &[u8; 32]) -> [u8; 32] {
    let mut bytes = DOMAIN.to_vec();
    ciborium::into_writer(
        &(seq, time, entry, ByteBuf::from(prev_hash.to_vec())),
        &mut bytes,
    )
    .expect("serializing into a Vec cannot fail");
    Sha256::digest(&bytes).into()
}

/// The encoding of an entry as stored.
pub fn encode_entry(entry: &AuditEntry) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(entry, &mut out).expect("serializing into a Vec cannot fail");
    out
}

/// Decodes a stored entry.
pub fn decode_entry(bytes: &[u8]) -> Result<AuditEntry, String> {
    ciborium::from_reader(bytes).map_err(|e| e.to_string())
}

/// The first place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at record {seq}: {reason}")]
pub struct BrokenLink {
    /// The first record that does not verify.
    pub seq: u64,
    /// Why.
    pub reason: String,
}

/// Checks records in order, starting after `prev` (`(0, zeros)` for the start of the log).
/// Returns the last `(seq, hash)` so that a long log can be verified page by page.
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    prev: (u64, [u8; 32]),
) -> Result<(u64, [u8; 32]), BrokenLink> {
    let (mut last_seq, mut last_hash) = prev;
    for r in records {
        let broken = |reason: &str| BrokenLink {
            seq: r.seq,
            reason: reason.to_string(),
        };
        if r.seq != last_seq + 1 {
            return Err(BrokenLink {
                seq: last_seq + 1,
                reason: format!("missing (next stored record is {})", r.seq),
            });
        }
        if r.prev_hash != last_hash {
            return Err(broken("does not link to the previous record"));
        }
        if record_hash(r.seq, r.time, &r.entry, &r.prev_hash) != r.hash {
            return Err(broken("contents do not match its hash"));
        }
        last_seq = r.seq;
        last_hash = r.hash;
    }
    Ok((last_seq, last_hash))
}
