//! The monitor loop: follow the head, fetch what perishes, judge each epoch
//! once its data is in, store the verdicts, log one line per epoch.
//!
//! Owns: the order of work and the processed-epoch cursor. The decisions
//! are in `analysis`; the IO in `collect`, `beacon` and `store`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::analysis::{
    attestations::{judge_attestations, AttestationInputs},
    balances::{balance_records, find_slashings},
    doublesign::{
        double_proposals, double_votes, double_votes_seen, pool_queries, pool_slashings,
        slashing_operations, DoubleSignEvidence,
    },
    proposals::judge_proposals,
    sync::judge_sync,
    AttestationStatus, AttestationVerdict, ProposalStatus, ProposalVerdict,
};
use crate::beacon::events::{SeenBlocks, SeenSlashings};
use crate::beacon::{BeaconPool, BlockId};
use crate::chain::{
    AttesterDuties, BlockHeader, ChainSpec, Clock, Epoch, ProposerDuties, Slot, ValidatorIndex,
};
use crate::collect::{self, BlockCache, ChainFollower, EpochData};
use crate::metrics::Metrics;
use crate::status::{StatusBoard, UpcomingDuties};
use crate::store::{CrossCheckRecord, EpochRecord, Store};
use crate::watchlist::Watchlist;

/// Where the monitor reports what it sees: the status board (HTTP) and the
/// metrics registry. Both are optional so that tests and backfills can run
/// the bare loop.
#[derive(Clone)]
pub struct Observers {
    pub board: Arc<StatusBoard>,
    pub metrics: Arc<Metrics>,
    /// The alert engine (rules, incidents, outbox); None when no alerting.
    pub alerts: Option<Arc<crate::alerting::Engine>>,
    /// The dead-man's switch, called after every epoch judged for good.
    pub heartbeat: Option<Arc<crate::alerting::Heartbeat>>,
}

/// Attempts at an epoch whose data nodes say is gone before it is stored
/// as `unknown`: three rounds ride out a node that restarts or a load
/// balancer that hits a lagging backend once.
pub const GIVE_UP_AFTER: u32 = 3;

/// How long logged double-signing evidence is remembered, in epochs: blocks
/// may carry a slashing or a vote up to about an epoch late, and the event
/// stream replays nothing older.
const LOGGED_EVIDENCE_EPOCHS: u64 = 4;

/// Final epochs the monitor keeps in memory while the store fails, and
/// the verdict rows they may hold together: about 7 hours of mainnet
/// epochs for a solo staker, fewer for a large operator. Past either bound
/// final judging waits (the chain is read again once the store is back,
/// and the epochs judged late still page, see `alerting::pages`).
const MAX_UNSTORED_EPOCHS: usize = 64;
const MAX_UNSTORED_ROWS: usize = 4_000_000;

/// A final epoch judged while the store failed, with what goes with it:
/// written in order once the store answers, so the cursor never passes an
/// epoch that is not stored.
struct Unstored {
    record: EpochRecord,
    rewards: Vec<crate::analysis::rewards::RewardRecord>,
    network: Option<crate::analysis::network::NetworkRecord>,
}

/// Whether an error means "no node has this any more" (as opposed to "no
/// node could be asked").
fn is_not_served(e: &anyhow::Error) -> bool {
    if let Some(c) = e.downcast_ref::<collect::CollectError>() {
        return match c {
            collect::CollectError::BlockGone { .. } | collect::CollectError::NoRegistry => true,
            collect::CollectError::Beacon(b) => b.is_range_limit(),
        };
    }
    e.downcast_ref::<crate::beacon::BeaconError>()
        .is_some_and(|b| b.is_range_limit())
}

/// Slots between provisional passes. Every slot keeps the "validator down"
/// alert within a few slots of the evidence; a pass re-judges and rewrites
/// the open epochs of the whole watched set, which at 100 000 validators
/// takes about 2 s (see the README's benchmark), so large sets look every
/// eighth slot instead, still inside the one-epoch-and-four-slots target for
/// 32-slot epochs.
pub fn provisional_every(watched: usize) -> u64 {
    if watched <= 20_000 {
        1
    } else {
        8
    }
}

/// PURE: double-signing evidence in the epoch's data: conflicting votes in
/// its blocks, two blocks for one slot by one proposer (canonical headers
/// and non-canonical ones whose proposer was read from the block, not
/// inferred from duties), and slashing operations naming watched
/// validators.
pub fn double_sign_evidence(
    spec: &ChainSpec,
    data: &EpochData,
    watched: &[ValidatorIndex],
    orphans: &[BlockHeader],
) -> Vec<DoubleSignEvidence> {
    let mut out = match &data.committees {
        Ok(committees) => double_votes(spec, data.epoch, committees, &data.blocks, watched),
        Err(_) => Vec::new(),
    };
    let headers: Vec<BlockHeader> = data
        .chain
        .blocks()
        .copied()
        .chain(
            orphans
                .iter()
                .filter(|h| {
                    h.parent_root != crate::chain::Root::ZERO
                        || h.state_root != crate::chain::Root::ZERO
                })
                .copied(),
        )
        .collect();
    out.extend(double_proposals(spec, &headers, watched));
    out.extend(slashing_operations(spec, &data.blocks, watched));
    out
}

/// Slots before the wall slot whose pool slices each round reads: a vote
/// for slot S is gossiped during S and aggregated by S+1, so S is read at
/// S+1 and again at S+2, when late aggregates have arrived. A second
/// client started later signs for its own current slot, which gets its own
/// two reads.
const POOL_LOOKBACK_SLOTS: u64 = 2;

/// The most slots one round reads after skipped rounds (a slow node):
/// older slices are left to the blocks.
const POOL_CATCH_UP_SLOTS: u64 = 4;

/// Where the per-slot pool watch stands (`Monitor::watch_pools`).
#[derive(Debug, Default)]
struct PoolWatch {
    /// The wall slot of the last round.
    wall: Option<Slot>,
    /// The epoch whose slashing pools were read.
    slashings_epoch: Option<Epoch>,
    /// "Not served" is logged once, not every slot.
    votes_unserved_logged: bool,
    slashings_unserved_logged: bool,
}

/// What one processed epoch amounted to (for the log line and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochSummary {
    pub epoch: Epoch,
    pub is_final: bool,
    pub included: usize,
    pub missed: usize,
    pub pending: usize,
    pub unknown: usize,
    pub inactive: usize,
    pub proposed: usize,
    pub proposals_missed: usize,
    pub orphaned: usize,
    pub disagreeing_nodes: usize,
}

/// PURE: turns gathered data into the epoch's verdicts.
pub fn judge_epoch(
    spec: &ChainSpec,
    data: &EpochData,
    watched: &[ValidatorIndex],
    duties: Option<&ProposerDuties>,
    orphans: &[BlockHeader],
    previous_balances: &HashMap<ValidatorIndex, crate::chain::Gwei>,
    is_final: bool,
) -> EpochRecord {
    let epoch = data.epoch;
    let attestations = match &data.committees {
        Ok(committees) => {
            let inputs = AttestationInputs {
                spec,
                epoch,
                committees,
                coverage: &data.coverage,
                watched,
                registry: &data.registry,
                blocks: &data.blocks,
                chain: &data.chain,
                head_slot: data.upto,
            };
            match judge_attestations(&inputs) {
                Ok(v) => v,
                Err(e) => unknown_attestations(watched, epoch, &format!("inconsistent data: {e}")),
            }
        }
        Err(reason) => unknown_attestations(watched, epoch, reason),
    };
    let mut proposals = match duties {
        Some(d) => judge_proposals(d, watched, &data.chain, orphans, data.upto),
        None => proposals_without_duties(spec, data, watched),
    };
    // The genesis block is part of the genesis state, nobody proposes it.
    proposals.retain(|p| p.slot != Slot(0));
    let sync = judge_sync(
        spec,
        epoch,
        &data.sync_committees,
        watched,
        &data.blocks,
        &data.chain,
    );
    let registry: Vec<_> = watched
        .iter()
        .filter_map(|v| data.registry.get(v).cloned())
        .collect();
    let balances = balance_records(epoch, &registry, previous_balances);
    let in_epoch: Vec<_> = data
        .blocks
        .iter()
        .filter(|b| spec.epoch_of(b.header.slot) == epoch)
        .cloned()
        .collect();
    let slashings = find_slashings(spec, &in_epoch, watched);
    EpochRecord {
        epoch,
        is_final,
        attestations,
        proposals,
        sync,
        balances,
        slashings,
        cross_checks: Vec::new(),
    }
}

fn unknown_attestations(
    watched: &[ValidatorIndex],
    epoch: Epoch,
    reason: &str,
) -> Vec<AttestationVerdict> {
    watched
        .iter()
        .map(|v| AttestationVerdict {
            validator_index: *v,
            epoch,
            status: AttestationStatus::Unknown,
            duty_slot: None,
            inclusion_slot: None,
            inclusion_delay: None,
            late: None,
            source_correct: None,
            target_correct: None,
            head_correct: None,
            reason: Some(reason.to_string()),
        })
        .collect()
}

/// Without the epoch's proposer duties (no node serves them any more and
/// none were kept), the canonical blocks still prove who proposed; who
/// should have proposed an empty slot cannot be known. No slot is left out
/// of the history for that (issue 11): each empty slot the chain has
/// reached is stored `unknown`, without a validator, with the reason.
fn proposals_without_duties(
    spec: &ChainSpec,
    data: &EpochData,
    watched: &[ValidatorIndex],
) -> Vec<ProposalVerdict> {
    const REASON: &str = "proposer duties no longer served: who was to propose is unknown";
    let watched: HashSet<_> = watched.iter().collect();
    let mut out = Vec::new();
    for s in spec.start_slot(data.epoch).0..=spec.end_slot(data.epoch).0 {
        let slot = Slot(s);
        match data.chain.block_at(slot) {
            Some(b) if watched.contains(&b.proposer_index) => out.push(ProposalVerdict {
                slot,
                validator_index: Some(b.proposer_index),
                status: ProposalStatus::Proposed,
                block_root: Some(b.root),
                reason: None,
            }),
            Some(_) => {}
            // Known empty only up to the pass's head (proof before verdict).
            None if data.chain.covers(slot) && slot <= data.upto => out.push(ProposalVerdict {
                slot,
                validator_index: None,
                status: ProposalStatus::Unknown,
                block_root: None,
                reason: Some(REASON.into()),
            }),
            None => {}
        }
    }
    out
}

pub fn summarize(rec: &EpochRecord) -> EpochSummary {
    let count = |s: AttestationStatus| rec.attestations.iter().filter(|a| a.status == s).count();
    let pcount = |s: ProposalStatus| rec.proposals.iter().filter(|p| p.status == s).count();
    EpochSummary {
        epoch: rec.epoch,
        is_final: rec.is_final,
        included: count(AttestationStatus::Included),
        missed: count(AttestationStatus::Missed),
        pending: count(AttestationStatus::Pending),
        unknown: count(AttestationStatus::Unknown),
        inactive: count(AttestationStatus::Inactive),
        proposed: pcount(ProposalStatus::Proposed),
        proposals_missed: pcount(ProposalStatus::Missed),
        orphaned: pcount(ProposalStatus::Orphaned),
        disagreeing_nodes: rec.cross_checks.iter().filter(|c| !c.agrees).count(),
    }
}

/// Attempts at one epoch's attester duties before the whole epoch's
/// committees are read instead: a node that refuses an epoch (too old for
/// it) keeps refusing, while a passing error (Lodestar answers 500 at
/// some epoch boundaries) clears on the next tick.
const ATTESTER_DUTY_ATTEMPTS: u32 = 3;

/// The running monitor. `tick` does one round of work; `run` loops it.
pub struct Monitor {
    pub pool: Arc<BeaconPool>,
    pub store: Store,
    pub spec: ChainSpec,
    pub clock: Arc<dyn Clock>,
    pub watched: Vec<ValidatorIndex>,
    follower: ChainFollower,
    cache: BlockCache,
    /// Next epoch to judge for good.
    next_epoch: Epoch,
    /// Epochs whose perishable data (proposer duties) was fetched.
    fetched_duties: HashSet<(Epoch, bool)>,
    /// The watched validators' attester duties by epoch, with the watched
    /// list they were asked for (perishable: nodes serve them only near
    /// the current epoch). They let `gather_epoch` read only the duty
    /// slots' committees.
    attester_duties: std::collections::BTreeMap<Epoch, (Vec<ValidatorIndex>, AttesterDuties)>,
    /// Failed attester-duty requests by epoch: a node that does not serve
    /// an epoch is not asked every tick.
    attester_failures: std::collections::BTreeMap<Epoch, u32>,
    /// Double-signing evidence already logged: provisional passes see the
    /// same evidence again every slot; it is logged once (the alert engine
    /// deduplicates its incidents itself).
    logged_evidence: BTreeSet<(Epoch, ValidatorIndex, &'static str)>,
    /// Wall slot of the last provisional pass.
    provisional_slot: Option<Slot>,
    /// Where the per-slot pool watch stands.
    pools: PoolWatch,
    last_health: Option<Instant>,
    /// The last finality answer: the head block's epoch when it was read,
    /// and the finalized epoch it gave (see `check_finality`).
    finality: Option<(Epoch, Epoch)>,
    /// Failed attempts per epoch, to stop retrying what is gone for good.
    failures: std::collections::HashMap<Epoch, u32>,
    /// Stop judging after this epoch (tests, backfills).
    until: Option<Epoch>,
    observers: Option<Observers>,
    /// Blocks announced on the nodes' event streams (orphan evidence).
    seen: Arc<SeenBlocks>,
    /// Slashing operations announced on the event streams, not yet passed
    /// to the alert engine.
    slashings: Arc<SeenSlashings>,
    liveness_done: Option<Epoch>,
    /// When an epoch was last judged, stored or kept in memory (for the
    /// "monitor stalled" rule; a failing store is told by its own rule).
    last_stored_at: Option<std::time::SystemTime>,
    /// Final epochs judged while the store failed, oldest first.
    unstored: VecDeque<Unstored>,
    /// Why the last attempt to store them failed.
    unstored_error: Option<crate::store::StoreError>,
    /// Proposer duties by epoch, kept in memory from when nodes serve them
    /// until the epoch is judged: the store may be down when they are
    /// served, and nodes stop serving them soon after.
    duties: BTreeMap<Epoch, ProposerDuties>,
    /// Liveness answers by epoch, likewise.
    liveness: BTreeMap<Epoch, HashMap<ValidatorIndex, bool>>,
    /// Balances of the last final epoch judged: the next epoch's previous
    /// balances when the store cannot be read.
    judged_balances: Option<(Epoch, HashMap<ValidatorIndex, crate::chain::Gwei>)>,
    /// Epochs before this one are a silent backfill (`alerting::pages`).
    paging_from: Epoch,
    /// Watched members of the latest sync committee seen.
    sync_members: Vec<ValidatorIndex>,
    watchlist: Option<Watchlist>,
    /// History kept, in epochs (None: keep everything).
    retention_epochs: Option<u64>,
}

impl Monitor {
    /// `start`: the first epoch to judge (the cursor + 1 on resume).
    pub fn new(
        pool: Arc<BeaconPool>,
        store: Store,
        spec: ChainSpec,
        clock: Arc<dyn Clock>,
        watched: Vec<ValidatorIndex>,
        start: Epoch,
    ) -> Self {
        // Keep one slot before the first epoch as the anchor for head/target
        // roots of its first slots.
        let floor = Slot(spec.start_slot(start).0.saturating_sub(1));
        Self {
            pool,
            store,
            spec,
            clock,
            watched,
            follower: ChainFollower::new(floor),
            cache: BlockCache::default(),
            next_epoch: start,
            fetched_duties: HashSet::new(),
            attester_duties: Default::default(),
            attester_failures: Default::default(),
            logged_evidence: BTreeSet::new(),
            provisional_slot: None,
            pools: PoolWatch::default(),
            last_health: None,
            finality: None,
            failures: Default::default(),
            until: None,
            observers: None,
            seen: Arc::new(SeenBlocks::default()),
            slashings: Arc::new(SeenSlashings::default()),
            liveness_done: None,
            last_stored_at: None,
            unstored: VecDeque::new(),
            unstored_error: None,
            duties: BTreeMap::new(),
            liveness: BTreeMap::new(),
            judged_balances: None,
            paging_from: start,
            sync_members: Vec::new(),
            watchlist: None,
            retention_epochs: None,
        }
    }

    /// Epochs before `epoch` are history filled in: judged and stored but
    /// never paged (`--from-epoch` in the past before the first start).
    pub fn with_paging_from(mut self, epoch: Epoch) -> Self {
        self.paging_from = epoch;
        self
    }

    /// Final epochs judged but not stored yet (the store is failing).
    pub fn unstored_epochs(&self) -> usize {
        self.unstored.len()
    }

    /// Keeps `retention` of history (rounded up to whole epochs).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        let epoch_ms = (self.spec.slot_duration_ms * self.spec.slots_per_epoch).max(1) as u128;
        self.retention_epochs = Some(retention.as_millis().div_ceil(epoch_ms) as u64);
        self
    }

    /// Re-reads the groups' validators files when they change.
    pub fn with_watchlist(mut self, watchlist: Watchlist) -> Self {
        self.watchlist = Some(watchlist);
        self
    }

    async fn refresh_watchlist(&mut self) {
        let Some(w) = self.watchlist.as_mut() else {
            return;
        };
        let changed = w.poll(&self.pool).await;
        if let Some(o) = &self.observers {
            let sources = w.source_statuses();
            o.metrics.observe_sources(&sources);
            o.board.set_sources(sources);
        }
        if !changed {
            return;
        }
        let watched = w.watched();
        if watched.is_empty() {
            warn!("the validators files name no known validator; keeping the previous set");
            return;
        }
        info!(validators = watched.len(), "watched set changed");
        self.watched = watched;
        if let Some(o) = &self.observers {
            let groups = w.group_specs();
            o.metrics.set_watched(
                &groups
                    .iter()
                    .map(|g| (g.name.clone(), g.validators.len()))
                    .collect(),
            );
            o.board.set_groups(groups);
            let labels = w.labels();
            o.metrics.set_labels(&labels);
            o.board.set_labels(&labels);
            if let Some(a) = &o.alerts {
                a.set_labels(&labels);
            }
        }
    }

    /// Shares the set that the event-stream followers fill.
    pub fn with_seen_blocks(mut self, seen: Arc<SeenBlocks>) -> Self {
        self.follower
            .follow_events(seen.clone(), self.spec.slot_duration());
        self.seen = seen;
        self
    }

    /// Shares the set that the event-stream followers fill with slashing
    /// operations.
    pub fn with_seen_slashings(mut self, slashings: Arc<SeenSlashings>) -> Self {
        self.slashings = slashings;
        self
    }

    pub fn with_observers(mut self, observers: Observers) -> Self {
        self.observers = Some(observers);
        self
    }

    pub fn next_epoch(&self) -> Epoch {
        self.next_epoch
    }

    /// The wall-clock slot (None before genesis).
    fn wall_slot(&self) -> Option<Slot> {
        self.spec.slot_at(self.clock.now())
    }

    /// One round: health, head, perishable data, then every epoch that can
    /// be judged. Returns the epochs judged for good in this round.
    pub async fn tick(&mut self) -> anyhow::Result<Vec<EpochSummary>> {
        let mut done = Vec::new();
        let Some(wall) = self.wall_slot() else {
            return Ok(done);
        };
        let health_round = self
            .last_health
            .is_none_or(|t| t.elapsed() >= self.spec.slot_duration());
        if health_round {
            // Readiness says "store failing" within one ping; the ping also
            // closes the store's breaker when the database is back.
            let _ = self.store.ping().await;
            let reports = self
                .pool
                .check_health_spaced(wall, self.spec.slots_per_epoch)
                .await;
            self.last_health = Some(Instant::now());
            if let Some(o) = &self.observers {
                o.metrics.observe_nodes(&reports);
                if let Some(a) = &o.alerts {
                    if let Err(e) = a.on_nodes(&reports, Some(wall), self.clock.now()).await {
                        warn!(error = %crate::causes(&e), "alerting: node rules failed");
                    }
                }
                o.board.set_nodes(reports);
            }
        }
        let wall_epoch = self.spec.epoch_of(wall);
        self.store_unstored().await;
        if let Some(o) = &self.observers {
            let lag = wall_epoch.0.saturating_sub(self.next_epoch.0);
            o.metrics.observe_clock(wall.0, lag);
            o.board.set_store_ok(self.store.failing().is_none());
        }
        self.refresh_watchlist().await;
        self.report_double_signing(self.slashings.take()).await;
        let head = self.follower.update(&self.pool).await?;
        if health_round {
            self.check_finality(wall, head.slot).await;
        }
        if let Some(o) = &self.observers {
            o.board.set_head(head.slot, wall);
            o.metrics.observe_head(head.slot.0);
        }
        self.fetch_perishable(wall_epoch).await;
        self.fetch_liveness(wall).await;
        self.publish_upcoming(wall).await;

        // Final verdicts: the inclusion window of N ends with the last slot
        // of N+1 (EIP-7045); wait until the wall clock is one slot past it so
        // that the block of that last slot had its time to arrive.
        loop {
            let n = self.next_epoch;
            if self.until.is_some_and(|u| n > u) {
                break;
            }
            let window_end = self.spec.inclusion_window_end(n);
            if wall.0 < window_end.0 + 2 {
                break;
            }
            // Proof before verdict: a slot is empty only when a later
            // canonical block says so (its parent chain skips the slot), and
            // a vote can be missed only once every block of its inclusion
            // window is known. So the epoch waits until the head has reached
            // the window's last slot, whatever the nodes say of their sync
            // state: a node stuck on an old head still calls itself synced,
            // and judging the slots after its head made false missed
            // proposals and a whole epoch of false missed votes. A chain
            // that makes no blocks at all waits here; the `chain_stalled`
            // alert says why, and the slots are judged once blocks come.
            if self.memory_full() {
                warn!(
                    epoch = n.0,
                    kept = self.unstored.len(),
                    "the store has been failing and the epochs kept in memory reached their bound: final verdicts wait for the store"
                );
                break;
            }
            if head.slot < window_end {
                debug!(
                    epoch = n.0,
                    head_slot = head.slot.0,
                    window_end = window_end.0,
                    "the head has not reached the end of the inclusion window: final verdicts wait"
                );
                break;
            }
            let summary = match self.process(n, window_end, true).await {
                Ok(s) => s,
                Err(e) => {
                    let attempts = self.failures.entry(n).or_insert(0);
                    *attempts += 1;
                    if *attempts < GIVE_UP_AFTER || !is_not_served(&e) {
                        return Err(e);
                    }
                    // The nodes answered, and what they answered is that
                    // the data is gone: record that and move on rather than
                    // retry forever.
                    warn!(epoch = n.0, error = %crate::causes(e.as_ref()), "epoch data no longer served; stored as unknown");
                    self.write_unknown(n, &format!("{e:#}")).await?
                }
            };
            self.failures.remove(&n);
            self.prune(n).await;
            done.push(summary);
            self.next_epoch = Epoch(n.0 + 1);
            let floor = Slot(self.spec.start_slot(self.next_epoch).0.saturating_sub(1));
            self.follower.raise_floor(floor);
            self.cache.prune_below(floor);
            self.cache
                .prune_committees_before(self.next_epoch, &self.spec);
            self.seen.prune_below(floor);
        }

        // Provisional looks at the epochs still open (the previous and the
        // current one), so that a validator that went down shows up within
        // a few slots of its duty: early evidence is a vote missing from the
        // next canonical blocks. Once per `provisional_every` slots, and only
        // when the wall clock moved on.
        let every = provisional_every(self.watched.len());
        if self.provisional_slot.is_none_or(|s| wall.0 >= s.0 + every) {
            self.provisional_slot = Some(wall);
            let first_open = Epoch(wall_epoch.0.saturating_sub(1)).max(self.next_epoch);
            for e in first_open.0..=wall_epoch.0 {
                let epoch = Epoch(e);
                // Only what the canonical chain has reached is judged: a
                // slot after the head is not known empty (proof before
                // verdict), so an epoch the head has not entered is not
                // looked at yet.
                let upto = Slot(wall.0.saturating_sub(1)).min(head.slot);
                if upto < self.spec.start_slot(epoch) {
                    continue; // nothing of this epoch is on chain yet
                }
                self.process(epoch, upto, false).await?;
            }
        }
        self.watch_pools(wall, head.slot).await;
        Ok(done)
    }

    /// Double signing before inclusion (issue 6): once per wall slot, the
    /// best node's attestation pool for the recent slots where watched
    /// validators have duties, compared with their votes in the canonical
    /// blocks; once per epoch, the pools' slashings (a backup of the event
    /// stream). Reads only committees and blocks already cached by the
    /// epoch passes, so it adds no committee or block fetch. A node without
    /// pool routes (404) is noted once; evidence then comes from blocks and
    /// the event stream only.
    async fn watch_pools(&mut self, wall: Slot, head: Slot) {
        if self.pools.wall.is_some_and(|s| s >= wall) {
            return;
        }
        // Slots `wall - POOL_LOOKBACK_SLOTS .. wall`, plus any skipped since
        // the last round (a slow tick), bounded.
        let from = self
            .pools
            .wall
            .map_or(wall.0, |w| w.0 + 1)
            .saturating_sub(POOL_LOOKBACK_SLOTS)
            .max(wall.0.saturating_sub(POOL_CATCH_UP_SLOTS));
        self.pools.wall = Some(wall);
        let mut by_epoch: std::collections::BTreeMap<Epoch, Vec<Slot>> = Default::default();
        for s in from..wall.0 {
            by_epoch
                .entry(self.spec.epoch_of(Slot(s)))
                .or_default()
                .push(Slot(s));
        }
        for (epoch, slots) in by_epoch {
            let Some(committees) = self.cache.cached_committees(epoch) else {
                continue; // no epoch pass read them yet
            };
            let queries = pool_queries(&slots, &committees, &self.watched);
            if queries.is_empty() {
                continue;
            }
            let votes = match collect::pools::pool_votes(
                &self.pool,
                &mut self.cache.pools,
                &queries,
            )
            .await
            {
                Ok(collect::pools::PoolRead::Served(v)) => v,
                Ok(collect::pools::PoolRead::NotServed) => {
                    if !self.pools.votes_unserved_logged {
                        self.pools.votes_unserved_logged = true;
                        info!("the best node serves no attestation pool; double votes are seen in blocks only");
                    }
                    continue;
                }
                Err(e) => {
                    debug!(epoch = epoch.0, error = %crate::causes(&e), "attestation pool not read");
                    continue;
                }
            };
            let end = self.spec.inclusion_window_end(epoch).min(head);
            let blocks: Vec<Arc<crate::chain::Block>> = self
                .follower
                .range(self.spec.start_slot(epoch), end)
                .iter()
                .filter_map(|h| self.cache.cached_block(h))
                .collect();
            let blocks: Vec<&crate::chain::Block> = blocks.iter().map(|b| &**b).collect();
            let evidence = double_votes_seen(
                &self.spec,
                epoch,
                &committees,
                &blocks,
                &votes,
                &self.watched,
            );
            self.report_double_signing(evidence).await;
        }

        let epoch = self.spec.epoch_of(wall);
        if self.pools.slashings_epoch == Some(epoch) {
            return;
        }
        self.pools.slashings_epoch = Some(epoch);
        match collect::pools::pool_slashings(&self.pool, &mut self.cache.pools, wall).await {
            Ok(collect::pools::PoolRead::Served((attester, proposer))) => {
                let evidence =
                    pool_slashings(&self.spec, &attester, &proposer, &self.watched, wall);
                self.report_double_signing(evidence).await;
            }
            Ok(collect::pools::PoolRead::NotServed) => {
                if !self.pools.slashings_unserved_logged {
                    self.pools.slashings_unserved_logged = true;
                    info!("the best node serves no slashing pools; slashings are seen on the event stream and in blocks only");
                }
            }
            Err(e) => {
                debug!(epoch = epoch.0, error = %crate::causes(&e), "slashing pools not read")
            }
        }
    }

    /// Liveness of the watched validators for the previous epoch, asked in
    /// the second half of the current one (nodes answer only current ± 1,
    /// and by then the gossip of the previous epoch is complete; Kiln asks
    /// at slot 16 likewise). Kept as perishable evidence for early alerts and
    /// failover checks; never a verdict by itself (Lodestar counts block
    /// inclusions under the block's epoch, see the devnet README).
    async fn fetch_liveness(&mut self, wall: Slot) {
        let current = self.spec.epoch_of(wall);
        if current.0 == 0
            || wall.0 - self.spec.start_slot(current).0 < self.spec.slots_per_epoch / 2
        {
            return;
        }
        let epoch = Epoch(current.0 - 1);
        if self.liveness_done == Some(epoch) {
            return;
        }
        self.liveness_done = Some(epoch);
        let ids = &self.watched;
        match self
            .pool
            .call("/eth/v1/validator/liveness/{epoch}", |c| async move {
                c.liveness(epoch, ids).await
            })
            .await
        {
            Ok(answers) => {
                self.liveness
                    .insert(epoch, answers.iter().map(|(v, l)| (*v, *l)).collect());
                let floor = Epoch(self.next_epoch.0.saturating_sub(1));
                self.liveness = self.liveness.split_off(&floor);
                let map: serde_json::Map<String, serde_json::Value> = answers
                    .iter()
                    .map(|(v, live)| (v.0.to_string(), serde_json::Value::Bool(*live)))
                    .collect();
                if let Err(e) = self
                    .store
                    .save_perishable("liveness", epoch, &serde_json::Value::Object(map))
                    .await
                {
                    // Kept in memory all the same (above).
                    debug!(epoch = epoch.0, error = %crate::causes(&e), "cannot store liveness");
                }
            }
            Err(e) => debug!(epoch = epoch.0, error = %crate::causes(&e), "liveness not served"),
        }
    }

    /// The liveness answers of `epoch`: from memory, else the store (a
    /// restart keeps them there).
    async fn liveness_of(
        &self,
        epoch: Epoch,
    ) -> Option<std::collections::HashMap<ValidatorIndex, bool>> {
        if let Some(m) = self.liveness.get(&epoch) {
            return Some(m.clone());
        }
        let v = self
            .store
            .load_perishable("liveness", epoch)
            .await
            .ok()
            .flatten()?;
        let map = v.as_object()?;
        Some(
            map.iter()
                .filter_map(|(k, v)| Some((ValidatorIndex(k.parse().ok()?), v.as_bool()?)))
                .collect(),
        )
    }

    /// Deletes history older than the retention, once per judged epoch.
    async fn prune(&self, judged: Epoch) {
        let Some(keep) = self.retention_epochs else {
            return;
        };
        if judged.0 <= keep || self.store.failing().is_some() {
            return;
        }
        match self.store.prune(Epoch(judged.0 - keep)).await {
            Ok(0) => {}
            Ok(rows) => info!(
                rows,
                keep_from_epoch = judged.0 - keep,
                "old history deleted"
            ),
            Err(e) => warn!(error = %crate::causes(&e), "retention pruning failed"),
        }
    }

    /// Finality of the chain, for the network rules (no finality,
    /// inactivity leak): "my validators" and "the network" told apart.
    /// The head block's slot goes with it: the checkpoint is the head
    /// state's, which enters an epoch only with that epoch's first block.
    ///
    /// Asked once per epoch of the head, not every slot (issue 12): the
    /// checkpoints change only in the epoch transition (consensus specs,
    /// `process_justification_and_finalization` runs in `process_epoch`),
    /// and the head state (the head block's post-state) goes through one
    /// only when the head enters a new epoch. Between reads, the rules run
    /// every round on the answer kept, with the head and wall of the round.
    async fn check_finality(&mut self, wall: Slot, head: Slot) {
        let Some(a) = self.observers.as_ref().and_then(|o| o.alerts.clone()) else {
            return;
        };
        let head_epoch = self.spec.epoch_of(head);
        let finalized = match self.finality {
            Some((read_at, finalized)) if read_at == head_epoch => Ok(finalized),
            _ => self
                .pool
                .call(
                    "/eth/v1/beacon/states/{state_id}/finality_checkpoints",
                    |c| async move { c.finality(crate::beacon::StateId::Head).await },
                )
                .await
                .map(|f| f.finalized.epoch),
        };
        match finalized {
            Ok(finalized) => {
                self.finality = Some((head_epoch, finalized));
                if let Err(e) = a
                    .on_chain(
                        finalized,
                        self.spec.epoch_of(head),
                        self.spec.epoch_of(wall),
                        self.clock.now(),
                    )
                    .await
                {
                    warn!(error = %crate::causes(&e), "alerting: chain rules failed");
                }
            }
            Err(e) => debug!(error = %crate::causes(&e), "finality not served"),
        }
    }

    /// Tells the board the next proposals of watched validators (from the
    /// duties kept for the current and next epoch), for maintenance planning.
    async fn publish_upcoming(&self, wall: Slot) {
        let Some(o) = &self.observers else { return };
        let watched: HashSet<_> = self.watched.iter().copied().collect();
        let current = self.spec.epoch_of(wall);
        let mut proposals = Vec::new();
        for e in [current, Epoch(current.0 + 1)] {
            if let Some(d) = self.duties.get(&e) {
                proposals.extend(
                    d.duties
                        .iter()
                        .filter(|x| x.slot >= wall && watched.contains(&x.validator_index))
                        .map(|x| (x.validator_index, x.slot)),
                );
            }
        }
        o.board.set_upcoming_duties(&UpcomingDuties {
            proposals,
            sync_committee: Vec::new(),
        });
    }

    /// Proposer duties, which nodes serve only for the current and next
    /// epoch. The next epoch's are speculative before Fulu (computed from the
    /// head, `dependent_root` = the head block) and shown as upcoming
    /// duties; the current epoch's are fetched again once the epoch has
    /// started, when their dependent root (the last block before it) is
    /// settled: those are the ones kept to judge the epoch.
    async fn fetch_perishable(&mut self, current: Epoch) {
        for (e, settled) in [(current, true), (Epoch(current.0 + 1), false)] {
            // Keys: the epoch, and whether its duties were fetched settled.
            let key = (e, settled);
            if self.fetched_duties.contains(&key) || e < self.next_epoch {
                continue;
            }
            match collect::fetch_proposer_duties(&self.pool, e).await {
                Ok(d) => {
                    // Kept in memory whatever the store does; stored for a
                    // restart when it can be.
                    if let Err(err) = self.store.save_proposer_duties(&d).await {
                        debug!(epoch = e.0, error = %crate::causes(&err), "cannot store proposer duties; kept in memory");
                    }
                    self.duties.insert(e, d);
                    self.fetched_duties.insert(key);
                }
                Err(err) => {
                    debug!(epoch = e.0, error = %crate::causes(&err), "proposer duties not served")
                }
            }
        }
        self.fetched_duties.retain(|(e, _)| e.0 + 2 >= current.0);
        self.duties = self.duties.split_off(&self.next_epoch);
        self.fetch_attester_duties(current).await;
    }

    /// The watched validators' attester duties of the previous, current and
    /// next epoch (what nodes such as Lodestar serve), each asked once per
    /// watched list. Their shuffling was fixed an epoch ahead; should a
    /// reorg change it, `gather_epoch` sees the dependent root differ and
    /// reads the whole epoch.
    async fn fetch_attester_duties(&mut self, current: Epoch) {
        let floor = self.next_epoch;
        self.attester_duties = self.attester_duties.split_off(&floor);
        self.attester_failures = self.attester_failures.split_off(&floor);
        if !collect::attester_duties_worth_asking(&self.spec, self.watched.len()) {
            return;
        }
        for e in [
            Epoch(current.0.saturating_sub(1)),
            current,
            Epoch(current.0 + 1),
        ] {
            let known = self
                .attester_duties
                .get(&e)
                .is_some_and(|(asked, _)| *asked == self.watched);
            let failures = self.attester_failures.get(&e).copied().unwrap_or(0);
            if e < floor || known || failures >= ATTESTER_DUTY_ATTEMPTS {
                continue;
            }
            let ids = &self.watched;
            match self
                .pool
                .call(
                    "/eth/v1/validator/duties/attester/{epoch}",
                    |c| async move { c.attester_duties(e, ids).await },
                )
                .await
            {
                Ok(d) => {
                    self.attester_duties.insert(e, (self.watched.clone(), d));
                }
                Err(err) => {
                    *self.attester_failures.entry(e).or_default() += 1;
                    debug!(epoch = e.0, error = %crate::causes(&err), "attester duties not served");
                }
            }
        }
    }

    async fn process(
        &mut self,
        epoch: Epoch,
        upto: Slot,
        is_final: bool,
    ) -> anyhow::Result<EpochSummary> {
        let started = Instant::now();
        let data = collect::gather_epoch(
            &self.pool,
            &self.spec,
            &self.follower,
            &mut self.cache,
            &self.watched,
            epoch,
            upto,
            if is_final {
                collect::Committees::Fresh
            } else {
                collect::Committees::Cached
            },
            self.attester_duties.get(&epoch).map(|(_, d)| d),
        )
        .await?;
        let fetched = started.elapsed();
        if let Some(members) = data.sync_committees.get(&self.spec.sync_period_of(epoch)) {
            let watched: HashSet<_> = self.watched.iter().collect();
            let mut m: Vec<_> = members
                .iter()
                .filter(|v| watched.contains(v))
                .copied()
                .collect();
            m.sort();
            m.dedup();
            self.sync_members = m;
        }
        let duties = self.proposer_duties_for(epoch).await;
        let previous = self.previous_balances(epoch).await?;
        let orphans = self.orphans_of(&data, duties.as_ref()).await;
        let judged_at = Instant::now();
        let mut record = judge_epoch(
            &self.spec,
            &data,
            &self.watched,
            duties.as_ref(),
            &orphans,
            &previous,
            is_final,
        );
        let judged = judged_at.elapsed();
        let evidence = double_sign_evidence(&self.spec, &data, &self.watched, &orphans);
        self.report_double_signing(evidence).await;
        if is_final {
            record.cross_checks = self.cross_check(&data).await;
        }
        // --- issue 14 hook (rewards branch): rewards and the network
        // baseline of a final epoch, stored before the verdicts advance the
        // cursor (a crash in between redoes both). Never fails the epoch.
        let mut pending_rewards = None;
        if is_final {
            let (rows, network) = collect::rewards::epoch_rewards(
                &self.pool,
                &self.spec,
                &data,
                &self.watched,
                &record,
            )
            .await;
            if let Some(o) = &self.observers {
                let board = o.board.clone();
                o.metrics
                    .observe_rewards(&rows, network.as_ref(), &move |v| {
                        board.group_of(v).unwrap_or_else(|| "ungrouped".into())
                    });
            }
            pending_rewards = Some((rows, network));
        }
        // --- end of issue 14 hook
        let network = pending_rewards.as_ref().and_then(|(_, n)| n.clone());
        let stored_at = Instant::now();
        self.store_record(&record, pending_rewards).await?;
        if let Some(o) = &self.observers {
            o.board.set_store_ok(self.store.failing().is_none());
        }
        let stored = stored_at.elapsed();
        self.last_stored_at = Some(self.clock.now());
        // What the pass knew of the chain: the pager and the page judge up
        // and down from the same inputs.
        let ctx = if self.observers.is_some() {
            let now = self.clock.now();
            let wall_epoch = self
                .spec
                .slot_at(now)
                .map(|s| self.spec.epoch_of(s))
                .unwrap_or(epoch);
            // An epoch judged late (the store, every node or valwatch itself
            // was down) pages as it would have live, at the time it would
            // have been judged, within the horizon; a backfill never pages.
            let horizon = crate::alerting::horizon_epochs(
                self.spec.slot_duration() * self.spec.slots_per_epoch as u32,
            );
            let paged = crate::alerting::pages(epoch, wall_epoch, self.paging_from, horizon);
            let now = if is_final && !crate::alerting::is_live(epoch, wall_epoch) {
                let due = Slot(self.spec.inclusion_window_end(epoch).0 + 2);
                self.spec.time_of(due).min(now)
            } else {
                now
            };
            let mut ctx = crate::alerting::EpochContext::new(now, paged);
            if let (Some(o), Some(n)) = (&self.observers, &network) {
                o.board.set_network(n);
            }
            ctx.network = network;
            if !is_final {
                let after = self.spec.start_slot(epoch);
                ctx.block_slots = data
                    .chain
                    .blocks()
                    .map(|b| b.slot)
                    .filter(|s| *s > after)
                    .collect();
                ctx.liveness = self.liveness_of(epoch).await;
            }
            Some(ctx)
        } else {
            None
        };
        if let (Some(a), Some(ctx)) = (
            self.observers.as_ref().and_then(|o| o.alerts.clone()),
            ctx.as_ref(),
        ) {
            if let Err(e) = a.on_epoch(&record, ctx).await {
                warn!(epoch = epoch.0, error = %crate::causes(&e), "alerting: epoch rules failed");
            }
        }
        if let (Some(o), Some(c)) = (&self.observers, ctx.as_ref()) {
            let inputs = crate::health::EarlyInputs {
                block_slots: &c.block_slots,
                liveness: c.liveness.as_ref(),
            };
            o.board
                .apply_epoch_early(&record, &inputs, self.clock.now());
            let board = o.board.clone();
            o.metrics.observe_epoch(&record, &move |v| {
                board.group_of(v).unwrap_or_else(|| "ungrouped".into())
            });
            o.metrics
                .observe_epoch_duration(is_final, started.elapsed());
            if is_final {
                if let Some(h) = &o.heartbeat {
                    h.beat(epoch);
                }
            }
        }
        let s = summarize(&record);
        if is_final {
            info!(
                epoch = epoch.0,
                is_final,
                included = s.included,
                missed = s.missed,
                pending = s.pending,
                unknown = s.unknown,
                inactive = s.inactive,
                proposed = s.proposed,
                proposals_missed = s.proposals_missed,
                orphaned = s.orphaned,
                disagreeing_nodes = s.disagreeing_nodes,
                fetch_ms = fetched.as_millis() as u64,
                judge_ms = judged.as_millis() as u64,
                store_ms = stored.as_millis() as u64,
                "epoch processed"
            );
        } else {
            // Provisional passes run every slot: keep them out of `info`.
            debug!(
                epoch = epoch.0,
                included = s.included,
                pending = s.pending,
                "epoch looked at early"
            );
        }
        for c in record.cross_checks.iter().filter(|c| !c.agrees) {
            warn!(epoch = epoch.0, node = %c.node, slot = c.slot.0,
                  node_root = ?c.node_root, expected_root = ?c.expected_root, error = ?c.error,
                  "node disagrees about the canonical chain");
        }
        Ok(s)
    }

    /// Passes double-signing evidence to the alert engine at once (no
    /// waiting for the epoch's verdicts to settle).
    async fn report_double_signing(&mut self, evidence: Vec<DoubleSignEvidence>) {
        if evidence.is_empty() {
            return;
        }
        for e in &evidence {
            if self
                .logged_evidence
                .insert((e.epoch, e.validator_index, e.kind.as_str()))
            {
                warn!(validator = e.validator_index.0, kind = e.kind.as_str(), epoch = e.epoch.0,
                      slot = e.slot.0, detail = %e.detail, "double-signing evidence");
            }
        }
        // Evidence of epochs long judged is not seen again.
        let floor = Epoch(self.next_epoch.0.saturating_sub(LOGGED_EVIDENCE_EPOCHS));
        self.logged_evidence = self
            .logged_evidence
            .split_off(&(floor, ValidatorIndex(0), ""));
        if let Some(a) = self.observers.as_ref().and_then(|o| o.alerts.clone()) {
            if let Err(e) = a.on_double_sign(&evidence, self.clock.now()).await {
                warn!(error = %crate::causes(&e), "alerting: double-signing rule failed");
            }
        }
    }

    /// Proposer duties of `epoch` that match the canonical chain. Duties
    /// depend on the block root at `start_slot(epoch) - 1` (the v1 route's
    /// `dependent_root`, kept for compatibility after Fulu too); duties
    /// computed on a fork that lost are refetched, and if no node serves
    /// matching ones any more they are not used (no empty slot is blamed on
    /// a validator that was never scheduled there).
    async fn proposer_duties_for(&mut self, epoch: Epoch) -> Option<ProposerDuties> {
        let expected = if epoch.0 == 0 {
            None
        } else {
            self.follower
                .before(self.spec.start_slot(epoch))
                .map(|b| b.root)
        };
        let matches = |d: &ProposerDuties| expected.is_none_or(|root| d.dependent_root == root);
        if let Some(d) = self.duties.get(&epoch) {
            if matches(d) {
                return Some(d.clone());
            }
        }
        match self.store.proposer_duties(epoch).await {
            Ok(Some(d)) if matches(&d) => return Some(d),
            Ok(Some(d)) => {
                warn!(epoch = epoch.0, stored = %d.dependent_root, canonical = ?expected,
                      "stored proposer duties belong to another fork; refetching");
            }
            Ok(None) => {}
            Err(e) => {
                debug!(epoch = epoch.0, error = %crate::causes(&e), "cannot read stored proposer duties")
            }
        }
        // Asked again even for a past epoch: several clients compute them
        // from a historical state.
        match collect::fetch_proposer_duties(&self.pool, epoch).await {
            Ok(d) if matches(&d) => {
                if let Err(e) = self.store.save_proposer_duties(&d).await {
                    debug!(epoch = epoch.0, error = %crate::causes(&e), "cannot store proposer duties; kept in memory");
                }
                self.duties.insert(epoch, d.clone());
                Some(d)
            }
            Ok(d) => {
                warn!(epoch = epoch.0, served = %d.dependent_root, canonical = ?expected,
                      "proposer duties served for another fork; empty slots stored as unknown");
                None
            }
            Err(e) => {
                debug!(epoch = epoch.0, error = %crate::causes(&e), "proposer duties not served");
                None
            }
        }
    }

    /// Each watched validator's balance before `epoch`: the last final
    /// epoch judged (also while the store fails), else the store.
    async fn previous_balances(
        &self,
        epoch: Epoch,
    ) -> anyhow::Result<HashMap<ValidatorIndex, crate::chain::Gwei>> {
        if let Some((e, b)) = &self.judged_balances {
            if e.0 + 1 == epoch.0 && self.watched.iter().all(|v| b.contains_key(v)) {
                return Ok(self
                    .watched
                    .iter()
                    .filter_map(|v| b.get(v).map(|x| (*v, *x)))
                    .collect());
            }
        }
        match self.store.latest_balances(&self.watched, epoch).await {
            Ok(b) => Ok(b),
            // Without the store the changes of this epoch are unknown
            // (None), not wrong; they are right again from the next one.
            Err(e) if crate::store::is_outage(&e) => Ok(HashMap::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the final epochs kept in memory reached their bound.
    fn memory_full(&self) -> bool {
        let rows: usize = self
            .unstored
            .iter()
            .map(|u| u.record.attestations.len())
            .sum();
        self.unstored.len() >= MAX_UNSTORED_EPOCHS || rows >= MAX_UNSTORED_ROWS
    }

    /// Stores a judged record (with a final epoch's rewards), or keeps a
    /// final one in memory while the store fails: the epochs already kept
    /// go first, so the cursor never passes an epoch not stored. A
    /// provisional record that cannot be stored is dropped (the next pass
    /// judges it again). Errors other than an outage fail the epoch.
    async fn store_record(
        &mut self,
        record: &EpochRecord,
        rewards: Option<(
            Vec<crate::analysis::rewards::RewardRecord>,
            Option<crate::analysis::network::NetworkRecord>,
        )>,
    ) -> anyhow::Result<()> {
        if !record.is_final {
            if self.store.failing().is_some() || !self.unstored.is_empty() {
                return Ok(());
            }
            return match self.store.write_epoch(record).await {
                Err(e) if !crate::store::is_outage(&e) => Err(e.into()),
                _ => Ok(()),
            };
        }
        let (rewards, network) = rewards.unwrap_or_default();
        // Epochs kept earlier go first: the cursor never passes one.
        if !self.unstored.is_empty() {
            self.store_unstored().await;
        }
        // The usual case writes straight through, without a copy.
        if self.unstored.is_empty() {
            match self.write_final(record, &rewards, network.as_ref()).await {
                Ok(()) => return Ok(()),
                // Refused for a reason of its own: the epoch fails and is
                // judged again (as before any outage handling).
                Err(e) if !crate::store::is_outage(&e) => return Err(e.into()),
                Err(e) => self.unstored_error = Some(e),
            }
        }
        // Kept, with its balances for the next epoch (the store's memory
        // of them went with the failed write).
        self.judged_balances = Some((
            record.epoch,
            record
                .balances
                .iter()
                .map(|b| (b.validator_index, b.balance))
                .collect(),
        ));
        self.unstored.push_back(Unstored {
            record: record.clone(),
            rewards,
            network,
        });
        warn!(epoch = record.epoch.0, kept = self.unstored.len(),
              error = ?self.unstored_error.as_ref().map(|e| crate::causes(e)),
              "the store is failing: epoch judged and kept in memory until it answers");
        Ok(())
    }

    /// Writes the final epochs kept in memory, oldest first, rewards before
    /// verdicts (the verdicts advance the cursor). Stops at the first
    /// failure; `unstored_error` keeps it.
    async fn store_unstored(&mut self) {
        while let Some(u) = self.unstored.front() {
            let epoch = u.record.epoch;
            match self
                .write_final(&u.record, &u.rewards, u.network.as_ref())
                .await
            {
                Ok(()) => {
                    if self.unstored.len() > 1 || self.unstored_error.is_some() {
                        info!(
                            epoch = epoch.0,
                            "epoch kept in memory while the store failed is stored"
                        );
                    }
                    self.unstored.pop_front();
                }
                Err(e) => {
                    self.unstored_error = Some(e);
                    return;
                }
            }
        }
        self.unstored_error = None;
    }

    /// One final epoch into the store: rewards first, then the verdicts
    /// that advance the cursor. A refused rewards row is logged and never
    /// holds the verdicts back; an outage stops both.
    async fn write_final(
        &self,
        record: &EpochRecord,
        rewards: &[crate::analysis::rewards::RewardRecord],
        network: Option<&crate::analysis::network::NetworkRecord>,
    ) -> Result<(), crate::store::StoreError> {
        if let Err(e) = self
            .store
            .write_rewards(record.epoch, rewards, network)
            .await
        {
            if crate::store::is_outage(&e) {
                return Err(e);
            }
            warn!(epoch = record.epoch.0, error = %crate::causes(&e), "cannot store rewards");
        }
        self.store.write_epoch(record).await.map(|_| ())
    }

    /// Non-canonical blocks of the epoch: those the follower saw reorged
    /// away, plus those the event streams announced that are not on the
    /// canonical chain. A streamed block's proposer is read from its header
    /// where a node still serves it; otherwise it is the slot's scheduled
    /// proposer, since nodes import a block only if its proposer_index is
    /// the one the shuffling assigns to that slot (p2p gossip validation).
    async fn orphans_of(
        &self,
        data: &EpochData,
        duties: Option<&ProposerDuties>,
    ) -> Vec<BlockHeader> {
        let start = self.spec.start_slot(data.epoch);
        let end = self.spec.end_slot(data.epoch);
        let mut out: Vec<BlockHeader> = self
            .follower
            .orphans()
            .iter()
            .filter(|o| o.slot >= start && o.slot <= end)
            .copied()
            .collect();
        // Blocks above the pass's horizon are judged by a later pass.
        for (slot, root) in self.seen.in_range(start, end.min(data.upto)) {
            if data.chain.contains_root(&root) || out.iter().any(|o| o.root == root) {
                continue;
            }
            let served = self
                .pool
                .call("/eth/v1/beacon/headers/{block_id}", |c| async move {
                    c.header(BlockId::Root(root)).await
                })
                .await
                .ok()
                .flatten();
            let header = match served {
                Some(h) if h.slot == slot => Some(h),
                _ => duties
                    .and_then(|d| d.duties.iter().find(|x| x.slot == slot))
                    .map(|x| BlockHeader {
                        root,
                        slot,
                        proposer_index: x.validator_index,
                        parent_root: crate::chain::Root::ZERO,
                        state_root: crate::chain::Root::ZERO,
                    }),
            };
            if let Some(h) = header {
                out.push(h);
            }
        }
        out
    }

    async fn write_unknown(&mut self, epoch: Epoch, reason: &str) -> anyhow::Result<EpochSummary> {
        let record = EpochRecord {
            epoch,
            is_final: true,
            attestations: unknown_attestations(&self.watched, epoch, reason),
            ..EpochRecord::default()
        };
        self.store_record(&record, None).await?;
        Ok(summarize(&record))
    }

    /// Asks every usable node for the canonical block at the epoch's last
    /// block slot and compares it with the chain valwatch judged by.
    async fn cross_check(&self, data: &EpochData) -> Vec<CrossCheckRecord> {
        let end = self.spec.end_slot(data.epoch);
        let Some(last) = data
            .chain
            .blocks()
            .filter(|b| b.slot <= end)
            .last()
            .copied()
        else {
            return Vec::new();
        };
        self.pool
            .roots_at(last.slot)
            .await
            .into_iter()
            .map(|(node, answer)| {
                let (node_root, error) = match answer {
                    Ok(r) => (r, None),
                    Err(e) => (None, Some(e.to_string())),
                };
                CrossCheckRecord {
                    epoch: data.epoch,
                    slot: last.slot,
                    node,
                    agrees: error.is_none() && node_root == Some(last.root),
                    node_root,
                    expected_root: Some(last.root),
                    error,
                }
            })
            .collect()
    }

    /// Loops `tick` until cancelled, or until `stop_after` epochs were judged.
    pub async fn run(
        &mut self,
        cancel: CancellationToken,
        poll: Duration,
        stop_after: Option<Epoch>,
    ) -> anyhow::Result<()> {
        loop {
            match self.tick().await {
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %crate::causes(e.as_ref()), "monitor round failed; retrying")
                }
            }
            if let Some(a) = self.observers.as_ref().and_then(|o| o.alerts.clone()) {
                if let Err(e) = a.on_monitor(self.last_stored_at, self.clock.now()).await {
                    warn!(error = %crate::causes(&e), "alerting: monitor rules failed");
                }
            }
            if stop_after.is_some_and(|s| self.next_epoch > s) {
                return Ok(());
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::doublesign::DoubleSignKind;
    use crate::analysis::CanonicalChain;
    use crate::chain::Root;

    fn header(slot: u64, proposer: u64, root: u8, parent: Root) -> BlockHeader {
        BlockHeader {
            root: Root([root; 32]),
            slot: Slot(slot),
            proposer_index: ValidatorIndex(proposer),
            parent_root: parent,
            state_root: Root::ZERO,
        }
    }

    #[test]
    fn a_second_block_counts_only_when_its_proposer_was_read_from_it() {
        let spec = ChainSpec::test_spec(8, 2000, 0);
        let data = EpochData {
            epoch: Epoch(1),
            chain: CanonicalChain::new(Slot(8), Slot(23), None, [header(9, 5, 1, Root([7; 32]))]),
            blocks: Vec::new(),
            committees: Ok(Arc::new(Vec::new())),
            coverage: crate::analysis::attestations::Coverage::Epoch,
            sync_committees: HashMap::new(),
            registry: Default::default(),
            upto: Slot(23),
        };
        let watched = [ValidatorIndex(5)];
        // Read from the block: a double proposal.
        let read = [header(9, 5, 2, Root([7; 32]))];
        let got = double_sign_evidence(&spec, &data, &watched, &read);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].kind, DoubleSignKind::DoubleProposal);
        assert_eq!((got[0].epoch, got[0].slot), (Epoch(1), Slot(9)));
        // Inferred from duties (no header served): no evidence of signing.
        let inferred = [header(9, 5, 2, Root::ZERO)];
        assert!(double_sign_evidence(&spec, &data, &watched, &inferred).is_empty());
    }

    /// Issue 11: without duties, every empty slot up to the pass's head is
    /// an `unknown` row naming nobody; a watched proposer's block is
    /// `proposed`; nothing after the head is said.
    #[test]
    fn without_duties_no_slot_is_absent_and_nobody_is_blamed() {
        let spec = ChainSpec::test_spec(8, 2000, 0);
        // Blocks at 9 (watched 5) and 11 (unwatched 6); the head is at 13.
        let b9 = header(9, 5, 1, Root([7; 32]));
        let b11 = header(11, 6, 2, b9.root);
        let b13 = header(13, 5, 3, b11.root);
        let data = EpochData {
            epoch: Epoch(1),
            chain: CanonicalChain::new(Slot(8), Slot(13), None, [b9, b11, b13]),
            blocks: Vec::new(),
            committees: Ok(Arc::new(Vec::new())),
            coverage: crate::analysis::attestations::Coverage::Epoch,
            sync_committees: HashMap::new(),
            registry: Default::default(),
            upto: Slot(13),
        };
        let got = proposals_without_duties(&spec, &data, &[ValidatorIndex(5)]);
        let rows: Vec<(u64, Option<u64>, ProposalStatus)> = got
            .iter()
            .map(|p| (p.slot.0, p.validator_index.map(|v| v.0), p.status))
            .collect();
        use ProposalStatus::{Proposed, Unknown};
        assert_eq!(
            rows,
            vec![
                (8, None, Unknown),
                (9, Some(5), Proposed),
                (10, None, Unknown),
                (12, None, Unknown),
                (13, Some(5), Proposed),
            ]
        );
        assert!(got
            .iter()
            .filter(|p| p.status == Unknown)
            .all(|p| p.reason.as_deref().is_some_and(|r| r.contains("unknown"))));
    }
}
