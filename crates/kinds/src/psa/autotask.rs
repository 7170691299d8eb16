//! Autotask's wire format (api-facts §6.3): the `ApiIntegrationCode`, `UserName` and `Secret`
//! headers on every request; `Contacts/query` (filters), contacts created and changed under
//! their company (`isActive` is 0 or 1), `Tickets/{id}` and `PATCH Tickets` (`status` picklist,
//! `title`), and `Tickets/{id}/Notes`.

use reqwest::Method;
use serde_json::{json, Value};
use tenure_steps::Requests;
use tenure_vendors::VendorError;

use super::{send, AutotaskConfig, Contact, Fields, Status, Ticket};

/// Autotask for one attempt.
pub struct Autotask<'a> {
    pub config: &'a AutotaskConfig,
    pub http: &'a reqwest::Client,
    pub requests: &'a Requests,
}

fn contact(c: &Value) -> Contact {
    let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Contact {
        id: c["id"].as_u64().unwrap_or_default(),
        client: c["companyID"].as_u64().unwrap_or_default(),
        first_name: text("firstName"),
        last_name: text("lastName"),
        email: text("emailAddress"),
        phone: text("phone"),
        title: text("title"),
        active: c["isActive"].as_i64().unwrap_or(1) == 1,
    }
}

fn item_id(v: &Value, what: &str) -> Result<u64, VendorError> {
    v["itemId"].as_u64().ok_or_else(|| {
        VendorError::permanent("bad_response", format!("{what}: the answer has no itemId"))
    })
}

impl Autotask<'_> {
    async fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, VendorError> {
        let c = self.config;
        let headers = [
            ("ApiIntegrationCode".to_string(), c.integration_code.clone()),
            ("UserName".to_string(), c.username.clone()),
            ("Secret".to_string(), c.secret.expose().to_string()),
        ];
        let url = format!("{}/V1.0{path}", c.url.trim_end_matches('/'));
        send(self.http, self.requests, what, method, &url, &headers, body).await
    }

    /// Every contact matching `filter`, following `nextPageUrl`.
    async fn query(&self, what: &str, filter: Value) -> Result<Vec<Contact>, VendorError> {
        let search = json!({"MaxRecords": 500, "IncludeFields": [], "filter": filter});
        let mut page = self
            .call(what, Method::POST, "/Contacts/query", Some(&search))
            .await?;
        let mut out: Vec<Contact> = Vec::new();
        loop {
            out.extend(page["items"].as_array().into_iter().flatten().map(contact));
            let Some(next) = page["pageDetails"]["nextPageUrl"]
                .as_str()
                .map(str::to_string)
            else {
                break;
            };
            let headers = [
                (
                    "ApiIntegrationCode".to_string(),
                    self.config.integration_code.clone(),
                ),
                ("UserName".to_string(), self.config.username.clone()),
                (
                    "Secret".to_string(),
                    self.config.secret.expose().to_string(),
                ),
            ];
            page = send(
                self.http,
                self.requests,
                what,
                Method::GET,
                &next,
                &headers,
                None,
            )
            .await?;
        }
        Ok(out)
    }

    pub async fn find_by_email(
        &self,
        client: Option<u64>,
        email: &str,
    ) -> Result<Vec<Contact>, VendorError> {
        let mut filter = vec![json!({"op": "eq", "field": "emailAddress", "value": email})];
        if let Some(c) = client {
            filter.push(json!({"op": "eq", "field": "companyID", "value": c}));
        }
        self.query(&format!("find Autotask contact {email}"), json!(filter))
            .await
    }

    pub async fn get(&self, id: u64) -> Result<Option<Contact>, VendorError> {
        let found = self
            .query(
                &format!("get Autotask contact {id}"),
                json!([{"op": "eq", "field": "id", "value": id}]),
            )
            .await?;
        Ok(found.into_iter().next())
    }

    pub async fn create(&self, client: u64, f: &Fields) -> Result<u64, VendorError> {
        let mut body = json!({
            "companyID": client,
            "firstName": f.first_name,
            "lastName": f.last_name,
            "emailAddress": f.email,
            "isActive": 1,
        });
        if let Some(p) = &f.phone {
            body["phone"] = json!(p);
        }
        if let Some(t) = &f.title {
            body["title"] = json!(t);
        }
        let what = format!(
            "create Autotask contact {}",
            f.email.as_deref().unwrap_or_default()
        );
        let created = self
            .call(
                &what,
                Method::POST,
                &format!("/Companies/{client}/Contacts"),
                Some(&body),
            )
            .await?;
        item_id(&created, &what)
    }

    pub async fn update(
        &self,
        c: &Contact,
        f: &Fields,
        active: Option<bool>,
    ) -> Result<(), VendorError> {
        // PATCH sends only the changed fields plus `id`.
        let mut body = json!({"id": c.id});
        for (key, value) in [
            ("firstName", &f.first_name),
            ("lastName", &f.last_name),
            ("emailAddress", &f.email),
            ("phone", &f.phone),
            ("title", &f.title),
        ] {
            if let Some(v) = value {
                body[key] = json!(v);
            }
        }
        if let Some(a) = active {
            body["isActive"] = json!(i32::from(a));
        }
        self.call(
            &format!("update Autotask contact {}", c.id),
            Method::PATCH,
            &format!("/Companies/{}/Contacts", c.client),
            Some(&body),
        )
        .await?;
        Ok(())
    }

    pub async fn notes(&self, ticket: u64) -> Result<Vec<(u64, String)>, VendorError> {
        let found = self
            .call(
                &format!("list the notes of Autotask ticket {ticket}"),
                Method::GET,
                &format!("/Tickets/{ticket}/Notes"),
                None,
            )
            .await?;
        Ok(found["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                (
                    n["id"].as_u64().unwrap_or_default(),
                    n["description"].as_str().unwrap_or_default().to_string(),
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
            "title": "Tenure",
            "description": text,
            "noteType": self.config.note_type,
            "publish": if internal { 2 } else { 1 },
        });
        let what = format!("add a note to Autotask ticket {ticket}");
        let added = self
            .call(
                &what,
                Method::POST,
                &format!("/Tickets/{ticket}/Notes"),
                Some(&body),
            )
            .await?;
        item_id(&added, &what)
    }

    pub async fn ticket(&self, ticket: u64) -> Result<Ticket, VendorError> {
        let t = self
            .call(
                &format!("get Autotask ticket {ticket}"),
                Method::GET,
                &format!("/Tickets/{ticket}"),
                None,
            )
            .await?;
        let item = &t["item"];
        Ok(Ticket {
            status_id: item["status"].as_u64(),
            status: None,
            summary: item["title"].as_str().unwrap_or_default().to_string(),
        })
    }

    pub async fn update_ticket(
        &self,
        ticket: u64,
        status: Option<&Status>,
        summary: Option<&str>,
    ) -> Result<(), VendorError> {
        let mut body = json!({"id": ticket});
        if let Some(Status::Id(id)) = status {
            body["status"] = json!(id);
        }
        if let Some(s) = summary {
            body["title"] = json!(s);
        }
        self.call(
            &format!("update Autotask ticket {ticket}"),
            Method::PATCH,
            "/Tickets",
            Some(&body),
        )
        .await?;
        Ok(())
    }
}
