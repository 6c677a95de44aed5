//! A real SMTP server process for the alerting tests:
//! `tests/support/smtp_sink.py` (Python stdlib `smtpd`), one per test, on a
//! free loopback port, killed on drop. Each accepted message is a JSON file
//! in a temporary directory; `mails()` reads them in arrival order.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// One message as the SMTP server received it.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Mail {
    /// The user that authenticated (AUTH PLAIN), if any.
    pub auth_user: Option<String>,
    /// Envelope sender and recipients (without angle brackets).
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// Headers and body as received (line ends normalised to `\n`).
    pub data: String,
    /// The Subject header, decoded.
    pub subject: String,
    /// The text body with its transfer encoding undone (None: multipart).
    pub body: Option<String>,
    /// The TLS protocol version of the connection (`smtp_tls_sink.py`
    /// only; None: plain SMTP).
    #[serde(default)]
    pub tls_version: Option<String>,
    /// Whether the connection was upgraded with STARTTLS.
    #[serde(default)]
    pub starttls: bool,
}

pub struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl SmtpSink {
    /// Starts the server; with `credentials` only that user and password
    /// are accepted and every message must be sent authenticated.
    pub fn start(credentials: Option<(&str, &str)>) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("support")
            .join("smtp_sink.py");
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .args(["--port", "0", "--dir"])
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
            panic!("smtp_sink.py did not start: {first:?}");
        };
        SmtpSink { child, dir, port }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, in the order accepted.
    pub fn mails(&self) -> Vec<Mail> {
        read_mails(&self.dir.path().join("mail"))
    }

    pub fn count(&self) -> usize {
        self.mails().len()
    }
}

/// The messages a sink wrote into `dir` (`000001.json`, ...), in order.
pub fn read_mails(dir: &std::path::Path) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", p.display()))
        })
        .collect()
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
