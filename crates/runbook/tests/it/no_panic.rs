//! The compiler never panics: not on any prefix of a real runbook, not on random bytes, not on
//! random edits of a real runbook. Every failure is diagnostics.

use std::path::Path;

use proptest::prelude::*;
use tenure_runbook::{compile, SourceFile};

fn runbooks() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runbooks");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    out
}

#[test]
fn every_prefix_of_every_runbook_compiles_or_reports() {
    let catalogue = tenure_steps::catalogue();
    for text in runbooks() {
        let mut cut = 0;
        while cut < text.len() {
            if text.is_char_boundary(cut) {
                let out = compile(&SourceFile::new("prefix.yaml", &text[..cut]), &catalogue);
                assert!(out.plan.is_some() || !out.diagnostics.is_empty());
                for d in &out.diagnostics {
                    assert!(d.span.start <= cut + 1, "span past the end of the text");
                }
            }
            cut += 7;
        }
    }
}

fn mutate(text: &str, at: usize, edit: u8, byte: char) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return byte.to_string();
    }
    let i = at % chars.len();
    match edit % 4 {
        0 => {
            chars.remove(i);
        }
        1 => chars.insert(i, byte),
        2 => chars[i] = byte,
        _ => {
            let j = (i * 7 + 13) % chars.len();
            chars.swap(i, j);
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        let _ = compile(&SourceFile::new("random.yaml", text), &tenure_steps::catalogue());
    }

    #[test]
    fn random_edits_of_runbooks_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), prop::sample::select(vec![':', '{', '}', '[', ']', '-', ' ', '\n', '"', '\'', '#', '&', '*', '!', '|', '>', '\t', 'é', '\u{0}'])), 1..6),
    ) {
        let books = runbooks();
        let mut text = books[which % books.len()].clone();
        for (at, edit, ch) in edits {
            text = mutate(&text, at, edit, ch);
        }
        let _ = compile(&SourceFile::new("edited.yaml", text), &tenure_steps::catalogue());
    }
}
