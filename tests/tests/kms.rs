//! KMS sealing against the local KMS stand-in (a real `cohort-kms` process, reached by the
//! proxy's real `aws-sdk-kms` relay), with a parent in the middle that we control: it tampers
//! with requests and answers, replays documents, calls KMS without a Recipient, and goes down.
//! The enclave's sealing authority must give a clear error every time, never a wrong key, and
//! whatever was sealed must still open once the parent behaves.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use attestation::recipient::EphemeralKey;
use attestation::sim::simulated_pcrs;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyEncryptionMechanism, RecipientInfo};
use cohort_tests::kms::{IMAGE, Mode, OTHER_IMAGE, world};
use enclave::seal::{
    BlobKind, LocalSealingAuthority, SealError, Sealer, SealingAuthority, seal, unseal,
};

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
    let audit = std::fs::read_to_string(w.dir.path().join("kms/audit.jsonl")).unwrap();
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
