//! Writing one block: series stream in, in block order; chunks go to disk as they come; the
//! index and `meta.json` are written at the end into a temporary directory that is fsynced and
//! then renamed into place, as Prometheus' compactor does (`<ulid>.tmp-for-creation` →
//! `<ulid>`), so a crash never leaves a directory that looks like a complete block.
//!
//! Memory holds what the index needs and nothing more: each distinct label string once, each
//! series' label ids and chunk metas (about 50 bytes per series, 24 per chunk), never samples
//! after their chunks are written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ulid::Ulid;

use crate::chunks::{ChunkMeta, DEFAULT_MAX_SEGMENT_BYTES, SegmentWriter};
use crate::files::{FileError, PositionedWriter, sync_dir};
use crate::index::{IndexError, IndexWriter};
use crate::meta::{BlockFile, BlockMeta, BlockStats, MetaError, check_external_labels};
use crate::series::{
    DisplayLabels, Label, Sample, Series, SeriesProblem, check_labels, check_samples,
    compare_label_sets, sort_series,
};
use crate::symbols::SymbolInterner;
use crate::xor;

/// Suffix of the directory a block is written in before it is complete (Prometheus'
/// `tmpForCreationBlockDirSuffix`); Prometheus deletes such directories when it starts.
pub const TMP_DIR_SUFFIX: &str = ".tmp-for-creation";

/// What a block is made with.
#[derive(Debug, Clone)]
pub struct BlockOptions {
    /// First millisecond the block covers, inclusive.
    pub min_time_ms: i64,
    /// End of the block, exclusive.
    pub max_time_ms: i64,
    /// Thanos external labels; must be non-empty.
    pub external_labels: BTreeMap<String, String>,
    /// `thanos.source` in `meta.json`, e.g. `rollup`.
    pub source: String,
    /// The block's ULID; a new one (current time, random) when `None`.
    pub ulid: Option<Ulid>,
    /// Size at which a chunk segment file is closed and the next one started.
    pub max_segment_bytes: u64,
    /// Blocks this one replaces (a rerun of the same range): their compaction sources join this
    /// block's, which is how Thanos' compactor knows the old blocks' data is in this one and
    /// drops them as duplicates instead of halting on an overlap.
    pub replaces: Vec<Ulid>,
}

impl BlockOptions {
    /// Options for a block over `[min_time_ms, max_time_ms)` with a new ULID and 512 MiB
    /// segments.
    pub fn new(
        min_time_ms: i64,
        max_time_ms: i64,
        external_labels: BTreeMap<String, String>,
        source: impl Into<String>,
    ) -> BlockOptions {
        BlockOptions {
            min_time_ms,
            max_time_ms,
            external_labels,
            source: source.into(),
            ulid: None,
            max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES,
            replaces: Vec::new(),
        }
    }

    /// Uses this ULID instead of a new one (reproducible runs and tests).
    pub fn with_ulid(mut self, ulid: Ulid) -> BlockOptions {
        self.ulid = Some(ulid);
        self
    }

    /// Lists the compaction sources of the blocks this one replaces (see [`Self::replaces`]).
    pub fn replacing(mut self, sources: impl IntoIterator<Item = Ulid>) -> BlockOptions {
        self.replaces.extend(sources);
        self
    }

    pub fn with_max_segment_bytes(mut self, max_segment_bytes: u64) -> BlockOptions {
        self.max_segment_bytes = max_segment_bytes;
        self
    }
}

/// Why a block could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block time range [{min_time_ms}, {max_time_ms}) ms is empty")]
    EmptyTimeRange { min_time_ms: i64, max_time_ms: i64 },
    #[error("segment size {0} bytes must be between 4 KiB and 4 GiB (32-bit chunk offsets)")]
    BadSegmentSize(u64),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("block directory {} already exists", .0.display())]
    AlreadyExists(PathBuf),
    #[error("series {series}: {problem}")]
    InvalidSeries {
        series: String,
        problem: SeriesProblem,
    },
    #[error(
        "series {series} comes after {previous}: series must be added sorted by label set, each once"
    )]
    SeriesOutOfOrder { previous: String, series: String },
    #[error("no series: Prometheus and Thanos delete empty blocks, so none is written")]
    NoSeries,
    #[error("an earlier write failed; the block is abandoned")]
    Abandoned,
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// A complete block.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenBlock {
    /// `<parent>/<ulid>`.
    pub dir: PathBuf,
    pub meta: BlockMeta,
}

/// Writes one block from series given in block order (sorted by label set).
#[derive(Debug)]
pub struct BlockWriter {
    options: BlockOptions,
    ulid: Ulid,
    parent: PathBuf,
    tmp_dir: PathBuf,
    segments: Option<SegmentWriter>,
    symbols: SymbolInterner,
    /// Provisional symbol ids, `(name, value)` per label, all series one after another.
    label_ids: Vec<(u32, u32)>,
    chunk_metas: Vec<ChunkMeta>,
    /// Per series, where its labels and chunks end in `label_ids` and `chunk_metas`.
    series_ends: Vec<(usize, usize)>,
    previous_labels: Vec<Label>,
    num_samples: u64,
    chunk_bytes: Vec<u8>,
    /// Set when a file write failed: the files no longer match what was recorded.
    abandoned: bool,
    finished: bool,
}

impl BlockWriter {
    /// Starts a block in `<parent>/<ulid>.tmp-for-creation` (replacing a leftover one).
    /// Checks the options first, so that a bad configuration fails before any data is read.
    pub fn create(
        parent: impl AsRef<Path>,
        options: BlockOptions,
    ) -> Result<BlockWriter, BlockError> {
        if options.min_time_ms >= options.max_time_ms {
            return Err(BlockError::EmptyTimeRange {
                min_time_ms: options.min_time_ms,
                max_time_ms: options.max_time_ms,
            });
        }
        if !(4096..=u64::from(u32::MAX)).contains(&options.max_segment_bytes) {
            return Err(BlockError::BadSegmentSize(options.max_segment_bytes));
        }
        check_external_labels(&options.external_labels)?;

        let parent = parent.as_ref().to_path_buf();
        // Not `unwrap_or_default()`, whatever clippy assumes: `Ulid::default()` is the nil ULID.
        #[allow(clippy::unwrap_or_default)]
        let ulid = options.ulid.unwrap_or_else(Ulid::new);
        let final_dir = parent.join(ulid.to_string());
        if final_dir.exists() {
            return Err(BlockError::AlreadyExists(final_dir));
        }
        let tmp_dir = parent.join(format!("{ulid}{TMP_DIR_SUFFIX}"));
        if tmp_dir.exists() {
            std::fs::remove_dir_all(&tmp_dir)
                .map_err(|e| FileError::new("remove leftover", &tmp_dir, e))?;
        }
        std::fs::create_dir_all(&tmp_dir)
            .map_err(|e| FileError::new("create directory", &tmp_dir, e))?;
        let segments = SegmentWriter::create(&tmp_dir.join("chunks"), options.max_segment_bytes)?;
        Ok(BlockWriter {
            options,
            ulid,
            parent,
            tmp_dir,
            segments: Some(segments),
            symbols: SymbolInterner::new(),
            label_ids: Vec::new(),
            chunk_metas: Vec::new(),
            series_ends: Vec::new(),
            previous_labels: Vec::new(),
            num_samples: 0,
            chunk_bytes: Vec::with_capacity(2048),
            abandoned: false,
            finished: false,
        })
    }

    pub fn ulid(&self) -> Ulid {
        self.ulid
    }

    /// Adds one series: labels sorted by name, samples in strictly increasing time order, all
    /// inside the block's range, and a label set greater than the previous series'. A refused
    /// series leaves the block as it was, so the caller may skip it and go on.
    pub fn add_series(&mut self, labels: &[Label], samples: &[Sample]) -> Result<(), BlockError> {
        if self.abandoned {
            return Err(BlockError::Abandoned);
        }
        let invalid = |problem| BlockError::InvalidSeries {
            series: DisplayLabels(labels).to_string(),
            problem,
        };
        check_labels(labels).map_err(invalid)?;
        check_samples(samples, self.options.min_time_ms, self.options.max_time_ms)
            .map_err(invalid)?;
        if !self.series_ends.is_empty() && compare_label_sets(&self.previous_labels, labels).is_ge()
        {
            return Err(BlockError::SeriesOutOfOrder {
                previous: DisplayLabels(&self.previous_labels).to_string(),
                series: DisplayLabels(labels).to_string(),
            });
        }

        let written = self.write_chunks(samples);
        if written.is_err() {
            self.abandoned = true;
        }
        written?;

        for label in labels {
            let name = self.symbols.intern(&label.name);
            let value = self.symbols.intern(&label.value);
            self.label_ids.push((name, value));
        }
        self.series_ends
            .push((self.label_ids.len(), self.chunk_metas.len()));
        self.previous_labels.clear();
        self.previous_labels.extend_from_slice(labels);
        self.num_samples += samples.len() as u64;
        Ok(())
    }

    fn write_chunks(&mut self, samples: &[Sample]) -> Result<(), BlockError> {
        let segments = self.segments.as_mut().expect("segments open until finish");
        let mut rest = samples;
        for size in xor::chunk_sizes(samples.len()) {
            let (chunk, after) = rest.split_at(size);
            rest = after;
            self.chunk_bytes.clear();
            xor::encode(chunk, &mut self.chunk_bytes).expect("chunk_sizes yields 1 to 120 samples");
            let chunk_ref = segments.write_chunk(xor::ENCODING_XOR, &self.chunk_bytes)?;
            self.chunk_metas.push(ChunkMeta {
                min_time_ms: chunk[0].timestamp_ms,
                max_time_ms: chunk[chunk.len() - 1].timestamp_ms,
                chunk_ref,
            });
        }
        Ok(())
    }

    /// Writes the index and `meta.json`, fsyncs everything and renames the directory into place.
    pub fn finish(mut self) -> Result<WrittenBlock, BlockError> {
        if self.abandoned {
            return Err(BlockError::Abandoned);
        }
        if self.series_ends.is_empty() {
            return Err(BlockError::NoSeries);
        }
        let segments = self
            .segments
            .take()
            .expect("segments open until finish")
            .finish()?;

        let symbols = std::mem::replace(&mut self.symbols, SymbolInterner::new()).into_sorted();
        let mut index = IndexWriter::create(&self.tmp_dir.join("index"), symbols.strings)?;
        let mut labels = Vec::new();
        let (mut labels_start, mut chunks_start) = (0, 0);
        for &(labels_end, chunks_end) in &self.series_ends {
            labels.clear();
            labels.extend(
                self.label_ids[labels_start..labels_end]
                    .iter()
                    .map(|&(name, value)| {
                        (
                            symbols.position_of[name as usize],
                            symbols.position_of[value as usize],
                        )
                    }),
            );
            index.add_series(&labels, &self.chunk_metas[chunks_start..chunks_end])?;
            (labels_start, chunks_start) = (labels_end, chunks_end);
        }
        let index_bytes = index.finish()?;

        let mut files: Vec<BlockFile> = segments
            .iter()
            .map(|segment| BlockFile {
                rel_path: format!("chunks/{}", segment.name),
                size_bytes: Some(segment.size_bytes),
            })
            .collect();
        files.push(BlockFile {
            rel_path: "index".into(),
            size_bytes: Some(index_bytes),
        });
        files.push(BlockFile {
            rel_path: "meta.json".into(),
            size_bytes: None,
        });
        let stats = BlockStats {
            num_samples: self.num_samples,
            num_series: self.series_ends.len() as u64,
            num_chunks: self.chunk_metas.len() as u64,
        };
        let meta = BlockMeta::new_block(
            self.ulid,
            self.options.min_time_ms,
            self.options.max_time_ms,
            stats,
            self.options.external_labels.clone(),
            self.options.source.clone(),
            files,
        )?
        .with_sources(self.options.replaces.iter().copied());
        let mut meta_file = PositionedWriter::create(&self.tmp_dir.join("meta.json"))?;
        meta_file.write_all(&meta.to_json())?;
        meta_file.finish()?;
        sync_dir(&self.tmp_dir)?;

        let final_dir = self.parent.join(self.ulid.to_string());
        if final_dir.exists() {
            return Err(BlockError::AlreadyExists(final_dir));
        }
        std::fs::rename(&self.tmp_dir, &final_dir)
            .map_err(|e| FileError::new("rename into place", &self.tmp_dir, e))?;
        self.finished = true;
        sync_dir(&self.parent)?;
        Ok(WrittenBlock {
            dir: final_dir,
            meta,
        })
    }
}

impl Drop for BlockWriter {
    /// An unfinished block leaves nothing behind.
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_dir_all(&self.tmp_dir);
        }
    }
}

/// Writes a block from series held in memory in any order: sorts them (and each label set),
/// then streams them through a [`BlockWriter`].
pub fn write_block(
    parent: impl AsRef<Path>,
    options: BlockOptions,
    mut series: Vec<Series>,
) -> Result<WrittenBlock, BlockError> {
    sort_series(&mut series);
    let mut writer = BlockWriter::create(parent, options)?;
    for one in &series {
        writer.add_series(&one.labels, &one.samples)?;
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xor::decode;

    const DAY_MS: i64 = 86_400_000;

    fn options() -> BlockOptions {
        BlockOptions::new(
            0,
            DAY_MS,
            BTreeMap::from([("producer".to_string(), "test".to_string())]),
            "test",
        )
        .with_ulid(Ulid::from_string("01JD0000000000000000000001").unwrap())
    }

    fn ad(ad_id: &str) -> Vec<Label> {
        vec![
            Label::new("__name__", "adclick_clicks"),
            Label::new("ad_id", ad_id),
        ]
    }

    fn minutes(count: i64) -> Vec<Sample> {
        (1..=count)
            .map(|m| Sample::new(m * 60_000, (m % 7) as f64))
            .collect()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_block_is_renamed_into_place_with_its_meta() {
        let parent = tempfile::tempdir().unwrap();
        let mut writer = BlockWriter::create(parent.path(), options()).unwrap();
        assert_eq!(
            entries(parent.path()),
            ["01JD0000000000000000000001.tmp-for-creation"]
        );
        writer.add_series(&ad("a"), &minutes(1439)).unwrap();
        writer.add_series(&ad("b"), &minutes(1)).unwrap();
        let block = writer.finish().unwrap();

        assert_eq!(entries(parent.path()), ["01JD0000000000000000000001"]);
        assert_eq!(entries(&block.dir), ["chunks", "index", "meta.json"]);
        let meta = &block.meta;
        assert_eq!(
            (
                meta.stats.num_series,
                meta.stats.num_samples,
                meta.stats.num_chunks
            ),
            (2, 1440, 12 + 1)
        );
        let on_disk: BlockMeta =
            serde_json::from_slice(&std::fs::read(block.dir.join("meta.json")).unwrap()).unwrap();
        assert_eq!(&on_disk, meta);
        for file in &meta.thanos.files {
            let size = std::fs::metadata(block.dir.join(&file.rel_path))
                .unwrap()
                .len();
            match file.size_bytes {
                Some(recorded) => assert_eq!(recorded, size, "{}", file.rel_path),
                None => assert_eq!(file.rel_path, "meta.json"),
            }
        }
    }

    #[test]
    fn chunks_hold_the_samples_cut_at_120() {
        let parent = tempfile::tempdir().unwrap();
        let mut writer = BlockWriter::create(parent.path(), options()).unwrap();
        let samples = minutes(250);
        writer.add_series(&ad("a"), &samples).unwrap();
        assert_eq!(
            writer
                .chunk_metas
                .iter()
                .map(|c| (c.min_time_ms, c.max_time_ms))
                .collect::<Vec<_>>(),
            vec![
                (60_000, 84 * 60_000),
                (85 * 60_000, 167 * 60_000),
                (168 * 60_000, 250 * 60_000)
            ],
            "250 samples: 84 + 83 + 83"
        );
        let block = writer.finish().unwrap();
        // Read the chunks back from the segment through their refs.
        let segment = std::fs::read(block.dir.join("chunks/000001")).unwrap();
        let mut decoded = Vec::new();
        let mut at = 8;
        while at < segment.len() {
            let (len, n) = crate::encoding::read_uvarint(&segment[at..]).unwrap();
            let data = &segment[at + n + 1..at + n + 1 + len as usize];
            decoded.extend(decode(data).unwrap());
            at += n + 1 + len as usize + 4;
        }
        assert_eq!(decoded, samples);
    }

    #[test]
    fn refused_series_name_the_series_and_leave_the_block_usable() {
        let parent = tempfile::tempdir().unwrap();
        let mut writer = BlockWriter::create(parent.path(), options()).unwrap();
        writer.add_series(&ad("b"), &minutes(3)).unwrap();

        let err = writer.add_series(&ad("a"), &minutes(3)).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"series {__name__="adclick_clicks", ad_id="a"} comes after {__name__="adclick_clicks", ad_id="b"}: series must be added sorted by label set, each once"#
        );
        assert!(matches!(
            writer.add_series(&ad("b"), &minutes(3)),
            Err(BlockError::SeriesOutOfOrder { .. })
        ));

        let late = [Sample::new(DAY_MS, 1.0)];
        let err = writer.add_series(&ad("c"), &late).unwrap_err();
        assert!(
            err.to_string().starts_with(
                r#"series {__name__="adclick_clicks", ad_id="c"}: sample at 86400000 ms is outside"#
            ),
            "{err}"
        );

        let unsorted = vec![
            Label::new("ad_id", "d"),
            Label::new("__name__", "adclick_clicks"),
        ];
        assert!(matches!(
            writer.add_series(&unsorted, &minutes(1)),
            Err(BlockError::InvalidSeries {
                problem: SeriesProblem::LabelsNotSorted { .. },
                ..
            })
        ));
        let repeated = [Sample::new(60_000, 1.0), Sample::new(60_000, 2.0)];
        assert!(matches!(
            writer.add_series(&ad("e"), &repeated),
            Err(BlockError::InvalidSeries {
                problem: SeriesProblem::NotIncreasing { .. },
                ..
            })
        ));

        writer.add_series(&ad("f"), &minutes(2)).unwrap();
        let block = writer.finish().unwrap();
        assert_eq!(block.meta.stats.num_series, 2);
        assert_eq!(block.meta.stats.num_samples, 5);
    }

    #[test]
    fn bad_options_fail_before_anything_is_written() {
        let parent = tempfile::tempdir().unwrap();
        let mut no_labels = options();
        no_labels.external_labels.clear();
        assert!(matches!(
            BlockWriter::create(parent.path(), no_labels),
            Err(BlockError::Meta(MetaError::NoExternalLabels))
        ));
        let mut backwards = options();
        backwards.max_time_ms = backwards.min_time_ms;
        assert!(matches!(
            BlockWriter::create(parent.path(), backwards),
            Err(BlockError::EmptyTimeRange { .. })
        ));
        assert!(matches!(
            BlockWriter::create(parent.path(), options().with_max_segment_bytes(100)),
            Err(BlockError::BadSegmentSize(100))
        ));
        assert!(entries(parent.path()).is_empty());
    }

    #[test]
    fn abandoned_or_empty_blocks_leave_nothing_and_blocks_are_never_overwritten() {
        let parent = tempfile::tempdir().unwrap();
        {
            let mut writer = BlockWriter::create(parent.path(), options()).unwrap();
            writer.add_series(&ad("a"), &minutes(5)).unwrap();
        }
        assert!(
            entries(parent.path()).is_empty(),
            "dropped unfinished: removed"
        );

        let writer = BlockWriter::create(parent.path(), options()).unwrap();
        assert!(matches!(writer.finish(), Err(BlockError::NoSeries)));
        assert!(entries(parent.path()).is_empty());

        // A leftover temporary directory from a crash is replaced.
        std::fs::create_dir_all(
            parent
                .path()
                .join("01JD0000000000000000000001.tmp-for-creation/chunks"),
        )
        .unwrap();
        let mut writer = BlockWriter::create(parent.path(), options()).unwrap();
        writer.add_series(&ad("a"), &minutes(5)).unwrap();
        writer.finish().unwrap();
        assert!(matches!(
            BlockWriter::create(parent.path(), options()),
            Err(BlockError::AlreadyExists(_))
        ));
    }

    #[test]
    fn write_block_sorts_unsorted_series() {
        let parent = tempfile::tempdir().unwrap();
        let series = vec![
            Series {
                labels: vec![Label::new("ad_id", "z"), Label::new("__name__", "m")],
                samples: minutes(2),
            },
            Series {
                labels: vec![Label::new("__name__", "m"), Label::new("ad_id", "a")],
                samples: minutes(3),
            },
        ];
        let block = write_block(parent.path(), options(), series).unwrap();
        assert_eq!(block.meta.stats.num_series, 2);
        assert_eq!(block.meta.stats.num_samples, 5);

        let duplicate = vec![
            Series {
                labels: ad("a"),
                samples: minutes(1),
            },
            Series {
                labels: ad("a"),
                samples: minutes(1),
            },
        ];
        let other = tempfile::tempdir().unwrap();
        assert!(matches!(
            write_block(other.path(), options(), duplicate),
            Err(BlockError::SeriesOutOfOrder { .. })
        ));
        assert!(entries(other.path()).is_empty());
    }
}
