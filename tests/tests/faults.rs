//! Fault injection against a simulated cluster of real processes: an enclave crash, a proxy
//! crash, a coordinator crash and restart, a slow node, a partitioned node, a KMS outage and a
//! full disk under the coordinator's database, each during a run of signing requests (ECDSA
//! from presignatures, full ECDSA, EdDSA) from clients that resubmit a failed request under its
//! idempotency key, as a custody client does.
//!
//! After every fault, and once more at the end, the run must show that signing went on (every
//! request completes, retries included, since a quorum remained), that nothing was signed twice
//! (one signature per request, whatever the attempts; one `ok` audit record per request), that
//! no presignature or FROST nonce was used twice (no ECDSA `r` and no EdDSA `R` repeats across
//! the whole run), and that nothing acknowledged was lost (every answer a client got is what the
//! coordinator still returns for its idempotency key). Failure rates (first attempts, and after
//! resubmission) are printed and written to `fault-report.json` (`COHORT_FAULT_REPORT`, else
//! cargo's test temp dir).
//!
//! The coordinator's SQLite database lives on a small tmpfs mounted in a mount namespace of the
//! test's own (`unshare`, no root needed), so the disk really fills. No fault depends on timing
//! to bite: the full disk is held until a client has been refused a write (`storage`), after the
//! write-ahead log was emptied so that the next write needs new blocks. Slow and partitioned links
//! are TCP relays between the coordinator and one node's proxy (`cohort_tests::relay`).

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cli::ops;
use cli::sim::{SimCluster, SimOptions};
use cohort_tests::relay::{FaultRelay, Link};
use coordinator::api::{
    ApprovedJson, AuditVerification, ClusterStatus, KeyInfo, NodeStatus, PresignatureUse,
    SignRequestJson, SignResult,
};
use coordinator::client::{ApiCallError, ApiClient};
use ed25519_dalek::SigningKey;
use protocol::policy::{HashFunction, Payload, Scheme};
use serde::Serialize;
use tokio::task::JoinSet;

const CLUSTER: &str = "fault-test";
/// Requests per scenario (every eighth full ECDSA, every eighth presigned ECDSA, the rest EdDSA).
const REQUESTS: usize = 40;
/// How long a client keeps resubmitting one request.
const CLIENT_PATIENCE: Duration = Duration::from_secs(120);
/// The tmpfs under the coordinator's database.
const DB_FS_BYTES: u64 = 16 << 20;
/// The longest a fault is held while waiting for it to show (a failure if it never does).
const HIT_PATIENCE: Duration = Duration::from_secs(120);

/// When a scenario's fault is healed.
#[derive(Debug, Clone, Copy)]
enum Heal {
    /// Once every request has finished.
    AtEnd,
    /// This long after it struck, while clients still run.
    After(Duration),
    /// Once a client has been answered with this error code: the fault has demonstrably hit.
    OnceAnswered(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    EcdsaPresigned,
    EcdsaFull,
    Eddsa,
}

/// What one client saw of one request.
#[derive(Debug, Clone)]
struct Outcome {
    kind: Kind,
    body: ApprovedJson<SignRequestJson>,
    /// Every answer or error, in order.
    attempts: Vec<Result<SignResult, String>>,
    /// First submission to final answer.
    latency: Duration,
}

impl Outcome {
    fn completed(&self) -> Option<&SignResult> {
        self.attempts.iter().find_map(|a| match a {
            Ok(r) if r.status == "completed" => Some(r),
            _ => None,
        })
    }

    fn idem(&self) -> String {
        hex::encode(&self.body.request.request_id.0)
    }
}

/// One scenario's figures.
#[derive(Debug, Serialize)]
struct Report {
    scenario: String,
    requests: usize,
    /// Requests whose first submission failed (what a client that never resubmits sees).
    first_attempt_failures: usize,
    first_attempt_failure_rate: f64,
    /// Requests still failed after resubmission.
    final_failures: usize,
    final_failure_rate: f64,
    /// Submissions in all.
    submissions: usize,
    /// Error codes (or `transport`) of failed submissions.
    errors: BTreeMap<String, usize>,
    /// Signatures that came from a presignature.
    presigned: usize,
    /// Signatures the coordinator had to fail over for (more than one session).
    failed_over: usize,
    p50_ms: u128,
    max_ms: u128,
    seconds: f64,
}

struct Keys {
    admins: Vec<SigningKey>,
    approvers: Vec<SigningKey>,
}

/// A tmpfs in a mount namespace of its own, kept alive by a sleeping process; programs join the
/// namespace through `nsenter`, and the test reaches the files through `/proc/PID/root`.
struct SmallDisk {
    holder: std::process::Child,
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, bytes: u64) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let script = r#"mount -t tmpfs -o size="$2" cohort-faults "$1" && touch "$1/.mounted" && exec sleep 86400"#;
        let holder = std::process::Command::new("unshare")
            .args([
                "--user",
                "--map-root-user",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(dir)
            .arg(bytes.to_string())
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("unshare (util-linux) runs");
        let disk = Self {
            holder,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !disk.path(".mounted").exists() {
            assert!(
                Instant::now() < deadline,
                "could not mount a tmpfs in a user and mount namespace (unshare --user --mount)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        disk
    }

    /// `name` in the tmpfs, as the test sees it.
    fn path(&self, name: &str) -> PathBuf {
        let inner = self.dir.join(name);
        PathBuf::from(format!("/proc/{}/root", self.holder.id()))
            .join(inner.strip_prefix("/").unwrap())
    }

    /// Fills the file system to the last byte; returns the bytes written.
    fn fill(&self) -> u64 {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path("filler")).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        // Every last block, in ever smaller writes.
        let mut size = 32 * 1024;
        while size > 0 {
            match f.write(&chunk[..size]) {
                Ok(n) if n > 0 => written += n as u64,
                _ => size /= 2,
            }
        }
        let _ = f.sync_all();
        written
    }

    fn free(&self) {
        std::fs::remove_file(self.path("filler")).unwrap();
    }

    /// Moves the write-ahead log of the SQLite database `name` into the database and truncates
    /// it to zero bytes, so the next write needs new blocks: a log with room left from earlier
    /// writes would absorb writes on a full disk, and the fault would not bite.
    ///
    /// Done by SQLite inside the namespace (Python's `sqlite3`): a connection opened through
    /// `/proc/PID/root` follows that link (SQLite resolves symbolic links in database paths)
    /// to the host's side of the mount point and checkpoints another, empty database. It did,
    /// until stop 29: the log kept its 4 MB, and a full disk refused no write.
    fn truncate_wal(&self, name: &str) {
        const SCRIPT: &str = "import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], timeout=10)
for _ in range(1500):
    if c.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()[0] == 0:
        sys.exit(0)
    time.sleep(0.02)
sys.exit(1)";
        let status = std::process::Command::new("nsenter")
            .args(self.nsenter())
            .args(["python3", "-c", SCRIPT])
            .arg(self.dir.join(name))
            .status()
            .expect("nsenter and python3 run");
        assert!(
            status.success(),
            "the coordinator's write-ahead log could not be checkpointed"
        );
        // The coordinator may append again right away; what matters is that the log has no room
        // left from before. Whether the fault bit, the caller checks with a write.
    }

    /// The command prefix that runs a program in the namespace.
    fn nsenter(&self) -> Vec<String> {
        vec![
            "--target".into(),
            self.holder.id().to_string(),
            "--user".into(),
            "--mount".into(),
            "--preserve-credentials".into(),
            "--".into(),
        ]
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

struct Harness {
    cluster: SimCluster,
    api: ApiClient,
    relays: Vec<FaultRelay>,
    disk: SmallDisk,
    keys: Keys,
    ecdsa: KeyInfo,
    eddsa: KeyInfo,
    outcomes: Vec<Outcome>,
    reports: Vec<Report>,
    serial: usize,
    /// The cluster id the ceremony approved: what every request names.
    cluster_id: protocol::genesis::ClusterId,
    _dir: tempfile::TempDir,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    Kill(&'static str),
    KillCoordinator,
    SlowLink(usize, Duration),
    Partition(usize),
    KmsOutage {
        restart_enclave: usize,
    },
    FullDisk,
    /// Node `cut` is cut off from the coordinator while node `restarted`'s enclave restarts
    /// and is admitted again by the peers the coordinator reaches; then `cut` comes back and
    /// node `down`'s proxy goes down, so that `cut` and `restarted` must sign together.
    MissedRestart {
        cut: usize,
        restarted: usize,
        down: usize,
    },
}

impl Harness {
    async fn start() -> Self {
        // COHORT_FAULT_DIR keeps the cluster's directory (every process's log) after the run.
        let guard = match std::env::var_os("COHORT_FAULT_DIR") {
            Some(d) => {
                std::fs::create_dir_all(&d).unwrap();
                tempfile::Builder::new()
                    .prefix("faults-")
                    .disable_cleanup(true)
                    .tempdir_in(d)
                    .unwrap()
            }
            None => tempfile::tempdir().unwrap(),
        };
        let dir = guard.path().to_path_buf();
        eprintln!("cluster directory: {}", dir.display());
        let mut options = SimOptions::new(3, dir.clone()).unwrap();
        options.bin_dir = cohort_tests::bin_dir();
        options.fixture_primes = true;
        let mut cluster = SimCluster::start(&options).await.unwrap();

        // The coordinator moves behind the relays, onto the small disk.
        let disk = SmallDisk::mount(&dir.join("db"), DB_FS_BYTES);
        let relays = cohort_tests::relay::put_behind_relays(&mut cluster).await;
        let prefix = disk.nsenter();
        let store = format!("sqlite:{}", disk.dir.join("coordinator.db").display());
        cluster
            .edit_command("coordinator", |program, args| {
                let mut wrapped = prefix.clone();
                wrapped.push(program.display().to_string());
                wrapped.append(args);
                wrapped.extend(
                    [
                        "--store",
                        &store,
                        "--sign-round-timeout-ms",
                        "2500",
                        "--sign-deadline-ms",
                        "12000",
                        "--pool-level",
                        "2",
                        "--health-interval-ms",
                        "500",
                    ]
                    .map(String::from),
                );
                *args = wrapped;
                *program = PathBuf::from("nsenter");
            })
            .unwrap();
        cluster.restart("coordinator").await.unwrap();
        let api = cluster.info.api().unwrap();
        wait_ready_api(&api).await;

        let keys = Keys {
            admins: (0..3)
                .map(|i| SigningKey::from_bytes(&[40 + i; 32]))
                .collect(),
            approvers: (0..3)
                .map(|i| SigningKey::from_bytes(&[50 + i; 32]))
                .collect(),
        };
        let trust = ops::genesis(
            &api,
            &cohort_tests::expectations(&cluster),
            CLUSTER,
            &keys.admins[1..],
            2,
        )
        .await
        .unwrap();
        let approvers: Vec<[u8; 32]> = keys
            .approvers
            .iter()
            .map(|k| k.verifying_key().to_bytes())
            .collect();
        let mut created = Vec::new();
        for (name, scheme) in [
            ("ecdsa", Scheme::EcdsaSecp256k1),
            ("eddsa", Scheme::EddsaEd25519),
        ] {
            created.push(
                ops::create_key(
                    &api,
                    trust.cluster_id(),
                    name,
                    scheme,
                    2,
                    &keys.admins[1..],
                    &approvers,
                    2,
                )
                .await
                .unwrap(),
            );
        }
        let eddsa = created.pop().unwrap();
        let ecdsa = created.pop().unwrap();
        Self {
            cluster,
            api,
            relays,
            disk,
            keys,
            ecdsa,
            eddsa,
            outcomes: Vec::new(),
            reports: Vec::new(),
            serial: 0,
            cluster_id: trust.cluster_id(),
            _dir: guard,
        }
    }

    fn bodies(&mut self) -> Vec<(Kind, ApprovedJson<SignRequestJson>)> {
        (0..REQUESTS)
            .map(|i| {
                self.serial += 1;
                let n = self.serial;
                // Full ECDSA signs a bare digest; presigned ECDSA a preimage the enclaves hash.
                let (kind, key, payload, presignature) = match i % 8 {
                    0 => (
                        Kind::EcdsaFull,
                        "ecdsa",
                        Payload::raw(digest(n)),
                        PresignatureUse::Never,
                    ),
                    1 => (
                        Kind::EcdsaPresigned,
                        "ecdsa",
                        Payload::hashed(HashFunction::Sha256, preimage(n)),
                        PresignatureUse::Prefer,
                    ),
                    _ => (
                        Kind::Eddsa,
                        "eddsa",
                        Payload::raw(format!("fault run {n}").into_bytes()),
                        PresignatureUse::Never,
                    ),
                };
                let body = ops::sign_body(
                    self.cluster_id,
                    key,
                    &[],
                    vec![payload],
                    &self.keys.approvers[1..],
                    Some(presignature),
                );
                (kind, body)
            })
            .collect()
    }

    /// Runs one scenario: `REQUESTS` requests from four clients; the fault strikes once
    /// `after` requests have finished, and heals `heal_in` later (while clients still run) or,
    /// without it, once every request has finished.
    async fn scenario(&mut self, name: &str, fault: Fault, after: usize, heal: Heal) {
        eprintln!("--- scenario: {name}");
        self.wait_all_healthy().await;
        self.wait_pools(Duration::from_secs(60)).await;
        let started = Instant::now();
        if after == 0 {
            self.inject(fault).await;
        }
        // Made after a fault struck at once: an enclave restarted by it refuses requests made
        // before it booted (it cannot know whether it signed them in its previous life).
        let bodies = self.bodies();
        let queue = Arc::new(Mutex::new(bodies));
        let seen = Arc::new(Seen::default());
        let mut tasks = JoinSet::new();
        for _ in 0..4 {
            let (api, queue, seen) = (self.api.clone(), queue.clone(), seen.clone());
            tasks.spawn(async move {
                let mut out = Vec::new();
                loop {
                    let next = queue.lock().unwrap().pop();
                    let Some((kind, body)) = next else { return out };
                    out.push(submit(&api, kind, body, &seen).await);
                }
            });
        }
        let done = &seen.first_answers;
        if after > 0 {
            while done.load(std::sync::atomic::Ordering::SeqCst) < after {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            self.inject(fault).await;
        }
        match heal {
            Heal::AtEnd => {}
            Heal::After(d) => {
                tokio::time::sleep(d).await;
                self.heal(fault).await;
            }
            Heal::OnceAnswered(code) => {
                let deadline = Instant::now() + HIT_PATIENCE;
                while !seen.errors.lock().unwrap().contains(code) {
                    assert!(
                        Instant::now() < deadline,
                        "{name}: no client was answered `{code}` within {HIT_PATIENCE:?} \
                         (answered: {:?}; {} requests answered at least once)",
                        seen.errors.lock().unwrap(),
                        done.load(std::sync::atomic::Ordering::SeqCst)
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                eprintln!("{name}: a client was answered `{code}`; healing");
                self.heal(fault).await;
            }
        }
        let mut outcomes = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            outcomes.extend(joined.unwrap());
        }
        let seconds = started.elapsed().as_secs_f64();
        if matches!(heal, Heal::AtEnd) {
            self.heal(fault).await;
        }
        assert_eq!(outcomes.len(), REQUESTS);
        let report = report(name, &outcomes, seconds);
        eprintln!("{report:?}");
        for o in &outcomes {
            self.check_outcome(o);
        }
        // A quorum remained throughout: every request completes, resubmissions included.
        let failed: Vec<_> = outcomes
            .iter()
            .filter(|o| o.completed().is_none())
            .map(|o| (o.idem(), o.attempts.clone()))
            .collect();
        assert!(
            failed.is_empty(),
            "{name}: requests that never completed: {failed:?}"
        );
        self.outcomes.extend(outcomes);
        self.reports.push(report);
        self.check_run().await;
    }

    async fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::None => {}
            Fault::Kill(name) => self.cluster.kill(name).await.unwrap(),
            Fault::KillCoordinator => self.cluster.kill("coordinator").await.unwrap(),
            Fault::SlowLink(node, delay) => self.relays[node].set(Link::Slow(delay)),
            Fault::Partition(node) => self.relays[node].set(Link::Partitioned),
            Fault::KmsOutage { restart_enclave } => {
                self.cluster.kill("kms").await.unwrap();
                self.cluster.restart_enclave(restart_enclave).await.unwrap();
            }
            Fault::MissedRestart {
                cut,
                restarted,
                down,
            } => {
                self.relays[cut].set(Link::Partitioned);
                self.wait_node(cut, "cut off", |n| !n.reachable).await;
                let before = self.node(restarted).await.identity;
                self.cluster.restart_enclave(restarted).await.unwrap();
                // The restarted enclave is back under a new identity, and the peer still in
                // reach admitted it, while `cut` knew nothing of it (the fault has hit).
                let third = (0..3).find(|n| *n != cut && *n != restarted).unwrap();
                self.wait_node(restarted, "back and admitted by the peer in reach", |n| {
                    n.identity.is_some()
                        && n.identity != before
                        && n.phase.as_deref() == Some("operational")
                        && n.known_to.contains(&(third as u16))
                })
                .await;
                assert!(!self.node(cut).await.reachable);
                self.relays[cut].set(Link::Up);
                self.wait_node(cut, "back in reach", |n| n.reachable && n.attested)
                    .await;
                self.cluster.kill(&format!("proxy-{down}")).await.unwrap();
            }
            Fault::FullDisk => {
                // Injected until it demonstrably hit: a write made through the API (every call
                // records its nonce) must be refused before any client starts. A log the
                // coordinator could still reuse (it wrote, and checkpointed, between the
                // truncation and the last block) would absorb the clients' writes, and the
                // fault would never bite (stop 29's CI): then the disk is freed and filled again.
                for attempt in 1.. {
                    self.disk.truncate_wal("coordinator.db");
                    let bytes = self.disk.fill();
                    let wal = std::fs::metadata(self.disk.path("coordinator.db-wal"))
                        .map_or(0, |m| m.len());
                    eprintln!("full disk, injection {attempt}: write-ahead log {wal} bytes");
                    let probe = self.api.get::<ClusterStatus>("/v1/cluster").await;
                    if probe.as_ref().err().and_then(ApiCallError::code) == Some("storage") {
                        eprintln!(
                            "filled the coordinator's disk with {bytes} bytes; a write was \
                             refused (injection {attempt})"
                        );
                        break;
                    }
                    assert!(
                        attempt < 50,
                        "the coordinator's writes still succeed on a full disk: {:?}",
                        probe.map(|_| "answered")
                    );
                    eprintln!("a full disk did not refuse a write yet; again");
                    self.disk.free();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn heal(&mut self, fault: Fault) {
        match fault {
            Fault::None => {}
            Fault::Kill(name) => self.cluster.restart(name).await.unwrap(),
            Fault::KillCoordinator => {
                self.cluster.restart("coordinator").await.unwrap();
                wait_ready_api(&self.api).await;
            }
            Fault::SlowLink(node, _) | Fault::Partition(node) => self.relays[node].set(Link::Up),
            Fault::KmsOutage { restart_enclave } => {
                // The restarted enclave could not get its shares: it stayed out of quorums.
                let s: ClusterStatus = self.api.get("/v1/cluster").await.unwrap();
                let n = &s.nodes[restart_enclave];
                assert!(!n.healthy && n.keys == 0, "{n:?}");
                self.cluster.restart("kms").await.unwrap();
            }
            Fault::FullDisk => self.disk.free(),
            Fault::MissedRestart { down, .. } => self
                .cluster
                .restart(&format!("proxy-{down}"))
                .await
                .unwrap(),
        }
    }

    /// Node `node` (from 0) as the coordinator sees it.
    async fn node(&self, node: usize) -> NodeStatus {
        let s: ClusterStatus = self.api.get("/v1/cluster").await.unwrap();
        s.nodes[node].clone()
    }

    /// Waits until node `node` (from 0) is as `test` wants it.
    async fn wait_node(&self, node: usize, what: &str, test: impl Fn(&NodeStatus) -> bool) {
        let deadline = Instant::now() + HIT_PATIENCE;
        loop {
            let n = self.node(node).await;
            if test(&n) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {node} not {what} within {HIT_PATIENCE:?}: {n:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_all_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(s) = self.api.get::<ClusterStatus>("/v1/cluster").await
                && s.nodes.iter().all(|n| n.healthy && n.keys >= 2)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster never became whole again: {:?}",
                self.api.get::<ClusterStatus>("/v1/cluster").await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits (not asserted: pools refill in the background) until every pool holds one.
    async fn wait_pools(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(s) = self.api.get::<ClusterStatus>("/v1/cluster").await
                && !s.pools.is_empty()
                && s.pools.iter().all(|p| p.ready >= 1)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("pools not refilled within {within:?}");
    }

    /// Every completed answer verifies under the key it names, which is the right key.
    fn check_outcome(&self, o: &Outcome) {
        let Some(r) = o.completed() else { return };
        let (key, payload) = (&r.signatures[0], o.body.request.payloads[0].to_wire());
        assert_eq!(r.signatures.len(), 1);
        match o.kind {
            Kind::Eddsa => {
                assert_eq!(key.public_key.0, self.eddsa.public_key.0);
                cohort_tests::verify_eddsa(&key.public_key.0, payload.bytes(), &key.signature.0);
            }
            Kind::EcdsaFull | Kind::EcdsaPresigned => {
                assert_eq!(key.public_key.0, self.ecdsa.public_key.0);
                cohort_tests::verify_ecdsa(
                    &key.public_key.0,
                    &payload.ecdsa_digest().unwrap(),
                    &key.signature.0,
                );
                if o.kind == Kind::EcdsaFull {
                    assert!(!key.presigned);
                }
            }
        }
        // Every answer the client got for this request is the same one.
        for a in o.attempts.iter().flatten() {
            if a.status == "completed" {
                assert_eq!(a, r, "two answers to one request");
            }
        }
    }

    /// Over everything run so far: no nonce twice, one signature and one `ok` record per
    /// request, every acknowledged answer still there, the audit chain whole.
    async fn check_run(&self) {
        let mut ecdsa_r = BTreeSet::new();
        let mut eddsa_r = BTreeSet::new();
        for o in &self.outcomes {
            let r = o.completed().unwrap();
            let nonce = r.signatures[0].signature.0[..32].to_vec();
            let fresh = match o.kind {
                Kind::Eddsa => eddsa_r.insert(nonce),
                _ => ecdsa_r.insert(nonce),
            };
            assert!(fresh, "a nonce was used twice (request {})", o.idem());
            // Nothing acknowledged is lost: the coordinator still returns this answer.
            let stored: SignResult = self
                .api
                .get(&format!("/v1/signatures/{}", r.idempotency_key))
                .await
                .unwrap();
            assert_eq!(&stored, r, "the stored answer changed");
        }
        let log = audit(&self.api).await;
        let mut ok: BTreeMap<String, usize> = BTreeMap::new();
        for rec in &log {
            if rec.entry.action == "sign" && rec.entry.outcome == "ok" {
                *ok.entry(rec.entry.request_id.clone().unwrap()).or_default() += 1;
            }
        }
        for o in &self.outcomes {
            assert_eq!(
                ok.get(&o.idem()),
                Some(&1),
                "request {} has not exactly one ok audit record",
                o.idem()
            );
        }
        assert_eq!(
            ok.len(),
            self.outcomes.len(),
            "audit records of unknown requests"
        );
        let v: AuditVerification = self.api.get("/v1/audit/verify").await.unwrap();
        assert!(v.ok, "{v:?}");
    }
}

fn preimage(i: usize) -> Vec<u8> {
    format!("fault payload {i}").into_bytes()
}

fn digest(i: usize) -> Vec<u8> {
    HashFunction::Sha256.digest(&preimage(i)).to_vec()
}

async fn wait_ready_api(api: &ApiClient) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.get::<ClusterStatus>("/v1/cluster").await.is_err() {
        assert!(Instant::now() < deadline, "the coordinator did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the clients of one scenario have seen so far.
#[derive(Default)]
struct Seen {
    /// Requests answered at least once.
    first_answers: std::sync::atomic::AtomicUsize,
    /// Every API error code any client was answered.
    errors: Mutex<BTreeSet<String>>,
}

/// Submits `body` until it completes, fails for good, or the client's patience ends.
async fn submit(
    api: &ApiClient,
    kind: Kind,
    body: ApprovedJson<SignRequestJson>,
    seen: &Seen,
) -> Outcome {
    let started = Instant::now();
    let mut attempts = Vec::new();
    loop {
        let r = api.post::<SignResult>("/v1/signatures", &body).await;
        if attempts.is_empty() {
            seen.first_answers
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        if let Err(ApiCallError::Api { body, .. }) = &r {
            seen.errors.lock().unwrap().insert(body.error.code.clone());
        }
        let again = match &r {
            Ok(r) => r.status != "completed",
            // Transport: the coordinator is down or restarting. Retryable codes: the cluster
            // could not serve it then; a storage failure: nothing was recorded as done.
            Err(ApiCallError::Transport(_)) => true,
            Err(e) => matches!(
                e.code(),
                Some("no_quorum" | "deadline_exceeded" | "signing_failed" | "storage")
            ),
        };
        attempts.push(r.map_err(|e| match &e {
            ApiCallError::Api { body, .. } => body.error.code.clone(),
            ApiCallError::Transport(_) => "transport".into(),
        }));
        if !again || started.elapsed() > CLIENT_PATIENCE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Outcome {
        kind,
        body,
        attempts,
        latency: started.elapsed(),
    }
}

fn report(name: &str, outcomes: &[Outcome], seconds: f64) -> Report {
    let n = outcomes.len();
    let first = outcomes
        .iter()
        .filter(|o| !matches!(&o.attempts[0], Ok(r) if r.status == "completed"))
        .count();
    let last = outcomes.iter().filter(|o| o.completed().is_none()).count();
    let mut errors = BTreeMap::new();
    for o in outcomes {
        for a in &o.attempts {
            if let Err(code) = a {
                *errors.entry(code.clone()).or_default() += 1;
            }
        }
    }
    let done: Vec<&SignResult> = outcomes.iter().filter_map(Outcome::completed).collect();
    let mut lat: Vec<u128> = outcomes.iter().map(|o| o.latency.as_millis()).collect();
    lat.sort_unstable();
    Report {
        scenario: name.into(),
        requests: n,
        first_attempt_failures: first,
        first_attempt_failure_rate: first as f64 / n as f64,
        final_failures: last,
        final_failure_rate: last as f64 / n as f64,
        submissions: outcomes.iter().map(|o| o.attempts.len()).sum(),
        errors,
        presigned: done.iter().filter(|r| r.signatures[0].presigned).count(),
        failed_over: done.iter().filter(|r| r.attempts > 1).count(),
        p50_ms: lat[n / 2],
        max_ms: lat[n - 1],
        seconds,
    }
}

async fn audit(api: &ApiClient) -> Vec<coordinator::api::AuditRecordJson> {
    cohort_tests::audit_log(api).await
}

fn write_reports(reports: &[Report]) -> PathBuf {
    let path = std::env::var_os("COHORT_FAULT_REPORT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-report.json"));
    std::fs::write(&path, serde_json::to_string_pretty(reports).unwrap() + "\n").unwrap();
    let mut table = String::from(
        "| scenario | requests | failed first time | failed after resubmission | submissions | presigned | failed over | p50 ms | max ms |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        table += &format!(
            "| {} | {} | {} ({:.1}%) | {} ({:.1}%) | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.requests,
            r.first_attempt_failures,
            100.0 * r.first_attempt_failure_rate,
            r.final_failures,
            100.0 * r.final_failure_rate,
            r.submissions,
            r.presigned,
            r.failed_over,
            r.p50_ms,
            r.max_ms
        );
    }
    eprintln!("{table}");
    std::fs::write(path.with_extension("md"), table).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_goes_on_through_faults_without_signing_twice_or_losing_answers() {
    let mut h = Harness::start().await;
    h.scenario("no fault", Fault::None, 0, Heal::AtEnd).await;
    h.scenario(
        "enclave crash (node 1)",
        Fault::Kill("enclave-1"),
        8,
        Heal::AtEnd,
    )
    .await;
    h.scenario(
        "proxy crash (node 2)",
        Fault::Kill("proxy-2"),
        8,
        Heal::AtEnd,
    )
    .await;
    h.scenario(
        "coordinator crash and restart",
        Fault::KillCoordinator,
        8,
        Heal::After(Duration::from_secs(2)),
    )
    .await;
    h.scenario(
        "slow node (node 0, +3 s per hop)",
        Fault::SlowLink(0, Duration::from_secs(3)),
        4,
        Heal::AtEnd,
    )
    .await;
    h.scenario(
        "partitioned node (node 1)",
        Fault::Partition(1),
        4,
        Heal::AtEnd,
    )
    .await;
    h.scenario(
        "KMS stand-in down, node 2 restarted",
        Fault::KmsOutage { restart_enclave: 2 },
        8,
        Heal::AtEnd,
    )
    .await;
    h.scenario(
        "coordinator's disk full until a write is refused",
        Fault::FullDisk,
        0,
        Heal::OnceAnswered("storage"),
    )
    .await;

    h.scenario(
        "node 0 cut off while node 1 restarts, then node 2's proxy down",
        Fault::MissedRestart {
            cut: 0,
            restarted: 1,
            down: 2,
        },
        0,
        Heal::AtEnd,
    )
    .await;
    let path = write_reports(&h.reports);
    eprintln!("fault report: {}", path.display());
    // Faults that cost the client something did show up (the suite is not vacuous).
    let by_name: BTreeMap<&str, &Report> =
        h.reports.iter().map(|r| (r.scenario.as_str(), r)).collect();
    assert!(by_name["coordinator crash and restart"].first_attempt_failures > 0);
    assert!(by_name["coordinator's disk full until a write is refused"].first_attempt_failures > 0);
    assert!(h.reports.iter().map(|r| r.failed_over).sum::<usize>() > 0);
    assert!(h.reports.iter().map(|r| r.presigned).sum::<usize>() > 0);
    let Harness { cluster, .. } = h;
    cluster.stop().await.unwrap();
}
