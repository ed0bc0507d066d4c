//! What a record of the clicks topic is to the exporter: a click it counts, a tick that moves an
//! idle partition's event time forward, or poison it dead-letters with a reason.
//!
//! Ticks are control records the exporter itself writes into a partition that has gone quiet
//! (see [`crate::ticker`]): header `adclick-control: tick`, header `adclick-event-time-ms` with
//! the time in decimal, no value. Being in the log, a tick is seen again by every replay at the
//! same position, so closing minutes of an idle partition stays reproducible. Every reader of
//! the topic that counts clicks skips records carrying an `adclick-control` header.

use adclick_click::Click;
use adclick_click::minute::MINUTE_MS;

/// Header naming a control record; its value says which.
pub const CONTROL_HEADER: &str = "adclick-control";
/// `CONTROL_HEADER` value of a tick.
pub const TICK: &str = "tick";
/// Header carrying a tick's event time, ms since the epoch, decimal.
pub const TICK_TIME_HEADER: &str = "adclick-event-time-ms";

/// Bounds on a click's event time, relative to its record's Kafka timestamp (so that a replay,
/// reading the same timestamps, decides the same).
#[derive(Debug, Clone, Copy)]
pub struct EventTimeBounds {
    /// Event times further ahead than this are refused (Prometheus refuses samples more than
    /// 10 minutes in the future, and a click cannot happen after its record was written).
    pub max_future_ms: i64,
    /// Clicks whose minute ended longer ago than this are refused: Prometheus would not take a
    /// sample that old. They stay in the raw archive, and the rollup counts them.
    pub max_age_ms: i64,
}

/// Why a record is dead-lettered; the value of the `adclick-dead-letter-reason` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Poison {
    /// No value at all.
    Empty,
    /// The value is not a protobuf `Click`.
    Undecodable,
    /// The impression id is not 16 bytes.
    BadImpressionId,
    /// An ad, campaign or advertiser id is zero.
    MissingId,
    /// `event_time_ms` is not set.
    MissingEventTime,
    /// The event time is more than `max_future_ms` after the record's timestamp.
    Future,
    /// The click's minute ended more than `max_age_ms` before the record's timestamp.
    TooOld,
    /// An `adclick-control` record this exporter does not understand.
    BadControl,
}

impl Poison {
    pub const ALL: [Poison; 8] = [
        Poison::Empty,
        Poison::Undecodable,
        Poison::BadImpressionId,
        Poison::MissingId,
        Poison::MissingEventTime,
        Poison::Future,
        Poison::TooOld,
        Poison::BadControl,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Poison::Empty => "empty",
            Poison::Undecodable => "undecodable",
            Poison::BadImpressionId => "bad_impression_id",
            Poison::MissingId => "missing_id",
            Poison::MissingEventTime => "missing_event_time",
            Poison::Future => "future_event_time",
            Poison::TooOld => "too_old",
            Poison::BadControl => "bad_control_record",
        }
    }

    /// Whether the record is still a genuine click that the raw archive keeps (the rollup counts
    /// it) although the stream cannot write it.
    pub fn is_archived(self) -> bool {
        self == Poison::TooOld
    }
}

/// One record, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Click { click: Click, impression: u128 },
    Tick { event_time_ms: i64 },
    Poison { reason: Poison, detail: String },
}

/// Classifies a record from its control header (if any), value and Kafka timestamp (ms; None
/// when the broker gave none, which skips the bounds that need it).
pub fn classify(
    control: Option<(&[u8], Option<&[u8]>)>,
    value: Option<&[u8]>,
    timestamp_ms: Option<i64>,
    bounds: &EventTimeBounds,
) -> Record {
    if let Some((kind, time)) = control {
        return classify_control(kind, time);
    }
    let Some(value) = value else {
        return poison(Poison::Empty, "the record has no value");
    };
    let click = match Click::decode_valid(value) {
        Ok(click) => click,
        Err(e) => {
            let reason = match e {
                adclick_click::wire::InvalidClick::Undecodable(_) => Poison::Undecodable,
                adclick_click::wire::InvalidClick::ImpressionIdLength(_) => Poison::BadImpressionId,
                adclick_click::wire::InvalidClick::ZeroId(_) => Poison::MissingId,
            };
            return poison(reason, &e.to_string());
        }
    };
    if click.event_time_ms <= 0 {
        return poison(Poison::MissingEventTime, "event_time_ms is not set");
    }
    if let Some(ts) = timestamp_ms {
        if click.event_time_ms > ts.saturating_add(bounds.max_future_ms) {
            return poison(
                Poison::Future,
                &format!(
                    "event time {} is {} ms after the record's timestamp {ts}",
                    click.event_time_ms,
                    click.event_time_ms - ts
                ),
            );
        }
        let minute_end = click.event_time_ms.div_euclid(MINUTE_MS) * MINUTE_MS + MINUTE_MS;
        if minute_end < ts.saturating_sub(bounds.max_age_ms) {
            return poison(
                Poison::TooOld,
                &format!(
                    "event time {} is older than {} ms before the record's timestamp {ts}",
                    click.event_time_ms, bounds.max_age_ms
                ),
            );
        }
    }
    // click.proto's dedup identity: a request-invalid record never hides the impression's click.
    let impression = click.dedup_identity().expect("validated length");
    Record::Click { click, impression }
}

fn classify_control(kind: &[u8], time: Option<&[u8]>) -> Record {
    let time = time
        .and_then(|t| std::str::from_utf8(t).ok())
        .and_then(|t| t.parse::<i64>().ok());
    match (kind, time) {
        (k, Some(event_time_ms)) if k == TICK.as_bytes() && event_time_ms > 0 => {
            Record::Tick { event_time_ms }
        }
        _ => poison(
            Poison::BadControl,
            &format!(
                "control record {:?} without a valid {TICK_TIME_HEADER}",
                String::from_utf8_lossy(kind)
            ),
        ),
    }
}

fn poison(reason: Poison, detail: &str) -> Record {
    Record::Poison {
        reason,
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    const BOUNDS: EventTimeBounds = EventTimeBounds {
        max_future_ms: 600_000,
        max_age_ms: 5_400_000,
    };
    const TS: i64 = 1_800_000_000_000;

    fn click() -> Click {
        Click {
            impression_id: vec![1; 16],
            ad_id: 1,
            campaign_id: 2,
            advertiser_id: 3,
            event_time_ms: TS - 1_000,
            ..Default::default()
        }
    }

    fn reason(value: &[u8]) -> Option<Poison> {
        match classify(None, Some(value), Some(TS), &BOUNDS) {
            Record::Poison { reason, .. } => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn a_valid_click_is_a_click() {
        let r = classify(None, Some(&click().encode_to_vec()), Some(TS), &BOUNDS);
        assert!(
            matches!(r, Record::Click { impression, .. } if impression == u128::from_be_bytes([1; 16]))
        );
    }

    #[test]
    fn poison_is_named() {
        assert_eq!(reason(&[0xff, 0xff, 0xff]), Some(Poison::Undecodable));
        let mut c = click();
        c.impression_id = vec![1; 3];
        assert_eq!(reason(&c.encode_to_vec()), Some(Poison::BadImpressionId));
        let mut c = click();
        c.campaign_id = 0;
        assert_eq!(reason(&c.encode_to_vec()), Some(Poison::MissingId));
        let mut c = click();
        c.event_time_ms = 0;
        assert_eq!(reason(&c.encode_to_vec()), Some(Poison::MissingEventTime));
        let mut c = click();
        c.event_time_ms = TS + 600_001;
        assert_eq!(reason(&c.encode_to_vec()), Some(Poison::Future));
        c.event_time_ms = TS + 600_000;
        assert_eq!(reason(&c.encode_to_vec()), None);
        let mut c = click();
        c.event_time_ms = TS - 5_400_000 - 60_001;
        assert_eq!(reason(&c.encode_to_vec()), Some(Poison::TooOld));
        assert!(matches!(
            classify(None, None, Some(TS), &BOUNDS),
            Record::Poison {
                reason: Poison::Empty,
                ..
            }
        ));
    }

    #[test]
    fn ticks_carry_their_time() {
        assert_eq!(
            classify(Some((b"tick", Some(b"123"))), None, None, &BOUNDS),
            Record::Tick { event_time_ms: 123 }
        );
        assert!(matches!(
            classify(Some((b"tick", Some(b"x"))), None, None, &BOUNDS),
            Record::Poison {
                reason: Poison::BadControl,
                ..
            }
        ));
        assert!(matches!(
            classify(Some((b"flush", Some(b"1"))), None, None, &BOUNDS),
            Record::Poison {
                reason: Poison::BadControl,
                ..
            }
        ));
    }
}
