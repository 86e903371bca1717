//! Background tasks: health checks (re-admitting restarted nodes), pool refills, the
//! stale-request sweep, and resuming a genesis left half-done.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::ledger::StoredResponse;
use super::{Coordinator, STALE_GRACE, digest_hex, err, unix_now};
use crate::api::{ApiError, ApprovedJson, ErrorCode, SignRequestJson};
use crate::audit::AuditEntry;
use crate::events::{Event, NODE_DOWN, NODE_UP};
use crate::nodes::NodeEvent;
use crate::store::{ClusterState, RequestState};

/// The first wait before another admission round for nodes still unadmitted.
const ADMISSION_RETRY_MIN: Duration = Duration::from_secs(2);
/// The longest: while the same nodes stay unadmitted, the wait doubles up to this.
const ADMISSION_RETRY_MAX: Duration = Duration::from_secs(60);

/// How often the outbox is pruned (issue 21).
const OUTBOX_PRUNE_EVERY: Duration = Duration::from_secs(60);

impl Coordinator {
    /// Deletes the outbox's events older than its retention, published or not: the outbox
    /// stays bounded whether or not any coordinator relays it.
    async fn prune_outbox(&self) {
        let before = unix_now().saturating_sub(self.settings.outbox_retention.as_secs());
        match self.db_quiet(move |s| s.prune_events(before)).await {
            Ok((_, 0)) => {}
            Ok((_, unsent)) => warn!(
                unsent,
                "events no broker confirmed within the outbox's retention were dropped"
            ),
            Err(e) => warn!(error = %e, "outbox pruning"),
        }
    }

    /// Writes a `node.down` or `node.up` event for each node whose health changed since the
    /// last look (issue 21); the first look is the baseline.
    async fn report_health(&self, last: &mut Option<BTreeSet<u16>>) {
        let healthy: BTreeSet<u16> = self
            .nodes
            .status()
            .iter()
            .filter(|n| n.healthy)
            .map(|n| n.node)
            .collect();
        if let Some(before) = last.as_ref() {
            let changes = before
                .difference(&healthy)
                .map(|n| (NODE_DOWN, *n))
                .chain(healthy.difference(before).map(|n| (NODE_UP, *n)));
            for (kind, node) in changes {
                let event = Event::lifecycle(kind, unix_now(), vec![node], None);
                if let Err(e) = self.db(move |s| s.push_event(&event)).await {
                    warn!(error = %e, kind, node, "cannot record a node event");
                }
            }
        }
        *last = Some(healthy);
    }

    /// Ends requests whose coordinator stopped before recording their result: they fail
    /// visibly (`interrupted`), with an audit record, instead of staying in progress forever.
    pub async fn fail_stale_requests(&self) -> Result<usize, ApiError> {
        // A client resubmitting within the grace period takes the request over and may still
        // complete it; after that it ends as failed.
        let cutoff = unix_now().saturating_sub(STALE_GRACE.as_secs());
        let stale = self.db(move |s| s.stale_requests(cutoff)).await?;
        let mut n = 0;
        for row in stale {
            let e = err(
                ErrorCode::Interrupted,
                "the coordinator running this request stopped before it finished; \
                 whether the enclaves signed is unknown to it: make a new request",
            );
            let stored = StoredResponse::of_error(&e)?;
            let request: Option<ApprovedJson<SignRequestJson>> =
                serde_json::from_str(&row.request).ok();
            let entry = AuditEntry {
                action: "sign".into(),
                actors: request
                    .as_ref()
                    .map(|b| {
                        b.approvals
                            .iter()
                            .map(|a| hex::encode(&a.approver.0))
                            .collect()
                    })
                    .unwrap_or_default(),
                key_id: request.as_ref().map(|b| b.request.key_id.clone()),
                payload_digests: request
                    .as_ref()
                    .map(|b| {
                        b.request
                            .payloads
                            .iter()
                            .map(|p| digest_hex(p.bytes()))
                            .collect()
                    })
                    .unwrap_or_default(),
                path: request
                    .as_ref()
                    .map(|b| b.request.path.clone())
                    .unwrap_or_default(),
                nodes: vec![],
                outcome: e.code.as_str().into(),
                request_id: request
                    .as_ref()
                    .map(|b| hex::encode(&b.request.request_id.0)),
                credential: row.credential.clone(),
                detail: None,
            };
            if self
                .finish(
                    &row.idem_key,
                    row.lease_until,
                    RequestState::Failed,
                    &stored,
                    vec![entry],
                )
                .await?
            {
                warn!(idem = row.idem_key, "interrupted request marked failed");
                n += 1;
            }
        }
        Ok(n)
    }

    /// Starts the background tasks: health checks (re-admitting restarted nodes), pool refills,
    /// the stale-request sweep, scheduled refreshes and unfinished resharings
    /// (`service/schedule.rs`), and a genesis left half-done by a previous run.
    pub fn spawn_background(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut last_admission: Option<Instant> = None;
            // Rounds for unadmitted nodes back off (2 s, doubling to a minute) while the same
            // nodes stay unadmitted: a node that never answers, or keeps being refused, costs
            // a round a minute, not one every 2 s. A restart, or a change, starts again at 2 s.
            let mut backoff = ADMISSION_RETRY_MIN;
            let mut last_unadmitted: Vec<u16> = Vec::new();
            let mut last_healthy = None;
            loop {
                // Serve the nodes of the roster in force (a committed roster change), and attest
                // against the image set in force (nothing before the genesis is ready).
                me.follow_roster().await;
                me.follow_images().await;
                let events = me.nodes.check(me.settings.attest_interval).await;
                let mut readmit = false;
                for e in events {
                    match e {
                        NodeEvent::Restarted(n) => {
                            readmit = true;
                            me.drop_presignatures_of(n).await;
                        }
                        NodeEvent::FirstSeen(_) => readmit = true,
                        NodeEvent::NoPresignatures(n) => me.drop_presignatures_of(n).await,
                    }
                }
                let genesis = me.cluster_state().await;
                if genesis.as_ref().is_ok_and(|g| *g == ClusterState::Ready) {
                    me.report_health(&mut last_healthy).await;
                }
                // Also, after genesis, whenever an operational node has not admitted its peers
                // under its current identity (its state came back after it restarted, e.g.
                // after a KMS outage, or a round missed a peer): every 2 s at most.
                let waiting = me.nodes.unadmitted();
                if readmit || waiting != last_unadmitted {
                    backoff = ADMISSION_RETRY_MIN;
                }
                let unadmitted = genesis.as_ref().is_ok_and(|g| *g == ClusterState::Ready)
                    && !waiting.is_empty()
                    && last_admission.is_none_or(|t: Instant| t.elapsed() >= backoff);
                let readmit = readmit && genesis.as_ref().is_ok_and(|g| *g != ClusterState::None)
                    || unadmitted;
                if unadmitted && waiting == last_unadmitted {
                    backoff = (backoff * 2).min(ADMISSION_RETRY_MAX);
                }
                last_unadmitted = waiting;
                if readmit {
                    last_admission = Some(Instant::now());
                    info!("a node restarted: peers admit each other again");
                    me.nodes.admit_all().await;
                }
                tokio::time::sleep(me.settings.health_interval).await;
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match me.refill_round().await {
                    // Again once a session ends (a node has room again), or in 200 ms.
                    Ok(_) => me.refill_ended(Duration::from_millis(200)).await,
                    Err(e) => {
                        warn!(error = %e, "pool refill");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            let mut pruned: Option<Instant> = None;
            loop {
                if let Err(e) = me.fail_stale_requests().await {
                    warn!(error = %e, "stale request sweep");
                }
                if pruned.is_none_or(|t| t.elapsed() >= OUTBOX_PRUNE_EVERY) {
                    me.prune_outbox().await;
                    pruned = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(me.settings.schedule_interval).await;
                if !matches!(me.cluster_state().await, Ok(ClusterState::Ready)) {
                    continue;
                }
                if let Err(e) = me.schedule_once().await {
                    warn!(error = %e, "scheduled refreshes");
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            // Let the first health round land before resuming a genesis.
            tokio::time::sleep(Duration::from_secs(1)).await;
            me.initialise().await;
        });
    }
}
