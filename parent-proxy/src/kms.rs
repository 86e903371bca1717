//! KMS for the enclave, without ever holding what KMS tells it (ADR 0014).
//!
//! The enclave connects to the proxy's KMS channel (vsock in production, the enclave dialling
//! CID 3; a Unix or TCP socket in simulated mode) and sends [`ParentRequest`]s in frames:
//!
//! - `SignKms`: the proxy signs the enclave's KMS request with AWS SigV4 (`aws-sigv4`), using the
//!   instance role's credentials from the SDK's default chain, over the body hash the enclave
//!   sent. It answers the signature headers; it never sees the body.
//! - `OpenTunnel`: the proxy connects to KMS's HTTPS endpoint for the key's region (or the
//!   `--kms-tunnel-to` override: the local stand-in in simulated mode), answers `TunnelOpen`, and
//!   from then on copies bytes both ways. The enclave's TLS runs inside: the proxy can cut the
//!   tunnel, not read or answer in KMS's place.
//!
//! Both name the enclave's KMS key; a proxy configured for another key refuses.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use host::Stream;
use host::frame::{self, ReadError};
use protocol::KmsKeyArn;
use protocol::parent::{KmsOperation, ParentErrorCode, ParentRequest, ParentResponse, kms_http};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

/// How long fetching credentials or connecting to KMS may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// Which key the proxy serves and where its tunnel leads.
#[derive(Debug, Clone)]
pub struct KmsSettings {
    /// The KMS key (id or ARN) of this node.
    pub key_id: String,
    /// Where the tunnel connects instead of `kms.<region>.amazonaws.com:443` (the local
    /// stand-in's HTTPS port in simulated mode).
    pub tunnel_to: Option<String>,
    /// The region for the credential chain (default: the SDK's region chain).
    pub region: Option<String>,
}

/// The refusal to start when the system trust store holds no CA certificate and the KMS
/// channel leads to AWS: the credential chain's HTTPS calls (instance metadata, STS) could
/// verify no server.
pub const NO_CA_CERTIFICATES: &str = "no_ca_certificates: the system trust store holds no CA \
     certificate (install Debian's ca-certificates, or point SSL_CERT_FILE at a bundle): the \
     KMS channel cannot verify AWS's endpoints";

/// The SDK's default credential chain (environment, profile, web identity, container, instance
/// metadata), the instance role's credentials on AWS. Refused ([`NO_CA_CERTIFICATES`]) when
/// the channel leads to AWS and the system trust store is empty, rather than failing on every
/// call later (or, in a debug build, the HTTP client panicking when it is built). With
/// `--kms-tunnel-to` set (simulated mode's local stand-in; the KMS TLS itself ends inside the
/// enclave, which has its own roots) the chain is built with no trust anchors, so any HTTPS
/// call it makes fails as unverified.
pub async fn credentials(
    settings: &KmsSettings,
) -> Result<Option<SharedCredentialsProvider>, String> {
    let roots = rustls_native_certs::load_native_certs();
    for e in &roots.errors {
        warn!(error = %e, "a CA certificate of the system trust store could not be read");
    }
    let has_roots = !roots.certs.is_empty();
    if !has_roots && settings.tunnel_to.is_none() {
        return Err(NO_CA_CERTIFICATES.into());
    }
    // An HTTPS client for the credential chain's own calls (instance metadata, STS): rustls
    // with ring, as everywhere on the host side.
    let mut http = aws_smithy_http_client::Builder::new().tls_provider(
        aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ),
    );
    if !has_roots {
        warn!(
            "no CA certificate in the system trust store: the credential chain's HTTPS calls will fail"
        );
        let empty = aws_smithy_http_client::tls::TlsContext::builder()
            .with_trust_store(
                aws_smithy_http_client::tls::TrustStore::empty().with_native_roots(false),
            )
            .build()
            .map_err(|e| format!("cannot build the credential chain's TLS context: {e}"))?;
        http = http.tls_context(empty);
    }
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).http_client(http.build_https());
    if let Some(region) = &settings.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    Ok(loader.load().await.credentials_provider())
}

/// Signs and tunnels for the enclave.
pub struct KmsGateway {
    credentials: Option<SharedCredentialsProvider>,
    settings: KmsSettings,
}

impl std::fmt::Debug for KmsGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsGateway")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn failure(code: ParentErrorCode, message: impl Into<String>) -> ParentResponse {
    ParentResponse::Error {
        code,
        message: message.into(),
    }
}

impl KmsGateway {
    /// A gateway signing with `credentials` (none: every signature is refused as unavailable).
    pub fn new(credentials: Option<SharedCredentialsProvider>, settings: KmsSettings) -> Self {
        Self {
            credentials,
            settings,
        }
    }

    /// Refuses a key other than the configured one.
    fn check_key(&self, request: &ParentRequest) -> Result<(), ParentResponse> {
        if let Err(e) = request.check() {
            return Err(failure(ParentErrorCode::BadRequest, e));
        }
        let key = request.key();
        if !key.is_named_by(&self.settings.key_id) {
            let message = format!(
                "the enclave names KMS key {key}; this proxy serves {} (--kms-key-id)",
                self.settings.key_id
            );
            warn!(operation = request.operation(), %message, "KMS request refused");
            return Err(failure(ParentErrorCode::NotConfigured, message));
        }
        Ok(())
    }

    /// Answers a `SignKms` request: the SigV4 headers for the enclave's request.
    pub async fn sign(
        &self,
        key: &KmsKeyArn,
        operation: KmsOperation,
        body_sha256: &[u8],
    ) -> ParentResponse {
        let Some(provider) = &self.credentials else {
            return failure(
                ParentErrorCode::Unavailable,
                "the proxy has no AWS credentials",
            );
        };
        let credentials =
            match tokio::time::timeout(UPSTREAM_TIMEOUT, provider.provide_credentials()).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    return failure(
                        ParentErrorCode::Unavailable,
                        format!("no AWS credentials: {e}"),
                    );
                }
                Err(_) => {
                    return failure(
                        ParentErrorCode::Unavailable,
                        "fetching AWS credentials timed out",
                    );
                }
            };
        match sign_request(&credentials, key, operation, body_sha256, SystemTime::now()) {
            Ok(headers) => {
                info!(%operation, key = %key, "KMS request signed");
                ParentResponse::Signed { headers }
            }
            Err(e) => failure(ParentErrorCode::BadRequest, e),
        }
    }

    /// Where the tunnel for `key` connects.
    pub fn tunnel_target(&self, key: &KmsKeyArn) -> String {
        self.settings
            .tunnel_to
            .clone()
            .unwrap_or_else(|| format!("{}:443", key.kms_host()))
    }
}

/// The SigV4 headers of the enclave's KMS request (the one `kms_http` describes) at `time`.
pub fn sign_request(
    credentials: &aws_credential_types::Credentials,
    key: &KmsKeyArn,
    operation: KmsOperation,
    body_sha256: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(key.region())
        .name("kms")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign: {e}"))?
        .into();
    let target = format!("{}{}", kms_http::TARGET_PREFIX, operation.name());
    let headers = [
        ("content-type", kms_http::CONTENT_TYPE),
        ("x-amz-target", target.as_str()),
    ];
    let uri = format!("https://{}/", key.kms_host());
    let hash: String = body_sha256.iter().map(|b| format!("{b:02x}")).collect();
    let signable = SignableRequest::new(
        "POST",
        uri,
        headers.into_iter(),
        SignableBody::Precomputed(hash),
    )
    .map_err(|e| format!("cannot sign: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("cannot sign: {e}"))?
        .into_parts();
    let (headers, _) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name().to_ascii_lowercase(), h.value().to_string()))
        .collect())
}

/// The KMS channel's listening socket: vsock in production (the enclave reaches it at CID 3),
/// a Unix or TCP socket in simulated mode.
pub type KmsListener = host::Listener;

/// Largest request payload the channel reads: no request comes near it.
const MAX_REQUEST_LEN: usize = 16 * 1024;

/// Serves the KMS channel: each connection carries request frames, answered in order, until a
/// tunnel takes the connection over.
pub async fn serve(listener: KmsListener, gateway: Arc<KmsGateway>) {
    host::serve::accept_loop(&listener, std::future::pending(), |stream| {
        let gateway = gateway.clone();
        async move {
            if let Err(e) = serve_connection(stream, &gateway).await {
                debug!(error = %e, "kms channel connection closed");
            }
        }
    })
    .await;
}

async fn serve_connection(mut stream: Stream, gateway: &KmsGateway) -> io::Result<()> {
    loop {
        let request = match frame::read_frame(&mut stream, MAX_REQUEST_LEN).await {
            Ok(None) => return Ok(()),
            Ok(Some(request)) => match protocol::decode_frame::<ParentRequest>(&request) {
                Ok(request) => request,
                Err(e) => {
                    let refusal = failure(ParentErrorCode::BadRequest, e.to_string());
                    frame::write_message(&mut stream, &refusal).await?;
                    continue;
                }
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
                    format!("a {len}-byte request is larger than any KMS channel request"),
                );
                return frame::write_message(&mut stream, &refusal).await;
            }
        };
        if let Err(refusal) = gateway.check_key(&request) {
            frame::write_message(&mut stream, &refusal).await?;
            continue;
        }
        match request {
            ParentRequest::SignKms {
                key,
                operation,
                body_sha256,
            } => {
                let answer = gateway.sign(&key, operation, &body_sha256).await;
                frame::write_message(&mut stream, &answer).await?;
            }
            ParentRequest::OpenTunnel { key } => {
                let target = gateway.tunnel_target(&key);
                let upstream =
                    match tokio::time::timeout(UPSTREAM_TIMEOUT, TcpStream::connect(&target)).await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            let message = format!("cannot reach KMS at {target}: {e}");
                            warn!(%message, "KMS tunnel refused");
                            let refusal = failure(ParentErrorCode::Unavailable, message);
                            return frame::write_message(&mut stream, &refusal).await;
                        }
                        Err(_) => {
                            let message = format!("connecting to KMS at {target} timed out");
                            let refusal = failure(ParentErrorCode::Unavailable, message);
                            return frame::write_message(&mut stream, &refusal).await;
                        }
                    };
                let _ = upstream.set_nodelay(true);
                frame::write_message(&mut stream, &ParentResponse::TunnelOpen).await?;
                let mut upstream = upstream;
                let copied = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
                debug!(%target, ?copied, "KMS tunnel closed");
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The proxy's signature is AWS's own algorithm: the same request signed by the SDK's
    /// signer over the full request (body and all) gives the same headers.
    #[test]
    fn the_signature_covers_the_enclaves_body_hash_and_fixed_headers() {
        use sha2::Digest;
        let credentials = aws_credential_types::Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            Some("token".into()),
            None,
            "test",
        );
        let key = KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:key/k").unwrap();
        let body = br#"{"KeyId":"x"}"#;
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let headers = sign_request(
            &credentials,
            &key,
            KmsOperation::Decrypt,
            &sha2::Sha256::digest(body),
            time,
        )
        .unwrap();
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        for name in &names {
            assert!(kms_http::SIGNED_HEADERS.contains(name), "{name}");
        }
        let auth = &headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .unwrap()
            .1;
        assert!(auth.contains("/eu-west-1/kms/aws4_request"), "{auth}");
        assert!(
            auth.contains(
                "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
            ),
            "{auth}"
        );

        // The same request, whole, through the signer's own request type.
        let identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name("kms")
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let whole = SignableRequest::new(
            "POST",
            "https://kms.eu-west-1.amazonaws.com/",
            [
                ("content-type", kms_http::CONTENT_TYPE),
                ("x-amz-target", "TrentService.Decrypt"),
            ]
            .into_iter(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(whole, &params).unwrap().into_parts();
        let expected: Vec<(String, String)> = instructions
            .into_parts()
            .0
            .into_iter()
            .map(|h| (h.name().to_string(), h.value().to_string()))
            .collect();
        assert_eq!(headers, expected);

        // Another body, another signature.
        let other = sign_request(
            &credentials,
            &key,
            KmsOperation::Decrypt,
            &sha2::Sha256::digest(b"{}"),
            time,
        )
        .unwrap();
        assert_ne!(headers, other);
    }
}
