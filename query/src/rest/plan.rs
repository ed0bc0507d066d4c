//! The `query_range` calls that answer a [`ClicksRequest`]: one per figure, exact sums of the
//! minute samples, without `advertiser_id` (the handler's [`enforce`](crate::enforce) adds it).

use super::Figure;
use super::request::{By, ClicksRequest};
use crate::params::Params;

/// One `query_range` to send (after [`enforce`](crate::enforce)) to the upstream that serves
/// `figure`: the live Prometheus (or Thanos) for [`Figure::Final`] and [`Figure::Late`], Thanos
/// for [`Figure::Billing`]. Its points are the buckets' ends: `start_ms` = from + step, …,
/// `end_ms` = to. Through Thanos, ask for raw data (`max_source_resolution=0s`: downsampled
/// blocks hold 5m/1h aggregates, not the minute samples the windows are cut for) and no partial
/// response (a store that did not answer would drop clicks silently).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedQuery {
    pub figure: Figure,
    pub query: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
}

impl PlannedQuery {
    /// The `query_range` form with `query` (this query once enforced) and the range in seconds
    /// (whole: every bound is on a minute).
    pub fn form(&self, query: String) -> Params {
        Params(vec![
            ("query".to_string(), query),
            ("start".to_string(), (self.start_ms / 1000).to_string()),
            ("end".to_string(), (self.end_ms / 1000).to_string()),
            ("step".to_string(), (self.step_ms / 1000).to_string()),
        ])
    }
}

impl ClicksRequest {
    /// The queries that answer this request: `final`, then `late`, `invalid` and `spend_micros`
    /// (only `by=campaign` without an `ad_id` filter: the first two have no `ad_id`), then
    /// `billing`.
    pub fn plan(&self) -> Vec<PlannedQuery> {
        let campaigns = matcher(
            "campaign_id",
            self.campaign_ids().map(|id| id.to_string()).collect(),
        );
        let ads = matcher("ad_id", self.ad_ids().map(|id| id.to_string()).collect());
        let group = match self.by {
            By::Ad => "campaign_id, ad_id",
            By::Campaign => "campaign_id",
        };
        let window = self.step.window();
        let sum = |metric: &str, tier: &str, filters: &[&Option<String>]| {
            let matchers: Vec<&str> = std::iter::once(tier)
                .chain(filters.iter().copied().flatten().map(String::as_str))
                .collect();
            let matchers = matchers.join(", ");
            format!("sum by ({group}) (sum_over_time({metric}{{{matchers}}}[{window}]))")
        };
        let mut figures = vec![(
            Figure::Final,
            sum("adclick_clicks", STREAM, &[&campaigns, &ads]),
        )];
        if self.plans_per_campaign() {
            // The stream tier's too: the rollup settles late clicks into adclick_clicks, and
            // should it ever publish this series, it must not be added twice.
            figures.push((
                Figure::Late,
                sum("adclick_late_clicks", STREAM, &[&campaigns]),
            ));
            // The stream's, like `final`: the rollup's settled invalid series is the record.
            figures.push((
                Figure::Invalid,
                sum("adclick_invalid_clicks", STREAM, &[&campaigns]),
            ));
            // The stream's spend of `final`'s clicks, every ad and `other` summed.
            figures.push((
                Figure::Spend,
                sum("adclick_spend_micros", STREAM, &[&campaigns]),
            ));
        }
        figures.push((
            Figure::Billing,
            sum("adclick_clicks", ROLLUP, &[&campaigns, &ads]),
        ));
        let step_ms = self.step.millis();
        figures
            .into_iter()
            .map(|(figure, query)| PlannedQuery {
                figure,
                query,
                start_ms: self.from_ms + step_ms,
                end_ms: self.to_ms,
                step_ms,
            })
            .collect()
    }
}

impl ClicksRequest {
    /// Whether the figures that exist per campaign only ([`Figure::per_campaign_only`]) are
    /// planned: per campaign, without an `ad_id` filter (their series have no `ad_id`, so they
    /// could not honour one).
    pub(super) fn plans_per_campaign(&self) -> bool {
        self.by == By::Campaign && self.ad_ids.is_empty()
    }
}

/// The stream tier, as the dashboards select it (no `tier` on Prometheus, `tier="stream"` through
/// Thanos).
const STREAM: &str = r#"tier!="rollup""#;
/// The rollup's settled series (Thanos).
const ROLLUP: &str = r#"tier="rollup""#;

/// `label="v"`, or `label=~"v1|v2"` (Prometheus anchors regex matchers at both ends), or nothing
/// for no values. The values are digits or `other`, printed from numbers and [`AdId`], so
/// neither quotes nor regex metacharacters can occur (`AdId` prints `other` or digits).
fn matcher(label: &str, values: Vec<String>) -> Option<String> {
    match values.as_slice() {
        [] => None,
        [one] => Some(format!("{label}=\"{one}\"")),
        many => Some(format!("{label}=~\"{}\"", many.join("|"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use crate::rest::RestError;
    use crate::{Refusal, enforce};

    fn request(query: &str) -> Result<ClicksRequest, RestError> {
        let params = Params(
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        );
        ClicksRequest::parse(&params, None, 0, 11_000)
    }

    fn queries(query: &str) -> Vec<(Figure, String)> {
        request(query)
            .unwrap()
            .plan()
            .into_iter()
            .map(|p| (p.figure, p.query))
            .collect()
    }

    #[test]
    fn by_campaign_each_step() {
        for (step, window) in [("1m", "59s"), ("1h", "59m59s"), ("1d", "23h59m59s")] {
            let q = queries(&format!("from=2026-12-01&to=2026-12-02&step={step}"));
            assert_eq!(
                q,
                [
                    (
                        Figure::Final,
                        format!(
                            r#"sum by (campaign_id) (sum_over_time(adclick_clicks{{tier!="rollup"}}[{window}]))"#
                        )
                    ),
                    (
                        Figure::Late,
                        format!(
                            r#"sum by (campaign_id) (sum_over_time(adclick_late_clicks{{tier!="rollup"}}[{window}]))"#
                        )
                    ),
                    (
                        Figure::Invalid,
                        format!(
                            r#"sum by (campaign_id) (sum_over_time(adclick_invalid_clicks{{tier!="rollup"}}[{window}]))"#
                        )
                    ),
                    (
                        Figure::Spend,
                        format!(
                            r#"sum by (campaign_id) (sum_over_time(adclick_spend_micros{{tier!="rollup"}}[{window}]))"#
                        )
                    ),
                    (
                        Figure::Billing,
                        format!(
                            r#"sum by (campaign_id) (sum_over_time(adclick_clicks{{tier="rollup"}}[{window}]))"#
                        )
                    ),
                ]
            );
        }
    }

    #[test]
    fn by_ad_with_filters() {
        let q = queries(
            "from=2026-12-01&to=2026-12-02&by=ad&campaign_id=9&campaign_id=007&ad_id=other&ad_id=12&campaign_id=9",
        );
        assert_eq!(
            q,
            [
                (
                    Figure::Final,
                    r#"sum by (campaign_id, ad_id) (sum_over_time(adclick_clicks{tier!="rollup", campaign_id=~"7|9", ad_id=~"12|other"}[59m59s]))"#.to_string()
                ),
                (
                    Figure::Billing,
                    r#"sum by (campaign_id, ad_id) (sum_over_time(adclick_clicks{tier="rollup", campaign_id=~"7|9", ad_id=~"12|other"}[59m59s]))"#.to_string()
                ),
            ]
        );
        // One value: `=`. An ad filter drops `late` and `invalid`, which cannot be filtered by ad.
        let q = queries("from=2026-12-01&to=2026-12-02&campaign_id=3&ad_id=4");
        assert_eq!(
            q,
            [
                (
                    Figure::Final,
                    r#"sum by (campaign_id) (sum_over_time(adclick_clicks{tier!="rollup", campaign_id="3", ad_id="4"}[59m59s]))"#.to_string()
                ),
                (
                    Figure::Billing,
                    r#"sum by (campaign_id) (sum_over_time(adclick_clicks{tier="rollup", campaign_id="3", ad_id="4"}[59m59s]))"#.to_string()
                ),
            ]
        );
        let q = queries("from=2026-12-01&to=2026-12-02&campaign_id=3&campaign_id=5");
        assert_eq!(
            q[1].1,
            r#"sum by (campaign_id) (sum_over_time(adclick_late_clicks{tier!="rollup", campaign_id=~"3|5"}[59m59s]))"#
        );
        assert_eq!(
            q[2].1,
            r#"sum by (campaign_id) (sum_over_time(adclick_invalid_clicks{tier!="rollup", campaign_id=~"3|5"}[59m59s]))"#
        );
        assert_eq!(
            q[3].1,
            r#"sum by (campaign_id) (sum_over_time(adclick_spend_micros{tier!="rollup", campaign_id=~"3|5"}[59m59s]))"#
        );
    }

    #[test]
    fn the_range_is_the_buckets_ends() {
        let r = request("from=2026-12-01T22:00:00Z&to=2026-12-02T02:00:00Z").unwrap();
        let plan = r.plan();
        assert_eq!(plan.len(), 5);
        for p in &plan {
            assert_eq!(
                p.start_ms, 1_796_166_000_000,
                "2026-12-01T23:00Z, the first bucket's end"
            );
            assert_eq!(p.end_ms, 1_796_176_800_000, "2026-12-02T02:00Z");
            assert_eq!(p.step_ms, 3_600_000);
        }
        assert_eq!(
            plan[0].form("q".into()),
            Params(vec![
                ("query".into(), "q".into()),
                ("start".into(), "1796166000".into()),
                ("end".into(), "1796176800".into()),
                ("step".into(), "3600".into()),
            ])
        );
    }

    #[test]
    fn every_planned_query_passes_enforce_unchanged_but_for_the_advertiser() {
        let policy = Policy::default();
        for query in [
            "from=2026-12-01&to=2026-12-02",
            "from=2026-12-01&to=2026-12-02&step=1m&by=ad",
            "from=2026-11-01&to=2026-12-01&step=1d&by=ad&ad_id=other&ad_id=5",
            "from=2026-12-01&to=2026-12-02&campaign_id=1&campaign_id=2",
        ] {
            for p in request(query).unwrap().plan() {
                let enforced =
                    enforce(&p.query, 42, &policy).unwrap_or_else(|e| panic!("{}: {e}", p.query));
                assert!(enforced.contains(r#"advertiser_id="42""#), "{enforced}");
                // The window survives promql-parser's printing as it was written.
                let window = &p.query[p.query.rfind('[').unwrap()..];
                assert!(enforced.contains(window), "{enforced} lacks {window}");
                assert!(enforced.contains(r#"tier"#), "{enforced}");
            }
        }
        // Exactly: the window, the tier matcher and the filters pass as written.
        let final_ = &request("from=2026-12-01&to=2026-12-02&step=1d&campaign_id=3&campaign_id=5")
            .unwrap()
            .plan()[0];
        assert_eq!(
            enforce(&final_.query, 42, &policy).unwrap(),
            r#"sum by (campaign_id) (sum_over_time(adclick_clicks{advertiser_id="42",campaign_id=~"3|5",tier!="rollup"}[23h59m59s]))"#
        );
        // The one thing enforce would refuse is what the plan never writes.
        assert!(matches!(
            enforce(r#"adclick_clicks{advertiser_id="7"}"#, 42, &policy),
            Err(Refusal::AdvertiserMatcher { .. })
        ));
    }
}
