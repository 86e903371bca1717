//! Driving a cluster through its parent proxies: genesis, peer admission, and sessions whose
//! envelopes are relayed with [`protocol::relay::Relay`]. Until the coordinator exists this is
//! the relay the CLI and the integration tests use.

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use protocol::policy::{Approved, Genesis};
use protocol::relay::Relay;
use protocol::session::{Outcome, PeerDocument, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse};
use rand::RngCore;
use serde_bytes::ByteBuf;
use tokio::task::JoinSet;

use coordinator::client::HttpClient;

/// Time limit of one request to an enclave during a session.
pub const SESSION_STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// The proxies of a cluster, by node index.
#[derive(Clone)]
pub struct ClusterClient {
    http: HttpClient,
    proxies: Vec<String>,
}

/// A fresh random 32-byte session id.
pub fn new_session_id() -> ByteBuf {
    let mut b = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    ByteBuf::from(b)
}

impl ClusterClient {
    /// A client for proxies at `proxies` (node `i` behind `proxies[i]`).
    pub fn new(proxies: Vec<String>) -> Self {
        Self {
            // One protocol step can take tens of CPU-seconds (auxiliary info with five parties
            // on a loaded machine); the coordinator will bound rounds by its own deadlines.
            http: HttpClient::new().with_timeout(SESSION_STEP_TIMEOUT),
            proxies,
        }
    }

    /// Number of nodes.
    pub fn nodes(&self) -> u16 {
        self.proxies.len() as u16
    }

    /// Sends one request to node `node`.
    pub async fn call(
        &self,
        node: u16,
        request: &EnclaveRequest,
    ) -> anyhow::Result<EnclaveResponse> {
        let proxy = self
            .proxies
            .get(usize::from(node))
            .with_context(|| format!("no node {node}"))?;
        self.http.enclave_call(proxy, request).await
    }

    /// Runs genesis on every node; returns their receipts.
    pub async fn genesis(&self, request: &Approved<Genesis>) -> anyhow::Result<Vec<ByteBuf>> {
        let mut receipts = Vec::new();
        for node in 0..self.nodes() {
            let r = EnclaveRequest::Genesis {
                request: request.clone(),
                node,
            };
            match self.call(node, &r).await? {
                EnclaveResponse::GenesisAccepted { receipt, .. } => receipts.push(receipt),
                EnclaveResponse::Error(e) => bail!("node {node} refused genesis: {e}"),
                other => bail!("node {node}: unexpected {other}"),
            }
        }
        Ok(receipts)
    }

    /// Fetches every node's attestation document and has every node verify and admit the
    /// others. Returns the nodes each node refused.
    pub async fn admit_peers(&self) -> anyhow::Result<BTreeMap<u16, Vec<(u16, String)>>> {
        let mut documents = Vec::new();
        for node in 0..self.nodes() {
            match self
                .call(node, &EnclaveRequest::Attest { nonce: None })
                .await
            {
                Ok(EnclaveResponse::Attestation { document }) => {
                    documents.push(PeerDocument { node, document })
                }
                Ok(other) => bail!("node {node}: unexpected {other} to attest"),
                Err(_) => continue, // unreachable nodes are simply not introduced
            }
        }
        let mut refusals = BTreeMap::new();
        for node in 0..self.nodes() {
            let others: Vec<PeerDocument> = documents
                .iter()
                .filter(|d| d.node != node)
                .cloned()
                .collect();
            match self
                .call(node, &EnclaveRequest::AdmitPeers { documents: others })
                .await
            {
                Ok(EnclaveResponse::PeersAdmitted { refused, .. }) => {
                    refusals.insert(node, refused);
                }
                Ok(EnclaveResponse::Error(e)) => bail!("node {node} cannot admit peers: {e}"),
                Ok(other) => bail!("node {node}: unexpected {other}"),
                Err(_) => {}
            }
        }
        Ok(refusals)
    }

    /// Waits (printing progress) until every node has safe primes ready for auxiliary info.
    pub async fn wait_for_primes(&self) -> anyhow::Result<()> {
        wait_for_primes(self).await
    }

    /// Runs one session among `participants` and returns each node's outcome. Nodes that
    /// cannot be reached or refuse get a `Failed` outcome.
    pub async fn run_session(
        &self,
        session: &ByteBuf,
        participants: &[u16],
        kind: &SessionKind,
    ) -> anyhow::Result<BTreeMap<u16, Outcome>> {
        let mut relay = Relay::new(participants);
        let mut tasks = JoinSet::new();
        for p in participants {
            let (client, node) = (self.clone(), *p);
            let request = EnclaveRequest::StartSession {
                session: session.clone(),
                participants: participants.to_vec(),
                kind: kind.clone(),
            };
            tasks.spawn(async move { (node, client.call(node, &request).await) });
        }
        loop {
            while let Some(joined) = tasks.join_next().await {
                let (node, result) = joined.context("relay task panicked")?;
                absorb(&mut relay, node, result);
            }
            let mut any = false;
            while let Some((node, envelopes)) = relay.next_delivery() {
                any = true;
                let client = self.clone();
                let request = EnclaveRequest::Deliver {
                    session: session.clone(),
                    envelopes,
                };
                tasks.spawn(async move { (node, client.call(node, &request).await) });
            }
            if !any {
                break;
            }
        }
        Ok(relay.outcomes().clone())
    }
}

fn absorb(relay: &mut Relay, node: u16, result: anyhow::Result<EnclaveResponse>) {
    let fail = |message: String| Outcome::Failed {
        code: "unreachable".into(),
        message,
        culprits: vec![],
    };
    match result {
        Ok(EnclaveResponse::Session(update)) => relay.absorb(node, update),
        Ok(EnclaveResponse::Error(e)) => relay.fail(
            node,
            Outcome::Failed {
                code: e.code.to_string(),
                message: e.message,
                culprits: vec![],
            },
        ),
        Ok(other) => relay.fail(node, fail(format!("unexpected {other}"))),
        Err(e) => relay.fail(node, fail(e.to_string())),
    }
}

async fn wait_for_primes(client: &ClusterClient) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_report = Instant::now() - Duration::from_secs(60);
    loop {
        let mut ready = 0;
        for node in 0..client.nodes() {
            if let Ok(EnclaveResponse::Status {
                primes_ready: true, ..
            }) = client.call(node, &EnclaveRequest::Status).await
            {
                ready += 1;
            }
        }
        if ready == client.nodes() {
            println!(
                "      safe primes ready on every node after {} s",
                started.elapsed().as_secs()
            );
            return Ok(());
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            println!(
                "      generating safe primes in the enclaves: {ready}/{} ready ({} s)",
                client.nodes(),
                started.elapsed().as_secs()
            );
            last_report = Instant::now();
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("safe primes not ready after 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
