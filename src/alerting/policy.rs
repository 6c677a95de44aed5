//! PURE alerting policy: what is wrong now (`Tracker::findings`) and what
//! to do about it given the open incidents (`reconcile`, `reminders_due`).
//!
//! Must not: do IO or read the clock (`now` is an argument).
//!
//! `validator_down` keeps a streak per validator: final `missed` verdicts
//! and early evidence (a provisional `pending` vote that `early_blocks`
//! canonical blocks after its duty slot did not carry, and that liveness,
//! where a node answered, does not call live), all after the newest epoch
//! the validator was seen attesting. Down when the streak holds early
//! evidence or `down_after_missed` final misses; once down, it stays down
//! until a good verdict (included, or inactive) arrives. When that good
//! verdict is the final verdict of the very epoch the early warning was
//! about, the resolution says the early warning was wrong.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use crate::analysis::doublesign::DoubleSignEvidence;
use crate::analysis::network::{describe, is_network_wide, underperforming, NetworkRecord};
use crate::analysis::{AttestationStatus, ProposalStatus};
use crate::beacon::pool::head_is_stale;
use crate::beacon::{NodeHealth, NodeReport};
use crate::chain::{Epoch, Slot, ValidatorIndex, ValidatorStatus};
use crate::config::alerts::RuleConfig;
use crate::health::{Change, HealthRules, Outage, ValidatorHealth};
use crate::status::node_usable;
use crate::store::{EpochRecord, IncidentRecord};

use super::render::index_list;
use super::{Rule, Scope};

/// The spec's MIN_EPOCHS_TO_INACTIVITY_PENALTY: the chain leaks when the
/// finality delay (previous epoch − finalized epoch) exceeds it.
pub const MIN_EPOCHS_TO_INACTIVITY_PENALTY: u64 = 4;

/// Something wrong now, for one (rule, subject).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub subject: String,
    pub validators: BTreeSet<u64>,
    pub epoch: Option<u64>,
    pub summary: String,
}

/// What the engine must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A new incident; notify `firing`.
    Open(Finding),
    /// More validators joined an open incident; notify `update`.
    Grow {
        id: String,
        finding: Finding,
        added: Vec<u64>,
    },
    /// The incident's details changed without news (fewer validators, or
    /// more while judging history): record silently.
    Refresh {
        id: String,
        finding: Finding,
    },
    /// The rule stopped firing; notify `resolved`.
    Resolve {
        id: String,
        note: String,
    },
    Remind {
        id: String,
    },
    /// A one-shot event; notify once, close at once.
    Event(Finding),
}

pub use crate::health::EarlyInputs;

#[derive(Clone, Debug, Default)]
struct ValidatorTrack {
    /// The one rule of up and down, shared with the status board.
    health: ValidatorHealth,
    /// Final included votes in the window: epoch -> timely and correct.
    performance: BTreeMap<Epoch, bool>,
    /// Latest final sync verdict: (epoch, participated, missed).
    sync: Option<(Epoch, u32, u32)>,
    falling: u32,
    balance_epoch: Option<Epoch>,
    status: Option<ValidatorStatus>,
    slashed: bool,
}

#[derive(Clone, Debug)]
struct NodeTrack {
    rule: Option<Rule>,
    since: SystemTime,
    detail: String,
}

/// Everything the rules remember.
#[derive(Clone, Debug)]
pub struct Tracker {
    cfg: RuleConfig,
    /// Each watched validator's group (the first that lists it).
    group_of: HashMap<ValidatorIndex, String>,
    validators: HashMap<ValidatorIndex, ValidatorTrack>,
    latest_final: Option<Epoch>,
    nodes: BTreeMap<String, NodeTrack>,
    blind_since: Option<SystemTime>,
    disagreeing: BTreeSet<String>,
    /// (finalized epoch, the epoch it speaks for: see `apply_chain`).
    chain: Option<(Epoch, Epoch)>,
    /// How long no epoch was processed, if longer than the limit.
    stalled_for: Option<Duration>,
    /// Since when, and why, the store has been failing.
    store_failing: Option<(SystemTime, String)>,
    /// Double-signing evidence already reported.
    double_signed: std::collections::HashSet<(
        ValidatorIndex,
        crate::analysis::doublesign::DoubleSignKind,
        Epoch,
    )>,
    /// Validators back from an outage, not yet taken by the engine.
    returns: Vec<Outage>,
    /// Every reachable node's head is stale: since when, and the heads.
    chain_stall: Option<ChainStall>,
    /// Per group, (its participation, the network's) of the last final
    /// epochs, oldest first, as many as `underperforming_epochs`. The
    /// group's counts only its validators not down (one cause, one
    /// incident: an outage is `validator_down`'s news).
    versus_network: BTreeMap<String, VecDeque<(Epoch, Option<f64>, Option<f64>)>>,
    /// The network's baseline of the newest final epoch, and each group's
    /// participation in it (all members): "network-wide" notes.
    network: Option<(NetworkRecord, BTreeMap<String, Option<f64>>)>,
}

/// Below this network participation a problem may be network-wide (see
/// `analysis::network::is_network_wide`): mainnet runs at 97–99 %.
pub const NETWORK_HEALTHY: f64 = 0.9;

/// No node has a block for `STALE_HEAD_SLOTS`: the chain is stalled, or
/// every node is stuck (from inside the two look the same).
#[derive(Clone, Debug, PartialEq, Eq)]
struct ChainStall {
    since: SystemTime,
    /// The newest head any node has.
    best_head: u64,
    wall: u64,
    /// Each node with its head, or why it has none.
    nodes: Vec<(String, String)>,
}

/// The rule of up and down's thresholds, from the rules' configuration.
pub fn health_rules(cfg: &RuleConfig) -> HealthRules {
    HealthRules {
        down_after_missed: cfg.down_after_missed,
        early_warning: cfg.early_warning,
        early_blocks: cfg.early_blocks,
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

impl Tracker {
    pub fn new(cfg: RuleConfig, groups: &[(String, Vec<ValidatorIndex>)]) -> Tracker {
        let mut t = Tracker {
            cfg,
            group_of: HashMap::new(),
            validators: HashMap::new(),
            latest_final: None,
            nodes: BTreeMap::new(),
            blind_since: None,
            disagreeing: BTreeSet::new(),
            chain: None,
            stalled_for: None,
            store_failing: None,
            double_signed: Default::default(),
            returns: Vec::new(),
            chain_stall: None,
            versus_network: BTreeMap::new(),
            network: None,
        };
        t.set_groups(groups);
        t
    }

    /// Replaces the groups; validators still watched keep their state.
    pub fn set_groups(&mut self, groups: &[(String, Vec<ValidatorIndex>)]) {
        self.group_of.clear();
        for (name, members) in groups {
            for v in members {
                self.group_of.entry(*v).or_insert_with(|| name.clone());
            }
        }
        let watched = &self.group_of;
        self.validators.retain(|v, _| watched.contains_key(v));
    }

    pub fn group_of(&self, v: ValidatorIndex) -> Option<&str> {
        self.group_of.get(&v).map(String::as_str)
    }

    /// Marks validators as down (from an incident open before a restart,
    /// `epoch` the incident's first epoch): they stay down until a good
    /// verdict for that epoch or a later one says otherwise. The incident's
    /// epoch is kept as early evidence because the restarted tracker knows
    /// only the final history: without it, the provisional record of an
    /// epoch before the outage (the validators still attested then)
    /// resolved the incident, and the next pass opened it again.
    pub fn assume_down(&mut self, validators: &[u64], epoch: Option<u64>) {
        for v in validators {
            let v = ValidatorIndex(*v);
            if self.group_of.contains_key(&v) {
                let t = self.validators.entry(v).or_default();
                t.health.assume_down(v.0, epoch.map(Epoch));
            }
        }
    }

    /// The rule of up and down's thresholds (shared with the status board).
    pub fn health_rules(&self) -> HealthRules {
        health_rules(&self.cfg)
    }

    /// Validators that came back since the last call, with their outage.
    pub fn take_returns(&mut self) -> Vec<Outage> {
        std::mem::take(&mut self.returns)
    }

    /// The outage of a validator (current, or the last one).
    pub fn outage_of(&self, v: u64) -> Option<&Outage> {
        self.validators.get(&ValidatorIndex(v))?.health.outage()
    }

    /// The evidence that holds a validator where it is, in words.
    pub fn evidence_of(&self, v: u64) -> Option<String> {
        let t = self.validators.get(&ValidatorIndex(v))?;
        Some(t.health.evidence(&self.health_rules()))
    }

    /// Whether the chain is in an inactivity leak (then falling balances
    /// are the network's doing, not the validator's).
    fn leaking(&self) -> bool {
        self.chain.is_some_and(|(fin, head)| {
            head.0.saturating_sub(1).saturating_sub(fin.0) > MIN_EPOCHS_TO_INACTIVITY_PENALTY
        })
    }

    /// Double-signing evidence as one-shot findings, one per (validator,
    /// kind, epoch) for the life of the tracker; evidence against a
    /// validator in no group is not ours to report. Returns each finding
    /// with the key that names its incident (the store refuses a key twice,
    /// so a restart does not notify again either).
    pub fn apply_double_sign(&mut self, evidence: &[DoubleSignEvidence]) -> Vec<(String, Finding)> {
        let mut out = Vec::new();
        for e in evidence {
            let Some(group) = self.group_of.get(&e.validator_index) else {
                continue;
            };
            if !self.double_signed.insert(e.key()) {
                continue;
            }
            let key = format!(
                "{}/{group}/{}/{}/{}",
                Rule::DoubleSigning.as_str(),
                e.epoch.0,
                e.kind.as_str(),
                e.validator_index.0
            );
            let finding = Finding {
                rule: Rule::DoubleSigning,
                subject: group.clone(),
                validators: BTreeSet::from([e.validator_index.0]),
                epoch: Some(e.epoch.0),
                summary: format!(
                    "validator {} of group {group}: {} in epoch {} (slot {}): {}",
                    e.validator_index.0,
                    e.kind.as_str().replace('_', " "),
                    e.epoch.0,
                    e.slot.0,
                    e.detail
                ),
            };
            out.push((key, finding));
        }
        out
    }

    /// Takes in one epoch record; returns the one-shot events it holds.
    pub fn apply_epoch(&mut self, rec: &EpochRecord, early: &EarlyInputs<'_>) -> Vec<Finding> {
        let cfg = self.cfg.clone();
        if rec.is_final {
            self.latest_final = self.latest_final.max(Some(rec.epoch));
        }
        let mut events: BTreeMap<(Rule, String), BTreeSet<u64>> = BTreeMap::new();
        let group_of = self.group_of.clone();
        let mut event = |rule: Rule, v: ValidatorIndex| {
            if let Some(g) = group_of.get(&v) {
                events.entry((rule, g.clone())).or_default().insert(v.0);
            }
        };

        let rules = health_rules(&cfg);
        for a in &rec.attestations {
            if !self.group_of.contains_key(&a.validator_index) {
                continue;
            }
            let t = self.validators.entry(a.validator_index).or_default();
            if let Change::CameBack(o) =
                t.health.observe_attestation(a, rec.is_final, early, &rules)
            {
                self.returns.push(o);
            }
            if rec.is_final && a.status == AttestationStatus::Included {
                let good = a.late != Some(true)
                    && a.head_correct != Some(false)
                    && a.target_correct != Some(false);
                t.performance.insert(a.epoch, good);
            }
            if let Some(latest) = self.latest_final {
                let keep_from = latest
                    .0
                    .saturating_sub(u64::from(cfg.performance_window) - 1);
                t.performance.retain(|ep, _| ep.0 >= keep_from);
            }
        }
        // One cause, one incident: what a down validator misses (its
        // proposals, its sync signatures) is part of its outage, counted
        // there and told with its return, never an incident of its own.
        // Provisional records count too: a slot is judged missed only when
        // a later canonical block proves it empty.
        for s in &rec.sync {
            if let Some(t) = self.validators.get_mut(&s.validator_index) {
                t.health.observe_sync(s.epoch, s.missed);
            }
        }
        let mut folded: BTreeSet<(u64, u64)> = BTreeSet::new();
        for p in &rec.proposals {
            let Some(v) = p.validator_index else { continue };
            if p.status != ProposalStatus::Missed {
                continue;
            }
            if let Some(t) = self.validators.get_mut(&v) {
                if t.health.observe_missed_proposal(v, p.slot, rec.epoch) {
                    folded.insert((v.0, p.slot.0));
                }
            }
        }

        if rec.is_final {
            for s in &rec.sync {
                if let Some(t) = self.validators.get_mut(&s.validator_index) {
                    if t.sync.is_none_or(|(e, _, _)| s.epoch >= e) {
                        t.sync = Some((s.epoch, s.participated, s.missed));
                    }
                }
            }
            for b in &rec.balances {
                if !self.group_of.contains_key(&b.validator_index) {
                    continue;
                }
                let t = self.validators.entry(b.validator_index).or_default();
                if t.balance_epoch.is_some_and(|e| b.epoch <= e) {
                    continue;
                }
                let consecutive = t.balance_epoch.is_some_and(|e| e.0 + 1 == b.epoch.0);
                t.health.observe_balance(b.balance);
                let penalty_of_down = t
                    .health
                    .down_through()
                    .is_some_and(|d| b.epoch.0 <= d.0 + 1);
                match b.balance_change {
                    Some(c) if c < 0 && !penalty_of_down => {
                        t.falling = if consecutive { t.falling + 1 } else { 1 }
                    }
                    _ => t.falling = 0,
                }
                t.balance_epoch = Some(b.epoch);
                let before = t.status;
                t.status = Some(b.status);
                if let Some(before) = before {
                    if b.status == ValidatorStatus::ActiveExiting
                        && before != ValidatorStatus::ActiveExiting
                    {
                        event(Rule::Exiting, b.validator_index);
                    }
                    let exited = |s: ValidatorStatus| {
                        matches!(
                            s,
                            ValidatorStatus::ExitedUnslashed | ValidatorStatus::ExitedSlashed
                        )
                    };
                    if exited(b.status) && !exited(before) {
                        event(Rule::Exited, b.validator_index);
                    }
                    if b.slashed && !t.slashed {
                        event(Rule::Slashed, b.validator_index);
                    }
                }
                t.slashed |= b.slashed;
            }
            for s in &rec.slashings {
                if let Some(t) = self.validators.get_mut(&s.validator_index) {
                    if !t.slashed {
                        t.slashed = true;
                        event(Rule::Slashed, s.validator_index);
                    }
                }
            }
            // Provisional proposal verdicts may still change (a late block,
            // a reorg): only final ones are news.
            for p in &rec.proposals {
                let Some(v) = p.validator_index else { continue };
                match p.status {
                    ProposalStatus::Missed if !folded.contains(&(v.0, p.slot.0)) => {
                        event(Rule::ProposalMissed, v)
                    }
                    ProposalStatus::Orphaned => event(Rule::ProposalOrphaned, v),
                    _ => {}
                }
            }
            // A node that could not answer is unhealthy, not disagreeing.
            if !rec.cross_checks.is_empty() {
                self.disagreeing = rec
                    .cross_checks
                    .iter()
                    .filter(|c| !c.agrees && c.error.is_none())
                    .map(|c| c.node.clone())
                    .collect();
            }
        }

        events
            .into_iter()
            .map(|((rule, group), validators)| {
                let list: Vec<u64> = validators.iter().copied().collect();
                let what = match rule {
                    Rule::ProposalMissed => "missed a proposal",
                    Rule::ProposalOrphaned => "proposed a block that was orphaned",
                    Rule::Slashed => "was slashed",
                    Rule::Exiting => "started exiting",
                    _ => "exited",
                };
                Finding {
                    rule,
                    subject: group.clone(),
                    summary: format!(
                        "{} of group {group} {what} in epoch {}: {}",
                        count(list.len()),
                        rec.epoch.0,
                        index_list(&list)
                    ),
                    validators,
                    epoch: Some(rec.epoch.0),
                }
            })
            .collect()
    }

    /// Takes in a health round of the pool, at the wall-clock slot `wall`.
    pub fn apply_nodes(&mut self, nodes: &[NodeReport], wall: Option<Slot>, now: SystemTime) {
        self.chain_stall = match (wall, chain_stall(nodes, wall)) {
            (Some(w), Some((best_head, nodes))) => Some(ChainStall {
                since: self.chain_stall.as_ref().map_or(now, |c| c.since),
                best_head,
                wall: w.0,
                nodes,
            }),
            _ => None,
        };
        let mut seen = BTreeSet::new();
        for n in nodes {
            seen.insert(n.name.clone());
            let (rule, detail) = match n.health {
                NodeHealth::Unreachable => (
                    Some(Rule::NodeDown),
                    n.last_error.clone().unwrap_or_else(|| "unreachable".into()),
                ),
                NodeHealth::WrongNetwork => (Some(Rule::NodeDown), "on another network".into()),
                NodeHealth::Syncing => (Some(Rule::NodeNotSynced), "syncing".into()),
                NodeHealth::Lagging => (
                    Some(Rule::NodeLagging),
                    format!("head slot {:?} behind the others", n.head_slot),
                ),
                NodeHealth::Healthy | NodeHealth::Unknown => (None, String::new()),
            };
            let track = self.nodes.entry(n.name.clone()).or_insert(NodeTrack {
                rule,
                since: now,
                detail: detail.clone(),
            });
            if track.rule != rule {
                track.rule = rule;
                track.since = now;
            }
            track.detail = detail;
        }
        self.nodes.retain(|n, _| seen.contains(n));
        let blind = !nodes.is_empty() && !nodes.iter().any(|n| node_usable(&n.health));
        self.blind_since = match (blind, self.blind_since) {
            (true, Some(s)) => Some(s),
            (true, None) => Some(now),
            (false, _) => None,
        };
    }

    /// Takes in the head state's finalized checkpoint, the epoch of the
    /// head block and the wall clock's epoch.
    ///
    /// The rule: finality is measured from the epoch the checkpoint speaks
    /// for. A state enters an epoch only with the first block of that epoch
    /// (its epoch transition runs then, and may finalize from votes already
    /// on chain), so while the head block is in an earlier epoch than the
    /// wall clock — the first slots of the epoch are empty — the head
    /// state's checkpoint is one transition behind and the distance counts
    /// from the epoch before the wall clock's. Counting from the wall clock
    /// made `no_finality` fire and resolve within a slot at every such
    /// boundary of the lodestar-devnet recording (finalized 0 at the empty
    /// slot 40, epoch 5; 1 with block 41). A chain that makes no blocks at
    /// all still fires, one epoch later: the wall clock moves on.
    pub fn apply_chain(&mut self, finalized: Epoch, head_block: Epoch, wall: Epoch) {
        let speaks_for = if head_block >= wall {
            wall
        } else {
            Epoch(wall.0.saturating_sub(1))
        };
        self.chain = Some((finalized, speaks_for));
    }

    /// Whether every reachable node's head is stale (see `Rule::ChainStalled`):
    /// then the network, monitor and lag rules hold their peace, since they
    /// would only say the same thing again.
    pub fn chain_stalled(&self) -> bool {
        self.chain_stall.is_some()
    }

    pub fn apply_monitor(
        &mut self,
        last_processed_at: SystemTime,
        limit: Duration,
        now: SystemTime,
    ) {
        let idle = now
            .duration_since(last_processed_at)
            .unwrap_or(Duration::ZERO);
        self.stalled_for = (idle > limit).then_some(idle);
    }

    /// The network's baseline of a final epoch with its verdicts: each
    /// group's participation beside the network's (included duties over
    /// included and missed ones; inactive and unknown do not count).
    pub fn apply_network(&mut self, rec: &EpochRecord, network: &NetworkRecord) {
        if !rec.is_final || network.epoch != rec.epoch {
            return;
        }
        // (included, counted) per group: all members, and those not down.
        let mut all: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        let mut up: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for a in &rec.attestations {
            let Some(g) = self.group_of.get(&a.validator_index) else {
                continue;
            };
            let included = match a.status {
                AttestationStatus::Included => 1,
                AttestationStatus::Missed => 0,
                _ => continue,
            };
            let e = all.entry(g).or_default();
            e.0 += included;
            e.1 += 1;
            let down = self
                .validators
                .get(&a.validator_index)
                .is_some_and(|t| t.health.is_down() || t.health.in_outage(rec.epoch));
            if !down {
                let e = up.entry(g).or_default();
                e.0 += included;
                e.1 += 1;
            }
        }
        let share = |(i, n): (u64, u64)| (n > 0).then(|| i as f64 / n as f64);
        let keep = self.cfg.underperforming_epochs.max(1) as usize;
        let n = network.participation();
        // Group names without a copy per validator (a million at scale).
        let groups: BTreeSet<&str> = self.group_of.values().map(String::as_str).collect();
        for g in &groups {
            let h = self.versus_network.entry((*g).to_owned()).or_default();
            if h.back().is_some_and(|(e, _, _)| *e >= rec.epoch) {
                continue;
            }
            // Consecutive epochs only: a gap starts the count again.
            if h.back().is_some_and(|(e, _, _)| e.0 + 1 != rec.epoch.0) {
                h.clear();
            }
            h.push_back((rec.epoch, up.get(g).copied().and_then(share), n));
            while h.len() > keep {
                h.pop_front();
            }
        }
        let shares = groups
            .into_iter()
            .map(|g| (g.to_owned(), all.get(g).copied().and_then(share)))
            .collect();
        self.network = Some((network.clone(), shares));
    }

    /// " (network-wide: network participation 61 %, …)" when the
    /// network's newest final epoch says the problem is everybody's.
    fn network_note(&self, group: &str) -> String {
        let Some((n, shares)) = &self.network else {
            return String::new();
        };
        let g = shares.get(group).copied().flatten();
        if is_network_wide(
            g,
            n.participation(),
            NETWORK_HEALTHY,
            self.cfg.underperforming_margin,
        ) {
            format!(" (network-wide: {} in epoch {})", describe(n), n.epoch.0)
        } else {
            String::new()
        }
    }

    /// The store's state (None: it answers).
    pub fn apply_store(&mut self, failing: Option<(SystemTime, String)>) {
        self.store_failing = failing;
    }

    /// Why a validator-rule incident over `validators` ends.
    pub fn resolution_note(&self, rule: Rule, validators: &[u64]) -> String {
        if rule == Rule::ValidatorDown {
            let wrong: Vec<String> = validators
                .iter()
                .filter_map(|v| {
                    let t = self.validators.get(&ValidatorIndex(*v))?;
                    t.health
                        .contradicted()
                        .map(|e| format!("{v} (epoch {})", e.0))
                })
                .collect();
            if !wrong.is_empty() {
                return format!(
                    "the final verdict contradicts the early warning: the vote was included for {}",
                    wrong.join(", ")
                );
            }
            return "the validators attest again".into();
        }
        "the rule no longer fires".into()
    }

    /// Everything wrong now within `scope`.
    pub fn findings(&self, scope: Scope, now: SystemTime) -> Vec<Finding> {
        match scope {
            Scope::Validators => self.validator_findings(),
            Scope::CrossCheck => self
                .disagreeing
                .iter()
                .map(|n| Finding {
                    rule: Rule::NodeDisagrees,
                    subject: n.clone(),
                    validators: BTreeSet::new(),
                    epoch: self.latest_final.map(|e| e.0),
                    summary: format!(
                        "node {n} disagrees with the other nodes about the canonical chain"
                    ),
                })
                .collect(),
            Scope::Nodes => {
                let grace = self.cfg.node_grace;
                let lasted =
                    |since: SystemTime| now.duration_since(since).unwrap_or_default() >= grace;
                let stalled = self.chain_stall.as_ref().filter(|c| lasted(c.since));
                let mut out: Vec<Finding> = self
                    .nodes
                    .iter()
                    .filter_map(|(name, t)| {
                        let rule = t.rule?;
                        // Every head stale together is the chain stall,
                        // told once: a node on the newest head there is
                        // "lagging" or "not synced" (its sync distance
                        // grows with the clock) only because of it.
                        if matches!(rule, Rule::NodeLagging | Rule::NodeNotSynced)
                            && self.chain_stall.is_some()
                        {
                            return None;
                        }
                        lasted(t.since).then(|| Finding {
                            rule,
                            subject: name.clone(),
                            validators: BTreeSet::new(),
                            epoch: None,
                            summary: format!("beacon node {name}: {}", t.detail),
                        })
                    })
                    .collect();
                if let Some(c) = stalled {
                    let heads: Vec<String> =
                        c.nodes.iter().map(|(n, h)| format!("{n}: {h}")).collect();
                    out.push(Finding {
                        rule: Rule::ChainStalled,
                        subject: "network".into(),
                        validators: BTreeSet::new(),
                        epoch: None,
                        summary: format!(
                            "no beacon node has a block after slot {} ({} slots behind the clock): \
                             the chain is stalled or every node is stuck ({}); \
                             no validator is judged for the slots the chain has not reached",
                            c.best_head,
                            c.wall.saturating_sub(c.best_head),
                            heads.join(", ")
                        ),
                    });
                }
                if self.blind_since.is_some_and(lasted) && self.chain_stall.is_none() {
                    out.push(Finding {
                        rule: Rule::MonitorBlind,
                        subject: "monitor".into(),
                        validators: BTreeSet::new(),
                        epoch: None,
                        summary: "no usable beacon node: valwatch cannot see the chain".into(),
                    });
                }
                out
            }
            Scope::Chain => {
                let Some((fin, head)) = self.chain else {
                    return Vec::new();
                };
                let distance = head.0.saturating_sub(fin.0);
                let mut out = Vec::new();
                if distance > self.cfg.no_finality_epochs {
                    out.push(Finding {
                        rule: Rule::NoFinality,
                        subject: "network".into(),
                        validators: BTreeSet::new(),
                        epoch: Some(fin.0),
                        summary: format!(
                            "the network has not finalized for {distance} epochs (finalized epoch {})",
                            fin.0
                        ),
                    });
                }
                if self.leaking() {
                    out.push(Finding {
                        rule: Rule::InactivityLeak,
                        subject: "network".into(),
                        validators: BTreeSet::new(),
                        epoch: Some(fin.0),
                        summary: "the network is in an inactivity leak: every offline validator loses balance fast".into(),
                    });
                }
                out
            }
            Scope::Monitor => {
                let mut out: Vec<Finding> = self
                    .stalled_for
                    .map(|d| Finding {
                        rule: Rule::MonitorStalled,
                        subject: "monitor".into(),
                        validators: BTreeSet::new(),
                        epoch: self.latest_final.map(|e| e.0),
                        summary: format!(
                            "no epoch processed for {}",
                            humantime::format_duration(Duration::from_secs(d.as_secs()))
                        ),
                    })
                    .into_iter()
                    .collect();
                // Told after the node grace, as a node that fails is: one
                // refused connection during a database restart is no news.
                if let Some((since, error)) = &self.store_failing {
                    let lasted = now.duration_since(*since).unwrap_or_default();
                    if lasted >= self.cfg.node_grace {
                        out.push(Finding {
                            rule: Rule::StoreFailing,
                            subject: "store".into(),
                            validators: BTreeSet::new(),
                            epoch: self.latest_final.map(|e| e.0),
                            summary: format!(
                                "the database has been failing since {} ({error}): verdicts \
                                 and alerts are kept in memory and go on; they are written \
                                 once it answers",
                                super::render::rfc3339(*since)
                            ),
                        });
                    }
                }
                out
            }
        }
    }

    fn validator_findings(&self) -> Vec<Finding> {
        let cfg = &self.cfg;
        let mut sets: BTreeMap<(Rule, String), (BTreeSet<u64>, Option<u64>)> = BTreeMap::new();
        let leaking = self.leaking();
        for (v, t) in &self.validators {
            let Some(group) = self.group_of.get(v) else {
                continue;
            };
            let mut add = |rule: Rule, epoch: Option<Epoch>| {
                let e = sets.entry((rule, group.clone())).or_default();
                e.0.insert(v.0);
                e.1 = match (e.1, epoch) {
                    (Some(a), Some(b)) => Some(a.min(b.0)),
                    (a, b) => a.or(b.map(|x| x.0)),
                };
            };
            if t.health.is_down() {
                add(Rule::ValidatorDown, t.health.down_since());
                // One incident per cause: a validator that is down also
                // loses balance and sync signatures; that is the same news.
                continue;
            }
            let samples = t.performance.len();
            let good = t.performance.values().filter(|g| **g).count();
            // Judged over a full window only: with half a window one late
            // vote already crosses the threshold, and the incident flaps
            // (seen on the lodestar-devnet recording).
            if samples > 0
                && samples >= cfg.performance_window as usize
                && ratio(good, samples) < cfg.performance_min
            {
                add(
                    Rule::AttestationPerformance,
                    t.performance.keys().next().copied(),
                );
            }
            if let Some((e, p, m)) = t.sync {
                let current = self.latest_final.is_some_and(|l| l == e);
                let while_down = t.health.in_outage(e);
                // A validator that also missed its last final vote may be
                // going down: its sync misses are the same cause, told by
                // `validator_down` if the next epoch confirms it (seen when
                // epochs judged late after a restart come without the
                // provisional looks that catch it live). One late epoch
                // alone is no page either way.
                let late = t.health.health() == crate::health::Health::Late;
                if current
                    && !while_down
                    && !late
                    && p + m > 0
                    && ratio(p as usize, (p + m) as usize) < cfg.sync_min
                {
                    add(Rule::SyncParticipation, Some(e));
                }
            }
            if t.falling >= cfg.balance_falling_epochs && !t.slashed && !leaking {
                add(Rule::BalanceFalling, t.balance_epoch);
            }
        }
        sets.into_iter()
            .map(|((rule, group), (validators, epoch))| {
                let list: Vec<u64> = validators.iter().copied().collect();
                let what = match rule {
                    // Which evidence put them there is the message's
                    // evidence line, per validator (src/health.rs).
                    Rule::ValidatorDown => "down".to_string(),
                    Rule::AttestationPerformance => format!(
                        "below {:.0} % timely and correct attestations over {} epochs",
                        cfg.performance_min * 100.0,
                        cfg.performance_window
                    ),
                    Rule::SyncParticipation => format!(
                        "below {:.0} % sync-committee participation",
                        cfg.sync_min * 100.0
                    ),
                    _ => format!(
                        "losing balance for {} epochs in a row",
                        cfg.balance_falling_epochs
                    ),
                };
                Finding {
                    rule,
                    summary: format!(
                        "{} of group {group} {what}: {}{}",
                        count(list.len()),
                        index_list(&list),
                        self.network_note(&group)
                    ),
                    subject: group,
                    validators,
                    epoch,
                }
            })
            .chain(self.underperforming_findings())
            .collect()
    }

    /// Groups that stayed `underperforming_margin` below the network over
    /// the last `underperforming_epochs` final epochs.
    fn underperforming_findings(&self) -> Vec<Finding> {
        let cfg = &self.cfg;
        let epochs = cfg.underperforming_epochs as usize;
        self.versus_network
            .iter()
            .filter_map(|(group, h)| {
                let pairs: Vec<(Option<f64>, Option<f64>)> =
                    h.iter().map(|(_, g, n)| (*g, *n)).collect();
                if !underperforming(&pairs, cfg.underperforming_margin, epochs) {
                    return None;
                }
                let mean = |f: fn(&(Option<f64>, Option<f64>)) -> Option<f64>| {
                    let v: Vec<f64> = pairs.iter().filter_map(f).collect();
                    v.iter().sum::<f64>() / v.len().max(1) as f64 * 100.0
                };
                Some(Finding {
                    rule: Rule::Underperforming,
                    subject: group.clone(),
                    validators: BTreeSet::new(),
                    epoch: h.front().map(|(e, _, _)| e.0),
                    summary: format!(
                        "group {group} had {:.1} % of its attestation duties included over the \
                         last {epochs} epochs while the network had {:.1} %: more than {:.0} \
                         points below the network, in each of them",
                        mean(|p| p.0),
                        mean(|p| p.1),
                        cfg.underperforming_margin * 100.0
                    ),
                })
            })
            .collect()
    }
}

/// PURE: whether every node that answered has a stale head at `wall`
/// (`beacon::pool::head_is_stale`); with the best head and each node's
/// head (or state) for the message. None while any node has a fresh head,
/// or none answered (that is `monitor_blind`).
fn chain_stall(nodes: &[NodeReport], wall: Option<Slot>) -> Option<(u64, Vec<(String, String)>)> {
    let wall = wall?;
    let heads: Vec<u64> = nodes
        .iter()
        .filter(|n| node_usable(&n.health) || n.health == NodeHealth::Syncing)
        .filter_map(|n| n.head_slot)
        .collect();
    let best = heads.iter().copied().max()?;
    if !head_is_stale(Slot(best), wall) {
        return None;
    }
    let shown = nodes
        .iter()
        .map(|n| {
            let state = match n.head_slot {
                Some(h) if node_usable(&n.health) || n.health == NodeHealth::Syncing => {
                    format!("head {h}")
                }
                _ => crate::status::health_str(&n.health).to_owned(),
            };
            (n.name.clone(), state)
        })
        .collect();
    Some((best, shown))
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 validator".into()
    } else {
        format!("{n} validators")
    }
}

/// Compares what is wrong now (`findings`, complete for the rules in
/// `scope`) with the open incidents. `live`: the inputs are about now; when
/// false (history being filled in) nothing opens and growth is silent, but
/// incidents still resolve.
pub fn reconcile(
    open: &[IncidentRecord],
    findings: &[Finding],
    scope: Scope,
    live: bool,
    note: &dyn Fn(Rule, &[u64]) -> String,
) -> Vec<Decision> {
    let mut out = Vec::new();
    for f in findings {
        if f.rule.is_event() {
            if live {
                out.push(Decision::Event(f.clone()));
            }
            continue;
        }
        let current = open
            .iter()
            .find(|i| i.rule == f.rule.as_str() && i.subject == f.subject);
        match current {
            None if live => out.push(Decision::Open(f.clone())),
            None => {}
            Some(i) => {
                let known: BTreeSet<u64> = i.validators.iter().copied().collect();
                let added: Vec<u64> = f.validators.difference(&known).copied().collect();
                if !added.is_empty() && live {
                    out.push(Decision::Grow {
                        id: i.id.clone(),
                        finding: f.clone(),
                        added,
                    });
                } else if f.validators != known {
                    out.push(Decision::Refresh {
                        id: i.id.clone(),
                        finding: f.clone(),
                    });
                }
            }
        }
    }
    for i in open {
        let Some(rule) = Rule::from_name(&i.rule) else {
            continue;
        };
        if rule.is_event() || rule.scope() != scope {
            continue;
        }
        let still = findings
            .iter()
            .any(|f| f.rule == rule && f.subject == i.subject);
        if !still {
            out.push(Decision::Resolve {
                id: i.id.clone(),
                note: note(rule, &i.validators),
            });
        }
    }
    out
}

/// Open incidents whose last notification is older than `interval`.
pub fn reminders_due(
    open: &[IncidentRecord],
    interval: Duration,
    now: SystemTime,
) -> Vec<Decision> {
    open.iter()
        .filter(|i| !i.is_event && i.resolved_at.is_none())
        .filter(|i| now.duration_since(i.last_notified_at).unwrap_or_default() >= interval)
        .map(|i| Decision::Remind { id: i.id.clone() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{AttestationVerdict, BalanceRecord, SyncVerdict};
    use crate::chain::Gwei;
    use crate::config::alerts::AlertsConfig;

    const T0: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + secs)
    }

    fn tracker(groups: &[(&str, std::ops::Range<u64>)]) -> Tracker {
        let groups: Vec<(String, Vec<ValidatorIndex>)> = groups
            .iter()
            .map(|(n, r)| (n.to_string(), r.clone().map(ValidatorIndex).collect()))
            .collect();
        Tracker::new(AlertsConfig::default().rules, &groups)
    }

    #[test]
    fn double_signing_is_critical_and_reported_once_per_validator_kind_and_epoch() {
        use crate::analysis::doublesign::DoubleSignKind as K;
        let ev = |v: u64, kind: K, epoch: u64| DoubleSignEvidence {
            validator_index: ValidatorIndex(v),
            kind,
            epoch: Epoch(epoch),
            slot: Slot(epoch * 32 + 1),
            detail: "d".into(),
        };
        let mut t = tracker(&[("a", 0..10), ("b", 10..20)]);
        let first = t.apply_double_sign(&[
            ev(1, K::DoubleVote, 5),
            ev(1, K::DoubleVote, 5), // the same evidence twice in one batch
            ev(1, K::DoubleVote, 6), // another epoch
            ev(1, K::AttesterSlashing, 5), // another kind
            ev(12, K::DoubleProposal, 5),
            ev(99, K::DoubleVote, 5), // in no group
        ]);
        let keys: Vec<&str> = first.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "double_signing/a/5/double_vote/1",
                "double_signing/a/6/double_vote/1",
                "double_signing/a/5/attester_slashing/1",
                "double_signing/b/5/double_proposal/12",
            ]
        );
        for (_, f) in &first {
            assert_eq!(f.rule, Rule::DoubleSigning);
            assert!(f.rule.is_event());
            assert_eq!(f.rule.severity(), super::super::Severity::Critical);
        }
        assert_eq!(first[3].1.subject, "b");
        assert_eq!(first[3].1.validators, BTreeSet::from([12]));
        // Seen again on a later round: nothing new.
        assert!(t.apply_double_sign(&[ev(1, K::DoubleVote, 5)]).is_empty());
    }

    fn vote(v: u64, epoch: u64, status: AttestationStatus) -> AttestationVerdict {
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

    fn record(epoch: u64, is_final: bool, votes: Vec<AttestationVerdict>) -> EpochRecord {
        EpochRecord {
            epoch: Epoch(epoch),
            is_final,
            attestations: votes,
            ..EpochRecord::default()
        }
    }

    fn all(
        validators: std::ops::Range<u64>,
        epoch: u64,
        s: AttestationStatus,
    ) -> Vec<AttestationVerdict> {
        validators.map(|v| vote(v, epoch, s)).collect()
    }

    fn down(t: &Tracker) -> Vec<(String, Vec<u64>)> {
        t.findings(Scope::Validators, at(0))
            .into_iter()
            .filter(|f| f.rule == Rule::ValidatorDown)
            .map(|f| (f.subject, f.validators.into_iter().collect()))
            .collect()
    }

    fn network(epoch: u64, included: u64, duties: u64) -> NetworkRecord {
        NetworkRecord {
            epoch: Epoch(epoch),
            duties,
            included,
            empty_slots: 0,
            slots: 32,
        }
    }

    /// Issue 14: a group that stays 5 points below the network for 8 final
    /// epochs is `underperforming`; one that follows the network down is
    /// not, and its down validators are told as network-wide; validators
    /// down are `validator_down`'s news, never counted against the group.
    #[test]
    fn underperforming_is_judged_against_the_network() {
        use AttestationStatus::{Included, Missed};
        // Group g: validators 0..10, one different validator misses each
        // epoch (nobody misses twice in a row: nobody is down), 90 %.
        let rotating = |e: u64| -> Vec<AttestationVerdict> {
            (0..10)
                .map(|v| vote(v, e, if v == e % 10 { Missed } else { Included }))
                .collect()
        };
        let cases: &[(&str, u64, usize, bool)] = &[
            ("network at 99 %, 8 epochs: underperforming", 990, 8, true),
            ("network at 99 %, 7 epochs: not yet", 990, 7, false),
            ("network at 93 %: within the margin", 930, 8, false),
            ("network at 60 %: the group is above it", 600, 8, false),
        ];
        for (name, included, epochs, want) in cases {
            let mut t = tracker(&[("g", 0..10)]);
            for e in 100..100 + *epochs as u64 {
                let rec = record(e, true, rotating(e));
                t.apply_epoch(&rec, &EarlyInputs::default());
                t.apply_network(&rec, &network(e, *included, 1000));
            }
            let found: Vec<Finding> = t
                .findings(Scope::Validators, at(0))
                .into_iter()
                .filter(|f| f.rule == Rule::Underperforming)
                .collect();
            assert_eq!(!found.is_empty(), *want, "{name}: {found:?}");
            if *want {
                assert_eq!(found[0].subject, "g");
                assert!(found[0].summary.contains("90.0 %"), "{}", found[0].summary);
                assert!(found[0].summary.contains("99.0 %"), "{}", found[0].summary);
            }
        }

        // A group entirely down: validator_down, not underperforming too.
        let mut t = tracker(&[("g", 0..10)]);
        for e in 100..110 {
            let rec = record(e, true, all(0..10, e, Missed));
            t.apply_epoch(&rec, &EarlyInputs::default());
            t.apply_network(&rec, &network(e, 990, 1000));
        }
        let rules: Vec<Rule> = t
            .findings(Scope::Validators, at(0))
            .into_iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(rules, vec![Rule::ValidatorDown]);

        // The network fell with the group: the page says so.
        let mut t = tracker(&[("g", 0..10)]);
        for e in 100..103 {
            let rec = record(e, true, all(0..10, e, Missed));
            t.apply_epoch(&rec, &EarlyInputs::default());
            t.apply_network(&rec, &network(e, 30, 1000));
        }
        let down = t
            .findings(Scope::Validators, at(0))
            .into_iter()
            .find(|f| f.rule == Rule::ValidatorDown)
            .unwrap();
        assert!(
            down.summary
                .contains("network-wide: network participation 3 %"),
            "{}",
            down.summary
        );
    }

    #[test]
    fn validator_down_needs_consecutive_final_misses() {
        use AttestationStatus::*;
        // (statuses of epochs 10, 11, 12 for validator 1) -> down after the last
        let cases: &[(&[AttestationStatus], bool)] = &[
            (&[Missed], false),
            (&[Missed, Missed], true),
            (&[Missed, Included, Missed], false),
            (&[Missed, Unknown, Missed], true),
            (&[Missed, Missed, Included], false),
            (&[Missed, Missed, Inactive], false),
            (&[Pending, Pending], false),
        ];
        for (statuses, want) in cases {
            let mut t = tracker(&[("g", 1..2)]);
            for (i, s) in statuses.iter().enumerate() {
                t.apply_epoch(
                    &record(10 + i as u64, true, vec![vote(1, 10 + i as u64, *s)]),
                    &EarlyInputs::default(),
                );
            }
            assert_eq!(!down(&t).is_empty(), *want, "{statuses:?}");
        }
    }

    #[test]
    fn early_evidence_needs_three_blocks_and_no_live_answer() {
        // duty slot is 32*10+5 = 325
        let slots = |n: u64| (326..326 + n).map(Slot).collect::<Vec<_>>();
        let live_true: HashMap<ValidatorIndex, bool> = [(ValidatorIndex(1), true)].into();
        let live_false: HashMap<ValidatorIndex, bool> = [(ValidatorIndex(1), false)].into();
        let cases: &[(u64, Option<&HashMap<ValidatorIndex, bool>>, bool)] = &[
            (3, None, true),
            (2, None, false),
            (3, Some(&live_false), true),
            (3, Some(&live_true), false),
            (10, Some(&live_true), false),
        ];
        for (blocks, liveness, want) in cases {
            let mut t = tracker(&[("g", 1..2)]);
            let s = slots(*blocks);
            let early = EarlyInputs {
                block_slots: &s,
                liveness: *liveness,
            };
            t.apply_epoch(
                &record(10, false, vec![vote(1, 10, AttestationStatus::Pending)]),
                &early,
            );
            assert_eq!(!down(&t).is_empty(), *want, "{blocks} blocks, {liveness:?}");
        }
    }

    #[test]
    fn a_final_verdict_contradicting_the_early_warning_resolves_and_says_so() {
        let mut t = tracker(&[("g", 1..2)]);
        let s: Vec<Slot> = (326..330).map(Slot).collect();
        let early = EarlyInputs {
            block_slots: &s,
            liveness: None,
        };
        t.apply_epoch(
            &record(10, false, vec![vote(1, 10, AttestationStatus::Pending)]),
            &early,
        );
        assert_eq!(down(&t).len(), 1);
        t.apply_epoch(
            &record(10, true, vec![vote(1, 10, AttestationStatus::Included)]),
            &EarlyInputs::default(),
        );
        assert!(down(&t).is_empty());
        let note = t.resolution_note(Rule::ValidatorDown, &[1]);
        assert!(note.contains("contradicts the early warning"), "{note}");
        // A confirmed early warning stays down through its final miss.
        let mut t = tracker(&[("g", 1..2)]);
        t.apply_epoch(
            &record(10, false, vec![vote(1, 10, AttestationStatus::Pending)]),
            &early,
        );
        t.apply_epoch(
            &record(10, true, vec![vote(1, 10, AttestationStatus::Missed)]),
            &EarlyInputs::default(),
        );
        assert_eq!(down(&t).len(), 1);
        t.apply_epoch(
            &record(11, true, vec![vote(1, 11, AttestationStatus::Included)]),
            &EarlyInputs::default(),
        );
        assert_eq!(
            t.resolution_note(Rule::ValidatorDown, &[1]),
            "the validators attest again"
        );
    }

    #[test]
    fn a_group_going_down_together_is_one_finding_per_group() {
        let mut t = tracker(&[("a", 0..100), ("b", 100..110)]);
        for e in [10, 11] {
            let mut votes = all(0..100, e, AttestationStatus::Missed);
            votes.extend(all(100..103, e, AttestationStatus::Missed));
            votes.extend(all(103..110, e, AttestationStatus::Included));
            t.apply_epoch(&record(e, true, votes), &EarlyInputs::default());
        }
        let got = down(&t);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "a");
        assert_eq!(got[0].1.len(), 100);
        assert_eq!(got[1], ("b".to_string(), vec![100, 101, 102]));
    }

    fn incident(rule: Rule, subject: &str, validators: &[u64]) -> IncidentRecord {
        IncidentRecord {
            id: format!("{}/{subject}/1", rule.as_str()),
            rule: rule.as_str().into(),
            subject: subject.into(),
            severity: "critical".into(),
            is_event: false,
            validators: validators.to_vec(),
            epoch: Some(1),
            summary: "s".into(),
            opened_at: at(0),
            last_notified_at: at(0),
            resolved_at: None,
            resolution: None,
            progress: "{}".into(),
        }
    }

    fn finding(rule: Rule, subject: &str, validators: &[u64]) -> Finding {
        Finding {
            rule,
            subject: subject.into(),
            validators: validators.iter().copied().collect(),
            epoch: Some(1),
            summary: "s".into(),
        }
    }

    #[test]
    fn reconcile_opens_live_grows_live_and_resolves_always() {
        let note = |_: Rule, _: &[u64]| "over".to_string();
        let down = Rule::ValidatorDown;
        let kinds = |d: &[Decision]| -> Vec<&'static str> {
            d.iter()
                .map(|d| match d {
                    Decision::Open(_) => "open",
                    Decision::Grow { .. } => "grow",
                    Decision::Refresh { .. } => "refresh",
                    Decision::Resolve { .. } => "resolve",
                    Decision::Remind { .. } => "remind",
                    Decision::Event(_) => "event",
                })
                .collect()
        };
        // (open, findings, live) -> decisions
        let cases: Vec<(Vec<IncidentRecord>, Vec<Finding>, bool, Vec<&str>)> = vec![
            (vec![], vec![finding(down, "g", &[1])], true, vec!["open"]),
            (vec![], vec![finding(down, "g", &[1])], false, vec![]),
            (
                vec![incident(down, "g", &[1])],
                vec![finding(down, "g", &[1])],
                true,
                vec![],
            ),
            (
                vec![incident(down, "g", &[1])],
                vec![finding(down, "g", &[1, 2])],
                true,
                vec!["grow"],
            ),
            (
                vec![incident(down, "g", &[1])],
                vec![finding(down, "g", &[1, 2])],
                false,
                vec!["refresh"],
            ),
            (
                vec![incident(down, "g", &[1, 2])],
                vec![finding(down, "g", &[1])],
                true,
                vec!["refresh"],
            ),
            (
                vec![incident(down, "g", &[1])],
                vec![],
                true,
                vec!["resolve"],
            ),
            (
                vec![incident(down, "g", &[1])],
                vec![],
                false,
                vec!["resolve"],
            ),
            // Another scope's incident is not judged by these findings.
            (
                vec![incident(Rule::NodeDown, "n1", &[])],
                vec![],
                true,
                vec![],
            ),
            (
                vec![],
                vec![finding(Rule::ProposalMissed, "g", &[1])],
                true,
                vec!["event"],
            ),
            (
                vec![],
                vec![finding(Rule::ProposalMissed, "g", &[1])],
                false,
                vec![],
            ),
        ];
        for (open, findings, live, want) in cases {
            let got = reconcile(&open, &findings, Scope::Validators, live, &note);
            assert_eq!(
                kinds(&got),
                want,
                "open {open:?} findings {findings:?} live {live}"
            );
        }
    }

    #[test]
    fn reminders_are_due_after_the_interval_only() {
        let open = vec![incident(Rule::ValidatorDown, "g", &[1])];
        let hour = Duration::from_secs(3600);
        assert!(reminders_due(&open, hour, at(3599)).is_empty());
        assert_eq!(reminders_due(&open, hour, at(3600)).len(), 1);
    }

    #[test]
    fn a_down_validator_is_not_also_reported_for_its_falling_balance() {
        let mut t = tracker(&[("g", 1..3)]);
        for e in 10..15u64 {
            let mut rec = record(
                e,
                true,
                vec![
                    vote(1, e, AttestationStatus::Missed),
                    vote(2, e, AttestationStatus::Included),
                ],
            );
            rec.balances = [1, 2]
                .into_iter()
                .map(|v| BalanceRecord {
                    validator_index: ValidatorIndex(v),
                    epoch: Epoch(e),
                    balance: Gwei(32_000_000_000 - e),
                    effective_balance: Gwei(32_000_000_000),
                    status: ValidatorStatus::ActiveOngoing,
                    slashed: false,
                    balance_change: Some(-1),
                })
                .collect();
            t.apply_epoch(&rec, &EarlyInputs::default());
        }
        let f = t.findings(Scope::Validators, at(0));
        let rules: Vec<(Rule, Vec<u64>)> = f
            .into_iter()
            .map(|f| (f.rule, f.validators.into_iter().collect()))
            .collect();
        assert_eq!(
            rules,
            vec![
                (Rule::ValidatorDown, vec![1]),
                (Rule::BalanceFalling, vec![2])
            ]
        );
    }

    #[test]
    fn node_problems_fire_after_the_grace_and_all_down_is_blind() {
        let node = |name: &str, health: NodeHealth| NodeReport {
            name: name.into(),
            url: "http://x".into(),
            health,
            head_slot: None,
            last_error: None,
        };
        let mut t = tracker(&[("g", 1..2)]);
        let nodes = [
            node("a", NodeHealth::Unreachable),
            node("b", NodeHealth::Syncing),
        ];
        t.apply_nodes(&nodes, None, at(0));
        assert!(t.findings(Scope::Nodes, at(60)).is_empty());
        t.apply_nodes(&nodes, None, at(120));
        let rules: Vec<Rule> = t
            .findings(Scope::Nodes, at(120))
            .iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(
            rules,
            [Rule::NodeDown, Rule::NodeNotSynced, Rule::MonitorBlind]
        );
        t.apply_nodes(
            &[
                node("a", NodeHealth::Healthy),
                node("b", NodeHealth::Syncing),
            ],
            None,
            at(130),
        );
        let rules: Vec<Rule> = t
            .findings(Scope::Nodes, at(130))
            .iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(rules, [Rule::NodeNotSynced]);
    }

    #[test]
    fn finality_rules_tell_the_network_from_my_validators() {
        // (finalized, head) -> rules
        let cases: &[(u64, u64, &[Rule])] = &[
            (98, 100, &[]),
            (96, 100, &[]),
            (95, 100, &[Rule::NoFinality]),
            (94, 100, &[Rule::NoFinality, Rule::InactivityLeak]),
        ];
        for (fin, head, want) in cases {
            let mut t = tracker(&[("g", 1..2)]);
            t.apply_chain(Epoch(*fin), Epoch(*head), Epoch(*head));
            let got: Vec<Rule> = t
                .findings(Scope::Chain, at(0))
                .iter()
                .map(|f| f.rule)
                .collect();
            assert_eq!(&got, want, "finalized {fin} head {head}");
            assert!(t
                .findings(Scope::Chain, at(0))
                .iter()
                .all(|f| f.subject == "network"));
        }
    }

    #[test]
    fn no_finality_does_not_flap_while_the_head_state_waits_for_its_epoch_transition() {
        // Observed on the lodestar-devnet recording (finality_checkpoints of
        // the head state, polled every slot): slot 40, the first of epoch 5,
        // is empty, so until block 41 the head state is still in epoch 4
        // with finalized 0; block 41's epoch transition finalizes epoch 1
        // from votes already on chain. The same at slot 56 (epoch 7,
        // finalized 2 until the block). From epoch 8 on finality really
        // stops (32 of 64 attest) at 3, until epoch 14 finalizes 11.
        // (finalized, epoch of the head block, wall-clock epoch) -> fires
        let steps: &[(u64, u64, u64, bool)] = &[
            (0, 4, 4, false),
            (0, 4, 5, false), // slot 40 empty: the flap was here
            (1, 5, 5, false),
            (2, 6, 6, false),
            (2, 6, 7, false), // slot 56, before its block
            (3, 7, 7, false),
            (3, 7, 8, false),
            (3, 8, 8, true), // finality really stopped
            (3, 8, 9, true), // and a late first block does not resolve it
            (3, 9, 9, true),
            (11, 14, 14, false),
        ];
        let mut t = tracker(&[("g", 1..2)]);
        for (fin, head, wall, want) in steps {
            t.apply_chain(Epoch(*fin), Epoch(*head), Epoch(*wall));
            let fires = t
                .findings(Scope::Chain, at(0))
                .iter()
                .any(|f| f.rule == Rule::NoFinality);
            assert_eq!(
                fires, *want,
                "finalized {fin}, head block in epoch {head}, wall epoch {wall}"
            );
        }
    }

    #[test]
    fn a_chain_without_blocks_is_not_finalizing_either() {
        // No block for a long time: the head state never moves, the wall
        // clock does. (finalized, head block epoch, wall epoch) -> rules
        let cases: &[(u64, u64, u64, &[Rule])] = &[
            (10, 12, 13, &[]),
            (10, 12, 15, &[]),
            (10, 12, 16, &[Rule::NoFinality]),
            (10, 12, 17, &[Rule::NoFinality, Rule::InactivityLeak]),
            // A head "ahead" of the wall clock (skew) counts as the wall's.
            (10, 20, 14, &[]),
        ];
        for (fin, head, wall, want) in cases {
            let mut t = tracker(&[("g", 1..2)]);
            t.apply_chain(Epoch(*fin), Epoch(*head), Epoch(*wall));
            let got: Vec<Rule> = t
                .findings(Scope::Chain, at(0))
                .iter()
                .map(|f| f.rule)
                .collect();
            assert_eq!(&got, want, "finalized {fin} head {head} wall {wall}");
        }
    }

    fn early_inputs_for(epoch: u64) -> Vec<Slot> {
        // Three canonical blocks after the duty slot of `vote` (32e+5).
        (epoch * 32 + 6..epoch * 32 + 9).map(Slot).collect()
    }

    #[test]
    fn an_incident_carried_over_a_restart_is_not_resolved_by_an_older_good_vote() {
        // Seen in the simulator chain run: valwatch stopped with epoch 0
        // final and an incident open from early evidence about epoch 2;
        // the restarted tracker, fed the provisional record of epoch 1
        // (everybody still attested then), resolved the incident and the
        // next pass opened a new one: a resolved and a firing per channel.
        let mut t = tracker(&[("g", 1..2)]);
        t.assume_down(&[1], Some(2));
        assert_eq!(down(&t).len(), 1);
        t.apply_epoch(
            &record(1, false, vec![vote(1, 1, AttestationStatus::Included)]),
            &EarlyInputs::default(),
        );
        t.apply_epoch(
            &record(1, true, vec![vote(1, 1, AttestationStatus::Included)]),
            &EarlyInputs::default(),
        );
        assert_eq!(
            down(&t).len(),
            1,
            "an epoch before the incident says nothing"
        );
        // A vote of the incident's epoch or later does end it.
        t.apply_epoch(
            &record(3, false, vec![vote(1, 3, AttestationStatus::Included)]),
            &EarlyInputs::default(),
        );
        assert!(down(&t).is_empty());
        // Without the epoch (an incident stored without one) it stays down
        // until any good verdict.
        let mut t = tracker(&[("g", 1..2)]);
        t.assume_down(&[1], None);
        assert_eq!(down(&t).len(), 1);
    }

    #[test]
    fn a_validator_back_from_down_is_not_reported_for_what_it_missed_while_down() {
        // Seen in the simulator chain run: validators offline in epochs
        // 2-3 resolve on the provisional pass of epoch 4; the final record
        // of epoch 3, judged after that, showed their missed sync-committee
        // slots and opened sync_participation: a second incident for the
        // same cause, about the past. The balance penalties of the down
        // epochs (applied one epoch later) are the same news.
        let mut t = tracker(&[("g", 1..2)]);
        for e in [10, 11] {
            let s = early_inputs_for(e);
            t.apply_epoch(
                &record(e, false, vec![vote(1, e, AttestationStatus::Pending)]),
                &EarlyInputs {
                    block_slots: &s,
                    liveness: None,
                },
            );
        }
        assert_eq!(down(&t).len(), 1);
        t.apply_epoch(
            &record(12, false, vec![vote(1, 12, AttestationStatus::Included)]),
            &EarlyInputs::default(),
        );
        assert!(down(&t).is_empty());
        for (e, status) in [
            (10, AttestationStatus::Missed),
            (11, AttestationStatus::Missed),
            (12, AttestationStatus::Included),
        ] {
            let mut rec = record(e, true, vec![vote(1, e, status)]);
            rec.sync = vec![SyncVerdict {
                validator_index: ValidatorIndex(1),
                epoch: Epoch(e),
                participated: if e == 12 { 8 } else { 0 },
                missed: if e == 12 { 0 } else { 8 },
            }];
            rec.balances = vec![BalanceRecord {
                validator_index: ValidatorIndex(1),
                epoch: Epoch(e),
                balance: Gwei(32_000_000_000 - e),
                effective_balance: Gwei(32_000_000_000),
                status: ValidatorStatus::ActiveOngoing,
                slashed: false,
                balance_change: Some(-1),
            }];
            t.apply_epoch(&rec, &EarlyInputs::default());
            let rules: Vec<Rule> = t
                .findings(Scope::Validators, at(0))
                .iter()
                .map(|f| f.rule)
                .collect();
            assert!(rules.is_empty(), "after the final record of {e}: {rules:?}");
        }
        // Once back, its own failures count again.
        let mut rec = record(13, true, vec![vote(1, 13, AttestationStatus::Included)]);
        rec.sync = vec![SyncVerdict {
            validator_index: ValidatorIndex(1),
            epoch: Epoch(13),
            participated: 1,
            missed: 7,
        }];
        t.apply_epoch(&rec, &EarlyInputs::default());
        let rules: Vec<Rule> = t
            .findings(Scope::Validators, at(0))
            .iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(rules, [Rule::SyncParticipation]);
    }

    #[test]
    #[allow(clippy::type_complexity)] // a table of cases reads best inline
    fn every_head_stale_is_one_chain_stalled_finding_and_no_lagging_ones() {
        let node = |name: &str, health: NodeHealth, head: Option<u64>| NodeReport {
            name: name.into(),
            url: "http://x".into(),
            health,
            head_slot: head,
            last_error: None,
        };
        use NodeHealth::{Healthy, Lagging, Syncing, Unreachable};
        // (name, nodes, wall slot, rules found after the grace)
        let cases: Vec<(&str, Vec<NodeReport>, u64, Vec<Rule>)> = vec![
            (
                "fresh heads",
                vec![node("a", Healthy, Some(100)), node("b", Healthy, Some(99))],
                100,
                vec![],
            ),
            (
                "eight slots behind is still fresh",
                vec![node("a", Healthy, Some(92))],
                100,
                vec![],
            ),
            (
                "every head stale: one chain_stalled",
                vec![node("a", Lagging, Some(91)), node("b", Lagging, Some(90))],
                100,
                vec![Rule::ChainStalled],
            ),
            (
                "one fresh node: that other node lags",
                vec![node("a", Healthy, Some(100)), node("b", Lagging, Some(80))],
                100,
                vec![Rule::NodeLagging],
            ),
            (
                "stale heads and one down: the down one is its own news",
                vec![node("a", Lagging, Some(80)), node("b", Unreachable, None)],
                100,
                vec![Rule::NodeDown, Rule::ChainStalled],
            ),
            (
                "nodes 'syncing' on the stalled head are the stall, told once",
                vec![node("a", Syncing, Some(50)), node("b", Syncing, Some(50))],
                100,
                vec![Rule::ChainStalled],
            ),
            (
                "no head at all is blindness, not a stall",
                vec![node("a", Unreachable, None)],
                100,
                vec![Rule::NodeDown, Rule::MonitorBlind],
            ),
        ];
        for (name, nodes, wall, want) in cases {
            let mut t = tracker(&[("g", 1..2)]);
            t.apply_nodes(&nodes, Some(Slot(wall)), at(0));
            t.apply_nodes(&nodes, Some(Slot(wall)), at(600));
            let mut got: Vec<Rule> = t
                .findings(Scope::Nodes, at(600))
                .iter()
                .map(|f| f.rule)
                .collect();
            got.sort();
            let mut want = want;
            want.sort();
            assert_eq!(got, want, "{name}");
            assert_eq!(
                t.chain_stalled(),
                want.contains(&Rule::ChainStalled),
                "{name}"
            );
        }
    }
}
