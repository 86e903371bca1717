//! Small HTTP clients: for parent proxies (enclave frames) and for the coordinator's JSON API.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use protocol::{EnclaveRequest, EnclaveResponse};

/// Largest answer read from a proxy or the coordinator.
pub const MAX_RESPONSE: usize = protocol::MAX_FRAME_LEN + 1024 * 1024;

/// At most this much of an error body is quoted in messages.
const QUOTE: usize = 512;

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(QUOTE)]).into_owned();
    if body.len() > QUOTE {
        format!("{text}...")
    } else {
        text
    }
}

/// Default time limit of one HTTP exchange.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP/1 client with a time limit per request, for `http://` and `https://` URLs. HTTPS
/// trusts the system's roots (`SSL_CERT_FILE` or `SSL_CERT_DIR` name others): the client API
/// behind a TLS load balancer, chains' JSON-RPC endpoints.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

/// TLS settings: rustls with ring, the system's roots, loaded once per process (clients are
/// made per chain RPC call). A root that does not parse is skipped, and a machine without roots
/// gets a client whose HTTPS requests fail with an unknown-issuer error, which names the problem.
fn tls_config() -> rustls::ClientConfig {
    static CONFIG: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
    CONFIG.get_or_init(load_tls_config).clone()
}

fn load_tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        tracing::warn!(
            errors = found.errors.len(),
            "no trusted root certificates found (set SSL_CERT_FILE): HTTPS requests will fail"
        );
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client.
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Self {
            inner: Client::builder(TokioExecutor::new()).build(connector),
            timeout: TIMEOUT,
        }
    }

    /// The same client with another time limit per request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends a request and returns status and body.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut builder = Request::builder().method(method).uri(url);
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        let request = builder
            .body(Full::new(Bytes::from(body)))
            .with_context(|| format!("bad url {url}"))?;
        self.exchange(request, url).await
    }

    /// Sends a prepared request and returns status and body.
    pub async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        url: &str,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let exchange = async {
            let response = self.inner.request(request).await?;
            let status = response.status();
            // Nothing legitimate is larger than a frame: a misbehaving peer cannot exhaust memory.
            let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| anyhow!("{e}"))?
                .to_bytes();
            anyhow::Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| anyhow!("{url}: no answer within {} s", self.timeout.as_secs()))?
            .with_context(|| format!("request to {url} failed"))
    }

    /// GET, returning status and body.
    pub async fn get(&self, url: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        self.send(Method::GET, url, None, Vec::new()).await
    }

    /// Sends `request` to the enclave behind the proxy at `proxy` (base URL).
    pub async fn enclave_call(
        &self,
        proxy: &str,
        request: &EnclaveRequest,
    ) -> anyhow::Result<EnclaveResponse> {
        let frame = protocol::encode_frame(request)?;
        let url = format!("{}/v1/enclave", proxy.trim_end_matches('/'));
        let (status, body) = self
            .send(Method::POST, &url, Some("application/cbor"), frame)
            .await?;
        if status != StatusCode::OK {
            bail!("{url}: {status}: {}", quote(&body));
        }
        protocol::decode_frame(&body).with_context(|| format!("{url}: bad frame in answer"))
    }

    /// Fetches an attestation document with `nonce` through a proxy.
    pub async fn fetch_attestation(&self, proxy: &str, nonce: &[u8]) -> anyhow::Result<Vec<u8>> {
        match self
            .enclave_call(
                proxy,
                &EnclaveRequest::Attest {
                    nonce: Some(nonce.to_vec().into()),
                },
            )
            .await?
        {
            EnclaveResponse::Attestation { document } => Ok(document.into_vec()),
            EnclaveResponse::Error(e) => bail!("enclave refused: {e}"),
            other => bail!("unexpected {other} answer"),
        }
    }
}

/// What a coordinator API call returned that was not the expected success.
#[derive(Debug, thiserror::Error)]
pub enum ApiCallError {
    /// The coordinator answered with an error body.
    #[error("{status}: {} ({})", .body.error.message, .body.error.code)]
    Api {
        /// HTTP status.
        status: u16,
        /// The error.
        body: crate::api::ErrorBody,
    },
    /// No (usable) answer.
    #[error("{0:#}")]
    Transport(anyhow::Error),
}

impl ApiCallError {
    /// The stable code of an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { body, .. } => Some(&body.error.code),
            Self::Transport(_) => None,
        }
    }
}

/// A client of the coordinator's JSON API; with an API key, every call is signed with it
/// (ADR 0017).
#[derive(Clone)]
pub struct ApiClient {
    http: HttpClient,
    base: String,
    key: Option<std::sync::Arc<crate::api::ApiKey>>,
}

impl ApiClient {
    /// A client for the coordinator at `base` (e.g. `http://127.0.0.1:7000`).
    pub fn new(base: &str) -> Self {
        Self {
            http: HttpClient::new().with_timeout(Duration::from_secs(900)),
            base: base.trim_end_matches('/').to_string(),
            key: None,
        }
    }

    /// The same client signing every call with `key`.
    pub fn with_key(mut self, key: crate::api::ApiKey) -> Self {
        self.key = Some(std::sync::Arc::new(key));
        self
    }

    /// The key calls are signed with, if any.
    pub fn key(&self) -> Option<&std::sync::Arc<crate::api::ApiKey>> {
        self.key.as_ref()
    }

    /// The credential calls are signed with, if any.
    pub fn credential(&self) -> Option<&str> {
        self.key.as_deref().map(|k| k.credential())
    }

    /// Builds a request to `path` with `body`, signed when the client has a key: for callers
    /// that send bodies of their own (tests of malformed input).
    pub fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let url = format!("{}{path}", self.base);
        let mut builder = Request::builder().method(method.clone()).uri(&url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        if let Some(key) = &self.key {
            let idem = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("idempotency-key"))
                .map(|(_, v)| *v);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            builder = builder.header(
                header::AUTHORIZATION,
                key.authorize(method.as_str(), path, idem, &body, now),
            );
        }
        builder
            .body(Full::new(Bytes::from(body)))
            .with_context(|| format!("bad url {url}"))
    }

    /// Sends a request made by [`ApiClient::request`]; returns status and body.
    pub async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let url = request.uri().to_string();
        self.http.exchange(request, &url).await
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `body` (JSON) with optional extra headers; decodes a 2xx answer as `T`.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl serde::Serialize>,
        headers: &[(&str, &str)],
    ) -> Result<T, ApiCallError> {
        let url = format!("{}{path}", self.base);
        let (content_type, bytes) = match body {
            Some(b) => (
                Some("application/json"),
                serde_json::to_vec(b).map_err(|e| ApiCallError::Transport(e.into()))?,
            ),
            None => (None, Vec::new()),
        };
        let request = self
            .request(method, path, content_type, headers, bytes)
            .map_err(ApiCallError::Transport)?;
        let (status, body) = self
            .http
            .exchange(request, &url)
            .await
            .map_err(ApiCallError::Transport)?;
        if status.is_success() {
            serde_json::from_slice(&body)
                .map_err(|e| ApiCallError::Transport(anyhow!("{url}: unexpected answer: {e}")))
        } else {
            match serde_json::from_slice::<crate::api::ErrorBody>(&body) {
                Ok(body) => Err(ApiCallError::Api {
                    status: status.as_u16(),
                    body,
                }),
                Err(_) => Err(ApiCallError::Transport(anyhow!(
                    "{url}: {status}: {}",
                    quote(&body)
                ))),
            }
        }
    }

    /// GET `path`.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ApiCallError> {
        self.call(Method::GET, path, None::<&()>, &[]).await
    }

    /// POST JSON to `path`.
    pub async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, ApiCallError> {
        self.call(Method::POST, path, Some(body), &[]).await
    }
}
