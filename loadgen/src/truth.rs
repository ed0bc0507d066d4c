//! The ground truth of a run: how many unique clicks each ad got in each event-time minute, as
//! adclick defines it, built from what the target acknowledged; written as CSV plus a JSON
//! summary, and read back by tests.
//!
//! `truth.csv`, one row per (ad, minute) with at least one click, sorted by minute then ids:
//! ```text
//! advertiser_id,campaign_id,ad_id,minute_end_ms,clicks
//! 3,41,812,1795000020000,17
//! ```
//! `minute_end_ms` is the END of the minute (ms since the epoch): the timestamp of the
//! `adclick_clicks` sample that must hold `clicks`. An impression counts once, in the minute of
//! its first acknowledged click; forged and expired tokens never count.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use adclick_click::{Click, Minute};
use serde::{Deserialize, Serialize};

use crate::latency::LatencySummary;
use crate::plan::{Lateness, Send, SendKind};
use crate::population::AdRef;

/// What the target did with one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted: a 302 to the right landing page, or a Kafka delivery report.
    Accepted,
    /// Refused with this HTTP status (forged and expired tokens must be).
    Refused(u16),
    /// Transport error or timeout: the target may or may not have counted it.
    Failed(String),
    /// Accepted but wrong (e.g. a 302 to another URL).
    Wrong(String),
}

/// One row of the truth: an ad in a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TruthKey {
    pub minute_end_ms: i64,
    pub ad: AdRef,
}

impl TruthKey {
    /// The row a click on `ad` at `event_time_ms` is counted in.
    pub fn of(ad: AdRef, event_time_ms: i64) -> TruthKey {
        TruthKey {
            minute_end_ms: Minute::of(event_time_ms).end_ms(),
            ad,
        }
    }
}

/// adclick's counting rule applied to click records, as they sit in a topic or an archive: an
/// impression counts once, in the minute of its earliest event time. The reference every
/// pipeline's output is checked against.
pub fn count_clicks<'a>(clicks: impl IntoIterator<Item = &'a Click>) -> BTreeMap<TruthKey, u64> {
    let mut first: HashMap<&[u8], (AdRef, i64)> = HashMap::new();
    for c in clicks {
        let ad = AdRef {
            advertiser_id: c.advertiser_id,
            campaign_id: c.campaign_id,
            ad_id: c.ad_id,
        };
        let earliest = first
            .entry(&c.impression_id)
            .or_insert((ad, c.event_time_ms));
        earliest.1 = earliest.1.min(c.event_time_ms);
    }
    let mut counts = BTreeMap::new();
    for (ad, t) in first.into_values() {
        *counts.entry(TruthKey::of(ad, t)).or_default() += 1;
    }
    counts
}

/// Totals of a run, written as `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub seed: u64,
    pub start_ms: i64,
    pub sends: u64,
    /// Unique clicks counted: the sum of `truth.csv`.
    pub clicks: u64,
    pub duplicates_sent: u64,
    /// Counted clicks whose event time lagged, within the allowed lateness / beyond it.
    pub late_clicks: u64,
    pub too_late_clicks: u64,
    pub forged_sent: u64,
    pub expired_sent: u64,
    /// Forged and expired sends the target refused, as it must.
    pub refused_as_expected: u64,
    /// Sends whose outcome was not what adclick promises (refused genuine click, accepted forgery,
    /// wrong redirect, transport error). The truth is exact only when this is 0.
    pub errors: u64,
    /// The first few errors, for the operator.
    pub error_examples: Vec<String>,
    pub elapsed_secs: f64,
    pub achieved_rate: f64,
    /// Time from a send's start to its answer (HTTP response, Kafka delivery report), every send.
    #[serde(default)]
    pub latency: LatencySummary,
    /// How late sends started against their planned instant. Near 0 when the generator held the
    /// planned rate (an open-loop run: `latency` is then what a client arriving at that rate
    /// sees); in a run planned faster than the target answers, the time sends waited for a free
    /// `max_in_flight` slot (a closed-loop run at the target's maximum rate).
    #[serde(default)]
    pub start_lag: LatencySummary,
}

/// Accumulates the truth as outcomes come in.
#[derive(Debug, Default)]
pub struct GroundTruth {
    counts: BTreeMap<TruthKey, u64>,
    /// The part of `counts` that arrives after its minute is final (beyond the allowed
    /// lateness): the stream counts it in `adclick_late_clicks`, the rollup in its minute.
    too_late: BTreeMap<TruthKey, u64>,
    /// Impressions whose first click failed while a duplicate is still to come: that duplicate,
    /// if acknowledged, is the impression's first counted click.
    failed_originals: HashSet<[u8; 16]>,
    pub summary: Summary,
}

const ERROR_EXAMPLES: usize = 10;

impl GroundTruth {
    pub fn new(seed: u64, start_ms: i64) -> GroundTruth {
        GroundTruth {
            summary: Summary {
                seed,
                start_ms,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Takes the outcome of one send into account.
    pub fn record(&mut self, send: &Send, outcome: &Outcome) {
        let s = &mut self.summary;
        s.sends += 1;
        let accepted = *outcome == Outcome::Accepted;
        let expected = match send.kind {
            SendKind::Click => {
                if accepted {
                    self.count(send);
                } else if send.duplicated_later {
                    self.failed_originals.insert(send.impression_id);
                }
                accepted
            }
            SendKind::Duplicate => {
                s.duplicates_sent += 1;
                if accepted && self.failed_originals.remove(&send.impression_id) {
                    self.count(send);
                }
                accepted
            }
            SendKind::Forged(_) | SendKind::Expired => {
                if matches!(send.kind, SendKind::Expired) {
                    s.expired_sent += 1;
                } else {
                    s.forged_sent += 1;
                }
                let refused = matches!(outcome, Outcome::Refused(400..=499));
                s.refused_as_expected += refused as u64;
                refused
            }
        };
        if !expected {
            let s = &mut self.summary;
            s.errors += 1;
            if s.error_examples.len() < ERROR_EXAMPLES {
                s.error_examples
                    .push(format!("send {} ({:?}): {outcome:?}", send.seq, send.kind));
            }
        }
    }

    fn count(&mut self, send: &Send) {
        let key = TruthKey::of(send.ad, send.event_time_ms);
        *self.counts.entry(key).or_default() += 1;
        self.summary.clicks += 1;
        match send.lateness {
            Lateness::OnTime => {}
            Lateness::Late => self.summary.late_clicks += 1,
            Lateness::TooLate => {
                self.summary.too_late_clicks += 1;
                *self.too_late.entry(key).or_default() += 1;
            }
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> &BTreeMap<TruthKey, u64> {
        &self.counts
    }

    /// The counts of clicks that arrive after their minute is final.
    pub fn too_late(&self) -> &BTreeMap<TruthKey, u64> {
        &self.too_late
    }

    /// Writes `truth.csv`, `too_late.csv` (the rows' part beyond the allowed lateness, same
    /// format) and `summary.json` into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        write_csv(&dir.join("truth.csv"), &self.counts)?;
        write_csv(&dir.join("too_late.csv"), &self.too_late)?;
        let json = serde_json::to_vec_pretty(&self.summary).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("summary.json"), json)
    }
}

fn write_csv(path: &Path, counts: &BTreeMap<TruthKey, u64>) -> std::io::Result<()> {
    let tmp = path.with_extension("csv.tmp");
    let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
    writeln!(out, "advertiser_id,campaign_id,ad_id,minute_end_ms,clicks")?;
    for (k, n) in counts {
        writeln!(
            out,
            "{},{},{},{},{n}",
            k.ad.advertiser_id, k.ad.campaign_id, k.ad.ad_id, k.minute_end_ms
        )?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(tmp, path)
}

/// Why a truth file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {what}")]
    Format {
        path: String,
        line: usize,
        what: String,
    },
}

/// Reads a `truth.csv` (or `too_late.csv`) back.
pub fn read_truth(path: &Path) -> Result<BTreeMap<TruthKey, u64>, ReadError> {
    let p = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| ReadError::Io {
        path: p.clone(),
        source,
    })?;
    let mut counts = BTreeMap::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| ReadError::Io {
            path: p.clone(),
            source,
        })?;
        let bad = |what: String| ReadError::Format {
            path: p.clone(),
            line: i + 1,
            what,
        };
        if i == 0 {
            if line != "advertiser_id,campaign_id,ad_id,minute_end_ms,clicks" {
                return Err(bad(format!("unexpected header {line:?}")));
            }
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let [adv, camp, ad, minute, clicks] = fields[..] else {
            return Err(bad(format!("expected 5 fields, got {}", fields.len())));
        };
        let num = |s: &str| s.parse::<i64>().map_err(|e| bad(format!("{s:?}: {e}")));
        let key = TruthKey {
            minute_end_ms: num(minute)?,
            ad: AdRef {
                advertiser_id: num(adv)? as u64,
                campaign_id: num(camp)? as u64,
                ad_id: num(ad)? as u64,
            },
        };
        if counts.insert(key, num(clicks)? as u64).is_some() {
            return Err(bad("duplicate row".into()));
        }
    }
    Ok(counts)
}

/// Reads a `summary.json` back.
pub fn read_summary(path: &Path) -> Result<Summary, ReadError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: p.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ReadError::Format {
        path: p,
        line: e.line(),
        what: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Forgery, Plan, PlanConfig};
    use crate::shape::TrafficShape;
    use std::collections::HashMap;

    fn plan() -> Vec<Send> {
        Plan::new(PlanConfig {
            seed: 9,
            start_ms: 1_800_000_030_000,
            duration_secs: 180.0,
            shape: TrafficShape::Steady { rate: 100.0 },
            duplicate_share: 0.1,
            late_share: 0.1,
            too_late_share: 0.05,
            forged_share: 0.02,
            expired_share: 0.02,
            ..Default::default()
        })
        .unwrap()
        .collect()
    }

    /// What a correct target answers.
    fn honest(send: &Send) -> Outcome {
        match send.kind {
            SendKind::Click | SendKind::Duplicate => Outcome::Accepted,
            SendKind::Forged(Forgery::UnknownKeyId) => Outcome::Refused(401),
            SendKind::Forged(Forgery::WrongKey) => Outcome::Refused(403),
            SendKind::Expired => Outcome::Refused(410),
        }
    }

    #[test]
    fn truth_counts_each_impression_once_in_its_event_minute() {
        let sends = plan();
        let mut truth = GroundTruth::new(9, 0);
        for s in &sends {
            truth.record(s, &honest(s));
        }
        // Independent recount: first click per impression, by event time, forged/expired excluded.
        let mut first: HashMap<[u8; 16], &Send> = HashMap::new();
        for s in sends
            .iter()
            .filter(|s| matches!(s.kind, SendKind::Click | SendKind::Duplicate))
        {
            let e = first.entry(s.impression_id).or_insert(s);
            if s.event_time_ms < e.event_time_ms {
                *e = s;
            }
        }
        let mut expected: BTreeMap<TruthKey, u64> = BTreeMap::new();
        for s in first.values() {
            let key = TruthKey::of(s.ad, s.event_time_ms);
            *expected.entry(key).or_default() += 1;
        }
        assert_eq!(truth.counts(), &expected);
        let sum = &truth.summary;
        assert_eq!(sum.errors, 0, "{:?}", sum.error_examples);
        assert_eq!(sum.clicks, first.len() as u64);
        assert_eq!(sum.refused_as_expected, sum.forged_sent + sum.expired_sent);
        assert!(sum.duplicates_sent > 100 && sum.late_clicks > 100 && sum.too_late_clicks > 50);
        // Late clicks sit in their event-time minute, not their send minute.
        let too_late = sends
            .iter()
            .find(|s| s.lateness == Lateness::TooLate && s.kind == SendKind::Click)
            .unwrap();
        let key = TruthKey::of(too_late.ad, too_late.event_time_ms);
        assert!(Minute::of(too_late.event_time_ms) < Minute::of(too_late.at_ms));
        assert!(truth.counts()[&key] >= 1);
    }

    #[test]
    fn a_failed_first_click_is_counted_by_its_duplicate() {
        let sends = plan();
        let orig = sends.iter().find(|s| s.duplicated_later).unwrap();
        let dup = sends
            .iter()
            .find(|s| s.kind == SendKind::Duplicate && s.impression_id == orig.impression_id)
            .unwrap();
        let mut truth = GroundTruth::new(0, 0);
        truth.record(orig, &Outcome::Failed("connection reset".into()));
        truth.record(dup, &Outcome::Accepted);
        let key = TruthKey::of(dup.ad, dup.event_time_ms);
        assert_eq!(truth.counts().get(&key), Some(&1));
        assert_eq!(truth.summary.clicks, 1);
        assert_eq!(truth.summary.errors, 1);
    }

    #[test]
    fn accepted_forgeries_are_errors_and_never_counted() {
        let sends = plan();
        let forged = sends
            .iter()
            .find(|s| matches!(s.kind, SendKind::Forged(_)))
            .unwrap();
        let mut truth = GroundTruth::new(0, 0);
        truth.record(forged, &Outcome::Accepted);
        assert_eq!(truth.summary.clicks, 0);
        assert_eq!(truth.summary.errors, 1);
    }

    #[test]
    fn files_round_trip() {
        let sends = plan();
        let mut truth = GroundTruth::new(9, 5);
        for s in &sends {
            truth.record(s, &honest(s));
        }
        let dir = tempfile::tempdir().unwrap();
        truth.write(dir.path()).unwrap();
        assert_eq!(
            &read_truth(&dir.path().join("truth.csv")).unwrap(),
            truth.counts()
        );
        assert_eq!(
            read_summary(&dir.path().join("summary.json")).unwrap(),
            truth.summary
        );
        std::fs::write(
            dir.path().join("bad.csv"),
            "advertiser_id,campaign_id,ad_id,minute_end_ms,clicks\n1,2,x,4,5\n",
        )
        .unwrap();
        let err = read_truth(&dir.path().join("bad.csv"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.csv:2"), "{err}");
    }
}
