//! The run state machine, fed events the way a driver would, checked by the actions it asks
//! for. `traces` replays the data-driven corpus under `tests/data/traces`; `props` drives the
//! machine with a simulated driver and checks its invariants.

mod props;
mod schedules;
mod traces;

use serde_json::json;
use tenure_engine::machine::{
    Action, Again, Error, Event, Failure, InstanceState, OnExpiry, Park, RunMachine, RunStatus,
    Stage, StepPhase, DEFAULT_DEADLINE, MAX_WAIT,
};
use tenure_runbook::{compile, Plan, SourceFile};

/// Compiles a runbook whose `steps:` (and whatever follows) is `body`.
pub(crate) fn plan_of(body: &str) -> Plan {
    let text = format!("runbook: t\nversion: 1\ntenant: contoso\n{body}");
    let src = SourceFile::new("t.yaml", text);
    let out = compile(&src, &tenure_steps::contract_catalogue());
    for d in &out.diagnostics {
        eprintln!("{}", d.render(&src));
    }
    out.plan.expect("test plan compiles")
}

fn plan(steps: &str) -> Plan {
    plan_of(&format!(
        "inputs:\n  items: {{ type: list, default: [a, b, c, d, e] }}\nsteps:\n{steps}"
    ))
}

/// A step with an `if`, so the machine asks the driver to prepare it (render the condition).
fn note(step: &str) -> String {
    format!("  {step}:\n    uses: notify.teams\n    if: \"{{{{ inputs.items }}}}\"\n    with: {{ message: hi }}\n")
}

fn enq(step: &str, item: u32) -> Action {
    Action::Enqueue {
        step: step.into(),
        item,
    }
}

fn prep(step: &str) -> Action {
    Action::Prepare { step: step.into() }
}

fn finish(status: RunStatus, failed_step: Option<&str>) -> Action {
    Action::Finish {
        status,
        failed_step: failed_step.map(String::from),
    }
}

fn started(step: &str, item: u32, attempt: u32) -> Event {
    Event::AttemptStarted {
        step: step.into(),
        item,
        attempt,
        owner: "w1".into(),
    }
}

fn succeeded(step: &str, item: u32, attempt: u32) -> Event {
    Event::AttemptSucceeded {
        step: step.into(),
        item,
        attempt,
        output: json!({"ok": true}),
        requests: vec![],
    }
}

fn failed(step: &str, item: u32, attempt: u32, failure: Failure) -> Event {
    Event::AttemptFailed {
        step: step.into(),
        item,
        attempt,
        failure,
        requests: vec![],
    }
}

fn throttled(after_ms: u64) -> Failure {
    let mut f = Failure::transient("429", "too many requests");
    f.retry_after_ms = Some(after_ms);
    f
}

fn timer(step: &str, item: u32) -> Event {
    Event::TimerDue {
        step: step.into(),
        item,
    }
}

fn decide(step: &str, approver: &str, approve: bool, comment: Option<&str>) -> Event {
    Event::ApprovalDecided {
        step: step.into(),
        approver: approver.into(),
        approve,
        comment: comment.map(String::from),
        source: "cli".into(),
        user_agent: None,
    }
}

fn op_retry(steps: &[&str]) -> Event {
    Event::Retry {
        steps: steps.iter().map(|s| s.to_string()).collect(),
        by: "op@msp.example".into(),
    }
}

fn cancel() -> Event {
    Event::Cancel {
        by: "op@msp.example".into(),
    }
}

fn rollback() -> Event {
    Event::Rollback {
        by: "op@msp.example".into(),
    }
}

/// A machine and a clock.
struct Sim {
    m: RunMachine,
    now: u64,
}

impl Sim {
    fn new(p: &Plan) -> Self {
        Sim {
            m: RunMachine::new(p),
            now: 1_700_000_000_000,
        }
    }

    fn ev(&mut self, e: Event) -> Vec<Action> {
        let what = format!("{e:?}");
        self.m
            .apply(e, self.now)
            .unwrap_or_else(|err| panic!("{what} refused: {err}"))
    }

    /// Applies an event that must be refused, and checks that it changed nothing.
    fn refused(&mut self, e: Event) -> Error {
        let before = serde_json::to_value(&self.m).unwrap();
        let err = self.m.apply(e, self.now).expect_err("refused");
        assert_eq!(before, serde_json::to_value(&self.m).unwrap());
        err
    }

    fn start(&mut self) -> Vec<Action> {
        self.ev(Event::Start)
    }

    fn claim(&mut self, step: &str, item: u32) -> u32 {
        let attempt = self.m.next_attempt(step, item);
        assert_eq!(self.ev(started(step, item, attempt)), vec![]);
        attempt
    }

    /// Claims an instance and succeeds it; returns the actions after its `StoreOutput`.
    fn succeed(&mut self, step: &str, item: u32) -> Vec<Action> {
        let attempt = self.claim(step, item);
        let mut a = self.ev(succeeded(step, item, attempt));
        assert_eq!(
            a.remove(0),
            Action::StoreOutput {
                step: step.into(),
                item,
                output: json!({"ok": true})
            }
        );
        a
    }

    fn fail_with(&mut self, step: &str, item: u32, f: Failure) -> Vec<Action> {
        let attempt = self.claim(step, item);
        self.ev(failed(step, item, attempt, f))
    }

    fn fail(&mut self, step: &str, item: u32) -> Vec<Action> {
        self.fail_with(step, item, Failure::permanent("400", "bad request"))
    }

    fn prepared(&mut self, step: &str, items: Option<u32>) -> Vec<Action> {
        self.ev(Event::Prepared {
            step: step.into(),
            items,
            skip: false,
        })
    }

    /// Claims an approval step and parks it on a gate.
    fn park_gate(&mut self, step: &str, approvers: &[&str], quorum: u32, on_expiry: OnExpiry) {
        let attempt = self.claim(step, 0);
        let expires_at_ms = self.now + 3_600_000;
        let a = self.ev(Event::Parked {
            step: step.into(),
            item: 0,
            attempt,
            park: Park::Approval {
                approvers: approvers.iter().map(|s| s.to_string()).collect(),
                quorum,
                on_expiry,
                expires_at_ms,
                message: Some("ok?".into()),
                requested_by: None,
                notified: vec![],
            },
            requests: vec![],
        });
        assert_eq!(
            a,
            vec![Action::SetTimer {
                step: step.into(),
                item: 0,
                at_ms: expires_at_ms
            }]
        );
    }

    fn retry_at(&self, step: &str, item: u32) -> u64 {
        match self.m.instance(step, item) {
            Some(InstanceState::RetryWait { at_ms, .. }) => at_ms,
            other => panic!("{step}[{item}] is not waiting to retry: {other:?}"),
        }
    }
}

fn enqueue_at(a: &[Action]) -> (u64, Again) {
    match a {
        [Action::EnqueueAt { at_ms, why, .. }] => (*at_ms, *why),
        other => panic!("expected one EnqueueAt, got {other:?}"),
    }
}

fn gave_up(a: &[Action]) -> bool {
    a.iter().any(|a| matches!(a, Action::GaveUp { .. }))
}

// ---------------------------------------------------------------------------------------------
// Scheduling

#[test]
fn a_diamond_runs_in_dependency_order() {
    let p = plan(
        &(note("a")
            + &note("b").replace("with:", "needs: [a]\n    with:")
            + &note("c").replace("with:", "needs: [a]\n    with:")
            + &note("d").replace("with:", "needs: [b, c]\n    with:")),
    );
    let mut s = Sim::new(&p);
    assert_eq!(s.m.status(), RunStatus::Queued);
    assert_eq!(s.start(), vec![prep("a")]);
    assert_eq!(s.prepared("a", None), vec![enq("a", 0)]);
    assert_eq!(s.succeed("a", 0), vec![prep("b"), prep("c")]);
    s.prepared("b", None);
    s.prepared("c", None);
    assert_eq!(s.succeed("b", 0), vec![], "d still waits for c");
    assert_eq!(s.succeed("c", 0), vec![prep("d")]);
    s.prepared("d", None);
    assert_eq!(s.succeed("d", 0), vec![finish(RunStatus::Succeeded, None)]);
    assert_eq!(s.m.status(), RunStatus::Succeeded);
    assert!(
        matches!(s.refused(cancel()), Error::Invalid(_)),
        "an ended run takes no more events"
    );
}

#[test]
fn for_each_respects_max_parallel_and_retries_only_the_failed_item() {
    let p = plan("  g:\n    uses: entra.add_to_group\n    for_each: \"{{inputs.items}}\"\n    max_parallel: 2\n    retry: { attempts: 3, backoff: fixed, delay: 10s, max_delay: 10s }\n    with: { user: u, group: \"{{item}}\" }\n");
    let mut s = Sim::new(&p);
    s.start();
    assert_eq!(s.prepared("g", Some(5)), vec![enq("g", 0), enq("g", 1)]);
    assert_eq!(s.m.instance("g", 2), Some(InstanceState::Pending));
    assert_eq!(s.succeed("g", 0), vec![enq("g", 2)]);
    let a = s.fail_with("g", 1, Failure::transient("503", "unavailable"));
    let (at, why) = enqueue_at(&a);
    assert_eq!(why, Again::Error);
    assert!(
        (s.now + 5_000..=s.now + 10_000).contains(&at),
        "fixed 10 s backoff with jitter: {}",
        at - s.now
    );
    assert_eq!(s.m.errors("g", 1), 1);
    assert_eq!(
        s.m.instance("g", 3),
        Some(InstanceState::Pending),
        "a retry wait still counts against max_parallel"
    );
    s.now = at;
    assert_eq!(s.ev(timer("g", 1)), vec![enq("g", 1)]);
    assert!(
        matches!(
            s.refused(started("g", 1, 1)),
            Error::Stale { attempt: 1, .. }
        ),
        "attempt numbers only go up"
    );
    assert_eq!(s.succeed("g", 1), vec![enq("g", 3)]);
    assert_eq!(s.m.attempts("g", 1), 2);
    assert_eq!(s.succeed("g", 2), vec![enq("g", 4)]);
    s.succeed("g", 3);
    assert_eq!(s.succeed("g", 4), vec![finish(RunStatus::Succeeded, None)]);
}

#[test]
fn a_zombie_worker_cannot_finish_a_newer_attempt() {
    let p = plan(&note("a"));
    let mut s = Sim::new(&p);
    s.start();
    s.prepared("a", None);
    s.claim("a", 0);
    assert_eq!(
        s.ev(Event::LeaseExpired {
            step: "a".into(),
            item: 0,
            attempt: 1
        }),
        vec![enq("a", 0)]
    );
    assert_eq!(s.claim("a", 0), 2);
    let zombie = s.refused(succeeded("a", 0, 1));
    assert!(matches!(zombie, Error::Stale { attempt: 1, .. }));
    assert!(matches!(
        s.refused(failed("a", 0, 1, Failure::permanent("x", "y"))),
        Error::Stale { .. }
    ));
    assert_eq!(
        s.m.instance("a", 0),
        Some(InstanceState::Running { attempt: 2 })
    );
    s.ev(succeeded("a", 0, 2));
    assert!(
        s.m.apply(succeeded("a", 0, 2), s.now).is_err(),
        "a duplicate success delivery is refused"
    );
}

#[test]
fn a_permanent_failure_fails_the_run_after_in_flight_work_settles() {
    let p =
        plan(&(note("a") + &note("b") + &note("c").replace("with:", "needs: [a, b]\n    with:")));
    let mut s = Sim::new(&p);
    s.start();
    s.prepared("a", None);
    s.prepared("b", None);
    s.claim("b", 0);
    let a = s.fail("a", 0);
    assert!(a.is_empty(), "b is still running: {a:?}");
    let mut a = s.ev(succeeded("b", 0, 1));
    a.remove(0);
    assert_eq!(a, vec![finish(RunStatus::Failed, Some("a"))]);
    assert_eq!(
        s.m.phase("c"),
        Some(StepPhase::Cancelled),
        "c never started"
    );
    assert_eq!(s.m.failed_step(), Some("a"));
}

#[test]
fn continue_on_error_and_skipped_steps_let_dependents_run() {
    let p = plan(
        &(note("a").replace("with:", "continue_on_error: true\n    with:")
            + &note("b")
            + &note("c").replace("with:", "needs: [a, b]\n    with:")),
    );
    let mut s = Sim::new(&p);
    s.start();
    s.prepared("a", None);
    assert_eq!(
        s.ev(Event::Prepared {
            step: "b".into(),
            items: None,
            skip: true
        }),
        vec![Action::Skipped {
            step: "b".into(),
            reason: "condition is false"
        }]
    );
    assert_eq!(s.fail("a", 0), vec![prep("c")]);
    s.prepared("c", None);
    assert_eq!(s.succeed("c", 0), vec![finish(RunStatus::Succeeded, None)]);
    assert_eq!(s.m.phase("a"), Some(StepPhase::Failed));
}

#[test]
fn steps_without_templates_to_render_are_prepared_inline() {
    let p = plan(
        "  a: { uses: notify.teams, with: { message: hi } }\n  b: { uses: notify.teams, needs: [a], for_each: [x, y], with: { message: hi } }\n  c: { uses: notify.teams, needs: [b], for_each: [], with: { message: hi } }\n  d: { uses: notify.teams, needs: [c], with: { message: hi } }\n",
    );
    let mut s = Sim::new(&p);
    assert_eq!(s.start(), vec![enq("a", 0)]);
    assert_eq!(s.succeed("a", 0), vec![enq("b", 0), enq("b", 1)]);
    s.succeed("b", 0);
    assert_eq!(
        s.succeed("b", 1),
        vec![
            Action::Skipped {
                step: "c".into(),
                reason: "no items"
            },
            enq("d", 0)
        ],
        "an empty literal list skips the step and its dependents start in the same transition"
    );
    assert_eq!(s.m.phase("c"), Some(StepPhase::Skipped));
}

#[test]
fn a_prepare_failure_fails_the_step() {
    let p = plan(&(note("a") + &note("b").replace("with:", "needs: [a]\n    with:")));
    let mut s = Sim::new(&p);
    s.start();
    let a = s.ev(Event::PrepareFailed {
        step: "a".into(),
        message: "unknown variable".into(),
    });
    assert_eq!(a, vec![finish(RunStatus::Failed, Some("a"))]);
    assert_eq!(s.m.phase("b"), Some(StepPhase::Cancelled));
}

// ---------------------------------------------------------------------------------------------
// Operator actions and stages

#[test]
fn cancel_stops_everything() {
    let p = plan(&(note("a") + &note("b").replace("with:", "needs: [a]\n    with:")));
    let mut s = Sim::new(&p);
    s.start();
    s.prepared("a", None);
    s.claim("a", 0);
    assert_eq!(s.ev(cancel()), vec![finish(RunStatus::Cancelled, None)]);
    assert_eq!(s.m.instance("a", 0), Some(InstanceState::Cancelled));
    assert_eq!(s.m.phase("b"), Some(StepPhase::Cancelled));
    assert!(matches!(s.refused(succeeded("a", 0, 1)), Error::Invalid(_)));
}

const PLAIN: &str = "steps:\n  a: { uses: notify.teams, with: { message: a } }\n  b: { uses: notify.teams, needs: [a], with: { message: b } }\n";

#[test]
fn on_failure_steps_run_once_and_the_run_still_fails() {
    let p = plan_of(&format!(
        "{PLAIN}on_failure:\n  tell: {{ uses: notify.teams, with: {{ message: failed }} }}\n"
    ));
    let mut s = Sim::new(&p);
    s.start();
    assert_eq!(
        s.fail("a", 0),
        vec![
            Action::OnFailure {
                failed_step: "a".into()
            },
            enq("tell", 0)
        ]
    );
    assert_eq!(s.m.status(), RunStatus::Running);
    assert_eq!(s.m.stage(), Stage::OnFailure);
    assert_eq!(s.m.phase("b"), Some(StepPhase::Cancelled));
    // A failing on_failure step does not stop the others, and the run ends failed.
    assert_eq!(
        s.fail("tell", 0),
        vec![finish(RunStatus::Failed, Some("a"))]
    );
}

#[test]
fn retry_resumes_from_the_failed_step_and_keeps_what_succeeded() {
    let p = plan(
        "  a: { uses: notify.teams, with: { message: a } }\n  g: { uses: notify.teams, needs: [a], for_each: [x, y, z], with: { message: \"{{item}}\" } }\n  b: { uses: notify.teams, needs: [g], with: { message: b } }\n",
    );
    let mut s = Sim::new(&p);
    s.start();
    s.succeed("a", 0);
    s.succeed("g", 0);
    s.succeed("g", 2);
    let end = s.fail("g", 1);
    assert_eq!(end, vec![finish(RunStatus::Failed, Some("g"))]);
    assert!(matches!(s.refused(op_retry(&["a"])), Error::Invalid(_)));
    // Only the failed item runs again, with a higher attempt number.
    assert_eq!(s.ev(op_retry(&[])), vec![enq("g", 1)]);
    assert_eq!(s.m.status(), RunStatus::Running);
    assert_eq!(s.m.next_attempt("g", 1), 2);
    assert_eq!(s.succeed("g", 1), vec![enq("b", 0)]);
    assert_eq!(s.succeed("b", 0), vec![finish(RunStatus::Succeeded, None)]);
    assert!(
        matches!(s.refused(op_retry(&[])), Error::Invalid(_)),
        "a succeeded run cannot be retried"
    );
}

/// Issue 9, symptom 3: `tenure retry RUN --step a` when `b` also failed.
#[test]
fn retrying_one_failed_step_runs_it_and_the_other_fails_the_run_again() {
    let p = plan_of(
        "steps:\n  a: { uses: notify.teams, with: { message: a } }\n  b: { uses: notify.teams, with: { message: b } }\n  c: { uses: notify.teams, needs: [a], with: { message: c } }\n  d: { uses: notify.teams, needs: [b], with: { message: d } }\n",
    );
    let mut s = Sim::new(&p);
    assert_eq!(s.start(), vec![enq("a", 0), enq("b", 0)]);
    s.claim("b", 0);
    assert_eq!(s.fail("a", 0), vec![]);
    assert_eq!(
        s.ev(failed("b", 0, 1, Failure::permanent("400", "no"))),
        vec![finish(RunStatus::Failed, Some("a"))]
    );
    assert_eq!(s.m.phase("b"), Some(StepPhase::Failed));
    let a = s.ev(op_retry(&["a"]));
    assert_eq!(a, vec![enq("a", 0)], "a runs; the run does not fail here");
    assert_eq!(s.m.status(), RunStatus::Running);
    assert_eq!(s.m.instance("a", 0), Some(InstanceState::Ready));
    assert_eq!(s.succeed("a", 0), vec![enq("c", 0)]);
    assert_eq!(
        s.succeed("c", 0),
        vec![finish(RunStatus::Failed, Some("b"))],
        "b is still failed"
    );
    assert_eq!(
        s.m.phase("d"),
        Some(StepPhase::Cancelled),
        "d never started"
    );
    assert!(s.m.instances("d").is_empty());
    // Retrying everything now resumes b and then d.
    assert_eq!(s.ev(op_retry(&[])), vec![enq("b", 0)]);
    assert_eq!(s.succeed("b", 0), vec![enq("d", 0)]);
    assert_eq!(s.succeed("d", 0), vec![finish(RunStatus::Succeeded, None)]);
}

fn compensated() -> Plan {
    let undo =
        |id: &str| format!("compensate: {{ uses: notify.teams, with: {{ message: undo {id} }} }}");
    plan(&format!(
        "  a: {{ uses: notify.teams, with: {{ message: a }}, {} }}\n  b: {{ uses: notify.teams, needs: [a], with: {{ message: b }}, {} }}\n  c: {{ uses: notify.teams, needs: [b], with: {{ message: c }}, {} }}\n  d: {{ uses: notify.teams, needs: [c], with: {{ message: d }} }}\n",
        undo("a"),
        undo("b"),
        undo("c")
    ))
}

#[test]
fn rollback_runs_compensations_in_reverse_for_what_succeeded() {
    let mut s = Sim::new(&compensated());
    s.start();
    s.succeed("a", 0);
    s.succeed("b", 0);
    s.fail("c", 0);
    assert_eq!(s.m.status(), RunStatus::Failed);
    // c failed: nothing to undo there; b is undone before a.
    assert_eq!(
        s.ev(rollback()),
        vec![
            Action::Skipped {
                step: "undo:c".into(),
                reason: "nothing to undo"
            },
            enq("undo:b", 0)
        ]
    );
    assert_eq!(s.m.stage(), Stage::Rollback);
    assert_eq!(s.succeed("undo:b", 0), vec![enq("undo:a", 0)]);
    assert_eq!(
        s.succeed("undo:a", 0),
        vec![finish(RunStatus::RolledBack, None)]
    );
    assert!(
        s.m.apply(rollback(), s.now).is_err(),
        "a rolled-back run is not rolled back twice"
    );
}

#[test]
fn a_cancelled_run_can_be_rolled_back() {
    let mut s = Sim::new(&compensated());
    s.start();
    s.succeed("a", 0);
    s.claim("b", 0);
    s.ev(cancel());
    assert_eq!(
        s.ev(rollback()),
        vec![
            Action::Skipped {
                step: "undo:b".into(),
                reason: "nothing to undo"
            },
            Action::Skipped {
                step: "undo:c".into(),
                reason: "nothing to undo"
            },
            enq("undo:a", 0)
        ]
    );
    assert_eq!(
        s.succeed("undo:a", 0),
        vec![finish(RunStatus::RolledBack, None)]
    );
}

#[test]
fn a_failed_compensation_fails_the_rollback_and_retry_resumes_it() {
    let p = plan("  a: { uses: notify.teams, with: { message: a }, compensate: { uses: notify.teams, with: { message: undo } } }\n  b: { uses: notify.teams, needs: [a], with: { message: b } }\n");
    let mut s = Sim::new(&p);
    s.start();
    s.succeed("a", 0);
    s.fail("b", 0);
    s.ev(rollback());
    assert_eq!(
        s.fail("undo:a", 0),
        vec![finish(RunStatus::Failed, Some("undo:a"))]
    );
    assert_eq!(s.ev(op_retry(&[])), vec![enq("undo:a", 0)]);
    assert_eq!(s.m.next_attempt("undo:a", 0), 2);
    assert_eq!(
        s.succeed("undo:a", 0),
        vec![finish(RunStatus::RolledBack, None)]
    );
}

// ---------------------------------------------------------------------------------------------
// Approvals (issue 9, symptoms 1 and 5)

const GATE: &str = "  approve:\n    uses: approval\n    with: { approvers: [x@msp.example, y@msp.example, z@msp.example], quorum: 2, message: ok? }\n  b: { uses: notify.teams, needs: [approve], with: { message: b } }\n";

fn gated(on_failure: bool) -> Sim {
    let body = if on_failure {
        format!("steps:\n{GATE}on_failure:\n  tell: {{ uses: notify.teams, with: {{ message: failed }} }}\n")
    } else {
        format!("steps:\n{GATE}")
    };
    let mut s = Sim::new(&plan_of(&body));
    assert_eq!(s.start(), vec![enq("approve", 0)]);
    s
}

#[test]
fn approval_parks_the_run_and_a_denial_ends_it() {
    let mut s = gated(false);
    s.park_gate("approve", &["it@msp.example"], 1, OnExpiry::Deny);
    assert_eq!(s.m.status(), RunStatus::Waiting);
    assert_eq!(s.m.open_gates().len(), 1);
    let mut approved = Sim {
        m: s.m.clone(),
        now: s.now,
    };
    let a = approved.ev(decide("approve", "IT@msp.example", true, None));
    assert_eq!(a.last(), Some(&enq("b", 0)), "{a:?}");
    assert_eq!(approved.m.status(), RunStatus::Running);
    let a = s.ev(decide("approve", "it@msp.example", false, Some("no")));
    assert_eq!(
        a,
        vec![
            Action::CancelTimer {
                step: "approve".into(),
                item: 0
            },
            Action::ApprovalResolved {
                step: "approve".into(),
                decision: "denied".into(),
                decided_by: vec!["it@msp.example".into()]
            },
            Action::StoreOutput {
                step: "approve".into(),
                item: 0,
                output: json!({"decision": "denied", "decided_by": ["it@msp.example"], "comment": "no"})
            },
            finish(RunStatus::Denied, None)
        ]
    );
    assert_eq!(s.m.phase("b"), Some(StepPhase::Cancelled));
}

#[test]
fn two_approvers_on_a_quorum_of_two_both_count_and_open_the_gate() {
    let mut s = gated(false);
    s.park_gate(
        "approve",
        &["x@msp.example", "y@msp.example", "z@msp.example"],
        2,
        OnExpiry::Deny,
    );
    assert_eq!(
        s.ev(decide("approve", "x@msp.example", true, Some("fine"))),
        vec![]
    );
    assert_eq!(s.m.status(), RunStatus::Waiting);
    assert_eq!(s.m.gate("approve").unwrap().approvals(), 1);
    // The same approver again (any spelling) is refused; so is a stranger.
    assert_eq!(
        s.refused(decide("approve", "X@msp.example", true, None)),
        Error::AlreadyDecided("x@msp.example".into())
    );
    assert_eq!(
        s.refused(decide("approve", "x@msp.example", false, None)),
        Error::AlreadyDecided("x@msp.example".into()),
        "a second decision cannot turn into a deny either"
    );
    assert_eq!(
        s.refused(decide("approve", "mallory@evil.example", true, None)),
        Error::NotApprover("mallory@evil.example".into())
    );
    let a = s.ev(decide("approve", "y@msp.example", true, Some("go")));
    assert_eq!(
        a,
        vec![
            Action::CancelTimer {
                step: "approve".into(),
                item: 0
            },
            Action::ApprovalResolved {
                step: "approve".into(),
                decision: "approved".into(),
                decided_by: vec!["x@msp.example".into(), "y@msp.example".into()]
            },
            Action::StoreOutput {
                step: "approve".into(),
                item: 0,
                output: json!({"decision": "approved", "decided_by": ["x@msp.example", "y@msp.example"], "comment": "go"})
            },
            enq("b", 0)
        ]
    );
    assert_eq!(s.m.instance("approve", 0), Some(InstanceState::Succeeded));
    assert!(matches!(
        s.refused(decide("approve", "z@msp.example", true, None)),
        Error::Invalid(m) if m.contains("already decided: approved by x@msp.example, y@msp.example")
    ));
    assert!(
        matches!(s.refused(timer("approve", 0)), Error::Stale { .. }),
        "a late expiry timer is refused"
    );
    assert_eq!(s.succeed("b", 0), vec![finish(RunStatus::Succeeded, None)]);
}

#[test]
fn any_deny_denies_a_quorum_gate() {
    let mut s = gated(false);
    s.park_gate(
        "approve",
        &["x@msp.example", "y@msp.example", "z@msp.example"],
        2,
        OnExpiry::Deny,
    );
    s.ev(decide("approve", "x@msp.example", true, None));
    let a = s.ev(decide("approve", "z@msp.example", false, Some("not today")));
    assert!(a.contains(&Action::ApprovalResolved {
        step: "approve".into(),
        decision: "denied".into(),
        decided_by: vec!["z@msp.example".into()]
    }));
    assert_eq!(a.last(), Some(&finish(RunStatus::Denied, None)));
    assert_eq!(s.m.status(), RunStatus::Denied);
}

#[test]
fn decisions_before_the_gate_parks_are_refused() {
    let mut s = gated(false);
    assert!(matches!(
        s.refused(decide("approve", "x@msp.example", true, None)),
        Error::NotWaiting(_)
    ));
    s.claim("approve", 0);
    assert!(matches!(
        s.refused(decide("approve", "x@msp.example", true, None)),
        Error::NotWaiting(_)
    ));
    assert!(matches!(
        s.refused(decide("b", "x@msp.example", true, None)),
        Error::NotWaiting(_)
    ));
}

fn expire(s: &mut Sim) -> Vec<Action> {
    s.now += 3_600_000;
    s.ev(timer("approve", 0))
}

#[test]
fn an_expired_gate_with_on_expiry_approve_opens() {
    let mut s = gated(false);
    s.park_gate(
        "approve",
        &["x@msp.example", "y@msp.example"],
        2,
        OnExpiry::Approve,
    );
    s.ev(decide("approve", "x@msp.example", true, Some("yes")));
    let a = expire(&mut s);
    assert_eq!(
        a,
        vec![
            Action::ApprovalResolved {
                step: "approve".into(),
                decision: "expired".into(),
                decided_by: vec!["x@msp.example".into()]
            },
            Action::StoreOutput {
                step: "approve".into(),
                item: 0,
                output: json!({"decision": "expired", "decided_by": ["x@msp.example"], "comment": null})
            },
            enq("b", 0)
        ]
    );
}

#[test]
fn an_expired_gate_with_on_expiry_deny_denies() {
    let mut s = gated(true);
    s.park_gate("approve", &["x@msp.example"], 1, OnExpiry::Deny);
    let a = expire(&mut s);
    assert_eq!(a.last(), Some(&finish(RunStatus::Denied, None)), "{a:?}");
    assert_eq!(s.m.phase("tell"), Some(StepPhase::Cancelled));
}

#[test]
fn an_expired_gate_with_on_expiry_fail_fails_the_step_and_on_failure_runs() {
    let mut s = gated(true);
    s.park_gate("approve", &["x@msp.example"], 1, OnExpiry::Fail);
    let a = expire(&mut s);
    assert_eq!(
        a,
        vec![
            Action::ApprovalResolved {
                step: "approve".into(),
                decision: "expired".into(),
                decided_by: vec![]
            },
            Action::GaveUp {
                step: "approve".into(),
                item: 0,
                reason: "the approval expired without a decision (on_expiry: fail)".into()
            },
            Action::OnFailure {
                failed_step: "approve".into()
            },
            enq("tell", 0)
        ]
    );
    assert_eq!(s.m.phase("approve"), Some(StepPhase::Failed));
    assert_eq!(
        s.succeed("tell", 0),
        vec![finish(RunStatus::Failed, Some("approve"))]
    );

    let mut s = gated(false);
    s.park_gate("approve", &["x@msp.example"], 1, OnExpiry::Fail);
    let a = expire(&mut s);
    assert_eq!(a.last(), Some(&finish(RunStatus::Failed, Some("approve"))));
}

#[test]
fn cancel_during_an_approval_ends_the_run() {
    let mut s = gated(false);
    s.park_gate("approve", &["x@msp.example"], 1, OnExpiry::Deny);
    let a = s.ev(cancel());
    assert!(a.contains(&finish(RunStatus::Cancelled, None)), "{a:?}");
    assert_eq!(s.m.instance("approve", 0), Some(InstanceState::Cancelled));
    assert!(s.m.open_gates().is_empty());
    assert!(s
        .m
        .apply(decide("approve", "x@msp.example", true, None), s.now)
        .is_err());
}

/// A parked approval holds no worker: when another branch fails, the run should not sit in
/// `running` until someone decides or the request expires (48 h by default).
#[test]
fn a_failure_elsewhere_does_not_wait_for_a_parked_approval() {
    let p = plan_of(&format!(
        "steps:\n{GATE}  other: {{ uses: notify.teams, with: {{ message: o }} }}\n"
    ));
    let mut s = Sim::new(&p);
    assert_eq!(s.start(), vec![enq("approve", 0), enq("other", 0)]);
    s.park_gate("approve", &["x@msp.example"], 1, OnExpiry::Deny);
    let a = s.fail("other", 0);
    assert_eq!(
        a,
        vec![
            Action::CancelTimer {
                step: "approve".into(),
                item: 0
            },
            finish(RunStatus::Failed, Some("other"))
        ],
        "the gate is withdrawn and the run fails now"
    );
}

// ---------------------------------------------------------------------------------------------
// Waits (issue 9, symptom 5)

#[test]
fn a_wait_stores_resumed_at_when_its_timer_fires() {
    let p = plan_of("steps:\n  pause: { uses: wait, with: { for: 1m } }\n  b: { uses: notify.teams, needs: [pause], with: { message: b } }\n");
    let mut s = Sim::new(&p);
    s.start();
    let attempt = s.claim("pause", 0);
    let until_ms = s.now + 60_000;
    assert_eq!(
        s.ev(Event::Parked {
            step: "pause".into(),
            item: 0,
            attempt,
            park: Park::Wait { until_ms },
            requests: vec![],
        }),
        vec![Action::SetTimer {
            step: "pause".into(),
            item: 0,
            at_ms: until_ms
        }]
    );
    assert_eq!(s.m.status(), RunStatus::Waiting);
    assert!(matches!(
        s.refused(decide("pause", "x@msp.example", true, None)),
        Error::NotWaiting(_)
    ));
    s.now = until_ms;
    assert_eq!(
        s.ev(timer("pause", 0)),
        vec![
            Action::StoreOutput {
                step: "pause".into(),
                item: 0,
                output: json!({"resumed_at": "2023-11-14T22:14:20.000Z"})
            },
            enq("b", 0)
        ]
    );
    assert!(matches!(s.refused(timer("pause", 0)), Error::Stale { .. }));
}

// ---------------------------------------------------------------------------------------------
// Retry budget, throttling, deadlines (issue 9, symptoms 4, 7, 8)

const FLAKY: &str = "steps:\n  a: { uses: notify.teams, retry: { attempts: 2, backoff: fixed, delay: 10s, max_delay: 10s }, with: { message: a } }\n";

#[test]
fn an_operator_retry_gives_a_fresh_budget() {
    let mut s = Sim::new(&plan_of(FLAKY));
    s.start();
    let a = s.fail_with("a", 0, Failure::transient("503", "down"));
    assert_eq!(enqueue_at(&a).1, Again::Error);
    s.now = s.retry_at("a", 0);
    s.ev(timer("a", 0));
    let a = s.fail_with("a", 0, Failure::transient("503", "down"));
    assert!(gave_up(&a), "2 attempts: {a:?}");
    assert_eq!(a.last(), Some(&finish(RunStatus::Failed, Some("a"))));
    assert_eq!(s.m.errors("a", 0), 2);
    s.ev(op_retry(&[]));
    assert_eq!(s.m.errors("a", 0), 0, "a fresh budget");
    assert_eq!(
        s.m.next_attempt("a", 0),
        3,
        "the attempt number keeps counting"
    );
    let a = s.fail_with("a", 0, Failure::transient("503", "down"));
    assert_eq!(
        enqueue_at(&a).1,
        Again::Error,
        "the first error after an operator retry is retried"
    );
}

#[test]
fn lease_expiries_do_not_use_the_budget() {
    let mut s = Sim::new(&plan_of(FLAKY));
    s.start();
    for attempt in 1..=5 {
        assert_eq!(s.claim("a", 0), attempt);
        s.now += 60_000;
        assert_eq!(
            s.ev(Event::LeaseExpired {
                step: "a".into(),
                item: 0,
                attempt
            }),
            vec![enq("a", 0)]
        );
    }
    assert_eq!(s.m.errors("a", 0), 0);
    let a = s.fail_with("a", 0, Failure::transient("503", "down"));
    assert_eq!(enqueue_at(&a).1, Again::Error, "the budget is untouched");
}

#[test]
fn a_lease_expiry_past_the_deadline_gives_up() {
    let mut s = Sim::new(&plan_of(
        "steps:\n  a: { uses: notify.teams, timeout: 10m, with: { message: a } }\n",
    ));
    s.start();
    s.claim("a", 0);
    s.now += 11 * 60_000;
    let a = s.ev(Event::LeaseExpired {
        step: "a".into(),
        item: 0,
        attempt: 1,
    });
    assert!(gave_up(&a), "{a:?}");
    assert_eq!(a.last(), Some(&finish(RunStatus::Failed, Some("a"))));
}

#[test]
fn throttling_does_not_use_the_budget_and_each_wait_is_capped() {
    let mut s = Sim::new(&plan_of(FLAKY));
    s.start();
    for _ in 0..10 {
        let a = s.fail_with("a", 0, throttled(1_000));
        assert_eq!(enqueue_at(&a), (s.now + 1_000, Again::Throttled));
        s.now += 1_000;
        s.ev(timer("a", 0));
    }
    assert_eq!(s.m.errors("a", 0), 0);
    let a = s.fail_with("a", 0, throttled(99_999_999_000));
    assert_eq!(
        enqueue_at(&a),
        (s.now + MAX_WAIT.as_millis() as u64, Again::Throttled),
        "Retry-After is capped at 15 minutes"
    );
}

#[test]
fn a_retry_after_near_u64_max_does_not_wrap() {
    let mut s = Sim::new(&plan_of(FLAKY));
    s.start();
    let a = s.fail_with("a", 0, throttled(u64::MAX - 1));
    let (at, why) = enqueue_at(&a);
    assert_eq!(why, Again::Throttled);
    assert!(at > s.now, "not in the past");
    assert_eq!(at, s.now + MAX_WAIT.as_millis() as u64);
}

#[test]
fn nothing_waits_past_the_step_deadline() {
    // An explicit timeout.
    let mut s = Sim::new(&plan_of(
        "steps:\n  a: { uses: notify.teams, timeout: 20m, with: { message: a } }\n",
    ));
    s.start();
    let start = s.now;
    let a = s.fail_with("a", 0, throttled(15 * 60_000));
    assert_eq!(enqueue_at(&a), (start + 15 * 60_000, Again::Throttled));
    s.now = s.retry_at("a", 0);
    s.ev(timer("a", 0));
    let a = s.fail_with("a", 0, throttled(15 * 60_000));
    assert!(
        matches!(&a[0], Action::GaveUp { step, item: 0, .. } if step == "a"),
        "30 min is past the 20 min timeout: {a:?}"
    );
    assert_eq!(a.last(), Some(&finish(RunStatus::Failed, Some("a"))));

    // The default deadline: 6 h of throttling.
    let mut s = Sim::new(&plan_of(
        "steps:\n  a: { uses: notify.teams, with: { message: a } }\n",
    ));
    s.start();
    let start = s.now;
    let mut waits = 0;
    loop {
        let a = s.fail_with("a", 0, throttled(15 * 60_000));
        if gave_up(&a) {
            break;
        }
        waits += 1;
        s.now = s.retry_at("a", 0);
        assert!(s.now - start <= DEFAULT_DEADLINE.as_millis() as u64);
        s.ev(timer("a", 0));
    }
    assert_eq!(waits, 24, "6 h of 15 min waits");
    assert_eq!(s.m.status(), RunStatus::Failed);
}

#[test]
fn not_yet_waits_without_using_the_budget_and_respects_the_deadline() {
    let mut s = Sim::new(&plan_of(
        "steps:\n  a: { uses: notify.teams, timeout: 1h, retry: { attempts: 2, backoff: fixed, delay: 1s, max_delay: 1s }, with: { message: a } }\n",
    ));
    s.start();
    let start = s.now;
    let deferred = |s: &mut Sim, at_ms: u64| {
        let attempt = s.claim("a", 0);
        s.ev(Event::AttemptDeferred {
            step: "a".into(),
            item: 0,
            attempt,
            at_ms,
            reason: "mailbox not provisioned".into(),
            requests: vec![],
        })
    };
    let a = deferred(&mut s, start + 120_000);
    assert_eq!(
        a,
        vec![Action::EnqueueAt {
            step: "a".into(),
            item: 0,
            at_ms: start + 120_000,
            why: Again::NotReady
        }]
    );
    assert_eq!(s.m.status(), RunStatus::Running);
    s.now = start + 120_000;
    s.ev(timer("a", 0));
    // "Look again in a day" is capped at 15 minutes; a time in the past means now.
    let later = s.now + 86_400_000;
    let a = deferred(&mut s, later);
    assert_eq!(enqueue_at(&a), (s.now + 15 * 60_000, Again::NotReady));
    s.now = s.retry_at("a", 0);
    s.ev(timer("a", 0));
    let a = deferred(&mut s, 0);
    assert_eq!(enqueue_at(&a), (s.now, Again::NotReady));
    s.ev(timer("a", 0));
    assert_eq!(s.m.errors("a", 0), 0, "the budget is untouched");
    // Past the 1 h deadline it gives up.
    s.now = start + 50 * 60_000;
    let later = s.now + 15 * 60_000;
    let a = deferred(&mut s, later);
    assert!(gave_up(&a), "{a:?}");
    assert_eq!(a.last(), Some(&finish(RunStatus::Failed, Some("a"))));
}

// ---------------------------------------------------------------------------------------------
// Concurrency keys

#[test]
fn a_run_with_a_concurrency_key_starts_the_next_queued_run_when_it_ends() {
    let created = |key: Option<&str>| Event::Created {
        runbook: "t".into(),
        version: 1,
        plan_hash: "h".into(),
        trigger: "cli".into(),
        inputs: json!({}),
        concurrency_key: key.map(String::from),
        seed: 7,
    };
    let key = || Action::StartQueued {
        key: "tenant:contoso".into(),
    };
    let p = plan_of(PLAIN);
    // Succeeded.
    let mut s = Sim::new(&p);
    s.ev(created(Some("tenant:contoso")));
    assert_eq!(s.m.concurrency_key(), Some("tenant:contoso"));
    s.start();
    s.succeed("a", 0);
    assert_eq!(
        s.succeed("b", 0),
        vec![finish(RunStatus::Succeeded, None), key()]
    );
    // Failed.
    let mut s = Sim::new(&p);
    s.ev(created(Some("tenant:contoso")));
    s.start();
    assert_eq!(
        s.fail("a", 0),
        vec![finish(RunStatus::Failed, Some("a")), key()]
    );
    // Cancelled.
    let mut s = Sim::new(&p);
    s.ev(created(Some("tenant:contoso")));
    s.start();
    assert_eq!(
        s.ev(cancel()),
        vec![finish(RunStatus::Cancelled, None), key()]
    );
    // Denied.
    let mut s = Sim::new(&plan_of(&format!("steps:\n{GATE}")));
    s.ev(created(Some("tenant:contoso")));
    s.start();
    s.park_gate("approve", &["x@msp.example"], 1, OnExpiry::Deny);
    let a = s.ev(decide("approve", "x@msp.example", false, None));
    assert_eq!(&a[a.len() - 2..], &[finish(RunStatus::Denied, None), key()]);
    // Without a key nothing is started.
    let mut s = Sim::new(&p);
    s.ev(created(None));
    s.start();
    assert_eq!(s.fail("a", 0), vec![finish(RunStatus::Failed, Some("a"))]);
    assert!(
        matches!(s.m.apply(created(None), s.now), Err(Error::Invalid(_))),
        "created twice"
    );
}

/// A second `Created` before the run starts is accepted today: it journals a second
/// `run_created` and overwrites the concurrency key and seed (here: drops the key, so the
/// queued runs behind it never start).
#[test]
fn a_second_created_event_is_refused() {
    let created = |key: Option<&str>| Event::Created {
        runbook: "t".into(),
        version: 1,
        plan_hash: "h".into(),
        trigger: "cli".into(),
        inputs: json!({}),
        concurrency_key: key.map(String::from),
        seed: 7,
    };
    let mut s = Sim::new(&plan_of(PLAIN));
    s.ev(created(Some("tenant:contoso")));
    assert!(matches!(s.refused(created(None)), Error::Invalid(_)));
    assert_eq!(s.m.concurrency_key(), Some("tenant:contoso"));
}

/// A rollback that failed half-way through a `for_each` compensation, rolled back again by an
/// operator (a failed run may be rolled back): the compensation items that already succeeded
/// must not run again. Today `rollback()` clears the `undo:` node's instances unless the whole
/// node succeeded, so `undo:g[0]` is undone twice.
#[test]
fn a_second_rollback_does_not_undo_an_item_twice() {
    let p = plan("  g: { uses: notify.teams, for_each: [x, y], with: { message: \"{{item}}\" }, compensate: { uses: notify.teams, with: { message: undo } } }\n  b: { uses: notify.teams, needs: [g], with: { message: b } }\n");
    let mut s = Sim::new(&p);
    s.start();
    s.succeed("g", 0);
    s.succeed("g", 1);
    s.fail("b", 0);
    assert_eq!(s.ev(rollback()), vec![enq("undo:g", 0), enq("undo:g", 1)]);
    s.succeed("undo:g", 0);
    assert_eq!(
        s.fail("undo:g", 1),
        vec![finish(RunStatus::Failed, Some("undo:g"))]
    );
    // Rolling back again only undoes what is not undone yet, like a retry would.
    let a = s.ev(rollback());
    assert_eq!(a, vec![enq("undo:g", 1)], "undo:g[0] was undone already");
    assert_eq!(s.m.instance("undo:g", 0), Some(InstanceState::Succeeded));
}
