//! Rendering templates against a JSON context in Handlebars strict mode. A template that is
//! one expression renders to a typed JSON value (a list stays a list); any other template
//! renders to text. Nothing is HTML-escaped: runbook values are not HTML.

use std::collections::HashSet;
use std::sync::RwLock;

use handlebars::template::{Parameter, TemplateElement};
use handlebars::Handlebars;
use serde_json::Value;

use super::helpers;
use super::Template;

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render `{template}`: {message}")]
pub struct RenderError {
    /// The template source.
    pub template: String,
    /// What went wrong (a missing variable in strict mode, a helper's complaint, ...).
    pub message: String,
}

/// Renders templates, caching each compiled template by its source. Cheap to share.
pub struct Renderer {
    registry: RwLock<Handlebars<'static>>,
    known: RwLock<HashSet<String>>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    /// A renderer with every runbook helper registered, in strict mode, without escaping.
    pub fn new() -> Self {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        helpers::register(&mut registry);
        Renderer {
            registry: RwLock::new(registry),
            known: RwLock::new(HashSet::new()),
        }
    }

    /// Renders to text.
    pub fn render_text(&self, template: &Template, ctx: &Value) -> Result<String, RenderError> {
        if !template.is_dynamic() {
            return Ok(template.source().to_string());
        }
        self.render_source(template.source(), template.source(), ctx)
    }

    /// Renders to a JSON value: a single expression keeps its type, anything else is text.
    pub fn render_value(&self, template: &Template, ctx: &Value) -> Result<Value, RenderError> {
        let src = template.source();
        if !template.is_dynamic() {
            return Ok(Value::String(src.to_string()));
        }
        match value_form(src) {
            Some(wrapped) => {
                let json = self.render_source(&wrapped, src, ctx)?;
                serde_json::from_str(&json).map_err(|e| RenderError {
                    template: src.to_string(),
                    message: e.to_string(),
                })
            }
            None => self.render_source(src, src, ctx).map(Value::String),
        }
    }

    /// Renders every string inside a JSON tree (e.g. a step's `with`), keeping the shape.
    pub fn render_tree(&self, tree: &Value, ctx: &Value) -> Result<Value, RenderError> {
        Ok(match tree {
            Value::String(s) => self.render_value(&Template::new(s.clone()), ctx)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.render_tree(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_tree(v, ctx)?)))
                    .collect::<Result<_, RenderError>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Renders a condition (`if`, `when`) and applies the language's truthiness.
    pub fn render_condition(&self, template: &Template, ctx: &Value) -> Result<bool, RenderError> {
        let v = self.render_value(template, ctx)?;
        Ok(match v {
            Value::String(s) => !matches!(s.trim(), "" | "false" | "0" | "null"),
            other => helpers::truthy(&other),
        })
    }

    fn render_source(&self, key: &str, original: &str, ctx: &Value) -> Result<String, RenderError> {
        let err = |message: String| RenderError {
            template: original.to_string(),
            message,
        };
        let registered = self.known.read().map(|k| k.contains(key)).unwrap_or(false);
        if !registered {
            let mut reg = self
                .registry
                .write()
                .map_err(|_| err("renderer lock poisoned".into()))?;
            reg.register_template_string(key, key)
                .map_err(|e| err(e.reason().to_string()))?;
            if let Ok(mut k) = self.known.write() {
                k.insert(key.to_string());
            }
        }
        let reg = self
            .registry
            .read()
            .map_err(|_| err("renderer lock poisoned".into()))?;
        reg.render(key, ctx).map_err(|e| err(render_message(&e)))
    }
}

fn render_message(e: &handlebars::RenderError) -> String {
    use handlebars::RenderErrorReason as R;
    match e.reason() {
        R::MissingVariable(Some(path)) => format!("`{path}` has no value"),
        // A name looked up in a list (`payload.user` where the payload is a list): there is
        // nothing of that name, as for any absent field.
        R::InvalidJsonIndex(name) => {
            format!("`{name}` has no value (it was looked up in a list, whose items are numbered)")
        }
        other => other.to_string(),
    }
}

/// For a single-expression template, the same expression wrapped in `__json`, which renders
/// the expression's JSON text. `None` when the template mixes text and expressions.
fn value_form(src: &str) -> Option<String> {
    let parsed = handlebars::Template::compile(src).ok()?;
    let [TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h)] =
        parsed.elements.as_slice()
    else {
        return None;
    };
    let inner = src
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim()
        .trim_start_matches('~')
        .trim_end_matches('~')
        .trim();
    let is_plain_path = h.params.is_empty()
        && h.hash.is_empty()
        && match &h.name {
            Parameter::Name(n) => !helpers::HELPERS.contains(&n.as_str()),
            Parameter::Path(_) => true,
            _ => false,
        };
    Some(if is_plain_path {
        format!("{{{{__json {inner}}}}}")
    } else {
        format!("{{{{__json ({inner})}}}}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({
            "inputs": {"first_name": "José", "last_name": "Núñez", "licences": ["SPB", "E3"], "n": 0},
            "tenant": {"domain": "contoso.example"}
        })
    }

    #[test]
    fn renders_text_with_helpers() {
        let r = Renderer::new();
        let t = Template::new(
            "{{lower (ascii inputs.first_name)}}.{{lower (ascii inputs.last_name)}}@{{tenant.domain}}",
        );
        assert_eq!(
            r.render_text(&t, &ctx()).unwrap(),
            "jose.nunez@contoso.example"
        );
    }

    #[test]
    fn single_expressions_keep_their_type() {
        let r = Renderer::new();
        assert_eq!(
            r.render_value(&Template::new("{{inputs.licences}}"), &ctx())
                .unwrap(),
            json!(["SPB", "E3"])
        );
        assert_eq!(
            r.render_value(&Template::new("{{ eq inputs.n 0 }}"), &ctx())
                .unwrap(),
            json!(true)
        );
        assert_eq!(
            r.render_value(&Template::new("n={{inputs.n}}"), &ctx())
                .unwrap(),
            json!("n=0")
        );
    }

    #[test]
    fn strict_mode_rejects_missing_variables() {
        let r = Renderer::new();
        let err = r
            .render_text(&Template::new("{{inputs.nope}}"), &ctx())
            .unwrap_err();
        assert!(err.message.contains("inputs.nope"), "{}", err.message);
    }

    #[test]
    fn a_name_looked_up_in_a_list_has_no_value() {
        let r = Renderer::new();
        let err = r
            .render_text(&Template::new("{{inputs.licences.name}}"), &ctx())
            .unwrap_err();
        assert!(
            err.message.starts_with("`name` has no value"),
            "{}",
            err.message
        );
    }

    #[test]
    fn conditions_use_language_truthiness() {
        let r = Renderer::new();
        assert!(!r
            .render_condition(&Template::new("{{inputs.n}}"), &ctx())
            .unwrap());
        assert!(r
            .render_condition(&Template::new("{{inputs.licences}}"), &ctx())
            .unwrap());
    }

    #[test]
    fn render_tree_keeps_shape() {
        let r = Renderer::new();
        let tree = json!({"user": "{{inputs.first_name}}", "skus": "{{inputs.licences}}", "n": 3});
        assert_eq!(
            r.render_tree(&tree, &ctx()).unwrap(),
            json!({"user": "José", "skus": ["SPB", "E3"], "n": 3})
        );
    }
}
