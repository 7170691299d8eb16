//! `schedule` triggers through the scheduler, the Engine API and the store, on SQLite and on
//! PostgreSQL (`TENURE_TEST_PG`, an admin URL; skipped without it except under CI): two
//! schedulers on one database start each tick of an every-second schedule once; missed ticks
//! after a downtime are handled as `missed` says (time controlled through `now`, not slept);
//! a schedule first seen starts nothing for earlier ticks; invalid inputs start nothing, once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tenure_engine::store::{RunFilter, ScheduleMark, Store};
use tenure_engine::Engine;
use tenure_runbook::{compile, Plan, SourceFile};
use tenure_server::schedule::Scheduler;
use tenure_server::{AppState, Library, LibrarySource, RunbookEntry, ServerConfig};

/// A fixed set of runbooks.
struct Fixed(Vec<(String, Plan)>);

impl LibrarySource for Fixed {
    fn fingerprint(&self) -> u64 {
        0
    }
    fn load(&self) -> Library {
        Library {
            entries: self
                .0
                .iter()
                .map(|(text, plan)| RunbookEntry {
                    id: plan.runbook.clone(),
                    path: format!("{}.yaml", plan.runbook),
                    plan: Some(Arc::new(plan.clone())),
                    diagnostics: Vec::new(),
                    source: text.clone(),
                })
                .collect(),
        }
    }
    fn compile(&self, _name: &str, _text: &str) -> (Option<Plan>, Vec<String>) {
        (None, Vec::new())
    }
}

fn runbook(id: &str, triggers: &str) -> (String, Plan) {
    let text = format!(
        "runbook: {id}\nversion: 1\ntenant: contoso\ninputs:\n  at: {{ type: string, required: true }}\n  n: {{ type: int, default: 1 }}\ntriggers:\n{triggers}\nsteps:\n  hold: {{ uses: wait, with: {{ for: 1h }} }}\n"
    );
    let src = SourceFile::new(format!("{id}.yaml"), text.clone());
    let out = compile(&src, &tenure_steps::catalogue());
    for d in &out.diagnostics {
        eprintln!("{}", d.render(&src));
    }
    (text, out.plan.expect("compiles"))
}

#[derive(Clone, Copy, Debug)]
enum Db {
    Sqlite,
    Postgres,
}

/// A new, empty database: its URL, and the directory that holds it (SQLite).
async fn database(db: Db) -> Option<(String, Option<tempfile::TempDir>)> {
    match db {
        Db::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite:{}", dir.path().join("t.db").display());
            Some((url, Some(dir)))
        }
        Db::Postgres => {
            let Ok(admin) = std::env::var("TENURE_TEST_PG") else {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must set TENURE_TEST_PG so schedules are tested on PostgreSQL"
                );
                eprintln!("TENURE_TEST_PG is not set: skipping the PostgreSQL variant");
                return None;
            };
            if std::env::var_os("TENURE_SECRET_KEY").is_none() {
                std::env::set_var("TENURE_SECRET_KEY", "11".repeat(32));
            }
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let name = format!("tenure_sched_{}_{nanos}", std::process::id());
            tenure_engine::store::create_database(&admin, &name)
                .await
                .unwrap();
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            Some((format!("{base}/{name}"), None))
        }
    }
}

async fn node(url: &str, runbooks: Vec<(String, Plan)>) -> (Engine, AppState) {
    let store = Store::open(url).await.unwrap();
    let engine = Engine::new(
        store,
        tenure_engine::builtin::registry(),
        Arc::new(|id: &str| Ok(json!({"id": id, "domain": "contoso.example", "name": "Contoso"}))),
    );
    let state = AppState::new(
        engine.clone(),
        ServerConfig::default(),
        Arc::new(Fixed(runbooks)),
    );
    (engine, state)
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The ticks of a runbook's runs (`trigger.scheduled_at`), asserting none is there twice.
async fn ticks(engine: &Engine, runbook: &str) -> Vec<String> {
    let runs = engine
        .runs(&RunFilter {
            runbook: Some(runbook.into()),
            limit: 10_000,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let mut ticks: Vec<String> = runs
        .iter()
        .map(|r| {
            assert_eq!(r.context["trigger"]["source"], "schedule");
            let tick = r.context["trigger"]["scheduled_at"]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(
                r.context["inputs"]["at"],
                tick.as_str(),
                "map renders the tick"
            );
            tick
        })
        .collect();
    ticks.sort();
    let unique: BTreeSet<&String> = ticks.iter().collect();
    assert_eq!(unique.len(), ticks.len(), "a tick started twice: {ticks:?}");
    ticks
}

async fn two_schedulers_start_each_tick_once(db: Db) {
    let Some((url, _dir)) = database(db).await else {
        return;
    };
    let rb = || {
        vec![runbook(
            "every-second",
            "  - schedule: \"* * * * * *\"\n    map: { at: \"{{trigger.scheduled_at}}\" }",
        )]
    };
    let (engine, a) = node(&url, rb()).await;
    let (_, b) = node(&url, rb()).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let run = |state: AppState| {
        let mut stopped = stopped.clone();
        tokio::spawn(Scheduler::new(state).run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }))
    };
    let (ta, tb) = (run(a), run(b));
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    stop.send(true).unwrap();
    ta.await.unwrap();
    tb.await.unwrap();
    let ticks = ticks(&engine, "every-second").await;
    assert!(
        ticks.len() >= 3,
        "{db:?}: too few ticks in 4.5 s: {ticks:?}"
    );
    // One run per tick and no tick left out between the first and the last.
    let first = at(&ticks[0]);
    let expected: Vec<String> = (0..ticks.len() as i64)
        .map(|i| {
            (first + chrono::Duration::seconds(i))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .collect();
    assert_eq!(ticks, expected, "{db:?}");
    eprintln!("{db:?}: {} ticks in 4.5 s, one run each", ticks.len());
}

async fn missed_ticks_after_downtime(db: Db) {
    let Some((url, _dir)) = database(db).await else {
        return;
    };
    let rbs = || {
        vec![
            runbook(
                "catch-up",
                "  - schedule: \"0 * * * * *\"\n    map: { at: \"{{trigger.scheduled_at}}\" }",
            ),
            runbook(
                "skipper",
                "  - schedule: \"0 * * * * *\"\n    missed: skip\n    map: { at: \"{{trigger.scheduled_at}}\" }",
            ),
            runbook(
                "broken",
                "  - schedule: \"0 * * * * *\"\n    map: { at: \"{{trigger.scheduled_at}}\", n: \"not a number\" }",
            ),
        ]
    };
    let (engine, state) = node(&url, rbs()).await;
    let (_, other) = node(&url, rbs()).await;
    let s = Scheduler::new(state.clone());
    let library = state.library();

    // First seen at 12:00:30: the 12:00 tick (and every earlier one) is not started.
    let p = s.pass(&library, at("2026-11-30T12:00:30Z")).await.unwrap();
    assert!(p.started.is_empty() && p.refused == 0, "{p:?}");
    assert_eq!(p.next, Some(at("2026-11-30T12:01:00Z")));

    // 12:01 on time: each schedule starts it; the broken one is refused, once.
    let p = s
        .pass(&library, at("2026-11-30T12:01:00.200Z"))
        .await
        .unwrap();
    assert_eq!(p.started.len(), 2, "{p:?}");
    assert_eq!(p.refused, 1, "{p:?}");
    let p = s
        .pass(&library, at("2026-11-30T12:01:00.900Z"))
        .await
        .unwrap();
    assert!(p.started.is_empty() && p.refused == 0, "asked again: {p:?}");

    // Down until 15:00:30: 12:02..14:59 were missed; 15:00 is on time.
    let p = s.pass(&library, at("2026-11-30T15:00:30Z")).await.unwrap();
    assert_eq!(
        p.refused, 2,
        "the broken schedule's catch-up and on-time ticks: {p:?}"
    );
    assert_eq!(
        ticks(&engine, "catch-up").await,
        [
            "2026-11-30T12:01:00Z",
            "2026-11-30T14:59:00Z",
            "2026-11-30T15:00:00Z"
        ],
        "run_once: one run for the missed ticks"
    );
    assert_eq!(
        ticks(&engine, "skipper").await,
        ["2026-11-30T12:01:00Z", "2026-11-30T15:00:00Z"],
        "skip: none for the missed ticks"
    );
    assert!(ticks(&engine, "broken").await.is_empty());

    // Another node passing at the same time with the same ticks creates nothing.
    let p = Scheduler::new(other.clone())
        .pass(&other.library(), at("2026-11-30T15:00:31Z"))
        .await
        .unwrap();
    assert!(p.started.is_empty(), "{p:?}");
    assert_eq!(ticks(&engine, "catch-up").await.len(), 3);

    // The record moves only by compare-and-set: a stale record cannot move it.
    let store = engine.store();
    let marks = store.schedule_marks().await.unwrap();
    let mark = marks[&("catch-up".to_string(), 0)].clone();
    assert_eq!(
        mark.last_tick,
        at("2026-11-30T15:00:00Z").timestamp_millis()
    );
    let stale = ScheduleMark {
        last_tick: at("2026-11-30T12:01:00Z").timestamp_millis(),
        ..mark.clone()
    };
    let later = ScheduleMark {
        last_tick: at("2026-11-30T16:00:00Z").timestamp_millis(),
        ..mark.clone()
    };
    assert!(!store
        .schedule_advance("catch-up", 0, &stale, &later)
        .await
        .unwrap());
    assert!(store
        .schedule_advance("catch-up", 0, &mark, &later)
        .await
        .unwrap());
    assert!(!store
        .schedule_advance("catch-up", 0, &mark, &later)
        .await
        .unwrap());
    assert!(!store
        .schedule_first_seen("catch-up", 0, &stale)
        .await
        .unwrap());
}

async fn changed_schedule_starts_afresh(db: Db) {
    let Some((url, _dir)) = database(db).await else {
        return;
    };
    let hourly = runbook(
        "edited",
        "  - schedule: \"0 0 * * * *\"\n    map: { at: \"{{trigger.scheduled_at}}\" }",
    );
    let (engine, state) = node(&url, vec![hourly]).await;
    let s = Scheduler::new(state.clone());
    s.pass(&state.library(), at("2026-11-30T09:30:00Z"))
        .await
        .unwrap();
    // The runbook is edited at 12:10 to run at ten past: no catch-up for the old schedule's
    // missed hours, nor for the new one's ticks before the edit.
    let edited = runbook(
        "edited",
        "  - schedule: \"0 10 * * * *\"\n    map: { at: \"{{trigger.scheduled_at}}\" }",
    );
    let (_, state2) = node(&url, vec![edited]).await;
    let s2 = Scheduler::new(state2.clone());
    let p = s2
        .pass(&state2.library(), at("2026-11-30T12:10:30Z"))
        .await
        .unwrap();
    assert!(p.started.is_empty(), "{p:?}");
    let p = s2
        .pass(&state2.library(), at("2026-11-30T13:10:01Z"))
        .await
        .unwrap();
    assert_eq!(p.started.len(), 1, "{p:?}");
    assert_eq!(
        ticks(&engine, "edited").await,
        ["2026-11-30T13:10:00Z"],
        "only ticks after the edit"
    );
}

/// A database hiccup on PostgreSQL: every connection of the scheduler dropped (a failover),
/// then its table unusable for 2.5 s. The scheduler logs, retries with backoff, and starts the
/// ticks of the outage when the database is back (they are under a minute late, so on time):
/// no tick lost, none started twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_hiccup_loses_no_tick() {
    use sqlx::Connection;
    let Some((url, _dir)) = database(Db::Postgres).await else {
        return;
    };
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let rb = vec![runbook(
        "every-second",
        "  - schedule: \"* * * * * *\"\n    map: { at: \"{{trigger.scheduled_at}}\" }",
    )];
    let (engine, state) = node(&url, rb).await;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(Scheduler::new(state).run(async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    let name = url.rsplit('/').next().unwrap().to_string();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&name)
        .execute(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    sqlx::query("ALTER TABLE schedule_marks RENAME TO schedule_marks_away")
        .execute(&mut conn)
        .await
        .unwrap();
    let before = ticks(&engine, "every-second").await.len();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let during = ticks(&engine, "every-second").await.len();
    sqlx::query("ALTER TABLE schedule_marks_away RENAME TO schedule_marks")
        .execute(&mut conn)
        .await
        .unwrap();
    // The scheduler comes back after its backoff; on a loaded machine that may take longer
    // than the outage itself, so wait for the ticks rather than a fixed time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ticks(&engine, "every-second").await.len() < 7 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    assert!(
        during <= before + 1,
        "nothing starts while the database fails ({before} then {during})"
    );
    let ticks = ticks(&engine, "every-second").await;
    let first = at(&ticks[0]);
    let expected: Vec<String> = (0..ticks.len() as i64)
        .map(|i| {
            (first + chrono::Duration::seconds(i))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .collect();
    assert_eq!(ticks, expected, "no tick lost or doubled");
    assert!(ticks.len() >= 7, "{ticks:?}");
}

macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(super::Db::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(super::Db::Postgres).await
                }
            }
        )*
    };
}

on_both_databases!(
    two_schedulers_start_each_tick_once,
    missed_ticks_after_downtime,
    changed_schedule_starts_afresh
);
