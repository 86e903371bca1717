//! Presignature pools: their levels, refilling the emptiest when the coordinator is quiet, and
//! forgetting presignatures a node no longer holds.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use protocol::policy::Scheme;
use protocol::session::{FailureCode, Outcome, SessionKind};
use tracing::warn;

use super::failover::{combinations, parse_quorum, quorum_string};
use super::{Coordinator, REFILL_QUIET, err, unix_now};
use crate::api::{ApiError, ErrorCode, PoolLevel, path_string};
use crate::nodes::{SessionRun, new_session_id, run_session_yielding};
use crate::store::{PresigRow, PresigState};

/// How long the refiller leaves a node alone after it answered `limit`: it holds all the
/// presignatures it may (issue 18), and asking again before some are used would only start
/// sessions at its partners that it refuses.
pub const LIMIT_BACKOFF: Duration = Duration::from_secs(60);

/// How long the refiller leaves a node alone after it answered `busy` (at its cap of live
/// setup sessions: they end or idle out).
pub const BUSY_BACKOFF: Duration = Duration::from_secs(5);

/// Nodes the pool refiller leaves alone for a while, after `limit` or `busy`. Not blame: the
/// node did nothing wrong and signs as before.
#[derive(Debug, Default)]
pub struct PoolBackoff(BTreeMap<u16, Instant>);

impl PoolBackoff {
    /// Notes the `limit` and `busy` answers of a presignature run at `now`.
    pub fn note(&mut self, run: &SessionRun, now: Instant) {
        for (node, o) in &run.outcomes {
            let pause = match o {
                Outcome::Failed {
                    code: FailureCode::Limit,
                    ..
                } => LIMIT_BACKOFF,
                Outcome::Failed {
                    code: FailureCode::Busy,
                    ..
                } => BUSY_BACKOFF,
                _ => continue,
            };
            warn!(
                node,
                pause_s = pause.as_secs(),
                "node refuses more presignatures for now"
            );
            self.0.insert(*node, now + pause);
        }
    }

    /// Whether every node of `quorum` may be asked at `now`.
    pub fn allows(&mut self, quorum: &[u16], now: Instant) -> bool {
        self.0.retain(|_, until| *until > now);
        quorum.iter().all(|n| !self.0.contains_key(n))
    }

    /// Forgets a node's pause (it restarted: its presignatures are gone).
    pub fn clear(&mut self, node: u16) {
        self.0.remove(&node);
    }
}

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
        let now = Instant::now();
        let Some(target) = levels
            .iter()
            .filter(|p| p.target > 0 && p.ready < p.target)
            .filter(|p| {
                p.quorum.iter().all(|n| healthy.contains(n)) && self.nodes.usable(&p.quorum)
            })
            .filter(|p| self.pool_backoff().allows(&p.quorum, now))
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
            self.pool_backoff().note(&run, Instant::now());
            for n in run.blamed() {
                self.nodes.suspend(n, "presignature session failed");
            }
            if let Some((node, code, message)) = run.failure() {
                warn!(node, code = %code, message, "presignature session failed");
            }
            Ok(false)
        }
    }

    fn pool_backoff(&self) -> std::sync::MutexGuard<'_, PoolBackoff> {
        self.pool_backoff.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets presignatures a node no longer holds (it restarted, or reports none).
    pub(super) async fn drop_presignatures_of(&self, node: u16) {
        self.pool_backoff().clear(node);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(code: FailureCode) -> Outcome {
        Outcome::Failed {
            code,
            message: code.to_string(),
            culprits: vec![],
        }
    }

    /// Issue 18: a node that answered `limit` is not asked for presignatures again for a
    /// minute (`busy`: a few seconds), whatever quorum it is in; its partners still are; a
    /// restart clears the pause.
    #[test]
    fn the_refiller_leaves_a_node_at_its_limit_alone() {
        let t0 = Instant::now();
        let mut backoff = PoolBackoff::default();
        let run = SessionRun {
            outcomes: [
                (0, failed(FailureCode::Limit)),
                (1, failed(FailureCode::Aborted)),
                (2, failed(FailureCode::Busy)),
            ]
            .into(),
            unresponsive: vec![],
        };
        backoff.note(&run, t0);
        assert!(!backoff.allows(&[0, 1], t0));
        assert!(!backoff.allows(&[1, 2], t0));
        assert!(backoff.allows(&[1, 3], t0), "its partners are not paused");
        let later = t0 + BUSY_BACKOFF + Duration::from_millis(1);
        assert!(backoff.allows(&[1, 2], later), "busy passes first");
        assert!(!backoff.allows(&[0, 1], later));
        assert!(backoff.allows(&[0, 1], t0 + LIMIT_BACKOFF + Duration::from_millis(1)));
        backoff.note(&run, t0);
        backoff.clear(0);
        assert!(backoff.allows(&[0, 1], t0), "a restarted node holds none");
    }
}
