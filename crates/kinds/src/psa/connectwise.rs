//! ConnectWise Manage's wire format (api-facts §6.2): Basic `company+public:private` with the
//! integration's `clientId` header on every request; `/company/contacts` (searched by company
//! and `communicationItems/value`, created, changed by JSON Patch), `/service/tickets/{id}`
//! (JSON Patch of `status` by name and `summary`) and its `/notes`.

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use tenure_steps::Requests;
use tenure_vendors::VendorError;

use super::{send, with_query, ConnectWiseConfig, Contact, Fields, Status, Ticket};

/// ConnectWise for one attempt.
pub struct ConnectWise<'a> {
    pub config: &'a ConnectWiseConfig,
    pub http: &'a reqwest::Client,
    pub requests: &'a Requests,
}

/// The value of the first communication item of `kind` (`Email`, `Phone`).
fn communication(c: &Value, kind: &str) -> String {
    c["communicationItems"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["communicationType"] == kind)
        .and_then(|i| i["value"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn contact(c: &Value) -> Contact {
    let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Contact {
        id: c["id"].as_u64().unwrap_or_default(),
        client: c["company"]["id"].as_u64().unwrap_or_default(),
        first_name: text("firstName"),
        last_name: text("lastName"),
        email: communication(c, "Email"),
        phone: communication(c, "Phone"),
        title: text("title"),
        active: !c["inactiveFlag"].as_bool().unwrap_or(false),
    }
}

impl ConnectWise<'_> {
    async fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, VendorError> {
        let c = self.config;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}+{}:{}",
            c.company,
            c.public_key,
            c.private_key.expose()
        ));
        let headers = [
            ("Authorization".to_string(), format!("Basic {basic}")),
            ("clientId".to_string(), c.client_id.clone()),
            (
                "Accept".to_string(),
                "application/vnd.connectwise.com+json; version=2022.1".to_string(),
            ),
        ];
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", c.url)
        };
        send(self.http, self.requests, what, method, &url, &headers, body).await
    }

    fn items(&self, email: &str, phone: &str) -> Value {
        let mut items = vec![
            json!({"type": {"id": self.config.email_type_id}, "value": email, "defaultFlag": true, "communicationType": "Email"}),
        ];
        if !phone.is_empty() {
            items.push(json!({"type": {"id": self.config.phone_type_id}, "value": phone, "defaultFlag": true, "communicationType": "Phone"}));
        }
        json!(items)
    }

    pub async fn find_by_email(
        &self,
        client: Option<u64>,
        email: &str,
    ) -> Result<Vec<Contact>, VendorError> {
        let mut q = vec![
            (
                "childConditions",
                format!("communicationItems/value=\"{}\"", email.replace('"', "")),
            ),
            ("pageSize", "1000".to_string()),
        ];
        if let Some(c) = client {
            q.push(("conditions", format!("company/id={c}")));
        }
        let url = with_query(&format!("{}/company/contacts", self.config.url), &q);
        let found = self
            .call(
                &format!("find ConnectWise contact {email}"),
                Method::GET,
                &url,
                None,
            )
            .await?;
        Ok(found
            .as_array()
            .into_iter()
            .flatten()
            .map(contact)
            .collect())
    }

    pub async fn get(&self, id: u64) -> Result<Option<Contact>, VendorError> {
        match self
            .call(
                &format!("get ConnectWise contact {id}"),
                Method::GET,
                &format!("/company/contacts/{id}"),
                None,
            )
            .await
        {
            Ok(c) => Ok(Some(contact(&c))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn create(&self, client: u64, f: &Fields) -> Result<u64, VendorError> {
        let email = f.email.clone().unwrap_or_default();
        let mut body = json!({
            "firstName": f.first_name,
            "lastName": f.last_name,
            "company": {"id": client},
            "communicationItems": self.items(&email, f.phone.as_deref().unwrap_or_default()),
            "inactiveFlag": false,
        });
        if let Some(t) = &f.title {
            body["title"] = json!(t);
        }
        let created = self
            .call(
                &format!("create ConnectWise contact {email}"),
                Method::POST,
                "/company/contacts",
                Some(&body),
            )
            .await?;
        created["id"].as_u64().ok_or_else(|| {
            VendorError::permanent(
                "bad_response",
                "create ConnectWise contact: the answer has no id",
            )
        })
    }

    pub async fn update(
        &self,
        c: &Contact,
        f: &Fields,
        active: Option<bool>,
    ) -> Result<(), VendorError> {
        let mut ops = Vec::new();
        for (path, value) in [
            ("firstName", &f.first_name),
            ("lastName", &f.last_name),
            ("title", &f.title),
        ] {
            if let Some(v) = value {
                ops.push(json!({"op": "replace", "path": path, "value": v}));
            }
        }
        if f.email.is_some() || f.phone.is_some() {
            let email = f.email.as_deref().unwrap_or(&c.email);
            let phone = f.phone.as_deref().unwrap_or(&c.phone);
            ops.push(json!({"op": "replace", "path": "communicationItems", "value": self.items(email, phone)}));
        }
        if let Some(a) = active {
            ops.push(json!({"op": "replace", "path": "inactiveFlag", "value": !a}));
        }
        self.call(
            &format!("update ConnectWise contact {}", c.id),
            Method::PATCH,
            &format!("/company/contacts/{}", c.id),
            Some(&json!(ops)),
        )
        .await?;
        Ok(())
    }

    pub async fn notes(&self, ticket: u64) -> Result<Vec<(u64, String)>, VendorError> {
        let found = self
            .call(
                &format!("list the notes of ConnectWise ticket {ticket}"),
                Method::GET,
                &format!("/service/tickets/{ticket}/notes?pageSize=1000"),
                None,
            )
            .await?;
        Ok(found
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                (
                    n["id"].as_u64().unwrap_or_default(),
                    n["text"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }

    pub async fn add_note(
        &self,
        ticket: u64,
        text: &str,
        internal: bool,
    ) -> Result<u64, VendorError> {
        let body = json!({
            "text": text,
            "detailDescriptionFlag": !internal,
            "internalAnalysisFlag": internal,
            "resolutionFlag": false,
            "customerUpdatedFlag": false,
            "processNotifications": false,
        });
        let added = self
            .call(
                &format!("add a note to ConnectWise ticket {ticket}"),
                Method::POST,
                &format!("/service/tickets/{ticket}/notes"),
                Some(&body),
            )
            .await?;
        added["id"].as_u64().ok_or_else(|| {
            VendorError::permanent(
                "bad_response",
                "add a ConnectWise note: the answer has no id",
            )
        })
    }

    pub async fn ticket(&self, ticket: u64) -> Result<Ticket, VendorError> {
        let t = self
            .call(
                &format!("get ConnectWise ticket {ticket}"),
                Method::GET,
                &format!("/service/tickets/{ticket}"),
                None,
            )
            .await?;
        Ok(Ticket {
            status_id: None,
            status: t["status"]["name"].as_str().map(str::to_string),
            summary: t["summary"].as_str().unwrap_or_default().to_string(),
        })
    }

    pub async fn update_ticket(
        &self,
        ticket: u64,
        status: Option<&Status>,
        summary: Option<&str>,
    ) -> Result<(), VendorError> {
        let mut ops = Vec::new();
        match status {
            Some(Status::Name(n)) => {
                ops.push(json!({"op": "replace", "path": "status", "value": {"name": n}}))
            }
            Some(Status::Id(id)) => {
                ops.push(json!({"op": "replace", "path": "status", "value": {"id": id}}))
            }
            None => {}
        }
        if let Some(s) = summary {
            ops.push(json!({"op": "replace", "path": "summary", "value": s}));
        }
        self.call(
            &format!("update ConnectWise ticket {ticket}"),
            Method::PATCH,
            &format!("/service/tickets/{ticket}"),
            Some(&json!(ops)),
        )
        .await?;
        Ok(())
    }
}
