//! Transaction bodies: preparing, assembling, and addresses.

use serde::{Deserialize, Serialize};

use super::{Hex, PayloadJson};

/// `POST /v1/transactions`: an intent to prepare for signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareRequest {
    /// The sending key.
    pub key_id: String,
    /// Chain id in the registry (`bitcoin`, `ethereum`, `solana`…).
    pub chain: String,
    /// Network (default `mainnet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Derivation path of the sending key, `m/0/0` (ECDSA; default `m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What to do; values left out (EVM nonce and fees, Solana blockhash) are fetched from the
    /// chain's JSON-RPC endpoint when the coordinator has one.
    pub intent: adapters::Intent,
}

/// Who sends, as a request names it: key, chain, network and derivation path.
pub type SenderRef<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>);

fn sender_ref<'a>(
    key_id: &'a str,
    chain: &'a str,
    network: &'a Option<String>,
    path: &'a Option<String>,
) -> SenderRef<'a> {
    (key_id, chain, network.as_deref(), path.as_deref())
}

/// A prepared transaction: the unsigned bytes, what to sign, and what it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreparedTransaction {
    /// Chain.
    pub chain: String,
    /// Network.
    pub network: String,
    /// The sending key.
    pub key_id: String,
    /// Its derivation path.
    pub path: String,
    /// The sending address.
    pub from: String,
    /// The (derived) public key that signs.
    pub public_key: Hex,
    /// The unsigned transaction (PSBT, EIP-2718 signing preimage, or Solana message).
    pub unsigned_tx: Hex,
    /// What the cluster must sign, in order: the `payloads` of the signing request (ECDSA: the
    /// preimage with its hash, so that presignatures may sign them; EdDSA: the message).
    pub payloads: Vec<PayloadJson>,
    /// What the transaction does.
    pub summary: adapters::Summary,
    /// The intent the transaction was built from: the request's, plus the fields in `filled`.
    pub intent: adapters::Intent,
    /// Intent fields the coordinator fetched from the chain.
    pub filled: Vec<String>,
}

/// `POST /v1/transactions/assemble`: signatures to put into a prepared transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssembleRequest {
    /// The sending key.
    pub key_id: String,
    /// Chain.
    pub chain: String,
    /// Network (default `mainnet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Derivation path (default `m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The unsigned transaction, as prepared.
    pub unsigned_tx: Hex,
    /// One 64-byte signature per payload, in order.
    pub signatures: Vec<Hex>,
}

/// A signed transaction, ready to broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssembledTransaction {
    /// Chain.
    pub chain: String,
    /// Network.
    pub network: String,
    /// Its id as explorers show it.
    pub txid: String,
    /// The bytes to broadcast.
    pub raw_tx: Hex,
    /// Bitcoin: the finalized PSBT.
    pub psbt: Option<Hex>,
    /// What it does, decoded from the signed bytes.
    pub summary: adapters::Summary,
}

/// `GET /v1/keys/{key_id}/address?chain=…&network=…&path=…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressInfo {
    /// The key.
    pub key_id: String,
    /// Chain.
    pub chain: String,
    /// Network.
    pub network: String,
    /// Derivation path.
    pub path: String,
    /// The address.
    pub address: String,
    /// The (derived) public key.
    pub public_key: Hex,
}

impl PrepareRequest {
    /// The sending key, chain, network and path.
    pub fn sender(&self) -> SenderRef<'_> {
        sender_ref(&self.key_id, &self.chain, &self.network, &self.path)
    }
}

impl AssembleRequest {
    /// The sending key, chain, network and path.
    pub fn sender(&self) -> SenderRef<'_> {
        sender_ref(&self.key_id, &self.chain, &self.network, &self.path)
    }
}
