//! What a person on call receives, on both real recordings: valwatch (the
//! binary) follows two live replay nodes of one recording at double speed,
//! node A is stopped mid-run, valwatch is restarted once, and the run goes
//! on 40 s past the end of the recording, where the replayed heads stop
//! (and still say they are synced). Two JSON webhooks receive everything.
//!
//! Counted per incident and channel: one `firing`; at most one update (or
//! recovery) per epoch; the validators that came back all named as back;
//! the validators that never ran in exactly one incident for the whole run
//! (their missed proposals are part of it); no notification naming a
//! validator that performed; after the heads stop, one `chain_stalled` and
//! no other news; no `missed` verdict for a slot after the last head.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Replay speed: 2-second slots become 1-second ones.
const SPEED: u64 = 2;
/// One epoch of the replayed chain, in ms (8 slots of 1 s): the default
/// group_interval.
const EPOCH_MS: u128 = 8_000;

struct Recording {
    name: &'static str,
    /// Recording time to start at (seconds since its genesis).
    start_t: u64,
    /// The epoch the first valwatch run stops after.
    first_until: u64,
    /// (group, first validator, last validator)
    groups: [(&'static str, u64, u64); 3],
    /// The group whose client stopped and came back; the one never run.
    back: &'static str,
    never: &'static str,
}

const DEVNET: Recording = Recording {
    name: "lodestar-devnet",
    start_t: 64,
    first_until: 7,
    groups: [("node", 0, 31), ("backup", 32, 47), ("never", 48, 63)],
    back: "backup",
    never: "never",
};

const FORK: Recording = Recording {
    name: "lodestar-devnet-deneb-electra",
    start_t: 16,
    first_until: 4,
    groups: [("node", 0, 39), ("backup", 40, 51), ("never", 52, 63)],
    back: "backup",
    never: "never",
};

fn ms_of(notification_id: &str) -> u128 {
    notification_id
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no time in notification id {notification_id}"))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn pages_on(rec: Recording) {
    let truth: Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixture(rec.name).join("ground_truth.json")).unwrap(),
    )
    .unwrap();
    let ended_t = truth["recording_ended_t"].as_f64().unwrap();
    // Who ever failed to perform (offline or uncertain) in some epoch.
    let mut not_performing: BTreeSet<u64> = BTreeSet::new();
    for e in truth["epochs"].as_object().unwrap().values() {
        for k in ["offline", "uncertain"] {
            for v in e[k].as_array().unwrap() {
                not_performing.insert(v.as_u64().unwrap());
            }
        }
    }

    // Two channels, each a real webhook receiver of its own.
    let (received, first_addr) = common::json_webhook().await;
    let (second, second_addr) = common::json_webhook().await;
    let hook = format!("http://{first_addr}/hook");
    let hook2 = format!("http://{second_addr}/hook");

    // Both nodes share one genesis: `start_t` of the recording is now.
    let genesis = now_secs() + 2 - rec.start_t / SPEED;
    let g = genesis.to_string();
    let speed = SPEED.to_string();
    let args = [
        "--mode",
        "live",
        "--speed",
        speed.as_str(),
        "--genesis-time",
        g.as_str(),
    ];
    let mut a = common::Replay::start(rec.name, &args);
    let b = common::Replay::start(rec.name, &args);

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let config = dir.path().join("valwatch.toml");
    let groups: String = rec
        .groups
        .iter()
        .map(|(n, lo, hi)| format!("[[groups]]\nname = \"{n}\"\nvalidators = \"{lo}-{hi}\"\n"))
        .collect();
    std::fs::write(
        &config,
        format!(
            r#"
[[beacon_nodes]]
name = "a"
url = "{a}"

[[beacon_nodes]]
name = "b"
url = "{b}"

{groups}
[database]
url = "sqlite://{db}"

[http]
listen = "off"

[alerts]
reminder_interval = "off"
node_grace = "10s"
status_url = "http://status.example/"
explorer_url = "http://explorer.example/validator/{{index}}"

[[alerts.webhook]]
name = "hook"
url = "{hook}"

[[alerts.webhook]]
name = "hook2"
url = "{hook2}"
"#,
            a = a.url(),
            b = b.url(),
            db = db.display(),
        ),
    )
    .unwrap();
    let from = (rec.start_t / 16).to_string();
    let valwatch = |until: Option<u64>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_valwatch"));
        cmd.args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--from-epoch",
            &from,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        if let Some(u) = until {
            cmd.args(["--until-epoch", &u.to_string()]);
        }
        cmd.spawn().unwrap()
    };

    // Run 1 until `first_until` is final; node A stops; run 2 goes on
    // until 40 s after the recording's end.
    let status = valwatch(Some(rec.first_until)).wait().unwrap();
    assert!(status.success(), "run 1 failed");
    a.stop();
    let mut run2 = valwatch(None);
    let end_wall = genesis as f64 + ended_t / SPEED as f64;
    let stop_at = end_wall + 40.0;
    let wait = stop_at
        - SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(wait.max(0.0))).await;
    let pid = run2.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(run2.wait().unwrap().success(), "run 2 failed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(b);

    // ---- both channels got the same, nothing twice.
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
    assert_eq!(ids(&received), ids(&second), "{}: both channels", rec.name);
    let all = ids(&received);
    let mut unique = all.clone();
    unique.dedup();
    assert_eq!(all, unique, "{}: a notification was sent twice", rec.name);

    let got = received.lock().unwrap().clone();
    // VALWATCH_PAGES_DUMP=DIR keeps what a person received (the JSON and
    // the text an email or chat shows), for the README's sample.
    if let Ok(out) = std::env::var("VALWATCH_PAGES_DUMP") {
        let out = std::path::Path::new(&out).join(rec.name);
        std::fs::create_dir_all(&out).unwrap();
        for (i, m) in got.iter().enumerate() {
            let msg: valwatch::alerting::Message = serde_json::from_value(m.clone()).unwrap();
            std::fs::write(
                out.join(format!("{i:02}.json")),
                serde_json::to_string_pretty(m).unwrap(),
            )
            .unwrap();
            std::fs::write(out.join(format!("{i:02}.txt")), msg.text()).unwrap();
        }
    }
    let summary: Vec<String> = got
        .iter()
        .map(|m| {
            format!(
                "{} {} {} {} down={} back={}",
                ms_of(m["notification_id"].as_str().unwrap()),
                m["kind"],
                m["rule"],
                m["subject"],
                m["validators"],
                m["recovered"]
                    .as_array()
                    .map(|r| r.iter().map(|x| x["validator"].clone()).collect::<Vec<_>>())
                    .map(|v| serde_json::to_string(&v).unwrap())
                    .unwrap_or_default()
            )
        })
        .collect();
    let context = format!("{}:\n{summary:#?}", rec.name);

    // ---- per incident: one firing; updates and recoveries an epoch apart.
    let mut by_incident: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for m in &got {
        by_incident
            .entry(m["id"].as_str().unwrap().to_string())
            .or_default()
            .push(m);
    }
    for (id, notes) in &by_incident {
        if notes[0]["kind"] == "event" {
            assert_eq!(notes.len(), 1, "{id}: {context}");
            continue;
        }
        let firings = notes.iter().filter(|m| m["kind"] == "firing").count();
        assert_eq!(firings, 1, "{id}: {context}");
        let mut times: Vec<u128> = notes
            .iter()
            .filter(|m| m["kind"] != "resolved" && m["kind"] != "reminder")
            .map(|m| ms_of(m["notification_id"].as_str().unwrap()))
            .collect();
        times.sort();
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= EPOCH_MS,
                "{id}: two notifications {} ms apart: {context}",
                pair[1] - pair[0]
            );
        }
    }

    // ---- who is named.
    let group_of = |v: u64| {
        rec.groups
            .iter()
            .find(|(_, lo, hi)| (*lo..=*hi).contains(&v))
            .map(|g| g.0)
            .unwrap()
    };
    // An orphaned block (the deneb-electra recording has a real depth-2
    // reorg) is news about a proposal that was made and lost, not a claim
    // that its proposer is down: it is left out of this check.
    for m in got.iter().filter(|m| m["rule"] != "proposal_orphaned") {
        for v in m["validators"].as_array().unwrap() {
            let v = v.as_u64().unwrap();
            assert!(
                not_performing.contains(&v),
                "validator {v} performed all along and was named: {m:#}\n{context}"
            );
        }
        assert!(!m["summary"].as_str().unwrap().is_empty());
    }
    let (_, back_lo, back_hi) = *rec.groups.iter().find(|g| g.0 == rec.back).unwrap();
    let came_back: BTreeSet<u64> = got
        .iter()
        .filter(|m| m["rule"] == "validator_down" && m["subject"] == rec.back)
        .flat_map(|m| m["recovered"].as_array().cloned().unwrap_or_default())
        .map(|r| r["validator"].as_u64().unwrap())
        .collect();
    assert_eq!(
        came_back,
        (back_lo..=back_hi).collect::<BTreeSet<u64>>(),
        "every validator of {} is named as back: {context}",
        rec.back
    );
    let back_resolved = got
        .iter()
        .filter(|m| {
            m["rule"] == "validator_down" && m["subject"] == rec.back && m["kind"] == "resolved"
        })
        .count();
    assert!(back_resolved >= 1, "{context}");
    // The validators that never ran: one incident for the whole run, never
    // resolved; no proposal page of theirs.
    let never: BTreeSet<&str> = got
        .iter()
        .filter(|m| {
            m["validators"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| group_of(v.as_u64().unwrap()) == rec.never)
        })
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(never.len(), 1, "{}: {never:?}\n{context}", rec.never);
    let never_id = never.iter().next().unwrap();
    assert!(
        by_incident[*never_id]
            .iter()
            .all(|m| m["kind"] != "resolved" && m["rule"] == "validator_down"),
        "{context}"
    );
    assert!(
        !got.iter().any(|m| m["rule"] == "proposal_missed"
            && m["validators"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| not_performing.contains(&v.as_u64().unwrap()))),
        "a down validator's missed proposal paged on its own: {context}"
    );

    // ---- after the heads stop: one chain_stalled, no other news.
    let end_ms = (end_wall * 1000.0) as u128 + 3_000;
    let after: Vec<&Value> = got
        .iter()
        .filter(|m| ms_of(m["notification_id"].as_str().unwrap()) > end_ms)
        .collect();
    assert!(
        after.iter().all(|m| m["rule"] == "chain_stalled"),
        "only the stall after the heads stopped: {context}"
    );
    let stalls = got
        .iter()
        .filter(|m| m["rule"] == "chain_stalled" && m["kind"] == "firing")
        .count();
    assert_eq!(stalls, 1, "{context}");

    // ---- the store: nothing judged missed after the last head.
    let store = valwatch::app::open_store(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let report = store
        .report(&valwatch::store::ReportQuery::default())
        .await
        .unwrap();
    let last_head = report
        .proposals
        .iter()
        .filter(|p| p.status.as_str() == "proposed")
        .map(|p| p.slot.0)
        .max()
        .unwrap_or(0);
    let head_t = (last_head * 2) as f64;
    assert!(
        head_t <= ended_t,
        "a proposal after the recording's end: {last_head}"
    );
    let late: Vec<u64> = report
        .proposals
        .iter()
        .filter(|p| p.status.as_str() == "missed" && (p.slot.0 * 2) as f64 > ended_t)
        .map(|p| p.slot.0)
        .collect();
    assert!(late.is_empty(), "missed proposals after the end: {late:?}");
    store.close().await;
    eprintln!("{context}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lodestar_devnet_pages_once_per_change_and_announces_recovery() {
    pages_on(DEVNET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deneb_electra_pages_once_per_change_and_announces_recovery() {
    pages_on(FORK).await;
}
