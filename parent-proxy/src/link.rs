//! The proxy's connection to its enclave: a small pool of streams, one request in flight per
//! stream.

use std::io;
use std::sync::Mutex;

use host::Stream;
use host::frame::{self, ReadError};
use protocol::{EnclaveRequest, EnclaveResponse, Endpoint, FrameError, MAX_FRAME_LEN};

/// Why a call to the enclave failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Connecting, writing or reading failed (the enclave is down or restarted).
    #[error("enclave unreachable: {0}")]
    Io(#[from] io::Error),
    /// The enclave answered with a frame that does not decode.
    #[error("bad frame from enclave: {0}")]
    Frame(#[from] FrameError),
}

/// Streams to one enclave.
pub struct EnclaveLink {
    endpoint: Endpoint,
    idle: Mutex<Vec<Stream>>,
}

const MAX_IDLE: usize = 32;

impl EnclaveLink {
    /// A link to `endpoint`; connects lazily.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The enclave's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn take_idle(&self) -> Option<Stream> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn put_idle(&self, stream: Stream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(stream);
        }
    }

    /// Drops every pooled stream (after the enclave restarted).
    pub fn reset(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Sends one complete frame and returns the enclave's complete response frame.
    ///
    /// A pooled stream that turns out to be dead is retried once on a fresh connection.
    pub async fn call_frame(&self, frame: &[u8]) -> Result<Vec<u8>, LinkError> {
        if let Some(stream) = self.take_idle()
            && let Ok((stream, reply)) = exchange(stream, frame).await
        {
            self.put_idle(stream);
            return Ok(reply);
        }
        let (stream, reply) = exchange(host::connect(&self.endpoint).await?, frame).await?;
        self.put_idle(stream);
        Ok(reply)
    }

    /// Sends a request and decodes the response.
    pub async fn call(&self, request: &EnclaveRequest) -> Result<EnclaveResponse, LinkError> {
        let frame = protocol::encode_frame(request)?;
        let reply = self.call_frame(&frame).await?;
        Ok(protocol::decode_frame(&reply)?)
    }
}

async fn exchange(mut stream: Stream, frame: &[u8]) -> Result<(Stream, Vec<u8>), LinkError> {
    frame::write_frame(&mut stream, frame).await?;
    match frame::read_frame(&mut stream, MAX_FRAME_LEN).await {
        Ok(Some(reply)) => Ok((stream, reply)),
        Ok(None) => Err(LinkError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the enclave closed the connection without an answer",
        ))),
        Err(ReadError::Io(e)) => Err(LinkError::Io(e)),
        Err(ReadError::Frame(e)) => Err(LinkError::Frame(e)),
        Err(ReadError::OverLimit { len }) => Err(LinkError::Frame(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        })),
    }
}
