//! `valwatch demo` end to end, in-process: the demo network (two nodes, one
//! failing now and then), the real monitor and the embedded SQLite store.
//! Afterwards the store must hold EXACTLY the simulator's ground truth for
//! every epoch judged for good. Meanwhile an uptime checker polls `/status`
//! and `/status?group=`: 503 exactly while a validator in scope is failing
//! by the ground truth (two final misses in a row, or slashed), 200 before
//! and after.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use valwatch::analysis::{AttestationStatus, BalanceRecord};
use valwatch::demo::{Demo, DemoOptions};
use valwatch::sim::GroundTruth;
use valwatch::store::{ReportQuery, Store};

/// The demo scenario's epoch (`scenarios/demo.toml`).
const DEMO_SLOTS_PER_EPOCH: u64 = 8;
/// Short slots keep the test near 25 s; 400 ms still leaves the monitor's
/// quarter-slot poll (250 ms floor) time to follow every block.
const SLOT_MS: u64 = 400;
const EPOCHS: u64 = 6;

/// Lists every key where `got` and `want` differ (missing on either side
/// included).
fn differences<K: Ord + Debug, V: PartialEq + Debug>(
    what: &str,
    got: BTreeMap<K, V>,
    want: BTreeMap<K, V>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, w) in &want {
        match got.get(k) {
            None => out.push(format!("{what} {k:?}: missing, expected {w:?}")),
            Some(g) if g != w => out.push(format!("{what} {k:?}:\n   got {g:?}\n  want {w:?}")),
            Some(_) => {}
        }
    }
    for (k, g) in &got {
        if !want.contains_key(k) {
            out.push(format!("{what} {k:?}: not expected, got {g:?}"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_stores_exactly_the_ground_truth_of_every_final_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(DemoOptions {
        epochs: Some(EPOCHS),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(dir.path().to_path_buf()),
        slot_ms: SLOT_MS,
    })
    .await
    .unwrap();
    let listen = demo.listen().unwrap();
    assert_ne!(listen.port(), 0, "the printed status URL names a real port");

    let mut out = Vec::new();
    // An uptime checker polls /status (and ?group=) through the whole run.
    let stop = CancellationToken::new();
    let (judged, observations) = tokio::join!(
        async {
            let r = demo.run(CancellationToken::new(), &mut out).await;
            stop.cancel();
            r
        },
        poll_status(listen, stop.clone())
    );
    let judged = judged.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(judged, EPOCHS, "output:\n{text}");
    for e in 0..EPOCHS {
        assert!(
            text.contains(&format!("\nepoch {e}: ")),
            "no line for epoch {e}:\n{text}"
        );
    }
    assert!(text.contains(&format!("http://{listen}/")), "{text}");
    assert!(
        text.contains(&format!(
            "valwatch report --data-dir {}",
            dir.path().display()
        )),
        "{text}"
    );

    let store = Store::connect(&demo.database_url()).await.unwrap();
    assert_eq!(store.cursor().await.unwrap().map(|e| e.0), Some(EPOCHS - 1));
    let query = ReportQuery {
        validators: None,
        from_epoch: None,
        to_epoch: Some(valwatch::chain::Epoch(EPOCHS - 1)),
    };
    let report = store.report(&query).await.unwrap();
    let slashings = store.slashings(&query).await.unwrap();
    let truth = demo.chain().read().unwrap().truth(0, EPOCHS - 1, None);
    // valwatch records the registry at the END of epoch e (the state at the
    // first slot of e+1, `collect::gather_epoch`); the simulator's truth
    // lists balances at the START of each epoch. So valwatch's epoch e is
    // the truth's epoch e+1, with no change for the first stored epoch.
    let (end_balances, next_blocks) = {
        let chain = demo.chain();
        let sim = chain.read().unwrap();
        let spe = sim.slots_per_epoch();
        let next_blocks: Vec<bool> = (1..=EPOCHS)
            .map(|e| sim.canonical_block(e * spe).is_some())
            .collect();
        (sim.truth(1, EPOCHS, None).balances, next_blocks)
    };
    // With an empty first slot of e+1 (the demo's genesis time enters the
    // simulator's seed, so now and then the slashed validator 63 is drawn to
    // propose it and cannot), gather_epoch falls back to another state for
    // epoch e's balances (README: "Balances"): those balances, and the next
    // epoch's change that builds on them, are not compared. Everything else
    // is, and most runs have no such epoch.
    let fallback: std::collections::HashSet<u64> = next_blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| !**b)
        .map(|(e, _)| e as u64)
        .collect();
    assert!(
        fallback.len() <= 1,
        "the scenario should leave at most one first slot empty: {next_blocks:?}"
    );
    let comparable = |b: &mut BalanceRecord| -> bool {
        if fallback.contains(&(b.epoch.0.wrapping_sub(1))) {
            b.balance_change = None;
        }
        !fallback.contains(&b.epoch.0)
    };

    // The scenario must have produced what the demo promises, or the
    // comparison below proves little.
    use valwatch::analysis::{AttestationStatus as A, ProposalStatus as P};
    let status = |v: u64, e: u64| {
        truth
            .attestations
            .iter()
            .find(|a| a.validator_index.0 == v && a.epoch.0 == e)
            .map(|a| a.status)
    };
    assert_eq!(status(40, 2), Some(A::Missed));
    assert_eq!(status(40, 4), Some(A::Included));
    assert!(truth
        .attestations
        .iter()
        .any(|a| a.validator_index.0 == 10 && a.inclusion_delay >= Some(3)));
    assert!(truth
        .attestations
        .iter()
        .any(|a| a.validator_index.0 == 20 && a.head_correct == Some(false)));
    assert!(truth.proposals.iter().any(|p| p.status == P::Missed));
    assert_eq!(truth.slashings.len(), 1);

    // What the store holds for epoch e is the truth's registry at e+1.
    let stored_balances: Vec<BalanceRecord> = end_balances
        .iter()
        .cloned()
        .map(|mut b| {
            b.epoch.0 -= 1;
            b
        })
        .collect();

    let mut wrong = Vec::new();
    wrong.extend(differences(
        "attestation (validator, epoch)",
        report
            .attestations
            .into_iter()
            .map(|a| ((a.validator_index.0, a.epoch.0), a))
            .collect(),
        truth
            .attestations
            .iter()
            .cloned()
            .map(|a| ((a.validator_index.0, a.epoch.0), a))
            .collect(),
    ));
    wrong.extend(differences(
        "proposal slot",
        report
            .proposals
            .into_iter()
            .map(|p| (p.slot.0, p))
            .collect(),
        truth
            .proposals
            .iter()
            .cloned()
            .map(|p| (p.slot.0, p))
            .collect(),
    ));
    wrong.extend(differences(
        "sync (validator, epoch)",
        report
            .sync
            .into_iter()
            .map(|s| ((s.validator_index.0, s.epoch.0), s))
            .collect(),
        truth
            .sync
            .iter()
            .cloned()
            .map(|s| ((s.validator_index.0, s.epoch.0), s))
            .collect(),
    ));
    wrong.extend(differences(
        "balance (validator, epoch)",
        report
            .balances
            .into_iter()
            .filter_map(|mut b| comparable(&mut b).then_some(((b.validator_index.0, b.epoch.0), b)))
            .collect(),
        end_balances
            .into_iter()
            .filter_map(|mut b| {
                b.epoch.0 -= 1;
                if b.epoch.0 == 0 {
                    b.balance_change = None;
                }
                comparable(&mut b).then_some(((b.validator_index.0, b.epoch.0), b))
            })
            .collect(),
    ));
    wrong.extend(differences(
        "slashing validator",
        slashings
            .into_iter()
            .map(|s| (s.validator_index.0, s))
            .collect(),
        truth
            .slashings
            .iter()
            .cloned()
            .map(|s| (s.validator_index.0, s))
            .collect(),
    ));
    demo.shutdown().await;
    assert!(
        wrong.is_empty(),
        "{} differences from the ground truth:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    check_status_contract(&observations, &demo_groups(), &truth, &stored_balances);
}

/// The scopes the uptime checker polls: all of /status and some groups.
const SCOPES: &[Option<&str>] = &[None, Some("flaky"), Some("doomed"), Some("steady")];

/// How often the checker polls: many times per 3.2 s epoch.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// One answer of `/status[?group=]`.
#[derive(Debug)]
struct Observation {
    scope: Option<&'static str>,
    code: u16,
    state: String,
    /// Newest final and provisional epochs the answer reflects.
    final_epoch: Option<u64>,
    provisional_epoch: Option<u64>,
    /// Failing for a reason that is not a validator's (blind, stalled).
    global_failure: bool,
}

/// Polls every scope until `stop`; network errors (before the server is
/// up) are skipped.
async fn poll_status(listen: SocketAddr, stop: CancellationToken) -> Vec<Observation> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut out = Vec::new();
    while !stop.is_cancelled() {
        for scope in SCOPES {
            let url = match scope {
                None => format!("http://{listen}/status"),
                Some(g) => format!("http://{listen}/status?group={g}"),
            };
            let Ok(r) = http.get(url).send().await else {
                continue;
            };
            let code = r.status().as_u16();
            let Ok(body) = r.json::<serde_json::Value>().await else {
                continue;
            };
            let epoch = |k: &str| body[k]["epoch"].as_u64();
            out.push(Observation {
                scope: *scope,
                code,
                state: body["state"].as_str().unwrap_or("?").to_string(),
                final_epoch: epoch("last_final_epoch"),
                provisional_epoch: epoch("last_provisional_epoch"),
                global_failure: body["reasons"].as_array().into_iter().flatten().any(|r| {
                    r["state"] == "failing"
                        && matches!(r["kind"].as_str(), Some("blind" | "stalled"))
                }),
            });
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
    out
}

/// The demo's groups: name -> validator indices.
fn demo_groups() -> BTreeMap<String, Vec<u64>> {
    let plan = valwatch::demo::DemoPlan::embedded().unwrap();
    plan.groups
        .iter()
        .map(|g| {
            let vs = g
                .validators
                .split(',')
                .flat_map(|part| match part.split_once('-') {
                    Some((a, b)) => a.trim().parse::<u64>().unwrap()..=b.trim().parse().unwrap(),
                    None => {
                        let v = part.trim().parse::<u64>().unwrap();
                        v..=v
                    }
                })
                .collect();
            (g.name.clone(), vs)
        })
        .collect()
}

/// What the ground truth says a validator is at an answer reflecting final
/// epoch `f` and provisional epoch `p`: `Some(failing)`, or `None` when
/// either answer is right (a slashing can show in a provisional pass one
/// epoch before it is final).
fn truth_failing(
    v: u64,
    f: Option<u64>,
    p: Option<u64>,
    truth: &GroundTruth,
    stored_balances: &[BalanceRecord],
) -> Option<bool> {
    let threshold = valwatch::status::DEFAULT_FAIL_AFTER_MISSED;
    let Some(f) = f else {
        return Some(false).filter(|_| p.is_none() || !slashed_by(v, p, truth, stored_balances));
    };
    let status_of = |e: u64| {
        truth
            .attestations
            .iter()
            .find(|a| a.validator_index.0 == v && a.epoch.0 == e)
            .map(|a| a.status)
    };
    let missed_proposal_in = |e: u64| {
        truth.proposals.iter().any(|p| {
            p.validator_index.is_some_and(|x| x.0 == v)
                && p.status == valwatch::analysis::ProposalStatus::Missed
                && p.slot.0 / DEMO_SLOTS_PER_EPOCH == e
        })
    };
    // The one rule of up and down (src/health.rs) on final verdicts up to
    // f: `threshold` misses in a row, or a miss and a missed proposal in one
    // epoch of the streak.
    let mut consecutive = 0;
    let mut with_proposal = false;
    for e in 0..=f {
        match status_of(e) {
            Some(AttestationStatus::Missed) => {
                consecutive += 1;
                with_proposal |= missed_proposal_in(e);
            }
            Some(AttestationStatus::Included | AttestationStatus::Inactive) => {
                consecutive = 0;
                with_proposal = false;
            }
            _ => {}
        }
    }
    if slashed_by(v, Some(f), truth, stored_balances) {
        return Some(true);
    }
    let down_final = consecutive >= threshold || (consecutive > 0 && with_proposal);
    // Provisional passes of the epochs after f may already show more: an
    // included vote (back: recovering, not failing) or early evidence of a
    // miss (down before its final verdict). Which one a given answer saw
    // depends on block timing, so either answer is right then.
    let open = (f + 1)..=p.unwrap_or(f).max(f);
    let back_after = open
        .clone()
        .any(|e| status_of(e) == Some(AttestationStatus::Included));
    let missed_after = open
        .clone()
        .any(|e| status_of(e) == Some(AttestationStatus::Missed));
    if slashed_by(v, p, truth, stored_balances) {
        return None;
    }
    match (down_final, back_after, missed_after) {
        (true, false, _) => Some(true),
        (true, true, _) => None,
        (false, _, true) => None,
        (false, _, false) => Some(false),
    }
}

/// Whether the records of epochs up to `e` show `v` slashed: a slashing
/// found in a block of that epoch, or the registry flag stored for it.
fn slashed_by(v: u64, e: Option<u64>, truth: &GroundTruth, stored: &[BalanceRecord]) -> bool {
    let Some(e) = e else { return false };
    truth
        .slashings
        .iter()
        .any(|s| s.validator_index.0 == v && s.epoch.0 <= e)
        || stored
            .iter()
            .any(|b| b.validator_index.0 == v && b.epoch.0 <= e && b.slashed)
}

/// `/status` is 503 exactly while a validator in scope is failing by the
/// ground truth (or valwatch is blind or stalled), 200 before and after;
/// `?group=` narrows it to the group's validators.
fn check_status_contract(
    observations: &[Observation],
    groups: &BTreeMap<String, Vec<u64>>,
    truth: &GroundTruth,
    stored_balances: &[BalanceRecord],
) {
    let mut wrong = Vec::new();
    let mut seen: BTreeMap<(Option<&str>, Option<bool>), usize> = BTreeMap::new();
    let mut flaky_codes: Vec<u16> = Vec::new();
    for o in observations {
        let members: Vec<u64> = match o.scope {
            None => groups.values().flatten().copied().collect(),
            Some(g) => groups[g].clone(),
        };
        let verdicts: Vec<Option<bool>> = members
            .iter()
            .map(|v| {
                truth_failing(
                    *v,
                    o.final_epoch,
                    o.provisional_epoch,
                    truth,
                    stored_balances,
                )
            })
            .collect();
        let expected = if o.global_failure || verdicts.contains(&Some(true)) {
            Some(true)
        } else if verdicts.contains(&None) {
            None
        } else {
            Some(false)
        };
        *seen.entry((o.scope, expected)).or_default() += 1;
        if (o.code == 503) != (o.state == "failing") || !matches!(o.code, 200 | 503) {
            wrong.push(format!("{o:?}: the code does not match the state"));
        }
        if let Some(want) = expected {
            if (o.code == 503) != want {
                wrong.push(format!("{o:?}: expected {}", if want { 503 } else { 200 }));
            }
        }
        if o.scope == Some("flaky") && !o.global_failure && flaky_codes.last() != Some(&o.code) {
            flaky_codes.push(o.code);
        }
    }
    // The run must have shown the whole story, or agreeing proves little:
    // the flaky group fine, then failing, then fine again; the steady group
    // never failing; the doomed group failing at the end.
    if !flaky_codes.windows(3).any(|w| w == [200, 503, 200]) {
        wrong.push(format!(
            "flaky group: codes {flaky_codes:?}, want 200, 503, 200"
        ));
    }
    for (key, what) in [
        ((Some("steady"), Some(false)), "steady group ok"),
        ((Some("doomed"), Some(true)), "doomed group failing"),
        ((None, Some(false)), "all ok"),
        ((None, Some(true)), "all failing"),
    ] {
        if seen.get(&key).copied().unwrap_or(0) == 0 {
            wrong.push(format!("never observed: {what} ({seen:?})"));
        }
    }
    let globals = observations.iter().filter(|o| o.global_failure).count();
    if globals > 0 {
        eprintln!("NOTICE: {globals} answers failing for blind/stalled (a loaded machine?)");
    }
    assert!(
        wrong.is_empty(),
        "/status contract broken ({} of {} answers; the first 30):\n{}",
        wrong.len(),
        observations.len(),
        wrong[..wrong.len().min(30)].join("\n")
    );
}
