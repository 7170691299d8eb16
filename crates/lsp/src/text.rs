//! Positions: LSP counts lines from 0 and columns in UTF-16 code units; the compiler counts
//! bytes. Every conversion clamps, so a position past the end of a line or of the file (or in
//! the middle of a surrogate pair) lands on the nearest character boundary, never panics.

use lsp_types::{Position, Range};
use tenure_runbook::Span;

/// A text with the byte offset of each line's start.
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes `text`.
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// The byte offset of an LSP position, clamped to the text.
    pub fn offset(&self, pos: Position) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return self.text.len();
        };
        let end = self
            .starts
            .get(pos.line as usize + 1)
            .map_or(self.text.len(), |&e| e.saturating_sub(1));
        let line = &self.text[start..end.max(start)];
        let mut units = 0u32;
        for (i, c) in line.char_indices() {
            if units >= pos.character {
                return start + i;
            }
            units += c.len_utf16() as u32;
        }
        start + line.len()
    }

    /// The LSP position of a byte offset, clamped to the text.
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let character = self.text[start..offset]
            .chars()
            .map(|c| c.len_utf16() as u32)
            .sum();
        Position {
            line: line as u32,
            character,
        }
    }

    /// The LSP range of a span.
    pub fn range(&self, span: Span) -> Range {
        Range {
            start: self.position(span.start),
            end: self.position(span.end.max(span.start)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, character: u32) -> Position {
        Position { line, character }
    }

    #[test]
    fn utf16_columns_round_trip_and_clamp() {
        let text = "a: é😀x\nb\n";
        let idx = LineIndex::new(text);
        // `😀` is two UTF-16 units and four bytes.
        assert_eq!(idx.offset(pos(0, 3)), 3);
        assert_eq!(idx.offset(pos(0, 4)), 5);
        assert_eq!(idx.offset(pos(0, 6)), 9);
        assert_eq!(idx.position(9), pos(0, 6));
        // Inside the surrogate pair, past the line, past the file.
        assert_eq!(idx.offset(pos(0, 5)), 9);
        assert_eq!(idx.offset(pos(0, 99)), 10);
        assert_eq!(idx.offset(pos(1, 0)), 11);
        assert_eq!(idx.offset(pos(99, 3)), text.len());
        assert_eq!(idx.position(6), pos(0, 4));
        assert_eq!(idx.position(10_000), pos(2, 0));
        let empty = LineIndex::new("");
        assert_eq!(empty.offset(pos(3, 3)), 0);
        assert_eq!(empty.position(5), pos(0, 0));
    }
}
