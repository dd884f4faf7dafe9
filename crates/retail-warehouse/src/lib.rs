//! The warehouse: the seed's ClickHouse star schema plus the real-time tables the stream fills.
//!
//! Two implementations behind one trait, chosen by URL:
//! - `embedded` (default): DataFusion over Parquet in the lake, plus recently appended rows;
//! - `clickhouse://host:8123` or `http(s)://host:8123`: ClickHouse over its HTTP interface.
//!
//! Every load is idempotent: rows carry a natural key, and loading the same rows twice leaves
//! the tables as if loaded once.

use async_trait::async_trait;
use chrono::NaiveDate;
use retail_core::{
    AnomalyFlag, FactInventory, FactSale, Product, RestockAlert, SalesWindow, StockLevel, Store,
};
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
    async fn load_dimensions(&self, stores: &[Store], products: &[Product], dates: &[DateRow]) -> Result<(), WarehouseError>;

    /// `fact_sales`, keyed by `sale_id`.
    async fn insert_sales(&self, rows: &[FactSale]) -> Result<(), WarehouseError>;
    /// `fact_inventory`, keyed by `inventory_id`.
    async fn insert_inventory(&self, rows: &[FactInventory]) -> Result<(), WarehouseError>;
    /// `rt_sales_5min`, keyed by (store_id, product_id, window_start); a later row replaces.
    async fn upsert_sales_windows(&self, rows: &[SalesWindow]) -> Result<(), WarehouseError>;
    /// `rt_stock`, keyed by (store_id, product_id); the latest `updated_at` wins.
    async fn upsert_stock(&self, rows: &[StockLevel]) -> Result<(), WarehouseError>;
    /// `rt_restock_alerts`, keyed by `alert_id`.
    async fn insert_alerts(&self, rows: &[RestockAlert]) -> Result<(), WarehouseError>;
    /// `rt_anomalies`, keyed by `anomaly_id`.
    async fn insert_anomalies(&self, rows: &[AnomalyFlag]) -> Result<(), WarehouseError>;

    /// Make everything inserted so far durable (and visible to queries).
    async fn flush(&self) -> Result<(), WarehouseError>;

    /// Run SQL (the portable subset both backends accept) and return all rows.
    async fn query(&self, sql: &str) -> Result<QueryResult, WarehouseError>;
}
