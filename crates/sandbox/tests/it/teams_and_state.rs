//! Teams Workflows webhooks, email, the state endpoint, reset, and persistence to a file.

use serde_json::{json, Value};
use tenure_sandbox::Sandbox;

use crate::support::{body, start};

const CARD: &str = r#"{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","content":{"type":"AdaptiveCard","version":"1.4","body":[{"type":"TextBlock","text":"Approve?"}]}}]}"#;

#[tokio::test]
async fn teams_accepts_cards_with_202_and_an_empty_body() {
    let env = start().await;
    let url = env.url("/prod-00.westus.logic.azure.com/workflows/abc123/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=s3cret");
    let r = env
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(CARD)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(r.text().await.unwrap().is_empty());
    let unsigned =
        env.http
            .post(env.url(
                "/prod-00.westus.logic.azure.com/workflows/abc123/triggers/manual/paths/invoke",
            ))
            .header("content-type", "application/json")
            .body(CARD)
            .send()
            .await
            .unwrap();
    assert_eq!(unsigned.status(), 401);
    let bad = env
        .http
        .post(&url)
        .json(&json!({"text": "legacy MessageCard"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let state = env.state().await;
    assert_eq!(state["inbox"]["teams"].as_array().unwrap().len(), 1);
    let t = env.graph().await;
    let mail = env.send(&t, reqwest::Method::POST, "/users/megan.bowen@contoso.example/sendMail", json!({"message": {"subject": "Welcome", "body": {"contentType": "Text", "content": "Hi"}, "toRecipients": [{"emailAddress": {"address": "new@personal.example"}}]}})).await;
    assert_eq!(mail.status(), 202);
    assert_eq!(
        env.state().await["inbox"]["email"][0]["message"]["subject"],
        "Welcome"
    );
}

#[tokio::test]
async fn reset_restores_the_seed() {
    let env = start().await;
    let t = env.graph().await;
    env.create_user(&t, "temp@contoso.example", Some("AU"))
        .await;
    assert_eq!(
        env.http
            .post(env.url("/_sandbox/reset"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let state: Value = env.state().await;
    assert_eq!(state["tenants"][0]["users"].as_array().unwrap().len(), 28);
    assert!(state["counters"].as_object().unwrap().is_empty());
    // Tokens are forgotten too.
    assert_eq!(env.get(&t, "/users").await.status(), 401);
}

#[tokio::test]
async fn persisted_state_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("tenure-sbx-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.json");
    {
        let sb = Sandbox::persisted(tenure_sandbox::DEFAULT_SEED, file.clone()).unwrap();
        let (addr, server) = sb.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let env = crate::support::Env {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            sandbox: sb,
            _server: server,
        };
        let t = env.graph().await;
        env.create_user(&t, "survivor@contoso.example", Some("AU"))
            .await;
    }
    let sb = Sandbox::persisted(tenure_sandbox::DEFAULT_SEED, file.clone()).unwrap();
    let has = sb.shared().read(|w| {
        w.tenants[0]
            .users
            .iter()
            .any(|u| u.user_principal_name == "survivor@contoso.example")
    });
    assert!(has);
    let counters = sb.shared().read(|w| {
        w.counters
            .get("contoso/user/survivor@contoso.example")
            .cloned()
    });
    assert_eq!(counters.unwrap().created, 1);
    let _ = std::fs::remove_dir_all(dir);
    let _ = body;
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
