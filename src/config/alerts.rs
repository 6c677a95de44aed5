//! The `[alerts]` section: rule thresholds, delivery timing and the
//! channels (`[[alerts.email]]`, `[[alerts.webhook]]`, `[[alerts.telegram]]`,
//! `[[alerts.alertmanager]]`, `[[alerts.log]]`).
//!
//! Owns: defaults, validation (every problem, by dotted key) and secrets.
//! A secret is given inline or, better, as the name of an environment
//! variable (`password_env`, `secret_env`, `bot_token_env`); it is held in
//! `Secret`, whose `Debug` never shows it. Must not: open connections.

use std::time::Duration;

use serde::Deserialize;

use super::Problem;

/// Consecutive missed final attestations that make a validator down (the
/// status board's threshold, see `status::DEFAULT_FAIL_AFTER_MISSED`).
pub const DEFAULT_DOWN_AFTER_MISSED: u32 = crate::status::DEFAULT_FAIL_AFTER_MISSED;

/// Canonical blocks after the duty slot without the vote before the early
/// warning may fire: a healthy vote is in the next block, a vote that three
/// blocks skipped is almost never included later (and liveness must agree).
pub const DEFAULT_EARLY_BLOCKS: u32 = 3;

/// Final epochs over which attestation performance is judged: 8 epochs
/// (~51 min on mainnet) smooth out one late block without hiding a trend.
pub const DEFAULT_PERFORMANCE_WINDOW: u32 = 8;

/// Share of included votes that must be timely with correct head and
/// target. Network-wide late blocks cost a healthy validator a few wrong
/// heads per hour; below 80 % something is wrong locally.
pub const DEFAULT_PERFORMANCE_MIN: f64 = 0.8;
/// Five points below the network: on mainnet the network runs at 97–99 %,
/// so a group at 92 % is losing income the network is not.
pub const DEFAULT_UNDERPERFORMING_MARGIN: f64 = 0.05;
/// Eight final epochs (51 minutes on mainnet): long enough that a few
/// unlucky late votes do not page, short enough to matter the same night.
pub const DEFAULT_UNDERPERFORMING_EPOCHS: u32 = 8;

/// Share of sync-committee slots that must carry the member's signature.
pub const DEFAULT_SYNC_MIN: f64 = 0.8;

/// Consecutive epochs of falling balance before alerting: one falling
/// epoch is a single missed vote, three is a trend.
pub const DEFAULT_BALANCE_FALLING_EPOCHS: u32 = 3;

/// Epochs between the finalized checkpoint and the epoch it speaks for
/// (the wall clock's, or the one before while the epoch's first block is
/// missing: `alerting::policy::Tracker::apply_chain`) above which the chain
/// counts as not finalizing. Normal is 2; 3 on a chain barely above 2/3
/// participation (the lodestar devnet); above 4 the spec starts the
/// inactivity leak (MIN_EPOCHS_TO_INACTIVITY_PENALTY = 4).
pub const DEFAULT_NO_FINALITY_EPOCHS: u64 = 4;

/// A node problem must last this long before it is an incident: a node
/// restart or one dropped health check is not worth a page.
pub const DEFAULT_NODE_GRACE: Duration = Duration::from_secs(120);

/// Reminders for an incident that lasts: hourly keeps it visible without
/// drowning the channel.
pub const DEFAULT_REMINDER_INTERVAL: Duration = Duration::from_secs(3600);

/// First retry delay of a failed delivery; doubled per attempt up to
/// `DEFAULT_RETRY_MAX`.
pub const DEFAULT_RETRY_MIN: Duration = Duration::from_secs(10);
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(600);

/// A delivery still failing this long after its incident resolved is
/// abandoned (and recorded as such): news of a day-old incident helps nobody.
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

/// One delivery attempt may take this long (SMTP handshakes included).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// The public Telegram Bot API.
pub const DEFAULT_TELEGRAM_API: &str = "https://api.telegram.org";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    pub down_after_missed: Option<u32>,
    pub early_warning: Option<bool>,
    pub early_blocks: Option<u32>,
    pub performance_window: Option<u32>,
    pub performance_min: Option<f64>,
    pub underperforming_margin: Option<f64>,
    pub underperforming_epochs: Option<u32>,
    pub sync_min: Option<f64>,
    pub balance_falling_epochs: Option<u32>,
    pub no_finality_epochs: Option<u64>,
    pub node_grace: Option<String>,
    pub stall_limit: Option<String>,
    /// A duration, or "off".
    pub reminder_interval: Option<String>,
    /// The same as `reminder_interval`, under Alertmanager's name.
    pub repeat_interval: Option<String>,
    /// How long to gather a group's validators before the first
    /// notification (default: one epoch of the chain).
    pub group_wait: Option<String>,
    /// At most one update per incident this often (default: one epoch).
    pub group_interval: Option<String>,
    /// The status page's address, linked from every notification.
    pub status_url: Option<String>,
    /// A block explorer's page of one validator, `{index}` replaced by its
    /// index (e.g. `https://beaconcha.in/validator/{index}`).
    pub explorer_url: Option<String>,
    pub retry_min: Option<String>,
    pub retry_max: Option<String>,
    pub give_up_after: Option<String>,
    pub send_timeout: Option<String>,
    #[serde(default)]
    pub email: Vec<RawEmail>,
    #[serde(default)]
    pub webhook: Vec<RawWebhook>,
    #[serde(default)]
    pub telegram: Vec<RawTelegram>,
    #[serde(default)]
    pub alertmanager: Vec<RawAlertmanager>,
    #[serde(default)]
    pub log: Vec<RawLog>,
}

impl RawAlerts {
    /// Makes relative file paths (`ca_file`) relative to `base`, the
    /// directory of the configuration file, as `validators_file` is.
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        for e in &mut self.email {
            if let Some(f) = &mut e.ca_file {
                if std::path::Path::new(f.as_str()).is_relative() {
                    *f = base.join(&*f).display().to_string();
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub name: Option<String>,
    pub smtp_url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    /// PEM file with extra trusted root certificates (a private CA).
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub name: Option<String>,
    pub url: Option<String>,
    pub format: Option<String>,
    pub secret: Option<String>,
    pub secret_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelegram {
    pub name: Option<String>,
    pub bot_token: Option<String>,
    pub bot_token_env: Option<String>,
    pub chat_id: Option<String>,
    pub api_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertmanager {
    pub name: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub name: Option<String>,
}

/// A secret value: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Thresholds of the rules.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleConfig {
    pub down_after_missed: u32,
    /// Fire `validator_down` on early evidence (see `early_blocks`).
    pub early_warning: bool,
    pub early_blocks: u32,
    pub performance_window: u32,
    pub performance_min: f64,
    /// A group whose attestation participation stays this far (a share,
    /// 0.05 = 5 points) below the network's for `underperforming_epochs`
    /// final epochs in a row is `underperforming` (issue 14).
    pub underperforming_margin: f64,
    pub underperforming_epochs: u32,
    pub sync_min: f64,
    pub balance_falling_epochs: u32,
    pub no_finality_epochs: u64,
    pub node_grace: Duration,
    /// None: three epochs of the chain (`status::DEFAULT_STALL_EPOCHS`).
    pub stall_limit: Option<Duration>,
    /// None: no reminders.
    pub reminder_interval: Option<Duration>,
}

/// Timing of the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryConfig {
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub give_up_after: Duration,
    pub send_timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP (only for a relay on the same host or network).
    None,
    /// Plain connection upgraded with STARTTLS (required).
    StartTls,
    /// TLS from the first byte (`smtps://`, usually port 465).
    Implicit,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    /// Extra trusted roots for TLS, besides the built-in web PKI roots.
    pub ca: Option<CaFile>,
}

/// The `ca_file` of an email channel, read once at configuration time so a
/// later change or removal of the file cannot break delivery mid-run.
#[derive(Clone, PartialEq, Eq)]
pub struct CaFile {
    pub path: std::path::PathBuf,
    /// The file's PEM text; holds at least one parseable certificate.
    pub pem: Vec<u8>,
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The path says which file; its bytes would only flood the output.
        write!(f, "CaFile({})", self.path.display())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    /// valwatch's versioned payload (`alerting::Message`).
    Json,
    Slack,
    Discord,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: url::Url,
    pub format: WebhookFormat,
    /// HMAC-SHA256 key for the `X-Valwatch-Signature` header.
    pub secret: Option<Secret>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelegramConfig {
    pub api_url: url::Url,
    pub bot_token: Secret,
    pub chat_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    Email(EmailConfig),
    Webhook(WebhookConfig),
    Telegram(TelegramConfig),
    /// Base URL; alerts go to `{url}/api/v2/alerts`.
    Alertmanager(url::Url),
    Log,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Unique; names the channel in the outbox (keep it stable across
    /// restarts: pending deliveries are found by it).
    pub name: String,
    pub kind: ChannelKind,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AlertsConfig {
    pub rules: RuleConfig,
    pub delivery: DeliveryConfig,
    pub channels: Vec<ChannelConfig>,
    pub rhythm: Rhythm,
    pub links: Links,
}

/// When notifications go out (Alertmanager's rhythm; reminders are
/// `RuleConfig::reminder_interval`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rhythm {
    /// How long a new per-group incident gathers validators before its
    /// first notification. None: one epoch of the chain, because a group's
    /// duties are spread over the epoch's slots, so a client that stops
    /// shows in its validators one slot after another for a whole epoch:
    /// waiting that long makes it one notification instead of one per slot.
    pub group_wait: Option<Duration>,
    /// At most one update (more down, some back) per incident this often.
    /// None: one epoch of the chain, the pace at which new evidence comes.
    pub group_interval: Option<Duration>,
}

/// Links in notifications.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    pub status_url: Option<String>,
    /// Contains `{index}`.
    pub explorer_url: Option<String>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        let mut problems = Vec::new();
        validate(RawAlerts::default(), &|_| None, &mut problems)
    }
}

fn problem(problems: &mut Vec<Problem>, key: String, message: impl Into<String>) {
    problems.push(Problem {
        key,
        message: message.into(),
    });
}

fn duration(
    problems: &mut Vec<Problem>,
    key: &str,
    value: Option<&str>,
    default: Duration,
) -> Duration {
    match value {
        None => default,
        Some(v) => match humantime::parse_duration(v) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                problem(problems, key.into(), "must be longer than zero");
                default
            }
            Err(e) => {
                problem(
                    problems,
                    key.into(),
                    format!("`{v}` is not a duration such as \"12s\" or \"2h\": {e}"),
                );
                default
            }
        },
    }
}

fn share(problems: &mut Vec<Problem>, key: &str, value: Option<f64>, default: f64) -> f64 {
    match value {
        None => default,
        Some(v) if (0.0..=1.0).contains(&v) => v,
        Some(_) => {
            problem(problems, key.into(), "must be between 0 and 1");
            default
        }
    }
}

/// The inline value, or the variable named by `*_env`; never both.
fn secret(
    problems: &mut Vec<Problem>,
    key: &str,
    inline: Option<String>,
    env_name: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Secret> {
    match (inline, env_name) {
        (Some(_), Some(_)) => {
            problem(
                problems,
                key.into(),
                format!("give `{key}` or `{key}_env`, not both"),
            );
            None
        }
        (Some(v), None) => Some(Secret(v)),
        (None, Some(var)) => match env(&var) {
            Some(v) if !v.is_empty() => Some(Secret(v)),
            _ => {
                problem(
                    problems,
                    format!("{key}_env"),
                    format!("environment variable {var} is not set"),
                );
                None
            }
        },
        (None, None) => None,
    }
}

fn http_url(problems: &mut Vec<Problem>, key: &str, value: Option<&str>) -> Option<url::Url> {
    let Some(v) = value else {
        problem(problems, key.into(), "missing");
        return None;
    };
    match url::Url::parse(v) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Some(u),
        // The URL may hold a token: never echo it.
        Ok(_) => {
            problem(problems, key.into(), "must be an http:// or https:// URL");
            None
        }
        Err(e) => {
            problem(problems, key.into(), format!("not a URL: {e}"));
            None
        }
    }
}

fn mailbox_ok(s: &str) -> bool {
    s.parse::<lettre::message::Mailbox>().is_ok()
}

/// Reads a PEM file of trusted root certificates: it must be readable and
/// every certificate in it usable as a trust anchor (at least one).
fn ca_file(problems: &mut Vec<Problem>, key: &str, path: String) -> Option<CaFile> {
    let pem = match std::fs::read(&path) {
        Ok(pem) => pem,
        Err(e) => {
            problem(problems, key.into(), format!("cannot read {path}: {e}"));
            return None;
        }
    };
    match crate::alerting::channels::check_roots(&pem) {
        Ok(_) => Some(CaFile {
            path: path.into(),
            pem,
        }),
        Err(why) => {
            problem(problems, key.into(), format!("{path}: {why}"));
            None
        }
    }
}

/// `smtp://host[:port][?tls=starttls|none]` or `smtps://host[:port]`.
fn smtp_url(
    problems: &mut Vec<Problem>,
    key: &str,
    value: Option<&str>,
) -> Option<(String, u16, SmtpTls)> {
    let Some(v) = value else {
        problem(problems, key.into(), "missing");
        return None;
    };
    let url = match url::Url::parse(v) {
        Ok(u) => u,
        Err(e) => {
            problem(problems, key.into(), format!("not a URL: {e}"));
            return None;
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        problem(
            problems,
            key.into(),
            "put credentials in `username` and `password_env`, not in the URL",
        );
        return None;
    }
    let tls_param = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let (tls, default_port) = match (url.scheme(), tls_param.as_deref()) {
        ("smtps", None) => (SmtpTls::Implicit, 465),
        ("smtp", None | Some("none")) => (SmtpTls::None, 25),
        ("smtp", Some("starttls")) => (SmtpTls::StartTls, 587),
        ("smtp" | "smtps", Some(other)) => {
            problem(
                problems,
                key.into(),
                format!(
                    "tls={other}: use tls=starttls or tls=none with smtp://, nothing with smtps://"
                ),
            );
            return None;
        }
        _ => {
            problem(problems, key.into(), "must start with smtp:// or smtps://");
            return None;
        }
    };
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        problem(problems, key.into(), "has no host");
        return None;
    };
    Some((host.to_owned(), url.port().unwrap_or(default_port), tls))
}

/// Validates `[alerts]`, adding every problem to `problems` (keys start
/// with `alerts.`). `env` reads environment variables for `*_env` keys.
pub fn validate(
    raw: RawAlerts,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> AlertsConfig {
    let positive = |problems: &mut Vec<Problem>, key: &str, v: Option<u32>, default: u32| match v {
        Some(0) => {
            problem(problems, key.into(), "must be at least 1");
            default
        }
        Some(v) => v,
        None => default,
    };
    let (reminder_key, reminder_raw) = match (&raw.reminder_interval, &raw.repeat_interval) {
        (Some(_), Some(_)) => {
            problem(
                problems,
                "alerts.repeat_interval".into(),
                "set either repeat_interval or reminder_interval (the same setting), not both",
            );
            ("alerts.reminder_interval", raw.reminder_interval.as_deref())
        }
        (None, Some(r)) => ("alerts.repeat_interval", Some(r.as_str())),
        (r, None) => ("alerts.reminder_interval", r.as_deref()),
    };
    let reminder_interval = match reminder_raw {
        Some("off") => None,
        other => Some(duration(
            problems,
            reminder_key,
            other,
            DEFAULT_REMINDER_INTERVAL,
        )),
    };
    let zero_ok = |problems: &mut Vec<Problem>, key: &str, v: Option<&str>| match v {
        None => None,
        Some("0s") | Some("0") => Some(Duration::ZERO),
        Some(v) => Some(duration(problems, key, Some(v), Duration::ZERO)),
    };
    let rhythm = Rhythm {
        group_wait: zero_ok(problems, "alerts.group_wait", raw.group_wait.as_deref()),
        group_interval: zero_ok(
            problems,
            "alerts.group_interval",
            raw.group_interval.as_deref(),
        ),
    };
    let link = |problems: &mut Vec<Problem>, key: &str, v: Option<String>| {
        let v = v?;
        match url::Url::parse(&v.replace("{index}", "0")) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(v),
            _ => {
                problem(problems, key.into(), format!("not an http(s) URL: {v}"));
                None
            }
        }
    };
    let links = Links {
        status_url: link(problems, "alerts.status_url", raw.status_url.clone()),
        explorer_url: link(problems, "alerts.explorer_url", raw.explorer_url.clone()),
    };
    if links
        .explorer_url
        .as_deref()
        .is_some_and(|u| !u.contains("{index}"))
    {
        problem(
            problems,
            "alerts.explorer_url".into(),
            "must contain {index}, replaced by the validator's index",
        );
    }
    let rules = RuleConfig {
        down_after_missed: positive(
            problems,
            "alerts.down_after_missed",
            raw.down_after_missed,
            DEFAULT_DOWN_AFTER_MISSED,
        ),
        early_warning: raw.early_warning.unwrap_or(true),
        early_blocks: positive(
            problems,
            "alerts.early_blocks",
            raw.early_blocks,
            DEFAULT_EARLY_BLOCKS,
        ),
        performance_window: positive(
            problems,
            "alerts.performance_window",
            raw.performance_window,
            DEFAULT_PERFORMANCE_WINDOW,
        ),
        performance_min: share(
            problems,
            "alerts.performance_min",
            raw.performance_min,
            DEFAULT_PERFORMANCE_MIN,
        ),
        underperforming_margin: share(
            problems,
            "alerts.underperforming_margin",
            raw.underperforming_margin,
            DEFAULT_UNDERPERFORMING_MARGIN,
        ),
        underperforming_epochs: positive(
            problems,
            "alerts.underperforming_epochs",
            raw.underperforming_epochs,
            DEFAULT_UNDERPERFORMING_EPOCHS,
        ),
        sync_min: share(problems, "alerts.sync_min", raw.sync_min, DEFAULT_SYNC_MIN),
        balance_falling_epochs: positive(
            problems,
            "alerts.balance_falling_epochs",
            raw.balance_falling_epochs,
            DEFAULT_BALANCE_FALLING_EPOCHS,
        ),
        no_finality_epochs: raw.no_finality_epochs.unwrap_or(DEFAULT_NO_FINALITY_EPOCHS),
        node_grace: match raw.node_grace.as_deref() {
            // Zero is allowed here: page at the first failed check.
            Some("0s") | Some("0") => Duration::ZERO,
            other => duration(problems, "alerts.node_grace", other, DEFAULT_NODE_GRACE),
        },
        stall_limit: raw
            .stall_limit
            .as_deref()
            .map(|v| duration(problems, "alerts.stall_limit", Some(v), Duration::ZERO)),
        reminder_interval,
    };
    let delivery = DeliveryConfig {
        retry_min: duration(
            problems,
            "alerts.retry_min",
            raw.retry_min.as_deref(),
            DEFAULT_RETRY_MIN,
        ),
        retry_max: duration(
            problems,
            "alerts.retry_max",
            raw.retry_max.as_deref(),
            DEFAULT_RETRY_MAX,
        ),
        give_up_after: duration(
            problems,
            "alerts.give_up_after",
            raw.give_up_after.as_deref(),
            DEFAULT_GIVE_UP_AFTER,
        ),
        send_timeout: duration(
            problems,
            "alerts.send_timeout",
            raw.send_timeout.as_deref(),
            DEFAULT_SEND_TIMEOUT,
        ),
    };

    let mut channels = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut name_of = |problems: &mut Vec<Problem>, key: &str, given: Option<String>| {
        let name = given.unwrap_or_else(|| key.trim_start_matches("alerts.").to_owned());
        if !names.insert(name.clone()) {
            problem(
                problems,
                format!("{key}.name"),
                format!("`{name}` is used by another channel"),
            );
        }
        name
    };

    for (i, e) in raw.email.into_iter().enumerate() {
        let key = format!("alerts.email[{i}]");
        let name = name_of(problems, &key, e.name);
        let server = smtp_url(problems, &format!("{key}.smtp_url"), e.smtp_url.as_deref());
        let password = secret(
            problems,
            &format!("{key}.password"),
            e.password,
            e.password_env,
            env,
        );
        if password.is_some() != e.username.is_some() {
            problem(
                problems,
                key.clone(),
                "`username` and a password go together",
            );
        }
        let from = match e.from {
            Some(f) if mailbox_ok(&f) => Some(f),
            Some(_) => {
                problem(problems, format!("{key}.from"), "not an email address");
                None
            }
            None => {
                problem(problems, format!("{key}.from"), "missing");
                None
            }
        };
        if e.to.is_empty() {
            problem(
                problems,
                format!("{key}.to"),
                "needs at least one recipient",
            );
        }
        let mut to_ok = true;
        for (j, t) in e.to.iter().enumerate() {
            if !mailbox_ok(t) {
                problem(problems, format!("{key}.to[{j}]"), "not an email address");
                to_ok = false;
            }
        }
        let ca = e
            .ca_file
            .and_then(|path| ca_file(problems, &format!("{key}.ca_file"), path));
        if ca.is_some() && matches!(server, Some((_, _, SmtpTls::None))) {
            problem(
                problems,
                format!("{key}.ca_file"),
                "only used with TLS: give smtps:// or smtp://…?tls=starttls",
            );
        }
        if let (Some((host, port, tls)), Some(from), true) = (server, from, to_ok) {
            channels.push(ChannelConfig {
                name,
                kind: ChannelKind::Email(EmailConfig {
                    host,
                    port,
                    tls,
                    username: e.username,
                    password,
                    from,
                    to: e.to,
                    ca,
                }),
            });
        }
    }
    for (i, w) in raw.webhook.into_iter().enumerate() {
        let key = format!("alerts.webhook[{i}]");
        let name = name_of(problems, &key, w.name);
        let url = http_url(problems, &format!("{key}.url"), w.url.as_deref());
        let format = match w.format.as_deref() {
            None | Some("json") => Some(WebhookFormat::Json),
            Some("slack") => Some(WebhookFormat::Slack),
            Some("discord") => Some(WebhookFormat::Discord),
            Some(other) => {
                problem(
                    problems,
                    format!("{key}.format"),
                    format!("`{other}` is not one of json, slack, discord"),
                );
                None
            }
        };
        let secret = secret(
            problems,
            &format!("{key}.secret"),
            w.secret,
            w.secret_env,
            env,
        );
        if let (Some(url), Some(format)) = (url, format) {
            channels.push(ChannelConfig {
                name,
                kind: ChannelKind::Webhook(WebhookConfig {
                    url,
                    format,
                    secret,
                }),
            });
        }
    }
    for (i, t) in raw.telegram.into_iter().enumerate() {
        let key = format!("alerts.telegram[{i}]");
        let name = name_of(problems, &key, t.name);
        let token = secret(
            problems,
            &format!("{key}.bot_token"),
            t.bot_token,
            t.bot_token_env,
            env,
        );
        if token.is_none()
            && !problems
                .iter()
                .any(|p| p.key.starts_with(&format!("{key}.bot_token")))
        {
            problem(problems, format!("{key}.bot_token"), "missing");
        }
        let chat_id = t.chat_id.filter(|c| !c.is_empty());
        if chat_id.is_none() {
            problem(problems, format!("{key}.chat_id"), "missing");
        }
        let api_url = http_url(
            problems,
            &format!("{key}.api_url"),
            Some(t.api_url.as_deref().unwrap_or(DEFAULT_TELEGRAM_API)),
        );
        if let (Some(bot_token), Some(chat_id), Some(api_url)) = (token, chat_id, api_url) {
            channels.push(ChannelConfig {
                name,
                kind: ChannelKind::Telegram(TelegramConfig {
                    api_url,
                    bot_token,
                    chat_id,
                }),
            });
        }
    }
    for (i, a) in raw.alertmanager.into_iter().enumerate() {
        let key = format!("alerts.alertmanager[{i}]");
        let name = name_of(problems, &key, a.name);
        if let Some(url) = http_url(problems, &format!("{key}.url"), a.url.as_deref()) {
            channels.push(ChannelConfig {
                name,
                kind: ChannelKind::Alertmanager(url),
            });
        }
    }
    for (i, l) in raw.log.into_iter().enumerate() {
        let key = format!("alerts.log[{i}]");
        let name = name_of(problems, &key, l.name);
        channels.push(ChannelConfig {
            name,
            kind: ChannelKind::Log,
        });
    }
    AlertsConfig {
        rules,
        delivery,
        channels,
        rhythm,
        links,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> (AlertsConfig, Vec<Problem>) {
        let raw: RawAlerts = toml::from_str(text).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut problems = Vec::new();
        let cfg = validate(raw, &lookup, &mut problems);
        (cfg, problems)
    }

    #[test]
    fn every_channel_kind_is_read_with_secrets_from_the_environment() {
        let (cfg, problems) = parse(
            r#"
            down_after_missed = 3
            reminder_interval = "off"
            [[email]]
            smtp_url = "smtp://mail.example:587?tls=starttls"
            username = "ops"
            password_env = "SMTP_PW"
            from = "valwatch <valwatch@example.org>"
            to = ["a@example.org", "b@example.org"]
            [[email]]
            name = "relay"
            smtp_url = "smtps://mail.example"
            from = "v@example.org"
            to = ["c@example.org"]
            [[webhook]]
            url = "http://127.0.0.1:9/hook"
            format = "slack"
            secret_env = "HOOK_KEY"
            [[telegram]]
            bot_token_env = "TG"
            chat_id = "-100"
            [[alertmanager]]
            url = "http://127.0.0.1:9093"
            [[log]]
            "#,
            &[("SMTP_PW", "hunter2"), ("HOOK_KEY", "k"), ("TG", "123:abc")],
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(cfg.rules.down_after_missed, 3);
        assert_eq!(cfg.rules.reminder_interval, None);
        let names: Vec<_> = cfg.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "email[0]",
                "relay",
                "webhook[0]",
                "telegram[0]",
                "alertmanager[0]",
                "log[0]"
            ]
        );
        match &cfg.channels[0].kind {
            ChannelKind::Email(e) => {
                assert_eq!(
                    (e.host.as_str(), e.port, e.tls),
                    ("mail.example", 587, SmtpTls::StartTls)
                );
                assert_eq!(e.password.as_ref().map(Secret::expose), Some("hunter2"));
                assert_eq!(e.to.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        match &cfg.channels[1].kind {
            ChannelKind::Email(e) => assert_eq!((e.port, e.tls), (465, SmtpTls::Implicit)),
            other => panic!("{other:?}"),
        }
        // Secrets never print.
        let shown = format!("{cfg:?}");
        for secret in ["hunter2", "123:abc"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let (_, problems) = parse(
            r#"
            performance_min = 1.5
            node_grace = "soon"
            [[email]]
            smtp_url = "imap://x"
            from = "nobody"
            to = ["ok@example.org", "not an address"]
            [[webhook]]
            url = "ftp://x"
            format = "xml"
            [[telegram]]
            bot_token_env = "MISSING"
            "#,
            &[],
        );
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "alerts.performance_min",
            "alerts.node_grace",
            "alerts.email[0].smtp_url",
            "alerts.email[0].from",
            "alerts.email[0].to[1]",
            "alerts.webhook[0].url",
            "alerts.webhook[0].format",
            "alerts.telegram[0].bot_token_env",
            "alerts.telegram[0].chat_id",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
    }

    #[test]
    fn defaults_hold_without_an_alerts_section() {
        let cfg = AlertsConfig::default();
        assert_eq!(cfg.rules.down_after_missed, DEFAULT_DOWN_AFTER_MISSED);
        assert!(cfg.rules.early_warning);
        assert_eq!(cfg.rules.reminder_interval, Some(DEFAULT_REMINDER_INTERVAL));
        assert!(cfg.channels.is_empty());
    }

    #[test]
    fn the_rhythm_and_the_links_are_checked_by_key() {
        // (config text, the key named in the problem, or "" for none)
        let cases = [
            ("group_wait = \"0s\"\ngroup_interval = \"1m\"", ""),
            ("group_wait = \"soon\"", "alerts.group_wait"),
            ("group_interval = \"-1s\"", "alerts.group_interval"),
            ("repeat_interval = \"2h\"", ""),
            (
                "repeat_interval = \"2h\"\nreminder_interval = \"1h\"",
                "alerts.repeat_interval",
            ),
            ("status_url = \"https://status.example/\"", ""),
            (
                "status_url = \"ftp://status.example/\"",
                "alerts.status_url",
            ),
            (
                "explorer_url = \"https://beaconcha.in/validator/{index}\"",
                "",
            ),
            (
                "explorer_url = \"https://beaconcha.in/validator/\"",
                "alerts.explorer_url",
            ),
        ];
        for (text, key) in cases {
            let (_, problems) = parse(text, &[]);
            let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
            if key.is_empty() {
                assert!(keys.is_empty(), "{text}: {problems:?}");
            } else {
                assert_eq!(keys, [key], "{text}");
            }
        }
        let (cfg, _) = parse("repeat_interval = \"2h\"\ngroup_wait = \"0s\"", &[]);
        assert_eq!(cfg.rules.reminder_interval, Some(Duration::from_secs(7200)));
        assert_eq!(cfg.rhythm.group_wait, Some(Duration::ZERO));
        assert_eq!(
            cfg.rhythm.group_interval, None,
            "default: one epoch, set by the engine"
        );
    }
}
