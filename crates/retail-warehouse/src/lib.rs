//! The warehouse: the seed's ClickHouse star schema plus the real-time tables the stream fills.
//!
//! Two implementations behind one trait, chosen by URL:
//! - `embedded` (default): DataFusion over Parquet in the lake, plus recently appended rows;
//! - `clickhouse://host:8123` or `http(s)://host:8123`: ClickHouse over its HTTP interface.
//!
//! Every load is idempotent: rows carry a natural key, and loading the same rows twice leaves
//! the tables as if loaded once.

pub mod calendar;
pub mod clickhouse;
pub mod embedded;
mod hash_table;
pub mod queries;
pub mod result;
mod rollup;
mod row_hash;
pub mod rows;
pub mod schema;

pub use calendar::{dim_date, HolidayCalendar};
pub use rows::{
    inventory_facts_from_raw, sales_facts_from_raw, FeatureValue, InventoryFact, InventoryFacts, Prediction, SaleFact, SalesFacts, SalesWindows, StockLevels,
    StockRow, WindowRow,
};

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
/// The batch type of the `*_batch` methods (re-exported so callers need no Arrow dependency).
pub use datafusion::arrow::record_batch::RecordBatch;
use retail_core::{AnomalyFlag, FactInventory, FactSale, Product, RestockAlert, SalesWindow, StockLevel, Store};
use serde::{Deserialize, Serialize};

/// `dim_date`: one row per calendar day.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DateRow {
    pub date_key: NaiveDate,
    pub day_of_week: u8,
    pub month: u8,
    pub quarter: u8,
    pub year: u16,
    pub is_holiday: bool,
    pub holiday_name: Option<String>,
    pub is_weekend: bool,
}

/// The result of a query: column names and rows of JSON values (numbers, strings, null).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("warehouse URL `{url}` not understood: {reason}")]
    BadUrl { url: String, reason: String },
    /// The server could not be reached or timed out; trying again later may succeed.
    #[error("warehouse unavailable (retryable): {0}")]
    Unavailable(String),
    #[error("query failed: {0}")]
    Query(String),
    #[error("warehouse error: {0}")]
    Other(String),
}

impl WarehouseError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, WarehouseError::Unavailable(_))
    }
}

#[async_trait]
pub trait Warehouse: Send + Sync {
    /// `embedded` or `clickhouse`.
    fn backend(&self) -> &'static str;

    /// Create or migrate every table. Idempotent.
    async fn init(&self) -> Result<(), WarehouseError>;

    /// Replace the dimension tables' contents (`dim_store`, `dim_product`, `dim_date`).
    /// An empty slice leaves that table as it is (so the calendar can be reloaded alone).
    async fn load_dimensions(&self, stores: &[Store], products: &[Product], dates: &[DateRow]) -> Result<(), WarehouseError>;

    /// `fact_sales`, keyed by `sale_id`.
    async fn insert_sales(&self, rows: &[FactSale]) -> Result<(), WarehouseError> {
        self.insert_sales_batch(rows::sales_batch(rows)?).await
    }
    /// `fact_sales` rows already in Arrow form (`rows::SalesFacts`, the table's schema).
    async fn insert_sales_batch(&self, batch: RecordBatch) -> Result<(), WarehouseError>;
    /// `fact_inventory`, keyed by `inventory_id`.
    async fn insert_inventory(&self, rows: &[FactInventory]) -> Result<(), WarehouseError> {
        self.insert_inventory_batch(rows::inventory_batch(rows)?).await
    }
    /// `fact_inventory` rows already in Arrow form (`rows::InventoryFacts`).
    async fn insert_inventory_batch(&self, batch: RecordBatch) -> Result<(), WarehouseError>;
    /// `rt_sales_5min`, keyed by (store_id, product_id, window_start); a later row replaces.
    async fn upsert_sales_windows(&self, rows: &[SalesWindow]) -> Result<(), WarehouseError> {
        self.upsert_sales_windows_batch(rows::windows_batch(rows)?).await
    }
    /// `rt_sales_5min` rows already in Arrow form (`rows::SalesWindows`).
    async fn upsert_sales_windows_batch(&self, batch: RecordBatch) -> Result<(), WarehouseError>;
    /// `rt_stock`, keyed by (store_id, product_id); the latest `updated_at` wins.
    async fn upsert_stock(&self, rows: &[StockLevel]) -> Result<(), WarehouseError> {
        self.upsert_stock_batch(rows::stock_batch(rows)?).await
    }
    /// `rt_stock` rows already in Arrow form (`rows::StockLevels`).
    async fn upsert_stock_batch(&self, batch: RecordBatch) -> Result<(), WarehouseError>;
    /// `rt_restock_alerts`, keyed by `alert_id`; a re-emitted alert (new status) replaces.
    async fn insert_alerts(&self, rows: &[RestockAlert]) -> Result<(), WarehouseError>;
    /// `rt_anomalies`, keyed by `anomaly_id`.
    async fn insert_anomalies(&self, rows: &[AnomalyFlag]) -> Result<(), WarehouseError>;

    /// `feature_store`, keyed by (feature_set, entity_id, feature_date, feature_name); latest `computed_at` wins.
    async fn upsert_features(&self, rows: &[FeatureValue]) -> Result<(), WarehouseError>;
    /// `predictions`, keyed by (model, model_version, store_id, product_id, target_date); latest `created_at` wins.
    async fn upsert_predictions(&self, rows: &[Prediction]) -> Result<(), WarehouseError>;

    /// Make everything inserted so far durable (and visible to queries).
    async fn flush(&self) -> Result<(), WarehouseError>;

    /// Make the rows inserted so far into `tables` durable, ahead of a `flush` (which still
    /// covers everything): a writer spreads the work of its big tables this way. Default: a
    /// full `flush`.
    async fn flush_tables(&self, tables: &[&schema::Table]) -> Result<(), WarehouseError> {
        let _ = tables;
        self.flush().await
    }

    /// Run SQL (the portable subset both backends accept) and return all rows.
    async fn query(&self, sql: &str) -> Result<QueryResult, WarehouseError>;
}

/// How to reach and authenticate with the warehouse. Embedded ignores all but `holidays`.
#[derive(Clone, Debug)]
pub struct WarehouseOptions {
    /// ClickHouse user (`default` when empty); a `user:password@` in the URL takes precedence.
    pub user: String,
    pub password: String,
    /// ClickHouse database, created by `init` (`retail` when empty).
    pub database: String,
    /// Per-request timeout.
    pub timeout: std::time::Duration,
    /// Embedded only: how stale a query's snapshot may be while rows keep arriving (0 = every
    /// query sees every insert). A live dashboard over a busy stream sets about a second.
    pub embedded_max_staleness: std::time::Duration,
    /// Embedded only: how long a fact part absorbed by a merge stays readable before it is
    /// deleted, for readers (a `retail query` in another process) that listed it just before.
    pub embedded_part_grace: std::time::Duration,
}

impl Default for WarehouseOptions {
    fn default() -> Self {
        WarehouseOptions {
            user: "default".into(),
            password: String::new(),
            database: "retail".into(),
            timeout: std::time::Duration::from_secs(30),
            embedded_max_staleness: std::time::Duration::ZERO,
            embedded_part_grace: embedded::OBSOLETE_GRACE,
        }
    }
}

/// Open the warehouse a URL names:
/// - `embedded` — DataFusion in this process; its tables live in `lake` under `warehouse/`
///   (durable), or only in memory when `lake` is `None` (tests, throw-away runs);
/// - `clickhouse://host:8123`, `http://host:8123` — ClickHouse over HTTP;
///   `clickhouses://host:8443` or `https://…` — over TLS. `user:password@` and `?database=` may
///   be given in the URL.
///
/// Embedded loads its durable state here; ClickHouse is contacted lazily (the first call fails
/// with a one-line `Unavailable` error naming the URL when the server is down).
pub async fn open(url: &str, options: &WarehouseOptions, lake: Option<retail_lake::Lake>) -> Result<Arc<dyn Warehouse>, WarehouseError> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    match (url, scheme) {
        ("embedded", _) | (_, Some("embedded")) => {
            let wh = embedded::EmbeddedWarehouse::open_with_staleness(lake, options.embedded_max_staleness).await?;
            Ok(Arc::new(wh.with_part_grace(options.embedded_part_grace)))
        }
        (_, Some("clickhouse" | "clickhouses" | "http" | "https")) => Ok(Arc::new(clickhouse::ClickHouseWarehouse::new(url, options)?)),
        _ => Err(WarehouseError::BadUrl {
            url: url.to_string(),
            reason: "expected `embedded`, clickhouse://host:8123, http(s)://host:8123 or clickhouses://host:8443".into(),
        }),
    }
}
