//! The enclave's requests to its parent: what it needs to reach KMS itself (ADR 0014).
//!
//! The enclave talks to KMS over TLS that it terminates itself, so the parent can neither read
//! nor forge KMS's answers. It needs two things from its parent, asked for in frames on the
//! parent's KMS channel (vsock CID 3 in production; a Unix or TCP socket in simulated mode):
//!
//! - [`ParentRequest::SignKms`]: the parent signs a KMS request (AWS SigV4) with the instance
//!   role's credentials, over the SHA-256 of a body only the enclave composes. The signature
//!   authenticates the caller to AWS; it gives the parent no say over what KMS answers.
//! - [`ParentRequest::OpenTunnel`]: the parent connects to KMS's HTTPS endpoint and, after
//!   [`ParentResponse::TunnelOpen`], the same connection carries bytes both ways unchanged (AWS's
//!   vsock-proxy pattern). The enclave's TLS runs through it, checked against roots pinned in the
//!   image.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::KmsKeyArn;

/// Largest field (header value, message) a parent message may carry.
pub const MAX_PARENT_FIELD_LEN: usize = 64 * 1024;

/// The KMS operations an enclave makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KmsOperation {
    /// `GenerateDataKey` (AES-256, with a Recipient).
    GenerateDataKey,
    /// `Decrypt` (with a Recipient).
    Decrypt,
}

impl KmsOperation {
    /// The operation's name (`X-Amz-Target: TrentService.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Self::GenerateDataKey => "GenerateDataKey",
            Self::Decrypt => "Decrypt",
        }
    }
}

impl fmt::Display for KmsOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The HTTP request every KMS call of the enclave is: what the parent signs and the enclave
/// sends. Host `kms.<region>.<domain>`, `POST /`, these headers, the body whose SHA-256 is given.
pub mod kms_http {
    /// The content type of KMS's JSON protocol.
    pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
    /// The target header's prefix.
    pub const TARGET_PREFIX: &str = "TrentService.";
    /// The headers a parent may add (lowercase): the signature and what it covers.
    pub const SIGNED_HEADERS: [&str; 4] = [
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
    ];

    /// The KMS encryption context of the enclave's calls (a sealed blob's `context`): what the
    /// enclave sends and what each node's key policy requires (`cohort kms policy`, the
    /// Terraform node module), so both sides name the same keys.
    pub mod context {
        /// The blob's kind, one of [`BLOB_KINDS`]. Always present.
        pub const BLOB: &str = "cohort:blob";
        /// The blob's key id. Always present.
        pub const ID: &str = "cohort:id";
        /// The node key (hex) the blob belongs to, once the node has one.
        pub const NODE: &str = "cohort:node";
        /// The cluster id (hex) the blob belongs to, once genesis is accepted.
        pub const CLUSTER: &str = "cohort:cluster";
        /// Every key a context may carry; the key policy allows no other.
        pub const KEYS: [&str; 4] = [BLOB, CLUSTER, ID, NODE];
        /// The values of [`BLOB`], one per kind of sealed blob.
        pub const BLOB_KINDS: [&str; 5] = [
            "aux-info",
            "ecdsa-share",
            "eddsa-share",
            "genesis",
            "node-key",
        ];
    }
}

/// An enclave's request to its parent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ParentRequest {
    /// Sign a KMS request (SigV4, service `kms`, the key's region) with the parent's credentials.
    SignKms {
        /// The KMS key the call names (the node's pinned key): its region and partition give
        /// the host; a proxy configured for another key refuses.
        key: KmsKeyArn,
        /// The operation (the `X-Amz-Target` header).
        operation: KmsOperation,
        /// SHA-256 of the JSON body the enclave will send.
        body_sha256: ByteBuf,
    },
    /// Open a byte tunnel to the HTTPS endpoint of KMS for `key`'s region. After the answer
    /// [`ParentResponse::TunnelOpen`] the connection carries TLS, no more frames.
    OpenTunnel {
        /// The KMS key the calls will name.
        key: KmsKeyArn,
    },
}

impl ParentRequest {
    /// What is asked, for logs.
    pub fn operation(&self) -> &'static str {
        match self {
            Self::SignKms { operation, .. } => operation.name(),
            Self::OpenTunnel { .. } => "OpenTunnel",
        }
    }

    /// The KMS key named.
    pub fn key(&self) -> &KmsKeyArn {
        match self {
            Self::SignKms { key, .. } | Self::OpenTunnel { key } => key,
        }
    }

    /// Checks field sizes before anything is signed or dialled.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Self::SignKms { body_sha256, .. } if body_sha256.len() != 32 => Err(format!(
                "body_sha256 is {} bytes, not 32",
                body_sha256.len()
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for ParentRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SignKms {
                key,
                operation,
                body_sha256,
            } => f
                .debug_struct("SignKms")
                .field("key", key)
                .field("operation", operation)
                .field("body_sha256", &hex(body_sha256))
                .finish(),
            Self::OpenTunnel { key } => f.debug_struct("OpenTunnel").field("key", key).finish(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why the parent could not serve a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParentErrorCode {
    /// The request was malformed or of an unknown kind.
    BadRequest,
    /// KMS could not be reached, or the parent has no credentials now: retry later.
    Unavailable,
    /// The parent refuses (a key it does not serve).
    AccessDenied,
    /// Kept for the wire: no longer answered (the enclave reads KMS's own errors).
    InvalidCiphertext,
    /// The enclave named a key other than the one the proxy is configured for.
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
    /// The signature headers to add to the request ([`kms_http::SIGNED_HEADERS`] only).
    Signed {
        /// Name (lowercase) and value of each header.
        headers: Vec<(String, String)>,
    },
    /// The tunnel is open: TLS from here on.
    TunnelOpen,
    /// The request failed.
    Error {
        /// Stable code.
        code: ParentErrorCode,
        /// What failed.
        message: String,
    },
}

impl fmt::Debug for ParentResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Signatures and session tokens are credentials of a kind: names only.
            Self::Signed { headers } => f
                .debug_struct("Signed")
                .field(
                    "headers",
                    &headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                )
                .finish(),
            Self::TunnelOpen => f.write_str("TunnelOpen"),
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
        let key = KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:key/k").unwrap();
        let request = ParentRequest::SignKms {
            key: key.clone(),
            operation: KmsOperation::Decrypt,
            body_sha256: ByteBuf::from(vec![1; 32]),
        };
        let frame = crate::encode_frame(&request).unwrap();
        let back: ParentRequest = crate::decode_frame(&frame).unwrap();
        assert_eq!(back, request);
        assert!(request.check().is_ok());
        assert_eq!(request.operation(), "Decrypt");
        assert!(format!("{request:?}").contains("0101"));

        let short = ParentRequest::SignKms {
            key: key.clone(),
            operation: KmsOperation::GenerateDataKey,
            body_sha256: ByteBuf::from(vec![1; 31]),
        };
        assert_eq!(
            short.check().unwrap_err(),
            "body_sha256 is 31 bytes, not 32"
        );
        assert!(ParentRequest::OpenTunnel { key }.check().is_ok());

        let signed = ParentResponse::Signed {
            headers: vec![("authorization".into(), "AWS4-HMAC-SHA256 secret".into())],
        };
        assert!(!format!("{signed:?}").contains("secret"));

        // An enclave request is not a parent request.
        let other = crate::encode_frame(&crate::EnclaveRequest::Status).unwrap();
        assert!(crate::decode_frame::<ParentRequest>(&other).is_err());
    }
}
