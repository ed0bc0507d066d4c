//! What tests send through adclick: impression tokens signed with the tests' one key, the plans
//! of their loadgen runs, and a topic backfilled with clicks whose ground truth is known.

use std::collections::{BTreeMap, HashMap};

use adclick_click::now_ms;
use adclick_click::token::TokenKey;
use adclick_loadgen::kafka::KafkaTarget;
use adclick_loadgen::plan::Lateness;
use adclick_loadgen::population::PopulationConfig;
use adclick_loadgen::shape::TrafficShape;
use adclick_loadgen::{GroundTruth, Plan, PlanConfig, RunOptions, SendKind, Target, TruthKey};

use crate::TestScope;

/// The secret of [`token_key`].
pub const TOKEN_SECRET: [u8; 32] = [0x33; 32];

/// The key tests sign and verify impression tokens with: id `k1`, [`TOKEN_SECRET`].
pub fn token_key() -> TokenKey {
    TokenKey::new("k1", &TOKEN_SECRET).unwrap()
}

/// Clicks sent live, from now: `rate` a second for `secs`, a tenth of the impressions clicked
/// again within 3 s; loadgen's defaults otherwise (some late, forged and expired sends).
pub fn live(seed: u64, rate: f64, secs: f64) -> PlanConfig {
    PlanConfig {
        seed,
        start_ms: now_ms(),
        duration_secs: secs,
        shape: TrafficShape::Steady { rate },
        duplicate_share: 0.1,
        duplicate_delay_max_secs: 3.0,
        ..PlanConfig::default()
    }
}

/// What ingest writes into Kafka, over `minutes` of event time from `start_ms` at `rate` clicks a
/// second: no repeats (ingest dropped them), no forged or expired tokens; 5% of the clicks late
/// within an allowed lateness of 10 s, 0.5% beyond it (by up to 60 s), both kept 3 s clear of
/// the boundary. The population is loadgen's default: tests choose their own.
pub fn kafka_backfill(seed: u64, start_ms: i64, minutes: i64, rate: f64) -> PlanConfig {
    PlanConfig {
        seed,
        start_ms,
        duration_secs: (minutes * 60) as f64,
        shape: TrafficShape::Steady { rate },
        duplicate_share: 0.0,
        allowed_lateness_secs: 10.0,
        lateness_margin_secs: 3.0,
        late_share: 0.05,
        too_late_share: 0.005,
        too_late_extra_max_secs: 60.0,
        forged_share: 0.0,
        expired_share: 0.0,
        ..PlanConfig::default()
    }
}

/// `advertisers` × `campaigns_per_advertiser` × `ads_per_campaign` ads, clicked along a Zipf
/// curve (exponent 1); `hot_ads` of them take a tenth of all clicks between them.
pub fn population(
    advertisers: u64,
    campaigns_per_advertiser: u64,
    ads_per_campaign: u64,
    hot_ads: u64,
) -> PopulationConfig {
    PopulationConfig {
        advertisers,
        campaigns_per_advertiser,
        ads_per_campaign,
        zipf_exponent: 1.0,
        hot_ads,
        hot_share: if hot_ads > 0 { 0.1 } else { 0.0 },
    }
}

/// A backfilled topic: a plan's clicks written straight into Kafka, and what is known of them.
pub struct Backfill {
    pub truth: GroundTruth,
    /// Clicks that arrive after their minute is final, per (ad, minute).
    pub too_late: BTreeMap<TruthKey, u64>,
    /// Every impression written.
    pub impressions: Vec<[u8; 16]>,
}

/// Writes the clicks of `config` into `topic` through loadgen's Kafka target, the hot ads' keys
/// salted over 4 shards as ingest salts them.
pub async fn backfill(scope: &TestScope, topic: &str, config: PlanConfig) -> Backfill {
    let plan = Plan::new(config.clone()).expect("plan");
    let hot_salts: HashMap<u64, u32> = plan
        .population()
        .hot_ads()
        .iter()
        .map(|ad| (ad.ad_id, 4))
        .collect();
    let mut too_late = BTreeMap::new();
    let mut impressions = vec![];
    for send in Plan::new(config).expect("plan") {
        if send.kind == SendKind::Click {
            impressions.push(send.impression_id);
            if send.lateness == Lateness::TooLate {
                *too_late
                    .entry(TruthKey::of(send.ad, send.event_time_ms))
                    .or_insert(0) += 1;
            }
        }
    }
    let target = Target::Kafka(
        KafkaTarget::new(scope.stack.kafka_brokers(), topic, &[], hot_salts).expect("producer"),
    );
    let truth = adclick_loadgen::run(plan, &target, &RunOptions::default())
        .await
        .expect("loadgen run");
    Backfill {
        truth,
        too_late,
        impressions,
    }
}
