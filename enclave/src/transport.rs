//! Every socket syscall of the enclave lives here: vsock in production, Unix or TCP sockets in
//! simulated mode, behind one [`Listener`] and one [`Stream`] type. The rest of the enclave sees
//! frames.

use std::io;
use std::path::PathBuf;

use protocol::{Endpoint, FRAME_HEADER_LEN, FrameError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio_vsock::{VMADDR_CID_ANY, VsockAddr, VsockListener};

/// A bidirectional byte stream of any transport.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An accepted connection.
pub type Stream = Box<dyn Io>;

/// Errors of the transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The socket failed.
    #[error("transport i/o: {0}")]
    Io(#[from] io::Error),
    /// The peer sent a frame that cannot be read (too large, cut short).
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
}

/// A listening socket of one of the three kinds.
pub enum Listener {
    /// Production: AF_VSOCK.
    Vsock(VsockListener),
    /// Simulated: a Unix socket (the path is removed again on drop).
    Unix(UnixListener, PathBuf),
    /// Simulated: TCP.
    Tcp(TcpListener),
}

impl Listener {
    /// Binds `endpoint`. A stale Unix socket file from an earlier run is replaced.
    pub async fn bind(endpoint: &Endpoint) -> io::Result<Self> {
        match endpoint {
            Endpoint::Vsock { cid, port } => Ok(Self::Vsock(VsockListener::bind(VsockAddr::new(
                cid.unwrap_or(VMADDR_CID_ANY),
                *port,
            ))?)),
            Endpoint::Unix(path) => {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                Ok(Self::Unix(UnixListener::bind(path)?, path.clone()))
            }
            Endpoint::Tcp(addr) => Ok(Self::Tcp(TcpListener::bind(addr).await?)),
        }
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> io::Result<Stream> {
        Ok(match self {
            Self::Vsock(l) => Box::new(l.accept().await?.0),
            Self::Unix(l, _) => Box::new(l.accept().await?.0),
            Self::Tcp(l) => {
                let (s, _) = l.accept().await?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
        })
    }

    /// Where the listener is bound (with the actual port for `tcp:...:0`).
    pub fn local_endpoint(&self) -> io::Result<Endpoint> {
        Ok(match self {
            Self::Vsock(l) => {
                let a = l.local_addr()?;
                Endpoint::Vsock {
                    cid: Some(a.cid()),
                    port: a.port(),
                }
            }
            Self::Unix(_, p) => Endpoint::Unix(p.clone()),
            Self::Tcp(l) => Endpoint::Tcp(l.local_addr()?.to_string()),
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Self::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Reads one frame's payload. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame(stream: &mut Stream) -> Result<Option<Vec<u8>>, TransportError> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = protocol::payload_len(header)?;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            TransportError::Frame(FrameError::Truncated {
                needed: len,
                got: 0,
            })
        } else {
            e.into()
        }
    })?;
    Ok(Some(payload))
}

/// Writes one complete frame (as produced by [`protocol::encode_frame`]).
pub async fn write_frame(stream: &mut Stream, frame: &[u8]) -> io::Result<()> {
    stream.write_all(frame).await?;
    stream.flush().await
}
