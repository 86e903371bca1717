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

impl Coordinator {
    /// One background pass: resolves the resharings recorded more than `resolve_after` ago
    /// and still unfinished, then refreshes every key whose schedule is due. The keys
    /// refreshed; a key that fails is logged and tried at the next pass.
    pub async fn schedule_once(self: &Arc<Self>) -> Result<Vec<String>, ApiError> {
        let now = unix_now();
        let cutoff = now.saturating_sub(self.settings.resolve_after.as_secs());
        for key_id in self.db(move |s| s.keys_left_pending(cutoff)).await? {
            match self.resolve_stored(&key_id).await {
                Ok(()) => info!(key = %key_id, "an unfinished resharing resolved"),
                Err(e) => warn!(key = %key_id, error = %e, "an unfinished resharing"),
            }
        }
        let mut refreshed = Vec::new();
        for key_id in self.db(move |s| s.keys_due_for_refresh(now)).await? {
            let started = Instant::now();
            let result = self.refresh_on_schedule(&key_id).await;
            self.metrics.observe("refresh_scheduled", started.elapsed());
            match result {
                Ok(info) => {
                    info!(
                        key = %key_id,
                        generation = info.receipts.as_ref().map_or(0, |r| r.generation),
                        "scheduled refresh"
                    );
                    refreshed.push(key_id);
                }
                Err(e) => {
                    self.metrics.failure("refresh_scheduled", e.code.as_str());
                    warn!(key = %key_id, error = %e, "scheduled refresh");
                }
            }
        }
        Ok(refreshed)
    }

    /// Resolves key `key_id`'s recorded resharing, if it still has one.
    async fn resolve_stored(self: &Arc<Self>, key_id: &str) -> Result<(), ApiError> {
        let genesis = self.cluster().await?;
        let row = self.stored_key(key_id).await?;
        let Some(previous) = row.pending.clone() else {
            return Ok(());
        };
        let previous: ApprovedJson<ReshareKeyJson> = serde_json::from_str(&previous)
            .map_err(|e| err(ErrorCode::Storage, format!("stored resharing: {e}")))?;
        self.resolve(&genesis, key_id, &previous, &row, "background")
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
            },
            approvals: vec![],
            presignature: None,
        };
        self.reshare(key_id, body, "schedule".into(), Origin::Schedule)
            .await
    }
}
