//! TLS to PostgreSQL as `[billing] database_url` sets it: `sslmode=verify-full` with the private
//! CA in `sslrootcert` connects and writes; the wrong CA, or none (the built-in roots), is
//! refused with a message that says TLS.

use adclick_billing::BillingStore;
use adclick_testsupport::{ScratchPostgres, TestPki};

use crate::fixture::{config, day, settled_day, store};

#[tokio::test]
async fn verify_full_takes_the_private_ca_and_refuses_others() {
    let pki = TestPki::new();
    // Blocking, before anything else runs on this test's runtime.
    let pg = ScratchPostgres::start_tls(&pki);
    let base = pg.url("adclick");
    let verified = format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        pki.ca().display()
    );
    let store = store(&verified).await;
    let d = day("2026-12-01");
    store
        .replace_day(&settled_day(d, 1, &[(1, 10, 100, 5, 500, 3, &[])], &[]))
        .await
        .unwrap();
    assert_eq!(
        store.statement(1, d, d).await.unwrap().totals.valid_clicks,
        5
    );

    for (url, what) in [
        (
            format!(
                "{base}?sslmode=verify-full&sslrootcert={}",
                pki.wrong_ca().display()
            ),
            "the wrong CA",
        ),
        (format!("{base}?sslmode=verify-full"), "the built-in roots"),
    ] {
        let Err(err) = BillingStore::connect(&config(&url)).await else {
            panic!("connected with {what}");
        };
        let text = err.to_string();
        println!("{what}: {text}");
        assert!(
            text.contains("cannot connect to the billing database") && text.contains("TLS"),
            "{what}: {text}"
        );
    }
}
