//! Every file under `tests/data/err` must fail with the codes its `# expect:` line names, and
//! its rendered diagnostics must match the `.expected` snapshot beside it. Every file under
//! `tests/data/ok` (against the language contract: every declared kind) and the repository's
//! `runbooks/` (against the kinds that can run) must compile, and its plan must match a
//! `.plan.json` snapshot. `runbook.call` steps find the runbooks they call in
//! `tests/data/called`.

use std::path::{Path, PathBuf};

use tenure_runbook::{compile, compile_with, KindSchema, Plan, Runbooks, SourceFile, Unresolved};

/// The runbooks under `tests/data/called`, by file name (`ID.yaml`).
pub(crate) struct Called;

impl Runbooks for Called {
    fn resolve(&self, id: &str, _caller: &str) -> Result<Plan, Unresolved> {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let dir = base.join("called");
        let path = dir.join(format!("{id}.yaml"));
        if !path.exists() {
            let known = yaml_files(&dir)
                .iter()
                .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
                .collect();
            return Err(Unresolved::Unknown(known));
        }
        compile_with(
            &source(&path, &base),
            &tenure_steps::contract_catalogue(),
            self,
        )
        .plan
        .ok_or_else(|| Unresolved::Invalid(format!("{id} has errors")))
    }
}

/// The stock runbooks' `runbook.call` resolver: runbooks of `runbooks/` by their `runbook:` id,
/// compiled against the kinds that can run.
struct StockCalled;

impl Runbooks for StockCalled {
    fn resolve(&self, id: &str, _caller: &str) -> Result<Plan, Unresolved> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let files = yaml_files(&repo.join("runbooks"));
        let found = files.iter().find(|p| {
            std::fs::read_to_string(p).is_ok_and(|t| {
                // The top-level key only (a `runbook.call` step's `runbook:` is indented).
                t.lines().any(|l| l.trim_end() == format!("runbook: {id}"))
            })
        });
        let Some(path) = found else {
            let known = files
                .iter()
                .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
                .collect();
            return Err(Unresolved::Unknown(known));
        };
        compile_with(&source(path, &repo), &tenure_steps::catalogue(), self)
            .plan
            .ok_or_else(|| Unresolved::Invalid(format!("{id} has errors")))
    }
}

/// The catalogue, with one kind that is declared but cannot run (the runbook language has
/// none left), for RB0045.
fn with_unavailable(
    mut catalogue: tenure_runbook::SchemaCatalogue,
) -> tenure_runbook::SchemaCatalogue {
    catalogue.insert(
        KindSchema::action("example.unavailable", "A kind kept for the RB0045 test.")
            .unavailable("it exists only in this test"),
    );
    catalogue
}

fn data(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir);
    yaml_files(&root)
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn source(path: &Path, relative_to: &Path) -> SourceFile {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path
        .strip_prefix(relative_to)
        .unwrap_or(path)
        .display()
        .to_string();
    SourceFile::new(name, text)
}

#[test]
fn error_corpus_matches_expectations() {
    let files = data("err");
    assert!(
        files.len() >= 40,
        "the error corpus has only {} files",
        files.len()
    );
    let catalogue = with_unavailable(tenure_steps::catalogue());
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut failures = Vec::new();
    for path in &files {
        let src = source(path, &base);
        let out = compile_with(&src, &catalogue, &Called);
        let expected_codes: Vec<&str> = src
            .text()
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect:"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        assert!(
            !expected_codes.is_empty(),
            "{}: no `# expect:` line",
            path.display()
        );
        assert!(
            out.plan.is_none(),
            "{}: compiled, but should not",
            path.display()
        );
        for code in &expected_codes {
            if !out
                .diagnostics
                .iter()
                .any(|d| d.code.as_str() == *code && d.is_error())
            {
                failures.push(format!("{}: expected an error {code}", path.display()));
            }
        }
        let rendered: String = out
            .diagnostics
            .iter()
            .map(|d| d.render(&src) + "\n")
            .collect();
        if let Err(e) = crate::expect::check(&path.with_extension("expected"), &rendered) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_runbooks_compile_to_stable_plans() {
    // `tests/data/ok` checks the language: every declared kind, runnable yet or not. The stock
    // runbooks must run, so they are checked against the kinds that can.
    let contract = tenure_steps::contract_catalogue();
    let catalogue = tenure_steps::catalogue();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let mut files = data("ok");
    files.extend(yaml_files(&repo.join("runbooks")));
    let mut failures = Vec::new();
    for path in &files {
        let src = source(path, &repo);
        let stock = path.starts_with(repo.join("runbooks"));
        let out = if stock {
            compile_with(&src, &catalogue, &StockCalled)
        } else {
            compile_with(&src, &contract, &Called)
        };
        let errors: Vec<String> = out
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.render(&src))
            .collect();
        if !errors.is_empty() {
            failures.push(errors.join("\n"));
            continue;
        }
        let plan = out.plan.expect("no errors means a plan");
        assert_eq!(plan.hash, plan.compute_hash());
        let json = serde_json::to_string_pretty(&plan).unwrap() + "\n";
        // A plan must survive the round trip a run's pinned copy takes.
        let back: tenure_runbook::Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan, "{}: plan does not round-trip", path.display());
        let snapshot = path.with_extension("plan.json");
        if path.starts_with(repo.join("runbooks")) {
            continue; // runbooks/ change often; their plans are checked for round trips only
        }
        if let Err(e) = crate::expect::check(&snapshot, &json) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn plan_orders_steps_topologically_and_keeps_file_order_on_ties() {
    let src = SourceFile::new(
        "t.yaml",
        r#"
runbook: t
version: 1
tenant: contoso
steps:
  d: { uses: wait, needs: [b, c], with: { for: 1s } }
  c: { uses: wait, needs: [a], with: { for: 1s } }
  b: { uses: wait, needs: [a], with: { for: 1s } }
  a: { uses: wait, with: { for: 1s } }
"#,
    );
    let plan = compile(&src, &tenure_steps::catalogue()).plan.unwrap();
    let order: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(order, ["a", "c", "b", "d"]);
    let levels: Vec<Vec<&str>> = plan
        .levels()
        .iter()
        .map(|l| l.iter().map(|s| s.id.as_str()).collect())
        .collect();
    assert_eq!(levels, [vec!["a"], vec!["c", "b"], vec!["d"]]);
    assert_eq!(plan.graph().edge_count(), 4);
}

#[test]
fn references_are_edges_and_needs_merge_with_them() {
    let src = SourceFile::new(
        "t.yaml",
        r#"
runbook: t
version: 1
tenant: contoso
steps:
  user: { uses: entra.create_user, with: { user_principal_name: a@contoso.example, display_name: A } }
  lic:
    uses: licence.assign
    needs: [user]
    with: { user: "{{steps.user.outputs.id}}", sku: SPB }
  grp:
    uses: entra.add_to_group
    with: { user: "{{steps.user.outputs.id}}", group: Sales }
"#,
    );
    let plan = compile(&src, &tenure_steps::catalogue()).plan.unwrap();
    let lic = plan.step("lic").unwrap();
    assert_eq!(lic.needs.len(), 1);
    assert!(lic.needs[0].explicit && lic.needs[0].referenced);
    let grp = plan.step("grp").unwrap();
    assert!(!grp.needs[0].explicit && grp.needs[0].referenced);
    // Defaults from the kind's schema are filled in.
    assert_eq!(lic.with["source"], "direct");
}

#[test]
fn every_diagnostic_code_has_a_documentation_page() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/diagnostics");
    for code in tenure_runbook::Code::ALL {
        let page = dir.join(format!("{}.md", code.as_str()));
        let text = std::fs::read_to_string(&page)
            .unwrap_or_else(|_| panic!("{} has no page at {}", code.as_str(), page.display()));
        assert!(
            text.starts_with(&format!("# {}: ", code.as_str())),
            "{}",
            page.display()
        );
    }
}
