//! The managed tenants a run may act on. Until configuration files land, these are the built-in
//! sandbox tenants.

use serde_json::{json, Value};

/// One managed tenant.
pub struct Tenant {
    /// The id runbooks name.
    pub id: &'static str,
    /// Its primary verified domain.
    pub domain: &'static str,
    /// Its display name.
    pub name: &'static str,
}

/// The built-in sandbox tenants.
pub const SANDBOX: &[Tenant] = &[
    Tenant {
        id: "contoso",
        domain: "contoso.example",
        name: "Contoso",
    },
    Tenant {
        id: "fabrikam",
        domain: "fabrikam.example",
        name: "Fabrikam",
    },
];

/// Looks a tenant up by id (or by domain).
pub fn find(id: &str) -> Option<&'static Tenant> {
    SANDBOX.iter().find(|t| t.id == id || t.domain == id)
}

impl Tenant {
    /// The template context value `tenant`.
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "domain": self.domain, "name": self.name})
    }
}
