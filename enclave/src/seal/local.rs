//! The interim local sealing authority (see [`super`]).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{AuthorityKind, Context, SealError, SealingAuthority, nonce_of};

/// The interim local authority: reads blobs of simulated clusters sealed before KMS sealing
/// existed, and seals for in-process test clusters.
pub struct LocalSealingAuthority {
    kek: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for LocalSealingAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalSealingAuthority { .. }")
    }
}

impl LocalSealingAuthority {
    /// An authority whose key-encryption key is bound to `master` and to `pcr0`.
    pub fn new(master: &[u8], pcr0: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"cohort/local-sealing/v1"), master);
        let mut kek = Zeroizing::new([0u8; 32]);
        hk.expand(pcr0, kek.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self { kek }
    }

    /// The authority of an existing master secret file (`None` if there is none: the cluster
    /// never sealed with the local authority).
    pub fn from_existing_file(
        path: &std::path::Path,
        pcr0: &[u8],
    ) -> Result<Option<Self>, SealError> {
        let master = match std::fs::read(path) {
            Ok(m) => Zeroizing::new(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(SealError::Unavailable(format!(
                    "cannot read the local master secret: {e}"
                )));
            }
        };
        if master.len() != 32 {
            return Err(SealError::Unavailable(
                "local master secret is not 32 bytes".into(),
            ));
        }
        Ok(Some(Self::new(&master, pcr0)))
    }
}

impl SealingAuthority for LocalSealingAuthority {
    fn kind(&self) -> AuthorityKind {
        AuthorityKind::Local
    }

    // The context is in the blob's associated data; the local wrapping does not repeat it.
    fn generate_data_key(&self, _: &Context) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut_slice());
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let wrapped = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*self.kek))
            .encrypt(&Nonce::from(nonce), key.as_slice())
            .map_err(|_| SealError::BadAnswer("wrapping failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&wrapped);
        Ok((key, out))
    }

    fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        _: &Context,
    ) -> Result<Zeroizing<[u8; 32]>, SealError> {
        if wrapped.len() != 12 + 32 + 16 {
            return Err(SealError::Malformed(
                "wrapped key has the wrong length".into(),
            ));
        }
        let plain = Zeroizing::new(
            Aes256Gcm::new(&Key::<Aes256Gcm>::from(*self.kek))
                .decrypt(&nonce_of(&wrapped[..12])?, &wrapped[12..])
                .map_err(|_| SealError::Tampered)?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain);
        Ok(key)
    }
}
