//! Typed rows → Arrow record batches of the schema's tables. Both backends insert through here:
//! the embedded engine keeps the batches, ClickHouse receives them as JSONEachRow.

use crate::schema::{self, Table};
use crate::{DateRow, WarehouseError};
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::record_batch::RecordBatch;
use retail_core::{AnomalyFlag, FactInventory, FactSale, Product, RestockAlert, SalesWindow, StockLevel, Store};
use serde::{Deserialize, Serialize};

/// One feature value (`feature_store`), written by the feature-engineering job.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FeatureValue {
    /// e.g. `demand_v1`.
    pub feature_set: String,
    /// e.g. `store_001|SKU123`.
    pub entity_id: String,
    pub feature_date: NaiveDate,
    pub feature_name: String,
    pub value: f64,
    pub computed_at: DateTime<Utc>,
}

/// One model output (`predictions`), written by batch prediction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Prediction {
    pub model: String,
    pub model_version: u32,
    pub store_id: String,
    pub product_id: String,
    pub target_date: NaiveDate,
    pub predicted_units: f64,
    pub lower_units: f64,
    pub upper_units: f64,
    pub reorder_qty: f64,
    pub created_at: DateTime<Utc>,
}

/// Round to cents: Decimal(10,2) columns parse the decimal text, so 59.979999… must become 59.98.
pub fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[derive(Serialize)]
struct StoreRow<'a> {
    store_key: &'a str,
    store_name: &'a str,
    region: &'a str,
    city: &'a str,
    format: &'a str,
    size_sqm: u32,
    opens_hour: u8,
    closes_hour: u8,
}

#[derive(Serialize)]
struct ProductRow<'a> {
    product_key: &'a str,
    sku: &'a str,
    product_name: &'a str,
    category: &'a str,
    sub_category: &'a str,
    brand: &'a str,
    supplier: &'a str,
    unit_cost: f64,
    list_price: f64,
    shelf_life_days: i32,
    pack_size: i32,
    lead_time_days: f64,
    lead_time_sd_days: f64,
}

#[derive(Serialize)]
struct DateOut<'a> {
    date_key: NaiveDate,
    full_date: NaiveDate,
    day_of_week: u8,
    month: u8,
    quarter: u8,
    year: u16,
    is_holiday: u8,
    holiday_name: &'a str,
    is_weekend: u8,
}

#[derive(Serialize)]
struct AlertRow<'a> {
    alert_id: &'a str,
    store_id: &'a str,
    product_id: &'a str,
    status: retail_core::AlertStatus,
    severity: retail_core::Severity,
    on_hand: i32,
    reorder_point: i32,
    velocity_per_hour: f64,
    days_of_cover: f64,
    stockout_risk: f64,
    suggested_order_qty: i32,
    reason: &'a str,
    event_time: DateTime<Utc>,
}

fn to_batch<S: Serialize>(table: &Table, rows: &[S]) -> Result<RecordBatch, WarehouseError> {
    retail_lake::rows_to_batch(table.arrow_schema(), rows)
        .map_err(|e| WarehouseError::Other(format!("cannot convert rows for {}: {e}", table.name)))
}

pub fn stores_batch(rows: &[Store]) -> Result<RecordBatch, WarehouseError> {
    let out: Vec<StoreRow> = rows
        .iter()
        .map(|s| StoreRow {
            store_key: &s.store_id,
            store_name: &s.name,
            region: &s.region,
            city: &s.city,
            format: &s.format,
            size_sqm: s.size_sqm,
            opens_hour: s.opens_hour,
            closes_hour: s.closes_hour,
        })
        .collect();
    to_batch(&schema::DIM_STORE, &out)
}

pub fn products_batch(rows: &[Product]) -> Result<RecordBatch, WarehouseError> {
    let out: Vec<ProductRow> = rows
        .iter()
        .map(|p| ProductRow {
            product_key: &p.product_id,
            sku: &p.sku,
            product_name: &p.product_name,
            category: &p.category,
            sub_category: &p.sub_category,
            brand: &p.brand,
            supplier: &p.supplier,
            unit_cost: cents(p.unit_cost),
            list_price: cents(p.list_price),
            shelf_life_days: p.shelf_life_days,
            pack_size: p.pack_size,
            lead_time_days: p.lead_time_days,
            lead_time_sd_days: p.lead_time_sd_days,
        })
        .collect();
    to_batch(&schema::DIM_PRODUCT, &out)
}

pub fn dates_batch(rows: &[DateRow]) -> Result<RecordBatch, WarehouseError> {
    let out: Vec<DateOut> = rows
        .iter()
        .map(|d| DateOut {
            date_key: d.date_key,
            full_date: d.date_key,
            day_of_week: d.day_of_week,
            month: d.month,
            quarter: d.quarter,
            year: d.year,
            is_holiday: d.is_holiday as u8,
            holiday_name: d.holiday_name.as_deref().unwrap_or(""),
            is_weekend: d.is_weekend as u8,
        })
        .collect();
    to_batch(&schema::DIM_DATE, &out)
}

pub fn sales_batch(rows: &[FactSale]) -> Result<RecordBatch, WarehouseError> {
    let out: Vec<FactSale> = rows
        .iter()
        .map(|r| FactSale { revenue: cents(r.revenue), cost: cents(r.cost), profit: cents(r.profit), ..r.clone() })
        .collect();
    to_batch(&schema::FACT_SALES, &out)
}

pub fn inventory_batch(rows: &[FactInventory]) -> Result<RecordBatch, WarehouseError> {
    to_batch(&schema::FACT_INVENTORY, rows)
}

pub fn windows_batch(rows: &[SalesWindow]) -> Result<RecordBatch, WarehouseError> {
    to_batch(&schema::RT_SALES_5MIN, rows)
}

pub fn stock_batch(rows: &[StockLevel]) -> Result<RecordBatch, WarehouseError> {
    to_batch(&schema::RT_STOCK, rows)
}

pub fn alerts_batch(rows: &[RestockAlert]) -> Result<RecordBatch, WarehouseError> {
    let out: Vec<AlertRow> = rows
        .iter()
        .map(|a| AlertRow {
            alert_id: &a.alert_id,
            store_id: &a.store_id,
            product_id: &a.product_id,
            status: a.status,
            severity: a.severity,
            on_hand: a.on_hand,
            reorder_point: a.reorder_point,
            velocity_per_hour: a.velocity_per_hour,
            days_of_cover: a.days_of_cover,
            stockout_risk: a.stockout_risk,
            suggested_order_qty: a.suggested_order_qty,
            reason: &a.reason,
            event_time: a.timestamp,
        })
        .collect();
    to_batch(&schema::RT_RESTOCK_ALERTS, &out)
}

pub fn anomalies_batch(rows: &[AnomalyFlag]) -> Result<RecordBatch, WarehouseError> {
    to_batch(&schema::RT_ANOMALIES, rows)
}

pub fn features_batch(rows: &[FeatureValue]) -> Result<RecordBatch, WarehouseError> {
    to_batch(&schema::FEATURE_STORE, rows)
}

pub fn predictions_batch(rows: &[Prediction]) -> Result<RecordBatch, WarehouseError> {
    to_batch(&schema::PREDICTIONS, rows)
}
