//! A YAML loader that keeps a span on every node and reports duplicate keys without stopping,
//! built on `yaml-rust2`'s event parser. Plain scalars resolve by the YAML 1.2 core schema
//! (`yes`/`no` stay strings); quoted and block scalars are always strings.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diagnostic::{Code, Diagnostic};
use crate::source::{SourceFile, Span};

/// A YAML node with the span of its text.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: Value,
    /// Where it stands in the source.
    pub span: Span,
    /// The text of a plain scalar that resolved to null, a boolean or a number, as written
    /// (`0012`, `1e3`, `true`): what a place that wants text takes instead of the resolved
    /// value, so `ticket: 0012` given for a string is `"0012"`, not `"12"`.
    pub plain: Option<String>,
}

/// The content of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (any quoted or block scalar, or a plain one that is no other type).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order; keys are unique (duplicates were reported and dropped).
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// The key's text.
    pub name: String,
    /// Where the key stands.
    pub span: Span,
}

impl Node {
    /// A short name for the node's type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The entries if this is a mapping.
    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items if this is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The text if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The text of any scalar (strings, numbers and booleans as written: `0012` stays
    /// `0012`), for places that take a string but forgive `ticket: 123`.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) if self.plain.is_some() => {
                self.plain.clone()
            }
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Looks a key up in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// Converts to JSON (mapping order kept).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Parses `source` into a node tree. Syntax errors end parsing (the YAML after them has no
/// meaning); duplicate keys and unsupported constructs are reported and parsing goes on.
///
/// Hostile input is bounded the way hardened YAML loaders bound it: a document larger than
/// [`MAX_DOCUMENT_BYTES`] is refused unread, and aliases may expand to at most
/// [`MAX_ALIAS_NODES`] nodes in all (a "billion laughs" file of a few hundred bytes would
/// otherwise grow to gigabytes); past either limit parsing stops with an RB0001 diagnostic.
/// Lists and mappings may nest at most [`MAX_DEPTH`] deep. A NUL byte (binary data) is refused
/// the same way.
pub fn parse(source: &SourceFile) -> (Option<Node>, Vec<Diagnostic>) {
    if source.text().len() > MAX_DOCUMENT_BYTES {
        let d = Diagnostic::error(
            Code::YamlSyntax,
            Span::at(0, 1),
            format!(
                "the document is {} bytes, more than the {MAX_DOCUMENT_BYTES} a runbook may have",
                source.text().len()
            ),
        );
        return (None, vec![d]);
    }
    // The scanner takes a NUL for the end of the input, which made a file of NULs "empty".
    if let Some(at) = source.text().find('\0') {
        let d = Diagnostic::error(
            Code::YamlSyntax,
            Span::at(at, 1),
            "the file holds a NUL byte: it is binary data, not YAML text",
        )
        .with_label("a NUL byte");
        return (None, vec![d]);
    }
    let mut loader = Loader {
        source,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        diagnostics: Vec::new(),
        documents: 0,
        expanded: 0,
        stopped: false,
    };
    // Events are pulled one at a time: `Parser::load` recurses once per nesting level, and a
    // line of `- - - …` would overflow the stack before the depth limit could stop it.
    let mut parser = Parser::new_from_str(source.text());
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(err) => {
                let start = offset_of(source, err.marker());
                let mut message = err.info().to_string();
                if let Some(rest) = message.strip_prefix("while ") {
                    message = rest.to_string();
                }
                loader.diagnostics.push(
                    Diagnostic::error(
                        Code::YamlSyntax,
                        Span::at(start, 1),
                        format!("invalid YAML: {message}"),
                    )
                    .with_label("here"),
                );
                return (None, loader.diagnostics);
            }
        };
        let end = matches!(event, Event::StreamEnd);
        loader.on_event(event, mark);
        if end || loader.stopped {
            break;
        }
    }
    if loader.stopped {
        return (None, loader.diagnostics);
    }
    (loader.root, loader.diagnostics)
}

/// The text of a top-level key's scalar value (the `runbook:` id of a runbook file), read as
/// a stream of events without building the document: no alias is expanded and reading stops
/// at the value, so looking a runbook up by id costs little, even beside a hostile file.
/// `None` if the document is larger than [`MAX_DOCUMENT_BYTES`], is invalid before the key, is
/// not a mapping, or has no such key with a scalar value.
pub fn top_level_scalar(text: &str, key: &str) -> Option<String> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return None;
    }
    let mut parser = Parser::new_from_str(text);
    // Depth 1 is the root mapping, whose nodes alternate key, value: `slot` counts them.
    let mut depth = 0usize;
    let mut slot = 0usize;
    let mut wanted = false;
    loop {
        let (event, _) = parser.next_token().ok()?;
        match event {
            Event::MappingStart(..) if depth == 0 => depth = 1,
            Event::MappingStart(..) | Event::SequenceStart(..) if depth > 0 => {
                if depth == 1 && wanted {
                    return None;
                }
                depth += 1;
            }
            Event::MappingEnd | Event::SequenceEnd => {
                depth = depth.saturating_sub(1);
                match depth {
                    0 => return None,
                    1 => slot += 1,
                    _ => {}
                }
            }
            Event::Scalar(value, ..) if depth == 1 => {
                if wanted {
                    return Some(value);
                }
                wanted = slot % 2 == 0 && value == key;
                slot += 1;
            }
            Event::Alias(_) if depth == 1 => {
                if wanted {
                    return None;
                }
                slot += 1;
            }
            Event::Scalar(..) | Event::SequenceStart(..) if depth == 0 => return None,
            Event::DocumentEnd | Event::StreamEnd => return None,
            _ => {}
        }
    }
}

/// The largest YAML document [`parse`] reads (runbooks and input files are a few KiB).
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

/// The deepest nesting of lists and mappings a document may have (a runbook nests about ten;
/// each `- ` of a line opens one, so without a bound a few MiB could nest a million deep and
/// overflow the stack of whatever walks the tree).
pub const MAX_DEPTH: usize = 128;

/// The most nodes all the aliases of one document may expand to together.
pub const MAX_ALIAS_NODES: usize = 10_000;

fn size_of(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(size_of).sum(),
        Value::Map(entries) => entries.iter().map(|(_, v)| size_of(v)).sum(),
        _ => 0,
    }
}

fn offset_of(source: &SourceFile, mark: &Marker) -> usize {
    source.offset(mark.line(), mark.col())
}

enum Frame {
    Seq {
        start: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: usize,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        key: Option<Key>,
        seen: HashMap<String, Span>,
        skip_value: bool,
    },
}

struct Loader<'a> {
    source: &'a SourceFile,
    stack: Vec<Frame>,
    /// Anchored nodes and their sizes in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    root: Option<Node>,
    diagnostics: Vec<Diagnostic>,
    documents: usize,
    /// Nodes the aliases expanded to so far.
    expanded: usize,
    /// A limit was passed: the rest of the events are ignored.
    stopped: bool,
}

impl Loader<'_> {
    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size_of(&node)));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                key,
                seen,
                skip_value,
                ..
            }) => match key.take() {
                None => {
                    let name = match &node.value {
                        Value::Str(s) => s.clone(),
                        Value::Null => String::new(),
                        _ => match node.scalar_text() {
                            Some(t) => t,
                            None => {
                                self.diagnostics.push(
                                    Diagnostic::error(
                                        Code::WrongType,
                                        node.span,
                                        "mapping keys must be plain strings",
                                    )
                                    .with_label("a complex key"),
                                );
                                String::new()
                            }
                        },
                    };
                    // Small mappings are searched in place; large ones (the `steps` map)
                    // through an index built once they grow.
                    let first = if entries.len() < 16 {
                        entries
                            .iter()
                            .find(|(k, _)| k.name == name)
                            .map(|(k, _)| k.span)
                    } else {
                        if seen.is_empty() {
                            seen.extend(entries.iter().map(|(k, _)| (k.name.clone(), k.span)));
                        }
                        seen.get(&name).copied()
                    };
                    if let Some(first) = first {
                        self.diagnostics.push(
                            Diagnostic::error(
                                Code::DuplicateKey,
                                node.span,
                                format!("duplicate key `{name}`"),
                            )
                            .with_label("defined again here")
                            .with_note(first, "first defined here"),
                        );
                        *skip_value = true;
                    } else {
                        if !seen.is_empty() {
                            seen.insert(name.clone(), node.span);
                        }
                        *skip_value = false;
                    }
                    *key = Some(Key {
                        name,
                        span: node.span,
                    });
                }
                Some(k) => {
                    if !*skip_value {
                        entries.push((k, node));
                    }
                }
            },
        }
    }

    fn scalar(&self, text: String, style: TScalarStyle, start: usize) -> Node {
        let quoted = !matches!(style, TScalarStyle::Plain);
        let raw_len = match style {
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
                // Measure the raw quoted text on its line so the caret covers what the author wrote.
                let rest = &self.source.text()[start.min(self.source.text().len())..];
                quoted_len(rest).unwrap_or(text.len() + 2)
            }
            TScalarStyle::Plain => text.lines().next().map_or(0, str::len),
            _ => 1,
        };
        let (value, plain) = if quoted {
            (Value::Str(text), None)
        } else {
            let value = resolve_plain(&text);
            let plain = (!matches!(value, Value::Str(_))).then_some(text);
            (value, plain)
        };
        Node {
            value,
            span: Span::at(start, raw_len.max(1)),
            plain,
        }
    }
}

fn quoted_len(rest: &str) -> Option<usize> {
    let mut chars = rest.char_indices();
    let (_, quote) = chars.next()?;
    let mut escaped = false;
    for (i, c) in chars {
        if c == '\n' {
            return Some(i);
        }
        if quote == '"' && c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        if c == quote && !escaped {
            return Some(i + 1);
        }
        escaped = false;
    }
    None
}

fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Int(i);
    }
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric {
        if let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::Str(text.to_string())
}

impl MarkedEventReceiver for Loader<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.stopped {
            return;
        }
        let start = offset_of(self.source, &mark);
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::YamlSyntax,
                            Span::at(start, 3),
                            "a runbook file holds one YAML document",
                        )
                        .with_label("a second document starts here")
                        .with_help("put each runbook in its own file"),
                    );
                }
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let node = self.scalar(text, style, start);
                self.push_node(node, anchor);
            }
            Event::Alias(id) => {
                self.expanded += self.anchors.get(&id).map_or(1, |(_, size)| *size);
                if self.expanded > MAX_ALIAS_NODES {
                    self.stopped = true;
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::YamlSyntax,
                            Span::at(start, 1),
                            format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                        )
                        .with_label("this alias passes the limit")
                        .with_help(
                            "nested aliases can make a small file enormous; write the values out",
                        ),
                    );
                    return;
                }
                let node = match self.anchors.get(&id).map(|(n, _)| n) {
                    Some(n) => Node {
                        value: n.value.clone(),
                        span: Span::at(start, 1),
                        plain: n.plain.clone(),
                    },
                    None => Node {
                        value: Value::Null,
                        span: Span::at(start, 1),
                        plain: None,
                    },
                };
                self.push_node(node, 0);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => {
                self.stopped = true;
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::YamlSyntax,
                        Span::at(start, 1),
                        format!("lists and mappings nest deeper than {MAX_DEPTH} levels"),
                    )
                    .with_label("this one passes the limit"),
                );
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                start,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                start,
                anchor,
                entries: Vec::new(),
                key: None,
                seen: HashMap::new(),
                skip_value: false,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq {
                        start: s,
                        anchor,
                        items,
                    }) => (
                        Node {
                            value: Value::Seq(items),
                            span: Span::new(s, start.max(s + 1)),
                            plain: None,
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        start: s,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            value: Value::Map(entries),
                            span: Span::new(s, start.max(s + 1)),
                            plain: None,
                        },
                        anchor,
                    ),
                    None => return,
                };
                self.push_node(node, anchor);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (Option<Node>, Vec<Diagnostic>) {
        parse(&SourceFile::new("t.yaml", text))
    }

    #[test]
    fn keeps_spans_and_types() {
        let src = SourceFile::new("t.yaml", "a: 1\nb:\n  - 'x'\n  - yes\nc: {d: true}\n");
        let (root, diags) = parse(&src);
        assert!(diags.is_empty());
        let root = root.unwrap();
        assert_eq!(root.get("a").unwrap().value, Value::Int(1));
        let b = root.get("b").unwrap().as_seq().unwrap();
        assert_eq!(src.slice(b[0].span), "'x'");
        assert_eq!(b[1].value, Value::Str("yes".into()));
        assert_eq!(
            root.get("c").unwrap().get("d").unwrap().value,
            Value::Bool(true)
        );
        let key_span = root.as_map().unwrap()[2].0.span;
        assert_eq!(src.location(key_span.start).line, 5);
    }

    #[test]
    fn reports_every_duplicate_key_and_keeps_the_first() {
        let (root, diags) = load("a: 1\nb: 2\na: 3\nb: 4\n");
        assert_eq!(diags.len(), 2);
        assert!(diags.iter().all(|d| d.code == Code::DuplicateKey));
        assert_eq!(root.unwrap().get("a").unwrap().value, Value::Int(1));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let src = SourceFile::new("t.yaml", "a: [1, 2\nb: 3\n");
        let (_, diags) = parse(&src);
        assert_eq!(diags[0].code, Code::YamlSyntax);
    }

    #[test]
    fn nested_aliases_are_bounded() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for (i, c) in ('b'..='i').enumerate() {
            let p = char::from(b'a' + i as u8);
            text.push_str(&format!(
                "{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            ));
        }
        assert!(text.len() < 500);
        let started = std::time::Instant::now();
        let (node, diags) = parse(&SourceFile::new("lol.yaml", text));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert!(node.is_none());
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].message, "aliases expand to more than 10000 nodes");
        let (node, diags) = parse(&SourceFile::new(
            "big.yaml",
            "x".repeat(MAX_DOCUMENT_BYTES + 1),
        ));
        assert!(node.is_none());
        assert_eq!(
            diags[0].message,
            "the document is 4194305 bytes, more than the 4194304 a runbook may have"
        );
    }

    #[test]
    fn a_top_level_scalar_is_read_without_the_rest() {
        let id = |t: &str| top_level_scalar(t, "runbook");
        assert_eq!(
            id("runbook: onboard\nversion: 1\n").as_deref(),
            Some("onboard")
        );
        assert_eq!(
            id("version: 1\nsteps: {a: {runbook: no}}\nx: [runbook]\nrunbook: 'q'\n").as_deref(),
            Some("q")
        );
        assert_eq!(id("{version: 1, runbook: \"j\"}").as_deref(), Some("j"));
        assert_eq!(id("steps:\n  runbook: nested\n"), None);
        assert_eq!(id("runbook: [a]\n"), None);
        assert_eq!(id("- runbook\n"), None);
        assert_eq!(id("runbook\n"), None);
        assert_eq!(id("a: [1, 2\nrunbook: x\n"), None);
        assert_eq!(id(&"\0".repeat(64)), None);
        let (node, diags) = load("a: 1\n\0\0");
        assert!(node.is_none());
        assert_eq!(
            diags[0].message,
            "the file holds a NUL byte: it is binary data, not YAML text"
        );
        assert_eq!(diags[0].span.start, 5);
        // Stops at the value: what follows (a syntax error here) is never read.
        assert_eq!(id("runbook: r\nbad: [\n").as_deref(), Some("r"));
        // An alias bomb before the key costs nothing: aliases are not expanded.
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for (i, c) in ('b'..='i').enumerate() {
            let p = char::from(b'a' + i as u8);
            bomb.push_str(&format!(
                "{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            ));
        }
        bomb.push_str("runbook: lol\n");
        assert_eq!(id(&bomb).as_deref(), Some("lol"));
        assert_eq!(id(&"x".repeat(MAX_DOCUMENT_BYTES + 1)), None);
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let started = std::time::Instant::now();
        let (node, diags) = load(&format!("{}x\n", "- ".repeat(1_000_000)));
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        assert!(node.is_none());
        assert_eq!(diags.len(), 1);
        assert_eq!(
            diags[0].message,
            "lists and mappings nest deeper than 128 levels"
        );
        assert_eq!(diags[0].span.start, 256);
        let (node, diags) = load(&format!("{}x\n", "- ".repeat(MAX_DEPTH)));
        assert!(diags.is_empty() && node.is_some());
    }

    #[test]
    fn quoted_numbers_stay_strings() {
        let (root, _) = load("v: \"3\"\nw: 3.5\n");
        let root = root.unwrap();
        assert_eq!(root.get("v").unwrap().value, Value::Str("3".into()));
        assert_eq!(root.get("w").unwrap().value, Value::Float(3.5));
    }
}
