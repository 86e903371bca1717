//! Whether a key's sealed shares have reached every node's copy off its instance (issue 23,
//! `cohort key check-backups`): asked of each node's parent proxy (`GET /v1/backups`), which
//! compares every blob on its disk with the manifest the deployment's blob sync writes once S3
//! holds that exact content. A key is backed up at a node when the blobs its share needs after
//! the loss of the instance are: the node key, the genesis, auxiliary info (ECDSA) and the
//! key's current share, and its pending generation's where the node holds one (a resharing
//! under way). Only then should a key be funded.

use std::collections::BTreeMap;
use std::time::Duration;

use protocol::backups::{Backups, key_blob_name, pending_blob_name};
use protocol::policy::Scheme;

use super::Coordinator;
use crate::api::{ApiError, KeyBackups, NodeBackup};

/// How long one proxy may take to answer.
const BACKUPS_TIMEOUT: Duration = Duration::from_secs(10);

/// The blobs a node needs, besides the key's own share, to open it again on a new instance.
const NODE_BLOBS: [&str; 2] = ["node-key.blob", "genesis.blob"];
/// ECDSA shares sign with the node's auxiliary information.
const AUX_BLOB: &str = "aux.blob";

/// The blobs `key_id`'s share needs at a node, for `scheme`.
pub fn needed_blobs(key_id: &str, scheme: Scheme) -> Vec<String> {
    let mut names: Vec<String> = NODE_BLOBS.iter().map(|n| n.to_string()).collect();
    if scheme == Scheme::EcdsaSecp256k1 {
        names.push(AUX_BLOB.to_string());
    }
    names.push(key_blob_name(key_id));
    names
}

/// One node's answer for the blobs in `needed`, and for `pending` (a resharing's next
/// generation) where the node holds it.
pub fn node_backup(
    node: u16,
    needed: &[String],
    pending: &str,
    answer: Result<Backups, String>,
) -> NodeBackup {
    match answer {
        Ok(b) => {
            let mut here = needed.to_vec();
            if b.blobs.iter().any(|blob| blob.name == pending) {
                here.push(pending.to_string());
            }
            let missing: Vec<String> = here
                .iter()
                .filter(|n| {
                    !b.blobs
                        .iter()
                        .any(|blob| &blob.name == *n && blob.backed_up)
                })
                .cloned()
                .collect();
            NodeBackup {
                node,
                backed_up: missing.is_empty(),
                missing,
                manifest: b.manifest,
                checked: b.checked,
                error: None,
            }
        }
        Err(e) => NodeBackup {
            node,
            backed_up: false,
            missing: needed.to_vec(),
            manifest: String::new(),
            checked: None,
            error: Some(e),
        },
    }
}

impl Coordinator {
    /// `GET /v1/keys/{key_id}/backups`: every node's backup of what `key_id`'s share needs.
    pub async fn key_backups(&self, key_id: &str) -> Result<KeyBackups, ApiError> {
        let key = self.key(key_id).await?;
        let needed = needed_blobs(key_id, key.scheme);
        let pending = pending_blob_name(key_id);
        // Every proxy at once: a node that is down holds up no other (it costs its timeout
        // once, not once per node before it).
        let count = self.nodes().count();
        let mut tasks = tokio::task::JoinSet::new();
        for node in 0..count {
            let all = self.nodes.clone();
            tasks.spawn(async move {
                let answer = all.backups(node, BACKUPS_TIMEOUT).await.map_err(|e| e.0);
                (node, answer)
            });
        }
        let mut answers = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((node, answer)) = joined {
                answers.insert(node, answer);
            }
        }
        let nodes: Vec<NodeBackup> = (0..count)
            .map(|node| {
                let answer = answers
                    .remove(&node)
                    .unwrap_or_else(|| Err(format!("node {node}: the check did not finish")));
                node_backup(node, &needed, &pending, answer)
            })
            .collect();
        Ok(KeyBackups {
            key_id: key_id.to_string(),
            backed_up: nodes.iter().all(|n| n.backed_up),
            needed,
            nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use protocol::backups::BlobBackup;

    use super::*;

    fn blob(name: &str, backed_up: bool) -> BlobBackup {
        BlobBackup {
            name: name.into(),
            sha256: "00".into(),
            backed_up,
        }
    }

    #[test]
    fn a_node_is_backed_up_only_with_every_blob_the_share_needs() {
        let needed = needed_blobs("eth", Scheme::EcdsaSecp256k1);
        assert_eq!(
            needed,
            [
                "node-key.blob",
                "genesis.blob",
                "aux.blob",
                "key-657468.blob"
            ]
        );
        assert_eq!(needed_blobs("sol", Scheme::EddsaEd25519).len(), 3);
        let answer = |blobs| {
            Ok(Backups {
                blobs,
                manifest: "ok".into(),
                checked: Some(5),
            })
        };
        let pending = pending_blob_name("eth");
        let all = node_backup(
            1,
            &needed,
            &pending,
            answer(vec![
                blob("node-key.blob", true),
                blob("genesis.blob", true),
                blob("aux.blob", true),
                blob("key-657468.blob", true),
                blob("key-00.blob", false),
            ]),
        );
        assert!(all.backed_up && all.missing.is_empty());
        let stale = node_backup(
            1,
            &needed,
            &pending,
            answer(vec![
                blob("node-key.blob", true),
                blob("genesis.blob", true),
                blob("key-657468.blob", false),
            ]),
        );
        assert!(!stale.backed_up);
        assert_eq!(stale.missing, ["aux.blob", "key-657468.blob"]);
        // A resharing under way: its pending share is needed too, where the node holds it.
        let resharing = node_backup(
            1,
            &needed,
            &pending,
            answer(vec![
                blob("node-key.blob", true),
                blob("genesis.blob", true),
                blob("aux.blob", true),
                blob("key-657468.blob", true),
                blob("key-657468.pending.blob", false),
            ]),
        );
        assert_eq!(resharing.missing, ["key-657468.pending.blob"]);
        let down = node_backup(2, &needed, &pending, Err("node 2: unreachable".into()));
        assert!(!down.backed_up);
        assert_eq!(down.missing, needed);
        assert_eq!(down.error.as_deref(), Some("node 2: unreachable"));
    }
}
