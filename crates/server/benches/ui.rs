//! Server-side latency of the web UI's pages over a filled SQLite store: the whole router
//! called in process (`oneshot`, signed in), so the figures are the server's work without a
//! network. The store holds `UI_BENCH_RUNS` runs (default 10,000) of three runbooks, created
//! through the Engine API and worked by real workers to varied statuses (succeeded, failed,
//! waiting on an approval, cancelled), each on one of 40 tenants with its own person and
//! ticket. Each page is requested `UI_BENCH_REQS` times (default 200): p50 and p99.
//! `UI_BENCH_BIG=1` adds the runs list at 100,000 runs (a few minutes to fill).
//!
//! Beside the list's free-text search (id, person, ticket, runbook columns) the table shows
//! what the same search would cost if it also scanned each run's whole context (raw SQL on
//! the same database), the choice `docs/server.md` explains.

#[path = "../tests/support/mod.rs"]
mod support;
#[path = "../tests/support_ui/mod.rs"]
mod support_ui;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Map, Value};
use sqlx::Row;
use support_ui::{ui_with, Ui};
use tenure_engine::store::RunFilter;
use tenure_engine::{StartRun, Trigger};
use tenure_steps::{BoxFuture, Call, Executor, Outcome, Registry, StepError};

const LEAVER: &str = r#"runbook: leaver
version: 4
tenant: "{{inputs.tenant}}"
inputs:
  upn: { type: string, required: true }
  tenant: { type: string, required: true }
  ticket_id: { type: string }
  password: { type: secret }
steps:
  block: { uses: entra.disable_sign_in, with: { user: "{{inputs.upn}}" } }
  note:
    needs: [block]
    uses: psa.add_ticket_note
    with: { ticket: "{{inputs.ticket_id}}", body: "Sign-in blocked for {{inputs.upn}}." }
"#;

const STARTER: &str = r#"runbook: starter
version: 2
tenant: "{{inputs.tenant}}"
inputs:
  upn: { type: string, required: true }
  tenant: { type: string, required: true }
steps:
  approve:
    uses: approval
    with: { approvers: [lead@msp.example], expires: 30d, message: "Create {{inputs.upn}}?" }
  block:
    needs: [approve]
    uses: entra.disable_sign_in
    with: { user: "{{inputs.upn}}" }
"#;

const REPORT: &str = r#"runbook: report
version: 1
tenant: contoso
steps:
  hold: { uses: wait, with: { for: 1ms } }
"#;

/// The secret input every leaver run is given: no page may show it.
const SECRET: &str = "Bench-Secret-Value-1";

const BOOKS: &[(&str, &str)] = &[
    ("leaver.yaml", LEAVER),
    ("starter.yaml", STARTER),
    ("report.yaml", REPORT),
];

/// Succeeds at once, except for a user whose name starts with `fail` (a permanent error).
#[derive(Clone)]
struct Fake;

impl Executor for Fake {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move {
            if call.params["user"]
                .as_str()
                .is_some_and(|u| u.starts_with("fail"))
            {
                return Err(StepError::permanent("user_not_found", "no such user"));
            }
            Ok(Outcome::Done(
                json!({"id": "00000000-0000-0000-0000-000000000001"}),
            ))
        })
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn plan(text: &str) -> Arc<tenure_runbook::Plan> {
    let src = tenure_runbook::SourceFile::new("b.yaml", text.to_string());
    Arc::new(
        tenure_runbook::compile(&src, &tenure_steps::catalogue())
            .plan
            .expect("compiles"),
    )
}

/// The person of run `i`.
fn upn(i: usize) -> String {
    let who = if i % 20 == 7 { "fail" } else { "user" };
    format!("{who}{i}@tenant{}.example", i % 40)
}

/// Fills the store with `n` runs (from `from` on), worked to their final or waiting status.
async fn fill(ui: &Ui, from: usize, n: usize) -> Duration {
    let t = Instant::now();
    let plans = Arc::new([plan(LEAVER), plan(STARTER), plan(REPORT)]);
    let mut tasks = Vec::new();
    let senders = 32;
    for w in 0..senders {
        let engine = ui.engine.clone();
        let plans = plans.clone();
        tasks.push(tokio::spawn(async move {
            let mut cancel = Vec::new();
            let mut i = from + w;
            while i < from + n {
                let (p, inputs) = match i % 10 {
                    0 => (
                        &plans[1],
                        json!({"upn": upn(i), "tenant": format!("tenant{}", i % 40)}),
                    ),
                    1 => (&plans[2], json!({})),
                    _ => (
                        &plans[0],
                        json!({"upn": upn(i), "tenant": format!("tenant{}", i % 40),
                               "ticket_id": format!("T-{}", 100_000 + i), "password": SECRET}),
                    ),
                };
                let inputs: Map<String, Value> = inputs.as_object().cloned().unwrap();
                let id = engine
                    .start_run(StartRun {
                        plan: p.clone(),
                        inputs,
                        trigger: Trigger::new("api", Some("bench".into())),
                        dedup_key: None,
                    })
                    .await
                    .unwrap()
                    .id;
                if i % 25 == 3 {
                    cancel.push(id);
                }
                i += senders;
            }
            for id in cancel {
                let _ = engine.cancel(&id, "bench").await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for k in 0..2 {
        let worker = ui.engine.worker(k);
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            worker.work_until(|| stop.load(Ordering::SeqCst)).await
        }));
    }
    loop {
        let counts = ui.engine.count_by_status().await.unwrap();
        let busy: i64 = counts
            .iter()
            .filter(|(s, _)| s == "running" || s == "queued")
            .map(|(_, n)| n)
            .sum();
        if busy == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.await;
    }
    t.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (p50, p99) in ms of `reqs` signed-in GETs of `path`, each answered 200.
async fn measure(ui: &Ui, path: &str, reqs: usize) -> (f64, f64) {
    for _ in 0..5 {
        ui.get(path).await;
    }
    let mut lat = Vec::with_capacity(reqs);
    for _ in 0..reqs {
        let t = Instant::now();
        let (status, body) = ui.get(path).await;
        lat.push(t.elapsed());
        assert_eq!(status, 200, "{path}: {body}");
        assert!(!body.contains(SECRET), "a secret on {path}");
    }
    lat.sort();
    let at = |p: f64| ms(lat[((lat.len() as f64 - 1.0) * p).round() as usize]);
    (at(0.5), at(0.99))
}

/// (p50, p99) in ms of a raw query on the store's database.
async fn measure_sql(url: &str, sql: &str, arg: &str, reqs: usize) -> (f64, f64) {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let mut lat = Vec::with_capacity(reqs);
    for _ in 0..reqs + 3 {
        let t = Instant::now();
        let rows = sqlx::query(sql).bind(arg).fetch_all(&pool).await.unwrap();
        lat.push(t.elapsed());
        assert!(rows.len() <= 51);
        let _ = rows.first().map(|r| r.get::<String, _>(0));
    }
    lat.drain(..3);
    lat.sort();
    let at = |p: f64| ms(lat[((lat.len() as f64 - 1.0) * p).round() as usize]);
    (at(0.5), at(0.99))
}

/// The list's cursor after the run `depth` runs down from the newest.
async fn cursor_at(ui: &Ui, depth: usize) -> String {
    let rows = ui
        .engine
        .run_rows(&RunFilter {
            limit: depth,
            ..Default::default()
        })
        .await
        .unwrap();
    let last = rows.last().unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}:{}", last.created_at, last.id))
}

fn print(label: &str, (p50, p99): (f64, f64)) {
    println!("  {label:58} p50 {p50:8.2} ms   p99 {p99:8.2} ms");
}

/// The runs list's figures at the store's current size.
async fn list_figures(ui: &Ui, runs: usize, reqs: usize) {
    let person = upn(runs / 2 + 2);
    let deep = cursor_at(ui, runs * 9 / 10).await;
    print("GET /ui/runs", measure(ui, "/ui/runs", reqs).await);
    print(
        "GET /ui/runs/rows (the 2 s poll)",
        measure(ui, "/ui/runs/rows", reqs).await,
    );
    print(
        &format!("GET /ui/runs?q={person}"),
        measure(ui, &format!("/ui/runs?q={person}"), reqs).await,
    );
    print(
        "GET /ui/runs?q=no-such-person (every row scanned)",
        measure(ui, "/ui/runs?q=no-such-person", reqs).await,
    );
    print(
        "GET /ui/runs?status=failed",
        measure(ui, "/ui/runs?status=failed", reqs).await,
    );
    print(
        "GET /ui/runs?tenant=tenant7&status=waiting",
        measure(ui, "/ui/runs?tenant=tenant7&status=waiting", reqs).await,
    );
    print(
        &format!("GET /ui/runs?cursor=… ({}th run down)", runs * 9 / 10),
        measure(ui, &format!("/ui/runs?cursor={deep}"), reqs).await,
    );
    let context = "SELECT id FROM runs WHERE lower(context) LIKE ? ORDER BY created_at DESC, id DESC LIMIT 51";
    print(
        "  for comparison: the same q over whole contexts (raw SQL)",
        measure_sql(&ui.url, context, "%no-such-person%", reqs.min(50)).await,
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let runs = env("UI_BENCH_RUNS", 10_000);
        let reqs = env("UI_BENCH_REQS", 200);
        let mut registry: Registry = tenure_engine::builtin::registry();
        registry.insert("entra.disable_sign_in", Fake);
        registry.insert("psa.add_ticket_note", Fake);
        let ui = ui_with(BOOKS, registry).await;
        let took = fill(&ui, 0, runs).await;
        let counts = ui.engine.count_by_status().await.unwrap();
        println!(
            "UI latency, SQLite, {runs} runs (filled in {:.1} s: {counts:?}), {reqs} requests each:",
            took.as_secs_f64()
        );
        list_figures(&ui, runs, reqs).await;
        let some = ui
            .engine
            .run_rows(&RunFilter {
                runbook: Some("leaver".into()),
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        print(
            "GET /ui/runs/{id} (a leaver run)",
            measure(&ui, &format!("/ui/runs/{}", some[0].id), reqs).await,
        );
        let waiting = ui
            .engine
            .run_rows(&RunFilter {
                runbook: Some("starter".into()),
                status: Some("waiting".into()),
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        if let Some(w) = waiting.first() {
            let record = ui.engine.run(&w.id).await.unwrap();
            let gate = record.machine.gate("approve").unwrap();
            let link = ui.links.url(&tenure_server::approvals::Claim {
                run: w.id.clone(),
                step: "approve".into(),
                attempt: gate.attempt,
                approver: "lead@msp.example".into(),
                expires_at_ms: gate.expires_at_ms,
            });
            let path = link.split_once("/approvals/").map(|(_, t)| format!("/approvals/{t}")).unwrap();
            print(
                "GET /approvals/{token} (the approval page)",
                measure(&ui, &path, reqs).await,
            );
        }
        print("GET /ui/approvals", measure(&ui, "/ui/approvals", reqs).await);
        print("GET /ui/runbooks", measure(&ui, "/ui/runbooks", reqs).await);
        print(
            "GET /ui/runbooks/leaver",
            measure(&ui, "/ui/runbooks/leaver", reqs).await,
        );
        if std::env::var_os("UI_BENCH_BIG").is_some() {
            let big: usize = 100_000;
            let took = fill(&ui, runs, big.saturating_sub(runs)).await;
            println!(
                "Runs list, SQLite, {big} runs (filled {} more in {:.1} s), {reqs} requests each:",
                big.saturating_sub(runs),
                took.as_secs_f64()
            );
            list_figures(&ui, big, reqs).await;
        } else {
            println!("(UI_BENCH_BIG=1 adds the runs list at 100,000 runs)");
        }
    });
}
