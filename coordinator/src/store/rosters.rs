//! The committed roster changes (issue 20, membership): in version order from 1 (the genesis'
//! roster is version 0), each with the parent proxies of its roster and of the roster it
//! replaced, and the commit's answer. The roster in force is the last one's; the coordinator
//! reaches its nodes at its proxies.

use super::{PresigState, Row, Store, StoreError, Value};
use crate::audit::AuditEntry;

/// A committed roster change as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterCommitRow {
    /// The roster version it made.
    pub version: u32,
    /// SHA-256 of the change (a recorded proposal's).
    pub request_hash: Vec<u8>,
    /// The parent proxy of each node of the new roster, by index.
    pub proxies: Vec<String>,
    /// The parent proxy of each node of the roster it replaced, by index.
    pub replaced: Vec<String>,
    /// The commit's answer (JSON of `api::RosterCommitResult`).
    pub result: String,
    /// When it was first recorded (Unix seconds).
    pub created_at: u64,
}

const COLUMNS: &str = "version, request_hash, proxies, replaced, result, created_at";

fn urls(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("roster commit proxies: {e}")))
}

fn urls_json(urls: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(urls)
        .map_err(|e| StoreError::Corrupt(format!("roster commit proxies: {e}")))
}

fn commit_row(r: &Row) -> Result<RosterCommitRow, StoreError> {
    Ok(RosterCommitRow {
        version: u32::try_from(r.int(0)?)
            .map_err(|_| StoreError::Corrupt("roster version out of range".into()))?,
        request_hash: r.bytes(1)?,
        proxies: urls(&r.text(2)?)?,
        replaced: urls(&r.text(3)?)?,
        result: r.text(4)?,
        created_at: u64::try_from(r.int(5)?)
            .map_err(|_| StoreError::Corrupt("roster commit time out of range".into()))?,
    })
}

/// The SHA-256 of the change recorded as roster `version`, its row locked (PostgreSQL).
fn held_hash(tx: &mut super::Tx<'_>, version: u32) -> Result<Option<Vec<u8>>, StoreError> {
    let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
    tx.query_opt(
        &format!("SELECT request_hash FROM roster_commits WHERE version = $1{lock}"),
        &[Value::Int(version.into())],
    )?
    .map(|r| r.bytes(0))
    .transpose()
}

impl Store {
    /// Every committed roster change, in version order.
    pub fn roster_commits(&mut self) -> Result<Vec<RosterCommitRow>, StoreError> {
        self.transaction(|tx| {
            tx.query(
                &format!("SELECT {COLUMNS} FROM roster_commits ORDER BY version"),
                &[],
            )?
            .iter()
            .map(commit_row)
            .collect()
        })
    }

    /// Records a committed roster change with its audit record. A new one must make the version
    /// after the last one recorded (1 for the first): every presignature ready then is marked
    /// dead in the same transaction (each node dropped those of the replaced shares). The change
    /// that made that version already, committed again (a node that missed the commit caught
    /// up, or a node's parent moved), has its answer and its proxies replaced. Another change
    /// than the one that made that version, or a version with one missing before it, is not
    /// recorded (`false`). The audit record is written either way: the nodes committed whatever
    /// is recorded here (attacker review helper-77, L4).
    pub fn record_roster_commit(
        &mut self,
        commit: &RosterCommitRow,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            let recorded = Self::commit_row_in(tx, commit)?;
            tx.append_audit(time, entry)?;
            Ok(recorded)
        })
    }

    fn commit_row_in(tx: &mut super::Tx<'_>, commit: &RosterCommitRow) -> Result<bool, StoreError> {
        if held_hash(tx, commit.version)?.is_none() {
            let last = tx
                .query_opt("SELECT COALESCE(MAX(version), 0) FROM roster_commits", &[])?
                .map_or(Ok(0), |r| r.int(0))?;
            if i64::from(commit.version) != last + 1 {
                return Ok(false);
            }
            // Two coordinators recording the same version at once: the second finds the
            // first's row below and updates it, or sees another change's.
            let n = tx.exec(
                &format!(
                    "INSERT INTO roster_commits ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (version) DO NOTHING"
                ),
                &[
                    Value::Int(commit.version.into()),
                    Value::Bytes(commit.request_hash.clone()),
                    Value::Text(urls_json(&commit.proxies)?),
                    Value::Text(urls_json(&commit.replaced)?),
                    Value::Text(commit.result.clone()),
                    Value::Int(i64::try_from(commit.created_at).unwrap_or(i64::MAX)),
                ],
            )?;
            if n == 1 {
                tx.exec(
                    "UPDATE presignatures SET state = $1 WHERE state = $2",
                    &[
                        Value::Text(PresigState::Dead.as_str().into()),
                        Value::Text(PresigState::Ready.as_str().into()),
                    ],
                )?;
                return Ok(true);
            }
        }
        match held_hash(tx, commit.version)? {
            Some(hash) if hash == commit.request_hash => {
                tx.exec(
                    "UPDATE roster_commits SET result = $1, proxies = $2 WHERE version = $3",
                    &[
                        Value::Text(commit.result.clone()),
                        Value::Text(urls_json(&commit.proxies)?),
                        Value::Int(commit.version.into()),
                    ],
                )?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
