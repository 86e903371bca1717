//! frost-ed25519 key shares: a holder's `KeyPackage` and the group's `PublicKeyPackage`, as
//! frost serializes them (postcard with frost's ciphersuite header). Identifiers may be any
//! non-zero scalars (frost's default `1..n`, or derived from names): they are the holders'
//! evaluation points.

use frost_ed25519::keys::{KeyPackage, PublicKeyPackage};
use reshare::generic_ec::curves::Ed25519;
use reshare::generic_ec::{Point, Scalar, SecretScalar};
use zeroize::Zeroizing;

use super::{ImportError, LegacyShare};

fn malformed(what: &str, e: impl std::fmt::Display) -> ImportError {
    ImportError::Malformed(format!(
        "not a frost-ed25519 {what}: {}",
        e.to_string().chars().take(160).collect::<String>()
    ))
}

fn point(bytes: &[u8], what: &str) -> Result<Point<Ed25519>, ImportError> {
    Point::from_bytes(bytes).map_err(|e| malformed(what, e))
}

/// One holder's share from its `KeyPackage` and the group's `PublicKeyPackage`, which must
/// agree (the same group key; the holder's verifying share listed under its identifier).
pub fn parse_frost(
    key_package: &[u8],
    public_key_package: &[u8],
) -> Result<LegacyShare<Ed25519>, ImportError> {
    let kp = KeyPackage::deserialize(key_package).map_err(|e| malformed("key package", e))?;
    let pkp = PublicKeyPackage::deserialize(public_key_package)
        .map_err(|e| malformed("public key package", e))?;
    if kp.verifying_key() != pkp.verifying_key()
        || pkp.verifying_shares().get(kp.identifier()) != Some(kp.verifying_share())
    {
        return Err(ImportError::MixedKeys { holder: 0 });
    }
    let mut points = Vec::new();
    let mut public_shares = Vec::new();
    let mut index = None;
    for (i, (id, share)) in pkp.verifying_shares().iter().enumerate() {
        if id == kp.identifier() {
            index = Some(i);
        }
        points.push(
            Scalar::<Ed25519>::from_le_bytes(id.serialize())
                .map_err(|e| malformed("identifier", e))?,
        );
        let bytes = share
            .serialize()
            .map_err(|e| malformed("verifying share", e))?;
        public_shares.push(point(&bytes, "verifying share")?);
    }
    let key = pkp
        .verifying_key()
        .serialize()
        .map_err(|e| malformed("group key", e))?;
    let secret = Zeroizing::new(kp.signing_share().serialize());
    let mut x =
        Scalar::<Ed25519>::from_le_bytes(&*secret).map_err(|e| malformed("signing share", e))?;
    Ok(LegacyShare {
        index: index.ok_or(ImportError::MixedKeys { holder: 0 })?,
        share: SecretScalar::new(&mut x),
        points,
        public_shares,
        public_key: point(&key, "group key")?,
        chain_code: None,
    })
}
