//! Alerting end to end with real receivers on 127.0.0.1: an axum server
//! plays the JSON / Slack / Discord webhooks, the Telegram Bot API and
//! Alertmanager; a real SMTP server process (`tests/support/smtp_sink.py`,
//! checking AUTH) receives the emails. The engine runs on a real store
//! (SQLite; the restart case also on PostgreSQL). STARTTLS and implicit TLS
//! are in `alerting_email_tls.rs` (the stdlib server speaks plain SMTP only).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use sqlx::Connection;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use valwatch::alerting::channels::signature;
use valwatch::alerting::{test_alert, Engine, EpochContext};
use valwatch::analysis::{AttestationStatus, AttestationVerdict};
use valwatch::chain::{Epoch, Slot, ValidatorIndex};
use valwatch::config::alerts::{validate, AlertsConfig, RawAlerts};
use valwatch::metrics::Metrics;
use valwatch::status::GroupSpec;
use valwatch::store::{EpochRecord, Store};

use common::smtp::SmtpSink;

const SECRET: &str = "shared-secret";
const EPOCH: Duration = Duration::from_secs(384);

// ------------------------------------------------------------ receivers --

#[derive(Clone, Debug)]
struct Hit {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Hit {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Paths answering 503 while listed.
    down: Arc<Mutex<Vec<String>>>,
    refused: Arc<Mutex<HashMap<String, usize>>>,
}

impl Receiver {
    fn on(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path.starts_with(path))
            .cloned()
            .collect()
    }
    fn set_down(&self, path: &str, down: bool) {
        let mut d = self.down.lock().unwrap();
        d.retain(|p| p != path);
        if down {
            d.push(path.to_string());
        }
    }
}

async fn handle(
    axum::extract::State(r): axum::extract::State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let path = uri.path().to_string();
    if r.down.lock().unwrap().iter().any(|p| path.starts_with(p)) {
        *r.refused.lock().unwrap().entry(path).or_default() += 1;
        return (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response();
    }
    r.hits.lock().unwrap().push(Hit {
        path: path.clone(),
        headers,
        body: body.to_vec(),
    });
    if path.ends_with("/sendMessage") {
        axum::Json(serde_json::json!({"ok": true, "result": {"message_id": 1}})).into_response()
    } else {
        "ok".into_response()
    }
}

async fn start_http() -> (Receiver, SocketAddr) {
    let r = Receiver::default();
    let app = axum::Router::new().fallback(handle).with_state(r.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, addr)
}

// -------------------------------------------------------------- harness --

struct World {
    http: Receiver,
    smtp: SmtpSink,
    cfg: AlertsConfig,
}

async fn world() -> World {
    let (http, h) = start_http().await;
    let smtp = SmtpSink::start(Some(("ops", "hunter2")));
    // Every change is told at once here: these cases are about delivery;
    // the rhythm (group_wait, group_interval) is the engine's own test.
    let text = format!(
        r#"
        group_wait = "0s"
        group_interval = "0s"
        retry_min = "100ms"
        retry_max = "400ms"
        send_timeout = "3s"
        [[email]]
        name = "mail"
        smtp_url = "smtp://127.0.0.1:{smtp_port}"
        username = "ops"
        password_env = "TEST_SMTP_PASSWORD"
        from = "valwatch <valwatch@example.org>"
        to = ["a@example.org", "b@example.org"]
        [[webhook]]
        name = "json"
        url = "http://{h}/hook"
        secret_env = "TEST_HOOK_SECRET"
        [[webhook]]
        name = "slack"
        url = "http://{h}/slack"
        format = "slack"
        [[webhook]]
        name = "discord"
        url = "http://{h}/discord"
        format = "discord"
        [[telegram]]
        name = "telegram"
        bot_token_env = "TEST_TG_TOKEN"
        chat_id = "-42"
        api_url = "http://{h}/tg"
        [[alertmanager]]
        name = "alertmanager"
        url = "http://{h}/am"
        "#,
        smtp_port = smtp.port
    );
    let raw: RawAlerts = toml::from_str(&text).unwrap();
    let env = |k: &str| match k {
        "TEST_SMTP_PASSWORD" => Some("hunter2".to_string()),
        "TEST_HOOK_SECRET" => Some(SECRET.to_string()),
        "TEST_TG_TOKEN" => Some("123:secret-token".to_string()),
        _ => None,
    };
    let mut problems = Vec::new();
    let cfg = validate(raw, &env, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    World { http, smtp, cfg }
}

/// Every channel's receiving path, with how to count what arrived there.
const PATHS: [&str; 5] = [
    "/hook",
    "/slack",
    "/discord",
    "/tg/bot123:secret-token/sendMessage",
    "/am/api/v2/alerts",
];

impl World {
    fn counts(&self) -> Vec<usize> {
        let mut c: Vec<usize> = PATHS.iter().map(|p| self.http.on(p).len()).collect();
        c.push(self.smtp.count());
        c
    }

    /// Waits until every channel got `n` messages, then a little longer to
    /// catch any extra one.
    async fn expect_each(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.counts().iter().any(|c| *c < n) {
            assert!(
                Instant::now() < deadline,
                "timed out: {:?} (want {n} each)",
                self.counts()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(self.counts(), vec![n; 6], "per channel: {PATHS:?} + email");
    }

    fn json_messages(&self) -> Vec<serde_json::Value> {
        self.http.on("/hook").iter().map(Hit::json).collect()
    }
}

async fn sqlite_store(dir: &tempfile::TempDir) -> (Store, String) {
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    (store, url)
}

fn groups(spec: &[(&str, std::ops::Range<u64>)]) -> Vec<GroupSpec> {
    spec.iter()
        .map(|(n, r)| GroupSpec {
            name: n.to_string(),
            validators: r.clone().map(ValidatorIndex).collect(),
        })
        .collect()
}

fn record(epoch: u64, votes: &[(std::ops::Range<u64>, AttestationStatus)]) -> EpochRecord {
    let attestations = votes
        .iter()
        .flat_map(|(r, s)| {
            r.clone().map(move |v| AttestationVerdict {
                validator_index: ValidatorIndex(v),
                epoch: Epoch(epoch),
                status: *s,
                duty_slot: Some(Slot(epoch * 32 + 3)),
                inclusion_slot: None,
                inclusion_delay: None,
                late: Some(false),
                source_correct: None,
                target_correct: None,
                head_correct: None,
                reason: None,
            })
        })
        .collect();
    EpochRecord {
        epoch: Epoch(epoch),
        is_final: true,
        attestations,
        ..EpochRecord::default()
    }
}

fn live(now: SystemTime) -> EpochContext {
    EpochContext::new(now, true)
}

struct Running {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap();
    }
}

async fn run(store: Store, cfg: &AlertsConfig, groups: &[GroupSpec]) -> Running {
    let metrics = Arc::new(Metrics::new(100).unwrap());
    let engine = Arc::new(
        Engine::start(store, cfg.clone(), groups, EPOCH, SystemTime::now())
            .await
            .unwrap()
            .with_metrics(metrics.clone()),
    );
    let cancel = CancellationToken::new();
    let outbox = engine.clone().run_outbox(cancel.clone());
    let task = tokio::spawn(async move { outbox.await.unwrap() });
    Running {
        engine,
        metrics,
        cancel,
        task,
    }
}

use AttestationStatus::{Included, Missed};

// ---------------------------------------------------------------- cases --

#[tokio::test]
async fn a_validator_offline_then_back_is_one_firing_and_one_resolved_per_channel() {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = sqlite_store(&dir).await;
    let g = groups(&[("g", 1..3)]);
    let r = run(store.clone(), &w.cfg, &g).await;
    let now = SystemTime::now();
    for (e, s) in [
        (100, Missed),
        (101, Missed),
        (102, Missed),
        (103, Included),
        (104, Included),
    ] {
        let rec = record(e, &[(1..2, s), (2..3, Included)]);
        r.engine.on_epoch(&rec, &live(now)).await.unwrap();
    }
    w.expect_each(2).await;

    let msgs = w.json_messages();
    assert_eq!(msgs[0]["state"], "firing");
    assert_eq!(msgs[1]["state"], "resolved");
    for m in &msgs {
        assert_eq!(m["version"], 2);
        assert_eq!(m["rule"], "validator_down");
        assert_eq!(m["severity"], "critical");
        assert_eq!(m["group"], "g");
        assert_eq!(m["down_since_epoch"], 100);
        assert_eq!(m["id"], msgs[0]["id"]);
        assert!(m["started_at"].as_str().unwrap().ends_with('Z'));
    }
    // The firing names who is down and is about the epoch that made it
    // down; the resolution names who came back, when and after what.
    assert_eq!(msgs[0]["kind"], "firing");
    assert_eq!(msgs[0]["validators"], serde_json::json!([1]));
    assert_eq!(msgs[0]["epoch"], 101);
    assert_eq!(msgs[1]["kind"], "resolved");
    assert_eq!(msgs[1]["validators"], serde_json::json!([]));
    assert_eq!(msgs[1]["epoch"], 103);
    let back = &msgs[1]["recovered"];
    assert_eq!(back.as_array().unwrap().len(), 1, "{back}");
    assert_eq!(back[0]["validator"], 1);
    assert_eq!(back[0]["down_since_epoch"], 100);
    assert_eq!(back[0]["back_epoch"], 103);
    assert_eq!(back[0]["missed_epochs"], 3);
    assert!(msgs[0]["resolved_at"].is_null());
    assert!(msgs[1]["resolved_at"].is_string());
    // Receivers can verify the sender.
    for hit in w.http.on("/hook") {
        let header = hit.headers["x-valwatch-signature"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(
            header,
            format!("sha256={}", signature(SECRET.as_bytes(), &hit.body))
        );
    }
    let slack = w.http.on("/slack");
    assert!(slack[0].json()["text"]
        .as_str()
        .unwrap()
        .contains("validator_down"));
    assert!(w.http.on("/discord")[1].json()["content"]
        .as_str()
        .unwrap()
        .contains("RESOLVED"));
    let tg = w.http.on("/tg/");
    assert_eq!(tg[0].json()["chat_id"], "-42");
    let am = w.http.on("/am/api/v2/alerts");
    assert!(am[0].json()[0].get("endsAt").is_none());
    assert!(am[1].json()[0]["endsAt"].is_string());
    assert_eq!(
        am[0].json()[0]["labels"]["alertname"],
        "valwatch_validator_down"
    );

    let mails = w.smtp.mails();
    for m in &mails {
        assert_eq!(m.rcpt_tos, ["a@example.org", "b@example.org"]);
        assert_eq!(m.mail_from, "valwatch@example.org");
        assert_eq!(
            m.auth_user.as_deref(),
            Some("ops"),
            "the client authenticated"
        );
    }
    assert!(mails[0]
        .data
        .contains("Subject: [CRITICAL] validator_down: g"));
    assert!(mails[1]
        .data
        .contains("Subject: [RESOLVED] validator_down: g"));
    assert!(r.engine.open_incidents().await.is_empty());
    r.stop().await;
}

#[tokio::test]
async fn a_group_going_down_together_is_one_notification_listing_them() {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = sqlite_store(&dir).await;
    let g = groups(&[("cluster-a", 1000..1100), ("cluster-b", 2000..2005)]);
    let r = run(store, &w.cfg, &g).await;
    let now = SystemTime::now();
    for e in [50, 51, 52] {
        let rec = record(e, &[(1000..1100, Missed), (2000..2005, Included)]);
        r.engine.on_epoch(&rec, &live(now)).await.unwrap();
    }
    w.expect_each(1).await;
    let m = &w.json_messages()[0];
    assert_eq!(m["group"], "cluster-a");
    let listed: Vec<u64> = serde_json::from_value(m["validators"].clone()).unwrap();
    assert_eq!(listed, (1000..1100).collect::<Vec<_>>());
    assert!(m["summary"]
        .as_str()
        .unwrap()
        .starts_with("100 validators of group cluster-a"));
    r.stop().await;
}

#[tokio::test]
async fn a_channel_down_during_the_incident_gets_it_once_when_back_and_delays_no_other() {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = sqlite_store(&dir).await;
    let g = groups(&[("g", 1..2)]);
    w.http.set_down("/hook", true);
    let r = run(store.clone(), &w.cfg, &g).await;
    let now = SystemTime::now();
    for e in [10, 11] {
        r.engine
            .on_epoch(&record(e, &[(1..2, Missed)]), &live(now))
            .await
            .unwrap();
    }
    // The others arrive while the JSON webhook keeps refusing.
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.http.on("/slack").is_empty() || w.smtp.count() == 0 {
        assert!(Instant::now() < deadline, "other channels were held up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while w
        .http
        .refused
        .lock()
        .unwrap()
        .get("/hook")
        .copied()
        .unwrap_or(0)
        < 3
    {
        assert!(Instant::now() < deadline, "the webhook was not retried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(w.http.on("/hook").is_empty());
    // Resolved while still down: both must arrive, in order, once each.
    r.engine
        .on_epoch(&record(12, &[(1..2, Included)]), &live(now))
        .await
        .unwrap();
    w.http.set_down("/hook", false);
    w.expect_each(2).await;
    let states: Vec<_> = w
        .json_messages()
        .iter()
        .map(|m| m["state"].clone())
        .collect();
    assert_eq!(states, ["firing", "resolved"]);

    // The store kept every attempt of the firing delivery.
    let inc = store.incidents_since(SystemTime::UNIX_EPOCH).await.unwrap();
    let notes = store.notifications(&inc[0].id).await.unwrap();
    let d = store.deliveries(notes[0].id).await.unwrap();
    let json = d.iter().find(|d| d.channel == "json").unwrap();
    assert_eq!(json.status, "delivered");
    assert!(json.attempts >= 4, "attempts {}", json.attempts);
    let attempts = store.delivery_attempts(json.id).await.unwrap();
    assert!(attempts[0].2.as_deref().unwrap().contains("503"));
    assert!(attempts.last().unwrap().1);

    // valwatch_alert_deliveries_total counted the same attempts.
    let text = r.metrics.render();
    let count = |channel: &str, outcome: &str| -> u64 {
        let series = format!(
            "valwatch_alert_deliveries_total{{channel=\"{channel}\",outcome=\"{outcome}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
            .parse()
            .unwrap()
    };
    let mut json_retries = 0;
    for n in &notes {
        for d in store.deliveries(n.id).await.unwrap() {
            if d.channel == "json" {
                json_retries += d.attempts - 1;
            }
        }
    }
    assert_eq!(count("json", "sent"), 2);
    assert_eq!(count("json", "retry"), json_retries);
    assert!(json_retries >= 3);
    assert_eq!(count("json", "abandoned"), 0);
    assert_eq!(count("slack", "sent"), 2);
    r.stop().await;
}

async fn restart_in_the_middle_of_an_incident(store: Store, url: &str) {
    let w = world().await;
    let g = groups(&[("g", 1..3)]);
    let now = SystemTime::now();
    let first = run(store.clone(), &w.cfg, &g).await;
    for e in [20, 21] {
        let rec = record(e, &[(1..2, Missed), (2..3, Included)]);
        store.write_epoch(&rec).await.unwrap();
        first.engine.on_epoch(&rec, &live(now)).await.unwrap();
    }
    w.expect_each(1).await;
    first.stop().await;

    // A new process on the same database: the catch-up epochs (stale) and
    // the live ones that follow must not page again.
    let reopened = Store::connect(url).await.unwrap();
    reopened.migrate().await.unwrap();
    let second = run(reopened.clone(), &w.cfg, &g).await;
    assert_eq!(second.engine.open_incidents().await.len(), 1);
    let rec = record(22, &[(1..2, Missed), (2..3, Included)]);
    second
        .engine
        .on_epoch(&rec, &EpochContext::new(now, false))
        .await
        .unwrap();
    let rec = record(23, &[(1..2, Missed), (2..3, Included)]);
    second.engine.on_epoch(&rec, &live(now)).await.unwrap();
    second.engine.on_monitor(Some(now), now).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.counts(), vec![1; 6], "nothing sent twice");

    let rec = record(24, &[(1..3, Included)]);
    second.engine.on_epoch(&rec, &live(now)).await.unwrap();
    w.expect_each(2).await;
    let m = w.json_messages();
    assert_eq!(
        (m[0]["state"].clone(), m[1]["state"].clone()),
        ("firing".into(), "resolved".into())
    );
    assert_eq!(m[0]["id"], m[1]["id"]);
    second.stop().await;
    reopened.close().await;
}

#[tokio::test]
async fn a_restart_in_the_middle_of_an_incident_sends_nothing_twice_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (store, url) = sqlite_store(&dir).await;
    restart_in_the_middle_of_an_incident(store, &url).await;
}

#[tokio::test]
async fn a_restart_in_the_middle_of_an_incident_sends_nothing_twice_postgres() {
    let name = format!("valwatch_alert_restart_{}", std::process::id());
    let admin_url = common::pg_admin_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = common::pg_url(&name);
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
        restart_in_the_middle_of_an_incident(store.clone(), &url),
    ))
    .await;
    store.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

#[tokio::test]
async fn backfilled_history_pages_nobody() {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = sqlite_store(&dir).await;
    let g = groups(&[("g", 1..5)]);
    let r = run(store.clone(), &w.cfg, &g).await;
    let now = SystemTime::now();
    // An outage long over, judged in a backfill, then the live epochs
    // where everyone attests.
    for e in 300..310 {
        let rec = record(e, &[(1..5, if e < 306 { Missed } else { Included })]);
        r.engine
            .on_epoch(&rec, &EpochContext::new(now, false))
            .await
            .unwrap();
    }
    for e in 310..312 {
        r.engine
            .on_epoch(&record(e, &[(1..5, Included)]), &live(now))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.counts(), vec![0; 6]);
    assert!(store
        .incidents_since(SystemTime::UNIX_EPOCH)
        .await
        .unwrap()
        .is_empty());
    // An outage that is still going on when the backfill reaches the
    // present is paged by the first live epoch.
    for e in 312..314 {
        r.engine
            .on_epoch(
                &record(e, &[(1..2, Missed), (2..5, Included)]),
                &EpochContext::new(now, false),
            )
            .await
            .unwrap();
    }
    assert_eq!(w.counts(), vec![0; 6]);
    r.engine
        .on_epoch(
            &record(314, &[(1..2, Missed), (2..5, Included)]),
            &live(now),
        )
        .await
        .unwrap();
    w.expect_each(1).await;
    r.stop().await;
}

#[tokio::test]
async fn test_alert_reports_each_channel() {
    let w = world().await;
    let mut cfg = w.cfg.clone();
    // One more channel nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let raw: RawAlerts = toml::from_str(&format!(
        "[[webhook]]\nname = \"nobody\"\nurl = \"http://{closed}/x\"\n"
    ))
    .unwrap();
    let mut problems = Vec::new();
    cfg.channels
        .extend(validate(raw, &|_| None, &mut problems).channels);
    let results = test_alert(&cfg).await;
    let summary: Vec<(String, bool)> = results
        .iter()
        .map(|(n, r)| (n.clone(), r.is_ok()))
        .collect();
    assert_eq!(
        summary,
        [
            ("mail".to_string(), true),
            ("json".to_string(), true),
            ("slack".to_string(), true),
            ("discord".to_string(), true),
            ("telegram".to_string(), true),
            ("alertmanager".to_string(), true),
            ("nobody".to_string(), false),
        ]
    );
    assert_eq!(w.counts(), vec![1; 6]);
    assert_eq!(w.json_messages()[0]["kind"], "test");
    // The Telegram token is in the URL; no error text may show it.
    let mut tg = cfg.clone();
    w.http.set_down("/tg", true);
    tg.channels.retain(|c| c.name == "telegram");
    let r = test_alert(&tg).await;
    let err = r[0].1.as_ref().unwrap_err().to_string();
    assert!(err.contains("503"), "{err}");
    assert!(!err.contains("secret-token"), "{err}");
}
