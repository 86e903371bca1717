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
use protocol::policy::{HashFunction, Payload, Scheme};

use crate::devchain::{Anvil, LocalSolana, bitcoin_verify};
use crate::ops;
use crate::requests::public;
use crate::tx::{Rpc, Sent, TxRequest, send};

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

/// The local chains the demo sends transactions to.
pub struct LocalChains {
    /// anvil, with the chain id of the registry's `ethereum` network `anvil`.
    pub anvil: Anvil,
    /// The Solana runtime behind JSON-RPC.
    pub solana: LocalSolana,
}

/// anvil's chain id in the registry (`ethereum`, network `anvil`).
pub const ANVIL_CHAIN_ID: u64 = 31337;

impl LocalChains {
    /// Starts anvil and the Solana runtime.
    pub async fn start() -> anyhow::Result<Self> {
        Ok(Self {
            anvil: Anvil::start(ANVIL_CHAIN_ID)
                .await
                .context("starting anvil")?,
            solana: LocalSolana::start()
                .await
                .context("starting the Solana runtime")?,
        })
    }

    /// Coordinator arguments pointing its prepare endpoint at these chains.
    pub fn coordinator_args(&self) -> Vec<String> {
        vec![
            format!("--rpc=ethereum:anvil={}", self.anvil.url),
            format!("--rpc=solana={}", self.solana.url),
        ]
    }
}

/// Runs the threshold part of the demo, then the chain transactions; returns the number of
/// failed checks.
pub async fn run(
    api: &ApiClient,
    chains: &LocalChains,
    expect: &crate::ceremony::Expectations,
) -> anyhow::Result<usize> {
    let admins: Vec<SigningKey> = (0..2)
        .map(|_| SigningKey::generate(&mut rand::rngs::OsRng))
        .collect();
    let approvers: Vec<SigningKey> = (0..2)
        .map(|_| SigningKey::generate(&mut rand::rngs::OsRng))
        .collect();
    println!("      coordinator at {}", api.base());
    let t = Instant::now();
    let (approved, _) = crate::ceremony::run(api, CLUSTER, &admins, &[], 2, expect).await?;
    // What a client pins: every key below is checked against it before it is used.
    let trust = crate::trust::Trust::new(approved.to_wire(), std::path::Path::new("the ceremony"))?;
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
        let created = ops::create_key(
            api,
            trust.cluster_id(),
            key_id,
            scheme,
            2,
            &admins,
            &approver_keys,
            2,
        )
        .await?;
        // The key as the coordinator reports it, checked against the pinned genesis.
        let key = trust.fetch_key(api, key_id).await?;
        if key.info() != &created {
            bail!("the coordinator reports {key_id} differently from its creation");
        }
        let key = key.info();
        let nodes = {
            let status: ClusterStatus = api
                .get("/v1/cluster")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            status.nodes.len()
        };
        println!(
            "      {key_id} ({scheme}, 2 of {nodes}): public key {}; every node's receipt verified against the pinned genesis",
            hex::encode(&key.public_key.0)
        );
        failures += sign_runs(api, &trust, key_id, scheme, &approvers).await?;
    }
    println!(
        "      --- chain transactions: built by the adapters, signed by the cluster, checked by chain software ---"
    );
    failures += transactions(api, &trust, &approvers, chains).await?;
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

/// Signs the demo payload of `scheme` with `key_id` in each of the scheme's ways (full
/// signing, from a presignature, FROST), verifies each signature with an independent library and
/// prints the outcome; returns how many failed verification.
async fn sign_runs(
    api: &ApiClient,
    trust: &crate::trust::Trust,
    key_id: &str,
    scheme: Scheme,
    approvers: &[SigningKey],
) -> anyhow::Result<usize> {
    let mut failures = 0;
    // ECDSA payloads: a preimage the enclaves hash (which a presignature may sign), and a bare
    // digest, which is signed in full even when a presignature is ready (RUSTSEC-2025-0127).
    let preimage = || Payload::hashed(HashFunction::Sha256, b"cohort demo transaction".to_vec());
    let digest = || {
        Payload::raw(
            HashFunction::Sha256
                .digest(b"cohort demo transaction")
                .to_vec(),
        )
    };
    let runs: Vec<(Vec<u32>, Payload, PresignatureUse, &str)> = match scheme {
        Scheme::EcdsaSecp256k1 => vec![
            (
                vec![0, 0],
                preimage(),
                PresignatureUse::Never,
                "full signing, child key m/0/0",
            ),
            (
                vec![],
                preimage(),
                PresignatureUse::Prefer,
                "from a presignature, key m",
            ),
            (
                vec![],
                digest(),
                PresignatureUse::Prefer,
                "a bare digest, key m (full signing only)",
            ),
        ],
        Scheme::EddsaEd25519 => vec![(
            vec![],
            Payload::raw(b"cohort demo message".to_vec()),
            PresignatureUse::Never,
            "FROST",
        )],
    };
    for (path, payload, presignature, what) in runs {
        if presignature == PresignatureUse::Prefer {
            ops::wait_for_pool(api, key_id, &path, 1, Duration::from_secs(600))
                .await
                .context("waiting for the coordinator's presignature pool")?;
        }
        let signed_over = match scheme {
            Scheme::EcdsaSecp256k1 => payload.ecdsa_digest().map(Vec::from).unwrap_or_default(),
            Scheme::EddsaEd25519 => payload.bytes().to_vec(),
        };
        let raw_digest = scheme == Scheme::EcdsaSecp256k1 && !payload.is_hashed();
        let t = Instant::now();
        let result = ops::sign(
            api,
            trust.cluster_id(),
            key_id,
            &path,
            payload,
            approvers,
            Some(presignature),
        )
        .await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let s = result.signatures.first().context("no signature")?;
        // A bare digest from a presignature would be a failure even if it verified.
        let ok = verified(scheme, &signed_over, &result) && !(raw_digest && s.presigned);
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
    Ok(failures)
}

fn check(what: &str, ok: bool, detail: &str) -> usize {
    println!(
        "      {what}: {} ({detail})",
        if ok { "OK" } else { "FAILED" }
    );
    usize::from(!ok)
}

fn show(p: &coordinator::api::PreparedTransaction) {
    let filled = if p.filled.is_empty() {
        String::new()
    } else {
        format!(
            "; the coordinator fetched {} from the chain",
            p.filled.join(", ")
        )
    };
    println!(
        "      {} {} from {} ({} payload(s) to sign{filled})",
        p.chain,
        p.network,
        p.from,
        p.payloads.len()
    );
    for line in p.summary.to_string().lines().skip(1) {
        println!("        {line}");
    }
}

fn sent_line(s: &Sent) {
    let sig = &s.signed.signatures;
    println!(
        "      signed by nodes {:?}{}; {} bytes, txid {}",
        sig.first().map(|s| s.nodes.clone()).unwrap_or_default(),
        if sig.iter().all(|s| s.presigned) {
            " (presigned)"
        } else {
            ""
        },
        s.assembled.raw_tx.0.len(),
        s.assembled.txid
    );
}

/// What every demo transaction shares: the coordinator, the chain adapters and the approvers.
struct Sender<'a> {
    api: &'a ApiClient,
    trust: &'a crate::trust::Trust,
    registry: adapters::Registry,
    approvers: &'a [SigningKey],
}

impl Sender<'_> {
    /// Sends `intent` from `key_id` at `path` on `chain`'s `network` (broadcast to `url` when
    /// given), shows the checked summary first and prints the signing line.
    async fn send(
        &self,
        key_id: &str,
        chain: &str,
        network: &str,
        path: Vec<u32>,
        intent: adapters::Intent,
        url: Option<&str>,
    ) -> anyhow::Result<Sent> {
        let req = TxRequest {
            key_id: key_id.into(),
            chain: chain.into(),
            network: Some(network.into()),
            path,
            intent,
        };
        let rpc = Rpc {
            url,
            fill_locally: false,
        };
        let sent = send(
            self.api,
            self.trust,
            &self.registry,
            req,
            self.approvers,
            rpc,
            show,
        )
        .await?;
        sent_line(&sent);
        Ok(sent)
    }
}

/// Bitcoin (regtest, checked by Core's interpreter), Ethereum (anvil: ETH and an ERC-20),
/// Solana (the runtime: SOL and an SPL token).
async fn transactions(
    api: &ApiClient,
    trust: &crate::trust::Trust,
    approvers: &[SigningKey],
    chains: &LocalChains,
) -> anyhow::Result<usize> {
    let tx = Sender {
        api,
        trust,
        registry: adapters::Registry::builtin(),
        approvers,
    };
    let mut failures = bitcoin(&tx).await?;
    failures += ethereum(&tx, &chains.anvil).await?;
    failures += solana(&tx, &chains.solana).await?;
    Ok(failures)
}

/// Bitcoin on regtest, checked by Core's interpreter; returns 1 if the check failed. Bitcoin-family
/// test networks keep their keys under m/1/…
async fn bitcoin(tx: &Sender<'_>) -> anyhow::Result<usize> {
    // Bitcoin: spend two outputs of the cluster's address (their funding transaction is
    // invented: Core's interpreter needs only the spent scripts and amounts).
    let utxos: Vec<adapters::Utxo> = [(1u8, 70_000u64), (2, 50_000)]
        .iter()
        .map(|(n, amount)| {
            use sha2::Digest;
            adapters::Utxo {
                txid: hex::encode(sha2::Sha256::digest(
                    [b"cohort demo funding ".as_slice(), &[*n]].concat(),
                )),
                vout: u32::from(*n),
                amount: *amount,
            }
        })
        .collect();
    let btc = tx
        .send(
            "demo-ecdsa",
            "bitcoin",
            "regtest",
            vec![1, 0],
            adapters::Intent {
                to: Some("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".into()),
                amount: Some("100000".into()),
                utxos: Some(utxos),
                fee_rate: Some(2),
                ..Default::default()
            },
            None,
        )
        .await
        .context("bitcoin transaction")?;
    let psbt = btc.assembled.psbt.as_ref().context("no finalized PSBT")?;
    let spent = adapters::bitcoin::spent_outputs(&psbt.0)?;
    let verdict = bitcoin_verify(&btc.assembled.raw_tx.0, &spent).await;
    Ok(check(
        "bitcoin: every input under Bitcoin Core's script interpreter",
        verdict.is_ok(),
        &match &verdict {
            Ok(v) => v.clone(),
            Err(e) => e.to_string(),
        },
    ))
}

/// Ethereum on anvil, ETH and an ERC-20 (the EVM key is m/0/0); returns the failed checks.
async fn ethereum(tx: &Sender<'_>, anvil: &Anvil) -> anyhow::Result<usize> {
    let path = vec![0, 0];
    let mut failures = 0;
    // Ethereum on anvil: fund the cluster's address, deploy a token it holds, send ETH and
    // tokens; anvil fills nothing in for us: the coordinator fetched nonce and fees.
    let from = crate::tx::address(
        tx.api,
        tx.trust,
        &tx.registry,
        "demo-ecdsa",
        "ethereum",
        Some("anvil"),
        &path,
    )
    .await?;
    anvil.set_balance(&from.address, 10u128.pow(19)).await?;
    let token = anvil.deploy_token(&from.address).await?;
    let recipient = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    for (what, token_addr, amount) in [
        ("ETH", None, 12_340_000_000_000_000u128),
        ("ERC-20", Some(token.clone()), 5_000_000_000_000_000_000u128),
    ] {
        let before = match &token_addr {
            None => anvil.balance(recipient).await?,
            Some(t) => anvil.token_balance(t, recipient).await?,
        };
        let sent = tx
            .send(
                "demo-ecdsa",
                "ethereum",
                "anvil",
                path.clone(),
                adapters::Intent {
                    to: Some(recipient.into()),
                    amount: Some(amount.to_string()),
                    token: token_addr.clone(),
                    ..Default::default()
                },
                Some(&anvil.url),
            )
            .await
            .with_context(|| format!("ethereum {what} transaction"))?;
        let hash = sent.broadcast.clone().unwrap_or_default();
        let mined = anvil.succeeded(&hash).await?;
        let after = match &token_addr {
            None => anvil.balance(recipient).await?,
            Some(t) => anvil.token_balance(t, recipient).await?,
        };
        failures += check(
            &format!(
                "ethereum {what}: accepted and mined by anvil, recipient balance grew by the amount"
            ),
            mined && after == before + amount,
            &format!("tx {hash}, balance {before} -> {after}"),
        );
    }
    Ok(failures)
}

/// Solana through the runtime, SOL and an SPL token; returns the failed checks.
async fn solana(tx: &Sender<'_>, sol: &LocalSolana) -> anyhow::Result<usize> {
    let mut failures = 0;
    // Solana: airdrop to the cluster's address, send SOL and an SPL token through the runtime.
    let from = crate::tx::address(
        tx.api,
        tx.trust,
        &tx.registry,
        "demo-eddsa",
        "solana",
        Some("localnet"),
        &[],
    )
    .await?;
    sol.airdrop(&from.address, 2_000_000_000).await?;
    // Any 32 bytes serve as a mint address on a local runtime; this is USDC's on mainnet.
    let mint = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
    sol.mint_to(mint, &from.address, 1_000_000, 6).await?;
    let recipient = tx.registry.adapter("solana", Some("localnet"))?.address(
        SigningKey::generate(&mut rand::rngs::OsRng)
            .verifying_key()
            .as_bytes(),
    )?;
    let recipient = recipient.as_str();
    for (what, token, amount) in [
        ("SOL", None, 500_000_000u64),
        ("SPL token", Some(mint.to_string()), 250_000u64),
    ] {
        let account = match &token {
            None => recipient.to_string(),
            Some(m) => adapters::solana::associated_token_address(recipient, m)?,
        };
        let is_token = token.is_some();
        let balance = |a: String| async move {
            if is_token {
                sol.token_balance(&a).await
            } else {
                sol.balance(&a).await
            }
        };
        let before = balance(account.clone()).await?;
        let sent = tx
            .send(
                "demo-eddsa",
                "solana",
                "localnet",
                vec![],
                adapters::Intent {
                    to: Some(recipient.into()),
                    amount: Some(amount.to_string()),
                    token: token.clone(),
                    decimals: token.as_ref().map(|_| 6),
                    ..Default::default()
                },
                Some(&sol.url),
            )
            .await
            .with_context(|| format!("solana {what} transaction"))?;
        let after = balance(account.clone()).await?;
        failures += check(
            &format!(
                "solana {what}: executed by the Solana runtime, recipient balance grew by the amount"
            ),
            after == before + amount,
            &format!(
                "signature {}, balance {before} -> {after}",
                sent.broadcast.unwrap_or_default()
            ),
        );
    }
    Ok(failures)
}
