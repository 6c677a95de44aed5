//! A real TLS-speaking SMTP server process for the email tests:
//! `tests/support/smtp_tls_sink.py` (aiosmtpd) in STARTTLS or implicit-TLS
//! mode, one per test, on a free loopback port, killed on drop; and a
//! throwaway certificate authority made with the `openssl` CLI per test
//! run, whose server certificate names `IP:127.0.0.1` and `DNS:localhost`.
//!
//! aiosmtpd is a PyPI package (`.ci/run` installs it). Missing: a panic
//! under CI (env `CI` set), otherwise `None` after a loud notice.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::smtp::{read_mails, Mail};

/// A certificate authority and one server certificate it signed, in a
/// temporary directory.
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn generate() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("the openssl CLI is needed to make test certificates");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(key);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=valwatch test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&ca);
        let mut csr = vec!["req"];
        csr.extend(key);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(&csr);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        TestCa { dir }
    }

    /// The CA certificate (PEM): what `ca_file` must name.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    StartTls,
    Implicit,
}

/// Whether aiosmtpd can be imported. Missing under CI: a panic.
pub fn aiosmtpd_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = "aiosmtpd is not installed (python3 -m pip install aiosmtpd)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}; CI must have it (.ci/run installs it)");
        }
        eprintln!("SKIPPED: {msg}");
    }
    ok
}

pub struct TlsSmtpSink {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
    pub mode: TlsMode,
}

impl TlsSmtpSink {
    /// Starts the server with `ca`'s server certificate; with `credentials`
    /// every message must be sent after AUTH with exactly those. `None`
    /// when aiosmtpd is missing outside CI.
    pub fn start(
        ca: &TestCa,
        mode: TlsMode,
        credentials: Option<(&str, &str)>,
    ) -> Option<TlsSmtpSink> {
        if !aiosmtpd_available() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("support")
            .join("smtp_tls_sink.py");
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .args([
                "--mode",
                match mode {
                    TlsMode::StartTls => "starttls",
                    TlsMode::Implicit => "implicit",
                },
                "--port",
                "0",
            ])
            .arg("--cert")
            .arg(ca.server_cert())
            .arg("--key")
            .arg(ca.server_key())
            .arg("--dir")
            .arg(dir.path().join("mail"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some((user, password)) = credentials {
            cmd.args(["--user", user, "--password", password]);
        }
        let mut child = cmd.spawn().expect("python3 is needed for the SMTP sink");
        let stdout = child.stdout.take().unwrap();
        let mut first = String::new();
        // The first line names the port; EOF means the process died (its
        // stderr is inherited, so the reason is in the test output).
        let read = BufReader::new(stdout).read_line(&mut first);
        let port = read
            .ok()
            .and_then(|_| first.trim().rsplit(':').next()?.parse::<u16>().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("smtp_tls_sink.py did not start: {first:?}");
        };
        Some(TlsSmtpSink {
            child,
            dir,
            port,
            mode,
        })
    }

    /// The `smtp_url` valwatch is configured with for this server.
    pub fn url(&self) -> String {
        match self.mode {
            TlsMode::StartTls => format!("smtp://127.0.0.1:{}?tls=starttls", self.port),
            TlsMode::Implicit => format!("smtps://127.0.0.1:{}", self.port),
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        read_mails(&self.dir.path().join("mail"))
    }
}

impl Drop for TlsSmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
