//! Graphviz DOT output.

use std::fmt::Write as _;

use tenure_runbook::Plan;

use crate::{shape_of, subtitle, Shape};

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The plan as a DOT digraph (top to bottom; `on_failure` steps in their own cluster).
pub fn to_dot(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&plan.runbook));
    let _ = writeln!(out, "  rankdir=TB;");
    let _ = writeln!(out, "  node [fontname=\"Helvetica\", fontsize=11];");
    let write_steps = |out: &mut String, steps: &[tenure_runbook::Step], indent: &str| {
        for s in steps {
            let (shape, style) = match shape_of(s) {
                Shape::Approval => ("hexagon", "filled,bold\", fillcolor=\"#fde68a"),
                Shape::Wait => ("box", "rounded,filled\", fillcolor=\"#e0e7ff"),
                Shape::ForEach => ("box3d", "filled\", fillcolor=\"#dcfce7"),
                Shape::Action => ("box", "filled\", fillcolor=\"#f1f5f9"),
            };
            let style = if s.condition.is_some() {
                style.replacen("filled", "filled,dashed", 1)
            } else {
                style.to_string()
            };
            let label = format!("{}\\n{}", s.id, subtitle(s));
            let _ = writeln!(
                out,
                "{indent}{} [label=\"{}\", shape={shape}, style=\"{style}\"];",
                quote(&s.id),
                label.replace('"', "\\\"")
            );
        }
        for s in steps {
            for d in &s.needs {
                let style = if d.explicit { "solid" } else { "dashed" };
                let _ = writeln!(
                    out,
                    "{indent}{} -> {} [style={style}];",
                    quote(&d.step),
                    quote(&s.id)
                );
            }
        }
    };
    write_steps(&mut out, &plan.steps, "  ");
    if !plan.on_failure.is_empty() {
        let _ = writeln!(out, "  subgraph cluster_on_failure {{");
        let _ = writeln!(
            out,
            "    label=\"on_failure\"; color=\"#dc2626\"; style=dashed;"
        );
        write_steps(&mut out, &plan.on_failure, "    ");
        let _ = writeln!(out, "  }}");
    }
    out.push_str("}\n");
    out
}
