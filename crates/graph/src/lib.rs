//! Pictures of a compiled plan's DAG for authors: a self-contained SVG (layered layout, one box
//! per step labelled with id and kind; approval gates, waits, `for_each` steps and conditional
//! steps drawn distinctly), Graphviz DOT, and Mermaid; and the SVG coloured by the state of
//! each step in a run ([`to_svg_with`]).

mod dot;
mod mermaid;
mod svg;

pub use dot::to_dot;
pub use mermaid::to_mermaid;
pub use svg::{state_colours, to_svg, to_svg_with, StepOverlay};

use tenure_runbook::{KindClass, Step};

/// How a step is drawn, shared by every format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A step that does work once.
    Action,
    /// A `for_each` step: one instance per item.
    ForEach,
    /// An approval gate.
    Approval,
    /// A timer.
    Wait,
}

/// The shape of a step.
pub fn shape_of(step: &Step) -> Shape {
    match step.class {
        KindClass::Approval => Shape::Approval,
        KindClass::Wait => Shape::Wait,
        KindClass::Action if step.for_each.is_some() => Shape::ForEach,
        KindClass::Action => Shape::Action,
    }
}

/// The second line of a step's label: its kind, plus markers for `for_each` and `if`.
pub fn subtitle(step: &Step) -> String {
    let mut s = step.uses.clone();
    if step.for_each.is_some() {
        s.push_str(" ×each");
    }
    if step.condition.is_some() {
        s.push_str(" (if)");
    }
    s
}

/// A format to render in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Scalable Vector Graphics.
    Svg,
    /// Graphviz DOT.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "svg" => Ok(Format::Svg),
            "dot" => Ok(Format::Dot),
            "mermaid" => Ok(Format::Mermaid),
            other => Err(format!(
                "unknown format `{other}` (use svg, dot or mermaid)"
            )),
        }
    }
}

/// Renders `plan` in `format`.
pub fn render(plan: &tenure_runbook::Plan, format: Format) -> String {
    match format {
        Format::Svg => to_svg(plan),
        Format::Dot => to_dot(plan),
        Format::Mermaid => to_mermaid(plan),
    }
}
