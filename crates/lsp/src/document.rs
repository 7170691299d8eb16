//! One open runbook: its text, and what the compiler says about it (diagnostics, and the
//! names it declares with where they are declared, kept from the last text that parsed).

use lsp_types::{
    Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, Uri,
};
use tenure_runbook::yaml::{self, Node};
use tenure_runbook::{compile, compile_with, Catalogue, Severity, SourceFile, Span};

use crate::text::LineIndex;

/// A declared name and the span of its key.
#[derive(Clone, Debug, Default)]
pub struct Names {
    /// Steps and `on_failure` steps: (id, key span, kind).
    pub steps: Vec<(String, Span, Option<String>)>,
    /// Inputs: (name, key span, declaration text).
    pub inputs: Vec<(String, Span, String)>,
    /// Vars: (name, key span).
    pub vars: Vec<(String, Span)>,
}

/// An open document.
pub struct Document {
    /// The text as the editor has it.
    pub text: String,
    /// What it declares, read when first asked for (not on every keystroke).
    names: std::cell::OnceCell<Names>,
    /// What the previous text declared, for when this one does not parse.
    previous: Option<Names>,
}

impl Document {
    /// A document holding `text`; `previous` is what the text before it declared.
    pub fn new(text: String, previous: Option<Names>) -> Self {
        Document {
            text,
            names: std::cell::OnceCell::new(),
            previous,
        }
    }

    /// What the text declares (kept from the previous text while this one does not parse).
    pub fn names(&self) -> &Names {
        self.names.get_or_init(|| {
            let source = SourceFile::new("", self.text.as_str());
            match yaml::parse(&source).0 {
                Some(root) => names(&source, &root),
                None => self.previous.clone().unwrap_or_default(),
            }
        })
    }

    /// What to keep for the next version of the text.
    pub fn into_names(self) -> Option<Names> {
        match self.names.into_inner() {
            Some(n) => Some(n),
            None => self.previous,
        }
    }

    /// The compiler's diagnostics (errors, warnings and lints) as LSP diagnostics.
    /// `runbook.call` steps are linked against the runbooks under the document's directory.
    pub fn diagnostics(&self, uri: &Uri, name: &str, catalogue: &dyn Catalogue) -> Vec<Diagnostic> {
        let source = SourceFile::new(name, self.text.as_str());
        let out = match crate::calls::dir_of(uri.as_str()) {
            Some(dir) => compile_with(&source, catalogue, &crate::calls::Dir::new(&dir, catalogue)),
            None => compile(&source, catalogue),
        };
        let index = LineIndex::new(&self.text);
        out.diagnostics
            .iter()
            .map(|d| {
                let mut message = d.message.clone();
                if let Some(label) = &d.label {
                    message.push_str(&format!(" ({label})"));
                }
                if let Some(help) = &d.help {
                    message.push_str(&format!("\nhelp: {help}"));
                }
                let related: Vec<DiagnosticRelatedInformation> = d
                    .notes
                    .iter()
                    .map(|n| DiagnosticRelatedInformation {
                        location: Location {
                            uri: uri.clone(),
                            range: index.range(n.span),
                        },
                        message: n.message.clone(),
                    })
                    .collect();
                Diagnostic {
                    range: index.range(d.span),
                    severity: Some(match d.severity {
                        Severity::Error => DiagnosticSeverity::ERROR,
                        Severity::Warning => DiagnosticSeverity::WARNING,
                    }),
                    code: Some(NumberOrString::String(d.code.as_str().to_string())),
                    source: Some("tenure".into()),
                    message,
                    related_information: (!related.is_empty()).then_some(related),
                    ..Diagnostic::default()
                }
            })
            .collect()
    }
}

fn names(source: &SourceFile, root: &Node) -> Names {
    let mut out = Names::default();
    for set in ["steps", "on_failure"] {
        for (key, node) in root.get(set).and_then(Node::as_map).unwrap_or(&[]) {
            let kind = node.get("uses").and_then(Node::as_str).map(str::to_string);
            out.steps.push((key.name.clone(), key.span, kind));
        }
    }
    for (key, node) in root.get("inputs").and_then(Node::as_map).unwrap_or(&[]) {
        out.inputs.push((
            key.name.clone(),
            key.span,
            source.slice(node.span).to_string(),
        ));
    }
    for (key, _) in root.get("vars").and_then(Node::as_map).unwrap_or(&[]) {
        out.vars.push((key.name.clone(), key.span));
    }
    out
}
