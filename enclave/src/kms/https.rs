//! One HTTPS exchange with KMS, terminated here in the enclave (ADR 0014).
//!
//! The bytes travel through a tunnel the parent opens ([`ParentRequest::OpenTunnel`]), so the
//! parent can drop, delay or alter them, but not read or forge them: the server must prove it
//! holds a certificate for `kms.<region>.<domain>` chaining to a root pinned in this binary
//! ([`Roots`]: Amazon's in production, the simulated CA's in simulated mode). Everything runs
//! under one deadline: a parent that drips bytes cannot hold the worker past it.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use protocol::parent::{ParentRequest, ParentResponse};
use protocol::{Endpoint, KmsKeyArn};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::transport::{self, DeadlineStream};

/// Largest response head (status line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// Largest chunk-size line of a chunked body (without its CRLF): the size and any extensions.
const MAX_CHUNK_LINE: usize = 64;
/// Largest response body: KMS's answers are a few KiB.
pub const MAX_BODY: usize = 256 * 1024;

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

/// Why [`read_response`] failed.
#[derive(Debug)]
pub enum ReadFailure {
    /// The stream failed: a timeout, a dropped connection, a TLS record that does not
    /// authenticate.
    Io(io::Error),
    /// The bytes are not an HTTP/1.1 response as KMS sends one, or exceed a bound.
    Malformed(String),
}

impl From<io::Error> for ReadFailure {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Reads one HTTP/1.1 response: status line, headers, then a `content-length` or chunked body,
/// or a body until the stream ends. Returns the status and the body. In [`post`] the bytes are
/// KMS's, authenticated by TLS; the parser does not rely on that (a mis-issued certificate or a
/// flaw in the TLS layer would hand it anyone's bytes): it is bounded ([`MAX_BODY`], a 16 KiB
/// head), gives the same answer however the bytes are split into reads, and is public for the
/// `kms_response` fuzz target, which checks both.
pub fn read_response(stream: &mut impl Read) -> Result<(u16, Vec<u8>), ReadFailure> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let (status, head_len, length, chunked) = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(ReadFailure::Malformed(
                "a response cut short in its head".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        // The head must end within MAX_HEAD bytes, however many arrived in this read: looking
        // further would accept a long head read in one go and refuse it read in pieces.
        match response.parse(&buf[..buf.len().min(MAX_HEAD)]) {
            Ok(httparse::Status::Complete(len)) => {
                let status = response.code.unwrap_or(0);
                let mut length = None;
                let mut chunked = false;
                for h in response.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        let v = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .ok_or_else(|| ReadFailure::Malformed("a bad content-length".into()))?;
                        length = Some(v);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = String::from_utf8_lossy(h.value)
                            .to_ascii_lowercase()
                            .contains("chunked");
                    }
                }
                break (status, len, length, chunked);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => {
                return Err(ReadFailure::Malformed(format!(
                    "a response head over {MAX_HEAD} bytes"
                )));
            }
            Err(e) => return Err(ReadFailure::Malformed(format!("not HTTP: {e}"))),
        }
    };
    let mut body = buf.split_off(head_len);
    if chunked {
        return Ok((status, read_chunked(stream, body)?));
    }
    match length {
        Some(len) if len > MAX_BODY => Err(ReadFailure::Malformed(format!(
            "a {len}-byte body, more than {MAX_BODY}"
        ))),
        Some(len) => {
            while body.len() < len {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Err(ReadFailure::Malformed("a body cut short".into()));
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
            Ok((status, body))
        }
        None => {
            // Until the server closes (TLS close_notify): bounded.
            stream
                .take((MAX_BODY + 1 - body.len().min(MAX_BODY)) as u64)
                .read_to_end(&mut body)?;
            if body.len() > MAX_BODY {
                return Err(ReadFailure::Malformed(format!(
                    "a body over {MAX_BODY} bytes"
                )));
            }
            Ok((status, body))
        }
    }
}

/// Decodes a chunked body, `pending` being what was read past the head already.
fn read_chunked(stream: &mut impl Read, mut pending: Vec<u8>) -> Result<Vec<u8>, ReadFailure> {
    let mut body = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut fill = |pending: &mut Vec<u8>, stream: &mut dyn Read| -> Result<(), ReadFailure> {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(ReadFailure::Malformed("a chunked body cut short".into()));
        }
        pending.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    let long_line = || ReadFailure::Malformed("a bad chunk size line".into());
    loop {
        // A size line of at most MAX_CHUNK_LINE bytes, whether its CRLF came in the same read
        // or not (so the answer does not depend on how the bytes were split).
        let line_end = loop {
            if let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
                if i > MAX_CHUNK_LINE {
                    return Err(long_line());
                }
                break i;
            }
            if pending.len() > MAX_CHUNK_LINE + 1 {
                return Err(long_line());
            }
            fill(&mut pending, stream)?;
        };
        let line = String::from_utf8_lossy(&pending[..line_end]).to_string();
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ReadFailure::Malformed("a bad chunk size".into()))?;
        pending.drain(..line_end + 2);
        if size == 0 {
            return Ok(body);
        }
        // `body` never exceeds MAX_BODY, so neither sum below can overflow.
        if size > MAX_BODY - body.len() {
            return Err(ReadFailure::Malformed(format!(
                "a body over {MAX_BODY} bytes"
            )));
        }
        while pending.len() < size + 2 {
            fill(&mut pending, stream)?;
        }
        if &pending[size..size + 2] != b"\r\n" {
            return Err(ReadFailure::Malformed("a chunk not ended by CRLF".into()));
        }
        body.extend_from_slice(&pending[..size]);
        pending.drain(..size + 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<(u16, Vec<u8>), String> {
        read_response(&mut &bytes[..]).map_err(|e| match e {
            ReadFailure::Io(e) => format!("io: {e}"),
            ReadFailure::Malformed(m) => m,
        })
    }

    #[test]
    fn responses_are_read_by_length_chunks_or_close() {
        let r = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloEXTRA").unwrap();
        assert_eq!(r, (200, b"hello".to_vec()));
        let r = parse(b"HTTP/1.1 400 Bad\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(r, (400, b"abcde".to_vec()));
        let r = parse(b"HTTP/1.1 200 OK\r\n\r\nuntil close").unwrap();
        assert_eq!(r, (200, b"until close".to_vec()));
    }

    #[test]
    fn bad_responses_are_typed_errors() {
        assert!(
            parse(b"SSH-2.0-x\r\n\r\n")
                .unwrap_err()
                .contains("not HTTP")
        );
        assert!(
            parse(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc")
                .unwrap_err()
                .contains("cut short")
        );
        assert!(
            parse(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n")
                .unwrap_err()
                .contains("content-length")
        );
        let huge = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert!(parse(huge.as_bytes()).unwrap_err().contains("more than"));
        let mut long = b"HTTP/1.1 200 OK\r\n".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        assert!(parse(&long).unwrap_err().contains("head over"));
        assert!(
            parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n")
                .unwrap_err()
                .contains("chunk size")
        );
        assert!(parse(b"HTTP/1.1 200").unwrap_err().contains("cut short"));
        // A chunk size near usize::MAX is a bound exceeded, not an overflow or a panic.
        assert!(
            parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\nx")
                .unwrap_err()
                .contains("over")
        );
    }

    /// Hands over its bytes `size` at a time (a TLS record, or a parent's cut, ends anywhere).
    struct Pieces<'a>(&'a [u8], usize);

    impl Read for Pieces<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn parse_in(bytes: &[u8], size: usize) -> Result<(u16, Vec<u8>), String> {
        read_response(&mut Pieces(bytes, size)).map_err(|e| match e {
            ReadFailure::Io(e) => format!("io: {e}"),
            ReadFailure::Malformed(m) => m,
        })
    }

    /// Regression (the `kms_response` fuzz target's invariant): the answer does not depend on
    /// how the bytes are split into reads. A head just over MAX_HEAD was accepted when a read
    /// carried it past the bound and refused when reads stopped at it; a chunk-size line over
    /// 64 bytes was accepted when its CRLF came in the same read. Both are refused now, in any
    /// pieces; so is a chunk whose data is not followed by CRLF.
    #[test]
    fn answers_do_not_depend_on_how_reads_split_them() {
        let mut long_head = b"HTTP/1.1 200 OK\r\n".to_vec();
        while long_head.len() < MAX_HEAD + 100 {
            long_head.extend_from_slice(b"x-pad: ");
            long_head.extend(std::iter::repeat_n(b'a', 400));
            long_head.extend_from_slice(b"\r\n");
        }
        long_head.extend_from_slice(b"content-length: 2\r\n\r\nok");
        let mut long_ext = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2;".to_vec();
        long_ext.extend(std::iter::repeat_n(b'x', 70));
        long_ext.extend_from_slice(b"\r\nok\r\n0\r\n\r\n");
        let bad_end =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nokXY0\r\n\r\n".to_vec();
        for (answer, why) in [
            (&long_head, "head over"),
            (&long_ext, "chunk size line"),
            (&bad_end, "CRLF"),
        ] {
            for size in [1, 7, 4000, 4096, usize::MAX] {
                let e = parse_in(answer, size).unwrap_err();
                assert!(e.contains(why), "{size}-byte reads: {e}");
            }
        }
        // At the bounds exactly: accepted in any pieces.
        let mut at_bound = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2;".to_vec();
        at_bound.extend(std::iter::repeat_n(b'x', MAX_CHUNK_LINE - 2));
        at_bound.extend_from_slice(b"\r\nok\r\n0\r\n\r\n");
        for size in [1, 7, 4096] {
            assert_eq!(parse_in(&at_bound, size).unwrap(), (200, b"ok".to_vec()));
        }
    }

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
