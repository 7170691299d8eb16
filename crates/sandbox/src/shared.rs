//! The sandbox's shared state: the world behind a lock, issued tokens, fault rules, and
//! persistence. Every handler reads and writes through [`Shared::read`] / [`Shared::write`],
//! which first make due delayed events (bought seats) visible.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

use axum::Router;

use crate::faults::Faults;
use crate::model::World;

/// Which API an access token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Microsoft Graph.
    Graph,
    /// Exchange Online admin API.
    Exchange,
    /// Partner Center.
    PartnerCenter,
    /// Pax8.
    Pax8,
    /// HaloPSA.
    Halo,
}

/// An issued access token.
#[derive(Clone, Debug)]
pub struct Token {
    /// The tenant (short id) it is valid in, for Microsoft tokens.
    pub tenant: Option<String>,
    /// The API it is for.
    pub audience: Audience,
    /// Expiry, unix ms.
    pub expires_at_ms: u64,
}

/// State shared by every request.
pub struct Shared {
    world: Mutex<World>,
    tokens: Mutex<HashMap<String, Token>>,
    /// Fault-injection rules.
    pub faults: Mutex<Faults>,
    persist: Option<PathBuf>,
    router: OnceLock<Router>,
    /// Partner Center `MS-RequestId`s already applied, with the response they produced.
    pub request_ids: Mutex<HashMap<String, serde_json::Value>>,
    smtp: OnceLock<std::net::SocketAddr>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The current time as RFC 3339.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Wraps a world; `persist` is a file written after every change.
    pub fn new(world: World, persist: Option<PathBuf>) -> Self {
        Shared {
            world: Mutex::new(world),
            tokens: Mutex::new(HashMap::new()),
            faults: Mutex::new(Faults::default()),
            persist,
            router: OnceLock::new(),
            request_ids: Mutex::new(HashMap::new()),
            smtp: OnceLock::new(),
        }
    }

    pub(crate) fn set_smtp_addr(&self, addr: std::net::SocketAddr) {
        let _ = self.smtp.set(addr);
    }

    /// Where the SMTP listener accepts mail, once started.
    pub fn smtp_addr(&self) -> Option<std::net::SocketAddr> {
        self.smtp.get().copied()
    }

    pub(crate) fn set_router(&self, router: Router) {
        let _ = self.router.set(router);
    }

    /// The router, for dispatching `$batch` sub-requests.
    pub fn router(&self) -> Option<Router> {
        self.router.get().cloned()
    }

    /// Reads the world.
    pub fn read<R>(&self, f: impl FnOnce(&World) -> R) -> R {
        let mut w = lock(&self.world);
        settle(&mut w);
        f(&w)
    }

    /// Changes the world, then persists it if asked to.
    pub fn write<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut w = lock(&self.world);
        settle(&mut w);
        let out = f(&mut w);
        if let Some(path) = &self.persist {
            if let Ok(text) = serde_json::to_vec(&*w) {
                let tmp = path.with_extension("tmp");
                if std::fs::write(&tmp, text).is_ok() {
                    let _ = std::fs::rename(&tmp, path);
                }
            }
        }
        out
    }

    /// Replaces the whole world (reset to a seed).
    pub fn replace(&self, world: World) {
        self.write(|w| *w = world);
        lock(&self.tokens).clear();
    }

    /// Issues a token.
    pub fn issue(&self, token: Token) -> String {
        let value = format!("sbx.{}", uuid::Uuid::new_v4().simple());
        lock(&self.tokens).insert(value.clone(), token);
        value
    }

    /// Looks a token up.
    pub fn token(&self, value: &str) -> Option<Token> {
        lock(&self.tokens).get(value).cloned()
    }
}

/// How long a deleted user stays in `directory/deletedItems` before it is gone for good.
pub const DELETED_RETENTION_MS: u64 = 30 * 24 * 3600 * 1000;

/// Applies delayed events whose time has come.
fn settle(w: &mut World) {
    let now = now_ms();
    purge_expired(w, now);
    if w.pending_seats.is_empty() {
        return;
    }
    let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut w.pending_seats)
        .into_iter()
        .partition(|p| p.at_ms <= now);
    w.pending_seats = later;
    for p in due {
        if let Some(t) = w.tenant(&p.tenant) {
            if let Some(sku) = w.tenants[t]
                .skus
                .iter_mut()
                .find(|s| s.sku_part_number == p.sku)
            {
                sku.enabled = (i64::from(sku.enabled) + p.delta).max(0) as u32;
            }
        }
    }
}

/// Users deleted more than 30 days ago leave deleted items for good.
fn purge_expired(w: &mut World, now: u64) {
    let expired = |u: &crate::model::User| u.deleted_at_ms + DELETED_RETENTION_MS <= now;
    if !w
        .tenants
        .iter()
        .any(|t| t.deleted_users.iter().any(expired))
    {
        return;
    }
    for t in 0..w.tenants.len() {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut w.tenants[t].deleted_users)
            .into_iter()
            .partition(expired);
        w.tenants[t].deleted_users = kept;
        for u in gone {
            let version = w.next_seq();
            w.tenants[t]
                .purged_users
                .push(crate::model::Tombstone { id: u.id, version });
        }
    }
}
