//! What the vendor kinds share: where the vendors are, the credentials per managed tenant, one
//! HTTP client, one token cache, and how long to wait for a vendor that is not ready yet.

use crate::later::Patience;
use crate::notify::NotifyConfig;
use crate::psa::PsaConfig;
use crate::share::PwPushConfig;
use serde_json::Value;
use tenure_steps::{Call, StepError};
use tenure_vendors::{Client, Endpoints, Secret, TenantCredentials, TokenCache, VendorError};

/// Shared vendor settings.
#[derive(Clone)]
pub struct Vendors {
    configured: bool,
    http: reqwest::Client,
    endpoints: Endpoints,
    tokens: TokenCache,
    client_id: String,
    client_secret: Secret,
    pax8: Option<(String, Secret)>,
    partner_center: Option<(String, Secret)>,
    patience: Patience,
    psa: PsaConfig,
    pwpush: PwPushConfig,
    notify: NotifyConfig,
    /// The sandbox's URL, when these are the sandbox's vendors.
    sandbox: Option<String>,
}

/// The app registration of the sandbox (see `docs/sandbox.md`).
pub const SANDBOX_CLIENT_ID: &str = "tenure-sandbox";
const SANDBOX_SECRET: &str = "sandbox-secret";

impl Vendors {
    /// One multi-tenant app (GDAP): the same client id and secret in every managed tenant.
    pub fn new(endpoints: Endpoints, client_id: impl Into<String>, client_secret: Secret) -> Self {
        Vendors {
            configured: true,
            http: Client::http(),
            endpoints,
            tokens: TokenCache::new(),
            client_id: client_id.into(),
            client_secret,
            pax8: None,
            partner_center: None,
            patience: Patience::default(),
            psa: PsaConfig::default(),
            pwpush: PwPushConfig::default(),
            notify: NotifyConfig::default(),
            sandbox: None,
        }
    }

    /// The sandbox's URL, when these are the sandbox's vendors ([`Vendors::sandbox`]).
    pub fn sandbox_url(&self) -> Option<&str> {
        self.sandbox.as_deref()
    }

    /// Buys seats through Pax8 with these API credentials.
    pub fn with_pax8(mut self, client_id: impl Into<String>, secret: Secret) -> Self {
        self.pax8 = Some((client_id.into(), secret));
        self
    }

    /// Buys seats through Partner Center as the partner tenant, with its refresh token.
    pub fn with_partner_center(
        mut self,
        partner_tenant: impl Into<String>,
        refresh_token: Secret,
    ) -> Self {
        self.partner_center = Some((partner_tenant.into(), refresh_token));
        self
    }

    /// The PSAs the `psa.*` kinds talk to.
    pub fn with_psa(mut self, psa: PsaConfig) -> Self {
        self.psa = psa;
        self
    }

    /// Where `notify.teams` and `notify.email` send messages.
    pub fn with_notify(mut self, notify: NotifyConfig) -> Self {
        self.notify = notify;
        self
    }

    /// `notify.email` submits to this SMTP relay, from `from`, instead of using Graph.
    pub fn with_smtp(mut self, smtp: crate::smtp::SmtpConfig, from: impl Into<String>) -> Self {
        self.notify.smtp = Some(smtp);
        self.notify.email_from = Some(from.into());
        self
    }

    /// Where `notify.teams` and `notify.email` send messages.
    pub fn notify(&self) -> &NotifyConfig {
        &self.notify
    }

    /// The Password Pusher `password.share` pushes to.
    pub fn with_pwpush(mut self, pwpush: PwPushConfig) -> Self {
        self.pwpush = pwpush;
        self
    }

    /// The Password Pusher `password.share` pushes to.
    pub fn pwpush(&self) -> &PwPushConfig {
        &self.pwpush
    }

    /// The PSAs the `psa.*` kinds talk to.
    pub fn psa(&self) -> &PsaConfig {
        &self.psa
    }

    /// How kinds wait for a vendor that is not ready yet (see [`Patience`]).
    pub fn with_patience(mut self, patience: Patience) -> Self {
        self.patience = patience;
        self
    }

    /// How kinds wait for a vendor that is not ready yet.
    pub fn patience(&self) -> Patience {
        self.patience
    }

    /// The sandbox at `url`, with its built-in app registration and its PSAs (seed credentials
    /// and clients).
    pub fn sandbox(url: &str) -> Self {
        let mut v = Self::new(
            Endpoints::sandbox(url),
            SANDBOX_CLIENT_ID,
            Secret::new(SANDBOX_SECRET),
        )
        .with_pax8(SANDBOX_CLIENT_ID, Secret::new(SANDBOX_SECRET))
        .with_partner_center("partner.example", Secret::new("sandbox-refresh"))
        .with_psa(PsaConfig::sandbox(url))
        .with_pwpush(PwPushConfig {
            url: format!("{}/pwpush.com", url.trim_end_matches('/')),
            token: Some(Secret::new(SANDBOX_SECRET)),
        })
        .with_notify(NotifyConfig {
            teams: [(
                "default".to_string(),
                Secret::new(format!(
                    "{}/prod-00.westus.logic.azure.com/workflows/tenure/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=sandbox",
                    url.trim_end_matches('/')
                )),
            )]
            .into(),
            email_from: None,
            email_tenant: None,
            smtp: None,
        });
        v.sandbox = Some(url.trim_end_matches('/').to_string());
        v
    }

    /// From the environment: `TENURE_SANDBOX` (the sandbox's URL and app registration), else
    /// the real clouds with `TENURE_CLIENT_ID` and the secret in the environment variable
    /// named by `TENURE_CLIENT_SECRET_ENV` (default `TENURE_CLIENT_SECRET`). `None` when
    /// neither is configured.
    pub fn from_env() -> Option<Self> {
        if let Ok(url) = std::env::var("TENURE_SANDBOX") {
            if !url.is_empty() {
                return Some(Self::sandbox(&url));
            }
        }
        let client_id = std::env::var("TENURE_CLIENT_ID").ok()?;
        let secret_var = std::env::var("TENURE_CLIENT_SECRET_ENV")
            .unwrap_or_else(|_| "TENURE_CLIENT_SECRET".into());
        let secret = std::env::var(secret_var).ok()?;
        Some(Self::new(
            Endpoints::cloud(),
            client_id,
            Secret::new(secret),
        ))
    }

    /// No vendor configured: every vendor kind fails with a message that says how to
    /// configure one.
    pub fn unconfigured() -> Self {
        let mut v = Self::new(Endpoints::cloud(), "", Secret::new(""));
        v.configured = false;
        v
    }

    /// [`Vendors::from_env`], or [`Vendors::unconfigured`].
    pub fn from_env_or_unconfigured() -> Self {
        Self::from_env().unwrap_or_else(Self::unconfigured)
    }

    /// The HTTP client every request goes through (Tenure's timeouts, TLS, user agent).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A client acting in the run's tenant, recording requests in the attempt's log.
    pub fn client(&self, call: &Call<'_>) -> Result<Client, StepError> {
        self.tenant_client(&call.context["tenant"], call.requests.clone())
    }

    /// A client acting in `tenant` (a run context's `tenant` value: `tenant_id`, `domain` or
    /// `id`), recording requests in `requests`: for reads outside a run (`tenure people`).
    pub fn tenant_client(
        &self,
        tenant: &Value,
        requests: tenure_steps::Requests,
    ) -> Result<Client, StepError> {
        if !self.configured {
            return Err(StepError::permanent(
                "not_configured",
                "no vendor is configured: set TENURE_SANDBOX to a sandbox URL (tenure sandbox serve), or TENURE_CLIENT_ID and TENURE_CLIENT_SECRET for the real tenants",
            ));
        }
        let key = tenant["tenant_id"]
            .as_str()
            .or_else(|| tenant["domain"].as_str())
            .or_else(|| tenant["id"].as_str())
            .ok_or_else(|| StepError::permanent("no_tenant", "the run has no tenant"))?;
        Ok(Client::new(
            self.http.clone(),
            self.endpoints.clone(),
            TenantCredentials {
                tenant: key.to_string(),
                client_id: self.client_id.clone(),
                client_secret: self.client_secret.clone(),
                pax8: self.pax8.clone(),
                partner_center: self.partner_center.clone(),
            },
            self.tokens.clone(),
            requests,
        ))
    }
}

/// A vendor failure as a step error (the engine retries transient ones, waiting at least the
/// vendor's `Retry-After`).
pub fn step_error(e: VendorError) -> StepError {
    StepError {
        retryable: e.transient,
        code: e.code,
        message: e.message,
        retry_after: e.retry_after,
    }
}

/// A required string parameter.
pub fn param<'a>(params: &'a Value, name: &str) -> Result<&'a str, StepError> {
    params[name]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| StepError::permanent("invalid_params", format!("`{name}` is required")))
}

/// What most kinds start with: a client for the run's tenant, the `user` parameter, the user
/// (a missing user is a permanent error) and its object id.
pub async fn subject<'c>(
    vendors: &Vendors,
    call: &'c Call<'_>,
) -> Result<(Client, &'c str, Value, String), StepError> {
    let client = vendors.client(call)?;
    let name = param(call.params, "user")?;
    let u = crate::entra::user(&client, name).await?;
    let id = u["id"].as_str().unwrap_or_default().to_string();
    Ok((client, name, u, id))
}
