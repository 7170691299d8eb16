//! Password Pusher: `POST /p.json` creates a push (201, `url_token` and `html_url`; out-of-range
//! expiry silently becomes the default), `GET /p/{token}.json` reveals it and counts a view,
//! `preview.json` does not, `DELETE` expires it. `GET /p/active.json` lists the active pushes
//! (without payloads) to a caller with the API token (`Authorization: Bearer sandbox-secret`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::http::{base_url, reply, Reply};
use crate::model::Push;
use crate::shared::{now_rfc3339, Shared};

const BASE: &str = "/pwpush.com";

/// Password Pusher routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(&format!("{BASE}/p.json"), post(create))
        .route(&format!("{BASE}/p/active.json"), get(active))
        .route(&format!("{BASE}/p/{{token}}"), get(reveal).delete(expire))
        .route(&format!("{BASE}/p/{{token}}/preview.json"), get(preview))
}

fn push_json(p: &Push, base: &str) -> Value {
    let url = if p.retrieval_step {
        format!("{base}{BASE}/p/{}/r", p.url_token)
    } else {
        format!("{base}{BASE}/p/{}", p.url_token)
    };
    json!({"url_token": p.url_token, "html_url": url, "json_url": format!("{base}{BASE}/p/{}.json", p.url_token),
           "expire_after_days": p.expire_after_days, "expire_after_views": p.expire_after_views, "expired": p.expired,
           "deletable_by_viewer": true, "retrieval_step": p.retrieval_step, "expired_on": null, "passphrase": null, "note": p.note, "name": null,
           "created_at": p.created_at, "updated_at": p.created_at, "days_remaining": p.expire_after_days,
           "views_remaining": p.expire_after_views.saturating_sub(p.views), "deleted": false})
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> Value {
    let is_form = headers
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        let mut password = serde_json::Map::new();
        for pair in String::from_utf8_lossy(body).split('&') {
            if let Some((k, v)) = pair.split_once('=') {
                let k = decode(k);
                if let Some(field) = k
                    .strip_prefix("password[")
                    .and_then(|k| k.strip_suffix(']'))
                {
                    password.insert(field.to_string(), json!(decode(v)));
                }
            }
        }
        json!({"password": password})
    } else {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    }
}

fn decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn in_range(v: &Value, lo: u64, hi: u64, default: u32) -> u32 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .filter(|n| (lo..=hi).contains(n))
        .map_or(default, |n| n as u32)
}

async fn create(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Reply {
    let body = parse_body(&headers, &body);
    let p = &body["password"];
    let Some(payload) = p["payload"].as_str().filter(|x| !x.is_empty()) else {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "No password, text or files provided."}),
        ));
    };
    let token: String = uuid::Uuid::new_v4().simple().to_string()[..16].to_lowercase();
    let push = Push {
        url_token: token.clone(),
        payload: payload.to_string(),
        expire_after_days: in_range(&p["expire_after_days"], 1, 90, 7),
        expire_after_views: in_range(&p["expire_after_views"], 1, 100, 5),
        views: 0,
        retrieval_step: p["retrieval_step"].as_bool().unwrap_or(true),
        note: p["note"].as_str().map(str::to_string),
        created_at: now_rfc3339(),
        expired: false,
    };
    let json = push_json(&push, &base_url(&headers));
    s.write(|w| {
        w.pushes.push(push);
        w.created(format!("pwpush/push/{token}"));
    });
    Ok(reply(StatusCode::CREATED, json))
}

fn token_of(raw: &str) -> (String, bool) {
    match raw.strip_suffix(".json") {
        Some(t) => (t.to_string(), true),
        None => (raw.to_string(), false),
    }
}

async fn reveal(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Reply {
    let (token, _) = token_of(&raw);
    let base = base_url(&headers);
    s.write(|w| {
        let p = w
            .pushes
            .iter_mut()
            .find(|p| p.url_token == token)
            .ok_or_else(|| reply(StatusCode::NOT_FOUND, json!({"error": "not-found"})))?;
        if p.expired {
            let mut j = push_json(p, &base);
            j["payload"] = Value::Null;
            return Ok(reply(StatusCode::OK, j));
        }
        p.views += 1;
        let payload = p.payload.clone();
        if p.views >= p.expire_after_views {
            p.expired = true;
        }
        let mut j = push_json(p, &base);
        j["payload"] = json!(payload);
        w.changed(format!("pwpush/push/{token}"));
        Ok(reply(StatusCode::OK, j))
    })
}

async fn preview(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Reply {
    let base = base_url(&headers);
    s.read(|w| {
        let p = w
            .pushes
            .iter()
            .find(|p| p.url_token == token)
            .ok_or_else(|| reply(StatusCode::NOT_FOUND, json!({"error": "not-found"})))?;
        Ok(reply(
            StatusCode::OK,
            json!({"url": push_json(p, &base)["html_url"]}),
        ))
    })
}

async fn expire(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Reply {
    let (token, _) = token_of(&raw);
    let base = base_url(&headers);
    s.write(|w| {
        let p = w
            .pushes
            .iter_mut()
            .find(|p| p.url_token == token)
            .ok_or_else(|| reply(StatusCode::NOT_FOUND, json!({"error": "not-found"})))?;
        p.expired = true;
        let j = push_json(p, &base);
        w.deleted(format!("pwpush/push/{token}"));
        Ok(reply(StatusCode::OK, j))
    })
}

async fn active(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    let secret = s.read(|w| w.credentials.client_secret.clone());
    let bearer = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    if bearer != Some(secret.as_str()) {
        return Err(reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "You need to sign in or sign up before continuing."}),
        ));
    }
    let base = base_url(&headers);
    let pushes: Vec<Value> = s.read(|w| {
        w.pushes
            .iter()
            .filter(|p| !p.expired)
            .map(|p| push_json(p, &base))
            .collect()
    });
    Ok(reply(StatusCode::OK, json!(pushes)))
}
