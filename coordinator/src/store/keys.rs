//! The keys table: every key the cluster created, as the enclaves reported it.

use super::{Row, Store, StoreError, Value};
use crate::audit::AuditEntry;

/// A key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// Its id.
    pub key_id: String,
    /// Its scheme name.
    pub scheme: String,
    /// Its threshold.
    pub threshold: u16,
    /// Its public key.
    pub public_key: Vec<u8>,
    /// BIP32 chain code (ECDSA).
    pub chain_code: Option<Vec<u8>>,
    /// Its policy, as JSON.
    pub policy: String,
    /// Unix seconds.
    pub created: u64,
    /// What each participant's node key signed for it (JSON of `api::KeyReceipts`).
    pub receipts: Option<String>,
    /// A resharing started and not finished everywhere (JSON of the approved request).
    pub pending: Option<String>,
    /// Its refresh schedule, seconds (0: off).
    pub refresh_every: u64,
    /// When its current generation was stored (Unix seconds).
    pub refreshed: u64,
    /// When its pending resharing was recorded (Unix seconds; 0: none).
    pub pending_since: u64,
    /// The version of `policy` (0 until the admins first replace the key's approvers).
    pub policy_version: u32,
}

fn key_row(r: &Row) -> Result<KeyRow, StoreError> {
    Ok(KeyRow {
        key_id: r.text(0)?,
        scheme: r.text(1)?,
        threshold: u16::try_from(r.int(2)?)
            .map_err(|_| StoreError::Corrupt("threshold out of range".into()))?,
        public_key: r.bytes(3)?,
        chain_code: r.opt_bytes(4)?,
        policy: r.text(5)?,
        created: r.int(6)? as u64,
        receipts: r.opt_text(7)?,
        pending: r.opt_text(8)?,
        refresh_every: r.int(9)? as u64,
        refreshed: r.int(10)? as u64,
        pending_since: r.int(11)? as u64,
        policy_version: u32::try_from(r.int(12)?)
            .map_err(|_| StoreError::Corrupt("policy version out of range".into()))?,
    })
}

const KEY_COLUMNS: &str = "key_id, scheme, threshold, public_key, chain_code, policy, created, \
     receipts, pending, refresh_every, refreshed, pending_since, policy_version";

/// A Unix time or period as a column value (saturating: the columns are signed).
fn secs(t: u64) -> Value {
    Value::Int(i64::try_from(t).unwrap_or(i64::MAX))
}

/// A key's new generation, as a resharing leaves it.
pub struct NewGeneration<'a> {
    /// The new threshold.
    pub threshold: u16,
    /// The new receipts (JSON of `api::KeyReceipts`).
    pub receipts: &'a str,
    /// The schedule the resharing set (`None`: unchanged).
    pub refresh_every: Option<u64>,
    /// The approval policy the resharing set (JSON of `api::PolicyJson`) and its version
    /// (`None`: unchanged).
    pub policy: Option<(&'a str, u32)>,
}

impl Store {
    /// Stores a new key with its audit record; `false` if the id is taken.
    pub fn insert_key(
        &mut self,
        key: &KeyRow,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            let n = tx.exec(
                &format!(
                    "INSERT INTO keys ({KEY_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     ON CONFLICT (key_id) DO NOTHING"
                ),
                &[
                    Value::Text(key.key_id.clone()),
                    Value::Text(key.scheme.clone()),
                    Value::Int(key.threshold.into()),
                    Value::Bytes(key.public_key.clone()),
                    Value::OptBytes(key.chain_code.clone()),
                    Value::Text(key.policy.clone()),
                    Value::Int(key.created as i64),
                    Value::OptText(key.receipts.clone()),
                    Value::OptText(key.pending.clone()),
                    secs(key.refresh_every),
                    secs(key.refreshed),
                    secs(key.pending_since),
                    Value::Int(key.policy_version.into()),
                ],
            )?;
            if n == 1 {
                tx.append_audit(time, entry)?;
            }
            Ok(n == 1)
        })
    }

    /// A key's new generation after a resharing: its threshold and receipts replaced, its
    /// presignatures (of the old generation, gone from every enclave) dropped, with its audit
    /// record. `false`, changing nothing, if its receipts are no longer `expected` (another
    /// coordinator changed the key meanwhile).
    pub fn update_key_generation(
        &mut self,
        key_id: &str,
        generation: &NewGeneration<'_>,
        expected: &str,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            let n = tx.exec(
                "UPDATE keys SET threshold = $1, receipts = $2, pending = NULL,
                     pending_since = 0, refreshed = $3
                 WHERE key_id = $4 AND receipts = $5",
                &[
                    Value::Int(generation.threshold.into()),
                    Value::Text(generation.receipts.into()),
                    secs(time),
                    Value::Text(key_id.into()),
                    Value::Text(expected.into()),
                ],
            )?;
            // The schedule changes only where the resharing set one.
            if let (1, Some(every)) = (n, generation.refresh_every) {
                tx.exec(
                    "UPDATE keys SET refresh_every = $1 WHERE key_id = $2",
                    &[secs(every), Value::Text(key_id.into())],
                )?;
            }
            // So does the policy.
            if let (1, Some((policy, version))) = (n, generation.policy) {
                tx.exec(
                    "UPDATE keys SET policy = $1, policy_version = $2 WHERE key_id = $3",
                    &[
                        Value::Text(policy.into()),
                        Value::Int(version.into()),
                        Value::Text(key_id.into()),
                    ],
                )?;
            }
            if n == 1 {
                tx.exec(
                    "DELETE FROM presignatures WHERE key_id = $1",
                    &[Value::Text(key_id.into())],
                )?;
                tx.append_audit(time, entry)?;
            }
            Ok(n == 1)
        })
    }

    /// A key restored without receipts given its checked archived record's (disaster
    /// recovery, attacker review helper-50): its receipts, policy and times set, with its audit
    /// record. `false`, changing nothing, unless the key is stored without receipts and with
    /// this public key.
    pub fn restore_key_receipts(
        &mut self,
        key: &KeyRow,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            let n = tx.exec(
                "UPDATE keys SET receipts = $1, policy = $2, policy_version = $3, created = $4,
                     refreshed = $5
                 WHERE key_id = $6 AND receipts IS NULL AND public_key = $7",
                &[
                    Value::OptText(key.receipts.clone()),
                    Value::Text(key.policy.clone()),
                    Value::Int(key.policy_version.into()),
                    secs(key.created),
                    secs(key.refreshed),
                    Value::Text(key.key_id.clone()),
                    Value::Bytes(key.public_key.clone()),
                ],
            )?;
            if n == 1 {
                tx.append_audit(time, entry)?;
            }
            Ok(n == 1)
        })
    }

    /// Records a resharing of a key about to start (JSON of the approved request) at `time`,
    /// if none is recorded: `false` if another one is.
    pub fn start_key_pending(
        &mut self,
        key_id: &str,
        pending: &str,
        time: u64,
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            Ok(tx.exec(
                "UPDATE keys SET pending = $1, pending_since = $2
                 WHERE key_id = $3 AND pending IS NULL",
                &[
                    Value::Text(pending.into()),
                    secs(time),
                    Value::Text(key_id.into()),
                ],
            )? == 1)
        })
    }

    /// Clears a key's recorded resharing once it is resolved, if it is still `expected`, with
    /// its audit record.
    pub fn clear_key_pending(
        &mut self,
        key_id: &str,
        expected: &str,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            let n = tx.exec(
                "UPDATE keys SET pending = NULL, pending_since = 0
                 WHERE key_id = $1 AND pending = $2",
                &[Value::Text(key_id.into()), Value::Text(expected.into())],
            )?;
            tx.append_audit(time, entry)?;
            Ok(n == 1)
        })
    }

    /// Keys whose refresh schedule is due at `now` (on, no resharing recorded, the current
    /// generation at least `refresh_every` old), by id.
    pub fn keys_due_for_refresh(&mut self, now: u64) -> Result<Vec<String>, StoreError> {
        self.transaction(|tx| {
            tx.query(
                "SELECT key_id FROM keys
                 WHERE refresh_every > 0 AND pending IS NULL AND refreshed <= $1 - refresh_every
                 ORDER BY key_id",
                &[secs(now)],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect()
        })
    }

    /// Keys with a resharing recorded before `cutoff` and not resolved since, by id. A
    /// resharing recorded without a time (by a coordinator from before migration 6) is given
    /// `now` first, so it waits like one recorded now.
    pub fn keys_left_pending(&mut self, cutoff: u64, now: u64) -> Result<Vec<String>, StoreError> {
        self.transaction(|tx| {
            tx.exec(
                "UPDATE keys SET pending_since = $1 WHERE pending IS NOT NULL AND pending_since = 0",
                &[secs(now)],
            )?;
            tx.query(
                "SELECT key_id FROM keys WHERE pending IS NOT NULL AND pending_since < $1
                 ORDER BY key_id",
                &[secs(cutoff)],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect()
        })
    }

    /// A key by id.
    pub fn key(&mut self, key_id: &str) -> Result<Option<KeyRow>, StoreError> {
        self.transaction(|tx| {
            tx.query_opt(
                &format!("SELECT {KEY_COLUMNS} FROM keys WHERE key_id = $1"),
                &[Value::Text(key_id.into())],
            )?
            .as_ref()
            .map(key_row)
            .transpose()
        })
    }

    /// Every key, by id.
    pub fn keys(&mut self) -> Result<Vec<KeyRow>, StoreError> {
        self.transaction(|tx| {
            tx.query(
                &format!("SELECT {KEY_COLUMNS} FROM keys ORDER BY key_id"),
                &[],
            )?
            .iter()
            .map(key_row)
            .collect()
        })
    }
}
