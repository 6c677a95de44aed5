//! The failover verdict: from the evidence each node showed, the state of
//! each node and the wall-clock slot, is it safe to start the backup
//! validator client for each validator?
//!
//! Owns: the quiet-epoch rule, the two-node rule and the wording of each
//! reason. Must not: do IO or read the clock (`clock_slot` is an input), so
//! every rule is tested with plain tables.
//!
//! # The rule (conservative by construction)
//!
//! Let C be the epoch of the wall clock and N the quiet epochs asked for
//! (at least 2). A validator is `safe` only when ALL of these hold:
//!
//! 0. The quiet window is COMPLETE: its N epochs (C−N … C−1, or
//!    C−N−1 … C−2 when it grows, rule 3) exist, and the validator was
//!    active in every one of them (`activation_epoch <= E < exit_epoch`,
//!    `is_active_validator`). Every active validator sits in exactly one
//!    committee per epoch (`get_beacon_committee` shuffles all active
//!    indices), so active means "had an attestation duty": only then does
//!    silence show that its client stopped. A validator that never ran
//!    but is active from genesis is `safe` once the window is complete;
//!    before that, at a young chain, `unknown` ("the chain is younger
//!    than the window"). Pending validators (no activation epoch yet, or
//!    one in the future) and validators activated inside the window are
//!    `unknown`: a client that waits for activation signs as soon as it
//!    is active. An exited validator has no duties from its exit epoch X
//!    on, so it can never show a quiet epoch with duties again; it is
//!    `safe` only once the whole window lies after its exit (C ≥ X+N,
//!    its last votes, for X−1, long settled), and the reason says so.
//! 1. No node, whatever its health, shows activity of the validator in any
//!    epoch from C−N to C (an attestation whose vote is for that epoch, a
//!    proposal in it, a sync signature for one of its slots, a vote for it
//!    in the node's attestation pool, or liveness `is_live: true` for it). Any such evidence makes it `not_safe`, even
//!    from a lagging node: evidence of signing is never discarded.
//! 2. Every configured node is usable: reachable, on the same network,
//!    synced, at the head (not behind the other nodes, and its head not more
//!    than `MAX_HEAD_AGE_EPOCHS` behind the clock), and answered every
//!    request (a 400/500 range limit of liveness is not a failure, nor is
//!    a node that serves no pool routes at all: 404).
//!    With two or more nodes configured this is the "at least two healthy
//!    nodes at the head agree" rule, made stricter: one broken node makes
//!    the answer `unknown`, because the operator asked for it to be checked.
//!    With one node configured, `safe` comes with a warning.
//! 3. On every node, each of the N complete epochs E = C−N … C−1 is SETTLED:
//!    the node showed all of E's on-chain data so far (canonical chain walked
//!    from before E to the head, committees and sync committees read), and
//!    either
//!    - E's inclusion window has closed: a vote for E can be included until
//!      the last slot of E+1 (EIP-7045; before Deneb earlier, so this bound
//!      is safe for every fork). It counts as closed only when the node's
//!      head is past that slot: the node imported a block built after the
//!      window. The clock alone is not enough, because a node that stopped
//!      importing may still call itself synced (the recorded Lodestar
//!      reported `sync_distance` 0 four slots behind); or
//!    - the node's liveness answer for E says not live (liveness includes
//!      gossip on most clients, so it sees a vote before any block carries
//!      it), asked when the clock was at least `LIVENESS_SETTLE_SLOTS` past
//!      the end of E and the node's head was past the end of E.
//!
//!    C−1's window stays open during all of C, so without liveness it can
//!    never settle. It may then stay unsettled if it shows nothing so far
//!    and the N epochs before it (C−N−1 … C−2) are settled and quiet: the
//!    window grows by one epoch, it never shrinks. On the recorded devnet
//!    (liveness answered) validators stopped before epoch 6 are `safe` from
//!    slot 65 (epoch 8); a node without liveness would need epoch 9.
//! 4. On every node the current epoch C so far shows nothing: its on-chain
//!    data up to the head was read (and liveness for C, where the node
//!    answers it, said not live — rule 1).
//!
//! # Complete epochs and the current one
//!
//! A complete epoch is one the clock has left (E < C). Only complete,
//! settled epochs count toward N. The current epoch C is partial: the
//! validator's one attestation duty in C may sit in a slot the chain has
//! not reached yet, and even a vote already signed may reach a block only
//! by the end of C+1 (EIP-7045: `process_attestation` accepts a vote
//! whose target is the current or the previous epoch, from Deneb on). So
//! silence in C proves nothing and C never counts; activity in C makes the
//! validator `not_safe` (rule 1), and C's data up to the head must have
//! been read (rule 4). Clamping the window to the epochs that exist and
//! counting the partial epoch as quiet is exactly how a young chain once
//! looked `safe` for running validators that had not reached their duty
//! slot yet (issue 16).
//!
//! Anything else is `unknown` with the first reason found, never `safe`.
//! A validator the registry does not know, or whose activation and exit
//! epochs were not read, is `unknown` too.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::chain::{ChainSpec, Epoch, Slot, ValidatorIndex, ValidatorInfo, FAR_FUTURE_EPOCH};

/// The fewest quiet epochs accepted. One epoch is not enough: a client that
/// stopped and restarted within an epoch, or whose last vote sits in the
/// next epoch's first block, would look quiet.
pub const MIN_QUIET_EPOCHS: u64 = 2;

/// Slots after the end of an epoch before a "not live" answer for it
/// counts: votes of the epoch's last slot are aggregated at 2/3 of that
/// slot and first fit in the next slot's block, which a node that marks
/// liveness from blocks (Lodestar 1.22, as recorded) sees only then.
pub const LIVENESS_SETTLE_SLOTS: u64 = 2;

/// A node whose head is more than this many epochs behind the wall clock is
/// not at the head, whatever its own `syncing` says (the recorded Lodestar
/// reported `sync_distance` 0 four slots behind). A whole epoch without a
/// block is an incident, and no failover should be called safe during one.
pub const MAX_HEAD_AGE_EPOCHS: u64 = 1;

/// What kind of activity was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// The validator's vote for `epoch` is in a canonical block.
    Attestation,
    /// The validator proposed the canonical block of a slot in `epoch`.
    Proposal,
    /// The validator's sync-committee signature for a slot of `epoch` is in
    /// the next slot's canonical block.
    SyncSignature,
    /// The node's `/validator/liveness/{epoch}` said `is_live: true`.
    Liveness,
    /// The validator's vote for `epoch` is in the node's attestation pool
    /// (signed, whether or not a block carries it yet).
    PoolAttestation,
    /// A slashing operation (or conflicting signatures) names the
    /// validator: its keys sign in two places already. `not_safe` whatever
    /// the epoch, since starting a backup would add a third signer.
    DoubleSign,
}

impl EvidenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Attestation => "attestation",
            EvidenceKind::Proposal => "proposal",
            EvidenceKind::SyncSignature => "sync_signature",
            EvidenceKind::Liveness => "liveness",
            EvidenceKind::PoolAttestation => "pool_attestation",
            EvidenceKind::DoubleSign => "double_sign",
        }
    }
}

/// One piece of evidence: `validator_index` was active in `epoch`, as `node`
/// showed it. `slot` is the canonical block that carries it (none for
/// liveness and for what the node's pools hold).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Evidence {
    #[serde(skip)]
    pub validator_index: ValidatorIndex,
    pub node: String,
    pub epoch: Epoch,
    pub kind: EvidenceKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<Slot>,
}

/// Everything one node showed in one check.
#[derive(Clone, Debug, Default)]
pub struct NodeView {
    pub name: String,
    /// Health as shown to the operator (`healthy`, `lagging`, …).
    pub health: String,
    /// Synced, on the network, not behind the other nodes (the pool's
    /// `Healthy`). The head-age rule is applied here, from `head_slot`.
    pub healthy: bool,
    pub head_slot: Option<Slot>,
    /// Requests that failed (range limits excluded). Any entry keeps this
    /// node from confirming quiet.
    pub problems: Vec<String>,
    /// Epochs whose on-chain activity the node showed completely up to its
    /// head: chain walked from before the epoch, committees and sync
    /// committees read.
    pub onchain_epochs: BTreeSet<Epoch>,
    /// Liveness answers: per epoch asked and answered, each validator's
    /// `is_live`. An epoch the node refused (range limit) is absent.
    pub liveness: BTreeMap<Epoch, HashMap<ValidatorIndex, bool>>,
    /// Activity seen on this node (any epoch).
    pub evidence: Vec<Evidence>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Safe,
    Unknown,
    NotSafe,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Safe => "safe",
            Verdict::Unknown => "unknown",
            Verdict::NotSafe => "not_safe",
        }
    }
}

/// The verdict for one validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValidatorVerdict {
    pub validator_index: ValidatorIndex,
    pub verdict: Verdict,
    /// The latest epoch with any evidence, on any node (`null`: none in the
    /// epochs checked).
    pub last_active_epoch: Option<Epoch>,
    /// The node that showed that latest evidence (the first in config order
    /// if several did).
    pub last_active_node: Option<String>,
    /// Every piece of evidence, newest epoch first.
    pub evidence: Vec<Evidence>,
    pub reason: String,
}

/// The epochs in which a validator has duties, as the registry says:
/// active while `activation <= epoch < exit` (`is_active_validator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveSpan {
    /// `activation_epoch`: `FAR_FUTURE_EPOCH` while the validator waits
    /// for the queue to schedule it, then an epoch up to
    /// `1 + MAX_SEED_LOOKAHEAD` ahead (`compute_activation_exit_epoch`).
    pub activation: Epoch,
    /// `exit_epoch`: `FAR_FUTURE_EPOCH` while no exit is scheduled.
    pub exit: Epoch,
}

impl ActiveSpan {
    /// Active from genesis, no exit scheduled.
    pub const GENESIS: ActiveSpan = ActiveSpan {
        activation: Epoch(0),
        exit: Epoch(FAR_FUTURE_EPOCH),
    };

    pub fn of(info: &ValidatorInfo) -> ActiveSpan {
        ActiveSpan {
            activation: info.activation_epoch,
            exit: info.exit_epoch,
        }
    }
}

/// The oldest epoch a validator's quiet window may reach back to, and why
/// it cannot reach further (rule 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Floor {
    /// Active from genesis: epoch 0 is the oldest there is.
    Genesis,
    /// Activated in this epoch: before it the validator had no duties.
    Activation(Epoch),
    /// Exited in this epoch: the window must lie wholly after the exit.
    Exit(Epoch),
}

impl Floor {
    fn epoch(self) -> Epoch {
        match self {
            Floor::Genesis => Epoch(0),
            Floor::Activation(e) | Floor::Exit(e) => e,
        }
    }

    /// Why the window cannot grow back past the floor, to make up for an
    /// unsettled newest epoch (rule 3).
    fn blocks_growth(self, v: ValidatorIndex, quiet: u64) -> String {
        match self {
            Floor::Genesis => "the chain is younger than the window grown by that open epoch: \
                 there is no epoch before epoch 0"
                .to_string(),
            Floor::Activation(a) => format!(
                "validator {v} became active in epoch {a}: it has no earlier epoch with duties \
                 to make up for the open one, and it needs {quiet} quiet epochs with duties"
            ),
            Floor::Exit(x) => format!(
                "validator {v} exited in epoch {x}: the window may not reach back before its exit \
                 (exited validators are safe only {quiet} settled epochs after the exit epoch)"
            ),
        }
    }
}

/// Rule 0: whether `v`, with duties in `span`, can have a complete quiet
/// window of `quiet` epochs before the current epoch `current`; if so the
/// oldest epoch the window may use, else why not in words.
fn window_floor(
    v: ValidatorIndex,
    span: ActiveSpan,
    current: Epoch,
    quiet: u64,
) -> Result<Floor, String> {
    let c = current.0;
    let a = span.activation.0;
    let x = span.exit.0;
    if a == FAR_FUTURE_EPOCH {
        return Err(format!(
            "validator {v} is pending (no activation epoch yet): without duties the silence \
             of its client proves nothing; it needs {quiet} quiet epochs with duties"
        ));
    }
    if x <= c {
        let from = x.saturating_add(quiet);
        if from > c {
            return Err(format!(
                "validator {v} exited in epoch {x}: it has no duties from then on, but \
                 exited validators are safe only {quiet} complete epochs after the exit \
                 epoch, from epoch {from}"
            ));
        }
        return Ok(Floor::Exit(span.exit));
    }
    let from = a.saturating_add(quiet);
    if a > c {
        return Err(format!(
            "validator {v} becomes active in epoch {a} (pending): a client waiting for \
             activation signs as soon as it is active; it needs {quiet} quiet epochs with \
             duties, safe from epoch {from} at the earliest"
        ));
    }
    if from > c {
        if a == 0 {
            return Err(format!(
                "the chain is younger than the window: epoch {c} is the current epoch and \
                 {quiet} complete epochs with duties are needed (epochs 0..={}), safe from \
                 epoch {quiet} at the earliest; the current epoch never counts, its duties \
                 may be still ahead",
                quiet.saturating_sub(1)
            ));
        }
        return Err(format!(
            "validator {v} became active in epoch {a}; it needs {quiet} quiet epochs with \
             duties (epochs {a}..={}), safe from epoch {from} at the earliest",
            from.saturating_sub(1)
        ));
    }
    Ok(if a == 0 {
        Floor::Genesis
    } else {
        Floor::Activation(span.activation)
    })
}

/// The inputs of one verdict besides the node views.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    pub spec: &'a ChainSpec,
    pub clock_slot: Slot,
    /// Already clamped to at least `MIN_QUIET_EPOCHS`.
    pub quiet_epochs: u64,
    /// Validators the registry does not know, with why.
    pub not_in_registry: &'a HashMap<ValidatorIndex, String>,
    /// When each validator has duties (from the registry at the head). A
    /// validator missing here is `unknown`: its window cannot be checked.
    pub spans: &'a HashMap<ValidatorIndex, ActiveSpan>,
}

/// `quiet_epochs` raised to the minimum, with a warning when it was raised.
pub fn clamp_quiet_epochs(asked: u64) -> (u64, Option<String>) {
    if asked < MIN_QUIET_EPOCHS {
        (
            MIN_QUIET_EPOCHS,
            Some(format!(
                "--quiet-epochs {asked} is below the minimum; using {MIN_QUIET_EPOCHS}"
            )),
        )
    } else {
        (asked, None)
    }
}

/// The epochs a check reads: one before the quiet window (to report the
/// last activity before it) through the current epoch.
pub fn scanned_epochs(current: Epoch, quiet_epochs: u64) -> (Epoch, Epoch) {
    (
        Epoch(current.0.saturating_sub(quiet_epochs.saturating_add(1))),
        current,
    )
}

/// Is a node at the head: healthy by the pool's rules and its head no more
/// than `MAX_HEAD_AGE_EPOCHS` behind the clock.
pub fn at_head(spec: &ChainSpec, node: &NodeView, clock_slot: Slot) -> bool {
    let max_age = MAX_HEAD_AGE_EPOCHS.saturating_mul(spec.slots_per_epoch);
    node.healthy
        && node
            .head_slot
            .is_some_and(|h| h.0.saturating_add(max_age) >= clock_slot.0)
}

/// Is epoch `e` settled on `node` for `v` (rule 3), and if not, why.
fn settled(ctx: &Context<'_>, node: &NodeView, v: ValidatorIndex, e: Epoch) -> Result<(), String> {
    let spec = ctx.spec;
    let head = node.head_slot.unwrap_or_default();
    let window_end = spec.inclusion_window_end(e);
    if head > window_end {
        return Ok(());
    }
    let end = spec.end_slot(e);
    let liveness_from = end.0.saturating_add(LIVENESS_SETTLE_SLOTS);
    let not_live = node.liveness.get(&e).and_then(|m| m.get(&v)) == Some(&false);
    if not_live && ctx.clock_slot.0 >= liveness_from && head > end {
        return Ok(());
    }
    let liveness = if not_live {
        format!("its liveness counts from slot {liveness_from} with a head past slot {end}")
    } else {
        "liveness not available for it".to_string()
    };
    Err(format!(
        "epoch {e} not settled on node {}: votes can be included until slot {window_end} (head {head}) and {liveness}",
        node.name
    ))
}

/// Why node `node` cannot confirm that `v` was quiet; `None` when it does.
/// `active` holds the epochs in which any node saw `v` active; `floor`
/// is the oldest epoch the window may use (rule 0).
///
/// Rules 2–4 of the module docs, with one extension: the most recent
/// complete epoch (C−1) cannot settle by its inclusion window during C, so
/// a node without liveness could never confirm. Such an epoch may stay
/// unsettled if it shows nothing so far on chain and the N epochs before it
/// are settled and quiet: the quiet window then grows by one epoch, it is
/// never shortened, and it never grows past the floor.
fn not_confirmed(
    ctx: &Context<'_>,
    node: &NodeView,
    v: ValidatorIndex,
    active: &BTreeSet<Epoch>,
    floor: Floor,
) -> Option<String> {
    let spec = ctx.spec;
    let name = &node.name;
    if !node.healthy {
        return Some(format!("node {name} is {}", node.health));
    }
    if !at_head(spec, node, ctx.clock_slot) {
        return Some(format!(
            "node {name} is not at the head (head slot {}, clock slot {})",
            node.head_slot.map_or("unknown".into(), |s| s.to_string()),
            ctx.clock_slot
        ));
    }
    if let Some(p) = node.problems.first() {
        return Some(format!("node {name} could not answer: {p}"));
    }
    let current = spec.epoch_of(ctx.clock_slot);
    if !node.onchain_epochs.contains(&current) {
        return Some(format!(
            "node {name} did not show the current epoch {current}"
        ));
    }
    let mut count = 0;
    let mut open: Option<String> = None;
    let because_open = |open: &Option<String>, why: String| match open {
        Some(o) => format!("{o}; and {why}"),
        None => why,
    };
    // Newest first, never below the floor: an epoch that does not exist,
    // or in which the validator had no duties, proves nothing.
    let mut next = current;
    while count < ctx.quiet_epochs {
        if next <= floor.epoch() {
            return Some(because_open(
                &open,
                floor.blocks_growth(v, ctx.quiet_epochs),
            ));
        }
        let e = Epoch(next.0 - 1);
        next = e;
        if !node.onchain_epochs.contains(&e) {
            return Some(because_open(
                &open,
                format!(
                    "node {name} did not show all of epoch {e}, so it cannot confirm the \
                     window (an epoch older than the data it serves, or a read that failed)"
                ),
            ));
        }
        if active.contains(&e) {
            return Some(because_open(&open, format!("active in epoch {e}")));
        }
        match settled(ctx, node, v, e) {
            Ok(()) => count += 1,
            Err(why) if open.is_none() && count == 0 => open = Some(why),
            Err(why) => return Some(because_open(&open, why)),
        }
    }
    None
}

/// Judges every validator. `validators` keeps its order; `nodes` is in
/// config order (it decides which node is named when several saw the same).
pub fn judge(
    ctx: &Context<'_>,
    nodes: &[NodeView],
    validators: &[ValidatorIndex],
) -> Vec<ValidatorVerdict> {
    let spec = ctx.spec;
    let current = spec.epoch_of(ctx.clock_slot);
    let window_start = Epoch(current.0.saturating_sub(ctx.quiet_epochs));

    let mut by_validator: HashMap<ValidatorIndex, Vec<(usize, &Evidence)>> = HashMap::new();
    for (n, node) in nodes.iter().enumerate() {
        for e in &node.evidence {
            by_validator
                .entry(e.validator_index)
                .or_default()
                .push((n, e));
        }
    }

    validators
        .iter()
        .map(|&v| {
            let mut seen = by_validator.remove(&v).unwrap_or_default();
            // Newest epoch first; among equals, config order of nodes.
            seen.sort_by(|a, b| b.1.epoch.cmp(&a.1.epoch).then(a.0.cmp(&b.0)));
            let evidence: Vec<Evidence> = seen.iter().map(|(_, e)| (*e).clone()).collect();
            let latest = seen.first().map(|(_, e)| *e);
            let mut out = ValidatorVerdict {
                validator_index: v,
                verdict: Verdict::Unknown,
                last_active_epoch: latest.map(|e| e.epoch),
                last_active_node: latest.map(|e| e.node.clone()),
                evidence,
                reason: String::new(),
            };
            if let Some((_, e)) = seen
                .iter()
                .find(|(_, e)| e.kind == EvidenceKind::DoubleSign)
            {
                out.verdict = Verdict::NotSafe;
                out.reason = format!(
                    "double-signing evidence for epoch {} seen by node {}: the keys already \
                     sign in two places; find them before starting anything",
                    e.epoch, e.node
                );
                return out;
            }
            if let Some(e) = latest.filter(|e| e.epoch >= window_start) {
                out.verdict = Verdict::NotSafe;
                out.reason = format!(
                    "active in epoch {} ({}) seen by node {}; the last {} epochs must be quiet",
                    e.epoch,
                    e.kind.as_str(),
                    e.node,
                    ctx.quiet_epochs
                );
                return out;
            }
            if let Some(why) = ctx.not_in_registry.get(&v) {
                out.reason = why.clone();
                return out;
            }
            let Some(&span) = ctx.spans.get(&v) else {
                out.reason = format!(
                    "the activation and exit epochs of validator {v} were not read, so its \
                     quiet window cannot be checked"
                );
                return out;
            };
            let floor = match window_floor(v, span, current, ctx.quiet_epochs) {
                Ok(f) => f,
                Err(why) => {
                    out.reason = why;
                    return out;
                }
            };
            if nodes.is_empty() {
                out.reason = "no beacon node configured".into();
                return out;
            }
            let active: BTreeSet<Epoch> = out.evidence.iter().map(|e| e.epoch).collect();
            if let Some(why) = nodes
                .iter()
                .find_map(|n| not_confirmed(ctx, n, v, &active, floor))
            {
                out.reason = why;
                return out;
            }
            out.verdict = Verdict::Safe;
            let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
            let seen_by = format!(
                "no activity in epochs {}..={} (current epoch so far included), seen by {}{}",
                window_start.0,
                current.0,
                names.join(", "),
                if nodes.len() == 1 {
                    " (single node)"
                } else {
                    ""
                }
            );
            out.reason = match floor {
                Floor::Genesis => seen_by,
                Floor::Activation(a) => format!("{seen_by}; active since epoch {a}"),
                Floor::Exit(x) => {
                    format!("validator {v} exited in epoch {x} and has no duties since; {seen_by}")
                }
            };
            out
        })
        .collect()
}

/// Exit code of a check: 0 every validator `safe`; 1 any `not_safe`; 2 any
/// `unknown` and none `not_safe` (also when nothing could be checked).
pub fn exit_code(verdicts: &[ValidatorVerdict]) -> u8 {
    match verdicts.iter().map(|v| v.verdict).max() {
        Some(Verdict::Safe) => 0,
        Some(Verdict::NotSafe) => 1,
        Some(Verdict::Unknown) | None => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 8 slots per epoch. The clock sits in epoch 8 unless a case says so.
    fn spec() -> ChainSpec {
        ChainSpec::test_spec(8, 1000, 0)
    }

    const V: ValidatorIndex = ValidatorIndex(40);

    fn node(name: &str, head: u64) -> NodeView {
        NodeView {
            name: name.into(),
            health: "healthy".into(),
            healthy: true,
            head_slot: Some(Slot(head)),
            problems: vec![],
            onchain_epochs: (5..=9).map(Epoch).collect(),
            liveness: BTreeMap::new(),
            evidence: vec![],
        }
    }

    fn live(mut n: NodeView, epoch: u64, is_live: bool) -> NodeView {
        n.liveness
            .entry(Epoch(epoch))
            .or_default()
            .insert(V, is_live);
        if is_live {
            n.evidence.push(ev(&n.name, epoch, EvidenceKind::Liveness));
        }
        n
    }

    fn ev(node: &str, epoch: u64, kind: EvidenceKind) -> Evidence {
        Evidence {
            validator_index: V,
            node: node.into(),
            epoch: Epoch(epoch),
            kind,
            slot: None,
        }
    }

    fn with(mut n: NodeView, epoch: u64, kind: EvidenceKind) -> NodeView {
        let e = ev(&n.name, epoch, kind);
        n.evidence.push(e);
        n
    }

    fn verdict(clock: u64, quiet: u64, nodes: &[NodeView]) -> ValidatorVerdict {
        verdict_of(clock, quiet, ActiveSpan::GENESIS, nodes)
    }

    fn verdict_of(
        clock: u64,
        quiet: u64,
        span: ActiveSpan,
        nodes: &[NodeView],
    ) -> ValidatorVerdict {
        let spec = spec();
        let none = HashMap::new();
        let spans = [(V, span)].into_iter().collect();
        let ctx = Context {
            spec: &spec,
            clock_slot: Slot(clock),
            quiet_epochs: quiet,
            not_in_registry: &none,
            spans: &spans,
        };
        judge(&ctx, nodes, &[V]).remove(0)
    }

    #[test]
    fn verdicts_follow_the_quiet_epoch_rule() {
        use EvidenceKind::*;
        use Verdict::*;
        // (case, clock slot, nodes, expected verdict, text the reason holds)
        let cases: Vec<(&str, u64, Vec<NodeView>, Verdict, &str)> = vec![
            (
                "epoch 6 window closed by the clock, epoch 7 not live: safe",
                68,
                vec![live(node("a", 67), 7, false), live(node("b", 67), 7, false)],
                Safe,
                "seen by a, b",
            ),
            (
                "epoch 7 open without liveness: the quiet window grows to epoch 5",
                68,
                vec![node("a", 67), live(node("b", 67), 7, false)],
                Safe,
                "seen by a, b",
            ),
            (
                "a vote only in one node's pool, otherwise quiet: not safe",
                68,
                vec![
                    with(live(node("a", 67), 7, false), 7, PoolAttestation),
                    live(node("b", 67), 7, false),
                ],
                NotSafe,
                "active in epoch 7 (pool_attestation) seen by node a",
            ),
            (
                "epoch 7 open without liveness and epoch 5 active: unknown",
                68,
                vec![
                    with(node("a", 67), 5, Attestation),
                    live(node("b", 67), 7, false),
                ],
                Unknown,
                "epoch 7 not settled on node a: votes can be included until slot 71 (head 67) and liveness not available for it; and active in epoch 5",
            ),
            (
                "liveness asked too soon after the epoch does not settle it",
                64,
                vec![with(live(node("a", 64), 7, false), 5, Proposal)],
                Unknown,
                "its liveness counts from slot 65 with a head past slot 63; and active in epoch 5",
            ),
            (
                "a head past the window settles it: epoch 7 open, 6 and 5 quiet",
                64,
                vec![live(node("a", 64), 7, false), live(node("b", 64), 7, false)],
                Safe,
                "",
            ),
            (
                "two open epochs: the head is not past epoch 6's window",
                66,
                vec![live(node("a", 63), 7, false)],
                Unknown,
                "epoch 7 not settled on node a: votes can be included until slot 71 (head 63) and its liveness counts from slot 65 with a head past slot 63; and epoch 6 not settled",
            ),
            (
                "the clock past the window does not close it for a stuck head",
                73,
                vec![live(node("a", 71), 8, false)],
                Unknown,
                "epoch 7 not settled on node a: votes can be included until slot 71 (head 71)",
            ),
            (
                "both windows closed by heads, no liveness at all: safe",
                74,
                vec![node("a", 72), node("b", 73)],
                Safe,
                "no activity in epochs 7..=9",
            ),
            (
                "attestation in the window on one node only: not safe",
                68,
                vec![
                    with(live(node("a", 67), 7, false), 7, Attestation),
                    live(node("b", 67), 7, false),
                ],
                NotSafe,
                "epoch 7 (attestation) seen by node a",
            ),
            (
                "evidence from a lagging node still counts",
                68,
                vec![
                    live(node("a", 67), 7, false),
                    NodeView {
                        healthy: false,
                        health: "lagging".into(),
                        ..with(node("b", 50), 8, Proposal)
                    },
                ],
                NotSafe,
                "epoch 8 (proposal) seen by node b",
            ),
            (
                "liveness true in the current epoch: not safe",
                68,
                vec![live(live(node("a", 67), 7, false), 8, true)],
                NotSafe,
                "(liveness)",
            ),
            (
                "activity before the window is reported, not held against",
                68,
                vec![
                    with(live(node("a", 67), 7, false), 5, SyncSignature),
                    live(node("b", 67), 7, false),
                ],
                Safe,
                "",
            ),
            (
                "one unreachable node of two: unknown",
                68,
                vec![
                    live(node("a", 67), 7, false),
                    NodeView {
                        healthy: false,
                        health: "unreachable".into(),
                        head_slot: None,
                        ..node("b", 0)
                    },
                ],
                Unknown,
                "node b is unreachable",
            ),
            (
                "a node that failed a request cannot confirm",
                68,
                vec![
                    live(node("a", 67), 7, false),
                    NodeView {
                        problems: vec!["committees of epoch 7: timed out".into()],
                        ..live(node("b", 67), 7, false)
                    },
                ],
                Unknown,
                "node b could not answer: committees of epoch 7",
            ),
            (
                "a node whose head is a whole epoch behind the clock",
                68,
                vec![live(node("a", 67), 7, false), live(node("b", 59), 7, false)],
                Unknown,
                "node b is not at the head",
            ),
            (
                "an epoch the node did not show completely",
                68,
                vec![
                    live(node("a", 67), 7, false),
                    NodeView {
                        onchain_epochs: [5, 6, 8].into_iter().map(Epoch).collect(),
                        ..live(node("b", 67), 7, false)
                    },
                ],
                Unknown,
                "did not show all of epoch 7",
            ),
            (
                "the current epoch not shown",
                68,
                vec![NodeView {
                    onchain_epochs: [5, 6, 7].into_iter().map(Epoch).collect(),
                    ..live(node("a", 67), 7, false)
                }],
                Unknown,
                "current epoch 8",
            ),
            (
                "one node only: safe with a warning",
                68,
                vec![live(node("a", 67), 7, false)],
                Safe,
                "seen by a (single node)",
            ),
            (
                "no node at all: unknown",
                68,
                vec![],
                Unknown,
                "no beacon node",
            ),
        ];
        for (name, clock, nodes, want, text) in cases {
            let got = verdict(clock, 2, &nodes);
            assert_eq!(got.verdict, want, "{name}: {got:?}");
            assert!(got.reason.contains(text), "{name}: reason {:?}", got.reason);
        }
    }

    /// Duties from `activation` until `exit` (`None`: far future).
    fn span(activation: Option<u64>, exit: Option<u64>) -> ActiveSpan {
        let epoch = |e: Option<u64>| Epoch(e.unwrap_or(FAR_FUTURE_EPOCH));
        ActiveSpan {
            activation: epoch(activation),
            exit: epoch(exit),
        }
    }

    /// A node of a young chain: it showed epochs 0..=3.
    fn young(name: &str, head: u64) -> NodeView {
        NodeView {
            onchain_epochs: (0..=3).map(Epoch).collect(),
            ..node(name, head)
        }
    }

    #[test]
    fn safe_needs_a_complete_window_of_quiet_epochs_with_duties() {
        use EvidenceKind::*;
        use Verdict::*;
        let genesis = span(Some(0), None);
        // (case, clock slot, quiet epochs, duties, nodes, verdict, text the reason holds)
        type Case = (
            &'static str,
            u64,
            u64,
            ActiveSpan,
            Vec<NodeView>,
            Verdict,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                "genesis: the first epoch proves nothing, duties may be ahead",
                3,
                2,
                genesis,
                vec![young("a", 2), young("b", 2)],
                Unknown,
                "the chain is younger than the window: epoch 0 is the current epoch",
            ),
            (
                "epoch 1: epoch 0 settled, still one epoch short",
                12,
                2,
                genesis,
                vec![live(young("a", 11), 0, false)],
                Unknown,
                "safe from epoch 2 at the earliest",
            ),
            (
                "epoch 2: epochs 0 and 1 settled, a key that never ran is safe",
                18,
                2,
                genesis,
                vec![live(young("a", 17), 1, false), live(young("b", 17), 1, false)],
                Safe,
                "no activity in epochs 0..=2 (current epoch so far included), seen by a, b",
            ),
            (
                "epoch 2 with epoch 1 open: the window cannot grow before genesis",
                16,
                2,
                genesis,
                vec![young("a", 16)],
                Unknown,
                "epoch 1 not settled on node a: votes can be included until slot 23 (head 16) \
                 and liveness not available for it; and the chain is younger than the window \
                 grown by that open epoch",
            ),
            (
                "three quiet epochs asked at epoch 2: younger than the window",
                18,
                3,
                genesis,
                vec![live(young("a", 17), 1, false)],
                Unknown,
                "3 complete epochs with duties are needed (epochs 0..=2), safe from epoch 3",
            ),
            (
                "a vote at genesis is activity whatever the window",
                5,
                2,
                genesis,
                vec![with(young("a", 4), 0, Attestation)],
                NotSafe,
                "active in epoch 0 (attestation) seen by node a",
            ),
            (
                "activated inside the window: unknown",
                68,
                2,
                span(Some(7), None),
                vec![live(node("a", 67), 7, false)],
                Unknown,
                "validator 40 became active in epoch 7; it needs 2 quiet epochs with duties \
                 (epochs 7..=8), safe from epoch 9 at the earliest",
            ),
            (
                "activated in the current epoch: unknown",
                68,
                2,
                span(Some(8), None),
                vec![live(node("a", 67), 7, false)],
                Unknown,
                "validator 40 became active in epoch 8",
            ),
            (
                "activated at the window's first epoch, both settled: safe, said so",
                68,
                2,
                span(Some(6), None),
                vec![live(node("a", 67), 7, false), live(node("b", 67), 7, false)],
                Safe,
                "seen by a, b; active since epoch 6",
            ),
            (
                "activated at the window's first epoch, the newest open: no growing back",
                68,
                2,
                span(Some(6), None),
                vec![node("a", 67)],
                Unknown,
                "and validator 40 became active in epoch 6: it has no earlier epoch with duties",
            ),
            (
                "activation in the future (pending): unknown",
                68,
                2,
                span(Some(10), None),
                vec![live(node("a", 67), 7, false)],
                Unknown,
                "validator 40 becomes active in epoch 10 (pending)",
            ),
            (
                "pending without an activation epoch: unknown",
                68,
                2,
                span(None, None),
                vec![live(node("a", 67), 7, false)],
                Unknown,
                "validator 40 is pending (no activation epoch yet)",
            ),
            (
                "exiting later: an ordinary active validator",
                68,
                2,
                span(Some(0), Some(12)),
                vec![live(node("a", 67), 7, false)],
                Safe,
                "no activity in epochs 6..=8",
            ),
            (
                "exited in the current epoch: unknown until exit plus the window",
                68,
                2,
                span(Some(0), Some(8)),
                vec![live(node("a", 67), 7, false)],
                Unknown,
                "validator 40 exited in epoch 8: it has no duties from then on, but exited \
                 validators are safe only 2 complete epochs after the exit epoch, from epoch 10",
            ),
            (
                "exited inside the window: unknown",
                68,
                2,
                span(Some(0), Some(7)),
                vec![live(node("a", 67), 7, false)],
                Unknown,
                "exited in epoch 7",
            ),
            (
                "exited before the window, both epochs settled: safe, said so",
                68,
                2,
                span(Some(0), Some(6)),
                vec![live(node("a", 67), 7, false)],
                Safe,
                "validator 40 exited in epoch 6 and has no duties since; no activity in epochs 6..=8",
            ),
            (
                "exited at the window's start, the newest open: no growing back before the exit",
                68,
                2,
                span(Some(0), Some(6)),
                vec![node("a", 67)],
                Unknown,
                "the window may not reach back before its exit",
            ),
            (
                "the window reaches before the oldest epoch a node serves",
                68,
                2,
                genesis,
                vec![
                    live(node("a", 67), 7, false),
                    NodeView {
                        onchain_epochs: (7..=8).map(Epoch).collect(),
                        ..live(node("b", 67), 7, false)
                    },
                ],
                Unknown,
                "node b did not show all of epoch 6, so it cannot confirm the window",
            ),
            (
                "activity beats an incomplete window",
                68,
                2,
                span(Some(7), None),
                vec![with(live(node("a", 67), 7, false), 8, PoolAttestation)],
                NotSafe,
                "active in epoch 8 (pool_attestation)",
            ),
        ];
        for (name, clock, quiet, duties, nodes, want, text) in cases {
            let got = verdict_of(clock, quiet, duties, &nodes);
            assert_eq!(got.verdict, want, "{name}: {got:?}");
            assert!(got.reason.contains(text), "{name}: reason {:?}", got.reason);
        }
    }

    #[test]
    fn no_clock_slot_of_a_young_chain_is_safe_for_any_duty_span() {
        // Whatever the nodes show, before the window is complete nothing is
        // safe: sweep every slot of epochs 0..=1 and a range of spans.
        let spans = [
            span(Some(0), None),
            span(Some(1), None),
            span(Some(3), None),
            span(None, None),
            span(Some(0), Some(1)),
        ];
        for clock in 0..16u64 {
            for &sp in &spans {
                let head = clock.saturating_sub(1);
                let nodes = [
                    live(live(young("a", head), 0, false), 1, false),
                    live(live(young("b", head), 0, false), 1, false),
                ];
                let got = verdict_of(clock, 2, sp, &nodes);
                assert_eq!(
                    got.verdict,
                    Verdict::Unknown,
                    "slot {clock}, {sp:?}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn double_sign_evidence_is_not_safe_however_old() {
        let quiet = live(node("a", 67), 7, false);
        assert_eq!(
            verdict(68, 2, std::slice::from_ref(&quiet)).verdict,
            Verdict::Safe
        );
        let got = verdict(68, 2, &[with(quiet, 1, EvidenceKind::DoubleSign)]);
        assert_eq!(got.verdict, Verdict::NotSafe, "{got:?}");
        assert!(got.reason.contains("double-signing"), "{}", got.reason);
        assert!(got.reason.contains("epoch 1"), "{}", got.reason);
    }

    #[test]
    fn more_quiet_epochs_reach_further_back() {
        let a = with(live(node("a", 67), 7, false), 5, EvidenceKind::Attestation);
        assert_eq!(
            verdict(68, 2, std::slice::from_ref(&a)).verdict,
            Verdict::Safe
        );
        let got = verdict(68, 3, &[a]);
        assert_eq!(got.verdict, Verdict::NotSafe, "{got:?}");
        assert_eq!(got.last_active_epoch, Some(Epoch(5)));
        assert_eq!(got.last_active_node.as_deref(), Some("a"));
    }

    #[test]
    fn last_activity_is_the_newest_epoch_first_node_in_config_order() {
        let a = with(node("a", 67), 6, EvidenceKind::Attestation);
        let b = with(
            with(node("b", 67), 7, EvidenceKind::Proposal),
            3,
            EvidenceKind::Attestation,
        );
        let c = with(node("c", 67), 7, EvidenceKind::Attestation);
        let got = verdict(68, 2, &[a, b, c]);
        assert_eq!(got.verdict, Verdict::NotSafe);
        assert_eq!(got.last_active_epoch, Some(Epoch(7)));
        assert_eq!(got.last_active_node.as_deref(), Some("b"));
        let epochs: Vec<u64> = got.evidence.iter().map(|e| e.epoch.0).collect();
        assert_eq!(epochs, vec![7, 7, 6, 3]);
    }

    #[test]
    fn a_validator_missing_from_the_registry_is_unknown() {
        let spec = spec();
        let missing: HashMap<_, _> = [(V, "validator 40 is not in the registry".to_string())]
            .into_iter()
            .collect();
        let spans = [(ValidatorIndex(41), ActiveSpan::GENESIS)]
            .into_iter()
            .collect();
        let ctx = Context {
            spec: &spec,
            clock_slot: Slot(74),
            quiet_epochs: 2,
            not_in_registry: &missing,
            spans: &spans,
        };
        let got = judge(
            &ctx,
            &[node("a", 73)],
            &[V, ValidatorIndex(41), ValidatorIndex(42)],
        );
        assert_eq!(got[0].verdict, Verdict::Unknown);
        assert_eq!(got[1].verdict, Verdict::Safe);
        // Known to the registry, but without its activation and exit epochs.
        assert_eq!(got[2].verdict, Verdict::Unknown);
        assert!(got[2].reason.contains("were not read"), "{}", got[2].reason);
    }

    #[test]
    fn quiet_epochs_are_clamped_to_two() {
        assert_eq!(clamp_quiet_epochs(0).0, 2);
        assert!(clamp_quiet_epochs(1).1.is_some());
        assert_eq!(clamp_quiet_epochs(2), (2, None));
        assert_eq!(clamp_quiet_epochs(5), (5, None));
        assert_eq!(scanned_epochs(Epoch(8), 2), (Epoch(5), Epoch(8)));
        assert_eq!(scanned_epochs(Epoch(1), 2), (Epoch(0), Epoch(1)));
    }

    #[test]
    fn exit_codes_rank_not_safe_over_unknown_over_safe() {
        let mk = |verdict| ValidatorVerdict {
            validator_index: V,
            verdict,
            last_active_epoch: None,
            last_active_node: None,
            evidence: vec![],
            reason: String::new(),
        };
        use Verdict::*;
        assert_eq!(exit_code(&[mk(Safe), mk(Safe)]), 0);
        assert_eq!(exit_code(&[mk(Safe), mk(Unknown)]), 2);
        assert_eq!(exit_code(&[mk(Unknown), mk(NotSafe), mk(Safe)]), 1);
        assert_eq!(exit_code(&[]), 2);
    }
}
