//! PURE: the one rule of a watched validator's state — `ok`, `late`,
//! `down` or `recovering` — and the evidence that put it there.
//!
//! Owns: `ValidatorHealth`, fed with the validator's verdicts in the order
//! the monitor judges them, and what an outage cost (`Outage`). The status
//! board (`/status`, the HTML page, the metrics) and the alert rules each
//! keep one per validator and feed it through `observe_*` with the same
//! records and the same `HealthRules`, so the page and the pager cannot
//! disagree about who is down. Must not: do IO, read the clock, or know
//! about incidents or channels.
//!
//! The rule of `down`: a streak per validator of final `missed` verdicts and
//! early evidence (a provisional `pending` vote that `early_blocks`
//! canonical blocks after its duty slot did not carry, and that liveness,
//! where a node answered, does not call live), all after the newest epoch
//! the validator was seen attesting. Down when the streak holds early
//! evidence or `down_after_missed` final misses; once down, it stays down
//! until a good verdict (included, or inactive) arrives for a later epoch.
//! A proposal missed in an epoch whose vote is missing too makes it down at
//! once (two signs of one stopped client; see `observe_missed_proposal`).
//! When that good verdict is the final verdict of the very epoch the early
//! warning was about, the warning was wrong (`contradicted`).
//!
//! `recovering`: back (an included vote seen on a provisional look) but not
//! yet confirmed by a final verdict of an epoch from its return on.
//! `late`: not down, but its newest final vote was missed (fewer times in a
//! row than `down_after_missed`): one more and it is down. A vote included
//! late or for a wrong head is not `late` here: that happens to healthy
//! validators after a late block, and the `attestation_performance` rule
//! judges it over a window instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::analysis::{AttestationStatus, AttestationVerdict};
use crate::chain::{Epoch, Gwei, Slot, ValidatorIndex};

/// The thresholds of the rule, from `[alerts]` (the same for the page and
/// the pager).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthRules {
    /// Final misses in a row that make a validator down.
    pub down_after_missed: u32,
    /// Whether early evidence makes a validator down before its final miss.
    pub early_warning: bool,
    /// Canonical blocks after the duty slot without the vote that make a
    /// `pending` vote early evidence.
    pub early_blocks: u32,
}

impl Default for HealthRules {
    /// The defaults of `[alerts]` (see `config::alerts`).
    fn default() -> Self {
        HealthRules {
            down_after_missed: 2,
            early_warning: true,
            early_blocks: 3,
        }
    }
}

/// What the provisional pass of an epoch knows beyond its record.
#[derive(Clone, Debug, Default)]
pub struct EarlyInputs<'a> {
    /// Canonical block slots known when the epoch was judged, ascending.
    pub block_slots: &'a [Slot],
    /// Liveness answers for the epoch, where a node gave them.
    pub liveness: Option<&'a HashMap<ValidatorIndex, bool>>,
}

/// A validator's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Ok,
    Late,
    Recovering,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Late => "late",
            Health::Recovering => "recovering",
            Health::Down => "down",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Evidence {
    early: bool,
    missed: bool,
    /// Early evidence with liveness answered `false` (not just unanswered).
    not_live: bool,
}

/// One outage of one validator: from its first evidence to its return.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    pub validator: u64,
    /// The epoch of the first evidence.
    pub down_since_epoch: u64,
    /// The epoch of the vote that showed it back (None while down).
    pub back_epoch: Option<u64>,
    /// Proposal slots it missed while down (proven empty by later blocks).
    pub missed_proposals: Vec<u64>,
    /// Sync-committee slots it missed while down.
    pub missed_sync_slots: u32,
    /// Its balance when it went down and the newest one since, in Gwei.
    pub balance_before_gwei: Option<u64>,
    pub balance_latest_gwei: Option<u64>,
}

impl Outage {
    /// Epochs without an included vote: from the first evidence up to the
    /// return (or, while down, up to `through` inclusive).
    pub fn missed_epochs(&self, through: Option<u64>) -> u64 {
        match (self.back_epoch, through) {
            (Some(b), _) => b.saturating_sub(self.down_since_epoch),
            (None, Some(t)) => t.saturating_add(1).saturating_sub(self.down_since_epoch),
            (None, None) => 0,
        }
    }

    /// Balance change while down, in Gwei (None without two balances).
    pub fn balance_change_gwei(&self) -> Option<i64> {
        let (a, b) = (self.balance_before_gwei?, self.balance_latest_gwei?);
        Some(i64::try_from(b).ok()? - i64::try_from(a).ok()?)
    }
}

/// What one observation changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    None,
    WentDown,
    /// Back from an outage (its tally so far).
    CameBack(Outage),
}

/// Everything the rule remembers of one validator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidatorHealth {
    /// The newest epoch with a good verdict (included or inactive).
    good_through: Option<Epoch>,
    /// Evidence after `good_through`.
    streak: BTreeMap<Epoch, Evidence>,
    down: bool,
    /// The epoch whose early warning a final verdict contradicted.
    contradicted: Option<Epoch>,
    /// The newest epoch of evidence while the validator was down: what its
    /// records up to there show (missed proposals, sync slots, penalties)
    /// is that outage's news, not a new cause.
    down_through: Option<Epoch>,
    /// The current outage while down; the last one after a return (final
    /// records of the outage's epochs still arrive for about an epoch).
    outage: Option<Outage>,
    /// Back at this epoch on a provisional look, not yet confirmed.
    recovering_from: Option<Epoch>,
    /// The newest final verdict: (epoch, status, timely and correct).
    last_final: Option<(Epoch, AttestationStatus, bool)>,
    balance: Option<Gwei>,
    /// Missed sync slots per epoch while down (newest record wins).
    sync_missed: BTreeMap<Epoch, u32>,
    proposals_missed: BTreeSet<Slot>,
}

impl ValidatorHealth {
    /// Marks the validator as down since `epoch` (from an incident open
    /// before a restart): it stays down until a good verdict for that epoch
    /// or a later one says otherwise. The epoch is kept as early evidence
    /// because the restarted rule knows only the final history: without
    /// it, the provisional record of an epoch before the outage (the
    /// validator still attested then) ended the outage at once.
    pub fn assume_down(&mut self, validator: u64, epoch: Option<Epoch>) {
        self.down = true;
        if let Some(e) = epoch {
            self.streak.entry(e).or_default().early = true;
            self.down_through = self.down_through.max(Some(e));
        }
        if self.outage.as_ref().is_none_or(|o| o.back_epoch.is_some()) {
            self.outage = Some(Outage {
                validator,
                down_since_epoch: epoch.map_or(0, |e| e.0),
                balance_before_gwei: self.balance.map(|b| b.0),
                ..Outage::default()
            });
        }
    }

    /// Takes in one attestation verdict; `early` holds what the pass knew
    /// of the chain (ignored for final verdicts).
    pub fn observe_attestation(
        &mut self,
        a: &AttestationVerdict,
        is_final: bool,
        early: &EarlyInputs<'_>,
        rules: &HealthRules,
    ) -> Change {
        let e = a.epoch;
        let was_down = self.down;
        let after_good = self.good_through.is_none_or(|g| e > g);
        match a.status {
            AttestationStatus::Included | AttestationStatus::Inactive if after_good => {
                let was_early = self.streak.get(&e).is_some_and(|x| x.early);
                self.good_through = Some(e);
                self.streak.retain(|s, _| *s > e);
                if self.down && self.streak.is_empty() {
                    self.contradicted = (is_final && was_early).then_some(e);
                }
                self.down = false;
            }
            AttestationStatus::Missed if is_final && after_good => {
                self.streak.entry(e).or_default().missed = true;
            }
            AttestationStatus::Pending if !is_final && after_good && rules.early_warning => {
                let blocks_after = a
                    .duty_slot
                    .map_or(0, |d| early.block_slots.iter().filter(|s| **s > d).count());
                let live = early
                    .liveness
                    .and_then(|l| l.get(&a.validator_index).copied());
                if blocks_after >= rules.early_blocks as usize && live != Some(true) {
                    let ev = self.streak.entry(e).or_default();
                    ev.early = true;
                    ev.not_live |= live == Some(false);
                }
            }
            // Unknown is no evidence either way.
            _ => {}
        }
        if is_final && self.last_final.is_none_or(|(f, _, _)| e >= f) {
            let good = a.status == AttestationStatus::Included
                && a.late != Some(true)
                && a.head_correct != Some(false)
                && a.target_correct != Some(false);
            self.last_final = Some((e, a.status, good));
            if a.status == AttestationStatus::Included
                && self.recovering_from.is_some_and(|r| e >= r)
            {
                self.recovering_from = None;
            }
        }
        let missed = self.streak.values().filter(|x| x.missed).count();
        let early_seen = self.streak.values().any(|x| x.early);
        if early_seen || missed >= rules.down_after_missed.max(1) as usize {
            self.down = true;
            self.contradicted = None;
        }
        if self.down {
            self.down_through = self
                .down_through
                .max(self.streak.keys().next_back().copied());
        }
        match (was_down, self.down) {
            (false, true) => {
                let since = self.streak.keys().next().copied().unwrap_or(e);
                self.recovering_from = None;
                self.sync_missed.clear();
                self.proposals_missed.clear();
                self.outage = Some(Outage {
                    validator: a.validator_index.0,
                    down_since_epoch: since.0,
                    balance_before_gwei: self.balance.map(|b| b.0),
                    balance_latest_gwei: self.balance.map(|b| b.0),
                    ..Outage::default()
                });
                Change::WentDown
            }
            (true, false) => {
                if !is_final {
                    self.recovering_from = Some(e);
                }
                let mut o = self.outage.clone().unwrap_or(Outage {
                    validator: a.validator_index.0,
                    down_since_epoch: e.0,
                    ..Outage::default()
                });
                o.back_epoch = Some(e.0);
                self.outage = Some(o.clone());
                Change::CameBack(o)
            }
            _ => Change::None,
        }
    }

    /// Whether a record of `epoch` belongs to an outage (the current one,
    /// or the last one, whose final records arrive after the return).
    pub fn in_outage(&self, epoch: Epoch) -> bool {
        let within = self.outage.as_ref().is_some_and(|o| {
            epoch.0 >= o.down_since_epoch && o.back_epoch.is_none_or(|b| epoch.0 < b)
        });
        self.down || within || self.down_through.is_some_and(|d| epoch <= d)
    }

    /// A missed proposal: part of the outage when it falls in one (true:
    /// counted there, not news of its own). A proposal missed in an epoch
    /// whose vote is missing too (a final miss, or early evidence) is two
    /// independent signs of one stopped client: the validator is down from
    /// that epoch on. Without this, the final verdict of the proposal could
    /// come before the second missed vote and page on its own, minutes
    /// before the outage it belongs to (seen on the lodestar-devnet
    /// recording: validator 44, epoch 6).
    pub fn observe_missed_proposal(
        &mut self,
        validator: ValidatorIndex,
        slot: Slot,
        epoch: Epoch,
    ) -> bool {
        let vote_missing = self.streak.contains_key(&epoch);
        if !self.in_outage(epoch) && vote_missing {
            self.down = true;
            self.contradicted = None;
            self.down_through = self
                .down_through
                .max(self.streak.keys().next_back().copied());
            let since = self.streak.keys().next().copied().unwrap_or(epoch);
            self.recovering_from = None;
            self.sync_missed.clear();
            self.proposals_missed.clear();
            self.outage = Some(Outage {
                validator: validator.0,
                down_since_epoch: since.0,
                balance_before_gwei: self.balance.map(|b| b.0),
                balance_latest_gwei: self.balance.map(|b| b.0),
                ..Outage::default()
            });
        }
        if !self.in_outage(epoch) {
            return false;
        }
        self.proposals_missed.insert(slot);
        if let Some(o) = self.outage.as_mut() {
            o.missed_proposals = self.proposals_missed.iter().map(|s| s.0).collect();
        }
        true
    }

    /// Sync-committee slots missed in `epoch` (the newest record wins):
    /// part of the outage when it falls in one (true: not news of its own).
    pub fn observe_sync(&mut self, epoch: Epoch, missed: u32) -> bool {
        if !self.in_outage(epoch) {
            return false;
        }
        self.sync_missed.insert(epoch, missed);
        if let Some(o) = self.outage.as_mut() {
            o.missed_sync_slots = self.sync_missed.values().sum();
        }
        true
    }

    pub fn observe_balance(&mut self, balance: Gwei) {
        self.balance = Some(balance);
        if let Some(o) = self.outage.as_mut() {
            if o.back_epoch.is_none() {
                o.balance_latest_gwei = Some(balance.0);
            }
        }
    }

    pub fn is_down(&self) -> bool {
        self.down
    }

    /// See the field.
    pub fn down_through(&self) -> Option<Epoch> {
        self.down_through
    }

    pub fn contradicted(&self) -> Option<Epoch> {
        self.contradicted
    }

    /// The current outage (while down) or the last one.
    pub fn outage(&self) -> Option<&Outage> {
        self.outage.as_ref()
    }

    /// The first epoch of the evidence that holds it down now.
    pub fn down_since(&self) -> Option<Epoch> {
        if !self.down {
            return None;
        }
        self.outage
            .as_ref()
            .map(|o| Epoch(o.down_since_epoch))
            .or_else(|| self.streak.keys().next().copied())
    }

    /// The state, by the rule in the module doc.
    pub fn health(&self) -> Health {
        if self.down {
            return Health::Down;
        }
        if self.recovering_from.is_some() {
            return Health::Recovering;
        }
        match self.last_final {
            Some((_, AttestationStatus::Missed, _)) => Health::Late,
            _ => Health::Ok,
        }
    }

    /// The evidence behind `health`, in words for people.
    pub fn evidence(&self, rules: &HealthRules) -> String {
        match self.health() {
            Health::Down => {
                let missed: Vec<u64> = self
                    .streak
                    .iter()
                    .filter(|(_, x)| x.missed)
                    .map(|(e, _)| e.0)
                    .collect();
                let early: Vec<(u64, bool)> = self
                    .streak
                    .iter()
                    .filter(|(_, x)| x.early && !x.missed)
                    .map(|(e, x)| (e.0, x.not_live))
                    .collect();
                let mut parts = Vec::new();
                if !missed.is_empty() {
                    parts.push(format!(
                        "no vote included for epoch{} {}",
                        plural(missed.len()),
                        epochs(&missed)
                    ));
                }
                if let Some((e, not_live)) = early.first() {
                    parts.push(format!(
                        "its vote for epoch {e} is in none of the {} blocks after its duty{}",
                        rules.early_blocks,
                        if *not_live {
                            ", and the node says it was not live"
                        } else {
                            ""
                        }
                    ));
                }
                if let Some(slot) = self.proposals_missed.iter().next() {
                    parts.push(format!("it missed its proposal at slot {}", slot.0));
                }
                if parts.is_empty() {
                    "down since before the restart".into()
                } else {
                    parts.join("; ")
                }
            }
            Health::Recovering => format!(
                "attesting again since epoch {} (not yet final)",
                self.recovering_from.map_or(0, |e| e.0)
            ),
            Health::Late => match self.last_final {
                Some((e, AttestationStatus::Missed, _)) => format!(
                    "missed its vote for epoch {} ({} in a row make it down)",
                    e.0, rules.down_after_missed
                ),
                _ => String::new(),
            },
            Health::Ok => match self.last_final {
                Some((e, AttestationStatus::Inactive, _)) => {
                    format!("not active in epoch {}", e.0)
                }
                Some((e, _, _)) => format!("vote for epoch {} included", e.0),
                None => "no final verdict yet".into(),
            },
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// "3", "3, 4" or "3–7" for a run.
pub fn epochs(list: &[u64]) -> String {
    match list {
        [] => String::new(),
        [one] => one.to_string(),
        [first, .., last] if (last - first) as usize + 1 == list.len() => {
            format!("{first}–{last}")
        }
        _ => list
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(epoch: u64, status: AttestationStatus) -> AttestationVerdict {
        AttestationVerdict {
            validator_index: ValidatorIndex(1),
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

    use AttestationStatus::{
        Inactive as N, Included as I, Missed as M, Pending as P, Unknown as U,
    };

    /// Three blocks after the duty slot of epoch `e`: early evidence.
    fn blocks_after(e: u64) -> Vec<Slot> {
        (e * 32 + 6..e * 32 + 9).map(Slot).collect()
    }

    #[test]
    #[allow(clippy::type_complexity)] // a table of cases reads best inline
    fn the_state_follows_the_verdicts_in_order() {
        // (name, (epoch, final, status, early evidence possible) in order, health after)
        let cases: Vec<(&str, Vec<(u64, bool, AttestationStatus, bool)>, Health)> = vec![
            ("nothing yet", vec![], Health::Ok),
            (
                "one final inclusion",
                vec![(10, true, I, false)],
                Health::Ok,
            ),
            (
                "one final miss is late",
                vec![(10, true, M, false)],
                Health::Late,
            ),
            (
                "two final misses are down",
                vec![(10, true, M, false), (11, true, M, false)],
                Health::Down,
            ),
            (
                "miss, inclusion, miss is late",
                vec![
                    (10, true, M, false),
                    (11, true, I, false),
                    (12, true, M, false),
                ],
                Health::Late,
            ),
            (
                "unknown keeps the streak",
                vec![
                    (10, true, M, false),
                    (11, true, U, false),
                    (12, true, M, false),
                ],
                Health::Down,
            ),
            (
                "early evidence is down at once",
                vec![(10, false, P, true)],
                Health::Down,
            ),
            (
                "a pending vote without three blocks after it is nothing",
                vec![(10, false, P, false)],
                Health::Ok,
            ),
            (
                "down, then an included provisional vote is recovering",
                vec![
                    (10, true, M, false),
                    (11, true, M, false),
                    (12, false, I, false),
                ],
                Health::Recovering,
            ),
            (
                "recovering, then its final inclusion is ok",
                vec![
                    (10, true, M, false),
                    (11, true, M, false),
                    (12, false, I, false),
                    (12, true, I, false),
                ],
                Health::Ok,
            ),
            (
                "down, then a final inclusion is ok at once",
                vec![
                    (10, true, M, false),
                    (11, true, M, false),
                    (12, true, I, false),
                ],
                Health::Ok,
            ),
            (
                "inactive ends an outage",
                vec![
                    (10, true, M, false),
                    (11, true, M, false),
                    (12, true, N, false),
                ],
                Health::Ok,
            ),
            (
                "an older final inclusion does not end a newer outage",
                vec![(11, false, P, true), (10, true, I, false)],
                Health::Down,
            ),
        ];
        for (name, steps, want) in cases {
            let mut h = ValidatorHealth::default();
            for (e, is_final, status, early) in steps {
                let slots = if early { blocks_after(e) } else { Vec::new() };
                let inputs = EarlyInputs {
                    block_slots: &slots,
                    liveness: None,
                };
                h.observe_attestation(&vote(e, status), is_final, &inputs, &HealthRules::default());
            }
            assert_eq!(h.health(), want, "{name}");
        }
    }

    #[test]
    fn a_live_answer_vetoes_early_evidence() {
        let live: HashMap<ValidatorIndex, bool> = [(ValidatorIndex(1), true)].into();
        let slots = blocks_after(10);
        let mut h = ValidatorHealth::default();
        h.observe_attestation(
            &vote(10, P),
            false,
            &EarlyInputs {
                block_slots: &slots,
                liveness: Some(&live),
            },
            &HealthRules::default(),
        );
        assert_eq!(h.health(), Health::Ok);
    }

    #[test]
    fn an_outage_reports_when_it_began_ended_and_what_it_missed() {
        let rules = HealthRules::default();
        let mut h = ValidatorHealth::default();
        h.observe_balance(Gwei(32_000_000_000));
        let slots = blocks_after(6);
        let early = EarlyInputs {
            block_slots: &slots,
            liveness: None,
        };
        assert_eq!(
            h.observe_attestation(&vote(6, P), false, &early, &rules),
            Change::WentDown
        );
        assert_eq!(h.down_since(), Some(Epoch(6)));
        let none = EarlyInputs::default();
        h.observe_attestation(&vote(6, M), true, &none, &rules);
        h.observe_attestation(&vote(7, M), true, &none, &rules);
        assert!(h.observe_missed_proposal(ValidatorIndex(1), Slot(7 * 32 + 3), Epoch(7)));
        assert!(h.observe_sync(Epoch(7), 30));
        assert!(h.observe_sync(Epoch(7), 31)); // the newer record of the epoch wins
        h.observe_balance(Gwei(31_999_990_000));
        let Change::CameBack(o) = h.observe_attestation(&vote(9, I), false, &none, &rules) else {
            panic!("not back: {:?}", h.health());
        };
        assert_eq!(o.down_since_epoch, 6);
        assert_eq!(o.back_epoch, Some(9));
        assert_eq!(o.missed_epochs(None), 3);
        assert_eq!(o.missed_proposals, vec![7 * 32 + 3]);
        assert_eq!(o.missed_sync_slots, 31);
        assert_eq!(o.balance_change_gwei(), Some(-10_000));
        // Final records of the outage arriving after the return are still
        // the outage's news, not a new cause.
        assert!(h.observe_missed_proposal(ValidatorIndex(1), Slot(8 * 32 + 1), Epoch(8)));
        assert!(!h.observe_missed_proposal(ValidatorIndex(1), Slot(10 * 32 + 1), Epoch(10)));
    }

    #[test]
    fn a_final_inclusion_of_the_warned_epoch_contradicts_the_warning() {
        let rules = HealthRules::default();
        let mut h = ValidatorHealth::default();
        let slots = blocks_after(10);
        let early = EarlyInputs {
            block_slots: &slots,
            liveness: None,
        };
        h.observe_attestation(&vote(10, P), false, &early, &rules);
        assert_eq!(h.health(), Health::Down);
        h.observe_attestation(&vote(10, I), true, &EarlyInputs::default(), &rules);
        assert_eq!(h.contradicted(), Some(Epoch(10)));
        assert_eq!(h.health(), Health::Ok);
    }

    #[test]
    fn evidence_says_which_rule_put_it_down() {
        let rules = HealthRules::default();
        let none = EarlyInputs::default();
        let mut h = ValidatorHealth::default();
        h.observe_attestation(&vote(10, M), true, &none, &rules);
        h.observe_attestation(&vote(11, M), true, &none, &rules);
        assert_eq!(h.evidence(&rules), "no vote included for epochs 10–11");
        let live: HashMap<ValidatorIndex, bool> = [(ValidatorIndex(1), false)].into();
        let slots = blocks_after(12);
        let mut h = ValidatorHealth::default();
        h.observe_attestation(
            &vote(12, P),
            false,
            &EarlyInputs {
                block_slots: &slots,
                liveness: Some(&live),
            },
            &rules,
        );
        assert_eq!(
            h.evidence(&rules),
            "its vote for epoch 12 is in none of the 3 blocks after its duty, and the node says it was not live"
        );
    }

    #[test]
    fn epoch_lists_read_as_runs() {
        assert_eq!(epochs(&[3]), "3");
        assert_eq!(epochs(&[3, 4, 5]), "3–5");
        assert_eq!(epochs(&[3, 5]), "3, 5");
    }

    #[test]
    fn a_missed_vote_and_a_missed_proposal_in_one_epoch_are_down_at_once() {
        let rules = HealthRules::default();
        let none = EarlyInputs::default();
        let mut h = ValidatorHealth::default();
        h.observe_attestation(&vote(6, M), true, &none, &rules);
        assert_eq!(h.health(), Health::Late);
        assert!(h.observe_missed_proposal(ValidatorIndex(1), Slot(6 * 32 + 4), Epoch(6)));
        assert_eq!(h.health(), Health::Down);
        assert_eq!(
            h.outage().map(|o| (o.validator, o.down_since_epoch)),
            Some((1, 6))
        );
        // A healthy validator's missed proposal is news of its own.
        let mut h = ValidatorHealth::default();
        h.observe_attestation(&vote(6, I), true, &none, &rules);
        assert!(!h.observe_missed_proposal(ValidatorIndex(1), Slot(6 * 32 + 4), Epoch(6)));
        assert_eq!(h.health(), Health::Ok);
    }
}
