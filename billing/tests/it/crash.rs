//! PostgreSQL killed (SIGKILL of the postmaster and its backends, as a crash would) while a
//! rerun's COPY is in progress: the write fails naming what it was doing, and after the restart
//! (crash recovery) the day is exactly its previous version.

use adclick_billing::{AdDayRow, AdvertiserDayRow, CampaignDayRow, Day, SettledDayRows};
use adclick_testsupport::ScratchPostgres;
use sqlx::Row;

use crate::fixture::{ad_rows, day, row_counts, settled_day, store, ulid};

/// Ads in the rerun: enough that its COPY runs for seconds, so the kill lands inside it.
const RERUN_ADS: u64 = 1_000_000;
const CAMPAIGNS: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_postgresql_mid_write_leaves_the_previous_day_intact() {
    let pg = tokio::task::spawn_blocking(ScratchPostgres::start)
        .await
        .unwrap();
    let url = pg.url("adclick");
    let store = store(&url).await;
    let d = day("2026-12-01");
    store
        .replace_day(&settled_day(
            d,
            1,
            &[
                (1, 10, 100, 5, 500, 3, &[("too_fast", 2)]),
                (1, 11, 110, 4, 400, 4, &[]),
                (2, 20, 200, 9, 900, 9, &[]),
            ],
            &[],
        ))
        .await
        .unwrap();
    let v1_rows = ad_rows(&url, d).await;
    let v1_counts = row_counts(&url, d).await;

    let rerun = large_day(d, 2);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { store.write_day(&rerun).await.map(|p| p.totals()) })
    };
    // Wait until the ad rows' COPY has taken rows, then kill.
    let mut watcher: sqlx::PgConnection = sqlx::Connection::connect(&url).await.unwrap();
    loop {
        let copied: i64 = sqlx::query(
            "SELECT coalesce(max(tuples_processed), 0)::int8 FROM pg_stat_progress_copy \
             WHERE relid = 'billing.ad_day'::regclass",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap()
        .get(0);
        if copied > 0 {
            println!("killing PostgreSQL with {copied} ad rows copied of {RERUN_ADS}");
            break;
        }
        assert!(
            !writer.is_finished(),
            "the rerun's write ended before its COPY was seen in progress: {:?}",
            writer.await.unwrap().map(|t| t.ads)
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop(watcher);
    let mut pg = tokio::task::spawn_blocking(move || {
        let mut pg = pg;
        pg.kill();
        pg
    })
    .await
    .unwrap();

    let err = writer
        .await
        .unwrap()
        .expect_err("the write survived PostgreSQL's death");
    let text = err.to_string();
    println!("the interrupted write: {text}");
    assert!(
        text.contains("writing settled day 2026-12-01")
            && text.contains("copying the ad rows (billing.ad_day)")
            && text.contains(&url),
        "{text}"
    );

    let pg = tokio::task::spawn_blocking(move || {
        pg.restart();
        pg
    })
    .await
    .unwrap();
    assert_eq!(ad_rows(&url, d).await, v1_rows, "{}", pg.log_tail());
    assert_eq!(row_counts(&url, d).await, v1_counts);
    let again = crate::fixture::store(&url).await;
    let statement = again.statement(1, d, d).await.unwrap();
    assert_eq!(
        statement.days[0].settlement.as_ref().unwrap().block_ulid,
        ulid(1)
    );
    assert_eq!(statement.totals.valid_clicks, 9);

    // The recovered server takes the rerun whole.
    let rerun = large_day(d, 3);
    let started = std::time::Instant::now();
    again.replace_day(&rerun).await.unwrap();
    println!(
        "{RERUN_ADS} ads written and committed in {:?}",
        started.elapsed()
    );
    assert_eq!(
        row_counts(&url, d).await,
        [1, RERUN_ADS as i64, 0, CAMPAIGNS as i64, 1]
    );
}

/// One advertiser, [`CAMPAIGNS`] campaigns, [`RERUN_ADS`] ads of one click each.
fn large_day(day: Day, block: u32) -> SettledDayRows {
    let per_campaign = RERUN_ADS / CAMPAIGNS;
    SettledDayRows {
        day,
        block_ulid: ulid(block),
        settled_at_ms: (day.0 + 1) * 86_400_000,
        ads: (0..RERUN_ADS)
            .map(|i| AdDayRow {
                advertiser_id: 1,
                campaign_id: i / per_campaign,
                ad_id: i,
                valid_clicks: 1,
                spend_micros: 1_000,
                unique_users: 1,
                invalid: Default::default(),
            })
            .collect(),
        campaigns: (0..CAMPAIGNS)
            .map(|campaign_id| CampaignDayRow {
                advertiser_id: 1,
                campaign_id,
                valid_clicks: per_campaign,
                spend_micros: per_campaign * 1_000,
                unique_users: per_campaign,
            })
            .collect(),
        advertisers: vec![AdvertiserDayRow {
            advertiser_id: 1,
            valid_clicks: RERUN_ADS,
            spend_micros: RERUN_ADS * 1_000,
            unique_users: RERUN_ADS,
        }],
    }
}
