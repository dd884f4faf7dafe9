//! The state one input partition carries, and its checkpoint form.
//!
//! State is owned per (topic, partition), never per process: whatever a partition's events
//! derive (windows and SKU norms from a sales partition, stock from an inventory partition)
//! travels with the partition when the consumer group moves it, through its checkpoint.

use crate::model::{IdMap, Interner, Key, Norm, WindowAgg};
use crate::validate::TopicKind;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasherDefault;

pub const HOUR_MS: i64 = 3_600_000;
/// Event time before anything was seen.
pub const NEVER: i64 = i64::MIN;

/// A recorded theft of one store×SKU, kept while it can still be part of a burst.
#[derive(Clone, Debug, PartialEq)]
pub struct Theft {
    pub ts: i64,
    pub product: u32,
    pub event_id: String,
    /// Already flagged as part of a burst.
    pub flagged: bool,
}

/// A run of identical sale lines from one store (stuck-POS detection).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PosRun {
    pub signature: u64,
    pub count: u32,
}

/// Stock, velocity and alert state of one store×SKU (from its inventory partition).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StockState {
    pub on_hand: i32,
    pub known: bool,
    pub updated_ms: i64,
    /// Start of the hour bucket being filled, and the units sold in it so far.
    pub hour_ms: i64,
    pub hour_units: i64,
    /// EWMA mean and variance of units sold per completed hour, and how many hours were folded.
    pub mean: f64,
    pub var: f64,
    pub hours: u32,
    pub alert_open: bool,
    pub alert_severity: u8,
    pub last_open_ms: i64,
    /// Where this entry's row waits for the next flush (see `WindowAgg::dirty`).
    #[serde(skip)]
    pub dirty: crate::model::DirtySlot,
    /// Changed since the last snapshot (which then carries it in its stock delta).
    #[serde(skip)]
    pub unsaved: bool,
}

impl Default for StockState {
    fn default() -> Self {
        StockState {
            on_hand: 0,
            known: false,
            updated_ms: NEVER,
            hour_ms: NEVER,
            hour_units: 0,
            mean: 0.0,
            var: 0.0,
            hours: 0,
            alert_open: false,
            alert_severity: 0,
            last_open_ms: NEVER,
            dirty: crate::model::DirtySlot::default(),
            unsaved: false,
        }
    }
}

impl StockState {
    /// Advance the hour buckets to the one holding `ts`, folding every completed hour (empty
    /// hours count as zero demand). Events older than the current bucket count in it.
    pub fn roll_to(&mut self, ts: i64, alpha: f64) {
        let hour = ts.div_euclid(HOUR_MS) * HOUR_MS;
        if self.hour_ms == NEVER {
            self.hour_ms = hour;
            return;
        }
        if hour <= self.hour_ms {
            return;
        }
        let gap = (hour - self.hour_ms) / HOUR_MS;
        self.fold(self.hour_units as f64, alpha);
        // After four weeks of silence the estimate is ~0 anyway (α = 0.01: 0.1 % of it is
        // left); bound the loop for absurd gaps.
        for _ in 1..gap.min(MAX_GAP_HOURS) {
            self.fold(0.0, alpha);
        }
        self.hour_ms = hour;
        self.hour_units = 0;
    }

    /// Fold one completed hour of `x` units into the averages. Both start at zero and are
    /// read through [`StockState::weight`], so no single hour sets them: the hour that created
    /// a store×SKU's state always has demand (the event that created it), and taking it as the
    /// rate made one sale of a slow mover a rate of one unit per hour.
    fn fold(&mut self, x: f64, alpha: f64) {
        // The deviation from the rate so far (none before the first hour).
        let d = if self.hours == 0 { 0.0 } else { x - self.mean / self.weight(alpha, 0.0) };
        self.mean += alpha * (x - self.mean);
        self.var = (1.0 - alpha) * (self.var + alpha * d * d);
        self.hours = self.hours.saturating_add(1);
    }

    /// What the zero-started averages weigh after `hours` folds: the weights of the hours seen
    /// (1 − (1 − α)ⁿ) plus `prior_hours` of zero demand before them, decayed like any hour.
    fn weight(&self, alpha: f64, prior_hours: f64) -> f64 {
        let decay = (1.0 - alpha).powi(self.hours.min(i32::MAX as u32) as i32);
        1.0 - decay + alpha * prior_hours * decay
    }

    /// Smoothed units per hour: the exponentially weighted rate of the completed hours (memory
    /// ≈ 1/α hours), shrunk towards zero by `prior_hours` of no demand while there are few of
    /// them. One sale in a first hour is 1/(1 + prior_hours) per hour, not one per hour.
    pub fn velocity(&self, alpha: f64, prior_hours: f64) -> f64 {
        self.velocity_and_variance(alpha, prior_hours).0
    }

    /// Variance of hourly demand, weighted like the velocity and floored at it: count demand is
    /// at least as variable as Poisson, and a young estimate would otherwise claim certainty.
    pub fn hourly_variance(&self, alpha: f64, prior_hours: f64) -> f64 {
        self.velocity_and_variance(alpha, prior_hours).1
    }

    /// `velocity` and `hourly_variance` at once: the weight (a power of 1 − α) computed once,
    /// not three times (every stock view needs both, once per inventory update and stock row).
    pub fn velocity_and_variance(&self, alpha: f64, prior_hours: f64) -> (f64, f64) {
        let w = self.weight(alpha, prior_hours);
        if w <= 0.0 {
            return (0.0, 0.0);
        }
        let velocity = self.mean / w;
        (velocity, (self.var / w).max(velocity))
    }
}

/// Empty hours folded at most after a silence (four weeks).
const MAX_GAP_HOURS: i64 = 28 * 24;

pub type IdSet = HashSet<u64, BuildHasherDefault<crate::model::IdHasher>>;

/// The event ids of one event-time bucket, and whether a checkpoint object already holds them.
#[derive(Default)]
pub struct DedupBucket {
    pub ids: IdSet,
    /// The version (`next_offset` when written) of the checkpoint object holding exactly these
    /// ids; `None` once an id was added since. A checkpoint writes only the buckets without
    /// one: the dedup horizon holds millions of ids, nearly all in buckets that no longer change.
    pub segment: Option<i64>,
}

/// A changed window's row as of its latest change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DirtyWindow {
    pub window_start: i64,
    pub key: Key,
    pub units: i64,
    pub revenue: f64,
    pub transactions: i64,
    pub customers: u32,
}

/// A changed stock entry's row as of its latest change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DirtyStock {
    pub key: Key,
    pub on_hand: i32,
    pub reorder_point: i32,
    pub velocity_per_hour: f64,
    pub days_of_cover: f64,
    pub stockout_risk: f64,
    pub updated_ms: i64,
}

impl PartState {
    /// Record that the stock entry `key` changed to `row`, as `window_changed` does.
    pub fn stock_changed(dirty_stock: &mut Vec<DirtyStock>, epoch: u32, st: &mut StockState, row: DirtyStock) {
        let key = row.key;
        st.dirty.record(dirty_stock, epoch, row, |p| p.key == key);
    }

    /// Record that the window (`window_start`, `key`) changed to `agg`: its pending row is
    /// overwritten when it already has one in this epoch, else added.
    pub fn window_changed(dirty_windows: &mut Vec<DirtyWindow>, epoch: u32, window_start: i64, key: Key, agg: &mut WindowAgg) {
        let row =
            DirtyWindow { window_start, key, units: agg.units, revenue: agg.revenue, transactions: agg.transactions, customers: agg.customers.len() as u32 };
        agg.dirty.record(dirty_windows, epoch, row, |p| p.window_start == window_start && p.key == key);
    }

    /// Start the next flush epoch (never 0, which marks "no epoch").
    pub fn next_flush_epoch(&mut self) {
        self.flush_epoch = self.flush_epoch.wrapping_add(1).max(1);
    }
}

pub struct PartState {
    pub kind: TopicKind,
    pub partition: i32,
    /// Offset of the next record to process; records below it were already applied.
    pub next_offset: i64,
    pub max_event_ms: i64,
    /// Event-id hashes by event-time bucket, evicted behind the watermark.
    pub dedup: BTreeMap<i64, DedupBucket>,
    /// Open windows by start time.
    pub windows: BTreeMap<i64, IdMap<Key, WindowAgg>>,
    pub qty_norm: IdMap<u32, Norm>,
    pub price_norm: IdMap<u32, Norm>,
    pub pos: IdMap<u32, PosRun>,
    /// Recent recorded thefts per store (theft-burst detection).
    pub thefts: IdMap<u32, Vec<Theft>>,
    pub stock: IdMap<Key, StockState>,
    /// The rows of the windows changed since the last flush, as of their latest change; a
    /// window's `dirty` says where its row is. A flush takes the rows from here (in order, no
    /// lookup) and starts a new `flush_epoch`.
    pub dirty_windows: Vec<DirtyWindow>,
    /// Starts at 1; 0 is no epoch (`DirtySlot::default()`).
    pub flush_epoch: u32,
    /// The rows of the stock entries changed since the last flush, as of their latest change
    /// (as `dirty_windows`).
    pub dirty_stock: Vec<DirtyStock>,
    /// Keys changed since the last snapshot.
    pub unsaved_stock: Vec<Key>,
    /// The stock objects the last snapshot refers to, oldest (a full base) first, each by its
    /// version; and how many entries they hold together (when that outgrows the live keys, the
    /// next snapshot starts a new base).
    pub stock_chain: Vec<i64>,
    pub stock_chain_entries: usize,
    /// How this partition hashes event and customer ids (kept from its checkpoint).
    pub id_hash: crate::model::IdHash,
}

impl PartState {
    pub fn new(kind: TopicKind, partition: i32) -> Self {
        PartState {
            kind,
            partition,
            next_offset: 0,
            max_event_ms: NEVER,
            dedup: BTreeMap::new(),
            windows: BTreeMap::new(),
            qty_norm: IdMap::default(),
            price_norm: IdMap::default(),
            pos: IdMap::default(),
            thefts: IdMap::default(),
            stock: IdMap::default(),
            dirty_windows: Vec::new(),
            flush_epoch: 1,
            dirty_stock: Vec::new(),
            unsaved_stock: Vec::new(),
            stock_chain: Vec::new(),
            stock_chain_entries: 0,
            id_hash: crate::model::IdHash::default(),
        }
    }

    pub fn watermark(&self, out_of_orderness_ms: i64) -> i64 {
        if self.max_event_ms == NEVER {
            NEVER
        } else {
            self.max_event_ms - out_of_orderness_ms
        }
    }
}

/// A sequence of snapshot entries: as items (restored, or built by hand), or already in stored
/// form. A live partition writes its open windows and stock entries straight into their
/// postcard bytes, borrowing the names from the interner: copying each entry out first, with
/// two name strings allocated per entry, cost ~3 % of a million-event run's CPU and ~30 MB of
/// fresh memory at half a million open windows, on the loop's path.
#[derive(Clone, Debug)]
pub enum StoredSeq<T> {
    Items(Vec<T>),
    /// The postcard encoding of a sequence of `len` items: exactly what `postcard` writes for
    /// a `Vec<T>`, so a stored snapshot reads back as `Items`.
    Encoded {
        len: usize,
        bytes: Vec<u8>,
    },
}

impl<T> Default for StoredSeq<T> {
    fn default() -> Self {
        StoredSeq::Items(Vec::new())
    }
}

impl<T> From<Vec<T>> for StoredSeq<T> {
    fn from(items: Vec<T>) -> Self {
        StoredSeq::Items(items)
    }
}

impl<T: Serialize + serde::de::DeserializeOwned> StoredSeq<T> {
    /// Encodes `len` entries, each of which must serialise as a `T` does (e.g. `&str` for
    /// `String`). Fails if the iterator yields another count than `len`.
    pub fn encode<U: Serialize>(len: usize, entries: impl Iterator<Item = U>, size_hint: usize) -> Result<StoredSeq<T>, String> {
        let mut bytes = Vec::with_capacity(size_hint);
        postcard::to_io(&len, &mut bytes).map_err(|e| e.to_string())?;
        let mut written = 0;
        for entry in entries {
            postcard::to_io(&entry, &mut bytes).map_err(|e| e.to_string())?;
            written += 1;
        }
        if written != len {
            return Err(format!("{written} snapshot entries written, {len} announced"));
        }
        Ok(StoredSeq::Encoded { len, bytes })
    }

    pub fn len(&self) -> usize {
        match self {
            StoredSeq::Items(v) => v.len(),
            StoredSeq::Encoded { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_items(self) -> Result<Vec<T>, String> {
        match self {
            StoredSeq::Items(v) => Ok(v),
            StoredSeq::Encoded { bytes, .. } => decode_entries(&bytes),
        }
    }

    /// The items, decoded in place if need be (to add entries loaded from elsewhere).
    pub fn items_mut(&mut self) -> Result<&mut Vec<T>, String> {
        if let StoredSeq::Encoded { .. } = self {
            *self = StoredSeq::Items(std::mem::take(self).into_items()?);
        }
        match self {
            StoredSeq::Items(v) => Ok(v),
            StoredSeq::Encoded { .. } => unreachable!("decoded above"),
        }
    }

    /// Appends the postcard encoding of the sequence to `buf`.
    pub fn write_postcard(&self, buf: &mut Vec<u8>) -> Result<(), String> {
        match self {
            StoredSeq::Items(v) => postcard::to_io(v, &mut *buf).map(|_| ()).map_err(|e| e.to_string()),
            StoredSeq::Encoded { bytes, .. } => {
                buf.extend_from_slice(bytes);
                Ok(())
            }
        }
    }
}

fn decode_entries<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("snapshot entries: {e}"))
}

/// Other serialisers (JSON in tests and in checkpoints of early versions) see the items.
impl<T: Serialize + serde::de::DeserializeOwned> Serialize for StoredSeq<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            StoredSeq::Items(v) => v.serialize(serializer),
            StoredSeq::Encoded { bytes, .. } => decode_entries::<T>(bytes).map_err(serde::ser::Error::custom)?.serialize(serializer),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for StoredSeq<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<T>::deserialize(deserializer).map(StoredSeq::Items)
    }
}

/// Equal when the items are (an undecodable encoding equals nothing).
impl<T: serde::de::DeserializeOwned + PartialEq + Clone> PartialEq for StoredSeq<T> {
    fn eq(&self, other: &Self) -> bool {
        fn items<T: serde::de::DeserializeOwned + Clone>(s: &StoredSeq<T>) -> Result<std::borrow::Cow<'_, [T]>, String> {
            match s {
                StoredSeq::Items(v) => Ok(std::borrow::Cow::Borrowed(v)),
                StoredSeq::Encoded { bytes, .. } => decode_entries(bytes).map(std::borrow::Cow::Owned),
            }
        }
        matches!((items(self), items(other)), (Ok(a), Ok(b)) if a == b)
    }
}

/// A window as stored: (window start, store, product, aggregate).
pub type StoredWindow = (i64, String, String, WindowAgg);
/// A stock entry as stored: (store, product, state).
pub type StoredStock = (String, String, StockState);

/// A partition's state as stored: string keys instead of this process's interned ids.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PartSnapshot {
    /// Which hash its event and customer ids were made with: `IdHash::format` (1 = FNV-1a,
    /// 2 = `word_hash`, what new partitions write).
    pub format: u32,
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
    pub max_event_ms: i64,
    /// Event-id hashes by bucket, held in this snapshot. As taken by the processor: the
    /// buckets changed since the last snapshot (the runner moves them to objects of their own).
    pub dedup: Vec<(i64, Vec<u64>)>,
    /// Buckets whose ids are in a checkpoint object of their own, as (bucket, version). As
    /// taken: the unchanged buckets; as stored: all of them; as restored (their ids loaded into
    /// `dedup`): which buckets need no rewrite.
    #[serde(default)]
    pub dedup_segments: Vec<(i64, i64)>,
    pub windows: StoredSeq<StoredWindow>,
    pub qty_norm: Vec<(String, Norm)>,
    pub price_norm: Vec<(String, Norm)>,
    pub pos: Vec<(String, PosRun)>,
    /// Stock entries held in this snapshot. As taken by the processor: every entry when
    /// `stock_segments` is empty (a new base), else those changed since the last snapshot (a
    /// delta); the runner moves them to an object of their own.
    pub stock: StoredSeq<StoredStock>,
    /// The stock objects, as versions in order (a base, then deltas; later entries win). As
    /// taken: the chain before this snapshot's entries; as stored: all of it; as restored
    /// (their entries loaded into `stock`): the chain to extend.
    #[serde(default)]
    pub stock_segments: Vec<i64>,
    /// Recent recorded thefts per store.
    #[serde(default)]
    pub thefts: Vec<(String, Vec<StoredTheft>)>,
}

/// Checkpoint bytes start with this, then the snapshot in postcard (compact binary serde).
/// Checkpoints written before it are postcard without `dedup_segments` (`BINARY_MAGIC_V1`) or
/// JSON, and still read.
const BINARY_MAGIC: &[u8] = b"retail-stream-state/postcard-3\n";
const BINARY_MAGIC_V2: &[u8] = b"retail-stream-state/postcard-2\n";
const BINARY_MAGIC_V1: &[u8] = b"retail-stream-state/postcard\n";

/// A recorded theft as stored: (event time, product, event id, already flagged).
pub type StoredTheft = (i64, String, String, bool);

/// The binary layout before theft bursts.
#[derive(Deserialize)]
struct PartSnapshotV2 {
    format: u32,
    topic: String,
    partition: i32,
    next_offset: i64,
    max_event_ms: i64,
    dedup: Vec<(i64, Vec<u64>)>,
    dedup_segments: Vec<(i64, i64)>,
    windows: Vec<StoredWindow>,
    qty_norm: Vec<(String, Norm)>,
    price_norm: Vec<(String, Norm)>,
    pos: Vec<(String, PosRun)>,
    stock: Vec<StoredStock>,
    stock_segments: Vec<i64>,
}

impl From<PartSnapshotV2> for PartSnapshot {
    fn from(v: PartSnapshotV2) -> Self {
        PartSnapshot {
            format: v.format,
            topic: v.topic,
            partition: v.partition,
            next_offset: v.next_offset,
            max_event_ms: v.max_event_ms,
            dedup: v.dedup,
            dedup_segments: v.dedup_segments,
            windows: v.windows.into(),
            qty_norm: v.qty_norm,
            price_norm: v.price_norm,
            pos: v.pos,
            stock: v.stock.into(),
            stock_segments: v.stock_segments,
            thefts: Vec::new(),
        }
    }
}

/// The binary layout before dedup segments (postcard is not self-describing: a new field is a
/// new layout).
#[derive(Deserialize)]
struct PartSnapshotV1 {
    format: u32,
    topic: String,
    partition: i32,
    next_offset: i64,
    max_event_ms: i64,
    dedup: Vec<(i64, Vec<u64>)>,
    windows: Vec<StoredWindow>,
    qty_norm: Vec<(String, Norm)>,
    price_norm: Vec<(String, Norm)>,
    pos: Vec<(String, PosRun)>,
    stock: Vec<StoredStock>,
}

impl From<PartSnapshotV1> for PartSnapshotV2 {
    fn from(v: PartSnapshotV1) -> Self {
        PartSnapshotV2 {
            format: v.format,
            topic: v.topic,
            partition: v.partition,
            next_offset: v.next_offset,
            max_event_ms: v.max_event_ms,
            dedup: v.dedup,
            dedup_segments: Vec::new(),
            windows: v.windows,
            qty_norm: v.qty_norm,
            price_norm: v.price_norm,
            pos: v.pos,
            stock: v.stock,
            stock_segments: Vec::new(),
        }
    }
}

/// A dedup bucket's checkpoint object: this, the id count (u64 LE), then the ids (u64 LE).
/// Fixed-width: the ids are hashes, which a varint would spell in 9–10 bytes.
const DEDUP_MAGIC: &[u8] = b"retail-stream-dedup/1\n";

/// A stock object (a base or a delta of the chain): this, then the entries in postcard.
const STOCK_MAGIC: &[u8] = b"retail-stream-stock/1\n";

pub fn encode_stock(entries: &StoredSeq<StoredStock>) -> Result<Vec<u8>, String> {
    let mut buf = STOCK_MAGIC.to_vec();
    entries.write_postcard(&mut buf)?;
    Ok(buf)
}

pub fn decode_stock(bytes: &[u8]) -> Result<Vec<StoredStock>, String> {
    let body = bytes.strip_prefix(STOCK_MAGIC).ok_or("not a stock object of this processor")?;
    postcard::from_bytes(body).map_err(|e| format!("stock object: {e}"))
}

pub fn encode_dedup_ids(ids: &[u64]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(DEDUP_MAGIC.len() + 8 + ids.len() * 8);
    buf.extend_from_slice(DEDUP_MAGIC);
    buf.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    for id in ids {
        buf.extend_from_slice(&id.to_le_bytes());
    }
    buf
}

pub fn decode_dedup_ids(bytes: &[u8]) -> Result<Vec<u64>, String> {
    let body = bytes.strip_prefix(DEDUP_MAGIC).ok_or("not a dedup object of this processor")?;
    let (count, ids) = body.split_first_chunk::<8>().ok_or("dedup object cut short")?;
    let count = u64::from_le_bytes(*count);
    if ids.len() as u64 != count.saturating_mul(8) {
        return Err(format!("dedup object holds {} bytes of ids, its header says {count} ids", ids.len()));
    }
    Ok(ids.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8"))).collect())
}

impl PartSnapshot {
    /// The checkpoint bytes, appended to `buf`. Binary: a partition's state under load is
    /// mostly numbers (a million event-id hashes), which JSON spelled out at 3–4× the size and
    /// the time.
    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<(), String> {
        buf.extend_from_slice(BINARY_MAGIC);
        // Field by field, as the derived `Serialize` would (postcard writes a struct as its
        // fields in order), so that windows already encoded go in as they are.
        let err = |e: postcard::Error| e.to_string();
        let head = (self.format, &self.topic, self.partition, self.next_offset, self.max_event_ms, &self.dedup, &self.dedup_segments);
        postcard::to_io(&head, &mut *buf).map_err(err)?;
        self.windows.write_postcard(buf)?;
        postcard::to_io(&(&self.qty_norm, &self.price_norm, &self.pos), &mut *buf).map_err(err)?;
        self.stock.write_postcard(buf)?;
        postcard::to_io(&(&self.stock_segments, &self.thefts), &mut *buf).map_err(err)?;
        Ok(())
    }

    /// Reads what `encode` wrote, or the JSON of earlier versions.
    pub fn decode(bytes: &[u8]) -> Result<PartSnapshot, String> {
        if let Some(body) = bytes.strip_prefix(BINARY_MAGIC) {
            postcard::from_bytes(body).map_err(|e| format!("binary checkpoint: {e}"))
        } else if let Some(body) = bytes.strip_prefix(BINARY_MAGIC_V2) {
            postcard::from_bytes::<PartSnapshotV2>(body).map(PartSnapshot::from).map_err(|e| format!("binary checkpoint: {e}"))
        } else if let Some(body) = bytes.strip_prefix(BINARY_MAGIC_V1) {
            postcard::from_bytes::<PartSnapshotV1>(body).map(|v1| PartSnapshot::from(PartSnapshotV2::from(v1))).map_err(|e| format!("binary checkpoint: {e}"))
        } else if bytes.first() == Some(&b'{') {
            serde_json::from_slice(bytes).map_err(|e| format!("JSON checkpoint: {e}"))
        } else {
            Err("not a checkpoint of this processor (unknown encoding)".into())
        }
    }
}

impl PartState {
    /// The state as stored. Dedup buckets changed since the last snapshot come with their ids
    /// (and count as persisted at this `next_offset` from now on); the others by reference.
    pub fn to_snapshot(&mut self, names: &Interner) -> Result<PartSnapshot, String> {
        let (mut dedup, mut dedup_segments) = (Vec::new(), Vec::new());
        let (stock, stock_segments) = self.take_stock(names)?;
        for (b, bucket) in &mut self.dedup {
            match bucket.segment {
                Some(version) => dedup_segments.push((*b, version)),
                None => {
                    dedup.push((*b, bucket.ids.iter().copied().collect()));
                    bucket.segment = Some(self.next_offset);
                }
            }
        }
        let open: usize = self.windows.values().map(|m| m.len()).sum();
        let entries = self.windows.iter().flat_map(|(ws, m)| m.iter().map(move |(k, agg)| (*ws, names.store_of(*k), names.product_of(*k), agg)));
        // Sized for ~64 bytes per window (two names, four numbers, a customer or two): growing
        // by doubling would copy the bytes into fresh memory again.
        let windows = StoredSeq::encode(open, entries, 16 + open * 64)?;
        Ok(PartSnapshot {
            format: self.id_hash.format(),
            topic: self.kind.topic().to_string(),
            partition: self.partition,
            next_offset: self.next_offset,
            max_event_ms: self.max_event_ms,
            dedup,
            dedup_segments,
            windows,
            qty_norm: self.qty_norm.iter().map(|(p, n)| (names.name(*p).to_string(), n.clone())).collect(),
            price_norm: self.price_norm.iter().map(|(p, n)| (names.name(*p).to_string(), n.clone())).collect(),
            pos: self.pos.iter().map(|(s, r)| (names.name(*s).to_string(), r.clone())).collect(),
            stock,
            stock_segments,
            thefts: self
                .thefts
                .iter()
                .map(|(store, ts)| {
                    (names.name(*store).to_string(), ts.iter().map(|t| (t.ts, names.name(t.product).to_string(), t.event_id.clone(), t.flagged)).collect())
                })
                .collect(),
        })
    }

    /// The stock part of a snapshot: every entry (a new base) when there is no chain yet or the
    /// chain holds more than twice the live entries, else the entries changed since the last
    /// snapshot. Under load most store×SKUs do not change between two checkpoints, and there
    /// can be millions of them. Records the chain as it will be once the runner wrote them.
    fn take_stock(&mut self, names: &Interner) -> Result<(StoredSeq<StoredStock>, Vec<i64>), String> {
        let base = self.stock_chain.is_empty() || self.stock_chain_entries + self.unsaved_stock.len() > 2 * self.stock.len().max(1024);
        // ~72 bytes per entry: two names and a dozen numbers.
        let entries = if base {
            self.stock_chain.clear();
            self.stock_chain_entries = 0;
            let n = self.stock.len();
            let all = self.stock.iter_mut().map(|(k, st)| {
                st.unsaved = false;
                (names.store_of(*k), names.product_of(*k), &*st)
            });
            StoredSeq::encode(n, all, 16 + n * 72)?
        } else {
            let mut n = 0;
            for k in &self.unsaved_stock {
                if let Some(st) = self.stock.get_mut(k) {
                    st.unsaved = false;
                    n += 1;
                }
            }
            let stock = &self.stock;
            let changed = self.unsaved_stock.iter().filter_map(|k| stock.get(k).map(|st| (names.store_of(*k), names.product_of(*k), st)));
            StoredSeq::encode(n, changed, 16 + n * 72)?
        };
        self.unsaved_stock.clear();
        let chain_before = self.stock_chain.clone();
        if !entries.is_empty() {
            self.stock_chain.push(self.next_offset);
            self.stock_chain_entries += entries.len();
        }
        Ok((entries, chain_before))
    }

    /// The state a snapshot holds. Fails only on windows or stock entries it holds encoded
    /// that do not decode.
    pub fn from_snapshot(kind: TopicKind, snap: PartSnapshot, names: &mut Interner) -> Result<PartState, String> {
        let mut st = PartState::new(kind, snap.partition);
        // The stored ids are hashes: keep hashing new ones the same way (the processor refuses
        // formats it does not know before it gets here).
        st.id_hash = crate::model::IdHash::of_format(snap.format).unwrap_or(crate::model::IdHash::Fnv1a);
        st.next_offset = snap.next_offset;
        st.max_event_ms = snap.max_event_ms;
        let persisted: BTreeMap<i64, i64> = snap.dedup_segments.into_iter().collect();
        st.dedup = snap.dedup.into_iter().map(|(b, ids)| (b, DedupBucket { ids: ids.into_iter().collect(), segment: persisted.get(&b).copied() })).collect();
        for (ws, s, p, agg) in snap.windows.into_items()? {
            st.windows.entry(ws).or_default().insert(names.key(&s, &p), agg);
        }
        st.qty_norm = snap.qty_norm.into_iter().map(|(p, n)| (names.intern(&p), n)).collect();
        st.price_norm = snap.price_norm.into_iter().map(|(p, n)| (names.intern(&p), n)).collect();
        st.pos = snap.pos.into_iter().map(|(s, r)| (names.intern(&s), r)).collect();
        st.thefts = snap
            .thefts
            .into_iter()
            .map(|(store, ts)| {
                let ts = ts.into_iter().map(|(at, product, event_id, flagged)| Theft { ts: at, product: names.intern(&product), event_id, flagged }).collect();
                (names.intern(&store), ts)
            })
            .collect();
        st.stock_chain_entries = snap.stock.len();
        // In chain order: a later entry of a key replaces the earlier one.
        st.stock = snap.stock.into_items()?.into_iter().map(|(s, p, v)| (names.key(&s, &p), v)).collect();
        st.stock_chain = snap.stock_segments;
        if st.stock_chain.is_empty() {
            // Held inline (a checkpoint of an earlier version): the next snapshot writes a base.
            st.stock_chain_entries = 0;
        }
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_window_keeps_one_pending_row_per_epoch() {
        let mut part = PartState::new(TopicKind::Sales, 0);
        let (mut a, mut b) = (WindowAgg::default(), WindowAgg::default());
        a.add(2, 1.5, Some(7));
        PartState::window_changed(&mut part.dirty_windows, part.flush_epoch, 0, 1, &mut a);
        b.add(1, 4.0, None);
        PartState::window_changed(&mut part.dirty_windows, part.flush_epoch, 0, 2, &mut b);
        a.add(3, 1.5, Some(8));
        PartState::window_changed(&mut part.dirty_windows, part.flush_epoch, 0, 1, &mut a);
        // One row per window, the first one's as of its latest change.
        assert_eq!(part.dirty_windows.len(), 2);
        assert_eq!(part.dirty_windows[0], DirtyWindow { window_start: 0, key: 1, units: 5, revenue: 7.5, transactions: 2, customers: 2 });
        assert_eq!((part.dirty_windows[1].key, part.dirty_windows[1].units), (2, 1));

        // A flush takes the rows and starts an epoch: the next change adds a row again.
        part.dirty_windows.clear();
        part.next_flush_epoch();
        a.add(1, 1.5, None);
        PartState::window_changed(&mut part.dirty_windows, part.flush_epoch, 0, 1, &mut a);
        assert_eq!(part.dirty_windows.len(), 1);
        assert_eq!((part.dirty_windows[0].key, part.dirty_windows[0].units, part.dirty_windows[0].transactions), (1, 6, 3));

        // A stale stamp that names this epoch (the counter wrapped around) but a slot of another
        // window adds a row rather than overwriting that window's.
        let mut c = WindowAgg { dirty: crate::model::DirtySlot { epoch: part.flush_epoch, slot: 0 }, ..Default::default() };
        c.add(9, 1.0, None);
        PartState::window_changed(&mut part.dirty_windows, part.flush_epoch, 300_000, 1, &mut c);
        assert_eq!(part.dirty_windows.len(), 2);
        assert_eq!((part.dirty_windows[0].units, part.dirty_windows[1].units), (6, 9));

        // Stock entries the same way: one row per entry and epoch, the latest.
        let (mut x, mut y) = (StockState::default(), StockState::default());
        let row = |key, on_hand| DirtyStock { key, on_hand, reorder_point: 1, velocity_per_hour: 0.5, days_of_cover: 2.0, stockout_risk: 0.1, updated_ms: 5 };
        PartState::stock_changed(&mut part.dirty_stock, part.flush_epoch, &mut x, row(1, 10));
        PartState::stock_changed(&mut part.dirty_stock, part.flush_epoch, &mut y, row(2, 20));
        PartState::stock_changed(&mut part.dirty_stock, part.flush_epoch, &mut x, row(1, 9));
        assert_eq!(part.dirty_stock, vec![row(1, 9), row(2, 20)]);

        // Epochs skip 0, the "never" stamp.
        part.flush_epoch = u32::MAX;
        part.next_flush_epoch();
        assert_eq!(part.flush_epoch, 1);
    }

    fn sample_snapshot() -> PartSnapshot {
        PartSnapshot {
            format: crate::model::IdHash::default().format(),
            topic: "retail-sales-transactions".into(),
            partition: 2,
            next_offset: 12_345,
            max_event_ms: 1_735_725_600_000,
            dedup: vec![(1_735_725_600_000, vec![u64::MAX, 7, 1 << 40])],
            dedup_segments: vec![(5_785_752, 12_000)],
            windows: vec![(
                1_735_725_600_000,
                "store_001".into(),
                "SKU000001".into(),
                WindowAgg { units: 3, revenue: 7.5, transactions: 2, customers: smallvec::smallvec![1, 99], dirty: Default::default() },
            )]
            .into(),
            qty_norm: vec![("SKU000001".into(), Norm { n: 4, mean: 1.5, mad: 0.25 })],
            price_norm: vec![],
            pos: vec![("store_001".into(), PosRun { signature: 42, count: 3 })],
            stock: vec![("store_001".into(), "SKU000001".into(), StockState { on_hand: -2, known: true, mean: 0.1, ..Default::default() })].into(),
            stock_segments: vec![12_000, 12_500],
            thefts: vec![("store_001".into(), vec![(1_735_725_000_000, "SKU000001".into(), "id-1".into(), false)])],
        }
    }

    /// A live partition writes its windows and stock entries straight into postcard bytes; the
    /// checkpoint must be byte for byte what the derived layout gives for the same items, and
    /// restore to the same state.
    #[test]
    fn a_live_partitions_snapshot_is_written_in_the_derived_layout() {
        let mut names = Interner::default();
        let mut st = PartState::new(TopicKind::Sales, 3);
        st.next_offset = 77;
        for (i, ws) in [(0u64, 0i64), (1, 300_000), (2, 300_000)] {
            let mut agg = WindowAgg::default();
            agg.add(i as i32 + 1, 2.5, Some(i));
            agg.add(1, 1.0, Some(i + 10));
            agg.add(1, 1.0, Some(i + 20)); // a third customer: spilled to the heap
            st.windows.entry(ws).or_default().insert(names.key("store_001", &format!("SKU{i}")), agg);
        }
        for i in 0..3 {
            let k = names.key("store_002", &format!("SKU{i}"));
            st.stock.insert(k, StockState { on_hand: 10 - i, known: true, unsaved: true, ..Default::default() });
            st.unsaved_stock.push(k);
        }
        let windows: Vec<StoredWindow> = st
            .windows
            .iter()
            .flat_map(|(ws, m)| m.iter().map(|(k, a)| (*ws, names.store_of(*k).to_string(), names.product_of(*k).to_string(), a.clone())))
            .collect();
        let stock: Vec<StoredStock> = st
            .stock
            .iter()
            .map(|(k, s)| (names.store_of(*k).to_string(), names.product_of(*k).to_string(), StockState { unsaved: false, ..s.clone() }))
            .collect();

        let snap = st.to_snapshot(&names).unwrap();
        assert!(matches!(snap.windows, StoredSeq::Encoded { len: 3, .. }), "{:?}", snap.windows);
        assert_eq!(snap.windows, StoredSeq::Items(windows.clone()));
        assert_eq!(snap.stock, StoredSeq::Items(stock.clone()));
        let mut bytes = Vec::new();
        snap.encode(&mut bytes).unwrap();
        let derived = postcard::to_allocvec(&PartSnapshot { windows: windows.into(), stock: stock.into(), ..snap.clone() }).unwrap();
        assert_eq!(&bytes[BINARY_MAGIC.len()..], &derived[..]);

        let mut names2 = Interner::default();
        let back = PartState::from_snapshot(TopicKind::Sales, PartSnapshot::decode(&bytes).unwrap(), &mut names2).unwrap();
        assert_eq!(back.windows.values().map(|m| m.len()).sum::<usize>(), 3);
        let k = names2.key("store_001", "SKU2");
        assert_eq!((back.windows[&300_000][&k].units, back.windows[&300_000][&k].customers.len()), (5, 3));
        assert_eq!(back.stock[&names2.key("store_002", "SKU2")].on_hand, 8);

        // An iterator that yields another count than announced is an error, not a bad checkpoint.
        assert!(StoredSeq::<u32>::encode(3, [1u32, 2].into_iter(), 0).is_err());
    }

    #[test]
    fn snapshots_round_trip_binary_and_read_the_json_of_earlier_versions() {
        let snap = sample_snapshot();
        let mut bytes = Vec::new();
        snap.encode(&mut bytes).unwrap();
        assert_eq!(PartSnapshot::decode(&bytes).unwrap(), snap);
        let json = serde_json::to_vec(&snap).unwrap();
        assert!(bytes.len() < json.len(), "binary {} vs JSON {}", bytes.len(), json.len());
        assert_eq!(PartSnapshot::decode(&json).unwrap(), snap);
        // Damage is an error, never a panic or a silently different state.
        assert!(PartSnapshot::decode(&bytes[..bytes.len() - 3]).is_err());
        assert!(PartSnapshot::decode(b"garbage").is_err());
        assert!(PartSnapshot::decode(b"").is_err());
    }

    #[test]
    fn snapshots_of_the_binary_layout_before_dedup_segments_are_read() {
        let snap = sample_snapshot();
        #[derive(Serialize)]
        struct V1<'a> {
            format: u32,
            topic: &'a str,
            partition: i32,
            next_offset: i64,
            max_event_ms: i64,
            dedup: &'a [(i64, Vec<u64>)],
            windows: &'a StoredSeq<StoredWindow>,
            qty_norm: &'a [(String, Norm)],
            price_norm: &'a [(String, Norm)],
            pos: &'a [(String, PosRun)],
            stock: &'a StoredSeq<StoredStock>,
        }
        let v1 = V1 {
            format: snap.format,
            topic: &snap.topic,
            partition: snap.partition,
            next_offset: snap.next_offset,
            max_event_ms: snap.max_event_ms,
            dedup: &snap.dedup,
            windows: &snap.windows,
            qty_norm: &snap.qty_norm,
            price_norm: &snap.price_norm,
            pos: &snap.pos,
            stock: &snap.stock,
        };
        let mut bytes = BINARY_MAGIC_V1.to_vec();
        postcard::to_io(&v1, &mut bytes).unwrap();
        assert_eq!(PartSnapshot::decode(&bytes).unwrap(), PartSnapshot { dedup_segments: vec![], stock_segments: vec![], thefts: vec![], ..snap });
    }

    #[test]
    fn snapshots_of_the_binary_layout_before_theft_bursts_are_read() {
        let snap = sample_snapshot();
        // The layout before: every field but `thefts`, in order.
        let v2 = (
            (snap.format, &snap.topic, snap.partition, snap.next_offset, snap.max_event_ms),
            (&snap.dedup, &snap.dedup_segments, &snap.windows, &snap.qty_norm, &snap.price_norm, &snap.pos, &snap.stock, &snap.stock_segments),
        );
        let mut bytes = BINARY_MAGIC_V2.to_vec();
        postcard::to_io(&v2, &mut bytes).unwrap();
        assert_eq!(PartSnapshot::decode(&bytes).unwrap(), PartSnapshot { thefts: vec![], ..snap });
    }

    #[test]
    fn dedup_objects_round_trip_and_reject_damage() {
        let ids = vec![0, 1, u64::MAX, 1 << 63, 0x0123_4567_89ab_cdef];
        let bytes = encode_dedup_ids(&ids);
        assert_eq!(decode_dedup_ids(&bytes).unwrap(), ids);
        assert_eq!(decode_dedup_ids(&encode_dedup_ids(&[])).unwrap(), Vec::<u64>::new());
        assert!(decode_dedup_ids(&bytes[..bytes.len() - 1]).is_err(), "cut short");
        assert!(decode_dedup_ids(&[&bytes[..], &[0u8; 8]].concat()).is_err(), "longer than its count");
        assert!(decode_dedup_ids(b"retail-stream-dedup/1\n").is_err());
        assert!(decode_dedup_ids(b"garbage").is_err());
    }

    /// A snapshot carries the ids of the buckets changed since the previous one; the others by
    /// the version of the object written for them, which restoring keeps.
    #[test]
    fn snapshots_carry_only_the_dedup_buckets_changed_since_the_last() {
        let names = Interner::default();
        let mut st = PartState::new(TopicKind::Sales, 0);
        let ids = |v: &[u64]| DedupBucket { ids: v.iter().copied().collect(), segment: None };
        st.dedup.insert(10, ids(&[1, 2]));
        st.dedup.insert(11, ids(&[3]));
        st.next_offset = 50;
        let first = st.to_snapshot(&names).unwrap();
        assert_eq!(first.dedup.iter().map(|(b, v)| (*b, v.len())).collect::<Vec<_>>(), vec![(10, 2), (11, 1)]);
        assert!(first.dedup_segments.is_empty());

        // Bucket 11 gains an id: only it travels again, bucket 10 by reference.
        let b11 = st.dedup.get_mut(&11).unwrap();
        b11.ids.insert(4);
        b11.segment = None;
        st.next_offset = 80;
        let second = st.to_snapshot(&names).unwrap();
        assert_eq!(second.dedup.iter().map(|(b, v)| (*b, v.len())).collect::<Vec<_>>(), vec![(11, 2)]);
        assert_eq!(second.dedup_segments, vec![(10, 50)]);
        let third = st.to_snapshot(&names).unwrap();
        assert!(third.dedup.is_empty());
        assert_eq!(third.dedup_segments, vec![(10, 50), (11, 80)]);

        // Restored with every bucket's ids loaded: nothing to rewrite until an id is added.
        let mut restored = third.clone();
        restored.dedup = vec![(10, vec![1, 2]), (11, vec![3, 4])];
        let mut names = Interner::default();
        let mut back = PartState::from_snapshot(TopicKind::Sales, restored, &mut names).unwrap();
        assert_eq!(back.dedup[&11].ids.len(), 2);
        let again = back.to_snapshot(&names).unwrap();
        assert!(again.dedup.is_empty());
        assert_eq!(again.dedup_segments, third.dedup_segments);
    }

    /// Stock travels as a base and then deltas of the keys changed since the previous snapshot;
    /// once the chain holds more than twice the live entries, the next snapshot is a new base.
    #[test]
    fn stock_snapshots_are_a_base_then_deltas_then_a_new_base() {
        let mut names = Interner::default();
        let mut st = PartState::new(TopicKind::Inventory, 1);
        let keys: Vec<Key> = (0..1500).map(|i| names.key("store_001", &format!("SKU{i}"))).collect();
        let change = |st: &mut PartState, ks: &[Key], on_hand: i32, offset: i64| {
            for k in ks {
                let e = st.stock.entry(*k).or_default();
                e.on_hand = on_hand;
                if !e.unsaved {
                    e.unsaved = true;
                    st.unsaved_stock.push(*k);
                }
            }
            st.next_offset = offset;
        };
        change(&mut st, &keys, 10, 100);
        let first = st.to_snapshot(&names).unwrap();
        assert_eq!((first.stock.len(), first.stock_segments.clone()), (1500, vec![]), "a base");
        change(&mut st, &keys[..100], 11, 200);
        let second = st.to_snapshot(&names).unwrap();
        assert_eq!((second.stock.len(), second.stock_segments.clone()), (100, vec![100]), "a delta of the changed keys");
        let quiet = st.to_snapshot(&names).unwrap();
        assert_eq!((quiet.stock.len(), quiet.stock_segments.clone()), (0, vec![100, 200]), "nothing changed: no object");
        change(&mut st, &keys[..1300], 12, 300);
        let third = st.to_snapshot(&names).unwrap();
        assert_eq!((third.stock.len(), third.stock_segments.clone()), (1300, vec![100, 200]), "1,600 in the chain + 1,300 ≤ 2 × 1,500: a delta still");
        change(&mut st, &keys[..200], 13, 400);
        let fourth = st.to_snapshot(&names).unwrap();
        assert_eq!((fourth.stock.len(), fourth.stock_segments.clone()), (1500, vec![]), "2,900 + 200 > 3,000: a new base");

        // Restored from the chain (entries in chain order), the newest value of each key wins,
        // and the next snapshot extends the chain.
        let chain: Vec<_> = [first.stock, second.stock, third.stock.clone()].into_iter().flat_map(|s| s.into_items().unwrap()).collect();
        let restored = PartSnapshot { stock: chain.into(), stock_segments: vec![100, 200, 300], ..third };
        let mut names2 = Interner::default();
        let mut back = PartState::from_snapshot(TopicKind::Inventory, restored, &mut names2).unwrap();
        assert_eq!(back.stock.len(), 1500);
        let on_hand = |names: &mut Interner, back: &PartState, i: usize| back.stock[&names.key("store_001", &format!("SKU{i}"))].on_hand;
        assert_eq!((on_hand(&mut names2, &back, 0), on_hand(&mut names2, &back, 1299), on_hand(&mut names2, &back, 1300)), (12, 12, 10));
        assert_eq!(back.stock_chain_entries, 2900);
        let k = names2.key("store_001", "SKU7");
        back.stock.get_mut(&k).unwrap().unsaved = true;
        back.unsaved_stock.push(k);
        back.next_offset = 500;
        let next = back.to_snapshot(&names2).unwrap();
        assert_eq!((next.stock.len(), next.stock_segments), (1, vec![100, 200, 300]), "2,900 + 1: a delta extending the restored chain");
    }

    #[test]
    fn stock_objects_round_trip_and_reject_damage() {
        let entries = sample_snapshot().stock;
        let bytes = encode_stock(&entries).unwrap();
        assert_eq!(StoredSeq::from(decode_stock(&bytes).unwrap()), entries);
        assert!(decode_stock(&bytes[..bytes.len() - 2]).is_err());
        assert!(decode_stock(b"garbage").is_err());
    }

    #[test]
    fn hourly_velocity_folds_gaps_as_zero_demand() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let mut s = StockState::default();
        let t0 = 1_735_725_600_000; // 10:00
        s.roll_to(t0, 0.5);
        s.hour_units += 10;
        // No hour completed yet: no rate, not the partial hour's units.
        assert_eq!((s.velocity(0.5, 0.0), s.velocity(0.5, 2.0)), (0.0, 0.0));
        s.roll_to(t0 + HOUR_MS, 0.5); // 11:00 → folds 10
        assert_eq!(s.hours, 1);
        // One hour of 10: 10/h; with two prior hours of nothing (decayed to one): 10 / 2.
        assert!(close(s.velocity(0.5, 0.0), 10.0) && close(s.velocity(0.5, 2.0), 5.0), "{s:?}");
        s.hour_units += 6;
        s.roll_to(t0 + 3 * HOUR_MS, 0.5); // 13:00 → folds 6 then an empty 12:00 hour
                                          // Hours 10, 6, 0 weighted 1/4, 1/2, 1: (2.5 + 3 + 0) / 1.75.
        assert_eq!(s.hours, 3);
        assert!(close(s.velocity(0.5, 0.0), 5.5 / 1.75), "{}", s.velocity(0.5, 0.0));
        assert!(s.hourly_variance(0.5, 0.0) > s.velocity(0.5, 0.0), "10, 6, 0 vary more than Poisson");
        // A slow mover: one unit in its first hour, then nothing for a day. With the default
        // memory (α = 0.01) and prior (24 h), about one unit a day, not one an hour.
        let mut slow = StockState::default();
        slow.roll_to(t0, 0.01);
        slow.hour_units += 1;
        slow.roll_to(t0 + HOUR_MS, 0.01);
        assert!((0.035..0.045).contains(&slow.velocity(0.01, 24.0)), "{}", slow.velocity(0.01, 24.0));
        slow.roll_to(t0 + 25 * HOUR_MS, 0.01);
        assert!((0.015..0.025).contains(&slow.velocity(0.01, 24.0)), "{}", slow.velocity(0.01, 24.0));
        // An older event does not move the bucket back.
        s.roll_to(t0, 0.5);
        assert_eq!(s.hour_ms, t0 + 3 * HOUR_MS);
    }
}
