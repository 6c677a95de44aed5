//! Configuration in layers: code defaults, then the TOML file given with
//! `--config`, then `VALWATCH_SECTION__KEY` environment variables, then CLI
//! flags. `RawConfig` is what serde reads; `Config` is what the program uses,
//! produced by `validate`, which collects EVERY problem and names each by
//! its dotted key.
//!
//! Type errors and unknown keys are found by `schema` before serde reads
//! the typed structs, so that they are reported together with every other
//! problem instead of stopping at the first. Relative paths given in the
//! file (`data_dir`, a `sqlite:` `database.url`, `validators_file`,
//! `ca_file`) are relative to the configuration file's directory; paths
//! given as CLI flags or environment variables to the working directory.
//!
//! Must not: do IO beyond reading the config and validators files.

pub mod alerts;
pub mod labels;
pub mod schema;
pub mod sources;
pub mod validators;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::beacon::{NodeConfig, NodeRole};
use crate::chain::Epoch;

pub use labels::{parse_labels_file, Labels};
pub use sources::{SourceConfig, SourceKind};
pub use validators::{parse_validator_file, parse_validator_list, IdSet};

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
    /// Services that list the keys to watch (issue 13).
    #[serde(default)]
    pub sources: Vec<sources::RawSource>,
    /// Free-form labels per validator: `index_or_pubkey,label,label` lines.
    pub labels_file: Option<String>,
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
    /// All members: `inline` and the file's.
    pub validators: IdSet,
    /// The members listed in the config itself (`validators`).
    pub inline: IdSet,
    /// Re-read when it changes.
    pub validators_file: Option<PathBuf>,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub beacon_nodes: Vec<NodeConfig>,
    pub groups: Vec<Group>,
    /// Keymanager and Web3Signer services whose keys are watched, each as
    /// a group of its own.
    pub sources: Vec<SourceConfig>,
    /// Labels per validator, and the file they came from (re-read when it
    /// changes).
    pub labels: Labels,
    pub labels_file: Option<PathBuf>,
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
    pub expected_offline: IdSet,
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

    /// Every validator id of the groups, in one set.
    pub fn all_validators(&self) -> IdSet {
        self.groups
            .iter()
            .fold(IdSet::default(), |all, g| all.union(&g.validators))
    }
}

/// Two groups that watch some of the same validators. Allowed (a
/// validator may belong to a client group and an operator group), but
/// usually a copy-paste slip, and it counts the validator in both groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlap {
    pub first: String,
    pub second: String,
    pub shared: IdSet,
}

/// PURE: every pair of groups sharing validators, in configuration order.
/// Compares ids as written: a validator given by index in one group and by
/// public key in another is not seen here (that needs the chain). Works on
/// the ranges: ten groups of a million indices cost 45 walks over a few
/// ranges each.
pub fn overlapping_groups(groups: &[Group]) -> Vec<Overlap> {
    let mut out = Vec::new();
    for (i, first) in groups.iter().enumerate() {
        for second in groups.iter().skip(i + 1) {
            let shared = first.validators.intersection(&second.validators);
            if !shared.is_empty() {
                out.push(Overlap {
                    first: first.name.clone(),
                    second: second.name.clone(),
                    shared,
                });
            }
        }
    }
    out
}

/// PURE: per place that names validators (`groups[i] (name)` and
/// `monitor.expected_offline`), the ids the chain does not hold. `on_chain`
/// is what a node answered: the registry's indices (a prefix `0..n`, as
/// validators are appended and never removed) and the configured public
/// keys it knows.
pub fn missing_from_registry(config: &Config, on_chain: &IdSet) -> Vec<(String, IdSet)> {
    let places = config
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| (format!("groups[{i}] ({})", g.name), &g.validators))
        .chain(std::iter::once((
            "monitor.expected_offline".to_owned(),
            &config.expected_offline,
        )));
    places
        .filter_map(|(place, ids)| {
            let missing = ids.difference(on_chain);
            (!missing.is_empty()).then_some((place, missing))
        })
        .collect()
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

/// Reads the file (if any) and the environment into a `RawConfig`; every
/// type error and unknown key is reported at once (`ConfigError::Invalid`).
pub fn load_raw(path: Option<&Path>) -> Result<RawConfig, ConfigError> {
    load_raw_with_env(path, std::env::vars())
}

/// `load_raw` with an explicit environment (tests).
pub fn load_raw_with_env(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<RawConfig, ConfigError> {
    let (raw, problems) = load_raw_checked(path, env)?;
    if problems.is_empty() {
        Ok(raw)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// The shape of the configuration file, read from `RawConfig` itself.
pub fn raw_shape() -> Result<schema::Shape, ConfigError> {
    schema::shape_of::<RawConfig>()
        .map_err(|e| ConfigError::Load(format!("the configuration types cannot be probed: {e}")))
}

/// Reads the file and the environment, checks every key's type against
/// `raw_shape`, and returns what typed deserialization makes of the keys
/// that passed, with the problems of those that did not. `Err` only when
/// the file cannot be read or is not TOML at all.
pub fn load_raw_checked(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(RawConfig, Vec<Problem>), ConfigError> {
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
    let loose: serde_json::Value = cfg
        .try_deserialize()
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    let mut problems = Vec::new();
    let checked = schema::check(loose, &raw_shape()?, "", &mut problems)
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    // `check` leaves only what fits the shape, so this fails only if the
    // probe and serde disagree about a type: a bug, reported as such.
    let raw = serde_json::from_value::<RawConfig>(checked).map_err(|e| {
        ConfigError::Load(format!(
            "configuration passed the type check but not serde: {e}"
        ))
    })?;
    Ok((raw, problems))
}

/// `path` as given when absolute, else beside `base` (the configuration
/// file's directory; `.` or empty: the working directory, left as is).
pub fn beside(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() || base.as_os_str().is_empty() || base == Path::new(".") {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// A `sqlite:` URL whose relative file path is made relative to `base`
/// (see `beside`); other URLs and in-memory databases unchanged.
pub fn sqlite_url_beside(base: &Path, url: &str) -> String {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return url.to_owned();
    }
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return url.to_owned();
    };
    let (file, query) = match rest.split_once('?') {
        Some((f, q)) => (f, Some(q)),
        None => (rest, None),
    };
    let file = beside(base, file);
    match query {
        Some(q) => format!("sqlite://{}?{q}", file.display()),
        None => format!("sqlite://{}", file.display()),
    }
}

/// The database URL for commands that need nothing else (`report`,
/// `migrate`): the `--database-url` flag, else `database.url`, else the
/// embedded file in `--data-dir`, else in `data_dir`, else in
/// `valwatch-data`. Relative paths from the file are beside it; from the
/// environment (`VALWATCH_DATABASE__URL`, `VALWATCH_DATA_DIR`) they are
/// relative to the working directory, as flags are.
pub fn database_url(
    path: Option<&Path>,
    url_flag: Option<String>,
    data_dir_flag: Option<String>,
) -> Result<String, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let over = with_env_paths(
        &Overrides {
            database_url: url_flag,
            data_dir: data_dir_flag,
            ..Overrides::default()
        },
        &env,
    );
    if let Some(u) = over.database_url {
        return Ok(u);
    }
    let raw = load_raw_with_env(path, env)?;
    let base = config_dir(path);
    if let Some(u) = raw.database.url {
        return Ok(sqlite_url_beside(base, &u));
    }
    let dir = match over.data_dir {
        Some(d) => PathBuf::from(d),
        None => beside(base, raw.data_dir.as_deref().unwrap_or(DEFAULT_DATA_DIR)),
    };
    Ok(format!(
        "sqlite://{}",
        dir.join("valwatch.sqlite").display()
    ))
}

/// Where the embedded database lives when nothing says otherwise.
pub const DEFAULT_DATA_DIR: &str = "valwatch-data";

/// The directory that relative paths in the file are relative to.
fn config_dir(path: Option<&Path>) -> &Path {
    path.and_then(|p| p.parent()).unwrap_or(Path::new("."))
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
/// every problem. `base_dir` resolves relative paths from the file
/// (`validators_file`, `ca_file`, `data_dir`, a `sqlite:` URL).
pub fn validate(raw: RawConfig, over: &Overrides, base_dir: &Path) -> Result<Config, ConfigError> {
    validate_with(raw, over, base_dir, Vec::new())
}

/// `validate`, adding to the problems `load_raw_checked` found. A key with
/// a type problem was left out of `raw`; what `validate` would then say
/// about it ("missing") is dropped, the type problem says it better.
pub fn validate_with(
    raw: RawConfig,
    over: &Overrides,
    base_dir: &Path,
    type_problems: Vec<Problem>,
) -> Result<Config, ConfigError> {
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
        let mut validators = IdSet::default();
        if let Some(list) = &g.validators {
            match parse_validator_list(list) {
                // An empty list is a mistake (a variable that expanded to
                // nothing), not a way to watch nobody.
                Ok(v) if v.is_empty() => add(
                    &mut problems,
                    format!("{key}.validators"),
                    "lists no validator: give indices, ranges a-b or 0x public keys".into(),
                ),
                Ok(v) => validators = v,
                Err(e) => add(&mut problems, format!("{key}.validators"), e),
            }
        }
        let inline = validators.clone();
        let mut file = None;
        if let Some(f) = &g.validators_file {
            let path = base_dir.join(f);
            match std::fs::read_to_string(&path) {
                Ok(text) => match parse_validator_file(&text) {
                    Ok(v) => validators = validators.union(&v),
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
    let sources = sources::validate(raw.sources, base_dir, &group_names, &mut problems);
    if groups.is_empty() && sources.is_empty() {
        add(
            &mut problems,
            "groups".into(),
            "no validators to watch (add [[groups]], [[sources]] or --validators LIST)".into(),
        );
    }
    let labels_file = raw.labels_file.as_deref().map(|f| base_dir.join(f));
    let labels = match &labels_file {
        None => Labels::default(),
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| parse_labels_file(&t))
            .unwrap_or_else(|e| {
                add(
                    &mut problems,
                    "labels_file".into(),
                    format!("{}: {e}", path.display()),
                );
                Labels::default()
            }),
    };

    let database_url = over
        .database_url
        .clone()
        .or(raw.database.url.map(|u| sqlite_url_beside(base_dir, &u)));
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
        None => IdSet::default(),
        Some(list) => parse_validator_list(list).unwrap_or_else(|e| {
            add(&mut problems, "monitor.expected_offline".into(), e);
            IdSet::default()
        }),
    };
    let data_dir = match &over.data_dir {
        Some(d) => PathBuf::from(d),
        None => beside(
            base_dir,
            raw.data_dir.as_deref().unwrap_or(DEFAULT_DATA_DIR),
        ),
    };

    let mut raw_alerts = raw.alerts;
    raw_alerts.resolve_paths(base_dir);
    let alerts = alerts::validate(raw_alerts, &|k| std::env::var(k).ok(), &mut problems);
    let heartbeat = raw
        .heartbeat
        .and_then(|h| validate_heartbeat(h, &mut problems));

    let covered = |key: &str| {
        type_problems.iter().any(|t| {
            key == t.key
                || key
                    .strip_prefix(t.key.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    };
    problems.retain(|p| !covered(&p.key));
    let problems: Vec<Problem> = type_problems.into_iter().chain(problems).collect();
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    Ok(Config {
        beacon_nodes: nodes,
        groups,
        sources,
        labels,
        labels_file,
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

/// Loads and validates in one step, reporting every problem at once.
pub fn load(path: Option<&Path>, over: &Overrides) -> Result<Config, ConfigError> {
    load_with_env(path, over, std::env::vars())
}

/// `load` with an explicit environment (tests).
pub fn load_with_env(
    path: Option<&Path>,
    over: &Overrides,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let over = with_env_paths(over, &env);
    let (raw, type_problems) = load_raw_checked(path, env)?;
    validate_with(raw, &over, config_dir(path), type_problems)
}

/// The environment's `data_dir` and `database.url` as if they were flags:
/// a path in a variable is the shell's, relative to the working directory
/// like a flag, not to the configuration file. Flags still win.
fn with_env_paths(over: &Overrides, env: &[(String, String)]) -> Overrides {
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Overrides {
        data_dir: over.data_dir.clone().or_else(|| get("VALWATCH_DATA_DIR")),
        database_url: over
            .database_url
            .clone()
            .or_else(|| get("VALWATCH_DATABASE__URL")),
        ..over.clone()
    }
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
    fn sources_alone_are_enough_and_labels_file_problems_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("labels.csv");
        std::fs::write(&labels, "1,eu\n2,rack:3,eu\n").unwrap();
        let base = "[[beacon_nodes]]\nurl = \"http://127.0.0.1:5052\"\n";
        let signer = "[[sources]]\nkind = \"web3signer\"\nurl = \"http://127.0.0.1:9000\"\n";
        let cfg = from_toml(
            &format!(
                "labels_file = {:?}\n{base}{signer}",
                labels.display().to_string()
            ),
            &[],
        )
        .unwrap();
        assert!(cfg.groups.is_empty());
        assert_eq!(cfg.sources.len(), 1);
        assert_eq!(cfg.sources[0].group, "127.0.0.1-9000");
        assert_eq!(cfg.labels.iter().count(), 2);

        // (case, file contents or None for no file, expected message part)
        let cases = [
            ("a line without labels", Some("1,eu\n2\n"), "line 2"),
            ("no such file", None, "labels-missing.csv"),
        ];
        for (case, text, want) in cases {
            let path = match text {
                Some(t) => {
                    std::fs::write(&labels, t).unwrap();
                    labels.clone()
                }
                None => dir.path().join("labels-missing.csv"),
            };
            let err = from_toml(
                &format!(
                    "labels_file = {:?}\n{base}{signer}",
                    path.display().to_string()
                ),
                &[],
            )
            .unwrap_err();
            let found = problems(err);
            assert_eq!(found.len(), 1, "{case}: {found:?}");
            assert_eq!(found[0].key, "labels_file", "{case}");
            assert!(
                found[0].message.contains(want),
                "{case}: {}",
                found[0].message
            );
        }

        // Neither groups nor sources: nothing to watch.
        let found = problems(from_toml(base, &[]).unwrap_err());
        assert_eq!(found[0].key, "groups");
        assert!(found[0].message.contains("[[sources]]"), "{found:?}");
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
        let p = problems(err);
        assert_eq!(p[0].key, "http.listen_on", "{p:?}");
        assert!(p[0].message.contains("unknown key"), "{p:?}");
    }

    fn load_text(
        text: &str,
        env: &[(&str, &str)],
    ) -> (tempfile::TempDir, Result<Config, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("valwatch.toml");
        std::fs::write(&path, text).unwrap();
        let result = load_with_env(
            Some(&path),
            &Overrides::default(),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        );
        (dir, result)
    }

    #[test]
    fn groups_keep_ranges_as_ranges_with_their_files() {
        // validators_file is relative to the config file: written beside it
        // after `load_text` made the directory, then loaded again.
        let text = "[[beacon_nodes]]\nurl = \"http://127.0.0.1:5052\"\n\
                    [[groups]]\nname = \"a\"\nvalidators = \"0-4999999\"\n\
                    validators_file = \"more.txt\"\n\
                    [[groups]]\nname = \"b\"\nvalidators = \"5000000-5999999\"\n\
                    [monitor]\nexpected_offline = \"3-9\"\n";
        let (dir, _) = load_text(text, &[]);
        std::fs::write(dir.path().join("more.txt"), "# extra\n4999990-5000009\n7\n").unwrap();
        let cfg = load_with_env(
            Some(&dir.path().join("valwatch.toml")),
            &Overrides::default(),
            std::iter::empty(),
        )
        .unwrap();
        assert_eq!(cfg.groups[0].inline.ranges(), &[(0, 4_999_999)]);
        assert_eq!(cfg.groups[0].validators.ranges(), &[(0, 5_000_009)]);
        assert_eq!(cfg.groups[1].validators.ranges(), &[(5_000_000, 5_999_999)]);
        assert_eq!(cfg.expected_offline.ranges(), &[(3, 9)]);
        assert_eq!(cfg.all_validators().len(), 6_000_000);
        let overlaps = overlapping_groups(&cfg.groups);
        assert_eq!(overlaps.len(), 1);
        assert_eq!(overlaps[0].shared.to_string(), "5000000-5000009");
    }

    #[test]
    fn type_errors_in_three_sections_are_named_together_with_every_other_problem() {
        let (_dir, result) = load_text(
            r#"
            [[beacon_nodes]]
            url = "http://127.0.0.1:5052"
            max_requests_per_second = "fast"
            [[groups]]
            validators = "1"
            [http]
            per_validator_metrics_limit = "many"
            [database]
            url = "mysql://x"
            [alerts]
            down_after_missed = "three"
            early_warning = "maybe"
            "#,
            &[("VALWATCH_MONITOR__FROM_EPOCH", "soon")],
        );
        let found = problems(result.unwrap_err());
        let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "beacon_nodes[0].max_requests_per_second",
            "http.per_validator_metrics_limit",
            "alerts.down_after_missed",
            "alerts.early_warning",
            "monitor.from_epoch",
            // Not a type error: found by validation, in the same run.
            "database.url",
        ] {
            assert!(keys.contains(&k), "{k} missing from {found:?}");
        }
        assert_eq!(found.len(), 6, "{found:?}");
        let limit = found
            .iter()
            .find(|p| p.key == "http.per_validator_metrics_limit")
            .unwrap();
        assert_eq!(
            limit.message,
            "expected a whole number, found the text \"many\""
        );
    }

    #[test]
    fn a_key_of_the_wrong_type_is_not_also_reported_missing() {
        let (_dir, result) = load_text(
            "[[beacon_nodes]]\nurl = true\n[[groups]]\nvalidators = \"1\"\n[heartbeat]\nurl = [1]\n",
            &[],
        );
        let found = problems(result.unwrap_err());
        let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["beacon_nodes[0].url", "heartbeat.url"], "{found:?}");
    }

    #[test]
    fn an_empty_validator_list_is_a_problem() {
        for list in ["", " ", ",,"] {
            let (_dir, result) = load_text(
                &format!("[[beacon_nodes]]\nurl = \"http://127.0.0.1:5052\"\n[[groups]]\nvalidators = \"{list}\"\n"),
                &[],
            );
            let found = problems(result.unwrap_err());
            assert_eq!(found.len(), 1, "{list:?}: {found:?}");
            assert_eq!(found[0].key, "groups[0].validators");
            assert!(found[0].message.contains("lists no validator"), "{found:?}");
        }
    }

    #[test]
    fn relative_paths_in_the_file_are_beside_it_and_flags_beside_the_working_directory() {
        let base =
            "[[beacon_nodes]]\nurl = \"http://127.0.0.1:5052\"\n[[groups]]\nvalidators = \"1\"\n";
        let (dir, result) = load_text(&format!("data_dir = \"state\"\n{base}"), &[]);
        let cfg = result.unwrap();
        assert_eq!(cfg.data_dir, dir.path().join("state"));
        assert_eq!(
            cfg.effective_database_url(),
            format!(
                "sqlite://{}",
                dir.path().join("state/valwatch.sqlite").display()
            )
        );

        let (dir, result) = load_text(
            &format!("{base}[database]\nurl = \"sqlite://db/v.sqlite?mode=rwc\"\n"),
            &[],
        );
        assert_eq!(
            result.unwrap().database_url.unwrap(),
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("db/v.sqlite").display()
            )
        );
        let (_dir, result) = load_text(
            &format!("{base}[database]\nurl = \"sqlite:///var/lib/v.sqlite\"\n"),
            &[],
        );
        assert_eq!(
            result.unwrap().database_url.unwrap(),
            "sqlite:///var/lib/v.sqlite"
        );

        // The same through the commands that read only the database URL.
        let path = dir.path().join("valwatch.toml");
        std::fs::write(&path, format!("data_dir = \"state\"\n{base}")).unwrap();
        assert_eq!(
            database_url(Some(&path), None, None).unwrap(),
            format!(
                "sqlite://{}",
                dir.path().join("state/valwatch.sqlite").display()
            )
        );
        assert_eq!(
            database_url(Some(&path), None, Some("here".into())).unwrap(),
            "sqlite://here/valwatch.sqlite"
        );
        // From the environment: the shell's working directory, as a flag.
        let (_dir, result) = load_text(base, &[("VALWATCH_DATA_DIR", "from-env")]);
        assert_eq!(result.unwrap().data_dir, Path::new("from-env"));
        let (_dir, result) = load_text(
            &format!("data_dir = \"state\"\n{base}"),
            &[("VALWATCH_DATABASE__URL", "sqlite://env.sqlite")],
        );
        assert_eq!(result.unwrap().database_url.unwrap(), "sqlite://env.sqlite");
        // Without a file: the working directory, as before.
        assert_eq!(beside(Path::new("."), "x"), Path::new("x"));
        assert_eq!(
            sqlite_url_beside(Path::new("/etc"), "sqlite::memory:"),
            "sqlite::memory:"
        );
        assert_eq!(
            sqlite_url_beside(Path::new("/etc"), "postgres://h/db"),
            "postgres://h/db"
        );
    }

    fn group(name: &str, list: &str) -> Group {
        let validators = parse_validator_list(list).unwrap();
        Group {
            name: name.into(),
            inline: validators.clone(),
            validators,
            validators_file: None,
        }
    }

    /// A case: its name, the groups (name, LIST), the overlaps expected
    /// (first, second, shared LIST).
    type OverlapCase<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str, &'a str)],
    );

    #[test]
    fn overlapping_groups_are_found_pair_by_pair() {
        let key = format!("0x{}", "ab".repeat(48));
        let cases: &[OverlapCase] = &[
            ("disjoint", &[("a", "1-3"), ("b", "4-6")], &[]),
            (
                "one shared",
                &[("a", "1-3"), ("b", "3-6")],
                &[("a", "b", "3")],
            ),
            (
                "three groups, two pairs",
                &[("a", "1-3"), ("b", "5"), ("c", "2,5,2")],
                &[("a", "c", "2"), ("b", "c", "5")],
            ),
            (
                "a repeat inside one group is no overlap",
                &[("a", "1,1")],
                &[],
            ),
            (
                "ranges cut into pieces",
                &[("a", "0-99"), ("b", "10-19,50,90-200")],
                &[("a", "b", "10-19,50,90-99")],
            ),
            (
                "ten groups of a million, side by side",
                &[
                    ("g0", "0-999999"),
                    ("g1", "1000000-1999999"),
                    ("g2", "2000000-2999999"),
                    ("g3", "3000000-3999999"),
                    ("g4", "4000000-4999999"),
                    ("g5", "5000000-5999999"),
                    ("g6", "6000000-6999999"),
                    ("g7", "7000000-7999999"),
                    ("g8", "8000000-8999999"),
                    ("g9", "9000000-9999999"),
                ],
                &[],
            ),
            (
                "millions shared",
                &[("a", "0-4999999"), ("b", "1000000-1999999,4999999-5999999")],
                &[("a", "b", "1000000-1999999,4999999")],
            ),
        ];
        for (name, groups, want) in cases {
            let groups: Vec<Group> = groups.iter().map(|(n, l)| group(n, l)).collect();
            let got: Vec<(String, String, String)> = overlapping_groups(&groups)
                .into_iter()
                .map(|o| (o.first, o.second, o.shared.to_string()))
                .collect();
            let want: Vec<(String, String, String)> = want
                .iter()
                .map(|(a, b, l)| (a.to_string(), b.to_string(), l.to_string()))
                .collect();
            assert_eq!(got, want, "{name}");
        }
        // Keys are compared as written.
        let groups = [
            group("a", &format!("1,{key}")),
            group("b", &format!("{key},2")),
        ];
        let found = overlapping_groups(&groups);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].shared.to_string(), key);
    }

    #[test]
    fn validators_missing_from_the_registry_are_named_by_place() {
        let known_key = format!("0x{}", "07".repeat(48));
        let unknown_key = format!("0x{}", "09".repeat(48));
        let over = Overrides {
            beacon_nodes: vec!["http://127.0.0.1:1".into()],
            ..Overrides::default()
        };
        let mut raw = RawConfig {
            groups: vec![
                RawGroup {
                    name: Some("a".into()),
                    validators: Some(format!("1-3,{known_key}")),
                    validators_file: None,
                },
                RawGroup {
                    name: Some("b".into()),
                    validators: Some(format!("2,{unknown_key},99")),
                    validators_file: None,
                },
                RawGroup {
                    name: Some("huge".into()),
                    validators: Some("0-4999999".into()),
                    validators_file: None,
                },
            ],
            ..RawConfig::default()
        };
        raw.monitor.expected_offline = Some("98".into());
        let cfg = validate(raw, &over, Path::new(".")).unwrap();
        // (what the chain holds, the places and their missing LISTs)
        let cases: Vec<(IdSet, Vec<(&str, String)>)> = vec![
            (
                parse_validator_list(&format!("0-63,{known_key}")).unwrap(),
                vec![
                    ("groups[1] (b)", format!("99,{unknown_key}")),
                    ("groups[2] (huge)", "64-4999999".into()),
                    ("monitor.expected_offline", "98".into()),
                ],
            ),
            (
                parse_validator_list("0-98").unwrap(),
                vec![
                    ("groups[0] (a)", known_key.clone()),
                    ("groups[1] (b)", format!("99,{unknown_key}")),
                    ("groups[2] (huge)", "99-4999999".into()),
                ],
            ),
            (
                parse_validator_list(&format!("0-4999999,{known_key},{unknown_key}")).unwrap(),
                vec![],
            ),
            (
                IdSet::default(),
                vec![
                    ("groups[0] (a)", format!("1-3,{known_key}")),
                    ("groups[1] (b)", format!("2,99,{unknown_key}")),
                    ("groups[2] (huge)", "0-4999999".into()),
                    ("monitor.expected_offline", "98".into()),
                ],
            ),
        ];
        for (on_chain, want) in cases {
            let got: Vec<(String, String)> = missing_from_registry(&cfg, &on_chain)
                .into_iter()
                .map(|(place, ids)| (place, ids.to_string()))
                .collect();
            let want: Vec<(String, String)> =
                want.into_iter().map(|(p, l)| (p.to_string(), l)).collect();
            assert_eq!(got, want, "on chain: {on_chain}");
        }
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

    /// The example with every commented-out key and table header made
    /// live: `# key = value` becomes `key = value`, `# [t]` / `# [[t]]`
    /// become headers. Prose comments stay comments (a comment line counts
    /// as a key only when it reads `# name = …` with a bare key name).
    fn uncommented(text: &str) -> String {
        let is_key = |l: &str| {
            l.split_once('=').is_some_and(|(k, _)| {
                let k = k.trim();
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        };
        let is_header = |l: &str| {
            let l = l.split('#').next().unwrap_or("").trim();
            let name = l.trim_start_matches('[').trim_end_matches(']');
            l.starts_with('[')
                && l.ends_with(']')
                && !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.".contains(c))
        };
        text.lines()
            .map(|line| match line.trim_start().strip_prefix('#') {
                Some(rest) if is_key(rest) || is_header(rest) => rest.trim_start().to_owned(),
                _ => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether the dotted `key` (tables of arrays without index) is given
    /// somewhere in `value`.
    fn present(value: &serde_json::Value, key: &[&str]) -> bool {
        match (value, key) {
            (_, []) => true,
            (serde_json::Value::Array(items), _) => items.iter().any(|v| present(v, key)),
            (serde_json::Value::Object(map), [first, rest @ ..]) => {
                map.get(*first).is_some_and(|v| present(v, rest))
            }
            _ => false,
        }
    }

    #[test]
    fn the_example_documents_every_key_of_the_configuration_types() {
        // The keys come from the types (`RawConfig` and everything in it),
        // so a key added to a `Raw*` struct fails here until the example
        // shows it, live or as `# key = value`. In the other direction,
        // the check below rejects a documented key that does not exist or
        // whose example value has the wrong type.
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("valwatch.example.toml"),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uncommented.toml");
        std::fs::write(&path, uncommented(&example)).unwrap();
        let (_, problems) = load_raw_checked(Some(&path), std::iter::empty())
            .unwrap_or_else(|e| panic!("the uncommented example is not TOML: {e}"));
        assert!(
            problems.is_empty(),
            "the example documents wrongly: {problems:?}"
        );

        let text = std::fs::read_to_string(&path).unwrap();
        let tree: serde_json::Value = toml::from_str::<toml::Value>(&text)
            .map(|v| serde_json::to_value(v).unwrap())
            .unwrap();
        let keys = schema::keys(&raw_shape().unwrap());
        assert!(keys.len() > 50, "the probe lost keys: {keys:?}");
        let missing: Vec<&String> = keys
            .iter()
            .filter(|k| !present(&tree, &k.split('.').collect::<Vec<_>>()))
            .collect();
        assert!(
            missing.is_empty(),
            "valwatch.example.toml does not document {missing:?}"
        );
    }

    #[test]
    fn uncommenting_turns_keys_and_headers_live_and_leaves_prose() {
        let text = "# prose: a = b here\n# [[alerts.log]]\n# name = \"x\"  # why\n#   timeout = \"1s\"\n# e.g. x = 1\n";
        assert_eq!(
            uncommented(text),
            "# prose: a = b here\n[[alerts.log]]\nname = \"x\"  # why\ntimeout = \"1s\"\n# e.g. x = 1"
        );
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
