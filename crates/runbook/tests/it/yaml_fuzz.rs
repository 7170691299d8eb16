//! The YAML loader against generated hostile documents: anchors and aliases nested in lists and
//! mappings, deep nesting, random bytes and random YAML-ish text. It never panics, answers in
//! bounded time, keeps the tree it builds within the alias limit (memory), and refuses every
//! document whose aliases would expand past the limit with the expected message, and no other.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use tenure_runbook::yaml::{self, Node, Value, MAX_ALIAS_NODES, MAX_DEPTH};
use tenure_runbook::SourceFile;

/// Far above what a document within the limits takes, even in a debug build on a busy machine.
const BOUND: Duration = Duration::from_secs(5);

/// One item of a generated list.
#[derive(Clone, Debug)]
enum Item {
    /// A plain scalar, anchored or not.
    Scalar(bool),
    /// An alias of the anchor of an earlier definition (taken modulo their count).
    Alias(usize),
    /// A nested flow list of items, anchored or not.
    List(bool, Vec<Item>),
    /// A nested flow mapping whose values are the items.
    Map(Vec<Item>),
}

fn item() -> impl Strategy<Value = Item> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Item::Scalar),
        any::<usize>().prop_map(Item::Alias)
    ];
    leaf.prop_recursive(4, 48, 9, |inner| {
        prop_oneof![
            (any::<bool>(), prop::collection::vec(inner.clone(), 0..9))
                .prop_map(|(a, items)| Item::List(a, items)),
            prop::collection::vec(inner, 0..6).prop_map(Item::Map),
        ]
    })
}

/// A generated document: key `kI` holds `&dI [items]`, whose aliases name earlier definitions
/// (`*dJ`, J < I) and anchored nodes inside them. Returns the text and the number of nodes its
/// aliases expand to, counted the way the loader counts (an alias costs the whole subtree it
/// names, aliases inside that subtree included).
struct Doc {
    text: String,
    expanded: usize,
}

struct Builder {
    text: String,
    /// Sizes of the definitions written so far.
    defs: Vec<usize>,
    expanded: usize,
    anchors: usize,
}

impl Builder {
    /// Writes `item` and returns its size in nodes.
    fn item(&mut self, item: &Item) -> usize {
        match item {
            Item::Scalar(anchored) => {
                if *anchored {
                    self.anchors += 1;
                    self.text.push_str(&format!("&s{} ", self.anchors));
                }
                self.text.push('x');
                1
            }
            Item::Alias(n) if !self.defs.is_empty() => {
                let j = n % self.defs.len();
                self.text.push_str(&format!("*d{j}"));
                self.expanded += self.defs[j];
                self.defs[j]
            }
            Item::Alias(_) => {
                self.text.push('y');
                1
            }
            Item::List(anchored, items) => {
                if *anchored {
                    self.anchors += 1;
                    self.text.push_str(&format!("&l{} ", self.anchors));
                }
                self.text.push('[');
                let mut size = 1;
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        self.text.push_str(", ");
                    }
                    size += self.item(it);
                }
                self.text.push(']');
                size
            }
            Item::Map(items) => {
                self.text.push('{');
                let mut size = 1;
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        self.text.push_str(", ");
                    }
                    self.text.push_str(&format!("m{i}: "));
                    size += self.item(it);
                }
                self.text.push('}');
                size
            }
        }
    }
}

fn document(defs: &[Vec<Item>]) -> Doc {
    let mut b = Builder {
        text: String::new(),
        defs: Vec::new(),
        expanded: 0,
        anchors: 0,
    };
    for (i, items) in defs.iter().enumerate() {
        b.text.push_str(&format!("k{i}: &d{i} "));
        let size = b.item(&Item::List(false, items.clone()));
        b.text.push('\n');
        b.defs.push(size);
    }
    Doc {
        text: b.text,
        expanded: b.expanded,
    }
}

fn size(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(size).sum(),
        Value::Map(entries) => entries.iter().map(|(_, v)| size(v)).sum(),
        _ => 0,
    }
}

/// Parses with the checks every input must pass: no panic (a panic fails the test), bounded
/// time, and a tree no larger than the text plus the alias budget.
fn parse(text: &str) -> (Option<Node>, Vec<tenure_runbook::Diagnostic>) {
    let started = Instant::now();
    let (node, diags) = yaml::parse(&SourceFile::new("fuzz.yaml", text));
    assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
    if let Some(n) = &node {
        assert!(
            size(n) <= 2 * text.len() + MAX_ALIAS_NODES + 1,
            "{} nodes",
            size(n)
        );
    }
    let _ = yaml::top_level_scalar(text, "runbook");
    (node, diags)
}

const BOMB: &str = "aliases expand to more than 10000 nodes";

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every generated document with aliases is loaded exactly when its expansion is within the
    /// limit, and refused with the alias message otherwise.
    #[test]
    fn aliases_load_within_the_limit_and_are_refused_past_it(
        defs in prop::collection::vec(prop::collection::vec(item(), 1..10), 1..9),
    ) {
        let doc = document(&defs);
        let (node, diags) = parse(&doc.text);
        if doc.expanded > MAX_ALIAS_NODES {
            prop_assert!(node.is_none());
            prop_assert_eq!(diags.len(), 1, "{:?}", diags);
            prop_assert_eq!(&diags[0].message, BOMB);
        } else {
            prop_assert!(diags.is_empty(), "{}\n{:?}", doc.text, diags);
            let node = node.unwrap();
            let defs_size: usize = node.as_map().unwrap().iter().map(|(_, v)| size(v)).sum();
            prop_assert!(defs_size <= doc.text.len() + doc.expanded);
        }
    }

    /// The same documents, each definition aliasing the previous one several times: the sizes
    /// grow geometrically, so most pass the limit and must be refused quickly.
    #[test]
    fn nested_alias_bombs_are_refused(width in 2usize..12, depth in 2usize..14, tail in 0usize..3) {
        let mut text = format!("a0: &a0 [{}]\n", vec!["x"; width].join(", "));
        let mut expanded = 0usize;
        let mut sizes = vec![width + 1];
        for d in 1..depth {
            let refs = vec![format!("*a{}", d - 1); width].join(", ");
            text.push_str(&format!("a{d}: &a{d} [{refs}]\n"));
            expanded = expanded.saturating_add(width.saturating_mul(sizes[d - 1]));
            sizes.push(1 + width.saturating_mul(sizes[d - 1]));
        }
        text.push_str(&"z: 1\n".repeat(tail));
        let (node, diags) = parse(&text);
        if expanded > MAX_ALIAS_NODES {
            prop_assert!(node.is_none());
            prop_assert_eq!(&diags[0].message, BOMB);
        } else {
            prop_assert!(node.is_some(), "{:?}", diags);
        }
    }

    /// Lists and mappings nested in block and flow style, up to far past the depth limit.
    #[test]
    fn deep_nesting_is_refused_or_loaded(depth in 1usize..600, flow in any::<bool>(), map in any::<bool>()) {
        let text = match (flow, map) {
            (false, false) => format!("{}x\n", "- ".repeat(depth)),
            (false, true) => (0..depth).map(|i| format!("{}k:\n", " ".repeat(i))).collect(),
            (true, false) => format!("{}x{}", "[".repeat(depth), "]".repeat(depth)),
            (true, true) => format!("{}x{}", "{a: ".repeat(depth), "}".repeat(depth)),
        };
        let (node, diags) = parse(&text);
        if depth <= MAX_DEPTH {
            prop_assert!(node.is_some(), "{:?}", diags);
        } else {
            prop_assert!(node.is_none());
            prop_assert!(
                diags[0].message == "lists and mappings nest deeper than 128 levels"
                    || diags[0].message.starts_with("invalid YAML: "),
                "{:?}", diags
            );
        }
    }

    /// Random bytes (as the loader sees them: lossy UTF-8) never panic and stay bounded.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse(&String::from_utf8_lossy(&bytes));
    }

    /// Random text made of YAML's structural characters, anchors and aliases included; the
    /// checks are those of [`parse`] (no panic, bounded time and tree).
    #[test]
    fn random_yaml_ish_text_never_panics(text in "([&*][a-c]|[a-c]|[-:,\\[\\]{}?!|>'\"#%@` \n\t]|\u{0}|é){0,400}") {
        let _ = parse(&text);
    }
}
