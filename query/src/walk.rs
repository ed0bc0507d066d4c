//! Every vector selector of a parsed query, reached by one exhaustive walk (read-only and
//! mutable): those of matrix selectors, subqueries, function arguments and aggregation parameters
//! included. promql-parser's own walkers skip aggregation parameters (see `rewrite`), so the
//! checks and placements after the rewrite use this instead.

use promql_parser::parser::{Expr, VectorSelector};

use crate::refusal::Refusal;

/// Calls `f` on every vector selector of `expr`. Every variant is matched, without a wildcard:
/// a variant added by a later promql-parser fails to compile here.
pub(crate) fn selectors(
    expr: &Expr,
    f: &mut dyn FnMut(&VectorSelector) -> Result<(), Refusal>,
) -> Result<(), Refusal> {
    match expr {
        Expr::Aggregate(agg) => {
            if let Some(param) = &agg.param {
                selectors(param, f)?;
            }
            selectors(&agg.expr, f)
        }
        Expr::Unary(unary) => selectors(&unary.expr, f),
        Expr::Binary(binary) => {
            selectors(&binary.lhs, f)?;
            selectors(&binary.rhs, f)
        }
        Expr::Paren(paren) => selectors(&paren.expr, f),
        Expr::Subquery(subquery) => selectors(&subquery.expr, f),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => f(vs),
        Expr::MatrixSelector(ms) => f(&ms.vs),
        Expr::Call(call) => call.args.args.iter().try_for_each(|a| selectors(a, f)),
        Expr::Extension(_) => Err(Refusal::Unsupported {
            what: "an extension node".into(),
        }),
    }
}

/// As [`selectors`], with each selector given to `f` to change.
pub(crate) fn selectors_mut(
    expr: &mut Expr,
    f: &mut dyn FnMut(&mut VectorSelector) -> Result<(), Refusal>,
) -> Result<(), Refusal> {
    match expr {
        Expr::Aggregate(agg) => {
            if let Some(param) = agg.param.as_deref_mut() {
                selectors_mut(param, f)?;
            }
            selectors_mut(&mut agg.expr, f)
        }
        Expr::Unary(unary) => selectors_mut(&mut unary.expr, f),
        Expr::Binary(binary) => {
            selectors_mut(&mut binary.lhs, f)?;
            selectors_mut(&mut binary.rhs, f)
        }
        Expr::Paren(paren) => selectors_mut(&mut paren.expr, f),
        Expr::Subquery(subquery) => selectors_mut(&mut subquery.expr, f),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => f(vs),
        Expr::MatrixSelector(ms) => f(&mut ms.vs),
        Expr::Call(call) => call
            .args
            .args
            .iter_mut()
            .try_for_each(|a| selectors_mut(a, f)),
        Expr::Extension(_) => Err(Refusal::Unsupported {
            what: "an extension node".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    #[test]
    fn every_selector_is_reached_once() {
        let q = "topk(scalar(sum(a)), b) + sum_over_time(c[5m]) or max_over_time(d[1h:1m]) - -(e)";
        let mut expr = parse(q).unwrap();
        let mut seen = Vec::new();
        selectors(&expr, &mut |vs| {
            seen.push(vs.name.clone().unwrap());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
        let mut count = 0;
        selectors_mut(&mut expr, &mut |vs| {
            vs.name = Some(format!("x{count}"));
            count += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(
            expr.to_string(),
            "topk(scalar(sum(x0)), x1) + sum_over_time(x2[5m]) or max_over_time(x3[1h:1m]) - -(x4)"
        );
    }
}
