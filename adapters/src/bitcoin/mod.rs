//! Bitcoin (and Bitcoin-family chains): P2WPKH spends with BIP143 signature hashes.
//!
//! The unsigned transaction is a PSBT (BIP174) whose inputs carry their `witness_utxo`, so
//! anyone can recompute the BIP143 digests — one payload per input — and the fee. An intent
//! either lists UTXOs held by the sending key (the adapter builds the PSBT: coin selection in
//! the order given, fee from a sat/vB rate, change back to the sender) or carries an unsigned
//! PSBT from a wallet; either way [`Bitcoin::assemble`] returns the finalized PSBT and the
//! network transaction.
//!
//! Addresses are handled per [`Family`] (bech32 prefixes, base58 version bytes), so another
//! chain of the family is one more table: see `docs/adding-a-chain.md`.

mod adapter;
mod address;
mod build;
mod inspect;
mod psbt;
mod sighash;
mod summary;
#[cfg(test)]
mod tests;

use bitcoin::secp256k1;
use bitcoin::{CompressedPublicKey, ScriptBuf};

use crate::{AdapterError, Result, format_units};

pub use psbt::spent_outputs;

/// Highest fee rate an intent may ask for, sat/vB (a typo guard).
pub const MAX_FEE_RATE: u64 = 5_000;

/// One network's address parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    /// Network name (`mainnet`, `testnet`…).
    pub name: &'static str,
    /// Bech32 human-readable part of segwit addresses.
    pub hrp: &'static str,
    /// Base58 version byte of P2PKH addresses.
    pub p2pkh: u8,
    /// Base58 version byte of P2SH addresses.
    pub p2sh: u8,
    /// The first component every signing path must have (SLIP-44 coin type on mainnets, 1 on
    /// test networks). BIP143 digests commit to no chain or network, so a key used at the same
    /// path on two Bitcoin-family chains would sign transactions valid on both; this keeps
    /// their keys apart.
    pub coin: u32,
}

/// A Bitcoin-family chain: its id, coin, and networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// Registry id.
    pub id: &'static str,
    /// Coin symbol.
    pub symbol: &'static str,
    /// Networks, the first being the default.
    pub networks: &'static [Net],
}

/// Bitcoin.
pub const BITCOIN: Family = Family {
    id: "bitcoin",
    symbol: "BTC",
    networks: &[
        Net {
            name: "mainnet",
            hrp: "bc",
            p2pkh: 0x00,
            p2sh: 0x05,
            coin: 0,
        },
        Net {
            name: "testnet",
            hrp: "tb",
            p2pkh: 0x6f,
            p2sh: 0xc4,
            coin: 1,
        },
        Net {
            name: "signet",
            hrp: "tb",
            p2pkh: 0x6f,
            p2sh: 0xc4,
            coin: 1,
        },
        Net {
            name: "regtest",
            hrp: "bcrt",
            p2pkh: 0x6f,
            p2sh: 0xc4,
            coin: 1,
        },
    ],
};

/// A Bitcoin-family chain on one network.
#[derive(Debug, Clone)]
pub struct Bitcoin {
    family: Family,
    net: Net,
    /// Whether the key's own (master) key, the empty path, may sign here: only for an
    /// imported key whose approved import names this network as the one its legacy funds are
    /// on (issue 19).
    master_key: bool,
}

impl Bitcoin {
    /// Bitcoin on `mainnet`, `testnet`, `signet` or `regtest`.
    pub fn new(network: &str) -> Result<Self> {
        Self::of(BITCOIN, network)
    }

    /// A chain of the family on one of its networks.
    pub fn of(family: Family, network: &str) -> Result<Self> {
        let net = family
            .networks
            .iter()
            .find(|n| n.name == network)
            .copied()
            .ok_or_else(|| AdapterError::UnknownNetwork {
                chain: family.id.into(),
                network: network.into(),
                known: family
                    .networks
                    .iter()
                    .map(|n| n.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok(Self {
            family,
            net,
            master_key: false,
        })
    }

    /// The same network, where the key's own (master) key, the empty path, may sign too: for
    /// an imported key whose legacy funds are at its legacy address on this network, and on
    /// no other (every other Bitcoin-family network still signs only under its own first path
    /// component, so that no signature is valid on two of them).
    pub fn with_master_key(mut self) -> Self {
        self.master_key = true;
        self
    }

    fn check_coin(&self, path: &[u32]) -> Result<()> {
        if self.master_key && path.is_empty() {
            return Ok(());
        }
        if path.first() != Some(&self.net.coin) {
            return Err(AdapterError::InvalidIntent(format!(
                "{} {} keys are used under m/{}/…: the first path component keeps the keys of \
                 Bitcoin-family chains and networks apart (their signatures commit to no chain)",
                self.family.id, self.net.name, self.net.coin
            )));
        }
        Ok(())
    }

    fn key(public_key: &[u8]) -> Result<CompressedPublicKey> {
        if public_key.len() != 33 {
            return Err(AdapterError::BadPublicKey(format!(
                "{} bytes; expected a 33-byte compressed secp256k1 key",
                public_key.len()
            )));
        }
        let pk = secp256k1::PublicKey::from_slice(public_key)
            .map_err(|_| AdapterError::BadPublicKey("not a secp256k1 point".into()))?;
        Ok(CompressedPublicKey(pk))
    }

    /// The P2WPKH output script of a key.
    fn own_script(pk: &CompressedPublicKey) -> ScriptBuf {
        ScriptBuf::new_p2wpkh(&pk.wpubkey_hash())
    }

    /// An amount in the chain's coin (`0.5 BTC`).
    fn coins(&self, sat: u64) -> String {
        format!(
            "{} {}",
            format_units(u128::from(sat), 8),
            self.family.symbol
        )
    }
}
