use ed25519_dalek::{Signer, SigningKey};

use super::*;
use crate::genesis::Genesis;
use crate::policy::Scheme;

fn keys() -> Vec<SigningKey> {
    (1..=3u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect()
}

fn genesis() -> Genesis {
    let mut g = crate::genesis::tests::sample();
    for (entry, key) in g.roster.iter_mut().zip(keys()) {
        entry.node_key = ByteBuf::from(key.verifying_key().to_bytes().to_vec());
    }
    g
}

fn held(g: &Genesis, node: u16, key_id: &str) -> HeldKey {
    let receipt = KeyReceipt {
        v: crate::receipt::KEY_RECEIPT_VERSION,
        cluster: g.cluster_id(),
        node,
        key_id: key_id.into(),
        scheme: Scheme::EddsaEd25519,
        threshold: 2,
        participants: vec![0, 1, 2],
        public_key: ByteBuf::from(vec![7; 32]),
        chain_code: None,
        generation: 1,
        request: ByteBuf::from(vec![0x5A; 32]),
        policy_version: 0,
        policy: None,
    };
    let signature = keys()[usize::from(node)].sign(&receipt.message());
    HeldKey {
        receipt,
        signature: Some(ByteBuf::from(signature.to_bytes().to_vec())),
        policy: KeyPolicy {
            approvers: vec![ByteBuf::from(vec![9; 32])],
            approvals_needed: 1,
        },
        policy_void: false,
        public_shares: vec![],
        refresh_every: 0,
        pending: None,
    }
}

fn report(g: &Genesis, node: u16, ids: &[&str]) -> InventoryReport {
    InventoryReport {
        v: INVENTORY_VERSION,
        cluster: g.cluster_id(),
        node,
        nonce: ByteBuf::from(vec![0xAB; 16]),
        after: None,
        more: false,
        admins: 0,
        images: 0,
        aux: true,
        admin_changes: Vec::new(),
        image_changes: Vec::new(),
        roster_proposal: None,
        roster: 0,
        rosters: Vec::new(),
        roster_words: Vec::new(),
        keys: ids.iter().map(|id| held(g, node, id)).collect(),
    }
}

/// [`verify_inventory`] under the genesis' roster.
fn verify_under(
    g: &Genesis,
    node: u16,
    page: (&[u8], Option<&str>),
    r: &InventoryReport,
    signature: &[u8],
) -> Result<(), InventoryError> {
    verify_inventory((&g.cluster_id(), &g.roster), node, page, r, signature)
}

fn sign(node: u16, r: &InventoryReport) -> Vec<u8> {
    keys()[usize::from(node)]
        .sign(&r.message())
        .to_bytes()
        .to_vec()
}

const NONCE: &[u8] = &[0xAB; 16];

#[test]
fn a_node_s_own_fresh_report_verifies() {
    let g = genesis();
    let r = report(&g, 1, &["a", "b"]);
    verify_under(&g, 1, (NONCE, None), &r, &sign(1, &r)).unwrap();
    assert!(r.message().starts_with(b"cohort/inventory/v1\0"));
}

/// Each way a parent or a coordinator could misreport what a node holds is refused by name.
#[test]
fn a_forged_stale_or_misplaced_report_is_refused() {
    let g = genesis();
    let r = report(&g, 1, &["a", "b"]);
    let kind = |e: InventoryError| e.to_string().split(':').next().unwrap().to_string();
    // Signed by another node's key, or altered after signing.
    let e = verify_under(&g, 1, (NONCE, None), &r, &sign(2, &r)).unwrap_err();
    assert_eq!(e, InventoryError::BadSignature(1));
    let mut altered = r.clone();
    altered.keys[0].receipt.generation = 0;
    let e = verify_under(&g, 1, (NONCE, None), &altered, &sign(1, &r)).unwrap_err();
    assert_eq!(e, InventoryError::BadSignature(1));
    // Node 1's report shown as node 2's, or an old one replayed for a new nonce, or another
    // page.
    let e = verify_under(&g, 2, (NONCE, None), &r, &sign(1, &r)).unwrap_err();
    assert_eq!(e, InventoryError::BadSignature(2));
    let e = verify_under(&g, 1, (&[0xCD; 16], None), &r, &sign(1, &r)).unwrap_err();
    assert_eq!(kind(e), "not_this_request");
    let e = verify_under(&g, 1, (NONCE, Some("a")), &r, &sign(1, &r)).unwrap_err();
    assert_eq!(
        e,
        InventoryError::NotThisRequest {
            node: 1,
            what: "page"
        }
    );
    let e = verify_under(&g, 7, (NONCE, None), &r, &sign(1, &r)).unwrap_err();
    assert_eq!(e, InventoryError::UnknownNode(7));
    // Keys out of order (or repeated), or a receipt of another node.
    let dup = report(&g, 1, &["b", "b"]);
    let e = verify_under(&g, 1, (NONCE, None), &dup, &sign(1, &dup)).unwrap_err();
    assert_eq!(kind(e), "bad_key");
    let mut other = report(&g, 1, &["a"]);
    other.keys[0] = held(&g, 2, "a");
    let e = verify_under(&g, 1, (NONCE, None), &other, &sign(1, &other)).unwrap_err();
    assert_eq!(kind(e), "bad_key");
    // A receipt signature that does not verify, though the whole report is signed.
    let mut forged = report(&g, 1, &["a"]);
    forged.keys[0].receipt.public_key = ByteBuf::from(vec![8; 32]);
    let e = verify_under(&g, 1, (NONCE, None), &forged, &sign(1, &forged)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad_key: node 1's inventory lists key a: its receipt's signature does not verify"
    );
    // A node at admin version 1 that reports no change (its newest dropped).
    let mut short = report(&g, 1, &["a"]);
    short.admins = 1;
    let e = verify_under(&g, 1, (NONCE, None), &short, &sign(1, &short)).unwrap_err();
    assert_eq!(
        e,
        InventoryError::NotThisRequest {
            node: 1,
            what: "admin change chain"
        }
    );
    // A node at roster version 1 that reports no committed change (its newest dropped, so
    // that a coordinator would follow a roster it replaced), or more words than changes.
    let mut short = report(&g, 1, &["a"]);
    short.roster = 1;
    let e = verify_under(&g, 1, (NONCE, None), &short, &sign(1, &short)).unwrap_err();
    assert_eq!(
        e,
        InventoryError::NotThisRequest {
            node: 1,
            what: "committed roster chain"
        }
    );
    let mut wordy = report(&g, 1, &["a"]);
    wordy.roster_words.push(RosterWord {
        version: 1,
        statement: ByteBuf::from(vec![1; 64]),
    });
    let e = verify_under(&g, 1, (NONCE, None), &wordy, &sign(1, &wordy)).unwrap_err();
    assert_eq!(
        e,
        InventoryError::NotThisRequest {
            node: 1,
            what: "committed roster words"
        }
    );
    // A key id longer than any the cluster makes.
    let long = "k".repeat(MAX_INVENTORY_KEY_ID + 1);
    let too_long = report(&g, 1, &[long.as_str()]);
    let e = verify_under(&g, 1, (NONCE, None), &too_long, &sign(1, &too_long)).unwrap_err();
    assert_eq!(kind(e), "bad_key");
    // A page starting after "a" may not list "a".
    let mut page = report(&g, 1, &["a"]);
    page.after = Some("a".into());
    let e = verify_under(&g, 1, (NONCE, Some("a")), &page, &sign(1, &page)).unwrap_err();
    assert_eq!(kind(e), "bad_key");
}

/// A key's facts for a move come from a node's report once it carries the public shares and
/// the current generation's request; a report without either states none.
#[test]
fn a_held_key_states_its_facts_for_a_move() {
    let g = genesis();
    let mut key = held(&g, 1, "hot");
    assert_eq!(key.key_info(), None, "no public shares");
    key.public_shares = vec![ByteBuf::from(vec![3; 32]); 3];
    let info = key.key_info().expect("facts");
    assert_eq!(
        (info.key_id.as_str(), info.generation, info.threshold),
        ("hot", 1, 2)
    );
    assert_eq!(info.public_shares.len(), 3);
    assert_eq!(info.request.as_slice(), [0x5A; 32]);
    assert_eq!(info.policy, key.policy);
    // The request unknown: the key is not moved.
    key.receipt.request = ByteBuf::new();
    assert_eq!(key.key_info(), None);
    // A malformed share: no facts.
    key.receipt.request = ByteBuf::from(vec![0x5A; 32]);
    key.public_shares[0] = ByteBuf::from(vec![3; 31]);
    assert_eq!(key.key_info(), None);
}

/// Public shares, where a report lists them, are one point per participant.
#[test]
fn public_shares_are_one_point_per_participant() {
    let g = genesis();
    let mut r = report(&g, 1, &["a"]);
    r.keys[0].public_shares = vec![ByteBuf::from(vec![3; 32]); 3];
    verify_under(&g, 1, (NONCE, None), &r, &sign(1, &r)).unwrap();
    for bad in [
        vec![ByteBuf::from(vec![3; 32]); 2],
        vec![ByteBuf::from(vec![3; 33]); 3],
    ] {
        r.keys[0].public_shares = bad;
        assert_eq!(
            verify_under(&g, 1, (NONCE, None), &r, &sign(1, &r))
                .unwrap_err()
                .to_string(),
            "bad_key: node 1's inventory lists key a: its public shares are not one point per participant"
        );
    }
}
