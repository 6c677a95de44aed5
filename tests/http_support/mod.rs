//! Shared by the `http_*` tests: a sample epoch that exercises every
//! metric, and a real server on 127.0.0.1:0.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use valwatch::analysis::{
    AttestationStatus, AttestationVerdict, BalanceRecord, ProposalStatus, ProposalVerdict,
    SlashingKind, SlashingRecord, SyncVerdict,
};
use valwatch::beacon::{NodeHealth, NodeReport};
use valwatch::chain::{Epoch, Gwei, ManualClock, Slot, ValidatorIndex, ValidatorStatus};
use valwatch::http::{serve, HttpState, Server};
use valwatch::metrics::Metrics;
use valwatch::status::{GroupSpec, Policy, StatusBoard};
use valwatch::store::{CrossCheckRecord, EpochRecord};

/// Twelve-second slots, 32 per epoch: mainnet timing.
pub const EPOCH: Duration = Duration::from_secs(384);

pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

pub fn att(v: u64, epoch: u64, status: AttestationStatus) -> AttestationVerdict {
    let included = status == AttestationStatus::Included;
    AttestationVerdict {
        validator_index: ValidatorIndex(v),
        epoch: Epoch(epoch),
        status,
        duty_slot: Some(Slot(epoch * 32 + 3)),
        inclusion_slot: included.then_some(Slot(epoch * 32 + 5)),
        inclusion_delay: included.then_some(2),
        late: included.then_some(true),
        source_correct: included.then_some(true),
        target_correct: included.then_some(false),
        head_correct: included.then_some(false),
        reason: None,
    }
}

pub fn final_epoch(epoch: u64, atts: &[(u64, AttestationStatus)]) -> EpochRecord {
    EpochRecord {
        epoch: Epoch(epoch),
        is_final: true,
        attestations: atts.iter().map(|(v, s)| att(*v, epoch, *s)).collect(),
        ..EpochRecord::default()
    }
}

/// One final epoch with every kind of verdict, for validators 1..=4.
pub fn sample_epoch(epoch: u64) -> EpochRecord {
    use AttestationStatus::*;
    let mut r = final_epoch(
        epoch,
        &[(1, Included), (2, Missed), (3, Unknown), (4, Included)],
    );
    let s = epoch * 32;
    for (i, status) in [
        ProposalStatus::Proposed,
        ProposalStatus::Missed,
        ProposalStatus::Orphaned,
        ProposalStatus::Unknown,
    ]
    .into_iter()
    .enumerate()
    {
        r.proposals.push(ProposalVerdict {
            slot: Slot(s + i as u64),
            validator_index: Some(ValidatorIndex(1 + i as u64)),
            status,
            block_root: None,
            reason: None,
        });
    }
    r.sync.push(SyncVerdict {
        validator_index: ValidatorIndex(1),
        epoch: Epoch(epoch),
        participated: 30,
        missed: 2,
    });
    for v in 1..=4u64 {
        r.balances.push(BalanceRecord {
            validator_index: ValidatorIndex(v),
            epoch: Epoch(epoch),
            balance: Gwei(32_000_000_000 + v),
            effective_balance: Gwei(32_000_000_000),
            status: if v == 4 {
                ValidatorStatus::ExitedSlashed
            } else {
                ValidatorStatus::ActiveOngoing
            },
            slashed: v == 4,
            balance_change: Some(-(v as i64)),
        });
    }
    r.slashings.push(SlashingRecord {
        validator_index: ValidatorIndex(4),
        epoch: Epoch(epoch),
        included_in_slot: Slot(s + 7),
        kind: SlashingKind::Attester,
    });
    r.cross_checks.push(CrossCheckRecord {
        epoch: Epoch(epoch),
        slot: Slot(s + 31),
        node: "local".into(),
        node_root: None,
        expected_root: None,
        agrees: true,
        error: None,
    });
    r
}

pub fn node(name: &str, health: NodeHealth) -> NodeReport {
    NodeReport {
        name: name.into(),
        url: format!("http://{name}.invalid:5052/"),
        health,
        head_slot: Some(1000),
        last_error: None,
    }
}

pub fn groups(spec: &[(&str, &[u64])]) -> Vec<GroupSpec> {
    spec.iter()
        .map(|(n, vs)| GroupSpec {
            name: n.to_string(),
            validators: vs.iter().map(|v| ValidatorIndex(*v)).collect(),
        })
        .collect()
}

pub struct App {
    pub board: Arc<StatusBoard>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<ManualClock>,
    pub server: Server,
    pub cancel: CancellationToken,
    pub http: reqwest::Client,
}

impl App {
    /// A real server on 127.0.0.1:0 over a fresh board (started at t0, the
    /// clock at t0 + 1 min).
    pub async fn start(groups: Vec<GroupSpec>, expected_offline: &[u64]) -> App {
        let board = Arc::new(StatusBoard::new(
            t0(),
            groups,
            expected_offline.iter().map(|v| ValidatorIndex(*v)),
            Policy::for_epoch_duration(EPOCH),
        ));
        let metrics = Arc::new(Metrics::new(100).unwrap());
        let clock = Arc::new(ManualClock::new(t0() + Duration::from_secs(60)));
        let cancel = CancellationToken::new();
        let state = HttpState {
            board: board.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            history: None,
        };
        let server = serve("127.0.0.1:0".parse().unwrap(), state, cancel.clone())
            .await
            .unwrap();
        App {
            board,
            metrics,
            clock,
            server,
            cancel,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.server.local_addr, path)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.text().await.unwrap())
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let (code, body) = self.get(path).await;
        (
            code,
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
        )
    }

    /// Marks the store as open and one healthy node, as the monitor does.
    pub fn healthy(&self) {
        self.board.set_store_ok(true);
        self.board
            .set_nodes(vec![node("local", NodeHealth::Healthy)]);
    }

    pub fn now(&self) -> SystemTime {
        use valwatch::chain::Clock;
        self.clock.now()
    }
}
