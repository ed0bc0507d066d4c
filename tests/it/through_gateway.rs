//! The advertiser dashboard through the query gateway (issue #21's acceptance): every panel and
//! variable query the `grafana_stack` test ran, sent through `adclick query` with advertiser A's
//! key, answers exactly what the Prometheus behind it answers directly for A — and the same query
//! with A's `advertiser_id` matcher taken out still does (the gateway puts it back), while B's
//! key asking for A's id is refused. The gateway serves the scratch Prometheus as its live and as
//! its history (`thanos`) upstream: the stand-in rollup series there carry `tier="rollup"` as a
//! stored label, as Thanos presents the external label, so the "settled" panels (both tiers)
//! are routed and answered as they would be by Thanos.

use std::time::Duration;

use adclick_query::{HistoryKind, Listeners, QueryConfig, key_digest_hex};
use adclick_testsupport::{PromApi, ScratchPrometheus, Series};

/// What a dashboard query is, for running it as Grafana would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// `label_values(<selector>, <label>)`, already parsed into a label-values request.
    Variable,
    Instant,
    Range,
}

/// One query of a dashboard, its variables substituted.
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    pub dashboard: String,
    pub what: String,
    pub expr: String,
    pub kind: QueryKind,
}

const KEY_A: &str = "through-gateway-key-a";
const KEY_B: &str = "through-gateway-key-b";

/// The window of range panels, as the dashboard's default time range.
const RANGE_MS: i64 = 3_600_000;

/// Compares every advertiser-dashboard query of `ran` through a gateway in front of
/// `prometheus` with A's (`a`'s) key against `prometheus` directly; problems go to `problems`,
/// and a report is returned.
pub async fn compare(
    prometheus: &ScratchPrometheus,
    ran: &[DashboardQuery],
    a: &str,
    b: &str,
    problems: &mut Vec<String>,
) -> String {
    let keys_dir = tempfile::tempdir().unwrap();
    let keys_file = keys_dir.path().join("keys");
    std::fs::write(
        &keys_file,
        format!(
            "{} {a}\n{} {b}\n",
            key_digest_hex(KEY_A),
            key_digest_hex(KEY_B)
        ),
    )
    .unwrap();
    let config = QueryConfig {
        prometheus_url: prometheus.url().to_string(),
        history_url: prometheus.url().to_string(),
        history_kind: HistoryKind::Thanos,
        api_keys_file: keys_file,
        requests_per_second: 0,
        ..QueryConfig::default()
    };
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", api.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn(adclick_query::run(
        Listeners { api, admin },
        config,
        async {
            let _ = stopped.await;
        },
    ));

    let direct = prometheus.api();
    let as_a = PromApi::with_key(&base, KEY_A);
    let as_b = PromApi::with_key(&base, KEY_B);
    let ours = format!("advertiser_id=\"{a}\"");
    let mut compared = 0;
    for q in ran.iter().filter(|q| q.dashboard == "advertiser.json") {
        // A few tries: a sample at or before the evaluation time can still be on its way (a
        // minute is written 10 s after it ends; a rule records once a minute), so a difference
        // is only one when it stays.
        let mut failed = vec![];
        for attempt in 0..6 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            let at = adclick_loadgen::run::now_ms() / 1000 * 1000 - 20_000;
            failed = compare_one(q, &ours, at, &direct, &as_a, &as_b).await;
            if failed.is_empty() {
                break;
            }
        }
        if failed.is_empty() {
            compared += 2;
        }
        problems.extend(failed);
    }
    if compared == 0 {
        problems.push("no advertiser dashboard query was compared".into());
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), gateway)
        .await
        .expect("the gateway stops")
        .unwrap()
        .unwrap();
    format!(
        "{compared} answers of the advertiser dashboard's queries through the gateway (as they are and without the advertiser matcher) equal direct Prometheus' for advertiser {a}"
    )
}

/// Compares one query at `at`: directly for A, through the gateway with A's key (as it is and
/// without A's matcher), and with B's key (refused when it names A). The problems, if any.
async fn compare_one(
    q: &DashboardQuery,
    ours: &str,
    at: i64,
    direct: &PromApi,
    as_a: &PromApi,
    as_b: &PromApi,
) -> Vec<String> {
    let mut problems = vec![];
    let what = format!("{}: {}", q.what, q.expr);
    // What A may see: the query as it is when it names A (every panel does), else with A's
    // matcher in each selector (the advertiser variable lists every advertiser directly).
    let restricted = if q.expr.contains(ours) {
        q.clone()
    } else {
        DashboardQuery {
            expr: q.expr.replace('{', &format!("{{{ours}, ")),
            ..q.clone()
        }
    };
    let want = match run(direct, &restricted, at).await {
        Ok(want) if !want.is_empty() => want,
        other => return vec![format!("{what}: directly, nothing to compare: {other:?}")],
    };
    for (how, expr) in [
        ("as it is", q.expr.clone()),
        ("without A's matcher", without(&q.expr, ours)),
    ] {
        let asked = DashboardQuery { expr, ..q.clone() };
        match run(as_a, &asked, at).await {
            Ok(got) if got == want => {}
            Ok(got) => problems.push(format!(
                "{what} ({how}) through the gateway: {} series {got:?}, directly {} series {want:?}",
                got.len(),
                want.len()
            )),
            Err(e) => problems.push(format!("{what} ({how}) through the gateway: {e}")),
        }
    }
    if q.expr.contains(ours) {
        match run(as_b, q, at).await {
            Err(e) if e.contains("advertiser_id") => {}
            other => problems.push(format!(
                "{what} with B's key: expected a refusal naming advertiser_id, got {other:?}"
            )),
        }
    }
    problems
}

/// `expr` without the matcher `matcher` (and the separator beside it).
fn without(expr: &str, matcher: &str) -> String {
    expr.replace(&format!("{matcher}, "), "")
        .replace(&format!(", {matcher}"), "")
        .replace(matcher, "")
}

/// Runs `q` as Grafana would at `at_ms`: variables as label values, panels instant or over the
/// hour before; label values sorted, series as Prometheus orders them.
async fn run(api: &PromApi, q: &DashboardQuery, at_ms: i64) -> Result<Vec<Series>, String> {
    let result = match q.kind {
        QueryKind::Variable => {
            let (label, selector) = label_values_parts(&q.expr)?;
            let matchers: Vec<&str> = selector.iter().map(String::as_str).collect();
            let mut values = api.label_values(&label, &matchers).await.map_err(|e| e.0)?;
            values.sort();
            return Ok(values
                .into_iter()
                .map(|v| Series {
                    labels: [(label.clone(), v)].into_iter().collect(),
                    samples: vec![],
                })
                .collect());
        }
        QueryKind::Instant => api.query(&q.expr, Some(at_ms)).await,
        QueryKind::Range => {
            api.query_range(&q.expr, at_ms - RANGE_MS, at_ms, 60_000)
                .await
        }
    };
    result.map_err(|e| e.0)
}

/// `label_values([<selector>, ]<label>)` → (label, selector).
fn label_values_parts(expr: &str) -> Result<(String, Option<String>), String> {
    match adclick_grafana::parse_variable_query(expr) {
        Ok(adclick_grafana::VariableSource::LabelValues { label, selector }) => {
            Ok((label, selector))
        }
        other => Err(format!("{expr}: not a label_values query ({other:?})")),
    }
}
