//! The `index` file, format version 2 (`tsdb/docs/format/index.md`), byte for byte as
//! Prometheus' `tsdb/index/index.go` `Writer` lays it out, series streamed in.
//!
//! ```text
//! magic 0xBAAAD700 | version 2
//! symbol table      len | #symbols | uvarint-prefixed strings, sorted | CRC32C
//! series            each 16-byte aligned (id = offset / 16): uvarint len | labels | chunk metas | CRC32C
//! label indices     none: Prometheus no longer reads them (index.md: "This is no longer used")
//! postings          each 4-byte aligned: len | #refs | series ids | CRC32C; first the
//!                   all-series list under `"" = ""`, then by label name, then value
//! postings offsets  len | #entries | (2, name, value, offset)… sorted | CRC32C
//! TOC               six big-endian u64 section offsets | CRC32C
//! ```
//!
//! Every `len` counts the bytes between itself and the CRC, and every CRC covers exactly those.
//!
//! As in today's index.go, there is no label offset table either: the TOC's label-indices and
//! label-offset-table entries point where nothing was written (the end of the series section,
//! the postings offset table). The postings offset table must follow the last postings list
//! immediately: Thanos' index-header (`pkg/block/indexheader/binary_reader.go`) takes the last
//! list's end to be the table's start.

use std::path::Path;

use crate::chunks::ChunkMeta;
use crate::encoding::{crc32c, put_be32, put_be64, put_uvarint, put_uvarint_str, put_varint};
use crate::files::{FileError, PositionedWriter};

const MAGIC: u32 = 0xBAAA_D700;
const FORMAT_V2: u8 = 2;
/// Series ids are offsets divided by 16, so 32-bit ids address 64 GiB of series.
const SERIES_ALIGNMENT: u64 = 16;
/// Postings lists start 4-byte aligned, as index.go aligns them.
const POSTINGS_ALIGNMENT: u64 = 4;

/// Why an index could not be written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{what} is {size} bytes, more than the index format can address ({limit})")]
    TooLarge {
        what: &'static str,
        size: u64,
        limit: u64,
    },
}

/// Writes one index file: symbols at creation, then series in block order, then the rest.
#[derive(Debug)]
pub(crate) struct IndexWriter {
    out: PositionedWriter,
    symbols: Vec<String>,
    toc: Toc,
    /// The id of every series written, in order: the all-series postings list.
    series_ids: Vec<u32>,
    /// `(name position, value position, series id)` of every label of every series.
    label_postings: Vec<(u32, u32, u32)>,
    /// Reused encoding buffer.
    body: Vec<u8>,
}

/// The table of contents: where each section starts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Toc {
    pub(crate) symbols: u64,
    pub(crate) series: u64,
    /// Where label indices would start; none are written.
    pub(crate) label_indices: u64,
    /// No label offset table is written: this equals `postings_offset_table`, as in index.go.
    pub(crate) label_offset_table: u64,
    pub(crate) postings: u64,
    pub(crate) postings_offset_table: u64,
}

impl IndexWriter {
    /// Creates the file and writes the header and the symbol table. `symbols` must be sorted
    /// byte-wise, unique, and start with the empty string (the all-series postings name).
    pub(crate) fn create(path: &Path, symbols: Vec<String>) -> Result<IndexWriter, IndexError> {
        debug_assert!(symbols.first().is_some_and(|s| s.is_empty()));
        debug_assert!(
            symbols
                .windows(2)
                .all(|w| w[0].as_bytes() < w[1].as_bytes())
        );
        let mut out = PositionedWriter::create(path)?;
        let mut header = Vec::with_capacity(5);
        put_be32(&mut header, MAGIC);
        header.push(FORMAT_V2);
        out.write_all(&header)?;

        let toc_symbols = out.position();
        let mut body = Vec::new();
        put_be32(&mut body, symbols.len() as u32);
        for symbol in &symbols {
            put_uvarint_str(&mut body, symbol);
        }
        write_section(&mut out, &body, "symbol table")?;
        let toc = Toc {
            symbols: toc_symbols,
            series: out.position(),
            ..Toc::default()
        };
        Ok(IndexWriter {
            out,
            symbols,
            toc,
            series_ids: Vec::new(),
            label_postings: Vec::new(),
            body,
        })
    }

    /// Writes one series: its labels as `(name, value)` symbol positions, sorted by name, and
    /// its chunks in time order. Series must come in block order (the caller checks).
    pub(crate) fn add_series(
        &mut self,
        labels: &[(u32, u32)],
        chunks: &[ChunkMeta],
    ) -> Result<u32, IndexError> {
        self.out.pad_to(SERIES_ALIGNMENT)?;
        let offset = self.out.position();
        let series_id =
            u32::try_from(offset / SERIES_ALIGNMENT).map_err(|_| IndexError::TooLarge {
                what: "series section",
                size: offset,
                limit: SERIES_ALIGNMENT << 32,
            })?;

        let body = &mut self.body;
        body.clear();
        put_uvarint(body, labels.len() as u64);
        for &(name, value) in labels {
            put_uvarint(body, u64::from(name));
            put_uvarint(body, u64::from(value));
            self.label_postings.push((name, value, series_id));
        }
        put_uvarint(body, chunks.len() as u64);
        // The first chunk absolutely, each later one relative to the one before
        // (index.go AddSeries): mint from the previous maxt, ref from the previous ref.
        let mut previous: Option<&ChunkMeta> = None;
        for chunk in chunks {
            debug_assert!(chunk.min_time_ms <= chunk.max_time_ms);
            match previous {
                None => {
                    put_varint(body, chunk.min_time_ms);
                    put_uvarint(body, (chunk.max_time_ms - chunk.min_time_ms) as u64);
                    put_uvarint(body, chunk.chunk_ref.0);
                }
                Some(before) => {
                    debug_assert!(chunk.min_time_ms > before.max_time_ms);
                    put_uvarint(body, (chunk.min_time_ms - before.max_time_ms) as u64);
                    put_uvarint(body, (chunk.max_time_ms - chunk.min_time_ms) as u64);
                    put_varint(
                        body,
                        (chunk.chunk_ref.0 as i64).wrapping_sub(before.chunk_ref.0 as i64),
                    );
                }
            }
            previous = Some(chunk);
        }

        let mut len = Vec::with_capacity(5);
        put_uvarint(&mut len, body.len() as u64);
        self.out.write_all(&len)?;
        self.out.write_all(body)?;
        self.out.write_all(&crc32c(body).to_be_bytes())?;
        self.series_ids.push(series_id);
        Ok(series_id)
    }

    /// Writes postings, both offset tables and the TOC, fsyncs; returns the file size.
    pub(crate) fn finish(mut self) -> Result<u64, IndexError> {
        self.toc.label_indices = self.out.position();
        self.out.pad_to(POSTINGS_ALIGNMENT)?;
        self.toc.postings = self.out.position();

        // (name position, value position, offset of the postings list).
        let mut offsets: Vec<(u32, u32, u64)> = Vec::new();
        let all_series = std::mem::take(&mut self.series_ids);
        offsets.push((0, 0, self.write_postings(&all_series)?));

        // Symbol positions sort like their strings, so this is name order, then value order,
        // and series ids stay increasing within each list.
        let mut label_postings = std::mem::take(&mut self.label_postings);
        label_postings.sort_unstable();
        let mut ids = Vec::new();
        for group in label_postings.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            ids.clear();
            ids.extend(group.iter().map(|&(_, _, id)| id));
            let offset = self.write_postings(&ids)?;
            offsets.push((group[0].0, group[0].1, offset));
        }

        self.toc.label_offset_table = self.out.position();
        self.toc.postings_offset_table = self.out.position();
        let body = &mut self.body;
        body.clear();
        put_be32(body, offsets.len() as u32);
        for &(name, value, offset) in &offsets {
            put_uvarint(body, 2);
            put_uvarint_str(body, &self.symbols[name as usize]);
            put_uvarint_str(body, &self.symbols[value as usize]);
            put_uvarint(body, offset);
        }
        let body = std::mem::take(&mut self.body);
        write_section(&mut self.out, &body, "postings offset table")?;

        let mut toc = Vec::with_capacity(52);
        for offset in [
            self.toc.symbols,
            self.toc.series,
            self.toc.label_indices,
            self.toc.label_offset_table,
            self.toc.postings,
            self.toc.postings_offset_table,
        ] {
            put_be64(&mut toc, offset);
        }
        let checksum = crc32c(&toc);
        put_be32(&mut toc, checksum);
        self.out.write_all(&toc)?;
        Ok(self.out.finish()?)
    }

    /// Writes one postings list (ids increasing); returns where it starts.
    fn write_postings(&mut self, series_ids: &[u32]) -> Result<u64, IndexError> {
        self.out.pad_to(POSTINGS_ALIGNMENT)?;
        let offset = self.out.position();
        let body = &mut self.body;
        body.clear();
        put_be32(body, series_ids.len() as u32);
        for &id in series_ids {
            put_be32(body, id);
        }
        let body = std::mem::take(&mut self.body);
        write_section(&mut self.out, &body, "postings list")?;
        self.body = body;
        Ok(offset)
    }
}

/// Writes `be32(len(body)) | body | be32(crc32c(body))`, the framing of most index sections.
fn write_section(
    out: &mut PositionedWriter,
    body: &[u8],
    what: &'static str,
) -> Result<(), IndexError> {
    let len = u32::try_from(body.len()).map_err(|_| IndexError::TooLarge {
        what,
        size: body.len() as u64,
        limit: u64::from(u32::MAX),
    })?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(body)?;
    out.write_all(&crc32c(body).to_be_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunks::ChunkRef;
    use crate::encoding::{read_uvarint, read_varint};

    /// A series as the writer takes it: label symbol positions and chunk metas.
    type TestSeries = (Vec<(u32, u32)>, Vec<ChunkMeta>);

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn be32(bytes: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    /// A `len | body | crc` section at `at`, its CRC checked; returns the body.
    fn section(bytes: &[u8], at: usize) -> &[u8] {
        let len = be32(bytes, at) as usize;
        let body = &bytes[at + 4..at + 4 + len];
        assert_eq!(
            be32(bytes, at + 4 + len),
            crc32c(body),
            "CRC of section at {at}"
        );
        body
    }

    fn read_toc(bytes: &[u8]) -> Toc {
        let toc = &bytes[bytes.len() - 52..];
        assert_eq!(be32(toc, 48), crc32c(&toc[..48]), "TOC CRC");
        let at = |i: usize| u64::from_be_bytes(toc[i * 8..i * 8 + 8].try_into().unwrap());
        Toc {
            symbols: at(0),
            series: at(1),
            label_indices: at(2),
            label_offset_table: at(3),
            postings: at(4),
            postings_offset_table: at(5),
        }
    }

    /// Reads varints and strings front to back.
    struct Cursor<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl Cursor<'_> {
        fn uvarint(&mut self) -> u64 {
            let (x, n) = read_uvarint(&self.bytes[self.at..]).unwrap();
            self.at += n;
            x
        }

        fn varint(&mut self) -> i64 {
            let (x, n) = read_varint(&self.bytes[self.at..]).unwrap();
            self.at += n;
            x
        }

        fn string(&mut self) -> String {
            let len = self.uvarint() as usize;
            let s = String::from_utf8(self.bytes[self.at..self.at + len].to_vec()).unwrap();
            self.at += len;
            s
        }
    }

    /// The postings offset table as (name, value, offset), CRC checked.
    fn read_postings_offsets(bytes: &[u8], toc: &Toc) -> Vec<(String, String, u64)> {
        let body = section(bytes, toc.postings_offset_table as usize);
        let count = be32(body, 0) as usize;
        let mut cursor = Cursor { bytes: body, at: 4 };
        let mut entries = Vec::new();
        for _ in 0..count {
            assert_eq!(cursor.uvarint(), 2);
            let (name, value) = (cursor.string(), cursor.string());
            entries.push((name, value, cursor.uvarint()));
        }
        assert_eq!(cursor.at, body.len());
        entries
    }

    /// The series ids of the postings list at `offset`, CRC checked.
    fn read_postings(bytes: &[u8], offset: u64) -> Vec<u32> {
        assert_eq!(offset % 4, 0, "postings aligned");
        let body = section(bytes, offset as usize);
        let count = be32(body, 0) as usize;
        assert_eq!(body.len(), 4 + 4 * count);
        (0..count).map(|i| be32(body, 4 + 4 * i)).collect()
    }

    fn write(dir: &Path, symbols: &[&str], series: &[TestSeries]) -> Vec<u8> {
        let path = dir.join("index");
        let mut writer =
            IndexWriter::create(&path, symbols.iter().map(|s| s.to_string()).collect()).unwrap();
        for (labels, chunks) in series {
            writer.add_series(labels, chunks).unwrap();
        }
        let size = writer.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(size, bytes.len() as u64);
        bytes
    }

    #[test]
    fn one_series_matches_promtools_bytes() {
        // promtool 2.42 `tsdb create-blocks-from openmetrics` on one series
        // adclick_clicks{ad_id="a\"b\\c\nd é",campaign_id="c"} with samples at 60 s and 120 s:
        // its index from the start through the series section (offset 0x64), and its four
        // postings lists (which 2.42 wrote after label indices we leave out).
        let promtool_head = unhex(
            "baaad700020000003c0000000700085f5f6e616d655f5f0a6122625c630a6420c3a90561645f69640e\
             6164636c69636b5f636c69636b7301630b63616d706169676e5f6964e1a43c4e000000000000000f03\
             01040302060501c0a907e0d40308c4e9961a",
        );
        let promtool_postings = unhex(
            "00000008000000010000000581c8c93a00000008000000010000000581c8c93a\
             00000008000000010000000581c8c93a00000008000000010000000581c8c93a",
        );
        let dir = tempfile::tempdir().unwrap();
        let symbols = [
            "",
            "__name__",
            "a\"b\\c\nd é",
            "ad_id",
            "adclick_clicks",
            "c",
            "campaign_id",
        ];
        let chunk = ChunkMeta {
            min_time_ms: 60_000,
            max_time_ms: 120_000,
            chunk_ref: ChunkRef(8),
        };
        let bytes = write(
            dir.path(),
            &symbols,
            &[(vec![(1, 4), (3, 2), (6, 5)], vec![chunk])],
        );

        assert_eq!(&bytes[..0x64], &promtool_head[..]);
        let toc = read_toc(&bytes);
        assert_eq!(
            (toc.symbols, toc.series, toc.label_indices),
            (5, 0x49, 0x64)
        );
        assert_eq!(toc.postings, 0x64);
        assert_eq!(&bytes[0x64..0xa4], &promtool_postings[..]);
        assert_eq!(
            (toc.label_offset_table, toc.postings_offset_table),
            (0xa4, 0xa4),
            "no label offset table; the last postings list ends where the offset table starts"
        );
        let offsets = read_postings_offsets(&bytes, &toc);
        let want: Vec<(String, String, u64)> = [
            ("", "", 0x64),
            ("__name__", "adclick_clicks", 0x74),
            ("ad_id", "a\"b\\c\nd é", 0x84),
            ("campaign_id", "c", 0x94),
        ]
        .iter()
        .map(|&(n, v, o)| (n.to_string(), v.to_string(), o))
        .collect();
        assert_eq!(offsets, want);
        assert_eq!(
            bytes.len() as u64,
            toc.postings_offset_table + 4 + section(&bytes, 0xa4).len() as u64 + 4 + 52
        );
    }

    #[test]
    fn many_series_have_aligned_ids_delta_coded_chunks_and_sorted_postings() {
        // Symbols: "", "__name__", "a", "m", then values "v000".."v099".
        let mut symbols = vec!["".to_string(), "__name__".into(), "a".into(), "m".into()];
        symbols.extend((0..100).map(|i| format!("v{i:03}")));
        let symbol_refs: Vec<&str> = symbols.iter().map(String::as_str).collect();
        let mut series = Vec::new();
        for i in 0..100u32 {
            // Series i: {__name__="m", a="v{i}"} with 1 + i % 4 chunks, refs growing.
            let chunks: Vec<ChunkMeta> = (0..1 + i % 4)
                .map(|c| ChunkMeta {
                    min_time_ms: -5_000 + i64::from(c) * 1000,
                    max_time_ms: -5_000 + i64::from(c) * 1000 + 999,
                    chunk_ref: ChunkRef(u64::from(c) << 32 | u64::from(8 + 40 * i)),
                })
                .collect();
            series.push((vec![(1, 3), (2, 4 + i)], chunks));
        }
        let dir = tempfile::tempdir().unwrap();
        let bytes = write(dir.path(), &symbol_refs, &series);
        let toc = read_toc(&bytes);

        // Symbols round-trip.
        let body = section(&bytes, toc.symbols as usize);
        assert_eq!(be32(body, 0) as usize, symbols.len());

        // Walk the series section: every entry aligned, CRC'd, decoding to what was written.
        let mut at = toc.series as usize;
        let mut ids = Vec::new();
        for (labels, chunks) in &series {
            while bytes[at] == 0 {
                at += 1;
            }
            assert_eq!(at % 16, 0);
            ids.push((at / 16) as u32);
            let (len, n) = read_uvarint(&bytes[at..]).unwrap();
            let body = &bytes[at + n..at + n + len as usize];
            assert_eq!(be32(&bytes, at + n + len as usize), crc32c(body));
            let mut cursor = Cursor { bytes: body, at: 0 };
            assert_eq!(cursor.uvarint(), labels.len() as u64);
            for &(name, value) in labels {
                assert_eq!(
                    (cursor.uvarint(), cursor.uvarint()),
                    (u64::from(name), u64::from(value))
                );
            }
            assert_eq!(cursor.uvarint(), chunks.len() as u64);
            let mut decoded = Vec::new();
            let (mut maxt, mut chunk_ref) = (0i64, 0i64);
            for c in 0..chunks.len() {
                let mint = if c == 0 {
                    cursor.varint()
                } else {
                    maxt + cursor.uvarint() as i64
                };
                maxt = mint + cursor.uvarint() as i64;
                chunk_ref = if c == 0 {
                    cursor.uvarint() as i64
                } else {
                    chunk_ref + cursor.varint()
                };
                decoded.push(ChunkMeta {
                    min_time_ms: mint,
                    max_time_ms: maxt,
                    chunk_ref: ChunkRef(chunk_ref as u64),
                });
            }
            assert_eq!(cursor.at, body.len());
            assert_eq!(&decoded, chunks);
            at += n + len as usize + 4;
        }
        assert_eq!(at as u64, toc.label_indices);

        let offsets = read_postings_offsets(&bytes, &toc);
        assert_eq!(offsets.len(), 1 + 1 + 100, "all, __name__=m, a=v000..v099");
        // Thanos' index-header ends the last postings list where the offset table starts.
        let last = offsets.iter().map(|o| o.2).max().unwrap();
        let last_len = 4 + 4 * read_postings(&bytes, last).len() as u64;
        assert_eq!(last + 4 + last_len + 4, toc.postings_offset_table);
        assert_eq!((offsets[0].0.as_str(), offsets[0].1.as_str()), ("", ""));
        assert_eq!(read_postings(&bytes, offsets[0].2), ids);
        let keys: Vec<(&str, &str)> = offsets
            .iter()
            .map(|(n, v, _)| (n.as_str(), v.as_str()))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "postings offset table sorted by name, value");
        for (i, (name, value, offset)) in offsets.iter().enumerate().skip(1) {
            let list = read_postings(&bytes, *offset);
            if name == "__name__" {
                assert_eq!(list, ids);
            } else {
                assert_eq!(name, "a");
                let i = i - 2;
                assert_eq!(value, &format!("v{i:03}"));
                assert_eq!(list, vec![ids[i]]);
            }
        }
    }
}
