//! Endpoints of the host side: bind and connect vsock, Unix and TCP sockets, one listener and
//! one stream type for all three.

use std::io;
use std::path::PathBuf;

use protocol::Endpoint;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_vsock::{VMADDR_CID_ANY, VsockAddr, VsockListener, VsockStream};

/// A bidirectional byte stream of any transport.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connected stream (accepted or dialled).
pub type Stream = Box<dyn Io>;

/// A listening socket of one of the three kinds.
pub enum Listener {
    /// AF_VSOCK.
    Vsock(VsockListener),
    /// A Unix socket (the path is removed again on drop).
    Unix(UnixListener, PathBuf),
    /// TCP.
    Tcp(TcpListener),
}

impl Listener {
    /// Binds `endpoint`. A stale Unix socket file from an earlier run is replaced.
    pub async fn bind(endpoint: &Endpoint) -> io::Result<Self> {
        Ok(match endpoint {
            Endpoint::Vsock { cid, port } => Self::Vsock(VsockListener::bind(VsockAddr::new(
                cid.unwrap_or(VMADDR_CID_ANY),
                *port,
            ))?),
            Endpoint::Unix(path) => {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                Self::Unix(UnixListener::bind(path)?, path.clone())
            }
            Endpoint::Tcp(addr) => Self::Tcp(TcpListener::bind(addr).await?),
        })
    }

    /// Waits for the next connection (TCP streams get `TCP_NODELAY`: frames and small HTTP
    /// answers go out at once).
    pub async fn accept(&self) -> io::Result<Stream> {
        Ok(match self {
            Self::Vsock(l) => Box::new(l.accept().await?.0),
            Self::Unix(l, _) => Box::new(l.accept().await?.0),
            Self::Tcp(l) => {
                let (s, _) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
        })
    }

    /// Where the listener is bound (with the actual port for `tcp:HOST:0`).
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

/// Connects to `endpoint` (a vsock endpoint needs a context id).
pub async fn connect(endpoint: &Endpoint) -> io::Result<Stream> {
    Ok(match endpoint {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn unix_and_tcp_listeners_accept_what_connect_dials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        std::fs::write(&path, b"stale").unwrap();
        for endpoint in [
            Endpoint::Unix(path.clone()),
            Endpoint::Tcp("127.0.0.1:0".into()),
        ] {
            let listener = Listener::bind(&endpoint).await.unwrap();
            let bound = listener.local_endpoint().unwrap();
            let dial = tokio::spawn(async move {
                let mut s = connect(&bound).await.unwrap();
                s.write_all(b"hi").await.unwrap();
            });
            let mut accepted = listener.accept().await.unwrap();
            let mut got = [0u8; 2];
            accepted.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"hi");
            dial.await.unwrap();
        }
        assert!(!path.exists(), "the socket file goes with its listener");
    }

    #[tokio::test]
    async fn vsock_without_a_context_id_is_refused() {
        let Err(e) = connect(&Endpoint::Vsock { cid: None, port: 1 }).await else {
            panic!("connected without a context id")
        };
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
