//! `docs/steps/` is generated from the schemas: this test regenerates every page and fails if
//! the committed page differs (`UPDATE_EXPECT=1` rewrites them).

use std::path::Path;

#[test]
fn step_reference_pages_match_the_schemas() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/steps");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut kinds = tenure_steps::schemas();
    kinds.sort_by(|a, b| a.kind.cmp(&b.kind));
    let mut pages: Vec<(String, String)> = kinds
        .iter()
        .map(|k| {
            (
                format!("{}.md", k.kind),
                tenure_steps::reference::markdown(k),
            )
        })
        .collect();
    pages.push(("README.md".into(), tenure_steps::reference::index(&kinds)));
    let mut stale = Vec::new();
    for (name, text) in pages {
        let path = dir.join(&name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != text {
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, text).unwrap();
            } else {
                stale.push(name);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "docs/steps is stale ({stale:?}); run UPDATE_EXPECT=1 cargo test -p tenure-steps"
    );
}
