//! Ethereum and every EVM chain in the registry: EIP-1559 and legacy EIP-155 transactions,
//! native and ERC-20 transfers.
//!
//! The unsigned transaction is its EIP-2718 signing preimage (`0x02 ‖ rlp(fields)` for
//! EIP-1559, `rlp(fields ‖ chain_id ‖ 0 ‖ 0)` for EIP-155), so the single payload is its
//! keccak-256. A threshold signature carries no recovery id: [`Evm::assemble`] normalises s to
//! the lower half (EIP-2) and finds the y-parity by recovering the key.

use alloy_consensus::transaction::{RlpEcdsaDecodableTx, SignerRecoverable};
use alloy_consensus::{SignableTransaction, Transaction as _, TxEip1559, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{B256, Bytes, Signature, TxKind, keccak256};
use alloy_rlp::{Decodable, Header};
use k256::ecdsa::{RecoveryId, VerifyingKey};
use protocol::policy::{HashFunction, Scheme};

pub use alloy_primitives::{Address, U256};

use crate::{
    AdapterError, ChainAdapter, EvmChain, Intent, Payload, Result, RpcDialect, Signed, Summary,
    Transfer, Unsigned, check_count, format_units, parse_amount, refuse_fields, required,
    signature64,
};

/// ERC-20 `transfer(address,uint256)`.
const TRANSFER_SELECTOR: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];

/// Gas for a plain value transfer.
const NATIVE_GAS: u64 = 21_000;
/// Default gas limit for an ERC-20 transfer when the intent gives none.
const TOKEN_GAS: u64 = 100_000;

/// An EVM chain on one network.
#[derive(Debug, Clone)]
pub struct Evm {
    chain: EvmChain,
    network: String,
    chain_id: u64,
}

impl Evm {
    /// The adapter for a registry entry and one of its networks.
    pub fn new(chain: EvmChain, network: &str) -> Result<Self> {
        let chain_id =
            *chain
                .networks
                .get(network)
                .ok_or_else(|| AdapterError::UnknownNetwork {
                    chain: chain.id.clone(),
                    network: network.to_string(),
                    known: chain
                        .networks
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
        Ok(Self {
            chain,
            network: network.to_string(),
            chain_id,
        })
    }

    /// The EIP-155 chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    fn verifying_key(public_key: &[u8]) -> Result<VerifyingKey> {
        VerifyingKey::from_sec1_bytes(public_key)
            .map_err(|_| AdapterError::BadPublicKey("not a secp256k1 public key".into()))
    }

    fn eth_address(public_key: &[u8]) -> Result<Address> {
        let vk = Self::verifying_key(public_key)?;
        Ok(Address::from_raw_public_key(
            &vk.to_encoded_point(false).as_bytes()[1..],
        ))
    }

    fn wei(&self, v: U256) -> String {
        match u128::try_from(v) {
            Ok(v) => format!(
                "{} {}",
                format_units(v, self.chain.decimals),
                self.chain.symbol
            ),
            Err(_) => format!("{v} wei"),
        }
    }

    fn summarize(&self, from: Address, tx: &dyn alloy_consensus::Transaction) -> Summary {
        let mut transfers = Vec::new();
        let mut details = vec![
            (
                "chain id".to_string(),
                tx.chain_id().unwrap_or(0).to_string(),
            ),
            ("nonce".to_string(), tx.nonce().to_string()),
            ("gas limit".to_string(), tx.gas_limit().to_string()),
        ];
        let to = tx.to();
        let value = tx.value();
        if let Some(to) = to {
            if !value.is_zero() || tx.input().is_empty() {
                transfers.push(Transfer {
                    to: to.to_checksum(None),
                    amount: value.to_string(),
                    asset: self.chain.symbol.clone(),
                    display: self.wei(value),
                    change: false,
                });
            }
            let input = tx.input();
            if let Some((recipient, amount)) = decode_erc20_transfer(input) {
                transfers.push(Transfer {
                    to: recipient.to_checksum(None),
                    amount: amount.to_string(),
                    asset: to.to_checksum(None),
                    display: format!("{amount} base units of token {}", to.to_checksum(None)),
                    change: false,
                });
            } else if !input.is_empty() {
                details.push((
                    "contract call".into(),
                    format!(
                        "{} bytes of calldata to {}: 0x{}",
                        input.len(),
                        to.to_checksum(None),
                        hex::encode(input)
                    ),
                ));
            }
        } else {
            details.push((
                "contract creation".into(),
                format!("{} bytes of init code", tx.input().len()),
            ));
        }
        let fee = match tx.gas_price() {
            Some(p) => {
                details.push(("gas price (wei)".into(), p.to_string()));
                U256::from(p) * U256::from(tx.gas_limit())
            }
            None => {
                details.push((
                    "max fee per gas (wei)".into(),
                    tx.max_fee_per_gas().to_string(),
                ));
                details.push((
                    "max priority fee per gas (wei)".into(),
                    tx.max_priority_fee_per_gas().unwrap_or(0).to_string(),
                ));
                U256::from(tx.max_fee_per_gas()) * U256::from(tx.gas_limit())
            }
        };
        details.push((
            "type".into(),
            if tx.is_dynamic_fee() {
                "EIP-1559".into()
            } else {
                "legacy (EIP-155)".into()
            },
        ));
        Summary {
            chain: self.chain.id.clone(),
            network: self.network.clone(),
            from: from.to_checksum(None),
            transfers,
            fee: format!("at most {}", self.wei(fee)),
            details,
        }
    }

    fn decode_unsigned(&self, unsigned: &[u8]) -> Result<Decoded> {
        let bad = |e: alloy_rlp::Error| AdapterError::MalformedTransaction(format!("RLP: {e}"));
        let decoded = match unsigned.first() {
            Some(0x02) => {
                let mut buf = &unsigned[1..];
                let tx = TxEip1559::rlp_decode(&mut buf).map_err(bad)?;
                if !buf.is_empty() {
                    return Err(AdapterError::MalformedTransaction(
                        "trailing bytes after the transaction".into(),
                    ));
                }
                Decoded::Eip1559(tx)
            }
            Some(b) if *b >= 0xc0 => {
                let mut buf = unsigned;
                let header = Header::decode(&mut buf).map_err(bad)?;
                if !header.list || header.payload_length != buf.len() {
                    return Err(AdapterError::MalformedTransaction(
                        "not one RLP list".into(),
                    ));
                }
                let mut tx = TxLegacy::rlp_decode_fields(&mut buf).map_err(bad)?;
                let chain_id = u64::decode(&mut buf).map_err(|_| {
                    AdapterError::MalformedTransaction(
                        "legacy transaction without an EIP-155 chain id (replayable on every chain)"
                            .into(),
                    )
                })?;
                let zero1 = u8::decode(&mut buf).map_err(bad)?;
                let zero2 = u8::decode(&mut buf).map_err(bad)?;
                if zero1 != 0 || zero2 != 0 || !buf.is_empty() {
                    return Err(AdapterError::MalformedTransaction(
                        "not an EIP-155 signing preimage".into(),
                    ));
                }
                tx.chain_id = Some(chain_id);
                Decoded::Legacy(tx)
            }
            Some(t) => {
                return Err(AdapterError::MalformedTransaction(format!(
                    "transaction type {t:#04x} is not supported (EIP-1559 and legacy EIP-155 are)"
                )));
            }
            None => return Err(AdapterError::MalformedTransaction("empty".into())),
        };
        let id = decoded.chain_id();
        if id != self.chain_id {
            return Err(AdapterError::MalformedTransaction(format!(
                "transaction is for chain id {id}, not {} {} ({})",
                self.chain.name, self.network, self.chain_id
            )));
        }
        Ok(decoded)
    }
}

enum Decoded {
    Eip1559(TxEip1559),
    Legacy(TxLegacy),
}

impl Decoded {
    fn chain_id(&self) -> u64 {
        match self {
            Decoded::Eip1559(t) => t.chain_id,
            Decoded::Legacy(t) => t.chain_id.unwrap_or(0),
        }
    }
    fn tx(&self) -> &dyn alloy_consensus::Transaction {
        match self {
            Decoded::Eip1559(t) => t,
            Decoded::Legacy(t) => t,
        }
    }
}

/// `transfer(to, amount)` calldata.
pub fn erc20_transfer(to: Address, amount: U256) -> Bytes {
    let mut v = Vec::with_capacity(68);
    v.extend_from_slice(&TRANSFER_SELECTOR);
    v.extend_from_slice(&[0u8; 12]);
    v.extend_from_slice(to.as_slice());
    v.extend_from_slice(&amount.to_be_bytes::<32>());
    v.into()
}

fn decode_erc20_transfer(input: &[u8]) -> Option<(Address, U256)> {
    if input.len() != 68 || input[..4] != TRANSFER_SELECTOR || input[4..16] != [0u8; 12] {
        return None;
    }
    let to = Address::from_slice(&input[16..36]);
    let amount = U256::from_be_slice(&input[36..68]);
    Some((to, amount))
}

/// Parses an address; mixed-case addresses must carry a valid EIP-55 checksum.
pub fn parse_address(s: &str) -> Result<Address> {
    let bad = |reason: &str| AdapterError::BadAddress {
        address: s.to_string(),
        reason: reason.to_string(),
    };
    let body = s
        .strip_prefix("0x")
        .ok_or_else(|| bad("an EVM address starts with 0x"))?;
    if body.len() != 40 || !body.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad("an EVM address is 40 hex digits"));
    }
    let a: Address = s.parse().map_err(|_| bad("not hex"))?;
    let mixed = body.chars().any(|c| c.is_ascii_uppercase())
        && body.chars().any(|c| c.is_ascii_lowercase());
    if mixed && a.to_checksum(None) != s {
        return Err(bad("EIP-55 checksum mismatch (a mistyped address?)"));
    }
    Ok(a)
}

fn parse_wei(s: &str, name: &str) -> Result<u128> {
    s.parse().map_err(|_| {
        AdapterError::InvalidIntent(format!("`{name}` `{s}` is not a whole number of wei"))
    })
}

impl ChainAdapter for Evm {
    fn chain(&self) -> &str {
        &self.chain.id
    }

    fn network(&self) -> &str {
        &self.network
    }

    fn scheme(&self) -> Scheme {
        Scheme::EcdsaSecp256k1
    }

    fn rpc_dialect(&self) -> RpcDialect {
        RpcDialect::Ethereum {
            chain_id: self.chain_id,
        }
    }

    fn address(&self, public_key: &[u8]) -> Result<String> {
        Ok(Self::eth_address(public_key)?.to_checksum(None))
    }

    fn build(&self, public_key: &[u8], path: &[u32], intent: &Intent) -> Result<Unsigned> {
        refuse_fields(
            &self.chain.id,
            intent,
            &[
                "to",
                "amount",
                "token",
                "nonce",
                "gas_limit",
                "max_fee_per_gas",
                "max_priority_fee_per_gas",
                "gas_price",
            ],
        )?;
        Self::verifying_key(public_key)?;
        let to = parse_address(required(&intent.to, "to")?)?;
        let amount = U256::from(parse_amount(intent)?);
        let nonce = intent
            .nonce
            .ok_or_else(|| AdapterError::InvalidIntent("`nonce` is required".into()))?;
        let (kind, value, input, default_gas) = match &intent.token {
            Some(token) => (
                TxKind::Call(parse_address(token)?),
                U256::ZERO,
                erc20_transfer(to, amount),
                TOKEN_GAS,
            ),
            None => (TxKind::Call(to), amount, Bytes::new(), NATIVE_GAS),
        };
        let gas_limit = intent.gas_limit.unwrap_or(default_gas);
        if gas_limit < NATIVE_GAS {
            return Err(AdapterError::InvalidIntent(format!(
                "gas limit {gas_limit} is below the 21000 every transaction costs"
            )));
        }
        let mut unsigned = Vec::new();
        match (
            &intent.max_fee_per_gas,
            &intent.max_priority_fee_per_gas,
            &intent.gas_price,
        ) {
            (Some(max_fee), Some(tip), None) => {
                let max_fee_per_gas = parse_wei(max_fee, "max_fee_per_gas")?;
                let max_priority_fee_per_gas = parse_wei(tip, "max_priority_fee_per_gas")?;
                if max_priority_fee_per_gas > max_fee_per_gas {
                    return Err(AdapterError::InvalidIntent(
                        "max_priority_fee_per_gas exceeds max_fee_per_gas".into(),
                    ));
                }
                let tx = TxEip1559 {
                    chain_id: self.chain_id,
                    nonce,
                    gas_limit,
                    max_fee_per_gas,
                    max_priority_fee_per_gas,
                    to: kind,
                    value,
                    access_list: Default::default(),
                    input,
                };
                tx.encode_for_signing(&mut unsigned);
            }
            (None, None, Some(price)) => {
                let tx = TxLegacy {
                    chain_id: Some(self.chain_id),
                    nonce,
                    gas_price: parse_wei(price, "gas_price")?,
                    gas_limit,
                    to: kind,
                    value,
                    input,
                };
                tx.encode_for_signing(&mut unsigned);
            }
            _ => {
                return Err(AdapterError::InvalidIntent(
                    "give max_fee_per_gas and max_priority_fee_per_gas (EIP-1559), or gas_price \
                     alone (legacy)"
                        .into(),
                ));
            }
        }
        self.inspect(public_key, path, &unsigned)
    }

    fn inspect(&self, public_key: &[u8], path: &[u32], unsigned: &[u8]) -> Result<Unsigned> {
        let from = Self::eth_address(public_key)?;
        let decoded = self.decode_unsigned(unsigned)?;
        Ok(Unsigned {
            tx: unsigned.to_vec(),
            payloads: vec![Payload::ecdsa(
                HashFunction::Keccak256,
                unsigned.to_vec(),
                path,
            )],
            summary: self.summarize(from, decoded.tx()),
        })
    }

    fn assemble(&self, public_key: &[u8], unsigned: &[u8], sigs: &[Vec<u8>]) -> Result<Signed> {
        let vk = Self::verifying_key(public_key)?;
        let decoded = self.decode_unsigned(unsigned)?;
        check_count(1, sigs.len())?;
        let hash = keccak256(unsigned);
        let sig = eth_signature(&signature64(0, &sigs[0])?, &hash, &vk)?;
        let envelope = match decoded {
            Decoded::Eip1559(tx) => TxEnvelope::from(tx.into_signed(sig)),
            Decoded::Legacy(tx) => TxEnvelope::from(tx.into_signed(sig)),
        };
        let raw = envelope.encoded_2718();
        let summary = self.decode(&raw)?;
        Ok(Signed {
            txid: envelope.tx_hash().to_string(),
            raw,
            psbt: None,
            summary,
        })
    }

    fn decode(&self, raw: &[u8]) -> Result<Summary> {
        let mut buf = raw;
        let env = TxEnvelope::decode_2718(&mut buf)
            .map_err(|e| AdapterError::MalformedTransaction(format!("EIP-2718: {e}")))?;
        if !buf.is_empty() {
            return Err(AdapterError::MalformedTransaction(
                "trailing bytes after the transaction".into(),
            ));
        }
        let from = env
            .recover_signer()
            .map_err(|e| AdapterError::MalformedTransaction(format!("signature: {e}")))?;
        let id = env.chain_id();
        if id != Some(self.chain_id) {
            return Err(AdapterError::MalformedTransaction(format!(
                "transaction is for chain id {id:?}, not {} {} ({})",
                self.chain.name, self.network, self.chain_id
            )));
        }
        let mut s = self.summarize(from, &env);
        s.details.push(("hash".into(), env.tx_hash().to_string()));
        Ok(s)
    }
}

/// An Ethereum signature from a threshold signer's r‖s: low s (EIP-2), y-parity by recovery.
fn eth_signature(compact: &[u8; 64], hash: &B256, vk: &VerifyingKey) -> Result<Signature> {
    let bad = |reason: &str| AdapterError::BadSignature {
        index: 0,
        reason: reason.to_string(),
    };
    let sig = k256::ecdsa::Signature::from_slice(compact).map_err(|_| bad("not r‖s"))?;
    let sig = sig.normalize_s().unwrap_or(sig);
    for parity in [false, true] {
        let rid = RecoveryId::new(parity, false);
        if VerifyingKey::recover_from_prehash(hash.as_slice(), &sig, rid)
            .ok()
            .as_ref()
            == Some(vk)
        {
            return Ok(Signature::from_signature_and_parity(sig, parity));
        }
    }
    Err(bad("does not verify under the sending key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;
    use crate::test_support::{build_err, secp256k1_key, sign_prehash as sign};

    fn adapter(network: &str) -> std::sync::Arc<dyn ChainAdapter> {
        Registry::builtin()
            .adapter("ethereum", Some(network))
            .unwrap()
    }

    /// The EIP-155 example: nonce 9, 20 gwei, 21000 gas, 1 ether to 0x3535…, chain 1, key
    /// 0x4646…; k256 signs deterministically (RFC 6979), so the signed bytes are the published
    /// ones.
    #[test]
    fn eip155_known_answer() {
        let (sk, pk) = secp256k1_key(0x46);
        let eth = adapter("mainnet");
        let intent = Intent {
            to: Some("0x3535353535353535353535353535353535353535".into()),
            amount: Some("1000000000000000000".into()),
            nonce: Some(9),
            gas_price: Some("20000000000".into()),
            ..Default::default()
        };
        let u = eth.build(&pk, &[], &intent).unwrap();
        assert_eq!(
            hex::encode(&u.tx),
            "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080"
        );
        assert_eq!(
            hex::encode(u.payloads[0].signed_bytes()),
            "daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53"
        );
        // The enclaves get the signing encoding itself and hash it (presigned signing).
        assert_eq!(u.payloads[0].data, u.tx);
        assert_eq!(u.payloads[0].hash, Some(HashFunction::Keccak256));
        let signed = eth
            .assemble(&pk, &u.tx, &[sign(&sk, &u.payloads[0].signed_bytes())])
            .unwrap();
        assert_eq!(
            hex::encode(&signed.raw),
            "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
        );
        assert_eq!(
            signed.summary.from,
            "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F"
        );
        assert_eq!(signed.summary.transfers[0].display, "1 ETH");
    }

    #[test]
    fn eip1559_and_erc20_round_trip_with_high_s_signatures() {
        let (sk, pk) = secp256k1_key(0x11);
        let eth = adapter("anvil");
        for token in [
            None,
            Some("0x5FbDB2315678afecb367f032d93F642f64180aa3".to_string()),
        ] {
            let intent = Intent {
                to: Some("0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into()),
                amount: Some("1234".into()),
                token: token.clone(),
                nonce: Some(3),
                max_fee_per_gas: Some("30000000000".into()),
                max_priority_fee_per_gas: Some("1000000000".into()),
                ..Default::default()
            };
            let u = eth.build(&pk, &[0, 1], &intent).unwrap();
            assert_eq!(u.tx[0], 0x02);
            assert_eq!(u.payloads[0].path, vec![0, 1]);
            // A threshold signer may return the high-s twin: still assembles to a low-s tx.
            let low = k256::ecdsa::Signature::from_slice(&sign(&sk, &u.payloads[0].signed_bytes()))
                .unwrap();
            let (r, s) = low.split_scalars();
            let high = k256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
            let signed = eth
                .assemble(&pk, &u.tx, &[high.to_bytes().to_vec()])
                .unwrap();
            let summary = eth.decode(&signed.raw).unwrap();
            assert_eq!(summary.from, eth.address(&pk).unwrap());
            let t = summary.transfers.last().unwrap();
            assert_eq!(t.amount, "1234");
            assert_eq!(t.to, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
            if let Some(token) = &token {
                assert_eq!(&t.asset, token);
            }
            // Another key's signature is refused.
            let (other, _) = secp256k1_key(0x12);
            assert!(matches!(
                eth.assemble(&pk, &u.tx, &[sign(&other, &u.payloads[0].signed_bytes())]),
                Err(AdapterError::BadSignature { .. })
            ));
        }
    }

    #[test]
    fn bad_intents_and_addresses_get_clear_errors() {
        let (_, pk) = secp256k1_key(0x11);
        let eth = adapter("mainnet");
        let ok = Intent {
            to: Some("0x70997970c51812dc3a010c7d01b50e0d17dc79c8".into()),
            amount: Some("1".into()),
            nonce: Some(0),
            gas_price: Some("1".into()),
            ..Default::default()
        };
        assert!(eth.build(&pk, &[], &ok).is_ok());
        for (bad, want) in [
            ("0x70997970C51812dc3A010C7d01b50e0d17dc79c8", "checksum"),
            ("70997970c51812dc3a010c7d01b50e0d17dc79c8", "0x"),
            ("0x1234", "40 hex"),
            ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "0x"),
        ] {
            let i = Intent {
                to: Some(bad.into()),
                ..ok.clone()
            };
            let e = eth.build(&pk, &[], &i).unwrap_err();
            assert!(matches!(e, AdapterError::BadAddress { .. }), "{e}");
            assert!(e.to_string().contains(want), "{e}");
        }
        let e = build_err(&*eth, &pk, &[], &ok, |i| i.nonce = None);
        assert!(e.to_string().contains("nonce"), "{e}");
        let e = build_err(&*eth, &pk, &[], &ok, |i| i.fee_rate = Some(3));
        assert!(e.to_string().contains("fee_rate"), "{e}");
        let e = build_err(&*eth, &pk, &[], &ok, |i| {
            i.max_fee_per_gas = Some("5".into())
        });
        assert!(e.to_string().contains("gas_price alone"), "{e}");
        assert!(matches!(
            eth.build(&[5u8; 33], &[], &ok),
            Err(AdapterError::BadPublicKey(_))
        ));
        // A transaction for another chain is refused.
        let u = adapter("sepolia").build(&pk, &[], &ok).unwrap();
        let e = eth.inspect(&pk, &[], &u.tx).unwrap_err();
        assert!(e.to_string().contains("chain id 11155111"), "{e}");
        // Garbage does not decode (and does not panic).
        for junk in [
            &b""[..],
            &[0x02][..],
            &[0x01, 0xc0][..],
            &[0xc1, 0x80][..],
            &[0xff; 40][..],
        ] {
            assert!(eth.inspect(&pk, &[], junk).is_err());
            assert!(eth.decode(junk).is_err());
        }
    }
}
