//! Scheduled refreshes and unfinished resharings, in the background (issue 19).
//!
//! A key whose refresh schedule the admins turned on (an approved resharing with
//! `refresh_every`) is refreshed by the coordinator itself once its current generation is that
//! old: a resharing at the key's own threshold, with no approvals, which each enclave accepts
//! only while the schedule it sealed with the key is on and due by its own clock
//! (`protocol::reshare::scheduled_refresh`). A compromised coordinator can thus refresh a key
//! no more often than the admins chose, and never change who can sign with it.
//!
//! A resharing left unfinished (the coordinator that ran it stopped, or a node was down) is
//! resolved here too once it has been recorded for `resolve_after`, without waiting for the
//! key's next request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use protocol::reshare::RESHARE_VERSION;
use rand::RngCore;
use tracing::{info, warn};

use super::keys::key_info;
use super::reshare::Origin;
use super::{Coordinator, err, unix_now};
use crate::api::{ApiError, ApprovedJson, ClusterHex, ErrorCode, Hex, KeyInfo, ReshareKeyJson};

/// How long a scheduled refresh request stays valid (seconds).
const SCHEDULED_VALIDITY_SECS: u64 = 300;
/// The first wait after a key's scheduled refresh failed (seconds); it doubles while the key
/// keeps failing, up to [`BACKOFF_MAX`]. A refusal at the enclaves (its clock behind this
/// coordinator's, a node down) then costs a few attempts an hour, not one per pass.
const BACKOFF_MIN: u64 = 30;
/// The longest wait between a failing key's attempts (seconds).
const BACKOFF_MAX: u64 = 3_600;

/// Keys whose scheduled refresh failed: when each may be tried again and the wait after that.
#[derive(Debug, Default)]
pub(super) struct Backoff(HashMap<String, (u64, u64)>);

impl Backoff {
    /// Whether `key_id` may be tried at `now`.
    fn ready(&self, key_id: &str, now: u64) -> bool {
        self.0.get(key_id).is_none_or(|(at, _)| *at <= now)
    }

    /// `key_id` failed at `now`: its next try waits, longer each time.
    fn failed(&mut self, key_id: &str, now: u64) {
        let wait = self.0.get(key_id).map_or(BACKOFF_MIN, |(_, w)| *w);
        self.0.insert(
            key_id.to_string(),
            (now.saturating_add(wait), (wait * 2).min(BACKOFF_MAX)),
        );
    }

    /// `key_id` was refreshed: no wait.
    fn succeeded(&mut self, key_id: &str) {
        self.0.remove(key_id);
    }
}

impl Coordinator {
    /// One background pass: resolves the resharings recorded more than `resolve_after` ago
    /// and still unfinished, then refreshes every key whose schedule is due. The keys
    /// refreshed; a key that fails is logged and tried at the next pass.
    pub async fn schedule_once(self: &Arc<Self>) -> Result<Vec<String>, ApiError> {
        let now = unix_now();
        let cutoff = now.saturating_sub(self.settings.resolve_after.as_secs());
        for key_id in self.db(move |s| s.keys_left_pending(cutoff, now)).await? {
            match self.resolve_stored(&key_id).await {
                Ok(()) => info!(key = %key_id, "an unfinished resharing resolved"),
                Err(e) => warn!(key = %key_id, error = %e, "an unfinished resharing"),
            }
        }
        let mut refreshed = Vec::new();
        for key_id in self.db(move |s| s.keys_due_for_refresh(now)).await? {
            if !self.backoff().ready(&key_id, now) {
                continue;
            }
            let started = Instant::now();
            let result = self.refresh_on_schedule(&key_id).await;
            self.metrics.observe("refresh_scheduled", started.elapsed());
            match result {
                Ok(info) => {
                    self.backoff().succeeded(&key_id);
                    info!(
                        key = %key_id,
                        generation = info.receipts.as_ref().map_or(0, |r| r.generation),
                        "scheduled refresh"
                    );
                    refreshed.push(key_id);
                }
                Err(e) => {
                    self.backoff().failed(&key_id, unix_now());
                    self.metrics.failure("refresh_scheduled", e.code.as_str());
                    warn!(key = %key_id, error = %e, "scheduled refresh");
                }
            }
        }
        Ok(refreshed)
    }

    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.schedule_backoff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Resolves key `key_id`'s recorded resharing, if it still has one.
    async fn resolve_stored(self: &Arc<Self>, key_id: &str) -> Result<(), ApiError> {
        let roster = self.roster_in_force().await?;
        let row = self.stored_key(key_id).await?;
        let Some(previous) = row.pending.clone() else {
            return Ok(());
        };
        let previous: ApprovedJson<ReshareKeyJson> = serde_json::from_str(&previous)
            .map_err(|e| err(ErrorCode::Storage, format!("stored resharing: {e}")))?;
        self.resolve(&roster, key_id, &previous, &row, "background")
            .await
            .map(|_| ())
    }

    /// Refreshes key `key_id` on its schedule: every node deals, the threshold and the
    /// schedule stay, no approvals.
    async fn refresh_on_schedule(self: &Arc<Self>, key_id: &str) -> Result<KeyInfo, ApiError> {
        let genesis = self.cluster().await?;
        let cluster = genesis
            .cluster_id()
            .ok_or_else(|| err(ErrorCode::Refused, "legacy_genesis"))?;
        let key = key_info(&self.stored_key(key_id).await?)?;
        let mut request_id = [0u8; protocol::policy::REQUEST_ID_LEN];
        rand::rngs::OsRng.fill_bytes(&mut request_id);
        let now = unix_now();
        let body = ApprovedJson {
            request: ReshareKeyJson {
                v: RESHARE_VERSION,
                cluster: ClusterHex(cluster),
                key_id: key_id.to_string(),
                generation: key.receipts.as_ref().map_or(0, |r| r.generation),
                threshold: key.threshold,
                dealers: (0..self.nodes.count()).collect(),
                request_id: Hex(request_id.to_vec()),
                created: now,
                expiry: now + SCHEDULED_VALIDITY_SECS,
                refresh_every: None,
                scheduled: true,
                policy: None,
                // A scheduled refresh has no approvals: it names no admin version.
                admins: 0,
            },
            approvals: vec![],
            presignature: None,
        };
        self.reshare(key_id, body, "schedule".into(), Origin::Schedule)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_key_waits_longer_each_time_and_not_after_a_success() {
        let mut b = Backoff::default();
        assert!(b.ready("k", 0));
        b.failed("k", 100);
        assert!(!b.ready("k", 129) && b.ready("k", 130) && b.ready("other", 100));
        b.failed("k", 130);
        assert!(!b.ready("k", 189) && b.ready("k", 190));
        for _ in 0..20 {
            b.failed("k", 1_000);
        }
        assert!(b.ready("k", 1_000 + BACKOFF_MAX));
        b.succeeded("k");
        assert!(b.ready("k", 0));
    }
}
