//! A local KMS stand-in (a real `cohort-kms` process, serving HTTPS with a certificate from the
//! simulated CA) behind the proxy's real KMS gateway (SigV4 signing, the byte tunnel), with a
//! parent in the middle that the test controls: the world of `tests/kms.rs` and of the
//! `seal_latency` example.
//!
//! The parent in the middle does what a compromised parent can: cut the tunnel, alter or drip
//! its bytes, replay an earlier session's bytes, or lead the tunnel to a KMS of its own — one
//! that answers `GenerateDataKey` with a data key the parent chose, wrapped to the enclave's
//! Recipient key, behind a certificate from another CA.

// Test support: a broken invariant here should stop the test at once.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attestation::Nsm;
use attestation::sim::{SimulatedCa, SimulatedNsm, simulated_pcrs};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use enclave::kms::{KmsSealingAuthority, Roots};
use parent_proxy::kms::{KmsGateway, KmsSettings};
use protocol::parent::{ParentRequest, ParentResponse};
use protocol::{Endpoint, FRAME_HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};

use crate::Proc;

/// The measured image: the key policy admits it.
pub const IMAGE: [u8; 48] = [0x42; 48];
/// Another image: the key policy refuses it.
pub const OTHER_IMAGE: [u8; 48] = [0x43; 48];

/// The data key the parent's own KMS hands out: what the parent would know.
pub const PARENTS_DATA_KEY: [u8; 32] = [0x66; 32];

/// What the parent in the middle does to each tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Relays faithfully (and records what it relayed).
    Honest,
    /// Hangs up without an answer.
    Down,
    /// Flips one bit of what KMS sends, past the first 100 bytes.
    FlipTunnel,
    /// Leads the tunnel to the parent's own KMS: TLS with a certificate for KMS's host name
    /// from another CA, answering with [`PARENTS_DATA_KEY`] wrapped to the Recipient key.
    ParentsKms,
    /// Answers in the clear, as KMS's JSON would be, without TLS.
    Cleartext,
    /// Sends what KMS sent in the last honest tunnel again, without asking KMS.
    Replay,
    /// Relays faithfully but passes KMS's bytes on one per second.
    Drip,
}

/// The parent in the middle: a mode, what it relayed, the proxy's real gateway.
pub struct Parent {
    mode: Mutex<Mode>,
    /// Every byte that went through an honest tunnel, both ways (what a parent sees).
    pub seen: Mutex<Vec<u8>>,
    /// What KMS sent in the last honest tunnel.
    last_answer: Mutex<Vec<u8>>,
    /// The KMS key the enclave's last request named.
    pub named: Mutex<Option<protocol::KmsKeyArn>>,
    /// Bytes passed on in [`Mode::Drip`].
    pub dripped: AtomicUsize,
    gateway: KmsGateway,
    kms_tls: String,
    parents_kms: String,
}

async fn read_request(stream: &mut UnixStream) -> Option<ParentRequest> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    stream.read_exact(&mut header).await.ok()?;
    let len = protocol::payload_len(header).unwrap();
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.ok()?;
    Some(protocol::decode_payload(&payload).unwrap())
}

async fn answer(stream: &mut UnixStream, response: &ParentResponse) {
    let frame = protocol::encode_frame(response).unwrap();
    let _ = stream.write_all(&frame).await;
}

/// Copies `from` to `to` until either ends, passing each chunk through `f`.
async fn pump<R, W>(mut from: R, mut to: W, mut f: impl FnMut(&mut Vec<u8>))
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = buf[..n].to_vec();
        f(&mut chunk);
        if to.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl Parent {
    async fn tunnel(self: Arc<Self>, mut enclave: UnixStream, mode: Mode) {
        match mode {
            Mode::Cleartext => {
                answer(&mut enclave, &ParentResponse::TunnelOpen).await;
                // Whatever the enclave says, a KMS answer in the clear.
                let mut first = [0u8; 512];
                let _ = enclave.read(&mut first).await;
                let body = format!(
                    r#"{{"KeyId":"{}","CiphertextBlob":"{}","CiphertextForRecipient":"{}"}}"#,
                    self.named.lock().unwrap().as_ref().unwrap(),
                    B64.encode(b"forged"),
                    B64.encode(b"forged")
                );
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = enclave.write_all(reply.as_bytes()).await;
            }
            Mode::Replay => {
                answer(&mut enclave, &ParentResponse::TunnelOpen).await;
                let recorded = self.last_answer.lock().unwrap().clone();
                assert!(!recorded.is_empty(), "replay needs an honest tunnel first");
                let (mut read, mut write) = enclave.into_split();
                tokio::spawn(async move {
                    let mut sink = vec![0u8; 16 * 1024];
                    while read.read(&mut sink).await.is_ok_and(|n| n > 0) {}
                });
                let _ = write.write_all(&recorded).await;
                // Keep the connection open: the enclave decides, not an end of stream.
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            _ => {
                let target = if mode == Mode::ParentsKms {
                    &self.parents_kms
                } else {
                    &self.kms_tls
                };
                let upstream = TcpStream::connect(target).await.unwrap();
                answer(&mut enclave, &ParentResponse::TunnelOpen).await;
                let (er, ew) = enclave.into_split();
                let (ur, uw) = upstream.into_split();
                let me = self.clone();
                let up = tokio::spawn(pump(er, uw, move |chunk| {
                    me.seen.lock().unwrap().extend_from_slice(chunk);
                }));
                let me = self.clone();
                let mut offset = 0usize;
                if mode == Mode::Drip {
                    let mut ur = ur;
                    let mut ew = ew;
                    let mut byte = [0u8; 1];
                    while ur.read_exact(&mut byte).await.is_ok() {
                        if ew.write_all(&byte).await.is_err() {
                            break;
                        }
                        me.dripped.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    up.abort();
                    return;
                }
                me.last_answer.lock().unwrap().clear();
                pump(ur, ew, move |chunk| {
                    if mode == Mode::FlipTunnel && offset <= 100 && offset + chunk.len() > 100 {
                        chunk[100 - offset] ^= 0x01;
                    }
                    offset += chunk.len();
                    me.seen.lock().unwrap().extend_from_slice(chunk);
                    me.last_answer.lock().unwrap().extend_from_slice(chunk);
                })
                .await;
                let _ = up.await;
            }
        }
    }
}

async fn serve_parent(listener: UnixListener, parent: Arc<Parent>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let parent = parent.clone();
        tokio::spawn(async move {
            while let Some(request) = read_request(&mut stream).await {
                let mode = *parent.mode.lock().unwrap();
                if mode == Mode::Down {
                    return; // hang up without an answer
                }
                *parent.named.lock().unwrap() = Some(request.key().clone());
                match request {
                    ParentRequest::SignKms {
                        key,
                        operation,
                        body_sha256,
                    } => {
                        let signed = parent.gateway.sign(&key, operation, &body_sha256).await;
                        answer(&mut stream, &signed).await;
                    }
                    ParentRequest::OpenTunnel { .. } => {
                        parent.clone().tunnel(stream, mode).await;
                        return;
                    }
                }
            }
        });
    }
}

/// The parent's own KMS: HTTPS with a certificate for `kms.us-east-1.amazonaws.com` from
/// `ca`, answering every `GenerateDataKey` and `Decrypt` with [`PARENTS_DATA_KEY`] wrapped to
/// the Recipient's key (read from the document, which it does not need to verify).
async fn start_parents_kms(ca: &SimulatedCa) -> String {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    let tls = {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        // Valid from an hour ago for a day: with a lifetime of an hour it expired the second
        // it was made, and the attack test passed or failed by how fast the world came up
        // (CI, stop 32: "certificate is not valid after … (1 seconds ago)").
        let (key, chain) = ca
            .issue_tls_server("kms.us-east-1.amazonaws.com", Duration::from_secs(86_400))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                chain.into_iter().map(CertificateDer::from).collect(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
            )
            .unwrap()
    };
    let listener = host::Listener::bind(&Endpoint::Tcp("127.0.0.1:0".into()))
        .await
        .unwrap();
    let Endpoint::Tcp(addr) = listener.local_endpoint().unwrap() else {
        unreachable!()
    };
    tokio::spawn(async move {
        host::serve::serve_https(
            &listener,
            Arc::new(tls),
            Duration::from_secs(10),
            std::future::pending(),
            |request: http::Request<hyper::body::Incoming>| async move {
                let body = request.into_body().collect().await.unwrap().to_bytes();
                let asked: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let document = B64
                    .decode(asked["Recipient"]["AttestationDocument"].as_str().unwrap())
                    .unwrap();
                let doc = attestation::verify::decode_unverified(&document).unwrap();
                let envelope = attestation::recipient::seal_envelope(
                    doc.public_key.as_ref().unwrap(),
                    &PARENTS_DATA_KEY,
                )
                .unwrap();
                let answer = serde_json::json!({
                    "KeyId": asked["KeyId"],
                    "CiphertextBlob": B64.encode(b"the parent knows this key"),
                    "CiphertextForRecipient": B64.encode(envelope),
                });
                http::Response::new(Full::new(Bytes::from(answer.to_string())))
            },
        )
        .await;
    });
    addr
}

/// A running stand-in with one key (policy: [`IMAGE`] only) and the parent in front of it.
pub struct World {
    /// Its directory (CA, stand-in data, sockets).
    pub dir: tempfile::TempDir,
    /// The stand-in process.
    pub kms: Proc,
    /// The stand-in's URL (plain HTTP: the account owner's and the parent's own calls).
    pub kms_url: String,
    /// The stand-in's HTTPS address (where honest tunnels lead).
    pub kms_tls: String,
    /// The KMS key (its bare id, as `CreateKey` returns it and `--kms-key-id` takes it).
    pub key_id: String,
    /// The KMS key's ARN.
    pub key_arn: protocol::KmsKeyArn,
    /// The simulated CA.
    pub ca_dir: PathBuf,
    /// Another CA: the parent's own, which issued its KMS's certificate.
    pub parents_ca: SimulatedCa,
    /// The parent in the middle.
    pub parent: Arc<Parent>,
    /// The parent's socket (what enclaves dial).
    pub socket: PathBuf,
}

/// The simulated clusters' static credentials (what `cohort sim up` gives the proxies).
pub fn sim_credentials() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        "cohort-sim",
        "cohort-sim",
        None,
        None,
        "cohort-tests",
    ))
}

impl World {
    /// A simulated NSM measuring `image`, on an instance with node 1's parent role (whose
    /// PCR3 the key policy pins).
    pub fn nsm(&self, image: [u8; 48]) -> Arc<dyn Nsm> {
        self.nsm_on_role(image, &cli::kms::sim_parent_role(1))
    }

    /// A simulated NSM measuring `image`, on an instance with the IAM role `role`.
    pub fn nsm_on_role(&self, image: [u8; 48], role: &str) -> Arc<dyn Nsm> {
        let ca = SimulatedCa::load(&self.ca_dir).unwrap();
        let mut pcrs = simulated_pcrs(&image);
        pcrs.insert(3, attestation::parent::pcr3_of_role(role).to_vec());
        Arc::new(SimulatedNsm::new(ca, "kms-test".into(), pcrs))
    }

    /// The roots a simulated enclave pins: the simulated CA's.
    pub fn roots(&self) -> Roots {
        let ca = SimulatedCa::load(&self.ca_dir).unwrap();
        Roots::from_der(&[ca.root_der().to_vec()]).unwrap()
    }

    /// An enclave's sealing authority for `image`, through the parent, its KMS key named.
    pub fn authority(&self, image: [u8; 48]) -> KmsSealingAuthority {
        self.authority_with(self.nsm(image), self.roots())
    }

    /// An enclave's sealing authority for `image` on an instance with the IAM role `role`.
    pub fn authority_on_role(&self, image: [u8; 48], role: &str) -> KmsSealingAuthority {
        self.authority_with(self.nsm_on_role(image, role), self.roots())
    }

    /// An authority with `nsm` trusting `roots`, its KMS key named.
    pub fn authority_with(&self, nsm: Arc<dyn Nsm>, roots: Roots) -> KmsSealingAuthority {
        use enclave::seal::SealingAuthority;
        let a = KmsSealingAuthority::new(Endpoint::Unix(self.socket.clone()), nsm, roots);
        a.name_kms_key(&self.key_arn).unwrap();
        a
    }

    /// Changes what the parent does.
    pub fn set(&self, mode: Mode) {
        *self.parent.mode.lock().unwrap() = mode;
    }

    /// A KMS client of the stand-in, with the parent's powers.
    pub fn client(&self) -> aws_sdk_kms::Client {
        cli::kms::sim_client(&self.kms_url)
    }

    /// A KMS client of the stand-in signing with `access_key_id`.
    pub fn client_as(&self, access_key_id: &str) -> aws_sdk_kms::Client {
        cli::kms::sim_client_as(&self.kms_url, access_key_id)
    }
}

async fn addr_of(file: &std::path::Path, kms: &Proc) -> String {
    for _ in 0..200 {
        if let Ok(a) = std::fs::read_to_string(file) {
            return a.trim().to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cohort-kms did not start: {}", kms.output());
}

/// Starts the stand-in, creates the key, and puts the parent in front of it.
pub async fn world() -> World {
    world_with_principals(&[]).await
}

/// The access key id of the key administrator in [`world_with_principals`]'s stand-in (the
/// parent signs with `cohort-sim`, node 1's parent role).
pub const ADMIN_ACCESS_KEY: &str = "cohort-kms-admin";

/// [`world`] with a stand-in that names its callers: `principals` maps access key ids to
/// principal ARNs (`--principal`); every other access key id is refused.
pub async fn world_with_principals(principals: &[(&str, &str)]) -> World {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let ca = SimulatedCa::load_or_generate(&ca_dir).unwrap();
    drop(ca);
    let addr_file = dir.path().join("kms.addr");
    let tls_addr_file = dir.path().join("kms-tls.addr");
    let kms = Proc::spawn(
        &crate::bin("cohort-kms"),
        &[
            "--data-dir".into(),
            dir.path().join("kms").display().to_string(),
            "--addr-file".into(),
            addr_file.display().to_string(),
            "--attestation-root".into(),
            ca_dir.join("root.pem").display().to_string(),
            "--tls-listen".into(),
            "127.0.0.1:0".into(),
            "--tls-addr-file".into(),
            tls_addr_file.display().to_string(),
            "--tls-ca".into(),
            ca_dir.display().to_string(),
        ]
        .into_iter()
        .chain(
            principals
                .iter()
                .map(|(id, arn)| format!("--principal={id}={arn}")),
        )
        .collect::<Vec<String>>(),
        &dir.path().join("kms.log"),
    )
    .unwrap();
    let addr = addr_of(&addr_file, &kms).await;
    let kms_tls = addr_of(&tls_addr_file, &kms).await;
    let kms_url = format!("http://{addr}");
    // The key is made by its administrator when callers are named (as Terraform's deployer
    // makes it), else by the unnamed caller.
    let client = match principals.iter().find(|(id, _)| *id == ADMIN_ACCESS_KEY) {
        Some((id, _)) => cli::kms::sim_client_as(&kms_url, id),
        None => cli::kms::sim_client(&kms_url),
    };
    let image = simulated_pcrs(&IMAGE)
        .into_iter()
        .filter(|(i, _)| *i <= 2)
        .map(|(i, v)| (i, hex::encode(v)))
        .collect();
    let policy = cli::kms::key_policy(&cli::kms::PolicyParams::simulated(1, image)).unwrap();
    let key_id = cli::kms::create_key(&client, "test", &policy)
        .await
        .unwrap();
    let key_arn = cli::kms::key_arn(&client, &key_id).await.unwrap();
    let parents_ca = SimulatedCa::generate().unwrap();
    let parents_kms = start_parents_kms(&parents_ca).await;
    let socket = dir.path().join("parent.sock");
    let parent = Arc::new(Parent {
        mode: Mutex::new(Mode::Honest),
        seen: Mutex::new(Vec::new()),
        last_answer: Mutex::new(Vec::new()),
        named: Mutex::new(None),
        dripped: AtomicUsize::new(0),
        gateway: KmsGateway::new(
            Some(sim_credentials()),
            KmsSettings {
                key_id: key_id.clone(),
                tunnel_to: Some(kms_tls.clone()),
                region: None,
            },
        ),
        kms_tls: kms_tls.clone(),
        parents_kms,
    });
    tokio::spawn(serve_parent(
        UnixListener::bind(&socket).unwrap(),
        parent.clone(),
    ));
    World {
        dir,
        kms,
        kms_url,
        kms_tls,
        key_id,
        key_arn,
        ca_dir,
        parents_ca,
        parent,
        socket,
    }
}
