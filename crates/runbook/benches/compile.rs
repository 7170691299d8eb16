//! Benchmark: compile a generated 5,000-step runbook and print the time (min / median of
//! several runs) and the peak heap memory the compile used. Run with
//! `cargo bench -p tenure-runbook --bench compile`.

use std::fmt::Write as _;
use std::time::Instant;

use tenure_runbook::{compile, SourceFile};

/// A field of `/proc/self/status` in KiB (`VmHWM` is the peak resident set, `VmRSS` the current).
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak resident set to the current one (Linux `clear_refs` value 5).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A runbook with `n` steps: an approval, then chains and fan-outs of Entra, licence, group
/// and PSA steps, each referencing an earlier step's output (a dependency edge) and some with
/// explicit `needs`, `for_each`, `if` and `retry`.
fn generate(n: usize) -> String {
    let mut y = String::from(
        "runbook: big\nversion: 1\ntenant: \"{{inputs.tenant}}\"\ninputs:\n  tenant: { type: string, required: true }\n  first_name: { type: string, required: true }\n  last_name: { type: string, required: true }\n  groups: { type: list, items: string, default: [Sales] }\nvars:\n  upn: \"{{lower (ascii inputs.first_name)}}.{{lower (ascii inputs.last_name)}}@{{tenant.domain}}\"\nsteps:\n  s0:\n    uses: approval\n    with: { approvers: [it@msp.example], message: \"Create {{vars.upn}}?\" }\n",
    );
    for i in 1..n {
        let prev = (i - 1) / 2 * 2; // fan-out: pairs share a parent
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

fn main() {
    let steps = 5_000;
    let text = generate(steps);
    let catalogue = tenure_steps::catalogue();
    let source = SourceFile::new("big.yaml", text);
    // Warm up, and check the generated runbook really compiles.
    let out = compile(&source, &catalogue);
    if out.plan.is_none() {
        for d in out.diagnostics.iter().take(5) {
            eprint!("{}", d.render(&source));
        }
        panic!("the generated runbook does not compile");
    }
    let plan = out.plan.unwrap();
    assert_eq!(plan.steps.len(), steps);
    drop(plan);

    let runs = 15;
    let mut times = Vec::with_capacity(runs);
    let mut peak_kib = 0;
    for _ in 0..runs {
        let measured = reset_peak();
        let base = status_kib("VmRSS:").unwrap_or(0);
        let start = Instant::now();
        let out = compile(&source, &catalogue);
        let elapsed = start.elapsed();
        if measured {
            peak_kib = peak_kib.max(status_kib("VmHWM:").unwrap_or(0).saturating_sub(base));
        }
        assert!(out.plan.is_some());
        drop(out);
        times.push(elapsed);
    }
    times.sort();
    let start = Instant::now();
    let (_node, _) = tenure_runbook::yaml::parse(&source);
    let yaml_time = start.elapsed();
    struct Ignore;
    impl yaml_rust2::parser::MarkedEventReceiver for Ignore {
        fn on_event(&mut self, _: yaml_rust2::Event, _: yaml_rust2::scanner::Marker) {}
    }
    let start = Instant::now();
    let _ = yaml_rust2::parser::Parser::new_from_str(source.text()).load(&mut Ignore, false);
    let events_time = start.elapsed();
    let templates: Vec<&str> = source
        .text()
        .split('"')
        .filter(|t| t.contains("{{"))
        .collect();
    let start = Instant::now();
    for t in &templates {
        let _ = tenure_runbook::template::analyze(t);
    }
    let template_time = start.elapsed();
    let edges: usize = compile(&source, &catalogue)
        .plan
        .map(|p| p.steps.iter().map(|s| s.needs.len()).sum())
        .unwrap_or(0);
    println!(
        "compile benchmark: {steps} steps, {edges} edges, {} KiB of YAML",
        source.text().len() / 1024
    );
    println!(
        "  time   min {:.1} ms, median {:.1} ms, max {:.1} ms ({runs} runs)",
        times[0].as_secs_f64() * 1e3,
        times[runs / 2].as_secs_f64() * 1e3,
        times[runs - 1].as_secs_f64() * 1e3
    );
    println!(
        "  of which: YAML parse {:.1} ms (the yaml-rust2 scanner alone {:.1} ms); template analysis {:.1} ms for {} templates",
        yaml_time.as_secs_f64() * 1e3,
        events_time.as_secs_f64() * 1e3,
        template_time.as_secs_f64() * 1e3,
        templates.len()
    );
    println!(
        "  peak memory during one compile: {:.1} MiB above the process baseline (peak RSS, /proc)",
        peak_kib as f64 / 1024.0
    );
    println!(
        "  process peak RSS overall: {:.1} MiB",
        status_kib("VmHWM:").unwrap_or(0) as f64 / 1024.0
    );
}
