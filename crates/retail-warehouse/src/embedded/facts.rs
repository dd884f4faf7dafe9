//! Fact tables of the embedded warehouse: memory holds only the rows no part file holds yet.
//!
//! A fact table grows with every sale and inventory update, so holding all of it in memory
//! would grow a long-running `retail stream` without bound (≈ 200 bytes per event, gigabytes a
//! day for a few hundred stores). Once a flush has written rows to a part file they leave
//! memory; queries scan the parts from the lake (DataFusion's Parquet reader, straight from the
//! lake's object store) together with the rows still in memory. What stays in memory per row is
//! its 8-byte id hash, for deduplication (that set still grows with the table).

use crate::hash_table::{HashTable, PREFETCH_AHEAD};
use crate::WarehouseError;
use async_trait::async_trait;
use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{MemTable, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;
use std::time::Instant;

/// A part file of a fact table.
#[derive(Clone, Debug)]
pub(super) struct FactPart {
    pub key: String,
    pub rows: usize,
    /// Object size in bytes (a scan needs it to find the Parquet footer).
    pub bytes: u64,
}

pub(super) struct AppendTable {
    /// Accepted rows that no part file holds yet, in insert order.
    pub batches: Vec<RecordBatch>,
    /// Rows in `batches`.
    pub pending_rows: usize,
    /// Hashes of every accepted row's id (persisted or not).
    pub keys: HashTable<u64, ()>,
    /// The part files holding the persisted rows, in order.
    pub parts: Vec<FactPart>,
    /// Files whose rows a newer part holds, since when; deleted after a grace period, so a
    /// query that listed them a moment ago (here or in another process) still finds them.
    pub obsolete: Vec<(String, Instant)>,
}

impl AppendTable {
    pub fn new() -> AppendTable {
        AppendTable { batches: vec![], pending_rows: 0, keys: HashTable::default(), parts: vec![], obsolete: vec![] }
    }

    pub fn persisted_rows(&self) -> usize {
        self.parts.iter().map(|p| p.rows).sum()
    }

    /// The rows of `batch` whose id hash (`keys`, one per row) is new; they join the pending rows.
    pub fn accept(&mut self, batch: RecordBatch, keys: &[u64]) -> Result<RecordBatch, WarehouseError> {
        self.keys.reserve(keys.len());
        let mut all_new = true;
        let mut mask = Vec::with_capacity(keys.len());
        for (i, &k) in keys.iter().enumerate() {
            if let Some(&ahead) = keys.get(i + PREFETCH_AHEAD) {
                self.keys.prefetch(ahead);
            }
            let new = self.keys.get_or_insert(k, ()).is_none();
            all_new &= new;
            mask.push(new);
        }
        let accepted = if all_new { batch } else { filter_record_batch(&batch, &BooleanArray::from(mask)).map_err(super::other)? };
        if accepted.num_rows() > 0 {
            self.pending_rows += accepted.num_rows();
            self.batches.push(accepted.clone());
        }
        Ok(accepted)
    }

    /// Forget the first `n` pending rows: a part file holds them now.
    pub fn drop_pending(&mut self, mut n: usize) {
        self.pending_rows -= n;
        let mut kept = Vec::with_capacity(self.batches.len());
        for b in self.batches.drain(..) {
            if n >= b.num_rows() {
                n -= b.num_rows();
            } else {
                kept.push(b.slice(n, b.num_rows() - n));
                n = 0;
            }
        }
        self.batches = kept;
    }
}

/// A fact table as queries see it: its part files in the lake, then the rows still in memory.
#[derive(Debug)]
pub(super) struct FactTableProvider {
    pub schema: SchemaRef,
    /// Pending rows, spread over partitions.
    pub memory: Vec<Vec<RecordBatch>>,
    /// (key, size in bytes) of each part.
    pub files: Vec<(String, u64)>,
    /// Where the lake's object store is registered in the session.
    pub store: ObjectStoreUrl,
    /// Scan partitions for the files.
    pub partitions: usize,
}

#[async_trait]
impl TableProvider for FactTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let memory = MemTable::try_new(self.schema.clone(), self.memory.clone())?.scan(state, projection, filters, limit).await?;
        if self.files.is_empty() {
            return Ok(memory);
        }
        // Files listed explicitly with their sizes: a part that vanished is an error, never
        // silently fewer rows (a listing would just not find it).
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); self.partitions.clamp(1, self.files.len())];
        let n = groups.len();
        for (i, (key, size)) in self.files.iter().enumerate() {
            groups[i % n].push(PartitionedFile::new(key.clone(), *size));
        }
        let config = FileScanConfigBuilder::new(self.store.clone(), Arc::new(ParquetSource::new(self.schema.clone())))
            .with_projection_indices(projection.cloned())?
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_limit(limit)
            .build();
        UnionExec::try_new(vec![DataSourceExec::from_data_source(config), memory])
    }
}
