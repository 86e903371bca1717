//! The transactional outbox (issue 21): events written in the transaction that makes what they
//! report, read in order by the relay (`broker::relay`) and marked sent once the broker
//! confirmed them.
//!
//! Order: an event's `seq` is allocated as one more than the largest, under the same lock that
//! serialises audit appends (PostgreSQL's advisory lock; SQLite has one writer), and held to
//! the commit. So events commit in `seq` order and a reader of the unsent rows in `seq` order
//! never passes one that commits later with a smaller number (the gap an auto-increment leaves
//! when transactions commit out of order).

use super::{LOCK_KEY, Store, StoreError, Tx, Value};
use crate::audit::AuditRecord;
use crate::events::Event;

/// An event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Its place in the outbox.
    pub seq: u64,
    /// The event's id.
    pub event_id: String,
    /// Its routing key.
    pub routing_key: String,
    /// Its JSON.
    pub body: String,
}

/// How much the outbox holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxLevel {
    /// Events not yet confirmed by the broker.
    pub unsent: u64,
    /// When the oldest of them was written (Unix seconds; 0 for none).
    pub oldest: u64,
}

impl Tx<'_> {
    /// Writes `event` to the outbox, inside this transaction.
    pub fn push_event(&mut self, event: &Event) -> Result<u64, StoreError> {
        if let Tx::Postgres(tx) = self {
            // The audit append's lock (taken again: advisory locks are re-entrant), held to the
            // commit: events commit in `seq` order.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
        }
        let seq = self
            .query_opt("SELECT COALESCE(MAX(seq), 0) FROM outbox", &[])?
            .map_or(Ok(0), |r| r.int(0))? as u64
            + 1;
        self.exec(
            "INSERT INTO outbox (seq, event_id, routing_key, body, audit_seq, created, sent)
             VALUES ($1, $2, $3, $4, $5, $6, 0)",
            &[
                Value::Int(seq as i64),
                Value::Text(event.id.clone()),
                Value::Text(event.kind.clone()),
                Value::Text(event.to_json()),
                Value::Int(event.audit_seq.unwrap_or(0) as i64),
                Value::Int(event.time as i64),
            ],
        )?;
        Ok(seq)
    }

    /// Appends an audit record and the event reporting it, inside this transaction: with the
    /// idempotency key and answer of the request it ends, when it ends one.
    pub fn append_audit_reported(
        &mut self,
        time: u64,
        entry: &crate::audit::AuditEntry,
        answer: Option<(&str, serde_json::Value)>,
    ) -> Result<AuditRecord, StoreError> {
        let record = self.append_record(time, entry)?;
        let (idem, result) = match answer {
            Some((idem, result)) => (Some(idem), Some(result)),
            None => (None, None),
        };
        self.push_event(&Event::of_audit(&record, idem, result))?;
        Ok(record)
    }
}

impl Store {
    /// Writes a lifecycle event (one no audit record reports).
    pub fn push_event(&mut self, event: &Event) -> Result<u64, StoreError> {
        self.transaction(|tx| tx.push_event(event))
    }

    /// The oldest unsent events, in order, at most `limit`.
    pub fn unsent_events(&mut self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.transaction(|tx| {
            tx.query(
                "SELECT seq, event_id, routing_key, body FROM outbox WHERE sent = 0
                 ORDER BY seq LIMIT $1",
                &[Value::Int(i64::from(limit))],
            )?
            .iter()
            .map(|r| {
                Ok(OutboxRow {
                    seq: r.int(0)? as u64,
                    event_id: r.text(1)?,
                    routing_key: r.text(2)?,
                    body: r.text(3)?,
                })
            })
            .collect()
        })
    }

    /// Marks the events `seqs` sent at `now`.
    pub fn mark_sent(&mut self, seqs: &[u64], now: u64) -> Result<(), StoreError> {
        self.transaction(|tx| {
            for seq in seqs {
                tx.exec(
                    "UPDATE outbox SET sent = $1 WHERE seq = $2 AND sent = 0",
                    &[Value::Int(now.max(1) as i64), Value::Int(*seq as i64)],
                )?;
            }
            Ok(())
        })
    }

    /// Deletes events written before `before` (Unix seconds): those the broker confirmed, and
    /// those no relay published in all that time (the outbox is bounded: with no broker
    /// configured anywhere, or one down for longer, they go). Returns how many of each went.
    pub fn prune_events(&mut self, before: u64) -> Result<(u64, u64), StoreError> {
        self.transaction(|tx| {
            let sent = tx.exec(
                "DELETE FROM outbox WHERE sent <> 0 AND created < $1",
                &[Value::Int(before as i64)],
            )?;
            let unsent = tx.exec(
                "DELETE FROM outbox WHERE sent = 0 AND created < $1",
                &[Value::Int(before as i64)],
            )?;
            Ok((sent, unsent))
        })
    }

    /// How many events wait, and since when.
    pub fn outbox_level(&mut self) -> Result<OutboxLevel, StoreError> {
        self.transaction(|tx| {
            let row = tx.query_opt(
                "SELECT COUNT(*), COALESCE(MIN(created), 0) FROM outbox WHERE sent = 0",
                &[],
            )?;
            Ok(match row {
                Some(r) => OutboxLevel {
                    unsent: r.int(0)? as u64,
                    oldest: r.int(1)? as u64,
                },
                None => OutboxLevel::default(),
            })
        })
    }
}

/// The session advisory lock the one relaying coordinator holds (PostgreSQL).
const RELAY_KEY: i64 = LOCK_KEY + 1;

impl Store {
    /// Takes the relay's lock if free (PostgreSQL: a session lock, held until this store's
    /// connection ends, so a coordinator that dies hands it on); a SQLite store is one
    /// coordinator's alone.
    pub fn try_lead_relay(&mut self) -> Result<bool, StoreError> {
        match &mut self.conn {
            super::Conn::Sqlite(_) => Ok(true),
            super::Conn::Postgres(client) => Ok(client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&RELAY_KEY])?
                .get(0)),
        }
    }

    /// Hands the relay's lock back (this coordinator lost its broker).
    pub fn release_relay(&mut self) -> Result<(), StoreError> {
        if let super::Conn::Postgres(client) = &mut self.conn {
            client.query_one("SELECT pg_advisory_unlock($1)", &[&RELAY_KEY])?;
        }
        Ok(())
    }
}
