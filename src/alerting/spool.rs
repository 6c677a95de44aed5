//! The outbox in memory: incident changes and their notifications that the
//! store could not take (it was failing), kept in order, sent from here by
//! each channel, and written to the store once it answers again, with the
//! deliveries that already ended written as ended, so nothing is sent
//! twice and nothing is lost while the daemon runs (issue 11). A crash
//! while the store is down loses what is here; the restart judges those
//! epochs again and pages what still holds.
//!
//! PURE: no IO; the engine moves items between here, the channels and the
//! store.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use crate::store::{FinishedDelivery, IncidentRecord, NewNotification};

/// Where one channel stands with one spooled notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sending {
    /// Not sent yet; the next attempt not before `next_at`.
    Pending { attempts: u64, next_at: SystemTime },
    /// A channel task is sending it now.
    InFlight { attempts: u64 },
    /// Ended: delivered or abandoned.
    Done(FinishedDelivery),
}

/// One change the store could not take.
#[derive(Clone, Debug)]
pub struct Spooled {
    pub seq: u64,
    pub incident: IncidentRecord,
    pub create: bool,
    pub note: Option<NewNotification>,
    /// Every configured channel's state, when there is a notification.
    pub channels: Vec<(String, Sending)>,
    /// Being written to the store: no channel takes it meanwhile.
    persisting: bool,
}

/// A notification a channel is to send now.
#[derive(Clone, Debug)]
pub struct Take {
    pub seq: u64,
    pub incident_id: String,
    pub payload: serde_json::Value,
    pub attempts: u64,
    pub resolved_at: Option<SystemTime>,
}

/// How one attempt from memory ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    Delivered,
    Retry { error: String, next_at: SystemTime },
    Abandoned { error: String },
}

#[derive(Debug, Default)]
pub struct Spool {
    items: VecDeque<Spooled>,
    next_seq: u64,
}

impl Spool {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Keeps a change; every channel in `channels` owes its notification.
    pub fn push(
        &mut self,
        incident: IncidentRecord,
        create: bool,
        note: Option<NewNotification>,
        channels: &[String],
    ) {
        let at = note.as_ref().map(|n| n.created_at);
        let channels = match at {
            Some(at) => channels
                .iter()
                .map(|c| {
                    (
                        c.clone(),
                        Sending::Pending {
                            attempts: 0,
                            next_at: at,
                        },
                    )
                })
                .collect(),
            None => Vec::new(),
        };
        self.items.push_back(Spooled {
            seq: self.next_seq,
            incident,
            create,
            note,
            channels,
            persisting: false,
        });
        self.next_seq += 1;
    }

    /// The next notification `channel` is to send, in order: the first it
    /// has not finished, if it is due at `now`; it is then in flight.
    /// Otherwise None, and how long until that first one is due (None:
    /// nothing owed).
    pub fn take(&mut self, channel: &str, now: SystemTime) -> Result<Take, Option<Duration>> {
        for item in self.items.iter_mut() {
            let Some(note) = &item.note else { continue };
            let Some((_, state)) = item.channels.iter_mut().find(|(c, _)| c == channel) else {
                continue;
            };
            match state {
                Sending::Done(_) => continue,
                Sending::InFlight { .. } => return Err(None),
                Sending::Pending { .. } if item.persisting => return Err(None),
                Sending::Pending { attempts, next_at } => {
                    if let Ok(ahead) = next_at.duration_since(now) {
                        if !ahead.is_zero() {
                            return Err(Some(ahead));
                        }
                    }
                    let attempts = *attempts;
                    *state = Sending::InFlight { attempts };
                    return Ok(Take {
                        seq: item.seq,
                        incident_id: item.incident.id.clone(),
                        payload: note.payload.clone(),
                        attempts,
                        resolved_at: item.incident.resolved_at,
                    });
                }
            }
        }
        Err(None)
    }

    /// Records how `channel`'s attempt at item `seq` ended.
    pub fn finish(&mut self, seq: u64, channel: &str, sent: Sent, now: SystemTime) {
        let Some(item) = self.items.iter_mut().find(|i| i.seq == seq) else {
            return;
        };
        let Some((_, state)) = item.channels.iter_mut().find(|(c, _)| c == channel) else {
            return;
        };
        let attempts = match state {
            Sending::InFlight { attempts } | Sending::Pending { attempts, .. } => *attempts + 1,
            Sending::Done(_) => return,
        };
        *state = match sent {
            Sent::Delivered => Sending::Done(FinishedDelivery {
                channel: channel.to_owned(),
                status: "delivered",
                attempts,
                last_error: None,
                finished_at: now,
            }),
            Sent::Abandoned { error } => Sending::Done(FinishedDelivery {
                channel: channel.to_owned(),
                status: "abandoned",
                attempts,
                last_error: Some(error),
                finished_at: now,
            }),
            Sent::Retry { next_at, .. } => Sending::Pending { attempts, next_at },
        };
    }

    /// The oldest change, to write to the store, unless a channel is
    /// sending it now; it is then held from the channels until `stored`
    /// or `release`. Returns it with the channels still owing its
    /// notification and the deliveries already ended.
    pub fn front_to_store(&mut self) -> Option<(Spooled, Vec<String>, Vec<FinishedDelivery>)> {
        let item = self.items.front_mut()?;
        if item
            .channels
            .iter()
            .any(|(_, s)| matches!(s, Sending::InFlight { .. }))
        {
            return None;
        }
        item.persisting = true;
        let mut pending = Vec::new();
        let mut finished = Vec::new();
        for (c, s) in &item.channels {
            match s {
                Sending::Done(f) => finished.push(f.clone()),
                _ => pending.push(c.clone()),
            }
        }
        Some((item.clone(), pending, finished))
    }

    /// The front item is in the store now.
    pub fn stored(&mut self, seq: u64) {
        if self.items.front().is_some_and(|i| i.seq == seq) {
            self.items.pop_front();
        }
    }

    /// Writing the front item failed: the channels may take it again.
    pub fn release(&mut self, seq: u64) {
        if let Some(i) = self.items.iter_mut().find(|i| i.seq == seq) {
            i.persisting = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn incident(id: &str) -> IncidentRecord {
        IncidentRecord {
            id: id.into(),
            rule: "validator_down".into(),
            subject: "g".into(),
            severity: "critical".into(),
            is_event: false,
            validators: vec![1],
            epoch: Some(3),
            summary: "down".into(),
            opened_at: at(100),
            last_notified_at: at(100),
            resolved_at: None,
            resolution: None,
            progress: "{}".into(),
        }
    }

    fn note(kind: &str, t: u64) -> Option<NewNotification> {
        Some(NewNotification {
            kind: kind.into(),
            created_at: at(t),
            payload: serde_json::json!({ "kind": kind }),
        })
    }

    fn chans() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn each_channel_sends_in_order_and_once() {
        let mut s = Spool::default();
        s.push(incident("i"), true, None, &chans());
        s.push(incident("i"), false, note("firing", 100), &chans());
        s.push(incident("i"), false, note("resolved", 110), &chans());
        // Not due before its time.
        assert_eq!(
            s.take("a", at(99)).unwrap_err(),
            Some(Duration::from_secs(1))
        );
        let t = s.take("a", at(100)).unwrap();
        assert_eq!(t.payload["kind"], "firing");
        // In flight: the channel waits for it, the other goes on.
        assert!(s.take("a", at(200)).is_err());
        assert_eq!(s.take("b", at(200)).unwrap().payload["kind"], "firing");
        s.finish(t.seq, "a", Sent::Delivered, at(101));
        assert_eq!(s.take("a", at(200)).unwrap().payload["kind"], "resolved");
    }

    #[test]
    fn a_retry_holds_the_channel_until_its_time() {
        let mut s = Spool::default();
        s.push(incident("i"), false, note("firing", 100), &chans());
        s.push(incident("i"), false, note("resolved", 110), &chans());
        let t = s.take("a", at(120)).unwrap();
        s.finish(
            t.seq,
            "a",
            Sent::Retry {
                error: "503".into(),
                next_at: at(130),
            },
            at(121),
        );
        assert_eq!(
            s.take("a", at(125)).unwrap_err(),
            Some(Duration::from_secs(5))
        );
        let again = s.take("a", at(130)).unwrap();
        assert_eq!(again.attempts, 1);
        assert_eq!(again.payload["kind"], "firing");
    }

    #[test]
    fn stored_with_what_each_channel_did() {
        let mut s = Spool::default();
        s.push(incident("i"), false, note("firing", 100), &chans());
        let t = s.take("a", at(100)).unwrap();
        // In flight: not written yet (the store would queue it again).
        assert!(s.front_to_store().is_none());
        s.finish(t.seq, "a", Sent::Delivered, at(101));
        let (item, pending, finished) = s.front_to_store().unwrap();
        assert_eq!(pending, vec!["b".to_string()]);
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0].channel, "a");
        assert_eq!(finished[0].status, "delivered");
        assert_eq!(finished[0].attempts, 1);
        // Being written: no channel takes it.
        assert!(s.take("b", at(200)).is_err());
        s.release(item.seq);
        assert!(s.take("b", at(200)).is_ok());
        s.finish(
            item.seq,
            "b",
            Sent::Abandoned {
                error: "410".into(),
            },
            at(201),
        );
        let (item, pending, finished) = s.front_to_store().unwrap();
        assert!(pending.is_empty());
        assert_eq!(finished[1].status, "abandoned");
        s.stored(item.seq);
        assert!(s.is_empty());
    }
}
