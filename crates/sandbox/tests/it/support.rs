//! Starting a sandbox on a free loopback port and talking to it as a vendor client would.

use reqwest::{Client, Response};
use serde_json::{json, Value};
use tenure_sandbox::Sandbox;

/// A running sandbox and a client for it.
pub struct Env {
    pub base: String,
    pub http: Client,
    #[allow(dead_code)]
    pub sandbox: Sandbox,
    pub _server: tokio::task::JoinHandle<()>,
}

/// Starts a sandbox with the default seed, adjusted by `tweak` (e.g. shorter delays).
pub async fn start_with(tweak: impl FnOnce(&mut Value)) -> Env {
    let mut seed: Value = serde_json::from_str(tenure_sandbox::DEFAULT_SEED).unwrap();
    seed["settings"]["purchase_delay_ms"] = json!(300);
    seed["settings"]["mailbox_delay_ms"] = json!(300);
    tweak(&mut seed);
    let sandbox = Sandbox::from_seed(&seed.to_string()).unwrap();
    let (addr, server) = sandbox.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Env {
        base: format!("http://{addr}"),
        http: Client::new(),
        sandbox,
        _server: server,
    }
}

/// Starts a sandbox with the default seed (short delays).
pub async fn start() -> Env {
    start_with(|_| {}).await
}

impl Env {
    /// A URL under the sandbox.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A Microsoft token for `tenant` and `scope` through client credentials.
    pub async fn ms_token(&self, tenant: &str, scope: &str) -> String {
        tenure_sandbox::testing::ms_token(&self.base, tenant, scope)
            .await
            .unwrap()
    }

    /// A Graph token for contoso.
    pub async fn graph(&self) -> String {
        self.ms_token("contoso.example", "https://graph.microsoft.com/.default")
            .await
    }

    /// `GET` a Graph path with a token.
    pub async fn get(&self, token: &str, path: &str) -> Response {
        self.http
            .get(self.url(&format!("/graph.microsoft.com/v1.0{path}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// A JSON request to a Graph path with a token.
    pub async fn send(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Response {
        self.http
            .request(
                method,
                self.url(&format!("/graph.microsoft.com/v1.0{path}")),
            )
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The whole sandbox state.
    pub async fn state(&self) -> Value {
        self.http
            .get(self.url("/_sandbox/state"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A counter from the state.
    pub async fn counter(&self, entity: &str) -> Value {
        self.state().await["counters"][entity].clone()
    }

    /// Creates a cloud user and returns its JSON.
    pub async fn create_user(&self, token: &str, upn: &str, usage_location: Option<&str>) -> Value {
        let local = upn.split('@').next().unwrap();
        let mut body = json!({"accountEnabled": true, "displayName": local, "mailNickname": local, "userPrincipalName": upn,
                              "passwordProfile": {"forceChangePasswordNextSignIn": true, "password": "Str0ng!Passw0rd"}});
        if let Some(loc) = usage_location {
            body["usageLocation"] = json!(loc);
        }
        let r = self
            .send(token, reqwest::Method::POST, "/users", body)
            .await;
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    /// The skuId of a part number in contoso.
    pub async fn sku(&self, token: &str, part: &str) -> Value {
        let skus: Value = self
            .get(token, "/subscribedSkus")
            .await
            .json()
            .await
            .unwrap();
        skus["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["skuPartNumber"] == part)
            .unwrap()
            .clone()
    }
}

/// The body of a response as JSON.
pub async fn body(r: Response) -> Value {
    r.json().await.unwrap_or(Value::Null)
}
