//! Hover, completion and go-to-definition: the catalogue's words for kinds, parameters and
//! outputs, and the document's own steps, inputs and vars.

use lsp_types::{
    CompletionItem, CompletionItemKind, Hover, HoverContents, MarkupContent, MarkupKind, Position,
    Range,
};
use tenure_runbook::{Catalogue, Field, KindSchema};

use crate::context;
use crate::document::Document;
use crate::text::LineIndex;

/// Markdown for one kind: what it does, its parameters and outputs.
pub fn kind_doc(kind: &KindSchema) -> String {
    let mut s = format!("**{}**: {}\n", kind.kind, kind.description);
    if let Some(why) = &kind.unavailable {
        s.push_str(&format!("\n*Not available:* {why}\n"));
    }
    if !kind.effects.is_empty() {
        let effects: Vec<String> = kind
            .effects
            .iter()
            .map(|e| format!("{e:?}").to_lowercase())
            .collect();
        s.push_str(&format!("\nEffects: {}\n", effects.join(", ")));
    }
    if !kind.params.is_empty() {
        s.push_str("\n`with`:\n");
        for p in &kind.params {
            s.push_str(&format!("- {}\n", field_line(p)));
        }
    }
    if !kind.outputs.is_empty() {
        s.push_str("\nOutputs:\n");
        for o in &kind.outputs {
            s.push_str(&format!(
                "- `{}` ({}): {}\n",
                o.name,
                o.ty.describe(),
                o.description
            ));
        }
    }
    s
}

fn field_line(p: &Field) -> String {
    let mut s = format!("`{}` ({}", p.name, p.ty.describe());
    if p.required {
        s.push_str(", required");
    }
    if let Some(d) = &p.default {
        s.push_str(&format!(", default `{d}`"));
    }
    s.push_str(&format!("): {}", p.description));
    s
}

fn markdown(value: String, range: Range) -> Hover {
    Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value,
        }),
        range: Some(range),
    }
}

/// The kind of the step named `id` in the document.
fn kind_of<'c>(doc: &Document, catalogue: &'c dyn Catalogue, id: &str) -> Option<&'c KindSchema> {
    let kind = doc
        .names()
        .steps
        .iter()
        .find(|(s, _, _)| s == id)?
        .2
        .as_deref()?;
    catalogue.get(kind)
}

/// Hover at `pos`: a kind, a `with` parameter, a step output, an input or a step.
pub fn hover(doc: &Document, catalogue: &dyn Catalogue, pos: Position) -> Option<Hover> {
    let index = LineIndex::new(&doc.text);
    let offset = index.offset(pos);
    let (start, end, word) = context::word_at(&doc.text, offset)?;
    let range = index.range(tenure_runbook::Span::new(start, end));
    if let Some(kind) = catalogue.get(word) {
        return Some(markdown(kind_doc(kind), range));
    }
    let segs: Vec<&str> = word.split('.').collect();
    match segs.as_slice() {
        ["steps", id, rest @ ..] => {
            let kind = kind_of(doc, catalogue, id);
            if let (["outputs", name, ..], Some(kind)) = (rest, kind) {
                let o = kind.outputs.iter().find(|o| o.name == *name)?;
                return Some(markdown(
                    format!(
                        "**{id}.outputs.{}** ({}): {}\n\nfrom `{}`",
                        o.name,
                        o.ty.describe(),
                        o.description,
                        kind.kind
                    ),
                    range,
                ));
            }
            let kind = kind?;
            Some(markdown(
                format!("step `{id}`\n\n{}", kind_doc(kind)),
                range,
            ))
        }
        ["inputs", name, ..] => {
            let (_, _, decl) = doc.names().inputs.iter().find(|(n, _, _)| n == name)?;
            Some(markdown(format!("input **{name}**: `{decl}`"), range))
        }
        [name] => {
            // A `with` key: the parameter of the step's kind.
            let line = pos.line as usize;
            let (_, block) = context::step_block(&doc.text, line)?;
            let kind = catalogue.get(&context::uses_in(&block)?)?;
            let param = kind.find_param(name)?;
            Some(markdown(
                format!("{}\n\nof `{}`", field_line(param), kind.kind),
                range,
            ))
        }
        _ => None,
    }
}

fn item(
    label: &str,
    kind: CompletionItemKind,
    detail: String,
    doc: Option<String>,
) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: Some(detail),
        documentation: doc.map(|value| {
            lsp_types::Documentation::MarkupContent(MarkupContent {
                kind: MarkupKind::Markdown,
                value,
            })
        }),
        ..CompletionItem::default()
    }
}

/// The roots a template may name.
const ROOTS: &[&str] = &[
    "inputs", "vars", "steps", "tenant", "run", "trigger", "secrets", "item", "index",
];

/// Completion at `pos`.
pub fn complete(doc: &Document, catalogue: &dyn Catalogue, pos: Position) -> Vec<CompletionItem> {
    let index = LineIndex::new(&doc.text);
    let offset = index.offset(pos);
    let text = &doc.text;
    if let Some(path) = context::template_path(text, offset) {
        let segs: Vec<&str> = path.split('.').collect();
        return match segs.as_slice() {
            ["inputs", _] => doc
                .names()
                .inputs
                .iter()
                .map(|(n, _, d)| item(n, CompletionItemKind::VARIABLE, d.clone(), None))
                .collect(),
            ["vars", _] => doc
                .names()
                .vars
                .iter()
                .map(|(n, _)| item(n, CompletionItemKind::VARIABLE, "var".into(), None))
                .collect(),
            ["steps", _] => doc
                .names()
                .steps
                .iter()
                .map(|(n, _, k)| {
                    item(
                        n,
                        CompletionItemKind::REFERENCE,
                        k.clone().unwrap_or_default(),
                        None,
                    )
                })
                .collect(),
            ["steps", _, _] => vec![item(
                "outputs",
                CompletionItemKind::FIELD,
                "the step's outputs".into(),
                None,
            )],
            ["steps", id, "outputs", _] => kind_of(doc, catalogue, id)
                .map(|k| {
                    k.outputs
                        .iter()
                        .map(|o| {
                            item(
                                &o.name,
                                CompletionItemKind::FIELD,
                                o.ty.describe(),
                                Some(o.description.clone()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            [_] => ROOTS
                .iter()
                .map(|r| item(r, CompletionItemKind::MODULE, "template root".into(), None))
                .chain(
                    tenure_runbook::template::HELPERS
                        .iter()
                        .filter(|h| !h.starts_with("__"))
                        .map(|h| item(h, CompletionItemKind::FUNCTION, "helper".into(), None)),
                )
                .collect(),
            _ => Vec::new(),
        };
    }
    if context::in_uses(text, offset) {
        return catalogue
            .kinds()
            .into_iter()
            .filter(|k| k.unavailable.is_none())
            .map(|k| {
                item(
                    &k.kind,
                    CompletionItemKind::CLASS,
                    k.description.clone(),
                    Some(kind_doc(k)),
                )
            })
            .collect();
    }
    if context::in_needs(text, offset) {
        let here = context::step_block(text, pos.line as usize).map(|(id, _)| id);
        return doc
            .names()
            .steps
            .iter()
            .filter(|(n, _, _)| Some(n) != here.as_ref())
            .map(|(n, _, k)| {
                item(
                    n,
                    CompletionItemKind::REFERENCE,
                    k.clone().unwrap_or_default(),
                    None,
                )
            })
            .collect();
    }
    if context::in_with_keys(text, offset) {
        let Some((_, block)) = context::step_block(text, pos.line as usize) else {
            return Vec::new();
        };
        let Some(kind) = context::uses_in(&block).and_then(|k| catalogue.get(&k)) else {
            return Vec::new();
        };
        return kind
            .params
            .iter()
            .map(|p| {
                item(
                    &p.name,
                    CompletionItemKind::PROPERTY,
                    p.ty.describe(),
                    Some(field_line(p)),
                )
            })
            .collect();
    }
    Vec::new()
}

/// Go-to-definition at `pos`: a step (in `needs` or `steps.X`), an input or a var.
pub fn definition(doc: &Document, pos: Position) -> Option<Range> {
    let index = LineIndex::new(&doc.text);
    let offset = index.offset(pos);
    let (_, _, word) = context::word_at(&doc.text, offset)?;
    let segs: Vec<&str> = word.split('.').collect();
    let span = match segs.as_slice() {
        ["steps", id, ..] => doc.names().steps.iter().find(|(n, _, _)| n == id)?.1,
        ["inputs", name, ..] => doc.names().inputs.iter().find(|(n, _, _)| n == name)?.1,
        ["vars", name, ..] => doc.names().vars.iter().find(|(n, _)| n == name)?.1,
        [id] if context::in_needs(&doc.text, offset) => {
            doc.names().steps.iter().find(|(n, _, _)| n == id)?.1
        }
        _ => return None,
    };
    Some(index.range(span))
}
