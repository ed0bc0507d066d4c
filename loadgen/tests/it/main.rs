//! loadgen against real receivers: a small local HTTP server that verifies tokens like ingest
//! does, and the stack's Kafka broker. Both recount what arrived and compare with the truth.

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adclick_click::token::Verifier;
use adclick_click::wire::Click;
use adclick_loadgen::http::HttpTarget;
use adclick_loadgen::kafka::KafkaTarget;
use adclick_loadgen::plan::{Plan, PlanConfig};
use adclick_loadgen::run::{RunOptions, Target, run};
use adclick_loadgen::tokens::TokenMinter;
use adclick_loadgen::truth::{count_clicks, read_summary, read_truth};
use adclick_testsupport::traffic::token_key;
use adclick_testsupport::{Stack, free_port};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};

use support::{Seen, fake_ingest, plan_config, recount};

#[tokio::test]
async fn http_target_truth_matches_what_a_verifying_server_counted() {
    let verifier = Arc::new(Verifier::new([token_key()], 30).unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = axum::Router::new()
        .route("/click/{token}", axum::routing::get(fake_ingest))
        .with_state((verifier, seen.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let config = PlanConfig {
        forged_share: 0.03,
        expired_share: 0.03,
        ..plan_config(3, 400.0, 5.0)
    };
    let target = Target::Http(
        HttpTarget::new(
            &base,
            TokenMinter::new(token_key()),
            Duration::from_secs(10),
            32,
        )
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        max_in_flight: 32,
        truth_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let truth = run(Plan::new(config).unwrap(), &target, &opts)
        .await
        .expect("run");

    let summary = read_summary(&dir.path().join("summary.json")).unwrap();
    assert_eq!(summary.errors, 0, "{:?}", summary.error_examples);
    assert_eq!(summary.sends, 2000);
    assert!(summary.forged_sent > 20 && summary.expired_sent > 20 && summary.duplicates_sent > 50);
    // Every send's answer is timed; percentiles are ordered and within the run.
    let l = &summary.latency;
    assert_eq!(l.count, summary.sends);
    assert!(
        l.p50_ms > 0.0 && l.p50_ms <= l.p99_ms && l.p99_ms <= l.max_ms,
        "{l:?}"
    );
    assert!(l.max_ms <= summary.elapsed_secs * 1e3, "{l:?}");
    assert_eq!(summary.start_lag.count, summary.sends);
    // From the schedule is each send's start lag and latency added: never less than either.
    let f = &summary.from_schedule;
    assert_eq!(f.count, summary.sends);
    assert!(
        f.p99_ms >= l.p99_ms && f.max_ms >= l.max_ms && f.max_ms >= summary.start_lag.max_ms,
        "{f:?} against {l:?} and {:?}",
        summary.start_lag
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.refused, summary.forged_sent + summary.expired_sent);
    let counted = recount(seen.first.values().copied());
    assert_eq!(read_truth(&dir.path().join("truth.csv")).unwrap(), counted);
    assert_eq!(truth.counts(), &counted);
}

#[tokio::test]
async fn http_target_errors_beyond_the_bound_fail_the_run() {
    // Nothing listens on this port: every send fails, and the run stops early instead of spinning.
    let port = free_port();
    let target = Target::Http(
        HttpTarget::new(
            &format!("http://127.0.0.1:{port}"),
            TokenMinter::new(token_key()),
            Duration::from_secs(2),
            8,
        )
        .unwrap(),
    );
    let err = run(
        Plan::new(plan_config(4, 200.0, 30.0)).unwrap(),
        &target,
        &RunOptions::default(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("sends failed"), "{text}");
    match err {
        adclick_loadgen::RunError::TooManyErrors { sends, .. } => {
            assert!(sends < 6000, "ran on: {sends}")
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn kafka_target_refuses_forged_and_expired_sends() {
    let scope = Stack::get().isolated("loadgen-kafka-noise");
    let target = Target::Kafka(
        KafkaTarget::new(scope.stack.kafka_brokers(), "unused", &[], HashMap::new()).unwrap(),
    );
    let plan = Plan::new(plan_config(6, 10.0, 1.0)).unwrap();
    let err = run(plan, &target, &RunOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, adclick_loadgen::RunError::NoiseOverKafka),
        "{err}"
    );
}

#[tokio::test]
async fn kafka_target_records_decode_and_match_the_summary() {
    let scope = Stack::get().isolated("loadgen-kafka");
    let topic = scope.kafka_topic(4).await;
    let config = PlanConfig {
        forged_share: 0.0,
        expired_share: 0.0,
        ..plan_config(5, 1000.0, 3.0)
    };
    let population = Plan::new(config.clone()).unwrap().population().clone();
    let hot: HashMap<u64, u32> = population.hot_ads().iter().map(|a| (a.ad_id, 4)).collect();
    let target =
        Target::Kafka(KafkaTarget::new(scope.stack.kafka_brokers(), &topic, &[], hot).unwrap());
    let opts = RunOptions {
        max_in_flight: 2000,
        ..Default::default()
    };
    let truth = run(Plan::new(config).unwrap(), &target, &opts)
        .await
        .expect("run");
    assert_eq!(
        truth.summary.errors, 0,
        "{:?}",
        truth.summary.error_examples
    );

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", scope.stack.kafka_brokers())
        .set("group.id", format!("g-{}", scope.id))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut clicks: Vec<Click> = Vec::new();
    let mut salted_keys = HashSet::new();
    while (clicks.len() as u64) < truth.summary.sends {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {} records arrived",
                    clicks.len(),
                    truth.summary.sends
                )
            })
            .unwrap();
        let click = Click::decode_valid(msg.payload().unwrap()).expect("a valid Click");
        let key = std::str::from_utf8(msg.key().unwrap()).unwrap().to_string();
        assert!(
            key.starts_with(&click.ad_id.to_string()),
            "key {key} for ad {}",
            click.ad_id
        );
        if key.contains(':') {
            salted_keys.insert(key);
        }
        clicks.push(click);
    }
    assert_eq!(clicks.len() as u64, truth.summary.sends);
    assert!(
        salted_keys.len() > 1,
        "hot ads spread over salted keys: {salted_keys:?}"
    );
    assert_eq!(truth.counts(), &count_clicks(&clicks));
}
