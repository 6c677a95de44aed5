//! `valwatch demo`: valwatch at work in one command, on a fresh machine with
//! no database server and no network. A simulated chain (scenarios/demo.toml,
//! embedded) is served by two loopback beacon nodes, one of which fails now
//! and then; the ordinary `app::run_with` watches them into the embedded
//! SQLite store with the HTTP status page on; one line per judged epoch is
//! printed from what the store holds.
//!
//! Owns: the demo plan, the simulated nodes' lifetime and the demo's output.
//! Must not: judge or store anything itself — the point is to show the real
//! path, so verdicts come from the monitor and are read back from the store.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::analysis::{AttestationStatus, ProposalStatus, SlashingRecord};
use crate::chain::Epoch;
use crate::config::{Config, Overrides, RawConfig, RawGroup, RawNode};
use crate::sim::{Fault, NodeOptions, Scenario, Sim, SimNode};
use crate::store::{Report, ReportQuery, Store};

/// The demo network, in the binary so that `valwatch demo` needs no file.
pub const DEMO_PLAN: &str = include_str!("../scenarios/demo.toml");

/// Default slot length: 1 s makes an 8-slot epoch last 8 s, so a 6-epoch
/// demo (final verdicts need the next epoch too) takes about a minute.
pub const DEFAULT_SLOT_MS: u64 = 1000;

/// Shortest slot accepted: below this the monitor's quarter-slot poll (at
/// least 250 ms) cannot keep up with the head and the demo shows only lag.
pub const MIN_SLOT_MS: u64 = 100;

/// Epochs the live nodes generate when the demo runs until Ctrl-C: 10 000
/// epochs of 8 one-second slots is 22 hours, more than any demo, and the
/// chain of 64 validators costs a few hundred bytes per epoch.
const UNBOUNDED_EPOCHS: u64 = 10_000;

/// Epochs the nodes generate beyond `--epochs`: the last epoch is judged
/// once the next one ended, plus slack for a slow machine.
const EXTRA_EPOCHS: u64 = 3;

/// The demo network: the chain, the groups watched and the nodes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoPlan {
    pub scenario: Scenario,
    pub groups: Vec<DemoGroup>,
    pub nodes: Vec<DemoNode>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoGroup {
    pub name: String,
    pub validators: String,
    /// What the group does, for the opening lines.
    pub about: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoNode {
    pub name: String,
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// The fault windows repeat with this period (slots); none: once.
    #[serde(default)]
    pub repeat_every_slots: Option<u64>,
}

impl DemoPlan {
    /// The embedded plan.
    pub fn embedded() -> anyhow::Result<DemoPlan> {
        let plan: DemoPlan =
            toml::from_str(DEMO_PLAN).context("scenarios/demo.toml does not parse")?;
        plan.scenario
            .check()
            .context("scenarios/demo.toml is not a valid scenario")?;
        Ok(plan)
    }
}

/// The fault windows of `node` over the first `slots` slots, repeated.
pub fn expand_faults(node: &DemoNode, slots: u64) -> Vec<Fault> {
    let Some(period) = node.repeat_every_slots.filter(|p| *p > 0) else {
        return node.faults.clone();
    };
    let mut out = Vec::new();
    let mut shift = 0;
    while shift < slots {
        for f in &node.faults {
            let mut f = f.clone();
            f.from_slot = f.from_slot.map(|s| s + shift);
            f.until_slot = f.until_slot.map(|s| s + shift);
            out.push(f);
        }
        shift += period;
    }
    out
}

/// What the demo is asked to do.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Stop after this many epochs (0..N-1) are judged for good.
    pub epochs: Option<u64>,
    /// The HTTP server. `None`: off. Port 0: any free port.
    pub listen: Option<SocketAddr>,
    /// Where the SQLite file goes; `None`: a fresh directory under the
    /// system's temporary directory, kept for `valwatch report`.
    pub data_dir: Option<PathBuf>,
    pub slot_ms: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            epochs: None,
            listen: crate::config::DEFAULT_LISTEN.parse().ok(),
            data_dir: None,
            slot_ms: DEFAULT_SLOT_MS,
        }
    }
}

/// A started demo: the nodes serve, the monitor is not running yet.
pub struct Demo {
    plan: DemoPlan,
    opts: DemoOptions,
    chain: Arc<RwLock<Sim>>,
    nodes: Vec<(String, SimNode)>,
    data_dir: PathBuf,
    listen: Option<SocketAddr>,
}

impl Demo {
    /// Generates the chain from a genesis one second from now and starts
    /// the two nodes on loopback.
    pub async fn start(opts: DemoOptions) -> anyhow::Result<Demo> {
        Self::start_with(DemoPlan::embedded()?, opts).await
    }

    pub async fn start_with(plan: DemoPlan, opts: DemoOptions) -> anyhow::Result<Demo> {
        if opts.slot_ms < MIN_SLOT_MS {
            bail!(
                "--slot-ms {} is too short: at least {MIN_SLOT_MS}",
                opts.slot_ms
            );
        }
        if opts.epochs == Some(0) {
            bail!("--epochs must be at least 1");
        }
        let data_dir = match &opts.data_dir {
            Some(d) => d.clone(),
            None => fresh_temp_dir()?,
        };
        let db_file = data_dir.join("valwatch.sqlite");
        if db_file.exists() {
            // Every demo is a new network (its genesis is "now"): a database
            // of an earlier demo belongs to another one and would be refused.
            bail!(
                "{} already holds a valwatch database (of an earlier demo?): \
                 choose another --data-dir or remove it",
                db_file.display()
            );
        }
        let listen = match opts.listen {
            Some(a) => Some(resolve_listen(a)?),
            None => None,
        };

        let mut scenario = plan.scenario.clone();
        scenario.slot_duration_ms = opts.slot_ms;
        // Genesis on the next whole second: the demo starts with slot 0.
        scenario.genesis_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() + 1)
            .context("the system clock is before 1970")?;
        let max_epochs = opts.epochs.map_or(UNBOUNDED_EPOCHS, |n| n + EXTRA_EPOCHS);
        let slots = max_epochs * scenario.slots_per_epoch;
        let chain = Arc::new(RwLock::new(Sim::new(scenario)?));
        let mut nodes = Vec::new();
        for n in &plan.nodes {
            let node = SimNode::with_chain(
                chain.clone(),
                NodeOptions {
                    mode: crate::sim::Mode::Live { max_epochs },
                    faults: expand_faults(n, slots),
                    ..NodeOptions::default()
                },
            )
            .await
            .with_context(|| format!("cannot start the simulated node {}", n.name))?;
            nodes.push((n.name.clone(), node));
        }
        Ok(Demo {
            plan,
            opts,
            chain,
            nodes,
            data_dir,
            listen,
        })
    }

    /// The simulated chain (its ground truth).
    pub fn chain(&self) -> Arc<RwLock<Sim>> {
        self.chain.clone()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn database_url(&self) -> String {
        format!(
            "sqlite://{}",
            self.data_dir.join("valwatch.sqlite").display()
        )
    }

    pub fn listen(&self) -> Option<SocketAddr> {
        self.listen
    }

    /// (name, base URL) of each simulated node.
    pub fn nodes(&self) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .map(|(n, node)| (n.clone(), node.base_url()))
            .collect()
    }

    /// The configuration `valwatch run` would read for this demo.
    pub fn config(&self) -> anyhow::Result<Config> {
        let raw = RawConfig {
            beacon_nodes: self
                .nodes
                .iter()
                .map(|(name, node)| RawNode {
                    name: Some(name.clone()),
                    url: Some(node.base_url()),
                    ..RawNode::default()
                })
                .collect(),
            groups: self
                .plan
                .groups
                .iter()
                .map(|g| RawGroup {
                    name: Some(g.name.clone()),
                    validators: Some(g.validators.clone()),
                    validators_file: None,
                })
                .collect(),
            // Alert notifications go to standard output, beside the epoch
            // lines: the offline group opening and resolving, the slashing.
            alerts: crate::config::alerts::RawAlerts {
                log: vec![crate::config::alerts::RawLog::default()],
                ..Default::default()
            },
            ..RawConfig::default()
        };
        let over = Overrides {
            database_url: Some(self.database_url()),
            listen: Some(
                self.listen
                    .map_or_else(|| "off".to_string(), |a| a.to_string()),
            ),
            from_epoch: Some(0),
            data_dir: Some(self.data_dir.display().to_string()),
            ..Overrides::default()
        };
        Ok(crate::config::validate(raw, &over, &self.data_dir)?)
    }

    /// Runs the monitor until `--epochs` epochs are final or `cancel`;
    /// prints the opening, one line per final epoch and the closing to
    /// `out`. Returns the number of epochs judged for good.
    pub async fn run(
        &self,
        cancel: CancellationToken,
        out: &mut (dyn Write + Send),
    ) -> anyhow::Result<u64> {
        let config = self.config()?;
        let url = self.database_url();
        // Migrated here so that the printer can read while the monitor writes
        // (WAL); the monitor's own migration is then a no-op.
        let store = crate::app::open_store(&url).await?;
        self.print_opening(out)?;
        let until = self.opts.epochs.map(|n| Epoch(n - 1));
        let mut monitor = tokio::spawn(crate::app::run_with(config, until, cancel.clone()));
        let every = Duration::from_millis((self.opts.slot_ms / 2).max(50));
        let spe = self.plan.scenario.slots_per_epoch;
        let mut next = 0u64;
        let result = loop {
            tokio::select! {
                r = &mut monitor => break r,
                _ = tokio::time::sleep(every) => {}
            }
            next = print_new_epochs(&store, spe, next, out).await?;
        };
        next = print_new_epochs(&store, spe, next, out).await?;
        store.close().await;
        for (_, node) in &self.nodes {
            node.set_faults(Vec::new());
        }
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.context("the monitor stopped")),
            Err(e) => bail!("the monitor task failed: {e}"),
        }
        self.print_closing(next, out)?;
        Ok(next)
    }

    fn print_opening(&self, out: &mut (dyn Write + Send)) -> std::io::Result<()> {
        let sc = self
            .chain
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .scenario()
            .clone();
        writeln!(
            out,
            "valwatch demo: a simulated beacon chain on this machine (no database server, no network)"
        )?;
        writeln!(
            out,
            "  chain     {} validators, {} slots per epoch, {} ms slots (an epoch every {:.1} s)",
            sc.validators,
            sc.slots_per_epoch,
            sc.slot_duration_ms,
            (sc.slot_duration_ms * sc.slots_per_epoch) as f64 / 1000.0
        )?;
        for ((name, url), plan) in self.nodes().iter().zip(&self.plan.nodes) {
            let faults = describe_faults(plan);
            writeln!(out, "  node      {name} {url} ({faults})")?;
        }
        for g in &self.plan.groups {
            writeln!(
                out,
                "  watching  {:<8} {:<22} {}",
                g.name, g.validators, g.about
            )?;
        }
        if !sc.missed_slots.is_empty() {
            let slots: Vec<String> = sc.missed_slots.iter().map(|s| s.to_string()).collect();
            writeln!(
                out,
                "  also      the proposer of slot {} misses its block",
                slots.join(", ")
            )?;
        }
        writeln!(out, "  database  {}", self.database_url())?;
        match self.listen {
            Some(a) => writeln!(
                out,
                "  status    http://{a}/  (JSON: /status, Prometheus: /metrics)"
            )?,
            None => writeln!(out, "  status    HTTP server off")?,
        }
        let stop = match self.opts.epochs {
            Some(n) => format!("stops after {n} epochs"),
            None => "Ctrl-C stops".to_string(),
        };
        writeln!(
            out,
            "An epoch is judged for good when its inclusion window (to the end of the next\n\
             epoch) has closed, so each line comes about one epoch after the epoch; {stop}."
        )?;
        out.flush()
    }

    fn print_closing(&self, judged: u64, out: &mut (dyn Write + Send)) -> std::io::Result<()> {
        writeln!(
            out,
            "{judged} epochs judged and stored in {}.",
            self.database_url()
        )?;
        writeln!(out, "See the history with:")?;
        let dir = self.data_dir.display();
        writeln!(out, "  valwatch report --data-dir {dir}")?;
        writeln!(
            out,
            "  valwatch report --data-dir {dir} --validators 40-43 --format json"
        )?;
        out.flush()
    }

    /// Stops the simulated nodes.
    pub async fn shutdown(self) {
        for (_, node) in self.nodes {
            node.shutdown().await;
        }
    }
}

/// `valwatch demo`: starts, runs until `--epochs` or Ctrl-C, stops.
pub async fn run_cli(args: crate::cli::DemoArgs) -> anyhow::Result<()> {
    let listen =
        match args.listen.trim() {
            "" | "off" => None,
            a => Some(a.parse::<SocketAddr>().with_context(|| {
                format!("--listen {a:?} is not an address such as 127.0.0.1:9475")
            })?),
        };
    let demo = Demo::start(DemoOptions {
        epochs: args.epochs,
        listen,
        data_dir: args.data_dir,
        slot_ms: args.slot_ms,
    })
    .await?;
    let cancel = CancellationToken::new();
    crate::app::spawn_signal_handler(cancel.clone());
    let mut out = std::io::stdout();
    let result = demo.run(cancel, &mut out).await;
    demo.shutdown().await;
    result.map(|_| ())
}

/// Prints the final epochs from `next` up to the store's cursor; returns
/// the next epoch to print.
async fn print_new_epochs(
    store: &Store,
    slots_per_epoch: u64,
    next: u64,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u64> {
    let Some(cursor) = store.cursor().await? else {
        return Ok(next);
    };
    if cursor.0 < next {
        return Ok(next);
    }
    let query = ReportQuery {
        validators: None,
        from_epoch: Some(Epoch(next)),
        to_epoch: Some(cursor),
    };
    let report = store.report(&query).await?;
    let slashings = store.slashings(&query).await?;
    for e in next..=cursor.0 {
        writeln!(
            out,
            "{}",
            epoch_line(Epoch(e), slots_per_epoch, &report, &slashings)
        )?;
    }
    out.flush()?;
    Ok(cursor.0 + 1)
}

/// A new directory under the system's temporary directory, named by time
/// and process so that two demos never share one.
fn fresh_temp_dir() -> anyhow::Result<PathBuf> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = std::env::temp_dir().join(format!("valwatch-demo-{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Port 0 becomes a free port now (the status URL is printed before the
/// server binds). A busy default port falls back to a free one so that a
/// running valwatch does not stop the demo; an explicit busy port is left
/// for the server to report.
fn resolve_listen(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let is_default = crate::config::DEFAULT_LISTEN.parse::<SocketAddr>().ok() == Some(addr);
    if addr.port() != 0 && !is_default {
        return Ok(addr);
    }
    match std::net::TcpListener::bind(addr) {
        Ok(l) => Ok(l.local_addr()?),
        Err(_) if is_default => {
            let l = std::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0))
                .context("no free port for the HTTP server")?;
            Ok(l.local_addr()?)
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr}")),
    }
}

fn describe_faults(node: &DemoNode) -> String {
    if node.faults.is_empty() {
        return "healthy".into();
    }
    let parts: Vec<String> = node
        .faults
        .iter()
        .map(|f| {
            let what = match &f.kind {
                crate::sim::FaultKind::Refuse => "refuses connections".to_string(),
                crate::sim::FaultKind::Unavailable => "answers 503".to_string(),
                other => format!("{other:?}"),
            };
            match (f.from_slot, f.until_slot) {
                (Some(a), Some(b)) => format!("{what} in slots {a}-{}", b.saturating_sub(1)),
                (Some(a), None) => format!("{what} from slot {a}"),
                _ => what,
            }
        })
        .collect();
    let repeat = node
        .repeat_every_slots
        .map(|p| format!(", again every {p} slots"))
        .unwrap_or_default();
    format!("{}{repeat}", parts.join(", "))
}

/// Validator indices as ranges, `40-43,63`; long lists are cut with `…`.
pub fn ranges(indices: &[u64]) -> String {
    /// More ranges than this do not fit a line that stays readable.
    const MAX_RANGES: usize = 6;
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<(u64, u64)> = Vec::new();
    for v in sorted {
        match parts.last_mut() {
            Some((_, b)) if *b + 1 == v => *b = v,
            _ => parts.push((v, v)),
        }
    }
    let shown: Vec<String> = parts
        .iter()
        .take(MAX_RANGES)
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let more = if parts.len() > MAX_RANGES { ",…" } else { "" };
    format!("{}{more}", shown.join(","))
}

/// PURE: one line about `epoch` from the stored verdicts (the report may
/// hold other epochs too; only `epoch`'s rows count).
pub fn epoch_line(
    epoch: Epoch,
    slots_per_epoch: u64,
    report: &Report,
    slashings: &[SlashingRecord],
) -> String {
    let atts: Vec<_> = report
        .attestations
        .iter()
        .filter(|a| a.epoch == epoch)
        .collect();
    let who = |f: &dyn Fn(&crate::analysis::AttestationVerdict) -> bool| -> Vec<u64> {
        atts.iter()
            .filter(|a| f(a))
            .map(|a| a.validator_index.0)
            .collect()
    };
    let mut parts = Vec::new();
    let included = who(&|a| a.status == AttestationStatus::Included);
    parts.push(format!("{} included", included.len()));
    for (status, name) in [
        (AttestationStatus::Missed, "missed"),
        (AttestationStatus::Pending, "pending"),
        (AttestationStatus::Unknown, "unknown"),
        (AttestationStatus::Inactive, "inactive"),
    ] {
        let vs = who(&|a| a.status == status);
        if !vs.is_empty() {
            parts.push(format!("{} {name} ({})", vs.len(), ranges(&vs)));
        }
    }
    for (vs, name) in [
        (who(&|a| a.late == Some(true)), "late"),
        (who(&|a| a.head_correct == Some(false)), "wrong head"),
        (who(&|a| a.target_correct == Some(false)), "wrong target"),
    ] {
        if !vs.is_empty() {
            parts.push(format!("{} {name} ({})", vs.len(), ranges(&vs)));
        }
    }

    let mut by_status: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut proposed = 0;
    let props = report
        .proposals
        .iter()
        .filter(|p| p.slot.0 / slots_per_epoch.max(1) == epoch.0);
    for p in props {
        if p.status == ProposalStatus::Proposed {
            proposed += 1;
        } else {
            by_status
                .entry(p.status.as_str())
                .or_default()
                .push(match p.validator_index {
                    Some(v) => format!("slot {} by {v}", p.slot),
                    None => format!("slot {} (proposer unknown)", p.slot),
                });
        }
    }
    let mut proposals = format!("proposals {proposed} ok");
    for (status, slots) in &by_status {
        proposals.push_str(&format!(
            ", {} {status} ({})",
            slots.len(),
            slots.join(", ")
        ));
    }
    parts.push(proposals);

    let (ok, miss) = report
        .sync
        .iter()
        .filter(|s| s.epoch == epoch)
        .fold((0u64, 0u64), |(o, m), s| {
            (o + s.participated as u64, m + s.missed as u64)
        });
    if let Some(pct) = (ok * 100).checked_div(ok + miss) {
        parts.push(format!("sync {pct}%"));
    }
    let change: i64 = report
        .balances
        .iter()
        .filter(|b| b.epoch == epoch)
        .filter_map(|b| b.balance_change)
        .sum();
    if report
        .balances
        .iter()
        .any(|b| b.epoch == epoch && b.balance_change.is_some())
    {
        parts.push(format!("balances {change:+} gwei"));
    }
    for s in slashings.iter().filter(|s| s.epoch == epoch) {
        parts.push(format!(
            "SLASHED {} ({}, slot {})",
            s.validator_index,
            s.kind.as_str(),
            s.included_in_slot
        ));
    }
    format!("epoch {epoch}: {}", parts.join(", "))
}
