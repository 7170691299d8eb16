//! Reading a source's records: a CSV file (header row, UTF-8, a byte-order mark tolerated), a
//! JSON file, or an HTTP endpoint answering JSON (bearer token from the environment variable
//! the configuration names, paged by a JSON pointer to the next page's URL, `429`/`503` with
//! `Retry-After` honoured a few times). Sizes are bounded and requests time out. Every record
//! keeps where it came from (`people.csv:12`, `https://hr.example/people#records[3]`) for
//! messages. Bad input is an error naming the place, never a panic. The token never appears
//! in an error or a log line, nor does a URL's query (it may carry a key).

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::{SourceKind, SourceSpec, DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_SECS};

/// One record of a source: its fields (a CSV row by header, a JSON object as is) and where it
/// came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Field name → value (CSV values are strings).
    pub fields: Map<String, Value>,
    /// `people.csv:12`, `people.json#records[3]`, `https://hr.example/people#records[3]`.
    pub origin: String,
}

/// Why a source could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct SourceError {
    /// The file, line or URL (without its query).
    pub place: String,
    /// What is wrong.
    pub message: String,
}

fn error(place: impl Into<String>, message: impl Into<String>) -> SourceError {
    SourceError {
        place: place.into(),
        message: message.into(),
    }
}

/// How many times a `429`/`503` answer is retried.
pub const HTTP_RETRIES: u32 = 3;
/// The longest `Retry-After` waited for; longer asks fail the read.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(120);
/// The most pages followed.
pub const MAX_PAGES: usize = 10_000;

/// Reads the records of the source `spec` describes; relative file paths are read from
/// `base_dir` (the configuration's directory).
pub async fn read(spec: &SourceSpec, base_dir: &Path) -> Result<Vec<Record>, SourceError> {
    let max = spec.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    match spec.kind {
        SourceKind::Csv | SourceKind::Json => {
            let Some(rel) = &spec.path else {
                return Err(error("[sync.source]", "a file source needs `path`"));
            };
            let path = base_dir.join(rel);
            let bytes = read_file(&path, max).await?;
            let name = rel.display().to_string();
            if spec.kind == SourceKind::Csv {
                let delimiter = spec.delimiter.map_or(b',', |c| c as u8);
                parse_csv(&name, &bytes, delimiter)
            } else {
                parse_json(&name, &bytes, spec.records.as_deref().unwrap_or(""))
            }
        }
        SourceKind::Http => {
            let Some(url) = &spec.url else {
                return Err(error("[sync.source]", "an http source needs `url`"));
            };
            let token = match &spec.token_env {
                Some(env) => match std::env::var(env) {
                    Ok(t) if !t.trim().is_empty() => Some(t),
                    _ => {
                        return Err(error(
                            display_url(url),
                            format!(
                                "the environment variable {env} (token_env) is not set or empty"
                            ),
                        ))
                    }
                },
                None => None,
            };
            read_http(&HttpSource {
                url: url.clone(),
                token,
                records: spec.records.clone().unwrap_or_default(),
                next: spec.next.clone(),
                max_bytes: max,
                timeout: Duration::from_secs(spec.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS)),
            })
            .await
        }
    }
}

/// Reads a whole file of at most `max` bytes.
pub async fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, SourceError> {
    let place = path.display().to_string();
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| error(&place, format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(error(&place, "is not a file"));
    }
    if meta.len() > max {
        return Err(error(
            &place,
            format!(
                "is {} bytes, more than the {max} a source may hold (max_bytes)",
                meta.len()
            ),
        ));
    }
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| error(&place, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(error(&place, format!("grew past {max} bytes while read")));
    }
    Ok(bytes)
}

/// Parses CSV with a header row. Header names are trimmed; a column without a name is
/// ignored; two columns with the same name are an error. A row shorter than the header lacks
/// the missing fields; a longer one is an error (an unquoted separator, usually).
pub fn parse_csv(name: &str, bytes: &[u8], delimiter: u8) -> Result<Vec<Record>, SourceError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_reader(bytes);
    let csv_err = |e: csv::Error| {
        let line = e.position().map(|p| p.line());
        let place = match line {
            Some(l) => format!("{name}:{l}"),
            None => name.to_string(),
        };
        let message = match e.kind() {
            csv::ErrorKind::Utf8 { .. } => "is not UTF-8 text (save the export as UTF-8)".into(),
            _ => e.to_string(),
        };
        error(place, message)
    };
    let headers: Vec<String> = reader
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(|h| crate::mapping::invisible_out(h).trim().to_string())
        .collect();
    let mut seen = HashSet::new();
    for h in headers.iter().filter(|h| !h.is_empty()) {
        if !seen.insert(h.as_str()) {
            return Err(error(
                format!("{name}:1"),
                format!("two columns are named `{h}`"),
            ));
        }
    }
    if let Some(line) = unclosed_quote(bytes, delimiter) {
        // The csv crate reads an unclosed quote as one field running to the end of the file,
        // silently swallowing every row after it.
        return Err(error(
            format!("{name}:{line}"),
            "a quoted field opens here and is never closed (an unbalanced `\"`); \
             the rows after it would be lost",
        ));
    }
    let mut out = Vec::new();
    // Line numbers from byte offsets: the csv crate counts a CRLF record's line one short and
    // places a record after blank lines at the first blank one.
    let (mut seen_byte, mut seen_line) = (0usize, 1u64);
    for row in reader.records() {
        let row = row.map_err(csv_err)?;
        let mut start = row
            .position()
            .map_or(0, |p| p.byte() as usize)
            .min(bytes.len());
        while start < bytes.len() && (bytes[start] == b'\n' || bytes[start] == b'\r') {
            start += 1;
        }
        if start >= seen_byte {
            seen_line += line_ends(&bytes[seen_byte..start]);
            seen_byte = start;
        }
        let line = seen_line;
        let origin = format!("{name}:{line}");
        if row.len() > headers.len() {
            return Err(error(
                origin,
                format!(
                    "{} fields but the header names {} (an unquoted `{}`?)",
                    row.len(),
                    headers.len(),
                    delimiter as char
                ),
            ));
        }
        let fields = headers
            .iter()
            .zip(row.iter())
            .filter(|(h, _)| !h.is_empty())
            .map(|(h, v)| (h.clone(), Value::String(v.to_string())))
            .collect();
        out.push(Record { fields, origin });
    }
    Ok(out)
}

/// How many lines end in `bytes`: `\n`, `\r\n`, or a lone `\r` (old Mac exports).
fn line_ends(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .enumerate()
        .filter(|(i, b)| **b == b'\n' || (**b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
        .count() as u64
}

/// The line of a quoted field that is never closed, if one is, read the way the csv crate
/// reads quotes: a `"` opens a quoted field only at the start of a field, `""` inside one
/// is a literal quote, and a `"` elsewhere is a plain character.
fn unclosed_quote(bytes: &[u8], delimiter: u8) -> Option<u64> {
    let (mut field_start, mut quoted, mut opened) = (true, false, 0u64);
    let mut line = 1u64;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let ends_line = b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
        if ends_line {
            line += 1;
        }
        if quoted {
            if b == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    quoted = false;
                }
            }
        } else if b == delimiter || b == b'\n' || b == b'\r' {
            field_start = true;
        } else {
            if field_start && b == b'"' {
                quoted = true;
                opened = line;
            }
            field_start = false;
        }
        i += 1;
    }
    quoted.then_some(opened)
}

/// How an origin names the record list a pointer selects: `records` for the whole document,
/// else the pointer without its first `/`.
fn list_label(pointer: &str) -> String {
    if pointer.is_empty() {
        "records".to_string()
    } else {
        pointer.trim_start_matches('/').to_string()
    }
}

/// The records of one JSON document: the list at the JSON pointer `records` (empty: the
/// document), every element an object. `base` starts each origin (`people.json`).
pub fn parse_json(base: &str, bytes: &[u8], records: &str) -> Result<Vec<Record>, SourceError> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| error(base, format!("is not JSON: {e}")))?;
    records_of(base, &doc, records)
}

fn records_of(base: &str, doc: &Value, records: &str) -> Result<Vec<Record>, SourceError> {
    let Some(list) = doc.pointer(records) else {
        return Err(error(
            base,
            format!("has nothing at the records pointer `{records}`"),
        ));
    };
    let Value::Array(items) = list else {
        return Err(error(
            base,
            format!(
                "`{}` is {}, not a list of records",
                if records.is_empty() {
                    "the document"
                } else {
                    records
                },
                kind_of(list)
            ),
        ));
    };
    let label = list_label(records);
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let origin = format!("{base}#{label}[{i}]");
            match item {
                Value::Object(fields) => Ok(Record {
                    fields: fields.clone(),
                    origin,
                }),
                other => Err(error(
                    origin,
                    format!("is {}, not an object", kind_of(other)),
                )),
            }
        })
        .collect()
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// An HTTP JSON source, resolved (the token read from its environment variable).
#[derive(Clone)]
pub struct HttpSource {
    /// The first page.
    pub url: String,
    /// The bearer token, if any (never shown).
    pub token: Option<String>,
    /// JSON pointer to each page's records (empty: the page itself).
    pub records: String,
    /// JSON pointer to the next page's URL.
    pub next: Option<String>,
    /// The most bytes one answer may hold.
    pub max_bytes: u64,
    /// How long one request may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSource")
            .field("url", &display_url(&self.url))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("records", &self.records)
            .field("next", &self.next)
            .finish()
    }
}

/// A URL as shown in messages and origins: scheme, host, port and path; no credentials, no
/// query, no fragment.
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let mut s = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
            if let Some(p) = u.port() {
                s.push_str(&format!(":{p}"));
            }
            s.push_str(u.path());
            s
        }
        Err(_) => "(an unreadable URL)".to_string(),
    }
}

/// Reads every page of an HTTP JSON source.
pub async fn read_http(src: &HttpSource) -> Result<Vec<Record>, SourceError> {
    let first = reqwest::Url::parse(&src.url)
        .map_err(|e| error(display_url(&src.url), format!("is not a URL: {e}")))?;
    let client = reqwest::Client::builder()
        .timeout(src.timeout)
        .connect_timeout(src.timeout.min(Duration::from_secs(15)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| error(display_url(&src.url), e.without_url().to_string()))?;
    let mut out = Vec::new();
    let mut visited = HashSet::new();
    let mut url = first.clone();
    for page in 1..=MAX_PAGES {
        if !visited.insert(url.to_string()) {
            return Err(error(
                display_url(url.as_str()),
                "the next page is one already read (a paging loop)",
            ));
        }
        let doc = get_json(&client, src, &url).await?;
        let shown = display_url(url.as_str());
        let base = if page == 1 {
            shown.clone()
        } else {
            format!("{shown} (page {page})")
        };
        out.extend(records_of(&base, &doc, &src.records)?);
        let Some(next_ptr) = &src.next else {
            return Ok(out);
        };
        let next = match doc.pointer(next_ptr) {
            None | Some(Value::Null) => return Ok(out),
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(out),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(error(
                    base,
                    format!(
                        "the next-page pointer `{next_ptr}` holds {}",
                        kind_of(other)
                    ),
                ))
            }
        };
        let next = url
            .join(&next)
            .map_err(|e| error(&base, format!("the next page's URL is unreadable: {e}")))?;
        // Credentials in the next URL would be sent beside the token (two Authorization
        // headers) and are the answer's choice, not the configuration's.
        if (next.username(), next.password()) != (first.username(), first.password()) {
            return Err(error(
                base,
                format!(
                    "the next page's URL ({}) carries credentials of its own; not followed",
                    display_url(next.as_str())
                ),
            ));
        }
        if next.origin() != first.origin() {
            return Err(error(
                base,
                format!(
                    "the next page is on another site ({}); the token is only sent to {}",
                    display_url(next.as_str()),
                    display_url(first.as_str())
                ),
            ));
        }
        url = next;
    }
    Err(error(
        display_url(&src.url),
        format!("more than {MAX_PAGES} pages"),
    ))
}

async fn get_json(
    client: &reqwest::Client,
    src: &HttpSource,
    url: &reqwest::Url,
) -> Result<Value, SourceError> {
    let place = display_url(url.as_str());
    let mut attempt = 0;
    loop {
        let mut req = client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(t) = &src.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| error(&place, format!("GET failed: {}", e.without_url())))?;
        let status = resp.status();
        if status.as_u16() == 429 || status.as_u16() == 503 {
            attempt += 1;
            let wait = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| tenure_vendors::parse_retry_after(v, std::time::SystemTime::now()))
                .unwrap_or(Duration::from_secs(1 << attempt.min(5)));
            if attempt > HTTP_RETRIES || wait > MAX_RETRY_WAIT {
                return Err(error(
                    &place,
                    format!(
                        "answered {status} {} time(s) (asked to wait {}s); try again later",
                        attempt,
                        wait.as_secs()
                    ),
                ));
            }
            tracing::info!(url = %place, status = status.as_u16(), wait_ms = wait.as_millis() as u64, "people source busy; waiting");
            tokio::time::sleep(wait).await;
            continue;
        }
        if !status.is_success() {
            return Err(error(&place, format!("answered {status}")));
        }
        let body = read_body(resp, src.max_bytes, &place).await?;
        return serde_json::from_slice(&body)
            .map_err(|e| error(&place, format!("the answer is not JSON: {e}")));
    }
}

async fn read_body(
    mut resp: reqwest::Response,
    max: u64,
    place: &str,
) -> Result<Vec<u8>, SourceError> {
    let too_large = || {
        error(
            place,
            format!("the answer is larger than {max} bytes (max_bytes)"),
        )
    };
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        error(
            place,
            format!("reading the answer failed: {}", e.without_url()),
        )
    })? {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
