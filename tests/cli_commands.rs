//! The command line as an operator uses it: check-config, migrate, report.

mod common;

use std::process::Command;

fn valwatch(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_valwatch"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
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
        out.contains("beacon node n0: ok") && out.contains("database: ok"),
        "{out}"
    );

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
    let (ok, out) = valwatch(&["report", "--data-dir", data, "--format", "json"]);
    assert!(ok, "{out}");
    let start = out.find('{').unwrap();
    let v: serde_json::Value = serde_json::from_str(out[start..].trim()).unwrap();
    for key in ["attestations", "proposals", "sync", "balances"] {
        assert_eq!(v[key], serde_json::json!([]), "{key}");
    }
}
