//! IO: the services that list the keys to watch (`[[sources]]`, issue 13):
//! validator clients through the standard keymanager API, and Web3Signer.
//! Only this module talks to them and knows their JSON.
//!
//! Owns: one listing per source per epoch (or on SIGHUP), the last known
//! keys of every source, and whether each source answered. Must not:
//! resolve keys to indices (the watch list does, through the beacon pool)
//! or judge anything.
//!
//! A source that does not answer keeps its last known keys: a validator
//! client restarting (or a token file being rewritten) must not make the
//! monitor drop every validator and then page on none of them.
//!
//! Wire facts, from the specifications:
//! - keymanager API (ethereum/keymanager-APIs, `apis/local_keystores.yaml`,
//!   operation `ListKeys`): `GET /eth/v1/keystores` with
//!   `Authorization: Bearer <token>` answers
//!   `{"data":[{"validating_pubkey":"0x…","derivation_path":"m/…","readonly":false}]}`;
//!   only `validating_pubkey` is required. 401/403 when the token is wrong.
//!   Every client writes the token to a file (Lighthouse `api-token.txt`,
//!   Teku/Prysm/Lodestar/Nimbus their own paths).
//! - Web3Signer (Consensys' Eth2 API, tag "Public Key"):
//!   `GET /api/v1/eth2/publicKeys` answers a JSON array of `0x` hex BLS
//!   public keys, without authentication.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::{info, warn};

use crate::beacon::redact_url;
use crate::chain::Pubkey;
use crate::config::alerts::Secret;
use crate::config::{SourceConfig, SourceKind};

/// The keymanager API's key list route (keymanager-APIs `ListKeys`).
pub const KEYSTORES_ROUTE: &str = "/eth/v1/keystores";
/// Web3Signer's key list route.
pub const WEB3SIGNER_ROUTE: &str = "/api/v1/eth2/publicKeys";

/// Largest key list read. One key is ~100 bytes in the keymanager answer
/// (key, derivation path, flag); 16 MiB is ~160 000 keys, far above what
/// one validator client or signer holds, and bounds what a broken or
/// hostile server can make us allocate.
pub const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Until the chain's epoch length is known, sources are read this often
/// (a mainnet epoch: 32 slots of 12 s).
const DEFAULT_EVERY: Duration = Duration::from_secs(384);

#[derive(Deserialize)]
struct KeystoresAnswer {
    data: Vec<KeystoreEntry>,
}

#[derive(Deserialize)]
struct KeystoreEntry {
    validating_pubkey: String,
}

fn parse_keys<'a>(keys: impl Iterator<Item = &'a str>) -> Result<Vec<Pubkey>, String> {
    let mut out: Vec<Pubkey> = Vec::new();
    for (i, k) in keys.enumerate() {
        let pk: Pubkey = k
            .parse()
            .map_err(|e| format!("key [{i}] `{k}` is not a public key: {e}"))?;
        if !out.contains(&pk) {
            out.push(pk);
        }
    }
    Ok(out)
}

/// PURE: the keys of a keymanager `GET /eth/v1/keystores` answer. One bad
/// key rejects the answer: a partial list would stop watching the rest.
pub fn parse_keystores(body: &[u8]) -> Result<Vec<Pubkey>, String> {
    let answer: KeystoresAnswer =
        serde_json::from_slice(body).map_err(|e| format!("not a key list: {e}"))?;
    parse_keys(answer.data.iter().map(|e| e.validating_pubkey.as_str()))
}

/// PURE: the keys of a Web3Signer `GET /api/v1/eth2/publicKeys` answer.
pub fn parse_public_keys(body: &[u8]) -> Result<Vec<Pubkey>, String> {
    let answer: Vec<String> =
        serde_json::from_slice(body).map_err(|e| format!("not a key list: {e}"))?;
    parse_keys(answer.iter().map(String::as_str))
}

/// What one source looks like, for the status page: never its token.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SourceStatus {
    pub name: String,
    pub kind: &'static str,
    pub url: String,
    pub group: String,
    /// Keys it listed last (kept while it does not answer).
    pub keys: usize,
    /// Whether its last listing succeeded.
    pub up: bool,
    /// Why the last listing failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

struct Source {
    config: SourceConfig,
    /// None until it first answered.
    keys: Option<Vec<Pubkey>>,
    error: Option<String>,
}

/// The sources and their last known keys.
pub struct Sources {
    list: Vec<Source>,
    http: reqwest::Client,
    every: Duration,
    last: Option<Instant>,
    /// Set by SIGHUP: read now, not at the next epoch.
    wake: Arc<AtomicBool>,
}

impl Sources {
    pub fn new(configs: Vec<SourceConfig>) -> anyhow::Result<Sources> {
        let http = reqwest::Client::builder()
            // Redirects could carry the bearer token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Sources {
            list: configs
                .into_iter()
                .map(|config| Source {
                    config,
                    keys: None,
                    error: None,
                })
                .collect(),
            http,
            every: DEFAULT_EVERY,
            last: None,
            wake: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Reads the sources every `every` (the chain's epoch).
    pub fn set_interval(&mut self, every: Duration) {
        self.every = every;
    }

    /// The flag a SIGHUP handler sets to have the sources read at once.
    pub fn waker(&self) -> Arc<AtomicBool> {
        self.wake.clone()
    }

    /// The groups the sources fill, in configuration order.
    pub fn groups(&self) -> Vec<String> {
        self.list.iter().map(|s| s.config.group.clone()).collect()
    }

    /// Whether a reading is due: never read, an epoch passed, or woken.
    pub fn due(&self) -> bool {
        self.wake.load(Ordering::Relaxed) || self.last.is_none_or(|t| t.elapsed() >= self.every)
    }

    /// Whether a source has never answered (its keys are not known yet).
    pub fn any_unanswered(&self) -> bool {
        self.list.iter().any(|s| s.keys.is_none())
    }

    /// Asks every source for its keys, all at once. Returns the groups
    /// whose keys changed, with their new keys. A source that fails keeps
    /// its previous keys and is logged when it goes down and comes back.
    pub async fn read(&mut self) -> Vec<(String, Vec<Pubkey>)> {
        self.wake.store(false, Ordering::Relaxed);
        self.last = Some(Instant::now());
        let http = &self.http;
        let answers =
            futures::future::join_all(self.list.iter().map(|s| fetch(http, &s.config))).await;
        let mut changed = Vec::new();
        for (s, answer) in self.list.iter_mut().zip(answers) {
            let name = &s.config.name;
            let url = redact_url(&s.config.url);
            match answer {
                Ok(keys) => {
                    if let Some(e) = s.error.take() {
                        info!(source = %name, url = %url, was = %e, "key source answers again");
                    }
                    if s.keys.as_ref() != Some(&keys) {
                        let before = s.keys.as_deref().unwrap_or(&[]);
                        let added = keys.iter().filter(|k| !before.contains(k)).count();
                        let removed = before.iter().filter(|k| !keys.contains(k)).count();
                        info!(source = %name, group = %s.config.group, keys = keys.len(),
                              added, removed, "key source lists new keys");
                        changed.push((s.config.group.clone(), keys.clone()));
                        s.keys = Some(keys);
                    }
                }
                Err(e) => {
                    if s.error.as_deref() != Some(e.as_str()) {
                        let kept = s.keys.as_ref().map_or(0, Vec::len);
                        warn!(source = %name, url = %url, error = %e, kept_keys = kept,
                              "key source does not answer: keeping its last known keys");
                    }
                    s.error = Some(e);
                }
            }
        }
        changed
    }

    pub fn statuses(&self) -> Vec<SourceStatus> {
        self.list
            .iter()
            .map(|s| SourceStatus {
                name: s.config.name.clone(),
                kind: s.config.kind.as_str(),
                url: redact_url(&s.config.url),
                group: s.config.group.clone(),
                keys: s.keys.as_ref().map_or(0, Vec::len),
                up: s.keys.is_some() && s.error.is_none(),
                error: s.error.clone(),
            })
            .collect()
    }
}

/// The token in `path`, trimmed (clients end the file with a newline).
fn read_token(path: &std::path::Path) -> Result<Secret, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("token file {} is empty", path.display()));
    }
    Ok(Secret::new(token))
}

/// One listing. Errors name the route and never contain the token.
async fn fetch(http: &reqwest::Client, source: &SourceConfig) -> Result<Vec<Pubkey>, String> {
    let route = match source.kind {
        SourceKind::Keymanager => KEYSTORES_ROUTE,
        SourceKind::Web3Signer => WEB3SIGNER_ROUTE,
    };
    let url = source
        .url
        .join(route.trim_start_matches('/'))
        .map_err(|e| format!("{route}: {e}"))?;
    let mut request = http
        .get(url)
        .timeout(source.timeout)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(path) = &source.token_file {
        let token = read_token(path)?;
        request = request.bearer_auth(token.expose());
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| format!("{route}: {}", e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 | 403 => " (is token_file the validator client's current API token?)",
            _ => "",
        };
        return Err(format!("{route}: HTTP {status}{hint}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("{route}: {}", e.without_url()))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!(
                "{route}: answer larger than {MAX_ANSWER_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let parsed = match source.kind {
        SourceKind::Keymanager => parse_keystores(&body),
        SourceKind::Web3Signer => parse_public_keys(&body),
    };
    parsed.map_err(|e| format!("{route}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> String {
        format!("0x{}", hex::encode([b; 48]))
    }

    #[test]
    fn keymanager_answers_are_read_by_their_spec_shape() {
        let (a, b) = (key(0xa1), key(0xb2));
        // (case, body, Ok(number of keys) or Err(part of the message))
        let cases: Vec<(&str, String, Result<usize, &str>)> = vec![
            (
                "the spec's example shape",
                format!(
                    r#"{{"data":[{{"validating_pubkey":"{a}","derivation_path":"m/12381/3600/0/0/0","readonly":false}}]}}"#
                ),
                Ok(1),
            ),
            (
                "only the required field",
                format!(
                    r#"{{"data":[{{"validating_pubkey":"{a}"}},{{"validating_pubkey":"{b}"}}]}}"#
                ),
                Ok(2),
            ),
            ("no keys", r#"{"data":[]}"#.into(), Ok(0)),
            (
                "a repeated key counts once",
                format!(
                    r#"{{"data":[{{"validating_pubkey":"{a}"}},{{"validating_pubkey":"{a}"}}]}}"#
                ),
                Ok(1),
            ),
            ("no data", r#"{"keys":[]}"#.into(), Err("not a key list")),
            (
                "a short key",
                r#"{"data":[{"validating_pubkey":"0x12"}]}"#.into(),
                Err("key [0] `0x12`"),
            ),
            (
                "the web3signer shape",
                format!(r#"["{a}"]"#),
                Err("not a key list"),
            ),
            ("not JSON", "<html>".into(), Err("not a key list")),
        ];
        for (case, body, want) in cases {
            let got = parse_keystores(body.as_bytes());
            match want {
                Ok(n) => assert_eq!(got.map(|k| k.len()), Ok(n), "{case}"),
                Err(part) => {
                    let e = got.expect_err(case);
                    assert!(e.contains(part), "{case}: {e}");
                }
            }
        }
    }

    #[test]
    fn web3signer_answers_are_a_plain_array() {
        let (a, b) = (key(0xa1), key(0xb2));
        assert_eq!(
            parse_public_keys(format!(r#"["{a}","{b}"]"#).as_bytes()).map(|k| k.len()),
            Ok(2)
        );
        assert_eq!(parse_public_keys(b"[]").map(|k| k.len()), Ok(0));
        let e = parse_public_keys(br#"["0xzz"]"#).unwrap_err();
        assert!(e.contains("key [0]"), "{e}");
        let e = parse_public_keys(br#"{"data":[]}"#).unwrap_err();
        assert!(e.contains("not a key list"), "{e}");
    }

    #[test]
    fn status_never_shows_the_token_and_hides_url_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("api-token.txt");
        std::fs::write(&token, "api-token-0xsecret\n").unwrap();
        let s = Sources::new(vec![SourceConfig {
            name: "vc".into(),
            kind: SourceKind::Keymanager,
            url: "http://user:pw@127.0.0.1:1/".parse().unwrap(),
            token_file: Some(token.clone()),
            group: "vc".into(),
            timeout: Duration::from_secs(1),
        }])
        .unwrap();
        let shown = serde_json::to_string(&s.statuses()).unwrap();
        assert!(
            !shown.contains("secret") && !shown.contains("pw"),
            "{shown}"
        );
        let t = read_token(&token).unwrap();
        assert_eq!(t.expose(), "api-token-0xsecret");
        assert_eq!(format!("{t} {t:?}"), "*** ***");
    }

    /// A keymanager (a real HTTP server) that lists `keys` while `mode` is
    /// 0 and answers 401 while it is 1 or the bearer token is wrong.
    async fn keymanager(
        keys: Vec<String>,
        mode: Arc<std::sync::atomic::AtomicU8>,
    ) -> std::net::SocketAddr {
        let app = axum::Router::new().route(
            KEYSTORES_ROUTE,
            axum::routing::get(move |h: axum::http::HeaderMap| {
                let keys = keys.clone();
                let mode = mode.clone();
                async move {
                    let auth = h.get("authorization").and_then(|v| v.to_str().ok());
                    if mode.load(Ordering::SeqCst) == 1 || auth != Some("Bearer tok-1") {
                        return (axum::http::StatusCode::UNAUTHORIZED, String::new());
                    }
                    let data: Vec<serde_json::Value> = keys
                        .iter()
                        .map(|k| serde_json::json!({"validating_pubkey": k}))
                        .collect();
                    (
                        axum::http::StatusCode::OK,
                        serde_json::json!({ "data": data }).to_string(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    #[tokio::test]
    async fn a_source_that_stops_answering_keeps_its_keys_and_says_why() {
        let mode = Arc::new(std::sync::atomic::AtomicU8::new(0));
        let addr = keymanager(vec![key(1), key(2)], mode.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("api-token.txt");
        std::fs::write(&token, "tok-1\n").unwrap();
        let mut s = Sources::new(vec![SourceConfig {
            name: "vc".into(),
            kind: SourceKind::Keymanager,
            url: format!("http://{addr}").parse().unwrap(),
            token_file: Some(token.clone()),
            group: "vc-keys".into(),
            timeout: Duration::from_secs(2),
        }])
        .unwrap();
        assert!(s.due(), "never read");
        let changed = s.read().await;
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].0, "vc-keys");
        assert_eq!(changed[0].1.len(), 2);
        assert!(!s.due(), "read just now");
        assert!(s.read().await.is_empty(), "same keys: no change");

        // Refused: the keys stay, the status says why, the token is nowhere.
        mode.store(1, Ordering::SeqCst);
        assert!(s.read().await.is_empty());
        let st = &s.statuses()[0];
        assert_eq!((st.up, st.keys), (false, 2));
        let e = st.error.clone().unwrap();
        assert!(e.contains("401") && e.contains("/eth/v1/keystores"), "{e}");
        assert!(!e.contains("tok-1"), "{e}");

        // A missing token file is named, and also keeps the keys.
        mode.store(0, Ordering::SeqCst);
        std::fs::remove_file(&token).unwrap();
        assert!(s.read().await.is_empty());
        let st = &s.statuses()[0];
        assert!(
            st.error.as_deref().unwrap().contains("api-token.txt"),
            "{st:?}"
        );
        assert_eq!(st.keys, 2);

        // Back: answering again with the same keys, so no change to hand out.
        std::fs::write(&token, "tok-1").unwrap();
        s.waker().store(true, Ordering::SeqCst);
        assert!(s.due(), "woken (SIGHUP)");
        let changed = s.read().await;
        assert!(changed.is_empty(), "same two keys");
        assert!(s.statuses()[0].up);
    }
}
