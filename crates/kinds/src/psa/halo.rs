//! HaloPSA's wire format (api-facts §6.1): a client-credentials token from `{url}/auth/token`
//! (form body, `scope=all`), then `/api/Users` (contacts; POSTed arrays upsert: with `id` they
//! update, `inactive` deactivates), `/api/Site` (a new contact needs its client's site),
//! `/api/Actions` (ticket notes, which need an `outcome_id`) and `/api/Tickets`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tenure_steps::{RequestSummary, Requests};
use tenure_vendors::VendorError;
use tokio::sync::Mutex;

use super::{send, to_html, with_query, Contact, Fields, HaloConfig, Status, Ticket};

/// Halo's bearer token, shared by every attempt, until a minute before it expires.
#[derive(Default)]
pub struct TokenSlot(Mutex<Option<(String, Instant)>>);

/// HaloPSA for one attempt.
pub struct Halo<'a> {
    pub config: &'a HaloConfig,
    pub http: &'a reqwest::Client,
    pub requests: &'a Requests,
    pub token: &'a TokenSlot,
}

fn contact(u: &Value) -> Contact {
    let text = |k: &str| u[k].as_str().unwrap_or_default().to_string();
    Contact {
        id: u["id"].as_u64().unwrap_or_default(),
        client: u["client_id"].as_u64().unwrap_or_default(),
        first_name: text("firstname"),
        last_name: text("surname"),
        email: text("emailaddress"),
        phone: text("phonenumber"),
        title: text("title"),
        active: !u["inactive"].as_bool().unwrap_or(false),
    }
}

/// The first object of an upsert's answer (an object or an array of them).
fn first(v: &Value) -> &Value {
    v.as_array().and_then(|a| a.first()).unwrap_or(v)
}

impl Halo<'_> {
    async fn bearer(&self) -> Result<String, VendorError> {
        let mut slot = self.token.0.lock().await;
        if let Some((token, until)) = slot.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let auth = self
            .config
            .auth_url
            .clone()
            .unwrap_or_else(|| format!("{}/auth", self.config.url));
        let mut url = format!("{}/token", auth.trim_end_matches('/'));
        if let Some(t) = &self.config.tenant {
            url = with_query(&url, &[("tenant", t.clone())]);
        }
        let what = "sign in to HaloPSA";
        let started = Instant::now();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.expose()),
            ("scope", "all"),
        ];
        let path = url
            .split_once("://")
            .and_then(|(_, r)| r.find('/').map(|i| r[i..].to_string()))
            .unwrap_or_default();
        let resp = match self.http.post(&url).form(&form).send().await {
            Ok(r) => r,
            Err(e) => {
                self.requests
                    .record(RequestSummary::new("POST", &path, None, started));
                return Err(VendorError::connection(what, &e));
            }
        };
        let status = resp.status().as_u16();
        let wait = tenure_vendors::parse_retry_after(
            resp.headers()
                .get("retry-after")
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
            std::time::SystemTime::now(),
        );
        let text = resp
            .text()
            .await
            .map_err(|e| VendorError::connection(what, &e))?;
        self.requests
            .record(RequestSummary::new("POST", &path, Some(status), started));
        if !(200..300).contains(&status) {
            return Err(VendorError::from_response(what, status, wait, &text));
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| {
                VendorError::permanent("bad_response", format!("{what}: no access_token"))
            })?
            .to_string();
        let lifetime = body["expires_in"].as_u64().unwrap_or(3600).max(120);
        *slot = Some((
            token.clone(),
            Instant::now() + Duration::from_secs(lifetime - 60),
        ));
        Ok(token)
    }

    async fn call(
        &self,
        what: &str,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Value, VendorError> {
        let token = self.bearer().await?;
        let url = format!("{}/api{path_and_query}", self.config.url);
        let headers = [("Authorization".to_string(), format!("Bearer {token}"))];
        let result = send(self.http, self.requests, what, method, &url, &headers, body).await;
        if matches!(&result, Err(e) if e.status == Some(401)) {
            // Revoked or expired early: sign in again on the next attempt.
            *self.token.0.lock().await = None;
        }
        result
    }

    pub async fn find_by_email(
        &self,
        client: Option<u64>,
        email: &str,
    ) -> Result<Vec<Contact>, VendorError> {
        let mut q = vec![
            ("search", email.to_string()),
            ("includeinactive", "true".to_string()),
            ("pageinate", "false".to_string()),
        ];
        if let Some(c) = client {
            q.push(("client_id", c.to_string()));
        }
        let url = with_query("http://x/Users", &q);
        let path = &url["http://x".len()..];
        let found = self
            .call(&format!("find Halo user {email}"), Method::GET, path, None)
            .await?;
        Ok(found["users"]
            .as_array()
            .into_iter()
            .flatten()
            .map(contact)
            .collect())
    }

    pub async fn get(&self, id: u64) -> Result<Option<Contact>, VendorError> {
        match self
            .call(
                &format!("get Halo user {id}"),
                Method::GET,
                &format!("/Users/{id}"),
                None,
            )
            .await
        {
            Ok(u) => Ok(Some(contact(&u))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn create(&self, client: u64, f: &Fields) -> Result<u64, VendorError> {
        let sites = self
            .call(
                &format!("find the site of Halo client {client}"),
                Method::GET,
                &format!("/Site?client_id={client}"),
                None,
            )
            .await?;
        let site = sites["sites"]
            .as_array()
            .and_then(|s| s.first())
            .and_then(|s| s["id"].as_u64())
            .ok_or_else(|| {
                VendorError::permanent(
                    "no_site",
                    format!("Halo client {client} has no site to put a contact in"),
                )
            })?;
        let first_name = f.first_name.clone().unwrap_or_default();
        let last_name = f.last_name.clone().unwrap_or_default();
        let mut user = json!({
            "site_id": site,
            "firstname": first_name,
            "surname": last_name,
            "name": format!("{first_name} {last_name}").trim(),
            "emailaddress": f.email,
            "inactive": false,
        });
        if let Some(p) = &f.phone {
            user["phonenumber"] = json!(p);
        }
        if let Some(t) = &f.title {
            user["title"] = json!(t);
        }
        let email = f.email.as_deref().unwrap_or_default();
        let created = self
            .call(
                &format!("create Halo user {email}"),
                Method::POST,
                "/Users",
                Some(&json!([user])),
            )
            .await?;
        first(&created)["id"].as_u64().ok_or_else(|| {
            VendorError::permanent(
                "bad_response",
                "create Halo user: the answer has no id".to_string(),
            )
        })
    }

    pub async fn update(
        &self,
        c: &Contact,
        f: &Fields,
        active: Option<bool>,
    ) -> Result<(), VendorError> {
        let mut user = json!({"id": c.id});
        for (key, value) in [
            ("firstname", &f.first_name),
            ("surname", &f.last_name),
            ("emailaddress", &f.email),
            ("phonenumber", &f.phone),
            ("title", &f.title),
        ] {
            if let Some(v) = value {
                user[key] = json!(v);
            }
        }
        if let Some(a) = active {
            user["inactive"] = json!(!a);
        }
        self.call(
            &format!("update Halo user {}", c.id),
            Method::POST,
            "/Users",
            Some(&json!([user])),
        )
        .await?;
        Ok(())
    }

    pub async fn notes(&self, ticket: u64) -> Result<Vec<(u64, String)>, VendorError> {
        let found = self
            .call(
                &format!("list the actions of Halo ticket {ticket}"),
                Method::GET,
                &format!("/Actions?ticket_id={ticket}&excludesys=true"),
                None,
            )
            .await?;
        Ok(found["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["id"].as_u64().unwrap_or_default(),
                    a["note_html"]
                        .as_str()
                        .or(a["note"].as_str())
                        .unwrap_or_default()
                        .to_string(),
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
        let action = json!([{
            "ticket_id": ticket,
            "outcome_id": self.config.note_outcome_id,
            "note_html": to_html(text),
            "hiddenfromuser": internal,
        }]);
        let added = self
            .call(
                &format!("add a note to Halo ticket {ticket}"),
                Method::POST,
                "/Actions",
                Some(&action),
            )
            .await?;
        first(&added)["id"].as_u64().ok_or_else(|| {
            VendorError::permanent("bad_response", "add a Halo note: the answer has no id")
        })
    }

    pub async fn ticket(&self, ticket: u64) -> Result<Ticket, VendorError> {
        let t = self
            .call(
                &format!("get Halo ticket {ticket}"),
                Method::GET,
                &format!("/Tickets/{ticket}"),
                None,
            )
            .await?;
        Ok(Ticket {
            status_id: t["status_id"].as_u64(),
            status: t["status"].as_str().map(str::to_string),
            summary: t["summary"].as_str().unwrap_or_default().to_string(),
        })
    }

    pub async fn update_ticket(
        &self,
        ticket: u64,
        status: Option<&Status>,
        summary: Option<&str>,
    ) -> Result<(), VendorError> {
        let mut t = json!({"id": ticket});
        if let Some(Status::Id(id)) = status {
            t["status_id"] = json!(id);
        }
        if let Some(s) = summary {
            t["summary"] = json!(s);
        }
        self.call(
            &format!("update Halo ticket {ticket}"),
            Method::POST,
            "/Tickets",
            Some(&json!([t])),
        )
        .await?;
        Ok(())
    }
}
