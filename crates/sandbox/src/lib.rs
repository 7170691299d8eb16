//! Tenure's sandbox: one axum service that speaks the wire formats of every vendor API Tenure
//! calls, keeps state per tenant, enforces the vendors' rules, and misbehaves on demand.
//!
//! Each vendor is served under a path prefix equal to its real host
//! (`/graph.microsoft.com/v1.0/users`, `/api.pax8.com/v1/subscriptions`, ...), so a client's base
//! URL is the sandbox URL plus that host. `GET /_sandbox/state` shows everything with
//! `counters`; `POST /_sandbox/faults` injects 429/5xx, latency and dropped connections.
//! [`Sandbox::serve`] also starts an SMTP listener ([`Sandbox::smtp_addr`], and
//! `GET /_sandbox/health` says where) whose messages land in the same inbox as Graph's
//! `sendMail`.

// Handlers return `Result<Response, Response>`, axum's idiom for "answer either way"; the
// error variant is a whole response by design.
#![allow(clippy::result_large_err)]

mod auth;
mod control;
mod exo;
mod faults;
mod graph;
mod http;
mod inbox;
pub mod model;
mod partner_center;
mod pax8;
mod psa;
mod pwpush;
mod shared;
mod smtp;
mod term;
#[cfg(feature = "testing")]
pub mod testing;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::response::IntoResponse;
use axum::Router;

pub use faults::{FaultRule, Faults};
pub use model::World;
pub use psa::connectwise::{
    callback_key_path as connectwise_callback_key_path,
    callback_signing_key as connectwise_callback_signing_key,
};
pub use shared::Shared;

/// The default seed: tenants `contoso` and `fabrikam` with users, groups, SKUs, devices,
/// mailboxes, Pax8 and Partner Center subscriptions and PSA clients.
pub const DEFAULT_SEED: &str = include_str!("../seed/default.json");

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The seed is not valid JSON of the seed format.
    #[error("invalid seed: {0}")]
    Seed(#[from] serde_json::Error),
    /// A file could not be read or written, or the address could not be bound.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A sandbox: its shared state and the router that serves it.
#[derive(Clone)]
pub struct Sandbox {
    shared: Arc<Shared>,
}

impl Sandbox {
    /// A sandbox seeded from JSON text (see `docs/sandbox.md` for the format).
    pub fn from_seed(seed: &str) -> Result<Self, Error> {
        let world: World = serde_json::from_str(seed)?;
        Ok(Sandbox {
            shared: Arc::new(Shared::new(world, None)),
        })
    }

    /// A sandbox with the default seed.
    pub fn new() -> Self {
        Self::from_seed(DEFAULT_SEED).expect("the default seed is valid")
    }

    /// Persists the state to `path` after every change, and starts from it if it exists.
    pub fn persisted(seed: &str, path: PathBuf) -> Result<Self, Error> {
        let world: World = match std::fs::read_to_string(&path) {
            Ok(saved) => serde_json::from_str(&saved)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::from_str(seed)?,
            Err(e) => return Err(e.into()),
        };
        Ok(Sandbox {
            shared: Arc::new(Shared::new(world, Some(path))),
        })
    }

    /// The shared state (for tests and the CLI).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The router serving every vendor and the `/_sandbox` control endpoints.
    pub fn router(&self) -> Router {
        let router = Router::new()
            .merge(auth::routes())
            .merge(graph::routes())
            .merge(exo::routes())
            .merge(pax8::routes())
            .merge(partner_center::routes())
            .merge(psa::routes())
            .merge(pwpush::routes())
            .merge(inbox::routes())
            .layer(axum::middleware::from_fn_with_state(
                self.shared.clone(),
                faults::inject,
            ))
            .merge(control::routes())
            .fallback(unrouted)
            .layer(axum::middleware::from_fn(graph::wire))
            .with_state(self.shared.clone());
        self.shared.set_router(router.clone());
        router
    }

    /// Binds `addr` (port 0 picks a free port) and serves until the task is dropped or
    /// aborted, with the SMTP listener on a free port of the same address
    /// ([`Sandbox::smtp_addr`]). Returns the bound HTTP address.
    pub async fn serve(
        &self,
        addr: SocketAddr,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), Error> {
        self.serve_with_smtp(addr, SocketAddr::new(addr.ip(), 0))
            .await
    }

    /// [`Sandbox::serve`] with the SMTP listener on `smtp` (port 0 picks a free port).
    pub async fn serve_with_smtp(
        &self,
        addr: SocketAddr,
        smtp: SocketAddr,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), Error> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let mail = tokio::net::TcpListener::bind(smtp).await?;
        self.shared.set_smtp_addr(mail.local_addr()?);
        let router = self.router();
        let shared = self.shared.clone();
        let handle = tokio::spawn(async move {
            tokio::select! {
                _ = axum::serve(listener, router) => {}
                _ = smtp::serve(shared, mail) => {}
            }
        });
        Ok((bound, handle))
    }

    /// Where the SMTP listener accepts mail, once [`Sandbox::serve`] has started it.
    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.shared.smtp_addr()
    }
}

/// Any path no vendor serves: a JSON 404 (Graph paths are rewritten to Graph's own error by
/// [`graph::wire`]).
async fn unrouted(uri: axum::http::Uri) -> axum::response::Response {
    let path = uri.path();
    if path.starts_with("/graph.microsoft.com/") {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    }
    http::reply(
        axum::http::StatusCode::NOT_FOUND,
        serde_json::json!({"error": {"code": "NotFound", "message": format!("The sandbox does not simulate {path}.")}}),
    )
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}
