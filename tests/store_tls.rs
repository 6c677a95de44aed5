//! Issue 15: managed PostgreSQL services require TLS. valwatch's store
//! honours `sslmode` in the database URL (sqlx built with rustls): against
//! a server the test owns that refuses connections without TLS, `require`
//! connects encrypted, `verify-full` with the server's CA (`sslrootcert`)
//! checks its certificate, and `disable` is refused by the server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic: that is its failure

mod common;

use valwatch::chain::Epoch;
use valwatch::store::{EpochRecord, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_in_the_url_is_honoured() {
    let ca = common::smtp_tls::TestCa::generate();
    let pg = common::pg::OwnPostgres::start_tls(&ca.server_cert(), &ca.server_key());
    let base = pg.url();

    // The server refuses a connection without TLS...
    let plain = Store::connect(&format!("{base}?sslmode=disable")).await;
    assert!(plain.is_err(), "a plain connection was accepted");

    // ...and `require` is encrypted, as the server itself reports.
    let url = format!("{base}?sslmode=require");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(ssl, "the session is not encrypted");
    pool.close().await;

    // The store works over it: migrate, write an epoch, read it back.
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store
        .write_epoch(&EpochRecord {
            epoch: Epoch(3),
            is_final: true,
            ..EpochRecord::default()
        })
        .await
        .unwrap();
    assert_eq!(store.cursor().await.unwrap(), Some(Epoch(3)));
    store.close().await;

    // `verify-full` checks the certificate: with the CA that signed it the
    // connection is made, without it (public roots only) it is refused.
    let ca_file = ca.ca_pem();
    let verified = Store::connect(&format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        ca_file.display()
    ))
    .await;
    assert!(verified.is_ok(), "{:?}", verified.err());
    let unverified = Store::connect(&format!("{base}?sslmode=verify-full")).await;
    assert!(
        unverified.is_err(),
        "a certificate from an unknown CA was accepted"
    );
}
