//! The warehouse schema, defined once: both backends derive their tables from this list
//! (ClickHouse DDL, and the embedded engine's Arrow schemas), so they cannot drift apart.

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;

/// Column types, named after ClickHouse's (the seed's DDL) and mapped to Arrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Str,
    NullStr,
    Date,
    /// Second precision, UTC (ClickHouse 18.16 has no sub-second DateTime).
    DateTime,
    I32,
    I64,
    U8,
    U16,
    U32,
    F64,
    /// `Decimal(10,2)`, the seed's money type.
    Money,
    /// `Decimal(18,2)`, for sums of money in rollups.
    BigMoney,
}

impl Ty {
    pub fn clickhouse(self) -> &'static str {
        match self {
            Ty::Str => "String",
            Ty::NullStr => "Nullable(String)",
            Ty::Date => "Date",
            Ty::DateTime => "DateTime('UTC')",
            Ty::I32 => "Int32",
            Ty::I64 => "Int64",
            Ty::U8 => "UInt8",
            Ty::U16 => "UInt16",
            Ty::U32 => "UInt32",
            Ty::F64 => "Float64",
            Ty::Money => "Decimal(10, 2)",
            Ty::BigMoney => "Decimal(18, 2)",
        }
    }

    pub fn arrow(self) -> DataType {
        match self {
            Ty::Str | Ty::NullStr => DataType::Utf8,
            Ty::Date => DataType::Date32,
            Ty::DateTime => DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
            Ty::I32 => DataType::Int32,
            Ty::I64 => DataType::Int64,
            Ty::U8 => DataType::UInt8,
            Ty::U16 => DataType::UInt16,
            Ty::U32 => DataType::UInt32,
            Ty::F64 => DataType::Float64,
            Ty::Money => DataType::Decimal128(10, 2),
            Ty::BigMoney => DataType::Decimal128(18, 2),
        }
    }
}

/// How a table is loaded, which decides its engine and its idempotency mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Immutable rows keyed by one id column: a row whose key is already present is dropped
    /// before insert (ClickHouse: ReplacingMergeTree on the key as a backstop; embedded: key set).
    Fact,
    /// Rows keyed by `key`; a later row (higher `version` column, or later insert when none)
    /// replaces an earlier one. ClickHouse: ReplacingMergeTree in `<name>_versions` and a view
    /// `<name>` that reads it `FINAL`, so queries always see one row per key.
    Upsert { version: Option<&'static str> },
    /// Replaced wholesale by `load_dimensions`.
    Dimension,
    /// Partial sums keyed by `key`, fed from `fact_sales`; queries `SUM … GROUP BY`.
    /// ClickHouse: SummingMergeTree filled by a materialized view; embedded: partial batches.
    Rollup,
}

pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Ty)],
    /// The natural key (fact tables: one id column).
    pub key: &'static [&'static str],
    /// ClickHouse sort key (must start with the columns queries filter on, and for Replacing/
    /// Summing engines equal the key).
    pub order_by: &'static [&'static str],
    /// ClickHouse partition expression, if any.
    pub partition_by: Option<&'static str>,
    pub kind: Kind,
    pub doc: &'static str,
}

impl Table {
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.columns.iter().map(|(n, t)| Field::new(*n, t.arrow(), *t == Ty::NullStr)).collect::<Vec<_>>()))
    }

    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|(n, _)| *n).collect()
    }
}

use Ty::*;

pub const FACT_SALES: Table = Table {
    name: "fact_sales",
    columns: &[
        ("sale_id", Str),
        ("date_key", Date),
        ("product_key", Str),
        ("store_key", Str),
        ("quantity", I32),
        ("revenue", Money),
        ("cost", Money),
        ("profit", Money),
        ("unit_price", F64),
        ("discount_pct", F64),
        ("basket_id", Str),
        ("customer_id", NullStr),
        ("payment_method", Str),
        ("event_time", DateTime),
    ],
    key: &["sale_id"],
    order_by: &["date_key", "store_key", "product_key", "sale_id"],
    partition_by: Some("toYYYYMM(date_key)"),
    kind: Kind::Fact,
    doc: "one row per sale line (seed columns + event detail)",
};

pub const FACT_INVENTORY: Table = Table {
    name: "fact_inventory",
    columns: &[
        ("inventory_id", Str),
        ("date_key", Date),
        ("product_key", Str),
        ("store_key", Str),
        ("quantity_on_hand", I32),
        ("reorder_point", I32),
        ("safety_stock", I32),
        ("quantity_change", I32),
        ("reason", Str),
        ("event_time", DateTime),
    ],
    key: &["inventory_id"],
    order_by: &["date_key", "store_key", "product_key", "inventory_id"],
    partition_by: Some("toYYYYMM(date_key)"),
    kind: Kind::Fact,
    doc: "one row per stock movement, with the stock after it",
};

pub const DIM_DATE: Table = Table {
    name: "dim_date",
    columns: &[
        ("date_key", Date),
        ("full_date", Date),
        ("day_of_week", U8),
        ("month", U8),
        ("quarter", U8),
        ("year", U16),
        ("is_holiday", U8),
        ("holiday_name", Str),
        ("is_weekend", U8),
    ],
    key: &["date_key"],
    order_by: &["date_key"],
    partition_by: None,
    kind: Kind::Dimension,
    doc: "calendar: ISO day of week (1 = Monday), weekends, holidays",
};

pub const DIM_PRODUCT: Table = Table {
    name: "dim_product",
    columns: &[
        ("product_key", Str),
        ("sku", Str),
        ("product_name", Str),
        ("category", Str),
        ("sub_category", Str),
        ("brand", Str),
        ("supplier", Str),
        ("unit_cost", Money),
        ("list_price", Money),
        ("shelf_life_days", I32),
        ("pack_size", I32),
        ("lead_time_days", F64),
        ("lead_time_sd_days", F64),
    ],
    key: &["product_key"],
    order_by: &["product_key"],
    partition_by: None,
    kind: Kind::Dimension,
    doc: "the catalog's products (product_key = SKU)",
};

pub const DIM_STORE: Table = Table {
    name: "dim_store",
    columns: &[
        ("store_key", Str),
        ("store_name", Str),
        ("region", Str),
        ("city", Str),
        ("format", Str),
        ("size_sqm", U32),
        ("opens_hour", U8),
        ("closes_hour", U8),
    ],
    key: &["store_key"],
    order_by: &["store_key"],
    partition_by: None,
    kind: Kind::Dimension,
    doc: "the catalog's stores",
};

pub const RT_SALES_5MIN: Table = Table {
    name: "rt_sales_5min",
    columns: &[
        ("store_id", Str),
        ("product_id", Str),
        ("window_start", DateTime),
        ("window_end", DateTime),
        ("units", I64),
        ("revenue", F64),
        ("transactions", I64),
        ("avg_price", F64),
        ("distinct_customers", I64),
    ],
    key: &["store_id", "product_id", "window_start"],
    order_by: &["store_id", "product_id", "window_start"],
    partition_by: Some("toYYYYMMDD(window_start)"),
    kind: Kind::Upsert { version: None },
    doc: "5-minute event-time sales windows per store×SKU (stream processor)",
};

pub const RT_STOCK: Table = Table {
    name: "rt_stock",
    columns: &[
        ("store_id", Str),
        ("product_id", Str),
        ("on_hand", I32),
        ("reorder_point", I32),
        ("velocity_per_hour", F64),
        ("days_of_cover", F64),
        ("stockout_risk", F64),
        ("updated_at", DateTime),
    ],
    key: &["store_id", "product_id"],
    order_by: &["store_id", "product_id"],
    partition_by: None,
    kind: Kind::Upsert { version: Some("updated_at") },
    doc: "current stock and stock-out risk per store×SKU (stream processor)",
};

pub const RT_RESTOCK_ALERTS: Table = Table {
    name: "rt_restock_alerts",
    columns: &[
        ("alert_id", Str),
        ("store_id", Str),
        ("product_id", Str),
        ("status", Str),
        ("severity", Str),
        ("on_hand", I32),
        ("reorder_point", I32),
        ("velocity_per_hour", F64),
        ("days_of_cover", F64),
        ("stockout_risk", F64),
        ("suggested_order_qty", I32),
        ("reason", Str),
        ("event_time", DateTime),
    ],
    key: &["alert_id"],
    order_by: &["alert_id"],
    partition_by: None,
    // An alert may be re-emitted under its id with a new status; the latest wins.
    kind: Kind::Upsert { version: Some("event_time") },
    doc: "restock alerts, open and resolved (stream processor)",
};

pub const RT_ANOMALIES: Table = Table {
    name: "rt_anomalies",
    columns: &[
        ("anomaly_id", Str),
        ("store_id", Str),
        ("product_id", Str),
        ("kind", Str),
        ("score", F64),
        ("detail", Str),
        ("event_id", NullStr),
        ("event_time", DateTime),
    ],
    key: &["anomaly_id"],
    order_by: &["store_id", "event_time", "anomaly_id"],
    partition_by: None,
    kind: Kind::Fact,
    doc: "anomaly flags (stream processor)",
};

pub const FEATURE_STORE: Table = Table {
    name: "feature_store",
    columns: &[("feature_set", Str), ("entity_id", Str), ("feature_date", Date), ("feature_name", Str), ("value", F64), ("computed_at", DateTime)],
    key: &["feature_set", "entity_id", "feature_date", "feature_name"],
    order_by: &["feature_set", "entity_id", "feature_date", "feature_name"],
    partition_by: None,
    kind: Kind::Upsert { version: Some("computed_at") },
    doc: "features in long form (one value per entity, day and feature); latest computation wins",
};

pub const PREDICTIONS: Table = Table {
    name: "predictions",
    columns: &[
        ("model", Str),
        ("model_version", U32),
        ("store_id", Str),
        ("product_id", Str),
        ("target_date", Date),
        ("predicted_units", F64),
        ("lower_units", F64),
        ("upper_units", F64),
        ("reorder_qty", F64),
        ("created_at", DateTime),
    ],
    key: &["model", "model_version", "store_id", "product_id", "target_date"],
    order_by: &["model", "model_version", "store_id", "product_id", "target_date"],
    partition_by: None,
    kind: Kind::Upsert { version: Some("created_at") },
    doc: "model outputs per store×SKU and target day; latest run wins",
};

pub const AGG_SALES_DAILY: Table = Table {
    name: "agg_sales_daily",
    columns: &[
        ("date_key", Date),
        ("store_key", Str),
        ("product_key", Str),
        ("units", I64),
        ("revenue", BigMoney),
        ("cost", BigMoney),
        ("profit", BigMoney),
        ("lines", I64),
    ],
    key: &["date_key", "store_key", "product_key"],
    order_by: &["date_key", "store_key", "product_key"],
    partition_by: Some("toYYYYMM(date_key)"),
    kind: Kind::Rollup,
    doc: "daily sales rollup per store×SKU; always query with SUM(...) GROUP BY",
};

pub const AGG_SALES_STORE_DAILY: Table = Table {
    name: "agg_sales_store_daily",
    columns: &[("date_key", Date), ("store_key", Str), ("units", I64), ("revenue", BigMoney), ("cost", BigMoney), ("profit", BigMoney), ("lines", I64)],
    key: &["date_key", "store_key"],
    order_by: &["date_key", "store_key"],
    partition_by: Some("toYYYYMM(date_key)"),
    kind: Kind::Rollup,
    doc: "daily sales rollup per store (KPIs, trends, store ranking); SUM(...) GROUP BY",
};

pub const AGG_SALES_PRODUCT_DAILY: Table = Table {
    name: "agg_sales_product_daily",
    columns: &[("date_key", Date), ("product_key", Str), ("units", I64), ("revenue", BigMoney), ("cost", BigMoney), ("profit", BigMoney), ("lines", I64)],
    key: &["date_key", "product_key"],
    order_by: &["date_key", "product_key"],
    partition_by: Some("toYYYYMM(date_key)"),
    kind: Kind::Rollup,
    doc: "daily sales rollup per SKU, all stores (top SKUs, categories); SUM(...) GROUP BY",
};

pub const AGG_STOCKOUTS_DAILY: Table = Table {
    name: "agg_stockouts_daily",
    columns: &[("date_key", Date), ("store_key", Str), ("stockout_events", I64)],
    key: &["date_key", "store_key"],
    order_by: &["date_key", "store_key"],
    partition_by: Some("toYYYYMM(date_key)"),
    kind: Kind::Rollup,
    doc: "inventory movements that left a store×SKU with nothing on hand, per day and store",
};

/// A rollup's measure, computed from its source table's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// Sum of an integer column, as Int64.
    SumInt(&'static str),
    /// Sum of a Decimal(·,2) column, as Decimal(18,2).
    SumMoney(&'static str),
    /// Number of source rows, as Int64.
    Count,
}

/// How a rollup table is derived: `SELECT date_key, <keys>, <measures> FROM <source>
/// [WHERE quantity_on_hand <= 0] GROUP BY date_key, <keys>`, applied to each batch of newly
/// accepted fact rows (ClickHouse: a materialized view; embedded: in process).
pub struct Rollup {
    pub table: &'static Table,
    pub source: &'static Table,
    /// String key columns after `date_key`, same names in source and rollup.
    pub keys: &'static [&'static str],
    pub only_out_of_stock: bool,
    pub measures: &'static [(&'static str, Measure)],
}

const SALES_MEASURES: &[(&str, Measure)] = &[
    ("units", Measure::SumInt("quantity")),
    ("revenue", Measure::SumMoney("revenue")),
    ("cost", Measure::SumMoney("cost")),
    ("profit", Measure::SumMoney("profit")),
    ("lines", Measure::Count),
];

pub const ROLLUPS: &[Rollup] = &[
    Rollup { table: &AGG_SALES_DAILY, source: &FACT_SALES, keys: &["store_key", "product_key"], only_out_of_stock: false, measures: SALES_MEASURES },
    Rollup { table: &AGG_SALES_STORE_DAILY, source: &FACT_SALES, keys: &["store_key"], only_out_of_stock: false, measures: SALES_MEASURES },
    Rollup { table: &AGG_SALES_PRODUCT_DAILY, source: &FACT_SALES, keys: &["product_key"], only_out_of_stock: false, measures: SALES_MEASURES },
    Rollup {
        table: &AGG_STOCKOUTS_DAILY,
        source: &FACT_INVENTORY,
        keys: &["store_key"],
        only_out_of_stock: true,
        measures: &[("stockout_events", Measure::Count)],
    },
];

pub fn rollup_of(table: &str) -> Option<&'static Rollup> {
    ROLLUPS.iter().find(|r| r.table.name == table)
}

/// Every table, in creation order.
pub const TABLES: &[&Table] = &[
    &FACT_SALES,
    &FACT_INVENTORY,
    &DIM_DATE,
    &DIM_PRODUCT,
    &DIM_STORE,
    &RT_SALES_5MIN,
    &RT_STOCK,
    &RT_RESTOCK_ALERTS,
    &RT_ANOMALIES,
    &FEATURE_STORE,
    &PREDICTIONS,
    &AGG_SALES_DAILY,
    &AGG_SALES_STORE_DAILY,
    &AGG_SALES_PRODUCT_DAILY,
    &AGG_STOCKOUTS_DAILY,
];

pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().copied().find(|t| t.name == name)
}
