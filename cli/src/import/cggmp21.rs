//! cggmp21 key shares from another cggmp21 deployment: the serde JSON of an incomplete key share
//! (`IncompleteKeyShare`, the key-share crate's `CoreKeyShare`) or of a complete `KeyShare`
//! (`{"core": …, "aux": …}`). The auxiliary info is not read: the cluster's own completes the
//! imported key. Only threshold (VSS) shares can be redistributed; an additive n-of-n share is
//! refused.

use key_share::{DirtyCoreKeyShare, Validate as _};
use reshare::generic_ec::curves::Secp256k1;
use serde::Deserialize;

use super::{ImportError, LegacyShare};

/// A complete key share: its core alone is read.
#[derive(Deserialize)]
struct Complete {
    core: DirtyCoreKeyShare<Secp256k1>,
}

/// Just enough of a share to name its curve before the full parse.
#[derive(Deserialize)]
struct Curve {
    curve: Option<String>,
    core: Option<Box<Curve>>,
}

/// One holder's cggmp21 share of a secp256k1 key.
pub fn parse_cggmp21(text: &str) -> Result<LegacyShare<Secp256k1>, ImportError> {
    let malformed = |e: serde_json::Error| {
        ImportError::Malformed(format!(
            "not a cggmp21 key share: {}",
            e.to_string().chars().take(160).collect::<String>()
        ))
    };
    let named: Curve = serde_json::from_str(text).map_err(malformed)?;
    let curve = named.curve.or(named.core.and_then(|c| c.curve));
    if let Some(c) = curve.filter(|c| c != "secp256k1") {
        return Err(ImportError::Curve {
            want: "secp256k1",
            got: c.chars().take(32).collect(),
        });
    }
    let dirty = match serde_json::from_str::<Complete>(text) {
        Ok(c) => c.core,
        Err(_) => serde_json::from_str::<DirtyCoreKeyShare<Secp256k1>>(text).map_err(malformed)?,
    };
    let core = dirty.validate().map_err(|e| {
        ImportError::Malformed(format!("an invalid cggmp21 key share: {}", e.error()))
    })?;
    let vss = core.key_info.vss_setup.as_ref().ok_or(ImportError::Format(
        "an additive (n-of-n) cggmp21 share: only threshold shares can be redistributed",
    ))?;
    Ok(LegacyShare {
        index: usize::from(core.i),
        share: core.x.clone().into_inner(),
        points: vss.I.iter().map(|p| **p).collect(),
        public_shares: core.key_info.public_shares.iter().map(|p| **p).collect(),
        public_key: *core.key_info.shared_public_key,
        chain_code: core.key_info.chain_code,
    })
}
