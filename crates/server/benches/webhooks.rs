//! Webhook → run created, over real HTTP on 127.0.0.1: the latency of one delivery at a time
//! (p50, p99) and sustained deliveries per second with concurrent senders, on SQLite and, when
//! `TENURE_TEST_PG` is set, on PostgreSQL. Each delivery is a signed generic webhook with a new
//! dedup key, so each creates a run durably before its answer. Beside it, the same server's
//! `?dry_run=true` (verified and mapped, answered without the store) is the non-durable
//! baseline. `WEBHOOKS_N` (default 500) and `WEBHOOKS_CONCURRENCY` (default 32) tune it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use tenure_server::config::WebhookKind;

const RUNBOOK: &str = r#"
runbook: bench-starter
version: 1
tenant: "{{inputs.tenant}}"
inputs:
  tenant: { type: string, required: true }
  first_name: { type: string, required: true }
  ticket_id: { type: string }
triggers:
  - webhook: intake
    when: "{{eq payload.type 'new_starter'}}"
    map:
      tenant: "{{payload.tenant}}"
      first_name: "{{field payload.details 'First name'}}"
      ticket_id: "{{payload.request_id}}"
steps:
  hold: { uses: wait, with: { for: 1h } }
"#;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn body(i: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "request_id": format!("REQ-{i}"), "type": "new_starter", "tenant": "contoso",
        "details": "<p>First name: Jos&eacute;<br>Last name: N&uacute;&ntilde;ez<br>Start date: 2026-03-02</p>"
    }))
    .unwrap()
}

async fn deliver(s: &Server, path: &str, i: usize) -> Duration {
    let b = body(i);
    let sig = generic_signature("bench-secret", &b);
    let t = Instant::now();
    let (status, answer) = s.post(path, &b, &[("x-tenure-signature", sig)]).await;
    let took = t.elapsed();
    assert!(status == 202 || status == 200, "{status} {answer}");
    took
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// (p50 ms, p99 ms, deliveries/s): `n` deliveries one at a time, then `n` more from `c`
/// concurrent senders.
async fn measure(s: &Arc<Server>, path: &'static str, n: usize, c: usize) -> (f64, f64, f64) {
    for i in 0..20 {
        deliver(s, path, 10_000_000 + i).await;
    }
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        lat.push(deliver(s, path, i).await);
    }
    lat.sort();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..c {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                deliver(&s, path, n + i).await;
                i += c;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    (percentile(&lat, 0.5), percentile(&lat, 0.99), rate)
}

async fn bench(pg: bool) {
    std::env::set_var("BENCH_INTAKE_SECRET", "bench-secret");
    let mut intake = source("intake", WebhookKind::Generic);
    intake.secret_env = Some("BENCH_INTAKE_SECRET".into());
    intake.dedup = Some("{{payload.request_id}}".into());
    let s = Arc::new(start_on(pg, vec![intake], &[("bench.yaml", RUNBOOK)]).await);
    let (n, c) = (env("WEBHOOKS_N", 500), env("WEBHOOKS_CONCURRENCY", 32));
    let db = if pg { "PostgreSQL" } else { "SQLite" };
    let (p50, p99, rate) = measure(&s, "intake", n, c).await;
    let (b50, b99, brate) = measure(&s, "intake?dry_run=true", n, c).await;
    let runs = s.run_count_up_to(3 * n).await;
    assert_eq!(runs, 2 * n + 20, "each durable delivery created one run");
    println!(
        "{db:10} webhook → run created: p50 {p50:6.2} ms  p99 {p99:6.2} ms  {rate:7.0}/s ({c} senders, {n} deliveries each way)\n\
         {db:10} no store (dry run):     p50 {b50:6.2} ms  p99 {b99:6.2} ms  {brate:7.0}/s"
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        bench(false).await;
        if postgres().is_some() {
            bench(true).await;
        } else {
            println!("PostgreSQL: TENURE_TEST_PG is not set, skipped");
        }
    });
}
