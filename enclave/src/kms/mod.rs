//! Sealing through KMS, gated by attestation: the production sealing authority (and the
//! simulated one, against the local KMS stand-in).
//!
//! For each data key the enclave makes a fresh RSA-2048 key pair, asks its NSM for an
//! attestation document carrying the public key, and sends the document to its parent
//! ([`protocol::parent`]). The parent calls KMS `GenerateDataKey` or `Decrypt` with a
//! `Recipient`; KMS checks the document and the key policy (PCRs) and returns the data key only
//! as `CiphertextForRecipient`, a CMS envelope for that RSA key, which the enclave opens here. The
//! private key never leaves this module and is dropped after one use, so the parent sees the
//! wrapped key and the envelope, never the data key.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use attestation::nsm::{AttestationRequest, Nsm};
use attestation::recipient::EphemeralKey;
use protocol::parent::{ParentErrorCode, ParentRequest, ParentResponse};
use protocol::{Endpoint, KmsKeyArn};
use serde_bytes::ByteBuf;
use zeroize::Zeroizing;

use crate::seal::{AuthorityKind, SealError, SealingAuthority};
use crate::transport;

/// How long one call to the parent (and through it to KMS) may take.
pub const PARENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The user data of a Recipient attestation document: says what the key is for.
pub const RECIPIENT_USER_DATA: &[u8] = b"cohort/kms-recipient/v1";

/// Data keys from KMS through the parent.
pub struct KmsSealingAuthority {
    parent: Endpoint,
    nsm: Arc<dyn Nsm>,
    /// The KMS key every call names, once the enclave knows it (ADR 0013). Before that (an
    /// enclave that has not enrolled) calls name no key and the proxy uses its configured one.
    key: Mutex<Option<KmsKeyArn>>,
}

impl std::fmt::Debug for KmsSealingAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsSealingAuthority")
            .field("parent", &self.parent.to_string())
            .field("key", &*self.key())
            .finish_non_exhaustive()
    }
}

impl KmsSealingAuthority {
    /// An authority that reaches KMS through the parent at `parent`, attesting with `nsm`.
    pub fn new(parent: Endpoint, nsm: Arc<dyn Nsm>) -> Self {
        Self {
            parent,
            nsm,
            key: Mutex::new(None),
        }
    }

    fn key(&self) -> MutexGuard<'_, Option<KmsKeyArn>> {
        // Only ever assigned whole: a poisoned lock still holds a consistent value.
        self.key.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The KMS key this authority names, if named.
    pub fn kms_key(&self) -> Option<KmsKeyArn> {
        self.key().clone()
    }

    /// Refuses an answer for a key other than the named one.
    fn check_answer_key(&self, got: &str) -> Result<(), SealError> {
        match &*self.key() {
            Some(named) if named.as_str() != got => Err(SealError::WrongKmsKey {
                expected: named.to_string(),
                // The parent's text: bounded and quoted before it reaches errors and logs.
                got: format!("{:?}", got.chars().take(200).collect::<String>()),
            }),
            _ => Ok(()),
        }
    }

    /// A fresh ephemeral key and the attestation document that carries its public key.
    fn recipient(&self) -> Result<(EphemeralKey, Vec<u8>), SealError> {
        let key = EphemeralKey::generate()
            .map_err(|e| SealError::BadAnswer(format!("cannot make an ephemeral key: {e}")))?;
        let document = self
            .nsm
            .attest(&AttestationRequest {
                user_data: Some(RECIPIENT_USER_DATA.to_vec()),
                nonce: None,
                public_key: Some(key.public_key_der().to_vec()),
            })
            .map_err(|e| SealError::Unavailable(format!("nsm: {e}")))?;
        Ok((key, document))
    }

    fn call(&self, request: &ParentRequest) -> Result<ParentResponse, SealError> {
        let frame = protocol::encode_frame(request)
            .map_err(|e| SealError::BadAnswer(format!("cannot encode the request: {e}")))?;
        let reply = transport::exchange(&self.parent, &frame, PARENT_TIMEOUT).map_err(|e| {
            SealError::Unavailable(format!("parent at {} unreachable: {e}", self.parent))
        })?;
        protocol::decode_payload(&reply)
            .map_err(|e| SealError::BadAnswer(format!("undecodable answer from the parent: {e}")))
    }

    fn open(key: &EphemeralKey, envelope: &[u8]) -> Result<Zeroizing<[u8; 32]>, SealError> {
        let plain = key
            .open(envelope)
            .map_err(|e| SealError::BadAnswer(format!("CiphertextForRecipient: {e}")))?;
        if plain.len() != 32 {
            return Err(SealError::BadAnswer(format!(
                "data key is {} bytes, not 32",
                plain.len()
            )));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain);
        Ok(key)
    }
}

fn refused(code: ParentErrorCode, message: String) -> SealError {
    let message = format!("{code}: {message}");
    match code {
        ParentErrorCode::Unavailable => SealError::Unavailable(message),
        // A missing or misconfigured KMS key needs an operator, not a quick retry.
        ParentErrorCode::AccessDenied | ParentErrorCode::NotConfigured => {
            SealError::Refused(message)
        }
        ParentErrorCode::InvalidCiphertext => SealError::Tampered,
        ParentErrorCode::BadRequest => SealError::BadAnswer(message),
    }
}

impl SealingAuthority for KmsSealingAuthority {
    fn kind(&self) -> AuthorityKind {
        AuthorityKind::Kms
    }

    fn generate_data_key(&self) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError> {
        let (key, document) = self.recipient()?;
        match self.call(&ParentRequest::GenerateDataKey {
            key_id: self.kms_key(),
            attestation: ByteBuf::from(document),
        })? {
            ParentResponse::DataKey {
                key_id,
                ciphertext_blob,
                ciphertext_for_recipient,
            } => {
                self.check_answer_key(&key_id)?;
                if ciphertext_blob.is_empty() {
                    return Err(SealError::BadAnswer("empty ciphertext blob".into()));
                }
                Ok((
                    Self::open(&key, &ciphertext_for_recipient)?,
                    ciphertext_blob.into_vec(),
                ))
            }
            ParentResponse::Error { code, message } => Err(refused(code, message)),
            other => Err(SealError::BadAnswer(format!(
                "unexpected answer to GenerateDataKey: {other:?}"
            ))),
        }
    }

    fn decrypt_data_key(&self, wrapped: &[u8]) -> Result<Zeroizing<[u8; 32]>, SealError> {
        let (key, document) = self.recipient()?;
        match self.call(&ParentRequest::Decrypt {
            key_id: self.kms_key(),
            ciphertext_blob: ByteBuf::from(wrapped),
            attestation: ByteBuf::from(document),
        })? {
            ParentResponse::Decrypted {
                key_id,
                ciphertext_for_recipient,
            } => {
                self.check_answer_key(&key_id)?;
                Self::open(&key, &ciphertext_for_recipient)
            }
            ParentResponse::Error { code, message } => Err(refused(code, message)),
            other => Err(SealError::BadAnswer(format!(
                "unexpected answer to Decrypt: {other:?}"
            ))),
        }
    }

    fn name_kms_key(&self, arn: &KmsKeyArn) -> Result<(), SealError> {
        let mut key = self.key();
        match &*key {
            Some(pinned) if pinned != arn => Err(SealError::KmsKeyPinned {
                pinned: pinned.to_string(),
                asked: arn.to_string(),
            }),
            Some(_) => Ok(()),
            None => {
                *key = Some(arn.clone());
                Ok(())
            }
        }
    }

    fn forget_kms_key(&self) {
        *self.key() = None;
    }
}
