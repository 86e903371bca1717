//! KMS on the enclave's behalf.
//!
//! The enclave connects to the proxy's KMS channel (vsock in production, a Unix or TCP socket in
//! simulated mode) and sends [`ParentRequest`]s in frames. The proxy calls KMS with
//! `aws-sdk-kms` — `GenerateDataKey` (AES-256) or `Decrypt` — always with a `Recipient` holding
//! the enclave's attestation document, and relays `CiphertextBlob` and
//! `CiphertextForRecipient`. It never sees a plaintext data key: KMS returns none when a
//! Recipient is given, and the key policy denies calls without one. A plaintext field in an
//! answer would be dropped, never relayed or logged.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kms::Client;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyEncryptionMechanism, RecipientInfo};
use host::Stream;
use host::frame::{self, ReadError};
use protocol::parent::{ParentErrorCode, ParentRequest, ParentResponse};
use serde_bytes::ByteBuf;
use tracing::{debug, info, warn};

/// Where KMS is and which key seals this node's shares.
#[derive(Debug, Clone)]
pub struct KmsSettings {
    /// The KMS key (id or ARN) of this node.
    pub key_id: String,
    /// An endpoint override (the local stand-in: `http://127.0.0.1:PORT`).
    pub endpoint: Option<String>,
    /// The region (default: the SDK's region chain, e.g. `AWS_REGION` or instance metadata).
    pub region: Option<String>,
}

/// Builds the KMS client: the SDK's default credential chain (environment, profile, web
/// identity, container, instance metadata), rustls with ring for HTTPS, bounded time per call.
pub async fn client(settings: &KmsSettings) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(20))
                .build(),
        );
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &settings.endpoint {
        loader = loader.endpoint_url(endpoint.clone());
    }
    Client::new(&loader.load().await)
}

/// Relays enclave requests to KMS.
pub struct KmsRelay {
    client: Client,
    key_id: String,
}

impl std::fmt::Debug for KmsRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsRelay")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn failure(code: ParentErrorCode, message: impl Into<String>) -> ParentResponse {
    ParentResponse::Error {
        code,
        message: message.into(),
    }
}

/// Maps an SDK failure to the code the enclave acts on: refusals are final, everything else
/// (network, throttling, KMS internal errors) is worth retrying.
fn sdk_failure<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &str,
    e: &SdkError<E>,
) -> ParentResponse {
    let code = e.code().unwrap_or_default().to_string();
    let message = e
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| aws_smithy_types::error::display::DisplayErrorContext(e).to_string());
    let kind = match code.as_str() {
        "AccessDeniedException"
        | "ValidationException"
        | "DisabledException"
        | "KMSInvalidStateException" => ParentErrorCode::AccessDenied,
        "InvalidCiphertextException" | "IncorrectKeyException" => {
            ParentErrorCode::InvalidCiphertext
        }
        "NotFoundException" => ParentErrorCode::NotConfigured,
        _ => ParentErrorCode::Unavailable,
    };
    let code = if code.is_empty() { "no answer" } else { &code };
    failure(kind, format!("KMS {operation}: {code}: {message}"))
}

fn recipient(attestation: &ByteBuf) -> RecipientInfo {
    RecipientInfo::builder()
        .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
        .attestation_document(Blob::new(attestation.to_vec()))
        .build()
}

impl KmsRelay {
    /// A relay to `client` for `key_id`.
    pub fn new(client: Client, key_id: String) -> Self {
        Self { client, key_id }
    }

    /// Answers one request.
    pub async fn handle(&self, request: &ParentRequest) -> ParentResponse {
        if let Err(e) = request.check() {
            return failure(ParentErrorCode::BadRequest, e);
        }
        // The key the call names: the enclave's own choice when it made one (its pinned key,
        // which must be the one this proxy serves), else the configured key.
        let named = match request {
            ParentRequest::GenerateDataKey { key_id, .. }
            | ParentRequest::Decrypt { key_id, .. } => key_id.as_ref(),
        };
        if let Some(arn) = named
            && !arn.is_named_by(&self.key_id)
        {
            let message = format!(
                "the enclave names KMS key {arn}; this proxy serves {} (--kms-key-id)",
                self.key_id
            );
            warn!(operation = request.operation(), %message, "KMS call refused");
            return failure(ParentErrorCode::NotConfigured, message);
        }
        let key_id = named.map_or(self.key_id.as_str(), |arn| arn.as_str());
        let response = match request {
            ParentRequest::GenerateDataKey { attestation, .. } => {
                match self
                    .client
                    .generate_data_key()
                    .key_id(key_id)
                    .key_spec(DataKeySpec::Aes256)
                    .recipient(recipient(attestation))
                    .send()
                    .await
                {
                    Ok(out) => match (out.ciphertext_blob(), out.ciphertext_for_recipient()) {
                        (Some(blob), Some(envelope)) => ParentResponse::DataKey {
                            key_id: out.key_id().unwrap_or(key_id).to_string(),
                            ciphertext_blob: ByteBuf::from(blob.as_ref().to_vec()),
                            ciphertext_for_recipient: ByteBuf::from(envelope.as_ref().to_vec()),
                        },
                        _ => failure(
                            ParentErrorCode::Unavailable,
                            "KMS GenerateDataKey answered without CiphertextBlob or CiphertextForRecipient",
                        ),
                    },
                    Err(e) => sdk_failure("GenerateDataKey", &e),
                }
            }
            ParentRequest::Decrypt {
                ciphertext_blob,
                attestation,
                ..
            } => {
                match self
                    .client
                    .decrypt()
                    .key_id(key_id)
                    .ciphertext_blob(Blob::new(ciphertext_blob.to_vec()))
                    .recipient(recipient(attestation))
                    .send()
                    .await
                {
                    Ok(out) => match out.ciphertext_for_recipient() {
                        Some(envelope) => ParentResponse::Decrypted {
                            key_id: out.key_id().unwrap_or(key_id).to_string(),
                            ciphertext_for_recipient: ByteBuf::from(envelope.as_ref().to_vec()),
                        },
                        None => failure(
                            ParentErrorCode::Unavailable,
                            "KMS Decrypt answered without CiphertextForRecipient",
                        ),
                    },
                    Err(e) => sdk_failure("Decrypt", &e),
                }
            }
        };
        match &response {
            ParentResponse::Error { code, message } => {
                warn!(operation = request.operation(), %code, message, "KMS call failed")
            }
            _ => info!(operation = request.operation(), key = %key_id, "KMS call served"),
        }
        response
    }
}

/// The KMS channel's listening socket: vsock in production (the enclave reaches it at CID 3),
/// a Unix or TCP socket in simulated mode.
pub type KmsListener = host::Listener;

/// Largest request payload the channel reads: no KMS request comes near it.
const MAX_REQUEST_LEN: usize = 4 * protocol::parent::MAX_PARENT_FIELD_LEN;

/// Serves the KMS channel: each connection carries request frames, answered in order.
pub async fn serve(listener: KmsListener, relay: Arc<KmsRelay>) {
    host::serve::accept_loop(&listener, std::future::pending(), |stream| {
        let relay = relay.clone();
        async move {
            if let Err(e) = serve_connection(stream, &relay).await {
                debug!(error = %e, "kms channel connection closed");
            }
        }
    })
    .await;
}

async fn serve_connection(mut stream: Stream, relay: &KmsRelay) -> io::Result<()> {
    loop {
        let response = match frame::read_frame(&mut stream, MAX_REQUEST_LEN).await {
            Ok(None) => return Ok(()),
            Ok(Some(request)) => match protocol::decode_frame::<ParentRequest>(&request) {
                Ok(request) => relay.handle(&request).await,
                Err(e) => failure(ParentErrorCode::BadRequest, e.to_string()),
            },
            Err(ReadError::Io(e)) => return Err(e),
            // The stream cannot be resynchronised after a bad length: answer, then close.
            Err(e @ ReadError::Frame(_)) => {
                let refusal = failure(ParentErrorCode::BadRequest, e.to_string());
                return frame::write_message(&mut stream, &refusal).await;
            }
            Err(ReadError::OverLimit { len }) => {
                let refusal = failure(
                    ParentErrorCode::BadRequest,
                    format!("a {len}-byte request is larger than any KMS request"),
                );
                return frame::write_message(&mut stream, &refusal).await;
            }
        };
        frame::write_message(&mut stream, &response).await?;
    }
}
