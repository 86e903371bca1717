//! Events (issue 21): what the coordinator tells the systems around it, one JSON message per
//! outcome and lifecycle change, published to a topic exchange through the transactional outbox
//! (`store::outbox`, `broker::relay`).
//!
//! Every audit record makes one event, written in the same transaction as the record, so an
//! event exists if and only if its record does; its `audit_seq` names the record. Lifecycle
//! changes that are not audited (a node going down or up, a pool running low) make events with
//! no `audit_seq`. An event's `id` is stable: an audit event's is derived from its record's
//! hash, so a consumer that sees an event twice (the relay publishes at least once) drops it by
//! id. The schema is documented in `docs/events.md`; fields are only ever added.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::AuditRecord;

/// The version of the event schema (`v`).
pub const EVENT_VERSION: u32 = 1;

/// A signing request signed every payload.
pub const SIGNATURE_COMPLETED: &str = "signature.completed";
/// A signing request ended without its signatures (refused by the enclaves, no quorum, deadline).
pub const SIGNATURE_FAILED: &str = "signature.failed";
/// A key was created.
pub const KEY_CREATED: &str = "key.created";
/// A key's creation failed.
pub const KEY_FAILED: &str = "key.failed";
/// A node stopped answering (or failed attestation).
pub const NODE_DOWN: &str = "node.down";
/// A node answers and attests again.
pub const NODE_UP: &str = "node.up";
/// A presignature pool fell below half its level.
pub const POOL_LOW: &str = "pool.low";

/// One event, as published (JSON, the message's body; its routing key is `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The schema version, [`EVENT_VERSION`].
    pub v: u32,
    /// Stable id (32 hex digits): the same event published twice has the same id.
    pub id: String,
    /// What happened: the routing key (`signature.completed`, `key.created`, `node.down`,
    /// `audit.<action>` for other audited actions, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub time: u64,
    /// The audit record this event reports, if it reports one.
    pub audit_seq: Option<u64>,
    /// The key concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The approved request's id (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The idempotency key the request ran under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// `ok`, or the failure code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The API credential that asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// Nodes that took part (or, for `node.*`, the node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<u16>,
    /// Anything else the record says, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request's answer, as `GET /v1/signatures/{idempotency_key}` gives it (signing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// The routing key of an audited action and its outcome.
pub fn kind_of(action: &str, outcome: &str) -> String {
    let ok = outcome == "ok";
    match (action, ok) {
        ("sign", true) => SIGNATURE_COMPLETED.into(),
        ("sign", false) => SIGNATURE_FAILED.into(),
        ("create_key", true) => KEY_CREATED.into(),
        ("create_key", false) => KEY_FAILED.into(),
        (other, _) => format!("audit.{other}"),
    }
}

/// The id of the event reporting the audit record whose hash is `hash`.
pub fn audit_event_id(hash: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"cohort/event/v1\0");
    h.update(hash);
    hex::encode(&h.finalize()[..16])
}

impl Event {
    /// The event reporting `record`; `idempotency_key` and `result` when a request's answer
    /// is recorded with it.
    pub fn of_audit(
        record: &AuditRecord,
        idempotency_key: Option<&str>,
        result: Option<serde_json::Value>,
    ) -> Self {
        let e = &record.entry;
        Self {
            v: EVENT_VERSION,
            id: audit_event_id(&record.hash),
            kind: kind_of(&e.action, &e.outcome),
            time: record.time,
            audit_seq: Some(record.seq),
            key_id: e.key_id.clone(),
            request_id: e.request_id.clone(),
            idempotency_key: idempotency_key.map(str::to_string),
            outcome: Some(e.outcome.clone()),
            credential: e.credential.clone(),
            nodes: e.nodes.clone(),
            detail: e.detail.clone(),
            result,
        }
    }

    /// A lifecycle event no audit record reports (`node.down`, `node.up`, `pool.low`), with a
    /// fresh id.
    pub fn lifecycle(kind: &str, time: u64, nodes: Vec<u16>, detail: Option<String>) -> Self {
        Self {
            v: EVENT_VERSION,
            id: hex::encode(rand::random::<[u8; 16]>()),
            kind: kind.into(),
            time,
            audit_seq: None,
            key_id: None,
            request_id: None,
            idempotency_key: None,
            outcome: None,
            credential: None,
            nodes,
            detail,
            result: None,
        }
    }

    /// The event's JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an event serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEntry;

    fn record(seq: u64, action: &str, outcome: &str) -> AuditRecord {
        AuditRecord {
            seq,
            time: 7,
            entry: AuditEntry {
                action: action.into(),
                actors: vec!["aa".into()],
                key_id: Some("k".into()),
                payload_digests: vec![],
                path: vec![],
                nodes: vec![0, 2],
                outcome: outcome.into(),
                request_id: Some("00".into()),
                credential: Some("c".into()),
                detail: None,
            },
            prev_hash: [0; 32],
            hash: [seq as u8; 32],
        }
    }

    #[test]
    fn audited_actions_map_to_routing_keys() {
        assert_eq!(kind_of("sign", "ok"), SIGNATURE_COMPLETED);
        assert_eq!(kind_of("sign", "no_quorum"), SIGNATURE_FAILED);
        assert_eq!(kind_of("create_key", "ok"), KEY_CREATED);
        assert_eq!(kind_of("create_key", "unapproved"), KEY_FAILED);
        assert_eq!(kind_of("genesis", "ok"), "audit.genesis");
    }

    #[test]
    fn an_audit_event_carries_its_record_and_a_stable_id() {
        let r = record(3, "sign", "ok");
        let e = Event::of_audit(&r, Some("idem"), Some(serde_json::json!({"x": 1})));
        assert_eq!(e.audit_seq, Some(3));
        assert_eq!(e.kind, SIGNATURE_COMPLETED);
        assert_eq!(e.idempotency_key.as_deref(), Some("idem"));
        assert_eq!(e.nodes, vec![0, 2]);
        assert_eq!(e.id.len(), 32);
        // The same record: the same id; another record: another.
        assert_eq!(e.id, Event::of_audit(&r, None, None).id);
        assert_ne!(
            e.id,
            Event::of_audit(&record(4, "sign", "ok"), None, None).id
        );
        let back: Event = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(back, e);
        // Lifecycle events have fresh ids and no record.
        let a = Event::lifecycle(NODE_DOWN, 1, vec![1], None);
        assert_eq!(a.audit_seq, None);
        assert_ne!(a.id, Event::lifecycle(NODE_DOWN, 1, vec![1], None).id);
    }
}
