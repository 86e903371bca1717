//! Early refusals: the validity window and approvals (the same rules as the enclaves',
//! [`protocol::policy`]), and the shape of the public keys a request names.

use protocol::policy::{self, Approval, Canonical, PolicyViolation};

use protocol::genesis::ClusterId;

use super::admins::AdminSet;
use super::{err, unix_now};
use crate::api::{ApiError, ErrorCode, GenesisBody, Hex};

/// Checks a key-creation or signing request's version (`v`, where `version` is the one
/// supported: [`policy::REQUEST_VERSION`], [`policy::SIGN_REQUEST_VERSION`]) and the cluster id
/// it names, as the enclaves will: an approval made for another cluster is refused here
/// already.
pub(super) fn check_version_and_cluster(
    (v, version): (u8, u8),
    cluster: &ClusterId,
    genesis: &GenesisBody,
) -> Result<(), ApiError> {
    if v != version {
        return Err(err(
            ErrorCode::InvalidRequest,
            format!("request version {v} is not supported (this cluster takes version {version})"),
        ));
    }
    match genesis.cluster_id() {
        Some(ours) if ours == *cluster => Ok(()),
        Some(ours) => Err(err(
            ErrorCode::InvalidRequest,
            format!("other_cluster: the request names cluster {cluster}; this cluster is {ours}"),
        )),
        None => Err(err(
            ErrorCode::InvalidRequest,
            "legacy_genesis: this cluster's genesis has no roster; requests cannot name it",
        )),
    }
}

/// Checks approvals as the enclaves will; returns the distinct approvers (hex, in order).
pub(super) fn check_approvals<T: Canonical>(
    request: &T,
    approvals: &[Approval],
    allowed: &[[u8; 32]],
    needed: u16,
) -> Result<Vec<String>, ApiError> {
    policy::check_approvals(request, approvals, allowed, needed)
        .map(|seen| seen.into_iter().map(hex::encode).collect())
        .map_err(|v| err(ErrorCode::Unapproved, v.to_string()))
}

/// The refusal of an admin request approved under another admin version than the one in
/// force, `current` (issue 20): `stale_admins`, as the enclaves' own refusal starts.
pub(super) fn stale_admins(named: u32, current: u32) -> ApiError {
    err(
        ErrorCode::Unapproved,
        format!(
            "stale_admins: the request was approved under admin version {named}; the cluster's \
             admins are version {current} (GET /v1/cluster): have it approved under that version"
        ),
    )
}

/// Checks an admin request (a key creation, import or resharing) against the admin set in
/// force, `set`, as the enclaves will: it names that set's version (`named`) and carries its
/// quorum's approvals. Returns the distinct approvers (hex, in order).
pub(super) fn check_admin_approvals<T: Canonical>(
    request: &T,
    named: u32,
    approvals: &[Approval],
    set: &AdminSet,
) -> Result<Vec<String>, ApiError> {
    if named != set.version {
        return Err(stale_admins(named, set.version));
    }
    let admins = keys_of(&set.admins, "admin")?;
    check_approvals(request, approvals, &admins, set.quorum)
}

/// Checks a request's validity window at `now`, as the enclaves will.
pub(super) fn check_window(created: u64, expiry: u64, now: u64) -> Result<(), ApiError> {
    policy::check_window(created, expiry, now).map_err(|v| match v {
        PolicyViolation::Expired => err(ErrorCode::RequestExpired, "the request has expired"),
        PolicyViolation::FromTheFuture => err(
            ErrorCode::RequestExpired,
            "the request was made in the future",
        ),
        _ => err(
            ErrorCode::InvalidRequest,
            format!(
                "a request is valid for at most {} s",
                policy::MAX_REQUEST_VALIDITY_SECS
            ),
        ),
    })
}

/// Holds a request created ahead of this clock (inside the skew allowance that
/// [`check_window`] grants) until its creation time: enclaves take a request's creation time as
/// a "not before" (single use across restarts, issue 18) and would refuse it until then.
pub(super) async fn not_before(created: u64) {
    let now = unix_now();
    if created > now {
        let wait = (created - now).min(policy::MAX_CLOCK_SKEW_SECS);
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
}

/// Parses the 32-byte Ed25519 public keys a request names (`what`: admin, approver).
pub(super) fn keys_of(hexes: &[Hex], what: &str) -> Result<Vec<[u8; 32]>, ApiError> {
    hexes
        .iter()
        .map(|h| {
            let key: [u8; 32] = h.0.as_slice().try_into().map_err(|_| {
                err(
                    ErrorCode::InvalidRequest,
                    format!("{what} keys are 32-byte Ed25519 public keys"),
                )
            })?;
            ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| {
                err(
                    ErrorCode::InvalidRequest,
                    format!("a {what} key is not a valid point"),
                )
            })?;
            Ok(key)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::policy::MAX_REQUEST_VALIDITY_SECS;

    #[test]
    fn windows() {
        assert!(check_window(100, 200, 150).is_ok());
        assert_eq!(
            check_window(100, 200, 200).unwrap_err().code,
            ErrorCode::RequestExpired
        );
        assert_eq!(
            check_window(100, 100 + MAX_REQUEST_VALIDITY_SECS + 1, 150)
                .unwrap_err()
                .code,
            ErrorCode::InvalidRequest
        );
    }
}
