//! What a simulated node serves over HTTP matches the scenario's ground
//! truth: aggregates decoded with the documented committee-offset algorithm
//! (beacon-api.md §1.5, done here, independently of `valwatch::beacon`)
//! name exactly the validators the ground truth says were included; sync
//! bits, registry statuses, balances, slashings, orphans and finality agree.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

use std::collections::BTreeMap;

use serde_json::{json, Value};
use valwatch::analysis::{AttestationStatus, ProposalStatus};
use valwatch::sim::{
    Behaviour, BehaviourKind, GroundTruth, NodeOptions, Scenario, SimNode, ValidatorSet,
};

async fn get(url: String) -> (u16, Value) {
    let r = reqwest::get(&url).await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn num(v: &Value) -> u64 {
    v.as_str().unwrap().parse().unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

fn bit(b: &[u8], i: usize) -> bool {
    (b[i / 8] >> (i % 8)) & 1 == 1
}

/// SSZ bitlist length: the highest set bit of the last byte is the delimiter.
fn bitlist_len(b: &[u8]) -> usize {
    let last = *b.last().unwrap();
    8 * (b.len() - 1) + (7 - last.leading_zeros() as usize)
}

#[derive(Debug, PartialEq)]
struct Seen {
    inclusion: u64,
    head_ok: bool,
    target_ok: bool,
}

struct Served {
    roots: BTreeMap<u64, String>,
    /// (validator, target epoch) -> first inclusion
    seen: BTreeMap<(u64, u64), Seen>,
    /// slot -> (version, any / all attestations with committee_bits)
    versions: BTreeMap<u64, (String, bool, bool)>,
}

impl Served {
    fn canonical_at(&self, slot: u64) -> &str {
        self.roots.range(..=slot).next_back().unwrap().1
    }
}

/// Reads the chain from a node the way a monitor would and decodes every
/// aggregate into validators.
async fn read_chain(base: &str, head: u64, spe: u64) -> Served {
    let mut roots = BTreeMap::new();
    for s in 0..=head {
        let (st, v) = get(format!("{base}/eth/v1/beacon/blocks/{s}/root")).await;
        if st == 200 {
            roots.insert(s, v["data"]["root"].as_str().unwrap().to_string());
        } else {
            assert_eq!(st, 404);
        }
    }
    let mut committees: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
    for e in 0..=head / spe {
        let state = roots.range(e * spe..).next().map(|(s, _)| *s).unwrap();
        let (st, v) = get(format!(
            "{base}/eth/v1/beacon/states/{state}/committees?epoch={e}"
        ))
        .await;
        assert_eq!(st, 200, "committees of epoch {e}");
        for c in v["data"].as_array().unwrap() {
            let vs = c["validators"]
                .as_array()
                .unwrap()
                .iter()
                .map(num)
                .collect();
            committees.insert((num(&c["slot"]), num(&c["index"])), vs);
        }
    }
    let mut served = Served {
        roots,
        seen: BTreeMap::new(),
        versions: BTreeMap::new(),
    };
    let slots: Vec<u64> = served.roots.keys().copied().filter(|&s| s > 0).collect();
    for b in slots {
        let r = reqwest::get(format!("{base}/eth/v2/beacon/blocks/{b}"))
            .await
            .unwrap();
        let header = r.headers()["eth-consensus-version"]
            .to_str()
            .unwrap()
            .to_string();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["version"].as_str().unwrap(), header);
        let atts = v["data"]["message"]["body"]["attestations"]
            .as_array()
            .unwrap()
            .clone();
        served.versions.insert(
            b,
            (
                header,
                atts.iter().any(|a| a.get("committee_bits").is_some()),
                atts.iter().all(|a| a.get("committee_bits").is_some()),
            ),
        );
        for a in atts {
            let d = &a["data"];
            let t = num(&d["slot"]);
            let ks: Vec<u64> = match a.get("committee_bits") {
                Some(cb) => {
                    let cb = bytes(cb);
                    (0..cb.len() * 8)
                        .filter(|&i| bit(&cb, i))
                        .map(|i| i as u64)
                        .collect()
                }
                None => vec![num(&d["index"])],
            };
            let agg = bytes(&a["aggregation_bits"]);
            let mut offset = 0;
            let mut voters = Vec::new();
            for k in ks {
                let c = &committees[&(t, k)];
                for (j, v) in c.iter().enumerate() {
                    if bit(&agg, offset + j) {
                        voters.push(*v);
                    }
                }
                offset += c.len();
            }
            assert_eq!(offset, bitlist_len(&agg), "aggregate length at block {b}");
            let epoch = num(&d["target"]["epoch"]);
            let head_ok = d["beacon_block_root"].as_str().unwrap() == served.canonical_at(t);
            let target_ok =
                d["target"]["root"].as_str().unwrap() == served.canonical_at(epoch * spe);
            for v in voters {
                served.seen.entry((v, epoch)).or_insert(Seen {
                    inclusion: b,
                    head_ok,
                    target_ok,
                });
            }
        }
    }
    served
}

fn compare(truth: &GroundTruth, served: &Served) {
    let mut included = 0;
    for a in &truth.attestations {
        let key = (a.validator_index.0, a.epoch.0);
        match a.status {
            AttestationStatus::Included => {
                included += 1;
                let expect = Seen {
                    inclusion: a.inclusion_slot.unwrap().0,
                    head_ok: a.head_correct.unwrap(),
                    target_ok: a.target_correct.unwrap(),
                };
                assert_eq!(served.seen.get(&key), Some(&expect), "{key:?}");
            }
            AttestationStatus::Missed | AttestationStatus::Inactive => {
                assert_eq!(served.seen.get(&key), None, "{key:?} {:?}", a.status)
            }
            other => panic!("{key:?} still {other:?}"),
        }
    }
    let judged: Vec<_> = served
        .seen
        .keys()
        .filter(|(_, e)| truth.attestations.iter().any(|a| a.epoch.0 == *e))
        .collect();
    assert_eq!(judged.len(), included, "every decoded vote is in the truth");
}

fn mixed(electra_fork_epoch: u64) -> Scenario {
    Scenario {
        seed: 42,
        validators: 256,
        electra_fork_epoch,
        missed_slots: vec![13],
        orphaned_slots: vec![20],
        behaviours: vec![
            Behaviour::new(ValidatorSet::range(0, 15), BehaviourKind::Late { delay: 3 })
                .epochs(1, 2),
            Behaviour::new(ValidatorSet::range(16, 31), BehaviourKind::WrongHead),
            Behaviour::new(ValidatorSet::range(32, 39), BehaviourKind::WrongTarget).epochs(2, 3),
            Behaviour::new(ValidatorSet::range(48, 55), BehaviourKind::Offline),
            // Beyond the inclusion window: lost.
            Behaviour::new(
                ValidatorSet::range(60, 63),
                BehaviourKind::Late { delay: 20 },
            )
            .epochs(1, 2),
        ],
        ..Scenario::default()
    }
}

#[tokio::test]
async fn electra_aggregates_decode_to_exactly_the_included_validators() {
    let node = SimNode::start(mixed(0), NodeOptions::pregenerated(6))
        .await
        .unwrap();
    let truth = node.chain().read().unwrap().truth(0, 3, None);
    let served = read_chain(&node.base_url(), 47, 8).await;
    compare(&truth, &served);
    // The scenario really exercises each case.
    let a = &truth.attestations;
    assert!(a
        .iter()
        .any(|a| a.inclusion_delay >= Some(3) && a.validator_index.0 < 16));
    assert!(a.iter().any(|a| a.head_correct == Some(false)));
    assert!(a.iter().any(|a| a.target_correct == Some(false)));
    assert!(a
        .iter()
        .any(|a| a.status == AttestationStatus::Missed && a.validator_index.0 >= 60));
    // Aggregates span several committees (4 per slot here).
    assert!(served
        .versions
        .values()
        .all(|(v, _, all)| v == "electra" && *all));
}

#[tokio::test]
async fn deneb_blocks_before_the_fork_carry_one_committee_per_attestation() {
    let node = SimNode::start(mixed(2), NodeOptions::pregenerated(6))
        .await
        .unwrap();
    let truth = node.chain().read().unwrap().truth(0, 3, None);
    let served = read_chain(&node.base_url(), 47, 8).await;
    compare(&truth, &served);
    for (slot, (version, any, all)) in &served.versions {
        let electra = *slot >= 16;
        assert_eq!(
            version,
            if electra { "electra" } else { "deneb" },
            "slot {slot}"
        );
        assert!(if electra { *all } else { !*any }, "slot {slot}");
    }
    // Deneb votes of the last pre-fork slot cannot enter Electra blocks.
    let lost = truth
        .attestations
        .iter()
        .filter(|a| a.duty_slot == Some(valwatch::chain::Slot(15)));
    assert!(
        lost.clone().count() > 0
            && lost
                .clone()
                .all(|a| a.status != AttestationStatus::Included)
    );
}

#[tokio::test]
async fn orphaned_blocks_stay_retrievable_by_root_and_missed_slots_are_empty() {
    let node = SimNode::start(mixed(0), NodeOptions::pregenerated(4))
        .await
        .unwrap();
    let base = node.base_url();
    let truth = node.chain().read().unwrap().truth(0, 3, None);
    let orphan = truth.proposals.iter().find(|p| p.slot.0 == 20).unwrap();
    assert_eq!(orphan.status, ProposalStatus::Orphaned);
    let root = orphan.block_root.unwrap().to_hex();
    let (st, h) = get(format!("{base}/eth/v1/beacon/headers/{root}")).await;
    assert_eq!(st, 200);
    assert_eq!(h["data"]["canonical"], false);
    assert_eq!(h["data"]["header"]["message"]["slot"], "20");
    assert_eq!(get(format!("{base}/eth/v1/beacon/headers/20")).await.0, 404);
    let (_, list) = get(format!("{base}/eth/v1/beacon/headers?slot=20")).await;
    assert_eq!(list["data"][0]["root"], root.as_str());
    assert_eq!(list["data"][0]["canonical"], false);
    let (_, next) = get(format!("{base}/eth/v1/beacon/headers/21")).await;
    let (_, parent) = get(format!("{base}/eth/v1/beacon/blocks/19/root")).await;
    assert_eq!(
        next["data"]["header"]["message"]["parent_root"],
        parent["data"]["root"]
    );
    let missed = truth.proposals.iter().find(|p| p.slot.0 == 13).unwrap();
    assert_eq!(missed.status, ProposalStatus::Missed);
    let (st, err) = get(format!("{base}/eth/v2/beacon/blocks/13")).await;
    assert_eq!((st, err["code"].as_u64()), (404, Some(404)));
    assert!(err["message"].as_str().unwrap().contains("13"));
}

#[tokio::test]
async fn sync_bits_match_the_ground_truth_of_each_member() {
    let sc = Scenario {
        seed: 5,
        validators: 64,
        behaviours: vec![
            Behaviour::new(ValidatorSet::range(0, 20), BehaviourKind::NoSync).epochs(1, 2),
            Behaviour::new(ValidatorSet::range(40, 50), BehaviourKind::Offline),
        ],
        missed_slots: vec![9],
        ..Scenario::default()
    };
    let node = SimNode::start(sc, NodeOptions::pregenerated(5))
        .await
        .unwrap();
    let base = node.base_url();
    let truth = node.chain().read().unwrap().truth(0, 3, None);
    let mut counted: BTreeMap<(u64, u64), (u32, u32)> = BTreeMap::new();
    // Block 1 carries the genesis slot's aggregate, which nobody signs and
    // nobody owes: it must be empty, and it is no duty.
    let (_, first) = get(format!("{base}/eth/v2/beacon/blocks/1")).await;
    let first_bits =
        bytes(&first["data"]["message"]["body"]["sync_aggregate"]["sync_committee_bits"]);
    assert!(first_bits.iter().all(|b| *b == 0), "{first_bits:?}");
    for b in 2..=32u64 {
        let (st, blk) = get(format!("{base}/eth/v2/beacon/blocks/{b}")).await;
        if st == 404 {
            continue;
        }
        let (_, sc) = get(format!(
            "{base}/eth/v1/beacon/states/{b}/sync_committees?epoch={}",
            b / 8
        ))
        .await;
        let seats: Vec<u64> = sc["data"]["validators"]
            .as_array()
            .unwrap()
            .iter()
            .map(num)
            .collect();
        assert_eq!(seats.len(), 32);
        let bits = bytes(&blk["data"]["message"]["body"]["sync_aggregate"]["sync_committee_bits"]);
        let mut signed: BTreeMap<u64, bool> = BTreeMap::new();
        for (i, v) in seats.iter().enumerate() {
            *signed.entry(*v).or_insert(false) |= bit(&bits, i);
        }
        for (v, ok) in signed {
            let e = counted.entry((v, (b - 1) / 8)).or_default();
            if ok {
                e.0 += 1
            } else {
                e.1 += 1
            }
        }
    }
    let expect: BTreeMap<(u64, u64), (u32, u32)> = truth
        .sync
        .iter()
        .map(|s| ((s.validator_index.0, s.epoch.0), (s.participated, s.missed)))
        .collect();
    assert_eq!(counted, expect);
    assert!(truth
        .sync
        .iter()
        .any(|s| s.missed > 0 && s.validator_index.0 <= 20 && s.epoch.0 == 1));
    assert!(truth
        .sync
        .iter()
        .any(|s| s.participated > 0 && s.epoch.0 == 0));
}

#[tokio::test]
async fn registry_shows_slashing_activation_and_exit_with_ground_truth_balances() {
    let sc = Scenario {
        seed: 9,
        validators: 64,
        behaviours: vec![
            Behaviour::new(
                ValidatorSet::range(5, 6),
                BehaviourKind::Slashed {
                    epoch: 2,
                    by: valwatch::analysis::SlashingKind::Attester,
                },
            ),
            Behaviour::new(
                ValidatorSet::one(7),
                BehaviourKind::Slashed {
                    epoch: 3,
                    by: valwatch::analysis::SlashingKind::Proposer,
                },
            ),
            Behaviour::new(
                ValidatorSet::range(60, 63),
                BehaviourKind::Activation { epoch: 3 },
            ),
            Behaviour::new(
                ValidatorSet::range(40, 41),
                BehaviourKind::Exit { epoch: 6 },
            ),
        ],
        ..Scenario::default()
    };
    let node = SimNode::start(sc, NodeOptions::pregenerated(8))
        .await
        .unwrap();
    let base = node.base_url();
    let truth = node.chain().read().unwrap().truth(0, 7, None);
    let http = reqwest::Client::new();
    for e in 0..8u64 {
        let (st, _) = get(format!("{base}/eth/v1/beacon/headers/{}", e * 8)).await;
        let slot = if st == 200 { e * 8 } else { e * 8 + 1 };
        let vals: Value = http
            .post(format!("{base}/eth/v1/beacon/states/{slot}/validators"))
            .json(&json!({ "ids": ["5", "6", "7", "60", "40", format!("{}", valwatch::sim::chain::pubkey_of(41))] }))
            .send().await.unwrap().json().await.unwrap();
        let vals = vals["data"].as_array().unwrap();
        assert_eq!(vals.len(), 6, "pubkey ids resolve too");
        for v in vals {
            let idx = num(&v["index"]);
            let t = truth
                .balances
                .iter()
                .find(|b| b.validator_index.0 == idx && b.epoch.0 == e)
                .unwrap();
            assert_eq!(v["status"], t.status.as_str(), "validator {idx} epoch {e}");
            assert_eq!(num(&v["balance"]), t.balance.0, "validator {idx} epoch {e}");
            assert_eq!(v["validator"]["slashed"], t.slashed);
        }
        let (_, duties) = get(format!(
            "{base}/eth/v1/beacon/states/{slot}/committees?epoch={e}"
        ))
        .await;
        let has60 = duties["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["validators"].as_array().unwrap().contains(&json!("60")));
        assert_eq!(
            has60,
            e >= 3,
            "pending validators have no duties (epoch {e})"
        );
    }
    let status = |v: u64, e: u64| {
        truth
            .balances
            .iter()
            .find(|b| b.validator_index.0 == v && b.epoch.0 == e)
            .unwrap()
            .status
            .as_str()
    };
    assert_eq!(
        (status(5, 1), status(5, 2), status(5, 7)),
        ("active_ongoing", "active_slashed", "exited_slashed")
    );
    assert_eq!(
        (status(60, 2), status(60, 3)),
        ("pending_queued", "active_ongoing")
    );
    assert_eq!(
        (status(40, 0), status(40, 1), status(40, 6)),
        ("active_ongoing", "active_exiting", "exited_unslashed")
    );
    // Evidence sits in blocks.
    let kinds: Vec<_> = truth
        .slashings
        .iter()
        .map(|s| (s.validator_index.0, s.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![(5, "attester"), (6, "attester"), (7, "proposer")]
    );
    let at = truth.slashings[0].included_in_slot.0;
    let (_, blk) = get(format!("{base}/eth/v2/beacon/blocks/{at}")).await;
    let s = &blk["data"]["message"]["body"]["attester_slashings"][0];
    assert_eq!(s["attestation_1"]["attesting_indices"], json!(["5", "6"]));
    let bal = |v: u64, e: u64| {
        truth
            .balances
            .iter()
            .find(|b| b.validator_index.0 == v && b.epoch.0 == e)
            .unwrap()
            .balance
            .0
    };
    assert!(
        bal(5, 2) + 900_000_000 < bal(5, 1),
        "slashing costs about 1 ETH"
    );
    assert!(bal(9, 4) > bal(9, 0), "a healthy validator earns");
}

#[tokio::test]
async fn finality_follows_participation() {
    let healthy = SimNode::start(Scenario::default(), NodeOptions::pregenerated(8))
        .await
        .unwrap();
    let (_, f) = get(format!(
        "{}/eth/v1/beacon/states/head/finality_checkpoints",
        healthy.base_url()
    ))
    .await;
    assert_eq!(f["data"]["finalized"]["epoch"], "5");
    let (_, h) = get(format!(
        "{}/eth/v1/beacon/headers/finalized",
        healthy.base_url()
    ))
    .await;
    assert_eq!(h["data"]["header"]["message"]["slot"], "40");
    assert_eq!(h["finalized"], true);
    let sc = Scenario {
        behaviours: vec![
            Behaviour::new(ValidatorSet::range(0, 24), BehaviourKind::Offline).epochs(5, 100),
        ],
        ..Scenario::default()
    };
    let stuck = SimNode::start(sc, NodeOptions::pregenerated(8))
        .await
        .unwrap();
    let (_, f) = get(format!(
        "{}/eth/v1/beacon/states/head/finality_checkpoints",
        stuck.base_url()
    ))
    .await;
    assert_eq!(
        f["data"]["finalized"]["epoch"], "3",
        "finality stops when 25 of 64 go offline"
    );
}

/// Mainnet size (32 slots × 64 committees, a million validators): a few
/// epochs generate and serve within seconds (about 2 s in a debug build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainnet_size_epochs_generate_and_serve() {
    let sc = Scenario {
        validators: 1_000_000,
        slots_per_epoch: 32,
        slot_duration_ms: 12_000,
        behaviours: vec![Behaviour::new(
            ValidatorSet::range(0, 9_999),
            BehaviourKind::Offline,
        )],
        ..Scenario::default()
    };
    let started = std::time::Instant::now();
    let node = SimNode::start(sc, NodeOptions::pregenerated(3))
        .await
        .unwrap();
    let generated = started.elapsed();
    let base = node.base_url();
    let (st, c) = get(format!(
        "{base}/eth/v1/beacon/states/head/committees?epoch=2&slot=70"
    ))
    .await;
    assert_eq!(st, 200);
    assert_eq!(c["data"].as_array().unwrap().len(), 64);
    let (_, b) = get(format!("{base}/eth/v2/beacon/blocks/head")).await;
    let att = &b["data"]["message"]["body"]["attestations"][0];
    assert_eq!(att["committee_bits"], "0xffffffffffffffff");
    let truth = node.chain().read().unwrap().truth(1, 1, Some(&[5, 20_000]));
    assert_eq!(truth.attestations[0].status, AttestationStatus::Missed);
    assert_eq!(truth.attestations[1].status, AttestationStatus::Included);
    eprintln!(
        "generated 3 mainnet epochs in {generated:?}, total {:?}",
        started.elapsed()
    );
}
