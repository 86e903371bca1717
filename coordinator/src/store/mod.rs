//! Persistence behind one interface: SQLite in the data directory by default, PostgreSQL (by URL)
//! when several coordinators share one database, reached over TLS unless the operator disables
//! it ([`connect`]). Schema migrations are numbered and applied once, each in its own transaction.
//!
//! Every operation is one transaction, written once for both backends over a small SQL layer
//! ([`Tx`]): the same statements (`$1`-style placeholders) run on SQLite and PostgreSQL; only the
//! table definitions and the presignature claim differ. A state change and the audit record that
//! describes it commit together, so a crash leaves either both or neither.
//!
//! One module per table: [`cluster`], [`admins`] (changes of the admin set), [`images`]
//! (changes of the enclave images accepted; both change tables share [`changes`]), [`keys`],
//! [`requests`], [`presignatures`], [`credentials`] (with the nonces of calls served), the
//! audit log ([`audit`]) and the events reporting it ([`outbox`]). States are typed
//! ([`ClusterState`], [`RequestState`], [`PresigState`]) and turned into the stored names only
//! here.

mod admins;
mod audit;
mod changes;
mod cluster;
mod connect;
mod credentials;
mod images;
mod keys;
mod migrations;
mod outbox;
mod presignatures;
mod requests;
mod roles;
mod rosters;
mod sql;
mod states;

pub use admins::AdminChangeRow;
pub use audit::verify_log;
pub use changes::{ChangeRow, ChangeTable};
pub use cluster::ClusterRow;
pub use connect::{PostgresTls, TlsMode};
pub use credentials::{CredentialRow, NonceUse, Registered, Revoked};
pub use images::ImageChangeRow;
pub use keys::{KeyRow, NewGeneration};
pub use migrations::latest_schema_version;
pub use outbox::{OutboxLevel, OutboxRow};
pub use presignatures::PresigRow;
pub use requests::{Begin, RequestRow};
pub use roles::APP_PRIVILEGES;
pub use rosters::RosterCommitRow;
pub use sql::{Row, Tx, Value};
pub use states::{ClusterState, PresigState, RequestState};

use migrations::MIGRATIONS;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("postgres: {}", with_causes(.0))]
    Postgres(#[from] postgres::Error),
    /// The URL names no known backend (only its scheme is kept: a URL may hold a password).
    #[error("unsupported store url scheme `{0}` (expected sqlite:PATH or postgres://...)")]
    BadUrl(String),
    /// A PostgreSQL URL that does not parse (the parser's reason; never the URL).
    #[error("invalid postgres url: {0}")]
    BadPostgresUrl(String),
    /// The TLS settings cannot be used: a CA file that cannot be read or holds no certificate,
    /// no system roots, or settings that contradict each other.
    #[error("store tls: {0}")]
    TlsSetup(String),
    /// Connecting to PostgreSQL failed, the refusals included: a server that offers no TLS while
    /// TLS is required, a certificate that does not chain to the roots or names another host, a
    /// server that refuses plaintext. Names the endpoint, never the user or the password.
    #[error("cannot connect to postgres at {endpoint} (--store-tls {tls}): {}", with_causes(.error))]
    Connect {
        /// The hosts and ports tried.
        endpoint: String,
        /// The TLS mode of the attempt.
        tls: TlsMode,
        /// The client's error.
        error: postgres::Error,
    },
    /// Stored data does not decode.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A schema migration could not be applied: on PostgreSQL, most often because the store's
    /// role is the coordinator's own, which may not change the schema.
    #[error(
        "cannot apply schema migration {version} (the coordinator's own role may not change the schema: run `cohort-coordinator --store-grant ROLE` as the schema's owner first): {reason}"
    )]
    Migrate {
        /// The migration.
        version: i64,
        /// The database's reason.
        reason: String,
    },
    /// A role name `--store-grant` does not take.
    #[error(
        "bad role `{0}`: a role name is lower-case letters, digits and _, not starting with a digit or pg_, at most 63 bytes, and not the role running the grant"
    )]
    BadRole(String),
    /// The schema is newer than this coordinator: the grant is left to a coordinator that
    /// knows every table (this one's would take rights away the newer ones need).
    #[error(
        "the schema is at migration {schema}, newer than this coordinator's {known}: its --store-grant would take away rights newer coordinators need; run the newer coordinator's"
    )]
    SchemaAhead {
        /// The schema's newest migration.
        schema: i64,
        /// This coordinator's newest.
        known: i64,
    },
    /// Roles are PostgreSQL's: a SQLite store has none.
    #[error("--store-grant needs a PostgreSQL store: SQLite has no roles")]
    NoRoles,
}

/// A PostgreSQL error with its causes: the client's own `Display` names only the kind ("db
/// error", "error performing TLS handshake"), and the reason is in its sources.
fn with_causes(e: &postgres::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
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

/// Opens a store by URL: `sqlite:PATH`, or `postgres://...` reached as `tls` says (TLS required
/// unless it says otherwise).
pub fn open(url: &str, tls: &PostgresTls) -> Result<Store, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        Store::sqlite(std::path::Path::new(path))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Store::postgres(connect::connect(url, tls)?)
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(StoreError::BadUrl(scheme.chars().take(32).collect()))
    }
}

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
                tx.execute_batch(m.sqlite())?;
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

    /// Uses a PostgreSQL connection (tests set a private schema first) and migrates. A schema
    /// with every migration applied is only read, so the coordinator's own role, which may not
    /// change the schema ([`Store::grant_app_role`]), opens it; a migration it cannot apply is
    /// [`StoreError::Migrate`].
    pub fn postgres(mut client: postgres::Client) -> Result<Self, StoreError> {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
        let tracked: bool = tx
            .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?
            .get(0);
        let applied: Vec<i64> = match tracked {
            true => tx
                .query("SELECT version FROM schema_migrations", &[])?
                .iter()
                .map(|r| r.get(0))
                .collect(),
            false => Vec::new(),
        };
        let migrate = |tx: &mut postgres::Transaction<'_>, version: i64, sql: &str| {
            tx.batch_execute(sql).map_err(|e| StoreError::Migrate {
                version,
                reason: with_causes(&e),
            })
        };
        if !tracked {
            migrate(
                &mut tx,
                0,
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )?;
        }
        for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            migrate(&mut tx, m.version, &m.postgres())?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, EXTRACT(EPOCH FROM now())::BIGINT)",
                &[&m.version],
            )?;
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
}
