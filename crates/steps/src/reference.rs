//! The reference page of a step kind, generated from its schema so `docs/steps/` cannot drift
//! from the code (a test regenerates and compares the pages).

use std::fmt::Write as _;

use tenure_runbook::{Effect, FieldType, KindClass, KindSchema, Role};

fn type_name(ty: &FieldType) -> String {
    match ty {
        FieldType::String => "string".into(),
        FieldType::Int => "int".into(),
        FieldType::Bool => "bool".into(),
        FieldType::Duration => "duration".into(),
        FieldType::Datetime => "datetime".into(),
        FieldType::Email => "email".into(),
        FieldType::Secret => "secret".into(),
        FieldType::Enum { values } => values
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(" \\| "),
        FieldType::List { items } => format!("list of {}", type_name(items)),
        FieldType::Object => "mapping".into(),
        FieldType::Any => "any".into(),
    }
}

/// An effect in words, with the lint that reads it.
fn effect_text(effect: Effect) -> &'static str {
    match effect {
        Effect::Destructive => "destructive: a person should approve it first ([RB0071](../diagnostics/RB0071.md))",
        Effect::SecuresAccount => "secures an account: must not fail quietly ([RB0073](../diagnostics/RB0073.md))",
        Effect::CreatesAccount => "creates an account: the runbook needs `concurrency` ([RB0077](../diagnostics/RB0077.md))",
        Effect::ReleasesMailbox => "removes licences: convert the mailbox to shared first ([RB0070](../diagnostics/RB0070.md))",
        Effect::PreservesMailbox => "keeps the mailbox without a licence ([RB0070](../diagnostics/RB0070.md))",
    }
}

/// A field's role in words (appended to its description).
fn role_text(role: Option<Role>) -> &'static str {
    match role {
        None => "",
        Some(Role::Subject) => " *(the person the step acts on)*",
        Some(Role::Publishes) => " *(stored or sent where others read it: no secrets, [RB0072](../diagnostics/RB0072.md))*",
        Some(Role::Broadcasts) => " *(posted where many read it: no secrets and no one-time links, [RB0072](../diagnostics/RB0072.md))*",
        Some(Role::Delivers) => " *(made to be sent to one person: not a leak)*",
    }
}

/// The Markdown page for one kind.
pub fn markdown(kind: &KindSchema) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# `{}`\n", kind.kind);
    let _ = writeln!(out, "{}\n", kind.description);
    if let Some(why) = &kind.unavailable {
        let _ = writeln!(
            out,
            "**Not available yet** ({why}): `tenure validate` and `tenure run` reject a runbook \
             that uses it ([RB0045](../diagnostics/RB0045.md)).\n"
        );
    }
    match kind.class {
        KindClass::Approval => out.push_str(
            "Parks the run until decided; bound it with `expires`, not `timeout`.\n\n\
                 Each approver is sent (`notify`) a Teams card and/or an email with Approve and \
                 Deny buttons opening their own signed link, `{public_url}/approvals/{token}`, \
                 valid until the request expires. The page shows the runbook, the person, the \
                 inputs (secrets `***`), the message, the steps that follow and any licence \
                 they may buy; only its form's POST decides, once per approver. The person who \
                 requested the run (the ticket's requester, the API token, the operator) cannot \
                 decide: they are not sent a link, and if without them fewer approvers than \
                 `quorum` remain, the step fails at once. A notification that fails is \
                 journaled with the request and does not stop the others. See \
                 [server.md](../server.md#approval-links).\n\n",
        ),
        KindClass::Wait => out.push_str(
            "Parks the run until the time comes; takes `until` or `for`, not `timeout`.\n\n",
        ),
        KindClass::Action => {}
    }
    if !kind.effects.is_empty() {
        let effects: Vec<&str> = kind.effects.iter().map(|e| effect_text(*e)).collect();
        let _ = writeln!(
            out,
            "**What the lints know of it:** {}.\n",
            effects.join("; ")
        );
    }
    out.push_str("## `with`\n\n");
    if kind.params.is_empty() {
        out.push_str("None.\n\n");
    } else {
        out.push_str("| name | type | required | default | description |\n|---|---|---|---|---|\n");
        for p in &kind.params {
            let default = p
                .default
                .as_ref()
                .map(|d| format!("`{d}`"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                p.name,
                type_name(&p.ty),
                if p.required { "yes" } else { "" },
                default,
                format!("{}{}", p.description, role_text(p.role)).replace('|', "\\|")
            );
        }
        out.push('\n');
    }
    out.push_str("## Outputs\n\n");
    if kind.outputs.is_empty() {
        out.push_str("None.\n");
    } else {
        out.push_str("Read them as `{{steps.<id>.outputs.<name>}}`.\n\n| name | type | description |\n|---|---|---|\n");
        for o in &kind.outputs {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                o.name,
                type_name(&o.ty),
                format!("{}{}", o.description, role_text(o.role)).replace('|', "\\|")
            );
        }
    }
    out
}

/// The index page listing every kind.
pub fn index(kinds: &[KindSchema]) -> String {
    let mut out = String::from("# Step kinds\n\nGenerated from the kinds' schemas (`crates/steps`); do not edit by hand.\n\n| kind | does |\n|---|---|\n");
    for k in kinds {
        let note = if k.unavailable.is_some() {
            " *(not available yet)*"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| [`{}`]({}.md) | {}{note} |",
            k.kind, k.kind, k.description
        );
    }
    out
}
