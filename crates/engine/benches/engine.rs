//! Engine benchmark, on SQLite (WAL, synchronous=FULL) and, when `TENURE_TEST_PG` names a
//! server, on PostgreSQL. Two 8-step DAGs (1 → 4 parallel → 3 sequential): no-op steps, and
//! "onboard" steps that are real `http.request` POSTs to a local HTTP server the bench starts
//! (answering from memory, sharing the machine's cores like a local nginx would). For each:
//! runs/s and step transitions/s of a worker with its defaults draining queued runs, the
//! worker process's CPU ms per run and peak RSS, and beside them a non-durable baseline (the
//! same DAG in plain tokio + reqwest, the same number of steps in flight) so every figure
//! reads as a fraction of the machine's limit. On PostgreSQL the same workload is drained by
//! one and by three workers (three stores: three writers, three pools, as three nodes).
//! Then one run with a large `for_each` (time, CPU and peak memory), the approval decision →
//! next step started latency (p50/p99), and the memory of a separate worker process while
//! runs are parked on approvals.
//!
//! Run with `cargo bench -p tenure-engine --bench engine` (`BENCH_RUNS`, `BENCH_PARKED`,
//! `BENCH_ITEMS`, `BENCH_CONCURRENCY` change the sizes; `BENCH_ONLY_EACH` runs only the
//! large `for_each`, `BENCH_ONLY_DAGS` only the 8-step rows). CPU and memory are the whole bench process's
//! (`/proc/self/stat`, `VmHWM` reset through `/proc/self/clear_refs`), which includes the
//! HTTP server, as it does for the baseline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map};
use tenure_engine::driver::Worker;
use tenure_engine::journal::EventKind;
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

/// The 8-step DAG with `step(id, needs)` as each step's text.
fn dag(step: impl Fn(&str, &str) -> String) -> Plan {
    plan(&format!(
        "{}{}{}{}{}{}{}{}",
        step("a", ""),
        step("p1", "a"),
        step("p2", "a"),
        step("p3", "a"),
        step("p4", "a"),
        step("q1", "p1, p2, p3, p4"),
        step("q2", "q1"),
        step("q3", "q2")
    ))
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

/// Creates `n` runs, 32 callers at a time (as `tenure run --detach` from many shells would).
async fn create(store: &Store, plan: &Plan, n: usize) -> Vec<String> {
    let plan = Arc::new(plan.clone());
    let mut callers = Vec::new();
    for c in 0..32.min(n.max(1)) {
        let (engine, plan) = (engine(store), plan.clone());
        let mine = n / 32 + usize::from(c < n % 32);
        callers.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(mine);
            for _ in 0..mine {
                let start = StartRun {
                    plan: plan.clone(),
                    inputs: Map::new(),
                    trigger: Trigger::new("bench", None),
                    dedup_key: None,
                };
                ids.push(engine.start_run(start).await.unwrap().id);
            }
            ids
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for c in callers {
        ids.extend(c.await.unwrap());
    }
    ids
}

async fn count(store: &Store, status: &str) -> usize {
    store
        .count_by_status()
        .await
        .unwrap()
        .into_iter()
        .find(|(s, _)| s == status)
        .map_or(0, |(_, n)| n as usize)
}

/// Works with `stores.len()` workers (default concurrency) until `target` runs succeeded.
async fn drain(stores: &[Store], registry: &Registry, target: usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for (w, store) in stores.iter().enumerate() {
        let mut worker = Worker::new(store.clone(), registry.clone(), format!("bench-{w}"));
        if let Ok(n) = std::env::var("BENCH_CONCURRENCY") {
            worker = worker.with_concurrency(n.parse().expect("BENCH_CONCURRENCY is a number"));
        }
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            worker.work_until(|| stop.load(Ordering::Relaxed)).await
        }));
    }
    while count(&stores[0], "succeeded").await < target {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.unwrap().unwrap();
    }
}

/// The engine's kinds, the real `http.request`, and `notify.teams` doing nothing (made once:
/// the vendors' HTTP client loads the system's certificates).
fn registry() -> Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let mut registry = tenure_engine::builtin::registry();
            tenure_kinds::register(&mut registry, tenure_kinds::Vendors::unconfigured());
            registry.insert("notify.teams", Noop);
            registry
        })
        .clone()
}

/// One run whose step has a `for_each` over `items` input items (each a no-op step that
/// stores an output), then a step that reads them all.
fn big_each(wait: bool) -> Plan {
    let each = if wait {
        "{ uses: wait, for_each: \"{{ inputs.users }}\", with: { for: 1ms } }"
    } else {
        "{ uses: notify.teams, for_each: \"{{ inputs.users }}\", with: { message: \"hello {{ item }}\" } }"
    };
    let src = SourceFile::new(
        "bench.yaml",
        format!("runbook: each\nversion: 1\ntenant: contoso\ninputs:\n  users: {{ type: list }}\nsteps:\n  each: {each}\n  after: {{ uses: notify.teams, needs: [each], with: {{ message: \"{{{{ len steps.each.outputs }}}} done\" }} }}\n"),
    );
    compile(&src, &tenure_steps::contract_catalogue())
        .plan
        .expect("bench plan compiles")
}

/// Starts one run of [`big_each`] over `items` users and works it to its end with a worker
/// with its defaults; prints its time, CPU and peak memory.
async fn each_run(store: &Store, registry: &Registry, items: usize, wait: bool) {
    let users: Vec<serde_json::Value> = (0..items)
        .map(|i| json!(format!("user{i}@contoso.example")))
        .collect();
    let start = StartRun {
        plan: Arc::new(big_each(wait)),
        inputs: [("users".to_string(), json!(users))].into_iter().collect(),
        trigger: Trigger::new("bench", None),
        dedup_key: None,
    };
    let figures = Figures::measure(async {
        let id = engine(store).start_run(start).await.unwrap().id;
        let worker = Worker::new(store.clone(), registry.clone(), "each");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let bg =
            tokio::spawn(async move { worker.work_until(|| stop2.load(Ordering::Relaxed)).await });
        let status = loop {
            let status = store.run(&id).await.unwrap().status;
            if status.is_final() {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        stop.store(true, Ordering::Relaxed);
        bg.await.unwrap().unwrap();
        assert_eq!(status, tenure_engine::machine::RunStatus::Succeeded);
    })
    .await;
    println!(
        "  one run, for_each over {items} items ({}), 1 worker: {:.2} s, CPU {:.0} ms ({:.2} ms per item), peak {:.1} MiB",
        if wait { "1 ms waits" } else { "no-op steps" },
        figures.secs,
        figures.cpu_ms,
        figures.cpu_ms / items as f64,
        figures.peak_mib
    );
}

fn gate() -> Plan {
    plan("  ok: { uses: approval, with: { approvers: [lead@msp.example], message: go? } }\n  next: { uses: notify.teams, needs: [ok], with: { message: x } }\n")
}

/// The child process: a worker with its defaults whose memory the parent reads.
async fn worker_process(url: &str) {
    let store = Store::open(url).await.unwrap();
    let worker = Worker::new(store, registry(), "child");
    let _ = worker.work_until(|| false).await;
}

fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// This process's user + system CPU time, in ms (`/proc` counts in USER_HZ = 100 ticks/s).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of the line; 12 and 13 after the command name.
    (ticks(11) + ticks(12)) * 10.0
}

/// Resets the peak RSS (`VmHWM`) to the current RSS.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// What one workload cost.
struct Figures {
    secs: f64,
    cpu_ms: f64,
    peak_mib: f64,
}

impl Figures {
    async fn measure<F: std::future::Future<Output = ()>>(work: F) -> Figures {
        reset_peak();
        let (cpu, start) = (cpu_ms(), Instant::now());
        work.await;
        Figures {
            secs: start.elapsed().as_secs_f64(),
            cpu_ms: cpu_ms() - cpu,
            peak_mib: status_kib("self", "VmHWM:") as f64 / 1024.0,
        }
    }
}

/// The same DAG without durability: plain tokio tasks, at most `in_flight` steps at once,
/// each step a reqwest POST (or nothing).
async fn baseline(runs: usize, http: Option<(reqwest::Client, String)>, in_flight: usize) {
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let step = move |slots: Arc<tokio::sync::Semaphore>,
                     http: Option<(reqwest::Client, String)>,
                     id: &'static str| async move {
        let _slot = slots.acquire().await.unwrap();
        match http {
            Some((client, url)) => {
                let resp = client
                    .post(format!("{url}/{id}"))
                    .json(&json!({"step": id}))
                    .send()
                    .await
                    .unwrap();
                assert!(resp.status().is_success());
                let _: serde_json::Value = resp.json().await.unwrap();
            }
            None => tokio::task::yield_now().await,
        }
    };
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..runs {
        let (slots, http) = (slots.clone(), http.clone());
        all.spawn(async move {
            step(slots.clone(), http.clone(), "a").await;
            futures_join4(
                step(slots.clone(), http.clone(), "p1"),
                step(slots.clone(), http.clone(), "p2"),
                step(slots.clone(), http.clone(), "p3"),
                step(slots.clone(), http.clone(), "p4"),
            )
            .await;
            for id in ["q1", "q2", "q3"] {
                step(slots.clone(), http.clone(), id).await;
            }
        });
    }
    while let Some(r) = all.join_next().await {
        r.unwrap();
    }
}

async fn futures_join4(
    a: impl std::future::Future<Output = ()>,
    b: impl std::future::Future<Output = ()>,
    c: impl std::future::Future<Output = ()>,
    d: impl std::future::Future<Output = ()>,
) {
    tokio::join!(a, b, c, d);
}

/// A local HTTP server answering every POST from memory; returns its base URL.
async fn http_server() -> String {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/{*path}",
        post(|| async {
            axum::Json(json!({"id": "00000000-0000-0000-0000-000000000001", "created": true}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn step_transitions(store: &Store, ids: &[String]) -> usize {
    let mut n = 0;
    for id in ids {
        let run = store.run(id).await.unwrap();
        assert_eq!(
            run.status,
            tenure_engine::machine::RunStatus::Succeeded,
            "run {id}"
        );
        n += store
            .events(id)
            .await
            .unwrap()
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
    n
}

async fn suite(url: &str, label: &str, http: &str, pg: bool) {
    let store = Store::open(url).await.unwrap();
    let registry = registry();
    let runs = env("BENCH_RUNS", 1000);
    let noop = dag(|id, needs| {
        format!("  {id}: {{ uses: notify.teams, needs: [{needs}], with: {{ message: x }} }}\n")
    });
    let onboard = dag(|id, needs| {
        format!("  {id}: {{ uses: http.request, needs: [{needs}], with: {{ method: POST, url: \"{http}/users/{id}\", json: {{ step: {id}, tenant: contoso }} }} }}\n")
    });
    let client = reqwest::Client::new();
    println!("engine benchmark on {label}: {runs} runs per row, queued first, then drained by workers with their defaults");
    println!(
        "  {:<44} {:>7} {:>8} {:>10} {:>8} {:>8}",
        "workload", "runs/s", "steps/s", "CPU ms/run", "peak MiB", "of limit"
    );
    let mut done = 0;
    let dags = if std::env::var_os("BENCH_ONLY_EACH").is_some() {
        Vec::new()
    } else {
        vec![
            ("no-op 8-step", &noop, None),
            (
                "onboard 8-step (HTTP POSTs)",
                &onboard,
                Some((client.clone(), http.to_string())),
            ),
        ]
    };
    for (name, plan, http) in dags {
        let limit = Figures::measure(baseline(runs, http, 256)).await;
        let limit_rate = runs as f64 / limit.secs;
        println!(
            "  {:<44} {:>7.0} {:>8.0} {:>10.2} {:>8.1} {:>8}",
            format!("{name}, non-durable"),
            limit_rate,
            limit_rate * 8.0,
            limit.cpu_ms / runs as f64,
            limit.peak_mib,
            "(limit)"
        );
        let worker_counts: &[usize] = if pg { &[1, 3] } else { &[1] };
        for &workers in worker_counts {
            let ids = create(&store, plan, runs).await;
            let mut stores = vec![store.clone()];
            for _ in 1..workers {
                stores.push(Store::open(url).await.unwrap());
            }
            done += runs;
            let figures = Figures::measure(drain(&stores, &registry, done)).await;
            let transitions = step_transitions(&store, &ids).await;
            let rate = runs as f64 / figures.secs;
            println!(
                "  {:<44} {:>7.0} {:>8.0} {:>10.2} {:>8.1} {:>7.0}%",
                format!(
                    "{name}, {workers} worker{}",
                    if workers > 1 { "s" } else { "" }
                ),
                rate,
                transitions as f64 / figures.secs,
                figures.cpu_ms / runs as f64,
                figures.peak_mib,
                100.0 * rate / limit_rate
            );
        }
    }
    println!("  (steps/s: step transitions, i.e. ready + started + succeeded journal events, per second)");
    if std::env::var_os("BENCH_ONLY_DAGS").is_some() {
        return;
    }
    for wait in [false, true] {
        each_run(&store, &registry, env("BENCH_ITEMS", 3000), wait).await;
    }
    if std::env::var_os("BENCH_ONLY_EACH").is_some() {
        return;
    }

    // Approval decision → next step started.
    let gated = create(&store, &gate(), 100).await;
    let worker = Worker::new(store.clone(), registry.clone(), "latency");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let bg = tokio::spawn(async move { worker.work_until(|| stop2.load(Ordering::Relaxed)).await });
    while count(&store, "waiting").await < gated.len() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
                user_agent: None,
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
            tokio::time::sleep(Duration::from_micros(250)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    bg.await.unwrap().unwrap();
    latencies.sort();
    let pct = |p: usize| {
        latencies[(latencies.len() * p / 100).min(latencies.len() - 1)].as_secs_f64() * 1e3
    };
    println!(
        "  approval decision -> next step started: p50 {:.1} ms, p99 {:.1} ms ({} decisions; a worker in this process)",
        pct(50),
        pct(99),
        latencies.len()
    );

    // Parked runs cost a worker nothing: a separate worker process parks N runs on approvals
    // and its memory is read before and after.
    let parked = env("BENCH_PARKED", 10_000);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("BENCH_ROLE", "worker")
        .env("BENCH_DB", url)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let park = |n: usize| {
        let (store, gate) = (store.clone(), gate());
        async move {
            let waiting_before = count(&store, "waiting").await;
            create(&store, &gate, n).await;
            while count(&store, "waiting").await < waiting_before + n {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };
    // Warm up (allocator arenas, statement caches, database page caches), then measure.
    park(1000).await;
    let before = status_kib(&pid, "VmRSS:");
    let park_start = Instant::now();
    park(parked).await;
    let parked_in = park_start.elapsed();
    let after = status_kib(&pid, "VmRSS:");
    let peak = status_kib(&pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    println!("  {parked} more runs parked on approvals by a separate worker process in {:.1} s; its memory {:.1} MiB after a 1,000-run warm-up -> {:.1} MiB with them parked ({:+.3} KiB per parked run), peak {:.1} MiB",
        parked_in.as_secs_f64(), before as f64 / 1024.0, after as f64 / 1024.0, (after as f64 - before as f64) / parked as f64, peak as f64 / 1024.0);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var("BENCH_ROLE").as_deref() == Ok("worker") {
        let url = std::env::var("BENCH_DB").expect("BENCH_DB");
        worker_process(&url).await;
        return;
    }
    let http = http_server().await;
    let dir = std::env::temp_dir().join(format!("tenure-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = format!("sqlite:{}", dir.join("bench.db").display());
    if std::env::var_os("BENCH_SKIP_SQLITE").is_none() {
        suite(&sqlite, "SQLite (WAL, synchronous=FULL)", &http, false).await;
    }
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
            suite(&format!("{base}/{name}"), "PostgreSQL", &http, true).await;
        }
        Err(_) => println!(
            "(set TENURE_TEST_PG=postgres://USER:PASS@HOST/DB to benchmark PostgreSQL too)"
        ),
    }
    let _ = std::fs::remove_dir_all(dir);
}
