//! The PSA kinds (`psa.create_contact`, `psa.update_contact`, `psa.deactivate_contact`,
//! `psa.add_ticket_note`, `psa.update_ticket`) over HaloPSA, ConnectWise Manage and Autotask.
//!
//! Each provider module speaks its PSA's wire format ([`halo`], [`connectwise`], [`autotask`])
//! behind one shape, [`Api`]; the kinds here decide what to do, the same way for every PSA, and
//! look before they act: a contact with the email already at the client is adopted, a field
//! already right is not written, a ticket note carries a marker with the step instance's
//! idempotency key and is looked for before it is posted.

mod autotask;
mod config;
mod connectwise;
mod halo;

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use tenure_steps::{Call, Outcome, Registry, Requests, StepError};
use tenure_vendors::VendorError;

pub use config::{AutotaskConfig, ConnectWiseConfig, HaloConfig, PsaConfig, PsaProvider};

use crate::vendors::{param, step_error, Vendors};

/// A contact as every PSA has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    /// Its id in the PSA.
    pub id: u64,
    /// The client (company) it belongs to.
    pub client: u64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email address.
    pub email: String,
    /// Phone number.
    pub phone: String,
    /// Job title.
    pub title: String,
    /// Not deactivated.
    pub active: bool,
}

/// The contact fields a step sets (`None`: leave as is).
#[derive(Clone, Debug, Default)]
pub struct Fields {
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Job title.
    pub title: Option<String>,
}

impl Fields {
    fn from_params(p: &Value) -> Fields {
        // Empty means absent: a template that renders empty leaves the field as it is.
        let text = |k: &str| p[k].as_str().filter(|v| !v.is_empty()).map(str::to_string);
        Fields {
            first_name: text("first_name"),
            last_name: text("last_name"),
            email: text("email"),
            phone: text("phone"),
            title: text("job_title"),
        }
    }

    /// Only what differs from `c` (emails compared without case).
    fn differing(&self, c: &Contact) -> Fields {
        let keep = |want: &Option<String>, have: &str| want.clone().filter(|w| w != have);
        Fields {
            first_name: keep(&self.first_name, &c.first_name),
            last_name: keep(&self.last_name, &c.last_name),
            email: self
                .email
                .clone()
                .filter(|e| !e.eq_ignore_ascii_case(&c.email)),
            phone: keep(&self.phone, &c.phone),
            title: keep(&self.title, &c.title),
        }
    }

    fn names(&self) -> Vec<&'static str> {
        [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("email", &self.email),
            ("phone", &self.phone),
            ("job_title", &self.title),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(n, _)| n)
        .collect()
    }
}

/// A ticket's status and summary. `status_id` is set by the PSAs that number statuses (Halo,
/// Autotask), `status` by ConnectWise, which names them.
#[derive(Clone, Debug, Default)]
pub struct Ticket {
    /// The numeric status.
    pub status_id: Option<u64>,
    /// The status name.
    pub status: Option<String>,
    /// The summary (Autotask: title).
    pub summary: String,
}

/// A status to set: by id (Halo, Autotask) or by name (ConnectWise).
#[derive(Clone, Debug)]
pub enum Status {
    /// A numeric status.
    Id(u64),
    /// A status name.
    Name(String),
}

/// Sends one JSON request through the vendors layer (summary journaled, `Retry-After` kept,
/// connection failures transient) and classifies a non-2xx answer. `Ok(None)` is a 404 when
/// `absent_ok`.
async fn send(
    http: &reqwest::Client,
    requests: &Requests,
    what: &str,
    method: Method,
    url: &str,
    headers: &[(String, String)],
    body: Option<&Value>,
) -> Result<Value, VendorError> {
    let resp = tenure_vendors::request(http, requests, what, method, url, headers, body).await?;
    if !(200..300).contains(&resp.status) {
        return Err(VendorError::from_response(
            what,
            resp.status,
            resp.retry_after,
            &resp.text,
        ));
    }
    if resp.text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&resp.text).map_err(|_| {
        VendorError::permanent("bad_response", format!("{what}: the answer is not JSON"))
    })
}

/// `url` with `params` as its query string, encoded.
fn with_query(url: &str, params: &[(&str, String)]) -> String {
    reqwest::Url::parse_with_params(url, params)
        .map(String::from)
        .unwrap_or_else(|_| url.to_string())
}

/// One PSA, for one attempt.
enum Api<'a> {
    Halo(halo::Halo<'a>),
    ConnectWise(connectwise::ConnectWise<'a>),
    Autotask(autotask::Autotask<'a>),
}

impl Api<'_> {
    async fn find_by_email(
        &self,
        client: Option<u64>,
        email: &str,
    ) -> Result<Option<Contact>, VendorError> {
        let found = match self {
            Api::Halo(a) => a.find_by_email(client, email).await?,
            Api::ConnectWise(a) => a.find_by_email(client, email).await?,
            Api::Autotask(a) => a.find_by_email(client, email).await?,
        };
        // Every PSA's search is looser than equality: keep the exact address, the active first.
        let mut exact: Vec<Contact> = found
            .into_iter()
            .filter(|c| c.email.eq_ignore_ascii_case(email))
            .filter(|c| client.is_none_or(|id| c.client == id))
            .collect();
        exact.sort_by_key(|c| (!c.active, c.id));
        Ok(exact.into_iter().next())
    }

    async fn get(&self, id: u64) -> Result<Option<Contact>, VendorError> {
        match self {
            Api::Halo(a) => a.get(id).await,
            Api::ConnectWise(a) => a.get(id).await,
            Api::Autotask(a) => a.get(id).await,
        }
    }

    async fn create(&self, client: u64, f: &Fields) -> Result<u64, VendorError> {
        match self {
            Api::Halo(a) => a.create(client, f).await,
            Api::ConnectWise(a) => a.create(client, f).await,
            Api::Autotask(a) => a.create(client, f).await,
        }
    }

    async fn update(&self, c: &Contact, f: &Fields) -> Result<(), VendorError> {
        match self {
            Api::Halo(a) => a.update(c, f, None).await,
            Api::ConnectWise(a) => a.update(c, f, None).await,
            Api::Autotask(a) => a.update(c, f, None).await,
        }
    }

    async fn set_active(&self, c: &Contact, active: bool) -> Result<(), VendorError> {
        let none = Fields::default();
        match self {
            Api::Halo(a) => a.update(c, &none, Some(active)).await,
            Api::ConnectWise(a) => a.update(c, &none, Some(active)).await,
            Api::Autotask(a) => a.update(c, &none, Some(active)).await,
        }
    }

    /// Every note of `ticket`: (id, text).
    async fn notes(&self, ticket: u64) -> Result<Vec<(u64, String)>, VendorError> {
        match self {
            Api::Halo(a) => a.notes(ticket).await,
            Api::ConnectWise(a) => a.notes(ticket).await,
            Api::Autotask(a) => a.notes(ticket).await,
        }
    }

    async fn add_note(&self, ticket: u64, text: &str, internal: bool) -> Result<u64, VendorError> {
        match self {
            Api::Halo(a) => a.add_note(ticket, text, internal).await,
            Api::ConnectWise(a) => a.add_note(ticket, text, internal).await,
            Api::Autotask(a) => a.add_note(ticket, text, internal).await,
        }
    }

    async fn ticket(&self, ticket: u64) -> Result<Ticket, VendorError> {
        match self {
            Api::Halo(a) => a.ticket(ticket).await,
            Api::ConnectWise(a) => a.ticket(ticket).await,
            Api::Autotask(a) => a.ticket(ticket).await,
        }
    }

    /// The status to set for `name`: a configured name, or a number as it is (Halo, Autotask);
    /// ConnectWise takes names.
    fn status(&self, name: &str) -> Result<Status, StepError> {
        let statuses = match self {
            Api::Halo(a) => &a.config.statuses,
            Api::Autotask(a) => &a.config.statuses,
            Api::ConnectWise(_) => return Ok(Status::Name(name.to_string())),
        };
        if let Ok(id) = name.parse::<u64>() {
            return Ok(Status::Id(id));
        }
        statuses
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, id)| Status::Id(*id))
            .ok_or_else(|| {
                let known: Vec<&str> = statuses.keys().map(String::as_str).collect();
                StepError::permanent(
                    "unknown_status",
                    format!(
                        "ticket status `{name}` is not configured for {} (known: {}); add it under `statuses`",
                        self.provider(),
                        known.join(", ")
                    ),
                )
            })
    }

    async fn update_ticket(
        &self,
        ticket: u64,
        status: Option<&Status>,
        summary: Option<&str>,
    ) -> Result<(), VendorError> {
        match self {
            Api::Halo(a) => a.update_ticket(ticket, status, summary).await,
            Api::ConnectWise(a) => a.update_ticket(ticket, status, summary).await,
            Api::Autotask(a) => a.update_ticket(ticket, status, summary).await,
        }
    }

    fn provider(&self) -> PsaProvider {
        match self {
            Api::Halo(_) => PsaProvider::Halo,
            Api::ConnectWise(_) => PsaProvider::ConnectWise,
            Api::Autotask(_) => PsaProvider::Autotask,
        }
    }

    /// The PSA client the run's tenant is mapped to.
    fn client_of(&self, tenant: &str) -> Option<u64> {
        let clients = match self {
            Api::Halo(a) => &a.config.clients,
            Api::ConnectWise(a) => &a.config.clients,
            Api::Autotask(a) => &a.config.clients,
        };
        clients.get(tenant).copied()
    }
}

/// The configured PSAs and what the kinds share across attempts (the HTTP client, Halo's
/// token).
pub struct Psa {
    config: PsaConfig,
    http: reqwest::Client,
    halo_token: halo::TokenSlot,
}

impl Psa {
    fn api<'a>(&'a self, call: &'a Call<'_>) -> Result<Api<'a>, StepError> {
        let provider = self
            .config
            .provider(call.params["provider"].as_str())
            .map_err(|m| StepError::permanent("not_configured", m))?;
        let (http, requests) = (&self.http, call.requests);
        Ok(match provider {
            PsaProvider::Halo => Api::Halo(halo::Halo {
                config: self.config.halo.as_ref().expect("checked by provider()"),
                http,
                requests,
                token: &self.halo_token,
            }),
            PsaProvider::ConnectWise => Api::ConnectWise(connectwise::ConnectWise {
                config: self.config.connectwise.as_ref().expect("checked"),
                http,
                requests,
            }),
            PsaProvider::Autotask => Api::Autotask(autotask::Autotask {
                config: self.config.autotask.as_ref().expect("checked"),
                http,
                requests,
            }),
        })
    }
}

/// Registers the five PSA kinds over `vendors`' PSA configuration.
pub fn register(registry: &mut Registry, vendors: &Vendors) {
    let psa = Arc::new(Psa {
        config: vendors.psa().clone(),
        http: vendors.http().clone(),
        halo_token: halo::TokenSlot::default(),
    });
    registry.insert("psa.create_contact", CreateContact(psa.clone()));
    registry.insert("psa.update_contact", UpdateContact(psa.clone()));
    registry.insert("psa.deactivate_contact", DeactivateContact(psa.clone()));
    registry.insert("psa.add_ticket_note", AddTicketNote(psa.clone()));
    registry.insert("psa.update_ticket", UpdateTicket(psa));
}

/// The run's tenant id (what `[psa.*] clients` maps).
fn tenant_of<'a>(call: &'a Call<'_>) -> &'a str {
    call.context["tenant"]["id"].as_str().unwrap_or_default()
}

/// A numeric id parameter.
fn id_param(params: &Value, name: &str) -> Result<u64, StepError> {
    let raw = match &params[name] {
        Value::Number(n) => n.to_string(),
        other => param(params, name).map(str::to_string).or_else(|e| {
            if other.is_null() {
                Err(e)
            } else {
                Ok(other.to_string())
            }
        })?,
    };
    raw.trim().parse().map_err(|_| {
        StepError::permanent(
            "invalid_params",
            format!("`{name}` must be a numeric id, not `{raw}`"),
        )
    })
}

/// The client a contact belongs to: `client:`, else the tenant's mapping.
fn client(api: &Api<'_>, call: &Call<'_>) -> Result<u64, StepError> {
    if !call.params["client"].is_null() && call.params["client"] != "" {
        return id_param(call.params, "client");
    }
    let tenant = tenant_of(call);
    api.client_of(tenant).ok_or_else(|| {
        StepError::permanent(
            "no_client",
            format!(
                "tenant `{tenant}` has no {0} client: map it under [psa.{0}] clients in tenure.toml, or give `client:`",
                api.provider()
            ),
        )
    })
}

/// The contact a `contact:` parameter names (an id, or an email at the tenant's client).
async fn resolve(api: &Api<'_>, call: &Call<'_>) -> Result<Contact, StepError> {
    let named = param(call.params, "contact")?;
    let found = if named.contains('@') {
        let client = api.client_of(tenant_of(call));
        api.find_by_email(client, named).await
    } else {
        let id = named.trim().parse::<u64>().map_err(|_| {
            StepError::permanent(
                "invalid_params",
                format!("`contact` must be a contact id or an email address, not `{named}`"),
            )
        })?;
        api.get(id).await
    };
    found.map_err(step_error)?.ok_or_else(|| {
        StepError::permanent(
            "not_found",
            format!("{} has no contact {named}", api.provider()),
        )
    })
}

struct CreateContact(Arc<Psa>);
struct UpdateContact(Arc<Psa>);
struct DeactivateContact(Arc<Psa>);
struct AddTicketNote(Arc<Psa>);
struct UpdateTicket(Arc<Psa>);

crate::executor!(
    CreateContact,
    UpdateContact,
    DeactivateContact,
    AddTicketNote,
    UpdateTicket
);

impl CreateContact {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let api = self.0.api(&call)?;
        let client = client(&api, &call)?;
        let email = param(call.params, "email")?;
        let fields = Fields::from_params(call.params);
        param(call.params, "first_name")?;
        param(call.params, "last_name")?;
        // Look before acting: a contact with this email at this client is adopted as it is
        // (an active one first), never duplicated.
        if let Some(c) = api
            .find_by_email(Some(client), email)
            .await
            .map_err(step_error)?
        {
            return Ok(Outcome::Done(
                json!({"contact_id": c.id.to_string(), "created": false}),
            ));
        }
        let id = api.create(client, &fields).await.map_err(step_error)?;
        Ok(Outcome::Done(
            json!({"contact_id": id.to_string(), "created": true}),
        ))
    }
}

impl UpdateContact {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let api = self.0.api(&call)?;
        let contact = resolve(&api, &call).await?;
        let changes = Fields::from_params(call.params).differing(&contact);
        let changed = changes.names();
        if !changed.is_empty() {
            api.update(&contact, &changes).await.map_err(step_error)?;
        }
        Ok(Outcome::Done(
            json!({"contact_id": contact.id.to_string(), "changed": changed}),
        ))
    }
}

impl DeactivateContact {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let api = self.0.api(&call)?;
        let contact = resolve(&api, &call).await?;
        if contact.active {
            api.set_active(&contact, false).await.map_err(step_error)?;
        }
        Ok(Outcome::Done(json!({
            "contact_id": contact.id.to_string(),
            "changed": contact.active,
        })))
    }
}

/// The marker that makes a ticket note findable: the step instance's idempotency key.
fn marker(call: &Call<'_>) -> String {
    format!("[tenure {}]", call.idempotency_key())
}

impl AddTicketNote {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let api = self.0.api(&call)?;
        let ticket = id_param(call.params, "ticket")?;
        let internal = call.params["internal"].as_bool().unwrap_or(true);
        let marker = marker(&call);
        // The same note for the same run and step is never added twice: a note carrying this
        // instance's marker is the one an earlier attempt added.
        let notes = api.notes(ticket).await.map_err(step_error)?;
        if let Some((id, _)) = notes.iter().find(|(_, text)| text.contains(&marker)) {
            return Ok(Outcome::Done(
                json!({"note_id": id.to_string(), "added": false}),
            ));
        }
        // The body is required, and the engine never passes an empty one (empty means
        // absent): `{{run.report}}` gives the run's report so far.
        let body = param(call.params, "body")?.trim();
        let text = format!("{body}\n\n{marker}");
        let id = api
            .add_note(ticket, &text, internal)
            .await
            .map_err(step_error)?;
        Ok(Outcome::Done(
            json!({"note_id": id.to_string(), "added": true}),
        ))
    }
}

impl UpdateTicket {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let api = self.0.api(&call)?;
        let ticket = id_param(call.params, "ticket")?;
        let text = |k: &str| call.params[k].as_str().filter(|s| !s.is_empty());
        let status = text("status").map(|s| api.status(s)).transpose()?;
        let current = api.ticket(ticket).await.map_err(step_error)?;
        let status = status.filter(|s| match s {
            Status::Id(id) => current.status_id != Some(*id),
            Status::Name(n) => !current
                .status
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(n)),
        });
        let summary = text("summary").filter(|s| *s != current.summary);
        let mut changed = Vec::new();
        if status.is_some() {
            changed.push("status");
        }
        if summary.is_some() {
            changed.push("summary");
        }
        if !changed.is_empty() {
            api.update_ticket(ticket, status.as_ref(), summary)
                .await
                .map_err(step_error)?;
        }
        Ok(Outcome::Done(
            json!({"ticket": ticket.to_string(), "changed": changed}),
        ))
    }
}

/// A note's Markdown (a run report, a runbook's text) as HTML for Halo's `note_html`: raw
/// HTML in it is escaped.
fn to_html(text: &str) -> String {
    tenure_steps::markdown::to_html(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_differing_fields_are_written() {
        let have = Contact {
            first_name: "Ada".into(),
            email: "ada@x.example".into(),
            title: "Engineer".into(),
            ..Contact::default()
        };
        let want = Fields {
            first_name: Some("Ada".into()),
            email: Some("ADA@x.example".into()),
            title: Some("Lead".into()),
            ..Fields::default()
        };
        assert_eq!(want.differing(&have).names(), ["job_title"]);
    }

    #[test]
    fn notes_are_escaped_for_html() {
        let html = to_html("a<b>\n&\n\n- **done**");
        assert!(html.contains("a&lt;b&gt;"), "{html}");
        assert!(html.contains("&amp;"), "{html}");
        assert!(html.contains("<li><strong>done</strong></li>"), "{html}");
    }
}
