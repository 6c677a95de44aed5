//! PURE rendering: the versioned notification payload and what each
//! channel sends for it (plain text, Slack, Discord, Telegram,
//! Alertmanager bodies). Must not: send anything.
//!
//! The JSON payload (`Message`, version 2) is the contract with webhook
//! receivers. Fields:
//! - `version`: 2; a breaking change increments it. Version 2 added
//!   `recovered`, `down_since_epoch`, `down_since`, `epoch_time`,
//!   `evidence`, `status_url`, `explorer_urls` and `detail`, the kind
//!   `recovered`, and made `epoch` the epoch the notification is about
//!   (version 1: the incident's first epoch, now `down_since_epoch`).
//! - `id`: the incident id (stable over firing, updates, reminders and the
//!   resolution); `notification_id`: unique per notification, for dedup.
//!   Neither appears in the text.
//! - `kind`: `firing` (first notification, after `group_wait`) | `update`
//!   (more validators down; some may be back too) | `recovered` (some came
//!   back, others still down) | `resolved` (the last ones came back, or the
//!   condition ended) | `reminder` | `event` (one-shot: a missed proposal,
//!   a slashing) | `test`.
//! - `state`: `firing` | `resolved`.
//! - `rule`, `severity` (`info` | `warning` | `critical`), `subject` (group,
//!   node, `network` or `monitor`), `group` (the group, or null).
//! - `validators`: the validators down now (ascending; empty once resolved).
//! - `recovered`: the validators that came back with this notification,
//!   each with `validator`, `down_since_epoch`, `down_since` (UTC),
//!   `back_epoch`, `back_at` (UTC), `missed_epochs`, `missed_proposals`
//!   (slots), `missed_sync_slots`, `balance_change_gwei` (while down),
//!   `missed_income_gwei` (the rewards it cost, from the nodes' rewards
//!   answers stored so far: a lower bound) and `missed_income_estimated`.
//! - `epoch`, `epoch_time`: the epoch this notification is about (the
//!   newest judged) and its start in UTC; `down_since_epoch`,
//!   `down_since`: when the incident began.
//! - `summary`: one human line; `detail`: the rule's own sentence;
//!   `evidence`: what put the validators there, in words.
//! - `status_url`, `explorer_urls`: links, when configured.
//! - `started_at`, `resolved_at`: RFC 3339 UTC.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Payload version; receivers should check it.
pub const PAYLOAD_VERSION: u32 = 2;

/// Indices listed in text before the rest is only counted: chat messages
/// stay readable when a whole group goes down (the JSON payload has all).
pub const TEXT_SAMPLE: usize = 20;

/// Explorer links a text shows: enough to click through to the first
/// validators, few enough that the message stays readable.
const EXPLORER_LINKS: usize = 3;

/// Discord rejects message content above 2000 characters.
const DISCORD_LIMIT: usize = 2000;
/// Telegram rejects message text above 4096 characters.
const TELEGRAM_LIMIT: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub version: u32,
    pub id: String,
    pub notification_id: String,
    pub kind: String,
    pub state: String,
    pub rule: String,
    pub severity: String,
    pub subject: String,
    pub group: Option<String>,
    pub validators: Vec<u64>,
    #[serde(default)]
    pub recovered: Vec<Recovered>,
    pub epoch: Option<u64>,
    #[serde(default)]
    pub epoch_time: Option<String>,
    #[serde(default)]
    pub down_since_epoch: Option<u64>,
    #[serde(default)]
    pub down_since: Option<String>,
    pub summary: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub evidence: Option<String>,
    #[serde(default)]
    pub status_url: Option<String>,
    #[serde(default)]
    pub explorer_urls: Vec<String>,
    pub started_at: String,
    pub resolved_at: Option<String>,
    /// Labels (labels_file, issue 13) of the validators named above, the
    /// first `TEXT_SAMPLE` of them; absent when none has a label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<u64, Vec<String>>,
}

/// One validator back from an outage, with what the outage cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovered {
    pub validator: u64,
    pub down_since_epoch: u64,
    pub down_since: Option<String>,
    pub back_epoch: Option<u64>,
    pub back_at: Option<String>,
    /// Epochs without an included vote.
    pub missed_epochs: u64,
    pub missed_proposals: Vec<u64>,
    pub missed_sync_slots: u32,
    pub balance_change_gwei: Option<i64>,
    /// Rewards the outage cost as far as the nodes' rewards answers are
    /// stored yet (ideal − actual, a missed proposal estimated): a lower
    /// bound while the last epochs are not final. None: none known.
    #[serde(default)]
    pub missed_income_gwei: Option<i64>,
    /// Whether `missed_income_gwei` holds an estimate (a missed proposal).
    #[serde(default)]
    pub missed_income_estimated: bool,
}

/// "-0.000042 ETH": Gwei as ETH, with the digits that say something.
pub fn eth(gwei: i64) -> String {
    let sign = if gwei < 0 { "-" } else { "" };
    let g = gwei.unsigned_abs();
    let mut frac = format!("{:09}", g % 1_000_000_000);
    while frac.len() > 4 && frac.ends_with('0') {
        frac.pop();
    }
    format!("{sign}{}.{frac} ETH", g / 1_000_000_000)
}

fn validators_word(n: usize) -> String {
    if n == 1 {
        "1 validator".into()
    } else {
        format!("{n} validators")
    }
}

/// "epoch 6 (2026-11-25T18:10:43Z)".
fn epoch_at(epoch: u64, time: Option<&str>) -> String {
    match time {
        Some(t) => format!("epoch {epoch} ({t})"),
        None => format!("epoch {epoch}"),
    }
}

impl Recovered {
    /// One line for people.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{}: down since {}",
            self.validator,
            epoch_at(self.down_since_epoch, self.down_since.as_deref())
        );
        if let Some(b) = self.back_epoch {
            s.push_str(&format!(
                ", back in {}",
                epoch_at(b, self.back_at.as_deref())
            ));
        }
        let mut missed = vec![format!(
            "{} epoch{} of votes",
            self.missed_epochs,
            if self.missed_epochs == 1 { "" } else { "s" }
        )];
        if !self.missed_proposals.is_empty() {
            let slots: Vec<String> = self.missed_proposals.iter().map(u64::to_string).collect();
            missed.push(format!(
                "{} proposal{} (slot {})",
                slots.len(),
                if slots.len() == 1 { "" } else { "s" },
                slots.join(", ")
            ));
        }
        if self.missed_sync_slots > 0 {
            missed.push(format!("{} sync-committee slots", self.missed_sync_slots));
        }
        s.push_str(&format!("; missed {}", missed.join(", ")));
        if let Some(c) = self.balance_change_gwei {
            s.push_str(&format!("; balance {} while down", eth(c)));
        }
        if let Some(m) = self.missed_income_gwei {
            s.push_str(&format!(
                "; the outage cost at least {}{} in rewards",
                eth(m),
                if self.missed_income_estimated {
                    " (a missed proposal estimated)"
                } else {
                    ""
                }
            ));
        }
        s
    }
}

/// The Message-ID that stands for `key` (an incident or notification id):
/// a hash, so that no internal id shows in mail headers.
pub fn mail_id(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(key.as_bytes());
    format!("<{}@valwatch>", &hex::encode(h)[..32])
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// "1, 2, 3" or "1, 2, … and 80 more".
pub fn index_list(v: &[u64]) -> String {
    let shown: Vec<String> = v.iter().take(TEXT_SAMPLE).map(u64::to_string).collect();
    let mut s = shown.join(", ");
    if v.len() > TEXT_SAMPLE {
        s.push_str(&format!(" and {} more", v.len() - TEXT_SAMPLE));
    }
    s
}

fn cut(mut s: String, limit: usize) -> String {
    if s.chars().count() > limit {
        s = s.chars().take(limit.saturating_sub(1)).collect();
        s.push('…');
    }
    s
}

impl Message {
    pub fn is_resolved(&self) -> bool {
        self.state == "resolved"
    }

    /// Email threading: the incident's root Message-ID (that of its first
    /// notification) and this notification's own. A firing, its updates,
    /// recoveries, reminders and resolution form one thread in mail
    /// clients (`In-Reply-To`/`References` name the root). The ids are
    /// hashes: no internal id shows in the headers either.
    pub fn thread_ids(&self) -> (String, String) {
        let root = mail_id(&self.id);
        let own = match self.kind.as_str() {
            "firing" | "event" | "test" => root.clone(),
            _ => mail_id(&self.notification_id),
        };
        (root, own)
    }

    /// One line for subjects and chat previews.
    pub fn title(&self) -> String {
        let tag = match self.kind.as_str() {
            "resolved" => "RESOLVED".to_owned(),
            "recovered" => "RECOVERED".to_owned(),
            "reminder" => "STILL FIRING".to_owned(),
            "test" => "TEST".to_owned(),
            // More validators joined an open incident: say so, so that a
            // reader of a chat or a mailbox tells it from a new incident.
            "update" => format!("{} UPDATE", self.severity.to_uppercase()),
            _ => self.severity.to_uppercase(),
        };
        format!("[{tag}] {}: {}", self.rule, self.subject)
    }

    /// The one human line: who, since when, what now.
    pub fn headline(&self) -> String {
        let group = self.group.as_deref().unwrap_or(&self.subject);
        let since = self
            .down_since_epoch
            .map(|e| epoch_at(e, self.down_since.as_deref()));
        let back = self.recovered.len();
        match (self.rule.as_str(), self.kind.as_str()) {
            ("validator_down", "resolved") => format!(
                "all validators of group {group} are back{}",
                if back > 0 {
                    format!(" ({} came back with this message)", validators_word(back))
                } else {
                    String::new()
                }
            ),
            ("validator_down", "recovered") => format!(
                "{} of group {group} came back; {} still down since {}",
                validators_word(back),
                validators_word(self.validators.len()),
                since.unwrap_or_default()
            ),
            ("validator_down", _) => {
                let mut s = format!(
                    "{} of group {group} down since {}",
                    validators_word(self.validators.len()),
                    since.unwrap_or_default()
                );
                if back > 0 {
                    s.push_str(&format!("; {} came back", validators_word(back)));
                }
                s
            }
            (_, "resolved") => format!("over: {}", self.detail),
            _ => self.detail.clone(),
        }
    }

    /// The full plain text, as the on-call person reads it.
    pub fn text(&self) -> String {
        let mut s = format!("{}\n{}\n", self.title(), self.summary);
        if let Some(e) = &self.evidence {
            s.push_str(&format!("evidence: {e}\n"));
        }
        if self.rule != "validator_down"
            && self.kind != "resolved"
            && !self.detail.is_empty()
            && self.detail != self.summary
        {
            s.push_str(&format!("{}\n", self.detail));
        }
        if !self.validators.is_empty() {
            // Only a down incident's list is "down now"; an event names
            // the validators it is about.
            let label = if self.rule == "validator_down" {
                "down now"
            } else {
                "validators"
            };
            s.push_str(&format!(
                "{label} ({}): {}\n",
                self.validators.len(),
                index_list(&self.validators)
            ));
        }
        if !self.recovered.is_empty() {
            s.push_str(&format!("back ({}):\n", self.recovered.len()));
            for r in self.recovered.iter().take(TEXT_SAMPLE) {
                s.push_str(&format!("  {}\n", r.line()));
            }
            if self.recovered.len() > TEXT_SAMPLE {
                s.push_str(&format!(
                    "  and {} more\n",
                    self.recovered.len() - TEXT_SAMPLE
                ));
            }
        }
        if !self.labels.is_empty() {
            let shown: Vec<String> = self
                .labels
                .iter()
                .map(|(v, l)| format!("{v} [{}]", l.join(", ")))
                .collect();
            s.push_str(&format!("labels: {}\n", shown.join("; ")));
        }
        // The epoch a group's notification is about (a network or node
        // incident's epoch is the rule's own, already in its sentence).
        if let (Some(e), Some(_)) = (self.epoch, &self.group) {
            s.push_str(&format!(
                "as of {}\n",
                epoch_at(e, self.epoch_time.as_deref())
            ));
        }
        s.push_str(&format!("started: {}\n", self.started_at));
        if let Some(r) = &self.resolved_at {
            s.push_str(&format!("resolved: {r}\n"));
        }
        if let Some(u) = &self.status_url {
            s.push_str(&format!("status: {u}\n"));
        }
        // A few links; the JSON payload has them all.
        for u in self.explorer_urls.iter().take(EXPLORER_LINKS) {
            s.push_str(&format!("explorer: {u}\n"));
        }
        if self.explorer_urls.len() > EXPLORER_LINKS {
            s.push_str(&format!(
                "explorer: {} more in the JSON payload\n",
                self.explorer_urls.len() - EXPLORER_LINKS
            ));
        }
        s
    }

    pub fn slack_body(&self) -> serde_json::Value {
        serde_json::json!({ "text": self.text() })
    }

    pub fn discord_body(&self) -> serde_json::Value {
        serde_json::json!({ "content": cut(self.text(), DISCORD_LIMIT) })
    }

    pub fn telegram_body(&self, chat_id: &str) -> serde_json::Value {
        serde_json::json!({
            "chat_id": chat_id,
            "text": cut(self.text(), TELEGRAM_LIMIT),
            "disable_web_page_preview": true,
        })
    }

    /// Alertmanager API v2 `POST /api/v2/alerts` body: one alert whose
    /// labels identify the incident; a resolved one carries `endsAt`.
    pub fn alertmanager_body(&self) -> serde_json::Value {
        let mut alert = serde_json::json!({
            "labels": {
                "alertname": format!("valwatch_{}", self.rule),
                "severity": self.severity,
                "subject": self.subject,
                "incident": self.id,
            },
            "annotations": {
                "summary": self.summary,
                "validators": index_list(&self.validators),
            },
            "startsAt": self.started_at,
        });
        if let Some(r) = &self.resolved_at {
            alert["endsAt"] = serde_json::Value::String(r.clone());
        }
        serde_json::Value::Array(vec![alert])
    }

    /// The one test notification `valwatch test-alert` sends.
    pub fn test(now: SystemTime) -> Message {
        let at = rfc3339(now);
        Message {
            version: PAYLOAD_VERSION,
            id: format!("test/{at}"),
            notification_id: format!("test/{at}"),
            kind: "test".into(),
            state: "firing".into(),
            rule: "test".into(),
            severity: "info".into(),
            subject: "valwatch".into(),
            group: None,
            validators: Vec::new(),
            recovered: Vec::new(),
            epoch: None,
            epoch_time: None,
            down_since_epoch: None,
            down_since: None,
            summary: "valwatch test notification: this channel works".into(),
            detail: String::new(),
            evidence: None,
            status_url: None,
            explorer_urls: Vec::new(),
            started_at: at,
            resolved_at: None,
            labels: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: u64, resolved: bool) -> Message {
        Message {
            version: PAYLOAD_VERSION,
            id: "validator_down/g/1".into(),
            notification_id: "7".into(),
            kind: if resolved { "resolved" } else { "firing" }.into(),
            state: if resolved { "resolved" } else { "firing" }.into(),
            rule: "validator_down".into(),
            severity: "critical".into(),
            subject: "g".into(),
            group: Some("g".into()),
            validators: (0..n).collect(),
            recovered: Vec::new(),
            epoch: Some(5),
            epoch_time: None,
            down_since_epoch: Some(5),
            down_since: None,
            summary: "down".into(),
            detail: "down".into(),
            evidence: None,
            status_url: None,
            explorer_urls: Vec::new(),
            started_at: "2024-01-01T00:00:00Z".into(),
            resolved_at: resolved.then(|| "2024-01-01T01:00:00Z".into()),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn labels_are_in_the_text_and_absent_from_the_payload_when_none() {
        let mut m = sample(2, false);
        assert!(!m.text().contains("labels:"));
        assert!(serde_json::to_value(&m).unwrap().get("labels").is_none());
        m.labels = BTreeMap::from([(1, vec!["eu".to_string(), "rack:3".to_string()])]);
        assert!(
            m.text().contains("labels: 1 [eu, rack:3]\n"),
            "{}",
            m.text()
        );
        let back: Message = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn titles_say_what_kind_of_notification_it_is() {
        let mut m = sample(3, false);
        let cases = [
            ("firing", "[CRITICAL] "),
            ("update", "[CRITICAL UPDATE] "),
            ("reminder", "[STILL FIRING] "),
            ("resolved", "[RESOLVED] "),
            ("test", "[TEST] "),
        ];
        for (kind, prefix) in cases {
            m.kind = kind.into();
            assert!(m.title().starts_with(prefix), "{kind}: {}", m.title());
        }
    }

    #[test]
    fn long_lists_are_counted_not_listed() {
        assert_eq!(index_list(&[1, 2, 3]), "1, 2, 3");
        let many: Vec<u64> = (0..100).collect();
        let s = index_list(&many);
        assert!(s.ends_with("19 and 80 more"), "{s}");
    }

    #[test]
    fn chat_bodies_fit_their_limits() {
        let m = sample(5000, false);
        let d = m.discord_body()["content"]
            .as_str()
            .unwrap()
            .chars()
            .count();
        assert!(d <= DISCORD_LIMIT);
        let t = m.telegram_body("1")["text"]
            .as_str()
            .unwrap()
            .chars()
            .count();
        assert!(t <= TELEGRAM_LIMIT);
    }

    #[test]
    fn alertmanager_alerts_end_when_resolved() {
        assert!(sample(1, false).alertmanager_body()[0]
            .get("endsAt")
            .is_none());
        assert_eq!(
            sample(1, true).alertmanager_body()[0]["endsAt"],
            "2024-01-01T01:00:00Z"
        );
    }
}
