//! IO: what ONE beacon node shows of the watched validators in the epochs a
//! failover check reads. Every node is asked on its own (never through the
//! pool's failover), because the check needs each node's view.
//!
//! Owns: the requests per node (head, canonical chain walk, committees,
//! sync committees, liveness, the attestation and slashing pools), the
//! fallbacks between state ids and between pool route versions, and the
//! per-node block cache. Must not: decide anything (it records what it saw
//! and what failed in a `NodeView`; `judge` decides).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use super::evidence::{block_evidence, pool_evidence, CommitteeIndex, SyncCommittees};
use super::judge::{scanned_epochs, Evidence, EvidenceKind, NodeView};
use crate::beacon::{BeaconClient, BeaconError, BlockId, NodeHealth, NodeReport, StateId};
use crate::chain::{
    Attestation, AttesterSlashing, Block, ChainSpec, Epoch, ProposerSlashing, Root, Slot,
    ValidatorIndex,
};

/// Blocks of one node, by root (a block never changes under its root), so
/// `--watch` reads each block once.
#[derive(Debug, Default)]
pub struct NodeCache {
    blocks: HashMap<Root, Arc<Block>>,
}

impl NodeCache {
    fn prune_below(&mut self, slot: Slot) {
        self.blocks.retain(|_, b| b.header.slot >= slot);
    }
}

pub fn health_name(h: &NodeHealth) -> &'static str {
    match h {
        NodeHealth::Unknown => "unknown",
        NodeHealth::Healthy => "healthy",
        NodeHealth::Syncing => "syncing",
        NodeHealth::Lagging => "lagging",
        NodeHealth::Unreachable => "unreachable",
        NodeHealth::WrongNetwork => "wrong_network",
    }
}

/// Tries each state id in turn; the first `Some` wins. `Err` carries the
/// last failure; a 404 is "not served" and moves on.
async fn first_state<T, F, Fut>(states: &[StateId], f: F) -> Result<T, String>
where
    F: Fn(StateId) -> Fut,
    Fut: Future<Output = Result<Option<T>, BeaconError>>,
{
    let mut last = "no state to ask".to_string();
    for &s in states {
        match f(s).await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => last = format!("state {s} not served"),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// States to read epoch `epoch`'s committees from: the post-state of the
/// latest walked block of the epoch (by root: the exact fork the chain
/// walk saw), the epoch's first slot, and `head` (which computes the
/// current, previous and next epochs).
fn states_for(spec: &ChainSpec, chain: &[Arc<Block>], epoch: Epoch) -> Vec<StateId> {
    let mut out = Vec::new();
    if let Some(b) = chain
        .iter()
        .filter(|b| spec.epoch_of(b.header.slot) == epoch)
        .max_by_key(|b| b.header.slot)
    {
        out.push(StateId::Root(b.header.state_root));
    }
    out.push(StateId::Slot(spec.start_slot(epoch)));
    out.push(StateId::Head);
    out
}

/// Everything `client` shows for the check at `clock_slot`. `report` is
/// the pool's latest health of this node.
pub async fn observe(
    client: &BeaconClient,
    report: &NodeReport,
    spec: &ChainSpec,
    clock_slot: Slot,
    quiet_epochs: u64,
    watched: &[ValidatorIndex],
    cache: &mut NodeCache,
) -> NodeView {
    let name = client.name().to_string();
    let mut view = NodeView {
        name: name.clone(),
        health: health_name(&report.health).to_string(),
        healthy: report.health == NodeHealth::Healthy,
        head_slot: report.head_slot.map(Slot),
        ..NodeView::default()
    };
    if matches!(
        report.health,
        NodeHealth::Unreachable | NodeHealth::WrongNetwork
    ) {
        view.problems.push(
            report
                .last_error
                .clone()
                .unwrap_or_else(|| view.health.clone()),
        );
        return view;
    }

    let current = spec.epoch_of(clock_slot);
    let (lo, hi) = scanned_epochs(current, quiet_epochs);
    // Epochs before this one are read to report the last activity; a gap
    // there does not keep the node from confirming.
    let window_start = Epoch(current.0.saturating_sub(quiet_epochs));
    let scan_start = spec.start_slot(lo);
    let watched_set: HashSet<ValidatorIndex> = watched.iter().copied().collect();

    // The canonical chain as this node sees it: walk parent roots from its
    // head down to the first block before the scanned epochs, so every
    // block belongs to one chain even if the head moves meanwhile.
    let (chain, chain_complete) = match walk_chain(client, cache, scan_start).await {
        Ok((head_slot, chain)) => {
            view.head_slot = Some(head_slot.max(view.head_slot.unwrap_or_default()));
            (chain, true)
        }
        Err(e) => {
            view.problems.push(e);
            (Vec::new(), false)
        }
    };
    cache.prune_below(scan_start);

    let mut committees = CommitteeIndex::default();
    for e in (lo.0..=hi.0).map(Epoch) {
        let states = states_for(spec, &chain, e);
        let got = first_state(&states, |s| async move { client.committees(s, e).await }).await;
        match got {
            Ok(c) => committees.add_epoch(spec, e, c),
            Err(err) if e >= window_start => view
                .problems
                .push(format!("committees of epoch {e}: {err}")),
            Err(_) => {}
        }
    }

    let mut sync = SyncCommittees::new();
    let mut sync_failed = BTreeSet::new();
    for e in (lo.0..=hi.0).map(Epoch) {
        let period = spec.sync_period_of(e);
        if !spec.fork_at(e).has_sync_committee() || sync.contains_key(&period) {
            continue;
        }
        let states = states_for(spec, &chain, e);
        let got = first_state(
            &states,
            |s| async move { client.sync_committee(s, e).await },
        )
        .await;
        match got {
            Ok(m) => {
                sync.insert(period, m);
            }
            Err(err) => {
                sync_failed.insert(period);
                if e >= window_start {
                    view.problems
                        .push(format!("sync committee of epoch {e}: {err}"));
                }
            }
        }
    }

    let mut evidence: Vec<Evidence> = Vec::new();
    for b in &chain {
        match block_evidence(spec, b, &committees, &sync, &watched_set) {
            Ok(seen) => evidence.extend(seen.into_iter().map(|s| Evidence {
                validator_index: s.validator_index,
                node: name.clone(),
                epoch: s.epoch,
                kind: s.kind,
                slot: Some(s.slot),
            })),
            Err(e) => view.problems.push(e),
        }
    }

    let sync_ok = |e: Epoch| {
        !spec.fork_at(e).has_sync_committee() || sync.contains_key(&spec.sync_period_of(e))
    };
    if chain_complete {
        view.onchain_epochs = (lo.0..=hi.0)
            .map(Epoch)
            .filter(|&e| committees.has_epoch(e))
            .filter(|&e| sync_ok(e) && (e >= hi || sync_ok(Epoch(e.0 + 1))))
            .collect();
    }

    // Liveness: nodes answer the current epoch and the one before (some
    // also the next); a 400/500 there is the node's range limit, not a
    // failure, and only means liveness cannot settle that epoch.
    for e in (current.0.saturating_sub(1).max(lo.0)..=current.0).map(Epoch) {
        if watched.is_empty() {
            break;
        }
        match client.liveness(e, watched).await {
            Ok(answers) => {
                let m = view.liveness.entry(e).or_default();
                for (v, live) in answers {
                    if !watched_set.contains(&v) {
                        continue;
                    }
                    m.insert(v, live);
                    if live {
                        evidence.push(Evidence {
                            validator_index: v,
                            node: name.clone(),
                            epoch: e,
                            kind: EvidenceKind::Liveness,
                            slot: None,
                        });
                    }
                }
            }
            Err(err) if err.is_range_limit() => {
                tracing::debug!(node = %name, epoch = e.0, error = %crate::causes(&err), "liveness not served for this epoch");
            }
            Err(err) => view.problems.push(format!("liveness of epoch {e}: {err}")),
        }
    }

    // The pools: votes signed but not (yet) in a block, and slashings not
    // yet included. A node that serves no pool route (404 on v2 and v1)
    // adds no evidence; any other failure keeps it from confirming.
    if !watched.is_empty() {
        let pool = read_pools(client).await;
        for p in &pool.problems {
            view.problems.push(p.clone());
        }
        match pool_evidence(
            spec,
            &pool.attestations,
            &pool.attester_slashings,
            &pool.proposer_slashings,
            &committees,
            &watched_set,
        ) {
            Ok(seen) => evidence.extend(seen.into_iter().map(|s| Evidence {
                validator_index: s.validator_index,
                node: name.clone(),
                epoch: s.epoch,
                kind: s.kind,
                slot: None,
            })),
            Err(e) => view.problems.push(e),
        }
    }

    // One piece per (validator, epoch, kind) and node: an aggregate that
    // sits in two blocks is one vote.
    evidence.sort_by(|a, b| {
        (a.validator_index, a.epoch, a.kind, a.slot).cmp(&(
            b.validator_index,
            b.epoch,
            b.kind,
            b.slot,
        ))
    });
    evidence.dedup_by(|b, a| {
        a.validator_index == b.validator_index && a.epoch == b.epoch && a.kind == b.kind
    });
    view.evidence = evidence;
    view
}

/// What one node's pools hold, and what could not be read.
#[derive(Default)]
struct Pools {
    attestations: Vec<Attestation>,
    attester_slashings: Vec<AttesterSlashing>,
    proposer_slashings: Vec<ProposerSlashing>,
    problems: Vec<String>,
}

async fn read_pools(client: &BeaconClient) -> Pools {
    let mut out = Pools::default();
    let name = client.name();
    match client.pool_attestations().await {
        Ok(Some((_, a))) => out.attestations = a,
        Ok(None) => tracing::debug!(node = %name, "attestation pool not served"),
        Err(e) => out.problems.push(format!("attestation pool: {e}")),
    }
    match client.pool_attester_slashings().await {
        Ok(Some(s)) => out.attester_slashings = s,
        Ok(None) => tracing::debug!(node = %name, "attester slashing pool not served"),
        Err(e) => out.problems.push(format!("attester slashing pool: {e}")),
    }
    match client.pool_proposer_slashings().await {
        Ok(Some(s)) => out.proposer_slashings = s,
        Ok(None) => tracing::debug!(node = %name, "proposer slashing pool not served"),
        Err(e) => out.problems.push(format!("proposer slashing pool: {e}")),
    }
    out
}

/// The node's canonical blocks from `scan_start` to its head, newest first,
/// and the head's slot. Fails if a block of the chain cannot be read.
async fn walk_chain(
    client: &BeaconClient,
    cache: &mut NodeCache,
    scan_start: Slot,
) -> Result<(Slot, Vec<Arc<Block>>), String> {
    let head = client
        .header(BlockId::Head)
        .await
        .map_err(|e| format!("head: {e}"))?
        .ok_or_else(|| "head: not found".to_string())?;
    let mut out = Vec::new();
    let mut root = head.root;
    // Each step goes back at least one slot: bounded by the slots scanned,
    // whatever the node answers.
    for _ in 0..=head.slot.0.saturating_sub(scan_start.0) + 1 {
        let block = match cache.blocks.get(&root) {
            Some(b) => b.clone(),
            None => {
                let b = client
                    .block(BlockId::Root(root), Some(root))
                    .await
                    .map_err(|e| format!("block {root}: {e}"))?
                    .ok_or_else(|| format!("block {root}: not found"))?;
                let b = Arc::new(b);
                cache.blocks.insert(root, b.clone());
                b
            }
        };
        // The genesis block has no proposer and no votes.
        if block.header.slot < scan_start || block.header.slot.0 == 0 {
            return Ok((head.slot, out));
        }
        let parent = block.header.parent_root;
        out.push(block);
        if parent == Root::ZERO {
            return Ok((head.slot, out));
        }
        root = parent;
    }
    Err(format!(
        "chain from head slot {} does not reach slot {scan_start}",
        head.slot
    ))
}
