//! Where each PSA lives and how Tenure signs in there, the mapping from a managed tenant to its
//! PSA client, and the ids that differ per PSA instance (note outcomes and types, ticket
//! statuses). Built from `tenure.toml` (`[psa]`, `[psa.halo]`, `[psa.connectwise]`,
//! `[psa.autotask]`) or, with the sandbox, from its seed.

use std::collections::BTreeMap;
use std::fmt;

use tenure_vendors::Secret;

/// Which PSA a step talks to (`provider:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsaProvider {
    /// HaloPSA.
    Halo,
    /// ConnectWise Manage.
    ConnectWise,
    /// Autotask PSA.
    Autotask,
}

impl PsaProvider {
    /// From a runbook's `provider:` (`halo`, `connectwise`, `autotask`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "halo" => Some(PsaProvider::Halo),
            "connectwise" => Some(PsaProvider::ConnectWise),
            "autotask" => Some(PsaProvider::Autotask),
            _ => None,
        }
    }

    /// The runbook name of the provider.
    pub fn name(self) -> &'static str {
        match self {
            PsaProvider::Halo => "halo",
            PsaProvider::ConnectWise => "connectwise",
            PsaProvider::Autotask => "autotask",
        }
    }
}

impl fmt::Display for PsaProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// HaloPSA: client credentials at `{url}/auth/token` (`scope=all`), the API at `{url}/api`.
#[derive(Clone, Debug)]
pub struct HaloConfig {
    /// The instance, e.g. `https://msp.halopsa.com` (no trailing slash).
    pub url: String,
    /// The authorisation server when it is not `{url}/auth` (`GET {url}/api/authinfo` says).
    pub auth_url: Option<String>,
    /// The Halo tenant of a multi-tenant hosted instance (`?tenant=` on the token request).
    pub tenant: Option<String>,
    /// The API application's client id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: Secret,
    /// Managed tenant id → Halo client id.
    pub clients: BTreeMap<String, u64>,
    /// The outcome of the actions Tenure adds as ticket notes (`GET /api/Outcome` lists them;
    /// 7 is the stock "Private Note").
    pub note_outcome_id: u64,
    /// Ticket status name → `status_id` (`GET /api/Status`).
    pub statuses: BTreeMap<String, u64>,
}

/// ConnectWise Manage: Basic `company+public:private` and the integration's `clientId`.
#[derive(Clone, Debug)]
pub struct ConnectWiseConfig {
    /// The API base, e.g. `https://api-na.myconnectwise.net/v4_6_release/apis/3.0`.
    pub url: String,
    /// The company id you sign in with.
    pub company: String,
    /// The API member's public key.
    pub public_key: String,
    /// Its private key.
    pub private_key: Secret,
    /// The integration's `clientId` (developer portal).
    pub client_id: String,
    /// Managed tenant id → ConnectWise company id.
    pub clients: BTreeMap<String, u64>,
    /// The communication type id of an email address (`1`, "Email", on stock instances).
    pub email_type_id: u64,
    /// The communication type id of a phone number (`2`, "Direct", on stock instances).
    pub phone_type_id: u64,
}

/// Autotask: the `ApiIntegrationCode`, `UserName` and `Secret` headers on every request.
#[derive(Clone, Debug)]
pub struct AutotaskConfig {
    /// The zone's REST base, e.g. `https://webservices5.autotask.net/atservicesrest` (from
    /// `zoneInformation?user=`).
    pub url: String,
    /// The API user.
    pub username: String,
    /// Its secret.
    pub secret: Secret,
    /// The integration's tracking identifier.
    pub integration_code: String,
    /// Managed tenant id → Autotask company id.
    pub clients: BTreeMap<String, u64>,
    /// The `noteType` picklist value of Tenure's ticket notes (instance-specific).
    pub note_type: u64,
    /// Ticket status name → `status` picklist value.
    pub statuses: BTreeMap<String, u64>,
}

/// Every configured PSA, and the one `provider:` defaults to.
#[derive(Clone, Debug, Default)]
pub struct PsaConfig {
    /// The provider of steps that name none (default: the only one configured).
    pub default: Option<PsaProvider>,
    /// `[psa.halo]`.
    pub halo: Option<HaloConfig>,
    /// `[psa.connectwise]`.
    pub connectwise: Option<ConnectWiseConfig>,
    /// `[psa.autotask]`.
    pub autotask: Option<AutotaskConfig>,
}

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

impl PsaConfig {
    /// The three PSAs of the sandbox at `base`, with its seed credentials and clients; Halo is
    /// the default.
    pub fn sandbox(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        let secret = || Secret::new("sandbox-secret");
        PsaConfig {
            default: Some(PsaProvider::Halo),
            halo: Some(HaloConfig {
                url: format!("{base}/sandbox.halopsa.com"),
                auth_url: None,
                tenant: None,
                client_id: "tenure-sandbox".into(),
                client_secret: secret(),
                clients: map(&[("contoso", 1), ("fabrikam", 2)]),
                note_outcome_id: 7,
                statuses: map(&[
                    ("New", 1),
                    ("In Progress", 2),
                    ("Waiting on Customer", 3),
                    ("Closed", 9),
                ]),
            }),
            connectwise: Some(ConnectWiseConfig {
                url: format!("{base}/api-na.myconnectwise.net/v4_6_release/apis/3.0"),
                company: "tenure".into(),
                public_key: "tenure-sandbox".into(),
                private_key: secret(),
                client_id: "tenure-sandbox".into(),
                clients: map(&[("contoso", 250), ("fabrikam", 251)]),
                email_type_id: 1,
                phone_type_id: 2,
            }),
            autotask: Some(AutotaskConfig {
                url: format!("{base}/webservices2.autotask.net/atservicesrest"),
                username: "tenure-sandbox@autotask.example".into(),
                secret: secret(),
                integration_code: "tenure-sandbox".into(),
                clients: map(&[("contoso", 29683), ("fabrikam", 29684)]),
                note_type: 1,
                statuses: map(&[
                    ("New", 1),
                    ("Complete", 5),
                    ("Waiting Customer", 7),
                    ("In Progress", 8),
                ]),
            }),
        }
    }

    /// The provider a step means: its `provider:`, else the configured default, else the only
    /// PSA configured.
    pub fn provider(&self, named: Option<&str>) -> Result<PsaProvider, String> {
        if let Some(name) = named.filter(|n| !n.is_empty()) {
            let p = PsaProvider::parse(name).ok_or_else(|| {
                format!("`provider` must be halo, connectwise or autotask, not `{name}`")
            })?;
            return if self.has(p) {
                Ok(p)
            } else {
                Err(format!(
                    "no {p} PSA is configured: add a [psa.{p}] section to tenure.toml"
                ))
            };
        }
        if let Some(p) = self.default {
            return Ok(p);
        }
        let configured: Vec<PsaProvider> = [
            PsaProvider::Halo,
            PsaProvider::ConnectWise,
            PsaProvider::Autotask,
        ]
        .into_iter()
        .filter(|p| self.has(*p))
        .collect();
        match configured.as_slice() {
            [one] => Ok(*one),
            [] => Err("no PSA is configured: add a [psa.halo], [psa.connectwise] or [psa.autotask] section to tenure.toml (or use the sandbox)".into()),
            _ => Err("several PSAs are configured: name one with `provider:` or set `default` under [psa]".into()),
        }
    }

    fn has(&self, p: PsaProvider) -> bool {
        match p {
            PsaProvider::Halo => self.halo.is_some(),
            PsaProvider::ConnectWise => self.connectwise.is_some(),
            PsaProvider::Autotask => self.autotask.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_is_named_defaulted_or_the_only_one() {
        let all = PsaConfig::sandbox("http://x");
        assert_eq!(all.provider(None), Ok(PsaProvider::Halo));
        assert_eq!(all.provider(Some("autotask")), Ok(PsaProvider::Autotask));
        assert!(all.provider(Some("kaseya")).unwrap_err().contains("halo"));
        let only_cw = PsaConfig {
            connectwise: all.connectwise.clone(),
            ..PsaConfig::default()
        };
        assert_eq!(only_cw.provider(None), Ok(PsaProvider::ConnectWise));
        assert!(only_cw
            .provider(Some("halo"))
            .unwrap_err()
            .contains("[psa.halo]"));
        assert!(PsaConfig::default()
            .provider(None)
            .unwrap_err()
            .contains("no PSA"));
    }
}
