//! KMS sealing against the local KMS stand-in (a real `cohort-kms` process serving HTTPS with a
//! certificate from the simulated CA), reached over TLS that the enclave's sealing authority
//! terminates itself, through the proxy's real gateway (SigV4 signing, the byte tunnel), with a
//! parent in the middle that we control: it alters, drips, replays and cuts the tunnel, leads it
//! to a KMS of its own, answers in the clear, and goes down. The enclave's sealing authority
//! must give a clear error every time, never seal under a key the parent knows, and whatever was
//! sealed must still open once the parent behaves (ADR 0014).

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use attestation::sim::simulated_pcrs;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::Engine;
use cohort_tests::kms::{
    ADMIN_ACCESS_KEY, IMAGE, Mode, OTHER_IMAGE, PARENTS_DATA_KEY, world, world_with_principals,
};
use enclave::kms::{KmsSealingAuthority, Roots};
use enclave::seal::{
    AuthorityKind, BlobKind, CONTEXT_BLOB, CONTEXT_ID, Context, LocalSealingAuthority, SealError,
    Sealer, SealingAuthority, seal, unseal,
};
use protocol::parent::{KmsOperation, ParentErrorCode, ParentRequest, ParentResponse};
use serde_bytes::ByteBuf;
use zeroize::Zeroizing;

/// Another account's key: a parent may name it, the proxy and the enclave refuse it.
const OTHER_KEY_ARN: &str =
    "arn:aws:kms:us-east-1:999999999999:key/00000000-0000-4000-8000-000000000000";

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
    assert_eq!(get("authority").as_text(), Some("kms"));
    get("wrapped_key").as_bytes().unwrap().clone()
}

/// What the parent can do with a blob when it knows the data key: the same AES-GCM opening the
/// enclave does, with [`PARENTS_DATA_KEY`].
struct ParentKnowsTheKey;

impl SealingAuthority for ParentKnowsTheKey {
    fn kind(&self) -> AuthorityKind {
        AuthorityKind::Kms
    }
    fn generate_data_key(&self, _: &Context) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError> {
        unreachable!("the parent only opens")
    }
    fn decrypt_data_key(&self, _: &[u8], _: &Context) -> Result<Zeroizing<[u8; 32]>, SealError> {
        Ok(Zeroizing::new(PARENTS_DATA_KEY))
    }
}

/// The policy the deployment review found (issue 23): the administrator's `kms:Create*` (which
/// takes in `kms:CreateGrant`) and, for use, only a call without a document denied.
fn reviewed_policy(current: &serde_json::Value) -> serde_json::Value {
    let mut old = current.clone();
    let statements = old["Statement"].as_array_mut().unwrap();
    statements[0]["Action"] = serde_json::json!([
        "kms:Create*",
        "kms:Describe*",
        "kms:Enable*",
        "kms:List*",
        "kms:Put*",
        "kms:Update*",
        "kms:Revoke*",
        "kms:Disable*",
        "kms:Get*",
        "kms:Delete*",
        "kms:TagResource",
        "kms:UntagResource",
        "kms:ScheduleKeyDeletion",
        "kms:CancelKeyDeletion"
    ]);
    statements.retain(|s| s["Sid"] != "DenyOtherImages" && s["Sid"] != "DenyGrants");
    old
}

/// Issue 23, the deployment review's finding: the KMS key administrator must not be able to
/// open sealed blobs. The stand-in names its callers here (the parent signs as node 1's parent
/// role, the administrator as the administrator). Under the policy the review found, the
/// administrator grants the parent role `Decrypt`, and an enclave of another image (the
/// attacker's own) on that parent opens a blob the genuine image sealed: the attack is real.
/// Under Cohort's policy the grant is refused (`DenyGrants`), and a grant made before the policy
/// was tightened still opens nothing (`DenyOtherImages`), while the genuine image opens its blob.
#[tokio::test(flavor = "multi_thread")]
async fn the_key_administrator_cannot_open_sealed_blobs() {
    let admin_arn = cli::kms::PolicyParams::simulated(1, Default::default()).admin;
    let parent_role = cli::kms::sim_parent_role(1);
    let w = world_with_principals(&[
        ("cohort-sim", parent_role.as_str()),
        (ADMIN_ACCESS_KEY, admin_arn.as_str()),
    ])
    .await;
    let genuine = Arc::new(w.authority(IMAGE));
    let a = genuine.clone();
    let blob = blocking(move || seal(a.as_ref(), BlobKind::EddsaShare, "k1", b"the share"))
        .await
        .unwrap();
    let admin = w.client_as(ADMIN_ACCESS_KEY);
    let cohorts: serde_json::Value = serde_json::from_str(
        &admin
            .get_key_policy()
            .key_id(&w.key_id)
            .policy_name("default")
            .send()
            .await
            .unwrap()
            .policy
            .unwrap(),
    )
    .unwrap();
    let grant = || {
        admin
            .create_grant()
            .key_id(&w.key_id)
            .grantee_principal(&parent_role)
            .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
            .send()
    };
    let attacker = Arc::new(w.authority(OTHER_IMAGE));
    let try_open = |authority: Arc<enclave::kms::KmsSealingAuthority>| {
        let blob = blob.clone();
        blocking(move || unseal(authority.as_ref(), &blob, BlobKind::EddsaShare, None))
    };
    // Cohort's policy: no grant, for the administrator or anyone.
    let e = grant().await.unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"), "{e:?}");
    assert!(format!("{e:?}").contains("DenyGrants"), "{e:?}");
    let e = w
        .client()
        .create_grant()
        .key_id(&w.key_id)
        .grantee_principal(&parent_role)
        .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"), "{e:?}");
    let e = try_open(attacker.clone()).await.unwrap_err();
    assert!(e.to_string().contains("access_denied"), "{e}");

    // The reviewed policy: the grant goes through, and the attacker's image opens the blob.
    admin
        .put_key_policy()
        .key_id(&w.key_id)
        .policy_name("default")
        .policy(reviewed_policy(&cohorts).to_string())
        .send()
        .await
        .unwrap();
    grant().await.unwrap();
    let (_, plain) = try_open(attacker.clone()).await.unwrap();
    assert_eq!(plain.as_slice(), b"the share", "the attack is real");

    // Cohort's policy again: the grant is still there, and opens nothing for another image.
    admin
        .put_key_policy()
        .key_id(&w.key_id)
        .policy_name("default")
        .policy(cohorts.to_string())
        .send()
        .await
        .unwrap();
    let e = try_open(attacker).await.unwrap_err();
    assert!(e.to_string().contains("access_denied"), "{e}");
    let audit = std::fs::read_to_string(w.dir.path().join("kms/audit.jsonl")).unwrap();
    let last_decrypt = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .rfind(|e| e["operation"] == "kms:Decrypt")
        .unwrap();
    assert_eq!(last_decrypt["statement"], "DenyOtherImages", "{audit}");
    assert_eq!(last_decrypt["caller"], parent_role.as_str(), "{audit}");
    let (_, plain) = try_open(genuine).await.unwrap();
    assert_eq!(plain.as_slice(), b"the share");
    // A caller the stand-in cannot name is refused outright.
    let e = w
        .client_as("someone-else")
        .describe_key()
        .key_id(&w.key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("UnrecognizedClientException"), "{e:?}");
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

/// Issue 18: the key policy requires the encryption context the enclave sends (Cohort's keys
/// only, a known blob kind, a key id; `cli::kms::encryption_context_conditions`). An enclave of
/// the measured image on the node's role — the only caller the policy otherwise lets through —
/// asking without a context, with a key of its own, for a blob kind the enclave never seals or
/// without a key id is refused by the stand-in with KMS's `AccessDeniedException` (no statement
/// allows it); so is `Decrypt` of a real wrapped key without its context, which KMS's
/// cryptography alone would refuse only as `InvalidCiphertextException`. The enclave's own
/// context passes, and the parent calling with the role's credentials is refused as before.
#[tokio::test(flavor = "multi_thread")]
async fn the_key_policy_requires_the_enclaves_encryption_context() {
    let w = world().await;
    let auth = Arc::new(w.authority(IMAGE));
    let a = auth.clone();
    let blob = blocking(move || seal(a.as_ref(), BlobKind::EddsaShare, "k1", b"the share"))
        .await
        .unwrap();
    let good = enclave::seal::context(&blob).unwrap();
    let wrapped = wrapped_key(&blob);
    let mut foreign = good.clone();
    foreign.insert("purpose".into(), "export".into());
    let mut other_kind = good.clone();
    other_kind.insert(CONTEXT_BLOB.into(), "backup".into());
    let mut no_id = good.clone();
    no_id.remove(CONTEXT_ID);
    let cases = [
        ("no context", Context::new()),
        ("a foreign key", foreign),
        ("another blob kind", other_kind),
        ("no key id", no_id),
    ];
    for (what, context) in cases.clone() {
        let a = auth.clone();
        let e = blocking(move || a.generate_data_key(&context))
            .await
            .unwrap_err();
        assert!(
            matches!(e, SealError::Refused(ref m) if m.contains("AccessDeniedException")),
            "GenerateDataKey with {what}: {e}"
        );
    }
    for (what, context) in cases {
        let (a, wrapped) = (auth.clone(), wrapped.clone());
        let e = blocking(move || a.decrypt_data_key(&wrapped, &context))
            .await
            .unwrap_err();
        assert!(
            matches!(e, SealError::Refused(ref m) if m.contains("AccessDeniedException")),
            "Decrypt with {what}: {e}"
        );
    }
    // The parent with the role's credentials and the blob's own context, without a Recipient.
    let e = w
        .client()
        .decrypt()
        .ciphertext_blob(Blob::new(wrapped.clone()))
        .set_encryption_context(Some(good.clone().into_iter().collect()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"), "{e:?}");
    // The enclave's own context: the blob opens.
    let a = auth.clone();
    let (_, plain) = blocking(move || unseal(a.as_ref(), &blob, BlobKind::EddsaShare, None))
        .await
        .unwrap();
    assert_eq!(plain.as_slice(), b"the share");
    // The stand-in's audit log shows the refusals as implicit denies, with what was asked.
    let audit = std::fs::read_to_string(w.dir.path().join("kms/audit.jsonl")).unwrap();
    let denied_without_context = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| {
            e["decision"] == "deny"
                && e["statement"].is_null()
                && e["encryption_context"] == serde_json::json!({})
        })
        .count();
    assert_eq!(denied_without_context, 2, "{audit}");
}

/// Issue 18, the audit's first finding: a parent that answers `GenerateDataKey` or `Decrypt`
/// itself. Its own KMS (a data key it chose, wrapped to the enclave's Recipient key, behind a
/// certificate for KMS's host name from another CA), an answer in the clear, and KMS's bytes
/// from an earlier session replayed: the enclave refuses each, and nothing is sealed under a
/// key the parent knows. The attack is real: an enclave that trusted the parent's CA would
/// seal under the parent's key, and the parent opens that blob.
#[tokio::test(flavor = "multi_thread")]
async fn a_parent_cannot_answer_for_kms() {
    let w = world().await;
    // The attack works when the certificate is not checked against the pinned roots: an
    // enclave trusting the parent's CA seals the share under the parent's key...
    w.set(Mode::ParentsKms);
    let fooled = Arc::new(w.authority_with(
        w.nsm(IMAGE),
        Roots::from_der(&[w.parents_ca.root_der().to_vec()]).unwrap(),
    ));
    let a = fooled.clone();
    let stolen = blocking(move || seal(a.as_ref(), BlobKind::EcdsaShare, "k1", b"the share"))
        .await
        .unwrap();
    // ...and the parent opens it.
    let (_, plain) = unseal(&ParentKnowsTheKey, &stolen, BlobKind::EcdsaShare, None).unwrap();
    assert_eq!(plain.as_slice(), b"the share");

    // A real enclave pins the simulated CA (Amazon's roots in production): refused, no blob.
    let auth = Arc::new(w.authority(IMAGE));
    for mode in [Mode::ParentsKms, Mode::Cleartext] {
        w.set(mode);
        let a = auth.clone();
        let e = blocking(move || seal(a.as_ref(), BlobKind::EcdsaShare, "k1", b"the share"))
            .await
            .unwrap_err();
        assert!(matches!(e, SealError::Untrusted(_)), "{mode:?}: {e}");
        assert!(!e.is_retryable(), "{mode:?}");
    }

    // An honest seal, then the parent replays KMS's bytes of that session to the next call.
    w.set(Mode::Honest);
    let a = auth.clone();
    let blob = blocking(move || seal(a.as_ref(), BlobKind::EcdsaShare, "k1", b"the share"))
        .await
        .unwrap();
    assert!(unseal(&ParentKnowsTheKey, &blob, BlobKind::EcdsaShare, None).is_err());
    for call in ["seal", "unseal"] {
        w.set(Mode::Replay);
        let a = auth.clone();
        let b = blob.clone();
        let e = blocking(move || match call {
            "seal" => seal(a.as_ref(), BlobKind::EcdsaShare, "k2", b"x").map(|_| ()),
            _ => unseal(a.as_ref(), &b, BlobKind::EcdsaShare, None).map(|_| ()),
        })
        .await
        .unwrap_err();
        assert!(matches!(e, SealError::Untrusted(_)), "replayed {call}: {e}");
        // The replay needs an honest session before it each time.
        w.set(Mode::Honest);
        let a = auth.clone();
        let b = blob.clone();
        blocking(move || unseal(a.as_ref(), &b, BlobKind::EcdsaShare, None))
            .await
            .unwrap();
    }
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
    // What crossed the parent is TLS: neither the wrapped key nor the request's JSON is in it.
    let seen = w.parent.seen.lock().unwrap().clone();
    assert!(seen.len() > 1000, "the parent relayed {} bytes", seen.len());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&wrapped);
    for needle in [
        &wrapped[..],
        b64.as_bytes(),
        b"CiphertextBlob",
        b"Recipient",
    ] {
        assert!(
            !seen.windows(needle.len()).any(|w| w == needle),
            "the parent saw {:?}",
            String::from_utf8_lossy(&needle[..needle.len().min(20)])
        );
    }

    // The parent alters one bit of KMS's bytes: the TLS connection fails, a clear error.
    w.set(Mode::FlipTunnel);
    let a = auth.clone();
    let b = blob.clone();
    let e = blocking(move || unseal(a.as_ref(), &b, BlobKind::EddsaShare, None))
        .await
        .unwrap_err();
    assert!(matches!(e, SealError::Untrusted(_)), "{e}");
    let a = auth.clone();
    let e = blocking(move || seal(a.as_ref(), BlobKind::EddsaShare, "k2", b"x"))
        .await
        .unwrap_err();
    assert!(matches!(e, SealError::Untrusted(_)), "seal: {e}");

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

/// Issue 18: a parent dripping KMS's answer one byte per second holds a KMS call no longer
/// than the authority's overall deadline; the call fails as unavailable (worth a retry).
#[tokio::test(flavor = "multi_thread")]
async fn a_dripping_parent_cannot_hold_a_kms_call_past_its_deadline() {
    let w = world().await;
    let deadline = Duration::from_secs(3);
    let auth = Arc::new(w.authority(IMAGE).with_deadline(deadline));
    w.set(Mode::Drip);
    let a = auth.clone();
    let started = Instant::now();
    let e = blocking(move || seal(a.as_ref(), BlobKind::EddsaShare, "k1", b"x"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(e, SealError::Unavailable(ref m) if m.contains("deadline")),
        "{e}"
    );
    // The drip demonstrably hit: bytes went through, far fewer than an answer.
    let dripped = w.parent.dripped.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..1000).contains(&dripped), "{dripped} bytes dripped");
    // Bounded by the deadline, not by the parent (the bound is generous: it is a property of
    // the code, not a measurement).
    assert!(took < deadline * 3, "the call took {took:?}");
    w.set(Mode::Honest);
    let a = auth.clone();
    blocking(move || seal(a.as_ref(), BlobKind::EddsaShare, "k1", b"x"))
        .await
        .unwrap();
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
    assert_eq!(local.kind(), AuthorityKind::Local);
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
    let gateway = Arc::new(parent_proxy::kms::KmsGateway::new(
        Some(cohort_tests::kms::sim_credentials()),
        parent_proxy::kms::KmsSettings {
            key_id: w.key_id.clone(),
            tunnel_to: Some(w.kms_tls.clone()),
            region: None,
        },
    ));
    tokio::spawn(parent_proxy::kms::serve(listener, gateway));

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
    // A body hash of the wrong size is never signed.
    let short = ParentRequest::SignKms {
        key: w.key_arn.clone(),
        operation: KmsOperation::Decrypt,
        body_sha256: ByteBuf::from(vec![1; 31]),
    };
    let r = answers(&raw(&path, &protocol::encode_frame(&short).unwrap()).await);
    assert_eq!(
        code(&r[0]),
        (
            ParentErrorCode::BadRequest,
            "body_sha256 is 31 bytes, not 32".into()
        )
    );
    // A well-formed one is: SigV4 headers for kms in the key's region, nothing else.
    let good = ParentRequest::SignKms {
        key: w.key_arn.clone(),
        operation: KmsOperation::Decrypt,
        body_sha256: ByteBuf::from(vec![1; 32]),
    };
    let r = answers(&raw(&path, &protocol::encode_frame(&good).unwrap()).await);
    let ParentResponse::Signed { headers } = &r[0] else {
        panic!("{:?}", r[0])
    };
    assert!(headers.iter().any(|(n, v)| n == "authorization"
        && v.contains(&format!("/{}/kms/aws4_request", w.key_arn.region()))));

    // And an honest enclave through the real channel seals and unseals.
    let auth = Arc::new(KmsSealingAuthority::new(
        protocol::Endpoint::Unix(path.clone()),
        w.nsm(IMAGE),
        w.roots(),
    ));
    auth.name_kms_key(&w.key_arn).unwrap();
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
    for request in [
        ParentRequest::OpenTunnel { key: other.clone() },
        ParentRequest::SignKms {
            key: other.clone(),
            operation: KmsOperation::GenerateDataKey,
            body_sha256: ByteBuf::from(vec![1; 32]),
        },
    ] {
        let r = answers(&raw(&path, &protocol::encode_frame(&request).unwrap()).await);
        let (c, m) = code(&r[0]);
        assert_eq!(c, ParentErrorCode::NotConfigured, "{m}");
        assert!(m.contains(OTHER_KEY_ARN) && m.contains(&w.key_id), "{m}");
    }
    // Through the sealing authority it is a refusal that names the key, and nothing is sealed.
    let named = Arc::new(KmsSealingAuthority::new(
        protocol::Endpoint::Unix(path.clone()),
        w.nsm(IMAGE),
        w.roots(),
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

/// ADR 0013 and 0014: an enclave calls KMS only for the key it named, never before it named
/// one (an enclave that has not enrolled makes no call at all), and the name never changes.
#[tokio::test(flavor = "multi_thread")]
async fn an_enclave_calls_kms_only_for_the_key_it_named() {
    let w = world().await;
    let unnamed = Arc::new(KmsSealingAuthority::new(
        protocol::Endpoint::Unix(w.socket.clone()),
        w.nsm(IMAGE),
        w.roots(),
    ));
    let a = unnamed.clone();
    let e = blocking(move || seal(a.as_ref(), BlobKind::NodeKey, "k", b"x"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, SealError::Refused(ref m) if m.contains("not_configured")),
        "{e}"
    );
    assert_eq!(
        *w.parent.named.lock().unwrap(),
        None,
        "the parent was asked"
    );

    let auth = Arc::new(w.authority(IMAGE));
    assert_eq!(auth.kms_key(), Some(w.key_arn.clone()));
    // Naming it again is no change; naming another key is refused.
    auth.name_kms_key(&w.key_arn).unwrap();
    let other = protocol::KmsKeyArn::parse(OTHER_KEY_ARN).unwrap();
    assert!(matches!(
        auth.name_kms_key(&other),
        Err(SealError::KmsKeyPinned { .. })
    ));
    assert_eq!(auth.kms_key(), Some(w.key_arn.clone()));
    let a = auth.clone();
    let blob = blocking(move || seal(a.as_ref(), BlobKind::EddsaShare, "k1", b"the share"))
        .await
        .unwrap();
    assert_eq!(w.parent.named.lock().unwrap().as_ref(), Some(&w.key_arn));
    let a = auth.clone();
    blocking(move || unseal(a.as_ref(), &blob, BlobKind::EddsaShare, None))
        .await
        .unwrap();
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

/// An unsigned `Decrypt` to the stand-in's HTTPS port, over TLS checked against the simulated
/// CA as an enclave checks it; returns the raw answer.
async fn https_unsigned(w: &cohort_tests::kms::World) -> String {
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = attestation::sim::SimulatedCa::load(&w.ca_dir).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.root_der().to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(&w.kms_tls).await.unwrap();
    let name = ServerName::try_from("kms.us-east-1.amazonaws.com").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let request = "POST / HTTP/1.1\r\nhost: kms.us-east-1.amazonaws.com\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: TrentService.Decrypt\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).to_string()
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
    // The HTTPS port (where enclaves' tunnels lead) takes only SigV4-signed requests: the
    // parent's signature is demonstrably there in every sealing test.
    let unsigned = https_unsigned(&w).await;
    assert!(
        unsigned.starts_with("HTTP/1.1 400") && unsigned.contains("IncompleteSignatureException"),
        "{unsigned}"
    );
    // Nothing was created by the refused CreateKey calls.
    let keys = std::fs::read_dir(w.dir.path().join("kms/keys"))
        .unwrap()
        .count();
    assert_eq!(keys, 1);
}
