//! COSE_Sign1 ES384 with RustCrypto's P-384, plugged into `aws-nitro-enclaves-cose`'s traits
//! so that neither the enclave nor the verifier links OpenSSL.

use aws_nitro_enclaves_cose::crypto::{Hash, MessageDigest, SignatureAlgorithm, SigningPublicKey};
use aws_nitro_enclaves_cose::error::CoseError;
use p384::ecdsa::signature::hazmat::PrehashVerifier;
use p384::ecdsa::{Signature, VerifyingKey};
use sha2::Digest;

/// SHA-2 hashing for the COSE crate.
pub(crate) struct Sha2;

impl Hash for Sha2 {
    fn hash(digest: MessageDigest, data: &[u8]) -> Result<Vec<u8>, CoseError> {
        Ok(match digest {
            MessageDigest::Sha256 => sha2::Sha256::digest(data).to_vec(),
            MessageDigest::Sha384 => sha2::Sha384::digest(data).to_vec(),
            MessageDigest::Sha512 => sha2::Sha512::digest(data).to_vec(),
        })
    }
}

/// The signature bytes are not an encoding of a P-384 ECDSA signature.
#[derive(Debug, thiserror::Error)]
#[error("signature is not a 96-byte P-384 (r, s) pair with scalars in range")]
pub(crate) struct MalformedSignature;

/// A P-384 verifying key (the attestation leaf certificate's key).
pub(crate) struct P384Public(pub VerifyingKey);

impl SigningPublicKey for P384Public {
    fn get_parameters(&self) -> Result<(SignatureAlgorithm, MessageDigest), CoseError> {
        Ok((SignatureAlgorithm::ES384, MessageDigest::Sha384))
    }

    fn verify(&self, digest: &[u8], signature: &[u8]) -> Result<bool, CoseError> {
        let sig = Signature::from_slice(signature)
            .map_err(|_| CoseError::SignatureError(Box::new(MalformedSignature)))?;
        Ok(self.0.verify_prehash(digest, &sig).is_ok())
    }
}
