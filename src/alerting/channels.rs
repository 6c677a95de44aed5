//! Transport only: one `Channel` per configured destination, each sending
//! a rendered `Message` once. Retrying, ordering and giving up belong to the
//! outbox (`engine`); the delay between attempts is `backoff` here.
//!
//! Owns: SMTP (lettre), webhooks (JSON with an optional HMAC-SHA256
//! signature, Slack, Discord), the Telegram Bot API and Alertmanager.
//! Must not: decide what to send, or log secrets: errors never carry a URL
//! (a Telegram URL holds the bot token) nor a password.

use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sha2::Sha256;

use crate::config::alerts::{
    AlertsConfig, ChannelConfig, ChannelKind, EmailConfig, SmtpTls, TelegramConfig, WebhookConfig,
    WebhookFormat,
};

use super::render::Message;

/// The signature header of JSON webhooks: `sha256=<hex HMAC-SHA256 of the
/// raw body, keyed with the shared secret>`.
pub const SIGNATURE_HEADER: &str = "X-Valwatch-Signature";

/// Response text kept in an error: enough to read the reason.
const ERROR_BODY_LIMIT: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("channel {channel}: cannot send: {detail}")]
    Transport { channel: String, detail: String },
    #[error("channel {channel}: rejected with HTTP {status}: {body}")]
    Rejected {
        channel: String,
        status: u16,
        body: String,
    },
    #[error("channel {channel}: SMTP: {detail}")]
    Smtp {
        channel: String,
        detail: String,
        permanent: bool,
    },
    #[error("channel {channel}: no answer within {after:?}")]
    Timeout { channel: String, after: Duration },
    #[error("channel {channel}: {detail}")]
    Setup { channel: String, detail: String },
}

impl ChannelError {
    /// Retrying unchanged cannot help: the receiver refused this message
    /// for what it is (4xx other than timeout / rate limit, SMTP 5xx) or the
    /// channel is misconfigured.
    pub fn is_permanent(&self) -> bool {
        match self {
            ChannelError::Rejected { status, .. } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            ChannelError::Smtp { permanent, .. } => *permanent,
            ChannelError::Setup { .. } => true,
            ChannelError::Transport { .. } | ChannelError::Timeout { .. } => false,
        }
    }
}

/// One destination.
pub trait Channel: Send + Sync {
    fn name(&self) -> &str;
    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), ChannelError>>;
}

/// Delay before attempt `attempts + 1` after `attempts` failures: `min`
/// doubled per failure, capped at `max`.
pub fn backoff(attempts: u64, min: Duration, max: Duration) -> Duration {
    let shift = attempts.saturating_sub(1).min(20) as u32;
    min.saturating_mul(1u32 << shift).min(max)
}

/// HMAC-SHA256 of `body` keyed with `secret`, as lowercase hex.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; the error case cannot happen.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

fn cut(s: &str) -> String {
    s.chars().take(ERROR_BODY_LIMIT).collect()
}

struct Http {
    name: String,
    client: reqwest::Client,
}

impl Http {
    fn transport(&self, e: reqwest::Error) -> ChannelError {
        // `without_url`: a URL may hold a token.
        let e = e.without_url();
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail.push_str(&format!(": {s}"));
            source = s.source();
        }
        ChannelError::Transport {
            channel: self.name.clone(),
            detail,
        }
    }

    async fn post(
        &self,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Result<String, ChannelError> {
        let mut req = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(text)
        } else {
            Err(ChannelError::Rejected {
                channel: self.name.clone(),
                status: status.as_u16(),
                body: cut(&text),
            })
        }
    }
}

fn json_bytes(v: &impl serde::Serialize) -> Vec<u8> {
    // Serialising plain data into memory cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

struct Webhook {
    http: Http,
    cfg: WebhookConfig,
}

impl Channel for Webhook {
    fn name(&self) -> &str {
        &self.http.name
    }
    fn send<'a>(&'a self, m: &'a Message) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let body = match self.cfg.format {
                WebhookFormat::Json => json_bytes(m),
                WebhookFormat::Slack => json_bytes(&m.slack_body()),
                WebhookFormat::Discord => json_bytes(&m.discord_body()),
            };
            let mut headers = Vec::new();
            if let Some(secret) = &self.cfg.secret {
                let sig = signature(secret.expose().as_bytes(), &body);
                headers.push((SIGNATURE_HEADER, format!("sha256={sig}")));
            }
            self.http
                .post(self.cfg.url.as_str(), body, &headers)
                .await
                .map(|_| ())
        })
    }
}

struct Telegram {
    http: Http,
    cfg: TelegramConfig,
}

impl Channel for Telegram {
    fn name(&self) -> &str {
        &self.http.name
    }
    fn send<'a>(&'a self, m: &'a Message) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let base = self.cfg.api_url.as_str().trim_end_matches('/');
            let url = format!("{base}/bot{}/sendMessage", self.cfg.bot_token.expose());
            let text = self
                .http
                .post(&url, json_bytes(&m.telegram_body(&self.cfg.chat_id)), &[])
                .await?;
            // The Bot API answers {"ok": true, ...}; anything else is a refusal.
            let ok = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("ok").and_then(|o| o.as_bool()))
                .unwrap_or(false);
            if ok {
                Ok(())
            } else {
                Err(ChannelError::Rejected {
                    channel: self.http.name.clone(),
                    status: 200,
                    body: cut(&text),
                })
            }
        })
    }
}

struct Alertmanager {
    http: Http,
    url: String,
}

impl Channel for Alertmanager {
    fn name(&self) -> &str {
        &self.http.name
    }
    fn send<'a>(&'a self, m: &'a Message) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            self.http
                .post(&self.url, json_bytes(&m.alertmanager_body()), &[])
                .await
                .map(|_| ())
        })
    }
}

/// Marks the start of each certificate in a PEM file.
const PEM_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----";

/// TLS settings for `host`: its certificate must chain to one of the
/// built-in web PKI roots or, when given, to a root certificate in
/// `extra_roots` (PEM), and name `host`. Never anything looser.
fn tls_parameters(host: &str, extra_roots: Option<&[u8]>) -> Result<TlsParameters, String> {
    let mut b = TlsParameters::builder(host.to_owned());
    if let Some(pem) = extra_roots {
        let cert = Certificate::from_pem(pem).map_err(|e| format!("ca_file: {e}"))?;
        b = b.add_root_certificate(cert);
    }
    // `build` turns every added certificate into a trust anchor and fails
    // on one that cannot be.
    b.build().map_err(|e| e.to_string())
}

/// Checks a PEM file of root certificates as `ca_file` takes it: at least
/// one certificate, each usable as a trust anchor. Returns how many.
pub fn check_roots(pem: &[u8]) -> Result<usize, String> {
    let count = String::from_utf8_lossy(pem)
        .matches(PEM_CERTIFICATE)
        .count();
    if count == 0 {
        return Err(format!("no certificate in it (no {PEM_CERTIFICATE} line)"));
    }
    tls_parameters("localhost", Some(pem)).map_err(|e| format!("not a usable certificate: {e}"))?;
    Ok(count)
}

/// lettre's error text, readable: a cause its wrapper repeats is shown
/// once, and an untrusted server certificate says what to do about it.
fn smtp_detail(text: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in text.split(": ") {
        if parts.last() != Some(&p) {
            parts.push(p);
        }
    }
    let mut detail = parts.join(": ");
    if detail.contains("invalid peer certificate") {
        detail.push_str(
            " (the server's TLS certificate is not trusted: if it comes from a \
             private CA, name that CA's certificate in ca_file)",
        );
    }
    detail
}

struct Email {
    name: String,
    cfg: EmailConfig,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Email {
    fn new(name: String, cfg: EmailConfig, timeout: Duration) -> Result<Email, ChannelError> {
        let ca = cfg.ca.as_ref().map(|c| c.pem.as_slice());
        let tls = |host: &str| {
            tls_parameters(host, ca).map_err(|detail| ChannelError::Setup {
                channel: name.clone(),
                detail,
            })
        };
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
            .port(cfg.port)
            .timeout(Some(timeout))
            .tls(match cfg.tls {
                SmtpTls::None => Tls::None,
                SmtpTls::StartTls => Tls::Required(tls(&cfg.host)?),
                SmtpTls::Implicit => Tls::Wrapper(tls(&cfg.host)?),
            });
        let builder = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => {
                builder.credentials(Credentials::new(u.clone(), p.expose().to_owned()))
            }
            _ => builder,
        };
        Ok(Email {
            transport: builder.build(),
            name,
            cfg,
        })
    }

    fn message(&self, m: &Message) -> Result<lettre::Message, ChannelError> {
        let bad = |detail: String| ChannelError::Setup {
            channel: self.name.clone(),
            detail,
        };
        let from = self
            .cfg
            .from
            .parse()
            .map_err(|e| bad(format!("from: {e}")))?;
        let (root, own) = m.thread_ids();
        let mut b = lettre::Message::builder()
            .from(from)
            .subject(m.title())
            .message_id(Some(own.clone()));
        if own != root {
            b = b.in_reply_to(root.clone()).references(root);
        }
        for to in &self.cfg.to {
            b = b.to(to.parse().map_err(|e| bad(format!("to: {e}")))?);
        }
        b.header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(m.text())
            .map_err(|e| bad(e.to_string()))
    }
}

impl Channel for Email {
    fn name(&self) -> &str {
        &self.name
    }
    fn send<'a>(&'a self, m: &'a Message) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let email = self.message(m)?;
            self.transport
                .send(email)
                .await
                .map(|_| ())
                .map_err(|e| ChannelError::Smtp {
                    channel: self.name.clone(),
                    permanent: e.is_permanent(),
                    detail: smtp_detail(&e.to_string()),
                })
        })
    }
}

/// Writes each notification as one JSON line to standard output.
struct Log {
    name: String,
}

impl Channel for Log {
    fn name(&self) -> &str {
        &self.name
    }
    fn send<'a>(&'a self, m: &'a Message) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            use std::io::Write;
            let line = serde_json::to_string(m).unwrap_or_default();
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}").map_err(|e| ChannelError::Transport {
                channel: self.name.clone(),
                detail: e.to_string(),
            })
        })
    }
}

/// Builds the channel for one configuration entry.
pub fn build(
    cfg: &ChannelConfig,
    send_timeout: Duration,
) -> Result<Box<dyn Channel>, ChannelError> {
    let name = cfg.name.clone();
    let http = || -> Result<Http, ChannelError> {
        let client = reqwest::Client::builder()
            .timeout(send_timeout)
            // A redirect could carry a signed body or a token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ChannelError::Setup {
                channel: name.clone(),
                detail: e.without_url().to_string(),
            })?;
        Ok(Http {
            name: name.clone(),
            client,
        })
    };
    Ok(match &cfg.kind {
        ChannelKind::Webhook(w) => Box::new(Webhook {
            http: http()?,
            cfg: w.clone(),
        }),
        ChannelKind::Telegram(t) => Box::new(Telegram {
            http: http()?,
            cfg: t.clone(),
        }),
        ChannelKind::Alertmanager(u) => Box::new(Alertmanager {
            http: http()?,
            url: format!("{}/api/v2/alerts", u.as_str().trim_end_matches('/')),
        }),
        ChannelKind::Email(e) => Box::new(Email::new(name.clone(), e.clone(), send_timeout)?),
        ChannelKind::Log => Box::new(Log { name: name.clone() }),
    })
}

/// One attempt with the configured time limit.
pub async fn send_once(
    channel: &dyn Channel,
    message: &Message,
    limit: Duration,
) -> Result<(), ChannelError> {
    match tokio::time::timeout(limit, channel.send(message)).await {
        Ok(r) => r,
        Err(_) => Err(ChannelError::Timeout {
            channel: channel.name().to_owned(),
            after: limit,
        }),
    }
}

/// Sends one test notification through every configured channel at once
/// and reports, per channel name, whether it was accepted.
pub async fn test_alert(cfg: &AlertsConfig) -> Vec<(String, Result<(), ChannelError>)> {
    let message = Message::test(SystemTime::now());
    let limit = cfg.delivery.send_timeout;
    let sends = cfg.channels.iter().map(|c| {
        let message = &message;
        async move {
            let result = match build(c, limit) {
                Ok(ch) => send_once(ch.as_ref(), message, limit).await,
                Err(e) => Err(e),
            };
            (c.name.clone(), result)
        }
    });
    futures::future::join_all(sends).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_errors_read_once_and_say_what_to_do_about_a_certificate() {
        assert_eq!(
            smtp_detail(
                "Connection error: Connection error: invalid peer certificate: UnknownIssuer"
            ),
            "Connection error: invalid peer certificate: UnknownIssuer (the server's TLS \
             certificate is not trusted: if it comes from a private CA, name that CA's \
             certificate in ca_file)"
        );
        assert_eq!(
            smtp_detail("permanent error (535): 5.7.8 Authentication credentials invalid"),
            "permanent error (535): 5.7.8 Authentication credentials invalid"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let min = Duration::from_secs(10);
        let max = Duration::from_secs(600);
        let got: Vec<u64> = (1..=8).map(|a| backoff(a, min, max).as_secs()).collect();
        assert_eq!(got, [10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(backoff(u64::MAX, min, max), max);
    }

    #[test]
    fn signature_matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_refusals_of_the_message_itself_are_permanent() {
        let rejected = |status| ChannelError::Rejected {
            channel: "c".into(),
            status,
            body: String::new(),
        };
        assert!(rejected(400).is_permanent());
        assert!(!rejected(429).is_permanent());
        assert!(!rejected(503).is_permanent());
        assert!(!ChannelError::Timeout {
            channel: "c".into(),
            after: Duration::from_secs(1)
        }
        .is_permanent());
    }
}
