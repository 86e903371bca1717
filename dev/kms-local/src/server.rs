//! The stand-in's HTTP side: KMS's JSON protocol (`POST /`, `X-Amz-Target:
//! TrentService.<Operation>`, `application/x-amz-json-1.1`), errors as `{"__type", "message"}`.
//!
//! Requests are not authenticated: the SigV4 signature is not verified (the stand-in has no
//! IAM). What it guards is the key policy on attestation. On the HTTPS port — the one enclaves
//! reach through their parent's tunnel, as they reach KMS's public endpoint — a request must at
//! least carry a SigV4 `authorization` for service `kms` in the stand-in's region and an
//! `x-amz-date`: that is what shows the parent signed it.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use host::Listener;
use host::body::{DRAIN_FACTOR, read_body};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tracing::{debug, info};

use crate::{KmsError, LocalKms};

/// Largest request body (KMS's own limits are far below).
pub const MAX_BODY: usize = 256 * 1024;

fn reply(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    r
}

fn error(e: &KmsError) -> Response<Full<Bytes>> {
    let mut r = reply(e.status, &json!({"__type": e.kind, "message": e.message}));
    if let Ok(v) = header::HeaderValue::from_str(e.kind) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

/// Checks the SigV4 shape of a request on the HTTPS port (see the module comment).
fn check_signed(kms: &LocalKms, request: &Request<Incoming>) -> Result<(), KmsError> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let authorization = header("authorization");
    let scope = format!("/{}/kms/aws4_request", kms.region());
    let well_formed = authorization.starts_with("AWS4-HMAC-SHA256 Credential=")
        && authorization.contains(&scope)
        && authorization.contains("SignedHeaders=")
        && authorization.contains("Signature=");
    if !well_formed || header("x-amz-date").len() != 16 {
        return Err(KmsError {
            kind: "IncompleteSignatureException",
            message: format!(
                "the request is not signed with SigV4 for kms in {}",
                kms.region()
            ),
            status: 400,
        });
    }
    Ok(())
}

/// The access key id of a SigV4-signed request (`Authorization: AWS4-HMAC-SHA256
/// Credential=AKID/DATE/REGION/kms/aws4_request, ...`); the signature itself is not checked.
fn access_key_id(request: &Request<Incoming>) -> Option<String> {
    let authorization = request.headers().get("authorization")?.to_str().ok()?;
    let credential = authorization.split("Credential=").nth(1)?;
    let id = credential.split('/').next()?;
    (!id.is_empty()).then(|| id.to_string())
}

async fn route(
    kms: Arc<LocalKms>,
    request: Request<Incoming>,
    signed_only: bool,
) -> Response<Full<Bytes>> {
    if signed_only && let Err(e) = check_signed(&kms, &request) {
        info!(error = %e, "refused");
        return error(&e);
    }
    if request.method() == Method::GET && request.uri().path() == "/healthz" {
        return reply(200, &json!({"status": "ok"}));
    }
    if request.method() != Method::POST || request.uri().path() != "/" {
        return error(&KmsError {
            kind: "UnknownOperationException",
            message: "KMS requests are POST /".into(),
            status: 404,
        });
    }
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("TrentService."))
        .map(str::to_string);
    let access_key_id = access_key_id(&request);
    let Some(operation) = target else {
        return error(&KmsError {
            kind: "UnknownOperationException",
            message: "missing X-Amz-Target: TrentService.<Operation>".into(),
            status: 400,
        });
    };
    let body = match read_body(request.into_body(), MAX_BODY, MAX_BODY * DRAIN_FACTOR).await {
        Ok(b) => b,
        Err(_) => {
            return error(&KmsError {
                kind: "SerializationException",
                message: format!("the request body is unreadable or larger than {MAX_BODY} bytes"),
                status: 413,
            });
        }
    };
    let parsed: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error(&KmsError {
                    kind: "SerializationException",
                    message: format!("the request body is not JSON: {e}"),
                    status: 400,
                });
            }
        }
    };
    let caller = match kms.caller(access_key_id.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            info!(%operation, error = %e, "refused");
            return error(&e);
        }
    };
    // Key operations touch files and RSA: keep them off the async threads.
    let op = operation.clone();
    let result = tokio::task::spawn_blocking(move || kms.handle_as(&op, &parsed, &caller))
        .await
        .unwrap_or_else(|_| {
            Err(KmsError {
                kind: "KMSInternalException",
                message: "the request handler failed".into(),
                status: 500,
            })
        });
    match result {
        Ok(v) => {
            debug!(%operation, "ok");
            reply(200, &v)
        }
        Err(e) => {
            info!(%operation, error = %e, "refused");
            error(&e)
        }
    }
}

/// Serves `kms` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: &Listener,
    kms: Arc<LocalKms>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    host::serve::serve_http(listener, None, shutdown, move |request| {
        route(kms.clone(), request, false)
    })
    .await;
    Ok(())
}

/// Serves `kms` over TLS on `listener` (a certificate from the simulated CA for the region's
/// KMS host name) until `shutdown` completes; requests must be signed (see the module comment).
pub async fn serve_tls(
    listener: &Listener,
    kms: Arc<LocalKms>,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    host::serve::serve_https(
        listener,
        tls,
        std::time::Duration::from_secs(10),
        shutdown,
        move |request| route(kms.clone(), request, true),
    )
    .await;
    Ok(())
}

/// The TLS configuration of the HTTPS port: a certificate for `kms.<region>.amazonaws.com`
/// issued now by the simulated CA in `ca_dir`.
pub fn tls_config(
    ca_dir: &std::path::Path,
    region: &str,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca = attestation::sim::SimulatedCa::load(ca_dir)
        .map_err(|e| format!("cannot load the simulated CA in {}: {e}", ca_dir.display()))?;
    let host = format!("kms.{region}.amazonaws.com");
    let (key, chain) = ca
        .issue_tls_server(&host, std::time::Duration::from_secs(30 * 24 * 3600))
        .map_err(|e| format!("cannot issue a certificate for {host}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            chain.into_iter().map(CertificateDer::from).collect(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
        )
        .map_err(|e| format!("cannot use the certificate for {host}: {e}"))?;
    Ok(Arc::new(config))
}
