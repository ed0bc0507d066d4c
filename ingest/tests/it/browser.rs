//! A real browser clicks an ad. Headless Chromium (Debian's `chromium`, driven over WebDriver by
//! Debian's `chromedriver`, with a fresh profile) loads a publisher page served by the test,
//! clicks the ad link to ingest's `/click/{token}`, follows the 302 to the advertiser page (also
//! served by the test), goes back and clicks the same ad again. Both clicks must land on the
//! advertiser; the clicks topic must hold exactly one click for the impression.
//!
//! A second page prefetches the ad link (`<link rel=prefetch>`, as a publisher or a browser's
//! speculation may): ingest refuses the prefetch uncacheably without claiming the impression, so
//! the person's click afterwards reaches ingest and counts as one valid click.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adclick_testsupport::{Stack, free_port};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Html;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::mpsc;

use crate::support::{self, Ingest, config, kafka, read_topic};

/// Where Debian's packages put them (`deploy/local/install` installs both).
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Headless as root, no GPU; QUIC, first-run, background networking, component updates and sync
/// off, because on a machine without outside network those connections of Chromium's own are
/// refused and would only add noise and delay. `--user-data-dir` is added per run. The user agent
/// is a plain desktop Chrome's: headless Chromium says `HeadlessChrome`, which the invalid-traffic
/// rules take for the automation it is (`bot_user_agent`); these tests are about a person's path.
const CHROMIUM_ARGS: [&str; 9] = [
    "--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// How long the browser may take to start, load a page or follow a redirect before the test
/// gives up: a bound on waiting for something that is not coming, not a speed requirement.
const PATIENCE: Duration = Duration::from_secs(60);

const AD: u64 = 4_000_000_002;

/// One request for the advertiser page: its URL path and query, and its `Referer`, if any.
#[derive(Debug)]
struct Landing {
    path_and_query: String,
    referer: Option<String>,
}

/// The publisher's page (with the ad) and the advertiser's landing page, on one local server.
struct Sites {
    publisher: String,
    landings: mpsc::UnboundedReceiver<Landing>,
}

#[derive(Clone)]
struct SiteState {
    publisher_page: Arc<str>,
    landings: mpsc::UnboundedSender<Landing>,
}

async fn publisher(State(state): State<SiteState>) -> Html<String> {
    Html(state.publisher_page.to_string())
}

async fn advertiser(
    State(state): State<SiteState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Html<&'static str> {
    let referer = headers
        .get(header::REFERER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let _ = state.landings.send(Landing {
        path_and_query: uri.path_and_query().map_or("", |p| p.as_str()).to_owned(),
        referer,
    });
    Html(
        "<!doctype html><html><head><title>Spring sale</title></head>\
         <body><h1>Welcome to the spring sale</h1></body></html>",
    )
}

impl Sites {
    /// Serves the publisher page with a link to `click_url(landing URL)`; with `prefetch`, the
    /// page also asks the browser to prefetch that link.
    async fn start(click_url: impl FnOnce(&str) -> String, prefetch: bool) -> (Sites, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let landing = format!("http://{addr}/landing/spring?campaign=8");
        let link = click_url(&landing);
        let hint = if prefetch {
            format!("<link rel=\"prefetch\" href=\"{link}\">")
        } else {
            String::new()
        };
        let page = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>News</title>{hint}</head><body>\
             <h1>Today's news</h1><p>An article.</p>\
             <a id=\"ad\" href=\"{link}\">Spring sale: 20 % off</a></body></html>"
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let app = axum::Router::new()
            .route("/news", axum::routing::get(publisher))
            .route("/landing/spring", axum::routing::get(advertiser))
            .with_state(SiteState {
                publisher_page: page.into(),
                landings: tx,
            });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (
            Sites {
                publisher: format!("http://{addr}/news"),
                landings: rx,
            },
            landing,
        )
    }

    async fn next_landing(&mut self) -> Landing {
        tokio::time::timeout(PATIENCE, self.landings.recv())
            .await
            .expect("the advertiser page was never requested")
            .expect("the site server stopped")
    }
}

/// chromedriver and the Chromium it starts, in a process group of their own so that a failing
/// test stops both.
struct Browser {
    client: Option<Client>,
    driver: Child,
    profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        for (bin, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(bin).exists(),
                "this test drives headless Chromium, and {bin} is missing: install Debian's \
                 `{package}` (deploy/local/install does, as root)"
            );
        }
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = profile.path().join("chromedriver.log");
        let driver = {
            use std::os::unix::process::CommandExt as _;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"))
        };
        let mut browser = Browser {
            client: None,
            driver,
            profile,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = browser.driver.try_wait() {
                panic!(
                    "chromedriver exited with {status}; its log: {}",
                    log.display()
                );
            }
            assert!(
                started.elapsed() < PATIENCE,
                "chromedriver did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let user_data_dir = browser.profile.path().join("profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", user_data_dir.display()));
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start {CHROMIUM}: {e}; its log: {}",
                    log.display()
                )
            });
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("connected")
    }

    /// Clicks the ad on the page shown and waits until the browser shows `landing`.
    async fn click_ad(&self, landing: &url::Url) {
        let client = self.client();
        client
            .find(Locator::Css("a#ad"))
            .await
            .expect("the publisher page shows the ad")
            .click()
            .await
            .expect("clicking the ad");
        if let Err(e) = client.wait().at_most(PATIENCE).for_url(landing).await {
            let at = client.current_url().await.map(|u| u.to_string());
            panic!("the browser never reached {landing} ({e}); it shows {at:?}");
        }
    }

    /// Ends the session: Chromium quits, then chromedriver is stopped.
    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            client.close().await.expect("closing the browser session");
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and, should it still run, the Chromium it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
    }
}

fn token(landing: &str) -> (String, [u8; 16]) {
    support::signed_token(AD, landing)
}

/// What both tests start with: an ingest of the test's own, the sites with the ad (prefetched
/// or not), and a browser showing the publisher's page.
struct Setup {
    scope: adclick_testsupport::TestScope,
    topic: String,
    ingest: Ingest,
    sites: Sites,
    landing_url: url::Url,
    impression: [u8; 16],
    browser: Browser,
    _spill: tempfile::TempDir,
}

impl Setup {
    async fn start(name: &str, prefetch: bool) -> Setup {
        let scope = Stack::get().isolated(name);
        let topic = scope.kafka_topic(2).await;
        let spill = tempfile::tempdir().unwrap();
        let mut cfg = config(scope.stack.redis_url(), &scope.redis_prefix(), spill.path());
        // These tests are about the browser's path, not about failing open or spilling.
        cfg.produce_timeout_ms = 5_000;
        cfg.dedup_timeout_ms = 2_000;
        let ingest = Ingest::start(cfg, kafka(scope.stack.kafka_brokers(), &topic)).await;
        let mut impression = None;
        let (sites, landing) = Sites::start(
            |landing| {
                let (token, id) = token(landing);
                impression = Some(id);
                format!("{}/click/{token}", ingest.base)
            },
            prefetch,
        )
        .await;
        let browser = Browser::start().await;
        browser
            .client()
            .goto(&sites.publisher)
            .await
            .expect("loading the publisher page");
        Setup {
            scope,
            topic,
            ingest,
            sites,
            landing_url: url::Url::parse(&landing).unwrap(),
            impression: impression.expect("token minted"),
            browser,
            _spill: spill,
        }
    }
}

/// Every record of the test's topic: the impression's, once nothing more arrives.
async fn setup_records(
    scope: &adclick_testsupport::TestScope,
    topic: &str,
) -> Vec<adclick_click::Click> {
    read_topic(
        scope.stack.kafka_brokers(),
        topic,
        1,
        Duration::from_secs(3),
        Duration::from_secs(60),
    )
    .await
}

/// Clicks ingest took for repeats of an impression it had claimed.
async fn duplicates(ingest: &Ingest) -> f64 {
    support::metric_value(&ingest.metrics().await, "adclick_ingest_duplicates_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_click_lands_on_the_advertiser_and_counts_once() {
    let Setup {
        scope,
        topic,
        ingest,
        mut sites,
        landing_url,
        impression,
        browser,
        _spill,
    } = Setup::start("ingest-browser", false).await;
    let publisher_url = url::Url::parse(&sites.publisher).unwrap();
    browser.click_ad(&landing_url).await;
    let first = sites.next_landing().await;
    assert_eq!(first.path_and_query, "/landing/spring?campaign=8");
    // The 302 says `Referrer-Policy: no-referrer`: the advertiser does not learn the publisher
    // page from adclick's redirect.
    assert_eq!(first.referer, None);

    // The user comes back to the article and clicks the same ad again.
    browser.client().back().await.expect("going back");
    browser
        .client()
        .wait()
        .at_most(PATIENCE)
        .for_url(&publisher_url)
        .await
        .expect("back on the publisher page");
    browser.click_ad(&landing_url).await;
    let second = sites.next_landing().await;
    assert_eq!(second.path_and_query, "/landing/spring?campaign=8");
    browser.close().await;

    // Ingest saw both clicks (the 302 is not cached), and produced the impression once.
    assert_eq!(
        duplicates(&ingest).await,
        1.0,
        "the second click reached ingest as a repeat"
    );
    let records = setup_records(&scope, &topic).await;
    assert_eq!(
        records.len(),
        1,
        "one click for the impression: {records:?}"
    );
    let click = &records[0];
    assert_eq!(click.impression_id, impression.to_vec());
    assert_eq!(
        (click.ad_id, click.campaign_id, click.advertiser_id),
        (AD, 8, 9)
    );
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefetched_ad_link_still_counts_the_click_that_follows() {
    use adclick_click::wire::InvalidReason;
    let Setup {
        scope,
        topic,
        ingest,
        mut sites,
        landing_url,
        impression,
        browser,
        _spill,
    } = Setup::start("ingest-browser-prefetch", true).await;
    // The browser prefetches the link on its own; wait until ingest has answered it.
    let started = Instant::now();
    let prefetch_series = "adclick_ingest_invalid_traffic_total{reason=\"prefetch\"}";
    while support::metric_value(&ingest.metrics().await, prefetch_series) < 1.0 {
        assert!(
            started.elapsed() < PATIENCE,
            "Chromium never prefetched the ad link"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.click_ad(&landing_url).await;
    let landed = sites.next_landing().await;
    assert_eq!(landed.path_and_query, "/landing/spring?campaign=8");
    browser.close().await;

    assert_eq!(
        duplicates(&ingest).await,
        0.0,
        "the prefetch must not have claimed the impression"
    );
    let records = setup_records(&scope, &topic).await;
    let mut reasons: Vec<InvalidReason> = records
        .iter()
        .inspect(|r| assert_eq!(r.impression_id, impression.to_vec()))
        .map(adclick_click::Click::invalid_reason)
        .collect();
    reasons.sort_unstable();
    // One valid click, and the prefetch(es) recorded as invalid traffic beside it: however many
    // prefetches the browser made, one valid click.
    assert_eq!(
        reasons
            .iter()
            .filter(|&&r| r == InvalidReason::Valid)
            .count(),
        1,
        "{reasons:?}"
    );
    assert!(
        reasons[1..].iter().all(|&r| r == InvalidReason::Prefetch),
        "{reasons:?}"
    );
    ingest.stop().await;
}
