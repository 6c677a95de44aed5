//! What following a live chain costs on the wire, per epoch, measured where
//! an operator pays for it: between valwatch and the node. A counting
//! reverse proxy (a real HTTP server) sits in front of `replay.py` serving
//! the Lodestar recording live (64 watched, 8-slot epochs, 1 s slots);
//! valwatch talks only to the proxy. Over six steady epochs the requests and
//! the response bytes per epoch must stay within the budget of issue 12
//! (the Python peer, Kiln's eth-validator-watcher, asks 44 requests and
//! 73 kB per epoch on the same replay), and the verdicts must still match
//! the ground truth.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use valwatch::config::{validate, Overrides, RawConfig};
use valwatch::store::ReportQuery;

const RECORDING: &str = "lodestar-devnet";
/// Seconds per slot at `--speed 2` (the recording has 2 s slots).
const SLOT_S: u64 = 1;
const SLOTS_PER_EPOCH: u64 = 8;
/// The measured window: wall epochs `FROM..TO` (six epochs, after the
/// start-up epoch and its one-off reads, with validators going offline in
/// epoch 6 so that missed duties are part of what is paid for).
const FROM: u64 = 2;
const TO: u64 = 8;
/// Issue 12's goal: at most one more request per epoch than the peer (44)
/// and ≤ 100 kB (the peer: 73 kB). With issue 14's rewards reads this
/// measured 48–49 requests and 105 kB; with node health spaced (syncing
/// once per epoch while a node proves itself, finality once per head
/// epoch) and sync-committee rewards derived from one read per epoch, it
/// measures 34 requests and 97 kB.
const MAX_REQUESTS_PER_EPOCH: u64 = 45;
const MAX_BYTES_PER_EPOCH: u64 = 100_000;

/// Requests and response-body bytes by route (ids folded into `{n}` and
/// `{root}`), counted as they pass.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, (u64, u64)>>);

impl Tally {
    fn snapshot(&self) -> BTreeMap<String, (u64, u64)> {
        self.0.lock().unwrap().clone()
    }
    fn add(&self, route: &str, requests: u64, bytes: u64) {
        let mut m = self.0.lock().unwrap();
        let e = m.entry(route.to_string()).or_default();
        e.0 += requests;
        e.1 += bytes;
    }
}

/// `GET /eth/v1/beacon/states/{n}/validators` from a concrete path: what
/// the request asked for, without the ids that change every epoch.
fn route(method: &str, path_and_query: &str) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let path: Vec<String> = path
        .split('/')
        .map(|s| {
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                "{n}".to_string()
            } else if s.starts_with("0x") {
                "{root}".to_string()
            } else {
                s.to_string()
            }
        })
        .collect();
    let keys: Vec<&str> = query
        .split('&')
        .filter_map(|kv| kv.split('=').next())
        .filter(|k| !k.is_empty())
        .collect();
    let mut out = format!("{method} {}", path.join("/"));
    if !keys.is_empty() {
        out.push('?');
        out.push_str(&keys.join("&"));
    }
    out
}

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    tally: Arc<Tally>,
}

async fn forward(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let method = req.method().clone();
    let pq = req
        .uri()
        .path_and_query()
        .map(|x| x.as_str().to_string())
        .unwrap_or_default();
    let key = route(method.as_str(), &pq);
    p.tally.add(&key, 1, 0);
    let content_type = req.headers().get("content-type").cloned();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let mut up = p.http.request(method, format!("{}{pq}", p.upstream));
    if let Some(ct) = content_type {
        up = up.header("content-type", ct);
    }
    if !body.is_empty() {
        up = up.body(body);
    }
    let Ok(resp) = up.send().await else {
        return Response::builder().status(502).body(Body::empty()).unwrap();
    };
    // `WIRE_TRACE=1`: every exchange as it happens (what asked what, when).
    if std::env::var("WIRE_TRACE").is_ok() {
        eprintln!(
            "{:.1} {} {pq}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
                % 1000.0,
            resp.status().as_u16()
        );
    }
    let mut out = Response::builder().status(resp.status().as_u16());
    for (name, value) in resp.headers() {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let tally = p.tally.clone();
    let stream = resp.bytes_stream().map(move |chunk| {
        if let Ok(c) = &chunk {
            tally.add(&key, 0, c.len() as u64);
        }
        chunk
    });
    out.body(Body::from_stream(stream)).unwrap()
}

async fn start_proxy(upstream: String) -> (String, Arc<Tally>) {
    let tally = Arc::new(Tally::default());
    let state = Arc::new(Proxy {
        upstream,
        http: reqwest::Client::new(),
        tally: tally.clone(),
    });
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), tally)
}

async fn sleep_until_unix(t: f64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    if t > now {
        tokio::time::sleep(Duration::from_secs_f64(t - now)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_devnet_live_costs_at_most_the_peers_budget_per_epoch() {
    let genesis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3;
    let g = genesis.to_string();
    let replay = common::Replay::start(
        RECORDING,
        &["--mode", "live", "--speed", "2", "--genesis-time", &g],
    );
    let (proxy, tally) = start_proxy(replay.url()).await;

    let dir = tempfile::tempdir().unwrap();
    let over = Overrides {
        beacon_nodes: vec![proxy],
        validators: Some("0-63".into()),
        database_url: Some(format!(
            "sqlite://{}",
            dir.path().join("db.sqlite").display()
        )),
        listen: Some("off".into()),
        from_epoch: Some(0),
        data_dir: None,
    };
    let config = validate(RawConfig::default(), &over, dir.path()).unwrap();
    let db = config.effective_database_url();
    let cancel = CancellationToken::new();
    let daemon = tokio::spawn(valwatch::app::run_with(config, None, cancel.clone()));

    // Mid-slot, so that a round straddling the boundary is not split.
    let at = |epoch: u64| genesis as f64 + (epoch * SLOTS_PER_EPOCH * SLOT_S) as f64 + 0.5;
    sleep_until_unix(at(FROM)).await;
    let before = tally.snapshot();
    sleep_until_unix(at(TO)).await;
    let after = tally.snapshot();
    cancel.cancel();
    daemon.await.unwrap().unwrap();

    let epochs = TO - FROM;
    let mut requests = 0;
    let mut bytes = 0;
    let mut lines = Vec::new();
    for (k, (r, b)) in &after {
        let (r0, b0) = before.get(k).copied().unwrap_or((0, 0));
        let (dr, db) = (r - r0, b - b0);
        if dr > 0 || db > 0 {
            lines.push(format!(
                "{:>6.2} req {:>8} B/epoch  {k}",
                dr as f64 / epochs as f64,
                db / epochs
            ));
        }
        requests += dr;
        bytes += db;
    }
    let per_epoch = (requests / epochs, bytes / epochs);
    eprintln!(
        "per epoch over wall epochs {FROM}..{TO}: {} requests, {} bytes\n{}",
        per_epoch.0,
        per_epoch.1,
        lines.join("\n")
    );

    // The verdicts are still the ground truth's.
    let store = valwatch::app::open_store(&db).await.unwrap();
    let cursor = store.cursor().await.unwrap().map(|e| e.0);
    assert!(
        cursor.is_some_and(|c| c + 3 >= TO),
        "final verdicts fell behind: cursor {cursor:?} at wall epoch {TO}"
    );
    let report = store.report(&ReportQuery::default()).await.unwrap();
    let expected = common::expected_attestations(RECORDING, &[]);
    let wrong = common::attestation_mismatches(&report, &expected, cursor.unwrap_or(0));
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    assert!(
        per_epoch.0 <= MAX_REQUESTS_PER_EPOCH,
        "{} requests per epoch (budget {MAX_REQUESTS_PER_EPOCH})",
        per_epoch.0
    );
    assert!(
        per_epoch.1 <= MAX_BYTES_PER_EPOCH,
        "{} bytes per epoch (budget {MAX_BYTES_PER_EPOCH})",
        per_epoch.1
    );
}
