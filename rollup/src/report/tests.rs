//! The report's daily section, summary lines and metrics of spend and users.

use super::*;
use crate::daily::DailyFigures;
use crate::reconcile::{SpendComparison, SpendRow};

fn advertiser(advertiser_id: u64, valid_clicks: u64, spend_micros: u64) -> AdvertiserDay {
    AdvertiserDay {
        advertiser_id,
        valid_clicks,
        spend_micros,
        unique_users: valid_clicks / 2,
    }
}

fn report(reconciliation: Option<Reconciliation>) -> Report {
    let daily = DailyFigures {
        advertisers: vec![
            advertiser(1, 10, 500),
            advertiser(2, 40, 9_000),
            advertiser(3, 20, 500),
        ],
        unique_users: 30,
        ..DailyFigures::default()
    };
    Report {
        day: "2026-11-23".into(),
        day_start_ms: 0,
        outcome: "mismatch",
        exit_code: 4,
        started_at_ms: 0,
        finished_at_ms: 0,
        dry_run: false,
        scan: ScanReport::default(),
        settle: SettleStats {
            clicks: 70,
            spend_micros: 10_000,
            unique_users: 30,
            ..SettleStats::default()
        },
        daily: DailyReport::of(&daily, 2),
        verdict_changes: ChangesReport::default(),
        block: None,
        reconciliation,
        reconcile_error: None,
    }
}

#[test]
fn the_daily_section_keeps_the_largest_spenders_and_the_days_users() {
    let r = report(None);
    let d = &r.daily;
    assert_eq!(
        (
            d.advertisers,
            d.valid_clicks,
            d.spend_micros,
            d.unique_users
        ),
        (3, 70, 10_000, 30)
    );
    // Equal spend: more clicks first.
    let top: Vec<u64> = d.top_advertisers.iter().map(|a| a.advertiser_id).collect();
    assert_eq!(top, [2, 3]);
    let summary = r.summary();
    assert!(
        summary.contains("  spend: 10000 micros; 30 unique users of the day (3 advertisers")
            && summary.contains("    advertiser 2: 40 clicks, 9000 micros, 20 unique users"),
        "{summary}"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["settle"]["spend_micros"], 10_000);
    assert_eq!(json["daily"]["top_advertisers"][0]["unique_users"], 20);
}

#[test]
fn a_spend_difference_is_in_the_summary_and_the_metrics() {
    let spend = SpendComparison {
        truth_micros: 10_000,
        stream_micros: 9_000,
        stream_late_micros: 250,
        campaigns_compared: 4,
        campaigns_mismatched: 1,
        mismatch_micros: 750,
        rows: vec![SpendRow {
            advertiser_id: 2,
            campaign_id: 5,
            truth_micros: 1_000,
            stream_micros: 250,
            stream_late_micros: 250,
            difference_micros: -750,
        }],
    };
    let r = report(Some(Reconciliation {
        spend,
        ..Reconciliation::default()
    }));
    assert!(!r.reconciliation.as_ref().unwrap().is_clean());
    let summary = r.summary();
    assert!(
        summary.contains(
            "  stream spend: 9000 micros + 250 late; campaigns 1 / 4 mismatched (750 micros apart)"
        ) && summary.contains("    campaign 2/5: truth 1000 micros, stream 250 (late 250)"),
        "{summary}"
    );
    let metrics = r.metrics(1_000, &[("job".into(), "adclick-rollup".into())], false);
    let value = |name: &str| {
        metrics
            .iter()
            .find(|(labels, _)| labels.get("__name__") == Some(name))
            .map(|(_, samples)| samples[0].value)
    };
    assert_eq!(value("adclick_rollup_spend_micros"), Some(10_000.0));
    assert_eq!(value("adclick_rollup_unique_users"), Some(30.0));
    assert_eq!(
        value("adclick_rollup_mismatched_spend_campaigns"),
        Some(1.0)
    );
    assert_eq!(value("adclick_rollup_spend_mismatch_micros"), Some(750.0));
    assert_eq!(
        value("adclick_rollup_stream_late_spend_micros"),
        Some(250.0)
    );
}
