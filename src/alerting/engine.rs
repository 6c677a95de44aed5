//! The alerting shell: feeds the monitor's observations to the pure
//! `Tracker`, persists what `reconcile` decides (incident, notification and
//! its deliveries in one transaction) and runs the outbox, one task per
//! channel, so a channel that is down never delays another.
//!
//! Must not: decide (that is `policy`) or format (that is `render`).
//!
//! Restart: open incidents are read back from the store, validators in an
//! open `validator_down` stay down until a good verdict, and recent final
//! history is replayed into the tracker without paging, so nothing fires
//! twice and nothing open is forgotten. Delivery is at least once: a crash
//! between a channel accepting a message and the store recording it sends
//! that message again; everything else is sent exactly once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::analysis::doublesign::DoubleSignEvidence;
use crate::beacon::NodeReport;
use crate::chain::{Epoch, Slot, ValidatorIndex};
use crate::config::alerts::AlertsConfig;
use crate::metrics::Metrics;
use crate::status::{GroupSpec, DEFAULT_STALL_EPOCHS};
use crate::store::{
    AttemptOutcome, DueDelivery, EpochRecord, IncidentRecord, NewNotification, ReportQuery, Store,
    StoreError,
};

use super::channels::{self, backoff, send_once, Channel, ChannelError};
use super::policy::{reconcile, reminders_due, Decision, EarlyInputs, Finding, Tracker};
use super::render::{rfc3339, Message, Recovered, PAYLOAD_VERSION};
use super::spool::{Sent, Spool, Take};
use super::{Rule, Scope};
use crate::health::Outage;

/// How often an idle channel task looks at the outbox even without being
/// woken: covers deliveries queued by another process on the same database.
const OUTBOX_POLL: Duration = Duration::from_secs(30);

/// How often a channel task looks again while changes wait in memory.
const SPOOL_POLL: Duration = Duration::from_secs(1);

/// Deliveries a channel task reads at once; it sends them in order.
const OUTBOX_BATCH: u32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alerting store")]
    Store(#[from] StoreError),
    #[error("alert channel")]
    Channel(#[from] ChannelError),
}

/// What the monitor knows about one judged epoch beyond its record.
#[derive(Clone, Debug)]
pub struct EpochContext {
    pub now: SystemTime,
    /// Judged close to the wall clock (`alerting::is_live`); false for a
    /// backfill or the catch-up after a restart: then nothing opens.
    pub live: bool,
    /// Canonical block slots known when a provisional record was judged
    /// (at least those after the epoch's first slot), ascending. Empty:
    /// no early warning.
    pub block_slots: Vec<Slot>,
    /// `POST /eth/v1/validator/liveness/{epoch}` answers, if a node gave them.
    pub liveness: Option<HashMap<ValidatorIndex, bool>>,
    /// The network's baseline of a final epoch (issue 14), when counted.
    pub network: Option<crate::analysis::network::NetworkRecord>,
}

impl EpochContext {
    pub fn new(now: SystemTime, live: bool) -> EpochContext {
        EpochContext {
            now,
            live,
            block_slots: Vec::new(),
            liveness: None,
            network: None,
        }
    }
}

struct State {
    tracker: Tracker,
    open: Vec<IncidentRecord>,
    /// The newest epoch judged: what a notification is about.
    latest_epoch: Option<u64>,
}

/// What an open incident has told and has still to tell; kept with the
/// incident (`IncidentRecord::progress`) so that a restart neither repeats
/// nor forgets a notification.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Progress {
    /// The first notification (`firing`) went out. Incidents stored before
    /// this field existed were notified when they opened.
    #[serde(default = "told")]
    notified: bool,
    /// The validators the last notification named as down.
    #[serde(default)]
    announced: Vec<u64>,
    /// Validators named as down that came back since the last notification.
    #[serde(default)]
    returned: Vec<Outage>,
    /// How many came back over the incident's life.
    #[serde(default)]
    returned_total: usize,
}

fn told() -> bool {
    true
}

impl Progress {
    fn of(i: &IncidentRecord) -> Progress {
        let told = Progress {
            notified: true,
            announced: i.validators.clone(),
            returned: Vec::new(),
            returned_total: 0,
        };
        match serde_json::from_str::<serde_json::Value>(&i.progress) {
            // Stored before progress existed: told when it opened, naming
            // the validators it lists.
            Ok(v) if v.get("announced").is_none() => told,
            Ok(v) => serde_json::from_value(v).unwrap_or(told),
            Err(_) => told,
        }
    }

    fn fresh() -> Progress {
        Progress {
            notified: false,
            announced: Vec::new(),
            returned: Vec::new(),
            returned_total: 0,
        }
    }

    fn store_in(&self, i: &mut IncidentRecord) {
        i.progress = serde_json::to_string(self).unwrap_or_else(|_| "{}".into());
    }
}

pub struct Engine {
    store: Store,
    cfg: AlertsConfig,
    stall_limit: Duration,
    /// One epoch of the chain: the default `group_wait` and `group_interval`.
    epoch_duration: Duration,
    /// The chain's genesis, to tell the UTC time of an epoch.
    genesis: Option<SystemTime>,
    started_at: SystemTime,
    /// One wake-up per channel name.
    wake: BTreeMap<String, Arc<Notify>>,
    state: Mutex<State>,
    /// Where delivery attempts are counted (`valwatch_alert_deliveries_total`).
    metrics: Option<Arc<Metrics>>,
    /// The watched validators' labels (labels_file), named in messages.
    labels: std::sync::RwLock<BTreeMap<u64, Vec<String>>>,
    /// Changes the store could not take, sent from memory meanwhile.
    spool: std::sync::Mutex<Spool>,
    /// One writer of the spool to the store at a time.
    storing_spool: Mutex<()>,
}

fn groups_of(groups: &[GroupSpec]) -> Vec<(String, Vec<ValidatorIndex>)> {
    groups
        .iter()
        .map(|g| (g.name.clone(), g.validators.clone()))
        .collect()
}

fn ms(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

impl Engine {
    /// Reads the open incidents back and replays recent final history into
    /// the rules (without paging). `epoch_duration` sets the default stall
    /// limit.
    pub async fn start(
        store: Store,
        cfg: AlertsConfig,
        groups: &[GroupSpec],
        epoch_duration: Duration,
        now: SystemTime,
    ) -> Result<Engine, AlertError> {
        let mut tracker = Tracker::new(cfg.rules.clone(), &groups_of(groups));
        let open = store.open_incidents().await?;
        if let Some(cursor) = store.cursor().await? {
            let depth = u64::from(
                cfg.rules
                    .performance_window
                    .max(cfg.rules.down_after_missed)
                    .max(cfg.rules.balance_falling_epochs),
            ) + 1;
            let report = store
                .report(&ReportQuery {
                    validators: None,
                    from_epoch: Some(Epoch(cursor.0.saturating_sub(depth))),
                    to_epoch: Some(cursor),
                })
                .await?;
            let mut records: BTreeMap<Epoch, EpochRecord> = BTreeMap::new();
            fn rec(records: &mut BTreeMap<Epoch, EpochRecord>, e: Epoch) -> &mut EpochRecord {
                records.entry(e).or_insert_with(|| EpochRecord {
                    epoch: e,
                    is_final: true,
                    ..EpochRecord::default()
                })
            }
            for a in report.attestations {
                rec(&mut records, a.epoch).attestations.push(a);
            }
            for s in report.sync {
                rec(&mut records, s.epoch).sync.push(s);
            }
            for b in report.balances {
                rec(&mut records, b.epoch).balances.push(b);
            }
            for r in records.values() {
                // History: what it would have opened is over or will be
                // found again by the next live epoch.
                let _ = tracker.apply_epoch(r, &EarlyInputs::default());
            }
        }
        for i in &open {
            if i.rule == Rule::ValidatorDown.as_str() {
                tracker.assume_down(&i.validators, i.epoch);
            }
        }
        let wake = cfg
            .channels
            .iter()
            .map(|c| (c.name.clone(), Arc::new(Notify::new())))
            .collect();
        Ok(Engine {
            stall_limit: cfg
                .rules
                .stall_limit
                .unwrap_or(epoch_duration * DEFAULT_STALL_EPOCHS),
            store,
            cfg,
            epoch_duration,
            genesis: None,
            started_at: now,
            wake,
            state: Mutex::new(State {
                tracker,
                open,
                latest_epoch: None,
            }),
            metrics: None,
            labels: Default::default(),
            spool: Default::default(),
            storing_spool: Mutex::new(()),
        })
    }

    /// The watched validators' labels, for the messages from now on.
    pub fn set_labels(&self, labels: &BTreeMap<ValidatorIndex, Vec<String>>) {
        let map = labels.iter().map(|(v, l)| (v.0, l.clone())).collect();
        *self.labels.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    /// Lets notifications tell the UTC time of the epochs they name.
    pub fn with_genesis(mut self, genesis: SystemTime) -> Engine {
        self.genesis = Some(genesis);
        self
    }

    /// The start of `epoch` in UTC (RFC 3339), when the genesis is known.
    fn epoch_time(&self, epoch: u64) -> Option<String> {
        let secs = self.epoch_duration.as_secs_f64() * epoch as f64;
        Some(rfc3339(self.genesis? + Duration::from_secs_f64(secs)))
    }

    fn group_wait(&self) -> Duration {
        self.cfg.rhythm.group_wait.unwrap_or(self.epoch_duration)
    }

    fn group_interval(&self) -> Duration {
        self.cfg
            .rhythm
            .group_interval
            .unwrap_or(self.epoch_duration)
    }

    /// Counts every delivery attempt in `metrics`, by channel name and
    /// outcome (`sent`, `retry`, `abandoned`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Engine {
        let names: Vec<String> = self.cfg.channels.iter().map(|c| c.name.clone()).collect();
        metrics.declare_alert_channels(&names);
        self.metrics = Some(metrics);
        self
    }

    pub async fn set_groups(&self, groups: &[GroupSpec]) {
        self.state
            .lock()
            .await
            .tracker
            .set_groups(&groups_of(groups));
    }

    /// The incidents open now.
    pub async fn open_incidents(&self) -> Vec<IncidentRecord> {
        self.state.lock().await.open.clone()
    }

    /// After every stored epoch record, final or provisional.
    pub async fn on_epoch(
        &self,
        rec: &EpochRecord,
        ctx: &EpochContext,
    ) -> Result<Vec<Decision>, AlertError> {
        let mut st = self.state.lock().await;
        let early = EarlyInputs {
            block_slots: &ctx.block_slots,
            liveness: ctx.liveness.as_ref(),
        };
        st.latest_epoch = st.latest_epoch.max(Some(rec.epoch.0));
        let mut findings = st.tracker.apply_epoch(rec, &early);
        if let Some(n) = &ctx.network {
            st.tracker.apply_network(rec, n);
        }
        let returns = st.tracker.take_returns();
        self.note_returns(&mut st, returns);
        findings.extend(st.tracker.findings(Scope::Validators, ctx.now));
        let mut decisions = self.decide(&st, &findings, Scope::Validators, ctx.live);
        if rec.is_final && !rec.cross_checks.is_empty() {
            let f = st.tracker.findings(Scope::CrossCheck, ctx.now);
            decisions.extend(self.decide(&st, &f, Scope::CrossCheck, ctx.live));
        }
        self.apply(&mut st, &decisions, ctx.now).await?;
        self.flush(&mut st, ctx.now).await?;
        Ok(decisions)
    }

    /// With double-signing evidence, from blocks or from the nodes' event
    /// streams, whenever it is found: each new (validator, kind, epoch)
    /// is a critical event through every channel at once. History or not,
    /// it is notified: conflicting signatures are news until slashed.
    pub async fn on_double_sign(
        &self,
        evidence: &[DoubleSignEvidence],
        now: SystemTime,
    ) -> Result<usize, AlertError> {
        if evidence.is_empty() {
            return Ok(0);
        }
        let mut st = self.state.lock().await;
        let mut sent = 0;
        for (id, f) in st.tracker.apply_double_sign(evidence) {
            let i = IncidentRecord {
                id,
                rule: f.rule.as_str().to_owned(),
                subject: f.subject.clone(),
                severity: f.rule.severity().as_str().to_owned(),
                is_event: true,
                validators: f.validators.iter().copied().collect(),
                epoch: f.epoch,
                summary: f.summary.clone(),
                opened_at: now,
                last_notified_at: now,
                resolved_at: Some(now),
                resolution: Some("event".to_owned()),
                progress: "{}".into(),
            };
            if self.save(&st, &i, true, Some(("event", &[])), now).await? {
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// After every health round of the pool.
    /// `wall`: the wall-clock slot, against which stale heads are told.
    pub async fn on_nodes(
        &self,
        nodes: &[NodeReport],
        wall: Option<Slot>,
        now: SystemTime,
    ) -> Result<Vec<Decision>, AlertError> {
        let mut st = self.state.lock().await;
        st.tracker.apply_nodes(nodes, wall, now);
        let f = st.tracker.findings(Scope::Nodes, now);
        let decisions = self.decide(&st, &f, Scope::Nodes, true);
        self.apply(&mut st, &decisions, now).await?;
        self.flush(&mut st, now).await?;
        Ok(decisions)
    }

    /// With the head state's finalized checkpoint, the epoch of the head
    /// block and the wall clock's epoch.
    pub async fn on_chain(
        &self,
        finalized: Epoch,
        head: Epoch,
        wall: Epoch,
        now: SystemTime,
    ) -> Result<Vec<Decision>, AlertError> {
        let mut st = self.state.lock().await;
        st.tracker.apply_chain(finalized, head, wall);
        if st.tracker.chain_stalled() {
            // A stalled chain does not finalize either: `chain_stalled`
            // says it once; open network incidents stay as they are.
            return Ok(Vec::new());
        }
        let f = st.tracker.findings(Scope::Chain, now);
        let decisions = self.decide(&st, &f, Scope::Chain, true);
        self.apply(&mut st, &decisions, now).await?;
        Ok(decisions)
    }

    /// Every monitor round (and on a timer, so that a hung monitor is still
    /// noticed): stall detection and reminders. `last_processed_at`: when
    /// the last epoch was stored (None: none since start).
    pub async fn on_monitor(
        &self,
        last_processed_at: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<Vec<Decision>, AlertError> {
        self.store_spool().await;
        let mut st = self.state.lock().await;
        let last = last_processed_at.unwrap_or(self.started_at);
        st.tracker.apply_monitor(last, self.stall_limit, now);
        st.tracker
            .apply_store(self.store.failing().map(|o| (o.since, o.error)));
        let mut decisions = if st.tracker.chain_stalled() {
            // No epoch can be judged while no block comes: that is the
            // chain stall, told once by `chain_stalled`.
            Vec::new()
        } else {
            let f = st.tracker.findings(Scope::Monitor, now);
            self.decide(&st, &f, Scope::Monitor, true)
        };
        if let Some(every) = self.cfg.rules.reminder_interval {
            let resolving: Vec<&str> = decisions
                .iter()
                .filter_map(|d| match d {
                    Decision::Resolve { id, .. } => Some(id.as_str()),
                    _ => None,
                })
                .collect();
            let reminders: Vec<Decision> = reminders_due(&st.open, every, now)
                .into_iter()
                .filter(
                    |d| !matches!(d, Decision::Remind { id } if resolving.contains(&id.as_str())),
                )
                .collect();
            decisions.extend(reminders);
        }
        self.apply(&mut st, &decisions, now).await?;
        self.flush(&mut st, now).await?;
        Ok(decisions)
    }

    fn decide(&self, st: &State, findings: &[Finding], scope: Scope, live: bool) -> Vec<Decision> {
        let tracker = &st.tracker;
        reconcile(&st.open, findings, scope, live, &|rule, v| {
            tracker.resolution_note(rule, v)
        })
    }

    /// The notification of `kind` for `i` as it stands; `recovered`: who
    /// came back with this notification.
    /// The outages as the tracker knows them now: records of an outage's
    /// epochs judged after the return (a missed proposal's final verdict
    /// comes two epochs later) are counted there since.
    fn fresh(st: &State, returned: &[Outage]) -> Vec<Outage> {
        returned
            .iter()
            .map(|o| {
                st.tracker
                    .outage_of(o.validator)
                    .filter(|n| n.down_since_epoch == o.down_since_epoch)
                    .cloned()
                    .unwrap_or_else(|| o.clone())
            })
            .collect()
    }

    /// What each outage cost in rewards, as far as stored (see
    /// `Store::downtime_cost`); a store error leaves it unknown.
    async fn costs(&self, recovered: &[Outage]) -> HashMap<u64, (i64, bool)> {
        let mut out = HashMap::new();
        for o in recovered {
            let to = o.back_epoch.unwrap_or(o.down_since_epoch);
            if let Ok(Some(c)) = self
                .store
                .downtime_cost(
                    &[crate::chain::ValidatorIndex(o.validator)],
                    Epoch(o.down_since_epoch),
                    Epoch(to),
                )
                .await
            {
                out.insert(o.validator, c);
            }
        }
        out
    }

    fn message(
        &self,
        st: &State,
        i: &IncidentRecord,
        kind: &str,
        recovered: &[Outage],
        costs: &HashMap<u64, (i64, bool)>,
        now: SystemTime,
    ) -> Message {
        let rule = Rule::from_name(&i.rule);
        let per_group = rule.is_some_and(Rule::is_per_group);
        let resolved = kind == "resolved";
        // An event is about its own epoch; an open condition about the
        // newest epoch judged (never the epoch it began in, which is
        // `down_since_epoch`).
        let condition = per_group && !i.is_event;
        let epoch = if condition {
            st.latest_epoch.max(i.epoch)
        } else {
            i.epoch
        };
        let evidence = if rule == Some(Rule::ValidatorDown) && !resolved {
            i.validators
                .first()
                .and_then(|v| Some((v, st.tracker.evidence_of(*v)?)))
                .map(|(v, e)| {
                    if i.validators.len() == 1 {
                        e
                    } else {
                        format!("validator {v}: {e}")
                    }
                })
        } else {
            None
        };
        let back_ids: Vec<u64> = recovered.iter().map(|o| o.validator).collect();
        let recovered: Vec<Recovered> = recovered
            .iter()
            .map(|o| Recovered {
                validator: o.validator,
                down_since_epoch: o.down_since_epoch,
                down_since: self.epoch_time(o.down_since_epoch),
                back_epoch: o.back_epoch,
                back_at: o.back_epoch.and_then(|e| self.epoch_time(e)),
                missed_epochs: o.missed_epochs(st.latest_epoch),
                missed_proposals: o.missed_proposals.clone(),
                missed_sync_slots: o.missed_sync_slots,
                balance_change_gwei: o.balance_change_gwei(),
                missed_income_gwei: costs.get(&o.validator).map(|c| c.0),
                missed_income_estimated: costs.get(&o.validator).is_some_and(|c| c.1),
            })
            .collect();
        let validators = if resolved {
            Vec::new()
        } else {
            i.validators.clone()
        };
        let explorer = |v: u64| {
            self.cfg
                .links
                .explorer_url
                .as_ref()
                .map(|u| u.replace("{index}", &v.to_string()))
        };
        let mut m = Message {
            version: PAYLOAD_VERSION,
            id: i.id.clone(),
            notification_id: format!("{}/{kind}/{}", i.id, ms(now)),
            kind: kind.to_owned(),
            state: if resolved { "resolved" } else { "firing" }.to_owned(),
            rule: i.rule.clone(),
            severity: i.severity.clone(),
            subject: i.subject.clone(),
            group: per_group.then(|| i.subject.clone()),
            validators,
            recovered,
            epoch,
            epoch_time: epoch.and_then(|e| self.epoch_time(e)),
            down_since_epoch: if condition { i.epoch } else { None },
            down_since: if condition {
                i.epoch.and_then(|e| self.epoch_time(e))
            } else {
                None
            },
            summary: String::new(),
            evidence,
            status_url: self.cfg.links.status_url.as_ref().map(|u| {
                if per_group {
                    format!(
                        "{u}{}group={}",
                        if u.contains('?') { '&' } else { '?' },
                        i.subject
                    )
                } else {
                    u.clone()
                }
            }),
            explorer_urls: {
                let mut seen = BTreeSet::new();
                (if resolved { &[][..] } else { &i.validators[..] })
                    .iter()
                    .chain(back_ids.iter())
                    .filter(|v| seen.insert(**v))
                    .take(super::render::TEXT_SAMPLE)
                    .filter_map(|v| explorer(*v))
                    .collect()
            },
            labels: {
                let known = self.labels.read().unwrap_or_else(|e| e.into_inner());
                i.validators
                    .iter()
                    .chain(back_ids.iter())
                    .take(super::render::TEXT_SAMPLE)
                    .filter_map(|v| Some((*v, known.get(v)?.clone())))
                    .collect()
            },
            detail: i.summary.clone(),
            started_at: rfc3339(i.opened_at),
            resolved_at: if resolved {
                i.resolved_at.map(rfc3339)
            } else {
                None
            },
        };
        m.summary = m.headline();
        m
    }

    /// Stores one change with its notification; false: the store refused
    /// it (a duplicate).
    async fn save(
        &self,
        st: &State,
        i: &IncidentRecord,
        create: bool,
        notify: Option<(&str, &[Outage])>,
        now: SystemTime,
    ) -> Result<bool, AlertError> {
        let costs = match notify {
            Some((_, recovered)) if !recovered.is_empty() => self.costs(recovered).await,
            _ => HashMap::new(),
        };
        let note = notify.map(|(kind, recovered)| NewNotification {
            // The released schema knows no `recovered` kind: it updates an
            // open incident, and its payload says what it is.
            kind: if kind == "recovered" { "update" } else { kind }.to_owned(),
            created_at: now,
            payload: serde_json::to_value(self.message(st, i, kind, recovered, &costs, now))
                .unwrap_or(serde_json::Value::Null),
        });
        let channels: Vec<String> = self.wake.keys().cloned().collect();
        // In order: while earlier changes wait in memory, this one waits
        // behind them.
        self.store_spool().await;
        let stored = if self.spool().is_empty() {
            Some(
                self.store
                    .save_incident(i, create, note.as_ref(), &channels)
                    .await,
            )
        } else {
            None
        };
        let saved = match stored {
            Some(Ok(saved)) => saved,
            Some(Err(e)) if !crate::store::is_outage(&e) => return Err(e.into()),
            _ => {
                self.spool()
                    .push(i.clone(), create, note.clone(), &channels);
                if note.is_some() {
                    warn!(incident = %i.id, "the store is failing: the notification is sent from memory and stored once it answers");
                }
                true
            }
        };
        if saved {
            if let Some((kind, recovered)) = notify {
                info!(incident = %i.id, rule = %i.rule, subject = %i.subject, kind,
                      validators = i.validators.len(), recovered = recovered.len(), "alert");
                for w in self.wake.values() {
                    w.notify_one();
                }
            }
        }
        Ok(saved)
    }

    /// Validators back from an outage: each is news for the open
    /// `validator_down` incident of its group that named it as down (one
    /// that came back before being named was never told to anybody).
    fn note_returns(&self, st: &mut State, returns: Vec<Outage>) {
        for o in returns {
            let Some(group) = st
                .tracker
                .group_of(crate::chain::ValidatorIndex(o.validator))
            else {
                continue;
            };
            let group = group.to_owned();
            let Some(i) = st
                .open
                .iter_mut()
                .find(|i| i.rule == Rule::ValidatorDown.as_str() && i.subject == group)
            else {
                continue;
            };
            let mut p = Progress::of(i);
            if !p.announced.contains(&o.validator) {
                continue;
            }
            p.returned.retain(|r| r.validator != o.validator);
            p.returned.push(o);
            p.store_in(i);
        }
    }

    /// Sends what is due (pure timing on `now`, see `due`): the first
    /// notification of an incident after `group_wait`, an update or a
    /// recovery at most once per `group_interval`. Persists the progress.
    async fn flush(&self, st: &mut State, now: SystemTime) -> Result<(), AlertError> {
        for pos in 0..st.open.len() {
            let i = st.open[pos].clone();
            if i.is_event {
                continue;
            }
            let p = Progress::of(&i);
            let per_group = Rule::from_name(&i.rule).is_some_and(Rule::is_per_group);
            let wait = if per_group {
                self.group_wait()
            } else {
                Duration::ZERO
            };
            let Some(kind) = due(&i, &p, wait, self.group_interval(), now) else {
                continue;
            };
            let mut next = i.clone();
            next.last_notified_at = now;
            let recovered = if kind == "firing" {
                Vec::new()
            } else {
                Self::fresh(st, &p.returned)
            };
            let mut q = p.clone();
            q.notified = true;
            q.announced = i.validators.clone();
            q.returned_total += q.returned.len();
            q.returned.clear();
            q.store_in(&mut next);
            self.save(st, &next, false, Some((kind, &recovered)), now)
                .await?;
            st.open[pos] = next;
        }
        Ok(())
    }

    async fn apply(
        &self,
        st: &mut State,
        decisions: &[Decision],
        now: SystemTime,
    ) -> Result<(), AlertError> {
        for d in decisions {
            match d {
                Decision::Open(f) | Decision::Event(f) => {
                    let event = f.rule.is_event();
                    let id = if event {
                        format!("{}/{}/{}", f.rule.as_str(), f.subject, f.epoch.unwrap_or(0))
                    } else {
                        format!("{}/{}/{}", f.rule.as_str(), f.subject, ms(now))
                    };
                    let mut i = IncidentRecord {
                        id,
                        rule: f.rule.as_str().to_owned(),
                        subject: f.subject.clone(),
                        severity: f.rule.severity().as_str().to_owned(),
                        is_event: event,
                        validators: f.validators.iter().copied().collect(),
                        epoch: f.epoch,
                        summary: f.summary.clone(),
                        opened_at: now,
                        last_notified_at: now,
                        resolved_at: event.then_some(now),
                        resolution: event.then(|| "event".to_owned()),
                        progress: "{}".into(),
                    };
                    if event {
                        self.save(st, &i, true, Some(("event", &[])), now).await?;
                        continue;
                    }
                    // Told by `flush`, once `group_wait` has gathered the
                    // rest of the group.
                    Progress::fresh().store_in(&mut i);
                    if self.save(st, &i, true, None, now).await? {
                        st.open.push(i);
                    } else {
                        // Another writer opened it: take the stored view.
                        st.open = self.store.open_incidents().await?;
                    }
                }
                Decision::Grow { id, finding, .. } | Decision::Refresh { id, finding } => {
                    let Some(pos) = st.open.iter().position(|i| &i.id == id) else {
                        continue;
                    };
                    let mut i = st.open[pos].clone();
                    let before: BTreeSet<u64> = i.validators.iter().copied().collect();
                    i.validators = finding.validators.iter().copied().collect();
                    i.summary = finding.summary.clone();
                    i.epoch = match (i.epoch, finding.epoch) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    // Rules other than `validator_down` have no outage to
                    // tell: who left the set is back all the same.
                    if i.rule != Rule::ValidatorDown.as_str() {
                        let mut p = Progress::of(&i);
                        for v in before.difference(&finding.validators) {
                            if p.announced.contains(v)
                                && !p.returned.iter().any(|r| r.validator == *v)
                            {
                                p.returned.push(Outage {
                                    validator: *v,
                                    down_since_epoch: i.epoch.unwrap_or(0),
                                    back_epoch: st.latest_epoch,
                                    ..Outage::default()
                                });
                            }
                        }
                        p.store_in(&mut i);
                    }
                    self.save(st, &i, false, None, now).await?;
                    st.open[pos] = i;
                }
                Decision::Resolve { id, note } => {
                    let Some(pos) = st.open.iter().position(|i| &i.id == id) else {
                        continue;
                    };
                    let mut i = st.open[pos].clone();
                    let mut p = Progress::of(&i);
                    i.resolved_at = Some(now);
                    if !p.notified {
                        // Cleared within `group_wait`: nobody was told, so
                        // nobody is told it is over.
                        i.resolution = Some(format!("{note} (before any notification)"));
                        self.save(st, &i, false, None, now).await?;
                        st.open.remove(pos);
                        continue;
                    }
                    if i.rule != Rule::ValidatorDown.as_str() {
                        for v in &i.validators {
                            if p.announced.contains(v)
                                && !p.returned.iter().any(|r| r.validator == *v)
                            {
                                p.returned.push(Outage {
                                    validator: *v,
                                    down_since_epoch: i.epoch.unwrap_or(0),
                                    back_epoch: st.latest_epoch,
                                    ..Outage::default()
                                });
                            }
                        }
                    }
                    i.resolution = Some(note.clone());
                    i.summary = format!("{note} (was: {})", i.summary);
                    let recovered = Self::fresh(st, &std::mem::take(&mut p.returned));
                    p.returned_total += recovered.len();
                    p.store_in(&mut i);
                    i.last_notified_at = now;
                    self.save(st, &i, false, Some(("resolved", &recovered)), now)
                        .await?;
                    st.open.remove(pos);
                }
                Decision::Remind { id } => {
                    let Some(pos) = st.open.iter().position(|i| &i.id == id) else {
                        continue;
                    };
                    let mut i = st.open[pos].clone();
                    if !Progress::of(&i).notified {
                        continue;
                    }
                    i.last_notified_at = now;
                    self.save(st, &i, false, Some(("reminder", &[])), now)
                        .await?;
                    st.open[pos] = i;
                }
            }
        }
        Ok(())
    }

    fn spool(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes kept in memory (the store was failing), not yet stored.
    pub fn spooled(&self) -> usize {
        self.spool().len()
    }

    /// Writes the changes kept in memory to the store, oldest first, with
    /// the deliveries that ended meanwhile as ended; stops at the first
    /// outage. Does nothing (and asks nothing) when none is kept.
    pub async fn store_spool(&self) {
        if self.spool().is_empty() {
            return;
        }
        let _one = self.storing_spool.lock().await;
        loop {
            let Some((item, pending, finished)) = self.spool().front_to_store() else {
                return;
            };
            let r = self
                .store
                .save_incident_sent(
                    &item.incident,
                    item.create,
                    item.note.as_ref(),
                    &pending,
                    &finished,
                )
                .await;
            match r {
                Ok(_) => {
                    self.spool().stored(item.seq);
                    for c in &pending {
                        if let Some(w) = self.wake.get(c) {
                            w.notify_one();
                        }
                    }
                }
                Err(e) if crate::store::is_outage(&e) => {
                    self.spool().release(item.seq);
                    return;
                }
                Err(e) => {
                    // Refused for a reason of its own: retrying cannot help.
                    // Its notification went out from memory where it could.
                    warn!(incident = %item.incident.id, error = %crate::causes(&e),
                          "an alert kept in memory cannot be stored; left out of the history");
                    self.spool().stored(item.seq);
                }
            }
        }
    }

    /// Sends what `channel` owes from memory, in order, until nothing is
    /// due; how long until the next is (None: nothing owed).
    async fn deliver_spooled(&self, channel: &dyn Channel) -> Option<Duration> {
        let name = channel.name().to_owned();
        loop {
            let now = SystemTime::now();
            let take = self.spool().take(&name, now);
            let t = match take {
                Ok(t) => t,
                Err(wait) => return wait,
            };
            let sent = self.send_spooled(channel, &t, now).await;
            self.spool().finish(t.seq, &name, sent, SystemTime::now());
        }
    }

    /// One attempt at a notification kept in memory (as `attempt`).
    async fn send_spooled(&self, channel: &dyn Channel, t: &Take, now: SystemTime) -> Sent {
        let delivery = &self.cfg.delivery;
        let over_for = t
            .resolved_at
            .and_then(|r| now.duration_since(r).ok())
            .unwrap_or_default();
        let sent = if t.resolved_at.is_some() && over_for > delivery.give_up_after {
            Sent::Abandoned {
                error: format!(
                    "not delivered: the incident ended {} ago",
                    humantime::format_duration(Duration::from_secs(over_for.as_secs()))
                ),
            }
        } else {
            match serde_json::from_value::<Message>(t.payload.clone()) {
                Err(e) => Sent::Abandoned {
                    error: format!("unreadable payload: {e}"),
                },
                Ok(m) => match send_once(channel, &m, delivery.send_timeout).await {
                    Ok(()) => Sent::Delivered,
                    Err(e) if e.is_permanent() => Sent::Abandoned {
                        error: e.to_string(),
                    },
                    Err(e) => Sent::Retry {
                        error: e.to_string(),
                        next_at: SystemTime::now()
                            + backoff(t.attempts + 1, delivery.retry_min, delivery.retry_max),
                    },
                },
            }
        };
        let label = match &sent {
            Sent::Delivered => "sent",
            Sent::Retry { .. } => "retry",
            Sent::Abandoned { .. } => "abandoned",
        };
        if let Some(m) = &self.metrics {
            m.record_alert_delivery(channel.name(), label);
        }
        match &sent {
            Sent::Delivered => {
                info!(channel = %channel.name(), incident = %t.incident_id, "delivered from memory (the store is failing)")
            }
            Sent::Retry { error, .. } => {
                warn!(channel = %channel.name(), incident = %t.incident_id, attempt = t.attempts + 1,
                      error = %error, "delivery failed; will retry")
            }
            Sent::Abandoned { error } => {
                warn!(channel = %channel.name(), incident = %t.incident_id, error = %error,
                      "delivery abandoned")
            }
        }
        sent
    }

    /// Builds every configured channel once: a channel that cannot be
    /// built (a TLS setup, a token file) stops the start, so the daemon
    /// never runs on without the alerts it was configured to send.
    pub fn check_channels(&self) -> Result<(), AlertError> {
        for c in &self.cfg.channels {
            channels::build(c, self.cfg.delivery.send_timeout)?;
        }
        Ok(())
    }

    /// Delivers the outbox until `cancel`: one task per configured channel,
    /// each sending its pending deliveries in order, retrying a failure
    /// with backoff (later messages of that channel wait; other channels do
    /// not), abandoning one the receiver refuses for good or whose incident
    /// ended longer ago than `give_up_after`.
    pub async fn run_outbox(self: Arc<Self>, cancel: CancellationToken) -> Result<(), AlertError> {
        let mut tasks = tokio::task::JoinSet::new();
        for c in &self.cfg.channels {
            let channel = channels::build(c, self.cfg.delivery.send_timeout)?;
            let wake = self.wake.get(&c.name).cloned().unwrap_or_default();
            let engine = self.clone();
            let cancel = cancel.clone();
            tasks.spawn(async move { engine.deliver(channel, wake, cancel).await });
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    async fn deliver(
        &self,
        channel: Box<dyn Channel>,
        wake: Arc<Notify>,
        cancel: CancellationToken,
    ) {
        let name = channel.name().to_owned();
        while !cancel.is_cancelled() {
            self.store_spool().await;
            let batch = match self.store.pending_deliveries(&name, OUTBOX_BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    if !crate::store::is_outage(&e) || self.spool().is_empty() {
                        warn!(channel = %name, error = %crate::causes(&e), "cannot read the outbox");
                    }
                    Vec::new()
                }
            };
            let mut wait = OUTBOX_POLL;
            for d in &batch {
                let now = SystemTime::now();
                if let Ok(ahead) = d.next_attempt_at.duration_since(now) {
                    if !ahead.is_zero() {
                        wait = ahead;
                        break;
                    }
                }
                match self.attempt(channel.as_ref(), d, now).await {
                    Ok(true) => continue,
                    Ok(false) => {
                        wait = Duration::ZERO;
                        break;
                    }
                    Err(e) => {
                        warn!(channel = %name, error = %crate::causes(&e), "cannot record a delivery attempt");
                        break;
                    }
                }
            }
            if batch.len() as u32 == OUTBOX_BATCH && wait == OUTBOX_POLL {
                continue;
            }
            // What the store could not take is sent from memory; while the
            // store fails, look again soon so that it is stored once back.
            if let Some(w) = self.deliver_spooled(channel.as_ref()).await {
                wait = wait.min(w);
            }
            if !self.spool().is_empty() {
                wait = wait.min(SPOOL_POLL);
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One attempt; true when the channel may go on with the next delivery.
    async fn attempt(
        &self,
        channel: &dyn Channel,
        d: &DueDelivery,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let delivery = &self.cfg.delivery;
        let over_for = d
            .incident_resolved_at
            .and_then(|r| now.duration_since(r).ok())
            .unwrap_or_default();
        let outcome = if d.incident_resolved_at.is_some() && over_for > delivery.give_up_after {
            AttemptOutcome::Abandoned {
                error: format!(
                    "not delivered: the incident ended {} ago",
                    humantime::format_duration(Duration::from_secs(over_for.as_secs()))
                ),
            }
        } else {
            match serde_json::from_value::<Message>(d.payload.clone()) {
                Err(e) => AttemptOutcome::Abandoned {
                    error: format!("unreadable payload: {e}"),
                },
                Ok(m) => match send_once(channel, &m, delivery.send_timeout).await {
                    Ok(()) => AttemptOutcome::Delivered,
                    Err(e) if e.is_permanent() => AttemptOutcome::Abandoned {
                        error: e.to_string(),
                    },
                    Err(e) => AttemptOutcome::Retry {
                        error: e.to_string(),
                        next_at: SystemTime::now()
                            + backoff(d.attempts + 1, delivery.retry_min, delivery.retry_max),
                    },
                },
            }
        };
        if let Some(m) = &self.metrics {
            m.record_alert_delivery(&d.channel, outcome_label(&outcome));
        }
        match &outcome {
            AttemptOutcome::Delivered => {}
            AttemptOutcome::Retry { error, .. } => {
                warn!(channel = %d.channel, incident = %d.incident_id, attempt = d.attempts + 1,
                      error = %error, "delivery failed; will retry")
            }
            AttemptOutcome::Abandoned { error } => {
                warn!(channel = %d.channel, incident = %d.incident_id, error = %error,
                      "delivery abandoned")
            }
        }
        self.store
            .record_attempt(d.id, SystemTime::now(), &outcome)
            .await?;
        Ok(!matches!(outcome, AttemptOutcome::Retry { .. }))
    }
}

/// PURE: which notification an open incident owes at `now`, if any: its
/// `firing` once `wait` has passed since it opened (so that the rest of a
/// group going down joins it), then an `update` (more validators down) or
/// a `recovered` (some came back, others still down) at most once per
/// `interval` since the last notification.
fn due(
    i: &IncidentRecord,
    p: &Progress,
    wait: Duration,
    interval: Duration,
    now: SystemTime,
) -> Option<&'static str> {
    let since = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    if !p.notified {
        return (since(i.opened_at) >= wait).then_some("firing");
    }
    let grew = i.validators.iter().any(|v| !p.announced.contains(v));
    let back = !p.returned.is_empty();
    if !(grew || back) || since(i.last_notified_at) < interval {
        return None;
    }
    Some(if grew { "update" } else { "recovered" })
}

/// The `outcome` label of `valwatch_alert_deliveries_total`.
fn outcome_label(o: &AttemptOutcome) -> &'static str {
    match o {
        AttemptOutcome::Delivered => "sent",
        AttemptOutcome::Retry { .. } => "retry",
        AttemptOutcome::Abandoned { .. } => "abandoned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + secs)
    }

    fn incident(validators: &[u64], opened: u64, last: u64) -> IncidentRecord {
        IncidentRecord {
            id: "validator_down/g/1".into(),
            rule: "validator_down".into(),
            subject: "g".into(),
            severity: "critical".into(),
            is_event: false,
            validators: validators.to_vec(),
            epoch: Some(6),
            summary: "s".into(),
            opened_at: at(opened),
            last_notified_at: at(last),
            resolved_at: None,
            resolution: None,
            progress: "{}".into(),
        }
    }

    fn progress(notified: bool, announced: &[u64], back: &[u64]) -> Progress {
        Progress {
            notified,
            announced: announced.to_vec(),
            returned: back
                .iter()
                .map(|v| Outage {
                    validator: *v,
                    ..Outage::default()
                })
                .collect(),
            returned_total: 0,
        }
    }

    #[test]
    #[allow(clippy::type_complexity)] // a table of cases reads best inline
    fn notifications_follow_group_wait_and_group_interval() {
        const WAIT: Duration = Duration::from_secs(384);
        const INTERVAL: Duration = Duration::from_secs(384);
        // (name, validators now, opened, last notified, progress, now, due)
        let cases: Vec<(&str, Vec<u64>, u64, u64, Progress, u64, Option<&str>)> = vec![
            (
                "new, within group_wait: nothing yet",
                vec![1, 2],
                0,
                0,
                progress(false, &[], &[]),
                383,
                None,
            ),
            (
                "new, group_wait over: the firing",
                vec![1, 2],
                0,
                0,
                progress(false, &[], &[]),
                384,
                Some("firing"),
            ),
            (
                "told, nothing changed: nothing",
                vec![1, 2],
                0,
                400,
                progress(true, &[1, 2], &[]),
                10_000,
                None,
            ),
            (
                "one more down within the interval: wait",
                vec![1, 2, 3],
                0,
                400,
                progress(true, &[1, 2], &[]),
                783,
                None,
            ),
            (
                "one more down after the interval: update",
                vec![1, 2, 3],
                0,
                400,
                progress(true, &[1, 2], &[]),
                784,
                Some("update"),
            ),
            (
                "one back after the interval: recovered",
                vec![2],
                0,
                400,
                progress(true, &[1, 2], &[1]),
                784,
                Some("recovered"),
            ),
            (
                "one back and one more down: update (naming both)",
                vec![2, 3],
                0,
                400,
                progress(true, &[1, 2], &[1]),
                784,
                Some("update"),
            ),
            (
                "one back within the interval: wait",
                vec![2],
                0,
                400,
                progress(true, &[1, 2], &[1]),
                500,
                None,
            ),
            (
                "a stored incident from before progress existed is told",
                vec![1],
                0,
                0,
                Progress::of(&incident(&[1], 0, 0)),
                10_000,
                None,
            ),
        ];
        for (name, validators, opened, last, p, now, want) in cases {
            let i = incident(&validators, opened, last);
            assert_eq!(due(&i, &p, WAIT, INTERVAL, at(now)), want, "{name}");
        }
    }

    #[test]
    fn progress_of_an_incident_stored_before_it_existed_counts_as_told() {
        let mut i = incident(&[4, 5], 0, 0);
        i.progress = "{}".into();
        let p = Progress::of(&i);
        assert!(p.notified);
        assert_eq!(p.announced, vec![4, 5], "nothing new to tell");
        i.progress = "not json".into();
        let p = Progress::of(&i);
        assert!(p.notified);
        assert_eq!(p.announced, vec![4, 5]);
    }
}
