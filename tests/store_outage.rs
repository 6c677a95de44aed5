//! Issue 11: outages of valwatch's own.
//!
//! 1. The database stops for two epochs while a group of validators
//!    goes offline. valwatch (the binary) follows a live replay of the
//!    lodestar-devnet recording (validators 32..47 offline in epochs 6..9,
//!    ground truth known) at double speed, writing to a PostgreSQL server the
//!    test owns and stops at the start of epoch 6 for two epochs.
//!
//! What a person receives: the group is paged once per channel (one
//! `firing`, one `resolved`), the store's own failure is told and its end
//! too, and `/readyz` says "store failing" during the outage. What is
//! kept: after the outage every slot of every judged epoch has a proposal
//! row, attestation verdicts equal the ground truth, and every
//! notification is stored with each channel's delivery ended (sent once).
//!
//! 2. valwatch itself is stopped for three epochs while the group goes
//!    down: the epochs judged late after its restart page as they would have
//!    live (one firing, later one resolved), not as a silent backfill.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Replay speed: 2-second slots become 1-second ones; an epoch is 8 s.
const SPEED: u64 = 2;
const EPOCH_SECS: u64 = 8;
/// Recording time to start at (epoch 4).
const START_T: u64 = 64;
/// The database is down during wall epochs [DOWN_FROM, DOWN_TO).
const DOWN_FROM: u64 = 6;
const DOWN_TO: u64 = 8;
/// Judged for good and checked up to here (the group is back in 11).
const CHECK_UNTIL: u64 = 13;

fn now_f() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn sleep_until(t: f64) {
    let wait = t - now_f();
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

fn kinds(got: &[Value], rule: &str, subject: &str) -> Vec<String> {
    got.iter()
        .filter(|m| m["rule"] == rule && m["subject"] == subject)
        .map(|m| m["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_while_a_group_goes_down_swallows_no_page_and_no_row() {
    let pg = common::pg::OwnPostgres::start();
    let (first, first_addr) = common::json_webhook().await;
    let (second, second_addr) = common::json_webhook().await;

    let genesis = now_f().ceil() as u64 + 2 - START_T / SPEED;
    let epoch_start = |e: u64| (genesis + e * EPOCH_SECS) as f64;
    let g = genesis.to_string();
    let speed = SPEED.to_string();
    let node = common::Replay::start(
        "lodestar-devnet",
        &["--mode", "live", "--speed", &speed, "--genesis-time", &g],
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("valwatch.toml");
    let listen = common::free_addr();
    write_config(
        &config,
        &node.url(),
        &pg.url(),
        [first_addr, second_addr],
        Some(listen),
    );
    let daemon = spawn_valwatch(&config);

    // The outage, with /readyz watched all along it.
    sleep_until(epoch_start(DOWN_FROM)).await;
    pg.down();
    let down_at = now_f();
    eprintln!("database stopped at wall epoch {DOWN_FROM}");
    let http = reqwest::Client::new();
    let mut said_failing: Option<f64> = None;
    while now_f() < epoch_start(DOWN_TO) {
        if said_failing.is_none() {
            if let Ok(r) = http
                .get(format!("http://{listen}/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                if status == 503 && body.contains("store") {
                    said_failing = Some(now_f() - down_at);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    pg.up();
    eprintln!("database started again at wall epoch {DOWN_TO}");
    let said_failing = said_failing.expect("/readyz never said the store was failing");
    eprintln!("/readyz said \"store failing\" {said_failing:.1} s into the outage");

    // Until the group's recovery is told on both channels, and the epochs
    // to check are final (bounded: the recording ends at epoch 20).
    let deadline = Instant::now() + Duration::from_secs(150);
    let told = |v: &Arc<Mutex<Vec<Value>>>| {
        kinds(&v.lock().unwrap(), "validator_down", "backup").contains(&"resolved".to_string())
    };
    sleep_until(epoch_start(CHECK_UNTIL + 2) + 3.0).await;
    while !(told(&first) && told(&second)) {
        assert!(
            Instant::now() < deadline,
            "no recovery told: {:#?}",
            first.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(daemon);
    drop(node);

    // ---- what each channel received.
    let one = first.lock().unwrap().clone();
    let two = second.lock().unwrap().clone();
    let summary: Vec<String> = one
        .iter()
        .map(|m| {
            format!(
                "{} {} {} {}",
                m["kind"], m["rule"], m["subject"], m["validators"]
            )
        })
        .collect();
    eprintln!("channel one received:\n{summary:#?}");
    for (name, got) in [("one", &one), ("two", &two)] {
        let backup = kinds(got, "validator_down", "backup");
        assert_eq!(
            backup.iter().filter(|k| *k == "firing").count(),
            1,
            "{name}: the group is paged once: {summary:#?}"
        );
        assert_eq!(
            backup.iter().filter(|k| *k == "resolved").count(),
            1,
            "{name}: its recovery is told once: {summary:#?}"
        );
        let store = kinds(got, "store_failing", "store");
        assert_eq!(
            store.first().map(String::as_str),
            Some("firing"),
            "{name}: {summary:#?}"
        );
        assert!(
            store.contains(&"resolved".to_string()),
            "{name}: {summary:#?}"
        );
        let mut ids: Vec<&str> = got
            .iter()
            .map(|m| m["notification_id"].as_str().unwrap())
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "{name}: a notification was sent twice");
    }
    let ids = |got: &[Value]| {
        let mut v: Vec<String> = got
            .iter()
            .map(|m| m["notification_id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&one), ids(&two), "both channels received the same");

    // ---- what the store kept.
    let store = valwatch::app::open_store(&pg.url()).await.unwrap();
    let report = store
        .report(&valwatch::store::ReportQuery::default())
        .await
        .unwrap();
    let first_epoch = START_T / 16;
    let by_slot: BTreeMap<u64, &str> = report
        .proposals
        .iter()
        .map(|p| (p.slot.0, p.status.as_str()))
        .collect();
    let absent: Vec<u64> = (first_epoch * 8..(CHECK_UNTIL + 1) * 8)
        .filter(|s| !by_slot.contains_key(s))
        .collect();
    assert!(
        absent.is_empty(),
        "slots without a proposal row: {absent:?}"
    );
    let expected = common::expected_attestations("lodestar-devnet", &[]);
    let expected: BTreeMap<(u64, u64), &'static str> = expected
        .into_iter()
        .filter(|((_, e), _)| *e >= first_epoch)
        .collect();
    let wrong = common::attestation_mismatches(&report, &expected, CHECK_UNTIL);
    assert!(
        wrong.is_empty(),
        "verdicts differ from the ground truth: {wrong:#?}"
    );

    // Every notification is stored, each channel's delivery ended once.
    let incidents = store.incidents_since(UNIX_EPOCH).await.unwrap();
    let mut stored = 0;
    for i in &incidents {
        for n in store.notifications(&i.id).await.unwrap() {
            stored += 1;
            let d = store.deliveries(n.id).await.unwrap();
            let mut channels: Vec<&str> = d.iter().map(|x| x.channel.as_str()).collect();
            channels.sort();
            assert_eq!(channels, ["one", "two"], "{}: {d:?}", i.id);
            assert!(
                d.iter().all(|x| x.status == "delivered"),
                "{} {}: {d:?}",
                i.id,
                n.kind
            );
        }
    }
    assert_eq!(stored, one.len(), "every notification received is stored");
    store.close().await;
}

/// The config of both cases: one live replay node, the recording's three
/// groups, two webhooks.
fn write_config(
    path: &std::path::Path,
    node: &str,
    db: &str,
    hooks: [std::net::SocketAddr; 2],
    listen: Option<std::net::SocketAddr>,
) {
    let listen = listen.map_or("off".to_string(), |a| a.to_string());
    std::fs::write(
        path,
        format!(
            r#"
[[beacon_nodes]]
name = "a"
url = "{node}"

[[groups]]
name = "node"
validators = "0-31"

[[groups]]
name = "backup"
validators = "32-47"

[[groups]]
name = "never"
validators = "48-63"

[database]
url = "{db}"

[http]
listen = "{listen}"

[alerts]
reminder_interval = "off"
node_grace = "3s"

[[alerts.webhook]]
name = "one"
url = "http://{one}/hook"

[[alerts.webhook]]
name = "two"
url = "http://{two}/hook"
"#,
            one = hooks[0],
            two = hooks[1],
        ),
    )
    .unwrap();
}

fn spawn_valwatch(config: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_valwatch"))
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--from-epoch",
            &(START_T / 16).to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn stop(mut child: std::process::Child) {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(child.wait().unwrap().success(), "valwatch failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epochs_judged_late_after_valwatch_was_down_page_as_they_would_have_live() {
    let (first, first_addr) = common::json_webhook().await;
    let (second, second_addr) = common::json_webhook().await;
    let genesis = now_f().ceil() as u64 + 2 - START_T / SPEED;
    let epoch_start = |e: u64| (genesis + e * EPOCH_SECS) as f64;
    let g = genesis.to_string();
    let speed = SPEED.to_string();
    let node = common::Replay::start(
        "lodestar-devnet",
        &["--mode", "live", "--speed", &speed, "--genesis-time", &g],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("valwatch.toml");
    let db = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    write_config(&config, &node.url(), &db, [first_addr, second_addr], None);

    // Up until the group goes down (epoch 6), down for three epochs.
    let daemon = spawn_valwatch(&config);
    sleep_until(epoch_start(6)).await;
    stop(daemon);
    sleep_until(epoch_start(9)).await;
    let daemon = spawn_valwatch(&config);

    let deadline = Instant::now() + Duration::from_secs(150);
    let told = |v: &Arc<Mutex<Vec<Value>>>| {
        kinds(&v.lock().unwrap(), "validator_down", "backup").contains(&"resolved".to_string())
    };
    while !(told(&first) && told(&second)) {
        assert!(
            Instant::now() < deadline,
            "no recovery told: {:#?}",
            first.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(daemon);
    drop(node);

    for (name, got) in [("one", &first), ("two", &second)] {
        let got = got.lock().unwrap().clone();
        let summary: Vec<String> = got
            .iter()
            .map(|m| {
                format!(
                    "{} {} {} {} since={}",
                    m["kind"], m["rule"], m["subject"], m["validators"], m["down_since_epoch"]
                )
            })
            .collect();
        let backup: Vec<&Value> = got
            .iter()
            .filter(|m| m["rule"] == "validator_down" && m["subject"] == "backup")
            .collect();
        let firing: Vec<&&Value> = backup.iter().filter(|m| m["kind"] == "firing").collect();
        assert_eq!(firing.len(), 1, "{name}: one firing: {summary:#?}");
        // Down since epoch 6, told although judged after the restart.
        assert_eq!(firing[0]["down_since_epoch"], 6, "{name}: {summary:#?}");
        assert_eq!(
            backup.iter().filter(|m| m["kind"] == "resolved").count(),
            1,
            "{name}: {summary:#?}"
        );
        // One cause, one incident: the group's missed sync duties are
        // part of its outage, not a page of their own.
        assert!(
            !got.iter()
                .any(|m| m["subject"] == "backup" && m["rule"] != "validator_down"),
            "{name}: {summary:#?}"
        );
        eprintln!("{name}: {summary:#?}");
    }
}
