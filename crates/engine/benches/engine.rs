//! Engine benchmark on SQLite (WAL, synchronous=FULL): runs/s and step transitions/s for a
//! no-op 8-step DAG (1 → 4 parallel → 3 sequential) over 1,000 runs; the median time from an
//! approval decision to the next step starting; and the worker's memory with many runs parked
//! on approvals. Run with `cargo bench -p tenure-engine --bench engine`
//! (`BENCH_RUNS`, `BENCH_PARKED` change the sizes).

use std::time::{Duration, Instant};

use serde_json::{json, Map};
use tenure_engine::driver::{decide, start_context, Worker};
use tenure_engine::journal::EventKind;
use tenure_engine::kinds::{BoxFuture, Call, Executor, Outcome, Registry, StepError};
use tenure_engine::machine::RunStatus;
use tenure_engine::store::Store;
use tenure_runbook::{compile, Plan, Renderer, SourceFile};

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
    compile(&src, &tenure_steps::catalogue())
        .plan
        .expect("bench plan compiles")
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn create(store: &Store, plan: &Plan, n: usize) -> Vec<String> {
    let renderer = Renderer::new();
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let ctx = start_context(
            plan,
            Map::new(),
            json!({"id": "contoso"}),
            json!({}),
            &renderer,
        )
        .unwrap();
        ids.push(store.create_run(plan, ctx, "bench", None).await.unwrap());
    }
    ids
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::temp_dir().join(format!("tenure-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&format!("sqlite:{}", dir.join("bench.db").display()))
        .await
        .unwrap();
    let mut registry = Registry::builtin();
    registry.insert("notify.teams", Noop);
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
    let start = Instant::now();
    let ids = create(&store, &dag, runs).await;
    let created = start.elapsed();
    drain(&store, env("BENCH_WORKERS", 32), &registry).await;
    let elapsed = start.elapsed();
    let mut events = 0;
    for id in &ids {
        assert_eq!(store.run(id).await.unwrap().status, RunStatus::Succeeded);
        events += store.events(id).await.unwrap().len();
    }
    println!("engine benchmark (SQLite, WAL, synchronous=FULL, 4 worker tasks on 2 threads)");
    println!("  {runs} runs of a no-op 8-step DAG (1 -> 4 parallel -> 3 sequential): {:.1} s ({:.1} s creating)", elapsed.as_secs_f64(), created.as_secs_f64());
    println!(
        "  {:.0} runs/s, {:.0} journaled transitions/s ({events} events)",
        runs as f64 / elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );

    // Approval decision → next step started.
    let gate = plan("  ok: { uses: approval, with: { approvers: [lead@msp.example], message: go? } }\n  next: { uses: notify.teams, needs: [ok], with: { message: x } }\n");
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
        decide(
            &store,
            &format!("{id}:ok"),
            "lead@msp.example",
            true,
            None,
            "bench",
        )
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
    println!("  approval decision -> next step started: median {:.1} ms, p90 {:.1} ms ({} runs; in-process workers are woken at once; other processes poll every <=50 ms)",
        latencies[latencies.len() / 2].as_secs_f64() * 1e3, latencies[latencies.len() * 9 / 10].as_secs_f64() * 1e3, latencies.len());

    // Parked runs cost the worker nothing: memory with N runs waiting on approvals.
    let parked = env("BENCH_PARKED", 2000);
    let before = rss_kib();
    let park_start = Instant::now();
    create(&store, &gate, parked).await;
    drain(&store, 4, &registry).await;
    let waiting = store.runs(Some("waiting")).await.unwrap().len();
    let worker = Worker::new(store.clone(), registry.clone(), "idle");
    for _ in 0..50 {
        worker.tick().await.unwrap();
    }
    let after = rss_kib();
    println!("  {waiting} runs parked on approvals in {:.1} s; process memory {:.1} MiB -> {:.1} MiB ({:+.2} KiB per parked run; a parked run is a row, no task or timer in memory)",
        park_start.elapsed().as_secs_f64(), before as f64 / 1024.0, after as f64 / 1024.0, (after as f64 - before as f64) / waiting.max(1) as f64);
    let _ = std::fs::remove_dir_all(dir);
}
