//! The alert rules are valid and their unit tests pass, checked with
//! `promtool` (Debian package `prometheus`). Skipped, with a notice, where
//! promtool is not installed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

use std::path::{Path, PathBuf};
use std::process::Command;

fn alerts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts")
}

fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool")
        .args(args)
        .current_dir(alerts_dir())
        .output()
    {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("cannot run promtool: {e}"),
    }
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let Some(check) = promtool(&["check", "rules", "valwatch.rules.yml"]) else {
        eprintln!(
            "SKIPPED: promtool not found (apt-get install prometheus); alert rules not checked"
        );
        return;
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(
        check.status.success(),
        "promtool check rules:\n{}",
        text(&check)
    );
    let test = promtool(&["test", "rules", "tests.yml"]).expect("promtool vanished");
    assert!(
        test.status.success(),
        "promtool test rules:\n{}",
        text(&test)
    );
}
