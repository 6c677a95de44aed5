//! The simulator's JSON has the structure real nodes send: every endpoint in
//! the Lodestar devnet recording is asked of a simulated node built like that
//! devnet, and the two answers are compared by shape (object keys
//! recursively, strings vs numbers vs booleans, decimal vs hex strings and
//! hex lengths).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use valwatch::sim::{
    Behaviour, BehaviourKind, ErrorStyle, NodeOptions, Scenario, SimNode, ValidatorSet,
};

fn recording() -> std::path::PathBuf {
    common::fixture("lodestar-devnet").join("recording.jsonl")
}
/// Hex fields whose length varies with the data (committee sizes, payloads).
const VARIABLE_HEX: &[&str] = &["aggregation_bits", "transactions", "extra_data"];

#[derive(Debug)]
struct Exchange {
    method: String,
    path: String,
    status: u16,
    headers: BTreeMap<String, String>,
    response: Value,
}

fn normalize(path: &str) -> String {
    let mut out = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '/' || c == '=' {
            if chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    chars.next();
                }
                out.push('N');
            } else if chars.peek() == Some(&'0') {
                // 0x roots
                let rest: String = chars.clone().take(2).collect();
                if rest == "0x" {
                    while chars.peek().is_some_and(|d| d.is_ascii_alphanumeric()) {
                        chars.next();
                    }
                    out.push_str("0xH");
                }
            }
        }
    }
    out
}

/// The fullest recorded answer of each kind of request.
fn recorded() -> BTreeMap<(String, String, u16), Exchange> {
    let text =
        std::fs::read_to_string(recording()).expect("the recording is in ../shared/fixtures");
    let mut out: BTreeMap<(String, String, u16), Exchange> = BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let Some(status) = v["status"].as_u64() else {
            continue;
        };
        let ex = Exchange {
            method: v["method"].as_str().unwrap().to_string(),
            path: v["path"].as_str().unwrap().to_string(),
            status: status as u16,
            headers: serde_json::from_value(v["headers"].clone()).unwrap_or_default(),
            response: v["response"].clone(),
        };
        let key = (ex.method.clone(), normalize(&ex.path), ex.status);
        let size = ex.response.to_string().len();
        if out
            .get(&key)
            .is_none_or(|old| old.response.to_string().len() < size)
        {
            out.insert(key, ex);
        }
    }
    out
}

#[derive(Debug, PartialEq)]
enum Str {
    Decimal,
    Hex(usize),
    Text,
}

fn classify(s: &str) -> Str {
    if let Some(h) = s.strip_prefix("0x") {
        if h.chars().all(|c| c.is_ascii_hexdigit()) {
            return Str::Hex(h.len());
        }
    }
    if !s.is_empty()
        && s.trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit())
    {
        return Str::Decimal;
    }
    Str::Text
}

/// Differences in structure between `mine` and `real`, with JSON paths.
fn shape_diff(at: &str, key: &str, mine: &Value, real: &Value, out: &mut Vec<String>) {
    match (mine, real) {
        (Value::Object(a), Value::Object(b)) => {
            let ka: BTreeSet<_> = a.keys().collect();
            let kb: BTreeSet<_> = b.keys().collect();
            if ka != kb {
                out.push(format!(
                    "{at}: keys differ: only mine {:?}, only real {:?}",
                    ka.difference(&kb).collect::<Vec<_>>(),
                    kb.difference(&ka).collect::<Vec<_>>()
                ));
            }
            for k in ka.intersection(&kb) {
                shape_diff(&format!("{at}.{k}"), k, &a[*k], &b[*k], out);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if let Some(model) = b.first() {
                if a.is_empty() {
                    out.push(format!("{at}: empty where the real node sends items"));
                }
                for (i, x) in a.iter().enumerate().take(8) {
                    shape_diff(&format!("{at}[{i}]"), key, x, model, out);
                }
            }
        }
        (Value::String(a), Value::String(b)) => {
            let (ca, cb) = (classify(a), classify(b));
            let same = match (&ca, &cb) {
                (Str::Hex(_), Str::Hex(_)) if VARIABLE_HEX.contains(&key) => true,
                // "" (health) and "0x" are both empty
                _ => ca == cb,
            };
            if !same {
                out.push(format!("{at}: {ca:?} {a:.20} vs real {cb:?} {b:.20}"));
            }
        }
        (Value::Bool(_), Value::Bool(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Null, Value::Null) => {}
        _ => out.push(format!("{at}: {mine:.30} vs real {real:.30}")),
    }
}

/// The devnet of the recording: 64 validators, 48..63 never online, 32..47
/// offline in epochs 6..9, minimal preset, 2-second slots.
fn devnet() -> Scenario {
    Scenario {
        seed: 1,
        validators: 64,
        genesis_time: 1_795_630_147,
        behaviours: vec![
            Behaviour::new(ValidatorSet::range(48, 63), BehaviourKind::Offline),
            Behaviour::new(ValidatorSet::range(32, 47), BehaviourKind::Offline).epochs(6, 9),
        ],
        ..Scenario::default()
    }
}

#[tokio::test]
async fn every_recorded_endpoint_has_the_shape_lodestar_sends() {
    let opts = NodeOptions {
        errors: ErrorStyle::Lodestar,
        ..NodeOptions::pregenerated(20)
    };
    let node = SimNode::start(devnet(), opts).await.unwrap();
    // A slot of the last epoch with a block that carries attestations, and an
    // empty slot, both chosen from the simulated chain.
    let (full, empty) = {
        let chain = node.chain();
        let sim = chain.read().unwrap();
        let full = (152..160)
            .rev()
            .find(|&s| {
                sim.canonical_block(s)
                    .is_some_and(|b| !b.attestations.is_empty())
            })
            .unwrap();
        let empty = (1..160)
            .find(|&s| sim.canonical_block(s).is_none())
            .unwrap();
        (full, empty)
    };
    let all: Vec<String> = (0..64).map(|i| i.to_string()).collect();
    let ids = json!(all);
    type Case = (&'static str, &'static str, u16, String, Option<Value>);
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/eth/v1/beacon/genesis",
            200,
            "/eth/v1/beacon/genesis".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/config/fork_schedule",
            200,
            "/eth/v1/config/fork_schedule".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/node/version",
            200,
            "/eth/v1/node/version".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/node/health",
            200,
            "/eth/v1/node/health".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/node/syncing",
            200,
            "/eth/v1/node/syncing".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/headers/head",
            200,
            "/eth/v1/beacon/headers/head".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/headers/finalized",
            200,
            "/eth/v1/beacon/headers/finalized".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/headers/N",
            200,
            format!("/eth/v1/beacon/headers/{full}"),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/headers/N",
            404,
            format!("/eth/v1/beacon/headers/{empty}"),
            None,
        ),
        (
            "GET",
            "/eth/v2/beacon/blocks/N",
            200,
            format!("/eth/v2/beacon/blocks/{full}"),
            None,
        ),
        (
            "GET",
            "/eth/v2/beacon/blocks/N",
            404,
            format!("/eth/v2/beacon/blocks/{empty}"),
            None,
        ),
        (
            "GET",
            "/eth/v2/beacon/blocks/head",
            200,
            "/eth/v2/beacon/blocks/head".into(),
            None,
        ),
        (
            "GET",
            "/eth/v2/beacon/blocks/finalized",
            200,
            "/eth/v2/beacon/blocks/finalized".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/blocks/N/root",
            200,
            format!("/eth/v1/beacon/blocks/{full}/root"),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/blocks/N/root",
            404,
            format!("/eth/v1/beacon/blocks/{empty}/root"),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/head/finality_checkpoints",
            200,
            "/eth/v1/beacon/states/head/finality_checkpoints".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/finalized/finality_checkpoints",
            200,
            "/eth/v1/beacon/states/finalized/finality_checkpoints".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/N/finality_checkpoints",
            200,
            format!("/eth/v1/beacon/states/{full}/finality_checkpoints"),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/N/finality_checkpoints",
            404,
            format!("/eth/v1/beacon/states/{empty}/finality_checkpoints"),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/head/fork",
            200,
            "/eth/v1/beacon/states/head/fork".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/head/committees",
            200,
            "/eth/v1/beacon/states/head/committees".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/head/committees?epoch=N",
            200,
            "/eth/v1/beacon/states/head/committees?epoch=19".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/N/committees",
            200,
            format!("/eth/v1/beacon/states/{full}/committees"),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/N/committees",
            404,
            format!("/eth/v1/beacon/states/{empty}/committees"),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/head/sync_committees",
            200,
            "/eth/v1/beacon/states/head/sync_committees".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/N/sync_committees",
            200,
            format!("/eth/v1/beacon/states/{full}/sync_committees"),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/N/sync_committees",
            404,
            format!("/eth/v1/beacon/states/{empty}/sync_committees"),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/head/validators",
            200,
            "/eth/v1/beacon/states/head/validators".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/finalized/validators",
            200,
            "/eth/v1/beacon/states/finalized/validators".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/N/validators",
            200,
            format!("/eth/v1/beacon/states/{full}/validators"),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/N/validators",
            404,
            format!("/eth/v1/beacon/states/{empty}/validators"),
            None,
        ),
        (
            "POST",
            "/eth/v1/beacon/states/N/validators",
            200,
            format!("/eth/v1/beacon/states/{full}/validators"),
            Some(json!({ "ids": ids })),
        ),
        (
            "POST",
            "/eth/v1/beacon/states/N/validators",
            404,
            format!("/eth/v1/beacon/states/{empty}/validators"),
            Some(json!({ "ids": ids })),
        ),
        (
            "GET",
            "/eth/v1/beacon/states/head/validator_balances",
            200,
            "/eth/v1/beacon/states/head/validator_balances".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/N/validator_balances",
            200,
            format!("/eth/v1/beacon/states/{full}/validator_balances"),
            None,
        ),
        (
            "GET",
            "/eth/v1/beacon/states/N/validator_balances",
            404,
            format!("/eth/v1/beacon/states/{empty}/validator_balances"),
            None,
        ),
        (
            "POST",
            "/eth/v1/beacon/states/N/validator_balances",
            200,
            format!("/eth/v1/beacon/states/{full}/validator_balances"),
            Some(ids.clone()),
        ),
        (
            "POST",
            "/eth/v1/beacon/states/N/validator_balances",
            404,
            format!("/eth/v1/beacon/states/{empty}/validator_balances"),
            Some(ids.clone()),
        ),
        (
            "GET",
            "/eth/v1/validator/duties/proposer/N",
            200,
            "/eth/v1/validator/duties/proposer/19".into(),
            None,
        ),
        (
            "GET",
            "/eth/v1/validator/duties/proposer/N",
            500,
            "/eth/v1/validator/duties/proposer/18".into(),
            None,
        ),
        (
            "POST",
            "/eth/v1/validator/duties/attester/N",
            200,
            "/eth/v1/validator/duties/attester/19".into(),
            Some(ids.clone()),
        ),
        (
            "POST",
            "/eth/v1/validator/liveness/N",
            200,
            "/eth/v1/validator/liveness/18".into(),
            Some(ids.clone()),
        ),
        (
            "POST",
            "/eth/v1/validator/liveness/N",
            400,
            "/eth/v1/validator/liveness/10".into(),
            Some(ids.clone()),
        ),
    ];
    // Served by real nodes but outside what the simulator offers (rewards,
    // blinded blocks, peers), or errors it models differently (it answers
    // an out-of-range committee epoch with 400, not Lodestar's 500).
    let not_served = [
        "rewards",
        "blinded_blocks",
        "/node/identity",
        "/node/peer",
        "deposit_contract",
        "/config/spec",
    ];
    let rec = recorded();
    let covered: BTreeSet<(String, String, u16)> = cases
        .iter()
        .map(|(m, p, s, ..)| (m.to_string(), p.to_string(), *s))
        .collect();
    for key in rec.keys() {
        let modelled_differently = key.2 == 500 && !key.1.contains("proposer");
        if !covered.contains(key)
            && !not_served.iter().any(|n| key.1.contains(n))
            && !modelled_differently
        {
            panic!("recorded request kind without a case: {key:?}");
        }
    }
    let http = reqwest::Client::new();
    let mut problems = Vec::new();
    for (method, kind, status, path, body) in &cases {
        let real = &rec[&(method.to_string(), kind.to_string(), *status)];
        let url = format!("{}{path}", node.base_url());
        let req = if *method == "POST" {
            http.post(&url).json(body.as_ref().unwrap())
        } else {
            http.get(&url)
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), *status, "{method} {path}");
        for name in real.headers.keys().filter(|k| k.starts_with("Eth-")) {
            if resp.headers().get(name.as_str()).is_none() {
                problems.push(format!("{method} {path}: header {name} missing"));
            }
        }
        let text = resp.text().await.unwrap();
        let mine: Value = if text.is_empty() {
            Value::String(String::new())
        } else {
            serde_json::from_str(&text).unwrap()
        };
        let mut diffs = Vec::new();
        shape_diff("", "", &mine, &real.response, &mut diffs);
        problems.extend(
            diffs
                .into_iter()
                .map(|d| format!("{method} {path} ({}): {d}", real.path)),
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn spec_values_are_strings_and_name_the_constants_a_monitor_reads() {
    let node = SimNode::start(devnet(), NodeOptions::pregenerated(2))
        .await
        .unwrap();
    let mine: Value = reqwest::get(format!("{}/eth/v1/config/spec", node.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rec = recorded();
    let real = &rec[&("GET".to_string(), "/eth/v1/config/spec".to_string(), 200)].response["data"];
    let data = mine["data"].as_object().unwrap();
    // Newer than Lodestar 1.22 (consensus-specs #4926, Fulu).
    let newer = ["SLOT_DURATION_MS", "FULU_FORK_VERSION", "FULU_FORK_EPOCH"];
    for (k, v) in data {
        assert!(v.is_string(), "{k} is not a string");
        if !newer.contains(&k.as_str()) {
            assert!(real.get(k).is_some(), "{k} is not a key Lodestar sends");
            assert_eq!(
                classify(v.as_str().unwrap()),
                classify(real[k].as_str().unwrap()),
                "{k}"
            );
        }
    }
    for k in [
        "SLOTS_PER_EPOCH",
        "SECONDS_PER_SLOT",
        "EPOCHS_PER_SYNC_COMMITTEE_PERIOD",
        "SYNC_COMMITTEE_SIZE",
        "MAX_COMMITTEES_PER_SLOT",
        "ELECTRA_FORK_EPOCH",
        "PRESET_BASE",
    ] {
        assert_eq!(data[k], real[k], "{k} equals the devnet's");
    }
    assert_eq!(data["SLOT_DURATION_MS"], "2000");
    assert_eq!(data["FULU_FORK_EPOCH"], "18446744073709551615");
}

#[test]
fn the_shape_comparison_notices_differences() {
    let real = json!({"data": {"slot": "1", "root": "0xabcd", "ok": true, "xs": [{"a": "1"}]}});
    let same = json!({"data": {"slot": "7", "root": "0x0000", "ok": false, "xs": [{"a": "2"}, {"a": "3"}]}});
    let mut d = Vec::new();
    shape_diff("", "", &same, &real, &mut d);
    assert!(d.is_empty(), "{d:?}");
    for bad in [
        json!({"data": {"slot": 1, "root": "0xabcd", "ok": true, "xs": [{"a": "1"}]}}),
        json!({"data": {"slot": "1", "root": "0xabcdef", "ok": true, "xs": [{"a": "1"}]}}),
        json!({"data": {"slot": "1", "root": "0xabcd", "ok": "true", "xs": [{"a": "1"}]}}),
        json!({"data": {"slot": "1", "root": "0xabcd", "ok": true, "xs": [{"b": "1"}]}}),
        json!({"data": {"slot": "1", "root": "0xabcd", "ok": true, "xs": []}}),
        json!({"data": {"slot": "1", "root": "0xabcd", "ok": true, "xs": [{"a": "1"}], "extra": 1}}),
    ] {
        let mut d = Vec::new();
        shape_diff("", "", &bad, &real, &mut d);
        assert!(!d.is_empty(), "{bad} passed");
    }
    assert_eq!(
        normalize("/eth/v1/beacon/states/12/committees?epoch=3"),
        "/eth/v1/beacon/states/N/committees?epoch=N"
    );
}

/// The first recorded event of each topic (events.jsonl of the devnet).
fn recorded_events() -> BTreeMap<String, Value> {
    let path = common::fixture("lodestar-devnet").join("events.jsonl");
    let text = std::fs::read_to_string(path).expect("the recording is in ../shared/fixtures");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(topic) = v["event"].as_str() {
            out.entry(topic.to_string())
                .or_insert_with(|| v["data"].clone());
        }
    }
    out
}

/// Frames of an SSE body: (event, data as JSON).
fn sse_frames(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|frame| {
            let mut event = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).ok();
                }
            }
            Some((event?, data?))
        })
        .collect()
}

#[tokio::test]
async fn events_and_pool_items_have_the_shapes_lodestar_sends() {
    use futures::StreamExt;
    // A live node a few slots after genesis, half-second slots.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sc = Scenario {
        slot_duration_ms: 500,
        genesis_time: now - 2,
        ..devnet()
    };
    let node = SimNode::start(
        sc,
        NodeOptions {
            mode: valwatch::sim::Mode::Live { max_epochs: 20 },
            ..NodeOptions::default()
        },
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let resp = http
        .get(format!(
            "{}/eth/v1/events?topics=head,block",
            node.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut frames = Vec::new();
    while !(frames.iter().any(|(e, _): &(String, Value)| e == "head")
        && frames.iter().any(|(e, _)| e == "block"))
    {
        assert!(std::time::Instant::now() < deadline, "no events: {text}");
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        frames = sse_frames(&text);
    }
    let real = recorded_events();
    let mut diffs = Vec::new();
    for (event, data) in &frames {
        shape_diff(event, "", data, &real[event], &mut diffs);
    }
    assert!(diffs.is_empty(), "{diffs:#?}");

    // Pool aggregates have the shape of the recorded blocks' aggregates.
    let block_att = recorded()
        .into_iter()
        .filter(|((m, p, s), _)| m == "GET" && p == "/eth/v2/beacon/blocks/N" && *s == 200)
        .find_map(|(_, ex)| {
            ex.response["data"]["message"]["body"]["attestations"]
                .get(0)
                .cloned()
        })
        .expect("a recorded block with attestations");
    let pool: Value = http
        .get(format!(
            "{}/eth/v2/beacon/pool/attestations",
            node.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pool["version"], "electra", "{pool:#}");
    let items = pool["data"].as_array().unwrap();
    assert!(!items.is_empty(), "the head slot's votes wait in the pool");
    let mut diffs = Vec::new();
    for (i, item) in items.iter().enumerate() {
        shape_diff(&format!("pool[{i}]"), "", item, &block_att, &mut diffs);
    }
    assert!(diffs.is_empty(), "{diffs:#?}");
    node.shutdown().await;
}
