//! The SMTP listener spoken to over TCP line by line, as RFC 5321 describes: command order,
//! dot-unstuffing, AUTH, one copy per Message-ID, and fault replies.

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::{start, Env};

struct Smtp {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Smtp {
    async fn connect(env: &Env) -> Smtp {
        let addr = env.sandbox.smtp_addr().expect("the SMTP listener runs");
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut s = Smtp {
            reader: BufReader::new(r),
            writer: w,
        };
        assert!(s.reply().await.starts_with("220 "));
        s
    }

    /// The whole (possibly multi-line) reply; empty when the server closed the connection.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).await.unwrap() == 0 {
                return all;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn say(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }
}

async fn inbox(env: &Env) -> Vec<Value> {
    let state: Value = env
        .http
        .get(env.url("/_sandbox/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    state["inbox"]["email"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

const MESSAGE: &str = "From: IT <it@msp.example>\r\nTo: ada@contoso.example\r\nSubject: Hi\r\nMessage-ID: <m1@msp.example>\r\n\r\nfirst\r\n..leading dot\r\n.\r\n";

#[tokio::test]
async fn a_session_delivers_a_message_once_per_message_id() {
    let env = start().await;
    let health: Value = env
        .http
        .get(env.url("/_sandbox/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["smtp"], env.sandbox.smtp_addr().unwrap().to_string());
    let mut s = Smtp::connect(&env).await;
    // Out of order: refused.
    assert!(s
        .say("MAIL FROM:<it@msp.example>")
        .await
        .starts_with("503 "));
    let ehlo = s.say("EHLO client.example").await;
    assert!(
        ehlo.contains("250-AUTH PLAIN LOGIN") && ehlo.contains("SIZE"),
        "{ehlo}"
    );
    assert!(s.say("DATA").await.starts_with("503 "));
    assert!(s
        .say("RCPT TO:<ada@contoso.example>")
        .await
        .starts_with("503 "));
    assert!(s
        .say("MAIL FROM:<it@msp.example>")
        .await
        .starts_with("250 "));
    assert!(s.say("RCPT TO:<not-an-address>").await.starts_with("553 "));
    assert!(s
        .say("RCPT TO:<ada@contoso.example>")
        .await
        .starts_with("250 "));
    assert!(s.say("RSET").await.starts_with("250 "));
    assert!(
        s.say("DATA").await.starts_with("503 "),
        "RSET cleared the transaction"
    );
    assert!(s.say("NOOP").await.starts_with("250 "));
    assert!(s.say("HELP").await.starts_with("500 "));
    assert!(s.say(&"X".repeat(5000)).await.starts_with("500 5.5.6"));
    // Wrong credentials, then the right ones (AUTH PLAIN with an initial response).
    assert!(s
        .say("AUTH PLAIN AHRlbnVyZS1zYW5kYm94AHdyb25n")
        .await
        .starts_with("535 "));
    assert!(s
        .say("AUTH PLAIN AHRlbnVyZS1zYW5kYm94AHNhbmRib3gtc2VjcmV0")
        .await
        .starts_with("235 "));
    for _ in 0..2 {
        assert!(s
            .say("MAIL FROM:<it@msp.example>")
            .await
            .starts_with("250 "));
        assert!(s
            .say("RCPT TO:<ada@contoso.example>")
            .await
            .starts_with("250 "));
        assert!(s.say("DATA").await.starts_with("354 "));
        s.writer.write_all(MESSAGE.as_bytes()).await.unwrap();
        assert!(s
            .reply()
            .await
            .starts_with("250 2.0.0 OK: queued as SBX000001"));
    }
    assert!(s.say("QUIT").await.starts_with("221 "));
    let mails = inbox(&env).await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let m = &mails[0];
    assert_eq!(m["transport"], "smtp");
    assert_eq!(m["received"], 2);
    assert_eq!(m["message_id"], "m1@msp.example");
    assert_eq!(m["authenticated_as"], "tenure-sandbox");
    assert_eq!(
        m["envelope"],
        json!({"from": "it@msp.example", "to": ["ada@contoso.example"]})
    );
    assert_eq!(m["text"], "first\r\n.leading dot\r\n");
}

#[tokio::test]
async fn fault_rules_answer_smtp_commands() {
    let env = start().await;
    let set = |rules: Value| {
        let env = &env;
        async move {
            env.http
                .post(env.url("/_sandbox/faults"))
                .json(&json!({"seed": 1, "rules": rules}))
                .send()
                .await
                .unwrap()
        }
    };
    // HTTP codes are refused for SMTP rules, and SMTP codes for HTTP rules.
    assert_eq!(
        set(json!([{"path": "/smtp", "status": 503, "rate": 1.0}]))
            .await
            .status(),
        400
    );
    assert_eq!(
        set(json!([{"path": "/graph.microsoft.com/", "status": 451, "rate": 1.0}]))
            .await
            .status(),
        400
    );
    assert_eq!(
        set(json!([
            {"path": "/smtp", "method": "RCPT", "status": 451, "rate": 1.0},
            {"path": "/smtp", "method": "DATA", "status": 550, "rate": 1.0},
            {"path": "/smtp", "method": "MAIL", "status": 421, "rate": 1.0}
        ]))
        .await
        .status(),
        200
    );
    let mut s = Smtp::connect(&env).await;
    s.say("EHLO c").await;
    assert!(s
        .say("MAIL FROM:<it@msp.example>")
        .await
        .starts_with("421 "));
    assert_eq!(s.reply().await, "", "421 closes the connection");
    set(json!([
        {"path": "/smtp", "method": "RCPT", "status": 451, "rate": 1.0},
        {"path": "/smtp", "method": "DATA", "status": 550, "rate": 1.0}
    ]))
    .await;
    let mut s = Smtp::connect(&env).await;
    s.say("EHLO c").await;
    assert!(s
        .say("MAIL FROM:<it@msp.example>")
        .await
        .starts_with("250 "));
    assert!(s
        .say("RCPT TO:<ada@contoso.example>")
        .await
        .starts_with("451 "));
    set(json!([{"path": "/smtp", "method": "DATA", "status": 550, "rate": 1.0}])).await;
    assert!(s
        .say("RCPT TO:<ada@contoso.example>")
        .await
        .starts_with("250 "));
    assert!(s.say("DATA").await.starts_with("354 "));
    s.writer.write_all(MESSAGE.as_bytes()).await.unwrap();
    assert!(s.reply().await.starts_with("550 "));
    // Dropped without an answer.
    set(json!([{"path": "/smtp", "method": "MAIL", "drop": true, "rate": 1.0}])).await;
    let mut s = Smtp::connect(&env).await;
    s.say("EHLO c").await;
    assert_eq!(s.say("MAIL FROM:<it@msp.example>").await, "");
    assert!(inbox(&env).await.is_empty(), "nothing was delivered");
}
