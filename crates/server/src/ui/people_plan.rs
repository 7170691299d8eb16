//! A people sync's stored plan and outcome as HTML, read from their JSON (the server does not
//! depend on the people crate: it shows what the sync recorded). The plan's items are grouped
//! as the four lists HR products show (new, update, activate, deactivate), then the items a
//! person must look at (ambiguous, unmatched, gone) and the blocked ones; the outcome lists the
//! runs the sync started, each linked to its page, and the errors.

use maud::{html, Markup};
use serde_json::Value;

use super::runbooks::path_segment;

/// The sections of a plan: (heading, action, list code), in the order shown.
const LISTS: &[(&str, &str)] = &[
    ("New", "create"),
    ("Update", "update"),
    ("Activate", "activate"),
    ("Deactivate", "deactivate"),
];

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// Who an item is about: the person's key and name, or that the source has no person.
fn who(item: &Value) -> Markup {
    let person = &item["person"];
    let a = &person["attributes"];
    let name = a["displayName"].as_str().map(str::to_string).or_else(|| {
        let parts: Vec<&str> = [&a["givenName"], &a["surname"]]
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    html! {
        @if person.is_object() {
            code { (text(&person["key"])) }
            @if let Some(n) = name { " " (n) }
        } @else {
            "(not in the source)"
        }
    }
}

fn account(item: &Value) -> Markup {
    html! {
        @if item["account"].is_object() {
            (text(&item["account"]["user_principal_name"]))
        } @else if let Some(c) = item["candidates"].as_array().filter(|c| !c.is_empty()) {
            (c.iter().map(|a| text(&a["user_principal_name"])).collect::<Vec<_>>().join(", "))
        } @else {
            "—"
        }
    }
}

fn changes(item: &Value) -> Markup {
    let none = Vec::new();
    let list = item["changes"].as_array().unwrap_or(&none);
    html! {
        @if list.is_empty() {
            @if item["link"].as_bool() == Some(true) { "link to the account" }
        } @else {
            ul.changes {
                @for c in list {
                    li {
                        code { (text(&c["attribute"])) } ": "
                        (c["from"].as_str().unwrap_or("(unset)")) " → "
                        (c["to"].as_str().unwrap_or("(cleared)"))
                    }
                }
            }
        }
    }
}

fn table(items: &[&Value], why: bool) -> Markup {
    html! {
        table.people {
            thead { tr {
                th { "Person" } th { "Account" } th { "Situation" }
                th { @if why { "Why" } @else { "Changes" } }
            } }
            tbody {
                @for item in items {
                    tr {
                        td { (who(item)) }
                        td { (account(item)) }
                        td { (text(&item["situation"]).replace('_', " ")) }
                        td {
                            @if why { (item["blocked"].as_str().unwrap_or(situation_note(text(&item["situation"])))) }
                            @else { (changes(item)) }
                        }
                    }
                }
            }
        }
    }
}

fn situation_note(situation: &str) -> &'static str {
    match situation {
        "ambiguous" => "two or more accounts match: link the right one by hand",
        "unmatched" => "no person in the source links to or matches this account",
        "gone" => "the linked account is gone: unlink or restore it",
        _ => "",
    }
}

/// The plan: guard, warnings, the four lists, what needs a person, what is blocked.
pub fn plan(plan: &Value) -> Markup {
    let none = Vec::new();
    let items: Vec<&Value> = plan["items"].as_array().unwrap_or(&none).iter().collect();
    let in_list = |action: &str| -> Vec<&Value> {
        items
            .iter()
            .copied()
            .filter(|i| i["action"] == action && i["blocked"].is_null())
            .collect()
    };
    let look: Vec<&Value> = items
        .iter()
        .copied()
        .filter(|i| i["action"] == "report")
        .collect();
    let blocked: Vec<&Value> = items
        .iter()
        .copied()
        .filter(|i| !i["blocked"].is_null())
        .collect();
    let links = items
        .iter()
        .filter(|i| i["link"].as_bool() == Some(true))
        .count();
    html! {
        @if let Some(g) = plan["guard"].as_str() {
            div.errors #guard role="alert" {
                p { strong { "Stopped by the guard; nothing was applied." } }
                p { (g) }
            }
        }
        p {
            (plan["people"].as_u64().unwrap_or(0)) " people in the source, "
            (plan["accounts"].as_u64().unwrap_or(0)) " accounts in the tenant"
            @if links > 0 { ", " (links) " found and linked by correlation" } "."
        }
        @if let Some(w) = plan["warnings"].as_array().filter(|w| !w.is_empty()) {
            section #warnings {
                h2 { "Warnings in the source" }
                ul { @for x in w { li { (text(x)) } } }
            }
        }
        @for (heading, action) in LISTS {
            @let list = in_list(action);
            section id=(format!("list-{action}")) {
                h2 { (heading) " (" (list.len()) ")" }
                @if list.is_empty() { p.hint { "Nobody." } } @else { (table(&list, false)) }
            }
        }
        @if !look.is_empty() {
            section #look {
                h2 { "Needs a person (" (look.len()) ")" }
                (table(&look, true))
            }
        }
        @if !blocked.is_empty() {
            section #blocked {
                h2 { "Blocked (" (blocked.len()) ")" }
                (table(&blocked, true))
            }
        }
    }
}

/// The outcome: the runs the sync started (linked), and what could not be started.
pub fn outcome(outcome: &Value) -> Markup {
    let none = Vec::new();
    let runs = outcome["runs"].as_array().unwrap_or(&none);
    let errors = outcome["errors"].as_array().unwrap_or(&none);
    html! {
        section #runs {
            h2 { "Runs started (" (runs.len()) ")" }
            @if runs.is_empty() {
                p.hint { "None." }
            } @else {
                table {
                    thead { tr { th { "Person" } th { "Action" } th { "Runbook" } th { "Run" } } }
                    tbody {
                        @for r in runs {
                            tr {
                                td { code { (text(&r["person"])) } }
                                td { (text(&r["action"])) }
                                td { (text(&r["runbook"])) }
                                td {
                                    a href=(format!("/ui/runs/{}", path_segment(text(&r["run_id"])))) { (text(&r["run_id"])) }
                                    @if r["existing"].as_bool() == Some(true) { " (started by an earlier apply)" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !errors.is_empty() {
            section #errors {
                h2 { "Not started (" (errors.len()) ")" }
                ul { @for e in errors { li { (text(e)) } } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_plan_is_grouped_and_escaped() {
        let p = json!({
            "source": "hr", "tenant": "contoso", "people": 3, "accounts": 10, "guard": null,
            "warnings": ["people.csv:4: no key"],
            "items": [
                {"situation": "absent", "action": "create", "link": false, "blocked": null, "changes": [], "candidates": [],
                 "person": {"key": "E1", "attributes": {"displayName": "<b>Jane</b>"}}, "account": null},
                {"situation": "confirmed", "action": "update", "link": false, "blocked": null, "candidates": [],
                 "changes": [{"attribute": "jobTitle", "from": "A", "to": "B"}],
                 "person": {"key": "E2", "attributes": {}}, "account": {"id": "1", "user_principal_name": "x@contoso.example"}},
                {"situation": "ambiguous", "action": "report", "link": false, "blocked": null, "changes": [],
                 "candidates": [{"id": "2", "user_principal_name": "a@c"}, {"id": "3", "user_principal_name": "b@c"}],
                 "person": {"key": "E3", "attributes": {}}, "account": null},
                {"situation": "confirmed", "action": "deactivate", "link": false, "blocked": "hybrid: on-premises synced", "changes": [], "candidates": [],
                 "person": {"key": "E4", "attributes": {}}, "account": {"id": "4", "user_principal_name": "h@contoso.example"}}
            ]
        });
        let html = plan(&p).into_string();
        assert!(
            html.contains("New (1)") && html.contains("Update (1)"),
            "{html}"
        );
        assert!(
            html.contains("Deactivate (0)"),
            "blocked is not in the list: {html}"
        );
        assert!(html.contains("&lt;b&gt;Jane&lt;/b&gt;"), "{html}");
        assert!(html.contains("a@c, b@c"), "{html}");
        assert!(html.contains("hybrid: on-premises synced"), "{html}");
        assert!(html.contains("people.csv:4: no key"), "{html}");
        assert!(!html.contains("id=\"guard\""));
        let guarded =
            plan(&json!({"guard": "the source lists no person", "items": []})).into_string();
        assert!(guarded.contains("the source lists no person"), "{guarded}");
        let out = outcome(&json!({"runs": [{"person": "E1", "action": "create", "runbook": "onboard-user", "run_id": "r/1", "existing": false}], "errors": ["E9 (update): bad"]})).into_string();
        assert!(out.contains("href=\"/ui/runs/r%2F1\""), "{out}");
        assert!(out.contains("E9 (update): bad"), "{out}");
    }
}
