//! The report's wording of what the stock-runbook snapshots (`tests/e2e/reports`) do not reach:
//! a pending approval, a `continue_on_error` failure, group-inherited licences, secrets.

use serde_json::json;
use tenure_runbook::{compile, SourceFile};

use super::*;
use crate::journal::ChainKey;

fn plan(steps: &str) -> Plan {
    let src = SourceFile::new(
        "t.yaml",
        format!("runbook: leaver\nversion: 2\ntenant: contoso\ninputs:\n  user: {{ type: email, required: true }}\n  token: {{ type: secret }}\nsteps:\n{steps}"),
    );
    let out = compile(&src, &tenure_steps::catalogue());
    for d in &out.diagnostics {
        eprintln!("{}", d.render(&src));
    }
    out.plan.expect("compiles")
}

fn journal(kinds: Vec<EventKind>) -> Vec<Event> {
    let key = ChainKey::derive(&[7; 32]);
    let mut out: Vec<Event> = Vec::new();
    for (n, kind) in kinds.into_iter().enumerate() {
        let at = format!("2026-11-30T10:{:02}:00.000Z", n % 60);
        let e = Event::next(&key, "run-1", out.last(), at, kind);
        out.push(e);
    }
    out
}

fn created() -> EventKind {
    EventKind::RunCreated {
        runbook: "leaver".into(),
        version: 2,
        plan_hash: "h".into(),
        trigger: "cli by operator".into(),
    }
}

fn context() -> Value {
    json!({
        "inputs": {"user": "alex.wilber@contoso.example", "token": format!("{}00ff", crate::secrets::SEALED)},
        "tenant": {"id": "contoso", "domain": "contoso.example", "name": "Contoso"},
        "run": {"id": "", "report": ""},
        "vars": {},
    })
}

#[test]
fn a_pending_approval_says_who_is_asked() {
    let p = plan("  approve:\n    uses: approval\n    with: { approvers: [it-lead@msp.example], message: go? }\n");
    let events = journal(vec![
        created(),
        EventKind::StepReady {
            step: "approve".into(),
            item: Some(0),
        },
        EventKind::ApprovalRequested {
            step: "approve".into(),
            approvers: vec!["it-lead@msp.example".into()],
            expires_at: "2026-12-02T10:00:00.000Z".into(),
            requested_by: None,
            notified: vec![],
        },
    ]);
    let md = build(&p, &context(), &events, None).markdown;
    assert!(md.contains("**In progress**"), "{md}");
    assert!(
        md.contains(
            "- **approve**: Waiting for it-lead@msp.example (asked; expires 2026-12-02 10:00 UTC)."
        ),
        "{md}"
    );
}

#[test]
fn warnings_name_inherited_licences_and_failures_the_run_carried_on_after() {
    let p = plan("  strip:\n    uses: licence.remove_all\n    with: { user: \"{{inputs.user}}\" }\n  mail:\n    uses: notify.email\n    needs: [strip]\n    with: { to: \"{{inputs.token}}\", subject: Gone, body: bye }\n  note:\n    uses: psa.add_ticket_note\n    needs: [mail]\n    continue_on_error: true\n    with: { ticket: \"1001\", body: \"{{run.report}}\" }\n");
    let ok = |step: &str, output: Value| EventKind::AttemptSucceeded {
        step: step.into(),
        item: Some(0),
        attempt: 1,
        output,
    };
    let events = journal(vec![
        created(),
        ok(
            "strip",
            json!({"id": "u-1", "removed": ["SPB"], "inherited": ["SPE_E3"]}),
        ),
        ok("mail", json!({"message_id": "run-1:mail:0"})),
        EventKind::AttemptStarted {
            step: "note".into(),
            item: Some(0),
            attempt: 3,
            owner: "w".into(),
        },
        EventKind::AttemptFailed {
            step: "note".into(),
            item: Some(0),
            attempt: 3,
            class: "transient".into(),
            code: "http_500".into(),
            message: "Halo answered 500: database unavailable".into(),
            retry_after_ms: None,
        },
        EventKind::GaveUp {
            step: "note".into(),
            item: Some(0),
            reason: "the retry budget (3 attempts) is used up".into(),
        },
        EventKind::RunFinished {
            status: "succeeded".into(),
            error: None,
        },
    ]);
    let md = build(&p, &context(), &events, None).markdown;
    assert!(md.starts_with("## Run report: leaver v2\n\n**Succeeded** at 2026-11-30 10:06 UTC. Run `run-1` for Contoso (contoso), started 2026-11-30 10:00 UTC (from the command line by operator)."), "{md}");
    assert!(md.contains("- **strip**: Removed the licences of alex.wilber@contoso.example: Microsoft 365 Business Premium (SPB)."), "{md}");
    assert!(md.contains("### Warnings\n\n- **strip**: alex.wilber@contoso.example keeps Microsoft 365 E3 (SPE_E3): assigned through a group"), "{md}");
    assert!(md.contains("- **note**: Failed after 3 attempt(s): Halo answered 500: database unavailable (http_500). The retry budget (3 attempts) is used up. The run carried on (`continue_on_error`)."), "{md}");
    assert!(
        md.contains("- **note**: failed and the run carried on: Halo answered 500"),
        "{md}"
    );
    assert!(!md.contains("### Failures"), "{md}");
    // A secret input is `***`, never its sealed or clear text.
    assert!(
        md.contains("- **mail**: Emailed ***: \u{201c}Gone\u{201d}."),
        "{md}"
    );
    assert!(!md.contains(crate::secrets::SEALED), "{md}");
    // The step being rendered is left out of its own report.
    let md = build(&p, &context(), &events, Some("note")).markdown;
    assert!(!md.contains("**note**"), "{md}");
}

#[test]
fn values_cannot_add_links_images_or_lines_to_the_report() {
    let p = plan("  make:\n    uses: entra.create_user\n    with: { user_principal_name: \"{{inputs.user}}\", display_name: \"[Verify](javascript:alert(1)) ![p](https://evil.example/p.png) <javascript:x> first_last\\n\\n# Fake heading\", usage_location: AU }\n  note:\n    uses: psa.add_ticket_note\n    needs: [make]\n    with: { ticket: \"1001\", body: hi }\n");
    let events = journal(vec![
        created(),
        EventKind::AttemptSucceeded {
            step: "make".into(),
            item: Some(0),
            attempt: 1,
            output: json!({"id": "u-1", "user_principal_name": "alex.wilber@contoso.example", "created": true, "password": "***"}),
        },
        EventKind::AttemptStarted {
            step: "note".into(),
            item: Some(0),
            attempt: 1,
            owner: "w".into(),
        },
        EventKind::AttemptFailed {
            step: "note".into(),
            item: Some(0),
            attempt: 1,
            class: "permanent".into(),
            code: "http_400".into(),
            message: "bad [click](https://phish.example) `x`\n### Failures".into(),
            retry_after_ms: None,
        },
        EventKind::RunFinished {
            status: "failed".into(),
            error: Some("step `note` failed: <img src=x>".into()),
        },
    ]);
    let report = build(&p, &context(), &events, None);
    let html = report.html();
    for bad in ["<a ", "<img", "<h1>", "Fake heading</h"] {
        assert!(!html.contains(bad), "{bad} in {html}");
    }
    assert_eq!(html.matches("<h3>").count(), 2, "{html}");
    assert!(html.contains("[Verify](javascript:alert(1))"), "{html}");
    assert!(html.contains("first_last"), "{html}");
    assert!(
        report.markdown.contains("with a new initial password ***."),
        "{}",
        report.markdown
    );
}

#[test]
fn finished_waits_and_calls_are_reported_as_done() {
    let p = plan("  nap:\n    uses: wait\n    with: { for: 1m }\n  sub:\n    uses: runbook.call\n    needs: [nap]\n    with: { runbook: child }\n  other:\n    uses: runbook.call\n    needs: [nap]\n    with: { runbook: child }\n");
    let events = journal(vec![
        created(),
        EventKind::AttemptStarted {
            step: "nap".into(),
            item: Some(0),
            attempt: 1,
            owner: "w".into(),
        },
        EventKind::TimerSet {
            step: "nap".into(),
            at: "2026-11-30T10:01:00.000Z".into(),
            item: Some(0),
            reason: Some("wait".into()),
        },
        EventKind::TimerFired { step: "nap".into() },
        EventKind::ChildRunEnded {
            step: "sub".into(),
            item: Some(0),
            run: "run-2".into(),
            status: "succeeded".into(),
            output: Some(json!({"run_id": "run-2", "status": "succeeded", "outputs": {}})),
            error: None,
        },
        EventKind::ChildRunEnded {
            step: "other".into(),
            item: Some(0),
            run: "run-3".into(),
            status: "cancelled".into(),
            output: None,
            error: Some("the called run run-3 (child) ended cancelled".into()),
        },
        EventKind::GaveUp {
            step: "other".into(),
            item: Some(0),
            reason: "the called run run-3 (child) ended cancelled".into(),
        },
        EventKind::RunFinished {
            status: "failed".into(),
            error: Some("step `other` failed".into()),
        },
    ]);
    let md = build(&p, &context(), &events, None).markdown;
    assert!(md.contains("- **nap**: Waited for 1m."), "{md}");
    assert!(
        md.contains("- **sub**: Ran runbook child (run run-2): succeeded."),
        "{md}"
    );
    assert!(
        md.contains(
            "- **other**: Failed after 1 attempt(s). The called run run-3 (child) ended cancelled."
        ),
        "{md}"
    );
}

#[test]
fn a_cancelled_run_says_what_it_stopped_not_what_is_in_progress() {
    let p = plan("  approve:\n    uses: approval\n    with: { approvers: [it-lead@msp.example], message: go? }\n  sub:\n    uses: runbook.call\n    with: { runbook: child }\n  nap:\n    uses: wait\n    with: { for: 1h }\n");
    let events = journal(vec![
        created(),
        EventKind::StepReady {
            step: "approve".into(),
            item: Some(0),
        },
        EventKind::ApprovalRequested {
            step: "approve".into(),
            approvers: vec!["it-lead@msp.example".into()],
            expires_at: "2026-12-02T10:00:00.000Z".into(),
            requested_by: None,
            notified: vec![],
        },
        EventKind::StepReady {
            step: "sub".into(),
            item: Some(0),
        },
        EventKind::AttemptStarted {
            step: "sub".into(),
            item: Some(0),
            attempt: 1,
            owner: "w".into(),
        },
        EventKind::TimerSet {
            step: "nap".into(),
            at: "2026-11-30T11:00:00.000Z".into(),
            item: Some(0),
            reason: Some("wait".into()),
        },
        EventKind::RunCancelled {
            by: "operator".into(),
        },
        EventKind::RunFinished {
            status: "cancelled".into(),
            error: None,
        },
    ]);
    let md = build(&p, &context(), &events, None).markdown;
    assert!(!md.contains("In progress"), "{md}");
    assert!(!md.contains("Waiting"), "{md}");
    assert!(
        md.contains("- **approve**: Asked it-lead@msp.example; the run ended before a decision."),
        "{md}"
    );
    assert!(
        md.contains("- **sub**: Started; the run ended before it finished."),
        "{md}"
    );
    assert!(
        md.contains("- **nap**: Was waiting until 2026-11-30 11:00 UTC when the run ended."),
        "{md}"
    );
}

#[test]
fn a_step_over_thousands_of_items_makes_a_bounded_report() {
    let p = plan("  groups:\n    uses: entra.add_to_group\n    for_each: [a, b]\n    with: { user: \"{{inputs.user}}\", group: \"{{item}}\" }\n");
    let mut kinds = vec![created()];
    for i in 0..5000u32 {
        kinds.push(EventKind::AttemptStarted {
            step: "groups".into(),
            item: Some(i),
            attempt: 1,
            owner: "w".into(),
        });
        kinds.push(EventKind::AttemptFailed {
            step: "groups".into(),
            item: Some(i),
            attempt: 1,
            class: "permanent".into(),
            code: "group_not_found".into(),
            message: format!("no group number {i}"),
            retry_after_ms: None,
        });
    }
    kinds.push(EventKind::RunFinished {
        status: "failed".into(),
        error: Some("step `groups` failed".into()),
    });
    let md = build(&p, &context(), &journal(kinds), None).markdown;
    assert!(md.len() < 20_000, "{} bytes", md.len());
    assert!(md.contains("- **groups**: 5000 item(s):"), "{md}");
    assert!(md.contains("  - \u{2026} and 4975 more item(s)."), "{md}");
    assert!(
        md.contains("- \u{2026} and 4975 more (`tenure log run-1` has them all)."),
        "{md}"
    );
}
