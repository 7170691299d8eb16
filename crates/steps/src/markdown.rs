//! Markdown → HTML for message bodies and run reports: authors write Markdown (Teams renders
//! it natively), email and the web UI need HTML. CommonMark plus tables and strikethrough via
//! `pulldown-cmark`; raw HTML in the source is escaped, never passed through, so a value
//! rendered into a template (a display name, a vendor's error message) cannot inject markup.

use pulldown_cmark::{Event, Options, Parser};

/// Renders Markdown to an HTML fragment. Raw HTML (block or inline) is shown as text.
pub fn to_html(markdown: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        other => other,
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// Escapes text for use inside HTML (element content or a quoted attribute).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_common_markdown() {
        let html = to_html("# Done\n\n- **user** created\n- [link](https://example.com)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n");
        assert!(html.contains("<h1>Done</h1>"), "{html}");
        assert!(
            html.contains("<li><strong>user</strong> created</li>"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"https://example.com\">link</a>"),
            "{html}"
        );
        assert!(html.contains("<table>"), "{html}");
    }

    #[test]
    fn raw_html_is_escaped_not_passed_through() {
        let html = to_html("Hello <script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n");
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn escape_html_escapes_attribute_characters() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;"
        );
    }
}
