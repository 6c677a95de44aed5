//! Whether the database answers: a breaker in front of every statement.
//!
//! A stopped PostgreSQL does not fail fast: sqlx retries a refused
//! connection until the pool's acquire timeout (10 s), so every statement
//! of a monitor round would wait that long and the round would fall behind
//! the chain. Once one statement fails for a reason that says "the database
//! is not there" (`is_outage`), the store is marked failing: every later
//! statement fails at once with `StoreError::Unavailable`, and one
//! background task pings the database every `PROBE_EVERY` until it answers,
//! which closes the breaker. Callers see the state (`Store::failing`) and
//! keep their work in memory meanwhile (issue 11: the monitor's unstored
//! epochs, the alert engine's spooled notifications).
//!
//! An error about one statement (a constraint, a bad row) is not an outage
//! and leaves the breaker alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::{Store, StoreError};

/// How often the background probe pings a failing database.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Longest wait for one ping: a connection that hangs is as bad as none.
pub const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// Since when, and why, the database has been failing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOutage {
    pub since: SystemTime,
    pub error: String,
}

#[derive(Debug, Default)]
pub(super) struct Health {
    failing: Mutex<Option<StoreOutage>>,
    /// A probe task is running.
    probing: AtomicBool,
}

impl Health {
    fn get(&self) -> Option<StoreOutage> {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Marks the store failing; true when it was not yet.
    fn trip(&self, error: String) -> bool {
        let mut f = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_some() {
            return false;
        }
        *f = Some(StoreOutage {
            since: SystemTime::now(),
            error,
        });
        true
    }

    /// Clears the failing mark; the outage it ended, if any.
    fn clear(&self) -> Option<StoreOutage> {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// PURE: whether `e` says the database is not reachable or not working at
/// all (as opposed to refusing one statement).
pub fn is_outage(e: &StoreError) -> bool {
    let source = match e {
        StoreError::Unavailable { .. } => return true,
        StoreError::Database { source, .. } | StoreError::Connect { source, .. } => source,
        _ => return false,
    };
    match source {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE classes 08 (connection exception), 57 (operator
        // intervention: admin_shutdown, crash_shutdown, cannot_connect_now)
        // and 53 (insufficient resources: disk full, out of memory,
        // too many connections), PostgreSQL appendix A.
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57") || c.starts_with("53")),
        _ => false,
    }
}

impl Store {
    /// Since when, and why, the database has been failing (None: it
    /// answered the last statement or ping).
    pub fn failing(&self) -> Option<StoreOutage> {
        self.health.get()
    }

    /// Fails at once while the breaker is open.
    pub(super) fn admit(&self) -> Result<(), StoreError> {
        match self.health.get() {
            None => Ok(()),
            Some(o) => Err(StoreError::Unavailable {
                target: self.target.to_string(),
                error: o.error,
            }),
        }
    }

    /// Opens the breaker when `r` is an outage.
    pub(super) fn observe<T>(&self, r: &Result<T, StoreError>) {
        if let Err(e) = r {
            if is_outage(e) && !matches!(e, StoreError::Unavailable { .. }) {
                self.note_outage(text_of(e));
            }
        }
    }

    /// Marks the database failing (a write or ping that failed or hung)
    /// and starts the background probe that closes the breaker again.
    pub fn note_outage(&self, error: String) {
        if self.health.trip(error.clone()) {
            warn!(target = %self.target, %error, "the database is failing: statements fail at once until it answers a ping again");
        }
        if self.health.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                if store.ping().await.is_ok() {
                    break;
                }
            }
            store.health.probing.store(false, Ordering::SeqCst);
        });
    }

    /// One round trip (not gated: it is the probe), bounded by
    /// `PING_TIMEOUT`. Success closes the breaker; failure opens it.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let r = match tokio::time::timeout(PING_TIMEOUT, self.ping_once()).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable {
                target: self.target.to_string(),
                error: format!("no answer to a ping within {PING_TIMEOUT:?}"),
            }),
        };
        match &r {
            Ok(()) => {
                if let Some(o) = self.health.clear() {
                    let down = SystemTime::now()
                        .duration_since(o.since)
                        .unwrap_or_default();
                    info!(target = %self.target, down_for = ?Duration::from_secs(down.as_secs()),
                          "the database answers again");
                }
            }
            Err(e) if is_outage(e) => {
                let text = match e {
                    StoreError::Unavailable { error, .. } => error.clone(),
                    e => text_of(e),
                };
                self.note_outage(text);
            }
            Err(_) => {}
        }
        r
    }
}

/// An error with its chain of sources, on one line.
fn text_of(e: &StoreError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_counts_as_an_outage() {
        let io = StoreError::Database {
            op: "write",
            source: sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        };
        assert!(is_outage(&io));
        let timeout = StoreError::Database {
            op: "write",
            source: sqlx::Error::PoolTimedOut,
        };
        assert!(is_outage(&timeout));
        let row = StoreError::Database {
            op: "write",
            source: sqlx::Error::RowNotFound,
        };
        assert!(!is_outage(&row));
        let range = StoreError::OutOfRange {
            what: "slot",
            value: u64::MAX,
        };
        assert!(!is_outage(&range));
    }

    #[test]
    fn the_first_failure_is_kept_until_cleared() {
        let h = Health::default();
        assert!(h.trip("refused".into()));
        assert!(!h.trip("timed out".into()));
        assert_eq!(h.get().unwrap().error, "refused");
        assert_eq!(h.clear().unwrap().error, "refused");
        assert!(h.get().is_none());
    }
}
