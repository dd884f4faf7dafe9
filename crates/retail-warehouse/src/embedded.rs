//! The embedded warehouse: DataFusion over in-memory Arrow tables that are persisted as Parquet
//! in the lake (`warehouse/<table>/…`), so a restart finds every row once.
//!
//! - Fact tables: rows are deduplicated on their id against a key set before they are appended
//!   (a replayed batch adds nothing); `flush` writes the not-yet-persisted rows as one new part
//!   file, and merges parts when there are many. Loading drops duplicate ids, so a crash between
//!   writing a merged part and deleting its inputs costs nothing.
//! - Upsert and dimension tables: every version is appended; an index keeps the winning row per
//!   key (highest version, then latest insert); queries see exactly one row per key; `flush`
//!   writes a snapshot of the winners.
//! - `agg_sales_daily`: partial sums of each newly accepted fact_sales batch (queries SUM them,
//!   exactly as they do ClickHouse's SummingMergeTree), re-aggregated when parts pile up, and
//!   rebuilt from fact_sales on load rather than stored.
//!
//! Queries run on a cached DataFusion context that is rebuilt only when a table changed.

use crate::result::from_batches;
use crate::rows::{self, FeatureValue, Prediction};
use crate::schema::{self, Kind, Measure, Rollup, Table, ROLLUPS, TABLES};
use crate::{DateRow, QueryResult, Warehouse, WarehouseError};
use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, Decimal128Array, Int64Array, StringArray, UInt32Array};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Date32Type, Decimal128Type, Int32Type, Int64Type, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use retail_core::{AnomalyFlag, FactInventory, FactSale, Product, RestockAlert, SalesWindow, StockLevel, Store};
use retail_lake::{fnv1a, Lake};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Batches smaller than this are merged before queries, so a stream of tiny inserts does not
/// become thousands of scan units.
const COALESCE_ROWS: usize = 64 * 1024;
/// Merge a fact table's part files once it has this many.
const MAX_PARTS: usize = 16;

fn other(e: impl std::fmt::Display) -> WarehouseError {
    WarehouseError::Other(e.to_string())
}

fn lake_err(e: retail_lake::LakeError) -> WarehouseError {
    if e.is_retryable() {
        WarehouseError::Unavailable(e.to_string())
    } else {
        WarehouseError::Other(e.to_string())
    }
}

/// Per-row key strings of `cols` (joined by U+001F, which no key contains).
fn row_keys(batch: &RecordBatch, cols: &[&str]) -> Result<Vec<String>, WarehouseError> {
    let arrays: Vec<ArrayRef> = cols
        .iter()
        .map(|c| {
            let a = batch.column_by_name(c).ok_or_else(|| other(format!("missing key column {c}")))?;
            cast(a, &DataType::Utf8).map_err(other)
        })
        .collect::<Result<_, _>>()?;
    let strs: Vec<&StringArray> = arrays.iter().map(|a| a.as_string::<i32>()).collect();
    Ok((0..batch.num_rows())
        .map(|i| strs.iter().map(|s| s.value(i)).collect::<Vec<_>>().join("\u{1f}"))
        .collect())
}

/// The version column as i64 (seconds for DateTime), or zeros when the table has none.
fn versions(batch: &RecordBatch, col: Option<&str>) -> Result<Vec<i64>, WarehouseError> {
    match col {
        None => Ok(vec![0; batch.num_rows()]),
        Some(c) => {
            let a = batch.column_by_name(c).ok_or_else(|| other(format!("missing version column {c}")))?;
            let a = cast(a, &DataType::Int64).map_err(other)?;
            let a = a.as_primitive::<Int64Type>();
            Ok((0..a.len()).map(|i| a.value(i)).collect())
        }
    }
}

fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch, WarehouseError> {
    concat_batches(schema, batches).map_err(other)
}

/// Merge runs of small batches (order kept).
fn coalesce(schema: &SchemaRef, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, WarehouseError> {
    if batches.iter().filter(|b| b.num_rows() < COALESCE_ROWS).count() <= 2 {
        return Ok(batches);
    }
    let mut out = Vec::new();
    let mut run: Vec<RecordBatch> = Vec::new();
    let mut run_rows = 0;
    for b in batches {
        // Batches already big enough stay as they are: only the small tail is copied, so a
        // snapshot costs what was appended since the last one, not the whole table.
        if run.is_empty() && b.num_rows() >= COALESCE_ROWS {
            out.push(b);
            continue;
        }
        run_rows += b.num_rows();
        run.push(b);
        if run_rows >= COALESCE_ROWS {
            out.push(concat(schema, &std::mem::take(&mut run))?);
            run_rows = 0;
        }
    }
    if !run.is_empty() {
        out.push(concat(schema, &run)?);
    }
    Ok(out)
}

struct AppendTable {
    batches: Vec<RecordBatch>,
    rows: usize,
    persisted_rows: usize,
    keys: HashSet<u64>,
    parts: Vec<String>,
}

struct KeyedTable {
    /// Every version, in insert order.
    batches: Vec<RecordBatch>,
    /// key → (version, global row number) of the winner.
    winners: HashMap<String, (i64, usize)>,
    rows: usize,
    /// The winners as one batch (sorted by key), rebuilt lazily.
    view: Option<RecordBatch>,
    dirty_since_flush: bool,
}

enum TableState {
    Append(AppendTable),
    Keyed(KeyedTable),
    Rollup(Vec<RecordBatch>),
}

struct State {
    generation: u64,
    tables: HashMap<&'static str, TableState>,
}

pub struct EmbeddedWarehouse {
    lake: Option<Lake>,
    state: Mutex<State>,
    /// The query context of a snapshot: (generation, built at, context).
    ctx: Mutex<Option<(u64, std::time::Instant, SessionContext)>>,
    /// How stale a query's snapshot may be while rows keep arriving (0 = always the latest).
    max_staleness: std::time::Duration,
    flush_lock: tokio::sync::Mutex<()>,
}

fn prefix(t: &Table) -> String {
    format!("warehouse/{}/", t.name)
}

impl EmbeddedWarehouse {
    /// Open, loading every table persisted in `lake` (none when `lake` is `None`).
    pub async fn open(lake: Option<Lake>) -> Result<EmbeddedWarehouse, WarehouseError> {
        Self::open_with_staleness(lake, std::time::Duration::ZERO).await
    }

    /// Like `open`, but queries may read a snapshot up to `max_staleness` old instead of
    /// rebuilding one for every insert (a live dashboard over a busy stream).
    pub async fn open_with_staleness(lake: Option<Lake>, max_staleness: std::time::Duration) -> Result<EmbeddedWarehouse, WarehouseError> {
        let mut tables = HashMap::new();
        for t in TABLES {
            let st = match t.kind {
                Kind::Fact => TableState::Append(AppendTable { batches: vec![], rows: 0, persisted_rows: 0, keys: HashSet::new(), parts: vec![] }),
                Kind::Upsert { .. } | Kind::Dimension => TableState::Keyed(KeyedTable {
                    batches: vec![],
                    winners: HashMap::new(),
                    rows: 0,
                    view: None,
                    dirty_since_flush: false,
                }),
                Kind::Rollup => TableState::Rollup(vec![]),
            };
            tables.insert(t.name, st);
        }
        let wh = EmbeddedWarehouse {
            lake,
            state: Mutex::new(State { generation: 1, tables }),
            ctx: Mutex::new(None),
            max_staleness,
            flush_lock: tokio::sync::Mutex::new(()),
        };
        wh.load().await?;
        Ok(wh)
    }

    async fn load(&self) -> Result<(), WarehouseError> {
        let Some(lake) = &self.lake else { return Ok(()) };
        for t in TABLES {
            if t.kind == Kind::Rollup {
                continue;
            }
            let files = lake.read_parquet_prefix(&prefix(t)).await.map_err(lake_err)?;
            let mut st = self.state.lock().unwrap();
            for (key, batches) in files {
                for b in batches {
                    // Files written by an older schema get missing columns as nulls is not
                    // supported yet: a schema change needs `warehouse init` to rewrite them.
                    let b = b.with_schema(t.arrow_schema()).map_err(|e| other(format!("{key}: {e}")))?;
                    if let Some(acc) = Self::insert_locked(&mut st, t, b)? {
                        Self::add_rollups(&mut st, t, &acc)?;
                    }
                }
                if let Some(TableState::Append(a)) = st.tables.get_mut(t.name) {
                    a.parts.push(key);
                    a.persisted_rows = a.rows;
                }
            }
            if let Some(TableState::Keyed(k)) = st.tables.get_mut(t.name) {
                k.dirty_since_flush = false;
            }
        }
        Ok(())
    }

    /// Insert one batch of `t` under the lock; returns the accepted rows of a fact table.
    fn insert_locked(st: &mut State, t: &Table, batch: RecordBatch) -> Result<Option<RecordBatch>, WarehouseError> {
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        st.generation += 1;
        match st.tables.get_mut(t.name).expect("every table has state") {
            TableState::Append(a) => {
                let keys = row_keys(&batch, t.key)?;
                let mask: BooleanArray = keys.iter().map(|k| Some(a.keys.insert(fnv1a(k.as_bytes())))).collect();
                let accepted = filter_record_batch(&batch, &mask).map_err(other)?;
                if accepted.num_rows() > 0 {
                    a.rows += accepted.num_rows();
                    a.batches.push(accepted.clone());
                }
                Ok(Some(accepted))
            }
            TableState::Keyed(k) => {
                let version_col = match t.kind {
                    Kind::Upsert { version } => version,
                    _ => None,
                };
                let keys = row_keys(&batch, t.key)?;
                let vers = versions(&batch, version_col)?;
                for (i, (key, v)) in keys.into_iter().zip(vers).enumerate() {
                    let row = k.rows + i;
                    // Ties go to the later insert, as in ClickHouse's ReplacingMergeTree.
                    match k.winners.get_mut(&key) {
                        Some(w) if w.0 > v => {}
                        Some(w) => *w = (v, row),
                        None => {
                            k.winners.insert(key, (v, row));
                        }
                    }
                }
                k.rows += batch.num_rows();
                k.batches.push(batch);
                k.view = None;
                k.dirty_since_flush = true;
                Ok(None)
            }
            TableState::Rollup(_) => Err(other("rollups are derived, not inserted")),
        }
    }

    /// Partial sums of newly accepted fact rows → every rollup fed by `source`.
    fn add_rollups(st: &mut State, source: &Table, accepted: &RecordBatch) -> Result<(), WarehouseError> {
        if accepted.num_rows() == 0 {
            return Ok(());
        }
        for r in ROLLUPS.iter().filter(|r| r.source.name == source.name) {
            let part = rollup_batch(r, accepted, r.measures, r.only_out_of_stock)?;
            if let Some(TableState::Rollup(parts)) = st.tables.get_mut(r.table.name) {
                parts.push(part);
                if parts.len() > 64 {
                    // Fold the partial sums into one batch, as a SummingMergeTree merge would.
                    let all = concat(&r.table.arrow_schema(), parts)?;
                    let again: Vec<(&'static str, Measure)> = r
                        .measures
                        .iter()
                        .map(|(out, m)| (*out, if let Measure::SumMoney(_) = m { Measure::SumMoney(out) } else { Measure::SumInt(out) }))
                        .collect();
                    *parts = vec![rollup_batch(r, &all, &again, false)?];
                }
            }
        }
        Ok(())
    }

    fn insert(&self, t: &Table, batch: RecordBatch) -> Result<(), WarehouseError> {
        let mut st = self.state.lock().unwrap();
        if let Some(acc) = Self::insert_locked(&mut st, t, batch)? {
            Self::add_rollups(&mut st, t, &acc)?;
        }
        Ok(())
    }

    /// The winners of a keyed table as one batch sorted by key.
    fn keyed_view(t: &Table, k: &mut KeyedTable) -> Result<Option<RecordBatch>, WarehouseError> {
        if k.rows == 0 {
            return Ok(None);
        }
        if k.view.is_none() {
            let schema = t.arrow_schema();
            let all = concat(&schema, &k.batches)?;
            let mut winners: Vec<(&String, usize)> = k.winners.iter().map(|(key, (_, row))| (key, *row)).collect();
            winners.sort();
            let idx = UInt32Array::from(winners.iter().map(|(_, r)| *r as u32).collect::<Vec<_>>());
            let view = take_record_batch(&all, &idx).map_err(other)?;
            // Drop superseded versions: from now on the table is just its winners.
            k.winners = winners.iter().enumerate().map(|(i, (key, _))| ((*key).clone(), (k.winners[*key].0, i))).collect();
            k.batches = vec![view.clone()];
            k.rows = view.num_rows();
            k.view = Some(view);
        }
        Ok(k.view.clone())
    }

    /// Every table's current batches (a consistent snapshot).
    fn snapshot(&self) -> Result<(u64, Vec<(&'static Table, Vec<RecordBatch>)>), WarehouseError> {
        let mut st = self.state.lock().unwrap();
        let generation = st.generation;
        let mut out = Vec::new();
        for t in TABLES {
            let schema = t.arrow_schema();
            let batches = match st.tables.get_mut(t.name).unwrap() {
                TableState::Append(a) => {
                    a.batches = coalesce(&schema, std::mem::take(&mut a.batches))?;
                    a.batches.clone()
                }
                TableState::Keyed(k) => Self::keyed_view(t, k)?.into_iter().collect(),
                TableState::Rollup(parts) => {
                    *parts = coalesce(&schema, std::mem::take(parts))?;
                    parts.clone()
                }
            };
            out.push((*t, batches));
        }
        Ok((generation, out))
    }

    fn context(&self) -> Result<SessionContext, WarehouseError> {
        let current = self.state.lock().unwrap().generation;
        if let Some((g, built, ctx)) = self.ctx.lock().unwrap().as_ref() {
            if *g == current || built.elapsed() < self.max_staleness {
                return Ok(ctx.clone());
            }
        }
        let (generation, tables) = self.snapshot()?;
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let config = SessionConfig::new().with_target_partitions(threads).with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        for (t, batches) in tables {
            // Spread batches over partitions so scans use every core.
            let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); threads];
            for (i, b) in batches.into_iter().enumerate() {
                parts[i % threads].push(b);
            }
            let mem = MemTable::try_new(t.arrow_schema(), parts).map_err(other)?;
            ctx.register_table(t.name, Arc::new(mem)).map_err(other)?;
        }
        *self.ctx.lock().unwrap() = Some((generation, std::time::Instant::now(), ctx.clone()));
        Ok(ctx)
    }

    async fn flush_inner(&self) -> Result<(), WarehouseError> {
        let Some(lake) = &self.lake else { return Ok(()) };
        let _serial = self.flush_lock.lock().await;
        for t in TABLES {
            match t.kind {
                Kind::Rollup => {}
                Kind::Fact => {
                    // Take what is not yet persisted (and whether parts need merging) under the lock.
                    let (pending, total_rows, merge) = {
                        let mut st = self.state.lock().unwrap();
                        let Some(TableState::Append(a)) = st.tables.get_mut(t.name) else { continue };
                        if a.rows == a.persisted_rows {
                            continue;
                        }
                        let merge = a.parts.len() + 1 > MAX_PARTS;
                        // Only the tail past `persisted_rows` is new (batches are append-only;
                        // coalescing keeps their order), unless the parts are being merged.
                        let mut out = Vec::new();
                        let mut offset = 0;
                        for b in &a.batches {
                            let n = b.num_rows();
                            if merge {
                                out.push(b.clone());
                            } else if offset + n > a.persisted_rows {
                                let skip = a.persisted_rows.saturating_sub(offset);
                                out.push(b.slice(skip, n - skip));
                            }
                            offset += n;
                        }
                        (out, a.rows, merge)
                    };
                    let key = format!("{}part-{:013}-{:016x}.parquet", prefix(t), chrono::Utc::now().timestamp_millis(), fnv1a(format!("{total_rows}").as_bytes()));
                    lake.write_parquet(&key, &pending).await.map_err(lake_err)?;
                    let old = {
                        let mut st = self.state.lock().unwrap();
                        let Some(TableState::Append(a)) = st.tables.get_mut(t.name) else { continue };
                        a.persisted_rows = total_rows;
                        if merge {
                            std::mem::replace(&mut a.parts, vec![key])
                        } else {
                            a.parts.push(key);
                            vec![]
                        }
                    };
                    for k in old {
                        lake.delete(&k).await.map_err(lake_err)?;
                    }
                }
                Kind::Upsert { .. } | Kind::Dimension => {
                    let view = {
                        let mut st = self.state.lock().unwrap();
                        let Some(TableState::Keyed(k)) = st.tables.get_mut(t.name) else { continue };
                        if !k.dirty_since_flush {
                            continue;
                        }
                        k.dirty_since_flush = false;
                        Self::keyed_view(t, k)?
                    };
                    let key = format!("{}snapshot.parquet", prefix(t));
                    match view {
                        Some(v) => lake.write_parquet(&key, &[v]).await.map_err(lake_err)?,
                        None => lake.delete(&key).await.map_err(lake_err)?,
                    }
                }
            }
        }
        Ok(())
    }
}

/// `SELECT date_key, <keys>, <measures> FROM src [WHERE quantity_on_hand <= 0] GROUP BY
/// date_key, <keys>` as a batch of `r.table`, sorted by key; the same aggregation ClickHouse's
/// materialized view runs.
fn rollup_batch(r: &Rollup, src: &RecordBatch, measures: &[(&'static str, Measure)], only_out_of_stock: bool) -> Result<RecordBatch, WarehouseError> {
    use datafusion::arrow::array::Date32Array;
    let col = |n: &str| src.column_by_name(n).ok_or_else(|| other(format!("{} lacks {n}", r.source.name)));
    let date = col("date_key")?.as_primitive::<Date32Type>().clone();
    let keys: Vec<StringArray> = r.keys.iter().map(|k| Ok(col(k)?.as_string::<i32>().clone())).collect::<Result<_, WarehouseError>>()?;
    enum Input {
        Int(Int64Array),
        Money(Decimal128Array),
        Count,
    }
    let inputs: Vec<Input> = measures
        .iter()
        .map(|(_, m)| {
            Ok(match m {
                Measure::SumInt(c) => Input::Int(cast(col(c)?, &DataType::Int64).map_err(other)?.as_primitive::<Int64Type>().clone()),
                Measure::SumMoney(c) => Input::Money(col(c)?.as_primitive::<Decimal128Type>().clone()),
                Measure::Count => Input::Count,
            })
        })
        .collect::<Result<_, WarehouseError>>()?;
    let keep: Option<Vec<bool>> = if only_out_of_stock {
        let oh = col("quantity_on_hand")?.as_primitive::<Int32Type>();
        Some((0..oh.len()).map(|i| oh.value(i) <= 0).collect())
    } else {
        None
    };
    let mut groups: HashMap<(i32, Vec<&str>), Vec<i128>> = HashMap::new();
    for i in 0..src.num_rows() {
        if keep.as_ref().is_some_and(|k| !k[i]) {
            continue;
        }
        let key = (date.value(i), keys.iter().map(|k| k.value(i)).collect::<Vec<_>>());
        let sums = groups.entry(key).or_insert_with(|| vec![0; inputs.len()]);
        for (j, input) in inputs.iter().enumerate() {
            sums[j] += match input {
                Input::Int(a) => a.value(i) as i128,
                Input::Money(a) => a.value(i),
                Input::Count => 1,
            };
        }
    }
    let mut rows: Vec<_> = groups.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut cols: Vec<ArrayRef> = vec![Arc::new(Date32Array::from(rows.iter().map(|r| r.0 .0).collect::<Vec<_>>()))];
    for k in 0..r.keys.len() {
        cols.push(Arc::new(StringArray::from(rows.iter().map(|r| r.0 .1[k]).collect::<Vec<_>>())));
    }
    for (j, (_, m)) in measures.iter().enumerate() {
        cols.push(match m {
            Measure::SumMoney(_) => Arc::new(
                Decimal128Array::from(rows.iter().map(|r| r.1[j]).collect::<Vec<_>>())
                    .with_precision_and_scale(18, 2)
                    .map_err(other)?,
            ),
            _ => Arc::new(Int64Array::from(rows.iter().map(|r| r.1[j] as i64).collect::<Vec<_>>())),
        });
    }
    RecordBatch::try_new(r.table.arrow_schema(), cols).map_err(other)
}

#[async_trait]
impl Warehouse for EmbeddedWarehouse {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn init(&self) -> Result<(), WarehouseError> {
        // Tables exist from `open`; prove the lake is writable so a bad URL fails here.
        if let Some(lake) = &self.lake {
            lake.put("warehouse/_schema.txt", bytes_of_schema()).await.map_err(lake_err)?;
        }
        Ok(())
    }

    async fn load_dimensions(&self, stores: &[Store], products: &[Product], dates: &[DateRow]) -> Result<(), WarehouseError> {
        let batches = [
            (&schema::DIM_STORE, rows::stores_batch(stores)?),
            (&schema::DIM_PRODUCT, rows::products_batch(products)?),
            (&schema::DIM_DATE, rows::dates_batch(dates)?),
        ];
        {
            let mut st = self.state.lock().unwrap();
            for (t, b) in batches {
                if b.num_rows() == 0 {
                    continue;
                }
                if let Some(TableState::Keyed(k)) = st.tables.get_mut(t.name) {
                    *k = KeyedTable { batches: vec![], winners: HashMap::new(), rows: 0, view: None, dirty_since_flush: true };
                }
                Self::insert_locked(&mut st, t, b)?;
            }
            st.generation += 1;
        }
        self.flush_inner().await
    }

    async fn insert_sales(&self, rows: &[FactSale]) -> Result<(), WarehouseError> {
        self.insert(&schema::FACT_SALES, rows::sales_batch(rows)?)
    }
    async fn insert_inventory(&self, rows: &[FactInventory]) -> Result<(), WarehouseError> {
        self.insert(&schema::FACT_INVENTORY, rows::inventory_batch(rows)?)
    }
    async fn upsert_sales_windows(&self, rows: &[SalesWindow]) -> Result<(), WarehouseError> {
        self.insert(&schema::RT_SALES_5MIN, rows::windows_batch(rows)?)
    }
    async fn upsert_stock(&self, rows: &[StockLevel]) -> Result<(), WarehouseError> {
        self.insert(&schema::RT_STOCK, rows::stock_batch(rows)?)
    }
    async fn insert_alerts(&self, rows: &[RestockAlert]) -> Result<(), WarehouseError> {
        self.insert(&schema::RT_RESTOCK_ALERTS, rows::alerts_batch(rows)?)
    }
    async fn insert_anomalies(&self, rows: &[AnomalyFlag]) -> Result<(), WarehouseError> {
        self.insert(&schema::RT_ANOMALIES, rows::anomalies_batch(rows)?)
    }
    async fn upsert_features(&self, rows: &[FeatureValue]) -> Result<(), WarehouseError> {
        self.insert(&schema::FEATURE_STORE, rows::features_batch(rows)?)
    }
    async fn upsert_predictions(&self, rows: &[Prediction]) -> Result<(), WarehouseError> {
        self.insert(&schema::PREDICTIONS, rows::predictions_batch(rows)?)
    }

    async fn flush(&self) -> Result<(), WarehouseError> {
        self.flush_inner().await
    }

    async fn query(&self, sql: &str) -> Result<QueryResult, WarehouseError> {
        let ctx = self.context()?;
        let df = ctx.sql(sql).await.map_err(|e| WarehouseError::Query(e.to_string()))?;
        let columns: Vec<String> = df.schema().fields().iter().map(|f| f.name().clone()).collect();
        let batches = df.collect().await.map_err(|e| WarehouseError::Query(e.to_string()))?;
        let mut r = from_batches(&batches)?;
        // No batches at all (empty result): still name the columns, as ClickHouse does.
        if r.columns.is_empty() {
            r.columns = columns;
        }
        Ok(r)
    }
}

/// A human-readable record of the schema this build writes (for operators browsing the lake).
fn bytes_of_schema() -> bytes::Bytes {
    let mut s = String::new();
    for t in TABLES {
        s.push_str(&format!("{} ({:?}): {}\n", t.name, t.kind, t.doc));
        for (c, ty) in t.columns {
            s.push_str(&format!("  {c} {}\n", ty.clickhouse()));
        }
    }
    bytes::Bytes::from(s)
}
