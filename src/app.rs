//! Wiring: builds the pool, the store and the monitor from a `Config`, runs
//! them with one cancellation token, and shuts down cleanly on SIGINT or
//! SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::beacon::client::ValidatorId;
use crate::beacon::events::{follow_events, SeenBlocks, SeenSlashings};
use crate::beacon::StateId;
use crate::beacon::{redact_url, BeaconPool};
use crate::chain::{Epoch, Pubkey, SystemClock, ValidatorIndex};
use crate::config::{Config, IdSet, Overrides};
use crate::http::HttpState;
use crate::metrics::Metrics;
use crate::monitor::{Monitor, Observers};
use crate::status::{Policy, StatusBoard};
use crate::store::{SchemaState, Store, StoreError};
use crate::watchlist::Watchlist;

/// Opens the configured store (embedded SQLite by default) and migrates it.
pub async fn open_store(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url)
        .await
        .context("cannot open the database")?;
    store
        .migrate()
        .await
        .context("cannot apply the database migrations")?;
    Ok(store)
}

/// The database URL from flags, file and defaults, without loading the
/// rest of the config (report and migrate need no beacon node).
pub fn database_url(
    config: Option<&Path>,
    url: Option<String>,
    data_dir: Option<String>,
) -> anyhow::Result<String> {
    Ok(crate::config::database_url(config, url, data_dir)?)
}

/// `valwatch run`.
pub async fn run(config: Config, until_epoch: Option<Epoch>) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    run_with(config, until_epoch, cancel).await
}

/// While no beacon node answers at start, the first pause between
/// attempts; doubled after each failure up to `BLIND_RETRY_MAX`. A node
/// restarting with its host answers within a minute or two: a few seconds
/// at first notices it soon, and the cap keeps a long outage to one cheap
/// request per node every half minute.
const BLIND_RETRY_MIN: Duration = Duration::from_secs(2);
const BLIND_RETRY_MAX: Duration = Duration::from_secs(30);

/// The epoch length assumed while blind at start, for the provisional
/// status board and alert engine (their stall limits): no node has said
/// yet what chain this is. 32 slots of 12 s, the length on mainnet and
/// every public Ethereum test network.
const ASSUMED_EPOCH: Duration = Duration::from_secs(12 * 32);

/// After SIGTERM, how long the work in flight (a monitor round, event
/// streams, alert deliveries) gets to end by itself before it is dropped.
/// A round writes each epoch in one transaction, so a dropped round loses
/// nothing: its epoch is judged again at the next start. With `TASKS_GRACE`
/// and the HTTP server's own grace (run meanwhile) this keeps a stop within
/// 10 s at any size (issue 11: 9+ minutes with five million watched ids).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// After the monitor stopped, how long the event streams and alert
/// deliveries get to end (they were cancelled with it, and an SMTP
/// exchange in flight may need a moment). With `STOP_GRACE` before it,
/// a stop takes at most 7 s; the HTTP server's grace runs meanwhile.
const TASKS_GRACE: Duration = Duration::from_secs(2);

/// Why starting did not get to the monitor.
enum Startup {
    /// No node could be asked (or answered): keep trying, blind.
    Blind(anyhow::Error),
    /// A configuration or database that cannot work: exit.
    Fatal(anyhow::Error),
}

/// What starting with a node gives: the chain's spec and the watchlist
/// with the validators that exist.
async fn connect(
    pool: &BeaconPool,
    store: &Store,
    watchlist: &mut Watchlist,
) -> Result<crate::chain::ChainSpec, Startup> {
    let spec = pool
        .identify()
        .await
        .map_err(|e| Startup::Blind(anyhow::Error::new(e).context("no usable beacon node")))?;
    store
        .check_network(spec.genesis_validators_root)
        .await
        .context("the database belongs to another network")
        .map_err(Startup::Fatal)?;
    store
        .record_chain_constants(&spec)
        .await
        .context("recording the chain constants in the database")
        .map_err(Startup::Fatal)?;
    pool.check_health().await;
    watchlist.read_sources_now().await;
    watchlist.resolve(pool).await.map_err(|e| {
        Startup::Blind(anyhow::Error::new(e).context("cannot look up the configured validators"))
    })?;
    if watchlist.watched().is_empty() && watchlist.sources_pending() {
        // A validator client that starts after valwatch is no
        // configuration mistake: wait for it as for a beacon node.
        return Err(Startup::Blind(anyhow::anyhow!(
            "no key source answered yet and no other validator is configured"
        )));
    }
    if watchlist.watched().is_empty() {
        // Retried, not fatal: a node that just started (or a replay at
        // genesis) may not serve the registry yet, and keys whose deposits
        // are pending appear later. Said at warn level while it lasts.
        return Err(Startup::Blind(anyhow::anyhow!(
            "none of the configured validators exists on this chain (yet)"
        )));
    }
    Ok(spec)
}

/// The provisional board and alert engine of a start without any node: the
/// status says "blind" (503) and the `monitor_blind` rule pages, as it
/// would for a node lost later.
struct Blind {
    board: Arc<StatusBoard>,
    engine: Arc<crate::alerting::Engine>,
    outbox: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
}

impl Blind {
    async fn start(
        store: &Store,
        config: &Config,
        metrics: &Arc<Metrics>,
        server: Option<&crate::http::Server>,
        clock: &Arc<dyn crate::chain::Clock>,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Blind> {
        let now = clock.now();
        let board = Arc::new(StatusBoard::new(
            now,
            Vec::new(),
            Vec::new(),
            Policy::for_epoch_duration(ASSUMED_EPOCH),
        ));
        if let Some(server) = server {
            server.set_state(HttpState {
                board: board.clone(),
                metrics: metrics.clone(),
                clock: clock.clone(),
                // No chain known yet: no slots per epoch for the strips.
                history: None,
            });
        }
        let engine = Arc::new(
            crate::alerting::Engine::start(
                store.clone(),
                config.alerts.clone(),
                &[],
                ASSUMED_EPOCH,
                now,
            )
            .await
            .context("cannot start alerting")?
            .with_metrics(metrics.clone()),
        );
        let stop = cancel.child_token();
        let outbox = {
            let engine = engine.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.run_outbox(stop).await {
                    warn!(error = %crate::causes(&e), "alert delivery stopped");
                }
            })
        };
        Ok(Blind {
            board,
            engine,
            outbox,
            stop,
        })
    }

    /// Shows and alerts on what the nodes answered.
    async fn observe(&self, pool: &BeaconPool, metrics: &Metrics, now: std::time::SystemTime) {
        let reports = pool.reports();
        metrics.observe_nodes(&reports);
        if let Err(e) = self.engine.on_nodes(&reports, None, now).await {
            warn!(error = %crate::causes(&e), "alerting: node rules failed");
        }
        if let Err(e) = self.engine.on_monitor(None, now).await {
            warn!(error = %crate::causes(&e), "alerting: monitor rules failed");
        }
        self.board.set_nodes(reports);
    }

    /// Stops the provisional outbox; what it had not delivered stays in the
    /// store's outbox for the real engine.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.outbox.await;
    }
}

/// SIGHUP: read the key sources now rather than at the next epoch (the
/// validators and labels files are re-read whenever they change anyway).
fn spawn_sighup_reader(wake: Arc<std::sync::atomic::AtomicBool>, cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %crate::causes(&e), "cannot listen for SIGHUP; key sources are read every epoch only");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                got = hup.recv() => {
                    if got.is_none() {
                        break;
                    }
                    info!("SIGHUP: reading the key sources at the next round");
                    wake.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    });
}

pub async fn run_with(
    mut config: Config,
    until_epoch: Option<Epoch>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let db_url = config.effective_database_url();
    if config.database_url.is_none() {
        info!(path = %db_url, "no database configured: using the embedded SQLite store");
    }
    let store = open_store(&db_url).await?;

    for n in &config.beacon_nodes {
        info!(node = %n.name, url = %redact_url(&n.url), role = ?n.role, "beacon node");
    }
    let pool = Arc::new(BeaconPool::new(config.beacon_nodes.clone())?);
    let group_count = config.groups.len();
    // The watchlist keeps the groups compact; the expanded lists go.
    let mut watchlist = Watchlist::new(
        std::mem::take(&mut config.groups),
        config.expected_offline.clone(),
    )
    .with_sources(crate::sources::Sources::new(config.sources.clone())?)
    .with_labels(config.labels.clone(), config.labels_file.clone());
    if let Some(wake) = watchlist.sources_waker() {
        spawn_sighup_reader(wake, cancel.clone());
    }
    let metrics = Arc::new(Metrics::new(config.per_validator_metrics_limit)?);
    {
        let m = metrics.clone();
        pool.set_request_observer(Arc::new(move |node, endpoint, elapsed, error| {
            m.record_node_request(node, endpoint, elapsed, error)
        }));
    }
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        metrics.set_start_time(d.as_secs());
    }
    let clock: Arc<dyn crate::chain::Clock> = Arc::new(SystemClock);
    // Served from the start, before any node answers: a monitor that
    // cannot see the chain must still say so.
    let server = match config.listen {
        Some(addr) => {
            let state = HttpState {
                board: Arc::new(StatusBoard::new(
                    clock.now(),
                    Vec::new(),
                    Vec::new(),
                    Policy::for_epoch_duration(ASSUMED_EPOCH),
                )),
                metrics: metrics.clone(),
                clock: clock.clone(),
                history: None,
            };
            let server = crate::http::serve(addr, state, cancel.clone()).await?;
            info!(addr = %server.local_addr, "HTTP status, readiness and metrics");
            Some(server)
        }
        None => None,
    };

    // Until a node answers: retry, blind, never exit for that (after a host
    // reboot the monitor may well start before its beacon node).
    let mut blind: Option<Blind> = None;
    let mut last_error: Option<String> = None;
    let mut pause = BLIND_RETRY_MIN;
    let spec = loop {
        let attempt = tokio::select! {
            _ = cancel.cancelled() => None,
            r = connect(&pool, &store, &mut watchlist) => Some(r),
        };
        let error = match attempt {
            None => break None,
            Some(Ok(spec)) => break Some(spec),
            Some(Err(Startup::Fatal(e))) => {
                if let Some(b) = blind.take() {
                    b.stop().await;
                }
                cancel.cancel();
                if let Some(server) = server {
                    let _ = server.wait().await;
                }
                return Err(e);
            }
            Some(Err(Startup::Blind(e))) => e,
        };
        // Said at warn level when the reason changes, not every attempt.
        let text = format!("{error:#}");
        if last_error.as_deref() == Some(text.as_str()) {
            debug!(error = %text, "still no beacon node");
        } else {
            warn!(error = %text, retry_s = pause.as_secs(),
                  "no beacon node answers: running blind, trying again");
        }
        last_error = Some(text);
        if blind.is_none() {
            blind = Some(
                Blind::start(&store, &config, &metrics, server.as_ref(), &clock, &cancel).await?,
            );
        }
        if let Some(b) = &blind {
            b.observe(&pool, &metrics, clock.now()).await;
        }
        tokio::select! {
            _ = cancel.cancelled() => break None,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(BLIND_RETRY_MAX);
    };
    if let Some(b) = blind.take() {
        if spec.is_some() {
            info!("a beacon node answers: no longer blind");
        }
        b.stop().await;
    }
    let Some(spec) = spec else {
        if let Some(server) = server {
            if let Err(e) = server.wait().await {
                warn!(error = %crate::causes(&e), "HTTP server stopped with an error");
            }
        }
        info!("valwatch stopped");
        return Ok(());
    };

    let watched = watchlist.watched();
    let groups = watchlist.group_specs();
    let expected_offline = watchlist.expected_offline();
    let epoch_duration = Duration::from_millis(spec.slot_duration_ms * spec.slots_per_epoch);
    watchlist.set_source_interval(epoch_duration);
    let board = Arc::new(StatusBoard::new(
        std::time::SystemTime::now(),
        groups.clone(),
        expected_offline,
        Policy::for_epoch_duration(epoch_duration)
            .with_rules(crate::alerting::policy::health_rules(&config.alerts.rules)),
    ));
    board.set_labels(&watchlist.labels());
    board.set_sources(watchlist.source_statuses());
    metrics.observe_sources(&watchlist.source_statuses());
    metrics.set_watched(
        &groups
            .iter()
            .map(|g| (g.name.clone(), g.validators.len()))
            .collect(),
    );
    metrics.set_labels(&watchlist.labels());
    let http_state = server.as_ref().map(|server| {
        let state = HttpState {
            board: board.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            history: Some(Arc::new(crate::http::history::History::new(
                store.clone(),
                spec.slots_per_epoch,
            ))),
        };
        server.set_state(state.clone());
        state
    });

    let wall_epoch = spec
        .slot_at(std::time::SystemTime::now())
        .map(|s| spec.epoch_of(s))
        .unwrap_or(Epoch(0));
    let start = match store.cursor().await? {
        Some(c) => Epoch(c.0 + 1),
        None => config.from_epoch.unwrap_or(wall_epoch),
    };
    let paging_from = paging_from(&store, wall_epoch).await;
    info!(
        validators = watched.len(),
        groups = group_count,
        start_epoch = start.0,
        paging_from_epoch = paging_from.0,
        wall_epoch = wall_epoch.0,
        slots_per_epoch = spec.slots_per_epoch,
        slot_ms = spec.slot_duration_ms,
        "valwatch started"
    );

    let poll = config
        .poll_interval
        .unwrap_or_else(|| Duration::from_millis((spec.slot_duration_ms / 4).max(250)));
    if config.alerts.channels.is_empty() {
        info!("no alert channel configured: incidents are recorded, nobody is notified");
    }
    let engine = crate::alerting::Engine::start(
        store.clone(),
        config.alerts.clone(),
        &groups,
        epoch_duration,
        std::time::SystemTime::now(),
    )
    .await
    .context("cannot start alerting")?
    .with_genesis(std::time::UNIX_EPOCH + Duration::from_secs(spec.genesis_time))
    .with_metrics(metrics.clone());
    engine
        .check_channels()
        .context("cannot set up the alert channels")?;
    engine.set_labels(&watchlist.labels());
    // The page starts where the pager is: validators of an open
    // `validator_down` incident are down on both.
    for i in engine.open_incidents().await {
        if i.rule == crate::alerting::Rule::ValidatorDown.as_str() {
            board.assume_down(&i.validators, i.epoch);
        }
    }
    let alerts = Some(Arc::new(engine));
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(state) = http_state {
        tasks.spawn(crate::http::page::warm_history(
            state,
            spec.slot_duration(),
            cancel.clone(),
        ));
    }
    if let Some(engine) = &alerts {
        let engine = engine.clone();
        let c = cancel.clone();
        tasks.spawn(async move {
            if let Err(e) = engine.run_outbox(c).await {
                warn!(error = %crate::causes(&e), "alert delivery stopped");
            }
        });
    }
    let heartbeat = match &config.heartbeat {
        Some(h) => {
            info!(target = %h.shown_url(), method = ?h.method,
                  "heartbeat after every final epoch");
            Some(Arc::new(crate::alerting::Heartbeat::new(
                h.clone(),
                Some(metrics.clone()),
            )?))
        }
        None => None,
    };
    let seen = Arc::new(SeenBlocks::default());
    let slashings = Arc::new(SeenSlashings::default());
    let mut streams = tokio::task::JoinSet::new();
    for node in &config.beacon_nodes {
        streams.spawn(follow_events(
            node.clone(),
            seen.clone(),
            Some((slashings.clone(), spec.slots_per_epoch)),
            cancel.clone(),
        ));
    }
    let mut monitor = Monitor::new(pool, store, spec, clock, watched, start)
        .with_observers(Observers {
            board,
            metrics,
            alerts,
            heartbeat,
        })
        .with_seen_blocks(seen)
        .with_seen_slashings(slashings)
        .with_retention(config.retention)
        .with_watchlist(watchlist)
        .with_paging_from(paging_from);
    // The monitor checks the token between rounds; a round of a large
    // watched set can outlast a stop request, so it gets STOP_GRACE.
    let result = tokio::select! {
        r = monitor.run(cancel.clone(), poll, until_epoch) => r,
        _ = async {
            cancel.cancelled().await;
            tokio::time::sleep(STOP_GRACE).await;
        } => {
            warn!(grace_ms = STOP_GRACE.as_millis() as u64,
                  "the monitor round did not end within the stop grace; abandoned (its epoch is judged again at the next start)");
            Ok(())
        }
    };
    cancel.cancel();
    let joined = tokio::time::timeout(TASKS_GRACE, async {
        while streams.join_next().await.is_some() {}
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if joined.is_err() {
        warn!(
            grace_ms = TASKS_GRACE.as_millis() as u64,
            "background tasks did not stop within their grace; abandoned"
        );
        streams.abort_all();
        tasks.abort_all();
    }
    if let Some(server) = server {
        if let Err(e) = server.wait().await {
            warn!(error = %crate::causes(&e), "HTTP server stopped with an error");
        }
    }
    result?;
    info!("valwatch stopped");
    Ok(())
}

/// Cancels `cancel` on SIGINT or SIGTERM.
/// `meta` key: the first epoch that may page (see `paging_from`).
const PAGING_FROM: &str = "paging_from_epoch";

/// The first epoch that may page, fixed at the first start: what was live
/// then (the wall epoch less the live lag). Epochs before it are history
/// asked for with `--from-epoch`; epochs after it judged late, after any
/// outage including valwatch's own, page (`alerting::pages`). A store that
/// cannot say gives this start's value.
async fn paging_from(store: &Store, wall_epoch: Epoch) -> Epoch {
    match store.meta(PAGING_FROM).await {
        Ok(Some(v)) => match v.parse() {
            Ok(e) => return Epoch(e),
            Err(_) => warn!(value = %v, "unreadable {PAGING_FROM} in meta; set again"),
        },
        Ok(None) => {}
        Err(e) => warn!(error = %crate::causes(&e), "cannot read {PAGING_FROM}"),
    }
    let from = Epoch(
        wall_epoch
            .0
            .saturating_sub(crate::alerting::LIVE_LAG_EPOCHS),
    );
    if let Err(e) = store.set_meta(PAGING_FROM, &from.0.to_string()).await {
        warn!(error = %crate::causes(&e), "cannot store {PAGING_FROM}");
    }
    from
}

pub fn spawn_signal_handler(cancel: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        cancel.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        info!("shutdown requested");
        cancel.cancel();
    });
}

/// `valwatch check-config`: prints every problem; tries every node, asks
/// the first that answers whether the configured validators exist, and
/// looks at the database without creating, migrating or changing it.
/// Sends nothing through the alert channels (that is `test-alert`).
/// Returns whether everything is usable; warnings do not count.
pub async fn check_config(path: Option<&Path>, over: &Overrides) -> anyhow::Result<bool> {
    let config = match crate::config::load(path, over) {
        Ok(c) => c,
        Err(e) => {
            println!("{e}");
            return Ok(false);
        }
    };
    let mut ok = true;
    println!(
        "configuration: ok ({} nodes, {} groups, {} validators)",
        config.beacon_nodes.len(),
        config.groups.len(),
        config.all_validators().len()
    );
    for o in crate::config::overlapping_groups(&config.groups) {
        println!(
            "warning: groups {} and {} both watch {}",
            o.first, o.second, o.shared
        );
    }

    let mut registry_checked = false;
    for node in &config.beacon_nodes {
        let pool = BeaconPool::new(vec![node.clone()])?;
        match pool.identify().await {
            Ok(spec) => {
                println!(
                    "beacon node {}: ok (genesis {}, {} slots/epoch)",
                    node.name, spec.genesis_time, spec.slots_per_epoch
                );
                // One registry read is enough: every node of a pool
                // serves the same chain (`identify` checked that).
                if !registry_checked {
                    match check_registry(&pool, &config).await {
                        Ok(found_all) => {
                            registry_checked = true;
                            ok &= found_all;
                        }
                        Err(e) => println!(
                            "validators: cannot ask beacon node {} for them: {e}",
                            node.name
                        ),
                    }
                }
            }
            Err(e) => {
                ok = false;
                println!("beacon node {}: FAILED: {e}", node.name);
            }
        }
    }
    if !registry_checked {
        ok = false;
        println!("validators: FAILED: not checked, no beacon node answered the request");
    }

    let url = config.effective_database_url();
    let shown = crate::store::redact_url(&url);
    match crate::store::Store::inspect(&url).await {
        Ok(None) => println!("database {shown}: not created yet; `valwatch run` creates it"),
        Ok(Some(SchemaState::Empty)) => {
            println!("database {shown}: ok, empty; `valwatch run` creates the schema")
        }
        Ok(Some(SchemaState::Current { version })) => {
            println!("database {shown}: ok (schema {version})")
        }
        Ok(Some(SchemaState::Older { version, known })) => println!(
            "database {shown}: ok (schema {version}); `valwatch run` or `valwatch migrate` \
             upgrades it to {known}"
        ),
        Ok(Some(SchemaState::Newer { version, known })) => {
            ok = false;
            println!(
                "database {shown}: FAILED: {}",
                StoreError::NewerSchema { version, known }
            );
        }
        Err(e) => {
            ok = false;
            println!("database {shown}: FAILED: {e:#}");
        }
    }

    let channels: Vec<&str> = config
        .alerts
        .channels
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    if channels.is_empty() {
        println!("alert channels: none (incidents are recorded, nobody is notified)");
    } else {
        println!(
            "alert channels: {} (not tried here: `valwatch test-alert` sends a test through each)",
            channels.join(", ")
        );
    }
    Ok(ok)
}

/// Asks `pool` which configured validators exist and prints the ones the
/// chain does not hold. `Ok(true)` when all exist. Indices are not asked
/// one by one: the registry is a prefix `0..n`, and `n` takes a binary
/// search of a few requests (`0-4999999` is five million ids, and no node
/// should be sent them).
async fn check_registry(pool: &BeaconPool, config: &Config) -> anyhow::Result<bool> {
    let all = config.all_validators().union(&config.expected_offline);
    // The public keys, with index 0: a list that matches nothing is no
    // filter at all for some servers, and 0 tells an empty registry.
    let mut asked = vec![ValidatorId::Index(ValidatorIndex(0))];
    asked.extend(all.pubkeys().iter().map(|k| ValidatorId::Pubkey(*k)));
    let asked = &asked;
    let found = pool
        .call(
            "/eth/v1/beacon/states/{state_id}/validators",
            |c| async move { c.validators(StateId::Head, asked).await },
        )
        .await?
        .ok_or_else(|| anyhow::anyhow!("the head state is not served (404)"))?;
    let known = u64::from(found.iter().any(|v| v.index.0 == 0));
    let registry = match all.max_index() {
        Some(max) => {
            // The head state was served just above; should a node stop
            // serving it now, the indices asked count as absent.
            crate::watchlist::registry_len(known, max, |i| async move {
                Ok(crate::watchlist::validator_exists(pool, i)
                    .await?
                    .unwrap_or(false))
            })
            .await?
        }
        None => known,
    };
    let keys: Vec<Pubkey> = found.iter().map(|v| v.pubkey).collect();
    let on_chain = IdSet::new(
        if registry == 0 {
            Vec::new()
        } else {
            vec![(0, registry - 1)]
        },
        keys,
    );
    let missing = crate::config::missing_from_registry(config, &on_chain);
    if missing.is_empty() {
        println!("validators: all {} found on chain", all.len());
        return Ok(true);
    }
    for (place, absent) in &missing {
        println!(
            "validators: FAILED: {place}: not on chain (a typo, another network, or a deposit \
             not yet processed): {absent}"
        );
    }
    Ok(false)
}
