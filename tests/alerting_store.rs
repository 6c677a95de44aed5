//! The alerting store contract, run against SQLite (a temp file) and a real
//! PostgreSQL (127.0.0.1:5432, a fresh database per test, dropped after).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::future::Future;
use std::time::{Duration, SystemTime};

use sqlx::Connection;
use valwatch::store::{AttemptOutcome, IncidentRecord, NewNotification, Store};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

async fn on_both<F, Fut>(case: F)
where
    F: Fn(Store, String) -> Fut,
    Fut: Future<Output = ()>,
{
    // SQLite
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    case(store, url).await;
    // PostgreSQL
    let name = format!(
        "valwatch_alerting_{}_{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut admin = sqlx::PgConnection::connect(&common::pg_admin_url())
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = common::pg_url(&name);
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let outcome =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(case(store.clone(), url)))
            .await;
    store.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

fn incident(id: &str, rule: &str, subject: &str) -> IncidentRecord {
    IncidentRecord {
        id: id.into(),
        rule: rule.into(),
        subject: subject.into(),
        severity: "critical".into(),
        is_event: false,
        validators: vec![3, 1_000_000],
        epoch: Some(12),
        summary: "2 validators of group g are down".into(),
        opened_at: at(0),
        last_notified_at: at(0),
        resolved_at: None,
        resolution: None,
        progress: "{}".into(),
    }
}

fn note(kind: &str, secs: u64) -> NewNotification {
    NewNotification {
        kind: kind.into(),
        created_at: at(secs),
        payload: serde_json::json!({ "kind": kind, "n": secs }),
    }
}

fn channels() -> Vec<String> {
    vec!["mail".into(), "hook".into()]
}

#[tokio::test]
async fn an_incident_its_notification_and_deliveries_are_stored_together() {
    on_both(|store, _| async move {
        let i = incident("validator_down/g/1", "validator_down", "g");
        assert!(store
            .save_incident(&i, true, Some(&note("firing", 0)), &channels())
            .await
            .unwrap());
        assert_eq!(store.open_incidents().await.unwrap(), vec![i.clone()]);
        let notes = store.notifications(&i.id).await.unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].payload["kind"], "firing");
        let deliveries = store.deliveries(notes[0].id).await.unwrap();
        let chans: Vec<_> = deliveries.iter().map(|d| d.channel.as_str()).collect();
        assert_eq!(chans, ["hook", "mail"]);
        assert!(deliveries
            .iter()
            .all(|d| d.status == "pending" && d.attempts == 0));
    })
    .await;
}

#[tokio::test]
async fn a_second_open_incident_for_the_same_rule_and_subject_is_refused() {
    on_both(|store, _| async move {
        let first = incident("validator_down/g/1", "validator_down", "g");
        let second = incident("validator_down/g/2", "validator_down", "g");
        assert!(store
            .save_incident(&first, true, Some(&note("firing", 0)), &channels())
            .await
            .unwrap());
        // Same id (a replayed event) and another open one: both refused, and
        // neither leaves a notification behind.
        assert!(!store
            .save_incident(&first, true, Some(&note("firing", 1)), &channels())
            .await
            .unwrap());
        assert!(!store
            .save_incident(&second, true, Some(&note("firing", 1)), &channels())
            .await
            .unwrap());
        assert_eq!(store.notifications(&first.id).await.unwrap().len(), 1);
        assert!(store.notifications(&second.id).await.unwrap().is_empty());
        // Once resolved, the same cause may open again.
        let mut resolved = first.clone();
        resolved.resolved_at = Some(at(60));
        resolved.resolution = Some("over".into());
        assert!(store
            .save_incident(&resolved, false, Some(&note("resolved", 60)), &channels())
            .await
            .unwrap());
        assert!(store.open_incidents().await.unwrap().is_empty());
        assert!(store
            .save_incident(&second, true, Some(&note("firing", 70)), &channels())
            .await
            .unwrap());
        let all = store.incidents_since(at(0)).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].resolution.as_deref(), Some("over"));
    })
    .await;
}

#[tokio::test]
async fn updating_a_missing_incident_writes_nothing() {
    on_both(|store, _| async move {
        let i = incident("nope", "validator_down", "g");
        assert!(!store
            .save_incident(&i, false, Some(&note("update", 0)), &channels())
            .await
            .unwrap());
        assert!(store.notifications("nope").await.unwrap().is_empty());
        assert!(store.open_incidents().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn attempts_are_recorded_and_only_pending_deliveries_are_due() {
    on_both(|store, url| async move {
        let i = incident("validator_down/g/1", "validator_down", "g");
        store
            .save_incident(&i, true, Some(&note("firing", 0)), &channels())
            .await
            .unwrap();
        let mut i2 = i.clone();
        i2.last_notified_at = at(10);
        store
            .save_incident(&i2, false, Some(&note("reminder", 10)), &channels())
            .await
            .unwrap();

        let due = store.pending_deliveries("hook", 10).await.unwrap();
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].payload["kind"], "firing", "oldest first");
        assert_eq!(due[0].incident_resolved_at, None);

        let retry = AttemptOutcome::Retry {
            error: "HTTP 503".into(),
            next_at: at(100),
        };
        store
            .record_attempt(due[0].id, at(1), &retry)
            .await
            .unwrap();
        let again = store.pending_deliveries("hook", 10).await.unwrap();
        assert_eq!(again[0].attempts, 1);
        assert_eq!(again[0].next_attempt_at, at(100));

        store
            .record_attempt(due[0].id, at(100), &AttemptOutcome::Delivered)
            .await
            .unwrap();
        // A late duplicate report changes nothing.
        store
            .record_attempt(due[0].id, at(101), &AttemptOutcome::Delivered)
            .await
            .unwrap();
        store
            .record_attempt(
                due[1].id,
                at(100),
                &AttemptOutcome::Abandoned {
                    error: "gone".into(),
                },
            )
            .await
            .unwrap();
        assert!(store
            .pending_deliveries("hook", 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(store.pending_deliveries("mail", 10).await.unwrap().len(), 2);

        // Reopened as after a restart, the outcome is still there.
        let reopened = Store::connect(&url).await.unwrap();
        reopened.migrate().await.unwrap();
        let attempts = reopened.delivery_attempts(due[0].id).await.unwrap();
        assert_eq!(
            attempts,
            vec![(1, false, Some("HTTP 503".into())), (2, true, None)]
        );
        let d = reopened.deliveries(due[1].notification_id).await.unwrap();
        let hook = d.iter().find(|d| d.channel == "hook").unwrap();
        assert_eq!(
            (hook.status.as_str(), hook.last_error.as_deref()),
            ("abandoned", Some("gone"))
        );
        reopened.close().await;
    })
    .await;
}
