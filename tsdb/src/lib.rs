//! Writes Prometheus TSDB blocks — XOR chunks, index format v2, `meta.json` with the Thanos
//! section — that Prometheus, `promtool` and Thanos Store Gateway read as their own.
//!
//! | module | concept |
//! |---|---|
//! | [`block`] | [`BlockWriter`]: series streamed in block order → `<ulid>.tmp-for-creation` → fsync → `<ulid>`; [`write_block`] for unsorted series in memory |
//! | [`series`] | [`Label`], [`Sample`], [`Series`]: what a series must satisfy, block order, why one was refused |
//! | [`xor`] | the XOR chunk encoding (and its decoder), 120 samples per chunk at most |
//! | `chunks` | chunk segment files `chunks/000001…`: framing, CRC32C, chunk references, 512 MiB cut |
//! | `index` | the `index` file: symbols, 16-byte-aligned series, postings, postings offset table, TOC |
//! | `symbols` | label strings interned once, renumbered in sorted order for the symbol table |
//! | [`meta`] | `meta.json`: Prometheus `BlockMeta` plus the `thanos` section, external labels required |
//! | `files` | durable output: positioned buffered writes, fsync of files and directories |
//! | `bitstream` | bit-granular writer and reader under the XOR encoding |
//! | `encoding` | Go-compatible varints, big-endian integers, CRC32 Castagnoli |
//!
//! The formats: prometheus/prometheus `tsdb/docs/format/{index,chunks}.md`, `tsdb/index/index.go`,
//! `tsdb/chunkenc/xor.go`, `tsdb/block.go`; thanos-io/thanos `pkg/block/metadata/meta.go`.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use adclick_tsdb::{BlockOptions, BlockWriter, Label, Sample};
//!
//! let day_start = 1_763_856_000_000; // 2025-11-23T00:00:00Z
//! let external = BTreeMap::from([("producer".to_string(), "rollup".to_string())]);
//! let options = BlockOptions::new(day_start, day_start + 86_400_000, external, "rollup");
//! let mut writer = BlockWriter::create("/var/lib/adclick/blocks", options)?;
//! let labels = [
//!     Label::new("__name__", "adclick_clicks"),
//!     Label::new("ad_id", "42"),
//!     Label::new("advertiser_id", "7"),
//!     Label::new("campaign_id", "3"),
//! ];
//! writer.add_series(&labels, &[Sample::new(day_start + 60_000, 3.0)])?;
//! let block = writer.finish()?;
//! println!("wrote {}", block.dir.display());
//! # Ok::<(), adclick_tsdb::BlockError>(())
//! ```

pub mod block;
pub mod meta;
pub mod series;
pub mod xor;

mod bitstream;
mod chunks;
mod encoding;
mod files;
mod index;
mod symbols;

pub use block::{BlockError, BlockOptions, BlockWriter, TMP_DIR_SUFFIX, WrittenBlock, write_block};
pub use chunks::DEFAULT_MAX_SEGMENT_BYTES;
pub use files::FileError;
pub use index::IndexError;
pub use meta::{BlockMeta, MetaError};
pub use series::{Label, METRIC_NAME_LABEL, Sample, Series, SeriesProblem, sort_series};
pub use ulid::Ulid;
