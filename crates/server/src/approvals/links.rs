//! Signed approval links and the CSRF tokens of their pages.
//!
//! A link token is `PAYLOAD.MAC`, both base64url without padding: the payload names one
//! approval request (run, step and the attempt that requested it: a retried approval is a new
//! request), one approver and the request's expiry; the MAC is HMAC-SHA256 over a purpose
//! label and the payload with the server key. A CSRF token is `ISSUED.MAC`, an HMAC over
//! another purpose label, the link token and the time the page was issued, valid for
//! [`CSRF_LIFE_MS`]. Both MACs are checked in constant time before anything in them is read.
//!
//! The key is `[server] key_env` (at least 32 bytes) or, by default, a key derived from the
//! database's secret key, so every server node and worker on one database signs alike.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::ServerSection;

/// How long a page's CSRF token stays valid (one hour).
pub const CSRF_LIFE_MS: u64 = 3_600_000;

/// The shortest `[server] key_env` key accepted (bytes).
pub const MIN_KEY_LEN: usize = 32;

/// Where links point when neither `public_url` nor `listen` is configured.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

const LINK_LABEL: &[u8] = b"tenure approval link v1\n";
const CSRF_LABEL: &[u8] = b"tenure approval page csrf v1\n";

/// What a link grants: one approver's decision on one approval request, until it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The run.
    pub run: String,
    /// The approval step.
    pub step: String,
    /// The attempt that requested the approval.
    pub attempt: u32,
    /// Who may decide with it.
    pub approver: String,
    /// When it expires (unix ms): the request's expiry.
    pub expires_at_ms: u64,
}

/// Why a link token is refused before the run is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// Not a token of this server: malformed, forged or altered.
    Forged,
    /// Its expiry has passed.
    Expired,
}

/// Signs and checks approval links and CSRF tokens (cheap to clone).
#[derive(Clone)]
pub struct Links {
    key: std::sync::Arc<[u8]>,
    public_url: String,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("key", &"***")
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// The base of every link: `public_url`, else `http://` + `listen`, else
/// [`DEFAULT_PUBLIC_URL`] (without a trailing `/`).
pub fn public_url(server: &ServerSection) -> String {
    let url = match (&server.public_url, &server.listen) {
        (Some(u), _) if !u.trim().is_empty() => u.trim().to_string(),
        (_, Some(l)) if !l.trim().is_empty() => format!("http://{}", l.trim()),
        _ => DEFAULT_PUBLIC_URL.to_string(),
    };
    url.trim_end_matches('/').to_string()
}

impl Links {
    /// Links signed with `key` (any length here; see [`Links::from_config`]) under `public_url`.
    pub fn new(key: &[u8], public_url: &str) -> Self {
        Links {
            key: key.into(),
            public_url: public_url.trim_end_matches('/').to_string(),
        }
    }

    /// The links of a server configured by `server`: the key from the environment variable
    /// `key_env` names (at least [`MIN_KEY_LEN`] bytes), else `derived` (the key derived from
    /// the database's secret key, `Engine::derive_key("approval-links")`).
    pub fn from_config(server: &ServerSection, derived: [u8; 32]) -> Result<Self, crate::Error> {
        let url = public_url(server);
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(crate::Error::Config(format!(
                "[server] public_url must start with http:// or https://, not `{url}`"
            )));
        }
        match server.key_env.as_deref().filter(|v| !v.is_empty()) {
            None => Ok(Links::new(&derived, &url)),
            Some(var) => {
                let key = std::env::var(var).map_err(|_| {
                    crate::Error::Config(format!(
                        "[server] key_env names {var}, which is not set (it holds the key that signs approval links, at least {MIN_KEY_LEN} bytes)"
                    ))
                })?;
                if key.len() < MIN_KEY_LEN {
                    return Err(crate::Error::Config(format!(
                        "the key in {var} ([server] key_env) is {} bytes; approval links need at least {MIN_KEY_LEN}",
                        key.len()
                    )));
                }
                Ok(Links::new(key.as_bytes(), &url))
            }
        }
    }

    /// The base URL links start with.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    fn mac(&self, label: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(label);
        for p in parts {
            mac.update(p);
        }
        mac
    }

    /// The token of `claim`.
    pub fn token(&self, claim: &Claim) -> String {
        let payload = format!(
            "{}\n{}\n{}\n{}\n{}",
            claim.run, claim.step, claim.attempt, claim.approver, claim.expires_at_ms
        );
        let tag = self
            .mac(LINK_LABEL, &[payload.as_bytes()])
            .finalize()
            .into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The page URL of `claim` (`{public_url}/approvals/{token}`).
    pub fn url(&self, claim: &Claim) -> String {
        format!("{}/approvals/{}", self.public_url, self.token(claim))
    }

    /// Checks a token's MAC, then its expiry against `now_ms`.
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Claim, LinkError> {
        let (payload, tag) = token.split_once('.').ok_or(LinkError::Forged)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| LinkError::Forged)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| LinkError::Forged)?;
        self.mac(LINK_LABEL, &[&payload])
            .verify_slice(&tag)
            .map_err(|_| LinkError::Forged)?;
        let text = String::from_utf8(payload).map_err(|_| LinkError::Forged)?;
        let fields: Vec<&str> = text.split('\n').collect();
        let [run, step, attempt, approver, expires] = fields[..] else {
            return Err(LinkError::Forged);
        };
        let claim = Claim {
            run: run.to_string(),
            step: step.to_string(),
            attempt: attempt.parse().map_err(|_| LinkError::Forged)?,
            approver: approver.to_string(),
            expires_at_ms: expires.parse().map_err(|_| LinkError::Forged)?,
        };
        if now_ms >= claim.expires_at_ms {
            return Err(LinkError::Expired);
        }
        Ok(claim)
    }

    /// The CSRF token of the page of link `token`, issued at `now_ms`.
    pub fn csrf(&self, token: &str, now_ms: u64) -> String {
        let issued = now_ms.to_string();
        let tag = self
            .mac(CSRF_LABEL, &[token.as_bytes(), b"\n", issued.as_bytes()])
            .finalize()
            .into_bytes();
        format!("{issued}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Whether `csrf` was issued by this server for the page of `token` less than
    /// [`CSRF_LIFE_MS`] before `now_ms`.
    pub fn csrf_ok(&self, token: &str, csrf: &str, now_ms: u64) -> bool {
        let Some((issued, tag)) = csrf.split_once('.') else {
            return false;
        };
        let (Ok(at), Ok(tag)) = (issued.parse::<u64>(), URL_SAFE_NO_PAD.decode(tag)) else {
            return false;
        };
        let fresh = at <= now_ms.saturating_add(60_000) && now_ms.saturating_sub(at) < CSRF_LIFE_MS;
        fresh
            && self
                .mac(CSRF_LABEL, &[token.as_bytes(), b"\n", issued.as_bytes()])
                .verify_slice(&tag)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> Claim {
        Claim {
            run: "r1".into(),
            step: "approve".into(),
            attempt: 1,
            approver: "a@msp.example".into(),
            expires_at_ms: 10_000,
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires_and_not_after_any_change() {
        let links = Links::new(&[7; 32], "https://t.example/");
        let token = links.token(&claim());
        assert!(links
            .url(&claim())
            .starts_with("https://t.example/approvals/"));
        assert_eq!(links.verify(&token, 9_999), Ok(claim()));
        assert_eq!(links.verify(&token, 10_000), Err(LinkError::Expired));
        let other = Links::new(&[8; 32], "https://t.example");
        assert_eq!(other.verify(&token, 0), Err(LinkError::Forged));
        let (payload, tag) = token.split_once('.').unwrap();
        let mut forged = claim();
        forged.approver = "b@msp.example".into();
        let forged_payload = links.token(&forged);
        let forged_payload = forged_payload.split_once('.').unwrap().0;
        assert_eq!(
            links.verify(&format!("{forged_payload}.{tag}"), 0),
            Err(LinkError::Forged)
        );
        for bad in [
            "",
            ".",
            "x",
            &format!("{payload}."),
            &format!("{payload}.{tag}A"),
        ] {
            assert_eq!(links.verify(bad, 0), Err(LinkError::Forged), "{bad}");
        }
    }

    #[test]
    fn a_csrf_token_is_bound_to_its_page_and_lives_an_hour() {
        let links = Links::new(&[7; 32], "http://x");
        let csrf = links.csrf("tok", 1_000);
        assert!(links.csrf_ok("tok", &csrf, 1_000 + CSRF_LIFE_MS - 1));
        assert!(!links.csrf_ok("tok", &csrf, 1_000 + CSRF_LIFE_MS));
        assert!(!links.csrf_ok("other", &csrf, 1_000));
        assert!(!links.csrf_ok("tok", "", 1_000));
        assert!(!links.csrf_ok("tok", &csrf.replace("1000.", "1001."), 1_001));
    }

    #[test]
    fn short_keys_and_missing_variables_are_startup_errors() {
        let mut s = ServerSection {
            key_env: Some("TENURE_TEST_LINK_KEY_UNSET".into()),
            ..Default::default()
        };
        assert!(Links::from_config(&s, [0; 32]).is_err());
        s.key_env = None;
        s.listen = Some("0.0.0.0:9000".into());
        assert_eq!(
            Links::from_config(&s, [0; 32]).unwrap().public_url(),
            "http://0.0.0.0:9000"
        );
        s.public_url = Some("ftp://x".into());
        assert!(Links::from_config(&s, [0; 32]).is_err());
    }
}
