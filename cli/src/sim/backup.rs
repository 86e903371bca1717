//! The simulated cluster's stand-in for the deployment's blob sync (issue 23): on AWS,
//! `cohort-blob-sync` copies each node's blob directory to S3 and writes the manifest of what S3
//! confirmed (`terraform/modules/node/files/sync-blobs.sh.tftpl`); here each node's blobs are
//! copied to `DIR/backup/node-I/` and the manifest names the SHA-256 of each copy, in the same
//! form (`{"checked": UNIX_SECONDS, "blobs": {NAME: SHA256_HEX}}`, `DIR/node-I/backed-up.json`),
//! which the node's proxy reads (`--backup-manifest`). Run it with `cohort sim backup`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// The manifest of node `I` in a simulated cluster's directory.
pub fn manifest_path(node_dir: &Path) -> std::path::PathBuf {
    node_dir.join("backed-up.json")
}

/// Writes `bytes` to `path` through a temporary file, so a reader never sees half of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Copies every node's blobs of the simulated cluster in `dir` to `dir/backup/node-I/` and
/// writes each node's manifest from the copies. Returns the number of blobs copied.
pub fn backup(dir: &Path) -> anyhow::Result<usize> {
    let mut copied = 0;
    for node in 0.. {
        let node_dir = dir.join(format!("node-{node}"));
        if !node_dir.is_dir() {
            break;
        }
        let blobs = node_dir.join("blobs");
        let target = dir.join("backup").join(format!("node-{node}"));
        fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
        let mut confirmed = BTreeMap::new();
        let entries = match fs::read_dir(&blobs) {
            Ok(e) => e.collect::<Result<Vec<_>, _>>()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", blobs.display())),
        };
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".blob") {
                continue;
            }
            let bytes = fs::read(entry.path())?;
            write_atomically(&target.join(&name), &bytes)?;
            // The copy's digest, as the deployment takes S3's: what was stored, not what
            // was meant to be.
            let stored = fs::read(target.join(&name))?;
            confirmed.insert(name, hex::encode(Sha256::digest(&stored)));
            copied += 1;
        }
        let checked = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let manifest = serde_json::json!({ "checked": checked, "blobs": confirmed });
        write_atomically(&manifest_path(&node_dir), manifest.to_string().as_bytes())?;
    }
    Ok(copied)
}
