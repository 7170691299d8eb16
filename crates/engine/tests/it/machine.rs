//! The run state machine, fed events the way a driver would, checked by the actions it asks
//! for.

use tenure_engine::machine::{
    Action, Error, Event, InstanceState, RunMachine, RunStatus, Stage, StepPhase,
};
use tenure_runbook::{compile, Plan, SourceFile};

fn plan(steps: &str) -> Plan {
    let text = format!("runbook: t\nversion: 1\ntenant: contoso\ninputs:\n  items: {{ type: list, default: [a, b, c, d, e] }}\nsteps:\n{steps}");
    let src = SourceFile::new("t.yaml", text);
    let out = compile(&src, &tenure_steps::contract_catalogue());
    for d in &out.diagnostics {
        eprintln!("{}", d.render(&src));
    }
    out.plan.expect("test plan compiles")
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

/// Runs one instance's attempt to success.
fn succeed(m: &mut RunMachine, step: &str, item: u32, attempt: u32) -> Vec<Action> {
    m.apply(Event::AttemptStarted {
        step: step.into(),
        item,
        attempt,
    })
    .unwrap();
    m.apply(Event::AttemptSucceeded {
        step: step.into(),
        item,
        attempt,
    })
    .unwrap()
}

fn prepared(m: &mut RunMachine, step: &str, items: Option<u32>) -> Vec<Action> {
    m.apply(Event::Prepared {
        step: step.into(),
        items,
        skip: false,
    })
    .unwrap()
}

#[test]
fn a_diamond_runs_in_dependency_order() {
    let p = plan(
        &(note("a")
            + &note("b").replace("with:", "needs: [a]\n    with:")
            + &note("c").replace("with:", "needs: [a]\n    with:")
            + &note("d").replace("with:", "needs: [b, c]\n    with:")),
    );
    let mut m = RunMachine::new(&p);
    assert_eq!(m.status(), RunStatus::Queued);
    assert_eq!(m.apply(Event::Start).unwrap(), vec![prep("a")]);
    assert_eq!(prepared(&mut m, "a", None), vec![enq("a", 0)]);
    assert_eq!(succeed(&mut m, "a", 0, 1), vec![prep("b"), prep("c")]);
    prepared(&mut m, "b", None);
    prepared(&mut m, "c", None);
    assert_eq!(succeed(&mut m, "b", 0, 1), vec![], "d still waits for c");
    assert_eq!(succeed(&mut m, "c", 0, 1), vec![prep("d")]);
    prepared(&mut m, "d", None);
    assert_eq!(
        succeed(&mut m, "d", 0, 1),
        vec![Action::Finish {
            status: RunStatus::Succeeded,
            failed_step: None
        }]
    );
    assert_eq!(m.status(), RunStatus::Succeeded);
    assert!(
        matches!(m.apply(Event::Cancel), Err(Error::Invalid(_))),
        "an ended run takes no more events"
    );
}

#[test]
fn for_each_respects_max_parallel_and_retries_only_the_failed_item() {
    let p = plan("  g:\n    uses: entra.add_to_group\n    for_each: \"{{inputs.items}}\"\n    max_parallel: 2\n    with: { user: u, group: \"{{item}}\" }\n");
    let mut m = RunMachine::new(&p);
    m.apply(Event::Start).unwrap();
    assert_eq!(
        prepared(&mut m, "g", Some(5)),
        vec![enq("g", 0), enq("g", 1)]
    );
    assert_eq!(m.instance("g", 2), Some(InstanceState::Pending));
    assert_eq!(succeed(&mut m, "g", 0, 1), vec![enq("g", 2)]);
    m.apply(Event::AttemptStarted {
        step: "g".into(),
        item: 1,
        attempt: 1,
    })
    .unwrap();
    let a = m
        .apply(Event::AttemptFailed {
            step: "g".into(),
            item: 1,
            attempt: 1,
            retry_at_ms: Some(5_000),
        })
        .unwrap();
    assert_eq!(
        a,
        vec![Action::ScheduleRetry {
            step: "g".into(),
            item: 1,
            at_ms: 5_000
        }]
    );
    assert_eq!(
        m.apply(Event::RetryDue {
            step: "g".into(),
            item: 1
        })
        .unwrap(),
        vec![enq("g", 1)]
    );
    let stale = m.apply(Event::AttemptStarted {
        step: "g".into(),
        item: 1,
        attempt: 1,
    });
    assert!(
        matches!(stale, Err(Error::Stale { attempt: 1, .. })),
        "attempt numbers only go up"
    );
    assert_eq!(succeed(&mut m, "g", 1, 2), vec![enq("g", 3)]);
    assert_eq!(succeed(&mut m, "g", 2, 1), vec![enq("g", 4)]);
    succeed(&mut m, "g", 3, 1);
    assert_eq!(
        succeed(&mut m, "g", 4, 1),
        vec![Action::Finish {
            status: RunStatus::Succeeded,
            failed_step: None
        }]
    );
}

#[test]
fn a_zombie_worker_cannot_finish_a_newer_attempt() {
    let p = plan(&note("a"));
    let mut m = RunMachine::new(&p);
    m.apply(Event::Start).unwrap();
    prepared(&mut m, "a", None);
    m.apply(Event::AttemptStarted {
        step: "a".into(),
        item: 0,
        attempt: 1,
    })
    .unwrap();
    assert_eq!(
        m.apply(Event::LeaseExpired {
            step: "a".into(),
            item: 0,
            attempt: 1
        })
        .unwrap(),
        vec![enq("a", 0)]
    );
    m.apply(Event::AttemptStarted {
        step: "a".into(),
        item: 0,
        attempt: 2,
    })
    .unwrap();
    let zombie = m.apply(Event::AttemptSucceeded {
        step: "a".into(),
        item: 0,
        attempt: 1,
    });
    assert!(matches!(zombie, Err(Error::Stale { attempt: 1, .. })));
    assert_eq!(
        m.instance("a", 0),
        Some(InstanceState::Running { attempt: 2 })
    );
    let dup = succeed_twice(&mut m);
    assert!(dup.is_err(), "a duplicate success delivery is refused");
}

fn succeed_twice(m: &mut RunMachine) -> Result<Vec<Action>, Error> {
    m.apply(Event::AttemptSucceeded {
        step: "a".into(),
        item: 0,
        attempt: 2,
    })
    .unwrap();
    m.apply(Event::AttemptSucceeded {
        step: "a".into(),
        item: 0,
        attempt: 2,
    })
}

#[test]
fn a_permanent_failure_fails_the_run_after_in_flight_work_settles() {
    let p =
        plan(&(note("a") + &note("b") + &note("c").replace("with:", "needs: [a, b]\n    with:")));
    let mut m = RunMachine::new(&p);
    m.apply(Event::Start).unwrap();
    prepared(&mut m, "a", None);
    prepared(&mut m, "b", None);
    m.apply(Event::AttemptStarted {
        step: "b".into(),
        item: 0,
        attempt: 1,
    })
    .unwrap();
    m.apply(Event::AttemptStarted {
        step: "a".into(),
        item: 0,
        attempt: 1,
    })
    .unwrap();
    let a = m
        .apply(Event::AttemptFailed {
            step: "a".into(),
            item: 0,
            attempt: 1,
            retry_at_ms: None,
        })
        .unwrap();
    assert!(a.is_empty(), "b is still running: {a:?}");
    let a = m
        .apply(Event::AttemptSucceeded {
            step: "b".into(),
            item: 0,
            attempt: 1,
        })
        .unwrap();
    assert_eq!(
        a,
        vec![Action::Finish {
            status: RunStatus::Failed,
            failed_step: Some("a".into())
        }]
    );
    assert_eq!(m.phase("c"), Some(StepPhase::Cancelled), "c never started");
    assert_eq!(m.failed_step(), Some("a"));
}

#[test]
fn continue_on_error_and_skipped_steps_let_dependents_run() {
    let p = plan(
        &(note("a").replace("with:", "continue_on_error: true\n    with:")
            + &note("b")
            + &note("c").replace("with:", "needs: [a, b]\n    with:")),
    );
    let mut m = RunMachine::new(&p);
    m.apply(Event::Start).unwrap();
    prepared(&mut m, "a", None);
    assert_eq!(
        m.apply(Event::Prepared {
            step: "b".into(),
            items: None,
            skip: true
        })
        .unwrap(),
        vec![Action::Skipped {
            step: "b".into(),
            reason: "condition is false"
        }]
    );
    m.apply(Event::AttemptStarted {
        step: "a".into(),
        item: 0,
        attempt: 1,
    })
    .unwrap();
    let a = m
        .apply(Event::AttemptFailed {
            step: "a".into(),
            item: 0,
            attempt: 1,
            retry_at_ms: None,
        })
        .unwrap();
    assert_eq!(a, vec![prep("c")]);
    prepared(&mut m, "c", None);
    assert_eq!(
        succeed(&mut m, "c", 0, 1),
        vec![Action::Finish {
            status: RunStatus::Succeeded,
            failed_step: None
        }]
    );
    assert_eq!(m.phase("a"), Some(StepPhase::Failed));
}

#[test]
fn approval_parks_the_run_and_a_denial_ends_it() {
    let p = plan(&("  approve:\n    uses: approval\n    if: \"{{ inputs.items }}\"\n    with: { approvers: [it@msp.example], message: ok? }\n".to_string() + &note("b").replace("with:", "needs: [approve]\n    with:")));
    let mut m = RunMachine::new(&p);
    m.apply(Event::Start).unwrap();
    prepared(&mut m, "approve", None);
    m.apply(Event::AttemptStarted {
        step: "approve".into(),
        item: 0,
        attempt: 1,
    })
    .unwrap();
    m.apply(Event::Parked {
        step: "approve".into(),
        item: 0,
        attempt: 1,
    })
    .unwrap();
    assert_eq!(m.status(), RunStatus::Waiting);
    let mut approved = m.clone();
    assert_eq!(
        approved
            .apply(Event::ApprovalResolved {
                step: "approve".into(),
                approved: true
            })
            .unwrap(),
        vec![prep("b")]
    );
    assert_eq!(approved.status(), RunStatus::Running);
    let a = m
        .apply(Event::ApprovalResolved {
            step: "approve".into(),
            approved: false,
        })
        .unwrap();
    assert_eq!(
        a,
        vec![Action::Finish {
            status: RunStatus::Denied,
            failed_step: None
        }]
    );
    assert_eq!(m.phase("b"), Some(StepPhase::Cancelled));
}

#[test]
fn cancel_stops_everything() {
    let p = plan(&(note("a") + &note("b").replace("with:", "needs: [a]\n    with:")));
    let mut m = RunMachine::new(&p);
    m.apply(Event::Start).unwrap();
    prepared(&mut m, "a", None);
    m.apply(Event::AttemptStarted {
        step: "a".into(),
        item: 0,
        attempt: 1,
    })
    .unwrap();
    assert_eq!(
        m.apply(Event::Cancel).unwrap(),
        vec![Action::Finish {
            status: RunStatus::Cancelled,
            failed_step: None
        }]
    );
    assert_eq!(m.instance("a", 0), Some(InstanceState::Cancelled));
    assert_eq!(m.phase("b"), Some(StepPhase::Cancelled));
}

/// A tiny deterministic random source for the simulation.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn simulated_drivers_with_random_outcomes_always_finish() {
    let p = plan(&(note("a")
        + "  g:\n    uses: entra.add_to_group\n    needs: [a]\n    for_each: \"{{inputs.items}}\"\n    max_parallel: 2\n    with: { user: u, group: \"{{item}}\" }\n"
        + &note("b").replace("with:", "needs: [a]\n    continue_on_error: true\n    with:")
        + &note("c").replace("with:", "needs: [g, b]\n    with:")));
    let mut outcomes = std::collections::BTreeMap::new();
    for seed in 1..=300u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut m = RunMachine::new(&p);
        let mut queue: Vec<Action> = m.apply(Event::Start).unwrap();
        let mut finished = None;
        let mut steps = 0;
        while let Some(action) = queue.pop() {
            steps += 1;
            assert!(steps < 10_000, "seed {seed} does not terminate");
            let event = match action {
                Action::Prepare { step } => Event::Prepared {
                    items: (step == "g").then_some(5),
                    step,
                    skip: false,
                },
                Action::Enqueue { step, item } => {
                    let attempt = match m.instance(&step, item) {
                        Some(InstanceState::Ready) => {
                            let mut n = 1;
                            while m
                                .apply(Event::AttemptStarted {
                                    step: step.clone(),
                                    item,
                                    attempt: n,
                                })
                                .is_err()
                            {
                                n += 1;
                                assert!(n < 100);
                            }
                            n
                        }
                        _ => continue,
                    };
                    match rng.next() % 20 {
                        0..=12 => Event::AttemptSucceeded {
                            step,
                            item,
                            attempt,
                        },
                        13..=16 if attempt < 3 => Event::AttemptFailed {
                            step,
                            item,
                            attempt,
                            retry_at_ms: Some(1),
                        },
                        17 | 18 => Event::LeaseExpired {
                            step,
                            item,
                            attempt,
                        },
                        _ => Event::AttemptFailed {
                            step,
                            item,
                            attempt,
                            retry_at_ms: None,
                        },
                    }
                }
                Action::ScheduleRetry { step, item, .. } => Event::RetryDue { step, item },
                Action::Skipped { .. } | Action::OnFailure { .. } => continue,
                Action::Finish { status, .. } => {
                    assert!(finished.is_none(), "finished twice");
                    finished = Some(status);
                    continue;
                }
            };
            let actions = m.apply(event).unwrap();
            // Process the newest work first, like a busy worker pool would in some order.
            queue.extend(actions.into_iter().rev());
        }
        let status = finished
            .unwrap_or_else(|| panic!("seed {seed}: the run never finished ({:?})", m.status()));
        assert_eq!(status, m.status());
        *outcomes.entry(format!("{status:?}")).or_insert(0) += 1;
        assert!(
            matches!(status, RunStatus::Succeeded | RunStatus::Failed),
            "seed {seed}: {status:?}"
        );
        if status == RunStatus::Succeeded {
            assert_eq!(m.phase("c"), Some(StepPhase::Succeeded), "seed {seed}");
            assert_eq!(m.phase("g"), Some(StepPhase::Succeeded));
        } else {
            assert!(
                matches!(m.failed_step(), Some("a" | "g" | "c")),
                "seed {seed}: b has continue_on_error"
            );
        }
        for item in 0..5 {
            assert!(
                !matches!(
                    m.instance("g", item),
                    Some(InstanceState::Running { .. } | InstanceState::Ready)
                ),
                "seed {seed}"
            );
        }
    }
    assert!(
        outcomes.len() == 2,
        "both endings are exercised: {outcomes:?}"
    );
}

#[test]
fn steps_without_templates_to_render_are_prepared_inline() {
    let p = plan(
        "  a: { uses: notify.teams, with: { message: hi } }\n  b: { uses: notify.teams, needs: [a], for_each: [x, y], with: { message: hi } }\n  c: { uses: notify.teams, needs: [b], for_each: [], with: { message: hi } }\n  d: { uses: notify.teams, needs: [c], with: { message: hi } }\n",
    );
    let mut m = RunMachine::new(&p);
    assert_eq!(m.apply(Event::Start).unwrap(), vec![enq("a", 0)]);
    assert_eq!(succeed(&mut m, "a", 0, 1), vec![enq("b", 0), enq("b", 1)]);
    succeed(&mut m, "b", 0, 1);
    assert_eq!(
        succeed(&mut m, "b", 1, 1),
        vec![
            Action::Skipped {
                step: "c".into(),
                reason: "no items"
            },
            enq("d", 0)
        ],
        "an empty literal list skips the step and its dependents start in the same transition"
    );
    assert_eq!(m.phase("c"), Some(StepPhase::Skipped));
}

fn fail(m: &mut RunMachine, step: &str, item: u32, attempt: u32) -> Vec<Action> {
    m.apply(Event::AttemptStarted {
        step: step.into(),
        item,
        attempt,
    })
    .unwrap();
    m.apply(Event::AttemptFailed {
        step: step.into(),
        item,
        attempt,
        retry_at_ms: None,
    })
    .unwrap()
}

const PLAIN: &str = "  a: { uses: notify.teams, with: { message: a } }\n  b: { uses: notify.teams, needs: [a], with: { message: b } }\n";

#[test]
fn on_failure_steps_run_once_and_the_run_still_fails() {
    let p = plan(
        &format!(
            "{PLAIN}on_failure:\n  tell: {{ uses: notify.teams, with: {{ message: failed }} }}\n"
        )
        .replace(
            "inputs:\n  items: { type: list, default: [a, b, c, d, e] }\nsteps:\n",
            "steps:\n",
        ),
    );
    let mut m = RunMachine::new(&p);
    m.apply(Event::Start).unwrap();
    assert_eq!(
        fail(&mut m, "a", 0, 1),
        vec![
            Action::OnFailure {
                failed_step: "a".into()
            },
            enq("tell", 0)
        ]
    );
    assert_eq!(m.status(), RunStatus::Running);
    assert_eq!(m.phase("b"), Some(StepPhase::Cancelled));
    // A failing on_failure step does not stop the others, and the run ends failed.
    assert_eq!(
        fail(&mut m, "tell", 0, 1),
        vec![Action::Finish {
            status: RunStatus::Failed,
            failed_step: Some("a".into())
        }]
    );
}

#[test]
fn retry_resumes_from_the_failed_step_and_keeps_what_succeeded() {
    let p = plan(
        "  a: { uses: notify.teams, with: { message: a } }\n  g: { uses: notify.teams, needs: [a], for_each: [x, y, z], with: { message: \"{{item}}\" } }\n  b: { uses: notify.teams, needs: [g], with: { message: b } }\n",
    );
    let mut m = RunMachine::new(&p);
    m.apply(Event::Start).unwrap();
    succeed(&mut m, "a", 0, 1);
    succeed(&mut m, "g", 0, 1);
    succeed(&mut m, "g", 2, 1);
    let end = fail(&mut m, "g", 1, 1);
    assert!(matches!(
        end.last(),
        Some(Action::Finish {
            status: RunStatus::Failed,
            ..
        })
    ));
    assert!(matches!(
        m.apply(Event::Retry {
            steps: vec!["a".into()]
        }),
        Err(Error::Invalid(_))
    ));
    // Only the failed item runs again, with a higher attempt number.
    assert_eq!(
        m.apply(Event::Retry { steps: vec![] }).unwrap(),
        vec![enq("g", 1)]
    );
    assert_eq!(m.status(), RunStatus::Running);
    assert_eq!(m.next_attempt("g", 1), 2);
    assert_eq!(succeed(&mut m, "g", 1, 2), vec![enq("b", 0)]);
    let end = succeed(&mut m, "b", 0, 1);
    assert_eq!(
        end,
        vec![Action::Finish {
            status: RunStatus::Succeeded,
            failed_step: None
        }]
    );
    assert!(
        m.apply(Event::Retry { steps: vec![] }).is_err(),
        "a succeeded run cannot be retried"
    );
}

#[test]
fn rollback_runs_compensations_in_reverse_for_what_succeeded() {
    let undo =
        |id: &str| format!("compensate: {{ uses: notify.teams, with: {{ message: undo {id} }} }}");
    let p = plan(&format!(
        "  a: {{ uses: notify.teams, with: {{ message: a }}, {} }}\n  b: {{ uses: notify.teams, needs: [a], with: {{ message: b }}, {} }}\n  c: {{ uses: notify.teams, needs: [b], with: {{ message: c }}, {} }}\n  d: {{ uses: notify.teams, needs: [c], with: {{ message: d }} }}\n",
        undo("a"),
        undo("b"),
        undo("c")
    ));
    let mut m = RunMachine::new(&p);
    m.apply(Event::Start).unwrap();
    succeed(&mut m, "a", 0, 1);
    succeed(&mut m, "b", 0, 1);
    fail(&mut m, "c", 0, 1);
    assert_eq!(m.status(), RunStatus::Failed);
    // c failed: nothing to undo there; b is undone before a.
    let started = m.apply(Event::Rollback).unwrap();
    assert_eq!(
        started,
        vec![
            Action::Skipped {
                step: "undo:c".into(),
                reason: "nothing to undo"
            },
            enq("undo:b", 0)
        ]
    );
    assert_eq!(m.stage(), Stage::Rollback);
    assert_eq!(succeed(&mut m, "undo:b", 0, 1), vec![enq("undo:a", 0)]);
    assert_eq!(
        succeed(&mut m, "undo:a", 0, 1),
        vec![Action::Finish {
            status: RunStatus::RolledBack,
            failed_step: None
        }]
    );
    assert!(
        m.apply(Event::Rollback).is_err(),
        "a rolled-back run is not rolled back twice"
    );
}

#[test]
fn a_failed_compensation_fails_the_rollback_and_retry_resumes_it() {
    let p = plan("  a: { uses: notify.teams, with: { message: a }, compensate: { uses: notify.teams, with: { message: undo } } }\n  b: { uses: notify.teams, needs: [a], with: { message: b } }\n");
    let mut m = RunMachine::new(&p);
    m.apply(Event::Start).unwrap();
    succeed(&mut m, "a", 0, 1);
    fail(&mut m, "b", 0, 1);
    m.apply(Event::Rollback).unwrap();
    assert_eq!(
        fail(&mut m, "undo:a", 0, 1),
        vec![Action::Finish {
            status: RunStatus::Failed,
            failed_step: Some("undo:a".into())
        }]
    );
    assert_eq!(
        m.apply(Event::Retry { steps: vec![] }).unwrap(),
        vec![enq("undo:a", 0)]
    );
    assert_eq!(
        succeed(&mut m, "undo:a", 0, 2),
        vec![Action::Finish {
            status: RunStatus::RolledBack,
            failed_step: None
        }]
    );
}
