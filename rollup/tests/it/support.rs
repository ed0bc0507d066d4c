//! What the rollup's tests share: traffic with a known truth, written as archive objects the way
//! the exporter writes them; the rollup's configuration for a test; blocks read back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use adclick_click::archive::{encode, object_key};
use adclick_click::minute::Minute;
use adclick_click::wire::{Click, ClickFlag};
use adclick_rollup::report::Report;
use adclick_rollup::{Day, Deps, Outcome, RollupConfig, RunOptions};
use adclick_testsupport::promtool::{Point, value_bits};
use adclick_testsupport::{Rng, TestScope};
use adclick_tsdb::BlockMeta;

pub const TOPIC: &str = "clicks";
const PARTITIONS: u32 = 4;

/// One archived record: partition, Kafka timestamp, the click.
pub type Record = (u32, i64, Click);

/// The valid clicks of one ad in one minute, by construction.
#[derive(Debug, Clone, Default)]
pub struct MinuteTruth {
    pub clicks: u64,
    pub spend_micros: u64,
    /// Non-zero user hashes.
    pub users: BTreeSet<u64>,
}

/// A day of clicks with its truth worked out by construction.
pub struct Traffic {
    pub day: Day,
    pub records: Vec<Record>,
    /// (advertiser, campaign, ad) → minute end → its valid clicks.
    pub truth: BTreeMap<(u64, u64, u64), BTreeMap<i64, MinuteTruth>>,
    pub duplicates_in_day: u64,
    pub unchecked_in_day: u64,
}

fn ad_of(ad_id: u64) -> (u64, u64, u64) {
    let campaign = (ad_id - 1) / 5 + 1;
    ((campaign - 1) / 3 + 1, campaign, ad_id)
}

/// A person, or 0 (unknown) for one impression in ten, from a pool of 40: people click several
/// ads and minutes. Derived from the impression, so its repeats carry the same user.
fn user_of(impression: [u8; 16]) -> u64 {
    match impression[8] % 10 {
        0 => 0,
        _ => 1 + u64::from(impression[9] % 40),
    }
}

/// The token's price: a few cents, now and then a free click.
fn price_of(impression: [u8; 16]) -> u64 {
    u64::from(impression[10] % 8) * 12_500
}

pub fn click(impression: [u8; 16], ad_id: u64, event_time_ms: i64, unchecked: bool) -> Click {
    let (advertiser_id, campaign_id, ad_id) = ad_of(ad_id);
    let mut c = Click {
        impression_id: impression.to_vec(),
        ad_id,
        campaign_id,
        advertiser_id,
        event_time_ms,
        receive_time_ms: event_time_ms,
        user_hash: user_of(impression),
        flags: 0,
        price_micros: price_of(impression),
        ..Click::default()
    };
    if unchecked {
        c.set_flag(ClickFlag::DedupUnchecked);
    }
    c
}

impl Traffic {
    /// `unique` impressions clicked in the day (event times over the block's minutes), ~10% of
    /// them clicked again up to 2 minutes later (flagged dedup-unchecked, as ingest fails open);
    /// impressions first clicked 30 minutes before the day and again in it (not the day's
    /// clicks); clicks of the next day; Kafka timestamps a little after the event, some hours.
    pub fn generate(day: Day, seed: u64, unique: usize) -> Traffic {
        let mut rng = Rng(seed);
        let (from, to) = day.event_window_ms();
        let mut records: Vec<Record> = Vec::new();
        let mut push = |rng: &mut Rng, c: Click| {
            let partition = u32::from(c.impression_id[0]) % PARTITIONS;
            let delay = if rng.next_u64() % 50 == 0 {
                rng.range(3_600_000, 7_200_000)
            } else {
                rng.range(5, 5_000)
            };
            records.push((partition, c.event_time_ms + delay, c));
        };
        let mut truth: BTreeMap<(u64, u64, u64), BTreeMap<i64, MinuteTruth>> = BTreeMap::new();
        let mut in_day_records = 0u64;
        let mut unchecked_in_day = 0u64;
        let new_id = |rng: &mut Rng| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
            id[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
            id
        };
        for i in 0..unique {
            let id = new_id(&mut rng);
            let ad = 1 + rng.next_u64() % 30;
            // A few exactly on the block's first and last minute.
            let t = match i {
                0 => from,
                1 => to - 1,
                _ => rng.range(from, to),
            };
            push(&mut rng, click(id, ad, t, false));
            in_day_records += 1;
            let minute = truth
                .entry(ad_of(ad))
                .or_default()
                .entry(Minute::of(t).end_ms())
                .or_default();
            minute.clicks += 1;
            minute.spend_micros += price_of(id);
            if user_of(id) != 0 {
                minute.users.insert(user_of(id));
            }
            if rng.next_u64() % 10 == 0 {
                let again = t + rng.range(0, 120_000);
                push(&mut rng, click(id, ad, again, true));
                if again < to {
                    in_day_records += 1;
                    unchecked_in_day += 1;
                }
            }
        }
        for _ in 0..20 {
            let id = new_id(&mut rng);
            let ad = 1 + rng.next_u64() % 30;
            push(&mut rng, click(id, ad, from - 1_800_000, false));
            let again = from + rng.range(0, 3_600_000);
            push(&mut rng, click(id, ad, again, true));
            in_day_records += 1;
            unchecked_in_day += 1;
        }
        for _ in 0..10 {
            let id = new_id(&mut rng);
            let (ad, t) = (1 + rng.next_u64() % 30, to + rng.range(0, 600_000));
            push(&mut rng, click(id, ad, t, false));
        }
        let clicks: u64 = truth
            .values()
            .flat_map(|m| m.values())
            .map(|m| m.clicks)
            .sum();
        Traffic {
            day,
            records,
            truth,
            duplicates_in_day: in_day_records - clicks,
            unchecked_in_day,
        }
    }

    pub fn truth_total(&self) -> u64 {
        self.truth_per_ad().values().sum()
    }

    pub fn truth_per_ad(&self) -> BTreeMap<u64, u64> {
        self.truth
            .iter()
            .map(|(k, m)| (k.2, m.values().map(|m| m.clicks).sum()))
            .collect()
    }

    pub fn truth_per_campaign(&self) -> BTreeMap<u64, u64> {
        let mut out = BTreeMap::new();
        for (k, m) in &self.truth {
            *out.entry(k.1).or_default() += m.values().map(|m| m.clicks).sum::<u64>();
        }
        out
    }

    /// Spend per campaign.
    pub fn spend_per_campaign(&self) -> BTreeMap<u64, u64> {
        let mut out = BTreeMap::new();
        for (k, m) in &self.truth {
            *out.entry(k.1).or_default() += m.values().map(|m| m.spend_micros).sum::<u64>();
        }
        out
    }

    /// Distinct users of the day per campaign (of its ads' valid clicks together).
    pub fn users_per_campaign(&self) -> BTreeMap<u64, u64> {
        let mut users: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        for (k, m) in &self.truth {
            users
                .entry(k.1)
                .or_default()
                .extend(m.values().flat_map(|m| m.users.iter().copied()));
        }
        users
            .into_iter()
            .map(|(c, u)| (c, u.len() as u64))
            .collect()
    }

    /// The samples the block must hold, for each ad's `adclick_clicks`, `adclick_spend_micros`
    /// and `adclick_unique_users`: each minute's figure at its end, and a 0 at the end of the
    /// minute after each run of minutes (inside the block).
    pub fn expected_points(&self, test_id: &str) -> Vec<Point> {
        let mut out = Vec::new();
        type Figure = (&'static str, fn(&MinuteTruth) -> u64);
        let figures: [Figure; 3] = [
            ("adclick_clicks", |m| m.clicks),
            ("adclick_spend_micros", |m| m.spend_micros),
            ("adclick_unique_users", |m| m.users.len() as u64),
        ];
        for ((advertiser, campaign, ad), minutes) in &self.truth {
            for (name, figure) in figures {
                let mut labels = vec![
                    ("__name__".to_string(), name.to_string()),
                    ("ad_id".to_string(), ad.to_string()),
                    ("advertiser_id".to_string(), advertiser.to_string()),
                    ("campaign_id".to_string(), campaign.to_string()),
                    ("test_id".to_string(), test_id.to_string()),
                ];
                labels.sort();
                let mut add = |t: i64, v: f64| {
                    out.push(Point {
                        labels: labels.clone(),
                        timestamp_ms: t,
                        value_bits: value_bits(v),
                    })
                };
                for (&end, m) in minutes {
                    add(end, figure(m) as f64);
                    let next = end + 60_000;
                    if !minutes.contains_key(&next) && next < self.day.end_ms() {
                        add(next, 0.0);
                    }
                }
            }
        }
        out.sort();
        out
    }
}

/// Writes archive objects into the test's prefix as the exporter names and cuts them.
pub struct ArchiveWriter {
    s3: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl ArchiveWriter {
    pub async fn new(scope: &TestScope) -> ArchiveWriter {
        ArchiveWriter {
            s3: scope.stack.s3_client().await,
            bucket: scope.stack.s3_bucket().to_string(),
            prefix: scope.s3_prefix(),
        }
    }

    /// Per partition, records in Kafka-timestamp order get consecutive offsets and are cut into
    /// objects of `per_object`; partition 0 also gets one object overlapping two others (a
    /// replay with other size settings). Returns the keys written.
    pub async fn write(&self, records: &[Record], per_object: usize) -> Vec<String> {
        let mut by_partition: BTreeMap<u32, Vec<(i64, Vec<u8>)>> = BTreeMap::new();
        let mut sorted: Vec<&Record> = records.iter().collect();
        sorted.sort_by_key(|r| (r.0, r.1));
        for (p, ts, click) in sorted {
            by_partition
                .entry(*p)
                .or_default()
                .push((*ts, prost::Message::encode_to_vec(click)));
        }
        let mut keys = Vec::new();
        for (p, recs) in &by_partition {
            let with_offsets: Vec<(i64, i64, &[u8])> = recs
                .iter()
                .enumerate()
                .map(|(i, (ts, v))| (i as i64, *ts, v.as_slice()))
                .collect();
            for chunk in with_offsets.chunks(per_object) {
                keys.push(self.put_object(*p as i32, chunk).await);
            }
            if *p == 0 && with_offsets.len() > per_object + 10 {
                let overlap = &with_offsets[per_object - 10..per_object + 10];
                keys.push(self.put_object(0, overlap).await);
            }
        }
        keys
    }

    async fn put_object(&self, partition: i32, records: &[(i64, i64, &[u8])]) -> String {
        let body = encode(
            partition,
            &records.iter().map(|(o, _, v)| (*o, *v)).collect::<Vec<_>>(),
        );
        let (first, last) = (records[0].0, records[records.len() - 1].0);
        let key = object_key(&self.prefix, TOPIC, partition, records[0].1, first, last);
        self.put_raw(&key, body).await;
        key
    }

    pub async fn put_raw(&self, key: &str, body: Vec<u8>) {
        adclick_objstore::put(&self.s3, &self.bucket, key, body)
            .await
            .unwrap();
    }

    /// The directory of objects written in the hour holding `ms`.
    pub fn hour_dir(&self, ms: i64) -> String {
        let (date, hour) = adclick_click::archive::utc_date_hour(ms);
        format!(
            "{}topic={TOPIC}/",
            adclick_click::archive::hour_prefix(&self.prefix, &date, hour)
        )
    }
}

/// The rollup's configuration for a test: its own archive and block prefixes, its `test_id`
/// label, a report directory of its own.
pub fn rollup_config(scope: &TestScope, reconcile: bool) -> RollupConfig {
    let reports = std::env::temp_dir().join(format!("adclick-rollup-reports-{}", scope.id));
    RollupConfig {
        archive_prefix: scope.s3_prefix(),
        blocks_prefix: format!("{}blocks/", scope.s3_prefix()),
        labels: BTreeMap::from([("test_id".to_string(), scope.id.clone())]),
        prometheus_url: if reconcile {
            scope.stack.prometheus_url().to_string()
        } else {
            String::new()
        },
        metrics_remote_write_url: if reconcile {
            scope.stack.remote_write_url().to_string()
        } else {
            String::new()
        },
        report_dir: reports.display().to_string(),
        ..RollupConfig::default()
    }
}

/// Runs the rollup of `day` and fails unless it ended clean (exit 0).
pub async fn run_clean(config: &RollupConfig, deps: &Deps, day: Day) -> Report {
    let report = adclick_rollup::run(config, deps, &RunOptions::for_day(day))
        .await
        .unwrap();
    assert_eq!(
        report.exit_code,
        Outcome::Clean.exit_code(),
        "{}",
        report.summary()
    );
    report
}

pub async fn deps(scope: &TestScope) -> Deps {
    deps_with_endpoint(scope, scope.stack.s3_endpoint()).await
}

/// Deps whose S3 client goes through `endpoint` (e.g. a [`adclick_testsupport::FaultProxy`]).
pub async fn deps_with_endpoint(scope: &TestScope, endpoint: &str) -> Deps {
    let stack = &scope.stack;
    let creds = aws_sdk_s3::config::Credentials::new(
        stack.aws_access_key_id(),
        stack.aws_secret_access_key(),
        None,
        None,
        "adclick-test",
    );
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_s3::config::Region::new(
            stack.s3_region().to_string(),
        ))
        .credentials_provider(creds)
        .force_path_style(true)
        .build();
    Deps {
        s3: aws_sdk_s3::Client::from_conf(config),
        bucket: stack.s3_bucket().to_string(),
        topic: TOPIC.to_string(),
        http: reqwest::Client::new(),
        billing: None,
    }
}

/// Complete blocks (with meta.json, without a deletion mark) under `prefix`.
pub async fn blocks_in_bucket(scope: &TestScope, prefix: &str) -> Vec<String> {
    let s3 = scope.stack.s3_client().await;
    let keys = adclick_objstore::list(&s3, scope.stack.s3_bucket(), prefix)
        .await
        .unwrap();
    let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    let mut out: Vec<String> = names
        .iter()
        .filter_map(|k| k.strip_suffix("/meta.json"))
        .filter(|dir| !names.contains(&format!("{dir}/deletion-mark.json").as_str()))
        .map(|dir| dir[prefix.len()..].to_string())
        .collect();
    out.sort();
    out
}

/// Downloads a block into `db/<ulid>/` and returns its meta.
pub async fn download_block(scope: &TestScope, prefix: &str, ulid: &str, db: &Path) -> BlockMeta {
    let s3 = scope.stack.s3_client().await;
    let bucket = scope.stack.s3_bucket();
    let dir = format!("{prefix}{ulid}/");
    for (key, _) in adclick_objstore::list(&s3, bucket, &dir).await.unwrap() {
        let rel = &key[dir.len()..];
        let path = db.join(ulid).join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            adclick_objstore::get(&s3, bucket, &key)
                .await
                .unwrap()
                .unwrap(),
        )
        .unwrap();
    }
    serde_json::from_slice(&std::fs::read(db.join(ulid).join("meta.json")).unwrap()).unwrap()
}

/// The fields Thanos reads from meta.json (pkg/block/metadata/meta.go), checked on the raw JSON.
pub fn check_thanos_meta(meta: &BlockMeta, day: Day, ulid: &str) {
    let json: serde_json::Value = serde_json::to_value(meta).unwrap();
    assert_eq!(json["ulid"], ulid);
    assert_eq!(json["minTime"], day.start_ms());
    assert_eq!(json["maxTime"], day.end_ms());
    assert_eq!(json["version"], 1);
    assert_eq!(json["compaction"]["level"], 1);
    assert_eq!(json["compaction"]["sources"][0], ulid);
    for stat in ["numSamples", "numSeries", "numChunks"] {
        assert!(json["stats"][stat].as_u64().unwrap() > 0, "{stat}");
    }
    let thanos = &json["thanos"];
    assert_eq!(thanos["version"], 1);
    assert_eq!(thanos["labels"], serde_json::json!({"tier": "rollup"}));
    assert_eq!(thanos["downsample"]["resolution"], 0);
    assert_eq!(thanos["source"], "adclick-rollup");
    let files: Vec<(String, Option<u64>)> = thanos["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rel_path"].as_str().unwrap().to_string(),
                f["size_bytes"].as_u64(),
            )
        })
        .collect();
    assert_eq!(files[0].0, "chunks/000001");
    assert!(files.iter().any(|(p, s)| p == "index" && s.unwrap() > 0));
    assert!(files.iter().any(|(p, s)| p == "meta.json" && s.is_none()));
}
