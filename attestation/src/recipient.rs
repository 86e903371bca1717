//! KMS `Recipient` envelopes: what KMS returns as `CiphertextForRecipient` when a call carries
//! an attestation document with an RSA public key.
//!
//! The envelope is CMS EnvelopedData (RFC 5652) in the layout AWS KMS emits: BER with
//! indefinite lengths outside, one `KeyTransRecipientInfo` (version 2, subject key identifier)
//! whose key is RSAES-OAEP with SHA-256 and MGF1-SHA-256, and AES-256-CBC content with a 16-byte
//! IV and PKCS#7 padding, the ciphertext in a constructed OCTET STRING.
//!
//! [`EphemeralKey::open`] parses with the RustCrypto `cms` crate (BER-capable `der` 0.8) and
//! decrypts with `rsa` and `cbc`; it is what the enclave runs. [`seal_envelope`] writes the same
//! layout byte for byte from its parts; it is what the local KMS stand-in runs. The tests open a
//! sample captured from real KMS (structure) and an envelope OpenSSL built (decryption).

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{EnvelopedData, RecipientIdentifier, RecipientInfo};
use der08::{Decode, Encode, EncodingRules};
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::{Oaep, PrivateKey, PublicKey};
use sha2_11::{Digest, Sha256};
use zeroize::Zeroizing;

/// Size of the ephemeral RSA key (what KMS requires of a Recipient key).
pub const RSA_BITS: usize = 2048;

/// Largest envelope accepted (a data key's envelope is about 500 bytes; a `Decrypt` of up to
/// 4 KiB of plaintext stays far below this).
pub const MAX_ENVELOPE_LEN: usize = 16 * 1024;

/// `id-envelopedData` ContentInfo, indefinite length, then `[0]` and the EnvelopedData SEQUENCE,
/// indefinite, and `version 2`: the first bytes of every KMS envelope.
const HEAD: [u8; 20] = [
    0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0xa0, 0x80, 0x30,
    0x80, 0x02, 0x01, 0x02,
];

/// `AlgorithmIdentifier { id-RSAES-OAEP, { [0] sha256, [1] mgf1(sha256) } }`, as KMS writes it.
const OAEP_SHA256: [u8; 62] = [
    0x30, 0x3c, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07, 0x30, 0x2f, 0xa0,
    0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
    0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30,
    0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
];

/// `EncryptedContentInfo` SEQUENCE, indefinite, with content type `id-data`.
const CONTENT_HEAD: [u8; 13] = [
    0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
];

/// `AlgorithmIdentifier { aes256-CBC, IV OCTET STRING (16) }` up to the IV.
const AES256_CBC: [u8; 15] = [
    0x30, 0x1d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a, 0x04, 0x10,
];

/// Why an envelope did not open or could not be made. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipientError {
    /// Not CMS EnvelopedData, or not in the shape KMS produces.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// Well formed but uses another algorithm than RSAES-OAEP-SHA256 / AES-256-CBC.
    #[error("unsupported envelope: {0}")]
    Unsupported(String),
    /// The key does not decrypt it (altered, or made for another key).
    #[error("the envelope does not open with this key (altered, or for another recipient)")]
    Undecryptable,
    /// A public key that is not RSA-2048 in SubjectPublicKeyInfo form.
    #[error("bad recipient public key: {0}")]
    BadPublicKey(String),
    /// Key generation or encryption failed.
    #[error("rsa: {0}")]
    Rsa(String),
}

/// An RSA-2048 key pair made for one KMS call and dropped after it.
pub struct EphemeralKey {
    private: PrivateKey,
    public_der: Vec<u8>,
}

impl std::fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EphemeralKey { .. }")
    }
}

impl EphemeralKey {
    /// A fresh key pair from the operating system's generator.
    pub fn generate() -> Result<Self, RecipientError> {
        let private = PrivateKey::new(&mut getrandom04::SysRng, RSA_BITS)
            .map_err(|e| RecipientError::Rsa(e.to_string()))?;
        Self::from_private(private)
    }

    fn from_private(private: PrivateKey) -> Result<Self, RecipientError> {
        let public_der = PublicKey::from(&private)
            .to_public_key_der()
            .map_err(|e| RecipientError::Rsa(e.to_string()))?
            .as_bytes()
            .to_vec();
        Ok(Self {
            private,
            public_der,
        })
    }

    /// The public key as DER SubjectPublicKeyInfo: what the attestation document carries.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_der
    }

    /// Opens a `CiphertextForRecipient` made for this key.
    pub fn open(&self, envelope: &[u8]) -> Result<Zeroizing<Vec<u8>>, RecipientError> {
        let parts = parse(envelope)?;
        let cek = Zeroizing::new(
            self.private
                .decrypt(Oaep::<Sha256>::new(), &parts.encrypted_key)
                .map_err(|_| RecipientError::Undecryptable)?,
        );
        if cek.len() != 32 {
            return Err(RecipientError::Undecryptable);
        }
        let plain = cbc::Decryptor::<aes09::Aes256>::new_from_slices(&cek, &parts.iv)
            .map_err(|_| RecipientError::Undecryptable)?
            .decrypt_padded_vec::<Pkcs7>(&parts.ciphertext)
            .map_err(|_| RecipientError::Undecryptable)?;
        Ok(Zeroizing::new(plain))
    }
}

/// The parts of an envelope that decryption needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeParts {
    /// The RSA-OAEP-encrypted content-encryption key.
    pub encrypted_key: Vec<u8>,
    /// The AES-256-CBC IV.
    pub iv: Vec<u8>,
    /// The AES-256-CBC ciphertext.
    pub ciphertext: Vec<u8>,
}

fn malformed(e: impl std::fmt::Display) -> RecipientError {
    RecipientError::Malformed(e.to_string())
}

/// Parses an envelope (BER or DER) and checks it has the one shape KMS uses.
pub fn parse(envelope: &[u8]) -> Result<EnvelopeParts, RecipientError> {
    if envelope.is_empty() || envelope.len() > MAX_ENVELOPE_LEN {
        return Err(malformed(format!(
            "{} bytes (1 to {MAX_ENVELOPE_LEN} expected)",
            envelope.len()
        )));
    }
    let info = ContentInfo::from_ber(envelope).map_err(malformed)?;
    if info.content_type.to_string() != "1.2.840.113549.1.7.3" {
        return Err(RecipientError::Unsupported(format!(
            "content type {} is not enveloped data",
            info.content_type
        )));
    }
    let data: EnvelopedData = info
        .content
        .decode_as_encoding(EncodingRules::Ber)
        .map_err(malformed)?;
    if data.version != CmsVersion::V2 {
        return Err(malformed(format!(
            "EnvelopedData version {:?}",
            data.version
        )));
    }
    let [RecipientInfo::Ktri(ktri)] = data.recip_infos.0.as_slice() else {
        return Err(RecipientError::Unsupported(
            "exactly one key-transport recipient expected".into(),
        ));
    };
    if ktri.version != CmsVersion::V2
        || !matches!(ktri.rid, RecipientIdentifier::SubjectKeyIdentifier(_))
    {
        return Err(malformed(
            "the recipient is not identified by subject key identifier (version 2)",
        ));
    }
    if ktri.key_enc_alg.to_der().map_err(malformed)? != OAEP_SHA256 {
        return Err(RecipientError::Unsupported(
            "key encryption is not RSAES-OAEP with SHA-256 and MGF1-SHA-256".into(),
        ));
    }
    let content = &data.encrypted_content;
    if content.content_type.to_string() != "1.2.840.113549.1.7.1" {
        return Err(malformed("encrypted content is not of type id-data"));
    }
    let alg = content.content_enc_alg.to_der().map_err(malformed)?;
    let iv = alg
        .strip_prefix(&AES256_CBC[..])
        .filter(|iv| iv.len() == 16)
        .ok_or_else(|| {
            RecipientError::Unsupported("content encryption is not AES-256-CBC".into())
        })?;
    let ciphertext = content
        .encrypted_content
        .as_ref()
        .ok_or_else(|| malformed("no encrypted content"))?
        .as_bytes();
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(malformed("ciphertext is not whole AES blocks"));
    }
    Ok(EnvelopeParts {
        encrypted_key: ktri.enc_key.as_bytes().to_vec(),
        iv: iv.to_vec(),
        ciphertext: ciphertext.to_vec(),
    })
}

/// Checks a Recipient public key: DER SubjectPublicKeyInfo of an RSA-2048 key.
pub fn check_public_key(spki_der: &[u8]) -> Result<PublicKey, RecipientError> {
    let key = PublicKey::from_public_key_der(spki_der)
        .map_err(|e| RecipientError::BadPublicKey(e.to_string()))?;
    let bits = rsa::traits::PublicKeyParts::size(&key) * 8;
    if bits != RSA_BITS {
        return Err(RecipientError::BadPublicKey(format!(
            "{bits}-bit key, {RSA_BITS} expected"
        )));
    }
    Ok(key)
}

/// DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// Makes a `CiphertextForRecipient` of `plaintext` for the RSA key `spki_der`, in the layout
/// KMS uses (see the module documentation).
pub fn seal_envelope(spki_der: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, RecipientError> {
    let key = check_public_key(spki_der)?;
    let mut cek = Zeroizing::new([0u8; 32]);
    let mut iv = [0u8; 16];
    getrandom04::fill(cek.as_mut_slice()).map_err(|e| RecipientError::Rsa(e.to_string()))?;
    getrandom04::fill(&mut iv).map_err(|e| RecipientError::Rsa(e.to_string()))?;
    let ciphertext = cbc::Encryptor::<aes09::Aes256>::new_from_slices(cek.as_slice(), &iv)
        .map_err(|e| RecipientError::Rsa(e.to_string()))?
        .encrypt_padded_vec::<Pkcs7>(plaintext);
    let encrypted_key = key
        .encrypt(
            &mut getrandom04::SysRng,
            Oaep::<Sha256>::new(),
            cek.as_slice(),
        )
        .map_err(|e| RecipientError::Rsa(e.to_string()))?;
    let mut ktri = vec![0x02, 0x01, 0x02];
    ktri.extend(tlv(0x80, &Sha256::digest(spki_der)));
    ktri.extend_from_slice(&OAEP_SHA256);
    ktri.extend(tlv(0x04, &encrypted_key));
    let mut out = HEAD.to_vec();
    out.extend(tlv(0x31, &tlv(0x30, &ktri)));
    out.extend_from_slice(&CONTENT_HEAD);
    out.extend_from_slice(&AES256_CBC);
    out.extend_from_slice(&iv);
    out.extend_from_slice(&[0xa0, 0x80]);
    out.extend(tlv(0x04, &ciphertext));
    // End-of-contents of [0] content, EncryptedContentInfo, EnvelopedData, [0], ContentInfo.
    out.extend_from_slice(&[0u8; 10]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::DecodePrivateKey;

    /// A `CiphertextForRecipient` captured from AWS KMS, as published in the tests of
    /// aws-nitro-enclaves-sdk-c (`tests/cms_test.c`); its private key is not public.
    const KMS_SAMPLE: &[u8] = include_bytes!("testdata/kms-recipient-sample.ber");
    /// An envelope in the same layout made with OpenSSL (`testdata/make-openssl-envelope.sh`;
    /// `openssl cms -decrypt` opens it), with its key and plaintext.
    const OPENSSL_ENVELOPE: &[u8] = include_bytes!("testdata/openssl-envelope.ber");
    const OPENSSL_KEY: &str = include_str!("testdata/openssl-envelope-key.pem");
    const OPENSSL_PLAINTEXT: &[u8] = include_bytes!("testdata/openssl-envelope-plaintext.bin");

    fn openssl_key() -> EphemeralKey {
        EphemeralKey::from_private(PrivateKey::from_pkcs8_pem(OPENSSL_KEY).unwrap()).unwrap()
    }

    #[test]
    fn parses_real_kms_output() {
        let parts = parse(KMS_SAMPLE).unwrap();
        assert_eq!(parts.encrypted_key.len(), 256);
        assert_eq!(hex::encode(&parts.iv), "688c6d5f7f31b0fecedf09f2e7c99ac9");
        // A 32-byte data key plus a block of PKCS#7 padding.
        assert_eq!(parts.ciphertext.len(), 48);
        assert!(hex::encode(&parts.encrypted_key).starts_with("a0614593"));
        // Our writer, fed the sample's parts, reproduces the sample's layout: only the subject
        // key identifier (32 bytes at offset 33) and the values differ.
        let ours = seal_envelope(openssl_key().public_key_der(), &[7; 32]).unwrap();
        assert_eq!(ours.len(), KMS_SAMPLE.len());
        assert_eq!(ours[..33], KMS_SAMPLE[..33]);
        assert_eq!(
            ours[65..65 + 62],
            KMS_SAMPLE[65..65 + 62],
            "OAEP parameters"
        );
    }

    #[test]
    fn opens_an_openssl_envelope() {
        let plain = openssl_key().open(OPENSSL_ENVELOPE).unwrap();
        assert_eq!(plain.as_slice(), OPENSSL_PLAINTEXT);
        // Another key cannot open it.
        let other = EphemeralKey::generate().unwrap();
        assert_eq!(
            other.open(OPENSSL_ENVELOPE).unwrap_err(),
            RecipientError::Undecryptable
        );
    }

    #[test]
    fn round_trip_and_tampering() {
        let key = EphemeralKey::generate().unwrap();
        check_public_key(key.public_key_der()).unwrap();
        let envelope = seal_envelope(key.public_key_der(), &[0x5a; 32]).unwrap();
        assert_eq!(key.open(&envelope).unwrap().as_slice(), &[0x5a; 32]);
        // Every flipped byte: an error, never a panic, never the plaintext.
        for i in 0..envelope.len() {
            if (33..65).contains(&i) {
                // The subject key identifier: KMS's derivation is not documented, so it is
                // not checked (AWS's own SDK skips it too).
                continue;
            }
            let mut t = envelope.clone();
            t[i] ^= 0x01;
            match key.open(&t) {
                Err(_) => {}
                Ok(p) => assert_ne!(p.as_slice(), &[0x5a; 32], "byte {i} flipped still opens"),
            }
        }
        for cut in [0, 1, 20, envelope.len() / 2, envelope.len() - 1] {
            assert!(key.open(&envelope[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(
            key.open(&vec![0x30; MAX_ENVELOPE_LEN + 1]),
            Err(RecipientError::Malformed(_))
        ));
        // Only RSA-2048 SubjectPublicKeyInfo is a Recipient key.
        assert!(check_public_key(&[0x30, 0x00]).is_err());
        assert!(seal_envelope(&[1; 64], b"x").is_err());
    }
}
