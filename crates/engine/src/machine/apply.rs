//! [`RunMachine::apply`]: one handler per event, then [`RunMachine::advance`] decides what
//! becomes ready, whether the stage failed, and whether the run ended.

use serde_json::json;

use super::event::{Again, FailureClass, OnExpiry, Park};
use super::gate::{Decision, Gate, Verdict};
use super::{
    policy, rfc3339, Action, Error, Event, InstanceState, RunMachine, RunStatus, Stage, StepPhase,
};

/// The approver of the gate's last decision.
fn approver_name(gate: &Gate) -> String {
    gate.decisions
        .last()
        .map(|d| d.approver.clone())
        .unwrap_or_default()
}

impl RunMachine {
    fn slot(&mut self, step: &str, item: u32) -> Result<&mut InstanceState, Error> {
        self.steps
            .get_mut(step)
            .and_then(|s| s.instances.get_mut(item as usize))
            .ok_or_else(|| Error::Unknown {
                step: step.to_string(),
                item,
            })
    }

    /// The running instance of `attempt` (the fencing check every attempt report passes).
    fn running(&mut self, step: &str, item: u32, attempt: u32) -> Result<(), Error> {
        let slot = self.slot(step, item)?;
        match *slot {
            InstanceState::Running { attempt: current } if current == attempt => Ok(()),
            state => Err(Error::Stale {
                step: step.to_string(),
                item,
                attempt,
                state,
            }),
        }
    }

    fn set(&mut self, step: &str, item: u32, state: InstanceState) {
        if let Some(s) = self
            .steps
            .get_mut(step)
            .and_then(|n| n.instances.get_mut(item as usize))
        {
            *s = state;
        }
    }

    /// When the instance's deadline passes (unix ms).
    fn deadline_at(&self, step: &str, item: u32, now_ms: u64) -> u64 {
        let node = &self.steps[step];
        let first = node
            .tallies
            .get(item as usize)
            .and_then(|t| t.first_started_ms)
            .unwrap_or(now_ms);
        first.saturating_add(node.deadline_ms)
    }

    /// Applies one event at `now_ms` (unix ms) and returns what the store must do.
    pub fn apply(&mut self, event: Event, now_ms: u64) -> Result<Vec<Action>, Error> {
        let mut actions = Vec::new();
        match event {
            Event::Created {
                concurrency_key,
                seed,
                ..
            } => {
                if self.status != RunStatus::Queued || self.created {
                    return Err(Error::Invalid("the run exists already".into()));
                }
                self.created = true;
                self.concurrency_key = concurrency_key;
                self.seed = seed;
                return Ok(actions);
            }
            Event::Retry { steps, .. } => {
                self.retry(&steps, &mut actions)?;
                self.advance(&mut actions);
                return Ok(self.finish(actions));
            }
            Event::Rollback { .. } => {
                self.rollback(&mut actions)?;
                self.advance(&mut actions);
                return Ok(self.finish(actions));
            }
            _ => {}
        }
        if self.status.is_final() {
            return Err(Error::Invalid(format!(
                "the run has ended ({})",
                super::status_name(self.status)
            )));
        }
        match event {
            Event::Created { .. } | Event::Retry { .. } | Event::Rollback { .. } => {
                unreachable!("handled above")
            }
            Event::Start => {
                if self.status != RunStatus::Queued {
                    return Err(Error::Invalid("the run has already started".into()));
                }
                self.status = RunStatus::Running;
            }
            Event::Prepared { step, items, skip } => {
                self.prepared(step, items, skip, &mut actions)?;
            }
            Event::PrepareFailed { step, .. } => {
                let node = self.steps.get_mut(&step).ok_or_else(|| Error::Unknown {
                    step: step.clone(),
                    item: 0,
                })?;
                if node.phase != StepPhase::Preparing {
                    return Err(Error::Invalid(format!("step {step} is not being prepared")));
                }
                node.phase = StepPhase::Failed;
                if !node.continue_on_error && self.failed_step.is_none() {
                    self.failed_step = Some(step);
                }
            }
            Event::AttemptStarted {
                step,
                item,
                attempt,
                ..
            } => {
                let state = *self.slot(&step, item)?;
                let node = self.steps.get_mut(&step).expect("slot exists");
                let tally = &mut node.tallies[item as usize];
                if state != InstanceState::Ready || attempt <= tally.attempt {
                    return Err(Error::Stale {
                        step,
                        item,
                        attempt,
                        state,
                    });
                }
                tally.attempt = attempt;
                tally.first_started_ms.get_or_insert(now_ms);
                node.instances[item as usize] = InstanceState::Running { attempt };
            }
            Event::AttemptSucceeded {
                step,
                item,
                attempt,
                output,
                ..
            } => {
                self.running(&step, item, attempt)?;
                self.set(&step, item, InstanceState::Succeeded);
                actions.push(Action::StoreOutput {
                    step: step.clone(),
                    item,
                    output,
                });
                self.instance_done(&step, &mut actions);
            }
            Event::AttemptFailed {
                step,
                item,
                attempt,
                failure,
                ..
            } => {
                self.running(&step, item, attempt)?;
                let deadline = self.deadline_at(&step, item, now_ms);
                let next = if self.failing() || failure.class == FailureClass::Permanent {
                    Err(None)
                } else {
                    let (seed, node) = (self.seed, self.steps.get_mut(&step).expect("running"));
                    let tally = &mut node.tallies[item as usize];
                    policy::after_failure(
                        &node.policy,
                        &failure,
                        &mut tally.errors,
                        &mut tally.throttles,
                        now_ms,
                        deadline,
                        seed,
                        &step,
                        item,
                    )
                    .map_err(Some)
                };
                self.again_or_fail(step, item, attempt, next, &mut actions);
            }
            Event::AttemptDeferred {
                step,
                item,
                attempt,
                at_ms,
                ..
            } => {
                self.running(&step, item, attempt)?;
                if self.failing() {
                    self.set(&step, item, InstanceState::Cancelled);
                    self.instance_done(&step, &mut actions);
                } else {
                    let deadline = self.deadline_at(&step, item, now_ms);
                    let next = policy::after_not_ready(at_ms, now_ms, deadline)
                        .map(|at| (at, Again::NotReady))
                        .map_err(Some);
                    self.again_or_fail(step, item, attempt, next, &mut actions);
                }
            }
            Event::Parked {
                step,
                item,
                attempt,
                park,
                ..
            } => {
                self.running(&step, item, attempt)?;
                let at_ms = match park {
                    Park::Approval {
                        approvers,
                        quorum,
                        on_expiry,
                        expires_at_ms,
                        message,
                        requested_by,
                        ..
                    } => {
                        let gate = Gate {
                            approvers,
                            quorum: quorum.max(1),
                            on_expiry,
                            expires_at_ms,
                            message,
                            decisions: Vec::new(),
                            requested_by,
                            attempt,
                        };
                        // Nobody approves their own request: without the requester, fewer
                        // approvers than the quorum could never open the gate, so it fails now.
                        let eligible = gate.eligible().len();
                        if eligible < gate.quorum as usize {
                            let reason = format!(
                                "the approval needs {} approval(s) but only {eligible} approver(s) besides the requester {} can decide",
                                gate.quorum,
                                gate.requested_by.as_deref().unwrap_or_default()
                            );
                            self.steps[&step].gate = Some(gate);
                            self.again_or_fail(
                                step,
                                item,
                                attempt,
                                Err(Some(reason)),
                                &mut actions,
                            );
                            self.advance(&mut actions);
                            return Ok(self.finish(actions));
                        }
                        self.steps[&step].gate = Some(gate);
                        Some(expires_at_ms)
                    }
                    Park::Wait { until_ms } => Some(until_ms),
                    Park::Call { runbook, run, key } => {
                        if !self.steps[&step].calls {
                            return Err(Error::Invalid(format!(
                                "step {step} is not a runbook.call"
                            )));
                        }
                        actions.push(Action::StartChild {
                            step: step.clone(),
                            item,
                            runbook,
                            run,
                            key,
                        });
                        // A call waits as long as its run takes, unless the step sets a
                        // timeout (counted from its first attempt).
                        self.steps[&step]
                            .timed
                            .then(|| self.deadline_at(&step, item, now_ms))
                    }
                };
                self.set(&step, item, InstanceState::Parked { attempt });
                if let Some(at_ms) = at_ms {
                    actions.push(Action::SetTimer { step, item, at_ms });
                }
            }
            Event::ApprovalDecided {
                step,
                approver,
                approve,
                comment,
                source,
                user_agent,
            } => {
                let decision = Decision {
                    approver,
                    approve,
                    comment,
                    source,
                    at_ms: now_ms,
                    user_agent,
                };
                self.decided(step, decision, &mut actions)?;
                if self.status.is_final() {
                    return Ok(self.finish(actions));
                }
            }
            Event::TimerDue { step, item } => {
                let state = *self.slot(&step, item)?;
                match state {
                    InstanceState::RetryWait { .. } if self.failing() => {
                        self.set(&step, item, InstanceState::Cancelled);
                        self.instance_done(&step, &mut actions);
                    }
                    InstanceState::RetryWait { .. } => {
                        self.set(&step, item, InstanceState::Ready);
                        actions.push(Action::Enqueue { step, item });
                    }
                    InstanceState::Parked { .. } if self.steps[&step].calls => {
                        // The step's timeout passed before its called run ended.
                        actions.push(Action::CancelChild {
                            step: step.clone(),
                            item,
                        });
                        self.steps[&step].tallies[item as usize].generation += 1;
                        let reason = "the called run did not end within the step's timeout (it is cancelled)";
                        self.again_or_fail(step, item, 0, Err(Some(reason.into())), &mut actions);
                    }
                    InstanceState::Parked { .. } if self.steps[&step].gate.is_some() => {
                        self.expired(step, &mut actions);
                        if self.status.is_final() {
                            return Ok(self.finish(actions));
                        }
                    }
                    InstanceState::Parked { .. } => {
                        self.set(&step, item, InstanceState::Succeeded);
                        actions.push(Action::StoreOutput {
                            step: step.clone(),
                            item,
                            output: json!({"resumed_at": rfc3339(now_ms)}),
                        });
                        self.instance_done(&step, &mut actions);
                    }
                    state => {
                        return Err(Error::Stale {
                            step,
                            item,
                            attempt: 0,
                            state,
                        })
                    }
                }
            }
            Event::LeaseExpired {
                step,
                item,
                attempt,
            } => {
                self.running(&step, item, attempt)?;
                // The attempt may have reached the vendor: the next one goes through the kind's
                // look-before-you-act path, with a higher attempt number. A lost lease is not
                // the step's error, so the budget is untouched; the deadline still bounds it.
                if now_ms > self.deadline_at(&step, item, now_ms) {
                    let reason =
                        "the step's deadline passed while its attempts kept losing their worker";
                    self.again_or_fail(step, item, attempt, Err(Some(reason.into())), &mut actions);
                } else {
                    self.set(&step, item, InstanceState::Ready);
                    actions.push(Action::Enqueue { step, item });
                }
            }
            Event::ChildEnded {
                step,
                item,
                run,
                status,
                output,
                message,
            } => {
                let state = *self.slot(&step, item)?;
                let node = &self.steps[&step];
                if !node.calls || !matches!(state, InstanceState::Parked { .. }) {
                    return Err(Error::Stale {
                        step,
                        item,
                        attempt: 0,
                        state,
                    });
                }
                if node.timed {
                    actions.push(Action::CancelTimer {
                        step: step.clone(),
                        item,
                    });
                }
                if status == RunStatus::Succeeded {
                    self.set(&step, item, InstanceState::Succeeded);
                    actions.push(Action::StoreOutput {
                        step: step.clone(),
                        item,
                        output,
                    });
                    self.instance_done(&step, &mut actions);
                } else {
                    // A failed run is resumed by the next attempt (an operator's retry); one
                    // that ended otherwise cannot be, so the next attempt calls afresh.
                    if status != RunStatus::Failed {
                        self.steps[&step].tallies[item as usize].generation += 1;
                    }
                    let reason = message.unwrap_or_else(|| {
                        format!("the called run {run} ended {}", super::status_name(status))
                    });
                    self.again_or_fail(step, item, 0, Err(Some(reason)), &mut actions);
                }
            }
            Event::Cancel { .. } => {
                self.cancel_children(&mut actions);
                self.cancel_all();
                self.status = RunStatus::Cancelled;
                actions.push(Action::Finish {
                    status: RunStatus::Cancelled,
                    failed_step: None,
                });
                return Ok(self.finish(actions));
            }
        }
        self.advance(&mut actions);
        Ok(self.finish(actions))
    }

    /// Adds what follows the run's end: the next run queued behind its concurrency key.
    fn finish(&self, mut actions: Vec<Action>) -> Vec<Action> {
        let ended = actions.iter().any(|a| matches!(a, Action::Finish { .. }));
        if let (true, Some(key)) = (ended, &self.concurrency_key) {
            actions.push(Action::StartQueued { key: key.clone() });
        }
        actions
    }

    /// After a failed or deferred attempt: wait and go again, or fail for good (`Err(Some)`
    /// says why the machine gave up; `Err(None)` is a failure no retry is meant for).
    fn again_or_fail(
        &mut self,
        step: String,
        item: u32,
        attempt: u32,
        next: Result<(u64, Again), Option<String>>,
        actions: &mut Vec<Action>,
    ) {
        match next {
            Ok((at_ms, why)) => {
                self.set(&step, item, InstanceState::RetryWait { attempt, at_ms });
                actions.push(Action::EnqueueAt {
                    step,
                    item,
                    at_ms,
                    why,
                });
            }
            Err(reason) => {
                self.set(&step, item, InstanceState::Failed);
                if let Some(reason) = reason {
                    actions.push(Action::GaveUp {
                        step: step.clone(),
                        item,
                        reason,
                    });
                }
                let node = &self.steps[&step];
                if !node.continue_on_error && self.failed_step.is_none() {
                    self.failed_step = Some(step.clone());
                }
                self.instance_done(&step, actions);
            }
        }
    }

    fn decided(
        &mut self,
        step: String,
        decision: Decision,
        actions: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let (approver, approve) = (decision.approver.clone(), decision.approve);
        let parked = matches!(self.instance(&step, 0), Some(InstanceState::Parked { .. }));
        if let Some(gate) = self.steps.get(&step).and_then(|n| n.gate.as_ref()) {
            if !parked && !gate.decisions.is_empty() {
                let last = gate.decisions.last().expect("not empty");
                return Err(Error::Invalid(format!(
                    "the approval `{step}` was already decided: {} by {}",
                    if last.approve { "approved" } else { "denied" },
                    gate.decided_by().join(", ")
                )));
            }
        }
        let Some(gate) = self
            .steps
            .get_mut(&step)
            .and_then(|n| n.gate.as_mut())
            .filter(|_| parked)
        else {
            return Err(Error::NotWaiting(step));
        };
        let Some(name) = gate.approver(&approver).map(str::to_string) else {
            return Err(Error::NotApprover(approver));
        };
        if gate.is_requester(&name) {
            return Err(Error::SelfApproval(name));
        }
        if gate.has_decided(&name) {
            return Err(Error::AlreadyDecided(name));
        }
        let verdict = gate.record(Decision {
            approver: name,
            ..decision
        });
        let comment = gate.last_comment();
        let (decision, decided_by) = match verdict {
            Verdict::Open => return Ok(()),
            Verdict::Approved => ("approved", gate.approved_by()),
            // A denial is the denier's alone.
            Verdict::Denied => ("denied", vec![approver_name(gate)]),
        };
        actions.push(Action::CancelTimer {
            step: step.clone(),
            item: 0,
        });
        self.resolve(step, decision, decided_by, comment, approve, actions);
        Ok(())
    }

    /// An approval's timer fired: it resolves as its `on_expiry` says.
    fn expired(&mut self, step: String, actions: &mut Vec<Action>) {
        let gate = self.steps[&step]
            .gate
            .clone()
            .expect("checked by the caller");
        let decided_by = gate.decided_by();
        match gate.on_expiry {
            OnExpiry::Approve => self.resolve(step, "expired", decided_by, None, true, actions),
            OnExpiry::Deny => self.resolve(step, "expired", decided_by, None, false, actions),
            OnExpiry::Fail => {
                actions.push(Action::ApprovalResolved {
                    step: step.clone(),
                    decision: "expired".into(),
                    decided_by,
                });
                let attempt = match self.instance(&step, 0) {
                    Some(InstanceState::Parked { attempt }) => attempt,
                    _ => 0,
                };
                self.set(&step, 0, InstanceState::Running { attempt });
                let reason = if gate.decisions.is_empty() {
                    "the approval expired without a decision (on_expiry: fail)"
                } else {
                    "the approval expired before its quorum was reached (on_expiry: fail)"
                };
                self.again_or_fail(step, 0, attempt, Err(Some(reason.into())), actions);
            }
        }
    }

    /// The gate resolved: the step succeeds with its outputs, or the run is denied.
    fn resolve(
        &mut self,
        step: String,
        decision: &str,
        decided_by: Vec<String>,
        comment: Option<String>,
        open: bool,
        actions: &mut Vec<Action>,
    ) {
        actions.push(Action::ApprovalResolved {
            step: step.clone(),
            decision: decision.into(),
            decided_by: decided_by.clone(),
        });
        actions.push(Action::StoreOutput {
            step: step.clone(),
            item: 0,
            output: json!({"decision": decision, "decided_by": decided_by, "comment": comment}),
        });
        if open {
            self.set(&step, 0, InstanceState::Succeeded);
            self.instance_done(&step, actions);
        } else {
            self.set(&step, 0, InstanceState::Cancelled);
            self.cancel_children(actions);
            self.cancel_all();
            self.status = RunStatus::Denied;
            actions.push(Action::Finish {
                status: RunStatus::Denied,
                failed_step: None,
            });
        }
    }

    fn prepared(
        &mut self,
        step: String,
        items: Option<u32>,
        skip: bool,
        actions: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let node = self.steps.get_mut(&step).ok_or_else(|| Error::Unknown {
            step: step.clone(),
            item: 0,
        })?;
        if node.phase != StepPhase::Preparing {
            return Err(Error::Invalid(format!("step {step} is not being prepared")));
        }
        let n = items.unwrap_or(1);
        if skip || n == 0 {
            node.phase = StepPhase::Skipped;
            actions.push(Action::Skipped {
                step,
                reason: if skip {
                    "condition is false"
                } else {
                    "no items"
                },
            });
        } else {
            // Compensations undo only the items whose original succeeded, and never an item a
            // previous rollback already undid.
            let only = node.only.clone();
            let previous = std::mem::take(&mut node.instances);
            node.instances = (0..n)
                .map(|i| {
                    let wanted = only
                        .as_ref()
                        .is_none_or(|m| m.get(i as usize).copied().unwrap_or(true));
                    match previous.get(i as usize) {
                        Some(InstanceState::Succeeded) => InstanceState::Succeeded,
                        _ if wanted => InstanceState::Pending,
                        _ => InstanceState::Skipped,
                    }
                })
                .collect();
            if node.tallies.len() != n as usize {
                node.tallies = vec![Default::default(); n as usize];
            }
            node.phase = StepPhase::Active;
            self.fill(&step, actions);
        }
        Ok(())
    }

    /// Makes pending instances ready, up to `max_parallel` in flight.
    fn fill(&mut self, step: &str, actions: &mut Vec<Action>) {
        let Some(node) = self.steps.get_mut(step) else {
            return;
        };
        let limit = node.max_parallel.unwrap_or(u32::MAX).max(1) as usize;
        let mut in_flight = node.instances.iter().filter(|s| s.in_flight()).count();
        for (i, s) in node.instances.iter_mut().enumerate() {
            if in_flight >= limit {
                break;
            }
            if *s == InstanceState::Pending {
                *s = InstanceState::Ready;
                in_flight += 1;
                actions.push(Action::Enqueue {
                    step: step.to_string(),
                    item: i as u32,
                });
            }
        }
        if node.instances.iter().all(|s| s.is_terminal()) {
            node.phase = StepPhase::Succeeded;
        }
    }

    /// Whether a failure stops the current stage: a failed main step or compensation does; a
    /// failing `on_failure` step does not stop the others.
    pub(crate) fn failing(&self) -> bool {
        self.failed_step.is_some() && self.stage != Stage::OnFailure
    }

    fn retry(&mut self, steps: &[String], actions: &mut Vec<Action>) -> Result<(), Error> {
        if self.status != RunStatus::Failed {
            return Err(Error::Invalid(format!(
                "only a failed run can be retried (this one is {})",
                super::status_name(self.status)
            )));
        }
        let group = if self.stage == Stage::Rollback {
            Stage::Rollback
        } else {
            Stage::Main
        };
        for id in steps {
            if !self.steps.contains_key(id) {
                return Err(Error::Invalid(format!("the runbook has no step `{id}`")));
            }
            let failed = self
                .steps
                .get(id)
                .is_some_and(|n| n.group == group && n.phase == StepPhase::Failed);
            if !failed {
                return Err(Error::Invalid(format!("step `{id}` has not failed")));
            }
        }
        // The on_failure steps run again if the run fails again.
        for node in self.steps.values_mut() {
            if node.group == Stage::OnFailure {
                node.phase = StepPhase::Blocked;
                node.instances.clear();
                node.tallies.clear();
            }
        }
        self.stage = group;
        self.failed_step = None;
        self.held.clear();
        self.status = RunStatus::Running;
        let ids: Vec<String> = self.steps_of(group).into_iter().map(String::from).collect();
        for id in ids {
            let node = &mut self.steps[&id];
            match node.phase {
                StepPhase::Succeeded | StepPhase::Skipped | StepPhase::Blocked => continue,
                // A failed step the operator did not name stays failed; it fails the run
                // again once nothing else can run, and what depends on it waits.
                StepPhase::Failed if !steps.is_empty() && !steps.contains(&id) => {
                    if !node.continue_on_error {
                        self.held.push(id.clone());
                    }
                    continue;
                }
                _ => {}
            }
            if node.instances.is_empty() {
                node.phase = StepPhase::Blocked;
                continue;
            }
            for (s, t) in node.instances.iter_mut().zip(node.tallies.iter_mut()) {
                if matches!(s, InstanceState::Failed | InstanceState::Cancelled) {
                    *s = InstanceState::Pending;
                    // A fresh budget and deadline; the attempt number keeps counting up.
                    t.errors = 0;
                    t.first_started_ms = None;
                }
            }
            node.phase = StepPhase::Active;
            self.fill(&id, actions);
        }
        Ok(())
    }

    fn rollback(&mut self, actions: &mut Vec<Action>) -> Result<(), Error> {
        if !matches!(self.status, RunStatus::Failed | RunStatus::Cancelled) {
            return Err(Error::Invalid(format!(
                "only a failed or cancelled run can be rolled back (this one is {})",
                super::status_name(self.status)
            )));
        }
        let undo: Vec<String> = self
            .steps_of(Stage::Rollback)
            .into_iter()
            .map(String::from)
            .collect();
        if undo.is_empty() {
            return Err(Error::Invalid(
                "no step of this runbook has a `compensate`".into(),
            ));
        }
        self.stage = Stage::Rollback;
        self.failed_step = None;
        self.held.clear();
        self.status = RunStatus::Running;
        for id in undo {
            let Some(original) = super::undone_step(&id).and_then(|o| self.steps.get(o)) else {
                continue;
            };
            let done: Vec<bool> = original
                .instances
                .iter()
                .map(|s| *s == InstanceState::Succeeded)
                .collect();
            let each = original.each;
            let node = &mut self.steps[&id];
            if node.phase == StepPhase::Succeeded {
                // Undone by an earlier rollback: never undo twice.
                continue;
            }
            // A rollback after a failed one keeps the items already undone and their attempt
            // numbers (the fencing tokens); only failed or cancelled items go again.
            if done.contains(&true) {
                node.phase = StepPhase::Blocked;
                node.fixed = Some(super::Fixed::of(each.then_some(done.len() as u32)));
                node.only = Some(done);
            } else {
                node.phase = StepPhase::Skipped;
                actions.push(Action::Skipped {
                    step: id,
                    reason: "nothing to undo",
                });
            }
        }
        Ok(())
    }

    fn instance_done(&mut self, step: &str, actions: &mut Vec<Action>) {
        let failing = self.failing();
        let node = self.steps.get_mut(step).expect("checked by the caller");
        if !failing {
            if let Some(i) = node
                .instances
                .iter()
                .position(|s| *s == InstanceState::Pending)
            {
                node.instances[i] = InstanceState::Ready;
                actions.push(Action::Enqueue {
                    step: step.to_string(),
                    item: i as u32,
                });
            }
        }
        if node.instances.iter().all(|s| s.is_terminal()) {
            node.phase = if node.instances.contains(&InstanceState::Failed) {
                StepPhase::Failed
            } else if node
                .instances
                .iter()
                .all(|s| *s == InstanceState::Cancelled)
            {
                StepPhase::Cancelled
            } else {
                StepPhase::Succeeded
            };
        }
    }

    /// Asks the store to drop what a stopped stage left queued: parked instances' timers and
    /// ready or waiting instances' tasks.
    fn withdraw(&self, stage: Stage, actions: &mut Vec<Action>) {
        for (id, node) in self.steps.iter().filter(|(_, n)| n.group == stage) {
            for (i, s) in node.instances.iter().enumerate() {
                let (step, item) = (id.clone(), i as u32);
                match s {
                    InstanceState::Parked { .. } => {
                        if node.calls {
                            actions.push(Action::CancelChild {
                                step: step.clone(),
                                item,
                            });
                        }
                        actions.push(Action::CancelTimer { step, item })
                    }
                    InstanceState::Ready | InstanceState::RetryWait { .. } => {
                        actions.push(Action::Dequeue { step, item })
                    }
                    _ => {}
                }
            }
        }
    }

    /// Asks the store to cancel the run of every parked `runbook.call` instance.
    fn cancel_children(&self, actions: &mut Vec<Action>) {
        for (id, node) in self.steps.iter().filter(|(_, n)| n.calls) {
            for (i, s) in node.instances.iter().enumerate() {
                if matches!(s, InstanceState::Parked { .. }) {
                    actions.push(Action::CancelChild {
                        step: id.clone(),
                        item: i as u32,
                    });
                }
            }
        }
    }

    fn cancel_all(&mut self) {
        for stage in [Stage::Main, Stage::OnFailure, Stage::Rollback] {
            self.cancel_group(stage);
        }
    }

    fn cancel_group(&mut self, stage: Stage) {
        for node in self.steps.values_mut().filter(|n| n.group == stage) {
            for s in &mut node.instances {
                if !s.is_terminal() {
                    *s = InstanceState::Cancelled;
                }
            }
            if !node.phase.is_done() {
                node.phase = StepPhase::Cancelled;
            }
        }
    }

    /// Whether a step's dependencies let it start: each is done, and none is a failed step an
    /// operator's retry left alone (what depends on it waits for the run to fail again).
    fn deps_done(&self, deps: &[String]) -> bool {
        deps.iter().all(|d| {
            !self.held.contains(d) && self.steps.get(d).is_none_or(|dn| dn.phase.is_done())
        })
    }

    fn advance(&mut self, actions: &mut Vec<Action>) {
        loop {
            if self.failing() {
                let stage = self.stage;
                // Only work a worker holds is waited for; parked approvals and waits hold
                // nothing and are withdrawn.
                let in_flight = self.steps.values().filter(|n| n.group == stage).any(|n| {
                    n.phase == StepPhase::Preparing
                        || n.instances
                            .iter()
                            .any(|s| matches!(s, InstanceState::Running { .. }))
                });
                if in_flight {
                    return;
                }
                self.withdraw(stage, actions);
                self.cancel_group(stage);
                let has_on_failure = self.steps.values().any(|n| n.group == Stage::OnFailure);
                if stage == Stage::Main && has_on_failure {
                    self.stage = Stage::OnFailure;
                    actions.push(Action::OnFailure {
                        failed_step: self.failed_step.clone().unwrap_or_default(),
                    });
                } else {
                    self.status = RunStatus::Failed;
                    actions.push(Action::Finish {
                        status: RunStatus::Failed,
                        failed_step: self.failed_step.clone(),
                    });
                    return;
                }
            }
            let stage = self.stage;
            loop {
                let ready: Vec<String> = self
                    .steps
                    .iter()
                    .filter(|(_, n)| n.group == stage && n.phase == StepPhase::Blocked)
                    .filter(|(_, n)| self.deps_done(&n.deps))
                    .map(|(id, _)| id.clone())
                    .collect();
                if ready.is_empty() {
                    break;
                }
                for id in ready {
                    self.steps[&id].phase = StepPhase::Preparing;
                    match self.steps[&id].fixed {
                        Some(fixed) => {
                            // Cannot fail: the step was just set to Preparing.
                            let _ = self.prepared(id, fixed.items(), false, actions);
                        }
                        None => actions.push(Action::Prepare { step: id }),
                    }
                }
            }
            let group = || self.steps.values().filter(|n| n.group == stage);
            let stuck = !group().any(|n| {
                n.phase == StepPhase::Preparing
                    || n.instances
                        .iter()
                        .any(|s| s.in_flight() || *s == InstanceState::Pending)
            });
            if stuck && !self.held.is_empty() {
                // Nothing else can run: the failed steps an operator's retry left alone fail
                // the run again.
                self.failed_step = Some(self.held.remove(0));
                self.held.clear();
                continue;
            }
            if group().all(|n| n.phase.is_done()) {
                let (status, failed_step) = match stage {
                    Stage::Main => (RunStatus::Succeeded, None),
                    Stage::OnFailure => (RunStatus::Failed, self.failed_step.clone()),
                    Stage::Rollback => (RunStatus::RolledBack, None),
                };
                self.status = status;
                actions.push(Action::Finish {
                    status,
                    failed_step,
                });
                return;
            }
            let active = group().any(|n| {
                n.phase == StepPhase::Preparing
                    || n.instances.iter().any(|s| {
                        matches!(
                            s,
                            InstanceState::Ready
                                | InstanceState::Running { .. }
                                | InstanceState::RetryWait { .. }
                                | InstanceState::Pending
                        )
                    })
            });
            self.status = if active {
                RunStatus::Running
            } else {
                RunStatus::Waiting
            };
            return;
        }
    }
}
