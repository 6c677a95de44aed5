//! `valwatch failover-check`: is it safe to start the backup validator
//! client, i.e. has the old one stopped signing?
//!
//! Owns: the command's arguments, one check round (ask EVERY configured
//! node, then judge), `--watch`, and the table and JSON output.
//! Must not: decide anything itself (`judge` is the pure core), or speak
//! HTTP except through `beacon` (`observe` holds the per-node requests).
//!
//! # Exit codes
//!
//! - `0`: every validator is `safe`.
//! - `1`: at least one validator is `not_safe`.
//! - `2`: at least one is `unknown` and none is `not_safe`; also when the
//!   check could not run at all (bad configuration, a public key the chain
//!   does not know, no node on the network). Like clap's own usage errors:
//!   anything but 0 means "do not start the backup".
//!
//! With `--watch` the command returns 0 as soon as a round finds every
//! validator safe; on Ctrl-C it returns the code of the last round.
//!
//! # JSON output (`--format json`)
//!
//! One JSON object per round (with `--watch`, one per line, each time the
//! output is printed):
//!
//! ```json
//! {
//!   "clock_slot": 68,             // wall-clock slot when the round started
//!   "current_epoch": 8,
//!   "quiet_epochs": 2,            // after clamping (never below 2)
//!   "checked_epochs": [5, 8],     // epochs read: quiet window, one before it, current
//!   "exit_code": 0,
//!   "warnings": ["…"],            // clamped --quiet-epochs, single node, …
//!   "unresolved": ["0x…"],        // public keys the registry does not know
//!   "nodes": [
//!     {"name": "node-a", "health": "healthy", "head_slot": 67, "problems": []}
//!   ],
//!   "validators": [
//!     {
//!       "validator_index": 40,
//!       "verdict": "safe",        // safe | not_safe | unknown
//!       "last_active_epoch": 5,   // null: no activity in the checked epochs
//!       "last_active_node": "node-a",
//!       "evidence": [             // newest epoch first, every node
//!         {"node": "node-a", "epoch": 5, "kind": "attestation", "slot": 41}
//!       ],
//!       "reason": "no activity in epochs 6..=8 …"
//!     }
//!   ]
//! }
//! ```
//!
//! `reason` says the verdict in words: the activity seen, the node that
//! could not confirm, or why the quiet window is not complete yet ("the
//! chain is younger than the window: …", "validator 12 became active in
//! epoch 3; it needs 2 quiet epochs with duties …", "validator 12 becomes
//! active in epoch 9 (pending) …", "validator 12 exited in epoch 4: … safe
//! only 2 complete epochs after the exit epoch, from epoch 6"). A `safe`
//! reason names the epochs and nodes, and the activation or exit epoch
//! when it bounds the window.
//!
//! `health` is one of `healthy`, `syncing`, `lagging`, `unreachable`,
//! `wrong_network`, `unknown`; `kind` is one of `attestation` (the vote for
//! `epoch` is in the canonical block at `slot`), `proposal` (the canonical
//! block at `slot`), `sync_signature` (the signature for slot `slot − 1`,
//! in the block at `slot`), `liveness` (the node's liveness endpoint
//! said live for `epoch`; no `slot`), `pool_attestation` (the vote for
//! `epoch` is in the node's attestation pool; no `slot`) and `double_sign`
//! (a slashing in a canonical block, at `slot`, or in the node's pool, no
//! `slot`, names the validator; `epoch` is the votes' target or the
//! header's epoch). See `judge` for the exact rule.

pub mod evidence;
pub mod judge;
pub mod observe;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use futures::future::join_all;
use serde::Serialize;

use crate::beacon::client::ValidatorId;
use crate::beacon::{BeaconPool, NodeConfig, StateId};
use crate::chain::{ChainSpec, Slot, ValidatorIndex};
use crate::config::{self, Overrides};

use judge::{ActiveSpan, Context, NodeView, ValidatorVerdict, Verdict};
use observe::NodeCache;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

/// Arguments of `valwatch failover-check`.
#[derive(Debug, Args, Clone)]
pub struct FailoverArgs {
    /// TOML configuration file: its `[[beacon_nodes]]` (and its groups when
    /// --validators is not given).
    #[arg(long, short = 'c', env = "VALWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Beacon node URL (repeatable); replaces `[[beacon_nodes]]`. Every node
    /// is asked; give two or more for a second opinion.
    #[arg(long = "beacon-node", value_name = "URL")]
    pub beacon_nodes: Vec<String>,
    /// Validators to check: indices, ranges a-b, 0x pubkeys.
    #[arg(long, value_name = "LIST")]
    pub validators: Option<String>,
    /// Complete epochs without any activity needed (at least 2).
    #[arg(long, value_name = "N", default_value_t = judge::MIN_QUIET_EPOCHS)]
    pub quiet_epochs: u64,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Check every slot until all validators are safe, printing each epoch
    /// why not.
    #[arg(long)]
    pub watch: bool,
}

/// One node as the report shows it.
#[derive(Clone, Debug, Serialize)]
pub struct NodeSummary {
    pub name: String,
    pub health: String,
    pub head_slot: Option<u64>,
    pub problems: Vec<String>,
}

/// The result of one round. Serialized as documented in the module docs.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub clock_slot: Option<u64>,
    pub current_epoch: Option<u64>,
    pub quiet_epochs: u64,
    pub checked_epochs: Option<(u64, u64)>,
    pub exit_code: u8,
    pub warnings: Vec<String>,
    pub unresolved: Vec<String>,
    pub nodes: Vec<NodeSummary>,
    pub validators: Vec<ValidatorVerdict>,
}

impl Report {
    pub fn verdict_of(&self, v: u64) -> Option<Verdict> {
        self.validators
            .iter()
            .find(|x| x.validator_index.0 == v)
            .map(|x| x.verdict)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("{0}")]
    Beacon(#[from] crate::beacon::BeaconError),
}

/// A failover check over a fixed set of nodes and validators; `check` runs
/// one round. Keeps a block cache per node between rounds (`--watch`).
pub struct FailoverCheck {
    pool: BeaconPool,
    ids: Vec<ValidatorId>,
    quiet_epochs: u64,
    warnings: Vec<String>,
    caches: Vec<NodeCache>,
    /// The network's spec as last identified (paces `--watch`).
    spec: Option<ChainSpec>,
}

impl FailoverCheck {
    /// `quiet_epochs` below the minimum is raised, with a warning in every
    /// report.
    pub fn new(
        nodes: Vec<NodeConfig>,
        ids: Vec<ValidatorId>,
        quiet_epochs: u64,
    ) -> Result<Self, FailoverError> {
        let (quiet_epochs, clamp_warning) = judge::clamp_quiet_epochs(quiet_epochs);
        let mut warnings = Vec::new();
        if let Some(w) = clamp_warning {
            tracing::warn!(error = %w, "quiet epochs raised");
            warnings.push(w);
        }
        if nodes.len() == 1 {
            warnings.push(
                "only one beacon node configured: \"safe\" rests on a single node's view".into(),
            );
        }
        let caches = nodes.iter().map(|_| NodeCache::default()).collect();
        Ok(Self {
            pool: BeaconPool::new(nodes)?,
            ids,
            quiet_epochs,
            warnings,
            caches,
            spec: None,
        })
    }

    /// From the command's arguments: nodes and validators from the flags,
    /// else from the configuration file.
    pub fn from_args(args: &FailoverArgs) -> Result<Self, FailoverError> {
        let over = Overrides {
            beacon_nodes: args.beacon_nodes.clone(),
            validators: args.validators.clone(),
            ..Overrides::default()
        };
        let cfg = config::load(args.config.as_deref(), &over)?;
        let ids = cfg.all_validators().ids().collect();
        Self::new(cfg.beacon_nodes, ids, args.quiet_epochs)
    }

    pub fn quiet_epochs(&self) -> u64 {
        self.quiet_epochs
    }

    /// One round at wall-clock time `now`: identify the nodes, check their
    /// health, ask each one, judge.
    pub async fn check(&mut self, now: SystemTime) -> Report {
        let mut report = Report {
            clock_slot: None,
            current_epoch: None,
            quiet_epochs: self.quiet_epochs,
            checked_epochs: None,
            exit_code: 2,
            warnings: self.warnings.clone(),
            unresolved: Vec::new(),
            nodes: Vec::new(),
            validators: Vec::new(),
        };
        // Only indices can be listed before the registry is read.
        let known: Vec<ValidatorIndex> = self
            .ids
            .iter()
            .filter_map(|id| match id {
                ValidatorId::Index(i) => Some(*i),
                ValidatorId::Pubkey(_) => None,
            })
            .collect();
        let all_unknown = |report: &mut Report, why: String| {
            report.validators = known
                .iter()
                .map(|&v| unknown_verdict(v, why.clone()))
                .collect();
            report.unresolved = self
                .ids
                .iter()
                .filter_map(|id| match id {
                    ValidatorId::Pubkey(p) => Some(p.to_hex()),
                    ValidatorId::Index(_) => None,
                })
                .collect();
        };

        // Every round: a node that was down at the previous one must prove
        // its network before it is believed.
        let spec = match self.pool.identify().await {
            Ok(s) => s,
            Err(e) => {
                report.nodes = summaries(&self.pool, &[]);
                all_unknown(
                    &mut report,
                    format!("no beacon node identified its network: {e}"),
                );
                return report;
            }
        };
        self.spec = Some(spec.clone());
        let health = self.pool.check_health().await;
        let Some(clock_slot) = spec.slot_at(now) else {
            report.nodes = summaries(&self.pool, &[]);
            all_unknown(&mut report, "the chain has not started".into());
            return report;
        };
        let current = spec.epoch_of(clock_slot);
        let (lo, hi) = judge::scanned_epochs(current, self.quiet_epochs);
        report.clock_slot = Some(clock_slot.0);
        report.current_epoch = Some(current.0);
        report.checked_epochs = Some((lo.0, hi.0));

        let Registry {
            indices: validators,
            missing: not_in_registry,
            spans,
            unresolved,
        } = self.registry().await;
        report.unresolved = unresolved;

        let quiet = self.quiet_epochs;
        let spec_ref = &spec;
        let validators_ref = &validators;
        let views: Vec<NodeView> = join_all(
            self.pool
                .nodes
                .iter()
                .zip(health.iter())
                .zip(self.caches.iter_mut())
                .map(|((client, h), cache)| async move {
                    observe::observe(
                        client,
                        h,
                        spec_ref,
                        clock_slot,
                        quiet,
                        validators_ref,
                        cache,
                    )
                    .await
                }),
        )
        .await;
        report.nodes = summaries(&self.pool, &views);

        let ctx = Context {
            spec: &spec,
            clock_slot,
            quiet_epochs: self.quiet_epochs,
            not_in_registry: &not_in_registry,
            spans: &spans,
        };
        report.validators = judge::judge(&ctx, &views, &validators);
        report.exit_code = judge::exit_code(&report.validators);
        if report.exit_code == 0 && !report.unresolved.is_empty() {
            report.exit_code = 2;
        }
        report
    }

    /// The watched validators as the registry at the head shows them.
    async fn registry(&self) -> Registry {
        let ids = &self.ids;
        let answer = self
            .pool
            .call(
                "/eth/v1/beacon/states/{state_id}/validators",
                |c| async move { c.validators(StateId::Head, ids).await },
            )
            .await;
        let mut indices = Vec::new();
        let mut missing = HashMap::new();
        let mut unresolved = Vec::new();
        let mut spans = HashMap::new();
        match answer {
            Ok(Some(found)) => {
                spans = found.iter().map(|v| (v.index, ActiveSpan::of(v))).collect();
                let by_key: HashMap<_, _> = found.iter().map(|v| (v.pubkey, v.index)).collect();
                let by_index: BTreeSet<_> = found.iter().map(|v| v.index).collect();
                for id in ids {
                    match id {
                        ValidatorId::Index(i) => {
                            if !by_index.contains(i) {
                                missing.insert(*i, format!("validator {i} is not in the registry"));
                            }
                            indices.push(*i);
                        }
                        ValidatorId::Pubkey(p) => match by_key.get(p) {
                            Some(i) => indices.push(*i),
                            None => unresolved.push(p.to_hex()),
                        },
                    }
                }
            }
            other => {
                let why = match other {
                    Err(e) => format!("registry not readable: {e}"),
                    _ => "registry not served".to_string(),
                };
                for id in ids {
                    match id {
                        ValidatorId::Index(i) => {
                            missing.insert(*i, why.clone());
                            indices.push(*i);
                        }
                        ValidatorId::Pubkey(p) => unresolved.push(p.to_hex()),
                    }
                }
            }
        }
        let mut seen = BTreeSet::new();
        indices.retain(|v| seen.insert(*v));
        Registry {
            indices,
            missing,
            spans,
            unresolved,
        }
    }

    /// The network's spec as the last round identified it.
    pub fn spec(&self) -> Option<&ChainSpec> {
        self.spec.as_ref()
    }
}

/// What one round read from the registry.
struct Registry {
    /// The watched validators by index, in the order asked, once each.
    indices: Vec<ValidatorIndex>,
    /// Those the registry does not know (or could not be read), with why.
    missing: HashMap<ValidatorIndex, String>,
    /// When each known one has duties: its quiet window depends on it.
    spans: HashMap<ValidatorIndex, ActiveSpan>,
    /// Public keys the registry does not know.
    unresolved: Vec<String>,
}

fn unknown_verdict(v: ValidatorIndex, reason: String) -> ValidatorVerdict {
    ValidatorVerdict {
        validator_index: v,
        verdict: Verdict::Unknown,
        last_active_epoch: None,
        last_active_node: None,
        evidence: Vec::new(),
        reason,
    }
}

/// Node summaries in config order; a node without a view shows the pool's
/// last error.
fn summaries(pool: &BeaconPool, views: &[NodeView]) -> Vec<NodeSummary> {
    pool.reports()
        .into_iter()
        .enumerate()
        .map(|(i, r)| match views.get(i) {
            Some(v) => NodeSummary {
                name: v.name.clone(),
                health: v.health.clone(),
                head_slot: v.head_slot.map(|s| s.0),
                problems: v.problems.clone(),
            },
            None => NodeSummary {
                name: r.name,
                health: observe::health_name(&r.health).to_string(),
                head_slot: r.head_slot,
                problems: r.last_error.into_iter().collect(),
            },
        })
        .collect()
}

/// The report as a table for a terminal.
pub fn render_table(r: &Report) -> String {
    let mut out = String::new();
    match (r.clock_slot, r.current_epoch, r.checked_epochs) {
        (Some(slot), Some(epoch), Some((lo, hi))) => {
            let _ = writeln!(
                out,
                "clock slot {slot}, epoch {epoch}; quiet epochs required: {} (epochs read: {lo}..={hi})",
                r.quiet_epochs
            );
        }
        _ => {
            let _ = writeln!(out, "quiet epochs required: {}", r.quiet_epochs);
        }
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    for p in &r.unresolved {
        let _ = writeln!(out, "warning: public key {p} is not in the registry");
    }
    let _ = writeln!(
        out,
        "\n{:<24} {:<14} {:>10}  PROBLEMS",
        "NODE", "HEALTH", "HEAD"
    );
    for n in &r.nodes {
        let head = n.head_slot.map_or("-".into(), |h| h.to_string());
        let _ = writeln!(
            out,
            "{:<24} {:<14} {:>10}  {}",
            n.name,
            n.health,
            head,
            n.problems.join("; ")
        );
    }
    let _ = writeln!(
        out,
        "\n{:>9}  {:<9} {:>11}  {:<16} {:<15} REASON",
        "VALIDATOR", "VERDICT", "LAST ACTIVE", "SEEN BY", "KIND"
    );
    for v in &r.validators {
        let latest = v.evidence.first();
        let _ = writeln!(
            out,
            "{:>9}  {:<9} {:>11}  {:<16} {:<15} {}",
            v.validator_index,
            v.verdict.as_str(),
            v.last_active_epoch.map_or("-".into(), |e| e.to_string()),
            v.last_active_node.as_deref().unwrap_or("-"),
            latest.map_or("-", |e| e.kind.as_str()),
            v.reason
        );
    }
    let counts = |want: Verdict| r.validators.iter().filter(|v| v.verdict == want).count();
    let _ = writeln!(
        out,
        "\n{} safe, {} not_safe, {} unknown: {}",
        counts(Verdict::Safe),
        counts(Verdict::NotSafe),
        counts(Verdict::Unknown),
        match r.exit_code {
            0 => "safe to start the backup client",
            1 => "DO NOT start the backup client: the old one is still signing",
            _ => "DO NOT start the backup client yet: cannot prove the old one stopped",
        }
    );
    out
}

fn render(r: &Report, format: OutputFormat) -> String {
    match format {
        OutputFormat::Table => render_table(r),
        OutputFormat::Json => {
            // Serializing plain data cannot fail; keep the exit code honest if it did.
            serde_json::to_string(r)
                .unwrap_or_else(|e| format!("{{\"exit_code\":2,\"error\":{:?}}}", e.to_string()))
        }
    }
}

/// `valwatch failover-check`: prints the report and returns the exit code
/// (see the module docs).
pub async fn run(args: FailoverArgs) -> u8 {
    let mut check = match FailoverCheck::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if !args.watch {
        let report = check.check(SystemTime::now()).await;
        println!("{}", render(&report, args.format));
        return report.exit_code;
    }
    watch(&mut check, args.format, |text| println!("{text}")).await
}

/// `--watch`: a round each slot (a third into it, once the slot's block
/// has usually arrived); prints the first round, each new epoch and each
/// change of verdicts; returns 0 when all are safe, or the last round's
/// code on Ctrl-C.
pub async fn watch(
    check: &mut FailoverCheck,
    format: OutputFormat,
    mut print: impl FnMut(String),
) -> u8 {
    let mut last_printed: Option<(Option<u64>, Vec<Verdict>)> = None;
    loop {
        let report = check.check(SystemTime::now()).await;
        let last_code = report.exit_code;
        let key = (
            report.current_epoch,
            report
                .validators
                .iter()
                .map(|v| v.verdict)
                .collect::<Vec<_>>(),
        );
        if report.exit_code == 0 || last_printed.as_ref() != Some(&key) {
            print(render(&report, format));
            last_printed = Some(key);
        }
        if report.exit_code == 0 {
            return 0;
        }
        let wait = match check.spec() {
            Some(spec) => until_next_round(spec, SystemTime::now()),
            None => Duration::from_secs(12),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => return last_code,
        }
    }
}

/// Time from `now` to a third into the next slot.
fn until_next_round(spec: &ChainSpec, now: SystemTime) -> Duration {
    let slot_ms = spec.slot_duration_ms.max(1) as u128;
    let Some(slot) = spec.slot_at(now) else {
        return Duration::from_millis(slot_ms as u64);
    };
    let target = spec.slot_start_ms(Slot(slot.0 + 1)) + slot_ms / 3;
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(target);
    Duration::from_millis(target.saturating_sub(now_ms).min(slot_ms * 2) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_rounds_start_a_third_into_the_next_slot() {
        let spec = ChainSpec::test_spec(8, 12_000, 1_000);
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(1_000_000 + ms);
        // 1 s into slot 0: the next round is at 12 s + 4 s.
        assert_eq!(
            until_next_round(&spec, at(1_000)),
            Duration::from_millis(15_000)
        );
        // Just before slot 1 ends.
        assert_eq!(
            until_next_round(&spec, at(23_999)),
            Duration::from_millis(4_001)
        );
        // Before genesis: one slot.
        let before = UNIX_EPOCH + Duration::from_secs(10);
        assert_eq!(
            until_next_round(&spec, before),
            Duration::from_millis(12_000)
        );
    }

    #[test]
    fn the_table_names_each_verdict_and_the_advice() {
        let r = Report {
            clock_slot: Some(68),
            current_epoch: Some(8),
            quiet_epochs: 2,
            checked_epochs: Some((5, 8)),
            exit_code: 1,
            warnings: vec!["only one beacon node configured".into()],
            unresolved: vec![],
            nodes: vec![NodeSummary {
                name: "a".into(),
                health: "healthy".into(),
                head_slot: Some(67),
                problems: vec![],
            }],
            validators: vec![ValidatorVerdict {
                validator_index: ValidatorIndex(7),
                verdict: Verdict::NotSafe,
                last_active_epoch: Some(crate::chain::Epoch(8)),
                last_active_node: Some("a".into()),
                evidence: vec![],
                reason: "active in epoch 8".into(),
            }],
        };
        let t = render_table(&r);
        assert!(t.contains("clock slot 68, epoch 8"), "{t}");
        assert!(t.contains("warning: only one beacon node"), "{t}");
        assert!(t.contains("not_safe"), "{t}");
        assert!(
            t.contains("DO NOT start the backup client: the old one is still signing"),
            "{t}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&r, OutputFormat::Json)).unwrap();
        assert_eq!(json["validators"][0]["verdict"], "not_safe");
        assert_eq!(json["checked_epochs"], serde_json::json!([5, 8]));
    }
}
