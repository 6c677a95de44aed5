//! The status page's history strips and the validator page (issue 14),
//! served by a real HTTP server over a real store: SQLite (a temp file)
//! and PostgreSQL (127.0.0.1:5432, a fresh database per test, dropped at
//! the end). The assertions read the HTML as a browser would get it.
//!
//! `page_for_1000_validators_stays_under_1_mb` PRINTS how long the page
//! takes (cold: the store read; warm: the cached strips) and asserts the
//! size only; run it with `--nocapture` to see the numbers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use valwatch::analysis::{
    AttestationStatus, AttestationVerdict, BalanceRecord, ProposalStatus, ProposalVerdict,
};
use valwatch::chain::{Epoch, Gwei, ManualClock, Slot, ValidatorIndex, ValidatorStatus};
use valwatch::http::history::History;
use valwatch::http::{serve, HttpState, Server};
use valwatch::metrics::Metrics;
use valwatch::status::{GroupSpec, Policy, StatusBoard};
use valwatch::store::{EpochRecord, ReportQuery, Store};

const SLOTS_PER_EPOCH: u64 = 32;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(String),
}

async fn create(backend: Backend) -> (Store, Cleanup) {
    let (url, cleanup) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("valwatch.db").display());
            (url, Cleanup::Sqlite(dir))
        }
        Backend::Postgres => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let name = format!(
                "valwatch_history_{}_{}",
                std::process::id(),
                nanos % 1_000_000_000
            );
            let url = valwatch::store::create_postgres_database(&common::pg_admin_url(), &name)
                .await
                .unwrap();
            (url, Cleanup::Postgres(name))
        }
    };
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    (store, cleanup)
}

/// Runs `case` on a fresh database, removed afterwards even on failure.
async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let (store, cleanup) = create(backend).await;
    let outcome = AssertUnwindSafe(case(store.clone())).catch_unwind().await;
    store.close().await;
    if let Cleanup::Postgres(name) = cleanup {
        valwatch::store::drop_postgres_database(&common::pg_admin_url(), &name)
            .await
            .unwrap();
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn verdict(v: u64, epoch: u64, status: AttestationStatus) -> AttestationVerdict {
    let included = status == AttestationStatus::Included;
    AttestationVerdict {
        validator_index: ValidatorIndex(v),
        epoch: Epoch(epoch),
        status,
        duty_slot: Some(Slot(epoch * SLOTS_PER_EPOCH + v % SLOTS_PER_EPOCH)),
        inclusion_slot: included.then_some(Slot(epoch * SLOTS_PER_EPOCH + v % SLOTS_PER_EPOCH + 1)),
        inclusion_delay: included.then_some(1),
        late: included.then_some(false),
        source_correct: included.then_some(true),
        target_correct: included.then_some(true),
        head_correct: included.then_some(true),
        reason: None,
    }
}

fn balance(v: u64, epoch: u64, gwei: u64, change: Option<i64>) -> BalanceRecord {
    BalanceRecord {
        validator_index: ValidatorIndex(v),
        epoch: Epoch(epoch),
        balance: Gwei(gwei),
        effective_balance: Gwei(32_000_000_000),
        status: ValidatorStatus::ActiveOngoing,
        slashed: false,
        balance_change: change,
    }
}

/// A server over `store` and a board of `groups`, every record applied to
/// both (as the monitor does: store first, then the board).
struct App {
    board: Arc<StatusBoard>,
    server: Server,
    cancel: CancellationToken,
    http: reqwest::Client,
}

impl App {
    async fn start(store: &Store, groups: Vec<GroupSpec>) -> App {
        let board = Arc::new(StatusBoard::new(
            t0(),
            groups,
            std::iter::empty(),
            Policy::for_epoch_duration(Duration::from_secs(384)),
        ));
        board.set_store_ok(true);
        let cancel = CancellationToken::new();
        let state = HttpState {
            board: board.clone(),
            metrics: Arc::new(Metrics::new(100).unwrap()),
            clock: Arc::new(ManualClock::new(t0() + Duration::from_secs(60))),
            history: Some(Arc::new(History::new(store.clone(), SLOTS_PER_EPOCH))),
        };
        let server = serve("127.0.0.1:0".parse().unwrap(), state, cancel.clone())
            .await
            .unwrap();
        App {
            board,
            server,
            cancel,
            http: reqwest::Client::new(),
        }
    }

    async fn record(&self, store: &Store, r: &EpochRecord) {
        store.write_epoch(r).await.unwrap();
        self.board.apply_epoch(r, t0() + Duration::from_secs(60));
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("http://{}{}", self.server.local_addr, path))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The first `<svg class="strip"…</svg>` after `anchor` in `page`.
fn strip_after<'a>(page: &'a str, anchor: &str) -> &'a str {
    let at = page
        .find(anchor)
        .unwrap_or_else(|| panic!("no {anchor:?} in the page"));
    let rest = &page[at..];
    let start = rest
        .find("<svg class=\"strip\"")
        .expect("a strip after the anchor");
    let end = rest[start..].find("</svg>").expect("the strip's end") + start;
    &rest[start..end]
}

/// Epochs 0..=69 of validators 1..=4: validator 2 misses epoch 60,
/// validator 3 votes a wrong head in epoch 65, validator 1 misses its
/// proposal in epoch 50; balances grow by 10 000 Gwei an epoch except
/// for validator 2's miss.
async fn seventy_epochs(app: &App, store: &Store) {
    for e in 0..70u64 {
        let mut r = EpochRecord {
            epoch: Epoch(e),
            is_final: true,
            ..EpochRecord::default()
        };
        for v in 1..=4u64 {
            let status = if v == 2 && e == 60 {
                AttestationStatus::Missed
            } else {
                AttestationStatus::Included
            };
            let mut a = verdict(v, e, status);
            if v == 3 && e == 65 {
                a.head_correct = Some(false);
            }
            r.attestations.push(a);
            let missed_before = u64::from(v == 2 && e > 60);
            r.balances.push(balance(
                v,
                e,
                32_000_000_000 + (e - missed_before) * 10_000,
                (e > 0).then_some(if v == 2 && e == 60 { -5_000 } else { 10_000 }),
            ));
        }
        if e == 50 {
            r.proposals.push(ProposalVerdict {
                slot: Slot(50 * SLOTS_PER_EPOCH + 7),
                validator_index: Some(ValidatorIndex(1)),
                status: ProposalStatus::Missed,
                block_root: None,
                reason: None,
            });
        }
        app.record(store, &r).await;
        // Pages asked for on the way: the later page reuses these final
        // epochs' cells and reads only the newer ones.
        if e == 40 || e == 60 {
            assert_eq!(app.get("/").await.0, 200);
        }
    }
}

fn two_groups() -> Vec<GroupSpec> {
    vec![
        GroupSpec {
            name: "main".into(),
            validators: (1..=3).map(ValidatorIndex).collect(),
        },
        GroupSpec {
            name: "other".into(),
            validators: vec![ValidatorIndex(4)],
        },
    ]
}

async fn status_page_draws_64_epochs_per_validator_and_group(store: Store) {
    let app = App::start(&store, two_groups()).await;
    seventy_epochs(&app, &store).await;
    let (code, page) = app.get("/").await;
    assert_eq!(code, 200, "{page}");
    assert!(!page.contains("history-missing"), "{page}");
    assert!(
        page.contains("Epochs 6–69"),
        "the strip ends at the last epoch"
    );

    // Validator 2: 64 cells, epoch 60 (the 55th cell, x = 54 * 5) missed.
    let strip = strip_after(&page, "<a href=\"/validator/2\">2</a>");
    assert_eq!(strip.matches("<rect").count(), 64, "{strip}");
    assert!(
        strip.contains("<rect x=\"270\" y=\"5\" width=\"4\" height=\"12\" class=\"miss\"><title>epoch 60: missed</title></rect>"),
        "{strip}"
    );
    assert_eq!(strip.matches("class=\"miss\"").count(), 1);
    assert_eq!(strip.matches("class=\"inc\"").count(), 63);
    // The colour of a miss is red, in the page's own style.
    assert!(page.contains(".strip .miss{fill:#c62828}"));

    // Validator 3's wrong head; validator 1's missed proposal is a dot.
    let strip = strip_after(&page, "<a href=\"/validator/3\">3</a>");
    assert!(
        strip.contains("class=\"head\"><title>epoch 65: wrong head, delay 1</title>"),
        "{strip}"
    );
    let strip = strip_after(&page, "<a href=\"/validator/1\">1</a>");
    assert!(strip.contains("<circle cx=\"222\" cy=\"2\" r=\"2\" class=\"pm\"><title>epoch 50: proposal missed</title>"), "{strip}");
    assert_eq!(strip.matches("<rect").count(), 64);

    // The group strips: one <g> per epoch; main shows its miss at 60.
    let main = strip_after(&page, "<a href=\"/?group=main\">main</a>");
    assert_eq!(main.matches("<g>").count(), 64, "{main}");
    assert!(
        main.contains("<title>epoch 60: 2 included, 1 missed</title>"),
        "{main}"
    );
    let other = strip_after(&page, "<a href=\"/?group=other\">other</a>");
    assert!(!other.contains("miss"), "{other}");

    // A balance line per validator.
    assert!(page.contains("<svg class=\"spark\""));
    assert!(page.contains("balance 32.000060 → 32.000680 ETH"), "{page}");

    // A group page draws the group's validators only, from the same cache.
    let (code, page) = app.get("/?group=other").await;
    assert_eq!(code, 200);
    assert!(page.contains("href=\"/validator/4\""));
    assert!(!page.contains("href=\"/validator/2\""));

    // Bad page numbers are told, not panicked on.
    let (code, body) = app.get("/?page=abc").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("page must be a number"));
    let (code, _) = app.get("/?page=99").await;
    assert_eq!(code, 200, "a page past the end shows the last one");
}

async fn validator_page_rows_are_the_stored_verdicts(store: Store) {
    let app = App::start(&store, two_groups()).await;
    seventy_epochs(&app, &store).await;
    // The node's rewards for the missed epoch; the others stay unknown.
    store
        .write_rewards(
            Epoch(60),
            &[valwatch::analysis::rewards::RewardRecord {
                epoch: Epoch(60),
                validator_index: ValidatorIndex(2),
                attestation_reward_gwei: Some(-3_000),
                attestation_ideal_gwei: Some(12_000),
                sync_reward_gwei: None,
                proposer_reward_gwei: None,
                missed_gwei: Some(15_000),
                estimated: false,
            }],
            None,
        )
        .await
        .unwrap();
    let (code, page) = app.get("/validator/2").await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("<h1>Validator 2 "));
    // Up to 256 epochs in lines of 64; the chain starts at epoch 0, so
    // 70 epochs: a line of 64 and one of 6 (its other 58 cells empty).
    let strips = &page[page.find("<div id=\"strips\">").unwrap()..page.find("</div>\n").unwrap()];
    assert!(page.contains("<h2>Epochs 0–69</h2>"));
    assert_eq!(strips.matches("<svg class=\"strip\"").count(), 2);
    assert_eq!(strips.matches("<rect").count(), 128);
    assert_eq!(strips.matches("class=\"none\"").count(), 58);
    assert_eq!(strips.matches("class=\"miss\"").count(), 1);
    assert_eq!(strips.matches("class=\"inc\"").count(), 69);

    let stored = store
        .report(&ReportQuery {
            validators: Some(vec![ValidatorIndex(2)]),
            from_epoch: None,
            to_epoch: None,
        })
        .await
        .unwrap();
    assert_eq!(stored.attestations.len(), 70);
    assert_eq!(
        page.matches("<tr id=\"e").count(),
        70,
        "one row per stored epoch"
    );
    let dash = |v: Option<u64>| v.map_or("—".to_string(), |v| v.to_string());
    for (a, b) in stored.attestations.iter().zip(&stored.balances) {
        let row = format!(
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            a.epoch.0,
            a.status.as_str(),
            dash(a.duty_slot.map(|s| s.0)),
            dash(a.inclusion_slot.map(|s| s.0)),
            dash(a.inclusion_delay),
        );
        let at = page
            .find(&format!("<tr id=\"e{}\"", a.epoch.0))
            .unwrap_or_else(|| panic!("no row for epoch {}", a.epoch.0));
        let line = &page[at..at + page[at..].find("</tr>").unwrap()];
        assert!(
            line.contains(&row),
            "epoch {}: {line} lacks {row}",
            a.epoch.0
        );
        assert!(
            line.contains(&format!("<td>{}</td>", b.balance.0)),
            "{line}"
        );
    }
    let missed_row = &page[page.find("<tr id=\"e60\"").unwrap()..];
    assert!(missed_row.starts_with("<tr id=\"e60\" class=\"miss\"><td>60</td><td>missed</td>"));
    let missed_line = &missed_row[..missed_row.find("</tr>").unwrap()];
    assert!(
        missed_line.contains("<td>-3000</td><td>12000</td><td>—</td><td>—</td><td>15000</td>"),
        "{missed_line}"
    );
    assert!(page.contains(
        "Rewards over the 1 epoch(s) whose rewards a node served: earned -0.000003 ETH, missed 0.000015 ETH."
    ));
    // Newest first.
    assert!(page.find("<tr id=\"e69\"").unwrap() < page.find("<tr id=\"e0\"").unwrap());

    let (code, page) = app.get("/validator/1").await;
    assert_eq!(code, 200);
    assert!(
        page.contains("missed at slot 1607"),
        "the missed proposal is in its row"
    );

    // Not watched: 404 that says so; not an index: 400; nothing panics.
    let (code, body) = app.get("/validator/999").await;
    assert_eq!(code, 404);
    assert!(body.contains("validator 999 is not watched"), "{body}");
    for bad in [
        "abc",
        "-1",
        "99999999999999999999999",
        "1%20OR%201=1",
        "%3Cscript%3E",
    ] {
        let (code, body) = app.get(&format!("/validator/{bad}")).await;
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(!body.contains("<script>"), "{body}");
    }
}

/// 1 000 validators in 4 groups, 64 final epochs, a miss every 97th
/// validator-epoch and a wrong head every 13th: the page must stay under
/// 1 MB. Times are printed (cold: store read; warm: cached), not asserted.
async fn page_for_1000_validators_stays_under_1_mb(store: Store, backend: Backend) {
    let n = 1000u64;
    let groups: Vec<GroupSpec> = (0..4)
        .map(|g| GroupSpec {
            name: format!("group{g}"),
            validators: (0..n).filter(|v| v % 4 == g).map(ValidatorIndex).collect(),
        })
        .collect();
    let app = App::start(&store, groups).await;
    let fill = Instant::now();
    for e in 0..64u64 {
        let mut r = EpochRecord {
            epoch: Epoch(e),
            is_final: true,
            ..EpochRecord::default()
        };
        for v in 0..n {
            let k = v * 64 + e;
            let status = if k % 97 == 0 {
                AttestationStatus::Missed
            } else {
                AttestationStatus::Included
            };
            let mut a = verdict(v, e, status);
            if k % 13 == 0 && status == AttestationStatus::Included {
                a.head_correct = Some(false);
            }
            r.attestations.push(a);
            r.balances
                .push(balance(v, e, 32_000_000_000 + e * 10_000 + v, Some(10_000)));
        }
        app.record(&store, &r).await;
    }
    let fill = fill.elapsed();
    // The store's part of a cold page: the two statements alone.
    let ids: Vec<ValidatorIndex> = (0..n).map(ValidatorIndex).collect();
    let t = Instant::now();
    let rows = store
        .strip_rows(&ids, Epoch(0), Epoch(63), SLOTS_PER_EPOCH)
        .await
        .unwrap();
    let read_t = t.elapsed();
    assert_eq!(rows.marks.len(), 64_000);
    // Cold: the first page reads all 64 epochs. Should that take longer
    // than the page waits (a loaded machine), the page comes without its
    // strips and the read goes on: ask again until they are drawn, and
    // count the time until then.
    let t = Instant::now();
    let (mut code, mut cold) = app.get("/").await;
    while cold.contains("still being read") && t.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        (code, cold) = app.get("/").await;
    }
    let cold_t = t.elapsed();
    let t = Instant::now();
    let (_, warm) = app.get("/").await;
    let warm_t = t.elapsed();
    let t = Instant::now();
    let (vcode, vpage) = app.get("/validator/97").await;
    let validator_t = t.elapsed();
    // The next final epoch and a provisional one: the page reads only
    // those two epochs' rows and keeps the other 62.
    for (e, is_final) in [(64u64, true), (65, false)] {
        let mut r = EpochRecord {
            epoch: Epoch(e),
            is_final,
            ..EpochRecord::default()
        };
        for v in 0..n {
            let status = if is_final {
                AttestationStatus::Included
            } else {
                AttestationStatus::Pending
            };
            r.attestations.push(verdict(v, e, status));
        }
        app.record(&store, &r).await;
    }
    let t = Instant::now();
    let (next_code, next) = app.get("/").await;
    let next_t = t.elapsed();
    println!(
        "history page, {backend:?}, {n} validators x 64 epochs (stored in {:.1} s): \
         {} bytes; cold {:.1} ms (64 epochs read; the read alone {:.1} ms); \
         warm {:.1} ms (cached); next epoch {:.1} ms (2 epochs read); \
         validator page {} bytes in {:.1} ms",
        fill.as_secs_f64(),
        cold.len(),
        cold_t.as_secs_f64() * 1e3,
        read_t.as_secs_f64() * 1e3,
        warm_t.as_secs_f64() * 1e3,
        next_t.as_secs_f64() * 1e3,
        vpage.len(),
        validator_t.as_secs_f64() * 1e3,
    );
    assert_eq!(next_code, 200);
    assert!(next.contains("Epochs 2–65"), "the window moved");
    assert!(next.len() < 1_000_000);
    assert_eq!(code, 200, "{}", &cold[..cold.len().min(2000)]);
    assert_eq!(vcode, 200);
    assert!(!cold.contains("history-missing"));
    assert_eq!(
        cold.matches("<svg class=\"strip\" width=\"320\"").count(),
        4 + 100,
        "4 groups and a page of 100 validators"
    );
    assert!(cold.contains("Validators 1–100 of 1000 · page 1 of 10"));
    assert!(cold.len() < 1_000_000, "the page is {} bytes", cold.len());
    assert_eq!(cold.len(), warm.len());
    let (_, last) = app.get("/?page=10").await;
    assert!(last.contains("Validators 901–1000 of 1000"));
    assert!(last.len() < 1_000_000);
}

/// A database that blocks the strips' read (a lock held elsewhere) costs
/// the page its strips after `READ_TIMEOUT`, not its answer; the read goes
/// on, and once the lock is gone a later page draws the strips.
#[tokio::test]
async fn a_blocked_store_costs_the_page_its_strips_not_its_answer() {
    use sqlx::Connection;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("valwatch_history_lock_{}", nanos % 1_000_000_000);
    let url = valwatch::store::create_postgres_database(&common::pg_admin_url(), &name)
        .await
        .unwrap();
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let outcome = AssertUnwindSafe(async {
        let app = App::start(&store, two_groups()).await;
        for e in 0..3u64 {
            let r = EpochRecord {
                epoch: Epoch(e),
                is_final: true,
                attestations: (1..=4)
                    .map(|v| verdict(v, e, AttestationStatus::Included))
                    .collect(),
                ..EpochRecord::default()
            };
            app.record(&store, &r).await;
        }
        let mut locker = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
        sqlx::query("LOCK TABLE attestations IN ACCESS EXCLUSIVE MODE")
            .execute(&mut locker)
            .await
            .unwrap();
        let t = Instant::now();
        let (code, page) = app.get("/").await;
        let waited = t.elapsed();
        assert_eq!(code, 200);
        assert!(page.contains("id=\"history-missing\""), "{page}");
        assert!(page.contains("still being read"), "{page}");
        assert!(
            page.contains("href=\"/validator/1\""),
            "the rest of the page is there"
        );
        assert!(waited < Duration::from_secs(4), "waited {waited:?}");
        // Asked again while the first read still waits: no second read.
        let (code, page) = app.get("/").await;
        assert_eq!(code, 200);
        assert!(page.contains("still being read"));

        sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
        let mut drawn = false;
        for _ in 0..50 {
            let (_, page) = app.get("/").await;
            if !page.contains("history-missing") {
                let strip = strip_after(&page, "href=\"/validator/1\"");
                // A chain of 3 epochs: a full-width strip, filled from the left.
                assert_eq!(strip.matches("<rect").count(), 64);
                assert_eq!(strip.matches("class=\"inc\"").count(), 3);
                assert!(page.contains("Epochs 0–2"), "{page}");
                drawn = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(drawn, "the strips never came once the lock was gone");
    })
    .catch_unwind()
    .await;
    store.close().await;
    valwatch::store::drop_postgres_database(&common::pg_admin_url(), &name)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

mod sqlite {
    use super::*;

    #[tokio::test]
    async fn status_page_draws_64_epochs_per_validator_and_group() {
        run(
            Backend::Sqlite,
            super::status_page_draws_64_epochs_per_validator_and_group,
        )
        .await;
    }

    #[tokio::test]
    async fn validator_page_rows_are_the_stored_verdicts() {
        run(
            Backend::Sqlite,
            super::validator_page_rows_are_the_stored_verdicts,
        )
        .await;
    }

    #[tokio::test]
    async fn page_for_1000_validators_stays_under_1_mb() {
        run(Backend::Sqlite, |s| {
            super::page_for_1000_validators_stays_under_1_mb(s, Backend::Sqlite)
        })
        .await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test]
    async fn status_page_draws_64_epochs_per_validator_and_group() {
        run(
            Backend::Postgres,
            super::status_page_draws_64_epochs_per_validator_and_group,
        )
        .await;
    }

    #[tokio::test]
    async fn validator_page_rows_are_the_stored_verdicts() {
        run(
            Backend::Postgres,
            super::validator_page_rows_are_the_stored_verdicts,
        )
        .await;
    }

    #[tokio::test]
    async fn page_for_1000_validators_stays_under_1_mb() {
        run(Backend::Postgres, |s| {
            super::page_for_1000_validators_stays_under_1_mb(s, Backend::Postgres)
        })
        .await;
    }
}
