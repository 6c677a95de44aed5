//! Alerting end to end on the real recording: valwatch follows a live
//! replay of lodestar-devnet (validators 32..47 stop before epoch 6 and come
//! back in epoch 10; 48..63 never run) and posts to a real webhook receiver.
//! The "validator down" incident of the backup group must fire once and
//! resolve once on every channel, across a restart of valwatch in the
//! middle of the incident; the never-run group fires once and stays firing;
//! the healthy group is never named.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{routing::post, Json, Router};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_group_fires_once_and_resolves_once() {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let second: Arc<Mutex<Vec<Value>>> = Arc::default();
    let receiver = |sink: Arc<Mutex<Vec<Value>>>| {
        post(move |Json(v): Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(v);
                "ok"
            }
        })
    };
    let app = Router::new()
        .route("/hook", receiver(received.clone()))
        .route("/hook2", receiver(second.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Recording second 64 = slot 32 = epoch 4; 1-second slots at speed 2.
    let replay = common::Replay::start(
        "lodestar-devnet",
        &["--mode", "live", "--speed", "2", "--start-at", "64"],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("valwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[beacon_nodes]]
name = "replay"
url = "{}"

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
url = "sqlite://{}"

[http]
listen = "off"

[alerts]
reminder_interval = "off"

[[alerts.webhook]]
name = "hook"
url = "{hook}"
format = "json"

[[alerts.webhook]]
name = "hook2"
url = "{hook}2"
format = "json"
"#,
            replay.url(),
            dir.path().join("db.sqlite").display()
        ),
    )
    .unwrap();
    let genesis: Value = reqwest::get(format!("{}/eth/v1/beacon/genesis", replay.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let genesis_time: u64 = genesis["data"]["genesis_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // Stop after epoch 8 (the backup group is down since epoch 6), start
    // again and follow until epoch 12 (it is back since epoch 10).
    for until in ["8", "12"] {
        let status = Command::new(env!("CARGO_BIN_EXE_valwatch"))
            .args([
                "run",
                "--config",
                config.to_str().unwrap(),
                "--from-epoch",
                "4",
                "--until-epoch",
                until,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .unwrap();
        assert!(status.success());
    }
    // Deliveries run in their own tasks; give the receivers a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids = |v: &Arc<Mutex<Vec<Value>>>| {
        let mut ids: Vec<String> = v
            .lock()
            .unwrap()
            .iter()
            .map(|m| m["notification_id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&received),
        ids(&second),
        "both channels receive the same notifications"
    );
    let all = ids(&received);
    let mut unique = all.clone();
    unique.dedup();
    assert_eq!(all, unique, "a notification was sent twice");

    let got = received.lock().unwrap().clone();
    let down = |group: &str, kind: &str| {
        got.iter()
            .filter(|m| m["rule"] == "validator_down" && m["group"] == group && m["kind"] == kind)
            .count()
    };
    let summary: Vec<String> = got
        .iter()
        .map(|m| {
            format!(
                "{} {} {} {}",
                m["rule"], m["group"], m["kind"], m["validators"]
            )
        })
        .collect();
    assert_eq!(down("backup", "firing"), 1, "{summary:#?}");
    assert_eq!(down("backup", "resolved"), 1, "{summary:#?}");
    assert_eq!(down("never", "firing"), 1, "{summary:#?}");
    assert_eq!(down("never", "resolved"), 0, "{summary:#?}");
    // The network stops finalizing while 32..47 are down (finalized stays
    // at 3 from epoch 7 to 14): one no_finality incident, fired once. At
    // the start, epoch boundaries with an empty first slot used to fire
    // and resolve it within a slot.
    let finality = |kind: &str| {
        got.iter()
            .filter(|m| m["rule"] == "no_finality" && m["kind"] == kind)
            .count()
    };
    assert_eq!(finality("firing"), 1, "{summary:#?}");
    assert!(finality("resolved") <= 1, "{summary:#?}");
    assert!(
        got.iter().all(|m| m["group"] != "node"
            && m["validators"]
                .as_array()
                .is_none_or(|v| v.iter().all(|i| i.as_u64().unwrap_or(0) >= 32))),
        "a healthy validator was named: {summary:#?}"
    );
    // The incident opens on the first evidence and grows by `update`s as
    // more of the group's duties come due: together they name exactly the
    // sixteen validators that stopped.
    let mut named: Vec<u64> = got
        .iter()
        .filter(|m| {
            m["rule"] == "validator_down"
                && m["group"] == "backup"
                && (m["kind"] == "firing" || m["kind"] == "update")
        })
        .flat_map(|m| {
            m["validators"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v.as_u64())
                .collect::<Vec<_>>()
        })
        .collect();
    named.sort();
    named.dedup();
    assert_eq!(named, (32..=47).collect::<Vec<u64>>());

    // Timeliness: the incident must open within one epoch and four slots of
    // the group's first missed duty (8 slots of 1 s per epoch here).
    let store = valwatch::app::open_store(&format!(
        "sqlite://{}",
        dir.path().join("db.sqlite").display()
    ))
    .await
    .unwrap();
    let report = store
        .report(&valwatch::store::ReportQuery::default())
        .await
        .unwrap();
    let first_missed_duty = report
        .attestations
        .iter()
        .filter(|a| (32..=47).contains(&a.validator_index.0) && a.status.as_str() == "missed")
        .filter_map(|a| a.duty_slot.map(|s| s.0))
        .min()
        .unwrap();
    let opened = got
        .iter()
        .find(|m| m["rule"] == "validator_down" && m["group"] == "backup" && m["kind"] == "firing")
        .unwrap()["started_at"]
        .as_str()
        .unwrap()
        .to_string();
    let opened = humantime::parse_rfc3339(&opened)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let opened_slot = opened.saturating_sub(genesis_time); // 1-second slots
    eprintln!(
        "first missed duty at slot {first_missed_duty}, incident opened in slot {opened_slot}"
    );
    assert!(
        opened_slot <= first_missed_duty + 8 + 4,
        "incident opened in slot {opened_slot}, first missed duty at slot {first_missed_duty}"
    );
}
