//! KMS sealing against the local KMS stand-in (a real `cohort-kms` process, reached by the
//! proxy's real `aws-sdk-kms` relay), with a parent in the middle that we control: it tampers
//! with requests and answers, replays documents, calls KMS without a Recipient, and goes down.
//! The enclave's sealing authority must give a clear error every time, never a wrong key, and
//! whatever was sealed must still open once the parent behaves.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attestation::Nsm;
use attestation::recipient::EphemeralKey;
use attestation::sim::{SimulatedCa, SimulatedNsm, simulated_pcrs};
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyEncryptionMechanism, RecipientInfo};
use cohort_tests::Proc;
use enclave::kms::KmsSealingAuthority;
use enclave::seal::{
    BlobKind, LocalSealingAuthority, SealError, Sealer, SealingAuthority, seal, unseal,
};
use parent_proxy::kms::KmsRelay;
use protocol::parent::{ParentRequest, ParentResponse};
use protocol::{Endpoint, FRAME_HEADER_LEN};
use serde_bytes::ByteBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

const IMAGE: [u8; 48] = [0x42; 48];
const OTHER_IMAGE: [u8; 48] = [0x43; 48];

/// What the parent in the middle does to each exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Honest,
    FlipEnvelope,
    FlipCiphertextBlob,
    FlipAttestation,
    Down,
}

struct Parent {
    mode: Mutex<Mode>,
    /// The last Recipient document the enclave sent (what a parent sees).
    seen: Mutex<Option<Vec<u8>>>,
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
                    ParentRequest::GenerateDataKey { attestation }
                    | ParentRequest::Decrypt { attestation, .. } => {
                        *parent.seen.lock().unwrap() = Some(attestation.to_vec());
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

struct World {
    _dir: tempfile::TempDir,
    _kms: Proc,
    kms_url: String,
    key_id: String,
    ca_dir: PathBuf,
    parent: Arc<Parent>,
    socket: PathBuf,
}

impl World {
    fn nsm(&self, image: [u8; 48]) -> Arc<dyn Nsm> {
        let ca = SimulatedCa::load(&self.ca_dir).unwrap();
        Arc::new(SimulatedNsm::new(
            ca,
            "kms-test".into(),
            simulated_pcrs(&image),
        ))
    }

    fn authority(&self, image: [u8; 48]) -> KmsSealingAuthority {
        KmsSealingAuthority::new(Endpoint::Unix(self.socket.clone()), self.nsm(image))
    }

    fn set(&self, mode: Mode) {
        *self.parent.mode.lock().unwrap() = mode;
    }

    fn client(&self) -> aws_sdk_kms::Client {
        cli::kms::sim_client(&self.kms_url)
    }
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let ca = SimulatedCa::load_or_generate(&ca_dir).unwrap();
    drop(ca);
    let addr_file = dir.path().join("kms.addr");
    let kms = Proc::spawn(
        &cohort_tests::bin("cohort-kms"),
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
    let socket = dir.path().join("parent.sock");
    let parent = Arc::new(Parent {
        mode: Mutex::new(Mode::Honest),
        seen: Mutex::new(None),
        relay: KmsRelay::new(client, key_id.clone()),
    });
    tokio::spawn(serve_parent(
        UnixListener::bind(&socket).unwrap(),
        parent.clone(),
    ));
    World {
        _dir: dir,
        _kms: kms,
        kms_url,
        key_id,
        ca_dir,
        parent,
        socket,
    }
}

/// The authority blocks (it runs on the enclave's worker thread): run it off the runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn wrapped_key(blob: &[u8]) -> Vec<u8> {
    let v: ciborium::Value = ciborium::from_reader(blob).unwrap();
    let map = v.as_map().unwrap();
    let get = |k: &str| {
        map.iter()
            .find(|(key, _)| key.as_text() == Some(k))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("v").as_integer().map(i128::from), Some(2));
    assert_eq!(get("authority").as_text(), Some("kms"));
    get("wrapped_key").as_bytes().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampering_parent_gets_clear_errors_and_never_the_key() {
    let w = world().await;
    let auth = Arc::new(w.authority(IMAGE));

    // Honest: seal, then open again.
    let a = auth.clone();
    let blob = blocking(move || seal(a.as_ref(), BlobKind::EddsaShare, "k1", b"the share"))
        .await
        .unwrap();
    let wrapped = wrapped_key(&blob);
    let a = auth.clone();
    let b = blob.clone();
    let (_, plain) = blocking(move || unseal(a.as_ref(), &b, BlobKind::EddsaShare, None))
        .await
        .unwrap();
    assert_eq!(plain.as_slice(), b"the share");

    // The parent alters the envelope, the wrapped key or the document: each is a clear error.
    let cases = [
        (Mode::FlipEnvelope, "CiphertextForRecipient"),
        (Mode::FlipCiphertextBlob, "does not authenticate"),
        (Mode::FlipAttestation, "attestation document is not valid"),
    ];
    for (mode, expected) in cases {
        w.set(mode);
        let a = auth.clone();
        let b = blob.clone();
        let e = blocking(move || unseal(a.as_ref(), &b, BlobKind::EddsaShare, None))
            .await
            .unwrap_err();
        assert!(!e.is_retryable(), "{mode:?}: {e}");
        assert!(e.to_string().contains(expected), "{mode:?}: {e}");
        // Sealing through a tampering parent fails too (no blob is produced).
        if mode != Mode::FlipCiphertextBlob {
            let a = auth.clone();
            let e = blocking(move || seal(a.as_ref(), BlobKind::EddsaShare, "k2", b"x"))
                .await
                .unwrap_err();
            assert!(e.to_string().contains(expected), "{mode:?} seal: {e}");
        }
    }

    // The parent goes down: retryable, and nothing is lost once it is back.
    w.set(Mode::Down);
    let a = auth.clone();
    let b = blob.clone();
    let e = blocking(move || unseal(a.as_ref(), &b, BlobKind::EddsaShare, None))
        .await
        .unwrap_err();
    assert!(matches!(e, SealError::Unavailable(_)), "{e}");
    w.set(Mode::Honest);
    let a = auth.clone();
    let b = blob.clone();
    let (_, plain) = blocking(move || unseal(a.as_ref(), &b, BlobKind::EddsaShare, None))
        .await
        .unwrap();
    assert_eq!(plain.as_slice(), b"the share");

    // The parent itself, with the wrapped key it stores: without a Recipient, access denied.
    let client = w.client();
    let e = client
        .decrypt()
        .ciphertext_blob(Blob::new(wrapped.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"), "{e:?}");
    let e = client
        .generate_data_key()
        .key_id(&w.key_id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    // Replaying the enclave's own Recipient document: KMS answers, but only with an envelope
    // for the enclave's ephemeral key, which the parent does not have.
    let seen = w.parent.seen.lock().unwrap().clone().unwrap();
    let out = client
        .decrypt()
        .ciphertext_blob(Blob::new(wrapped.clone()))
        .recipient(
            RecipientInfo::builder()
                .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
                .attestation_document(Blob::new(seen))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        out.plaintext().is_none(),
        "plaintext returned with a Recipient"
    );
    let envelope = out.ciphertext_for_recipient().unwrap().as_ref().to_vec();
    let attacker = EphemeralKey::generate().unwrap();
    assert!(attacker.open(&envelope).is_err());
    // A document of the right image but without an RSA key (an identity document, say).
    let doc = w
        .nsm(IMAGE)
        .attest(&attestation::AttestationRequest {
            public_key: Some(vec![7; 64]),
            ..Default::default()
        })
        .unwrap();
    let e = client
        .decrypt()
        .ciphertext_blob(Blob::new(wrapped))
        .recipient(
            RecipientInfo::builder()
                .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
                .attestation_document(Blob::new(doc))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));

    // An enclave of another image is refused by the key policy.
    let other = Arc::new(w.authority(OTHER_IMAGE));
    let b = blob.clone();
    let e = blocking(move || unseal(other.as_ref(), &b, BlobKind::EddsaShare, None))
        .await
        .unwrap_err();
    assert!(
        matches!(e, SealError::Refused(ref m) if m.contains("AccessDeniedException")),
        "{e}"
    );

    // The stand-in's audit log recorded the refusals.
    let audit = std::fs::read_to_string(w._dir.path().join("kms/audit.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let denied = |statement: &str| {
        events
            .iter()
            .filter(|e| e["decision"] == "deny" && e["statement"] == statement)
            .count()
    };
    assert_eq!(denied("DenyWithoutAttestation"), 2, "{audit}");
    let other_pcr0 = hex::encode(&simulated_pcrs(&OTHER_IMAGE)[&0]);
    assert!(
        events
            .iter()
            .any(|e| e["decision"] == "deny" && e["recipient"]["pcr0"] == other_pcr0.as_str()),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn blobs_of_the_interim_local_authority_migrate_to_kms() {
    let w = world().await;
    let local = LocalSealingAuthority::new(&[0x17; 32], &IMAGE);
    let old = seal(&local, BlobKind::Genesis, "cluster", b"genesis state").unwrap();
    let sealer = Arc::new(Sealer::new(
        Box::new(w.authority(IMAGE)),
        Some(LocalSealingAuthority::new(&[0x17; 32], &IMAGE)),
    ));
    let s = sealer.clone();
    let o = old.clone();
    let (_, plain, resealed) = blocking(move || s.open(&o, BlobKind::Genesis, None))
        .await
        .unwrap();
    assert_eq!(plain.as_slice(), b"genesis state");
    let new = resealed.expect("a local blob is sealed again under KMS");
    wrapped_key(&new);
    // The migrated blob opens with KMS alone.
    let kms_only = Arc::new(Sealer::new(Box::new(w.authority(IMAGE)), None));
    let (_, plain, again) = blocking(move || kms_only.open(&new, BlobKind::Genesis, None))
        .await
        .unwrap();
    assert_eq!(plain.as_slice(), b"genesis state");
    assert!(again.is_none());
    assert_eq!(local.kind(), enclave::seal::AuthorityKind::Local);
}
