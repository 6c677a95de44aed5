//! The monitor against simulated nodes: what the recordings cannot show.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use valwatch::sim::{Fault, FaultKind, NodeOptions, Scenario, SimNode};
use valwatch::store::ReportQuery;

const GENESIS: u64 = 1_700_000_000;

async fn run(nodes: &[&SimNode], until: u64) -> (tempfile::TempDir, valwatch::store::Store) {
    common::run_in_process(nodes.iter().map(|n| n.base_url()).collect(), until).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_serves_other_roots_is_recorded_as_disagreeing() {
    let scenario = Scenario {
        seed: 9,
        genesis_time: GENESIS,
        ..Scenario::default()
    };
    let honest = SimNode::start(scenario.clone(), NodeOptions::pregenerated(8))
        .await
        .unwrap();
    let mut opts = NodeOptions::pregenerated(8);
    // The liar answers another root for slot 23, the last slot of epoch 2
    // (the slot the cross-check of epoch 2 compares: no slot is missed in
    // this scenario).
    opts.faults = vec![Fault {
        kind: FaultKind::WrongRoot { slot: 23 },
        from_slot: None,
        until_slot: None,
        path_contains: None,
    }];
    let liar = SimNode::start(scenario, opts).await.unwrap();
    let (_dir, store) = run(&[&honest, &liar], 4).await;
    let checks = store.cross_checks(&ReportQuery::default()).await.unwrap();
    let liar_name = format!(
        "127.0.0.1:{}",
        liar.base_url()
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('/')
    );
    assert!(checks
        .iter()
        .any(|c| c.node == liar_name && c.slot.0 == 23 && !c.agrees));
    for epoch in 0..=4u64 {
        let of_epoch: Vec<_> = checks.iter().filter(|c| c.epoch.0 == epoch).collect();
        assert_eq!(
            of_epoch.len(),
            2,
            "epoch {epoch}: one check per node: {of_epoch:?}"
        );
        for c in of_epoch {
            let lied = c.node == liar_name && c.slot.0 == 23;
            assert_eq!(c.agrees, !lied, "epoch {epoch}: {c:?}");
        }
    }
}
