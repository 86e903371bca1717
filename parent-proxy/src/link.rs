//! The proxy's connection to its enclave: a small pool of streams, one request in flight per
//! stream.

use std::io;
use std::sync::Mutex;

use protocol::{EnclaveRequest, EnclaveResponse, Endpoint, FRAME_HEADER_LEN, FrameError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_vsock::{VsockAddr, VsockStream};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

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
    idle: Mutex<Vec<Box<dyn Io>>>,
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

    async fn connect(&self) -> io::Result<Box<dyn Io>> {
        Ok(match &self.endpoint {
            Endpoint::Vsock { cid, port } => {
                let cid = cid.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "vsock endpoint needs a context id",
                    )
                })?;
                Box::new(VsockStream::connect(VsockAddr::new(cid, *port)).await?)
            }
            Endpoint::Unix(path) => Box::new(UnixStream::connect(path).await?),
            Endpoint::Tcp(addr) => {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
        })
    }

    fn take_idle(&self) -> Option<Box<dyn Io>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn put_idle(&self, stream: Box<dyn Io>) {
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
        let (stream, reply) = exchange(self.connect().await?, frame).await?;
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

async fn exchange(
    mut stream: Box<dyn Io>,
    frame: &[u8],
) -> Result<(Box<dyn Io>, Vec<u8>), LinkError> {
    stream.write_all(frame).await?;
    stream.flush().await?;
    let mut header = [0u8; FRAME_HEADER_LEN];
    stream.read_exact(&mut header).await?;
    let len = protocol::payload_len(header)?;
    let mut reply = vec![0u8; FRAME_HEADER_LEN + len];
    reply[..FRAME_HEADER_LEN].copy_from_slice(&header);
    stream.read_exact(&mut reply[FRAME_HEADER_LEN..]).await?;
    Ok((stream, reply))
}
