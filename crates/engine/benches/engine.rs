//! Engine benchmark, on SQLite (WAL, synchronous=FULL) and, when `TENURE_TEST_PG` names a
//! server, on PostgreSQL: runs/s and step transitions/s for a no-op 8-step DAG (1 → 4
//! parallel → 3 sequential) over 1,000 runs; the median time from an approval decision to the
//! next step starting; and the memory of a separate worker process while 10,000 runs are
//! parked on approvals. Run with `cargo bench -p tenure-engine --bench engine`
//! (`BENCH_RUNS`, `BENCH_PARKED`, `BENCH_WORKERS` change the sizes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map};
use tenure_engine::driver::Worker;
use tenure_engine::journal::EventKind;
use tenure_engine::machine::RunStatus;
use tenure_engine::store::Store;
use tenure_engine::{Decide, Engine, StartRun, Trigger};
use tenure_runbook::{compile, Plan, SourceFile};
use tenure_steps::{BoxFuture, Call, Executor, Outcome, Registry, StepError};

struct Noop;

impl Executor for Noop {
    fn execute<'a>(&'a self, _call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async { Ok(Outcome::Done(json!({"posted": true}))) })
    }
}

fn plan(text: &str) -> Plan {
    let src = SourceFile::new(
        "bench.yaml",
        format!("runbook: bench\nversion: 1\ntenant: contoso\nsteps:\n{text}"),
    );
    compile(&src, &tenure_steps::contract_catalogue())
        .plan
        .expect("bench plan compiles")
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn engine(store: &Store) -> Engine {
    Engine::new(
        store.clone(),
        registry(),
        Arc::new(|id: &str| Ok(json!({ "id": id }))),
    )
}

async fn create(store: &Store, plan: &Plan, n: usize) -> Vec<String> {
    let engine = engine(store);
    let plan = Arc::new(plan.clone());
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let start = StartRun {
            plan: plan.clone(),
            inputs: Map::new(),
            trigger: Trigger::new("bench", None),
            dedup_key: None,
        };
        ids.push(engine.start_run(start).await.unwrap().id);
    }
    ids
}

async fn waiting(store: &Store) -> usize {
    store
        .count_by_status()
        .await
        .unwrap()
        .into_iter()
        .find(|(s, _)| s == "waiting")
        .map_or(0, |(_, n)| n as usize)
}

async fn drain(store: &Store, workers: usize, registry: &Registry) {
    let mut handles = Vec::new();
    for w in 0..workers {
        let worker = Worker::new(store.clone(), registry.clone(), format!("bench-{w}"));
        handles.push(tokio::spawn(async move {
            let mut idle = 0;
            while idle < 3 {
                if worker.tick().await.unwrap() {
                    idle = 0;
                } else {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

fn registry() -> Registry {
    let mut registry = tenure_engine::builtin::registry();
    registry.insert("notify.teams", Noop);
    registry
}

fn gate() -> Plan {
    plan("  ok: { uses: approval, with: { approvers: [lead@msp.example], message: go? } }\n  next: { uses: notify.teams, needs: [ok], with: { message: x } }\n")
}

/// The child process: an idle-then-busy worker whose memory the parent reads.
async fn worker_process(url: &str) {
    let store = Store::open(url).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..8 {
        let worker = Worker::new(store.clone(), registry(), format!("child-{n}"));
        tasks.push(tokio::spawn(
            async move { worker.work_until(|| false).await },
        ));
    }
    for t in tasks {
        let _ = t.await;
    }
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn suite(url: &str, label: &str) {
    let store = Store::open(url).await.unwrap();
    let registry = registry();
    let s = |id: &str, needs: &str| {
        format!("  {id}: {{ uses: notify.teams, needs: [{needs}], with: {{ message: x }} }}\n")
    };
    let dag = plan(&format!(
        "{}{}{}{}{}{}{}{}",
        s("a", ""),
        s("p1", "a"),
        s("p2", "a"),
        s("p3", "a"),
        s("p4", "a"),
        s("q1", "p1, p2, p3, p4"),
        s("q2", "q1"),
        s("q3", "q2")
    ));

    let runs = env("BENCH_RUNS", 1000);
    let workers = env("BENCH_WORKERS", 64);
    let start = Instant::now();
    let ids = create(&store, &dag, runs).await;
    let created = start.elapsed();
    drain(&store, workers, &registry).await;
    let elapsed = start.elapsed();
    let mut events = 0;
    let mut step_transitions = 0;
    for id in &ids {
        assert_eq!(store.run(id).await.unwrap().status, RunStatus::Succeeded);
        let journal = store.events(id).await.unwrap();
        events += journal.len();
        step_transitions += journal
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::StepReady { .. }
                        | EventKind::AttemptStarted { .. }
                        | EventKind::AttemptSucceeded { .. }
                )
            })
            .count();
    }
    println!("engine benchmark on {label} ({workers} worker tasks, 2 threads, group commit)");
    println!("  {runs} runs of a no-op 8-step DAG (1 -> 4 parallel -> 3 sequential): {:.1} s, of which {:.1} s creating the runs one by one",
        elapsed.as_secs_f64(), created.as_secs_f64());
    println!(
        "  {:.0} runs/s, {:.0} step transitions/s (ready, started, succeeded: {step_transitions}), {:.0} journal events/s ({events})",
        runs as f64 / elapsed.as_secs_f64(),
        step_transitions as f64 / elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );

    // Approval decision → next step started.
    let gate = gate();
    let gated = create(&store, &gate, 50).await;
    drain(&store, 4, &registry).await;
    let worker = Worker::new(store.clone(), registry.clone(), "latency");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let bg = tokio::spawn(async move {
        worker
            .work_until(|| stop2.load(std::sync::atomic::Ordering::Relaxed))
            .await
    });
    let mut latencies = Vec::new();
    for id in &gated {
        engine(&store)
            .decide(Decide {
                run_id: id.clone(),
                step: "ok".into(),
                approver: "lead@msp.example".into(),
                approve: true,
                comment: None,
                source: "bench".into(),
            })
            .await
            .unwrap();
        let decided = Instant::now();
        loop {
            let started = store.events(id).await.unwrap().iter().any(
                |e| matches!(&e.kind, EventKind::AttemptStarted { step, .. } if step == "next"),
            );
            if started {
                latencies.push(decided.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    bg.await.unwrap().unwrap();
    latencies.sort();
    println!("  approval decision -> next step started: median {:.1} ms, p90 {:.1} ms ({} decisions; a worker in this process)",
        latencies[latencies.len() / 2].as_secs_f64() * 1e3, latencies[latencies.len() * 9 / 10].as_secs_f64() * 1e3, latencies.len());

    // Parked runs cost a worker nothing: a separate worker process parks N runs on approvals
    // and its memory is read before and after.
    let parked = env("BENCH_PARKED", 10_000);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("BENCH_ROLE", "worker")
        .env("BENCH_DB", url)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let park = |n: usize| {
        let (store, gate) = (store.clone(), gate.clone());
        async move {
            let waiting_before = waiting(&store).await;
            create(&store, &gate, n).await;
            while waiting(&store).await < waiting_before + n {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };
    // Warm up (allocator arenas, statement caches, database page caches), then measure.
    park(1000).await;
    let before = rss_of(child.id());
    let park_start = Instant::now();
    park(parked).await;
    let parked_in = park_start.elapsed();
    let after = rss_of(child.id());
    let _ = child.kill();
    let _ = child.wait();
    println!("  {parked} more runs parked on approvals by a separate worker process in {:.1} s; its memory {:.1} MiB after a 1,000-run warm-up -> {:.1} MiB with them parked ({:+.3} KiB per parked run)",
        parked_in.as_secs_f64(), before as f64 / 1024.0, after as f64 / 1024.0, (after as f64 - before as f64) / parked as f64);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var("BENCH_ROLE").as_deref() == Ok("worker") {
        let url = std::env::var("BENCH_DB").expect("BENCH_DB");
        worker_process(&url).await;
        return;
    }
    let dir = std::env::temp_dir().join(format!("tenure-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = format!("sqlite:{}", dir.join("bench.db").display());
    suite(&sqlite, "SQLite (WAL, synchronous=FULL)").await;
    match std::env::var("TENURE_TEST_PG") {
        Ok(admin) => {
            if std::env::var_os("TENURE_SECRET_KEY").is_none() {
                // PostgreSQL requires the shared key (the worker process inherits it).
                std::env::set_var("TENURE_SECRET_KEY", "11".repeat(32));
            }
            let name = format!("tenure_bench_{}", std::process::id());
            tenure_engine::store::create_database(&admin, &name)
                .await
                .unwrap();
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            suite(&format!("{base}/{name}"), "PostgreSQL").await;
        }
        Err(_) => println!(
            "(set TENURE_TEST_PG=postgres://USER:PASS@HOST/DB to benchmark PostgreSQL too)"
        ),
    }
    let _ = std::fs::remove_dir_all(dir);
}
