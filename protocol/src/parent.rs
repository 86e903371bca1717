//! The enclave's requests to its parent: KMS calls made on the enclave's behalf.
//!
//! The enclave links no AWS SDK, HTTP client or TLS. To seal or unseal it connects to its
//! parent proxy (vsock CID 3 in production; a Unix or TCP socket in simulated mode) and sends a
//! [`ParentRequest`] in a frame ([`crate::encode_frame`]). The proxy makes the KMS call with a
//! `Recipient` holding the enclave's attestation document, and answers a [`ParentResponse`]. KMS
//! answers such calls with `CiphertextForRecipient` only (never a plaintext key), encrypted to
//! the RSA key in that document, so what crosses the parent is useless to it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::KmsKeyArn;

/// Largest attestation document, ciphertext blob or envelope a parent message may carry.
pub const MAX_PARENT_FIELD_LEN: usize = 64 * 1024;

/// An enclave's request to its parent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ParentRequest {
    /// KMS `GenerateDataKey` (AES-256) for the enclave.
    GenerateDataKey {
        /// The KMS key the enclave names (its pinned key, ADR 0013); `None` only before the
        /// enclave has enrolled, when the proxy uses the key it is configured with.
        key_id: Option<KmsKeyArn>,
        /// The enclave's attestation document carrying its ephemeral RSA-2048 public key.
        attestation: ByteBuf,
    },
    /// KMS `Decrypt` of a data key for the enclave.
    Decrypt {
        /// The KMS key the enclave names, as for `GenerateDataKey`.
        key_id: Option<KmsKeyArn>,
        /// The wrapped data key (`CiphertextBlob`) from a sealed blob.
        ciphertext_blob: ByteBuf,
        /// The enclave's attestation document carrying its ephemeral RSA-2048 public key.
        attestation: ByteBuf,
    },
}

impl ParentRequest {
    /// The KMS operation this request makes.
    pub fn operation(&self) -> &'static str {
        match self {
            Self::GenerateDataKey { .. } => "GenerateDataKey",
            Self::Decrypt { .. } => "Decrypt",
        }
    }

    /// Checks field sizes before anything is sent to KMS.
    pub fn check(&self) -> Result<(), String> {
        let fields: &[(&str, &ByteBuf)] = match self {
            Self::GenerateDataKey { attestation, .. } => &[("attestation", attestation)],
            Self::Decrypt {
                ciphertext_blob,
                attestation,
                ..
            } => &[
                ("ciphertext_blob", ciphertext_blob),
                ("attestation", attestation),
            ],
        };
        for (name, value) in fields {
            if value.is_empty() {
                return Err(format!("{name} is empty"));
            }
            if value.len() > MAX_PARENT_FIELD_LEN {
                return Err(format!(
                    "{name} is {} bytes, more than {MAX_PARENT_FIELD_LEN}",
                    value.len()
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ParentRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Nothing here is secret, but documents are long: lengths are enough for logs.
        match self {
            Self::GenerateDataKey {
                key_id,
                attestation,
            } => f
                .debug_struct("GenerateDataKey")
                .field("key_id", key_id)
                .field("attestation_len", &attestation.len())
                .finish(),
            Self::Decrypt {
                key_id,
                ciphertext_blob,
                attestation,
            } => f
                .debug_struct("Decrypt")
                .field("key_id", key_id)
                .field("ciphertext_blob_len", &ciphertext_blob.len())
                .field("attestation_len", &attestation.len())
                .finish(),
        }
    }
}

/// Why the parent could not serve a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParentErrorCode {
    /// The request was malformed or of an unknown kind.
    BadRequest,
    /// KMS (or the stand-in) could not be reached or failed: retry later.
    Unavailable,
    /// KMS refused: the key policy does not allow this enclave (its PCRs), or the attestation
    /// document did not verify.
    AccessDenied,
    /// KMS could not decrypt the ciphertext blob (altered, or of another key).
    InvalidCiphertext,
    /// KMS does not know the proxy's key (`--kms-key-id` wrong, or the key deleted), or the
    /// enclave named a key other than the one the proxy is configured for.
    NotConfigured,
}

impl fmt::Display for ParentErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadRequest => "bad_request",
            Self::Unavailable => "unavailable",
            Self::AccessDenied => "access_denied",
            Self::InvalidCiphertext => "invalid_ciphertext",
            Self::NotConfigured => "not_configured",
        })
    }
}

/// The parent's answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ParentResponse {
    /// `GenerateDataKey` succeeded.
    DataKey {
        /// The KMS key that wrapped it (ARN). An enclave that named its key refuses any other.
        key_id: String,
        /// The data key wrapped under the KMS key: stored in the sealed blob.
        ciphertext_blob: ByteBuf,
        /// The data key as CMS EnvelopedData for the enclave's ephemeral RSA key.
        ciphertext_for_recipient: ByteBuf,
    },
    /// `Decrypt` succeeded.
    Decrypted {
        /// The KMS key that unwrapped it (ARN). An enclave that named its key refuses any other.
        key_id: String,
        /// The data key as CMS EnvelopedData for the enclave's ephemeral RSA key.
        ciphertext_for_recipient: ByteBuf,
    },
    /// The request failed.
    Error {
        /// Stable code.
        code: ParentErrorCode,
        /// What failed (KMS's own message where there is one).
        message: String,
    },
}

impl fmt::Debug for ParentResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataKey {
                key_id,
                ciphertext_blob,
                ciphertext_for_recipient,
            } => f
                .debug_struct("DataKey")
                .field("key_id", key_id)
                .field("ciphertext_blob_len", &ciphertext_blob.len())
                .field("envelope_len", &ciphertext_for_recipient.len())
                .finish(),
            Self::Decrypted {
                key_id,
                ciphertext_for_recipient,
            } => f
                .debug_struct("Decrypted")
                .field("key_id", key_id)
                .field("envelope_len", &ciphertext_for_recipient.len())
                .finish(),
            Self::Error { code, message } => f
                .debug_struct("Error")
                .field("code", code)
                .field("message", message)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let request = ParentRequest::Decrypt {
            key_id: Some(KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:key/k").unwrap()),
            ciphertext_blob: ByteBuf::from(vec![1; 10]),
            attestation: ByteBuf::from(vec![2; 20]),
        };
        let frame = crate::encode_frame(&request).unwrap();
        let back: ParentRequest = crate::decode_frame(&frame).unwrap();
        assert_eq!(back, request);
        assert!(request.check().is_ok());
        assert!(format!("{request:?}").contains("ciphertext_blob_len: 10"));

        let empty = ParentRequest::GenerateDataKey {
            key_id: None,
            attestation: ByteBuf::new(),
        };
        assert_eq!(empty.check().unwrap_err(), "attestation is empty");
        let huge = ParentRequest::GenerateDataKey {
            key_id: None,
            attestation: ByteBuf::from(vec![0; MAX_PARENT_FIELD_LEN + 1]),
        };
        assert!(huge.check().unwrap_err().contains("more than"));

        // An enclave request is not a parent request.
        let other = crate::encode_frame(&crate::EnclaveRequest::Status).unwrap();
        assert!(crate::decode_frame::<ParentRequest>(&other).is_err());
    }
}
