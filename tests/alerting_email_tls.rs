//! Email over TLS against a real SMTP server process
//! (`tests/support/smtp_tls_sink.py`, aiosmtpd) whose certificate comes
//! from a throwaway CA made per test with the `openssl` CLI: STARTTLS (the
//! server refuses anything but EHLO before the upgrade, and AUTH before
//! TLS) and implicit TLS deliver when `ca_file` names that CA; without it
//! the very same server is refused for its certificate and the delivery is
//! kept for retry, never recorded as delivered. The password shows up in
//! no error, no stored attempt and no output of `valwatch test-alert`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;
use valwatch::alerting::{Engine, EpochContext};
use valwatch::analysis::{AttestationStatus, AttestationVerdict};
use valwatch::chain::{Epoch, Slot, ValidatorIndex};
use valwatch::config::alerts::{validate, AlertsConfig, RawAlerts};
use valwatch::status::GroupSpec;
use valwatch::store::{DeliveryRecord, EpochRecord, Store};

use common::smtp_tls::{TestCa, TlsMode, TlsSmtpSink};

const USER: &str = "ops";
const PASSWORD: &str = "s3cret-Passw0rd-xyz";
const EPOCH: Duration = Duration::from_secs(384);

/// The alerts configuration of one email channel to `sink`, trusting
/// `ca_file` when given; the password comes from the environment.
fn email_config(sink: &TlsSmtpSink, ca_file: Option<&std::path::Path>) -> AlertsConfig {
    let ca = ca_file
        .map(|p| format!("ca_file = {:?}\n", p.display().to_string()))
        .unwrap_or_default();
    // Told at once: these cases are about the transport, not the rhythm.
    let text = format!(
        r#"
        group_wait = "0s"
        group_interval = "0s"
        retry_min = "100ms"
        retry_max = "200ms"
        send_timeout = "5s"
        [[email]]
        name = "mail"
        smtp_url = "{url}"
        username = "{USER}"
        password_env = "TEST_SMTP_PASSWORD"
        from = "valwatch <valwatch@example.org>"
        to = ["ops@example.org"]
        {ca}
        "#,
        url = sink.url(),
    );
    let raw: RawAlerts = toml::from_str(&text).unwrap();
    let env = |k: &str| (k == "TEST_SMTP_PASSWORD").then(|| PASSWORD.to_string());
    let mut problems = Vec::new();
    let cfg = validate(raw, &env, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    cfg
}

fn missed(epoch: u64, validator: u64) -> EpochRecord {
    EpochRecord {
        epoch: Epoch(epoch),
        is_final: true,
        attestations: vec![AttestationVerdict {
            validator_index: ValidatorIndex(validator),
            epoch: Epoch(epoch),
            status: AttestationStatus::Missed,
            duty_slot: Some(Slot(epoch * 32 + 3)),
            inclusion_slot: None,
            inclusion_delay: None,
            late: Some(false),
            source_correct: None,
            target_correct: None,
            head_correct: None,
            reason: None,
        }],
        ..EpochRecord::default()
    }
}

/// The engine with its outbox running on a fresh SQLite store, after a
/// validator missed two epochs in a row (one `validator_down` firing).
struct Running {
    store: Store,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn fire(cfg: &AlertsConfig) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("v.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let groups = vec![GroupSpec {
            name: "g".into(),
            validators: vec![ValidatorIndex(7)],
        }];
        let engine = Arc::new(
            Engine::start(
                store.clone(),
                cfg.clone(),
                &groups,
                EPOCH,
                SystemTime::now(),
            )
            .await
            .unwrap(),
        );
        let cancel = CancellationToken::new();
        let outbox = engine.clone().run_outbox(cancel.clone());
        let task = tokio::spawn(async move { outbox.await.unwrap() });
        let now = SystemTime::now();
        for e in [40, 41] {
            engine
                .on_epoch(&missed(e, 7), &EpochContext::new(now, true))
                .await
                .unwrap();
        }
        Running {
            store,
            cancel,
            task,
            _dir: dir,
        }
    }

    /// The one email delivery of the firing notification.
    async fn delivery(&self) -> Option<DeliveryRecord> {
        let incidents = self
            .store
            .incidents_since(SystemTime::UNIX_EPOCH)
            .await
            .unwrap();
        let incident = incidents.first()?;
        let notes = self.store.notifications(&incident.id).await.unwrap();
        let note = notes.first()?;
        let mut d = self.store.deliveries(note.id).await.unwrap();
        assert!(d.len() <= 1, "{d:?}");
        d.pop()
    }

    /// Waits until `done` holds for the delivery (15 s at most).
    async fn wait_for(&self, what: &str, done: impl Fn(&DeliveryRecord) -> bool) -> DeliveryRecord {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(d) = self.delivery().await {
                if done(&d) {
                    return d;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.delivery().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn attempts(&self, d: &DeliveryRecord) -> Vec<(u64, bool, Option<String>)> {
        self.store.delivery_attempts(d.id).await.unwrap()
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap();
    }
}

#[tokio::test]
async fn starttls_with_auth_delivers_when_ca_file_names_the_private_ca() {
    let ca = TestCa::generate();
    let Some(sink) = TlsSmtpSink::start(&ca, TlsMode::StartTls, Some((USER, PASSWORD))) else {
        return;
    };
    let r = Running::fire(&email_config(&sink, Some(&ca.ca_pem()))).await;
    let d = r.wait_for("delivered", |d| d.status == "delivered").await;
    assert_eq!(d.channel, "mail");
    let attempts = r.attempts(&d).await;
    assert!(attempts.last().unwrap().1, "{attempts:?}");

    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    assert!(m.starttls, "not upgraded with STARTTLS: {m:?}");
    assert!(m.tls_version.is_some(), "{m:?}");
    assert_eq!(m.auth_user.as_deref(), Some(USER));
    assert_eq!(m.rcpt_tos, ["ops@example.org"]);
    assert!(
        m.data.contains("Subject: [CRITICAL] validator_down: g"),
        "{}",
        m.data
    );
    r.stop().await;
}

#[tokio::test]
async fn implicit_tls_delivers_when_ca_file_names_the_private_ca() {
    let ca = TestCa::generate();
    let Some(sink) = TlsSmtpSink::start(&ca, TlsMode::Implicit, Some((USER, PASSWORD))) else {
        return;
    };
    let r = Running::fire(&email_config(&sink, Some(&ca.ca_pem()))).await;
    r.wait_for("delivered", |d| d.status == "delivered").await;
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(!mails[0].starttls, "{:?}", mails[0]);
    assert!(mails[0].tls_version.is_some(), "{:?}", mails[0]);
    assert_eq!(mails[0].auth_user.as_deref(), Some(USER));
    r.stop().await;
}

/// The same servers, but valwatch does not trust their CA: every attempt
/// fails on the certificate, nothing reaches the server, the delivery stays
/// pending for retry, and no error holds the password.
#[tokio::test]
async fn without_ca_file_the_private_certificate_is_refused_and_retried() {
    for mode in [TlsMode::StartTls, TlsMode::Implicit] {
        let ca = TestCa::generate();
        let Some(sink) = TlsSmtpSink::start(&ca, mode, Some((USER, PASSWORD))) else {
            return;
        };
        let r = Running::fire(&email_config(&sink, None)).await;
        let d = r
            .wait_for("three failed attempts", |d| d.attempts >= 3)
            .await;
        assert_ne!(d.status, "delivered", "{mode:?}: {d:?}");
        let attempts = r.attempts(&d).await;
        assert!(attempts.len() >= 3, "{mode:?}: {attempts:?}");
        for (n, ok, error) in &attempts {
            assert!(!ok, "{mode:?}: attempt {n} succeeded: {attempts:?}");
            let error = error.as_deref().unwrap_or_default();
            assert!(
                error.contains("certificate") && error.contains("UnknownIssuer"),
                "{mode:?}: attempt {n}: {error}"
            );
            assert!(!error.contains(PASSWORD), "{mode:?}: {error}");
        }
        let last = d.last_error.clone().unwrap_or_default();
        assert!(last.contains("certificate"), "{mode:?}: {last}");
        // The server accepted no message; the delivery is still not done.
        assert!(sink.mails().is_empty(), "{mode:?}");
        let now = r.delivery().await.unwrap();
        assert_ne!(now.status, "delivered", "{mode:?}: {now:?}");
        r.stop().await;
    }
}

/// `valwatch test-alert` against the STARTTLS server with a real config
/// file: trusted through `ca_file` (relative to the config file) it is
/// accepted; without `ca_file` and
/// with a wrong password it fails with a reason, and the output never
/// shows the password.
#[test]
fn test_alert_over_starttls_reports_and_never_prints_the_password() {
    let ca = TestCa::generate();
    let Some(sink) = TlsSmtpSink::start(&ca, TlsMode::StartTls, Some((USER, PASSWORD))) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = |ca_file: Option<&std::path::Path>, password: &str| {
        let ca_line = ca_file
            .map(|p| format!("ca_file = {:?}\n", p.display().to_string()))
            .unwrap_or_default();
        let config = dir.path().join("valwatch.toml");
        std::fs::write(
            &config,
            format!(
                "[[alerts.email]]\nname = \"mail\"\nsmtp_url = \"{}\"\nusername = \"{USER}\"\n\
                 password_env = \"VALWATCH_TEST_SMTP_PW\"\nfrom = \"valwatch@example.org\"\n\
                 to = [\"ops@example.org\"]\n{ca_line}",
                sink.url()
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_valwatch"))
            .args(["test-alert", "--config", config.to_str().unwrap()])
            .env("VALWATCH_TEST_SMTP_PW", password)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(password), "password printed: {text}");
        (out.status.success(), text)
    };

    // A relative ca_file is read beside the config file, not from the
    // working directory (the project root here).
    std::fs::copy(ca.ca_pem(), dir.path().join("mail-ca.pem")).unwrap();
    let (ok, out) = run(Some(std::path::Path::new("mail-ca.pem")), PASSWORD);
    assert!(ok, "{out}");
    assert!(out.contains("mail: accepted"), "{out}");
    assert_eq!(sink.mails().len(), 1);
    assert!(sink.mails()[0].starttls);

    let (ok, out) = run(None, PASSWORD);
    assert!(!ok, "{out}");
    assert!(
        out.contains("mail: FAILED") && out.contains("certificate"),
        "{out}"
    );

    let wrong = "Wr0ng-password-abc";
    let (ok, out) = run(Some(&ca.ca_pem()), wrong);
    assert!(!ok, "{out}");
    assert!(out.contains("mail: FAILED") && out.contains("535"), "{out}");
    assert_eq!(sink.mails().len(), 1, "nothing more was accepted");
}

/// `ca_file` is checked when the configuration is read: a missing file,
/// a file without a certificate, a broken certificate, and a `ca_file`
/// on plain SMTP are each a problem named `alerts.email[i].ca_file`; a
/// real CA file is taken and used (the same one `test_alert` trusts).
#[test]
fn ca_file_is_validated_at_config_time() {
    let ca = TestCa::generate();
    let d = ca.dir();
    std::fs::write(d.join("empty.pem"), "no certificates here\n").unwrap();
    std::fs::write(
        d.join("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIBbroken\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    // A valid PEM block whose content is not a certificate.
    std::fs::write(
        d.join("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let entry = |url: &str, ca_file: &std::path::Path| {
        format!(
            "[[email]]\nsmtp_url = \"{url}\"\nfrom = \"v@example.org\"\nto = [\"o@example.org\"]\n\
             ca_file = {:?}\n",
            ca_file.display().to_string()
        )
    };
    let text = [
        entry("smtps://127.0.0.1:1", &d.join("missing.pem")),
        entry("smtps://127.0.0.1:1", &d.join("empty.pem")),
        entry("smtps://127.0.0.1:1", &d.join("broken.pem")),
        entry("smtps://127.0.0.1:1", &d.join("garbage.pem")),
        entry("smtp://127.0.0.1:1", &ca.ca_pem()),
        entry("smtp://127.0.0.1:1?tls=starttls", &ca.ca_pem()),
    ]
    .concat();
    let raw: RawAlerts = toml::from_str(&text).unwrap();
    let mut problems = Vec::new();
    let cfg = validate(raw, &|_| None, &mut problems);
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "alerts.email[0].ca_file",
            "alerts.email[1].ca_file",
            "alerts.email[2].ca_file",
            "alerts.email[3].ca_file",
            "alerts.email[4].ca_file",
        ],
        "{problems:?}"
    );
    let shown = format!("{problems:?}");
    assert!(shown.contains("missing.pem"), "{shown}");
    assert!(shown.contains("no certificate"), "{shown}");
    // The good entry is kept with the file's contents.
    let good = cfg
        .channels
        .iter()
        .find(|c| c.name == "email[5]")
        .expect("email[5] kept");
    match &good.kind {
        valwatch::config::alerts::ChannelKind::Email(e) => {
            let ca_file = e.ca.as_ref().expect("ca read");
            assert_eq!(ca_file.pem, std::fs::read(ca.ca_pem()).unwrap());
        }
        other => panic!("{other:?}"),
    }
    // The config's Debug names the file, not its bytes.
    assert!(format!("{cfg:?}").contains("ca.pem"));
    assert!(!format!("{cfg:?}").contains("BEGIN CERTIFICATE"));
}
