//! The one async reader and writer of `protocol`'s frames (big-endian length prefix, CBOR
//! payload) on the host side.

use std::io;

use protocol::{FRAME_HEADER_LEN, FrameError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream failed, or ended inside a frame.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The length prefix is beyond [`protocol::MAX_FRAME_LEN`].
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// The length prefix is within the protocol's limit but beyond the reader's own.
    #[error("a {len}-byte payload is over this channel's limit")]
    OverLimit {
        /// The announced payload length.
        len: usize,
    },
}

/// Reads one complete frame, length prefix included, whose payload is at most `limit` bytes
/// (nothing past the prefix is read when it is larger). `Ok(None)` is a clean end of stream
/// between frames.
pub async fn read_frame<R: AsyncRead + Unpin + ?Sized>(
    stream: &mut R,
    limit: usize,
) -> Result<Option<Vec<u8>>, ReadError> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = protocol::payload_len(header)?;
    if len > limit {
        return Err(ReadError::OverLimit { len });
    }
    let mut frame = vec![0u8; FRAME_HEADER_LEN + len];
    frame[..FRAME_HEADER_LEN].copy_from_slice(&header);
    stream.read_exact(&mut frame[FRAME_HEADER_LEN..]).await?;
    Ok(Some(frame))
}

/// Writes one complete frame (as made by [`protocol::encode_frame`]) and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin + ?Sized>(
    stream: &mut W,
    frame: &[u8],
) -> io::Result<()> {
    stream.write_all(frame).await?;
    stream.flush().await
}

/// Encodes `message` as a frame and writes it.
pub async fn write_message<W: AsyncWrite + Unpin + ?Sized, M: serde::Serialize>(
    stream: &mut W,
    message: &M,
) -> io::Result<()> {
    let frame = protocol::encode_frame(message)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    write_frame(stream, &frame).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use protocol::EnclaveRequest;

    #[tokio::test]
    async fn frames_round_trip_and_a_clean_end_is_none() {
        let (mut a, mut b) = tokio::io::duplex(64);
        write_message(&mut a, &EnclaveRequest::Status)
            .await
            .unwrap();
        drop(a);
        let frame = read_frame(&mut b, 1024).await.unwrap().unwrap();
        let request: EnclaveRequest = protocol::decode_frame(&frame).unwrap();
        assert!(matches!(request, EnclaveRequest::Status));
        assert!(read_frame(&mut b, 1024).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_and_cut_frames_are_errors() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0x7f, 0xff, 0xff, 0xff]).await.unwrap();
        assert!(matches!(
            read_frame(&mut b, usize::MAX).await,
            Err(ReadError::Frame(FrameError::TooLarge { .. }))
        ));
        a.write_all(&[0, 0, 0, 9]).await.unwrap();
        assert!(matches!(
            read_frame(&mut b, 8).await,
            Err(ReadError::OverLimit { len: 9 })
        ));
        a.write_all(&[0, 0, 0, 9, 1]).await.unwrap();
        drop(a);
        assert!(matches!(
            read_frame(&mut b, 9).await,
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof
        ));
    }
}
