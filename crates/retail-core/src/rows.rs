//! Row types shared by the stream processor, the lake and the warehouse: catalog dimensions,
//! facts, and what the processor derives (windows, stock, anomalies, dead letters).
//! Defined here so producers and sinks agree on one shape without depending on each other.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// `dim_store`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Store {
    /// `store_001` … `store_1000`.
    pub store_id: String,
    pub name: String,
    pub region: String,
    pub city: String,
    /// hypermarket | supermarket | convenience | express
    pub format: String,
    pub size_sqm: u32,
    /// Local opening hour (0..24) and closing hour (exclusive).
    pub opens_hour: u8,
    pub closes_hour: u8,
}

/// `dim_product`. `product_id` is the SKU and the warehouse's `product_key`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Product {
    pub product_id: String,
    pub sku: String,
    pub product_name: String,
    pub category: String,
    pub sub_category: String,
    pub brand: String,
    pub supplier: String,
    pub unit_cost: f64,
    pub list_price: f64,
    pub shelf_life_days: i32,
    pub pack_size: i32,
    /// Supplier lead time: mean and standard deviation, in days.
    pub lead_time_days: f64,
    pub lead_time_sd_days: f64,
}

/// `fact_sales`: the seed's columns, plus the event's own time and price detail.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FactSale {
    pub sale_id: String,
    pub date_key: NaiveDate,
    pub product_key: String,
    pub store_key: String,
    pub quantity: i32,
    pub revenue: f64,
    pub cost: f64,
    pub profit: f64,
    pub unit_price: f64,
    pub discount_pct: f64,
    pub basket_id: String,
    pub customer_id: Option<String>,
    pub payment_method: String,
    pub event_time: DateTime<Utc>,
}

/// `fact_inventory`: one row per inventory update (a movement and the stock after it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FactInventory {
    pub inventory_id: String,
    pub date_key: NaiveDate,
    pub product_key: String,
    pub store_key: String,
    pub quantity_on_hand: i32,
    pub reorder_point: i32,
    pub safety_stock: i32,
    pub quantity_change: i32,
    pub reason: String,
    pub event_time: DateTime<Utc>,
}

/// `rt_sales_5min`: one closed (or updated) 5-minute event-time window for a store×SKU.
/// Keyed by (store_id, product_id, window_start); a later emission for the same key replaces it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SalesWindow {
    pub store_id: String,
    pub product_id: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub units: i64,
    pub revenue: f64,
    pub transactions: i64,
    pub avg_price: f64,
    pub distinct_customers: i64,
}

/// `rt_stock`: current state of a store×SKU. Keyed by (store_id, product_id); latest `updated_at` wins.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StockLevel {
    pub store_id: String,
    pub product_id: String,
    pub on_hand: i32,
    pub reorder_point: i32,
    /// Units per hour, exponentially smoothed.
    pub velocity_per_hour: f64,
    pub days_of_cover: f64,
    /// Probability in [0,1] of running out before a delivery ordered now could arrive.
    pub stockout_risk: f64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    QuantityOutlier,
    PriceOutlier,
    NegativeStock,
    StockMismatch,
    StuckPos,
    UnexplainedStockDrop,
    DemandSpike,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::QuantityOutlier => "quantity_outlier",
            AnomalyKind::PriceOutlier => "price_outlier",
            AnomalyKind::NegativeStock => "negative_stock",
            AnomalyKind::StockMismatch => "stock_mismatch",
            AnomalyKind::StuckPos => "stuck_pos",
            AnomalyKind::UnexplainedStockDrop => "unexplained_stock_drop",
            AnomalyKind::DemandSpike => "demand_spike",
        }
    }
}

/// `rt_anomalies`: an anomaly flagged by the stream processor. Keyed by `anomaly_id`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AnomalyFlag {
    pub anomaly_id: String,
    pub store_id: String,
    pub product_id: String,
    pub kind: AnomalyKind,
    /// How far from normal (e.g. a robust z-score); larger is more anomalous.
    pub score: f64,
    pub detail: String,
    /// The event that triggered the flag, when there is one.
    pub event_id: Option<String>,
    pub event_time: DateTime<Utc>,
}

/// A record the processor could not accept, with every reason, for `retail-dead-letter`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    /// The original bytes: verbatim when they are valid UTF-8 (`original_encoding = "utf8"`),
    /// else hex (`original_encoding = "hex"`), so nothing is lost either way.
    pub original: String,
    pub original_encoding: String,
    pub reasons: Vec<String>,
    pub received_at: DateTime<Utc>,
}
