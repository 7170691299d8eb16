//! An address holding a NUL byte (`%00`) in a run id, a filter or a cursor: a 400 on the API
//! and in the UI, on SQLite and on PostgreSQL (which refuses NUL in a text parameter, so it
//! was a 500 there), and nothing is created.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine as _;
use tenure_engine::Engine;
use tenure_server::config::{Role, TokenEntry};
use tenure_server::{AppState, ServerConfig};
use tower::ServiceExt as _;

const TOKEN: &str = "nul-test-operator-token";

async fn router(pg: bool) -> (axum::Router, Option<tempfile::TempDir>) {
    let (url, dir) = support::database(pg).await;
    let engine = Engine::open(
        &url,
        tenure_engine::builtin::registry(),
        Arc::new(|id: &str| Ok(serde_json::json!({"id": id, "name": id, "domain": "x.example"}))),
    )
    .await
    .unwrap();
    std::env::set_var("TENURE_NUL_T_OPS", TOKEN);
    let config = ServerConfig {
        tokens: vec![TokenEntry {
            name: "ops@msp.example".into(),
            role: Role::Operator,
            token_env: "TENURE_NUL_T_OPS".into(),
        }],
        ..Default::default()
    };
    let state = AppState::try_new(engine, config, Arc::new(support::Texts(Vec::new()))).unwrap();
    (tenure_server::router(state), dir)
}

async fn call(router: &axum::Router, req: Request<Body>) -> axum::response::Response {
    router.clone().oneshot(req).await.unwrap()
}

async fn check(pg: bool) {
    let (router, _dir) = router(pg).await;
    let resp = call(
        &router,
        Request::post("/ui/sign-in")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "tenure.test")
            .body(Body::from(format!("token={TOKEN}")))
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = resp.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("1:a\0b");
    let paths = [
        "/ui/runs?q=a%00b".to_string(),
        "/ui/runs?tenant=a%00b".into(),
        "/ui/runs?runbook=a%00b".into(),
        "/ui/runs/rows?q=%00".into(),
        "/ui/runs/a%00b".into(),
        "/ui/runs/a%00b/live".into(),
        "/ui/runs/a%00b/confirm/cancel".into(),
        format!("/ui/runs?cursor={cursor}"),
        "/api/runs?q=a%00b".into(),
        "/api/runs/a%00b".into(),
        "/api/runs/a%00b/events".into(),
        format!("/api/runs?cursor={cursor}"),
    ];
    for path in &paths {
        let req = Request::get(path.as_str())
            .header(header::HOST, "tenure.test")
            .header(header::COOKIE, &cookie)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let status = call(&router, req).await.status();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} (pg: {pg})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_byte_in_an_address_is_a_400_on_sqlite() {
    check(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_byte_in_an_address_is_a_400_on_postgres() {
    if support::postgres().is_none() {
        eprintln!("skipped: TENURE_TEST_PG is not set");
        return;
    }
    check(true).await;
}
