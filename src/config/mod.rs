//! Configuration in layers: code defaults, then the TOML file given with
//! `--config`, then `VALWATCH_SECTION__KEY` environment variables, then CLI
//! flags. `RawConfig` is what serde reads; `Config` is what the program uses,
//! produced by `validate`, which collects EVERY problem and names each by
//! its dotted key.
//!
//! Must not: do IO beyond reading the config and validators files.

pub mod alerts;
pub mod validators;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::beacon::client::ValidatorId;
use crate::beacon::{NodeConfig, NodeRole};
use crate::chain::Epoch;

pub use validators::{parse_validator_file, parse_validator_list};

/// Default per-request timeout for a beacon node. Blocks and committees of
/// a mainnet epoch answer in well under a second on a local node; public
/// providers add queueing, so allow ten.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default address of the HTTP server (status, metrics): loopback only, so
/// nothing is exposed unless the operator asks for it.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9475";

/// Default retention of history: 90 days is a quarter of hindsight for
/// "was it always like this?" without unbounded growth.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub beacon_nodes: Vec<RawNode>,
    #[serde(default)]
    pub groups: Vec<RawGroup>,
    #[serde(default)]
    pub database: RawDatabase,
    #[serde(default)]
    pub http: RawHttp,
    #[serde(default)]
    pub monitor: RawMonitor,
    #[serde(default)]
    pub alerts: alerts::RawAlerts,
    pub heartbeat: Option<RawHeartbeat>,
    /// Where the embedded database lives when no `database.url` is set.
    pub data_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub name: Option<String>,
    pub url: Option<String>,
    pub role: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timeout: Option<String>,
    pub max_requests_per_second: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: Option<String>,
    pub validators: Option<String>,
    pub validators_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub url: Option<String>,
    pub retention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: Option<String>,
    /// Per-validator metric series only while fewer validators are watched.
    pub per_validator_metrics_limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonitor {
    pub from_epoch: Option<u64>,
    /// Validators known to be offline on purpose (maintenance, not yet
    /// running): shown, but never make the status fail.
    pub expected_offline: Option<String>,
    pub poll_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeartbeat {
    pub url: Option<String>,
    pub method: Option<String>,
    pub timeout: Option<String>,
}

/// Default timeout of one heartbeat request: a dead-man's switch answers
/// in well under a second; a slow one must not hold up the next beat.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the heartbeat calls its URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeartbeatMethod {
    Get,
    /// With a small JSON body (the epoch), which healthchecks-style
    /// services keep as the ping's log.
    Post,
}

/// A dead-man's switch: a URL called after every epoch judged for good,
/// so that a service that expects the call notices when valwatch dies.
#[derive(Clone)]
pub struct HeartbeatConfig {
    /// May hold a token (healthchecks.io's UUID, Uptime Kuma's push
    /// token): never logged whole.
    pub url: url::Url,
    pub method: HeartbeatMethod,
    pub timeout: Duration,
}

impl HeartbeatConfig {
    /// The URL as logs show it: scheme, host and port only (the path of a
    /// dead-man's switch is usually its token).
    pub fn shown_url(&self) -> String {
        format!("{}/…", self.url.origin().ascii_serialization())
    }
}

impl std::fmt::Debug for HeartbeatConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatConfig")
            .field("url", &self.shown_url())
            .field("method", &self.method)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn validate_heartbeat(raw: RawHeartbeat, problems: &mut Vec<Problem>) -> Option<HeartbeatConfig> {
    let url = match raw.url.as_deref() {
        None => {
            add(problems, "heartbeat.url".into(), "missing".into());
            None
        }
        Some(u) => match url::Url::parse(u) {
            Ok(url) if url.scheme() == "http" || url.scheme() == "https" => Some(url),
            // Not echoed: the URL may carry the switch's token.
            Ok(_) => {
                add(
                    problems,
                    "heartbeat.url".into(),
                    "must be an http:// or https:// URL".into(),
                );
                None
            }
            Err(e) => {
                add(problems, "heartbeat.url".into(), format!("not a URL: {e}"));
                None
            }
        },
    };
    let method = match raw.method.as_deref() {
        None | Some("get") | Some("GET") => HeartbeatMethod::Get,
        Some("post") | Some("POST") => HeartbeatMethod::Post,
        Some(other) => {
            add(
                problems,
                "heartbeat.method".into(),
                format!("`{other}` is not one of get, post"),
            );
            HeartbeatMethod::Get
        }
    };
    let timeout = match raw.timeout.as_deref() {
        None => Some(DEFAULT_HEARTBEAT_TIMEOUT),
        Some(v) => parse_duration("heartbeat.timeout", v, problems),
    };
    Some(HeartbeatConfig {
        url: url?,
        method,
        timeout: timeout?,
    })
}

/// A named set of validators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    /// All members: `inline` followed by the file's.
    pub validators: Vec<ValidatorId>,
    /// The members listed in the config itself (`validators`).
    pub inline: Vec<ValidatorId>,
    /// Re-read when it changes.
    pub validators_file: Option<PathBuf>,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub beacon_nodes: Vec<NodeConfig>,
    pub groups: Vec<Group>,
    /// `None`: the embedded SQLite file in `data_dir`.
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub retention: Duration,
    pub listen: Option<SocketAddr>,
    /// Per-validator metric series only while fewer validators than this
    /// are watched (0: never); per-group and total series always.
    pub per_validator_metrics_limit: usize,
    pub from_epoch: Option<Epoch>,
    /// How often the follower looks at the head. `None`: a quarter slot.
    pub poll_interval: Option<Duration>,
    pub expected_offline: Vec<ValidatorId>,
    pub alerts: alerts::AlertsConfig,
    pub heartbeat: Option<HeartbeatConfig>,
}

impl Config {
    /// The database URL to use: the configured one, else the embedded file.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!(
                "sqlite://{}",
                self.data_dir.join("valwatch.sqlite").display()
            ),
        }
    }

    /// Every watched validator id, in group order, without duplicates.
    pub fn all_validators(&self) -> Vec<ValidatorId> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for g in &self.groups {
            for v in &g.validators {
                if seen.insert(*v) {
                    out.push(*v);
                }
            }
        }
        out
    }
}

/// One problem found in the configuration, named by its dotted key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(String),
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// Command-line values that override the file and the environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub beacon_nodes: Vec<String>,
    pub validators: Option<String>,
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub from_epoch: Option<u64>,
    pub data_dir: Option<String>,
}

/// Reads the file (if any) and the environment into a `RawConfig`.
pub fn load_raw(path: Option<&Path>) -> Result<RawConfig, ConfigError> {
    load_raw_with_env(path, std::env::vars())
}

/// `load_raw` with an explicit environment (tests).
pub fn load_raw_with_env(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<RawConfig, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(p) = path {
        if !p.exists() {
            return Err(ConfigError::Load(format!("{}: no such file", p.display())));
        }
        builder = builder.add_source(config::File::from(p).format(config::FileFormat::Toml));
    }
    let env: std::collections::HashMap<String, String> = env
        .into_iter()
        // Only configuration keys: VALWATCH_SECTION__KEY or a top-level key.
        // Other VALWATCH_ variables (VALWATCH_LOG, VALWATCH_CONFIG) are the
        // program's own, not config keys.
        .filter(|(k, _)| {
            k.strip_prefix("VALWATCH_")
                .is_some_and(|rest| rest.contains("__") || rest == "DATA_DIR")
        })
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix("VALWATCH")
            .prefix_separator("_")
            .separator("__")
            .source(Some(env)),
    );
    let cfg = builder
        .build()
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    cfg.try_deserialize::<RawConfig>()
        .map_err(|e| ConfigError::Load(e.to_string()))
}

fn add(problems: &mut Vec<Problem>, key: String, message: String) {
    problems.push(Problem { key, message });
}

fn parse_duration(key: &str, v: &str, problems: &mut Vec<Problem>) -> Option<Duration> {
    match humantime::parse_duration(v) {
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(Problem {
                key: key.into(),
                message: format!("`{v}` is not a duration such as \"12s\" or \"2h\": {e}"),
            });
            None
        }
    }
}

/// Turns a raw configuration and CLI overrides into a `Config`, collecting
/// every problem. `base_dir` resolves relative `validators_file` and `ca_file` paths.
pub fn validate(raw: RawConfig, over: &Overrides, base_dir: &Path) -> Result<Config, ConfigError> {
    let mut problems: Vec<Problem> = Vec::new();

    // Beacon nodes: `--beacon-node` flags replace the configured list.
    let raw_nodes: Vec<RawNode> = if over.beacon_nodes.is_empty() {
        raw.beacon_nodes
    } else {
        over.beacon_nodes
            .iter()
            .map(|u| RawNode {
                url: Some(u.clone()),
                ..RawNode::default()
            })
            .collect()
    };
    let mut nodes = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, n) in raw_nodes.into_iter().enumerate() {
        let key = format!("beacon_nodes[{i}]");
        let url = match n.url.as_deref() {
            None => {
                add(&mut problems, format!("{key}.url"), "missing".into());
                None
            }
            Some(u) => match url::Url::parse(u) {
                Ok(url) if url.scheme() == "http" || url.scheme() == "https" => Some(url),
                Ok(_) => {
                    add(
                        &mut problems,
                        format!("{key}.url"),
                        "must be an http:// or https:// URL".into(),
                    );
                    None
                }
                Err(e) => {
                    add(
                        &mut problems,
                        format!("{key}.url"),
                        format!("not a URL: {e}"),
                    );
                    None
                }
            },
        };
        let role = match n.role.as_deref() {
            None | Some("private") => NodeRole::Private,
            Some("public") => NodeRole::Public,
            Some(other) => {
                add(
                    &mut problems,
                    format!("{key}.role"),
                    format!("`{other}` is not one of private, public"),
                );
                NodeRole::Private
            }
        };
        let timeout = match n.timeout.as_deref() {
            None => Some(DEFAULT_NODE_TIMEOUT),
            Some(t) => {
                let d = parse_duration(&format!("{key}.timeout"), t, &mut problems);
                d
            }
        };
        if let Some(r) = n.max_requests_per_second {
            if !(r > 0.0 && r.is_finite()) {
                add(
                    &mut problems,
                    format!("{key}.max_requests_per_second"),
                    "must be a positive number".into(),
                );
            }
        }
        for h in n.headers.keys() {
            if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                add(
                    &mut problems,
                    format!("{key}.headers.{h}"),
                    "not a valid HTTP header name".into(),
                );
            }
        }
        let name = n.name.clone().unwrap_or_else(|| {
            url.as_ref()
                .map(|u| {
                    format!(
                        "{}:{}",
                        u.host_str().unwrap_or("node"),
                        u.port_or_known_default().unwrap_or(0)
                    )
                })
                .unwrap_or_else(|| format!("node{i}"))
        });
        if !names.insert(name.clone()) {
            add(
                &mut problems,
                format!("{key}.name"),
                format!("`{name}` is used by another node"),
            );
        }
        if let (Some(url), Some(timeout)) = (url, timeout) {
            nodes.push(NodeConfig {
                name,
                url,
                role,
                headers: n.headers.into_iter().collect(),
                timeout,
                max_requests_per_second: n.max_requests_per_second,
            });
        }
    }
    if nodes.is_empty() && !problems.iter().any(|x| x.key.starts_with("beacon_nodes")) {
        add(
            &mut problems,
            "beacon_nodes".into(),
            "at least one beacon node is needed (or --beacon-node URL)".into(),
        );
    }

    // Groups: `--validators` forms (or replaces) the group `default`.
    let mut raw_groups = raw.groups;
    if let Some(list) = &over.validators {
        raw_groups.retain(|g| g.name.as_deref() != Some("default"));
        raw_groups.insert(
            0,
            RawGroup {
                name: Some("default".into()),
                validators: Some(list.clone()),
                validators_file: None,
            },
        );
    }
    let mut groups = Vec::new();
    let mut group_names = std::collections::HashSet::new();
    for (i, g) in raw_groups.into_iter().enumerate() {
        let key = format!("groups[{i}]");
        let name = g.name.clone().unwrap_or_else(|| "default".into());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            add(
                &mut problems,
                format!("{key}.name"),
                format!("`{name}`: use letters, digits, '-', '_' or '.'"),
            );
        }
        if !group_names.insert(name.clone()) {
            add(
                &mut problems,
                format!("{key}.name"),
                format!("`{name}` is used by another group"),
            );
        }
        let mut validators = Vec::new();
        if let Some(list) = &g.validators {
            match parse_validator_list(list) {
                Ok(v) => validators.extend(v),
                Err(e) => add(&mut problems, format!("{key}.validators"), e),
            }
        }
        let inline = validators.clone();
        let mut file = None;
        if let Some(f) = &g.validators_file {
            let path = base_dir.join(f);
            match std::fs::read_to_string(&path) {
                Ok(text) => match parse_validator_file(&text) {
                    Ok(v) => validators.extend(v),
                    Err(e) => add(
                        &mut problems,
                        format!("{key}.validators_file"),
                        format!("{}: {e}", path.display()),
                    ),
                },
                Err(e) => add(
                    &mut problems,
                    format!("{key}.validators_file"),
                    format!("{}: {e}", path.display()),
                ),
            }
            file = Some(path);
        }
        if g.validators.is_none() && g.validators_file.is_none() {
            add(
                &mut problems,
                key.clone(),
                "needs `validators` or `validators_file`".into(),
            );
        }
        groups.push(Group {
            name,
            validators,
            inline,
            validators_file: file,
        });
    }
    if groups.is_empty() {
        add(
            &mut problems,
            "groups".into(),
            "no validators to watch (add [[groups]] or --validators LIST)".into(),
        );
    }

    let database_url = over.database_url.clone().or(raw.database.url);
    if let Some(u) = &database_url {
        if !(u.starts_with("postgres://")
            || u.starts_with("postgresql://")
            || u.starts_with("sqlite:"))
        {
            add(
                &mut problems,
                "database.url".into(),
                "must start with postgres://, postgresql:// or sqlite:".into(),
            );
        }
    }
    let retention = match raw.database.retention.as_deref() {
        None => Some(DEFAULT_RETENTION),
        Some(v) => parse_duration("database.retention", v, &mut problems),
    };
    let listen_raw = over.listen.clone().or(raw.http.listen);
    let listen = match listen_raw.as_deref() {
        None => DEFAULT_LISTEN.parse().ok(),
        Some("") | Some("off") => None,
        Some(v) => match v.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                add(
                    &mut problems,
                    "http.listen".into(),
                    format!("`{v}` is not an address such as 127.0.0.1:9475"),
                );
                None
            }
        },
    };
    let poll_interval = match raw.monitor.poll_interval.as_deref() {
        None => None,
        Some(v) => parse_duration("monitor.poll_interval", v, &mut problems),
    };
    let expected_offline = match raw.monitor.expected_offline.as_deref() {
        None => Vec::new(),
        Some(list) => parse_validator_list(list).unwrap_or_else(|e| {
            add(&mut problems, "monitor.expected_offline".into(), e);
            Vec::new()
        }),
    };
    let data_dir = PathBuf::from(
        over.data_dir
            .clone()
            .or(raw.data_dir)
            .unwrap_or_else(|| "valwatch-data".into()),
    );

    let mut raw_alerts = raw.alerts;
    raw_alerts.resolve_paths(base_dir);
    let alerts = alerts::validate(raw_alerts, &|k| std::env::var(k).ok(), &mut problems);
    let heartbeat = raw
        .heartbeat
        .and_then(|h| validate_heartbeat(h, &mut problems));

    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    Ok(Config {
        beacon_nodes: nodes,
        groups,
        database_url,
        data_dir,
        retention: retention.unwrap_or(DEFAULT_RETENTION),
        listen,
        per_validator_metrics_limit: raw
            .http
            .per_validator_metrics_limit
            .unwrap_or(crate::metrics::DEFAULT_PER_VALIDATOR_LIMIT),
        from_epoch: over.from_epoch.or(raw.monitor.from_epoch).map(Epoch),
        poll_interval,
        expected_offline,
        alerts,
        heartbeat,
    })
}

/// Loads and validates in one step.
pub fn load(path: Option<&Path>, over: &Overrides) -> Result<Config, ConfigError> {
    let raw = load_raw(path)?;
    let base = path.and_then(|p| p.parent()).unwrap_or(Path::new("."));
    validate(raw, over, base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("valwatch.toml");
        std::fs::write(&path, text).unwrap();
        let raw = load_raw_with_env(
            Some(&path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )?;
        validate(raw, &Overrides::default(), dir.path())
    }

    fn problems(err: ConfigError) -> Vec<Problem> {
        match err {
            ConfigError::Invalid(p) => p,
            other => panic!("expected Invalid, got {other}"),
        }
    }

    #[test]
    fn a_relative_ca_file_is_read_beside_the_config_file() {
        // The file exists only beside the config (not in the working
        // directory) and holds no certificate: the problem must say so,
        // not that it cannot be read.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mail-ca.pem"), "not a certificate\n").unwrap();
        let path = dir.path().join("valwatch.toml");
        std::fs::write(
            &path,
            r#"
            [[beacon_nodes]]
            url = "http://127.0.0.1:5052"
            [[groups]]
            validators = "1"
            [[alerts.email]]
            smtp_url = "smtps://mail.example"
            from = "v@example.org"
            to = ["o@example.org"]
            ca_file = "mail-ca.pem"
            "#,
        )
        .unwrap();
        let err = load(Some(&path), &Overrides::default()).unwrap_err();
        let p = problems(err);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "alerts.email[0].ca_file");
        assert!(p[0].message.contains("no certificate"), "{p:?}");
        assert!(
            p[0].message.contains(&dir.path().display().to_string()),
            "{p:?}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = from_toml(
            r#"
            [[beacon_nodes]]
            url = "ftp://x"
            role = "friend"
            timeout = "soon"
            [[groups]]
            name = "a"
            validators = "1,two"
            [http]
            listen = "nowhere"
            [database]
            url = "mysql://x"
            "#,
            &[],
        )
        .unwrap_err();
        let keys: Vec<String> = problems(err).into_iter().map(|p| p.key).collect();
        for k in [
            "beacon_nodes[0].url",
            "beacon_nodes[0].role",
            "beacon_nodes[0].timeout",
            "groups[0].validators",
            "http.listen",
            "database.url",
        ] {
            assert!(keys.contains(&k.to_string()), "{k} missing from {keys:?}");
        }
    }

    #[test]
    fn the_per_validator_metrics_limit_has_a_default_and_can_be_set() {
        let base =
            "[[beacon_nodes]]\nurl = \"http://127.0.0.1:5052\"\n[[groups]]\nvalidators = \"1\"\n";
        assert_eq!(
            from_toml(base, &[]).unwrap().per_validator_metrics_limit,
            crate::metrics::DEFAULT_PER_VALIDATOR_LIMIT
        );
        let cfg = from_toml(
            &format!("{base}[http]\nper_validator_metrics_limit = 5000\n"),
            &[],
        )
        .unwrap();
        assert_eq!(cfg.per_validator_metrics_limit, 5000);
        let cfg = from_toml(base, &[("VALWATCH_HTTP__PER_VALIDATOR_METRICS_LIMIT", "0")]).unwrap();
        assert_eq!(cfg.per_validator_metrics_limit, 0);
        assert!(from_toml(
            &format!("{base}[http]\nper_validator_metrics_limit = -1\n"),
            &[]
        )
        .is_err());
    }

    #[test]
    fn environment_overrides_the_file() {
        let cfg = from_toml(
            r#"
            [[beacon_nodes]]
            url = "http://127.0.0.1:5052"
            [[groups]]
            validators = "1-3"
            [database]
            url = "sqlite://a.db"
            "#,
            &[
                ("VALWATCH_DATABASE__URL", "postgres://u@h/db"),
                ("OTHER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.database_url.as_deref(), Some("postgres://u@h/db"));
        assert_eq!(cfg.all_validators().len(), 3);
        assert_eq!(cfg.beacon_nodes[0].timeout, DEFAULT_NODE_TIMEOUT);
    }

    #[test]
    fn heartbeat_is_checked_and_its_token_never_printed() {
        let base =
            "[[beacon_nodes]]\nurl = \"http://127.0.0.1:5052\"\n[[groups]]\nvalidators = \"1\"\n";
        let cfg = from_toml(
            &format!(
                "{base}[heartbeat]\nurl = \"https://hc-ping.com/sekret-uuid\"\nmethod = \"post\"\n"
            ),
            &[],
        )
        .unwrap();
        let h = cfg.heartbeat.as_ref().unwrap();
        assert_eq!(h.method, HeartbeatMethod::Post);
        assert_eq!(h.timeout, DEFAULT_HEARTBEAT_TIMEOUT);
        assert!(!format!("{h:?}").contains("sekret"), "{h:?}");
        assert!(from_toml(base, &[]).unwrap().heartbeat.is_none());

        let err = from_toml(
            &format!("{base}[heartbeat]\nurl = \"ftp://x/sekret\"\nmethod = \"put\"\ntimeout = \"soon\"\n"),
            &[],
        )
        .unwrap_err();
        let found = problems(err);
        let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["heartbeat.url", "heartbeat.method", "heartbeat.timeout"]
        );
        assert!(found.iter().all(|p| !p.message.contains("sekret")));
        let err = from_toml(&format!("{base}[heartbeat]\nmethod = \"get\"\n"), &[]).unwrap_err();
        assert_eq!(problems(err)[0].key, "heartbeat.url");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = from_toml("[http]\nlisten_on = \"x\"\n", &[]).unwrap_err();
        assert!(
            matches!(err, ConfigError::Load(ref m) if m.contains("listen_on")),
            "{err}"
        );
    }

    #[test]
    fn cli_flags_form_the_default_group_and_replace_nodes() {
        let over = Overrides {
            beacon_nodes: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
            validators: Some("5,6".into()),
            ..Overrides::default()
        };
        let cfg = validate(RawConfig::default(), &over, Path::new(".")).unwrap();
        assert_eq!(cfg.beacon_nodes.len(), 2);
        assert_eq!(cfg.groups[0].name, "default");
        assert!(cfg.effective_database_url().starts_with("sqlite://"));
    }

    #[test]
    fn the_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("valwatch.example.toml");
        let raw = load_raw_with_env(Some(&path), std::iter::empty()).unwrap();
        let cfg = validate(raw, &Overrides::default(), path.parent().unwrap()).unwrap();
        assert!(!cfg.beacon_nodes.is_empty());
        assert!(!cfg.groups.is_empty());
    }
}
