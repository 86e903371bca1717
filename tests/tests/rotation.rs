//! Issue 20: a rolling image rotation of a simulated cluster of real processes, as an operator
//! runs it (`docs/operator-guide.md`, step 6; ADR 0021), while a client signs without pause.
//!
//! The second image is another executable: the enclave binary with a build note appended. A
//! simulated enclave's PCR0 is the SHA-384 of its executable, so to every check (the KMS key
//! policy, the parent proxy, the coordinator, the peers, the enclave's own restore) it is
//! another build, as a rebuild of changed code would be.
//!
//! The steps: the KMS key policies admit both images; the admins accept both (image version 1);
//! each node in turn is restarted onto the new image, its proxy pinned to it, and is admitted
//! by its peers still on the old one; the admins retire the old image (version 2). Meanwhile two
//! clients sign back to back, one EdDSA, one ECDSA from presignatures (falling back to full
//! signing where a quorum holds none), each resubmitting a failed request under its
//! idempotency key as a custody client does: none may fail for good, and the run prints, per
//! client, how many failed at first, how many came from a presignature and the longest pause
//! between two completed signatures. Afterwards a parent restarting its node on the
//! retired image, with its KMS key and its proxy still admitting it, is refused by the enclave
//! itself (`other_image`) and by the coordinator (`pcr_mismatch`), while the other two nodes
//! keep signing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cli::kms::Measurements;
use cli::ops;
use cli::sim::SimCluster;
use cohort_tests::{sim_options, wait_up};
use coordinator::api::{ClusterStatus, KeyInfo, PresignatureUse, SignResult};
use coordinator::client::{ApiCallError, ApiClient};
use ed25519_dalek::SigningKey;
use protocol::genesis::{ClusterId, Image};
use protocol::policy::{HashFunction, Payload, Scheme};
use serde_bytes::ByteBuf;
use sha2::Digest;

/// What a client signs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// EdDSA over a raw message.
    Eddsa,
    /// ECDSA over a preimage the enclaves hash (SHA-256), from a presignature where the quorum
    /// holds one.
    EcdsaPresigned,
}

impl Kind {
    /// The payload for `message` and how presignatures are used.
    fn payload(self, message: &[u8]) -> (Payload, PresignatureUse) {
        match self {
            Kind::Eddsa => (Payload::raw(message.to_vec()), PresignatureUse::Never),
            Kind::EcdsaPresigned => (
                Payload::hashed(HashFunction::Sha256, message.to_vec()),
                PresignatureUse::Prefer,
            ),
        }
    }

    /// How long the client waits after each answer: EdDSA back to back; ECDSA at two requests
    /// a second, a withdrawal desk's pace rather than a flood, so that the pools (refilled in
    /// the background, about a CPU-second per presignature) can keep up.
    fn pace(self) -> Duration {
        match self {
            Kind::Eddsa => Duration::ZERO,
            Kind::EcdsaPresigned => Duration::from_millis(500),
        }
    }

    /// Checks `signature` over `message` under `public_key`.
    fn verify(self, public_key: &[u8], message: &[u8], signature: &[u8]) {
        match self {
            Kind::Eddsa => cohort_tests::verify_eddsa(public_key, message, signature),
            Kind::EcdsaPresigned => {
                let digest: [u8; 32] = sha2::Sha256::digest(message).into();
                cohort_tests::verify_ecdsa(public_key, &digest, signature);
            }
        }
    }
}

/// One signing request of a client, from its first submission to its last answer.
struct Request {
    /// When it was first submitted and when it was answered for good, since the run began.
    started: Duration,
    finished: Duration,
    /// Whether its first submission completed.
    first_ok: bool,
    /// The error codes of the submissions that failed.
    errors: Vec<String>,
    message: Vec<u8>,
    /// The completed answer, if any.
    result: Option<SignResult>,
}

/// A client signing `kind` requests back to back until `stop`, each made just before it is
/// sent (an enclave restarted meanwhile refuses requests made before it booted) and
/// resubmitted under its idempotency key on a retryable failure, for up to a minute.
async fn client(
    api: ApiClient,
    (cluster, key, kind): (ClusterId, String, Kind),
    approver: SigningKey,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) -> Vec<Request> {
    let begun = Instant::now();
    let mut out = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let message = format!("rotation {kind:?} {}", out.len()).into_bytes();
        let (payload, presignature) = kind.payload(&message);
        let body = ops::sign_body(
            cluster,
            key.as_str(),
            &[],
            vec![payload],
            std::slice::from_ref(&approver),
            Some(presignature),
        );
        let started = begun.elapsed();
        let mut errors = Vec::new();
        let result = loop {
            let answer = api.post::<SignResult>("/v1/signatures", &body).await;
            let retry = match &answer {
                Ok(r) if r.status == "completed" => break Some(r.clone()),
                Ok(r) => {
                    errors.push(format!("status {}", r.status));
                    r.status != "failed"
                }
                Err(e @ ApiCallError::Transport(_)) => {
                    errors.push(e.to_string());
                    true
                }
                Err(e) => {
                    let code = e.code().unwrap_or("?").to_string();
                    let retry = matches!(
                        code.as_str(),
                        "no_quorum" | "deadline_exceeded" | "signing_failed" | "storage"
                    );
                    errors.push(code);
                    retry
                }
            };
            if !retry || begun.elapsed() - started > Duration::from_secs(60) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        out.push(Request {
            started,
            finished: begun.elapsed(),
            first_ok: errors.is_empty(),
            errors,
            message,
            result,
        });
        done.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(kind.pace()).await;
    }
    out
}

/// The simulated PCR0-2 of the executable at `path`, as an image and as hex measurements.
fn image_of(path: &Path) -> (Image, Measurements) {
    let pcrs = attestation::sim::simulated_pcrs(&attestation::sim::measure_file(path).unwrap());
    let image = Image {
        pcr0: ByteBuf::from(pcrs[&0].clone()),
        pcr1: ByteBuf::from(pcrs[&1].clone()),
        pcr2: ByteBuf::from(pcrs[&2].clone()),
    };
    let hex = (0..3).map(|i| (i, hex::encode(&pcrs[&i]))).collect();
    (image, hex)
}

/// Sets every node's KMS key policy to admit exactly `images`.
async fn kms_admits(cluster: &SimCluster, images: &[&Measurements]) {
    let kms = cli::kms::sim_client(&cluster.info.kms_url);
    for node in &cluster.info.nodes {
        let mut params = cli::kms::PolicyParams::simulated(node.id, images[0].clone());
        params.images = images.iter().map(|m| (*m).clone()).collect();
        let policy = cli::kms::key_policy(&params).unwrap();
        cli::kms::put_policy(&kms, &node.kms_key_id, &policy)
            .await
            .unwrap();
    }
}

/// Points node `id`'s proxy at `images` (its `--pcr0..2` flags, one per image each).
fn pin_proxy(cluster: &mut SimCluster, id: usize, images: &[&Measurements]) {
    cluster
        .edit_command(&format!("proxy-{id}"), |_, args| {
            let mut kept = Vec::new();
            let mut it = std::mem::take(args).into_iter();
            while let Some(a) = it.next() {
                if matches!(a.as_str(), "--pcr0" | "--pcr1" | "--pcr2") {
                    it.next();
                } else {
                    kept.push(a);
                }
            }
            for image in images {
                for (i, value) in image.iter() {
                    kept.extend([format!("--pcr{i}"), value.clone()]);
                }
            }
            *args = kept;
        })
        .unwrap();
}

/// Restarts node `id` (from 0) on `program`, its proxy admitting `images`.
async fn run_node_on(
    cluster: &mut SimCluster,
    id: usize,
    program: &Path,
    images: &[&Measurements],
) {
    let program = program.to_path_buf();
    cluster
        .edit_command(&format!("enclave-{id}"), |p, _| *p = program)
        .unwrap();
    pin_proxy(cluster, id, images);
    cluster.restart_enclave(id).await.unwrap();
    cluster.restart(&format!("proxy-{id}")).await.unwrap();
}

/// Signs EdDSA until one signature was made by a node among `on_new` together with one not
/// among them (the coordinator rotates through the usable quorums); the nodes of it.
async fn sign_mixed(
    api: &ApiClient,
    (cluster, key): (ClusterId, &KeyInfo),
    approver: &SigningKey,
    on_new: &[u16],
) -> Vec<u16> {
    // The coordinator rotates through the usable quorums: a mixed one comes within a few
    // requests once every pair admitted each other (`wait_restarted`).
    for i in 0..60 {
        let message = format!("mixed {on_new:?} {i}").into_bytes();
        let r = ops::sign(
            api,
            cluster,
            key.key_id.as_str(),
            &[],
            Payload::raw(message.clone()),
            std::slice::from_ref(approver),
            None,
        )
        .await;
        // A failed attempt (a quorum whose node was just restarted) is tried again.
        let Ok(r) = r.inspect_err(|e| eprintln!("rotation: a signature failed: {e}")) else {
            continue;
        };
        if r.status != "completed" {
            continue;
        }
        let nodes = r.signatures[0].nodes.clone();
        cohort_tests::verify_eddsa(&key.public_key.0, &message, &r.signatures[0].signature.0);
        if nodes.iter().any(|n| on_new.contains(n)) && nodes.iter().any(|n| !on_new.contains(n)) {
            return nodes;
        }
    }
    panic!("60 signatures and no quorum mixing nodes {on_new:?} with the others");
}

/// A full ECDSA signature over a fresh digest, checked with k256.
async fn sign_ecdsa(api: &ApiClient, (cluster, key): (ClusterId, &KeyInfo), approver: &SigningKey) {
    let digest: [u8; 32] = sha2::Sha256::digest(b"rotation ecdsa").into();
    let r = ops::sign(
        api,
        cluster,
        key.key_id.as_str(),
        &[],
        Payload::raw(digest.to_vec()),
        std::slice::from_ref(approver),
        Some(PresignatureUse::Never),
    )
    .await
    .unwrap();
    assert_eq!(r.status, "completed", "{r:?}");
    cohort_tests::verify_ecdsa(&key.public_key.0, &digest, &r.signatures[0].signature.0);
}

/// Waits (up to 180 s: pools fill in the background) until every quorum's pool of `key` is
/// full.
async fn wait_presignatures(api: &ApiClient, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let status: ClusterStatus = api.get("/v1/cluster").await.unwrap();
        let pools: Vec<_> = status.pools.iter().filter(|p| p.key_id == key).collect();
        if !pools.is_empty() && pools.iter().all(|p| p.ready >= p.target) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the pools of {key} not full within 180 s: {:?}",
            status.pools
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 120 s) until each client has completed `more` requests beyond `before`.
async fn wait_progress(before: &[usize], now: impl Fn() -> Vec<usize>, more: [usize; 2]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let counts = now();
        if counts
            .iter()
            .zip(before)
            .zip(more)
            .all(|((n, b), m)| *n >= b + m)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a client stalled: {before:?} then {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts that none of a client's requests failed for good and that every signature
/// verifies, and prints the figures.
fn report(key: &KeyInfo, kind: Kind, requests: Vec<Request>) {
    let failed: Vec<&Request> = requests.iter().filter(|r| r.result.is_none()).collect();
    assert!(
        failed.is_empty(),
        "{kind:?}: {} of {} requests failed for good: {:?}",
        failed.len(),
        requests.len(),
        failed.iter().map(|r| &r.errors).collect::<Vec<_>>()
    );
    let mut presigned = 0;
    for r in &requests {
        let s = &r.result.as_ref().unwrap().signatures[0];
        kind.verify(&key.public_key.0, &r.message, &s.signature.0);
        presigned += usize::from(s.presigned);
    }
    if kind == Kind::EcdsaPresigned {
        // The client started once the pools were full.
        assert!(
            presigned > 0,
            "no ECDSA request was signed from a presignature"
        );
    }
    let first_failed = requests.iter().filter(|r| !r.first_ok).count();
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    for e in requests.iter().flat_map(|r| &r.errors) {
        *errors.entry(e.as_str()).or_default() += 1;
    }
    let mut finished: Vec<Duration> = requests.iter().map(|r| r.finished).collect();
    finished.sort();
    let pause = finished.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    let mut latency: Vec<Duration> = requests.iter().map(|r| r.finished - r.started).collect();
    latency.sort();
    eprintln!(
        "rotation report ({kind:?}): {} requests over {:.1} s while 3 nodes moved to the new \
         image, {presigned} from a presignature; {first_failed} failed at first submission \
         ({errors:?}), 0 failed after resubmission; longest pause between two completed \
         signatures {} ms; latency p50 {} ms, max {} ms",
        requests.len(),
        finished.last().unwrap().as_secs_f64(),
        pause.as_millis(),
        latency[latency.len() / 2].as_millis(),
        latency.last().unwrap().as_millis(),
    );
}

/// Waits (up to 60 s) until `line` is in the file at `path`.
async fn wait_for_line(path: &Path, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(path).is_ok_and(|t| t.contains(line)) {
        assert!(
            Instant::now() < deadline,
            "no \"{line}\" in {} within 60 s",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_image_rotation_keeps_the_cluster_signing() {
    let (dir, options) = sim_options("rotation-");
    let old_bin = cohort_tests::bin("cohort-enclave");
    let new_bin = dir.path().join("cohort-enclave-next");
    std::fs::copy(&old_bin, &new_bin).unwrap();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&new_bin)
            .unwrap();
        f.write_all(b"\ncohort build note: the next release\n")
            .unwrap();
    }
    let (old_image, old) = image_of(&old_bin);
    let (new_image, new) = image_of(&new_bin);
    assert_ne!(old_image.pcr0, new_image.pcr0);

    let mut cluster = SimCluster::start(&options).await.unwrap();
    let api = cluster.info.api().unwrap();
    wait_up(&api).await;
    let admins: Vec<SigningKey> = (0..2)
        .map(|i| SigningKey::from_bytes(&[60 + i; 32]))
        .collect();
    let approver = SigningKey::from_bytes(&[70; 32]);
    let trust = ops::genesis(
        &api,
        &cohort_tests::expectations(&cluster),
        "rotation",
        &admins,
        2,
    )
    .await
    .unwrap();
    let cluster_id = trust.cluster_id();
    let mut keys = Vec::new();
    for (id, scheme) in [
        ("hot", Scheme::EddsaEd25519),
        ("cold", Scheme::EcdsaSecp256k1),
    ] {
        let info = ops::create_key(
            &api,
            cluster_id,
            id,
            scheme,
            2,
            &admins,
            &[approver.verifying_key().to_bytes()],
            1,
        )
        .await
        .unwrap();
        keys.push(trust.verify_key(info).unwrap().info().clone());
    }
    let [eddsa, ecdsa] = [keys[0].clone(), keys[1].clone()];

    // 1. The KMS key policies admit both images (Terraform's measurements list).
    kms_admits(&cluster, &[&old, &new]).await;
    // 2. The admins accept both: image version 1.
    let (admin_chain, image_chain, _, _) = cli::images::fetch(&api, &trust).await.unwrap();
    assert_eq!(image_chain.current().version, 0);
    let (_, answer) = cli::images::accept_images(
        &api,
        &trust,
        (&admin_chain, &image_chain),
        &[old_image.clone(), new_image.clone()],
        &admins,
    )
    .await
    .unwrap();
    assert_eq!((answer.version, answer.applied.len()), (1, 3), "{answer:?}");

    // 3. The clients sign throughout; each node in turn moves to the new image. The ECDSA
    // client starts once the pools are full, so that it is shown signing from presignatures.
    wait_presignatures(&api, &ecdsa.key_id).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (mut clients, mut counters) = (Vec::new(), Vec::new());
    for (key, kind) in [(&eddsa, Kind::Eddsa), (&ecdsa, Kind::EcdsaPresigned)] {
        let done = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(client(
            api.clone(),
            (cluster_id, key.key_id.clone(), kind),
            approver.clone(),
            stop.clone(),
            done.clone(),
        ));
        clients.push((key.clone(), kind, task));
        counters.push(done);
    }
    let progress = || -> Vec<usize> { counters.iter().map(|c| c.load(Ordering::SeqCst)).collect() };
    wait_progress(&[0, 0], progress, [10, 1]).await;
    let mut on_new = Vec::new();
    for id in 0..3usize {
        let before = progress();
        let identity = cohort_tests::identity_of(&api, id).await;
        run_node_on(&mut cluster, id, &new_bin, &[&new]).await;
        cohort_tests::wait_restarted(&api, id, identity).await;
        on_new.push(id as u16);
        if id < 2 {
            // A node on the new image signs with one on the old.
            let nodes = sign_mixed(&api, (cluster_id, &eddsa), &approver, &on_new).await;
            eprintln!("rotation: node {id} on the new image; mixed quorum {nodes:?}");
        }
        sign_ecdsa(&api, (cluster_id, &ecdsa), &approver).await;
        // Both clients kept going through this node's restart.
        wait_progress(&before, progress, [5, 1]).await;
    }

    // 4. The admins retire the old image: version 2.
    let (admin_chain, image_chain, _, _) = cli::images::fetch(&api, &trust).await.unwrap();
    let (_, answer) = cli::images::accept_images(
        &api,
        &trust,
        (&admin_chain, &image_chain),
        std::slice::from_ref(&new_image),
        &admins,
    )
    .await
    .unwrap();
    assert_eq!((answer.version, answer.applied.len()), (2, 3), "{answer:?}");
    stop.store(true, Ordering::SeqCst);
    for (key, kind, task) in clients {
        report(&key, kind, task.await.unwrap());
    }

    // 5. A parent restarts its node on the retired image, its proxy and (until the operator
    // narrows it) its KMS key still admitting it: the enclave refuses its own sealed state
    // and the coordinator refuses its document; the other two keep signing.
    run_node_on(&mut cluster, 0, &old_bin, &[&old, &new]).await;
    wait_for_line(&dir.path().join("node-0/proxy.log"), "other_image").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: ClusterStatus = api.get("/v1/cluster").await.unwrap();
        let node = &status.nodes[0];
        if !node.healthy
            && node
                .attestation_error
                .as_deref()
                .is_some_and(|e| e.contains("pcr_mismatch"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{node:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let nodes = sign_mixed(&api, (cluster_id, &eddsa), &approver, &[1]).await;
    assert!(!nodes.contains(&0), "{nodes:?}");
    // The operator narrows the KMS key policies to the new image and brings the node back.
    kms_admits(&cluster, &[&new]).await;
    let identity = cohort_tests::identity_of(&api, 0).await;
    run_node_on(&mut cluster, 0, &new_bin, &[&new]).await;
    cohort_tests::wait_restarted(&api, 0, identity).await;
    sign_ecdsa(&api, (cluster_id, &ecdsa), &approver).await;
    let (_, image_chain, _, _) = cli::images::fetch(&api, &trust).await.unwrap();
    assert_eq!(image_chain.current().version, 2);
    assert_eq!(image_chain.current().images, vec![new_image]);
    cluster.stop().await.unwrap();
}
