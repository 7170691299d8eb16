//! The step-kind contract of Tenure, in two halves and without any I/O:
//!
//! - the **catalogue**: each vendor family lives in its own module and declares its kinds'
//!   `with` parameters and outputs; [`catalogue`] gathers them for the compiler;
//! - the **execution interface** ([`exec`], re-exported here): [`Executor`], [`Call`],
//!   [`Outcome`], [`StepError`], the [`Registry`] and the request log ([`Requests`]). The
//!   engine runs executors through it; `tenure-kinds` implements them over `tenure-vendors`.
//!
//! Kind names are a durable contract: runbooks and journals name them, so a kind is never
//! renamed.

mod common;
pub mod control;
pub mod entra;
pub mod exchange;
pub mod exec;
pub mod intune;
pub mod licence;
pub mod markdown;
pub mod notify;
pub mod password;
pub mod psa;
pub mod reference;

pub use exec::{BoxFuture, Call, Executor, Outcome, Registry, RequestSummary, Requests, StepError};

use tenure_runbook::{KindSchema, SchemaCatalogue};

/// Every built-in kind's schema.
pub fn schemas() -> Vec<KindSchema> {
    let mut all = Vec::new();
    all.extend(control::schemas());
    all.extend(entra::schemas());
    all.extend(licence::schemas());
    all.extend(exchange::schemas());
    all.extend(intune::schemas());
    all.extend(psa::schemas());
    all.extend(password::schemas());
    all.extend(notify::schemas());
    all
}

/// The catalogue the compiler checks runbooks against: a kind that cannot run yet is
/// declared with the reason ([`KindSchema::unavailable`]) and rejected by the compiler (RB0045).
pub fn catalogue() -> SchemaCatalogue {
    schemas().into_iter().collect()
}

/// The language contract: every declared kind, as if each could run. For checks of the
/// language itself (the compiler's corpus) and for engine tests that register their own
/// executors; runbooks that are to run are checked against [`catalogue`].
pub fn contract_catalogue() -> SchemaCatalogue {
    schemas()
        .into_iter()
        .map(|mut k| {
            k.unavailable = None;
            k
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_runbook::Catalogue;

    /// The language contract's table of kinds, all of which must exist.
    const CONTRACT: &[&str] = &[
        "approval",
        "wait",
        "entra.create_user",
        "entra.update_user",
        "entra.disable_sign_in",
        "entra.enable_sign_in",
        "entra.revoke_sessions",
        "entra.reset_password",
        "entra.delete_user",
        "entra.set_manager",
        "entra.remove_auth_methods",
        "entra.create_tap",
        "entra.add_to_group",
        "entra.remove_from_group",
        "entra.remove_from_all_groups",
        "entra.copy_groups_from",
        "licence.assign",
        "licence.remove",
        "licence.remove_all",
        "exchange.convert_to_shared",
        "exchange.hide_from_gal",
        "exchange.set_forwarding",
        "exchange.grant_full_access",
        "exchange.set_auto_reply",
        "intune.wipe_devices",
        "intune.retire_devices",
        "psa.create_contact",
        "psa.update_contact",
        "psa.deactivate_contact",
        "psa.add_ticket_note",
        "psa.update_ticket",
        "password.generate",
        "password.share",
        "notify.teams",
        "notify.email",
        "http.request",
        "runbook.call",
    ];

    /// Kinds beyond the language contract's list, each documented in docs/steps/ like the
    /// others: `entra.restore_user` and `exchange.convert_to_regular` serve the stock rehire
    /// runbook.
    const BEYOND_CONTRACT: &[&str] = &["entra.restore_user", "exchange.convert_to_regular"];

    #[test]
    fn every_contract_kind_is_declared_once() {
        let names: Vec<String> = schemas().into_iter().map(|k| k.kind).collect();
        for kind in CONTRACT.iter().chain(BEYOND_CONTRACT) {
            assert_eq!(names.iter().filter(|n| n == kind).count(), 1, "{kind}");
        }
        assert_eq!(
            names.len(),
            CONTRACT.len() + BEYOND_CONTRACT.len(),
            "undocumented extra kinds: {names:?}"
        );
    }

    /// The `[dependencies]` of a workspace crate, by directory name.
    fn dependencies(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(dir)
            .join("Cargo.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        text.lines()
            .skip_while(|l| l.trim() != "[dependencies]")
            .skip(1)
            .take_while(|l| !l.trim_start().starts_with('['))
            .filter_map(|l| l.split(['=', '.']).next())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty() && !n.starts_with('#'))
            .collect()
    }

    #[test]
    fn layering_follows_the_architecture() {
        // This crate holds the contract and does no I/O (`tracing` is a logging facade,
        // `pulldown-cmark` the pure Markdown renderer shared by messages and reports).
        assert_eq!(
            dependencies("steps"),
            [
                "tracing",
                "tenure-runbook",
                "serde_json",
                "thiserror",
                "pulldown-cmark"
            ]
        );
        // The engine sees no vendor and no HTTP client.
        let engine = dependencies("engine");
        assert!(engine.contains(&"tenure-steps".to_string()), "{engine:?}");
        for banned in ["tenure-vendors", "tenure-kinds", "reqwest", "axum", "hyper"] {
            assert!(!engine.iter().any(|d| d == banned), "engine uses {banned}");
        }
        // The vendors layer knows the contract (for the request log), never the engine.
        let vendors = dependencies("vendors");
        assert!(vendors.contains(&"tenure-steps".to_string()), "{vendors:?}");
        assert!(!vendors.iter().any(|d| d == "tenure-engine"), "{vendors:?}");
        assert!(!dependencies("kinds").iter().any(|d| d == "tenure-engine"));
    }

    #[test]
    fn params_are_unique_and_described() {
        for kind in catalogue().kinds() {
            let mut seen = std::collections::HashSet::new();
            assert!(!kind.description.is_empty(), "{}", kind.kind);
            for p in kind.params.iter().chain(&kind.outputs) {
                assert!(!p.description.is_empty(), "{}.{}", kind.kind, p.name);
            }
            for p in &kind.params {
                assert!(seen.insert(&p.name), "{}.{} twice", kind.kind, p.name);
                assert!(
                    !(p.required && p.default.is_some()),
                    "{}.{}",
                    kind.kind,
                    p.name
                );
            }
        }
    }
}
