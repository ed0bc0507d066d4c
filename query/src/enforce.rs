//! The entry points: a PromQL query, a series selector, and the caller's own series.

use promql_parser::parser::Expr;

use crate::bounds;
use crate::parse::parse;
use crate::policy::{ADVERTISER_LABEL, Policy};
use crate::reach::{self, Reach};
use crate::refusal::Refusal;
use crate::rewrite::Rewrite;
use crate::tier::{self, Holds, Tier, Tiers};
use crate::verify;

/// The query to forward for `advertiser_id` (`/api/v1/query`, `/api/v1/query_range`): `query`
/// with `advertiser_id="<id>"` on every vector and matrix selector, wherever it stands (functions,
/// aggregations and their parameters, subqueries, binary operations, parentheses, unary minus,
/// under `@` and `offset`), printed by promql-parser. Or why it is refused (see [`Refusal`]).
///
/// In order: the length and the nesting of the raw text are bounded (before parsing); the query
/// is parsed; every node is walked, refusing what cannot be enforced and adding the matcher to
/// every selector; the result is printed, parsed again and checked (`verify`).
///
/// Selector-free expressions (`1+1`, Grafana's health check; `vector(1)`, `time()`) read no
/// series and pass unchanged but for promql-parser's spacing (`1 + 1`).
///
/// `tier` matchers are left as they are; the gateway uses [`prepare_query`] to also make them
/// right for the upstream it picks.
pub fn enforce(query: &str, advertiser_id: u64, policy: &Policy) -> Result<String, Refusal> {
    prepare_query(query, Some(advertiser_id), policy)?.render(policy, None)
}

/// The series selector to forward for `advertiser_id`, for a `match[]` parameter of
/// `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`: `selector` with
/// `advertiser_id="<id>"`, under the same rules as [`enforce`]. Only a plain series selector is
/// accepted (a metric name with optional matchers, no `offset` or `@`), as Prometheus requires
/// there. A request with several `match[]` passes each through this; one without any must not be
/// forwarded as it is (Prometheus would answer for every series): send [`own_series`] instead.
pub fn enforce_match(
    selector: &str,
    advertiser_id: u64,
    policy: &Policy,
) -> Result<String, Refusal> {
    prepare_match(selector, Some(advertiser_id), policy)?.render(policy, None)
}

/// A query or series selector, checked and (for an advertiser) restricted, waiting to be printed
/// for the upstream that will answer it.
#[derive(Debug, Clone)]
pub struct Prepared {
    expr: Expr,
    kind: Kind,
    /// The advertiser it is restricted to; None for an operator's, forwarded unrestricted.
    advertiser: Option<String>,
    /// The tiers its selectors name (see `tier`).
    pub tiers: Tiers,
    /// How far back it reads.
    pub reach: Reach,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Query,
    SeriesSelector,
}

/// A query, bounded and parsed; for `Some(advertiser_id)` restricted as [`enforce`] says, for
/// None (an operator) left as it is. Its tier and reach are read for the route.
pub fn prepare_query(
    query: &str,
    advertiser_id: Option<u64>,
    policy: &Policy,
) -> Result<Prepared, Refusal> {
    bounds::check(query, policy.limits())?;
    let mut expr = parse(query)?;
    let advertiser = advertiser_id.map(|id| id.to_string());
    if let Some(id) = &advertiser {
        Rewrite { id, policy }.expr(&mut expr)?;
    }
    Prepared::new(expr, Kind::Query, advertiser)
}

/// A `match[]` series selector, as [`prepare_query`] and under the rules of [`enforce_match`].
pub fn prepare_match(
    selector: &str,
    advertiser_id: Option<u64>,
    policy: &Policy,
) -> Result<Prepared, Refusal> {
    bounds::check(selector, policy.limits())?;
    let expr = parse(selector)?;
    let mut vs = match expr {
        Expr::VectorSelector(vs) if vs.offset.is_none() && vs.at.is_none() => vs,
        // Listed without a wildcard, as in `rewrite`: a new variant fails to compile.
        Expr::VectorSelector(_)
        | Expr::Aggregate(_)
        | Expr::Unary(_)
        | Expr::Binary(_)
        | Expr::Paren(_)
        | Expr::Subquery(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::MatrixSelector(_)
        | Expr::Call(_)
        | Expr::Extension(_) => {
            return Err(Refusal::NotASeriesSelector {
                selector: selector.to_string(),
            });
        }
    };
    let advertiser = advertiser_id.map(|id| id.to_string());
    if let Some(id) = &advertiser {
        Rewrite { id, policy }.selector(&mut vs)?;
    }
    Prepared::new(Expr::VectorSelector(vs), Kind::SeriesSelector, advertiser)
}

impl Prepared {
    fn new(expr: Expr, kind: Kind, advertiser: Option<String>) -> Result<Prepared, Refusal> {
        Ok(Prepared {
            tiers: tier::query_tiers(&expr)?,
            reach: reach::reach(&expr),
            expr,
            kind,
            advertiser,
        })
    }

    /// The text to forward: with `Some((tier, upstream))` its tier matchers first made right for
    /// an upstream holding `upstream` (`tier::place`; `tier` is the route's); printed, and for an advertiser parsed again and checked (`verify`) against `policy`
    /// (the one it was prepared with).
    pub fn render(
        mut self,
        policy: &Policy,
        placement: Option<(Tier, Holds)>,
    ) -> Result<String, Refusal> {
        if let Some((tier, upstream)) = placement {
            tier::place(&mut self.expr, tier, upstream)?;
        }
        let printed = self.expr.to_string();
        if let Some(id) = &self.advertiser {
            match self.kind {
                Kind::Query => verify::query(&printed, id, policy)?,
                Kind::SeriesSelector => verify::series_selector(&printed, id, policy)?,
            }
        }
        Ok(printed)
    }
}

/// One series selector per allowed metric, restricted to `advertiser_id`
/// (`adclick_clicks{advertiser_id="42"}`): the `match[]` parameters to send for a `series`,
/// `labels` or `label/<name>/values` request that came without any, so that the answer holds only
/// the caller's series and label values.
pub fn own_series(advertiser_id: u64, policy: &Policy) -> Vec<String> {
    policy
        .metrics()
        .map(|m| format!("{m}{{{ADVERTISER_LABEL}=\"{advertiser_id}\"}}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_series_are_valid_enforced_selectors() {
        let policy = Policy::default();
        let all = own_series(42, &policy);
        assert_eq!(all.len(), policy.metrics().count());
        for s in &all {
            assert_eq!(enforce_match(s, 42, &policy).as_ref(), Ok(s));
        }
    }
}
