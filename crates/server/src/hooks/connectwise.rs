//! ConnectWise callback verification (api-facts.md §6.2 "Callbacks", after the amp-labs
//! connectors implementation): the callback's `Metadata.key_url` is fetched (only from the
//! configured trusted site, never anywhere a payload says) with the `clientId` header; it
//! answers `{"signing_key": "..."}`; the `x-content-signature` header must equal
//! base64(HMAC-SHA256(key = SHA-256(signing key), raw body)). Keys are cached by URL; a
//! signature that does not match a cached key refetches it at most once a minute (rotation);
//! at most 64 keys are kept, the oldest dropped first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::Url;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The most signing keys kept: a payload chooses its `key_url` (any path and query on the
/// trusted site), so without a bound unsigned deliveries could grow the cache without end.
/// A real integration has a handful of callbacks; the oldest key is dropped first.
const MAX_CACHED: usize = 64;

/// How long a fetch of a signing key may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A cached key that did not match is refetched no more often than this.
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// The largest key response read.
const MAX_KEY_RESPONSE: usize = 64 * 1024;

/// Where keys may be fetched from: scheme, host, port and a path prefix.
#[derive(Clone, Debug)]
pub(crate) struct Trusted {
    base: Url,
}

impl Trusted {
    /// A host (`api-na.myconnectwise.net`, meaning `https://` it) or a URL prefix.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let text = if s.contains("://") {
            s.to_string()
        } else {
            format!("https://{s}/")
        };
        let mut base = Url::parse(&text).map_err(|e| format!("`{s}` is not a host or URL: {e}"))?;
        if !matches!(base.scheme(), "https" | "http") || base.host_str().is_none() {
            return Err(format!("`{s}` is not an http(s) site"));
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        base.set_query(None);
        base.set_fragment(None);
        Ok(Trusted { base })
    }

    /// Whether `url` is on the trusted site, under its path prefix, without user info.
    pub(crate) fn allows(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
            && url.username().is_empty()
            && url.password().is_none()
            && url.path().starts_with(self.base.path())
            && !url.path().contains("/../")
    }
}

/// Why a callback was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No or a wrong signature, or a `key_url` not on the trusted site.
    Unverified,
    /// The signing key could not be fetched (the site is down): the sender should retry.
    KeyUnavailable,
}

struct Cached {
    /// SHA-256 of the signing key: the HMAC key.
    hmac_key: [u8; 32],
    fetched: Instant,
}

/// The signing keys fetched so far, by `key_url`.
pub(crate) struct Keys {
    client: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Keys {
    pub(crate) fn new() -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Keys {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, url: &str) -> Option<([u8; 32], Instant)> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(url).map(|c| (c.hmac_key, c.fetched))
    }

    async fn fetch(&self, url: &Url, client_id: Option<&str>) -> Result<[u8; 32], Refusal> {
        let mut req = self.client.get(url.clone());
        if let Some(id) = client_id {
            req = req.header("clientId", id);
        }
        let resp = req.send().await.map_err(|e| {
            tracing::warn!(error = %e.without_url(), "ConnectWise signing key unreachable");
            Refusal::KeyUnavailable
        })?;
        let status = resp.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            tracing::warn!(%status, "ConnectWise signing key unavailable");
            return Err(Refusal::KeyUnavailable);
        }
        if !status.is_success() {
            tracing::warn!(%status, "ConnectWise refused the signing key request");
            return Err(Refusal::Unverified);
        }
        let bytes = resp.bytes().await.map_err(|_| Refusal::KeyUnavailable)?;
        if bytes.len() > MAX_KEY_RESPONSE {
            return Err(Refusal::Unverified);
        }
        let body: Value = serde_json::from_slice(&bytes).map_err(|_| Refusal::Unverified)?;
        let key = body["signing_key"]
            .as_str()
            .filter(|k| !k.is_empty())
            .ok_or(Refusal::Unverified)?;
        let hmac_key: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        while cache.len() >= MAX_CACHED && !cache.contains_key(url.as_str()) {
            let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, c)| c.fetched)
                .map(|(u, _)| u.clone())
            else {
                break;
            };
            cache.remove(&oldest);
        }
        cache.insert(
            url.to_string(),
            Cached {
                hmac_key,
                fetched: Instant::now(),
            },
        );
        Ok(hmac_key)
    }

    /// Verifies a callback: `payload` is its parsed body, `body` the raw bytes.
    pub(crate) async fn verify(
        &self,
        trusted: &Trusted,
        client_id: Option<&str>,
        headers: &HeaderMap,
        payload: &Value,
        body: &[u8],
    ) -> Result<(), Refusal> {
        let sig = headers
            .get("x-content-signature")
            .and_then(|h| h.to_str().ok())
            .and_then(|s| {
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .ok()
            })
            .ok_or(Refusal::Unverified)?;
        let url = payload["Metadata"]["key_url"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .filter(|u| trusted.allows(u))
            .ok_or(Refusal::Unverified)?;
        let matches = |key: &[u8; 32]| {
            Hmac::<Sha256>::new_from_slice(key)
                .map(|mut mac| {
                    mac.update(body);
                    mac.verify_slice(&sig).is_ok()
                })
                .unwrap_or(false)
        };
        match self.cached(url.as_str()) {
            Some((key, _)) if matches(&key) => return Ok(()),
            Some((_, fetched)) if fetched.elapsed() < REFETCH_AFTER => {
                return Err(Refusal::Unverified)
            }
            _ => {}
        }
        let key = self.fetch(&url, client_id).await?;
        if matches(&key) {
            Ok(())
        } else {
            Err(Refusal::Unverified)
        }
    }
}

/// ConnectWise sends the ticket as a JSON string in `Entity`; templates read it as an object.
pub(crate) fn open_entity(payload: &mut Value) {
    if let Some(text) = payload.get("Entity").and_then(Value::as_str) {
        if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(text) {
            payload["Entity"] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_trusted_site_and_prefix() {
        let t = Trusted::parse("api-na.myconnectwise.net").unwrap();
        let ok = Url::parse(
            "https://api-na.myconnectwise.net/v4_6_release/apis/3.0/system/callbackkey/1",
        )
        .unwrap();
        assert!(t.allows(&ok));
        for bad in [
            "http://api-na.myconnectwise.net/x",
            "https://api-na.myconnectwise.net.evil.example/x",
            "https://evil.example/api-na.myconnectwise.net/x",
            "https://user@api-na.myconnectwise.net/x",
            "https://api-na.myconnectwise.net:8443/x",
        ] {
            assert!(!t.allows(&Url::parse(bad).unwrap()), "{bad}");
        }
        let sandbox = Trusted::parse("http://127.0.0.1:9/api-na.myconnectwise.net").unwrap();
        assert!(
            sandbox.allows(&Url::parse("http://127.0.0.1:9/api-na.myconnectwise.net/k").unwrap())
        );
        assert!(!sandbox.allows(&Url::parse("http://127.0.0.1:9/other/k").unwrap()));
        assert!(Trusted::parse("ftp://x").is_err());
    }

    /// Forged deliveries naming ever new `key_url`s on the trusted site (another query each
    /// time) do not grow the key cache without bound.
    #[tokio::test]
    async fn the_key_cache_is_bounded() {
        let app = axum::Router::new().route(
            "/cw/callbackkey/1",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"signing_key": "k"})) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let trusted = Trusted::parse(&format!("http://{addr}/cw/")).unwrap();
        let keys = Keys::new();
        let mut headers = HeaderMap::new();
        headers.insert("x-content-signature", "AAAA".parse().unwrap());
        for i in 0..(MAX_CACHED * 3) {
            let url = format!("http://{addr}/cw/callbackkey/1?n={i}");
            let payload = serde_json::json!({"Metadata": {"key_url": url}});
            let r = keys.verify(&trusted, None, &headers, &payload, b"{}").await;
            assert_eq!(r, Err(Refusal::Unverified));
        }
        let cache = keys.cache.lock().unwrap();
        assert_eq!(cache.len(), MAX_CACHED);
        let last = format!("http://{addr}/cw/callbackkey/1?n={}", MAX_CACHED * 3 - 1);
        assert!(cache.contains_key(&last));
    }

    #[test]
    fn entity_text_becomes_an_object() {
        let mut p = serde_json::json!({"Entity": "{\"id\":7,\"status\":{\"name\":\"New\"}}"});
        open_entity(&mut p);
        assert_eq!(p["Entity"]["status"]["name"], "New");
        let mut q = serde_json::json!({"Entity": "not json"});
        open_entity(&mut q);
        assert_eq!(q["Entity"], "not json");
    }
}
