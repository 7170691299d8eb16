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
mod entra_admin;
mod exchange;
mod intune;
mod licence;
mod password;
mod vendors;

pub use vendors::Vendors;

/// Implements [`tenure_engine::kinds::Executor`] for kinds whose `async fn run(&self, Call)`
/// does the work.
#[macro_export]
macro_rules! executor {
    ($($kind:ident),* $(,)?) => {
        $(impl tenure_engine::kinds::Executor for $kind {
            fn execute<'a>(
                &'a self,
                call: tenure_engine::kinds::Call<'a>,
            ) -> tenure_engine::kinds::BoxFuture<'a, Result<tenure_engine::kinds::Outcome, tenure_engine::kinds::StepError>> {
                Box::pin(self.run(call))
            }
        })*
    };
}

use std::sync::Arc;

use tenure_engine::kinds::Registry;

/// Registers every vendor kind, sharing `vendors` (endpoints, credentials, token cache).
pub fn register(registry: &mut Registry, vendors: Vendors) {
    let vendors = Arc::new(vendors);
    entra::register(registry, &vendors);
    entra_admin::register(registry, &vendors);
    exchange::register(registry, &vendors);
    licence::register(registry, &vendors);
    intune::register(registry, &vendors);
    password::register(registry);
}
