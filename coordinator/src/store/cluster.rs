//! The cluster table: the approved genesis and how far initialising it got.

use super::{ClusterState, Store, StoreError, Value};
use crate::audit::AuditEntry;

/// The cluster as the coordinator knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRow {
    /// The approved genesis, as JSON of the API's genesis body.
    pub genesis: String,
    /// How far initialising got.
    pub state: ClusterState,
    /// What is happening, or why it failed.
    pub detail: String,
}

impl Store {
    /// The cluster record, once genesis was submitted.
    pub fn cluster(&mut self) -> Result<Option<ClusterRow>, StoreError> {
        self.transaction(|tx| {
            tx.query_opt(
                "SELECT genesis, state, detail FROM cluster WHERE id = 1",
                &[],
            )?
            .map(|r| {
                Ok(ClusterRow {
                    genesis: r.text(0)?,
                    state: r.text(1)?.parse()?,
                    detail: r.text(2)?,
                })
            })
            .transpose()
        })
    }

    /// Records a new genesis (with its audit record); `false` if one exists.
    pub fn insert_cluster(
        &mut self,
        row: &ClusterRow,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            let n = tx.exec(
                "INSERT INTO cluster (id, genesis, state, detail, updated) VALUES (1, $1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    Value::Text(row.genesis.clone()),
                    Value::Text(row.state.as_str().into()),
                    Value::Text(row.detail.clone()),
                    Value::Int(time as i64),
                ],
            )?;
            if n == 1 {
                tx.append_audit(time, entry)?;
            }
            Ok(n == 1)
        })
    }

    /// Updates the cluster's state, with an audit record when given.
    pub fn set_cluster_state(
        &mut self,
        state: ClusterState,
        detail: &str,
        time: u64,
        entry: Option<&AuditEntry>,
    ) -> Result<(), StoreError> {
        self.transaction(|tx| {
            tx.exec(
                "UPDATE cluster SET state = $1, detail = $2, updated = $3 WHERE id = 1",
                &[
                    Value::Text(state.as_str().into()),
                    Value::Text(detail.into()),
                    Value::Int(time as i64),
                ],
            )?;
            if let Some(e) = entry {
                tx.append_audit(time, e)?;
            }
            Ok(())
        })
    }
}
