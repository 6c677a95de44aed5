//! The pool of beacon nodes: health, ranking, failover, cross-checks.
//!
//! Owns: what valwatch knows of each node (health, head, last error), the
//! order nodes are asked in, and the network-identity check. Must not: parse
//! JSON or build URLs (that is `client`), or judge the chain data it relays.
//!
//! The ranking and the health rules are pure functions (`rank`,
//! `judge_health`) so they are tested without a network.

use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::future::join_all;

use crate::chain::{ChainSpec, Root, Slot};

use super::client::{Genesis, SyncStatus};
use super::{redact_url, BeaconClient, BeaconError, BlockId, NodeConfig, NodeRole};

/// A node whose head is more than this many slots behind the best node's is
/// `Lagging`: one or two slots is normal propagation delay between nodes
/// (a block arrives up to a few seconds into its slot), more is a node that
/// does not keep up and would answer about an older chain.
pub const LAG_SLOTS: u64 = 2;

/// A node whose head is more than this many slots behind the wall clock is
/// `Lagging`, whatever its `/node/syncing` says: a node stuck on an old head
/// (its execution client hung, its peers gone) often still reports
/// `is_syncing: false` with a small `sync_distance`, and its empty slots
/// would otherwise be judged as missed duties. Eight slots: a run of empty
/// slots that long is rare on a healthy chain (with 25 % of the validators
/// offline, as on the lodestar-devnet recording, 0.25^8 ≈ 1.5e-5 per slot),
/// while a stuck node is noticed within 96 s on mainnet.
pub const STALE_HEAD_SLOTS: u64 = 8;

/// PURE: whether a head at `head` is stale at the wall-clock slot `wall`.
pub fn head_is_stale(head: Slot, wall: Slot) -> bool {
    wall.0.saturating_sub(head.0) > STALE_HEAD_SLOTS
}

/// A node reporting a larger `sync_distance` is syncing, whatever its
/// `is_syncing` says: the Beacon API guide gates "usable" on distance ≤ 1.
pub const MAX_SYNC_DISTANCE: u64 = 1;

/// PURE: whether a node's `/node/syncing` must be asked at the wall slot
/// `wall`, or its last answer still stands.
///
/// A synced answer stands for up to one epoch (`slots_per_epoch` wall
/// slots) while the node proves itself between checks: it answered a data
/// request since (so it is reachable), none of its requests failed since,
/// and the head it served (`head`, from `headers/head`) is at most
/// `LAG_SLOTS` behind the wall clock (so it follows the chain). Anything
/// off — a node not `Healthy`, never checked, a failed request, no answer
/// since the check, a head falling behind the clock (a stuck node, or just
/// a run of empty slots) — and it is asked every slot as before, so a
/// stuck node is still `Lagging` as soon as its head is `STALE_HEAD_SLOTS`
/// old. Sync state can still turn (`is_optimistic`, `el_offline`) without
/// any of these signs: that is seen within an epoch instead of a slot, for
/// one request per node and epoch instead of one per slot (issue 12).
pub fn syncing_due(
    health: &NodeHealth,
    checked: Option<Slot>,
    answered_since: bool,
    failed_since: bool,
    head: Option<Slot>,
    wall: Slot,
    slots_per_epoch: u64,
) -> bool {
    match health {
        NodeHealth::WrongNetwork => return false,
        NodeHealth::Healthy => {}
        _ => return true,
    }
    let Some(checked) = checked else { return true };
    failed_since
        || !answered_since
        || wall.0 >= checked.0 + slots_per_epoch.max(1)
        || head.is_none_or(|h| wall.0.saturating_sub(h.0) > LAG_SLOTS)
}

/// What valwatch last knew of one node.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeHealth {
    Unknown,
    Healthy,
    Syncing,
    Lagging,
    Unreachable,
    /// On another network than the reference node: never used again.
    WrongNetwork,
}

/// One node as the status page and metrics show it (no credentials).
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeReport {
    pub name: String,
    pub url: String,
    pub health: NodeHealth,
    pub head_slot: Option<u64>,
    pub last_error: Option<String>,
}

/// The pool's view of one node.
#[derive(Clone, Debug)]
struct NodeState {
    health: NodeHealth,
    head_slot: Option<Slot>,
    last_error: Option<BeaconError>,
    /// The wall slot of the last `/node/syncing` asked (see `syncing_due`).
    checked: Option<Slot>,
    /// A request through `call`/`call_at_slot` succeeded since that check.
    answered_since: bool,
    /// A request failed since that check.
    failed_since: bool,
}

pub struct BeaconPool {
    pub nodes: Vec<Arc<BeaconClient>>,
    /// Parallel to `nodes`. A plain mutex: it is never held across an await.
    state: Mutex<Vec<NodeState>>,
}

/// Health from one `syncing` answer, before comparing heads across nodes.
pub fn judge_health(status: &SyncStatus) -> NodeHealth {
    if status.is_syncing
        || status.is_optimistic
        || status.el_offline
        || status.sync_distance > MAX_SYNC_DISTANCE
    {
        NodeHealth::Syncing
    } else {
        NodeHealth::Healthy
    }
}

/// The order to ask nodes in: healthy, then unknown, then syncing or
/// lagging, then unreachable (a last resort: the last health check may be
/// stale); within a class private before public, then config order. Nodes
/// on the wrong network are left out.
pub fn rank(nodes: &[(NodeHealth, NodeRole)]) -> Vec<usize> {
    let class = |h: &NodeHealth| match h {
        NodeHealth::Healthy => Some(0),
        NodeHealth::Unknown => Some(1),
        NodeHealth::Syncing | NodeHealth::Lagging => Some(2),
        NodeHealth::Unreachable => Some(3),
        NodeHealth::WrongNetwork => None,
    };
    let role = |r: &NodeRole| match r {
        NodeRole::Private => 0,
        NodeRole::Public => 1,
    };
    let mut order: Vec<(u8, u8, usize)> = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, (h, r))| class(h).map(|c| (c, role(r), i)))
        .collect();
    order.sort();
    order.into_iter().map(|(_, _, i)| i).collect()
}

fn is_usable(h: &NodeHealth) -> bool {
    !matches!(h, NodeHealth::Unreachable | NodeHealth::WrongNetwork)
}

impl BeaconPool {
    /// One client per configured node, all of unknown health.
    pub fn new(configs: Vec<NodeConfig>) -> Result<Self, BeaconError> {
        let nodes = configs
            .into_iter()
            .map(|c| BeaconClient::new(c).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let state = nodes
            .iter()
            .map(|_| NodeState {
                health: NodeHealth::Unknown,
                head_slot: None,
                last_error: None,
                checked: None,
                answered_since: false,
                failed_since: false,
            })
            .collect();
        Ok(Self {
            nodes,
            state: Mutex::new(state),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Vec<NodeState>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn health(&self, node: usize) -> Option<NodeHealth> {
        self.state().get(node).map(|s| s.health.clone())
    }

    pub fn reports(&self) -> Vec<NodeReport> {
        let state = self.state();
        self.nodes
            .iter()
            .zip(state.iter())
            .map(|(c, s)| NodeReport {
                name: c.name().to_string(),
                url: redact_url(&c.config.url),
                health: s.health.clone(),
                head_slot: s.head_slot.map(|h| h.0),
                last_error: s.last_error.as_ref().map(|e| e.to_string()),
            })
            .collect()
    }

    /// The latest error of the first node (in config order) that has one.
    pub fn first_error(&self) -> Option<BeaconError> {
        self.state().iter().find_map(|s| s.last_error.clone())
    }

    /// Nodes that may be asked: neither unreachable at the last check nor
    /// on the wrong network.
    pub fn usable_count(&self) -> usize {
        self.state().iter().filter(|s| is_usable(&s.health)).count()
    }

    /// Tells `observer` of every request any node makes.
    pub fn set_request_observer(&self, observer: super::client::RequestObserver) {
        for n in &self.nodes {
            n.set_observer(observer.clone());
        }
    }

    /// Nodes that said at the last check that they are synced and at the
    /// head: only their view may close an epoch for good (a syncing node's
    /// missing blocks are not missed duties).
    pub fn synced_count(&self) -> usize {
        self.state()
            .iter()
            .filter(|s| s.health == NodeHealth::Healthy)
            .count()
    }

    /// Node indices in the order they are asked (see `rank`).
    pub fn ranked(&self) -> Vec<usize> {
        let state = self.state();
        let view: Vec<_> = self
            .nodes
            .iter()
            .zip(state.iter())
            .map(|(c, s)| (s.health.clone(), c.config.role))
            .collect();
        rank(&view)
    }

    fn note_error(&self, node: usize, error: &BeaconError) {
        if let Some(s) = self.state().get_mut(node) {
            s.last_error = Some(error.clone());
            s.failed_since = true;
        }
    }

    fn note_answer(&self, node: usize) {
        if let Some(s) = self.state().get_mut(node) {
            s.answered_since = true;
        }
    }

    /// Asks every node on the right network for `syncing` at once and
    /// updates its health: `Unreachable` on error, `Syncing` by its own
    /// answer, `Lagging` if its head is more than `LAG_SLOTS` behind the
    /// best head seen, else `Healthy`.
    pub async fn check_health(&self) -> Vec<NodeReport> {
        self.check_health_at(None).await
    }

    /// `check_health`, and with the wall-clock slot `wall` a node whose head
    /// is stale (see `STALE_HEAD_SLOTS`) is `Lagging` too.
    pub async fn check_health_at(&self, wall: Option<Slot>) -> Vec<NodeReport> {
        let skip: Vec<bool> = self
            .state()
            .iter()
            .map(|s| s.health == NodeHealth::WrongNetwork)
            .collect();
        self.check_nodes(wall, skip).await
    }

    /// `check_health_at(Some(wall))` for the nodes `syncing_due` names; the
    /// others keep their health and take the head they last served as
    /// their head. What the monitor runs every slot.
    pub async fn check_health_spaced(&self, wall: Slot, slots_per_epoch: u64) -> Vec<NodeReport> {
        let skip: Vec<bool> = {
            let mut state = self.state();
            state
                .iter_mut()
                .zip(&self.nodes)
                .map(|(s, c)| {
                    let served = c.stats().head_slot;
                    let due = syncing_due(
                        &s.health,
                        s.checked,
                        s.answered_since,
                        s.failed_since,
                        served,
                        wall,
                        slots_per_epoch,
                    );
                    if !due && served > s.head_slot {
                        s.head_slot = served;
                    }
                    !due
                })
                .collect()
        };
        self.check_nodes(Some(wall), skip).await
    }

    /// Asks `syncing` of every node not in `skip` and judges their health.
    /// The best head is the best answered, or held by a skipped node that
    /// is still usable.
    async fn check_nodes(&self, wall: Option<Slot>, skip: Vec<bool>) -> Vec<NodeReport> {
        let skipped_best = {
            let state = self.state();
            state
                .iter()
                .zip(&skip)
                .filter(|(s, &skip)| skip && s.health == NodeHealth::Healthy)
                .filter_map(|(s, _)| s.head_slot)
                .max()
        };
        let answers = join_all(self.nodes.iter().zip(skip).map(|(c, skip)| async move {
            if skip {
                None
            } else {
                Some(c.syncing().await)
            }
        }))
        .await;
        let best = answers
            .iter()
            .filter_map(|a| match a {
                Some(Ok(s)) => Some(s.head_slot),
                _ => None,
            })
            .max()
            .max(skipped_best);
        {
            let mut state = self.state();
            for (i, answer) in answers.into_iter().enumerate() {
                let Some(answer) = answer else { continue };
                let s = &mut state[i];
                s.checked = wall;
                s.answered_since = false;
                s.failed_since = false;
                match answer {
                    Ok(status) => {
                        let mut health = judge_health(&status);
                        if health == NodeHealth::Healthy
                            && best
                                .is_some_and(|b| b.0.saturating_sub(status.head_slot.0) > LAG_SLOTS)
                        {
                            health = NodeHealth::Lagging;
                        }
                        if health == NodeHealth::Healthy
                            && wall.is_some_and(|w| head_is_stale(status.head_slot, w))
                        {
                            health = NodeHealth::Lagging;
                        }
                        if health != s.health {
                            tracing::info!(
                                node = %self.nodes[i].name(),
                                slot = status.head_slot.0,
                                health = ?health,
                                "beacon node health changed"
                            );
                        }
                        s.health = health;
                        s.head_slot = Some(status.head_slot);
                    }
                    Err(e) => {
                        if s.health != NodeHealth::Unreachable {
                            tracing::warn!(node = %self.nodes[i].name(), error = %e, "beacon node unreachable");
                        }
                        s.health = NodeHealth::Unreachable;
                        s.last_error = Some(e);
                    }
                }
            }
        }
        self.reports()
    }

    /// Checks that every node is on one network and returns its spec.
    ///
    /// The reference is the first private node that answers `genesis`, else
    /// the first node that answers. A node whose genesis time or genesis
    /// validators root differs is marked `WrongNetwork` and never asked
    /// again. The spec comes from the reference node (from the next node on
    /// the same network if the reference cannot give it).
    pub async fn identify(&self) -> Result<ChainSpec, BeaconError> {
        const GENESIS: &str = "/eth/v1/beacon/genesis";
        let answers: Vec<Result<Genesis, BeaconError>> =
            join_all(self.nodes.iter().map(|c| async move { c.genesis().await })).await;

        let first_answering = |role: Option<NodeRole>| {
            answers.iter().enumerate().find_map(|(i, a)| {
                let role_ok = role.is_none_or(|r| self.nodes[i].config.role == r);
                match a {
                    Ok(g) if role_ok => Some((i, *g)),
                    _ => None,
                }
            })
        };
        let reference = first_answering(Some(NodeRole::Private)).or_else(|| first_answering(None));

        let Some((ref_index, ref_genesis)) = reference else {
            let errors: Vec<BeaconError> = answers.into_iter().filter_map(Result::err).collect();
            {
                let mut state = self.state();
                for (s, e) in state.iter_mut().zip(errors.iter()) {
                    s.health = NodeHealth::Unreachable;
                    s.last_error = Some(e.clone());
                }
            }
            return Err(BeaconError::AllFailed {
                endpoint: GENESIS.into(),
                errors,
            });
        };
        let ref_name = self.nodes[ref_index].name().to_string();

        let mut same_network = Vec::new();
        {
            let mut state = self.state();
            for (i, answer) in answers.into_iter().enumerate() {
                let s = &mut state[i];
                match answer {
                    Ok(g) if g == ref_genesis => {
                        if s.health == NodeHealth::WrongNetwork {
                            s.health = NodeHealth::Unknown;
                        }
                        same_network.push(i);
                    }
                    Ok(g) => {
                        let message = network_mismatch(&g, &ref_genesis, &ref_name);
                        tracing::error!(node = %self.nodes[i].name(), error = %message, "beacon node on another network, not used");
                        s.health = NodeHealth::WrongNetwork;
                        s.last_error = Some(BeaconError::Transport {
                            node: self.nodes[i].name().to_string(),
                            endpoint: GENESIS.into(),
                            message,
                        });
                    }
                    Err(e) => {
                        s.health = NodeHealth::Unreachable;
                        s.last_error = Some(e);
                    }
                }
            }
        }

        // The reference first, then the other nodes of its network.
        same_network.sort_by_key(|&i| (i != ref_index, i));
        let mut errors = Vec::new();
        for i in same_network {
            match self.nodes[i].chain_spec(&ref_genesis).await {
                Ok(spec) => return Ok(spec),
                Err(e) => {
                    self.note_error(i, &e);
                    errors.push(e);
                }
            }
        }
        Err(BeaconError::AllFailed {
            endpoint: "/eth/v1/config/spec".into(),
            errors,
        })
    }

    /// Nodes to ask, in order: the usable ones by rank; if none is usable,
    /// every node not on the wrong network (the last check may be stale).
    fn candidates(&self) -> Vec<usize> {
        let ranked = self.ranked();
        let state = self.state();
        let usable: Vec<usize> = ranked
            .iter()
            .copied()
            .filter(|&i| is_usable(&state[i].health))
            .collect();
        if usable.is_empty() {
            ranked
        } else {
            usable
        }
    }

    /// Runs `f` against the nodes in rank order until one succeeds; every
    /// error (HTTP, timeout, unreadable answer) moves on to the next node.
    /// `AllFailed` lists each node's error.
    ///
    /// ```ignore
    /// let duties = pool.call("proposer_duties", |c| async move { c.proposer_duties(epoch).await }).await?;
    /// ```
    pub async fn call<T, F, Fut>(&self, endpoint: &str, f: F) -> Result<T, BeaconError>
    where
        F: Fn(Arc<BeaconClient>) -> Fut,
        Fut: Future<Output = Result<T, BeaconError>>,
    {
        let order = self.candidates();
        if order.is_empty() {
            return Err(BeaconError::NoUsableNode);
        }
        let mut errors = Vec::new();
        for i in order {
            match f(self.nodes[i].clone()).await {
                Ok(v) => {
                    self.note_answer(i);
                    return Ok(v);
                }
                Err(e) => {
                    if e.is_range_limit() {
                        // "Not for this epoch": a node's normal answer for
                        // data it pruned or does not serve; another node
                        // (an archive) may still have it, so ask on.
                        tracing::debug!(node = %self.nodes[i].name(), endpoint, error = %e, "beacon node declined, trying next node");
                    } else {
                        tracing::warn!(node = %self.nodes[i].name(), endpoint, error = %e, "beacon request failed, trying next node");
                    }
                    self.note_error(i, &e);
                    errors.push(e);
                }
            }
        }
        Err(BeaconError::AllFailed {
            endpoint: endpoint.to_string(),
            errors,
        })
    }

    /// Like `call`, for data about `slot`. "Not found" is a normal answer,
    /// but from a node whose known head is below `slot` it only means the
    /// node is behind: then the next node is asked, and `None` is returned
    /// only when no node further ahead has the data.
    pub async fn call_at_slot<T, F, Fut>(
        &self,
        slot: Slot,
        endpoint: &str,
        f: F,
    ) -> Result<Option<T>, BeaconError>
    where
        F: Fn(Arc<BeaconClient>) -> Fut,
        Fut: Future<Output = Result<Option<T>, BeaconError>>,
    {
        let order = self.candidates();
        if order.is_empty() {
            return Err(BeaconError::NoUsableNode);
        }
        let mut errors = Vec::new();
        let mut answered_none = false;
        for i in order {
            match f(self.nodes[i].clone()).await {
                Ok(Some(v)) => {
                    self.note_answer(i);
                    return Ok(Some(v));
                }
                Ok(None) => {
                    self.note_answer(i);
                    let head = self.state()[i].head_slot;
                    // An unknown head cannot be "behind": take its answer.
                    if head.is_none_or(|h| h >= slot) {
                        return Ok(None);
                    }
                    tracing::debug!(node = %self.nodes[i].name(), endpoint, slot = slot.0, "node behind the slot asked, trying next node");
                    answered_none = true;
                }
                Err(e) => {
                    if e.is_range_limit() {
                        // "Not for this epoch": a node's normal answer for
                        // data it pruned or does not serve; another node
                        // (an archive) may still have it, so ask on.
                        tracing::debug!(node = %self.nodes[i].name(), endpoint, error = %e, "beacon node declined, trying next node");
                    } else {
                        tracing::warn!(node = %self.nodes[i].name(), endpoint, error = %e, "beacon request failed, trying next node");
                    }
                    self.note_error(i, &e);
                    errors.push(e);
                }
            }
        }
        if answered_none {
            Ok(None)
        } else {
            Err(BeaconError::AllFailed {
                endpoint: endpoint.to_string(),
                errors,
            })
        }
    }

    /// Every usable node's canonical block root at `slot`, asked at once:
    /// `Ok(None)` for a node that has no block there. Used to cross-check
    /// nodes against each other.
    pub async fn roots_at(&self, slot: Slot) -> Vec<(String, Result<Option<Root>, BeaconError>)> {
        let usable: Vec<usize> = {
            let state = self.state();
            (0..self.nodes.len())
                .filter(|&i| is_usable(&state[i].health))
                .collect()
        };
        join_all(usable.into_iter().map(|i| async move {
            let c = &self.nodes[i];
            let r = c
                .header(BlockId::Slot(slot))
                .await
                .map(|h| h.map(|h| h.root));
            if let Err(e) = &r {
                self.note_error(i, e);
            }
            (c.name().to_string(), r)
        }))
        .await
    }
}

fn network_mismatch(got: &Genesis, reference: &Genesis, ref_name: &str) -> String {
    let mut diffs = Vec::new();
    if got.genesis_validators_root != reference.genesis_validators_root {
        diffs.push(format!(
            "genesis_validators_root {} (reference {ref_name}: {})",
            got.genesis_validators_root, reference.genesis_validators_root
        ));
    }
    if got.genesis_time != reference.genesis_time {
        diffs.push(format!(
            "genesis_time {} (reference {ref_name}: {})",
            got.genesis_time, reference.genesis_time
        ));
    }
    format!("on another network: {}", diffs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(
        head: u64,
        distance: u64,
        syncing: bool,
        optimistic: bool,
        el_offline: bool,
    ) -> SyncStatus {
        SyncStatus {
            head_slot: Slot(head),
            sync_distance: distance,
            is_syncing: syncing,
            is_optimistic: optimistic,
            el_offline,
        }
    }

    #[test]
    fn health_follows_the_syncing_answer() {
        let cases = [
            (status(10, 0, false, false, false), NodeHealth::Healthy),
            (status(10, 1, false, false, false), NodeHealth::Healthy),
            (status(10, 2, false, false, false), NodeHealth::Syncing),
            (status(10, 0, true, false, false), NodeHealth::Syncing),
            (status(10, 0, false, true, false), NodeHealth::Syncing),
            (status(10, 0, false, false, true), NodeHealth::Syncing),
        ];
        for (s, want) in cases {
            assert_eq!(judge_health(&s), want, "{s:?}");
        }
    }

    #[test]
    fn a_synced_answer_stands_for_an_epoch_while_the_node_proves_itself() {
        use NodeHealth::*;
        let w = Slot(100);
        // (health, checked, answered, failed, served head, due)
        let cases = [
            (Healthy, Some(99), true, false, Some(100), false),
            (Healthy, Some(93), true, false, Some(99), false),
            (Healthy, Some(92), true, false, Some(100), true), // an epoch old
            (Healthy, None, true, false, Some(100), true),
            (Healthy, Some(99), false, false, Some(100), true), // no answer since
            (Healthy, Some(99), true, true, Some(100), true),   // a request failed
            (Healthy, Some(99), true, false, Some(97), true),   // head behind the clock
            (Healthy, Some(99), true, false, Some(98), false),
            (Healthy, Some(99), true, false, None, true),
            (Syncing, Some(99), true, false, Some(100), true),
            (Lagging, Some(99), true, false, Some(100), true),
            (Unreachable, Some(99), true, false, Some(100), true),
            (Unknown, Some(99), true, false, Some(100), true),
            (WrongNetwork, None, false, true, None, false),
        ];
        for (h, checked, answered, failed, head, want) in cases {
            assert_eq!(
                syncing_due(
                    &h,
                    checked.map(Slot),
                    answered,
                    failed,
                    head.map(Slot),
                    w,
                    8
                ),
                want,
                "{h:?} {checked:?} {answered} {failed} {head:?}"
            );
        }
    }

    #[test]
    fn ranking_puts_health_before_role_before_config_order() {
        use NodeHealth::*;
        use NodeRole::*;
        let nodes = [
            (Lagging, Private),      // 0
            (Healthy, Public),       // 1
            (Unknown, Private),      // 2
            (Healthy, Private),      // 3
            (WrongNetwork, Private), // 4
            (Unreachable, Private),  // 5
            (Syncing, Public),       // 6
            (Healthy, Private),      // 7
        ];
        assert_eq!(rank(&nodes), vec![3, 7, 1, 2, 0, 6, 5]);
    }
}
