//! Bearer tokens and roles. Each `[[tokens]]` entry's token is read from its environment
//! variable when the server starts (a missing one stops it, naming the variable); a request
//! presents `Authorization: Bearer <token>`, compared with every configured token in constant
//! time. Without any token configured the API refuses everything: it is never open by default.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::config::{Role, ServerConfig};
use crate::state::AppState;

/// One usable token: who it is, what it may do, and the SHA-256 of its secret.
#[derive(Clone)]
struct Entry {
    name: String,
    role: Role,
    digest: [u8; 32],
}

/// The configured tokens, read from the environment.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| (&e.name, e.role)))
            .finish()
    }
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Equal digests, in time independent of where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    /// Reads every `[[tokens]]` entry's token from its environment variable. A missing or
    /// empty variable is an error naming it.
    pub fn from_config(config: &ServerConfig) -> Result<Tokens, crate::Error> {
        let mut entries = Vec::new();
        for t in &config.tokens {
            let secret = std::env::var(&t.token_env).unwrap_or_default();
            if secret.trim().is_empty() {
                return Err(crate::Error::Config(format!(
                    "[[tokens]] `{}`: the environment variable {} is not set (it holds the API token)",
                    t.name, t.token_env
                )));
            }
            entries.push(Entry {
                name: t.name.clone(),
                role: t.role,
                digest: digest(secret.trim().as_bytes()),
            });
        }
        Ok(Tokens { entries })
    }

    /// Who `presented` is, if it is a configured token: its name, role and a digest of its
    /// secret (which changes when the token is rotated).
    pub fn identify(&self, presented: &str) -> Option<Identity> {
        self.find(presented.trim()).map(Identity::of)
    }

    /// The configured token named `name`, as it is now (its role may have changed since a
    /// session began; a removed token is `None`).
    pub fn named(&self, name: &str) -> Option<Identity> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .map(Identity::of)
    }

    /// Tokens from `(name, role, secret)` triples, for tests.
    #[cfg(test)]
    pub(crate) fn for_tests(list: &[(&str, Role, &str)]) -> Tokens {
        Tokens {
            entries: list
                .iter()
                .map(|(name, role, secret)| Entry {
                    name: name.to_string(),
                    role: *role,
                    digest: digest(secret.as_bytes()),
                })
                .collect(),
        }
    }

    /// Whether any token is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The token whose secret is `presented`, if one is.
    fn find(&self, presented: &str) -> Option<&Entry> {
        let d = digest(presented.as_bytes());
        // Every entry is compared, so the time taken says nothing about which one matched.
        let mut found = None;
        for e in &self.entries {
            if same(&e.digest, &d) && found.is_none() {
                found = Some(e);
            }
        }
        found
    }
}

/// A configured token, without its secret: name, role and the SHA-256 of the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The token's name (who the journal says acted).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// SHA-256 of its secret.
    pub digest: [u8; 32],
}

impl Identity {
    fn of(e: &Entry) -> Identity {
        Identity {
            name: e.name.clone(),
            role: e.role,
            digest: e.digest,
        }
    }
}

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read runbooks, runs, events, approvals.
    Read,
    /// Decide approval gates (that name the caller).
    Decide,
    /// Start runs.
    Start,
    /// Cancel, retry and roll back runs.
    Operate,
}

/// Whether `role` grants `permission` (interfaces.md, "Roles").
pub fn allows(role: Role, permission: Permission) -> bool {
    match permission {
        Permission::Read => true,
        Permission::Decide => matches!(role, Role::Approver | Role::Admin),
        Permission::Start | Permission::Operate => matches!(role, Role::Operator | Role::Admin),
    }
}

/// The authenticated caller of an API request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's name (who the journal says acted).
    pub name: String,
    /// Its role.
    pub role: Role,
}

impl Caller {
    /// `Ok` when the caller's role grants `permission`; 403 naming the role otherwise.
    pub fn may(&self, permission: Permission) -> Result<(), ApiError> {
        if allows(self.role, permission) {
            return Ok(());
        }
        let what = match permission {
            Permission::Read => "read",
            Permission::Decide => "decide approvals",
            Permission::Start => "start runs",
            Permission::Operate => "cancel, retry or roll back runs",
        };
        Err(ApiError::forbidden(format!(
            "token `{}` has the role {:?}, which may not {what}",
            self.name, self.role
        )))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let tokens = parts
            .extensions
            .get::<Arc<Tokens>>()
            .cloned()
            .unwrap_or_default();
        if tokens.entries.is_empty() {
            return Err(ApiError::unauthorized(
                "no API tokens are configured: add a [[tokens]] entry (name, role, token_env) to tenure.toml",
            ));
        }
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_string())
            })
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "send `Authorization: Bearer <token>` with a configured token",
                )
            })?;
        let entry = tokens
            .find(&presented)
            .ok_or_else(|| ApiError::unauthorized("the bearer token is not one configured"))?;
        Ok(Caller {
            name: entry.name.clone(),
            role: entry.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_interfaces_md_says() {
        use Permission::*;
        let table = [
            (Role::Viewer, [true, false, false, false]),
            (Role::Approver, [true, true, false, false]),
            (Role::Operator, [true, false, true, true]),
            (Role::Admin, [true, true, true, true]),
        ];
        for (role, grants) in table {
            for (p, want) in [Read, Decide, Start, Operate].into_iter().zip(grants) {
                assert_eq!(allows(role, p), want, "{role:?} {p:?}");
            }
        }
    }

    #[test]
    fn digests_compare_whole() {
        let a = digest(b"one");
        assert!(same(&a, &digest(b"one")));
        assert!(!same(&a, &digest(b"two")));
    }
}
