//! Handlebars templates inside runbook values: parsing, the static analysis the compiler uses
//! (which variables and helpers a template names), and rendering in strict mode.

mod analyze;
mod fast;
mod helpers;
mod render;

pub use analyze::{analyze, Analysis, HelperUse, PathRef};
pub use helpers::{field_value, fold_ascii, slugify, text as helpers_text, truthy, HELPERS};
pub use render::{RenderError, Renderer};

use serde::{Deserialize, Serialize};

/// A string that may contain `{{...}}` expressions. Serialized as its source text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Template(String);

impl Template {
    /// Wraps source text (not checked: the compiler checks before building a `Plan`).
    pub fn new(source: impl Into<String>) -> Self {
        Template(source.into())
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.0
    }

    /// Whether the text holds any expression; plain text renders as itself.
    pub fn is_dynamic(&self) -> bool {
        contains_expression(&self.0)
    }
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `text` holds a `{{` expression opener.
pub fn contains_expression(text: &str) -> bool {
    text.contains("{{")
}
