//! The image chain as a client checks it, and images as the command line gives them.

use super::*;
use crate::admins::StatementMessage;
use crate::testing::{key, pinned_on};
use coordinator::api::{AdminChange, Hex, ImageChange, ImageJson, NodeReceipt, SetAdminsJson};
use ed25519_dalek::Signer;
use protocol::admins::admins_set_message;

fn image(b: u8) -> Image {
    Image {
        pcr0: ByteBuf::from(vec![b; 48]),
        pcr1: ByteBuf::from(vec![1; 48]),
        pcr2: ByteBuf::from(vec![b; 48]),
    }
}

/// A pinned cluster of `nodes` on `image(0)`.
fn pinned_on_image0(nodes: &[SigningKey]) -> Trust {
    pinned_on(nodes, image(0))
}

/// The statements of the nodes at `appliers` (signed by `nodes`) over `message`.
fn signed(
    trust: &Trust,
    nodes: &[SigningKey],
    appliers: &[u16],
    (message, version, hash): (StatementMessage, u32, &[u8; 32]),
) -> Vec<NodeReceipt> {
    appliers
        .iter()
        .map(|n| {
            let bytes = message(&trust.cluster_id(), *n, version, hash);
            NodeReceipt {
                node: *n,
                signature: Hex(nodes[usize::from(*n)].sign(&bytes).to_bytes().to_vec()),
            }
        })
        .collect()
}

/// The image change from image version `version` to `images` (by seed), approved by
/// `approvers` under admin version `admins`, with the statements of the nodes at `appliers`.
fn change(
    trust: &Trust,
    nodes: &[SigningKey],
    (version, admins): (u32, u32),
    images: &[u8],
    approvers: &[SigningKey],
    appliers: &[u16],
) -> ImageChange {
    let images: Vec<Image> = images.iter().map(|b| image(*b)).collect();
    let request = requests::accept_images(trust.cluster_id(), (version, images.as_slice()), admins);
    let hash = request.hash();
    let approved = requests::approve(&request, approvers);
    ImageChange {
        version: version + 1,
        request: ApprovedJson::<AcceptImagesJson>::from_wire(&approved),
        request_sha256: Hex(hash.to_vec()),
        statements: signed(
            trust,
            nodes,
            appliers,
            (images_set_message, version + 1, &hash),
        ),
        recorded: 1,
    }
}

/// The status a coordinator shows after `changes`.
fn status(trust: &Trust, changes: Vec<ImageChange>) -> ImagesStatus {
    let (version, images) = match changes.last() {
        Some(c) => (c.version, c.request.request.images.clone()),
        None => (0, vec![ImageJson::from_wire(&trust.genesis().image)]),
    };
    ImagesStatus {
        version,
        images,
        changes,
    }
}

/// The genesis admins replaced (admin version 1) by keys 4 and 5, any one approving.
fn replaced_admins(trust: &Trust, nodes: &[SigningKey]) -> AdminChain {
    let new = [key(4), key(5)].map(|k| k.verifying_key().to_bytes());
    let request = requests::set_admins(trust.cluster_id(), 0, &new, 1);
    let hash = request.hash();
    let approved = requests::approve(&request, &[key(1), key(2)]);
    let change = AdminChange {
        version: 1,
        request: ApprovedJson::<SetAdminsJson>::from_wire(&approved),
        request_sha256: Hex(hash.to_vec()),
        statements: signed(trust, nodes, &[0], (admins_set_message, 1, &hash)),
        recorded: 1,
    };
    let status = AdminsStatus {
        version: 1,
        admins: change.request.request.admins.clone(),
        admin_quorum: 1,
        changes: vec![change],
    };
    AdminChain::verify(trust, &status).unwrap()
}

#[test]
fn a_rotation_verifies_and_names_every_version() {
    let nodes = [key(11), key(12)];
    let trust = pinned_on_image0(&nodes);
    let admins = AdminChain::genesis(&trust);
    let genesis = ImageChain::verify(&trust, &admins, &status(&trust, vec![])).unwrap();
    assert_eq!(
        genesis.current(),
        &ImageSet {
            version: 0,
            images: vec![image(0)],
        }
    );
    assert!(genesis.at(1).is_none());
    // The old and the new image, then the new one alone.
    let both = change(&trust, &nodes, (0, 0), &[0, 7], &[key(1), key(3)], &[0, 1]);
    let new = change(&trust, &nodes, (1, 0), &[7], &[key(2), key(3)], &[1]);
    let chain = ImageChain::verify(&trust, &admins, &status(&trust, vec![both, new])).unwrap();
    assert_eq!(
        chain.current(),
        &ImageSet {
            version: 2,
            images: vec![image(7)],
        }
    );
    assert_eq!(chain.at(1).unwrap().images, vec![image(0), image(7)]);
    assert_eq!(chain.at(0).unwrap().images, vec![image(0)]);
    assert!(chain.at(3).is_none());
}

#[test]
fn each_change_is_approved_by_the_admins_of_the_version_it_names() {
    let nodes = [key(11), key(12)];
    let trust = pinned_on_image0(&nodes);
    let admins = replaced_admins(&trust, &nodes);
    let accepted = [
        // Under the genesis admins (before they were replaced).
        change(&trust, &nodes, (0, 0), &[0, 7], &[key(1), key(2)], &[0]),
        // Under the new admins, any one of them.
        change(&trust, &nodes, (0, 1), &[0, 7], &[key(5)], &[0]),
    ];
    for c in accepted {
        ImageChain::verify(&trust, &admins, &status(&trust, vec![c])).unwrap();
    }
    let refused = [
        // A replaced admin approves under the new admin version.
        change(&trust, &nodes, (0, 1), &[0, 7], &[key(1), key(2)], &[0]),
        // A new admin approves under the genesis admins' version.
        change(&trust, &nodes, (0, 0), &[0, 7], &[key(4), key(5)], &[0]),
        // An admin version the checked chain does not reach.
        change(&trust, &nodes, (0, 2), &[0, 7], &[key(4)], &[0]),
    ];
    for c in refused {
        assert!(ImageChain::verify(&trust, &admins, &status(&trust, vec![c])).is_err());
    }
}

#[test]
fn a_change_out_of_order_unapplied_or_not_signed_by_the_roster_is_refused() {
    let nodes = [key(11), key(12)];
    let trust = pinned_on_image0(&nodes);
    let admins = AdminChain::genesis(&trust);
    let approvers = [key(1), key(2)];
    let first = || change(&trust, &nodes, (0, 0), &[0, 7], &approvers, &[0]);
    let mut other_hash = first();
    other_hash.request_sha256 = Hex(vec![0; 32]);
    let refused = [
        // One genesis admin is not the quorum.
        vec![change(&trust, &nodes, (0, 0), &[7], &[key(1)], &[0])],
        // A change that skips a version.
        vec![change(&trust, &nodes, (1, 0), &[7], &approvers, &[0])],
        // Two changes of one version.
        vec![
            first(),
            change(&trust, &nodes, (0, 0), &[8], &approvers, &[0]),
        ],
        // No node applied it.
        vec![change(&trust, &nodes, (0, 0), &[7], &approvers, &[])],
        // A statement by another key than the roster's.
        vec![change(
            &trust,
            &[key(12), key(11)],
            (0, 0),
            &[7],
            &approvers,
            &[0],
        )],
        // Another hash than its request's.
        vec![other_hash],
    ];
    for changes in refused {
        assert!(ImageChain::verify(&trust, &admins, &status(&trust, changes)).is_err());
    }
    // A statement over the admin-change message is not one over the image change.
    let mut admin_statement = first();
    let hash: [u8; 32] = admin_statement
        .request_sha256
        .0
        .as_slice()
        .try_into()
        .unwrap();
    admin_statement.statements = signed(&trust, &nodes, &[0], (admins_set_message, 1, &hash));
    assert!(ImageChain::verify(&trust, &admins, &status(&trust, vec![admin_statement])).is_err());
    // The set in force must be the one the changes make.
    let mut lying = status(&trust, vec![first()]);
    lying.images.truncate(1);
    assert!(ImageChain::verify(&trust, &admins, &lying).is_err());
    let mut lying = status(&trust, vec![first()]);
    lying.version = 0;
    assert!(ImageChain::verify(&trust, &admins, &lying).is_err());
}

#[test]
fn an_image_is_given_as_three_pcrs_or_a_measurements_file() {
    let i = image(0xab);
    assert_eq!(parse_image(&image_text(&i)).unwrap(), i);
    let short = format!(
        "{}:{}:{}",
        "ab".repeat(32),
        "01".repeat(48),
        "ab".repeat(48)
    );
    let e = parse_image(&short).unwrap_err().to_string();
    assert!(e.contains("PCR0") && e.contains("32 bytes"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, json: serde_json::Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, json.to_string()).unwrap();
        path.to_str().unwrap().to_string()
    };
    // eif-build's and nitro-cli's form, and the bare one.
    let nested = write(
        "eif.json",
        serde_json::json!({"Measurements": {
            "HashAlgorithm": "Sha384 { ... }",
            "PCR0": hex::encode(&i.pcr0),
            "PCR1": hex::encode(&i.pcr1),
            "PCR2": hex::encode(&i.pcr2),
        }}),
    );
    assert_eq!(parse_image(&nested).unwrap(), i);
    let bare = write(
        "bare.json",
        serde_json::json!({
            "PCR0": hex::encode(&i.pcr0),
            "PCR1": hex::encode(&i.pcr1),
            "PCR2": hex::encode(&i.pcr2),
        }),
    );
    assert_eq!(parse_image(&bare).unwrap(), i);
    let no_pcr2 = write(
        "no-pcr2.json",
        serde_json::json!({
            "PCR0": hex::encode(&i.pcr0),
            "PCR1": hex::encode(&i.pcr1),
        }),
    );
    let e = parse_image(&no_pcr2).unwrap_err().to_string();
    assert!(e.contains("no PCR2"), "{e}");
    let sha256 = write(
        "sha256.json",
        serde_json::json!({
            "PCR0": "ab".repeat(32),
            "PCR1": hex::encode(&i.pcr1),
            "PCR2": hex::encode(&i.pcr2),
        }),
    );
    let e = parse_image(&sha256).unwrap_err().to_string();
    assert!(e.contains("PCR0") && e.contains("32 bytes"), "{e}");
    assert!(parse_image(&dir.path().join("missing.json").display().to_string()).is_err());
}
