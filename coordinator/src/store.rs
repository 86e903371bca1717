//! Persistence behind one interface: SQLite in the data directory by default, PostgreSQL (by URL)
//! when several coordinators share one database. Schema migrations are numbered and applied once,
//! each in its own transaction.
//!
//! Every operation is one transaction, written once for both backends over a small SQL layer
//! ([`Tx`]): the same statements (`$1`-style placeholders) run on SQLite and PostgreSQL; only the
//! table definitions and the presignature claim differ. A state change and the audit record that
//! describes it commit together, so a crash leaves either both or neither.

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
    /// The URL names no known backend (only its scheme is kept: a URL may hold a password).
    #[error("unsupported store url scheme `{0}` (expected sqlite:PATH or postgres://...)")]
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

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: "CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, entry BLOB NOT NULL,
            prev_hash BLOB NOT NULL, hash BLOB NOT NULL)",
        postgres: "CREATE TABLE audit_log (
            seq BIGINT PRIMARY KEY, time BIGINT NOT NULL, entry BYTEA NOT NULL,
            prev_hash BYTEA NOT NULL, hash BYTEA NOT NULL)",
    },
    Migration {
        version: 2,
        sqlite: "CREATE TABLE cluster (
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
        postgres: "CREATE TABLE cluster (
                id BIGINT PRIMARY KEY CHECK (id = 1), genesis TEXT NOT NULL,
                state TEXT NOT NULL, detail TEXT NOT NULL, updated BIGINT NOT NULL);
            CREATE TABLE keys (
                key_id TEXT PRIMARY KEY, scheme TEXT NOT NULL, threshold BIGINT NOT NULL,
                public_key BYTEA NOT NULL, chain_code BYTEA, policy TEXT NOT NULL,
                created BIGINT NOT NULL);
            CREATE TABLE requests (
                idem_key TEXT PRIMARY KEY, kind TEXT NOT NULL, request_hash BYTEA NOT NULL, request TEXT NOT NULL,
                request_id TEXT NOT NULL,
                state TEXT NOT NULL, response TEXT, lease_until BIGINT NOT NULL,
                created BIGINT NOT NULL, updated BIGINT NOT NULL);
            CREATE INDEX requests_state ON requests (state, lease_until);
            CREATE UNIQUE INDEX requests_request_id ON requests (request_id);
            CREATE TABLE presignatures (
                id BYTEA PRIMARY KEY, key_id TEXT NOT NULL, path TEXT NOT NULL,
                quorum TEXT NOT NULL, state TEXT NOT NULL, created BIGINT NOT NULL,
                claimed_at BIGINT);
            CREATE INDEX presignatures_ready ON presignatures (key_id, path, quorum, state);",
    },
];

/// The latest schema version this build knows.
pub fn latest_schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// A value bound to, or read from, a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// 64-bit integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Bytes or NULL.
    OptBytes(Option<Vec<u8>>),
    /// Text or NULL.
    OptText(Option<String>),
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(t) | Value::OptText(Some(t)) => {
                ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes()))
            }
            Value::Bytes(b) | Value::OptBytes(Some(b)) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::OptBytes(None) | Value::OptText(None) => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// A result row: its columns in order (NULL as `OptBytes(None)`).
#[derive(Debug)]
pub struct Row(Vec<Value>);

impl Row {
    fn get(&self, i: usize) -> Result<&Value, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {i}")))
    }

    /// Column `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.get(i)? {
            Value::Int(v) => Ok(*v),
            other => Err(StoreError::Corrupt(format!("column {i}: {other:?}"))),
        }
    }

    /// Column `i` as text.
    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        match self.get(i)? {
            Value::Text(v) | Value::OptText(Some(v)) => Ok(v.clone()),
            other => Err(StoreError::Corrupt(format!("column {i}: {other:?}"))),
        }
    }

    /// Column `i` as text or NULL.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.get(i)? {
            Value::OptBytes(None) | Value::OptText(None) => Ok(None),
            _ => self.text(i).map(Some),
        }
    }

    /// Column `i` as bytes.
    pub fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        match self.get(i)? {
            Value::Bytes(v) | Value::OptBytes(Some(v)) => Ok(v.clone()),
            other => Err(StoreError::Corrupt(format!("column {i}: {other:?}"))),
        }
    }

    /// Column `i` as bytes or NULL.
    pub fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(i)? {
            Value::OptBytes(None) | Value::OptText(None) => Ok(None),
            _ => self.bytes(i).map(Some),
        }
    }
}

/// A transaction on either backend.
pub enum Tx<'a> {
    /// SQLite (an IMMEDIATE transaction: writers take turns).
    Sqlite(rusqlite::Transaction<'a>),
    /// PostgreSQL (READ COMMITTED; appends serialise on an advisory lock).
    Postgres(postgres::Transaction<'a>),
}

fn pg_params(params: &[Value]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                Value::Int(i) => Box::new(*i),
                Value::Text(t) => Box::new(t.clone()),
                Value::Bytes(b) => Box::new(b.clone()),
                Value::OptBytes(b) => Box::new(b.clone()),
                Value::OptText(t) => Box::new(t.clone()),
            }
        })
        .collect()
}

fn pg_row(row: &postgres::Row) -> Result<Row, StoreError> {
    use postgres::types::Type;
    let mut out = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let t = column.type_();
        let v = if *t == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?
                .map_or(Value::OptBytes(None), Value::Int)
        } else if *t == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map_or(Value::OptBytes(None), |v| Value::Int(v.into()))
        } else if *t == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?
                .map_or(Value::OptBytes(None), |v| Value::Int(v.into()))
        } else if *t == Type::BYTEA {
            Value::OptBytes(row.try_get::<_, Option<Vec<u8>>>(i)?)
        } else {
            Value::OptText(row.try_get::<_, Option<String>>(i)?)
        };
        out.push(v);
    }
    Ok(Row(out))
}

fn sqlite_value(v: rusqlite::types::Value) -> Value {
    use rusqlite::types::Value as V;
    match v {
        V::Null => Value::OptBytes(None),
        V::Integer(i) => Value::Int(i),
        V::Real(r) => Value::Int(r as i64),
        V::Text(t) => Value::Text(t),
        V::Blob(b) => Value::Bytes(b),
    }
}

impl Tx<'_> {
    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }

    /// Runs a statement; returns the number of rows changed.
    pub fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        Ok(match self {
            Tx::Sqlite(tx) => tx.execute(sql, rusqlite::params_from_iter(params.iter()))? as u64,
            Tx::Postgres(tx) => {
                let boxed = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    boxed.iter().map(|b| b.as_ref()).collect();
                tx.execute(sql, &refs)?
            }
        })
    }

    /// Runs a query; returns its rows.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        match self {
            Tx::Sqlite(tx) => {
                let mut stmt = tx.prepare(sql)?;
                let n = stmt.column_count();
                let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), |r| {
                    (0..n)
                        .map(|i| r.get::<_, rusqlite::types::Value>(i).map(sqlite_value))
                        .collect::<rusqlite::Result<Vec<Value>>>()
                })?;
                let mut out = Vec::new();
                for row in rows {
                    out.push(Row(row?));
                }
                Ok(out)
            }
            Tx::Postgres(tx) => {
                let boxed = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    boxed.iter().map(|b| b.as_ref()).collect();
                tx.query(sql, &refs)?.iter().map(pg_row).collect()
            }
        }
    }

    /// The first row of a query, if any.
    pub fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Claims one ready presignature (see [`Store::claim_presignature`]) in this transaction.
    pub fn claim_presignature(
        &mut self,
        key_id: &str,
        path: &str,
        quorum: &str,
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let pick = if self.is_postgres() {
            "SELECT id FROM presignatures WHERE key_id = $2 AND path = $3 AND quorum = $4
             AND state = 'ready' ORDER BY created LIMIT 1 FOR UPDATE SKIP LOCKED"
        } else {
            "SELECT id FROM presignatures WHERE key_id = $2 AND path = $3 AND quorum = $4
             AND state = 'ready' ORDER BY created LIMIT 1"
        };
        let sql = format!(
            "UPDATE presignatures SET state = 'used', claimed_at = $1
             WHERE id = ({pick}) AND state = 'ready' RETURNING id"
        );
        self.query_opt(
            &sql,
            &[
                Value::Int(now as i64),
                Value::Text(key_id.into()),
                Value::Text(path.into()),
                Value::Text(quorum.into()),
            ],
        )?
        .map(|r| r.bytes(0))
        .transpose()
    }

    /// Appends an audit record chained to the last one, inside this transaction.
    pub fn append_audit(
        &mut self,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<AuditRecord, StoreError> {
        if let Tx::Postgres(tx) = self {
            // Two coordinators appending at once take turns: the chain stays linear.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
        }
        let last = self.query_opt(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            &[],
        )?;
        let (seq, prev_hash) = match last {
            Some(row) => (row.int(0)? as u64 + 1, hash32(row.bytes(1)?)?),
            None => (1, [0u8; 32]),
        };
        let hash = record_hash(seq, time, entry, &prev_hash);
        self.exec(
            "INSERT INTO audit_log (seq, time, entry, prev_hash, hash) VALUES ($1, $2, $3, $4, $5)",
            &[
                Value::Int(seq as i64),
                Value::Int(time as i64),
                Value::Bytes(encode_entry(entry)),
                Value::Bytes(prev_hash.to_vec()),
                Value::Bytes(hash.to_vec()),
            ],
        )?;
        Ok(AuditRecord {
            seq,
            time,
            entry: entry.clone(),
            prev_hash,
            hash,
        })
    }
}

enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

/// The coordinator's storage: one connection to SQLite or PostgreSQL.
pub struct Store {
    conn: Conn,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.conn {
            Conn::Sqlite(_) => "Store(sqlite)",
            Conn::Postgres(_) => "Store(postgres)",
        })
    }
}

/// Advisory-lock key serialising appends and migrations across coordinators.
const LOCK_KEY: i64 = 0x636f_686f_7274; // "cohort"

/// Opens a store by URL: `sqlite:PATH` or `postgres://...`.
pub fn open(url: &str) -> Result<Store, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        Store::sqlite(std::path::Path::new(path))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Store::postgres(postgres::Client::connect(url, postgres::NoTls)?)
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(StoreError::BadUrl(scheme.chars().take(32).collect()))
    }
}

fn hash32(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("stored hash is not 32 bytes".into()))
}

/// The cluster as the coordinator knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRow {
    /// The approved genesis, as JSON of the API's genesis body.
    pub genesis: String,
    /// `initialising`, `ready` or `failed`.
    pub state: String,
    /// What is happening, or why it failed.
    pub detail: String,
}

/// A key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// Its id.
    pub key_id: String,
    /// Its scheme name.
    pub scheme: String,
    /// Its threshold.
    pub threshold: u16,
    /// Its public key.
    pub public_key: Vec<u8>,
    /// BIP32 chain code (ECDSA).
    pub chain_code: Option<Vec<u8>>,
    /// Its policy, as JSON.
    pub policy: String,
    /// Unix seconds.
    pub created: u64,
}

/// An idempotency record: one request and, once it ended, its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    /// The idempotency key.
    pub idem_key: String,
    /// What kind of request (`sign`).
    pub kind: String,
    /// SHA-256 of the request's canonical body: a resubmission must match it.
    pub request_hash: Vec<u8>,
    /// The request as submitted (JSON), for the audit record of an interrupted request.
    pub request: String,
    /// The approved request's id (hex): one record per request id, whatever the key.
    pub request_id: String,
    /// `in_progress`, `completed`, `failed`, or `retryable` (failed, and runs again when
    /// resubmitted).
    pub state: String,
    /// The response (JSON) once ended.
    pub response: Option<String>,
    /// Until when (Unix seconds) the coordinator running it owns it.
    pub lease_until: u64,
}

/// What [`Store::begin_request`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// A new record (or a retryable one run again), owned by the caller under this lease.
    Started(u64),
    /// A record with this key exists.
    Existing(RequestRow),
}

/// A ready presignature as the coordinator counts it: a name, not the secret, which only the
/// enclaves of its quorum hold. `Debug` still prints only a prefix of its id.
#[derive(Clone, PartialEq, Eq)]
pub struct PresigRow {
    /// Its id (the session id that made it).
    pub id: Vec<u8>,
    /// The key.
    pub key_id: String,
    /// The derivation path it is bound to (`m/...`).
    pub path: String,
    /// The quorum holding it, as `0,2`.
    pub quorum: String,
    /// Unix seconds when it was recorded.
    pub created: u64,
}

impl std::fmt::Debug for PresigRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresigRow")
            .field("id", &hex::encode(&self.id[..self.id.len().min(4)]))
            .field("key_id", &self.key_id)
            .field("path", &self.path)
            .field("quorum", &self.quorum)
            .field("created", &self.created)
            .finish()
    }
}

fn key_row(r: &Row) -> Result<KeyRow, StoreError> {
    Ok(KeyRow {
        key_id: r.text(0)?,
        scheme: r.text(1)?,
        threshold: u16::try_from(r.int(2)?)
            .map_err(|_| StoreError::Corrupt("threshold out of range".into()))?,
        public_key: r.bytes(3)?,
        chain_code: r.opt_bytes(4)?,
        policy: r.text(5)?,
        created: r.int(6)? as u64,
    })
}

fn request_row(r: &Row) -> Result<RequestRow, StoreError> {
    Ok(RequestRow {
        idem_key: r.text(0)?,
        kind: r.text(1)?,
        request_hash: r.bytes(2)?,
        request: r.text(3)?,
        state: r.text(4)?,
        response: r.opt_text(5)?,
        lease_until: r.int(6)? as u64,
        request_id: r.text(7)?,
    })
}

const REQUEST_COLUMNS: &str =
    "idem_key, kind, request_hash, request, state, response, lease_until, request_id";
const KEY_COLUMNS: &str = "key_id, scheme, threshold, public_key, chain_code, policy, created";

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    pub fn sqlite(path: &std::path::Path) -> Result<Self, StoreError> {
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
        Ok(Self {
            conn: Conn::Sqlite(conn),
        })
    }

    /// Uses a PostgreSQL connection (tests set a private schema first) and migrates.
    pub fn postgres(mut client: postgres::Client) -> Result<Self, StoreError> {
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
        Ok(Self {
            conn: Conn::Postgres(client),
        })
    }

    /// Runs `f` in one transaction: committed if it returns `Ok`, rolled back otherwise.
    pub fn transaction<R>(
        &mut self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        match &mut self.conn {
            Conn::Sqlite(conn) => {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let mut tx = Tx::Sqlite(tx);
                let r = f(&mut tx)?;
                if let Tx::Sqlite(tx) = tx {
                    tx.commit()?;
                }
                Ok(r)
            }
            Conn::Postgres(client) => {
                let mut tx = Tx::Postgres(client.transaction()?);
                let r = f(&mut tx)?;
                if let Tx::Postgres(tx) = tx {
                    tx.commit()?;
                }
                Ok(r)
            }
        }
    }

    /// Appends an audit record, chained to the last one, atomically.
    pub fn append_audit(
        &mut self,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<AuditRecord, StoreError> {
        self.transaction(|tx| tx.append_audit(time, entry))
    }

    /// Records with `seq > after`, in order, at most `limit`.
    pub fn audit_page(&mut self, after: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        self.transaction(|tx| {
            tx.query(
                "SELECT seq, time, entry, prev_hash, hash FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[Value::Int(after as i64), Value::Int(i64::from(limit))],
            )?
            .iter()
            .map(|r| {
                Ok(AuditRecord {
                    seq: r.int(0)? as u64,
                    time: r.int(1)? as u64,
                    entry: decode_entry(&r.bytes(2)?).map_err(StoreError::Corrupt)?,
                    prev_hash: hash32(r.bytes(3)?)?,
                    hash: hash32(r.bytes(4)?)?,
                })
            })
            .collect()
        })
    }

    /// The applied schema version.
    pub fn schema_version(&mut self) -> Result<i64, StoreError> {
        self.transaction(|tx| {
            tx.query_opt(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )?
            .map_or(Ok(0), |r| r.int(0))
        })
    }

    /// The cluster record, once genesis was submitted.
    pub fn cluster(&mut self) -> Result<Option<ClusterRow>, StoreError> {
        self.transaction(|tx| {
            tx.query_opt(
                "SELECT genesis, state, detail FROM cluster WHERE id = 1",
                &[],
            )?
            .map(|r| {
                Ok(ClusterRow {
                    genesis: r.text(0)?,
                    state: r.text(1)?,
                    detail: r.text(2)?,
                })
            })
            .transpose()
        })
    }

    /// Records a new genesis (with its audit record); `false` if one exists.
    pub fn insert_cluster(
        &mut self,
        row: &ClusterRow,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            let n = tx.exec(
                "INSERT INTO cluster (id, genesis, state, detail, updated) VALUES (1, $1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    Value::Text(row.genesis.clone()),
                    Value::Text(row.state.clone()),
                    Value::Text(row.detail.clone()),
                    Value::Int(time as i64),
                ],
            )?;
            if n == 1 {
                tx.append_audit(time, entry)?;
            }
            Ok(n == 1)
        })
    }

    /// Updates the cluster's state, with an audit record when given.
    pub fn set_cluster_state(
        &mut self,
        state: &str,
        detail: &str,
        time: u64,
        entry: Option<&AuditEntry>,
    ) -> Result<(), StoreError> {
        self.transaction(|tx| {
            tx.exec(
                "UPDATE cluster SET state = $1, detail = $2, updated = $3 WHERE id = 1",
                &[
                    Value::Text(state.into()),
                    Value::Text(detail.into()),
                    Value::Int(time as i64),
                ],
            )?;
            if let Some(e) = entry {
                tx.append_audit(time, e)?;
            }
            Ok(())
        })
    }

    /// Stores a new key with its audit record; `false` if the id is taken.
    pub fn insert_key(
        &mut self,
        key: &KeyRow,
        time: u64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            let n = tx.exec(
                &format!(
                    "INSERT INTO keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (key_id) DO NOTHING"
                ),
                &[
                    Value::Text(key.key_id.clone()),
                    Value::Text(key.scheme.clone()),
                    Value::Int(key.threshold.into()),
                    Value::Bytes(key.public_key.clone()),
                    Value::OptBytes(key.chain_code.clone()),
                    Value::Text(key.policy.clone()),
                    Value::Int(key.created as i64),
                ],
            )?;
            if n == 1 {
                tx.append_audit(time, entry)?;
            }
            Ok(n == 1)
        })
    }

    /// A key by id.
    pub fn key(&mut self, key_id: &str) -> Result<Option<KeyRow>, StoreError> {
        self.transaction(|tx| {
            tx.query_opt(
                &format!("SELECT {KEY_COLUMNS} FROM keys WHERE key_id = $1"),
                &[Value::Text(key_id.into())],
            )?
            .as_ref()
            .map(key_row)
            .transpose()
        })
    }

    /// Every key, by id.
    pub fn keys(&mut self) -> Result<Vec<KeyRow>, StoreError> {
        self.transaction(|tx| {
            tx.query(
                &format!("SELECT {KEY_COLUMNS} FROM keys ORDER BY key_id"),
                &[],
            )?
            .iter()
            .map(key_row)
            .collect()
        })
    }

    /// Starts an idempotent request, or returns the record already holding its key.
    #[allow(clippy::too_many_arguments)]
    pub fn begin_request(
        &mut self,
        idem_key: &str,
        kind: &str,
        request_id: &str,
        request_hash: &[u8],
        request: &str,
        lease_until: u64,
        now: u64,
    ) -> Result<Begin, StoreError> {
        self.transaction(|tx| {
            let n = tx.exec(
                "INSERT INTO requests (idem_key, kind, request_hash, request, state, response, lease_until, created, updated, request_id)
                 VALUES ($1, $2, $3, $4, 'in_progress', NULL, $5, $6, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    Value::Text(idem_key.into()),
                    Value::Text(kind.into()),
                    Value::Bytes(request_hash.to_vec()),
                    Value::Text(request.into()),
                    Value::Int(lease_until as i64),
                    Value::Int(now as i64),
                    Value::Text(request_id.into()),
                ],
            )?;
            if n == 1 {
                return Ok(Begin::Started(lease_until));
            }
            // A request that failed in a way worth retrying runs again under the same key, with
            // a lease later than any before (session ids derive from it).
            let again = tx.query_opt(
                "UPDATE requests SET state = 'in_progress', response = NULL, updated = $1,
                     lease_until = CASE WHEN lease_until >= $2 THEN lease_until + 1 ELSE $2 END
                 WHERE idem_key = $3 AND state = 'retryable' AND request_hash = $4
                 RETURNING lease_until",
                &[
                    Value::Int(now as i64),
                    Value::Int(lease_until as i64),
                    Value::Text(idem_key.into()),
                    Value::Bytes(request_hash.to_vec()),
                ],
            )?;
            if let Some(r) = again {
                return Ok(Begin::Started(r.int(0)? as u64));
            }
            let row = match tx.query_opt(
                &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE idem_key = $1"),
                &[Value::Text(idem_key.into())],
            )? {
                Some(row) => row,
                // The request id is recorded under another idempotency key.
                None => tx
                    .query_opt(
                        &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE request_id = $1"),
                        &[Value::Text(request_id.into())],
                    )?
                    .ok_or_else(|| StoreError::Corrupt("request vanished".into()))?,
            };
            Ok(Begin::Existing(request_row(&row)?))
        })
    }

    /// Removes an in-progress record owned under `lease` (a key creation that failed frees its
    /// key id for another attempt), with its audit records, in one transaction.
    pub fn drop_request(
        &mut self,
        idem_key: &str,
        lease: u64,
        time: u64,
        entries: &[AuditEntry],
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            let n = tx.exec(
                "DELETE FROM requests WHERE idem_key = $1 AND state = 'in_progress' AND lease_until = $2",
                &[Value::Text(idem_key.into()), Value::Int(lease as i64)],
            )?;
            for e in entries {
                tx.append_audit(time, e)?;
            }
            Ok(n == 1)
        })
    }

    /// The record of an idempotency key.
    pub fn request(&mut self, idem_key: &str) -> Result<Option<RequestRow>, StoreError> {
        self.transaction(|tx| {
            tx.query_opt(
                &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE idem_key = $1"),
                &[Value::Text(idem_key.into())],
            )?
            .as_ref()
            .map(request_row)
            .transpose()
        })
    }

    /// Ends an in-progress request owned under `lease` with its response and audit records,
    /// in one transaction. `false` (and nothing written) if another coordinator took it over.
    pub fn finish_request(
        &mut self,
        idem_key: &str,
        lease: u64,
        state: &str,
        response: &str,
        time: u64,
        entries: &[AuditEntry],
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            let n = tx.exec(
                "UPDATE requests SET state = $1, response = $2, updated = $3
                 WHERE idem_key = $4 AND state = 'in_progress' AND lease_until = $5",
                &[
                    Value::Text(state.into()),
                    Value::Text(response.into()),
                    Value::Int(time as i64),
                    Value::Text(idem_key.into()),
                    Value::Int(lease as i64),
                ],
            )?;
            if n == 1 {
                for e in entries {
                    tx.append_audit(time, e)?;
                }
            }
            Ok(n == 1)
        })
    }

    /// Takes over an in-progress request whose lease `old_lease` has ended (its coordinator
    /// stopped); `false` if someone else did first or it ended meanwhile.
    pub fn take_over_request(
        &mut self,
        idem_key: &str,
        old_lease: u64,
        new_lease: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| {
            Ok(tx.exec(
                "UPDATE requests SET lease_until = $1, updated = $2
                 WHERE idem_key = $3 AND state = 'in_progress' AND lease_until = $4",
                &[
                    Value::Int(new_lease as i64),
                    Value::Int(now as i64),
                    Value::Text(idem_key.into()),
                    Value::Int(old_lease as i64),
                ],
            )? == 1)
        })
    }

    /// In-progress requests whose lease ended before `now`.
    pub fn stale_requests(&mut self, now: u64) -> Result<Vec<RequestRow>, StoreError> {
        self.transaction(|tx| {
            tx.query(
                &format!(
                    "SELECT {REQUEST_COLUMNS} FROM requests WHERE state = 'in_progress' AND lease_until < $1"
                ),
                &[Value::Int(now as i64)],
            )?
            .iter()
            .map(request_row)
            .collect()
        })
    }

    /// Records a presignature the enclaves of `quorum` hold.
    pub fn add_presignature(&mut self, p: &PresigRow) -> Result<(), StoreError> {
        self.transaction(|tx| {
            tx.exec(
                "INSERT INTO presignatures (id, key_id, path, quorum, state, created)
                 VALUES ($1, $2, $3, $4, 'ready', $5)",
                &[
                    Value::Bytes(p.id.clone()),
                    Value::Text(p.key_id.clone()),
                    Value::Text(p.path.clone()),
                    Value::Text(p.quorum.clone()),
                    Value::Int(p.created as i64),
                ],
            )?;
            Ok(())
        })
    }

    /// Claims one ready presignature of `key_id` at `path` held by `quorum`: no two callers,
    /// even on two coordinators sharing PostgreSQL, ever get the same one. A claimed
    /// presignature is spent whatever happens next (an enclave deletes its share of one before
    /// its partial signature leaves), so it is marked `used` at once.
    pub fn claim_presignature(
        &mut self,
        key_id: &str,
        path: &str,
        quorum: &str,
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.transaction(|tx| tx.claim_presignature(key_id, path, quorum, now))
    }

    /// Claims a ready presignature of `key_id` at `path` from the fullest of `quorums`, in one
    /// transaction; returns it with its quorum.
    pub fn claim_best_presignature(
        &mut self,
        key_id: &str,
        path: &str,
        quorums: &[String],
        now: u64,
    ) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        self.transaction(|tx| {
            let mut levels: Vec<(i64, String)> = tx
                .query(
                    "SELECT quorum, COUNT(*) FROM presignatures
                     WHERE key_id = $1 AND path = $2 AND state = 'ready' GROUP BY quorum",
                    &[Value::Text(key_id.into()), Value::Text(path.into())],
                )?
                .iter()
                .map(|r| Ok((r.int(1)?, r.text(0)?)))
                .collect::<Result<_, StoreError>>()?;
            levels.retain(|(_, q)| quorums.contains(q));
            levels.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            for (_, q) in levels {
                if let Some(id) = tx.claim_presignature(key_id, path, &q, now)? {
                    return Ok(Some((id, q)));
                }
            }
            Ok(None)
        })
    }

    /// Sets a presignature's state (`used`, or `dead` when its enclaves no longer hold it).
    pub fn set_presignature_state(&mut self, id: &[u8], state: &str) -> Result<(), StoreError> {
        self.transaction(|tx| {
            tx.exec(
                "UPDATE presignatures SET state = $1 WHERE id = $2",
                &[Value::Text(state.into()), Value::Bytes(id.to_vec())],
            )?;
            Ok(())
        })
    }

    /// Ready presignatures per (key, path, quorum).
    pub fn presignature_counts(
        &mut self,
    ) -> Result<std::collections::BTreeMap<(String, String, String), u32>, StoreError> {
        self.transaction(|tx| {
            let mut out = std::collections::BTreeMap::new();
            for r in tx.query(
                "SELECT key_id, path, quorum, COUNT(*) FROM presignatures WHERE state = 'ready'
                 GROUP BY key_id, path, quorum",
                &[],
            )? {
                out.insert(
                    (r.text(0)?, r.text(1)?, r.text(2)?),
                    u32::try_from(r.int(3)?).unwrap_or(u32::MAX),
                );
            }
            Ok(out)
        })
    }

    /// Every ready presignature.
    pub fn ready_presignatures(&mut self) -> Result<Vec<PresigRow>, StoreError> {
        self.transaction(|tx| {
            tx.query(
                "SELECT id, key_id, path, quorum, created FROM presignatures WHERE state = 'ready'",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(PresigRow {
                    id: r.bytes(0)?,
                    key_id: r.text(1)?,
                    path: r.text(2)?,
                    quorum: r.text(3)?,
                    created: r.int(4)? as u64,
                })
            })
            .collect()
        })
    }
}

/// Verifies the whole audit log page by page; returns the number of records.
pub fn verify_log(store: &mut Store) -> Result<Result<u64, crate::audit::BrokenLink>, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::PresigRow;

    #[test]
    fn presignature_rows_print_only_an_id_prefix() {
        let row = PresigRow {
            id: vec![0xab; 32],
            key_id: "k".into(),
            path: "m".into(),
            quorum: "0,1".into(),
            created: 1,
        };
        let text = format!("{row:?}");
        assert!(text.contains("abababab"), "{text}");
        assert!(!text.contains(&"ab".repeat(5)), "{text}");
    }
}
