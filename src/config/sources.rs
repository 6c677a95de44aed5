//! The `[[sources]]` section: services that list the keys to watch, so
//! that keys need not be named by hand (issue 13). Owns their validation;
//! talking to them is `crate::sources`' business.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{add, parse_duration, Problem};

/// Default timeout of one key listing. A validator client answers from
/// memory in milliseconds; a slow answer must not hold up an epoch's round.
pub const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub name: Option<String>,
    /// `keymanager` or `web3signer`.
    pub kind: Option<String>,
    pub url: Option<String>,
    /// The validator client's API token file (keymanager only).
    pub token_file: Option<String>,
    /// The group its keys form; the source's name by default.
    pub group: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// The standard keymanager API of a validator client
    /// (`GET /eth/v1/keystores`, bearer token).
    Keymanager,
    /// Web3Signer's key list (`GET /api/v1/eth2/publicKeys`, no auth).
    Web3Signer,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Keymanager => "keymanager",
            SourceKind::Web3Signer => "web3signer",
        }
    }
}

/// One validated source. The token is not here: it is read from
/// `token_file` at every listing (a validator client may write a new one
/// when it restarts), wrapped so that it never prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    pub url: url::Url,
    pub token_file: Option<PathBuf>,
    pub group: String,
    pub timeout: Duration,
}

/// A name usable as a group (and so as a metric label value).
fn is_group_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// PURE: validates every source, naming each problem by
/// its key (`sources[1].token_file`). `groups` are the names of the
/// `[[groups]]`: a source's group must not be one of them (its members
/// are replaced by the source's list at every reading).
pub fn validate(
    raw: Vec<RawSource>,
    base_dir: &Path,
    groups: &HashSet<String>,
    problems: &mut Vec<Problem>,
) -> Vec<SourceConfig> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let mut taken = HashSet::new();
    for (i, s) in raw.into_iter().enumerate() {
        let key = format!("sources[{i}]");
        let before = problems.len();
        let kind = match s.kind.as_deref() {
            None => {
                add(
                    problems,
                    format!("{key}.kind"),
                    "missing: keymanager or web3signer".into(),
                );
                None
            }
            Some("keymanager") => Some(SourceKind::Keymanager),
            Some("web3signer") => Some(SourceKind::Web3Signer),
            Some(other) => {
                add(
                    problems,
                    format!("{key}.kind"),
                    format!("`{other}` is not one of keymanager, web3signer"),
                );
                None
            }
        };
        let url = match s.url.as_deref() {
            None => {
                add(problems, format!("{key}.url"), "missing".into());
                None
            }
            Some(u) => match url::Url::parse(u) {
                Ok(url) if url.scheme() == "http" || url.scheme() == "https" => Some(url),
                Ok(_) => {
                    add(
                        problems,
                        format!("{key}.url"),
                        "must be an http:// or https:// URL".into(),
                    );
                    None
                }
                Err(e) => {
                    add(problems, format!("{key}.url"), format!("not a URL: {e}"));
                    None
                }
            },
        };
        let token_file = s.token_file.as_deref().map(|f| base_dir.join(f));
        match (kind, &token_file) {
            (Some(SourceKind::Keymanager), None) => add(
                problems,
                format!("{key}.token_file"),
                "missing: the keymanager API needs the validator client's API token file".into(),
            ),
            (Some(SourceKind::Web3Signer), Some(_)) => add(
                problems,
                format!("{key}.token_file"),
                "Web3Signer lists its keys without a token: remove it".into(),
            ),
            _ => {}
        }
        let name = s.name.clone().unwrap_or_else(|| {
            url.as_ref()
                .map(|u| {
                    format!(
                        "{}-{}",
                        u.host_str().unwrap_or("source"),
                        u.port_or_known_default().unwrap_or(0)
                    )
                })
                .unwrap_or_else(|| format!("source{i}"))
        });
        if !is_group_name(&name) {
            add(
                problems,
                format!("{key}.name"),
                format!("`{name}`: use letters, digits, '-', '_' or '.'"),
            );
        }
        if !names.insert(name.clone()) {
            add(
                problems,
                format!("{key}.name"),
                format!("`{name}` is used by another source"),
            );
        }
        let group = s.group.clone().unwrap_or_else(|| name.clone());
        let group_key = if s.group.is_some() {
            format!("{key}.group")
        } else {
            format!("{key}.name")
        };
        if s.group.is_some() && !is_group_name(&group) {
            add(
                problems,
                group_key.clone(),
                format!("`{group}`: use letters, digits, '-', '_' or '.'"),
            );
        }
        if groups.contains(&group) {
            add(
                problems,
                group_key.clone(),
                format!("`{group}` is the name of a [[groups]] entry: a source's keys form a group of their own"),
            );
        } else if !taken.insert(group.clone()) {
            add(
                problems,
                group_key,
                format!("`{group}` is the group of another source"),
            );
        }
        let timeout = match s.timeout.as_deref() {
            None => Some(DEFAULT_SOURCE_TIMEOUT),
            Some(t) => parse_duration(&format!("{key}.timeout"), t, problems),
        };
        if problems.len() != before {
            continue;
        }
        if let (Some(kind), Some(url), Some(timeout)) = (kind, url, timeout) {
            out.push(SourceConfig {
                name,
                kind,
                url,
                token_file,
                group,
                timeout,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: &str, url: &str, token: Option<&str>) -> RawSource {
        RawSource {
            kind: Some(kind.into()),
            url: Some(url.into()),
            token_file: token.map(Into::into),
            ..RawSource::default()
        }
    }

    fn problems_of(list: Vec<RawSource>, groups: &[&str]) -> Vec<(String, String)> {
        let groups: HashSet<String> = groups.iter().map(|s| s.to_string()).collect();
        let mut problems = Vec::new();
        let out = validate(list, Path::new("/etc/valwatch"), &groups, &mut problems);
        if problems.is_empty() {
            assert!(!out.is_empty());
        }
        problems.into_iter().map(|p| (p.key, p.message)).collect()
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        // (case, sources, [[groups]] names, expected (key, message part))
        let cases: Vec<(&str, Vec<RawSource>, Vec<&str>, Vec<(&str, &str)>)> = vec![
            (
                "good keymanager",
                vec![raw("keymanager", "http://127.0.0.1:5062", Some("t"))],
                vec![],
                vec![],
            ),
            (
                "good web3signer",
                vec![raw("web3signer", "http://signer:9000", None)],
                vec![],
                vec![],
            ),
            (
                "no kind",
                vec![RawSource {
                    url: Some("http://a:1".into()),
                    ..RawSource::default()
                }],
                vec![],
                vec![("sources[0].kind", "missing")],
            ),
            (
                "bad kind",
                vec![raw("prysm", "http://a:1", None)],
                vec![],
                vec![("sources[0].kind", "`prysm` is not one of")],
            ),
            (
                "no url",
                vec![RawSource {
                    kind: Some("web3signer".into()),
                    ..RawSource::default()
                }],
                vec![],
                vec![("sources[0].url", "missing")],
            ),
            (
                "ftp url",
                vec![raw("web3signer", "ftp://a/", None)],
                vec![],
                vec![("sources[0].url", "http://")],
            ),
            (
                "keymanager without token",
                vec![raw("keymanager", "http://a:1", None)],
                vec![],
                vec![("sources[0].token_file", "missing")],
            ),
            (
                "web3signer with token",
                vec![raw("web3signer", "http://a:1", Some("t"))],
                vec![],
                vec![("sources[0].token_file", "without a token")],
            ),
            (
                "same name twice",
                vec![
                    raw("web3signer", "http://a:1", None),
                    raw("web3signer", "http://a:1", None),
                ],
                vec![],
                vec![
                    ("sources[1].name", "another source"),
                    ("sources[1].name", "group of another source"),
                ],
            ),
            (
                "group clashes with [[groups]]",
                vec![RawSource {
                    group: Some("mine".into()),
                    ..raw("web3signer", "http://a:1", None)
                }],
                vec!["mine"],
                vec![("sources[0].group", "[[groups]]")],
            ),
            (
                "bad group name",
                vec![RawSource {
                    group: Some("a b".into()),
                    ..raw("web3signer", "http://a:1", None)
                }],
                vec![],
                vec![("sources[0].group", "use letters")],
            ),
            (
                "bad timeout",
                vec![RawSource {
                    timeout: Some("soon".into()),
                    ..raw("web3signer", "http://a:1", None)
                }],
                vec![],
                vec![("sources[0].timeout", "")],
            ),
        ];
        for (case, list, groups, want) in cases {
            let got = problems_of(list, &groups);
            assert_eq!(got.len(), want.len(), "{case}: {got:?}");
            for ((gk, gm), (wk, wm)) in got.iter().zip(&want) {
                assert_eq!(gk, wk, "{case}: {got:?}");
                assert!(gm.contains(wm), "{case}: `{gm}` lacks `{wm}`");
            }
        }
    }

    #[test]
    fn defaults_name_the_source_by_its_address_and_resolve_the_token_file() {
        let mut problems = Vec::new();
        let out = validate(
            vec![raw(
                "keymanager",
                "http://127.0.0.1:5062",
                Some("vc/api-token.txt"),
            )],
            Path::new("/etc/valwatch"),
            &HashSet::new(),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(out[0].name, "127.0.0.1-5062");
        assert_eq!(out[0].group, "127.0.0.1-5062");
        assert_eq!(out[0].timeout, DEFAULT_SOURCE_TIMEOUT);
        assert_eq!(
            out[0].token_file.as_deref(),
            Some(Path::new("/etc/valwatch/vc/api-token.txt"))
        );
    }
}
