//! Markdown → HTML for message bodies and run reports: authors write Markdown (Teams renders
//! it natively), email and the web UI need HTML. CommonMark plus tables and strikethrough via
//! `pulldown-cmark`; raw HTML in the source is escaped, never passed through, so a value
//! rendered into a template (a display name, a vendor's error message) cannot inject markup.
//! A link or image whose address has a scheme other than `http`, `https`, `mailto` or `tel`
//! (`javascript:`, `data:`, `vbscript:`, ...) loses its address.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

/// Renders Markdown to an HTML fragment. Raw HTML (block or inline) is shown as text.
pub fn to_html(markdown: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// The address itself when it is relative or has a harmless scheme, else nothing.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    // A scheme is what comes before the first `:`, if no `/`, `?` or `#` comes first.
    let scheme = url
        .split_once(':')
        .map(|(s, _)| s)
        .filter(|s| !s.contains(['/', '?', '#']));
    match scheme {
        None => url,
        Some(s)
            if ["http", "https", "mailto", "tel"]
                .iter()
                .any(|ok| s.trim().eq_ignore_ascii_case(ok)) =>
        {
            url
        }
        Some(_) => CowStr::Borrowed(""),
    }
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
    fn links_and_images_with_a_dangerous_scheme_lose_their_address() {
        let html = to_html(
            "[a](javascript:alert(1)) [b](JavaScript:alert(1)) <javascript:alert(2)> \
             ![c](data:image/svg+xml;base64,PHN2Zz4=) [d](vbscript:x) [e](https://ok.example/a:b) \
             [f](mailto:a@b.example) [g](/relative:x) <https://ok.example>",
        );
        for bad in ["javascript:", "JavaScript:", "data:", "vbscript:"] {
            assert!(!html.contains(&format!("href=\"{bad}")), "{html}");
            assert!(!html.contains(&format!("src=\"{bad}")), "{html}");
        }
        assert!(html.contains("href=\"https://ok.example/a:b\""), "{html}");
        assert!(html.contains("href=\"mailto:a@b.example\""), "{html}");
        assert!(html.contains("href=\"/relative:x\""), "{html}");
        assert!(html.contains("href=\"https://ok.example\""), "{html}");
    }

    #[test]
    fn escape_html_escapes_attribute_characters() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;"
        );
    }
}
