//! Shared by the `observability_*` tests: the dashboards as JSON, their
//! panels, the real tools they need (found on PATH, or a loud skip), and
//! child processes that die with the test.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `dir`'s files ending in one of `exts`, sorted (not recursive).
pub fn files_in(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| exts.contains(&x))
        })
        .collect();
    out.sort();
    out
}

/// Every `dashboards/*.json`, parsed.
pub fn dashboards() -> Vec<(String, serde_json::Value)> {
    files_in(&root().join("dashboards"), &["json"])
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
            (name, v)
        })
        .collect()
}

/// Every panel of a dashboard, rows' nested (collapsed) panels included.
pub fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    fn walk<'a>(list: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The dashboard's template variables.
pub fn variables(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    dashboard["templating"]["list"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// Replaces Grafana's variable references `$name`, `${name}` and
/// `${name:format}` by `value(name)`; names it does not know are left as
/// they are (and then caught by the caller as unsubstituted).
pub fn substitute_vars(text: &str, value: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => {
                    let name = inner[..end].split(':').next().unwrap_or("");
                    (name, end + 2)
                }
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match (len, value(name)) {
            (l, Some(v)) if l > 0 && !name.is_empty() => {
                out.push_str(&v);
                rest = &after[len..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A child process killed (and reaped) when dropped, so a failing test
/// leaves nothing running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` with stdout and stderr appended to `log`.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> KillOnDrop {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    KillOnDrop(child)
}

/// The path of `tool` on PATH. Missing: a panic under CI (env `CI` set,
/// where `.ci/run` installs it), otherwise `None` after a loud notice so the
/// caller can skip.
pub fn require_tool(tool: &str, debian_package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg = format!(
            "{tool} is not installed (Debian package `{debian_package}`: \
             apt-get install -y {debian_package})"
        );
        if std::env::var_os("CI").is_some() {
            panic!("{msg}; CI must have it (.ci/run installs it)");
        }
        eprintln!("SKIPPED: {msg}");
    }
    found
}

/// The last `n` lines of a log file, for failure messages.
pub fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
