//! Unit tests of the blob format, binding and migration.
use super::*;

#[test]
fn round_trip_and_binding() {
    let auth = LocalSealingAuthority::new(&[1; 32], &[0xAA; 48]);
    let blob = seal(&auth, BlobKind::EcdsaShare, "k1", b"share bytes").unwrap();
    assert!(
        !blob.windows(11).any(|w| w == b"share bytes"),
        "plaintext in the blob"
    );
    let (id, plain) = unseal(&auth, &blob, BlobKind::EcdsaShare, Some("k1")).unwrap();
    assert_eq!((id.as_str(), plain.as_slice()), ("k1", &b"share bytes"[..]));
    assert_eq!(
        peek(&blob).unwrap(),
        (BlobKind::EcdsaShare, "k1".to_string())
    );

    // Another image (PCR0) cannot open it.
    let other = LocalSealingAuthority::new(&[1; 32], &[0xBB; 48]);
    assert_eq!(
        unseal(&other, &blob, BlobKind::EcdsaShare, None).unwrap_err(),
        SealError::Tampered
    );
    // Wrong kind or key id.
    assert!(matches!(
        unseal(&auth, &blob, BlobKind::EddsaShare, None),
        Err(SealError::WrongKind { .. })
    ));
    assert!(matches!(
        unseal(&auth, &blob, BlobKind::EcdsaShare, Some("k2")),
        Err(SealError::WrongKind { .. })
    ));
    // Any flipped byte: malformed or tampered, never a panic, never the plaintext.
    for i in 0..blob.len() {
        let mut t = blob.clone();
        t[i] ^= 0x01;
        assert!(
            unseal(&auth, &t, BlobKind::EcdsaShare, Some("k1")).is_err(),
            "byte {i}"
        );
    }
    assert!(unseal(&auth, b"", BlobKind::EcdsaShare, None).is_err());
}

/// A version 1 blob exactly as the interim authority wrote it.
fn v1_blob(auth: &LocalSealingAuthority, kind: BlobKind, key_id: &str, plain: &[u8]) -> Vec<u8> {
    let (key, wrapped) = auth.generate_data_key(&Context::new()).unwrap();
    let nonce = [7u8; 12];
    let mut blob = Blob {
        v: 1,
        authority: None,
        kind,
        key_id: key_id.into(),
        context: Context::new(),
        seq: None,
        wrapped_key: ByteBuf::from(wrapped),
        nonce: ByteBuf::from(nonce.to_vec()),
        ciphertext: ByteBuf::new(),
    };
    let aad = blob.aad();
    let ciphertext = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .unwrap();
    blob.ciphertext = ByteBuf::from(ciphertext);
    let mut out = Vec::new();
    ciborium::into_writer(&blob, &mut out).unwrap();
    out
}

/// Stands in for KMS in unit tests: another key-encryption key, reported as KMS.
struct FakeKms(LocalSealingAuthority);
impl SealingAuthority for FakeKms {
    fn kind(&self) -> AuthorityKind {
        AuthorityKind::Kms
    }
    fn generate_data_key(&self, c: &Context) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError> {
        self.0.generate_data_key(c)
    }
    fn decrypt_data_key(&self, w: &[u8], c: &Context) -> Result<Zeroizing<[u8; 32]>, SealError> {
        self.0.decrypt_data_key(w, c)
    }
}

/// Issue 18 (audit finding 5): a blob is bound to its node and cluster by the encryption
/// context its data key was made under, which the header repeats as associated data.
#[test]
fn blobs_are_bound_to_their_node_and_cluster() {
    let kms = || Box::new(FakeKms(LocalSealingAuthority::new(&[9; 32], &[0xAA; 48])));
    let sealer = Sealer::new(kms(), None);
    sealer.bind_node("aa");
    sealer.bind_cluster("c1");
    let blob = sealer.seal(BlobKind::EcdsaShare, "k1", b"share").unwrap();
    let c = context(&blob).unwrap();
    assert_eq!(c[CONTEXT_BLOB], "ecdsa-share");
    assert_eq!(c[CONTEXT_ID], "k1");
    assert_eq!(
        (c[CONTEXT_NODE].as_str(), c[CONTEXT_CLUSTER].as_str()),
        ("aa", "c1")
    );
    assert_eq!(
        sealer
            .open(&blob, BlobKind::EcdsaShare, None)
            .unwrap()
            .1
            .as_slice(),
        b"share"
    );
    // The same KMS key, another node or another cluster: refused, though it would open.
    for (node, cluster, what) in [("bb", "c1", "node"), ("aa", "c2", "cluster")] {
        let other = Sealer::new(kms(), None);
        other.bind_node(node);
        other.bind_cluster(cluster);
        let e = other.open(&blob, BlobKind::EcdsaShare, None).unwrap_err();
        assert!(
            matches!(e, SealError::WrongBinding { what: w, .. } if w == what),
            "{e}"
        );
    }
    // Unbound (a restore, before the node key and genesis are known), it opens; the caller
    // checks the context afterwards (`check_binding`).
    let fresh = Sealer::new(kms(), None);
    fresh.open(&blob, BlobKind::EcdsaShare, None).unwrap();
    let wrong = Binding {
        node: Some("bb".into()),
        cluster: None,
    };
    assert!(check_binding(&c, &wrong).is_err());
    // A relabelled context does not authenticate.
    let mut b: Blob = ciborium::from_reader(blob.as_slice()).unwrap();
    b.context.insert(CONTEXT_NODE.into(), "bb".into());
    let mut forged = Vec::new();
    ciborium::into_writer(&b, &mut forged).unwrap();
    assert_eq!(
        fresh.open(&forged, BlobKind::EcdsaShare, None).unwrap_err(),
        SealError::Tampered
    );
    // At restore every version-3 blob but the node key's must name the node and the
    // cluster restored: one sealed before the cluster existed (or with a context stripped
    // of them) is refused, not taken as unbound.
    let both = Binding {
        node: Some("aa".into()),
        cluster: Some("c1".into()),
    };
    check_restored(&blob, &both).unwrap();
    let early = Sealer::new(kms(), None);
    early.bind_node("aa");
    let unclustered = early.seal(BlobKind::EcdsaShare, "k1", b"share").unwrap();
    assert!(matches!(
        check_restored(&unclustered, &both),
        Err(SealError::WrongBinding {
            what: "cluster",
            ..
        })
    ));
    let node_key = early.seal(BlobKind::NodeKey, "arn", b"key").unwrap();
    check_restored(&node_key, &both).unwrap();
    // A data key fetched for one blob seals no other.
    let dk = sealer.data_key(BlobKind::AuxInfo, "aux").unwrap();
    assert!(matches!(
        sealer.seal_with(dk, BlobKind::EcdsaShare, "k1", b"x"),
        Err(SealError::WrongKind { .. })
    ));
}

#[test]
fn version_1_blobs_migrate_to_the_current_authority() {
    let local = LocalSealingAuthority::new(&[1; 32], &[0xAA; 48]);
    let old = v1_blob(&local, BlobKind::EddsaShare, "k1", b"old share");
    let kms = || Box::new(FakeKms(LocalSealingAuthority::new(&[9; 32], &[0xAA; 48])));

    // Without the local authority the old blob cannot be read, and says why.
    let without = Sealer::new(kms(), None);
    let e = without.open(&old, BlobKind::EddsaShare, None).unwrap_err();
    assert!(
        matches!(e, SealError::Refused(ref m) if m.contains("Local")),
        "{e}"
    );

    let mut sealer = Sealer::new(
        kms(),
        Some(LocalSealingAuthority::new(&[1; 32], &[0xAA; 48])),
    );
    let (id, plain, resealed) = sealer.open(&old, BlobKind::EddsaShare, None).unwrap();
    assert_eq!((id.as_str(), plain.as_slice()), ("k1", &b"old share"[..]));
    let new = resealed.expect("a version 1 blob is sealed again");
    let b = parse(&new).unwrap();
    assert_eq!((b.v, b.authority), (3, Some(AuthorityKind::Kms)));
    // The new blob opens with the current authority alone and is not migrated again.
    let (_, plain, again) = without
        .open(&new, BlobKind::EddsaShare, Some("k1"))
        .unwrap();
    assert_eq!(plain.as_slice(), b"old share");
    assert!(again.is_none());
    // The old blob still authenticates its header: relabelling it fails.
    let mut relabelled: Blob = ciborium::from_reader(old.as_slice()).unwrap();
    relabelled.key_id = "k2".into();
    let mut bytes = Vec::new();
    ciborium::into_writer(&relabelled, &mut bytes).unwrap();
    assert_eq!(
        sealer.open(&bytes, BlobKind::EddsaShare, None).unwrap_err(),
        SealError::Tampered
    );
    // A version 2 blob stripped of its authority, or a version 1 blob given one: malformed.
    let mut stripped: Blob = ciborium::from_reader(new.as_slice()).unwrap();
    stripped.authority = None;
    let mut bytes = Vec::new();
    ciborium::into_writer(&stripped, &mut bytes).unwrap();
    assert!(matches!(
        sealer.open(&bytes, BlobKind::EddsaShare, None),
        Err(SealError::Malformed(_))
    ));
    // Once retired (the genesis is sealed under KMS), local blobs are refused.
    sealer.retire_legacy();
    assert!(matches!(
        sealer.open(&old, BlobKind::EddsaShare, None),
        Err(SealError::Refused(_))
    ));
}

#[test]
fn relabelled_blob_does_not_open() {
    // Change the key id in the clear: the associated data no longer matches.
    let auth = LocalSealingAuthority::new(&[1; 32], &[0xAA; 48]);
    let blob = seal(&auth, BlobKind::EcdsaShare, "k1", b"s").unwrap();
    let mut b: Blob = ciborium::from_reader(blob.as_slice()).unwrap();
    b.key_id = "k9".into();
    let mut relabelled = Vec::new();
    ciborium::into_writer(&b, &mut relabelled).unwrap();
    assert_eq!(
        unseal(&auth, &relabelled, BlobKind::EcdsaShare, None).unwrap_err(),
        SealError::Tampered
    );
}

/// Every context the enclave sends KMS stays within what the node's key policy allows
/// (`protocol::parent::kms_http::context`, which `cohort kms policy` and Terraform write into
/// the policy): a blob kind from its list, and no key outside its set.
#[test]
fn every_context_is_one_the_key_policy_allows() {
    use protocol::parent::kms_http::context::{BLOB_KINDS, KEYS};
    let all = [
        BlobKind::Genesis,
        BlobKind::AuxInfo,
        BlobKind::EcdsaShare,
        BlobKind::EddsaShare,
        BlobKind::NodeKey,
    ];
    // Fails to compile when a kind is added without being listed above.
    for kind in all {
        match kind {
            BlobKind::Genesis
            | BlobKind::AuxInfo
            | BlobKind::EcdsaShare
            | BlobKind::EddsaShare
            | BlobKind::NodeKey => {}
        }
    }
    let bound = Binding {
        node: Some("aa".into()),
        cluster: Some("c1".into()),
    };
    let mut kinds = Vec::new();
    for kind in all {
        for binding in [&Binding::default(), &bound] {
            let c = context_of(kind, "k1", binding);
            assert!(c.keys().all(|k| KEYS.contains(&k.as_str())), "{c:?}");
            assert!(c.contains_key(CONTEXT_ID), "{c:?}");
            kinds.push(c[CONTEXT_BLOB].clone());
        }
    }
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds, BLOB_KINDS,
        "one policy value per blob kind, and no other"
    );
}

/// Attacker review helper-67, finding 2: a genesis blob carries its sequence number in its
/// authenticated header, where the parent reads it (`protocol::backups::sealed_sequence`)
/// without opening the blob; one rewritten to another number opens nowhere, and a blob with
/// none reads as none.
#[test]
fn a_numbered_blob_s_sequence_is_read_by_the_parent_and_authenticated() {
    let auth = LocalSealingAuthority::new(&[1; 32], &[0xAA; 48]);
    let sealer = Sealer::new(
        Box::new(LocalSealingAuthority::new(&[1; 32], &[0xAA; 48])),
        None,
    );
    let blob = sealer
        .seal_numbered(BlobKind::Genesis, "cluster", 7, b"genesis state")
        .unwrap();
    assert_eq!(sequence_of(&blob).unwrap(), Some(7));
    assert_eq!(protocol::backups::sealed_sequence(&blob), Some(7));
    let (_, plain) = unseal(&auth, &blob, BlobKind::Genesis, Some("cluster")).unwrap();
    assert_eq!(plain.as_slice(), b"genesis state");

    let mut header: Blob = ciborium::from_reader(blob.as_slice()).unwrap();
    header.seq = Some(8);
    let mut renumbered = Vec::new();
    ciborium::into_writer(&header, &mut renumbered).unwrap();
    assert_eq!(protocol::backups::sealed_sequence(&renumbered), Some(8));
    assert_eq!(
        unseal(&auth, &renumbered, BlobKind::Genesis, None).unwrap_err(),
        SealError::Tampered
    );
    header.seq = None;
    let mut stripped = Vec::new();
    ciborium::into_writer(&header, &mut stripped).unwrap();
    assert_eq!(
        unseal(&auth, &stripped, BlobKind::Genesis, None).unwrap_err(),
        SealError::Tampered
    );

    let plain_blob = sealer.seal(BlobKind::Genesis, "cluster", b"x").unwrap();
    assert_eq!(sequence_of(&plain_blob).unwrap(), None);
    assert_eq!(protocol::backups::sealed_sequence(&plain_blob), None);
    assert_eq!(protocol::backups::sealed_sequence(b"not a blob"), None);
}
