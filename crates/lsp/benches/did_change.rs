//! Benchmark: the language server's time from a `didChange` of a generated 500-step runbook
//! to the `publishDiagnostics` it answers with (the full compile and every lint, each time),
//! min / median / max of several changes. Run with `cargo bench -p tenure-lsp --bench did_change`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use lsp_server::{Message, Notification};
use serde_json::json;
use tenure_lsp::Server;

/// A runbook with `n` steps: an approval, then chains and fan-outs of Entra, licence, group
/// and PSA steps, each referencing an earlier step's output.
fn generate(n: usize, edit: usize) -> String {
    let mut y = format!(
        "runbook: big\nversion: {}\ntenant: \"{{{{inputs.tenant}}}}\"\nconcurrency: \"{{{{vars.upn}}}}\"\ninputs:\n  tenant: {{ type: string, required: true }}\n  first_name: {{ type: string, required: true }}\n  last_name: {{ type: string, required: true }}\n  groups: {{ type: list, items: string, default: [Sales] }}\nvars:\n  upn: \"{{{{lower (ascii inputs.first_name)}}}}.{{{{lower (ascii inputs.last_name)}}}}@{{{{tenant.domain}}}}\"\nsteps:\n  s0:\n    uses: approval\n    with: {{ approvers: [it@msp.example], message: \"Create {{{{vars.upn}}}}?\" }}\n",
        edit + 1
    );
    for i in 1..n {
        let prev = (i - 1) / 2 * 2;
        match i % 4 {
            1 => {
                let _ = write!(y, "  s{i}:\n    uses: entra.create_user\n    needs: [s{prev}]\n    with:\n      user_principal_name: \"u{i}.{{{{vars.upn}}}}\"\n      display_name: \"{{{{inputs.first_name}}}} {{{{inputs.last_name}}}} {i}\"\n      usage_location: AU\n    retry: {{ attempts: 5, backoff: exponential, delay: 5s, max_delay: 2m }}\n");
            }
            2 => {
                let _ = write!(y, "  s{i}:\n    uses: licence.assign\n    with: {{ user: \"{{{{steps.s{}.outputs.id}}}}\", sku: SPB, source: pax8 }}\n    timeout: 30m\n", i - 1);
            }
            3 => {
                let _ = write!(y, "  s{i}:\n    uses: entra.add_to_group\n    for_each: \"{{{{inputs.groups}}}}\"\n    max_parallel: 4\n    needs: [s{prev}]\n    with: {{ user: \"{{{{steps.s{}.outputs.id}}}}\", group: \"{{{{item}}}}\" }}\n", i - 2);
            }
            _ => {
                let _ = write!(y, "  s{i}:\n    if: \"{{{{ne inputs.first_name ''}}}}\"\n    uses: psa.add_ticket_note\n    needs: [s{}]\n    with: {{ ticket: \"T-{i}\", body: \"step {i} for {{{{vars.upn}}}}\" }}\n    continue_on_error: true\n", i - 1);
            }
        }
    }
    y
}

fn notification(method: &str, params: serde_json::Value) -> Message {
    Message::Notification(Notification::new(method.to_string(), params))
}

fn main() {
    let steps = 500;
    let uri = "file:///bench/runbooks/big.yaml";
    let mut server = Server::new();
    let opened = server.handle(notification(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": generate(steps, 0)}}),
    ));
    let Some(Message::Notification(first)) = opened.first() else {
        panic!("no diagnostics published on open");
    };
    let diagnostics = first.params["diagnostics"].as_array().map_or(0, Vec::len);
    let mut times: Vec<Duration> = Vec::new();
    for edit in 1..=30 {
        let change = notification(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": edit + 1},
                   "contentChanges": [{"text": generate(steps, edit)}]}),
        );
        let started = Instant::now();
        let out = server.handle(change);
        let took = started.elapsed();
        assert!(
            matches!(out.first(), Some(Message::Notification(n)) if n.method == "textDocument/publishDiagnostics"),
            "no diagnostics published"
        );
        times.push(took);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // The compiler and its lints alone, on the same text: the rest is the server's own work.
    let catalogue = tenure_steps::catalogue();
    let source = tenure_runbook::SourceFile::new("big.yaml", generate(steps, 0));
    let mut alone: Vec<Duration> = (0..30)
        .map(|_| {
            let started = Instant::now();
            let out = tenure_runbook::compile(&source, &catalogue);
            let took = started.elapsed();
            assert!(out.plan.is_some());
            took
        })
        .collect();
    alone.sort();
    println!(
        "compile + lints alone: min {:.1} ms, median {:.1} ms",
        ms(alone[0]),
        ms(alone[alone.len() / 2])
    );
    println!(
        "didChange -> publishDiagnostics, {steps}-step runbook ({} bytes, {diagnostics} diagnostics): min {:.1} ms, median {:.1} ms, max {:.1} ms ({} changes)",
        generate(steps, 0).len(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        times.len()
    );
}
