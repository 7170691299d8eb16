//! Where the cursor stands, read from the text itself (a file being typed rarely parses):
//! the word under it, the step block around it, and whether it is inside `{{ }}`, after
//! `uses:`, in `needs:` or among a step's `with:` keys.

/// Characters of a kind name, step id or template path.
fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// The word (letters, digits, `_ - .`) around `offset`, and its byte range.
pub fn word_at(text: &str, offset: usize) -> Option<(usize, usize, &str)> {
    let offset = floor_boundary(text, offset);
    let start = text[..offset]
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_word(*c))
        .last()
        .map_or(offset, |(i, _)| i);
    let end = text[offset..]
        .char_indices()
        .find(|(_, c)| !is_word(*c))
        .map_or(text.len(), |(i, _)| offset + i);
    (start < end).then(|| (start, end, &text[start..end]))
}

/// The largest char boundary at or below `offset`.
pub fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut o = offset.min(text.len());
    while !text.is_char_boundary(o) {
        o -= 1;
    }
    o
}

/// The text of the line holding `offset`, up to `offset`.
pub fn line_prefix(text: &str, offset: usize) -> &str {
    let offset = floor_boundary(text, offset);
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    &text[start..offset]
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// The step the line `line_no` (0-based) belongs to: its id and the text of its block.
pub fn step_block(text: &str, line_no: usize) -> Option<(String, String)> {
    let lines: Vec<&str> = text.split('\n').collect();
    let line_no = line_no.min(lines.len().saturating_sub(1));
    // The section (`steps:` / `on_failure:`) above the cursor.
    let section = (0..=line_no).rev().find(|&i| {
        let l = lines[i];
        indent(l) == 0 && !blank(l)
    })?;
    let head = lines[section].trim_end();
    if head != "steps:" && head != "on_failure:" {
        return None;
    }
    let step_indent = lines[section + 1..]
        .iter()
        .find(|l| !blank(l))
        .map(|l| indent(l))?;
    if step_indent == 0 {
        return None;
    }
    let key_line = (section + 1..=line_no)
        .rev()
        .find(|&i| !blank(lines[i]) && indent(lines[i]) == step_indent)?;
    let id = lines[key_line].trim().split(':').next()?.trim().to_string();
    let end = (key_line + 1..lines.len())
        .find(|&i| !blank(lines[i]) && indent(lines[i]) <= step_indent)
        .unwrap_or(lines.len());
    Some((id, lines[key_line..end].join("\n")))
}

/// The kind a step block names in `uses:`.
pub fn uses_in(block: &str) -> Option<String> {
    let at = block.find("uses:")? + "uses:".len();
    let rest = block[at..].trim_start();
    let kind: String = rest.chars().take_while(|c| is_word(*c)).collect();
    (!kind.is_empty()).then_some(kind)
}

/// Whether the cursor at `offset` (on line `line_no`) is where a `with:` key goes.
pub fn in_with_keys(text: &str, offset: usize) -> bool {
    let prefix = line_prefix(text, offset);
    if let Some(i) = prefix.rfind("with:") {
        // Flow style: `with: { user: x, sk|`: after `{` or `,`, before a `:`.
        let after = &prefix[i + 5..];
        let last = after.rfind([',', '{']);
        return last.is_some_and(|j| !after[j..].contains(':'));
    }
    let trimmed = prefix.trim_start();
    if trimmed.contains(':') || trimmed.contains(' ') {
        return false;
    }
    let here = indent(prefix);
    let start = text[..floor_boundary(text, offset)]
        .rfind('\n')
        .map_or(0, |i| i);
    let above = &text[..start];
    above
        .split('\n')
        .rev()
        .find(|l| !blank(l) && indent(l) < here)
        .is_some_and(|l| l.trim_start().starts_with("with:"))
}

/// What is being typed inside an open `{{ ` on the cursor's line: the path so far.
pub fn template_path(text: &str, offset: usize) -> Option<&str> {
    let prefix = line_prefix(text, offset);
    let open = prefix.rfind("{{")?;
    if prefix[open..].contains("}}") {
        return None;
    }
    let inside = &prefix[open + 2..];
    let start = inside.rfind(|c: char| !is_word(c)).map_or(0, |i| {
        i + inside[i..].chars().next().map_or(1, char::len_utf8)
    });
    Some(&inside[start..])
}

/// Whether the cursor's line is a `needs:` value.
pub fn in_needs(text: &str, offset: usize) -> bool {
    let prefix = line_prefix(text, offset);
    prefix.trim_start().starts_with("needs:") || prefix.contains(" needs: [")
}

/// Whether the cursor is the value of `uses:`.
pub fn in_uses(text: &str, offset: usize) -> bool {
    let prefix = line_prefix(text, offset);
    match prefix.rfind("uses:") {
        Some(i) => !prefix[i + 5..].trim_start().contains([' ', ',', '}']),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "runbook: t\nsteps:\n  a:\n    uses: entra.create_user\n    with:\n      us\n  b:\n    uses: wait\n    with: { for: 1h, fo }\n    needs: [a]\n";

    #[test]
    fn finds_the_step_and_the_place_in_it() {
        let at = DOC.find("us\n").unwrap() + 2;
        let (id, block) = step_block(DOC, 5).unwrap();
        assert_eq!(id, "a");
        assert_eq!(uses_in(&block).as_deref(), Some("entra.create_user"));
        assert!(in_with_keys(DOC, at));
        let flow = DOC.find(" fo }").unwrap() + 3;
        assert!(in_with_keys(DOC, flow));
        assert!(!in_with_keys(DOC, DOC.find("1h").unwrap()));
        assert!(in_needs(DOC, DOC.find("[a]").unwrap() + 1));
        assert!(in_uses(DOC, DOC.find("wait").unwrap() + 2));
        assert_eq!(step_block(DOC, 8).unwrap().0, "b");
        assert_eq!(step_block(DOC, 0), None);
    }

    #[test]
    fn reads_words_and_template_paths_anywhere() {
        let t = "x: \"{{steps.a.outputs.i\"";
        assert_eq!(template_path(t, t.len() - 1), Some("steps.a.outputs.i"));
        assert_eq!(template_path("{{a}} b", 7), None);
        assert_eq!(word_at("uses: wait", 8).unwrap().2, "wait");
        for o in 0..20 {
            let _ = word_at("é😀", o);
            let _ = line_prefix("é😀", o);
            let _ = template_path("{{é😀", o);
        }
    }
}
