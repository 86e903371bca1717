//! Helpers for the workspace integration tests: find the binaries, start enclaves and proxies
//! as real processes with drop guards, wait for them.

pub mod kms;
pub mod relay;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cli::client::HttpClient;
use tokio::process::{Child, Command};

/// The directory holding the workspace binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    let dir = cli::sim::sibling_bin_dir().expect("test executable has a directory");
    for bin in [
        "cohort",
        "cohort-enclave",
        "cohort-parent-proxy",
        "cohort-coordinator",
        "cohort-kms",
    ] {
        assert!(
            dir.join(bin).is_file(),
            "{} is missing: run `cargo build --workspace --bins` before the tests (scripts/test.sh does)",
            dir.join(bin).display()
        );
    }
    dir
}

/// Path of one workspace binary.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// A process that is killed, with its whole process group, when dropped.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// Where its output goes.
    pub log: PathBuf,
}

impl Proc {
    /// Starts `program` with `args`, output to `log`.
    pub fn spawn(program: &Path, args: &[String], log: &Path) -> anyhow::Result<Self> {
        let out = std::fs::File::create(log)?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            // Its own process group: dropping the guard kills whatever it started too.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        Ok(Self {
            child,
            log: log.to_path_buf(),
        })
    }

    /// The process's output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process (and its group) and waits for it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// A simulated CA and the expected measurements of the enclave binary, in `dir`.
pub struct SimEnv {
    /// The directory.
    pub dir: PathBuf,
    /// The CA directory.
    pub ca_dir: PathBuf,
    /// DER of the simulated root.
    pub root_der: Vec<u8>,
    /// Expected PCR0..2 of `cohort-enclave`.
    pub pcrs: Vec<Vec<u8>>,
}

impl SimEnv {
    /// Creates the CA in `dir/ca` and measures the enclave binary.
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        let ca_dir = dir.join("ca");
        let ca = attestation::sim::SimulatedCa::load_or_generate(&ca_dir)?;
        let pcrs = attestation::sim::simulated_pcrs(&attestation::sim::measure_file(&bin(
            "cohort-enclave",
        ))?);
        Ok(Self {
            dir: dir.to_path_buf(),
            ca_dir,
            root_der: ca.root_der().to_vec(),
            pcrs: (0..3).map(|i| pcrs[&i].clone()).collect(),
        })
    }

    /// Starts an enclave listening on `dir/NAME.sock`.
    pub fn enclave(&self, name: &str) -> anyhow::Result<(Proc, String)> {
        let socket = format!("unix:{}", self.dir.join(format!("{name}.sock")).display());
        let args = vec![
            "--mode".into(),
            "simulated".into(),
            "--listen".into(),
            socket.clone(),
            "--sim-ca".into(),
            self.ca_dir.display().to_string(),
            "--module-id".into(),
            name.into(),
        ];
        let p = Proc::spawn(
            &bin("cohort-enclave"),
            &args,
            &self.dir.join(format!("{name}.log")),
        )?;
        Ok((p, socket))
    }

    /// Starts a proxy for `enclave` expecting `pcr0` (hex); returns it and its base URL.
    pub async fn proxy(
        &self,
        name: &str,
        enclave: &str,
        pcr0: &str,
    ) -> anyhow::Result<(Proc, String)> {
        let addr_file = self.dir.join(format!("{name}.addr"));
        let _ = std::fs::remove_file(&addr_file);
        let args = vec![
            "--enclave".into(),
            enclave.into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--addr-file".into(),
            addr_file.display().to_string(),
            "--root".into(),
            self.ca_dir.join("root.pem").display().to_string(),
            "--pcr0".into(),
            pcr0.into(),
            "--reattest-secs".into(),
            "2".into(),
        ];
        let mut p = Proc::spawn(
            &bin("cohort-parent-proxy"),
            &args,
            &self.dir.join(format!("{name}.log")),
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file) {
                break a;
            }
            if let Some(status) = p.child.try_wait()? {
                bail!("proxy exited ({status}): {}", p.output());
            }
            if Instant::now() > deadline {
                bail!("proxy did not start: {}", p.output());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        Ok((p, format!("http://{}", addr.trim())))
    }
}

/// Polls `url/healthz` until its JSON `status` is `want`; returns the body.
pub async fn wait_for_status(
    url: &str,
    want: &str,
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    let client = HttpClient::new();
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        if let Ok((_, body)) = client.get(&format!("{url}/healthz")).await {
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            if v["status"] == want {
                return Ok(v);
            }
            last = v.to_string();
        }
        if Instant::now() > deadline {
            bail!("{url} never reported {want}; last health: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Now, since the epoch.
pub fn now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A bare relay through the proxies of a simulated cluster, for tests that drive the enclaves
/// directly (genesis, admission, sessions) instead of through the coordinator: the
/// coordinator's own node calls and session relay, without its API, store or policy checks.
pub struct ClusterClient {
    nodes: std::sync::Arc<coordinator::nodes::Nodes>,
}

/// Time limit of one enclave call in a test session (aux info on a loaded machine is slow).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(300);

impl ClusterClient {
    /// A client for the proxies of `info`, verifying documents against its root and PCRs.
    pub fn new(info: &cli::sim::ClusterInfo) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(&info.root_pem_path)?;
        let mut policy = attestation::Policy::default()
            .with_root(attestation::sim::pem_to_der(&pem).map_err(|e| anyhow::anyhow!("{e}"))?);
        for (i, pcr) in info.pcrs.iter().enumerate() {
            policy = policy.allow_pcr(i, hex::decode(pcr)?);
        }
        let proxies = info.nodes.iter().map(|n| n.proxy_url.clone()).collect();
        Ok(Self {
            nodes: std::sync::Arc::new(coordinator::nodes::Nodes::new(proxies, policy)),
        })
    }

    /// Number of nodes.
    pub fn nodes(&self) -> u16 {
        self.nodes.count()
    }

    /// Sends one request to node `node`.
    pub async fn call(
        &self,
        node: u16,
        request: &protocol::EnclaveRequest,
    ) -> anyhow::Result<protocol::EnclaveResponse> {
        self.nodes
            .call(node, request, STEP_TIMEOUT)
            .await
            .map_err(|e| anyhow::anyhow!(e.0))
    }

    /// Founds the cluster (ADR 0013) by the enclaves' own requests, without the coordinator's
    /// ceremony: enrolls every node under its KMS key in `info`, builds a genesis listing the
    /// node keys they answer (admins `admins`, approved by `signers`, quorum `quorum`) and hands
    /// it to every node. Returns the approved genesis and each node's genesis receipt.
    pub async fn found(
        &self,
        info: &cli::sim::ClusterInfo,
        name: &str,
        admins: &[ed25519_dalek::SigningKey],
        signers: &[ed25519_dalek::SigningKey],
        quorum: u16,
    ) -> anyhow::Result<(
        protocol::policy::Approved<protocol::genesis::Genesis>,
        Vec<serde_bytes::ByteBuf>,
    )> {
        let mut roster = Vec::new();
        for (node, n) in (0..self.nodes()).zip(&info.nodes) {
            let kms_key_arn = protocol::KmsKeyArn::parse(&n.kms_key_arn)?;
            let r = protocol::EnclaveRequest::Enroll { kms_key_arn };
            match self.call(node, &r).await? {
                protocol::EnclaveResponse::Enrolled {
                    node_key,
                    kms_key_arn,
                    ..
                } => roster.push(protocol::genesis::RosterEntry {
                    node_key,
                    kms_key_arn,
                    pcr3: None,
                    pcr4: None,
                }),
                other => bail!("node {node}: {other:?}"),
            }
        }
        let pcr = |i: usize| hex::decode(&info.pcrs[i]).map(serde_bytes::ByteBuf::from);
        let genesis = protocol::genesis::Genesis {
            v: protocol::genesis::GENESIS_VERSION,
            name: name.into(),
            admins: admins
                .iter()
                .map(|k| serde_bytes::ByteBuf::from(k.verifying_key().to_bytes().to_vec()))
                .collect(),
            admin_quorum: quorum,
            image: protocol::genesis::Image {
                pcr0: pcr(0)?,
                pcr1: pcr(1)?,
                pcr2: pcr(2)?,
            },
            roster,
        };
        let approved = cli::requests::approve(&genesis, signers);
        let mut receipts = Vec::new();
        for node in 0..self.nodes() {
            let r = protocol::EnclaveRequest::GenesisV2 {
                request: approved.clone(),
            };
            match self.call(node, &r).await? {
                protocol::EnclaveResponse::GenesisAccepted { receipt, .. } => {
                    receipts.push(receipt)
                }
                other => bail!("node {node}: {other:?}"),
            }
        }
        Ok((approved, receipts))
    }

    /// Has every node verify and admit the others; returns the refusals (node, peer, why).
    pub async fn admit_peers(&self) -> Vec<(u16, u16, String)> {
        self.nodes.admit_all().await
    }

    /// Runs one session among `participants`, relayed round by round; returns each node's
    /// outcome.
    pub async fn run_session(
        &self,
        session: &serde_bytes::ByteBuf,
        participants: &[u16],
        kind: &protocol::session::SessionKind,
    ) -> std::collections::BTreeMap<u16, protocol::session::Outcome> {
        coordinator::nodes::run_session(&self.nodes, session, participants, kind, STEP_TIMEOUT)
            .await
            .outcomes
    }
}

/// The compressed public key of the non-hardened BIP32 child of an ECDSA key, derived by the
/// `bip32` crate (independently of the cluster).
///
/// # Panics
/// On malformed inputs (test code).
pub fn bip32_child(master: &[u8], chain_code: &[u8], path: &[u32]) -> Vec<u8> {
    let attrs = bip32::ExtendedKeyAttrs {
        depth: 0,
        parent_fingerprint: [0; 4],
        child_number: bip32::ChildNumber(0),
        chain_code: chain_code.try_into().expect("a 32-byte chain code"),
    };
    let mut xpub = bip32::XPub::new(
        k256::ecdsa::VerifyingKey::from_sec1_bytes(master).expect("a secp256k1 public key"),
        attrs,
    );
    for i in path {
        xpub = xpub
            .derive_child(bip32::ChildNumber::new(*i, false).expect("a non-hardened index"))
            .expect("a derivable child");
    }
    xpub.public_key().to_encoded_point(true).as_bytes().to_vec()
}

/// Verifies an ECDSA signature (r || s) over a digest with `k256`.
///
/// # Panics
/// If it does not verify.
pub fn verify_ecdsa(public_key: &[u8], digest: &[u8; 32], signature: &[u8]) {
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    let vk =
        k256::ecdsa::VerifyingKey::from_sec1_bytes(public_key).expect("a secp256k1 public key");
    let sig = k256::ecdsa::Signature::from_slice(signature).expect("a 64-byte signature");
    vk.verify_prehash(digest, &sig).expect("verifies");
}

/// Verifies an Ed25519 signature with `ed25519-dalek` (strict).
///
/// # Panics
/// If it does not verify.
pub fn verify_eddsa(public_key: &[u8], message: &[u8], signature: &[u8]) {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(public_key.try_into().expect("a 32-byte key"))
        .expect("an Ed25519 public key");
    vk.verify_strict(
        message,
        &ed25519_dalek::Signature::from_slice(signature).expect("a 64-byte signature"),
    )
    .expect("verifies");
}

/// Every record of a coordinator's audit log, page by page.
///
/// # Panics
/// If a page cannot be fetched (test code).
pub async fn audit_log(api: &cli::client::ApiClient) -> Vec<coordinator::api::AuditRecordJson> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page: coordinator::api::AuditPage = api
            .get(&format!("/v1/audit?after={after}&limit=100"))
            .await
            .expect("an audit page");
        out.extend(page.records);
        match page.next_after {
            Some(n) => after = n,
            None => return out,
        }
    }
}

/// What the genesis ceremony expects of a simulated cluster's nodes (its root, image and KMS
/// keys, from its `cluster.json`).
///
/// # Panics
/// If the cluster's description cannot be read (test code).
pub fn expectations(cluster: &cli::sim::SimCluster) -> cli::ceremony::Expectations {
    cli::ceremony::Expectations::of_sim_dir(&cluster.dir).expect("the cluster's cluster.json")
}

/// Waits (up to 90 s) until every node is healthy.
///
/// # Panics
/// If they are not by then (test code).
pub async fn wait_all_healthy(api: &cli::client::ApiClient) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(s) = api
            .get::<coordinator::api::ClusterStatus>("/v1/cluster")
            .await
            && s.nodes.iter().all(|n| n.healthy)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes did not all come back: {:?}",
            api.get::<coordinator::api::ClusterStatus>("/v1/cluster")
                .await
                .map(|s| s.nodes)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 60 s) until every node is reachable and attested (before genesis none is
/// healthy).
///
/// # Panics
/// If they are not by then (test code).
pub async fn wait_up(api: &cli::client::ApiClient) {
    wait_up_nodes(api, None).await;
}

/// [`wait_up`] for the nodes `nodes` names alone (`None`: every node), for a cluster with a
/// node down.
///
/// # Panics
/// If they are not all reachable and attested within 60 s (test code).
pub async fn wait_up_nodes(api: &cli::client::ApiClient, nodes: Option<&[u16]>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let up = |s: &coordinator::api::ClusterStatus| {
        s.nodes.iter().enumerate().all(|(i, n)| {
            let waited = nodes.is_none_or(|w| u16::try_from(i).is_ok_and(|i| w.contains(&i)));
            !waited || (n.reachable && n.attested)
        })
    };
    while !api
        .get::<coordinator::api::ClusterStatus>("/v1/cluster")
        .await
        .is_ok_and(|s| up(&s))
    {
        assert!(
            Instant::now() < deadline,
            "the nodes {nodes:?} did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A 3-node simulated cluster's options in a new directory named `prefix…` (kept after the run
/// with COHORT_KEEP_DIR=1, for every process's log): the directory guard and the options.
///
/// # Panics
/// If the directory cannot be made (test code).
pub fn sim_options(prefix: &str) -> (tempfile::TempDir, cli::sim::SimOptions) {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .disable_cleanup(std::env::var_os("COHORT_KEEP_DIR").is_some())
        .tempdir()
        .expect("a temporary directory");
    eprintln!("cluster directory: {}", dir.path().display());
    let mut options = cli::sim::SimOptions::new(3, dir.path().to_path_buf()).expect("options");
    options.bin_dir = bin_dir();
    options.fixture_primes = true;
    (dir, options)
}

/// The identity node index `node` was last attested with, as the coordinator shows it.
///
/// # Panics
/// If the coordinator does not answer (test code).
pub async fn identity_of(api: &cli::client::ApiClient, node: usize) -> Option<String> {
    let status: coordinator::api::ClusterStatus =
        api.get("/v1/cluster").await.expect("the cluster status");
    status.nodes[node]
        .identity
        .as_ref()
        .map(|k| hex::encode(&k.0))
}

/// Waits (up to 90 s) until node index `node` shows another identity than `before` (the new
/// process was attested) and every node is healthy again.
///
/// # Panics
/// If it does not by then (test code).
pub async fn wait_restarted(api: &cli::client::ApiClient, node: usize, before: Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while identity_of(api, node).await == before {
        assert!(
            Instant::now() < deadline,
            "node {node} was never attested again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_admitted(api, deadline).await;
}

/// Waits (until `deadline`) until every node is healthy and every pair of nodes admitted each
/// other's current identity (the coordinator's admission round after a restart): what a
/// quorum needs.
///
/// # Panics
/// If they are not by then (test code).
pub async fn wait_admitted(api: &cli::client::ApiClient, deadline: Instant) {
    wait_all_healthy(api).await;
    // Healthy is not yet in quorums: every pair of nodes must have admitted each other's
    // current identity (the coordinator's admission round after the restart).
    loop {
        let status: coordinator::api::ClusterStatus =
            api.get("/v1/cluster").await.expect("the cluster status");
        let n = status.nodes.len();
        if status
            .nodes
            .iter()
            .all(|s| s.healthy && s.known_to.len() == n - 1)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the peers never all admitted each other: {:?}",
            status.nodes
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The files of the database of the simulated cluster in `cluster_dir` (SQLite's file and its
/// journal files). Panics if there are none.
fn coordinator_database_files(cluster_dir: &Path) -> Vec<PathBuf> {
    let data = cluster_dir.join("coordinator");
    let files: Vec<PathBuf> = std::fs::read_dir(&data)
        .expect("the coordinator's data directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("coordinator.db"))
        })
        .collect();
    assert!(!files.is_empty(), "no database in {}", data.display());
    files
}

/// Deletes the database of the simulated cluster in `cluster_dir` (the coordinator stopped
/// first): the disaster-recovery drills' fault. Panics if there was none.
pub fn lose_coordinator_database(cluster_dir: &Path) {
    let files = coordinator_database_files(cluster_dir);
    for path in files {
        std::fs::remove_file(&path).expect("the database file removed");
    }
}

/// Copies the database of the simulated cluster in `cluster_dir` (the coordinator stopped
/// first) into the directory `to`, made here: a snapshot an operator would restore.
pub fn snapshot_coordinator_database(cluster_dir: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("the snapshot directory");
    let files = coordinator_database_files(cluster_dir);
    for path in files {
        let name = path.file_name().expect("a file name");
        std::fs::copy(&path, to.join(name)).expect("the database file copied");
    }
}

/// Replaces the database of the simulated cluster in `cluster_dir` (the coordinator stopped
/// first) with the snapshot in `from` ([`snapshot_coordinator_database`]).
pub fn restore_coordinator_database(cluster_dir: &Path, from: &Path) {
    for path in coordinator_database_files(cluster_dir) {
        std::fs::remove_file(&path).expect("the database file removed");
    }
    let data = cluster_dir.join("coordinator");
    for entry in std::fs::read_dir(from).expect("the snapshot directory") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().expect("a file name");
        std::fs::copy(&path, data.join(name)).expect("the database file restored");
    }
}
