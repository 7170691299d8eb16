//! The source readers: CSV quirks (quoted separators, a byte-order mark, CRLF, short and long
//! rows, duplicate or unnamed columns, non-UTF-8), JSON pointers, and an HTTP source against
//! a local axum server on 127.0.0.1 (bearer token, paging, `429` with `Retry-After`, bounded
//! answers, a token never shown in errors).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tenure_people::config::{SourceKind, SourceSpec};
use tenure_people::source::{parse_csv, parse_json, read, read_http, HttpSource};

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[test]
fn csv_quoted_separators_bom_crlf() {
    let text = "\u{feff}employee_number,name , department\r\nE1,\"Lovelace, Ada\",Sales\r\nE2,\"Ray, \"\"Bob\"\"\",\"Ops\r\nand more\"\r\n\r\nE3,Cy,\r\n";
    let rows = parse_csv("people.csv", text.as_bytes(), b',').unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(s(&rows[0].fields["employee_number"]), "E1");
    assert_eq!(s(&rows[0].fields["name"]), "Lovelace, Ada");
    assert_eq!(s(&rows[1].fields["name"]), "Ray, \"Bob\"");
    assert_eq!(s(&rows[1].fields["department"]), "Ops\r\nand more");
    assert_eq!(s(&rows[2].fields["department"]), "");
    assert_eq!(rows[0].origin, "people.csv:2");
    assert_eq!(rows[1].origin, "people.csv:3");
    assert_eq!(rows[2].origin, "people.csv:6");
}

#[test]
fn csv_short_row_lacks_fields_long_row_is_an_error() {
    let rows = parse_csv("p.csv", b"a,b,c\n1,2\n", b',').unwrap();
    assert_eq!(rows[0].fields.len(), 2);
    assert!(!rows[0].fields.contains_key("c"));
    let err = parse_csv("p.csv", b"a,b\n1,2\n1,2,3\n", b',').unwrap_err();
    assert_eq!(
        err.to_string(),
        "p.csv:3: 3 fields but the header names 2 (an unquoted `,`?)"
    );
}

#[test]
fn csv_header_problems() {
    let err = parse_csv("p.csv", b"a,b,a\n1,2,3\n", b',').unwrap_err();
    assert_eq!(err.to_string(), "p.csv:1: two columns are named `a`");
    // A column without a name (a trailing separator in the export) is ignored.
    let rows = parse_csv("p.csv", b"a,b,\n1,2,\n", b',').unwrap();
    assert_eq!(rows[0].fields.len(), 2);
    // Semicolons.
    let rows = parse_csv("p.csv", b"a;b\n1,5;2\n", b';').unwrap();
    assert_eq!(s(&rows[0].fields["a"]), "1,5");
    // Empty file: no records.
    assert!(parse_csv("p.csv", b"", b',').unwrap().is_empty());
}

#[test]
fn csv_not_utf8_is_a_clear_error() {
    let err = parse_csv("p.csv", b"a,b\nJos\xe9,2\n", b',').unwrap_err();
    assert_eq!(err.place, "p.csv:2");
    assert!(err.message.contains("not UTF-8"), "{err}");
}

#[test]
fn json_pointer_and_errors() {
    let doc = br#"{"data":{"people":[{"id":"E1","n":1},{"id":"E2"}]}}"#;
    let rows = parse_json("people.json", doc, "/data/people").unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].origin, "people.json#data/people[1]");
    assert_eq!(rows[0].fields["n"], json!(1));
    let rows = parse_json("people.json", br#"[{"id":"E1"}]"#, "").unwrap();
    assert_eq!(rows[0].origin, "people.json#records[0]");
    let err = parse_json("people.json", doc, "/data").unwrap_err();
    assert_eq!(
        err.to_string(),
        "people.json: `/data` is an object, not a list of records"
    );
    let err = parse_json("people.json", doc, "/nope").unwrap_err();
    assert_eq!(
        err.to_string(),
        "people.json: has nothing at the records pointer `/nope`"
    );
    let err = parse_json("people.json", br#"[{"id":1}, 7]"#, "").unwrap_err();
    assert_eq!(
        err.to_string(),
        "people.json#records[1]: is a number, not an object"
    );
    let err = parse_json("people.json", b"{nope", "").unwrap_err();
    assert!(
        err.to_string().starts_with("people.json: is not JSON:"),
        "{err}"
    );
}

#[tokio::test]
async fn file_sources_are_read_relative_to_the_configuration_and_bounded() {
    let dir = std::env::temp_dir().join(format!("tenure-people-src-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("people.csv"), "id,name\nE1,Ada\n").unwrap();
    let mut spec = SourceSpec {
        kind: SourceKind::Csv,
        path: Some("people.csv".into()),
        url: None,
        token_env: None,
        records: None,
        next: None,
        delimiter: None,
        max_bytes: None,
        timeout_secs: None,
    };
    let rows = read(&spec, &dir).await.unwrap();
    assert_eq!(rows[0].origin, "people.csv:2");
    spec.max_bytes = Some(5);
    let err = read(&spec, &dir).await.unwrap_err();
    assert!(err.message.contains("more than the 5"), "{err}");
    spec.path = Some("missing.csv".into());
    let err = read(&spec, &dir).await.unwrap_err();
    assert!(err.message.starts_with("cannot read"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[derive(Default)]
struct Hr {
    hits: AtomicUsize,
    busy: AtomicUsize,
}

const TOKEN: &str = "s3cret-token-value";

async fn people(
    State(hr): State<Arc<Hr>>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    hr.hits.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    // Page 2 is busy twice before it answers.
    if page == 2 && hr.busy.fetch_add(1, Ordering::SeqCst) < 2 {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            "slow down",
        )
            .into_response();
    }
    let next = match page {
        1 => json!("/people?page=2&key=abc"),
        2 => json!(format!("/people?page=3&key=abc")),
        _ => Value::Null,
    };
    Json(json!({
        "value": [{"id": format!("E{page}01")}, {"id": format!("E{page}02")}],
        "paging": {"next": next}
    }))
    .into_response()
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn http(url: String, token: Option<&str>) -> HttpSource {
    HttpSource {
        url,
        token: token.map(str::to_string),
        records: "/value".into(),
        next: Some("/paging/next".into()),
        max_bytes: 1 << 20,
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn http_pages_with_retry_after() {
    let hr = Arc::new(Hr::default());
    let base = serve(
        Router::new()
            .route("/people", get(people))
            .with_state(hr.clone()),
    )
    .await;
    let rows = read_http(&http(format!("{base}/people?page=1&key=abc"), Some(TOKEN)))
        .await
        .unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| s(&r.fields["id"])).collect();
    assert_eq!(ids, ["E101", "E102", "E201", "E202", "E301", "E302"]);
    assert_eq!(rows[0].origin, format!("{base}/people#value[0]"));
    assert_eq!(rows[3].origin, format!("{base}/people (page 2)#value[1]"));
    // 3 pages + 2 busy answers.
    assert_eq!(hr.hits.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn http_errors_never_show_the_token_or_the_query() {
    let hr = Arc::new(Hr::default());
    let base = serve(
        Router::new()
            .route("/people", get(people))
            .with_state(hr.clone()),
    )
    .await;
    let err = read_http(&http(format!("{base}/people?key=abc"), Some("wrong-token")))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{base}/people: answered 401 Unauthorized")
    );
    let debug = format!("{:?}", http(format!("{base}/people?key=abc"), Some(TOKEN)));
    assert!(!debug.contains(TOKEN) && !debug.contains("abc"), "{debug}");
}

#[tokio::test]
async fn http_busy_too_long_fails_after_a_few_tries() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let base = serve(Router::new().route(
        "/p",
        get(move || {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "0")], "")
            }
        }),
    ))
    .await;
    let err = read_http(&http(format!("{base}/p"), None))
        .await
        .unwrap_err();
    assert!(
        err.message.contains("503 Service Unavailable 4 time(s)"),
        "{err}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn http_bounded_answers_loops_and_other_sites() {
    let base = serve(
        Router::new()
            .route(
                "/big",
                get(|| async { Json(json!({"value": [{"x": "y".repeat(5000)}]})) }),
            )
            .route(
                "/loop",
                get(|| async { Json(json!({"value": [], "paging": {"next": "/loop"}})) }),
            )
            .route(
                "/away",
                get(|| async {
                    Json(json!({"value": [], "paging": {"next": "http://127.0.0.2:9/steal"}}))
                }),
            )
            .route("/notjson", get(|| async { "<html>" })),
    )
    .await;
    let mut src = http(format!("{base}/big"), None);
    src.max_bytes = 1000;
    let err = read_http(&src).await.unwrap_err();
    assert!(err.message.contains("larger than 1000 bytes"), "{err}");
    let err = read_http(&http(format!("{base}/loop"), None))
        .await
        .unwrap_err();
    assert!(err.message.contains("paging loop"), "{err}");
    let err = read_http(&http(format!("{base}/away"), Some(TOKEN)))
        .await
        .unwrap_err();
    assert!(err.message.contains("another site"), "{err}");
    let err = read_http(&http(format!("{base}/notjson"), None))
        .await
        .unwrap_err();
    assert!(err.message.contains("not JSON"), "{err}");
}

#[tokio::test]
async fn http_token_env_missing_is_a_clear_error() {
    let spec = SourceSpec {
        kind: SourceKind::Http,
        path: None,
        url: Some("http://127.0.0.1:9/people?key=abc".into()),
        token_env: Some("TENURE_TEST_PEOPLE_TOKEN_UNSET".into()),
        records: None,
        next: None,
        delimiter: None,
        max_bytes: None,
        timeout_secs: Some(2),
    };
    let err = read(&spec, std::path::Path::new(".")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "http://127.0.0.1:9/people: the environment variable TENURE_TEST_PEOPLE_TOKEN_UNSET (token_env) is not set or empty"
    );
}
