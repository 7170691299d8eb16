//! Mermaid flowchart output (renders in GitHub, GitLab and most wikis).

use std::fmt::Write as _;

use tenure_runbook::{Plan, Step};

use crate::{shape_of, subtitle, Shape};

fn node_id(id: &str) -> String {
    // Mermaid ids: keep letters, digits and `_`.
    let cleaned: String = id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("s_{cleaned}")
}

fn node(out: &mut String, s: &Step) {
    let label = format!("{}<br/><small>{}</small>", s.id, subtitle(s)).replace('"', "#quot;");
    let (open, close) = match shape_of(s) {
        Shape::Approval => ("{{", "}}"),
        Shape::Wait => ("([", "])"),
        Shape::ForEach => ("[[", "]]"),
        Shape::Action => ("[", "]"),
    };
    let _ = writeln!(out, "  {}{open}\"{label}\"{close}", node_id(&s.id));
}

fn edges(out: &mut String, steps: &[Step]) {
    for s in steps {
        for d in &s.needs {
            let arrow = if d.explicit { "-->" } else { "-.->" };
            let _ = writeln!(out, "  {} {arrow} {}", node_id(&d.step), node_id(&s.id));
        }
    }
}

/// The plan as a Mermaid `flowchart TD`.
pub fn to_mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart TD\n");
    for s in &plan.steps {
        node(&mut out, s);
    }
    edges(&mut out, &plan.steps);
    if !plan.on_failure.is_empty() {
        out.push_str("  subgraph on_failure\n");
        for s in &plan.on_failure {
            node(&mut out, s);
        }
        out.push_str("  end\n");
        edges(&mut out, &plan.on_failure);
    }
    for s in plan.steps.iter().chain(&plan.on_failure) {
        let class = match shape_of(s) {
            Shape::Approval => "approval",
            Shape::Wait => "wait",
            Shape::ForEach => "foreach",
            Shape::Action => continue,
        };
        let _ = writeln!(out, "  class {} {class}", node_id(&s.id));
    }
    out.push_str("  classDef approval fill:#fde68a,stroke:#b45309,stroke-width:2px\n");
    out.push_str("  classDef wait fill:#e0e7ff,stroke:#4338ca\n");
    out.push_str("  classDef foreach fill:#dcfce7,stroke:#15803d\n");
    out
}
