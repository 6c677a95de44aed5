//! Prometheus metrics: an owned `Registry` (never the global one) and every
//! metric object valwatch exports.
//!
//! Owns: metric names, labels and the rules that keep label sets bounded
//! (per group and total always; per validator only while the watched set is
//! below a configured size). Must not: decide verdicts or states (those come
//! in as `EpochRecord`s and `Assessment`s), or do IO beyond rendering text.
//!
//! Names follow `valwatch_<what>_<unit>` with base units (`_seconds`,
//! `_gwei`, `_slots`, `_epochs`) and `_total` for counters. A test checks
//! that every name used in `dashboards/` and `alerts/` is rendered here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tracing::warn;

use crate::analysis::AttestationStatus;
use crate::beacon::{NodeHealth, NodeReport};
use crate::chain::{Epoch, ValidatorIndex, ValidatorStatus};
use crate::status::{node_usable, Assessment, Reason, State, StatusBoard};
use crate::store::EpochRecord;

/// Above this many watched validators, per-validator series stop and only
/// per-group and total series remain: a hundred validators times a dozen
/// series is what one Prometheus scrape handles without noticing, and
/// beyond that dashboards aggregate by group anyway.
pub const DEFAULT_PER_VALIDATOR_LIMIT: usize = 100;

/// Inclusion delay buckets in slots: 1 is perfect, 2–4 costs little, up to
/// 32 is the pre-Deneb window, 64 the EIP-7045 window of two epochs.
const INCLUSION_DELAY_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0, 32.0, 64.0];

/// Beacon API request latency buckets in seconds: local nodes answer in
/// milliseconds, providers in hundreds, a full block list of an epoch can
/// take seconds; 10 s is the default node timeout.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Epoch processing buckets in seconds: a small watched set takes well under
/// a second, a mainnet-scale one tens of seconds; an epoch lasts 384 s.
const PROCESSING_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 384.0,
];

/// The group label for validators no group lists (should not happen; kept
/// so that a count is never silently dropped).
pub const UNGROUPED: &str = "ungrouped";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metric {name}: {source}")]
    Register {
        name: &'static str,
        #[source]
        source: prometheus::Error,
    },
}

/// Every metric object, registered in one owned registry.
pub struct Metrics {
    registry: Registry,
    per_validator_limit: usize,
    per_validator: AtomicBool,
    /// The wall slot last seen (0: unknown), for node lag.
    wall_slot: AtomicU64,

    attestations: IntCounterVec,
    attestations_late: IntCounterVec,
    attestations_incorrect: IntCounterVec,
    inclusion_delay: HistogramVec,
    proposals: IntCounterVec,
    sync_slots: IntCounterVec,
    slashings: IntCounterVec,
    balance: IntGaugeVec,
    effective_balance: IntGaugeVec,
    balance_change: IntGaugeVec,
    validators_by_status: IntGaugeVec,
    validators_slashed: IntGaugeVec,
    validators_exited: IntGaugeVec,
    watched: IntGaugeVec,

    validator_attestations: IntCounterVec,
    validator_proposals: IntCounterVec,
    validator_sync_slots: IntCounterVec,
    validator_balance: IntGaugeVec,
    validator_effective_balance: IntGaugeVec,
    validator_consecutive_missed: IntGaugeVec,

    state: IntGauge,
    group_state: IntGaugeVec,
    validators_failing: IntGaugeVec,
    ready: IntGauge,
    blind: IntGauge,
    stalled: IntGauge,

    node_up: IntGaugeVec,
    node_healthy: IntGaugeVec,
    node_head_slot: IntGaugeVec,
    node_head_lag: IntGaugeVec,
    node_requests: IntCounterVec,
    node_request_errors: IntCounterVec,
    node_request_duration: HistogramVec,
    node_cross_checks: IntCounterVec,

    // Issue 14: rewards per group and the network baseline.
    rewards: IntGaugeVec,
    rewards_missed: IntCounterVec,
    network_duties: IntCounterVec,
    network_slots: IntCounterVec,

    head_slot: IntGauge,
    wall_slot_gauge: IntGauge,
    last_processed_epoch: IntGauge,
    last_provisional_epoch: IntGauge,
    processing_lag: IntGauge,
    epoch_duration: HistogramVec,
    epochs_processed: IntCounterVec,
    alert_deliveries: IntCounterVec,
    heartbeats: IntCounterVec,
    start_time: IntGauge,
    build_info: IntGaugeVec,

    // Key sources and labels (issue 13).
    source_up: IntGaugeVec,
    source_keys: IntGaugeVec,
    label_validators: IntGaugeVec,
    validator_label: IntGaugeVec,
}

/// Distinct labels with a `valwatch_label_validators` series at most: a
/// labels file with a unique label per key (a host name each, say) must not
/// turn into thousands of series; the per-validator info series carry
/// those, under the per-validator limit.
pub const MAX_LABEL_SERIES: usize = 100;

fn counter(
    reg: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    let m = IntCounterVec::new(Opts::new(name, help), labels)
        .map_err(|source| MetricsError::Register { name, source })?;
    reg.register(Box::new(m.clone()))
        .map_err(|source| MetricsError::Register { name, source })?;
    Ok(m)
}

fn gauge_vec(
    reg: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, MetricsError> {
    let m = IntGaugeVec::new(Opts::new(name, help), labels)
        .map_err(|source| MetricsError::Register { name, source })?;
    reg.register(Box::new(m.clone()))
        .map_err(|source| MetricsError::Register { name, source })?;
    Ok(m)
}

fn gauge(reg: &Registry, name: &'static str, help: &str) -> Result<IntGauge, MetricsError> {
    let m = IntGauge::with_opts(Opts::new(name, help))
        .map_err(|source| MetricsError::Register { name, source })?;
    reg.register(Box::new(m.clone()))
        .map_err(|source| MetricsError::Register { name, source })?;
    Ok(m)
}

fn histogram(
    reg: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<HistogramVec, MetricsError> {
    let m = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .map_err(|source| MetricsError::Register { name, source })?;
    reg.register(Box::new(m.clone()))
        .map_err(|source| MetricsError::Register { name, source })?;
    Ok(m)
}

// `with_label_values` panics on a wrong label count; these helpers turn that
// programming error into a log line instead of a crash of the daemon.
fn inc_by(v: &IntCounterVec, labels: &[&str], by: u64) {
    if by == 0 {
        // Still create the series so that rate() sees it start at zero.
        if let Err(e) = v.get_metric_with_label_values(labels) {
            warn!(error = %crate::causes(&e), "metric labels do not match");
        }
        return;
    }
    match v.get_metric_with_label_values(labels) {
        Ok(c) => c.inc_by(by),
        Err(e) => warn!(error = %crate::causes(&e), "metric labels do not match"),
    }
}

fn set(v: &IntGaugeVec, labels: &[&str], value: i64) {
    match v.get_metric_with_label_values(labels) {
        Ok(g) => g.set(value),
        Err(e) => warn!(error = %crate::causes(&e), "metric labels do not match"),
    }
}

fn observe(v: &HistogramVec, labels: &[&str], value: f64) {
    match v.get_metric_with_label_values(labels) {
        Ok(h) => h.observe(value),
        Err(e) => warn!(error = %crate::causes(&e), "metric labels do not match"),
    }
}

fn gwei_i64(g: u64) -> i64 {
    i64::try_from(g).unwrap_or(i64::MAX)
}

fn state_value(s: State) -> i64 {
    match s {
        State::Ok => 0,
        State::Degraded => 1,
        State::Failing => 2,
    }
}

fn is_exited(s: ValidatorStatus) -> bool {
    matches!(
        s,
        ValidatorStatus::ExitedUnslashed
            | ValidatorStatus::ExitedSlashed
            | ValidatorStatus::WithdrawalPossible
            | ValidatorStatus::WithdrawalDone
    )
}

/// Per group and kind, what one final epoch adds.
#[derive(Default)]
struct GroupTally {
    attestations: BTreeMap<&'static str, u64>,
    late: u64,
    wrong_source: u64,
    wrong_target: u64,
    wrong_head: u64,
    proposals: BTreeMap<&'static str, u64>,
    sync_participated: u64,
    sync_missed: u64,
    balance: i64,
    effective_balance: i64,
    balance_change: i64,
    slashed: i64,
    exited: i64,
    by_status: BTreeMap<&'static str, i64>,
}

impl Metrics {
    /// A fresh registry with every metric. `per_validator_limit`: see
    /// `DEFAULT_PER_VALIDATOR_LIMIT`.
    pub fn new(per_validator_limit: usize) -> Result<Metrics, MetricsError> {
        let r = Registry::new();
        let g = &["group"];
        let m = Metrics {
            per_validator_limit,
            per_validator: AtomicBool::new(false),
            wall_slot: AtomicU64::new(0),
            attestations: counter(&r, "valwatch_attestations_total",
                "Final attestation verdicts of watched validators, by group and status (included, missed, unknown).",
                &["group", "status"])?,
            attestations_late: counter(&r, "valwatch_attestations_late_total",
                "Included attestations that were not in the first canonical block after their slot.", g)?,
            attestations_incorrect: counter(&r, "valwatch_attestations_incorrect_total",
                "Included attestations with a wrong vote (source, target or head).", &["group", "vote"])?,
            inclusion_delay: histogram(&r, "valwatch_attestation_inclusion_delay_slots",
                "Inclusion delay of included attestations, in slots (1 is best).", g, INCLUSION_DELAY_BUCKETS)?,
            proposals: counter(&r, "valwatch_proposals_total",
                "Final proposal verdicts, by group and status (proposed, missed, orphaned, unknown).",
                &["group", "status"])?,
            sync_slots: counter(&r, "valwatch_sync_committee_slots_total",
                "Sync committee slots of watched members, by outcome (participated, missed).",
                &["group", "outcome"])?,
            slashings: counter(&r, "valwatch_slashings_total",
                "Slashings of watched validators found in canonical blocks, by kind.", &["group", "kind"])?,
            balance: gauge_vec(&r, "valwatch_balance_gwei",
                "Sum of the balances of a group's validators at the last final epoch.", g)?,
            effective_balance: gauge_vec(&r, "valwatch_effective_balance_gwei",
                "Sum of the effective balances of a group's validators at the last final epoch.", g)?,
            balance_change: gauge_vec(&r, "valwatch_balance_change_gwei",
                "Sum of the balance changes of a group's validators over the last final epoch (signed).", g)?,
            validators_by_status: gauge_vec(&r, "valwatch_validators",
                "Watched validators by registry status at the last final epoch.", &["group", "status"])?,
            validators_slashed: gauge_vec(&r, "valwatch_validators_slashed",
                "Watched validators marked slashed in the registry.", g)?,
            validators_exited: gauge_vec(&r, "valwatch_validators_exited",
                "Watched validators that have exited (exited or withdrawal status).", g)?,
            watched: gauge_vec(&r, "valwatch_watched_validators",
                "Validators watched, by group.", g)?,
            validator_attestations: counter(&r, "valwatch_validator_attestations_total",
                "Final attestation verdicts per validator (only while the watched set is small).",
                &["validator_index", "group", "status"])?,
            validator_proposals: counter(&r, "valwatch_validator_proposals_total",
                "Final proposal verdicts per validator (only while the watched set is small).",
                &["validator_index", "group", "status"])?,
            validator_sync_slots: counter(&r, "valwatch_validator_sync_committee_slots_total",
                "Sync committee slots per validator (only while the watched set is small).",
                &["validator_index", "group", "outcome"])?,
            validator_balance: gauge_vec(&r, "valwatch_validator_balance_gwei",
                "Balance per validator (only while the watched set is small).", &["validator_index", "group"])?,
            validator_effective_balance: gauge_vec(&r, "valwatch_validator_effective_balance_gwei",
                "Effective balance per validator (only while the watched set is small).",
                &["validator_index", "group"])?,
            validator_consecutive_missed: gauge_vec(&r, "valwatch_validator_consecutive_missed_attestations",
                "Consecutive missed final attestations per validator (only while the watched set is small).",
                &["validator_index", "group"])?,
            state: gauge(&r, "valwatch_state",
                "Overall state as /status reports it: 0 ok, 1 degraded, 2 failing.")?,
            group_state: gauge_vec(&r, "valwatch_group_state",
                "State of a group: 0 ok, 1 degraded, 2 failing.", g)?,
            validators_failing: gauge_vec(&r, "valwatch_validators_failing",
                "Watched, not expected-offline validators that are failing (missed in a row or slashed).", g)?,
            ready: gauge(&r, "valwatch_ready", "1 when /readyz answers 200.")?,
            blind: gauge(&r, "valwatch_blind", "1 when no beacon node is usable.")?,
            stalled: gauge(&r, "valwatch_stalled",
                "1 when no epoch was processed within the stall limit.")?,
            node_up: gauge_vec(&r, "valwatch_node_up",
                "1 when the beacon node answers (any health but unreachable/unknown/wrong network).", &["node"])?,
            node_healthy: gauge_vec(&r, "valwatch_node_healthy",
                "1 when the beacon node is usable by the pool (healthy or lagging).", &["node"])?,
            node_head_slot: gauge_vec(&r, "valwatch_node_head_slot",
                "Head slot the beacon node reported.", &["node"])?,
            node_head_lag: gauge_vec(&r, "valwatch_node_head_lag_slots",
                "Wall-clock slot minus the node's head slot.", &["node"])?,
            node_requests: counter(&r, "valwatch_node_requests_total",
                "Beacon API requests sent, by node and route template.", &["node", "endpoint"])?,
            node_request_errors: counter(&r, "valwatch_node_request_errors_total",
                "Beacon API requests that failed, by node, route template and error kind.",
                &["node", "endpoint", "kind"])?,
            node_request_duration: histogram(&r, "valwatch_node_request_duration_seconds",
                "Beacon API request latency by node.", &["node"], REQUEST_BUCKETS)?,
            node_cross_checks: counter(&r, "valwatch_node_cross_checks_total",
                "Per final epoch, whether the node's canonical block root agreed with valwatch's chain (agrees, disagrees, unanswered).",
                &["node", "outcome"])?,
            rewards: gauge_vec(&r, "valwatch_rewards_gwei",
                "Sum of what a group's validators earned in the last final epoch whose rewards the node served, by kind (attestation, sync, proposer; signed: penalties are negative).",
                &["group", "kind"])?,
            rewards_missed: counter(&r, "valwatch_rewards_missed_gwei_total",
                "Rewards a group's validators missed against an ideal validator (ideal minus actual attestation reward, plus estimated missed proposals), summed over final epochs.",
                g)?,
            network_duties: counter(&r, "valwatch_network_attestation_duties_total",
                "Attestation duties of the whole network in final epochs, by outcome (included, missed), counted from canonical blocks.",
                &["outcome"])?,
            network_slots: counter(&r, "valwatch_network_slots_total",
                "Slots of final epochs, by outcome (proposed, empty).",
                &["outcome"])?,
            head_slot: gauge(&r, "valwatch_head_slot", "Head slot valwatch follows.")?,
            wall_slot_gauge: gauge(&r, "valwatch_wall_slot", "Slot of the wall clock.")?,
            last_processed_epoch: gauge(&r, "valwatch_last_processed_epoch",
                "Newest epoch judged for good (final verdicts).")?,
            last_provisional_epoch: gauge(&r, "valwatch_last_provisional_epoch",
                "Newest epoch looked at provisionally.")?,
            processing_lag: gauge(&r, "valwatch_processing_lag_epochs",
                "Wall-clock epoch minus the next epoch to judge for good (1-2 when keeping up).")?,
            epoch_duration: histogram(&r, "valwatch_epoch_processing_duration_seconds",
                "Time to fetch, judge and store one epoch, by pass (final, provisional).",
                &["pass"], PROCESSING_BUCKETS)?,
            epochs_processed: counter(&r, "valwatch_epochs_processed_total",
                "Epochs processed, by pass (final, provisional).", &["pass"])?,
            alert_deliveries: counter(&r, "valwatch_alert_deliveries_total",
                "Alert delivery attempts by channel and outcome (sent, retry, abandoned).", &["channel", "outcome"])?,
            heartbeats: counter(&r, "valwatch_heartbeats_total",
                "Heartbeat calls to the dead-man's switch, by outcome (sent, failed, skipped).", &["outcome"])?,
            start_time: gauge(&r, "valwatch_start_time_seconds",
                "Unix time the process started.")?,
            build_info: gauge_vec(&r, "valwatch_build_info",
                "Always 1; the version label names the build.", &["version"])?,
            source_up: gauge_vec(&r, "valwatch_source_up",
                "1 when the key source's last listing succeeded (its last known keys are watched either way).", &["source"])?,
            source_keys: gauge_vec(&r, "valwatch_source_keys",
                "Keys the key source listed last.", &["source"])?,
            label_validators: gauge_vec(&r, "valwatch_label_validators",
                "Watched validators carrying each label of the labels file (at most MAX_LABEL_SERIES labels).", &["label"])?,
            validator_label: gauge_vec(&r, "valwatch_validator_label_info",
                "1 for each label of a watched validator; only below the per-validator limit.", &["validator", "label"])?,
            registry: r,
        };
        set(&m.build_info, &[env!("CARGO_PKG_VERSION")], 1);
        // The network series are born at zero (one label set each, no
        // per-group cardinality), so rate() and the dashboards see them
        // from the first scrape.
        for o in ["included", "missed"] {
            inc_by(&m.network_duties, &[o], 0);
        }
        for o in ["proposed", "empty"] {
            inc_by(&m.network_slots, &[o], 0);
        }
        Ok(m)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn per_validator(&self) -> bool {
        self.per_validator.load(Ordering::Relaxed)
    }

    pub fn set_start_time(&self, unix_seconds: u64) {
        self.start_time
            .set(i64::try_from(unix_seconds).unwrap_or(i64::MAX));
    }

    /// The key sources' state (issue 13).
    pub fn observe_sources(&self, sources: &[crate::sources::SourceStatus]) {
        for src in sources {
            set(&self.source_up, &[&src.name], i64::from(src.up));
            set(
                &self.source_keys,
                &[&src.name],
                i64::try_from(src.keys).unwrap_or(i64::MAX),
            );
        }
    }

    /// The watched validators' labels: a count per label (the first
    /// `MAX_LABEL_SERIES` labels by name) and, below the per-validator
    /// limit, one info series per validator and label. Call after
    /// `set_watched`, which decides that limit.
    pub fn set_labels(&self, labels: &BTreeMap<ValidatorIndex, Vec<String>>) {
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for list in labels.values() {
            for l in list {
                *counts.entry(l.as_str()).or_default() += 1;
            }
        }
        self.label_validators.reset();
        for (label, n) in counts.iter().take(MAX_LABEL_SERIES) {
            set(&self.label_validators, &[label], *n);
        }
        self.validator_label.reset();
        if self.per_validator() {
            for (v, list) in labels {
                let v = v.0.to_string();
                for l in list {
                    set(&self.validator_label, &[&v, l], 1);
                }
            }
        }
    }

    /// Tells how many validators each group watches; decides whether
    /// per-validator series are kept (dropping them when the set grew).
    pub fn set_watched(&self, counts: &BTreeMap<String, usize>) {
        self.watched.reset();
        for (group, n) in counts {
            set(
                &self.watched,
                &[group],
                i64::try_from(*n).unwrap_or(i64::MAX),
            );
        }
        // Series exist from zero for every group, so that `increase()` in
        // alert rules sees the first miss (a counter born at 1 has no
        // earlier sample to increase from).
        for group in counts.keys() {
            for status in ["included", "missed", "unknown"] {
                inc_by(&self.attestations, &[group, status], 0);
            }
            for status in ["proposed", "missed", "orphaned", "unknown"] {
                inc_by(&self.proposals, &[group, status], 0);
            }
            for outcome in ["participated", "missed"] {
                inc_by(&self.sync_slots, &[group, outcome], 0);
            }
            for kind in ["proposer", "attester"] {
                inc_by(&self.slashings, &[group, kind], 0);
            }
            inc_by(&self.attestations_late, &[group], 0);
            for vote in ["source", "target", "head"] {
                inc_by(&self.attestations_incorrect, &[group, vote], 0);
            }
        }
        let total: usize = counts.values().sum();
        let keep = total < self.per_validator_limit;
        if !keep {
            self.validator_attestations.reset();
            self.validator_proposals.reset();
            self.validator_sync_slots.reset();
            self.validator_balance.reset();
            self.validator_effective_balance.reset();
            self.validator_consecutive_missed.reset();
        }
        self.per_validator.store(keep, Ordering::Relaxed);
    }

    /// Counts one epoch's verdicts. Counters move only for final records:
    /// the provisional pass of the same epoch comes first and would count
    /// it twice. Gauges also follow final records only, so that they never
    /// step back when a final older epoch arrives after a provisional newer
    /// one.
    /// Issue 14: the rewards rows and network baseline of one final epoch.
    /// A kind whose rewards no row knows keeps its last value (unknown is
    /// not 0); missed rewards below 0 (a validator above the ideal) add 0.
    pub fn observe_rewards(
        &self,
        rows: &[crate::analysis::rewards::RewardRecord],
        network: Option<&crate::analysis::network::NetworkRecord>,
        group_of: &dyn Fn(ValidatorIndex) -> String,
    ) {
        let mut sums: BTreeMap<(String, &'static str), i64> = BTreeMap::new();
        let mut missed: BTreeMap<String, u64> = BTreeMap::new();
        for r in rows {
            let mut g = group_of(r.validator_index);
            if g.is_empty() {
                g = UNGROUPED.to_string();
            }
            for (kind, v) in [
                ("attestation", r.attestation_reward_gwei),
                ("sync", r.sync_reward_gwei),
                ("proposer", r.proposer_reward_gwei),
            ] {
                if let Some(v) = v {
                    let e = sums.entry((g.clone(), kind)).or_default();
                    *e = e.saturating_add(v);
                }
            }
            if let Some(m) = r.missed_gwei {
                let e = missed.entry(g).or_default();
                *e = e.saturating_add(u64::try_from(m).unwrap_or(0));
            }
        }
        for ((g, kind), v) in &sums {
            set(&self.rewards, &[g, kind], *v);
        }
        for (g, m) in &missed {
            inc_by(&self.rewards_missed, &[g], *m);
        }
        if let Some(n) = network {
            inc_by(&self.network_duties, &["included"], n.included);
            inc_by(
                &self.network_duties,
                &["missed"],
                n.duties.saturating_sub(n.included),
            );
            inc_by(&self.network_slots, &["empty"], n.empty_slots);
            inc_by(
                &self.network_slots,
                &["proposed"],
                n.slots.saturating_sub(n.empty_slots),
            );
        }
    }

    pub fn observe_epoch(&self, rec: &EpochRecord, group_of: &dyn Fn(ValidatorIndex) -> String) {
        if !rec.is_final {
            set_epoch(&self.last_provisional_epoch, rec.epoch);
            return;
        }
        set_epoch(&self.last_processed_epoch, rec.epoch);
        for c in &rec.cross_checks {
            let outcome = if c.error.is_some() {
                "unanswered"
            } else if c.agrees {
                "agrees"
            } else {
                "disagrees"
            };
            // Born at zero for each outcome, so the first disagreement is
            // an increase().
            for o in ["agrees", "disagrees", "unanswered"] {
                inc_by(
                    &self.node_cross_checks,
                    &[&c.node, o],
                    u64::from(o == outcome),
                );
            }
        }
        let per_validator = self.per_validator();
        let mut groups: BTreeMap<String, GroupTally> = BTreeMap::new();
        for a in &rec.attestations {
            let status = match a.status {
                AttestationStatus::Included => "included",
                AttestationStatus::Missed => "missed",
                AttestationStatus::Unknown => "unknown",
                // No duty, or never final: nothing to count.
                AttestationStatus::Inactive | AttestationStatus::Pending => continue,
            };
            let (g, t) = tally(&mut groups, group_of, a.validator_index);
            *t.attestations.entry(status).or_default() += 1;
            if a.status == AttestationStatus::Included {
                t.late += u64::from(a.late == Some(true));
                t.wrong_source += u64::from(a.source_correct == Some(false));
                t.wrong_target += u64::from(a.target_correct == Some(false));
                t.wrong_head += u64::from(a.head_correct == Some(false));
                if let Some(d) = a.inclusion_delay {
                    observe(&self.inclusion_delay, &[&g], d as f64);
                }
            }
            if per_validator {
                inc_by(
                    &self.validator_attestations,
                    &[&a.validator_index.0.to_string(), &g, status],
                    1,
                );
            }
        }
        for p in &rec.proposals {
            let Some(v) = p.validator_index else { continue };
            let status = p.status.as_str();
            let (g, t) = tally(&mut groups, group_of, v);
            *t.proposals.entry(status).or_default() += 1;
            if per_validator {
                inc_by(
                    &self.validator_proposals,
                    &[&v.0.to_string(), &g, status],
                    1,
                );
            }
        }
        for s in &rec.sync {
            let (g, t) = tally(&mut groups, group_of, s.validator_index);
            t.sync_participated += u64::from(s.participated);
            t.sync_missed += u64::from(s.missed);
            if per_validator {
                let v = s.validator_index.0.to_string();
                inc_by(
                    &self.validator_sync_slots,
                    &[&v, &g, "participated"],
                    u64::from(s.participated),
                );
                inc_by(
                    &self.validator_sync_slots,
                    &[&v, &g, "missed"],
                    u64::from(s.missed),
                );
            }
        }
        for s in &rec.slashings {
            let (g, _) = tally(&mut groups, group_of, s.validator_index);
            inc_by(&self.slashings, &[&g, s.kind.as_str()], 1);
        }
        let have_balances = !rec.balances.is_empty();
        for b in &rec.balances {
            let (g, t) = tally(&mut groups, group_of, b.validator_index);
            t.balance = t.balance.saturating_add(gwei_i64(b.balance.0));
            t.effective_balance = t
                .effective_balance
                .saturating_add(gwei_i64(b.effective_balance.0));
            t.balance_change = t
                .balance_change
                .saturating_add(b.balance_change.unwrap_or(0));
            t.slashed += i64::from(b.slashed);
            t.exited += i64::from(is_exited(b.status));
            *t.by_status.entry(b.status.as_str()).or_default() += 1;
            if per_validator {
                let v = b.validator_index.0.to_string();
                set(&self.validator_balance, &[&v, &g], gwei_i64(b.balance.0));
                set(
                    &self.validator_effective_balance,
                    &[&v, &g],
                    gwei_i64(b.effective_balance.0),
                );
            }
        }
        if have_balances {
            // A status no validator has any more must drop to zero, not
            // keep its old count.
            self.validators_by_status.reset();
        }
        for (g, t) in &groups {
            for (status, n) in &t.attestations {
                inc_by(&self.attestations, &[g, status], *n);
            }
            inc_by(&self.attestations_late, &[g], t.late);
            inc_by(&self.attestations_incorrect, &[g, "source"], t.wrong_source);
            inc_by(&self.attestations_incorrect, &[g, "target"], t.wrong_target);
            inc_by(&self.attestations_incorrect, &[g, "head"], t.wrong_head);
            for (status, n) in &t.proposals {
                inc_by(&self.proposals, &[g, status], *n);
            }
            if t.sync_participated + t.sync_missed > 0 {
                inc_by(&self.sync_slots, &[g, "participated"], t.sync_participated);
                inc_by(&self.sync_slots, &[g, "missed"], t.sync_missed);
            }
            if have_balances && !t.by_status.is_empty() {
                set(&self.balance, &[g], t.balance);
                set(&self.effective_balance, &[g], t.effective_balance);
                set(&self.balance_change, &[g], t.balance_change);
                set(&self.validators_slashed, &[g], t.slashed);
                set(&self.validators_exited, &[g], t.exited);
                for (status, n) in &t.by_status {
                    set(&self.validators_by_status, &[g, status], *n);
                }
            }
        }
        inc_by(&self.epochs_processed, &["final"], 0);
    }

    /// Records how long processing one epoch took (the monitor measures it).
    pub fn observe_epoch_duration(&self, is_final: bool, elapsed: Duration) {
        let pass = if is_final { "final" } else { "provisional" };
        observe(&self.epoch_duration, &[pass], elapsed.as_secs_f64());
        inc_by(&self.epochs_processed, &[pass], 1);
    }

    /// The wall clock and how many epochs the final verdicts trail it.
    /// Called every round before any node is asked, so that the lag keeps
    /// growing while no node answers (`ValwatchFallingBehind` must be able
    /// to fire during an outage).
    pub fn observe_clock(&self, wall_slot: u64, processing_lag_epochs: u64) {
        self.wall_slot_gauge
            .set(i64::try_from(wall_slot).unwrap_or(i64::MAX));
        self.wall_slot.store(wall_slot, Ordering::Relaxed);
        self.processing_lag
            .set(i64::try_from(processing_lag_epochs).unwrap_or(i64::MAX));
    }

    /// The head the monitor follows.
    pub fn observe_head(&self, head_slot: u64) {
        self.head_slot
            .set(i64::try_from(head_slot).unwrap_or(i64::MAX));
    }

    /// Replaces the per-node gauges (a node removed from the config
    /// disappears). Lag is against the wall clock when known, else against
    /// the best head among the nodes.
    pub fn observe_nodes(&self, nodes: &[NodeReport]) {
        self.node_up.reset();
        self.node_healthy.reset();
        self.node_head_slot.reset();
        self.node_head_lag.reset();
        let wall = self.wall_slot.load(Ordering::Relaxed);
        let reference = if wall > 0 {
            wall
        } else {
            nodes.iter().filter_map(|n| n.head_slot).max().unwrap_or(0)
        };
        for n in nodes {
            let up = !matches!(
                n.health,
                NodeHealth::Unreachable | NodeHealth::Unknown | NodeHealth::WrongNetwork
            );
            set(&self.node_up, &[&n.name], i64::from(up));
            set(
                &self.node_healthy,
                &[&n.name],
                i64::from(node_usable(&n.health)),
            );
            if let Some(h) = n.head_slot {
                set(
                    &self.node_head_slot,
                    &[&n.name],
                    i64::try_from(h).unwrap_or(i64::MAX),
                );
                let lag = reference.saturating_sub(h);
                set(
                    &self.node_head_lag,
                    &[&n.name],
                    i64::try_from(lag).unwrap_or(i64::MAX),
                );
            }
        }
    }

    /// For the pool: one Beacon API request. `endpoint` is the route
    /// template (bounded), `error_kind` a short fixed word (`timeout`,
    /// `transport`, `status`, `decode`, `rate_limited`) when it failed.
    pub fn record_node_request(
        &self,
        node: &str,
        endpoint: &str,
        elapsed: Duration,
        error_kind: Option<&str>,
    ) {
        inc_by(&self.node_requests, &[node, endpoint], 1);
        observe(&self.node_request_duration, &[node], elapsed.as_secs_f64());
        if let Some(kind) = error_kind {
            inc_by(&self.node_request_errors, &[node, endpoint, kind], 1);
        }
    }

    /// Creates the heartbeat counters at zero (a heartbeat is configured).
    pub fn declare_heartbeats(&self) {
        for outcome in ["sent", "failed", "skipped"] {
            inc_by(&self.heartbeats, &[outcome], 0);
        }
    }

    /// One heartbeat: `sent`, `failed` or `skipped` (the previous one was
    /// still in flight).
    pub fn record_heartbeat(&self, outcome: &str) {
        inc_by(&self.heartbeats, &[outcome], 1);
    }

    /// Creates the delivery counters of every configured channel at zero,
    /// so that `increase()` sees the first failure (a counter born at 1 has
    /// no earlier sample to compare with).
    pub fn declare_alert_channels(&self, channels: &[String]) {
        for c in channels {
            for outcome in ["sent", "retry", "abandoned"] {
                inc_by(&self.alert_deliveries, &[c, outcome], 0);
            }
        }
    }

    /// For the alerting code: one delivery attempt on a channel, labelled
    /// with the channel's configured name (bounded by the config) and the
    /// outcome (`sent`, `retry`, `abandoned`).
    pub fn record_alert_delivery(&self, channel: &str, outcome: &str) {
        inc_by(&self.alert_deliveries, &[channel, outcome], 1);
    }

    /// Mirrors the status board's derived states as gauges, so that alerts
    /// use exactly the rules `/status` uses.
    pub fn observe_status(&self, a: &Assessment, board: &StatusBoard) {
        self.state.set(state_value(a.state));
        self.ready.set(i64::from(a.readiness.ready));
        let has = |f: fn(&Reason) -> bool| i64::from(a.reasons.iter().any(|x| f(&x.reason)));
        self.blind.set(has(|r| matches!(r, Reason::Blind)));
        self.stalled
            .set(has(|r| matches!(r, Reason::Stalled { .. })));
        self.group_state.reset();
        self.validators_failing.reset();
        for g in &a.groups {
            set(&self.group_state, &[&g.name], state_value(g.state));
            set(
                &self.validators_failing,
                &[&g.name],
                i64::try_from(g.failing).unwrap_or(i64::MAX),
            );
        }
        if self.per_validator() {
            board.read(|snap| {
                for v in snap.validators.values() {
                    set(
                        &self.validator_consecutive_missed,
                        &[&v.index.0.to_string(), &v.group],
                        i64::from(v.consecutive_missed),
                    );
                }
            });
        }
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            warn!(error = %crate::causes(&e), "cannot encode metrics");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

fn tally<'a>(
    groups: &'a mut BTreeMap<String, GroupTally>,
    group_of: &dyn Fn(ValidatorIndex) -> String,
    v: ValidatorIndex,
) -> (String, &'a mut GroupTally) {
    let g = group_of(v);
    let g = if g.is_empty() {
        UNGROUPED.to_string()
    } else {
        g
    };
    let entry = groups.entry(g.clone()).or_default();
    (g, entry)
}

fn set_epoch(g: &IntGauge, e: Epoch) {
    let v = i64::try_from(e.0).unwrap_or(i64::MAX);
    if v >= g.get() {
        g.set(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{
        AttestationVerdict, BalanceRecord, ProposalStatus, ProposalVerdict, SyncVerdict,
    };
    use crate::chain::{Gwei, Slot};

    fn att(v: u64, status: AttestationStatus, late: bool, head: bool) -> AttestationVerdict {
        AttestationVerdict {
            validator_index: ValidatorIndex(v),
            epoch: Epoch(7),
            status,
            duty_slot: Some(Slot(230)),
            inclusion_slot: Some(Slot(232)),
            inclusion_delay: (status == AttestationStatus::Included).then_some(2),
            late: Some(late),
            source_correct: Some(true),
            target_correct: Some(true),
            head_correct: Some(head),
            reason: None,
        }
    }

    fn record(is_final: bool) -> EpochRecord {
        EpochRecord {
            epoch: Epoch(7),
            is_final,
            attestations: vec![
                att(1, AttestationStatus::Included, false, true),
                att(2, AttestationStatus::Included, true, false),
                att(3, AttestationStatus::Missed, false, true),
            ],
            proposals: vec![ProposalVerdict {
                slot: Slot(231),
                validator_index: Some(ValidatorIndex(1)),
                status: ProposalStatus::Missed,
                block_root: None,
                reason: None,
            }],
            sync: vec![SyncVerdict {
                validator_index: ValidatorIndex(2),
                epoch: Epoch(7),
                participated: 30,
                missed: 2,
            }],
            balances: (1..=3)
                .map(|v| BalanceRecord {
                    validator_index: ValidatorIndex(v),
                    epoch: Epoch(7),
                    balance: Gwei(32_000_000_000 + v),
                    effective_balance: Gwei(32_000_000_000),
                    status: ValidatorStatus::ActiveOngoing,
                    slashed: false,
                    balance_change: Some(10),
                })
                .collect(),
            ..EpochRecord::default()
        }
    }

    fn group_of(v: ValidatorIndex) -> String {
        if v.0 == 3 { "b" } else { "a" }.to_string()
    }

    /// The value of the one sample line that starts with `series`.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn rewards_sum_per_group_and_unknown_leaves_the_gauge_alone() {
        use crate::analysis::network::NetworkRecord;
        use crate::analysis::rewards::RewardRecord;
        let m = Metrics::new(DEFAULT_PER_VALIDATOR_LIMIT).unwrap();
        let row = |v: u64, att: Option<i64>, missed: Option<i64>| RewardRecord {
            validator_index: ValidatorIndex(v),
            epoch: Epoch(7),
            attestation_reward_gwei: att,
            attestation_ideal_gwei: None,
            sync_reward_gwei: None,
            proposer_reward_gwei: None,
            missed_gwei: missed,
            estimated: false,
        };
        let net = NetworkRecord {
            epoch: Epoch(7),
            duties: 64,
            included: 48,
            empty_slots: 2,
            slots: 8,
        };
        m.observe_rewards(
            &[
                row(1, Some(10), Some(5)),
                row(2, Some(-4), Some(20)),
                row(3, Some(7), Some(-1)),
            ],
            Some(&net),
            &group_of,
        );
        // Epoch 8: group a unknown (not served), b known.
        m.observe_rewards(
            &[row(1, None, None), row(3, Some(9), Some(2))],
            None,
            &group_of,
        );
        let t = m.render();
        let v = |s: &str| value(&t, s);
        assert_eq!(
            v(r#"valwatch_rewards_gwei{group="a",kind="attestation"}"#),
            Some(6.0)
        );
        assert_eq!(
            v(r#"valwatch_rewards_gwei{group="b",kind="attestation"}"#),
            Some(9.0)
        );
        assert_eq!(
            v(r#"valwatch_rewards_missed_gwei_total{group="a"}"#),
            Some(25.0)
        );
        assert_eq!(
            v(r#"valwatch_rewards_missed_gwei_total{group="b"}"#),
            Some(2.0)
        );
        assert_eq!(
            v(r#"valwatch_network_attestation_duties_total{outcome="included"}"#),
            Some(48.0)
        );
        assert_eq!(
            v(r#"valwatch_network_attestation_duties_total{outcome="missed"}"#),
            Some(16.0)
        );
        assert_eq!(
            v(r#"valwatch_network_slots_total{outcome="empty"}"#),
            Some(2.0)
        );
        assert_eq!(
            v(r#"valwatch_network_slots_total{outcome="proposed"}"#),
            Some(6.0)
        );
    }

    #[test]
    fn cross_checks_are_counted_per_node_and_outcome_from_zero() {
        let m = Metrics::new(DEFAULT_PER_VALIDATOR_LIMIT).unwrap();
        let check =
            |node: &str, agrees: bool, error: Option<&str>| crate::store::CrossCheckRecord {
                epoch: Epoch(7),
                slot: Slot(63),
                node: node.into(),
                node_root: None,
                expected_root: None,
                agrees,
                error: error.map(Into::into),
            };
        let mut rec = record(true);
        rec.cross_checks = vec![
            check("alpha", true, None),
            check("beta", false, None),
            check("gamma", false, Some("timed out")),
        ];
        m.observe_epoch(&rec, &group_of);
        let mut provisional = rec.clone();
        provisional.is_final = false;
        m.observe_epoch(&provisional, &group_of);
        let t = m.render();
        let v = |node: &str, outcome: &str| {
            value(
                &t,
                &format!(
                    r#"valwatch_node_cross_checks_total{{node="{node}",outcome="{outcome}"}}"#
                ),
            )
        };
        assert_eq!(v("alpha", "agrees"), Some(1.0));
        assert_eq!(v("alpha", "disagrees"), Some(0.0));
        assert_eq!(v("beta", "disagrees"), Some(1.0));
        assert_eq!(v("gamma", "unanswered"), Some(1.0));
        assert_eq!(v("gamma", "disagrees"), Some(0.0));
    }

    #[test]
    fn provisional_records_do_not_count_and_final_ones_count_once() {
        let m = Metrics::new(DEFAULT_PER_VALIDATOR_LIMIT).unwrap();
        m.set_watched(&BTreeMap::from([("a".into(), 2), ("b".into(), 1)]));
        m.observe_epoch(&record(false), &group_of);
        let t = m.render();
        // Series exist from zero once the groups are known.
        let zero = [
            r#"valwatch_attestations_total{group="a",status="included"}"#,
            r#"valwatch_proposals_total{group="b",status="missed"}"#,
        ];
        for series in zero {
            assert_eq!(value(&t, series), Some(0.0), "{series}");
        }
        assert_eq!(value(&t, "valwatch_last_provisional_epoch"), Some(7.0));
        m.observe_epoch(&record(true), &group_of);
        let t = m.render();
        let cases = [
            (
                r#"valwatch_attestations_total{group="a",status="included"}"#,
                2.0,
            ),
            (
                r#"valwatch_attestations_total{group="b",status="missed"}"#,
                1.0,
            ),
            (r#"valwatch_attestations_late_total{group="a"}"#, 1.0),
            (
                r#"valwatch_attestations_incorrect_total{group="a",vote="head"}"#,
                1.0,
            ),
            (
                r#"valwatch_attestations_incorrect_total{group="a",vote="target"}"#,
                0.0,
            ),
            (
                r#"valwatch_attestation_inclusion_delay_slots_count{group="a"}"#,
                2.0,
            ),
            (
                r#"valwatch_proposals_total{group="a",status="missed"}"#,
                1.0,
            ),
            (
                r#"valwatch_sync_committee_slots_total{group="a",outcome="participated"}"#,
                30.0,
            ),
            (r#"valwatch_balance_gwei{group="a"}"#, 64_000_000_003.0),
            (r#"valwatch_balance_change_gwei{group="a"}"#, 20.0),
            (
                r#"valwatch_validators{group="b",status="active_ongoing"}"#,
                1.0,
            ),
            (
                r#"valwatch_validator_attestations_total{group="b",status="missed",validator_index="3"}"#,
                1.0,
            ),
            ("valwatch_last_processed_epoch", 7.0),
        ];
        for (series, want) in cases {
            assert_eq!(value(&t, series), Some(want), "{series}\n{t}");
        }
    }

    #[test]
    fn per_validator_series_stop_at_the_limit_but_totals_stay() {
        let m = Metrics::new(3).unwrap();
        m.set_watched(&BTreeMap::from([("a".into(), 2)]));
        m.observe_epoch(&record(true), &group_of);
        assert!(m.render().contains("valwatch_validator_balance_gwei{"));
        m.set_watched(&BTreeMap::from([("a".into(), 2), ("b".into(), 1)]));
        m.observe_epoch(&record(true), &group_of);
        let t = m.render();
        assert!(!t.contains("valwatch_validator_"), "{t}");
        assert_eq!(
            value(
                &t,
                r#"valwatch_attestations_total{group="a",status="included"}"#
            ),
            Some(4.0)
        );
    }

    #[test]
    fn nodes_report_up_health_and_lag_against_the_wall_clock() {
        let m = Metrics::new(10).unwrap();
        m.observe_clock(100, 2);
        m.observe_head(95);
        let node = |name: &str, health, head| NodeReport {
            name: name.into(),
            url: "http://x.invalid/".into(),
            health,
            head_slot: head,
            last_error: None,
        };
        m.observe_nodes(&[
            node("a", NodeHealth::Healthy, Some(100)),
            node("b", NodeHealth::Lagging, Some(90)),
            node("c", NodeHealth::Unreachable, None),
        ]);
        let t = m.render();
        let cases = [
            (r#"valwatch_node_up{node="a"}"#, 1.0),
            (r#"valwatch_node_up{node="c"}"#, 0.0),
            (r#"valwatch_node_healthy{node="b"}"#, 1.0),
            (r#"valwatch_node_head_lag_slots{node="b"}"#, 10.0),
            (r#"valwatch_node_head_lag_slots{node="a"}"#, 0.0),
            ("valwatch_processing_lag_epochs", 2.0),
        ];
        for (series, want) in cases {
            assert_eq!(value(&t, series), Some(want), "{series}");
        }
        m.observe_nodes(&[node("a", NodeHealth::Healthy, Some(100))]);
        assert!(
            !m.render().contains(r#"node="c""#),
            "removed nodes disappear"
        );
    }

    #[test]
    fn two_registries_do_not_share_metrics() {
        let a = Metrics::new(10).unwrap();
        let b = Metrics::new(10).unwrap();
        a.record_alert_delivery("email", "sent");
        a.declare_alert_channels(&["pager".to_owned()]);
        assert!(a.render().contains("valwatch_alert_deliveries_total{"));
        assert!(!b.render().contains("valwatch_alert_deliveries_total{"));
        assert!(a
            .render()
            .contains(r#"valwatch_alert_deliveries_total{channel="pager",outcome="abandoned"} 0"#));
    }

    #[test]
    fn labels_are_counted_and_per_validator_series_stay_under_the_limit() {
        let labels: BTreeMap<ValidatorIndex, Vec<String>> = (0..150u64)
            .map(|v| {
                (
                    ValidatorIndex(v),
                    vec!["eu".to_string(), format!("host-{v:03}")],
                )
            })
            .collect();
        let m = Metrics::new(1000).unwrap();
        m.set_watched(&BTreeMap::from([("a".into(), 150)]));
        m.set_labels(&labels);
        let t = m.render();
        assert_eq!(
            value(&t, r#"valwatch_label_validators{label="eu"}"#),
            Some(150.0)
        );
        let label_series = t
            .lines()
            .filter(|l| l.starts_with("valwatch_label_validators{"))
            .count();
        assert_eq!(label_series, MAX_LABEL_SERIES, "bounded");
        assert_eq!(
            value(
                &t,
                r#"valwatch_validator_label_info{label="host-007",validator="7"}"#
            ),
            Some(1.0)
        );
        // Above the per-validator limit: the counts stay, the info goes.
        let m = Metrics::new(100).unwrap();
        m.set_watched(&BTreeMap::from([("a".into(), 150)]));
        m.set_labels(&labels);
        let t = m.render();
        assert!(!t.contains("valwatch_validator_label_info{"), "{t}");
        assert_eq!(
            value(&t, r#"valwatch_label_validators{label="eu"}"#),
            Some(150.0)
        );
    }
}
