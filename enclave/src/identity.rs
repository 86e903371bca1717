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

/// Domain tags a node key signs under: a node-key signature is never an envelope signature or
/// an approval, whatever the bytes after the tag.
pub const NODE_KEY_DOMAINS: [&[u8]; 14] = [
    protocol::admins::ADMINS_SET_DOMAIN,
    protocol::inventory::INVENTORY_DOMAIN,
    protocol::images::IMAGES_SET_DOMAIN,
    protocol::genesis::GENESIS_RECEIPT_DOMAIN,
    protocol::receipt::KEY_RECEIPT_DOMAIN,
    protocol::reshare::DISOWNED_DOMAIN,
    protocol::reshare::RETIRED_DOMAIN,
    protocol::roster::ROSTER_PROPOSED_DOMAIN,
    protocol::roster::ROSTER_HELD_DOMAIN,
    protocol::roster::ROSTER_PREPARED_DOMAIN,
    protocol::roster::transfer::KEY_MOVED_DOMAIN,
    protocol::roster::commit::KEYS_HELD_DOMAIN,
    protocol::roster::commit::ROSTER_SET_DOMAIN,
    protocol::roster::commit::ROSTER_LEFT_DOMAIN,
];

/// The enclave's long-term node key (ADR 0013): made once, at `Enroll`, sealed under the node's
/// KMS key, restored after every restart. `Debug` prints the public half only; the secret is
/// zeroized on drop by `ed25519-dalek`.
pub struct SecretNodeKey {
    signing: SigningKey,
}

/// A message a node key does not sign: it does not start with one of [`NODE_KEY_DOMAINS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a node key signs only messages under its own domain tags")]
pub struct ForeignDomain;

impl SecretNodeKey {
    /// A fresh node key from the operating system's RNG.
    pub fn generate() -> Self {
        Self {
            signing: SigningKey::generate(&mut OsRng),
        }
    }

    /// The node key from its sealed secret.
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// The secret, for sealing only.
    pub fn secret(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.signing.to_bytes())
    }

    /// The public half (bound into version-2 attestation documents).
    pub fn public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// Signs `message`, which must start with one of [`NODE_KEY_DOMAINS`].
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], ForeignDomain> {
        use ed25519_dalek::Signer;
        if !NODE_KEY_DOMAINS.iter().any(|d| message.starts_with(d)) {
            return Err(ForeignDomain);
        }
        Ok(self.signing.sign(message).to_bytes())
    }
}

impl std::fmt::Debug for SecretNodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretNodeKey")
            .field("public", &hex_short(&self.public()))
            .finish_non_exhaustive()
    }
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

    #[test]
    fn a_node_key_signs_only_its_own_domains_and_hides_its_secret() {
        let k = SecretNodeKey::generate();
        assert_eq!(
            k.sign(b"cohort/peer-envelope/v1 anything"),
            Err(ForeignDomain)
        );
        assert_eq!(k.sign(b""), Err(ForeignDomain));
        let m = b"cohort/key-receipt/v2\0payload";
        let sig = k.sign(m).unwrap();
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&k.public()).unwrap();
        assert!(
            vk.verify_strict(m, &ed25519_dalek::Signature::from_bytes(&sig))
                .is_ok()
        );
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&hex::encode(*k.secret())[..16]));
        assert!(dbg.contains("public"));
        let again = SecretNodeKey::from_secret(&k.secret());
        assert_eq!(again.public(), k.public());
    }
}
