//! IO that gathers what judging one epoch needs: canonical headers (via the
//! follower), full blocks (each read once, cached by root), committees,
//! sync committees, proposer duties and the watched validators' registry
//! entries.
//!
//! Owns: the choice of which node, state and endpoint to ask, and the
//! fallbacks when a node no longer serves something. Must not: judge.

pub mod follower;
pub mod pools;
pub mod rewards;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::analysis::attestations::Coverage;
use crate::analysis::CanonicalChain;
use crate::beacon::client::ValidatorId;
use crate::beacon::{BeaconError, BeaconPool, BlockId, StateId};
use crate::chain::{
    AttesterDuties, Block, BlockHeader, ChainSpec, Committee, Epoch, ProposerDuties, Root, Slot,
    ValidatorIndex, ValidatorInfo,
};

pub use follower::{ChainFollower, FollowError};

/// What one epoch's judgement reads.
#[derive(Debug)]
pub struct EpochData {
    pub epoch: Epoch,
    /// Canonical chain over `[start_slot(epoch), upto]`.
    pub chain: CanonicalChain,
    /// Full canonical blocks with slots in `[start_slot(epoch), upto]`.
    pub blocks: Vec<Block>,
    /// The beacon committees of `epoch`; `Err` says why none could be read.
    pub committees: Result<Arc<Vec<Committee>>, String>,
    /// Which slots `committees` covers (all of them, or the watched
    /// validators' duty slots, checked against their seats).
    pub coverage: Coverage,
    /// Sync committee members by position, per sync period.
    pub sync_committees: HashMap<u64, Vec<ValidatorIndex>>,
    /// Shared with the cache that serves later passes (a million entries
    /// are not copied per pass).
    pub registry: Arc<HashMap<ValidatorIndex, ValidatorInfo>>,
    /// Last slot known: the end of the inclusion window for a final verdict,
    /// the head for a provisional one.
    pub upto: Slot,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Beacon(#[from] BeaconError),
    #[error("canonical block {root} at slot {slot} is no longer served by any node")]
    BlockGone { root: Root, slot: Slot },
    #[error("no node serves the registry entries of the watched validators")]
    NoRegistry,
}

/// Committees of one epoch: their shuffling's dependent block, the
/// committees and the slots they cover.
type CachedCommittees = (Option<Root>, Arc<Vec<Committee>>, Coverage);

/// Blocks are immutable by root: read each once. Committees of an epoch
/// are read once for all its provisional passes (they are fixed by the
/// RANDAO of epoch N-2, so only a reorg deeper than an epoch could change
/// them; the cache is keyed by that dependent block) and once more for the
/// final pass. Sync committees likewise, per period. Pruned below the floor.
#[derive(Debug, Default)]
pub struct BlockCache {
    blocks: BTreeMap<(Slot, Root), Arc<Block>>,
    /// By epoch, with the block their shuffling depends on (None when the
    /// follower no longer holds it).
    committees: BTreeMap<Epoch, CachedCommittees>,
    /// Sync committee members by period.
    sync_committees: BTreeMap<u64, Vec<ValidatorIndex>>,
    /// The watched validators' registry entries by epoch (`epoch_registry`).
    registries: BTreeMap<Epoch, CachedRegistry>,
    /// Which kinds of state id the nodes answered 404 for, per route.
    unserved: Unserved,
    /// When a provisional pass may ask again for an epoch's state after
    /// its transition, which was not served.
    post_retry: BTreeMap<Epoch, Slot>,
    /// Which operation pools the nodes do not serve (`pools`).
    pub pools: pools::PoolMemory,
}

/// Registry entries as read for an epoch, with what makes them reusable.
#[derive(Debug)]
struct CachedRegistry {
    /// The watched set they were asked for.
    watched: Vec<ValidatorIndex>,
    /// The slot of the state read, and the canonical block at or before
    /// it when read: the state is the same while that block is canonical.
    at: Slot,
    root: Option<Root>,
    /// Read from a state after the transition to the next epoch.
    post: bool,
    infos: Arc<HashMap<ValidatorIndex, ValidatorInfo>>,
}

/// Kinds of state id a node may not serve although it serves the data by
/// another id: Lodestar answers 404 for states of empty slots and for
/// state roots it does not keep hot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateKind {
    Root,
    Slot,
    EmptySlot,
    Head,
}

/// How long a "not served" is believed before the id is tried again, in
/// epochs: a node may be upgraded or replaced behind the same URL, and one
/// extra 404 every eight epochs costs nothing.
pub const REPROBE_EPOCHS: u64 = 8;

/// PURE memory of (route, state kind) pairs that answered 404 while a later
/// state id of the same read was served; skipped until re-probed.
#[derive(Debug, Default)]
pub struct Unserved {
    until: HashMap<(&'static str, StateKind), Epoch>,
}

impl Unserved {
    /// Remembers that `route` by `kind` was not served at `epoch`.
    pub fn note(&mut self, route: &'static str, kind: StateKind, epoch: Epoch) {
        self.until
            .insert((route, kind), Epoch(epoch.0 + REPROBE_EPOCHS));
    }

    /// Whether `route` by `kind` is to be skipped at `epoch`.
    pub fn skips(&self, route: &'static str, kind: StateKind, epoch: Epoch) -> bool {
        self.until
            .get(&(route, kind))
            .is_some_and(|until| epoch < *until)
    }
}

impl BlockCache {
    pub fn prune_below(&mut self, slot: Slot) {
        self.blocks = self.blocks.split_off(&(slot, Root::ZERO));
    }

    /// Forgets committees of epochs before `epoch`.
    pub fn prune_committees_before(&mut self, epoch: Epoch, spec: &ChainSpec) {
        self.committees = self.committees.split_off(&epoch);
        self.sync_committees = self.sync_committees.split_off(&spec.sync_period_of(epoch));
        // The previous epoch's state after its transition serves this one.
        self.registries = self.registries.split_off(&Epoch(epoch.0.saturating_sub(1)));
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// The committees of `epoch` as last read, if any (no IO: for readers
    /// that must stay cheap, such as the per-slot pool watch). They may
    /// cover only the watched validators' duty slots (`Coverage::Slots`),
    /// which is all such readers need.
    pub fn cached_committees(&self, epoch: Epoch) -> Option<Arc<Vec<Committee>>> {
        self.committees.get(&epoch).map(|(_, c, _)| c.clone())
    }

    /// The block of `header`, if it was read already (no IO).
    pub fn cached_block(&self, header: &BlockHeader) -> Option<Arc<Block>> {
        self.blocks.get(&(header.slot, header.root)).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    async fn get(
        &mut self,
        pool: &BeaconPool,
        header: &BlockHeader,
    ) -> Result<Arc<Block>, CollectError> {
        if let Some(b) = self.blocks.get(&(header.slot, header.root)) {
            return Ok(b.clone());
        }
        let root = header.root;
        let block = pool
            .call("/eth/v2/beacon/blocks/{block_id}", |c| async move {
                c.block(BlockId::Root(root), Some(root)).await
            })
            .await?
            .ok_or(CollectError::BlockGone {
                root,
                slot: header.slot,
            })?;
        let block = Arc::new(block);
        self.blocks
            .insert((header.slot, header.root), block.clone());
        Ok(block)
    }
}

/// Whether committees may come from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committees {
    /// Provisional passes (every slot or so): the cached committees of the
    /// epoch, if their dependent block is still canonical. On mainnet the
    /// committees are ~10 MB of JSON; a pass per slot must not re-read them.
    Cached,
    /// The final pass reads them again from the node, so that a verdict
    /// kept for good never rests on a cached answer.
    Fresh,
}

/// Gathers the data to judge `epoch` with the chain known up to `upto`.
#[allow(clippy::too_many_arguments)]
pub async fn gather_epoch(
    pool: &BeaconPool,
    spec: &ChainSpec,
    follower: &ChainFollower,
    cache: &mut BlockCache,
    watched: &[ValidatorIndex],
    epoch: Epoch,
    upto: Slot,
    committees_from: Committees,
    duties: Option<&AttesterDuties>,
) -> Result<EpochData, CollectError> {
    let start = spec.start_slot(epoch);
    let headers = follower.range(start, upto);
    let anchor = follower.before(start);
    let chain = CanonicalChain::new(start, upto, anchor, headers.iter().copied());

    let mut blocks = Vec::with_capacity(headers.len());
    for h in &headers {
        blocks.push(Block::clone(&*cache.get(pool, h).await?));
    }

    // A state that can compute this epoch's shufflings: the post-state of the
    // latest canonical block at or before the epoch's last slot (its epoch is
    // N, or N-1 with N as the next epoch: both within the lookahead), named
    // by state root so every node reads the same fork. Some nodes only serve
    // states by slot or `head`; fall back to those.
    let end = spec.end_slot(epoch).min(upto);
    let last_in_epoch = follower.range(start, end).last().copied().or(anchor);
    let mut states = Vec::new();
    if let Some(b) = last_in_epoch {
        states.push(StateId::Root(b.state_root));
    }
    if chain.block_at(start).is_some() {
        states.push(StateId::Slot(start));
    }
    states.push(StateId::Head);

    // The attester shuffling of epoch N is fixed by the state at the end of
    // N-2 (`get_seed` uses the RANDAO mix of epoch N - 1 - lookahead): its
    // dependent block is the last canonical block before the first slot of
    // N-1. Same dependent block, same committees.
    // When the follower no longer holds that block (it lies below the
    // floor of epochs judged for good), what was cached under it stands;
    // the final pass reads afresh anyway.
    let shuffling_start = spec.start_slot(Epoch(epoch.0.saturating_sub(1)));
    let dependent = follower
        .before(shuffling_start)
        .filter(|h| h.slot < shuffling_start)
        .map(|h| h.root);
    let registry = epoch_registry(
        pool,
        spec,
        follower,
        cache,
        RegistryNeeds {
            epoch,
            upto,
            from: committees_from,
            watched,
            last_in_epoch,
            slashes_watched: !crate::analysis::balances::find_slashings(spec, &blocks, watched)
                .is_empty(),
        },
    )
    .await?;
    let (committees, coverage) = epoch_committees(
        pool,
        spec,
        cache,
        &states,
        CommitteeNeeds {
            epoch,
            dependent,
            from: committees_from,
            duties,
            watched,
            registry: &registry,
        },
    )
    .await;

    // Sync committees of the periods of slots S+1 for S in the epoch.
    let mut sync_committees = HashMap::new();
    if spec.fork_at(epoch).has_sync_committee() {
        let mut periods = vec![(spec.sync_period_of(epoch), epoch)];
        let next = Epoch(epoch.0 + 1);
        if spec.sync_period_of(next) != periods[0].0 && upto > spec.end_slot(epoch) {
            periods.push((spec.sync_period_of(next), next));
        }
        for (period, e) in periods {
            // Fixed for the whole period (256 epochs on mainnet), chosen a
            // period ahead: provisional passes reuse the last read.
            if committees_from == Committees::Cached {
                if let Some(members) = cache.sync_committees.get(&period) {
                    sync_committees.insert(period, members.clone());
                    continue;
                }
            }
            let served = first_served(&states, |state| async move {
                pool.call(
                    "/eth/v1/beacon/states/{state_id}/sync_committees",
                    |c| async move { c.sync_committee(state, e).await },
                )
                .await
            })
            .await;
            match served {
                Ok(members) => {
                    cache.sync_committees.insert(period, members.clone());
                    sync_committees.insert(period, members);
                }
                Err(e) => tracing::warn!(epoch = epoch.0, error = %e, "sync committee not served"),
            }
        }
    }

    Ok(EpochData {
        epoch,
        chain,
        blocks,
        committees,
        coverage,
        sync_committees,
        registry,
        upto,
    })
}

/// What choosing an epoch's registry entries depends on.
struct RegistryNeeds<'a> {
    epoch: Epoch,
    upto: Slot,
    from: Committees,
    watched: &'a [ValidatorIndex],
    /// The latest canonical block at or before the epoch's last slot.
    last_in_epoch: Option<BlockHeader>,
    /// A block of the window slashes a watched validator: its status
    /// changed within the epoch, so provisional passes read afresh.
    slashes_watched: bool,
}

/// The watched validators' registry entries (balances, status) at the end
/// of the epoch, i.e. after the transition into the next one.
///
/// Read once per epoch: the state after the transition (`post`) serves the
/// epoch's provisional passes once the next epoch began, its final pass,
/// and the next epoch's provisional passes (activation and exit epochs are
/// fixed at least five epochs ahead, so "active at N+1" reads the same
/// from any recent state; only balances lag there, and provisional balances
/// feed no alert rule: the engine reads final ones). A slashing of a watched validator in the window, another watched
/// set, or a reorg under the state read (its block no longer canonical)
/// read again. Before the next epoch has a block, a provisional pass reads
/// the head once and keeps it for the epoch.
///
/// Asked, in order: the state at the next epoch's first slot (nodes such as
/// Lighthouse serve it even when that slot is empty; Lodestar answers 404
/// then, which is remembered); the state after the next epoch's first block
/// (the transition has run, plus that one block); the post-state of the
/// epoch's last block (before the transition: balances one transition
/// early); head.
async fn epoch_registry(
    pool: &BeaconPool,
    spec: &ChainSpec,
    follower: &ChainFollower,
    cache: &mut BlockCache,
    needs: RegistryNeeds<'_>,
) -> Result<Arc<HashMap<ValidatorIndex, ValidatorInfo>>, CollectError> {
    let epoch = needs.epoch;
    let upto = needs.upto;
    let next_start = spec.start_slot(Epoch(epoch.0 + 1));
    let canonical_at = |slot: Slot| follower.before(Slot(slot.0 + 1)).map(|h| h.root);
    let usable = |c: &CachedRegistry, post_only: bool| {
        c.watched == needs.watched
            && (!post_only || c.post)
            && c.root.is_some()
            && canonical_at(c.at) == c.root
    };
    let cached = cache.registries.get(&epoch);

    let mut post_states: Vec<(StateId, Slot, StateKind)> = Vec::new();
    if upto >= next_start {
        let next_end = spec.end_slot(Epoch(epoch.0 + 1)).min(upto);
        let first = follower.range(next_start, next_end).first().copied();
        let empty = first.is_none_or(|f| f.slot != next_start);
        post_states.push((
            StateId::Slot(next_start),
            next_start,
            if empty {
                StateKind::EmptySlot
            } else {
                StateKind::Slot
            },
        ));
        if let Some(f) = first.filter(|f| f.slot != next_start) {
            post_states.push((StateId::Slot(f.slot), f.slot, StateKind::Slot));
        }
    }

    // The state after the transition is the same state whoever asks for
    // it, as long as its block is canonical: the final pass reuses it too.
    if let Some(c) = cached.filter(|c| usable(c, true)) {
        if needs.from == Committees::Fresh || !needs.slashes_watched {
            return Ok(c.infos.clone());
        }
    }
    let provisional = needs.from == Committees::Cached && !needs.slashes_watched;
    // Activation and exit epochs are set at least five epochs ahead
    // (`compute_activation_exit_epoch`), so any read kept (this epoch's or
    // the previous one's: older ones are pruned) says who is active at
    // this epoch; the freshest wins.
    let recent = cache
        .registries
        .range(..=epoch)
        .map(|(_, c)| c)
        .filter(|c| c.watched == needs.watched)
        .max_by_key(|c| (c.at, c.post))
        .map(|c| c.infos.clone());
    // A provisional pass asks for a state after the transition that was
    // not served yet (a node still computing it) again only every quarter
    // epoch, not every slot.
    let retry_due = cache.post_retry.get(&epoch).is_none_or(|at| upto >= *at);
    if provisional && (post_states.is_empty() || !retry_due) {
        if let Some(infos) = recent.clone() {
            return Ok(infos);
        }
    }

    let ids: Vec<ValidatorId> = needs
        .watched
        .iter()
        .map(|v| ValidatorId::Index(*v))
        .collect();
    let ids = &ids;
    let read = |state: StateId| async move {
        pool.call(
            "/eth/v1/beacon/states/{state_id}/validators",
            |c| async move { c.validators(state, ids).await },
        )
        .await
    };
    const ROUTE: &str = "validators";
    // "Gone" only when every node declined every state; a node fault (a
    // 500 from a failing database) is an error to retry (issue 11).
    let mut fault: Option<crate::beacon::BeaconError> = None;
    let mut post_served = None;
    for (i, &(state, at, kind)) in post_states.iter().enumerate() {
        let last_try = i + 1 == post_states.len();
        if !last_try && cache.unserved.skips(ROUTE, kind, epoch) {
            continue;
        }
        match read(state).await {
            Ok(Some(v)) => {
                post_served = Some((v, at));
                break;
            }
            Ok(None) if !last_try => cache.unserved.note(ROUTE, kind, epoch),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(epoch = epoch.0, state = %state, error = %e, "registry not served");
                if !e.is_range_limit() {
                    fault = Some(e);
                }
            }
        }
    }
    if let Some((v, at)) = post_served {
        let infos = Arc::new(v.into_iter().map(|v| (v.index, v)).collect());
        cache.registries.insert(
            epoch,
            CachedRegistry {
                watched: needs.watched.to_vec(),
                at,
                root: canonical_at(at),
                post: true,
                infos: Arc::clone(&infos),
            },
        );
        return Ok(infos);
    }

    if !post_states.is_empty() {
        let wait = (spec.slots_per_epoch / 4).max(1);
        cache.post_retry.insert(epoch, Slot(upto.0 + wait));
        if provisional {
            if let Some(infos) = recent {
                return Ok(infos);
            }
        }
    }

    // Before the transition (or no node serves the states after it).
    let mut pre: Vec<(StateId, StateKind)> = Vec::new();
    if let Some(b) = needs.last_in_epoch {
        if !cache.unserved.skips(ROUTE, StateKind::Root, epoch) {
            pre.push((StateId::Root(b.state_root), StateKind::Root));
        }
    }
    pre.push((StateId::Head, StateKind::Head));
    let mut infos = None;
    for (i, &(state, kind)) in pre.iter().enumerate() {
        match read(state).await {
            Ok(Some(v)) => {
                infos = Some(v);
                break;
            }
            Ok(None) if i + 1 < pre.len() => cache.unserved.note(ROUTE, kind, epoch),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(epoch = epoch.0, state = %state, error = %e, "registry not served");
                if !e.is_range_limit() {
                    fault = Some(e);
                }
            }
        }
    }
    let infos: Arc<HashMap<_, _>> = Arc::new(
        infos
            .ok_or(match fault {
                Some(f) => CollectError::Beacon(f),
                None => CollectError::NoRegistry,
            })?
            .into_iter()
            .map(|v| (v.index, v))
            .collect(),
    );
    if needs.from == Committees::Cached && !needs.slashes_watched {
        let at = needs.last_in_epoch.map_or(Slot(0), |b| b.slot);
        cache.registries.insert(
            epoch,
            CachedRegistry {
                watched: needs.watched.to_vec(),
                at,
                root: canonical_at(at),
                post: false,
                infos: Arc::clone(&infos),
            },
        );
    }
    Ok(infos)
}

/// What choosing an epoch's committees depends on.
struct CommitteeNeeds<'a> {
    epoch: Epoch,
    /// The block the epoch's shuffling depends on, if the follower holds it.
    dependent: Option<Root>,
    from: Committees,
    duties: Option<&'a AttesterDuties>,
    watched: &'a [ValidatorIndex],
    registry: &'a HashMap<ValidatorIndex, ValidatorInfo>,
}

/// The committees to judge the epoch with: the watched validators' duty
/// slots only when `duty_slots` allows it and `check_seats` confirms the
/// answer, else the whole epoch as before. Cached for provisional passes
/// under the shuffling's dependent block.
async fn epoch_committees(
    pool: &BeaconPool,
    spec: &ChainSpec,
    cache: &mut BlockCache,
    states: &[StateId],
    needs: CommitteeNeeds<'_>,
) -> (Result<Arc<Vec<Committee>>, String>, Coverage) {
    let epoch = needs.epoch;
    let seats_ok = |c: &[Committee], coverage: &Coverage| match coverage {
        Coverage::Epoch => true,
        Coverage::Slots(_) => needs
            .duties
            .is_some_and(|d| check_seats(epoch, needs.watched, needs.registry, d, c).is_ok()),
    };
    if needs.from == Committees::Cached {
        if let Some((dep, c, coverage)) = cache.committees.get(&epoch) {
            if (needs.dependent.is_none() || *dep == needs.dependent) && seats_ok(c, coverage) {
                return (Ok(c.clone()), coverage.clone());
            }
        }
    }

    if let Some(slots) = needs.duties.and_then(|d| {
        duty_slots(
            spec,
            epoch,
            needs.dependent,
            needs.watched,
            needs.registry,
            d,
        )
    }) {
        let mut got: Vec<Committee> = Vec::new();
        let mut complete = true;
        for &slot in &slots {
            let served = first_served(states, |state| async move {
                pool.call(
                    "/eth/v1/beacon/states/{state_id}/committees?slot",
                    |c| async move { c.slot_committees(state, epoch, slot).await },
                )
                .await
            })
            .await;
            match served {
                // A node that ignored the filter gives more: keep the slot's.
                Ok(cs) => got.extend(cs.into_iter().filter(|c| c.slot == slot)),
                Err(e) => {
                    tracing::debug!(epoch = epoch.0, slot = slot.0, error = %e, "committees of a slot not served; reading the whole epoch");
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            let checked = needs.duties.map_or(Err("no duties".to_string()), |d| {
                check_seats(epoch, needs.watched, needs.registry, d, &got)
            });
            match checked {
                Ok(()) => {
                    let got = Arc::new(got);
                    let coverage = Coverage::Slots(slots);
                    cache
                        .committees
                        .insert(epoch, (needs.dependent, got.clone(), coverage.clone()));
                    return (Ok(got), coverage);
                }
                Err(e) => {
                    tracing::debug!(epoch = epoch.0, problem = %e, "slot committees do not match the attester duties; reading the whole epoch")
                }
            }
        }
    }

    let fetched = first_served(states, |state| async move {
        pool.call(
            "/eth/v1/beacon/states/{state_id}/committees",
            |c| async move { c.committees(state, epoch).await },
        )
        .await
    })
    .await
    .map(Arc::new)
    .map_err(|e| format!("committees of epoch {epoch}: {e}"));
    if let Ok(c) = &fetched {
        cache
            .committees
            .insert(epoch, (needs.dependent, c.clone(), Coverage::Epoch));
    }
    (fetched, Coverage::Epoch)
}

/// PURE: whether asking the watched validators' attester duties can pay:
/// only when there are fewer of them than slots in an epoch. The answer
/// costs ~250 bytes per validator (1M watched: ~250 MB, far more than the
/// ~10 MB of committees it would save), and `duty_slots` wants fewer than
/// half the slots: `n` validators spread over `s` slots fill
/// `s·(1 − (1 − 1/s)ⁿ)` of them on average, about 12 of 32 for n = 16 but
/// 20 for n = 31.
pub fn attester_duties_worth_asking(spec: &ChainSpec, watched: usize) -> bool {
    watched > 0 && (watched as u64) < spec.slots_per_epoch
}

/// PURE: the slots whose committees suffice to judge the watched
/// validators in `epoch`, from their attester duties; `None` when the whole
/// epoch should be read: duties of another epoch or another shuffling
/// (`dependent`, when known), a duty outside the epoch, a watched
/// validator active at `epoch` without a duty, or duties spread over half
/// the epoch's slots or more (then per-slot reads save little and cost
/// more requests).
pub fn duty_slots(
    spec: &ChainSpec,
    epoch: Epoch,
    dependent: Option<Root>,
    watched: &[ValidatorIndex],
    registry: &HashMap<ValidatorIndex, ValidatorInfo>,
    duties: &AttesterDuties,
) -> Option<BTreeSet<Slot>> {
    if duties.epoch != epoch || dependent.is_some_and(|d| d != duties.dependent_root) {
        return None;
    }
    let by_validator: HashMap<ValidatorIndex, Slot> = duties
        .duties
        .iter()
        .map(|d| (d.validator_index, d.slot))
        .collect();
    let mut slots = BTreeSet::new();
    for v in watched {
        let active = registry.get(v).is_some_and(|i| i.is_active_at(epoch));
        match by_validator.get(v) {
            Some(&slot) => {
                if spec.epoch_of(slot) != epoch {
                    return None;
                }
                slots.insert(slot);
            }
            None if active => return None,
            None => {}
        }
    }
    (slots.len() * 2 < spec.slots_per_epoch as usize).then_some(slots)
}

/// PURE: the self-check before partial committees are used. Every watched
/// validator the registry says is active at `epoch` must sit in `got` at
/// exactly the slot, committee, position and committee length its duty
/// names (each active validator has one seat per epoch, so finding it there
/// proves the committees came from the same shuffling as the duty).
pub fn check_seats(
    epoch: Epoch,
    watched: &[ValidatorIndex],
    registry: &HashMap<ValidatorIndex, ValidatorInfo>,
    duties: &AttesterDuties,
    got: &[Committee],
) -> Result<(), String> {
    if duties.epoch != epoch {
        return Err(format!("duties of epoch {}, not {epoch}", duties.epoch));
    }
    let committees: HashMap<(Slot, u64), &Committee> =
        got.iter().map(|c| ((c.slot, c.index), c)).collect();
    for v in watched {
        if !registry.get(v).is_some_and(|i| i.is_active_at(epoch)) {
            continue;
        }
        let mut mine = duties.duties.iter().filter(|d| d.validator_index == *v);
        let duty = mine
            .next()
            .ok_or_else(|| format!("validator {v} active but without a duty"))?;
        if mine.any(|d| d != duty) {
            return Err(format!("validator {v} has two different duties"));
        }
        let committee = committees
            .get(&(duty.slot, duty.committee_index))
            .ok_or_else(|| {
                format!(
                    "no committee {} at slot {} for validator {v}",
                    duty.committee_index, duty.slot
                )
            })?;
        let seated = usize::try_from(duty.position)
            .ok()
            .and_then(|p| committee.validators.get(p));
        if seated != Some(v) || committee.validators.len() as u64 != duty.committee_length {
            return Err(format!(
                "validator {v} not at position {} of committee {} at slot {} (length {})",
                duty.position, duty.committee_index, duty.slot, duty.committee_length
            ));
        }
    }
    Ok(())
}

/// Why `first_served` found nothing: the last answer, and the last node
/// fault met on the way, if any.
#[derive(Debug)]
struct NoneServed {
    last: String,
    /// A failure that is not the nodes' "not for this state" (a 5xx, a
    /// timeout, an unreadable answer): the data may well exist, so the
    /// caller must not take it for gone.
    fault: Option<BeaconError>,
}

impl std::fmt::Display for NoneServed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.last)
    }
}

/// Tries each state id in turn; the first `Some` wins. Errors and `None`
/// fall through to the next; the last error (or "not served") is returned,
/// with the last node fault kept apart.
async fn first_served<T, F, Fut>(states: &[StateId], mut f: F) -> Result<T, NoneServed>
where
    F: FnMut(StateId) -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, BeaconError>>,
{
    let mut out = NoneServed {
        last: String::from("not served by any node"),
        fault: None,
    };
    for &state in states {
        match f(state).await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => out.last = format!("state {state} not available"),
            Err(e) => {
                out.last = e.to_string();
                if !e.is_range_limit() {
                    out.fault = Some(e);
                }
            }
        }
    }
    Err(out)
}

/// Proposer duties of `epoch` from a node (nodes serve only the current and
/// next epoch, some older ones too).
pub async fn fetch_proposer_duties(
    pool: &BeaconPool,
    epoch: Epoch,
) -> Result<ProposerDuties, BeaconError> {
    pool.call(
        "/eth/v1/validator/duties/proposer/{epoch}",
        |c| async move { c.proposer_duties(epoch).await },
    )
    .await
}

/// Resolves configured ids (indices or pubkeys) to indices. Pubkeys the
/// chain does not know yet (not deposited) are returned separately.
pub async fn resolve_validators(
    pool: &BeaconPool,
    ids: &[ValidatorId],
) -> Result<(HashMap<ValidatorId, ValidatorIndex>, Vec<ValidatorId>), BeaconError> {
    let mut resolved: HashMap<ValidatorId, ValidatorIndex> = ids
        .iter()
        .filter_map(|id| match id {
            ValidatorId::Index(i) => Some((*id, *i)),
            ValidatorId::Pubkey(_) => None,
        })
        .collect();
    let pubkeys: Vec<ValidatorId> = ids
        .iter()
        .filter(|id| matches!(id, ValidatorId::Pubkey(_)))
        .copied()
        .collect();
    let mut unresolved = Vec::new();
    if !pubkeys.is_empty() {
        let pk = &pubkeys;
        let found = pool
            .call(
                "/eth/v1/beacon/states/{state_id}/validators",
                |c| async move { c.validators(StateId::Head, pk).await },
            )
            .await?
            .unwrap_or_default();
        let by_key: HashMap<_, _> = found.iter().map(|v| (v.pubkey, v.index)).collect();
        for id in pubkeys {
            if let ValidatorId::Pubkey(k) = id {
                match by_key.get(&k) {
                    Some(i) => {
                        resolved.insert(id, *i);
                    }
                    None => unresolved.push(id),
                }
            }
        }
    }
    Ok((resolved, unresolved))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{AttesterDuty, Gwei, Pubkey, ValidatorStatus};

    // 8 slots per epoch; epoch 1 = slots 8..=15; two committees of four per
    // slot: validator v sits at slot 8 + v / 8, committee (v / 4) % 2,
    // position v % 4.
    const E: Epoch = Epoch(1);
    const DEP: Root = Root([3; 32]);

    fn spec() -> ChainSpec {
        ChainSpec::test_spec(8, 2000, 0)
    }

    fn seat(v: u64) -> (Slot, u64, u64) {
        (Slot(8 + v / 8), (v / 4) % 2, v % 4)
    }

    fn committees_of(slots: &[u64]) -> Vec<Committee> {
        let mut out = Vec::new();
        for &s in slots {
            for k in 0..2 {
                let base = (s - 8) * 8 + k * 4;
                out.push(Committee {
                    slot: Slot(s),
                    index: k,
                    validators: (base..base + 4).map(ValidatorIndex).collect(),
                });
            }
        }
        out
    }

    fn duty(v: u64) -> AttesterDuty {
        let (slot, committee_index, position) = seat(v);
        AttesterDuty {
            validator_index: ValidatorIndex(v),
            slot,
            committee_index,
            committee_length: 4,
            position,
        }
    }

    fn duties(vs: &[u64]) -> AttesterDuties {
        AttesterDuties {
            epoch: E,
            dependent_root: DEP,
            duties: vs.iter().map(|v| duty(*v)).collect(),
        }
    }

    /// Validators 0..64, all active; 50 exited before epoch 1.
    fn registry() -> HashMap<ValidatorIndex, ValidatorInfo> {
        (0..64)
            .map(|v| {
                let info = ValidatorInfo {
                    index: ValidatorIndex(v),
                    pubkey: Pubkey([0; 48]),
                    balance: Gwei(32_000_000_000),
                    effective_balance: Gwei(32_000_000_000),
                    status: ValidatorStatus::ActiveOngoing,
                    slashed: false,
                    activation_epoch: Epoch(0),
                    exit_epoch: Epoch(if v == 50 { 1 } else { u64::MAX }),
                };
                (ValidatorIndex(v), info)
            })
            .collect()
    }

    fn idx(vs: &[u64]) -> Vec<ValidatorIndex> {
        vs.iter().map(|v| ValidatorIndex(*v)).collect()
    }

    #[test]
    fn duty_slots_only_when_duties_fit_and_are_few() {
        let other_epoch = AttesterDuties {
            epoch: Epoch(2),
            ..duties(&[0])
        };
        let mut outside = duties(&[0]);
        outside.duties[0].slot = Slot(16);
        type Row = (
            &'static str,
            Vec<u64>,
            AttesterDuties,
            Option<Root>,
            Option<Vec<u64>>,
        );
        let cases: Vec<Row> = vec![
            (
                "one validator: its slot",
                vec![0],
                duties(&[0]),
                Some(DEP),
                Some(vec![8]),
            ),
            (
                "same slot twice",
                vec![0, 5],
                duties(&[0, 5]),
                Some(DEP),
                Some(vec![8]),
            ),
            (
                "dependent unknown: the self-check decides",
                vec![9],
                duties(&[9]),
                None,
                Some(vec![9]),
            ),
            (
                "another shuffling",
                vec![0],
                duties(&[0]),
                Some(Root([4; 32])),
                None,
            ),
            (
                "duties of another epoch",
                vec![0],
                other_epoch,
                Some(DEP),
                None,
            ),
            (
                "a duty outside the epoch",
                vec![0],
                outside,
                Some(DEP),
                None,
            ),
            (
                "an active validator without a duty",
                vec![0, 9],
                duties(&[0]),
                Some(DEP),
                None,
            ),
            (
                "an exited validator needs no duty",
                vec![0, 50],
                duties(&[0]),
                Some(DEP),
                Some(vec![8]),
            ),
            (
                "three slots of eight",
                vec![0, 8, 16],
                duties(&[0, 8, 16]),
                Some(DEP),
                Some(vec![8, 9, 10]),
            ),
            (
                "half the slots: whole epoch",
                vec![0, 8, 16, 24],
                duties(&[0, 8, 16, 24]),
                Some(DEP),
                None,
            ),
        ];
        for (name, watched, d, dep, want) in cases {
            let got = duty_slots(&spec(), E, dep, &idx(&watched), &registry(), &d);
            let want = want.map(|w| w.into_iter().map(Slot).collect::<BTreeSet<_>>());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_state_kind_not_served_is_skipped_until_re_probed() {
        let mut u = Unserved::default();
        u.note("validators", StateKind::EmptySlot, Epoch(10));
        let cases = [
            (
                "the same epoch",
                "validators",
                StateKind::EmptySlot,
                10,
                true,
            ),
            (
                "before the re-probe",
                "validators",
                StateKind::EmptySlot,
                17,
                true,
            ),
            ("re-probed", "validators", StateKind::EmptySlot, 18, false),
            ("another kind", "validators", StateKind::Slot, 11, false),
            (
                "another route",
                "committees",
                StateKind::EmptySlot,
                11,
                false,
            ),
        ];
        for (name, route, kind, epoch, skips) in cases {
            assert_eq!(u.skips(route, kind, Epoch(epoch)), skips, "{name}");
        }
    }

    #[test]
    fn attester_duties_are_asked_only_for_fewer_validators_than_slots() {
        let spec = spec(); // 8 slots per epoch
        let asked: Vec<usize> = (0..12)
            .filter(|&n| attester_duties_worth_asking(&spec, n))
            .collect();
        assert_eq!(asked, vec![1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn check_seats_needs_every_active_watched_validator_at_its_seat() {
        let mut moved = duties(&[1]);
        moved.duties[0].position = 2;
        let mut other_committee = duties(&[1]);
        other_committee.duties[0].committee_index = 1;
        let mut longer = duties(&[1]);
        longer.duties[0].committee_length = 5;
        let mut twice = duties(&[1]);
        twice.duties.push(AttesterDuty {
            slot: Slot(9),
            ..duty(1)
        });
        type Row = (&'static str, Vec<u64>, AttesterDuties, Vec<u64>, bool);
        let cases: Vec<Row> = vec![
            ("at its seat", vec![1], duties(&[1]), vec![8], true),
            (
                "two validators, two slots",
                vec![1, 13],
                duties(&[1, 13]),
                vec![8, 9],
                true,
            ),
            (
                "the same duty listed twice",
                vec![1],
                {
                    let mut d = duties(&[1]);
                    d.duties.push(duty(1));
                    d
                },
                vec![8],
                true,
            ),
            (
                "exited: no seat needed",
                vec![1, 50],
                duties(&[1]),
                vec![8],
                true,
            ),
            ("position differs", vec![1], moved, vec![8], false),
            (
                "committee differs",
                vec![1],
                other_committee,
                vec![8],
                false,
            ),
            ("committee length differs", vec![1], longer, vec![8], false),
            ("two different duties", vec![1], twice, vec![8, 9], false),
            (
                "slot not fetched",
                vec![1, 13],
                duties(&[1, 13]),
                vec![8],
                false,
            ),
            (
                "active without a duty",
                vec![1, 13],
                duties(&[1]),
                vec![8, 9],
                false,
            ),
            ("nothing fetched", vec![1], duties(&[1]), vec![], false),
        ];
        for (name, watched, d, slots, ok) in cases {
            let got = check_seats(E, &idx(&watched), &registry(), &d, &committees_of(&slots));
            assert_eq!(got.is_ok(), ok, "{name}: {got:?}");
        }
    }
}
