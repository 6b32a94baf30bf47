//! Storage: one diesel connection type over SQLite or PostgreSQL, an r2d2 pool,
//! embedded migrations, and the helper that keeps blocking calls off the
//! async executors.

pub mod models;
pub mod notify;
mod pg_exit;
pub mod schema;
pub mod spool;

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// A connection to whichever backend `DATABASE_URL` names.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub type DbPool = r2d2::Pool<ConnectionManager>;
pub type PooledConn = r2d2::PooledConnection<ConnectionManager>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database connection failed: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database connection failed: {0}")]
    Connection(#[from] ConnectionError),
    #[error("database migrations failed: {0}")]
    Migration(String),
    #[error("blocking task failed: {0}")]
    Join(String),
    /// Another instance of the cluster took the session's lease: this one
    /// may no longer write for it.
    #[error("the lease of session {0} is held by another instance")]
    LeaseLost(String),
}

pub type DbResult<T> = Result<T, DbError>;

impl DbError {
    /// Whether trying the same write again may succeed (the database was
    /// busy or away), as opposed to a refusal that will not change.
    pub fn is_retryable(&self) -> bool {
        !self.is_unique_violation() && !matches!(self, DbError::LeaseLost(_))
    }

    /// A UNIQUE constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

/// Which backend a URL names. Picked from the scheme ourselves: diesel's
/// `MultiConnection::establish` tries each backend in turn and would open a
/// SQLite file named after a mistyped PostgreSQL URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn of_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// r2d2 manager that opens the right backend and tunes SQLite on every new
/// connection.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: String,
    backend: Backend,
}

impl ConnectionManager {
    pub fn new(url: &str) -> Self {
        let backend = Backend::of_url(url);
        let url = match backend {
            Backend::Postgres => {
                let gss_env = std::env::var("PGGSSENCMODE").ok();
                pg_exit::without_gss_by_default(url, gss_env.as_deref())
            }
            Backend::Sqlite => url.to_owned(),
        };
        Self { url, backend }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = DbError;

    fn connect(&self) -> Result<DbConnection, DbError> {
        match self.backend {
            Backend::Postgres => Ok(DbConnection::Postgres(diesel::PgConnection::establish(
                &self.url,
            )?)),
            Backend::Sqlite => {
                let path = self.url.strip_prefix("sqlite://").unwrap_or(&self.url);
                let mut conn = diesel::SqliteConnection::establish(path)?;
                // busy_timeout must come before journal_mode=WAL: the other
                // order can fail with "database is locked" on a fresh file.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .map_err(DbError::Query)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), DbError> {
        conn.ping().map_err(DbError::Query)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// Builds the pool for `url`, creating the SQLite file's folder when needed,
/// and applies pending migrations.
pub fn connect(url: &str) -> DbResult<DbPool> {
    let manager = ConnectionManager::new(url);
    let backend = manager.backend;
    if backend == Backend::Sqlite {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        if let Some(parent) = Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| DbError::Migration(format!("cannot create {parent:?}: {e}")))?;
            }
        }
    }
    if backend == Backend::Postgres {
        pg_exit::skip_openssl_exit_cleanup();
    }
    // SQLite has one writer at a time: a small pool avoids lock contention.
    let max_size = match backend {
        Backend::Sqlite => 4,
        Backend::Postgres => 16,
    };
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        // Connections are opened when needed, not all at start.
        .min_idle(Some(2))
        // A SQLite connection is a file handle, never stale: testing it at
        // every checkout would double each read's queries. A PostgreSQL
        // connection can die with its server, so it is tested.
        .test_on_check_out(backend == Backend::Postgres)
        .connection_timeout(Duration::from_secs(10))
        .build(manager)?;
    let mut conn = pool.get()?;
    run_migrations(&mut conn)?;
    if backend == Backend::Sqlite {
        make_private(url.strip_prefix("sqlite://").unwrap_or(url));
    }
    Ok(pool)
}

/// The SQLite file (and its journal) readable by the server alone: it holds
/// key hashes, credentials and every tenant's history.
fn make_private(path: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = format!("{path}{suffix}");
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file, error = %e, "cannot make the database file private"),
        }
    }
}

fn run_migrations(conn: &mut DbConnection) -> DbResult<()> {
    let result = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        DbConnection::Postgres(c) => {
            // Nodes of a cluster starting together on a fresh database take
            // turns: the first migrates, the others then find nothing to do.
            use diesel::RunQueryDsl;
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).execute(c)?;
            let migrated = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ());
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).execute(c)?;
            migrated
        }
    };
    result.map_err(|e| DbError::Migration(e.to_string()))
}

/// The advisory lock key held while migrating PostgreSQL (any fixed number
/// no other lock of the database uses).
const MIGRATION_LOCK: i64 = 0x0063_6361_5f6d_6967;

/// Runs a closure with a pooled connection on the blocking thread pool, so
/// neither pool checkout nor the query ever blocks an async executor.
pub async fn run<T, F>(pool: &DbPool, f: F) -> DbResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> DbResult<T> + Send + 'static,
{
    let pool = pool.clone();
    crate::blocking::run(move || {
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await
    .map_err(|e| DbError::Join(e.to_string()))?
}

/// Runs a short read (a few rows found by index) at once on the calling
/// thread when the database is SQLite and a connection is free: such a
/// read takes tens of microseconds, less than the hop to the blocking pool
/// and back (two thread wake-ups), and SQLite readers never wait on its
/// writer (WAL). Otherwise, and always on PostgreSQL (a network round
/// trip), it runs as `run` does.
pub async fn read<T, F>(pool: &DbPool, f: F) -> DbResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> DbResult<T> + Send + 'static,
{
    // `connect` tests connections at checkout exactly when they are not
    // SQLite's, so a pool that does not test them is SQLite's.
    if !pool.test_on_check_out() {
        if let Some(mut conn) = pool.try_get() {
            return f(&mut conn);
        }
    }
    run(pool, f).await
}

/// Runs `f` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`: a
/// deferred transaction that reads and then writes fails at once with
/// "database is locked" when another connection wrote in between (WAL
/// snapshots cannot be upgraded), whereas IMMEDIATE takes the write lock up
/// front and waits for it under `busy_timeout`.
pub fn write_transaction<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> DbResult<T>,
) -> DbResult<T> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let DbConnection::Sqlite(inner) = conn else {
        return conn.transaction(f);
    };
    // Begun through diesel's own manager, so statements inside that open a
    // transaction themselves (SQLite batch inserts do) nest as savepoints.
    AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
    let result = f(conn);
    let DbConnection::Sqlite(inner) = conn else {
        unreachable!("the backend of a connection does not change");
    };
    match result {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(inner)?;
            Ok(value)
        }
        Err(e) => {
            let _ = AnsiTransactionManager::rollback_transaction(inner);
            Err(e)
        }
    }
}

/// `true` when the database answers a trivial query.
pub async fn ping(pool: &DbPool) -> bool {
    // Bounded: a database that does not answer is down for `/health`, not
    // a probe that hangs for the pool's whole connection timeout.
    const PING_TIMEOUT: Duration = Duration::from_secs(2);
    let pool = pool.clone();
    let pinged = crate::blocking::run(move || {
        pool.get_timeout(PING_TIMEOUT)
            .is_ok_and(|mut conn| conn.ping().is_ok())
    });
    matches!(
        tokio::time::timeout(PING_TIMEOUT * 2, pinged).await,
        Ok(Ok(true))
    )
}

/// The current time as stored in TIMESTAMP columns (UTC, microseconds:
/// what both backends keep).
pub fn now() -> chrono::NaiveDateTime {
    let micros = chrono::Utc::now().timestamp_micros();
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .naive_utc()
}

/// A storage failure is an internal one to every caller of a service.
impl From<DbError> for crate::error::ServiceError {
    fn from(e: DbError) -> Self {
        crate::error::ServiceError::internal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_transactions_commit_and_roll_back_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(&dir.path().join("t.db").to_string_lossy()).unwrap();
        let mut conn = pool.get().unwrap();
        let tenant = models::tenant::Tenant::new("t1", None);
        write_transaction(&mut conn, |c| models::tenant::insert_tenant(c, &tenant)).unwrap();
        assert!(models::tenant::find_tenant(&mut conn, "t1")
            .unwrap()
            .is_some());
        let again = models::tenant::Tenant::new("t2", None);
        let failed: DbResult<()> = write_transaction(&mut conn, |c| {
            models::tenant::insert_tenant(c, &again)?;
            Err(DbError::Migration("boom".into()))
        });
        assert!(failed.is_err());
        assert!(models::tenant::find_tenant(&mut conn, "t2")
            .unwrap()
            .is_none());
        // And the connection is usable afterwards.
        write_transaction(&mut conn, |c| models::tenant::insert_tenant(c, &again)).unwrap();
    }
}
