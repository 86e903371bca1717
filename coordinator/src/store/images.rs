//! The image changes table (issue 20, image rotation): every change of the set of enclave
//! images the cluster accepts, in version order from 1 (the genesis' image alone is version
//! 0), each with the statements of the nodes that applied it (their rules:
//! [`super::changes`]).

use super::changes::{ChangeRow, ChangeTable};
use super::{Store, StoreError};
use crate::audit::AuditEntry;

/// An image change as stored (`request`: JSON of
/// `api::ApprovedJson<api::AcceptImagesJson>`).
pub type ImageChangeRow = ChangeRow;

impl Store {
    /// Every image change, in version order.
    pub fn image_changes(&mut self) -> Result<Vec<ImageChangeRow>, StoreError> {
        self.changes(ChangeTable::Images)
    }

    /// Records an image change with its audit record, if it makes the version after the last
    /// one recorded (1 for the first); `false`, changing nothing, otherwise (another
    /// coordinator recorded that version first, or one is missing before it).
    pub fn insert_image_change(
        &mut self,
        change: &ImageChangeRow,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.insert_change(ChangeTable::Images, change, time, entry)
    }

    /// Adds nodes' statements (node index, signature as hex) to the change that made image
    /// `version`, with its audit record; a node's statement recorded before is kept. `false`,
    /// changing nothing, if no change made that version.
    pub fn add_image_statements(
        &mut self,
        version: u32,
        statements: &[(u16, String)],
        time: u64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.add_change_statements(ChangeTable::Images, version, statements, time, entry)
    }
}
