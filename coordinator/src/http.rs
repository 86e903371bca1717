//! The HTTP server: routes, body limits, JSON errors with stable codes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use host::Listener;
use host::body::{BodyError, DRAIN_FACTOR, read_body};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use crate::api::{
    AUTH_SCHEME, ApiError, AuditPage, AuditRecordJson, AuditVerification, ClusterStatus,
    CredentialList, ErrorCode, Hex, KeyList,
};
use crate::auth::{self, Caller, Signed};
use crate::service::{Coordinator, StoredResponse};

/// The OpenAPI document describing this API (also served at `/openapi.json`).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// How long a client may take to send a request's head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's body, from its head on: a call held open
/// does not outlive its credential, its timestamp or the memory of its nonce.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Largest request body accepted by default.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// Every route: (method, path pattern, name for metrics).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/cluster"),
    ("POST", "/v1/cluster/admins"),
    ("POST", "/v1/cluster/images"),
    ("POST", "/v1/cluster/roster"),
    ("POST", "/v1/cluster/roster/prepare"),
    ("POST", "/v1/cluster/roster/move"),
    ("POST", "/v1/cluster/roster/commit"),
    ("POST", "/v1/genesis"),
    ("POST", "/v1/recover"),
    ("POST", "/v1/nodes/{node}/enroll"),
    ("POST", "/v1/nodes/{node}/attest"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("POST", "/v1/keys/import"),
    ("GET", "/v1/keys/{key_id}"),
    ("GET", "/v1/keys/{key_id}/address"),
    ("GET", "/v1/keys/{key_id}/backups"),
    ("POST", "/v1/keys/{key_id}/reshare"),
    ("POST", "/v1/transactions"),
    ("POST", "/v1/transactions/assemble"),
    ("POST", "/v1/signatures"),
    ("GET", "/v1/signatures/{idempotency_key}"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/audit/verify"),
    ("GET", "/v1/credentials"),
    ("POST", "/v1/credentials"),
    ("POST", "/v1/credentials/{credential}/revoke"),
];

type Body = Full<Bytes>;

fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn error(e: &ApiError) -> Response<Body> {
    json(e.code.status(), &e.body())
}

fn text(status: u16, content_type: &str, body: String) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Matches a path against a pattern with `{param}` segments; returns the parameter.
fn matches(pattern: &str, path: &str) -> Option<Option<String>> {
    let p: Vec<&str> = pattern.split('/').collect();
    let a: Vec<&str> = path.split('/').collect();
    if p.len() != a.len() {
        return None;
    }
    let mut param = None;
    for (x, y) in p.iter().zip(&a) {
        if x.starts_with('{') {
            if y.is_empty() {
                return None;
            }
            param = Some(y.to_string());
        } else if x != y {
            return None;
        }
    }
    Some(param)
}

/// The methods `path` is served with, in route order.
fn allowed(path: &str) -> Vec<&'static str> {
    ROUTES
        .iter()
        .filter(|(_, pattern)| matches(pattern, path).is_some())
        .map(|(m, _)| *m)
        .collect()
}

/// Finds the route of a request: Ok((pattern, param)), or the error for an unknown path or a
/// known path with another method.
fn route(method: &Method, path: &str) -> Result<(&'static str, Option<String>), ApiError> {
    let mut path_known = false;
    for (m, pattern) in ROUTES {
        if let Some(param) = matches(pattern, path) {
            path_known = true;
            if *m == method.as_str() {
                return Ok((pattern, param));
            }
        }
    }
    Err(if path_known {
        ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed on {path}"),
        )
    } else {
        ApiError::new(ErrorCode::NotFound, format!("no route {path}"))
    })
}

/// Reads a JSON request's body (its content type checked first). A POST without a body (a
/// revocation) needs no content type.
async fn read_json_body(
    headers: &http::HeaderMap,
    body: Incoming,
    max_body: usize,
) -> Result<Bytes, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE);
    if content_type.is_none() && hyper::body::Body::is_end_stream(&body) {
        return Ok(Bytes::new());
    }
    let content_type = content_type.and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as application/json",
        ));
    }
    // A body somewhat over the limit is read and dropped, so that the client, still sending,
    // gets the 413 instead of a broken connection; a far larger one is refused at once.
    let drain_limit = max_body.saturating_mul(DRAIN_FACTOR);
    tokio::time::timeout(BODY_READ_TIMEOUT, read_body(body, max_body, drain_limit))
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the body did not arrive within {} s",
                    BODY_READ_TIMEOUT.as_secs()
                ),
            )
        })?
        .map_err(|e| match e {
            BodyError::TooLarge => ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the body exceeds {max_body} bytes"),
            ),
            BodyError::Unreadable(e) => ApiError::new(
                ErrorCode::MalformedRequest,
                format!("cannot read the body: {e}"),
            ),
        })
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::MalformedRequest, format!("bad JSON: {e}")))
}

/// The caller of a route that needs `needed` (checked before the body is read, then with it),
/// and the body of a POST. A public route has no caller and reads no body.
async fn authenticate(
    c: &Coordinator,
    parts: &http::request::Parts,
    body: Incoming,
    needed: Option<crate::api::Role>,
    max_body: usize,
) -> Result<(Option<Caller>, Bytes), ApiError> {
    let Some(needed) = needed else {
        return Ok((None, Bytes::new()));
    };
    let pending = auth::precheck(&parts.headers, crate::service::unix_now())?;
    let idem = idempotency_key(&parts.headers)?;
    let body = if parts.method == Method::POST {
        read_json_body(&parts.headers, body, max_body).await?
    } else {
        Bytes::new()
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let signed = Signed {
        method: parts.method.as_str(),
        path_and_query,
        idempotency_key: idem.as_deref(),
        body: &body,
    };
    let caller = auth::verify(c, pending, signed, needed).await?;
    Ok((Some(caller), body))
}

fn query_u64(query: Option<&str>, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(q) = query else { return Ok(None) };
    for pair in q.split('&') {
        if let Some((k, v)) = pair.split_once('=')
            && k == name
        {
            return v.parse().map(Some).map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("query parameter {name} is not a number"),
                )
            });
        }
    }
    Ok(None)
}

/// A query parameter, percent-decoded.
fn query_str(query: Option<&str>, name: &str) -> Result<Option<String>, ApiError> {
    let Some(q) = query else { return Ok(None) };
    for pair in q.split('&') {
        if let Some((k, v)) = pair.split_once('=')
            && k == name
        {
            return percent_decode(v).map(Some).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("query parameter {name} is not valid percent-encoded UTF-8"),
                )
            });
        }
    }
    Ok(None)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn stored(r: StoredResponse) -> Response<Body> {
    json(r.status, &r.body)
}

/// Runs a request's work as its own task: a client that disconnects (or times out) does not
/// cancel a signing session half-way; the result is recorded and a resubmission gets it.
async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(work)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("request task: {e}")))?
}

/// Verifies the audit chain page by page, one store call per page, so that a long log does not
/// hold the store while signing requests wait.
async fn verify_audit(c: &Coordinator) -> Result<Result<u64, crate::audit::BrokenLink>, ApiError> {
    let mut prev = (0u64, [0u8; 32]);
    loop {
        let after = prev.0;
        let page = c.db(move |s| s.audit_page(after, 500)).await?;
        if page.is_empty() {
            return Ok(Ok(prev.0));
        }
        match crate::audit::verify_chain(&page, prev) {
            Ok(last) => prev = last,
            Err(broken) => return Ok(Err(broken)),
        }
    }
}

async fn handle(
    c: Arc<Coordinator>,
    request: Request<Incoming>,
    max_body: usize,
) -> (String, Response<Body>) {
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let (pattern, param) = match route(&method, &path) {
        Ok(r) => r,
        Err(e) => {
            let mut response = error(&e);
            if e.code == ErrorCode::MethodNotAllowed {
                // RFC 9110 section 15.5.6: a 405 names the methods the resource allows.
                if let Ok(v) = header::HeaderValue::from_str(&allowed(&path).join(", ")) {
                    response.headers_mut().insert(header::ALLOW, v);
                }
            }
            return ("unknown".into(), response);
        }
    };
    let name = format!("{method} {pattern}");
    let needed = auth::required_role(method.as_str(), pattern);
    let result: Result<Response<Body>, ApiError> = async {
        let (caller, body) = authenticate(&c, &parts, body, needed, max_body).await?;
        // Every route past here but the public ones has a caller.
        let who = caller.clone().map(|c| c.credential).unwrap_or_default();
        Ok(match (method.as_str(), pattern) {
            ("GET", "/healthz") => json(200, &serde_json::json!({"status": "ok"})),
            ("GET", "/readyz") => {
                // The broker is detail: HTTP serves with it down (issue 21).
                let broker = c.broker_readiness().await;
                match c.ready().await {
                    Ok(()) => json(
                        200,
                        &serde_json::json!({"status": "ready", "broker": broker}),
                    ),
                    Err(why) => json(
                        503,
                        &serde_json::json!({"status": "not_ready", "reason": why, "broker": broker}),
                    ),
                }
            }
            ("GET", "/metrics") => text(200, "text/plain; version=0.0.4", c.render_metrics().await),
            ("GET", "/openapi.json") => text(200, "application/json", OPENAPI.to_string()),
            ("GET", "/v1/cluster") => json(
                200,
                &ClusterStatus {
                    genesis: c.genesis_status().await?,
                    nodes: c.nodes().status(),
                    pools: c.pool_levels().await?,
                    admins: c.admins_status().await?,
                    images: c.images_status().await?,
                    roster: c.roster_status().await?,
                },
            ),
            ("POST", "/v1/cluster/admins") => {
                let body = parse_json(&body)?;
                let c = c.clone();
                json(
                    200,
                    &detached(async move { c.set_admins(body, who).await }).await?,
                )
            }
            ("POST", "/v1/cluster/images") => {
                let body = parse_json(&body)?;
                let c = c.clone();
                json(
                    200,
                    &detached(async move { c.accept_images(body, who).await }).await?,
                )
            }
            ("POST", "/v1/cluster/roster") => {
                let body = parse_json(&body)?;
                let c = c.clone();
                json(
                    200,
                    &detached(async move { c.propose_roster(body, who).await }).await?,
                )
            }
            ("POST", "/v1/cluster/roster/prepare") => {
                let body = parse_json(&body)?;
                let c = c.clone();
                json(
                    200,
                    &detached(async move { c.prepare_roster(body, who).await }).await?,
                )
            }
            ("POST", "/v1/cluster/roster/move") => {
                let body = parse_json(&body)?;
                let c = c.clone();
                json(
                    200,
                    &detached(async move { c.move_roster(body, who).await }).await?,
                )
            }
            ("POST", "/v1/cluster/roster/commit") => {
                let body = parse_json(&body)?;
                let c = c.clone();
                json(
                    200,
                    &detached(async move { c.commit_roster(body, who).await }).await?,
                )
            }
            ("POST", "/v1/genesis") => {
                let body = parse_json(&body)?;
                let c = c.clone();
                json(
                    202,
                    &detached(async move { c.genesis(body, who).await }).await?,
                )
            }
            ("POST", "/v1/recover") => {
                let body = parse_json(&body)?;
                let c = c.clone();
                json(
                    200,
                    &detached(async move { c.recover(body, who).await }).await?,
                )
            }
            ("POST", "/v1/nodes/{node}/enroll") => {
                let body = parse_json(&body)?;
                json(
                    200,
                    &c.enroll_node(&param.unwrap_or_default(), body, who).await?,
                )
            }
            ("POST", "/v1/nodes/{node}/attest") => {
                let body = parse_json(&body)?;
                json(200, &c.attest_node(&param.unwrap_or_default(), body).await?)
            }
            ("GET", "/v1/keys") => json(
                200,
                &KeyList {
                    keys: c.keys().await?,
                },
            ),
            ("POST", "/v1/keys") => {
                let body = parse_json(&body)?;
                let c = c.clone();
                json(
                    201,
                    &detached(async move { c.create_key(body, who).await }).await?,
                )
            }
            ("POST", "/v1/keys/import") => {
                let body = parse_json(&body)?;
                let c = c.clone();
                json(
                    201,
                    &detached(async move { c.import_key(body, who).await }).await?,
                )
            }
            ("GET", "/v1/keys/{key_id}") => json(200, &c.key(&param.unwrap_or_default()).await?),
            ("POST", "/v1/keys/{key_id}/reshare") => {
                let body = parse_json(&body)?;
                let c = c.clone();
                let key_id = param.unwrap_or_default();
                json(
                    200,
                    &detached(async move { c.reshare_key(key_id, body, who).await }).await?,
                )
            }
            ("GET", "/v1/keys/{key_id}/address") => {
                address(&c, &param.unwrap_or_default(), query.as_deref()).await?
            }
            ("GET", "/v1/keys/{key_id}/backups") => {
                json(200, &c.key_backups(&param.unwrap_or_default()).await?)
            }
            ("POST", "/v1/transactions") => {
                let body = parse_json(&body)?;
                json(200, &c.prepare(body).await?)
            }
            ("POST", "/v1/transactions/assemble") => {
                let body = parse_json(&body)?;
                json(200, &c.assemble(body).await?)
            }
            ("POST", "/v1/signatures") => {
                let idem = idempotency_key(&parts.headers)?;
                let body = parse_json(&body)?;
                let c = c.clone();
                stored(detached(async move { c.sign(body, idem, who).await }).await?)
            }
            ("GET", "/v1/signatures/{idempotency_key}") => {
                stored(c.signature_record(&param.unwrap_or_default()).await?)
            }
            ("GET", "/v1/audit") => audit_page(&c, query.as_deref()).await?,
            ("GET", "/v1/audit/verify") => json(200, &audit_verification(&c).await?),
            ("GET", "/v1/credentials") => json(
                200,
                &CredentialList {
                    credentials: c.credentials().await?,
                },
            ),
            ("POST", "/v1/credentials") => {
                let body = parse_json(&body)?;
                let by = caller.ok_or_else(unauthenticated)?;
                json(201, &c.register_credential(body, &by).await?)
            }
            ("POST", "/v1/credentials/{credential}/revoke") => {
                let by = caller.ok_or_else(unauthenticated)?;
                json(
                    200,
                    &c.revoke_credential(&param.unwrap_or_default(), &by).await?,
                )
            }
            _ => {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!("no route {path}"),
                ));
            }
        })
    }
    .await;
    (name, result.unwrap_or_else(|e| logged_error(&e)))
}

fn unauthenticated() -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, "this route needs a credential")
}

/// The error's answer, logged as a failure (5xx) or a refusal. A 401 names the scheme that
/// authenticates (RFC 9110 section 11.6.1).
fn logged_error(e: &ApiError) -> Response<Body> {
    if e.code.status() >= 500 {
        warn!(
            code = e.code.as_str(),
            message = e.message,
            "request failed"
        );
    } else {
        debug!(
            code = e.code.as_str(),
            message = e.message,
            "request refused"
        );
    }
    let mut response = error(e);
    if e.code.status() == 401 {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static(AUTH_SCHEME),
        );
    }
    response
}

/// `GET /v1/keys/{key_id}/address?chain=…&network=…&path=…`.
async fn address(
    c: &Coordinator,
    key_id: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let chain = query_str(query, "chain")?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            "query parameter chain is required",
        )
    })?;
    let network = query_str(query, "network")?;
    let path = query_str(query, "path")?;
    let answer = c
        .address(key_id, &chain, network.as_deref(), path.as_deref())
        .await?;
    Ok(json(200, &answer))
}

/// The `Idempotency-Key` header, if any.
fn idempotency_key(headers: &http::HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str().map(str::to_string).map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    "the Idempotency-Key header is not ASCII",
                )
            })
        })
        .transpose()
}

/// `GET /v1/audit?after=…&limit=…`: one page of the audit log.
async fn audit_page(c: &Coordinator, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let after = query_u64(query, "after")?.unwrap_or(0);
    let limit = query_u64(query, "limit")?.unwrap_or(100).clamp(1, 1000) as u32;
    let records = c.db(move |s| s.audit_page(after, limit)).await?;
    let next_after = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    let records = records
        .into_iter()
        .map(|r| AuditRecordJson {
            seq: r.seq,
            time: r.time,
            entry: r.entry,
            prev_hash: Hex(r.prev_hash.to_vec()),
            hash: Hex(r.hash.to_vec()),
        })
        .collect();
    Ok(json(
        200,
        &AuditPage {
            records,
            next_after,
        },
    ))
}

/// `GET /v1/audit/verify`: the whole chain checked.
async fn audit_verification(c: &Coordinator) -> Result<AuditVerification, ApiError> {
    Ok(match verify_audit(c).await? {
        Ok(n) => AuditVerification {
            ok: true,
            records: n,
            broken_at: None,
            reason: None,
        },
        Err(b) => AuditVerification {
            ok: false,
            records: b.seq.saturating_sub(1),
            broken_at: Some(b.seq),
            reason: Some(b.reason),
        },
    })
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    coordinator: Arc<Coordinator>,
    listener: &Listener,
    max_body: usize,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let answer = move |request: Request<Incoming>| {
        let c = coordinator.clone();
        async move {
            let (name, response) = handle(c.clone(), request, max_body).await;
            c.metrics().http(&name, response.status().as_u16());
            response
        }
    };
    host::serve::serve_http(listener, Some(HEADER_READ_TIMEOUT), shutdown, answer).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_methods() {
        assert_eq!(route(&Method::GET, "/v1/keys").unwrap().0, "/v1/keys");
        assert_eq!(
            route(&Method::GET, "/v1/keys/btc").unwrap(),
            ("/v1/keys/{key_id}", Some("btc".into()))
        );
        assert_eq!(
            route(&Method::DELETE, "/v1/keys").unwrap_err().code,
            ErrorCode::MethodNotAllowed
        );
        assert_eq!(allowed("/v1/keys"), ["GET", "POST"]);
        assert_eq!(allowed("/v1/signatures/abc"), ["GET"]);
        assert!(allowed("/v2/keys").is_empty());
        assert_eq!(
            route(&Method::GET, "/v2/keys").unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            route(&Method::GET, "/v1/keys/").unwrap_err().code,
            ErrorCode::NotFound
        );
    }

    #[test]
    fn the_openapi_document_describes_every_route_and_code() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for (method, path) in ROUTES {
            assert!(
                doc["paths"][path][method.to_lowercase()].is_object(),
                "{method} {path} is not in openapi.json"
            );
        }
        // Each operation names the role it needs, as the server checks it; the public ones
        // need no credential.
        for (method, path) in ROUTES {
            let op = &doc["paths"][path][method.to_lowercase()];
            match auth::required_role(method, path) {
                Some(role) => {
                    assert_eq!(op["x-cohort-role"], role.as_str(), "{method} {path}");
                    for status in ["401", "403"] {
                        assert!(
                            op["responses"][status].is_object(),
                            "{method} {path} does not document {status}"
                        );
                    }
                }
                None => {
                    assert_eq!(op["security"], serde_json::json!([]), "{method} {path}");
                    assert!(op.get("x-cohort-role").is_none(), "{method} {path}");
                }
            }
        }
        let paths = doc["paths"].as_object().unwrap();
        for (path, ops) in paths {
            for method in ops.as_object().unwrap().keys() {
                assert!(
                    ROUTES
                        .iter()
                        .any(|(m, p)| p == path && m.to_lowercase() == *method),
                    "openapi.json documents {method} {path}, which the server does not serve"
                );
            }
        }
        let codes = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
            ["code"]["enum"]
            .as_array()
            .unwrap();
        for c in ErrorCode::ALL {
            assert!(
                codes.iter().any(|v| v == c.as_str()),
                "error code {} is not in openapi.json",
                c.as_str()
            );
        }
    }
}
