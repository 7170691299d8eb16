//! `notify.email` over SMTP (`lettre`): a multipart/alternative message (the Markdown source as
//! the text part, its HTML rendering as the HTML part), submitted to a configured relay with
//! STARTTLS, implicit TLS, or (on the loopback interface only) no TLS.
//!
//! **What "sent" means.** SMTP has no way to ask a relay whether it already took a message, so
//! delivery is *at least once*: a reply of 4xx (or a connection that fails before the relay's
//! final 250) is retried, and only the loss of the final 250 itself can make a retry submit the
//! message a second time. Every attempt of one step instance submits the same `Message-ID`
//! (derived from run, step and item), so receivers that keep one copy per Message-ID (Exchange
//! Online, Gmail, the sandbox) show it once, and anyone else can tell the copies apart from
//! other mail. Once an attempt succeeds the engine records it durably and never runs it again.
//!
//! Reply classes: 4xx and connection failures are transient (retried); 5xx, TLS failures and
//! messages that cannot be built are permanent. The relay password is a [`Secret`] used only in
//! `AUTH`; the body (which may hold a password for `password.share` `method: direct`) goes only
//! into the message itself: neither appears in errors, request summaries or logs.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::{Digest, Sha256};
use tenure_steps::{RequestSummary, Requests, StepError};
use tenure_vendors::Secret;

/// How the connection to the relay is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with `STARTTLS` (required, never optional): port 587.
    StartTls,
    /// TLS from the first byte ("SMTPS"): port 465.
    Implicit,
    /// No TLS: only for a relay on the loopback interface (a local relay, the sandbox).
    None,
}

impl SmtpTls {
    /// `starttls`, `tls` (implicit) or `none`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "starttls" => Some(SmtpTls::StartTls),
            "tls" | "implicit" => Some(SmtpTls::Implicit),
            "none" => Some(SmtpTls::None),
            _ => None,
        }
    }
}

/// An SMTP relay `notify.email` submits to.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    /// Host name (checked against the certificate with TLS).
    pub host: String,
    /// Port (587 for STARTTLS, 465 for implicit TLS).
    pub port: u16,
    /// Connection protection.
    pub tls: SmtpTls,
    /// The user for `AUTH`, if the relay needs one.
    pub username: Option<String>,
    /// Its password (read from the environment; never printed).
    pub password: Option<Secret>,
    /// How long one SMTP command may take.
    pub timeout: Duration,
}

/// Why an SMTP configuration is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SmtpConfigError {
    /// `tls = "none"` for a relay that is not on the loopback interface.
    #[error("SMTP without TLS is only allowed to 127.0.0.1 (or ::1, localhost), not to {0}: use tls = \"starttls\" or \"tls\"")]
    PlainOffLoopback(String),
    /// A user without a password, or the reverse.
    #[error("SMTP credentials need both username and password_env")]
    HalfCredentials,
}

impl SmtpConfig {
    /// The sandbox's SMTP listener at `addr`, with the sandbox credentials.
    pub fn sandbox(addr: SocketAddr) -> Self {
        SmtpConfig {
            host: addr.ip().to_string(),
            port: addr.port(),
            tls: SmtpTls::None,
            username: Some(crate::vendors::SANDBOX_CLIENT_ID.to_string()),
            password: Some(Secret::new("sandbox-secret")),
            timeout: Duration::from_secs(30),
        }
    }

    /// Refuses plain SMTP off the loopback interface, and half-given credentials.
    pub fn check(&self) -> Result<(), SmtpConfigError> {
        if self.tls == SmtpTls::None {
            let loopback = self.host.eq_ignore_ascii_case("localhost")
                || self
                    .host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(SmtpConfigError::PlainOffLoopback(self.host.clone()));
            }
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(SmtpConfigError::HalfCredentials);
        }
        Ok(())
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, StepError> {
        self.check()
            .map_err(|e| StepError::permanent("not_configured", e.to_string()))?;
        let tls = match self.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls | SmtpTls::Implicit => {
                let params = TlsParameters::new(self.host.clone()).map_err(|e| {
                    StepError::permanent("smtp_tls", format!("SMTP TLS set-up failed: {e}"))
                })?;
                if self.tls == SmtpTls::StartTls {
                    Tls::Required(params)
                } else {
                    Tls::Wrapper(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        Ok(builder.build())
    }
}

/// One message to submit.
pub struct Email<'a> {
    /// The sender.
    pub from: &'a str,
    /// Recipients.
    pub to: &'a [String],
    /// Copy recipients.
    pub cc: &'a [String],
    /// Subject.
    pub subject: &'a str,
    /// The body in Markdown (the text part).
    pub markdown: &'a str,
    /// The body as HTML (the HTML part).
    pub html: String,
    /// The step instance's idempotency key (`run:step:item`).
    pub key: &'a str,
}

/// The `Message-ID` of the step instance `key`, in the sender's domain: the same for every
/// attempt, unique per instance (`<tenure.` + 32 hex digits of SHA-256 + `@domain>`).
pub fn message_id(key: &str, from: &str) -> String {
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
        .unwrap_or("tenure.invalid");
    format!("<tenure.{}@{domain}>", &digest[..32])
}

fn mailbox(address: &str, what: &str) -> Result<Mailbox, StepError> {
    address.parse().map_err(|_| {
        StepError::permanent(
            "invalid_params",
            format!("{what} `{address}` is not an email address"),
        )
    })
}

/// Builds the message (multipart/alternative: text, then HTML).
pub fn build(email: &Email<'_>) -> Result<(Message, String), StepError> {
    let id = message_id(email.key, email.from);
    let mut builder = Message::builder()
        .from(mailbox(email.from, "`from`")?)
        .subject(email.subject)
        .message_id(Some(id.clone()))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Tenure-Instance"),
            email.key.to_string(),
        ));
    for to in email.to {
        builder = builder.to(mailbox(to, "recipient")?);
    }
    for cc in email.cc {
        builder = builder.cc(mailbox(cc, "copy recipient")?);
    }
    let body = MultiPart::alternative()
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(email.markdown.to_string()),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(email.html.clone()),
        );
    let message = builder.multipart(body).map_err(|e| {
        StepError::permanent("invalid_message", format!("cannot build the message: {e}"))
    })?;
    Ok((message, id))
}

/// Submits `email` to the relay; returns its Message-ID (without angle brackets).
pub async fn send(
    config: &SmtpConfig,
    email: &Email<'_>,
    requests: &Requests,
) -> Result<String, StepError> {
    let transport = config.transport()?;
    let (message, id) = build(email)?;
    let started = Instant::now();
    let path = format!("smtp://{}:{}", config.host, config.port);
    let result = transport.send(message).await;
    let status = match &result {
        Ok(r) => Some(u16::from(r.code())),
        Err(e) => e.status().map(u16::from),
    };
    requests.record(RequestSummary::new("SMTP", &path, status, started));
    match result {
        Ok(_) => Ok(id.trim_start_matches('<').trim_end_matches('>').to_string()),
        Err(e) => Err(classify(&e, &path)),
    }
}

/// 4xx and connection failures are transient; 5xx, TLS and message errors permanent.
fn classify(e: &lettre::transport::smtp::Error, relay: &str) -> StepError {
    let what = format!("send mail through {relay}");
    if let Some(code) = e.status() {
        let code = u16::from(code);
        let text = e.to_string();
        return if e.is_permanent() {
            StepError::permanent(&format!("smtp_{code}"), format!("{what}: {text}"))
        } else {
            StepError::transient(&format!("smtp_{code}"), format!("{what}: {text}"))
        };
    }
    if e.is_tls() {
        return StepError::permanent("smtp_tls", format!("{what}: TLS failed: {e}"));
    }
    if e.is_client() {
        return StepError::permanent("smtp_client", format!("{what}: {e}"));
    }
    StepError::transient("smtp_connection", format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_per_instance_and_in_the_senders_domain() {
        let a = message_id("run1:mail:0", "it@msp.example");
        assert_eq!(a, message_id("run1:mail:0", "it@msp.example"));
        assert_ne!(a, message_id("run1:mail:1", "it@msp.example"));
        assert!(
            a.starts_with("<tenure.") && a.ends_with("@msp.example>"),
            "{a}"
        );
    }

    #[test]
    fn plain_smtp_only_to_the_loopback_interface() {
        let mut c = SmtpConfig::sandbox("127.0.0.1:2525".parse().unwrap());
        assert_eq!(c.check(), Ok(()));
        c.host = "localhost".into();
        assert_eq!(c.check(), Ok(()));
        c.host = "::1".into();
        assert_eq!(c.check(), Ok(()));
        c.host = "smtp.example.com".into();
        assert!(matches!(
            c.check(),
            Err(SmtpConfigError::PlainOffLoopback(_))
        ));
        c.tls = SmtpTls::StartTls;
        assert_eq!(c.check(), Ok(()));
        c.password = None;
        assert_eq!(c.check(), Err(SmtpConfigError::HalfCredentials));
    }

    #[test]
    fn the_message_is_multipart_alternative_with_a_stable_id() {
        let to = vec!["ada@contoso.example".to_string()];
        let email = Email {
            from: "it@msp.example",
            to: &to,
            cc: &[],
            subject: "Welcome",
            markdown: "Hello **Ada**",
            html: "<p>Hello <strong>Ada</strong></p>".into(),
            key: "r:s:0",
        };
        let (m, id) = build(&email).unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains(&format!("Message-ID: {id}")), "{text}");
        assert!(text.contains("X-Tenure-Instance: r:s:0"), "{text}");
        let bad = Email {
            from: "not an address",
            ..email
        };
        assert!(build(&bad).is_err());
    }
}
