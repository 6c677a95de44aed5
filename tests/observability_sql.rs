//! The Grafana dashboards against the real systems they read, without
//! Grafana: their JSON structure and provisioning, and EVERY SQL query of
//! `dashboards/*.json` run against a fresh PostgreSQL that the real daemon
//! path (`app::run_with`) filled while watching the demo's simulated
//! network live: misses, a missed proposal, a slashing, late and wrong
//! votes, sync duties.
//!
//! Grafana's macros become plain SQL over the dashboard's time range (the
//! simulated chain's genesis to its last epoch), and its variables the
//! values Grafana would use: a query variable runs its own query and must
//! return values. Hidden query variables are the network's constants
//! (`genesis_time`, `seconds_per_epoch`) read from the table `meta`: each
//! must give exactly one value, and the epoch length and genesis must be
//! the simulated network's, or the time axis would be wrong. Each query
//! must run for every value of the validator variable, return rows for
//! some, and one validator must fill every panel.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod obs_support;

use std::collections::{BTreeMap, BTreeSet};

use obs_support::*;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Row;
use valwatch::demo::{Demo, DemoOptions};

/// valwatch judges epochs 0..=LAST_EPOCH for good: epoch 4 holds the
/// scenario's last event (the slashing).
const LAST_EPOCH: u64 = 5;

/// 400 ms slots: the run takes about 25 s (as in tests/demo_truth.rs).
const SLOT_MS: u64 = 400;

/// The dashboard's time range, in unix seconds.
#[derive(Clone, Copy, Debug)]
struct Range {
    from: u64,
    to: u64,
}

/// `text` split at its top-level commas (not inside parentheses or quotes).
fn split_args(text: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quoted) = (Vec::new(), String::new(), 0, false);
    for c in text.chars() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Seconds in a Grafana interval such as `5m`, `'1h'` or `30s`.
fn interval_seconds(text: &str) -> Option<u64> {
    let t = text.trim().trim_matches('\'');
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = t[..split].parse().ok()?;
    let unit = match &t[split..] {
        "ms" => return Some((n / 1000).max(1)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(n * unit)
}

/// Grafana's PostgreSQL macros as plain SQL over `range`; `Err` names a
/// macro this does not know (so a new one cannot slip through untested).
fn expand_macros(sql: &str, range: Range) -> Result<String, String> {
    let (f, t) = (range.from, range.to);
    let mut out = String::new();
    let mut rest = sql;
    while let Some(i) = rest.find("$__") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 3..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        let mut tail = &after[name_len..];
        let args = if let Some(inner) = tail.strip_prefix('(') {
            let mut depth = 1;
            let end = inner
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(j, _)| j)
                .ok_or_else(|| format!("unclosed $__{name}("))?;
            tail = &inner[end + 1..];
            split_args(&inner[..end])
        } else {
            Vec::new()
        };
        let arg = |k: usize| {
            args.get(k)
                .cloned()
                .ok_or_else(|| format!("$__{name} needs argument {}", k + 1))
        };
        let group = |k: usize| {
            let a = arg(k)?;
            interval_seconds(&a).ok_or_else(|| format!("$__{name}: interval {a:?}"))
        };
        let text = match name {
            "timeFilter" => format!(
                "{} BETWEEN to_timestamp({f}) AND to_timestamp({t})",
                arg(0)?
            ),
            "timeFrom" => format!("to_timestamp({f})"),
            "timeTo" => format!("to_timestamp({t})"),
            "unixEpochFilter" => format!("{0} >= {f} AND {0} <= {t}", arg(0)?),
            "unixEpochFrom" => f.to_string(),
            "unixEpochTo" => t.to_string(),
            "unixEpochNanoFilter" => {
                format!("{0} >= {f}000000000 AND {0} <= {t}000000000", arg(0)?)
            }
            "unixEpochNanoFrom" => format!("{f}000000000"),
            "unixEpochNanoTo" => format!("{t}000000000"),
            "time" => format!("{} AS \"time\"", arg(0)?),
            "timeEpoch" => format!("extract(epoch from {}) AS \"time\"", arg(0)?),
            "timeGroup" | "timeGroupAlias" => {
                let s = group(1)?;
                let g = format!(
                    "to_timestamp(floor(extract(epoch from {})/{s})*{s})",
                    arg(0)?
                );
                if name == "timeGroupAlias" {
                    format!("{g} AS \"time\"")
                } else {
                    g
                }
            }
            "unixEpochGroup" | "unixEpochGroupAlias" => {
                let s = group(1)?;
                let g = format!("floor({}/{s})*{s}", arg(0)?);
                if name == "unixEpochGroupAlias" {
                    format!("{g} AS \"time\"")
                } else {
                    g
                }
            }
            "interval" => "'1 minute'::interval".to_string(),
            "interval_ms" => "60000".to_string(),
            other => return Err(format!("unknown macro $__{other}")),
        };
        out.push_str(&text);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// A query of a dashboard, where it comes from.
struct Query {
    origin: String,
    sql: String,
}

/// The SQL of a dashboard: panel targets' `rawSql` (PostgreSQL panels).
fn panel_queries(file: &str, d: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(sql) = t["rawSql"].as_str() {
                out.push(Query {
                    origin: format!(
                        "{file} panel {:?} target {}",
                        p["title"].as_str().unwrap_or("?"),
                        t["refId"].as_str().unwrap_or("?")
                    ),
                    sql: sql.to_string(),
                });
            }
        }
    }
    out
}

/// Whether any of `queries` refers to `$name`.
fn sql_uses_variable(queries: &[Query], name: &str) -> bool {
    let token = format!("${name}");
    queries.iter().any(|q| {
        q.sql.match_indices(&token).any(|(i, _)| {
            !q.sql[i + token.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
    })
}

fn is_postgres(ds: &Value) -> bool {
    ds["type"]
        .as_str()
        .is_some_and(|t| t == "grafana-postgresql-datasource" || t == "postgres")
}

/// Rows of `sql`, or the database's error.
async fn rows(pool: &sqlx::PgPool, sql: &str) -> Result<usize, String> {
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .map(|r| r.len())
        .map_err(|e| e.to_string())
}

#[sqlx::test(migrations = false)]
async fn every_dashboard_sql_query_returns_rows_from_a_database_the_daemon_filled(
    pool_opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    // The daemon's own path into this test's fresh database.
    let db_url = format!(
        "postgres://{}@{}:{}/{}",
        conn.get_username(),
        conn.get_host(),
        conn.get_port(),
        conn.get_database().expect("sqlx::test names the database")
    );
    // The demo's network, live: proposer duties are only served around
    // the current epoch, so only a daemon that watches while it happens
    // can attribute the missed proposal.
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(DemoOptions {
        epochs: Some(LAST_EPOCH + 1),
        listen: None,
        data_dir: Some(dir.path().to_path_buf()),
        slot_ms: SLOT_MS,
    })
    .await
    .unwrap();
    let mut config = demo.config().unwrap();
    config.database_url = Some(db_url);
    valwatch::app::run_with(
        config,
        Some(valwatch::chain::Epoch(LAST_EPOCH)),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    let scenario = demo.chain().read().unwrap().scenario().clone();
    demo.shutdown().await;

    let pool = pool_opts.connect_with(conn).await.unwrap();
    // The scenario must have left what the panels show, or rows prove little.
    for (what, sql) in [
        (
            "a missed attestation",
            "SELECT 1 FROM attestations WHERE status = 'missed'",
        ),
        (
            "a missed proposal",
            "SELECT 1 FROM proposals WHERE status = 'missed'",
        ),
        (
            "a slashed validator",
            "SELECT 1 FROM balances WHERE slashed",
        ),
        ("sync duties", "SELECT 1 FROM sync_participation"),
    ] {
        let dump = async {
            let mut out = String::new();
            for t in [
                "epochs",
                "attestations",
                "proposals",
                "balances",
                "sync_participation",
                "slashings",
            ] {
                let n = rows(&pool, &format!("SELECT 1 FROM {t}"))
                    .await
                    .unwrap_or(0);
                out.push_str(&format!("{t}: {n} rows; "));
            }
            out
        };
        if rows(&pool, sql).await.unwrap() == 0 {
            panic!("no {what} stored ({})", dump.await);
        }
    }

    // The time range of the run: genesis to now (whole seconds).
    let genesis = scenario.genesis_time;
    let epoch_ms = scenario.slot_duration_ms * scenario.slots_per_epoch;
    let range = Range {
        from: genesis,
        to: genesis + ((LAST_EPOCH + 2) * epoch_ms).div_ceil(1000),
    };
    // What the hidden constants must read from `meta`: this network's.
    let network: BTreeMap<&str, f64> = [
        ("genesis_time", genesis as f64),
        ("seconds_per_epoch", epoch_ms as f64 / 1000.0),
    ]
    .into_iter()
    .collect();

    let mut failures = Vec::new();
    let mut total = 0;
    let prepare = |sql: &str, vars: &BTreeMap<String, String>| -> Result<String, String> {
        let expanded = expand_macros(sql, range)?;
        let s = substitute_vars(&expanded, &|n| vars.get(n).cloned());
        match s.find('$') {
            Some(i) => Err(format!("unsubstituted variable at {:?}", &s[i..])),
            None => Ok(s),
        }
    };
    for (file, d) in dashboards() {
        let queries = panel_queries(&file, &d);
        if queries.is_empty() {
            continue;
        }
        total += queries.len();
        // Constants and the network's values first; query variables run
        // their own SQL and give every value they list.
        let mut fixed: BTreeMap<String, String> = BTreeMap::new();
        let mut listed: Vec<(String, Vec<String>)> = Vec::new();
        for v in variables(&d) {
            let name = v["name"].as_str().unwrap_or("?").to_string();
            match v["type"].as_str().unwrap_or("") {
                // The data source is chosen in Grafana; SQL never names it.
                "datasource" => {}
                "query" if is_postgres(&v["datasource"]) => {
                    let sql = v["definition"]
                        .as_str()
                        .or(v["query"].as_str())
                        .unwrap_or("");
                    let values = match prepare(sql, &fixed) {
                        Ok(s) => sqlx::query(&s)
                            .fetch_all(&pool)
                            .await
                            .map_err(|e| e.to_string())
                            .map(|rows| {
                                rows.iter()
                                    .filter_map(|r| {
                                        r.try_get::<i64, _>(0)
                                            .map(|x| x.to_string())
                                            .or_else(|_| r.try_get::<String, _>(0))
                                            .ok()
                                    })
                                    .collect::<Vec<_>>()
                            }),
                        Err(e) => Err(e),
                    };
                    let hidden = v["hide"].as_u64() == Some(2);
                    match values {
                        // A hidden variable is a constant of the network:
                        // one value, and the right one.
                        Ok(vs) if hidden => match vs.as_slice() {
                            [one] => {
                                match (network.get(name.as_str()), one.parse::<f64>()) {
                                    (Some(want), Ok(got)) if (got - want).abs() < 1e-9 => {}
                                    (want, got) => failures.push(format!(
                                        "{file} variable ${name} = {one:?} ({got:?}), the network's is {want:?}"
                                    )),
                                }
                                fixed.insert(name, one.clone());
                            }
                            _ => failures.push(format!(
                                "{file} hidden variable ${name}: {} values, not one",
                                vs.len()
                            )),
                        },
                        Ok(vs) if !vs.is_empty() => listed.push((name, vs)),
                        Ok(_) => failures.push(format!("{file} variable ${name}: no values")),
                        Err(e) => failures.push(format!("{file} variable ${name}: {e}")),
                    }
                }
                other => failures.push(format!(
                    "{file} variable ${name}: type {other:?} is not handled by this test"
                )),
            }
        }
        for name in network.keys() {
            if sql_uses_variable(&queries, name) && !fixed.contains_key(*name) {
                failures.push(format!(
                    "{file}: ${name} is used but not read from the database"
                ));
            }
        }
        // One variable listing values (the validator); more would need a
        // product of their values.
        assert!(listed.len() <= 1, "{file}: several query variables");
        let choices: Vec<BTreeMap<String, String>> = match listed.first() {
            None => vec![fixed.clone()],
            Some((name, values)) => values
                .iter()
                .map(|val| {
                    let mut m = fixed.clone();
                    m.insert(name.clone(), val.clone());
                    m
                })
                .collect(),
        };
        // For each query, the choices it returned rows for.
        let mut filled: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); queries.len()];
        for (qi, q) in queries.iter().enumerate() {
            let mut failed = false;
            for (ci, vars) in choices.iter().enumerate() {
                let sql = match prepare(&q.sql, vars) {
                    Ok(s) => s,
                    Err(e) => {
                        failures.push(format!("{}: {e}", q.origin));
                        failed = true;
                        break;
                    }
                };
                match rows(&pool, &sql).await {
                    Ok(0) => {}
                    Ok(_) => {
                        filled[qi].insert(ci);
                    }
                    Err(e) => {
                        failures.push(format!("{}: {e}\n  {sql}", q.origin));
                        failed = true;
                        break;
                    }
                }
            }
            if filled[qi].is_empty() && !failed {
                failures.push(format!("{}: no rows for any variable value", q.origin));
            }
        }
        let full: Vec<&BTreeMap<String, String>> = (0..choices.len())
            .filter(|ci| filled.iter().all(|f| f.contains(ci)))
            .map(|ci| &choices[ci])
            .collect();
        match full.first() {
            Some(vars) => eprintln!(
                "{file}: {} queries; every panel has rows for {:?} ({} of {} choices)",
                queries.len(),
                listed.first().map(|(n, _)| vars[n].clone()),
                full.len(),
                choices.len()
            ),
            None => failures.push(format!("{file}: no variable value fills every panel")),
        }
    }
    assert!(
        total >= 5,
        "found only {total} SQL queries: is the scan broken?"
    );
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The data sources the provisioning file defines: uid -> type.
fn provisioned_datasources() -> BTreeMap<String, String> {
    let path = root().join("dashboards/provisioning/datasources.yml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc["apiVersion"].as_u64(), Some(1), "{}", path.display());
    doc["datasources"]
        .as_sequence()
        .expect("datasources: a list")
        .iter()
        .map(|d| {
            for key in ["name", "uid", "type", "url"] {
                assert!(
                    d[key].as_str().is_some_and(|s| !s.is_empty()),
                    "data source without {key}: {d:?}"
                );
            }
            (
                d["uid"].as_str().unwrap().to_string(),
                d["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn dashboards_are_well_formed_and_their_provisioning_points_at_what_exists() {
    let sources = provisioned_datasources();
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    let all = dashboards();
    assert!(
        all.len() >= 3,
        "dashboards: {:?}",
        all.iter().map(|d| &d.0).collect::<Vec<_>>()
    );
    for (file, d) in &all {
        let mut p = |m: String| problems.push(format!("{file}: {m}"));
        match d["uid"].as_str() {
            // Grafana refuses uids over 40 characters.
            Some(u) if !u.is_empty() && u.len() <= 40 => {
                if !uids.insert(u.to_string()) {
                    p(format!("uid {u} used twice"));
                }
            }
            other => p(format!("bad uid {other:?}")),
        }
        match d["title"].as_str() {
            Some(t) if !t.is_empty() => {
                if !titles.insert(t.to_string()) {
                    p(format!("title {t:?} used twice"));
                }
            }
            other => p(format!("bad title {other:?}")),
        }
        if !d["schemaVersion"].is_u64() {
            p("no schemaVersion".into());
        }
        let vars = variables(d);
        let ds_vars: BTreeMap<&str, &str> = vars
            .iter()
            .filter(|v| v["type"] == "datasource")
            .map(|v| {
                (
                    v["name"].as_str().unwrap_or(""),
                    v["query"].as_str().unwrap_or(""),
                )
            })
            .collect();
        // A data source reference: a provisioned uid of the same type, or
        // a datasource variable of that type.
        let check_ds = |what: &str, ds: &Value, p: &mut dyn FnMut(String)| {
            let (Some(uid), Some(ty)) = (ds["uid"].as_str(), ds["type"].as_str()) else {
                p(format!("{what}: data source without uid and type: {ds}"));
                return;
            };
            if let Some(var) = uid.strip_prefix("${").and_then(|u| u.strip_suffix('}')) {
                match ds_vars.get(var) {
                    Some(t) if *t == ty => {}
                    other => p(format!(
                        "{what}: ${{{var}}} is no {ty} data source variable ({other:?})"
                    )),
                }
            } else {
                match sources.get(uid) {
                    Some(t) if t == ty => {}
                    other => p(format!(
                        "{what}: uid {uid} ({ty}) is not provisioned ({other:?})"
                    )),
                }
            }
        };
        // Imported by hand, into a Grafana whose data sources have other
        // uids, a dashboard must still work: it picks its data source with
        // a variable and every panel and query uses that variable; and
        // nothing about the network is a constant to edit.
        if ds_vars.is_empty() {
            p("no datasource variable".into());
        }
        let uses_variable = |ds: &Value| {
            ds["uid"]
                .as_str()
                .is_some_and(|u| u.starts_with("${") && u.ends_with('}'))
        };
        for v in &vars {
            if v["type"] == "constant" {
                p(format!(
                    "variable {}: a constant; network values come from the database",
                    v["name"]
                ));
            }
        }
        for v in vars.iter().filter(|v| v["type"] == "query") {
            check_ds(&format!("variable {}", v["name"]), &v["datasource"], &mut p);
            if !uses_variable(&v["datasource"]) {
                p(format!(
                    "variable {}: fixed data source {}",
                    v["name"], v["datasource"]
                ));
            }
        }
        let panels = panels(d);
        if panels.iter().all(|x| x["type"] == "row") {
            p("no panels".into());
        }
        let mut ids = BTreeSet::new();
        for x in &panels {
            let title = x["title"].as_str().unwrap_or("?");
            let what = format!("panel {title:?}");
            match x["id"].as_u64() {
                Some(id) if ids.insert(id) => {}
                other => p(format!("{what}: id {other:?} missing or repeated")),
            }
            let g = &x["gridPos"];
            if !["h", "w", "x", "y"].iter().all(|k| g[k].is_u64()) {
                p(format!("{what}: gridPos {g}"));
            }
            if x["type"] == "row" || x["type"] == "text" {
                continue;
            }
            check_ds(&what, &x["datasource"], &mut p);
            if !uses_variable(&x["datasource"]) {
                p(format!("{what}: fixed data source {}", x["datasource"]));
            }
            let targets = x["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                p(format!("{what}: no targets"));
            }
            let mut refs = BTreeSet::new();
            for t in &targets {
                if !t["refId"]
                    .as_str()
                    .is_some_and(|r| refs.insert(r.to_string()))
                {
                    p(format!("{what}: refId missing or repeated: {t}"));
                }
                if t["expr"]
                    .as_str()
                    .or(t["rawSql"].as_str())
                    .is_none_or_empty()
                {
                    p(format!("{what}: target without expr or rawSql"));
                }
            }
        }
    }

    // The dashboards provider: a file provider loading a folder.
    let path = root().join("dashboards/provisioning/dashboards.yml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc["apiVersion"].as_u64(), Some(1));
    let providers = doc["providers"].as_sequence().expect("providers: a list");
    assert!(!providers.is_empty());
    for pr in providers {
        if pr["type"].as_str() != Some("file")
            || !pr["options"]["path"]
                .as_str()
                .is_some_and(|p| p.starts_with('/'))
        {
            problems.push(format!(
                "dashboards.yml: provider {pr:?} is not a file provider with an absolute path"
            ));
        }
    }
    // The README beside them names each dashboard file, and only those.
    let readme = std::fs::read_to_string(root().join("dashboards/README.md")).unwrap();
    let files: BTreeSet<String> = all.iter().map(|(f, _)| f.clone()).collect();
    let named: BTreeSet<String> = readme
        .split('`')
        .filter(|w| w.ends_with(".json"))
        .map(str::to_string)
        .collect();
    if named != files {
        problems.push(format!(
            "dashboards/README.md names {named:?}, the folder holds {files:?}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

trait EmptyStr {
    fn is_none_or_empty(&self) -> bool;
}

impl EmptyStr for Option<&str> {
    fn is_none_or_empty(&self) -> bool {
        self.is_none_or(|s| s.trim().is_empty())
    }
}

#[test]
fn grafana_macros_become_plain_sql() {
    let r = Range { from: 100, to: 200 };
    let cases = [
        ("WHERE $__timeFilter(t)", "WHERE t BETWEEN to_timestamp(100) AND to_timestamp(200)"),
        ("$__timeFrom() $__timeTo()", "to_timestamp(100) to_timestamp(200)"),
        ("WHERE $__unixEpochFilter(e)", "WHERE e >= 100 AND e <= 200"),
        (
            "epoch BETWEEN ($__unixEpochFrom() - 10) / 5 AND $__unixEpochTo()",
            "epoch BETWEEN (100 - 10) / 5 AND 200",
        ),
        (
            "SELECT $__timeGroupAlias(t, '5m'), $__unixEpochGroup(e, 1h)",
            "SELECT to_timestamp(floor(extract(epoch from t)/300)*300) AS \"time\", floor(e/3600)*3600",
        ),
        ("x = $validator", "x = $validator"),
    ];
    for (sql, want) in cases {
        assert_eq!(expand_macros(sql, r).unwrap(), want, "{sql}");
    }
    assert!(expand_macros("$__nonsense(x)", r).is_err());
    assert!(expand_macros("$__timeGroup(t)", r).is_err());
    assert_eq!(split_args("a, f(b, c), 'd,e'"), ["a", "f(b, c)", "'d,e'"]);
}
