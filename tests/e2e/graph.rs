//! `tenure graph`: SVG, DOT and Mermaid pictures of a DAG.

use crate::{stderr, stdout, tenure};

#[test]
fn svg_is_well_formed_with_a_box_per_step_and_an_arrow_per_edge() {
    let o = tenure(&["graph", "onboard-user", "--format", "svg"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    let steps: Vec<(String, String)> = doc
        .descendants()
        .filter(|n| {
            n.has_tag_name("g") && n.attribute("class").is_some_and(|c| c.starts_with("step"))
        })
        .map(|n| {
            (
                n.attribute("data-step").unwrap().to_string(),
                n.attribute("class").unwrap().to_string(),
            )
        })
        .collect();
    // 13 steps: the wait for a scheduled start, the 5 Microsoft 365 ones (groups copied from
    // a template user too), the PSA contact, the password link, the welcome emails to the
    // manager and to the personal address, the Teams post, the ticket note and the on_failure
    // Teams alert.
    assert_eq!(steps.len(), 13, "{steps:?}");
    let class = |id: &str| steps.iter().find(|(s, _)| s == id).map(|(_, c)| c.as_str());
    assert_eq!(class("approve"), Some("step approval"));
    assert_eq!(class("licences"), Some("step for-each"));
    assert_eq!(class("create_user"), Some("step action"));
    let edges: Vec<(String, String)> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("edge"))
        .map(|n| {
            (
                n.attribute("data-from").unwrap().into(),
                n.attribute("data-to").unwrap().into(),
            )
        })
        .collect();
    assert!(
        edges.contains(&("create_user".into(), "licences".into())),
        "{edges:?}"
    );
    assert!(edges.contains(&("approve".into(), "create_user".into())));
    // Every box's label names its id and kind.
    assert!(text.contains(">entra.create_user<"));
}

#[test]
fn dot_and_mermaid_have_every_edge() {
    let dot = stdout(&tenure(&[
        "graph",
        "runbooks/offboard-user.yaml",
        "--format",
        "dot",
    ]));
    assert!(dot.starts_with("digraph \"offboard-user\""), "{dot}");
    assert!(dot.contains("\"convert_mailbox\" -> \"licences\""), "{dot}");
    assert!(dot.contains("shape=hexagon"));
    let mermaid = stdout(&tenure(&["graph", "offboard-user", "--format", "mermaid"]));
    assert!(mermaid.starts_with("flowchart TD"));
    assert!(
        mermaid.contains("s_convert_mailbox --> s_licences"),
        "{mermaid}"
    );
}

#[test]
fn graph_of_a_broken_runbook_shows_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cycle.yaml");
    std::fs::write(&file, "runbook: c\nversion: 1\ntenant: x\nsteps:\n  a: { uses: wait, needs: [b], with: { for: 1s } }\n  b: { uses: wait, needs: [a], with: { for: 1s } }\n").unwrap();
    let o = tenure(&["graph", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("error[RB0031]: dependency cycle: a → b → a"),
        "{}",
        stderr(&o)
    );
    let o = tenure(&["graph", "no-such-runbook"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("onboard-user"),
        "lists the ids it knows: {}",
        stderr(&o)
    );
}
