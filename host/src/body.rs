//! The size-limited reader of HTTP request bodies.

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use hyper::body::Body;

/// Why a body was not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// The body is larger than the limit.
    #[error("the body is too large")]
    TooLarge,
    /// The connection failed while the body was read (the error's text).
    #[error("{0}")]
    Unreadable(String),
}

/// How far past its limit a body is still read (and dropped) by servers that want a client that
/// is still sending to get their `413` rather than a broken connection: a body announced up to
/// `DRAIN_FACTOR` times the limit is read to its end before the answer, a larger one refused at
/// once.
pub const DRAIN_FACTOR: usize = 4;

/// Reads a whole body of at most `limit` bytes.
///
/// A larger body is an error; it is still read (and dropped) up to `drain_limit` bytes, so that
/// a client that is still sending gets the answer instead of a broken connection. One that
/// announces more than `drain_limit` bytes is refused before anything is read; with
/// `drain_limit == limit` reading stops as soon as the limit is passed.
pub async fn read_body<B>(mut body: B, limit: usize, drain_limit: usize) -> Result<Bytes, BodyError>
where
    B: Body + Unpin,
    B::Error: std::fmt::Display,
{
    let drain_limit = drain_limit.max(limit);
    if !usize::try_from(body.size_hint().lower()).is_ok_and(|len| len <= drain_limit) {
        return Err(BodyError::TooLarge);
    }
    let mut read = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Unreadable(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            let data: &[u8] = data.chunk();
            total = total.saturating_add(data.len());
            if total > drain_limit {
                break;
            }
            if total <= limit {
                read.extend_from_slice(data);
            }
        }
    }
    if total > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(read))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn bodies_within_the_limit_are_read_whole() {
        let body = Full::new(Bytes::from_static(b"hello"));
        assert_eq!(read_body(body, 5, 5).await.unwrap(), &b"hello"[..]);
    }

    #[tokio::test]
    async fn larger_bodies_are_refused() {
        let body = Full::new(Bytes::from(vec![0u8; 6]));
        assert_eq!(read_body(body, 5, 5).await, Err(BodyError::TooLarge));
        let body = Full::new(Bytes::from(vec![0u8; 6]));
        assert_eq!(read_body(body, 5, 20).await, Err(BodyError::TooLarge));
    }
}
