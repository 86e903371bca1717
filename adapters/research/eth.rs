//! EVM probe: EIP-1559 and legacy EIP-155 transactions, signing hash, k256 signature given only as
//! (r, s) like a threshold signer returns it, recovery id found by trial recovery, low-s, raw bytes.
use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{SignableTransaction, Signed, TxEip1559, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256, address, b256};
use k256::ecdsa::signature::hazmat::PrehashSigner;
use k256::ecdsa::{RecoveryId, SigningKey, VerifyingKey};

/// Ethereum address of a secp256k1 public key (keccak of the 64-byte uncompressed point).
fn eth_address(vk: &VerifyingKey) -> Address {
    let p = vk.to_encoded_point(false);
    Address::from_raw_public_key(&p.as_bytes()[1..])
}

/// Turn a 64-byte (r||s) signature into an Ethereum signature: force low-s (EIP-2), then find the
/// y-parity by recovering against the known public key (the cluster does not return a recovery id).
fn to_eth_signature(compact: &[u8; 64], hash: &B256, pubkey: &VerifyingKey) -> Signature {
    let sig = k256::ecdsa::Signature::from_slice(compact).expect("r||s");
    let sig = sig.normalize_s().unwrap_or(sig);
    for parity in [false, true] {
        let rid = RecoveryId::new(parity, false);
        if VerifyingKey::recover_from_prehash(hash.as_slice(), &sig, rid).ok().as_ref() == Some(pubkey) {
            return Signature::from_signature_and_parity(sig, parity);
        }
    }
    panic!("signature does not match the public key");
}

fn cluster_sign(sk: &SigningKey, hash: &B256) -> [u8; 64] {
    let sig: k256::ecdsa::Signature = sk.sign_prehash(hash.as_slice()).unwrap();
    sig.to_bytes().into()
}

/// ERC-20 transfer(address,uint256) calldata, hand-encoded (selector a9059cbb).
fn erc20_transfer(to: Address, amount: U256) -> Bytes {
    let mut v = Vec::with_capacity(68);
    v.extend_from_slice(&[0xa9, 0x05, 0x9c, 0xbb]);
    v.extend_from_slice(&[0u8; 12]);
    v.extend_from_slice(to.as_slice());
    v.extend_from_slice(&amount.to_be_bytes::<32>());
    v.into()
}

fn main() {
    // --- Known answer: the EIP-155 example (chain 1, key 0x4646..46). ---
    let kat = TxLegacy {
        chain_id: Some(1),
        nonce: 9,
        gas_price: 20_000_000_000,
        gas_limit: 21_000,
        to: TxKind::Call(address!("3535353535353535353535353535353535353535")),
        value: U256::from(1_000_000_000_000_000_000u128),
        input: Bytes::new(),
    };
    let h = kat.signature_hash();
    assert_eq!(h, b256!("daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53"));
    let kat_sk = SigningKey::from_bytes(&[0x46u8; 32].into()).unwrap();
    let sig = to_eth_signature(&cluster_sign(&kat_sk, &h), &h, kat_sk.verifying_key());
    let raw = TxEnvelope::from(kat.into_signed(sig)).encoded_2718();
    assert_eq!(
        hex::encode(&raw),
        "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
    );
    println!("EIP-155 known-answer (hash and signed RLP) OK");

    // --- Our own transactions. Anvil's default chain id is 31337. ---
    let chain_id = std::env::var("CHAIN_ID").ok().and_then(|s| s.parse().ok()).unwrap_or(31337u64);
    let nonce: u64 = std::env::var("NONCE").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let sk = SigningKey::from_bytes(&[0x22u8; 32].into()).unwrap();
    let vk = *sk.verifying_key();
    let from = eth_address(&vk);
    let to = address!("70997970C51812dc3A010C7d01b50e0d17dc79C8");
    println!("from {from} (checksummed) chain {chain_id}");

    let tx1559 = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value: U256::from(1_234_567_890_000_000u64),
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let h1 = tx1559.signature_hash(); // keccak(0x02 || rlp([...]))
    let s1 = to_eth_signature(&cluster_sign(&sk, &h1), &h1, &vk);
    let signed1: Signed<TxEip1559> = tx1559.into_signed(s1);
    let raw1 = TxEnvelope::from(signed1).encoded_2718(); // 0x02 || rlp(...), for eth_sendRawTransaction
    println!("eip1559 hash {h1} y_parity {}", s1.v());
    println!("RAW1559=0x{}", hex::encode(&raw1));

    let legacy = TxLegacy {
        chain_id: Some(chain_id), // EIP-155: v = 35 + 2*chain_id + y_parity
        nonce: nonce + 1,
        gas_price: 20_000_000_000,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value: U256::from(42u64),
        input: Bytes::new(),
    };
    let h2 = legacy.signature_hash();
    let s2 = to_eth_signature(&cluster_sign(&sk, &h2), &h2, &vk);
    let raw2 = TxEnvelope::from(legacy.into_signed(s2)).encoded_2718(); // plain rlp list
    println!("RAWLEGACY=0x{}", hex::encode(&raw2));

    // ERC-20 transfer is an EIP-1559 tx to the token contract with calldata.
    let token = address!("5FbDB2315678afecb367f032d93F642f64180aa3");
    let erc20 = TxEip1559 {
        chain_id,
        nonce: nonce + 2,
        gas_limit: 60_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(token),
        value: U256::ZERO,
        access_list: Default::default(),
        input: erc20_transfer(to, U256::from(10u64).pow(U256::from(18u64))),
    };
    println!("erc20 calldata 0x{}", hex::encode(&erc20.input));
    let h3 = erc20.signature_hash();
    let s3 = to_eth_signature(&cluster_sign(&sk, &h3), &h3, &vk);
    println!("RAWERC20=0x{}", hex::encode(TxEnvelope::from(erc20.into_signed(s3)).encoded_2718()));

    // Decode for the approver's summary: type, chain, nonce, to, value, signer recovered.
    for raw in [&raw1, &raw2] {
        let env = TxEnvelope::decode_2718(&mut raw.as_slice()).expect("decode");
        let signer = env.recover_signer().expect("recover");
        assert_eq!(signer, from);
        use alloy_consensus::Transaction as _;
        println!(
            "decoded: type {:?} chain {:?} nonce {} to {:?} value {} signer {signer}",
            env.tx_type(), env.chain_id(), env.nonce(), env.to(), env.value()
        );
    }
    // alloy-rlp directly: an RLP list of the legacy fields decodes back.
    let mut buf = Vec::new();
    alloy_rlp::Encodable::encode(&U256::from(1024u64), &mut buf);
    assert_eq!(buf, [0x82, 0x04, 0x00]);
    println!("eth OK");
}
