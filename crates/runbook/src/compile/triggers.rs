//! Compiling `triggers:`: webhook sources with `when` and `map` over the payload, and cron
//! schedules with a timezone.

use std::str::FromStr;

use indexmap::IndexMap;

use super::scope::{Root, Scope};
use super::Cx;
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::inputs::InputSpec;
use crate::plan::{Missed, Trigger};
use crate::yaml::{Node, Value};

const WEBHOOK_KEYS: &[&str] = &["webhook", "when", "map"];
const SCHEDULE_KEYS: &[&str] = &["schedule", "timezone", "missed", "map"];

impl Cx<'_> {
    pub(super) fn triggers(
        &mut self,
        node: &Node,
        inputs: &IndexMap<String, InputSpec>,
    ) -> Vec<Trigger> {
        let Some(items) = node.as_seq() else {
            if !matches!(node.value, Value::Null) {
                self.wrong_type(node, "`triggers`", "a list");
            }
            return Vec::new();
        };
        let base = Scope::new(inputs.keys().cloned().collect());
        items
            .iter()
            .filter_map(|t| self.trigger(t, inputs, &base))
            .collect()
    }

    fn trigger(
        &mut self,
        node: &Node,
        inputs: &IndexMap<String, InputSpec>,
        base: &Scope,
    ) -> Option<Trigger> {
        let map = self.map(node, "a trigger")?;
        let webhook = node.get("webhook");
        let schedule = node.get("schedule");
        match (webhook, schedule) {
            (Some(w), None) => {
                self.unknown_keys(map, WEBHOOK_KEYS, "a webhook trigger");
                let source = self.string(w, "`webhook`")?;
                let scope = base.with_roots(&[Root::Payload, Root::Trigger]);
                let when = node
                    .get("when")
                    .and_then(|n| self.template(n, &scope, "`when`"));
                let map = self.trigger_map(node, inputs, &scope, "webhook");
                Some(Trigger::Webhook { source, when, map })
            }
            (None, Some(s)) => {
                self.unknown_keys(map, SCHEDULE_KEYS, "a schedule trigger");
                let cron = self.string(s, "`schedule`")?;
                let cron_ok = match cron::Schedule::from_str(&cron) {
                    Ok(_) => true,
                    Err(e) => {
                        let fields = cron.split_whitespace().count();
                        let help = if fields == 5 {
                            "Tenure's cron has a seconds field first: `0 0 6 * * Mon-Fri` is 06:00 on weekdays".to_string()
                        } else {
                            "fields are: sec min hour day-of-month month day-of-week [year]"
                                .to_string()
                        };
                        self.push(
                            Diagnostic::error(
                                Code::InvalidCron,
                                s.span,
                                format!(
                                    "invalid cron expression `{cron}`: {}",
                                    last_line(&e.to_string())
                                ),
                            )
                            .with_label("not a cron schedule")
                            .with_help(help),
                        );
                        false
                    }
                };
                let timezone = match node.get("timezone") {
                    Some(tz) => {
                        let name = self.string(tz, "`timezone`")?;
                        if chrono_tz::Tz::from_str(&name).is_err() {
                            let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
                            self.push(
                                Diagnostic::error(
                                    Code::InvalidTimezone,
                                    tz.span,
                                    format!("unknown timezone `{name}`"),
                                )
                                .with_label("not an IANA timezone")
                                .with_help(
                                    did_you_mean(&name, names).unwrap_or_else(|| {
                                        "use an IANA name such as `Australia/Sydney` or `UTC`"
                                            .into()
                                    }),
                                ),
                            );
                            return None;
                        }
                        name
                    }
                    None => "UTC".to_string(),
                };
                let missed = match node.get("missed") {
                    Some(m) => {
                        let name = self.string(m, "`missed`")?;
                        match Missed::parse(&name) {
                            Some(missed) => missed,
                            None => {
                                self.push(
                                    Diagnostic::error(
                                        Code::InvalidMissed,
                                        m.span,
                                        format!("unknown `missed` value `{name}`"),
                                    )
                                    .with_label("not `run_once` or `skip`")
                                    .with_help(
                                        did_you_mean(&name, Missed::NAMES.iter().copied())
                                            .unwrap_or_else(|| {
                                                "`run_once` (the default) starts one run for the ticks missed while no scheduler ran; `skip` starts none".into()
                                            }),
                                    ),
                                );
                                return None;
                            }
                        }
                    }
                    None => Missed::default(),
                };
                let scope = base.with_roots(&[Root::Trigger]);
                let map = self.trigger_map(node, inputs, &scope, "schedule");
                cron_ok.then_some(Trigger::Schedule {
                    cron,
                    timezone,
                    map,
                    missed,
                })
            }
            (Some(w), Some(_)) => {
                self.push(
                    Diagnostic::error(
                        Code::InvalidTrigger,
                        w.span,
                        "a trigger is either a `webhook` or a `schedule`, not both",
                    )
                    .with_help("split it into two triggers"),
                );
                None
            }
            (None, None) => {
                self.push(
                    Diagnostic::error(
                        Code::InvalidTrigger,
                        node.span,
                        "a trigger needs `webhook` or `schedule`",
                    )
                    .with_help("e.g. `- webhook: halo` or `- schedule: \"0 0 6 * * Mon-Fri\"`"),
                );
                None
            }
        }
    }

    fn trigger_map(
        &mut self,
        node: &Node,
        inputs: &IndexMap<String, InputSpec>,
        scope: &Scope,
        kind: &str,
    ) -> IndexMap<String, serde_json::Value> {
        let mut out = IndexMap::new();
        let Some(map_node) = node.get("map") else {
            self.unmapped_inputs(node, inputs, &out, kind);
            return out;
        };
        let Some(entries) = self.map(map_node, "`map`") else {
            return out;
        };
        for (k, v) in entries {
            if !inputs.contains_key(&k.name) {
                self.push(
                    Diagnostic::error(
                        Code::UnknownInput,
                        k.span,
                        format!("trigger maps unknown input `{}`", k.name),
                    )
                    .with_label("not declared under `inputs`")
                    .with_help_opt(did_you_mean(&k.name, inputs.keys().map(String::as_str))),
                );
                continue;
            }
            let mut refs = Vec::new();
            self.check_any(v, scope, &mut refs);
            out.insert(k.name.clone(), v.to_json());
        }
        self.unmapped_inputs(node, inputs, &out, kind);
        out
    }

    fn unmapped_inputs(
        &mut self,
        node: &Node,
        inputs: &IndexMap<String, InputSpec>,
        mapped: &IndexMap<String, serde_json::Value>,
        kind: &str,
    ) {
        let missing: Vec<&str> = inputs
            .iter()
            .filter(|(name, spec)| {
                spec.required && spec.default.is_none() && !mapped.contains_key(*name)
            })
            .map(|(name, _)| name.as_str())
            .collect();
        if !missing.is_empty() {
            let span = node
                .as_map()
                .and_then(|m| m.iter().find(|(k, _)| k.name == "map").or(m.first()))
                .map_or(node.span, |(k, _)| k.span);
            self.push(
                Diagnostic::warning(
                    Code::UnmappedInput,
                    span,
                    format!(
                        "this {kind} trigger gives no value for required input(s) {}",
                        crate::catalogue::quoted_list(&missing)
                    ),
                )
                .with_help("runs it starts will be refused until `map` gives them"),
            );
        }
    }
}

/// The last non-empty line of a multi-line library message (the one that says what is wrong).
fn last_line(message: &str) -> String {
    message
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && *l != "^")
        .unwrap_or(message)
        .trim_end_matches('.')
        .to_lowercase()
}
