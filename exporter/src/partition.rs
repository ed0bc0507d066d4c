//! Event time for one partition: its watermark, its open minutes, and the minutes it closes —
//! a pure function of the partition's records, so a replay from a checkpoint decides exactly
//! what the first pass decided.
//!
//! - The watermark is the highest event time seen minus the allowed lateness. A minute closes
//!   when the watermark reaches its end; a click whose minute is closed is *late*: it is not
//!   counted in its minute but in the `Late` series of the partition's earliest open minute,
//!   labelled with the day whose block its own minute is in (`block_day`): across midnight the
//!   two differ, and the rollup reconciles each day with the late clicks of its own.
//! - Closing a minute yields its series (see [`crate::window`]), plus an explicit 0 for every
//!   series the previous minute wrote and this one does not: Prometheus would otherwise carry the
//!   previous count forward for its 5-minute lookback. One zero is enough: it is carried forward
//!   instead, and the series then ends by itself.
//! - Nothing here reads a clock. Idle partitions advance through tick records in the log
//!   ([`crate::record`]), so the decisions stay reproducible.
//!
//! - Repeats: a click whose impression id the partition remembers ([`crate::remembered`]: within
//!   the dedup horizon of event time, whichever minute) is dropped, before it can count on time
//!   or late.
//!
//! Replays: a [`Resume`] says where a replay starts reading (the first record of the oldest
//! remembered generation), the watermark there, where counting resumes (the first record of any
//! minute still open or still needed for the zeros, see [`PartitionState::replay_start`]), and
//! up to which minute the samples were already acknowledged. Records before the counting point
//! only rebuild the remembered ids and the watermark; minutes up to the acknowledged one close
//! again on the replay but are marked `suppressed` so they are not written twice.

use std::collections::BTreeMap;

use adclick_click::{Click, Minute};

use crate::remembered::{Horizon, Remembered, Seen};
use crate::window::{AdKey, CampaignKey, InvalidReason, Measures, SeriesKey, SeriesSample, Window};

/// The knobs that decide what a partition's records become.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// How far behind the highest event time a click may arrive and still count in its minute.
    pub allowed_lateness_ms: i64,
    /// Ads per minute with their own series in this partition.
    pub top_k: usize,
    /// How long impression ids are remembered to drop repeats.
    pub horizon: Horizon,
    /// Spend and unique users beside the clicks, or not.
    pub measures: Measures,
}

/// What a replay needs to know about the records before its first one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resume {
    /// The highest event time of the records before the replay's first one.
    pub max_event_ms: Option<i64>,
    /// The last minute whose samples were already acknowledged: not written again.
    pub written_through: Option<Minute>,
    /// Where the replay reads from and where it counts from (records in between only rebuild
    /// the remembered impression ids). None: it counts from its first record.
    pub replay: Option<ReplayPoint>,
}

/// Where a replay reads from, with which watermark, and from which record on it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayPoint {
    pub read_from: i64,
    /// The highest event time before `read_from`.
    pub max_event_before: Option<i64>,
    pub count_from: i64,
}

/// A minute that closed, with the samples it writes (timestamp: the minute's end).
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedMinute {
    pub minute: Minute,
    /// Its series (sorted), zeros included.
    pub samples: Vec<SeriesSample>,
    /// Ads folded into `other` because they were not among the top K.
    pub ads_folded: u64,
    /// Valid clicks counted in the minute, and late clicks that arrived while it was open.
    pub clicks: u64,
    pub late_clicks: u64,
    /// Invalid traffic counted in the minute (on time).
    pub invalid_clicks: u64,
    /// Already written before the replay that closed it again: do not write.
    pub suppressed: bool,
}

/// What became of one click.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Counted,
    /// A repeat of an impression the partition remembers: dropped.
    Repeat,
    /// Its minute was already closed: counted as late.
    Late,
    /// Read by a replay before the point it counts from: only remembered.
    WarmUp,
}

/// `a` and `b`, each sorted by key and with no key in both, as one sorted list.
fn merge_sorted(a: Vec<SeriesSample>, b: Vec<SeriesSample>) -> Vec<SeriesSample> {
    debug_assert!(a.is_sorted_by(|x, y| x.0 < y.0) && b.is_sorted_by(|x, y| x.0 < y.0));
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 < y.0 => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, _) => b.next(),
        };
        match next {
            Some(sample) => merged.push(sample),
            None => return merged,
        }
    }
}

/// The last closed minute, kept for the zeros of the next one.
#[derive(Debug, Clone)]
struct Previous {
    minute: Minute,
    /// Series it wrote with a value, zeros of its own included, but not their companions
    /// (spend, users: [`SeriesKey::companions`]), which go wherever these go (sorted). A third
    /// of the keys with spend and unique users on: held for a whole minute for every ad.
    series: Vec<SeriesKey>,
    /// Where its window started, if it had one: a replay must start there to rebuild it.
    start: Option<(i64, Option<i64>)>,
}

/// One partition's event-time state.
#[derive(Debug)]
pub struct PartitionState {
    rules: Rules,
    max_event_ms: Option<i64>,
    windows: BTreeMap<Minute, Window>,
    previous: Option<Previous>,
    written_through: Option<Minute>,
    remembered: Remembered,
    /// The point this state resumed from, until a record at its `count_from` is read: records
    /// before it only warm `remembered` up, and a checkpoint taken meanwhile is that one again.
    resumed: Option<ReplayPoint>,
}

impl PartitionState {
    /// A partition read from its beginning (or from a point where nothing was open).
    pub fn new(rules: Rules) -> PartitionState {
        PartitionState::resume(rules, Resume::default())
    }

    /// A partition whose replay starts where `resume` was taken.
    pub fn resume(rules: Rules, resume: Resume) -> PartitionState {
        PartitionState {
            rules,
            max_event_ms: resume.max_event_ms,
            windows: BTreeMap::new(),
            previous: None,
            written_through: resume.written_through,
            remembered: Remembered::new(rules.horizon),
            resumed: resume.replay,
        }
    }

    /// The watermark: the highest event time seen minus the allowed lateness.
    pub fn watermark(&self) -> Option<i64> {
        self.max_event_ms
            .map(|t| t.saturating_sub(self.rules.allowed_lateness_ms))
    }

    /// The highest event time seen.
    pub fn max_event_ms(&self) -> Option<i64> {
        self.max_event_ms
    }

    /// The last closed minute: every minute ending at or before the watermark.
    pub fn closed_through(&self) -> Option<Minute> {
        self.watermark()
            .map(|w| Minute(w.div_euclid(adclick_click::minute::MINUTE_MS) - 1))
    }

    /// The last minute written: closed by this state, or already written before the point it
    /// resumed from. A state resumed from a checkpoint starts with the watermark *before* the
    /// replay's first record, so its own `closed_through` can be earlier than what the
    /// checkpoint said was written; a checkpoint taken of it must not say less.
    pub fn written_through(&self) -> Option<Minute> {
        self.closed_through().max(self.written_through)
    }

    /// Counts one click at `offset` and closes the minutes its event time finalises.
    /// `hot`: the record's key was salted (a hot ad spread over partitions).
    pub fn apply_click(
        &mut self,
        offset: i64,
        click: &Click,
        impression: u128,
        hot: bool,
        closed: &mut Vec<ClosedMinute>,
    ) -> Applied {
        let ad = AdKey::of(click);
        let minute = Minute::of(click.event_time_ms);
        let max_before = self.max_event_ms;
        let high = self.high_with(click.event_time_ms);
        let seen = self.remembered.check(offset, max_before, high, impression);
        if self.warming_up(offset) {
            self.advance(click.event_time_ms, closed);
            return Applied::WarmUp;
        }
        if seen == Seen::Repeat {
            self.advance(click.event_time_ms, closed);
            return Applied::Repeat;
        }
        // A reason this build does not know reads as valid (click.proto).
        let reason = click.invalid_reason();
        let valid = reason == InvalidReason::Valid;
        let campaign = CampaignKey::from(ad);
        // Users are only listed when their series are written.
        let user = if self.rules.measures.unique_users {
            click.user_hash
        } else {
            0
        };
        let applied = match self.watermark() {
            Some(w) if minute.end_ms() <= w => {
                // The earliest open minute: the one containing the watermark. It may be in the
                // next day's block; the click's own day goes with it (`block_day`), so that the
                // rollup of that day finds it.
                let day = minute.block_day();
                let window = self.window(Minute::of(w), offset, max_before);
                if valid {
                    window.count_late(campaign, day, click.price_micros);
                } else {
                    window.count_late_invalid(campaign, reason, day);
                }
                Applied::Late
            }
            _ => {
                let window = self.window(minute, offset, max_before);
                if valid {
                    window.count(ad, hot, click.price_micros, user);
                } else {
                    window.count_invalid(campaign, reason);
                }
                Applied::Counted
            }
        };
        self.advance(click.event_time_ms, closed);
        applied
    }

    /// A tick record at `offset`: the log's statement that event time reached `event_time_ms`.
    pub fn apply_tick(&mut self, offset: i64, event_time_ms: i64, closed: &mut Vec<ClosedMinute>) {
        self.remembered
            .advance(offset, self.high_with(event_time_ms));
        self.warming_up(offset);
        self.advance(event_time_ms, closed);
    }

    /// The highest event time once a record of `event_time_ms` is read.
    fn high_with(&self, event_time_ms: i64) -> i64 {
        self.max_event_ms
            .map_or(event_time_ms, |m| m.max(event_time_ms))
    }

    /// Whether the record at `offset` comes before the point this state counts from; the first
    /// one that does not ends the warm-up.
    fn warming_up(&mut self, offset: i64) -> bool {
        if self.resumed.is_some_and(|r| offset < r.count_from) {
            return true;
        }
        self.resumed = None;
        false
    }

    /// Where a replay that must count from `count_start` (offset, highest event time before it:
    /// the earliest of [`PartitionState::replay_start`] and anything else the caller must
    /// rebuild) reads from: the first record of the oldest generation of impression ids
    /// remembered at that point. A state still warming up names the point it resumed from.
    pub fn replay_point(&self, count_start: (i64, Option<i64>)) -> ReplayPoint {
        if let Some(resumed) = self.resumed {
            return resumed;
        }
        let (count_from, max_before) = count_start;
        match self.remembered.rebuild_start(count_from) {
            Some(start) => ReplayPoint {
                read_from: start.offset,
                max_event_before: start.max_event_before,
                count_from,
            },
            None => ReplayPoint {
                read_from: count_from,
                max_event_before: max_before,
                count_from,
            },
        }
    }

    /// A checkpoint counting from `count_from` was committed: no later one needs the history of
    /// generations forgotten before it.
    pub fn committed(&mut self, count_from: i64) {
        self.remembered.forget_history_before(count_from);
    }

    /// The remembered impression ids.
    pub fn remembered(&self) -> &Remembered {
        &self.remembered
    }

    /// Ids forgotten since the last call, by reason.
    pub fn take_evictions(&mut self) -> Vec<(crate::remembered::Eviction, usize)> {
        self.remembered.take_evictions()
    }

    /// Where a replay must start to rebuild every open minute and the last closed one (offset),
    /// and the highest event time before that record. None when nothing needs rebuilding.
    pub fn replay_start(&self) -> Option<(i64, Option<i64>)> {
        self.windows
            .values()
            .map(|w| (w.first_offset, w.max_event_before))
            .chain(self.previous.as_ref().and_then(|p| p.start))
            .min_by_key(|(offset, _)| *offset)
    }

    /// The open minutes, oldest first.
    pub fn open_windows(&self) -> impl Iterator<Item = (&Minute, &Window)> {
        self.windows.iter()
    }

    fn window(&mut self, minute: Minute, offset: i64, max_before: Option<i64>) -> &mut Window {
        self.windows
            .entry(minute)
            .or_insert_with(|| Window::new(offset, max_before))
    }

    fn advance(&mut self, event_time_ms: i64, closed: &mut Vec<ClosedMinute>) {
        if self.max_event_ms.is_some_and(|t| t >= event_time_ms) {
            return;
        }
        self.max_event_ms = Some(event_time_ms);
        let Some(closed_through) = self.closed_through() else {
            return;
        };
        loop {
            let first_window = self.windows.keys().next().copied();
            let after_previous = self
                .previous
                .as_ref()
                .filter(|p| !p.series.is_empty())
                .map(|p| p.minute.next());
            let next = match (first_window, after_previous) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match next {
                Some(minute) if minute <= closed_through => closed.push(self.close(minute)),
                _ => break,
            }
        }
    }

    fn close(&mut self, minute: Minute) -> ClosedMinute {
        let window = self.windows.remove(&minute);
        let folded = window
            .as_ref()
            .map(|w| w.series(self.rules.top_k, self.rules.measures))
            .unwrap_or_default();
        let series: Vec<SeriesKey> = folded
            .samples
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| !k.is_companion())
            .collect();
        let mut samples = folded.samples;
        let sum = |counts: fn(&SeriesKey) -> bool| {
            samples
                .iter()
                .filter(|(k, _)| counts(k))
                .map(|(_, n)| n)
                .sum::<u64>()
        };
        let clicks = sum(|k| k.is_valid_clicks());
        let late_clicks = sum(|k| matches!(k, SeriesKey::Late(..)));
        let invalid_clicks = sum(|k| matches!(k, SeriesKey::Invalid(..)));
        if let Some(prev) = self.previous.take().filter(|p| p.minute.next() == minute) {
            let measures = self.rules.measures;
            let zeros: Vec<SeriesSample> = prev
                .series
                .into_iter()
                .filter(|key| series.binary_search(key).is_err())
                .flat_map(|key| std::iter::once(key).chain(key.companions(measures)))
                .map(|key| (key, 0))
                .collect();
            if !zeros.is_empty() {
                // Both sorted: merged, not sorted again (a minute of 100k ads is 300k samples).
                samples = merge_sorted(samples, zeros);
            }
        }
        self.previous = Some(Previous {
            minute,
            series,
            start: window
                .as_ref()
                .map(|w| (w.first_offset, w.max_event_before)),
        });
        ClosedMinute {
            minute,
            samples,
            ads_folded: folded.ads_folded,
            clicks,
            late_clicks,
            invalid_clicks,
            suppressed: self.written_through.is_some_and(|w| minute <= w),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adclick_click::Day;
    use adclick_click::minute::MINUTE_MS;
    use proptest::prelude::*;

    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % MINUTE_MS;
    const RULES: Rules = Rules {
        allowed_lateness_ms: 10_000,
        top_k: 2,
        horizon: Horizon {
            horizon_ms: 3 * MINUTE_MS,
            generation_ms: MINUTE_MS,
            max_remembered: 1_000_000,
        },
        measures: Measures::CLICKS_ONLY,
    };
    /// With spend and unique users: what replays must rebuild too.
    const RULES_ALL: Rules = Rules {
        measures: Measures::ALL,
        ..RULES
    };

    fn click(ad: u64, event_time_ms: i64) -> Click {
        Click {
            impression_id: vec![0; 16],
            ad_id: ad,
            campaign_id: 100 + ad % 3,
            advertiser_id: 7,
            event_time_ms,
            ..Default::default()
        }
    }

    /// A record of the log in these tests: a click (ad, event time, impression) or a tick.
    #[derive(Debug, Clone)]
    enum Rec {
        Click(u64, i64, u128),
        Tick(i64),
    }

    fn apply(state: &mut PartitionState, offset: i64, rec: &Rec, out: &mut Vec<ClosedMinute>) {
        match rec {
            Rec::Click(ad, t, imp) => {
                // Prices and users from the impression: a repeat carries the same ones.
                let click = Click {
                    price_micros: (*imp % 7) as u64 * 1_000,
                    user_hash: (*imp % 5) as u64,
                    ..click(*ad, *t)
                };
                state.apply_click(offset, &click, *imp, *ad == 1, out);
            }
            Rec::Tick(t) => state.apply_tick(offset, *t, out),
        }
    }

    fn ad_series(ad: u64) -> SeriesKey {
        SeriesKey::Ad(AdKey::of(&click(ad, 0)))
    }

    #[test]
    fn a_minute_closes_when_the_watermark_passes_its_end() {
        let mut s = PartitionState::new(RULES);
        let mut out = vec![];
        s.apply_click(0, &click(1, T0 + 5_000), 1, false, &mut out);
        s.apply_click(1, &click(1, T0 + MINUTE_MS + 9_999), 2, false, &mut out);
        assert!(
            out.is_empty(),
            "watermark is 1 ms short of the minute's end"
        );
        s.apply_click(2, &click(1, T0 + MINUTE_MS + 10_000), 3, false, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].minute, Minute::of(T0));
        assert_eq!(out[0].samples, vec![(ad_series(1), 1)]);
    }

    #[test]
    fn within_lateness_counts_in_its_minute_beyond_it_counts_late() {
        let mut s = PartitionState::new(RULES);
        let mut out = vec![];
        s.apply_click(0, &click(1, T0 + MINUTE_MS + 5_000), 1, false, &mut out);
        // 6 s behind the highest event time, in the previous minute: still open.
        assert_eq!(
            s.apply_click(1, &click(1, T0 + 59_000), 2, false, &mut out),
            Applied::Counted
        );
        s.apply_click(2, &click(2, T0 + MINUTE_MS + 20_000), 3, false, &mut out);
        assert_eq!(out.len(), 1, "minute T0 closed");
        assert_eq!(
            s.apply_click(3, &click(1, T0 + 30_000), 4, false, &mut out),
            Applied::Late
        );
        s.apply_tick(4, T0 + 2 * MINUTE_MS + 10_000, &mut out);
        assert_eq!(out.len(), 2);
        let late = CampaignKey::from(AdKey::of(&click(1, 0)));
        let day = Minute::of(T0).block_day();
        assert!(out[1].samples.contains(&(SeriesKey::Late(late, day), 1)));
        assert_eq!(out[1].late_clicks, 1);
        assert_eq!(out[1].clicks, 2);
    }

    #[test]
    fn a_late_click_counted_after_midnight_keeps_the_day_of_its_own_minute() {
        // 2026-12-07 00:00 UTC. The minute 23:58–23:59 of the 6th is the last of the 6th's
        // block; 23:59–24:00 is the first of the 7th's.
        let midnight = 1_796_601_600_000;
        let (sixth, seventh) = (Day(20_793), Day(20_794));
        let mut s = PartitionState::new(RULES_ALL);
        let mut out = vec![];
        s.apply_click(0, &click(1, midnight - 90_000), 1, false, &mut out);
        // The watermark passes 23:59: the 6th's last minute closes; 23:59–24:00 is open.
        s.apply_click(1, &click(1, midnight - 45_000), 2, false, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].minute.block_day(), sixth);
        // Two clicks of 23:58 arrive now: late, counted in the minute that ends at 00:00.
        let late = |offset, impression| {
            let mut late = click(1, midnight - 70_000);
            late.price_micros = 250;
            (offset, late, impression)
        };
        for (offset, c, impression) in [late(2, 3), late(3, 4)] {
            assert_eq!(
                s.apply_click(offset, &c, impression, false, &mut out),
                Applied::Late
            );
        }
        let mut invalid = click(1, midnight - 80_000);
        invalid.invalid_reason = InvalidReason::TooFast as i32;
        assert_eq!(
            s.apply_click(4, &invalid, 5, false, &mut out),
            Applied::Late
        );
        // And one of 23:59 itself, once 00:00–00:01 is the earliest open minute.
        s.apply_tick(5, midnight + 15_000, &mut out);
        assert_eq!(out.len(), 2);
        s.apply_click(6, &click(1, midnight - 30_000), 6, false, &mut out);
        s.apply_tick(7, midnight + MINUTE_MS + 15_000, &mut out);
        assert_eq!(out.len(), 3);

        let c = CampaignKey::from(AdKey::of(&click(1, 0)));
        assert_eq!(out[1].minute.end_ms(), midnight);
        assert_eq!(out[1].minute.block_day(), seventh);
        let late_of = |i: usize| -> Vec<SeriesSample> {
            out[i]
                .samples
                .iter()
                .filter(|(k, _)| {
                    matches!(
                        k,
                        SeriesKey::Late(..) | SeriesKey::LateSpend(..) | SeriesKey::LateInvalid(..)
                    )
                })
                .copied()
                .collect()
        };
        assert_eq!(
            late_of(1),
            vec![
                (SeriesKey::Late(c, sixth), 2),
                (SeriesKey::LateSpend(c, sixth), 500),
                (SeriesKey::LateInvalid(c, InvalidReason::TooFast, sixth), 1),
            ]
        );
        // The 6th's late series end with a zero (as every series does that a minute stops
        // writing); the 7th's late click has its own.
        assert_eq!(
            late_of(2),
            vec![
                (SeriesKey::Late(c, sixth), 0),
                (SeriesKey::LateSpend(c, sixth), 0),
                (SeriesKey::Late(c, seventh), 1),
                (SeriesKey::LateSpend(c, seventh), 0),
                (SeriesKey::LateInvalid(c, InvalidReason::TooFast, sixth), 0),
            ]
        );
    }

    #[test]
    fn repeats_in_any_minute_and_late_repeats_are_dropped_within_the_horizon() {
        let mut s = PartitionState::new(RULES);
        let mut out = vec![];
        assert_eq!(
            s.apply_click(0, &click(1, T0 + 1), 9, false, &mut out),
            Applied::Counted
        );
        // The same minute.
        assert_eq!(
            s.apply_click(1, &click(1, T0 + 2), 9, false, &mut out),
            Applied::Repeat
        );
        // Two minutes later, the same impression: still remembered.
        assert_eq!(
            s.apply_click(2, &click(1, T0 + 2 * MINUTE_MS + 5), 9, false, &mut out),
            Applied::Repeat
        );
        // A repeat whose own minute is closed is a repeat, not a late click.
        assert_eq!(
            s.apply_click(3, &click(1, T0 + 2), 9, false, &mut out),
            Applied::Repeat
        );
        // Beyond the horizon (3 minutes, generations of 1: at most 4 after the last record).
        s.apply_tick(4, T0 + 7 * MINUTE_MS, &mut out);
        assert_eq!(
            s.apply_click(5, &click(1, T0 + 7 * MINUTE_MS + 1), 9, false, &mut out),
            Applied::Counted
        );
        s.apply_tick(6, T0 + 10 * MINUTE_MS, &mut out);
        let total: u64 = out.iter().map(|c| c.clicks + c.late_clicks).sum();
        assert_eq!(total, 2);
    }

    #[test]
    fn the_minute_after_activity_writes_zero_then_nothing() {
        let mut s = PartitionState::new(RULES);
        let mut out = vec![];
        s.apply_click(0, &click(1, T0), 1, false, &mut out);
        s.apply_click(1, &click(2, T0 + 3 * MINUTE_MS), 2, false, &mut out);
        s.apply_tick(2, T0 + 10 * MINUTE_MS, &mut out);
        let minutes: Vec<(Minute, Vec<SeriesSample>)> =
            out.iter().map(|c| (c.minute, c.samples.clone())).collect();
        assert_eq!(
            minutes,
            vec![
                (Minute::of(T0), vec![(ad_series(1), 1)]),
                (Minute::of(T0 + MINUTE_MS), vec![(ad_series(1), 0)]),
                (Minute::of(T0 + 3 * MINUTE_MS), vec![(ad_series(2), 1)]),
                (Minute::of(T0 + 4 * MINUTE_MS), vec![(ad_series(2), 0)]),
            ]
        );
    }

    #[test]
    fn spend_and_users_close_with_their_clicks_and_get_their_zero_too() {
        let mut s = PartitionState::new(RULES_ALL);
        let mut out = vec![];
        let priced = |ad, t, price, user| Click {
            price_micros: price,
            user_hash: user,
            ..click(ad, t)
        };
        s.apply_click(0, &priced(1, T0, 250, 9), 1, false, &mut out);
        s.apply_click(1, &priced(1, T0 + 1, 250, 9), 2, false, &mut out);
        s.apply_tick(2, T0 + 3 * MINUTE_MS, &mut out);
        let ad = AdKey::of(&click(1, 0));
        assert_eq!(
            out[0].samples,
            vec![
                (SeriesKey::Ad(ad), 2),
                (SeriesKey::AdSpend(ad), 500),
                (SeriesKey::AdUsers(ad), 1),
            ]
        );
        assert_eq!(
            out[1].samples,
            vec![
                (SeriesKey::Ad(ad), 0),
                (SeriesKey::AdSpend(ad), 0),
                (SeriesKey::AdUsers(ad), 0),
            ]
        );
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn invalid_traffic_counts_apart_and_a_request_reason_never_hides_the_click() {
        let mut s = PartitionState::new(RULES);
        let mut out = vec![];
        let with = |reason: InvalidReason, t: i64| {
            let mut c = click(1, t);
            c.impression_id = 5u128.to_be_bytes().to_vec();
            c.invalid_reason = reason as i32;
            c
        };
        let campaign = CampaignKey::from(AdKey::of(&click(1, 0)));
        // A prefetch, then the person's click on the same impression, then the bot's repeat.
        for (offset, reason) in [
            (0, InvalidReason::Prefetch),
            (1, InvalidReason::Valid),
            (2, InvalidReason::Prefetch),
        ] {
            let c = with(reason, T0 + 1_000 + offset);
            let identity = c.dedup_identity().unwrap();
            let applied = s.apply_click(offset, &c, identity, false, &mut out);
            let want = if offset == 2 {
                Applied::Repeat
            } else {
                Applied::Counted
            };
            assert_eq!(applied, want, "record {offset}");
        }
        // The impression's click can be invalid itself (an activity reason): never counted twice.
        let fast = with(InvalidReason::TooFast, T0 + 2_000);
        let identity = fast.dedup_identity().unwrap();
        assert_eq!(
            s.apply_click(3, &fast, identity, false, &mut out),
            Applied::Repeat
        );
        let mut other = click(2, T0 + 3_000);
        other.impression_id = 6u128.to_be_bytes().to_vec();
        other.invalid_reason = InvalidReason::UserVelocity as i32;
        s.apply_click(4, &other, 6, false, &mut out);
        s.apply_tick(5, T0 + 3 * MINUTE_MS, &mut out);
        let campaign2 = CampaignKey::from(AdKey::of(&click(2, 0)));
        assert_eq!(
            out[0].samples,
            vec![
                (ad_series(1), 1),
                (SeriesKey::Invalid(campaign, InvalidReason::Prefetch), 1),
                (
                    SeriesKey::Invalid(campaign2, InvalidReason::UserVelocity),
                    1
                ),
            ]
        );
        assert_eq!((out[0].clicks, out[0].invalid_clicks), (1, 2));
        // The minute after writes zeros for the invalid series too.
        assert!(
            out[1]
                .samples
                .contains(&(SeriesKey::Invalid(campaign, InvalidReason::Prefetch), 0))
        );
    }

    #[test]
    fn a_resumed_state_suppresses_minutes_already_written() {
        let mut s = PartitionState::resume(
            RULES,
            Resume {
                max_event_ms: Some(T0),
                written_through: Some(Minute::of(T0)),
                replay: None,
            },
        );
        let mut out = vec![];
        s.apply_click(5, &click(1, T0 + 1_000), 1, false, &mut out);
        s.apply_click(6, &click(1, T0 + MINUTE_MS + 1_000), 2, false, &mut out);
        s.apply_tick(7, T0 + 3 * MINUTE_MS, &mut out);
        assert!(out[0].suppressed && out[0].minute == Minute::of(T0));
        assert!(!out[1].suppressed);
    }

    /// The first pass over a log, with a checkpoint taken after record `cut` the way the
    /// exporter takes it; then a replay from that checkpoint. Together they must write exactly
    /// the samples the uninterrupted pass writes, each once.
    fn first_pass_then_replay(log: &[Rec], cut: usize) -> (Vec<ClosedMinute>, Vec<ClosedMinute>) {
        let mut whole = PartitionState::new(RULES_ALL);
        let mut all = vec![];
        for (i, r) in log.iter().enumerate() {
            apply(&mut whole, i as i64, r, &mut all);
        }
        let mut first = PartitionState::new(RULES_ALL);
        let mut written = vec![];
        for (i, r) in log[..cut].iter().enumerate() {
            apply(&mut first, i as i64, r, &mut written);
        }
        let count_start = first
            .replay_start()
            .unwrap_or((cut as i64, first.max_event_ms()));
        let point = first.replay_point(count_start);
        assert!(point.read_from <= point.count_from);
        let resume = Resume {
            max_event_ms: point.max_event_before,
            written_through: first.written_through(),
            replay: Some(point),
        };
        let mut replay = PartitionState::resume(RULES_ALL, resume);
        assert_eq!(
            replay.replay_point((0, None)),
            point,
            "a resumed state names its point"
        );
        for (i, r) in log.iter().enumerate().skip(point.read_from as usize) {
            apply(&mut replay, i as i64, r, &mut written);
        }
        let written: Vec<ClosedMinute> = written.into_iter().filter(|c| !c.suppressed).collect();
        (all, written)
    }

    fn log_strategy() -> impl Strategy<Value = Vec<Rec>> {
        // Event times walk forward with jitter, some far behind (late), some ticks.
        proptest::collection::vec(
            (0u8..20, 0i64..20_000, 0i64..150_000, 1u64..6, 0u128..400),
            1..300,
        )
        .prop_map(|steps| {
            let mut t = T0;
            steps
                .into_iter()
                .map(|(kind, step, behind, ad, imp)| {
                    t += step;
                    match kind {
                        0 => Rec::Tick(t),
                        1..=3 => Rec::Click(ad, t - behind, imp),
                        _ => Rec::Click(ad, t, imp),
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn a_replay_from_any_checkpoint_writes_what_one_pass_writes(
            log in log_strategy(), cut_at in 0.0f64..1.0
        ) {
            let cut = ((log.len() as f64) * cut_at) as usize;
            let (all, written) = first_pass_then_replay(&log, cut);
            prop_assert_eq!(written, all);
        }

        /// Every click is counted in its minute, dropped as a repeat, or counted late.
        #[test]
        fn every_click_is_accounted_for(log in log_strategy()) {
            let mut s = PartitionState::new(RULES);
            let mut out = vec![];
            let (mut counted, mut late) = (0u64, 0u64);
            for (i, r) in log.iter().enumerate() {
                if let Rec::Click(ad, t, imp) = r {
                    match s.apply_click(i as i64, &click(*ad, *t), *imp, false, &mut out) {
                        Applied::Counted => counted += 1,
                        Applied::Late => late += 1,
                        Applied::Repeat => {}
                        Applied::WarmUp => prop_assert!(false, "a new state counts from its start"),
                    }
                } else {
                    apply(&mut s, i as i64, r, &mut out);
                }
            }
            s.apply_tick(log.len() as i64, i64::MAX / 2, &mut out);
            prop_assert_eq!(out.iter().map(|c| c.clicks).sum::<u64>(), counted);
            prop_assert_eq!(out.iter().map(|c| c.late_clicks).sum::<u64>(), late);
            // Minutes close in order, each once.
            prop_assert!(out.windows(2).all(|w| w[0].minute < w[1].minute));
        }
    }
}
