//! The compiled, immutable plan the engine executes: typed inputs, vars, triggers and a DAG of
//! steps with their dependencies. Serializable, so a run can pin the exact plan it began with.

use std::collections::HashMap;

use indexmap::IndexMap;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalogue::KindClass;
use crate::duration::HumanDuration;
use crate::inputs::InputSpec;
use crate::source::Location;
use crate::template::Template;

/// A compiled runbook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The runbook id.
    pub runbook: String,
    /// The author's version number.
    pub version: u32,
    /// What the runbook does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The file it was compiled from.
    pub source: String,
    /// Which managed tenant the run acts on.
    pub tenant: Template,
    /// Declared inputs, in file order.
    pub inputs: IndexMap<String, InputSpec>,
    /// Vars, computed in this order when a run starts.
    pub vars: IndexMap<String, Template>,
    /// How runs start without a person.
    pub triggers: Vec<Trigger>,
    /// Runs with the same rendered key never overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Template>,
    /// The steps, in a topological order (ties keep file order).
    pub steps: Vec<Step>,
    /// Steps run once if the run fails, in a topological order.
    pub on_failure: Vec<Step>,
    /// The plans of the runbooks its `runbook.call` steps call, by runbook id, compiled when
    /// this plan was (each with its own `calls`): a run pins them with its own plan.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub calls: std::collections::BTreeMap<String, Plan>,
    /// SHA-256 of the plan's canonical JSON (with this field empty): the pinned identity.
    pub hash: String,
}

/// How a run starts without a person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Trigger {
    /// A ticket webhook from a configured source.
    Webhook {
        /// The configured webhook source name.
        source: String,
        /// Only payloads for which this is true start a run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        when: Option<Template>,
        /// Input name to template over `payload`.
        map: IndexMap<String, Value>,
    },
    /// A cron schedule.
    Schedule {
        /// Cron expression with seconds.
        cron: String,
        /// IANA timezone the schedule is evaluated in.
        timezone: String,
        /// Input values for scheduled runs.
        map: IndexMap<String, Value>,
        /// What to do with ticks that passed while no scheduler was running.
        #[serde(default, skip_serializing_if = "Missed::is_default")]
        missed: Missed,
    },
}

/// What a schedule does with ticks that passed while no scheduler ran (`missed:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// One run for all the ticks missed (the latest of them), then on as usual: the work a
    /// schedule exists for is done once, not lost and not repeated per missed tick.
    #[default]
    RunOnce,
    /// No run for missed ticks: the next tick on time starts the next run.
    Skip,
}

impl Missed {
    /// The value names, as written in a runbook.
    pub const NAMES: &'static [&'static str] = &["run_once", "skip"];

    /// The value written `name` in a runbook.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "run_once" => Some(Missed::RunOnce),
            "skip" => Some(Missed::Skip),
            _ => None,
        }
    }

    /// Its name in a runbook.
    pub fn name(self) -> &'static str {
        match self {
            Missed::RunOnce => "run_once",
            Missed::Skip => "skip",
        }
    }

    /// Whether this is the default (`run_once`), which plans leave out.
    pub fn is_default(&self) -> bool {
        *self == Missed::RunOnce
    }
}

/// One step of the DAG.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The step id, unique in its runbook.
    pub id: String,
    /// The step kind (`uses`).
    pub uses: String,
    /// How the engine schedules this kind.
    pub class: KindClass,
    /// Parameters; strings may be templates.
    pub with: Value,
    /// Every step this one waits for.
    pub needs: Vec<Dependency>,
    /// `if`: the step is skipped when this renders false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Template>,
    /// `for_each`: a template rendering to a list, or a literal list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<Value>,
    /// At most this many instances of a `for_each` step at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// Retry policy for transient failures (the kind's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Bound on one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// The step may fail without failing the run.
    pub continue_on_error: bool,
    /// What undoes this step on rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensate: Option<Compensation>,
    /// Where the step is defined.
    pub location: Location,
}

/// An edge into a step, and why it exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// The step depended on.
    pub step: String,
    /// Named in `needs`.
    pub explicit: bool,
    /// Referenced from a template (`steps.<id>...`).
    pub referenced: bool,
}

/// How to retry transient failures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// How the delay grows.
    pub backoff: Backoff,
    /// The first delay.
    pub delay: HumanDuration,
    /// The longest delay.
    pub max_delay: HumanDuration,
}

/// Backoff shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// delay, 2×delay, 4×delay, ... (with jitter), capped at `max_delay`.
    Exponential,
    /// delay, 2×delay, 3×delay, ..., capped at `max_delay`.
    Linear,
    /// The same delay every time.
    Fixed,
}

impl Backoff {
    /// The names a runbook may write.
    pub const NAMES: &'static [&'static str] = &["exponential", "linear", "fixed"];
}

/// A step that undoes another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Compensation {
    /// The step kind.
    pub uses: String,
    /// Its parameters.
    pub with: Value,
}

/// Why an edge exists, for pictures of the DAG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeKind {
    /// Only through `needs`.
    Needs,
    /// Only through a template reference.
    Reference,
    /// Both.
    Both,
}

impl Plan {
    /// Looks a step up by id, among the steps and then the `on_failure` steps.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps
            .iter()
            .chain(&self.on_failure)
            .find(|s| s.id == id)
    }

    /// The main steps as a petgraph DAG (nodes are indices into [`Plan::steps`]).
    pub fn graph(&self) -> DiGraph<usize, EdgeKind> {
        graph_of(&self.steps)
    }

    /// The `on_failure` steps as a DAG (nodes are indices into [`Plan::on_failure`]).
    pub fn failure_graph(&self) -> DiGraph<usize, EdgeKind> {
        graph_of(&self.on_failure)
    }

    /// Steps grouped into levels: every step's dependencies are in earlier levels.
    pub fn levels(&self) -> Vec<Vec<&Step>> {
        levels_of(&self.steps)
    }

    /// Computes the plan's hash over its canonical JSON with the hash field empty.
    pub fn compute_hash(&self) -> String {
        if !self.hash.is_empty() {
            let mut copy = self.clone();
            copy.hash.clear();
            return copy.compute_hash();
        }
        let mut writer = DigestWriter(Sha256::new());
        // Writing JSON into a hasher cannot fail: `DigestWriter` never returns an error.
        let _ = serde_json::to_writer(&mut writer, self);
        hex::encode(writer.0.finalize())
    }
}

fn index_of(steps: &[Step]) -> HashMap<&str, usize> {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect()
}

fn graph_of(steps: &[Step]) -> DiGraph<usize, EdgeKind> {
    let mut g = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..steps.len()).map(|i| g.add_node(i)).collect();
    let index = index_of(steps);
    for (i, step) in steps.iter().enumerate() {
        for dep in &step.needs {
            if let Some(&j) = index.get(dep.step.as_str()) {
                let kind = match (dep.explicit, dep.referenced) {
                    (true, true) => EdgeKind::Both,
                    (true, false) => EdgeKind::Needs,
                    _ => EdgeKind::Reference,
                };
                g.add_edge(nodes[j], nodes[i], kind);
            }
        }
    }
    g
}

fn levels_of(steps: &[Step]) -> Vec<Vec<&Step>> {
    let mut level: Vec<usize> = vec![0; steps.len()];
    let index = index_of(steps);
    // Steps are in topological order, so one pass settles every level.
    for (i, step) in steps.iter().enumerate() {
        for dep in &step.needs {
            if let Some(&j) = index.get(dep.step.as_str()).filter(|&&j| j < i) {
                level[i] = level[i].max(level[j] + 1);
            }
        }
    }
    let depth = level.iter().copied().max().map_or(0, |m| m + 1);
    let mut out = vec![Vec::new(); depth];
    for (i, step) in steps.iter().enumerate() {
        out[level[i]].push(step);
    }
    out
}

/// Feeds serialized bytes straight into a hash, so hashing a plan allocates no buffer.
struct DigestWriter(Sha256);

impl std::io::Write for DigestWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
