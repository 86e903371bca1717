//! The enclave's identity keys: generated in memory at boot, never written anywhere, bound into
//! every attestation document through `user_data`.

use attestation::IdentityKeys;
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use x25519_dalek::{PublicKey, StaticSecret};

/// Secret identity keys. `Debug` prints the public halves only; both secrets are zeroized on
/// drop by their crates.
pub struct SecretIdentity {
    signing: SigningKey,
    encryption: StaticSecret,
}

impl SecretIdentity {
    /// Fresh keys from the operating system's RNG (inside an enclave: the NSM-seeded kernel RNG).
    pub fn generate() -> Self {
        Self {
            signing: SigningKey::generate(&mut OsRng),
            encryption: StaticSecret::random_from_rng(OsRng),
        }
    }

    /// Signs `message` with the Ed25519 identity key.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.signing.sign(message).to_bytes()
    }

    /// X25519 agreement with a peer's public key; `None` for a low-order (non-contributory) key.
    pub fn agree(&self, peer: &[u8; 32]) -> Option<zeroize::Zeroizing<[u8; 32]>> {
        let shared = self.encryption.diffie_hellman(&PublicKey::from(*peer));
        if !shared.was_contributory() {
            return None;
        }
        Some(zeroize::Zeroizing::new(shared.to_bytes()))
    }

    /// The public halves, as bound into attestation documents.
    pub fn public(&self) -> IdentityKeys {
        IdentityKeys {
            signing: self.signing.verifying_key().to_bytes(),
            encryption: PublicKey::from(&self.encryption).to_bytes(),
        }
    }
}

impl std::fmt::Debug for SecretIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let public = self.public();
        f.debug_struct("SecretIdentity")
            .field("signing_public", &hex_short(&public.signing))
            .field("encryption_public", &hex_short(&public.encryption))
            .finish_non_exhaustive()
    }
}

fn hex_short(bytes: &[u8; 32]) -> String {
    bytes[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        + ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_secret() {
        let id = SecretIdentity::generate();
        let dbg = format!("{id:?}");
        let secret_sign = hex::encode(id.signing.to_bytes());
        let secret_enc = hex::encode(id.encryption.to_bytes());
        assert!(!dbg.contains(&secret_sign[..16]));
        assert!(!dbg.contains(&secret_enc[..16]));
        assert!(dbg.contains("signing_public"));
    }
}
