//! What the UI tests and the UI benchmark share: the whole `tenure serve` router over an
//! engine on SQLite, called in process with `tower::ServiceExt::oneshot`, and a signed-in
//! session (the token posted to `/ui/sign-in`, its cookie reused).

#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use tenure_engine::Engine;
use tenure_server::config::{Role, TokenEntry};
use tenure_server::{AppState, ServerConfig};
use tenure_steps::Registry;
use tower::ServiceExt as _;

use crate::support::Texts;

/// The viewer token the UI tests sign in with.
pub const VIEWER_TOKEN: &str = "ui-viewer-token-1";

/// A router over an engine, signed in as a viewer.
pub struct Ui {
    pub router: Router,
    pub engine: Engine,
    pub cookie: String,
    /// The database URL (`sqlite:PATH`).
    pub url: String,
    /// The approval links' signer.
    pub links: tenure_server::approvals::Links,
    _dir: Option<tempfile::TempDir>,
}

/// A UI over a new SQLite database with `runbooks` (file name, text) and `registry`.
pub async fn ui_with(runbooks: &[(&str, &str)], registry: Registry) -> Ui {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("ui.db").display());
    let engine = Engine::open(
        &url.clone(),
        registry,
        Arc::new(|id: &str| match id {
            "contoso" | "fabrikam" => Ok(serde_json::json!({
                "id": id, "name": id, "domain": format!("{id}.example"),
            })),
            other => Err(format!("`{other}` is not a managed tenant")),
        }),
    )
    .await
    .unwrap();
    std::env::set_var("TENURE_UI_T_VIEWER", VIEWER_TOKEN);
    let config = ServerConfig {
        tokens: vec![TokenEntry {
            name: "viewer@msp.example".into(),
            role: Role::Viewer,
            token_env: "TENURE_UI_T_VIEWER".into(),
        }],
        ..Default::default()
    };
    let texts = Texts(
        runbooks
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
    );
    let links = tenure_server::approvals::Links::from_config(
        &config.server,
        engine.derive_key("approval-links"),
    )
    .unwrap();
    let state = AppState::try_new(engine.clone(), config, Arc::new(texts))
        .unwrap()
        .with_links(links.clone());
    let router = tenure_server::router(state);
    let mut ui = Ui {
        router,
        engine,
        cookie: String::new(),
        url,
        links,
        _dir: Some(dir),
    };
    ui.sign_in().await;
    ui
}

/// [`ui_with`] and the built-in kinds.
pub async fn ui(runbooks: &[(&str, &str)]) -> Ui {
    ui_with(runbooks, tenure_engine::builtin::registry()).await
}

impl Ui {
    async fn sign_in(&mut self) {
        let req = Request::post("/ui/sign-in")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "tenure.test")
            .body(Body::from(format!(
                "token={VIEWER_TOKEN}&next=%2Fui%2Fruns"
            )))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let set = resp.headers()[header::SET_COOKIE].to_str().unwrap();
        self.cookie = set.split(';').next().unwrap().to_string();
    }

    /// GET `path` signed in (or not): status, `Location` (if any) and body.
    pub async fn request(&self, path: &str, signed_in: bool) -> (StatusCode, String, String) {
        let mut req = Request::get(path).header(header::HOST, "tenure.test");
        if signed_in {
            req = req.header(header::COOKIE, &self.cookie);
        }
        let resp = self
            .router
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            location,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    /// GET `path` signed in: status and body.
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let (status, _, body) = self.request(path, true).await;
        (status, body)
    }
}
