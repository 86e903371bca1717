//! Keys of the stand-in: one JSON file per key in the data directory, holding the key's
//! metadata, its policy and its 256-bit key material (hex). Files are written atomically and
//! readable by the owner only.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::policy::KeyPolicy;

/// The account id in the stand-in's ARNs.
pub const ACCOUNT: &str = "000000000000";

/// One key as stored.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// The key id (a UUID).
    pub key_id: String,
    /// `arn:aws:kms:REGION:ACCOUNT:key/ID`.
    pub arn: String,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    /// Free text.
    pub description: String,
    /// The key policy (JSON text, as given).
    pub policy: String,
    /// The key material, hex.
    pub material: String,
    /// The key's grants, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
}

/// A grant: `grantee` may perform `operations` on the key, whatever the key policy allows (an
/// explicit deny in the key policy still wins, as at KMS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The grant id.
    pub grant_id: String,
    /// The grantee principal's ARN.
    pub grantee: String,
    /// Operations without the `kms:` prefix (`Decrypt`, `GenerateDataKey`, ...).
    pub operations: Vec<String>,
    /// Who created it.
    pub created_by: Option<String>,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("key_id", &self.key_id)
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

impl KeyRecord {
    /// The key material.
    pub fn material(&self) -> Result<Zeroizing<[u8; 32]>, String> {
        let bytes = Zeroizing::new(hex::decode(&self.material).map_err(|e| e.to_string())?);
        let mut out = Zeroizing::new([0u8; 32]);
        if bytes.len() != 32 {
            return Err("key material is not 32 bytes".into());
        }
        out.copy_from_slice(&bytes);
        Ok(out)
    }
}

/// The data directory's keys.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
    region: String,
}

impl KeyStore {
    /// Keys in `dir/keys` (created if missing), with ARNs in `region`.
    pub fn open(dir: &Path, region: &str) -> std::io::Result<Self> {
        let dir = dir.join("keys");
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            region: region.to_string(),
        })
    }

    /// Resolves a key id or ARN to a stored key (`None`: no such key).
    pub fn get(&self, key: &str) -> Result<Option<KeyRecord>, String> {
        let id = key
            .strip_prefix(&format!("arn:aws:kms:{}:{ACCOUNT}:key/", self.region))
            .unwrap_or(key);
        if id.len() != 36 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Ok(None);
        }
        match std::fs::read(self.dir.join(format!("{id}.json"))) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("key {id} is unreadable: {e}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("key {id} is unreadable: {e}")),
        }
    }

    /// Creates a key with `policy` (already checked) and fresh material.
    pub fn create(&self, description: &str, policy: &str) -> Result<KeyRecord, String> {
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        raw[6] = (raw[6] & 0x0f) | 0x40;
        raw[8] = (raw[8] & 0x3f) | 0x80;
        let h = hex::encode(raw);
        let key_id = format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        );
        let mut material = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(material.as_mut_slice());
        let record = KeyRecord {
            arn: format!("arn:aws:kms:{}:{ACCOUNT}:key/{key_id}", self.region),
            key_id,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            description: description.to_string(),
            policy: policy.to_string(),
            material: hex::encode(material.as_slice()),
            grants: Vec::new(),
        };
        self.write(&record)?;
        Ok(record)
    }

    /// Replaces a key's policy (already checked).
    pub fn put_policy(&self, record: &KeyRecord, policy: &str) -> Result<(), String> {
        let mut next = record.clone();
        next.policy = policy.to_string();
        self.write(&next)
    }

    /// Adds a grant to a key.
    pub fn add_grant(&self, record: &KeyRecord, grant: Grant) -> Result<(), String> {
        let mut next = record.clone();
        next.grants.push(grant);
        self.write(&next)
    }

    fn write(&self, record: &KeyRecord) -> Result<(), String> {
        let path = self.dir.join(format!("{}.json", record.key_id));
        let tmp = self.dir.join(format!(".{}.tmp", record.key_id));
        let text = Zeroizing::new(serde_json::to_vec_pretty(record).map_err(|e| e.to_string())?);
        let result = (|| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        result.map_err(|e| format!("cannot store key {}: {e}", record.key_id))
    }
}

/// Checks a policy document before it is stored.
pub fn check_policy(policy: &str) -> Result<(), String> {
    KeyPolicy::parse(policy).map(|_| ())
}
