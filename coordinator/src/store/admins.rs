//! The admin changes table (issue 20): every change of the cluster's admin set, in version
//! order from 1, each with the statements of the nodes that applied it (their rules:
//! [`super::changes`]).

use super::changes::{ChangeRow, ChangeTable};
use super::{Store, StoreError};
use crate::audit::AuditEntry;

/// An admin change as stored (`request`: JSON of `api::ApprovedJson<api::SetAdminsJson>`).
pub type AdminChangeRow = ChangeRow;

impl Store {
    /// Every admin change, in version order.
    pub fn admin_changes(&mut self) -> Result<Vec<AdminChangeRow>, StoreError> {
        self.changes(ChangeTable::Admins)
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
        self.insert_change(ChangeTable::Admins, change, time, entry)
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
        self.add_change_statements(ChangeTable::Admins, version, statements, time, entry)
    }
}
