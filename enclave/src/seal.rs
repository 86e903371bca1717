//! Sealing: shares and cluster state exist at rest only as sealed blobs that the parent proxy
//! stores and cannot open.
//!
//! Envelope encryption, shaped like KMS: a [`SealingAuthority`] issues a fresh 256-bit data key
//! with its wrapped form (`GenerateDataKey`) and unwraps it later (`Decrypt`). The blob carries
//! the wrapped key; the plaintext is AES-256-GCM-encrypted under the data key with the blob's
//! header as associated data. The data key is zeroized after use.
//!
//! Blob format, version 1 (CBOR map, unknown fields rejected):
//! `{ v: 1, kind, key_id, wrapped_key, nonce (12 bytes), ciphertext }`, associated data
//! `"cohort/sealed-blob/v1" || CBOR([v, kind, key_id, wrapped_key])`.
//!
//! Until the KMS-backed authority exists, [`LocalSealingAuthority`] stands in: it wraps data
//! keys under a key derived from a local master secret *and this enclave's PCR0*, so an enclave
//! built from another binary cannot unwrap them. Its master secret is a file on the host — it
//! models the KMS policy's effect, not its protection.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Version of the sealed-blob format.
pub const SEALED_BLOB_VERSION: u8 = 1;
const AAD_DST: &[u8] = b"cohort/sealed-blob/v1";
/// Largest blob accepted for unsealing.
pub const MAX_BLOB_LEN: usize = 4 * 1024 * 1024;

/// Errors of sealing and unsealing. None carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The sealing authority failed or refused.
    #[error("sealing authority: {0}")]
    Authority(String),
    /// The blob does not parse, has another version, or is too large.
    #[error("malformed sealed blob: {0}")]
    Malformed(String),
    /// The blob is of another kind or for another key than expected.
    #[error("sealed blob is a {found}, expected a {expected}")]
    WrongKind {
        /// Found kind and key.
        found: String,
        /// Expected kind and key.
        expected: String,
    },
    /// Authentication failed: the blob was altered or sealed under another key.
    #[error("sealed blob does not authenticate (altered, or sealed for another enclave image)")]
    Tampered,
}

/// Issues and unwraps data keys (KMS GenerateDataKey / Decrypt, or the local stand-in).
pub trait SealingAuthority: Send + Sync {
    /// A fresh data key and its wrapped form.
    fn generate_data_key(&self) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError>;
    /// Unwraps a data key produced by [`SealingAuthority::generate_data_key`].
    fn decrypt_data_key(&self, wrapped: &[u8]) -> Result<Zeroizing<[u8; 32]>, SealError>;
}

/// No sealing available (production mode until the KMS authority exists): every call fails
/// with the reason, so the enclave boots and attests but refuses to create or load keys.
#[derive(Debug)]
pub struct UnavailableSealing(pub String);

impl SealingAuthority for UnavailableSealing {
    fn generate_data_key(&self) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError> {
        Err(SealError::Authority(self.0.clone()))
    }
    fn decrypt_data_key(&self, _: &[u8]) -> Result<Zeroizing<[u8; 32]>, SealError> {
        Err(SealError::Authority(self.0.clone()))
    }
}

/// The interim local authority (simulated mode).
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

    /// Reads (or creates, once, shared by all nodes of a simulated cluster) the master secret
    /// file and builds the authority.
    pub fn from_file(path: &std::path::Path, pcr0: &[u8]) -> Result<Self, SealError> {
        use std::io::Write;
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut f) => {
                f.write_all(&secret).map_err(|e| {
                    SealError::Authority(format!("cannot write master secret: {e}"))
                })?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(SealError::Authority(format!(
                    "cannot create master secret: {e}"
                )));
            }
        }
        zeroize::Zeroize::zeroize(&mut secret);
        let master = Zeroizing::new(
            std::fs::read(path)
                .map_err(|e| SealError::Authority(format!("cannot read master secret: {e}")))?,
        );
        if master.len() != 32 {
            return Err(SealError::Authority(
                "master secret is not 32 bytes (still being written?)".into(),
            ));
        }
        Ok(Self::new(&master, pcr0))
    }
}

impl SealingAuthority for LocalSealingAuthority {
    fn generate_data_key(&self) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut_slice());
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let wrapped = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*self.kek))
            .encrypt(&Nonce::from(nonce), key.as_slice())
            .map_err(|_| SealError::Authority("wrapping failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&wrapped);
        Ok((key, out))
    }

    fn decrypt_data_key(&self, wrapped: &[u8]) -> Result<Zeroizing<[u8; 32]>, SealError> {
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

fn nonce_of(bytes: &[u8]) -> Result<Nonce<aes_gcm::aead::consts::U12>, SealError> {
    let n: [u8; 12] = bytes
        .try_into()
        .map_err(|_| SealError::Malformed("nonce is not 12 bytes".into()))?;
    Ok(Nonce::from(n))
}

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlobKind {
    /// The cluster's genesis state (admins, quorum, this node's index).
    Genesis,
    /// CGGMP21 auxiliary info of this node (Paillier keys), for future ECDSA keys.
    AuxInfo,
    /// A threshold ECDSA key share (with its auxiliary info).
    EcdsaShare,
    /// A threshold EdDSA key share.
    EddsaShare,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Blob {
    v: u8,
    kind: BlobKind,
    key_id: String,
    wrapped_key: ByteBuf,
    nonce: ByteBuf,
    ciphertext: ByteBuf,
}

fn aad(kind: BlobKind, key_id: &str, wrapped_key: &[u8]) -> Vec<u8> {
    let mut out = AAD_DST.to_vec();
    ciborium::into_writer(
        &(
            SEALED_BLOB_VERSION,
            kind,
            key_id,
            ByteBuf::from(wrapped_key),
        ),
        &mut out,
    )
    .expect("serializing into a Vec cannot fail");
    out
}

/// Seals `plaintext` as a blob of `kind` for `key_id`.
pub fn seal(
    authority: &dyn SealingAuthority,
    kind: BlobKind,
    key_id: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let (key, wrapped) = authority.generate_data_key()?;
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ciphertext = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad(kind, key_id, &wrapped),
            },
        )
        .map_err(|_| SealError::Authority("encryption failed".into()))?;
    let blob = Blob {
        v: SEALED_BLOB_VERSION,
        kind,
        key_id: key_id.to_string(),
        wrapped_key: ByteBuf::from(wrapped),
        nonce: ByteBuf::from(nonce.to_vec()),
        ciphertext: ByteBuf::from(ciphertext),
    };
    let mut out = Vec::new();
    ciborium::into_writer(&blob, &mut out).map_err(|e| SealError::Malformed(e.to_string()))?;
    Ok(out)
}

/// Reads a blob's kind and key id without opening it.
pub fn peek(blob: &[u8]) -> Result<(BlobKind, String), SealError> {
    let b = parse(blob)?;
    Ok((b.kind, b.key_id))
}

fn parse(blob: &[u8]) -> Result<Blob, SealError> {
    if blob.len() > MAX_BLOB_LEN {
        return Err(SealError::Malformed("blob too large".into()));
    }
    let mut rest = blob;
    let b: Blob =
        ciborium::from_reader(&mut rest).map_err(|e| SealError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(SealError::Malformed("trailing bytes".into()));
    }
    if b.v != SEALED_BLOB_VERSION {
        return Err(SealError::Malformed(format!(
            "unsupported blob version {}",
            b.v
        )));
    }
    if b.nonce.len() != 12 {
        return Err(SealError::Malformed("nonce is not 12 bytes".into()));
    }
    Ok(b)
}

/// Opens a blob, which must be of `kind` for `key_id` (`None`: any key id).
pub fn unseal(
    authority: &dyn SealingAuthority,
    blob: &[u8],
    kind: BlobKind,
    key_id: Option<&str>,
) -> Result<(String, Zeroizing<Vec<u8>>), SealError> {
    let b = parse(blob)?;
    if b.kind != kind || key_id.is_some_and(|k| k != b.key_id) {
        return Err(SealError::WrongKind {
            found: format!("{:?} for {}", b.kind, b.key_id),
            expected: format!("{kind:?} for {}", key_id.unwrap_or("any key")),
        });
    }
    let key = authority.decrypt_data_key(&b.wrapped_key)?;
    let plain = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
        .decrypt(
            &nonce_of(&b.nonce)?,
            Payload {
                msg: &b.ciphertext,
                aad: &aad(b.kind, &b.key_id, &b.wrapped_key),
            },
        )
        .map_err(|_| SealError::Tampered)?;
    Ok((b.key_id, Zeroizing::new(plain)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let auth = LocalSealingAuthority::new(&[1; 32], &[0xAA; 48]);
        let blob = seal(&auth, BlobKind::EcdsaShare, "k1", b"share bytes").unwrap();
        assert!(
            !blob.windows(11).any(|w| w == b"share bytes"),
            "plaintext in the blob"
        );
        let (id, plain) = unseal(&auth, &blob, BlobKind::EcdsaShare, Some("k1")).unwrap();
        assert_eq!((id.as_str(), plain.as_slice()), ("k1", &b"share bytes"[..]));
        assert_eq!(
            peek(&blob).unwrap(),
            (BlobKind::EcdsaShare, "k1".to_string())
        );

        // Another image (PCR0) cannot open it.
        let other = LocalSealingAuthority::new(&[1; 32], &[0xBB; 48]);
        assert_eq!(
            unseal(&other, &blob, BlobKind::EcdsaShare, None).unwrap_err(),
            SealError::Tampered
        );
        // Wrong kind or key id.
        assert!(matches!(
            unseal(&auth, &blob, BlobKind::EddsaShare, None),
            Err(SealError::WrongKind { .. })
        ));
        assert!(matches!(
            unseal(&auth, &blob, BlobKind::EcdsaShare, Some("k2")),
            Err(SealError::WrongKind { .. })
        ));
        // Any flipped byte: malformed or tampered, never a panic, never the plaintext.
        for i in 0..blob.len() {
            let mut t = blob.clone();
            t[i] ^= 0x01;
            assert!(
                unseal(&auth, &t, BlobKind::EcdsaShare, Some("k1")).is_err(),
                "byte {i}"
            );
        }
        assert!(unseal(&auth, b"", BlobKind::EcdsaShare, None).is_err());
    }

    #[test]
    fn relabelled_blob_does_not_open() {
        // Change the key id in the clear: the associated data no longer matches.
        let auth = LocalSealingAuthority::new(&[1; 32], &[0xAA; 48]);
        let blob = seal(&auth, BlobKind::EcdsaShare, "k1", b"s").unwrap();
        let mut b: Blob = ciborium::from_reader(blob.as_slice()).unwrap();
        b.key_id = "k9".into();
        let mut relabelled = Vec::new();
        ciborium::into_writer(&b, &mut relabelled).unwrap();
        assert_eq!(
            unseal(&auth, &relabelled, BlobKind::EcdsaShare, None).unwrap_err(),
            SealError::Tampered
        );
    }
}
