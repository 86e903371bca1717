use super::*;

fn b(byte: u8, n: usize) -> ByteBuf {
    ByteBuf::from(vec![byte; n])
}

fn ecdsa_key() -> KeyInfo {
    KeyInfo {
        v: KEY_INFO_VERSION,
        key_id: "treasury".into(),
        scheme: Scheme::EcdsaSecp256k1,
        generation: 3,
        threshold: 2,
        public_key: b(2, 33),
        chain_code: Some(b(9, 32)),
        public_shares: vec![b(2, 33), b(3, 33), b(2, 33)],
        request: b(5, 32),
        policy_version: 1,
        policy: KeyPolicy {
            approvers: vec![b(0xA1, 32), b(0xA2, 32)],
            approvals_needed: 2,
        },
        refresh_every: 86_400,
    }
}

fn eddsa_key() -> KeyInfo {
    KeyInfo {
        scheme: Scheme::EddsaEd25519,
        public_key: b(4, 32),
        chain_code: None,
        public_shares: vec![b(4, 32), b(6, 32), b(7, 32)],
        ..ecdsa_key()
    }
}

#[test]
fn key_facts_of_the_wrong_shape_are_refused_by_name() {
    assert_eq!(ecdsa_key().check(), Ok(()));
    assert_eq!(eddsa_key().check(), Ok(()));
    let cases: Vec<(KeyInfo, &str)> = vec![
        (
            KeyInfo {
                v: 2,
                ..ecdsa_key()
            },
            "version 2",
        ),
        (
            KeyInfo {
                key_id: String::new(),
                ..ecdsa_key()
            },
            "key id of 0",
        ),
        (
            KeyInfo {
                key_id: "k".repeat(129),
                ..ecdsa_key()
            },
            "key id of 129",
        ),
        (
            KeyInfo {
                public_key: b(2, 32),
                ..ecdsa_key()
            },
            "the public key of 32 bytes, 33",
        ),
        (
            KeyInfo {
                request: b(5, 31),
                ..ecdsa_key()
            },
            "the request hash of 31",
        ),
        (
            KeyInfo {
                chain_code: None,
                ..ecdsa_key()
            },
            "chain code",
        ),
        (
            KeyInfo {
                chain_code: Some(b(9, 32)),
                ..eddsa_key()
            },
            "chain code",
        ),
        (
            KeyInfo {
                chain_code: Some(b(9, 31)),
                ..ecdsa_key()
            },
            "the chain code of 31",
        ),
        (
            KeyInfo {
                public_shares: vec![b(4, 32), b(6, 33)],
                ..eddsa_key()
            },
            "a public share of 33 bytes, 32",
        ),
        (
            KeyInfo {
                threshold: 1,
                ..ecdsa_key()
            },
            "threshold 1 for 3",
        ),
        (
            KeyInfo {
                threshold: 4,
                ..ecdsa_key()
            },
            "threshold 4 for 3",
        ),
        (
            KeyInfo {
                public_shares: vec![b(2, 33); 65],
                ..ecdsa_key()
            },
            "65 public shares",
        ),
        (
            KeyInfo {
                policy: KeyPolicy {
                    approvers: vec![],
                    approvals_needed: 1,
                },
                ..ecdsa_key()
            },
            "the policy",
        ),
    ];
    for (info, why) in cases {
        let e = info.check().expect_err(why);
        assert_eq!(e.kind(), "malformed_key_info");
        assert!(e.to_string().contains(why), "{e} (wanted {why})");
    }
}

#[test]
fn every_fact_of_a_key_is_in_its_digest() {
    let base = ecdsa_key();
    let d = base.digest();
    let changed: Vec<KeyInfo> = vec![
        KeyInfo {
            key_id: "treasury2".into(),
            ..base.clone()
        },
        KeyInfo {
            generation: 4,
            ..base.clone()
        },
        KeyInfo {
            threshold: 3,
            ..base.clone()
        },
        KeyInfo {
            public_key: b(3, 33),
            ..base.clone()
        },
        KeyInfo {
            chain_code: Some(b(8, 32)),
            ..base.clone()
        },
        KeyInfo {
            public_shares: vec![b(2, 33), b(3, 33), b(3, 33)],
            ..base.clone()
        },
        KeyInfo {
            request: b(6, 32),
            ..base.clone()
        },
        KeyInfo {
            policy_version: 2,
            ..base.clone()
        },
        KeyInfo {
            policy: KeyPolicy {
                approvers: vec![b(0xA1, 32), b(0xA3, 32)],
                approvals_needed: 2,
            },
            ..base.clone()
        },
        KeyInfo {
            policy: KeyPolicy {
                approvals_needed: 1,
                ..base.policy.clone()
            },
            ..base.clone()
        },
        KeyInfo {
            refresh_every: 0,
            ..base.clone()
        },
        eddsa_key(),
    ];
    for (i, other) in changed.iter().enumerate() {
        assert_ne!(other.digest(), d, "change {i} is in the digest");
    }
    assert_eq!(
        ecdsa_key().digest(),
        d,
        "the digest is a function of the facts"
    );
}

#[test]
fn every_part_of_a_transfer_is_in_its_context() {
    let cluster = ClusterId([1; 32]);
    let (change, roster, chain, key) = ([2; 32], [3; 32], [4; 32], [5; 32]);
    let parties = [
        ChangeParty {
            current: Some(0),
            next: Some(0),
        },
        ChangeParty {
            current: None,
            next: Some(1),
        },
        ChangeParty {
            current: Some(1),
            next: None,
        },
    ];
    let dealers = [0u16, 1];
    let base = Transfer {
        cluster: &cluster,
        change: &change,
        current: &[6; 32],
        version: 1,
        roster: &roster,
        chain: &chain,
        parties: &parties,
        dealers: &dealers,
        key: &key,
    };
    let c = transfer_context(&base);
    let other_cluster = ClusterId([9; 32]);
    let other = [9u8; 32];
    let swapped = [parties[0], parties[2], parties[1]];
    let fewer = [parties[0], parties[1]];
    let one_dealer = [0u16];
    let moved = [
        ChangeParty {
            current: Some(0),
            next: Some(0),
        },
        ChangeParty {
            current: Some(1),
            next: Some(1),
        },
        parties[2],
    ];
    let variants = [
        Transfer {
            cluster: &other_cluster,
            ..base
        },
        Transfer {
            change: &other,
            ..base
        },
        Transfer {
            current: &other,
            ..base
        },
        Transfer { version: 2, ..base },
        Transfer {
            roster: &other,
            ..base
        },
        Transfer {
            chain: &other,
            ..base
        },
        Transfer {
            parties: &swapped,
            ..base
        },
        Transfer {
            parties: &fewer,
            ..base
        },
        Transfer {
            parties: &moved,
            ..base
        },
        Transfer {
            dealers: &one_dealer,
            ..base
        },
        Transfer {
            key: &other,
            ..base
        },
    ];
    for (i, v) in variants.iter().enumerate() {
        assert_ne!(transfer_context(v), c, "variant {i} is in the context");
    }
    assert_eq!(transfer_context(&base), c);
}

/// Pinned: nodes on two images during a rotation compute the same digests, so their encoding
/// never changes silently.
#[test]
fn key_facts_and_transfer_contexts_are_pinned() {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(
        hex(&ecdsa_key().digest()),
        "fbb9eabbabcd35e6d9ecc656faed130da7d312a1d0a4536793740e41983c59df"
    );
    // An EdDSA key's chain code is CBOR null.
    assert_eq!(
        hex(&eddsa_key().digest()),
        "b35c12edccbfaa6edb4ac5311045f38e475ca744d6747e725e0238fc6c7e4125"
    );
    let cluster = ClusterId([1; 32]);
    let parties = [ChangeParty {
        current: Some(0),
        next: None,
    }];
    let t = Transfer {
        cluster: &cluster,
        change: &[2; 32],
        current: &[6; 32],
        version: 1,
        roster: &[3; 32],
        chain: &[4; 32],
        parties: &parties,
        dealers: &[0],
        key: &[5; 32],
    };
    assert_eq!(
        hex(&transfer_context(&t)),
        "8a62e0b514a782b41b57545b2415116c88b7befb9dcddff961e904e65d3b68fa"
    );
}
