//! The spill: a local append-only log that makes a click durable when Kafka cannot acknowledge it
//! in time, so the user's redirect never waits for the broker.
//!
//! # On disk
//!
//! A folder of segment files `{id:020}.spill`, oldest first. A segment is a sequence of records:
//!
//! | field | size | content |
//! |---|---|---|
//! | length `n` | 4 bytes, little endian | payload length, `1..=MAX_PAYLOAD` |
//! | checksum | 4 bytes, little endian | CRC-32C (Castagnoli) of the payload |
//! | payload | `n` bytes | key length (2 bytes LE), Kafka key, Kafka value (a `Click`) |
//!
//! # Durability: group fsync
//!
//! One writer thread owns the active segment. Appends queue up on a channel; the thread takes
//! everything queued, writes it with one `write`, calls `fdatasync` once, and only then answers
//! each append. A click is acknowledged (its 302 sent) after its answer, so every acknowledged
//! click is on disk, and under load one fsync covers many clicks. A new segment's directory entry
//! is fsynced too, or a crash could lose the whole file.
//!
//! When a write or fsync fails the spill is marked broken and refuses every later append: after a
//! failed fsync the kernel may have dropped the dirty pages, so nothing written since the last
//! good fsync can be trusted. A restart (which re-reads and checks every record) is the way back.
//!
//! # Replay, and the order of an impression's records
//!
//! [`Spill::seal`] closes the active segment and lists the sealed ones; the replay task
//! (`crate::replay`) produces a sealed segment's records and, once Kafka acknowledged all of them,
//! [`Spill::remove`]s it. Progress inside a segment is not recorded: a segment whose replay was
//! interrupted is replayed again whole, so a record may reach Kafka twice. Every spilled record
//! carries `ClickFlag::Replayed`, and the exporter and rollup drop repeats by impression id.
//!
//! The exporter keeps an impression's first record *in its partition's log* (click.proto, rule (c):
//! a repeat never carries an earlier event time than its first record), so a click must not reach
//! Kafka ahead of an earlier click of its impression that the spill holds. librdkafka keeps the
//! order in which records are handed to it, per partition (the producer is idempotent), so the
//! spill keeps the impressions of the records it holds that the replay has not yet handed to
//! librdkafka (`crate::unreplayed`), from the moment an append is queued until the replay has
//! handed over the whole segment the record was written to ([`Spill::handed_over`]); a click of
//! such an impression is spilled behind it ([`Spill::holds`]), whatever the broker's state. Every
//! other click may be produced directly while the spill holds records: the broker is marked up as
//! soon as it answers again, not only once the spill is empty, which at a sustained rate close to
//! what ingest serves never happens (every click then went through the spill: written, fsynced,
//! read back and produced). Exceptions, both after a failure: a click whose direct produce missed
//! the bound is spilled with its first attempt still queued in librdkafka ahead of later clicks
//! (it normally lands first), and a replayed record that librdkafka fails is replayed again in a
//! later round, behind what was produced meanwhile.
//!
//! # Recovery
//!
//! Opening the spill reads every segment. A record that is cut short or fails its checksum ends
//! the segment: the file is truncated there and the dropped bytes are counted
//! (`adclick_ingest_spill_corrupt_bytes_total`). Only a crash during a write leaves such a tail, and
//! the clicks in it were never acknowledged, because their fsync had not returned.
//!
//! # Bound
//!
//! The spill holds at most `spill_max_bytes`. An append that does not fit is refused with
//! [`SpillError::Full`]; what ingest does then is `[ingest] spill_full` (see the crate README).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::unreplayed::Unreplayed;

/// Frame header: length and checksum.
const HEADER_LEN: usize = 8;
/// Largest payload accepted: a click is about a hundred bytes; anything this large is corruption.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Appends taken into one group fsync at most.
const MAX_BATCH: usize = 8192;
/// Appends waiting for the writer at most; beyond this, appends wait for room.
const QUEUE: usize = 65_536;
const SUFFIX: &str = "spill";

/// Why an append or a spill operation failed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SpillError {
    #[error("the spill is full ({max_bytes} bytes)")]
    Full { max_bytes: u64 },
    #[error("the spill is broken after an I/O error: {0}")]
    Broken(String),
    #[error("spill I/O error: {0}")]
    Io(String),
    #[error("the spill is closed")]
    Closed,
    #[error("record too large for the spill: {0} bytes")]
    TooLarge(usize),
}

impl SpillError {
    /// A short stable name for metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            SpillError::Full { .. } => "spill_full",
            SpillError::Broken(_) | SpillError::Io(_) => "spill_error",
            SpillError::Closed => "spill_closed",
            SpillError::TooLarge(_) => "spill_too_large",
        }
    }
}

/// One record: a Kafka key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpillRecord {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A sealed segment, ready for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub id: u64,
    pub path: PathBuf,
    pub records: u64,
    pub bytes: u64,
}

/// What [`Spill::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    pub segments: usize,
    pub records: u64,
    pub bytes: u64,
    pub corrupt_bytes: u64,
}

/// The impression key (`crate::unreplayed::impression_key`) of a record's Kafka value; given to
/// [`Spill::open`], which also applies it to the records it recovers.
pub type ImpressionOf = fn(&[u8]) -> u64;

enum Command {
    Append {
        frame: Vec<u8>,
        /// Its record's impression, added to `Shared::unreplayed` when the append was queued.
        impression: u64,
        done: oneshot::Sender<Result<(), SpillError>>,
    },
    Seal {
        done: oneshot::Sender<Vec<Segment>>,
    },
    Remove {
        id: u64,
        done: oneshot::Sender<Result<(), SpillError>>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// State readable without asking the writer.
#[derive(Debug)]
struct Shared {
    bytes: AtomicU64,
    records: AtomicU64,
    max_bytes: u64,
    broken: AtomicBool,
    closed: AtomicBool,
    /// The impressions of records not yet handed to librdkafka.
    unreplayed: Unreplayed,
}

/// A handle on the spill; clones share one writer.
#[derive(Clone)]
pub struct Spill {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    impression_of: ImpressionOf,
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl Spill {
    /// Opens (creating) the spill in `dir`, checks every record, and starts the writer thread.
    /// `impression_of` gives the impression key of a record's value (see [`ImpressionOf`]).
    /// Blocking: call from `spawn_blocking` or before the runtime is busy.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        segment_bytes: u64,
        impression_of: ImpressionOf,
        metrics: Metrics,
    ) -> io::Result<(Spill, Recovered)> {
        fs::create_dir_all(dir)?;
        let mut sealed = BTreeMap::new();
        let mut recovered = Recovered::default();
        let unreplayed = Unreplayed::default();
        for (id, path) in list_segments(dir)? {
            let (impressions, valid_len, file_len) = scan_segment(&path, impression_of)?;
            let records = impressions.len() as u64;
            if valid_len < file_len {
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(valid_len)?;
                file.sync_all()?;
                recovered.corrupt_bytes += file_len - valid_len;
                tracing::warn!(
                    segment = %path.display(),
                    dropped_bytes = file_len - valid_len,
                    "spill segment had a torn or corrupt tail; truncated"
                );
            }
            if records == 0 {
                fs::remove_file(&path)?;
                continue;
            }
            unreplayed.recovered(id, &impressions);
            recovered.segments += 1;
            recovered.records += records;
            recovered.bytes += valid_len;
            sealed.insert(
                id,
                Segment {
                    id,
                    path,
                    records,
                    bytes: valid_len,
                },
            );
        }
        sync_dir(dir)?;
        let next_id = sealed.keys().next_back().map_or(1, |id| id + 1);
        let shared = Arc::new(Shared {
            bytes: AtomicU64::new(recovered.bytes),
            records: AtomicU64::new(recovered.records),
            max_bytes,
            broken: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            unreplayed,
        });
        metrics.spill_capacity_bytes.set(gauge(max_bytes));
        metrics.spill_corrupt_bytes.inc_by(recovered.corrupt_bytes);
        let writer = Writer {
            dir: dir.to_path_buf(),
            segment_bytes,
            active: None,
            sealed,
            next_id,
            shared: shared.clone(),
            metrics,
        };
        writer.publish();
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("ingest-spill".into())
            .spawn(move || writer.run(rx))?;
        Ok((
            Spill {
                tx,
                shared,
                impression_of,
            },
            recovered,
        ))
    }

    /// Appends one record and returns once it is on disk (fsynced). From the moment it is queued
    /// until the replay has handed it to librdkafka, its impression [`Spill::holds`].
    pub async fn append(&self, key: &[u8], value: &[u8]) -> Result<(), SpillError> {
        let frame = encode_frame(key, value)?;
        // Refuse early without queueing; the writer checks again exactly.
        self.check_room(frame.len() as u64)?;
        let impression = (self.impression_of)(value);
        let queued = Queued::add(&self.shared.unreplayed, impression);
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Command::Append {
                frame,
                impression,
                done,
            })
            .await
            .map_err(|_| SpillError::Closed)?;
        // The writer answers for the impression from here on.
        queued.disarm();
        answer.await.map_err(|_| SpillError::Closed)?
    }

    /// Whether the spill holds a record of `impression` (`crate::unreplayed::impression_key`)
    /// that the replay has not handed to librdkafka yet: a click of it must be spilled behind.
    pub fn holds(&self, impression: u64) -> bool {
        self.shared.unreplayed.holds(impression)
    }

    /// Impressions with a record the replay has not handed over yet.
    pub fn unreplayed_impressions(&self) -> usize {
        self.shared.unreplayed.len()
    }

    /// The replay handed every record of the sealed segment `id` to librdkafka, which keeps them
    /// ahead of every record handed to it later: their impressions no longer hold clicks back.
    pub fn handed_over(&self, id: u64) {
        self.shared.unreplayed.handed_over(id);
    }

    /// Seals the active segment and lists every sealed segment, oldest first.
    pub async fn seal(&self) -> Result<Vec<Segment>, SpillError> {
        self.ask(|done| Command::Seal { done }).await
    }

    /// Sends the writer `command` (made with the sender of its answer) and waits for the answer.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SpillError> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send(command(done))
            .await
            .map_err(|_| SpillError::Closed)?;
        answer.await.map_err(|_| SpillError::Closed)
    }

    /// Deletes a sealed segment whose records all reached Kafka.
    pub async fn remove(&self, id: u64) -> Result<(), SpillError> {
        self.ask(|done| Command::Remove { id, done }).await?
    }

    /// Stops the writer after what is queued; later appends fail with [`SpillError::Closed`].
    pub async fn close(&self) {
        let (done, answer) = oneshot::channel();
        if self.tx.send(Command::Close { done }).await.is_ok() {
            let _ = answer.await;
        }
    }

    /// Whether an append of a typical click would be accepted now.
    pub fn can_accept(&self) -> bool {
        self.check_room(1024).is_ok()
    }

    pub fn bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    pub fn records(&self) -> u64 {
        self.shared.records.load(Ordering::Relaxed)
    }

    fn check_room(&self, len: u64) -> Result<(), SpillError> {
        check_room(&self.shared, len)
    }
}

fn check_room(shared: &Shared, len: u64) -> Result<(), SpillError> {
    if shared.closed.load(Ordering::Relaxed) {
        return Err(SpillError::Closed);
    }
    if shared.broken.load(Ordering::Relaxed) {
        return Err(SpillError::Broken(
            "an earlier write or fsync failed".into(),
        ));
    }
    if shared.bytes.load(Ordering::Relaxed) + len > shared.max_bytes {
        return Err(SpillError::Full {
            max_bytes: shared.max_bytes,
        });
    }
    Ok(())
}

/// Reads every valid record of a sealed segment. Blocking.
pub fn read_segment(path: &Path) -> io::Result<Vec<SpillRecord>> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut records = Vec::new();
    let mut rest = data.as_slice();
    while let Some((payload, after)) = next_frame(rest) {
        if let Some(record) = decode_payload(payload) {
            records.push(record);
        }
        rest = after;
    }
    Ok(records)
}

/// The frame of one record.
pub fn encode_frame(key: &[u8], value: &[u8]) -> Result<Vec<u8>, SpillError> {
    let payload_len = 2 + key.len() + value.len();
    let key_len = u16::try_from(key.len()).map_err(|_| SpillError::TooLarge(payload_len))?;
    if payload_len > MAX_PAYLOAD {
        return Err(SpillError::TooLarge(payload_len));
    }
    let mut frame = Vec::with_capacity(HEADER_LEN + payload_len);
    frame.extend_from_slice(&(payload_len as u32).to_le_bytes());
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(&key_len.to_le_bytes());
    frame.extend_from_slice(key);
    frame.extend_from_slice(value);
    let crc = crc32c::crc32c(&frame[HEADER_LEN..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(frame)
}

/// The payload of the first frame of `data` and what follows it, or `None` when `data` does not
/// start with a whole, intact frame.
fn next_frame(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let header = data.get(..HEADER_LEN)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if !(2..=MAX_PAYLOAD).contains(&len) {
        return None;
    }
    let payload = data.get(HEADER_LEN..HEADER_LEN + len)?;
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    Some((payload, &data[HEADER_LEN + len..]))
}

fn decode_payload(payload: &[u8]) -> Option<SpillRecord> {
    let key_len = usize::from(u16::from_le_bytes(payload.get(..2)?.try_into().ok()?));
    let key = payload.get(2..2 + key_len)?.to_vec();
    let value = payload.get(2 + key_len..)?.to_vec();
    Some(SpillRecord { key, value })
}

/// Records, length of the valid prefix, and file length of a segment.
fn scan_segment(path: &Path, impression_of: ImpressionOf) -> io::Result<(Vec<u64>, u64, u64)> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut rest = data.as_slice();
    let mut impressions = Vec::new();
    while let Some((payload, after)) = next_frame(rest) {
        let Some(record) = decode_payload(payload) else {
            break;
        };
        impressions.push(impression_of(&record.value));
        rest = after;
    }
    let valid = (data.len() - rest.len()) as u64;
    Ok((impressions, valid, data.len() as u64))
}

/// An impression added to the unreplayed ones for an append not yet queued to the writer: dropped
/// again unless [`Queued::disarm`]ed (the append failed to queue, or its caller went away first).
struct Queued<'a> {
    unreplayed: &'a Unreplayed,
    impression: Option<u64>,
}

impl<'a> Queued<'a> {
    fn add(unreplayed: &'a Unreplayed, impression: u64) -> Self {
        unreplayed.add(impression);
        Queued {
            unreplayed,
            impression: Some(impression),
        }
    }

    fn disarm(mut self) {
        self.impression = None;
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if let Some(impression) = self.impression {
            self.unreplayed.forget(impression);
        }
    }
}

/// Segment files of `dir` by id; other files are left alone.
fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(SUFFIX) {
            continue;
        }
        if let Some(id) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
        {
            segments.push((id, path));
        }
    }
    segments.sort();
    Ok(segments)
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.{SUFFIX}"))
}

/// Makes created and removed directory entries durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

struct Active {
    id: u64,
    file: File,
    bytes: u64,
    records: u64,
}

/// The appends of one group commit: their frames, written with one write and one fsync.
#[derive(Default)]
struct GroupCommit {
    frames: Vec<u8>,
    waiting: Vec<oneshot::Sender<Result<(), SpillError>>>,
    /// The impression of each waiting append.
    impressions: Vec<u64>,
}

impl GroupCommit {
    /// Takes an append when the spill has room for it beside the group's, else refuses it.
    fn add(
        &mut self,
        shared: &Shared,
        metrics: &Metrics,
        frame: &[u8],
        impression: u64,
        done: oneshot::Sender<Result<(), SpillError>>,
    ) {
        match check_room(shared, (self.frames.len() + frame.len()) as u64) {
            Ok(()) => {
                self.frames.extend_from_slice(frame);
                self.waiting.push(done);
                self.impressions.push(impression);
            }
            Err(e) => {
                metrics.spill_refused.inc();
                shared.unreplayed.forget(impression);
                let _ = done.send(Err(e));
            }
        }
    }
}

/// The writer thread's state.
struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    active: Option<Active>,
    sealed: BTreeMap<u64, Segment>,
    next_id: u64,
    shared: Arc<Shared>,
    metrics: Metrics,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            if self.handle(&mut batch) {
                break;
            }
        }
        self.shared.closed.store(true, Ordering::Relaxed);
        // Answer whatever was queued behind a close.
        rx.close();
        while let Ok(cmd) = rx.try_recv() {
            reply_closed(&self.shared, cmd);
        }
    }

    /// Handles one batch; true when the writer must stop.
    fn handle(&mut self, batch: &mut Vec<Command>) -> bool {
        let mut group = GroupCommit::default();
        let mut others = Vec::new();
        for cmd in batch.drain(..) {
            match cmd {
                Command::Append {
                    frame,
                    impression,
                    done,
                } => group.add(&self.shared, &self.metrics, &frame, impression, done),
                other => others.push(other),
            }
        }
        self.commit(group);
        let mut stop = false;
        for cmd in others {
            match cmd {
                Command::Seal { done } => {
                    self.seal_active();
                    let _ = done.send(self.sealed.values().cloned().collect());
                }
                Command::Remove { id, done } => {
                    let _ = done.send(self.remove(id));
                }
                Command::Close { done } => {
                    stop = true;
                    let _ = done.send(());
                }
                Command::Append { .. } => unreachable!("appends were handled above"),
            }
        }
        stop
    }

    /// Writes a group's frames with one write and one fsync, then answers each of its appends.
    fn commit(&mut self, group: GroupCommit) {
        if group.waiting.is_empty() {
            return;
        }
        let result = self.write_and_sync(&group.frames, group.waiting.len() as u64);
        match &result {
            Ok(segment) => self.shared.unreplayed.written(*segment, &group.impressions),
            Err(_) => {
                for &impression in &group.impressions {
                    self.shared.unreplayed.forget(impression);
                }
            }
        }
        let result = result.map(|_segment| ());
        for done in group.waiting {
            let _ = done.send(result.clone());
        }
    }

    /// The id of the segment written to, or why not.
    fn write_and_sync(&mut self, frames: &[u8], records: u64) -> Result<u64, SpillError> {
        let started = Instant::now();
        let result = self.try_write_and_sync(frames);
        self.metrics
            .spill_fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                self.metrics.spill_fsyncs.inc();
                let active = self
                    .active
                    .as_mut()
                    .expect("try_write_and_sync opened a segment");
                active.bytes += frames.len() as u64;
                active.records += records;
                let segment = active.id;
                self.shared
                    .bytes
                    .fetch_add(frames.len() as u64, Ordering::Relaxed);
                self.shared.records.fetch_add(records, Ordering::Relaxed);
                if active.bytes >= self.segment_bytes {
                    self.seal_active();
                }
                self.publish();
                Ok(segment)
            }
            Err(e) => {
                self.shared.broken.store(true, Ordering::Relaxed);
                tracing::error!(error = %e, dir = %self.dir.display(), "spill write failed; the spill refuses appends until restart");
                Err(SpillError::Broken(e.to_string()))
            }
        }
    }

    fn try_write_and_sync(&mut self, frames: &[u8]) -> io::Result<()> {
        if self.active.is_none() {
            let id = self.next_id;
            self.next_id += 1;
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(segment_path(&self.dir, id))?;
            // The new file's directory entry must survive a crash as much as its contents.
            sync_dir(&self.dir)?;
            self.active = Some(Active {
                id,
                file,
                bytes: 0,
                records: 0,
            });
        }
        let active = self.active.as_mut().expect("opened above");
        active.file.write_all(frames)?;
        active.file.sync_data()
    }

    fn seal_active(&mut self) {
        if let Some(active) = self.active.take() {
            self.sealed.insert(
                active.id,
                Segment {
                    id: active.id,
                    path: segment_path(&self.dir, active.id),
                    records: active.records,
                    bytes: active.bytes,
                },
            );
        }
    }

    fn remove(&mut self, id: u64) -> Result<(), SpillError> {
        let Some(segment) = self.sealed.get(&id) else {
            return Ok(());
        };
        fs::remove_file(&segment.path)
            .and_then(|()| sync_dir(&self.dir))
            .map_err(|e| SpillError::Io(e.to_string()))?;
        let segment = self.sealed.remove(&id).expect("present above");
        // Normally handed over already (its records were acknowledged before it was removed).
        self.shared.unreplayed.handed_over(id);
        self.shared
            .bytes
            .fetch_sub(segment.bytes, Ordering::Relaxed);
        self.shared
            .records
            .fetch_sub(segment.records, Ordering::Relaxed);
        self.publish();
        Ok(())
    }

    fn publish(&self) {
        self.metrics
            .spill_bytes
            .set(gauge(self.shared.bytes.load(Ordering::Relaxed)));
        self.metrics
            .spill_records
            .set(gauge(self.shared.records.load(Ordering::Relaxed)));
    }
}

fn reply_closed(shared: &Shared, cmd: Command) {
    match cmd {
        Command::Append {
            impression, done, ..
        } => {
            shared.unreplayed.forget(impression);
            let _ = done.send(Err(SpillError::Closed));
        }
        Command::Remove { done, .. } => {
            let _ = done.send(Err(SpillError::Closed));
        }
        Command::Seal { done } => drop(done),
        Command::Close { done } => {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unreplayed::impression_key;
    use prometheus_client::registry::Registry;

    fn metrics() -> Metrics {
        Metrics::new(&mut Registry::default())
    }

    fn open(dir: &Path, max: u64, seg: u64) -> (Spill, Recovered) {
        Spill::open(dir, max, seg, by_value, metrics()).unwrap()
    }

    /// These tests' records: the whole value is the impression id.
    fn by_value(value: &[u8]) -> u64 {
        impression_key(value)
    }

    fn record(i: u32) -> (Vec<u8>, Vec<u8>) {
        (format!("{i}").into_bytes(), vec![i as u8; 40])
    }

    #[tokio::test]
    async fn appended_records_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (spill, _) = open(dir.path(), 1 << 20, 1 << 20);
        for i in 0..10 {
            let (k, v) = record(i);
            spill.append(&k, &v).await.unwrap();
        }
        assert_eq!(spill.records(), 10);
        // No close: a crash after acknowledgement.
        drop(spill);
        let (spill, recovered) = open(dir.path(), 1 << 20, 1 << 20);
        assert_eq!(recovered.records, 10);
        assert_eq!(recovered.corrupt_bytes, 0);
        let segments = spill.seal().await.unwrap();
        assert_eq!(segments.len(), 1);
        let records = read_segment(&segments[0].path).unwrap();
        let expected: Vec<SpillRecord> = (0..10)
            .map(|i| {
                let (key, value) = record(i);
                SpillRecord { key, value }
            })
            .collect();
        assert_eq!(records, expected);
    }

    #[tokio::test]
    async fn a_torn_tail_is_truncated_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (spill, _) = open(dir.path(), 1 << 20, 1 << 20);
        for i in 0..3 {
            let (k, v) = record(i);
            spill.append(&k, &v).await.unwrap();
        }
        spill.close().await;
        let path = list_segments(dir.path()).unwrap()[0].1.clone();
        let good_len = fs::metadata(&path).unwrap().len();
        // Half a frame, as a crash in the middle of a write leaves it.
        let frame = encode_frame(b"9", &[9; 40]).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&frame[..frame.len() / 2]).unwrap();
        drop(f);
        let (_spill, recovered) = open(dir.path(), 1 << 20, 1 << 20);
        assert_eq!(recovered.records, 3);
        assert_eq!(recovered.corrupt_bytes, (frame.len() / 2) as u64);
        assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
    }

    #[tokio::test]
    async fn a_flipped_bit_ends_the_segment_at_the_bad_record() {
        let dir = tempfile::tempdir().unwrap();
        let (spill, _) = open(dir.path(), 1 << 20, 1 << 20);
        for i in 0..3 {
            let (k, v) = record(i);
            spill.append(&k, &v).await.unwrap();
        }
        spill.close().await;
        let path = list_segments(dir.path()).unwrap()[0].1.clone();
        let mut data = fs::read(&path).unwrap();
        let frame_len = data.len() / 3;
        data[frame_len + HEADER_LEN + 5] ^= 0x10;
        fs::write(&path, &data).unwrap();
        let (_spill, recovered) = open(dir.path(), 1 << 20, 1 << 20);
        assert_eq!(recovered.records, 1);
        assert_eq!(recovered.corrupt_bytes, 2 * frame_len as u64);
    }

    #[tokio::test]
    async fn a_full_spill_refuses_and_removal_makes_room() {
        let dir = tempfile::tempdir().unwrap();
        let frame_len = encode_frame(b"0", &[0; 40]).unwrap().len() as u64;
        let (spill, _) = open(dir.path(), 4 * frame_len, 2 * frame_len);
        for i in 0..4 {
            let (k, v) = record(i);
            spill.append(&k, &v).await.unwrap();
        }
        let (k, v) = record(4);
        assert_eq!(
            spill.append(&k, &v).await,
            Err(SpillError::Full {
                max_bytes: 4 * frame_len
            })
        );
        assert!(!spill.can_accept());
        let segments = spill.seal().await.unwrap();
        // Two segments of two records: the segment size sealed the first one.
        assert_eq!(
            segments.iter().map(|s| s.records).collect::<Vec<_>>(),
            vec![2, 2]
        );
        spill.remove(segments[0].id).await.unwrap();
        assert_eq!(spill.records(), 2);
        assert_eq!(spill.bytes(), 2 * frame_len);
        spill.append(&k, &v).await.unwrap();
        assert!(!segments[0].path.exists());
    }

    #[tokio::test]
    async fn concurrent_appends_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let m = metrics();
        let (spill, _) = Spill::open(dir.path(), 1 << 30, 1 << 30, by_value, m.clone()).unwrap();
        let tasks: Vec<_> = (0..2000u32)
            .map(|i| {
                let spill = spill.clone();
                tokio::spawn(async move {
                    let (k, v) = record(i);
                    spill.append(&k, &v).await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(spill.records(), 2000);
        let fsyncs = m.spill_fsyncs.get();
        assert!(fsyncs < 2000, "{fsyncs} fsyncs for 2000 appends");
    }

    /// An impression is held from its append until the replay hands over every segment with a
    /// record of it; other impressions are not held; a refused append holds nothing.
    #[tokio::test]
    async fn an_impression_is_held_until_its_segments_are_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let frame_len = encode_frame(b"1", &[1; 40]).unwrap().len() as u64;
        // Segments of two records, room for four.
        let (spill, _) = open(dir.path(), 4 * frame_len, 2 * frame_len);
        let (k1, v1) = record(1);
        let (k2, v2) = record(2);
        spill.append(&k1, &v1).await.unwrap();
        assert!(spill.holds(by_value(&v1)));
        assert!(!spill.holds(by_value(&v2)));
        spill.append(&k2, &v2).await.unwrap();
        // A repeat of impression 1 in the next segment.
        spill.append(&k1, &v1).await.unwrap();
        let segments = spill.seal().await.unwrap();
        assert_eq!(segments.len(), 2);
        spill.handed_over(segments[0].id);
        assert!(!spill.holds(by_value(&v2)));
        assert!(
            spill.holds(by_value(&v1)),
            "its repeat in the second segment is not handed over yet"
        );
        spill.handed_over(segments[1].id);
        assert!(!spill.holds(by_value(&v1)));
        assert_eq!(spill.unreplayed_impressions(), 0);
        // Handed over, not yet acknowledged: the records stay until removed.
        assert_eq!(spill.records(), 3);

        // A refused append (the spill is full) holds nothing.
        let (k3, v3) = record(3);
        spill.append(&k3, &v3).await.unwrap();
        let (k4, v4) = record(4);
        assert!(matches!(
            spill.append(&k4, &v4).await,
            Err(SpillError::Full { .. })
        ));
        assert!(spill.holds(by_value(&v3)));
        assert!(!spill.holds(by_value(&v4)));
    }

    /// The records a crash left behind hold their impressions after a restart, until handed over.
    #[tokio::test]
    async fn recovered_records_hold_their_impressions() {
        let dir = tempfile::tempdir().unwrap();
        let (spill, _) = open(dir.path(), 1 << 20, 1 << 20);
        let (k, v) = record(5);
        spill.append(&k, &v).await.unwrap();
        drop(spill);
        let (spill, recovered) = open(dir.path(), 1 << 20, 1 << 20);
        assert_eq!(recovered.records, 1);
        assert!(spill.holds(by_value(&v)));
        let segments = spill.seal().await.unwrap();
        spill.handed_over(segments[0].id);
        assert!(!spill.holds(by_value(&v)));
    }

    /// A closed spill refuses appends, and a refused append holds its impression back no more.
    #[tokio::test]
    async fn closed_spill_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let (spill, _) = open(dir.path(), 1 << 20, 1 << 20);
        spill.close().await;
        let (k, v) = record(6);
        assert_eq!(spill.append(&k, &v).await, Err(SpillError::Closed));
        assert!(!spill.holds(by_value(&v)));
    }

    #[test]
    fn garbage_is_no_frame() {
        assert!(next_frame(&[]).is_none());
        assert!(next_frame(&[0xff; 64]).is_none());
        let frame = encode_frame(b"k", b"v").unwrap();
        let (payload, rest) = next_frame(&frame).unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            decode_payload(payload),
            Some(SpillRecord {
                key: b"k".to_vec(),
                value: b"v".to_vec()
            })
        );
        assert!(encode_frame(&[0; 70_000], b"").is_err());
    }
}
