//! One HTTPS exchange with KMS, terminated here in the enclave (ADR 0014).
//!
//! The bytes travel through a tunnel the parent opens ([`ParentRequest::OpenTunnel`]), so the
//! parent can drop, delay or alter them, but not read or forge them: the server must prove it
//! holds a certificate for `kms.<region>.<domain>` chaining to a root pinned in this binary
//! ([`Roots`]: Amazon's in production, the simulated CA's in simulated mode). Everything runs
//! under one deadline: a parent that drips bytes cannot hold the worker past it.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Instant;

use protocol::http1::{ReadFailure, read_response};
use protocol::parent::{ParentRequest, ParentResponse};
use protocol::{Endpoint, KmsKeyArn};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::transport::{self, DeadlineStream};

/// The roots AWS's public endpoints chain to (Amazon Trust Services), pinned in the image.
/// From Debian's `ca-certificates` (Mozilla's store); SHA-256 fingerprints in `roots/README.md`.
const AMAZON_ROOTS: [&str; 5] = [
    include_str!("../../roots/Amazon_Root_CA_1.pem"),
    include_str!("../../roots/Amazon_Root_CA_2.pem"),
    include_str!("../../roots/Amazon_Root_CA_3.pem"),
    include_str!("../../roots/Amazon_Root_CA_4.pem"),
    include_str!("../../roots/Starfield_Services_Root_Certificate_Authority_-_G2.pem"),
];

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpsError {
    /// The parent, the tunnel or KMS could not be reached, or the deadline passed: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The other end is not KMS: its certificate does not chain to a pinned root or names
    /// another host, or the TLS records do not authenticate (forged, altered or replayed).
    #[error("{0}")]
    Untrusted(String),
    /// The parent refused or answered nonsense.
    #[error("{0}")]
    Parent(String),
    /// An authenticated answer that is not HTTP as KMS speaks it.
    #[error("{0}")]
    Malformed(String),
}

/// The TLS roots KMS's certificate must chain to.
#[derive(Clone)]
pub struct Roots(Arc<RootCertStore>);

impl std::fmt::Debug for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Roots({} anchors)", self.0.len())
    }
}

impl Roots {
    /// Amazon Trust Services' roots: production.
    pub fn amazon() -> Self {
        let ders: Vec<Vec<u8>> = AMAZON_ROOTS
            .iter()
            .map(|pem| attestation::pem_to_der(pem).expect("the pinned roots are valid PEM"))
            .collect();
        Self::from_der(&ders).expect("the pinned roots are valid certificates")
    }

    /// Roots from DER certificates (simulated mode: the simulated CA's root).
    pub fn from_der(ders: &[Vec<u8>]) -> Result<Self, String> {
        let mut store = RootCertStore::empty();
        for der in ders {
            store
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| format!("not a usable root certificate: {e}"))?;
        }
        if store.is_empty() {
            return Err("no root certificates".into());
        }
        Ok(Self(Arc::new(store)))
    }

    fn config(&self) -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(self.0.clone())
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// Text from the parent (or from an answer it could have shaped), as it may appear in errors
/// and logs: at most 200 characters, quoted and escaped (no line breaks of its own).
pub(crate) fn bounded(text: &str) -> String {
    format!("{:?}", text.chars().take(200).collect::<String>())
}

/// Asks the parent one framed question on a fresh connection under `deadline`; returns the
/// answer and the connection (still open, for a tunnel).
pub fn ask_parent(
    parent: &Endpoint,
    request: &ParentRequest,
    deadline: Instant,
) -> Result<(ParentResponse, DeadlineStream), HttpsError> {
    let unavailable =
        |e: io::Error| HttpsError::Unavailable(format!("parent at {parent} unreachable: {e}"));
    let frame = protocol::encode_frame(request)
        .map_err(|e| HttpsError::Parent(format!("cannot encode the request: {e}")))?;
    let mut stream = DeadlineStream::connect(parent, deadline).map_err(unavailable)?;
    transport::write_frame(&mut stream, &frame).map_err(unavailable)?;
    let payload = match transport::read_frame(&mut stream) {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(HttpsError::Unavailable(format!(
                "parent at {parent} closed the connection without an answer"
            )));
        }
        Err(e) if transport::frame_error(&e).is_some() => {
            return Err(HttpsError::Parent(format!("unreadable answer: {e}")));
        }
        Err(e) => return Err(unavailable(e)),
    };
    let answer = protocol::decode_payload(&payload)
        .map_err(|e| HttpsError::Parent(format!("undecodable answer from the parent: {e}")))?;
    Ok((answer, stream))
}

/// One `POST /` to `host` over TLS through the parent's tunnel to `key`'s KMS; `headers` are
/// sent as given (checked by the caller). Returns the status and the body.
pub fn post(
    parent: &Endpoint,
    roots: &Roots,
    key: &KmsKeyArn,
    headers: &[(String, String)],
    body: &[u8],
    deadline: Instant,
) -> Result<(u16, Vec<u8>), HttpsError> {
    let host = key.kms_host();
    let (answer, tunnel) = ask_parent(
        parent,
        &ParentRequest::OpenTunnel { key: key.clone() },
        deadline,
    )?;
    match answer {
        ParentResponse::TunnelOpen => {}
        ParentResponse::Error { code, message } => {
            let message = format!("the parent opened no tunnel: {code}: {}", bounded(&message));
            return Err(match code {
                protocol::parent::ParentErrorCode::Unavailable => HttpsError::Unavailable(message),
                _ => HttpsError::Parent(message),
            });
        }
        other => {
            return Err(HttpsError::Parent(format!(
                "unexpected answer to OpenTunnel: {}",
                bounded(&format!("{other:?}"))
            )));
        }
    }
    let name = ServerName::try_from(host.clone())
        .map_err(|e| HttpsError::Parent(format!("bad KMS host {host}: {e}")))?;
    let conn = ClientConnection::new(roots.config(), name)
        .map_err(|e| HttpsError::Untrusted(format!("cannot start TLS: {e}")))?;
    let mut tls = StreamOwned::new(conn, tunnel);

    let mut request = format!("POST / HTTP/1.1\r\nhost: {host}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    tls.write_all(&bytes)
        .and_then(|()| tls.flush())
        .map_err(|e| io_failure(&host, e))?;
    read_response(&mut tls).map_err(|e| match e {
        ReadFailure::Io(e) => io_failure(&host, e),
        ReadFailure::Malformed(m) => HttpsError::Malformed(format!("KMS answered {m}")),
    })
}

/// A failed TLS read or write: a certificate or record that does not authenticate is
/// `Untrusted`; a timeout or a dropped connection `Unavailable`.
fn io_failure(host: &str, e: io::Error) -> HttpsError {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return HttpsError::Untrusted(format!(
            "the tunnel does not lead to {host}: TLS refused it: {tls}"
        ));
    }
    if e.kind() == io::ErrorKind::InvalidData {
        return HttpsError::Untrusted(format!("the tunnel does not lead to {host}: {e}"));
    }
    HttpsError::Unavailable(format!("KMS at {host} through the parent's tunnel: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_roots_load_and_hosts_follow_the_partition() {
        assert_eq!(format!("{:?}", Roots::amazon()), "Roots(5 anchors)");
        let key = KmsKeyArn::parse("arn:aws:kms:eu-west-1:111122223333:key/k").unwrap();
        assert_eq!(key.kms_host(), "kms.eu-west-1.amazonaws.com");
        let cn = KmsKeyArn::parse("arn:aws-cn:kms:cn-north-1:111122223333:key/k").unwrap();
        assert_eq!(cn.kms_host(), "kms.cn-north-1.amazonaws.com.cn");
        assert!(Roots::from_der(&[vec![1, 2, 3]]).is_err());
        assert!(Roots::from_der(&[]).is_err());
    }
}
