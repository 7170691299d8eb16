//! An SMTP listener (the RFC 5321 subset a submission client uses): `EHLO`/`HELO`, `AUTH PLAIN`
//! and `AUTH LOGIN` (the sandbox credentials), `MAIL FROM`, `RCPT TO`, `DATA` with
//! dot-unstuffing, `RSET`, `NOOP`, `VRFY`, `QUIT`. Received messages are parsed (`mail-parser`:
//! from, to, cc, subject, Message-ID, text and HTML parts) into the sandbox inbox next to the
//! Graph `sendMail` messages.
//!
//! Like Exchange Online and Gmail, the mailbox keeps one copy per `Message-ID`: a message sent
//! again with the same id (a client retrying after a lost answer) is counted in the copy's
//! `received` but not delivered twice. Fault rules whose path starts with `/smtp` answer
//! `MAIL`, `RCPT` or the end of `DATA` (the rule's `method`, or all three) with their status
//! (421 closes the connection, 450/451/452 are transient, 550/552/553/554 permanent), add
//! latency, or drop the connection without an answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::shared::{now_rfc3339, Shared};

/// The longest command line accepted (RFC 5321 §4.5.3.1.4: 512 octets; a little slack).
const MAX_LINE: usize = 2048;
/// The largest message accepted (advertised as `SIZE`).
pub const MAX_MESSAGE: usize = 10 * 1024 * 1024;
/// How long an idle client is kept.
const IDLE: Duration = Duration::from_secs(60);
const HOST: &str = "smtp.sandbox.tenure";

/// Accepts SMTP connections on `listener` until the task is dropped.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = Session::new(shared, peer).run(stream).await;
        });
    }
}

/// One line read from the client.
enum Line {
    Text(Vec<u8>),
    TooLong,
    Closed,
}

async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>, limit: usize) -> Line {
    let mut buf = Vec::new();
    let mut overflow = false;
    loop {
        let read = tokio::time::timeout(IDLE, r.fill_buf()).await;
        let Ok(Ok(available)) = read else {
            return Line::Closed;
        };
        if available.is_empty() {
            return Line::Closed;
        }
        let (take, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        // Past the limit, the rest of the line is skipped, then reported.
        overflow = overflow || buf.len() + take > limit;
        if !overflow {
            buf.extend_from_slice(&available[..take]);
        }
        r.consume(take);
        if done {
            if overflow {
                return Line::TooLong;
            }
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
            return Line::Text(buf);
        }
    }
}

/// The state of one connection (RFC 5321 §4.1.4 ordering).
struct Session {
    shared: Arc<Shared>,
    peer: SocketAddr,
    greeted: bool,
    authenticated: Option<String>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

/// What a command answers, and whether the connection then closes.
struct Answer {
    text: String,
    close: bool,
}

fn say(text: impl Into<String>) -> Answer {
    Answer {
        text: text.into(),
        close: false,
    }
}

/// The address inside `FROM:<a@b> PARAMS` / `TO:<a@b>`.
fn path_arg(rest: &str, keyword: &str) -> Option<String> {
    let rest = rest.trim_start();
    if rest.len() < keyword.len() || !rest[..keyword.len()].eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest[keyword.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_string())
}

fn mailbox_ok(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !address.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl Session {
    fn new(shared: Arc<Shared>, peer: SocketAddr) -> Self {
        Session {
            shared,
            peer,
            greeted: false,
            authenticated: None,
            mail_from: None,
            rcpt_to: Vec::new(),
        }
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }

    async fn run(mut self, stream: TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        write
            .write_all(format!("220 {HOST} ESMTP Tenure sandbox\r\n").as_bytes())
            .await?;
        loop {
            let line = match read_line(&mut reader, MAX_LINE).await {
                Line::Closed => return Ok(()),
                Line::TooLong => {
                    write.write_all(b"500 5.5.6 Line too long\r\n").await?;
                    continue;
                }
                Line::Text(l) => String::from_utf8_lossy(&l).into_owned(),
            };
            let (verb, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            let verb = verb.to_ascii_uppercase();
            let answer = match verb.as_str() {
                "EHLO" | "HELO" if rest.trim().is_empty() => say("501 5.5.4 Syntax: EHLO hostname"),
                "EHLO" => {
                    self.greeted = true;
                    self.reset();
                    say(format!(
                        "250-{HOST} greets {}\r\n250-8BITMIME\r\n250-SIZE {MAX_MESSAGE}\r\n250-AUTH PLAIN LOGIN\r\n250 ENHANCEDSTATUSCODES",
                        rest.trim()
                    ))
                }
                "HELO" => {
                    self.greeted = true;
                    self.reset();
                    say(format!("250 {HOST}"))
                }
                "AUTH" => self.auth(rest, &mut reader, &mut write).await?,
                "MAIL" => self.mail(rest).await,
                "RCPT" => self.rcpt(rest).await,
                "DATA" => {
                    if self.rcpt_to.is_empty() {
                        say("503 5.5.1 Error: need RCPT command")
                    } else {
                        write
                            .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                            .await?;
                        match self.data(&mut reader).await {
                            Some(answer) => answer,
                            None => return Ok(()),
                        }
                    }
                }
                "RSET" => {
                    self.reset();
                    say("250 2.0.0 OK")
                }
                "NOOP" => say("250 2.0.0 OK"),
                "VRFY" => say("252 2.0.0 Cannot VRFY user, but will accept message"),
                "QUIT" => Answer {
                    text: format!("221 2.0.0 {HOST} closing connection"),
                    close: true,
                },
                "STARTTLS" => say("454 4.7.0 TLS not available"),
                _ => say("500 5.5.2 Error: command not recognized"),
            };
            if answer.text.is_empty() {
                // A dropped connection (fault): no answer at all.
                return Ok(());
            }
            write.write_all(answer.text.as_bytes()).await?;
            write.write_all(b"\r\n").await?;
            if answer.close {
                return Ok(());
            }
        }
    }

    /// `AUTH PLAIN [initial]` or `AUTH LOGIN`, against the sandbox credentials.
    async fn auth<R: AsyncRead + Unpin, W: tokio::io::AsyncWrite + Unpin>(
        &mut self,
        rest: &str,
        reader: &mut BufReader<R>,
        write: &mut W,
    ) -> std::io::Result<Answer> {
        if !self.greeted {
            return Ok(say("503 5.5.1 Error: send EHLO first"));
        }
        if self.authenticated.is_some() {
            return Ok(say("503 5.5.1 Error: already authenticated"));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut words = rest.split_whitespace();
        let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
        let initial = words.next().map(str::to_string);
        let mut ask = async |prompt: &str| -> std::io::Result<Option<Vec<u8>>> {
            write
                .write_all(format!("334 {prompt}\r\n").as_bytes())
                .await?;
            Ok(match read_line(reader, MAX_LINE).await {
                Line::Text(t) => b64.decode(&t).ok(),
                _ => None,
            })
        };
        let (user, password) = match mechanism.as_str() {
            "PLAIN" => {
                let decoded = match initial {
                    Some(i) => b64.decode(i).ok(),
                    None => ask("").await?,
                };
                let Some(decoded) = decoded else {
                    return Ok(say("501 5.5.2 Cannot decode response"));
                };
                let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
                if parts.len() != 3 {
                    return Ok(say("501 5.5.2 Cannot decode response"));
                }
                (
                    String::from_utf8_lossy(parts[1]).into_owned(),
                    String::from_utf8_lossy(parts[2]).into_owned(),
                )
            }
            "LOGIN" => {
                let user = match initial {
                    Some(i) => b64.decode(i).ok(),
                    None => ask("VXNlcm5hbWU6").await?,
                };
                let Some(user) = user else {
                    return Ok(say("501 5.5.2 Cannot decode response"));
                };
                let Some(password) = ask("UGFzc3dvcmQ6").await? else {
                    return Ok(say("501 5.5.2 Cannot decode response"));
                };
                (
                    String::from_utf8_lossy(&user).into_owned(),
                    String::from_utf8_lossy(&password).into_owned(),
                )
            }
            _ => return Ok(say("504 5.5.4 Unrecognized authentication type")),
        };
        let ok = self
            .shared
            .read(|w| user == w.credentials.client_id && password == w.credentials.client_secret);
        Ok(if ok {
            self.authenticated = Some(user);
            say("235 2.7.0 Authentication successful")
        } else {
            say("535 5.7.8 Error: authentication failed")
        })
    }

    /// A fault rule for `verb`, if one hits: the answer it makes.
    async fn fault(&self, verb: &str) -> Option<Answer> {
        let rule = self
            .shared
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .hit_smtp(verb)?;
        if rule.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(rule.latency_ms)).await;
        }
        if rule.drop {
            return Some(say(""));
        }
        let status = rule.status?;
        Some(Answer {
            text: match status {
                421 => format!("421 4.3.2 {HOST} Service not available, closing transmission channel (sandbox fault)"),
                450 => "450 4.2.1 Mailbox unavailable, try again later (sandbox fault)".into(),
                451 => "451 4.3.0 Local error in processing, try again later (sandbox fault)".into(),
                452 => "452 4.3.1 Insufficient system storage (sandbox fault)".into(),
                552 => "552 5.3.4 Message size exceeds fixed maximum message size (sandbox fault)".into(),
                553 => "553 5.1.3 Mailbox name not allowed (sandbox fault)".into(),
                554 => "554 5.7.1 Message rejected as spam (sandbox fault)".into(),
                _ => "550 5.7.1 Mailbox unavailable: message refused (sandbox fault)".into(),
            },
            close: status == 421,
        })
    }

    async fn mail(&mut self, rest: &str) -> Answer {
        if !self.greeted {
            return say("503 5.5.1 Error: send HELO/EHLO first");
        }
        if self.mail_from.is_some() {
            return say("503 5.5.1 Error: nested MAIL command");
        }
        let Some(from) = path_arg(rest, "FROM:") else {
            return say("501 5.5.4 Syntax: MAIL FROM:<address>");
        };
        if !from.is_empty() && !mailbox_ok(&from) {
            return say(format!("553 5.1.7 <{from}>: Sender address rejected"));
        }
        if let Some(size) = rest
            .split_whitespace()
            .find_map(|p| p.strip_prefix("SIZE=").or_else(|| p.strip_prefix("size=")))
            .and_then(|s| s.parse::<usize>().ok())
        {
            if size > MAX_MESSAGE {
                return say("552 5.3.4 Message size exceeds fixed limit");
            }
        }
        if let Some(answer) = self.fault("MAIL").await {
            return answer;
        }
        self.mail_from = Some(from);
        say("250 2.1.0 OK")
    }

    async fn rcpt(&mut self, rest: &str) -> Answer {
        if self.mail_from.is_none() {
            return say("503 5.5.1 Error: need MAIL command");
        }
        let Some(to) = path_arg(rest, "TO:") else {
            return say("501 5.5.4 Syntax: RCPT TO:<address>");
        };
        if !mailbox_ok(&to) {
            return say(format!("553 5.1.3 <{to}>: Recipient address rejected"));
        }
        if self.rcpt_to.len() >= 100 {
            return say("452 4.5.3 Error: too many recipients");
        }
        if let Some(answer) = self.fault("RCPT").await {
            return answer;
        }
        self.rcpt_to.push(to);
        say("250 2.1.5 OK")
    }

    /// Reads the message up to the lone dot, un-stuffing leading dots; `None` when the client
    /// went away.
    async fn data<R: AsyncRead + Unpin>(&mut self, reader: &mut BufReader<R>) -> Option<Answer> {
        let mut message = Vec::new();
        let mut too_big = false;
        loop {
            let line = match read_line(reader, MAX_MESSAGE).await {
                Line::Closed => return None,
                Line::TooLong => {
                    too_big = true;
                    continue;
                }
                Line::Text(l) => l,
            };
            if line == b"." {
                break;
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            if message.len() + line.len() + 2 > MAX_MESSAGE {
                too_big = true;
                continue;
            }
            message.extend_from_slice(line);
            message.extend_from_slice(b"\r\n");
        }
        let envelope_from = self.mail_from.take().unwrap_or_default();
        let envelope_to = std::mem::take(&mut self.rcpt_to);
        if too_big {
            return Some(say("552 5.3.4 Message size exceeds fixed limit"));
        }
        if let Some(answer) = self.fault("DATA").await {
            return Some(answer);
        }
        let parsed = parse(&message);
        let Some(mut parsed) = parsed else {
            return Some(say("554 5.6.0 Message is not a valid RFC 5322 message"));
        };
        let id = parsed["message_id"].as_str().map(str::to_string);
        parsed["envelope"] = json!({"from": envelope_from, "to": envelope_to});
        parsed["authenticated_as"] = json!(self.authenticated);
        parsed["peer"] = json!(self.peer.ip().to_string());
        let queued = self.shared.write(|w| deliver(w, parsed, id));
        Some(say(format!("250 2.0.0 OK: queued as {queued}")))
    }
}

/// Keeps the message in the inbox, once per Message-ID; returns its queue id.
fn deliver(w: &mut crate::model::World, mut message: Value, id: Option<String>) -> String {
    if let Some(id) = &id {
        if let Some(existing) = w
            .inbox
            .email
            .iter_mut()
            .find(|m| m["transport"] == "smtp" && m["message_id"].as_str() == Some(id))
        {
            let received = existing["received"].as_u64().unwrap_or(1) + 1;
            existing["received"] = json!(received);
            return existing["queue_id"].as_str().unwrap_or("").to_string();
        }
    }
    let queue_id = format!("SBX{:06}", w.inbox.email.len() + 1);
    message["queue_id"] = json!(queue_id);
    message["received"] = json!(1);
    message["received_at"] = json!(now_rfc3339());
    w.inbox.email.push(message);
    w.created(format!("smtp/{}", id.unwrap_or_else(|| queue_id.clone())));
    queue_id
}

/// The parts of a message the inbox shows.
fn parse(raw: &[u8]) -> Option<Value> {
    let m = mail_parser::MessageParser::default().parse(raw)?;
    let addresses = |a: Option<&mail_parser::Address>| -> Vec<String> {
        a.into_iter()
            .flat_map(|a| a.iter())
            .filter_map(|x| x.address().map(str::to_string))
            .collect()
    };
    let header = |name: &str| {
        m.header_raw(name)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    Some(json!({
        "transport": "smtp",
        "from": addresses(m.from()).into_iter().next(),
        "to": addresses(m.to()),
        "cc": addresses(m.cc()),
        "subject": m.subject(),
        "message_id": m.message_id(),
        "content_type": header("Content-Type").split(';').next().unwrap_or("").trim(),
        "text": m.body_text(0).map(|t| t.into_owned()),
        "html": m.body_html(0).map(|t| t.into_owned()),
        "headers": {"X-Tenure-Instance": m.header_raw("X-Tenure-Instance").map(str::trim)},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_paths_and_addresses() {
        assert_eq!(
            path_arg("FROM:<a@b.example> SIZE=10", "FROM:").as_deref(),
            Some("a@b.example")
        );
        assert_eq!(path_arg("from: <>", "FROM:").as_deref(), Some(""));
        assert_eq!(path_arg("TO:a@b.example", "TO:"), None);
        assert!(mailbox_ok("ada@contoso.example"));
        assert!(!mailbox_ok("ada"));
        assert!(!mailbox_ok("a da@contoso.example"));
    }

    #[test]
    fn a_multipart_message_is_parsed() {
        let raw = b"From: IT <it@msp.example>\r\nTo: ada@contoso.example\r\nSubject: Welcome\r\nMessage-ID: <x1@msp.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello **Ada**\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <strong>Ada</strong></p>\r\n--b--\r\n";
        let v = parse(raw).unwrap();
        assert_eq!(v["from"], "it@msp.example");
        assert_eq!(v["to"], json!(["ada@contoso.example"]));
        assert_eq!(v["subject"], "Welcome");
        assert_eq!(v["message_id"], "x1@msp.example");
        assert_eq!(v["content_type"], "multipart/alternative");
        assert!(v["text"].as_str().unwrap().contains("Hello **Ada**"));
        assert!(v["html"].as_str().unwrap().contains("<strong>Ada</strong>"));
    }
}
