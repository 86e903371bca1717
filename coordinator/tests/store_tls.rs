//! The store over TLS against a real PostgreSQL: a second server that this test starts itself
//! (`initdb`, `pg_ctl`) in a temporary directory on a free port, with a certificate from a CA made
//! for the test; the machine's own server is left alone. The server asks for a password
//! (SCRAM), so the test can also look for the password in what the coordinator prints.
//!
//! First the server offers no TLS: the coordinator refuses it by default and reaches it only
//! with `--store-tls disable`, which it logs as a warning. Then it speaks TLS and refuses
//! plaintext (`hostssl` only, as RDS with `rds.force_ssl = 1`): the store connects with
//! `--store-ca` and works, while a certificate from another CA, the system's roots, a host name
//! the certificate does not name and a plaintext client are all refused.
//!
//! In CI (`CI=true`) missing PostgreSQL binaries fail the test; elsewhere it is skipped with a
//! message.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use attestation::sim::SimulatedCa;
use base64::Engine;
use coordinator::store::{self, PostgresTls, StoreError, latest_schema_version};

mod common;
use common::entry;
use common::process::Coordinator;

/// The directory holding `initdb` and `pg_ctl`: the newest `/usr/lib/postgresql/*/bin` (Debian's
/// layout), else the first directory on `PATH` that has both.
fn pg_bindir() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .or_else(|| std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| has_both(dir)))
}

fn run(command: &mut Command) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// PostgreSQL refuses to run as root: as root, the server's commands run as the `postgres`
/// user (whose ids own the server's files).
struct RunAs(Option<(u32, u32)>);

impl RunAs {
    fn detect() -> Self {
        let id = |args: &[&str]| -> u32 {
            let out = run(Command::new("id").args(args));
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        if id(&["-u"]) != 0 {
            return Self(None);
        }
        Self(Some((id(&["-u", "postgres"]), id(&["-g", "postgres"]))))
    }

    fn command(&self, program: &Path) -> Command {
        match self.0 {
            None => Command::new(program),
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            }
        }
    }

    /// Writes `contents` to `path` (mode `mode`), owned by the server's user.
    fn write(&self, path: &Path, contents: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, contents).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        self.own(path);
    }

    fn own(&self, path: &Path) {
        if let Some((uid, gid)) = self.0 {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
    }
}

/// A PostgreSQL server of the test's own, stopped when dropped.
struct Server {
    bin: PathBuf,
    run_as: RunAs,
    dir: tempfile::TempDir,
    port: u16,
    running: bool,
}

const USER: &str = "cohort";

impl Server {
    /// `initdb` with the user `cohort` and `password`, SCRAM for TCP connections.
    fn init(bin: PathBuf, password: &str) -> Self {
        let run_as = RunAs::detect();
        let dir = tempfile::tempdir().unwrap();
        run_as.own(dir.path());
        let pwfile = dir.path().join("pwfile");
        run_as.write(&pwfile, password.as_bytes(), 0o600);
        run(run_as
            .command(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-U",
                USER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .args(["-E", "UTF8", "--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display())));
        std::fs::remove_file(&pwfile).unwrap();
        let data = dir.path().join("data");
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        conf.push_str("\ninclude 'cohort-test.conf'\n");
        run_as.write(&data.join("postgresql.conf"), conf.as_bytes(), 0o600);
        Self {
            bin,
            run_as,
            dir,
            port: 0,
            running: false,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// (Re)starts the server: with TLS and nothing else on TCP, or with no TLS at all.
    fn start(&mut self, tls: bool) {
        self.stop();
        let hba = if tls {
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostnossl all all 127.0.0.1/32 reject\n"
        } else {
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        };
        self.run_as
            .write(&self.data().join("pg_hba.conf"), hba.as_bytes(), 0o600);
        // A free port: the one the kernel hands out now; should another process take it before
        // the server binds it, the start fails and the next one is tried.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let conf = format!(
                "listen_addresses = '127.0.0.1'\nport = {port}\n\
                 unix_socket_directories = '{}'\nfsync = off\nssl = {}\n\
                 ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
                self.dir.path().display(),
                if tls { "on" } else { "off" }
            );
            self.run_as.write(
                &self.data().join("cohort-test.conf"),
                conf.as_bytes(),
                0o600,
            );
            let started = self
                .run_as
                .command(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .args(["-w", "-t", "60", "start"])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            if started.success() {
                self.port = port;
                self.running = true;
                return;
            }
        }
        panic!(
            "the test's PostgreSQL does not start: {}",
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    fn stop(&mut self) {
        if self.running {
            let _ = self
                .run_as
                .command(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-w", "-m", "fast", "stop"])
                .stdout(Stdio::null())
                .status();
            self.running = false;
        }
    }

    /// The server's key and certificate chain (leaf first), in its data directory.
    fn install_certificate(&self, key_pkcs8: &[u8], chain: &[Vec<u8>]) {
        let chain: String = chain.iter().map(|c| pem("CERTIFICATE", c)).collect();
        self.run_as
            .write(&self.data().join("server.crt"), chain.as_bytes(), 0o644);
        self.run_as.write(
            &self.data().join("server.key"),
            pem("PRIVATE KEY", key_pkcs8).as_bytes(),
            0o600,
        );
    }

    /// The URL with the password: TLS checks the name `localhost`, TCP goes to 127.0.0.1.
    fn url(&self, password: &str, host: &str, options: &str) -> String {
        format!(
            "postgres://{USER}:{password}@{host}:{}/postgres?hostaddr=127.0.0.1{options}",
            self.port
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The refusal of `store::open`, checked to name no password.
fn refused(url: &str, tls: &PostgresTls, password: &str) -> StoreError {
    match store::open(url, tls) {
        Ok(_) => panic!("connected with {tls:?}"),
        Err(e) => {
            assert!(!e.to_string().contains(password), "{e}");
            assert!(!format!("{e:?}").contains(password), "{e:?}");
            e
        }
    }
}

/// The `postgres::Error` of a refused connection.
fn connect_error(e: &StoreError) -> &postgres::Error {
    match e {
        StoreError::Connect { error, .. } => error,
        other => panic!("not a connection refusal: {other}"),
    }
}

/// Whether the refusal `e` is a connection's, and its message (the client's error with its
/// causes) says `reason`.
fn refused_for(e: &StoreError, reason: &str) -> bool {
    connect_error(e);
    e.to_string().contains(reason)
}

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_store_reaches_postgres_over_tls_only() {
    let Some(bin) = pg_bindir() else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "initdb and pg_ctl are missing in CI (scripts/setup.sh installs PostgreSQL)"
        );
        eprintln!("SKIPPING the PostgreSQL TLS test: no initdb/pg_ctl found");
        return;
    };
    let password = format!("pw-{}", hex::encode(rand::random::<[u8; 16]>()));
    let mut server = Server::init(bin, &password);

    // The CA made for this test issues the server's certificate for `localhost`. The other CA
    // has the same names but its own keys: a look-alike, refused on the signature.
    let ca = SimulatedCa::generate().unwrap();
    let other_ca = SimulatedCa::generate().unwrap();
    let (key, chain) = ca
        .issue_tls_server("localhost", Duration::from_secs(86_400))
        .unwrap();
    server.install_certificate(&key, &chain);
    let files = tempfile::tempdir().unwrap();
    let ca_file = files.path().join("ca.pem");
    std::fs::write(&ca_file, ca.root_pem()).unwrap();
    let other_ca_file = files.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, other_ca.root_pem()).unwrap();
    let with_ca = PostgresTls::require(Some(ca_file.clone()));

    // 1. A server that offers no TLS.
    server.start(false);
    let url = server.url(&password, "localhost", "");
    for tls in [PostgresTls::default(), with_ca.clone()] {
        let e = refused(&url, &tls, &password);
        assert!(refused_for(&e, "server does not support TLS"), "{e}");
    }
    // The same server, credentials and URL work once plaintext is allowed explicitly: the
    // refusal above was TLS's, nothing else.
    let mut plain = store::open(&url, &PostgresTls::disabled()).unwrap();
    assert_eq!(plain.schema_version().unwrap(), latest_schema_version());
    drop(plain);

    // The coordinator binary: refused by default (exit 1, a clear message, no password) ...
    let mut refusing = Coordinator::start(&["--store", &url]);
    assert_eq!(refusing.listening_or_exited(), Err(Some(1)));
    let output = refusing.output();
    assert!(output.contains("server does not support TLS"), "{output}");
    assert!(output.contains("--store-tls require"), "{output}");
    assert!(!output.contains(&password), "{output}");
    // ... and with --store-tls disable it runs, saying in its log that it has no TLS.
    let mut plaintext = Coordinator::start(&["--store", &url, "--store-tls", "disable"]);
    let addr = plaintext.listening_or_exited().unwrap();
    assert!(get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
    let output = plaintext.output();
    assert!(
        output.contains("WARN") && output.contains("PostgreSQL without TLS"),
        "{output}"
    );
    assert!(!output.contains(&password), "{output}");
    drop(plaintext);

    // 2. The server speaks TLS and refuses plaintext.
    server.start(true);
    let url = server.url(&password, "localhost", "");

    // With the test CA's root: migrations, a write and a read, over an encrypted session.
    let mut store = store::open(&url, &with_ca).unwrap();
    assert_eq!(store.schema_version().unwrap(), latest_schema_version());
    for i in 0..3 {
        store.append_audit(1_000 + u64::from(i), &entry(i)).unwrap();
    }
    assert_eq!(store::verify_log(&mut store).unwrap(), Ok(3));
    assert_eq!(store.audit_page(1, 1).unwrap()[0].entry, entry(1));
    let (ssl, version) = store
        .transaction(|tx| {
            let row = tx
                .query_opt(
                    "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )?
                .expect("every backend has a pg_stat_ssl row");
            Ok((row.int(0)?, row.text(1)?))
        })
        .unwrap();
    assert_eq!((ssl, version.as_str()), (1, "TLSv1.3"));
    drop(store);

    // A plaintext client: the server refuses it (hostnossl ... reject), as RDS with force_ssl.
    let e = refused(&url, &PostgresTls::disabled(), &password);
    let db = connect_error(&e)
        .as_db_error()
        .unwrap_or_else(|| panic!("not the server's refusal: {e}"));
    assert_eq!(
        *db.code(),
        postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        "{e}"
    );
    assert!(db.message().contains("no encryption"), "{e}");

    // Another CA's root (the look-alike: the chain's signature does not verify), and the
    // system's roots (which do not hold the test's CA: unknown issuer), are refused.
    for tls in [
        PostgresTls::require(Some(other_ca_file.clone())),
        PostgresTls::require(None),
    ] {
        let e = refused(&url, &tls, &password);
        match &e {
            StoreError::Connect { .. } => assert!(
                refused_for(&e, "invalid peer certificate: BadSignature")
                    || (tls.ca_file.is_none()
                        && refused_for(&e, "invalid peer certificate: UnknownIssuer")),
                "{e}"
            ),
            // A machine without system roots refuses before connecting.
            StoreError::TlsSetup(m) if tls.ca_file.is_none() => {
                assert!(m.contains("no system root"), "{e}")
            }
            other => panic!("{other}"),
        }
    }
    // The right CA, but a name the certificate does not carry.
    let by_address = server.url(&password, "127.0.0.1", "");
    let e = refused(&by_address, &with_ca, &password);
    assert!(
        refused_for(&e, "certificate not valid for name \"127.0.0.1\""),
        "{e}"
    );

    // The coordinator binary with --store-ca: it migrates its own schema over TLS and serves.
    {
        let mut store = store::open(&url, &with_ca).unwrap();
        store
            .transaction(|tx| {
                tx.exec("DROP SCHEMA IF EXISTS binary_run CASCADE", &[])?;
                tx.exec("CREATE SCHEMA binary_run", &[])
            })
            .unwrap();
    }
    let in_schema = server.url(
        &password,
        "localhost",
        "&options=-c%20search_path%3Dbinary_run",
    );
    let ca_arg = ca_file.display().to_string();
    let mut serving = Coordinator::start(&["--store", &in_schema, "--store-ca", &ca_arg]);
    let addr = serving.listening_or_exited().unwrap();
    assert!(get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
    let output = serving.output();
    assert!(!output.contains("without TLS"), "{output}");
    assert!(!output.contains(&password), "{output}");
    drop(serving);
    let mut store = store::open(&in_schema, &with_ca).unwrap();
    assert_eq!(store.schema_version().unwrap(), latest_schema_version());
    drop(store);

    // The coordinator binary with another CA's root: refused, exit 1, no password.
    let other_arg = other_ca_file.display().to_string();
    let mut wrong_ca = Coordinator::start(&["--store", &in_schema, "--store-ca", &other_arg]);
    assert_eq!(wrong_ca.listening_or_exited(), Err(Some(1)));
    let output = wrong_ca.output();
    assert!(
        output.contains("invalid peer certificate: BadSignature"),
        "{output}"
    );
    assert!(!output.contains(&password), "{output}");
}
