//! `valwatch bench`: what one epoch costs on a mainnet-sized network, for
//! several numbers of watched validators. The parent generates the chain
//! once (pre-generated mode, served over loopback HTTP) and runs each size
//! in a child process of itself, so that each size's peak memory (VmHWM,
//! which cannot be reset) is its own and excludes the simulator.
//!
//! The measured path is the monitor's: the watched validators' attester
//! duties, `collect::gather_epoch` and the proposer duties (fetch), `monitor::judge_epoch` (judge), the previous
//! balances and `Store::write_epoch` into a fresh PostgreSQL database
//! (store). Requests and bytes are counted by the simulated node itself.
//!
//! Owns: the benchmark's processes, databases and table. Must not: judge
//! or store by other means than the monitor's path.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::beacon::{BeaconPool, NodeConfig, NodeRole};
use crate::chain::{Epoch, Slot, ValidatorIndex};
use crate::cli::BenchArgs;
use crate::collect::{self, BlockCache, ChainFollower};
use crate::sim::{
    Behaviour, BehaviourKind, NodeOptions, Scenario, ServedCount, SimNode, ValidatorSet, Windows,
    SERVED_PATH,
};

/// The local PostgreSQL of the development setup (trust auth).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// From a solo staker (1, 10: committees read by duty slot only) to every
/// validator of a mainnet-sized network.
pub const DEFAULT_SIZES: [u64; 7] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];
/// About mainnet's active set (≈1.0 M validators in 2025).
pub const DEFAULT_NETWORK: u64 = 1_000_000;
/// Two epochs per size: the first has no previous balances, the second
/// does (balance changes), and together they stay within minutes.
pub const DEFAULT_EPOCHS: u64 = 2;

/// A million-validator POST and its answer take seconds on a loaded host;
/// the default node timeout (10 s) is for real nodes, not this.
const BENCH_NODE_TIMEOUT: Duration = Duration::from_secs(300);

/// One judged epoch.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EpochCost {
    pub epoch: u64,
    pub fetch_ms: f64,
    pub judge_ms: f64,
    pub store_ms: f64,
    pub requests: u64,
    pub bytes_received: u64,
    pub rows_written: u64,
    /// `WriteStats::approx_bytes`: the values sent to the database.
    pub payload_bytes: u64,
    /// Growth of `pg_database_size` over the write (tables and indexes).
    pub disk_bytes: i64,
}

/// One size, measured in its own process.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SizeCost {
    pub watched: u64,
    pub epochs: Vec<EpochCost>,
    /// Following the head over the whole pre-generated chain once
    /// (headers), which the live monitor spreads over the epochs.
    pub follow_ms: f64,
    pub follow: ServedCount,
    /// VmHWM of the child process (KiB).
    pub peak_kib: u64,
    /// `pg_database_size` after the last epoch (tables and indexes).
    #[serde(default)]
    pub db_bytes_after: u64,
}

/// PURE: the `--format json` line of one size: per-epoch means of the
/// measured epochs, the database's size after the run and the peak RSS.
pub fn json_line(c: &SizeCost) -> serde_json::Value {
    let e = &c.epochs;
    serde_json::json!({
        "watched": c.watched,
        "epochs": e.len(),
        "store": "postgres",
        "mode": "final",
        "fetch_ms": mean(e, |x| x.fetch_ms).round(),
        "judge_ms": mean(e, |x| x.judge_ms).round(),
        "store_ms": mean(e, |x| x.store_ms).round(),
        "requests": mean(e, |x| x.requests as f64).round(),
        "received_bytes": mean(e, |x| x.bytes_received as f64).round(),
        "rows": mean(e, |x| x.rows_written as f64).round(),
        "disk_bytes": c.db_bytes_after,
        "peak_rss_bytes": c.peak_kib * 1024,
    })
}

/// `valwatch bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let (Some(size), Some(node)) = (args.child, args.beacon_node.as_deref()) {
        let cost = measure(
            size,
            node,
            &args.database_url,
            args.epochs,
            args.whole_epoch_committees,
        )
        .await?;
        println!("{}", serde_json::to_string(&cost)?);
        return Ok(());
    }
    if args.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    let json = match args.format.as_str() {
        "table" => false,
        "json" => true,
        other => bail!("--format: {other:?} is neither table nor json"),
    };
    if let Some(&too_many) = args.sizes.iter().find(|&&s| s > args.network) {
        bail!(
            "--sizes: {too_many} watched validators do not fit a network of {}",
            args.network
        );
    }
    let scenario = bench_scenario(args.network);
    let pregenerated = args.epochs + 2;
    // Progress goes to stderr when stdout carries JSON lines.
    let say = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(format!(
        "generating {pregenerated} epochs of a network of {} validators (32 slots, {} committees per slot)…",
        args.network,
        // The simulator's rule: active / 32 / TARGET_COMMITTEE_SIZE, 1..=64.
        (args.network / 32 / 128).clamp(1, 64)
    ));
    let started = Instant::now();
    let node = SimNode::start(
        scenario,
        NodeOptions {
            // Past epochs' duties too: the live monitor fetched them ahead.
            windows: Windows {
                proposer_past: pregenerated,
                ..Windows::default()
            },
            ..NodeOptions::pregenerated(pregenerated)
        },
    )
    .await?;
    say(format!(
        "generated in {:.1} s",
        started.elapsed().as_secs_f64()
    ));

    let exe = std::env::current_exe().context("cannot find the valwatch executable")?;
    let mut results = Vec::new();
    for &size in &args.sizes {
        let out = tokio::process::Command::new(&exe)
            .arg("bench")
            .arg("--child")
            .arg(size.to_string())
            .arg("--beacon-node")
            .arg(node.base_url())
            .arg("--database-url")
            .arg(&args.database_url)
            .arg("--epochs")
            .arg(args.epochs.to_string())
            .args(
                args.whole_epoch_committees
                    .then_some("--whole-epoch-committees"),
            )
            .stderr(std::process::Stdio::inherit())
            .output()
            .await
            .context("cannot run the benchmark child process")?;
        if !out.status.success() {
            bail!(
                "the run with {size} watched validators failed ({})",
                out.status
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or("");
        let cost: SizeCost = serde_json::from_str(line)
            .with_context(|| format!("unreadable child output {line:?}"))?;
        if json {
            println!("{}", json_line(&cost));
        } else {
            println!("{}", row(&cost));
        }
        results.push(cost);
    }
    if !json {
        println!();
        println!("{}", table(&results));
    }
    node.shutdown().await;
    Ok(())
}

/// Mainnet shape, mostly healthy, with about 1% of every prefix size
/// offline so that misses and balance losses are part of the work.
pub fn bench_scenario(network: u64) -> Scenario {
    let offline: Vec<(u64, u64)> = [1_000u64, 10_000, 100_000, 1_000_000]
        .iter()
        .filter(|&&n| n <= network)
        .map(|&n| (n - n / 100, n - 1))
        .collect();
    let mut behaviours = Vec::new();
    if !offline.is_empty() {
        behaviours.push(Behaviour::new(
            ValidatorSet(offline),
            BehaviourKind::Offline,
        ));
    }
    Scenario {
        seed: 1,
        validators: network,
        slots_per_epoch: 32,
        slot_duration_ms: 12_000,
        behaviours,
        ..Scenario::default()
    }
}

/// Reads the simulated node's counters.
async fn served(http: &reqwest::Client, base: &str) -> anyhow::Result<ServedCount> {
    Ok(http
        .get(format!("{base}{SERVED_PATH}"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// The child: one size, a fresh database, `epochs` epochs from epoch 1.
async fn measure(
    size: u64,
    node_url: &str,
    admin_url: &str,
    epochs: u64,
    whole_epoch: bool,
) -> anyhow::Result<SizeCost> {
    let name = format!("valwatch_bench_{}_{size}", std::process::id());
    let url = crate::store::create_postgres_database(admin_url, &name)
        .await
        .context("cannot create the benchmark database")?;
    let result = measure_in(size, node_url, &url, epochs, whole_epoch).await;
    if let Err(e) = crate::store::drop_postgres_database(admin_url, &name).await {
        tracing::warn!(error = %crate::causes(&e), database = %name, "cannot drop the benchmark database");
    }
    result
}

async fn measure_in(
    size: u64,
    node_url: &str,
    db_url: &str,
    epochs: u64,
    whole_epoch: bool,
) -> anyhow::Result<SizeCost> {
    let store = crate::app::open_store(db_url).await?;
    let pool = BeaconPool::new(vec![NodeConfig {
        name: "sim".into(),
        url: url::Url::parse(node_url)?,
        role: NodeRole::Private,
        headers: Vec::new(),
        timeout: BENCH_NODE_TIMEOUT,
        max_requests_per_second: None,
    }])?;
    let spec = pool.identify().await?;
    store.check_network(spec.genesis_validators_root).await?;
    pool.check_health().await;
    let http = reqwest::Client::new();
    let watched: Vec<ValidatorIndex> = (0..size).map(ValidatorIndex).collect();

    let first = Epoch(1);
    let floor = Slot(spec.start_slot(first).0.saturating_sub(1));
    let mut follower = ChainFollower::new(floor);
    let mut cache = BlockCache::default();
    let before = served(&http, node_url).await?;
    let t = Instant::now();
    follower.update(&pool).await?;
    let follow_ms = ms(t.elapsed());
    let follow = served(&http, node_url).await?.since(before);

    let mut out = SizeCost {
        watched: size,
        follow_ms,
        follow,
        ..SizeCost::default()
    };
    for e in first.0..first.0 + epochs {
        let epoch = Epoch(e);
        let before = served(&http, node_url).await?;
        let t = Instant::now();
        // As the monitor does: the watched validators' attester duties let
        // it read only their slots' committees.
        let ids = &watched;
        let attester =
            if whole_epoch || !collect::attester_duties_worth_asking(&spec, watched.len()) {
                None
            } else {
                pool.call(
                    "/eth/v1/validator/duties/attester/{epoch}",
                    |c| async move { c.attester_duties(epoch, ids).await },
                )
                .await
                .ok()
            };
        let data = collect::gather_epoch(
            &pool,
            &spec,
            &follower,
            &mut cache,
            &watched,
            epoch,
            spec.inclusion_window_end(epoch),
            collect::Committees::Fresh,
            attester.as_ref(),
        )
        .await?;
        let duties = collect::fetch_proposer_duties(&pool, epoch).await.ok();
        let fetch_ms = ms(t.elapsed());
        let got = served(&http, node_url).await?.since(before);

        let t = Instant::now();
        let previous: HashMap<_, _> = store.latest_balances(&watched, epoch).await?;
        let read_ms = ms(t.elapsed());
        let t = Instant::now();
        let record = crate::monitor::judge_epoch(
            &spec,
            &data,
            &watched,
            duties.as_ref(),
            follower.orphans(),
            &previous,
            true,
        );
        let judge_ms = ms(t.elapsed());
        drop(data);
        let size_before = store.size_bytes().await?;
        let t = Instant::now();
        let stats = store.write_epoch(&record).await?;
        let store_ms = read_ms + ms(t.elapsed());
        let size_after = store.size_bytes().await?;
        let s = crate::monitor::summarize(&record);
        tracing::info!(
            watched = size,
            epoch = e,
            included = s.included,
            missed = s.missed,
            proposed = s.proposed,
            "bench epoch judged"
        );
        out.epochs.push(EpochCost {
            epoch: e,
            fetch_ms,
            judge_ms,
            store_ms,
            requests: got.requests,
            bytes_received: got.bytes,
            rows_written: stats.rows(),
            payload_bytes: stats.approx_bytes,
            disk_bytes: size_after as i64 - size_before as i64,
        });
        let next_floor = Slot(spec.start_slot(Epoch(e + 1)).0.saturating_sub(1));
        follower.raise_floor(next_floor);
        cache.prune_below(next_floor);
        cache.prune_committees_before(Epoch(e + 1), &spec);
    }
    out.db_bytes_after = store.size_bytes().await?;
    store.close().await;
    out.peak_kib = peak_kib().unwrap_or(0);
    Ok(out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// VmHWM (peak resident set) of this process in KiB; Linux only.
pub fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

/// PURE: the `VmHWM:` line of a `/proc/<pid>/status` text, in KiB.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn mean(costs: &[EpochCost], f: impl Fn(&EpochCost) -> f64) -> f64 {
    if costs.is_empty() {
        return 0.0;
    }
    costs.iter().map(f).sum::<f64>() / costs.len() as f64
}

fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = b;
    let mut u = 0;
    while v.abs() >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// One progress line per size.
fn row(c: &SizeCost) -> String {
    format!(
        "watched {:>9}: {:>8.0} ms/epoch (fetch {:.0}, judge {:.0}, store {:.0}), peak {}",
        c.watched,
        mean(&c.epochs, |e| e.fetch_ms + e.judge_ms + e.store_ms),
        mean(&c.epochs, |e| e.fetch_ms),
        mean(&c.epochs, |e| e.judge_ms),
        mean(&c.epochs, |e| e.store_ms),
        human_bytes(c.peak_kib as f64 * 1024.0)
    )
}

/// PURE: the result table (means over the measured epochs).
pub fn table(results: &[SizeCost]) -> String {
    let mut s = String::new();
    s.push_str(
        "| watched | fetch ms | judge ms | store ms | total ms | requests | received | rows | payload | on disk | peak RSS |\n",
    );
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for c in results {
        let e = &c.epochs;
        s.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.0} | {} | {} | {} |\n",
            c.watched,
            mean(e, |x| x.fetch_ms),
            mean(e, |x| x.judge_ms),
            mean(e, |x| x.store_ms),
            mean(e, |x| x.fetch_ms + x.judge_ms + x.store_ms),
            mean(e, |x| x.requests as f64),
            human_bytes(mean(e, |x| x.bytes_received as f64)),
            mean(e, |x| x.rows_written as f64),
            human_bytes(mean(e, |x| x.payload_bytes as f64)),
            human_bytes(mean(e, |x| x.disk_bytes as f64)),
            human_bytes(c.peak_kib as f64 * 1024.0),
        ));
    }
    if let Some(c) = results.first() {
        s.push_str(&format!(
            "\nPer epoch, mean of {} epochs. Following the head over the {} pre-generated epochs \
             took {} requests, {} ({:.0} ms) once per process, not counted above.\n",
            c.epochs.len(),
            c.epochs.len() + 2,
            c.follow.requests,
            human_bytes(c.follow.bytes as f64),
            c.follow_ms
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_resident_set_is_read_from_proc_status() {
        let status =
            "Name:\tvalwatch\nVmPeak:\t  900000 kB\nVmHWM:\t   123456 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(123_456));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn the_json_line_has_the_fields_of_issue_12() {
        let c = SizeCost {
            watched: 10,
            epochs: vec![
                EpochCost {
                    fetch_ms: 10.0,
                    requests: 4,
                    ..EpochCost::default()
                },
                EpochCost {
                    fetch_ms: 20.0,
                    requests: 6,
                    ..EpochCost::default()
                },
            ],
            peak_kib: 2,
            db_bytes_after: 1000,
            ..SizeCost::default()
        };
        let j = json_line(&c);
        let keys: Vec<&str> = j.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        for k in [
            "watched",
            "epochs",
            "store",
            "mode",
            "fetch_ms",
            "judge_ms",
            "store_ms",
            "requests",
            "received_bytes",
            "rows",
            "disk_bytes",
            "peak_rss_bytes",
        ] {
            assert!(keys.contains(&k), "{k} missing from {j}");
        }
        assert_eq!(
            (j["fetch_ms"].as_f64(), j["requests"].as_f64()),
            (Some(15.0), Some(5.0))
        );
        assert_eq!(
            (j["epochs"].as_u64(), j["peak_rss_bytes"].as_u64()),
            (Some(2), Some(2048))
        );
    }

    #[test]
    fn about_one_percent_of_each_size_is_offline() {
        let s = bench_scenario(1_000_000);
        s.check().unwrap();
        let off = &s.behaviours[0].validators;
        // 1 % of 1, 10 or 100 is at most one validator: no ratio to check.
        for n in DEFAULT_SIZES.into_iter().filter(|&n| n >= 1_000) {
            let count = (0..n).filter(|&v| off.contains(v)).count() as u64;
            assert!(count >= n / 100 && count <= n / 90, "{n}: {count}");
        }
        assert!(bench_scenario(5_000).check().is_ok());
    }
}
