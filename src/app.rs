//! Wiring: builds the pool, the store and the monitor from a `Config`, runs
//! them with one cancellation token, and shuts down cleanly on SIGINT or
//! SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::beacon::events::{follow_events, SeenBlocks, SeenSlashings};
use crate::beacon::{redact_url, BeaconPool};
use crate::chain::{Epoch, SystemClock};
use crate::config::{Config, Overrides};
use crate::http::HttpState;
use crate::metrics::Metrics;
use crate::monitor::{Monitor, Observers};
use crate::status::{Policy, StatusBoard};
use crate::store::Store;
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
    if let Some(u) = url {
        return Ok(u);
    }
    let raw = crate::config::load_raw(config)?;
    if let Some(u) = raw.database.url {
        return Ok(u);
    }
    let dir = data_dir
        .or(raw.data_dir)
        .unwrap_or_else(|| "valwatch-data".into());
    Ok(format!(
        "sqlite://{}",
        Path::new(&dir).join("valwatch.sqlite").display()
    ))
}

/// `valwatch run`.
pub async fn run(config: Config, until_epoch: Option<Epoch>) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    run_with(config, until_epoch, cancel).await
}

pub async fn run_with(
    config: Config,
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
    let spec = pool.identify().await.context("no usable beacon node")?;
    store
        .check_network(spec.genesis_validators_root)
        .await
        .context("the database belongs to another network")?;
    store
        .record_chain_constants(&spec)
        .await
        .context("recording the chain constants in the database")?;
    pool.check_health().await;

    let mut watchlist = Watchlist::new(config.groups.clone(), config.expected_offline.clone());
    watchlist.resolve(&pool).await?;
    let watched = watchlist.watched();
    if watched.is_empty() {
        bail!("none of the configured validators exists on this chain");
    }
    let groups = watchlist.group_specs();
    let expected_offline = watchlist.expected_offline();
    let epoch_duration = Duration::from_millis(spec.slot_duration_ms * spec.slots_per_epoch);
    let board = Arc::new(StatusBoard::new(
        std::time::SystemTime::now(),
        groups.clone(),
        expected_offline,
        Policy::for_epoch_duration(epoch_duration),
    ));
    let metrics = Arc::new(Metrics::new(config.per_validator_metrics_limit)?);
    {
        let m = metrics.clone();
        pool.set_request_observer(Arc::new(move |node, endpoint, elapsed, error| {
            m.record_node_request(node, endpoint, elapsed, error)
        }));
    }
    metrics.set_watched(
        &groups
            .iter()
            .map(|g| (g.name.clone(), g.validators.len()))
            .collect(),
    );
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        metrics.set_start_time(d.as_secs());
    }
    let clock: Arc<dyn crate::chain::Clock> = Arc::new(SystemClock);
    let server = match config.listen {
        Some(addr) => {
            let state = HttpState {
                board: board.clone(),
                metrics: metrics.clone(),
                clock: clock.clone(),
            };
            let server = crate::http::serve(addr, state, cancel.clone()).await?;
            info!(addr = %server.local_addr, "HTTP status, readiness and metrics");
            Some(server)
        }
        None => None,
    };

    let wall_epoch = spec
        .slot_at(std::time::SystemTime::now())
        .map(|s| spec.epoch_of(s))
        .unwrap_or(Epoch(0));
    let start = match store.cursor().await? {
        Some(c) => Epoch(c.0 + 1),
        None => config.from_epoch.unwrap_or(wall_epoch),
    };
    info!(
        validators = watched.len(),
        groups = config.groups.len(),
        start_epoch = start.0,
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
    .with_metrics(metrics.clone());
    let alerts = Some(Arc::new(engine));
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(engine) = &alerts {
        let engine = engine.clone();
        let c = cancel.clone();
        tasks.spawn(async move {
            if let Err(e) = engine.run_outbox(c).await {
                warn!(error = %e, "alert delivery stopped");
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
        .with_watchlist(watchlist);
    let result = monitor.run(cancel.clone(), poll, until_epoch).await;
    cancel.cancel();
    while streams.join_next().await.is_some() {}
    while tasks.join_next().await.is_some() {}
    if let Some(server) = server {
        if let Err(e) = server.wait().await {
            warn!(error = %e, "HTTP server stopped with an error");
        }
    }
    result?;
    info!("valwatch stopped");
    Ok(())
}

/// Cancels `cancel` on SIGINT or SIGTERM.
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

/// `valwatch check-config`: prints every problem; tries nodes and database.
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
    for node in &config.beacon_nodes {
        let pool = BeaconPool::new(vec![node.clone()])?;
        match pool.identify().await {
            Ok(spec) => println!(
                "beacon node {}: ok (genesis {}, {} slots/epoch)",
                node.name, spec.genesis_time, spec.slots_per_epoch
            ),
            Err(e) => {
                ok = false;
                println!("beacon node {}: FAILED: {e}", node.name);
            }
        }
    }
    match open_store(&config.effective_database_url()).await {
        Ok(s) => match s.ping().await {
            Ok(()) => println!("database: ok"),
            Err(e) => {
                ok = false;
                println!("database: FAILED: {e}");
            }
        },
        Err(e) => {
            ok = false;
            println!("database: FAILED: {e:#}");
        }
    }
    Ok(ok)
}
