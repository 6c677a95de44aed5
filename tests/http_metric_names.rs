//! Every metric named in `dashboards/` and `alerts/` exists in what
//! `/metrics` renders after a sample epoch, and every SQL query of the
//! validator dashboard uses only the tables and columns it assumes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod http_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_support::*;
use valwatch::beacon::NodeHealth;
use valwatch::chain::ValidatorIndex;
use valwatch::metrics::Metrics;
use valwatch::status::{Policy, StatusBoard};

/// Series Prometheus makes itself, not valwatch.
const PROMETHEUS_OWN: &[&str] = &["up"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p
            .extension()
            .is_some_and(|x| ext.contains(&x.to_str().unwrap()))
        {
            out.push(p);
        }
    }
}

/// Metric names (identifiers starting `valwatch_`, or bare names that
/// PromQL selects like `up{`) in one expression.
fn names_in(expr: &str, out: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &expr[start..i];
            let prev = expr[..start].chars().last();
            // Skip label values ("...") and template variables ($x).
            if word.starts_with("valwatch_") && prev != Some('$') {
                out.insert(word.to_string());
            }
            if PROMETHEUS_OWN.contains(&word) && expr[i..].starts_with('{') {
                out.insert(word.to_string());
            }
        } else {
            i += 1;
        }
    }
}

fn json_strings(v: &serde_json::Value, key: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match x {
                    serde_json::Value::String(s) if k == key => out.push(s.clone()),
                    _ => json_strings(x, key, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_strings(x, key, out)),
        _ => {}
    }
}

fn dashboards() -> Vec<(PathBuf, serde_json::Value)> {
    let mut paths = Vec::new();
    files(&root().join("dashboards"), &["json"], &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, v)
        })
        .collect()
}

/// Every metric the dashboards and alert rules (and their tests) use.
fn referenced_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (_, d) in dashboards() {
        let mut exprs = Vec::new();
        json_strings(&d, "expr", &mut exprs);
        json_strings(&d, "definition", &mut exprs);
        exprs.iter().for_each(|e| names_in(e, &mut names));
    }
    let mut yamls = Vec::new();
    files(&root().join("alerts"), &["yml", "yaml"], &mut yamls);
    for p in yamls {
        let v: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match v {
                serde_yaml::Value::Mapping(m) => {
                    for (k, x) in m {
                        match (k.as_str(), &x) {
                            (Some("expr" | "series"), serde_yaml::Value::String(s)) => {
                                names_in(s, &mut names)
                            }
                            _ => stack.push(x),
                        }
                    }
                }
                serde_yaml::Value::Sequence(s) => stack.extend(s),
                _ => {}
            }
        }
    }
    names
}

/// Metric family names in a text exposition.
fn rendered_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[test]
fn every_metric_in_dashboards_and_alerts_is_exported() {
    let board = StatusBoard::new(
        t0(),
        groups(&[("main", &[1, 2, 3, 4])]),
        [],
        Policy::for_epoch_duration(EPOCH),
    );
    board.set_store_ok(true);
    let nodes = vec![
        node("local", NodeHealth::Healthy),
        node("spare", NodeHealth::Lagging),
    ];
    board.set_nodes(nodes.clone());
    let rec = sample_epoch(5);
    board.apply_epoch(&rec, t0());

    let m = Metrics::new(100).unwrap();
    m.set_watched(&[("main".to_string(), 4usize)].into_iter().collect());
    m.observe_epoch(&rec, &|v: ValidatorIndex| {
        board.group_of(v).unwrap_or_default()
    });
    m.observe_epoch_duration(true, Duration::from_millis(800));
    m.observe_clock(192, 2);
    m.observe_head(190);
    m.observe_nodes(&nodes);
    m.record_node_request(
        "local",
        "/eth/v1/node/health",
        Duration::from_millis(3),
        None,
    );
    m.record_node_request(
        "spare",
        "/eth/v2/beacon/blocks/{block_id}",
        Duration::from_secs(10),
        Some("timeout"),
    );
    m.record_alert_delivery("email", "sent");
    // Issue 14: one known reward row sets the income series.
    m.observe_rewards(
        &[valwatch::analysis::rewards::RewardRecord {
            epoch: valwatch::chain::Epoch(5),
            validator_index: ValidatorIndex(1),
            attestation_reward_gwei: Some(10_000),
            attestation_ideal_gwei: Some(12_000),
            sync_reward_gwei: None,
            proposer_reward_gwei: None,
            missed_gwei: Some(2_000),
            estimated: false,
        }],
        None,
        &|v: ValidatorIndex| board.group_of(v).unwrap_or_default(),
    );
    m.observe_status(&board.assess(t0() + Duration::from_secs(1)), &board);
    let exported = rendered_names(&m.render());

    let used = referenced_metrics();
    assert!(
        used.len() >= 25,
        "too few names found, is the scan broken? {used:?}"
    );
    let missing: Vec<_> = used
        .iter()
        .filter(|n| !exported.contains(*n) && !PROMETHEUS_OWN.contains(&n.as_str()))
        .collect();
    assert!(missing.is_empty(), "used but not exported: {missing:?}");
}

#[test]
fn the_name_scan_finds_names_and_skips_variables() {
    let mut s = BTreeSet::new();
    names_in(
        r#"sum by (le) (rate(valwatch_a_bucket{group=~"$group"}[$__rate_interval])) / up{job="x"} + $valwatch_var"#,
        &mut s,
    );
    assert_eq!(
        s.into_iter().collect::<Vec<_>>(),
        ["up".to_string(), "valwatch_a_bucket".to_string()]
    );
}

/// The PostgreSQL tables the validator dashboard assumes (the schema in
/// migrations/postgres is written on another branch).
const SCHEMA: &[(&str, &[&str])] = &[
    (
        "attestations",
        &[
            "validator_index",
            "epoch",
            "status",
            "inclusion_slot",
            "inclusion_delay",
            "late",
            "source_correct",
            "target_correct",
            "head_correct",
        ],
    ),
    (
        "proposals",
        &["slot", "validator_index", "status", "block_root"],
    ),
    (
        "sync_participation",
        &["validator_index", "epoch", "participated", "missed"],
    ),
    (
        "balances",
        &[
            "validator_index",
            "epoch",
            "balance_gwei",
            "effective_balance_gwei",
            "status",
            "slashed",
        ],
    ),
    // The network's constants (genesis time, slot duration, slots per
    // epoch) that map epochs to time.
    ("meta", &["key", "value"]),
    // Issue 14 (migrations/postgres/0004_rewards.sql): the income panels.
    (
        "rewards",
        &[
            "validator_index",
            "epoch",
            "attestation_reward_gwei",
            "attestation_ideal_gwei",
            "sync_reward_gwei",
            "proposer_reward_gwei",
            "missed_gwei",
            "estimated",
        ],
    ),
    (
        "network_epochs",
        &["epoch", "duties", "included", "empty_slots", "slots"],
    ),
];

const SQL_WORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "and",
    "or",
    "order",
    "by",
    "desc",
    "asc",
    "limit",
    "as",
    "between",
    "count",
    "avg",
    "case",
    "when",
    "then",
    "else",
    "end",
    "in",
    "distinct",
    "to_timestamp",
    "is",
    "not",
    "null",
    "e9",
    "floor",
    "bigint",
    "float8",
    "text",
    // Window functions of the income panels.
    "sum",
    "over",
    "rows",
    "preceding",
    "current",
    "row",
    "nullif",
];

/// The identifiers of a query that are neither keywords, variables,
/// string literals nor aliases, and the table it reads.
fn sql_identifiers(sql: &str) -> (String, Vec<String>) {
    let mut cleaned = String::new();
    let mut in_str = false;
    for c in sql.chars() {
        if c == '\'' {
            in_str = !in_str;
            cleaned.push(' ');
        } else if !in_str {
            cleaned.push(c);
        }
    }
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut var = false;
    for c in cleaned.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' {
            cur.push(c);
        } else {
            if !cur.is_empty() && !var && !cur.chars().next().unwrap().is_ascii_digit() {
                words.push(cur.to_lowercase());
            }
            cur.clear();
            var = c == '$';
        }
    }
    let table = words
        .iter()
        .position(|w| w == "from")
        .map(|i| words[i + 1].clone())
        .expect("a FROM clause");
    let aliases: BTreeSet<String> = words
        .windows(2)
        .filter(|w| w[0] == "as")
        .map(|w| w[1].clone())
        .collect();
    let idents = words
        .into_iter()
        .filter(|w| !SQL_WORDS.contains(&w.as_str()) && !aliases.contains(w) && *w != table)
        .collect();
    (table, idents)
}

#[test]
fn validator_dashboard_sql_uses_only_the_assumed_tables_and_columns() {
    let mut queries = Vec::new();
    for (_, d) in dashboards() {
        json_strings(&d, "rawSql", &mut queries);
        if let Some(vars) = d["templating"]["list"].as_array() {
            for v in vars.iter().filter(|v| {
                v["type"] == "query"
                    && v["datasource"]["type"]
                        .as_str()
                        .is_some_and(|t| t == "grafana-postgresql-datasource" || t == "postgres")
            }) {
                queries.push(v["query"].as_str().unwrap().to_string());
            }
        }
    }
    assert!(queries.len() >= 5, "found {} queries", queries.len());
    for q in &queries {
        let (table, idents) = sql_identifiers(q);
        let cols = SCHEMA
            .iter()
            .find(|(t, _)| *t == table)
            .unwrap_or_else(|| panic!("unknown table {table} in {q}"))
            .1;
        for i in idents {
            assert!(cols.contains(&i.as_str()), "{table} has no column {i}: {q}");
        }
    }

    // Once the migrations exist, the assumption is checked against them.
    let dir = root().join("migrations").join("postgres");
    let mut sql_files = Vec::new();
    if dir.is_dir() {
        files(&dir, &["sql"], &mut sql_files);
    }
    if sql_files.is_empty() {
        eprintln!("NOTICE: migrations/postgres not present; dashboard schema not cross-checked");
        return;
    }
    let all: String = sql_files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap().to_lowercase())
        .collect();
    for (table, cols) in SCHEMA {
        assert!(
            all.contains(&format!("create table {table}"))
                || all.contains(&format!("create table if not exists {table}")),
            "migrations/postgres has no table {table}"
        );
        for c in *cols {
            assert!(
                all.contains(c),
                "migrations/postgres never names column {c} (table {table})"
            );
        }
    }
}
