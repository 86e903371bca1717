//! Threshold keys and signatures across real enclave and proxy processes, every envelope
//! relayed over HTTP by an untrusted driver: genesis, peer admission by attestation, auxiliary
//! info, 2-of-3 ECDSA and EdDSA keys, many signatures checked by k256 / ed25519-dalek and an
//! independent BIP32 implementation, t-1 refusal, and an enclave restart from sealed blobs.
//!
//! The enclave binary must be built with `--features enclave/test-fixtures` (scripts/test.sh
//! does): its safe primes come from committed fixtures instead of minutes of generation.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cli::requests::{approve, create_key, public, sign_request};
use cli::sim::{SimCluster, SimOptions};
use cohort_tests::{ClusterClient, bip32_child, verify_ecdsa, verify_eddsa};
use coordinator::nodes::new_session_id;
use ed25519_dalek::SigningKey;
use protocol::genesis::ClusterId;
use protocol::policy::{HashFunction, Payload, Scheme};
use protocol::session::{Outcome, SessionKind};
use protocol::{EnclaveRequest, EnclaveResponse, Phase};
use serde_bytes::ByteBuf;
use sha2::Digest;

const CLUSTER: &str = "it-cluster";

struct Keys {
    admins: Vec<SigningKey>,
    approvers: Vec<SigningKey>,
    /// The cluster id the genesis hashes to: what every request names.
    cluster: ClusterId,
}

fn signed(outcomes: &BTreeMap<u16, Outcome>) -> (Vec<u8>, Vec<u8>) {
    let mut result: Option<(Vec<u8>, Vec<u8>)> = None;
    for (node, o) in outcomes {
        match o {
            Outcome::Signed {
                signature,
                public_key,
            } => {
                let r = (signature.to_vec(), public_key.to_vec());
                if let Some(prev) = &result {
                    assert_eq!(prev, &r, "nodes disagree");
                }
                result = Some(r);
            }
            other => panic!("node {node}: {other:?}"),
        }
    }
    result.expect("no outcome")
}

async fn sign(
    client: &ClusterClient,
    keys: &Keys,
    quorum: &[u16],
    key_id: &str,
    path: &[u32],
    payload: Vec<u8>,
    presignature: Option<ByteBuf>,
) -> BTreeMap<u16, Outcome> {
    // With a presignature, `payload` is a preimage the enclaves hash with SHA-256 (a
    // presignature never signs a bare digest); without, it is signed as given.
    let payload = match presignature {
        Some(_) => Payload::hashed(HashFunction::Sha256, payload),
        None => Payload::raw(payload),
    };
    let request = approve(
        &sign_request(keys.cluster, (key_id, 0), path, vec![payload]),
        &keys.approvers[..2],
    );
    let kind = SessionKind::Sign {
        request,
        payload: 0,
        presignature,
    };
    client.run_session(&new_session_id(), quorum, &kind).await
}

async fn create(
    client: &ClusterClient,
    keys: &Keys,
    key_id: &str,
    scheme: Scheme,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let approvers: Vec<ByteBuf> = keys.approvers.iter().map(public).collect();
    let request = approve(
        &create_key(keys.cluster, key_id, scheme, 2, &approvers, 2),
        &keys.admins[..2],
    );
    let outcomes = client
        .run_session(
            &new_session_id(),
            &[0, 1, 2],
            &SessionKind::CreateKey { request },
        )
        .await;
    let mut public_key = None;
    let mut chain = None;
    for (node, o) in &outcomes {
        match o {
            Outcome::KeyCreated {
                public_key: pk,
                chain_code,
                ..
            } => {
                assert_eq!(
                    public_key.get_or_insert(pk.to_vec()),
                    &pk.to_vec(),
                    "nodes disagree on the key"
                );
                chain = chain_code.as_ref().map(|c| c.to_vec());
            }
            other => panic!("node {node}: {other:?}"),
        }
    }
    (public_key.unwrap(), chain)
}

async fn wait_operational(client: &ClusterClient, node: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(EnclaveResponse::Status {
            phase: Phase::Operational,
            keys,
            ..
        }) = client.call(node, &EnclaveRequest::Status).await
            && keys >= 2
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {node} never restored its sealed state"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The clusters of this file each keep two cores busy for a minute: one at a time.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts `n` enclaves and proxies, runs genesis (approved by two of three admins), has every
/// node admit its peers on their own attestation, and generates auxiliary info.
async fn bootstrap(
    n: usize,
    seed: u8,
    enclave_env: Vec<(String, String)>,
) -> (tempfile::TempDir, SimCluster, ClusterClient, Keys) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = SimOptions::new(n, dir.path().to_path_buf()).unwrap();
    options.bin_dir = cohort_tests::bin_dir();
    options.fixture_primes = true;
    options.enclave_env = enclave_env;
    let cluster = SimCluster::start(&options).await.unwrap();
    let client = ClusterClient::new(&cluster.info).unwrap();
    let admins: Vec<SigningKey> = (0..3)
        .map(|i| SigningKey::from_bytes(&[seed + i; 32]))
        .collect();
    let (genesis, receipts) = client
        .found(&cluster.info, CLUSTER, &admins, &admins[1..], 2)
        .await
        .unwrap();
    let keys = Keys {
        admins,
        approvers: (0..3)
            .map(|i| SigningKey::from_bytes(&[seed + 10 + i; 32]))
            .collect(),
        cluster: genesis.request.cluster_id(),
    };
    assert_eq!(receipts.len(), n);
    let refused = client.admit_peers().await;
    assert!(refused.is_empty(), "{refused:?}");
    let all: Vec<u16> = (0..n as u16).collect();
    let aux = client
        .run_session(&new_session_id(), &all, &SessionKind::AuxInfo)
        .await;
    assert!(
        aux.values().all(|o| matches!(o, Outcome::AuxReady { .. })),
        "{aux:?}"
    );
    (dir, cluster, client, keys)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_of_three_keys_sign_across_processes_and_survive_a_restart() {
    // Everything the enclaves log, at the most verbose level, is scanned for secrets below.
    let trace = vec![("RUST_LOG".to_string(), "trace".to_string())];
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let (_dir, mut cluster, client, keys) = bootstrap(3, 40, trace).await;

    let (ecdsa_pk, chain) = create(&client, &keys, "btc-main", Scheme::EcdsaSecp256k1).await;
    let (eddsa_pk, _) = create(&client, &keys, "sol-main", Scheme::EddsaEd25519).await;
    let chain = chain.expect("ECDSA keys carry a chain code");

    // 100 EdDSA signatures over rotating quorums.
    let quorums: [&[u16]; 4] = [&[0, 1], &[1, 2], &[0, 2], &[0, 1, 2]];
    for i in 0..100u32 {
        let message = format!("solana message {i}").into_bytes();
        let (sig, pk) = signed(
            &sign(
                &client,
                &keys,
                quorums[i as usize % 4],
                "sol-main",
                &[],
                message.clone(),
                None,
            )
            .await,
        );
        assert_eq!(pk, eddsa_pk);
        verify_eddsa(&pk, &message, &sig);
    }

    // ECDSA: full signing on the root key and on BIP32 children, and one-round signing from
    // presignatures bound to a path.
    for i in 0..6u32 {
        let quorum = quorums[i as usize % 3];
        let path: Vec<u32> = if i % 2 == 0 { vec![] } else { vec![0, i] };
        let digest: [u8; 32] = sha2::Sha256::digest(format!("tx {i}")).into();
        let (sig, pk) = signed(
            &sign(
                &client,
                &keys,
                quorum,
                "btc-main",
                &path,
                digest.to_vec(),
                None,
            )
            .await,
        );
        assert_eq!(pk, bip32_child(&ecdsa_pk, &chain, &path));
        verify_ecdsa(&pk, &digest, &sig);

        let pid = new_session_id();
        let kind = SessionKind::Presign {
            key_id: "btc-main".into(),
            path: path.clone(),
        };
        let pre = client.run_session(&pid, quorum, &kind).await;
        assert!(
            pre.values().all(|o| *o == Outcome::PresignatureReady),
            "{pre:?}"
        );
        let preimage = format!("presigned tx {i}").into_bytes();
        let digest: [u8; 32] = sha2::Sha256::digest(&preimage).into();
        let (sig, pk) = signed(
            &sign(
                &client,
                &keys,
                quorum,
                "btc-main",
                &path,
                preimage,
                Some(pid),
            )
            .await,
        );
        verify_ecdsa(&pk, &digest, &sig);
    }

    // ... and 88 more, to 100 ECDSA signatures, on rotating quorums and paths.
    for i in 0..88u32 {
        let quorum = quorums[i as usize % 3];
        let path: Vec<u32> = match i % 3 {
            0 => vec![],
            1 => vec![i],
            _ => vec![1, i, 7],
        };
        let digest: [u8; 32] = sha2::Sha256::digest(format!("batch tx {i}")).into();
        let (sig, pk) = signed(
            &sign(
                &client,
                &keys,
                quorum,
                "btc-main",
                &path,
                digest.to_vec(),
                None,
            )
            .await,
        );
        assert_eq!(pk, bip32_child(&ecdsa_pk, &chain, &path));
        verify_ecdsa(&pk, &digest, &sig);
    }

    // A tampering relay, between real processes: altered, duplicated and cross-session
    // envelopes are detected; nothing is signed.
    let fresh = || {
        let r = approve(
            &sign_request(
                keys.cluster,
                ("sol-main", 0),
                &[],
                vec![Payload::raw(b"tamper".to_vec())],
            ),
            &keys.approvers[..2],
        );
        SessionKind::Sign {
            request: r,
            payload: 0,
            presignature: None,
        }
    };
    let altered = run_tampering(&client, &[0, 1], fresh(), |batch| {
        if let Some(e) = batch.first_mut() {
            e.body.push(1);
        }
    })
    .await;
    assert!(no_signature(&altered), "{altered:?}");
    let duplicated = run_tampering(&client, &[0, 1], fresh(), |batch| {
        if let Some(e) = batch.first().cloned() {
            batch.push(e);
        }
    })
    .await;
    // The duplicate reaches one enclave, which aborts; a peer that had all it needed may
    // finish, and its signature is then a correct one.
    for o in duplicated.values() {
        if let Outcome::Signed {
            signature,
            public_key,
        } = o
        {
            verify_eddsa(public_key, b"tamper", signature);
        }
    }
    assert!(
        duplicated
            .values()
            .any(|o| matches!(o, Outcome::Failed { culprits, .. } if !culprits.is_empty())),
        "the duplicating relay's victim names the sender: {duplicated:?}"
    );
    let mut recorded = Vec::new();
    let first = run_tampering(&client, &[1, 2], fresh(), |batch| {
        recorded.extend(batch.iter().cloned())
    })
    .await;
    signed(&first);
    let moved = run_tampering(&client, &[1, 2], fresh(), |batch| *batch = recorded.clone()).await;
    assert!(no_signature(&moved), "{moved:?}");

    // Fewer than t enclaves cannot sign.
    let lonely = sign(
        &client,
        &keys,
        &[2],
        "sol-main",
        &[],
        b"alone".to_vec(),
        None,
    )
    .await;
    assert!(
        lonely.values().all(|o| matches!(o, Outcome::Failed { .. })),
        "{lonely:?}"
    );

    // Restart node 1's enclave: its proxy hands it the sealed blobs, peers admit its new
    // identity, and it signs again with both keys.
    cluster.restart_enclave(1).await.unwrap();
    wait_operational(&client, 1).await;
    let refused = client.admit_peers().await;
    assert!(refused.is_empty(), "{refused:?}");
    let (sig, pk) = signed(
        &sign(
            &client,
            &keys,
            &[1, 2],
            "sol-main",
            &[],
            b"after restart".to_vec(),
            None,
        )
        .await,
    );
    verify_eddsa(&pk, b"after restart", &sig);
    let digest = [0x5Au8; 32];
    let (sig, pk) = signed(
        &sign(
            &client,
            &keys,
            &[0, 1],
            "btc-main",
            &[0, 7],
            digest.to_vec(),
            None,
        )
        .await,
    );
    assert_eq!(pk, bip32_child(&ecdsa_pk, &chain, &[0, 7]));
    verify_ecdsa(&pk, &digest, &sig);

    let dir = cluster.dir.clone();
    cluster.stop().await.unwrap();
    scan_logs_for_secrets(&dir);
}

fn no_signature(outcomes: &BTreeMap<u16, Outcome>) -> bool {
    !outcomes.is_empty()
        && outcomes
            .values()
            .all(|o| !matches!(o, Outcome::Signed { .. }))
        && outcomes
            .values()
            .any(|o| matches!(o, Outcome::Failed { .. }))
}

/// Relays one session by hand through the proxies, letting `tamper` alter each batch.
async fn run_tampering(
    client: &ClusterClient,
    participants: &[u16],
    kind: SessionKind,
    mut tamper: impl FnMut(&mut Vec<protocol::peer::PeerEnvelope>),
) -> BTreeMap<u16, Outcome> {
    let session = new_session_id();
    let mut relay = protocol::relay::Relay::new(participants);
    let absorb = |relay: &mut protocol::relay::Relay, node: u16, r: EnclaveResponse| match r {
        EnclaveResponse::Session(update) => relay.absorb(node, update),
        EnclaveResponse::Error(e) => relay.fail(
            node,
            Outcome::Failed {
                code: e.code.into(),
                message: e.message,
                culprits: vec![],
            },
        ),
        other => panic!("{other:?}"),
    };
    for p in participants {
        let request = EnclaveRequest::StartSession {
            session: session.clone(),
            participants: participants.to_vec(),
            kind: kind.clone(),
        };
        let r = client.call(*p, &request).await.unwrap();
        absorb(&mut relay, *p, r);
    }
    while let Some((node, mut envelopes)) = relay.next_delivery() {
        tamper(&mut envelopes);
        let request = EnclaveRequest::Deliver {
            session: session.clone(),
            envelopes,
        };
        let r = client.call(node, &request).await.unwrap();
        absorb(&mut relay, node, r);
    }
    relay.outcomes().clone()
}

/// The enclaves ran at trace level: their logs, on standard output and as they reached their
/// parents over the log channel, must hold no secret. Secrets have no fixed printed form, so
/// every long hex string must be a known public value (identity keys), no byte array may be
/// printed, and no KMS key material may appear in any process's log.
fn scan_logs_for_secrets(dir: &std::path::Path) {
    let mut materials = Vec::new();
    for entry in std::fs::read_dir(dir.join("kms/keys")).unwrap() {
        let key: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        materials.push(key["material"].as_str().unwrap().to_string());
    }
    assert_eq!(materials.len(), 3, "one KMS key per node");
    let mut everything = std::fs::read_to_string(dir.join("kms/kms.log")).unwrap();
    let mut logs = String::new();
    for node in 0..3 {
        logs.push_str(
            &std::fs::read_to_string(dir.join(format!("node-{node}/enclave.log"))).unwrap(),
        );
        let proxy = std::fs::read_to_string(dir.join(format!("node-{node}/proxy.log"))).unwrap();
        // What reached the parent over the log channel: the same records, as JSON lines.
        let channel: Vec<&str> = proxy
            .lines()
            .filter(|l| l.starts_with(r#"{"source":"enclave","record":"#))
            .collect();
        assert!(
            channel.iter().any(|l| l.contains(r#""level":"DEBUG""#)),
            "node {node}'s verbose records did not reach its parent over the log channel"
        );
        assert!(
            channel
                .iter()
                .any(|l| l.contains(r#""message":"listening""#)),
            "node {node}'s boot records did not wait for its parent's log channel"
        );
        for line in channel {
            logs.push_str(line);
            logs.push('\n');
        }
        everything.push_str(&proxy);
    }
    everything.push_str(&logs);
    assert!(logs.contains("DEBUG"), "the enclaves did not log verbosely");
    for m in &materials {
        assert!(
            !everything.contains(m.as_str()),
            "KMS key material reached a log"
        );
    }
    // Public values the enclave logs by name: its identity key at boot, its node key when it
    // enrolls or restores it, the cluster id at genesis.
    let allowed: Vec<String> = logs
        .lines()
        .flat_map(|l| {
            [
                "identity=",
                "node_key=",
                "cluster=",
                r#""identity":""#,
                r#""node_key":""#,
                r#""cluster":""#,
            ]
            .iter()
            .filter_map(move |field| l.split(field).nth(1))
        })
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect())
        .collect();
    assert!(!allowed.is_empty());
    let mut run = String::new();
    let plain: String = logs
        .chars()
        .map(|c| if c.is_ascii_hexdigit() { c } else { ' ' })
        .collect();
    for word in plain.split(' ').chain(std::iter::once("")) {
        run.clear();
        run.push_str(word);
        if run.len() >= 40 {
            assert!(
                allowed.contains(&run),
                "a long hex value reached a log: {run}"
            );
        }
    }
    // A Debug-printed byte array of 16 or more elements, e.g. [12, 250, 7, ...].
    let mut count = 0;
    for token in logs.split(|c: char| !(c.is_ascii_digit() || c == ',' || c == ' ')) {
        let numbers = token
            .split(',')
            .filter(|t| !t.trim().is_empty() && t.trim().parse::<u8>().is_ok())
            .count();
        count = count.max(numbers);
    }
    assert!(count < 16, "a byte array was printed in a log");
}

#[tokio::test(flavor = "multi_thread")]
async fn three_of_five_keys_sign_across_processes() {
    let all = [0u16, 1, 2, 3, 4];
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let (_dir, cluster, client, keys) = bootstrap(5, 60, vec![]).await;

    for (key_id, scheme) in [
        ("eth-5", Scheme::EcdsaSecp256k1),
        ("sol-5", Scheme::EddsaEd25519),
    ] {
        let approvers: Vec<ByteBuf> = keys.approvers.iter().map(public).collect();
        let request = approve(
            &create_key(keys.cluster, key_id, scheme, 3, &approvers, 2),
            &keys.admins[1..],
        );
        let outcomes = client
            .run_session(&new_session_id(), &all, &SessionKind::CreateKey { request })
            .await;
        let mut pks: Vec<Vec<u8>> = outcomes
            .values()
            .map(|o| match o {
                Outcome::KeyCreated { public_key, .. } => public_key.to_vec(),
                other => panic!("{other:?}"),
            })
            .collect();
        pks.dedup();
        assert_eq!(pks.len(), 1, "all five nodes report the same key");
        let pk = pks.remove(0);
        for quorum in [[0u16, 2, 4], [1, 3, 4], [0, 1, 2]] {
            let payload: [u8; 32] = sha2::Sha256::digest(format!("{key_id} {quorum:?}")).into();
            let (sig, signer) =
                signed(&sign(&client, &keys, &quorum, key_id, &[], payload.to_vec(), None).await);
            assert_eq!(signer, pk);
            match scheme {
                Scheme::EcdsaSecp256k1 => verify_ecdsa(&pk, &payload, &sig),
                Scheme::EddsaEd25519 => verify_eddsa(&pk, &payload, &sig),
            }
        }
        // Two of five (t - 1) cannot sign.
        let short = sign(
            &client,
            &keys,
            &[3, 4],
            key_id,
            &[],
            [1u8; 32].to_vec(),
            None,
        )
        .await;
        assert!(
            short.values().all(|o| matches!(o, Outcome::Failed { .. })),
            "{short:?}"
        );
    }
    cluster.stop().await.unwrap();
}
