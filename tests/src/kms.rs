//! A local KMS stand-in (a real `cohort-kms` process) behind the proxy's real `aws-sdk-kms`
//! relay, with a parent in the middle that the test controls: the world of `tests/kms.rs` and
//! of the `seal_latency` example.

// Test support: a broken invariant here should stop the test at once.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attestation::Nsm;
use attestation::sim::{SimulatedCa, SimulatedNsm, simulated_pcrs};
use enclave::kms::KmsSealingAuthority;
use parent_proxy::kms::KmsRelay;
use protocol::parent::{ParentRequest, ParentResponse};
use protocol::{Endpoint, FRAME_HEADER_LEN};
use serde_bytes::ByteBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use crate::Proc;

/// The measured image: the key policy admits it.
pub const IMAGE: [u8; 48] = [0x42; 48];
/// Another image: the key policy refuses it.
pub const OTHER_IMAGE: [u8; 48] = [0x43; 48];

/// What the parent in the middle does to each exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Relays faithfully.
    Honest,
    /// Alters the CMS envelope of every answer.
    FlipEnvelope,
    /// Alters the wrapped key of every `Decrypt`.
    FlipCiphertextBlob,
    /// Alters the attestation document of every request.
    FlipAttestation,
    /// Hangs up without an answer.
    Down,
    /// Answers for another KMS key: rewrites the key id of every successful answer.
    OtherKeyId,
}

/// The key id the parent puts in answers in [`Mode::OtherKeyId`].
pub const OTHER_KEY_ARN: &str =
    "arn:aws:kms:us-east-1:999999999999:key/00000000-0000-4000-8000-000000000000";

/// The parent in the middle: a mode, what it saw, the proxy's real KMS relay.
pub struct Parent {
    mode: Mutex<Mode>,
    /// The last Recipient document the enclave sent (what a parent sees).
    pub seen: Mutex<Option<Vec<u8>>>,
    /// The KMS key the enclave's last request named.
    pub named: Mutex<Option<protocol::KmsKeyArn>>,
    relay: KmsRelay,
}

/// Flips a byte near the end: in a document's COSE signature, in a ciphertext blob's tag.
fn flip_last(b: &mut ByteBuf) {
    let n = b.len();
    b[n - 20] ^= 0x01;
}

async fn serve_parent(listener: UnixListener, parent: Arc<Parent>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let parent = parent.clone();
        tokio::spawn(async move {
            loop {
                let mut header = [0u8; FRAME_HEADER_LEN];
                if stream.read_exact(&mut header).await.is_err() {
                    return;
                }
                let len = protocol::payload_len(header).unwrap();
                let mut payload = vec![0u8; len];
                stream.read_exact(&mut payload).await.unwrap();
                let mut request: ParentRequest = protocol::decode_payload(&payload).unwrap();
                let mode = *parent.mode.lock().unwrap();
                if mode == Mode::Down {
                    return; // hang up without an answer
                }
                match &mut request {
                    ParentRequest::GenerateDataKey {
                        attestation,
                        key_id,
                    }
                    | ParentRequest::Decrypt {
                        attestation,
                        key_id,
                        ..
                    } => {
                        *parent.seen.lock().unwrap() = Some(attestation.to_vec());
                        *parent.named.lock().unwrap() = key_id.clone();
                        if mode == Mode::FlipAttestation {
                            flip_last(attestation);
                        }
                    }
                }
                if let (
                    Mode::FlipCiphertextBlob,
                    ParentRequest::Decrypt {
                        ciphertext_blob, ..
                    },
                ) = (mode, &mut request)
                {
                    flip_last(ciphertext_blob);
                }
                let mut response = parent.relay.handle(&request).await;
                if mode == Mode::OtherKeyId {
                    match &mut response {
                        ParentResponse::DataKey { key_id, .. }
                        | ParentResponse::Decrypted { key_id, .. } => {
                            *key_id = OTHER_KEY_ARN.to_string()
                        }
                        ParentResponse::Error { .. } => {}
                    }
                }
                if mode == Mode::FlipEnvelope {
                    match &mut response {
                        ParentResponse::DataKey {
                            ciphertext_for_recipient,
                            ..
                        }
                        | ParentResponse::Decrypted {
                            ciphertext_for_recipient,
                            ..
                        } => ciphertext_for_recipient[200] ^= 0x01, // the RSA-OAEP key
                        ParentResponse::Error { .. } => {}
                    }
                }
                let frame = protocol::encode_frame(&response).unwrap();
                stream.write_all(&frame).await.unwrap();
            }
        });
    }
}

/// A running stand-in with one key (policy: [`IMAGE`] only) and the parent in front of it.
pub struct World {
    /// Its directory (CA, stand-in data, sockets).
    pub dir: tempfile::TempDir,
    /// The stand-in process.
    pub kms: Proc,
    /// The stand-in's URL.
    pub kms_url: String,
    /// The KMS key (its bare id, as `CreateKey` returns it and `--kms-key-id` takes it).
    pub key_id: String,
    /// The KMS key's ARN.
    pub key_arn: protocol::KmsKeyArn,
    /// The simulated CA.
    pub ca_dir: PathBuf,
    /// The parent in the middle.
    pub parent: Arc<Parent>,
    /// The parent's socket (what enclaves dial).
    pub socket: PathBuf,
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

    /// An enclave's sealing authority for `image`, through the parent.
    pub fn authority(&self, image: [u8; 48]) -> KmsSealingAuthority {
        KmsSealingAuthority::new(Endpoint::Unix(self.socket.clone()), self.nsm(image))
    }

    /// An enclave's sealing authority for `image` on an instance with the IAM role `role`.
    pub fn authority_on_role(&self, image: [u8; 48], role: &str) -> KmsSealingAuthority {
        KmsSealingAuthority::new(
            Endpoint::Unix(self.socket.clone()),
            self.nsm_on_role(image, role),
        )
    }

    /// Changes what the parent does.
    pub fn set(&self, mode: Mode) {
        *self.parent.mode.lock().unwrap() = mode;
    }

    /// A KMS client of the stand-in, with the parent's powers.
    pub fn client(&self) -> aws_sdk_kms::Client {
        cli::kms::sim_client(&self.kms_url)
    }
}

/// Starts the stand-in, creates the key, and puts the parent in front of it.
pub async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let ca = SimulatedCa::load_or_generate(&ca_dir).unwrap();
    drop(ca);
    let addr_file = dir.path().join("kms.addr");
    let kms = Proc::spawn(
        &crate::bin("cohort-kms"),
        &[
            "--data-dir".into(),
            dir.path().join("kms").display().to_string(),
            "--addr-file".into(),
            addr_file.display().to_string(),
            "--attestation-root".into(),
            ca_dir.join("root.pem").display().to_string(),
        ],
        &dir.path().join("kms.log"),
    )
    .unwrap();
    let mut addr = String::new();
    for _ in 0..200 {
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            addr = a.trim().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !addr.is_empty(),
        "cohort-kms did not start: {}",
        kms.output()
    );
    let kms_url = format!("http://{addr}");
    let client = cli::kms::sim_client(&kms_url);
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
    let socket = dir.path().join("parent.sock");
    let parent = Arc::new(Parent {
        mode: Mutex::new(Mode::Honest),
        seen: Mutex::new(None),
        named: Mutex::new(None),
        relay: KmsRelay::new(client, key_id.clone()),
    });
    tokio::spawn(serve_parent(
        UnixListener::bind(&socket).unwrap(),
        parent.clone(),
    ));
    World {
        dir,
        kms,
        kms_url,
        key_id,
        key_arn,
        ca_dir,
        parent,
        socket,
    }
}
