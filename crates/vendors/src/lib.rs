//! Tenure's HTTP layer for vendor APIs, shared by every step kind that talks to a vendor:
//!
//! - [`Endpoints`]: the base URL of each vendor, the real cloud or the sandbox (one
//!   `TENURE_SANDBOX` URL maps every vendor to its host prefix there);
//! - [`TokenCache`]: OAuth2 client-credentials tokens per (tenant, resource), refreshed before
//!   they expire;
//! - [`request`]: one request to any URL without a vendor token (`http.request`), with the
//!   same summaries, `Retry-After` and connection-error classification;
//! - [`Client`]: JSON requests with bearer tokens, every failure classified transient or
//!   permanent with the vendor's code and message ([`VendorError`]), a vendor's `Retry-After`
//!   kept (parsed by [`parse_retry_after`]: delta-seconds or an HTTP-date, saturating),
//!   `@odata.nextLink` paging, and a redacted [`tenure_steps::RequestSummary`] of every request
//!   (method, path, status, duration; never tokens, query strings or bodies) in the attempt's
//!   [`tenure_steps::Requests`] log.
//!
//! The request log is the one type this crate takes from `tenure-steps` (a small crate without
//! I/O), so the engine can journal what the kinds' clients record without knowing this crate.

mod client;
mod endpoints;
mod error;
mod retry_after;
mod token;

pub use client::{
    max_response_bytes, request, Client, Response, DEFAULT_MAX_RESPONSE_BYTES, MAX_PAGES,
};
pub use endpoints::{Api, Endpoints, Secret, TenantCredentials};
pub use error::VendorError;
pub use retry_after::parse_retry_after;
pub use token::TokenCache;
