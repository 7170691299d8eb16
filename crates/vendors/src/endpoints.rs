//! Where each vendor lives, and the credentials Tenure uses there.

use std::fmt;

/// A secret value: never printed (`Debug` and `Display` show `***`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The app registration Tenure signs in with for one managed tenant (one multi-tenant app
/// consented through GDAP gives every tenant the same client id and secret).
#[derive(Clone, Debug)]
pub struct TenantCredentials {
    /// The customer tenant (GUID or verified domain): tokens are requested *in* it.
    pub tenant: String,
    /// The application (client) id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
    /// Pax8 API credentials (client id, secret), when seats are bought through Pax8.
    pub pax8: Option<(String, Secret)>,
    /// The partner's tenant and its Partner Center refresh token (App+User), when seats are
    /// bought through Partner Center.
    pub partner_center: Option<(String, Secret)>,
}

/// The APIs Tenure signs in to, each its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Microsoft Graph: client credentials in the customer tenant.
    Graph,
    /// Exchange Online admin API: client credentials, Exchange audience.
    Exchange,
    /// Pax8: its own token manager (JSON client credentials).
    Pax8,
    /// Partner Center: App+User (the partner's refresh token).
    PartnerCenter,
}

/// Base URLs of every vendor (no trailing slash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Microsoft identity platform (`https://login.microsoftonline.com`).
    pub login: String,
    /// Microsoft Graph v1.0.
    pub graph: String,
    /// Microsoft Graph beta.
    pub graph_beta: String,
    /// Exchange Online admin API (`.../adminapi/beta`).
    pub exchange: String,
    /// Pax8 token manager.
    pub pax8_login: String,
    /// Pax8 API v1.
    pub pax8: String,
    /// Partner Center v1.
    pub partner_center: String,
}

impl Endpoints {
    /// The real clouds.
    pub fn cloud() -> Self {
        Endpoints {
            login: "https://login.microsoftonline.com".into(),
            graph: "https://graph.microsoft.com/v1.0".into(),
            graph_beta: "https://graph.microsoft.com/beta".into(),
            exchange: "https://outlook.office365.com/adminapi/beta".into(),
            pax8_login: "https://token-manager.pax8.com".into(),
            pax8: "https://api.pax8.com/v1".into(),
            partner_center: "https://api.partnercenter.microsoft.com/v1".into(),
        }
    }

    /// The sandbox at `base` (e.g. `http://127.0.0.1:8900`), which serves each vendor under
    /// its real host name as a path prefix.
    pub fn sandbox(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        let at = |host_and_path: &str| format!("{base}/{host_and_path}");
        Endpoints {
            login: at("login.microsoftonline.com"),
            graph: at("graph.microsoft.com/v1.0"),
            graph_beta: at("graph.microsoft.com/beta"),
            exchange: at("outlook.office365.com/adminapi/beta"),
            pax8_login: at("token-manager.pax8.com"),
            pax8: at("api.pax8.com/v1"),
            partner_center: at("api.partnercenter.microsoft.com/v1"),
        }
    }

    /// `TENURE_SANDBOX` if set, else the real clouds.
    pub fn from_env() -> Self {
        match std::env::var("TENURE_SANDBOX") {
            Ok(url) if !url.is_empty() => Self::sandbox(&url),
            _ => Self::cloud(),
        }
    }

    /// Which API, and so which sign-in, a URL belongs to.
    pub fn api_of(&self, url: &str) -> Api {
        if url.starts_with(&self.exchange) {
            Api::Exchange
        } else if url.starts_with(&self.pax8) {
            Api::Pax8
        } else if url.starts_with(&self.partner_center) {
            Api::PartnerCenter
        } else {
            Api::Graph
        }
    }

    /// The API a scope from [`Endpoints::scope_for`] signs in to.
    pub fn api_of_scope(&self, scope: &str) -> Api {
        match scope {
            "https://outlook.office365.com/.default" => Api::Exchange,
            "https://api.partnercenter.microsoft.com/.default" => Api::PartnerCenter,
            "pax8" => Api::Pax8,
            _ => Api::Graph,
        }
    }

    /// The OAuth2 scope of the resource a URL belongs to.
    pub fn scope_for(&self, url: &str) -> &'static str {
        match self.api_of(url) {
            Api::Exchange => "https://outlook.office365.com/.default",
            Api::PartnerCenter => "https://api.partnercenter.microsoft.com/.default",
            Api::Pax8 => "pax8",
            Api::Graph => "https://graph.microsoft.com/.default",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sandbox-secret");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        let c = TenantCredentials {
            tenant: "contoso".into(),
            client_id: "app".into(),
            client_secret: s,
            pax8: None,
            partner_center: None,
        };
        assert!(!format!("{c:?}").contains("sandbox-secret"));
    }

    #[test]
    fn the_sandbox_serves_each_vendor_under_its_host_name() {
        let e = Endpoints::sandbox("http://127.0.0.1:9/");
        assert_eq!(e.graph, "http://127.0.0.1:9/graph.microsoft.com/v1.0");
        assert_eq!(
            e.scope_for(&format!("{}/x/InvokeCommand", e.exchange)),
            "https://outlook.office365.com/.default"
        );
    }
}
