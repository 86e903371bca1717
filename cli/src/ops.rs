//! Cluster operations behind `cohort genesis`, `cohort key create`, `cohort sign` and
//! `cohort bench`: requests are built and approved here (where the admin and approver keys are)
//! and sent to the coordinator's API. Without `--coordinator`, the URL comes from the
//! `cluster.json` that `cohort sim up` wrote in its directory.

use std::path::Path;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use coordinator::api::{
    ApiKey, ApprovedJson, ClusterStatus, CreateKeyJson, GenesisStatus, KeyInfo, PresignatureUse,
    SignRequestJson, SignResult,
};
use coordinator::broker::client::IntakeClient;
use coordinator::broker::intake::Kind;
use coordinator::client::{ApiCallError, ApiClient};
use ed25519_dalek::SigningKey;
use protocol::genesis::ClusterId;
use protocol::policy::{HashFunction, Payload, Scheme};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tokio::task::JoinSet;

use crate::requests;

/// Writes a new Ed25519 key (hex seed, mode 0600) and returns its public key.
pub fn keygen(path: &Path) -> anyhow::Result<[u8; 32]> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{}", hex::encode(key.to_bytes()))?;
    Ok(key.verifying_key().to_bytes())
}

/// Reads a key written by [`keygen`].
pub fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let bytes = zeroize::Zeroizing::new(
        hex::decode(text.trim()).with_context(|| format!("{} is not a hex key", path.display()))?,
    );
    let seed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} does not hold a 32-byte key", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

#[derive(Deserialize)]
struct ClusterFile {
    coordinator_url: String,
}

/// The file `cohort sim up` keeps its admin API key in (`DIR/api-key.json`); its public half is
/// `DIR/api-key.pub.json`, which the coordinator registers at start (`--admin-key`).
pub const SIM_API_KEY: &str = "api-key.json";
/// The public half of [`SIM_API_KEY`].
pub const SIM_API_PUBLIC: &str = "api-key.pub.json";

/// The coordinator to talk to: `--coordinator URL`, or the one of the sim cluster in `dir`;
/// calls are signed with `--api-key FILE`, else, for the sim cluster's own coordinator only
/// (no `--coordinator`), with its admin key in `dir` (ADR 0017): a real coordinator never gets
/// a call signed with a key that happened to lie in the working directory.
pub fn api(
    coordinator: Option<&str>,
    dir: &Path,
    api_key: Option<&Path>,
) -> anyhow::Result<ApiClient> {
    let client = match coordinator {
        Some(url) => ApiClient::new(url),
        None => {
            let path = dir.join("cluster.json");
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "no --coordinator given and no {} (is `cohort sim up` running?)",
                    path.display()
                )
            })?;
            let file: ClusterFile = serde_json::from_str(&text)
                .with_context(|| format!("{} names no coordinator", path.display()))?;
            ApiClient::new(&file.coordinator_url)
        }
    };
    let sim_key = dir.join(SIM_API_KEY);
    let key = match api_key {
        Some(path) => Some(ApiKey::load(path)?),
        None if coordinator.is_none() && sim_key.exists() => Some(ApiKey::load(&sim_key)?),
        None => None,
    };
    Ok(match key {
        Some(key) => client.with_key(key),
        None => client,
    })
}

fn api_err(e: ApiCallError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// The cluster id the coordinator reports (`GET /v1/cluster`). Clients name the id of the
/// genesis they pinned instead ([`crate::trust::Trust::cluster_id`]): a coordinator could
/// report the id of another cluster the same approvers serve, and relay their approvals there.
/// For tests and tools that compare the two.
pub async fn cluster_id(api: &ApiClient) -> anyhow::Result<ClusterId> {
    let status: ClusterStatus = api.get("/v1/cluster").await.map_err(api_err)?;
    status
        .genesis
        .cluster_id
        .map(|c| c.0)
        .context("the cluster has no genesis with a roster yet (run cohort genesis)")
}

/// The genesis ceremony (ADR 0013) for the nodes `expect` describes: the first `quorum` of
/// `admins` approve it, the others are admins who do not sign here. Waits until it is done;
/// returns the approved genesis as a client pins it.
pub async fn genesis(
    api: &ApiClient,
    expect: &crate::ceremony::Expectations,
    cluster: &str,
    admins: &[SigningKey],
    quorum: u16,
) -> anyhow::Result<crate::trust::Trust> {
    let q = usize::from(quorum);
    if q == 0 || q > admins.len() {
        bail!("the quorum must be between 1 and the number of admins");
    }
    let others: Vec<[u8; 32]> = admins[q..]
        .iter()
        .map(|k| k.verifying_key().to_bytes())
        .collect();
    let (approved, _) =
        crate::ceremony::run(api, cluster, &admins[..q], &others, quorum, expect).await?;
    Ok(crate::trust::Trust::new(
        approved.to_wire(),
        std::path::Path::new("the ceremony"),
    )?)
}

/// Waits until the cluster's genesis is done, printing each new step.
pub async fn wait_ready(api: &ApiClient) -> anyhow::Result<GenesisStatus> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let status: ClusterStatus = api.get("/v1/cluster").await.map_err(api_err)?;
        let g = status.genesis;
        if g.detail != last {
            println!(
                "      [{:>3} s] {}: {}",
                started.elapsed().as_secs(),
                g.state,
                g.detail
            );
            last = g.detail.clone();
        }
        match g.state.as_str() {
            "ready" => return Ok(g),
            "failed" => bail!("genesis failed: {}", g.detail),
            "none" => bail!("the coordinator has no genesis"),
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("the cluster is not ready after 30 minutes: {}", g.detail);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Creates a key through the coordinator, in `cluster` (the pinned genesis' id: a client
/// never takes it from the coordinator, which could name another cluster the same approvers
/// serve), under the admin and roster versions in force (asked of the coordinator:
/// [`crate::admins::admin_version`], [`crate::roster::roster_version`]).
#[allow(clippy::too_many_arguments)]
pub async fn create_key(
    api: &ApiClient,
    cluster: ClusterId,
    key_id: &str,
    scheme: Scheme,
    threshold: u16,
    admins: &[SigningKey],
    approvers: &[[u8; 32]],
    approvals_needed: u16,
) -> anyhow::Result<KeyInfo> {
    let approvers: Vec<ByteBuf> = approvers
        .iter()
        .map(|k| ByteBuf::from(k.to_vec()))
        .collect();
    let mut request = requests::create_key(
        cluster,
        key_id,
        scheme,
        threshold,
        &approvers,
        approvals_needed,
    );
    request.admins = crate::admins::admin_version(api).await?;
    request.roster = crate::roster::roster_version(api).await?;
    let request = requests::approve(&request, admins);
    api.post(
        "/v1/keys",
        &ApprovedJson::<CreateKeyJson>::from_wire(&request),
    )
    .await
    .map_err(api_err)
}

/// What a resharing changes besides the threshold (`None`: kept).
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The key's refresh schedule, seconds (`Some(0)` turns it off).
    pub refresh_every: Option<u64>,
    /// Who approves the key's signing requests from the new generation on (issue 20).
    pub policy: Option<protocol::policy::KeyPolicy>,
}

/// Reshares (or, at the key's own threshold, refreshes) `key`, as the pinned genesis verified
/// it: from its current generation to `threshold`, dealt by `dealers` (default: the first
/// threshold-many nodes), approved by `admins` under the admin version in force (asked of the
/// coordinator), with `changes` (the key's refresh schedule, its approval policy). The answer
/// is the key's new record, unverified.
pub async fn reshare_key(
    api: &ApiClient,
    cluster: ClusterId,
    key: &KeyInfo,
    threshold: u16,
    dealers: Option<&[u16]>,
    admins: &[SigningKey],
    changes: Changes,
) -> anyhow::Result<KeyInfo> {
    let generation = key.receipts.as_ref().map_or(0, |r| r.generation);
    let dealers: Vec<u16> = match dealers {
        Some(d) => d.to_vec(),
        None => (0..key.threshold).collect(),
    };
    let mut request = requests::reshare_key(
        cluster,
        &key.key_id,
        generation,
        threshold,
        &dealers,
        changes.refresh_every,
    );
    request.policy = changes.policy;
    request.admins = crate::admins::admin_version(api).await?;
    let request = requests::approve(&request, admins);
    let info: KeyInfo = api
        .post(
            &format!("/v1/keys/{}/reshare", key.key_id),
            &ApprovedJson::<coordinator::api::ReshareKeyJson>::from_wire(&request),
        )
        .await
        .map_err(api_err)?;
    // The key's new generation must be the one this request made (helper-42, finding 6): its
    // receipts, which the caller verifies, then sign exactly what the admins approved.
    let made = info
        .receipts
        .as_ref()
        .and_then(|r| r.reshared.as_ref())
        .map(|x| coordinator::api::Wire::to_wire(&x.request));
    if made.as_ref() != Some(&request.request) {
        anyhow::bail!(
            "the coordinator answered key {} with a generation another request made",
            key.key_id
        );
    }
    Ok(info)
}

/// The key a signing request names, with the version of its approval policy the approvals are
/// given under (issue 20; every enclave refuses another version). A bare key id is version 0:
/// a key whose approvers the admins never replaced.
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    /// The key id.
    pub id: &'a str,
    /// The version of its policy.
    pub policy: u32,
}

impl<'a> KeyRef<'a> {
    /// The key `info` shows, under its current policy.
    pub fn of(info: &'a KeyInfo) -> Self {
        Self {
            id: &info.key_id,
            policy: info.policy_version,
        }
    }
}

impl<'a> From<&'a str> for KeyRef<'a> {
    fn from(id: &'a str) -> Self {
        Self { id, policy: 0 }
    }
}

impl<'a> From<&'a String> for KeyRef<'a> {
    fn from(id: &'a String) -> Self {
        Self { id, policy: 0 }
    }
}

/// An approved signing request body, ready to submit.
pub fn sign_body<'a>(
    cluster: ClusterId,
    key: impl Into<KeyRef<'a>>,
    path: &[u32],
    payloads: Vec<Payload>,
    approvers: &[SigningKey],
    presignature: Option<PresignatureUse>,
) -> ApprovedJson<SignRequestJson> {
    let key = key.into();
    let request = requests::approve(
        &requests::sign_request(cluster, (key.id, key.policy), path, payloads),
        approvers,
    );
    let mut body = ApprovedJson::<SignRequestJson>::from_wire(&request);
    body.presignature = presignature;
    body
}

/// Signs one payload through the coordinator, in `cluster` (see [`create_key`]).
pub async fn sign<'a>(
    api: &ApiClient,
    cluster: ClusterId,
    key: impl Into<KeyRef<'a>>,
    path: &[u32],
    payload: Payload,
    approvers: &[SigningKey],
    presignature: Option<PresignatureUse>,
) -> anyhow::Result<SignResult> {
    let body = sign_body(cluster, key, path, vec![payload], approvers, presignature);
    api.post("/v1/signatures", &body).await.map_err(api_err)
}

/// What `cohort bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The key.
    pub key_id: String,
    /// Its scheme.
    pub scheme: Scheme,
    /// Derivation path.
    pub path: String,
    /// Presignature use requested.
    pub presignature: PresignatureUse,
    /// How requests went: `http`, or `amqp` (the broker's intake).
    pub via: &'static str,
    /// Requests sent (after warm-up).
    pub requests: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Succeeded.
    pub ok: usize,
    /// Of those, signed from a presignature.
    pub presigned: usize,
    /// Failed, by error code.
    pub failures: BTreeMap<String, usize>,
    /// Latency percentiles of successful requests, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Successful signatures per second over the whole run.
    pub throughput_per_s: f64,
    /// Wall time of the run, seconds.
    pub wall_s: f64,
    /// Median latency of the first tenth of the successful requests (by start time) and of the
    /// last tenth: over a sustained run, whether latency drifts.
    pub p50_first_tenth_ms: f64,
    /// See `p50_first_tenth_ms`.
    pub p50_last_tenth_ms: f64,
}

/// The `p`-th percentile (nearest rank) of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How long `cohort bench` runs.
#[derive(Debug, Clone, Copy)]
pub enum BenchLength {
    /// This many requests.
    Count(usize),
    /// New requests for this long (those in flight at the end still count).
    Duration(Duration),
}

/// Drives signing requests at `concurrency` through the coordinator, for `length`, and measures
/// them.
#[allow(clippy::too_many_arguments)]
pub async fn bench(
    api: &ApiClient,
    cluster: ClusterId,
    key_id: &str,
    path: &[u32],
    approvers: &[SigningKey],
    length: BenchLength,
    concurrency: usize,
    warmup: usize,
    presignature: PresignatureUse,
    via: Option<std::sync::Arc<IntakeClient>>,
) -> anyhow::Result<BenchReport> {
    let key: KeyInfo = api
        .get(&format!("/v1/keys/{key_id}"))
        .await
        .map_err(api_err)?;
    let (scheme, policy) = (key.scheme, key.policy_version);
    let salt = rand::random::<u64>();
    let (path_owned, approvers_owned) = (path.to_vec(), approvers.to_vec());
    let key_owned = key_id.to_string();
    // Approving is the client's work: a request is built before its clock starts.
    let body = std::sync::Arc::new(move |i: usize| -> ApprovedJson<SignRequestJson> {
        // ECDSA: a preimage the enclaves hash (a presignature never signs a bare digest).
        let payload = match scheme {
            Scheme::EcdsaSecp256k1 => Payload::hashed(
                HashFunction::Sha256,
                format!("cohort bench {i} {salt}").into_bytes(),
            ),
            Scheme::EddsaEd25519 => {
                Payload::raw(format!("cohort bench message {i} {salt}").into_bytes())
            }
        };
        sign_body(
            cluster,
            KeyRef {
                id: &key_owned,
                policy,
            },
            &path_owned,
            vec![payload],
            &approvers_owned,
            Some(presignature),
        )
    });
    for i in 0..warmup {
        let _ = send(api, via.as_deref(), &body(i)).await;
    }
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(warmup));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (api, next, body) = (api.clone(), next.clone(), body.clone());
        let via = via.clone();
        tasks.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let more = match length {
                    BenchLength::Count(count) => i < warmup + count,
                    BenchLength::Duration(d) => started.elapsed() < d,
                };
                if !more {
                    break;
                }
                let body = body(i);
                let t = Instant::now();
                let r = send(&api, via.as_deref(), &body).await;
                let at = t.duration_since(started).as_secs_f64();
                samples.push((at, t.elapsed().as_secs_f64() * 1000.0, r));
            }
            samples
        });
    }
    let Tally {
        mut latencies,
        timeline,
        presigned,
        failures,
    } = Tally::collect(tasks).await?;
    let wall = started.elapsed().as_secs_f64();
    let count = latencies.len() + failures.values().sum::<usize>();
    latencies.sort_by(|a, b| a.total_cmp(b));
    Ok(BenchReport {
        key_id: key_id.to_string(),
        scheme: key.scheme,
        path: coordinator::api::path_string(path),
        presignature,
        via: if via.is_some() { "amqp" } else { "http" },
        requests: count,
        concurrency,
        ok: latencies.len(),
        presigned,
        failures,
        p50_ms: percentile(&latencies, 50.0),
        p95_ms: percentile(&latencies, 95.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        throughput_per_s: if wall > 0.0 {
            latencies.len() as f64 / wall
        } else {
            0.0
        },
        wall_s: wall,
        p50_first_tenth_ms: tenth(&timeline, false),
        p50_last_tenth_ms: tenth(&timeline, true),
    })
}

/// Sends one signing request over HTTP, or through the broker's intake with `via` (under
/// the request id as its idempotency key, as over HTTP).
async fn send(
    api: &ApiClient,
    via: Option<&IntakeClient>,
    body: &ApprovedJson<SignRequestJson>,
) -> Result<SignResult, ApiCallError> {
    let Some(intake) = via else {
        return api.post("/v1/signatures", body).await;
    };
    let bytes = serde_json::to_vec(body).map_err(|e| ApiCallError::Transport(e.into()))?;
    let idem = hex::encode(&body.request.request_id.0);
    let (status, answer) = intake
        .call(Kind::Sign, &idem, &bytes, Duration::from_secs(120))
        .await
        .map_err(|e| ApiCallError::Transport(anyhow::anyhow!(e)))?;
    match status {
        200 => serde_json::from_slice(&answer).map_err(|e| ApiCallError::Transport(e.into())),
        _ => Err(match serde_json::from_slice(&answer) {
            Ok(body) => ApiCallError::Api { status, body },
            Err(e) => ApiCallError::Transport(anyhow::anyhow!("answer {status}: {e}")),
        }),
    }
}

/// The outcomes of a benchmark's requests.
#[derive(Default)]
struct Tally {
    /// Latencies of the successful requests, milliseconds.
    latencies: Vec<f64>,
    /// `(start, latency)` of the successful requests.
    timeline: Vec<(f64, f64)>,
    /// Successful requests signed from presignatures.
    presigned: usize,
    /// Failed requests, by error code.
    failures: BTreeMap<String, usize>,
}

/// What one benchmark task measured: `(start, latency in ms, outcome)` per request.
type Samples = Vec<(f64, f64, Result<SignResult, ApiCallError>)>;

impl Tally {
    /// Waits for every task and sorts their samples into successes and failures.
    async fn collect(mut tasks: JoinSet<Samples>) -> anyhow::Result<Self> {
        let mut tally = Tally::default();
        while let Some(joined) = tasks.join_next().await {
            for (at, ms, r) in joined.context("bench task")? {
                tally.add(at, ms, r);
            }
        }
        Ok(tally)
    }

    /// Counts one request that started at `at` and took `ms`.
    fn add(&mut self, at: f64, ms: f64, r: Result<SignResult, ApiCallError>) {
        match r {
            Ok(result) if result.status == "completed" => {
                self.latencies.push(ms);
                self.timeline.push((at, ms));
                if result.signatures.iter().all(|s| s.presigned) {
                    self.presigned += 1;
                }
            }
            Ok(result) => {
                let code = result.error.map_or("failed".to_string(), |e| e.code);
                *self.failures.entry(code).or_default() += 1;
            }
            Err(e) => {
                let code = e.code().unwrap_or("transport").to_string();
                *self.failures.entry(code).or_default() += 1;
            }
        }
    }
}

/// The median latency of the first (or last) tenth of `(start, latency)` samples by start time.
fn tenth(samples: &[(f64, f64)], last: bool) -> f64 {
    let mut by_start = samples.to_vec();
    by_start.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = by_start.len().div_ceil(10);
    let part = if last {
        &by_start[by_start.len() - n..]
    } else {
        &by_start[..n]
    };
    let mut ms: Vec<f64> = part.iter().map(|s| s.1).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    percentile(&ms, 50.0)
}

/// Waits until the coordinator's pools hold at least `level` presignatures for every quorum of
/// `key_id` at `path` (for benchmarks of presigned signing).
pub async fn wait_for_pool(
    api: &ApiClient,
    key_id: &str,
    path: &[u32],
    level: u32,
    timeout: Duration,
) -> anyhow::Result<()> {
    let path = coordinator::api::path_string(path);
    let started = Instant::now();
    loop {
        let status: ClusterStatus = api.get("/v1/cluster").await.map_err(api_err)?;
        let pools: Vec<_> = status
            .pools
            .iter()
            .filter(|p| p.key_id == key_id && p.path == path && p.target > 0)
            .collect();
        if !pools.is_empty() && pools.iter().all(|p| p.ready >= level.min(p.target)) {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!(
                "presignature pools of {key_id} not filled after {} s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), 50.0);
        assert_eq!(percentile(&s, 95.0), 95.0);
        assert_eq!(percentile(&s, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}

/// A refresh schedule as `--every` takes it: `off`, or a period like `90d`, `12h`, `30m`,
/// `45s` or a number of seconds; the seconds (0: off).
pub fn parse_every(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s == "off" {
        return Ok(0);
    }
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: a period is `off` or a number with s, m, h or d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit is s, m, h or d")),
    };
    match n.checked_mul(scale) {
        Some(0) => Err(format!("{s:?}: a period is at least 1 s (or `off`)")),
        Some(secs) if secs <= protocol::reshare::MAX_REFRESH_EVERY => Ok(secs),
        _ => Err(format!("{s:?}: a period is at most ten years")),
    }
}

#[cfg(test)]
mod every_tests {
    use super::parse_every;

    #[test]
    fn periods_parse_to_seconds_and_bad_ones_name_themselves() {
        assert_eq!(parse_every("off"), Ok(0));
        assert_eq!(parse_every("90d"), Ok(90 * 86_400));
        assert_eq!(parse_every("12h"), Ok(43_200));
        assert_eq!(parse_every("30m"), Ok(1_800));
        assert_eq!(parse_every("45s"), Ok(45));
        assert_eq!(parse_every("600"), Ok(600));
        for bad in [
            "",
            "0",
            "0d",
            "d",
            "3w",
            "-1h",
            "3700d",
            "99999999999999999999d",
        ] {
            let e = parse_every(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
