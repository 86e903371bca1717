//! The adapters' transactions, signed by ordinary keys (k256, ed25519-dalek), against the chain
//! software itself: Bitcoin Core's script interpreter and the Solana runtime over JSON-RPC. The
//! checkers must accept what is right and refuse what is not (a tampered amount, another key's
//! signature, a replay), or they prove nothing. The cluster-signed versions are in
//! `tests/tests/chains.rs`.

#![allow(clippy::unwrap_used, missing_docs)]

use adapters::{Intent, Registry, Utxo};
use chain_check::bitcoin::{Spent, VerifyError, input_count, verify};
use chain_check::solana::LocalSolana;
use coordinator::rpc::{JsonRpc, RpcDialect, RpcError, broadcast};
use ed25519_dalek::Signer;
use k256::ecdsa::SigningKey;
use k256::ecdsa::signature::hazmat::PrehashSigner;
use serde_json::json;

fn ecdsa(sk: &SigningKey, digest: &[u8]) -> Vec<u8> {
    let s: k256::ecdsa::Signature = sk.sign_prehash(digest).unwrap();
    s.to_bytes().to_vec()
}

fn spent_of(psbt: &[u8]) -> Vec<Spent> {
    adapters::bitcoin::spent_outputs(psbt)
        .unwrap()
        .into_iter()
        .map(|(script, amount)| Spent { script, amount })
        .collect()
}

fn utxo(n: u8, amount: u64) -> Utxo {
    Utxo {
        txid: hex::encode([n; 32]),
        vout: 0,
        amount,
    }
}

#[test]
fn bitcoin_core_accepts_every_input_and_refuses_tampering() {
    let sk = SigningKey::from_bytes(&[0x21u8; 32].into()).unwrap();
    let pk = sk
        .verifying_key()
        .to_encoded_point(true)
        .as_bytes()
        .to_vec();
    let btc = Registry::builtin()
        .adapter("bitcoin", Some("testnet"))
        .unwrap();
    // Three inputs needed; payment to a P2TR and a P2PKH-less mix is covered by the adapter's
    // own tests, here the point is the interpreter.
    let u = btc
        .build(
            &pk,
            &[1],
            &Intent {
                to: Some("tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx".into()),
                amount: Some("150000".into()),
                utxos: Some(vec![utxo(1, 60_000), utxo(2, 60_000), utxo(3, 60_000)]),
                fee_rate: Some(5),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(u.payloads.len(), 3);
    let sigs: Vec<Vec<u8>> = u
        .payloads
        .iter()
        .map(|p| ecdsa(&sk, &p.signed_bytes()))
        .collect();
    let signed = btc.assemble(&pk, &u.tx, &sigs).unwrap();
    let spent = spent_of(signed.psbt.as_ref().unwrap());
    assert_eq!(input_count(&signed.raw).unwrap(), 3);
    verify(&signed.raw, &spent).unwrap();

    // BIP143 commits to each spent amount: one satoshi more and input 1 fails.
    let mut wrong = spent.clone();
    wrong[1].amount += 1;
    assert!(matches!(
        verify(&signed.raw, &wrong),
        Err(VerifyError::Script { index: 1, .. })
    ));
    // Another key's script: fails.
    let mut wrong = spent.clone();
    wrong[0].script[5] ^= 1;
    assert!(matches!(
        verify(&signed.raw, &wrong),
        Err(VerifyError::Script { index: 0, .. })
    ));
    // A flipped byte in a signature: fails.
    let mut raw = signed.raw.clone();
    let at = raw.len() - 120;
    raw[at] ^= 1;
    assert!(verify(&raw, &spent).is_err());
    // Spent outputs must match the inputs one for one.
    assert!(matches!(
        verify(&signed.raw, &spent[..2]),
        Err(VerifyError::Count {
            inputs: 3,
            spent: 2
        })
    ));
    assert!(matches!(
        verify(&[1, 2, 3], &spent),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn a_psbt_from_elsewhere_is_signed_and_verifies() {
    use base64::Engine as _;
    let sk = SigningKey::from_bytes(&[0x22u8; 32].into()).unwrap();
    let pk = sk
        .verifying_key()
        .to_encoded_point(true)
        .as_bytes()
        .to_vec();
    let btc = Registry::builtin()
        .adapter("bitcoin", Some("regtest"))
        .unwrap();
    // A wallet's unsigned PSBT (built here by the adapter, then passed on as base64 text).
    let wallet = btc
        .build(
            &pk,
            &[1, 3],
            &Intent {
                to: Some("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".into()),
                amount: Some("20000".into()),
                utxos: Some(vec![utxo(7, 30_000)]),
                fee_rate: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    let text = base64::engine::general_purpose::STANDARD.encode(&wallet.tx);
    let u = btc
        .build(
            &pk,
            &[1, 3],
            &Intent {
                psbt: Some(text),
                ..Default::default()
            },
        )
        .unwrap();
    let sigs: Vec<Vec<u8>> = u
        .payloads
        .iter()
        .map(|p| ecdsa(&sk, &p.signed_bytes()))
        .collect();
    let signed = btc.assemble(&pk, &u.tx, &sigs).unwrap();
    verify(&signed.raw, &spent_of(signed.psbt.as_ref().unwrap())).unwrap();
    // Mixing a PSBT with other fields is refused with a reason.
    let e = btc
        .build(
            &pk,
            &[1],
            &Intent {
                psbt: Some("cHNidP8=".into()),
                fee_rate: Some(3),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("PSBT alone"), "{e}");
}

async fn sol_call(rpc: &JsonRpc, method: &str, params: serde_json::Value) -> serde_json::Value {
    rpc.call(method, params).await.unwrap()
}

async fn lamports(rpc: &JsonRpc, who: &str) -> u64 {
    sol_call(rpc, "getBalance", json!([who])).await["value"]
        .as_u64()
        .unwrap()
}

/// A local cluster: no genesis hash to check.
const LOCAL: RpcDialect = RpcDialect::Solana { genesis: None };

#[tokio::test]
async fn the_solana_runtime_executes_transfers_and_refuses_bad_ones() {
    let node = LocalSolana::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let rpc = JsonRpc::new(&node.url());
    let sol = Registry::builtin()
        .adapter("solana", Some("localnet"))
        .unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[0x33u8; 32]);
    let pk = key.verifying_key().to_bytes().to_vec();
    let from = sol.address(&pk).unwrap();
    let to = sol
        .address(
            ed25519_dalek::SigningKey::from_bytes(&[0x44u8; 32])
                .verifying_key()
                .as_bytes(),
        )
        .unwrap();
    sol_call(&rpc, "requestAirdrop", json!([from, 3_000_000_000u64])).await;
    assert_eq!(lamports(&rpc, &from).await, 3_000_000_000);

    let blockhash = sol_call(&rpc, "getLatestBlockhash", json!([])).await["value"]["blockhash"]
        .as_str()
        .unwrap()
        .to_string();
    let build = |intent: Intent| {
        let u = sol.build(&pk, &[], &intent).unwrap();
        let sig = key.sign(&u.payloads[0].data).to_bytes().to_vec();
        sol.assemble(&pk, &u.tx, &[sig]).unwrap()
    };
    let transfer = build(Intent {
        to: Some(to.clone()),
        amount: Some("1234567".into()),
        recent_blockhash: Some(blockhash.clone()),
        ..Default::default()
    });
    let id = broadcast(&rpc, LOCAL, &transfer.raw).await.unwrap();
    assert_eq!(id, transfer.txid);
    assert_eq!(lamports(&rpc, &to).await, 1_234_567);
    assert_eq!(
        lamports(&rpc, &from).await,
        3_000_000_000 - 1_234_567 - 5_000
    );
    // The same bytes again: refused (already processed); nothing moves.
    let e = broadcast(&rpc, LOCAL, &transfer.raw).await.unwrap_err();
    assert!(matches!(e, RpcError::Rpc { .. }), "{e}");
    assert_eq!(lamports(&rpc, &to).await, 1_234_567);

    // A signature by another key over the same message: refused by the runtime.
    let u = sol
        .build(
            &pk,
            &[],
            &Intent {
                to: Some(to.clone()),
                amount: Some("1".into()),
                recent_blockhash: Some(blockhash.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    let forged = ed25519_dalek::SigningKey::from_bytes(&[0x55u8; 32])
        .sign(&u.payloads[0].data)
        .to_bytes();
    let mut raw = transfer.raw.clone();
    // Same layout as a signed transfer: 1-byte count, then the 64-byte signature.
    raw[1..65].copy_from_slice(&forged);
    assert!(broadcast(&rpc, LOCAL, &raw).await.is_err());

    // A stale blockhash: refused.
    let stale = build(Intent {
        to: Some(to.clone()),
        amount: Some("5".into()),
        recent_blockhash: Some("11111111111111111111111111111111".into()),
        ..Default::default()
    });
    let e = broadcast(&rpc, LOCAL, &stale.raw).await.unwrap_err();
    assert!(e.to_string().contains("BlockhashNotFound"), "{e}");

    // SPL: seed a mint held by the sender, transfer with transfer_checked; the recipient's
    // token account is created by the same transaction.
    let mint = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
    let source = sol_call(&rpc, "cohort_mintTo", json!([mint, from, 1_000_000u64, 6])).await;
    let token = build(Intent {
        to: Some(to.clone()),
        amount: Some("250000".into()),
        token: Some(mint.into()),
        decimals: Some(6),
        recent_blockhash: Some(blockhash.clone()),
        ..Default::default()
    });
    broadcast(&rpc, LOCAL, &token.raw).await.unwrap();
    let dest = adapters::solana::associated_token_address(&to, mint).unwrap();
    let amount = |v: serde_json::Value| v["value"]["amount"].as_str().unwrap().to_string();
    assert_eq!(
        amount(sol_call(&rpc, "getTokenAccountBalance", json!([dest])).await),
        "250000"
    );
    assert_eq!(
        amount(sol_call(&rpc, "getTokenAccountBalance", json!([source])).await),
        "750000"
    );
    // Wrong decimals: refused on chain by transfer_checked.
    let wrong = build(Intent {
        to: Some(to.clone()),
        amount: Some("1".into()),
        token: Some(mint.into()),
        decimals: Some(9),
        recent_blockhash: Some(blockhash),
        ..Default::default()
    });
    assert!(broadcast(&rpc, LOCAL, &wrong.raw).await.is_err());

    // Bad requests get JSON-RPC errors, not a dead node.
    for (method, params) in [
        ("sendTransaction", json!(["!!!"])),
        ("sendTransaction", json!(["AAAA", {"encoding": "base64"}])),
        ("getBalance", json!(["not-an-address"])),
        ("noSuchMethod", json!([])),
    ] {
        assert!(
            matches!(rpc.call(method, params).await, Err(RpcError::Rpc { .. })),
            "{method}"
        );
    }
    assert!(lamports(&rpc, &to).await > 0);

    // A mainnet transaction is not sent to another cluster (this one's genesis differs).
    let mainnet = Registry::builtin()
        .adapter("solana", Some("mainnet"))
        .unwrap();
    let e = broadcast(&rpc, mainnet.rpc_dialect(), &transfer.raw)
        .await
        .unwrap_err();
    assert!(matches!(e, RpcError::WrongCluster { .. }), "{e}");
}
