//! PURE state of what operators see: the status board behind `/status`,
//! `/readyz` and the HTML page, and the rules that turn it into
//! `ok | degraded | failing` and a readiness verdict.
//!
//! Owns: the latest known view of every watched validator and node, updated
//! by the monitor through small setters, and the derived states with the
//! reasons for them. Must not: do IO, read the clock (`now` is an argument),
//! or create metrics. The `RwLock` in `StatusBoard` only guards the snapshot;
//! every decision is a plain function of a `Snapshot`, a `Policy` and `now`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::analysis::{
    AttestationStatus, AttestationVerdict, ProposalStatus, ProposalVerdict, SyncVerdict,
};
use crate::beacon::{NodeHealth, NodeReport};
use crate::chain::{Epoch, Gwei, Slot, ValidatorIndex, ValidatorStatus};
use crate::health::{EarlyInputs, Health, HealthRules, ValidatorHealth};
use crate::store::EpochRecord;

/// Consecutive missed final attestations that make a validator failing.
/// One miss happens to healthy validators (a late block, a short reorg, an
/// aggregator that dropped the vote); two epochs in a row is an outage in
/// practice, and waiting for a third costs another 6.4 minutes on mainnet.
pub const DEFAULT_FAIL_AFTER_MISSED: u32 = 2;

/// Epochs without a processed final epoch before the monitor counts as
/// stalled. The final verdict of epoch N is due about two epochs after N
/// starts (the EIP-7045 window spans N and N+1, plus two slots of grace), so
/// three epochs without one means the loop is no longer making progress.
pub const DEFAULT_STALL_EPOCHS: u32 = 3;

/// A provisional `pending` vote only counts as suspicious when its duty
/// slot was this many slots behind the head when it was judged: a healthy
/// vote lands in the next block, and four slots absorb a few empty slots or
/// late blocks without crying wolf after every provisional pass.
pub const PENDING_GRACE_SLOTS: u64 = 4;

/// How many validator indices a reason lists before it only counts them:
/// enough to act on, bounded when a whole cluster goes down.
pub const REASON_SAMPLE: usize = 10;

/// The thresholds the derived states use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The one rule of up and down, shared with the alert rules: the
    /// page and the pager use the same thresholds (`[alerts]`).
    pub rules: HealthRules,
    /// Consecutive missed final attestations that make a validator failing
    /// (`rules.down_after_missed`, shown in reasons).
    pub fail_after_missed: u32,
    /// No final epoch processed for longer than this: stalled (failing) and
    /// not ready.
    pub stall_limit: Duration,
    /// See `PENDING_GRACE_SLOTS`.
    pub pending_grace_slots: u64,
}

impl Policy {
    /// The defaults for a chain whose epoch lasts `epoch_duration`.
    pub fn for_epoch_duration(epoch_duration: Duration) -> Policy {
        Policy {
            rules: HealthRules::default(),
            fail_after_missed: DEFAULT_FAIL_AFTER_MISSED,
            stall_limit: epoch_duration * DEFAULT_STALL_EPOCHS,
            pending_grace_slots: PENDING_GRACE_SLOTS,
        }
    }

    /// The same policy with the alert rules' thresholds of up and down.
    pub fn with_rules(mut self, rules: HealthRules) -> Policy {
        self.rules = rules;
        self.fail_after_missed = rules.down_after_missed.max(1);
        self
    }
}

/// The overall verdict; ordered so that the worst is the maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Ok,
    Degraded,
    Failing,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Degraded => "degraded",
            State::Failing => "failing",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named set of validators as the board knows it (indices resolved).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupSpec {
    pub name: String,
    pub validators: Vec<ValidatorIndex>,
}

/// The newest attestation verdict of one validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LatestAttestation {
    pub epoch: Epoch,
    pub status: AttestationStatus,
    /// False: from a provisional pass, the window was still open.
    #[serde(rename = "final")]
    pub is_final: bool,
    pub duty_slot: Option<Slot>,
    pub inclusion_delay: Option<u64>,
    pub late: Option<bool>,
    pub source_correct: Option<bool>,
    pub target_correct: Option<bool>,
    pub head_correct: Option<bool>,
    /// The head the board knew when this verdict arrived.
    #[serde(skip)]
    pub observed_head: Option<Slot>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LatestProposal {
    pub slot: Slot,
    pub status: ProposalStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LatestSync {
    pub epoch: Epoch,
    pub participated: u32,
    pub missed: u32,
}

/// Everything the board knows of one watched validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValidatorState {
    pub index: ValidatorIndex,
    /// The first configured group that lists it.
    pub group: String,
    /// Listed as expected offline: shown, never failing or degrading.
    pub expected_offline: bool,
    pub attestation: Option<LatestAttestation>,
    /// The newest FINAL verdict: while `attestation` is a provisional
    /// `pending` of an open epoch, this is what decided the state.
    pub last_final_attestation: Option<LatestAttestation>,
    /// Consecutive final `missed` verdicts; `included` and `inactive` reset
    /// it, `unknown` leaves it as it was.
    pub consecutive_missed: u32,
    /// The newest epoch counted into `consecutive_missed` (a replayed
    /// epoch is not counted twice).
    #[serde(skip)]
    pub counted_through: Option<Epoch>,
    pub balance_epoch: Option<Epoch>,
    #[serde(rename = "balance_gwei")]
    pub balance: Option<Gwei>,
    #[serde(rename = "effective_balance_gwei")]
    pub effective_balance: Option<Gwei>,
    pub status: Option<ValidatorStatus>,
    pub slashed: bool,
    pub last_proposal: Option<LatestProposal>,
    pub last_sync: Option<LatestSync>,
    pub next_proposal_slot: Option<Slot>,
    pub in_sync_committee: bool,
    /// `ok`, `late`, `recovering` or `down` by the one rule (`health`).
    pub health: Health,
    /// What put it there, in words.
    pub evidence: String,
    #[serde(skip)]
    pub track: ValidatorHealth,
    /// Free-form labels from the labels file (issue 13); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

impl ValidatorState {
    fn new(index: ValidatorIndex, group: String, expected_offline: bool) -> Self {
        ValidatorState {
            index,
            group,
            expected_offline,
            attestation: None,
            last_final_attestation: None,
            consecutive_missed: 0,
            counted_through: None,
            balance_epoch: None,
            balance: None,
            effective_balance: None,
            status: None,
            slashed: false,
            last_proposal: None,
            last_sync: None,
            next_proposal_slot: None,
            in_sync_committee: false,
            health: Health::Ok,
            evidence: String::new(),
            track: ValidatorHealth::default(),
            labels: Vec::new(),
        }
    }

    fn apply_attestation(
        &mut self,
        a: &AttestationVerdict,
        is_final: bool,
        head: Option<Slot>,
        early: &EarlyInputs<'_>,
        rules: &HealthRules,
    ) {
        self.track.observe_attestation(a, is_final, early, rules);
        self.health = self.track.health();
        self.evidence = self.track.evidence(rules);
        // A provisional look at a newer epoch may arrive before the final
        // verdict of an older one: keep the newest epoch, and for the same
        // epoch prefer final over provisional.
        let newer = match &self.attestation {
            None => true,
            Some(cur) => {
                a.epoch > cur.epoch || (a.epoch == cur.epoch && (is_final || !cur.is_final))
            }
        };
        let latest = LatestAttestation {
            epoch: a.epoch,
            status: a.status,
            is_final,
            duty_slot: a.duty_slot,
            inclusion_delay: a.inclusion_delay,
            late: a.late,
            source_correct: a.source_correct,
            target_correct: a.target_correct,
            head_correct: a.head_correct,
            observed_head: head,
        };
        if is_final
            && self
                .last_final_attestation
                .as_ref()
                .is_none_or(|f| a.epoch >= f.epoch)
        {
            self.last_final_attestation = Some(latest.clone());
        }
        if newer {
            self.attestation = Some(latest);
        }
        if is_final && self.counted_through.is_none_or(|e| a.epoch > e) {
            match a.status {
                AttestationStatus::Missed => {
                    self.consecutive_missed = self.consecutive_missed.saturating_add(1)
                }
                AttestationStatus::Included | AttestationStatus::Inactive => {
                    self.consecutive_missed = 0
                }
                // Not knowing is no evidence either way.
                AttestationStatus::Pending | AttestationStatus::Unknown => {}
            }
            self.counted_through = Some(a.epoch);
        }
    }

    fn apply_proposal(&mut self, p: &ProposalVerdict) {
        if self
            .last_proposal
            .as_ref()
            .is_none_or(|cur| p.slot >= cur.slot)
        {
            self.last_proposal = Some(LatestProposal {
                slot: p.slot,
                status: p.status,
            });
        }
    }

    fn apply_sync(&mut self, s: &SyncVerdict) {
        if self
            .last_sync
            .as_ref()
            .is_none_or(|cur| s.epoch >= cur.epoch)
        {
            self.last_sync = Some(LatestSync {
                epoch: s.epoch,
                participated: s.participated,
                missed: s.missed,
            });
        }
    }

    /// The state of this validator alone: its `health` by the one rule
    /// the alert rules use too (down is failing; late or recovering is
    /// degraded), a slashing is failing, an unknown verdict degraded.
    pub fn state(&self, _policy: &Policy) -> State {
        if self.expected_offline {
            return State::Ok;
        }
        if self.slashed || self.health == Health::Down {
            return State::Failing;
        }
        let unknown = self
            .attestation
            .as_ref()
            .is_some_and(|a| a.status == AttestationStatus::Unknown);
        if matches!(self.health, Health::Late | Health::Recovering) || unknown {
            return State::Degraded;
        }
        State::Ok
    }
}

/// When an epoch was processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessedEpoch {
    pub epoch: Epoch,
    #[serde(serialize_with = "ser_time")]
    pub at: SystemTime,
}

/// Duties ahead, as the monitor last fetched them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpcomingDuties {
    pub proposals: Vec<(ValidatorIndex, Slot)>,
    /// Watched members of the current sync committee.
    pub sync_committee: Vec<ValidatorIndex>,
}

/// Everything the board holds. Plain data: cloneable, comparable.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub started_at: SystemTime,
    pub groups: Vec<GroupSpec>,
    pub expected_offline: BTreeSet<ValidatorIndex>,
    pub validators: BTreeMap<ValidatorIndex, ValidatorState>,
    /// `None` until the monitor reported node health once.
    pub nodes: Option<Vec<NodeReport>>,
    /// Nodes whose canonical root differed in the latest final cross-check.
    pub disagreeing_nodes: BTreeSet<String>,
    pub last_final: Option<ProcessedEpoch>,
    pub last_provisional: Option<ProcessedEpoch>,
    pub head_slot: Option<Slot>,
    pub wall_slot: Option<Slot>,
    /// `None` until the store was opened (or written) once.
    pub store_ok: Option<bool>,
    /// The key sources (`[[sources]]`) and whether they answer.
    pub sources: Vec<crate::sources::SourceStatus>,
    /// The network's baseline of the newest final epoch (issue 14).
    pub network: Option<crate::analysis::network::NetworkRecord>,
}

impl Snapshot {
    pub fn new(
        started_at: SystemTime,
        groups: Vec<GroupSpec>,
        expected_offline: impl IntoIterator<Item = ValidatorIndex>,
    ) -> Snapshot {
        let mut s = Snapshot {
            started_at,
            groups: Vec::new(),
            expected_offline: expected_offline.into_iter().collect(),
            validators: BTreeMap::new(),
            nodes: None,
            disagreeing_nodes: BTreeSet::new(),
            last_final: None,
            last_provisional: None,
            head_slot: None,
            wall_slot: None,
            store_ok: None,
            sources: Vec::new(),
            network: None,
        };
        s.set_groups(groups);
        s
    }

    /// Replaces the groups (a validators file changed); validators still
    /// watched keep what is known of them.
    pub fn set_groups(&mut self, groups: Vec<GroupSpec>) {
        let mut old = std::mem::take(&mut self.validators);
        for g in &groups {
            for v in &g.validators {
                if self.validators.contains_key(v) {
                    continue;
                }
                let offline = self.expected_offline.contains(v);
                let mut st = old
                    .remove(v)
                    .unwrap_or_else(|| ValidatorState::new(*v, g.name.clone(), offline));
                st.group = g.name.clone();
                st.expected_offline = offline;
                self.validators.insert(*v, st);
            }
        }
        self.groups = groups;
    }

    /// The group a validator is shown under.
    pub fn group_of(&self, v: ValidatorIndex) -> Option<&str> {
        self.validators.get(&v).map(|s| s.group.as_str())
    }

    pub fn apply_epoch(&mut self, rec: &EpochRecord, now: SystemTime) {
        self.apply_epoch_with(rec, &EarlyInputs::default(), &HealthRules::default(), now)
    }

    /// `apply_epoch` with what the pass knew of the chain (early evidence)
    /// and the thresholds of the one rule of up and down.
    pub fn apply_epoch_with(
        &mut self,
        rec: &EpochRecord,
        early: &EarlyInputs<'_>,
        rules: &HealthRules,
        now: SystemTime,
    ) {
        let head = self.head_slot;
        for a in &rec.attestations {
            if let Some(v) = self.validators.get_mut(&a.validator_index) {
                v.apply_attestation(a, rec.is_final, head, early, rules);
            }
        }
        for p in &rec.proposals {
            let Some(index) = p.validator_index else {
                continue;
            };
            if p.status == ProposalStatus::Missed {
                if let Some(v) = self.validators.get_mut(&index) {
                    v.track.observe_missed_proposal(index, p.slot, rec.epoch);
                    v.health = v.track.health();
                    v.evidence = v.track.evidence(rules);
                }
            }
        }
        for p in &rec.proposals {
            let Some(index) = p.validator_index else {
                continue;
            };
            if let Some(v) = self.validators.get_mut(&index) {
                v.apply_proposal(p);
            }
        }
        for s in &rec.sync {
            if let Some(v) = self.validators.get_mut(&s.validator_index) {
                v.apply_sync(s);
            }
        }
        for b in &rec.balances {
            if let Some(v) = self.validators.get_mut(&b.validator_index) {
                if v.balance_epoch.is_none_or(|e| b.epoch >= e) {
                    v.balance_epoch = Some(b.epoch);
                    v.balance = Some(b.balance);
                    v.effective_balance = Some(b.effective_balance);
                    v.status = Some(b.status);
                }
                // Slashing is permanent: an older record cannot undo it.
                v.slashed |= b.slashed;
            }
        }
        for s in &rec.slashings {
            if let Some(v) = self.validators.get_mut(&s.validator_index) {
                v.slashed = true;
            }
        }
        if rec.is_final && !rec.cross_checks.is_empty() {
            // A node that could not answer is unhealthy, not disagreeing;
            // its health is reported through `set_nodes`.
            self.disagreeing_nodes = rec
                .cross_checks
                .iter()
                .filter(|c| !c.agrees && c.error.is_none())
                .map(|c| c.node.clone())
                .collect();
        }
        let slot = if rec.is_final {
            &mut self.last_final
        } else {
            &mut self.last_provisional
        };
        if slot.is_none_or(|p| rec.epoch >= p.epoch) {
            *slot = Some(ProcessedEpoch {
                epoch: rec.epoch,
                at: now,
            });
        } else if let Some(p) = slot.as_mut() {
            // Reprocessing an older epoch is still progress of the loop.
            p.at = now;
        }
    }

    pub fn set_upcoming_duties(&mut self, duties: &UpcomingDuties) {
        let mut next: BTreeMap<ValidatorIndex, Slot> = BTreeMap::new();
        for (v, slot) in &duties.proposals {
            let e = next.entry(*v).or_insert(*slot);
            *e = (*e).min(*slot);
        }
        let sync: BTreeSet<_> = duties.sync_committee.iter().copied().collect();
        for (i, v) in self.validators.iter_mut() {
            v.next_proposal_slot = next.get(i).copied();
            v.in_sync_committee = sync.contains(i);
        }
    }

    /// Time since the last final epoch was processed (or since start).
    fn since_progress(&self, now: SystemTime) -> Duration {
        let from = self.last_final.map_or(self.started_at, |p| p.at);
        now.duration_since(from).unwrap_or(Duration::ZERO)
    }
}

/// Whether the pool can use a node (mirrors the pool's ranking: a lagging
/// node still serves history).
pub fn node_usable(h: &NodeHealth) -> bool {
    matches!(h, NodeHealth::Healthy | NodeHealth::Lagging)
}

/// Why a state is not `ok`, or why valwatch is not ready.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// Watched validators down by the one rule of up and down (final
    /// misses in a row, or early evidence), with the evidence of one.
    Down {
        group: String,
        count: usize,
        sample: Vec<ValidatorIndex>,
        evidence: String,
    },
    /// Not down, but the newest final vote was missed (one more miss in a
    /// row and it is down).
    Late {
        group: String,
        count: usize,
        sample: Vec<ValidatorIndex>,
    },
    /// Attesting again after an outage, not yet confirmed by a final
    /// verdict.
    Recovering {
        group: String,
        count: usize,
        sample: Vec<ValidatorIndex>,
    },
    Slashed {
        group: String,
        count: usize,
        sample: Vec<ValidatorIndex>,
    },
    UnknownVerdicts {
        group: String,
        count: usize,
        sample: Vec<ValidatorIndex>,
    },
    /// No beacon node is usable: valwatch cannot see the chain.
    Blind,
    /// The monitor has not reported node health yet.
    NodesUnknown,
    NodeUnhealthy {
        node: String,
        health: NodeHealth,
    },
    NodeDisagrees {
        node: String,
    },
    /// No final epoch processed for longer than the stall limit.
    Stalled {
        seconds_since_progress: u64,
        last_final_epoch: Option<Epoch>,
    },
    StoreFailing,
    StoreUnchecked,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(sample: &[ValidatorIndex], count: usize) -> String {
            let mut s = sample
                .iter()
                .map(|v| v.0.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if count > sample.len() {
                s.push_str(&format!(" and {} more", count - sample.len()));
            }
            s
        }
        match self {
            Reason::Down {
                group,
                count,
                sample,
                evidence,
            } => write!(
                f,
                "group {group}: {count} validator(s) down: {} ({evidence})",
                list(sample, *count)
            ),
            Reason::Late {
                group,
                count,
                sample,
            } => write!(
                f,
                "group {group}: {count} validator(s) missed their latest vote: {}",
                list(sample, *count)
            ),
            Reason::Recovering {
                group,
                count,
                sample,
            } => write!(
                f,
                "group {group}: {count} validator(s) attesting again after an outage: {}",
                list(sample, *count)
            ),
            Reason::Slashed {
                group,
                count,
                sample,
            } => write!(
                f,
                "group {group}: {count} validator(s) slashed: {}",
                list(sample, *count)
            ),
            Reason::UnknownVerdicts {
                group,
                count,
                sample,
            } => write!(
                f,
                "group {group}: {count} verdict(s) unknown (data not served): {}",
                list(sample, *count)
            ),
            Reason::Blind => f.write_str("no usable beacon node: valwatch cannot see the chain"),
            Reason::NodesUnknown => f.write_str("beacon node health not known yet"),
            Reason::NodeUnhealthy { node, health } => {
                write!(f, "beacon node {node} is {}", health_str(health))
            }
            Reason::NodeDisagrees { node } => {
                write!(f, "beacon node {node} disagrees about the canonical chain")
            }
            Reason::Stalled {
                seconds_since_progress,
                last_final_epoch,
            } => match last_final_epoch {
                Some(e) => write!(
                    f,
                    "no epoch processed for {seconds_since_progress} s (last: epoch {e})"
                ),
                None => write!(
                    f,
                    "no epoch processed in the {seconds_since_progress} s since start"
                ),
            },
            Reason::StoreFailing => f.write_str("the store failed its last write"),
            Reason::StoreUnchecked => f.write_str("the store has not been opened yet"),
        }
    }
}

pub fn health_str(h: &NodeHealth) -> &'static str {
    match h {
        NodeHealth::Unknown => "unknown",
        NodeHealth::Healthy => "healthy",
        NodeHealth::Syncing => "syncing",
        NodeHealth::Lagging => "lagging",
        NodeHealth::Unreachable => "unreachable",
        NodeHealth::WrongNetwork => "wrong_network",
    }
}

/// A reason with the state it causes and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub state: State,
    #[serde(flatten)]
    pub reason: Reason,
    pub message: String,
}

impl Finding {
    pub fn new(state: State, reason: Reason) -> Finding {
        let message = reason.to_string();
        Finding {
            state,
            reason,
            message,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupAssessment {
    pub name: String,
    pub state: State,
    /// Group findings and the global ones that affect every group.
    pub reasons: Vec<Finding>,
    pub validators: usize,
    pub expected_offline: usize,
    pub failing: usize,
    pub degraded: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub reasons: Vec<Finding>,
}

/// Everything derived from a snapshot at one instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Assessment {
    pub state: State,
    pub reasons: Vec<Finding>,
    pub groups: Vec<GroupAssessment>,
    pub readiness: Readiness,
}

impl Assessment {
    pub fn group(&self, name: &str) -> Option<&GroupAssessment> {
        self.groups.iter().find(|g| g.name == name)
    }
}

fn worst(findings: &[Finding]) -> State {
    findings.iter().map(|f| f.state).max().unwrap_or(State::Ok)
}

fn sampled(mut v: Vec<ValidatorIndex>) -> (usize, Vec<ValidatorIndex>) {
    let count = v.len();
    v.truncate(REASON_SAMPLE);
    (count, v)
}

/// Findings that concern the whole monitor, not one group.
fn global_findings(snap: &Snapshot, policy: &Policy, now: SystemTime) -> Vec<Finding> {
    let mut out = Vec::new();
    match &snap.nodes {
        None => out.push(Finding::new(State::Degraded, Reason::NodesUnknown)),
        Some(nodes) => {
            if !nodes.iter().any(|n| node_usable(&n.health)) {
                out.push(Finding::new(State::Failing, Reason::Blind));
            }
            for n in nodes.iter().filter(|n| n.health != NodeHealth::Healthy) {
                out.push(Finding::new(
                    State::Degraded,
                    Reason::NodeUnhealthy {
                        node: n.name.clone(),
                        health: n.health.clone(),
                    },
                ));
            }
        }
    }
    for node in &snap.disagreeing_nodes {
        out.push(Finding::new(
            State::Degraded,
            Reason::NodeDisagrees { node: node.clone() },
        ));
    }
    let since = snap.since_progress(now);
    if since > policy.stall_limit {
        out.push(Finding::new(
            State::Failing,
            Reason::Stalled {
                seconds_since_progress: since.as_secs(),
                last_final_epoch: snap.last_final.map(|p| p.epoch),
            },
        ));
    }
    if snap.store_ok == Some(false) {
        out.push(Finding::new(State::Degraded, Reason::StoreFailing));
    }
    out
}

/// Findings about the validators shown under one group.
fn group_findings(snap: &Snapshot, group: &str, policy: &Policy) -> (Vec<Finding>, usize, usize) {
    let (mut down, mut late, mut recovering, mut slashed, mut unknown) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut evidence = None;
    let (mut failing, mut degraded) = (0, 0);
    for v in snap
        .validators
        .values()
        .filter(|v| v.group == group && !v.expected_offline)
    {
        match v.state(policy) {
            State::Failing => failing += 1,
            State::Degraded => degraded += 1,
            State::Ok => {}
        }
        if v.slashed {
            slashed.push(v.index);
        }
        match v.health {
            Health::Down => {
                if evidence.is_none() {
                    evidence = Some(format!("validator {}: {}", v.index.0, v.evidence));
                }
                down.push(v.index);
            }
            Health::Late => late.push(v.index),
            Health::Recovering => recovering.push(v.index),
            Health::Ok => {}
        }
        if v.attestation
            .as_ref()
            .is_some_and(|a| a.status == AttestationStatus::Unknown)
        {
            unknown.push(v.index);
        }
    }
    let g = group.to_string();
    let mut out = Vec::new();
    let mut push = |state: State,
                    list: Vec<ValidatorIndex>,
                    make: &dyn Fn(usize, Vec<ValidatorIndex>) -> Reason| {
        if !list.is_empty() {
            let (count, sample) = sampled(list);
            out.push(Finding::new(state, make(count, sample)));
        }
    };
    push(State::Failing, down, &|count, sample| Reason::Down {
        group: g.clone(),
        count,
        sample,
        evidence: evidence.clone().unwrap_or_default(),
    });
    push(State::Failing, slashed, &|count, sample| Reason::Slashed {
        group: g.clone(),
        count,
        sample,
    });
    push(State::Degraded, recovering, &|count, sample| {
        Reason::Recovering {
            group: g.clone(),
            count,
            sample,
        }
    });
    push(State::Degraded, late, &|count, sample| Reason::Late {
        group: g.clone(),
        count,
        sample,
    });
    push(State::Degraded, unknown, &|count, sample| {
        Reason::UnknownVerdicts {
            group: g.clone(),
            count,
            sample,
        }
    });
    (out, failing, degraded)
}

/// Ready: the store works, at least one node is usable, and an epoch was
/// processed recently (or the process started recently).
pub fn readiness(snap: &Snapshot, policy: &Policy, now: SystemTime) -> Readiness {
    let mut reasons = Vec::new();
    match snap.store_ok {
        None => reasons.push(Finding::new(State::Failing, Reason::StoreUnchecked)),
        Some(false) => reasons.push(Finding::new(State::Failing, Reason::StoreFailing)),
        Some(true) => {}
    }
    match &snap.nodes {
        None => reasons.push(Finding::new(State::Failing, Reason::NodesUnknown)),
        Some(nodes) if !nodes.iter().any(|n| node_usable(&n.health)) => {
            reasons.push(Finding::new(State::Failing, Reason::Blind))
        }
        Some(_) => {}
    }
    let since = snap.since_progress(now);
    if since > policy.stall_limit {
        reasons.push(Finding::new(
            State::Failing,
            Reason::Stalled {
                seconds_since_progress: since.as_secs(),
                last_final_epoch: snap.last_final.map(|p| p.epoch),
            },
        ));
    }
    Readiness {
        ready: reasons.is_empty(),
        reasons,
    }
}

/// PURE: the overall, per-group and readiness verdicts at `now`.
pub fn assess(snap: &Snapshot, policy: &Policy, now: SystemTime) -> Assessment {
    let global = global_findings(snap, policy, now);
    let mut reasons = global.clone();
    let mut groups = Vec::new();
    for g in &snap.groups {
        let (own, failing, degraded) = group_findings(snap, &g.name, policy);
        reasons.extend(own.iter().cloned());
        let mut all = own;
        all.extend(global.iter().cloned());
        let shown: Vec<_> = snap
            .validators
            .values()
            .filter(|v| v.group == g.name)
            .collect();
        groups.push(GroupAssessment {
            name: g.name.clone(),
            state: worst(&all),
            reasons: all,
            validators: shown.len(),
            expected_offline: shown.iter().filter(|v| v.expected_offline).count(),
            failing,
            degraded,
        });
    }
    Assessment {
        state: worst(&reasons),
        reasons,
        groups,
        readiness: readiness(snap, policy, now),
    }
}

/// The shared, lock-guarded board. Wrap it in an `Arc`; readers take a
/// short read lock, the monitor a short write lock per update.
pub struct StatusBoard {
    inner: RwLock<Snapshot>,
    policy: Policy,
}

impl StatusBoard {
    pub fn new(
        started_at: SystemTime,
        groups: Vec<GroupSpec>,
        expected_offline: impl IntoIterator<Item = ValidatorIndex>,
        policy: Policy,
    ) -> StatusBoard {
        StatusBoard {
            inner: RwLock::new(Snapshot::new(started_at, groups, expected_offline)),
            policy,
        }
    }

    // A panic while holding the lock leaves plain data behind that is still
    // worth showing, so a poisoned lock is used as it is.
    fn read_lock(&self) -> RwLockReadGuard<'_, Snapshot> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, Snapshot> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Runs `f` on the current snapshot under the read lock (no copy).
    pub fn read<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> R {
        f(&self.read_lock())
    }

    pub fn snapshot(&self) -> Snapshot {
        self.read_lock().clone()
    }

    pub fn assess(&self, now: SystemTime) -> Assessment {
        assess(&self.read_lock(), &self.policy, now)
    }

    pub fn group_of(&self, v: ValidatorIndex) -> Option<String> {
        self.read_lock().group_of(v).map(str::to_string)
    }

    pub fn set_groups(&self, groups: Vec<GroupSpec>) {
        self.write_lock().set_groups(groups);
    }

    pub fn apply_epoch(&self, rec: &EpochRecord, now: SystemTime) {
        self.apply_epoch_early(rec, &EarlyInputs::default(), now);
    }

    /// With what the pass knew of the chain, for early evidence.
    pub fn apply_epoch_early(&self, rec: &EpochRecord, early: &EarlyInputs<'_>, now: SystemTime) {
        let rules = self.policy.rules;
        self.write_lock().apply_epoch_with(rec, early, &rules, now);
    }

    /// Marks validators as down since `epoch` (an incident open before a
    /// restart), as the alert rules do, so that the page agrees.
    pub fn assume_down(&self, validators: &[u64], epoch: Option<u64>) {
        let rules = self.policy.rules;
        let mut s = self.write_lock();
        for v in validators {
            if let Some(st) = s.validators.get_mut(&ValidatorIndex(*v)) {
                st.track.assume_down(*v, epoch.map(Epoch));
                st.health = st.track.health();
                st.evidence = st.track.evidence(&rules);
            }
        }
    }

    pub fn set_nodes(&self, nodes: Vec<NodeReport>) {
        self.write_lock().nodes = Some(nodes);
    }

    /// The network's baseline of a final epoch: the page says when a
    /// problem is everybody's.
    pub fn set_network(&self, n: &crate::analysis::network::NetworkRecord) {
        let mut s = self.write_lock();
        if s.network.as_ref().is_none_or(|old| old.epoch <= n.epoch) {
            s.network = Some(n.clone());
        }
    }

    pub fn set_head(&self, head_slot: Slot, wall_slot: Slot) {
        let mut s = self.write_lock();
        s.head_slot = Some(head_slot);
        s.wall_slot = Some(wall_slot);
    }

    /// Puts each watched validator's labels on it (the others lose theirs).
    pub fn set_labels(&self, labels: &BTreeMap<ValidatorIndex, Vec<String>>) {
        let mut s = self.write_lock();
        for (v, st) in s.validators.iter_mut() {
            st.labels = labels.get(v).cloned().unwrap_or_default();
        }
    }

    pub fn set_sources(&self, sources: Vec<crate::sources::SourceStatus>) {
        let mut s = self.write_lock();
        if s.sources != sources {
            s.sources = sources;
        }
    }

    pub fn set_store_ok(&self, ok: bool) {
        self.write_lock().store_ok = Some(ok);
    }

    pub fn set_upcoming_duties(&self, duties: &UpcomingDuties) {
        self.write_lock().set_upcoming_duties(duties);
    }
}

/// RFC 3339 in UTC, seconds precision, for JSON and the page.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::BalanceRecord;
    use crate::store::CrossCheckRecord;
    use std::time::UNIX_EPOCH;

    const EPOCH_SECS: u64 = 384;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn policy() -> Policy {
        Policy::for_epoch_duration(Duration::from_secs(EPOCH_SECS))
    }

    fn node(name: &str, health: NodeHealth) -> NodeReport {
        NodeReport {
            name: name.into(),
            url: format!("http://{name}.invalid/"),
            health,
            head_slot: Some(100),
            last_error: None,
        }
    }

    /// Two groups, validator 3 expected offline; store ok, one healthy node.
    fn board() -> Snapshot {
        let mut s = Snapshot::new(
            t(0),
            vec![
                GroupSpec {
                    name: "a".into(),
                    validators: vec![ValidatorIndex(1), ValidatorIndex(2), ValidatorIndex(3)],
                },
                GroupSpec {
                    name: "b".into(),
                    validators: vec![ValidatorIndex(4), ValidatorIndex(2)],
                },
            ],
            [ValidatorIndex(3)],
        );
        s.store_ok = Some(true);
        s.nodes = Some(vec![node("n1", NodeHealth::Healthy)]);
        s.head_slot = Some(Slot(1000));
        s
    }

    fn att(v: u64, epoch: u64, status: AttestationStatus) -> AttestationVerdict {
        AttestationVerdict {
            validator_index: ValidatorIndex(v),
            epoch: Epoch(epoch),
            status,
            duty_slot: Some(Slot(epoch * 32 + 5)),
            inclusion_slot: None,
            inclusion_delay: None,
            late: None,
            source_correct: None,
            target_correct: None,
            head_correct: None,
            reason: None,
        }
    }

    fn record(epoch: u64, is_final: bool, atts: &[(u64, AttestationStatus)]) -> EpochRecord {
        EpochRecord {
            epoch: Epoch(epoch),
            is_final,
            attestations: atts.iter().map(|(v, s)| att(*v, epoch, *s)).collect(),
            ..EpochRecord::default()
        }
    }

    use AttestationStatus::{Included as I, Missed as M, Pending as P, Unknown as U};

    #[test]
    #[allow(clippy::type_complexity)] // a table of cases reads best inline
    fn consecutive_misses_count_only_final_verdicts_and_reset_on_inclusion() {
        // (records applied in order, expected streak of validator 1)
        let cases: Vec<(&str, Vec<(u64, bool, AttestationStatus)>, u32)> = vec![
            ("one final miss", vec![(10, true, M)], 1),
            ("two final misses", vec![(10, true, M), (11, true, M)], 2),
            ("inclusion resets", vec![(10, true, M), (11, true, I)], 0),
            ("provisional miss is not counted", vec![(10, false, M)], 0),
            (
                "unknown keeps the streak",
                vec![(10, true, M), (11, true, U), (12, true, M)],
                2,
            ),
            (
                "replayed epoch is not counted twice",
                vec![(10, true, M), (10, true, M)],
                1,
            ),
            (
                "older final after newer is ignored",
                vec![(11, true, M), (10, true, M)],
                1,
            ),
            (
                "inactive resets",
                vec![(10, true, M), (11, true, AttestationStatus::Inactive)],
                0,
            ),
        ];
        for (name, steps, want) in cases {
            let mut s = board();
            for (e, fin, st) in steps {
                s.apply_epoch(&record(e, fin, &[(1, st)]), t(e));
            }
            assert_eq!(
                s.validators[&ValidatorIndex(1)].consecutive_missed,
                want,
                "{name}"
            );
        }
    }

    #[test]
    #[allow(clippy::type_complexity)] // a table of cases reads best inline
    fn latest_verdict_prefers_newer_epochs_and_final_over_provisional() {
        let cases: Vec<(
            &str,
            Vec<(u64, bool, AttestationStatus)>,
            (u64, bool, AttestationStatus),
        )> = vec![
            (
                "provisional newer wins",
                vec![(10, true, M), (11, false, P)],
                (11, false, P),
            ),
            (
                "final older does not replace newer",
                vec![(11, false, P), (10, true, M)],
                (11, false, P),
            ),
            (
                "final replaces provisional of same epoch",
                vec![(11, false, P), (11, true, I)],
                (11, true, I),
            ),
            (
                "provisional does not replace final of same epoch",
                vec![(11, true, I), (11, false, P)],
                (11, true, I),
            ),
        ];
        for (name, steps, (we, wf, ws)) in cases {
            let mut s = board();
            for (e, fin, st) in steps {
                s.apply_epoch(&record(e, fin, &[(1, st)]), t(e));
            }
            let a = s.validators[&ValidatorIndex(1)]
                .attestation
                .clone()
                .unwrap();
            assert_eq!((a.epoch.0, a.is_final, a.status), (we, wf, ws), "{name}");
        }
    }

    #[test]
    fn the_last_final_verdict_stays_visible_behind_a_provisional_one() {
        let cases: Vec<(
            &str,
            Vec<(u64, bool, AttestationStatus)>,
            Option<(u64, AttestationStatus)>,
        )> = vec![
            ("none yet", vec![(11, false, P)], None),
            (
                "final missed, then pending",
                vec![(10, true, M), (11, false, P)],
                Some((10, M)),
            ),
            (
                "newer final wins",
                vec![(10, true, M), (11, false, P), (11, true, I)],
                Some((11, I)),
            ),
            (
                "an older final arriving late does not win",
                vec![(11, true, I), (10, true, M)],
                Some((11, I)),
            ),
        ];
        for (name, steps, want) in cases {
            let mut s = board();
            for (e, fin, st) in steps {
                s.apply_epoch(&record(e, fin, &[(1, st)]), t(e));
            }
            let got = s.validators[&ValidatorIndex(1)]
                .last_final_attestation
                .as_ref()
                .map(|a| (a.epoch.0, a.status));
            assert_eq!(got, want, "{name}");
        }
    }

    /// Builds a snapshot from a list of tweaks and checks overall state.
    #[test]
    fn overall_state_table() {
        type Tweak = fn(&mut Snapshot);
        let p = policy();
        let now = t(2000);
        let cases: Vec<(&str, Tweak, State)> = vec![
            ("fresh board with a healthy node is ok", |_| {}, State::Ok),
            (
                "one miss degrades",
                |s| s.apply_epoch(&record(1, true, &[(1, M)]), t(1990)),
                State::Degraded,
            ),
            (
                "two misses in a row fail",
                |s| {
                    s.apply_epoch(&record(1, true, &[(1, M)]), t(1990));
                    s.apply_epoch(&record(2, true, &[(1, M)]), t(1995));
                },
                State::Failing,
            ),
            (
                "expected offline validator missing is ignored",
                |s| {
                    s.apply_epoch(&record(1, true, &[(3, M)]), t(1990));
                    s.apply_epoch(&record(2, true, &[(3, M)]), t(1995));
                },
                State::Ok,
            ),
            (
                "slashed fails",
                |s| {
                    let mut r = record(1, true, &[]);
                    r.balances.push(BalanceRecord {
                        validator_index: ValidatorIndex(4),
                        epoch: Epoch(1),
                        balance: Gwei(31_000_000_000),
                        effective_balance: Gwei(31_000_000_000),
                        status: ValidatorStatus::ActiveSlashed,
                        slashed: true,
                        balance_change: Some(-1_000_000_000),
                    });
                    s.apply_epoch(&r, t(1990));
                },
                State::Failing,
            ),
            (
                "no usable node is blind and fails",
                |s| s.nodes = Some(vec![node("n1", NodeHealth::Unreachable)]),
                State::Failing,
            ),
            (
                "a lagging node alone is usable but degraded",
                |s| s.nodes = Some(vec![node("n1", NodeHealth::Lagging)]),
                State::Degraded,
            ),
            (
                "one of two nodes down degrades",
                |s| {
                    s.nodes = Some(vec![
                        node("n1", NodeHealth::Healthy),
                        node("n2", NodeHealth::Syncing),
                    ])
                },
                State::Degraded,
            ),
            (
                "node health never reported degrades",
                |s| s.nodes = None,
                State::Degraded,
            ),
            (
                "unknown verdict degrades",
                |s| s.apply_epoch(&record(1, true, &[(1, U)]), t(1990)),
                State::Degraded,
            ),
            (
                "a pending vote in none of the 3 blocks after its duty is down, as the pager says",
                |s| {
                    let blocks: Vec<Slot> = (30 * 32 + 6..30 * 32 + 9).map(Slot).collect();
                    let early = EarlyInputs {
                        block_slots: &blocks,
                        liveness: None,
                    };
                    s.apply_epoch_with(
                        &record(30, false, &[(1, P)]),
                        &early,
                        &HealthRules::default(),
                        t(1990),
                    )
                },
                State::Failing,
            ),
            (
                "a pending vote with fewer blocks after it is nothing yet",
                |s| s.apply_epoch(&record(30, false, &[(1, P)]), t(1990)),
                State::Ok,
            ),
            (
                "pending vote at the head is normal",
                |s| {
                    s.head_slot = Some(Slot(30 * 32 + 6));
                    s.apply_epoch(&record(30, false, &[(1, P)]), t(1990))
                },
                State::Ok,
            ),
            (
                "disagreeing node degrades",
                |s| {
                    let mut r = record(1, true, &[]);
                    r.cross_checks.push(CrossCheckRecord {
                        epoch: Epoch(1),
                        slot: Slot(63),
                        node: "n2".into(),
                        node_root: None,
                        expected_root: None,
                        agrees: false,
                        error: None,
                    });
                    s.apply_epoch(&r, t(1990));
                },
                State::Degraded,
            ),
            (
                "a node that failed the cross-check is not disagreeing",
                |s| {
                    let mut r = record(1, true, &[]);
                    r.cross_checks.push(CrossCheckRecord {
                        epoch: Epoch(1),
                        slot: Slot(63),
                        node: "n1".into(),
                        node_root: None,
                        expected_root: None,
                        agrees: false,
                        error: Some("timeout".into()),
                    });
                    s.apply_epoch(&r, t(1990));
                },
                State::Ok,
            ),
            (
                "store failing degrades",
                |s| s.store_ok = Some(false),
                State::Degraded,
            ),
            (
                "no epoch for longer than the stall limit fails",
                |s| s.started_at = t(2000 - 3 * EPOCH_SECS - 1),
                State::Failing,
            ),
            (
                "no epoch for exactly the stall limit is still ok",
                |s| s.started_at = t(2000 - 3 * EPOCH_SECS),
                State::Ok,
            ),
            (
                "a recent final epoch ends the stall",
                |s| {
                    s.started_at = t(0);
                    s.last_final = Some(ProcessedEpoch {
                        epoch: Epoch(5),
                        at: t(1999),
                    });
                },
                State::Ok,
            ),
        ];
        for (name, tweak, want) in cases {
            let mut s = board();
            // Shift the start so that "since start" stays within the limit
            // unless a case moves it.
            s.started_at = t(1950);
            tweak(&mut s);
            let a = assess(&s, &p, now);
            assert_eq!(a.state, want, "{name}: {:?}", a.reasons);
            assert_eq!(a.state == State::Ok, a.reasons.is_empty(), "{name}");
        }
    }

    #[test]
    fn group_state_covers_its_own_validators_and_global_failures() {
        let p = policy();
        let mut s = board();
        // Validator 4 (group b) fails; validator 2 is listed in both groups
        // and shown under the first one, a.
        s.apply_epoch(&record(1, true, &[(4, M), (2, M)]), t(10));
        s.apply_epoch(&record(2, true, &[(4, M), (2, I)]), t(20));
        let a = assess(&s, &p, t(30));
        assert_eq!(s.group_of(ValidatorIndex(2)), Some("a"));
        assert_eq!(a.group("a").unwrap().state, State::Ok);
        let b = a.group("b").unwrap();
        assert_eq!((b.state, b.failing, b.validators), (State::Failing, 1, 1));
        assert_eq!(a.state, State::Failing);

        s.nodes = Some(vec![node("n1", NodeHealth::WrongNetwork)]);
        let a = assess(&s, &p, t(30));
        assert_eq!(
            a.group("a").unwrap().state,
            State::Failing,
            "blind affects every group"
        );
        assert!(a
            .group("a")
            .unwrap()
            .reasons
            .iter()
            .any(|f| f.reason == Reason::Blind));
    }

    #[test]
    fn readiness_table() {
        type Tweak = fn(&mut Snapshot);
        let p = policy();
        let cases: Vec<(&str, Tweak, Vec<&str>)> = vec![
            ("all good", |_| {}, vec![]),
            (
                "store unchecked",
                |s| s.store_ok = None,
                vec!["store_unchecked"],
            ),
            (
                "store failing",
                |s| s.store_ok = Some(false),
                vec!["store_failing"],
            ),
            ("no node report", |s| s.nodes = None, vec!["nodes_unknown"]),
            ("no usable node", |s| s.nodes = Some(vec![]), vec!["blind"]),
            (
                "stalled and blind",
                |s| {
                    s.nodes = Some(vec![node("n1", NodeHealth::Syncing)]);
                    s.last_final = Some(ProcessedEpoch {
                        epoch: Epoch(3),
                        at: t(0),
                    });
                },
                vec!["blind", "stalled"],
            ),
        ];
        for (name, tweak, want) in cases {
            let mut s = board();
            s.last_final = Some(ProcessedEpoch {
                epoch: Epoch(5),
                at: t(3 * EPOCH_SECS),
            });
            tweak(&mut s);
            let r = readiness(&s, &p, t(3 * EPOCH_SECS + 1));
            let kinds: Vec<String> = r
                .reasons
                .iter()
                .map(|f| {
                    serde_json::to_value(f).unwrap()["kind"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            assert_eq!(kinds, want, "{name}");
            assert_eq!(r.ready, want.is_empty(), "{name}");
        }
    }

    #[test]
    fn reasons_list_a_bounded_sample() {
        let mut s = Snapshot::new(
            t(0),
            vec![GroupSpec {
                name: "big".into(),
                validators: (0..50).map(ValidatorIndex).collect(),
            }],
            [],
        );
        s.nodes = Some(vec![node("n1", NodeHealth::Healthy)]);
        let all: Vec<(u64, AttestationStatus)> = (0..50).map(|v| (v, M)).collect();
        s.apply_epoch(&record(1, true, &all), t(1));
        s.apply_epoch(&record(2, true, &all), t(2));
        let a = assess(&s, &policy(), t(3));
        let f = &a.reasons[0];
        match &f.reason {
            Reason::Down { count, sample, .. } => {
                assert_eq!(*count, 50);
                assert_eq!(sample.len(), REASON_SAMPLE);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(f.message.contains("and 40 more"), "{}", f.message);
    }

    #[test]
    fn upcoming_duties_pick_the_earliest_proposal_and_replace_the_old_set() {
        let mut s = board();
        s.set_upcoming_duties(&UpcomingDuties {
            proposals: vec![
                (ValidatorIndex(1), Slot(90)),
                (ValidatorIndex(1), Slot(70)),
                (ValidatorIndex(9), Slot(80)),
            ],
            sync_committee: vec![ValidatorIndex(2)],
        });
        assert_eq!(
            s.validators[&ValidatorIndex(1)].next_proposal_slot,
            Some(Slot(70))
        );
        assert!(s.validators[&ValidatorIndex(2)].in_sync_committee);
        s.set_upcoming_duties(&UpcomingDuties::default());
        assert_eq!(s.validators[&ValidatorIndex(1)].next_proposal_slot, None);
        assert!(!s.validators[&ValidatorIndex(2)].in_sync_committee);
    }

    #[test]
    fn regrouping_keeps_what_is_known_of_validators_still_watched() {
        let mut s = board();
        s.apply_epoch(&record(1, true, &[(1, M), (4, M)]), t(1));
        s.set_groups(vec![GroupSpec {
            name: "c".into(),
            validators: vec![ValidatorIndex(1)],
        }]);
        assert_eq!(s.validators.len(), 1);
        let v = &s.validators[&ValidatorIndex(1)];
        assert_eq!((v.group.as_str(), v.consecutive_missed), ("c", 1));
    }
}
