//! Sealing through KMS, gated by attestation: the production sealing authority (and the
//! simulated one, against the local KMS stand-in).
//!
//! For each data key the enclave makes a fresh RSA-2048 key pair, asks its NSM for an
//! attestation document carrying the public key, and calls KMS `GenerateDataKey` or `Decrypt`
//! with a `Recipient` holding that document. KMS checks the document and the key policy (PCRs)
//! and returns the data key only as `CiphertextForRecipient`, a CMS envelope for that RSA key,
//! which the enclave opens here. The private key never leaves this module and is dropped after
//! one use.
//!
//! The call is the enclave's own (ADR 0014): it composes the JSON body, the parent signs it
//! (SigV4, with the instance role's credentials) and opens a byte tunnel, and the enclave
//! speaks TLS to KMS through that tunnel ([`https`]), checking KMS's certificate against roots
//! pinned in the image. A parent therefore cannot answer for KMS (a data key of its choosing
//! wrapped to the Recipient key would need KMS's certificate), replay an old answer, or read
//! the wrapped key in transit; it can only refuse service. Every call names the node's pinned
//! KMS key; before a key is named (an enclave that has not enrolled) no call is made.

pub mod https;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use attestation::nsm::{AttestationRequest, Nsm};
use attestation::recipient::EphemeralKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use protocol::parent::{KmsOperation, ParentErrorCode, ParentRequest, ParentResponse, kms_http};
use protocol::{Endpoint, KmsKeyArn};
use serde_bytes::ByteBuf;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::warn;
use zeroize::Zeroizing;

pub use self::https::{HttpsError, Roots};
use crate::seal::{AuthorityKind, Context, SealError, SealingAuthority};

/// How long one KMS call may take in all: asking the parent for a signature, the tunnel, the
/// TLS handshake and the answer. A parent that stalls or drips bytes is cut off here.
pub const KMS_DEADLINE: Duration = Duration::from_secs(20);

/// The user data of a Recipient attestation document: says what the key is for.
pub const RECIPIENT_USER_DATA: &[u8] = b"cohort/kms-recipient/v1";

/// Data keys from KMS, over TLS through the parent.
pub struct KmsSealingAuthority {
    parent: Endpoint,
    nsm: Arc<dyn Nsm>,
    roots: Roots,
    deadline: Duration,
    /// The KMS key every call names, once the enclave knows it (ADR 0013). Before that (an
    /// enclave that has not enrolled) no call is made.
    key: Mutex<Option<KmsKeyArn>>,
}

impl std::fmt::Debug for KmsSealingAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsSealingAuthority")
            .field("parent", &self.parent.to_string())
            .field("roots", &self.roots)
            .field("key", &*self.key())
            .finish_non_exhaustive()
    }
}

impl KmsSealingAuthority {
    /// An authority that reaches KMS through the parent at `parent`, attesting with `nsm`, and
    /// trusting KMS certificates that chain to `roots`.
    pub fn new(parent: Endpoint, nsm: Arc<dyn Nsm>, roots: Roots) -> Self {
        Self {
            parent,
            nsm,
            roots,
            deadline: KMS_DEADLINE,
            key: Mutex::new(None),
        }
    }

    /// The same with another overall deadline per call (tests).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    fn key(&self) -> MutexGuard<'_, Option<KmsKeyArn>> {
        // Only ever assigned whole: a poisoned lock still holds a consistent value.
        self.key.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The KMS key this authority names, if named.
    pub fn kms_key(&self) -> Option<KmsKeyArn> {
        self.key().clone()
    }

    fn named_key(&self) -> Result<KmsKeyArn, SealError> {
        self.kms_key().ok_or_else(|| {
            SealError::Refused(
                "not_configured: no KMS key is named yet (the node enrolls first)".into(),
            )
        })
    }

    /// Refuses an answer for a key other than the named one.
    fn check_answer_key(named: &KmsKeyArn, got: &str) -> Result<(), SealError> {
        if named.as_str() != got {
            return Err(SealError::WrongKmsKey {
                expected: named.to_string(),
                // Bounded and quoted before it reaches errors and logs.
                got: format!("{:?}", got.chars().take(200).collect::<String>()),
            });
        }
        Ok(())
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

    /// One KMS call: the parent signs, the enclave sends over TLS, KMS's JSON answer back.
    fn call(
        &self,
        key: &KmsKeyArn,
        operation: KmsOperation,
        body: &Value,
    ) -> Result<Value, SealError> {
        let deadline = Instant::now() + self.deadline;
        let body = body.to_string().into_bytes();
        let (answer, _) = https::ask_parent(
            &self.parent,
            &ParentRequest::SignKms {
                key: key.clone(),
                operation,
                body_sha256: ByteBuf::from(Sha256::digest(&body).to_vec()),
            },
            deadline,
        )
        .map_err(|e| https_failure(operation, e))?;
        let signed = match answer {
            ParentResponse::Signed { headers } => check_signed_headers(headers)?,
            ParentResponse::Error { code, message } => return Err(refused(code, message)),
            other => {
                return Err(SealError::BadAnswer(format!(
                    "unexpected answer to SignKms: {}",
                    https::bounded(&format!("{other:?}"))
                )));
            }
        };
        let mut headers = vec![
            (
                "content-type".to_string(),
                kms_http::CONTENT_TYPE.to_string(),
            ),
            (
                "x-amz-target".to_string(),
                format!("{}{}", kms_http::TARGET_PREFIX, operation.name()),
            ),
        ];
        headers.extend(signed);
        let (status, answer) =
            https::post(&self.parent, &self.roots, key, &headers, &body, deadline)
                .map_err(|e| https_failure(operation, e))?;
        let json: Value = serde_json::from_slice(&answer).map_err(|e| {
            SealError::BadAnswer(format!(
                "KMS {operation} answered {status} with no JSON: {e}"
            ))
        })?;
        if status != 200 {
            return Err(kms_failure(operation, status, &json));
        }
        Ok(json)
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

/// The parent's signature headers: only the names SigV4 adds, values without line breaks or
/// control characters (nothing can be smuggled into the request).
fn check_signed_headers(
    headers: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, SealError> {
    if headers.len() > kms_http::SIGNED_HEADERS.len() {
        return Err(SealError::BadAnswer("too many signature headers".into()));
    }
    for (name, value) in &headers {
        if !kms_http::SIGNED_HEADERS.contains(&name.as_str()) {
            return Err(SealError::BadAnswer(format!(
                "the parent added a header {:?} that is not a signature header",
                name.chars().take(40).collect::<String>()
            )));
        }
        if value.len() > 8192 || value.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
            return Err(SealError::BadAnswer(format!(
                "the parent's {name} header is not a printable ASCII line"
            )));
        }
    }
    if !headers.iter().any(|(n, _)| n == "authorization") {
        return Err(SealError::BadAnswer(
            "the parent signed nothing (no authorization)".into(),
        ));
    }
    Ok(headers)
}

fn https_failure(operation: KmsOperation, e: HttpsError) -> SealError {
    match e {
        HttpsError::Unavailable(m) => SealError::Unavailable(format!("KMS {operation}: {m}")),
        HttpsError::Untrusted(m) => SealError::Untrusted(format!("KMS {operation}: {m}")),
        HttpsError::Parent(m) | HttpsError::Malformed(m) => {
            SealError::BadAnswer(format!("KMS {operation}: {m}"))
        }
    }
}

/// KMS's error answer (`{"__type": "...#AccessDeniedException", "message": ...}`) as the error
/// the enclave acts on: refusals are final, throttling and KMS's own failures worth retrying.
fn kms_failure(operation: KmsOperation, status: u16, json: &Value) -> SealError {
    let kind = json["__type"]
        .as_str()
        .unwrap_or("")
        .rsplit('#')
        .next()
        .unwrap_or("")
        .chars()
        .take(80)
        .collect::<String>();
    let message = json["message"]
        .as_str()
        .or_else(|| json["Message"].as_str())
        .unwrap_or("")
        .chars()
        .take(400)
        .collect::<String>();
    let text = |code: &str| format!("{code}: KMS {operation}: {kind}: {message}");
    match kind.as_str() {
        "AccessDeniedException"
        | "ValidationException"
        | "DisabledException"
        | "KMSInvalidStateException" => SealError::Refused(text("access_denied")),
        "NotFoundException" => SealError::Refused(text("not_configured")),
        "InvalidCiphertextException" | "IncorrectKeyException" => SealError::Tampered,
        _ if status >= 500 || kind == "ThrottlingException" => {
            SealError::Unavailable(text("unavailable"))
        }
        _ => SealError::Refused(text("refused")),
    }
}

fn refused(code: ParentErrorCode, message: String) -> SealError {
    let message = format!("{code}: {}", https::bounded(&message));
    match code {
        ParentErrorCode::Unavailable => SealError::Unavailable(message),
        // A misconfigured proxy needs an operator, not a quick retry.
        ParentErrorCode::AccessDenied | ParentErrorCode::NotConfigured => {
            SealError::Refused(message)
        }
        ParentErrorCode::InvalidCiphertext | ParentErrorCode::BadRequest => {
            SealError::BadAnswer(message)
        }
    }
}

fn recipient_json(document: &[u8]) -> Value {
    json!({
        "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
        "AttestationDocument": B64.encode(document),
    })
}

fn blob_field(json: &Value, name: &str) -> Result<Vec<u8>, SealError> {
    let text = json[name]
        .as_str()
        .ok_or_else(|| SealError::BadAnswer(format!("KMS answered without {name}")))?;
    B64.decode(text)
        .map_err(|e| SealError::BadAnswer(format!("KMS's {name} is not base64: {e}")))
}

/// A failed KMS operation is logged with `event = "kms_failure"` — the call refused or
/// unreachable, or an answer the enclave rejected (another key, a plaintext data key, an
/// envelope that does not open: a parent tampering) — which the deployment counts from the
/// parent's log (the log channel) and alarms on.
fn logged<T>(operation: KmsOperation, result: Result<T, SealError>) -> Result<T, SealError> {
    if let Err(e) = &result {
        warn!(event = "kms_failure", %operation, error = %e, "KMS operation failed");
    }
    result
}

impl KmsSealingAuthority {
    /// `GenerateDataKey` with a Recipient: the data key (opened here) and its wrapped form.
    fn generate(&self, context: &Context) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError> {
        let named = self.named_key()?;
        let (key, document) = self.recipient()?;
        let answer = self.call(
            &named,
            KmsOperation::GenerateDataKey,
            &json!({
                "KeyId": named.as_str(),
                "KeySpec": "AES_256",
                "EncryptionContext": context,
                "Recipient": recipient_json(&document),
            }),
        )?;
        Self::check_answer_key(&named, answer["KeyId"].as_str().unwrap_or(""))?;
        if answer.get("Plaintext").is_some_and(|p| !p.is_null()) {
            return Err(SealError::BadAnswer(
                "KMS answered a plaintext data key to a call with a Recipient".into(),
            ));
        }
        let blob = blob_field(&answer, "CiphertextBlob")?;
        if blob.is_empty() {
            return Err(SealError::BadAnswer("empty ciphertext blob".into()));
        }
        let envelope = blob_field(&answer, "CiphertextForRecipient")?;
        Ok((Self::open(&key, &envelope)?, blob))
    }

    /// `Decrypt` with a Recipient: the data key, opened here.
    fn decrypt(&self, wrapped: &[u8], context: &Context) -> Result<Zeroizing<[u8; 32]>, SealError> {
        let named = self.named_key()?;
        let (key, document) = self.recipient()?;
        let answer = self.call(
            &named,
            KmsOperation::Decrypt,
            &json!({
                "KeyId": named.as_str(),
                "CiphertextBlob": B64.encode(wrapped),
                "EncryptionContext": context,
                "Recipient": recipient_json(&document),
            }),
        )?;
        Self::check_answer_key(&named, answer["KeyId"].as_str().unwrap_or(""))?;
        let envelope = blob_field(&answer, "CiphertextForRecipient")?;
        Self::open(&key, &envelope)
    }
}

impl SealingAuthority for KmsSealingAuthority {
    fn kind(&self) -> AuthorityKind {
        AuthorityKind::Kms
    }

    fn generate_data_key(
        &self,
        context: &Context,
    ) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError> {
        logged(KmsOperation::GenerateDataKey, self.generate(context))
    }

    fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        context: &Context,
    ) -> Result<Zeroizing<[u8; 32]>, SealError> {
        logged(KmsOperation::Decrypt, self.decrypt(wrapped, context))
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
