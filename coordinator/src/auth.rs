//! Who is calling (ADR 0017): the credential check every route but `/healthz`, `/readyz` and
//! `/metrics` passes before it does anything, and the role each route needs.
//!
//! The check runs in two halves around reading the body. [`precheck`] needs neither the body
//! nor the store: the header parses and its timestamp is within [`MAX_SKEW_SECS`]. Nothing it
//! answers depends on which credentials exist, so names cannot be probed by what comes back
//! before the signature (a content type, a size). [`verify`] runs once the body is in, at the
//! time it is in: the timestamp again, the credential (known, not revoked), the signature over
//! method, path, `Idempotency-Key`, body digest, timestamp and nonce, the credential's end, the
//! role, and last the nonce, recorded only if the credential is still active in the same
//! transaction: a revocation that commits while a slow body is read wins. A refused call
//! changes nothing.

use ed25519_dalek::{Signature, VerifyingKey};
use http::HeaderMap;

use crate::api::{ApiError, AuthHeader, ErrorCode, MAX_SKEW_SECS, Role, signing_bytes};
use crate::service::{Coordinator, unix_now};
use crate::store::NonceUse;

/// How long a used nonce is remembered past its timestamp: the timestamp's own window, and as
/// much again for coordinators whose clocks differ (each prunes by its own clock).
pub const NONCE_MEMORY_SECS: u64 = 2 * MAX_SKEW_SECS + 1;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The credential's name.
    pub credential: String,
    /// Its role.
    pub role: Role,
}

/// The role a route needs (by method and route pattern); `None` for the public routes. Every
/// route is named; one this list does not know needs `admin` (a route added later is closed
/// until it is placed here).
pub fn required_role(method: &str, pattern: &str) -> Option<Role> {
    match (method, pattern) {
        ("GET", "/healthz" | "/readyz" | "/metrics") => None,
        (
            "GET",
            "/openapi.json"
            | "/v1/cluster"
            | "/v1/keys"
            | "/v1/keys/{key_id}"
            | "/v1/keys/{key_id}/address"
            | "/v1/keys/{key_id}/backups"
            | "/v1/signatures/{idempotency_key}"
            | "/v1/audit"
            | "/v1/audit/verify",
        ) => Some(Role::Read),
        (
            "POST",
            "/v1/keys"
            | "/v1/keys/import"
            | "/v1/keys/{key_id}/reshare"
            | "/v1/signatures"
            | "/v1/transactions"
            | "/v1/transactions/assemble",
        ) => Some(Role::Request),
        _ => Some(Role::Admin),
    }
}

fn refuse(code: ErrorCode, message: &str) -> ApiError {
    ApiError::new(code, message)
}

fn stale() -> ApiError {
    refuse(
        ErrorCode::StaleRequest,
        "the call's timestamp is more than 60 s from the coordinator's clock: sign it again",
    )
}

/// A call whose header parsed and whose timestamp was fresh.
pub struct Pending {
    header: AuthHeader,
}

/// The half of the check that needs no body and no store.
pub fn precheck(headers: &HeaderMap, now: u64) -> Result<Pending, ApiError> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| {
            refuse(
                ErrorCode::Unauthenticated,
                "this route needs a credential: sign the call (Authorization: Cohort-Ed25519 ...)",
            )
        })?
        .to_str()
        .ok()
        .and_then(AuthHeader::parse)
        .ok_or_else(|| {
            refuse(
                ErrorCode::Unauthenticated,
                "the Authorization header is not `Cohort-Ed25519 credential=…, timestamp=…, nonce=…, signature=…`",
            )
        })?;
    if header.timestamp.abs_diff(now) > MAX_SKEW_SECS {
        return Err(stale());
    }
    Ok(Pending { header })
}

fn bad_credential() -> ApiError {
    refuse(
        ErrorCode::BadCredential,
        "the credential is unknown or revoked, or the signature does not verify",
    )
}

/// The call as signed: method, path and query, `Idempotency-Key`, body.
pub struct Signed<'a> {
    /// The method.
    pub method: &'a str,
    /// The path with its query, as sent.
    pub path_and_query: &'a str,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// The half of the check that needs the body; records the nonce once everything holds.
pub async fn verify(
    c: &Coordinator,
    pending: Pending,
    call: Signed<'_>,
    needed: Role,
) -> Result<Caller, ApiError> {
    let Pending { header } = pending;
    // The clock now, not when the headers came: a body may take a while.
    let now = unix_now();
    if header.timestamp.abs_diff(now) > MAX_SKEW_SECS {
        return Err(stale());
    }
    let row = signed_by(c, &header, &call, needed, now).await?;
    let expires = header.timestamp + NONCE_MEMORY_SECS;
    let (name, nonce) = (header.credential.clone(), header.nonce);
    match c
        .db(move |s| s.use_nonce(&name, &nonce, expires, now))
        .await?
    {
        NonceUse::Fresh => Ok(Caller {
            credential: row.name,
            role: row.role,
        }),
        NonceUse::Replayed => Err(refuse(
            ErrorCode::Replayed,
            "this call was served before (its nonce was used): sign a new one",
        )),
        // Revoked (or past its end) since the lookup: the store's word is the last.
        NonceUse::Inactive => Err(bad_credential()),
    }
}

/// The check of a message from the broker's intake queue (issue 21), signed as a call is
/// with the method `AMQP`. A message may wait in the queue: its timestamp may be up to
/// `max_age` seconds old (and at most [`MAX_SKEW_SECS`] ahead). It is redelivered with the same
/// nonce, so no nonce is recorded: the idempotency key, which the signature covers and which
/// the intake requires, makes a replayed message the same request, answered from its record.
pub async fn verify_message(
    c: &Coordinator,
    header: &AuthHeader,
    call: Signed<'_>,
    needed: Role,
    max_age: u64,
) -> Result<Caller, ApiError> {
    let now = unix_now();
    if header.timestamp > now + MAX_SKEW_SECS || header.timestamp + max_age < now {
        return Err(refuse(
            ErrorCode::StaleRequest,
            "the message's timestamp is older than --amqp-max-age or ahead of the coordinator's clock: sign it again",
        ));
    }
    if call.idempotency_key.is_none() {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "a message needs its idempotency key (message_id)",
        ));
    }
    let row = signed_by(c, header, &call, needed, now).await?;
    Ok(Caller {
        credential: row.name,
        role: row.role,
    })
}

/// The credential that signed `call`, if it is active and its role allows `needed`.
async fn signed_by(
    c: &Coordinator,
    header: &AuthHeader,
    call: &Signed<'_>,
    needed: Role,
    now: u64,
) -> Result<crate::store::CredentialRow, ApiError> {
    let row = match c.credential_cached(&header.credential).await? {
        Some(row) if row.revoked.is_none() => row,
        _ => return Err(bad_credential()),
    };
    let key = <[u8; 32]>::try_from(row.public_key.as_slice())
        .ok()
        .and_then(|k| VerifyingKey::from_bytes(&k).ok())
        .ok_or_else(bad_credential)?;
    let bytes = signing_bytes(
        &header.credential,
        call.method,
        call.path_and_query,
        call.idempotency_key,
        call.body,
        header.timestamp,
        &header.nonce,
    );
    key.verify_strict(&bytes, &Signature::from_bytes(&header.signature))
        .map_err(|_| bad_credential())?;
    if !row.active(now) {
        return Err(refuse(
            ErrorCode::CredentialExpired,
            "the credential's validity ended: ask an admin for a new one",
        ));
    }
    if !row.role.allows(needed) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "credential {} has role {}; this route needs {needed}",
                row.name, row.role
            ),
        ));
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each route's role, written out by hand (not derived from `required_role`): a route
    /// that moves to a weaker role, or a new route, fails here until it is placed on purpose.
    #[test]
    fn every_route_needs_the_role_written_here() {
        let expected: &[(&str, &str, Option<Role>)] = &[
            ("GET", "/healthz", None),
            ("GET", "/readyz", None),
            ("GET", "/metrics", None),
            ("GET", "/openapi.json", Some(Role::Read)),
            ("GET", "/v1/cluster", Some(Role::Read)),
            ("POST", "/v1/cluster/admins", Some(Role::Admin)),
            ("POST", "/v1/cluster/images", Some(Role::Admin)),
            ("POST", "/v1/cluster/roster", Some(Role::Admin)),
            ("POST", "/v1/cluster/roster/prepare", Some(Role::Admin)),
            ("POST", "/v1/cluster/roster/move", Some(Role::Admin)),
            ("POST", "/v1/cluster/roster/commit", Some(Role::Admin)),
            ("POST", "/v1/genesis", Some(Role::Admin)),
            ("POST", "/v1/recover", Some(Role::Admin)),
            ("POST", "/v1/nodes/{node}/enroll", Some(Role::Admin)),
            ("POST", "/v1/nodes/{node}/attest", Some(Role::Admin)),
            ("GET", "/v1/keys", Some(Role::Read)),
            ("POST", "/v1/keys", Some(Role::Request)),
            ("POST", "/v1/keys/import", Some(Role::Request)),
            ("GET", "/v1/keys/{key_id}", Some(Role::Read)),
            ("GET", "/v1/keys/{key_id}/address", Some(Role::Read)),
            ("GET", "/v1/keys/{key_id}/backups", Some(Role::Read)),
            ("POST", "/v1/keys/{key_id}/reshare", Some(Role::Request)),
            ("POST", "/v1/transactions", Some(Role::Request)),
            ("POST", "/v1/transactions/assemble", Some(Role::Request)),
            ("POST", "/v1/signatures", Some(Role::Request)),
            ("GET", "/v1/signatures/{idempotency_key}", Some(Role::Read)),
            ("GET", "/v1/audit", Some(Role::Read)),
            ("GET", "/v1/audit/verify", Some(Role::Read)),
            ("GET", "/v1/credentials", Some(Role::Admin)),
            ("POST", "/v1/credentials", Some(Role::Admin)),
            (
                "POST",
                "/v1/credentials/{credential}/revoke",
                Some(Role::Admin),
            ),
        ];
        assert_eq!(expected.len(), crate::http::ROUTES.len());
        for (method, pattern, role) in expected {
            assert!(
                crate::http::ROUTES.contains(&(*method, *pattern)),
                "{method} {pattern} is not a route"
            );
            assert_eq!(required_role(method, pattern), *role, "{method} {pattern}");
        }
        // Unknown routes are closed.
        assert_eq!(required_role("POST", "/v1/new"), Some(Role::Admin));
        assert_eq!(required_role("GET", "/v1/new"), Some(Role::Admin));
    }
}
