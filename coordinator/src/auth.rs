//! Who is calling (ADR 0017): the credential check every route but `/healthz`, `/readyz` and
//! `/metrics` passes before it does anything, and the role each route needs.
//!
//! The check runs in two halves around reading the body, so that an anonymous caller costs a
//! header parse and one lookup, never a body read: [`precheck`] (the header parses, the
//! timestamp is within [`MAX_SKEW_SECS`], the credential exists and is not revoked), then
//! [`verify`] (the signature over method, path, `Idempotency-Key`, body digest, timestamp and
//! nonce; the credential's validity; the role; the nonce never seen). A refused call changes
//! nothing: the nonce is recorded only once everything else holds.

use ed25519_dalek::{Signature, VerifyingKey};
use http::HeaderMap;

use crate::api::{ApiError, AuthHeader, ErrorCode, MAX_SKEW_SECS, Role, signing_bytes};
use crate::service::Coordinator;
use crate::store::CredentialRow;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The credential's name.
    pub credential: String,
    /// Its role.
    pub role: Role,
}

/// The role a route needs (by method and route pattern); `None` for the public routes.
pub fn required_role(method: &str, pattern: &str) -> Option<Role> {
    match (method, pattern) {
        ("GET", "/healthz" | "/readyz" | "/metrics") => None,
        (
            "POST",
            "/v1/genesis"
            | "/v1/nodes/{node}/enroll"
            | "/v1/nodes/{node}/attest"
            | "/v1/credentials"
            | "/v1/credentials/{credential}/revoke",
        )
        | ("GET", "/v1/credentials") => Some(Role::Admin),
        ("POST", _) => Some(Role::Request),
        _ => Some(Role::Read),
    }
}

fn refuse(code: ErrorCode, message: &str) -> ApiError {
    ApiError::new(code, message)
}

/// What [`precheck`] found: the parsed header and the credential it names.
pub struct Pending {
    header: AuthHeader,
    row: CredentialRow,
}

/// The half of the check that needs no body.
pub async fn precheck(c: &Coordinator, headers: &HeaderMap, now: u64) -> Result<Pending, ApiError> {
    let value = headers
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
    if value.timestamp.abs_diff(now) > MAX_SKEW_SECS {
        return Err(refuse(
            ErrorCode::StaleRequest,
            "the call's timestamp is more than 60 s from the coordinator's clock: sign it again",
        ));
    }
    let name = value.credential.clone();
    let row = c.db(move |s| s.credential(&name)).await?;
    match row {
        Some(row) if row.revoked.is_none() => Ok(Pending { header: value, row }),
        _ => Err(bad_credential()),
    }
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
    now: u64,
) -> Result<Caller, ApiError> {
    let Pending { header, row } = pending;
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
    // Remembered until the timestamp itself is too old to be accepted.
    let expires = header.timestamp + MAX_SKEW_SECS + 1;
    let (name, nonce) = (header.credential.clone(), header.nonce);
    if !c
        .db(move |s| s.use_nonce(&name, &nonce, expires, now))
        .await?
    {
        return Err(refuse(
            ErrorCode::Replayed,
            "this call was served before (its nonce was used): sign a new one",
        ));
    }
    Ok(Caller {
        credential: row.name,
        role: row.role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_but_health_readiness_and_metrics_needs_a_role() {
        for (method, pattern) in crate::http::ROUTES {
            let role = required_role(method, pattern);
            let public = matches!(*pattern, "/healthz" | "/readyz" | "/metrics");
            assert_eq!(role.is_none(), public, "{method} {pattern}");
        }
        assert_eq!(required_role("GET", "/v1/audit"), Some(Role::Read));
        assert_eq!(required_role("GET", "/openapi.json"), Some(Role::Read));
        assert_eq!(required_role("POST", "/v1/signatures"), Some(Role::Request));
        assert_eq!(required_role("POST", "/v1/keys"), Some(Role::Request));
        assert_eq!(required_role("POST", "/v1/genesis"), Some(Role::Admin));
        assert_eq!(required_role("GET", "/v1/credentials"), Some(Role::Admin));
        assert_eq!(
            required_role("POST", "/v1/credentials/{credential}/revoke"),
            Some(Role::Admin)
        );
    }
}
