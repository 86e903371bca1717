//! The proxy's HTTP side: health and the frame relay.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use host::Listener;
use host::body::{BodyError, DRAIN_FACTOR, read_body};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use protocol::{FRAME_HEADER_LEN, MAX_FRAME_LEN};
use serde_json::json;
use tracing::{debug, warn};

use crate::attest::Attestor;
use crate::link::{EnclaveLink, LinkError};

/// What the HTTP handlers share.
pub struct Proxy {
    /// Attestation state of the enclave.
    pub attestor: Arc<Attestor>,
    /// The enclave connection.
    pub link: Arc<EnclaveLink>,
    /// Where sealed blobs are kept.
    pub blobs: Option<crate::blobs::BlobStore>,
    /// The manifest of the blobs confirmed copied off the instance (`crate::backups`).
    pub backup_manifest: Option<std::path::PathBuf>,
}

type Body = Full<Bytes>;

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response<Body> {
    json_response(
        status,
        json!({"error": {"code": code, "message": message.to_string()}}),
    )
}

async fn health(proxy: &Proxy) -> Response<Body> {
    let state = proxy.attestor.state();
    let status = if state.is_attested() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = serde_json::to_value(&state).unwrap_or_else(|_| json!({}));
    body["enclave"] = json!(proxy.link.endpoint().to_string());
    json_response(status, body)
}

async fn relay(proxy: &Proxy, request: Request<Incoming>) -> Response<Body> {
    let state = proxy.attestor.state();
    if !state.is_attested() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "enclave_not_attested",
            state.reason(),
        );
    }
    let limit = FRAME_HEADER_LEN + MAX_FRAME_LEN;
    // A frame somewhat over the limit is read and dropped, so the client gets the 413 (not a
    // connection broken while it was still sending); a far larger one is refused at once.
    let frame = match read_body(request.into_body(), limit, limit * DRAIN_FACTOR).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("a frame is at most {limit} bytes"),
            );
        }
        Err(e @ BodyError::Unreadable(_)) => {
            return error(StatusCode::BAD_REQUEST, "bad_frame", e);
        }
    };
    // Only the length prefix is checked: the proxy relays, it does not interpret.
    let Some((header, payload)) = frame.split_first_chunk::<FRAME_HEADER_LEN>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_frame",
            "shorter than a frame header",
        );
    };
    match protocol::payload_len(*header) {
        Ok(len) if len == payload.len() => {}
        Ok(len) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_frame",
                format!("length prefix says {len} bytes, body has {}", payload.len()),
            );
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_frame", e),
    }
    // Sealed state is the proxy's to hand back: a relayed `restore` could give a restarted
    // enclave part of it (its node key without its genesis and shares) before the proxy's own
    // restore runs.
    let request = protocol::decode_payload::<protocol::EnclaveRequest>(payload);
    if matches!(request, Ok(protocol::EnclaveRequest::Restore { .. })) {
        return error(
            StatusCode::CONFLICT,
            "restore_is_the_proxys",
            "the proxy restores its enclave's sealed state itself; restore is not relayed",
        );
    }
    // An enrolled node is never enrolled again: a second node key would not be the roster's,
    // and storing it would overwrite the one that is (ADR 0013). The enclave refuses another
    // key too once it holds one; this also covers a node whose key is stored but not yet
    // restored.
    if let Some(store) = &proxy.blobs
        && store.has_node_key()
        && matches!(request, Ok(protocol::EnclaveRequest::Enroll { .. }))
    {
        return error(
            StatusCode::CONFLICT,
            "already_enrolled",
            "this node's sealed node key is stored (node-key.blob); it is never replaced",
        );
    }
    match proxy.link.call_frame(&frame).await {
        Ok(reply) => {
            if let Some(store) = &proxy.blobs
                && let Ok(response) = protocol::decode_frame::<protocol::EnclaveResponse>(&reply)
                && let Err(e) = store.keep(&response)
            {
                // The enclave holds the state in memory; losing the blob only matters after a
                // restart. Report it loudly instead of dropping the answer.
                warn!(error = %e, "cannot store a sealed blob");
                return error(StatusCode::INTERNAL_SERVER_ERROR, "blob_storage", e);
            }
            let mut r = Response::new(Full::new(Bytes::from(reply)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/cbor"),
            );
            r
        }
        Err(LinkError::Io(e)) => {
            proxy.link.reset();
            proxy.attestor.connection_lost(e.to_string());
            error(StatusCode::BAD_GATEWAY, "enclave_unreachable", e)
        }
        Err(e @ LinkError::Frame(_)) => error(StatusCode::BAD_GATEWAY, "enclave_unreachable", e),
    }
}

/// `GET /v1/backups`: every blob on this disk, its SHA-256, and whether the backup manifest
/// confirms that content copied off the instance.
async fn backups(proxy: &Proxy) -> Response<Body> {
    let Some(store) = proxy.blobs.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "no_blob_dir",
            "this proxy keeps no blobs (--blob-dir)",
        );
    };
    // Reading and hashing every blob is file work: off the async threads.
    let manifest = proxy.backup_manifest.clone();
    let answer =
        tokio::task::spawn_blocking(move || crate::backups::backups(&store, manifest.as_deref()))
            .await;
    match answer {
        Ok(Ok(b)) => json_response(
            StatusCode::OK,
            serde_json::to_value(&b).unwrap_or_else(|_| json!({})),
        ),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "blob_storage", e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
    }
}

async fn route(proxy: Arc<Proxy>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let response = match (request.method(), path.as_str()) {
        (&Method::GET, "/healthz") => health(&proxy).await,
        (&Method::POST, "/v1/enclave") => relay(&proxy, request).await,
        (&Method::GET, "/v1/backups") => backups(&proxy).await,
        (_, "/healthz" | "/v1/enclave" | "/v1/backups") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed",
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route {path}"),
        ),
    };
    debug!(%path, status = response.status().as_u16(), "http");
    response
}

/// Serves HTTP on `listener` until `shutdown` completes.
pub async fn serve(
    listener: &Listener,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    host::serve::serve_http(listener, None, shutdown, move |request| {
        route(proxy.clone(), request)
    })
    .await;
    Ok(())
}
