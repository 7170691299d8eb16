//! Compiling `inputs:` declarations: types, required, default, enum, pattern, description.

use indexmap::IndexMap;

use super::Cx;
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::inputs::{InputSpec, InputType};
use crate::yaml::{Node, Value};

const INPUT_KEYS: &[&str] = &[
    "type",
    "items",
    "required",
    "default",
    "enum",
    "pattern",
    "description",
];

impl Cx<'_> {
    pub(super) fn inputs(&mut self, node: &Node) -> IndexMap<String, InputSpec> {
        let mut out = IndexMap::new();
        let Some(map) = self.map(node, "`inputs`") else {
            return out;
        };
        for (key, decl) in map {
            if !is_identifier(&key.name) {
                self.push(
                    Diagnostic::error(
                        Code::InvalidId,
                        key.span,
                        format!("invalid input name `{}`", key.name),
                    )
                    .with_label("letters, digits and `_`, starting with a letter"),
                );
                continue;
            }
            if let Some(spec) = self.input(&key.name, decl) {
                out.insert(key.name.clone(), spec);
            }
        }
        out
    }

    fn input(&mut self, name: &str, decl: &Node) -> Option<InputSpec> {
        let what = format!("input `{name}`");
        // `name: string` is shorthand for `name: { type: string }`.
        if let Value::Str(ty) = &decl.value {
            let ty = self.input_type(decl, ty, None)?;
            return Some(InputSpec {
                ty,
                required: false,
                default: None,
                allowed: None,
                pattern: None,
                description: None,
            });
        }
        let map = self.map(decl, &what)?;
        self.unknown_keys(map, INPUT_KEYS, "an input");
        let items = match decl.get("items") {
            Some(n) => {
                let t = self.string(n, "`items`")?;
                Some(self.input_type(n, &t, None)?)
            }
            None => None,
        };
        let ty = match decl.get("type") {
            Some(n) => {
                let t = self.string(n, "`type`")?;
                if items.is_some() && t != "list" {
                    self.push(
                        Diagnostic::error(
                            Code::WrongType,
                            decl.get("items").map_or(n.span, |i| i.span),
                            format!("`items` only applies to lists, but `{name}` is a {t}"),
                        )
                        .with_label("remove this or make the type `list`"),
                    );
                }
                self.input_type(n, &t, items)?
            }
            None => {
                self.push(
                    Diagnostic::error(Code::MissingKey, decl.span, format!("{what} has no `type`"))
                        .with_help(format!(
                            "types are {}",
                            crate::catalogue::quoted_list(InputType::NAMES)
                        )),
                );
                return None;
            }
        };
        let required = match decl.get("required") {
            Some(n) => self.boolean(n, "`required`")?,
            None => false,
        };
        let description = decl
            .get("description")
            .and_then(|n| self.string(n, "`description`"));
        let pattern = match decl.get("pattern") {
            Some(n) => {
                let p = self.string(n, "`pattern`")?;
                if let Err(e) = regex::Regex::new(&p) {
                    let msg = e.to_string();
                    let last = msg.lines().last().unwrap_or("invalid").trim();
                    let last = last.strip_prefix("error: ").unwrap_or(last).to_string();
                    self.push(
                        Diagnostic::error(
                            Code::InvalidPattern,
                            n.span,
                            format!(
                                "invalid `pattern` for input `{name}`: {}",
                                last.to_lowercase()
                            ),
                        )
                        .with_label("not a valid regular expression"),
                    );
                    return None;
                }
                Some(p)
            }
            None => None,
        };
        if pattern.is_some()
            && !matches!(
                ty,
                InputType::String | InputType::Email | InputType::Secret | InputType::List(_)
            )
        {
            self.push(Diagnostic::error(
                Code::InvalidPattern,
                decl.get("pattern").map_or(decl.span, |n| n.span),
                format!("`pattern` applies to text, but `{name}` is {}", ty.name()),
            ));
        }
        let mut spec = InputSpec {
            ty,
            required,
            default: None,
            allowed: None,
            pattern,
            description,
        };
        if let Some(n) = decl.get("enum") {
            let Some(items) = n.as_seq() else {
                self.wrong_type(n, "`enum`", "a list");
                return None;
            };
            let item_type = match &spec.ty {
                InputType::List(inner) => (**inner).clone(),
                other => other.clone(),
            };
            let mut allowed = Vec::new();
            for item in items {
                match item_type.coerce(&crate::inputs::from_yaml(&item_type, item)) {
                    Ok(v) => allowed.push(v),
                    Err(e) => self.push(
                        Diagnostic::error(
                            Code::InvalidDefault,
                            item.span,
                            format!("`enum` value of input `{name}` does not fit its type: {e}"),
                        )
                        .with_label(format!("not {}", item_type.name())),
                    ),
                }
            }
            spec.allowed = Some(allowed);
        }
        if let Some(n) = decl.get("default") {
            if !matches!(n.value, Value::Null) {
                match spec.check(&crate::inputs::from_yaml(&spec.ty, n)) {
                    Ok(v) => spec.default = Some(v),
                    Err(e) => {
                        self.push(
                            Diagnostic::error(
                                Code::InvalidDefault,
                                n.span,
                                format!("default of input `{name}` is invalid: {e}"),
                            )
                            .with_label(format!("expected {}", spec.ty.name())),
                        );
                        return None;
                    }
                }
                if spec.required {
                    self.push(
                        Diagnostic::warning(
                            Code::InvalidDefault,
                            decl.get("required").map_or(n.span, |r| r.span),
                            format!("input `{name}` is required but has a default"),
                        )
                        .with_help(
                            "a default means the input never has to be given: drop `required`",
                        ),
                    );
                }
            }
        }
        Some(spec)
    }

    fn input_type(
        &mut self,
        node: &Node,
        name: &str,
        items: Option<InputType>,
    ) -> Option<InputType> {
        match InputType::from_name(name, items) {
            Some(InputType::List(inner)) if matches!(*inner, InputType::List(_)) => {
                self.push(Diagnostic::error(
                    Code::UnknownInputType,
                    node.span,
                    "lists of lists are not supported; use `object` items",
                ));
                None
            }
            Some(t) => Some(t),
            None => {
                self.push(
                    Diagnostic::error(
                        Code::UnknownInputType,
                        node.span,
                        format!("unknown input type `{name}`"),
                    )
                    .with_label("not a type")
                    .with_help(
                        did_you_mean(name, InputType::NAMES.iter().copied()).unwrap_or_else(|| {
                            format!(
                                "types are {}",
                                crate::catalogue::quoted_list(InputType::NAMES)
                            )
                        }),
                    ),
                );
                None
            }
        }
    }
}

/// Whether `s` is a valid input, var or output name.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
