//! A bounded reader of one HTTP/1.1 response, as KMS sends one: status line, headers, then a
//! `content-length` or chunked body, or a body until the stream ends.
//!
//! The enclave reads KMS's answers with it inside its own TLS session (`enclave::kms::https`).
//! It is here, in the crate both sides share, so that the `kms_response` fuzz target checks the
//! very function the enclave runs without linking the enclave's protocol stack.

use std::io::{self, Read};

/// Largest response head (status line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// Largest chunk-size line of a chunked body (without its CRLF): the size and any extensions.
const MAX_CHUNK_LINE: usize = 64;
/// Largest response body: KMS's answers are a few KiB.
pub const MAX_BODY: usize = 256 * 1024;

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
/// or a body until the stream ends. Returns the status and the body. In the enclave the bytes
/// are KMS's, authenticated by TLS; the parser does not rely on that (a mis-issued certificate
/// or a flaw in the TLS layer would hand it anyone's bytes): it is bounded ([`MAX_BODY`], a
/// 16 KiB head), gives the same answer however the bytes are split into reads, and is public
/// for the `kms_response` fuzz target, which checks both.
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
}
