//! The databases store tests run on: SQLite in a temporary directory, and a fresh database
//! on the PostgreSQL server named by `TENURE_TEST_PG` (an admin URL such as
//! `postgres://tenure:tenure@127.0.0.1/tenure`). Without `TENURE_TEST_PG` the PostgreSQL
//! variants are skipped, except under CI, where they fail.

use tenure_engine::store::Store;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Keeps a test database alive (the SQLite directory).
pub struct Guard(#[allow(dead_code)] Option<tempfile::TempDir>);

impl Db {
    /// The admin URL of the test server, if this database can be tested here.
    pub fn available(self) -> bool {
        match self {
            Db::Sqlite => true,
            Db::Postgres => match std::env::var("TENURE_TEST_PG") {
                Ok(_) => true,
                Err(_) => {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "CI must set TENURE_TEST_PG so the PostgreSQL store is tested"
                    );
                    eprintln!("TENURE_TEST_PG is not set: skipping the PostgreSQL variant");
                    false
                }
            },
        }
    }

    /// A URL of a new, empty database.
    pub async fn url(self) -> (String, Guard) {
        match self {
            Db::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite:{}", dir.path().join("t.db").display());
                (url, Guard(Some(dir)))
            }
            Db::Postgres => {
                let admin = std::env::var("TENURE_TEST_PG").unwrap();
                test_key();
                let name = format!("tenure_t_{}", uuid::Uuid::new_v4().simple());
                tenure_engine::store::create_database(&admin, &name)
                    .await
                    .unwrap();
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                (format!("{base}/{name}"), Guard(None))
            }
        }
    }

    /// A store on a new, empty database.
    pub async fn open(self) -> (Store, Guard) {
        let (url, guard) = self.url().await;
        (Store::open(&url).await.unwrap(), guard)
    }
}

/// Declares `#[tokio::test]`s `NAME::sqlite` and `NAME::postgres` for each `async fn NAME(db: Db)`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::db::Db::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::db::Db::Postgres.available() {
                        super::$name($crate::db::Db::Postgres).await
                    }
                }
            }
        )*
    };
}

/// PostgreSQL requires `TENURE_SECRET_KEY`; tests use a fixed one unless it is set.
pub fn test_key() {
    if std::env::var_os("TENURE_SECRET_KEY").is_none() {
        std::env::set_var("TENURE_SECRET_KEY", "11".repeat(32));
    }
}
