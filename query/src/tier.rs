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
//! adding them would count every click twice: refused. A query whose selectors name different
//! tiers (the dashboard's "settled minus live") is answered only by Thanos, which holds both, and
//! only when every one of its selectors names its tier.

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

/// The tier one selector names, if any. Several tier matchers must each name a tier, and the
/// same one (`tier="stream", tier!="rollup"`); a contradiction would match nothing anywhere but
/// says nothing clear about what was meant, so it is refused too.
fn selector_tier(vs: &VectorSelector) -> Result<Option<Tier>, Refusal> {
    let mut named = None;
    for m in vs.matchers.matchers.iter().filter(|m| m.name == TIER_LABEL) {
        let tier = match (&m.op, m.value.as_str()) {
            (MatchOp::Equal, "rollup") => Tier::Rollup,
            (MatchOp::Equal, "stream") | (MatchOp::NotEqual, "rollup") => Tier::Stream,
            _ => {
                return Err(Refusal::TierMatcher {
                    matcher: m.to_string(),
                });
            }
        };
        match named {
            Some(other) if other != tier => {
                return Err(Refusal::TierMatcher {
                    matcher: m.to_string(),
                });
            }
            _ => named = Some(tier),
        }
    }
    Ok(named)
}

/// The tiers a query's selectors name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tiers {
    /// None names a tier: the route decides.
    Unnamed,
    /// Those that name one name this one (the others read it too).
    One(Tier),
    /// Some name the stream, some the rollup, and every selector names one.
    Both,
}

impl Tiers {
    /// The tiers of several selectors together (`match[]` of one request).
    pub fn and(self, other: Tiers) -> Result<Tiers, Refusal> {
        match (self, other) {
            (Tiers::Unnamed, t) | (t, Tiers::Unnamed) => Ok(t),
            (Tiers::One(a), Tiers::One(b)) if a == b => Ok(Tiers::One(a)),
            // Series metadata of two tiers at once: one upstream answers a request.
            _ => Err(Refusal::MixedTiers),
        }
    }
}

/// The tiers `expr`'s selectors name; refused when one names them in a way that could select
/// both, or when two name different tiers and another names none.
pub(crate) fn query_tiers(expr: &Expr) -> Result<Tiers, Refusal> {
    let (mut stream, mut rollup, mut unnamed) = (false, false, false);
    selectors(expr, &mut |vs| {
        match selector_tier(vs)? {
            None => unnamed = true,
            Some(Tier::Stream) => stream = true,
            Some(Tier::Rollup) => rollup = true,
        }
        Ok(())
    })?;
    match (stream, rollup, unnamed) {
        (false, false, _) => Ok(Tiers::Unnamed),
        (true, false, _) => Ok(Tiers::One(Tier::Stream)),
        (false, true, _) => Ok(Tiers::One(Tier::Rollup)),
        (true, true, false) => Ok(Tiers::Both),
        (true, true, true) => Err(Refusal::MixedTiers),
    }
}

/// Makes every selector of `expr` (whose tiers were checked by [`query_tiers`]; `tier` is the
/// route's) say its tier as `upstream` understands it: to Thanos, a selector without a tier
/// matcher gets one (without it Thanos would add both tiers); to a Prometheus holding `tier`,
/// `tier="<it>"` is removed (it has no such label: the matcher would match nothing), while
/// `tier!="rollup"` stays (it matches every series of a Prometheus without the label). A
/// Prometheus holding the other tier keeps them, and truthfully answers nothing.
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
                vs.matchers
                    .matchers
                    .retain(|m| !(m.name == TIER_LABEL && m.op == MatchOp::Equal));
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

    fn tier_of(q: &str) -> Result<Tiers, Refusal> {
        query_tiers(&parse(q).unwrap())
    }

    #[test]
    fn the_dashboards_matchers_name_a_tier() {
        assert_eq!(tier_of(r#"a{tier="rollup"}"#), Ok(Tiers::One(Tier::Rollup)));
        assert_eq!(tier_of(r#"a{tier="stream"}"#), Ok(Tiers::One(Tier::Stream)));
        assert_eq!(
            tier_of(r#"sum(a{tier!="rollup"}) / sum(b)"#),
            Ok(Tiers::One(Tier::Stream))
        );
        assert_eq!(tier_of("a + 1"), Ok(Tiers::Unnamed));
        assert_eq!(
            tier_of(r#"a{tier!="rollup", tier="stream", tier!="rollup"}"#),
            Ok(Tiers::One(Tier::Stream))
        );
        assert_eq!(tier_of("1 + 1"), Ok(Tiers::Unnamed));
        // The advertiser dashboard's "settled minus live".
        assert_eq!(
            tier_of(r#"sum(a{tier="rollup"}) - sum(a{tier!="rollup"})"#),
            Ok(Tiers::Both)
        );
    }

    #[test]
    fn matchers_that_could_select_both_tiers_are_refused() {
        for q in [
            r#"a{tier=~"rollup|stream"}"#,
            r#"a{tier=~".*"}"#,
            r#"a{tier!~"x"}"#,
            r#"a{tier!="stream"}"#,
            r#"a{tier="other"}"#,
            r#"a{tier="rollup", tier!="rollup"}"#,
        ] {
            assert!(
                matches!(tier_of(q), Err(Refusal::TierMatcher { .. })),
                "{q}"
            );
        }
        assert_eq!(
            tier_of(r#"a{tier="rollup"} - a{tier="stream"} + a"#),
            Err(Refusal::MixedTiers)
        );
        assert_eq!(
            tier_of(r#"topk(scalar(a{tier="stream"}), a{tier="rollup"} or b)"#),
            Err(Refusal::MixedTiers)
        );
        let one = Tiers::One(Tier::Rollup);
        assert_eq!(Tiers::Unnamed.and(one), Ok(one));
        assert_eq!(one.and(Tiers::One(Tier::Stream)), Err(Refusal::MixedTiers));
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
            placed(r#"sum(a{tier="stream", x="1"})"#, Tier::Stream, live),
            r#"sum(a{x="1"})"#
        );
        assert_eq!(
            placed(r#"sum(a{tier!="rollup"})"#, Tier::Stream, live),
            r#"sum(a{tier!="rollup"})"#
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
