//! A self-contained SVG of the DAG: steps in layers (every step below the steps it waits
//! for), ordered within a layer to keep edges short, edges as curves with arrowheads.
//! [`to_svg_with`] draws the same layout coloured by each step's state in a run (a third line
//! per box: state, attempts, duration, items done of a `for_each`), for the web UI's run page.

use std::collections::HashMap;
use std::fmt::Write as _;

use tenure_runbook::{Plan, Step};

use crate::{shape_of, subtitle, Shape};

const CHAR_W: f64 = 7.0;
const BOX_H: f64 = 46.0;
const GAP_X: f64 = 28.0;
const GAP_Y: f64 = 58.0;
const MARGIN: f64 = 24.0;
/// Boxes are taller with a run's overlay: a third line.
const BOX_H_OVERLAY: f64 = 62.0;

/// What a run says about one step, for [`to_svg_with`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepOverlay {
    /// The step's state in the run (`succeeded`, `failed`, `running`, `waiting`, `pending`,
    /// `skipped`, `compensated`...): the box's `data-state` and colour.
    pub state: String,
    /// Attempts made (over every item of a `for_each` step).
    pub attempts: u32,
    /// How long the step has taken so far, in milliseconds, once it started.
    pub duration_ms: Option<i64>,
    /// Items done and items in all, for a `for_each` step.
    pub items: Option<(u32, u32)>,
}

impl StepOverlay {
    /// The third line of the box: `failed · 3 attempts · 1.2 s · 4/10 items`.
    pub fn line(&self) -> String {
        let mut parts = vec![self.state.replace('_', " ")];
        match self.attempts {
            0 => {}
            1 => parts.push("1 attempt".into()),
            n => parts.push(format!("{n} attempts")),
        }
        if let Some(ms) = self.duration_ms {
            parts.push(short_duration(ms));
        }
        if let Some((done, total)) = self.items {
            parts.push(format!("{done}/{total} items"));
        }
        parts.join(" · ")
    }
}

/// A duration as people read it: `850 ms`, `12.4 s`, `3 min 05 s`, `2 h 10 min`.
fn short_duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{} h {:02} min", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// The fill and stroke of a box in `state`: succeeded green, failed red, running blue,
/// waiting or parked amber, pending grey, skipped or cancelled light grey, compensated or
/// rolled back purple.
pub fn state_colours(state: &str) -> (&'static str, &'static str) {
    match state {
        "succeeded" => ("#dafbe1", "#1a7f37"),
        "failed" | "denied" | "compensation_failed" => ("#ffebe9", "#cf222e"),
        "running" | "ready" | "retry_wait" | "preparing" | "active" => ("#ddf4ff", "#0969da"),
        "waiting" | "parked" => ("#fff8c5", "#9a6700"),
        "skipped" | "cancelled" => ("#f6f8fa", "#8c959f"),
        "compensated" | "compensating" | "rolled_back" => ("#fbefff", "#8250df"),
        _ => ("#eaeef2", "#57606a"),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

struct Placed<'a> {
    step: &'a Step,
    x: f64,
    y: f64,
    w: f64,
}

/// Lays out one set of steps (already in topological order) from `top`; returns the boxes
/// and the height used.
fn layout<'a>(steps: &'a [Step], top: f64, look: &Look) -> (Vec<Placed<'a>>, f64, f64) {
    let box_h = look.box_h();
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut level = vec![0usize; steps.len()];
    for (i, s) in steps.iter().enumerate() {
        for d in &s.needs {
            if let Some(&j) = index.get(d.step.as_str()) {
                if j < i {
                    level[i] = level[i].max(level[j] + 1);
                }
            }
        }
    }
    let depth = level.iter().copied().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (i, l) in level.iter().enumerate() {
        rows[*l].push(i);
    }
    let width_of = |s: &Step| {
        let third = look.overlay_of(s).map_or(0, |o| o.line().chars().count());
        let chars =
            s.id.chars()
                .count()
                .max(subtitle(s).chars().count())
                .max(third) as f64;
        (chars * CHAR_W + 28.0).max(120.0)
    };
    let mut x_center: Vec<f64> = vec![0.0; steps.len()];
    let mut row_widths = Vec::new();
    // First pass: order each row by the mean position of its dependencies (barycentre).
    for row in rows.iter_mut() {
        let key = |i: &usize| {
            let xs: Vec<f64> = steps[*i]
                .needs
                .iter()
                .filter_map(|d| index.get(d.step.as_str()))
                .map(|&j| x_center[j])
                .collect();
            if xs.is_empty() {
                *i as f64 * 1e-6
            } else {
                xs.iter().sum::<f64>() / xs.len() as f64 + *i as f64 * 1e-6
            }
        };
        row.sort_by(|a, b| key(a).total_cmp(&key(b)));
        let mut x = 0.0;
        for &i in row.iter() {
            let w = width_of(&steps[i]);
            x_center[i] = x + w / 2.0;
            x += w + GAP_X;
        }
        row_widths.push((x - GAP_X).max(0.0));
    }
    let max_w = row_widths.iter().copied().fold(0.0, f64::max);
    let mut placed = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let offset = MARGIN + (max_w - row_widths[r]) / 2.0;
        for &i in row {
            let w = width_of(&steps[i]);
            x_center[i] += offset;
            placed.push(Placed {
                step: &steps[i],
                x: x_center[i] - w / 2.0,
                y: top + r as f64 * (box_h + GAP_Y),
                w,
            });
        }
    }
    let height = depth as f64 * (box_h + GAP_Y) - if depth > 0 { GAP_Y } else { 0.0 };
    (placed, max_w, height)
}

/// How the picture is drawn: the plain plan, or coloured by a run's step states.
struct Look<'a> {
    overlay: Option<&'a HashMap<String, StepOverlay>>,
}

impl Look<'_> {
    fn box_h(&self) -> f64 {
        if self.overlay.is_some() {
            BOX_H_OVERLAY
        } else {
            BOX_H
        }
    }

    fn overlay_of(&self, s: &Step) -> Option<&StepOverlay> {
        self.overlay?.get(&s.id)
    }

    /// The state of a step in the run (`pending` when the run says nothing of it).
    fn state_of(&self, s: &Step) -> Option<&str> {
        self.overlay
            .map(|o| o.get(&s.id).map_or("pending", |o| o.state.as_str()))
    }
}

fn draw_box(out: &mut String, p: &Placed, look: &Look) {
    let s = p.step;
    let dash = if s.condition.is_some() {
        " stroke-dasharray=\"5 3\""
    } else {
        ""
    };
    let (x, y, w, h) = (p.x, p.y, p.w, look.box_h());
    let state = look.state_of(s);
    match state {
        Some(state) => {
            let _ = writeln!(
                out,
                "<g class=\"step {} state-{}\" data-step=\"{}\" data-state=\"{}\">",
                class_of(s),
                esc(state),
                esc(&s.id),
                esc(state)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "<g class=\"step {}\" data-step=\"{}\">",
                class_of(s),
                esc(&s.id)
            );
        }
    }
    match (state, look.overlay_of(s)) {
        (Some(_), Some(o)) => {
            let _ = writeln!(
                out,
                "<title>{} ({}): {}</title>",
                esc(&s.id),
                esc(&s.uses),
                esc(&o.line())
            );
        }
        (Some(state), None) => {
            let _ = writeln!(
                out,
                "<title>{} ({}): {}</title>",
                esc(&s.id),
                esc(&s.uses),
                esc(state)
            );
        }
        _ => {
            let _ = writeln!(out, "<title>{} ({})</title>", esc(&s.id), esc(&s.uses));
        }
    }
    // A run's overlay colours every shape by state; the plain picture colours by shape.
    let coloured = |fill: &'static str, stroke: &'static str| match state {
        Some(st) => state_colours(st),
        None => (fill, stroke),
    };
    match shape_of(s) {
        Shape::Approval => {
            let i = 14.0;
            let (fill, stroke) = coloured("#fde68a", "#b45309");
            let _ = writeln!(
                out,
                "<polygon points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"2.5\"{dash}/>",
                x + i, y, x + w - i, y, x + w, y + h / 2.0, x + w - i, y + h, x + i, y + h, x, y + h / 2.0
            );
        }
        Shape::Wait => {
            let (fill, stroke) = coloured("#e0e7ff", "#4338ca");
            let _ = writeln!(out, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"23\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"{dash}/>");
        }
        Shape::ForEach => {
            let (back, _) = coloured("#bbf7d0", "#15803d");
            let (fill, stroke) = coloured("#dcfce7", "#15803d");
            for off in [8.0, 4.0] {
                let _ = writeln!(out, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"6\" fill=\"{back}\" stroke=\"{stroke}\" stroke-width=\"1\"/>", x + off, y - off);
            }
            let _ = writeln!(out, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"{dash}/>");
        }
        Shape::Action => {
            let (fill, stroke) = coloured("#f8fafc", "#334155");
            let _ = writeln!(out, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"{dash}/>");
        }
    }
    let cx = x + w / 2.0;
    let _ = writeln!(out, "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\" font-size=\"13\">{}</text>", y + 19.0, esc(&s.id));
    let _ = writeln!(out, "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#475569\">{}</text>", y + 35.0, esc(&subtitle(s)));
    if let Some(state) = state {
        let line = look
            .overlay_of(s)
            .map_or_else(|| state.replace('_', " "), StepOverlay::line);
        let (_, ink) = state_colours(state);
        let _ = writeln!(out, "<text class=\"state-line\" x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{ink}\">{}</text>", y + 52.0, esc(&line));
    }
    out.push_str("</g>\n");
}

fn class_of(s: &Step) -> &'static str {
    match shape_of(s) {
        Shape::Approval => "approval",
        Shape::Wait => "wait",
        Shape::ForEach => "for-each",
        Shape::Action => "action",
    }
}

fn draw_edges(out: &mut String, placed: &[Placed], box_h: f64) {
    let by_id: HashMap<&str, &Placed> = placed.iter().map(|p| (p.step.id.as_str(), p)).collect();
    for p in placed {
        for d in &p.step.needs {
            let Some(from) = by_id.get(d.step.as_str()) else {
                continue;
            };
            let (x1, y1) = (from.x + from.w / 2.0, from.y + box_h);
            let (x2, y2) = (p.x + p.w / 2.0, p.y - 2.0);
            let mid = (y2 - y1) / 2.0;
            let dash = if d.explicit {
                ""
            } else {
                " stroke-dasharray=\"4 3\""
            };
            let _ = writeln!(
                out,
                "<path class=\"edge\" data-from=\"{}\" data-to=\"{}\" d=\"M{x1:.1},{y1:.1} C{x1:.1},{:.1} {x2:.1},{:.1} {x2:.1},{y2:.1}\" fill=\"none\" stroke=\"#64748b\" stroke-width=\"1.4\" marker-end=\"url(#arrow)\"{dash}/>",
                esc(&from.step.id), esc(&p.step.id), y1 + mid, y2 - mid
            );
        }
    }
}

/// The plan as a standalone SVG document.
pub fn to_svg(plan: &Plan) -> String {
    draw(plan, &Look { overlay: None })
}

/// The plan coloured by a run: each step's box has `data-state` (from `overlay`, `pending` for
/// a step it does not name), a `state-STATE` class, fill and stroke by state, and a third line
/// (state, attempts, duration, items done of a `for_each`). Presentation attributes only (no
/// `style`), so the picture can be inlined under a strict Content-Security-Policy.
pub fn to_svg_with(plan: &Plan, overlay: &HashMap<String, StepOverlay>) -> String {
    draw(
        plan,
        &Look {
            overlay: Some(overlay),
        },
    )
}

fn draw(plan: &Plan, look: &Look) -> String {
    let box_h = look.box_h();
    let title_h = 40.0;
    let (main, main_w, main_h) = layout(&plan.steps, MARGIN + title_h, look);
    let fail_top = MARGIN + title_h + main_h + GAP_Y + 28.0;
    let (fail, fail_w, fail_h) = layout(&plan.on_failure, fail_top, look);
    let legend_y = if plan.on_failure.is_empty() {
        MARGIN + title_h + main_h + 36.0
    } else {
        fail_top + fail_h + 44.0
    };
    // The state legend is longer than the shape legend.
    let min_w = if look.overlay.is_some() { 640.0 } else { 560.0 };
    let width = (main_w.max(fail_w) + 2.0 * MARGIN).max(min_w);
    let height = legend_y + 40.0;
    let mut out = String::new();
    let _ = writeln!(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"Helvetica, Arial, sans-serif\">");
    out.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#64748b\"/></marker></defs>\n");
    let _ = writeln!(
        out,
        "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>"
    );
    let _ = writeln!(
        out,
        "<text x=\"{MARGIN}\" y=\"{:.1}\" font-size=\"16\" font-weight=\"bold\">{} v{}</text>",
        MARGIN + 14.0,
        esc(&plan.runbook),
        plan.version
    );
    if let Some(d) = &plan.description {
        let _ = writeln!(
            out,
            "<text x=\"{MARGIN}\" y=\"{:.1}\" font-size=\"11\" fill=\"#475569\">{}</text>",
            MARGIN + 30.0,
            esc(d)
        );
    }
    draw_edges(&mut out, &main, box_h);
    for p in &main {
        draw_box(&mut out, p, look);
    }
    if !plan.on_failure.is_empty() {
        let _ = writeln!(out, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"8\" fill=\"none\" stroke=\"#dc2626\" stroke-dasharray=\"6 4\"/>", MARGIN / 2.0, fail_top - 26.0, width - MARGIN, fail_h + 38.0);
        let _ = writeln!(out, "<text x=\"{MARGIN}\" y=\"{:.1}\" font-size=\"11\" fill=\"#dc2626\">on_failure (runs once if the run fails)</text>", fail_top - 10.0);
        draw_edges(&mut out, &fail, box_h);
        for p in &fail {
            draw_box(&mut out, p, look);
        }
    }
    if look.overlay.is_some() {
        state_legend(&mut out, legend_y);
    } else {
        shape_legend(&mut out, legend_y);
    }
    out.push_str("</svg>\n");
    out
}

fn shape_legend(out: &mut String, legend_y: f64) {
    let legend = [
        ("#f8fafc", "#334155", "step"),
        ("#fde68a", "#b45309", "approval gate"),
        ("#dcfce7", "#15803d", "for_each"),
        ("#e0e7ff", "#4338ca", "wait"),
    ];
    let mut lx = MARGIN;
    for (fill, stroke, label) in legend {
        let _ = writeln!(out, "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"14\" height=\"14\" rx=\"3\" fill=\"{fill}\" stroke=\"{stroke}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{label}</text>", legend_y, lx + 19.0, legend_y + 11.0);
        lx += 30.0 + label.len() as f64 * 6.5;
    }
    let _ = writeln!(out, "<line x1=\"{lx:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#334155\" stroke-dasharray=\"5 3\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">conditional (if) / reference edge</text>", legend_y + 7.0, lx + 22.0, legend_y + 7.0, lx + 27.0, legend_y + 11.0);
}

fn state_legend(out: &mut String, legend_y: f64) {
    let mut lx = MARGIN;
    for label in [
        "succeeded",
        "failed",
        "running",
        "waiting",
        "pending",
        "skipped",
        "compensated",
    ] {
        let (fill, stroke) = state_colours(label);
        let _ = writeln!(out, "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"14\" height=\"14\" rx=\"3\" fill=\"{fill}\" stroke=\"{stroke}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{label}</text>", legend_y, lx + 19.0, legend_y + 11.0);
        lx += 30.0 + label.len() as f64 * 6.5;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOK: &str = r#"runbook: paint
version: 2
tenant: contoso
steps:
  create:
    uses: http.request
    with: { method: POST, url: "http://vendor.invalid/create" }
  gate:
    needs: [create]
    uses: approval
    with: { approvers: [alice@msp.example], expires: 1h, message: "Go?" }
  each:
    needs: [gate]
    uses: http.request
    for_each: [1, 2, 3]
    with: { method: POST, url: "http://vendor.invalid/{{item}}" }
on_failure:
  tell:
    uses: http.request
    with: { method: POST, url: "http://vendor.invalid/tell" }
"#;

    fn plan() -> Plan {
        let src = tenure_runbook::SourceFile::new("paint.yaml", BOOK.to_string());
        let out = tenure_runbook::compile(&src, &tenure_steps::catalogue());
        let diags: Vec<String> = out.diagnostics.iter().map(|d| d.render(&src)).collect();
        out.plan.unwrap_or_else(|| panic!("{diags:?}"))
    }

    fn overlay(state: &str, attempts: u32) -> StepOverlay {
        StepOverlay {
            state: state.into(),
            attempts,
            duration_ms: Some(1_250),
            items: None,
        }
    }

    /// The `<g>` of one step.
    fn group<'a>(svg: &'a str, step: &str) -> &'a str {
        let at = svg
            .find(&format!("data-step=\"{step}\""))
            .expect("the step is drawn");
        let start = svg[..at].rfind("<g ").expect("in a group");
        let end = svg[start..].find("</g>").expect("closed") + start;
        &svg[start..end]
    }

    #[test]
    fn each_box_carries_its_state_colour_and_third_line() {
        let plan = plan();
        let mut o = HashMap::new();
        o.insert("create".to_string(), overlay("succeeded", 1));
        o.insert("gate".to_string(), overlay("waiting", 1));
        o.insert(
            "each".to_string(),
            StepOverlay {
                state: "failed".into(),
                attempts: 5,
                duration_ms: Some(75_000),
                items: Some((2, 3)),
            },
        );
        let svg = to_svg_with(&plan, &o);
        let create = group(&svg, "create");
        assert!(create.contains("data-state=\"succeeded\""), "{create}");
        assert!(create.contains("state-succeeded"), "{create}");
        assert!(
            create.contains("fill=\"#dafbe1\" stroke=\"#1a7f37\""),
            "{create}"
        );
        assert!(
            create.contains(">succeeded · 1 attempt · 1.2 s</text>"),
            "{create}"
        );
        let gate = group(&svg, "gate");
        assert!(gate.contains("data-state=\"waiting\""), "{gate}");
        assert!(
            gate.contains("<polygon"),
            "the gate keeps its shape: {gate}"
        );
        assert!(
            gate.contains("fill=\"#fff8c5\" stroke=\"#9a6700\""),
            "{gate}"
        );
        let each = group(&svg, "each");
        assert!(each.contains("data-state=\"failed\""), "{each}");
        assert!(
            each.contains(">failed · 5 attempts · 1 min 15 s · 2/3 items</text>"),
            "{each}"
        );
        assert_eq!(each.matches("stroke=\"#cf222e\"").count(), 3, "{each}");
        // A step the run says nothing of (an on_failure step that never ran) is pending.
        let tell = group(&svg, "tell");
        assert!(tell.contains("data-state=\"pending\""), "{tell}");
        assert!(tell.contains(">pending</text>"), "{tell}");
        // Inline-able under a strict CSP: no style attribute, no script.
        assert!(!svg.contains("style="), "{svg}");
        assert!(!svg.contains("<script"), "{svg}");
        assert!(
            svg.contains(">compensated</text>"),
            "the legend names the states"
        );
    }

    #[test]
    fn state_values_are_escaped() {
        let plan = plan();
        let mut o = HashMap::new();
        o.insert("create".to_string(), overlay("<b>\"x\"", 0));
        let svg = to_svg_with(&plan, &o);
        assert!(!svg.contains("<b>"), "{svg}");
        assert!(
            svg.contains("data-state=\"&lt;b&gt;&quot;x&quot;\""),
            "{svg}"
        );
    }

    #[test]
    fn the_plain_picture_has_no_states() {
        let svg = to_svg(&plan());
        assert!(!svg.contains("data-state"), "{svg}");
        assert!(!svg.contains("state-line"), "{svg}");
        assert!(svg.contains("fill=\"#fde68a\" stroke=\"#b45309\""), "{svg}");
        assert!(svg.contains("height=\"46.0\""), "{svg}");
    }

    #[test]
    fn colours_by_state() {
        assert_eq!(state_colours("succeeded").1, "#1a7f37");
        assert_eq!(state_colours("failed").1, "#cf222e");
        assert_eq!(state_colours("running").1, "#0969da");
        assert_eq!(state_colours("parked"), state_colours("waiting"));
        assert_eq!(state_colours("pending").1, "#57606a");
        assert_eq!(state_colours("skipped").1, "#8c959f");
        assert_eq!(state_colours("compensated").1, "#8250df");
        assert_eq!(state_colours("rolled_back").1, "#8250df");
        assert_eq!(state_colours("no such state"), state_colours("pending"));
    }

    #[test]
    fn the_third_line_reads_naturally() {
        let o = StepOverlay {
            state: "retry_wait".into(),
            attempts: 0,
            duration_ms: None,
            items: None,
        };
        assert_eq!(o.line(), "retry wait");
        assert_eq!(short_duration(850), "850 ms");
        assert_eq!(short_duration(7_800_000), "2 h 10 min");
    }
}
