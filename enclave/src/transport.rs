//! Every socket syscall of the enclave lives here: vsock in production, Unix or TCP sockets in
//! simulated mode, bound and connected here, behind one [`Listener`] and one [`Stream`] type,
//! with the one (blocking) frame reader and writer. The rest of the enclave sees frames.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use protocol::{Endpoint, FRAME_HEADER_LEN, FrameError};
use vsock::{VMADDR_CID_ANY, VsockAddr, VsockListener, VsockStream};

/// A bidirectional byte stream of any transport.
pub trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

/// A connected stream (accepted or dialled).
pub type Stream = Box<dyn Io>;

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
    pub fn bind(endpoint: &Endpoint) -> io::Result<Self> {
        Ok(match endpoint {
            Endpoint::Vsock { cid, port } => Self::Vsock(VsockListener::bind(&VsockAddr::new(
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
            Endpoint::Tcp(addr) => Self::Tcp(TcpListener::bind(addr)?),
        })
    }

    /// Waits for the next connection.
    pub fn accept(&self) -> io::Result<Stream> {
        Ok(match self {
            Self::Vsock(l) => Box::new(l.accept()?.0),
            Self::Unix(l, _) => Box::new(l.accept()?.0),
            Self::Tcp(l) => {
                let (s, _) = l.accept()?;
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

impl Listener {
    /// Removes a Unix listener's socket file (at shutdown, or when the listener is dropped).
    pub fn remove_socket_file(&self) {
        if let Self::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.remove_socket_file();
    }
}

/// The context id of a vsock endpoint the enclave dials (its parent's: 3).
fn parent_cid(cid: Option<u32>) -> io::Result<u32> {
    cid.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the parent's vsock endpoint needs a context id (3)",
        )
    })
}

/// Connects to `endpoint`; each read and write on the stream may take at most `timeout`.
pub fn connect(endpoint: &Endpoint, timeout: Duration) -> io::Result<Stream> {
    Ok(match endpoint {
        Endpoint::Vsock { cid, port } => {
            let cid = parent_cid(*cid)?;
            let s = VsockStream::connect_with_cid_port(cid, *port)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            Box::new(s)
        }
        Endpoint::Unix(path) => {
            let s = UnixStream::connect(path)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            Box::new(s)
        }
        Endpoint::Tcp(addr) => {
            let s = TcpStream::connect(addr)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            s.set_nodelay(true)?;
            Box::new(s)
        }
    })
}

/// A connection under one deadline: every read and write may take only what is left of it,
/// so a peer dripping bytes cannot stretch an exchange past the deadline.
pub struct DeadlineStream {
    conn: Conn,
    deadline: Instant,
}

enum Conn {
    Vsock(VsockStream),
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl DeadlineStream {
    /// Connects to `endpoint`; the connection ends being usable at `deadline`.
    pub fn connect(endpoint: &Endpoint, deadline: Instant) -> io::Result<Self> {
        let left = left_until(deadline)?;
        let conn = match endpoint {
            Endpoint::Vsock { cid, port } => {
                let cid = parent_cid(*cid)?;
                Conn::Vsock(VsockStream::connect_with_cid_port(cid, *port)?)
            }
            Endpoint::Unix(path) => Conn::Unix(UnixStream::connect(path)?),
            Endpoint::Tcp(addr) => {
                let addr = std::net::ToSocketAddrs::to_socket_addrs(addr)?
                    .next()
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")
                    })?;
                let s = TcpStream::connect_timeout(&addr, left)?;
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
        };
        Ok(Self { conn, deadline })
    }

    /// When the connection stops being usable.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    fn arm(&self, read: bool) -> io::Result<()> {
        let left = Some(left_until(self.deadline)?);
        match (&self.conn, read) {
            (Conn::Vsock(s), true) => s.set_read_timeout(left),
            (Conn::Vsock(s), false) => s.set_write_timeout(left),
            (Conn::Unix(s), true) => s.set_read_timeout(left),
            (Conn::Unix(s), false) => s.set_write_timeout(left),
            (Conn::Tcp(s), true) => s.set_read_timeout(left),
            (Conn::Tcp(s), false) => s.set_write_timeout(left),
        }
    }
}

/// What is left until `deadline` (never zero, which would mean "no timeout"), or `TimedOut`.
fn left_until(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the deadline passed",
        ));
    }
    Ok(left)
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(true)?;
        match &mut self.conn {
            Conn::Vsock(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm(false)?;
        match &mut self.conn {
            Conn::Vsock(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.conn {
            Conn::Vsock(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
        }
    }
}

/// Reads one frame's payload. `Ok(None)` is a clean end of stream between frames. A frame
/// that cannot be read (too large, cut short) is an `InvalidData` error carrying the
/// [`FrameError`]: see [`frame_error`].
pub fn read_frame(stream: &mut dyn Read) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    match stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = protocol::payload_len(header).map_err(bad_frame)?;
    // Memory follows the bytes that arrive, not the length announced: a header promising the
    // maximum and then nothing costs nothing.
    let mut payload = Vec::new();
    let got = stream
        .take(len as u64)
        .read_to_end(&mut payload)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                bad_frame(FrameError::Truncated {
                    needed: len,
                    got: 0,
                })
            } else {
                e
            }
        })?;
    if got < len {
        return Err(bad_frame(FrameError::Truncated { needed: len, got }));
    }
    Ok(Some(payload))
}

/// The error of a frame that could not be read or written.
pub fn bad_frame(e: FrameError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The frame error inside an error of [`read_frame`], if that is what it is.
pub fn frame_error(e: &io::Error) -> Option<&FrameError> {
    e.get_ref()?.downcast_ref()
}

/// Writes one complete frame (as produced by [`protocol::encode_frame`]).
pub fn write_frame(stream: &mut dyn Write, frame: &[u8]) -> io::Result<()> {
    stream.write_all(frame)?;
    stream.flush()
}

/// One request frame out, one response payload back, on a fresh connection to `endpoint`.
pub fn exchange(endpoint: &Endpoint, frame: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let mut stream = connect(endpoint, timeout)?;
    write_frame(&mut stream, frame)?;
    read_frame(&mut stream)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed without an answer",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_goes_through_a_unix_socket_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::Unix(dir.path().join("t.sock"));
        let listener = Listener::bind(&endpoint).unwrap();
        let server = std::thread::spawn(move || {
            let mut s = listener.accept().unwrap();
            let payload = read_frame(&mut s).unwrap().unwrap();
            let request: protocol::EnclaveRequest = protocol::decode_payload(&payload).unwrap();
            assert!(matches!(request, protocol::EnclaveRequest::Status));
            let reply = protocol::encode_frame(&protocol::EnclaveRequest::Status).unwrap();
            write_frame(&mut s, &reply).unwrap();
            assert!(read_frame(&mut s).unwrap().is_none(), "a clean end");
        });
        let frame = protocol::encode_frame(&protocol::EnclaveRequest::Status).unwrap();
        let payload = exchange(&endpoint, &frame, Duration::from_secs(5)).unwrap();
        assert_eq!(payload, frame[FRAME_HEADER_LEN..]);
        server.join().unwrap();
    }

    #[test]
    fn bad_length_prefixes_and_cut_frames_are_frame_errors() {
        let mut oversized: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        let e = read_frame(&mut oversized).unwrap_err();
        assert!(matches!(frame_error(&e), Some(FrameError::TooLarge { .. })));
        let mut cut: &[u8] = &[0, 0, 0, 4, 1];
        let e = read_frame(&mut cut).unwrap_err();
        assert!(matches!(
            frame_error(&e),
            Some(FrameError::Truncated { needed: 4, .. })
        ));
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(frame_error(&refused).is_none());
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty).unwrap().is_none());
    }

    /// A host announcing the largest frame and sending a few bytes costs those bytes, not the
    /// announced length; the cut frame says how much arrived.
    #[test]
    fn memory_follows_the_bytes_that_arrive() {
        struct Counting<'a>(&'a [u8], usize);
        impl Read for Counting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1 = self.1.max(buf.len());
                Ok(n)
            }
        }
        let max = u32::try_from(protocol::MAX_FRAME_LEN).unwrap();
        let mut bytes = max.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[7; 10]);
        let mut host = Counting(&bytes, 0);
        let e = read_frame(&mut host).unwrap_err();
        assert!(matches!(
            frame_error(&e),
            Some(FrameError::Truncated { got: 10, .. })
        ));
        assert!(
            host.1 < protocol::MAX_FRAME_LEN / 2,
            "a {} byte buffer was offered for 10 bytes",
            host.1
        );
    }

    #[test]
    fn the_tcp_listener_reports_its_port() {
        let listener = Listener::bind(&Endpoint::Tcp("127.0.0.1:0".into())).unwrap();
        let Endpoint::Tcp(addr) = listener.local_endpoint().unwrap() else {
            panic!("not tcp")
        };
        assert!(!addr.ends_with(":0"));
        let vsock = connect(
            &Endpoint::Vsock { cid: None, port: 1 },
            Duration::from_secs(1),
        );
        assert_eq!(
            vsock.err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidInput)
        );
    }
}
