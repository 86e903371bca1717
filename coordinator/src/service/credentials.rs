//! API credentials (ADR 0017): registering, revoking and listing them, and the admins named
//! by `--admin-key` at start. Every change is one transaction with its audit record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;

use super::{Coordinator, err, unix_now};
use crate::api::{
    ApiError, CredentialInfo, ErrorCode, Hex, PublicCredential, RegisterCredential, Role,
    valid_name,
};
use crate::audit::AuditEntry;
use crate::auth::Caller;
use crate::store::{CredentialRow, Registered, Revoked};

/// The registrar of the credentials named by `--admin-key` (a name no credential may take).
pub const BOOTSTRAP: &str = "bootstrap";

/// How long a credential read from the store is used for the signature check. Revocation
/// still takes effect at once: the nonce is recorded only if the store says the credential is
/// active ([`crate::store::NonceUse`]).
pub const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(2);

/// Most names the cache holds; past that it starts again empty.
const CREDENTIAL_CACHE_MAX: usize = 4096;

/// Latest `expires` accepted (the end of year 9999): stored as a signed 64-bit integer.
pub const MAX_EXPIRES: u64 = 253_402_300_799;

/// Credentials (or their absence) as last read, with when.
pub(super) type CredentialCache = HashMap<String, (Instant, Option<CredentialRow>)>;

/// Checks a credential's name and public key (a valid Ed25519 point, not a weak one).
pub fn check_public_credential(c: &PublicCredential) -> Result<(), ApiError> {
    if c.credential == BOOTSTRAP {
        return Err(err(
            ErrorCode::InvalidRequest,
            "`bootstrap` names the --admin-key registrar in the audit log: choose another name",
        ));
    }
    if !valid_name(&c.credential) {
        return Err(err(
            ErrorCode::InvalidRequest,
            "a credential name has 1 to 64 characters from a-z 0-9 . _ -, starting with a letter or digit",
        ));
    }
    let key = <[u8; 32]>::try_from(c.public_key.0.as_slice())
        .ok()
        .and_then(|k| VerifyingKey::from_bytes(&k).ok())
        .ok_or_else(|| {
            err(
                ErrorCode::InvalidRequest,
                "public_key is not a 32-byte Ed25519 public key",
            )
        })?;
    if key.is_weak() {
        return Err(err(
            ErrorCode::InvalidRequest,
            "public_key is a small-order point",
        ));
    }
    Ok(())
}

fn caller_inactive() -> ApiError {
    err(
        ErrorCode::BadCredential,
        "the credential asking was revoked or ended while the call was read",
    )
}

fn info(row: CredentialRow) -> CredentialInfo {
    CredentialInfo {
        credential: row.name,
        public_key: Hex(row.public_key),
        role: row.role,
        created: row.created,
        expires: row.expires,
        revoked: row.revoked,
        registered_by: row.registered_by,
    }
}

fn entry(action: &str, by: &str, detail: String, outcome: &str) -> AuditEntry {
    AuditEntry {
        action: action.into(),
        actors: vec![],
        key_id: None,
        payload_digests: vec![],
        path: vec![],
        nodes: vec![],
        outcome: outcome.into(),
        request_id: None,
        credential: Some(by.into()),
        detail: Some(detail),
    }
}

impl Coordinator {
    /// `POST /v1/credentials`.
    pub async fn register_credential(
        self: &Arc<Self>,
        body: RegisterCredential,
        by: &Caller,
    ) -> Result<CredentialInfo, ApiError> {
        let public = PublicCredential {
            credential: body.credential.clone(),
            public_key: body.public_key.clone(),
        };
        check_public_credential(&public)?;
        let now = unix_now();
        if body.expires.is_some_and(|e| e <= now || e > MAX_EXPIRES) {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!("expires must be after now and at most {MAX_EXPIRES} (year 9999)"),
            ));
        }
        let row = CredentialRow {
            name: body.credential,
            public_key: body.public_key.0,
            role: body.role,
            created: now,
            expires: body.expires,
            revoked: None,
            registered_by: by.credential.clone(),
        };
        self.insert_credential(row, Some(&by.credential)).await
    }

    /// Registers `row`; `by` is the admin asking (none for `--admin-key`).
    async fn insert_credential(
        &self,
        row: CredentialRow,
        by: Option<&str>,
    ) -> Result<CredentialInfo, ApiError> {
        let detail = format!(
            "{} role {} key {}",
            row.name,
            row.role,
            hex::encode(&row.public_key)
        );
        let audit = entry("register_credential", by.unwrap_or(BOOTSTRAP), detail, "ok");
        let (stored, caller) = (row.clone(), by.map(str::to_string));
        let outcome = self
            .db(move |s| s.insert_credential(&stored, caller.as_deref(), &audit))
            .await?;
        self.forget_credential(&row.name);
        match outcome {
            Registered::Done => Ok(info(row)),
            Registered::CallerInactive => Err(caller_inactive()),
            Registered::NameTaken => Err(err(
                ErrorCode::CredentialExists,
                format!(
                    "a credential named {} exists (revoked names stay taken)",
                    row.name
                ),
            )),
            Registered::KeyTaken => Err(err(
                ErrorCode::CredentialExists,
                "that public key belongs to another credential",
            )),
        }
    }

    /// `POST /v1/credentials/{credential}/revoke`.
    pub async fn revoke_credential(
        &self,
        name: &str,
        by: &Caller,
    ) -> Result<CredentialInfo, ApiError> {
        let audit = entry("revoke_credential", &by.credential, name.to_string(), "ok");
        let (n, caller) = (name.to_string(), by.credential.clone());
        let outcome = self
            .db(move |s| s.revoke_credential(&n, &caller, unix_now(), &audit))
            .await?;
        self.forget_credential(name);
        match outcome {
            Revoked::Done | Revoked::Already => {}
            Revoked::CallerInactive => return Err(caller_inactive()),
            Revoked::NotFound => {
                return Err(err(ErrorCode::NotFound, format!("no credential {name}")));
            }
            Revoked::LastAdmin => {
                return Err(err(
                    ErrorCode::LastAdmin,
                    format!(
                        "{name} is the last admin credential without an end: register another first"
                    ),
                ));
            }
        }
        let n = name.to_string();
        self.db(move |s| s.credential(&n))
            .await?
            .map(info)
            .ok_or_else(|| err(ErrorCode::NotFound, format!("no credential {name}")))
    }

    /// Credential `name` as the store had it at most [`CREDENTIAL_CACHE_TTL`] ago.
    pub async fn credential_cached(&self, name: &str) -> Result<Option<CredentialRow>, ApiError> {
        let cache = || {
            self.credential_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        if let Some((at, row)) = cache().get(name)
            && at.elapsed() < CREDENTIAL_CACHE_TTL
        {
            return Ok(row.clone());
        }
        let n = name.to_string();
        let row = self.db(move |s| s.credential(&n)).await?;
        let mut c = cache();
        if c.len() >= CREDENTIAL_CACHE_MAX {
            c.clear();
        }
        c.insert(name.to_string(), (Instant::now(), row.clone()));
        Ok(row)
    }

    fn forget_credential(&self, name: &str) {
        self.credential_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// `GET /v1/credentials`.
    pub async fn credentials(&self) -> Result<Vec<CredentialInfo>, ApiError> {
        Ok(self
            .db(|s| s.credentials())
            .await?
            .into_iter()
            .map(info)
            .collect())
    }

    /// Registers each `--admin-key` credential whose name is free. One whose name is taken
    /// with the same key is left as it is (revoked stays revoked); another key under the name,
    /// or the key under another name, is an error: the flag would not mean what it says.
    pub async fn bootstrap_admins(&self, admins: &[PublicCredential]) -> Result<(), ApiError> {
        for admin in admins {
            check_public_credential(admin)?;
            let name = admin.credential.clone();
            if let Some(row) = self.db(move |s| s.credential(&name)).await? {
                if row.public_key != admin.public_key.0 {
                    return Err(err(
                        ErrorCode::CredentialExists,
                        format!(
                            "credential {} exists with another public key",
                            admin.credential
                        ),
                    ));
                }
                if row.revoked.is_some() {
                    tracing::warn!(
                        credential = admin.credential,
                        "the --admin-key credential was revoked; it stays revoked"
                    );
                }
                continue;
            }
            let row = CredentialRow {
                name: admin.credential.clone(),
                public_key: admin.public_key.0.clone(),
                role: Role::Admin,
                created: unix_now(),
                expires: None,
                revoked: None,
                registered_by: BOOTSTRAP.into(),
            };
            match self.insert_credential(row, None).await {
                Ok(_) => {
                    tracing::info!(credential = admin.credential, "admin credential registered")
                }
                // Another coordinator starting with the same flag registered it meanwhile.
                Err(e) if e.code == ErrorCode::CredentialExists => {
                    let name = admin.credential.clone();
                    let same = self
                        .db(move |s| s.credential(&name))
                        .await?
                        .is_some_and(|r| r.public_key == admin.public_key.0);
                    if !same {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
