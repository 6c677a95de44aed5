//! What the packages ship besides the daemon, from the real binary:
//! `--version` names the commit, `completions` gives a script per shell
//! that knows every command, `man` gives a page per command.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

use std::collections::BTreeSet;
use std::process::Command;

use clap::CommandFactory;

fn valwatch(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_valwatch"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The visible commands of the real command line, `help` excluded.
fn commands() -> BTreeSet<String> {
    valwatch::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

#[test]
fn version_names_the_release_and_the_commit_it_was_built_from() {
    let (ok, out, err) = valwatch(&["--version"]);
    assert!(ok, "{err}");
    let want_version = format!("valwatch {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(out.starts_with(&want_version), "{out:?}");
    let commit = out
        .trim()
        .strip_prefix(&want_version)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{out:?}"));
    // build.rs: the environment first (container builds), else git.
    let expected = std::env::var("VALWATCH_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let o = Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .ok()?;
            o.status
                .success()
                .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
        });
    match expected {
        Some(full) => assert_eq!(commit, &full[..full.len().min(12)], "{out:?}"),
        None => assert_eq!(commit, "unknown"),
    }
}

#[test]
fn completion_scripts_know_every_command_for_each_shell() {
    let commands = commands();
    assert!(
        commands.len() >= 8 && commands.contains("check-config"),
        "{commands:?}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let (ok, out, err) = valwatch(&["completions", shell]);
        assert!(ok, "{shell}: {err}");
        for c in &commands {
            assert!(out.contains(c.as_str()), "{shell} script lacks {c}");
        }
    }
    // A script bash cannot parse would break every new shell of the user.
    let (_, script, _) = valwatch(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("valwatch.bash");
    std::fs::write(&path, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let (ok, _, err) = valwatch(&["completions", "tcsh"]);
    assert!(!ok && err.contains("tcsh"), "{err}");
}

#[test]
fn man_prints_the_main_page_and_writes_one_page_per_command() {
    let (ok, page, err) = valwatch(&["man"]);
    assert!(ok, "{err}");
    assert!(page.contains(".TH valwatch 1"), "{page}");
    for c in commands() {
        assert!(
            page.contains(&c.replace('-', "\\-")),
            "valwatch.1 does not list {c}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let (ok, _, err) = valwatch(&["man", "--dir", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    let files: BTreeSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut want: BTreeSet<String> = commands()
        .iter()
        .map(|c| format!("valwatch-{c}.1"))
        .collect();
    want.insert("valwatch.1".into());
    assert_eq!(files, want);
    let run = std::fs::read_to_string(out.join("valwatch-run.1")).unwrap();
    assert!(run.contains("\\-\\-beacon\\-node"), "{run}");
}
