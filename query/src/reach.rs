//! How far back in time a query reads: what the route (live or history) and the range limit
//! are decided by. A selector reads the lookback delta (an instant vector) or its range (a range
//! vector) before each evaluation time, pushed back by `offset` and by every enclosing subquery's
//! range and offset; `@ <time>` pins it to that time instead.

use std::time::{Duration, SystemTime};

use promql_parser::parser::{AtModifier, Expr, Offset};

/// Prometheus' default `--query.lookback-delta`: how far back an instant vector selector looks.
pub const LOOKBACK_DELTA: Duration = Duration::from_secs(5 * 60);

/// How far back a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reach {
    /// The most any selector reads before an evaluation time.
    pub before_eval: Duration,
    /// The earliest time read by a selector pinned with `@ <time>`, Unix ms.
    pub pinned_from_ms: Option<i64>,
}

impl Reach {
    /// The earliest time read when the query is evaluated from `start_ms` on, Unix ms.
    pub fn from_ms(&self, start_ms: i64) -> i64 {
        let relative = start_ms.saturating_sub(millis(self.before_eval));
        self.pinned_from_ms.map_or(relative, |p| p.min(relative))
    }
}

/// How far back `expr` reads.
pub(crate) fn reach(expr: &Expr) -> Reach {
    let mut out = Reach::default();
    visit(expr, Duration::ZERO, None, &mut out);
    out
}

/// `extra`: what enclosing subqueries add; `pinned`: an enclosing subquery's `@ <time>`.
fn visit(expr: &Expr, extra: Duration, pinned: Option<SystemTime>, out: &mut Reach) {
    match expr {
        Expr::Aggregate(agg) => {
            if let Some(param) = &agg.param {
                visit(param, extra, pinned, out);
            }
            visit(&agg.expr, extra, pinned, out);
        }
        Expr::Unary(unary) => visit(&unary.expr, extra, pinned, out),
        Expr::Binary(binary) => {
            visit(&binary.lhs, extra, pinned, out);
            visit(&binary.rhs, extra, pinned, out);
        }
        Expr::Paren(paren) => visit(&paren.expr, extra, pinned, out),
        Expr::Subquery(sq) => {
            let inner = extra + sq.range + back(&sq.offset);
            visit(&sq.expr, inner, at_time(&sq.at).or(pinned), out);
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        Expr::VectorSelector(vs) => {
            let read = extra + LOOKBACK_DELTA + back(&vs.offset);
            record(read, at_time(&vs.at).or(pinned), out);
        }
        Expr::MatrixSelector(ms) => {
            let read = extra + ms.range + back(&ms.vs.offset);
            record(read, at_time(&ms.vs.at).or(pinned), out);
        }
        Expr::Call(call) => {
            for arg in &call.args.args {
                visit(arg, extra, pinned, out);
            }
        }
    }
}

fn record(read: Duration, pinned: Option<SystemTime>, out: &mut Reach) {
    match pinned {
        Some(at) => {
            let at_ms = at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, millis);
            let from = at_ms.saturating_sub(millis(read));
            out.pinned_from_ms = Some(out.pinned_from_ms.map_or(from, |p| p.min(from)));
        }
        None => out.before_eval = out.before_eval.max(read),
    }
}

/// A positive offset reads further back; a negative one reads later times, not earlier ones.
fn back(offset: &Option<Offset>) -> Duration {
    match offset {
        Some(Offset::Pos(d)) => *d,
        Some(Offset::Neg(_)) | None => Duration::ZERO,
    }
}

/// `@ <time>`; `@ start()` and `@ end()` stay inside the request's own range.
fn at_time(at: &Option<AtModifier>) -> Option<SystemTime> {
    match at {
        Some(AtModifier::At(t)) => Some(*t),
        Some(AtModifier::Start | AtModifier::End) | None => None,
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn of(q: &str) -> Reach {
        reach(&parse(q).unwrap())
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn selectors_ranges_offsets_and_subqueries() {
        assert_eq!(of("1 + 1"), Reach::default());
        assert_eq!(of("a").before_eval, LOOKBACK_DELTA);
        assert_eq!(of("sum_over_time(a[1439m])").before_eval, 1439 * MIN);
        assert_eq!(
            of("a offset 1d + sum_over_time(b[1h])").before_eval,
            24 * 60 * MIN + LOOKBACK_DELTA
        );
        assert_eq!(of("a offset -1h").before_eval, LOOKBACK_DELTA);
        assert_eq!(
            of("max_over_time(sum_over_time(a[1h])[1d:1h] offset 1h)").before_eval,
            (60 + 24 * 60 + 60) * MIN
        );
        assert_eq!(
            of("topk(scalar(sum_over_time(a[30d])), b)").before_eval,
            30 * 24 * 60 * MIN
        );
    }

    #[test]
    fn at_pins_a_selector() {
        let r = of("sum_over_time(a[1h] @ 7200) + b");
        assert_eq!(r.before_eval, LOOKBACK_DELTA);
        assert_eq!(r.pinned_from_ms, Some(3_600_000));
        assert_eq!(r.from_ms(10_000_000), 3_600_000);
        assert_eq!(r.from_ms(1_000_000), 700_000);
        let r = of("max_over_time(a[1h:1m] @ 86400)");
        assert_eq!(r.pinned_from_ms, Some(86_400_000 - 3_600_000 - 300_000));
        assert_eq!(of("a @ start()").before_eval, LOOKBACK_DELTA);
    }
}
