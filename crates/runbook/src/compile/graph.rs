//! Turning checked steps into a DAG: edges from `needs` and template references, unknown
//! `needs`, cycles (with the path that closes them), and a deterministic topological order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use super::scope::StepRef;
use super::Cx;
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::plan::{Dependency, Step};
use crate::source::Span;

/// A step before ordering, with where each of its edges was written.
pub(crate) struct RawStep {
    pub step: Step,
    pub key_span: Span,
    pub needs: Vec<(String, Span)>,
    pub refs: Vec<StepRef>,
    pub on_failure: bool,
    /// False if the step itself had errors (it still takes part in the graph checks).
    pub valid: bool,
}

impl Cx<'_> {
    /// Resolves edges among `steps` (one set: the main steps or the `on_failure` steps),
    /// reports unknown needs and cycles, and returns the steps in topological order.
    pub(super) fn order(
        &mut self,
        mut steps: Vec<RawStep>,
        set: &str,
        main_ids: &[&str],
    ) -> Option<Vec<Step>> {
        let index: HashMap<String, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.step.id.clone(), i))
            .collect();
        let mut ok = true;
        // edges[i] = (dependency index, span of the text that made the edge)
        let mut edges: Vec<Vec<(usize, Span)>> = vec![Vec::new(); steps.len()];
        for (i, raw) in steps.iter_mut().enumerate() {
            let mut deps: Vec<Dependency> = Vec::new();
            for (name, span) in &raw.needs {
                match index.get(name) {
                    Some(&j) => {
                        edges[i].push((j, *span));
                        add_dep(&mut deps, name, true);
                    }
                    None => {
                        ok = false;
                        let mut ids: Vec<&str> = index.keys().map(String::as_str).collect();
                        ids.sort_unstable();
                        let help = if raw.on_failure && main_ids.contains(&name.as_str()) {
                            Some("`on_failure` steps run after the run has failed; they can only need other `on_failure` steps".to_string())
                        } else {
                            did_you_mean(name, ids)
                        };
                        self.push(
                            Diagnostic::error(
                                Code::UnknownNeed,
                                *span,
                                format!("step `{}` needs unknown step `{name}`", raw.step.id),
                            )
                            .with_label(format!("not a step in `{set}`"))
                            .with_help_opt(help),
                        );
                    }
                }
            }
            for r in &raw.refs {
                // References from `on_failure` to main steps read finished outputs: no edge.
                if let Some(&j) = index.get(&r.id) {
                    edges[i].push((j, r.span));
                    add_dep(&mut deps, &r.id, false);
                }
            }
            deps.sort_by(|a, b| a.step.cmp(&b.step));
            raw.step.needs = deps;
        }
        if !self.report_cycles(&steps, &edges) {
            ok = false;
        }
        if !ok {
            return None;
        }
        Some(topological(steps, &edges))
    }

    /// Reports each cycle once, at the edge that closes it. Returns false if any was found.
    fn report_cycles(&mut self, steps: &[RawStep], edges: &[Vec<(usize, Span)>]) -> bool {
        let mut g = petgraph::graph::DiGraph::<usize, ()>::new();
        let nodes: Vec<_> = (0..steps.len()).map(|i| g.add_node(i)).collect();
        for (i, deps) in edges.iter().enumerate() {
            for (j, _) in deps {
                g.add_edge(nodes[*j], nodes[i], ());
            }
        }
        let mut clean = true;
        for scc in petgraph::algo::tarjan_scc(&g) {
            let members: Vec<usize> = scc.iter().map(|n| g[*n]).collect();
            let self_loop =
                members.len() == 1 && edges[members[0]].iter().any(|(j, _)| *j == members[0]);
            if members.len() < 2 && !self_loop {
                continue;
            }
            clean = false;
            let start = *members.iter().min().unwrap_or(&members[0]);
            let path = cycle_path(start, &members, edges);
            let names: Vec<&str> = path.iter().map(|&i| steps[i].step.id.as_str()).collect();
            // The edge from the first step to the next one on the path.
            let next = path.get(1).copied().unwrap_or(start);
            let span = edges[start]
                .iter()
                .find(|(j, _)| *j == next)
                .map_or(steps[start].key_span, |(_, s)| *s);
            let message = if self_loop {
                format!("step `{}` depends on itself", names[0])
            } else {
                format!("dependency cycle: {}", names.join(" → "))
            };
            let mut d = Diagnostic::error(Code::Cycle, span, message)
                .with_label(format!("`{}` waits for `{}` here", names[0], steps[next].step.id))
                .with_help("remove one of these dependencies; a step may only wait for steps that can finish first");
            for w in path.windows(2).skip(1) {
                if let Some((_, s)) = edges[w[0]].iter().find(|(j, _)| *j == w[1]) {
                    d = d.with_note(
                        *s,
                        format!(
                            "`{}` waits for `{}`",
                            steps[w[0]].step.id, steps[w[1]].step.id
                        ),
                    );
                }
            }
            self.push(d);
        }
        clean
    }
}

fn add_dep(deps: &mut Vec<Dependency>, name: &str, explicit: bool) {
    match deps.iter_mut().find(|d| d.step == name) {
        Some(d) => {
            d.explicit |= explicit;
            d.referenced |= !explicit;
        }
        None => deps.push(Dependency {
            step: name.to_string(),
            explicit,
            referenced: !explicit,
        }),
    }
}

/// A shortest path `start → dep → ... → start` through the cycle, following dependencies.
fn cycle_path(start: usize, members: &[usize], edges: &[Vec<(usize, Span)>]) -> Vec<usize> {
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(u) = queue.pop_front() {
        let mut deps: Vec<usize> = edges[u]
            .iter()
            .map(|(j, _)| *j)
            .filter(|j| members.contains(j))
            .collect();
        deps.sort_unstable();
        deps.dedup();
        for j in deps {
            if j == start {
                let mut back = Vec::new();
                let mut cur = u;
                while cur != start {
                    back.push(cur);
                    cur = parent[&cur];
                }
                back.reverse();
                let mut path = vec![start];
                path.extend(back);
                path.push(start);
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(j) {
                e.insert(u);
                queue.push_back(j);
            }
        }
    }
    vec![start, start]
}

/// Kahn's algorithm; among ready steps the one defined first in the file goes first.
fn topological(steps: Vec<RawStep>, edges: &[Vec<(usize, Span)>]) -> Vec<Step> {
    let n = steps.len();
    let mut indegree = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, deps) in edges.iter().enumerate() {
        let mut uniq: Vec<usize> = deps.iter().map(|(j, _)| *j).collect();
        uniq.sort_unstable();
        uniq.dedup();
        indegree[i] = uniq.len();
        for j in uniq {
            dependents[j].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    let mut slots: Vec<Option<Step>> = steps.into_iter().map(|r| Some(r.step)).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}
