//! The threshold part of `cohort demo`: genesis, safe primes, auxiliary info, an ECDSA and an
//! EdDSA key, and signatures checked by libraries that are not Cohort's (k256, ed25519-dalek).

use std::time::Instant;

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use protocol::policy::Scheme;
use protocol::session::{Outcome, SessionKind};
use serde_bytes::ByteBuf;

use crate::cluster::{ClusterClient, new_session_id};
use crate::requests::{approve, create_key, genesis, public, sign_request};

const CLUSTER: &str = "demo";

fn one_signature(
    outcomes: &std::collections::BTreeMap<u16, Outcome>,
) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let mut result = None;
    for (node, o) in outcomes {
        match o {
            Outcome::Signed {
                signature,
                public_key,
            } => result = Some((signature.to_vec(), public_key.to_vec())),
            Outcome::Failed { message, .. } => bail!("node {node}: {message}"),
            other => bail!("node {node}: unexpected {other:?}"),
        }
    }
    result.context("no signature")
}

/// Runs the threshold part of the demo; returns the number of failed checks.
pub async fn run(client: &ClusterClient) -> anyhow::Result<usize> {
    let admins: Vec<SigningKey> = (0..2)
        .map(|_| SigningKey::generate(&mut rand::rngs::OsRng))
        .collect();
    let approvers: Vec<SigningKey> = (0..2)
        .map(|_| SigningKey::generate(&mut rand::rngs::OsRng))
        .collect();
    let g = approve(&genesis(CLUSTER, client.nodes(), &admins, 2), &admins);
    client.genesis(&g).await?;
    for (node, refused) in client.admit_peers().await? {
        if let Some((peer, why)) = refused.first() {
            bail!("node {node} refused peer {peer}: {why}");
        }
    }
    println!("      genesis accepted by every node; every node verified its peers' attestation");
    client.wait_for_primes().await?;
    let all: Vec<u16> = (0..client.nodes()).collect();
    let t = Instant::now();
    for (node, o) in client
        .run_session(&new_session_id(), &all, &SessionKind::AuxInfo)
        .await?
    {
        if let Outcome::Failed { message, .. } = o {
            bail!("auxiliary info failed at node {node}: {message}");
        }
    }
    println!(
        "      auxiliary info (Paillier keys) ready in {:.1} s",
        t.elapsed().as_secs_f32()
    );

    let approver_keys: Vec<ByteBuf> = approvers.iter().map(public).collect();
    let mut failures = 0;
    for (key_id, scheme) in [
        ("demo-ecdsa", Scheme::EcdsaSecp256k1),
        ("demo-eddsa", Scheme::EddsaEd25519),
    ] {
        let request = approve(
            &create_key(CLUSTER, key_id, scheme, 2, &approver_keys, 2),
            &admins,
        );
        let outcomes = client
            .run_session(&new_session_id(), &all, &SessionKind::CreateKey { request })
            .await?;
        let mut pk = None;
        for (node, o) in outcomes {
            match o {
                Outcome::KeyCreated { public_key, .. } => {
                    if pk.get_or_insert(public_key.to_vec()) != &public_key.to_vec() {
                        bail!("nodes disagree on {key_id}");
                    }
                }
                other => bail!("key generation at node {node}: {other:?}"),
            }
        }
        let pk = pk.context("no key")?;
        println!(
            "      {key_id} ({scheme}, 2 of {}): public key {}",
            client.nodes(),
            hex::encode(&pk)
        );

        let path: Vec<u32> = if scheme == Scheme::EcdsaSecp256k1 {
            vec![0, 0]
        } else {
            vec![]
        };
        let payload = match scheme {
            Scheme::EcdsaSecp256k1 => {
                use sha2::Digest;
                sha2::Sha256::digest(b"cohort demo transaction").to_vec()
            }
            Scheme::EddsaEd25519 => b"cohort demo message".to_vec(),
        };
        let request = approve(
            &sign_request(CLUSTER, key_id, &path, vec![payload.clone()]),
            &approvers,
        );
        let kind = SessionKind::Sign {
            request,
            payload: 0,
            presignature: None,
        };
        let t = Instant::now();
        let (signature, signer) = one_signature(
            &client
                .run_session(&new_session_id(), &[0, 1], &kind)
                .await?,
        )?;
        let ok = match scheme {
            Scheme::EcdsaSecp256k1 => k256::ecdsa::VerifyingKey::from_sec1_bytes(&signer)
                .ok()
                .zip(k256::ecdsa::Signature::from_slice(&signature).ok())
                .is_some_and(|(vk, sig)| vk.verify_prehash(&payload, &sig).is_ok()),
            Scheme::EddsaEd25519 => <[u8; 32]>::try_from(signer.as_slice())
                .ok()
                .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
                .zip(ed25519_dalek::Signature::from_slice(&signature).ok())
                .is_some_and(|(vk, sig)| vk.verify_strict(&payload, &sig).is_ok()),
        };
        let what = if path.is_empty() {
            "key".to_string()
        } else {
            "child key m/0/0".to_string()
        };
        println!(
            "      signed by nodes 0 and 1 in {:.0} ms; signature {} under the {what}",
            t.elapsed().as_secs_f64() * 1000.0,
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
    Ok(failures)
}
