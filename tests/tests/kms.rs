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
use cohort_tests::kms::{IMAGE, Mode, OTHER_IMAGE, OTHER_KEY_ARN, world};
use enclave::kms::KmsSealingAuthority;
use enclave::seal::{
    BlobKind, LocalSealingAuthority, SealError, Sealer, SealingAuthority, seal, unseal,
};
use protocol::parent::{ParentErrorCode, ParentRequest, ParentResponse};
use serde_bytes::ByteBuf;

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

/// ADR 0013 step 16: the key policy pins the parent role's PCR3. An enclave of the right image
/// on an instance with another role (another account's copy of the image, or a parent the
/// deployment did not make, using node 1's KMS key) gets no data key; on node 1's role it does.
#[tokio::test(flavor = "multi_thread")]
async fn an_enclave_on_another_parent_role_gets_no_data_key() {
    let w = world().await;
    let elsewhere = Arc::new(w.authority_on_role(IMAGE, "arn:aws:iam::000000000000:role/another"));
    let a = elsewhere.clone();
    let e = blocking(move || seal(a.as_ref(), BlobKind::EddsaShare, "k1", b"the share"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("access_denied"), "{e}");
    let home = Arc::new(w.authority(IMAGE));
    blocking(move || seal(home.as_ref(), BlobKind::EddsaShare, "k1", b"the share"))
        .await
        .unwrap();
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

/// One raw exchange on a socket: bytes out, everything until the peer closes back.
async fn raw(path: &std::path::Path, bytes: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    out
}

fn answers(bytes: &[u8]) -> Vec<ParentResponse> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        out.push(protocol::decode_frame(&rest[..4 + len]).unwrap());
        rest = &rest[4 + len..];
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxys_kms_channel_answers_bad_input_with_typed_errors() {
    let w = world().await;
    let path = w.dir.path().join("proxy-kms.sock");
    let listener = parent_proxy::kms::KmsListener::bind(&protocol::Endpoint::Unix(path.clone()))
        .await
        .unwrap();
    let relay = Arc::new(parent_proxy::kms::KmsRelay::new(
        w.client(),
        w.key_id.clone(),
    ));
    tokio::spawn(parent_proxy::kms::serve(listener, relay));

    let code = |r: &ParentResponse| match r {
        ParentResponse::Error { code, message } => (*code, message.clone()),
        other => panic!("expected an error, got {other:?}"),
    };
    // Not a parent request (an enclave request), then junk CBOR: each answered, in order.
    let mut bytes = protocol::encode_frame(&protocol::EnclaveRequest::Status).unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 3, 0xff, 0xff, 0xff]);
    let replies = answers(&raw(&path, &bytes).await);
    assert_eq!(replies.len(), 2);
    for r in &replies {
        assert_eq!(code(r).0, ParentErrorCode::BadRequest, "{r:?}");
    }
    // An absurd length prefix: one answer, then the connection closes.
    let replies = answers(&raw(&path, &[0x7f, 0xff, 0xff, 0xff]).await);
    assert_eq!(replies.len(), 1);
    assert!(code(&replies[0]).1.contains("exceeds") || code(&replies[0]).1.contains("larger"));
    // Empty or oversized fields never reach KMS.
    let empty = ParentRequest::GenerateDataKey {
        key_id: None,
        attestation: ByteBuf::new(),
    };
    let r = answers(&raw(&path, &protocol::encode_frame(&empty).unwrap()).await);
    assert_eq!(
        code(&r[0]),
        (ParentErrorCode::BadRequest, "attestation is empty".into())
    );
    // A document that is not one: KMS refuses it, and says why.
    let junk = ParentRequest::Decrypt {
        key_id: None,
        ciphertext_blob: ByteBuf::from(vec![1; 101]),
        attestation: ByteBuf::from(vec![0xa0; 300]),
    };
    let r = answers(&raw(&path, &protocol::encode_frame(&junk).unwrap()).await);
    let (c, m) = code(&r[0]);
    assert!(
        matches!(
            c,
            ParentErrorCode::AccessDenied | ParentErrorCode::InvalidCiphertext
        ),
        "{c:?} {m}"
    );
    // And an honest enclave through the real channel seals and unseals.
    let auth = Arc::new(KmsSealingAuthority::new(
        protocol::Endpoint::Unix(path.clone()),
        w.nsm(IMAGE),
    ));
    let a = auth.clone();
    let blob = blocking(move || seal(a.as_ref(), BlobKind::AuxInfo, "aux", b"paillier"))
        .await
        .unwrap();
    let (_, plain) = blocking(move || unseal(auth.as_ref(), &blob, BlobKind::AuxInfo, None))
        .await
        .unwrap();
    assert_eq!(plain.as_slice(), b"paillier");

    // An enclave that names another key than the proxy serves: refused before KMS is asked.
    let other = protocol::KmsKeyArn::parse(OTHER_KEY_ARN).unwrap();
    let request = ParentRequest::GenerateDataKey {
        key_id: Some(other.clone()),
        attestation: ByteBuf::from(vec![0xa0; 300]),
    };
    let r = answers(&raw(&path, &protocol::encode_frame(&request).unwrap()).await);
    let (c, m) = code(&r[0]);
    assert_eq!(c, ParentErrorCode::NotConfigured, "{m}");
    assert!(m.contains(OTHER_KEY_ARN) && m.contains(&w.key_id), "{m}");
    // Through the sealing authority it is a refusal that names the key, and nothing is sealed.
    let named = Arc::new(KmsSealingAuthority::new(
        protocol::Endpoint::Unix(path.clone()),
        w.nsm(IMAGE),
    ));
    named.name_kms_key(&other).unwrap();
    let a = named.clone();
    let e = blocking(move || seal(a.as_ref(), BlobKind::AuxInfo, "aux", b"x"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, SealError::Refused(ref m) if m.contains("not_configured") && m.contains(OTHER_KEY_ARN)),
        "{e}"
    );
    // An alias is not a key ARN: it cannot even be named.
    assert!(protocol::KmsKeyArn::parse("arn:aws:kms:eu-west-1:000000000000:alias/node-0").is_err());
}

/// ADR 0013: once an enclave names its KMS key, every call names it and an answer for another
/// key is refused; the name never changes. (Before issue 18 the answer's key id is the parent's
/// word: this stops a confused or lazy parent, not a lying one.)
#[tokio::test(flavor = "multi_thread")]
async fn an_enclave_that_named_its_kms_key_refuses_answers_for_another() {
    let w = world().await;
    let auth = Arc::new(w.authority(IMAGE));
    auth.name_kms_key(&w.key_arn).unwrap();
    assert_eq!(auth.kms_key(), Some(w.key_arn.clone()));
    // Naming it again is no change; naming another key is refused.
    auth.name_kms_key(&w.key_arn).unwrap();
    let other = protocol::KmsKeyArn::parse(OTHER_KEY_ARN).unwrap();
    assert!(matches!(
        auth.name_kms_key(&other),
        Err(SealError::KmsKeyPinned { .. })
    ));
    assert_eq!(auth.kms_key(), Some(w.key_arn.clone()));

    // Honest parent: the named key seals and opens.
    let a = auth.clone();
    let blob = blocking(move || seal(a.as_ref(), BlobKind::EddsaShare, "k1", b"the share"))
        .await
        .unwrap();
    assert_eq!(w.parent.named.lock().unwrap().as_ref(), Some(&w.key_arn));
    let a = auth.clone();
    let b = blob.clone();
    blocking(move || unseal(a.as_ref(), &b, BlobKind::EddsaShare, None))
        .await
        .unwrap();
    assert_eq!(w.parent.named.lock().unwrap().as_ref(), Some(&w.key_arn));

    // A parent answering for another key: refused on both calls, no blob, no plaintext.
    w.set(Mode::OtherKeyId);
    let a = auth.clone();
    let e = blocking(move || seal(a.as_ref(), BlobKind::EddsaShare, "k2", b"x"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, SealError::WrongKmsKey { ref got, .. } if got.contains(OTHER_KEY_ARN)),
        "{e}"
    );
    assert!(!e.is_retryable());
    let a = auth.clone();
    let b = blob.clone();
    let e = blocking(move || unseal(a.as_ref(), &b, BlobKind::EddsaShare, None))
        .await
        .unwrap_err();
    assert!(matches!(e, SealError::WrongKmsKey { .. }), "{e}");
    // An authority that named no key (an enclave not enrolled yet) takes the answer as before:
    // the check exists only once a key is named, which is what this test is about.
    let unnamed = Arc::new(w.authority(IMAGE));
    let b = blob.clone();
    let (_, plain) = blocking(move || unseal(unnamed.as_ref(), &b, BlobKind::EddsaShare, None))
        .await
        .unwrap();
    assert_eq!(plain.as_slice(), b"the share");
    assert_eq!(*w.parent.named.lock().unwrap(), None);
    w.set(Mode::Honest);
}

/// One raw HTTP request to the stand-in; returns the status and the JSON body.
async fn http(url: &str, target: Option<&str>, body: &[u8]) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(t) = target {
        head.push_str(&format!("X-Amz-Target: TrentService.{t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text[9..12].parse().unwrap();
    let json = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (
        status,
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kms_stand_in_answers_bad_requests_as_kms_does() {
    let w = world().await;
    let url = &w.kms_url;
    let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (None, b"{}".to_vec(), 400, "UnknownOperationException"),
        (Some("ScheduleKeyDeletion"), b"{}".to_vec(), 400, "UnknownOperationException"),
        (Some("Decrypt"), b"not json".to_vec(), 400, "SerializationException"),
        (Some("Decrypt"), b"[1, 2]".to_vec(), 400, "SerializationException"),
        (Some("Decrypt"), br#"{"CiphertextBlob": "!!"}"#.to_vec(), 400, "SerializationException"),
        (Some("Decrypt"), br#"{"CiphertextBlob": "AAAA"}"#.to_vec(), 400, "InvalidCiphertextException"),
        (Some("Decrypt"), b"{}".to_vec(), 400, "ValidationException"),
        (
            Some("GenerateDataKey"),
            br#"{"KeyId": "00000000-0000-4000-8000-000000000000", "KeySpec": "AES_256"}"#.to_vec(),
            400,
            "NotFoundException",
        ),
        (Some("GenerateDataKey"), format!(r#"{{"KeyId": "{}"}}"#, w.key_id).into_bytes(), 400, "ValidationException"),
        (
            Some("GenerateDataKey"),
            format!(r#"{{"KeyId": "{}", "KeySpec": "AES_256", "Recipient": {{"KeyEncryptionAlgorithm": "RSAES_PKCS1_V1_5", "AttestationDocument": "AAAA"}}}}"#, w.key_id).into_bytes(),
            400,
            "ValidationException",
        ),
        (
            Some("CreateKey"),
            br#"{"Policy": "{\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": \"*\", \"NotAction\": \"kms:*\"}]}"}"#.to_vec(),
            400,
            "MalformedPolicyDocumentException",
        ),
        (Some("CreateKey"), br#"{"KeySpec": "RSA_2048"}"#.to_vec(), 400, "UnsupportedOperationException"),
        (Some("Decrypt"), vec![b' '; 300 * 1024], 413, "SerializationException"),
    ];
    for (target, body, status, kind) in cases {
        let (s, json) = http(url, target, &body).await;
        assert_eq!(
            (s, json["__type"].as_str()),
            (status, Some(kind)),
            "{target:?}: {json}"
        );
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Nothing was created by the refused CreateKey calls.
    let keys = std::fs::read_dir(w.dir.path().join("kms/keys"))
        .unwrap()
        .count();
    assert_eq!(keys, 1);
}
