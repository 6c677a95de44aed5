//! Alerting proven end to end on a simulated chain: the `valwatch` binary
//! follows a live simulator node (8 slots of 400 ms per epoch) where group
//! `flaky` (56-59) is offline in epochs 2-3 and comes back, group `gone`
//! (60-63) goes offline in epoch 2 for good and `steady` (0-55) never
//! fails. Five channels, every one a real receiver on 127.0.0.1: email to a
//! real SMTP server process (`tests/support/smtp_sink.py`), a JSON webhook
//! (signed), Slack, Discord and Telegram (its API base URL pointed at the
//! local HTTP server). Reminders every 2 s.
//!
//! The daemon is stopped (SIGTERM) in the middle of both incidents, while
//! the Discord receiver has refused everything so far, and started again
//! on the same database with Discord back. Everything asserted is derived
//! from the simulator's ground truth and the store's outbox: one firing per
//! incident and channel, reminders marked as such and only while firing,
//! one resolved notification for the group that came back, none for the one
//! that did not, nothing about healthy validators, nothing sent twice,
//! nothing lost.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::Value;
use valwatch::analysis::{AttestationStatus, ProposalStatus};
use valwatch::sim::{Behaviour, BehaviourKind, Mode, NodeOptions, Scenario, SimNode, ValidatorSet};
use valwatch::store::Store;

use common::smtp::SmtpSink;

const SLOT_MS: u64 = 400;
const SLOTS_PER_EPOCH: u64 = 8;
/// The last epoch the second run judges for good.
const UNTIL_EPOCH: u64 = 5;
const REMINDER: Duration = Duration::from_secs(2);
/// One epoch: the default group_wait and group_interval.
const EPOCH: Duration = Duration::from_millis(SLOT_MS * SLOTS_PER_EPOCH);
const SECRET: &str = "chain-secret";
const TG_TOKEN: &str = "4242:chain-token";

const GROUPS: [(&str, u64, u64); 3] = [("steady", 0, 55), ("flaky", 56, 59), ("gone", 60, 63)];

fn group_of(v: u64) -> &'static str {
    GROUPS
        .iter()
        .find(|(_, a, b)| (*a..=*b).contains(&v))
        .map(|g| g.0)
        .unwrap()
}

// ------------------------------------------------------------ receivers --

/// (path, headers, body) of one accepted request.
type Hit = (String, HeaderMap, Vec<u8>);

#[derive(Clone, Default)]
struct Http {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Path prefixes answering 503, and how often they did.
    down: Arc<Mutex<BTreeMap<String, usize>>>,
}

async fn receive(
    axum::extract::State(h): axum::extract::State<Http>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let path = uri.path().to_string();
    if let Some(n) = h
        .down
        .lock()
        .unwrap()
        .iter_mut()
        .find(|(p, _)| path.starts_with(p.as_str()))
        .map(|(_, n)| n)
    {
        *n += 1;
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    h.hits
        .lock()
        .unwrap()
        .push((path.clone(), headers, body.to_vec()));
    if path.ends_with("/sendMessage") {
        axum::Json(serde_json::json!({"ok": true, "result": {"message_id": 7}})).into_response()
    } else {
        "ok".into_response()
    }
}

impl Http {
    async fn start() -> (Http, SocketAddr) {
        let h = Http::default();
        let app = axum::Router::new().fallback(receive).with_state(h.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (h, addr)
    }

    fn bodies(&self, path: &str) -> Vec<Value> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, _, b)| serde_json::from_slice(b).unwrap())
            .collect()
    }

    fn refused(&self, path: &str) -> usize {
        self.down.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// What a chat message says: (the incident as the title names it, `rule:
/// subject`, kind from the title's tag). Texts carry no internal id: one
/// rule and subject has at most one open incident, which is what a reader
/// goes by. An event and a firing read the same and are both "firing".
fn read_text(text: &str) -> (String, String) {
    let title = text.lines().next().unwrap_or_default();
    assert!(
        !text.contains("validator_down/") && !text.contains("proposal_missed/"),
        "an internal incident id in the text: {text:?}"
    );
    let (tag, named) = title
        .split_once("] ")
        .unwrap_or_else(|| panic!("no title tag in {text:?}"));
    let kind = if tag == "[RESOLVED" {
        "resolved"
    } else if tag == "[RECOVERED" {
        "recovered"
    } else if tag == "[STILL FIRING" {
        "reminder"
    } else if tag.ends_with(" UPDATE") {
        "update"
    } else {
        "firing"
    };
    (named.to_string(), kind.to_string())
}

/// A mail's thread: the root Message-ID it replies to (`References`), or
/// its own for the first of a thread; and its kind, from the subject.
fn read_mail(m: &common::smtp::Mail) -> (String, String) {
    let header = |name: &str| {
        m.data.lines().take_while(|l| !l.is_empty()).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let own = header("Message-ID").unwrap_or_else(|| panic!("no Message-ID in {}", m.data));
    let root = header("References").unwrap_or(own);
    let (_, kind) = read_text(m.body.as_deref().unwrap());
    (root, kind)
}

/// The store's kind as a text channel shows it.
fn as_text_kind(kind: &str) -> &str {
    if kind == "event" {
        "firing"
    } else {
        kind
    }
}

/// How a channel names an incident: the JSON payload by its id, a mail by
/// its thread, a chat message by rule and subject.
fn channel_key(channel: &str, id: &str, rule: &str, subject: &str) -> String {
    match channel {
        "json" => id.to_string(),
        "mail" => valwatch::alerting::render::mail_id(id),
        _ => format!("{rule}: {subject}"),
    }
}

struct World {
    http: Http,
    smtp: SmtpSink,
}

const CHANNELS: [&str; 5] = ["mail", "json", "slack", "discord", "telegram"];

impl World {
    fn tg_path() -> String {
        format!("/tg/bot{TG_TOKEN}/sendMessage")
    }

    /// Every message a channel received, as (incident id, kind), in order.
    fn received(&self, channel: &str) -> Vec<(String, String)> {
        let text = |v: &Value, key: &str| read_text(v[key].as_str().unwrap());
        match channel {
            "mail" => self.smtp.mails().iter().map(read_mail).collect(),
            "json" => self
                .http
                .bodies("/hook")
                .iter()
                .map(|m| {
                    (
                        m["id"].as_str().unwrap().to_string(),
                        m["kind"].as_str().unwrap().to_string(),
                    )
                })
                .collect(),
            "slack" => self
                .http
                .bodies("/slack")
                .iter()
                .map(|v| text(v, "text"))
                .collect(),
            "discord" => self
                .http
                .bodies("/discord")
                .iter()
                .map(|v| text(v, "content"))
                .collect(),
            "telegram" => self
                .http
                .bodies(&Self::tg_path())
                .iter()
                .map(|v| text(v, "text"))
                .collect(),
            _ => unreachable!(),
        }
    }

    fn has_firing(&self, channel: &str, id: &str) -> bool {
        let (rule, rest) = id.split_once('/').unwrap();
        let subject = rest.split('/').next().unwrap();
        let key = channel_key(channel, id, rule, subject);
        self.received(channel)
            .iter()
            .any(|(i, k)| *i == key && k == "firing")
    }
}

// --------------------------------------------------------------- daemon --

/// A `valwatch run` process; killed on drop.
struct Daemon(Child);

impl Daemon {
    fn start(config: &Path, until: Option<u64>) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_valwatch"));
        cmd.args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--from-epoch",
            "0",
        ])
        .env("CHAIN_TEST_SMTP_PASSWORD", "hunter2")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        if let Some(u) = until {
            cmd.args(["--until-epoch", &u.to_string()]);
        }
        Daemon(cmd.spawn().unwrap())
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "valwatch did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM: the graceful stop an operator's service manager sends.
    fn terminate(&mut self) -> ExitStatus {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        self.wait(Duration::from_secs(20))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ----------------------------------------------------------------- test --

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_hears_each_incident_once_across_a_restart() {
    // The chain: genesis on a whole second, 2 s from now (time for the
    // daemon to start before slot 0).
    let genesis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let scenario = Scenario {
        seed: 77,
        validators: 64,
        slots_per_epoch: SLOTS_PER_EPOCH,
        slot_duration_ms: SLOT_MS,
        genesis_time: genesis,
        behaviours: vec![
            Behaviour::new(ValidatorSet::range(56, 59), BehaviourKind::Offline).epochs(2, 3),
            Behaviour {
                from_epoch: 2,
                ..Behaviour::new(ValidatorSet::range(60, 63), BehaviourKind::Offline)
            },
        ],
        ..Scenario::default()
    };
    let node = SimNode::start(
        scenario,
        NodeOptions {
            mode: Mode::Live {
                max_epochs: UNTIL_EPOCH + 6,
            },
            ..NodeOptions::default()
        },
    )
    .await
    .unwrap();

    let (http, h) = Http::start().await;
    let smtp = SmtpSink::start(Some(("ops", "hunter2")));
    let w = World { http, smtp };
    // Discord is down for the whole first run.
    w.http.down.lock().unwrap().insert("/discord".into(), 0);

    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let config = dir.path().join("valwatch.toml");
    let groups: String = GROUPS
        .iter()
        .map(|(n, a, b)| format!("[[groups]]\nname = \"{n}\"\nvalidators = \"{a}-{b}\"\n"))
        .collect();
    std::fs::write(
        &config,
        format!(
            r#"
[[beacon_nodes]]
name = "sim"
url = "{node}"

{groups}
[database]
url = "{db_url}"

[http]
listen = "off"

[alerts]
reminder_interval = "{reminder}s"
retry_min = "200ms"
retry_max = "1s"
send_timeout = "5s"

[[alerts.email]]
name = "mail"
smtp_url = "{smtp}"
username = "ops"
password_env = "CHAIN_TEST_SMTP_PASSWORD"
from = "valwatch <valwatch@example.org>"
to = ["ops@example.org", "oncall@example.org"]

[[alerts.webhook]]
name = "json"
url = "http://{h}/hook"
format = "json"
secret = "{SECRET}"

[[alerts.webhook]]
name = "slack"
url = "http://{h}/slack"
format = "slack"

[[alerts.webhook]]
name = "discord"
url = "http://{h}/discord"
format = "discord"

[[alerts.telegram]]
name = "telegram"
bot_token = "{TG_TOKEN}"
chat_id = "-100123"
api_url = "http://{h}/tg"
"#,
            node = node.base_url(),
            reminder = REMINDER.as_secs(),
            smtp = w.smtp.url(),
        ),
    )
    .unwrap();

    // ---- run 1: until both incidents are out (Discord refusing them).
    let mut first = Daemon::start(&config, None);
    let fired = |w: &World| -> Option<(String, String)> {
        let json = w.received("json");
        let id = |g: &str| {
            json.iter()
                .find(|(i, k)| k == "firing" && i.starts_with(&format!("validator_down/{g}/")))
                .map(|(i, _)| i.clone())
        };
        Some((id("flaky")?, id("gone")?))
    };
    wait_for(
        "both validator_down incidents",
        Duration::from_secs(40),
        || {
            fired(&w).is_some_and(|(a, b)| {
                ["mail", "slack", "telegram"]
                    .iter()
                    .all(|c| w.has_firing(c, &a) && w.has_firing(c, &b))
            }) && w.http.refused("/discord") > 0
        },
    )
    .await;
    let (flaky_id, gone_id) = fired(&w).unwrap();
    assert!(
        first.terminate().success(),
        "valwatch stopped with an error"
    );
    {
        let store = valwatch::app::open_store(&db_url).await.unwrap();
        let open: Vec<String> = store
            .open_incidents()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert!(
            open.contains(&flaky_id) && open.contains(&gone_id),
            "the restart must come in the middle of both incidents: open {open:?}"
        );
        store.close().await;
    }
    assert!(w.received("discord").is_empty());

    // ---- run 2: Discord is back; follow until UNTIL_EPOCH is final.
    w.http.down.lock().unwrap().clear();
    let mut second = Daemon::start(&config, Some(UNTIL_EPOCH));
    let status = second.wait(Duration::from_secs(90));
    assert!(status.success(), "valwatch stopped with an error");
    // A delivery cut short by the stop stays pending in the outbox; give
    // the receivers a moment for anything in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let store: Store = valwatch::app::open_store(&db_url).await.unwrap();
    let cursor = store.cursor().await.unwrap().unwrap().0;
    assert!(cursor >= UNTIL_EPOCH, "judged up to {cursor}");
    let truth = node.chain().read().unwrap().truth(0, cursor, None);

    // ---- ground truth: who missed what.
    let mut missed: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    let mut back: BTreeSet<&str> = BTreeSet::new();
    let mut last_missed: BTreeMap<u64, u64> = BTreeMap::new();
    for a in &truth.attestations {
        if a.status == AttestationStatus::Missed {
            missed
                .entry(group_of(a.validator_index.0))
                .or_default()
                .insert(a.validator_index.0);
            let e = last_missed.entry(a.validator_index.0).or_default();
            *e = (*e).max(a.epoch.0);
        }
    }
    for a in &truth.attestations {
        let v = a.validator_index.0;
        if a.status == AttestationStatus::Included
            && last_missed.get(&v).is_some_and(|m| a.epoch.0 > *m)
        {
            back.insert(group_of(v));
        }
    }
    // The scenario did what it says, or the rest proves little.
    assert_eq!(
        missed.keys().copied().collect::<Vec<_>>(),
        ["flaky", "gone"],
        "{missed:?}"
    );
    assert_eq!(missed["flaky"], (56..=59).collect());
    assert_eq!(missed["gone"], (60..=63).collect());
    assert_eq!(back, BTreeSet::from(["flaky"]));
    // Missed proposals of watched validators, as events by (group, epoch):
    // only those of validators that were not down then. One cause, one
    // incident: a down validator's missed proposal is part of its outage.
    let offline: BTreeSet<(u64, u64)> = truth
        .attestations
        .iter()
        .filter(|a| a.status == AttestationStatus::Missed)
        .map(|a| (a.validator_index.0, a.epoch.0))
        .collect();
    let mut proposal_events: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut folded = 0;
    for p in &truth.proposals {
        if p.status == ProposalStatus::Missed {
            let v = p.validator_index.unwrap().0;
            if offline.contains(&(v, p.slot.0 / SLOTS_PER_EPOCH)) {
                folded += 1;
                continue;
            }
            let id = format!(
                "proposal_missed/{}/{}",
                group_of(v),
                p.slot.0 / SLOTS_PER_EPOCH
            );
            proposal_events.entry(id).or_default().insert(v);
        }
    }

    // ---- the store: incidents and what each channel got of them.
    let incidents = store.incidents_since(UNIX_EPOCH).await.unwrap();
    let mut got_events: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    // channel -> (incident id, kind) the outbox marks delivered.
    let mut delivered: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut pending = 0;
    for i in &incidents {
        let notes = store.notifications(&i.id).await.unwrap();
        match i.rule.as_str() {
            "validator_down" => {
                let group = i.subject.as_str();
                assert!(
                    group == "flaky" || group == "gone",
                    "an incident about a healthy group: {i:?}"
                );
                let want_id = if group == "flaky" {
                    &flaky_id
                } else {
                    &gone_id
                };
                assert_eq!(&i.id, want_id, "one incident per group");
                let named: BTreeSet<u64> = notes
                    .iter()
                    .filter(|n| n.kind == "firing" || n.kind == "update")
                    .flat_map(|n| {
                        serde_json::from_value::<Vec<u64>>(n.payload["validators"].clone()).unwrap()
                    })
                    .collect();
                // Named as down: only validators that missed; and every one
                // that missed is named or, when the run ended within a
                // group_interval of its evidence, in the incident awaiting
                // the next update.
                assert!(named.is_subset(&missed[group]), "{group}: named {named:?}");
                let known: BTreeSet<u64> = named
                    .union(&i.validators.iter().copied().collect())
                    .copied()
                    .collect();
                assert!(
                    missed[group].is_subset(&known),
                    "{group}: missed {:?}, named or pending {known:?}",
                    missed[group]
                );
                // Everyone who came back is named as back, once.
                let came_back: Vec<u64> = notes
                    .iter()
                    .flat_map(|n| {
                        n.payload["recovered"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                    })
                    .map(|r| r["validator"].as_u64().unwrap())
                    .collect();
                if back.contains(group) {
                    let mut sorted = came_back.clone();
                    sorted.sort();
                    assert_eq!(
                        sorted,
                        missed[group].iter().copied().collect::<Vec<_>>(),
                        "{group}: every validator that came back is named once as back"
                    );
                } else {
                    assert!(
                        came_back.is_empty(),
                        "{group} never came back: {came_back:?}"
                    );
                }
                // The rhythm: at most one update (or recovery) per epoch.
                let changes: Vec<SystemTime> = notes
                    .iter()
                    .filter(|n| n.kind == "update")
                    .map(|n| n.created_at)
                    .collect();
                for pair in changes.windows(2) {
                    let gap = pair[1].duration_since(pair[0]).unwrap();
                    assert!(gap >= EPOCH, "{group}: two updates {gap:?} apart");
                }
                let kinds: Vec<&str> = notes
                    .iter()
                    .map(|n| n.payload["kind"].as_str().unwrap())
                    .collect();
                assert_eq!(kinds[0], "firing", "{kinds:?}");
                assert_eq!(kinds.iter().filter(|k| **k == "firing").count(), 1);
                let resolved = kinds.iter().filter(|k| **k == "resolved").count();
                if back.contains(group) {
                    assert_eq!(resolved, 1, "{group}: {kinds:?}");
                    assert_eq!(kinds.last(), Some(&"resolved"), "{group}: {kinds:?}");
                    assert!(i.resolved_at.is_some());
                } else {
                    assert_eq!(resolved, 0, "{group} never came back: {kinds:?}");
                    assert!(i.resolved_at.is_none(), "{group} stays firing");
                }
                // Reminders: only while firing, never sooner than the
                // interval after the incident's previous notification.
                for pair in notes.windows(2) {
                    if pair[1].kind == "reminder" {
                        let gap = pair[1]
                            .created_at
                            .duration_since(pair[0].created_at)
                            .unwrap();
                        assert!(
                            gap >= REMINDER,
                            "{group}: a reminder {gap:?} after {}",
                            pair[0].kind
                        );
                        assert_eq!(pair[1].payload["state"], "firing");
                    }
                }
                let reminders = kinds.iter().filter(|k| **k == "reminder").count();
                if group == "gone" {
                    assert!(reminders >= 2, "{group}: {kinds:?}");
                }
            }
            "proposal_missed" => {
                assert!(i.is_event);
                got_events.insert(
                    i.id.clone(),
                    i.validators.iter().copied().collect::<BTreeSet<u64>>(),
                );
                assert_eq!(notes.len(), 1);
                assert_eq!(notes[0].kind, "event");
            }
            other => panic!("no {other} incident expected here: {i:?}"),
        }
        for n in &notes {
            // A `recovered` is stored as an update; its payload says which.
            let kind = n.payload["kind"].as_str().unwrap().to_string();
            for d in store.deliveries(n.id).await.unwrap() {
                match d.status.as_str() {
                    "delivered" => delivered.entry(d.channel.clone()).or_default().push((
                        channel_key(&d.channel, &i.id, &i.rule, &i.subject),
                        kind.clone(),
                    )),
                    "pending" => pending += 1,
                    s => panic!("delivery {s}: {d:?}"),
                }
            }
        }
    }
    assert_eq!(
        got_events, proposal_events,
        "proposal events vs ground truth ({folded} missed while down, not events)"
    );

    // ---- each channel received exactly what the outbox delivered to it:
    // nothing twice, nothing the store does not know of.
    let sorted = |mut v: Vec<(String, String)>| {
        v.sort();
        v
    };
    for c in CHANNELS {
        let want: Vec<(String, String)> = delivered
            .get(c)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|(i, k)| {
                let k = if c == "json" {
                    k
                } else {
                    as_text_kind(&k).to_string()
                };
                (i, k)
            })
            .collect();
        assert_eq!(sorted(w.received(c)), sorted(want), "channel {c}");
        // Nothing lost: the firings and the resolution reached every
        // channel, Discord included (it was down for all of run 1).
        for (id, group, kind) in [
            (&flaky_id, "flaky", "firing"),
            (&gone_id, "gone", "firing"),
            (&flaky_id, "flaky", "resolved"),
        ] {
            let key = channel_key(c, id, "validator_down", group);
            let n = w
                .received(c)
                .iter()
                .filter(|(i, k)| *i == key && k == kind)
                .count();
            assert_eq!(n, 1, "channel {c}: {kind} of {id}");
        }
        let reminders = w
            .received(c)
            .iter()
            .filter(|(_, k)| k == "reminder")
            .count();
        assert!(reminders >= 1, "channel {c} got no reminder");
    }
    eprintln!(
        "{} incidents; {} deliveries still pending at the stop; json got {} messages",
        incidents.len(),
        pending,
        w.received("json").len()
    );

    // ---- payload details.
    for (_, headers, body) in w
        .http
        .hits
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p == "/hook")
    {
        let m: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(m["version"], 2);
        let expected = format!(
            "sha256={}",
            valwatch::alerting::channels::signature(SECRET.as_bytes(), body)
        );
        assert_eq!(headers["x-valwatch-signature"].to_str().unwrap(), expected);
        assert_eq!(
            m["state"],
            if m["kind"] == "resolved" {
                "resolved"
            } else {
                "firing"
            }
        );
        let named: Vec<u64> = serde_json::from_value(m["validators"].clone()).unwrap();
        assert!(
            named.iter().all(|v| *v >= 56),
            "a healthy validator was named: {m}"
        );
    }
    for m in w.smtp.mails() {
        assert_eq!(m.auth_user.as_deref(), Some("ops"));
        assert_eq!(m.mail_from, "valwatch@example.org");
        assert_eq!(m.rcpt_tos, ["ops@example.org", "oncall@example.org"]);
        let title = m
            .body
            .as_deref()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        assert_eq!(m.subject, title);
    }
    for v in w.http.bodies(&World::tg_path()) {
        assert_eq!(v["chat_id"], "-100123");
    }
    store.close().await;
    node.shutdown().await;
}
