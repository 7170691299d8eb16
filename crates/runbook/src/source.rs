//! Source files and byte spans: the bridge from a parser position to the `file:line:col`
//! every diagnostic prints.

use serde::{Deserialize, Serialize};

/// A half-open byte range `[start, end)` into a [`SourceFile`]'s text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    /// First byte of the range.
    pub start: usize,
    /// One past the last byte of the range.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end` (swapped if given backwards).
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start: start.min(end),
            end: start.max(end),
        }
    }

    /// A span of `len` bytes from `start`.
    pub fn at(start: usize, len: usize) -> Self {
        Span {
            start,
            end: start + len,
        }
    }
}

/// One line and column (both 1-based, column counted in characters) in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

/// A named text with a line index, so spans can be turned into line and column.
#[derive(Clone, Debug)]
pub struct SourceFile {
    name: String,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Wraps `text`, read from `name` (a path, or a label such as `<stdin>`).
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// The name given at construction, printed in diagnostics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Number of lines (a trailing newline does not start a new line).
    pub fn line_count(&self) -> usize {
        if self.text.ends_with('\n') {
            self.line_starts.len() - 1
        } else {
            self.line_starts.len()
        }
    }

    /// The 1-based line and character column of a byte offset (clamped to the text).
    pub fn location(&self, offset: usize) -> Location {
        let offset = self.floor_char_boundary(offset.min(self.text.len()));
        let line_idx = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line_idx];
        Location {
            line: line_idx + 1,
            col: self.text[start..offset].chars().count() + 1,
        }
    }

    /// The byte offset of a 1-based line and 0-based character column (clamped to the line).
    pub fn offset(&self, line: usize, col0: usize) -> usize {
        let idx = line.saturating_sub(1);
        let Some(&start) = self.line_starts.get(idx) else {
            return self.text.len();
        };
        let end = self
            .line_starts
            .get(idx + 1)
            .map_or(self.text.len(), |&next| next - 1);
        let line_text = &self.text[start..end];
        if col0 < line_text.len() && line_text.is_ascii() {
            return start + col0;
        }
        let within = line_text
            .char_indices()
            .nth(col0)
            .map(|(i, _)| i)
            .unwrap_or(line_text.len());
        start + within
    }

    /// The text of a 1-based line, without its line break.
    pub fn line_text(&self, line: usize) -> &str {
        match self.line_starts.get(line.saturating_sub(1)) {
            Some(&start) => self.line_text_from(start),
            None => "",
        }
    }

    /// The text a span covers (empty if the span is out of range).
    pub fn slice(&self, span: Span) -> &str {
        let start = self.floor_char_boundary(span.start.min(self.text.len()));
        let end = self.floor_char_boundary(span.end.min(self.text.len()));
        self.text.get(start..end.max(start)).unwrap_or("")
    }

    fn line_text_from(&self, start: usize) -> &str {
        let rest = &self.text[start..];
        let end = rest.find('\n').unwrap_or(rest.len());
        rest[..end].strip_suffix('\r').unwrap_or(&rest[..end])
    }

    fn floor_char_boundary(&self, mut offset: usize) -> usize {
        while offset > 0 && !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_lines_and_characters() {
        let src = SourceFile::new("a.yaml", "ab\nçd: x\n");
        assert_eq!(src.location(0), Location { line: 1, col: 1 });
        assert_eq!(src.location(3), Location { line: 2, col: 1 });
        // 'ç' is two bytes; the column after it is 2.
        assert_eq!(src.location(5), Location { line: 2, col: 2 });
        assert_eq!(src.offset(2, 1), 5);
        assert_eq!(src.line_text(2), "çd: x");
        assert_eq!(src.line_count(), 2);
    }

    #[test]
    fn out_of_range_offsets_are_clamped() {
        let src = SourceFile::new("a.yaml", "é");
        assert_eq!(src.location(1), Location { line: 1, col: 1 });
        assert_eq!(src.location(99), Location { line: 1, col: 2 });
        assert_eq!(src.slice(Span::new(0, 99)), "é");
    }
}
