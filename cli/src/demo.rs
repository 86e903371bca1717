//! The threshold part of `cohort demo`, through the coordinator's API: genesis (peer admission,
//! safe primes, auxiliary info), an ECDSA and an EdDSA key, and signatures — full interactive
//! ECDSA under a derived key, ECDSA from a presignature, FROST — each checked by a library that
//! is not Cohort's (k256, ed25519-dalek).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use coordinator::api::{ClusterStatus, PresignatureUse, SignResult};
use coordinator::client::ApiClient;
use ed25519_dalek::SigningKey;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use protocol::policy::Scheme;

use crate::ops;
use crate::requests::public;

const CLUSTER: &str = "demo";

fn verified(scheme: Scheme, payload: &[u8], result: &SignResult) -> bool {
    let Some(s) = result.signatures.first() else {
        return false;
    };
    let (signature, signer) = (&s.signature.0, &s.public_key.0);
    match scheme {
        Scheme::EcdsaSecp256k1 => k256::ecdsa::VerifyingKey::from_sec1_bytes(signer)
            .ok()
            .zip(k256::ecdsa::Signature::from_slice(signature).ok())
            .is_some_and(|(vk, sig)| vk.verify_prehash(payload, &sig).is_ok()),
        Scheme::EddsaEd25519 => <[u8; 32]>::try_from(signer.as_slice())
            .ok()
            .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
            .zip(ed25519_dalek::Signature::from_slice(signature).ok())
            .is_some_and(|(vk, sig)| vk.verify_strict(payload, &sig).is_ok()),
    }
}

/// Runs the threshold part of the demo; returns the number of failed checks.
pub async fn run(api: &ApiClient) -> anyhow::Result<usize> {
    let admins: Vec<SigningKey> = (0..2)
        .map(|_| SigningKey::generate(&mut rand::rngs::OsRng))
        .collect();
    let approvers: Vec<SigningKey> = (0..2)
        .map(|_| SigningKey::generate(&mut rand::rngs::OsRng))
        .collect();
    println!("      coordinator at {}", api.base());
    let t = Instant::now();
    ops::genesis(api, CLUSTER, None, &admins, 2).await?;
    println!(
        "      cluster ready in {:.1} s: every node verified its peers' attestation; auxiliary info ready",
        t.elapsed().as_secs_f32()
    );
    let approver_keys: Vec<[u8; 32]> = approvers
        .iter()
        .map(|k| {
            let p = public(k);
            let mut a = [0u8; 32];
            a.copy_from_slice(&p);
            a
        })
        .collect();
    let mut failures = 0;
    for (key_id, scheme) in [
        ("demo-ecdsa", Scheme::EcdsaSecp256k1),
        ("demo-eddsa", Scheme::EddsaEd25519),
    ] {
        let key = ops::create_key(api, key_id, scheme, 2, &admins, &approver_keys, 2).await?;
        let nodes = {
            let status: ClusterStatus = api
                .get("/v1/cluster")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            status.nodes.len()
        };
        println!(
            "      {key_id} ({scheme}, 2 of {nodes}): public key {}",
            hex::encode(&key.public_key.0)
        );
        let runs: Vec<(Vec<u32>, PresignatureUse, &str)> = match scheme {
            Scheme::EcdsaSecp256k1 => vec![
                (
                    vec![0, 0],
                    PresignatureUse::Never,
                    "full signing, child key m/0/0",
                ),
                (
                    vec![],
                    PresignatureUse::Prefer,
                    "from a presignature, key m",
                ),
            ],
            Scheme::EddsaEd25519 => vec![(vec![], PresignatureUse::Never, "FROST")],
        };
        for (path, presignature, what) in runs {
            if presignature == PresignatureUse::Prefer {
                ops::wait_for_pool(api, key_id, &path, 1, Duration::from_secs(600))
                    .await
                    .context("waiting for the coordinator's presignature pool")?;
            }
            let payload = match scheme {
                Scheme::EcdsaSecp256k1 => {
                    use sha2::Digest;
                    sha2::Sha256::digest(b"cohort demo transaction").to_vec()
                }
                Scheme::EddsaEd25519 => b"cohort demo message".to_vec(),
            };
            let t = Instant::now();
            let result = ops::sign(
                api,
                key_id,
                &path,
                payload.clone(),
                &approvers,
                Some(presignature),
            )
            .await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            let ok = verified(scheme, &payload, &result);
            let s = result.signatures.first().context("no signature")?;
            println!(
                "      {what}: nodes {:?}{} in {ms:.1} ms; signature {}",
                s.nodes,
                if s.presigned { " (presigned)" } else { "" },
                if ok {
                    "VERIFIED (independent library)"
                } else {
                    "FAILED verification"
                }
            );
            if !ok {
                failures += 1;
            }
        }
    }
    let verification: coordinator::api::AuditVerification = api
        .get("/v1/audit/verify")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if verification.ok {
        println!(
            "      audit log: {} hash-chained records, chain intact",
            verification.records
        );
    } else {
        failures += 1;
        println!(
            "      audit log BROKEN at record {:?}",
            verification.broken_at
        );
    }
    if failures > 0 {
        bail!("{failures} threshold check(s) failed");
    }
    Ok(failures)
}
