//! The domain lints' corpus: every file under `tests/data/lint` compiles, warns with exactly
//! the codes its `# expect:` line names (`none` for the cases that must stay quiet), and its
//! rendered warnings match the `.expected` snapshot beside it. `runbook.call` finds the
//! runbooks it calls in `tests/data/called`.

use std::collections::BTreeSet;
use std::path::Path;

use tenure_runbook::{compile_with, Code, SourceFile};

#[test]
fn lint_corpus_matches_expectations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files: Vec<_> = std::fs::read_dir(dir.join("lint"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let catalogue = tenure_steps::catalogue();
    let mut failures = Vec::new();
    let mut warned = BTreeSet::new();
    let mut quiet = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.strip_prefix(&dir).unwrap().display().to_string();
        let src = SourceFile::new(name.clone(), text);
        let out = compile_with(&src, &catalogue, &crate::snapshots::Called);
        let expected: BTreeSet<&str> = src
            .text()
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect:"))
            .map(|l| l.split_whitespace().filter(|c| *c != "none").collect())
            .unwrap_or_else(|| panic!("{name}: no `# expect:` line"));
        if expected.is_empty() {
            quiet += 1;
        }
        if out.plan.is_none() {
            let errors: Vec<String> = out.diagnostics.iter().map(|d| d.render(&src)).collect();
            failures.push(format!("{name}: does not compile:\n{}", errors.join("\n")));
            continue;
        }
        let got: BTreeSet<&str> = out.diagnostics.iter().map(|d| d.code.as_str()).collect();
        if got != expected {
            failures.push(format!("{name}: expected {expected:?}, warned {got:?}"));
        }
        warned.extend(got);
        let rendered: String = out
            .diagnostics
            .iter()
            .map(|d| d.render(&src) + "\n")
            .collect();
        if let Err(e) = crate::expect::check(&path.with_extension("expected"), &rendered) {
            failures.push(e);
        }
    }
    for code in Code::LINTS {
        if !warned.contains(code.as_str()) {
            failures.push(format!(
                "no case in tests/data/lint warns {}",
                code.as_str()
            ));
        }
    }
    assert!(quiet >= 5, "only {quiet} cases that must stay quiet");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_lint_is_a_warning_and_every_other_code_is_not_a_lint() {
    for code in Code::ALL {
        assert_eq!(
            code.is_lint(),
            code.as_str() >= "RB0070" && code.as_str() < "RB0079",
            "{}",
            code.as_str()
        );
        assert_eq!(Code::parse(code.as_str()), Some(*code));
    }
}
