//! All SQL lives here: PostgreSQL (production, what Grafana reads) and
//! SQLite (the embedded default), behind one interface with one behaviour.
//!
//! Owns: the schema (`migrations/postgres`, `migrations/sqlite`), idempotent
//! bulk writes (one statement per table per epoch, one transaction), the
//! processed-epoch cursor, report queries and retention.
//! Must not: decide verdicts or talk to the network.

use serde::Serialize;

use crate::analysis::{
    AttestationVerdict, BalanceRecord, ProposalVerdict, SlashingRecord, SyncVerdict,
};
use crate::chain::{Epoch, Root, Slot, ValidatorIndex};

/// One node's answer in the cross-check of one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CrossCheckRecord {
    pub epoch: Epoch,
    /// The slot whose canonical block root was compared.
    pub slot: Slot,
    pub node: String,
    /// What the node reported (None: no block at that slot on its chain).
    pub node_root: Option<Root>,
    /// What valwatch's canonical chain has there.
    pub expected_root: Option<Root>,
    pub agrees: bool,
    /// Why the node could not be compared (error text), if so.
    pub error: Option<String>,
}

/// Everything judged for one epoch, written in one transaction.
#[derive(Clone, Debug, Default)]
pub struct EpochRecord {
    pub epoch: Epoch,
    /// Final: the inclusion window has closed; the cursor advances past it.
    pub is_final: bool,
    pub attestations: Vec<AttestationVerdict>,
    pub proposals: Vec<ProposalVerdict>,
    pub sync: Vec<SyncVerdict>,
    pub balances: Vec<BalanceRecord>,
    pub slashings: Vec<SlashingRecord>,
    pub cross_checks: Vec<CrossCheckRecord>,
}

/// What `valwatch report` asks for. Bounds are inclusive.
#[derive(Clone, Debug, Default)]
pub struct ReportQuery {
    pub validators: Option<Vec<ValidatorIndex>>,
    pub from_epoch: Option<Epoch>,
    pub to_epoch: Option<Epoch>,
}

/// The stored history, as `valwatch report --format json` prints it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub attestations: Vec<AttestationVerdict>,
    pub proposals: Vec<ProposalVerdict>,
    pub sync: Vec<SyncVerdict>,
    pub balances: Vec<BalanceRecord>,
}
