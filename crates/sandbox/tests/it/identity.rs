//! The Microsoft identity token endpoint: client credentials per tenant, real error shapes.

use serde_json::Value;

use crate::support::{body, start, start_with};

#[tokio::test]
async fn issues_tokens_per_tenant_and_resource() {
    let env = start().await;
    let r = env
        .http
        .post(env.url("/login.microsoftonline.com/contoso.example/oauth2/v2.0/token"))
        .form(&[
            ("client_id", "tenure-sandbox"),
            ("client_secret", "sandbox-secret"),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t = body(r).await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3599);
    // A Graph token does not open Exchange.
    let graph = t["access_token"].as_str().unwrap();
    let r = env
        .http
        .post(env.url("/outlook.office365.com/adminapi/beta/contoso.example/InvokeCommand"))
        .bearer_auth(graph)
        .json(&serde_json::json!({"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The token's tenant decides which directory Graph shows.
    let fab = env
        .ms_token("fabrikam", "https://graph.microsoft.com/.default")
        .await;
    let users = body(env.get(&fab, "/users").await).await;
    assert!(users["value"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["userPrincipalName"]
            .as_str()
            .unwrap()
            .ends_with("@fabrikam.example")));
}

#[tokio::test]
async fn wrong_secret_tenant_and_scope_get_aadsts_errors() {
    let env = start().await;
    let post = |tenant: &'static str, secret: &'static str, scope: &'static str| {
        env.http
            .post(env.url(&format!(
                "/login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
            )))
            .form(&[
                ("client_id", "tenure-sandbox"),
                ("client_secret", secret),
                ("scope", scope),
                ("grant_type", "client_credentials"),
            ])
            .send()
    };
    let r = post("contoso", "wrong", "https://graph.microsoft.com/.default")
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"], "invalid_client");
    assert!(b["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215:"));
    assert_eq!(b["error_codes"][0], 7000215);
    let r = post(
        "nowhere.example",
        "sandbox-secret",
        "https://graph.microsoft.com/.default",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert!(body(r).await["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS90002:"));
    let r = post(
        "contoso",
        "sandbox-secret",
        "https://graph.microsoft.com/User.Read",
    )
    .await
    .unwrap();
    assert_eq!(body(r).await["error"], "invalid_scope");
}

#[tokio::test]
async fn expired_and_missing_tokens_get_graph_401() {
    let env = start_with(|seed| seed["settings"]["token_lifetime_s"] = serde_json::json!(1)).await;
    let token = env.graph().await;
    assert_eq!(env.get(&token, "/users").await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = env.get(&token, "/users").await;
    assert_eq!(r.status(), 401);
    let b = body(r).await;
    assert_eq!(b["error"]["code"], "InvalidAuthenticationToken");
    assert!(b["error"]["message"].as_str().unwrap().contains("expired"));
    let r = env
        .http
        .get(env.url("/graph.microsoft.com/v1.0/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
