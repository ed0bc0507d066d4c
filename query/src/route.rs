//! Which upstream answers a query: the live Prometheus or the history upstream (Thanos Query, or
//! a Prometheus holding only rollup blocks), decided by the tier the query names and how far
//! back it reads; and how the tier is then said to that upstream (`tier::place`).
//!
//! | the query names | reads only the last `live_retention_ms` | reads further back |
//! |---|---|---|
//! | `tier="rollup"` | history | history |
//! | `tier="stream"` or `tier!="rollup"` | live | history if it is Thanos (which serves the stream's old blocks), else live |
//! | no tier | live, as the stream tier | history, as the rollup tier |
//! | both tiers, every selector naming its own | history if it is Thanos, else refused | the same |
//!
//! Without a history upstream everything goes to the live Prometheus, where `tier="rollup"`
//! truthfully matches nothing.

use std::time::Duration;

use serde::Deserialize;

use crate::refusal::Refusal;
use crate::tier::{Holds, Tier, Tiers};

/// What the history upstream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryKind {
    /// Thanos Query over the stream's sidecar and the rollup's blocks: both tiers.
    #[default]
    Thanos,
    /// A Prometheus serving only the rollup's blocks (no `tier` label in its series).
    Prometheus,
}

/// The upstreams there are, for the route to choose from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routing {
    /// None without a history upstream.
    pub history: Option<HistoryKind>,
    /// How far back the live Prometheus holds data.
    pub live_retention: Duration,
}

/// Which upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Live,
    History,
}

impl Target {
    /// How the audit log names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Live => "live",
            Target::History => "history",
        }
    }
}

/// Where a query goes and the tier it reads there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub target: Target,
    pub tier: Tier,
    /// What `target` holds: how `tier` is said to it.
    pub holds: Holds,
}

impl Routing {
    /// The route of a query naming `tiers` whose earliest read is `reads_from_ms`, at `now_ms`;
    /// refused when it names both tiers and there is no Thanos to answer it.
    pub fn route(&self, tiers: Tiers, reads_from_ms: i64, now_ms: i64) -> Result<Route, Refusal> {
        let tier = match tiers {
            Tiers::Unnamed => None,
            Tiers::One(tier) => Some(tier),
            // Every selector names its tier: placing adds nothing, Thanos matches each.
            Tiers::Both if self.history == Some(HistoryKind::Thanos) => {
                return Ok(Route {
                    target: Target::History,
                    tier: Tier::Rollup,
                    holds: Holds::BothTiers,
                });
            }
            Tiers::Both => return Err(Refusal::MixedTiers),
        };
        let retention_ms = i64::try_from(self.live_retention.as_millis()).unwrap_or(i64::MAX);
        let live_only = reads_from_ms >= now_ms.saturating_sub(retention_ms);
        let live = |tier| Route {
            target: Target::Live,
            tier,
            holds: Holds::Only(Tier::Stream),
        };
        let history = |tier, kind| Route {
            target: Target::History,
            tier,
            holds: match kind {
                HistoryKind::Thanos => Holds::BothTiers,
                HistoryKind::Prometheus => Holds::Only(Tier::Rollup),
            },
        };
        Ok(match (tier, self.history) {
            (Some(Tier::Rollup), Some(kind)) => history(Tier::Rollup, kind),
            (Some(Tier::Stream), Some(HistoryKind::Thanos)) if !live_only => {
                history(Tier::Stream, HistoryKind::Thanos)
            }
            (None, Some(kind)) if !live_only => history(Tier::Rollup, kind),
            (Some(tier), _) => live(tier),
            (None, _) => live(Tier::Stream),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;
    const NOW: i64 = 100 * DAY_MS;

    fn routing(history: Option<HistoryKind>) -> Routing {
        Routing {
            history,
            live_retention: Duration::from_secs(15 * 86_400),
        }
    }

    fn target(r: &Routing, tier: Option<Tier>, days_back: i64) -> (Target, Tier, Holds) {
        let tiers = tier.map_or(Tiers::Unnamed, Tiers::One);
        let route = r.route(tiers, NOW - days_back * DAY_MS, NOW).unwrap();
        (route.target, route.tier, route.holds)
    }

    #[test]
    fn the_table_of_the_module_doc() {
        use HistoryKind::{Prometheus, Thanos};
        use Target::{History, Live};
        use Tier::{Rollup, Stream};
        let both = Holds::BothTiers;
        let live = Holds::Only(Stream);
        let rollups = Holds::Only(Rollup);
        let thanos = routing(Some(Thanos));
        assert_eq!(target(&thanos, Some(Rollup), 1), (History, Rollup, both));
        assert_eq!(target(&thanos, Some(Rollup), 30), (History, Rollup, both));
        assert_eq!(target(&thanos, Some(Stream), 1), (Live, Stream, live));
        assert_eq!(target(&thanos, Some(Stream), 30), (History, Stream, both));
        assert_eq!(target(&thanos, None, 15), (Live, Stream, live));
        assert_eq!(target(&thanos, None, 16), (History, Rollup, both));
        let prometheus = routing(Some(Prometheus));
        assert_eq!(
            target(&prometheus, Some(Rollup), 1),
            (History, Rollup, rollups)
        );
        assert_eq!(target(&prometheus, Some(Stream), 30), (Live, Stream, live));
        assert_eq!(target(&prometheus, None, 30), (History, Rollup, rollups));
        let none = routing(None);
        assert_eq!(target(&none, Some(Rollup), 1), (Live, Rollup, live));
        assert_eq!(target(&none, None, 300), (Live, Stream, live));
        // Both tiers: Thanos only.
        let both_at = |r: &Routing| r.route(Tiers::Both, NOW - DAY_MS, NOW);
        assert_eq!(
            both_at(&thanos).map(|r| (r.target, r.holds)),
            Ok((History, Holds::BothTiers))
        );
        assert_eq!(both_at(&prometheus), Err(Refusal::MixedTiers));
        assert_eq!(both_at(&none), Err(Refusal::MixedTiers));
    }
}
