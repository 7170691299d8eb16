//! The managed tenants a run may act on: those of `tenure.toml`, plus the built-in sandbox
//! tenants when no tenant is configured or the sandbox is in use.

use serde_json::{json, Value};

use crate::config;

/// One managed tenant.
#[derive(Clone, Debug)]
pub struct Tenant {
    /// The id runbooks name.
    pub id: String,
    /// The customer tenant's GUID, if configured.
    pub tenant_id: Option<String>,
    /// Its primary verified domain.
    pub domain: String,
    /// Its display name.
    pub name: String,
    /// Its IANA timezone (UTC when not configured).
    pub timezone: String,
}

/// The built-in sandbox tenants: (id, domain, name, timezone).
const SANDBOX: &[(&str, &str, &str, &str)] = &[
    ("contoso", "contoso.example", "Contoso", "Australia/Sydney"),
    ("fabrikam", "fabrikam.example", "Fabrikam", "Europe/London"),
];

/// Every tenant runs may name.
pub fn all() -> Vec<Tenant> {
    let c = config::get();
    let mut tenants: Vec<Tenant> = c
        .tenants
        .iter()
        .map(|t| Tenant {
            id: t.id.clone(),
            tenant_id: t.tenant_id.clone(),
            domain: t.domain.clone(),
            name: t.name.clone(),
            timezone: t.timezone.clone().unwrap_or_else(|| "UTC".into()),
        })
        .collect();
    if tenants.is_empty() || c.sandbox_url().is_some() {
        for (id, domain, name, timezone) in SANDBOX {
            if !tenants.iter().any(|t| t.id == *id) {
                tenants.push(Tenant {
                    id: id.to_string(),
                    tenant_id: None,
                    domain: domain.to_string(),
                    name: name.to_string(),
                    timezone: timezone.to_string(),
                });
            }
        }
    }
    tenants
}

/// Looks a tenant up by id (or by domain).
pub fn find(id: &str) -> Option<Tenant> {
    all().into_iter().find(|t| t.id == id || t.domain == id)
}

/// The ids of every tenant, for error messages.
pub fn known() -> String {
    all()
        .iter()
        .map(|t| t.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Tenant {
    /// The template context value `tenant`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"id": self.id, "domain": self.domain, "name": self.name, "timezone": self.timezone});
        if let Some(t) = &self.tenant_id {
            v["tenant_id"] = json!(t);
        }
        v
    }
}
