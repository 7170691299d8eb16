//! Tenure's HTTP layer for vendor APIs, shared by every step kind that talks to a vendor:
//!
//! - [`Endpoints`]: the base URL of each vendor, the real cloud or the sandbox (one
//!   `TENURE_SANDBOX` URL maps every vendor to its host prefix there);
//! - [`TokenCache`]: OAuth2 client-credentials tokens per (tenant, resource), refreshed before
//!   they expire;
//! - [`Client`]: JSON requests with bearer tokens, every failure classified transient or
//!   permanent with the vendor's code and message ([`VendorError`]), a vendor's `Retry-After`
//!   kept, `@odata.nextLink` paging, and a redacted [`RequestSummary`] of every request
//!   (method, path, status, duration; never tokens, query strings or bodies).

mod client;
mod endpoints;
mod error;
mod token;

pub use client::{Client, RequestSummary, Requests};
pub use endpoints::{Api, Endpoints, Secret, TenantCredentials};
pub use error::VendorError;
pub use token::TokenCache;
