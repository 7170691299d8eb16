//! What differs between the databases the store runs on. Everything else (every query, the
//! transition logic, group commit) is one code path over `sqlx::Any`; a [`Backend`] only says
//! how to connect and migrate, how a write transaction begins, how rows are locked, and how
//! other processes are woken.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection, Executor};
use tokio::sync::watch;

use super::Error;

/// A boxed future, for the async parts of [`Backend`].
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The channel a PostgreSQL store notifies when a transaction created work.
pub const WAKE_CHANNEL: &str = "tenure_work";

/// A database the store can run on.
pub trait Backend: Send + Sync + 'static {
    /// A short name (`sqlite`, `postgres`).
    fn name(&self) -> &'static str;
    /// Opens the pool and brings the schema up to date.
    fn connect<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<AnyPool, Error>>;
    /// The statement that opens a write transaction.
    fn begin(&self) -> &'static str;
    /// Appended to a `SELECT` of a row the transaction will change (empty where write
    /// transactions are already exclusive).
    fn lock_row(&self) -> &'static str;
    /// Appended to the claim `SELECT`: skip rows another worker is claiming right now.
    fn skip_locked(&self) -> &'static str;
    /// Whether each operation of a batch needs its own savepoint. Operations check everything
    /// (lease, run, machine) before they write, so a refused one leaves nothing behind; only a
    /// database that can abort a statement part-way for concurrency reasons (deadlock,
    /// serialization failure) needs the savepoint to retry it alone.
    fn isolate_ops(&self) -> bool;
    /// Whether one query may hold several statements with parameters.
    fn multi_statement(&self) -> bool;
    /// A statement (one text parameter) that serializes transactions on a concurrency key.
    fn lock_key(&self) -> Option<&'static str>;
    /// A statement run in a transaction that created work, telling other processes.
    fn wake_others(&self) -> Option<&'static str>;
    /// An expression: the outputs of the run whose id is `run` (a column of the outer query)
    /// as one JSON array text of `[step, item, output]`, by step and item (`[]` for none).
    fn outputs_array(&self, run: &str) -> String;
    /// Starts telling this process when another process created work, if the database can.
    fn listen(&self, url: &str, wake: watch::Sender<u64>);
}

/// How long opening a PostgreSQL database waits for the server's first answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn connect_error(url: &str, cause: String) -> Error {
    Error::Connect {
        url: url.to_string(),
        cause,
    }
}

/// Creates a new SQLite database file readable by its owner only (mode 0600); SQLite gives
/// its WAL and shared-memory files the same mode. An existing file is left as it is.
fn create_private(path: &str) -> std::io::Result<()> {
    if path.is_empty() || path == ":memory:" || std::path::Path::new(path).exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Picks the backend for a database URL.
pub fn for_url(url: &str) -> Result<Box<dyn Backend>, Error> {
    if url.starts_with("sqlite:") {
        Ok(Box::new(Sqlite))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Box::new(Postgres))
    } else {
        Err(Error::Url(url.to_string()))
    }
}

/// SQLite in WAL mode with `synchronous=FULL`: the embedded default. Writers of several
/// processes queue on `BEGIN IMMEDIATE`; other processes notice new work by polling.
pub struct Sqlite;

impl Backend for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn connect<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<AnyPool, Error>> {
        Box::pin(async move {
            sqlx::any::install_default_drivers();
            let path = url.trim_start_matches("sqlite:");
            let path = path.strip_prefix("//").unwrap_or(path);
            create_private(path.split('?').next().unwrap_or(path))
                .map_err(|e| connect_error(url, e.to_string()))?;
            let options = AnyConnectOptions::from_str(&format!("sqlite://{path}?mode=rwc"))?;
            // One connection first, so a file that is not a database (or cannot be read) says
            // so at once instead of the pool retrying until it times out.
            let probe = async {
                let mut conn = AnyConnection::connect_with(&options).await?;
                // Another process's write (a worker's batch) holds the lock for a moment:
                // wait for it like every pooled connection does, instead of failing.
                conn.execute("PRAGMA busy_timeout = 30000").await?;
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("SELECT count(*) FROM sqlite_master").await?;
                conn.close().await
            };
            probe.await.map_err(|e| connect_error(url, e.to_string()))?;
            let pool = AnyPoolOptions::new()
                .max_connections(8)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // Durable: a committed transition survives power loss.
                        conn.execute("PRAGMA busy_timeout = 30000").await?;
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        Ok(())
                    })
                })
                .connect_with(options)
                .await?;
            // Several processes may open a new database at once; SQLite has no migration lock,
            // so a loser of that race sees "already exists" and tries again after the winner.
            let migrator = sqlx::migrate!("./migrations/sqlite");
            let mut tries = 0;
            loop {
                match migrator.run(&pool).await {
                    Ok(()) => break,
                    Err(_) if tries < 20 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(50 * tries)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(pool)
        })
    }

    fn begin(&self) -> &'static str {
        // IMMEDIATE takes the write lock up front, so concurrent writers queue instead of
        // failing to upgrade a read lock.
        "BEGIN IMMEDIATE"
    }

    fn lock_row(&self) -> &'static str {
        ""
    }

    fn skip_locked(&self) -> &'static str {
        ""
    }

    fn multi_statement(&self) -> bool {
        true
    }

    fn outputs_array(&self, run: &str) -> String {
        format!("(SELECT json_group_array(json_array(step, item, json(output))) FROM (SELECT step, item, output FROM outputs WHERE run_id = {run} ORDER BY step, item))")
    }

    fn isolate_ops(&self) -> bool {
        // One writer at a time (BEGIN IMMEDIATE): no deadlocks; a failed write fails the batch.
        false
    }

    fn lock_key(&self) -> Option<&'static str> {
        None
    }

    fn wake_others(&self) -> Option<&'static str> {
        None
    }

    fn listen(&self, _url: &str, _wake: watch::Sender<u64>) {}
}

/// PostgreSQL, for several worker nodes: claims with `FOR UPDATE SKIP LOCKED`, run rows
/// locked `FOR UPDATE` during a transition, wake-ups with `LISTEN/NOTIFY`.
pub struct Postgres;

impl Backend for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn connect<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<AnyPool, Error>> {
        Box::pin(async move {
            sqlx::any::install_default_drivers();
            // One connection first, so an unreachable server or a refused login says so at
            // once instead of the pool retrying until it times out.
            match tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect(url)).await {
                Ok(Ok(conn)) => conn.close().await?,
                Ok(Err(e)) => return Err(connect_error(url, e.to_string())),
                Err(_) => {
                    let waited = format!("no answer in {}s", CONNECT_TIMEOUT.as_secs());
                    return Err(connect_error(url, waited));
                }
            }
            let pool = AnyPoolOptions::new()
                .max_connections(8)
                .connect(url)
                .await?;
            // sqlx takes an advisory lock around migrations, so concurrent first opens are safe.
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            Ok(pool)
        })
    }

    fn begin(&self) -> &'static str {
        "BEGIN"
    }

    fn lock_row(&self) -> &'static str {
        " FOR UPDATE"
    }

    fn skip_locked(&self) -> &'static str {
        " FOR UPDATE SKIP LOCKED"
    }

    fn isolate_ops(&self) -> bool {
        // Every transaction locks run rows in id order (then their tasks) and claims skip
        // locked rows, so no operation needs its own savepoint; the rare conflict left (a
        // queued run started behind another) retries the whole batch.
        false
    }

    fn multi_statement(&self) -> bool {
        false
    }

    fn outputs_array(&self, run: &str) -> String {
        format!("COALESCE((SELECT json_agg(json_build_array(step, item, output::json) ORDER BY step, item) FROM outputs WHERE run_id = {run})::text, '[]')")
    }

    fn lock_key(&self) -> Option<&'static str> {
        Some("SELECT pg_advisory_xact_lock(hashtext($1))")
    }

    fn wake_others(&self) -> Option<&'static str> {
        Some("SELECT pg_notify('tenure_work', '')")
    }

    fn listen(&self, url: &str, wake: watch::Sender<u64>) {
        let url = url.to_string();
        tokio::spawn(async move {
            // Reconnect after a dropped connection; workers poll meanwhile, so a gap only
            // costs latency.
            loop {
                if let Ok(mut listener) = sqlx::postgres::PgListener::connect(&url).await {
                    if listener.listen(WAKE_CHANNEL).await.is_ok() {
                        while listener.recv().await.is_ok() {
                            wake.send_modify(|n| *n = n.wrapping_add(1));
                        }
                    }
                }
                if wake.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}
