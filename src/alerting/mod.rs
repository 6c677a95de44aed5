//! Alerting: turns what the monitor learns into incidents and tells the
//! operator once, quickly, through their channels, and again when it is
//! over.
//!
//! Owns: the rules (`policy`, PURE: a `Tracker` fed with epoch records,
//! node reports, chain finality and `now`, yielding findings, and
//! `reconcile`, yielding open / update / remind / resolve decisions), the
//! messages (`render`, PURE), the channels (`channels`, transport only: one
//! trait, one retry wrapper) and the `Engine` (the shell that persists
//! decisions through the store and runs the outbox).
//! Must not: talk to beacon nodes, contain SQL, or decide in a channel.
//!
//! Rules apply per validator and are reported per group: one incident per
//! (rule, subject), where the subject is a group, a node, `network` or
//! `monitor`, listing every validator concerned. Epochs judged long after
//! the fact (a backfill, the catch-up after a restart) update the rules'
//! state and may resolve incidents, but never open one.

pub mod channels;
pub mod engine;
pub mod heartbeat;
pub mod policy;
pub mod render;
pub mod spool;

use serde::{Deserialize, Serialize};

pub use channels::{test_alert, ChannelError};
pub use engine::{AlertError, Engine, EpochContext};
pub use heartbeat::Heartbeat;
pub use render::Message;

/// Epochs behind the wall clock an epoch may be judged and still count as
/// live: the final verdict of epoch N is due two slots into N+2 (the
/// EIP-7045 window spans N and N+1), so a lag of 2 is the normal live case;
/// anything older is history being filled in.
pub const LIVE_LAG_EPOCHS: u64 = 2;

/// Whether an epoch judged while the wall clock is in `wall_epoch` is live.
pub fn is_live(epoch: crate::chain::Epoch, wall_epoch: crate::chain::Epoch) -> bool {
    wall_epoch.0 <= epoch.0.saturating_add(LIVE_LAG_EPOCHS)
}

/// How long after its time an epoch judged late still pages as it would
/// have live. An epoch is judged late when the store, every node or
/// valwatch itself was down; what happened to the validators meanwhile is
/// news to the person on call (the outage may have hidden exactly the
/// failure they run valwatch for), with its own times in the message. Six
/// hours: a night. Older epochs are history: stored, shown, not paged.
pub const PAGE_HORIZON: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// `PAGE_HORIZON` in epochs of `epoch_duration`, at least the live lag.
pub fn horizon_epochs(epoch_duration: std::time::Duration) -> u64 {
    let per = epoch_duration.as_millis().max(1);
    ((PAGE_HORIZON.as_millis() / per) as u64).max(LIVE_LAG_EPOCHS)
}

/// PURE: whether what is seen in `epoch`, judged while the wall clock is in
/// `wall_epoch`, may page. Epochs before `paging_from` (the wall epoch of
/// the first start: `--from-epoch` in the past asks for history) are a
/// silent backfill; later ones page when judged within `horizon` epochs.
pub fn pages(
    epoch: crate::chain::Epoch,
    wall_epoch: crate::chain::Epoch,
    paging_from: crate::chain::Epoch,
    horizon: u64,
) -> bool {
    epoch >= paging_from && wall_epoch.0 <= epoch.0.saturating_add(horizon.max(LIVE_LAG_EPOCHS))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Which input a rule is judged from; a call re-judges only its scope, so
/// that (say) node incidents are not resolved by an epoch record that says
/// nothing about nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Final and provisional epoch records.
    Validators,
    /// Cross-checks of final epoch records.
    CrossCheck,
    /// Node health reports.
    Nodes,
    /// Finality of the chain.
    Chain,
    /// The monitor's own progress.
    Monitor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    ValidatorDown,
    AttestationPerformance,
    SyncParticipation,
    BalanceFalling,
    ProposalMissed,
    ProposalOrphaned,
    Slashed,
    /// Conflicting signatures (votes, blocks) or slashing evidence naming
    /// a watched validator: critical at once, before any slashing lands.
    DoubleSigning,
    Exiting,
    Exited,
    NoFinality,
    InactivityLeak,
    NodeDown,
    NodeNotSynced,
    NodeLagging,
    NodeDisagrees,
    MonitorBlind,
    MonitorStalled,
    /// No node has a block for `STALE_HEAD_SLOTS`: the chain is stalled or
    /// every node is stuck. One network-level incident; no validator is
    /// judged for the slots the chain has not reached.
    ChainStalled,
    /// The database does not answer: verdicts and alerts are kept in
    /// memory and written once it does (issue 11).
    StoreFailing,
    /// A group's attestation participation stays `underperforming_margin`
    /// below the network's for `underperforming_epochs` (issue 14): income
    /// lost that the network is not losing.
    Underperforming,
}

impl Rule {
    pub const ALL: [Rule; 21] = [
        Rule::ValidatorDown,
        Rule::AttestationPerformance,
        Rule::SyncParticipation,
        Rule::BalanceFalling,
        Rule::ProposalMissed,
        Rule::ProposalOrphaned,
        Rule::Slashed,
        Rule::DoubleSigning,
        Rule::Exiting,
        Rule::Exited,
        Rule::NoFinality,
        Rule::InactivityLeak,
        Rule::NodeDown,
        Rule::NodeNotSynced,
        Rule::NodeLagging,
        Rule::NodeDisagrees,
        Rule::MonitorBlind,
        Rule::MonitorStalled,
        Rule::ChainStalled,
        Rule::StoreFailing,
        Rule::Underperforming,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ValidatorDown => "validator_down",
            Rule::AttestationPerformance => "attestation_performance",
            Rule::SyncParticipation => "sync_participation",
            Rule::BalanceFalling => "balance_falling",
            Rule::ProposalMissed => "proposal_missed",
            Rule::ProposalOrphaned => "proposal_orphaned",
            Rule::Slashed => "slashed",
            Rule::DoubleSigning => "double_signing",
            Rule::Exiting => "exiting",
            Rule::Exited => "exited",
            Rule::NoFinality => "no_finality",
            Rule::InactivityLeak => "inactivity_leak",
            Rule::NodeDown => "node_down",
            Rule::NodeNotSynced => "node_not_synced",
            Rule::NodeLagging => "node_lagging",
            Rule::NodeDisagrees => "node_disagrees",
            Rule::MonitorBlind => "monitor_blind",
            Rule::MonitorStalled => "monitor_stalled",
            Rule::ChainStalled => "chain_stalled",
            Rule::StoreFailing => "store_failing",
            Rule::Underperforming => "underperforming",
        }
    }

    pub fn from_name(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn severity(self) -> Severity {
        match self {
            Rule::ValidatorDown
            | Rule::Slashed
            | Rule::DoubleSigning
            | Rule::MonitorBlind
            | Rule::MonitorStalled
            | Rule::ChainStalled => Severity::Critical,
            Rule::Exiting | Rule::Exited => Severity::Info,
            _ => Severity::Warning,
        }
    }

    /// Events are notified once and closed at once: there is nothing to
    /// resolve about a missed proposal, and a slashing or an exit cannot be
    /// undone.
    pub fn is_event(self) -> bool {
        matches!(
            self,
            Rule::ProposalMissed
                | Rule::ProposalOrphaned
                | Rule::Slashed
                | Rule::DoubleSigning
                | Rule::Exiting
                | Rule::Exited
        )
    }

    pub fn scope(self) -> Scope {
        match self {
            Rule::NoFinality | Rule::InactivityLeak => Scope::Chain,
            Rule::NodeDown
            | Rule::NodeNotSynced
            | Rule::NodeLagging
            | Rule::MonitorBlind
            | Rule::ChainStalled => Scope::Nodes,
            Rule::NodeDisagrees => Scope::CrossCheck,
            Rule::MonitorStalled | Rule::StoreFailing => Scope::Monitor,
            _ => Scope::Validators,
        }
    }

    /// Whether the subject is a validator group.
    pub fn is_per_group(self) -> bool {
        self.scope() == Scope::Validators
    }
}
