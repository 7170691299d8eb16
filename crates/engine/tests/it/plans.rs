//! Plans live once per hash in `plans`, apart from the runs that pin them. A database created
//! before that table (each run's plan in its own row) keeps its runs: the migration moves
//! their plans, and new runs of the same plan share the stored one.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{json, Map};
use sqlx::migrate::Migrator;
use tenure_engine::machine::RunMachine;
use tenure_engine::store::Store;
use tenure_engine::{Engine, StartRun, Trigger};

use crate::db::Db;
use crate::machine::plan_of;

/// The migrations up to (not including) `version`.
fn before(mut migrator: Migrator, version: i64) -> Migrator {
    let kept: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect();
    migrator.migrations = Cow::Owned(kept);
    migrator
}

const OLD_RUN: &str = "INSERT INTO runs (id, runbook, version, plan_hash, plan, context, machine, status, created_at, updated_at) VALUES ($1, 't', 1, $2, $3, '{}', $4, 'queued', 1, 1)";

async fn plans_move_out_of_the_runs_of_an_existing_database(db: Db) {
    let (url, _guard) = db.url().await;
    let plan = plan_of("steps:\n  a: { uses: notify.teams, with: { message: hi } }\n");
    let plan_json = serde_json::to_string(&plan).unwrap();
    let machine = serde_json::to_string(&RunMachine::new(&plan)).unwrap();
    // The database as the release before `plans` left it: two runs, each with its plan.
    match db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
                .await
                .unwrap();
            before(sqlx::migrate!("./migrations/sqlite"), 9)
                .run(&pool)
                .await
                .unwrap();
            for id in ["r1", "r2"] {
                sqlx::query(OLD_RUN)
                    .bind(id)
                    .bind(&plan.hash)
                    .bind(&plan_json)
                    .bind(&machine)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            before(sqlx::migrate!("./migrations/postgres"), 8)
                .run(&pool)
                .await
                .unwrap();
            for id in ["r1", "r2"] {
                sqlx::query(OLD_RUN)
                    .bind(id)
                    .bind(&plan.hash)
                    .bind(&plan_json)
                    .bind(&machine)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
    }
    let store = Store::open(&url).await.unwrap();
    for id in ["r1", "r2"] {
        assert_eq!(*store.run(id).await.unwrap().plan, plan, "{id}");
    }
    // A new run of the same plan shares the stored one.
    let engine = Engine::new(
        store.clone(),
        tenure_engine::builtin::registry(),
        Arc::new(|id: &str| Ok(json!({"id": id, "name": id}))),
    );
    let started = engine
        .start_run(StartRun {
            plan: Arc::new(plan.clone()),
            inputs: Map::new(),
            trigger: Trigger::new("api", None),
            dedup_key: None,
        })
        .await
        .unwrap();
    let reopened = Store::open(&url).await.unwrap();
    assert_eq!(*reopened.run(&started.id).await.unwrap().plan, plan);
    assert_eq!(
        count(db, &url, "SELECT count(*) FROM plans").await.unwrap(),
        1
    );
    assert!(
        count(db, &url, "SELECT count(plan) FROM runs")
            .await
            .is_err(),
        "runs keep no plan"
    );
}

/// A count read straight from the database.
async fn count(db: Db, url: &str, sql: &str) -> Result<i64, sqlx::Error> {
    match db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await?;
            let n = sqlx::query_scalar(sql).fetch_one(&pool).await;
            pool.close().await;
            n
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(url).await?;
            let n = sqlx::query_scalar(sql).fetch_one(&pool).await;
            pool.close().await;
            n
        }
    }
}

crate::on_both_databases!(plans_move_out_of_the_runs_of_an_existing_database);

/// Another process (PostgreSQL) that stored a plan in its open transaction and then takes a
/// dedup key's lock: a creation of a run of the same plan with that key, here, must not hold
/// the key's lock while it waits for the plan row (both would wait on each other until the
/// server's deadlock check killed one, a second later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_stored_by_another_process_never_deadlocks_a_creation() {
    use sqlx::Connection;
    if !Db::Postgres.available() {
        return;
    }
    let (url, _guard) = Db::Postgres.url().await;
    let store = Store::open(&url).await.unwrap();
    let engine = Engine::new(
        store.clone(),
        tenure_engine::builtin::registry(),
        Arc::new(|id: &str| Ok(json!({"id": id, "name": id}))),
    );
    let plan = plan_of("steps:\n  a: { uses: notify.teams, with: { message: shared } }\n");
    let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("INSERT INTO plans (hash, plan) VALUES ($1, $2)")
        .bind(&plan.hash)
        .bind(serde_json::to_string(&plan).unwrap())
        .execute(&mut other)
        .await
        .unwrap();
    let creating = tokio::spawn({
        let plan = plan.clone();
        async move {
            engine
                .start_run(StartRun {
                    plan: Arc::new(plan),
                    inputs: Map::new(),
                    trigger: Trigger::new("webhook:halo", None),
                    dedup_key: Some("T-77".into()),
                })
                .await
        }
    });
    // Give the creation time to reach the plan this transaction holds. It must not be holding
    // the dedup key while it waits there: the key is free to take at once (before, it was
    // held, and taking it waited for the deadlock check to kill one side).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
        .bind("T-77")
        .fetch_one(&mut other)
        .await
        .unwrap();
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    let started = creating.await.unwrap().unwrap();
    assert!(
        free,
        "the creation held the dedup key while it waited for the plan"
    );
    assert_eq!(*store.run(&started.id).await.unwrap().plan, plan);
}

/// A plan changed after it was compiled, its hash left as it was, is refused: runs share their
/// plan by hash, so it would run as the plan that hash names.
async fn a_plan_that_does_not_match_its_hash_is_refused(db: Db) {
    let (store, _guard) = db.open().await;
    let engine = Engine::new(
        store.clone(),
        tenure_engine::builtin::registry(),
        Arc::new(|id: &str| Ok(json!({"id": id, "name": id}))),
    );
    let start = |plan: &tenure_runbook::Plan| StartRun {
        plan: Arc::new(plan.clone()),
        inputs: Map::new(),
        trigger: Trigger::new("api", None),
        dedup_key: None,
    };
    let plan = plan_of("steps:\n  a: { uses: notify.teams, with: { message: first } }\n");
    let first = engine.start_run(start(&plan)).await.unwrap();
    let mut changed = plan_of("steps:\n  a: { uses: notify.teams, with: { message: second } }\n");
    changed.hash = plan.hash.clone();
    assert!(engine.start_run(start(&changed)).await.is_err());
    assert_eq!(*store.run(&first.id).await.unwrap().plan, plan);
    changed.hash = changed.compute_hash();
    let second = engine.start_run(start(&changed)).await.unwrap();
    assert_eq!(*store.run(&second.id).await.unwrap().plan, changed);
}

crate::on_both_databases!(a_plan_that_does_not_match_its_hash_is_refused);
