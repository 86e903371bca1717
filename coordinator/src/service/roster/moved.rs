//! A key's record after committed roster changes moved it (issue 20, membership step 4 of
//! `docs/lifecycle.md`). A move deals a key's current generation to the new roster as the next
//! one, with the same request and facts; the commit makes it current at every node of the new
//! roster. The coordinator's record still names the generation before, its receipts signed by
//! the roster before: here each key is recorded at the generation every node of the roster in
//! force holds, with the receipts those nodes sign of it in their inventories
//! (`EnclaveRequest::Inventory`, each page checked under the node key the roster lists), and
//! only when the record then checks as a client checks a key (`KeyInfo::check`, with every
//! roster since the genesis). A resharing of a moved key names the generation moved to.

use protocol::genesis::RosterEntry;
use protocol::inventory::HeldKey;
use tracing::{info, warn};

use super::super::recover::agreed;
use super::super::{Coordinator, err, unix_now};
use super::ClusterRoster;
use crate::api::{ApiError, ErrorCode, Hex, KeyInfo, KeyReceipts, NodeReceipt};
use crate::audit::AuditEntry;
use crate::store::NewGeneration;

/// The receipts of `info` at the generation every node of `roster` holds (`held`, each node's
/// view, by node index), if that is a later one a move made: the same request, facts, policy
/// and threshold, every node's receipt signed, and the record then checks against `rosters`
/// (every roster by version, `roster` the last). `Ok(None)` where the nodes hold the recorded
/// generation; why not, else.
pub(super) fn moved_receipts(
    info: &KeyInfo,
    held: &[HeldKey],
    roster: &ClusterRoster,
    rosters: &[Vec<RosterEntry>],
) -> Result<Option<KeyReceipts>, String> {
    let old = info
        .receipts
        .as_ref()
        .ok_or("no_receipts: a key without receipts is not followed")?;
    let nodes = u16::try_from(roster.roster.len()).unwrap_or(u16::MAX);
    let current = agreed(held, nodes)?;
    if current.generation == old.generation && old.roster == roster.version {
        return Ok(None);
    }
    // One move a commit: never more than the commits since the record's roster (attacker
    // review helper-78, L5).
    let commits = roster.version.saturating_sub(old.roster);
    let Some(moves) = current
        .generation
        .checked_sub(old.generation)
        .filter(|m| *m > 0 && *m <= commits)
    else {
        return Err(format!(
            "not_moved: every node holds generation {}; the record names {} under roster \
             version {}, {commits} commits before roster version {}",
            current.generation, old.generation, old.roster, roster.version
        ));
    };
    let signatures = held
        .iter()
        .map(|k| {
            k.signature.as_ref().map(|s| NodeReceipt {
                node: k.receipt.node,
                signature: Hex(s.to_vec()),
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or("unsigned: a node signs no receipt of the generation it holds")?;
    let receipts = KeyReceipts {
        generation: current.generation,
        participants: current.participants.clone(),
        signatures,
        roster: roster.version,
        moved: old.moved.saturating_add(moves),
        ..old.clone()
    };
    let next = KeyInfo {
        receipts: Some(receipts.clone()),
        ..info.clone()
    };
    // The generation the nodes hold is the record's key, moved: what the record claims the
    // nodes signed is what they signed.
    if next.receipt_claim().map(|(claim, _)| claim) != Some(current) {
        return Err(
            "other_facts: the nodes hold another request, threshold, policy or key than the \
             record states"
                .into(),
        );
    }
    next.check(&roster.cluster_id(), rosters)
        .map_err(|e| format!("check: {e}"))?;
    Ok(Some(receipts))
}

impl Coordinator {
    /// Records every stored key that committed roster changes moved at the generation every
    /// node of the roster in force holds ([`moved_receipts`]), with its audit record
    /// (`record_moved_key`); its
    /// presignatures (of the generation before) are dropped. Returns the keys recorded anew.
    /// A key some node does not hold at one generation yet (a node that has not committed) is
    /// left as it is: the commit run again, or the next resharing of it, records it.
    pub(crate) async fn record_moved_keys(&self) -> Result<Vec<String>, ApiError> {
        let all = self.rosters().await?;
        let roster = all
            .last()
            .ok_or_else(|| err(ErrorCode::Internal, "no roster, not even the genesis'"))?;
        if roster.version == 0 {
            return Ok(Vec::new());
        }
        let rows = self.db(|s| s.keys()).await?;
        if rows
            .iter()
            .all(|r| r.receipts.is_none() || r.pending.is_some())
        {
            return Ok(Vec::new());
        }
        let rosters: Vec<Vec<RosterEntry>> = all.iter().map(|r| r.roster.clone()).collect();
        // Every node's keys, whatever admin or image version each is at (one lagging on an
        // image change does not hold the records back; helper-78, M2).
        let views = self.inventories(roster, false).await?.views;
        let mut recorded = Vec::new();
        for row in rows {
            // A key with a resharing recorded is resolved by it first (a move refuses it).
            let (Some(expected), None) = (row.receipts.clone(), &row.pending) else {
                continue;
            };
            let info = super::super::keys::key_info(&row)?;
            let held = views
                .get(&row.key_id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let receipts = match moved_receipts(&info, held, roster, &rosters) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(why) => {
                    warn!(key = %row.key_id, why, "a key's record is not moved");
                    continue;
                }
            };
            let old = info.receipts.as_ref().map_or(0, |r| r.generation);
            let json = serde_json::to_string(&receipts)
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
            let entry = AuditEntry {
                action: "record_moved_key".into(),
                actors: vec![],
                key_id: Some(row.key_id.clone()),
                payload_digests: vec![],
                path: vec![],
                nodes: (0..u16::try_from(roster.roster.len()).unwrap_or(u16::MAX)).collect(),
                outcome: "ok".into(),
                request_id: None,
                credential: None,
                detail: Some(format!(
                    "generation {old} -> {}: held by every node of roster version {}",
                    receipts.generation, roster.version
                )),
            };
            let (id, threshold) = (row.key_id.clone(), row.threshold);
            let updated = self
                .db(move |s| {
                    let generation = NewGeneration {
                        threshold,
                        receipts: &json,
                        refresh_every: None,
                        policy: None,
                    };
                    s.update_key_generation(&id, &generation, &expected, unix_now(), &entry)
                })
                .await?;
            if updated {
                self.forget_key(&row.key_id);
                info!(
                    key = %row.key_id,
                    generation = receipts.generation,
                    roster = roster.version,
                    "key recorded at the generation a roster change moved it to"
                );
                recorded.push(row.key_id);
            }
        }
        Ok(recorded)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};
    use protocol::genesis::ClusterId;
    use protocol::policy::{Canonical, CreateKey, KeyPolicy, REQUEST_VERSION, Scheme};
    use protocol::receipt::{KEY_RECEIPT_VERSION, KeyReceipt};
    use serde_bytes::ByteBuf;
    use sha2::Digest;

    use super::*;
    use crate::api::{ClusterHex, CreateKeyJson, PolicyJson, Wire};

    const CLUSTER: ClusterId = ClusterId([7; 32]);

    fn node(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn entry(k: &SigningKey, i: usize) -> RosterEntry {
        RosterEntry {
            node_key: ByteBuf::from(k.verifying_key().to_bytes().to_vec()),
            kms_key_arn: protocol::KmsKeyArn::parse(&format!(
                "arn:aws:kms:eu-west-1:111122223333:key/node-{i}"
            ))
            .unwrap(),
            pcr3: None,
            pcr4: None,
        }
    }

    /// Roster 0 is nodes 1-3; roster 1 adds node 4.
    fn rosters() -> (Vec<Vec<RosterEntry>>, Vec<SigningKey>) {
        let keys: Vec<SigningKey> = (1..=4).map(node).collect();
        let all: Vec<RosterEntry> = keys.iter().enumerate().map(|(i, k)| entry(k, i)).collect();
        (vec![all[..3].to_vec(), all], keys)
    }

    fn policy() -> KeyPolicy {
        KeyPolicy {
            approvers: vec![ByteBuf::from(vec![5; 32])],
            approvals_needed: 1,
        }
    }

    fn creation() -> CreateKey {
        CreateKey {
            v: REQUEST_VERSION,
            cluster: CLUSTER,
            key_id: "k".into(),
            scheme: Scheme::EddsaEd25519,
            threshold: 2,
            policy: policy(),
            request_id: ByteBuf::from(vec![1; 16]),
            created: 100,
            expiry: 200,
            admins: 0,
            roster: 0,
        }
    }

    /// What a roster of `n` nodes signs of generation `generation` of the key, as node 0.
    fn receipt(generation: u32, n: u16) -> KeyReceipt {
        KeyReceipt {
            v: KEY_RECEIPT_VERSION,
            cluster: CLUSTER,
            node: 0,
            key_id: "k".into(),
            scheme: Scheme::EddsaEd25519,
            threshold: 2,
            participants: (0..n).collect(),
            public_key: ByteBuf::from(vec![9; 32]),
            chain_code: None,
            generation,
            request: ByteBuf::from(sha2::Sha256::digest(creation().canonical_bytes()).to_vec()),
            policy_version: 0,
            policy: None,
        }
    }

    fn sign(k: &SigningKey, node: u16, r: &KeyReceipt) -> Vec<u8> {
        let r = KeyReceipt { node, ..r.clone() };
        k.sign(&r.message()).to_bytes().to_vec()
    }

    /// The key as created under roster 0: generation 0, signed by nodes 1-3.
    fn created(keys: &[SigningKey]) -> KeyInfo {
        let r = receipt(0, 3);
        KeyInfo {
            key_id: "k".into(),
            scheme: Scheme::EddsaEd25519,
            threshold: 2,
            public_key: Hex(vec![9; 32]),
            chain_code: None,
            policy: PolicyJson::from_wire(&policy()),
            created: 100,
            receipts: Some(KeyReceipts {
                cluster: ClusterHex(CLUSTER),
                participants: vec![0, 1, 2],
                generation: 0,
                creation: CreateKeyJson::from_wire(&creation()),
                import: None,
                signatures: (0u16..)
                    .zip(&keys[..3])
                    .map(|(i, k)| NodeReceipt {
                        node: i,
                        signature: Hex(sign(k, i, &r)),
                    })
                    .collect(),
                reshared: None,
                roster: 0,
                moved: 0,
            }),
            refresh_every: 0,
            refreshed: 0,
            policy_version: 0,
        }
    }

    /// Each node's inventory entry of `r`, signed by `keys` in order.
    fn held(keys: &[SigningKey], r: &KeyReceipt) -> Vec<HeldKey> {
        (0u16..)
            .zip(keys)
            .map(|(i, k)| HeldKey {
                receipt: KeyReceipt {
                    node: i,
                    ..r.clone()
                },
                signature: Some(ByteBuf::from(sign(k, i, r))),
                policy: policy(),
                policy_void: false,
                refresh_every: 0,
                pending: None,
                public_shares: vec![],
            })
            .collect()
    }

    #[test]
    fn a_key_moved_to_a_new_roster_is_recorded_with_its_nodes_receipts_and_checks_as_a_client_checks_it()
     {
        let (all, keys) = rosters();
        let key = created(&keys);
        key.check(&CLUSTER, &all[..1]).unwrap();
        let v1 = ClusterRoster::at(CLUSTER, 1, all[1].clone());
        let moved = held(&keys, &receipt(1, 4));
        let r = moved_receipts(&key, &moved, &v1, &all).unwrap().unwrap();
        assert_eq!(
            (r.generation, r.moved, r.roster, r.participants.len()),
            (1, 1, 1, 4)
        );
        let next = KeyInfo {
            receipts: Some(r.clone()),
            ..key.clone()
        };
        next.check(&CLUSTER, &all).unwrap();
        // A client that holds the genesis' roster alone does not know roster 1.
        assert_eq!(
            next.check(&CLUSTER, &all[..1]),
            Err(crate::api::KeyCheckError::Roster(1))
        );
        // Recorded already: nothing to do.
        assert_eq!(moved_receipts(&next, &moved, &v1, &all), Ok(None));
        // A coordinator that names another move count, or another roster, is refused.
        let mut count = next.clone();
        count.receipts.as_mut().unwrap().moved = 0;
        assert!(count.check(&CLUSTER, &all).is_err());
        let mut other = next.clone();
        other.receipts.as_mut().unwrap().roster = 0;
        assert!(other.check(&CLUSTER, &all).is_err());
    }

    #[test]
    fn a_key_is_not_moved_on_what_the_nodes_do_not_all_sign_of_its_own_facts() {
        let (all, keys) = rosters();
        let key = created(&keys);
        let v1 = ClusterRoster::at(CLUSTER, 1, all[1].clone());
        let why = |held: &[HeldKey]| moved_receipts(&key, held, &v1, &all).unwrap_err();
        // A node that has not committed yet holds the generation before.
        let mut lagging = held(&keys, &receipt(1, 4));
        lagging[2] = held(&keys, &receipt(0, 4)).remove(2);
        assert!(why(&lagging).starts_with("disagree"), "{}", why(&lagging));
        // A node missing.
        assert!(why(&held(&keys[..3], &receipt(1, 4))).starts_with("not_everywhere"));
        // Another public key: not this key moved.
        let mut other = receipt(1, 4);
        other.public_key = ByteBuf::from(vec![8; 32]);
        assert!(why(&held(&keys, &other)).starts_with("other_facts"));
        // A receipt that node 3 did not sign (a relay's forgery).
        let mut forged = held(&keys, &receipt(1, 4));
        forged[3].signature = Some(ByteBuf::from(sign(&node(9), 3, &receipt(1, 4))));
        assert!(why(&forged).starts_with("check: "), "{}", why(&forged));
        let mut unsigned = held(&keys, &receipt(1, 4));
        unsigned[1].signature = None;
        assert!(why(&unsigned).starts_with("unsigned"));
        // An older generation than the record's is never recorded.
        let later = KeyInfo {
            receipts: Some(KeyReceipts {
                generation: 3,
                moved: 3,
                ..key.receipts.clone().unwrap()
            }),
            ..key.clone()
        };
        let e = moved_receipts(&later, &held(&keys, &receipt(1, 4)), &v1, &all).unwrap_err();
        assert!(e.starts_with("not_moved"), "{e}");
        // Two generations on, one commit since the record's roster: not a move.
        let e = moved_receipts(&key, &held(&keys, &receipt(2, 4)), &v1, &all).unwrap_err();
        assert!(e.starts_with("not_moved"), "{e}");
    }
}
