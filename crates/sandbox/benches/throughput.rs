//! Benchmark: how fast the sandbox starts in-process, how many requests per second it serves
//! on loopback, and whether its memory stays flat over 100,000 requests. Run with
//! `cargo bench -p tenure-sandbox --bench throughput`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tenure_sandbox::testing::graph_token;
use tenure_sandbox::Sandbox;

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

async fn load(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    total: usize,
    concurrency: usize,
) -> f64 {
    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token, done) = (
            client.clone(),
            url.to_string(),
            token.to_string(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while done.fetch_add(1, Ordering::Relaxed) < total {
                let r = client
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await.expect("body");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let started = Instant::now();
    let sandbox = Sandbox::new();
    let (addr, _server) = sandbox.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let health = client
        .get(format!("http://{addr}/_sandbox/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let startup = started.elapsed();

    let token = graph_token(&format!("http://{addr}"), "contoso")
        .await
        .unwrap();
    let url = format!("http://{addr}/graph.microsoft.com/v1.0/users/megan.bowen@contoso.example");

    load(&client, &url, &token, 5_000, 32).await; // warm-up
    let rss_before = rss_kib();
    let rate = load(&client, &url, &token, 100_000, 32).await;
    let rss_after = rss_kib();
    let skus = format!("http://{addr}/graph.microsoft.com/v1.0/subscribedSkus");
    let sku_rate = load(&client, &skus, &token, 20_000, 32).await;

    println!(
        "sandbox benchmark (client and server in one process, 2 worker threads, 32 connections)"
    );
    println!(
        "  start-up to first answered request: {:.1} ms",
        startup.as_secs_f64() * 1e3
    );
    println!(
        "  GET /users/{{upn}} (auth, lookup, JSON): {rate:.0} requests/s over 100,000 requests"
    );
    println!("  GET /subscribedSkus (seat counts over 27 users): {sku_rate:.0} requests/s over 20,000 requests");
    println!(
        "  resident memory: {:.1} MiB after warm-up, {:.1} MiB after 100,000 more requests ({:+.1} MiB)",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        (rss_after as f64 - rss_before as f64) / 1024.0
    );
}
