//! The credentials table (ADR 0017): API credentials with their roles, and the nonces of
//! calls already served. Both are shared by every coordinator on one database, so a credential
//! revoked through one is refused by all, and a call replayed to another is refused too.

use super::{LOCK_KEY, Row, Store, StoreError, Tx, Value};
use crate::api::Role;
use crate::audit::AuditEntry;

/// A credential as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    /// Its name.
    pub name: String,
    /// Its Ed25519 public key.
    pub public_key: Vec<u8>,
    /// Its role.
    pub role: Role,
    /// Unix seconds when it was registered.
    pub created: u64,
    /// Unix seconds after which it is refused (`None`: never).
    pub expires: Option<u64>,
    /// Unix seconds when it was revoked.
    pub revoked: Option<u64>,
    /// The credential that registered it.
    pub registered_by: String,
}

impl CredentialRow {
    /// Whether it may be used at `now`.
    pub fn active(&self, now: u64) -> bool {
        self.revoked.is_none() && self.expires.is_none_or(|e| now <= e)
    }
}

/// What registering a credential did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// It is registered.
    Done,
    /// The admin asking is revoked or expired by now (checked in the same transaction).
    CallerInactive,
    /// The name is taken (revoked credentials keep their names).
    NameTaken,
    /// The public key belongs to another credential.
    KeyTaken,
}

/// What revoking a credential did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// It is revoked now.
    Done,
    /// The admin asking is revoked or expired by now (checked in the same transaction).
    CallerInactive,
    /// It was revoked before.
    Already,
    /// No such credential.
    NotFound,
    /// It is the last admin credential without an end: revoking it would lock every admin
    /// out (sooner or later).
    LastAdmin,
}

/// What recording a call's nonce found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceUse {
    /// First use: recorded; the credential was active when it was.
    Fresh,
    /// Used before: a replayed call.
    Replayed,
    /// The credential is revoked or expired by now (since the call was checked).
    Inactive,
}

const COLUMNS: &str = "name, public_key, role, created, expires, revoked, registered_by";

/// `0` stands for "none" in the `expires` and `revoked` columns.
fn opt(v: i64) -> Option<u64> {
    (v > 0).then_some(v as u64)
}

fn credential_row(r: &Row) -> Result<CredentialRow, StoreError> {
    Ok(CredentialRow {
        name: r.text(0)?,
        public_key: r.bytes(1)?,
        role: r
            .text(2)?
            .parse()
            .map_err(|e: String| StoreError::Corrupt(e))?,
        created: r.int(3)? as u64,
        expires: opt(r.int(4)?),
        revoked: opt(r.int(5)?),
        registered_by: r.text(6)?,
    })
}

fn lock(tx: &mut Tx<'_>) -> Result<(), StoreError> {
    if let Tx::Postgres(tx) = tx {
        // Two coordinators changing credentials at once take turns (the last-admin check).
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
    }
    Ok(())
}

/// Whether credential `name` exists and may be used at `now`, read in `tx`.
fn active(tx: &mut Tx<'_>, name: &str, now: u64) -> Result<bool, StoreError> {
    Ok(get(tx, name)?.is_some_and(|r| r.active(now)))
}

fn get(tx: &mut Tx<'_>, name: &str) -> Result<Option<CredentialRow>, StoreError> {
    tx.query_opt(
        &format!("SELECT {COLUMNS} FROM credentials WHERE name = $1"),
        &[Value::Text(name.into())],
    )?
    .as_ref()
    .map(credential_row)
    .transpose()
}

impl Store {
    /// Registers a credential with its audit record, unless its name or key is taken or the
    /// registering admin (`row.registered_by`; none for the bootstrap) is no longer active.
    pub fn insert_credential(
        &mut self,
        row: &CredentialRow,
        caller: Option<&str>,
        entry: &AuditEntry,
    ) -> Result<Registered, StoreError> {
        self.transaction(|tx| {
            lock(tx)?;
            if let Some(caller) = caller
                && !active(tx, caller, row.created)?
            {
                return Ok(Registered::CallerInactive);
            }
            if get(tx, &row.name)?.is_some() {
                return Ok(Registered::NameTaken);
            }
            let n = tx.exec(
                &format!(
                    "INSERT INTO credentials ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, 0, $6)
                     ON CONFLICT DO NOTHING"
                ),
                &[
                    Value::Text(row.name.clone()),
                    Value::Bytes(row.public_key.clone()),
                    Value::Text(row.role.as_str().into()),
                    Value::Int(row.created as i64),
                    Value::Int(row.expires.unwrap_or(0) as i64),
                    Value::Text(row.registered_by.clone()),
                ],
            )?;
            if n == 0 {
                return Ok(Registered::KeyTaken);
            }
            tx.append_audit(row.created, entry)?;
            Ok(Registered::Done)
        })
    }

    /// A credential by name.
    pub fn credential(&mut self, name: &str) -> Result<Option<CredentialRow>, StoreError> {
        self.transaction(|tx| get(tx, name))
    }

    /// Every credential, by name.
    pub fn credentials(&mut self) -> Result<Vec<CredentialRow>, StoreError> {
        self.transaction(|tx| {
            tx.query(
                &format!("SELECT {COLUMNS} FROM credentials ORDER BY name"),
                &[],
            )?
            .iter()
            .map(credential_row)
            .collect()
        })
    }

    /// Revokes a credential at `now` with its audit record, unless it is the last admin
    /// credential without an end or `caller` is no longer active.
    pub fn revoke_credential(
        &mut self,
        name: &str,
        caller: &str,
        now: u64,
        entry: &AuditEntry,
    ) -> Result<Revoked, StoreError> {
        self.transaction(|tx| {
            lock(tx)?;
            if !active(tx, caller, now)? {
                return Ok(Revoked::CallerInactive);
            }
            let Some(row) = get(tx, name)? else {
                return Ok(Revoked::NotFound);
            };
            if row.revoked.is_some() {
                return Ok(Revoked::Already);
            }
            // Admins with an end do not count: one that expires in a second would leave no
            // admin a second later.
            if row.role == Role::Admin && row.active(now) && row.expires.is_none() {
                let others = tx
                    .query_opt(
                        "SELECT COUNT(*) FROM credentials WHERE role = 'admin' AND revoked = 0
                         AND expires = 0 AND name <> $1",
                        &[Value::Text(name.into())],
                    )?
                    .map_or(Ok(0), |r| r.int(0))?;
                if others == 0 {
                    return Ok(Revoked::LastAdmin);
                }
            }
            tx.exec(
                "UPDATE credentials SET revoked = $1 WHERE name = $2",
                &[Value::Int(now.max(1) as i64), Value::Text(name.into())],
            )?;
            tx.append_audit(now, entry)?;
            Ok(Revoked::Done)
        })
    }

    /// Records that `credential` used `nonce`, remembered until `expires`, if the credential
    /// is still active at `now` (a revocation that committed while the call was being read
    /// wins). Forgets nonces that expired before `now`.
    pub fn use_nonce(
        &mut self,
        credential: &str,
        nonce: &[u8],
        expires: u64,
        now: u64,
    ) -> Result<NonceUse, StoreError> {
        self.transaction(|tx| {
            tx.exec(
                "DELETE FROM api_nonces WHERE expires < $1",
                &[Value::Int(now as i64)],
            )?;
            if !active(tx, credential, now)? {
                return Ok(NonceUse::Inactive);
            }
            let n = tx.exec(
                "INSERT INTO api_nonces (credential, nonce, expires) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[
                    Value::Text(credential.into()),
                    Value::Bytes(nonce.to_vec()),
                    Value::Int(expires as i64),
                ],
            )?;
            Ok(if n == 1 {
                NonceUse::Fresh
            } else {
                NonceUse::Replayed
            })
        })
    }

    /// How many nonces are remembered.
    pub fn nonce_count(&mut self) -> Result<u64, StoreError> {
        self.transaction(|tx| {
            tx.query_opt("SELECT COUNT(*) FROM api_nonces", &[])?
                .map_or(Ok(0), |r| r.int(0))
                .map(|n| n as u64)
        })
    }
}
