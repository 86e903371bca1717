//! Genesis version 2 (ADR 0013): the admin-approved roster that pins the cluster's membership.
//!
//! A genesis names the admins and their quorum, the one enclave image (PCR0-2) every member
//! runs, and the roster: for each node index, the node key its enclave made at enrollment, the
//! KMS key (full ARN) that node key is sealed under, and optionally the parent's PCR3 (IAM role)
//! and PCR4 (instance). Admins sign its canonical bytes (`"cohort/genesis/v2\0" || CBOR`, fields
//! in declaration order, definite lengths, `None` as CBOR `null`); the cluster id is the
//! SHA-256 of those bytes under its own tag, so every approval that names the id names this
//! roster. An enclave finds its own index by its node key; the index is never an input.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::KmsKeyArn;
use crate::policy::Canonical;

/// Version of [`Genesis`].
pub const GENESIS_VERSION: u8 = 2;
/// Longest cluster name, bytes (a label for people, not an identifier).
pub const MAX_NAME_LEN: usize = 128;
/// Most admins.
pub const MAX_ADMINS: usize = 32;
/// Fewest nodes in a roster.
pub const MIN_NODES: usize = 2;
/// Most nodes in a roster.
pub const MAX_NODES: usize = 64;
/// Length of a PCR value (SHA-384).
pub const PCR_LEN: usize = 48;
/// Domain tag of a genesis receipt, which a node key signs.
pub const GENESIS_RECEIPT_DOMAIN: &[u8] = b"cohort/genesis-receipt/v2\0";
const CLUSTER_ID_DOMAIN: &[u8] = b"cohort/cluster-id/v1\0";
const ROSTER_DOMAIN: &[u8] = b"cohort/roster/v1\0";

/// The enclave image every member runs: PCR0, PCR1 and PCR2 (48 bytes each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// PCR0 (the whole image).
    pub pcr0: ByteBuf,
    /// PCR1 (kernel and boot ramfs).
    pub pcr1: ByteBuf,
    /// PCR2 (application).
    pub pcr2: ByteBuf,
}

/// One node of the roster; its index is its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterEntry {
    /// The node's Ed25519 node key (32 bytes), made by its enclave at enrollment.
    pub node_key: ByteBuf,
    /// The KMS key the node key is sealed under (one per node).
    pub kms_key_arn: KmsKeyArn,
    /// The parent's expected PCR3 (its IAM role), if pinned.
    pub pcr3: Option<ByteBuf>,
    /// The parent's expected PCR4 (its instance), if pinned.
    pub pcr4: Option<ByteBuf>,
}

impl RosterEntry {
    /// Whether `signature` is this node's node-key signature (Ed25519, strict) over `message`.
    pub fn signed(&self, message: &[u8], signature: &[u8]) -> bool {
        <[u8; 32]>::try_from(self.node_key.as_slice())
            .ok()
            .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
            .zip(ed25519_dalek::Signature::from_slice(signature).ok())
            .is_some_and(|(vk, sig)| vk.verify_strict(message, &sig).is_ok())
    }
}

/// Initialise the cluster: admins, quorum, image and roster (version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// [`GENESIS_VERSION`].
    pub v: u8,
    /// A name for people (1 to [`MAX_NAME_LEN`] bytes); approvals name the cluster id instead.
    pub name: String,
    /// Ed25519 public keys (32 bytes) of the admins, distinct, 1 to [`MAX_ADMINS`].
    pub admins: Vec<ByteBuf>,
    /// How many distinct admins must approve (1 to the number of admins).
    pub admin_quorum: u16,
    /// The image every member runs.
    pub image: Image,
    /// The nodes, by index ([`MIN_NODES`] to [`MAX_NODES`]); node keys and KMS keys distinct.
    pub roster: Vec<RosterEntry>,
}

impl Canonical for Genesis {
    const DOMAIN: &'static [u8] = b"cohort/genesis/v2\0";
}

/// The cluster id: SHA-256 of `"cohort/cluster-id/v1\0" || canonical bytes of the genesis`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId(pub [u8; 32]);

impl ClusterId {
    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, String> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("a cluster id is 64 hex digits, not `{s}`"));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map_err(|e| format!("cluster id: {e}"))?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterId({self})")
    }
}

impl Serialize for ClusterId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for ClusterId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = ByteBuf::deserialize(d)?;
        let id: [u8; 32] = b
            .as_slice()
            .try_into()
            .map_err(|_| serde::de::Error::custom("a cluster id is 32 bytes"))?;
        Ok(Self(id))
    }
}

/// What makes a genesis malformed (checked before any approval): each rule its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// A version other than [`GENESIS_VERSION`].
    #[error("genesis version {0} is not supported (version 2 carries the roster)")]
    Version(u8),
    /// An empty name or one longer than [`MAX_NAME_LEN`].
    #[error("the cluster name is 1 to {MAX_NAME_LEN} bytes, not {0}")]
    Name(usize),
    /// No admins, or more than [`MAX_ADMINS`].
    #[error("a genesis has 1 to {MAX_ADMINS} admins, not {0}")]
    AdminCount(usize),
    /// An admin key that is not 32 bytes.
    #[error("admin {0} is not a 32-byte key")]
    AdminKey(usize),
    /// The same admin twice.
    #[error("admins {first} and {second} are the same key")]
    DuplicateAdmin {
        /// First position.
        first: usize,
        /// Second position.
        second: usize,
    },
    /// A quorum of zero or more than the admins.
    #[error("the admin quorum is 1 to {admins}, not {quorum}")]
    AdminQuorum {
        /// The quorum.
        quorum: u16,
        /// The number of admins.
        admins: usize,
    },
    /// An image PCR that is not 48 bytes.
    #[error("image PCR{0} is not 48 bytes")]
    ImagePcr(u8),
    /// An image whose PCR0, PCR1 and PCR2 are all zero: what every enclave in debug mode
    /// reports, whose memory its parent can read. No cluster is founded on it.
    #[error("the image's PCR0-2 are all zero: a debug-mode enclave's, never a cluster's")]
    DebugImage,
    /// Fewer than [`MIN_NODES`] or more than [`MAX_NODES`] nodes.
    #[error("a roster has {MIN_NODES} to {MAX_NODES} nodes, not {0}")]
    RosterSize(usize),
    /// A node key that is not 32 bytes.
    #[error("the node key of node {0} is not 32 bytes")]
    NodeKey(usize),
    /// A PCR3 or PCR4 expectation that is not 48 bytes.
    #[error("PCR{pcr} of node {node} is not 48 bytes")]
    NodePcr {
        /// The node index.
        node: usize,
        /// 3 or 4.
        pcr: u8,
    },
    /// One node key at two indices.
    #[error("nodes {first} and {second} have the same node key")]
    DuplicateNodeKey {
        /// First index.
        first: u16,
        /// Second index.
        second: u16,
    },
    /// One KMS key for two nodes (a node's KMS key is its own).
    #[error("nodes {first} and {second} have the same KMS key")]
    DuplicateKmsKey {
        /// First index.
        first: u16,
        /// Second index.
        second: u16,
    },
}

fn first_duplicate<T: PartialEq>(items: &[T]) -> Option<(usize, usize)> {
    items
        .iter()
        .enumerate()
        .find_map(|(j, b)| items[..j].iter().position(|a| a == b).map(|i| (i, j)))
}

fn index(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

/// The rules an admin set follows, at genesis and at every change of it (issue 20): 1 to
/// [`MAX_ADMINS`] distinct 32-byte Ed25519 keys, and a quorum of 1 to that many.
pub fn check_admin_set(admins: &[ByteBuf], quorum: u16) -> Result<(), GenesisError> {
    if admins.is_empty() || admins.len() > MAX_ADMINS {
        return Err(GenesisError::AdminCount(admins.len()));
    }
    if let Some(i) = admins.iter().position(|a| a.len() != 32) {
        return Err(GenesisError::AdminKey(i));
    }
    if let Some((first, second)) = first_duplicate(admins) {
        return Err(GenesisError::DuplicateAdmin { first, second });
    }
    if quorum == 0 || usize::from(quorum) > admins.len() {
        return Err(GenesisError::AdminQuorum {
            quorum,
            admins: admins.len(),
        });
    }
    Ok(())
}

/// The rules a roster follows, at genesis and in every roster change (issue 20): [`MIN_NODES`]
/// to [`MAX_NODES`] entries, each node key 32 bytes, each pinned PCR 48 bytes, node keys and
/// KMS keys distinct.
pub fn check_roster(roster: &[RosterEntry]) -> Result<(), GenesisError> {
    if roster.len() < MIN_NODES || roster.len() > MAX_NODES {
        return Err(GenesisError::RosterSize(roster.len()));
    }
    for (node, e) in roster.iter().enumerate() {
        if e.node_key.len() != 32 {
            return Err(GenesisError::NodeKey(node));
        }
        for (pcr, value) in [(3u8, &e.pcr3), (4, &e.pcr4)] {
            if value.as_ref().is_some_and(|v| v.len() != PCR_LEN) {
                return Err(GenesisError::NodePcr { node, pcr });
            }
        }
    }
    let keys: Vec<&ByteBuf> = roster.iter().map(|e| &e.node_key).collect();
    if let Some((first, second)) = first_duplicate(&keys) {
        return Err(GenesisError::DuplicateNodeKey {
            first: index(first),
            second: index(second),
        });
    }
    let arns: Vec<&KmsKeyArn> = roster.iter().map(|e| &e.kms_key_arn).collect();
    if let Some((first, second)) = first_duplicate(&arns) {
        return Err(GenesisError::DuplicateKmsKey {
            first: index(first),
            second: index(second),
        });
    }
    Ok(())
}

/// The digest of `roster` as roster `version` of cluster `cluster`, in every session's
/// execution id: SHA-256 of `"cohort/roster/v1\0" || cluster id || u32 version ||
/// CBOR(roster)`.
pub fn roster_digest(cluster: &ClusterId, version: u32, roster: &[RosterEntry]) -> [u8; 32] {
    let mut bytes = Vec::new();
    ciborium::into_writer(roster, &mut bytes).expect("serializing a roster into a Vec cannot fail");
    let mut h = Sha256::new();
    h.update(ROSTER_DOMAIN);
    h.update(cluster.0);
    h.update(version.to_be_bytes());
    h.update(bytes);
    h.finalize().into()
}

impl Genesis {
    /// Checks every structural rule (sizes, ranges, distinct admins, node keys and KMS keys).
    /// Approvals are checked separately, against [`Genesis::admins`].
    pub fn check(&self) -> Result<(), GenesisError> {
        if self.v != GENESIS_VERSION {
            return Err(GenesisError::Version(self.v));
        }
        if self.name.is_empty() || self.name.len() > MAX_NAME_LEN {
            return Err(GenesisError::Name(self.name.len()));
        }
        check_admin_set(&self.admins, self.admin_quorum)?;
        let image = [&self.image.pcr0, &self.image.pcr1, &self.image.pcr2];
        if let Some(i) = image.iter().position(|p| p.len() != PCR_LEN) {
            return Err(GenesisError::ImagePcr(i as u8));
        }
        if image.iter().all(|p| p.iter().all(|b| *b == 0)) {
            return Err(GenesisError::DebugImage);
        }
        check_roster(&self.roster)?;
        Ok(())
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> ClusterId {
        let mut h = Sha256::new();
        h.update(CLUSTER_ID_DOMAIN);
        h.update(self.canonical_bytes());
        ClusterId(h.finalize().into())
    }

    /// The genesis roster's digest as roster `version` ([`roster_digest`]; the genesis roster is
    /// version 0).
    pub fn roster_digest(&self, version: u32) -> [u8; 32] {
        roster_digest(&self.cluster_id(), version, &self.roster)
    }

    /// The index whose roster entry lists `node_key`.
    pub fn index_of(&self, node_key: &[u8; 32]) -> Option<u16> {
        index_in(&self.roster, node_key)
    }
}

/// The index of the entry of `roster` that lists `node_key` (a node's index is its position:
/// never an input).
pub fn index_in(roster: &[RosterEntry], node_key: &[u8]) -> Option<u16> {
    roster
        .iter()
        .position(|e| e.node_key.as_slice() == node_key)
        .and_then(|i| u16::try_from(i).ok())
}

/// The message a node key signs when its enclave accepts a genesis at `index`:
/// `"cohort/genesis-receipt/v2\0" || cluster id || u16 index`.
pub fn genesis_receipt_message(cluster: &ClusterId, index: u16) -> Vec<u8> {
    let mut m = GENESIS_RECEIPT_DOMAIN.to_vec();
    m.extend_from_slice(&cluster.0);
    m.extend_from_slice(&index.to_be_bytes());
    m
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn arn(i: u8) -> KmsKeyArn {
        KmsKeyArn::parse(&format!("arn:aws:kms:eu-west-1:111122223333:key/node-{i}")).unwrap()
    }

    fn b(byte: u8, n: usize) -> ByteBuf {
        ByteBuf::from(vec![byte; n])
    }

    pub(crate) fn sample() -> Genesis {
        Genesis {
            v: GENESIS_VERSION,
            name: "treasury".into(),
            admins: vec![b(0xA1, 32), b(0xA2, 32), b(0xA3, 32)],
            admin_quorum: 2,
            image: Image {
                pcr0: b(0x10, 48),
                pcr1: b(0x11, 48),
                pcr2: b(0x12, 48),
            },
            roster: (0..3)
                .map(|i| RosterEntry {
                    node_key: b(0xB0 + i, 32),
                    kms_key_arn: arn(i),
                    pcr3: (i == 0).then(|| b(0x33, 48)),
                    pcr4: None,
                })
                .collect(),
        }
    }

    /// Byte snapshots: the canonical form, the cluster id, the roster digest and the receipt
    /// message are stable formats. The expected values were computed independently with
    /// Python's `cbor2` (a map per struct, keys in declaration order, `None` as null) and
    /// `hashlib`, not by this code.
    #[test]
    fn snapshots() {
        let g = sample();
        g.check().unwrap();
        let canonical = g.canonical_bytes();
        assert!(canonical.starts_with(b"cohort/genesis/v2\0"));
        assert_eq!(
            hex(&Sha256::digest(&canonical)),
            "e70e8e72c1fe8d280d540f89c0b585f210fcb6e2327e2813e2c09807de994b88"
        );
        assert_eq!(
            g.cluster_id().to_string(),
            "b3175c343f077486c2bccdd30b56850ed301edcf1fd9a01076ebf7bca3e12c35"
        );
        assert_eq!(
            hex(&g.roster_digest(0)),
            "96d73d224dd287e3e51607eebbafd7e7e0c2bf23f67034a2d970d60f5bda5871"
        );
        assert_ne!(g.roster_digest(0), g.roster_digest(1));
        assert_eq!(
            hex(&genesis_receipt_message(&g.cluster_id(), 2)),
            format!("{}{}0002", hex(GENESIS_RECEIPT_DOMAIN), g.cluster_id())
        );
        // Round trip through CBOR, and an absent optional field reads as None.
        let mut bytes = Vec::new();
        ciborium::into_writer(&g, &mut bytes).unwrap();
        let back: Genesis = ciborium::from_reader(bytes.as_slice()).unwrap();
        assert_eq!(back, g);
        assert_eq!(
            ClusterId::from_hex(&g.cluster_id().to_string()),
            Ok(g.cluster_id())
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn every_field_changes_the_cluster_id() {
        let base = sample().cluster_id();
        let edits: [fn(&mut Genesis); 8] = [
            |g| g.name.push('x'),
            |g| g.admins.swap(0, 1),
            |g| g.admin_quorum = 3,
            |g| g.image.pcr2[0] ^= 1,
            |g| g.roster.swap(1, 2),
            |g| g.roster[1].kms_key_arn = arn(9),
            |g| g.roster[2].pcr4 = Some(b(0x44, 48)),
            |g| g.roster[0].pcr3 = None,
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut g = sample();
            edit(&mut g);
            assert_ne!(g.cluster_id(), base, "edit {i}");
        }
    }

    #[test]
    fn a_node_finds_its_index_by_its_node_key() {
        let g = sample();
        assert_eq!(g.index_of(&[0xB2; 32]), Some(2));
        assert_eq!(g.index_of(&[0xB9; 32]), None);
    }

    #[test]
    fn every_malformed_genesis_is_named() {
        type Edit = fn(&mut Genesis);
        let cases: [(Edit, GenesisError); 15] = [
            (|g| g.v = 1, GenesisError::Version(1)),
            (|g| g.name.clear(), GenesisError::Name(0)),
            (|g| g.name = "n".repeat(129), GenesisError::Name(129)),
            (|g| g.admins.clear(), GenesisError::AdminCount(0)),
            (|g| g.admins[1] = b(1, 31), GenesisError::AdminKey(1)),
            (
                |g| g.admins[2] = g.admins[0].clone(),
                GenesisError::DuplicateAdmin {
                    first: 0,
                    second: 2,
                },
            ),
            (
                |g| g.admin_quorum = 0,
                GenesisError::AdminQuorum {
                    quorum: 0,
                    admins: 3,
                },
            ),
            (
                |g| g.admin_quorum = 4,
                GenesisError::AdminQuorum {
                    quorum: 4,
                    admins: 3,
                },
            ),
            (|g| g.image.pcr1 = b(0, 32), GenesisError::ImagePcr(1)),
            (
                |g| {
                    g.image.pcr0 = b(0, 48);
                    g.image.pcr1 = b(0, 48);
                    g.image.pcr2 = b(0, 48);
                },
                GenesisError::DebugImage,
            ),
            (|g| g.roster.truncate(1), GenesisError::RosterSize(1)),
            (
                |g| g.roster[2].node_key = b(0, 33),
                GenesisError::NodeKey(2),
            ),
            (
                |g| g.roster[1].pcr4 = Some(b(0, 32)),
                GenesisError::NodePcr { node: 1, pcr: 4 },
            ),
            (
                |g| g.roster[2].node_key = g.roster[0].node_key.clone(),
                GenesisError::DuplicateNodeKey {
                    first: 0,
                    second: 2,
                },
            ),
            (
                |g| g.roster[1].kms_key_arn = g.roster[0].kms_key_arn.clone(),
                GenesisError::DuplicateKmsKey {
                    first: 0,
                    second: 1,
                },
            ),
        ];
        for (edit, expected) in cases {
            let mut g = sample();
            edit(&mut g);
            assert_eq!(g.check(), Err(expected));
        }
        let mut big = sample();
        let entry = big.roster[0].clone();
        big.roster = (0..65u8)
            .map(|i| RosterEntry {
                node_key: b(i, 32),
                kms_key_arn: arn(i),
                ..entry.clone()
            })
            .collect();
        assert_eq!(big.check(), Err(GenesisError::RosterSize(65)));
    }
}
