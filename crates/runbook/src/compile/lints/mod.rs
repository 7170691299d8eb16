//! Domain lints: warnings about runbooks that compile and would then do damage (a mailbox lost
//! to a licence removal, a wipe no one approved, a password pasted into a ticket). They read
//! what each kind means from the catalogue ([`Effect`](crate::catalogue::Effect) and
//! [`Role`](crate::catalogue::Role)), not from lists of kind names here.
//!
//! A lint runs only on a runbook without errors. A step (or the runbook, at the top level)
//! accepts a warning on purpose with `allow: [{code: RB0071, reason: "..."}]`; the reason is
//! required ([`allow`]).

mod allow;
mod flow;
mod lifecycle;
mod model;
mod usage;

use crate::catalogue::Catalogue;
use crate::diagnostic::Diagnostic;
use crate::plan::Plan;
use crate::source::SourceFile;
use crate::yaml::Node;

use model::Model;

/// One warning and the step it belongs to (`None`: the runbook as a whole).
pub(super) struct Finding {
    /// The warning.
    pub diagnostic: Diagnostic,
    /// The step whose `allow` can accept it.
    pub step: Option<String>,
}

/// Checks the `allow` keys, then (if `plan` compiled) runs every lint and adds the warnings
/// no `allow` accepts to `diags`.
pub(super) fn run(
    src: &SourceFile,
    catalogue: &dyn Catalogue,
    root: &Node,
    plan: Option<&Plan>,
    diags: &mut Vec<Diagnostic>,
) {
    let allows = allow::collect(root, diags);
    let Some(plan) = plan else {
        return;
    };
    if diags.iter().any(Diagnostic::is_error) {
        return;
    }
    let model = Model::new(src, catalogue, root, plan);
    let mut findings = Vec::new();
    lifecycle::check(&model, &mut findings);
    flow::check(&model, &mut findings);
    usage::check(&model, &mut findings);
    for f in findings {
        if !allows.accepts(f.diagnostic.code, f.step.as_deref()) {
            diags.push(f.diagnostic);
        }
    }
}
