//! `meta.json`: Prometheus' `BlockMeta` (`tsdb/block.go`) with the `thanos` section Thanos adds
//! (`pkg/block/metadata/meta.go`), the one file that makes a directory a block.
//!
//! Thanos treats a block without `meta.json` as a partial upload, so the file is written last
//! and uploaded last. Its `thanos.labels` are the external labels that keep this producer's
//! blocks apart from every other's in the compactor; Thanos refuses to upload a block without
//! them, and so does this crate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// `metaVersion1` in tsdb/block.go, the only meta version Prometheus and Thanos read.
pub const META_VERSION: u32 = 1;
/// `ThanosVersion1` in meta.go.
pub const THANOS_META_VERSION: u32 = 1;
/// The downsampling resolution of raw (not downsampled) data.
pub const RAW_RESOLUTION_MS: i64 = 0;
/// A new block has been through no compaction: level 1, its own ULID as only source.
pub const NEW_BLOCK_COMPACTION_LEVEL: u32 = 1;

/// The whole `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    pub ulid: Ulid,
    /// First millisecond of the block, inclusive.
    #[serde(rename = "minTime")]
    pub min_time_ms: i64,
    /// End of the block, exclusive: samples are in `[minTime, maxTime)`.
    #[serde(rename = "maxTime")]
    pub max_time_ms: i64,
    pub stats: BlockStats,
    pub compaction: Compaction,
    pub version: u32,
    pub thanos: ThanosMeta,
}

/// `BlockStats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    #[serde(rename = "numSamples")]
    pub num_samples: u64,
    #[serde(rename = "numSeries")]
    pub num_series: u64,
    #[serde(rename = "numChunks")]
    pub num_chunks: u64,
}

/// `BlockMetaCompaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    pub level: u32,
    pub sources: Vec<Ulid>,
}

/// The `thanos` section (`metadata.Thanos`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThanosMeta {
    pub version: u32,
    /// External labels; never empty.
    pub labels: BTreeMap<String, String>,
    pub downsample: Downsample,
    /// Which component made the block (`sidecar`, `receive`, `compactor`, …; ours e.g. `rollup`).
    pub source: String,
    /// Every file of the block, sorted by path, as Thanos' `GatherFileStats` lists them.
    pub files: Vec<BlockFile>,
}

/// `ThanosDownsample`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downsample {
    pub resolution: i64,
}

/// `metadata.File`: a path relative to the block directory and its size (none for `meta.json`,
/// whose size is not known while it is being written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockFile {
    pub rel_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}

/// Why a `meta.json` cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error(
        "external labels are empty: Thanos refuses such blocks and could not tell this \
         producer's blocks from any other's; give at least one (e.g. source=\"rollup\")"
    )]
    NoExternalLabels,
    #[error("external label {name:?}={value:?}: names and values must be non-empty")]
    EmptyExternalLabel { name: String, value: String },
}

/// Checks external labels as Thanos needs them: at least one, no empty name or value.
pub fn check_external_labels(labels: &BTreeMap<String, String>) -> Result<(), MetaError> {
    if labels.is_empty() {
        return Err(MetaError::NoExternalLabels);
    }
    if let Some((name, value)) = labels.iter().find(|(n, v)| n.is_empty() || v.is_empty()) {
        return Err(MetaError::EmptyExternalLabel {
            name: name.clone(),
            value: value.clone(),
        });
    }
    Ok(())
}

impl BlockMeta {
    /// The meta of a freshly written (level 1) raw block.
    pub fn new_block(
        ulid: Ulid,
        min_time_ms: i64,
        max_time_ms: i64,
        stats: BlockStats,
        external_labels: BTreeMap<String, String>,
        source: String,
        mut files: Vec<BlockFile>,
    ) -> Result<BlockMeta, MetaError> {
        check_external_labels(&external_labels)?;
        files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
        Ok(BlockMeta {
            ulid,
            min_time_ms,
            max_time_ms,
            stats,
            compaction: Compaction {
                level: NEW_BLOCK_COMPACTION_LEVEL,
                sources: vec![ulid],
            },
            version: META_VERSION,
            thanos: ThanosMeta {
                version: THANOS_META_VERSION,
                labels: external_labels,
                downsample: Downsample {
                    resolution: RAW_RESOLUTION_MS,
                },
                source,
                files,
            },
        })
    }

    /// Adds compaction sources (the ULIDs of blocks whose data this one holds), kept sorted
    /// and unique as Prometheus keeps them.
    pub fn with_sources(mut self, sources: impl IntoIterator<Item = Ulid>) -> BlockMeta {
        self.compaction.sources.extend(sources);
        self.compaction.sources.sort();
        self.compaction.sources.dedup();
        self
    }

    /// The JSON as Prometheus and Thanos write it: tab-indented, with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        self.serialize(&mut serializer)
            .expect("serializing strings and integers into a Vec cannot fail");
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// The struct definitions with their json tags, as in Prometheus `tsdb/block.go`
    /// (BlockMeta, BlockStats, BlockMetaCompaction) and Thanos `pkg/block/metadata/meta.go`
    /// (Meta, Thanos, ThanosDownsample, File).
    const GO_STRUCTS: &[(&str, &str)] = &[
        (
            "BlockMeta",
            r#"ULID ulid.ULID `json:"ulid"`
               MinTime int64 `json:"minTime"`
               MaxTime int64 `json:"maxTime"`
               Stats BlockStats `json:"stats,omitempty"`
               Compaction BlockMetaCompaction `json:"compaction"`
               Version int `json:"version"`
               Thanos Thanos `json:"thanos"`"#,
        ),
        (
            "BlockStats",
            r#"NumSamples uint64 `json:"numSamples,omitempty"`
               NumSeries uint64 `json:"numSeries,omitempty"`
               NumChunks uint64 `json:"numChunks,omitempty"`
               NumTombstones uint64 `json:"numTombstones,omitempty"`"#,
        ),
        (
            "BlockMetaCompaction",
            r#"Level int `json:"level"`
               Sources []ulid.ULID `json:"sources,omitempty"`
               Deletable bool `json:"deletable,omitempty"`
               Parents []BlockDesc `json:"parents,omitempty"`
               Failed bool `json:"failed,omitempty"`"#,
        ),
        (
            "Thanos",
            r#"Version int `json:"version,omitempty"`
               Labels map[string]string `json:"labels"`
               Downsample ThanosDownsample `json:"downsample"`
               Source SourceType `json:"source"`
               SegmentFiles []string `json:"segment_files,omitempty"`
               Files []File `json:"files,omitempty"`
               Rewrites []Rewrite `json:"rewrites,omitempty"`"#,
        ),
        (
            "ThanosDownsample",
            r#"Resolution int64 `json:"resolution"`"#,
        ),
        (
            "File",
            r#"RelPath string `json:"rel_path"`
               SizeBytes int64 `json:"size_bytes,omitempty"`
               Hash *ObjectHash `json:"hash,omitempty"`"#,
        ),
    ];

    /// (every json name, the names without omitempty) of one Go struct.
    fn go_fields(name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let body = GO_STRUCTS.iter().find(|(n, _)| *n == name).unwrap().1;
        let mut all = BTreeSet::new();
        let mut required = BTreeSet::new();
        for tag in body.split("`json:\"").skip(1) {
            let tag = &tag[..tag.find('"').unwrap()];
            let mut parts = tag.split(',');
            let field = parts.next().unwrap().to_string();
            if !parts.any(|p| p == "omitempty") {
                required.insert(field.clone());
            }
            all.insert(field);
        }
        (all, required)
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    /// Our keys must all be Go json names, and every name Go always writes must be ours.
    fn assert_matches_go(struct_name: &str, value: &Value) {
        let (all, required) = go_fields(struct_name);
        let ours = keys(value);
        assert!(
            ours.is_subset(&all),
            "{struct_name}: {ours:?} not all in Go's {all:?}"
        );
        assert!(
            required.is_subset(&ours),
            "{struct_name}: Go always writes {required:?}, we write {ours:?}"
        );
    }

    fn sample_meta() -> BlockMeta {
        let ulid = Ulid::from_string("01JD0000000000000000000000").unwrap();
        let labels = BTreeMap::from([("source".to_string(), "rollup".to_string())]);
        let files = vec![
            BlockFile {
                rel_path: "meta.json".into(),
                size_bytes: None,
            },
            BlockFile {
                rel_path: "index".into(),
                size_bytes: Some(1234),
            },
            BlockFile {
                rel_path: "chunks/000001".into(),
                size_bytes: Some(5678),
            },
        ];
        let stats = BlockStats {
            num_samples: 1440,
            num_series: 1,
            num_chunks: 12,
        };
        BlockMeta::new_block(ulid, 0, 86_400_000, stats, labels, "rollup".into(), files).unwrap()
    }

    #[test]
    fn field_names_are_those_of_prometheus_and_thanos() {
        let json: Value = serde_json::from_slice(&sample_meta().to_json()).unwrap();
        // Thanos' Meta embeds BlockMeta and adds `thanos`; the Go list above has both.
        assert_matches_go("BlockMeta", &json);
        assert_matches_go("BlockStats", &json["stats"]);
        assert_matches_go("BlockMetaCompaction", &json["compaction"]);
        assert_matches_go("Thanos", &json["thanos"]);
        assert_matches_go("ThanosDownsample", &json["thanos"]["downsample"]);
        for file in json["thanos"]["files"].as_array().unwrap() {
            assert_matches_go("File", file);
        }
    }

    #[test]
    fn json_holds_what_prometheus_and_thanos_expect() {
        let meta = sample_meta();
        let text = String::from_utf8(meta.to_json()).unwrap();
        assert!(
            text.starts_with("{\n\t\"ulid\": \"01JD0000000000000000000000\""),
            "{text}"
        );
        assert!(text.ends_with("}\n"));
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["minTime"], 0);
        assert_eq!(json["maxTime"], 86_400_000);
        assert_eq!(json["stats"]["numChunks"], 12);
        assert_eq!(json["compaction"]["level"], 1);
        assert_eq!(
            json["compaction"]["sources"][0],
            "01JD0000000000000000000000"
        );
        assert_eq!(json["thanos"]["version"], 1);
        assert_eq!(json["thanos"]["labels"]["source"], "rollup");
        assert_eq!(json["thanos"]["downsample"]["resolution"], 0);
        assert_eq!(json["thanos"]["source"], "rollup");
        // Sorted by path, meta.json without a size (Thanos' GatherFileStats).
        assert_eq!(
            json["thanos"]["files"],
            serde_json::json!([
                {"rel_path": "chunks/000001", "size_bytes": 5678},
                {"rel_path": "index", "size_bytes": 1234},
                {"rel_path": "meta.json"},
            ])
        );
        let back: BlockMeta = serde_json::from_str(&text).unwrap();
        assert_eq!(back, meta);
    }

    #[test]
    fn empty_external_labels_are_refused() {
        let ulid = Ulid::from_string("01JD0000000000000000000000").unwrap();
        let stats = BlockStats {
            num_samples: 1,
            num_series: 1,
            num_chunks: 1,
        };
        let made =
            |labels| BlockMeta::new_block(ulid, 0, 1, stats, labels, "rollup".into(), vec![]);
        assert_eq!(made(BTreeMap::new()), Err(MetaError::NoExternalLabels));
        assert!(matches!(
            made(BTreeMap::from([("a".to_string(), String::new())])),
            Err(MetaError::EmptyExternalLabel { .. })
        ));
        assert!(
            MetaError::NoExternalLabels
                .to_string()
                .contains("external labels are empty")
        );
    }
}
