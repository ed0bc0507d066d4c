//! Reading the day from the raw archive: which objects, in what shape, and what to do with one
//! that is not what its name says.
//!
//! Objects are named by the UTC hour their first record was *written* (the Kafka timestamp),
//! not by the clicks' event time, so a day is read from a wider range of hours: the look-back
//! and [`RollupConfig::read_before_ms`] before it, [`RollupConfig::read_after_ms`] after it.
//! Records are then kept or left by their event time ([`crate::settle`]).
//!
//! Two objects of one partition may overlap in offsets (an exporter whose object size settings
//! changed between a crash and its replay cuts different objects from the same records). Objects
//! are ordered per partition by offsets, and a record at an offset an earlier object already
//! holds is read once.
//!
//! A corrupt object (bad checksum, truncated, a record that is not a valid click, contents that
//! disagree with the name) is never read as if it were fine: it is listed with its name and the
//! reason, and the run decides ([`crate::outcome`]).
//!
//! [`RollupConfig::read_before_ms`]: crate::RollupConfig::read_before_ms
//! [`RollupConfig::read_after_ms`]: crate::RollupConfig::read_after_ms

use std::collections::BTreeMap;

use adclick_click::archive::{self, ObjectName, hour_prefix, parse_object_key, utc_date_hour};
use adclick_click::day::{Day, HOUR_MS};
use adclick_click::wire::Click;
use adclick_objstore::StoreError;
use aws_sdk_s3::Client;
use futures::StreamExt;
use serde::Serialize;

/// One archive object to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub key: String,
    pub size: u64,
    pub name: ObjectName,
    /// Records at or below this offset are in an earlier object of the partition.
    pub read_after_offset: i64,
}

/// The objects of a day, found by listing.
#[derive(Debug, Clone, Default)]
pub struct ScanPlan {
    pub objects: Vec<ObjectRef>,
    pub bytes: u64,
    /// The hours listed, `[first, end)` in ms.
    pub hours_ms: (i64, i64),
    /// Names under the archive hours that are not archive objects (left alone, reported).
    pub foreign: Vec<String>,
}

/// An object that could not be read as what it claims to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorruptObject {
    pub key: String,
    pub reason: String,
    /// Valid clicks read from it anyway (when single records were invalid): with
    /// `--skip-corrupt` they count; without, the day is not written.
    pub clicks_kept: u64,
}

/// What a scan needs to know about where the archive is.
#[derive(Debug, Clone)]
pub struct ArchiveLocation<'a> {
    pub bucket: &'a str,
    /// `[rollup] archive_prefix`.
    pub prefix: &'a str,
    pub topic: &'a str,
}

/// The hours of archive objects that can hold clicks of `day` or of its look-back.
pub fn hours_to_read(day: Day, lookback_ms: i64, before_ms: i64, after_ms: i64) -> (i64, i64) {
    let (from, to) = day.event_window_ms();
    let first = (from - lookback_ms - before_ms).div_euclid(HOUR_MS) * HOUR_MS;
    let end = (to + after_ms + HOUR_MS - 1).div_euclid(HOUR_MS) * HOUR_MS;
    (first, end)
}

/// Lists the objects of the hours `hours_ms` and orders them for reading.
pub async fn plan(
    s3: &Client,
    at: &ArchiveLocation<'_>,
    hours_ms: (i64, i64),
) -> Result<ScanPlan, StoreError> {
    let mut found = Vec::new();
    let mut foreign = Vec::new();
    let mut hour = hours_ms.0;
    while hour < hours_ms.1 {
        let (date, h) = utc_date_hour(hour);
        let prefix = format!("{}topic={}/", hour_prefix(at.prefix, &date, h), at.topic);
        for (key, size) in adclick_objstore::list(s3, at.bucket, &prefix).await? {
            match parse_object_key(&key) {
                Some(name) => found.push((key, size, name)),
                None => foreign.push(key),
            }
        }
        hour += HOUR_MS;
    }
    let objects = order_objects(found);
    let bytes = objects.iter().map(|o| o.size).sum();
    Ok(ScanPlan {
        objects,
        bytes,
        hours_ms,
        foreign,
    })
}

/// Orders objects per partition by offsets and sets where each one's new records begin.
fn order_objects(mut found: Vec<(String, u64, ObjectName)>) -> Vec<ObjectRef> {
    found.sort_by_key(|(key, _, n)| (n.partition, n.first_offset, n.last_offset, key.clone()));
    let mut read_through: BTreeMap<i32, i64> = BTreeMap::new();
    found
        .into_iter()
        .map(|(key, size, name)| {
            let through = read_through.entry(name.partition).or_insert(-1);
            let read_after_offset = *through;
            *through = (*through).max(name.last_offset);
            ObjectRef {
                key,
                size,
                name,
                read_after_offset,
            }
        })
        .collect()
}

/// The clicks of one object, or why it is corrupt.
#[derive(Debug)]
pub struct ReadObject {
    pub object: ObjectRef,
    pub clicks: Vec<Click>,
    /// Records skipped because an earlier object holds them.
    pub overlapping: u64,
    pub corrupt: Option<CorruptObject>,
}

/// Checks and decodes an object's bytes (CPU work: run it off the async threads).
pub fn decode_object(object: ObjectRef, bytes: &[u8]) -> ReadObject {
    let corrupt = |object: ObjectRef, reason: String| ReadObject {
        corrupt: Some(CorruptObject {
            key: object.key.clone(),
            reason,
            clicks_kept: 0,
        }),
        object,
        clicks: vec![],
        overlapping: 0,
    };
    let decoded = match archive::decode(bytes) {
        Ok(d) => d,
        Err(e) => return corrupt(object, e.to_string()),
    };
    let n = &object.name;
    if (decoded.partition, decoded.first_offset, decoded.last_offset)
        != (n.partition, n.first_offset, n.last_offset)
    {
        let reason = format!(
            "holds partition {} offsets {}..={}, its name says partition {} offsets {}..={}",
            decoded.partition,
            decoded.first_offset,
            decoded.last_offset,
            n.partition,
            n.first_offset,
            n.last_offset
        );
        return corrupt(object, reason);
    }
    let mut clicks = Vec::with_capacity(decoded.records.len());
    let mut overlapping = 0;
    let mut invalid: Vec<String> = Vec::new();
    let mut invalid_count = 0usize;
    for record in decoded.records {
        if record.offset <= object.read_after_offset {
            overlapping += 1;
            continue;
        }
        match Click::decode_valid(&record.value) {
            Ok(click) => clicks.push(click),
            Err(e) => {
                invalid_count += 1;
                if invalid.len() < 3 {
                    invalid.push(format!("offset {}: {e:?}", record.offset));
                }
            }
        }
    }
    let corrupt = (invalid_count > 0).then(|| CorruptObject {
        key: object.key.clone(),
        reason: format!(
            "{invalid_count} records are not valid clicks (first: {})",
            invalid.join("; ")
        ),
        clicks_kept: clicks.len() as u64,
    });
    ReadObject {
        object,
        clicks,
        overlapping,
        corrupt,
    }
}

/// Fetches and decodes the planned objects, `concurrency` at a time, handing each to `each` as
/// it is ready (in no particular order). A failing fetch (the store, not the object) ends the
/// scan with its error.
pub async fn read_all(
    s3: &Client,
    bucket: &str,
    objects: Vec<ObjectRef>,
    concurrency: usize,
    mut each: impl FnMut(ReadObject),
) -> Result<(), StoreError> {
    let fetches = futures::stream::iter(objects).map(|object| async move {
        let bytes = adclick_objstore::get(s3, bucket, &object.key).await?;
        let Some(bytes) = bytes else {
            // Listed a moment ago, gone now: say so rather than count a day without it.
            return Ok(ReadObject {
                corrupt: Some(CorruptObject {
                    key: object.key.clone(),
                    reason: "listed but gone when fetched".into(),
                    clicks_kept: 0,
                }),
                object,
                clicks: vec![],
                overlapping: 0,
            });
        };
        let read = tokio::task::spawn_blocking(move || decode_object(object, &bytes))
            .await
            .expect("decoding does not panic");
        Ok::<_, StoreError>(read)
    });
    let mut reads = fetches.buffer_unordered(concurrency.max(1));
    while let Some(read) = reads.next().await {
        each(read?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(partition: i32, first: i64, last: i64) -> (String, u64, ObjectName) {
        (
            format!("p={partition}/{first}-{last}.clicks"),
            1,
            ObjectName {
                partition,
                first_offset: first,
                last_offset: last,
            },
        )
    }

    #[test]
    fn overlapping_objects_are_read_once() {
        let ordered = order_objects(vec![
            name(0, 100, 199),
            name(1, 0, 9),
            name(0, 0, 149),
            name(0, 150, 299),
        ]);
        let got: Vec<(i32, i64, i64)> = ordered
            .iter()
            .map(|o| (o.name.partition, o.name.first_offset, o.read_after_offset))
            .collect();
        assert_eq!(
            got,
            vec![(0, 0, -1), (0, 100, 149), (0, 150, 199), (1, 0, -1)]
        );
    }

    #[test]
    fn corrupt_objects_say_why() {
        let object = |first, last| ObjectRef {
            key: "k".into(),
            size: 0,
            name: ObjectName {
                partition: 2,
                first_offset: first,
                last_offset: last,
            },
            read_after_offset: -1,
        };
        let good = Click {
            impression_id: vec![1; 16],
            ad_id: 1,
            campaign_id: 1,
            advertiser_id: 1,
            event_time_ms: 1,
            ..Default::default()
        };
        let good = prost::Message::encode_to_vec(&good);
        let bytes = archive::encode(2, &[(5, &good), (6, b"\xff\xff")]);
        let read = decode_object(object(5, 6), &bytes);
        assert_eq!(read.clicks.len(), 1);
        let corrupt = read.corrupt.unwrap();
        assert!(
            corrupt
                .reason
                .contains("1 records are not valid clicks (first: offset 6"),
            "{}",
            corrupt.reason
        );
        assert_eq!(corrupt.clicks_kept, 1);

        let read = decode_object(object(5, 7), &bytes);
        assert!(read.corrupt.unwrap().reason.contains("its name says"));
        let read = decode_object(object(5, 6), &bytes[..bytes.len() - 3]);
        assert!(read.corrupt.is_some() && read.clicks.is_empty());
    }
}
