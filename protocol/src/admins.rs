//! Changing the cluster's admin set and quorum (issue 20, `docs/lifecycle.md`).
//!
//! The admins a genesis names are version 0. Each change is a [`SetAdmins`] request approved by
//! the quorum of the version it replaces, naming that version, so a change approved against a
//! replaced set is refused and the versions form one chain. Every admin-approved request names
//! the admin version it was approved under (`admins`, left out of its canonical bytes at 0), and
//! every enclave refuses another version than its current one for new work.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::genesis::{ClusterId, GenesisError, check_admin_set};
use crate::policy::{Canonical, REQUEST_ID_LEN};

/// Version of [`SetAdmins`].
pub const SET_ADMINS_VERSION: u8 = 1;

/// Domain tag of a node's statement that it applied an admin change ([`admins_set_message`]).
pub const ADMINS_SET_DOMAIN: &[u8] = b"cohort/admins-set/v1\0";

/// Replace the cluster's admins and admin quorum, approved by the current admin quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAdmins {
    /// [`SET_ADMINS_VERSION`].
    pub v: u8,
    /// The cluster.
    pub cluster: ClusterId,
    /// The admin version this change replaces (0: the genesis' admins). The new set is version
    /// `version + 1`; a node whose current version is another refuses the change.
    pub version: u32,
    /// The new admins' Ed25519 keys (32 bytes each, distinct, 1 to
    /// [`crate::genesis::MAX_ADMINS`]).
    pub admins: Vec<ByteBuf>,
    /// How many of them approve an admin request (1 to their number).
    pub admin_quorum: u16,
    /// Request id (16 bytes).
    pub request_id: ByteBuf,
    /// Valid from (Unix seconds).
    pub created: u64,
    /// Valid until (Unix seconds).
    pub expiry: u64,
}

impl Canonical for SetAdmins {
    const DOMAIN: &'static [u8] = b"cohort/set-admins/v1\0";
}

/// Why a [`SetAdmins`] is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminsError {
    /// Another request version.
    #[error("set-admins request version {0} (this build reads {SET_ADMINS_VERSION})")]
    Version(u8),
    /// The request id is not [`REQUEST_ID_LEN`] bytes.
    #[error("request id is {0} bytes, not {REQUEST_ID_LEN}")]
    RequestId(usize),
    /// The version it replaces is the last one there can be.
    #[error("admin version {0} cannot be replaced (no version after it)")]
    LastVersion(u32),
    /// The new set breaks the rules of an admin set.
    #[error(transparent)]
    Set(#[from] GenesisError),
}

impl SetAdmins {
    /// Checks the shape: version, request id, the version after the one replaced, and the
    /// rules of an admin set ([`check_admin_set`]). Approvals and the window are checked
    /// separately.
    pub fn check(&self) -> Result<(), AdminsError> {
        if self.v != SET_ADMINS_VERSION {
            return Err(AdminsError::Version(self.v));
        }
        if self.request_id.len() != REQUEST_ID_LEN {
            return Err(AdminsError::RequestId(self.request_id.len()));
        }
        if self.version == u32::MAX {
            return Err(AdminsError::LastVersion(self.version));
        }
        check_admin_set(&self.admins, self.admin_quorum)?;
        Ok(())
    }

    /// The admin version this change makes.
    pub fn new_version(&self) -> u32 {
        self.version.saturating_add(1)
    }

    /// SHA-256 of the canonical bytes: what every node's statement names.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.canonical_bytes()).into()
    }
}

/// What node `node` signs with its node key once it applied the admin change whose SHA-256 is
/// `request`, making admin version `version` its current one:
///
/// `ADMINS_SET_DOMAIN || cluster id || u16 node || u32 version || request`
pub fn admins_set_message(
    cluster: &ClusterId,
    node: u16,
    version: u32,
    request: &[u8; 32],
) -> Vec<u8> {
    change_statement(ADMINS_SET_DOMAIN, cluster, node, version, request)
}

/// A node's statement that it applied a versioned cluster change (admins, images):
/// `domain || cluster id || u16 node || u32 version || request`.
pub(crate) fn change_statement(
    domain: &[u8],
    cluster: &ClusterId,
    node: u16,
    version: u32,
    request: &[u8; 32],
) -> Vec<u8> {
    versioned_statement(domain, cluster, &node.to_be_bytes(), version, request)
}

/// `domain || cluster id || signer || u32 version || request`: a statement about a versioned
/// cluster change, its signer named by index (admins, images) or by node key (roster).
pub(crate) fn versioned_statement(
    domain: &[u8],
    cluster: &ClusterId,
    signer: &[u8],
    version: u32,
    request: &[u8; 32],
) -> Vec<u8> {
    let mut m = domain.to_vec();
    m.extend_from_slice(&cluster.0);
    m.extend_from_slice(signer);
    m.extend_from_slice(&version.to_be_bytes());
    m.extend_from_slice(request);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> SetAdmins {
        SetAdmins {
            v: SET_ADMINS_VERSION,
            cluster: ClusterId([7; 32]),
            version: 0,
            admins: vec![ByteBuf::from(vec![1; 32]), ByteBuf::from(vec![2; 32])],
            admin_quorum: 2,
            request_id: ByteBuf::from(vec![3; 16]),
            created: 1_000,
            expiry: 1_300,
        }
    }

    #[test]
    fn a_well_formed_change_passes() {
        assert_eq!(request().check(), Ok(()));
        assert_eq!(request().new_version(), 1);
    }

    #[test]
    fn malformed_changes_are_refused_by_name() {
        type Change = fn(&mut SetAdmins);
        let cases: Vec<(Change, AdminsError)> = vec![
            (|r| r.v = 2, AdminsError::Version(2)),
            (|r| r.request_id.truncate(15), AdminsError::RequestId(15)),
            (|r| r.version = u32::MAX, AdminsError::LastVersion(u32::MAX)),
            (
                |r| r.admins.clear(),
                AdminsError::Set(GenesisError::AdminCount(0)),
            ),
            (
                |r| r.admins[1] = r.admins[0].clone(),
                AdminsError::Set(GenesisError::DuplicateAdmin {
                    first: 0,
                    second: 1,
                }),
            ),
            (
                |r| r.admins[0] = ByteBuf::from(vec![1; 31]),
                AdminsError::Set(GenesisError::AdminKey(0)),
            ),
            (
                |r| r.admin_quorum = 3,
                AdminsError::Set(GenesisError::AdminQuorum {
                    quorum: 3,
                    admins: 2,
                }),
            ),
            (
                |r| r.admin_quorum = 0,
                AdminsError::Set(GenesisError::AdminQuorum {
                    quorum: 0,
                    admins: 2,
                }),
            ),
        ];
        for (change, expected) in cases {
            let mut r = request();
            change(&mut r);
            assert_eq!(r.check(), Err(expected));
        }
    }

    #[test]
    fn every_field_is_in_the_hash_and_the_statement_names_version_and_node() {
        let base = request();
        let changes: [fn(&mut SetAdmins); 7] = [
            |r| r.cluster = ClusterId([8; 32]),
            |r| r.version = 1,
            |r| r.admins.swap(0, 1),
            |r| r.admin_quorum = 1,
            |r| r.request_id[0] = 9,
            |r| r.created += 1,
            |r| r.expiry += 1,
        ];
        for change in changes {
            let mut r = base.clone();
            change(&mut r);
            assert_ne!(r.hash(), base.hash());
        }
        let h = base.hash();
        let m = admins_set_message(&base.cluster, 1, 1, &h);
        assert!(m.starts_with(ADMINS_SET_DOMAIN));
        assert_ne!(m, admins_set_message(&base.cluster, 2, 1, &h));
        assert_ne!(m, admins_set_message(&base.cluster, 1, 2, &h));
    }
}
