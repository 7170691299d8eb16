//! The server's part of `tenure.toml`: `[server]`, `[[webhooks]]` and `[[tokens]]`
//! (interfaces.md, "Server configuration"). Secrets are named by environment variable only
//! (`*_env` keys); they are read when the server starts.

use serde::Deserialize;

/// Everything the server reads from the configuration.
#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    /// `[server]`.
    pub server: ServerSection,
    /// `[[webhooks]]`: the ticket systems that may start runs.
    pub webhooks: Vec<WebhookSource>,
    /// `[[tokens]]`: API bearer tokens and their roles.
    pub tokens: Vec<TokenEntry>,
}

/// `[server]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Where to listen (`127.0.0.1:8080` by default; `--listen` wins).
    pub listen: Option<String>,
    /// The base of every link in cards, emails and notes (default: `http://` + the listen
    /// address).
    pub public_url: Option<String>,
    /// The environment variable holding the key that signs approval links and CSRF tokens
    /// (at least 32 bytes). Default: a key derived from the database's secret key, so every
    /// node on one database signs alike.
    pub key_env: Option<String>,
    /// The largest request body accepted, in bytes (default 1 MiB); larger ones get 413.
    pub max_body_bytes: Option<usize>,
    /// How long one request may take, in seconds (default 30); slower ones get 503.
    pub request_timeout_secs: Option<u64>,
    /// Requests per minute one client address may make to `/hooks/*` (default 600).
    pub hooks_per_minute: Option<u32>,
    /// Requests per minute one client address may make to `/approvals/*` (default 60).
    pub approvals_per_minute: Option<u32>,
    /// `[server.prices]`: what a seat of a SKU costs, as the approval page should say it
    /// (`SPB = "AUD 32.90 per user per month, annual term"`), for seats a run may buy.
    #[serde(default)]
    pub prices: std::collections::BTreeMap<String, String>,
}

impl ServerSection {
    /// [`ServerSection::max_body_bytes`] or its default.
    pub fn body_limit(&self) -> usize {
        self.max_body_bytes.unwrap_or(1024 * 1024)
    }

    /// [`ServerSection::request_timeout_secs`] or its default.
    pub fn request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.request_timeout_secs.unwrap_or(30).max(1))
    }

    /// [`ServerSection::hooks_per_minute`] or its default.
    pub fn hooks_rate(&self) -> u32 {
        self.hooks_per_minute.unwrap_or(600).max(1)
    }

    /// [`ServerSection::approvals_per_minute`] or its default.
    pub fn approvals_rate(&self) -> u32 {
        self.approvals_per_minute.unwrap_or(60).max(1)
    }
}

/// The kinds of webhook sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookKind {
    /// HaloPSA: HTTP Basic (`username` + `password_env`) or a bearer token (`token_env`).
    Halo,
    /// ConnectWise Manage callbacks, signed with the key behind their `key_url`.
    Connectwise,
    /// Autotask webhooks, signed with `secret_env`.
    Autotask,
    /// Any system: `X-Tenure-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.
    Generic,
}

/// `[[webhooks]]`: one source of ticket webhooks, `POST /hooks/{source}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSource {
    /// The path segment and the name runbook triggers use (`webhook: halo`).
    pub source: String,
    /// How its deliveries are verified and read.
    pub kind: WebhookKind,
    /// HaloPSA Basic user name.
    pub username: Option<String>,
    /// HaloPSA Basic password (environment variable).
    pub password_env: Option<String>,
    /// HaloPSA bearer token (environment variable).
    pub token_env: Option<String>,
    /// Autotask / generic HMAC secret (environment variable).
    pub secret_env: Option<String>,
    /// ConnectWise: where a callback's `Metadata.key_url` may point, as a host
    /// (`api-na.myconnectwise.net`, meaning `https://` that host) or a URL prefix
    /// (`http://127.0.0.1:8025/api-na.myconnectwise.net/` for the sandbox). Required: a key
    /// is never fetched from anywhere else.
    pub key_host: Option<String>,
    /// ConnectWise: the integration's `clientId`, sent when fetching the signing key.
    pub client_id: Option<String>,
    /// Template over the payload giving the delivery's dedup key (same key, same run).
    pub dedup: Option<String>,
    /// Template over the payload naming who asked (the ticket's requester); they may not
    /// approve their own run.
    pub requester: Option<String>,
}

/// A role an API token has (interfaces.md, "Roles").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read.
    Viewer,
    /// Read, and decide approvals it is named on.
    Approver,
    /// Read, start, cancel, retry, roll back.
    Operator,
    /// Everything.
    Admin,
}

/// `[[tokens]]`: an API bearer token.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who the journal says acted.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The environment variable holding the token.
    pub token_env: String,
}
