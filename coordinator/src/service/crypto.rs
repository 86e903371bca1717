//! Key derivation and signature checks: what the coordinator verifies of the enclaves' work.

use protocol::policy::Scheme;

/// Derives the non-hardened BIP32 child public key of an ECDSA key.
pub fn derive_public_key(
    master: &[u8],
    chain_code: &[u8],
    path: &[u32],
) -> Result<Vec<u8>, String> {
    let chain_code: [u8; 32] = chain_code
        .try_into()
        .map_err(|_| "chain code is not 32 bytes".to_string())?;
    let attrs = bip32::ExtendedKeyAttrs {
        depth: 0,
        parent_fingerprint: [0; 4],
        child_number: bip32::ChildNumber(0),
        chain_code,
    };
    let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(master).map_err(|e| e.to_string())?;
    let mut xpub = bip32::XPub::new(vk, attrs);
    for i in path {
        let child = bip32::ChildNumber::new(*i, false).map_err(|e| e.to_string())?;
        xpub = xpub.derive_child(child).map_err(|e| e.to_string())?;
    }
    Ok(xpub.public_key().to_encoded_point(true).as_bytes().to_vec())
}

/// Verifies a signature the enclaves returned against the key the coordinator expects.
pub fn verify_signature(
    scheme: Scheme,
    public_key: &[u8],
    payload: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    match scheme {
        Scheme::EcdsaSecp256k1 => {
            use k256::ecdsa::signature::hazmat::PrehashVerifier;
            let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
                .map_err(|e| e.to_string())?;
            let sig = k256::ecdsa::Signature::from_slice(signature).map_err(|e| e.to_string())?;
            if sig.normalize_s().is_some() {
                return Err("signature s is not low".into());
            }
            vk.verify_prehash(payload, &sig).map_err(|e| e.to_string())
        }
        Scheme::EddsaEd25519 => {
            let key: [u8; 32] = public_key
                .try_into()
                .map_err(|_| "public key is not 32 bytes".to_string())?;
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|e| e.to_string())?;
            let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|e| e.to_string())?;
            vk.verify_strict(payload, &sig).map_err(|e| e.to_string())
        }
    }
}
