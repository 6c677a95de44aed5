//! The command line as an operator uses it: check-config, migrate, report.
//! The read-only commands (check-config, report) are held to it: they
//! never create, migrate or change a database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::path::Path;
use std::process::Command;

fn valwatch(args: &[&str]) -> (bool, String) {
    let (ok, stdout, stderr) = valwatch_split(args);
    (ok, format!("{stdout}{stderr}"))
}

/// Success, stdout and stderr apart (report keeps stdout for the data).
fn valwatch_split(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_valwatch"))
        .args(args)
        .env_remove("VALWATCH_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `sql` on the SQLite file at `url` with sqlx directly (no valwatch
/// code in between) and returns the first column of its rows.
async fn sqlite_column(url: &str, sql: &str) -> Vec<i64> {
    use sqlx::Connection;
    let mut conn = sqlx::sqlite::SqliteConnection::connect(url).await.unwrap();
    let rows = sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    rows
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("valwatch.sqlite").display())
}

#[test]
fn check_config_names_every_problem_and_tries_every_node() {
    let replay = common::Replay::start("lodestar-devnet", &["--mode", "static"]);
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let config = dir.path().join("valwatch.toml");
    let write = |nodes: &[&str]| {
        let mut text = String::new();
        for (i, n) in nodes.iter().enumerate() {
            text.push_str(&format!(
                "[[beacon_nodes]]\nname = \"n{i}\"\nurl = \"{n}\"\ntimeout = \"2s\"\n"
            ));
        }
        text.push_str(&format!(
            "[[groups]]\nvalidators = \"0-3\"\n[database]\nurl = \"sqlite://{}\"\n",
            dir.path().join("db.sqlite").display()
        ));
        std::fs::write(&config, text).unwrap();
    };
    write(&[&replay.url()]);
    let (ok, out) = valwatch(&["check-config", "--config", config.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("beacon node n0: ok")
            && out.contains("validators: all 4 found on chain")
            && out.contains("db.sqlite: not created yet")
            && out.contains("alert channels: none"),
        "{out}"
    );
    // Looking is not creating.
    assert!(!dir.path().join("db.sqlite").exists());

    write(&[&replay.url(), &dead]);
    let (ok, out) = valwatch(&["check-config", "--config", config.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("beacon node n1: FAILED"), "{out}");

    std::fs::write(
        &config,
        "[[beacon_nodes]]\nurl = \"ftp://x\"\n[[groups]]\nvalidators = \"1,x\"\n",
    )
    .unwrap();
    let (ok, out) = valwatch(&["check-config", "--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("beacon_nodes[0].url") && out.contains("groups[0].validators"),
        "{out}"
    );
}

#[test]
fn migrate_then_report_on_an_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (ok, out) = valwatch(&["migrate", "--data-dir", data]);
    assert!(ok, "{out}");
    let file = dir.path().join("valwatch.sqlite");
    let before = std::fs::read(&file).unwrap();
    let (ok, stdout, stderr) = valwatch_split(&["report", "--data-dir", data, "--format", "json"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("reading {}", sqlite_url(dir.path()))),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for key in [
        "attestations",
        "proposals",
        "sync",
        "balances",
        "rewards",
        "network",
    ] {
        assert_eq!(v[key], serde_json::json!([]), "{key}");
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "report changed the file"
    );
}

#[test]
fn check_config_names_validators_not_on_chain_and_warns_on_overlaps() {
    let replay = common::Replay::start("lodestar-devnet", &["--mode", "static"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("valwatch.toml");
    let missing_key = format!("0x{}", "ab".repeat(48));
    std::fs::write(
        &config,
        format!(
            "[[beacon_nodes]]\nurl = \"{}\"\n\
             [[groups]]\nname = \"a\"\nvalidators = \"0-3\"\n\
             [[groups]]\nname = \"b\"\nvalidators = \"3,4000000-4000002,{missing_key}\"\n\
             [[alerts.log]]\nname = \"stdout\"\n",
            replay.url()
        ),
    )
    .unwrap();
    let (ok, out) = valwatch(&["check-config", "--config", config.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("warning: groups a and b both watch 3\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "groups[1] (b): not on chain (a typo, another network, or a deposit not yet processed): 4000000-4000002,{missing_key}\n"
        )),
        "{out}"
    );
    assert!(!out.contains("groups[0] (a): not on chain"), "{out}");
    assert!(
        out.contains("alert channels: stdout (not tried here: `valwatch test-alert`"),
        "{out}"
    );
    // data_dir defaults to valwatch-data beside the file; still not created.
    assert!(
        out.contains("valwatch-data/valwatch.sqlite: not created yet"),
        "{out}"
    );
    assert!(!dir.path().join("valwatch-data").exists());
}

/// Runs valwatch and returns its success, stdout and stderr together, and
/// the process's peak resident memory in MiB: exact from `/usr/bin/time -v`
/// (the kernel's ru_maxrss of the child) when it is installed, else the
/// last VmHWM read from /proc while the process ran (read every 10 ms;
/// VmHWM only grows, so only a peak in its last moments could be missed).
fn valwatch_with_peak(args: &[&str]) -> (bool, String, u64) {
    use std::io::Read;
    use std::process::Stdio;
    let bin = env!("CARGO_BIN_EXE_valwatch");
    let time = Path::new("/usr/bin/time");
    let mut cmd = if time.exists() {
        let mut c = Command::new(time);
        c.arg("-v").arg(bin);
        c
    } else {
        Command::new(bin)
    };
    let mut child = cmd
        .args(args)
        .env_remove("VALWATCH_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            r.read_to_string(&mut text).unwrap();
            text
        })
    };
    let stdout = pipe(Box::new(child.stdout.take().unwrap()));
    let stderr = pipe(Box::new(child.stderr.take().unwrap()));
    let mut polled_kib = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let hwm = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            });
        polled_kib = polled_kib.max(hwm.unwrap_or(0));
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let peak_kib = if time.exists() {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no maximum RSS from /usr/bin/time: {stderr}"))
    } else {
        polled_kib
    };
    (
        status.success(),
        format!("{stdout}{stderr}"),
        peak_kib / 1024,
    )
}

/// Issue 11: a range of five million validators is read as a range. The
/// configuration was once expanded into a list of five million ids first
/// (a ~555 MiB peak, and five thousand requests of 1000 ids to the node);
/// now the range is counted, compared with the registry's length found by
/// a few requests, and the missing part named as a range.
#[test]
fn check_config_reads_a_range_of_millions_as_a_range() {
    let replay = common::Replay::start("lodestar-devnet", &["--mode", "static"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("valwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[[beacon_nodes]]\nurl = \"{}\"\n\
             [[groups]]\nname = \"all\"\nvalidators = \"0-4999999\"\n\
             [[groups]]\nname = \"some\"\nvalidators = \"10-19,4000000-4999999\"\n\
             [monitor]\nexpected_offline = \"48-63\"\n",
            replay.url()
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (ok, out, peak_mib) =
        valwatch_with_peak(&["check-config", "--config", config.to_str().unwrap()]);
    let took = started.elapsed();
    eprintln!("check-config on 0-4999999: {took:?}, peak RSS {peak_mib} MiB");
    // Not ok: most of the range is not on this 64-validator chain.
    assert!(!ok, "{out}");
    for line in [
        "configuration: ok (1 nodes, 2 groups, 5000000 validators)\n",
        "warning: groups all and some both watch 10-19,4000000-4999999\n",
        "validators: FAILED: groups[0] (all): not on chain (a typo, another network, or a \
         deposit not yet processed): 64-4999999\n",
        "validators: FAILED: groups[1] (some): not on chain (a typo, another network, or a \
         deposit not yet processed): 4000000-4999999\n",
    ] {
        assert!(out.contains(line), "{line} missing from {out}");
    }
    assert!(
        !out.contains("monitor.expected_offline: not on chain"),
        "{out}"
    );
    assert!(peak_mib < 100, "check-config peaked at {peak_mib} MiB");
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
}

#[test]
fn check_config_names_every_type_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("valwatch.toml");
    std::fs::write(
        &config,
        "[[beacon_nodes]]\nurl = \"http://127.0.0.1:1\"\ntimeout = 5\nmax_requests_per_second = \"lots\"\n\
         [[groups]]\nvalidators = \"\"\n\
         [http]\nper_validator_metrics_limit = -1\n\
         [alerts]\nearly_warning = \"maybe\"\n",
    )
    .unwrap();
    let (ok, out) = valwatch(&["check-config", "--config", config.to_str().unwrap()]);
    assert!(!ok, "{out}");
    for line in [
        "beacon_nodes[0].max_requests_per_second: expected a number, found the text \"lots\"",
        "http.per_validator_metrics_limit: a whole number (-1) is out of range",
        "alerts.early_warning: expected true or false, found the text \"maybe\"",
        "groups[0].validators: lists no validator",
        // A number where a duration is expected reads as text, and then
        // fails as a duration.
        "beacon_nodes[0].timeout: `5` is not a duration",
    ] {
        assert!(out.contains(line), "{line} missing from {out}");
    }
}

#[test]
fn report_reads_a_missing_database_as_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("valwatch-dta");
    let (ok, stdout, stderr) = valwatch_split(&["report", "--data-dir", typo.to_str().unwrap()]);
    assert!(!ok, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!("reading {}", sqlite_url(&typo)))
            && stderr.contains("no database at"),
        "{stderr}"
    );
    assert!(!typo.exists(), "report created {}", typo.display());

    // An SQLite file that is not valwatch's: named, not migrated.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    let url = format!("{}?mode=rwc", sqlite_url(&foreign));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(sqlite_column(&url, "CREATE TABLE t (x INTEGER)"));
    let (ok, out) = valwatch(&["report", "--data-dir", foreign.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("no valwatch data in")
            && out.contains("run `valwatch migrate` or `valwatch run` first"),
        "{out}"
    );
    let tables = rt.block_on(sqlite_column(
        &sqlite_url(&foreign),
        "SELECT count(*) FROM sqlite_master WHERE name = '_sqlx_migrations'",
    ));
    assert_eq!(tables, [0], "report created the migration table");
}

#[test]
fn report_and_check_config_never_migrate_and_a_newer_schema_is_refused_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let url = sqlite_url(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ok, out) = valwatch(&["migrate", "--data-dir", data]);
    assert!(ok, "{out}");
    let all = rt.block_on(sqlite_column(
        &url,
        "SELECT version FROM _sqlx_migrations ORDER BY version",
    ));
    let latest = *all.last().unwrap();

    // As an older valwatch left it: the latest migration not applied.
    rt.block_on(sqlite_column(
        &url,
        &format!("DELETE FROM _sqlx_migrations WHERE version = {latest}"),
    ));
    let (ok, out) = valwatch(&["report", "--data-dir", data]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "written by an older valwatch (schema {}, this binary knows {latest})",
            latest - 1
        )),
        "{out}"
    );
    let config = dir.path().join("valwatch.toml");
    std::fs::write(
        &config,
        "data_dir = \".\"\n[[beacon_nodes]]\nurl = \"http://127.0.0.1:1\"\ntimeout = \"1s\"\n[[groups]]\nvalidators = \"1\"\n",
    )
    .unwrap();
    let (_, out) = valwatch(&["check-config", "--config", config.to_str().unwrap()]);
    assert!(
        out.contains(&format!(
            "ok (schema {}); `valwatch run` or `valwatch migrate` upgrades it to {latest}",
            latest - 1
        )),
        "{out}"
    );
    let after = rt.block_on(sqlite_column(
        &url,
        "SELECT version FROM _sqlx_migrations ORDER BY version",
    ));
    assert_eq!(after, all[..all.len() - 1], "a read-only command migrated");

    // As a newer valwatch leaves it: a migration this binary does not know.
    rt.block_on(sqlite_column(
        &url,
        &format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ({latest}, 'x', 1, x'00', 0), (9999, 'from the future', 1, x'00', 0)"
        ),
    ));
    let newer = format!(
        "this database was written by a newer valwatch (schema 9999, this binary knows {latest})"
    );
    let before = std::fs::read(dir.path().join("valwatch.sqlite")).unwrap();
    for args in [
        vec!["report", "--data-dir", data],
        vec!["migrate", "--data-dir", data],
        vec!["check-config", "--config", config.to_str().unwrap()],
        vec![
            "run",
            "--data-dir",
            data,
            "--beacon-node",
            "http://127.0.0.1:1",
            "--validators",
            "1",
            "--listen",
            "off",
        ],
    ] {
        let (ok, out) = valwatch(&args);
        assert!(!ok, "{args:?}: {out}");
        assert!(out.contains(&newer), "{args:?}: {out}");
    }
    assert_eq!(
        std::fs::read(dir.path().join("valwatch.sqlite")).unwrap(),
        before,
        "the newer database was changed"
    );
}

#[test]
fn report_on_postgres_neither_migrates_nor_writes() {
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("valwatch_cli_{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt
        .block_on(valwatch::store::create_postgres_database(&admin, &name))
        .unwrap();
    let (ok, out) = valwatch(&["report", "--database-url", &url]);
    let exists: bool = rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::postgres::PgConnection::connect(&url).await.unwrap();
        let exists = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        exists
    });
    let (migrated, report_after) = if exists {
        (true, String::new())
    } else {
        let (ok, out) = valwatch(&["migrate", "--database-url", &url]);
        assert!(ok, "{out}");
        let (ok, stdout, stderr) = valwatch_split(&[
            "report",
            "--database-url",
            &url,
            "--format",
            "csv",
            "--kind",
            "sync",
        ]);
        assert!(ok, "{stderr}");
        assert!(stderr.contains(&format!("reading {url}")), "{stderr}");
        (false, stdout)
    };
    rt.block_on(valwatch::store::drop_postgres_database(&admin, &name))
        .unwrap();
    assert!(!ok, "{out}");
    assert!(out.contains("no valwatch data in"), "{out}");
    assert!(!migrated, "report created the migration table");
    assert_eq!(report_after, "validator_index,epoch,participated,missed\n");
}

#[test]
fn csv_is_one_table_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (ok, out) = valwatch(&["migrate", "--data-dir", data]);
    assert!(ok, "{out}");
    let (ok, out) = valwatch(&["report", "--data-dir", data, "--format", "csv"]);
    assert!(!ok && out.contains("--kind"), "{out}");
    for (kind, header) in [
        ("attestations", "validator_index,epoch,status,inclusion_slot,inclusion_delay,source_correct,target_correct,head_correct\n"),
        ("proposals", "slot,validator_index,status,block_root\n"),
        ("sync", "validator_index,epoch,participated,missed\n"),
        ("balances", "validator_index,epoch,balance_gwei,effective_balance_gwei,status,slashed\n"),
    ] {
        let (ok, stdout, stderr) =
            valwatch_split(&["report", "--data-dir", data, "--format", "csv", "--kind", kind]);
        assert!(ok, "{stderr}");
        assert_eq!(stdout, header, "{kind}");
    }
}
