//! The raw click archive's objects: their names and their bytes. The exporter writes them, the
//! daily rollup reads them; this module is the contract between the two.
//!
//! ## Names
//!
//! `{prefix}raw/dt=YYYY-MM-DD/hour=HH/topic={topic}/p={partition}/{first}-{last}.clicks`, where
//! `first` and `last` are the Kafka offsets of the first and last record inside, 20 digits, and
//! the date and hour (UTC) are those of the first record's Kafka timestamp. An object holds
//! records of one partition in offset order; offsets between `first` and `last` that are not
//! inside were not clicks (tick records, poison). A replay writes the same name with the same
//! bytes, so the archive holds every record once.
//!
//! The hour is the hour the record was *written*, not clicked: a click of day D can sit in
//! objects of day D+1 (a late click, a spill replayed after midnight) and, by up to 10 minutes,
//! of day D−1. A reader of day D reads `dt=D-1/hour=23` through the next day's objects and
//! selects by event time.
//!
//! ## Bytes
//!
//! The snappy *framing* format (with its CRC-32C per chunk) around:
//!
//! ```text
//! "ADCLKRAW"  u32 LE version (1)  u32 LE partition  u64 LE first offset  u64 LE last offset
//! u32 LE record count
//! record × count:  uvarint (offset − first offset)  uvarint length  the Kafka record value
//!                  (a click.proto `Click`, exactly the bytes the topic held)
//! "ADCLKEND"
//! ```
//!
//! A reader that does not find exactly `count` records followed by the end marker, or finds
//! bytes after it, has a truncated or corrupt object and must say so.

use std::io::{Read, Write};

/// First bytes of every decompressed object.
pub const MAGIC: &[u8; 8] = b"ADCLKRAW";
/// Last bytes of every decompressed object.
pub const END: &[u8; 8] = b"ADCLKEND";
/// The one version written.
pub const VERSION: u32 = 1;
/// File name suffix of archive objects.
pub const SUFFIX: &str = ".clicks";

/// One archived record: its Kafka offset and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedRecord {
    pub offset: i64,
    pub value: Vec<u8>,
}

/// A decoded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveObject {
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: Vec<ArchivedRecord>,
}

/// Why bytes are not a valid archive object.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not snappy-framed or corrupt (checksum): {0}")]
    Snappy(std::io::Error),
    #[error("does not start with the archive magic")]
    BadMagic,
    #[error("version {0}, this reader knows {VERSION}")]
    Version(u32),
    #[error("truncated: {0}")]
    Truncated(&'static str),
    #[error("record {index}: offset {offset} outside {first}..={last}")]
    OffsetRange {
        index: usize,
        offset: i64,
        first: i64,
        last: i64,
    },
    #[error("no end marker after {0} records, or bytes after it")]
    BadEnd(u32),
}

/// The object name of records `first..=last` of `topic`'s `partition`, whose first record was
/// written at `first_timestamp_ms`.
pub fn object_key(
    prefix: &str,
    topic: &str,
    partition: i32,
    first_timestamp_ms: i64,
    first: i64,
    last: i64,
) -> String {
    let (date, hour) = utc_date_hour(first_timestamp_ms);
    format!(
        "{prefix}raw/dt={date}/hour={hour:02}/topic={topic}/p={partition}/{first:020}-{last:020}{SUFFIX}"
    )
}

/// What an object's name says: the partition and offset range it holds (the rest of the name,
/// date, hour and topic, is how objects are found, not what they hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectName {
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// Reads `.../p={partition}/{first}-{last}.clicks`, the end of an [`object_key`]; `None` for any
/// other name (an operator's stray file is not an archive object).
pub fn parse_object_key(key: &str) -> Option<ObjectName> {
    let rest = key.strip_suffix(SUFFIX)?;
    let (dir, file) = rest.rsplit_once('/')?;
    let (first, last) = file.split_once('-')?;
    let partition = dir
        .rsplit_once('/')
        .map_or(dir, |(_, p)| p)
        .strip_prefix("p=")?;
    let name = ObjectName {
        partition: partition.parse().ok()?,
        first_offset: first.parse().ok()?,
        last_offset: last.parse().ok()?,
    };
    (name.partition >= 0 && name.first_offset >= 0 && name.first_offset <= name.last_offset)
        .then_some(name)
}

/// The name prefix of every object written during one UTC hour (`date` as `YYYY-MM-DD`).
pub fn hour_prefix(prefix: &str, date: &str, hour: u32) -> String {
    format!("{prefix}raw/dt={date}/hour={hour:02}/")
}

/// `YYYY-MM-DD` and hour of a time in ms since the epoch, UTC.
pub fn utc_date_hour(ms: i64) -> (String, u32) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let hour = (secs.rem_euclid(86_400) / 3600) as u32;
    let (y, m, d) = civil_from_days(days);
    (format!("{y:04}-{m:02}-{d:02}"), hour)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DD` of a UTC day given as days since 1970-01-01.
pub fn day_name(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` day (UTC); `None` for anything else, and for a name
/// of a day that does not exist (2026-02-30 would otherwise map to a real day of another name).
pub fn parse_day(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let mut next = |len: usize| {
        parts
            .next()
            .filter(|p| p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u32>().ok())
    };
    let (y, m, d) = (next(4)?, next(2)?, next(2)?);
    let days = days_from_civil(i64::from(y), m, d);
    (civil_from_days(days) == (i64::from(y), m, d)).then_some(days)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The bytes of an object holding `records` (offsets ascending) of `partition`.
pub fn encode(partition: i32, records: &[(i64, &[u8])]) -> Vec<u8> {
    let first = records.first().map_or(0, |r| r.0);
    let last = records.last().map_or(0, |r| r.0);
    let mut raw = Vec::with_capacity(36 + records.iter().map(|r| r.1.len() + 6).sum::<usize>());
    raw.extend_from_slice(MAGIC);
    raw.extend_from_slice(&VERSION.to_le_bytes());
    raw.extend_from_slice(&partition.to_le_bytes());
    raw.extend_from_slice(&(first as u64).to_le_bytes());
    raw.extend_from_slice(&(last as u64).to_le_bytes());
    raw.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for (offset, value) in records {
        put_uvarint(&mut raw, (offset - first) as u64);
        put_uvarint(&mut raw, value.len() as u64);
        raw.extend_from_slice(value);
    }
    raw.extend_from_slice(END);
    let mut out = snap::write::FrameEncoder::new(Vec::with_capacity(raw.len() / 2 + 64));
    out.write_all(&raw).expect("writing to memory");
    out.into_inner().expect("writing to memory")
}

/// Reads an object's bytes, checking everything the format promises.
pub fn decode(bytes: &[u8]) -> Result<ArchiveObject, ArchiveError> {
    let mut raw = Vec::with_capacity(bytes.len() * 2);
    snap::read::FrameDecoder::new(bytes)
        .read_to_end(&mut raw)
        .map_err(ArchiveError::Snappy)?;
    let mut r = Cursor { buf: &raw, pos: 0 };
    if r.take(8, "header")? != MAGIC {
        return Err(ArchiveError::BadMagic);
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(ArchiveError::Version(version));
    }
    let partition = r.u32()? as i32;
    let first_offset = r.u64()? as i64;
    let last_offset = r.u64()? as i64;
    let count = r.u32()?;
    let mut records = Vec::with_capacity(count.min(1 << 20) as usize);
    for index in 0..count as usize {
        let offset = first_offset + r.uvarint()? as i64;
        if offset > last_offset {
            return Err(ArchiveError::OffsetRange {
                index,
                offset,
                first: first_offset,
                last: last_offset,
            });
        }
        let len = r.uvarint()? as usize;
        let value = r.take(len, "record value")?.to_vec();
        records.push(ArchivedRecord { offset, value });
    }
    if r.buf.len() != r.pos + END.len() || &r.buf[r.pos..] != END {
        return Err(ArchiveError::BadEnd(count));
    }
    Ok(ArchiveObject {
        partition,
        first_offset,
        last_offset,
        records,
    })
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ArchiveError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or(ArchiveError::Truncated(what))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, ArchiveError> {
        Ok(u32::from_le_bytes(
            self.take(4, "header")?.try_into().expect("4"),
        ))
    }
    fn u64(&mut self) -> Result<u64, ArchiveError> {
        Ok(u64::from_le_bytes(
            self.take(8, "header")?.try_into().expect("8"),
        ))
    }
    fn uvarint(&mut self) -> Result<u64, ArchiveError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1, "record header")?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ArchiveError::Truncated("varint longer than 64 bits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_parse_back() {
        let key = object_key("t1/", "clicks", 3, 0, 120, 4_000);
        assert_eq!(
            parse_object_key(&key),
            Some(ObjectName {
                partition: 3,
                first_offset: 120,
                last_offset: 4_000
            })
        );
        for stray in [
            "t1/raw/dt=2026-11-23/hour=14/topic=clicks/p=3/notes.txt",
            "t1/raw/dt=2026-11-23/hour=14/topic=clicks/p=x/1-2.clicks",
            "t1/raw/dt=2026-11-23/hour=14/topic=clicks/p=3/9-2.clicks",
            "t1/raw/dt=2026-11-23/hour=14/topic=clicks/3/1-2.clicks",
        ] {
            assert_eq!(parse_object_key(stray), None, "{stray}");
        }
    }

    #[test]
    fn names_sort_by_hour_then_offset() {
        // 2026-11-23T14:05:00Z
        let ms = days_from_civil(2026, 11, 23) * 86_400_000 + 14 * 3_600_000 + 300_000;
        assert_eq!(
            object_key("t1/", "clicks", 3, ms, 120, 4_000),
            "t1/raw/dt=2026-11-23/hour=14/topic=clicks/p=3/\
             00000000000000000120-00000000000000004000.clicks"
        );
        assert_eq!(utc_date_hour(0), ("1970-01-01".into(), 0));
        assert_eq!(utc_date_hour(-1), ("1969-12-31".into(), 23));
    }

    #[test]
    fn truncation_and_corruption_are_errors() {
        let bytes = encode(2, &[(10, b"abc"), (12, b"")]);
        let obj = decode(&bytes).unwrap();
        assert_eq!((obj.first_offset, obj.last_offset), (10, 12));
        assert_eq!(obj.records[1].offset, 12);
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x40;
        assert!(decode(&flipped).is_err());
    }

    proptest! {
        #[test]
        fn objects_round_trip(
            start in 0i64..1 << 40,
            gaps_values in proptest::collection::vec((0i64..5, proptest::collection::vec(any::<u8>(), 0..60)), 0..50),
        ) {
            let mut offset = start;
            let mut records = vec![];
            for (gap, value) in &gaps_values {
                offset += gap + 1;
                records.push((offset, value.as_slice()));
            }
            let obj = decode(&encode(7, &records)).unwrap();
            prop_assert_eq!(obj.partition, 7);
            let back: Vec<(i64, &[u8])> = obj.records.iter().map(|r| (r.offset, r.value.as_slice())).collect();
            prop_assert_eq!(back, records);
        }

        #[test]
        fn dates_round_trip(days in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
