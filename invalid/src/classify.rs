//! The rules applied: [`classify()`] for ingest (everything at once, or [`classify_request`] before
//! Redis and [`classify_activity`] after), [`settle`] for the rollup. Pure functions of their
//! arguments: no clock, no I/O, no state.

use crate::facts::{ActivityFacts, Facts, RequestFacts};
use crate::reason::{Reason, Verdict};
use crate::rules::Rules;

/// Ingest's verdict on one click: the first rule that matches in [`Reason::PRECEDENCE`] order.
pub fn classify(facts: &Facts<'_>, rules: &Rules) -> Verdict {
    classify_request(&facts.request, rules)
        .or_else(|| classify_activity(&facts.activity, rules))
        .into()
}

/// The per-request rules (`prefetch`, `bot_user_agent`, `deny_listed_network`, in that order).
/// Ingest calls this before Redis: a click invalid here claims no impression and counts towards
/// no velocity.
pub fn classify_request(request: &RequestFacts<'_>, rules: &Rules) -> Option<Reason> {
    if request.is_prefetch() {
        Some(Reason::Prefetch)
    } else if rules.is_bot(request.user_agent) {
        Some(Reason::BotUserAgent)
    } else if rules.deny_list().contains(request.client_ip) {
        Some(Reason::DenyListedNetwork)
    } else {
        None
    }
}

/// The activity rules (`too_fast`, `user_velocity`, `ip_velocity`, in that order), from facts
/// ingest and the rollup both have. A count of `None` never fires its rule.
pub fn classify_activity(activity: &ActivityFacts, rules: &Rules) -> Option<Reason> {
    let limits = &rules.limits;
    let v = &activity.velocity;
    if is_too_fast(activity, limits.too_fast_ms) {
        Some(Reason::TooFast)
    } else if over(v.user_clicks_in_second, limits.user_per_second)
        || over(v.user_clicks_in_minute, limits.user_per_minute)
    {
        Some(Reason::UserVelocity)
    } else if over(v.ip_clicks_in_second, limits.ip_per_second)
        || over(v.ip_clicks_in_minute, limits.ip_per_minute)
    {
        Some(Reason::IpVelocity)
    } else {
        None
    }
}

/// The rollup's verdict on an archived click: the per-request reason ingest recorded stands (the
/// rollup does not have the request), and the activity rules are decided again from `activity`,
/// with velocity counted over the settled day. Where this differs from the recorded verdict, the
/// live one was wrong (a counter failed open, a repeat slipped through) and the reconciliation
/// reports it. Settling a verdict with the facts it was made from gives it back.
pub fn settle(recorded: Verdict, activity: &ActivityFacts, rules: &Rules) -> Verdict {
    match recorded.reason() {
        Some(reason) if reason.is_per_request() => Verdict::Invalid(reason),
        _ => classify_activity(activity, rules).into(),
    }
}

/// Received sooner than `limit_ms` after the token's issue (a click before it, by the two clocks,
/// too). An issue or receive time of 0 is unknown (click.proto): the rule does not fire. Wide
/// arithmetic: no input overflows.
fn is_too_fast(activity: &ActivityFacts, limit_ms: u64) -> bool {
    if limit_ms == 0 || activity.token_issued_at_secs == 0 || activity.received_at_ms <= 0 {
        return false;
    }
    let issued_ms = i128::from(activity.token_issued_at_secs) * 1000;
    let elapsed_ms = i128::from(activity.received_at_ms) - issued_ms;
    elapsed_ms < i128::from(limit_ms)
}

/// More than `limit` (0: the rule is off), when counted.
fn over(count: Option<u64>, limit: u64) -> bool {
    limit > 0 && count.is_some_and(|count| count > limit)
}

#[cfg(test)]
mod tests;
