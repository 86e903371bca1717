//! The stand-in's HTTP side: KMS's JSON protocol (`POST /`, `X-Amz-Target:
//! TrentService.<Operation>`, `application/x-amz-json-1.1`), errors as `{"__type", "message"}`.
//!
//! Requests are not authenticated: the SigV4 signature the SDK sends is not checked (the
//! stand-in has no IAM). What it guards is the key policy on attestation.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

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

async fn route(
    kms: Arc<LocalKms>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() == Method::GET && request.uri().path() == "/healthz" {
        return Ok(reply(200, &json!({"status": "ok"})));
    }
    if request.method() != Method::POST || request.uri().path() != "/" {
        return Ok(error(&KmsError {
            kind: "UnknownOperationException",
            message: "KMS requests are POST /".into(),
            status: 404,
        }));
    }
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("TrentService."))
        .map(str::to_string);
    let Some(operation) = target else {
        return Ok(error(&KmsError {
            kind: "UnknownOperationException",
            message: "missing X-Amz-Target: TrentService.<Operation>".into(),
            status: 400,
        }));
    };
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(error(&KmsError {
                kind: "SerializationException",
                message: format!("the request body is unreadable or larger than {MAX_BODY} bytes"),
                status: 413,
            }));
        }
    };
    let parsed: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return Ok(error(&KmsError {
                    kind: "SerializationException",
                    message: format!("the request body is not JSON: {e}"),
                    status: 400,
                }));
            }
        }
    };
    // Key operations touch files and RSA: keep them off the async threads.
    let op = operation.clone();
    let result = tokio::task::spawn_blocking(move || kms.handle(&op, &parsed))
        .await
        .unwrap_or_else(|_| {
            Err(KmsError {
                kind: "KMSInternalException",
                message: "the request handler failed".into(),
                status: 500,
            })
        });
    Ok(match result {
        Ok(v) => {
            debug!(%operation, "ok");
            reply(200, &v)
        }
        Err(e) => {
            info!(%operation, error = %e, "refused");
            error(&e)
        }
    })
}

/// Serves `kms` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    kms: Arc<LocalKms>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => {
                info!("shutting down");
                return Ok(());
            }
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let kms = kms.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| route(kms.clone(), req));
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        debug!(error = %e, "http connection ended");
                    }
                });
            }
        }
    }
}
