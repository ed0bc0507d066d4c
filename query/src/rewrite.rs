//! The walk over every node of a parsed query that refuses what cannot be enforced and puts
//! `advertiser_id="<id>"` on every vector and matrix selector.
//!
//! promql-parser's own walkers (`util::visitor::walk_expr` and `walk_expr_mut`) are not used:
//! their `Expr::Aggregate` arm visits only `expr`, never `param`, so the selector in
//! `topk(scalar(sum(adclick_clicks)), adclick_clicks)`'s parameter would escape (prom-label-proxy's
//! `EnforceNode` has the same gap). This walk matches every `Expr` variant without a wildcard, so
//! a variant added by a later promql-parser fails to compile here instead of slipping through.
//! It recurses; the depth is bounded by `bounds::check` before parsing.

use std::time::{Duration, SystemTime};

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::token::T_COUNT_VALUES;
use promql_parser::parser::{AtModifier, Call, Expr, Offset, VectorSelector};

use crate::policy::{ADVERTISER_LABEL, METRIC_NAME_LABEL, Policy};
use crate::refusal::Refusal;

/// One advertiser's rewrite.
pub(crate) struct Rewrite<'a> {
    /// The advertiser's id as the exporter writes it (decimal).
    pub(crate) id: &'a str,
    pub(crate) policy: &'a Policy,
}

impl Rewrite<'_> {
    pub(crate) fn expr(&self, expr: &mut Expr) -> Result<(), Refusal> {
        match expr {
            Expr::Aggregate(agg) => {
                if let Some(param) = agg.param.as_deref_mut() {
                    // count_values("label", v) writes each value into a label of that name.
                    if agg.op.id() == T_COUNT_VALUES {
                        destination_label("count_values", param)?;
                    }
                    self.expr(param)?;
                }
                self.expr(&mut agg.expr)
            }
            Expr::Unary(unary) => self.expr(&mut unary.expr),
            Expr::Binary(binary) => {
                // Matching modifiers (`on`, `ignoring`, `group_left`) only pick labels of series
                // both sides already selected, and both sides are restricted here.
                self.expr(&mut binary.lhs)?;
                self.expr(&mut binary.rhs)
            }
            Expr::Paren(paren) => self.expr(&mut paren.expr),
            Expr::Subquery(subquery) => {
                at_modifier(&subquery.at)?;
                offset(&subquery.offset)?;
                whole_milliseconds(&subquery.range)?;
                if let Some(step) = &subquery.step {
                    whole_milliseconds(step)?;
                }
                self.expr(&mut subquery.expr)
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
            Expr::VectorSelector(vs) => self.selector(vs),
            Expr::MatrixSelector(ms) => {
                whole_milliseconds(&ms.range)?;
                self.selector(&mut ms.vs)
            }
            Expr::Call(call) => {
                function_allowed(call)?;
                for arg in &mut call.args.args {
                    self.expr(arg)?;
                }
                Ok(())
            }
            // promql-parser never builds one from text; nothing to enforce it by.
            Expr::Extension(_) => Err(Refusal::Unsupported {
                what: "an extension node".into(),
            }),
        }
    }

    /// Restricts one selector: one allowed metric name, no `advertiser_id` matcher but the
    /// caller's own (dropped, then added once), no `or` groups.
    pub(crate) fn selector(&self, vs: &mut VectorSelector) -> Result<(), Refusal> {
        // promql-parser's `Matchers` Display prints only `or_matchers` when there are any
        // (`src/label/matcher.rs`), so a matcher pushed to `matchers` would not be printed.
        if !vs.matchers.or_matchers.is_empty() {
            return Err(Refusal::OrMatchers {
                selector: vs.to_string(),
            });
        }
        at_modifier(&vs.at)?;
        offset(&vs.offset)?;

        // The name before the braces, or one `__name__="…"` matcher (what `{"name"}` parses
        // to). The parser refuses both at once ("metric name must not be set twice").
        let mut names = vs
            .matchers
            .matchers
            .iter()
            .filter(|m| m.name == METRIC_NAME_LABEL);
        let name = match (&vs.name, names.next(), names.next()) {
            (Some(name), None, _) => name.clone(),
            (None, Some(m), None) if m.op == MatchOp::Equal => m.value.clone(),
            (None, None, _) => {
                return Err(Refusal::NoMetricName {
                    selector: vs.to_string(),
                });
            }
            (_, Some(m), _) => {
                return Err(Refusal::NameMatcher {
                    matcher: m.to_string(),
                });
            }
        };
        if !self.policy.allows(&name) {
            return Err(Refusal::MetricNotAllowed { name });
        }

        // Refused, not replaced: `!=`, `=~`, `!~` or another id say the caller meant other
        // advertisers' series, and answering with their own would hide that.
        if let Some(m) =
            vs.matchers.matchers.iter().find(|m| {
                m.name == ADVERTISER_LABEL && !(m.op == MatchOp::Equal && m.value == self.id)
            })
        {
            return Err(Refusal::AdvertiserMatcher {
                matcher: m.to_string(),
            });
        }

        vs.matchers
            .matchers
            .retain(|m| m.name != ADVERTISER_LABEL && m.name != METRIC_NAME_LABEL);
        vs.matchers
            .matchers
            .push(Matcher::new(MatchOp::Equal, ADVERTISER_LABEL, self.id));
        // `name` is an allowed name, and `Policy` only holds plain metric names: printed as is.
        vs.name = Some(name);
        Ok(())
    }
}

/// `@ <time>` before 1970 is printed as `@ 0.000` by promql-parser (`AtModifier`'s Display falls
/// back to zero): refused rather than sent as another query.
fn at_modifier(at: &Option<AtModifier>) -> Result<(), Refusal> {
    match at {
        Some(AtModifier::At(t)) if t.duration_since(SystemTime::UNIX_EPOCH).is_err() => {
            Err(Refusal::Unsupported {
                what: "an @ time before 1970".into(),
            })
        }
        Some(AtModifier::At(_) | AtModifier::Start | AtModifier::End) | None => Ok(()),
    }
}

fn offset(offset: &Option<Offset>) -> Result<(), Refusal> {
    match offset {
        Some(Offset::Pos(d) | Offset::Neg(d)) => whole_milliseconds(d),
        None => Ok(()),
    }
}

/// promql-parser prints durations in whole milliseconds, truncating (`display_duration`):
/// `[1.0005]` would be sent as `[1s]`, and `[0.0001]` as `[]`, which does not parse. Refused
/// rather than sent as another query.
fn whole_milliseconds(d: &Duration) -> Result<(), Refusal> {
    if d.subsec_nanos() % 1_000_000 == 0 {
        Ok(())
    } else {
        Err(Refusal::Unsupported {
            what: format!("a duration that is not a whole number of milliseconds ({d:?})"),
        })
    }
}

/// Functions that reach beyond the selectors of the query, or write the enforced label.
fn function_allowed(call: &Call) -> Result<(), Refusal> {
    let name = call.func.name;
    if name == "info" {
        // info(v, {…}) joins in target_info (or whatever its second argument names), series no
        // selector of the query is restricted to.
        return Err(Refusal::FunctionNotAllowed {
            name: name.into(),
            why: "it reads series (target_info) beyond the selectors of the query",
        });
    }
    if call.func.experimental {
        // Behind a feature flag upstream (Prometheus 2.x has none of them), and new functions
        // start here: one that reads series implicitly, as info does, would arrive this way.
        return Err(Refusal::FunctionNotAllowed {
            name: name.into(),
            why: "experimental functions are not forwarded",
        });
    }
    // label_replace(v, dst, replacement, src, regex) and label_join(v, dst, separator, src...):
    // the destination is the second argument.
    if name == "label_replace" || name == "label_join" {
        if let Some(dst) = call.args.args.get(1) {
            destination_label(name, dst)?;
        }
    }
    Ok(())
}

/// Refuses a label-writing function whose destination label is `advertiser_id`. Allowed
/// otherwise: renaming or joining labels of the caller's own series is ordinary dashboard work;
/// only rewriting `advertiser_id` would let an answer show ids the gateway did not put there.
fn destination_label(function: &str, arg: &Expr) -> Result<(), Refusal> {
    match string_literal(arg) {
        Some(label) if label == ADVERTISER_LABEL => Err(Refusal::WritesAdvertiserLabel {
            function: function.into(),
        }),
        Some(_) => Ok(()),
        // The grammar types the argument as a string, and only literals are strings in PromQL.
        None => Err(Refusal::Unsupported {
            what: format!("a label name in {function}(…) that is not a string literal"),
        }),
    }
}

/// The value of a string literal, through any parentheses around it.
fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::StringLiteral(s) => Some(&s.val),
        Expr::Paren(p) => string_literal(&p.expr),
        _ => None,
    }
}
