//! `tenure.toml`: the database, the managed tenants, and how to reach the vendors. Secrets are
//! never written in the file: it names the environment variables that hold them
//! (`*_env` keys). See `docs/tenure.example.toml`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use tenure_vendors::{Endpoints, Secret};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[database]`.
    #[serde(default)]
    pub database: Database,
    /// `[sandbox]`.
    #[serde(default)]
    pub sandbox: Sandbox,
    /// `[microsoft]`: the app registration (client credentials) used in every tenant.
    pub microsoft: Option<Microsoft>,
    /// `[pax8]`.
    pub pax8: Option<Pax8>,
    /// `[partner_center]`.
    pub partner_center: Option<PartnerCenter>,
    /// `[password_pusher]`.
    pub password_pusher: Option<PasswordPusher>,
    /// `[teams]`.
    pub teams: Option<Teams>,
    /// `[email]`.
    pub email: Option<Email>,
    /// `[psa]`, `[psa.halo]`, `[psa.connectwise]`, `[psa.autotask]`.
    pub psa: Option<Psa>,
    /// `[[tenants]]`.
    #[serde(default)]
    pub tenants: Vec<TenantEntry>,
    /// `[server]`: `tenure serve`.
    #[serde(default)]
    pub server: tenure_server::config::ServerSection,
    /// `[[webhooks]]`: ticket systems that may start runs.
    #[serde(default)]
    pub webhooks: Vec<tenure_server::config::WebhookSource>,
    /// `[[tokens]]`: API bearer tokens.
    #[serde(default)]
    pub tokens: Vec<tenure_server::config::TokenEntry>,
    /// `[[sync]]`: people sync sources (`tenure sync`, scheduled by `tenure serve`).
    #[serde(default)]
    pub sync: Vec<tenure_people::config::SyncSource>,
    /// The directory of the configuration file (relative source paths are read from it; the
    /// working directory without a file).
    #[serde(skip)]
    pub dir: std::path::PathBuf,
}

impl Config {
    /// The server's part of the configuration.
    pub fn server_config(&self) -> tenure_server::ServerConfig {
        tenure_server::ServerConfig {
            server: self.server.clone(),
            webhooks: self.webhooks.clone(),
            tokens: self.tokens.clone(),
        }
    }
}

/// `[teams]`: the channels `notify.teams` posts to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Teams {
    /// Channel name → the environment variable holding its Workflows webhook URL (the URL's
    /// `sig=` is a credential).
    #[serde(default)]
    pub channels: BTreeMap<String, String>,
}

/// `[email]`: how `notify.email` sends: Graph `sendMail` from a mailbox (the default), or an
/// SMTP relay (`transport = "smtp"` with `[email.smtp]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// `graph` (default) or `smtp`.
    pub transport: Option<String>,
    /// The mailbox (Graph: needs `Mail.Send` for the app) or the From address (SMTP).
    pub from: Option<String>,
    /// The tenant the mailbox is in (Graph; default: the run's tenant).
    pub tenant: Option<String>,
    /// `[email.smtp]`.
    pub smtp: Option<Smtp>,
}

/// `[email.smtp]`: the relay `notify.email` submits to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    /// The relay's host name.
    pub host: String,
    /// Its port (default: 587 for `starttls`, 465 for `tls`, 25 for `none`).
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit TLS) or `none` (only to 127.0.0.1 / ::1 /
    /// localhost).
    pub tls: Option<String>,
    /// The user for `AUTH`.
    pub username: Option<String>,
    /// The environment variable holding its password.
    pub password_env: Option<String>,
    /// Seconds one SMTP command may take (default 30).
    pub timeout_secs: Option<u64>,
}

impl Email {
    /// The SMTP relay, when `transport = "smtp"` (checked: TLS off the loopback interface,
    /// both credentials or none, a From address).
    fn smtp(&self) -> Result<Option<tenure_kinds::SmtpConfig>> {
        match self.transport.as_deref().unwrap_or("graph") {
            "graph" => {
                if self.smtp.is_some() {
                    bail!("[email.smtp] is set but [email] transport is not \"smtp\"");
                }
                Ok(None)
            }
            "smtp" => {
                let Some(smtp) = &self.smtp else {
                    bail!("[email] transport = \"smtp\" needs an [email.smtp] section (host, port, tls)");
                };
                if self.from.is_none() {
                    bail!("[email] transport = \"smtp\" needs a From address: [email] from");
                }
                let tls = match smtp.tls.as_deref() {
                    None => tenure_kinds::SmtpTls::StartTls,
                    Some(t) => tenure_kinds::SmtpTls::parse(t).with_context(|| {
                        format!("[email.smtp] tls must be starttls, tls or none, not `{t}`")
                    })?,
                };
                let port = smtp.port.unwrap_or(match tls {
                    tenure_kinds::SmtpTls::StartTls => 587,
                    tenure_kinds::SmtpTls::Implicit => 465,
                    tenure_kinds::SmtpTls::None => 25,
                });
                let password = match &smtp.password_env {
                    Some(var) => Some(env_secret(var, "SMTP password")?),
                    None => None,
                };
                let config = tenure_kinds::SmtpConfig {
                    host: smtp.host.clone(),
                    port,
                    tls,
                    username: smtp.username.clone(),
                    password,
                    timeout: std::time::Duration::from_secs(smtp.timeout_secs.unwrap_or(30)),
                };
                config
                    .check()
                    .map_err(|e| anyhow::anyhow!("[email.smtp]: {e}"))?;
                Ok(Some(config))
            }
            other => bail!("[email] transport must be graph or smtp, not `{other}`"),
        }
    }
}

impl Config {
    fn notify(&self) -> Result<tenure_kinds::NotifyConfig> {
        let mut teams = BTreeMap::new();
        for (name, var) in self.teams.iter().flat_map(|t| &t.channels) {
            teams.insert(
                name.clone(),
                env_secret(var, &format!("Teams webhook of channel {name}"))?,
            );
        }
        Ok(tenure_kinds::NotifyConfig {
            teams,
            email_from: self.email.as_ref().and_then(|e| e.from.clone()),
            email_tenant: self.email.as_ref().and_then(|e| e.tenant.clone()),
            smtp: match &self.email {
                Some(e) => e.smtp()?,
                None => None,
            },
        })
    }
}

/// `[password_pusher]`: where `password.share` makes one-time links.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordPusher {
    /// The instance (default `https://pwpush.com`).
    pub url: Option<String>,
    /// The environment variable holding the API token (without it pushes are anonymous and
    /// cannot be looked up on a repeat).
    pub token_env: Option<String>,
}

impl PasswordPusher {
    fn config(&self) -> Result<tenure_kinds::PwPushConfig> {
        Ok(tenure_kinds::PwPushConfig {
            url: self
                .url
                .as_deref()
                .unwrap_or("https://pwpush.com")
                .trim_end_matches('/')
                .to_string(),
            token: match &self.token_env {
                Some(var) => Some(env_secret(var, "Password Pusher API token")?),
                None => None,
            },
        })
    }
}

/// `[psa]`: the PSAs the `psa.*` kinds talk to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Psa {
    /// The provider of steps that name none (`halo`, `connectwise`, `autotask`).
    pub provider: Option<String>,
    /// `[psa.halo]`.
    pub halo: Option<Halo>,
    /// `[psa.connectwise]`.
    pub connectwise: Option<ConnectWise>,
    /// `[psa.autotask]`.
    pub autotask: Option<Autotask>,
}

/// `[psa.halo]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Halo {
    /// The instance, e.g. `https://msp.halopsa.com`.
    pub url: String,
    /// The authorisation server, when not `{url}/auth`.
    pub auth_url: Option<String>,
    /// The Halo tenant of a hosted multi-tenant instance.
    pub tenant: Option<String>,
    /// The API application's client id.
    pub client_id: String,
    /// The environment variable holding its secret.
    pub client_secret_env: String,
    /// Managed tenant id → Halo client id.
    #[serde(default)]
    pub clients: BTreeMap<String, u64>,
    /// The outcome id of Tenure's ticket notes (default 7, "Private Note").
    pub note_outcome_id: Option<u64>,
    /// Ticket status name → `status_id`.
    #[serde(default)]
    pub statuses: BTreeMap<String, u64>,
}

/// `[psa.connectwise]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectWise {
    /// The API base, e.g. `https://api-na.myconnectwise.net/v4_6_release/apis/3.0`.
    pub url: String,
    /// The company id you sign in with.
    pub company: String,
    /// The API member's public key.
    pub public_key: String,
    /// The environment variable holding its private key.
    pub private_key_env: String,
    /// The integration's `clientId`.
    pub client_id: String,
    /// Managed tenant id → ConnectWise company id.
    #[serde(default)]
    pub clients: BTreeMap<String, u64>,
    /// The communication type id of email addresses (default 1).
    pub email_type_id: Option<u64>,
    /// The communication type id of phone numbers (default 2).
    pub phone_type_id: Option<u64>,
}

/// `[psa.autotask]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autotask {
    /// The zone's REST base, e.g. `https://webservices5.autotask.net/atservicesrest`.
    pub url: String,
    /// The API user.
    pub username: String,
    /// The environment variable holding its secret.
    pub secret_env: String,
    /// The integration's tracking identifier.
    pub integration_code: String,
    /// Managed tenant id → Autotask company id.
    #[serde(default)]
    pub clients: BTreeMap<String, u64>,
    /// The `noteType` of Tenure's ticket notes (default 1).
    pub note_type: Option<u64>,
    /// Ticket status name → `status` picklist value.
    #[serde(default)]
    pub statuses: BTreeMap<String, u64>,
}

/// `[database]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// `sqlite:PATH` or `postgres://USER@HOST/DB` (a password belongs in `TENURE_DB`).
    pub url: Option<String>,
}

/// `[sandbox]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sandbox {
    /// Use the sandbox at this URL instead of the real clouds.
    pub url: Option<String>,
}

/// `[microsoft]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Microsoft {
    /// Application (client) id.
    pub client_id: String,
    /// The environment variable holding the client secret.
    pub client_secret_env: String,
}

/// `[pax8]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pax8 {
    /// Pax8 API client id.
    pub client_id: String,
    /// The environment variable holding the Pax8 client secret.
    pub client_secret_env: String,
}

/// `[partner_center]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerCenter {
    /// The partner's own tenant (GUID or domain).
    pub partner_tenant: String,
    /// The environment variable holding the App+User refresh token.
    pub refresh_token_env: String,
}

/// `[[tenants]]`: a managed tenant.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantEntry {
    /// The id runbooks name (`tenant: contoso`).
    pub id: String,
    /// The customer tenant's GUID (default: `domain`).
    pub tenant_id: Option<String>,
    /// Its primary verified domain.
    pub domain: String,
    /// Its display name.
    pub name: String,
    /// Its IANA timezone (`Australia/Sydney`), for runbooks' `tenant.timezone` (default UTC).
    pub timezone: Option<String>,
}

/// The From address of email sent to the sandbox's SMTP listener when `[email] from` is unset.
pub const SANDBOX_FROM: &str = "tenure@msp.example";

static LOADED: OnceLock<Config> = OnceLock::new();

/// Reads `path`, or `tenure.toml` in the working directory if it exists; no file means the
/// built-in defaults (SQLite and the sandbox tenants).
pub fn load(path: Option<&Path>) -> Result<&'static Config> {
    let config = match path {
        Some(p) => parse(p)?,
        None if Path::new("tenure.toml").exists() => parse(Path::new("tenure.toml"))?,
        None => Config::default(),
    };
    let shown = path.map_or_else(|| Path::new("tenure.toml").to_path_buf(), Path::to_path_buf);
    let loaded = LOADED.get_or_init(|| config);
    // After the configuration is in place: compiling a runbook reads it (tenants).
    check_sync_runbooks(&shown, loaded, Path::new(crate::load::RUNBOOKS_DIR))?;
    Ok(loaded)
}

/// Every input a `[sync.runbooks]` entry gives must be one its runbook declares (when the
/// runbook is found under `dir` and compiles; otherwise `tenure sync` reports it): an input
/// the runbook does not know would be refused at every run start. The stock defaults are
/// not checked here (the stock runbooks declare them). Errors name the file and, when it can
/// be found, the line of the input.
pub fn check_sync_runbooks(path: &Path, config: &Config, dir: &Path) -> Result<()> {
    if config.sync.is_empty() || !dir.is_dir() {
        return Ok(());
    }
    let defaults = tenure_people::config::Runbooks::default();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for src in &config.sync {
        for (action, choice, default) in [
            ("create", &src.runbooks.create, &defaults.create),
            ("update", &src.runbooks.update, &defaults.update),
            ("activate", &src.runbooks.activate, &defaults.activate),
            ("deactivate", &src.runbooks.deactivate, &defaults.deactivate),
        ] {
            if choice == default {
                continue;
            }
            let Ok(plan) = crate::commands::sync::resolve_in(dir, &choice.runbook) else {
                continue;
            };
            for input in choice.inputs.keys() {
                if plan.inputs.contains_key(input) {
                    continue;
                }
                let line = text
                    .find(&format!("{input} ="))
                    .or_else(|| text.find(&format!("{input}=")))
                    .map(|at| format!(":{}", text[..at].matches('\n').count() + 1))
                    .unwrap_or_default();
                let declared: Vec<&str> = plan.inputs.keys().map(String::as_str).collect();
                bail!(
                    "{}{line}: [[sync]] `{}`: [sync.runbooks.{action}] input `{input}` is not \
                     an input of the runbook `{}` (its inputs: {})",
                    path.display(),
                    src.id,
                    choice.runbook,
                    if declared.is_empty() {
                        "none".to_string()
                    } else {
                        declared.join(", ")
                    }
                );
            }
        }
    }
    Ok(())
}

/// The loaded configuration (defaults before [`load`]).
pub fn get() -> &'static Config {
    LOADED.get_or_init(Config::default)
}

fn parse(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))?;
    // A syntax error names its place, never the line itself (it may hold a secret).
    let table: toml::Table = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
    // Secrets belong in the environment: refuse them in the file, naming the fix.
    refuse_secrets(path, "", &table)?;
    if let Some(url) = table
        .get("database")
        .and_then(|d| d.get("url"))
        .and_then(toml::Value::as_str)
    {
        if has_password(url) {
            bail!(
                "{}: `[database] url` must not hold a password ({}); set the whole URL in the \
                 environment variable TENURE_DB instead",
                path.display(),
                crate::commands::runs::redact_url(url)
            );
        }
    }
    let mut config: Config = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
    config.dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    tenure_people::config::validate_all(&config.sync)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let runbooks = Path::new(crate::load::RUNBOOKS_DIR);
    if runbooks.is_dir() {
        crate::commands::batch_approvers::check(&config.sync, runbooks)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?;
    }
    for t in &config.tenants {
        if let Some(zone) = &t.timezone {
            if zone.parse::<chrono_tz::Tz>().is_err() {
                bail!(
                    "{}: [[tenants]] `{}`: `{zone}` is not an IANA timezone (e.g. Australia/Sydney, Europe/London, UTC)",
                    path.display(),
                    t.id
                );
            }
        }
    }
    Ok(config)
}

/// A TOML error as `FILE:LINE:COL: message`, without the source line it quotes.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let place = e.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!(":{line}:{col}")
    });
    anyhow::anyhow!(
        "{}{} is not a valid configuration: {}",
        path.display(),
        place.unwrap_or_default(),
        e.message().trim_end()
    )
}

/// Whether a configuration key names a secret (`client_secret`, `api_token`, `password`...).
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    !k.ends_with("_env")
        && ["secret", "password", "token", "passwd"]
            .iter()
            .any(|w| k.contains(w))
}

/// Refuses every key named like a secret that holds a value (at any depth, in tables, inline
/// tables and arrays of tables, however the key is quoted or spaced).
fn refuse_secrets(path: &Path, prefix: &str, table: &toml::Table) -> Result<()> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => refuse_secrets(path, &name, t)?,
            toml::Value::Array(items)
                if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
            {
                for t in items.iter().filter_map(toml::Value::as_table) {
                    refuse_secrets(path, &name, t)?;
                }
            }
            _ if is_secret_key(key) => bail!(
                "{}: `{name}` must not be written in the file; put it in an environment variable \
                 and name that with `{key}_env`",
                path.display()
            ),
            _ => {}
        }
    }
    Ok(())
}

/// Whether a database URL carries a password (`postgres://user:pw@host/db`, `?password=`).
fn has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    in_userinfo || rest.to_ascii_lowercase().contains("password=")
}

fn env_secret(var: &str, what: &str) -> Result<Secret> {
    std::env::var(var).map(Secret::new).with_context(|| {
        format!("the {what} is read from the environment variable {var}, which is not set")
    })
}

impl Config {
    /// The database URL: `--db` / `TENURE_DB`, else the file's, else `sqlite:tenure.db`.
    pub fn database_url(&self, flag: Option<&str>) -> String {
        flag.map(str::to_string)
            .or_else(|| self.database.url.clone())
            .unwrap_or_else(|| "sqlite:tenure.db".into())
    }

    /// The sandbox URL, from `TENURE_SANDBOX` or `[sandbox] url`.
    pub fn sandbox_url(&self) -> Option<String> {
        std::env::var("TENURE_SANDBOX")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| self.sandbox.url.clone())
    }

    /// How the vendor kinds reach the vendors (the sandbox's PSAs and seed credentials with the
    /// sandbox, else `[psa.*]`): the sandbox, the configured app registration,
    /// the `TENURE_CLIENT_ID` / `TENURE_CLIENT_SECRET` environment, or nothing (the kinds then
    /// fail with a message saying how to configure them). With the sandbox, email goes to its
    /// SMTP listener when `TENURE_SANDBOX_SMTP` names it (`tenure sandbox serve` prints it),
    /// or to an `[email]` SMTP relay when one is configured, else through its Graph `sendMail`
    /// from the `[email]` mailbox; with no `[email]` at all, to the SMTP listener the sandbox's
    /// `/_sandbox/health` names.
    pub fn vendors(&self) -> Result<tenure_kinds::Vendors> {
        if let Some(url) = self.sandbox_url() {
            let mut v = tenure_kinds::Vendors::sandbox(&url);
            let from = self.email.as_ref().and_then(|e| e.from.clone());
            if let Some(smtp) = self.email.as_ref().map(Email::smtp).transpose()?.flatten() {
                v = v.with_smtp(smtp, from.unwrap_or_default());
            } else if let Some(addr) = std::env::var("TENURE_SANDBOX_SMTP")
                .ok()
                .filter(|a| !a.is_empty())
            {
                let addr: std::net::SocketAddr = addr.parse().with_context(|| {
                    format!("TENURE_SANDBOX_SMTP must be HOST:PORT of the sandbox's SMTP listener, not `{addr}`")
                })?;
                v = v.with_smtp(
                    tenure_kinds::SmtpConfig::sandbox(addr),
                    from.unwrap_or_else(|| SANDBOX_FROM.to_string()),
                );
            } else if let Some(e) = &self.email {
                // `[email]` names a sandbox mailbox to send from (the sandbox has no MSP tenant).
                let mut notify = v.notify().clone();
                notify.email_from.clone_from(&e.from);
                notify.email_tenant.clone_from(&e.tenant);
                v = v.with_notify(notify);
            }
            return Ok(v);
        }
        let Some(ms) = &self.microsoft else {
            let mut v = tenure_kinds::Vendors::from_env_or_unconfigured();
            if let Some(psa) = &self.psa {
                v = v.with_psa(psa.config()?);
            }
            if let Some(pp) = &self.password_pusher {
                v = v.with_pwpush(pp.config()?);
            }
            if self.teams.is_some() || self.email.is_some() {
                v = v.with_notify(self.notify()?);
            }
            return Ok(v);
        };
        let mut v = tenure_kinds::Vendors::new(
            Endpoints::cloud(),
            ms.client_id.clone(),
            env_secret(&ms.client_secret_env, "Microsoft client secret")?,
        );
        if let Some(p) = &self.pax8 {
            v = v.with_pax8(
                p.client_id.clone(),
                env_secret(&p.client_secret_env, "Pax8 client secret")?,
            );
        }
        if let Some(psa) = &self.psa {
            v = v.with_psa(psa.config()?);
        }
        if let Some(pp) = &self.password_pusher {
            v = v.with_pwpush(pp.config()?);
        }
        if self.teams.is_some() || self.email.is_some() {
            v = v.with_notify(self.notify()?);
        }
        if let Some(pc) = &self.partner_center {
            v = v.with_partner_center(
                pc.partner_tenant.clone(),
                env_secret(&pc.refresh_token_env, "Partner Center refresh token")?,
            );
        }
        Ok(v)
    }
}

impl Psa {
    /// The kinds' PSA configuration, with each secret read from its environment variable.
    pub fn config(&self) -> Result<tenure_kinds::PsaConfig> {
        let default = match self.provider.as_deref() {
            None => None,
            Some(name) => Some(tenure_kinds::PsaProvider::parse(name).with_context(|| {
                format!("[psa] provider must be halo, connectwise or autotask, not `{name}`")
            })?),
        };
        let halo = match &self.halo {
            None => None,
            Some(h) => Some(tenure_kinds::HaloConfig {
                url: h.url.trim_end_matches('/').to_string(),
                auth_url: h.auth_url.clone(),
                tenant: h.tenant.clone(),
                client_id: h.client_id.clone(),
                client_secret: env_secret(&h.client_secret_env, "HaloPSA client secret")?,
                clients: h.clients.clone(),
                note_outcome_id: h.note_outcome_id.unwrap_or(7),
                statuses: h.statuses.clone(),
            }),
        };
        let connectwise = match &self.connectwise {
            None => None,
            Some(c) => Some(tenure_kinds::ConnectWiseConfig {
                url: c.url.trim_end_matches('/').to_string(),
                company: c.company.clone(),
                public_key: c.public_key.clone(),
                private_key: env_secret(&c.private_key_env, "ConnectWise private key")?,
                client_id: c.client_id.clone(),
                clients: c.clients.clone(),
                email_type_id: c.email_type_id.unwrap_or(1),
                phone_type_id: c.phone_type_id.unwrap_or(2),
            }),
        };
        let autotask = match &self.autotask {
            None => None,
            Some(a) => Some(tenure_kinds::AutotaskConfig {
                url: a.url.trim_end_matches('/').to_string(),
                username: a.username.clone(),
                secret: env_secret(&a.secret_env, "Autotask API secret")?,
                integration_code: a.integration_code.clone(),
                clients: a.clients.clone(),
                note_type: a.note_type.unwrap_or(1),
                statuses: a.statuses.clone(),
            }),
        };
        Ok(tenure_kinds::PsaConfig {
            default,
            halo,
            connectwise,
            autotask,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenure.toml");
        std::fs::write(&path, text).unwrap();
        match parse(&path) {
            Ok(_) => "ok".into(),
            Err(e) => format!("{e:#}").replace(&path.display().to_string(), "FILE"),
        }
    }

    #[test]
    fn secrets_in_the_file_are_refused_however_written() {
        for text in [
            "[microsoft]\nclient_id = \"x\"\n\"client_secret\" = \"hunter2\"\n",
            "[microsoft]\nclient_id = \"x\"\nclient_secret\t= \"hunter2\"\n",
            "microsoft = { client_id = \"x\", client_secret = \"hunter2\" }\n",
        ] {
            let e = check(text);
            assert_eq!(e, "FILE: `microsoft.client_secret` must not be written in the file; put it in an environment variable and name that with `client_secret_env`");
        }
        let e = check("[[tenants]]\nid = \"a\"\napi_token = \"hunter2\"\n");
        assert!(e.contains("`tenants.api_token` must not be written"), "{e}");
    }

    #[test]
    fn errors_never_print_the_line() {
        let e = check("[microsoft]\nclient_secret = \"hunter2\n");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.starts_with("FILE:2:"), "{e}");
    }

    #[test]
    fn a_database_password_is_refused() {
        let e = check("[database]\nurl = \"postgres://tenure:hunter2@db/tenure\"\n");
        assert_eq!(e, "FILE: `[database] url` must not hold a password (postgres://tenure:***@db/tenure); set the whole URL in the environment variable TENURE_DB instead");
        assert_eq!(
            check("[database]\nurl = \"postgres://tenure@db/tenure\"\n"),
            "ok"
        );
    }
}

#[cfg(test)]
mod email_tests {
    use super::*;

    fn email(text: &str) -> std::result::Result<Option<tenure_kinds::SmtpConfig>, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config
            .email
            .as_ref()
            .map(Email::smtp)
            .transpose()
            .map(Option::flatten)
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn smtp_is_configured_with_tls_defaults_and_plain_only_to_loopback() {
        let c = email("[email]\ntransport = \"smtp\"\nfrom = \"it@msp.example\"\n[email.smtp]\nhost = \"smtp.office365.com\"\n")
            .unwrap()
            .unwrap();
        assert_eq!((c.tls, c.port), (tenure_kinds::SmtpTls::StartTls, 587));
        let c = email("[email]\ntransport = \"smtp\"\nfrom = \"it@msp.example\"\n[email.smtp]\nhost = \"mail.example\"\ntls = \"tls\"\n")
            .unwrap()
            .unwrap();
        assert_eq!((c.tls, c.port), (tenure_kinds::SmtpTls::Implicit, 465));
        let c = email("[email]\ntransport = \"smtp\"\nfrom = \"it@msp.example\"\n[email.smtp]\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\n")
            .unwrap()
            .unwrap();
        assert_eq!((c.tls, c.port), (tenure_kinds::SmtpTls::None, 2525));
        assert!(email("[email]\nfrom = \"it@msp.example\"\n")
            .unwrap()
            .is_none());
        for (text, expected) in [
            ("[email]\ntransport = \"smtp\"\nfrom = \"a@b.example\"\n[email.smtp]\nhost = \"smtp.example.com\"\ntls = \"none\"\n", "only allowed to 127.0.0.1"),
            ("[email]\ntransport = \"smtp\"\nfrom = \"a@b.example\"\n[email.smtp]\nhost = \"h\"\ntls = \"ssl\"\n", "tls must be starttls, tls or none"),
            ("[email]\ntransport = \"smtp\"\nfrom = \"a@b.example\"\n", "needs an [email.smtp] section"),
            ("[email]\ntransport = \"smtp\"\n[email.smtp]\nhost = \"h\"\n", "needs a From address"),
            ("[email]\ntransport = \"pigeon\"\n", "graph or smtp"),
            ("[email]\nfrom = \"a@b.example\"\n[email.smtp]\nhost = \"h\"\n", "transport is not \"smtp\""),
            ("[email]\ntransport = \"smtp\"\nfrom = \"a@b.example\"\n[email.smtp]\nhost = \"h\"\nusername = \"u\"\npassword_env = \"TENURE_TEST_UNSET_SMTP_PASSWORD\"\n", "TENURE_TEST_UNSET_SMTP_PASSWORD, which is not set"),
        ] {
            let e = email(text).unwrap_err();
            assert!(e.contains(expected), "{e}");
        }
    }

    #[test]
    fn an_smtp_password_in_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenure.toml");
        std::fs::write(
            &path,
            "[email]\ntransport = \"smtp\"\n[email.smtp]\nhost = \"h\"\npassword = \"hunter2\"\n",
        )
        .unwrap();
        let e = format!("{:#}", parse(&path).unwrap_err());
        assert!(
            e.contains("`email.smtp.password` must not be written in the file"),
            "{e}"
        );
        assert!(!e.contains("hunter2"));
    }
}
