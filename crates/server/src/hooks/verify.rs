//! Verifying a delivery per source kind, with secrets read from the environment when the server
//! starts. Every comparison of a secret or signature is constant-time (`subtle`, or `hmac`'s
//! `verify_slice`, which uses it).
//!
//! Wire formats followed:
//! - HaloPSA: HTTP Basic or a bearer token on the request (Halo documents no body signature;
//!   api-facts.md §6.1 "Webhooks (outgoing)", usehalo.com/guide/webhook-integration).
//! - ConnectWise: `x-content-signature` = base64(HMAC-SHA256(key = SHA-256(signing key), raw
//!   body)), the signing key fetched from `Metadata.key_url` (api-facts.md §6.2 "Callbacks";
//!   see [`super::connectwise`]).
//! - Autotask: `X-Hook-Signature: sha1=<base64 HMAC-SHA1(secret key, raw body)>` (Autotask
//!   Developer Help, "Secret key and payload verification").
//! - Generic: `X-Tenure-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`
//!   (interfaces.md, "Server configuration").

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tenure_runbook::{Renderer, Template};

use super::connectwise::{Keys, Trusted};
use crate::config::{WebhookKind, WebhookSource};
use crate::Error;

/// How one source's deliveries are checked.
pub(crate) enum Check {
    /// HaloPSA: SHA-256 digests of the accepted `user:password` and bearer token.
    Halo {
        basic: Option<[u8; 32]>,
        bearer: Option<[u8; 32]>,
    },
    /// ConnectWise: where keys may come from and the `clientId` to fetch them with.
    Connectwise {
        trusted: Trusted,
        client_id: Option<String>,
    },
    /// Autotask: the HMAC-SHA1 secret key.
    Autotask { secret: Vec<u8> },
    /// Generic: the HMAC-SHA256 secret.
    Generic { secret: Vec<u8> },
}

/// One configured source, ready to receive.
pub(crate) struct Source {
    /// Its configuration.
    pub config: WebhookSource,
    /// Its verification, or why it cannot verify anything (lenient start only).
    pub check: Result<Check, String>,
    /// The dedup template (configured, or the kind's default).
    pub dedup: Option<Template>,
    /// Whether `dedup` is the configured one (a configured template that cannot render is the
    /// sender's error; a default one falls back to the body's hash).
    pub dedup_configured: bool,
    /// The requester template (configured, or the kind's default).
    pub requester: Option<Template>,
}

/// Every configured webhook source, by name, plus what deliveries share.
pub struct Sources {
    pub(crate) by_name: HashMap<String, Arc<Source>>,
    pub(crate) keys: Keys,
    pub(crate) renderer: Renderer,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.by_name.keys().collect();
        names.sort();
        f.debug_struct("Sources").field("sources", &names).finish()
    }
}

/// The dedup template a kind uses when the source configures none: ticket id plus status or
/// event, so a redelivered event finds its run and a new status starts a new one.
fn default_dedup(kind: WebhookKind) -> Option<&'static str> {
    match kind {
        WebhookKind::Halo => Some("{{payload.ticket.id}}-{{payload.ticket.status_id}}"),
        WebhookKind::Connectwise => Some("{{payload.ID}}-{{payload.Entity.status.name}}"),
        WebhookKind::Autotask => Some("{{payload.Id}}-{{payload.SequenceNumber}}"),
        WebhookKind::Generic => None,
    }
}

/// The requester template a kind uses when the source configures none.
fn default_requester(kind: WebhookKind) -> Option<&'static str> {
    match kind {
        WebhookKind::Halo => Some("{{payload.ticket.user_email}}"),
        WebhookKind::Connectwise => Some("{{payload.Entity.contactEmailAddress}}"),
        WebhookKind::Autotask | WebhookKind::Generic => None,
    }
}

fn env_secret(source: &str, var: &str) -> Result<String, String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(format!(
            "webhook source `{source}`: environment variable `{var}` is not set"
        )),
    }
}

fn needed<'a>(
    source: &str,
    field: &str,
    v: &'a Option<String>,
    why: &str,
) -> Result<&'a str, String> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("webhook source `{source}`: `{field}` is required ({why})"))
}

fn check_of(c: &WebhookSource) -> Result<Check, String> {
    let name = &c.source;
    Ok(match c.kind {
        WebhookKind::Halo => {
            let basic = match (&c.username, &c.password_env) {
                (Some(u), Some(p)) => {
                    let password = env_secret(name, p)?;
                    Some(Sha256::digest(format!("{u}:{password}")).into())
                }
                (None, None) => None,
                _ => {
                    return Err(format!(
                    "webhook source `{name}`: HTTP Basic needs both `username` and `password_env`"
                ))
                }
            };
            let bearer = match &c.token_env {
                Some(t) => Some(Sha256::digest(env_secret(name, t)?).into()),
                None => None,
            };
            if basic.is_none() && bearer.is_none() {
                return Err(format!(
                    "webhook source `{name}`: a halo source needs `username` + `password_env` (HTTP Basic) or `token_env` (bearer)"
                ));
            }
            Check::Halo { basic, bearer }
        }
        WebhookKind::Connectwise => {
            let host = needed(
                name,
                "key_host",
                &c.key_host,
                "where callbacks' `key_url` may point",
            )?;
            let trusted = Trusted::parse(host)
                .map_err(|e| format!("webhook source `{name}`: `key_host`: {e}"))?;
            Check::Connectwise {
                trusted,
                client_id: c.client_id.clone(),
            }
        }
        WebhookKind::Autotask | WebhookKind::Generic => {
            let var = needed(name, "secret_env", &c.secret_env, "the HMAC secret")?;
            let secret = env_secret(name, var)?.into_bytes();
            if c.kind == WebhookKind::Autotask {
                Check::Autotask { secret }
            } else {
                Check::Generic { secret }
            }
        }
    })
}

/// Checks a configured template of a source (`dedup`, `requester`) when the server starts, so
/// a typo is an error then, not a 422 on the first real ticket: it must parse, use only known
/// helpers, and read only what a delivery has (`payload`, `trigger`).
fn check_template(source: &str, field: &str, text: &str) -> Result<(), String> {
    let analysis = tenure_runbook::template::analyze(text).map_err(|e| {
        format!(
            "webhook source `{source}`: `{field}` is not a valid template (at {}): {}",
            e.offset, e.message
        )
    })?;
    if let Some(h) = analysis
        .helpers
        .iter()
        .find(|h| !tenure_runbook::template::HELPERS.contains(&h.name.as_str()))
    {
        return Err(format!(
            "webhook source `{source}`: `{field}` uses an unknown helper `{}`",
            h.name
        ));
    }
    if let Some(p) = analysis.paths.iter().find(|p| {
        !p.scoped
            && !matches!(
                p.segments.first().map(String::as_str),
                Some("payload" | "trigger")
            )
    }) {
        return Err(format!(
            "webhook source `{source}`: `{field}` reads `{}`, but a delivery has only `payload` and `trigger`",
            p.raw
        ));
    }
    Ok(())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Sources {
    /// Reads every source's secrets from the environment. Any problem (a variable not set, a
    /// field missing for the kind, a duplicate or unusable name) is an error naming it.
    pub fn load(list: &[WebhookSource]) -> Result<Self, Error> {
        let (sources, problems) = Self::build(list);
        if problems.is_empty() {
            Ok(sources)
        } else {
            Err(Error::Config(problems.join("; ")))
        }
    }

    /// Like [`Sources::load`], but a source with a problem is kept and refuses every delivery
    /// (503) rather than stopping the server.
    pub fn lenient(list: &[WebhookSource]) -> Self {
        let (sources, problems) = Self::build(list);
        for p in problems {
            tracing::error!(problem = %p, "webhook source not usable");
        }
        sources
    }

    fn build(list: &[WebhookSource]) -> (Self, Vec<String>) {
        let mut by_name = HashMap::new();
        let mut problems = Vec::new();
        for c in list {
            if !valid_name(&c.source) {
                problems.push(format!(
                    "webhook source `{}`: a source name is 1-64 letters, digits, `-` or `_`",
                    c.source
                ));
                continue;
            }
            if by_name.contains_key(&c.source) {
                problems.push(format!("webhook source `{}` is configured twice", c.source));
                continue;
            }
            let check = check_of(c);
            if let Err(e) = &check {
                problems.push(e.clone());
            }
            for (field, text) in [("dedup", &c.dedup), ("requester", &c.requester)] {
                if let Some(Err(e)) = text.as_deref().map(|t| check_template(&c.source, field, t)) {
                    problems.push(e);
                }
            }
            let dedup_configured = c.dedup.is_some();
            let dedup = c
                .dedup
                .clone()
                .or_else(|| default_dedup(c.kind).map(str::to_string))
                .map(Template::new);
            let requester = c
                .requester
                .clone()
                .or_else(|| default_requester(c.kind).map(str::to_string))
                .map(Template::new);
            by_name.insert(
                c.source.clone(),
                Arc::new(Source {
                    config: c.clone(),
                    check,
                    dedup,
                    dedup_configured,
                    requester,
                }),
            );
        }
        let sources = Sources {
            by_name,
            keys: Keys::new(),
            renderer: Renderer::new(),
        };
        (sources, problems)
    }

    /// The source named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Source>> {
        self.by_name.get(name).cloned()
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|h| h.to_str().ok())
        .map(str::trim)
}

/// Checks a Halo delivery's `Authorization` header.
pub(crate) fn halo(
    basic: Option<&[u8; 32]>,
    bearer: Option<&[u8; 32]>,
    headers: &HeaderMap,
) -> bool {
    let Some(auth) = header(headers, "authorization") else {
        return false;
    };
    let (scheme, value) = auth.split_once(' ').unwrap_or((auth, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let Some(expected) = basic else { return false };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value) else {
            return false;
        };
        let got: [u8; 32] = Sha256::digest(&decoded).into();
        bool::from(got.ct_eq(expected))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let Some(expected) = bearer else { return false };
        let got: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        bool::from(got.ct_eq(expected))
    } else {
        false
    }
}

/// Checks Autotask's `X-Hook-Signature: sha1=<base64>`.
pub(crate) fn autotask(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(sig) = header(headers, "x-hook-signature").and_then(|s| s.strip_prefix("sha1="))
    else {
        return false;
    };
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Checks `X-Tenure-Signature: sha256=<hex>`.
pub(crate) fn generic(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(sig) = header(headers, "x-tenure-signature").and_then(|s| s.strip_prefix("sha256="))
    else {
        return false;
    };
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn a_bad_dedup_or_requester_template_stops_the_start() {
        let source = |dedup: &str, requester: &str| WebhookSource {
            source: "intake".into(),
            kind: WebhookKind::Connectwise,
            username: None,
            password_env: None,
            token_env: None,
            secret_env: None,
            key_host: Some("api-na.myconnectwise.net".into()),
            client_id: None,
            dedup: Some(dedup.into()),
            requester: Some(requester.into()),
        };
        let err = |d: &str, r: &str| Sources::load(&[source(d, r)]).unwrap_err().to_string();
        assert!(Sources::load(&[source(
            "{{payload.id}}-{{trigger.source}}",
            "{{lower payload.who}}"
        )])
        .is_ok());
        assert!(err("{{payload.id", "x").contains("`dedup` is not a valid template"));
        assert!(err("{{shout payload.id}}", "x").contains("unknown helper `shout`"));
        let e = err("{{payload.id}}", "{{inputs.requester}}");
        assert!(e.contains("`requester` reads `inputs.requester`"), "{e}");
    }

    #[test]
    fn autotask_matches_the_documented_example_shape() {
        let body = br#"{"Action":"Create","Id":1}"#;
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"0123456789").unwrap();
        mac.update(body);
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let h = headers("x-hook-signature", &format!("sha1={sig}"));
        assert!(autotask(b"0123456789", &h, body));
        assert!(!autotask(b"0123456788", &h, body));
        assert!(!autotask(b"0123456789", &h, b"{}"));
        assert!(!autotask(b"0123456789", &HeaderMap::new(), body));
    }

    #[test]
    fn generic_needs_the_prefix_and_hex() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s").unwrap();
        mac.update(b"x");
        let hexsig = hex::encode(mac.finalize().into_bytes());
        assert!(generic(
            b"s",
            &headers("x-tenure-signature", &format!("sha256={hexsig}")),
            b"x"
        ));
        assert!(!generic(
            b"s",
            &headers("x-tenure-signature", &hexsig),
            b"x"
        ));
        assert!(!generic(
            b"s",
            &headers("x-tenure-signature", "sha256=zz"),
            b"x"
        ));
    }

    #[test]
    fn halo_accepts_basic_or_bearer_as_configured() {
        let basic: [u8; 32] = Sha256::digest("halo:pw").into();
        let bearer: [u8; 32] = Sha256::digest("tok").into();
        let b64 = base64::engine::general_purpose::STANDARD.encode("halo:pw");
        let good = headers("authorization", &format!("Basic {b64}"));
        assert!(halo(Some(&basic), None, &good));
        assert!(!halo(None, Some(&bearer), &good));
        assert!(halo(
            Some(&basic),
            Some(&bearer),
            &headers("authorization", "Bearer tok")
        ));
        assert!(!halo(
            Some(&basic),
            Some(&bearer),
            &headers("authorization", "Bearer tok2")
        ));
        assert!(!halo(
            Some(&basic),
            None,
            &headers("authorization", "Basic !!")
        ));
    }
}
