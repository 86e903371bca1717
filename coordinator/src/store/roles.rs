//! The coordinator's own PostgreSQL role, with least privilege (issue 23): it reads and writes
//! the rows the coordinator needs and nothing more — no schema change, and the audit log is
//! append-only to it (`SELECT, INSERT`: a coordinator taken over cannot rewrite or shorten the
//! history it wrote). The schema's owner (on RDS, the master user) runs the migrations and
//! grants this role its rights ([`Store::grant_app_role`], `cohort-coordinator --store-grant
//! ROLE`); the coordinator then connects as the role (on AWS with an IAM authentication token,
//! so it holds no password) and applies no migration itself.

use super::{Conn, Store, StoreError};

/// Each table the coordinator uses and the rights its role gets on it. Every table of the
/// schema is listed (a test checks it), so a new table without its line fails the tests.
pub const APP_PRIVILEGES: &[(&str, &str)] = &[
    ("schema_migrations", "SELECT"),
    ("audit_log", "SELECT, INSERT"),
    ("cluster", "SELECT, INSERT, UPDATE"),
    ("keys", "SELECT, INSERT, UPDATE"),
    ("requests", "SELECT, INSERT, UPDATE, DELETE"),
    ("presignatures", "SELECT, INSERT, UPDATE, DELETE"),
    ("credentials", "SELECT, INSERT, UPDATE"),
    ("api_nonces", "SELECT, INSERT, DELETE"),
    ("admin_changes", "SELECT, INSERT, UPDATE"),
    ("image_changes", "SELECT, INSERT, UPDATE"),
    ("roster_proposals", "SELECT, INSERT, UPDATE"),
    ("roster_commits", "SELECT, INSERT, UPDATE"),
    ("outbox", "SELECT, INSERT, UPDATE, DELETE"),
];

/// A role name we quote ourselves: lower-case letters, digits and `_`, starting with a letter
/// or `_`, at most 63 bytes (PostgreSQL's limit), not a `pg_` name.
fn check_role(role: &str) -> Result<(), StoreError> {
    let ok = !role.is_empty()
        && role.len() <= 63
        && !role.starts_with("pg_")
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !role.as_bytes()[0].is_ascii_digit();
    match ok {
        true => Ok(()),
        false => Err(StoreError::BadRole(role.chars().take(64).collect())),
    }
}

impl Store {
    /// Makes `role` (a login role, made if it does not exist) the coordinator's role on this
    /// schema: usage of the schema and exactly [`APP_PRIVILEGES`] on its tables, whatever it
    /// held before. With `iam`, it also gets RDS's `rds_iam` (it then logs in with an IAM
    /// authentication token only). Nobody but the owner may create objects in the schema
    /// (`CREATE` is revoked from `PUBLIC`: otherwise the coordinator's role could plant a
    /// function or table that the owner's next migration resolves through its search path).
    /// An existing role that holds more than this — an attribute, another role's membership,
    /// an object of its own — is refused ([`StoreError::BadRole`]), and so is a schema newer
    /// than this coordinator ([`StoreError::SchemaAhead`]: its grant would take away rights the
    /// newer coordinators need). Run as the schema's owner, after the migrations (opening the
    /// store ran them); asked again, it changes nothing. PostgreSQL only.
    pub fn grant_app_role(&mut self, role: &str, iam: bool) -> Result<(), StoreError> {
        check_role(role)?;
        let Conn::Postgres(client) = &mut self.conn else {
            return Err(StoreError::NoRoles);
        };
        let mut tx = client.transaction()?;
        tx.batch_execute("SET LOCAL lock_timeout = '60s'")?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&super::LOCK_KEY])?;
        let known = super::latest_schema_version();
        let newest: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )?
            .get(0);
        if newest > known {
            return Err(StoreError::SchemaAhead {
                schema: newest,
                known,
            });
        }
        let me: String = tx.query_one("SELECT current_user::text", &[])?.get(0);
        if me == role {
            return Err(StoreError::BadRole(format!(
                "{role} is the role running the grant (the schema's owner), not another one"
            )));
        }
        let schema: String = tx.query_one("SELECT current_schema()::text", &[])?.get(0);
        let database: String = tx.query_one("SELECT current_database()::text", &[])?.get(0);
        let attributes: Option<bool> = tx
            .query_opt(
                "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls OR rolreplication
                 FROM pg_roles WHERE rolname = $1",
                &[&role],
            )?
            .map(|r| r.get(0));
        match attributes {
            None => tx.batch_execute(&format!("CREATE ROLE \"{role}\" LOGIN"))?,
            Some(true) => {
                return Err(StoreError::BadRole(format!(
                    "{role} exists with more than a login (superuser, createrole, createdb, bypassrls or replication)"
                )));
            }
            Some(false) => {
                let member_of: Vec<String> = tx
                    .query(
                        "SELECT b.rolname::text FROM pg_auth_members m
                         JOIN pg_roles r ON m.member = r.oid JOIN pg_roles b ON m.roleid = b.oid
                         WHERE r.rolname = $1 AND b.rolname <> 'rds_iam' ORDER BY 1",
                        &[&role],
                    )?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                if !member_of.is_empty() {
                    return Err(StoreError::BadRole(format!(
                        "{role} exists as a member of {}",
                        member_of.join(", ")
                    )));
                }
                let owns: i64 = tx
                    .query_one(
                        "SELECT (SELECT count(*) FROM pg_class c JOIN pg_roles r ON c.relowner = r.oid WHERE r.rolname = $1)
                              + (SELECT count(*) FROM pg_namespace n JOIN pg_roles r ON n.nspowner = r.oid WHERE r.rolname = $1)
                              + (SELECT count(*) FROM pg_proc p JOIN pg_roles r ON p.proowner = r.oid WHERE r.rolname = $1)
                              + (SELECT count(*) FROM pg_type t JOIN pg_roles r ON t.typowner = r.oid WHERE r.rolname = $1)",
                        &[&role],
                    )?
                    .get(0);
                if owns > 0 {
                    return Err(StoreError::BadRole(format!(
                        "{role} exists and owns {owns} objects in this database"
                    )));
                }
            }
        }
        if iam {
            tx.batch_execute(&format!("GRANT rds_iam TO \"{role}\""))?;
        }
        let schema = schema.replace('"', "\"\"");
        let database = database.replace('"', "\"\"");
        tx.batch_execute(&format!(
            "REVOKE CREATE ON SCHEMA \"{schema}\" FROM PUBLIC;
             REVOKE CREATE ON SCHEMA \"{schema}\" FROM \"{role}\";
             REVOKE CREATE ON DATABASE \"{database}\" FROM \"{role}\";
             GRANT USAGE ON SCHEMA \"{schema}\" TO \"{role}\";
             REVOKE ALL ON ALL TABLES IN SCHEMA \"{schema}\" FROM \"{role}\";
             REVOKE ALL ON ALL SEQUENCES IN SCHEMA \"{schema}\" FROM \"{role}\";
             REVOKE ALL ON ALL FUNCTIONS IN SCHEMA \"{schema}\" FROM \"{role}\";"
        ))?;
        for (table, rights) in APP_PRIVILEGES {
            tx.batch_execute(&format!(
                "GRANT {rights} ON \"{schema}\".{table} TO \"{role}\""
            ))?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_refused_unless_plain() {
        for good in ["cohort_app", "_x", "a1"] {
            assert!(check_role(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Cohort",
            "1abc",
            "pg_monitor",
            "a\"; DROP TABLE keys; --",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(check_role(bad), Err(StoreError::BadRole(_))),
                "{bad}"
            );
        }
    }
}
