//! `notify.teams` and `notify.email`: messages to the people around a run.
//!
//! - `notify.teams` posts an Adaptive Card (title, Markdown text, fact set, `Action.OpenUrl`
//!   buttons) in the `{"type":"message","attachments":[...]}` envelope to a Teams Workflows
//!   webhook (api-facts §8). Any 2xx is accepted (Workflows answers 202); a legacy connector's
//!   200 with an "HTTP error" text is a failure (429 transient). The webhook URL is a secret
//!   (its `sig=` is the credential) and only its path is journaled.
//! - `notify.email` sends through Microsoft Graph `POST /users/{from}/sendMail` from a
//!   configured mailbox, or through an SMTP relay ([`crate::smtp`]) when one is configured; the
//!   Markdown body is rendered to HTML (`tenure_steps::markdown::to_html`).
//!
//! Neither vendor has an idempotency key or a way to find what was sent, so both are
//! at-least-once: an attempt that fails after the vendor accepted the message (a lost answer)
//! sends it again when retried. Over SMTP every attempt carries the same `Message-ID`, so
//! receivers that keep one copy per id show it once.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use tenure_steps::{Call, Outcome, Registry, StepError};
use tenure_vendors::{Secret, VendorError};

use crate::vendors::{param, step_error, Vendors};

/// Where messages go: Teams channels (name → Workflows webhook URL) and the mailbox email is
/// sent from.
#[derive(Clone, Debug, Default)]
pub struct NotifyConfig {
    /// Channel name → webhook URL; `channel:` picks one, the first (by name) is the default.
    pub teams: BTreeMap<String, Secret>,
    /// The mailbox `notify.email` sends as (a user or shared mailbox with `Mail.Send`).
    pub email_from: Option<String>,
    /// The tenant that mailbox is in (default: the run's tenant).
    pub email_tenant: Option<String>,
    /// Send email through this SMTP relay instead of Graph (`email_from` is then the From
    /// address).
    pub smtp: Option<crate::smtp::SmtpConfig>,
}

/// Registers `notify.teams` and `notify.email`.
pub fn register(registry: &mut Registry, vendors: &Arc<Vendors>) {
    registry.insert("notify.teams", Teams(vendors.clone()));
    registry.insert("notify.email", Email(vendors.clone()));
}

struct Teams(Arc<Vendors>);
struct Email(Arc<Vendors>);

crate::executor!(Teams, Email);

/// The Adaptive Card of a message.
fn card(title: Option<&str>, message: &str, facts: &Value, links: &Value) -> Value {
    let mut body = Vec::new();
    if let Some(t) = title.filter(|t| !t.is_empty()) {
        body.push(json!({"type": "TextBlock", "text": t, "weight": "Bolder", "size": "Medium", "wrap": true}));
    }
    body.push(json!({"type": "TextBlock", "text": message, "wrap": true}));
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let facts: Vec<Value> = facts
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| json!({"title": k, "value": text(v)}))
        .collect();
    if !facts.is_empty() {
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    let actions: Vec<Value> = links
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|url| (k, url)))
        .map(|(k, url)| json!({"type": "Action.OpenUrl", "title": k, "url": url}))
        .collect();
    json!({"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": null,
        "content": {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": body,
            "actions": actions,
        }
    }]})
}

impl Teams {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let p = call.params;
        let message = param(p, "message")?;
        let channels = &self.0.notify().teams;
        let named = p["channel"].as_str().filter(|c| !c.is_empty());
        let (name, url) = match named {
            Some(c) => channels.get_key_value(c),
            None => channels.iter().next(),
        }
        .ok_or_else(|| {
            StepError::permanent(
                "not_configured",
                match named {
                    Some(c) => format!("no Teams channel `{c}` is configured under [teams.channels]"),
                    None => "no Teams channel is configured: add one under [teams.channels] in tenure.toml".into(),
                },
            )
        })?;
        let body = card(p["title"].as_str(), message, &p["facts"], &p["links"]);
        let what = format!("post to the Teams channel {name}");
        let resp = tenure_vendors::request(
            self.0.http(),
            call.requests,
            &what,
            Method::POST,
            url.expose(),
            &[],
            Some(&body),
        )
        .await
        .map_err(step_error)?;
        if !(200..300).contains(&resp.status) {
            return Err(step_error(VendorError::from_response(
                &what,
                resp.status,
                resp.retry_after,
                &resp.text,
            )));
        }
        // A legacy connector reports failures as 200 with a text body.
        if resp.text.contains("HTTP error") {
            let text: String = resp.text.chars().take(200).collect();
            return Err(if resp.text.contains("HTTP error 429") {
                StepError::transient("http_429", format!("{what}: {text}"))
            } else {
                StepError::permanent("teams_error", format!("{what}: {text}"))
            });
        }
        Ok(Outcome::Done(json!({"posted": true})))
    }
}

/// The addresses of a `to`/`cc` parameter (a list, or a comma-separated string).
fn addresses(v: &Value) -> Vec<String> {
    let list: Vec<&str> = match v {
        Value::String(s) => s.split(',').map(str::trim).collect(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    list.into_iter()
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

/// Graph's recipient list.
fn recipients(list: &[String]) -> Vec<Value> {
    list.iter()
        .map(|a| json!({"emailAddress": {"address": a}}))
        .collect()
}

impl Email {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let p = call.params;
        let config = self.0.notify();
        let given = p["from"]
            .as_str()
            .filter(|f| !f.is_empty())
            .or(config.email_from.as_deref());
        // The sandbox with no `[email]` settings: its own SMTP listener takes the mail, so
        // `GET /_sandbox/state` shows every message a person would have received.
        let sandbox_smtp = match (given, &config.smtp, self.0.sandbox_url()) {
            (None, None, Some(url)) => self.sandbox_smtp(url).await,
            _ => None,
        };
        let config = match sandbox_smtp {
            Some(smtp) => NotifyConfig {
                email_from: Some(SANDBOX_FROM.to_string()),
                smtp: Some(smtp),
                ..config.clone()
            },
            None => config.clone(),
        };
        let config = &config;
        let from = given
            .or(config.email_from.as_deref())
            .ok_or_else(|| {
                StepError::permanent(
                    "not_configured",
                    "no address to send from: set [email] from in tenure.toml, or give `from:`",
                )
            })?
            .to_string();
        let subject = param(p, "subject")?;
        let body = param(p, "body")?;
        let to = addresses(&p["to"]);
        let cc = addresses(&p["cc"]);
        if to.is_empty() {
            return Err(StepError::permanent(
                "invalid_params",
                "`to` needs at least one address",
            ));
        }
        let html = tenure_steps::markdown::to_html(body);
        let key = call.idempotency_key();
        if let Some(smtp) = &config.smtp {
            let email = crate::smtp::Email {
                from: &from,
                to: &to,
                cc: &cc,
                subject,
                markdown: body,
                html,
                key: &key,
            };
            let id = crate::smtp::send(smtp, &email, call.requests).await?;
            return Ok(Outcome::Done(json!({"message_id": id})));
        }
        // The mailbox may live in another tenant (the MSP's own): act there.
        let context;
        let client = match &config.email_tenant {
            Some(t) => {
                context = json!({"tenant": {"id": t, "domain": t}});
                self.0.client(&Call {
                    context: &context,
                    ..call
                })?
            }
            None => self.0.client(&call)?,
        };
        let message = json!({
            "message": {
                "subject": subject,
                "body": {"contentType": "HTML", "content": html},
                "toRecipients": recipients(&to),
                "ccRecipients": recipients(&cc),
                "internetMessageHeaders": [{"name": "X-Tenure-Instance", "value": key}],
            },
            "saveToSentItems": true,
        });
        let url = format!(
            "{}/users/{}/sendMail",
            client.endpoints.graph,
            urlencode(&from)
        );
        client
            .send(
                &format!("send mail as {from}"),
                Method::POST,
                &url,
                Some(&message),
                &[],
            )
            .await
            .map_err(step_error)?;
        Ok(Outcome::Done(json!({"message_id": key})))
    }
}

/// The From address of approval and notification email sent to the sandbox's SMTP listener
/// when nothing else is configured.
pub const SANDBOX_FROM: &str = "tenure@msp.example";

impl Email {
    /// The sandbox's SMTP listener, as its `/_sandbox/health` names it (none if it has none).
    async fn sandbox_smtp(&self, url: &str) -> Option<crate::smtp::SmtpConfig> {
        let health: Value = self
            .0
            .http()
            .get(format!("{url}/_sandbox/health"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let addr = health["smtp"].as_str()?.parse().ok()?;
        Some(crate::smtp::SmtpConfig::sandbox(addr))
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_has_a_title_text_facts_and_buttons() {
        let c = card(
            Some("Offboarded"),
            "**Megan** is done",
            &json!({"Tenant": "Contoso", "Devices": 2}),
            &json!({"Open the run": "https://tenure/runs/1"}),
        );
        let content = &c["attachments"][0]["content"];
        assert_eq!(content["body"][0]["weight"], "Bolder");
        let facts = content["body"][2]["facts"].as_array().unwrap();
        assert!(facts.contains(&json!({"title": "Tenant", "value": "Contoso"})));
        assert!(facts.contains(&json!({"title": "Devices", "value": "2"})));
        assert_eq!(content["actions"][0]["type"], "Action.OpenUrl");
    }
}
