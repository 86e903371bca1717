//! The committed attestation test vectors: each is rejected with its own error kind, and the
//! generator still produces them byte for byte.

#![allow(clippy::unwrap_used, missing_docs)]

mod support {
    pub mod vectors;
}

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use attestation::{IdentityKeys, NodeBinding, Policy, verify};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/attestation")
}

fn policy_from_manifest(m: &serde_json::Value) -> (Policy, Duration) {
    let root = std::fs::read_to_string(dir().join(m["root"].as_str().unwrap())).unwrap();
    let mut policy = Policy::default().with_root(attestation::sim::pem_to_der(&root).unwrap());
    for (i, v) in m["pcrs"].as_object().unwrap() {
        policy = policy.allow_pcr(
            i.parse().unwrap(),
            hex::decode(v.as_str().unwrap()).unwrap(),
        );
    }
    policy.nonce = Some(hex::decode(m["nonce"].as_str().unwrap()).unwrap());
    policy.max_age = Some(Duration::from_secs(m["max_age_secs"].as_u64().unwrap()));
    policy.require_identity = true;
    (
        policy,
        Duration::from_secs(m["validation_time"].as_u64().unwrap()),
    )
}

#[test]
fn every_vector_gets_its_own_verdict() {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join("vectors.json")).unwrap()).unwrap();
    let (policy, at) = policy_from_manifest(&manifest);
    let mut kinds = BTreeSet::new();
    let vectors = manifest["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 14);
    for v in vectors {
        let file = v["file"].as_str().unwrap();
        let expect = v["expect"].as_str().unwrap();
        let bytes = std::fs::read(dir().join(file)).unwrap();
        let got = match verify(&bytes, &policy, at) {
            Ok(doc) => {
                let id = &manifest["identity"];
                assert_eq!(
                    doc.identity,
                    Some(IdentityKeys {
                        signing: hex::decode(id["signing"].as_str().unwrap())
                            .unwrap()
                            .try_into()
                            .unwrap(),
                        encryption: hex::decode(id["encryption"].as_str().unwrap())
                            .unwrap()
                            .try_into()
                            .unwrap(),
                    })
                );
                "ok"
            }
            Err(e) => e.kind(),
        };
        assert_eq!(got, expect, "{file}");
        assert!(kinds.insert(got), "two vectors share the verdict {got}");
    }
}

#[test]
fn node_vectors_get_their_verdicts() {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join("vectors.json")).unwrap()).unwrap();
    let (mut policy, at) = policy_from_manifest(&manifest);
    let node = &manifest["node"];
    let expected = NodeBinding::new(
        hex::decode(node["node_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
        node["kms_key_arn"].as_str().unwrap(),
    )
    .unwrap();
    policy.node = Some(expected.clone());
    let vectors = node["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 4);
    for v in vectors {
        let file = v["file"].as_str().unwrap();
        let bytes = std::fs::read(dir().join(file)).unwrap();
        let got = match verify(&bytes, &policy, at) {
            Ok(doc) => {
                assert_eq!(doc.node.as_ref(), Some(&expected));
                "ok"
            }
            Err(e) => e.kind(),
        };
        assert_eq!(got, v["expect"].as_str().unwrap(), "{file}");
    }
    // Requiring a node binding without naming one: any version-2 document passes, a version-1
    // document does not; without any requirement both pass and report what they bind.
    policy.node = None;
    policy.require_node = true;
    let read = |f: &str| std::fs::read(dir().join(f)).unwrap();
    assert_eq!(
        verify(&read("node-mismatch.cose"), &policy, at)
            .unwrap()
            .node
            .unwrap()
            .node_key,
        [0x43; 32]
    );
    assert_eq!(
        verify(&read("valid.cose"), &policy, at).unwrap_err().kind(),
        "no_node_binding"
    );
    policy.require_node = false;
    assert_eq!(verify(&read("valid.cose"), &policy, at).unwrap().node, None);
    // An expected identity with a version-2 document: its node binding is found and checked.
    let id = &manifest["identity"];
    policy.identity = Some(IdentityKeys {
        signing: hex::decode(id["signing"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
        encryption: hex::decode(id["encryption"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    });
    assert_eq!(
        verify(&read("node-valid.cose"), &policy, at).unwrap().node,
        Some(expected.clone())
    );
    policy.node = Some(expected);
    assert_eq!(
        verify(&read("node-other-kms-key.cose"), &policy, at)
            .unwrap_err()
            .kind(),
        "node_binding_mismatch"
    );
    assert_eq!(
        verify(&read("valid.cose"), &policy, at).unwrap_err().kind(),
        "no_node_binding"
    );
}

#[test]
fn valid_vector_fails_without_the_simulated_root() {
    let bytes = std::fs::read(dir().join("valid.cose")).unwrap();
    let at = Duration::from_secs(support::vectors::AT);
    // The default policy pins only the AWS root.
    assert_eq!(
        verify(&bytes, &Policy::default(), at).unwrap_err().kind(),
        "unknown_root"
    );
}

#[test]
fn valid_vector_at_other_times() {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join("vectors.json")).unwrap()).unwrap();
    let (mut policy, at) = policy_from_manifest(&manifest);
    let bytes = std::fs::read(dir().join("valid.cose")).unwrap();
    // Four hours later the leaf has expired, whatever the age limit.
    policy.max_age = None;
    assert_eq!(
        verify(&bytes, &policy, at + Duration::from_secs(4 * 3600))
            .unwrap_err()
            .kind(),
        "certificate_expired"
    );
    // With no age limit a ten-minute-old document still verifies.
    assert!(verify(&bytes, &policy, at + Duration::from_secs(600)).is_ok());
}

#[test]
fn generator_reproduces_the_committed_vectors() {
    for (name, bytes) in support::vectors::generate().files {
        let committed = std::fs::read(dir().join(&name)).unwrap();
        assert!(
            committed == bytes,
            "{name} differs from the generator's output; rerun gen-vectors"
        );
    }
}

/// A genuine AWS document (see tests/vectors/attestation/aws/README.md).
#[test]
fn genuine_aws_document_chains_to_the_aws_root() {
    let bytes = std::fs::read(dir().join("aws/nitro-debug-2022-11-16.cose")).unwrap();
    let at = Duration::from_millis(1_668_589_955_179) + Duration::from_secs(1);
    // Default policy: AWS root pinned, debug mode refused. Chain and signature pass first.
    assert_eq!(
        verify(&bytes, &Policy::default(), at).unwrap_err().kind(),
        "debug_mode"
    );
    let lab = Policy {
        allow_debug: true,
        ..Policy::default()
    };
    let doc = verify(&bytes, &lab, at).unwrap();
    assert_eq!(doc.module_id, "i-025cfe04ec207e1bf-enc01847fb5d285b74b");
    assert_eq!(doc.nonce.as_ref().map(Vec::len), Some(256));
    // Any altered byte of the payload breaks the signature.
    let mut tampered = bytes.clone();
    let pos = tampered.windows(6).position(|w| w == b"SHA384").unwrap();
    tampered[pos + 100] ^= 1;
    assert_eq!(
        verify(&tampered, &lab, at).unwrap_err().kind(),
        "signature_mismatch"
    );
    // Years later its certificates have expired.
    assert_eq!(
        verify(&bytes, &lab, Duration::from_secs(AT_2026))
            .unwrap_err()
            .kind(),
        "certificate_expired"
    );
    // Under a simulated root it is unknown.
    let sim = std::fs::read_to_string(dir().join("root.pem")).unwrap();
    let sim_policy = Policy::default().with_root(attestation::sim::pem_to_der(&sim).unwrap());
    assert_eq!(
        verify(&bytes, &sim_policy, at).unwrap_err().kind(),
        "unknown_root"
    );
}

const AT_2026: u64 = support::vectors::AT;
