//! ingest and the exporter as processes reaching Kafka the way production clusters require:
//! TLS (a terminator with the test's certificate in front of a private tansu, which speaks only
//! plain TCP) and a SASL/SCRAM-SHA-512 login that tansu checks. Configured through
//! `[kafka.properties]` alone, as an operator would.

use std::collections::BTreeMap;
use std::time::Duration;

use adclick_loadgen::http::HttpTarget;
use adclick_loadgen::tokens::TokenMinter;
use adclick_loadgen::{Plan, PlanConfig, RunOptions, Target};
use adclick_testsupport::traffic::{live, population};
use adclick_testsupport::{
    PromApi, ScratchTansu, Stack, TansuSetup, TestPki, TlsTerminator, free_port,
};

use crate::support::{
    DEMO_KEY_HEX, metric_at, start_exporter, start_ingest, wait_exact, wait_ready,
};

/// The `[kafka]` variables of a client of the secured broker at `brokers`, trusting `ca`.
fn secured(brokers: &str, ca: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ADCLICK_KAFKA__BROKERS", brokers.to_string()),
        (
            "ADCLICK_KAFKA__PROPERTIES__security.protocol",
            "sasl_ssl".into(),
        ),
        (
            "ADCLICK_KAFKA__PROPERTIES__sasl.mechanism",
            "SCRAM-SHA-512".into(),
        ),
        ("ADCLICK_KAFKA__PROPERTIES__sasl.username", "adclick".into()),
        ("ADCLICK_KAFKA__PROPERTIES__sasl.password", password.into()),
        ("ADCLICK_KAFKA__PROPERTIES__ssl.ca.location", ca.into()),
    ]
}

fn borrowed<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Clicks through ingest, over TLS and SASL to the broker and on to the exporter: every
/// campaign's every minute in Prometheus equals the truth. A client trusting another CA, and one
/// with a wrong password, say why they cannot connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_to_exporter_over_tls_and_sasl_is_exact() {
    let stack = Stack::get();
    let scope = stack.isolated("kafka-tls-sasl");
    let pki = TestPki::new();
    let tls_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tls_addr = tls_listener.local_addr().unwrap();
    let topic = format!("clicks-{}", scope.id);
    let dead_letters = format!("dlq-{}", scope.id);
    let tansu_port = free_port();
    let (topic2, dlq2) = (topic.clone(), dead_letters.clone());
    let tansu = tokio::task::spawn_blocking(move || {
        ScratchTansu::start(
            tansu_port,
            &TansuSetup {
                advertised: Some(tls_addr.to_string()),
                topics: &[(&topic2, 4), (&dlq2, 1)],
                scram_users: &[("adclick", "kafka-pass")],
            },
        )
    })
    .await
    .unwrap();
    let _tls = TlsTerminator::start(
        tls_listener,
        &pki,
        format!("127.0.0.1:{}", tansu.port).parse().unwrap(),
    );
    let ca = pki.ca().display().to_string();
    let wrong_ca = pki.wrong_ca().display().to_string();
    let brokers = tls_addr.to_string();

    let log = std::env::temp_dir().join(format!("adclick-{}.log", scope.id));
    let spill = tempfile::tempdir().unwrap();
    let kafka = secured(&brokers, &ca, "kafka-pass");
    let (mut ingest, base, ingest_admin) = start_ingest(
        &scope,
        &topic,
        stack.redis_url(),
        spill.path(),
        &log,
        &borrowed(&kafka),
    );
    wait_ready(&ingest_admin).await;
    let admin_port = free_port();
    let mut exporter = start_exporter(&scope, &topic, admin_port, &log, &borrowed(&kafka));

    let config = PlanConfig {
        start_ms: adclick_loadgen::run::now_ms() + 1_000,
        population: population(2, 3, 10, 0),
        duplicate_delay_max_secs: 5.0,
        late_share: 0.0,
        too_late_share: 0.0,
        forged_share: 0.0,
        expired_share: 0.0,
        ..live(41, 100.0, 20.0)
    };
    let key = adclick_click::token::TokenKey::from_hex("k1", DEMO_KEY_HEX).unwrap();
    let target = Target::Http(
        HttpTarget::new(&base, TokenMinter::new(key), Duration::from_secs(10), 32).unwrap(),
    );
    let truth = adclick_loadgen::run(Plan::new(config).unwrap(), &target, &RunOptions::default())
        .await
        .expect("loadgen over HTTP");
    assert_eq!(
        truth.summary.errors, 0,
        "{:?}",
        truth.summary.error_examples
    );
    let mut expected: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for (k, n) in truth.counts() {
        *expected
            .entry((k.ad.campaign_id, k.minute_end_ms))
            .or_insert(0) += n;
    }
    let prom = PromApi::new(stack.prometheus_url());
    let exact = wait_exact(
        &prom,
        &scope.id,
        &expected,
        0,
        "exact over TLS and SASL",
        &mut [&mut ingest, &mut exporter],
    )
    .await;
    let _ = (ingest.kill(), exporter.kill());
    let _ = (ingest.wait(), exporter.wait());
    if let Err(e) = exact {
        panic!("{e}; log: {}", log.display());
    }
    let spilled = metric_at(
        &ingest_admin,
        "adclick_ingest_clicks_accepted_total",
        "path=\"spill\"",
    )
    .await;
    println!(
        "over TLS + SASL/SCRAM: {} clicks exact in Prometheus ({spilled} through the spill)",
        truth.summary.clicks
    );

    // Misconfigured clients: ingest serves (spilling) but its log says what is wrong; the second
    // logs in JSON, one object per line, as a log pipeline takes it.
    let mut json_logs = secured(&brokers, &ca, "wrong-pass");
    json_logs.push(("ADCLICK_LOG__FORMAT", "json".into()));
    for (vars, sign) in [
        (
            secured(&brokers, &wrong_ca, "kafka-pass"),
            "certificate verify failed",
        ),
        (json_logs, "SASL authentication error"),
    ] {
        let log = std::env::temp_dir().join(format!("adclick-{}-{}.log", scope.id, free_port()));
        let spill = tempfile::tempdir().unwrap();
        let (mut ingest, _, _) = start_ingest(
            &scope,
            &topic,
            stack.redis_url(),
            spill.path(),
            &log,
            &borrowed(&vars),
        );
        // librdkafka retries for ever, logging each failure: wait for the first.
        let said = tokio::time::timeout(Duration::from_secs(30), async {
            while !std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(sign)
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        let _ = ingest.kill();
        let _ = ingest.wait();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(said.is_ok(), "the log does not say {sign:?}:\n{text}");
        let line = text.lines().find(|l| l.contains(sign)).unwrap_or_default();
        println!("{sign}: {line}");
        assert!(
            !text.contains("kafka-pass") && !text.contains("wrong-pass"),
            "a password in the log"
        );
        assert!(!text.contains('\x1b'), "colour codes in a log file");
        if vars.iter().any(|(k, _)| *k == "ADCLICK_LOG__FORMAT") {
            for line in text.lines() {
                let object: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
                assert!(
                    object["level"].is_string() && object["timestamp"].is_string(),
                    "{line}"
                );
            }
        }
    }
    drop(tansu);
}
