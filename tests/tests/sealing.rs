//! KMS sealing in a simulated cluster of real processes: every node's shares are sealed under
//! its own KMS key in the local stand-in, whose policy admits only the measured enclave image.
//! A restarted enclave unseals and signs; an enclave of another binary is refused by KMS even
//! when its (compromised) proxy lets it through; with KMS down a restarted enclave stays sealed
//! and recovers when KMS is back.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use attestation::sim::{measure_file, simulated_pcrs};
use cli::ops;
use cli::sim::{SimCluster, SimOptions};
use coordinator::api::{
    ApprovedJson, ClusterStatus, KeyInfo, NodeStatus, SignRequestJson, SignResult,
};
use coordinator::client::{ApiClient, HttpClient};
use ed25519_dalek::SigningKey;
use protocol::policy::Scheme;
use protocol::{EnclaveRequest, EnclaveResponse};

const CLUSTER: &str = "sealing-test";

async fn node(api: &ApiClient, id: usize) -> NodeStatus {
    let status: ClusterStatus = api.get("/v1/cluster").await.unwrap();
    status.nodes[id].clone()
}

/// Waits until node `id` (from 0) is in `phase` with `keys` keys (and, when operational,
/// healthy).
async fn wait_node(api: &ApiClient, id: usize, phase: &str, keys: u32, within: Duration) {
    let start = Instant::now();
    loop {
        let n = node(api, id).await;
        // Operational and healthy: its peers admitted it again, it can sign.
        if n.phase.as_deref() == Some(phase)
            && n.keys == keys
            && n.attested
            && (phase != "operational" || n.healthy)
        {
            return;
        }
        assert!(
            start.elapsed() < within,
            "node {id} is not {phase} with {keys} keys after {within:?}: {n:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Restarts node `id`'s enclave and waits until the coordinator has attested the new process:
/// until then its view of the node is the old process's (operational, healthy, admitted).
async fn restart_enclave(cluster: &mut SimCluster, api: &ApiClient, id: usize) {
    let before = node(api, id).await.identity;
    cluster.restart_enclave(id).await.unwrap();
    let start = Instant::now();
    loop {
        let n = node(api, id).await;
        if n.identity.is_some() && n.identity != before {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the coordinator never attested node {id}'s new process: {n:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn sign_eddsa(
    api: &ApiClient,
    key: &KeyInfo,
    approvers: &[SigningKey],
    msg: &[u8],
) -> Vec<u16> {
    let cluster = ops::cluster_id(api).await.unwrap();
    let result = ops::sign(
        api,
        cluster,
        &key.key_id,
        &[],
        protocol::policy::Payload::raw(msg.to_vec()),
        approvers,
        None,
    )
    .await
    .unwrap();
    assert_eq!(result.status, "completed", "{result:?}");
    let sig = &result.signatures[0];
    cohort_tests::verify_eddsa(&key.public_key.0, msg, &sig.signature.0);
    sig.nodes.clone()
}

/// The node key and KMS key node `id`'s current identity document binds (verified under the
/// cluster's root with a fresh nonce), or `None` for a version-1 document.
async fn bound_node_key(
    cluster: &SimCluster,
    id: usize,
) -> anyhow::Result<Option<attestation::NodeBinding>> {
    let root = std::fs::read_to_string(&cluster.info.root_pem_path)?;
    let mut policy = attestation::Policy::default().with_root(attestation::pem_to_der(&root)?);
    let nonce = rand::random::<[u8; 32]>().to_vec();
    policy.nonce = Some(nonce.clone());
    let document = HttpClient::new()
        .fetch_attestation(&cluster.info.nodes[id].proxy_url, &nonce)
        .await?;
    Ok(attestation::verify(&document, &policy, cohort_tests::now())?.node)
}

/// Waits until node `id`'s enclave (a restarted one answers only once it listens, and binds its
/// node key only once it restored it) attests binding `want`.
async fn wait_bound(cluster: &SimCluster, id: usize, want: Option<&attestation::NodeBinding>) {
    let start = Instant::now();
    loop {
        let got = bound_node_key(cluster, id).await;
        if got.as_ref().is_ok_and(|g| g.as_ref() == want) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "node {id} does not bind {want:?}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn log(cluster: &SimCluster, file: &str) -> String {
    std::fs::read_to_string(cluster.dir.join(file)).unwrap_or_default()
}

fn audit(cluster: &SimCluster) -> Vec<serde_json::Value> {
    log(cluster, "kms/audit.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn shares_sealed_under_kms_survive_restarts_and_only_the_measured_image_opens_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = SimOptions::new(3, dir.path().to_path_buf()).unwrap();
    options.bin_dir = cohort_tests::bin_dir();
    options.fixture_primes = true;
    let mut cluster = SimCluster::start(&options).await.unwrap();
    let api = cluster.info.api().unwrap();
    let admins: Vec<SigningKey> = (0..2)
        .map(|i| SigningKey::from_bytes(&[60 + i; 32]))
        .collect();
    let approvers: Vec<SigningKey> = (0..2)
        .map(|i| SigningKey::from_bytes(&[70 + i; 32]))
        .collect();
    let approver_keys: Vec<[u8; 32]> = approvers
        .iter()
        .map(|k| k.verifying_key().to_bytes())
        .collect();
    // ADR 0013 step 5: node 1 enrolls before the genesis ceremony. Its node key is sealed under
    // the KMS key it names (its own, as an ARN), its documents bind both from then on, it is
    // never enrolled twice (the ceremony finds it enrolled and takes its key from its verified
    // document), and every restart below gives it the same node key back.
    let http = HttpClient::new();
    let proxy1 = cluster.info.nodes[1].proxy_url.clone();
    let arn = protocol::KmsKeyArn::parse(&cluster.info.nodes[1].kms_key_arn).unwrap();
    wait_bound(&cluster, 1, None).await;
    let enroll = EnclaveRequest::Enroll {
        kms_key_arn: arn.clone(),
    };
    let node_key: [u8; 32] = match http.enclave_call(&proxy1, &enroll).await.unwrap() {
        EnclaveResponse::Enrolled { node_key, .. } => node_key.as_slice().try_into().unwrap(),
        other => panic!("enroll: {other:?}"),
    };
    assert!(cluster.dir.join("node-1/blobs/node-key.blob").exists());
    let enrolled = attestation::NodeBinding::new(node_key, arn.as_str()).unwrap();
    assert_eq!(
        bound_node_key(&cluster, 1).await.unwrap(),
        Some(enrolled.clone())
    );
    let again = http.enclave_call(&proxy1, &enroll).await.unwrap_err();
    assert!(again.to_string().contains("already_enrolled"), "{again}");
    wait_node(&api, 1, "enrolled", 0, Duration::from_secs(30)).await;
    restart_enclave(&mut cluster, &api, 1).await;
    wait_bound(&cluster, 1, Some(&enrolled)).await;
    wait_node(&api, 1, "enrolled", 0, Duration::from_secs(30)).await;
    let trust = ops::genesis(
        &api,
        &cohort_tests::expectations(&cluster),
        CLUSTER,
        &admins,
        2,
    )
    .await
    .unwrap();
    let cluster_id = trust.cluster_id();
    let key = ops::create_key(
        &api,
        cluster_id,
        "vault",
        Scheme::EddsaEd25519,
        2,
        &admins,
        &approver_keys,
        2,
    )
    .await
    .unwrap();

    // Every node sealed through KMS, under its own key, as the measured image.
    let pcr0 = cluster.info.pcrs[0].clone();
    let events = audit(&cluster);
    for n in &cluster.info.nodes {
        let allowed = events
            .iter()
            .filter(|e| {
                e["operation"] == "kms:GenerateDataKey"
                    && e["decision"] == "allow"
                    && e["key_id"] == n.kms_key_id.as_str()
                    && e["recipient"]["pcr0"] == pcr0.as_str()
            })
            .count();
        // Genesis, auxiliary info and the key share.
        assert!(allowed >= 3, "node {}: {allowed} data keys", n.id);
        let policy = log(&cluster, &format!("node-{}/kms-policy.json", n.id));
        assert!(policy.contains(&pcr0) && policy.contains("DenyWithoutAttestation"));
        // The sim's key policies require the enclave's encryption context (issue 18), and every
        // data key the cluster got was asked for with one: a blob kind, a key id, and this
        // node's key (every KMS call comes after enrollment).
        assert!(policy.contains("kms:EncryptionContextKeys"), "{policy}");
        for e in events.iter().filter(|e| {
            e["decision"] == "allow"
                && e["key_id"] == n.kms_key_id.as_str()
                && e["operation"] == "kms:GenerateDataKey"
        }) {
            let context = &e["encryption_context"];
            assert!(
                context["cohort:blob"].is_string()
                    && context["cohort:id"].is_string()
                    && context["cohort:node"].is_string(),
                "{e}"
            );
        }
        for entry in std::fs::read_dir(cluster.dir.join(format!("node-{}/blobs", n.id))).unwrap() {
            let blob = std::fs::read(entry.unwrap().path()).unwrap();
            let v: ciborium::Value = ciborium::from_reader(blob.as_slice()).unwrap();
            let authority = v
                .as_map()
                .unwrap()
                .iter()
                .find(|(k, _)| k.as_text() == Some("authority"))
                .and_then(|(_, v)| v.as_text().map(str::to_string));
            assert_eq!(authority.as_deref(), Some("kms"));
        }
    }

    // A restarted enclave unseals through KMS and signs (node 1 is down, so node 0 must sign).
    cluster.kill("enclave-1").await.unwrap();
    restart_enclave(&mut cluster, &api, 0).await;
    wait_node(&api, 0, "operational", 1, Duration::from_secs(30)).await;
    let signers = sign_eddsa(&api, &key, &approvers, b"after a restart").await;
    assert_eq!(signers, vec![0, 2], "nodes 0 and 2 signed");
    restart_enclave(&mut cluster, &api, 1).await;
    wait_node(&api, 1, "operational", 1, Duration::from_secs(30)).await;
    wait_bound(&cluster, 1, Some(&enrolled)).await;
    // The ceremony enrolled the others: node 0 binds its own node key and KMS key.
    let node0 = bound_node_key(&cluster, 0).await.unwrap().unwrap();
    assert_eq!(node0.kms_key_arn(), cluster.info.nodes[0].kms_key_arn);
    assert_ne!(node0.node_key, enrolled.node_key);

    // KMS down while an enclave restarts: it stays sealed (and out of quorums), the proxy
    // retries, and it recovers when KMS is back.
    cluster.kill("kms").await.unwrap();
    restart_enclave(&mut cluster, &api, 1).await;
    let start = Instant::now();
    while !log(&cluster, "node-1/proxy.log").contains("code=sealing_unavailable") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the proxy never reported the outage: {}",
            log(&cluster, "node-1/proxy.log")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The coordinator sees it at its next poll of the proxy; KMS stays down until then, so the
    // state waited for holds (sealed: ready, no keys, not healthy).
    wait_node(&api, 1, "ready", 0, Duration::from_secs(30)).await;
    let n1 = node(&api, 1).await;
    assert_eq!((n1.phase.as_deref(), n1.keys), (Some("ready"), 0), "{n1:?}");
    assert!(!n1.healthy);
    cluster.restart("kms").await.unwrap();
    wait_node(&api, 1, "operational", 1, Duration::from_secs(30)).await;
    wait_bound(&cluster, 1, Some(&enrolled)).await;
    cluster.kill("enclave-2").await.unwrap();
    let signers = sign_eddsa(&api, &key, &approvers, b"after the outage").await;
    assert_eq!(signers, vec![0, 1]);
    restart_enclave(&mut cluster, &api, 2).await;
    wait_node(&api, 2, "operational", 1, Duration::from_secs(30)).await;

    // Node 0 runs another binary (one byte appended: another PCR0). Its proxy is compromised
    // and lets it through; KMS refuses it, so it never gets its shares.
    let other = dir.path().join("cohort-enclave-other");
    let enclave_bin = cohort_tests::bin("cohort-enclave");
    std::fs::copy(&enclave_bin, &other).unwrap();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&other)
            .unwrap();
        f.write_all(b"\0").unwrap();
    }
    let other_pcrs = simulated_pcrs(&measure_file(&other).unwrap());
    assert_ne!(hex::encode(&other_pcrs[&0]), pcr0);
    cluster
        .edit_command("enclave-0", |program, _| *program = other.clone())
        .unwrap();
    cluster
        .edit_command("proxy-0", |_, args| {
            for i in 0..3 {
                args.extend([format!("--pcr{i}"), hex::encode(&other_pcrs[&i])]);
            }
        })
        .unwrap();
    cluster.restart("proxy-0").await.unwrap();
    cluster.restart_enclave(0).await.unwrap();
    let other_pcr0 = hex::encode(&other_pcrs[&0]);
    let start = Instant::now();
    while !audit(&cluster)
        .iter()
        .any(|e| e["decision"] == "deny" && e["recipient"]["pcr0"] == other_pcr0.as_str())
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "KMS was never asked by the other image"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let health = cohort_tests::wait_for_status(
        &cluster.info.nodes[0].proxy_url,
        "attested",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(
        health["pcrs"]["0"],
        other_pcr0.as_str(),
        "the compromised proxy admits it"
    );
    // KMS kept its shares from it; the coordinator (which checks measurements itself) does not
    // attest it either.
    let n0 = node(&api, 0).await;
    assert_eq!((n0.phase.as_deref(), n0.keys), (Some("ready"), 0), "{n0:?}");
    assert!(!n0.attested && !n0.healthy, "{n0:?}");
    let proxy_log = log(&cluster, "node-0/proxy.log");
    assert!(
        proxy_log.contains("AccessDeniedException"),
        "the proxy log says why"
    );
    // With node 1 down, only node 0 could complete a quorum with node 2: nothing is signed.
    // (The coordinator sees node 0 without keys and reports no quorum at once.)
    cluster.kill("enclave-1").await.unwrap();
    // A request valid for 3 s: the coordinator gives up when it expires.
    let mut request = cli::requests::sign_request(
        cluster_id,
        (&key.key_id, key.policy_version),
        &[],
        vec![protocol::policy::Payload::raw(b"must not sign".to_vec())],
    );
    request.expiry = request.created + 3;
    let body =
        ApprovedJson::<SignRequestJson>::from_wire(&cli::requests::approve(&request, &approvers));
    let answer: Result<SignResult, _> = api.post("/v1/signatures", &body).await;
    match answer {
        Ok(r) => assert_ne!(r.status, "completed", "{r:?}"),
        Err(e) => {
            let e = e.to_string();
            assert!(
                e.contains("no_quorum") || e.contains("deadline_exceeded"),
                "{e}"
            );
        }
    }

    // The measured binary again: it unseals and signs.
    cluster
        .edit_command("enclave-0", |program, _| *program = enclave_bin.clone())
        .unwrap();
    restart_enclave(&mut cluster, &api, 0).await;
    restart_enclave(&mut cluster, &api, 1).await;
    wait_node(&api, 0, "operational", 1, Duration::from_secs(30)).await;
    wait_node(&api, 1, "operational", 1, Duration::from_secs(30)).await;
    cluster.kill("enclave-2").await.unwrap();
    let signers = sign_eddsa(&api, &key, &approvers, b"measured image again").await;
    assert_eq!(signers, vec![0, 1]);
    cluster.stop().await.unwrap();
}
