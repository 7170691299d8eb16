//! Metrics: one Prometheus recorder per process behind the `metrics` facade (the engine's
//! driver and store, the webhook handlers and this server count through it), rendered by
//! `GET /metrics`. The queue depth is read from the store at scrape time.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Every metric the contract names (interfaces.md), with its type and help text. Each is
/// described in the answer even before it has a sample.
pub const NAMED: [(&str, &str, &str); 6] = [
    ("tenure_runs_total", "counter", "Runs finished, by final status."),
    (
        "tenure_step_attempts_total",
        "counter",
        "Step attempts, by kind and outcome (succeeded, failed, retryable_error, deferred, parked).",
    ),
    (
        "tenure_step_duration_seconds",
        "histogram",
        "How long step attempts took, by kind.",
    ),
    (
        "tenure_queue_depth",
        "gauge",
        "Tasks due now that no worker holds.",
    ),
    (
        "tenure_vendor_errors_total",
        "counter",
        "Failed attempts of vendor kinds, by vendor (the kind's family) and error code.",
    ),
    (
        "tenure_webhooks_total",
        "counter",
        "Webhook deliveries, by source and result.",
    ),
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's Prometheus recorder the first time it is called (several servers
/// in one process share it) and returns its handle; `None` if another recorder was installed
/// first (then `/metrics` shows only the queue depth and the descriptions).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("tenure_step_duration_seconds".into()),
                    &buckets,
                )
                .ok()?;
            match builder.install_recorder() {
                Ok(h) => {
                    for (name, kind, help) in NAMED {
                        match kind {
                            "gauge" => metrics::describe_gauge!(name, help),
                            "histogram" => metrics::describe_histogram!(name, help),
                            _ => metrics::describe_counter!(name, help),
                        }
                    }
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "another metrics recorder is installed; /metrics shows only the queue depth");
                    None
                }
            }
        })
        .as_ref()
}

/// The Prometheus text: every recorded metric, the queue depth `depth` (when known), and a
/// `# HELP`/`# TYPE` line for each named metric that has no sample yet.
pub fn render(depth: Option<i64>) -> String {
    let mut text = String::new();
    if let Some(h) = handle() {
        if let Some(d) = depth {
            metrics::gauge!("tenure_queue_depth").set(d as f64);
        }
        h.run_upkeep();
        text = h.render();
    } else if let Some(d) = depth {
        text.push_str(&format!("tenure_queue_depth {d}\n"));
    }
    for (name, kind, help) in NAMED {
        let present = text.lines().any(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{', '_']))
        });
        if !present {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        }
    }
    text
}
