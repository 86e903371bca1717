//! Enclaves and proxies as real processes: attestation through the proxies, refusal of a wrong
//! measurement, bad input, and an enclave restart.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::time::Duration;

use attestation::{Policy, verify};
use cli::client::HttpClient;
use cli::sim::{SimCluster, SimOptions};
use cohort_tests::{SimEnv, now, wait_for_status};
use http::{Method, StatusCode};
use protocol::{EnclaveRequest, EnclaveResponse, ErrorCode};
use rand::RngCore;

fn nonce() -> Vec<u8> {
    let mut n = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn three_enclaves_attest_through_their_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = SimOptions::new(3, dir.path().to_path_buf()).unwrap();
    options.bin_dir = cohort_tests::bin_dir();
    let cluster = SimCluster::start(&options).await.unwrap();
    let env = SimEnv::new(&cluster.dir).unwrap();
    let client = HttpClient::new();

    let mut identities = BTreeSet::new();
    for node in &cluster.info.nodes {
        let nonce = nonce();
        let document = client
            .fetch_attestation(&node.proxy_url, &nonce)
            .await
            .unwrap();
        let mut policy = Policy::default().with_root(env.root_der.clone());
        for (i, v) in env.pcrs.iter().enumerate() {
            policy = policy.allow_pcr(i, v.clone());
        }
        policy.nonce = Some(nonce.clone());
        policy.max_age = Some(Duration::from_secs(60));
        policy.require_identity = true;
        let doc = verify(&document, &policy, now()).unwrap();
        assert_eq!(doc.module_id, node.module_id);
        let identity = doc.identity.unwrap();
        assert!(
            identities.insert(identity.signing),
            "identity keys are per enclave"
        );

        // The proxy's own view agrees with what the client verified.
        let health = wait_for_status(&node.proxy_url, "attested", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(health["identity"]["signing"], hex::encode(identity.signing));
        assert_eq!(health["pcrs"]["0"], hex::encode(&env.pcrs[0]));

        // A replayed document does not pass for a fresh one.
        let mut replay = policy.clone();
        replay.nonce = Some(nonce_other(&nonce));
        assert_eq!(
            verify(&document, &replay, now()).unwrap_err().kind(),
            "nonce_mismatch"
        );
    }
    cluster.stop().await.unwrap();
}

fn nonce_other(n: &[u8]) -> Vec<u8> {
    n.iter().map(|b| b ^ 0xff).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_expecting_another_pcr0_refuses_its_enclave() {
    let dir = tempfile::tempdir().unwrap();
    let env = SimEnv::new(dir.path()).unwrap();
    let (_enclave, socket) = env.enclave("e1").unwrap();
    let wrong = hex::encode([0x5Au8; 48]);
    let (_bad_proxy, bad_url) = env.proxy("p-wrong", &socket, &wrong).await.unwrap();
    let (_good_proxy, good_url) = env
        .proxy("p-right", &socket, &hex::encode(&env.pcrs[0]))
        .await
        .unwrap();

    let health = wait_for_status(&bad_url, "refused", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(health["kind"], "pcr_mismatch", "{health}");
    assert!(
        health["reason"].as_str().unwrap().contains("PCR0"),
        "{health}"
    );

    let client = HttpClient::new();
    let (status, _) = client.get(&format!("{bad_url}/healthz")).await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let frame = protocol::encode_frame(&EnclaveRequest::Status).unwrap();
    let (status, body) = client
        .send(
            Method::POST,
            &format!("{bad_url}/v1/enclave"),
            Some("application/cbor"),
            frame.clone(),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "enclave_not_attested");
    assert!(body["error"]["message"].as_str().unwrap().contains("PCR0"));

    // The same enclave, behind a proxy with the right measurement, is served.
    wait_for_status(&good_url, "attested", Duration::from_secs(30))
        .await
        .unwrap();
    let reply = client
        .enclave_call(&good_url, &EnclaveRequest::Status)
        .await
        .unwrap();
    assert!(
        matches!(
            reply,
            EnclaveResponse::Status {
                phase: protocol::Phase::Ready,
                ..
            }
        ),
        "{reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_frames_and_routes_get_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let env = SimEnv::new(dir.path()).unwrap();
    let (_enclave, socket) = env.enclave("e1").unwrap();
    let (_proxy, url) = env
        .proxy("p1", &socket, &hex::encode(&env.pcrs[0]))
        .await
        .unwrap();
    wait_for_status(&url, "attested", Duration::from_secs(30))
        .await
        .unwrap();
    let client = HttpClient::new();
    let relay = format!("{url}/v1/enclave");

    let post = |body: Vec<u8>| {
        let client = client.clone();
        let relay = relay.clone();
        async move {
            let (status, body) = client
                .send(Method::POST, &relay, Some("application/cbor"), body)
                .await
                .unwrap();
            (status, body)
        }
    };
    let code = |body: &[u8]| -> String {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        v["error"]["code"].as_str().unwrap().to_string()
    };

    // Shorter than a header, a prefix that disagrees with the body, a prefix over the maximum.
    let (s, b) = post(vec![0, 0]).await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::BAD_REQUEST, "bad_frame")
    );
    let (s, b) = post(vec![0, 0, 0, 9, 1, 2]).await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::BAD_REQUEST, "bad_frame")
    );
    let (s, b) = post(vec![0xff, 0xff, 0xff, 0xff]).await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::BAD_REQUEST, "bad_frame")
    );
    // A body over the frame limit is cut off before it is read in full.
    let (s, b) = post(vec![0u8; protocol::MAX_FRAME_LEN + 16]).await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );

    // Well-framed garbage reaches the enclave, which answers with a typed error frame.
    let mut garbage = vec![0, 0, 0, 3];
    garbage.extend_from_slice(&[0xff, 0x00, 0x13]);
    let (s, b) = post(garbage).await;
    assert_eq!(s, StatusCode::OK);
    match protocol::decode_frame::<EnclaveResponse>(&b).unwrap() {
        EnclaveResponse::Error(e) => assert_eq!(e.code, ErrorCode::BadRequest),
        other => panic!("unexpected {other:?}"),
    }
    // A frame of another protocol version: [2, "status"].
    let mut v2 = vec![0, 0, 0, 9];
    v2.extend_from_slice(&[0x82, 0x02, 0x66, b's', b't', b'a', b't', b'u', b's']);
    let (_, b) = post(v2).await;
    match protocol::decode_frame::<EnclaveResponse>(&b).unwrap() {
        EnclaveResponse::Error(e) => assert_eq!(e.code, ErrorCode::UnsupportedVersion),
        other => panic!("unexpected {other:?}"),
    }
    // An oversized nonce is refused by the enclave.
    let reply = client
        .enclave_call(
            &url,
            &EnclaveRequest::Attest {
                nonce: Some(vec![0; 600].into()),
            },
        )
        .await
        .unwrap();
    assert!(matches!(reply, EnclaveResponse::Error(e) if e.code == ErrorCode::BadRequest));

    let (s, b) = client.get(&format!("{url}/nope")).await.unwrap();
    assert_eq!((s, code(&b).as_str()), (StatusCode::NOT_FOUND, "not_found"));
    let (s, b) = client.get(&relay).await.unwrap();
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );

    // Sealed state is the proxy's to hand back: a relayed restore never reaches the enclave.
    let restore = protocol::encode_frame(&EnclaveRequest::Restore {
        blobs: vec![vec![1, 2, 3].into()],
    })
    .unwrap();
    let (s, b) = post(restore).await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::CONFLICT, "restore_is_the_proxys")
    );

    // After all that the enclave still serves.
    let reply = client
        .enclave_call(&url, &EnclaveRequest::Status)
        .await
        .unwrap();
    assert!(matches!(reply, EnclaveResponse::Status { .. }));
}

/// One enclave (`e1`) behind its proxy (`p1`), attested: the environment, both processes, the
/// proxy's URL and its health answer.
async fn one_attested_enclave(
    dir: &std::path::Path,
) -> (
    SimEnv,
    cohort_tests::Proc,
    cohort_tests::Proc,
    String,
    serde_json::Value,
) {
    let env = SimEnv::new(dir).unwrap();
    let (enclave, socket) = env.enclave("e1").unwrap();
    let (proxy, url) = env
        .proxy("p1", &socket, &hex::encode(&env.pcrs[0]))
        .await
        .unwrap();
    let health = wait_for_status(&url, "attested", Duration::from_secs(30))
        .await
        .unwrap();
    (env, enclave, proxy, url, health)
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_notices_an_enclave_restart_and_reattests() {
    let dir = tempfile::tempdir().unwrap();
    let (env, mut enclave, _proxy, url, first) = one_attested_enclave(dir.path()).await;

    enclave.kill().await;
    let client = HttpClient::new();
    // The next relayed request fails and takes the proxy out of service.
    let err = client
        .enclave_call(&url, &EnclaveRequest::Status)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("enclave_unreachable"), "{err}");
    wait_for_status(&url, "pending", Duration::from_secs(10))
        .await
        .unwrap();

    let (_enclave2, _) = env.enclave("e1").unwrap();
    let second = wait_for_status(&url, "attested", Duration::from_secs(30))
        .await
        .unwrap();
    assert_ne!(
        first["identity"]["signing"], second["identity"]["signing"],
        "a restarted enclave has new identity keys"
    );
}

/// An enclave that restarts between two health checks — never seen down, back in the same
/// phase — is still noticed: its status names another identity, so the coordinator attests it
/// again and reports the restart. (Stop 28's flaky sealing test: the coordinator put a fresh
/// process that had admitted no peer in a quorum, and sixteen sessions failed.)
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_between_two_health_checks_is_noticed() {
    use coordinator::nodes::{NodeEvent, Nodes};

    let dir = tempfile::tempdir().unwrap();
    let (env, mut enclave, _proxy, url, _) = one_attested_enclave(dir.path()).await;
    let mut policy = Policy::default().with_root(env.root_der.clone());
    for (i, v) in env.pcrs.iter().enumerate() {
        policy = policy.allow_pcr(i, v.clone());
    }
    let nodes = std::sync::Arc::new(Nodes::new(vec![url.clone()], policy));
    // Attestation is due only hourly: only a restart makes the coordinator attest again.
    let hour = Duration::from_secs(3600);
    assert_eq!(nodes.check(hour).await, vec![NodeEvent::FirstSeen(0)]);
    let first = nodes.identity(0).unwrap().signing;
    assert_eq!(nodes.check(hour).await, vec![]);

    // The enclave restarts, and its proxy attests the new process, with no check in between.
    enclave.kill().await;
    let (_enclave2, _) = env.enclave("e1").unwrap();
    let client = HttpClient::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(EnclaveResponse::Status {
            identity: Some(id), ..
        }) = client.enclave_call(&url, &EnclaveRequest::Status).await
        {
            assert_ne!(id.as_slice(), first.as_slice(), "a new process, new keys");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never restarted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert_eq!(nodes.check(hour).await, vec![NodeEvent::Restarted(0)]);
    assert_ne!(nodes.identity(0).unwrap().signing, first);
    assert_eq!(nodes.check(hour).await, vec![]);
}
