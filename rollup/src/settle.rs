//! The billing truth of one day: every click counted once, in the minute of its first record, on
//! its ad's own series — valid clicks apart from invalid ones, by the verdict settled over the day.
//!
//! **What counts once.** A record counts once per *dedup identity* ([`Click::dedup_identity`],
//! click.proto's counting rules): the impression id for the impression's click (valid, or invalid
//! for an activity reason), the impression id XOR a per-reason mask for a record invalid for a
//! request reason (a bot, a deny-listed network, a prefetch), which is not the user clicking and
//! never hides the impression's click: a prefetch followed by the person's click counts one
//! invalid prefetch and one valid click.
//!
//! **Which record.** The earliest by event time (ties by receive time, then the record's other
//! facts, so that the result never depends on the order records are read in), wherever it is — in
//! the day, or in the look-back before it (then the impression belongs to an earlier day and none
//! of its records in this day count). Records share their impression's ad, campaign and
//! advertiser (all three are in the signed token).
//!
//! **Which verdict.** A request-invalid record keeps its recorded reason. The impression's click
//! is settled again ([`crate::verdicts`]): after every record is read, the impression's clicks —
//! the look-back's, the day's and those of the next day read with it, since all of them count
//! towards velocity — are swept in (receive time, impression id) order through the velocity
//! windows ([`crate::velocity`]), and each click of the day gets
//! `adclick_invalid::settle(recorded, its facts, rules)`. Valid clicks make `adclick_clicks`;
//! invalid ones, per campaign and reason, `adclick_invalid_clicks`; where the settled verdict is
//! not the recorded one, a [`VerdictChange`] says so.
//!
//! **Spend and users.** A valid click brings its counted record's `price_micros` and `user_hash`
//! (the record the impression's click was settled from: another record of the impression with
//! another price or user changes nothing). Per ad and minute: clicks, their spend, and their
//! distinct non-zero users ([`AdMinute`]); per day the [`crate::daily`] figures, whose users are
//! distinct over the whole day. Invalid clicks, request-invalid records included, bring neither.
//!
//! Velocity at the edges: the windows of the day's first clicks hold the look-back's clicks, and
//! those of its last (and late) clicks the next day's clicks archived within `read_after_ms`;
//! next-day clicks archived later still are not seen, so a window straddling the day's end can
//! count fewer than live did (reported as a verdict change).
//!
//! Memory: one entry per distinct impression read (16-byte identity and a 56-byte record:
//! event and receive time, user and IP hash, token issue time, price, ad number, recorded
//! reason, flag — 72 bytes a bucket), one small entry per request-invalid identity, one per
//! distinct ad; while settling, 24 bytes more per impression (the sweep's order) and 24 per valid
//! click of the day (ad, minute, user, price: [`minutes`]); then, the impressions freed, 16 per
//! valid click with a user to count the day's distinct users ([`crate::daily`]) — below the peak
//! of reading. Measured with `examples/bench_settle.rs` (release): 197 bytes per distinct
//! impression at 4.75M, decoding included (the map's last resize holds old and new tables); it
//! was 175 before spend and users (a 48-byte record), and 52 before verdicts were settled (a
//! 24-byte entry; BENCHMARKS.md, before and after in the same run). A day of 100M clicks with a
//! 24 h look-back holds ~200M impressions, ~39 GB: a job for a large batch machine. The next
//! step beyond that is sharding by impression id (every record of an impression has the same
//! Kafka key, so the same partition): settle partitions apart — velocity then needs the counts
//! of all partitions, a second pass over (receive time, user or IP hash) alone.

use std::collections::{BTreeMap, HashMap};

use adclick_click::Day;
use adclick_click::minute::Minute;
use adclick_click::wire::{Click, ClickFlag};
use adclick_invalid::{Reason, Rules, Verdict};
use serde::Serialize;

use crate::daily::{self, DailyFigures};
use crate::velocity::Counter;
use crate::verdicts::{self, Changes, VerdictChange};

mod minutes;

use minutes::{AdRanks, ValidClick};

pub use adclick_click::wire::AdKey;

/// Where the records read went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SettleStats {
    /// Click records read from the archive (after overlapping objects were trimmed).
    pub records: u64,
    /// Records of the day's minutes.
    pub in_day: u64,
    /// Records of the look-back, read to know which impressions were counted before the day.
    pub in_lookback: u64,
    /// Records before the look-back or after the day: not counted in the day (those after it
    /// still count towards the velocity of the day's last clicks).
    pub outside: u64,
    /// Records of the day flagged dedup-unchecked (ingest failed open).
    pub dedup_unchecked: u64,
    /// Records of the day flagged velocity-unchecked (ingest could not count velocity).
    pub velocity_unchecked: u64,
    /// Records of the day that repeat an identity counted earlier (in the day or before it).
    pub duplicates_removed: u64,
    /// Valid clicks counted in the day: `adclick_clicks`, the billed clicks.
    pub clicks: u64,
    /// Their spend: the sum of their `price_micros` (`adclick_spend_micros`).
    pub spend_micros: u64,
    /// Distinct non-zero `user_hash` among them, over all ads: the day's people.
    pub unique_users: u64,
    /// Invalid clicks counted in the day (once per impression, or per impression and request
    /// reason): `adclick_invalid_clicks`.
    pub invalid_clicks: u64,
    /// `invalid_clicks` by reason name.
    pub invalid_by_reason: BTreeMap<&'static str, u64>,
    /// Clicks of the day whose settled verdict is not the one ingest recorded.
    pub verdicts_changed: u64,
}

/// The invalid clicks of one campaign for one reason: a series of `adclick_invalid_clicks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvalidKey {
    pub advertiser_id: u64,
    pub campaign_id: u64,
    pub reason: Reason,
}

impl InvalidKey {
    fn order(&self) -> (u64, u64, u8) {
        (self.advertiser_id, self.campaign_id, self.reason.code())
    }
}

/// An ad's valid clicks of one minute: the samples of `adclick_clicks`, `adclick_spend_micros`
/// and `adclick_unique_users`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdMinute {
    pub clicks: u64,
    /// The sum of the clicks' `price_micros`.
    pub spend_micros: u64,
    /// Distinct non-zero `user_hash` among the clicks.
    pub unique_users: u64,
}

/// The settled day: per-minute figures of each ad's valid clicks and counts of each campaign's
/// invalid clicks per reason, the day's billing figures, and how they came about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettledDay {
    /// Valid clicks: ads in ascending order, each with its minutes in ascending order (those
    /// with clicks).
    pub ads: Vec<(AdKey, Vec<(Minute, AdMinute)>)>,
    /// Invalid clicks: (advertiser, campaign, reason code) ascending, minutes ascending.
    pub invalid: Vec<(InvalidKey, Vec<(Minute, u64)>)>,
    /// Where the settled verdict differs from the recorded one, per campaign and minute.
    pub verdict_changes: Vec<VerdictChange>,
    /// Per ad, campaign and advertiser: what the billing store keeps of the day.
    pub daily: DailyFigures,
    pub stats: SettleStats,
}

impl SettledDay {
    /// Valid clicks per campaign (advertiser, campaign).
    pub fn campaign_totals(&self) -> HashMap<(u64, u64), u64> {
        self.campaign_sums(|m| m.clicks)
    }

    /// Spend per campaign (advertiser, campaign), of every campaign with valid clicks.
    pub fn campaign_spend(&self) -> HashMap<(u64, u64), u64> {
        self.campaign_sums(|m| m.spend_micros)
    }

    fn campaign_sums(&self, figure: impl Fn(&AdMinute) -> u64) -> HashMap<(u64, u64), u64> {
        let mut out: HashMap<(u64, u64), u64> = HashMap::new();
        for (ad, minutes) in &self.ads {
            let sum = out.entry((ad.advertiser_id, ad.campaign_id)).or_default();
            for (_, m) in minutes {
                *sum = sum.saturating_add(figure(m));
            }
        }
        out
    }

    /// Invalid clicks per campaign and reason.
    pub fn invalid_totals(&self) -> HashMap<InvalidKey, u64> {
        self.invalid
            .iter()
            .map(|(key, minutes)| (*key, minutes.iter().map(|(_, n)| n).sum()))
            .collect()
    }
}

/// The first record of an impression's click: what its verdict is settled from, and its spend
/// and user if valid. 56 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ImpressionClick {
    event_time_ms: i64,
    receive_time_ms: i64,
    user_hash: u64,
    ip_hash: u64,
    token_issued_at_secs: u64,
    price_micros: u64,
    /// Index into [`Settlement::ads`].
    ad: u32,
    /// The recorded verdict's code (never a request reason's: those have identities of their
    /// own).
    recorded: u8,
    velocity_unchecked: bool,
}

// The module docs' figures: a record of 56 bytes, a map bucket of 72.
const _: () = assert!(std::mem::size_of::<ImpressionClick>() == 56);
const _: () = assert!(std::mem::size_of::<((u64, u64), ImpressionClick)>() == 72);

impl ImpressionClick {
    /// Which of two records of one impression is its click: the earliest by event time; the rest
    /// only breaks ties, so that the choice does not depend on the order records are read in.
    fn order(&self) -> (i64, i64, u8, bool, u64, u64, u64, u64) {
        (
            self.event_time_ms,
            self.receive_time_ms,
            self.recorded,
            self.velocity_unchecked,
            self.user_hash,
            self.ip_hash,
            self.token_issued_at_secs,
            self.price_micros,
        )
    }
}

/// The first record of a request-invalid identity (impression and reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RequestInvalid {
    event_time_ms: i64,
    ad: u32,
    reason: Reason,
}

/// Accumulates the records of a day; see the module docs.
#[derive(Debug)]
pub struct Settlement {
    day: Day,
    /// First minute read (look-back start).
    base: Minute,
    ad_numbers: HashMap<AdKey, u32>,
    ads: Vec<AdKey>,
    /// Impression id (its big-endian halves) → its click's first record. Not a `u128` key: its
    /// 16-byte alignment would pad the 72-byte bucket to 80.
    impressions: HashMap<(u64, u64), ImpressionClick>,
    /// Dedup identity → the first record invalid for that request reason.
    request_invalid: HashMap<u128, RequestInvalid>,
    stats: SettleStats,
}

/// Where a record's event time falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    Before,
    Lookback,
    Day,
    After,
}

impl Settlement {
    /// A settlement of `day` that learns impressions from `lookback_ms` before it.
    pub fn new(day: Day, lookback_ms: i64) -> Settlement {
        Settlement {
            day,
            base: Minute::of(day.first_minute().start_ms() - lookback_ms.max(0)),
            ad_numbers: HashMap::new(),
            ads: Vec::new(),
            impressions: HashMap::new(),
            request_invalid: HashMap::new(),
            stats: SettleStats::default(),
        }
    }

    pub fn day(&self) -> Day {
        self.day
    }

    fn span(&self, minute: Minute) -> Span {
        if minute.0 < self.base.0 {
            Span::Before
        } else if minute.0 < self.day.first_minute().0 {
            Span::Lookback
        } else if minute.0 < self.day.end_minute().0 {
            Span::Day
        } else {
            Span::After
        }
    }

    /// Takes one click record (already decoded and valid).
    pub fn add(&mut self, click: &Click) {
        self.stats.records += 1;
        let span = self.span(Minute::of(click.event_time_ms));
        match span {
            Span::Before => {
                self.stats.outside += 1;
                return;
            }
            Span::After => self.stats.outside += 1,
            Span::Lookback => self.stats.in_lookback += 1,
            Span::Day => {
                self.stats.in_day += 1;
                self.stats.dedup_unchecked += u64::from(click.has_flag(ClickFlag::DedupUnchecked));
                self.stats.velocity_unchecked += u64::from(verdicts::velocity_unchecked(click));
            }
        }
        let (Some(identity), Some(impression)) = (click.dedup_identity(), click.impression_key())
        else {
            // Records were validated when read; an invalid one never reaches here.
            return;
        };
        let ad = self.ad_number(AdKey::of(click));
        let recorded = verdicts::recorded(click);
        match recorded.reason() {
            // After the day, records count only towards velocity, which these never do.
            Some(reason) if reason.is_per_request() && span == Span::After => {}
            Some(reason) if reason.is_per_request() => {
                let record = RequestInvalid {
                    event_time_ms: click.event_time_ms,
                    ad,
                    reason,
                };
                let entry = self.request_invalid.entry(identity).or_insert(record);
                if record.event_time_ms < entry.event_time_ms {
                    *entry = record;
                }
            }
            _ => {
                let record = ImpressionClick {
                    event_time_ms: click.event_time_ms,
                    receive_time_ms: click.receive_time_ms,
                    user_hash: click.user_hash,
                    ip_hash: click.ip_hash,
                    token_issued_at_secs: click.token_issued_at_secs,
                    price_micros: click.price_micros,
                    ad,
                    recorded: recorded.code(),
                    velocity_unchecked: verdicts::velocity_unchecked(click),
                };
                let entry = self
                    .impressions
                    .entry(halves(u128::from_be_bytes(impression)))
                    .or_insert(record);
                if record.order() < entry.order() {
                    *entry = record;
                }
            }
        }
    }

    fn ad_number(&mut self, ad: AdKey) -> u32 {
        match self.ad_numbers.get(&ad) {
            Some(&n) => n,
            None => {
                let n = self.ads.len() as u32;
                self.ads.push(ad);
                self.ad_numbers.insert(ad, n);
                n
            }
        }
    }

    /// The day's counts, every ad on its own series, verdicts settled by `rules`.
    pub fn finish(mut self, rules: &Rules) -> SettledDay {
        let mut stats = std::mem::take(&mut self.stats);
        let ranks = AdRanks::new(&self.ads);
        let first = self.day.first_minute();
        let mut valid: Vec<ValidClick> = Vec::new();
        let mut invalid: HashMap<(InvalidKey, Minute), u64> = HashMap::new();
        // Per ad number and reason, for the daily figures.
        let mut invalid_of_ad: HashMap<(u32, Reason), u64> = HashMap::new();
        let mut changes = Changes::default();
        let ads = &self.ads;
        let campaign = |ad: u32| {
            let key = ads[ad as usize];
            (key.advertiser_id, key.campaign_id)
        };
        let mut count_invalid = |ad: u32, reason: Reason, minute: Minute| {
            let (advertiser_id, campaign_id) = campaign(ad);
            let key = InvalidKey {
                advertiser_id,
                campaign_id,
                reason,
            };
            *invalid.entry((key, minute)).or_default() += 1;
            *invalid_of_ad.entry((ad, reason)).or_default() += 1;
        };

        for record in self.request_invalid.values() {
            let minute = Minute::of(record.event_time_ms);
            if self.span(minute) == Span::Day {
                count_invalid(record.ad, record.reason, minute);
            }
        }

        // The velocity sweep: every impression's click, in the contract's order.
        let mut order: Vec<(i64, u64, u64)> = self
            .impressions
            .iter()
            .map(|(&(high, low), c)| (c.receive_time_ms, high, low))
            .collect();
        order.sort_unstable();
        let mut counter = Counter::new(rules.velocity_windows());
        for (receive_time_ms, high, low) in order {
            let impression = (u128::from(high) << 64) | u128::from(low);
            let Some(click) = self.impressions.get(&(high, low)) else {
                continue; // Taken from the map a moment ago.
            };
            let velocity = counter
                .count(receive_time_ms, impression, click.user_hash, click.ip_hash)
                .expect("the sweep is sorted by (receive time, impression)");
            let minute = Minute::of(click.event_time_ms);
            if self.span(minute) != Span::Day {
                continue;
            }
            let recorded = Verdict::from(Reason::from_code(click.recorded));
            let facts =
                verdicts::activity_facts(click.token_issued_at_secs, receive_time_ms, velocity);
            let settled = adclick_invalid::settle(recorded, &facts, rules);
            match settled.reason() {
                None => valid.push(ValidClick {
                    ad: ranks.rank(click.ad),
                    // A minute of the day: 0 to 1439.
                    minute: (minute.0 - first.0) as u32,
                    user_hash: click.user_hash,
                    price_micros: click.price_micros,
                }),
                Some(reason) => count_invalid(click.ad, reason, minute),
            }
            changes.add(
                campaign(click.ad),
                minute,
                recorded,
                settled,
                click.velocity_unchecked,
            );
        }
        // The largest holding, no longer needed: what follows fits in the space it leaves.
        drop(std::mem::take(&mut self.impressions));

        stats.clicks = valid.len() as u64;
        stats.invalid_clicks = invalid.values().sum();
        for ((key, _), n) in &invalid {
            *stats
                .invalid_by_reason
                .entry(key.reason.as_str())
                .or_default() += n;
        }
        stats.duplicates_removed = stats.in_day - stats.clicks - stats.invalid_clicks;
        let verdict_changes = changes.finish();
        stats.verdicts_changed = verdict_changes.iter().map(|c| c.clicks).sum();

        let ad_minutes = minutes::per_minute(&mut valid, &ranks, first);
        let users: Vec<(u32, u64)> = valid
            .iter()
            .filter(|c| c.user_hash != 0)
            .map(|c| (c.ad, c.user_hash))
            .collect();
        drop(valid);
        let users = daily::unique_users(users, &ranks.by_rank);
        let mut invalid_by_ad: BTreeMap<AdKey, BTreeMap<&'static str, u64>> = BTreeMap::new();
        for ((ad, reason), n) in invalid_of_ad {
            invalid_by_ad
                .entry(ads[ad as usize])
                .or_default()
                .insert(reason.as_str(), n);
        }
        let daily = daily::figures(&ad_minutes, &invalid_by_ad, users);
        stats.spend_micros = daily.spend_micros();
        stats.unique_users = daily.unique_users;

        let mut invalid: Vec<((InvalidKey, Minute), u64)> = invalid.into_iter().collect();
        invalid.sort_unstable_by_key(|((key, minute), _)| (key.order(), minute.0));
        SettledDay {
            ads: ad_minutes,
            invalid: group(invalid.into_iter()),
            verdict_changes,
            daily,
            stats,
        }
    }
}

/// An impression id's (high, low) 64-bit halves: ordered like the id.
fn halves(id: u128) -> (u64, u64) {
    ((id >> 64) as u64, id as u64)
}

/// Groups ((series, minute), count) — sorted by series, then minute — into series with their
/// minutes, adding up equal minutes.
fn group<K: PartialEq>(
    sorted: impl Iterator<Item = ((K, Minute), u64)>,
) -> Vec<(K, Vec<(Minute, u64)>)> {
    let mut out: Vec<(K, Vec<(Minute, u64)>)> = Vec::new();
    for ((key, minute), n) in sorted {
        match out.last_mut() {
            Some((k, minutes)) if *k == key => match minutes.last_mut() {
                Some((m, count)) if *m == minute => *count += n,
                _ => minutes.push((minute, n)),
            },
            _ => out.push((key, vec![(minute, n)])),
        }
    }
    out
}

#[cfg(test)]
mod tests;
