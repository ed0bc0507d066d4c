//! Connecting: the migrations on an empty database, again on a migrated one, and a database
//! that is down.

use adclick_billing::{BillingError, BillingStore};
use adclick_testsupport::{TestDatabase, free_port, psql};

use crate::fixture::{config, day, settled_day, store};

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_again_change_nothing() {
    let db = TestDatabase::create();
    store(db.url()).await;
    let tables = psql(
        db.url(),
        "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables \
         WHERE table_schema = 'billing'",
    );
    assert_eq!(
        tables,
        "ad_day,ad_day_invalid,advertiser_day,campaign_day,settled_day"
    );
    let applied = psql(
        db.url(),
        "SELECT count(*) FROM _sqlx_migrations WHERE success",
    );
    assert_eq!(applied, "1");

    // A day written, then a second connect (every `adclick billing` run does one): the
    // migrations are not reapplied and the day is still there.
    let d = day("2026-12-01");
    store(db.url())
        .await
        .replace_day(&settled_day(d, 1, &[(1, 10, 100, 5, 50, 2, &[])], &[]))
        .await
        .unwrap();
    let again = store(db.url()).await;
    assert_eq!(psql(db.url(), "SELECT count(*) FROM _sqlx_migrations"), "1");
    assert_eq!(again.settled_days(d, d).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_database_that_is_down_is_named_without_its_password() {
    let port = free_port(); // nothing listens there
    let url = format!("postgres://billing:s3cret@127.0.0.1:{port}/adclick");
    let Err(err) = BillingStore::connect(&config(&url)).await else {
        panic!("connected to a closed port");
    };
    let text = err.to_string();
    assert!(matches!(err, BillingError::Connect { .. }), "{text}");
    assert!(
        text.contains(&format!("billing:***@127.0.0.1:{port}/adclick")),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.to_lowercase().contains("refused"), "{text}");

    // A database that does not exist on a server that is up.
    let db = TestDatabase::create();
    let missing = format!("{}_missing", db.url());
    let Err(err) = BillingStore::connect(&config(&missing)).await else {
        panic!("connected to a database that does not exist");
    };
    assert!(err.to_string().contains("does not exist"), "{err}");
}
