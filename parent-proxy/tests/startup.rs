//! The proxy refuses to start, by name, when its KMS channel leads to AWS and the system trust
//! store holds no CA certificate (an image without Debian's ca-certificates), where a debug
//! build's HTTP client used to panic; with a tunnel to a local stand-in (simulated mode) it
//! starts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/node-0";

/// The proxy with an empty trust store (rustls-native-certs reads `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` instead of the system's when they are set) and a KMS channel on a Unix
/// socket in `dir`.
fn proxy(dir: &Path, extra: &[&str]) -> Child {
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, b"").unwrap();
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let pcr = "11".repeat(48);
    let kms = format!("unix:{}", dir.join("kms.sock").display());
    let mut args = vec![
        "--enclave",
        "unix:/nonexistent/enclave.sock",
        "--listen",
        "127.0.0.1:0",
        "--pcr0",
        &pcr,
        "--kms-listen",
        &kms,
        "--kms-key-id",
        ARN,
        "--kms-region",
        "eu-west-1",
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_cohort-parent-proxy"))
        .args(args)
        .env("SSL_CERT_FILE", &empty)
        .env("SSL_CERT_DIR", &certs)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn without_ca_certificates_the_proxy_refuses_to_start_unless_it_tunnels_to_a_local_stand_in() {
    let dir = tempfile::tempdir().unwrap();
    let out = proxy(dir.path(), &[]).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no_ca_certificates"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!dir.path().join("kms.sock").exists());

    // The control: tunnelled to a stand-in, the same proxy gets past the credential chain and
    // listens on its KMS channel.
    let dir = tempfile::tempdir().unwrap();
    let mut child = proxy(dir.path(), &["--kms-tunnel-to", "127.0.0.1:1"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let listening = loop {
        if dir.path().join("kms.sock").exists() {
            break true;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("the proxy exited ({status}): {stderr}");
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(listening, "the KMS channel never listened");
}
