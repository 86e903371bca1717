//! Genesis: accepting the approved genesis and bringing the cluster to ready (genesis at every
//! node, peer admission, safe primes, auxiliary info), resumable after a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::policy::REQUEST_VERSION;
use protocol::session::{FailureCode, Outcome, SessionKind};
use tracing::{info, warn};

use super::checks::{check_approvals, keys_of};
use super::{Coordinator, err, unix_now};
use crate::api::{ApiError, ApprovedJson, ErrorCode, GenesisJson, GenesisStatus, Wire};
use crate::audit::AuditEntry;
use crate::nodes::{new_session_id, run_session};
use crate::store::{ClusterRow, ClusterState};

impl Coordinator {
    /// Genesis progress.
    pub async fn genesis_status(&self) -> Result<GenesisStatus, ApiError> {
        let row = self.db(|s| s.cluster()).await?;
        Ok(match row {
            None => GenesisStatus {
                state: ClusterState::None.to_string(),
                detail: "no genesis yet".into(),
                cluster: None,
            },
            Some(r) => GenesisStatus {
                state: r.state.to_string(),
                detail: r.detail,
                cluster: serde_json::from_str::<ApprovedJson<GenesisJson>>(&r.genesis)
                    .ok()
                    .map(|g| g.request.cluster),
            },
        })
    }

    /// The cluster's state (`None` before genesis).
    pub(super) async fn cluster_state(&self) -> Result<ClusterState, ApiError> {
        Ok(self
            .db(|s| s.cluster())
            .await?
            .map_or(ClusterState::None, |r| r.state))
    }

    pub(super) async fn cluster(&self) -> Result<ApprovedJson<GenesisJson>, ApiError> {
        // A ready genesis never changes: read it once.
        if let Some(g) = self.ready_genesis.get() {
            return Ok(g.clone());
        }
        let row = self
            .db(|s| s.cluster())
            .await?
            .ok_or_else(|| err(ErrorCode::NotInitialised, "the cluster has no genesis yet"))?;
        if row.state != ClusterState::Ready {
            return Err(err(
                ErrorCode::NotInitialised,
                format!("the cluster is not ready: {} ({})", row.state, row.detail),
            ));
        }
        let g: ApprovedJson<GenesisJson> = serde_json::from_str(&row.genesis)
            .map_err(|e| err(ErrorCode::Storage, format!("stored genesis: {e}")))?;
        let _ = self.ready_genesis.set(g.clone());
        Ok(g)
    }

    /// Accepts a genesis and starts initialising the cluster in the background.
    pub async fn genesis(
        self: &Arc<Self>,
        body: ApprovedJson<GenesisJson>,
    ) -> Result<GenesisStatus, ApiError> {
        let g = body.request.to_wire();
        if g.v != REQUEST_VERSION {
            return Err(err(
                ErrorCode::InvalidRequest,
                "unsupported request version",
            ));
        }
        if g.cluster.is_empty() || g.cluster.len() > 128 {
            return Err(err(
                ErrorCode::InvalidRequest,
                "a cluster name has 1 to 128 bytes",
            ));
        }
        if g.nodes != self.nodes.count() {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!(
                    "the genesis names {} nodes; this coordinator relays to {}",
                    g.nodes,
                    self.nodes.count()
                ),
            ));
        }
        let admins = keys_of(&body.request.admins, "admin")?;
        if g.admin_quorum == 0 || usize::from(g.admin_quorum) > admins.len() {
            return Err(err(
                ErrorCode::InvalidRequest,
                "the admin quorum must be between 1 and the number of admins",
            ));
        }
        let wire = body.to_wire();
        let actors = check_approvals(&g, &wire.approvals, &admins, g.admin_quorum)?;
        let row = ClusterRow {
            genesis: serde_json::to_string(&body)
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
            state: ClusterState::Initialising,
            detail: "sending the genesis to every node".into(),
        };
        let entry = AuditEntry {
            action: "genesis".into(),
            actors,
            key_id: None,
            payload_digests: vec![],
            path: vec![],
            nodes: (0..g.nodes).collect(),
            outcome: "accepted".into(),
            request_id: None,
        };
        let inserted = self
            .db(move |s| s.insert_cluster(&row, unix_now(), &entry))
            .await?;
        if !inserted {
            return Err(err(
                ErrorCode::GenesisExists,
                "genesis was already submitted",
            ));
        }
        let me = self.clone();
        tokio::spawn(async move { me.initialise().await });
        self.genesis_status().await
    }

    async fn set_state(&self, state: ClusterState, detail: String, entry: Option<AuditEntry>) {
        info!(state = state.as_str(), detail, "cluster state");
        // Retried: a lost "ready" would leave the cluster initialising until the next start.
        for attempt in 0..5u64 {
            let (d, e) = (detail.clone(), entry.clone());
            match self
                .db(move |s| s.set_cluster_state(state, &d, unix_now(), e.as_ref()))
                .await
            {
                Ok(()) => return,
                Err(e) => {
                    warn!(error = %e, attempt, "cannot record the cluster state");
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
    }

    /// Brings the cluster from an accepted genesis to ready: genesis at every node, peer
    /// admission, safe primes, auxiliary info. Each step tolerates having been done before, so
    /// a coordinator that restarts mid-way resumes here.
    pub async fn initialise(self: Arc<Self>) {
        // One run at a time (the API and the start-up resume may both ask).
        let Ok(_running) = self.initialising.try_lock() else {
            return;
        };
        let Ok(Some(row)) = self.db(|s| s.cluster()).await else {
            return;
        };
        if row.state != ClusterState::Initialising {
            return;
        }
        let Ok(body) = serde_json::from_str::<ApprovedJson<GenesisJson>>(&row.genesis) else {
            self.set_state(
                ClusterState::Failed,
                "stored genesis does not decode".into(),
                None,
            )
            .await;
            return;
        };
        match self.initialise_steps(&body).await {
            Ok(()) => {
                let entry = self.cluster_ready_entry("ok");
                self.set_state(
                    ClusterState::Ready,
                    "auxiliary info ready on every node".into(),
                    Some(entry),
                )
                .await;
            }
            Err(e) => {
                let entry = self.cluster_ready_entry(e.code.as_str());
                self.set_state(ClusterState::Failed, e.message, Some(entry))
                    .await;
            }
        }
    }

    fn cluster_ready_entry(&self, outcome: &str) -> AuditEntry {
        AuditEntry {
            action: "cluster_ready".into(),
            actors: vec![],
            key_id: None,
            payload_digests: vec![],
            path: vec![],
            nodes: (0..self.nodes.count()).collect(),
            outcome: outcome.into(),
            request_id: None,
        }
    }

    async fn initialise_steps(&self, body: &ApprovedJson<GenesisJson>) -> Result<(), ApiError> {
        self.hand_out_genesis(body).await?;
        self.set_state(ClusterState::Initialising, "admitting peers".into(), None)
            .await;
        let refusals = self.nodes.admit_all().await;
        if let Some((node, peer, why)) = refusals.first() {
            return Err(err(
                ErrorCode::Refused,
                format!("node {node} refused peer {peer}: {why}"),
            ));
        }
        self.wait_for_primes().await?;
        self.set_state(
            ClusterState::Initialising,
            "generating auxiliary info".into(),
            None,
        )
        .await;
        self.generate_aux_info().await?;
        self.nodes.check(self.settings.attest_interval).await;
        Ok(())
    }

    /// Gives every node the approved genesis (a node that already holds it, as this very
    /// node, counts as done: a resumed genesis).
    async fn hand_out_genesis(&self, body: &ApprovedJson<GenesisJson>) -> Result<(), ApiError> {
        let approved = body.to_wire();
        for node in 0..self.nodes.count() {
            let r = self
                .nodes
                .call(
                    node,
                    &protocol::EnclaveRequest::Genesis {
                        request: approved.clone(),
                        node,
                    },
                    Duration::from_secs(30),
                )
                .await
                .map_err(|e| err(ErrorCode::NoQuorum, e.0))?;
            match r {
                protocol::EnclaveResponse::GenesisAccepted { .. } => {}
                // Done before (a resumed genesis), or restored from its sealed blobs: only if the
                // node is operational as this very node of a cluster.
                protocol::EnclaveResponse::Error(e)
                    if e.message.contains("already")
                        || e.code == protocol::ErrorCode::WrongPhase =>
                {
                    let status = self
                        .nodes
                        .call(
                            node,
                            &protocol::EnclaveRequest::Status,
                            Duration::from_secs(10),
                        )
                        .await
                        .map_err(|e| err(ErrorCode::NoQuorum, e.0))?;
                    let ok = matches!(
                        status,
                        protocol::EnclaveResponse::Status {
                            phase: protocol::Phase::Operational,
                            node: Some(n),
                            ..
                        } if n == node
                    );
                    if !ok {
                        return Err(err(
                            ErrorCode::Refused,
                            format!(
                                "node {node} refused the genesis and is not node {node} of a cluster: {e}"
                            ),
                        ));
                    }
                }
                protocol::EnclaveResponse::Error(e) => {
                    return Err(err(ErrorCode::Refused, format!("node {node}: {e}")));
                }
                other => {
                    return Err(err(
                        ErrorCode::Internal,
                        format!("node {node}: unexpected {other}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Waits until every enclave has its safe primes, showing progress in the cluster state.
    async fn wait_for_primes(&self) -> Result<(), ApiError> {
        let started = Instant::now();
        let mut shown = None;
        loop {
            self.nodes.check(self.settings.attest_interval).await;
            let (ready, total) = self.nodes.primes_progress();
            if shown != Some(ready) {
                // Progress for `GET /v1/cluster` (and `cohort genesis`): each enclave generates
                // its safe primes in the background from boot.
                self.set_state(
                    ClusterState::Initialising,
                    format!("safe primes (Paillier keys) ready in {ready} of {total} enclaves"),
                    None,
                )
                .await;
                shown = Some(ready);
            }
            if ready == total {
                break;
            }
            if started.elapsed() > Duration::from_secs(1800) {
                return Err(err(
                    ErrorCode::DeadlineExceeded,
                    "safe primes not ready after 30 minutes",
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(())
    }

    /// Runs auxiliary-info generation among all nodes (done before counts as done).
    async fn generate_aux_info(&self) -> Result<(), ApiError> {
        let all: Vec<u16> = (0..self.nodes.count()).collect();
        let run = run_session(
            &self.nodes,
            &new_session_id(),
            &all,
            &SessionKind::AuxInfo,
            self.settings.setup_round_timeout,
        )
        .await;
        if let Some((node, code, message)) = run.failure() {
            // A resumed genesis: every node that refused already has auxiliary info (the
            // others only saw the session aborted).
            let done = |o: &Outcome| match o {
                Outcome::Failed { code, message, .. } => {
                    message.contains("auxiliary info already exists")
                        || *code == FailureCode::Aborted
                }
                _ => false,
            };
            if message.contains("auxiliary info already exists") && run.outcomes.values().all(done)
            {
                return Ok(());
            }
            return Err(err(
                ErrorCode::Refused,
                format!("auxiliary info failed at node {node}: {code}: {message}"),
            ));
        }
        Ok(())
    }
}
