//! Bitcoin probe: P2WPKH spend, BIP143 sighash, k256 signature, witness from compact sig + pubkey,
//! verified by Bitcoin Core's script interpreter (libbitcoinconsensus via `bitcoin`'s feature).
use bitcoin::absolute::LockTime;
use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::psbt::Psbt;
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{
    Address, Amount, CompressedPublicKey, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxOut, Witness,
};
use k256::ecdsa::SigningKey;
use k256::ecdsa::signature::hazmat::PrehashSigner;

/// What the cluster hands back: a 64-byte compact (r||s) signature and the 33-byte SEC1 pubkey.
fn cluster_sign(sk: &SigningKey, digest: &[u8; 32]) -> [u8; 64] {
    let sig: k256::ecdsa::Signature = sk.sign_prehash(digest).expect("sign");
    // Bitcoin policy (BIP62/BIP146 LOW_S) requires low-s; k256 already signs low-s, normalise anyway.
    let sig = sig.normalize_s().unwrap_or(sig);
    sig.to_bytes().into()
}

/// Assemble a P2WPKH witness from raw bytes only (what an adapter receives from the coordinator).
fn p2wpkh_witness(compact: &[u8; 64], pubkey33: &[u8; 33]) -> Witness {
    let sig = bitcoin::secp256k1::ecdsa::Signature::from_compact(compact).expect("compact sig");
    let sig = bitcoin::ecdsa::Signature { signature: sig, sighash_type: EcdsaSighashType::All };
    // DER + sighash byte, then the compressed pubkey.
    let mut w = Witness::new();
    w.push(sig.serialize());
    w.push(pubkey33);
    w
}

fn main() {
    // --- Known-answer: BIP143 native P2WPKH example (input 1). ---
    let kat: Transaction = deserialize(&hex::decode(
        "0100000002fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f0000000000eeffffffef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff02202cb206000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42dbee7e4dbe6a21b2d50ce2f0167faa815988ac11000000",
    ).unwrap()).unwrap();
    let kat_spk = ScriptBuf::from_hex("00141d0f172a0ecb48aee1be1f2687d2963ae33f71a1").unwrap();
    let kat_hash = SighashCache::new(&kat)
        .p2wpkh_signature_hash(1, &kat_spk, Amount::from_sat(600_000_000), EcdsaSighashType::All)
        .unwrap();
    // SegwitV0Sighash displays forwards (not reversed like txids).
    assert_eq!(kat_hash.to_string(), "c37af31116d1b27caf68aae9e3ac82f1477929014d5b917657d0eb49478cb670");
    println!("BIP143 known-answer sighash OK");

    // --- Our own spend. ---
    let sk = SigningKey::from_bytes(&[0x11u8; 32].into()).unwrap();
    let pk33: [u8; 33] = sk.verifying_key().to_encoded_point(true).as_bytes().try_into().unwrap();
    let cpk = CompressedPublicKey::from_slice(&pk33).unwrap();
    for net in [Network::Bitcoin, Network::Testnet, Network::Regtest] {
        println!("{net:?} address: {}", Address::p2wpkh(&cpk, net));
    }
    let spk = ScriptBuf::new_p2wpkh(&cpk.wpubkey_hash());

    // Two fake UTXOs paying to our key (a funding tx we never broadcast).
    let funding = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn { previous_output: OutPoint::null(), ..Default::default() }],
        output: vec![
            TxOut { value: Amount::from_sat(70_000), script_pubkey: spk.clone() },
            TxOut { value: Amount::from_sat(50_000), script_pubkey: spk.clone() },
        ],
    };
    let utxos: Vec<(OutPoint, TxOut)> = funding
        .output
        .iter()
        .enumerate()
        .map(|(i, o)| (OutPoint { txid: funding.compute_txid(), vout: i as u32 }, o.clone()))
        .collect();

    let dest = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
        .parse::<Address<bitcoin::address::NetworkUnchecked>>()
        .unwrap()
        .require_network(Network::Regtest)
        .unwrap();
    let fee_rate_sat_vb = 2u64;
    // P2WPKH: ~68 vB per input, 31 vB per output, ~11 vB overhead.
    let vsize = 11 + 68 * utxos.len() as u64 + 31 * 2;
    let total_in: u64 = utxos.iter().map(|(_, o)| o.value.to_sat()).sum();
    let send = 100_000u64;
    let change = total_in - send - fee_rate_sat_vb * vsize;
    let unsigned = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: utxos
            .iter()
            .map(|(op, _)| TxIn {
                previous_output: *op,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: vec![
            TxOut { value: Amount::from_sat(send), script_pubkey: dest.script_pubkey() },
            TxOut { value: Amount::from_sat(change), script_pubkey: spk.clone() },
        ],
    };

    // PSBT in, finalized PSBT out (the PSBT path).
    let mut psbt = Psbt::from_unsigned_tx(unsigned.clone()).unwrap();
    for (i, (_, o)) in utxos.iter().enumerate() {
        psbt.inputs[i].witness_utxo = Some(o.clone());
    }
    let psbt = Psbt::deserialize(&psbt.serialize()).unwrap(); // round-trip the wire format

    // Signing payloads: one BIP143 digest per input.
    let digests: Vec<[u8; 32]> = {
        let mut cache = SighashCache::new(&psbt.unsigned_tx);
        (0..psbt.inputs.len())
            .map(|i| {
                let prev = psbt.inputs[i].witness_utxo.as_ref().unwrap();
                cache
                    .p2wpkh_signature_hash(i, &prev.script_pubkey, prev.value, EcdsaSighashType::All)
                    .unwrap()
                    .to_byte_array()
            })
            .collect()
    };

    // Assemble: finalize each PSBT input, extract the network tx.
    let mut psbt = psbt;
    for (i, d) in digests.iter().enumerate() {
        let compact = cluster_sign(&sk, d);
        psbt.inputs[i].final_script_witness = Some(p2wpkh_witness(&compact, &pk33));
    }
    let signed = psbt.clone().extract_tx().expect("extract (fee sanity check)");
    let raw = serialize(&signed);
    println!("signed tx: {} bytes, vsize {}, txid {}", raw.len(), signed.vsize(), signed.compute_txid());
    println!("raw: {}", hex::encode(&raw));

    // Bitcoin Core's interpreter, every input against the spent outputs.
    let lookup = |op: &OutPoint| utxos.iter().find(|(o, _)| o == op).map(|(_, t)| t.clone());
    signed.verify(lookup).expect("bitcoinconsensus verify");
    // Same via the explicit per-input call with flags.
    for (i, (_, prev)) in utxos.iter().enumerate() {
        prev.script_pubkey
            .verify_with_flags(i, prev.value, &raw, bitcoinconsensus::VERIFY_ALL)
            .expect("verify_with_flags");
    }
    // Negative: wrong amount must fail (BIP143 commits to the amount).
    let bad = utxos[0].1.script_pubkey.verify(0, Amount::from_sat(70_001), &raw);
    assert!(bad.is_err(), "tampered amount must fail");
    println!("bitcoinconsensus {} verify: OK", bitcoinconsensus::version());
}
