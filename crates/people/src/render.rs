//! A plan for people: a plain-text table and JSON. The table starts with the guard (when it
//! stopped the plan), the counts and the source's warnings, then one section per list (New,
//! Update, Activate, Deactivate: what applying would do), then what needs a person
//! (Ambiguous, Unmatched accounts, Gone, Source missing reported) and what is Blocked, with
//! the reason. Changes read `department: Sales → Finance`. A person's fields are not secret
//! (personal email addresses are personal data, shown to the operator like the HR export).

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::{Action, Change, Item, List, Situation, SyncPlan};

/// How many items of a plan fall in each group. The four lists count only what applying would
/// carry out (blocked items are counted in `blocked`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Accounts to create.
    pub new: usize,
    /// Accounts to update.
    pub update: usize,
    /// Accounts to activate.
    pub activate: usize,
    /// Accounts to deactivate.
    pub deactivate: usize,
    /// Ambiguous people.
    pub ambiguous: usize,
    /// Accounts no person claims.
    pub unmatched: usize,
    /// People whose linked account is gone.
    pub gone: usize,
    /// Linked accounts of people who left the source, only reported by the policy.
    pub source_missing: usize,
    /// Actions not taken, with a reason.
    pub blocked: usize,
    /// Items with nothing to do.
    pub unchanged: usize,
    /// Links recorded when the plan is applied (`found` people, whatever their action).
    pub links: usize,
}

/// Counts the items of `plan`.
pub fn counts(plan: &SyncPlan) -> Counts {
    let mut c = Counts::default();
    for i in &plan.items {
        if i.link {
            c.links += 1;
        }
        if i.blocked.is_some() {
            c.blocked += 1;
            continue;
        }
        match (i.action.list(), i.situation) {
            (Some(List::New), _) => c.new += 1,
            (Some(List::Update), _) => c.update += 1,
            (Some(List::Activate), _) => c.activate += 1,
            (Some(List::Deactivate), _) => c.deactivate += 1,
            (None, Situation::Ambiguous) => c.ambiguous += 1,
            (None, Situation::Unmatched) => c.unmatched += 1,
            (None, Situation::Gone) if i.action == Action::Report => c.gone += 1,
            (None, Situation::SourceMissing) if i.action == Action::Report => c.source_missing += 1,
            _ => c.unchanged += 1,
        }
    }
    c
}

/// One line: `3 new, 2 update, 0 activate, 1 deactivate; 1 ambiguous, 2 blocked` (the
/// report groups only when not empty), prefixed `guarded: ` when the guard stopped it.
pub fn summary(plan: &SyncPlan) -> String {
    let c = counts(plan);
    let mut s = format!(
        "{} new, {} update, {} activate, {} deactivate",
        c.new, c.update, c.activate, c.deactivate
    );
    let extra: Vec<String> = [
        (c.ambiguous, "ambiguous"),
        (c.unmatched, "unmatched"),
        (c.gone, "gone"),
        (c.source_missing, "source missing"),
        (c.blocked, "blocked"),
        (c.links, "to link"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, w)| format!("{n} {w}"))
    .collect();
    if !extra.is_empty() {
        s.push_str("; ");
        s.push_str(&extra.join(", "));
    }
    if plan.guard.is_some() {
        s.insert_str(0, "guarded: ");
    }
    s
}

/// The plan as JSON: the plan's own fields plus `lists` ([`Counts`]) and `summary`.
pub fn to_json(plan: &SyncPlan) -> Value {
    let mut v = serde_json::to_value(plan).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert(
            "lists".into(),
            serde_json::to_value(counts(plan)).unwrap_or(Value::Null),
        );
        map.insert("summary".into(), Value::String(summary(plan)));
    }
    v
}

fn person_name(i: &Item) -> String {
    let Some(p) = &i.person else {
        return String::new();
    };
    if let Some(d) = p.attributes.get("displayName") {
        return d.clone();
    }
    let parts: Vec<&str> = ["givenName", "surname"]
        .iter()
        .filter_map(|a| p.attributes.get(*a).map(String::as_str))
        .collect();
    parts.join(" ")
}

fn account_text(i: &Item) -> String {
    if let Some(a) = &i.account {
        if a.user_principal_name.is_empty() {
            return format!("(id {})", a.id);
        }
        return a.user_principal_name.clone();
    }
    if !i.candidates.is_empty() {
        return i
            .candidates
            .iter()
            .map(|c| c.user_principal_name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
    }
    match i
        .person
        .as_ref()
        .and_then(|p| p.attributes.get("userPrincipalName"))
    {
        Some(upn) => format!("(new) {upn}"),
        None => "(new)".to_string(),
    }
}

fn situation_text(i: &Item) -> String {
    let mut s = i.situation.code().to_string();
    if i.link {
        s.push_str(", link");
    }
    s
}

/// Text for a terminal: control characters (an escape sequence in a tenant's job title, a
/// line break in a display name) shown as `\u{1b}` instead of acting on the terminal or
/// breaking the table.
fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn change_text(c: &Change) -> String {
    format!(
        "{}: {} → {}",
        c.attribute,
        c.from.as_deref().unwrap_or("(unset)"),
        c.to.as_deref().unwrap_or("(unset)")
    )
}

fn section(out: &mut String, title: &str, note: &str, items: &[&Item], with_action: bool) {
    if items.is_empty() {
        return;
    }
    let _ = write!(out, "\n{title} ({})", items.len());
    if !note.is_empty() {
        let _ = write!(out, ": {note}");
    }
    out.push('\n');
    let rows: Vec<[String; 5]> = items
        .iter()
        .map(|i| {
            [
                if with_action {
                    i.action.code().to_string()
                } else {
                    String::new()
                },
                i.person.as_ref().map_or("-".into(), |p| clean(&p.key)),
                clean(&person_name(i)),
                clean(&account_text(i)),
                situation_text(i),
            ]
        })
        .collect();
    let mut width = [0usize; 5];
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for (i, r) in items.iter().zip(&rows) {
        let mut line = String::from(" ");
        for (k, (cell, w)) in r.iter().zip(width).enumerate() {
            if k == 0 && !with_action {
                continue;
            }
            let pad = w - cell.chars().count();
            line.push(' ');
            line.push_str(cell);
            if k < 4 {
                line.push_str(&" ".repeat(pad + 1));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
        for c in &i.changes {
            let _ = writeln!(out, "      {}", clean(&change_text(c)));
        }
        if let Some(b) = &i.blocked {
            let _ = writeln!(out, "      blocked: {}", clean(b));
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The plan as a plain-text table.
pub fn table(plan: &SyncPlan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "people sync `{}` → tenant `{}`: {}, {}",
        clean(&plan.source),
        clean(&plan.tenant),
        plural(plan.people, "person", "people"),
        plural(plan.accounts, "account", "accounts")
    );
    if let Some(g) = &plan.guard {
        let _ = writeln!(out, "GUARD: {}", clean(g));
    }
    let c = counts(plan);
    let _ = writeln!(out, "{}; {} unchanged", summary(plan), c.unchanged);
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings ({})", plan.warnings.len());
        for w in &plan.warnings {
            let _ = writeln!(out, "  {}", clean(w));
        }
    }
    let open = |pred: &dyn Fn(&Item) -> bool| -> Vec<&Item> {
        plan.items
            .iter()
            .filter(|i| i.blocked.is_none() && pred(i))
            .collect()
    };
    for (title, list) in [
        ("New", List::New),
        ("Update", List::Update),
        ("Activate", List::Activate),
        ("Deactivate", List::Deactivate),
    ] {
        section(
            &mut out,
            title,
            "",
            &open(&|i| i.action.list() == Some(list)),
            false,
        );
    }
    let report =
        |s: Situation| open(&move |i: &Item| i.action == Action::Report && i.situation == s);
    section(
        &mut out,
        "Ambiguous",
        "",
        &report(Situation::Ambiguous),
        false,
    );
    section(
        &mut out,
        "Unmatched accounts",
        "",
        &report(Situation::Unmatched),
        false,
    );
    section(
        &mut out,
        "Gone",
        "the linked account no longer exists; unlink or restore it",
        &report(Situation::Gone),
        false,
    );
    section(
        &mut out,
        "Source missing",
        "linked, no longer in the source; only reported by the policy",
        &report(Situation::SourceMissing),
        false,
    );
    section(
        &mut out,
        "Found",
        "linked when applied, nothing else to do",
        &open(&|i| i.link && i.action == Action::None),
        false,
    );
    let blocked: Vec<&Item> = plan.items.iter().filter(|i| i.blocked.is_some()).collect();
    section(&mut out, "Blocked", "", &blocked, true);
    terminal_safe(&out)
}

/// `text` with every control character but the line break, and every bidirectional mark,
/// override or isolate, replaced by U+FFFD: a value read from the tenant or the export
/// (a `department` holding `ESC]0;...`) can neither move the cursor, retitle or clear the
/// operator's terminal, nor reorder what a line shows. One character for one, so the
/// columns stay aligned.
pub fn terminal_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            let bidi = matches!(
                c,
                '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            );
            if (c.is_control() && c != '\n') || bidi {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}
