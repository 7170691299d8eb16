//! Password Pusher: one-time links that expire by views, defaults for out-of-range expiry.

use serde_json::{json, Value};

use crate::support::{body, start};

#[tokio::test]
async fn a_push_is_revealed_once_then_expires() {
    let env = start().await;
    let r = env.http.post(env.url("/pwpush.com/p.json")).json(&json!({"password": {"payload": "Str0ng!Passw0rd", "expire_after_views": 1, "expire_after_days": 400}})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let push = body(r).await;
    assert!(push.get("payload").is_none(), "the secret is never echoed");
    assert_eq!(
        push["expire_after_days"], 7,
        "out of range silently becomes the default"
    );
    let token = push["url_token"].as_str().unwrap();
    assert!(push["html_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/p/{token}/r")));
    let preview: Value = env
        .http
        .get(env.url(&format!("/pwpush.com/p/{token}/preview.json")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(preview["url"].is_string());
    let first: Value = env
        .http
        .get(env.url(&format!("/pwpush.com/p/{token}.json")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["payload"], "Str0ng!Passw0rd");
    let second: Value = env
        .http
        .get(env.url(&format!("/pwpush.com/p/{token}.json")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["expired"], true);
    assert!(second["payload"].is_null());
    let state = env.state().await;
    assert_eq!(
        state["pushes"][0]["payload"], "***",
        "the state never shows secrets"
    );
    assert_eq!(
        env.http
            .get(env.url("/pwpush.com/p/nope.json"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let empty = env
        .http
        .post(env.url("/pwpush.com/p.json"))
        .json(&json!({"password": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 400);
    let form = env
        .http
        .post(env.url("/pwpush.com/p.json"))
        .form(&[
            ("password[payload]", "a b&c"),
            ("password[expire_after_views]", "2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(body(form).await["expire_after_views"], 2);
}
