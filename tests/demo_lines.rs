//! The demo's pure parts: its embedded plan, fault windows and the
//! per-epoch line, and a demo without `--epochs` stopping on cancel.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use valwatch::analysis::{
    AttestationStatus, AttestationVerdict, ProposalStatus, ProposalVerdict, SlashingKind,
    SlashingRecord, SyncVerdict,
};
use valwatch::chain::{Epoch, Slot, ValidatorIndex};
use valwatch::demo::{epoch_line, expand_faults, ranges, Demo, DemoOptions, DemoPlan};
use valwatch::sim::FaultKind;
use valwatch::store::Report;

#[test]
fn the_embedded_plan_watches_every_validator_with_two_nodes() {
    let plan = DemoPlan::embedded().unwrap();
    assert_eq!(plan.nodes.len(), 2);
    let mut watched: Vec<u64> = plan
        .groups
        .iter()
        .flat_map(|g| {
            g.validators
                .parse::<valwatch::sim::ValidatorSet>()
                .unwrap()
                .iter()
                .collect::<Vec<_>>()
        })
        .collect();
    watched.sort();
    assert_eq!(watched, (0..plan.scenario.validators).collect::<Vec<_>>());
}

#[test]
fn fault_windows_repeat_with_their_period() {
    let plan = DemoPlan::embedded().unwrap();
    let beta = plan.nodes.iter().find(|n| !n.faults.is_empty()).unwrap();
    let period = beta.repeat_every_slots.unwrap();
    let faults = expand_faults(beta, 3 * period);
    assert_eq!(faults.len(), 3 * beta.faults.len());
    let first = &beta.faults[0];
    let third = &faults[2 * beta.faults.len()];
    assert_eq!(third.kind, first.kind);
    assert_eq!(third.from_slot, first.from_slot.map(|s| s + 2 * period));
    assert_eq!(third.until_slot, first.until_slot.map(|s| s + 2 * period));
    assert!(faults.iter().any(|f| f.kind == FaultKind::Refuse));
}

#[test]
fn indices_print_as_ranges() {
    let cases: [(&[u64], &str); 5] = [
        (&[], ""),
        (&[7], "7"),
        (&[43, 40, 41, 42], "40-43"),
        (&[1, 3, 4, 9, 9], "1,3-4,9"),
        (&[0, 2, 4, 6, 8, 10, 12, 14], "0,2,4,6,8,10,…"),
    ];
    for (input, want) in cases {
        assert_eq!(ranges(input), want, "{input:?}");
    }
}

fn att(v: u64, e: u64, status: AttestationStatus) -> AttestationVerdict {
    let included = status == AttestationStatus::Included;
    AttestationVerdict {
        validator_index: ValidatorIndex(v),
        epoch: Epoch(e),
        status,
        duty_slot: Some(Slot(e * 8)),
        inclusion_slot: included.then_some(Slot(e * 8 + 1)),
        inclusion_delay: included.then_some(1),
        late: included.then_some(false),
        source_correct: included.then_some(true),
        target_correct: included.then_some(true),
        head_correct: included.then_some(true),
        reason: None,
    }
}

#[test]
fn an_epoch_line_counts_only_its_own_epoch() {
    let mut report = Report::default();
    for v in 0..6 {
        report
            .attestations
            .push(att(v, 3, AttestationStatus::Included));
        // Another epoch's rows must not leak into epoch 3's line.
        report
            .attestations
            .push(att(v, 4, AttestationStatus::Missed));
    }
    report.attestations[0].late = Some(true);
    // Index 2 is validator 1 of epoch 3 (rows alternate epochs 3 and 4).
    report.attestations[2].head_correct = Some(false);
    for v in 40..44 {
        report
            .attestations
            .push(att(v, 3, AttestationStatus::Missed));
    }
    for (slot, status) in [
        (24, ProposalStatus::Proposed),
        (25, ProposalStatus::Missed),
        (26, ProposalStatus::Proposed),
        (32, ProposalStatus::Missed),
    ] {
        report.proposals.push(ProposalVerdict {
            slot: Slot(slot),
            validator_index: Some(ValidatorIndex(slot)),
            status,
            block_root: None,
            reason: None,
        });
    }
    report.sync.push(SyncVerdict {
        validator_index: ValidatorIndex(1),
        epoch: Epoch(3),
        participated: 6,
        missed: 2,
    });
    let slashings = [SlashingRecord {
        validator_index: ValidatorIndex(63),
        epoch: Epoch(3),
        included_in_slot: Slot(24),
        kind: SlashingKind::Attester,
    }];
    assert_eq!(
        epoch_line(Epoch(3), 8, &report, &slashings),
        "epoch 3: 6 included, 4 missed (40-43), 1 late (0), 1 wrong head (1), \
         proposals 2 ok, 1 missed (slot 25 by 25), sync 75%, SLASHED 63 (attester, slot 24)"
    );
    assert_eq!(
        epoch_line(Epoch(4), 8, &report, &[]),
        "epoch 4: 0 included, 6 missed (0-5), proposals 0 ok, 1 missed (slot 32 by 32)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_without_epochs_runs_until_cancelled_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(DemoOptions {
        epochs: None,
        listen: None,
        data_dir: Some(dir.path().to_path_buf()),
        slot_ms: 250,
    })
    .await
    .unwrap();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        // Epoch 0 is final after 2 epochs + 2 slots = 4.5 s at 250 ms.
        tokio::time::sleep(Duration::from_millis(7_000)).await;
        stop.cancel();
    });
    let mut out = Vec::new();
    let judged = tokio::time::timeout(Duration::from_secs(60), demo.run(cancel, &mut out))
        .await
        .expect("the demo stops within a minute of Ctrl-C")
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(judged >= 1, "{text}");
    assert!(text.contains("epoch 0: "), "{text}");
    assert!(text.contains("valwatch report --data-dir"), "{text}");
    // A second demo in the same directory is refused before it starts.
    let again = Demo::start(DemoOptions {
        epochs: Some(1),
        listen: None,
        data_dir: Some(dir.path().to_path_buf()),
        slot_ms: 250,
    })
    .await;
    assert!(again.is_err());
    demo.shutdown().await;
}
