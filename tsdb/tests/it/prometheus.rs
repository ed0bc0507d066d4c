//! A stock Prometheus 2.42 started on a data directory holding one of our blocks serves it:
//! PromQL over the block's day gives exactly the sums of the samples written.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use adclick_testsupport::free_port;
use adclick_tsdb::{Sample, Series};

use crate::support::{Rng, ad_series, tool, write};

const DAY_START_MS: i64 = 1_763_856_000_000;
const DAY_MS: i64 = 86_400_000;

/// A Prometheus process that is killed when the test ends, passing or not.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(data_dir: &Path, config_dir: &Path) -> Prometheus {
        let config = config_dir.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
        let port = free_port();
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data_dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // The block is in the past; retention must not delete it at startup.
            .arg("--storage.tsdb.retention.time=100y")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(config_dir.join("prometheus.log")).unwrap(),
            ))
            .spawn()
            .expect("start prometheus");
        let mut prometheus = Prometheus { child, port };
        prometheus.wait_ready(config_dir);
        prometheus
    }

    fn wait_ready(&mut self, config_dir: &Path) {
        let log = || std::fs::read_to_string(config_dir.join("prometheus.log")).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok((200, _)) = self.get("/-/ready") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "prometheus exited ({status}) before it was ready; its log:\n{}",
                    log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("prometheus not ready after 60 s; its log:\n{}", log());
    }

    /// A plain HTTP/1.0 GET: status and body.
    fn get(&self, path_and_query: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// An instant query; returns each result series' value keyed by its `ad_id` ("" if none).
    fn query(&self, promql: &str, time_ms: i64) -> Vec<(String, f64)> {
        let path = format!(
            "/api/v1/query?query={}&time={}.{:03}",
            percent_encode(promql),
            time_ms / 1000,
            time_ms % 1000
        );
        let (status, body) = self.get(&path).expect("query prometheus");
        assert_eq!(status, 200, "{promql}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "success", "{body}");
        let mut out: Vec<(String, f64)> = json["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let ad = r["metric"]["ad_id"].as_str().unwrap_or("").to_string();
                let value = r["value"][1].as_str().unwrap().parse().unwrap();
                (ad, value)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_answers_sum_over_time_from_the_block() {
    // One day of minute samples (timestamps at minute ends within the day) for 40 ads.
    let mut rng = Rng(2024);
    let series: Vec<Series> = (0..40u32)
        .map(|ad| {
            let samples = (0..1440)
                .map(|minute| {
                    let clicks = if rng.range(0, 3) == 0 {
                        0
                    } else {
                        rng.range(0, 25)
                    };
                    Sample::new(DAY_START_MS + minute * 60_000, clicks as f64)
                })
                .collect();
            ad_series(ad % 4, ad % 9, ad, samples)
        })
        .collect();
    let data = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let block = write(
        data.path(),
        DAY_START_MS,
        DAY_START_MS + DAY_MS,
        series.clone(),
    );

    let prometheus = Prometheus::start(data.path(), scratch.path());
    // The last millisecond of the block: the 1-day range [end - 1d, end] holds all its samples.
    let at = block.meta.max_time_ms - 1;

    let expected = |s: &Series| s.samples.iter().map(|x| x.value).sum::<f64>();
    let ad_7 = series.iter().find(|s| s.labels[1].value == "ad-7").unwrap();
    assert_eq!(
        prometheus.query(r#"sum_over_time(adclick_clicks{ad_id="ad-7"}[1d])"#, at),
        vec![("ad-7".to_string(), expected(ad_7))]
    );

    let mut per_ad: Vec<(String, f64)> = series
        .iter()
        .map(|s| (s.labels[1].value.clone(), expected(s)))
        .collect();
    per_ad.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        prometheus.query("sum_over_time(adclick_clicks[1d])", at),
        per_ad
    );

    let total: f64 = series.iter().map(expected).sum();
    assert_eq!(
        prometheus.query(
            r#"sum(sum_over_time(adclick_clicks{advertiser_id="adv-2"}[1d]))"#,
            at
        ),
        vec![(
            String::new(),
            series
                .iter()
                .filter(|s| s.labels[2].value == "adv-2")
                .map(expected)
                .sum()
        )]
    );
    assert_eq!(
        prometheus.query("sum(count_over_time(adclick_clicks[1d]))", at),
        vec![(String::new(), 40.0 * 1440.0)]
    );
    assert_eq!(
        prometheus.query("sum(sum_over_time(adclick_clicks[1d]))", at),
        vec![(String::new(), total)]
    );
}
