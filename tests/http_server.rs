//! The HTTP server against a real socket on 127.0.0.1:0: status codes,
//! readiness reasons, group narrowing, secrets, metrics, shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod http_support;

use std::time::Duration;

use http_support::*;
use valwatch::analysis::AttestationStatus::{Included, Missed, Pending};
use valwatch::beacon::{NodeHealth, NodeReport};

fn kinds(reasons: &serde_json::Value) -> Vec<String> {
    reasons
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn status_is_503_exactly_while_a_watched_validator_is_failing_and_200_after_it_recovers() {
    let app = App::start(groups(&[("main", &[1, 2, 3])]), &[3]).await;
    app.healthy();
    let steps = [
        // (epoch, verdicts, expected code, expected state)
        (
            10,
            vec![(1, Included), (2, Included), (3, Missed)],
            200,
            "ok",
        ),
        (
            11,
            vec![(1, Missed), (2, Included), (3, Missed)],
            200,
            "degraded",
        ),
        (
            12,
            vec![(1, Missed), (2, Included), (3, Missed)],
            503,
            "failing",
        ),
        (
            13,
            vec![(1, Missed), (2, Included), (3, Missed)],
            503,
            "failing",
        ),
        (
            14,
            vec![(1, Included), (2, Included), (3, Missed)],
            200,
            "ok",
        ),
    ];
    for (epoch, verdicts, code, state) in steps {
        app.board
            .apply_epoch(&final_epoch(epoch, &verdicts), app.now());
        let (got, body) = app.get_json("/status").await;
        assert_eq!(
            (got, body["state"].as_str().unwrap()),
            (code, state),
            "epoch {epoch}: {body:#}"
        );
        // The HTML page answers with the same code.
        assert_eq!(app.get("/").await.0, code, "page at epoch {epoch}");
    }
    // Validator 3 (expected offline) missed five in a row and never counted.
    let (_, body) = app.get_json("/status").await;
    let v3 = body["validators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["index"] == 3)
        .unwrap();
    assert_eq!(v3["expected_offline"], true);
    assert_eq!(v3["consecutive_missed"], 5);
    assert_eq!(v3["state"], "ok");
}

#[tokio::test]
async fn failing_status_names_the_validators_and_lists_them_first() {
    let app = App::start(groups(&[("main", &[1, 2, 5])]), &[]).await;
    app.healthy();
    for e in [1, 2] {
        app.board.apply_epoch(
            &final_epoch(e, &[(1, Included), (2, Included), (5, Missed)]),
            app.now(),
        );
    }
    let (code, body) = app.get_json("/status").await;
    assert_eq!(code, 503);
    let r = &body["reasons"][0];
    assert_eq!(r["kind"], "down");
    assert_eq!(r["sample"], serde_json::json!([5]));
    assert_eq!(body["validators"][0]["index"], 5, "failing first");
    assert_eq!(body["validators"][0]["attestation"]["status"], "missed");
    let (_, page) = app.get("/").await;
    let (first_row, ok_row) = (
        page.find("<a href=\"/validator/5\">5</a>").unwrap(),
        page.find("<a href=\"/validator/1\">1</a>").unwrap(),
    );
    assert!(
        first_row < ok_row,
        "failing validator listed first on the page"
    );
    assert!(page.contains(r#"http-equiv="refresh""#));
    assert!(!page.contains("src=\"http"), "no external assets");
    assert!(page.contains("Recent incidents"));

    // A provisional look at the open epoch does not hide the final miss
    // that makes validator 5 fail.
    let mut open = final_epoch(3, &[(1, Pending), (2, Pending), (5, Pending)]);
    open.is_final = false;
    app.board.apply_epoch(&open, app.now());
    let (code, body) = app.get_json("/status").await;
    assert_eq!(code, 503);
    assert_eq!(body["validators"][0]["attestation"]["status"], "pending");
    assert_eq!(
        body["validators"][0]["last_final_attestation"]["status"],
        "missed"
    );
    assert_eq!(body["validators"][0]["last_final_attestation"]["epoch"], 2);
    let (_, page) = app.get("/").await;
    assert!(
        page.contains("missed (epoch 2); then pending (epoch 3, provisional)"),
        "{page}"
    );
}

#[tokio::test]
async fn readiness_reports_every_reason_and_recovers() {
    let app = App::start(groups(&[("main", &[1])]), &[]).await;
    assert_eq!(app.get("/healthz").await.0, 200);

    let (code, body) = app.get_json("/readyz").await;
    assert_eq!(code, 503);
    assert_eq!(
        kinds(&body["reasons"]),
        ["store_unchecked", "nodes_unknown"]
    );

    app.healthy();
    let (code, body) = app.get_json("/readyz").await;
    assert_eq!((code, body["ready"].as_bool()), (200, Some(true)), "{body}");

    // Every node gone: blind, not ready, and /status fails.
    app.board.set_nodes(vec![
        node("local", NodeHealth::Unreachable),
        node("b", NodeHealth::Syncing),
    ]);
    let (code, body) = app.get_json("/readyz").await;
    assert_eq!(
        (code, kinds(&body["reasons"])),
        (503, vec!["blind".to_string()])
    );
    assert_eq!(app.get("/status").await.0, 503);

    // Nodes back, but no epoch processed for more than three epochs.
    app.healthy();
    app.clock.advance(EPOCH * 3);
    let (code, body) = app.get_json("/readyz").await;
    assert_eq!(
        (code, kinds(&body["reasons"])),
        (503, vec!["stalled".to_string()])
    );
    let (code, status) = app.get_json("/status").await;
    assert_eq!((code, status["state"].as_str()), (503, Some("failing")));

    // An epoch processed now ends the stall; healthz never changed.
    app.board
        .apply_epoch(&final_epoch(20, &[(1, Included)]), app.now());
    assert_eq!(app.get("/readyz").await.0, 200);
    assert_eq!(app.get("/status").await.0, 200);
    assert_eq!(app.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn group_query_narrows_the_answer_and_its_status_code() {
    let app = App::start(groups(&[("a", &[1, 2]), ("b", &[3])]), &[]).await;
    app.healthy();
    for e in [1, 2] {
        app.board.apply_epoch(
            &final_epoch(e, &[(1, Included), (2, Included), (3, Missed)]),
            app.now(),
        );
    }
    let (code, a) = app.get_json("/status?group=a").await;
    assert_eq!((code, a["state"].as_str()), (200, Some("ok")));
    assert_eq!(a["group"], "a");
    let names: Vec<_> = a["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].clone())
        .collect();
    assert_eq!(names, ["a"]);
    let indices: Vec<_> = a["validators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["index"].clone())
        .collect();
    assert_eq!(indices, [1, 2]);

    let (code, b) = app.get_json("/status?group=b").await;
    assert_eq!((code, b["state"].as_str()), (503, Some("failing")));
    assert_eq!(b["validators"].as_array().unwrap().len(), 1);

    let (code, all) = app.get_json("/status").await;
    assert_eq!((code, all["groups"].as_array().unwrap().len()), (503, 2));

    let (code, err) = app.get_json("/status?group=nope").await;
    assert_eq!(code, 404);
    assert!(err["error"].as_str().unwrap().contains("nope"));
    assert_eq!(app.get("/?group=a").await.0, 200);
}

/// Issue 14: the page and `/status` say when the network itself is low,
/// so that missed duties are not blamed on the operator alone.
#[tokio::test]
async fn the_network_baseline_is_shown_and_a_low_network_is_called_network_wide() {
    let app = App::start(groups(&[("a", &[1, 2])]), &[]).await;
    app.healthy();
    let (_, before) = app.get_json("/status").await;
    assert!(before.get("network").is_none(), "{before:#}");
    for (epoch, included, low) in [(4, 990, false), (5, 610, true)] {
        app.board
            .set_network(&valwatch::analysis::network::NetworkRecord {
                epoch: valwatch::chain::Epoch(epoch),
                duties: 1000,
                included,
                empty_slots: 2,
                slots: 32,
            });
        let (_, v) = app.get_json("/status").await;
        assert_eq!(v["network"]["epoch"], epoch);
        assert_eq!(v["network"]["low"], low, "{v:#}");
        let (_, html) = app.get("/").await;
        let pct = included / 10;
        assert!(
            html.contains(&format!(
                "Network in epoch {epoch}: network participation {pct} %, 2 of 32 slots empty"
            )),
            "{html}"
        );
        assert_eq!(html.contains("network-wide"), low, "{html}");
    }
}

#[tokio::test]
async fn no_secret_reaches_any_page() {
    let app = App::start(groups(&[("main", &[1])]), &[]).await;
    app.board.set_store_ok(true);
    app.board.set_nodes(vec![NodeReport {
        name: "provider".into(),
        // As if a URL slipped through unredacted, with a key in the query.
        url: "https://user:hunter2@rpc.invalid/beacon?apikey=SECRETKEY".into(),
        health: NodeHealth::Unreachable,
        head_slot: None,
        last_error: Some(
            "error sending request for url (https://user:hunter2@rpc.invalid/eth/v1/node/health?apikey=SECRETKEY)".into(),
        ),
    }]);
    app.metrics
        .observe_nodes(&app.board.snapshot().nodes.unwrap());
    for path in ["/status", "/", "/metrics", "/readyz"] {
        let (_, body) = app.get(path).await;
        for secret in ["hunter2", "SECRETKEY"] {
            assert!(!body.contains(secret), "{path} shows {secret}: {body}");
        }
    }
    // The error is still shown, minus the secrets.
    let (_, body) = app.get_json("/status").await;
    assert_eq!(
        body["nodes"][0]["last_error"],
        "error sending request for url (https://rpc.invalid/eth/v1/node/health?…)"
    );
    assert_eq!(body["nodes"][0]["url"], "https://rpc.invalid/beacon?…");
}

#[tokio::test]
async fn metrics_endpoint_serves_the_text_format_with_the_names() {
    let app = App::start(groups(&[("main", &[1, 2, 3, 4])]), &[]).await;
    app.healthy();
    app.metrics.observe_epoch(&sample_epoch(5), &|v| {
        app.board.group_of(v).unwrap_or_default()
    });
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.unwrap();
    for line in [
        r#"valwatch_attestations_total{group="main",status="missed"} 1"#,
        r#"valwatch_proposals_total{group="main",status="orphaned"} 1"#,
        r#"valwatch_validators_slashed{group="main"} 1"#,
        "valwatch_last_processed_epoch 5",
        "valwatch_ready 1",
        // Computed at scrape time from the board: nothing failing yet.
        r#"valwatch_group_state{group="main"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
}

#[tokio::test]
async fn server_shuts_down_gracefully_when_cancelled() {
    let app = App::start(groups(&[("main", &[1])]), &[]).await;
    let url = app.url("/healthz");
    assert_eq!(app.get("/healthz").await.0, 200);
    app.cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), app.server.wait())
        .await
        .expect("server stops within 5 s")
        .expect("server stops cleanly");
    assert!(
        reqwest::Client::new().get(url).send().await.is_err(),
        "nobody listens any more"
    );
}
