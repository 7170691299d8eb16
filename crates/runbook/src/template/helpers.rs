//! The template helpers runbooks may call. Each is a pure function over JSON values, so the
//! same code serves rendering and unit tests.

use chrono::{DateTime, NaiveDate, Utc};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson,
};
use serde_json::Value;

/// Every helper name a template may call (the compiler rejects any other).
pub const HELPERS: &[&str] = &[
    "lower", "upper", "ascii", "slug", "initial", "join", "eq", "ne", "and", "or", "not",
    "default", "date", "at", "len", "trim", "replace", "concat", "first", "without", "field",
    "lookup", "if", "unless", "each", "with",
];

/// Truthiness as the runbook language defines it: false, empty string, empty list, empty
/// mapping, null and 0 are false; everything else is true.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The text of a value as it prints in a template (strings unquoted, null empty).
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

type HelperFn = fn(&[Value]) -> Result<Value, String>;

fn arg(args: &[Value], i: usize, helper: &str) -> Result<Value, String> {
    args.get(i)
        .cloned()
        .ok_or_else(|| format!("`{helper}` needs at least {} argument(s)", i + 1))
}

fn lower(a: &[Value]) -> Result<Value, String> {
    Ok(Value::String(text(&arg(a, 0, "lower")?).to_lowercase()))
}

fn upper(a: &[Value]) -> Result<Value, String> {
    Ok(Value::String(text(&arg(a, 0, "upper")?).to_uppercase()))
}

/// Folds diacritics and other non-ASCII letters to ASCII (José Núñez → Jose Nunez).
pub fn fold_ascii(s: &str) -> String {
    deunicode::deunicode(s)
}

fn ascii(a: &[Value]) -> Result<Value, String> {
    Ok(Value::String(fold_ascii(&text(&arg(a, 0, "ascii")?))))
}

/// Lowercase ASCII words joined by `-` (José Núñez Jr. → jose-nunez-jr).
pub fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in fold_ascii(s).chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

fn slug(a: &[Value]) -> Result<Value, String> {
    Ok(Value::String(slugify(&text(&arg(a, 0, "slug")?))))
}

fn initial(a: &[Value]) -> Result<Value, String> {
    let t = text(&arg(a, 0, "initial")?);
    Ok(Value::String(
        t.trim()
            .chars()
            .next()
            .map(String::from)
            .unwrap_or_default(),
    ))
}

fn join(a: &[Value]) -> Result<Value, String> {
    let list = arg(a, 0, "join")?;
    let sep = a.get(1).map(text).unwrap_or_else(|| ", ".into());
    match list {
        Value::Array(items) => Ok(Value::String(
            items.iter().map(text).collect::<Vec<_>>().join(&sep),
        )),
        Value::Null => Ok(Value::String(String::new())),
        other => Ok(Value::String(text(&other))),
    }
}

fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            s.parse::<f64>().ok() == n.as_f64()
        }
        _ => a == b,
    }
}

fn eq(a: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(loosely_equal(
        &arg(a, 0, "eq")?,
        &arg(a, 1, "eq")?,
    )))
}

fn ne(a: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(!loosely_equal(
        &arg(a, 0, "ne")?,
        &arg(a, 1, "ne")?,
    )))
}

fn and(a: &[Value]) -> Result<Value, String> {
    arg(a, 1, "and")?;
    Ok(Value::Bool(a.iter().all(truthy)))
}

fn or(a: &[Value]) -> Result<Value, String> {
    arg(a, 1, "or")?;
    Ok(Value::Bool(a.iter().any(truthy)))
}

fn not(a: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(!truthy(&arg(a, 0, "not")?)))
}

fn default(a: &[Value]) -> Result<Value, String> {
    let v = arg(a, 0, "default")?;
    let fallback = arg(a, 1, "default")?;
    Ok(if truthy(&v) { v } else { fallback })
}

/// Formats a date or datetime value with a strftime format (default `%Y-%m-%d`).
fn date(a: &[Value]) -> Result<Value, String> {
    let v = text(&arg(a, 0, "date")?);
    let fmt = a.get(1).map(text).unwrap_or_else(|| "%Y-%m-%d".into());
    let formatted = if let Ok(dt) = DateTime::parse_from_rfc3339(&v) {
        dt.format(&fmt).to_string()
    } else if let Ok(d) = NaiveDate::parse_from_str(&v, "%Y-%m-%d") {
        d.format(&fmt).to_string()
    } else if v == "now" {
        Utc::now().format(&fmt).to_string()
    } else {
        return Err(format!(
            "`date` needs a date (YYYY-MM-DD) or an RFC 3339 datetime, got `{v}`"
        ));
    };
    Ok(Value::String(formatted))
}

/// `at DATE TIME ZONE`: the moment a local date and time of day happen in an IANA timezone,
/// as an RFC 3339 datetime with the offset the zone has on that day (summer time included).
/// `DATE` is `YYYY-MM-DD` (or a datetime, whose date is taken), `TIME` `HH:MM[:SS]`, `ZONE`
/// an IANA name (empty: UTC). A time a spring-forward skips moves on to the first moment after
/// the gap; a time an autumn fall-back repeats is the first of the two.
fn at(a: &[Value]) -> Result<Value, String> {
    use chrono::{LocalResult, NaiveTime, TimeZone};
    let day = text(&arg(a, 0, "at")?);
    let day = NaiveDate::parse_from_str(day.get(..10).unwrap_or(&day), "%Y-%m-%d")
        .map_err(|_| format!("`at` needs a date (YYYY-MM-DD) first, got `{day}`"))?;
    let time = text(&arg(a, 1, "at")?);
    let time = NaiveTime::parse_from_str(&time, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(&time, "%H:%M"))
        .map_err(|_| format!("`at` needs a time of day (HH:MM) second, got `{time}`"))?;
    let zone = a.get(2).map(text).unwrap_or_default();
    let tz: chrono_tz::Tz = if zone.trim().is_empty() {
        chrono_tz::UTC
    } else {
        zone.trim().parse().map_err(|_| {
            format!("`at`: `{zone}` is not an IANA timezone (e.g. Australia/Sydney)")
        })?
    };
    let local = day.and_time(time);
    let mut probe = local;
    for _ in 0..=180 {
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                return Ok(Value::String(
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ))
            }
            LocalResult::None => probe += chrono::Duration::minutes(1),
        }
    }
    Err(format!("`at`: {local} does not exist in {tz}"))
}

fn len(a: &[Value]) -> Result<Value, String> {
    Ok(Value::from(match arg(a, 0, "len")? {
        Value::Array(x) => x.len(),
        Value::Object(o) => o.len(),
        Value::String(s) => s.chars().count(),
        Value::Null => 0,
        _ => 1,
    }))
}

fn trim(a: &[Value]) -> Result<Value, String> {
    Ok(Value::String(text(&arg(a, 0, "trim")?).trim().to_string()))
}

fn replace(a: &[Value]) -> Result<Value, String> {
    let s = text(&arg(a, 0, "replace")?);
    let from = text(&arg(a, 1, "replace")?);
    let to = text(&arg(a, 2, "replace")?);
    if from.is_empty() {
        return Ok(Value::String(s));
    }
    Ok(Value::String(s.replace(&from, &to)))
}

fn concat(a: &[Value]) -> Result<Value, String> {
    Ok(Value::String(a.iter().map(text).collect()))
}

fn first(a: &[Value]) -> Result<Value, String> {
    Ok(match arg(a, 0, "first")? {
        Value::Array(items) => items.into_iter().next().unwrap_or(Value::Null),
        other => other,
    })
}

/// `without LIST OTHER`: the items of `LIST` that are not in `OTHER`, in `LIST`'s order
/// (text compared without case: `Sales` and `sales` are one group). A single value counts as a
/// list of one; null as an empty list.
fn without(a: &[Value]) -> Result<Value, String> {
    let list = |v: Value| match v {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let items = list(arg(a, 0, "without")?);
    let other: Vec<String> = list(a.get(1).cloned().unwrap_or(Value::Null))
        .iter()
        .map(|v| text(v).to_lowercase())
        .collect();
    Ok(Value::Array(
        items
            .into_iter()
            .filter(|v| !other.contains(&text(v).to_lowercase()))
            .collect(),
    ))
}

/// `field BODY KEY`: the value of the first `KEY: value` line of a free-text ticket body
/// (see [`field_value`]); empty when there is none.
fn field(a: &[Value]) -> Result<Value, String> {
    let body = text(&arg(a, 0, "field")?);
    let key = text(&arg(a, 1, "field")?);
    Ok(Value::String(field_value(&body, &key).unwrap_or_default()))
}

/// The value of the first `Key: value` line of `body` whose key is `key` (compared without
/// case, inner whitespace collapsed, `*` of Markdown bold ignored), trimmed. The body may be
/// plain text or HTML as ticket systems send it: block tags (`<br>`, `<p>`, `<div>`, `<li>`,
/// `<tr>`, headings) end lines, other tags are dropped, and entities (`&amp;`, `&nbsp;`,
/// `&#39;`, `&#x27;`...) are decoded.
pub fn field_value(body: &str, key: &str) -> Option<String> {
    let wanted = normalize_key(key);
    if wanted.is_empty() {
        return None;
    }
    let plain = if body.contains('<') || body.contains('&') {
        decode_entities(&strip_tags(body))
    } else {
        body.to_string()
    };
    plain.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (normalize_key(k) == wanted).then(|| v.trim_matches(is_blank_or_bold).to_string())
    })
}

fn is_blank_or_bold(c: char) -> bool {
    c.is_whitespace() || c == '*'
}

fn normalize_key(k: &str) -> String {
    k.trim_matches(is_blank_or_bold)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Block-level tags whose start or end begins a new line.
const LINE_TAGS: &[&str] = &[
    "br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table",
];

/// Drops HTML tags, turning block-level ones into line ends. A `<` that opens no tag stays.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let name: String = after
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match after.find('>') {
            Some(end) if !name.is_empty() => {
                if LINE_TAGS.contains(&name.as_str()) {
                    out.push('\n');
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Named entities of letters and punctuation rich-text editors write into ticket bodies.
const NAMED: &[(&str, char)] = &[
    ("aacute", 'á'),
    ("Aacute", 'Á'),
    ("eacute", 'é'),
    ("Eacute", 'É'),
    ("iacute", 'í'),
    ("Iacute", 'Í'),
    ("oacute", 'ó'),
    ("Oacute", 'Ó'),
    ("uacute", 'ú'),
    ("Uacute", 'Ú'),
    ("agrave", 'à'),
    ("egrave", 'è'),
    ("auml", 'ä'),
    ("Auml", 'Ä'),
    ("euml", 'ë'),
    ("iuml", 'ï'),
    ("ouml", 'ö'),
    ("Ouml", 'Ö'),
    ("uuml", 'ü'),
    ("Uuml", 'Ü'),
    ("ntilde", 'ñ'),
    ("Ntilde", 'Ñ'),
    ("ccedil", 'ç'),
    ("szlig", 'ß'),
    ("aring", 'å'),
    ("Aring", 'Å'),
    ("oslash", 'ø'),
    ("Oslash", 'Ø'),
    ("aelig", 'æ'),
    ("ndash", '–'),
    ("mdash", '—'),
    ("lsquo", '‘'),
    ("rsquo", '’'),
    ("ldquo", '“'),
    ("rdquo", '”'),
    ("hellip", '…'),
];

/// Decodes the named entities ticket systems use and every numeric one; anything else stays.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let decoded = after.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &after[..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ if NAMED.iter().any(|(n, _)| *n == name) => {
                    NAMED.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
                }
                _ => {
                    let num = name.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code).map(|c| if c == '\u{a0}' { ' ' } else { c })
                }
            }?;
            Some((c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace('\u{a0}', " ")
}

/// Prints its argument as JSON text; the renderer wraps a single-expression template in it
/// to get a typed value back rather than display text.
fn json_text(a: &[Value]) -> Result<Value, String> {
    let v = a.first().cloned().unwrap_or(Value::Null);
    serde_json::to_string(&v)
        .map(Value::String)
        .map_err(|e| e.to_string())
}

/// The helpers implemented here (Handlebars provides `if unless each with lookup`).
pub(crate) const FUNCTIONS: &[(&str, HelperFn)] = &[
    ("lower", lower),
    ("upper", upper),
    ("ascii", ascii),
    ("slug", slug),
    ("initial", initial),
    ("join", join),
    ("eq", eq),
    ("ne", ne),
    ("and", and),
    ("or", or),
    ("not", not),
    ("default", default),
    ("date", date),
    ("at", at),
    ("len", len),
    ("trim", trim),
    ("replace", replace),
    ("concat", concat),
    ("first", first),
    ("without", without),
    ("field", field),
    ("__json", json_text),
];

struct FnHelper {
    name: &'static str,
    f: HelperFn,
}

impl HelperDef for FnHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let args: Vec<Value> = h.params().iter().map(|p| p.value().clone()).collect();
        (self.f)(&args)
            .map(ScopedJson::Derived)
            .map_err(|m| RenderErrorReason::Other(format!("{}: {m}", self.name)).into())
    }
}

/// Registers every helper of [`FUNCTIONS`] on a registry.
pub(crate) fn register(registry: &mut Handlebars<'_>) {
    for (name, f) in FUNCTIONS {
        registry.register_helper(name, Box::new(FnHelper { name, f: *f }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn without_is_a_list_difference() {
        let w = |a: Value, b: Value| super::without(&[a, b]).unwrap();
        assert_eq!(
            w(
                json!(["Sales", "All Staff", "VPN"]),
                json!(["all staff", "Finance"])
            ),
            json!(["Sales", "VPN"])
        );
        assert_eq!(w(json!(["A"]), json!(null)), json!(["A"]));
        assert_eq!(w(json!(null), json!(["A"])), json!([]));
        assert_eq!(w(json!("A"), json!(["B"])), json!(["A"]));
    }

    #[test]
    fn at_gives_the_offset_the_zone_has_that_day() {
        let at = |d: &str, t: &str, z: &str| super::at(&[json!(d), json!(t), json!(z)]);
        // Sydney: +11:00 in summer (January), +10:00 in winter (July).
        assert_eq!(
            at("2026-01-15", "17:00", "Australia/Sydney").unwrap(),
            json!("2026-01-15T17:00:00+11:00")
        );
        assert_eq!(
            at("2026-07-15", "17:00", "Australia/Sydney").unwrap(),
            json!("2026-07-15T17:00:00+10:00")
        );
        assert_eq!(
            at("2026-03-30", "09:30", "Europe/London").unwrap(),
            json!("2026-03-30T09:30:00+01:00")
        );
        assert_eq!(
            at("2026-03-02", "08:00", "").unwrap(),
            json!("2026-03-02T08:00:00Z")
        );
        // 02:30 does not exist in London on 29 March 2026 (clocks go 01:00 → 02:00 UTC+1).
        assert_eq!(
            at("2026-03-29", "01:30", "Europe/London").unwrap(),
            json!("2026-03-29T02:00:00+01:00")
        );
        // 01:30 happens twice on 25 October 2026: the first.
        assert_eq!(
            at("2026-10-25", "01:30", "Europe/London").unwrap(),
            json!("2026-10-25T01:30:00+01:00")
        );
        assert_eq!(
            at("2026-03-02T10:00:00Z", "17:00", "UTC").unwrap(),
            json!("2026-03-02T17:00:00Z")
        );
        assert!(at("2026-02-30", "17:00", "UTC")
            .unwrap_err()
            .contains("needs a date"));
        assert!(at("2026-03-02", "5pm", "UTC")
            .unwrap_err()
            .contains("time of day"));
        assert!(at("2026-03-02", "17:00", "Mars/Olympus")
            .unwrap_err()
            .contains("IANA"));
    }

    #[test]
    fn ascii_folds_diacritics() {
        assert_eq!(fold_ascii("José Núñez"), "Jose Nunez");
        assert_eq!(fold_ascii("Zoë Ångström"), "Zoe Angstrom");
        assert_eq!(slugify("José Núñez Jr."), "jose-nunez-jr");
    }

    #[test]
    fn truthiness_follows_the_language() {
        for v in [
            json!(false),
            json!(""),
            json!([]),
            json!(null),
            json!(0),
            json!({}),
        ] {
            assert!(!truthy(&v), "{v} should be false");
        }
        for v in [
            json!(true),
            json!("x"),
            json!([1]),
            json!(1),
            json!("false"),
        ] {
            assert!(truthy(&v), "{v} should be true");
        }
    }

    #[test]
    fn logic_and_defaults() {
        assert_eq!(eq(&[json!("1"), json!(1)]).unwrap(), json!(true));
        assert_eq!(ne(&[json!("a"), json!("b")]).unwrap(), json!(true));
        assert_eq!(and(&[json!(1), json!("")]).unwrap(), json!(false));
        assert_eq!(or(&[json!(0), json!("x")]).unwrap(), json!(true));
        assert_eq!(default(&[json!(""), json!("AU")]).unwrap(), json!("AU"));
        assert_eq!(
            join(&[json!(["SPB", "E3"]), json!(" + ")]).unwrap(),
            json!("SPB + E3")
        );
        assert_eq!(initial(&[json!(" Éva")]).unwrap(), json!("É"));
    }

    #[test]
    fn field_reads_key_value_lines_of_text_and_html() {
        let text = "New starter\r\nFirst name: Jane \nStart date:  2026-03-01\nNotes: a: b";
        assert_eq!(
            field_value(text, "start DATE").as_deref(),
            Some("2026-03-01")
        );
        assert_eq!(field_value(text, "first name").as_deref(), Some("Jane"));
        assert_eq!(field_value(text, "notes").as_deref(), Some("a: b"));
        assert_eq!(field_value(text, "Manager"), None);
        let html = "<p>Please set up:</p><p><strong>First&nbsp;name:</strong> Zo&euml;</p>\
                    <div>Last name: O&#39;Brien &amp; Co<br/>Start date: 2026-03-01</div>\
                    <p>Department:</p><p>Job title: 1 &lt; 2</p>";
        assert_eq!(field_value(html, "first name").as_deref(), Some("Zoë"));
        assert_eq!(
            field_value(html, "Last Name").as_deref(),
            Some("O'Brien & Co")
        );
        assert_eq!(
            field_value(html, "start date").as_deref(),
            Some("2026-03-01")
        );
        assert_eq!(field_value(html, "department").as_deref(), Some(""));
        assert_eq!(field_value(html, "job title").as_deref(), Some("1 < 2"));
        let bold = "**Manager:** sam@contoso.example";
        assert_eq!(
            field_value(bold, "manager").as_deref(),
            Some("sam@contoso.example")
        );
        assert_eq!(field(&[json!(null), json!("x")]).unwrap(), json!(""));
        assert_eq!(field(&[json!("a < b"), json!("a")]).unwrap(), json!(""));
    }

    #[test]
    fn dates_format_dates_and_datetimes() {
        assert_eq!(
            date(&[json!("2026-03-01"), json!("%d %b %Y")]).unwrap(),
            json!("01 Mar 2026")
        );
        assert_eq!(
            date(&[json!("2026-03-01T17:00:00+11:00")]).unwrap(),
            json!("2026-03-01")
        );
        assert!(date(&[json!("soon")]).is_err());
    }
}
