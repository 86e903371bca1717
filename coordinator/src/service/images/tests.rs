//! The image set's pure parts: the chain of changes, where a posted change stands, what is
//! read back from the store, what the audit record says.

use std::collections::BTreeMap;

use super::changes::ChangeJson;
use super::*;
use crate::api::Wire;
use crate::store::ImageChangeRow;
use protocol::genesis::ClusterId;
use protocol::images::images_set_message;
use protocol::session::Outcome;

fn image(b: u8) -> ImageJson {
    ImageJson {
        pcr0: Hex(vec![b; 48]),
        pcr1: Hex(vec![1; 48]),
        pcr2: Hex(vec![b; 48]),
    }
}

fn genesis() -> GenesisV2Json {
    GenesisV2Json {
        v: 2,
        name: "c".into(),
        admins: vec![Hex(vec![1; 32])],
        admin_quorum: 1,
        image: image(10),
        roster: vec![],
    }
}

fn change(version: u32, images: &[u8]) -> Recorded {
    let request = AcceptImagesJson {
        v: ACCEPT_IMAGES_VERSION,
        cluster: crate::api::ClusterHex(ClusterId([7; 32])),
        version,
        images: images.iter().map(|b| image(*b)).collect(),
        request_id: Hex(vec![version as u8; 16]),
        created: 100,
        expiry: 400,
        admins: 0,
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
fn the_genesis_image_is_version_0_and_each_change_replaces_the_set_in_order() {
    let g = genesis();
    assert_eq!(
        image_set(&g, &[]).unwrap(),
        ImageSet {
            version: 0,
            images: vec![image(10)],
        }
    );
    // A rotation: the old and the new image, then the new one alone.
    let chain = [change(0, &[10, 11]), change(1, &[11])];
    assert_eq!(
        image_set(&g, &chain[..1]).unwrap(),
        ImageSet {
            version: 1,
            images: vec![image(10), image(11)],
        }
    );
    assert_eq!(
        image_set(&g, &chain).unwrap(),
        ImageSet {
            version: 2,
            images: vec![image(11)],
        }
    );
    // A change that does not replace the version before it breaks the chain.
    for broken in [
        vec![change(1, &[11])],
        vec![change(0, &[11]), change(0, &[12])],
        vec![change(0, &[11]), change(2, &[12])],
    ] {
        assert_eq!(image_set(&g, &broken).unwrap_err().code, ErrorCode::Storage);
    }
}

#[test]
fn a_posted_change_is_new_recorded_or_stale() {
    let chain = [change(0, &[10, 11]), change(1, &[11])];
    let set = image_set(&genesis(), &chain).unwrap();
    let new = change(2, &[11, 12]);
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
    let other = change(0, &[11]).approved.request.to_wire();
    let ahead = change(5, &[11]).approved.request.to_wire();
    for stale in [other, ahead] {
        let e = place(&stale, &set, &chain).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unapproved);
        assert!(e.message.starts_with("stale_images:"), "{}", e.message);
    }
}

#[test]
fn an_image_change_under_another_admin_version_is_stale_before_its_approvals_are_read() {
    let admin = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
    let admins = super::super::admins::AdminSet {
        version: 1,
        admins: vec![Hex(admin.to_bytes().to_vec())],
        quorum: 1,
    };
    let request = change(0, &[10, 11]).approved.request.to_wire();
    assert_eq!(request.admins, 0);
    let e = check_admin_approvals(&request, request.admins, &[], &admins).unwrap_err();
    assert_eq!(e.code, ErrorCode::Unapproved);
    assert!(e.message.starts_with("stale_admins:"), "{}", e.message);
}

#[test]
fn a_recorded_change_is_read_back_only_as_it_was_written() {
    let c = change(0, &[10, 11]);
    let row = ImageChangeRow {
        version: 1,
        request: serde_json::to_string(&c.approved).unwrap(),
        request_hash: c.hash.to_vec(),
        statements: BTreeMap::from([(0, hex::encode([9; 64]))]),
        created_at: 500,
    };
    assert_eq!(Recorded::from_row(&row).unwrap(), c);
    let shown = Recorded::from_row(&row).unwrap().json();
    assert_eq!((shown.version, shown.recorded), (1, 500));
    assert_eq!(shown.request.request.images, vec![image(10), image(11)]);
    assert_eq!(shown.statements[0].node, 0);
    // An admin change's row is not an image change.
    let admin_change = serde_json::json!({
        "request": {
            "v": 1, "cluster": ClusterId([7; 32]).to_string(), "version": 0,
            "admins": [hex::encode([1; 32])], "admin_quorum": 1,
            "request_id": hex::encode([0; 16]), "created": 100, "expiry": 400
        },
        "approvals": []
    });
    for bad in [
        ImageChangeRow {
            version: 2,
            ..row.clone()
        },
        ImageChangeRow {
            request_hash: vec![0; 32],
            ..row.clone()
        },
        ImageChangeRow {
            statements: BTreeMap::from([(0, "zz".into())]),
            ..row.clone()
        },
        ImageChangeRow {
            request: admin_change.to_string(),
            ..row.clone()
        },
    ] {
        let e = Recorded::from_row(&bad).unwrap_err();
        assert_eq!(e.code, ErrorCode::Storage);
        assert!(e.message.contains("image version"), "{}", e.message);
    }
}

#[test]
fn the_audit_record_names_the_versions_the_images_and_the_nodes_left() {
    let r = change(3, &[0xab, 0xcd]).approved.request.to_wire();
    let all = describe(&r);
    assert!(
        all.starts_with(
            "image version 3 -> 4: [abababababababab, cdcdcdcdcdcdcdcd], request sha256 "
        ),
        "{all}"
    );
    assert!(all.ends_with(&hex::encode(r.hash())), "{all}");
}

#[test]
fn a_node_counts_as_having_applied_an_image_change_only_by_its_outcome() {
    let json = change(0, &[10, 11]).approved.request;
    let r = json.to_wire();
    let e = json.expected();
    assert_eq!((e.version, e.hash), (1, r.hash()));
    let accepted = Outcome::ImagesAccepted {
        version: 1,
        sealed: serde_bytes::ByteBuf::new(),
        statement: serde_bytes::ByteBuf::from(vec![5; 64]),
    };
    assert_eq!(
        (e.applied)(accepted),
        Some((1, serde_bytes::ByteBuf::from(vec![5; 64])))
    );
    assert_eq!((e.applied)(Outcome::PresignatureReady), None);
    let message = (e.message)(&r.cluster, 2, &[0; 32], 1, &r.hash());
    assert_eq!(message, images_set_message(&r.cluster, 2, 1, &r.hash()));
}
