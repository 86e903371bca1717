//! Deterministic generation of the attestation test vectors (shared by the `gen-vectors`
//! example, which writes them, and the `vectors` test, which checks the committed copies).

use std::collections::BTreeMap;
use std::time::Duration;

use attestation::sim::{self, DocumentParts, SimulatedCa};
use attestation::{AttestationRequest, Binding, IdentityKeys, NodeBinding};
use p384::ecdsa::SigningKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::json;

/// 2026-06-01T12:00:00Z: the validation time of every vector.
pub const AT: u64 = 1_780_315_200;
/// 2026-01-01T00:00:00Z: the start of the simulated CA's validity.
const CA_START: u64 = 1_767_225_600;
pub const MAX_AGE_SECS: u64 = 300;
/// The KMS key the node vectors' node key is sealed under.
pub const NODE_KMS_KEY_ARN: &str =
    "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

pub struct Vectors {
    /// (file name, bytes)
    pub files: Vec<(String, Vec<u8>)>,
}

fn flip_first(haystack: &mut [u8], needle: &[u8]) {
    let pos = haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present");
    haystack[pos] ^= 0x01;
}

pub fn generate() -> Vectors {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let at = Duration::from_secs(AT);
    let ca = SimulatedCa::generate_at(&mut rng, Duration::from_secs(CA_START)).unwrap();
    let other_ca = SimulatedCa::generate_at(&mut rng, Duration::from_secs(CA_START)).unwrap();
    let image = [0x11u8; 48];
    let other_image = [0x22u8; 48];
    let pcrs = sim::simulated_pcrs(&image);
    let nonce = vec![0xA5; 32];
    let identity = IdentityKeys {
        signing: [0x31; 32],
        encryption: [0x32; 32],
    };
    let other_identity = IdentityKeys {
        signing: [0x41; 32],
        encryption: [0x42; 32],
    };
    let ts = |d: Duration| u64::try_from(d.as_millis()).unwrap();
    let leaf_start = at - Duration::from_secs(3600);
    let (leaf_key, leaf_der) = ca
        .issue_leaf(
            &mut rng,
            "i-vectors-enc-0001",
            leaf_start,
            sim::LEAF_LIFETIME,
        )
        .unwrap();
    let good_request = AttestationRequest {
        user_data: Some(identity.binding().to_vec()),
        nonce: Some(nonce.clone()),
        public_key: Some(identity.to_bytes().to_vec()),
    };
    let parts =
        |pcrs: BTreeMap<usize, Vec<u8>>, leaf_der: &[u8], cabundle, request, t| DocumentParts {
            module_id: "i-vectors-enc-0001",
            timestamp_ms: t,
            pcrs,
            leaf_der: leaf_der.to_vec(),
            cabundle,
            request,
        };
    let doc_ts = ts(at - Duration::from_secs(10));
    let build = |key: &SigningKey, p| sim::build_document(key, p).unwrap();

    let mut files = Vec::new();
    let valid = build(
        &leaf_key,
        parts(
            pcrs.clone(),
            &leaf_der,
            ca.cabundle(),
            good_request.clone(),
            doc_ts,
        ),
    );
    files.push(("valid.cose".to_string(), valid.clone()));

    let mut tampered_payload = valid.clone();
    flip_first(&mut tampered_payload, &image);
    files.push(("tampered-payload.cose".into(), tampered_payload));

    let mut tampered_signature = valid.clone();
    let n = tampered_signature.len();
    tampered_signature[n - 96..n - 48].fill(0); // r = 0: not a valid signature
    files.push(("tampered-signature.cose".into(), tampered_signature));

    let (other_leaf_key, other_leaf_der) = other_ca
        .issue_leaf(
            &mut rng,
            "i-vectors-enc-0001",
            leaf_start,
            sim::LEAF_LIFETIME,
        )
        .unwrap();
    files.push((
        "unknown-root.cose".into(),
        build(
            &other_leaf_key,
            parts(
                pcrs.clone(),
                &other_leaf_der,
                other_ca.cabundle(),
                good_request.clone(),
                doc_ts,
            ),
        ),
    ));

    // A leaf issued under the other CA's intermediate, presented with this CA's bundle: the
    // issuer name matches, the signature does not.
    files.push((
        "forged-leaf.cose".into(),
        build(
            &other_leaf_key,
            parts(
                pcrs.clone(),
                &other_leaf_der,
                ca.cabundle(),
                good_request.clone(),
                doc_ts,
            ),
        ),
    ));

    let (expired_key, expired_der) = ca
        .issue_leaf(
            &mut rng,
            "i-vectors-enc-0001",
            at - Duration::from_secs(4 * 3600),
            sim::LEAF_LIFETIME,
        )
        .unwrap();
    files.push((
        "expired-leaf.cose".into(),
        build(
            &expired_key,
            parts(
                pcrs.clone(),
                &expired_der,
                ca.cabundle(),
                good_request.clone(),
                doc_ts,
            ),
        ),
    ));

    let (future_key, future_der) = ca
        .issue_leaf(
            &mut rng,
            "i-vectors-enc-0001",
            at + Duration::from_secs(3600),
            sim::LEAF_LIFETIME,
        )
        .unwrap();
    files.push((
        "not-yet-valid-leaf.cose".into(),
        build(
            &future_key,
            parts(
                pcrs.clone(),
                &future_der,
                ca.cabundle(),
                good_request.clone(),
                doc_ts,
            ),
        ),
    ));

    files.push((
        "pcr-mismatch.cose".into(),
        build(
            &leaf_key,
            parts(
                sim::simulated_pcrs(&other_image),
                &leaf_der,
                ca.cabundle(),
                good_request.clone(),
                doc_ts,
            ),
        ),
    ));

    files.push((
        "debug-mode.cose".into(),
        build(
            &leaf_key,
            parts(
                sim::debug_pcrs(),
                &leaf_der,
                ca.cabundle(),
                good_request.clone(),
                doc_ts,
            ),
        ),
    ));

    let mut wrong_nonce = good_request.clone();
    wrong_nonce.nonce = Some(vec![0x5A; 32]);
    files.push((
        "wrong-nonce.cose".into(),
        build(
            &leaf_key,
            parts(pcrs.clone(), &leaf_der, ca.cabundle(), wrong_nonce, doc_ts),
        ),
    ));

    files.push((
        "stale.cose".into(),
        build(
            &leaf_key,
            parts(
                pcrs.clone(),
                &leaf_der,
                ca.cabundle(),
                good_request.clone(),
                ts(at - Duration::from_secs(3000)),
            ),
        ),
    ));

    files.push((
        "future-timestamp.cose".into(),
        build(
            &leaf_key,
            parts(
                pcrs.clone(),
                &leaf_der,
                ca.cabundle(),
                good_request.clone(),
                ts(at + Duration::from_secs(1800)),
            ),
        ),
    ));

    let mut mismatched = good_request.clone();
    mismatched.user_data = Some(other_identity.binding().to_vec());
    files.push((
        "user-data-mismatch.cose".into(),
        build(
            &leaf_key,
            parts(pcrs.clone(), &leaf_der, ca.cabundle(), mismatched, doc_ts),
        ),
    ));

    let mut oversized = good_request.clone();
    oversized.user_data = Some(vec![0x55; 600]);
    files.push((
        "oversized-field.cose".into(),
        build(
            &leaf_key,
            parts(pcrs.clone(), &leaf_der, ca.cabundle(), oversized, doc_ts),
        ),
    ));

    let mut garbage = vec![0u8; 512];
    rand::RngCore::fill_bytes(&mut rng, &mut garbage);
    garbage[0] = 0x84; // starts like a 4-element CBOR array, then nonsense
    files.push(("garbage.bin".into(), garbage));

    // Version-2 bindings (node key and KMS key, ADR 0013). Made after everything above, so the
    // random stream of the older vectors is unchanged.
    let node = NodeBinding::new([0x33; 32], NODE_KMS_KEY_ARN).unwrap();
    let v2 = |node: &NodeBinding| {
        let b = Binding {
            identity,
            node: Some(node.clone()),
        };
        AttestationRequest {
            user_data: Some(b.user_data().to_vec()),
            nonce: Some(nonce.clone()),
            public_key: Some(b.public_key()),
        }
    };
    let doc = |request| {
        build(
            &leaf_key,
            parts(pcrs.clone(), &leaf_der, ca.cabundle(), request, doc_ts),
        )
    };
    files.push(("node-valid.cose".into(), doc(v2(&node))));
    let other_node = NodeBinding::new([0x43; 32], NODE_KMS_KEY_ARN).unwrap();
    files.push(("node-mismatch.cose".into(), doc(v2(&other_node))));
    let other_arn = NodeBinding::new(
        [0x33; 32],
        &NODE_KMS_KEY_ARN.replace("111122223333", "444455556666"),
    )
    .unwrap();
    files.push(("node-other-kms-key.cose".into(), doc(v2(&other_arn))));
    // A binding version no verifier knows yet: named, not reported as a generic mismatch.
    let mut v3 = vec![3u8];
    v3.extend_from_slice(&[0x51; 96]);
    files.push((
        "binding-v3.cose".into(),
        doc(AttestationRequest {
            user_data: Some([3u8; 49].to_vec()),
            nonce: Some(nonce.clone()),
            public_key: Some(v3),
        }),
    ));

    let expect = [
        ("valid.cose", "ok"),
        ("tampered-payload.cose", "signature_mismatch"),
        ("tampered-signature.cose", "signature_malformed"),
        ("unknown-root.cose", "unknown_root"),
        ("forged-leaf.cose", "chain_broken"),
        ("expired-leaf.cose", "certificate_expired"),
        ("not-yet-valid-leaf.cose", "certificate_not_yet_valid"),
        ("pcr-mismatch.cose", "pcr_mismatch"),
        ("debug-mode.cose", "debug_mode"),
        ("wrong-nonce.cose", "nonce_mismatch"),
        ("stale.cose", "stale"),
        ("future-timestamp.cose", "timestamp_in_future"),
        ("user-data-mismatch.cose", "user_data_mismatch"),
        ("oversized-field.cose", "field_too_large"),
        ("garbage.bin", "malformed"),
        ("binding-v3.cose", "unsupported_binding"),
    ];
    // Checked with the same policy plus the expected node binding.
    let node_expect = [
        ("node-valid.cose", "ok"),
        ("valid.cose", "no_node_binding"),
        ("node-mismatch.cose", "node_binding_mismatch"),
        ("node-other-kms-key.cose", "node_binding_mismatch"),
    ];
    let manifest = json!({
        "description": "Attestation test vectors: every document is checked with the same policy; \
                        `expect` is the failure kind (VerifyError::kind) or \"ok\".",
        "root": "root.pem",
        "validation_time": AT,
        "pcrs": {
            "0": hex::encode(&pcrs[&0]),
            "1": hex::encode(&pcrs[&1]),
            "2": hex::encode(&pcrs[&2]),
        },
        "nonce": hex::encode(&nonce),
        "max_age_secs": MAX_AGE_SECS,
        "identity": {
            "signing": hex::encode(identity.signing),
            "encryption": hex::encode(identity.encryption),
        },
        "vectors": expect.iter().map(|(f, e)| json!({"file": f, "expect": e})).collect::<Vec<_>>(),
        "node": {
            "description": "The same policy, also requiring this node binding (identity binding \
                            version 2: node key and KMS key ARN).",
            "node_key": hex::encode(node.node_key),
            "kms_key_arn": NODE_KMS_KEY_ARN,
            "vectors": node_expect.iter().map(|(f, e)| json!({"file": f, "expect": e})).collect::<Vec<_>>(),
        },
    });
    files.push(("root.pem".into(), ca.root_pem().into_bytes()));
    files.push((
        "vectors.json".into(),
        format!("{}\n", serde_json::to_string_pretty(&manifest).unwrap()).into_bytes(),
    ));
    Vectors { files }
}
