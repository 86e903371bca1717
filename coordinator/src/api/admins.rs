//! The cluster's admin set over time (issue 20): `POST /v1/cluster/admins`, an admin change as
//! the admins sign it and what the nodes answered, and the admin set `GET /v1/cluster` shows.

use protocol::admins::SetAdmins;
use serde::{Deserialize, Serialize};

use super::hex::{ClusterHex, Hex, buf, bufs, hexes};
use super::requests::{ApprovedJson, Wire};
use super::responses::NodeReceipt;

/// A change of the cluster's admins and admin quorum, as the current admins sign it
/// (`protocol::admins::SetAdmins`): the body of `POST /v1/cluster/admins`, with its approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAdminsJson {
    /// Request format version (1).
    pub v: u8,
    /// The cluster id.
    pub cluster: ClusterHex,
    /// The admin version it replaces (the cluster's current one; 0: the genesis' admins). The
    /// change makes version `version + 1`.
    pub version: u32,
    /// The new admins' Ed25519 public keys (32 bytes each, distinct).
    pub admins: Vec<Hex>,
    /// How many of them approve an admin request.
    pub admin_quorum: u16,
    /// 16 random bytes, single use.
    pub request_id: Hex,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds.
    pub expiry: u64,
}

impl Wire for SetAdminsJson {
    type Wire = SetAdmins;
    fn to_wire(&self) -> SetAdmins {
        SetAdmins {
            v: self.v,
            cluster: self.cluster.0,
            version: self.version,
            admins: bufs(&self.admins),
            admin_quorum: self.admin_quorum,
            request_id: buf(&self.request_id),
            created: self.created,
            expiry: self.expiry,
        }
    }
    fn from_wire(r: &SetAdmins) -> Self {
        Self {
            v: r.v,
            cluster: ClusterHex(r.cluster),
            version: r.version,
            admins: hexes(&r.admins),
            admin_quorum: r.admin_quorum,
            request_id: Hex::from(&r.request_id),
            created: r.created,
            expiry: r.expiry,
        }
    }
}

/// A node that has not applied an admin change (or an image change), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFailure {
    /// The node index.
    pub node: u16,
    /// The enclave's failure code (`unreachable` when it did not answer, `bad_statement` when
    /// its statement does not verify under its roster node key).
    pub code: String,
    /// What happened.
    pub message: String,
}

/// The answer to `POST /v1/cluster/admins` (and to `POST /v1/cluster/images`): the admin
/// version (image version) the change makes, and which nodes applied it. Each statement is the
/// node's node-key signature over `protocol::admins::admins_set_message`
/// (`protocol::images::images_set_message` for an image change) of cluster, node, `version`
/// and `request_sha256`, which a client checks against the pinned roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminsSetResult {
    /// The version the change makes (its `version` + 1).
    pub version: u32,
    /// SHA-256 of the change's canonical bytes.
    pub request_sha256: Hex,
    /// Every node that applied it (now or before), by index, with its statement.
    pub applied: Vec<NodeReceipt>,
    /// Every node that has not, by index, with its error. Posting the same approved request
    /// again tries these nodes again (after its expiry too: each is shown another node's
    /// statement).
    pub failed: Vec<NodeFailure>,
}

/// One recorded admin change, as `GET /v1/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminChange {
    /// The admin version it made.
    pub version: u32,
    /// The approved change.
    pub request: ApprovedJson<SetAdminsJson>,
    /// SHA-256 of its canonical bytes.
    pub request_sha256: Hex,
    /// The statements of the nodes that applied it, by node index.
    pub statements: Vec<NodeReceipt>,
    /// When it was recorded (Unix seconds).
    pub recorded: u64,
}

/// The cluster's admin set in force, and how it came to be: the genesis' admins (version 0),
/// replaced by each recorded change in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminsStatus {
    /// The admin version in force: every admin request names it (`admins`).
    pub version: u32,
    /// Its admins' public keys.
    pub admins: Vec<Hex>,
    /// How many of them approve an admin request.
    pub admin_quorum: u16,
    /// Every change since the genesis, in version order.
    pub changes: Vec<AdminChange>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_travels_as_hex_and_back() {
        let json = SetAdminsJson {
            v: protocol::admins::SET_ADMINS_VERSION,
            cluster: ClusterHex(protocol::genesis::ClusterId([7; 32])),
            version: 3,
            admins: vec![Hex(vec![1; 32]), Hex(vec![2; 32])],
            admin_quorum: 2,
            request_id: Hex(vec![9; 16]),
            created: 1_000,
            expiry: 1_300,
        };
        let wire = json.to_wire();
        assert_eq!(wire.check(), Ok(()));
        assert_eq!(wire.new_version(), 4);
        assert_eq!(SetAdminsJson::from_wire(&wire), json);
        let text = serde_json::to_string(&json).expect("serializes");
        assert!(text.contains(&"01".repeat(32)), "{text}");
        let back: SetAdminsJson = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, json);
        let extra = text.replacen('{', "{\"x\":1,", 1);
        assert!(serde_json::from_str::<SetAdminsJson>(&extra).is_err());
    }
}
