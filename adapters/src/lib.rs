//! Chain adapters: everything Cohort knows about blockchains, and nothing about MPC.
//!
//! An adapter turns an [`Intent`] ("send 0.1 BTC to …") into an unsigned transaction and the
//! [`Payload`]s the cluster must sign (a 32-byte digest for ECDSA, the message itself for
//! EdDSA), assembles the signed transaction from the cluster's 64-byte signatures, derives
//! addresses from public keys, and decodes transactions into a [`Summary`] — what an approver
//! reads before approving.
//!
//! Adapters are pure functions of their inputs: no I/O, no keys, no MPC. Values that live on a
//! chain (nonce, gas prices, recent blockhash, UTXOs) arrive in the intent; the coordinator
//! fills them from a JSON-RPC endpoint when one is configured.
//!
//! Every adapter checks its own output the way an approver would: [`ChainAdapter::build`] is
//! [`ChainAdapter::inspect`] of the bytes it produced, so the payloads and summary a client is
//! shown are exactly the ones recomputed from the unsigned transaction.
//!
//! ```
//! use adapters::{Registry, Intent};
//! let registry = Registry::builtin();
//! let eth = registry.adapter("ethereum", None).unwrap();
//! // A public key (33-byte compressed secp256k1) -> its address.
//! let pk = hex::decode("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798").unwrap();
//! assert_eq!(eth.address(&pk).unwrap(), "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
//! ```

pub mod bitcoin;
pub mod evm;
pub mod litecoin;
mod registry;
pub mod solana;
#[cfg(test)]
mod test_support;

use protocol::policy::{HashFunction, Scheme};
use serde::{Deserialize, Serialize};

pub use registry::{EvmChain, Registry};

/// Why an adapter refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// No adapter for this chain name.
    #[error("unknown chain `{chain}` (known: {known})")]
    UnknownChain {
        /// The name asked for.
        chain: String,
        /// The names there are.
        known: String,
    },
    /// The chain has no such network.
    #[error("unknown network `{network}` for {chain} (known: {known})")]
    UnknownNetwork {
        /// The chain.
        chain: String,
        /// The network asked for.
        network: String,
        /// The networks there are.
        known: String,
    },
    /// An address that does not parse, or belongs to another network.
    #[error("bad address `{address}`: {reason}")]
    BadAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The intent is incomplete or inconsistent.
    #[error("invalid intent: {0}")]
    InvalidIntent(String),
    /// The inputs do not cover the amount and the fee.
    #[error("insufficient funds: need {need}, have {have}")]
    InsufficientFunds {
        /// Amount plus fee, with its unit.
        need: String,
        /// What the inputs hold, with its unit.
        have: String,
    },
    /// The public key is not one this chain's scheme uses.
    #[error("bad public key: {0}")]
    BadPublicKey(String),
    /// Transaction bytes that do not decode, or that this key cannot sign.
    #[error("malformed transaction: {0}")]
    MalformedTransaction(String),
    /// A signature that is not 64 bytes or does not verify.
    #[error("bad signature for payload {index}: {reason}")]
    BadSignature {
        /// Which payload.
        index: usize,
        /// Why.
        reason: String,
    },
    /// Not one signature per payload.
    #[error("expected {expected} signature(s), got {got}")]
    SignatureCount {
        /// Payloads.
        expected: usize,
        /// Signatures given.
        got: usize,
    },
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, AdapterError>;

/// What to do, in a chain's own terms. Amounts are integers in the chain's base unit (satoshi,
/// wei, lamport, or the token's smallest unit) written as decimal strings, so nothing is lost
/// to floating point. Fields that do not apply to a chain are refused by its adapter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// Recipient address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Amount in base units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// Token to send instead of the native coin: an ERC-20 contract or an SPL mint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// SPL: the mint's decimals (checked on chain by `transfer_checked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u8>,
    /// Bitcoin: the outputs to spend (all held by the sending key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utxos: Option<Vec<Utxo>>,
    /// Bitcoin: fee rate in sat/vB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_rate: Option<u64>,
    /// Bitcoin: an unsigned PSBT (hex) to sign instead of building one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psbt: Option<String>,
    /// EVM: account nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<u64>,
    /// EVM: gas limit (default 21 000 for a native transfer, 100 000 for ERC-20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gas_limit: Option<u64>,
    /// EVM (EIP-1559): max fee per gas, wei.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fee_per_gas: Option<String>,
    /// EVM (EIP-1559): max priority fee per gas, wei.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_priority_fee_per_gas: Option<String>,
    /// EVM (legacy, EIP-155): gas price, wei. Given without the EIP-1559 fees, it selects a
    /// legacy transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gas_price: Option<String>,
    /// Solana: a recent blockhash (base58).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_blockhash: Option<String>,
}

/// A Bitcoin output to spend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utxo {
    /// Its transaction id (hex, as explorers show it).
    pub txid: String,
    /// Its output index.
    pub vout: u32,
    /// Its value in satoshi.
    pub amount: u64,
}

/// One thing the cluster must sign.
///
/// An ECDSA payload is the preimage with the hash function the chain applies to it (BIP143
/// signing data and double SHA-256, an EVM transaction's signing encoding and Keccak-256): the
/// enclaves hash it themselves, which lets them sign it from a presignature (a presignature
/// never signs a bare digest: RUSTSEC-2025-0127).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// The signature scheme.
    pub scheme: Scheme,
    /// The preimage (ECDSA) or the message itself (EdDSA).
    #[serde(with = "hex_bytes")]
    pub data: Vec<u8>,
    /// ECDSA: the hash function the enclaves apply to `data` before signing (absent for
    /// EdDSA, whose signatures hash the message themselves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<HashFunction>,
    /// The derivation path of the signing key (non-hardened; empty for EdDSA).
    pub path: Vec<u32>,
}

impl Payload {
    /// An ECDSA payload: `preimage`, hashed with `hash`, signed under `path`.
    pub fn ecdsa(hash: HashFunction, preimage: Vec<u8>, path: &[u32]) -> Self {
        Self {
            scheme: Scheme::EcdsaSecp256k1,
            data: preimage,
            hash: Some(hash),
            path: path.to_vec(),
        }
    }

    /// An EdDSA payload: the message itself.
    pub fn eddsa(message: Vec<u8>) -> Self {
        Self {
            scheme: Scheme::EddsaEd25519,
            data: message,
            hash: None,
            path: vec![],
        }
    }

    /// What the signature is over: the digest (ECDSA) or the message (EdDSA).
    pub fn signed_bytes(&self) -> Vec<u8> {
        match self.hash {
            Some(h) => h.digest(&self.data).to_vec(),
            None => self.data.clone(),
        }
    }

    /// The payload of a signing request that signs it.
    pub fn to_request(&self) -> protocol::policy::Payload {
        match self.hash {
            Some(h) => protocol::policy::Payload::hashed(h, self.data.clone()),
            None => protocol::policy::Payload::raw(self.data.clone()),
        }
    }
}

/// An unsigned transaction, what must be signed to complete it, and what it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsigned {
    /// The unsigned transaction: a PSBT (Bitcoin), the EIP-2718 signing preimage (EVM), the
    /// serialized message (Solana).
    #[serde(with = "hex_bytes")]
    pub tx: Vec<u8>,
    /// One per signature needed, in order.
    pub payloads: Vec<Payload>,
    /// What the transaction does.
    pub summary: Summary,
}

/// A signed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// The bytes to broadcast.
    #[serde(with = "hex_bytes")]
    pub raw: Vec<u8>,
    /// Its id as the chain's explorers show it.
    pub txid: String,
    /// Bitcoin: the finalized PSBT.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_hex_bytes"
    )]
    pub psbt: Option<Vec<u8>>,
    /// What it does.
    pub summary: Summary,
}

/// One movement of value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Recipient address (or, for a script no address describes, `script:HEX`).
    pub to: String,
    /// Amount in base units.
    pub amount: String,
    /// `BTC`, `ETH`, `SOL`…, or the token's contract or mint address.
    pub asset: String,
    /// The amount in whole units where they are known (`0.5 BTC`).
    pub display: String,
    /// Bitcoin: this output returns change to the sender.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub change: bool,
}

/// What a transaction does, as an approver reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Chain id in the registry (`bitcoin`, `ethereum`, `solana`…).
    pub chain: String,
    /// Network (`mainnet`, `regtest`…).
    pub network: String,
    /// The sending address.
    pub from: String,
    /// Value moved.
    pub transfers: Vec<Transfer>,
    /// Fee, or the most it can cost, with its unit.
    pub fee: String,
    /// Everything else an approver should see (nonce, gas, blockhash, other instructions).
    pub details: Vec<(String, String)>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} ({}) from {}", self.chain, self.network, self.from)?;
        for t in &self.transfers {
            let change = if t.change { " (change)" } else { "" };
            writeln!(f, "  send {} to {}{change}", t.display, t.to)?;
        }
        writeln!(f, "  fee {}", self.fee)?;
        for (k, v) in &self.details {
            writeln!(f, "  {k}: {v}")?;
        }
        Ok(())
    }
}

/// How a chain's nodes speak JSON-RPC (what fetching nonces or blockhashes and broadcasting
/// need to know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcDialect {
    /// bitcoind's (`sendrawtransaction`), and that of its forks.
    Bitcoind,
    /// Ethereum's (`eth_*`), for a chain with this EIP-155 id.
    Ethereum {
        /// EIP-155 chain id.
        chain_id: u64,
    },
    /// Solana's (`getLatestBlockhash`, `sendTransaction`), on the cluster with this genesis
    /// hash (none for a local cluster).
    Solana {
        /// The cluster's genesis hash (base58), checked with `getGenesisHash`.
        genesis: Option<&'static str>,
    },
}

/// One chain (and network): everything Cohort needs to move value on it.
pub trait ChainAdapter: Send + Sync {
    /// The chain's id in the registry.
    fn chain(&self) -> &str;
    /// The network.
    fn network(&self) -> &str;
    /// The signature scheme its keys use.
    fn scheme(&self) -> Scheme;
    /// How its nodes speak JSON-RPC.
    fn rpc_dialect(&self) -> RpcDialect;
    /// Refuses derivation paths this chain's keys must not use (Bitcoin-family chains keep
    /// their keys apart by the first component). Every signing operation checks it too.
    fn check_path(&self, _path: &[u32]) -> Result<()> {
        Ok(())
    }
    /// The address of a public key (33-byte compressed secp256k1 or 32-byte Ed25519).
    fn address(&self, public_key: &[u8]) -> Result<String>;
    /// Builds the unsigned transaction for an intent, sent from `public_key` (the key at
    /// `path`).
    fn build(&self, public_key: &[u8], path: &[u32], intent: &Intent) -> Result<Unsigned>;
    /// Recomputes the payloads and summary of an unsigned transaction (what [`build`] returned,
    /// or a PSBT from elsewhere): what an approver runs instead of trusting the coordinator.
    ///
    /// [`build`]: ChainAdapter::build
    fn inspect(&self, public_key: &[u8], path: &[u32], unsigned: &[u8]) -> Result<Unsigned>;
    /// Assembles the signed transaction from one 64-byte signature per payload (r‖s for
    /// ECDSA, R‖s for EdDSA), checking each against the key.
    fn assemble(
        &self,
        public_key: &[u8],
        unsigned: &[u8],
        signatures: &[Vec<u8>],
    ) -> Result<Signed>;
    /// Decodes a signed transaction (as broadcast) for display.
    fn decode(&self, raw: &[u8]) -> Result<Summary>;
}

/// Formats a base-unit amount in whole units: `format_units(150_000_000, 8) == "1.5"`.
pub fn format_units(amount: u128, decimals: u8) -> String {
    let Some(scale) = 10u128.checked_pow(u32::from(decimals)) else {
        return format!("{amount}e-{decimals}");
    };
    let whole = amount / scale;
    let frac = amount % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = usize::from(decimals));
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

pub(crate) fn parse_amount(intent: &Intent) -> Result<u128> {
    let s = intent
        .amount
        .as_deref()
        .ok_or_else(|| AdapterError::InvalidIntent("`amount` is required".into()))?;
    let v: u128 = s.parse().map_err(|_| {
        AdapterError::InvalidIntent(format!(
            "amount `{s}` is not a whole number of base units (satoshi, wei, lamports…)"
        ))
    })?;
    if v == 0 {
        return Err(AdapterError::InvalidIntent(
            "amount must be positive".into(),
        ));
    }
    Ok(v)
}

/// The intent's amount where the chain counts in 64 bits (satoshi, lamports).
pub(crate) fn parse_amount_u64(intent: &Intent) -> Result<u64> {
    u64::try_from(parse_amount(intent)?)
        .map_err(|_| AdapterError::InvalidIntent("amount exceeds 64 bits".into()))
}

pub(crate) fn required<'a>(field: &'a Option<String>, name: &str) -> Result<&'a str> {
    field
        .as_deref()
        .ok_or_else(|| AdapterError::InvalidIntent(format!("`{name}` is required")))
}

/// Refuses intent fields that do not apply to a chain.
pub(crate) fn refuse_fields(chain: &str, intent: &Intent, allowed: &[&str]) -> Result<()> {
    let v = serde_json::to_value(intent).map_err(|e| AdapterError::InvalidIntent(e.to_string()))?;
    if let Some(map) = v.as_object() {
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(AdapterError::InvalidIntent(format!(
                    "`{k}` does not apply to {chain}"
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn signature64(index: usize, s: &[u8]) -> Result<[u8; 64]> {
    s.try_into().map_err(|_| AdapterError::BadSignature {
        index,
        reason: format!("{} bytes, expected 64", s.len()),
    })
}

pub(crate) fn check_count(expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(AdapterError::SignatureCount { expected, got });
    }
    Ok(())
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

mod opt_hex_bytes {
    #[allow(clippy::ref_option)]
    pub fn serialize<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&hex::encode(v)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        let s = <Option<String> as serde::Deserialize>::deserialize(d)?;
        s.map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_format_exactly() {
        assert_eq!(format_units(150_000_000, 8), "1.5");
        assert_eq!(format_units(1, 18), "0.000000000000000001");
        assert_eq!(format_units(5_000_000_000, 9), "5");
        assert_eq!(format_units(0, 0), "0");
        assert_eq!(format_units(7, 200), "7e-200");
    }

    #[test]
    fn amounts_must_be_positive_integers() {
        let mut i = Intent::default();
        assert!(parse_amount(&i).is_err());
        for bad in ["1.5", "-1", "0", "", "1e9", "abc"] {
            i.amount = Some(bad.into());
            assert!(
                matches!(parse_amount(&i), Err(AdapterError::InvalidIntent(_))),
                "{bad}"
            );
        }
        i.amount = Some("340282366920938463463374607431768211455".into());
        assert_eq!(parse_amount(&i).unwrap(), u128::MAX);
    }

    #[test]
    fn intents_refuse_unknown_fields() {
        assert!(serde_json::from_str::<Intent>(r#"{"to":"x","colour":"red"}"#).is_err());
    }
}
