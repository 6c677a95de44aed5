//! The files that install valwatch agree with each other and with what the
//! other tests check, without Docker or dpkg (CI builds and installs the
//! package for real in scripts/package-check.sh; images cannot be pulled
//! here):
//! - the compose stack mounts files that exist, and exactly the dashboards
//!   and alert rules that tests/observability_* run; its Prometheus scrapes
//!   the job the rules expect, its Grafana has the data source uids the
//!   dashboards use and finds the dashboards where the provider looks;
//! - the Dockerfile builds in one stage and runs as non-root in another,
//!   and its context keeps what the build embeds;
//! - the Debian package's assets exist, its unit starts the binary where
//!   the package puts it with the configuration it ships, hardened, and that
//!   configuration loads.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compose_dir() -> PathBuf {
    root().join("deploy/compose")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A bind mount of a compose service: host path (resolved) and container path.
#[derive(Debug)]
struct Mount {
    host: PathBuf,
    container: String,
}

/// The bind mounts of `service` (named volumes are skipped).
fn mounts(compose: &Value, service: &str) -> Vec<Mount> {
    compose["services"][service]["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let spec = v.as_str().expect("short volume syntax");
            let mut parts = spec.split(':');
            let (src, dst) = (parts.next()?, parts.next()?);
            (src.starts_with('.') || src.starts_with('/')).then(|| Mount {
                host: compose_dir().join(src),
                container: dst.to_string(),
            })
        })
        .collect()
}

/// The host file mounted at `container` (or whose container path is a
/// prefix of it: a file inside a mounted directory).
fn host_path(compose: &Value, service: &str, container: &str) -> PathBuf {
    for m in mounts(compose, service) {
        if container == m.container {
            return m.host;
        }
        if let Some(rest) = container.strip_prefix(&format!("{}/", m.container)) {
            return m.host.join(rest);
        }
    }
    panic!("{service}: nothing mounted at {container}");
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn env(compose: &Value, service: &str, key: &str) -> Option<String> {
    compose["services"][service]["environment"][key]
        .as_str()
        .map(str::to_string)
}

/// `${NAME:-default}` replaced by its default, as compose does without .env.
fn defaults(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').map(|e| i + e).expect("closed ${");
        let inner = &rest[i + 2..end];
        out.push_str(inner.split_once(":-").map_or("", |(_, d)| d));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// uid -> type of a Grafana data source provisioning file.
fn datasource_types(path: &Path) -> BTreeMap<String, String> {
    yaml(path)["datasources"]
        .as_sequence()
        .expect("datasources: a list")
        .iter()
        .map(|d| {
            (
                d["uid"].as_str().unwrap().to_string(),
                d["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn compose_stack_mounts_existing_files_that_agree_with_each_other() {
    let compose = yaml(&compose_dir().join("docker-compose.yml"));
    let services: Vec<&str> = compose["services"]
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(|k| k.as_str())
        .collect();
    for s in [
        "valwatch",
        "postgres",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        assert!(services.contains(&s), "no service {s}: {services:?}");
    }
    // Every bind mount's source is in this repository.
    for s in &services {
        for m in mounts(&compose, s) {
            assert!(m.host.exists(), "{s}: {} does not exist", m.host.display());
            assert!(
                m.host
                    .canonicalize()
                    .unwrap()
                    .starts_with(root().canonicalize().unwrap()),
                "{s}: {} is outside the repository",
                m.host.display()
            );
        }
    }
    let build = compose["services"]["valwatch"]["build"]["context"]
        .as_str()
        .unwrap();
    assert!(
        same_file(&compose_dir().join(build), &root()),
        "build context {build}"
    );

    // valwatch: its configuration, and the address Prometheus scrapes.
    let config = env(&compose, "valwatch", "VALWATCH_CONFIG").expect("VALWATCH_CONFIG");
    let config_file = host_path(&compose, "valwatch", &config);
    let loaded = valwatch::config::load(Some(&config_file), &Default::default())
        .unwrap_or_else(|e| panic!("{}: {e}", config_file.display()));
    assert!(!loaded.beacon_nodes.is_empty());
    let listen = env(&compose, "valwatch", "VALWATCH_HTTP__LISTEN").expect("listen");
    let port = listen.rsplit(':').next().unwrap().to_string();
    assert!(
        listen.starts_with("0.0.0.0:"),
        "{listen}: unreachable from Prometheus"
    );
    let db_url = defaults(&env(&compose, "valwatch", "VALWATCH_DATABASE__URL").unwrap());
    let pg_db = env(&compose, "postgres", "POSTGRES_DB").unwrap();
    assert!(
        db_url.starts_with("postgres://")
            && db_url.contains("@postgres:")
            && db_url.ends_with(&format!("/{pg_db}")),
        "{db_url}"
    );

    // Prometheus: the rules the tests run, the job they name, Alertmanager.
    let prom_config = host_path(&compose, "prometheus", "/etc/prometheus/prometheus.yml");
    let prom = yaml(&prom_config);
    let rule_globs: Vec<&str> = prom["rule_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let rules_mount = mounts(&compose, "prometheus")
        .into_iter()
        .find(|m| same_file(&m.host, &root().join("alerts/valwatch.rules.yml")))
        .expect("alerts/valwatch.rules.yml mounted into Prometheus");
    assert!(
        rule_globs.iter().any(|g| {
            let (dir, pat) = g.rsplit_once('/').unwrap();
            let (cdir, file) = rules_mount.container.rsplit_once('/').unwrap();
            dir == cdir && (pat == file || (pat.starts_with('*') && file.ends_with(&pat[1..])))
        }),
        "rule_files {rule_globs:?} miss {}",
        rules_mount.container
    );
    let rules = std::fs::read_to_string(root().join("alerts/valwatch.rules.yml")).unwrap();
    let jobs = prom["scrape_configs"].as_sequence().unwrap();
    let job = jobs
        .iter()
        .find(|j| j["job_name"] == "valwatch")
        .expect("a scrape job named valwatch");
    assert!(
        rules.contains("job=\"valwatch\""),
        "the rules name another job"
    );
    let targets: Vec<&str> = job["static_configs"][0]["targets"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(targets, [format!("valwatch:{port}")]);
    let am = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
        .as_str()
        .unwrap();
    assert_eq!(am, "alertmanager:9093");
    let am_config = yaml(&host_path(
        &compose,
        "alertmanager",
        "/etc/alertmanager/alertmanager.yml",
    ));
    let receiver = am_config["route"]["receiver"].as_str().unwrap();
    assert!(
        am_config["receivers"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|r| r["name"] == receiver),
        "route receiver {receiver} is not defined"
    );

    // Grafana: the same data sources as the dashboards' own provisioning,
    // at the stack's addresses; the dashboards the tests check, where the
    // provider looks.
    let ds_file = host_path(
        &compose,
        "grafana",
        "/etc/grafana/provisioning/datasources/valwatch.yml",
    );
    assert_eq!(
        datasource_types(&ds_file),
        datasource_types(&root().join("dashboards/provisioning/datasources.yml"))
    );
    for d in yaml(&ds_file)["datasources"].as_sequence().unwrap() {
        let url = d["url"].as_str().unwrap();
        let host = url.trim_start_matches("http://").split(':').next().unwrap();
        assert!(
            services.contains(&host),
            "data source url {url}: no service {host}"
        );
        if d["type"] == "grafana-postgresql-datasource" {
            assert_eq!(d["jsonData"]["database"].as_str(), Some(pg_db.as_str()));
            let user = d["user"].as_str().unwrap();
            let init = std::fs::read_to_string(host_path(
                &compose,
                "postgres",
                "/docker-entrypoint-initdb.d/10-grafana-reader.sh",
            ))
            .unwrap();
            assert!(
                init.contains(&format!("CREATE ROLE {user} LOGIN")),
                "no role {user}"
            );
            let secret = d["secureJsonData"]["password"].as_str().unwrap();
            let var = secret.trim_start_matches('$');
            assert!(
                env(&compose, "grafana", var).is_some(),
                "grafana lacks {var}"
            );
        }
    }
    let provider_file = host_path(
        &compose,
        "grafana",
        "/etc/grafana/provisioning/dashboards/valwatch.yml",
    );
    assert!(same_file(
        &provider_file,
        &root().join("dashboards/provisioning/dashboards.yml")
    ));
    let folder = yaml(&provider_file)["providers"][0]["options"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        same_file(
            &host_path(&compose, "grafana", &folder),
            &root().join("dashboards")
        ),
        "{folder} is not the repository's dashboards/"
    );
    let home = env(
        &compose,
        "grafana",
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH",
    )
    .unwrap();
    assert!(host_path(&compose, "grafana", &home).is_file(), "{home}");

    // The demo override keeps the port Prometheus scrapes.
    let demo = yaml(&compose_dir().join("docker-compose.demo.yml"));
    let cmd: Vec<&str> = demo["services"]["valwatch"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cmd, ["demo", "--listen", &listen]);
}

#[test]
fn dockerfile_builds_in_one_stage_runs_unprivileged_in_another_and_keeps_what_the_build_needs() {
    let docker = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = docker
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert!(froms >= 2, "not multi-stage");
    let last_stage = &lines[lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap()..];
    let user = last_stage
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the final stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "runs as {user}");

    // The Rust image is at least the crate's minimum toolchain.
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let msrv = manifest["package"]["rust-version"].as_str().unwrap();
    let image = lines
        .iter()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .expect("ARG RUST_VERSION");
    let parse = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(
        parse(image) >= parse(msrv),
        "image Rust {image} < rust-version {msrv}"
    );

    // What the build reads (the migrations and the demo plan are embedded
    // at compile time) and what the final stage copies from the context
    // must not be excluded by .dockerignore.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut needed = vec![
        "Cargo.toml".to_string(),
        "Cargo.lock".into(),
        "build.rs".into(),
        "src".into(),
        "migrations".into(),
        "scenarios".into(),
    ];
    for l in last_stage
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = l.split_whitespace().collect();
        needed.extend(words[1..words.len() - 1].iter().map(|w| w.to_string()));
    }
    for n in &needed {
        assert!(root().join(n).exists(), "{n} does not exist");
        let top = n.split('/').next().unwrap();
        assert!(!ignored.contains(&top), ".dockerignore excludes {n}");
    }
    assert!(ignored.contains(&"target") && ignored.contains(&".git"));
    let entry = last_stage
        .iter()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("ENTRYPOINT");
    let installed = last_stage
        .iter()
        .find(|l| l.starts_with("COPY --from=build"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap();
    assert!(
        entry.contains(&format!("\"{installed}\"")),
        "{entry} vs {installed}"
    );
}

/// `Key=value` lines of a systemd unit, all values per key.
fn unit_keys(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in text.lines().map(str::trim) {
        if l.starts_with('#') || l.starts_with('[') {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    out
}

#[test]
fn debian_package_ships_existing_files_and_a_hardened_unit_that_runs_what_it_ships() {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    // source -> destination path in the installed system.
    let mut installed: BTreeMap<String, String> = BTreeMap::new();
    let build_script = std::fs::read_to_string(root().join("scripts/build-deb.sh")).unwrap();
    for a in deb["assets"].as_array().unwrap() {
        let (src, dest) = (a[0].as_str().unwrap(), a[1].as_str().unwrap());
        let file = src.rsplit('/').next().unwrap();
        let dest = if dest.ends_with('/') {
            format!("/{dest}{file}")
        } else {
            format!("/{dest}")
        };
        installed.insert(src.to_string(), dest);
        if let Some(built) = src.strip_prefix("target/release/") {
            // Made by the build script from the binary, not in the tree.
            let name = built.rsplit('/').next().unwrap().replace("*.1.gz", ".1");
            assert!(
                built == "valwatch" || build_script.contains(&name),
                "scripts/build-deb.sh does not make {src}"
            );
            continue;
        }
        let (dir, pattern) = src.rsplit_once('/').unwrap_or((".", src));
        let matched = std::fs::read_dir(root().join(dir))
            .unwrap_or_else(|e| panic!("{src}: {e}"))
            .filter_map(|e| e.ok())
            .any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                match pattern.split_once('*') {
                    Some((pre, post)) => n.starts_with(pre) && n.ends_with(post),
                    None => n == pattern,
                }
            });
        assert!(matched, "asset {src} matches no file");
    }
    let scripts = root().join(deb["maintainer-scripts"].as_str().unwrap());
    for s in ["postinst", "postrm"] {
        let text = std::fs::read_to_string(scripts.join(s)).unwrap();
        assert!(text.contains("#DEBHELPER#"), "{s} lacks #DEBHELPER#");
    }
    let postinst = std::fs::read_to_string(scripts.join("postinst")).unwrap();

    let units = root().join(deb["systemd-units"]["unit-scripts"].as_str().unwrap());
    let unit_text = std::fs::read_to_string(units.join("valwatch.service")).unwrap();
    let unit = unit_keys(&unit_text);
    let one = |k: &str| -> String {
        match unit.get(k).map(Vec::as_slice) {
            Some([v]) => v.clone(),
            other => panic!("{k}: {other:?}"),
        }
    };
    // It starts the binary the package installs, with the configuration
    // the package installs.
    let exec: Vec<String> = one("ExecStart")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(exec[0], installed["target/release/valwatch"]);
    assert_eq!(exec[1], "run");
    let config_at = exec.iter().position(|w| w == "--config").expect("--config");
    assert_eq!(
        exec[config_at + 1],
        installed["packaging/etc/valwatch.toml"]
    );
    // Its own user, made by postinst; its state directory is the shipped
    // data_dir; reload is SIGHUP; restarts after a failure.
    let user = one("User");
    assert_ne!(user, "root");
    assert!(
        postinst.contains(&format!("getent passwd {user}"))
            && postinst.contains("adduser --system"),
        "postinst does not create the user {user}"
    );
    let config = valwatch::config::load(
        Some(&root().join("packaging/etc/valwatch.toml")),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(
        config.data_dir,
        PathBuf::from(format!("/var/lib/{}", one("StateDirectory")))
    );
    let validators = config.groups[0]
        .validators_file
        .clone()
        .expect("a validators file");
    assert_eq!(
        validators,
        root().join("packaging/etc").join("validators.txt"),
        "the file beside the config"
    );
    assert_eq!(
        installed["packaging/etc/validators.txt"],
        "/etc/valwatch/validators.txt"
    );
    assert!(one("ExecReload").contains("-HUP $MAINPID"));
    // valwatch dies of SIGHUP today; systemd would call that clean and
    // leave it down after `systemctl reload`.
    assert_eq!(one("RestartForceExitStatus"), "SIGHUP");
    assert_eq!(one("Restart"), "on-failure");
    for (key, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("MemoryDenyWriteExecute", "yes"),
    ] {
        assert_eq!(one(key), want, "{key}");
    }
    // Not started before it is configured.
    assert_eq!(deb["systemd-units"]["enable"].as_bool(), Some(false));
    assert_eq!(deb["systemd-units"]["start"].as_bool(), Some(false));
}
