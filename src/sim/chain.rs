//! The simulated chain as a pure model: committees, proposers, sync
//! committees, blocks slot by slot, finality, balances and the ground truth
//! of every duty.
//!
//! Owns: every decision of the simulation. Must not: know HTTP or JSON, or
//! read the clock (the caller says up to which slot to generate).
//! Generation is sequential and lazy (`advance_to`); shufflings are computed
//! per epoch on demand and cached, so a mainnet-size registry costs a few
//! bytes per validator per generated epoch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::scenario::{
    mix, Behaviour, BehaviourKind, Preset, Rng, Scenario, ScenarioError, START_BALANCE,
};
use crate::analysis::doublesign::DoubleSignKind;
use crate::analysis::{
    AttestationStatus, AttestationVerdict, BalanceRecord, ProposalStatus, ProposalVerdict,
    SlashingKind, SlashingRecord, SyncVerdict,
};
use crate::chain::{
    Attestation, AttestationData, BitList, BitVector, Checkpoint, Epoch, Fork, Gwei, Pubkey, Root,
    Slot, ValidatorIndex, ValidatorStatus, FAR_FUTURE_EPOCH,
};

/// `compute_activation_exit_epoch`: an exit initiated in epoch E takes
/// effect at E + 1 + MAX_SEED_LOOKAHEAD (4).
pub const EXIT_DELAY_EPOCHS: u64 = 5;
/// `MIN_VALIDATOR_WITHDRAWABILITY_DELAY` (mainnet and minimal).
pub const WITHDRAWABILITY_DELAY: u64 = 256;
/// `MAX_ATTESTATIONS_ELECTRA` (EIP-7549) and phase0's `MAX_ATTESTATIONS`.
pub const MAX_ATTESTATIONS_ELECTRA: usize = 8;
pub const MAX_ATTESTATIONS: usize = 128;
/// Simplified rewards (Gwei), chosen so each duty leaves a visible,
/// distinct trace in balances; not the spec's formulas.
pub const REWARD_SOURCE: u64 = 3_000;
pub const REWARD_TARGET: u64 = 5_000;
pub const REWARD_HEAD: u64 = 2_000;
pub const REWARD_PROPOSAL: u64 = 40_000;
pub const REWARD_SYNC: u64 = 1_000;
/// Penalty for a missed attestation: source + target, as in Altair.
pub const PENALTY_MISS: u64 = REWARD_SOURCE + REWARD_TARGET;
/// Initial slashing penalty: phase0's 1/32 of 32 ETH, a round 1 ETH.
pub const PENALTY_SLASHING: u64 = 1_000_000_000;

const TAG_BLOCK: u64 = 1;
const TAG_STATE: u64 = 2;
const TAG_BODY: u64 = 3;
const TAG_SHUFFLE: u64 = 4;
const TAG_PROPOSER: u64 = 5;
const TAG_SYNC: u64 = 6;
const TAG_JUNK: u64 = 7;
const TAG_GVR: u64 = 8;
const TAG_PUBKEY: u64 = 9;
const TAG_CREDS: u64 = 10;

/// Vote flags kept per (validator, epoch).
const HEAD_OK: u8 = 1;
const TARGET_OK: u8 = 2;
const TIMELY_HEAD: u8 = 4;
/// Variant bits of a vote.
const WRONG_HEAD: u8 = 1;
const WRONG_TARGET: u8 = 2;
/// How many shufflings to keep; a monitor asks about at most a few epochs
/// around the head at a time.
const SHUFFLE_CACHE: usize = 8;

/// A 32-byte root derived from the given words.
pub fn fake_root(parts: &[u64]) -> Root {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut p = parts.to_vec();
        p.push(i as u64);
        chunk.copy_from_slice(&mix(&p).to_be_bytes());
    }
    Root(out)
}

/// Interop-style fake pubkey: 40 pseudo-random bytes then the index (so a
/// pubkey maps back to its index without a table of a million keys).
pub fn pubkey_of(v: u64) -> Pubkey {
    let mut out = [0u8; 48];
    for (i, chunk) in out[..40].chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&mix(&[TAG_PUBKEY, v, i as u64]).to_be_bytes());
    }
    out[0] = 0x80 | (out[0] & 0x3f); // compressed-point flag, as real keys
    out[40..].copy_from_slice(&v.to_be_bytes());
    Pubkey(out)
}

pub fn index_of_pubkey(pk: &Pubkey) -> Option<u64> {
    let mut idx = [0u8; 8];
    idx.copy_from_slice(&pk.0[40..]);
    let v = u64::from_be_bytes(idx);
    (pubkey_of(v) == *pk).then_some(v)
}

/// BLS withdrawal credentials (0x00 prefix), fake.
pub fn credentials_of(v: u64) -> Root {
    let mut r = fake_root(&[TAG_CREDS, v]);
    r.0[0] = 0;
    r
}

/// One epoch's committees: the active validators in shuffled order, cut
/// into `slots × committees_per_slot` consecutive committees as
/// `compute_committee` does.
#[derive(Debug)]
pub struct Shuffle {
    pub epoch: u64,
    pub slots_per_epoch: u64,
    pub committees_per_slot: u64,
    pub shuffled: Vec<u32>,
    /// Position in `shuffled` per validator; `u32::MAX` when inactive.
    position: Vec<u32>,
}

impl Shuffle {
    fn bounds(&self, c: u64) -> (usize, usize) {
        let n = self.shuffled.len() as u64;
        let count = self.slots_per_epoch * self.committees_per_slot;
        ((n * c / count) as usize, (n * (c + 1) / count) as usize)
    }

    /// Committee `index` of the slot `slot_in_epoch` slots into the epoch.
    pub fn committee(&self, slot_in_epoch: u64, index: u64) -> &[u32] {
        let (a, b) = self.bounds(slot_in_epoch * self.committees_per_slot + index);
        &self.shuffled[a..b]
    }

    /// (slot in epoch, committee index, position in committee, committee length).
    pub fn duty_of(&self, v: u64) -> Option<(u64, u64, u64, u64)> {
        let p = *self.position.get(v as usize)?;
        if p == u32::MAX {
            return None;
        }
        let n = self.shuffled.len() as u64;
        let count = self.slots_per_epoch * self.committees_per_slot;
        // Committee c holds positions [n*c/count, n*(c+1)/count); start from
        // the estimate and correct for rounding.
        let mut c = (p as u64 * count / n.max(1)).min(count - 1);
        while self.bounds(c).0 > p as usize {
            c -= 1;
        }
        while self.bounds(c).1 <= p as usize {
            c += 1;
        }
        let (a, b) = self.bounds(c);
        Some((
            c / self.committees_per_slot,
            c % self.committees_per_slot,
            (p as usize - a) as u64,
            (b - a) as u64,
        ))
    }

    pub fn active_count(&self) -> u64 {
        self.shuffled.len() as u64
    }
}

/// A validator's life in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Life {
    pub activation: u64,
    pub exit: u64,
    /// Epoch from which `exit_epoch` shows in the registry.
    pub exit_known: u64,
    pub withdrawable: u64,
    pub slashed_at: Option<u64>,
}

impl Default for Life {
    fn default() -> Self {
        Self {
            activation: 0,
            exit: FAR_FUTURE_EPOCH,
            exit_known: FAR_FUTURE_EPOCH,
            withdrawable: FAR_FUTURE_EPOCH,
            slashed_at: None,
        }
    }
}

impl Life {
    pub fn active(&self, e: u64) -> bool {
        self.activation <= e && e < self.exit
    }

    pub fn slashed(&self, e: u64) -> bool {
        self.slashed_at.is_some_and(|z| z <= e)
    }

    /// `exit_epoch` as the registry shows it at epoch `e`.
    pub fn exit_at(&self, e: u64) -> u64 {
        if e >= self.exit_known || self.slashed(e) {
            self.exit
        } else {
            FAR_FUTURE_EPOCH
        }
    }

    pub fn withdrawable_at(&self, e: u64) -> u64 {
        if self.exit_at(e) == FAR_FUTURE_EPOCH {
            FAR_FUTURE_EPOCH
        } else {
            self.withdrawable
        }
    }

    /// Status by the rules of the Beacon API (Lighthouse `from_validator`).
    pub fn status(&self, e: u64, balance: u64) -> ValidatorStatus {
        let slashed = self.slashed(e);
        if self.withdrawable_at(e) <= e {
            if balance == 0 {
                ValidatorStatus::WithdrawalDone
            } else {
                ValidatorStatus::WithdrawalPossible
            }
        } else if self.exit <= e {
            if slashed {
                ValidatorStatus::ExitedSlashed
            } else {
                ValidatorStatus::ExitedUnslashed
            }
        } else if self.activation <= e {
            if slashed {
                ValidatorStatus::ActiveSlashed
            } else if self.exit_at(e) != FAR_FUTURE_EPOCH {
                ValidatorStatus::ActiveExiting
            } else {
                ValidatorStatus::ActiveOngoing
            }
        } else {
            ValidatorStatus::PendingQueued
        }
    }
}

/// How a validator behaves in one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conduct {
    pub offline: bool,
    /// Votes go to the pool, never into a block.
    pub unincluded: bool,
    pub delay: u64,
    pub wrong_head: bool,
    pub wrong_target: bool,
    pub no_sync: bool,
}

/// An operation waiting for the first canonical block at or after `due`.
#[derive(Clone, Debug)]
enum Op {
    AttesterSlashing(Vec<u32>),
    ProposerSlashing(u32),
    Exit(u32, u64),
}

/// One simulated block (canonical or orphaned).
#[derive(Clone, Debug)]
pub struct SimBlock {
    pub slot: u64,
    pub proposer: u32,
    pub root: Root,
    pub parent_root: Root,
    pub state_root: Root,
    pub body_root: Root,
    pub fork: Fork,
    pub attestations: Vec<Attestation>,
    pub sync_bits: BitVector,
    pub proposer_slashings: Vec<u32>,
    /// Each entry: the sorted indices of one attester slashing.
    pub attester_slashings: Vec<Vec<u32>>,
    /// (validator, epoch of the exit message).
    pub exits: Vec<(u32, u64)>,
    pub canonical: bool,
    /// The second block of a double proposal: imported, never canonical,
    /// never the head.
    pub equivocation: bool,
}

/// A slashing waiting in the nodes' pools (`PoolSlashing`), never included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSlashing {
    /// The slot from which nodes hold it (and announce it on the stream).
    pub announced_slot: u64,
    pub kind: SlashingKind,
    /// Sorted; one validator for a proposer slashing.
    pub validators: Vec<u32>,
    /// The votes' target epoch, or the epoch of the doubly signed header.
    pub epoch: u64,
    /// The votes' slot, or the headers' slot.
    pub slot: u64,
}

/// Made-up danger the scenario produced: what a double-signing watch must
/// find, one entry per validator and kind (keyed like
/// `DoubleSignEvidence::key`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Danger {
    pub validator_index: ValidatorIndex,
    pub kind: DoubleSignKind,
    pub epoch: Epoch,
    /// The votes' slot, the doubly proposed slot, or the slashing's slot.
    pub slot: Slot,
    /// Where it shows first: the slot of the block carrying the second
    /// vote, of the second block, or from which the pool holds the slashing.
    pub visible_from: Slot,
}

/// Where a block lives.
#[derive(Clone, Copy, Debug)]
enum Loc {
    Canonical(usize),
    Orphan(usize),
    Second(usize),
}

/// Justification and finality of a state in a given epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finality {
    pub previous_justified: Checkpoint,
    pub current_justified: Checkpoint,
    pub finalized: Checkpoint,
    #[serde(skip)]
    bits: u8,
}

struct EpochData {
    finality: Finality,
    /// Balances at the start of the epoch (after its transition).
    balances: Vec<u64>,
    /// Slot of the first canonical inclusion of this epoch's vote; 0 = none.
    incl: Vec<u32>,
    flags: Vec<u8>,
    target_votes: u64,
    /// (participated, missed) per sync-committee member, for slots of this epoch.
    sync: BTreeMap<u32, (u32, u32)>,
}

#[derive(Clone, Copy)]
struct PendingVote {
    slot: u64,
    ready: u64,
    variant: u8,
    committee: u16,
    pos: u32,
    validator: u32,
    /// The second, conflicting vote of a `DoubleVote`.
    double: bool,
    /// In the pool only (`Unincluded`): no block takes it.
    unincluded: bool,
}

/// The chain of one simulated network.
pub struct Sim {
    sc: Scenario,
    preset: Preset,
    key: u64,
    lives: HashMap<u32, Life>,
    duty_rules: Vec<Behaviour>,
    missed: HashSet<u64>,
    orphaned: HashSet<u64>,
    ops: Vec<(u64, Op)>,
    next_slot: u64,
    canonical: Vec<Option<SimBlock>>,
    orphans: Vec<SimBlock>,
    seconds: Vec<SimBlock>,
    double_proposals: HashSet<u64>,
    double_votes: HashSet<(u32, u64)>,
    /// `PoolDoubleVote`: (validator, epoch) whose second vote stays in the
    /// pool.
    pool_double_votes: HashSet<(u32, u64)>,
    pool_slashings: Vec<PoolSlashing>,
    danger: Vec<Danger>,
    by_root: HashMap<Root, Loc>,
    by_state_root: HashMap<Root, u64>,
    last_canonical: u64,
    epochs: Vec<EpochData>,
    pool: Vec<PendingVote>,
    votes: HashMap<(u64, u8), AttestationData>,
    proposals: Vec<ProposalVerdict>,
    slashings: Vec<SlashingRecord>,
    shuffles: Mutex<BTreeMap<u64, Arc<Shuffle>>>,
    syncs: Mutex<BTreeMap<u64, Arc<Vec<u32>>>>,
}

impl Sim {
    pub fn new(sc: Scenario) -> Result<Self, ScenarioError> {
        sc.check()?;
        let preset = sc.preset();
        let key = mix(&[sc.seed, sc.fingerprint()]);
        let mut lives: HashMap<u32, Life> = HashMap::new();
        let mut ops = Vec::new();
        let mut double_votes = HashSet::new();
        let mut pool_double_votes = HashSet::new();
        let mut pool_slashings = Vec::new();
        let mut danger = Vec::new();
        let spe = sc.slots_per_epoch;
        for b in &sc.behaviours {
            let members = || b.validators.iter().map(|v| v as u32);
            match b.kind {
                BehaviourKind::DoubleVote { epoch } => {
                    double_votes.extend(members().map(|v| (v, epoch)));
                }
                BehaviourKind::PoolDoubleVote { epoch } => {
                    pool_double_votes.extend(members().map(|v| (v, epoch)));
                }
                BehaviourKind::PoolSlashing { epoch, by } => {
                    let slot = epoch * spe;
                    let mut add = |validators: Vec<u32>| {
                        for &v in &validators {
                            danger.push(Danger {
                                validator_index: ValidatorIndex(v as u64),
                                kind: match by {
                                    SlashingKind::Attester => DoubleSignKind::AttesterSlashing,
                                    SlashingKind::Proposer => DoubleSignKind::ProposerSlashing,
                                },
                                epoch: Epoch(epoch),
                                slot: Slot(slot),
                                visible_from: Slot(slot),
                            });
                        }
                        pool_slashings.push(PoolSlashing {
                            announced_slot: slot,
                            kind: by,
                            validators,
                            epoch,
                            slot,
                        });
                    };
                    match by {
                        SlashingKind::Attester => {
                            let mut vs: Vec<u32> = members().collect();
                            vs.sort_unstable();
                            vs.dedup();
                            add(vs);
                        }
                        SlashingKind::Proposer => members().for_each(|v| add(vec![v])),
                    }
                }
                BehaviourKind::Activation { epoch } => {
                    for v in members() {
                        lives.entry(v).or_default().activation = epoch;
                    }
                }
                BehaviourKind::Exit { epoch } => {
                    let signed = epoch.saturating_sub(EXIT_DELAY_EPOCHS);
                    for v in members() {
                        let l = lives.entry(v).or_default();
                        l.exit = l.exit.min(epoch);
                        l.exit_known = signed;
                        l.withdrawable = l.exit.saturating_add(WITHDRAWABILITY_DELAY);
                        ops.push((signed * spe, Op::Exit(v, signed)));
                    }
                }
                BehaviourKind::Slashed { epoch, by } => {
                    for v in members() {
                        let l = lives.entry(v).or_default();
                        l.slashed_at = Some(epoch);
                        l.exit = l.exit.min(epoch + EXIT_DELAY_EPOCHS);
                        l.withdrawable = l.exit.saturating_add(WITHDRAWABILITY_DELAY);
                        if by == SlashingKind::Proposer {
                            ops.push((epoch * spe, Op::ProposerSlashing(v)));
                        }
                    }
                    if by == SlashingKind::Attester {
                        ops.push((epoch * spe, Op::AttesterSlashing(members().collect())));
                    }
                }
                _ => {}
            }
        }
        let duty_rules = sc
            .behaviours
            .iter()
            .filter(|b| {
                !matches!(
                    b.kind,
                    BehaviourKind::Activation { .. }
                        | BehaviourKind::Exit { .. }
                        | BehaviourKind::Slashed { .. }
                        | BehaviourKind::DoubleVote { .. }
                        | BehaviourKind::PoolDoubleVote { .. }
                        | BehaviourKind::PoolSlashing { .. }
                )
            })
            .cloned()
            .collect();
        let mut sim = Sim {
            missed: sc.missed_slots.iter().copied().collect(),
            orphaned: sc.orphaned_slots.iter().copied().collect(),
            double_proposals: sc.double_proposal_slots.iter().copied().collect(),
            double_votes,
            pool_double_votes,
            pool_slashings,
            danger,
            seconds: Vec::new(),
            sc,
            preset,
            key,
            lives,
            duty_rules,
            ops,
            next_slot: 0,
            canonical: Vec::new(),
            orphans: Vec::new(),
            by_root: HashMap::new(),
            by_state_root: HashMap::new(),
            last_canonical: 0,
            epochs: Vec::new(),
            pool: Vec::new(),
            votes: HashMap::new(),
            proposals: Vec::new(),
            slashings: Vec::new(),
            shuffles: Mutex::new(BTreeMap::new()),
            syncs: Mutex::new(BTreeMap::new()),
        };
        sim.advance_to(0);
        Ok(sim)
    }

    pub fn scenario(&self) -> &Scenario {
        &self.sc
    }

    pub fn preset(&self) -> Preset {
        self.preset
    }

    pub fn slots_per_epoch(&self) -> u64 {
        self.sc.slots_per_epoch
    }

    pub fn epoch_of(&self, slot: u64) -> u64 {
        slot / self.sc.slots_per_epoch
    }

    pub fn sync_committee_size(&self) -> u64 {
        self.sc
            .sync_committee_size
            .unwrap_or(self.preset.sync_committee_size)
    }

    pub fn genesis_validators_root(&self) -> Root {
        fake_root(&[self.key, TAG_GVR])
    }

    pub fn fork_at(&self, epoch: u64) -> Fork {
        if epoch >= self.sc.electra_fork_epoch {
            Fork::Electra
        } else {
            Fork::Deneb
        }
    }

    /// Last slot generated so far.
    pub fn generated_slot(&self) -> u64 {
        self.next_slot.saturating_sub(1)
    }

    pub fn validator_count(&self) -> u64 {
        self.sc.validators
    }

    pub fn life(&self, v: u64) -> Life {
        self.lives.get(&(v as u32)).copied().unwrap_or_default()
    }

    pub fn conduct(&self, v: u64, e: u64) -> Conduct {
        let mut c = Conduct {
            offline: self.life(v).slashed(e),
            unincluded: false,
            delay: 1,
            wrong_head: false,
            wrong_target: false,
            no_sync: false,
        };
        for b in self.duty_rules.iter().filter(|b| b.covers(v, e)) {
            match b.kind {
                BehaviourKind::Offline => c.offline = true,
                BehaviourKind::Late { delay } => c.delay = c.delay.max(delay),
                BehaviourKind::WrongHead => c.wrong_head = true,
                BehaviourKind::WrongTarget => c.wrong_target = true,
                BehaviourKind::NoSync => c.no_sync = true,
                BehaviourKind::Unincluded => c.unincluded = true,
                _ => {}
            }
        }
        c
    }

    /// The shuffling of `epoch` (cached).
    pub fn shuffle(&self, epoch: u64) -> Arc<Shuffle> {
        let mut cache = self.shuffles.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache.get(&epoch) {
            return s.clone();
        }
        let n = self.sc.validators;
        let mut shuffled: Vec<u32> = if self.lives.is_empty() {
            (0..n as u32).collect()
        } else {
            (0..n)
                .filter(|&v| self.life(v).active(epoch))
                .map(|v| v as u32)
                .collect()
        };
        let mut rng = Rng::new(mix(&[self.key, TAG_SHUFFLE, epoch]));
        for i in (1..shuffled.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            shuffled.swap(i, j);
        }
        let mut position = vec![u32::MAX; n as usize];
        for (p, &v) in shuffled.iter().enumerate() {
            position[v as usize] = p as u32;
        }
        let spe = self.sc.slots_per_epoch;
        let derived = (shuffled.len() as u64 / spe / self.preset.target_committee_size)
            .clamp(1, self.preset.max_committees_per_slot);
        let s = Arc::new(Shuffle {
            epoch,
            slots_per_epoch: spe,
            committees_per_slot: self.sc.committees_per_slot.unwrap_or(derived),
            shuffled,
            position,
        });
        cache.insert(epoch, s.clone());
        while cache.len() > SHUFFLE_CACHE {
            // Evict the epoch farthest from the one just asked for.
            let far = cache
                .keys()
                .copied()
                .max_by_key(|k| k.abs_diff(epoch))
                .unwrap_or(epoch);
            cache.remove(&far);
        }
        s
    }

    /// The proposer due at `slot` (uniform over the active set; the
    /// genesis block is by validator 0). `None` when nobody is active.
    pub fn proposer(&self, slot: u64) -> Option<u64> {
        if slot == 0 {
            return Some(0);
        }
        let sh = self.shuffle(self.epoch_of(slot));
        let n = sh.shuffled.len() as u64;
        (n > 0).then(|| sh.shuffled[(mix(&[self.key, TAG_PROPOSER, slot]) % n) as usize] as u64)
    }

    pub fn sync_period(&self, epoch: u64) -> u64 {
        epoch / self.preset.epochs_per_sync_committee_period
    }

    /// The sync committee of `epoch`'s period: seats drawn with
    /// replacement (a validator may hold several seats, as in the spec).
    pub fn sync_committee(&self, epoch: u64) -> Arc<Vec<u32>> {
        let period = self.sync_period(epoch);
        if let Some(c) = self
            .syncs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&period)
        {
            return c.clone();
        }
        let sh = self.shuffle(period * self.preset.epochs_per_sync_committee_period);
        let mut rng = Rng::new(mix(&[self.key, TAG_SYNC, period]));
        let seats: Vec<u32> = if sh.shuffled.is_empty() {
            Vec::new()
        } else {
            (0..self.sync_committee_size())
                .map(|_| sh.shuffled[rng.below(sh.shuffled.len() as u64) as usize])
                .collect()
        };
        let seats = Arc::new(seats);
        let mut cache = self.syncs.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(period, seats.clone());
        while cache.len() > SHUFFLE_CACHE {
            cache.pop_first();
        }
        seats
    }

    pub fn canonical_block(&self, slot: u64) -> Option<&SimBlock> {
        self.canonical.get(slot as usize)?.as_ref()
    }

    pub fn orphan_at(&self, slot: u64) -> Option<&SimBlock> {
        self.orphans.iter().find(|b| b.slot == slot)
    }

    pub fn block_by_root(&self, root: &Root) -> Option<&SimBlock> {
        match *self.by_root.get(root)? {
            Loc::Canonical(i) => self.canonical.get(i)?.as_ref(),
            Loc::Orphan(i) => self.orphans.get(i),
            Loc::Second(i) => self.seconds.get(i),
        }
    }

    /// Second blocks of double proposals at `slot`.
    pub fn seconds_at(&self, slot: u64) -> impl Iterator<Item = &SimBlock> {
        self.seconds.iter().filter(move |b| b.slot == slot)
    }

    /// Slashings the nodes' pools hold once their head reached `head`.
    pub fn pool_slashings(&self, head: u64) -> impl Iterator<Item = &PoolSlashing> {
        self.pool_slashings
            .iter()
            .filter(move |p| p.announced_slot <= head)
    }

    /// Slashings that reach the pools exactly at `slot` (event stream).
    pub fn slashings_announced_at(&self, slot: u64) -> impl Iterator<Item = &PoolSlashing> {
        self.pool_slashings
            .iter()
            .filter(move |p| p.announced_slot == slot)
    }

    /// The attestation pool as a node at `head` shows it: one aggregate per
    /// (slot, vote, committee) — gossip aggregates cover one committee, in
    /// Electra too — of the votes cast and not yet included (plus those no
    /// block takes). The pool is that of the last generated slot, which is
    /// the head except on lagging nodes.
    pub fn pool_attestations(&self, head: u64) -> Vec<Attestation> {
        let electra = self.fork_at(self.epoch_of(head)).has_committee_bits();
        let mut groups: BTreeMap<(u64, u8, u16), Vec<usize>> = BTreeMap::new();
        for (i, p) in self.pool.iter().enumerate() {
            if p.slot <= head && p.ready <= head + 1 {
                groups
                    .entry((p.slot, p.variant, p.committee))
                    .or_default()
                    .push(i);
            }
        }
        let mut out = Vec::new();
        for ((slot, variant, committee), members) in groups {
            let Some(data) = self.votes.get(&(slot, variant)) else {
                continue;
            };
            let sh = self.shuffle(self.epoch_of(slot));
            let len = sh
                .committee(slot % self.sc.slots_per_epoch, committee as u64)
                .len();
            let mut data = data.clone();
            let bits = BitList::from_bits(len, members.iter().map(|&i| self.pool[i].pos as usize));
            out.push(if electra {
                Attestation {
                    aggregation_bits: bits,
                    committee_bits: Some(BitVector::from_bits(
                        self.preset.max_committees_per_slot as usize,
                        [committee as usize],
                    )),
                    data,
                }
            } else {
                data.index = committee as u64;
                Attestation {
                    aggregation_bits: bits,
                    committee_bits: None,
                    data,
                }
            });
        }
        out
    }

    pub fn slot_of_state_root(&self, root: &Root) -> Option<u64> {
        self.by_state_root.get(root).copied()
    }

    /// The latest canonical block at or before `slot` (genesis at least).
    pub fn block_at_or_before(&self, slot: u64) -> &SimBlock {
        let top = (slot as usize).min(self.canonical.len().saturating_sub(1));
        self.canonical
            .get(..=top)
            .unwrap_or_default()
            .iter()
            .rev()
            .flatten()
            .next()
            .unwrap_or_else(|| self.genesis())
    }

    fn genesis(&self) -> &SimBlock {
        // Slot 0 always holds the genesis block once `new` has run.
        self.canonical
            .first()
            .and_then(|b| b.as_ref())
            .unwrap_or_else(|| unreachable_genesis())
    }

    /// Checkpoint root of `epoch`: the block at its first slot or the latest before.
    pub fn checkpoint(&self, epoch: u64) -> Checkpoint {
        let root = self
            .block_at_or_before(epoch * self.sc.slots_per_epoch)
            .root;
        Checkpoint {
            epoch: Epoch(epoch),
            root,
        }
    }

    /// Justification and finality of the state in `epoch`.
    pub fn finality(&self, epoch: u64) -> Finality {
        let last = self.epochs.len().saturating_sub(1);
        self.epochs[(epoch as usize).min(last)].finality
    }

    pub fn balance(&self, v: u64, epoch: u64) -> u64 {
        let last = self.epochs.len().saturating_sub(1);
        self.epochs[(epoch as usize).min(last)]
            .balances
            .get(v as usize)
            .copied()
            .unwrap_or(0)
    }

    /// `effective_balance`: whole ETH, capped at 32 (hysteresis ignored).
    pub fn effective_balance(&self, v: u64, epoch: u64) -> u64 {
        let b = self.balance(v, epoch);
        (b - b % super::scenario::GWEI_PER_ETH).min(START_BALANCE)
    }

    /// Generates every slot up to and including `slot`.
    pub fn advance_to(&mut self, slot: u64) {
        while self.next_slot <= slot {
            self.step();
        }
    }

    fn step(&mut self) {
        let s = self.next_slot;
        let spe = self.sc.slots_per_epoch;
        let e = s / spe;
        if s % spe == 0 {
            self.transition(e);
        }
        if s == 0 {
            let sync_bits = BitVector::from_bits(self.sync_committee_size() as usize, []);
            let b = self.make_block(0, 0, Root::ZERO, Vec::new(), sync_bits, Vec::new());
            self.store(b);
        } else {
            self.produce(s, e);
        }
        self.cast_votes(s, e);
        // Votes whose window (end of the next epoch, EIP-7045) has closed,
        // or that the next block's fork cannot carry, are lost.
        let next_e = (s + 1) / spe;
        let next_fork = self.fork_at(next_e);
        let forks: Vec<Fork> = (0..=next_e).map(|x| self.fork_at(x)).collect();
        self.pool.retain(|p| {
            let pe = p.slot / spe;
            pe + 1 >= next_e
                && forks[pe as usize].has_committee_bits() == next_fork.has_committee_bits()
        });
        self.votes.retain(|(slot, _), _| slot / spe + 1 >= next_e);
        self.next_slot += 1;
    }

    fn make_block(
        &self,
        s: u64,
        proposer: u32,
        parent_root: Root,
        attestations: Vec<Attestation>,
        sync_bits: BitVector,
        ops: Vec<Op>,
    ) -> SimBlock {
        let orphan = self.orphaned.contains(&s) as u64;
        let mut b = SimBlock {
            slot: s,
            proposer,
            root: fake_root(&[self.key, TAG_BLOCK, s, orphan]),
            parent_root,
            state_root: fake_root(&[self.key, TAG_STATE, s, orphan]),
            body_root: fake_root(&[self.key, TAG_BODY, s, orphan]),
            fork: self.fork_at(self.epoch_of(s)),
            attestations,
            sync_bits,
            proposer_slashings: Vec::new(),
            attester_slashings: Vec::new(),
            exits: Vec::new(),
            canonical: orphan == 0,
            equivocation: false,
        };
        for op in ops {
            match op {
                Op::AttesterSlashing(vs) => {
                    let mut vs = vs;
                    vs.sort_unstable();
                    b.attester_slashings.push(vs)
                }
                Op::ProposerSlashing(v) => b.proposer_slashings.push(v),
                Op::Exit(v, e) => b.exits.push((v, e)),
            }
        }
        b
    }

    fn store(&mut self, b: SimBlock) {
        if b.equivocation {
            // Its state is never asked for by slot or root: no state entry.
            self.by_root.insert(b.root, Loc::Second(self.seconds.len()));
            self.seconds.push(b);
            return;
        }
        self.by_state_root.insert(b.state_root, b.slot);
        if b.canonical {
            let slot = b.slot as usize;
            if self.canonical.len() <= slot {
                self.canonical.resize(slot + 1, None);
            }
            self.by_root.insert(b.root, Loc::Canonical(slot));
            self.last_canonical = b.slot;
            self.canonical[slot] = Some(b);
        } else {
            self.by_root.insert(b.root, Loc::Orphan(self.orphans.len()));
            self.orphans.push(b);
        }
    }

    fn transition(&mut self, e: u64) {
        let n = self.sc.validators as usize;
        if e == 0 {
            let zero = Checkpoint {
                epoch: Epoch(0),
                root: Root::ZERO,
            };
            self.epochs.push(EpochData {
                finality: Finality {
                    previous_justified: zero,
                    current_justified: zero,
                    finalized: zero,
                    bits: 0,
                },
                balances: vec![START_BALANCE; n],
                incl: vec![0; n],
                flags: vec![0; n],
                target_votes: 0,
                sync: BTreeMap::new(),
            });
            return;
        }
        let c = e - 1;
        let mut f = self.epochs[c as usize].finality;
        // weigh_justification_and_finalization, with vote counts for
        // balances; skipped for the first two epochs as in the spec.
        if c > 1 {
            let supermajority =
                |votes: u64, epoch: u64| 3 * votes >= 2 * self.shuffle(epoch).active_count().max(1);
            let (old_prev, old_cur) = (f.previous_justified, f.current_justified);
            f.previous_justified = f.current_justified;
            f.bits = (f.bits << 1) & 0b1111;
            if supermajority(self.epochs[c as usize - 1].target_votes, c - 1) {
                f.current_justified = self.checkpoint(c - 1);
                f.bits |= 0b10;
            }
            if supermajority(self.epochs[c as usize].target_votes, c) {
                f.current_justified = self.checkpoint(c);
                f.bits |= 0b01;
            }
            let b = f.bits;
            if b & 0b1110 == 0b1110 && old_prev.epoch.0 + 3 == c {
                f.finalized = old_prev;
            }
            if b & 0b0110 == 0b0110 && old_prev.epoch.0 + 2 == c {
                f.finalized = old_prev;
            }
            if b & 0b0111 == 0b0111 && old_cur.epoch.0 + 2 == c {
                f.finalized = old_cur;
            }
            if b & 0b0011 == 0b0011 && old_cur.epoch.0 + 1 == c {
                f.finalized = old_cur;
            }
        }
        let mut bal = self.epochs[c as usize].balances.clone();
        // Votes of c-1 are final now (their window ended with c).
        if c >= 1 {
            let prev = &self.epochs[c as usize - 1];
            for &v in &self.shuffle(c - 1).shuffled {
                let v = v as usize;
                let delta: i64 = if prev.incl[v] > 0 {
                    let fl = prev.flags[v];
                    let t = if fl & TARGET_OK != 0 { 1 } else { -1 };
                    let h = if fl & TIMELY_HEAD != 0 {
                        REWARD_HEAD
                    } else {
                        0
                    };
                    REWARD_SOURCE as i64 + t * REWARD_TARGET as i64 + h as i64
                } else {
                    -(PENALTY_MISS as i64)
                };
                bal[v] = bal[v].saturating_add_signed(delta);
            }
        }
        let spe = self.sc.slots_per_epoch;
        for s in c * spe..e * spe {
            if let Some(b) = self.canonical_block(s) {
                if s > 0 {
                    bal[b.proposer as usize] += REWARD_PROPOSAL;
                }
            }
        }
        for (&v, &(ok, miss)) in &self.epochs[c as usize].sync {
            let d = (ok as i64 - miss as i64) * REWARD_SYNC as i64;
            bal[v as usize] = bal[v as usize].saturating_add_signed(d);
        }
        for (&v, l) in &self.lives {
            if l.slashed_at == Some(e) {
                bal[v as usize] = bal[v as usize].saturating_sub(PENALTY_SLASHING);
            }
        }
        self.epochs.push(EpochData {
            finality: f,
            balances: bal,
            incl: vec![0; n],
            flags: vec![0; n],
            target_votes: 0,
            sync: BTreeMap::new(),
        });
    }

    fn produce(&mut self, s: u64, e: u64) {
        let Some(proposer) = self.proposer(s) else {
            return;
        };
        let duty = |status, root| ProposalVerdict {
            slot: Slot(s),
            validator_index: Some(ValidatorIndex(proposer)),
            status,
            block_root: root,
            reason: None,
        };
        if self.missed.contains(&s) || self.conduct(proposer, e).offline {
            self.proposals.push(duty(ProposalStatus::Missed, None));
            return;
        }
        let fork = self.fork_at(e);
        let (atts, used) = self.pack(s, fork);
        let (sync_bits, signers) = self.sync_aggregate(s);
        let due: Vec<usize> = (0..self.ops.len())
            .filter(|&i| self.ops[i].0 <= s)
            .collect();
        let ops = due.iter().map(|&i| self.ops[i].1.clone()).collect();
        let parent = self.block_at_or_before(s).root;
        let b = self.make_block(s, proposer as u32, parent, atts, sync_bits, ops);
        if !b.canonical {
            self.proposals
                .push(duty(ProposalStatus::Orphaned, Some(b.root)));
            self.store(b);
            return;
        }
        self.proposals
            .push(duty(ProposalStatus::Proposed, Some(b.root)));
        if self.double_proposals.contains(&s) {
            // Same slot, proposer and parent; another body, so another root.
            let mut second = b.clone();
            second.root = fake_root(&[self.key, TAG_BLOCK, s, 2]);
            second.state_root = fake_root(&[self.key, TAG_STATE, s, 2]);
            second.body_root = fake_root(&[self.key, TAG_BODY, s, 2]);
            second.attestations = Vec::new();
            second.canonical = false;
            second.equivocation = true;
            self.danger.push(Danger {
                validator_index: ValidatorIndex(proposer),
                kind: DoubleSignKind::DoubleProposal,
                epoch: Epoch(e),
                slot: Slot(s),
                visible_from: Slot(s),
            });
            self.store(second);
        }
        // Record first inclusions.
        let spe = self.sc.slots_per_epoch;
        let mut keep = vec![true; self.pool.len()];
        let used_doubles: Vec<usize> = used
            .iter()
            .copied()
            .filter(|&i| self.pool[i].double)
            .collect();
        for i in used {
            keep[i] = false;
            let p = self.pool[i];
            let ed = &mut self.epochs[(p.slot / spe) as usize];
            let v = p.validator as usize;
            if ed.incl[v] == 0 {
                ed.incl[v] = s as u32;
                let mut fl = 0;
                if p.variant & WRONG_HEAD == 0 {
                    fl |= HEAD_OK;
                    if s == p.slot + 1 {
                        fl |= TIMELY_HEAD;
                    }
                }
                if p.variant & WRONG_TARGET == 0 {
                    fl |= TARGET_OK;
                    ed.target_votes += 1;
                }
                ed.flags[v] = fl;
            }
        }
        for &i in &used_doubles {
            let p = self.pool[i];
            let epoch = p.slot / spe;
            let v = ValidatorIndex(p.validator as u64);
            if !self.danger.iter().any(|d| {
                d.validator_index == v && d.kind == DoubleSignKind::DoubleVote && d.epoch.0 == epoch
            }) {
                self.danger.push(Danger {
                    validator_index: v,
                    kind: DoubleSignKind::DoubleVote,
                    epoch: Epoch(epoch),
                    slot: Slot(p.slot),
                    visible_from: Slot(s),
                });
            }
        }
        let mut it = keep.into_iter();
        self.pool.retain(|_| it.next().unwrap_or(true));
        // Sync participation of slot s-1.
        let sync = &mut self.epochs[((s - 1) / spe) as usize].sync;
        for (v, signed) in signers {
            let entry = sync.entry(v).or_insert((0, 0));
            if signed {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
        for v in b
            .proposer_slashings
            .iter()
            .map(|&v| (v, SlashingKind::Proposer))
            .chain(
                b.attester_slashings
                    .iter()
                    .flatten()
                    .map(|&v| (v, SlashingKind::Attester)),
            )
        {
            self.slashings.push(SlashingRecord {
                validator_index: ValidatorIndex(v.0 as u64),
                epoch: Epoch(e),
                included_in_slot: Slot(s),
                kind: v.1,
            });
        }
        for i in due.into_iter().rev() {
            self.ops.remove(i);
        }
        self.store(b);
    }

    /// The sync aggregate of the block at `s` (signatures for slot s-1, by
    /// the committee of `s`'s period) and who signed, per distinct member.
    ///
    /// Nobody signs the genesis slot: clients start sync-committee duties
    /// after genesis, so the block at slot 1 carries an empty aggregate
    /// (Lodestar's devnet recording: block 1 has `sync_committee_bits`
    /// 0x00000000 with 48 of 64 validators online), and a monitor gives
    /// slot 0 no duty (`analysis::sync`).
    fn sync_aggregate(&self, s: u64) -> (BitVector, Vec<(u32, bool)>) {
        if s <= 1 {
            return (
                BitVector::from_bits(self.sync_committee_size() as usize, []),
                Vec::new(),
            );
        }
        let seats = self.sync_committee(self.epoch_of(s));
        let te = self.epoch_of(s - 1);
        let mut signed: BTreeMap<u32, bool> = BTreeMap::new();
        for &v in seats.iter() {
            signed.entry(v).or_insert_with(|| {
                let c = self.conduct(v as u64, te);
                self.life(v as u64).active(te) && !c.offline && !c.no_sync
            });
        }
        let bits = BitVector::from_bits(
            self.sync_committee_size() as usize,
            seats
                .iter()
                .enumerate()
                .filter(|(_, v)| signed.get(v).copied().unwrap_or(false))
                .map(|(i, _)| i),
        );
        (bits, signed.into_iter().collect())
    }

    /// Picks the aggregates of a block at `s`: one per (slot, vote) spanning
    /// committees in Electra, one per (slot, vote, committee) before.
    fn pack(&self, s: u64, fork: Fork) -> (Vec<Attestation>, Vec<usize>) {
        let electra = fork.has_committee_bits();
        let mut groups: BTreeMap<(u64, u8, u16), Vec<usize>> = BTreeMap::new();
        for (i, p) in self.pool.iter().enumerate() {
            if p.ready <= s && !p.unincluded {
                let c = if electra { 0 } else { p.committee };
                groups.entry((p.slot, p.variant, c)).or_default().push(i);
            }
        }
        let max = if electra {
            MAX_ATTESTATIONS_ELECTRA
        } else {
            MAX_ATTESTATIONS
        };
        let mut atts = Vec::new();
        let mut used = Vec::new();
        for ((slot, variant, committee), members) in groups.into_iter().take(max) {
            let Some(data) = self.votes.get(&(slot, variant)) else {
                continue;
            };
            let sh = self.shuffle(self.epoch_of(slot));
            let sie = slot % self.sc.slots_per_epoch;
            let mut data = data.clone();
            if electra {
                let ks: std::collections::BTreeSet<u16> =
                    members.iter().map(|&i| self.pool[i].committee).collect();
                let mut offsets = HashMap::new();
                let mut len = 0usize;
                for &k in &ks {
                    offsets.insert(k, len);
                    len += sh.committee(sie, k as u64).len();
                }
                let bits = members
                    .iter()
                    .map(|&i| offsets[&self.pool[i].committee] + self.pool[i].pos as usize);
                atts.push(Attestation {
                    aggregation_bits: BitList::from_bits(len, bits),
                    committee_bits: Some(BitVector::from_bits(
                        self.preset.max_committees_per_slot as usize,
                        ks.iter().map(|&k| k as usize),
                    )),
                    data,
                });
            } else {
                data.index = committee as u64;
                let len = sh.committee(sie, committee as u64).len();
                atts.push(Attestation {
                    aggregation_bits: BitList::from_bits(
                        len,
                        members.iter().map(|&i| self.pool[i].pos as usize),
                    ),
                    committee_bits: None,
                    data,
                });
            }
            used.extend(members);
        }
        (atts, used)
    }

    fn cast_votes(&mut self, s: u64, e: u64) {
        let head = self.block_at_or_before(s);
        let head_root = head.root;
        let wrong_head = if head.slot == 0 {
            fake_root(&[self.key, TAG_JUNK, s])
        } else {
            head.parent_root
        };
        let target = self.checkpoint(e);
        let source = self.epochs[e as usize].finality.current_justified;
        for variant in 0..4u8 {
            let data = AttestationData {
                slot: Slot(s),
                index: 0,
                beacon_block_root: if variant & WRONG_HEAD != 0 {
                    wrong_head
                } else {
                    head_root
                },
                source,
                target: Checkpoint {
                    epoch: Epoch(e),
                    root: if variant & WRONG_TARGET != 0 {
                        fake_root(&[self.key, TAG_JUNK, e, u64::MAX])
                    } else {
                        target.root
                    },
                },
            };
            self.votes.insert((s, variant), data);
        }
        let sh = self.shuffle(e);
        let sie = s % self.sc.slots_per_epoch;
        for k in 0..sh.committees_per_slot {
            for (pos, &v) in sh.committee(sie, k).iter().enumerate() {
                let c = self.conduct(v as u64, e);
                if c.offline {
                    continue;
                }
                let variant =
                    ((c.wrong_head as u8) * WRONG_HEAD) | ((c.wrong_target as u8) * WRONG_TARGET);
                let vote = PendingVote {
                    slot: s,
                    ready: s + c.delay,
                    variant,
                    committee: k as u16,
                    pos: pos as u32,
                    validator: v,
                    double: false,
                    unincluded: c.unincluded,
                };
                self.pool.push(vote);
                if self.double_votes.contains(&(v, e)) {
                    // Another head root, same target: a slashable double
                    // vote, includable one slot after the first so the
                    // first stays the first inclusion.
                    self.pool.push(PendingVote {
                        ready: vote.ready + 1,
                        variant: variant ^ WRONG_HEAD,
                        double: true,
                        ..vote
                    });
                }
                if self.pool_double_votes.contains(&(v, e)) {
                    // Another head root, same target, never packed: the
                    // pools show it from the slot its aggregate is ready.
                    let second = PendingVote {
                        ready: vote.ready + 1,
                        variant: variant ^ WRONG_HEAD,
                        double: true,
                        unincluded: true,
                        ..vote
                    };
                    self.pool.push(second);
                    let validator_index = ValidatorIndex(v as u64);
                    if !self.danger.iter().any(|d| {
                        d.validator_index == validator_index
                            && d.kind == DoubleSignKind::DoubleVote
                            && d.epoch.0 == e
                    }) {
                        self.danger.push(Danger {
                            validator_index,
                            kind: DoubleSignKind::DoubleVote,
                            epoch: Epoch(e),
                            slot: Slot(s),
                            // `pool_attestations` shows a vote once
                            // `ready <= head + 1`.
                            visible_from: Slot(second.ready.saturating_sub(1).max(s)),
                        });
                    }
                }
            }
        }
    }

    /// The ground truth of one validator's attestation duty in `epoch`.
    pub fn attestation_truth(&self, v: u64, epoch: u64) -> AttestationVerdict {
        let mut out = AttestationVerdict {
            validator_index: ValidatorIndex(v),
            epoch: Epoch(epoch),
            status: AttestationStatus::Inactive,
            duty_slot: None,
            inclusion_slot: None,
            inclusion_delay: None,
            late: None,
            source_correct: None,
            target_correct: None,
            head_correct: None,
            reason: None,
        };
        let spe = self.sc.slots_per_epoch;
        let Some((sie, ..)) = self.shuffle(epoch).duty_of(v) else {
            return out;
        };
        let duty = epoch * spe + sie;
        out.duty_slot = Some(Slot(duty));
        let incl = self
            .epochs
            .get(epoch as usize)
            .and_then(|ed| ed.incl.get(v as usize).copied())
            .unwrap_or(0) as u64;
        if incl == 0 {
            // The window closes with the end of the next epoch (EIP-7045).
            out.status = if self.next_slot >= (epoch + 2) * spe {
                AttestationStatus::Missed
            } else {
                AttestationStatus::Pending
            };
            return out;
        }
        let fl = self.epochs[epoch as usize].flags[v as usize];
        let first_block = (duty + 1..=incl)
            .find(|&s| self.canonical_block(s).is_some())
            .unwrap_or(incl);
        out.status = AttestationStatus::Included;
        out.inclusion_slot = Some(Slot(incl));
        out.inclusion_delay = Some(incl - duty);
        out.late = Some(incl > first_block);
        out.source_correct = Some(true);
        out.target_correct = Some(fl & TARGET_OK != 0);
        out.head_correct = Some(fl & HEAD_OK != 0);
        out
    }

    /// Everything the scenario produced for `epochs` (inclusive) and the
    /// given validators (all when `None`).
    pub fn truth(&self, first: u64, last: u64, only: Option<&[u64]>) -> GroundTruth {
        let all: Vec<u64>;
        let vs = match only {
            Some(v) => v,
            None => {
                all = (0..self.sc.validators).collect();
                &all
            }
        };
        let watched: HashSet<u64> = vs.iter().copied().collect();
        let last = last.min(self.epochs.len().saturating_sub(1) as u64);
        let spe = self.sc.slots_per_epoch;
        let mut t = GroundTruth::default();
        for e in first..=last {
            for &v in vs {
                t.attestations.push(self.attestation_truth(v, e));
                let life = self.life(v);
                let bal = self.balance(v, e);
                t.balances.push(BalanceRecord {
                    validator_index: ValidatorIndex(v),
                    epoch: Epoch(e),
                    balance: Gwei(bal),
                    effective_balance: Gwei(self.effective_balance(v, e)),
                    status: life.status(e, bal),
                    slashed: life.slashed(e),
                    balance_change: (e > 0).then(|| bal as i64 - self.balance(v, e - 1) as i64),
                });
            }
            for (&v, &(ok, miss)) in &self.epochs[e as usize].sync {
                if watched.contains(&(v as u64)) {
                    t.sync.push(SyncVerdict {
                        validator_index: ValidatorIndex(v as u64),
                        epoch: Epoch(e),
                        participated: ok,
                        missed: miss,
                    });
                }
            }
            t.finality.push((Epoch(e), self.finality(e)));
        }
        let slots = first * spe..(last + 1) * spe;
        t.proposals = self
            .proposals
            .iter()
            .filter(|p| {
                slots.contains(&p.slot.0)
                    && p.validator_index.is_some_and(|v| watched.contains(&v.0))
            })
            .cloned()
            .collect();
        t.slashings = self
            .slashings
            .iter()
            .filter(|r| {
                (first..=last).contains(&r.epoch.0) && watched.contains(&r.validator_index.0)
            })
            .cloned()
            .collect();
        t.danger = self
            .danger
            .iter()
            .filter(|d| {
                (first..=last).contains(&d.epoch.0) && watched.contains(&d.validator_index.0)
            })
            .cloned()
            .collect();
        t.danger.sort();
        t
    }
}

#[cold]
fn unreachable_genesis() -> &'static SimBlock {
    // `Sim::new` generates slot 0 before returning, so this cannot run; a
    // static fallback keeps the accessor total without a panic.
    static EMPTY: std::sync::OnceLock<SimBlock> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| SimBlock {
        slot: 0,
        proposer: 0,
        root: Root::ZERO,
        parent_root: Root::ZERO,
        state_root: Root::ZERO,
        body_root: Root::ZERO,
        fork: Fork::Electra,
        attestations: Vec::new(),
        sync_bits: BitVector::from_bits(0, []),
        proposer_slashings: Vec::new(),
        attester_slashings: Vec::new(),
        exits: Vec::new(),
        canonical: true,
        equivocation: false,
    })
}

/// What the scenario produced: the answers a monitor must find.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub attestations: Vec<AttestationVerdict>,
    pub proposals: Vec<ProposalVerdict>,
    pub sync: Vec<SyncVerdict>,
    /// Balances at the start of each epoch (the state of its first slot).
    pub balances: Vec<BalanceRecord>,
    pub slashings: Vec<SlashingRecord>,
    /// Double votes, double proposals and pool slashings of the watched
    /// validators, by the epoch they are for.
    pub danger: Vec<Danger>,
    /// Checkpoints of the state in each epoch.
    pub finality: Vec<(Epoch, Finality)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::ValidatorSet;

    fn sim(sc: Scenario, epochs: u64) -> Sim {
        let mut s = Sim::new(sc).unwrap();
        s.advance_to(epochs * 8 - 1);
        s
    }

    #[test]
    fn committees_cover_every_active_validator_once() {
        let s = Sim::new(Scenario {
            validators: 100,
            ..Scenario::default()
        })
        .unwrap();
        let sh = s.shuffle(3);
        assert_eq!(sh.committees_per_slot, 3); // 100 / 8 / 4
        let mut seen: Vec<u32> = (0..8)
            .flat_map(|i| (0..3).map(move |k| (i, k)))
            .flat_map(|(i, k)| sh.committee(i, k).to_vec())
            .collect();
        seen.sort();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        for v in [0u64, 17, 99] {
            let (sie, k, pos, len) = sh.duty_of(v).unwrap();
            assert_eq!(sh.committee(sie, k)[pos as usize], v as u32);
            assert_eq!(sh.committee(sie, k).len() as u64, len);
        }
    }

    #[test]
    fn healthy_chain_finalizes_and_everyone_is_included_on_time() {
        let s = sim(Scenario::default(), 6);
        let t = s.truth(0, 3, None);
        assert!(t
            .attestations
            .iter()
            .all(|a| a.status == AttestationStatus::Included && a.inclusion_delay == Some(1)));
        assert_eq!(s.finality(5).finalized.epoch, Epoch(3));
        assert!(t
            .proposals
            .iter()
            .all(|p| p.status == ProposalStatus::Proposed));
        assert!(s.balance(3, 4) > START_BALANCE);
    }

    #[test]
    fn made_up_danger_is_in_the_chain_and_in_the_ground_truth() {
        let sc = Scenario {
            double_proposal_slots: vec![27],
            behaviours: vec![
                Behaviour::new(ValidatorSet::one(5), BehaviourKind::DoubleVote { epoch: 2 }),
                Behaviour::new(
                    ValidatorSet::range(6, 7),
                    BehaviourKind::PoolSlashing {
                        epoch: 3,
                        by: SlashingKind::Attester,
                    },
                ),
                Behaviour::new(
                    ValidatorSet::one(9),
                    BehaviourKind::PoolSlashing {
                        epoch: 4,
                        by: SlashingKind::Proposer,
                    },
                ),
            ],
            ..Scenario::default()
        };
        let s = sim(sc, 6);
        let t = s.truth(0, 5, None);
        let got: Vec<(u64, DoubleSignKind, u64)> = t
            .danger
            .iter()
            .map(|d| (d.validator_index.0, d.kind, d.epoch.0))
            .collect();
        let proposer = s.proposer(27).unwrap();
        let mut want = vec![
            (5, DoubleSignKind::DoubleVote, 2),
            (6, DoubleSignKind::AttesterSlashing, 3),
            (7, DoubleSignKind::AttesterSlashing, 3),
            (9, DoubleSignKind::ProposerSlashing, 4),
            (proposer, DoubleSignKind::DoubleProposal, 3),
        ];
        want.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want);

        // Two different votes of validator 5 for target epoch 2 are in
        // canonical blocks; its first inclusion is the honest one.
        let (sie, k, pos, _) = s.shuffle(2).duty_of(5).unwrap();
        let duty = 16 + sie;
        let votes: Vec<&AttestationData> = (duty + 1..=31)
            .filter_map(|x| s.canonical_block(x))
            .flat_map(|b| b.attestations.iter())
            .filter(|a| a.data.slot.0 == duty)
            .filter(|a| {
                let committees: Vec<usize> = match &a.committee_bits {
                    Some(bits) => bits.ones().collect(),
                    None => vec![a.data.index as usize],
                };
                let mut offset = 0;
                for c in 0..s.shuffle(2).committees_per_slot as usize {
                    if c == k as usize {
                        return committees.contains(&c)
                            && a.aggregation_bits.get(offset + pos as usize);
                    }
                    if committees.contains(&c) {
                        offset += s.shuffle(2).committee(sie, c as u64).len();
                    }
                }
                false
            })
            .map(|a| &a.data)
            .collect();
        assert_eq!(votes.len(), 2, "{votes:?}");
        assert_ne!(votes[0].beacon_block_root, votes[1].beacon_block_root);
        assert_eq!(votes[0].target, votes[1].target);
        let v5 = s.attestation_truth(5, 2);
        assert_eq!(v5.status, AttestationStatus::Included);
        assert_eq!(v5.head_correct, Some(true));

        // The second block of slot 27: same proposer and parent, another
        // root, never canonical; the first block stays canonical.
        let first = s.canonical_block(27).unwrap();
        let second: Vec<&SimBlock> = s.seconds_at(27).collect();
        assert_eq!(second.len(), 1);
        assert_ne!(second[0].root, first.root);
        assert_eq!(
            (second[0].proposer, second[0].parent_root),
            (first.proposer, first.parent_root)
        );
        assert!(!second[0].canonical && second[0].equivocation);
        assert_eq!(s.block_by_root(&second[0].root).unwrap().slot, 27);
        assert_eq!(
            t.proposals.iter().find(|p| p.slot.0 == 27).unwrap().status,
            ProposalStatus::Proposed
        );

        // Pool slashings show from their epoch's first slot; nobody is
        // slashed on chain.
        assert_eq!(s.pool_slashings(23).count(), 0);
        assert_eq!(s.pool_slashings(24).count(), 1);
        assert_eq!(s.pool_slashings(47).count(), 2);
        assert_eq!(s.slashings_announced_at(32).count(), 1);
        assert!(t.slashings.is_empty());
        assert!(!s.life(6).slashed(5));
    }

    #[test]
    fn unincluded_votes_wait_in_the_pool_and_never_reach_a_block() {
        let sc = Scenario {
            behaviours: vec![Behaviour::new(
                ValidatorSet::range(0, 3),
                BehaviourKind::Unincluded,
            )],
            ..Scenario::default()
        };
        let mut s = Sim::new(sc).unwrap();
        s.advance_to(4 * 8 + 7);
        for v in 0..4 {
            assert_eq!(s.attestation_truth(v, 2).status, AttestationStatus::Missed);
        }
        assert_eq!(
            s.attestation_truth(4, 2).status,
            AttestationStatus::Included
        );
        // The pool at the head holds the votes of the head slot (no block
        // could take them yet) and, before it, only those of the unincluded
        // validators, of this and the previous epoch.
        let head = s.generated_slot();
        let pool = s.pool_attestations(head);
        assert!(pool.iter().any(|a| a.data.slot.0 == head));
        let mut members = std::collections::BTreeSet::new();
        for a in pool.iter().filter(|a| a.data.slot.0 < head) {
            let slot = a.data.slot.0;
            assert!(slot / 8 + 1 >= head / 8, "slot {slot} is out of the window");
            let sh = s.shuffle(slot / 8);
            let k = a
                .committee_bits
                .as_ref()
                .map_or(a.data.index, |b| b.ones().next().unwrap() as u64);
            for i in (0..a.aggregation_bits.len()).filter(|&i| a.aggregation_bits.get(i)) {
                members.insert(sh.committee(slot % 8, k)[i]);
            }
        }
        assert_eq!(members.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_pool_double_vote_waits_in_the_pool_and_never_reaches_a_block() {
        let sc = Scenario {
            behaviours: vec![Behaviour::new(
                ValidatorSet::one(5),
                BehaviourKind::PoolDoubleVote { epoch: 2 },
            )],
            ..Scenario::default()
        };
        let mut s = Sim::new(sc).unwrap();
        let sh = s.shuffle(2);
        let (sie, k, pos, _) = sh.duty_of(5).unwrap();
        let duty = 16 + sie;
        s.advance_to(duty + 2);
        // The first vote is included as usual.
        assert_eq!(
            s.attestation_truth(5, 2).status,
            AttestationStatus::Included
        );
        // The pool holds another vote of validator 5 for target epoch 2.
        let mine = |a: &Attestation| {
            let kk = a
                .committee_bits
                .as_ref()
                .map_or(a.data.index, |b| b.ones().next().unwrap() as u64);
            a.data.slot.0 == duty && kk == k && a.aggregation_bits.get(pos as usize)
        };
        let pool: Vec<Attestation> = s
            .pool_attestations(s.generated_slot())
            .into_iter()
            .filter(|a| mine(a))
            .collect();
        assert_eq!(pool.len(), 1, "{pool:?}");
        assert_eq!(pool[0].data.target.epoch, Epoch(2));
        // No block carries it: every block vote of 5 for slot `duty` is the
        // first one, not the pool's.
        s.advance_to(4 * 8);
        let included: Vec<AttestationData> = (duty + 1..=4 * 8)
            .filter_map(|x| s.canonical_block(x))
            .flat_map(|b| b.attestations.iter())
            .filter(|a| a.data.slot.0 == duty)
            .map(|a| a.data.clone())
            .collect();
        assert!(!included.is_empty());
        let mut pool_data = pool[0].data.clone();
        pool_data.index = 0;
        assert!(included
            .iter()
            .all(|d| d.beacon_block_root != pool_data.beacon_block_root));
        // The ground truth names it once, as a double vote of epoch 2.
        let danger: Vec<_> = s
            .truth(0, 4, None)
            .danger
            .iter()
            .map(|d| (d.validator_index.0, d.kind, d.epoch.0))
            .collect();
        assert_eq!(danger, vec![(5, DoubleSignKind::DoubleVote, 2)]);
    }

    #[test]
    fn offline_validators_miss_and_stall_finality() {
        let sc = Scenario {
            behaviours: vec![Behaviour::new(
                ValidatorSet::range(0, 31),
                BehaviourKind::Offline,
            )],
            ..Scenario::default()
        };
        let s = sim(sc, 6);
        assert_eq!(s.attestation_truth(3, 2).status, AttestationStatus::Missed);
        assert_eq!(
            s.attestation_truth(40, 2).status,
            AttestationStatus::Included
        );
        assert_eq!(s.finality(5).finalized.epoch, Epoch(0));
        assert!(s.balance(3, 4) < START_BALANCE);
        for p in s.truth(0, 4, None).proposals {
            let expect = if p.validator_index.unwrap().0 < 32 {
                ProposalStatus::Missed
            } else {
                ProposalStatus::Proposed
            };
            assert_eq!(p.status, expect, "slot {}", p.slot);
        }
    }
}
