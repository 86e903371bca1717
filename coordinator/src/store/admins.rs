//! The admin changes table (issue 20): every change of the cluster's admin set, in version
//! order from 1, each with the statements of the nodes that applied it.

use std::collections::BTreeMap;

use super::{Row, Store, StoreError, Value};
use crate::audit::AuditEntry;

/// An admin change as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminChangeRow {
    /// The admin version the change makes (1 for the first).
    pub version: u32,
    /// The approved change (JSON of `api::ApprovedJson<api::SetAdminsJson>`).
    pub request: String,
    /// SHA-256 of the change's canonical bytes.
    pub request_hash: Vec<u8>,
    /// Each node that applied it: its statement (node-key signature, hex), by node index.
    pub statements: BTreeMap<u16, String>,
    /// When it was recorded (Unix seconds).
    pub created_at: u64,
}

const COLUMNS: &str = "version, request, request_hash, statements, created_at";

fn statements_json(statements: &BTreeMap<u16, String>) -> Result<String, StoreError> {
    serde_json::to_string(statements)
        .map_err(|e| StoreError::Corrupt(format!("admin change statements: {e}")))
}

fn parse_statements(text: &str) -> Result<BTreeMap<u16, String>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("admin change statements: {e}")))
}

fn change_row(r: &Row) -> Result<AdminChangeRow, StoreError> {
    Ok(AdminChangeRow {
        version: u32::try_from(r.int(0)?)
            .map_err(|_| StoreError::Corrupt("admin version out of range".into()))?,
        request: r.text(1)?,
        request_hash: r.bytes(2)?,
        statements: parse_statements(&r.text(3)?)?,
        created_at: u64::try_from(r.int(4)?)
            .map_err(|_| StoreError::Corrupt("admin change time out of range".into()))?,
    })
}

impl Store {
    /// Every admin change, in version order.
    pub fn admin_changes(&mut self) -> Result<Vec<AdminChangeRow>, StoreError> {
        self.transaction(|tx| {
            tx.query(
                &format!("SELECT {COLUMNS} FROM admin_changes ORDER BY version"),
                &[],
            )?
            .iter()
            .map(change_row)
            .collect()
        })
    }

    /// Records an admin change with its audit record, if it makes the version after the last
    /// one recorded (1 for the first); `false`, changing nothing, otherwise (another
    /// coordinator recorded that version first, or one is missing before it).
    pub fn insert_admin_change(
        &mut self,
        change: &AdminChangeRow,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let statements = statements_json(&change.statements)?;
        self.transaction(|tx| {
            let last = tx
                .query_opt("SELECT COALESCE(MAX(version), 0) FROM admin_changes", &[])?
                .map_or(Ok(0), |r| r.int(0))?;
            if i64::from(change.version) != last + 1 {
                return Ok(false);
            }
            // Two coordinators recording the same version at once: the second finds the
            // first's row and inserts nothing.
            let n = tx.exec(
                &format!(
                    "INSERT INTO admin_changes ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)
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

    /// Adds nodes' statements (node index, signature as hex) to the change that made admin
    /// `version`, with its audit record; a node's statement recorded before is kept. `false`,
    /// changing nothing, if no change made that version.
    pub fn add_admin_statements(
        &mut self,
        version: u32,
        statements: &[(u16, String)],
        time: u64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            // The row is read and written back: on PostgreSQL it is locked until then, so that
            // two coordinators adding statements at once keep both.
            let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
            let Some(row) = tx.query_opt(
                &format!("SELECT statements FROM admin_changes WHERE version = $1{lock}"),
                &[Value::Int(version.into())],
            )?
            else {
                return Ok(false);
            };
            let mut all = parse_statements(&row.text(0)?)?;
            for (node, statement) in statements {
                all.entry(*node).or_insert_with(|| statement.clone());
            }
            tx.exec(
                "UPDATE admin_changes SET statements = $1 WHERE version = $2",
                &[
                    Value::Text(statements_json(&all)?),
                    Value::Int(version.into()),
                ],
            )?;
            tx.append_audit(time, entry)?;
            Ok(true)
        })
    }
}
