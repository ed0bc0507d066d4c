//! The raw archive: every click record of a partition, cut into immutable objects at points
//! that depend only on the log, and uploaded to the bucket (format and names:
//! [`adclick_click::archive`]).
//!
//! An object ends after `max_records` records or `max_bytes` bytes of values, before the first
//! record written in a later hour than the object's first, and at a tick record (a partition
//! that went quiet). None of these reads a clock, so a replay from a checkpoint cuts the same
//! objects and rewrites the same names with the same bytes.

use std::sync::Arc;

use adclick_click::archive::{self, object_key};
use adclick_objstore::StoreError;
use aws_sdk_s3::Client;

const HOUR_MS: i64 = 3_600_000;

/// Where objects go and how large they grow.
#[derive(Debug, Clone)]
pub struct ArchiveTarget {
    pub bucket: String,
    /// Prepended to every object name (e.g. `prod/`); may be empty.
    pub prefix: String,
    pub topic: String,
    pub max_records: usize,
    pub max_bytes: usize,
}

/// An object ready to upload.
#[derive(Debug, Clone)]
pub struct SealedObject {
    pub key: String,
    pub body: Vec<u8>,
    pub records: usize,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug)]
struct OpenObject {
    first_timestamp_ms: i64,
    hour: i64,
    max_event_before: Option<i64>,
    /// Each record's offset and where its value ends in `values`.
    records: Vec<(i64, usize)>,
    /// The values, one after another: one buffer per object rather than one per record.
    values: Vec<u8>,
}

/// The object being filled for one partition.
#[derive(Debug)]
pub struct ArchiveBuffer {
    target: Arc<ArchiveTarget>,
    partition: i32,
    /// Records before this offset are in objects already (known from the checkpoint).
    archived_before: i64,
    open: Option<OpenObject>,
}

impl ArchiveBuffer {
    pub fn new(target: Arc<ArchiveTarget>, partition: i32, archived_before: i64) -> ArchiveBuffer {
        ArchiveBuffer {
            target,
            partition,
            archived_before,
            open: None,
        }
    }

    /// Adds a click record. `max_event_before` is the partition's highest event time before it
    /// (a replay that starts at this object's first record needs it). May seal an object.
    pub fn push(
        &mut self,
        offset: i64,
        timestamp_ms: i64,
        value: &[u8],
        max_event_before: Option<i64>,
    ) -> Option<SealedObject> {
        if offset < self.archived_before {
            return None;
        }
        let hour = timestamp_ms.div_euclid(HOUR_MS);
        let mut sealed = None;
        if self.open.as_ref().is_some_and(|o| hour > o.hour) {
            sealed = self.seal();
        }
        let open = self.open.get_or_insert_with(|| OpenObject {
            first_timestamp_ms: timestamp_ms,
            hour,
            max_event_before,
            records: Vec::new(),
            values: Vec::new(),
        });
        open.values.extend_from_slice(value);
        open.records.push((offset, open.values.len()));
        if open.records.len() >= self.target.max_records
            || open.values.len() >= self.target.max_bytes
        {
            debug_assert!(sealed.is_none(), "a fresh object holds one record");
            sealed = self.seal();
        }
        sealed
    }

    /// A tick record: the partition went quiet, so the open object is sealed.
    pub fn tick(&mut self) -> Option<SealedObject> {
        self.seal()
    }

    /// The first offset of the open object and the highest event time before it: a replay must
    /// start there to rebuild it.
    pub fn replay_start(&self) -> Option<(i64, Option<i64>)> {
        self.open
            .as_ref()
            .map(|o| (o.records[0].0, o.max_event_before))
    }

    /// Records before this offset are in sealed objects: those of the open object's start, else
    /// every record read, and never fewer than the buffer started with (a replay skips records
    /// archived before it, so a buffer resumed behind them has read none of them yet).
    pub fn archived_before(&self, position: i64) -> i64 {
        self.replay_start()
            .map_or(position.max(self.archived_before), |(o, _)| o)
    }

    /// Whether an object is open (a tick would seal it).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    fn seal(&mut self) -> Option<SealedObject> {
        let open = self.open.take()?;
        let first = open.records[0].0;
        let last = open.records[open.records.len() - 1].0;
        let mut start = 0;
        let refs: Vec<(i64, &[u8])> = open
            .records
            .iter()
            .map(|&(o, end)| {
                let value = &open.values[start..end];
                start = end;
                (o, value)
            })
            .collect();
        let body = archive::encode(self.partition, &refs);
        self.archived_before = last + 1;
        Some(SealedObject {
            key: object_key(
                &self.target.prefix,
                &self.target.topic,
                self.partition,
                open.first_timestamp_ms,
                first,
                last,
            ),
            body,
            records: open.records.len(),
            first_offset: first,
            last_offset: last,
        })
    }
}

/// Uploads one object. Retries are the caller's: an object is immutable, so putting it again
/// is always safe.
pub async fn upload(s3: &Client, bucket: &str, object: &SealedObject) -> Result<(), StoreError> {
    let body = object.body.clone();
    adclick_objstore::put_typed(s3, bucket, &object.key, body, CONTENT_TYPE).await
}

/// What a browser of the bucket is told an archive object is.
const CONTENT_TYPE: &str = "application/x-adclick-clicks";

#[cfg(test)]
mod tests {
    use super::*;

    fn target(max_records: usize) -> Arc<ArchiveTarget> {
        Arc::new(ArchiveTarget {
            bucket: "b".into(),
            prefix: "".into(),
            topic: "clicks".into(),
            max_records,
            max_bytes: 1 << 20,
        })
    }

    #[test]
    fn objects_cut_at_size_hour_and_tick() {
        let mut buf = ArchiveBuffer::new(target(3), 0, 0);
        let t = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS;
        assert!(buf.push(0, t, b"a", None).is_none());
        assert!(buf.push(1, t + 1, b"b", None).is_none());
        let full = buf.push(2, t + 2, b"c", None).unwrap();
        assert_eq!(
            (full.first_offset, full.last_offset, full.records),
            (0, 2, 3)
        );
        assert!(buf.push(4, t + HOUR_MS - 1, b"d", None).is_none());
        // An earlier timestamp does not cut (clocks of producers differ); a later hour does.
        assert!(buf.push(5, t, b"e", None).is_none());
        let hour = buf.push(6, t + HOUR_MS, b"f", Some(9)).unwrap();
        assert_eq!((hour.first_offset, hour.last_offset), (4, 5));
        assert_eq!(buf.replay_start(), Some((6, Some(9))));
        let ticked = buf.tick().unwrap();
        assert_eq!((ticked.first_offset, ticked.last_offset), (6, 6));
        assert!(buf.tick().is_none());
        assert_eq!(buf.archived_before(10), 10);
    }

    #[test]
    fn records_already_archived_are_skipped() {
        let mut buf = ArchiveBuffer::new(target(2), 0, 5);
        assert!(buf.push(4, 0, b"x", None).is_none());
        assert!(!buf.is_open());
        buf.push(5, 0, b"y", None);
        assert_eq!(buf.replay_start(), Some((5, None)));
    }
}
