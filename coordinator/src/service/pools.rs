//! Presignature pools: their levels, refilling the emptiest when the coordinator is quiet, and
//! forgetting presignatures a node no longer holds.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use protocol::policy::Scheme;
use protocol::session::{Outcome, SessionKind};
use tracing::warn;

use super::failover::{combinations, parse_quorum, quorum_string};
use super::{Coordinator, REFILL_QUIET, err, unix_now};
use crate::api::{ApiError, ErrorCode, PoolLevel, path_string};
use crate::nodes::{new_session_id, run_session_yielding};
use crate::store::{PresigRow, PresigState};

impl Coordinator {
    async fn pool_counts(&self) -> Result<BTreeMap<(String, String, String), u32>, ApiError> {
        self.db(|s| s.presignature_counts()).await
    }

    /// Pool levels: every (ECDSA key, pool path, quorum) the pools serve, and any other
    /// presignatures counted.
    pub async fn pool_levels(&self) -> Result<Vec<PoolLevel>, ApiError> {
        let mut counts = self.pool_counts().await?;
        let mut out = Vec::new();
        if self.settings.pool_level > 0 {
            let all: Vec<u16> = (0..self.nodes.count()).collect();
            for key in self.keys().await.unwrap_or_default() {
                if key.scheme != Scheme::EcdsaSecp256k1 {
                    continue;
                }
                for path in &self.settings.pool_paths {
                    for q in combinations(&all, usize::from(key.threshold)) {
                        let id = (key.key_id.clone(), path_string(path), quorum_string(&q));
                        let ready = counts.remove(&id).unwrap_or(0);
                        out.push(PoolLevel {
                            key_id: id.0,
                            path: id.1,
                            quorum: q,
                            ready,
                            target: self.settings.pool_level,
                        });
                    }
                }
            }
        }
        for ((key_id, path, quorum), ready) in counts {
            out.push(PoolLevel {
                key_id,
                path,
                quorum: parse_quorum(&quorum),
                ready,
                target: 0,
            });
        }
        Ok(out)
    }

    /// Runs one presignature session for the emptiest pool below its level, if any; returns
    /// whether it made one. Yields to live signing requests: it starts only when none runs.
    pub async fn refill_once(&self) -> Result<bool, ApiError> {
        let quiet = self
            .last_live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            >= REFILL_QUIET;
        if self.settings.pool_level == 0 || self.live.load(Ordering::SeqCst) > 0 || !quiet {
            return Ok(false);
        }
        if self.cluster().await.is_err() {
            return Ok(false);
        }
        let _gate = self.presign_gate.lock().await;
        let healthy = self.nodes.healthy_nodes();
        let levels = self.pool_levels().await?;
        let Some(target) = levels
            .iter()
            .filter(|p| p.target > 0 && p.ready < p.target)
            .filter(|p| {
                p.quorum.iter().all(|n| healthy.contains(n)) && self.nodes.usable(&p.quorum)
            })
            .min_by_key(|p| p.ready)
            .cloned()
        else {
            return Ok(false);
        };
        let path = crate::api::parse_path(&target.path).map_err(|e| err(ErrorCode::Internal, e))?;
        let session = new_session_id();
        let started = Instant::now();
        let live = || self.live.load(Ordering::SeqCst) > 0;
        let run = run_session_yielding(
            &self.nodes,
            &session,
            &target.quorum,
            &SessionKind::Presign {
                key_id: target.key_id.clone(),
                path,
            },
            self.settings.setup_round_timeout,
            None,
            &live,
        )
        .await;
        if run
            .outcomes
            .values()
            .all(|o| matches!(o, Outcome::PresignatureReady))
            && run.outcomes.len() == target.quorum.len()
        {
            self.metrics.observe("presign", started.elapsed());
            let row = PresigRow {
                id: session.to_vec(),
                key_id: target.key_id,
                path: target.path,
                quorum: quorum_string(&target.quorum),
                created: unix_now(),
            };
            self.db(move |s| s.add_presignature(&row)).await?;
            Ok(true)
        } else {
            self.metrics.failure("presign", "failed");
            for n in run.blamed() {
                self.nodes.suspend(n, "presignature session failed");
            }
            if let Some((node, code, message)) = run.failure() {
                warn!(node, code = %code, message, "presignature session failed");
            }
            Ok(false)
        }
    }

    /// Forgets presignatures a node no longer holds (it restarted, or reports none).
    pub(super) async fn drop_presignatures_of(&self, node: u16) {
        let Ok(rows) = self.db(|s| s.ready_presignatures()).await else {
            return;
        };
        // One recorded in the last seconds may be newer than the status that said "none".
        let cutoff = unix_now().saturating_sub(5);
        for p in rows {
            if p.created < cutoff && parse_quorum(&p.quorum).contains(&node) {
                let id = p.id;
                let _ = self
                    .db(move |s| s.set_presignature_state(&id, PresigState::Dead))
                    .await;
            }
        }
    }
}
