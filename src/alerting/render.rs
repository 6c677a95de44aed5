//! PURE rendering: the versioned notification payload and what each
//! channel sends for it (plain text, Slack, Discord, Telegram,
//! Alertmanager bodies). Must not: send anything.
//!
//! The JSON payload (`Message`, version 1) is the contract with webhook
//! receivers. Fields:
//! - `version`: 1; a breaking change increments it.
//! - `id`: the incident id (stable over firing, updates, reminders and the
//!   resolution); `notification_id`: unique per notification, for dedup.
//! - `kind`: `firing` | `update` (more validators) | `reminder` |
//!   `resolved` | `event` (one-shot: a missed proposal, a slashing) | `test`.
//! - `state`: `firing` | `resolved`.
//! - `rule`, `severity` (`info` | `warning` | `critical`), `subject` (group,
//!   node, `network` or `monitor`), `group` (the group, or null).
//! - `validators`: indices concerned (ascending), `epoch`: the epoch the
//!   incident started at (or null).
//! - `summary`: one human line; `started_at`, `resolved_at`: RFC 3339 UTC.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Payload version; receivers should check it.
pub const PAYLOAD_VERSION: u32 = 1;

/// Indices listed in text before the rest is only counted: chat messages
/// stay readable when a whole group goes down (the JSON payload has all).
pub const TEXT_SAMPLE: usize = 20;

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
    pub epoch: Option<u64>,
    pub summary: String,
    pub started_at: String,
    pub resolved_at: Option<String>,
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

    /// One line for subjects and chat previews.
    pub fn title(&self) -> String {
        let tag = match self.kind.as_str() {
            "resolved" => "RESOLVED".to_owned(),
            "reminder" => "STILL FIRING".to_owned(),
            "test" => "TEST".to_owned(),
            // More validators joined an open incident: say so, so that a
            // reader of a chat or a mailbox tells it from a new incident.
            "update" => format!("{} UPDATE", self.severity.to_uppercase()),
            _ => self.severity.to_uppercase(),
        };
        format!("[{tag}] {}: {}", self.rule, self.subject)
    }

    /// The full plain text.
    pub fn text(&self) -> String {
        let mut s = format!("{}\n{}\n", self.title(), self.summary);
        if !self.validators.is_empty() {
            s.push_str(&format!(
                "validators ({}): {}\n",
                self.validators.len(),
                index_list(&self.validators)
            ));
        }
        if let Some(e) = self.epoch {
            s.push_str(&format!("epoch: {e}\n"));
        }
        s.push_str(&format!("started: {}\n", self.started_at));
        if let Some(r) = &self.resolved_at {
            s.push_str(&format!("resolved: {r}\n"));
        }
        s.push_str(&format!("incident: {}\n", self.id));
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
            epoch: None,
            summary: "valwatch test notification: this channel works".into(),
            started_at: at,
            resolved_at: None,
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
            epoch: Some(5),
            summary: "down".into(),
            started_at: "2024-01-01T00:00:00Z".into(),
            resolved_at: resolved.then(|| "2024-01-01T01:00:00Z".into()),
        }
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
