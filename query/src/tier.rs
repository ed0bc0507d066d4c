//! Which tier of clicks a query reads — the stream's live minutes or the rollup's settled ones —
//! told by its `tier` matchers, and those matchers made right for the upstream that answers.
//!
//! `tier` is an external label: the stream's Prometheus has `tier="stream"` and the rollup's
//! blocks carry `tier="rollup"` in their Thanos metadata (README, "Tiers"). Thanos Query matches
//! external labels like any other, so it keeps them apart; a Prometheus stores none of them, so
//! there `adclick_clicks{tier="stream"}` matches nothing even on the stream's own Prometheus.
//!
//! A query says its tier with one of three matchers, the ones the dashboards use:
//!
//! | matcher | tier |
//! |---|---|
//! | `tier="rollup"` | rollup (settled, billing) |
//! | `tier="stream"`, `tier!="rollup"` | stream (live) |
//! | none | decided by the route (`route`): the stream while the range is live, else the rollup |
//!
//! Any other matcher on `tier` (`=~`, `!~`, another value) could select both tiers at once, and
//! adding them would count every click twice: refused, as is a query whose selectors name
//! different tiers.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{Expr, VectorSelector};

use crate::refusal::Refusal;
use crate::walk::{selectors, selectors_mut};

/// The label that tells the tiers apart.
pub const TIER_LABEL: &str = "tier";

/// A tier of clicks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// The exporter's live minutes in Prometheus (`tier="stream"`).
    Stream,
    /// The rollup's settled minutes, the billing figures (`tier="rollup"`).
    Rollup,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Stream => "stream",
            Tier::Rollup => "rollup",
        }
    }
}

/// What an upstream holds, and so how a tier is said to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// Thanos Query: both tiers, told apart by their `tier` external label, which it matches.
    BothTiers,
    /// A Prometheus: one tier, and no `tier` label in its series.
    Only(Tier),
}

/// The tier one selector names, if any.
fn selector_tier(vs: &VectorSelector) -> Result<Option<Tier>, Refusal> {
    let mut matchers = vs.matchers.matchers.iter().filter(|m| m.name == TIER_LABEL);
    let (Some(m), None) = (matchers.next(), matchers.next()) else {
        return match vs.matchers.matchers.iter().find(|m| m.name == TIER_LABEL) {
            None => Ok(None),
            Some(m) => Err(Refusal::TierMatcher {
                matcher: m.to_string(),
            }),
        };
    };
    match (&m.op, m.value.as_str()) {
        (MatchOp::Equal, "rollup") => Ok(Some(Tier::Rollup)),
        (MatchOp::Equal, "stream") | (MatchOp::NotEqual, "rollup") => Ok(Some(Tier::Stream)),
        _ => Err(Refusal::TierMatcher {
            matcher: m.to_string(),
        }),
    }
}

/// The tier `expr`'s selectors name: None when none names one; refused when two name different
/// tiers or one names them in a way that could select both.
pub(crate) fn query_tier(expr: &Expr) -> Result<Option<Tier>, Refusal> {
    let mut found: Option<Tier> = None;
    selectors(expr, &mut |vs| {
        match (found, selector_tier(vs)?) {
            (_, None) => {}
            (None, Some(t)) => found = Some(t),
            (Some(a), Some(b)) if a == b => {}
            (Some(_), Some(_)) => return Err(Refusal::MixedTiers),
        }
        Ok(())
    })?;
    Ok(found)
}

/// Makes every selector of `expr` (whose tier is `tier`, checked by [`query_tier`]) say that tier
/// as `upstream` understands it: to Thanos, a selector without a tier matcher gets one (without
/// it Thanos would add both tiers); to a Prometheus holding `tier`, matchers naming it are
/// removed (it has no such label, they would match nothing). A Prometheus holding the other tier
/// keeps them, and truthfully answers nothing.
pub(crate) fn place(expr: &mut Expr, tier: Tier, upstream: Holds) -> Result<(), Refusal> {
    selectors_mut(expr, &mut |vs| {
        let named = selector_tier(vs)?;
        match upstream {
            Holds::BothTiers if named.is_none() => vs.matchers.matchers.push(match tier {
                Tier::Rollup => Matcher::new(MatchOp::Equal, TIER_LABEL, "rollup"),
                Tier::Stream => Matcher::new(MatchOp::NotEqual, TIER_LABEL, "rollup"),
            }),
            Holds::BothTiers => {}
            Holds::Only(held) if named == Some(held) => {
                vs.matchers.matchers.retain(|m| m.name != TIER_LABEL);
            }
            Holds::Only(_) => {}
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn tier_of(q: &str) -> Result<Option<Tier>, Refusal> {
        query_tier(&parse(q).unwrap())
    }

    #[test]
    fn the_dashboards_matchers_name_a_tier() {
        assert_eq!(tier_of(r#"a{tier="rollup"}"#), Ok(Some(Tier::Rollup)));
        assert_eq!(tier_of(r#"a{tier="stream"}"#), Ok(Some(Tier::Stream)));
        assert_eq!(
            tier_of(r#"sum(a{tier!="rollup"}) / sum(b)"#),
            Ok(Some(Tier::Stream))
        );
        assert_eq!(tier_of("a + 1"), Ok(None));
        assert_eq!(tier_of("1 + 1"), Ok(None));
    }

    #[test]
    fn matchers_that_could_select_both_tiers_are_refused() {
        for q in [
            r#"a{tier=~"rollup|stream"}"#,
            r#"a{tier=~".*"}"#,
            r#"a{tier!~"x"}"#,
            r#"a{tier!="stream"}"#,
            r#"a{tier="other"}"#,
            r#"a{tier="rollup", tier="rollup"}"#,
        ] {
            assert!(
                matches!(tier_of(q), Err(Refusal::TierMatcher { .. })),
                "{q}"
            );
        }
        assert_eq!(
            tier_of(r#"a{tier="rollup"} - a{tier="stream"}"#),
            Err(Refusal::MixedTiers)
        );
        assert_eq!(
            tier_of(r#"topk(scalar(a{tier="stream"}), a{tier="rollup"})"#),
            Err(Refusal::MixedTiers)
        );
    }

    fn placed(q: &str, tier: Tier, upstream: Holds) -> String {
        let mut e = parse(q).unwrap();
        place(&mut e, tier, upstream).unwrap();
        e.to_string()
    }

    #[test]
    fn placing_the_tier_for_each_upstream() {
        let thanos = Holds::BothTiers;
        assert_eq!(
            placed("sum(a) + max_over_time(b[5m:1m])", Tier::Rollup, thanos),
            r#"sum(a{tier="rollup"}) + max_over_time(b{tier="rollup"}[5m:1m])"#
        );
        assert_eq!(
            placed(r#"sum(a{tier="stream"}) + b"#, Tier::Stream, thanos),
            r#"sum(a{tier="stream"}) + b{tier!="rollup"}"#
        );
        let live = Holds::Only(Tier::Stream);
        assert_eq!(
            placed(r#"sum(a{tier!="rollup", x="1"})"#, Tier::Stream, live),
            r#"sum(a{x="1"})"#
        );
        assert_eq!(
            placed(r#"a{tier="rollup"}"#, Tier::Rollup, live),
            r#"a{tier="rollup"}"#
        );
        let history = Holds::Only(Tier::Rollup);
        assert_eq!(placed(r#"a{tier="rollup"}"#, Tier::Rollup, history), "a");
        assert_eq!(placed("a", Tier::Rollup, history), "a");
    }
}
