//! What `tenure demo` reads back from the sandbox to show: the approval link an approver's
//! Teams card carries, the messages and ticket notes the sandbox received, and the state of
//! the person's account. Reading only: the sandbox's `/_sandbox/state` document.

use serde_json::Value;

use super::out::say;

fn array(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// The approver and Approve link of the Teams approval card for `run`, if it arrived.
pub fn card_link(state: &Value, run: &str) -> Option<(String, String)> {
    array(&state["inbox"]["teams"]).find_map(|post| {
        let content = &post["body"]["attachments"][0]["content"];
        let facts: Vec<(&str, &str)> = array(&content["body"])
            .filter_map(|b| b["facts"].as_array())
            .flatten()
            .map(|f| {
                (
                    f["title"].as_str().unwrap_or_default(),
                    f["value"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        if !facts.contains(&("Run", run)) {
            return None;
        }
        let approver = facts.iter().find(|(t, _)| *t == "For")?.1.to_string();
        let link = array(&content["actions"]).find(|a| a["title"] == "Approve")?["url"]
            .as_str()?
            .to_string();
        Some((approver, link))
    })
}

/// The value of the form field `name` in an HTML page (`name="NAME" value="..."`).
pub fn form_field(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\""))?;
    let tag_start = page[..at].rfind('<')?;
    let tag_end = at + page[at..].find('>')?;
    let tag = &page[tag_start..tag_end];
    let v = tag.find("value=\"")? + 7;
    Some(tag[v..].split('"').next()?.to_string())
}

/// An HTML note as plain lines: block ends become line breaks, tags go, the common entities
/// are decoded (what a terminal can show of it).
fn plain(html: &str) -> String {
    let mut text = String::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let tag = rest[open + 1..open + close].to_ascii_lowercase();
        if ["br", "br/", "br /", "/p", "/li", "/h1", "/h2", "/h3", "/tr"].contains(&tag.as_str()) {
            text.push('\n');
        } else if tag == "li" {
            text.push_str("- ");
        }
        rest = &rest[open + close + 1..];
    }
    text.push_str(rest);
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// The first one-time password link (`.../p/TOKEN...`) in `text`.
fn password_link(text: &str) -> Option<&str> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>' | '(' | ')'))
        .find(|w| w.starts_with("http") && w.contains("/p/"))
}

/// The text of a Teams post: its card's text blocks, or its plain text.
fn teams_text(post: &Value) -> String {
    let content = &post["body"]["attachments"][0]["content"];
    let blocks: Vec<&str> = array(&content["body"])
        .filter_map(|b| b["text"].as_str())
        .collect();
    if blocks.is_empty() {
        post["body"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    } else {
        blocks.join(" / ")
    }
}

/// Prints the messages the sandbox received (emails and Teams posts), the one-time password
/// link among them, and the notes on the HaloPSA ticket `ticket`.
pub fn messages(state: &Value, ticket: &str) {
    say!(
        "
What the sandbox received:"
    );
    for mail in array(&state["inbox"]["email"]) {
        let to: Vec<&str> = array(&mail["to"]).filter_map(Value::as_str).collect();
        say!(
            "  email to {}: \"{}\"",
            to.join(", "),
            mail["subject"].as_str().unwrap_or_default()
        );
        let text = mail["text"].as_str().unwrap_or_default();
        if let Some(link) = password_link(text) {
            say!("    one-time password link: {link}");
        }
    }
    for post in array(&state["inbox"]["teams"]) {
        let text = teams_text(post);
        let short: String = text.chars().take(110).collect();
        let more = if text.chars().count() > 110 {
            "..."
        } else {
            ""
        };
        say!("  Teams: {short}{more}");
    }
    let notes: Vec<&Value> = array(&state["halo"]["notes"])
        .filter(|n| n["ticket_id"].as_u64().map(|t| t.to_string()).as_deref() == Some(ticket))
        .collect();
    for note in notes {
        let text = plain(note["text"].as_str().unwrap_or_default());
        say!(
            "  HaloPSA ticket {ticket}, {} note:",
            if note["internal"] == true {
                "internal"
            } else {
                "public"
            }
        );
        for line in text.lines().filter(|l| !l.trim().is_empty()).take(14) {
            say!("    {}", line.trim());
        }
    }
}

/// Prints what the sandbox tenant says about `upn` after the offboarding.
pub fn tenant_state(state: &Value, upn: &str) {
    let tenant = &state["tenants"][0];
    let Some(user) = array(&tenant["users"]).find(|u| u["userPrincipalName"] == upn) else {
        say!("\n{upn} is not in the sandbox tenant.");
        return;
    };
    let uid = user["id"].as_str().unwrap_or_default();
    let mailbox = array(&tenant["mailboxes"])
        .find(|m| m.to_string().to_lowercase().contains(&upn.to_lowercase()));
    let groups: Vec<&str> = array(&tenant["groups"])
        .filter(|g| array(&g["members"]).any(|x| x == uid))
        .filter_map(|g| g["displayName"].as_str())
        .collect();
    let wipes = state["counters"]
        .as_object()
        .map_or(0, |c| c.keys().filter(|k| k.ends_with("/wipe")).count());
    say!("\nWhat the sandbox tenant now says about {upn}:");
    say!("  sign-in blocked:   {}", user["accountEnabled"] == false);
    say!(
        "  sessions revoked:  {}",
        user["signInSessionsValidFrom"].is_string()
    );
    say!(
        "  licences:          {}",
        user["assignedLicenses"].as_array().map_or(0, Vec::len)
    );
    say!(
        "  mailbox:           {}",
        mailbox.map_or("none".to_string(), |m| m["recipientTypeDetails"]
            .as_str()
            .or(m["recipient_type_details"].as_str())
            .unwrap_or("?")
            .to_string())
    );
    say!(
        "  groups left:       {}",
        if groups.is_empty() {
            "none".to_string()
        } else {
            format!(
                "{} (dynamic or synced: not Tenure's to change)",
                groups.join(", ")
            )
        }
    );
    say!("  device wipes sent: {wipes}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_read_as_plain_lines() {
        assert_eq!(
            plain("<p>Done &amp; dusted</p><ul><li>one</li><li>two</li></ul>"),
            "Done & dusted\n- one\n- two\n"
        );
    }

    #[test]
    fn form_fields_and_password_links_are_found() {
        let page = r#"<form method="post"><input type="hidden" name="csrf" value="abc.123"><button name="decision" value="approve">"#;
        assert_eq!(form_field(page, "csrf").as_deref(), Some("abc.123"));
        assert_eq!(form_field(page, "nope"), None);
        assert_eq!(
            password_link("Open https://pwpush.example/p/xyz once."),
            Some("https://pwpush.example/p/xyz")
        );
    }
}
