//! Helpers for tests and benches that talk to a running sandbox over HTTP (feature
//! `testing`): the client-credentials token an administrator's tool would get.

use serde::Deserialize;

/// The client id the sandbox's Microsoft identity endpoint accepts for every tenant.
pub const CLIENT_ID: &str = "tenure-sandbox";

/// The client secret that goes with [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "sandbox-secret";

/// The token endpoint's answer (the part a caller needs).
#[derive(Deserialize)]
struct Token {
    access_token: String,
}

/// A Microsoft token for `tenant` (its id or domain) and `scope` through client credentials,
/// from the sandbox at `url` (its base URL, `http://127.0.0.1:PORT`).
pub async fn ms_token(url: &str, tenant: &str, scope: &str) -> Result<String, reqwest::Error> {
    let token: Token = reqwest::Client::new()
        .post(format!(
            "{url}/login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
        ))
        .form(&[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", scope),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(token.access_token)
}

/// A Graph token for `tenant` from the sandbox at `url` (see [`ms_token`]).
pub async fn graph_token(url: &str, tenant: &str) -> Result<String, reqwest::Error> {
    ms_token(url, tenant, "https://graph.microsoft.com/.default").await
}
