//! Shared test helpers: the replay server of ../shared/devnet and fixtures.
#![allow(dead_code)]

pub mod pg;
pub mod smtp;
pub mod smtp_tls;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `../shared` beside the project's root; from a git worktree one level
/// further down (`wt/<branch>`), `../../shared`.
pub fn shared_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let beside = root.join("..").join("shared");
    let above = root.join("..").join("..").join("shared");
    if !beside.exists() && above.exists() {
        return above;
    }
    beside
}

pub fn fixture(name: &str) -> PathBuf {
    shared_dir().join("fixtures").join(name)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `replay.py`; killed on drop.
pub struct Replay {
    pub child: Child,
    pub port: u16,
}

impl Replay {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts replay.py with extra arguments and waits until it answers.
    pub fn start(recording: &str, extra: &[&str]) -> Replay {
        let port = free_port();
        let script = shared_dir().join("devnet").join("replay.py");
        let child = Command::new("python3")
            .arg(&script)
            .arg("--recording")
            .arg(fixture(recording))
            .arg("--port")
            .arg(port.to_string())
            .arg("--quiet")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 and ../shared/devnet/replay.py are needed");
        let replay = Replay { child, port };
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return replay;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("replay.py did not start on port {port}");
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Expected attestation verdicts from a recording's ground truth:
/// (validator, epoch) -> "included" | "missed".
pub fn expected_attestations(
    recording: &str,
    never_included: &[(u64, u64)],
) -> std::collections::BTreeMap<(u64, u64), &'static str> {
    let text = std::fs::read_to_string(fixture(recording).join("ground_truth.json")).unwrap();
    let gt: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for (epoch, e) in gt["epochs"].as_object().unwrap() {
        let epoch: u64 = epoch.parse().unwrap();
        let list = |k: &str| -> Vec<u64> {
            e.get(k)
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
                .unwrap_or_default()
        };
        for v in list("online") {
            out.insert((v, epoch), "included");
        }
        for v in list("offline") {
            out.insert((v, epoch), "missed");
        }
        if let Some(u) = e.get("uncertain_vc_log") {
            for v in u["signed_attestation"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_u64())
            {
                out.insert((v, epoch), "included");
            }
            for v in u["no_signed_attestation"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_u64())
            {
                out.insert((v, epoch), "missed");
            }
        }
    }
    for (v, e) in never_included {
        out.insert((*v, *e), "missed");
    }
    out
}

/// Runs valwatch in-process against `nodes` (validators 0-63, from epoch 0,
/// SQLite in a temporary directory, no HTTP) until `until` is judged for
/// good; returns the directory (keep it alive) and the store.
pub async fn run_in_process(
    nodes: Vec<String>,
    until: u64,
) -> (tempfile::TempDir, valwatch::store::Store) {
    let dir = tempfile::tempdir().unwrap();
    let over = valwatch::config::Overrides {
        beacon_nodes: nodes,
        validators: Some("0-63".into()),
        database_url: Some(format!(
            "sqlite://{}",
            dir.path().join("db.sqlite").display()
        )),
        listen: Some("off".into()),
        from_epoch: Some(0),
        data_dir: None,
    };
    let config =
        valwatch::config::validate(valwatch::config::RawConfig::default(), &over, dir.path())
            .unwrap();
    let url = config.effective_database_url();
    valwatch::app::run_with(
        config,
        Some(valwatch::chain::Epoch(until)),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    let store = valwatch::app::open_store(&url).await.unwrap();
    (dir, store)
}

/// Every (validator, epoch ≤ until) whose stored attestation status differs
/// from `expected`, as readable lines; a missing verdict is a gap.
pub fn attestation_mismatches(
    report: &valwatch::store::Report,
    expected: &std::collections::BTreeMap<(u64, u64), &'static str>,
    until: u64,
) -> Vec<String> {
    let got: std::collections::HashMap<(u64, u64), &str> = report
        .attestations
        .iter()
        .map(|a| ((a.validator_index.0, a.epoch.0), a.status.as_str()))
        .collect();
    expected
        .iter()
        .filter(|((_, e), _)| *e <= until)
        .filter_map(|(&(v, e), &want)| {
            let have = got.get(&(v, e)).copied().unwrap_or("absent (gap)");
            (have != want).then(|| format!("validator {v} epoch {e}: expected {want}, got {have}"))
        })
        .collect()
}

/// A webhook receiver on a free loopback port: every JSON body it gets,
/// in order of arrival.
pub async fn json_webhook() -> (
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    std::net::SocketAddr,
) {
    let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = hits.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let h = h.clone();
        async move {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                h.lock().unwrap().push(v);
            }
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (hits, addr)
}

/// A free loopback address (bound, then released).
pub fn free_addr() -> std::net::SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The value of an unlabelled series in a Prometheus text exposition.
pub fn gauge(text: &str, name: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// The PostgreSQL server the tests create their databases on:
/// `DATABASE_URL` as the README says, else the local default.
pub fn pg_admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The same server's database `name`.
pub fn pg_url(name: &str) -> String {
    let mut u = url::Url::parse(&pg_admin_url()).expect("DATABASE_URL is a URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}
