//! Persistence behind one interface: SQLite in the data directory by default, PostgreSQL (by URL)
//! when several coordinators share one database. Schema migrations are numbered and applied once,
//! each in its own transaction.

use crate::audit::{AuditEntry, AuditRecord, decode_entry, encode_entry, record_hash};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("postgres: {0}")]
    Postgres(#[from] postgres::Error),
    /// The URL names no known backend.
    #[error("unsupported store url `{0}` (expected sqlite:PATH or postgres://...)")]
    BadUrl(String),
    /// Stored data does not decode.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// One migration: its number and its SQL for each backend.
struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sqlite: "CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, entry BLOB NOT NULL,
        prev_hash BLOB NOT NULL, hash BLOB NOT NULL)",
    postgres: "CREATE TABLE audit_log (
        seq BIGINT PRIMARY KEY, time BIGINT NOT NULL, entry BYTEA NOT NULL,
        prev_hash BYTEA NOT NULL, hash BYTEA NOT NULL)",
}];

/// The latest schema version this build knows.
pub fn latest_schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The coordinator's storage.
pub trait Store: Send {
    /// Appends an audit record, chained to the last one, atomically.
    fn append_audit(&mut self, time: u64, entry: &AuditEntry) -> Result<AuditRecord, StoreError>;
    /// Records with `seq > after`, in order, at most `limit`.
    fn audit_page(&mut self, after: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;
    /// The applied schema version.
    fn schema_version(&mut self) -> Result<i64, StoreError>;
}

/// Opens a store by URL: `sqlite:PATH` or `postgres://...`.
pub fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        Ok(Box::new(SqliteStore::open(std::path::Path::new(path))?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(PostgresStore::connect(url)?))
    } else {
        Err(StoreError::BadUrl(url.to_string()))
    }
}

fn hash32(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("stored hash is not 32 bytes".into()))
}

fn record(
    seq: i64,
    time: i64,
    entry: Vec<u8>,
    prev: Vec<u8>,
    hash: Vec<u8>,
) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: seq as u64,
        time: time as u64,
        entry: decode_entry(&entry).map_err(StoreError::Corrupt)?,
        prev_hash: hash32(prev)?,
        hash: hash32(hash)?,
    })
}

/// SQLite, one file.
pub struct SqliteStore {
    conn: rusqlite::Connection,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        let mut conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
            [],
        )?;
        for m in MIGRATIONS {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let done: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [m.version],
                |r| r.get(0),
            )?;
            if !done {
                tx.execute_batch(m.sqlite)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, strftime('%s','now'))",
                    [m.version],
                )?;
            }
            tx.commit()?;
        }
        Ok(Self { conn })
    }
}

impl Store for SqliteStore {
    fn append_audit(&mut self, time: u64, entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let last: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        let (seq, prev_hash) = match last {
            Some((s, h)) => (s as u64 + 1, hash32(h)?),
            None => (1, [0u8; 32]),
        };
        let hash = record_hash(seq, time, entry, &prev_hash);
        tx.execute(
            "INSERT INTO audit_log (seq, time, entry, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                seq as i64,
                time as i64,
                encode_entry(entry),
                prev_hash.to_vec(),
                hash.to_vec()
            ],
        )?;
        tx.commit()?;
        Ok(AuditRecord {
            seq,
            time,
            entry: entry.clone(),
            prev_hash,
            hash,
        })
    }

    fn audit_page(&mut self, after: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, time, entry, prev_hash, hash FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(rusqlite::params![after as i64, limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, time, entry, prev, hash) = row?;
            out.push(record(seq, time, entry, prev, hash)?);
        }
        Ok(out)
    }

    fn schema_version(&mut self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?)
    }
}

/// PostgreSQL, shared by several coordinators.
pub struct PostgresStore {
    client: postgres::Client,
}

/// Advisory-lock key serialising appends and migrations across coordinators.
const LOCK_KEY: i64 = 0x636f_686f_7274; // "cohort"

impl PostgresStore {
    /// Connects to `url` and migrates the database.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let client = postgres::Client::connect(url, postgres::NoTls)?;
        Self::from_client(client)
    }

    /// Uses an existing connection (tests set a private schema first) and migrates.
    pub fn from_client(mut client: postgres::Client) -> Result<Self, StoreError> {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )?;
        for m in MIGRATIONS {
            let done: bool = tx
                .query_one(
                    "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = $1)",
                    &[&m.version],
                )?
                .get(0);
            if !done {
                tx.batch_execute(m.postgres)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, EXTRACT(EPOCH FROM now())::BIGINT)",
                    &[&m.version],
                )?;
            }
        }
        tx.commit()?;
        Ok(Self { client })
    }
}

impl Store for PostgresStore {
    fn append_audit(&mut self, time: u64, entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        let mut tx = self.client.transaction()?;
        // Two coordinators appending at once take turns: the chain stays linear.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
        let last = tx.query_opt(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            &[],
        )?;
        let (seq, prev_hash) = match last {
            Some(row) => (row.get::<_, i64>(0) as u64 + 1, hash32(row.get(1))?),
            None => (1, [0u8; 32]),
        };
        let hash = record_hash(seq, time, entry, &prev_hash);
        tx.execute(
            "INSERT INTO audit_log (seq, time, entry, prev_hash, hash) VALUES ($1, $2, $3, $4, $5)",
            &[
                &(seq as i64),
                &(time as i64),
                &encode_entry(entry),
                &prev_hash.to_vec(),
                &hash.to_vec(),
            ],
        )?;
        tx.commit()?;
        Ok(AuditRecord {
            seq,
            time,
            entry: entry.clone(),
            prev_hash,
            hash,
        })
    }

    fn audit_page(&mut self, after: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = self.client.query(
            "SELECT seq, time, entry, prev_hash, hash FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&(after as i64), &i64::from(limit)],
        )?;
        rows.into_iter()
            .map(|r| record(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect()
    }

    fn schema_version(&mut self) -> Result<i64, StoreError> {
        Ok(self
            .client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )?
            .get(0))
    }
}

/// Verifies the whole audit log page by page; returns the number of records.
pub fn verify_log(
    store: &mut dyn Store,
) -> Result<Result<u64, crate::audit::BrokenLink>, StoreError> {
    let mut prev = (0u64, [0u8; 32]);
    loop {
        let page = store.audit_page(prev.0, 1000)?;
        if page.is_empty() {
            return Ok(Ok(prev.0));
        }
        match crate::audit::verify_chain(&page, prev) {
            Ok(last) => prev = last,
            Err(broken) => return Ok(Err(broken)),
        }
    }
}
