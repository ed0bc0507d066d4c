//! Smoke tests of the local stack: one real round trip through each server adclick talks to.
//! They fail (never skip) when the stack is down; `deploy/local/test` brings it up first.

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

use std::collections::BTreeSet;
use std::time::Duration;

use adclick_testsupport::Stack;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::test]
async fn kafka_produce_then_consume_in_a_group() {
    let scope = Stack::get().isolated("kafka-smoke");
    let brokers = scope.stack.kafka_brokers().to_string();
    let topic = scope.kafka_topic(3).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .unwrap();
    let sent: BTreeSet<String> = (0..300).map(|i| format!("click-{i}")).collect();
    for (i, payload) in sent.iter().enumerate() {
        let key = (i % 17).to_string();
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("group-{}", scope.id))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut received = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while received.len() < sent.len() {
        let msg = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {} messages consumed",
                    received.len(),
                    sent.len()
                )
            })
            .expect("consume");
        let payload = String::from_utf8(msg.payload().unwrap().to_vec()).unwrap();
        assert!(received.insert(payload), "a message was delivered twice");
    }
    assert_eq!(received, sent);
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit offsets");
}

#[tokio::test]
async fn redis_set_nx_then_get() {
    let scope = Stack::get().isolated("redis-smoke");
    let client = redis::Client::open(scope.stack.redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}impression", scope.redis_prefix());
    let set = || {
        redis::cmd("SET")
            .arg(&key)
            .arg("1")
            .arg("NX")
            .arg("EX")
            .arg(60)
            .clone()
    };
    let first: Option<String> = set().query_async(&mut conn).await.unwrap();
    let second: Option<String> = set().query_async(&mut conn).await.unwrap();
    assert_eq!(first.as_deref(), Some("OK"), "first SET NX must set");
    assert_eq!(second, None, "second SET NX must find the key");
    let value: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, "1");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn prometheus_remote_write_one_sample_then_query() {
    use adclick_remote_write::{Config, Labels, Metrics, RequestBuilder, Sample, Sender};
    let scope = Stack::get().isolated("prom-smoke");
    let sender = Sender::new(
        &Config::for_url(scope.stack.remote_write_url()),
        Metrics::new(),
    )
    .unwrap();
    let labels = Labels::new([("__name__", "adclick_smoke"), ("test", scope.id.as_str())]).unwrap();
    // A whole second a minute ago: inside the head block, and exact in the query's float seconds.
    let t_ms = (adclick_click::now_ms() / 1000 - 60) * 1000;
    let mut request = RequestBuilder::new();
    request.push(&labels, Sample::new(t_ms, 42.5)).unwrap();
    sender
        .send(&request.build())
        .await
        .expect("remote write accepted");

    let query = format!("adclick_smoke{{test=\"{}\"}}", scope.id);
    let result = scope
        .stack
        .prometheus()
        .query(&query, Some(t_ms))
        .await
        .unwrap();
    assert_eq!(result.len(), 1, "{result:?}");
    assert_eq!(result[0].labels["test"], scope.id);
    assert_eq!(result[0].samples, vec![(t_ms, 42.5)]);
}

#[tokio::test]
async fn s3_put_list_get() {
    let scope = Stack::get().isolated("s3-smoke");
    let s3 = scope.stack.s3_client().await;
    let bucket = scope.stack.s3_bucket();
    let prefix = scope.s3_prefix();
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    for (name, body) in [("a.bin", b"small".to_vec()), ("b.bin", big.clone())] {
        s3.put_object()
            .bucket(bucket)
            .key(format!("{prefix}{name}"))
            .body(body.into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {name}: {e:?}"));
    }
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&prefix)
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect();
    assert_eq!(
        keys,
        vec![format!("{prefix}a.bin"), format!("{prefix}b.bin")]
    );
    let got = s3
        .get_object()
        .bucket(bucket)
        .key(format!("{prefix}b.bin"))
        .send()
        .await
        .unwrap();
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert!(bytes.as_ref() == big.as_slice(), "object read back differs");
}
