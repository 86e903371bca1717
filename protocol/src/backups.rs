//! What a parent proxy answers to `GET /v1/backups` (issue 23): every sealed blob on its disk,
//! and whether the deployment's blob sync confirmed that exact content copied off the instance.
//! Written by the proxy (`parent_proxy::backups`), read by the coordinator (`cohort key
//! check-backups`). A parent's word, not the enclave's: nothing here is signed.

use serde::{Deserialize, Serialize};

/// One blob on a parent's disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobBackup {
    /// The file's name (`node-key.blob`, `genesis.blob`, `aux.blob`, `key-HEX.blob`, ...).
    pub name: String,
    /// SHA-256 of its content, hex.
    pub sha256: String,
    /// Whether the backup manifest names this exact content.
    pub backed_up: bool,
}

/// A parent's blobs and its backup manifest's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backups {
    /// Every blob on the parent's disk, by name.
    pub blobs: Vec<BlobBackup>,
    /// `ok`, `absent` (no sync confirmed anything yet, or the proxy has no manifest), or
    /// `unreadable: REASON`.
    pub manifest: String,
    /// When the last sync checked (Unix seconds), from the manifest.
    pub checked: Option<u64>,
}

/// The file of a key's current sealed share on a parent's disk (as the proxy names it).
pub fn key_blob_name(key_id: &str) -> String {
    format!("key-{}.blob", hex_lower(key_id.as_bytes()))
}

/// The file of a key's pending generation (a resharing not retired into yet).
pub fn pending_blob_name(key_id: &str) -> String {
    format!("key-{}.pending.blob", hex_lower(key_id.as_bytes()))
}

/// The file of a key's incoming generation for roster version `version` (issue 20: its share
/// dealt to a roster change). Named by version, so a later change's move never writes over
/// the generation an earlier commit made current (the enclave reads which is current from the
/// records, not the names).
pub fn incoming_blob_name(key_id: &str, version: u32) -> String {
    format!(
        "key-{}.incoming-{version}.blob",
        hex_lower(key_id.as_bytes())
    )
}

/// The file of the auxiliary information made for the party set of roster version `version`
/// (issue 20: an ECDSA party set's, made before its keys move to it). Named by version as an
/// incoming generation is, and removed with them when a later commit makes it stale.
pub fn incoming_aux_blob_name(version: u32) -> String {
    format!("aux.incoming-{version}.blob")
}

/// The roster version an incoming generation's file ([`incoming_blob_name`]) or an incoming
/// auxiliary information's file ([`incoming_aux_blob_name`]) is named by, if `name` is one.
pub fn incoming_blob_version(name: &str) -> Option<u32> {
    if let Some(version) = name
        .strip_prefix("aux.incoming-")
        .and_then(|v| v.strip_suffix(".blob"))
    {
        return version.parse().ok();
    }
    let rest = name.strip_prefix("key-")?.strip_suffix(".blob")?;
    let (hex, version) = rest.split_once(".incoming-")?;
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    version.parse().ok()
}

/// The sequence number a sealed genesis blob carries in its header (the enclave's `seq`,
/// authenticated data of the blob: rewriting it makes the blob open nowhere), read without
/// opening it; none for a blob without one or bytes that are no blob. Each genesis blob an
/// enclave seals is numbered above the one before, also across restarts, so a parent stores a
/// genesis blob only over one with a lower number: of two answers that race, the newer state
/// stays (attacker review helper-67, finding 2).
pub fn sealed_sequence(blob: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Header {
        #[serde(default)]
        seq: Option<u64>,
    }
    let mut rest = blob;
    let header: Header = ciborium::from_reader(&mut rest).ok()?;
    header.seq
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn blob_names_are_the_key_id_in_lower_case_hex() {
        assert_eq!(
            super::key_blob_name("eth-Main"),
            format!("key-{}.blob", hex::encode("eth-Main"))
        );
        assert_eq!(super::pending_blob_name("\u{e9}"), "key-c3a9.pending.blob");
        assert_eq!(super::incoming_blob_name("a", 2), "key-61.incoming-2.blob");
        assert_eq!(
            super::incoming_blob_version("key-61.incoming-2.blob"),
            Some(2)
        );
        assert_eq!(super::incoming_aux_blob_name(3), "aux.incoming-3.blob");
        assert_eq!(super::incoming_blob_version("aux.incoming-3.blob"), Some(3));
        for other in [
            "key-61.blob",
            "key-61.pending.blob",
            "key-.incoming-2.blob",
            "key-6z.incoming-2.blob",
            "key-61.incoming-x.blob",
            "aux.incoming-.blob",
            "aux.blob",
            "genesis.blob",
        ] {
            assert_eq!(super::incoming_blob_version(other), None, "{other}");
        }
    }
}
