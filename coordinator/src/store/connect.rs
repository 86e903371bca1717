//! The connection to PostgreSQL: over TLS (rustls with ring) by default, the server's certificate
//! checked (its name, and a chain to the roots of `--store-ca` or the system's), and a server
//! that does not offer TLS refused. Plaintext only when the operator says so
//! (`--store-tls disable`), and then with a warning in the log.
//!
//! Whoever sits on the path between the coordinator and its database would otherwise read every
//! approval and payload the coordinator stores and could change its state (threat model, audit
//! finding 7). The URL's password never reaches an error or a log: errors name the endpoint
//! (hosts and ports) only.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use postgres::config::{Host, SslMode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::StoreError;

/// Whether the connection to PostgreSQL uses TLS (`--store-tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TlsMode {
    /// TLS with the server's certificate checked; a server without TLS is refused.
    #[default]
    Require,
    /// Plaintext. Only for a database reached over a path nobody else shares (a local test
    /// server); logged as a warning at every connection.
    Disable,
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsMode::Require => "require",
            TlsMode::Disable => "disable",
        })
    }
}

/// How the store reaches PostgreSQL (SQLite ignores it): the TLS mode, and the PEM file of the
/// roots the server's certificate must chain to (`None`: the system's roots).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostgresTls {
    /// Require TLS, or connect in plaintext.
    pub mode: TlsMode,
    /// The roots (`--store-ca`); the system's when `None`.
    pub ca_file: Option<PathBuf>,
}

impl PostgresTls {
    /// TLS required, checked against the roots in `ca_file` (or the system's).
    pub fn require(ca_file: Option<PathBuf>) -> Self {
        Self {
            mode: TlsMode::Require,
            ca_file,
        }
    }

    /// Plaintext, said explicitly.
    pub fn disabled() -> Self {
        Self {
            mode: TlsMode::Disable,
            ca_file: None,
        }
    }
}

/// Connects to the PostgreSQL of `url` as `tls` says.
pub(super) fn connect(url: &str, tls: &PostgresTls) -> Result<postgres::Client, StoreError> {
    let mut config =
        postgres::Config::from_str(url).map_err(|e| StoreError::BadPostgresUrl(e.to_string()))?;
    let endpoint = endpoint(&config);
    let connected = match tls.mode {
        TlsMode::Disable => {
            if tls.ca_file.is_some() {
                return Err(StoreError::TlsSetup(
                    "--store-ca names roots for TLS, but --store-tls is disable".into(),
                ));
            }
            if config.get_ssl_mode() == SslMode::Require {
                return Err(StoreError::TlsSetup(
                    "the store URL says sslmode=require, but --store-tls is disable".into(),
                ));
            }
            tracing::warn!(
                %endpoint,
                "PostgreSQL without TLS (--store-tls disable): whoever is on the path reads what \
                 the coordinator stores and can change it"
            );
            config.ssl_mode(SslMode::Disable);
            config.connect(postgres::NoTls)
        }
        TlsMode::Require => {
            if config.get_ssl_mode() == SslMode::Disable {
                return Err(StoreError::TlsSetup(
                    "the store URL says sslmode=disable; plaintext needs --store-tls disable"
                        .into(),
                ));
            }
            config.ssl_mode(SslMode::Require);
            let client_config = client_config(tls.ca_file.as_deref())?;
            config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(client_config))
        }
    };
    connected.map_err(|error| StoreError::Connect {
        endpoint,
        tls: tls.mode,
        error,
    })
}

/// The hosts and ports of `config`, for messages (never the user or the password).
fn endpoint(config: &postgres::Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| {
        ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432)
    };
    let mut names: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), port(i)),
        })
        .collect();
    if names.is_empty() {
        names = config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, addr)| format!("{addr}:{}", port(i)))
            .collect();
    }
    if names.is_empty() {
        "(no host)".into()
    } else {
        names.join(",")
    }
}

/// rustls with ring, trusting the roots of `ca_file` only, or the system's without one.
fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let shown = path.display();
            let pem = std::fs::read(path)
                .map_err(|e| StoreError::TlsSetup(format!("--store-ca {shown}: {e}")))?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::TlsSetup(format!("--store-ca {shown}: {e}")))?;
            let (added, ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(StoreError::TlsSetup(format!(
                    "--store-ca {shown}: no usable CERTIFICATE in the file"
                )));
            }
            if ignored > 0 {
                tracing::warn!(file = %shown, added, ignored, "--store-ca: some certificates do not parse and are ignored");
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(StoreError::TlsSetup(
                    "no system root certificates found: name the database's CA with --store-ca FILE"
                        .into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::TlsSetup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn refused(url: &str, tls: &PostgresTls) -> StoreError {
        match connect(url, tls) {
            Ok(_) => panic!("connected"),
            Err(e) => e,
        }
    }

    #[test]
    fn messages_name_the_endpoint_never_the_password() {
        let config = postgres::Config::from_str(
            "postgres://cohort:s3cret-pw@db.example:6543,other:7000/cohort",
        )
        .unwrap();
        assert_eq!(endpoint(&config), "db.example:6543,other:7000");
        let config =
            postgres::Config::from_str("host=/run/pg port=5433 password=s3cret-pw").unwrap();
        assert_eq!(endpoint(&config), "/run/pg/.s.PGSQL.5433");

        // A URL that does not parse: the reason, not the URL.
        let e = refused(
            "postgres://cohort:s3cret-pw@db/x?nonsense=1",
            &PostgresTls::default(),
        );
        assert!(matches!(e, StoreError::BadPostgresUrl(_)), "{e}");
        assert!(!e.to_string().contains("s3cret-pw"), "{e}");
    }

    #[test]
    fn contradicting_settings_are_refused_before_any_connection() {
        let url = "postgres://cohort:s3cret-pw@127.0.0.1:1/x";
        for (url, tls) in [
            (format!("{url}?sslmode=disable"), PostgresTls::require(None)),
            (format!("{url}?sslmode=require"), PostgresTls::disabled()),
            (
                url.to_string(),
                PostgresTls {
                    mode: TlsMode::Disable,
                    ca_file: Some("/nonexistent".into()),
                },
            ),
        ] {
            let e = refused(&url, &tls);
            assert!(matches!(e, StoreError::TlsSetup(_)), "{url}: {e}");
            assert!(!e.to_string().contains("s3cret-pw"), "{e}");
        }
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for file in [empty, dir.path().join("missing.pem")] {
            let e = refused(
                "postgres://cohort@127.0.0.1:1/x",
                &PostgresTls::require(Some(file.clone())),
            );
            let StoreError::TlsSetup(message) = &e else {
                panic!("{e}")
            };
            assert!(message.contains(&file.display().to_string()), "{message}");
        }
    }
}
