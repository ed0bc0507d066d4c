//! The connection to PostgreSQL cut (testsupport's fault proxy) in the middle of a day's write,
//! and between the write and its commit (where the rollup publishes the block): the day keeps
//! its previous version both times, and the store writes again once the network heals.

use adclick_testsupport::{FaultProxy, TestDatabase};

use crate::fixture::{ad_rows, day, settled_day, store, ulid};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_leaves_the_previous_day() {
    let db = TestDatabase::create();
    let direct = store(db.url()).await;
    let d = day("2026-12-01");
    let v1 = settled_day(d, 1, &[(1, 10, 100, 5, 500, 3, &[("prefetch", 1)])], &[]);
    direct.replace_day(&v1).await.unwrap();
    let v2 = settled_day(
        d,
        2,
        &[(1, 10, 100, 6, 600, 3, &[]), (1, 10, 101, 1, 100, 1, &[])],
        &[],
    );

    // The server's host:port in the URL, replaced by the proxy's.
    let after_at = db.url().split_once('@').unwrap().1;
    let server = after_at.split_once('/').unwrap().0;
    let proxy = FaultProxy::start(server).await;
    // Plain (the server may offer TLS, and the proxy looks for the statement's text).
    let via_proxy = store(&format!(
        "{}?sslmode=disable",
        db.url().replace(server, &proxy.addr().to_string())
    ))
    .await;

    proxy.go_down_on(b"COPY billing.ad_day").await;
    let err = via_proxy
        .write_day(&v2)
        .await
        .expect_err("wrote through a cut connection");
    assert!(
        err.to_string()
            .contains("copying the ad rows (billing.ad_day)"),
        "{err}"
    );
    assert_eq!(ad_rows(db.url(), d).await, vec!["1 10 100 5 500 3"]);

    // Rows written, then the connection is lost before the commit.
    proxy.heal().await;
    let pending = via_proxy.write_day(&v2).await.unwrap();
    proxy.go_down();
    let err = pending
        .commit()
        .await
        .expect_err("committed through a cut connection");
    assert!(
        err.to_string()
            .contains("committing settled day 2026-12-01"),
        "{err}"
    );
    let statement = direct.statement(1, d, d).await.unwrap();
    assert_eq!(
        statement.days[0].settlement.as_ref().unwrap().block_ulid,
        ulid(1)
    );
    assert_eq!(ad_rows(db.url(), d).await, vec!["1 10 100 5 500 3"]);

    // Healed: the rerun goes through.
    proxy.heal().await;
    via_proxy.replace_day(&v2).await.unwrap();
    assert_eq!(
        ad_rows(db.url(), d).await,
        vec!["1 10 100 6 600 3", "1 10 101 1 100 1"]
    );
}
