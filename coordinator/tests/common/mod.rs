//! What the coordinator's integration tests share: audit entries, a coordinator process.

// Each test binary uses part of this.
#![allow(dead_code)]

use coordinator::audit::AuditEntry;

pub mod process;
pub mod schema;

/// An audit entry of a signing, distinct per `i`.
pub fn entry(i: u32) -> AuditEntry {
    AuditEntry {
        action: "sign".into(),
        actors: vec![hex::encode([i as u8; 32])],
        key_id: Some("k1".into()),
        payload_digests: vec![hex::encode([7u8; 32])],
        path: vec![0, i],
        nodes: vec![0, 2],
        outcome: "ok".into(),
        request_id: Some(hex::encode([i as u8; 16])),
        credential: Some("ops".into()),
        detail: None,
    }
}
