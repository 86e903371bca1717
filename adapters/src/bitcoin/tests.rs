//! End-to-end tests of the Bitcoin adapter: build, inspect, assemble and decode, and the
//! refusals of bad input.

use bitcoin::Transaction;
use bitcoin::consensus::encode::deserialize;
use bitcoin::psbt::Psbt;

use super::*;
use crate::test_support::{build_err, secp256k1_key, sign_prehash as sign};
use crate::{ChainAdapter, Intent, Utxo};

fn key() -> (k256::ecdsa::SigningKey, Vec<u8>) {
    secp256k1_key(0x11)
}

fn utxo(n: u8, amount: u64) -> Utxo {
    Utxo {
        txid: hex::encode([n; 32]),
        vout: u32::from(n),
        amount,
    }
}

#[test]
fn builds_with_change_and_assembles() {
    let (sk, pk) = key();
    let btc = Bitcoin::new("regtest").unwrap();
    let intent = Intent {
        to: Some("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".into()),
        amount: Some("100000".into()),
        utxos: Some(vec![utxo(1, 70_000), utxo(2, 50_000), utxo(3, 10_000)]),
        fee_rate: Some(2),
        ..Default::default()
    };
    let u = btc.build(&pk, &[1, 7], &intent).unwrap();
    // Two inputs cover 100 000 + fee; the third is not spent.
    assert_eq!(u.payloads.len(), 2);
    assert!(u.payloads.iter().all(|p| p.path == vec![1, 7]
        && p.signed_bytes().len() == 32
        && p.hash == Some(protocol::policy::HashFunction::Sha256d)));
    let change = u.summary.transfers.iter().find(|t| t.change).unwrap();
    let fee: u64 = 120_000 - 100_000 - change.amount.parse::<u64>().unwrap();
    let signed = btc
        .assemble(
            &pk,
            &u.tx,
            &u.payloads
                .iter()
                .map(|p| sign(&sk, &p.signed_bytes()))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let tx: Transaction = deserialize(&signed.raw).unwrap();
    // The fee pays at least the asked rate for the real size, and the estimate is tight.
    assert!(
        fee >= 2 * tx.vsize() as u64,
        "fee {fee} vsize {}",
        tx.vsize()
    );
    assert!(
        fee <= 2 * (tx.vsize() as u64 + 2),
        "fee {fee} vsize {}",
        tx.vsize()
    );
    let psbt = Psbt::deserialize(signed.psbt.as_ref().unwrap()).unwrap();
    assert!(psbt.inputs.iter().all(|i| i.final_script_witness.is_some()));
    let d = btc.decode(&signed.raw).unwrap();
    assert_eq!(d.from, btc.address(&pk).unwrap());
    assert_eq!(d.transfers[0].amount, "100000");
    // The same PSBT, given as a PSBT intent (base64), yields the same payloads.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&u.tx);
    let again = btc
        .build(
            &pk,
            &[1, 7],
            &Intent {
                psbt: Some(b64),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(again.payloads, u.payloads);
}

#[test]
fn bad_input_gets_clear_errors() {
    let (sk, pk) = key();
    let btc = Bitcoin::new("regtest").unwrap();
    let ok = Intent {
        to: Some("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".into()),
        amount: Some("10000".into()),
        utxos: Some(vec![utxo(1, 70_000)]),
        fee_rate: Some(2),
        ..Default::default()
    };
    assert!(btc.build(&pk, &[1], &ok).is_ok());
    for (to, want) in [
        (
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            "not a bitcoin regtest",
        ),
        ("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt081", "bech32"),
        ("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "another network"),
        (
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "not a bitcoin regtest",
        ),
    ] {
        let e = build_err(&btc, &pk, &[1], &ok, |i| i.to = Some(to.into()));
        assert!(matches!(e, AdapterError::BadAddress { .. }), "{e}");
        assert!(e.to_string().contains(want), "{to}: {e}");
    }
    let e = build_err(&btc, &pk, &[1], &ok, |i| i.amount = Some("1000000".into()));
    assert!(matches!(e, AdapterError::InsufficientFunds { .. }), "{e}");
    let e = build_err(&btc, &pk, &[1], &ok, |i| i.amount = Some("100".into()));
    assert!(e.to_string().contains("dust"), "{e}");
    let e = build_err(&btc, &pk, &[1], &ok, |i| i.fee_rate = Some(1_000_000));
    assert!(e.to_string().contains("fee rate"), "{e}");
    let e = build_err(&btc, &pk, &[1], &ok, |i| {
        i.utxos = Some(vec![utxo(1, 70_000), utxo(1, 70_000)])
    });
    assert!(e.to_string().contains("twice"), "{e}");
    let e = build_err(&btc, &pk, &[1], &ok, |i| i.nonce = Some(1));
    assert!(e.to_string().contains("nonce"), "{e}");
    // A PSBT spending another key's output is refused.
    let (other, other_pk) = secp256k1_key(0x12);
    let u = btc.build(&other_pk, &[1], &ok).unwrap();
    let e = btc.inspect(&pk, &[1], &u.tx).unwrap_err();
    assert!(e.to_string().contains("does not spend this key"), "{e}");
    // Wrong signatures, wrong counts.
    let u = btc.build(&pk, &[1], &ok).unwrap();
    assert!(matches!(
        btc.assemble(&pk, &u.tx, &[sign(&other, &u.payloads[0].signed_bytes())]),
        Err(AdapterError::BadSignature { index: 0, .. })
    ));
    assert!(matches!(
        btc.assemble(&pk, &u.tx, &[]),
        Err(AdapterError::SignatureCount { .. })
    ));
    assert!(
        btc.assemble(&pk, &u.tx, &[sign(&sk, &u.payloads[0].signed_bytes())])
            .is_ok()
    );
    for junk in [&b""[..], &b"psbt\xff"[..], &[0u8; 50][..]] {
        assert!(btc.inspect(&pk, &[1], junk).is_err());
        assert!(btc.decode(junk).is_err());
    }
    assert!(Bitcoin::new("mainnet-beta").is_err());
    // Regtest keys live under m/1/…: another first component (or none) is refused, so a
    // signature for one Bitcoin-family network cannot be asked under another's path.
    for path in [&[][..], &[0][..], &[2, 1][..]] {
        let e = btc.build(&pk, path, &ok).unwrap_err();
        assert!(e.to_string().contains("m/1/"), "{e}");
        assert!(btc.check_path(path).is_err());
    }
    assert!(btc.check_path(&[1, 0]).is_ok());
    // An imported key whose legacy funds are on regtest: its own key (the empty path) signs on
    // regtest, and on no other Bitcoin-family network, nor on one its import does not name.
    let registry = crate::Registry::builtin();
    let legacy = registry
        .adapter_for_key("bitcoin", Some("regtest"), Some("bitcoin:regtest"))
        .unwrap();
    assert!(legacy.check_path(&[]).is_ok());
    assert!(legacy.build(&pk, &[], &ok).is_ok());
    assert!(legacy.check_path(&[0]).is_err());
    for (chain, network, named) in [
        ("bitcoin", "mainnet", Some("bitcoin:regtest")),
        ("litecoin", "regtest", Some("bitcoin:regtest")),
        ("bitcoin", "regtest", Some("litecoin:regtest")),
        ("bitcoin", "regtest", None),
    ] {
        let a = registry
            .adapter_for_key(chain, Some(network), named)
            .unwrap();
        assert!(a.check_path(&[]).is_err(), "{chain} {network} {named:?}");
    }
    assert!(registry.is_bitcoin_family("litecoin:mainnet"));
    assert!(!registry.is_bitcoin_family("ethereum:mainnet"));
    assert!(!registry.is_bitcoin_family("bitcoin:nowhere"));
    assert!(!registry.is_bitcoin_family("bitcoin"));
    assert!(matches!(
        btc.address(&pk[..32]),
        Err(AdapterError::BadPublicKey(_))
    ));
}
