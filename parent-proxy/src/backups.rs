//! Which sealed blobs have reached the copy off the instance (issue 23): on AWS,
//! `cohort-blob-sync` copies the blob directory to S3, then asks S3 for each object's SHA-256
//! and writes what matched into a manifest (`--backup-manifest`, JSON
//! `{"checked": UNIX_SECONDS, "blobs": {"NAME": "SHA256_HEX", ...}}`). `GET /v1/backups`
//! answers, for every blob on this disk, its SHA-256 and whether the manifest has that exact
//! content: a blob replaced since (a refresh, a resharing) is not backed up until the next
//! sync confirms it. The coordinator gathers every node's answer (`cohort key check-backups`)
//! before a key is funded.
//!
//! The answer is the parent's word: a parent that lies only hides its own node's missing
//! copy, which the other nodes' blobs (a key survives while `threshold` nodes hold theirs)
//! and S3's own listing still show.

use std::collections::BTreeMap;
use std::path::Path;

pub use protocol::backups::{Backups, BlobBackup};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::blobs::BlobStore;

#[derive(Deserialize)]
struct Manifest {
    checked: Option<u64>,
    blobs: BTreeMap<String, String>,
}

/// The largest manifest read (a name and a digest per blob: far less).
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

fn read_manifest(path: Option<&Path>) -> Result<Option<Manifest>, String> {
    let Some(path) = path else {
        return Ok(None);
    };
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if len > MAX_MANIFEST {
        return Err(format!("{len} bytes, more than a manifest holds"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The blobs of `store` against the manifest at `manifest`.
pub fn backups(store: &BlobStore, manifest: Option<&Path>) -> std::io::Result<Backups> {
    let (manifest, state) = match read_manifest(manifest) {
        Ok(Some(m)) => (Some(m), "ok".to_string()),
        Ok(None) => (None, "absent".to_string()),
        Err(e) => (None, format!("unreadable: {e}")),
    };
    let blobs = store
        .all()?
        .into_iter()
        .map(|(name, bytes)| {
            let sha256 = hex::encode(Sha256::digest(&bytes));
            let backed_up = manifest
                .as_ref()
                .and_then(|m| m.blobs.get(&name))
                .is_some_and(|confirmed| confirmed.eq_ignore_ascii_case(&sha256));
            BlobBackup {
                name,
                sha256,
                backed_up,
            }
        })
        .collect();
    Ok(Backups {
        blobs,
        manifest: state,
        checked: manifest.and_then(|m| m.checked),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn a_blob_is_backed_up_only_with_the_content_the_manifest_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("blobs")).unwrap();
        let manifest = dir.path().join("backed-up.json");
        store.replace("node-key.blob", b"node key").unwrap();
        store.replace("genesis.blob", b"genesis").unwrap();
        store.replace("key-6b.blob", b"share v1").unwrap();

        let none = backups(&store, Some(&manifest)).unwrap();
        assert_eq!(none.manifest, "absent");
        assert!(none.blobs.iter().all(|b| !b.backed_up));
        assert_eq!(none.blobs.len(), 3);

        let written = serde_json::json!({
            "checked": 1_700_000_000u64,
            "blobs": { "node-key.blob": sha(b"node key"), "genesis.blob": sha(b"genesis"),
                       "key-6b.blob": sha(b"share v1").to_uppercase() }
        });
        std::fs::write(&manifest, written.to_string()).unwrap();
        let all = backups(&store, Some(&manifest)).unwrap();
        assert_eq!(all.manifest, "ok");
        assert_eq!(all.checked, Some(1_700_000_000));
        assert!(all.blobs.iter().all(|b| b.backed_up), "{all:?}");

        // A refresh replaced the share: not backed up until a sync confirms the new content.
        store.replace("key-6b.blob", b"share v2").unwrap();
        let after = backups(&store, Some(&manifest)).unwrap();
        let share = after
            .blobs
            .iter()
            .find(|b| b.name == "key-6b.blob")
            .unwrap();
        assert_eq!(share.sha256, sha(b"share v2"));
        assert!(!share.backed_up);

        std::fs::write(&manifest, "{not json").unwrap();
        let bad = backups(&store, Some(&manifest)).unwrap();
        assert!(bad.manifest.starts_with("unreadable: "), "{}", bad.manifest);
        assert!(bad.blobs.iter().all(|b| !b.backed_up));

        assert_eq!(backups(&store, None).unwrap().manifest, "absent");
    }
}
