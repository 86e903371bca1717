//! What a holder can see of a legacy key on its own machine before any import: the key, the
//! legacy threshold its public shares show, the holders whose files were given, and the key's
//! addresses, to compare with the cluster's after the import (issue 19's migration check).
//! Nothing here contacts anyone.

use std::path::Path;

use adapters::Registry;
use reshare::generic_ec::Curve;
use serde::Serialize;

use super::{ImportError, LegacyKey, LegacyShare, cggmp21, frost, tsslib};

/// A legacy share file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// tss-lib (GG18/GG20) ECDSA `LocalPartySaveData`, JSON.
    TssLibEcdsa,
    /// tss-lib EdDSA save data, JSON.
    TssLibEddsa,
    /// A cggmp21 key share (incomplete or complete), serde JSON.
    Cggmp21,
    /// A frost-ed25519 `KeyPackage` (with `--public`, the group's `PublicKeyPackage`).
    FrostEd25519,
}

impl Format {
    /// The scheme the cluster signs an imported key of this format with.
    pub fn scheme(self) -> protocol::policy::Scheme {
        match self {
            Self::TssLibEcdsa | Self::Cggmp21 => protocol::policy::Scheme::EcdsaSecp256k1,
            Self::TssLibEddsa | Self::FrostEd25519 => protocol::policy::Scheme::EddsaEd25519,
        }
    }
}

/// One address of the legacy key.
#[derive(Debug, Serialize)]
pub struct LegacyAddress {
    /// The chain.
    pub chain: String,
    /// The network.
    pub network: String,
    /// The key's address there.
    pub address: String,
}

/// The legacy key as the files given show it.
#[derive(Debug, Serialize)]
pub struct LegacySummary {
    /// The format read.
    pub format: Format,
    /// The scheme.
    pub scheme: protocol::policy::Scheme,
    /// The key, compressed (33 bytes secp256k1, 32 bytes Ed25519), hex.
    pub public_key: String,
    /// The chain code, hex, where the format carries one.
    pub chain_code: Option<String>,
    /// Holders of the key.
    pub holders: usize,
    /// Holders needed to deal (the legacy threshold).
    pub threshold: u16,
    /// The holders (positions in the key's holder list) whose files were given and checked.
    pub given: Vec<usize>,
    /// Whether the files given are enough to deal.
    pub enough: bool,
    /// The key's addresses on the chains asked for.
    pub addresses: Vec<LegacyAddress>,
}

fn read(path: &Path) -> Result<Vec<u8>, ImportError> {
    std::fs::read(path)
        .map_err(|e| ImportError::Malformed(format!("cannot read {}: {e}", path.display())))
}

fn text(bytes: &[u8]) -> Result<&str, ImportError> {
    std::str::from_utf8(bytes).map_err(|_| ImportError::Malformed("not UTF-8 text".into()))
}

fn summarize<E: Curve>(
    format: Format,
    shares: &[LegacyShare<E>],
    chains: &[(String, Option<String>)],
) -> Result<LegacySummary, ImportError> {
    let first = shares.first().ok_or(ImportError::NoShares)?;
    let key = LegacyKey::from_public(
        first.points.clone(),
        first.public_shares.clone(),
        first.public_key,
        first.chain_code,
    )?;
    for (holder, s) in shares.iter().enumerate() {
        key.check_share(holder, s)?;
    }
    let given: Vec<usize> = shares.iter().map(|s| s.index).collect();
    // Too few files is an answer (not enough to deal); the same holder twice is bad input.
    let enough = match key.dealers(&given) {
        Ok(_) => true,
        Err(ImportError::TooFewHolders { .. }) => false,
        Err(e) => return Err(e),
    };
    let public_key = key.public_key.to_bytes(true).as_ref().to_vec();
    let registry = Registry::builtin();
    let addresses = chains
        .iter()
        .map(|(chain, network)| {
            let adapter = registry
                .adapter(chain, network.as_deref())
                .map_err(|e| ImportError::Malformed(e.to_string()))?;
            if adapter.scheme() != format.scheme() {
                return Err(ImportError::Malformed(format!(
                    "{} signs with {}, the key is {}",
                    adapter.chain(),
                    adapter.scheme(),
                    format.scheme()
                )));
            }
            Ok(LegacyAddress {
                chain: adapter.chain().to_string(),
                network: adapter.network().to_string(),
                address: adapter
                    .address(&public_key)
                    .map_err(|e| ImportError::Malformed(e.to_string()))?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LegacySummary {
        format,
        scheme: format.scheme(),
        public_key: hex::encode(&public_key),
        chain_code: key.chain_code.map(hex::encode),
        holders: key.points.len(),
        threshold: key.threshold,
        given,
        enough,
        addresses,
    })
}

/// Reads the holders' files (`shares`; for frost, key packages with the group's public key
/// package `public`) and summarizes the key with its addresses on `chains` (chain, network).
pub fn inspect(
    format: Format,
    shares: &[impl AsRef<Path>],
    public: Option<&Path>,
    chains: &[(String, Option<String>)],
) -> Result<LegacySummary, ImportError> {
    let files = shares
        .iter()
        .map(|p| read(p.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    match format {
        Format::TssLibEcdsa => {
            let s = files
                .iter()
                .map(|f| tsslib::parse_ecdsa(text(f)?))
                .collect::<Result<Vec<_>, _>>()?;
            summarize(format, &s, chains)
        }
        Format::TssLibEddsa => {
            let s = files
                .iter()
                .map(|f| tsslib::parse_eddsa(text(f)?))
                .collect::<Result<Vec<_>, _>>()?;
            summarize(format, &s, chains)
        }
        Format::Cggmp21 => {
            let s = files
                .iter()
                .map(|f| cggmp21::parse_cggmp21(text(f)?))
                .collect::<Result<Vec<_>, _>>()?;
            summarize(format, &s, chains)
        }
        Format::FrostEd25519 => {
            let public = read(public.ok_or(ImportError::Format(
                "frost-ed25519 needs the group's public key package (--public)",
            ))?)?;
            let s = files
                .iter()
                .map(|f| frost::parse_frost(f, &public))
                .collect::<Result<Vec<_>, _>>()?;
            summarize(format, &s, chains)
        }
    }
}
