//! What the webhook tests share: a `tenure serve` router over a real listener on 127.0.0.1,
//! an engine on SQLite (or PostgreSQL when `TENURE_TEST_PG` is set), and runbooks compiled
//! from text.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{json, Value};
use tenure_engine::store::RunFilter;
use tenure_engine::Engine;
use tenure_runbook::SourceFile;
use tenure_server::config::{WebhookKind, WebhookSource};
use tenure_server::{AppState, Library, LibrarySource, RunbookEntry, ServerConfig};

/// Runbooks compiled from texts.
pub struct Texts(pub Vec<(String, String)>);

impl LibrarySource for Texts {
    fn fingerprint(&self) -> u64 {
        0
    }
    fn load(&self) -> Library {
        let entries = self
            .0
            .iter()
            .map(|(name, text)| {
                let source = SourceFile::new(name.clone(), text.clone());
                let out = tenure_runbook::compile(&source, &tenure_steps::catalogue());
                let diagnostics: Vec<String> =
                    out.diagnostics.iter().map(|d| d.render(&source)).collect();
                let plan = out.plan.map(Arc::new);
                assert!(plan.is_some(), "{name} compiles: {diagnostics:?}");
                RunbookEntry {
                    id: plan.as_ref().map(|p| p.runbook.clone()).unwrap_or_default(),
                    path: name.clone(),
                    plan,
                    diagnostics,
                    source: text.clone(),
                }
            })
            .collect();
        Library { entries }
    }
    fn compile(&self, _: &str, _: &str) -> (Option<tenure_runbook::Plan>, Vec<String>) {
        (None, Vec::new())
    }
}

/// A webhook source of `kind` named `name`, other fields empty.
pub fn source(name: &str, kind: WebhookKind) -> WebhookSource {
    WebhookSource {
        source: name.into(),
        kind,
        username: None,
        password_env: None,
        token_env: None,
        secret_env: None,
        key_host: None,
        client_id: None,
        dedup: None,
        requester: None,
    }
}

/// A running server.
pub struct Server {
    pub url: String,
    pub engine: Engine,
    pub client: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The managed tenants the tests know.
fn tenants() -> tenure_engine::TenantLookup {
    Arc::new(|id: &str| match id {
        "contoso" | "fabrikam" => Ok(json!({
            "id": id, "name": id, "domain": format!("{id}.example"),
        })),
        other => Err(format!("`{other}` is not a managed tenant")),
    })
}

/// Whether PostgreSQL tests can run here.
pub fn postgres() -> Option<String> {
    match std::env::var("TENURE_TEST_PG") {
        Ok(u) => Some(u),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set TENURE_TEST_PG"
            );
            None
        }
    }
}

/// A database URL: SQLite in a temporary directory, or a fresh PostgreSQL database.
pub async fn database(pg: bool) -> (String, Option<tempfile::TempDir>) {
    if pg {
        let admin = postgres().expect("TENURE_TEST_PG");
        if std::env::var_os("TENURE_SECRET_KEY").is_none() {
            std::env::set_var("TENURE_SECRET_KEY", "11".repeat(32));
        }
        let name = format!("tenure_h_{}", uuid::Uuid::new_v4().simple());
        tenure_engine::store::create_database(&admin, &name)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        (format!("{base}/{name}"), None)
    } else {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("t.db").display());
        (url, Some(dir))
    }
}

/// Starts a server with `webhooks` and `runbooks` (file name, text) on SQLite.
pub async fn start(webhooks: Vec<WebhookSource>, runbooks: &[(&str, &str)]) -> Server {
    start_on(false, webhooks, runbooks).await
}

/// Starts a server on SQLite or PostgreSQL.
pub async fn start_on(pg: bool, webhooks: Vec<WebhookSource>, runbooks: &[(&str, &str)]) -> Server {
    let (url, dir) = database(pg).await;
    let engine = Engine::open(&url, tenure_engine::builtin::registry(), tenants())
        .await
        .unwrap();
    let config = ServerConfig {
        webhooks,
        ..Default::default()
    };
    let texts = Texts(
        runbooks
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
    );
    let state = AppState::try_new(engine.clone(), config, Arc::new(texts)).unwrap();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = tenure_server::serve(state, listener, std::future::pending()).await;
    });
    Server {
        url: format!("http://{addr}"),
        engine,
        client: reqwest::Client::new(),
        _dir: dir,
        task,
    }
}

impl Server {
    /// POSTs `body` to `/hooks/{source}` with `headers`; returns status and JSON answer.
    pub async fn post(
        &self,
        source: &str,
        body: &[u8],
        headers: &[(&str, String)],
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/hooks/{source}", self.url))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    /// How many runs exist (up to 1000).
    pub async fn run_count(&self) -> usize {
        self.run_count_up_to(1000).await
    }

    /// How many runs exist, counting up to `limit`.
    pub async fn run_count_up_to(&self, limit: usize) -> usize {
        self.engine
            .runs(&RunFilter {
                limit,
                ..Default::default()
            })
            .await
            .unwrap()
            .len()
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn generic_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `sha1=<base64 HMAC-SHA1(secret, body)>` (Autotask).
pub fn autotask_signature(secret: &str, body: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!(
        "sha1={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// base64(HMAC-SHA256(key = SHA-256(signing key), body)) (ConnectWise).
pub fn connectwise_signature(signing_key: &str, body: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use sha2::Digest;
    let key = sha2::Sha256::digest(signing_key.as_bytes());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
