//! The stand-in's HTTP side: KMS's JSON protocol (`POST /`, `X-Amz-Target:
//! TrentService.<Operation>`, `application/x-amz-json-1.1`), errors as `{"__type", "message"}`.
//!
//! Requests are not authenticated: the SigV4 signature the SDK sends is not checked (the
//! stand-in has no IAM). What it guards is the key policy on attestation.

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

async fn route(kms: Arc<LocalKms>, request: Request<Incoming>) -> Response<Full<Bytes>> {
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
        route(kms.clone(), request)
    })
    .await;
    Ok(())
}
