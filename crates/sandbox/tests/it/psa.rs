//! HaloPSA, ConnectWise and Autotask: each one's auth, contacts (create, find, deactivate)
//! and ticket notes.

use base64::Engine;
use serde_json::{json, Value};

use crate::support::{body, start};

#[tokio::test]
async fn halo_contacts_and_notes() {
    let env = start().await;
    let tok: Value = env
        .http
        .post(env.url("/sandbox.halopsa.com/auth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "tenure-sandbox"),
            ("client_secret", "sandbox-secret"),
            ("scope", "all"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let h = tok["access_token"].as_str().unwrap();
    let api = |p: &str| env.url(&format!("/sandbox.halopsa.com/api{p}"));
    let created = env.http.post(api("/Users")).bearer_auth(h).json(&json!([{"site_id": 11, "firstname": "José", "surname": "Núñez", "emailaddress": "jose.nunez@contoso.example"}])).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let id = body(created).await["id"].as_u64().unwrap();
    let found: Value = env
        .http
        .get(api("/Users?client_id=1&search=jose.nunez@contoso.example"))
        .bearer_auth(h)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["record_count"], 1);
    let r = env
        .http
        .post(api("/Users"))
        .bearer_auth(h)
        .json(&json!([{"id": id, "inactive": true}]))
        .send()
        .await
        .unwrap();
    assert_eq!(body(r).await["inactive"], true);
    let gone: Value = env
        .http
        .get(api("/Users?client_id=1&search=jose.nunez@contoso.example"))
        .bearer_auth(h)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        gone["record_count"], 0,
        "inactive users are hidden unless includeinactive"
    );
    let no_outcome = env
        .http
        .post(api("/Actions"))
        .bearer_auth(h)
        .json(&json!([{"ticket_id": 1001, "note_html": "done"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(no_outcome.status(), 400);
    assert_eq!(
        body(no_outcome).await,
        json!("An Outcome must be entered for this Action")
    );
    let ok = env.http.post(api("/Actions")).bearer_auth(h).json(&json!([{"ticket_id": 1001, "outcome_id": 7, "note_html": "<p>done</p>", "hiddenfromuser": true}])).send().await.unwrap();
    assert_eq!(ok.status(), 201);
    assert_eq!(
        env.http.get(api("/Users")).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        env.counter(&format!("halo/contact/{id}")).await,
        json!({"created": 1, "changed": 1, "deleted": 0})
    );
}

#[tokio::test]
async fn connectwise_contacts_and_notes() {
    let env = start().await;
    let base = |p: &str| {
        env.url(&format!(
            "/api-na.myconnectwise.net/v4_6_release/apis/3.0{p}"
        ))
    };
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("tenure+tenure-sandbox:sandbox-secret")
    );
    let no_client = env
        .http
        .get(base("/company/contacts"))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(no_client.status(), 401);
    let req = |m: reqwest::Method, p: &str| {
        env.http
            .request(m, base(p))
            .header("Authorization", &auth)
            .header("clientId", "tenure-sandbox")
    };
    let invalid = req(reqwest::Method::POST, "/company/contacts")
        .json(&json!({"lastName": "X", "company": {"id": 250}}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    assert_eq!(body(invalid).await["errors"][0]["field"], "firstName");
    let created = req(reqwest::Method::POST, "/company/contacts").json(&json!({"firstName": "Jose", "lastName": "Nunez", "company": {"id": 250},
        "communicationItems": [{"type": {"id": 1}, "value": "jose.nunez@contoso.example", "defaultFlag": true, "communicationType": "Email"}]})).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let id = body(created).await["id"].as_u64().unwrap();
    let found: Value = req(reqwest::Method::GET, "/company/contacts?childConditions=communicationItems/value=%22jose.nunez@contoso.example%22").send().await.unwrap().json().await.unwrap();
    assert_eq!(found[0]["id"], id);
    let patched = req(reqwest::Method::PATCH, &format!("/company/contacts/{id}"))
        .json(&json!([{"op": "replace", "path": "inactiveFlag", "value": true}]))
        .send()
        .await
        .unwrap();
    assert_eq!(body(patched).await["inactiveFlag"], true);
    let note = req(reqwest::Method::POST, "/service/tickets/5001/notes")
        .json(&json!({"text": "Onboarded", "internalAnalysisFlag": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(note.status(), 201);
    let flagless = req(reqwest::Method::POST, "/service/tickets/5001/notes")
        .json(&json!({"text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(flagless.status(), 400);
}

#[tokio::test]
async fn autotask_zone_contacts_and_notes() {
    let env = start().await;
    let zone: Value = env.http.get(env.url("/webservices2.autotask.net/atservicesrest/v1.0/zoneInformation?user=tenure-sandbox@autotask.example")).send().await.unwrap().json().await.unwrap();
    let base = zone["url"].as_str().unwrap().to_string();
    let req = |m: reqwest::Method, p: &str| {
        env.http
            .request(m, format!("{base}V1.0{p}"))
            .header("ApiIntegrationCode", "tenure-sandbox")
            .header("UserName", "tenure-sandbox@autotask.example")
            .header("Secret", "sandbox-secret")
    };
    let created: Value = req(reqwest::Method::POST, "/Companies/29683/Contacts").json(&json!({"firstName": "Jose", "lastName": "Nunez", "emailAddress": "jose.nunez@contoso.example", "isActive": 1})).send().await.unwrap().json().await.unwrap();
    let id = created["itemId"].as_u64().unwrap();
    let q: Value = req(reqwest::Method::POST, "/Contacts/query").json(&json!({"MaxRecords": 500, "filter": [{"op": "eq", "field": "emailAddress", "value": "jose.nunez@contoso.example"}]})).send().await.unwrap().json().await.unwrap();
    assert_eq!(q["items"][0]["id"], id);
    assert!(q["pageDetails"]["nextPageUrl"].is_null());
    let paged: Value = req(reqwest::Method::POST, "/Contacts/query")
        .json(&json!({"MaxRecords": 2, "filter": [{"op": "exist", "field": "id"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let next = paged["pageDetails"]["nextPageUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let page2: Value = env
        .http
        .get(&next)
        .header("ApiIntegrationCode", "tenure-sandbox")
        .header("UserName", "tenure-sandbox@autotask.example")
        .header("Secret", "sandbox-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page2["items"].as_array().unwrap().len(), 2);
    let r = req(reqwest::Method::PATCH, "/Companies/29683/Contacts")
        .json(&json!({"id": id, "isActive": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let note = req(reqwest::Method::POST, "/Tickets/7001/Notes")
        .json(&json!({"title": "Tenure", "description": "Onboarded", "noteType": 1, "publish": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(note.status(), 200);
    let bad = env
        .http
        .post(format!("{base}V1.0/Contacts/query"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(body(bad).await["errors"][0].is_string());
}
