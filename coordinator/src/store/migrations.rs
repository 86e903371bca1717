//! The schema: numbered migrations, each applied once in its own transaction. Each is written
//! once in SQLite's types; PostgreSQL's text is the same with `BIGINT` and `BYTEA`.

/// One migration: its number and its SQL (SQLite types).
pub(super) struct Migration {
    pub(super) version: i64,
    sql: &'static str,
}

impl Migration {
    /// Its SQL for SQLite.
    pub(super) fn sqlite(&self) -> &'static str {
        self.sql
    }

    /// Its SQL for PostgreSQL: the same statements with PostgreSQL's integer and byte types.
    pub(super) fn postgres(&self) -> String {
        self.sql
            .replace("INTEGER", "BIGINT")
            .replace("BLOB", "BYTEA")
    }
}

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: "CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, entry BLOB NOT NULL,
            prev_hash BLOB NOT NULL, hash BLOB NOT NULL)",
    },
    Migration {
        version: 2,
        sql: "CREATE TABLE cluster (
                id INTEGER PRIMARY KEY CHECK (id = 1), genesis TEXT NOT NULL,
                state TEXT NOT NULL, detail TEXT NOT NULL, updated INTEGER NOT NULL);
            CREATE TABLE keys (
                key_id TEXT PRIMARY KEY, scheme TEXT NOT NULL, threshold INTEGER NOT NULL,
                public_key BLOB NOT NULL, chain_code BLOB, policy TEXT NOT NULL,
                created INTEGER NOT NULL);
            CREATE TABLE requests (
                idem_key TEXT PRIMARY KEY, kind TEXT NOT NULL, request_hash BLOB NOT NULL, request TEXT NOT NULL,
                request_id TEXT NOT NULL,
                state TEXT NOT NULL, response TEXT, lease_until INTEGER NOT NULL,
                created INTEGER NOT NULL, updated INTEGER NOT NULL);
            CREATE INDEX requests_state ON requests (state, lease_until);
            CREATE UNIQUE INDEX requests_request_id ON requests (request_id);
            CREATE TABLE presignatures (
                id BLOB PRIMARY KEY, key_id TEXT NOT NULL, path TEXT NOT NULL,
                quorum TEXT NOT NULL, state TEXT NOT NULL, created INTEGER NOT NULL,
                claimed_at INTEGER);
            CREATE INDEX presignatures_ready ON presignatures (key_id, path, quorum, state);",
    },
    // ADR 0013: each key's receipts, signed by every participant's node key (JSON of
    // `api::KeyReceipts`); NULL for none.
    Migration {
        version: 3,
        sql: "ALTER TABLE keys ADD COLUMN receipts TEXT",
    },
    // ADR 0017: API credentials (`expires` and `revoked` are 0 for none), the nonces of calls
    // served, and the credential that submitted each request.
    Migration {
        version: 4,
        sql: "CREATE TABLE credentials (
                name TEXT PRIMARY KEY, public_key BLOB NOT NULL, role TEXT NOT NULL,
                created INTEGER NOT NULL, expires INTEGER NOT NULL, revoked INTEGER NOT NULL,
                registered_by TEXT NOT NULL);
            CREATE UNIQUE INDEX credentials_public_key ON credentials (public_key);
            CREATE TABLE api_nonces (
                credential TEXT NOT NULL, nonce BLOB NOT NULL, expires INTEGER NOT NULL,
                PRIMARY KEY (credential, nonce));
            CREATE INDEX api_nonces_expires ON api_nonces (expires);
            ALTER TABLE requests ADD COLUMN credential TEXT;",
    },
    // Issue 19: a key's resharing that has not finished everywhere (JSON of the approved
    // `api::ReshareKeyJson`), resolved before the key is reshared again; NULL for none.
    Migration {
        version: 5,
        sql: "ALTER TABLE keys ADD COLUMN pending TEXT",
    },
    // Issue 19: a key's refresh schedule (seconds, 0: off, as the admins last approved it),
    // when its current generation was stored, and when its pending resharing was recorded
    // (0: none): the background pass refreshes keys that are due and resolves resharings left
    // unfinished.
    Migration {
        version: 6,
        sql: "ALTER TABLE keys ADD COLUMN refresh_every INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE keys ADD COLUMN refreshed INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE keys ADD COLUMN pending_since INTEGER NOT NULL DEFAULT 0;",
    },
    // Issue 20: the version of a key's approval policy (0 until the admins first replace its
    // approvers; `policy` holds the current one).
    Migration {
        version: 7,
        sql: "ALTER TABLE keys ADD COLUMN policy_version INTEGER NOT NULL DEFAULT 0",
    },
    // Issue 20: every change of the cluster's admin set, by the admin version it makes (from
    // 1; the genesis' admins are version 0): the approved request (JSON of
    // `api::ApprovedJson<api::SetAdminsJson>`), its SHA-256, and each node's statement that it
    // applied it (JSON object: node index -> signature, hex).
    Migration {
        version: 8,
        sql: "CREATE TABLE admin_changes (
                version INTEGER PRIMARY KEY CHECK (version >= 1), request TEXT NOT NULL,
                request_hash BLOB NOT NULL, statements TEXT NOT NULL,
                created_at INTEGER NOT NULL)",
    },
    // Issue 20 (image rotation): every change of the set of enclave images the cluster
    // accepts, by the image version it makes (from 1; the genesis' image alone is version 0),
    // as `admin_changes` holds the admin set's: the approved request (JSON of
    // `api::ApprovedJson<api::AcceptImagesJson>`), its SHA-256, and each node's statement that
    // it applied it.
    Migration {
        version: 9,
        sql: "CREATE TABLE image_changes (
                version INTEGER PRIMARY KEY CHECK (version >= 1), request TEXT NOT NULL,
                request_hash BLOB NOT NULL, statements TEXT NOT NULL,
                created_at INTEGER NOT NULL)",
    },
    // Issue 20 (membership): every roster change proposed to the nodes, by its SHA-256 (the
    // admins may replace a proposal before it is committed, so one version may have several):
    // the roster version it makes, the approved request (JSON of
    // `api::ApprovedJson<api::ChangeRosterJson>`), and each node's statement that it holds it
    // as proposed (JSON object: node index in the roster in force -> signature, hex).
    Migration {
        version: 10,
        sql: "CREATE TABLE roster_proposals (
                request_hash BLOB PRIMARY KEY, version INTEGER NOT NULL CHECK (version >= 1),
                request TEXT NOT NULL, statements TEXT NOT NULL,
                created_at INTEGER NOT NULL)",
    },
    // Issue 20 (membership): every committed roster change, by the roster version it makes
    // (from 1; the genesis' roster is version 0): the change's SHA-256 (a recorded proposal),
    // the parent proxy of each node of the new roster and of the roster it replaced (JSON
    // arrays by index), and the commit's answer (JSON of `api::RosterCommitResult`, every
    // node's word kept across runs of the commit).
    Migration {
        version: 11,
        sql: "CREATE TABLE roster_commits (
                version INTEGER PRIMARY KEY CHECK (version >= 1), request_hash BLOB NOT NULL,
                proxies TEXT NOT NULL, replaced TEXT NOT NULL, result TEXT NOT NULL,
                created_at INTEGER NOT NULL)",
    },
    // Issue 21: the transactional outbox. One row per event (`events::Event`, JSON), written
    // in the transaction of what it reports, in commit order (`seq`); `audit_seq` is the audit
    // record it reports (0: none), `sent` when the broker confirmed it (0: not yet).
    Migration {
        version: 12,
        sql: "CREATE TABLE outbox (
                seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL, routing_key TEXT NOT NULL,
                body TEXT NOT NULL, audit_seq INTEGER NOT NULL, created INTEGER NOT NULL,
                sent INTEGER NOT NULL);
            CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent = 0;
            CREATE INDEX outbox_created ON outbox (created);",
    },
];

/// The latest schema version this build knows.
pub fn latest_schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn postgres_schema_uses_its_own_types() {
        let v2 = MIGRATIONS[1].postgres();
        assert!(v2.contains("threshold BIGINT NOT NULL"), "{v2}");
        assert!(v2.contains("id BYTEA PRIMARY KEY"), "{v2}");
        assert!(!v2.contains("INTEGER") && !v2.contains("BLOB"), "{v2}");
    }
}
