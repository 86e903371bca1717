//! The floor of signing latency: the same 2-of-3 protocols as a cluster behind the coordinator,
//! run in one process — real enclaves (simulated NSM, peer envelopes signed and encrypted,
//! approvals checked) driven through their request handler with an in-memory relay, and no
//! proxies, sockets, HTTP, coordinator or database. `cohort bench` measures the same operations
//! through the whole architecture; the ratio is the architecture's overhead.
//!
//! ```sh
//! cargo run --release -p enclave --features test-fixtures --example floor -- --count 200
//! ```
//!
//! Prints one JSON line per operation: p50/p95/p99 in milliseconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use attestation::sim::SimulatedCa;
use ed25519_dalek::SigningKey;
use enclave::Enclave;
use enclave::testkit::{
    IMAGE, admit_all, approve, boot, create_key_request, found, fresh_session_id, run_session,
};
use protocol::policy::{Approved, HashFunction, Payload, Scheme, SignRequest};
use protocol::session::{Outcome, SessionKind};
use rand::RngCore;
use serde_bytes::ByteBuf;

fn random(n: usize) -> ByteBuf {
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    ByteBuf::from(b)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(name: &str, mut samples: Vec<f64>) {
    samples.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{{\"operation\":\"{name}\",\"count\":{},\"p50_ms\":{:.3},\"p95_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
        samples.len(),
        percentile(&samples, 50.0),
        percentile(&samples, 95.0),
        percentile(&samples, 99.0),
        samples.last().copied().unwrap_or(0.0)
    );
}

struct Setup {
    enclaves: Vec<Arc<Enclave>>,
    cluster: protocol::genesis::ClusterId,
    approvers: Vec<SigningKey>,
}

impl Setup {
    fn sign(&self, key: &str, payload: Payload, quorum: &[u16], presignature: Option<ByteBuf>) {
        let t = now();
        let request = SignRequest {
            v: protocol::policy::SIGN_REQUEST_VERSION,
            cluster: self.cluster,
            key_id: key.into(),
            path: vec![],
            payloads: vec![payload],
            request_id: random(16),
            created: t,
            expiry: t + 300,
            policy: 0,
        };
        let approved = Approved {
            approvals: approve(&request, &[&self.approvers[0], &self.approvers[1]]),
            request,
        };
        let out = run_session(
            &self.enclaves,
            fresh_session_id(),
            quorum,
            SessionKind::Sign {
                request: approved,
                payload: 0,
                presignature,
            },
            |_, _| {},
        );
        assert!(
            out.values().all(|o| matches!(o, Outcome::Signed { .. })),
            "{out:?}"
        );
    }
}

fn main() {
    let count: usize = std::env::args()
        .skip_while(|a| a != "--count")
        .nth(1)
        .map(|c| c.parse().expect("--count N"))
        .unwrap_or(200);
    let ca = SimulatedCa::generate().unwrap();
    let enclaves: Vec<_> = (0..3).map(|i| boot(&ca, i, IMAGE)).collect();
    let admins: Vec<SigningKey> = (0..2)
        .map(|i| SigningKey::from_bytes(&[1 + i; 32]))
        .collect();
    let approvers: Vec<SigningKey> = (0..2)
        .map(|i| SigningKey::from_bytes(&[9 + i; 32]))
        .collect();
    let (genesis, _) = found(&enclaves, "floor", &admins, &[&admins[0], &admins[1]]);
    let cluster = genesis.request.cluster_id();
    admit_all(&enclaves);
    eprintln!("auxiliary info (tens of seconds)...");
    let aux = run_session(
        &enclaves,
        fresh_session_id(),
        &[0, 1, 2],
        SessionKind::AuxInfo,
        |_, _| {},
    );
    assert!(aux.values().all(|o| matches!(o, Outcome::AuxReady { .. })));
    for (key_id, scheme) in [
        ("ecdsa", Scheme::EcdsaSecp256k1),
        ("eddsa", Scheme::EddsaEd25519),
    ] {
        let approved = create_key_request(
            cluster,
            key_id,
            scheme,
            2,
            &approvers,
            &[&admins[0], &admins[1]],
        );
        let out = run_session(
            &enclaves,
            fresh_session_id(),
            &[0, 1, 2],
            SessionKind::CreateKey { request: approved },
            |_, _| {},
        );
        assert!(
            out.values()
                .all(|o| matches!(o, Outcome::KeyCreated { .. }))
        );
    }
    let s = Setup {
        enclaves,
        cluster,
        approvers,
    };
    let quorum = [0u16, 1];

    let mut eddsa = Vec::new();
    for i in 0..count {
        let t = Instant::now();
        s.sign(
            "eddsa",
            Payload::raw(format!("message {i}").into_bytes()),
            &quorum,
            None,
        );
        eddsa.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    report("sign_eddsa", eddsa);

    let mut full = Vec::new();
    for i in 0..count.min(50) {
        let t = Instant::now();
        s.sign("ecdsa", Payload::raw(vec![i as u8; 32]), &quorum, None);
        full.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    report("sign_ecdsa_full", full);

    eprintln!("generating {count} presignatures (not measured)...");
    let mut presignatures = Vec::new();
    let mut presign = Vec::new();
    for _ in 0..count {
        let id = fresh_session_id();
        let t = Instant::now();
        let out = run_session(
            &s.enclaves,
            id.clone(),
            &quorum,
            SessionKind::Presign {
                key_id: "ecdsa".into(),
                path: vec![],
            },
            |_, _| {},
        );
        presign.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(
            out.values()
                .all(|o| matches!(o, Outcome::PresignatureReady))
        );
        presignatures.push(id);
    }
    report("presign", presign);
    let mut presigned = Vec::new();
    for (i, id) in presignatures.into_iter().enumerate() {
        let t = Instant::now();
        // Presignatures sign preimages the enclaves hash (an EVM transaction's size here).
        let preimage = format!("an unsigned EIP-1559 transaction, number {i:>60}").into_bytes();
        s.sign(
            "ecdsa",
            Payload::hashed(HashFunction::Keccak256, preimage),
            &quorum,
            Some(id),
        );
        presigned.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    report("sign_ecdsa_presigned", presigned);
}
