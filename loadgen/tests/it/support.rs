//! What loadgen's integration tests share: a small HTTP server that verifies tokens
//! like ingest does and records what it saw, the plans the tests send, and recounting a truth.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use adclick_click::token::Verifier;
use adclick_loadgen::plan::PlanConfig;
use adclick_loadgen::population::AdRef;
use adclick_loadgen::truth::TruthKey;
use adclick_testsupport::traffic::live;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;

/// What the fake ingest saw: first click time per impression, and what it refused.
#[derive(Default)]
pub struct Seen {
    pub first: HashMap<[u8; 16], (AdRef, i64)>,
    pub refused: u64,
}

pub async fn fake_ingest(
    State((verifier, seen)): State<(Arc<Verifier>, Arc<Mutex<Seen>>)>,
    Path(token): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    match verifier.verify_now(&token) {
        Ok(v) => {
            let c = v.claims;
            let t: i64 = q
                .get("t")
                .and_then(|t| t.parse().ok())
                .expect("loadgen sends t");
            let ad = AdRef {
                advertiser_id: c.advertiser_id,
                campaign_id: c.campaign_id,
                ad_id: c.ad_id,
            };
            let mut seen = seen.lock().unwrap();
            seen.first.entry(c.impression_id).or_insert((ad, t));
            let mut h = HeaderMap::new();
            h.insert(header::LOCATION, c.landing_url.as_str().parse().unwrap());
            (StatusCode::FOUND, h).into_response()
        }
        Err(e) => {
            seen.lock().unwrap().refused += 1;
            (StatusCode::FORBIDDEN, e.to_string()).into_response()
        }
    }
}

/// Live clicks with more late and too-late ones than loadgen's defaults.
pub fn plan_config(seed: u64, rate: f64, secs: f64) -> PlanConfig {
    PlanConfig {
        late_share: 0.1,
        too_late_share: 0.05,
        ..live(seed, rate, secs)
    }
}

pub fn recount(first: impl Iterator<Item = (AdRef, i64)>) -> BTreeMap<TruthKey, u64> {
    let mut counts = BTreeMap::new();
    for (ad, t) in first {
        *counts.entry(TruthKey::of(ad, t)).or_default() += 1;
    }
    counts
}
