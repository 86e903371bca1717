//! `POST /v1/cluster/roster/move` (issue 20, step 3 of `docs/lifecycle.md`): one step of
//! moving the cluster's keys to the pending roster change, the new party set's auxiliary
//! information or one key, and what every party answered.

use serde::{Deserialize, Serialize};

use super::hex::Hex;

/// The parent proxy of a node the pending change adds: it is not one of the coordinator's
/// nodes until the change is committed, so the client names where it is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoiningProxy {
    /// Its node key (32 bytes), as the change lists it.
    pub node_key: Hex,
    /// Its parent proxy's base URL (`http://` or `https://`).
    pub proxy: String,
}

/// What one call moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MoveStep {
    /// The new party set's CGGMP21 auxiliary information (before any ECDSA key moves; minutes
    /// of CPU at every node of the new roster).
    Aux,
    /// One key's shares, dealt from its current generation.
    Key {
        /// The key.
        key_id: String,
    },
}

/// The body of `POST /v1/cluster/roster/move`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRosterBody {
    /// SHA-256 of the pending change (32 bytes).
    pub change: Hex,
    /// The parent proxy of every node the change adds.
    #[serde(default)]
    pub joining: Vec<JoiningProxy>,
    /// What to move.
    pub step: MoveStep,
}

/// One node of the new roster that sealed what a step moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyMoved {
    /// Its index in the new roster.
    pub index: u16,
    /// Its node key (32 bytes), as the new roster lists it.
    pub node_key: Hex,
    /// For a key: the digest every party confirmed; for the auxiliary information: the digest
    /// of every party's public parameters. Equal at every node (checked here).
    pub digest: Hex,
    /// For a key: its node key's signature over `protocol::roster::transfer::key_moved_message`
    /// (checked here under the node key the new roster lists); `null` for the auxiliary
    /// information, which the commit's statements cover.
    pub statement: Option<Hex>,
}

/// The answer to `POST /v1/cluster/roster/move`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterMovedResult {
    /// The roster version the change makes.
    pub version: u32,
    /// SHA-256 of the change.
    pub request_sha256: Hex,
    /// What was moved.
    pub step: MoveStep,
    /// For a key: the generation dealt from (the incoming one is the next).
    pub generation: Option<u32>,
    /// For a key: the digest of its facts (`protocol::roster::transfer::KeyInfo::digest`).
    pub facts: Option<Hex>,
    /// For a key: the dealers, by index in the roster in force.
    pub dealers: Vec<u16>,
    /// Every node of the new roster, by index.
    pub moved: Vec<PartyMoved>,
    /// The nodes that leave with the change and took part (by index in the roster in force).
    pub leaving: Vec<u16>,
}

/// The body of `POST /v1/cluster/roster/commit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRosterBody {
    /// SHA-256 of the pending change, or of the change committed last (its commit run again:
    /// every party asked at the proxy recorded for it), 32 bytes.
    pub change: Hex,
    /// The parent proxy of every node the change adds.
    #[serde(default)]
    pub joining: Vec<JoiningProxy>,
}

/// One key of the set the new roster vouched for (`protocol::roster::commit::MovedKey`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovedKeyJson {
    /// The key.
    pub key_id: String,
    /// The generation its move dealt from.
    pub generation: u32,
    /// The digest of its facts (32 bytes).
    pub facts: Hex,
    /// The digest its move confirmed (32 bytes).
    pub confirmed: Hex,
}

/// One node of the new roster at the commit step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeCommitted {
    /// Its index in the new roster.
    pub index: u16,
    /// Its node key (32 bytes).
    pub node_key: Hex,
    /// Its node key's signature over `protocol::roster::commit::keys_held_message` (the set
    /// it vouched for, under the chain it was prepared under).
    pub statement: Hex,
    /// Once it committed: its node key's signature over
    /// `protocol::roster::commit::roster_set_message` (checked here).
    pub set_statement: Option<Hex>,
}

/// A node the change removes that left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeLeft {
    /// Its index in the roster the change replaced.
    pub node: u16,
    /// Its node key (32 bytes).
    pub node_key: Hex,
    /// Its node key's signature over `protocol::roster::commit::roster_left_message` (checked
    /// here).
    pub statement: Hex,
}

/// A node that did not answer a commit step as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyFailure {
    /// Its place in the change (`node 1 (index 1 in the new roster)`, `the node joining at
    /// index 3`, `node 2 (leaving)`).
    pub party: String,
    /// The enclave's failure code, or `unreachable`, `bad_statement`.
    pub code: String,
    /// What happened.
    pub message: String,
}

/// The answer to `POST /v1/cluster/roster/commit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterCommitResult {
    /// The roster version the change makes.
    pub version: u32,
    /// SHA-256 of the change.
    pub request_sha256: Hex,
    /// The digest of the key set every node of the new roster vouched for
    /// (`protocol::roster::commit::set_digest`).
    pub keys: Hex,
    /// That set.
    pub set: Vec<MovedKeyJson>,
    /// The digest of the new party set's auxiliary information it names, if any.
    pub aux: Option<Hex>,
    /// Every node of the new roster, by index.
    pub nodes: Vec<NodeCommitted>,
    /// The nodes the change removes that left.
    pub left: Vec<NodeLeft>,
    /// The nodes that did not commit or leave, with why.
    pub failed: Vec<PartyFailure>,
    /// The parent proxy of each node of the new roster, by index: where every coordinator on
    /// the store reaches it from the commit on (recorded with the commit).
    pub proxies: Vec<String>,
    /// How many image changes the chain the change was committed under held: with the
    /// admin changes up to the version it was approved under and the roster changes committed
    /// before it, what the keys-held statements' chain digest is recomputed from (a node that
    /// joins a later change checks them so).
    #[serde(default)]
    pub images: u32,
}
