//! The cluster's roster over time (issue 20, membership; `docs/lifecycle.md`, ADR 0022):
//! `POST /v1/cluster/roster`, a roster change as the admins sign it and what the nodes
//! answered, and the roster `GET /v1/cluster` shows with the changes proposed.

use protocol::genesis::RosterEntry;
use protocol::roster::ChangeRoster;
use serde::{Deserialize, Serialize};

use super::admins::NodeFailure;
use super::hex::{ClusterHex, Hex, buf};
use super::requests::{ApprovedJson, RosterEntryJson, Wire};
use super::responses::NodeReceipt;

impl Wire for RosterEntryJson {
    type Wire = RosterEntry;
    fn to_wire(&self) -> RosterEntry {
        RosterEntry {
            node_key: buf(&self.node_key),
            kms_key_arn: self.kms_key_arn.clone(),
            pcr3: self.pcr3.as_ref().map(buf),
            pcr4: self.pcr4.as_ref().map(buf),
        }
    }
    fn from_wire(e: &RosterEntry) -> Self {
        Self {
            node_key: Hex::from(&e.node_key),
            kms_key_arn: e.kms_key_arn.clone(),
            pcr3: e.pcr3.as_ref().map(Hex::from),
            pcr4: e.pcr4.as_ref().map(Hex::from),
        }
    }
}

/// A change of the cluster's roster, as the admins in force sign it
/// (`protocol::roster::ChangeRoster`): the body of `POST /v1/cluster/roster`, with its
/// approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRosterJson {
    /// Request format version (1).
    pub v: u8,
    /// The cluster id.
    pub cluster: ClusterHex,
    /// The roster version it replaces (the cluster's current one; 0: the genesis' roster).
    /// The change makes version `version + 1`.
    pub version: u32,
    /// The whole new roster, by index (2 to 64 nodes; nodes that stay keep their entry and
    /// their order and never move to a higher index; a node key that left never comes back).
    pub roster: Vec<RosterEntryJson>,
    /// 16 random bytes, single use.
    pub request_id: Hex,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds.
    pub expiry: u64,
    /// The admin version the approvals were given under (`GET /v1/cluster`; 0, which may be
    /// left out, until the admins are first replaced).
    #[serde(default, skip_serializing_if = "protocol::skip::is_zero_u32")]
    pub admins: u32,
}

impl Wire for ChangeRosterJson {
    type Wire = ChangeRoster;
    fn to_wire(&self) -> ChangeRoster {
        ChangeRoster {
            v: self.v,
            cluster: self.cluster.0,
            version: self.version,
            roster: self.roster.iter().map(RosterEntryJson::to_wire).collect(),
            request_id: buf(&self.request_id),
            created: self.created,
            expiry: self.expiry,
            admins: self.admins,
        }
    }
    fn from_wire(r: &ChangeRoster) -> Self {
        Self {
            v: r.v,
            cluster: ClusterHex(r.cluster),
            version: r.version,
            roster: r.roster.iter().map(RosterEntryJson::from_wire).collect(),
            request_id: Hex::from(&r.request_id),
            created: r.created,
            expiry: r.expiry,
            admins: r.admins,
        }
    }
}

/// A node that stays through a roster change: its index before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeptNode {
    /// Its index in the roster in force.
    pub from: u16,
    /// Its index in the new roster (never higher).
    pub to: u16,
}

/// What a roster change does to the roster in force (`protocol::roster::RosterDiff`); all
/// empty for a withdrawal (the roster in force proposed again).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterDiffJson {
    /// The nodes that stay.
    pub kept: Vec<KeptNode>,
    /// The indices, in the roster in force, of the nodes that leave.
    pub removed: Vec<u16>,
    /// The indices, in the new roster, of the nodes that join.
    pub added: Vec<u16>,
}

impl From<&protocol::roster::RosterDiff> for RosterDiffJson {
    fn from(d: &protocol::roster::RosterDiff) -> Self {
        Self {
            kept: d
                .kept
                .iter()
                .map(|(from, to)| KeptNode {
                    from: *from,
                    to: *to,
                })
                .collect(),
            removed: d.removed.clone(),
            added: d.added.clone(),
        }
    }
}

/// The answer to `POST /v1/cluster/roster`: the roster version the change would make, its
/// hash, what it does, the nodes that hold it as proposed and the ones that do not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterProposedResult {
    /// The roster version the change makes once committed (the current one stays in force).
    pub version: u32,
    /// SHA-256 of the change's canonical bytes.
    pub request_sha256: Hex,
    /// It withdraws the change pending (it names the roster in force).
    pub withdrawal: bool,
    /// What it does to the roster in force.
    pub diff: RosterDiffJson,
    /// The statements of the nodes that hold it as proposed, by their index in the roster in
    /// force (each an Ed25519 signature by the node key that roster lists over
    /// `protocol::roster::roster_proposed_message`).
    pub proposed: Vec<NodeReceipt>,
    /// The nodes that do not, with why.
    pub failed: Vec<NodeFailure>,
}

/// One recorded roster change proposal, as `GET /v1/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterProposal {
    /// The roster version it makes once committed.
    pub version: u32,
    /// The approved change.
    pub request: ApprovedJson<ChangeRosterJson>,
    /// SHA-256 of its canonical bytes.
    pub request_sha256: Hex,
    /// The statements of the nodes that hold it as proposed, by index in the roster in force.
    pub statements: Vec<NodeReceipt>,
    /// When it was first recorded (Unix seconds).
    pub recorded: u64,
}

/// The roster in force and the changes proposed to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterStatus {
    /// The roster version in force (0: the genesis' roster): a roster change names it.
    pub version: u32,
    /// Its nodes, by index.
    pub roster: Vec<RosterEntryJson>,
    /// Every change of this version proposed, in the order the nodes apply them (created,
    /// then request hash): a later one replaced an earlier one at the nodes that hold it.
    pub proposals: Vec<RosterProposal>,
    /// SHA-256 of the change pending: the last proposal, unless it names the roster in force
    /// (a withdrawal); `null` when none is.
    pub pending: Option<Hex>,
    /// Every committed roster change, in version order: what a client checks the roster in
    /// force against, from the genesis it pinned.
    #[serde(default)]
    pub committed: Vec<RosterCommitted>,
}

/// A committed roster change, as `GET /v1/cluster` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterCommitted {
    /// The roster version it made.
    pub version: u32,
    /// The approved change.
    pub request: ApprovedJson<ChangeRosterJson>,
    /// SHA-256 of its canonical bytes.
    pub request_sha256: Hex,
    /// The word of each node of its roster that committed it
    /// (`protocol::roster::commit::roster_set_message`), by index in that roster.
    pub committed: Vec<NodeReceipt>,
    /// How many image changes the chain it was committed under held.
    pub images: u32,
    /// The digest of the key set every node of its roster vouched for
    /// (`protocol::roster::commit::set_digest`).
    pub keys: Hex,
    /// Each node's keys-held statement over that set (`keys_held_message`), by index in its
    /// roster: what a node that joins a later change checks the commit by.
    pub vouched: Vec<NodeReceipt>,
    /// When it was first recorded (Unix seconds).
    pub recorded: u64,
}

/// One node's word that it holds a roster change under a chain (the prepare gate,
/// `protocol::roster::HeldStatement`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldStatementJson {
    /// Its node key (32 bytes).
    pub node_key: Hex,
    /// The digest of the chain it holds the change under (32 bytes,
    /// `protocol::roster::chain_digest`).
    pub chain: Hex,
    /// Its node key's Ed25519 signature over `protocol::roster::roster_held_message`.
    pub statement: Hex,
}

impl Wire for HeldStatementJson {
    type Wire = protocol::roster::HeldStatement;
    fn to_wire(&self) -> Self::Wire {
        protocol::roster::HeldStatement {
            node_key: buf(&self.node_key),
            chain: buf(&self.chain),
            statement: buf(&self.statement),
        }
    }
    fn from_wire(s: &Self::Wire) -> Self {
        Self {
            node_key: Hex::from(&s.node_key),
            chain: Hex::from(&s.chain),
            statement: Hex::from(&s.statement),
        }
    }
}

/// `POST /v1/cluster/roster/prepare`: the prepare gate of the pending roster change, at every
/// node of the roster in force. With no statements each node answers its own; with the
/// statement of every node of the new roster (the nodes that join are asked by the client at
/// their parent proxies) each node checks them all and is prepared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareRosterBody {
    /// SHA-256 of the pending change (32 bytes).
    pub change: Hex,
    /// Every node's statement, or none.
    #[serde(default)]
    pub statements: Vec<HeldStatementJson>,
    /// A client's nonce (at most 64 bytes) that each prepared node's signed statement covers.
    #[serde(default)]
    pub nonce: Option<Hex>,
}

/// One node of the roster in force, prepared or asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePrepared {
    /// Its index in the roster in force.
    pub node: u16,
    /// Its statement (checked here under the node key the roster lists).
    pub held: HeldStatementJson,
    /// Whether it says it is prepared (unsigned: a client checks `prepared_statement`).
    pub prepared: bool,
    /// When it is prepared: its node key's signature over
    /// `protocol::roster::roster_prepared_message` (the change, its chain, the digest of the
    /// statements it sealed, the request's nonce). Not checked here: a client checks it.
    #[serde(default)]
    pub prepared_statement: Option<Hex>,
}

/// The answer to `POST /v1/cluster/roster/prepare`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterPreparedResult {
    /// The roster version the change makes.
    pub version: u32,
    /// SHA-256 of the change.
    pub request_sha256: Hex,
    /// The nodes that answered with a statement that verifies.
    pub nodes: Vec<NodePrepared>,
    /// The nodes that did not, with why (code `membership`, the message starting with the
    /// enclave's kind: `chain_differs`, `missing_statement`, ...).
    pub failed: Vec<NodeFailure>,
}
