//! The beacon layer against answers recorded from real nodes: a Lighthouse
//! node on Sepolia (Electra) and a Lodestar devnet that forks from Deneb to
//! Electra at epoch 5. Decoding is checked against facts the nodes computed
//! independently (committee sizes vs. bitlist lengths, liveness vs.
//! inclusion), and part of the recording is served over real HTTP so the
//! whole client path runs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::Value;

use valwatch::beacon::client::{ValidatorId, IDS_PER_REQUEST};
use valwatch::beacon::wire;
use valwatch::beacon::{BeaconClient, BeaconError, BlockId, NodeConfig, NodeRole, StateId};
use valwatch::chain::{Epoch, Fork, Root, Slot, ValidatorIndex};

fn cassette_path() -> std::path::PathBuf {
    common::fixture("lighthouse-sepolia-electra").join("cassette.yaml")
}
fn lodestar_path() -> std::path::PathBuf {
    common::fixture("lodestar-devnet-deneb-electra").join("recording.jsonl")
}

/// An epoch the replay answers with a recorded refusal (500).
const REFUSED_EPOCH: u64 = 999;

/// First Electra slot of the Lodestar devnet (its README: slots < 40 are Deneb).
const LODESTAR_ELECTRA_SLOT: u64 = 40;

#[derive(Deserialize)]
struct Cassette {
    interactions: Vec<Interaction>,
}

#[derive(Deserialize)]
struct Interaction {
    request: CassetteRequest,
    response: CassetteResponse,
}

#[derive(Deserialize)]
struct CassetteRequest {
    method: String,
    uri: String,
    body: Option<String>,
}

#[derive(Deserialize)]
struct CassetteResponse {
    status: CassetteStatus,
    #[serde(default)]
    headers: HashMap<String, Vec<String>>,
    body: CassetteBody,
}

#[derive(Deserialize)]
struct CassetteStatus {
    code: u16,
}

#[derive(Deserialize)]
struct CassetteBody {
    string: String,
}

/// A cassette exchange with the path split from the recorder's host.
struct Exchange {
    method: String,
    path: String,
    request_body: Option<String>,
    status: u16,
    version: Option<String>,
    body: String,
}

fn cassette() -> Vec<Exchange> {
    let text = std::fs::read_to_string(cassette_path()).unwrap();
    let c: Cassette = serde_yaml::from_str(&text).unwrap();
    c.interactions
        .into_iter()
        .filter_map(|i| {
            let uri: url::Url = i.request.uri.parse().unwrap();
            if uri.port() != Some(5052) {
                return None; // the cassette also holds a price query to an exchange
            }
            let path = match uri.query() {
                Some(q) => format!("{}?{q}", uri.path()),
                None => uri.path().to_string(),
            };
            let version = i
                .response
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("eth-consensus-version"))
                .and_then(|(_, v)| v.first().cloned());
            Some(Exchange {
                method: i.request.method,
                path,
                request_body: i.request.body,
                status: i.response.status.code,
                version,
                body: i.response.body.string,
            })
        })
        .collect()
}

fn slot_in(path: &str, prefix: &str, suffix: &str) -> Option<u64> {
    path.strip_prefix(prefix)?
        .strip_suffix(suffix)?
        .parse()
        .ok()
}

#[test]
fn sepolia_attestations_fit_the_recorded_committees_and_liveness() {
    let all = cassette();
    // Committees of slot S were recorded as states/S/committees?slot=S.
    let mut committees: HashMap<(u64, u64), Vec<ValidatorIndex>> = HashMap::new();
    let mut committee_answers = 0;
    for e in &all {
        if e.path.contains("/committees?slot=") {
            let list = wire::parse_committees(e.body.as_bytes()).unwrap();
            assert!(!list.is_empty(), "{}", e.path);
            for c in list {
                committees.insert((c.slot.0, c.index), c.validators);
            }
            committee_answers += 1;
        }
    }
    assert_eq!(committee_answers, 47);

    let mut liveness: HashMap<u64, HashMap<ValidatorIndex, bool>> = HashMap::new();
    for e in all
        .iter()
        .filter(|e| e.method == "POST" && e.path.starts_with("/eth/v1/validator/liveness/"))
    {
        let epoch = slot_in(&e.path, "/eth/v1/validator/liveness/", "").unwrap();
        let asked: Vec<String> = serde_json::from_str(e.request_body.as_deref().unwrap()).unwrap();
        let answer = wire::parse_liveness(e.body.as_bytes()).unwrap();
        assert_eq!(answer.len(), asked.len(), "one answer per index asked");
        liveness.entry(epoch).or_default().extend(answer);
    }
    assert!(liveness.contains_key(&240249));

    let mut blocks = 0;
    let mut checked_aggregates = 0;
    let mut included_for_240249 = HashSet::new();
    for e in &all {
        let Some(_slot) = slot_in(&e.path, "/eth/v2/beacon/blocks/", "/attestations") else {
            continue;
        };
        assert_eq!(e.status, 200);
        let (fork, atts) =
            wire::decode_block_attestations(e.body.as_bytes(), e.version.as_deref()).unwrap();
        assert_eq!(fork, Fork::Electra);
        blocks += 1;
        for a in &atts {
            let bits = a
                .committee_bits
                .as_ref()
                .expect("Electra has committee_bits");
            assert_eq!(bits.len(), 64, "mainnet preset: Bitvector[64]");
            let members: Option<Vec<&ValidatorIndex>> = bits
                .ones()
                .map(|k| committees.get(&(a.data.slot.0, k as u64)))
                .collect::<Option<Vec<_>>>()
                .map(|cs| cs.into_iter().flatten().collect());
            let Some(members) = members else { continue };
            // The node built aggregation_bits over exactly these committees.
            assert_eq!(
                members.len(),
                a.aggregation_bits.len(),
                "slot {}",
                a.data.slot
            );
            checked_aggregates += 1;
            if a.data.target.epoch == Epoch(240249) {
                for (j, v) in members.iter().enumerate() {
                    if a.aggregation_bits.get(j) {
                        included_for_240249.insert(**v);
                    }
                }
            }
        }
    }
    assert_eq!(blocks, 47);
    assert!(
        checked_aggregates > 40,
        "only {checked_aggregates} aggregates checked"
    );
    assert!(!included_for_240249.is_empty());
    let live = &liveness[&240249];
    for v in &included_for_240249 {
        assert_eq!(
            live.get(v),
            Some(&true),
            "validator {v} included but not live"
        );
    }
}

#[test]
fn sepolia_spec_duties_and_validators_parse() {
    let all = cassette();
    let find = |p: &str| all.iter().find(|e| e.path == p).unwrap();
    let genesis = wire::parse_genesis(find("/eth/v1/beacon/genesis").body.as_bytes()).unwrap();
    assert_eq!(genesis.genesis_time, 1_655_733_600);
    let spec = wire::parse_spec(find("/eth/v1/config/spec").body.as_bytes(), &genesis).unwrap();
    assert_eq!(spec.slots_per_epoch, 32);
    assert_eq!(spec.slot_duration_ms, 12_000);
    assert_eq!(spec.epochs_per_sync_committee_period, 256);
    assert_eq!(spec.fork_at(Epoch(240249)), Fork::Electra);
    assert!(spec.forks.contains(&(Fork::Electra, Epoch(222464))));
    assert!(
        spec.forks.iter().all(|(f, _)| *f != Fork::Fulu),
        "FULU_FORK_EPOCH is far future"
    );

    let mut duty_answers = 0;
    for e in all
        .iter()
        .filter(|e| e.path.starts_with("/eth/v1/validator/duties/proposer/"))
    {
        let epoch = Epoch(slot_in(&e.path, "/eth/v1/validator/duties/proposer/", "").unwrap());
        let d = wire::parse_proposer_duties(e.body.as_bytes(), epoch, None).unwrap();
        assert_eq!(d.duties.len(), 32);
        assert!(d.duties.iter().all(|x| spec.epoch_of(x.slot) == epoch));
        duty_answers += 1;
    }
    assert_eq!(duty_answers, 3);

    let mut validator_answers = 0;
    for e in all.iter().filter(|e| e.path.ends_with("/validators")) {
        let raw: Value = serde_json::from_str(&e.body).unwrap();
        let vs = wire::parse_validators(e.body.as_bytes()).unwrap();
        assert_eq!(vs.len(), raw["data"].as_array().unwrap().len());
        assert!(vs.len() > 1000);
        // Spot-check against the raw JSON rather than against known numbers.
        let last = &raw["data"][vs.len() - 1];
        let v = vs.last().unwrap();
        assert_eq!(v.index.0.to_string(), last["index"].as_str().unwrap());
        assert_eq!(v.balance.0.to_string(), last["balance"].as_str().unwrap());
        assert_eq!(v.status.as_str(), last["status"].as_str().unwrap());
        assert_eq!(
            v.pubkey.to_hex(),
            last["validator"]["pubkey"].as_str().unwrap()
        );
        validator_answers += 1;
    }
    assert_eq!(validator_answers, 2);
}

struct Recorded {
    method: String,
    path: String,
    status: u16,
    headers: BTreeMap<String, String>,
    response: Value,
}

fn lodestar() -> Vec<Recorded> {
    std::fs::read_to_string(lodestar_path())
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Recorded {
                method: v["method"].as_str().unwrap().to_string(),
                path: v["path"].as_str().unwrap().to_string(),
                status: v["status"].as_u64().unwrap() as u16,
                headers: serde_json::from_value(v["headers"].clone()).unwrap_or_default(),
                response: v["response"].clone(),
            }
        })
        .collect()
}

#[test]
fn lodestar_blocks_decode_across_the_deneb_electra_fork() {
    let mut deneb = 0;
    let mut electra = 0;
    let mut with_attestations = 0;
    for r in lodestar() {
        let Some(slot) = slot_in(&r.path, "/eth/v2/beacon/blocks/", "") else {
            continue;
        };
        if r.status != 200 {
            // Empty slots: Lodestar's error shape, message extracted.
            let msg = wire::error_message(r.response.to_string().as_bytes());
            assert!(msg.starts_with("No block found"), "{msg}");
            continue;
        }
        let body = serde_json::to_vec(&r.response).unwrap();
        let version = r.headers.get("Eth-Consensus-Version").map(String::as_str);
        let d = wire::decode_block(&body, version, None).unwrap();
        let b = d.block;
        assert!(d.degraded.is_empty());
        assert_eq!(b.header.slot, Slot(slot));
        let raw = &r.response["data"]["message"];
        assert_eq!(
            b.header.proposer_index.0.to_string(),
            raw["proposer_index"].as_str().unwrap()
        );
        assert_eq!(
            b.header.parent_root.to_hex(),
            raw["parent_root"].as_str().unwrap()
        );
        assert_eq!(
            b.attestations.len(),
            raw["body"]["attestations"].as_array().unwrap().len()
        );
        let sync = b.sync_committee_bits.as_ref().unwrap();
        assert_eq!(sync.len(), 32, "minimal preset: SYNC_COMMITTEE_SIZE 32");
        if slot < LODESTAR_ELECTRA_SLOT {
            assert_eq!(b.fork, Fork::Deneb, "slot {slot}");
            assert!(b.attestations.iter().all(|a| a.committee_bits.is_none()));
            deneb += 1;
        } else {
            assert_eq!(b.fork, Fork::Electra, "slot {slot}");
            assert!(b
                .attestations
                .iter()
                .all(|a| a.committee_bits.is_some() && a.data.index == 0));
            electra += 1;
        }
        if !b.attestations.is_empty() {
            with_attestations += 1;
        }
    }
    assert!(
        deneb > 10 && electra > 50,
        "deneb {deneb}, electra {electra}"
    );
    assert!(with_attestations > 50);
}

// ---------------------------------------------------------------------------
// The same recording served over HTTP
// ---------------------------------------------------------------------------

/// The last successful answer per (method, path with query), else the last one.
/// Status, headers and body of one recorded answer.
type Answer = (u16, BTreeMap<String, String>, Vec<u8>);

struct Replay {
    answers: HashMap<(String, String), Answer>,
    prefix: &'static str,
    served: std::sync::atomic::AtomicU64,
}

fn replay_answers(records: &[Recorded]) -> Replay {
    let mut answers = HashMap::new();
    for r in records {
        let key = (r.method.clone(), r.path.clone());
        let keep_old = matches!(answers.get(&key), Some((200, _, _))) && r.status != 200;
        if !keep_old {
            let body = serde_json::to_vec(&r.response).unwrap();
            answers.insert(key, (r.status, r.headers.clone(), body));
        }
    }
    Replay {
        answers,
        prefix: "/node-1",
        served: Default::default(),
    }
}

async fn serve_replay(replay: Arc<Replay>) -> SocketAddr {
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, _body: Bytes| {
        let replay = replay.clone();
        async move {
            replay
                .served
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let Some(path) = uri.path().strip_prefix(replay.prefix) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            let full = match uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path.to_string(),
            };
            let m = method.as_str().to_string();
            let hit = replay
                .answers
                .get(&(m.clone(), full))
                .or_else(|| replay.answers.get(&(m, path.to_string())));
            match hit {
                Some((status, headers, body)) => {
                    let mut h = HeaderMap::new();
                    for (k, v) in headers {
                        h.insert(
                            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                            v.parse().unwrap(),
                        );
                    }
                    h.insert("content-type", "application/json".parse().unwrap());
                    (StatusCode::from_u16(*status).unwrap(), h, body.clone()).into_response()
                }
                None => (
                    StatusCode::NOT_FOUND,
                    r#"{"code":404,"message":"not recorded"}"#,
                )
                    .into_response(),
            }
        }
    });
    serve(app).await
}

async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn node(name: &str, url: String) -> BeaconClient {
    BeaconClient::new(NodeConfig {
        name: name.into(),
        url: url.parse().unwrap(),
        role: NodeRole::Private,
        headers: vec![],
        timeout: Duration::from_secs(5),
        max_requests_per_second: None,
    })
    .unwrap()
}

fn find<'a>(records: &'a [Recorded], method: &str, path: &str) -> &'a Recorded {
    records
        .iter()
        .rev()
        .find(|r| r.method == method && r.path == path && r.status == 200)
        .unwrap_or_else(|| panic!("{method} {path} not recorded"))
}

#[tokio::test]
async fn the_client_reads_a_recorded_lodestar_node_over_http() {
    let records = lodestar();
    let mut replay = replay_answers(&records);
    let refused = records
        .iter()
        .rev()
        .find(|r| r.status == 500 && r.path.starts_with("/eth/v1/validator/duties/proposer/"))
        .unwrap();
    replay.answers.insert(
        (
            "GET".into(),
            format!("/eth/v1/validator/duties/proposer/{REFUSED_EPOCH}"),
        ),
        (
            500,
            refused.headers.clone(),
            serde_json::to_vec(&refused.response).unwrap(),
        ),
    );
    let replay = Arc::new(replay);
    let addr = serve_replay(replay.clone()).await;
    // The base URL has a path prefix, as behind a provider or a proxy.
    let c = node("lodestar", format!("http://{addr}/node-1/"));

    let genesis = c.genesis().await.unwrap();
    let raw_genesis = &find(&records, "GET", "/eth/v1/beacon/genesis").response["data"];
    assert_eq!(
        genesis.genesis_time.to_string(),
        raw_genesis["genesis_time"].as_str().unwrap()
    );
    let spec = c.chain_spec(&genesis).await.unwrap();
    assert_eq!((spec.slots_per_epoch, spec.slot_duration_ms), (8, 2000));
    assert_eq!(spec.fork_at(Epoch(4)), Fork::Deneb);
    assert_eq!(spec.fork_at(Epoch(5)), Fork::Electra);

    let syncing = c.syncing().await.unwrap();
    assert!(!syncing.is_syncing);

    // A Deneb block and an Electra block, each with the root from its header.
    for slot in [38u64, 48] {
        let header = c.header(BlockId::Slot(Slot(slot))).await.unwrap().unwrap();
        let raw_root = find(
            &records,
            "GET",
            &format!("/eth/v1/beacon/blocks/{slot}/root"),
        )
        .response["data"]["root"]
            .as_str()
            .unwrap()
            .parse::<Root>()
            .unwrap();
        assert_eq!(header.root, raw_root);
        assert_eq!(
            c.block_root(BlockId::Slot(Slot(slot))).await.unwrap(),
            Some(raw_root)
        );
        let block = c
            .block(BlockId::Slot(Slot(slot)), Some(header.root))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(block.header, header);
        let raw = &find(&records, "GET", &format!("/eth/v2/beacon/blocks/{slot}")).response;
        assert_eq!(
            block.attestations.len(),
            raw["data"]["message"]["body"]["attestations"]
                .as_array()
                .unwrap()
                .len()
        );
        assert_eq!(block.fork == Fork::Electra, slot >= LODESTAR_ELECTRA_SLOT);
    }

    // An empty slot is `None`, not an error.
    let empty = records
        .iter()
        .find(|r| r.status == 404 && r.path.starts_with("/eth/v2/beacon/blocks/"))
        .unwrap();
    let empty_slot = slot_in(&empty.path, "/eth/v2/beacon/blocks/", "").unwrap();
    assert_eq!(
        c.block(BlockId::Slot(Slot(empty_slot)), None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        c.header(BlockId::Slot(Slot(empty_slot))).await.unwrap(),
        None
    );

    // Committees and sync committee of epoch 4 (head state).
    let committees = c
        .committees(StateId::Head, Epoch(4))
        .await
        .unwrap()
        .unwrap();
    let raw = find(
        &records,
        "GET",
        "/eth/v1/beacon/states/head/committees?epoch=4",
    );
    assert_eq!(
        committees.len(),
        raw.response["data"].as_array().unwrap().len()
    );
    assert!(committees.iter().all(|c| spec.epoch_of(c.slot) == Epoch(4)));
    let sync = c
        .sync_committee(StateId::Head, Epoch(4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sync.len(), 32);

    // Proposer duties: the dependent root is the body's.
    let duty_rec = records
        .iter()
        .rev()
        .find(|r| r.status == 200 && r.path.starts_with("/eth/v1/validator/duties/proposer/"))
        .unwrap();
    let epoch = Epoch(slot_in(&duty_rec.path, "/eth/v1/validator/duties/proposer/", "").unwrap());
    let duties = c.proposer_duties(epoch).await.unwrap();
    assert_eq!(
        duties.dependent_root.to_hex(),
        duty_rec.response["dependent_root"].as_str().unwrap()
    );
    assert_eq!(duties.duties.len(), 8);

    // A range-limit error comes back as Status with Lodestar's message.
    // (Served at an epoch of its own: the replay prefers 200 answers.)
    let refused = records
        .iter()
        .rev()
        .find(|r| r.status == 500 && r.path.starts_with("/eth/v1/validator/duties/proposer/"))
        .unwrap();
    let err = c.proposer_duties(Epoch(REFUSED_EPOCH)).await.unwrap_err();
    match &err {
        BeaconError::Status {
            status,
            message,
            node,
            ..
        } => {
            assert_eq!(*status, 500);
            assert_eq!(message, refused.response["message"].as_str().unwrap());
            assert_eq!(node, "lodestar");
        }
        other => panic!("{other}"),
    }

    // Validators (POST) and liveness.
    let state_path = records
        .iter()
        .rev()
        .find(|r| r.method == "POST" && r.status == 200 && r.path.ends_with("/validators"))
        .unwrap()
        .path
        .clone();
    let state_slot = slot_in(&state_path, "/eth/v1/beacon/states/", "/validators").unwrap();
    let ids: Vec<ValidatorId> = (0..64)
        .map(|i| ValidatorId::Index(ValidatorIndex(i)))
        .collect();
    let vs = c
        .validators(StateId::Slot(Slot(state_slot)), &ids)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(vs.len(), 64);
    assert!(vs.iter().all(|v| v.effective_balance.0 == 32_000_000_000));

    let live_rec = records
        .iter()
        .rev()
        .find(|r| r.status == 200 && r.path.starts_with("/eth/v1/validator/liveness/"))
        .unwrap();
    let live_epoch = Epoch(slot_in(&live_rec.path, "/eth/v1/validator/liveness/", "").unwrap());
    let idx: Vec<ValidatorIndex> = (0..64).map(ValidatorIndex).collect();
    let live = c.liveness(live_epoch, &idx).await.unwrap();
    let raw_live = live_rec.response["data"].as_array().unwrap();
    assert_eq!(live.len(), raw_live.len());
    for ((v, is_live), raw) in live.iter().zip(raw_live) {
        assert_eq!(v.0.to_string(), raw["index"].as_str().unwrap());
        assert_eq!(*is_live, raw["is_live"].as_bool().unwrap());
    }

    let fin = c.finality(StateId::Head).await.unwrap();
    assert!(fin.finalized.epoch <= fin.current_justified.epoch);

    let stats = c.stats();
    assert_eq!(
        stats.requests,
        replay.served.load(std::sync::atomic::Ordering::SeqCst)
    );
    assert!(stats.last_latency.is_some());
    // The one deliberate 500 is the only error.
    assert_eq!(stats.errors, 1, "{stats:?}");

    // Without the prefix the same server knows nothing.
    let wrong = node("no-prefix", format!("http://{addr}/"));
    assert!(wrong.genesis().await.is_err());
}

#[tokio::test]
async fn validator_ids_go_out_in_batches_and_all_answers_come_back() {
    use std::sync::Mutex;
    let batches: Arc<Mutex<Vec<usize>>> = Arc::default();
    let seen = batches.clone();
    let app = axum::Router::new().route(
        "/eth/v1/beacon/states/{state}/validators",
        axum::routing::post(move |body: axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                let ids: Vec<u64> = body.0["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().parse().unwrap())
                    .collect();
                seen.lock().unwrap().push(ids.len());
                let data: Vec<Value> = ids
                    .iter()
                    .map(|i| {
                        serde_json::json!({
                            "index": i.to_string(), "balance": (32_000_000_000u64 + i).to_string(),
                            "status": "active_ongoing",
                            "validator": {
                                "pubkey": format!("0x{}", "ab".repeat(48)),
                                "withdrawal_credentials": format!("0x{}", "00".repeat(32)),
                                "effective_balance": "32000000000", "slashed": false,
                                "activation_eligibility_epoch": "0", "activation_epoch": "0",
                                "exit_epoch": "18446744073709551615",
                                "withdrawable_epoch": "18446744073709551615"
                            }
                        })
                    })
                    .collect();
                axum::Json(serde_json::json!({"execution_optimistic": false, "data": data}))
            }
        }),
    );
    let addr = serve(app).await;
    let c = node("batch", format!("http://{addr}"));
    let n = 2 * IDS_PER_REQUEST + 17;
    let ids: Vec<ValidatorId> = (0..n as u64)
        .map(|i| ValidatorId::Index(ValidatorIndex(i)))
        .collect();
    let vs = c.validators(StateId::Head, &ids).await.unwrap().unwrap();
    assert_eq!(vs.len(), n);
    assert_eq!(vs[n - 1].balance.0, 32_000_000_000 + n as u64 - 1);
    assert_eq!(
        *batches.lock().unwrap(),
        vec![IDS_PER_REQUEST, IDS_PER_REQUEST, 17]
    );
    // No ids: no request (an empty list would ask for the whole registry).
    assert_eq!(
        c.validators(StateId::Head, &[]).await.unwrap(),
        Some(vec![])
    );
    assert_eq!(batches.lock().unwrap().len(), 3);
}
