//! A self-contained SVG of the DAG: steps in layers (every step below the steps it waits
//! for), ordered within a layer to keep edges short, edges as curves with arrowheads.

use std::collections::HashMap;
use std::fmt::Write as _;

use tenure_runbook::{Plan, Step};

use crate::{shape_of, subtitle, Shape};

const CHAR_W: f64 = 7.0;
const BOX_H: f64 = 46.0;
const GAP_X: f64 = 28.0;
const GAP_Y: f64 = 58.0;
const MARGIN: f64 = 24.0;

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
fn layout(steps: &[Step], top: f64) -> (Vec<Placed<'_>>, f64, f64) {
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
        let chars = s.id.chars().count().max(subtitle(s).chars().count()) as f64;
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
                y: top + r as f64 * (BOX_H + GAP_Y),
                w,
            });
        }
    }
    let height = depth as f64 * (BOX_H + GAP_Y) - if depth > 0 { GAP_Y } else { 0.0 };
    (placed, max_w, height)
}

fn draw_box(out: &mut String, p: &Placed) {
    let s = p.step;
    let dash = if s.condition.is_some() {
        " stroke-dasharray=\"5 3\""
    } else {
        ""
    };
    let (x, y, w, h) = (p.x, p.y, p.w, BOX_H);
    let _ = writeln!(
        out,
        "<g class=\"step {}\" data-step=\"{}\">",
        class_of(s),
        esc(&s.id)
    );
    let _ = writeln!(out, "<title>{} ({})</title>", esc(&s.id), esc(&s.uses));
    match shape_of(s) {
        Shape::Approval => {
            let i = 14.0;
            let _ = writeln!(
                out,
                "<polygon points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" fill=\"#fde68a\" stroke=\"#b45309\" stroke-width=\"2.5\"{dash}/>",
                x + i, y, x + w - i, y, x + w, y + h / 2.0, x + w - i, y + h, x + i, y + h, x, y + h / 2.0
            );
        }
        Shape::Wait => {
            let _ = writeln!(out, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"23\" fill=\"#e0e7ff\" stroke=\"#4338ca\" stroke-width=\"1.5\"{dash}/>");
        }
        Shape::ForEach => {
            for off in [8.0, 4.0] {
                let _ = writeln!(out, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"6\" fill=\"#bbf7d0\" stroke=\"#15803d\" stroke-width=\"1\"/>", x + off, y - off);
            }
            let _ = writeln!(out, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"6\" fill=\"#dcfce7\" stroke=\"#15803d\" stroke-width=\"1.5\"{dash}/>");
        }
        Shape::Action => {
            let _ = writeln!(out, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"6\" fill=\"#f8fafc\" stroke=\"#334155\" stroke-width=\"1.5\"{dash}/>");
        }
    }
    let cx = x + w / 2.0;
    let _ = writeln!(out, "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\" font-size=\"13\">{}</text>", y + 19.0, esc(&s.id));
    let _ = writeln!(out, "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#475569\">{}</text>", y + 35.0, esc(&subtitle(s)));
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

fn draw_edges(out: &mut String, placed: &[Placed]) {
    let by_id: HashMap<&str, &Placed> = placed.iter().map(|p| (p.step.id.as_str(), p)).collect();
    for p in placed {
        for d in &p.step.needs {
            let Some(from) = by_id.get(d.step.as_str()) else {
                continue;
            };
            let (x1, y1) = (from.x + from.w / 2.0, from.y + BOX_H);
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
    let title_h = 40.0;
    let (main, main_w, main_h) = layout(&plan.steps, MARGIN + title_h);
    let fail_top = MARGIN + title_h + main_h + GAP_Y + 28.0;
    let (fail, fail_w, fail_h) = layout(&plan.on_failure, fail_top);
    let legend_y = if plan.on_failure.is_empty() {
        MARGIN + title_h + main_h + 36.0
    } else {
        fail_top + fail_h + 44.0
    };
    let width = (main_w.max(fail_w) + 2.0 * MARGIN).max(560.0);
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
    draw_edges(&mut out, &main);
    for p in &main {
        draw_box(&mut out, p);
    }
    if !plan.on_failure.is_empty() {
        let _ = writeln!(out, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"8\" fill=\"none\" stroke=\"#dc2626\" stroke-dasharray=\"6 4\"/>", MARGIN / 2.0, fail_top - 26.0, width - MARGIN, fail_h + 38.0);
        let _ = writeln!(out, "<text x=\"{MARGIN}\" y=\"{:.1}\" font-size=\"11\" fill=\"#dc2626\">on_failure (runs once if the run fails)</text>", fail_top - 10.0);
        draw_edges(&mut out, &fail);
        for p in &fail {
            draw_box(&mut out, p);
        }
    }
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
    out.push_str("</svg>\n");
    out
}
