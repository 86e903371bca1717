//! What a holder can see of a legacy key on its own machine before any import: the key, the
//! legacy threshold its public shares show, the holders whose files were given, and the key's
//! addresses, to compare with the cluster's after the import (issue 19's migration check).
//! Nothing here contacts anyone.

use std::path::Path;

use adapters::Registry;
use reshare::generic_ec::Curve;
use reshare::generic_ec::curves::{Ed25519, Secp256k1};
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

/// A share file's bytes, wiped when dropped (the parsers' own copies are theirs to wipe).
fn read(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, ImportError> {
    std::fs::read(path)
        .map(zeroize::Zeroizing::new)
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
    let key = LegacyKey::of_shares(shares)?;
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

/// Holders' shares as read, on the curve their format uses.
#[derive(Debug)]
pub enum LegacyShares {
    /// secp256k1 (tss-lib ECDSA, cggmp21).
    Secp256k1(Vec<LegacyShare<Secp256k1>>),
    /// Ed25519 (tss-lib EdDSA, frost).
    Ed25519(Vec<LegacyShare<Ed25519>>),
}

impl LegacyShares {
    /// Reads the holders' files (`shares`; for frost, key packages with the group's public
    /// key package `public`), each by its format's reader.
    pub fn read(
        format: Format,
        shares: &[impl AsRef<Path>],
        public: Option<&Path>,
    ) -> Result<Self, ImportError> {
        let files = shares
            .iter()
            .map(|p| read(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let each = |parse: fn(&str) -> Result<LegacyShare<Secp256k1>, ImportError>| {
            files
                .iter()
                .map(|f| parse(text(f)?))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(match format {
            Format::TssLibEcdsa => Self::Secp256k1(each(tsslib::parse_ecdsa)?),
            Format::Cggmp21 => Self::Secp256k1(each(cggmp21::parse_cggmp21)?),
            Format::TssLibEddsa => Self::Ed25519(
                files
                    .iter()
                    .map(|f| tsslib::parse_eddsa(text(f)?))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Format::FrostEd25519 => {
                let public = read(public.ok_or(ImportError::Format(
                    "frost-ed25519 needs the group's public key package (--public)",
                ))?)?;
                Self::Ed25519(
                    files
                        .iter()
                        .map(|f| frost::parse_frost(f, &public))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            }
        })
    }
}

/// Reads the holders' files (see [`LegacyShares::read`]) and summarizes the key with its
/// addresses on `chains` (chain, network).
pub fn inspect(
    format: Format,
    shares: &[impl AsRef<Path>],
    public: Option<&Path>,
    chains: &[(String, Option<String>)],
) -> Result<LegacySummary, ImportError> {
    match LegacyShares::read(format, shares, public)? {
        LegacyShares::Secp256k1(s) => summarize(format, &s, chains),
        LegacyShares::Ed25519(s) => summarize(format, &s, chains),
    }
}
