//! `valwatch demo` end to end, in-process: the demo network (two nodes, one
//! failing now and then), the real monitor and the embedded SQLite store.
//! Afterwards the store must hold EXACTLY the simulator's ground truth for
//! every epoch judged for good.

use std::collections::BTreeMap;
use std::fmt::Debug;

use tokio_util::sync::CancellationToken;
use valwatch::demo::{Demo, DemoOptions};
use valwatch::store::{ReportQuery, Store};

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
    let judged = demo.run(CancellationToken::new(), &mut out).await.unwrap();
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
    // With an empty first slot gather_epoch falls back to the epoch's last
    // block (start-of-epoch balances): the scenario must not hit that.
    assert!(next_blocks.iter().all(|b| *b), "{next_blocks:?}");

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
            .map(|b| ((b.validator_index.0, b.epoch.0), b))
            .collect(),
        end_balances
            .into_iter()
            .map(|mut b| {
                b.epoch.0 -= 1;
                if b.epoch.0 == 0 {
                    b.balance_change = None;
                }
                ((b.validator_index.0, b.epoch.0), b)
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
}
