//! Typed rows → Arrow record batches of the schema's tables. Both backends insert through here:
//! the embedded engine keeps the batches, ClickHouse receives them as JSONEachRow.

use crate::schema::{self, Table};
use crate::{DateRow, WarehouseError};
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{
    ArrayRef, AsArray, Date32Array, Date32Builder, Decimal128Array, Float64Builder, Int32Array, Int32Builder, Int64Builder, StringArray, StringBuilder,
    TimestampSecondArray,
};
use datafusion::arrow::datatypes::{DataType, Date32Type, SchemaRef, TimestampMicrosecondType};
use datafusion::arrow::record_batch::RecordBatch;
use retail_core::{AnomalyFlag, FactInventory, FactSale, Product, RestockAlert, SalesWindow, StockLevel, Store};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
    retail_lake::rows_to_batch(table.arrow_schema(), rows).map_err(|e| WarehouseError::Other(format!("cannot convert rows for {}: {e}", table.name)))
}

// The hot tables (facts, windows, stock) are built with Arrow builders directly rather than
// through serde + arrow-json, which formats every timestamp and decimal as text and parses it
// back. The result is the same batch; the tests below check it against the serde path.

/// A `Decimal(·,2)` value: what the serde path stores for `cents(x)` (its text, parsed), and the
/// same error when it does not fit the precision (or is not finite).
fn money_cents(table: &Table, column: &str, x: f64) -> Result<i128, WarehouseError> {
    let cents = (x * 100.0).round();
    // Decimal(10,2) holds up to 10 digits; the larger Decimal(18,2) is never built from rows.
    if cents.is_finite() && cents.abs() < 1e10 {
        Ok(cents as i128)
    } else {
        Err(WarehouseError::Other(format!("cannot convert rows for {}: {column} = {x} does not fit Decimal(10, 2)", table.name)))
    }
}

fn decimals(schema: &SchemaRef, column: usize, values: Vec<i128>) -> Result<ArrayRef, WarehouseError> {
    // money() produces Decimal(10,2) values; any other column type is a bug here, not data.
    if *schema.field(column).data_type() != DataType::Decimal128(10, 2) {
        return Err(WarehouseError::Other(format!("column {} is not Decimal(10, 2)", schema.field(column).name())));
    }
    let array = Decimal128Array::from(values).with_precision_and_scale(10, 2).map_err(|e| WarehouseError::Other(e.to_string()))?;
    Ok(Arc::new(array))
}

/// Whole seconds since the epoch (floor, as the serde path's RFC 3339 parse gives), with the
/// column's timezone.
fn seconds(schema: &SchemaRef, column: usize, values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampSecondArray::from(values).with_data_type(schema.field(column).data_type().clone()))
}

fn assemble(table: &Table, schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch, WarehouseError> {
    RecordBatch::try_new(schema, columns).map_err(|e| WarehouseError::Other(format!("cannot convert rows for {}: {e}", table.name)))
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

use retail_lake::builders::{renew_primitive, renew_strings, renew_vec};

/// One `fact_sales` row, borrowed from wherever its values live (an event, a `FactSale`):
/// what [`SalesFacts::push`] takes, so building a batch allocates nothing per row.
#[derive(Clone, Copy, Debug)]
pub struct SaleFact<'a> {
    pub sale_id: &'a str,
    pub date_key: NaiveDate,
    pub product_key: &'a str,
    pub store_key: &'a str,
    pub quantity: i32,
    pub revenue: f64,
    pub cost: f64,
    pub profit: f64,
    pub unit_price: f64,
    pub discount_pct: f64,
    pub basket_id: &'a str,
    pub customer_id: Option<&'a str>,
    pub payment_method: &'a str,
    pub event_time: DateTime<Utc>,
}

impl<'a> From<&'a FactSale> for SaleFact<'a> {
    fn from(r: &'a FactSale) -> Self {
        SaleFact {
            sale_id: &r.sale_id,
            date_key: r.date_key,
            product_key: &r.product_key,
            store_key: &r.store_key,
            quantity: r.quantity,
            revenue: r.revenue,
            cost: r.cost,
            profit: r.profit,
            unit_price: r.unit_price,
            discount_pct: r.discount_pct,
            basket_id: &r.basket_id,
            customer_id: r.customer_id.as_deref(),
            payment_method: &r.payment_method,
            event_time: r.event_time,
        }
    }
}

/// `fact_sales` rows appended column by column: the stream processor fills it straight from
/// the events (no row structs, no string copies per row), a sink task turns it into a batch.
#[derive(Default)]
pub struct SalesFacts {
    sale_id: StringBuilder,
    date_key: Date32Builder,
    product_key: StringBuilder,
    store_key: StringBuilder,
    quantity: Int32Builder,
    /// revenue, cost, profit: checked against the Decimal(10,2) range in `finish`.
    money: Vec<[f64; 3]>,
    unit_price: Float64Builder,
    discount_pct: Float64Builder,
    basket_id: StringBuilder,
    customer_id: StringBuilder,
    payment_method: StringBuilder,
    event_time: Vec<i64>,
}

impl std::fmt::Debug for SalesFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesFacts").field("rows", &self.len()).finish()
    }
}

impl SalesFacts {
    pub fn len(&self) -> usize {
        self.event_time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.event_time.is_empty()
    }

    pub fn push(&mut self, r: SaleFact<'_>) {
        self.sale_id.append_value(r.sale_id);
        self.date_key.append_value(Date32Type::from_naive_date(r.date_key));
        self.product_key.append_value(r.product_key);
        self.store_key.append_value(r.store_key);
        self.quantity.append_value(r.quantity);
        self.money.push([r.revenue, r.cost, r.profit]);
        self.unit_price.append_value(r.unit_price);
        self.discount_pct.append_value(r.discount_pct);
        self.basket_id.append_value(r.basket_id);
        self.customer_id.append_option(r.customer_id);
        self.payment_method.append_value(r.payment_method);
        self.event_time.push(r.event_time.timestamp());
    }

    /// The rows so far as a batch of `fact_sales`; the builder is empty afterwards (also when
    /// a money value does not fit its column, which is the error).
    pub fn finish(&mut self) -> Result<RecordBatch, WarehouseError> {
        let table = &schema::FACT_SALES;
        let schema = table.arrow_schema();
        let money = renew_vec(&mut self.money);
        let mut revenue = Vec::with_capacity(money.len());
        let mut cost = Vec::with_capacity(money.len());
        let mut profit = Vec::with_capacity(money.len());
        let mut failed = None;
        for [r, c, p] in money {
            match (money_cents(table, "revenue", r), money_cents(table, "cost", c), money_cents(table, "profit", p)) {
                (Ok(r), Ok(c), Ok(p)) => {
                    revenue.push(r);
                    cost.push(c);
                    profit.push(p);
                }
                (r, c, p) => {
                    failed = r.err().or(c.err()).or(p.err());
                    break;
                }
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(renew_strings(&mut self.sale_id)),
            Arc::new(renew_primitive(&mut self.date_key)),
            Arc::new(renew_strings(&mut self.product_key)),
            Arc::new(renew_strings(&mut self.store_key)),
            Arc::new(renew_primitive(&mut self.quantity)),
            decimals(&schema, 5, revenue)?,
            decimals(&schema, 6, cost)?,
            decimals(&schema, 7, profit)?,
            Arc::new(renew_primitive(&mut self.unit_price)),
            Arc::new(renew_primitive(&mut self.discount_pct)),
            Arc::new(renew_strings(&mut self.basket_id)),
            Arc::new(renew_strings(&mut self.customer_id)),
            Arc::new(renew_strings(&mut self.payment_method)),
            seconds(&schema, 13, renew_vec(&mut self.event_time)),
        ];
        if let Some(e) = failed {
            return Err(e);
        }
        assemble(table, schema, columns)
    }
}

/// A column of a raw batch (the lake's raw schema), by name.
fn raw_column(table: &Table, raw: &RecordBatch, name: &str) -> Result<ArrayRef, WarehouseError> {
    raw.column_by_name(name).cloned().ok_or_else(|| WarehouseError::Other(format!("cannot build {} rows: the raw batch has no `{name}` column", table.name)))
}

/// The raw batch's event times (microseconds, UTC) as `fact_*`'s date keys and whole seconds.
fn raw_times(table: &Table, raw: &RecordBatch) -> Result<(Vec<i32>, Vec<i64>), WarehouseError> {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    let ts = raw_column(table, raw, "timestamp")?;
    let micros = ts
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| WarehouseError::Other(format!("cannot build {} rows: the raw `timestamp` is not in microseconds", table.name)))?;
    let days = micros.values().iter().map(|us| us.div_euclid(MICROS_PER_DAY) as i32).collect();
    let secs = micros.values().iter().map(|us| us.div_euclid(1_000_000)).collect();
    Ok((days, secs))
}

/// `fact_sales` rows from accepted raw sales (a batch of the lake's raw sales schema) and each
/// row's [revenue, cost, profit]: the id, key and text columns are the raw batch's own arrays,
/// shared, not copied (the stream processor builds the raw rows once, for the lake and this).
pub fn sales_facts_from_raw(raw: &RecordBatch, money: &[[f64; 3]]) -> Result<RecordBatch, WarehouseError> {
    let table = &schema::FACT_SALES;
    let schema = table.arrow_schema();
    if money.len() != raw.num_rows() {
        return Err(WarehouseError::Other(format!("cannot build {} rows: {} raw rows, {} money values", table.name, raw.num_rows(), money.len())));
    }
    let (mut revenue, mut cost, mut profit) = (Vec::with_capacity(money.len()), Vec::with_capacity(money.len()), Vec::with_capacity(money.len()));
    for &[r, c, p] in money {
        revenue.push(money_cents(table, "revenue", r)?);
        cost.push(money_cents(table, "cost", c)?);
        profit.push(money_cents(table, "profit", p)?);
    }
    let (days, secs) = raw_times(table, raw)?;
    let col = |name| raw_column(table, raw, name);
    let columns: Vec<ArrayRef> = vec![
        col("transaction_id")?,
        Arc::new(Date32Array::from(days)),
        col("product_id")?,
        col("store_id")?,
        col("quantity")?,
        decimals(&schema, 5, revenue)?,
        decimals(&schema, 6, cost)?,
        decimals(&schema, 7, profit)?,
        col("unit_price")?,
        col("discount_pct")?,
        col("basket_id")?,
        col("customer_id")?,
        col("payment_method")?,
        seconds(&schema, 13, secs),
    ];
    assemble(table, schema, columns)
}

/// `fact_inventory` rows from accepted raw inventory updates and each row's [reorder point,
/// safety stock] (the stream's state when the update arrived); on hand is the update's new
/// quantity. Shares the raw batch's arrays like [`sales_facts_from_raw`].
pub fn inventory_facts_from_raw(raw: &RecordBatch, levels: &[[i32; 2]]) -> Result<RecordBatch, WarehouseError> {
    let table = &schema::FACT_INVENTORY;
    let schema = table.arrow_schema();
    if levels.len() != raw.num_rows() {
        return Err(WarehouseError::Other(format!("cannot build {} rows: {} raw rows, {} levels", table.name, raw.num_rows(), levels.len())));
    }
    let (days, secs) = raw_times(table, raw)?;
    let col = |name| raw_column(table, raw, name);
    let columns: Vec<ArrayRef> = vec![
        col("inventory_id")?,
        Arc::new(Date32Array::from(days)),
        col("product_id")?,
        col("store_id")?,
        col("new_quantity")?,
        Arc::new(Int32Array::from_iter_values(levels.iter().map(|l| l[0]))),
        Arc::new(Int32Array::from_iter_values(levels.iter().map(|l| l[1]))),
        col("quantity_change")?,
        col("reason")?,
        seconds(&schema, 9, secs),
    ];
    assemble(table, schema, columns)
}

pub fn sales_batch(rows: &[FactSale]) -> Result<RecordBatch, WarehouseError> {
    let mut facts = SalesFacts::default();
    for r in rows {
        facts.push(r.into());
    }
    facts.finish()
}

/// One `fact_inventory` row, borrowed (see [`SaleFact`]).
#[derive(Clone, Copy, Debug)]
pub struct InventoryFact<'a> {
    pub inventory_id: &'a str,
    pub date_key: NaiveDate,
    pub product_key: &'a str,
    pub store_key: &'a str,
    pub quantity_on_hand: i32,
    pub reorder_point: i32,
    pub safety_stock: i32,
    pub quantity_change: i32,
    pub reason: &'a str,
    pub event_time: DateTime<Utc>,
}

impl<'a> From<&'a FactInventory> for InventoryFact<'a> {
    fn from(r: &'a FactInventory) -> Self {
        InventoryFact {
            inventory_id: &r.inventory_id,
            date_key: r.date_key,
            product_key: &r.product_key,
            store_key: &r.store_key,
            quantity_on_hand: r.quantity_on_hand,
            reorder_point: r.reorder_point,
            safety_stock: r.safety_stock,
            quantity_change: r.quantity_change,
            reason: &r.reason,
            event_time: r.event_time,
        }
    }
}

/// `fact_inventory` rows appended column by column (see [`SalesFacts`]).
#[derive(Default)]
pub struct InventoryFacts {
    inventory_id: StringBuilder,
    date_key: Date32Builder,
    product_key: StringBuilder,
    store_key: StringBuilder,
    quantity_on_hand: Int32Builder,
    reorder_point: Int32Builder,
    safety_stock: Int32Builder,
    quantity_change: Int32Builder,
    reason: StringBuilder,
    event_time: Vec<i64>,
}

impl std::fmt::Debug for InventoryFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InventoryFacts").field("rows", &self.len()).finish()
    }
}

impl InventoryFacts {
    pub fn len(&self) -> usize {
        self.event_time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.event_time.is_empty()
    }

    pub fn push(&mut self, r: InventoryFact<'_>) {
        self.inventory_id.append_value(r.inventory_id);
        self.date_key.append_value(Date32Type::from_naive_date(r.date_key));
        self.product_key.append_value(r.product_key);
        self.store_key.append_value(r.store_key);
        self.quantity_on_hand.append_value(r.quantity_on_hand);
        self.reorder_point.append_value(r.reorder_point);
        self.safety_stock.append_value(r.safety_stock);
        self.quantity_change.append_value(r.quantity_change);
        self.reason.append_value(r.reason);
        self.event_time.push(r.event_time.timestamp());
    }

    /// The rows so far as a batch of `fact_inventory`; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, WarehouseError> {
        let table = &schema::FACT_INVENTORY;
        let schema = table.arrow_schema();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(renew_strings(&mut self.inventory_id)),
            Arc::new(renew_primitive(&mut self.date_key)),
            Arc::new(renew_strings(&mut self.product_key)),
            Arc::new(renew_strings(&mut self.store_key)),
            Arc::new(renew_primitive(&mut self.quantity_on_hand)),
            Arc::new(renew_primitive(&mut self.reorder_point)),
            Arc::new(renew_primitive(&mut self.safety_stock)),
            Arc::new(renew_primitive(&mut self.quantity_change)),
            Arc::new(renew_strings(&mut self.reason)),
            seconds(&schema, 9, renew_vec(&mut self.event_time)),
        ];
        assemble(table, schema, columns)
    }
}

pub fn inventory_batch(rows: &[FactInventory]) -> Result<RecordBatch, WarehouseError> {
    let mut facts = InventoryFacts::default();
    for r in rows {
        facts.push(r.into());
    }
    facts.finish()
}

/// One `rt_sales_5min` row, borrowed (see [`SaleFact`]).
#[derive(Clone, Copy, Debug)]
pub struct WindowRow<'a> {
    pub store_id: &'a str,
    pub product_id: &'a str,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub units: i64,
    pub revenue: f64,
    pub transactions: i64,
    pub avg_price: f64,
    pub distinct_customers: i64,
}

impl<'a> From<&'a SalesWindow> for WindowRow<'a> {
    fn from(r: &'a SalesWindow) -> Self {
        WindowRow {
            store_id: &r.store_id,
            product_id: &r.product_id,
            window_start: r.window_start,
            window_end: r.window_end,
            units: r.units,
            revenue: r.revenue,
            transactions: r.transactions,
            avg_price: r.avg_price,
            distinct_customers: r.distinct_customers,
        }
    }
}

/// `rt_sales_5min` rows appended column by column (see [`SalesFacts`]).
#[derive(Default)]
pub struct SalesWindows {
    store_id: StringBuilder,
    product_id: StringBuilder,
    window_start: Vec<i64>,
    window_end: Vec<i64>,
    units: Int64Builder,
    revenue: Float64Builder,
    transactions: Int64Builder,
    avg_price: Float64Builder,
    distinct_customers: Int64Builder,
}

impl std::fmt::Debug for SalesWindows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesWindows").field("rows", &self.len()).finish()
    }
}

impl SalesWindows {
    pub fn len(&self) -> usize {
        self.window_start.len()
    }

    pub fn is_empty(&self) -> bool {
        self.window_start.is_empty()
    }

    /// Window ends (seconds since the epoch) of the rows so far.
    pub fn window_ends(&self) -> &[i64] {
        &self.window_end
    }

    pub fn push(&mut self, r: WindowRow<'_>) {
        self.store_id.append_value(r.store_id);
        self.product_id.append_value(r.product_id);
        self.window_start.push(r.window_start.timestamp());
        self.window_end.push(r.window_end.timestamp());
        self.units.append_value(r.units);
        self.revenue.append_value(r.revenue);
        self.transactions.append_value(r.transactions);
        self.avg_price.append_value(r.avg_price);
        self.distinct_customers.append_value(r.distinct_customers);
    }

    /// The rows so far as a batch of `rt_sales_5min`; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, WarehouseError> {
        let table = &schema::RT_SALES_5MIN;
        let schema = table.arrow_schema();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(renew_strings(&mut self.store_id)),
            Arc::new(renew_strings(&mut self.product_id)),
            seconds(&schema, 2, renew_vec(&mut self.window_start)),
            seconds(&schema, 3, renew_vec(&mut self.window_end)),
            Arc::new(renew_primitive(&mut self.units)),
            Arc::new(renew_primitive(&mut self.revenue)),
            Arc::new(renew_primitive(&mut self.transactions)),
            Arc::new(renew_primitive(&mut self.avg_price)),
            Arc::new(renew_primitive(&mut self.distinct_customers)),
        ];
        assemble(table, schema, columns)
    }
}

pub fn windows_batch(rows: &[SalesWindow]) -> Result<RecordBatch, WarehouseError> {
    let mut b = SalesWindows::default();
    for r in rows {
        b.push(r.into());
    }
    b.finish()
}

/// One `rt_stock` row, borrowed (see [`SaleFact`]).
#[derive(Clone, Copy, Debug)]
pub struct StockRow<'a> {
    pub store_id: &'a str,
    pub product_id: &'a str,
    pub on_hand: i32,
    pub reorder_point: i32,
    pub velocity_per_hour: f64,
    pub days_of_cover: f64,
    pub stockout_risk: f64,
    pub updated_at: DateTime<Utc>,
}

impl<'a> From<&'a StockLevel> for StockRow<'a> {
    fn from(r: &'a StockLevel) -> Self {
        StockRow {
            store_id: &r.store_id,
            product_id: &r.product_id,
            on_hand: r.on_hand,
            reorder_point: r.reorder_point,
            velocity_per_hour: r.velocity_per_hour,
            days_of_cover: r.days_of_cover,
            stockout_risk: r.stockout_risk,
            updated_at: r.updated_at,
        }
    }
}

/// `rt_stock` rows appended column by column (see [`SalesFacts`]).
#[derive(Default)]
pub struct StockLevels {
    store_id: StringBuilder,
    product_id: StringBuilder,
    on_hand: Int32Builder,
    reorder_point: Int32Builder,
    velocity_per_hour: Float64Builder,
    days_of_cover: Float64Builder,
    stockout_risk: Float64Builder,
    updated_at: Vec<i64>,
}

impl std::fmt::Debug for StockLevels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StockLevels").field("rows", &self.len()).finish()
    }
}

impl StockLevels {
    pub fn len(&self) -> usize {
        self.updated_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.updated_at.is_empty()
    }

    pub fn push(&mut self, r: StockRow<'_>) {
        self.store_id.append_value(r.store_id);
        self.product_id.append_value(r.product_id);
        self.on_hand.append_value(r.on_hand);
        self.reorder_point.append_value(r.reorder_point);
        self.velocity_per_hour.append_value(r.velocity_per_hour);
        self.days_of_cover.append_value(r.days_of_cover);
        self.stockout_risk.append_value(r.stockout_risk);
        self.updated_at.push(r.updated_at.timestamp());
    }

    /// The rows so far as a batch of `rt_stock`; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, WarehouseError> {
        let table = &schema::RT_STOCK;
        let schema = table.arrow_schema();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(renew_strings(&mut self.store_id)),
            Arc::new(renew_strings(&mut self.product_id)),
            Arc::new(renew_primitive(&mut self.on_hand)),
            Arc::new(renew_primitive(&mut self.reorder_point)),
            Arc::new(renew_primitive(&mut self.velocity_per_hour)),
            Arc::new(renew_primitive(&mut self.days_of_cover)),
            Arc::new(renew_primitive(&mut self.stockout_risk)),
            seconds(&schema, 7, renew_vec(&mut self.updated_at)),
        ];
        assemble(table, schema, columns)
    }
}

pub fn stock_batch(rows: &[StockLevel]) -> Result<RecordBatch, WarehouseError> {
    let mut b = StockLevels::default();
    for r in rows {
        b.push(r.into());
    }
    b.finish()
}

/// A column of `batch` by position, as type `A` (a schema mismatch is a bug here, not data).
fn col<A: 'static>(batch: &RecordBatch, i: usize) -> Result<&A, WarehouseError> {
    batch.column(i).as_any().downcast_ref::<A>().ok_or_else(|| WarehouseError::Other(format!("column {i} has type {}", batch.column(i).data_type())))
}

fn at_second(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// `rt_sales_5min` rows back from a batch built by [`SalesWindows`] (tests, diagnostics).
pub fn windows_from_batch(batch: &RecordBatch) -> Result<Vec<SalesWindow>, WarehouseError> {
    use datafusion::arrow::array::{Float64Array, Int64Array, TimestampSecondArray};
    let (store, product) = (col::<StringArray>(batch, 0)?, col::<StringArray>(batch, 1)?);
    let (start, end) = (col::<TimestampSecondArray>(batch, 2)?, col::<TimestampSecondArray>(batch, 3)?);
    let (units, revenue, transactions) = (col::<Int64Array>(batch, 4)?, col::<Float64Array>(batch, 5)?, col::<Int64Array>(batch, 6)?);
    let (avg_price, customers) = (col::<Float64Array>(batch, 7)?, col::<Int64Array>(batch, 8)?);
    Ok((0..batch.num_rows())
        .map(|i| SalesWindow {
            store_id: store.value(i).to_string(),
            product_id: product.value(i).to_string(),
            window_start: at_second(start.value(i)),
            window_end: at_second(end.value(i)),
            units: units.value(i),
            revenue: revenue.value(i),
            transactions: transactions.value(i),
            avg_price: avg_price.value(i),
            distinct_customers: customers.value(i),
        })
        .collect())
}

/// `rt_stock` rows back from a batch built by [`StockLevels`] (tests, diagnostics).
pub fn stock_from_batch(batch: &RecordBatch) -> Result<Vec<StockLevel>, WarehouseError> {
    use datafusion::arrow::array::{Float64Array, Int32Array, TimestampSecondArray};
    let (store, product) = (col::<StringArray>(batch, 0)?, col::<StringArray>(batch, 1)?);
    let (on_hand, reorder_point) = (col::<Int32Array>(batch, 2)?, col::<Int32Array>(batch, 3)?);
    let (velocity, cover, risk) = (col::<Float64Array>(batch, 4)?, col::<Float64Array>(batch, 5)?, col::<Float64Array>(batch, 6)?);
    let updated = col::<TimestampSecondArray>(batch, 7)?;
    Ok((0..batch.num_rows())
        .map(|i| StockLevel {
            store_id: store.value(i).to_string(),
            product_id: product.value(i).to_string(),
            on_hand: on_hand.value(i),
            reorder_point: reorder_point.value(i),
            velocity_per_hour: velocity.value(i),
            days_of_cover: cover.value(i),
            stockout_risk: risk.value(i),
            updated_at: at_second(updated.value(i)),
        })
        .collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    // The serde + arrow-json path these builders replaced, kept to check them against.
    fn sales_batch_via_serde(rows: &[FactSale]) -> Result<RecordBatch, WarehouseError> {
        let out: Vec<FactSale> =
            rows.iter().map(|r| FactSale { revenue: cents(r.revenue), cost: cents(r.cost), profit: cents(r.profit), ..r.clone() }).collect();
        to_batch(&schema::FACT_SALES, &out)
    }

    fn inventory_batch_via_serde(rows: &[FactInventory]) -> Result<RecordBatch, WarehouseError> {
        to_batch(&schema::FACT_INVENTORY, rows)
    }

    fn windows_batch_via_serde(rows: &[SalesWindow]) -> Result<RecordBatch, WarehouseError> {
        to_batch(&schema::RT_SALES_5MIN, rows)
    }

    fn stock_batch_via_serde(rows: &[StockLevel]) -> Result<RecordBatch, WarehouseError> {
        to_batch(&schema::RT_STOCK, rows)
    }

    /// Timestamps with and without sub-second parts, before and after the epoch.
    fn times() -> Vec<DateTime<Utc>> {
        vec![
            Utc.with_ymd_and_hms(2025, 1, 15, 10, 30, 0).unwrap(),
            Utc.with_ymd_and_hms(2025, 3, 30, 23, 59, 59).unwrap() + chrono::Duration::nanoseconds(999_999_999),
            Utc.with_ymd_and_hms(2024, 2, 29, 0, 0, 1).unwrap() + chrono::Duration::microseconds(123_456),
            Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap() + chrono::Duration::milliseconds(500),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2031, 7, 4, 12, 0, 0).unwrap() + chrono::Duration::nanoseconds(1),
        ]
    }

    /// Money values that exercise rounding: binary fractions just below a cent, halves, negatives,
    /// negative zero after rounding, the largest Decimal(10,2), tiny values.
    const MONEY: &[f64] = &[
        59.979999,
        59.98,
        19.99,
        0.1 + 0.2,
        -12.345,
        -0.004,
        -0.0,
        0.005,
        1.005,
        2.675,
        123456.785,
        99_999_999.99,
        -99_999_999.99,
        1e-9,
        0.0,
        7.0,
        33.333333333,
        -59.979999,
        1234.5649999,
    ];

    const NAMES: &[&str] = &["store_001", "", "SKU-ümlaut-€", "quote\"back\\slash\nnewline", "store_1000"];

    fn sales() -> Vec<FactSale> {
        let times = times();
        (0..60)
            .map(|i| {
                let t = times[i % times.len()];
                FactSale {
                    sale_id: format!("t-{i}"),
                    date_key: t.date_naive(),
                    product_key: NAMES[(i + 1) % NAMES.len()].to_string(),
                    store_key: NAMES[i % NAMES.len()].to_string(),
                    quantity: [3, -2, 0, 1, i32::MAX, i32::MIN][i % 6],
                    revenue: MONEY[i % MONEY.len()],
                    cost: MONEY[(i * 7 + 3) % MONEY.len()],
                    profit: MONEY[(i * 5 + 1) % MONEY.len()] * -0.37,
                    unit_price: [29.99, 59.979999, -1.5, 0.1 + 0.2, 1e300, f64::MIN_POSITIVE][i % 6],
                    discount_pct: [0.0, 0.1428, 1.0 / 3.0, -0.0][i % 4],
                    basket_id: format!("b-{}", i / 3),
                    customer_id: if i % 3 == 0 { None } else { Some(format!("cust_{i}")) },
                    payment_method: ["credit_card", "cash", "mobile", "gift_card", "debit_card"][i % 5].to_string(),
                    event_time: t,
                }
            })
            .collect()
    }

    #[test]
    fn sales_batch_equals_serde_path() {
        let rows = sales();
        let batch = sales_batch(&rows).unwrap();
        assert_eq!(batch, sales_batch_via_serde(&rows).unwrap());
        assert_eq!(batch.num_rows(), rows.len());
        assert_eq!(batch.column(11).null_count(), rows.iter().filter(|r| r.customer_id.is_none()).count());
        assert_eq!(sales_batch(&[]).unwrap(), sales_batch_via_serde(&[]).unwrap());
    }

    #[test]
    fn fact_builders_are_reusable_after_each_batch_and_after_an_error() {
        let rows = sales();
        let (first, second) = rows.split_at(25);
        let mut facts = SalesFacts::default();
        for (part, expect_rows) in [(first, 25), (second, rows.len() - 25)] {
            for r in part {
                facts.push(r.into());
            }
            assert_eq!(facts.len(), expect_rows);
            assert_eq!(facts.finish().unwrap(), sales_batch_via_serde(part).unwrap());
            assert!(facts.is_empty());
        }
        // A value that does not fit Decimal(10,2) fails the batch, and leaves nothing behind.
        let mut bad = rows[0].clone();
        bad.cost = 1e12;
        facts.push((&rows[1]).into());
        facts.push((&bad).into());
        let err = facts.finish().unwrap_err().to_string();
        assert!(err.contains("cost") && err.contains("Decimal(10, 2)"), "{err}");
        assert!(facts.is_empty());
        facts.push((&rows[2]).into());
        assert_eq!(facts.finish().unwrap(), sales_batch_via_serde(&rows[2..3]).unwrap());

        let inventory = inventory();
        let mut facts = InventoryFacts::default();
        for part in inventory.chunks(7) {
            for r in part {
                facts.push(r.into());
            }
            assert_eq!(facts.finish().unwrap(), inventory_batch_via_serde(part).unwrap());
        }
    }

    #[test]
    fn money_rounds_like_the_text_path() {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Decimal128Type;
        // One value per row, in `revenue`, so each is checked on its own too.
        let base = sales()[0].clone();
        for &x in MONEY {
            let rows = vec![FactSale { revenue: x, ..base.clone() }];
            let new = sales_batch(&rows).unwrap();
            assert_eq!(new, sales_batch_via_serde(&rows).unwrap(), "revenue {x}");
            let cents = new.column(5).as_primitive::<Decimal128Type>().value(0);
            assert_eq!(cents, (x * 100.0).round() as i128, "revenue {x}");
        }
        let v = |x: f64| {
            let rows = vec![FactSale { revenue: x, ..base.clone() }];
            sales_batch(&rows).unwrap().column(5).as_primitive::<Decimal128Type>().value(0)
        };
        assert_eq!(v(59.979999), 5998);
        assert_eq!(v(-59.979999), -5998);
        assert_eq!(v(-12.345), -1235);
        assert_eq!(v(-0.004), 0);
        // What does not fit Decimal(10,2) (or is not a number) fails on both paths.
        for x in [100_000_000.0, -100_000_000.0, 1e20, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let rows = vec![FactSale { cost: x, ..base.clone() }];
            assert!(sales_batch_via_serde(&rows).is_err(), "serde path accepted {x}");
            assert!(sales_batch(&rows).is_err(), "builder path accepted {x}");
        }
    }

    fn inventory() -> Vec<FactInventory> {
        let times = times();
        (0..40)
            .map(|i| {
                let t = times[i % times.len()];
                FactInventory {
                    inventory_id: format!("i-{i}"),
                    date_key: t.date_naive(),
                    product_key: NAMES[(i + 2) % NAMES.len()].to_string(),
                    store_key: NAMES[i % NAMES.len()].to_string(),
                    quantity_on_hand: [48, 0, -3, 1000, i32::MIN][i % 5],
                    reorder_point: [10, 0, 25][i % 3],
                    safety_stock: [5, 0, 12, 7][i % 4],
                    quantity_change: [-2, 120, 0, -1, 3, -50, i32::MAX][i % 7],
                    reason: ["sale", "restock", "return", "damage", "theft", "count_correction", "transfer"][i % 7].to_string(),
                    event_time: t,
                }
            })
            .collect()
    }

    #[test]
    fn inventory_batch_equals_serde_path() {
        let rows = inventory();
        assert_eq!(inventory_batch(&rows).unwrap(), inventory_batch_via_serde(&rows).unwrap());
        assert_eq!(inventory_batch(&[]).unwrap(), inventory_batch_via_serde(&[]).unwrap());
    }

    #[test]
    fn windows_batch_equals_serde_path() {
        let times = times();
        let rows: Vec<SalesWindow> = (0..40)
            .map(|i| {
                let start = times[i % times.len()];
                SalesWindow {
                    store_id: NAMES[i % NAMES.len()].to_string(),
                    product_id: NAMES[(i + 3) % NAMES.len()].to_string(),
                    window_start: start,
                    window_end: start + chrono::Duration::minutes(5),
                    units: [0, 7, -2, i64::MAX, i64::MIN][i % 5],
                    revenue: MONEY[i % MONEY.len()] * 3.0,
                    transactions: [0, 3, 1, 1 << 40][i % 4],
                    avg_price: [59.979999, 0.0, -4.25, 1.0 / 3.0, f64::MAX][i % 5],
                    distinct_customers: [0, 2, 1][i % 3],
                }
            })
            .collect();
        assert_eq!(windows_batch(&rows).unwrap(), windows_batch_via_serde(&rows).unwrap());
        assert_eq!(windows_batch(&[]).unwrap(), windows_batch_via_serde(&[]).unwrap());
        // Back to rows: equal but for the sub-second part the column does not keep.
        let whole = |t: DateTime<Utc>| DateTime::from_timestamp(t.timestamp(), 0).unwrap();
        let expect: Vec<SalesWindow> =
            rows.iter().map(|r| SalesWindow { window_start: whole(r.window_start), window_end: whole(r.window_end), ..r.clone() }).collect();
        assert_eq!(windows_from_batch(&windows_batch(&rows).unwrap()).unwrap(), expect);
    }

    #[test]
    fn stock_batch_equals_serde_path() {
        let times = times();
        let rows: Vec<StockLevel> = (0..40)
            .map(|i| StockLevel {
                store_id: NAMES[i % NAMES.len()].to_string(),
                product_id: NAMES[(i + 4) % NAMES.len()].to_string(),
                on_hand: [12, 0, -5, 300][i % 4],
                reorder_point: [10, 0, 40][i % 3],
                velocity_per_hour: [0.0, 1.234567, 0.1 + 0.2, 1e-12, 250.5][i % 5],
                days_of_cover: [0.0, 3.5, 1e9, -0.0, 59.979999, f64::INFINITY][i % 6],
                stockout_risk: [0.0, 1.0, 0.4999999, 0.05][i % 4],
                updated_at: times[i % times.len()],
            })
            .collect();
        assert_eq!(stock_batch(&rows).unwrap(), stock_batch_via_serde(&rows).unwrap());
        assert_eq!(stock_batch(&[]).unwrap(), stock_batch_via_serde(&[]).unwrap());
        let whole = |t: DateTime<Utc>| DateTime::from_timestamp(t.timestamp(), 0).unwrap();
        let expect: Vec<StockLevel> = rows.iter().map(|r| StockLevel { updated_at: whole(r.updated_at), ..r.clone() }).collect();
        assert_eq!(stock_from_batch(&stock_batch(&rows).unwrap()).unwrap(), expect);
    }
}

#[cfg(test)]
mod from_raw_tests {
    use super::*;
    use chrono::TimeZone;
    use retail_core::{EventType, InventoryReason, InventoryUpdate, PaymentMethod, SaleTransaction};

    fn sales() -> Vec<SaleTransaction> {
        (0..50)
            .map(|i| SaleTransaction {
                event_type: EventType::Sale,
                schema_version: 1,
                transaction_id: format!("00000000-0000-4000-8000-{i:012}"),
                basket_id: format!("b-{}", i / 3),
                store_id: format!("store_{:03}", 1 + i % 4),
                product_id: format!("SKU{}", i % 7),
                quantity: 1 + i % 3,
                unit_price: 2.5 + i as f64,
                list_price: 3.0 + i as f64,
                discount_pct: 0.1,
                promotion_id: (i % 2 == 0).then(|| "promo".to_string()),
                // Across midnight, and one before 1970 (floor division of negative times).
                timestamp: Utc.with_ymd_and_hms(2025, 1, 1, 23, 59, 0).unwrap() + chrono::Duration::milliseconds(i as i64 * 2_345)
                    - if i == 7 { chrono::Duration::days(20_000) } else { chrono::Duration::zero() },
                customer_id: (i % 3 != 0).then(|| format!("cust_{i}")),
                payment_method: PaymentMethod::Cash,
            })
            .collect()
    }

    /// The shared-column path gives the very batch the row-by-row builder gives.
    #[test]
    fn facts_from_raw_rows_equal_facts_built_row_by_row() {
        let sales = sales();
        let mut raw = retail_lake::RawSales::default();
        let mut by_row = SalesFacts::default();
        let mut money = Vec::new();
        for s in &sales {
            raw.push(s);
            let (revenue, cost) = (s.quantity as f64 * s.unit_price, s.quantity as f64 * 1.25);
            money.push([revenue, cost, revenue - cost]);
            by_row.push(SaleFact {
                sale_id: &s.transaction_id,
                date_key: s.timestamp.date_naive(),
                product_key: &s.product_id,
                store_key: &s.store_id,
                quantity: s.quantity,
                revenue,
                cost,
                profit: revenue - cost,
                unit_price: s.unit_price,
                discount_pct: s.discount_pct,
                basket_id: &s.basket_id,
                customer_id: s.customer_id.as_deref(),
                payment_method: s.payment_method.as_str(),
                event_time: s.timestamp,
            });
        }
        let raw = raw.finish().unwrap();
        assert_eq!(sales_facts_from_raw(&raw, &money).unwrap(), by_row.finish().unwrap());
        // A money value beyond Decimal(10, 2) is the error it is row by row.
        money[3][0] = 1e12;
        assert!(sales_facts_from_raw(&raw, &money).unwrap_err().to_string().contains("revenue"));
        assert!(sales_facts_from_raw(&raw, &money[1..]).is_err(), "one money value per row");

        let updates: Vec<InventoryUpdate> = sales
            .iter()
            .map(|s| InventoryUpdate {
                event_type: EventType::InventoryUpdate,
                schema_version: 1,
                inventory_id: format!("inv-{}", s.transaction_id),
                store_id: s.store_id.clone(),
                product_id: s.product_id.clone(),
                quantity_change: -s.quantity,
                previous_quantity: 40,
                new_quantity: 40 - s.quantity,
                reason: InventoryReason::Sale,
                reference_id: Some(s.transaction_id.clone()),
                timestamp: s.timestamp,
            })
            .collect();
        let mut raw = retail_lake::RawInventory::default();
        let mut by_row = InventoryFacts::default();
        let mut levels = Vec::new();
        for (n, u) in updates.iter().enumerate() {
            raw.push(u);
            levels.push([n as i32, 2 * n as i32]);
            by_row.push(InventoryFact {
                inventory_id: &u.inventory_id,
                date_key: u.timestamp.date_naive(),
                product_key: &u.product_id,
                store_key: &u.store_id,
                quantity_on_hand: u.new_quantity,
                reorder_point: n as i32,
                safety_stock: 2 * n as i32,
                quantity_change: u.quantity_change,
                reason: u.reason.as_str(),
                event_time: u.timestamp,
            });
        }
        assert_eq!(inventory_facts_from_raw(&raw.finish().unwrap(), &levels).unwrap(), by_row.finish().unwrap());
    }
}
