//! The admin set's pure parts: the chain of changes, where a posted change stands, what is
//! read back from the store.

use std::collections::BTreeMap;

use super::super::changes::{failure, nowhere_code};
use super::*;
use crate::api::GenesisJson;
use crate::api::Wire;
use crate::store::AdminChangeRow;
use protocol::genesis::ClusterId;

fn genesis() -> GenesisBody {
    GenesisBody::V1(ApprovedJson {
        request: GenesisJson {
            v: 1,
            cluster: "c".into(),
            nodes: 3,
            admins: vec![Hex(vec![1; 32]), Hex(vec![2; 32])],
            admin_quorum: 2,
        },
        approvals: vec![],
        presignature: None,
    })
}

fn change(version: u32, admins: &[u8], quorum: u16) -> Recorded {
    let request = SetAdminsJson {
        v: SET_ADMINS_VERSION,
        cluster: crate::api::ClusterHex(ClusterId([7; 32])),
        version,
        admins: admins.iter().map(|a| Hex(vec![*a; 32])).collect(),
        admin_quorum: quorum,
        request_id: Hex(vec![version as u8; 16]),
        created: 100,
        expiry: 400,
    };
    Recorded {
        hash: request.to_wire().hash(),
        approved: ApprovedJson {
            request,
            approvals: vec![],
            presignature: None,
        },
        statements: BTreeMap::from([(0, vec![9; 64])]),
        recorded: 500,
    }
}

#[test]
fn the_genesis_admins_are_version_0_and_each_change_replaces_them_in_order() {
    let g = genesis();
    assert_eq!(
        admin_set(&g, &[]).unwrap(),
        AdminSet {
            version: 0,
            admins: vec![Hex(vec![1; 32]), Hex(vec![2; 32])],
            quorum: 2,
        }
    );
    let chain = [change(0, &[3, 4, 5], 2), change(1, &[6], 1)];
    assert_eq!(
        admin_set(&g, &chain[..1]).unwrap(),
        AdminSet {
            version: 1,
            admins: vec![Hex(vec![3; 32]), Hex(vec![4; 32]), Hex(vec![5; 32])],
            quorum: 2,
        }
    );
    assert_eq!(
        admin_set(&g, &chain).unwrap(),
        AdminSet {
            version: 2,
            admins: vec![Hex(vec![6; 32])],
            quorum: 1,
        }
    );
    // A change that does not replace the version before it breaks the chain.
    for broken in [
        vec![change(1, &[6], 1)],
        vec![change(0, &[3], 1), change(0, &[4], 1)],
        vec![change(0, &[3], 1), change(2, &[4], 1)],
    ] {
        assert_eq!(admin_set(&g, &broken).unwrap_err().code, ErrorCode::Storage);
    }
}

#[test]
fn a_posted_change_is_new_recorded_or_stale() {
    let chain = [change(0, &[3, 4, 5], 2), change(1, &[6], 1)];
    let set = admin_set(&genesis(), &chain).unwrap();
    let new = change(2, &[7], 1);
    assert_eq!(
        place(&new.approved.request.to_wire(), &set, &chain).unwrap(),
        Placed::New
    );
    // The very change recorded: caught up.
    let again = chain[0].approved.request.to_wire();
    assert_eq!(
        place(&again, &set, &chain).unwrap(),
        Placed::Recorded(&chain[0])
    );
    // Another change of a recorded version, or of a version not reached yet: stale.
    let other = change(0, &[3, 4], 2).approved.request.to_wire();
    let ahead = change(5, &[3], 1).approved.request.to_wire();
    for stale in [other, ahead] {
        let e = place(&stale, &set, &chain).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unapproved);
        assert!(e.message.starts_with("stale_admins:"), "{}", e.message);
    }
}

#[test]
fn an_admin_request_of_another_version_is_stale_before_its_approvals_are_read() {
    let admin = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
    let set = AdminSet {
        version: 2,
        admins: vec![Hex(admin.to_bytes().to_vec())],
        quorum: 1,
    };
    let request = change(2, &[7], 1).approved.request.to_wire();
    let e = super::super::checks::check_admin_approvals(&request, 1, &[], &set).unwrap_err();
    assert_eq!(e.code, ErrorCode::Unapproved);
    assert!(e.message.starts_with("stale_admins:"), "{}", e.message);
    // At the version in force, the approvals are what is missing.
    let e = super::super::checks::check_admin_approvals(&request, 2, &[], &set).unwrap_err();
    assert_eq!(e.code, ErrorCode::Unapproved);
    assert!(!e.message.starts_with("stale_admins:"), "{}", e.message);
}

#[test]
fn a_recorded_change_is_read_back_only_as_it_was_written() {
    let c = change(0, &[3, 4], 2);
    let row = AdminChangeRow {
        version: 1,
        request: serde_json::to_string(&c.approved).unwrap(),
        request_hash: c.hash.to_vec(),
        statements: BTreeMap::from([(0, hex::encode([9; 64]))]),
        created_at: 500,
    };
    assert_eq!(Recorded::from_row(&row).unwrap(), c);
    let shown = Recorded::from_row(&row).unwrap().json();
    assert_eq!((shown.version, shown.recorded), (1, 500));
    assert_eq!(shown.statements[0].node, 0);
    for bad in [
        AdminChangeRow {
            version: 2,
            ..row.clone()
        },
        AdminChangeRow {
            request_hash: vec![0; 32],
            ..row.clone()
        },
        AdminChangeRow {
            statements: BTreeMap::from([(0, "zz".into())]),
            ..row.clone()
        },
    ] {
        assert_eq!(
            Recorded::from_row(&bad).unwrap_err().code,
            ErrorCode::Storage
        );
    }
}

#[test]
fn no_node_applying_a_change_is_a_refusal_only_when_an_enclave_refused() {
    let down = failure(1, "unreachable", "no answer".into());
    let stale = failure(2, "membership", "stale_admins: ...".into());
    assert_eq!(
        nowhere_code(std::slice::from_ref(&down)),
        ErrorCode::NoQuorum
    );
    assert_eq!(nowhere_code(&[down, stale]), ErrorCode::Refused);
}
