//! The data lake: Parquet and small objects on object storage, laid out as the seed says.
//!
//! ```text
//! raw-data/sales/year=YYYY/month=MM/day=DD/part-<batch>.parquet      SaleTransaction
//! raw-data/inventory/year=YYYY/month=MM/day=DD/part-<batch>.parquet  InventoryUpdate
//! raw-data/events/year=YYYY/month=MM/day=DD/part-<batch>.parquet     price, customer, alert events
//! models/<model>/v<N>/<file>                                         ML models
//! features/training|inference/<name>/…parquet                        feature sets
//! state/…                                                            processor checkpoints
//! warehouse/<table>/…parquet                                         the embedded warehouse's tables
//! ```
//!
//! Backends, chosen by URL: `file://DIR` (default, under the data dir) and `s3://bucket[/prefix]`
//! (AWS, MinIO or any S3-compatible server, see [`S3Options`]).
//!
//! Atomicity: every object is written with a single `put` (a local file is written to a temporary
//! name and renamed; an S3 PUT becomes visible only when complete), so a reader never sees half a
//! file. Idempotency: raw files are named after the caller's batch id, so re-writing a batch
//! overwrites the same objects; readers and compaction also drop duplicate event ids, which covers
//! a replay whose batch boundaries differ from the first attempt.

pub mod builders;
mod compute;
mod layout;
mod parquet_io;
mod raw;
mod rolling;

pub use compute::{lower_thread_priority, run_cpu};
pub use layout::{day_of_key, fnv1a, safe_batch_id};
pub use layout::{features_prefix, model_prefix, raw_day_prefix, FeatureSet, RawKind};
pub use parquet_io::{batches_to_json_rows, decode_parquet, encode_parquet, encode_parquet_as, rows_to_batch, ParquetProfile};
pub use raw::{batches_to_events, events_schema, events_to_batch, inventory_schema, sales_schema, schema_of, CompactionReport, RawInventory, RawSales};
pub use rolling::{RollPolicy, RollingWriter};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use datafusion::arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake URL `{url}` not understood: {reason}")]
    BadUrl { url: String, reason: String },
    /// Network failure, timeout or server error; trying again later may succeed.
    #[error("lake `{url}` unavailable (retryable): {detail} — check that the endpoint is reachable and the bucket exists")]
    Unavailable { url: String, detail: String },
    #[error("lake `{url}` refused the credentials: {detail} — check access key id and secret")]
    Auth { url: String, detail: String },
    #[error("invalid lake key `{0}`")]
    BadKey(String),
    #[error("parquet/arrow error in `{key}`: {detail}")]
    Format { key: String, detail: String },
    #[error("lake error: {0}")]
    Other(String),
}

impl LakeError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, LakeError::Unavailable { .. })
    }
}

/// How to reach an S3-compatible server. For MinIO: its endpoint, any region, path-style
/// addressing (`virtual_hosted_style = false`) and `allow_http` when it serves plain HTTP.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// e.g. `http://127.0.0.1:9000`; empty = AWS's own endpoint for the region.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub virtual_hosted_style: bool,
    /// Allow `http://` endpoints. When `endpoint` starts with `http://` this is implied.
    pub allow_http: bool,
}

/// One listed object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectInfo {
    /// Key relative to the lake root, e.g. `raw-data/sales/year=2025/…/part-x.parquet`.
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// A handle on the lake. Cheap to clone; share one per process.
#[derive(Clone, Debug)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    url: String,
}

impl Lake {
    /// Open `file://DIR` (created if missing) or `s3://bucket[/prefix]`. Does not touch the network;
    /// call [`Lake::check`] to fail early with a clear message when S3 is unreachable.
    pub fn open(url: &str, s3: &S3Options) -> Result<Lake, LakeError> {
        let bad = |reason: &str| LakeError::BadUrl { url: url.to_string(), reason: reason.to_string() };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("expected file://DIR or s3://bucket[/prefix]"))?;
        let store: Arc<dyn ObjectStore> = match scheme {
            "file" => {
                if rest.is_empty() {
                    return Err(bad("empty directory"));
                }
                std::fs::create_dir_all(rest).map_err(|e| bad(&format!("cannot create directory {rest}: {e}")))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(rest)
                    .map_err(|e| bad(&e.to_string()))?
                    // Deleting the last file of a day's folder removes the empty folder too.
                    .with_automatic_cleanup(true);
                Arc::new(fs)
            }
            "s3" => {
                let (bucket, prefix) = match rest.split_once('/') {
                    Some((b, p)) => (b, p.trim_matches('/')),
                    None => (rest, ""),
                };
                if bucket.is_empty() {
                    return Err(bad("missing bucket name"));
                }
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(if s3.region.is_empty() { "us-east-1" } else { &s3.region })
                    .with_virtual_hosted_style_request(s3.virtual_hosted_style)
                    // Fail within seconds, not minutes, when the server is down: the caller
                    // (stream processor, CLI) owns the retry policy and reports "retryable".
                    .with_retry(object_store::RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(10), ..Default::default() })
                    .with_client_options(
                        // allow_http lives in the client options: setting it on the builder
                        // first would be overwritten by this call.
                        object_store::ClientOptions::new()
                            .with_allow_http(s3.allow_http || s3.endpoint.starts_with("http://"))
                            .with_connect_timeout(Duration::from_secs(3))
                            .with_timeout(Duration::from_secs(60)),
                    );
                if !s3.endpoint.is_empty() {
                    b = b.with_endpoint(&s3.endpoint);
                }
                if !s3.access_key_id.is_empty() {
                    b = b.with_access_key_id(&s3.access_key_id).with_secret_access_key(&s3.secret_access_key);
                }
                let s3store = b.build().map_err(|e| bad(&e.to_string()))?;
                if prefix.is_empty() {
                    Arc::new(s3store)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(s3store, prefix))
                }
            }
            other => return Err(bad(&format!("unknown scheme `{other}`: expected file:// or s3://"))),
        };
        Ok(Lake { store, url: url.to_string() })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying store (e.g. to register with a DataFusion session).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// One cheap request that proves the lake is reachable and the credentials work.
    pub async fn check(&self) -> Result<(), LakeError> {
        self.store.list_with_delimiter(Some(&Path::from("raw-data"))).await.map(|_| ()).map_err(|e| self.map_err("raw-data/", e))
    }

    pub(crate) fn map_err(&self, key: &str, e: object_store::Error) -> LakeError {
        use object_store::Error as E;
        match e {
            E::PermissionDenied { source, .. } | E::Unauthenticated { source, .. } => LakeError::Auth { url: self.url.clone(), detail: source.to_string() },
            E::InvalidPath { .. } => LakeError::BadKey(key.to_string()),
            other => {
                // object_store reports S3 list/put failures as `Generic` with the status and the
                // S3 error code in the text; sort out the ones retrying cannot fix.
                let text = other.to_string();
                let auth = ["403 Forbidden", "401 Unauthorized", "SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"];
                if auth.iter().any(|m| text.contains(m)) {
                    LakeError::Auth { url: self.url.clone(), detail: format!("{key}: {text}") }
                } else if text.contains("NoSuchBucket") {
                    LakeError::Other(format!("lake `{}`: the bucket does not exist — create it first ({key}: {text})", self.url))
                } else {
                    LakeError::Unavailable { url: self.url.clone(), detail: format!("{key}: {text}") }
                }
            }
        }
    }

    fn path(key: &str) -> Result<Path, LakeError> {
        Path::parse(key.trim_start_matches('/')).map_err(|_| LakeError::BadKey(key.to_string()))
    }

    /// Write an object atomically (readers see the old or the new version, never a part).
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), LakeError> {
        let path = Self::path(key)?;
        self.store.put(&path, PutPayload::from(bytes)).await.map_err(|e| self.map_err(key, e))?;
        Ok(())
    }

    /// Read an object; `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, LakeError> {
        let path = Self::path(key)?;
        match self.store.get(&path).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| self.map_err(key, e))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.map_err(key, e)),
        }
    }

    /// Delete an object; deleting a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), LakeError> {
        let path = Self::path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map_err(key, e)),
        }
    }

    /// Every object under `prefix` (recursively), sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, LakeError> {
        let p = prefix.trim_matches('/');
        let path = if p.is_empty() { None } else { Some(Self::path(p)?) };
        let metas: Vec<object_store::ObjectMeta> = match self.store.list(path.as_ref()).try_collect().await {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(self.map_err(prefix, e)),
        };
        let mut out: Vec<ObjectInfo> =
            metas.into_iter().map(|m| ObjectInfo { key: m.location.to_string(), size: m.size, last_modified: m.last_modified }).collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Write record batches as one Parquet object, atomically. The encoding (compression
    /// included) runs on the encoding threads ([`run_cpu`]), so concurrent writes use every core
    /// and the async threads stay free for I/O.
    pub async fn write_parquet(&self, key: &str, batches: &[RecordBatch]) -> Result<(), LakeError> {
        self.write_parquet_as(key, batches, ParquetProfile::Analytics).await.map(drop)
    }

    /// `write_parquet` with the encoding chosen for who reads the file; returns its size in bytes.
    pub async fn write_parquet_as(&self, key: &str, batches: &[RecordBatch], profile: ParquetProfile) -> Result<u64, LakeError> {
        let owned = batches.to_vec();
        let encoded = run_cpu(move || encode_parquet_as(&owned, profile)).await;
        let bytes = encoded.map_err(|detail| LakeError::Format { key: key.to_string(), detail })?;
        let size = bytes.len() as u64;
        self.put(key, bytes).await?;
        Ok(size)
    }

    /// Read one Parquet object; `None` when it does not exist.
    pub async fn read_parquet(&self, key: &str) -> Result<Option<Vec<RecordBatch>>, LakeError> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => decode_parquet(bytes).map(Some).map_err(|detail| LakeError::Format { key: key.to_string(), detail }),
        }
    }

    /// Every `.parquet` object under `prefix`, each read in full, in key order.
    pub async fn read_parquet_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<RecordBatch>)>, LakeError> {
        let mut out = Vec::new();
        for obj in self.list(prefix).await? {
            if !obj.key.ends_with(".parquet") {
                continue;
            }
            // A file deleted between list and get (compaction) is simply skipped.
            if let Some(b) = self.read_parquet(&obj.key).await? {
                out.push((obj.key, b));
            }
        }
        Ok(out)
    }

    /// Store a model file under `models/<model>/v<version>/<file>`.
    pub async fn put_model(&self, model: &str, version: u32, file: &str, bytes: Bytes) -> Result<(), LakeError> {
        self.put(&format!("{}/{}", model_prefix(model, version), file), bytes).await
    }

    /// The highest `v<N>` stored for a model, if any.
    pub async fn latest_model_version(&self, model: &str) -> Result<Option<u32>, LakeError> {
        let objs = self.list(&format!("models/{model}/")).await?;
        Ok(objs.iter().filter_map(|o| o.key.strip_prefix(&format!("models/{model}/v"))).filter_map(|rest| rest.split('/').next()?.parse::<u32>().ok()).max())
    }
}

#[cfg(test)]
mod tests;
