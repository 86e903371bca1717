//! The presignatures table: which quorum holds which presignature of which key and path, and
//! the atomic claim that hands each one out once.

use super::{PresigState, Store, StoreError, Tx, Value};

/// A ready presignature as the coordinator counts it: a name, not the secret, which only the
/// enclaves of its quorum hold. `Debug` still prints only a prefix of its id.
#[derive(Clone, PartialEq, Eq)]
pub struct PresigRow {
    /// Its id (the session id that made it).
    pub id: Vec<u8>,
    /// The key.
    pub key_id: String,
    /// The derivation path it is bound to (`m/...`).
    pub path: String,
    /// The quorum holding it, as `0,2`.
    pub quorum: String,
    /// Unix seconds when it was recorded.
    pub created: u64,
}

impl std::fmt::Debug for PresigRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresigRow")
            .field("id", &hex::encode(&self.id[..self.id.len().min(4)]))
            .field("key_id", &self.key_id)
            .field("path", &self.path)
            .field("quorum", &self.quorum)
            .field("created", &self.created)
            .finish()
    }
}

impl Tx<'_> {
    /// Claims one ready presignature of `key_id` at `path` held by `quorum`: no two callers,
    /// even on two coordinators sharing PostgreSQL, ever get the same one. A claimed
    /// presignature is spent whatever happens next (an enclave deletes its share of one before
    /// its partial signature leaves), so it is marked `used` at once.
    pub fn claim_presignature(
        &mut self,
        key_id: &str,
        path: &str,
        quorum: &str,
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let pick = if self.is_postgres() {
            "SELECT id FROM presignatures WHERE key_id = $2 AND path = $3 AND quorum = $4
             AND state = 'ready' ORDER BY created LIMIT 1 FOR UPDATE SKIP LOCKED"
        } else {
            "SELECT id FROM presignatures WHERE key_id = $2 AND path = $3 AND quorum = $4
             AND state = 'ready' ORDER BY created LIMIT 1"
        };
        let sql = format!(
            "UPDATE presignatures SET state = 'used', claimed_at = $1
             WHERE id = ({pick}) AND state = 'ready' RETURNING id"
        );
        self.query_opt(
            &sql,
            &[
                Value::Int(now as i64),
                Value::Text(key_id.into()),
                Value::Text(path.into()),
                Value::Text(quorum.into()),
            ],
        )?
        .map(|r| r.bytes(0))
        .transpose()
    }
}

impl Store {
    /// Records a presignature the enclaves of `quorum` hold.
    pub fn add_presignature(&mut self, p: &PresigRow) -> Result<(), StoreError> {
        self.transaction(|tx| {
            tx.exec(
                "INSERT INTO presignatures (id, key_id, path, quorum, state, created)
                 VALUES ($1, $2, $3, $4, 'ready', $5)",
                &[
                    Value::Bytes(p.id.clone()),
                    Value::Text(p.key_id.clone()),
                    Value::Text(p.path.clone()),
                    Value::Text(p.quorum.clone()),
                    Value::Int(p.created as i64),
                ],
            )?;
            Ok(())
        })
    }

    /// Claims a ready presignature of `key_id` at `path` from the fullest of `quorums`, in one
    /// transaction; returns it with its quorum.
    pub fn claim_best_presignature(
        &mut self,
        key_id: &str,
        path: &str,
        quorums: &[String],
        now: u64,
    ) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        self.transaction(|tx| {
            let mut levels: Vec<(i64, String)> = tx
                .query(
                    "SELECT quorum, COUNT(*) FROM presignatures
                     WHERE key_id = $1 AND path = $2 AND state = 'ready' GROUP BY quorum",
                    &[Value::Text(key_id.into()), Value::Text(path.into())],
                )?
                .iter()
                .map(|r| Ok((r.int(1)?, r.text(0)?)))
                .collect::<Result<_, StoreError>>()?;
            levels.retain(|(_, q)| quorums.contains(q));
            levels.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            for (_, q) in levels {
                if let Some(id) = tx.claim_presignature(key_id, path, &q, now)? {
                    return Ok(Some((id, q)));
                }
            }
            Ok(None)
        })
    }

    /// Sets a presignature's state (`used`, or `dead` when its enclaves no longer hold it).
    pub fn set_presignature_state(
        &mut self,
        id: &[u8],
        state: PresigState,
    ) -> Result<(), StoreError> {
        self.transaction(|tx| {
            tx.exec(
                "UPDATE presignatures SET state = $1 WHERE id = $2",
                &[
                    Value::Text(state.as_str().into()),
                    Value::Bytes(id.to_vec()),
                ],
            )?;
            Ok(())
        })
    }

    /// Ready presignatures per (key, path, quorum).
    pub fn presignature_counts(
        &mut self,
    ) -> Result<std::collections::BTreeMap<(String, String, String), u32>, StoreError> {
        self.transaction(|tx| {
            let mut out = std::collections::BTreeMap::new();
            for r in tx.query(
                "SELECT key_id, path, quorum, COUNT(*) FROM presignatures WHERE state = 'ready'
                 GROUP BY key_id, path, quorum",
                &[],
            )? {
                out.insert(
                    (r.text(0)?, r.text(1)?, r.text(2)?),
                    u32::try_from(r.int(3)?).unwrap_or(u32::MAX),
                );
            }
            Ok(out)
        })
    }

    /// Every ready presignature.
    pub fn ready_presignatures(&mut self) -> Result<Vec<PresigRow>, StoreError> {
        self.transaction(|tx| {
            tx.query(
                "SELECT id, key_id, path, quorum, created FROM presignatures WHERE state = 'ready'",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(PresigRow {
                    id: r.bytes(0)?,
                    key_id: r.text(1)?,
                    path: r.text(2)?,
                    quorum: r.text(3)?,
                    created: r.int(4)? as u64,
                })
            })
            .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::PresigRow;

    #[test]
    fn presignature_rows_print_only_an_id_prefix() {
        let row = PresigRow {
            id: vec![0xab; 32],
            key_id: "k".into(),
            path: "m".into(),
            quorum: "0,1".into(),
            created: 1,
        };
        let text = format!("{row:?}");
        assert!(text.contains("abababab"), "{text}");
        assert!(!text.contains(&"ab".repeat(5)), "{text}");
    }
}
