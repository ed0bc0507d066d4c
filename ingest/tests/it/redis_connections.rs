//! ingest against Redis as production runs it: over TLS with an ACL user (Debian's
//! redis-server with `--tls-port`, certificates the test makes), refusing to start on a wrong CA
//! or password, and a Redis Cluster losing a master mid-run.

use std::collections::HashSet;
use std::time::Duration;

use adclick_click::wire::ClickFlag;
use adclick_ingest::dedup::Dedup;
use adclick_ingest::redis_link::RedisSettings;
use adclick_testsupport::{RedisCluster, RedisSetup, ScratchRedis, Stack, TestPki};

use crate::support::{Ingest, config, kafka, read_topic};
use crate::{assert_one_new_per_impression, plan, send};

fn dedup_on(redis: &RedisSettings, prefix: &str) -> Dedup {
    let metrics = adclick_ingest::metrics::Metrics::new(&mut Default::default());
    Dedup::new(redis, prefix, 60, Duration::from_secs(5), metrics).expect("a valid Redis setup")
}

/// A redis-server serving TLS only, whose default user is off and whose user `adclick` has
/// `password`.
fn tls_server_with_acl(dir: &std::path::Path, pki: &TestPki, password: &str) -> ScratchRedis {
    ScratchRedis::start(
        dir,
        &RedisSetup {
            tls: Some(pki),
            acl_user: Some(("adclick", password)),
            ..RedisSetup::default()
        },
    )
}

/// `rediss://` to a TLS-only server whose default user is off: with the test CA and the ACL
/// user's password, concurrent claims are one new per impression, as on plain Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_over_tls_as_an_acl_user() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let server = tls_server_with_acl(dir.path(), &pki, "s3cret-pass");
    let mut redis = RedisSettings::for_url(&server.url);
    redis.username = "adclick".into();
    redis.password = Some("s3cret-pass".into());
    redis.tls.ca_file = Some(pki.ca());
    let dedup = dedup_on(&redis, "tls:");
    assert!(
        dedup.wait_connected(Duration::from_secs(10)).await.unwrap(),
        "no TLS connection: {}",
        server.process.log_tail()
    );
    assert_one_new_per_impression(&dedup).await;

    // With a client certificate too (the server asks for one but does not require it).
    redis.tls.cert_file = Some(pki.client_cert());
    redis.tls.key_file = Some(pki.client_key());
    let dedup = dedup_on(&redis, "mtls:");
    assert!(dedup.wait_connected(Duration::from_secs(10)).await.unwrap());
    assert_one_new_per_impression(&dedup).await;
}

/// A wrong password or a server certificate from another CA stops ingest at start with the
/// reason, instead of failing every click open for as long as it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_or_password_stops_ingest_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let server = tls_server_with_acl(dir.path(), &pki, "right");
    let scope = Stack::get().isolated("ingest-redis-refused");
    let topic = scope.kafka_topic(1).await;
    let spill = tempfile::tempdir().unwrap();
    let start = |username: &str, password: &str, ca: std::path::PathBuf| {
        let mut cfg = config(&server.url, &scope.redis_prefix(), spill.path());
        cfg.redis_username = username.into();
        cfg.redis_password = Some(password.into());
        cfg.redis_tls.ca_file = Some(ca);
        adclick_ingest::Service::start(adclick_ingest::Settings {
            config: cfg,
            verifier: adclick_click::Verifier::new([adclick_testsupport::traffic::token_key()], 30)
                .unwrap(),
            kafka: kafka(scope.stack.kafka_brokers(), &topic),
            invalid: adclick_invalid::Config::default(),
        })
    };
    let refused = |result: Result<adclick_ingest::Service, adclick_ingest::Error>| match result {
        Ok(_) => panic!("ingest started"),
        Err(e) => e.to_string(),
    };
    let wrong_password = refused(start("adclick", "wrong", pki.ca()).await);
    assert!(
        wrong_password.contains("Redis refused") && wrong_password.contains("auth"),
        "{wrong_password}"
    );
    let wrong_ca = refused(start("adclick", "right", pki.wrong_ca()).await);
    assert!(
        wrong_ca.contains("Redis refused") && wrong_ca.contains("certificate"),
        "{wrong_ca}"
    );
    println!("wrong password: {wrong_password}\nwrong CA: {wrong_ca}");
    assert!(start("adclick", "right", pki.ca()).await.is_ok());
}

/// A Redis Cluster of three masters with a replica each loses a master mid-run: every click is
/// still redirected and produced, claims of the dead master's slots fail open only until its
/// replica takes over (bounded), and what reaches Kafka is every unique click, repeats flagged
/// for the exporter to drop (exact downstream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_losing_a_master_mid_run_fails_open_bounded() {
    let mut cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 1))
        .await
        .unwrap();
    let scope = Stack::get().isolated("ingest-redis-cluster");
    let topic = scope.kafka_topic(4).await;
    let spill = tempfile::tempdir().unwrap();
    let mut cfg = config("redis://unused", &scope.redis_prefix(), spill.path());
    cfg.redis_cluster_nodes = cluster.urls().iter().map(|u| u.as_str().into()).collect();
    // Generous bounds where the healthy path is concerned (a busy two-core machine); the
    // failover is what fails claims open here.
    cfg.produce_timeout_ms = 5_000;
    cfg.dedup_timeout_ms = 200;
    // Claims keep their meaning on a cluster (one command per claim, `SET NX GET`).
    let dedup = dedup_on(&cfg.redis(), &format!("{}batch:", scope.redis_prefix()));
    assert!(dedup.wait_connected(Duration::from_secs(10)).await.unwrap());
    assert_one_new_per_impression(&dedup).await;
    let ingest = Ingest::start(cfg, kafka(scope.stack.kafka_brokers(), &topic)).await;

    let secs = 24.0;
    let masters = cluster.master_ports();
    assert_eq!(masters.len(), 3, "{masters:?}");
    let victim = masters[0];
    let (truth, killed_at) = tokio::join!(send(&ingest.base, plan(21, 150.0, secs), 32), async {
        tokio::time::sleep(Duration::from_secs(8)).await;
        cluster.kill(victim);
        std::time::Instant::now()
    });
    let s = &truth.summary;
    let failover_took = killed_at.elapsed();
    // The cluster healed (the replica of the killed master was promoted) …
    tokio::task::spawn_blocking(move || {
        cluster.wait_healthy(Duration::from_secs(30));
        cluster
    })
    .await
    .unwrap();

    let records = read_topic(
        scope.stack.kafka_brokers(),
        &topic,
        s.clicks as usize,
        Duration::from_secs(3),
        Duration::from_secs(120),
    )
    .await;
    let distinct: HashSet<Vec<u8>> = records.iter().map(|c| c.impression_id.clone()).collect();
    let repeats = records.len() - distinct.len();
    let flagged = records
        .iter()
        .filter(|c| c.has_flag(ClickFlag::DedupUnchecked))
        .count();
    assert_eq!(
        distinct.len() as u64,
        s.clicks,
        "every unique click reached Kafka"
    );
    // Downstream, adclick's counting rule (each impression once, in the minute of its first
    // click: what the exporter and the rollup count) gives exactly the truth per ad and minute.
    assert_eq!(
        &adclick_loadgen::count_clicks(&records),
        truth.counts(),
        "counted downstream, the records equal the truth"
    );
    assert!(
        flagged >= repeats,
        "{repeats} repeats reached Kafka but only {flagged} records are flagged unchecked"
    );
    let m = ingest.metrics().await;
    let fail_open: f64 = ["timeout", "error", "unavailable"]
        .iter()
        .map(|r| {
            crate::support::metric_value(
                &m,
                &format!("adclick_ingest_dedup_fail_open_total{{reason=\"{r}\"}}"),
            )
        })
        .sum();
    let sent = (s.clicks + s.duplicates_sent) as f64;
    // Bounded: only claims of one master's slots, only until its replica took over.
    assert!(
        fail_open < sent / 3.0,
        "{fail_open} of {sent} claims failed open"
    );
    assert!(
        repeats as f64 <= fail_open,
        "repeats produced ({repeats}) are claims that failed open ({fail_open})"
    );
    println!(
        "cluster master :{victim} killed 8 s into a {secs} s run: {} clicks, {} repeats sent, \
         {fail_open} claims failed open, {} repeats reached Kafka flagged; every unique click \
         in Kafka ({failover_took:?} from the kill to the end of the run)",
        s.clicks, s.duplicates_sent, repeats
    );
}
