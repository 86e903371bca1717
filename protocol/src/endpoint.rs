//! Where an enclave listens and where its proxy connects: one textual form for both.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A socket address of the enclave <-> proxy link.
///
/// * `vsock:CID:PORT` — production (the proxy connects to the enclave's CID; the enclave listens
///   with CID `any`, written `vsock:any:PORT`);
/// * `unix:PATH` — simulated mode, a Unix socket;
/// * `tcp:HOST:PORT` — simulated mode, TCP (loopback only in practice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// AF_VSOCK: context id (`None` = any) and port.
    Vsock {
        /// Context id; `None` listens on any.
        cid: Option<u32>,
        /// Port.
        port: u32,
    },
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// A TCP `host:port`.
    Tcp(String),
}

/// The text is not an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid endpoint `{input}`: {reason} (expected vsock:CID:PORT, unix:PATH or tcp:HOST:PORT)"
)]
pub struct EndpointError {
    input: String,
    reason: &'static str,
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| EndpointError {
            input: s.to_string(),
            reason,
        };
        let (scheme, rest) = s.split_once(':').ok_or_else(|| err("missing scheme"))?;
        match scheme {
            "vsock" => {
                let (cid, port) = rest.split_once(':').ok_or_else(|| err("missing port"))?;
                let cid = match cid {
                    "any" => None,
                    c => Some(c.parse().map_err(|_| err("bad context id"))?),
                };
                let port = port.parse().map_err(|_| err("bad port"))?;
                Ok(Self::Vsock { cid, port })
            }
            "unix" if !rest.is_empty() => Ok(Self::Unix(PathBuf::from(rest))),
            "tcp"
                if rest
                    .rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok()) =>
            {
                Ok(Self::Tcp(rest.to_string()))
            }
            "unix" | "tcp" => Err(err("missing or bad address")),
            _ => Err(err("unknown scheme")),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vsock { cid: None, port } => write!(f, "vsock:any:{port}"),
            Self::Vsock { cid: Some(c), port } => write!(f, "vsock:{c}:{port}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in [
            "vsock:any:5005",
            "vsock:16:5005",
            "unix:/tmp/e.sock",
            "tcp:127.0.0.1:7000",
        ] {
            assert_eq!(s.parse::<Endpoint>().unwrap().to_string(), s);
        }
        for bad in [
            "",
            "vsock:1",
            "vsock:x:1",
            "unix:",
            "tcp:host",
            "http://x",
            "tcp:h:99999",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }
}
