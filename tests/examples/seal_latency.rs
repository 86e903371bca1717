//! How long sealing and unsealing take through KMS: the enclave's `KmsSealingAuthority`, a
//! parent relaying with `aws-sdk-kms`, the local KMS stand-in — the path a share takes at key
//! creation and after an enclave restart. Also the parts: RSA-2048 key generation (once per
//! call) and opening a CMS envelope.
//!
//! `cargo run --release -p cohort-tests --example seal_latency -- [ROUNDS]` (build the
//! workspace binaries first: it starts `cohort-kms`).

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use attestation::recipient::{EphemeralKey, seal_envelope};
use cohort_tests::kms::{IMAGE, world};
use enclave::seal::{BlobKind, seal, unseal};

fn report(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        "{name:<34} n={:<4} p50 {:>7.1} ms   p95 {:>7.1} ms   max {:>7.1} ms",
        ms.len(),
        p(0.50),
        p(0.95),
        ms[ms.len() - 1]
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ROUNDS is a number"))
        .unwrap_or(50);
    let w = world().await;
    let auth = Arc::new(w.authority(IMAGE));
    let share = vec![0x5a; 4096];
    let (mut sealing, mut unsealing, mut keygen, mut open) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let (a, s) = (auth.clone(), share.clone());
        let t = Instant::now();
        let blob = tokio::task::spawn_blocking(move || {
            seal(a.as_ref(), BlobKind::EcdsaShare, "bench", &s).unwrap()
        })
        .await
        .unwrap();
        sealing.push(t.elapsed().as_secs_f64() * 1e3);
        let a = auth.clone();
        let t = Instant::now();
        let (_, plain) = tokio::task::spawn_blocking(move || {
            unseal(a.as_ref(), &blob, BlobKind::EcdsaShare, None).unwrap()
        })
        .await
        .unwrap();
        unsealing.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(plain.as_slice(), share.as_slice());

        let t = Instant::now();
        let key = EphemeralKey::generate().unwrap();
        keygen.push(t.elapsed().as_secs_f64() * 1e3);
        let envelope = seal_envelope(key.public_key_der(), &[7; 32]).unwrap();
        let t = Instant::now();
        key.open(&envelope).unwrap();
        open.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("{rounds} rounds, 4 KiB plaintext, local KMS stand-in over loopback HTTP");
    report("seal (GenerateDataKey + AES-GCM)", sealing);
    report("unseal (Decrypt + AES-GCM)", unsealing);
    report("  of which: RSA-2048 key pair", keygen);
    report("  of which: open CMS envelope", open);
}
