//! What the unit tests of the chains a client checks share: keys by seed and a pinned genesis.

use ed25519_dalek::SigningKey;
use protocol::genesis::Image;
use serde_bytes::ByteBuf;

use crate::requests;
use crate::trust::Trust;

/// The Ed25519 key of seed `seed`.
pub(crate) fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A pinned cluster whose node keys are `nodes` (node `i` sealed under KMS key `node-i`),
/// running the image of PCRs 0, 1 and 2 filled with 0, 1 and 2; its genesis admins are keys
/// 1, 2 and 3, any 2 approving.
pub(crate) fn pinned(nodes: &[SigningKey]) -> Trust {
    pinned_on(
        nodes,
        Image {
            pcr0: ByteBuf::from(vec![0; 48]),
            pcr1: ByteBuf::from(vec![1; 48]),
            pcr2: ByteBuf::from(vec![2; 48]),
        },
    )
}

/// As [`pinned`], on `image`.
pub(crate) fn pinned_on(nodes: &[SigningKey], image: Image) -> Trust {
    let admins = [key(1), key(2), key(3)];
    let genesis = protocol::genesis::Genesis {
        v: protocol::genesis::GENESIS_VERSION,
        name: "test".into(),
        admins: admins.iter().map(requests::public).collect(),
        admin_quorum: 2,
        image,
        roster: nodes
            .iter()
            .enumerate()
            .map(|(i, n)| protocol::genesis::RosterEntry {
                node_key: requests::public(n),
                kms_key_arn: protocol::KmsKeyArn::parse(&format!(
                    "arn:aws:kms:eu-west-1:111122223333:key/node-{i}"
                ))
                .unwrap(),
                pcr3: None,
                pcr4: None,
            })
            .collect(),
    };
    let approved = requests::approve(&genesis, &admins[..2]);
    Trust::new(approved, std::path::Path::new("the test")).unwrap()
}
