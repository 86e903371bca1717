//! A node's inventory (issue 20, disaster recovery): what a coordinator whose database was lost
//! rebuilds its key records from. Each node's page is signed by its node key with the caller's
//! nonce; each key's receipt is the one the node gave when it sealed that generation (the same
//! bytes), so the pages of every node together verify as a client checks a key; a pending
//! generation shows; pages follow in key-id order; bad nonces are refused.

use protocol::inventory::{InventoryReport, verify_inventory};
use protocol::policy::Scheme;
use protocol::receipt::{KeyReceipt, verify_key_receipts};
use protocol::{EnclaveRequest, EnclaveResponse};
use serde_bytes::ByteBuf;

use super::Cluster;

impl Cluster {
    /// Node `node`'s inventory page after `after`, with `nonce`.
    pub(super) fn inventory(
        &self,
        node: usize,
        nonce: &[u8],
        after: Option<&str>,
    ) -> Result<(InventoryReport, Vec<u8>), protocol::EnclaveError> {
        match self.enclaves[node].handle(EnclaveRequest::Inventory {
            nonce: ByteBuf::from(nonce.to_vec()),
            after: after.map(str::to_string),
        }) {
            EnclaveResponse::Inventory { report, signature } => Ok((*report, signature.to_vec())),
            EnclaveResponse::Error(e) => Err(e),
            other => panic!("inventory at {node}: {other:?}"),
        }
    }
}

#[test]
fn every_node_reports_what_it_holds_signed_and_fresh() {
    let mut c = Cluster::new(3);
    c.admit_all();
    let hot = c.create_key("hot", Scheme::EddsaEd25519, 2);
    let warm = c.create_key("warm", Scheme::EddsaEd25519, 2);
    // "warm" gets a pending generation: reshared, not retired into.
    let request = c.reshare_request("warm", 0, 3, &[0, 1], &[0, 1]);
    let reshared = c.reshare(request, Scheme::EddsaEd25519, &warm);
    let genesis = &c.genesis.request;
    let nonce = [0x42; 32];

    let mut claims: Vec<Vec<(KeyReceipt, Vec<u8>)>> = Vec::new();
    for node in 0..3u16 {
        let (report, signature) = c.inventory(usize::from(node), &nonce, None).unwrap();
        verify_inventory(
            (&genesis.cluster_id(), genesis.roster.as_slice()),
            node,
            (&nonce, None),
            &report,
            &signature,
        )
        .unwrap();
        assert!(!report.more);
        // No auxiliary info was made in this cluster (EdDSA keys only): none is reported; nor
        // any admin or image change.
        assert_eq!((report.admins, report.images, report.aux), (0, 0, false));
        assert!(report.admin_changes.is_empty() && report.image_changes.is_empty());
        let ids: Vec<&str> = report
            .keys
            .iter()
            .map(|k| k.receipt.key_id.as_str())
            .collect();
        assert_eq!(ids, ["hot", "warm"]);
        assert_eq!(report.keys[0].receipt.public_key.as_slice(), hot.as_slice());
        assert_eq!(report.keys[0].pending, None);
        // The pending generation shows; the receipt is still the current one (generation 0).
        assert_eq!(report.keys[1].pending, Some(reshared.generation));
        assert_eq!(report.keys[1].receipt.generation, 0);
        claims.push(
            report
                .keys
                .into_iter()
                .map(|k| (k.receipt, k.signature.unwrap().to_vec()))
                .collect(),
        );
        // A page signed for one nonce is not the answer to another.
        assert!(
            verify_inventory(
                (&genesis.cluster_id(), genesis.roster.as_slice()),
                node,
                (&[0x43; 32], None),
                &report_of(&c, node, &nonce),
                &signature
            )
            .is_err()
        );
    }
    // Every node's receipt of each key, from three inventories, verifies as a client checks
    // a key's receipts: they are the receipts the nodes gave when the key was made.
    for (key, (first, _)) in claims[0].iter().enumerate() {
        let claim = KeyReceipt {
            node: 0,
            ..first.clone()
        };
        let signatures: Vec<(u16, Vec<u8>)> = (0..3u16)
            .zip(&claims)
            .map(|(n, held)| (n, held[key].1.clone()))
            .collect();
        verify_key_receipts(genesis, &claim, &signatures).unwrap();
    }

    // Pages: after "hot" comes "warm" alone; after "warm", nothing.
    let (page, signature) = c.inventory(0, &nonce, Some("hot")).unwrap();
    verify_inventory(
        (&genesis.cluster_id(), genesis.roster.as_slice()),
        0,
        (&nonce, Some("hot")),
        &page,
        &signature,
    )
    .unwrap();
    assert_eq!(page.keys.len(), 1);
    assert_eq!(page.keys[0].receipt.key_id, "warm");
    let (page, _) = c.inventory(0, &nonce, Some("warm")).unwrap();
    assert!(page.keys.is_empty() && !page.more);

    // A page after a key id longer than any is refused.
    let e = c.inventory(0, &nonce, Some(&"k".repeat(129))).unwrap_err();
    assert!(e.message.contains("at most 128 bytes"), "{e:?}");
    // A nonce too short to be fresh, or too long, is refused.
    for bad in [&[0u8; 15][..], &[0u8; 65][..]] {
        let e = c.inventory(0, bad, None).unwrap_err();
        assert!(e.message.contains("inventory nonce"), "{e:?}");
    }
}

/// Node `node`'s first page for `nonce` (for the replay check).
fn report_of(c: &Cluster, node: u16, nonce: &[u8]) -> InventoryReport {
    c.inventory(usize::from(node), nonce, None).unwrap().0
}
