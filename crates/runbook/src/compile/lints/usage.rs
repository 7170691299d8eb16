//! Lints on what templates read: inputs and vars no template uses (RB0074), a `wait` until a
//! date or datetime with no timezone (RB0075), and `on_failure` templates that read outputs of
//! steps that may not have run (RB0076).

use std::collections::BTreeSet;

use super::model::Model;
use super::Finding;
use crate::catalogue::KindClass;
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::inputs::InputType;
use crate::template::analyze;
use crate::yaml::Node;

pub(super) fn check(m: &Model<'_>, out: &mut Vec<Finding>) {
    unused(m, out);
    wait_zone(m, out);
    failure_reads(m, out);
}

/// RB0074: declared inputs and vars that no template names.
fn unused(m: &Model<'_>, out: &mut Vec<Finding>) {
    let mut used_inputs = BTreeSet::new();
    let mut used_vars = BTreeSet::new();
    for (key, node) in m.root.as_map().unwrap_or(&[]) {
        if key.name == "inputs" {
            continue;
        }
        for p in m.paths(node) {
            match p.segments.as_slice() {
                [root, name, ..] if root == "inputs" => {
                    used_inputs.insert(name.clone());
                }
                [root, name, ..] if root == "vars" => {
                    used_vars.insert(name.clone());
                }
                _ => {}
            }
        }
    }
    for (set, used) in [("inputs", &used_inputs), ("vars", &used_vars)] {
        let what = if set == "inputs" { "input" } else { "var" };
        for (key, _) in m.root.get(set).and_then(Node::as_map).unwrap_or(&[]) {
            if used.contains(&key.name) {
                continue;
            }
            let help = did_you_mean(&key.name, used.iter().map(String::as_str))
                .map(|h| format!("templates use another {what}: {h}"))
                .unwrap_or_else(|| format!("remove it, or use it as `{{{{{set}.{}}}}}`", key.name));
            out.push(Finding {
                step: None,
                diagnostic: Diagnostic::warning(
                    Code::Unused,
                    key.span,
                    format!("{what} `{}` is declared but never used", key.name),
                )
                .with_label("no template reads it")
                .with_help(help),
            });
        }
    }
}

/// RB0075: `wait.until` built from a `date` input or from text with a time and no offset.
fn wait_zone(m: &Model<'_>, out: &mut Vec<Finding>) {
    for step in m
        .steps
        .iter()
        .filter(|s| s.kind.is_some_and(|k| k.class == KindClass::Wait))
    {
        let Some(until) = step.param("until") else {
            continue;
        };
        let Some(text) = until.scalar_text() else {
            continue;
        };
        if !crate::template::contains_expression(&text) {
            continue; // a literal is checked as an RFC 3339 datetime by the compiler
        }
        // `at DATE TIME ZONE` gives the zone's offset.
        if text.contains("{{at ") || text.contains("(at ") {
            continue;
        }
        let literal = literal_text(&text);
        let has_offset = has_offset(&literal) || text.contains("%z") || text.contains("%:z");
        if has_offset {
            continue;
        }
        let date_input = m.paths(until).into_iter().find(|p| {
            matches!(p.segments.as_slice(), [root, name] if root == "inputs"
                && m.plan.inputs.get(name).is_some_and(|s| s.ty == InputType::Date))
        });
        let reason = match (&date_input, ends_with_time(&literal)) {
            (_, true) => "the time it gives has no timezone offset".to_string(),
            (Some(p), false) => format!("`{}` is a date, with no time or timezone", p.joined()),
            (None, false) => continue,
        };
        out.push(Finding {
            step: Some(step.id.to_string()),
            diagnostic: Diagnostic::warning(
                Code::WaitWithoutZone,
                until.span,
                format!("wait `{}` has no timezone: {reason}", step.id),
            )
            .with_label("which timezone?")
            .with_help("use the tenant's timezone (`{{at inputs.last_day \"17:00\" tenant.timezone}}`), give an offset (`{{inputs.last_day}}T17:00:00+10:00`), or take a `datetime` input, which carries one"),
        });
    }
}

/// The text of a template outside its `{{ }}` expressions.
fn literal_text(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        match rest[i..].find("}}") {
            Some(j) => rest = &rest[i + j + 2..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Whether `text` ends in a UTC designator or a `+hh:mm` / `-hh:mm` offset.
fn has_offset(text: &str) -> bool {
    let t = text.trim_end();
    if t.ends_with('Z') || t.ends_with('z') {
        return true;
    }
    let b = t.as_bytes();
    // ±hh:mm or ±hhmm
    for len in [6, 5] {
        if b.len() >= len {
            let tail = &b[b.len() - len..];
            if (tail[0] == b'+' || tail[0] == b'-')
                && tail[1..].iter().all(|c| c.is_ascii_digit() || *c == b':')
                && (b.len() == len || b[b.len() - len - 1].is_ascii_digit())
            {
                return true;
            }
        }
    }
    false
}

/// Whether `text` ends in a time of day (`17:00` or `17:00:00`).
fn ends_with_time(text: &str) -> bool {
    let t = text.trim_end();
    let b = t.as_bytes();
    b.len() >= 5 && {
        let tail = &b[b.len() - 5..];
        tail[0].is_ascii_digit()
            && tail[1].is_ascii_digit()
            && tail[2] == b':'
            && tail[3].is_ascii_digit()
            && tail[4].is_ascii_digit()
    }
}

/// RB0076: an `on_failure` template reading a main step's output without a fallback.
fn failure_reads(m: &Model<'_>, out: &mut Vec<Finding>) {
    for step in m.steps.iter().filter(|s| s.on_failure) {
        let mut found = Vec::new();
        m.walk(step.node, &mut |node, text| {
            let Ok(a) = analyze(text) else { return };
            for p in a.paths.iter().filter(|p| !p.scoped) {
                let [root, id, outputs, ..] = p.segments.as_slice() else {
                    continue;
                };
                if root != "steps" || outputs != "outputs" {
                    continue;
                }
                if m.step(id).is_none_or(|s| s.on_failure) || guarded(text, p.offset, &p.raw) {
                    continue;
                }
                found.push((m.span_in(node, &p.raw, p.offset), p.raw.clone(), id.clone()));
            }
        });
        for (span, raw, id) in found {
            out.push(Finding {
                step: Some(step.id.to_string()),
                diagnostic: Diagnostic::warning(
                    Code::FailureReadsOutput,
                    span,
                    format!(
                        "`on_failure` step `{}` reads `{raw}`, but `{id}` may not have run when the run failed",
                        step.id
                    ),
                )
                .with_label("has no value if the run failed before it")
                .with_help(format!("write `{{{{default {raw} \"unknown\"}}}}`, or guard it with `{{{{#if {raw}}}}}`")),
            });
        }
    }
}

/// Whether the path at `offset` stands in a `default` call or inside an `#if`/`#with` on the
/// same path.
fn guarded(text: &str, offset: usize, raw: &str) -> bool {
    let before = text.get(..offset.min(text.len())).unwrap_or("");
    let open = before.rfind("{{").map_or("", |i| &before[i + 2..]);
    let expr = open.trim_start_matches(['~', '{']).trim_start();
    // `{{default x ...}}`, `{{#if x}}` (the test itself) and `(default x ...)` read it safely.
    if expr.starts_with("default") || expr.starts_with("#if") || open.contains("(default") {
        return true;
    }
    let compact: String = before.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains(&format!("{{{{#if{raw}}}}}"))
        || compact.contains(&format!("{{{{#with{raw}}}}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_times_are_recognised() {
        assert!(has_offset("T17:00:00+10:00"));
        assert!(has_offset("T17:00:00Z"));
        assert!(has_offset("T17:00-0500"));
        assert!(!has_offset("T17:00:00"));
        assert!(!has_offset(""));
        assert!(ends_with_time("T17:00"));
        assert!(!ends_with_time("T17"));
        assert_eq!(literal_text("{{a}}T17:00{{b}}x"), "T17:00x");
        assert_eq!(literal_text("x{{a"), "x");
    }

    #[test]
    fn default_and_if_guard_a_path() {
        let t = "{{default steps.a.outputs.b 'x'}}";
        assert!(guarded(t, t.find("steps").unwrap(), "steps.a.outputs.b"));
        let t = "{{#if steps.a.outputs.b}}{{steps.a.outputs.b}}{{/if}}";
        assert!(guarded(t, t.rfind("steps").unwrap(), "steps.a.outputs.b"));
        let t = "{{steps.a.outputs.b}}";
        assert!(!guarded(t, 2, "steps.a.outputs.b"));
    }
}
