//! What a simulated chain is made of: network constants and the behaviour of
//! groups of validators over epoch ranges. Plain data, readable from TOML or
//! JSON and buildable in Rust; `Scenario::check` rejects contradictions
//! before any generation starts.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::analysis::SlashingKind;

/// Gwei in one ETH.
pub const GWEI_PER_ETH: u64 = 1_000_000_000;
/// Every simulated validator starts with 32 ETH (`MAX_EFFECTIVE_BALANCE` of
/// phase0; compounding credentials of Electra are not modelled).
pub const START_BALANCE: u64 = 32 * GWEI_PER_ETH;

/// The constants that differ between the `minimal` preset (8 slots per
/// epoch, what `lodestar dev` runs) and `mainnet` (32 slots per epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub slots_per_epoch: u64,
    /// `TARGET_COMMITTEE_SIZE`: 4 in minimal, 128 in mainnet.
    pub target_committee_size: u64,
    /// `MAX_COMMITTEES_PER_SLOT`: also the width of Electra's `committee_bits`.
    pub max_committees_per_slot: u64,
    pub sync_committee_size: u64,
    pub epochs_per_sync_committee_period: u64,
    /// `GENESIS_FORK_VERSION`; later forks bump the first byte.
    pub genesis_fork_version: [u8; 4],
}

pub const MINIMAL: Preset = Preset {
    name: "minimal",
    slots_per_epoch: 8,
    target_committee_size: 4,
    max_committees_per_slot: 4,
    sync_committee_size: 32,
    epochs_per_sync_committee_period: 8,
    genesis_fork_version: [0, 0, 0, 1],
};

pub const MAINNET: Preset = Preset {
    name: "mainnet",
    slots_per_epoch: 32,
    target_committee_size: 128,
    max_committees_per_slot: 64,
    sync_committee_size: 512,
    epochs_per_sync_committee_period: 256,
    genesis_fork_version: [0, 0, 0, 0],
};

/// Validator indices as inclusive ranges; written `"0-31,40,48-63"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidatorSet(pub Vec<(u64, u64)>);

impl ValidatorSet {
    pub fn range(first: u64, last: u64) -> Self {
        Self(vec![(first, last)])
    }

    pub fn one(v: u64) -> Self {
        Self::range(v, v)
    }

    pub fn contains(&self, v: u64) -> bool {
        self.0.iter().any(|&(a, b)| a <= v && v <= b)
    }

    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().flat_map(|&(a, b)| a..=b)
    }
}

impl fmt::Display for ValidatorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl std::str::FromStr for ValidatorSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let num = |x: &str| {
                x.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("{x:?} is not a validator index"))
            };
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(part)?, num(part)?),
            };
            if a > b {
                return Err(format!("empty range {part:?}"));
            }
            out.push((a, b));
        }
        Ok(Self(out))
    }
}

impl Serialize for ValidatorSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ValidatorSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What a group of validators does wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BehaviourKind {
    /// No attestations, no blocks, no sync signatures.
    Offline,
    /// Attestations become includable `delay` slots after their slot (≥ 1).
    Late { delay: u64 },
    /// Votes for the parent of the head instead of the head.
    WrongHead,
    /// Votes for a target root that is not the epoch's checkpoint block.
    WrongTarget,
    /// Never signs as a sync-committee member.
    NoSync,
    /// Slashing evidence enters the first block at or after the start of
    /// `epoch`; the validator stops all duties from then on.
    Slashed {
        epoch: u64,
        #[serde(default = "attester")]
        by: SlashingKind,
    },
    /// Pending (no duties) before `epoch`, active from it.
    Activation { epoch: u64 },
    /// Active until `epoch`, exited from it (a voluntary exit is included
    /// `EXIT_NOTICE_EPOCHS` earlier).
    Exit { epoch: u64 },
    /// Made-up danger: in `epoch` the validator signs its vote and then a
    /// second, conflicting one for the same target epoch (another head
    /// block root), as a second client running the same keys would. Both
    /// wait in the pool; the second is included one slot after the first.
    DoubleVote { epoch: u64 },
    /// Made-up danger: like `DoubleVote`, but the conflicting vote only
    /// waits in the nodes' attestation pools and no block ever takes it
    /// (it arrived after every proposer built its block): the double vote
    /// is visible before (and without) inclusion only.
    PoolDoubleVote { epoch: u64 },
    /// Made-up danger: a slashing naming the validators reaches the nodes'
    /// pools at the first slot of `epoch` — served at the pool routes and
    /// announced on the event stream — and no block includes it within the
    /// simulation, so they keep their duties and stay unslashed on chain.
    /// An attester slashing's votes and a proposer slashing's headers are
    /// for `epoch` (its first slot).
    PoolSlashing {
        epoch: u64,
        #[serde(default = "attester")]
        by: SlashingKind,
    },
    /// Votes reach the nodes' pools but no block includes them (as when
    /// they arrive after every proposer built its block): liveness without
    /// any trace on chain.
    Unincluded,
}

fn attester() -> SlashingKind {
    SlashingKind::Attester
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Behaviour {
    pub validators: ValidatorSet,
    /// First epoch the behaviour applies to (duty behaviours only).
    #[serde(default)]
    pub from_epoch: u64,
    /// Last epoch, inclusive; `None` = for ever.
    #[serde(default)]
    pub to_epoch: Option<u64>,
    #[serde(flatten)]
    pub kind: BehaviourKind,
}

impl Behaviour {
    pub fn new(validators: ValidatorSet, kind: BehaviourKind) -> Self {
        Self {
            validators,
            from_epoch: 0,
            to_epoch: None,
            kind,
        }
    }

    pub fn epochs(mut self, from: u64, to: u64) -> Self {
        self.from_epoch = from;
        self.to_epoch = Some(to);
        self
    }

    pub fn covers(&self, v: u64, epoch: u64) -> bool {
        epoch >= self.from_epoch
            && self.to_epoch.is_none_or(|t| epoch <= t)
            && self.validators.contains(v)
    }
}

fn default_validators() -> u64 {
    64
}
fn default_slots() -> u64 {
    8
}
fn default_slot_ms() -> u64 {
    2000
}

/// A whole simulated network. Two nodes built from equal scenarios serve the
/// same chain, root for root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_validators")]
    pub validators: u64,
    /// 8 selects the minimal preset, 32 the mainnet preset.
    #[serde(default = "default_slots")]
    pub slots_per_epoch: u64,
    #[serde(default = "default_slot_ms")]
    pub slot_duration_ms: u64,
    #[serde(default)]
    pub genesis_time: u64,
    /// Overrides the spec's committee count (tests); otherwise derived.
    #[serde(default)]
    pub committees_per_slot: Option<u64>,
    /// Overrides the preset's sync committee size.
    #[serde(default)]
    pub sync_committee_size: Option<u64>,
    /// Epoch Electra starts; before it blocks are Deneb. Default 0.
    #[serde(default)]
    pub electra_fork_epoch: u64,
    /// Proposers that do not propose at these slots.
    #[serde(default)]
    pub missed_slots: Vec<u64>,
    /// Blocks produced at these slots and then built around.
    #[serde(default)]
    pub orphaned_slots: Vec<u64>,
    /// Made-up danger: the proposer of each of these slots signs a second,
    /// different block for it. The nodes import it (event stream, served by
    /// root) and it never becomes canonical; the first block does.
    /// (Not written when empty, so older scenarios keep their fingerprint,
    /// and with it their shufflings and roots.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub double_proposal_slots: Vec<u64>,
    #[serde(default)]
    pub behaviours: Vec<Behaviour>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            seed: 0,
            validators: default_validators(),
            slots_per_epoch: default_slots(),
            slot_duration_ms: default_slot_ms(),
            genesis_time: 0,
            committees_per_slot: None,
            sync_committee_size: None,
            electra_fork_epoch: 0,
            missed_slots: Vec::new(),
            orphaned_slots: Vec::new(),
            double_proposal_slots: Vec::new(),
            behaviours: Vec::new(),
        }
    }
}

/// Why a scenario cannot be simulated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScenarioError {
    #[error("slots_per_epoch must be 8 (minimal) or 32 (mainnet), got {0}")]
    SlotsPerEpoch(u64),
    #[error("need at least one validator")]
    NoValidators,
    #[error("slot_duration_ms must be positive")]
    SlotDuration,
    #[error("committees_per_slot must be 1..={max}, got {got}")]
    Committees { max: u64, got: u64 },
    #[error("double_proposal_slots: slot {0} is genesis, missed or orphaned (a double proposal needs a canonical first block)")]
    DoubleProposal(u64),
    #[error("behaviour {index}: {problem}")]
    Behaviour { index: usize, problem: String },
}

impl Scenario {
    pub fn preset(&self) -> Preset {
        if self.slots_per_epoch == 32 {
            MAINNET
        } else {
            MINIMAL
        }
    }

    pub fn check(&self) -> Result<(), ScenarioError> {
        if self.slots_per_epoch != 8 && self.slots_per_epoch != 32 {
            return Err(ScenarioError::SlotsPerEpoch(self.slots_per_epoch));
        }
        if self.validators == 0 {
            return Err(ScenarioError::NoValidators);
        }
        if self.slot_duration_ms == 0 {
            return Err(ScenarioError::SlotDuration);
        }
        let max = self.preset().max_committees_per_slot;
        if let Some(c) = self.committees_per_slot {
            if c == 0 || c > max {
                return Err(ScenarioError::Committees { max, got: c });
            }
        }
        for (index, b) in self.behaviours.iter().enumerate() {
            let problem = |p: String| ScenarioError::Behaviour { index, problem: p };
            if let Some(v) = b.validators.iter().find(|&v| v >= self.validators) {
                return Err(problem(format!("validator {v} does not exist")));
            }
            if let BehaviourKind::Late { delay: 0 } = b.kind {
                return Err(problem("an inclusion delay is at least 1".into()));
            }
        }
        if let Some(s) = self
            .double_proposal_slots
            .iter()
            .find(|s| **s == 0 || self.missed_slots.contains(s) || self.orphaned_slots.contains(s))
        {
            return Err(ScenarioError::DoubleProposal(*s));
        }
        Ok(())
    }

    /// A deterministic 64-bit digest of everything in the scenario, so roots
    /// differ between scenarios that share a seed.
    pub fn fingerprint(&self) -> u64 {
        let text = serde_json::to_string(self).unwrap_or_default();
        // FNV-1a: tiny, stable across builds (std's hasher is not).
        text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        })
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): a one-line mixer good enough to
/// drive shuffles and fake roots deterministically.
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Mixes several words into one.
pub fn mix(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x5eed_u64, |h, &p| splitmix(h ^ splitmix(p)))
}

/// A deterministic PRNG stream (splitmix64 in counter mode).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        splitmix(self.0)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_reads_from_toml_with_behaviours() {
        let s: Scenario = toml::from_str(
            r#"
            seed = 7
            validators = 64
            missed_slots = [5]
            [[behaviours]]
            validators = "48-63"
            kind = "offline"
            [[behaviours]]
            validators = "0-3,9"
            kind = "late"
            delay = 2
            from_epoch = 1
            to_epoch = 2
            [[behaviours]]
            validators = "10"
            kind = "slashed"
            epoch = 3
            "#,
        )
        .unwrap();
        s.check().unwrap();
        assert_eq!(s.behaviours[0].kind, BehaviourKind::Offline);
        assert_eq!(s.behaviours[1].kind, BehaviourKind::Late { delay: 2 });
        assert!(s.behaviours[1].covers(9, 2) && !s.behaviours[1].covers(9, 3));
        assert!(!s.behaviours[1].covers(4, 1));
        assert_eq!(
            s.behaviours[2].kind,
            BehaviourKind::Slashed {
                epoch: 3,
                by: SlashingKind::Attester
            }
        );
        let back: Scenario = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn made_up_danger_reads_from_toml() {
        let s: Scenario = toml::from_str(
            r#"
            double_proposal_slots = [27]
            [[behaviours]]
            validators = "5"
            kind = "double_vote"
            epoch = 2
            [[behaviours]]
            validators = "6-7"
            kind = "pool_slashing"
            epoch = 3
            [[behaviours]]
            validators = "9"
            kind = "pool_slashing"
            epoch = 4
            by = "proposer"
            [[behaviours]]
            validators = "10"
            kind = "unincluded"
            "#,
        )
        .unwrap();
        s.check().unwrap();
        assert_eq!(s.double_proposal_slots, vec![27]);
        assert_eq!(s.behaviours[0].kind, BehaviourKind::DoubleVote { epoch: 2 });
        assert_eq!(
            s.behaviours[1].kind,
            BehaviourKind::PoolSlashing {
                epoch: 3,
                by: SlashingKind::Attester
            }
        );
        assert_eq!(
            s.behaviours[2].kind,
            BehaviourKind::PoolSlashing {
                epoch: 4,
                by: SlashingKind::Proposer
            }
        );
        assert_eq!(s.behaviours[3].kind, BehaviourKind::Unincluded);
        // A double proposal needs a canonical first block.
        let bad = Scenario {
            double_proposal_slots: vec![5],
            missed_slots: vec![5],
            ..Scenario::default()
        };
        assert_eq!(bad.check(), Err(ScenarioError::DoubleProposal(5)));
        // Scenarios without the new field keep their fingerprint.
        assert!(!serde_json::to_string(&Scenario::default())
            .unwrap()
            .contains("double_proposal_slots"));
    }

    #[test]
    fn bad_scenarios_are_rejected() {
        let s = Scenario {
            slots_per_epoch: 16,
            ..Scenario::default()
        };
        assert_eq!(s.check(), Err(ScenarioError::SlotsPerEpoch(16)));
        let s = Scenario {
            behaviours: vec![Behaviour::new(
                ValidatorSet::one(64),
                BehaviourKind::Offline,
            )],
            ..Scenario::default()
        };
        assert!(matches!(s.check(), Err(ScenarioError::Behaviour { .. })));
        assert!("3-1".parse::<ValidatorSet>().is_err());
    }
}
