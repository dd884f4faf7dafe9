//! Object keys of the seed's lake layout, in one place.

use chrono::{Datelike, NaiveDate};
use retail_core::Event;

/// The three raw folders of the seed: `raw-data/sales`, `raw-data/inventory`, `raw-data/events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RawKind {
    Sales,
    Inventory,
    /// Price changes, customer events and restock alerts, one table with a JSON payload.
    Events,
}

impl RawKind {
    pub const ALL: [RawKind; 3] = [RawKind::Sales, RawKind::Inventory, RawKind::Events];

    pub fn dir(self) -> &'static str {
        match self {
            RawKind::Sales => "sales",
            RawKind::Inventory => "inventory",
            RawKind::Events => "events",
        }
    }

    pub fn of(event: &Event) -> RawKind {
        match event {
            Event::Sale(_) => RawKind::Sales,
            Event::Inventory(_) => RawKind::Inventory,
            Event::Price(_) | Event::Customer(_) | Event::Alert(_) => RawKind::Events,
        }
    }
}

/// `raw-data/<kind>/year=YYYY/month=MM/day=DD/` (Hive-style partitions, as the seed shows).
pub fn raw_day_prefix(kind: RawKind, day: NaiveDate) -> String {
    format!("raw-data/{}/year={:04}/month={:02}/day={:02}/", kind.dir(), day.year(), day.month(), day.day())
}

/// The day a raw key belongs to, parsed from its `year=/month=/day=` segments.
pub fn day_of_key(key: &str) -> Option<NaiveDate> {
    let mut y = None;
    let mut m = None;
    let mut d = None;
    for seg in key.split('/') {
        if let Some(v) = seg.strip_prefix("year=") {
            y = v.parse().ok();
        } else if let Some(v) = seg.strip_prefix("month=") {
            m = v.parse().ok();
        } else if let Some(v) = seg.strip_prefix("day=") {
            d = v.parse().ok();
        }
    }
    NaiveDate::from_ymd_opt(y?, m?, d?)
}

/// `models/<model>/v<N>` (no trailing slash), e.g. `models/demand-forecast/v1`.
pub fn model_prefix(model: &str, version: u32) -> String {
    format!("models/{model}/v{version}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureSet {
    Training,
    Inference,
}

/// `features/training/<name>/` or `features/inference/<name>/`.
pub fn features_prefix(set: FeatureSet, name: &str) -> String {
    let s = match set {
        FeatureSet::Training => "training",
        FeatureSet::Inference => "inference",
    };
    format!("features/{s}/{name}/")
}

/// A batch id made safe for an object name. Ids that are already safe are kept verbatim (so a
/// human can find `part-retail-sales-transactions-0-100-199.parquet`); anything else is replaced
/// and suffixed with a hash of the original, so two different ids never map to one name.
pub fn safe_batch_id(batch_id: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    if !batch_id.is_empty() && batch_id.len() <= 120 && batch_id.chars().all(ok) && !batch_id.starts_with('.') {
        return batch_id.to_string();
    }
    let cleaned: String = batch_id.chars().take(80).map(|c| if ok(c) { c } else { '_' }).collect();
    format!("{}-{:016x}", cleaned.trim_start_matches('.'), fnv1a(batch_id.as_bytes()))
}

/// FNV-1a: a stable (across builds and platforms) 64-bit hash for names. Not for security.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
