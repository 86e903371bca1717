//! `POST /v1/keys/import` (issue 19): an admin-approved import of a legacy key and the legacy
//! holders' sealed dealings, as JSON.

use protocol::import::{ImportKey, LegacyDealer, SealedDealing};
use serde::{Deserialize, Serialize};

use super::hex::{Hex, buf};
use super::requests::{ApprovedJson, CreateKeyJson, Wire};

/// One legacy dealer: its evaluation point and public share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyDealerJson {
    /// The holder's evaluation point (32-byte big-endian scalar).
    pub point: Hex,
    /// Its public share (compressed point).
    pub public_share: Hex,
}

/// An import request, as the admins sign it (`protocol::import::ImportKey`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportKeyJson {
    /// Request format version (1).
    pub v: u8,
    /// The key as it will be held (id, scheme, new threshold, policy, request id, validity).
    pub key: CreateKeyJson,
    /// The legacy public key (compressed).
    pub public_key: Hex,
    /// The chain code to keep (ECDSA, 32 bytes), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_code: Option<Hex>,
    /// The Bitcoin-family network (`CHAIN:NETWORK`) whose legacy funds are at the key's own
    /// address: there the empty path signs (`protocol::import::ImportKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key_network: Option<String>,
    /// The legacy holders that deal, in dealing order.
    pub dealers: Vec<LegacyDealerJson>,
}

/// One legacy holder's dealing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedDealingJson {
    /// Feldman commitments, constant term first (compressed points).
    pub commitments: Vec<Hex>,
    /// The dealing's ephemeral X25519 key.
    pub ephemeral: Hex,
    /// Per node, in index order: its sealed sub-share.
    pub sub_shares: Vec<Hex>,
}

/// `POST /v1/keys/import`: the approved request and one dealing per dealer, in its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// The approved import request.
    pub import: ApprovedJson<ImportKeyJson>,
    /// The dealings.
    pub dealings: Vec<SealedDealingJson>,
}

impl Wire for ImportKeyJson {
    type Wire = ImportKey;
    fn to_wire(&self) -> ImportKey {
        ImportKey {
            v: self.v,
            key: self.key.to_wire(),
            public_key: buf(&self.public_key),
            chain_code: self.chain_code.as_ref().map(buf),
            master_key_network: self.master_key_network.clone(),
            dealers: self
                .dealers
                .iter()
                .map(|d| LegacyDealer {
                    point: buf(&d.point),
                    public_share: buf(&d.public_share),
                })
                .collect(),
        }
    }
    fn from_wire(r: &ImportKey) -> Self {
        Self {
            v: r.v,
            key: CreateKeyJson::from_wire(&r.key),
            public_key: Hex::from(&r.public_key),
            chain_code: r.chain_code.as_ref().map(Hex::from),
            master_key_network: r.master_key_network.clone(),
            dealers: r
                .dealers
                .iter()
                .map(|d| LegacyDealerJson {
                    point: Hex::from(&d.point),
                    public_share: Hex::from(&d.public_share),
                })
                .collect(),
        }
    }
}

impl Wire for SealedDealingJson {
    type Wire = SealedDealing;
    fn to_wire(&self) -> SealedDealing {
        SealedDealing {
            commitments: self.commitments.iter().map(buf).collect(),
            ephemeral: buf(&self.ephemeral),
            sub_shares: self.sub_shares.iter().map(buf).collect(),
        }
    }
    fn from_wire(d: &SealedDealing) -> Self {
        Self {
            commitments: d.commitments.iter().map(Hex::from).collect(),
            ephemeral: Hex::from(&d.ephemeral),
            sub_shares: d.sub_shares.iter().map(Hex::from).collect(),
        }
    }
}

/// A resharing (or refresh) of a key the cluster holds, as the admins sign it
/// (`protocol::reshare::ReshareKey`): the body of `POST /v1/keys/{key_id}/reshare`, with its
/// approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReshareKeyJson {
    /// Request format version (1).
    pub v: u8,
    /// The cluster id.
    pub cluster: super::ClusterHex,
    /// The key.
    pub key_id: String,
    /// The generation it replaces (the key's current one).
    pub generation: u32,
    /// The new threshold (the key's own for a refresh).
    pub threshold: u16,
    /// The nodes that deal, in increasing order: at least the key's current threshold.
    pub dealers: Vec<u16>,
    /// 16 random bytes, single use.
    pub request_id: Hex,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds.
    pub expiry: u64,
    /// The key's refresh schedule from the new generation on, in seconds: 0 turns it off;
    /// absent keeps it. While it is on, the coordinator refreshes the key by itself each time
    /// its generation is that old (each enclave checks it against the schedule it sealed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_every: Option<u64>,
    /// A scheduled refresh, made by the coordinator with no approvals (never in a request the
    /// admins approve): absent or `false` otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scheduled: bool,
    /// Who approves the key's signing requests from the new generation on (issue 20): the
    /// key's policy version goes up by one when the new generation becomes current, and
    /// signing requests approved under the old version are refused from then on. Absent keeps
    /// the key's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<super::PolicyJson>,
    /// The admin version the approvals were given under (issue 20): the cluster's current one
    /// (0, which may be left out, until the admins are first replaced; always 0 in a scheduled
    /// refresh). The coordinator and every enclave refuse another (`stale_admins`).
    #[serde(default, skip_serializing_if = "protocol::skip::is_zero_u32")]
    pub admins: u32,
}

impl Wire for ReshareKeyJson {
    type Wire = protocol::reshare::ReshareKey;
    fn to_wire(&self) -> protocol::reshare::ReshareKey {
        protocol::reshare::ReshareKey {
            v: self.v,
            cluster: self.cluster.0,
            key_id: self.key_id.clone(),
            generation: self.generation,
            threshold: self.threshold,
            dealers: self.dealers.clone(),
            request_id: buf(&self.request_id),
            created: self.created,
            expiry: self.expiry,
            refresh_every: self.refresh_every,
            scheduled: self.scheduled,
            policy: self.policy.as_ref().map(Wire::to_wire),
            admins: self.admins,
        }
    }
    fn from_wire(r: &protocol::reshare::ReshareKey) -> Self {
        Self {
            v: r.v,
            cluster: super::ClusterHex(r.cluster),
            key_id: r.key_id.clone(),
            generation: r.generation,
            threshold: r.threshold,
            dealers: r.dealers.clone(),
            request_id: Hex::from(&r.request_id),
            created: r.created,
            expiry: r.expiry,
            refresh_every: r.refresh_every,
            scheduled: r.scheduled,
            policy: r.policy.as_ref().map(super::PolicyJson::from_wire),
            admins: r.admins,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resharing_names_its_admin_version_only_past_zero() {
        let mut r = ReshareKeyJson {
            v: protocol::reshare::RESHARE_VERSION,
            cluster: super::super::ClusterHex(protocol::genesis::ClusterId([5; 32])),
            key_id: "k".into(),
            generation: 1,
            threshold: 2,
            dealers: vec![0, 1],
            request_id: Hex(vec![6; 16]),
            created: 10,
            expiry: 20,
            refresh_every: None,
            scheduled: false,
            policy: None,
            admins: 0,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("admins"), "{text}");
        assert_eq!(serde_json::from_str::<ReshareKeyJson>(&text).unwrap(), r);
        r.admins = 7;
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"admins\":7"), "{text}");
        assert_eq!(serde_json::from_str::<ReshareKeyJson>(&text).unwrap(), r);
        assert_eq!(r.to_wire().admins, 7);
        assert_eq!(ReshareKeyJson::from_wire(&r.to_wire()), r);
    }
}
