//! Chunk segment files (`chunks/000001`, `chunks/000002`, …): where chunk bytes live and the
//! references the index uses to find them (`tsdb/docs/format/chunks.md`, `tsdb/chunks/chunks.go`).
//!
//! A segment is the header `0x85BD40DD`, version `1`, three zero bytes, then chunks, each
//! `uvarint(len(data)) | encoding byte | data | CRC32C(encoding byte + data)`. A chunk's reference
//! is `segment index << 32 | offset in the segment`, where the index counts from 0 over the
//! sorted segment files although their names count from 1 (chunks.go: `seq()` is
//! `len(files) - 1`, `nextSequenceFile` names the first file `000001`).

use std::path::{Path, PathBuf};

use crate::encoding::{crc32c, put_uvarint};
use crate::files::{FileError, PositionedWriter, sync_dir};

/// Segment header: magic, format version 1, 3 bytes of padding.
const SEGMENT_HEADER: [u8; 8] = [0x85, 0xBD, 0x40, 0xDD, 0x01, 0x00, 0x00, 0x00];

/// Prometheus' `DefaultChunkSegmentSize`: a segment is cut before it would exceed 512 MiB.
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 512 << 20;

/// Where one chunk is: segment index in the high 32 bits, byte offset in the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ChunkRef(pub(crate) u64);

/// What the index records of a chunk: its time range (first and last sample, both inclusive)
/// and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkMeta {
    pub(crate) min_time_ms: i64,
    pub(crate) max_time_ms: i64,
    pub(crate) chunk_ref: ChunkRef,
}

/// A finished segment file, for Thanos' file list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentFile {
    /// `000001`, `000002`, …
    pub(crate) name: String,
    pub(crate) size_bytes: u64,
}

/// Appends chunks to segment files in one `chunks/` directory.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    dir: PathBuf,
    max_segment_bytes: u64,
    current: Option<PositionedWriter>,
    /// Chunks in the current segment: a segment always takes at least one, however large.
    chunks_in_current: u64,
    finished: Vec<SegmentFile>,
    /// Reused for each chunk's length, encoding, data and checksum.
    record: Vec<u8>,
}

impl SegmentWriter {
    /// Creates the directory `dir`; the first segment is created with the first chunk.
    /// `max_segment_bytes` must leave room for the header and fit the 32-bit offsets.
    pub(crate) fn create(dir: &Path, max_segment_bytes: u64) -> Result<SegmentWriter, FileError> {
        debug_assert!(max_segment_bytes > SEGMENT_HEADER.len() as u64);
        debug_assert!(max_segment_bytes <= u64::from(u32::MAX));
        std::fs::create_dir(dir).map_err(|e| FileError::new("create directory", dir, e))?;
        Ok(SegmentWriter {
            dir: dir.to_path_buf(),
            max_segment_bytes,
            current: None,
            chunks_in_current: 0,
            finished: Vec::new(),
            record: Vec::with_capacity(4096),
        })
    }

    /// Writes one chunk and returns its reference.
    pub(crate) fn write_chunk(&mut self, encoding: u8, data: &[u8]) -> Result<ChunkRef, FileError> {
        self.record.clear();
        put_uvarint(&mut self.record, data.len() as u64);
        let checksummed_from = self.record.len();
        self.record.push(encoding);
        self.record.extend_from_slice(data);
        let checksum = crc32c(&self.record[checksummed_from..]);
        self.record.extend_from_slice(&checksum.to_be_bytes());

        let full = match &self.current {
            None => true,
            Some(segment) => {
                self.chunks_in_current > 0
                    && segment.position() + self.record.len() as u64 > self.max_segment_bytes
            }
        };
        if full {
            self.cut()?;
        }
        let segment = self
            .current
            .as_mut()
            .expect("cut() leaves a current segment");
        let segment_index = self.finished.len() as u64;
        let chunk_ref = ChunkRef(segment_index << 32 | segment.position());
        segment.write_all(&self.record)?;
        self.chunks_in_current += 1;
        Ok(chunk_ref)
    }

    /// Closes the current segment (fsynced) and starts the next one.
    fn cut(&mut self) -> Result<(), FileError> {
        self.close_current()?;
        let name = format!("{:06}", self.finished.len() + 1);
        let mut segment = PositionedWriter::create(&self.dir.join(&name))?;
        segment.write_all(&SEGMENT_HEADER)?;
        self.current = Some(segment);
        self.chunks_in_current = 0;
        Ok(())
    }

    fn close_current(&mut self) -> Result<(), FileError> {
        if let Some(segment) = self.current.take() {
            let name = segment
                .path()
                .file_name()
                .and_then(|n| n.to_str())
                .expect("segment names are ASCII digits")
                .to_string();
            let size_bytes = segment.finish()?;
            self.finished.push(SegmentFile { name, size_bytes });
        }
        Ok(())
    }

    /// Closes the last segment and fsyncs the directory; returns every segment, in order.
    pub(crate) fn finish(mut self) -> Result<Vec<SegmentFile>, FileError> {
        self.close_current()?;
        sync_dir(&self.dir)?;
        Ok(std::mem::take(&mut self.finished))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::read_uvarint;

    #[test]
    fn chunks_are_framed_checksummed_and_referenced() {
        let dir = tempfile::tempdir().unwrap();
        let chunks_dir = dir.path().join("chunks");
        let mut writer = SegmentWriter::create(&chunks_dir, DEFAULT_MAX_SEGMENT_BYTES).unwrap();
        let first = writer.write_chunk(1, b"hello").unwrap();
        let second = writer.write_chunk(1, &[7u8; 200]).unwrap();
        let files = writer.finish().unwrap();

        assert_eq!(
            first,
            ChunkRef(8),
            "first chunk right after the 8-byte header"
        );
        // 1-byte length + encoding + 5 data bytes + 4 checksum bytes.
        assert_eq!(second, ChunkRef(8 + 11));
        let bytes = std::fs::read(chunks_dir.join("000001")).unwrap();
        assert_eq!(
            files,
            vec![SegmentFile {
                name: "000001".into(),
                size_bytes: bytes.len() as u64
            }]
        );
        assert_eq!(&bytes[..8], &[0x85, 0xBD, 0x40, 0xDD, 1, 0, 0, 0]);

        let at = second.0 as usize;
        let (len, n) = read_uvarint(&bytes[at..]).unwrap();
        assert_eq!((len, n), (200, 2));
        let body = &bytes[at + n..at + n + 1 + 200];
        assert_eq!(body[0], 1);
        let stored = u32::from_be_bytes(bytes[at + n + 201..at + n + 205].try_into().unwrap());
        assert_eq!(stored, crc32c(body));
        assert_eq!(at + n + 205, bytes.len());
    }

    #[test]
    fn segments_are_cut_before_exceeding_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let chunks_dir = dir.path().join("chunks");
        // Each record is 1 + 1 + 30 + 4 = 36 bytes; 8 + 2 * 36 = 80 fits, a third would not.
        let mut writer = SegmentWriter::create(&chunks_dir, 100).unwrap();
        let refs: Vec<ChunkRef> = (0..5)
            .map(|i| writer.write_chunk(1, &[i as u8; 30]).unwrap())
            .collect();
        // A record larger than a segment still goes somewhere: alone in a new segment.
        let huge = writer.write_chunk(1, &[9u8; 300]).unwrap();
        let files = writer.finish().unwrap();

        let segment_of = |r: ChunkRef| r.0 >> 32;
        let offset_of = |r: ChunkRef| r.0 & 0xffff_ffff;
        assert_eq!(
            refs.iter()
                .map(|&r| (segment_of(r), offset_of(r)))
                .collect::<Vec<_>>(),
            vec![(0, 8), (0, 44), (1, 8), (1, 44), (2, 8)]
        );
        assert_eq!((segment_of(huge), offset_of(huge)), (3, 8));
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["000001", "000002", "000003", "000004"]);
        for file in &files {
            let size = std::fs::metadata(chunks_dir.join(&file.name))
                .unwrap()
                .len();
            assert_eq!(size, file.size_bytes);
        }
        assert!(files[..3].iter().all(|f| f.size_bytes <= 100));
    }
}
