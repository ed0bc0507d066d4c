//! Why a query is not forwarded: one variant per reason, each message naming it for the caller,
//! and the HTTP status a gateway answers with.

/// A query the gateway does not forward. Refused rather than rewritten: a query that would widen
/// or conflict with the advertiser's restriction is answered with why, never quietly changed
/// into another query (prom-label-proxy's default replaces a conflicting matcher silently).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Checked before parsing, so a huge query costs neither the parser nor Prometheus anything.
    #[error("the query is {len} bytes long, more than the {max} bytes allowed")]
    TooLong { len: usize, max: usize },

    /// Checked before parsing (see `Limits::max_nesting`).
    #[error(
        "the query nests {nesting} deep (deepest bracket nesting plus operators), more than the {max} allowed"
    )]
    TooDeep { nesting: usize, max: usize },

    /// promql-parser's message, or that the parser gave up on the input.
    #[error("the query is not valid PromQL: {0}")]
    Parse(String),

    /// A matcher on `advertiser_id` other than `="<the caller's id>"`: `!=`, `=~`, `!~`, or
    /// another advertiser's id. The gateway adds the caller's own matcher to every selector, so
    /// a selector needs none.
    #[error(
        "`{matcher}`: advertiser_id may only be matched with = and your own id, or not at all (it is added for you)"
    )]
    AdvertiserMatcher { matcher: String },

    /// `{a="1" or b="2"}`: promql-parser accepts it (Prometheus 2.x does not) and prints only the
    /// `or` groups, so a matcher added to the selector would be lost.
    #[error("`{selector}`: `or` between label matchers is not supported")]
    OrMatchers { selector: String },

    /// `{ad_id="7"}` could match any series with that label, not only adclick's.
    #[error(
        "`{selector}` has no metric name: every selector must name one of the series you may query"
    )]
    NoMetricName { selector: String },

    /// `{__name__=~".+"}`, `{__name__!="x"}`, or two names: the name must be one exact name.
    #[error("`{matcher}`: a metric name may only be matched with = and one exact name")]
    NameMatcher { matcher: String },

    #[error("`{name}` is not one of the series you may query")]
    MetricNotAllowed { name: String },

    /// `label_replace`, `label_join` or `count_values` writing `advertiser_id`: the answer would
    /// carry advertiser ids the gateway did not put there (another advertiser's, forged).
    #[error("{function}(…) may not write the advertiser_id label")]
    WritesAdvertiserLabel { function: String },

    /// A function the gateway does not forward (`info`, experimental functions).
    #[error("{name}(…) is not allowed: {why}")]
    FunctionNotAllowed { name: String, why: &'static str },

    /// Something the printer could not reproduce faithfully, or a node promql-parser never
    /// produces from text.
    #[error("{what} is not supported")]
    Unsupported { what: String },

    /// A `tier` matcher other than `="rollup"`, `="stream"` or `!="rollup"`: it could select
    /// both tiers, and their sum counts every click twice (see `tier`).
    #[error(
        "`{matcher}`: tier may only be matched with tier=\"rollup\", tier=\"stream\" or tier!=\"rollup\""
    )]
    TierMatcher { matcher: String },

    /// Selectors naming different tiers where no upstream can answer them together: beside a
    /// selector naming none, in `match[]` of one request, or without a Thanos history upstream.
    #[error(
        "the selectors name different tiers: only a query whose every selector names its tier, sent where Thanos answers it, may mix them"
    )]
    MixedTiers,

    /// A `match[]` parameter that is not a plain series selector.
    #[error("`{selector}` is not a series selector (a metric name with optional label matchers)")]
    NotASeriesSelector { selector: String },

    /// The rewritten query, printed and parsed again, failed the check that every selector
    /// carries exactly the caller's matcher: a bug here or in promql-parser's printer, not the
    /// caller's fault. Nothing is forwarded.
    #[error("the rewritten query failed its check ({detail}); it was not sent")]
    Unverified { detail: String },
}

impl Refusal {
    /// The HTTP status a gateway answers with: 403 for what reaches beyond the caller's series
    /// (issue #21: "a conflicting or widening matcher … is refused with 403"), 400 for a query
    /// that is malformed, too large or unsupported (Prometheus' `bad_data`), 500 for a failed
    /// self-check.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::AdvertiserMatcher { .. }
            | Refusal::NoMetricName { .. }
            | Refusal::NameMatcher { .. }
            | Refusal::MetricNotAllowed { .. }
            | Refusal::WritesAdvertiserLabel { .. }
            | Refusal::FunctionNotAllowed { .. } => 403,
            Refusal::TooLong { .. }
            | Refusal::TooDeep { .. }
            | Refusal::Parse(_)
            | Refusal::OrMatchers { .. }
            | Refusal::Unsupported { .. }
            | Refusal::NotASeriesSelector { .. }
            | Refusal::TierMatcher { .. }
            | Refusal::MixedTiers => 400,
            Refusal::Unverified { .. } => 500,
        }
    }
}
