//! What an advertiser may reach: the series names, the enforced label, and the bounds on a query's
//! size and nesting.

use std::collections::BTreeSet;

/// The label every selector is restricted by: the exporter writes it on every click series, as the
/// advertiser's id in decimal (`exporter/src/series.rs`).
pub const ADVERTISER_LABEL: &str = "advertiser_id";

/// The label Prometheus keeps a series' name in; a selector may name its metric this way
/// (`{__name__="adclick_clicks"}`) instead of before the braces.
pub(crate) const METRIC_NAME_LABEL: &str = "__name__";

/// The click series the exporter writes (README, "Series"), live (`tier!="rollup"`) and, through
/// Thanos, the rollup's settled ones (`tier="rollup"`, same names): the valid clicks and the
/// invalid traffic (issue #18: per campaign and reason, never billed; an advertiser sees their
/// own, as the Advertiser dashboard's "Invalid traffic" panels do), and what the valid clicks
/// cost and how many people made them (issue #19: spend, late spend, unique users per ad and
/// minute, as the Advertiser dashboard's "Spend and people" panels show).
pub const RAW_SERIES: [&str; 8] = [
    "adclick_clicks",
    "adclick_clicks_open",
    "adclick_late_clicks",
    "adclick_invalid_clicks",
    "adclick_late_invalid_clicks",
    "adclick_spend_micros",
    "adclick_late_spend_micros",
    "adclick_unique_users",
];

/// The recording rules of `deploy/prometheus/rules/adclick-recording.yml` that keep
/// `advertiser_id`: all of them. Every rule aggregates with `sum without (partition)`,
/// `without (ad_id)` or `without (campaign_id)`, never dropping `advertiser_id` (the `ad:`,
/// `campaign:` and `advertiser:` levels all keep it); a rule that did drop it would sum several
/// advertisers into one series and must never be added here. The `rules` test checks this list
/// against the file, both ways.
pub const RECORDED_SERIES: [&str; 14] = [
    "ad:adclick_clicks:sum_1h",
    "ad:adclick_clicks:sum_10m",
    "ad:adclick_clicks:sum_10m_avg_2h",
    "ad:adclick_clicks:sum_1d",
    "campaign:adclick_clicks:sum_1h",
    "campaign:adclick_clicks:sum_10m",
    "campaign:adclick_clicks:sum_10m_avg_2h",
    "campaign:adclick_clicks:sum_1d",
    "campaign:adclick_late_clicks:sum_1h",
    "campaign:adclick_late_clicks:sum_1d",
    "campaign:adclick_invalid_clicks:sum_1h",
    "campaign:adclick_late_invalid_clicks:sum_1h",
    "advertiser:adclick_clicks:sum_1h",
    "advertiser:adclick_clicks:sum_1d",
];

/// Bounds on a query's text, checked before it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest query, in bytes. A 400 KB query of `+ 0` terms kept the stack's Prometheus busy
    /// for more than a minute (issue #21); the advertiser dashboard's longest query is under
    /// 400 bytes.
    pub max_bytes: usize,
    /// Deepest nesting: the deepest bracket nesting (`(`, `[`, `{`) plus the number of operator
    /// tokens, counted on the raw text. Their sum bounds the depth of the tree the parser builds
    /// (see `bounds`), and promql-parser recurses over that tree (type checks while parsing,
    /// printing, dropping): 10,000 nested parentheses would exhaust a thread's stack.
    pub max_nesting: usize,
}

impl Limits {
    /// 16 KiB: forty times the dashboard's longest query.
    pub const DEFAULT_MAX_BYTES: usize = 16 * 1024;
    /// The dashboard's deepest query counts 5 (the `dashboard` test finds it).
    pub const DEFAULT_MAX_NESTING: usize = 64;
    /// The most `max_nesting` may be set to. The tree is at most 2 × nesting + 2 deep; 256 keeps
    /// that near 500 levels, a few hundred KB of stack at most in promql-parser's recursion,
    /// well inside a 2 MiB thread stack (tokio's default).
    pub const MAX_NESTING_CEILING: usize = 256;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_nesting: Self::DEFAULT_MAX_NESTING,
        }
    }
}

/// Why a [`Policy`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Names are printed into the forwarded query as they are, so each must be a plain metric
    /// name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
    #[error("{0:?} is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")]
    InvalidMetricName(String),
    #[error(
        "max_nesting {given} is more than {ceiling}, deeper than the parser can be trusted with"
    )]
    NestingTooHigh { given: usize, ceiling: usize },
}

/// What an advertiser's queries may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    metrics: BTreeSet<String>,
    limits: Limits,
}

impl Policy {
    /// A policy that allows exactly `metrics` (each of which must carry `advertiser_id`: the
    /// gateway restricts by that label, so a series without it would simply match nothing).
    pub fn new<I, S>(metrics: I, limits: Limits) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if limits.max_nesting > Limits::MAX_NESTING_CEILING {
            return Err(PolicyError::NestingTooHigh {
                given: limits.max_nesting,
                ceiling: Limits::MAX_NESTING_CEILING,
            });
        }
        let mut set = BTreeSet::new();
        for m in metrics {
            let m = m.into();
            if !is_metric_name(&m) {
                return Err(PolicyError::InvalidMetricName(m));
            }
            set.insert(m);
        }
        Ok(Policy {
            metrics: set,
            limits,
        })
    }

    /// Whether a selector may name `metric`.
    pub fn allows(&self, metric: &str) -> bool {
        self.metrics.contains(metric)
    }

    /// The allowed metric names, sorted.
    pub fn metrics(&self) -> impl Iterator<Item = &str> {
        self.metrics.iter().map(String::as_str)
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }
}

impl Default for Policy {
    /// [`RAW_SERIES`] and [`RECORDED_SERIES`], default [`Limits`].
    fn default() -> Self {
        Policy {
            metrics: RAW_SERIES
                .iter()
                .chain(RECORDED_SERIES.iter())
                .map(|s| s.to_string())
                .collect(),
            limits: Limits::default(),
        }
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_metric_names() {
        let p = Policy::default();
        assert_eq!(
            p.metrics().count(),
            RAW_SERIES.len() + RECORDED_SERIES.len()
        );
        assert!(p.metrics().all(is_metric_name));
        assert!(p.allows("adclick_clicks") && !p.allows("up"));
    }

    /// Issue #18: an advertiser reads their invalid traffic (the Advertiser dashboard's "Invalid
    /// traffic" panels), raw and per campaign over the hour; the ingest and exporter counters,
    /// which carry no advertiser_id, stay out.
    #[test]
    fn invalid_traffic_series_are_allowed() {
        let p = Policy::default();
        for name in [
            "adclick_invalid_clicks",
            "adclick_late_invalid_clicks",
            "campaign:adclick_invalid_clicks:sum_1h",
            "campaign:adclick_late_invalid_clicks:sum_1h",
        ] {
            assert!(p.allows(name), "{name}");
        }
        for name in [
            "adclick_ingest_invalid_traffic_total",
            "adclick_exporter_invalid_clicks_total",
            "adclick:invalid_share_upper_bound",
        ] {
            assert!(!p.allows(name), "{name}");
        }
    }

    /// Issue #19: an advertiser reads what their clicks cost and how many people made them; the
    /// exporter's own counters stay out.
    #[test]
    fn spend_and_unique_users_are_allowed() {
        let p = Policy::default();
        for name in [
            "adclick_spend_micros",
            "adclick_late_spend_micros",
            "adclick_unique_users",
        ] {
            assert!(p.allows(name), "{name}");
        }
        assert!(!p.allows("adclick_exporter_records_total"));
    }

    #[test]
    fn names_and_nesting_are_checked() {
        assert_eq!(
            Policy::new(["adclick_clicks", "a b"], Limits::default()),
            Err(PolicyError::InvalidMetricName("a b".into()))
        );
        assert!(Policy::new(["1x"], Limits::default()).is_err());
        assert!(Policy::new([""], Limits::default()).is_err());
        let deep = Limits {
            max_nesting: Limits::MAX_NESTING_CEILING + 1,
            ..Limits::default()
        };
        assert!(matches!(
            Policy::new(["x"], deep),
            Err(PolicyError::NestingTooHigh { .. })
        ));
        let empty = Policy::new(Vec::<String>::new(), Limits::default()).unwrap();
        assert!(!empty.allows("adclick_clicks"));
    }
}
