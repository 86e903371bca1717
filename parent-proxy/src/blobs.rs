//! Sealed-blob storage on the parent: the enclave's genesis state, auxiliary info and key
//! shares, sealed by the enclave (the proxy cannot open them), kept on disk and handed back to
//! the enclave after it restarts.

use std::io;
use std::path::{Path, PathBuf};

use protocol::EnclaveResponse;
use protocol::session::Outcome;
use serde_bytes::ByteBuf;
use tracing::{info, warn};

/// A directory of sealed blobs.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    /// A store in `dir` (created if missing).
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn put(&self, name: &str, blob: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(blob)?;
            f.sync_all()?;
        }
        std::fs::rename(tmp, self.dir.join(name))?;
        info!(name, bytes = blob.len(), "sealed blob stored");
        Ok(())
    }

    /// Stores the sealed blobs an enclave response carries, if any.
    pub fn keep(&self, response: &EnclaveResponse) -> io::Result<()> {
        match response {
            EnclaveResponse::GenesisAccepted { sealed, .. } => self.put("genesis.blob", sealed),
            EnclaveResponse::Session(update) => match &update.outcome {
                Some(Outcome::AuxReady { sealed }) => self.put("aux.blob", sealed),
                Some(Outcome::KeyCreated { key_id, sealed, .. }) => {
                    self.put(&format!("key-{}.blob", hex::encode(key_id)), sealed)
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Replaces the stored blob `name` (as [`BlobStore::all`] names it), atomically.
    pub fn replace(&self, name: &str, blob: &[u8]) -> io::Result<()> {
        if name.contains('/') || !name.ends_with(".blob") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a blob name",
            ));
        }
        self.put(name, blob)
    }

    /// Every stored blob with its name, genesis first; empty when there is no genesis.
    pub fn all(&self) -> io::Result<Vec<(String, ByteBuf)>> {
        let genesis = self.dir.join("genesis.blob");
        if !genesis.exists() {
            return Ok(Vec::new());
        }
        let mut out = vec![(
            "genesis.blob".to_string(),
            ByteBuf::from(std::fs::read(genesis)?),
        )];
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == "blob")
                    && p.file_name().is_some_and(|n| n != "genesis.blob")
            })
            .collect();
        names.sort();
        for p in names {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match std::fs::read(&p) {
                Ok(b) => out.push((name, ByteBuf::from(b))),
                Err(e) => warn!(path = %p.display(), error = %e, "unreadable blob skipped"),
            }
        }
        Ok(out)
    }
}
