//! Publishing a block to the bucket the way Thanos does (pkg/block/block.go `Upload`): every
//! chunk segment, then `index`, then `meta.json` last — a block directory without `meta.json` is
//! a partial upload that no reader trusts and the compactor removes. If an upload fails, what
//! was uploaded of the block is removed again (best effort: with the store down, the partial
//! directory stays, without `meta.json`, and Thanos' compactor deletes it after its
//! partial-upload delay).
//!
//! A rerun for a day replaces the blocks an earlier run published for it (same external labels,
//! overlapping time range): the new block lists their compaction sources as its own — which is
//! how Thanos' compactor recognises the old blocks' data inside the new one and drops them as
//! duplicates rather than halting on an overlap — and once the new block is complete, each old
//! one gets a `deletion-mark.json` (pkg/block/metadata/deletionmark.go), after which the
//! compactor deletes it and store gateways stop serving it.

use std::collections::BTreeMap;
use std::path::Path;

use adclick_objstore::StoreError;
use adclick_tsdb::{BlockMeta, Ulid};
use aws_sdk_s3::Client;
use serde::Serialize;

/// Where blocks live.
#[derive(Debug, Clone)]
pub struct BlockBucket<'a> {
    pub s3: &'a Client,
    pub bucket: &'a str,
    /// `[rollup] blocks_prefix` (empty or ending in `/`).
    pub prefix: &'a str,
}

/// An earlier block of the same range and labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExistingBlock {
    pub ulid: Ulid,
    pub sources: Vec<Ulid>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("meta.json of block {ulid} is not a block meta: {reason}")]
    BadMeta { ulid: String, reason: String },
    #[error("block directory {dir}")]
    Local {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// `deletion-mark.json`.
#[derive(Debug, Serialize)]
struct DeletionMark {
    id: Ulid,
    details: String,
    deletion_time: i64,
    version: u32,
}

impl BlockBucket<'_> {
    fn key(&self, ulid: &Ulid, rel: &str) -> String {
        format!("{}{ulid}/{rel}", self.prefix)
    }

    /// Blocks with exactly `labels` whose range overlaps `[min, max)` and that are not marked
    /// for deletion: what a new block of that range replaces.
    pub async fn overlapping(
        &self,
        labels: &BTreeMap<String, String>,
        min_ms: i64,
        max_ms: i64,
    ) -> Result<Vec<ExistingBlock>, PublishError> {
        let mut out = Vec::new();
        for dir in adclick_objstore::list_dirs(self.s3, self.bucket, self.prefix).await? {
            let name = dir[self.prefix.len()..].trim_end_matches('/');
            let Ok(ulid) = name.parse::<Ulid>() else {
                continue; // raw/, checkpoints/, anything not a block
            };
            let Some(meta) =
                adclick_objstore::get(self.s3, self.bucket, &self.key(&ulid, "meta.json")).await?
            else {
                continue; // a partial upload
            };
            let meta: BlockMeta =
                serde_json::from_slice(&meta).map_err(|e| PublishError::BadMeta {
                    ulid: ulid.to_string(),
                    reason: e.to_string(),
                })?;
            if meta.thanos.labels != *labels
                || meta.min_time_ms >= max_ms
                || meta.max_time_ms <= min_ms
            {
                continue;
            }
            let marked =
                adclick_objstore::get(self.s3, self.bucket, &self.key(&ulid, "deletion-mark.json"))
                    .await?
                    .is_some();
            if !marked {
                out.push(ExistingBlock {
                    ulid,
                    sources: meta.compaction.sources,
                });
            }
        }
        Ok(out)
    }

    /// Uploads the block in `dir` in Thanos' order; on failure removes what it uploaded.
    pub async fn upload(&self, dir: &Path, meta: &BlockMeta) -> Result<u64, PublishError> {
        let ulid = meta.ulid;
        let mut order: Vec<String> = meta
            .thanos
            .files
            .iter()
            .map(|f| f.rel_path.clone())
            .filter(|p| p.starts_with("chunks/"))
            .collect();
        order.sort();
        order.push("index".into());
        order.push("meta.json".into());
        let mut uploaded: Vec<String> = Vec::new();
        let mut bytes = 0;
        for rel in &order {
            let path = dir.join(rel);
            let size = std::fs::metadata(&path)
                .map_err(|source| PublishError::Local {
                    dir: path.display().to_string(),
                    source,
                })?
                .len();
            let key = self.key(&ulid, rel);
            if let Err(e) = adclick_objstore::put_file(self.s3, self.bucket, &key, &path).await {
                tracing::error!(block = %ulid, error = %e, "upload failed; removing the partial block");
                for done in uploaded.iter().rev() {
                    if let Err(e) = adclick_objstore::delete(self.s3, self.bucket, done).await {
                        tracing::warn!(object = %done, error = %e,
                            "could not remove part of a failed upload; it has no meta.json, so Thanos ignores it and its compactor removes it later");
                    }
                }
                return Err(e.into());
            }
            uploaded.push(key);
            bytes += size;
        }
        Ok(bytes)
    }

    /// Marks `old` for deletion, naming the block that replaced it.
    pub async fn mark_for_deletion(
        &self,
        old: &Ulid,
        replaced_by: &Ulid,
        now_secs: i64,
    ) -> Result<(), PublishError> {
        let mark = DeletionMark {
            id: *old,
            details: format!("replaced by {replaced_by} (adclick rollup rerun)"),
            deletion_time: now_secs,
            version: 1,
        };
        let body = serde_json::to_vec_pretty(&mark).expect("serialisable");
        adclick_objstore::put(
            self.s3,
            self.bucket,
            &self.key(old, "deletion-mark.json"),
            body,
        )
        .await?;
        Ok(())
    }
}
