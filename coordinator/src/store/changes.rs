//! What the tables of versioned cluster changes share (issue 20): `admin_changes` (the admin
//! set, [`super::admins`]) and `image_changes` (the enclave images accepted,
//! [`super::images`]) have the same columns and the same rules. Each holds every change in
//! version order from 1, each with the statements of the nodes that applied it; a change is
//! recorded only as the version after the last one, and a node's first statement is kept.

use std::collections::BTreeMap;

use super::{Row, Store, StoreError, Value};
use crate::audit::AuditEntry;

/// A change of the admin set or of the image set, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    /// The version the change makes (1 for the first).
    pub version: u32,
    /// The approved change (JSON of `api::ApprovedJson<api::SetAdminsJson>` for an admin
    /// change, `api::ApprovedJson<api::AcceptImagesJson>` for an image change).
    pub request: String,
    /// SHA-256 of the change's canonical bytes.
    pub request_hash: Vec<u8>,
    /// Each node that applied it: its statement (node-key signature, hex), by node index.
    pub statements: BTreeMap<u16, String>,
    /// When it was recorded (Unix seconds).
    pub created_at: u64,
}

/// Which table of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeTable {
    /// `admin_changes`.
    Admins,
    /// `image_changes`.
    Images,
    /// `roster_proposals`: read by [`Store::changes`] like the others, but written only by
    /// [`Store::record_roster_proposal`] (several proposals may make one version).
    RosterProposals,
}

impl ChangeTable {
    /// The table's name (a constant: never taken from input).
    fn name(self) -> &'static str {
        match self {
            Self::Admins => "admin_changes",
            Self::Images => "image_changes",
            Self::RosterProposals => "roster_proposals",
        }
    }

    /// What its versions are called, for errors.
    fn what(self) -> &'static str {
        match self {
            Self::Admins => "admin",
            Self::Images => "image",
            Self::RosterProposals => "roster",
        }
    }
}

const COLUMNS: &str = "version, request, request_hash, statements, created_at";

fn statements_json(
    table: ChangeTable,
    statements: &BTreeMap<u16, String>,
) -> Result<String, StoreError> {
    serde_json::to_string(statements)
        .map_err(|e| StoreError::Corrupt(format!("{} change statements: {e}", table.what())))
}

fn parse_statements(table: ChangeTable, text: &str) -> Result<BTreeMap<u16, String>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("{} change statements: {e}", table.what())))
}

fn change_row(table: ChangeTable, r: &Row) -> Result<ChangeRow, StoreError> {
    let what = table.what();
    Ok(ChangeRow {
        version: u32::try_from(r.int(0)?)
            .map_err(|_| StoreError::Corrupt(format!("{what} version out of range")))?,
        request: r.text(1)?,
        request_hash: r.bytes(2)?,
        statements: parse_statements(table, &r.text(3)?)?,
        created_at: u64::try_from(r.int(4)?)
            .map_err(|_| StoreError::Corrupt(format!("{what} change time out of range")))?,
    })
}

impl Store {
    /// Every change of `table`, in version order (proposals of one version in the order they
    /// were first recorded).
    pub fn changes(&mut self, table: ChangeTable) -> Result<Vec<ChangeRow>, StoreError> {
        self.transaction(|tx| {
            tx.query(
                &format!(
                    "SELECT {COLUMNS} FROM {} ORDER BY version, created_at",
                    table.name()
                ),
                &[],
            )?
            .iter()
            .map(|r| change_row(table, r))
            .collect()
        })
    }

    /// Records a change in `table` with its audit record, if it makes the version after the
    /// last one recorded (1 for the first); `false`, changing nothing, otherwise (another
    /// coordinator recorded that version first, or one is missing before it).
    pub fn insert_change(
        &mut self,
        table: ChangeTable,
        change: &ChangeRow,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        if table == ChangeTable::RosterProposals {
            return Err(StoreError::Corrupt(
                "a roster proposal is recorded by its hash, not as the next version".into(),
            ));
        }
        let statements = statements_json(table, &change.statements)?;
        let name = table.name();
        self.transaction(|tx| {
            let last = tx
                .query_opt(
                    &format!("SELECT COALESCE(MAX(version), 0) FROM {name}"),
                    &[],
                )?
                .map_or(Ok(0), |r| r.int(0))?;
            if i64::from(change.version) != last + 1 {
                return Ok(false);
            }
            // Two coordinators recording the same version at once: the second finds the
            // first's row and inserts nothing.
            let n = tx.exec(
                &format!(
                    "INSERT INTO {name} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (version) DO NOTHING"
                ),
                &[
                    Value::Int(change.version.into()),
                    Value::Text(change.request.clone()),
                    Value::Bytes(change.request_hash.clone()),
                    Value::Text(statements.clone()),
                    Value::Int(i64::try_from(change.created_at).unwrap_or(i64::MAX)),
                ],
            )?;
            if n == 1 {
                tx.append_audit(time, entry)?;
            }
            Ok(n == 1)
        })
    }

    /// Adds nodes' statements (node index, signature as hex) to the change of `table` that
    /// made `version`, with its audit record; a node's statement recorded before is kept.
    /// `false`, changing nothing, if no change made that version.
    pub fn add_change_statements(
        &mut self,
        table: ChangeTable,
        version: u32,
        statements: &[(u16, String)],
        time: u64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        if table == ChangeTable::RosterProposals {
            return Err(StoreError::Corrupt(
                "a roster proposal's statements are added by its hash, not its version".into(),
            ));
        }
        let name = table.name();
        self.transaction(|tx| {
            // The row is read and written back: on PostgreSQL it is locked until then, so that
            // two coordinators adding statements at once keep both.
            let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
            let Some(row) = tx.query_opt(
                &format!("SELECT statements FROM {name} WHERE version = $1{lock}"),
                &[Value::Int(version.into())],
            )?
            else {
                return Ok(false);
            };
            let mut all = parse_statements(table, &row.text(0)?)?;
            for (node, statement) in statements {
                all.entry(*node).or_insert_with(|| statement.clone());
            }
            tx.exec(
                &format!("UPDATE {name} SET statements = $1 WHERE version = $2"),
                &[
                    Value::Text(statements_json(table, &all)?),
                    Value::Int(version.into()),
                ],
            )?;
            tx.append_audit(time, entry)?;
            Ok(true)
        })
    }
    /// Records a roster change proposal with its nodes' statements (node index in the roster
    /// in force, signature as hex, each checked by the caller) and its audit record: a new one
    /// is inserted; for one recorded already (the same request hash) the statements are added,
    /// each replacing the node's earlier one (which may be one a tampered database holds).
    pub fn record_roster_proposal(
        &mut self,
        change: &ChangeRow,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let table = ChangeTable::RosterProposals;
        let name = table.name();
        self.transaction(|tx| {
            tx.exec(
                &format!(
                    "INSERT INTO {name} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (request_hash) DO NOTHING"
                ),
                &[
                    Value::Int(change.version.into()),
                    Value::Text(change.request.clone()),
                    Value::Bytes(change.request_hash.clone()),
                    Value::Text(statements_json(table, &BTreeMap::new())?),
                    Value::Int(i64::try_from(change.created_at).unwrap_or(i64::MAX)),
                ],
            )?;
            // Read and written back under the row's lock (PostgreSQL), so two coordinators
            // adding statements at once keep both.
            let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
            let row = tx
                .query_opt(
                    &format!("SELECT statements FROM {name} WHERE request_hash = $1{lock}"),
                    &[Value::Bytes(change.request_hash.clone())],
                )?
                .ok_or_else(|| {
                    StoreError::Corrupt("a roster proposal just recorded is gone".into())
                })?;
            let mut all = parse_statements(table, &row.text(0)?)?;
            all.extend(change.statements.clone());
            tx.exec(
                &format!("UPDATE {name} SET statements = $1 WHERE request_hash = $2"),
                &[
                    Value::Text(statements_json(table, &all)?),
                    Value::Bytes(change.request_hash.clone()),
                ],
            )?;
            tx.append_audit(time, entry)?;
            Ok(())
        })
    }
}
