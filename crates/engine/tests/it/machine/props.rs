//! The machine driven by a simulated driver that only sends what a real one could: prepares
//! of steps being prepared, claims of ready instances with the next attempt number, reports of
//! held attempts (current or stale, after a lease expiry), timers of waiting instances,
//! decisions from approvers and strangers, duplicate deliveries, and operator retries,
//! rollbacks and cancels. A random script picks among them; then the driver finishes the
//! outstanding work. Invariants: every run ends; no instance succeeds twice; refused events
//! change nothing; a `Finish` is answered exactly when the run ends; the accepted events replay
//! on a fresh machine to the same state, actions and journal.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tenure_engine::journal::{entries, EventKind};
use tenure_engine::machine::{
    Action, Event, Failure, InstanceState, OnExpiry, Park, RunMachine, RunStatus, Stage, StepPhase,
};
use tenure_runbook::Plan;

use super::plan_of;

const RUNBOOK: &str = r#"
inputs:
  items: { type: list, default: [a, b, c] }
steps:
  a:
    uses: notify.teams
    retry: { attempts: 3, backoff: fixed, delay: 1s, max_delay: 1s }
    timeout: 1h
    with: { message: a }
    compensate: { uses: notify.teams, with: { message: undo a } }
  gate:
    uses: approval
    needs: [a]
    with: { approvers: [x@msp.example, y@msp.example, z@msp.example], quorum: 2, message: ok? }
  g:
    uses: entra.add_to_group
    needs: [gate]
    for_each: "{{ inputs.items }}"
    max_parallel: 2
    with: { user: u, group: "{{ item }}" }
    compensate: { uses: notify.teams, with: { message: undo g } }
  b:
    uses: notify.teams
    needs: [a]
    if: "{{ inputs.items }}"
    continue_on_error: true
    with: { message: b }
  pause: { uses: wait, needs: [b], with: { for: 1m } }
  c: { uses: notify.teams, needs: [g, pause], with: { message: c } }
on_failure:
  tell: { uses: notify.teams, with: { message: failed } }
"#;

const APPROVERS: [&str; 3] = ["x@msp.example", "y@msp.example", "z@msp.example"];

/// A worker's claim: it may report long after its lease expired.
#[derive(Clone, Debug)]
struct Held {
    step: String,
    item: u32,
    attempt: u32,
}

struct Driver {
    m: RunMachine,
    now: u64,
    /// Accepted events with their time, the actions and journal they produced.
    log: Vec<(Event, u64, Vec<Action>, Vec<EventKind>)>,
    workers: Vec<Held>,
    /// Transitions into `succeeded` per instance.
    successes: BTreeMap<(String, u32), u32>,
    refusals: usize,
}

fn all_steps(m: &RunMachine) -> Vec<String> {
    [Stage::Main, Stage::OnFailure, Stage::Rollback]
        .into_iter()
        .flat_map(|s| m.steps_of(s))
        .map(String::from)
        .collect()
}

fn states(m: &RunMachine) -> Vec<(String, u32, InstanceState)> {
    let mut out = Vec::new();
    for step in all_steps(m) {
        for (i, s) in m.instances(&step).iter().enumerate() {
            out.push((step.clone(), i as u32, *s));
        }
    }
    out
}

impl Driver {
    fn new(plan: &Plan) -> Self {
        Driver {
            m: RunMachine::new(plan),
            now: 1_000,
            log: Vec::new(),
            workers: Vec::new(),
            successes: BTreeMap::new(),
            refusals: 0,
        }
    }

    /// Applies an event and checks the per-event invariants.
    fn send(&mut self, event: Event) -> bool {
        let before = serde_json::to_value(&self.m).unwrap();
        let was = states(&self.m);
        let was_final = self.m.status().is_final();
        match self.m.apply(event.clone(), self.now) {
            Err(e) => {
                assert_eq!(
                    before,
                    serde_json::to_value(&self.m).unwrap(),
                    "the refused {event:?} ({e}) changed the run"
                );
                self.refusals += 1;
                false
            }
            Ok(actions) => {
                // The store keeps the machine as JSON between events: go on from what
                // reads back, which must be the same machine.
                let text = serde_json::to_string(&self.m).unwrap();
                let back: RunMachine = serde_json::from_str(&text).unwrap();
                assert_eq!(
                    serde_json::to_value(&back).unwrap(),
                    serde_json::to_value(&self.m).unwrap(),
                    "{text}"
                );
                self.m = back;
                let finishes = actions
                    .iter()
                    .filter(|a| matches!(a, Action::Finish { .. }))
                    .count();
                // Operator retries and rollbacks resume an ended run (and may end it at once).
                let resumed = matches!(event, Event::Retry { .. } | Event::Rollback { .. });
                let ended = (resumed || !was_final) && self.m.status().is_final();
                assert_eq!(
                    finishes,
                    usize::from(ended),
                    "{event:?} answered {actions:?} and the run is {:?}",
                    self.m.status()
                );
                if let Some(Action::Finish { status, .. }) =
                    actions.iter().find(|a| matches!(a, Action::Finish { .. }))
                {
                    assert_eq!(*status, self.m.status());
                }
                if matches!(event, Event::Retry { .. }) {
                    // The on_failure steps run again if the run fails again.
                    let again = self.m.steps_of(Stage::OnFailure);
                    self.successes
                        .retain(|(s, _), _| !again.contains(&s.as_str()));
                }
                let was: BTreeMap<(String, u32), InstanceState> =
                    was.into_iter().map(|(s, i, st)| ((s, i), st)).collect();
                for (step, item, state) in states(&self.m) {
                    let prior = was.get(&(step.clone(), item)).copied();
                    if state == InstanceState::Succeeded && prior != Some(InstanceState::Succeeded)
                    {
                        let n = self.successes.entry((step.clone(), item)).or_default();
                        *n += 1;
                        assert_eq!(*n, 1, "{step}[{item}] succeeded twice (by {event:?})");
                    }
                }
                let journal = entries(&event, &actions);
                self.log.push((event, self.now, actions, journal));
                true
            }
        }
    }

    /// What a real driver could send now.
    fn candidates(&self, r: u32) -> Vec<Event> {
        let m = &self.m;
        let mut out = Vec::new();
        let status = m.status();
        if status == RunStatus::Queued {
            out.push(Event::Start);
        }
        for step in all_steps(m) {
            if m.phase(&step) == Some(StepPhase::Preparing) {
                out.push(Event::Prepared {
                    step: step.clone(),
                    items: (step == "g").then_some(r % 4),
                    skip: r % 7 == 0,
                });
                out.push(Event::PrepareFailed {
                    step: step.clone(),
                    message: "cannot render".into(),
                });
            }
            for (i, s) in m.instances(&step).iter().enumerate() {
                let item = i as u32;
                match s {
                    InstanceState::Ready => out.push(Event::AttemptStarted {
                        step: step.clone(),
                        item,
                        attempt: m.next_attempt(&step, item),
                        owner: format!("w{}", r % 3),
                    }),
                    InstanceState::RetryWait { .. } | InstanceState::Parked { .. } => {
                        out.push(Event::TimerDue {
                            step: step.clone(),
                            item,
                        })
                    }
                    _ => {}
                }
            }
        }
        for (step, _) in m.open_gates() {
            for who in APPROVERS.iter().chain(&["mallory@evil.example"]) {
                out.push(Event::ApprovalDecided {
                    step: step.to_string(),
                    approver: who.to_string(),
                    approve: r % 5 != 0,
                    comment: None,
                    source: "cli".into(),
                    user_agent: None,
                });
            }
        }
        for h in &self.workers {
            out.extend(self.reports(h, r));
        }
        if !status.is_final() && r % 8 == 0 {
            out.push(Event::Cancel { by: "op".into() });
        }
        if status == RunStatus::Failed {
            out.push(Event::Retry {
                steps: vec![],
                by: "op".into(),
            });
            for step in all_steps(m) {
                if m.phase(&step) == Some(StepPhase::Failed) {
                    out.push(Event::Retry {
                        steps: vec![step],
                        by: "op".into(),
                    });
                }
            }
        }
        // A second rollback of a failed rollback undoes items twice (see
        // `a_second_rollback_does_not_undo_an_item_twice`); set TENURE_PROP_SKIP_REROLLBACK to
        // explore past that bug.
        let skip = std::env::var_os("TENURE_PROP_SKIP_REROLLBACK").is_some()
            && m.stage() == Stage::Rollback;
        if matches!(status, RunStatus::Failed | RunStatus::Cancelled) && !skip {
            out.push(Event::Rollback { by: "op".into() });
        }
        if let Some((last, ..)) = self.log.last() {
            if r % 6 == 0 {
                out.push(last.clone()); // a duplicate delivery
            }
        }
        out
    }

    /// What the worker holding `h` could report.
    fn reports(&self, h: &Held, r: u32) -> Vec<Event> {
        let (step, item, attempt) = (h.step.clone(), h.item, h.attempt);
        let mut throttled = Failure::transient("429", "slow down");
        throttled.retry_after_ms = Some(match r % 3 {
            0 => 1_000,
            1 => 99_999_999_000,
            _ => u64::MAX,
        });
        let mut out = vec![
            Event::AttemptSucceeded {
                step: step.clone(),
                item,
                attempt,
                output: serde_json::json!({"n": attempt}),
                requests: vec![],
            },
            Event::AttemptFailed {
                step: step.clone(),
                item,
                attempt,
                failure: Failure::transient("503", "down"),
                requests: vec![],
            },
            Event::AttemptFailed {
                step: step.clone(),
                item,
                attempt,
                failure: Failure::permanent("400", "bad"),
                requests: vec![],
            },
            Event::AttemptFailed {
                step: step.clone(),
                item,
                attempt,
                failure: throttled,
                requests: vec![],
            },
            Event::AttemptDeferred {
                step: step.clone(),
                item,
                attempt,
                at_ms: self.now + u64::from(r % 3) * 600_000,
                reason: "not yet".into(),
                requests: vec![],
            },
            Event::LeaseExpired {
                step: step.clone(),
                item,
                attempt,
            },
        ];
        if let Some(park) = self.park_for(&step, r) {
            out.push(Event::Parked {
                step,
                item,
                attempt,
                park,
                requests: vec![],
            });
        }
        out
    }

    fn park_for(&self, step: &str, r: u32) -> Option<Park> {
        match step {
            "gate" => Some(Park::Approval {
                approvers: APPROVERS.iter().map(|s| s.to_string()).collect(),
                quorum: 1 + r % 3,
                on_expiry: [OnExpiry::Deny, OnExpiry::Approve, OnExpiry::Fail]
                    [(r / 3 % 3) as usize],
                expires_at_ms: self.now + 3_600_000,
                message: None,
                requested_by: None,
                notified: vec![],
            }),
            "pause" => Some(Park::Wait {
                until_ms: self.now + 60_000,
            }),
            _ => None,
        }
    }

    /// Moves the clock to when a timer of this instance is due.
    fn advance_clock_for(&mut self, step: &str, item: u32) {
        let due = match self.m.instance(step, item) {
            Some(InstanceState::RetryWait { at_ms, .. }) => at_ms,
            Some(InstanceState::Parked { .. }) => match self.m.gate(step) {
                Some(g) => g.expires_at_ms,
                None => self.now + 60_000,
            },
            _ => self.now,
        };
        self.now = self.now.max(due);
    }

    /// Sends `event` as a driver would: claims become held attempts, reports end them (a
    /// lease expiry leaves the old worker able to report late), timers move the clock.
    fn drive(&mut self, event: Event) {
        match &event {
            Event::TimerDue { step, item } => {
                let (step, item) = (step.clone(), *item);
                self.advance_clock_for(&step, item);
            }
            _ => self.now += 10,
        }
        let held = match &event {
            Event::AttemptStarted {
                step,
                item,
                attempt,
                ..
            } => Some(Held {
                step: step.clone(),
                item: *item,
                attempt: *attempt,
            }),
            _ => None,
        };
        let report = match &event {
            Event::AttemptSucceeded {
                step,
                item,
                attempt,
                ..
            }
            | Event::AttemptFailed {
                step,
                item,
                attempt,
                ..
            }
            | Event::AttemptDeferred {
                step,
                item,
                attempt,
                ..
            }
            | Event::Parked {
                step,
                item,
                attempt,
                ..
            } => Some((step.clone(), *item, *attempt)),
            _ => None,
        };
        let accepted = self.send(event);
        if let (true, Some(h)) = (accepted, held) {
            self.workers.push(h);
        }
        if let Some((step, item, attempt)) = report {
            self.workers
                .retain(|h| !(h.step == step && h.item == item && h.attempt == attempt));
        }
    }

    /// Finishes the outstanding work the way a healthy world would.
    fn drain(&mut self) {
        for _ in 0..2_000 {
            if self.m.status().is_final() {
                return;
            }
            let Some(event) = self.next_healthy() else {
                panic!(
                    "the run is stuck ({:?}) with nothing a driver could send: {:?}",
                    self.m.status(),
                    states(&self.m)
                );
            };
            self.drive(event);
        }
        panic!("the run did not end after 2000 events");
    }

    fn next_healthy(&mut self) -> Option<Event> {
        // Stale workers give up without reporting.
        let m = &self.m;
        self.workers.retain(|h| {
            m.instance(&h.step, h.item) == Some(InstanceState::Running { attempt: h.attempt })
        });
        if self.m.status() == RunStatus::Queued {
            return Some(Event::Start);
        }
        if let Some(h) = self.workers.first().cloned() {
            return Some(match self.park_for(&h.step, 0) {
                Some(park) => Event::Parked {
                    step: h.step,
                    item: h.item,
                    attempt: h.attempt,
                    park,
                    requests: vec![],
                },
                None => Event::AttemptSucceeded {
                    step: h.step,
                    item: h.item,
                    attempt: h.attempt,
                    output: serde_json::json!({}),
                    requests: vec![],
                },
            });
        }
        if let Some((step, gate)) = self.m.open_gates().first() {
            let who = APPROVERS.iter().find(|a| !gate.has_decided(a))?;
            return Some(Event::ApprovalDecided {
                step: step.to_string(),
                approver: who.to_string(),
                approve: true,
                comment: None,
                source: "cli".into(),
                user_agent: None,
            });
        }
        for step in all_steps(&self.m) {
            if self.m.phase(&step) == Some(StepPhase::Preparing) {
                return Some(Event::Prepared {
                    items: (step == "g").then_some(2),
                    step,
                    skip: false,
                });
            }
        }
        for (step, item, state) in states(&self.m) {
            match state {
                InstanceState::Ready => {
                    return Some(Event::AttemptStarted {
                        attempt: self.m.next_attempt(&step, item),
                        step,
                        item,
                        owner: "w".into(),
                    })
                }
                InstanceState::RetryWait { .. } | InstanceState::Parked { .. } => {
                    return Some(Event::TimerDue { step, item })
                }
                _ => {}
            }
        }
        None
    }

    /// The accepted events replay on a fresh machine to the same state, actions and journal.
    fn check_replay(&self, plan: &Plan) {
        let mut fresh = RunMachine::new(plan);
        for (event, now, actions, journal) in &self.log {
            let again = fresh
                .apply(event.clone(), *now)
                .unwrap_or_else(|e| panic!("replay refused {event:?}: {e}"));
            assert_eq!(&again, actions, "replay of {event:?}");
            assert_eq!(&entries(event, &again), journal);
        }
        assert_eq!(
            serde_json::to_value(&fresh).unwrap(),
            serde_json::to_value(&self.m).unwrap()
        );
    }
}

fn run_script(plan: &Plan, script: &[u32]) -> Driver {
    let mut d = Driver::new(plan);
    for &r in script {
        let mut options = d.candidates(r);
        if options.is_empty() {
            break;
        }
        let pick = options.swap_remove((r as usize / 7) % options.len());
        d.drive(pick);
    }
    d.drain();
    let status = d.m.status();
    assert!(status.is_final(), "{status:?}");
    for (step, item, state) in states(&d.m) {
        assert!(
            state.is_terminal(),
            "{step}[{item}] is {state:?} in a run that ended {status:?}"
        );
    }
    d.check_replay(plan);
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_simulated_driver_cannot_break_the_machine(
        script in proptest::collection::vec(any::<u32>(), 0..120)
    ) {
        let plan = plan_of(RUNBOOK);
        run_script(&plan, &script);
    }
}

/// The simulation reaches every ending, so the property above is not vacuous.
#[test]
fn the_simulation_reaches_every_ending() {
    let plan = plan_of(RUNBOOK);
    let mut endings = BTreeMap::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for n in 0..400 {
        let script: Vec<u32> = (0..n % 60)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 16) as u32
            })
            .collect();
        let d = run_script(&plan, &script);
        *endings.entry(format!("{:?}", d.m.status())).or_insert(0) += 1;
    }
    for status in ["Succeeded", "Failed", "Denied", "Cancelled", "RolledBack"] {
        assert!(
            endings.contains_key(status),
            "{status} never reached: {endings:?}"
        );
    }
}
