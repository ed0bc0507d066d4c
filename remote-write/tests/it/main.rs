//! Integration tests of the remote_write client.
//!
//! - `receiver`: the sender against a scripted local axum receiver (headers, body, retries).
//! - `queue`: batching, ordering, deadline and backpressure against the same receiver.
//! - `prometheus`: against the stack's Prometheus (out-of-order window of 2 h) and a scratch
//!   Prometheus without a window; needs `deploy/local/up`.
//! - `properties`: valid series survive build → encode → decode; invalid ones are refused.

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

mod support;

mod receiver {
    use std::time::Duration;

    use adclick_remote_write::encode::encode;
    use adclick_remote_write::metrics::FailReason;
    use adclick_remote_write::send::{MAX_ERROR_BODY, USER_AGENT};
    use adclick_remote_write::{
        AttemptError, BasicAuth, Delivery, Request, RequestBuilder, Sample, SendError, stale,
    };
    use adclick_testsupport::free_port;
    use adclick_testsupport::wait::eventually;
    use prost::Message;

    use crate::support::{GUARD, Receiver, Reply, canonical, sender, test_config};

    fn request() -> Request {
        let mut b = RequestBuilder::new();
        b.series(
            [
                ("__name__", "adclick_clicks"),
                ("ad_id", "1"),
                ("campaign_id", "ü \"x\"\n"),
            ],
            [
                Sample::new(60_000, 3.0),
                Sample::new(120_000, f64::NAN),
                Sample::new(180_000, -0.0),
            ],
        )
        .unwrap();
        let b2 = [("__name__", "adclick_clicks"), ("ad_id", "2")];
        b.series(b2, [Sample::new(60_000, f64::INFINITY)]).unwrap();
        let labels = adclick_remote_write::Labels::new(b2).unwrap();
        b.push_stale(&labels, 120_000).unwrap();
        b.build()
    }

    #[tokio::test]
    async fn the_body_decodes_to_exactly_what_was_sent_with_the_required_headers() {
        let receiver = Receiver::start(vec![]).await;
        let request = request();
        let delivery = sender(&test_config(&receiver.url()))
            .send(&request)
            .await
            .unwrap();
        assert_eq!(delivery, Delivery { attempts: 1 });
        let received = receiver.received();
        assert_eq!(received.len(), 1);
        let r = &received[0];
        assert_eq!(r.header("content-encoding"), Some("snappy"));
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        assert_eq!(r.header("x-prometheus-remote-write-version"), Some("0.1.0"));
        assert_eq!(r.header("user-agent"), Some(USER_AGENT));
        assert!(USER_AGENT.starts_with("adclick-remote-write/0."));
        assert_eq!(r.header("authorization"), None);
        // Snappy block (not framed), then protobuf: byte-identical to what was built, which
        // also compares NaN payloads and -0.0 exactly.
        assert_eq!(&r.body[..], &encode(&request).unwrap().body()[..]);
        let decoded = r.decode();
        assert_eq!(decoded.encode_to_vec(), request.to_proto().encode_to_vec());
        assert_eq!(canonical(&decoded), canonical(&request.to_proto()));
        // -0.0 cannot cross proto3 (a zero field is omitted): the builder sends it as +0.0.
        assert_eq!(
            decoded.timeseries[0].samples[2].value.to_bits(),
            0.0f64.to_bits()
        );
        let marker = decoded.timeseries[1].samples[1];
        assert!(stale::is_stale_marker(marker.value));
        assert_eq!(Request::from_proto(decoded).unwrap().samples(), 5);
    }

    #[tokio::test]
    async fn auth_custom_and_tenant_headers_are_sent() {
        let receiver = Receiver::start(vec![]).await;
        let mut config = test_config(&receiver.url());
        config.basic_auth = Some(BasicAuth {
            username: "ads".into(),
            password: "s3cr3t".into(),
        });
        config.headers.insert("X-Team".into(), "clicks".into());
        config.tenant_id = Some("tenant-7".into());
        sender(&config).send(&request()).await.unwrap();

        let mut config = test_config(&receiver.url());
        config.bearer_token = Some("tok".into());
        config.tenant_id = Some("t2".into());
        config.tenant_header = "X-Tenant".into();
        sender(&config).send(&request()).await.unwrap();

        let received = receiver.received();
        // base64("ads:s3cr3t")
        assert_eq!(
            received[0].header("authorization"),
            Some("Basic YWRzOnMzY3IzdA==")
        );
        assert_eq!(received[0].header("x-team"), Some("clicks"));
        assert_eq!(received[0].header("x-scope-orgid"), Some("tenant-7"));
        assert_eq!(received[1].header("authorization"), Some("Bearer tok"));
        assert_eq!(received[1].header("x-tenant"), Some("t2"));
        assert_eq!(received[1].header("x-scope-orgid"), None);
        for r in &received {
            assert_eq!(r.header("content-encoding"), Some("snappy"));
            assert_eq!(r.header("x-prometheus-remote-write-version"), Some("0.1.0"));
        }
    }

    #[tokio::test]
    async fn retryable_5xx_and_429_are_retried_until_success() {
        for status in [500, 502, 503, 429] {
            let script = vec![Reply::status(status), Reply::status(status)];
            let receiver = Receiver::start(script).await;
            let sender = sender(&test_config(&receiver.url()));
            let request = request();
            let delivery = sender.send(&request).await.unwrap();
            assert_eq!(delivery, Delivery { attempts: 3 }, "HTTP {status}");
            let received = receiver.received();
            assert_eq!(received.len(), 3, "HTTP {status}");
            assert!(
                received.iter().all(|r| r.body == received[0].body),
                "same body each time"
            );
            // One kept-alive connection for every attempt.
            let peer = received[0].peer;
            assert!(
                received.iter().all(|r| r.peer == peer),
                "connection not reused"
            );
            let m = sender.metrics();
            assert_eq!(m.requests(&status.to_string()), 2);
            assert_eq!(m.requests("204"), 1);
            assert_eq!(m.samples_retried(), 2 * request.samples() as u64);
            assert_eq!(m.samples_sent(), request.samples() as u64);
            assert_eq!(m.samples_failed(FailReason::Rejected), 0);
            // Counted once per request, not per attempt.
            let encoded = encode(&request).unwrap();
            let sizes = (
                encoded.uncompressed_len() as u64,
                encoded.compressed_len() as u64,
            );
            assert_eq!(m.bytes_total(), sizes);
        }
    }

    #[tokio::test]
    async fn retry_after_is_honoured_in_seconds_and_as_a_date() {
        // Lower bounds only: the sender waited at least as long as it was told.
        let receiver = Receiver::start(vec![Reply::retry_after(429, "1")]).await;
        let delivery = sender(&test_config(&receiver.url()))
            .send(&request())
            .await
            .unwrap();
        assert_eq!(delivery.attempts, 2);
        let r = receiver.received();
        assert!(
            r[1].at - r[0].at >= Duration::from_secs(1),
            "{:?}",
            r[1].at - r[0].at
        );

        let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
        let receiver = Receiver::start(vec![Reply::retry_after(503, &date)]).await;
        let delivery = sender(&test_config(&receiver.url()))
            .send(&request())
            .await
            .unwrap();
        assert_eq!(delivery.attempts, 2);
        let r = receiver.received();
        // The date has whole seconds, so the wait is between 1 and 2 s.
        assert!(
            r[1].at - r[0].at >= Duration::from_secs(1),
            "{:?}",
            r[1].at - r[0].at
        );
    }

    #[tokio::test]
    async fn other_4xx_are_not_retried_and_carry_status_and_body() {
        let long_body: String = "duplicate sample for timestamp; ".repeat(100);
        for status in [400, 401, 404, 413] {
            let receiver = Receiver::start(vec![Reply::body(status, &long_body)]).await;
            let sender = sender(&test_config(&receiver.url()));
            let request = request();
            let error = sender.send(&request).await.unwrap_err();
            let SendError::Rejected { status: got, body } = &error else {
                panic!("HTTP {status}: {error:?}");
            };
            assert_eq!(*got, status);
            assert_eq!(body.as_str(), &long_body[..MAX_ERROR_BODY]);
            assert_eq!(error.status(), Some(status));
            assert!(error.to_string().contains(&status.to_string()), "{error}");
            // send() has returned: there is no attempt left to come.
            assert_eq!(receiver.received().len(), 1, "HTTP {status} was retried");
            let m = sender.metrics();
            assert_eq!(
                m.samples_failed(FailReason::Rejected),
                request.samples() as u64
            );
            assert_eq!(m.samples_retried(), 0);
            assert_eq!(m.samples_sent(), 0);
        }
    }

    #[tokio::test]
    async fn http_429_is_not_retried_when_configured_so_and_3xx_is_not_success() {
        let receiver = Receiver::start(vec![Reply::status(429), Reply::status(308)]).await;
        let mut config = test_config(&receiver.url());
        config.queue.retry_on_http_429 = false;
        let sender = sender(&config);
        let e = sender.send(&request()).await.unwrap_err();
        assert_eq!(e.status(), Some(429));
        // A redirect is not followed (a POST could turn into a GET): only 2xx is success.
        let e = sender.send(&request()).await.unwrap_err();
        assert_eq!(e.status(), Some(308));
        assert_eq!(receiver.received().len(), 2);
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried_until_the_receiver_is_up() {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = test_config(&format!("http://{addr}/api/v1/write"));
        let sender = sender(&config);
        let task = tokio::spawn({
            let sender = sender.clone();
            async move { sender.send(&request()).await }
        });
        eventually(GUARD, "two refused connections", || async {
            match sender.metrics().requests("connect") {
                n if n >= 2 => Ok(()),
                n => Err(format!("{n} refused")),
            }
        })
        .await;
        assert!(!task.is_finished());
        let receiver = Receiver::start_on(addr, vec![]).await;
        let delivery = task.await.unwrap().unwrap();
        assert!(delivery.attempts >= 3, "{delivery:?}");
        assert_eq!(receiver.received().len(), 1);
        assert_eq!(sender.metrics().requests("204"), 1);
    }

    #[tokio::test]
    async fn a_hung_receiver_is_retried_after_the_timeout() {
        let receiver = Receiver::start(vec![Reply::Hang]).await;
        let mut config = test_config(&receiver.url());
        config.remote_timeout_ms = 300;
        let sender = sender(&config);
        let sent = std::time::Instant::now();
        let delivery = sender.send(&request()).await.unwrap();
        assert_eq!(delivery, Delivery { attempts: 2 });
        assert_eq!(sender.metrics().requests("timeout"), 1);
        let r = receiver.received();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].body, r[1].body);
        // The retry cannot leave before the first attempt's timeout ran out. Measured from the
        // send, not from the first request's arrival: on a loaded machine that arrival came late
        // enough for the retry to arrive less than 300 ms after it (a failed test run).
        assert!(
            r[1].at - sent >= Duration::from_millis(300),
            "retry {:?} after the send",
            r[1].at - sent
        );
    }

    #[tokio::test]
    async fn retries_can_be_bounded() {
        let receiver = Receiver::start(vec![Reply::status(503); 5]).await;
        let mut config = test_config(&receiver.url());
        config.queue.max_retries = Some(2);
        let sender = sender(&config);
        let request = request();
        let e = sender.send(&request).await.unwrap_err();
        let SendError::RetriesExhausted {
            attempts: 3,
            last: AttemptError::Status { status: 503, .. },
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!(receiver.received().len(), 3);
        let failed = sender
            .metrics()
            .samples_failed(FailReason::RetriesExhausted);
        assert_eq!(failed, request.samples() as u64);
    }
}

mod queue {
    use std::time::Duration;

    use adclick_remote_write::{
        Labels, Metrics, Problem, PushError, Queue, Request, Sample, SendError, TryPushError, stale,
    };

    use crate::support::{Canonical, Receiver, Reply, ad_labels, canonical, test_config};

    fn queue(url: &str, tweak: impl FnOnce(&mut adclick_remote_write::Config)) -> Queue {
        let mut config = test_config(url);
        tweak(&mut config);
        Queue::from_config(&config, Metrics::new()).unwrap()
    }

    #[tokio::test]
    async fn batches_hold_at_most_max_samples_and_every_series_stays_in_order() {
        let receiver = Receiver::start(vec![]).await;
        let q = queue(&receiver.url(), |c| {
            c.queue.shards = 3;
            c.queue.max_samples_per_send = 7;
        });
        let series: Vec<Labels> = (0..20).map(|i| ad_labels("m", "q", i)).collect();
        for t in 0..15 {
            for (i, labels) in series.iter().enumerate() {
                q.push(labels, Sample::new(t * 60_000, (i * 100) as f64 + t as f64))
                    .await
                    .unwrap();
            }
        }
        let report = q.flush().await;
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.samples_sent, 300);
        assert_eq!(q.metrics().pending_samples(), 0);

        let mut per_series = Canonical::new();
        for r in receiver.received() {
            let request = Request::from_proto(r.decode()).expect("every request is valid");
            assert!(
                request.samples() <= 7,
                "{} samples in one request",
                request.samples()
            );
            for (labels, samples) in canonical(&request.to_proto()) {
                per_series.entry(labels).or_default().extend(samples);
            }
        }
        assert_eq!(per_series.len(), 20);
        for (labels, samples) in per_series {
            let ad: usize = labels
                .iter()
                .find(|(n, _)| n == "ad_id")
                .unwrap()
                .1
                .parse()
                .unwrap();
            let expected: Vec<(i64, u64)> = (0..15)
                .map(|t| (t * 60_000, ((ad * 100) as f64 + t as f64).to_bits()))
                .collect();
            assert_eq!(samples, expected, "series {labels:?}");
        }
        assert_eq!(q.shutdown().await, adclick_remote_write::Report::default());
    }

    #[tokio::test]
    async fn a_partial_batch_is_sent_at_the_deadline() {
        let receiver = Receiver::start(vec![]).await;
        let q = queue(&receiver.url(), |c| c.queue.batch_send_deadline_ms = 200);
        let labels = ad_labels("m", "deadline", 1);
        for t in 0..3 {
            q.push(&labels, Sample::new(t, 1.0)).await.unwrap();
        }
        // No flush: only the deadline can send these.
        let received = receiver.wait_for(1).await;
        assert_eq!(received[0].decode().timeseries[0].samples.len(), 3);
        assert_eq!(q.flush().await.samples_sent, 3);
    }

    #[tokio::test]
    async fn a_batch_is_cut_rather_than_a_series_reordered() {
        let receiver = Receiver::start(vec![]).await;
        let q = queue(&receiver.url(), |_| {});
        let labels = ad_labels("m", "cut", 1);
        for t in [2, 1, 1, 3] {
            q.push(&labels, Sample::new(t, t as f64)).await.unwrap();
        }
        let report = q.flush().await;
        assert_eq!(report.samples_sent, 4);
        let sent: Vec<Vec<i64>> = receiver
            .received()
            .iter()
            .map(|r| {
                r.decode().timeseries[0]
                    .samples
                    .iter()
                    .map(|s| s.timestamp)
                    .collect()
            })
            .collect();
        assert_eq!(sent, vec![vec![2], vec![1], vec![1, 3]]);
    }

    #[tokio::test]
    async fn a_slow_receiver_makes_push_wait_with_bounded_memory() {
        let receiver = Receiver::start(vec![Reply::Gated]).await;
        let (capacity, max) = (5, 2);
        let q = queue(&receiver.url(), |c| {
            c.queue.shards = 1;
            c.queue.capacity = capacity;
            c.queue.max_samples_per_send = max;
        });
        let labels = ad_labels("m", "backpressure", 1);
        let mut accepted = 0;
        let mut t = 0;
        // The first batch is held by the receiver; the shard then stops taking samples.
        loop {
            match q.try_push(&labels, Sample::new(t, 1.0)) {
                Ok(()) => {
                    accepted += 1;
                    t += 1;
                }
                Err(TryPushError::Full) => {
                    if receiver.received().len() == 1 {
                        break;
                    }
                    // The shard has not taken its first batch yet: let it.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => panic!("{e}"),
            }
            assert!(
                accepted <= capacity + 2 * max,
                "{accepted} samples taken: memory is unbounded"
            );
        }
        assert!(accepted >= capacity, "{accepted}");
        let pending = tokio::spawn({
            let labels = labels.clone();
            let q = std::sync::Arc::new(q);
            let q2 = q.clone();
            async move {
                q2.push(&labels, Sample::new(t, 1.0)).await.unwrap();
                q
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !pending.is_finished(),
            "push did not wait for the slow receiver"
        );
        receiver.open_gate();
        let q = pending.await.unwrap();
        let report = q.flush().await;
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.samples_sent, accepted as u64 + 1);
        assert_eq!(q.metrics().pending_samples(), 0);
    }

    #[tokio::test]
    async fn flush_reports_a_rejected_batch_and_the_queue_goes_on() {
        let receiver = Receiver::start(vec![Reply::body(400, "out of order sample")]).await;
        let q = queue(&receiver.url(), |c| c.queue.shards = 1);
        let labels = ad_labels("m", "reject", 1);
        for t in 0..5 {
            q.push(&labels, Sample::new(t, 1.0)).await.unwrap();
        }
        let report = q.flush().await;
        assert_eq!((report.samples_sent, report.samples_failed), (0, 5));
        assert_eq!(
            report.errors,
            vec![SendError::Rejected {
                status: 400,
                body: "out of order sample".into()
            }]
        );
        q.push(&labels, Sample::new(10, 1.0)).await.unwrap();
        let report = q.flush().await;
        assert!(report.is_ok() && report.samples_sent == 1, "{report:?}");
    }

    #[tokio::test]
    async fn stale_markers_only_through_end_series() {
        let receiver = Receiver::start(vec![]).await;
        let q = queue(&receiver.url(), |_| {});
        let labels = ad_labels("m", "stale", 1);
        q.push(&labels, Sample::new(1, 1.0)).await.unwrap();
        let e = q.push(&labels, stale::marker(2)).await.unwrap_err();
        let PushError::Invalid(invalid) = e else {
            panic!("{e:?}")
        };
        assert_eq!(
            invalid.problem,
            Problem::StaleMarkerValue { timestamp_ms: 2 }
        );
        assert!(invalid.series.contains("ad_id=\"1\""), "{}", invalid.series);
        assert!(matches!(
            q.try_push(&labels, stale::marker(2)),
            Err(TryPushError::Invalid(_))
        ));
        q.end_series(&labels, 2).await.unwrap();
        let report = q.shutdown().await;
        assert_eq!(report.samples_sent, 2);
        let samples = &receiver.received()[0].decode().timeseries[0].samples;
        assert_eq!(samples[0].value, 1.0);
        assert!(stale::is_stale_marker(samples[1].value));
    }

    #[tokio::test]
    async fn shutdown_sends_what_is_queued() {
        let receiver = Receiver::start(vec![]).await;
        let q = queue(&receiver.url(), |c| c.queue.shards = 2);
        for i in 0..10 {
            q.push(&ad_labels("m", "shutdown", i), Sample::new(1, 1.0))
                .await
                .unwrap();
        }
        let report = q.shutdown().await;
        assert_eq!(report.samples_sent, 10);
        let total: usize = receiver
            .received()
            .iter()
            .map(|r| r.decode().timeseries.len())
            .sum();
        assert_eq!(total, 10);
    }
}

mod prometheus {
    use adclick_remote_write::{Labels, Metrics, Queue, RequestBuilder, Sample, SendError, Sender};
    use adclick_testsupport::{PromApi, ScratchPrometheus, Stack, TestScope};

    use crate::support::{ad_labels, grid, minute_ago, sender, test_config, value};

    const METRIC: &str = "adclick_rw_it";

    fn scope(test: &str) -> TestScope {
        Stack::get().isolated(test)
    }

    /// A Prometheus of the stack's binary with no out-of-order window.
    async fn scratch(stack: &Stack) -> ScratchPrometheus {
        let stack = stack.clone();
        // ScratchPrometheus waits with a blocking HTTP client: not on the async runtime.
        tokio::task::spawn_blocking(move || {
            ScratchPrometheus::start(&stack, "global:\n  scrape_interval: 1m\n", |_| {})
        })
        .await
        .unwrap()
    }

    /// Every series of the test as (ad index, samples), from query_range at 1-minute steps.
    async fn read_back(
        api: &PromApi,
        test_id: &str,
        start: i64,
        end: i64,
    ) -> Vec<(usize, Vec<(i64, f64)>)> {
        let query = format!("{{__name__=\"{METRIC}\", test_id=\"{test_id}\"}}");
        let mut series: Vec<(usize, Vec<(i64, f64)>)> = api
            .query_range(&query, start, end, 60_000)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.labels["ad_id"].parse().unwrap(), s.samples))
            .collect();
        series.sort_by_key(|(ad, _)| *ad);
        series
    }

    fn expected(series: usize, start: i64, minutes: usize) -> Vec<(usize, Vec<(i64, f64)>)> {
        (0..series)
            .map(|i| {
                (
                    i,
                    (0..minutes)
                        .map(|m| (start + m as i64 * 60_000, value(i, m)))
                        .collect(),
                )
            })
            .collect()
    }

    /// An `https://` receiver with a certificate from a private CA (a TLS terminator in front of
    /// the stack's Prometheus): refused without `tls.ca_file`, written and read back with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_https_receiver_signed_by_a_private_ca() {
        let scope = scope("rw-https");
        let pki = adclick_testsupport::TestPki::new();
        let upstream = scope
            .stack
            .remote_write_url()
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tls = adclick_testsupport::TlsTerminator::start(listener, &pki, upstream);
        let url = format!("https://localhost:{}/api/v1/write", tls.addr.port());
        let t = minute_ago(3);
        let labels = ad_labels(METRIC, &scope.id, 0);
        let request = grid(std::slice::from_ref(&labels), t, 1);

        let mut config = test_config(&url);
        config.queue.max_retries = Some(0);
        let error = sender(&config).send(&request).await.unwrap_err();
        assert!(
            format!("{error:?}").contains("certificate"),
            "without the CA: {error:?}"
        );

        config.tls.ca_file = Some(pki.wrong_ca());
        assert!(sender(&config).send(&request).await.is_err());

        config.tls.ca_file = Some(pki.ca());
        sender(&config).send(&request).await.unwrap();
        let api = scope.stack.prometheus();
        assert_eq!(
            read_back(&api, &scope.id, t, t).await,
            vec![(0, vec![(t, value(0, 0))])]
        );

        config.tls.ca_file = Some(pki.ca().with_extension("missing"));
        let refused = Sender::new(&config, Metrics::new()).err().unwrap();
        assert!(refused.to_string().contains("ca.missing"), "{refused}");
    }

    #[tokio::test]
    async fn n_series_by_m_samples_read_back_exactly_and_an_identical_resend_is_accepted() {
        let scope = scope("rw-readback");
        let (n, m) = (25, 30);
        let start = minute_ago(m as i64 + 2);
        let series: Vec<Labels> = (0..n).map(|i| ad_labels(METRIC, &scope.id, i)).collect();
        let mut config = test_config(scope.stack.remote_write_url());
        // Several requests per shard, several shards.
        config.queue.max_samples_per_send = 97;
        let q = Queue::from_config(&config, Metrics::new()).unwrap();
        for minute in 0..m {
            for (i, labels) in series.iter().enumerate() {
                let sample = Sample::new(start + minute as i64 * 60_000, value(i, minute));
                q.push(labels, sample).await.unwrap();
            }
        }
        let report = q.shutdown().await;
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.samples_sent, (n * m) as u64);
        let api = scope.stack.prometheus();
        let end = start + (m as i64 - 1) * 60_000;
        assert_eq!(
            read_back(&api, &scope.id, start, end).await,
            expected(n, start, m)
        );

        // The same samples again, in one request: Prometheus accepts and changes nothing.
        let again = grid(&series, start, m);
        let delivery = sender(&test_config(scope.stack.remote_write_url()))
            .send(&again)
            .await;
        assert_eq!(delivery.unwrap().attempts, 1);
        assert_eq!(
            read_back(&api, &scope.id, start, end).await,
            expected(n, start, m)
        );
    }

    /// Sends the request [series `new_ad` at `t`, `old` at `t` with a value other than
    /// `old_value`] and checks that Prometheus refuses it for good and keeps neither sample.
    #[allow(clippy::too_many_arguments)]
    async fn assert_rejected_and_rolled_back(
        url: &str,
        api: &PromApi,
        test_id: &str,
        new_ad: usize,
        old: &Labels,
        t: i64,
        old_value: f64,
        expected_error: &str,
    ) {
        let new = ad_labels(METRIC, test_id, new_ad);
        let mut b = RequestBuilder::new();
        // The new series first: it is appended before the bad sample fails the request.
        b.push(&new, Sample::new(t, 7.0)).unwrap();
        b.push(old, Sample::new(t, old_value + 1.0)).unwrap();
        let sender = sender(&test_config(url));
        let error = sender.send(&b.build()).await.unwrap_err();
        let SendError::Rejected { status: 400, body } = &error else {
            panic!("{error:?}")
        };
        assert!(body.contains(expected_error), "{body}");
        let all = read_back(api, test_id, t - 5 * 60_000, t).await;
        let ads: Vec<usize> = all.iter().map(|(ad, _)| *ad).collect();
        assert!(
            !ads.contains(&new_ad),
            "the new series of the refused request was kept: {all:?}"
        );
        let (_, samples) = all.iter().find(|(ad, _)| *ad == 0).unwrap();
        assert_eq!(
            samples.last(),
            Some(&(t, old_value)),
            "the first value is kept"
        );
    }

    #[tokio::test]
    async fn a_new_value_at_the_same_timestamp_is_refused_and_the_whole_request_rolled_back() {
        let scope = scope("rw-duplicate");
        let url = scope.stack.remote_write_url().to_string();
        let start = minute_ago(5);
        let old = ad_labels(METRIC, &scope.id, 0);
        let first = grid(std::slice::from_ref(&old), start, 2);
        sender(&test_config(&url)).send(&first).await.unwrap();
        // At the series' latest timestamp: a duplicate even with the out-of-order window.
        let t = start + 60_000;
        let api = scope.stack.prometheus();
        let error = "duplicate sample";
        assert_rejected_and_rolled_back(&url, &api, &scope.id, 99, &old, t, value(0, 1), error)
            .await;
    }

    #[tokio::test]
    async fn out_of_order_samples_are_accepted_within_the_stacks_window() {
        let scope = scope("rw-ooo-window");
        let url = scope.stack.remote_write_url().to_string();
        let api = scope.stack.prometheus();
        let start = minute_ago(10);
        let labels = ad_labels(METRIC, &scope.id, 0);
        let s = sender(&test_config(&url));
        let all = grid(std::slice::from_ref(&labels), start, 3);
        // Minutes 1 and 2 first, then minute 0: older than the series' latest sample.
        let mut b = RequestBuilder::new();
        b.push(&labels, Sample::new(start + 60_000, value(0, 1)))
            .unwrap();
        b.push(&labels, Sample::new(start + 120_000, value(0, 2)))
            .unwrap();
        s.send(&b.build()).await.unwrap();
        let mut b = RequestBuilder::new();
        b.push(&labels, Sample::new(start, value(0, 0))).unwrap();
        assert_eq!(s.send(&b.build()).await.unwrap().attempts, 1);
        let end = start + 120_000;
        assert_eq!(
            read_back(&api, &scope.id, start, end).await,
            expected(1, start, 3)
        );
        // With the window, an old sample's identical re-send is accepted too.
        assert_eq!(s.send(&all).await.unwrap().attempts, 1);
        assert_eq!(
            read_back(&api, &scope.id, start, end).await,
            expected(1, start, 3)
        );
    }

    #[tokio::test]
    async fn without_a_window_out_of_order_is_refused_and_rolls_back() {
        let stack = Stack::get();
        let prometheus = scratch(&stack).await;
        let scope = stack.isolated("rw-ooo-none");
        let url = prometheus.remote_write_url();
        let api = prometheus.api();
        let start = minute_ago(10);
        let old = ad_labels(METRIC, &scope.id, 0);
        let s = sender(&test_config(&url));
        s.send(&grid(std::slice::from_ref(&old), start, 3))
            .await
            .unwrap();
        // Minute 1 again, identical: older than the latest (minute 2), so out of order.
        let new = ad_labels(METRIC, &scope.id, 99);
        let mut b = RequestBuilder::new();
        b.push(&new, Sample::new(start + 120_000, 7.0)).unwrap();
        b.push(&old, Sample::new(start + 60_000, value(0, 1)))
            .unwrap();
        let error = s.send(&b.build()).await.unwrap_err();
        let SendError::Rejected { status: 400, body } = &error else {
            panic!("{error:?}")
        };
        assert!(body.contains("out of order sample"), "{body}");
        let end = start + 120_000;
        assert_eq!(
            read_back(&api, &scope.id, start, end).await,
            expected(1, start, 3)
        );
        // The identical re-send of the latest sample is accepted, as is a new series.
        let mut b = RequestBuilder::new();
        b.push(&new, Sample::new(end, 7.0)).unwrap();
        b.push(&old, Sample::new(end, value(0, 2))).unwrap();
        assert_eq!(s.send(&b.build()).await.unwrap().attempts, 1);
        // And a changed value at the latest timestamp is a duplicate, rolled back as a whole.
        let error = "duplicate sample";
        assert_rejected_and_rolled_back(&url, &api, &scope.id, 98, &old, end, value(0, 2), error)
            .await;
    }

    #[tokio::test]
    async fn the_queue_keeps_each_series_in_order_for_a_prometheus_without_a_window() {
        // Without a window, any sample sent out of its series' order fails its whole request:
        // an exact read-back proves that batching and sharding kept every series in order.
        let stack = Stack::get();
        let prometheus = scratch(&stack).await;
        let scope = stack.isolated("rw-queue-order");
        let (n, m) = (40, 20);
        let start = minute_ago(m as i64 + 2);
        let series: Vec<Labels> = (0..n).map(|i| ad_labels(METRIC, &scope.id, i)).collect();
        let mut config = test_config(&prometheus.remote_write_url());
        config.queue.shards = 4;
        config.queue.max_samples_per_send = 13;
        let q = Queue::from_config(&config, Metrics::new()).unwrap();
        for minute in 0..m {
            for (i, labels) in series.iter().enumerate() {
                let sample = Sample::new(start + minute as i64 * 60_000, value(i, minute));
                q.push(labels, sample).await.unwrap();
            }
        }
        let report = q.shutdown().await;
        assert!(report.is_ok(), "{report:?}");
        let end = start + (m as i64 - 1) * 60_000;
        let api = prometheus.api();
        assert_eq!(
            read_back(&api, &scope.id, start, end).await,
            expected(n, start, m)
        );
    }

    #[tokio::test]
    async fn a_stale_marker_ends_the_series_in_queries() {
        let scope = scope("rw-stale");
        let start = minute_ago(10);
        let (ended, kept) = (
            ad_labels(METRIC, &scope.id, 0),
            ad_labels(METRIC, &scope.id, 1),
        );
        let mut b = RequestBuilder::new();
        for labels in [&ended, &kept] {
            b.push(labels, Sample::new(start, 1.0)).unwrap();
        }
        b.push_stale(&ended, start + 60_000).unwrap();
        let s = sender(&test_config(scope.stack.remote_write_url()));
        s.send(&b.build()).await.unwrap();
        let api = scope.stack.prometheus();
        let query = format!("{{__name__=\"{METRIC}\", test_id=\"{}\"}}", scope.id);
        // Before the marker both series answer; after it only the one without a marker, which
        // the 5-minute lookback still repeats.
        let ads = |result: Vec<adclick_testsupport::Series>| -> Vec<String> {
            let mut ads: Vec<String> = result
                .into_iter()
                .map(|s| s.labels["ad_id"].clone())
                .collect();
            ads.sort();
            ads
        };
        let before = api.query(&query, Some(start + 30_000)).await.unwrap();
        assert_eq!(ads(before), ["0", "1"]);
        let after = api.query(&query, Some(start + 90_000)).await.unwrap();
        assert_eq!(ads(after), ["1"]);
    }
}

mod properties {
    use adclick_remote_write::encode::{decode, encode};
    use adclick_remote_write::proto;
    use adclick_remote_write::{Problem, Request, RequestBuilder, Sample, stale};
    use proptest::prelude::*;
    use prost::Message;

    use crate::support::canonical;

    type Pairs = Vec<(String, String)>;

    /// A valid series: a metric name, up to 6 more labels in any order, 1..8 samples with
    /// increasing timestamps and any value bits but the stale marker's.
    fn valid_series() -> impl Strategy<Value = (Pairs, Vec<Sample>)> {
        let metric = "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}";
        let name = "_?[a-zA-Z][a-zA-Z0-9_]{0,12}";
        let value = "(?s).{1,12}";
        let labels = (metric, prop::collection::btree_map(name, value, 0..6)).prop_flat_map(
            |(metric, rest)| {
                let mut pairs: Pairs = rest.into_iter().collect();
                pairs.push(("__name__".to_string(), metric));
                Just(pairs).prop_shuffle()
            },
        );
        let bits =
            any::<u64>().prop_filter("not the stale marker", |b| *b != stale::STALE_NAN_BITS);
        let samples = prop::collection::btree_map(any::<i64>(), bits, 1..8).prop_map(|m| {
            m.into_iter()
                .map(|(t, b)| Sample::new(t, f64::from_bits(b)))
                .collect()
        });
        (labels, samples)
    }

    fn sorted(pairs: &Pairs) -> Pairs {
        let mut p = pairs.clone();
        p.sort();
        p
    }

    /// Breaks one rule in a valid series; returns which problems may then be reported.
    fn apply_defect(
        defect: usize,
        at: usize,
        labels: &mut Pairs,
        samples: &mut Vec<Sample>,
    ) -> fn(&Problem) -> bool {
        match defect {
            0 => {
                // An empty `__name__` value is an invalid metric name.
                labels[at].1.clear();
                |p| {
                    matches!(
                        p,
                        Problem::EmptyLabelValue { .. } | Problem::InvalidMetricName { .. }
                    )
                }
            }
            1 => {
                labels.push((String::new(), "v".into()));
                |p| *p == Problem::EmptyLabelName
            }
            2 => {
                labels.push(labels[at].clone());
                |p| matches!(p, Problem::DuplicateLabelName { .. })
            }
            3 => {
                labels.push(("bad-name".into(), "v".into()));
                |p| matches!(p, Problem::InvalidLabelName { .. })
            }
            4 => {
                labels.push(("__reserved".into(), "v".into()));
                |p| matches!(p, Problem::ReservedLabelName { .. })
            }
            5 => {
                labels.retain(|(n, _)| n != "__name__");
                |p| *p == Problem::MissingMetricName
            }
            6 => {
                let name = labels.iter_mut().find(|(n, _)| n == "__name__").unwrap();
                name.1 = format!("9{}", name.1);
                |p| matches!(p, Problem::InvalidMetricName { .. })
            }
            7 => {
                samples.push(samples[0]);
                |p| matches!(p, Problem::TimestampsNotIncreasing { .. })
            }
            8 => {
                samples[0] = stale::marker(samples[0].timestamp_ms);
                |p| matches!(p, Problem::StaleMarkerValue { .. })
            }
            _ => {
                samples.clear();
                |p| *p == Problem::NoSamples
            }
        }
    }

    /// The series as a decoded message would carry it (labels sorted, so that only the defect
    /// is wrong).
    fn message(mut labels: Pairs, samples: &[Sample]) -> proto::WriteRequest {
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let labels = labels
            .into_iter()
            .map(|(name, value)| proto::Label { name, value });
        let samples = samples.iter().map(|s| proto::Sample {
            value: s.value,
            timestamp: s.timestamp_ms,
        });
        proto::WriteRequest {
            timeseries: vec![proto::TimeSeries {
                labels: labels.collect(),
                samples: samples.collect(),
            }],
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn valid_series_survive_build_encode_decode(
            series in prop::collection::vec(valid_series(), 1..8)
        ) {
            let mut builder = RequestBuilder::new();
            let mut expected = crate::support::Canonical::new();
            for (labels, samples) in &series {
                // A set of series: a label set drawn twice is kept once.
                if expected.contains_key(&sorted(labels)) {
                    continue;
                }
                builder.series(labels.clone(), samples.clone()).unwrap();
                // Bit for bit, but -0.0, which proto3 cannot carry, is +0.0 (see the builder).
                let bits = samples
                    .iter()
                    .map(|s| (s.timestamp_ms, if s.value == 0.0 { 0 } else { s.value.to_bits() }))
                    .collect();
                expected.insert(sorted(labels), bits);
            }
            let request = builder.build();
            let body = encode(&request).unwrap().body().clone();
            // The hand-written protobuf is byte for byte prost's encoding of the message.
            let protobuf = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
            prop_assert_eq!(protobuf, request.to_proto().encode_to_vec());
            let decoded = decode(&body).unwrap();
            prop_assert_eq!(canonical(&decoded), expected);
            for ts in &decoded.timeseries {
                let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
                prop_assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted: {:?}", names);
            }
            let again = Request::from_proto(decoded).unwrap();
            prop_assert_eq!(again.samples(), request.samples());
        }

        #[test]
        fn invalid_series_are_refused_and_leave_nothing_to_send(
            (labels, samples) in valid_series(),
            defect in 0..10usize,
            pick in any::<prop::sample::Index>(),
        ) {
            let (mut labels, mut samples) = (labels, samples);
            let at = pick.index(labels.len());
            let expect = apply_defect(defect, at, &mut labels, &mut samples);
            let mut builder = RequestBuilder::new();
            let error = builder.series(labels.clone(), samples.clone()).unwrap_err();
            prop_assert!(expect(&error.problem), "defect {}: {:?}", defect, error);
            let braced = error.series.starts_with('{') && error.series.ends_with('}');
            prop_assert!(braced, "{}", error.series);
            if let Some((name, _)) = labels.first() {
                prop_assert!(error.series.contains(&format!("{name}=")), "{}", error.series);
            }
            // Nothing of the series got in: the request stays empty.
            prop_assert!(builder.is_empty());
            prop_assert_eq!(builder.build().series(), 0);

            // The same series arriving as a decoded message is refused too (the stale marker
            // excepted: on the wire it is legitimate).
            if defect != 8 {
                prop_assert!(Request::from_proto(message(labels, &samples)).is_err());
            }
        }
    }
}
