//! Fault injection: 429 with Retry-After, 500/503, latency, dropped connections, by path
//! prefix, method, rate and seed.

use serde_json::json;

use crate::support::{body, start, Env};

async fn set(env: &Env, rules: serde_json::Value) -> reqwest::StatusCode {
    env.http
        .post(env.url("/_sandbox/faults"))
        .json(&json!({"seed": 7, "rules": rules}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn throttling_and_server_errors() {
    let env = start().await;
    let t = env.graph().await;
    assert_eq!(set(&env, json!([{"path": "/graph.microsoft.com/v1.0/users", "method": "GET", "status": 429, "retry_after": 2, "rate": 1.0}])).await, 200);
    let r = env.get(&t, "/users").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(body(r).await["error"]["code"], "TooManyRequests");
    // Other methods and paths are untouched.
    assert_eq!(env.get(&t, "/groups").await.status(), 200);
    assert_eq!(
        env.send(
            &t,
            reqwest::Method::PATCH,
            "/users/alex.wilber@contoso.example",
            json!({"jobTitle": "x"})
        )
        .await
        .status(),
        204
    );
    set(
        &env,
        json!([{"path": "/graph.microsoft.com", "status": 503, "rate": 1.0}]),
    )
    .await;
    assert_eq!(env.get(&t, "/groups").await.status(), 503);
    set(&env, json!([])).await;
    assert_eq!(env.get(&t, "/users").await.status(), 200);
}

#[tokio::test]
async fn latency_and_dropped_connections() {
    let env = start().await;
    let t = env.graph().await;
    set(&env, json!([{"path": "/graph.microsoft.com/v1.0/subscribedSkus", "latency_ms": 200, "rate": 1.0}])).await;
    let start = std::time::Instant::now();
    assert_eq!(env.get(&t, "/subscribedSkus").await.status(), 200);
    assert!(start.elapsed() >= std::time::Duration::from_millis(200));
    set(
        &env,
        json!([{"path": "/graph.microsoft.com/v1.0/users", "drop": true, "rate": 1.0}]),
    )
    .await;
    let r = env
        .http
        .get(env.url("/graph.microsoft.com/v1.0/users"))
        .bearer_auth(&t)
        .send()
        .await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "a dropped connection must fail on the client");
}

#[tokio::test]
async fn rates_are_seeded_and_bad_rules_refused() {
    let env = start().await;
    let t = env.graph().await;
    let a = pattern(&env, &t).await;
    let b = pattern(&env, &t).await;
    assert_eq!(a, b, "the same seed gives the same faults");
    let hits = a.iter().filter(|s| **s == 500).count();
    assert!((4..=16).contains(&hits), "about half: {hits}");
    assert_eq!(
        set(&env, json!([{"path": "/x", "status": 418, "rate": 1.0}])).await,
        400
    );
    assert_eq!(
        set(&env, json!([{"path": "/x", "status": 500, "rate": 2.0}])).await,
        400
    );
    // Control endpoints are never faulted.
    set(&env, json!([{"path": "/", "status": 500, "rate": 1.0}])).await;
    assert_eq!(
        env.http
            .get(env.url("/_sandbox/state"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

async fn pattern(env: &Env, t: &str) -> Vec<u16> {
    set(
        env,
        json!([{"path": "/graph.microsoft.com/v1.0/groups", "status": 500, "rate": 0.5}]),
    )
    .await;
    let mut out = Vec::new();
    for _ in 0..20 {
        out.push(env.get(t, "/groups").await.status().as_u16());
    }
    out
}
