//! The embedded warehouse: DataFusion over in-memory Arrow tables that are persisted as Parquet
//! in the lake (`warehouse/<table>/…`), so a restart finds every row once.
//!
//! Keys are never turned into strings: each row's key columns are hashed straight from their
//! arrays into 128 bits (`row_hash`, with a column separator so `("ab","c")` ≠ `("a","bc")`).
//!
//! - Fact tables: rows are deduplicated on (a 64-bit hash of) their id against a key set before
//!   they are appended (a replayed batch adds nothing); `flush` writes the not-yet-persisted rows
//!   as one new part file. Loading drops duplicate ids, so a crash between writing a merged part
//!   and deleting its inputs costs nothing.
//! - Upsert and dimension tables: every version is appended (each row numbered by insert order);
//!   an index keeps the winning row per key (highest version, then latest insert); queries see
//!   exactly one row per key, in insert order of the winners. Rows lose their place as soon as
//!   they are superseded, and are dropped from memory segment by segment, so a query after a
//!   small upsert re-filters only the segments it touched. `flush` writes only the winners among
//!   the rows inserted since the last flush, as a new `part-<millis>-<seq>.parquet`.
//!   Loading applies the parts in name order with the same rule, so re-applying a row is
//!   harmless. A `part-…-snapshot.parquet` holds every winner: loading starts from the newest
//!   one and ignores older files (this is how `load_dimensions` replaces a table, and why a crash
//!   before the older files are deleted costs nothing). A legacy `snapshot.parquet` (written by
//!   earlier builds) is applied before any part, until a snapshot part replaces it.
//! - Part files of both kinds are merged size-tiered (`merge_point`): once a table has
//!   `MAX_PARTS` parts, a flush's new part absorbs the newest ones — the newest, then each older
//!   one no larger than what it holds — so the big old parts are rarely rewritten. For keyed
//!   tables a part's size is its rows that are still winners, so superseded data is merged away.
//! - `agg_sales_daily`: partial sums of each newly accepted fact_sales batch (queries SUM them,
//!   exactly as they do ClickHouse's SummingMergeTree), re-aggregated when parts pile up, and
//!   rebuilt from fact_sales on load rather than stored.
//!
//! Queries run on a cached DataFusion context that is rebuilt only when a table changed.

mod facts;

use crate::hash_table::{HashTable, PREFETCH_AHEAD};
use crate::result::from_batches;
use crate::rollup::{rollup_batch, KeyCodes};
use crate::row_hash::{hash_rows, hash_rows_u64};
use crate::rows::{self, FeatureValue, Prediction};
use crate::schema::{self, Kind, Measure, Table, ROLLUPS, TABLES};
use crate::{DateRow, QueryResult, Warehouse, WarehouseError};
use async_trait::async_trait;
use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use facts::{AppendTable, FactPart, FactTableProvider};
use retail_core::{AnomalyFlag, Product, RestockAlert, Store};
use retail_lake::{fnv1a, Lake, ParquetProfile};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Batches smaller than this are merged before queries, so a stream of tiny inserts does not
/// become thousands of scan units; keyed tables keep their rows in segments of at most this many.
const COALESCE_ROWS: usize = 64 * 1024;
/// A table never has more part files than this after a flush.
const MAX_PARTS: usize = 16;
/// Small keyed segments tolerated before they are merged for a query.
const SMALL_SEGMENTS_FOR_VIEW: usize = 8;
/// Small keyed segments tolerated while inserting (memory, lookups) before they are merged.
const SMALL_SEGMENTS_MAX: usize = 256;
/// Loading restarts when a listed file vanished (merged away by a writer); give up after this.
const LOAD_ATTEMPTS: usize = 10;
/// Written by earlier builds: every winner of a keyed table, rewritten at each flush.
const LEGACY_SNAPSHOT: &str = "snapshot.parquet";
/// Suffix of a keyed part that holds every winner (loading starts at the newest one).
const SNAPSHOT_SUFFIX: &str = "-snapshot.parquet";

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

/// 128-bit hashes of each row's `cols`.
fn row_hashes(batch: &RecordBatch, cols: &[&str]) -> Result<Vec<u128>, WarehouseError> {
    hash_rows(batch, cols).map_err(other)
}

/// The version column as i64 (seconds for DateTime), or zeros when the table has none.
fn versions(batch: &RecordBatch, col: Option<&str>) -> Result<Vec<i64>, WarehouseError> {
    match col {
        None => Ok(vec![0; batch.num_rows()]),
        Some(c) => {
            let a = batch.column_by_name(c).ok_or_else(|| other(format!("missing version column {c}")))?;
            let a = cast(a, &DataType::Int64).map_err(other)?;
            Ok(a.as_primitive::<Int64Type>().values().to_vec())
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

/// Which parts a flush's new part absorbs: the index of the oldest one (`sizes.len()`: none).
/// `sizes` are the existing parts' sizes (oldest first), `pending` the new data's. Nothing is
/// merged while the table has room for one more part; at `MAX_PARTS`, the newest part is
/// absorbed, and then each older one no larger than what is being written (size-tiered, so a
/// merge rarely rewrites the big old parts: over 10,000 flushes each row is written about 5
/// times, where merging everything at the bound rewrites it about 300 times).
fn merge_point(sizes: &[usize], pending: usize) -> usize {
    let mut i = sizes.len();
    if i < MAX_PARTS {
        return i;
    }
    let mut acc = pending;
    while i > 0 && (i + 1 > MAX_PARTS || sizes[i - 1] <= acc) {
        i -= 1;
        acc += sizes[i];
    }
    i
}

/// Delete `keys`; those not deleted (an error stops the loop) are handed back.
async fn delete_all(lake: &Lake, keys: Vec<String>) -> (Vec<String>, Option<WarehouseError>) {
    let mut left = keys.into_iter();
    while let Some(k) = left.next() {
        if let Err(e) = lake.delete(&k).await {
            let mut rest = vec![k];
            rest.extend(left);
            return (rest, Some(lake_err(e)));
        }
    }
    (vec![], None)
}

/// Each table with its batches in memory and (fact tables) its part files: (key, bytes).
type TableBatches = Vec<(&'static Table, Vec<RecordBatch>, Vec<(String, u64)>)>;

/// The scheme under which a query session finds the lake's object store.
const LAKE_STORE_URL: &str = "retail-lake://warehouse";

/// How long a fact part absorbed by a merge stays readable: a query that listed it a moment
/// ago (in this process, or a reader such as `retail query` in another) still finds it.
pub const OBSOLETE_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Consecutive rows of a keyed table (in insert order), each with its id: its insert number.
struct Segment {
    batch: RecordBatch,
    /// Id of the first row; rows are `first..first+len` unless `ids` lists them.
    first: u64,
    /// The rows' ids (ascending) once superseded rows have been dropped.
    ids: Option<Vec<u64>>,
    /// `None` while every row is a winner; otherwise `false` marks a superseded row.
    alive: Option<Vec<bool>>,
    dead: usize,
}

impl Segment {
    fn len(&self) -> usize {
        self.batch.num_rows()
    }

    fn id(&self, pos: usize) -> u64 {
        match &self.ids {
            Some(ids) => ids[pos],
            None => self.first + pos as u64,
        }
    }

    /// Segments are never empty.
    fn last_id(&self) -> u64 {
        self.id(self.len() - 1)
    }

    /// The first position whose id is ≥ `id`.
    fn lower_bound(&self, id: u64) -> usize {
        match &self.ids {
            Some(ids) => ids.partition_point(|&x| x < id),
            None => id.saturating_sub(self.first).min(self.len() as u64) as usize,
        }
    }

    fn position(&self, id: u64) -> Option<usize> {
        match &self.ids {
            Some(ids) => ids.binary_search(&id).ok(),
            None => (id >= self.first && id - self.first < self.len() as u64).then(|| (id - self.first) as usize),
        }
    }

    /// Mark a row superseded; true when it was a winner until now.
    fn kill(&mut self, pos: usize) -> bool {
        let len = self.len();
        let alive = self.alive.get_or_insert_with(|| vec![true; len]);
        let was = std::mem::replace(&mut alive[pos], false);
        self.dead += was as usize;
        was
    }

    fn count_alive(&self, from: usize, to: usize) -> usize {
        match &self.alive {
            None => to - from,
            Some(a) => a[from..to].iter().filter(|x| **x).count(),
        }
    }

    /// The winners among the rows from position `from` on (a zero-copy slice when none of them
    /// was superseded).
    fn alive_from(&self, from: usize) -> Result<Option<RecordBatch>, WarehouseError> {
        let n = self.len() - from.min(self.len());
        if n == 0 {
            return Ok(None);
        }
        let slice = self.batch.slice(from, n);
        let out = match &self.alive {
            Some(a) if self.count_alive(from, self.len()) < n => filter_record_batch(&slice, &BooleanArray::from(a[from..].to_vec())).map_err(other)?,
            _ => slice,
        };
        Ok((out.num_rows() > 0).then_some(out))
    }

    /// Drop the superseded rows (the segment must keep at least one).
    fn drop_dead(&mut self) -> Result<(), WarehouseError> {
        let Some(alive) = self.alive.take() else { return Ok(()) };
        if self.dead == 0 {
            return Ok(());
        }
        let ids: Vec<u64> = (0..self.len()).filter(|&p| alive[p]).map(|p| self.id(p)).collect();
        self.batch = filter_record_batch(&self.batch, &BooleanArray::from(alive)).map_err(other)?;
        self.set_ids(ids);
        self.dead = 0;
        Ok(())
    }

    fn set_ids(&mut self, ids: Vec<u64>) {
        self.first = ids[0];
        let contiguous = ids[ids.len() - 1] - ids[0] == ids.len() as u64 - 1;
        self.ids = if contiguous { None } else { Some(ids) };
    }

    /// One segment of consecutive segments without superseded rows.
    fn merge(schema: &SchemaRef, run: Vec<Segment>) -> Result<Segment, WarehouseError> {
        let batches: Vec<RecordBatch> = run.iter().map(|s| s.batch.clone()).collect();
        let ids: Vec<u64> = run.iter().flat_map(|s| (0..s.len()).map(move |p| s.id(p))).collect();
        let mut seg = Segment { batch: concat(schema, &batches)?, first: 0, ids: None, alive: None, dead: 0 };
        seg.set_ids(ids);
        Ok(seg)
    }
}

/// A part file of a keyed table: written from (or loaded into) the rows with ids `start..end`.
struct KeyedPart {
    key: String,
    start: u64,
    end: u64,
}

struct KeyedTable {
    /// Rows in insert (id) order; superseded rows are marked, then dropped.
    segments: Vec<Segment>,
    /// Superseded rows still held in `segments`.
    dead: usize,
    /// Segments merged or filtered since the last coalescing (bounds their number).
    small_segments: usize,
    /// key hash → (version, id) of the winner.
    winners: HashTable<u128, (i64, u64)>,
    next_id: u64,
    /// Rows with ids from here on are not in the lake yet.
    flushed: u64,
    /// The lake's part files, in load order.
    parts: Vec<KeyedPart>,
    /// Files superseded by a newer part, still to delete.
    obsolete: Vec<String>,
    /// The newest part name's (millis, seq): new names sort after it.
    last_name: (i64, u32),
    /// The next flush writes a snapshot part (the table was replaced).
    needs_snapshot: bool,
    /// Bumped when the table is replaced, so a flush in flight does not mark it as persisted.
    epoch: u64,
    /// The winners as batches (segment order), rebuilt lazily.
    view: Option<Vec<RecordBatch>>,
}

impl KeyedTable {
    fn new() -> KeyedTable {
        KeyedTable {
            segments: vec![],
            dead: 0,
            small_segments: 0,
            winners: HashTable::default(),
            next_id: 0,
            flushed: 0,
            parts: vec![],
            obsolete: vec![],
            last_name: (0, 0),
            needs_snapshot: false,
            epoch: 0,
            view: None,
        }
    }

    /// Empty the table (its lake files stay until the next flush writes a snapshot part).
    fn replace(&mut self) {
        self.segments.clear();
        self.dead = 0;
        self.small_segments = 0;
        self.winners = HashTable::default();
        self.flushed = self.next_id;
        self.needs_snapshot = true;
        self.epoch += 1;
        self.view = None;
    }

    fn insert(&mut self, t: &Table, batch: RecordBatch) -> Result<(), WarehouseError> {
        let version_col = match t.kind {
            Kind::Upsert { version } => version,
            _ => None,
        };
        let hashes = row_hashes(&batch, t.key)?;
        let vers = versions(&batch, version_col)?;
        let n = batch.num_rows();
        let first = self.next_id;
        let mut alive = vec![true; n];
        self.winners.reserve(n);
        for (i, (&h, v)) in hashes.iter().zip(vers).enumerate() {
            let id = first + i as u64;
            if let Some(&ahead) = hashes.get(i + PREFETCH_AHEAD) {
                self.winners.prefetch(ahead);
            }
            match self.winners.get_or_insert(h, (v, id)) {
                None => {}
                // Ties go to the later insert, as in ClickHouse's ReplacingMergeTree.
                Some(w) => {
                    if w.0 > v {
                        alive[i] = false;
                        continue;
                    }
                    let old = std::mem::replace(w, (v, id)).1;
                    if old >= first {
                        alive[(old - first) as usize] = false;
                    } else {
                        let s = self.segments.partition_point(|seg| seg.first <= old);
                        let seg = s.checked_sub(1).map(|s| &mut self.segments[s]);
                        match seg.and_then(|seg| seg.position(old).map(|p| (seg, p))) {
                            Some((seg, p)) => self.dead += seg.kill(p) as usize,
                            None => debug_assert!(false, "winner {old} not found"),
                        }
                    }
                }
            }
        }
        self.next_id += n as u64;
        // Segments of bounded size, so a superseded row costs re-filtering one of them.
        let mut start = 0;
        while start < n {
            let len = (n - start).min(COALESCE_ROWS);
            let dead = alive[start..start + len].iter().filter(|a| !**a).count();
            if dead < len {
                self.dead += dead;
                self.small_segments += (len < COALESCE_ROWS) as usize;
                self.segments.push(Segment {
                    batch: batch.slice(start, len),
                    first: first + start as u64,
                    ids: None,
                    alive: (dead > 0).then(|| alive[start..start + len].to_vec()),
                    dead,
                });
            }
            start += len;
        }
        self.view = None;
        // Keep memory proportional to the winners even when nobody queries.
        if self.dead > self.winners.len() / 2 + COALESCE_ROWS {
            self.drop_dead(false)?;
        }
        if self.small_segments > SMALL_SEGMENTS_MAX {
            self.drop_dead(false)?;
            self.coalesce_segments(t, 0)?;
        }
        Ok(())
    }

    /// Drop superseded rows: from every segment that has any (`all`), or only where they are
    /// at least a quarter of it.
    fn drop_dead(&mut self, all: bool) -> Result<(), WarehouseError> {
        let mut kept = Vec::with_capacity(self.segments.len());
        for mut s in std::mem::take(&mut self.segments) {
            if s.dead == s.len() {
                self.dead -= s.dead;
                continue;
            }
            if s.dead > 0 && (all || s.dead * 4 >= s.len()) {
                self.dead -= s.dead;
                s.drop_dead()?;
                self.small_segments += (s.len() < COALESCE_ROWS) as usize;
            }
            kept.push(s);
        }
        self.segments = kept;
        Ok(())
    }

    /// Merge runs of small segments without superseded rows when there are more than `tolerated`.
    fn coalesce_segments(&mut self, t: &Table, tolerated: usize) -> Result<(), WarehouseError> {
        let small = |s: &Segment| s.dead == 0 && s.len() < COALESCE_ROWS;
        if self.segments.iter().filter(|s| small(s)).count() <= tolerated {
            return Ok(());
        }
        let schema = t.arrow_schema();
        let mut out = Vec::with_capacity(self.segments.len());
        let mut run: Vec<Segment> = vec![];
        let mut run_rows = 0;
        let flush_run = |run: &mut Vec<Segment>, out: &mut Vec<Segment>| -> Result<(), WarehouseError> {
            match run.len() {
                0 => {}
                1 => out.push(run.pop().unwrap()),
                _ => out.push(Segment::merge(&schema, std::mem::take(run))?),
            }
            Ok(())
        };
        for s in std::mem::take(&mut self.segments) {
            if !small(&s) {
                flush_run(&mut run, &mut out)?;
                run_rows = 0;
                out.push(s);
                continue;
            }
            if run_rows + s.len() > COALESCE_ROWS {
                flush_run(&mut run, &mut out)?;
                run_rows = 0;
            }
            run_rows += s.len();
            run.push(s);
        }
        flush_run(&mut run, &mut out)?;
        self.segments = out;
        self.small_segments = self.segments.iter().filter(|s| small(s)).count();
        Ok(())
    }

    /// The winners as batches: superseded rows dropped, small segments merged.
    fn view(&mut self, t: &Table) -> Result<Vec<RecordBatch>, WarehouseError> {
        if self.view.is_none() {
            self.drop_dead(true)?;
            self.coalesce_segments(t, SMALL_SEGMENTS_FOR_VIEW)?;
            self.view = Some(self.segments.iter().map(|s| s.batch.clone()).collect());
        }
        Ok(self.view.clone().unwrap_or_default())
    }

    /// Index of the first segment that may hold ids ≥ `id`.
    fn segment_from(&self, id: u64) -> usize {
        self.segments.partition_point(|s| s.last_id() < id)
    }

    /// How many winners have ids in `from..to`.
    fn alive_in(&self, from: u64, to: u64) -> usize {
        let mut n = 0;
        for s in &self.segments[self.segment_from(from)..] {
            if s.first >= to {
                break;
            }
            n += s.count_alive(s.lower_bound(from), s.lower_bound(to));
        }
        n
    }

    /// The winners with ids ≥ `from`, in id order.
    fn alive_since(&self, from: u64) -> Result<Vec<RecordBatch>, WarehouseError> {
        let mut out = vec![];
        for s in &self.segments[self.segment_from(from)..] {
            out.extend(s.alive_from(s.lower_bound(from))?);
        }
        Ok(out)
    }

    /// A new part name that sorts after every part this table has seen.
    fn next_part_name(&mut self, t: &Table, snapshot: bool) -> String {
        let now = chrono::Utc::now().timestamp_millis();
        self.last_name = match self.last_name {
            (ms, _) if now > ms => (now, 0),
            (ms, seq) if seq < 999_999 => (ms, seq + 1),
            (ms, _) => (ms + 1, 0),
        };
        let (ms, seq) = self.last_name;
        format!("{}part-{ms:013}-{seq:06}{}", prefix(t), if snapshot { SNAPSHOT_SUFFIX } else { ".parquet" })
    }
}

/// The (millis, seq) of a keyed part's name.
fn part_name_order(prefix: &str, key: &str) -> Option<(i64, u32)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix("part-")?;
    let (ms, rest) = rest.split_once('-')?;
    let seq = rest.get(..6)?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Which of a keyed table's files to load, in order, and which are superseded: from the newest
/// snapshot part on if there is one, else the legacy snapshot and then every part.
fn keyed_files(prefix: &str, listed: Vec<String>) -> (Vec<String>, Vec<String>) {
    let legacy = format!("{prefix}{LEGACY_SNAPSHOT}");
    let has_legacy = listed.contains(&legacy);
    let mut parts: Vec<String> = listed.into_iter().filter(|k| *k != legacy).collect();
    parts.sort();
    let legacy = has_legacy.then_some(legacy);
    match parts.iter().rposition(|k| k.ends_with(SNAPSHOT_SUFFIX)) {
        Some(b) => {
            let newer = parts.split_off(b);
            (newer, legacy.into_iter().chain(parts).collect())
        }
        None => (legacy.into_iter().chain(parts).collect(), vec![]),
    }
}

/// A table's files as `load` reads them.
struct TableFiles {
    /// (key, size in bytes, contents) in load order.
    files: Vec<(String, u64, Vec<RecordBatch>)>,
    /// Keyed tables: files older than the newest snapshot part (not loaded; a writer deletes them).
    superseded: Vec<String>,
    /// Every `.parquet` key listed.
    listed: Vec<String>,
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
    /// `OBSOLETE_GRACE`, shorter in tests.
    obsolete_grace: std::time::Duration,
}

fn prefix(t: &Table) -> String {
    format!("warehouse/{}/", t.name)
}

impl EmbeddedWarehouse {
    /// Open, loading every table persisted in `lake` (none when `lake` is `None`).
    pub async fn open(lake: Option<Lake>) -> Result<EmbeddedWarehouse, WarehouseError> {
        Self::open_with_staleness(lake, std::time::Duration::ZERO).await
    }

    /// How long a fact part absorbed by a merge stays readable (`OBSOLETE_GRACE` by default).
    pub fn with_part_grace(mut self, grace: std::time::Duration) -> EmbeddedWarehouse {
        self.obsolete_grace = grace;
        self
    }

    /// Like `open`, but queries may read a snapshot up to `max_staleness` old instead of
    /// rebuilding one for every insert (a live dashboard over a busy stream).
    pub async fn open_with_staleness(lake: Option<Lake>, max_staleness: std::time::Duration) -> Result<EmbeddedWarehouse, WarehouseError> {
        let mut tables = HashMap::new();
        for t in TABLES {
            let st = match t.kind {
                Kind::Fact => TableState::Append(AppendTable::new()),
                Kind::Upsert { .. } | Kind::Dimension => TableState::Keyed(KeyedTable::new()),
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
            obsolete_grace: OBSOLETE_GRACE,
        };
        wh.load().await?;
        Ok(wh)
    }

    /// The files of `t` to load, read in full (in load order). A file that vanishes between
    /// list and read was merged into a newer one by a writer: list again rather than miss rows.
    async fn read_table(lake: &Lake, t: &Table) -> Result<TableFiles, WarehouseError> {
        let prefix = prefix(t);
        'attempt: for _ in 0..LOAD_ATTEMPTS {
            let objects: HashMap<String, u64> =
                lake.list(&prefix).await.map_err(lake_err)?.into_iter().filter(|o| o.key.ends_with(".parquet")).map(|o| (o.key, o.size)).collect();
            let mut listed: Vec<String> = objects.keys().cloned().collect();
            listed.sort();
            let (load, superseded) = match t.kind {
                Kind::Fact => (listed.clone(), vec![]),
                _ => keyed_files(&prefix, listed.clone()),
            };
            let mut files = Vec::with_capacity(load.len());
            for key in load {
                match lake.read_parquet(&key).await.map_err(lake_err)? {
                    Some(b) => files.push((key.clone(), objects[&key], b)),
                    None => continue 'attempt,
                }
            }
            return Ok(TableFiles { files, superseded, listed });
        }
        Err(WarehouseError::Unavailable(format!("{prefix}: files kept vanishing while loading (a writer merging?)")))
    }

    async fn load(&self) -> Result<(), WarehouseError> {
        let Some(lake) = &self.lake else { return Ok(()) };
        for t in TABLES {
            if t.kind == Kind::Rollup {
                continue;
            }
            let TableFiles { files, superseded, listed } = Self::read_table(lake, t).await?;
            let mut st = self.state.lock().unwrap();
            for (key, bytes, batches) in files {
                let (first_id, held) = match st.tables.get(t.name) {
                    Some(TableState::Keyed(k)) => (k.next_id, 0),
                    Some(TableState::Append(a)) => (0, a.batches.len()),
                    _ => (0, 0),
                };
                let file_rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                for b in batches {
                    // Files written by an older schema get missing columns as nulls is not
                    // supported yet: a schema change needs `warehouse init` to rewrite them.
                    let b = b.with_schema(t.arrow_schema()).map_err(|e| other(format!("{key}: {e}")))?;
                    if let Some(acc) = Self::insert_locked(&mut st, t, b)? {
                        Self::add_rollups(&mut st, t, &acc)?;
                    }
                }
                match st.tables.get_mut(t.name) {
                    Some(TableState::Append(a)) => {
                        let accepted: usize = a.batches[held..].iter().map(RecordBatch::num_rows).sum();
                        if accepted == file_rows {
                            // The file holds these rows: queries scan it, memory lets them go.
                            a.batches.truncate(held);
                            a.pending_rows -= accepted;
                            a.parts.push(FactPart { key, rows: accepted, bytes });
                        } else {
                            // Some of its rows are in an earlier file too (a crash between writing
                            // a merged part and deleting its inputs): scanning it would count them
                            // twice. Its new rows stay pending, and the file goes once a flush has
                            // written them to a part of their own.
                            a.obsolete.push((key, std::time::Instant::now()));
                        }
                    }
                    Some(TableState::Keyed(k)) => k.parts.push(KeyedPart { key, start: first_id, end: k.next_id }),
                    _ => {}
                }
            }
            if let Some(TableState::Keyed(k)) = st.tables.get_mut(t.name) {
                let p = prefix(t);
                k.last_name = listed.iter().filter_map(|key| part_name_order(&p, key)).max().unwrap_or((0, 0));
                k.obsolete = superseded;
                k.flushed = k.next_id;
                k.drop_dead(true)?;
                k.coalesce_segments(t, SMALL_SEGMENTS_FOR_VIEW)?;
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
                let keys = hash_rows_u64(&batch, t.key).map_err(other)?;
                Ok(Some(a.accept(batch, &keys)?))
            }
            TableState::Keyed(k) => {
                k.insert(t, batch)?;
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
        // The key columns are encoded once for all of this source's rollups.
        let mut codes = KeyCodes::new(accepted);
        for r in ROLLUPS.iter().filter(|r| r.source.name == source.name) {
            let part = rollup_batch(r, &mut codes, r.measures, r.only_out_of_stock)?;
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
                    *parts = vec![rollup_batch(r, &mut KeyCodes::new(&all), &again, false)?];
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

    /// Every table's current batches (a consistent snapshot).
    fn snapshot(&self) -> Result<(u64, TableBatches), WarehouseError> {
        let mut st = self.state.lock().unwrap();
        let generation = st.generation;
        let mut out = Vec::new();
        for t in TABLES {
            let schema = t.arrow_schema();
            let mut files = Vec::new();
            let batches = match st.tables.get_mut(t.name).unwrap() {
                TableState::Append(a) => {
                    a.batches = coalesce(&schema, std::mem::take(&mut a.batches))?;
                    files = a.parts.iter().map(|p| (p.key.clone(), p.bytes)).collect();
                    a.batches.clone()
                }
                TableState::Keyed(k) => k.view(t)?,
                TableState::Rollup(parts) => {
                    *parts = coalesce(&schema, std::mem::take(parts))?;
                    parts.clone()
                }
            };
            out.push((*t, batches, files));
        }
        Ok((generation, out))
    }

    /// The query context (cached; `fresh` rebuilds it even within `max_staleness`) and the
    /// generation of its snapshot.
    fn context(&self, fresh: bool) -> Result<(SessionContext, u64), WarehouseError> {
        let current = self.state.lock().unwrap().generation;
        if let Some((g, built, ctx)) = self.ctx.lock().unwrap().as_ref() {
            if *g == current || (!fresh && built.elapsed() < self.max_staleness) {
                return Ok((ctx.clone(), *g));
            }
        }
        let (generation, tables) = self.snapshot()?;
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let config = SessionConfig::new().with_target_partitions(threads).with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        let store = datafusion::execution::object_store::ObjectStoreUrl::parse(LAKE_STORE_URL).map_err(other)?;
        if let Some(lake) = &self.lake {
            ctx.register_object_store(store.as_ref(), lake.object_store());
        }
        for (t, batches, files) in tables {
            // Spread batches over partitions so scans use every core.
            let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); threads];
            for (i, b) in batches.into_iter().enumerate() {
                parts[i % threads].push(b);
            }
            if t.kind == Kind::Fact {
                let table = FactTableProvider { schema: t.arrow_schema(), memory: parts, files, store: store.clone(), partitions: threads };
                ctx.register_table(t.name, Arc::new(table)).map_err(other)?;
            } else {
                let mem = MemTable::try_new(t.arrow_schema(), parts).map_err(other)?;
                ctx.register_table(t.name, Arc::new(mem)).map_err(other)?;
            }
        }
        *self.ctx.lock().unwrap() = Some((generation, std::time::Instant::now(), ctx.clone()));
        Ok((ctx, generation))
    }

    /// Persist `only` those tables (None: all).
    async fn flush_inner(&self, only: Option<&[&Table]>) -> Result<(), WarehouseError> {
        let Some(lake) = &self.lake else { return Ok(()) };
        let _serial = self.flush_lock.lock().await;
        let chosen = TABLES.iter().filter(|t| only.is_none_or(|only| only.iter().any(|o| o.name == t.name)));
        // Tables are independent: their Parquet encodings run side by side.
        let flushes = chosen.map(|t| async move {
            match t.kind {
                Kind::Rollup => Ok(()),
                Kind::Fact => self.flush_fact(lake, t).await,
                Kind::Upsert { .. } | Kind::Dimension => self.flush_keyed(lake, t).await,
            }
        });
        futures::future::try_join_all(flushes).await?;
        Ok(())
    }

    /// Write a fact table's pending rows as a part (absorbing the newest parts, `merge_point`,
    /// read back from the lake), let them go from memory, and delete the parts absorbed at least
    /// `OBSOLETE_GRACE` ago.
    async fn flush_fact(&self, lake: &Lake, t: &Table) -> Result<(), WarehouseError> {
        // Take what is not yet persisted (and the parts it absorbs) under the lock.
        let plan = {
            let mut st = self.state.lock().unwrap();
            let Some(TableState::Append(a)) = st.tables.get_mut(t.name) else { return Ok(()) };
            if a.pending_rows == 0 {
                None
            } else {
                let sizes: Vec<usize> = a.parts.iter().map(|p| p.rows).collect();
                let from_part = merge_point(&sizes, a.pending_rows);
                let absorbed: Vec<FactPart> = a.parts[from_part..].to_vec();
                Some((a.batches.clone(), a.pending_rows, a.persisted_rows() + a.pending_rows, from_part, absorbed))
            }
        };
        if let Some((pending, pending_rows, total_rows, from_part, absorbed)) = plan {
            // Flushes are serialised (`flush_lock`): the absorbed parts are still there.
            let mut batches = Vec::new();
            for part in &absorbed {
                let read = lake.read_parquet(&part.key).await.map_err(lake_err)?;
                let read =
                    read.ok_or_else(|| WarehouseError::Other(format!("{}: part missing while merging (another process writing this warehouse?)", part.key)))?;
                for b in read {
                    batches.push(b.with_schema(t.arrow_schema()).map_err(|e| other(format!("{}: {e}", part.key)))?);
                }
            }
            batches.extend(pending);
            let rows = pending_rows + absorbed.iter().map(|p| p.rows).sum::<usize>();
            let key = format!("{}part-{:013}-{:016x}.parquet", prefix(t), chrono::Utc::now().timestamp_millis(), fnv1a(format!("{total_rows}").as_bytes()));
            let bytes = lake.write_parquet_as(&key, &batches, ParquetProfile::Internal).await.map_err(lake_err)?;
            let mut st = self.state.lock().unwrap();
            // The next query's snapshot reads these rows from the part, so memory lets them go.
            st.generation += 1;
            if let Some(TableState::Append(a)) = st.tables.get_mut(t.name) {
                a.drop_pending(pending_rows);
                let now = std::time::Instant::now();
                let gone: Vec<(String, std::time::Instant)> = a.parts.drain(from_part..).map(|p| (p.key, now)).collect();
                a.obsolete.extend(gone);
                a.parts.push(FactPart { key, rows, bytes });
            }
        }
        let due = {
            let mut st = self.state.lock().unwrap();
            let Some(TableState::Append(a)) = st.tables.get_mut(t.name) else { return Ok(()) };
            let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut a.obsolete).into_iter().partition(|(_, since)| since.elapsed() >= self.obsolete_grace);
            a.obsolete = wait;
            due
        };
        if due.is_empty() {
            return Ok(());
        }
        let (left, err) = delete_all(lake, due.iter().map(|(k, _)| k.clone()).collect()).await;
        if let Some(e) = err {
            // What is left is the tail of `due`: deleting stops at the first error.
            let deleted = due.len() - left.len();
            if let Some(TableState::Append(a)) = self.state.lock().unwrap().tables.get_mut(t.name) {
                a.obsolete.extend(due.into_iter().skip(deleted));
            }
            return Err(e);
        }
        Ok(())
    }

    /// Write the winners among a keyed table's rows inserted since the last flush as a part
    /// (absorbing the newest parts, `merge_point`; all of them: a snapshot part), then delete
    /// what it superseded.
    async fn flush_keyed(&self, lake: &Lake, t: &Table) -> Result<(), WarehouseError> {
        struct Plan {
            batches: Vec<RecordBatch>,
            key: String,
            from_part: usize,
            start: u64,
            end: u64,
            snapshot: bool,
            epoch: u64,
        }
        let plan = {
            let mut st = self.state.lock().unwrap();
            let Some(TableState::Keyed(k)) = st.tables.get_mut(t.name) else { return Ok(()) };
            let end = k.next_id;
            let from_part = if k.needs_snapshot {
                Some(0)
            } else if end == k.flushed {
                None
            } else {
                match k.alive_in(k.flushed, end) {
                    // None of the new rows is a winner: the lake already holds every winner.
                    0 => {
                        k.flushed = end;
                        None
                    }
                    pending => {
                        let sizes: Vec<usize> = k.parts.iter().map(|p| k.alive_in(p.start, p.end)).collect();
                        Some(merge_point(&sizes, pending))
                    }
                }
            };
            match from_part {
                None => None,
                Some(from_part) => {
                    let snapshot = from_part == 0;
                    let start = if snapshot { 0 } else { k.parts.get(from_part).map_or(k.flushed, |p| p.start) };
                    let mut batches = k.alive_since(start)?;
                    if batches.is_empty() {
                        batches.push(RecordBatch::new_empty(t.arrow_schema()));
                    }
                    let key = k.next_part_name(t, snapshot);
                    Some(Plan { batches, key, from_part, start, end, snapshot, epoch: k.epoch })
                }
            }
        };
        if let Some(p) = plan {
            lake.write_parquet_as(&p.key, &p.batches, ParquetProfile::Internal).await.map_err(lake_err)?;
            let mut st = self.state.lock().unwrap();
            if let Some(TableState::Keyed(k)) = st.tables.get_mut(t.name) {
                // Only flushes change `parts`, and they are serialized: `from_part` still holds.
                let absorbed: Vec<String> = k.parts.drain(p.from_part..).map(|p| p.key).collect();
                k.obsolete.extend(absorbed);
                k.parts.push(KeyedPart { key: p.key, start: p.start, end: p.end });
                // A table replaced meanwhile still needs its own snapshot part.
                if k.epoch == p.epoch {
                    k.flushed = p.end;
                    if p.snapshot {
                        k.needs_snapshot = false;
                    }
                }
            }
        }
        let obsolete = {
            let mut st = self.state.lock().unwrap();
            let Some(TableState::Keyed(k)) = st.tables.get_mut(t.name) else { return Ok(()) };
            std::mem::take(&mut k.obsolete)
        };
        if obsolete.is_empty() {
            return Ok(());
        }
        let (left, err) = delete_all(lake, obsolete).await;
        if let Some(e) = err {
            if let Some(TableState::Keyed(k)) = self.state.lock().unwrap().tables.get_mut(t.name) {
                k.obsolete.extend(left);
            }
            return Err(e);
        }
        Ok(())
    }
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
                // The next flush writes a snapshot part, which supersedes every older file.
                if let Some(TableState::Keyed(k)) = st.tables.get_mut(t.name) {
                    k.replace();
                }
                Self::insert_locked(&mut st, t, b)?;
            }
            st.generation += 1;
        }
        self.flush_inner(None).await
    }

    async fn insert_sales_batch(&self, batch: RecordBatch) -> Result<(), WarehouseError> {
        self.insert(&schema::FACT_SALES, batch)
    }
    async fn insert_inventory_batch(&self, batch: RecordBatch) -> Result<(), WarehouseError> {
        self.insert(&schema::FACT_INVENTORY, batch)
    }
    async fn upsert_sales_windows_batch(&self, batch: RecordBatch) -> Result<(), WarehouseError> {
        self.insert(&schema::RT_SALES_5MIN, batch)
    }
    async fn upsert_stock_batch(&self, batch: RecordBatch) -> Result<(), WarehouseError> {
        self.insert(&schema::RT_STOCK, batch)
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
        self.flush_inner(None).await
    }

    async fn flush_tables(&self, tables: &[&Table]) -> Result<(), WarehouseError> {
        self.flush_inner(Some(tables)).await
    }

    async fn query(&self, sql: &str) -> Result<QueryResult, WarehouseError> {
        let (mut ctx, mut generation) = self.context(false)?;
        let mut attempts = 0;
        let (columns, batches) = loop {
            let df = ctx.sql(sql).await.map_err(|e| WarehouseError::Query(e.to_string()))?;
            let columns: Vec<String> = df.schema().fields().iter().map(|f| f.name().clone()).collect();
            match df.collect().await {
                Ok(batches) => break (columns, batches),
                // A stale snapshot may name a part a merge has since deleted: once more on the
                // current one.
                Err(e) if attempts < 2 && self.state.lock().unwrap().generation != generation => {
                    tracing::debug!(error = %e, "query failed on a stale snapshot; retrying on the current one");
                    attempts += 1;
                    (ctx, generation) = self.context(true)?;
                }
                Err(e) => return Err(WarehouseError::Query(e.to_string())),
            }
        };
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

#[cfg(test)]
mod tests;
