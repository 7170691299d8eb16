//! Tenure's vendor step kinds, executed by the engine through [`tenure_engine::kinds::Executor`]:
//! `entra.*`, `licence.remove_all` and `intune.*` over Microsoft Graph, `exchange.*` over the
//! Exchange admin API. Every kind
//!
//! - reaches the vendor only through [`tenure_vendors::Client`] (tokens, classified errors,
//!   request summaries journaled with the attempt);
//! - looks before it acts, so a repeat after a crash or a retry finds the work done and
//!   succeeds without doing it twice;
//! - says exactly what it did in its outputs.

mod entra;
mod exchange;
mod intune;
mod licence;
mod vendors;

pub use vendors::Vendors;

use std::sync::Arc;

use tenure_engine::kinds::Registry;

/// Registers every vendor kind, sharing `vendors` (endpoints, credentials, token cache).
pub fn register(registry: &mut Registry, vendors: Vendors) {
    let vendors = Arc::new(vendors);
    entra::register(registry, &vendors);
    exchange::register(registry, &vendors);
    licence::register(registry, &vendors);
    intune::register(registry, &vendors);
}
