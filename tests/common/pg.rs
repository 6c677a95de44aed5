//! A PostgreSQL server of the test's own, that the test can stop and start
//! again (the shared server on 5432 must keep running for the other
//! tests). Initialised in a temporary directory with the Debian package's
//! binaries; run as the `postgres` user when the test runs as root
//! (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    as_root: bool,
    /// TLS only (`start_tls`): connections without it are refused.
    tls: bool,
}

/// The newest installed server's binaries (`/usr/lib/postgresql/N/bin`).
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql (.ci/run installs them)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop().expect("no pg_ctl under /usr/lib/postgresql")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl OwnPostgres {
    /// Initialises a cluster (trust authentication, user `postgres`) and
    /// starts it on a free loopback port.
    pub fn start() -> OwnPostgres {
        Self::start_with(None)
    }

    /// As `start`, with TLS required on TCP: `cert` and `key` (PEM) are the
    /// server's, and `pg_hba.conf` refuses connections without TLS.
    pub fn start_tls(cert: &Path, key: &Path) -> OwnPostgres {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&Path, &Path)>) -> OwnPostgres {
        let dir = tempfile::Builder::new()
            .prefix("valwatch-pg-")
            .tempdir()
            .unwrap();
        let as_root = is_root();
        if as_root {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let pg = OwnPostgres {
            bin: bin_dir(),
            port: super::free_port(),
            dir,
            as_root,
            tls: tls.is_some(),
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt;
            // In the data directory, owned by the server's user, the key
            // readable by it alone (PostgreSQL refuses it otherwise).
            std::fs::copy(cert, data.join("server.crt")).unwrap();
            std::fs::copy(key, data.join("server.key")).unwrap();
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 trust\n\
                 hostnossl all all 127.0.0.1/32 reject\n",
            )
            .unwrap();
            if pg.as_root {
                let status = Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(data.join("server.crt"))
                    .arg(data.join("server.key"))
                    .arg(data.join("pg_hba.conf"))
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        }
        pg.up();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server and waits until it accepts connections.
    pub fn up(&self) {
        let data = self.data();
        let log = self.dir.path().join("server.log");
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        if self.tls {
            options.push_str(" -c ssl=on");
        }
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once (`fast`: open sessions are ended, as in a
    /// database restart or a crash of its host).
    pub fn down(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let mut cmd = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = cmd
            .args([
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
    }
}
