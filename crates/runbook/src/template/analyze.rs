//! Static analysis of a template: every variable path and helper it names, with the byte
//! offset of each inside the template text, so the compiler can check them and point at them.

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{Path, PathSeg, Template as Hbs};

use super::helpers::HELPERS;

/// A variable path named in a template, such as `steps.create_user.outputs.id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRef {
    /// The path split at dots (`this`, `../` and `@root` removed).
    pub segments: Vec<String>,
    /// The path as written.
    pub raw: String,
    /// Byte offset of the path inside the template text.
    pub offset: usize,
    /// Inside an `each`/`with` block, where relative paths cannot be checked.
    pub scoped: bool,
}

/// A helper called in a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelperUse {
    /// The helper's name.
    pub name: String,
    /// Byte offset of the name inside the template text.
    pub offset: usize,
}

/// What a template names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Variable paths.
    pub paths: Vec<PathRef>,
    /// Helpers called.
    pub helpers: Vec<HelperUse>,
    /// Whether the whole template is one expression (so it renders to a typed value).
    pub single_expression: bool,
}

/// Why a template did not parse: the message and the byte offset inside the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// What is wrong, in Handlebars' words.
    pub message: String,
    /// Byte offset inside the template text.
    pub offset: usize,
}

/// Parses `text` and lists what it names.
pub fn analyze(text: &str) -> Result<Analysis, SyntaxError> {
    if let Some(a) = super::fast::analyze(text) {
        return Ok(a);
    }
    full(text)
}

/// The full Handlebars parse (the fast path's reference).
pub(super) fn full(text: &str) -> Result<Analysis, SyntaxError> {
    check_delimiters(text)?;
    let parsed = Hbs::compile(text).map_err(|e| {
        let offset = e
            .pos()
            .map(|(line, col)| offset_of_line_col(text, line, col))
            .unwrap_or(0);
        let reason = e.reason().to_string();
        // The parser's own words list grammar rules; keep them out of an author's way.
        let message = if reason.contains("expected") && reason.contains(',') {
            "this is not a valid Handlebars expression".to_string()
        } else {
            reason.replace("invalid handlebars syntax: ", "")
        };
        SyntaxError { message, offset }
    })?;
    let mut walker = Walker {
        text,
        cursor: 0,
        out: Analysis::default(),
        unsupported: None,
    };
    walker.template(&parsed, 0);
    if let Some(err) = walker.unsupported {
        return Err(err);
    }
    walker.out.single_expression = parsed.elements.len() == 1
        && matches!(
            parsed.elements[0],
            TemplateElement::Expression(_) | TemplateElement::HtmlExpression(_)
        );
    Ok(walker.out)
}

/// Finds the mistakes authors make most, with a message in their terms: a `{{` never closed,
/// a block helper never closed, or closed with the wrong name.
fn check_delimiters(text: &str) -> Result<(), SyntaxError> {
    let mut blocks: Vec<(String, usize)> = Vec::new();
    let mut rest = 0;
    while let Some(i) = text[rest..].find("{{") {
        let open = rest + i;
        let Some(j) = text[open + 2..].find("}}") else {
            return Err(SyntaxError {
                message: "`{{` is never closed with `}}`".into(),
                offset: open,
            });
        };
        let inner = text[open + 2..open + 2 + j]
            .trim_start_matches(['{', '~'])
            .trim();
        let name = |s: &str| s.split_whitespace().next().unwrap_or("").to_string();
        if let Some(block) = inner.strip_prefix('#') {
            blocks.push((name(block.trim_start_matches('>')), open));
        } else if let Some(end) = inner.strip_prefix('/') {
            let end = name(end);
            match blocks.pop() {
                Some((start, _)) if start == end => {}
                Some((start, _)) => {
                    return Err(SyntaxError {
                        message: format!("`{{{{/{end}}}}}` closes `{{{{#{start}}}}}`; close it with `{{{{/{start}}}}}`"),
                        offset: open,
                    })
                }
                None => {
                    return Err(SyntaxError {
                        message: format!("`{{{{/{end}}}}}` closes a block that was never opened"),
                        offset: open,
                    })
                }
            }
        }
        rest = open + 2 + j + 2;
    }
    match blocks.pop() {
        Some((name, offset)) => Err(SyntaxError {
            message: format!("`{{{{#{name}}}}}` is never closed; add `{{{{/{name}}}}}`"),
            offset,
        }),
        None => Ok(()),
    }
}

fn offset_of_line_col(text: &str, line: usize, col: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let within = l
                .char_indices()
                .nth(col.saturating_sub(1))
                .map_or(l.len(), |(o, _)| o);
            return offset + within;
        }
        offset += l.len();
    }
    text.len()
}

struct Walker<'a> {
    text: &'a str,
    cursor: usize,
    out: Analysis,
    unsupported: Option<SyntaxError>,
}

impl Walker<'_> {
    fn find(&mut self, needle: &str) -> usize {
        match self.text[self.cursor..].find(needle) {
            Some(i) => {
                self.cursor += i;
                self.cursor
            }
            None => self.text.find(needle).unwrap_or(self.cursor),
        }
    }

    fn template(&mut self, t: &Hbs, depth: usize) {
        for element in &t.elements {
            self.element(element, depth);
        }
    }

    fn element(&mut self, element: &TemplateElement, depth: usize) {
        match element {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                self.helper(h, depth)
            }
            TemplateElement::HelperBlock(h) => {
                self.helper(h, depth);
                let inner = if matches!(h.name.as_name(), Some("each" | "with")) {
                    depth + 1
                } else {
                    depth
                };
                if let Some(t) = &h.template {
                    self.template(t, inner);
                }
                if let Some(t) = &h.inverse {
                    self.template(t, depth);
                }
            }
            _ => {
                if self.unsupported.is_none() {
                    let offset = self.text.find("{{>").or(self.text.find("{{*")).unwrap_or(0);
                    self.unsupported = Some(SyntaxError {
                        message: "partials and decorators are not supported in runbooks".into(),
                        offset,
                    });
                }
            }
        }
    }

    fn helper(&mut self, h: &HelperTemplate, depth: usize) {
        let is_call = !h.params.is_empty() || !h.hash.is_empty() || h.block;
        match &h.name {
            Parameter::Name(name) if is_call || HELPERS.contains(&name.as_str()) => {
                let offset = self.find(name);
                self.out.helpers.push(HelperUse {
                    name: name.clone(),
                    offset,
                });
            }
            Parameter::Name(name) => self.path_from_raw(name, depth),
            Parameter::Path(path) => self.path(path, depth),
            Parameter::Subexpression(sub) => self.element(&sub.element, depth),
            _ => {}
        }
        for p in &h.params {
            self.param(p, depth);
        }
        let mut hash: Vec<_> = h.hash.iter().collect();
        hash.sort_by_key(|(k, _)| k.as_str());
        for (_, p) in hash {
            self.param(p, depth);
        }
    }

    fn param(&mut self, p: &Parameter, depth: usize) {
        match p {
            Parameter::Path(path) => self.path(path, depth),
            Parameter::Name(name) => self.path_from_raw(name, depth),
            Parameter::Subexpression(sub) => self.element(&sub.element, depth),
            _ => {}
        }
    }

    fn path(&mut self, path: &Path, depth: usize) {
        match path {
            Path::Relative((segs, raw)) => {
                let mut relative = depth > 0;
                let mut segments = Vec::new();
                for seg in segs {
                    match seg {
                        PathSeg::Named(s) => segments.push(s.clone()),
                        _ => {
                            // `@root` makes a path absolute again; `../` keeps it relative.
                            relative = raw.starts_with("../");
                        }
                    }
                }
                if raw.starts_with("@root") {
                    relative = false;
                }
                if segments.first().is_some_and(|s| s == "this") {
                    segments.remove(0);
                    relative = depth > 0;
                }
                if segments.is_empty() {
                    return;
                }
                let offset = self.find(raw);
                self.out.paths.push(PathRef {
                    segments,
                    raw: raw.clone(),
                    offset,
                    scoped: relative,
                });
            }
            // `@index`, `@first`, ...: block-local data, always fine.
            Path::Local(_) => {}
        }
    }

    fn path_from_raw(&mut self, raw: &str, depth: usize) {
        if raw.starts_with('@') {
            return;
        }
        let segments: Vec<String> = raw.split('.').map(str::to_string).collect();
        let offset = self.find(raw);
        self.out.paths.push(PathRef {
            segments,
            raw: raw.to_string(),
            offset,
            scoped: depth > 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(text: &str) -> Vec<String> {
        analyze(text)
            .unwrap()
            .paths
            .into_iter()
            .map(|p| p.segments.join("."))
            .collect()
    }

    #[test]
    fn finds_paths_in_helpers_and_subexpressions() {
        let a =
            analyze("{{lower (ascii inputs.first_name)}}.{{inputs.last_name}}@{{tenant.domain}}")
                .unwrap();
        let names: Vec<_> = a.paths.iter().map(|p| p.raw.as_str()).collect();
        assert_eq!(
            names,
            ["inputs.first_name", "inputs.last_name", "tenant.domain"]
        );
        let helpers: Vec<_> = a.helpers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(helpers, ["lower", "ascii"]);
        assert!(!a.single_expression);
    }

    #[test]
    fn offsets_point_at_the_text() {
        let text = "x {{steps.create_user.outputs.id}}";
        let a = analyze(text).unwrap();
        assert_eq!(&text[a.paths[0].offset..][..5], "steps");
        assert!(!a.single_expression);
        assert!(analyze("{{inputs.licences}}").unwrap().single_expression);
    }

    #[test]
    fn paths_inside_each_are_scoped() {
        let a = analyze("{{#each inputs.groups}}{{this}} {{name}} {{@root.inputs.x}}{{/each}}")
            .unwrap();
        let scoped: Vec<_> = a
            .paths
            .iter()
            .map(|p| (p.segments.join("."), p.scoped))
            .collect();
        assert_eq!(
            scoped,
            [
                ("inputs.groups".to_string(), false),
                ("name".to_string(), true),
                ("inputs.x".to_string(), false)
            ]
        );
        assert_eq!(paths("{{eq payload.event 'x'}}"), ["payload.event"]);
    }

    #[test]
    fn fast_path_agrees_with_the_full_parser() {
        let cases = [
            "{{lower (ascii inputs.first_name)}}.{{lower (ascii inputs.last_name)}}@{{tenant.domain}}",
            "{{inputs.licences}}",
            " {{inputs.licences}}",
            "{{ eq payload.event 'new_starter' }}",
            "Create **{{vars.upn}}** with {{join inputs.licences ', '}}?",
            "{{default inputs.department \"\"}}",
            "{{steps.create_user.outputs.id}}",
            "{{item}}",
            "{{and (eq inputs.a 1) (not inputs.b) true}}",
            "plain text",
            "{{date run.started_at '%Y-%m-%d'}}",
            "{{or inputs.x -1.5}}",
        ];
        for text in cases {
            let fast = crate::template::fast::analyze(text);
            let full = full(text).unwrap();
            assert_eq!(fast.as_ref(), Some(&full), "{text}");
        }
        for text in [
            "{{#if x}}y{{/if}}",
            "{{this}}",
            "{{x a=1}}",
            "{{~x}}",
            "{{a.[0]}}",
            "{{../x}}",
        ] {
            assert!(crate::template::fast::analyze(text).is_none(), "{text}");
        }
    }

    #[test]
    fn common_mistakes_get_plain_messages() {
        let e = analyze("a {{inputs.x").unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.offset),
            ("`{{` is never closed with `}}`", 2)
        );
        let e = analyze("{{#if x}}y").unwrap_err();
        assert_eq!(e.message, "`{{#if}}` is never closed; add `{{/if}}`");
        let e = analyze("{{#if x}}y{{/each}}").unwrap_err();
        assert_eq!(
            e.message,
            "`{{/each}}` closes `{{#if}}`; close it with `{{/if}}`"
        );
        assert!(analyze("{{#each xs}}{{#if this}}a{{else}}b{{/if}}{{/each}}").is_ok());
    }

    #[test]
    fn syntax_errors_carry_an_offset() {
        let err = analyze("ok {{lower inputs.x").unwrap_err();
        assert!(err.offset <= "ok {{lower inputs.x".len());
        assert!(analyze("{{> partial}}").is_err());
    }
}
