//! Building and approving requests: what an admin or approver does on their own machine.

use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer, SigningKey};
use protocol::genesis::ClusterId;
use protocol::policy::{
    Approval, Approved, Canonical, CreateKey, GENESIS_V1_VERSION, Genesis, KeyPolicy, Payload,
    REQUEST_VERSION, SIGN_REQUEST_VERSION, Scheme, SignRequest,
};
use rand::RngCore;
use serde_bytes::ByteBuf;

/// How long requests made here stay valid, seconds.
pub const VALIDITY_SECS: u64 = 300;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn request_id() -> ByteBuf {
    let mut b = vec![0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    ByteBuf::from(b)
}

/// The 32-byte public key of an approver, as the wire carries it.
pub fn public(key: &SigningKey) -> ByteBuf {
    ByteBuf::from(key.verifying_key().to_bytes().to_vec())
}

/// `request` with one approval per key in `keys`.
pub fn approve<T: Canonical + Clone>(request: &T, keys: &[SigningKey]) -> Approved<T> {
    let message = request.canonical_bytes();
    Approved {
        request: request.clone(),
        approvals: keys
            .iter()
            .map(|k| Approval {
                approver: public(k),
                signature: ByteBuf::from(k.sign(&message).to_bytes().to_vec()),
            })
            .collect(),
    }
}

/// One admin's approval of `request`, as a file carries it, made only if `admin` is one of
/// `admins` (`whose` names that list in the refusal).
pub fn approval_by<T: Canonical + Clone>(
    request: &T,
    admins: &[ByteBuf],
    whose: &str,
    admin: &SigningKey,
) -> anyhow::Result<coordinator::api::ApprovalJson> {
    let me = public(admin);
    if !admins.contains(&me) {
        anyhow::bail!(
            "{} is not one of {whose} admins: refusing to approve",
            hex::encode(&me)
        );
    }
    let a = approve(request, std::slice::from_ref(admin))
        .approvals
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no approval was made"))?;
    Ok(coordinator::api::ApprovalJson {
        approver: coordinator::api::Hex(a.approver.to_vec()),
        signature: coordinator::api::Hex(a.signature.to_vec()),
    })
}

/// A legacy (version-1) genesis for `nodes` nodes with `admins` and `quorum`: refused by
/// every enclave and coordinator; for the tests of that refusal.
pub fn genesis(cluster: &str, nodes: u16, admins: &[SigningKey], quorum: u16) -> Genesis {
    genesis_of(cluster, nodes, admins.iter().map(public).collect(), quorum)
}

/// A genesis for `nodes` nodes with the admins' public keys and `quorum`.
pub fn genesis_of(cluster: &str, nodes: u16, admins: Vec<ByteBuf>, quorum: u16) -> Genesis {
    Genesis {
        v: GENESIS_V1_VERSION,
        cluster: cluster.into(),
        nodes,
        admins,
        admin_quorum: quorum,
    }
}

/// A key-creation request.
pub fn create_key(
    cluster: ClusterId,
    key_id: &str,
    scheme: Scheme,
    threshold: u16,
    approvers: &[ByteBuf],
    approvals_needed: u16,
) -> CreateKey {
    let t = now();
    CreateKey {
        v: REQUEST_VERSION,
        cluster,
        key_id: key_id.into(),
        scheme,
        threshold,
        policy: KeyPolicy {
            approvers: approvers.to_vec(),
            approvals_needed,
        },
        request_id: request_id(),
        created: t,
        expiry: t + VALIDITY_SECS,
        // The genesis' admins and roster; a client sets the versions in force
        // (`crate::admins`, `crate::roster`).
        admins: 0,
        roster: 0,
    }
}

/// A resharing (a refresh at the key's own threshold) of `key_id` from `generation`;
/// `refresh_every` sets the key's refresh schedule (`Some(0)`: off; `None`: unchanged).
pub fn reshare_key(
    cluster: ClusterId,
    key_id: &str,
    generation: u32,
    threshold: u16,
    dealers: &[u16],
    refresh_every: Option<u64>,
) -> protocol::reshare::ReshareKey {
    let t = now();
    protocol::reshare::ReshareKey {
        v: protocol::reshare::RESHARE_VERSION,
        cluster,
        key_id: key_id.into(),
        generation,
        threshold,
        dealers: dealers.to_vec(),
        request_id: request_id(),
        created: t,
        expiry: t + VALIDITY_SECS,
        refresh_every,
        scheduled: false,
        policy: None,
        // The genesis' admins; a client sets the version in force (`crate::admins`).
        admins: 0,
    }
}

/// A change of the cluster's admins to `admins` and `quorum`, replacing admin version
/// `version` (the one in force).
pub fn set_admins(
    cluster: ClusterId,
    version: u32,
    admins: &[[u8; 32]],
    quorum: u16,
) -> protocol::admins::SetAdmins {
    let t = now();
    protocol::admins::SetAdmins {
        v: protocol::admins::SET_ADMINS_VERSION,
        cluster,
        version,
        admins: admins.iter().map(|a| ByteBuf::from(a.to_vec())).collect(),
        admin_quorum: quorum,
        request_id: request_id(),
        created: t,
        expiry: t + VALIDITY_SECS,
    }
}

/// A change of the enclave images the cluster accepts to `images`, replacing image version
/// `version` (the one in force), approved under admin version `admins` (the one in force).
pub fn accept_images(
    cluster: ClusterId,
    (version, images): (u32, &[protocol::genesis::Image]),
    admins: u32,
) -> protocol::images::AcceptImages {
    let t = now();
    protocol::images::AcceptImages {
        v: protocol::images::ACCEPT_IMAGES_VERSION,
        cluster,
        version,
        images: images.to_vec(),
        request_id: request_id(),
        created: t,
        expiry: t + VALIDITY_SECS,
        admins,
    }
}

/// A roster change replacing roster `version` with `roster`, approved under admin version
/// `admins`.
pub fn change_roster(
    cluster: ClusterId,
    (version, roster): (u32, &[protocol::genesis::RosterEntry]),
    admins: u32,
) -> protocol::roster::ChangeRoster {
    let t = now();
    protocol::roster::ChangeRoster {
        v: protocol::roster::CHANGE_ROSTER_VERSION,
        cluster,
        version,
        roster: roster.to_vec(),
        request_id: request_id(),
        created: t,
        expiry: t + VALIDITY_SECS,
        admins,
    }
}

/// A signing request for key `key_id` under version `policy` of its approval policy.
pub fn sign_request(
    cluster: ClusterId,
    (key_id, policy): (&str, u32),
    path: &[u32],
    payloads: Vec<Payload>,
) -> SignRequest {
    let t = now();
    SignRequest {
        v: SIGN_REQUEST_VERSION,
        cluster,
        key_id: key_id.into(),
        path: path.to_vec(),
        payloads,
        request_id: request_id(),
        created: t,
        expiry: t + VALIDITY_SECS,
        policy,
    }
}

pub use coordinator::api::parse_path;

#[cfg(test)]
mod tests {
    use super::parse_path;

    #[test]
    fn paths() {
        assert_eq!(parse_path("m").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_path("m/0/1").unwrap(), vec![0, 1]);
        assert!(parse_path("0/1").is_err());
        assert!(parse_path("m/x").is_err());
        assert!(parse_path("m/2147483648").is_err());
    }
}
