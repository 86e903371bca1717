//! Genesis: accepting the approved genesis and bringing the cluster to ready (genesis at every
//! node, peer admission, safe primes, auxiliary info), resumable after a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::session::{FailureCode, Outcome, SessionKind};
use tracing::{info, warn};

use super::checks::{check_approvals, keys_of};
use super::{Coordinator, err, unix_now};
use crate::api::{
    ApiError, ApprovedJson, AttestRequest, ClusterHex, EnrollRequest, EnrolledNode, ErrorCode,
    GenesisBody, GenesisStatus, GenesisV2Json, Hex, MIN_NONCE_LEN, NodeDocument, Wire,
};
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
                cluster_id: None,
            },
            Some(r) => {
                let genesis = serde_json::from_str::<GenesisBody>(&r.genesis).ok();
                GenesisStatus {
                    state: r.state.to_string(),
                    detail: r.detail,
                    cluster: genesis.as_ref().map(|g| g.name().to_string()),
                    cluster_id: genesis.and_then(|g| g.cluster_id()).map(ClusterHex),
                }
            }
        })
    }

    /// The cluster's state (`None` before genesis).
    pub(super) async fn cluster_state(&self) -> Result<ClusterState, ApiError> {
        Ok(self
            .db(|s| s.cluster())
            .await?
            .map_or(ClusterState::None, |r| r.state))
    }

    pub(super) async fn cluster(&self) -> Result<GenesisBody, ApiError> {
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
        let g: GenesisBody = serde_json::from_str(&row.genesis)
            .map_err(|e| err(ErrorCode::Storage, format!("stored genesis: {e}")))?;
        if matches!(g, GenesisBody::V1(_)) {
            return Err(legacy_genesis());
        }
        let _ = self.ready_genesis.set(g.clone());
        Ok(g)
    }

    /// Accepts a genesis and starts initialising the cluster in the background.
    pub async fn genesis(
        self: &Arc<Self>,
        body: GenesisBody,
        credential: String,
    ) -> Result<GenesisStatus, ApiError> {
        let (actors, nodes) = match &body {
            GenesisBody::V1(_) => return Err(legacy_genesis()),
            GenesisBody::V2(b) => {
                // Its approvals first: an unapproved genesis asks no node anything.
                let actors = self.check_genesis_v2(b)?;
                self.check_roster_size(&b.request.to_wire()).await?;
                (actors, self.nodes.count())
            }
        };
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
            nodes: (0..nodes).collect(),
            outcome: "accepted".into(),
            request_id: None,
            credential: Some(credential),
            detail: None,
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

    /// Relays `enroll` to node `node` (the genesis ceremony, ADR 0013): its enclave makes its
    /// node key, sealed under `kms_key_arn`. Asked again with the same key an enrolled enclave
    /// answers the same node key; its proxy refuses once it stores the key (`refused`). The
    /// answer is the enclave's word: the ceremony takes the node key from a verified document
    /// (`POST /v1/nodes/{node}/attest`).
    /// Each enrolment is recorded in the audit log with the credential that asked, the node,
    /// the KMS key and the outcome (a node key is made once: who chose its KMS key matters).
    pub async fn enroll_node(
        &self,
        node: &str,
        body: EnrollRequest,
        credential: String,
    ) -> Result<EnrolledNode, ApiError> {
        let node = self.node_index(node)?;
        let detail = format!("kms key {}", body.kms_key_arn);
        let result = self.enroll_at(node, body).await;
        let entry = AuditEntry {
            action: "enroll_node".into(),
            actors: vec![],
            key_id: None,
            payload_digests: vec![],
            path: vec![],
            nodes: vec![node],
            outcome: match &result {
                Ok(_) => "ok".into(),
                Err(e) => e.code.as_str().into(),
            },
            request_id: None,
            credential: Some(credential),
            detail: Some(detail),
        };
        self.db(move |s| s.append_audit(unix_now(), &entry)).await?;
        result
    }

    async fn enroll_at(&self, node: u16, body: EnrollRequest) -> Result<EnrolledNode, ApiError> {
        let request = protocol::EnclaveRequest::Enroll {
            kms_key_arn: body.kms_key_arn,
        };
        match self
            .nodes
            .call(node, &request, Duration::from_secs(60))
            .await
            .map_err(|e| err(ErrorCode::Refused, e.0))?
        {
            protocol::EnclaveResponse::Enrolled {
                node_key,
                kms_key_arn,
                ..
            } => Ok(EnrolledNode {
                node,
                node_key: Hex::from(&node_key),
                kms_key_arn,
            }),
            protocol::EnclaveResponse::Error(e) => {
                Err(err(ErrorCode::Refused, format!("node {node}: {e}")))
            }
            other => Err(err(
                ErrorCode::Internal,
                format!("node {node}: unexpected {other}"),
            )),
        }
    }

    /// Relays `attest` with the caller's nonce to node `node`: the document the ceremony
    /// verifies itself.
    pub async fn attest_node(
        &self,
        node: &str,
        body: AttestRequest,
    ) -> Result<NodeDocument, ApiError> {
        let node = self.node_index(node)?;
        if body.nonce.0.len() < MIN_NONCE_LEN || body.nonce.0.len() > protocol::MAX_NONCE_LEN {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!(
                    "a nonce has {MIN_NONCE_LEN} to {} bytes",
                    protocol::MAX_NONCE_LEN
                ),
            ));
        }
        let request = protocol::EnclaveRequest::Attest {
            nonce: Some(serde_bytes::ByteBuf::from(body.nonce.0)),
        };
        match self
            .nodes
            .call(node, &request, Duration::from_secs(30))
            .await
            .map_err(|e| err(ErrorCode::NoQuorum, e.0))?
        {
            protocol::EnclaveResponse::Attestation { document } => Ok(NodeDocument {
                node,
                document: Hex::from(&document),
            }),
            protocol::EnclaveResponse::Error(e) => {
                Err(err(ErrorCode::Refused, format!("node {node}: {e}")))
            }
            other => Err(err(
                ErrorCode::Internal,
                format!("node {node}: unexpected {other}"),
            )),
        }
    }

    fn node_index(&self, text: &str) -> Result<u16, ApiError> {
        text.parse::<u16>()
            .ok()
            .filter(|n| *n < self.nodes.count())
            .ok_or_else(|| {
                err(
                    ErrorCode::NotFound,
                    format!(
                        "no node {text} (nodes are 0 to {})",
                        self.nodes.count().saturating_sub(1)
                    ),
                )
            })
    }

    /// The genesis' roster lists one node per parent proxy this coordinator relays to; or it
    /// is given again after roster changes were committed (`cohort genesis restore` after the
    /// database was lost, issue 20), and node 0 reports a committed chain whose roster in force
    /// does, its inventory checked under the node key that roster lists for it.
    async fn check_roster_size(&self, g: &protocol::genesis::Genesis) -> Result<(), ApiError> {
        let nodes = usize::from(self.nodes.count());
        if g.roster.len() == nodes {
            return Ok(());
        }
        let mut nonce = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let reported = self.reported_first_page(g, 0, &nonce).await;
        let in_force = reported
            .as_ref()
            .ok()
            .and_then(|(_, rosters)| rosters.last())
            .map(|r| (r.version, r.roster.len()));
        match in_force {
            Some((version, n)) if version > 0 && n == nodes => Ok(()),
            _ => Err(err(
                ErrorCode::InvalidRequest,
                format!(
                    "the roster lists {} nodes; this coordinator relays to {nodes}{}",
                    g.roster.len(),
                    match (&reported, in_force) {
                        (Err(e), _) =>
                            format!(" (node 0 reports no committed roster: {})", e.message),
                        (_, Some((version, n))) =>
                            format!(" (node 0 is at roster version {version}, of {n} nodes)"),
                        _ => String::new(),
                    }
                ),
            )),
        }
    }

    /// The early checks of a genesis with a roster (ADR 0013); not relied on: every enclave
    /// checks it again, and finds its own index by its node key.
    fn check_genesis_v2(
        &self,
        body: &ApprovedJson<GenesisV2Json>,
    ) -> Result<Vec<String>, ApiError> {
        let g = body.request.to_wire();
        g.check()
            .map_err(|e| err(ErrorCode::InvalidRequest, format!("genesis: {e}")))?;
        let admins = keys_of(&body.request.admins, "admin")?;
        let wire = body.to_wire();
        check_approvals(&g, &wire.approvals, &admins, g.admin_quorum)
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
        let Ok(body) = serde_json::from_str::<GenesisBody>(&row.genesis) else {
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
            credential: None,
            detail: None,
        }
    }

    async fn initialise_steps(&self, body: &GenesisBody) -> Result<(), ApiError> {
        let resumed_with_aux = match body {
            GenesisBody::V1(_) => return Err(legacy_genesis()),
            GenesisBody::V2(b) => self.hand_out_genesis_v2(b).await?,
        };
        self.set_state(ClusterState::Initialising, "admitting peers".into(), None)
            .await;
        let refusals = self.nodes.admit_all().await;
        if let Some((node, peer, why)) = refusals.first() {
            return Err(err(
                ErrorCode::Refused,
                format!("node {node} refused peer {peer}: {why}"),
            ));
        }
        // A genesis every node already holds with its auxiliary info, each saying so in an
        // inventory signed by its roster node key (a coordinator whose database was lost,
        // given the pinned genesis again): done. An enclave restored with auxiliary info makes
        // no new safe primes, so waiting for them would never end.
        if resumed_with_aux {
            info!("every node holds this genesis and auxiliary info: resumed");
            self.nodes.check(self.settings.attest_interval).await;
            return Ok(());
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

    /// Gives every node the approved genesis with a roster. Each enclave finds its index by its
    /// node key; the answer must be the index the roster lists it at, with a receipt its node
    /// key signed. A node that already holds this genesis (a resumed genesis) counts as done
    /// when its status says it is this very node, operational, and its inventory, signed by
    /// the roster's node key, names this cluster and index. Returns whether every node held it
    /// already, with auxiliary info.
    async fn hand_out_genesis_v2(
        &self,
        body: &ApprovedJson<GenesisV2Json>,
    ) -> Result<bool, ApiError> {
        let approved = body.to_wire();
        let cluster = approved.request.cluster_id();
        let mut resumed_with_aux = 0;
        for node in 0..self.nodes.count() {
            let r = self
                .nodes
                .call(
                    node,
                    &protocol::EnclaveRequest::GenesisV2 {
                        request: approved.clone(),
                    },
                    Duration::from_secs(30),
                )
                .await
                .map_err(|e| err(ErrorCode::NoQuorum, e.0))?;
            match r {
                protocol::EnclaveResponse::GenesisAccepted {
                    node: found,
                    receipt,
                    ..
                } => {
                    if found != Some(node) {
                        return Err(err(
                            ErrorCode::Refused,
                            format!(
                                "node {node} took index {found:?}: its enclave is not the roster's node {node}"
                            ),
                        ));
                    }
                    // A node the genesis' roster does not list (one added since) holds a
                    // genesis already and answers `wrong_phase`; one that accepts it here is
                    // refused, never indexed out of the roster (helper-82, finding 2).
                    let Some(entry) = approved.request.roster.get(usize::from(node)) else {
                        return Err(err(
                            ErrorCode::Refused,
                            format!("node {node} took an index the genesis' roster does not list"),
                        ));
                    };
                    let key = &entry.node_key;
                    let message = protocol::genesis::genesis_receipt_message(&cluster, node);
                    let verified = <[u8; 32]>::try_from(key.as_slice())
                        .ok()
                        .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
                        .zip(ed25519_dalek::Signature::from_slice(&receipt).ok())
                        .is_some_and(|(vk, sig)| vk.verify_strict(&message, &sig).is_ok());
                    if !verified {
                        return Err(err(
                            ErrorCode::Refused,
                            format!(
                                "node {node}'s genesis receipt does not verify under its roster node key"
                            ),
                        ));
                    }
                }
                protocol::EnclaveResponse::Error(e)
                    if e.code == protocol::ErrorCode::WrongPhase =>
                {
                    if self.resumed(&approved.request, node, &e).await? {
                        resumed_with_aux += 1;
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
        Ok(resumed_with_aux == self.nodes.count())
    }

    /// A node that refused the genesis as done before: accepted only when its status says it
    /// is this very node of a cluster, operational, and its inventory (signed by the node key
    /// listed at `node` in the roster in force its committed chain makes of `genesis`, with a
    /// fresh nonce) names this cluster (attacker review helper-50, finding 3). Returns whether
    /// it holds auxiliary info.
    async fn resumed(
        &self,
        genesis: &protocol::genesis::Genesis,
        node: u16,
        e: &protocol::EnclaveError,
    ) -> Result<bool, ApiError> {
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
                format!("node {node} refused the genesis and is not node {node} of a cluster: {e}"),
            ));
        }
        // Checked under the roster in force its committed chain makes: after a node was
        // added, replaced or removed, the genesis' roster no longer lists it (issue 20).
        let mut nonce = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let (page, rosters) = self.reported_first_page(genesis, node, &nonce).await?;
        if rosters.last().map(|r| r.roster.len()) != Some(usize::from(self.nodes.count())) {
            return Err(err(
                ErrorCode::Refused,
                format!(
                    "node {node} is at roster version {}, whose roster does not list a node per \
                     parent proxy this coordinator relays to",
                    page.roster
                ),
            ));
        }
        Ok(page.aux)
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

/// A genesis without a roster (version 1): refused since ADR 0013 step 9, as a request and as
/// what an old database holds.
pub(super) fn legacy_genesis() -> ApiError {
    err(
        ErrorCode::InvalidRequest,
        "legacy_genesis: a genesis without a roster (version 1, before node keys) is refused: run \
         the genesis ceremony (cohort genesis); a database or enclave state from before node keys \
         cannot be used: start a new cluster (docs/operator-guide.md)",
    )
}
