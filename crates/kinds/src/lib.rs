//! Tenure's executable step kinds, run by the engine through the execution interface of
//! `tenure-steps` ([`tenure_steps::Executor`]): `entra.*`, `licence.*` and `intune.*` over
//! Microsoft Graph (and Pax8 or Partner Center for seats), `exchange.*` over the Exchange admin
//! API, `psa.*` over HaloPSA, ConnectWise Manage and Autotask, `password.generate`, and
//! `http.request` for any other REST call. Every kind
//!
//! - reaches the vendor only through [`tenure_vendors::Client`] (tokens, classified errors,
//!   request summaries journaled with the attempt);
//! - looks before it acts, so a repeat after a crash or a retry finds the work done and
//!   succeeds without doing it twice;
//! - says exactly what it did in its outputs.

mod entra;
mod entra_admin;
mod exchange;
mod http;
mod intune;
mod later;
mod licence;
mod notify;
mod password;
pub mod people;
mod psa;
mod rehire;
mod seats;
mod share;
mod smtp;
mod vendors;

pub use later::Patience;
pub use notify::NotifyConfig;
pub use psa::{AutotaskConfig, ConnectWiseConfig, HaloConfig, PsaConfig, PsaProvider};
pub use share::PwPushConfig;
pub use smtp::{SmtpConfig, SmtpConfigError, SmtpTls};
pub use vendors::Vendors;

/// Implements [`tenure_steps::Executor`] for kinds whose `async fn run(&self, Call)` does the
/// work.
#[macro_export]
macro_rules! executor {
    ($($kind:ident),* $(,)?) => {
        $(impl tenure_steps::Executor for $kind {
            fn execute<'a>(
                &'a self,
                call: tenure_steps::Call<'a>,
            ) -> tenure_steps::BoxFuture<'a, Result<tenure_steps::Outcome, tenure_steps::StepError>> {
                Box::pin(self.run(call))
            }
        })*
    };
}

use std::sync::Arc;

use tenure_steps::Registry;

/// Registers every kind of this crate (the vendor kinds, `password.generate` and
/// `http.request`), sharing `vendors` (endpoints, credentials, token cache, HTTP client). The
/// engine's own `approval` and `wait` are registered by `tenure_engine::builtin`.
pub fn register(registry: &mut Registry, vendors: Vendors) {
    let vendors = Arc::new(vendors);
    entra::register(registry, &vendors);
    entra_admin::register(registry, &vendors);
    rehire::register(registry, &vendors);
    exchange::register(registry, &vendors);
    licence::register(registry, &vendors);
    intune::register(registry, &vendors);
    password::register(registry);
    http::register(registry, &vendors);
    psa::register(registry, &vendors);
    share::register(registry, &vendors);
    notify::register(registry, &vendors);
}
