//! A fast path for analysing the templates runbooks are mostly made of: `{{path}}` and
//! `{{helper arg (helper arg) 'text' 3}}`. Anything else (blocks, hash arguments, `this`,
//! `../`, escapes, whitespace control) returns `None` and goes to the full Handlebars parser.
//! Both paths give the same [`Analysis`]; a test holds them to it.

use super::analyze::{Analysis, HelperUse, PathRef};
use super::helpers::HELPERS;

/// Analyses `text` if it stays inside the simple subset.
pub(super) fn analyze(text: &str) -> Option<Analysis> {
    if text.contains("\\{{") || text.contains("{{{") || text.contains("{{~") || text.contains("~}}")
    {
        return None;
    }
    let mut out = Analysis::default();
    let mut rest = 0;
    let mut expressions = 0;
    while let Some(i) = text[rest..].find("{{") {
        let open = rest + i;
        let close = open + 2 + text[open + 2..].find("}}")?;
        let inner_start = open + 2;
        Expr {
            text,
            pos: inner_start,
            end: close,
            out: &mut out,
        }
        .expression()?;
        expressions += 1;
        rest = close + 2;
    }
    if text[rest..].contains("}}") {
        return None;
    }
    out.single_expression =
        expressions == 1 && text.starts_with("{{") && text.ends_with("}}") && rest == text.len();
    Some(out)
}

struct Expr<'a, 'o> {
    text: &'a str,
    pos: usize,
    end: usize,
    out: &'o mut Analysis,
}

enum Token {
    Word(usize, usize),
    Literal,
    Open,
    Close,
}

impl Expr<'_, '_> {
    fn skip_ws(&mut self) {
        while self.pos < self.end && self.text.as_bytes()[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Option<Option<Token>> {
        self.skip_ws();
        if self.pos >= self.end {
            return Some(None);
        }
        let bytes = self.text.as_bytes();
        let c = bytes[self.pos];
        match c {
            b'(' => {
                self.pos += 1;
                Some(Some(Token::Open))
            }
            b')' => {
                self.pos += 1;
                Some(Some(Token::Close))
            }
            b'\'' | b'"' => {
                let close = self.text[self.pos + 1..self.end].find(c as char)? + self.pos + 1;
                if self.text[self.pos + 1..close].contains('\\') {
                    return None;
                }
                self.pos = close + 1;
                Some(Some(Token::Literal))
            }
            b'0'..=b'9' | b'-' => {
                let start = self.pos;
                self.pos += 1;
                while self.pos < self.end
                    && (bytes[self.pos].is_ascii_digit() || bytes[self.pos] == b'.')
                {
                    self.pos += 1;
                }
                let t = &self.text[start..self.pos];
                t.parse::<f64>().ok()?;
                Some(Some(Token::Literal))
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.pos;
                while self.pos < self.end
                    && (bytes[self.pos].is_ascii_alphanumeric()
                        || matches!(bytes[self.pos], b'_' | b'-' | b'.'))
                {
                    self.pos += 1;
                }
                let word = &self.text[start..self.pos];
                if word.ends_with('.')
                    || word.contains("..")
                    || word.split('.').any(|s| {
                        s.is_empty()
                            || s.starts_with('-')
                            || s.starts_with(|c: char| c.is_ascii_digit())
                    })
                {
                    return None;
                }
                if matches!(word, "true" | "false" | "null" | "undefined") {
                    return Some(Some(Token::Literal));
                }
                if word == "this" || word.starts_with("this.") || word == "else" {
                    return None;
                }
                Some(Some(Token::Word(start, self.pos)))
            }
            _ => None,
        }
    }

    fn path(&mut self, start: usize, end: usize) {
        let raw = &self.text[start..end];
        self.out.paths.push(PathRef {
            segments: raw.split('.').map(str::to_string).collect(),
            raw: raw.to_string(),
            offset: start,
            scoped: false,
        });
    }

    /// A top-level expression: a path alone, or a helper call.
    fn expression(mut self) -> Option<()> {
        let Some(Token::Word(s, e)) = self.token()? else {
            return None;
        };
        let name = &self.text[s..e];
        let checkpoint = self.pos;
        let next = self.token()?;
        self.pos = checkpoint;
        if next.is_none() {
            // Handlebars reads a lone word as a path (a helper of that name is still called).
            if HELPERS.contains(&name) {
                return None;
            }
            self.path(s, e);
            return Some(());
        }
        if name.contains('.') {
            return None;
        }
        self.out.helpers.push(HelperUse {
            name: name.to_string(),
            offset: s,
        });
        self.arguments(false)
    }

    /// Arguments until `)` (inside a subexpression) or the end.
    fn arguments(&mut self, in_sub: bool) -> Option<()> {
        loop {
            match self.token()? {
                None => return (!in_sub).then_some(()),
                Some(Token::Close) => return in_sub.then_some(()),
                Some(Token::Literal) => {}
                Some(Token::Word(s, e)) => self.path(s, e),
                Some(Token::Open) => {
                    let Some(Token::Word(s, e)) = self.token()? else {
                        return None;
                    };
                    let name = &self.text[s..e];
                    if name.contains('.') {
                        return None;
                    }
                    self.out.helpers.push(HelperUse {
                        name: name.to_string(),
                        offset: s,
                    });
                    self.arguments(true)?;
                }
            }
        }
    }
}
