//! A run's labels: the few words a runs list shows and searches without reading the run's
//! plan, context or machine. Whom the run acts on (`person`, e.g. a UPN), its tenant id, the
//! PSA ticket, and how it was started. They are worked out once, when the run is created,
//! purely from the plan and the rendered (sealed) context, with the step catalogue saying
//! which parameters name the person:
//!
//! - `person`: the first step (plan order, then `on_failure`) whose person parameter renders
//!   from what the run knows at its start (inputs, vars, tenant, trigger; never a step's
//!   outputs or a `for_each` item). A kind that creates the account (`entra.create_user`)
//!   names the person by the parameter that is also its subject output
//!   (`user_principal_name`); other kinds by their [`Role::Subject`] parameters (`user`).
//! - `ticket`: the first `psa.*` step's `ticket` parameter that renders, else an input named
//!   `ticket` or `ticket_id`.
//! - `tenant`: the tenant's id (`tenant.id`).
//!
//! A secret never becomes a label: secret inputs are left out of what templates render
//! against, and any value that holds a sealed secret, or that cannot be shown on one line, is
//! dropped.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;
use tenure_runbook::{Effect, Plan, Renderer, Role, Step, Template};

use crate::secrets::SEALED;

/// The longest label kept (characters); a longer value is cut.
pub const LABEL_MAX: usize = 200;

/// What a runs list shows of a run besides its id, runbook and status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunLabels {
    /// Whom the run acts on (a UPN, an object id, an email address).
    pub person: Option<String>,
    /// The tenant id.
    pub tenant: Option<String>,
    /// The PSA ticket number.
    pub ticket: Option<String>,
    /// How it was started: `cli`, `api`, `webhook:<source>`, `schedule`, `call`.
    pub trigger_source: Option<String>,
    /// Who started it.
    pub trigger_by: Option<String>,
}

impl RunLabels {
    /// What the list's free text is matched against for run `id` of `runbook`: the id, the
    /// person, the ticket and the runbook, in lower case.
    pub fn search_text(&self, id: &str, runbook: &str) -> String {
        let person = self.person.as_deref().unwrap_or_default();
        let ticket = self.ticket.as_deref().unwrap_or_default();
        format!("{id} {person} {ticket} {runbook}").to_lowercase()
    }
}

/// Which parameters of each kind name the person, in the order they are tried.
fn person_params() -> &'static HashMap<String, Vec<String>> {
    static PARAMS: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    PARAMS.get_or_init(|| {
        tenure_steps::schemas()
            .into_iter()
            .filter_map(|k| {
                let mut names = Vec::new();
                if k.has(Effect::CreatesAccount) {
                    // The account it creates: a parameter that is also its subject output.
                    for out in k.outputs.iter().filter(|o| o.role == Some(Role::Subject)) {
                        if k.params.iter().any(|p| p.name == out.name) {
                            names.push(out.name.clone());
                        }
                    }
                }
                for p in k.params.iter().filter(|p| p.role == Some(Role::Subject)) {
                    if !names.contains(&p.name) {
                        names.push(p.name.clone());
                    }
                }
                (!names.is_empty()).then_some((k.kind, names))
            })
            .collect()
    })
}

fn renderer() -> &'static Renderer {
    static RENDERER: OnceLock<Renderer> = OnceLock::new();
    RENDERER.get_or_init(Renderer::new)
}

/// A value as a label: a string or number on one line, no sealed secret, at most
/// [`LABEL_MAX`] characters; `None` otherwise.
fn label(v: &Value) -> Option<String> {
    let text = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if text.is_empty() || text.contains(SEALED) || text.chars().any(char::is_control) {
        return None;
    }
    Some(text.chars().take(LABEL_MAX).collect())
}

/// What the labels' templates render against: the run's context without its secret inputs
/// (a template naming one fails to render, so it is never chosen) and without step outputs.
fn render_context(plan: &Plan, context: &Value) -> Value {
    let mut ctx = serde_json::json!({});
    for part in ["inputs", "vars", "tenant", "trigger", "run"] {
        if let Some(v) = context.get(part) {
            ctx[part] = v.clone();
        }
    }
    if let Some(inputs) = ctx["inputs"].as_object_mut() {
        for (name, spec) in &plan.inputs {
            if spec.ty.is_secret() {
                inputs.remove(name);
            }
        }
    }
    ctx
}

/// The first of `params` of `step` that renders to a label.
fn rendered(step: &Step, params: &[String], ctx: &Value) -> Option<String> {
    params.iter().find_map(|name| match step.with.get(name)? {
        Value::String(s) => {
            let v = renderer()
                .render_value(&Template::new(s.clone()), ctx)
                .ok()?;
            label(&v)
        }
        other => label(other),
    })
}

/// The labels of a run of `plan` whose context (as stored: secrets sealed) is `context`.
pub fn derive(plan: &Plan, context: &Value) -> RunLabels {
    let ctx = render_context(plan, context);
    let steps = || plan.steps.iter().chain(&plan.on_failure);
    let kinds = person_params();
    let person = steps().find_map(|s| rendered(s, kinds.get(&s.uses)?, &ctx));
    let ticket_param = ["ticket".to_string()];
    let ticket = steps()
        .filter(|s| s.uses.starts_with("psa."))
        .find_map(|s| rendered(s, &ticket_param, &ctx))
        .or_else(|| {
            ["ticket", "ticket_id"].iter().find_map(|name| {
                let spec = plan.inputs.get(*name)?;
                if spec.ty.is_secret() {
                    return None;
                }
                label(ctx["inputs"].get(*name)?)
            })
        });
    let trigger = &context["trigger"];
    RunLabels {
        person,
        tenant: label(&context["tenant"]["id"]),
        ticket,
        trigger_source: label(&trigger["source"]),
        trigger_by: label(&trigger["by"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Case {
        name: &'static str,
        /// The runbook's `inputs:` and `steps:` (after a common header).
        body: &'static str,
        inputs: Value,
        person: Option<&'static str>,
        ticket: Option<&'static str>,
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "the user a step acts on",
                body: r#"inputs:
  upn: { type: string, required: true }
steps:
  block: { uses: entra.disable_sign_in, with: { user: "{{inputs.upn}}" } }"#,
                inputs: json!({"upn": "ada@contoso.example"}),
                person: Some("ada@contoso.example"),
                ticket: None,
            },
            Case {
                name: "a created user is named by its UPN, not by a later step's output",
                body: r#"inputs:
  first: { type: string, required: true }
  ticket_id: { type: string }
steps:
  create:
    uses: entra.create_user
    with: { user_principal_name: "{{lower inputs.first}}@contoso.example", display_name: "{{inputs.first}}" }
  group:
    needs: [create]
    uses: entra.add_to_group
    with: { user: "{{steps.create.outputs.id}}", group: "g1" }"#,
                inputs: json!({"first": "Grace", "ticket_id": "T-1001"}),
                person: Some("grace@contoso.example"),
                ticket: Some("T-1001"),
            },
            Case {
                name: "a subject rendered from step outputs is skipped for a later one",
                body: r#"inputs:
  upn: { type: string, required: true }
steps:
  find: { uses: http.request, with: { method: GET, url: "http://vendor.invalid/x" } }
  revoke:
    needs: [find]
    uses: entra.revoke_sessions
    with: { user: "{{steps.find.outputs.body}}" }
  block: { uses: entra.disable_sign_in, with: { user: "{{inputs.upn}}" } }"#,
                inputs: json!({"upn": "linus@contoso.example"}),
                person: Some("linus@contoso.example"),
                ticket: None,
            },
            Case {
                name: "the ticket of the first psa step wins over a ticket input",
                body: r#"inputs:
  upn: { type: string, required: true }
  ticket: { type: int }
  other: { type: string }
steps:
  note:
    uses: psa.add_ticket_note
    with: { ticket: "{{inputs.other}}", body: "Done for {{inputs.upn}}" }"#,
                inputs: json!({"upn": "x@contoso.example", "ticket": 7, "other": "HALO-88"}),
                person: None,
                ticket: Some("HALO-88"),
            },
            Case {
                name: "a number input is a ticket too",
                body: r#"inputs:
  ticket: { type: int }
steps:
  hold: { uses: wait, with: { for: 1h } }"#,
                inputs: json!({"ticket": 4711}),
                person: None,
                ticket: Some("4711"),
            },
            Case {
                name: "a secret input is never a label",
                body: r#"inputs:
  ticket: { type: secret }
  key: { type: secret, required: true }
steps:
  reset: { uses: entra.reset_password, with: { user: "{{inputs.key}}" } }"#,
                inputs: json!({"ticket": "Hunter2-Secret", "key": "Hunter2-Secret"}),
                person: None,
                ticket: None,
            },
            Case {
                name: "a per-item subject is no one person",
                body: r#"inputs:
  users: { type: list, items: string, required: true }
steps:
  block:
    for_each: "{{inputs.users}}"
    uses: entra.disable_sign_in
    with: { user: "{{item}}" }"#,
                inputs: json!({"users": ["a@contoso.example", "b@contoso.example"]}),
                person: None,
                ticket: None,
            },
            Case {
                name: "a var names the person",
                body: r#"inputs:
  first: { type: string, required: true }
vars:
  upn: "{{lower inputs.first}}@contoso.example"
steps:
  block: { uses: entra.disable_sign_in, with: { user: "{{vars.upn}}" } }"#,
                inputs: json!({"first": "Ken"}),
                person: Some("ken@contoso.example"),
                ticket: None,
            },
        ]
    }

    fn plan(body: &str) -> Plan {
        let text = format!("runbook: t\nversion: 1\ntenant: contoso\n{body}\n");
        let src = tenure_runbook::SourceFile::new("t.yaml", text);
        let out = tenure_runbook::compile(&src, &tenure_steps::contract_catalogue());
        let diags: Vec<String> = out.diagnostics.iter().map(|d| d.render(&src)).collect();
        out.plan.unwrap_or_else(|| panic!("{diags:?}"))
    }

    #[test]
    fn labels_follow_the_table() {
        let renderer = Renderer::new();
        let secrets = crate::secrets::SecretBox::new([7u8; 32]);
        for case in cases() {
            let plan = plan(case.body);
            let inputs =
                tenure_runbook::inputs::resolve(&plan.inputs, case.inputs.as_object().unwrap())
                    .unwrap();
            let trigger = json!({"source": "cli", "by": "ann"});
            let tenant = json!({"id": "contoso", "name": "Contoso"});
            let mut ctx =
                crate::driver::start_context(&plan, inputs, tenant, trigger, &renderer).unwrap();
            // As stored, and in clear: a secret is left out either way.
            let clear = ctx.clone();
            secrets.seal_context(&plan, &mut ctx);
            for ctx in [ctx, clear] {
                let got = derive(&plan, &ctx);
                assert_eq!(got.person.as_deref(), case.person, "{}", case.name);
                assert_eq!(got.ticket.as_deref(), case.ticket, "{}", case.name);
                assert_eq!(got.tenant.as_deref(), Some("contoso"), "{}", case.name);
                assert_eq!(got.trigger_source.as_deref(), Some("cli"));
                assert_eq!(got.trigger_by.as_deref(), Some("ann"));
            }
        }
    }

    #[test]
    fn the_search_text_is_lower_case() {
        let labels = RunLabels {
            person: Some("Ada@Contoso.example".into()),
            ticket: Some("T-9".into()),
            ..Default::default()
        };
        assert_eq!(
            labels.search_text("AB12", "Leaver"),
            "ab12 ada@contoso.example t-9 leaver"
        );
        assert_eq!(RunLabels::default().search_text("x", "r"), "x   r");
    }

    #[test]
    fn labels_are_one_short_line_and_never_sealed() {
        assert_eq!(label(&json!(" a@b.example ")), Some("a@b.example".into()));
        assert_eq!(label(&json!(42)), Some("42".into()));
        assert_eq!(label(&json!("enc:v1:abcdef")), None);
        assert_eq!(label(&json!("x\ny")), None);
        assert_eq!(label(&json!("")), None);
        assert_eq!(label(&json!(null)), None);
        assert_eq!(label(&json!(["a"])), None);
        assert_eq!(
            label(&json!("x".repeat(500))).map(|s| s.len()),
            Some(LABEL_MAX)
        );
    }

    #[test]
    fn the_catalogue_names_the_person_parameters() {
        let kinds = person_params();
        assert_eq!(
            kinds["entra.create_user"].first().map(String::as_str),
            Some("user_principal_name")
        );
        assert_eq!(kinds["entra.disable_sign_in"], vec!["user".to_string()]);
        assert!(!kinds.contains_key("http.request"));
    }
}
