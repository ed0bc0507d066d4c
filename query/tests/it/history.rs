//! The history route (issue #21) against stock Prometheus 2.42 on both sides, through
//! `adclick_query::run` over real HTTP. The history upstream (`history_kind = "prometheus"`;
//! Thanos Query speaks the same HTTP API) serves two days of rollup blocks written by
//! `adclick-tsdb` as the rollup publishes them (README, "Daily rollup": one block per UTC day,
//! `adclick_clicks{advertiser_id,campaign_id,ad_id}` minute samples stamped at each minute's end,
//! `tier="rollup"` only in meta.json). The live upstream serves the stream's minutes of those
//! days (a block, as its compactor leaves them) and the last few minutes (remote_write). The
//! gateway's live retention is one day; the days are three and two days back.
//!
//! Both tiers hold the same series names and labels with different values (the stream lost a
//! quarter of the clicks to lateness and folded one ad into `other`), so every answer shows which
//! upstream gave it. With A's key:
//! - `tier="rollup"` goes to history at any time, its matcher dropped there (a Prometheus has no
//!   `tier` label): the README's billing queries answer exactly A's sums from the blocks;
//! - `tier!="rollup"` and `tier="stream"` go live, even three days back;
//! - without a tier, a query reading three days back goes to history, one reading the last
//!   minutes live;
//! - `series` and `label/<name>/values` go by their `match[]`'s tier and their `start`;
//! - `/v1/clicks`: `billing` is the rollup's per ad and hour (and day), `final` the stream's, in
//!   JSON and CSV.
//!
//! B's key sees B's only; the operator's sees both. Every expected figure is computed from the
//! samples written, under Prometheus 2.x's range rule (a window `[r]` at `T` holds the samples
//! stamped in `[T - r, T]`, closed at both ends).
//!
//! The live upstream is a scratch Prometheus, not the stack's: the stack's accepts nothing older
//! than its out-of-order window (2 h), so it could not hold the stream's days, and without them a
//! misrouted old query would read an empty live side, indistinguishable from a tier with no
//! clicks. A scratch one also holds this test's series alone, so the operator's answers are
//! exact. (The stack must still be up: it provides the Prometheus binary.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adclick_query::{HistoryKind, Listeners, QueryConfig, ServeError, key_digest_hex, run};
use adclick_remote_write::RequestBuilder;
use adclick_testsupport::{Rng, ScratchPrometheus, Stack};
use adclick_tsdb::{BlockOptions, Label, Sample, Series, Ulid, write_block};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::advertiser_pair;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The README's window for a calendar day's clicks, `[1439m]` (see [`calendar_day`]).
const CALENDAR_DAY_MS: i64 = 1439 * MINUTE_MS;

const KEY_A: &str = "history-test-key-a";
const KEY_B: &str = "history-test-key-b";
const KEY_OP: &str = "history-test-key-operator";

/// The grouping of the advertiser's queries and of `/v1/clicks?by=ad`.
const BY_AD: [&str; 2] = ["campaign_id", "ad_id"];
/// The README's billing grouping, which shows whose series were summed.
const BY_ADVERTISER_AD: [&str; 3] = ["advertiser_id", "campaign_id", "ad_id"];

/// A query's answer, or its ground truth: per group (the values of the `by` labels), a count.
type Sums = BTreeMap<Vec<String>, u64>;

/// One series of `adclick_clicks` with its minute samples, stamped at each minute's end.
#[derive(Debug, Clone)]
struct Clicks {
    advertiser: u64,
    campaign: u64,
    /// Digits, or `other` (the stream's ads outside its top K).
    ad: String,
    minutes: Vec<(i64, u64)>,
}

impl Clicks {
    fn label(&self, name: &str) -> String {
        match name {
            "advertiser_id" => self.advertiser.to_string(),
            "campaign_id" => self.campaign.to_string(),
            "ad_id" => self.ad.clone(),
            _ => panic!("the test's series have no label {name}"),
        }
    }

    /// The series as a block over `[from, to)` holds it: the rollup's labels, no `tier`.
    fn in_block(&self, from: i64, to: i64) -> Series {
        Series {
            labels: vec![
                Label::new("__name__", "adclick_clicks"),
                Label::new("ad_id", self.ad.clone()),
                Label::new("advertiser_id", self.advertiser.to_string()),
                Label::new("campaign_id", self.campaign.to_string()),
            ],
            samples: self
                .minutes
                .iter()
                .filter(|(t, _)| (from..to).contains(t))
                .map(|&(t, v)| Sample::new(t, v as f64))
                .collect(),
        }
    }
}

/// What `sum by (<by>) (sum_over_time(adclick_clicks[range]))` evaluated at `at` answers over
/// `series` (those of `advertiser`; all of them for None): per group, the sum of the samples
/// stamped in `[at - range, at]`. A group with samples there is answered even when they are
/// all zero, as Prometheus does.
fn sums(series: &[Clicks], advertiser: Option<u64>, at: i64, range: i64, by: &[&str]) -> Sums {
    let mut out = Sums::new();
    for one in series
        .iter()
        .filter(|c| advertiser.is_none_or(|a| c.advertiser == a))
    {
        let mut window = one
            .minutes
            .iter()
            .filter(|(t, _)| (at - range..=at).contains(t))
            .peekable();
        if window.peek().is_some() {
            let key = by.iter().map(|l| one.label(l)).collect();
            *out.entry(key).or_default() += window.map(|(_, v)| v).sum::<u64>();
        }
    }
    out
}

/// Two days of minutes from `day` (every minute, zeros included, as both tiers write them) for
/// A's ads 11, 12, 13 (campaign 1) and 21 (campaign 2) and B's 11 (campaign 1, as A's: only
/// `advertiser_id` tells them apart) and 41 (campaign 4). The rollup's, each ad its own series;
/// the stream's, lacking the quarter of each minute's clicks (rounded down) that arrived late,
/// and with A's ad 13 folded into campaign 1's `other`.
fn the_tiers(a: u64, b: u64, day: i64) -> (Vec<Clicks>, Vec<Clicks>) {
    let mut rng = Rng(21);
    // Where the windows are cut: fixed, distinct, non-zero counts there, so that a window off by
    // one minute at either end changes the sums.
    let edges = [
        (day, 3),
        (day + MINUTE_MS, 5),
        (day + DAY_MS, 7),
        (day + DAY_MS + MINUTE_MS, 11),
    ];
    let ads = [
        (a, 1, "11"),
        (a, 1, "12"),
        (a, 1, "13"),
        (a, 2, "21"),
        (b, 1, "11"),
        (b, 4, "41"),
    ];
    let (mut rollup, mut stream) = (vec![], vec![]);
    for (advertiser, campaign, ad) in ads {
        // B's counts are a thousand times A's: a leak is plain in any sum.
        let scale = if advertiser == b { 1000 } else { 1 };
        let minutes: Vec<(i64, u64)> = (0..2 * 1440)
            .map(|k| {
                let t = day + k * MINUTE_MS;
                let clicks = match edges.iter().find(|(edge, _)| *edge == t) {
                    Some((_, n)) => *n,
                    None if rng.range(0, 3) == 0 => 0,
                    None => rng.range(0, 20) as u64,
                };
                (t, clicks * scale)
            })
            .collect();
        let streamed = minutes.iter().map(|&(t, n)| (t, n - n / 4)).collect();
        let streamed_ad = if ad == "13" { "other" } else { ad };
        rollup.push(Clicks {
            advertiser,
            campaign,
            ad: ad.into(),
            minutes,
        });
        stream.push(Clicks {
            advertiser,
            campaign,
            ad: streamed_ad.into(),
            minutes: streamed,
        });
    }
    (rollup, stream)
}

/// `{tier: <tier>}`: a block's Thanos external labels.
fn tier_label(tier: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("tier".to_string(), tier.to_string())])
}

/// The gateway, served by `adclick_query::run` on ports of its own until [`Gateway::stop`].
struct Gateway {
    url: String,
    http: reqwest::Client,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), ServeError>>,
    _keys: tempfile::TempDir,
}

impl Gateway {
    async fn start(live: &str, history: &str, a: u64, b: u64) -> Gateway {
        let keys = tempfile::tempdir().unwrap();
        let api_keys_file = keys.path().join("keys");
        std::fs::write(
            &api_keys_file,
            format!(
                "{} {a}\n{} {b}\n{} operator\n",
                key_digest_hex(KEY_A),
                key_digest_hex(KEY_B),
                key_digest_hex(KEY_OP)
            ),
        )
        .unwrap();
        let config = QueryConfig {
            prometheus_url: live.to_string(),
            history_url: history.to_string(),
            history_kind: HistoryKind::Prometheus,
            // The days written are two and three days back: history for an untiered query.
            live_retention_ms: DAY_MS as u64,
            // Every request of the test at once: no rate limit to trip over.
            requests_per_second: 0,
            // The longest read is a day and a minute; a week leaves the limit out of the way.
            max_range_ms: 7 * DAY_MS as u64,
            api_keys_file,
            ..QueryConfig::default()
        };
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", api.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(run(Listeners { api, admin }, config, async {
            let _ = stopped.await;
        }));
        Gateway {
            url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            stop,
            server,
            _keys: keys,
        }
    }

    /// GET `path?params` with `key`: status, content type, body.
    async fn get(&self, path: &str, params: &[(&str, &str)], key: &str) -> (u16, String, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .query(params)
            .bearer_auth(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path} {params:?}: {e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, content_type, response.text().await.unwrap())
    }

    /// A Prometheus API call that must succeed: its `data`.
    async fn data(&self, path: &str, params: &[(&str, &str)], key: &str) -> Value {
        let (status, _, body) = self.get(path, params, key).await;
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path} {params:?}: {status}, not JSON ({e}): {body}"));
        assert_eq!(
            (status, json["status"].as_str()),
            (200, Some("success")),
            "{path} {params:?}: {body}"
        );
        json["data"].clone()
    }

    /// An instant query at `at_ms`: its vector by the values of `by`, each a whole count.
    async fn vector(&self, query: &str, at_ms: i64, key: &str, by: &[&str]) -> Sums {
        let time = seconds(at_ms);
        let data = self
            .data("/api/v1/query", &[("query", query), ("time", &time)], key)
            .await;
        assert_eq!(data["resultType"], "vector", "{query}: {data}");
        let mut out = Sums::new();
        for item in data["result"].as_array().unwrap() {
            let key = by
                .iter()
                .map(|l| {
                    let value = item["metric"][*l].as_str();
                    value.unwrap_or_else(|| panic!("{query}: no {l} in {item}"))
                })
                .map(str::to_string)
                .collect();
            let value: f64 = item["value"][1].as_str().unwrap().parse().unwrap();
            assert!(value >= 0.0 && value.fract() == 0.0, "{query}: {item}");
            assert!(out.insert(key, value as u64).is_none(), "{query}: {data}");
        }
        out
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.server.await.unwrap().unwrap();
    }
}

/// Unix ms as Prometheus' `time` parameter: seconds, milliseconds as a fraction.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Unix ms as `/v1/clicks` writes a bucket's start: RFC 3339, seconds, UTC.
fn rfc3339(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap());
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The series of a `series` answer, as label maps.
fn label_sets(data: &Value) -> BTreeSet<BTreeMap<String, String>> {
    data.as_array()
        .unwrap_or_else(|| panic!("not a series list: {data}"))
        .iter()
        .map(|s| serde_json::from_value(s.clone()).unwrap())
        .collect()
}

/// The series `series` answers for `clicks` (with `match[]=adclick_clicks…`): their labels.
fn label_sets_of<'a>(
    clicks: impl Iterator<Item = &'a Clicks>,
) -> BTreeSet<BTreeMap<String, String>> {
    clicks
        .map(|c| {
            BTreeMap::from([
                ("__name__".to_string(), "adclick_clicks".to_string()),
                ("advertiser_id".to_string(), c.label("advertiser_id")),
                ("campaign_id".to_string(), c.label("campaign_id")),
                ("ad_id".to_string(), c.label("ad_id")),
            ])
        })
        .collect()
}

/// One `/v1/clicks?by=ad` row: start, campaign, ad, final, billing.
type Row = (String, u64, String, Option<u64>, Option<u64>);

/// The rows `/v1/clicks?by=ad` answers for `advertiser` over `[from, to)` at `step`: one per
/// bucket and (campaign, ad) that either tier has samples for in the bucket, in the answer's
/// order (start, campaign, ad; `other` last). The bucket `[S, S + step)` holds the samples
/// stamped `S + 1m … S + step`; `final` is the stream's sum (0 where it has no series),
/// `billing` the rollup's (none where it has no series, as for `other`).
fn expected_rows(f: &Fixture, advertiser: u64, from: i64, to: i64, step: i64) -> Vec<Row> {
    let mut rows = vec![];
    for start in (from..to).step_by(usize::try_from(step).unwrap()) {
        let at = start + step;
        let stream = sums(&f.live, Some(advertiser), at, step - MINUTE_MS, &BY_AD);
        let rollup = sums(&f.rollup, Some(advertiser), at, step - MINUTE_MS, &BY_AD);
        let groups: BTreeSet<&Vec<String>> = stream.keys().chain(rollup.keys()).collect();
        let mut bucket: Vec<Row> = groups
            .into_iter()
            .map(|g| {
                (
                    rfc3339(start),
                    g[0].parse().unwrap(),
                    g[1].clone(),
                    Some(stream.get(g).copied().unwrap_or(0)),
                    rollup.get(g).copied(),
                )
            })
            .collect();
        bucket.sort_by_key(|r| (r.1, r.2 == "other", r.2.parse::<u64>().unwrap_or(0)));
        rows.extend(bucket);
    }
    rows
}

/// A `/v1/clicks?by=ad` JSON answer's rows.
fn json_rows(body: &Value) -> Vec<Row> {
    let count = |v: &Value| match v {
        Value::Null => None,
        v => Some(v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))),
    };
    body["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows in {body}"))
        .iter()
        .map(|r| {
            (
                r["start"].as_str().unwrap().to_string(),
                r["campaign_id"].as_str().unwrap().parse().unwrap(),
                r["ad_id"].as_str().unwrap().to_string(),
                count(&r["final"]),
                count(&r["billing"]),
            )
        })
        .collect()
}

/// `rows` as `/v1/clicks?by=ad&format=csv` writes them (RFC 4180, CRLF, a header).
fn csv(rows: &[Row]) -> String {
    let count = |v: &Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    let mut out = "start,campaign_id,ad_id,final,billing\r\n".to_string();
    for (start, campaign, ad, final_, billing) in rows {
        out.push_str(&format!(
            "{start},{campaign},{ad},{},{}\r\n",
            count(final_),
            count(billing)
        ));
    }
    out
}

struct Fixture {
    a: u64,
    b: u64,
    /// D: 00:00 UTC three days back, Unix ms. The blocks cover D and D + 1.
    day: i64,
    /// The history Prometheus' series: the rollup's of D and D + 1.
    rollup: Vec<Clicks>,
    /// The live Prometheus' series: the stream's of D and D + 1, and the last minutes'.
    live: Vec<Clicks>,
    /// A whole minute, just after the last minutes' samples: when the live ones are read.
    now: i64,
    gateway: Gateway,
    history_prometheus: ScratchPrometheus,
    live_prometheus: ScratchPrometheus,
}

/// The blocks written and served, the last minutes remote-written to the live side, and the
/// gateway in front of both.
async fn fixture() -> Fixture {
    let stack = Stack::get();
    let scope = stack.isolated("query-history");
    let (a, b) = advertiser_pair(&scope.id);
    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let day = now_ms.div_euclid(DAY_MS) * DAY_MS - 3 * DAY_MS;
    let (rollup, stream) = the_tiers(a, b, day);

    // The rollup publishes one block per day, [D 00:00, D+1 00:00).
    let history_blocks = |data: &Path| {
        for from in [day, day + DAY_MS] {
            let series = rollup.iter().map(|c| c.in_block(from, from + DAY_MS));
            let options = BlockOptions::new(from, from + DAY_MS, tier_label("rollup"), "rollup");
            write_block(data, options.with_ulid(Ulid::new()), series.collect()).unwrap();
        }
    };
    // The live Prometheus' own compaction of those days (one block is enough for it to serve).
    let live_block = |data: &Path| {
        let series = stream.iter().map(|c| c.in_block(day, day + 2 * DAY_MS));
        let options = BlockOptions::new(day, day + 2 * DAY_MS, tier_label("stream"), "sidecar");
        write_block(data, options.with_ulid(Ulid::new()), series.collect()).unwrap();
    };
    // Their readiness wait blocks (and their drop kills a child): off the async threads.
    let (history_prometheus, live_prometheus) = tokio::task::block_in_place(|| {
        (
            ScratchPrometheus::start(&stack, "global: {}\n", history_blocks),
            ScratchPrometheus::start(&stack, "global: {}\n", live_block),
        )
    });

    // The last three minutes, on the live side only: A's ad 11 and B's.
    let now = now_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
    let recent: Vec<Clicks> = [(a, 5), (b, 5000)]
        .into_iter()
        .map(|(advertiser, base)| Clicks {
            advertiser,
            campaign: 1,
            ad: "11".into(),
            minutes: (1..=3)
                .map(|i| (now - (4 - i) * MINUTE_MS, base + i as u64))
                .collect(),
        })
        .collect();
    let mut builder = RequestBuilder::new();
    for c in &recent {
        let samples = c
            .minutes
            .iter()
            .map(|&(t, n)| adclick_remote_write::Sample::new(t, n as f64));
        let labels = ["advertiser_id", "campaign_id", "ad_id"].map(|l| (l, c.label(l)));
        builder
            .series(
                std::iter::once(("__name__", "adclick_clicks".to_string())).chain(labels),
                samples,
            )
            .unwrap();
    }
    let sender = adclick_remote_write::Sender::new(
        &adclick_remote_write::Config::for_url(live_prometheus.remote_write_url()),
        adclick_remote_write::Metrics::new(),
    )
    .unwrap();
    sender.send(&builder.build()).await.unwrap();

    let gateway = Gateway::start(live_prometheus.url(), history_prometheus.url(), a, b).await;
    Fixture {
        a,
        b,
        day,
        rollup,
        live: stream.into_iter().chain(recent).collect(),
        now,
        gateway,
        history_prometheus,
        live_prometheus,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_route_against_a_prometheus_serving_rollup_blocks() {
    let f = fixture().await;
    rollup_tier_goes_to_history(&f).await;
    stream_tier_goes_live(&f).await;
    no_tier_goes_by_how_far_back(&f).await;
    metadata_goes_by_tier_and_start(&f).await;
    clicks_bills_from_history(&f).await;
    each_caller_sees_its_own(&f).await;
    let Fixture {
        gateway,
        history_prometheus,
        live_prometheus,
        ..
    } = f;
    gateway.stop().await;
    tokio::task::block_in_place(|| drop((history_prometheus, live_prometheus)));
}

/// The README's calendar-day billing query: `[1439m]` at D+1 00:00 holds the samples stamped
/// D 00:01 … D+1 00:00, the minutes 00:00–23:59 of D (the last from the block of D + 1).
fn calendar_day(selector: &str) -> String {
    format!("sum by (campaign_id, ad_id) (sum_over_time(adclick_clicks{selector}[1439m]))")
}

async fn rollup_tier_goes_to_history(f: &Fixture) {
    let g = &f.gateway;
    let t = f.day + DAY_MS;
    let rollup = sums(&f.rollup, Some(f.a), t, CALENDAR_DAY_MS, &BY_AD);
    let stream = sums(&f.live, Some(f.a), t, CALENDAR_DAY_MS, &BY_AD);
    // What lets every answer below name its upstream.
    assert_ne!(
        rollup, stream,
        "the tiers must differ for the test to see the route"
    );
    println!(
        "A's calendar day {} per (campaign, ad): rollup {rollup:?}, stream {stream:?}; B's rollup {:?}",
        &rfc3339(f.day)[..10],
        sums(&f.rollup, Some(f.b), t, CALENDAR_DAY_MS, &BY_AD)
    );
    assert_eq!(
        g.vector(&calendar_day(r#"{tier="rollup"}"#), t, KEY_A, &BY_AD)
            .await,
        rollup,
        "A's calendar day, rollup tier: the blocks' sums, A's only"
    );

    // The README's other billing query, the block of D alone: `[1d]` at D+1 00:00 less 1 ms.
    let block_of_d = sums(&f.rollup, Some(f.a), t - 1, DAY_MS, &BY_ADVERTISER_AD);
    let q = r#"sum by (advertiser_id, campaign_id, ad_id) (sum_over_time(adclick_clicks{tier="rollup"}[1d]))"#;
    assert_eq!(
        g.vector(q, t - 1, KEY_A, &BY_ADVERTISER_AD).await,
        block_of_d,
        "A's block of D"
    );
    let calendar_total: u64 = rollup.values().sum();
    assert_ne!(
        block_of_d.values().sum::<u64>(),
        calendar_total,
        "the two days' windows differ at their edges"
    );

    // Now: the rollup has nothing that recent, and the live minutes are not asked.
    let recent =
        r#"sum by (campaign_id, ad_id) (sum_over_time(adclick_clicks{tier="rollup"}[10m]))"#;
    assert_eq!(
        g.vector(recent, f.now, KEY_A, &BY_AD).await,
        Sums::new(),
        "tier=\"rollup\" over the last minutes: history, empty"
    );
}

async fn stream_tier_goes_live(f: &Fixture) {
    let g = &f.gateway;
    let t = f.day + DAY_MS;
    let stream = sums(&f.live, Some(f.a), t, CALENDAR_DAY_MS, &BY_AD);
    for selector in [r#"{tier!="rollup"}"#, r#"{tier="stream"}"#] {
        assert_eq!(
            g.vector(&calendar_day(selector), t, KEY_A, &BY_AD).await,
            stream,
            "{selector} three days back: live, the stream's figures"
        );
    }
    let recent = sums(&f.live, Some(f.a), f.now, 10 * MINUTE_MS, &BY_AD);
    let q = r#"sum by (campaign_id, ad_id) (sum_over_time(adclick_clicks{tier!="rollup"}[10m]))"#;
    assert_eq!(g.vector(q, f.now, KEY_A, &BY_AD).await, recent);
}

async fn no_tier_goes_by_how_far_back(f: &Fixture) {
    let g = &f.gateway;
    let t = f.day + DAY_MS;
    assert_eq!(
        g.vector(&calendar_day(""), t, KEY_A, &BY_AD).await,
        sums(&f.rollup, Some(f.a), t, CALENDAR_DAY_MS, &BY_AD),
        "no tier, three days back: history, as the rollup tier"
    );
    let recent = sums(&f.live, Some(f.a), f.now, 10 * MINUTE_MS, &BY_AD);
    assert_eq!(
        recent,
        Sums::from([(vec!["1".into(), "11".into()], 6 + 7 + 8)]),
        "the last minutes as written"
    );
    let q = "sum by (campaign_id, ad_id) (sum_over_time(adclick_clicks[10m]))";
    assert_eq!(
        g.vector(q, f.now, KEY_A, &BY_AD).await,
        recent,
        "no tier, the last minutes: live"
    );
}

async fn metadata_goes_by_tier_and_start(f: &Fixture) {
    let g = &f.gateway;
    let (start, end) = (seconds(f.day), seconds(f.day + DAY_MS - 1));
    let a_rollup = || f.rollup.iter().filter(|c| c.advertiser == f.a);
    let a_stream = || f.live.iter().filter(|c| c.advertiser == f.a);
    let ads = |clicks: &mut dyn Iterator<Item = &Clicks>| -> Value {
        let set: BTreeSet<String> = clicks.map(|c| c.ad.clone()).collect();
        set.into_iter().collect()
    };
    let rollup_ads = ads(&mut a_rollup());
    let stream_ads = ads(&mut a_stream());
    assert_ne!(rollup_ads, stream_ads, "`other` is the stream's alone");

    let matching = |selector: &'static str| {
        [
            ("match[]", selector),
            ("start", start.as_str()),
            ("end", end.as_str()),
        ]
    };
    let rollup_tier = matching(r#"adclick_clicks{tier="rollup"}"#);
    let series = g.data("/api/v1/series", &rollup_tier, KEY_A).await;
    assert_eq!(label_sets(&series), label_sets_of(a_rollup()), "{series}");
    let values = "/api/v1/label/ad_id/values";
    assert_eq!(g.data(values, &rollup_tier, KEY_A).await, rollup_ads);

    // No tier, from D on: history; tier!="rollup": live, whatever the start.
    let untiered = matching("adclick_clicks");
    assert_eq!(g.data(values, &untiered, KEY_A).await, rollup_ads);
    let series = g.data("/api/v1/series", &untiered, KEY_A).await;
    assert_eq!(label_sets(&series), label_sets_of(a_rollup()), "{series}");
    let stream_tier = matching(r#"adclick_clicks{tier!="rollup"}"#);
    assert_eq!(g.data(values, &stream_tier, KEY_A).await, stream_ads);

    // No tier, from ten minutes ago: live, where only the head's series (ad 11's last
    // minutes) are in that range.
    let since = seconds(f.now - 10 * MINUTE_MS);
    let last_minutes = [("match[]", "adclick_clicks"), ("start", since.as_str())];
    assert_eq!(
        g.data(values, &last_minutes, KEY_A).await,
        serde_json::json!(["11"])
    );
}

async fn clicks_bills_from_history(f: &Fixture) {
    let g = &f.gateway;
    let (from, to) = (f.day, f.day + DAY_MS);
    let (from_date, to_date) = (&rfc3339(from)[..10], &rfc3339(to)[..10]);
    let ask = |step: &'static str, format: &'static str| {
        [
            ("from", from_date),
            ("to", to_date),
            ("step", step),
            ("by", "ad"),
            ("format", format),
        ]
    };

    // Hourly, JSON: final from the live side (the stream's hours), billing from the blocks.
    let hourly = expected_rows(f, f.a, from, to, HOUR_MS);
    assert_eq!(hourly.len(), 24 * 5, "24 hours of A's 4 ads and `other`");
    let (status, content_type, body) = g.get("/v1/clicks", &ask("1h", "json"), KEY_A).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/json"),
        "{body}"
    );
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&json["from"], &json["to"], &json["step"], &json["by"]),
        (
            &Value::from(rfc3339(from)),
            &Value::from(rfc3339(to)),
            &Value::from("1h"),
            &Value::from("ad")
        ),
        "{body}"
    );
    assert_eq!(json_rows(&json), hourly);

    // The same as CSV.
    let (status, content_type, body) = g.get("/v1/clicks", &ask("1h", "csv"), KEY_A).await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert_eq!(body, csv(&hourly));

    // Daily: billing is the README's calendar-day figure per ad.
    let daily = expected_rows(f, f.a, from, to, DAY_MS);
    let (status, _, body) = g.get("/v1/clicks", &ask("1d", "json"), KEY_A).await;
    assert_eq!(status, 200, "{body}");
    let rows = json_rows(&serde_json::from_str(&body).unwrap());
    assert_eq!(rows, daily);
    let billed: Sums = rows
        .iter()
        .filter_map(|(_, campaign, ad, _, billing)| {
            billing.map(|n| (vec![campaign.to_string(), ad.clone()], n))
        })
        .collect();
    assert_eq!(
        billed,
        sums(&f.rollup, Some(f.a), to, CALENDAR_DAY_MS, &BY_AD),
        "a day's billing per ad"
    );
    let (status, _, body) = g.get("/v1/clicks", &ask("1d", "csv"), KEY_A).await;
    assert_eq!((status, body), (200, csv(&daily)));
}

async fn each_caller_sees_its_own(f: &Fixture) {
    let g = &f.gateway;
    let t = f.day + DAY_MS;
    let rollup_tier = calendar_day(r#"{tier="rollup"}"#);
    assert_eq!(
        g.vector(&rollup_tier, t, KEY_B, &BY_AD).await,
        sums(&f.rollup, Some(f.b), t, CALENDAR_DAY_MS, &BY_AD),
        "B's calendar day"
    );
    let (start, end) = (seconds(f.day), seconds(t - 1));
    let series = g
        .data(
            "/api/v1/series",
            &[
                ("match[]", r#"adclick_clicks{tier="rollup"}"#),
                ("start", start.as_str()),
                ("end", end.as_str()),
            ],
            KEY_B,
        )
        .await;
    assert_eq!(
        label_sets(&series),
        label_sets_of(f.rollup.iter().filter(|c| c.advertiser == f.b))
    );
    let (from, to) = (&rfc3339(f.day)[..10], &rfc3339(t)[..10]);
    let params = [("from", from), ("to", to), ("step", "1d"), ("by", "ad")];
    let (status, _, body) = g.get("/v1/clicks", &params, KEY_B).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json_rows(&serde_json::from_str(&body).unwrap()),
        expected_rows(f, f.b, f.day, t, DAY_MS)
    );

    // The operator, unrestricted: both advertisers' blocks.
    let q = r#"sum by (advertiser_id, campaign_id, ad_id) (sum_over_time(adclick_clicks{tier="rollup"}[1439m]))"#;
    let both = sums(&f.rollup, None, t, CALENDAR_DAY_MS, &BY_ADVERTISER_AD);
    let advertisers: BTreeSet<&String> = both.keys().map(|k| &k[0]).collect();
    assert_eq!(advertisers.len(), 2);
    assert_eq!(g.vector(q, t, KEY_OP, &BY_ADVERTISER_AD).await, both);
}
