//! Presignature pools: their levels, refilling the emptiest with as many sessions at once as
//! the nodes have worker threads, and forgetting presignatures a node no longer holds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use protocol::policy::Scheme;
use protocol::session::{FailureCode, Outcome, SessionKind};
use tracing::warn;

use super::failover::{combinations, parse_quorum, quorum_string};
use super::{Coordinator, REFILL_QUIET, err, unix_now};
use crate::api::{ApiError, ErrorCode, PoolLevel, path_string};
use crate::events::{Event, POOL_LOW};
use crate::nodes::{SessionRun, new_session_id, run_session_yielding};
use crate::store::{PresigRow, PresigState};

/// How long the refiller leaves a node alone after it answered `limit`: it holds all the
/// presignatures it may (issue 18), and asking again before some are used would only start
/// sessions at its partners that it refuses.
pub const LIMIT_BACKOFF: Duration = Duration::from_secs(60);

/// How long the refiller leaves a node alone after it answered `busy` (at its cap of live
/// setup sessions: they end or idle out).
pub const BUSY_BACKOFF: Duration = Duration::from_secs(5);

/// How long a failed refill session keeps its pool's and nodes' places before another is tried.
pub const FAILED_REFILL_PAUSE: Duration = Duration::from_secs(1);

/// Most refill sessions one node runs at once, whatever it reports: half of an enclave's cap
/// of 32 setup sessions, so that key creation and resharing always find room (helper-85, L6).
pub const MAX_REFILL_PER_NODE: usize = 16;

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

/// The presignature sessions refills are running: per pool, and per node.
#[derive(Debug, Default)]
pub struct Refilling {
    pools: BTreeMap<(String, String, Vec<u16>), u32>,
    nodes: BTreeMap<u16, usize>,
}

fn pool_id(p: &PoolLevel) -> (String, String, Vec<u16>) {
    (p.key_id.clone(), p.path.clone(), p.quorum.clone())
}

impl Refilling {
    fn of_pool(&self, p: &PoolLevel) -> u32 {
        self.pools.get(&pool_id(p)).copied().unwrap_or(0)
    }

    fn of_node(&self, node: u16) -> usize {
        self.nodes.get(&node).copied().unwrap_or(0)
    }

    /// Counts a session for `level` until the [`Held`] it answers is dropped.
    fn hold(&mut self, coordinator: Arc<Coordinator>, level: PoolLevel) -> Held {
        *self.pools.entry(pool_id(&level)).or_default() += 1;
        for n in &level.quorum {
            *self.nodes.entry(*n).or_default() += 1;
        }
        Held { coordinator, level }
    }

    fn release(&mut self, level: &PoolLevel) {
        let id = pool_id(level);
        if let Some(c) = self.pools.get_mut(&id) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                self.pools.remove(&id);
            }
        }
        for n in &level.quorum {
            if let Some(c) = self.nodes.get_mut(n) {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    self.nodes.remove(n);
                }
            }
        }
    }
}

/// One running refill session's place in [`Refilling`]; dropping it (the session ended, or its
/// task did) frees the place and wakes the refiller.
struct Held {
    coordinator: Arc<Coordinator>,
    level: PoolLevel,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.coordinator.refilling().release(&self.level);
        self.coordinator.refill_done.notify_one();
    }
}

impl Coordinator {
    /// Writes a `pool.low` event for each pool that fell below half its level since the last
    /// look (issue 21); a pool is reported again once it has been refilled past half.
    async fn report_low_pools(&self, levels: &[PoolLevel]) {
        let mut fresh = Vec::new();
        {
            let mut low = self.low_pools.lock().unwrap_or_else(|p| p.into_inner());
            for p in levels.iter().filter(|p| p.target > 0) {
                let id = (p.key_id.clone(), p.path.clone(), quorum_string(&p.quorum));
                if p.ready * 2 < p.target {
                    if low.insert(id) {
                        fresh.push(p.clone());
                    }
                } else {
                    low.remove(&id);
                }
            }
        }
        for p in fresh {
            let detail = format!(
                "path {} quorum {}: {} of {} ready",
                p.path,
                quorum_string(&p.quorum),
                p.ready,
                p.target
            );
            let mut event = Event::lifecycle(POOL_LOW, unix_now(), p.quorum, Some(detail));
            event.key_id = Some(p.key_id);
            if let Err(e) = self.db(move |s| s.push_event(&event)).await {
                warn!(error = %e, "cannot record a pool event");
            }
        }
    }

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

    /// Starts presignature sessions for the pools below their level, emptiest first, as many
    /// as the nodes have room for: each node runs at most one per worker thread it reports
    /// (`--refill-sessions` overrides), so that every core of every enclave makes
    /// presignatures (issue 22). Each session runs as a task of its own; returns how many
    /// started. With `--refill-yield` it starts none while live signing requests run.
    pub async fn refill_round(self: &Arc<Self>) -> Result<usize, ApiError> {
        if self.settings.pool_level == 0 || self.yields_to_live() {
            return Ok(0);
        }
        if self.cluster().await.is_err() {
            return Ok(0);
        }
        let healthy = self.nodes.healthy_nodes();
        let levels = self.pool_levels().await?;
        self.report_low_pools(&levels).await;
        let now = Instant::now();
        let mut started = 0;
        loop {
            let picked = {
                let mut refilling = self.refilling();
                let pick = levels
                    .iter()
                    .filter(|p| p.target > 0 && p.ready + refilling.of_pool(p) < p.target)
                    .filter(|p| {
                        p.quorum.iter().all(|n| healthy.contains(n))
                            && self.nodes.usable(&p.quorum)
                            && p.quorum
                                .iter()
                                .all(|n| refilling.of_node(*n) < self.presign_capacity(*n))
                    })
                    .filter(|p| self.pool_backoff().allows(&p.quorum, now))
                    .min_by_key(|p| p.ready + refilling.of_pool(p))
                    .cloned();
                pick.map(|p| refilling.hold(self.clone(), p))
            };
            let Some(held) = picked else {
                break;
            };
            started += 1;
            let me = self.clone();
            tokio::spawn(async move {
                let made = me.refill_one(&held.level).await;
                if let Err(e) = &made {
                    warn!(error = %e, "pool refill");
                }
                // A failed session keeps its place a while: the same pool and nodes are not
                // asked again at once (helper-85, M2: a node refusing every start was asked
                // as fast as it answered).
                if !matches!(made, Ok(true)) {
                    tokio::time::sleep(FAILED_REFILL_PAUSE).await;
                }
                drop(held);
            });
        }
        Ok(started)
    }

    /// Whether refills start no session now (`--refill-yield`): a live signing request runs,
    /// or one ended within [`REFILL_QUIET`].
    fn yields_to_live(&self) -> bool {
        self.live_signing()
            || (self.settings.refill_yield
                && self
                    .last_live
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .elapsed()
                    < REFILL_QUIET)
    }

    /// Whether a refill gives way to a live signing request running now (`--refill-yield`).
    fn live_signing(&self) -> bool {
        self.settings.refill_yield && self.live.load(Ordering::SeqCst) > 0
    }

    /// Presignature sessions node `node` runs at once while pools refill.
    fn presign_capacity(&self, node: u16) -> usize {
        match self.settings.refill_sessions {
            0 => self.nodes.presign_capacity(node),
            n => n,
        }
        .min(MAX_REFILL_PER_NODE)
    }

    fn refilling(&self) -> std::sync::MutexGuard<'_, Refilling> {
        self.refilling.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one presignature session for pool `target`; returns whether it made one.
    async fn refill_one(&self, target: &PoolLevel) -> Result<bool, ApiError> {
        // Shared with the other refills; a roster commit being recorded waits for them all
        // and holds the next ones back (`roster::in_force`).
        let _gate = self.presign_gate.read().await;
        // Picked before the gate: a roster commit recorded meanwhile may have changed the
        // nodes (helper-85, L3).
        if !(target.quorum.iter().all(|n| self.nodes.healthy(*n))
            && self.nodes.usable(&target.quorum))
        {
            return Ok(false);
        }
        let path = crate::api::parse_path(&target.path).map_err(|e| err(ErrorCode::Internal, e))?;
        let session = new_session_id();
        let started = Instant::now();
        let live = || self.live_signing();
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
                key_id: target.key_id.clone(),
                path: target.path.clone(),
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

    /// Waits until a refill session ends, or `most` passes.
    pub async fn refill_ended(&self, most: Duration) {
        let _ = tokio::time::timeout(most, self.refill_done.notified()).await;
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
