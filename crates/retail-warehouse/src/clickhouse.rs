//! ClickHouse over its HTTP interface (reqwest), in SQL and formats that 18.16 accepts.
//!
//! Idempotency, per table kind (see `schema::Kind`):
//! - facts: dedup before insert — the batch's ids are looked up (restricted to the batch's dates,
//!   a prefix of the sort key, so the lookup reads a few granules) and only new rows are sent.
//!   The engine is ReplacingMergeTree on a sort key ending in the id, a backstop that collapses
//!   duplicates two racing writers could still create, at the next merge;
//! - upserts: ReplacingMergeTree(version) in `<table>_versions`, read through a view `<table>`
//!   that selects `FINAL`, so queries see one row per key immediately, before any merge;
//! - dimensions: truncated and reloaded;
//! - `agg_sales_daily`: SummingMergeTree filled by a materialized view on fact_sales inserts —
//!   only rows that passed dedup reach it, so a replay adds nothing.

use crate::result::{from_batches, from_clickhouse_json_compact};
use crate::rows::{self, FeatureValue, Prediction};
use crate::schema::{self, Kind, Table, TABLES};
use crate::{DateRow, QueryResult, Warehouse, WarehouseError, WarehouseOptions};
use async_trait::async_trait;
use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use retail_core::{AnomalyFlag, Product, RestockAlert, Store};
use std::collections::{BTreeSet, HashSet};

/// Ids per dedup lookup query: 5 000 quoted UUIDs are ~200 KB, under ClickHouse's default
/// `max_query_size` of 256 KiB (the IN list is part of the parsed query text).
const LOOKUP_CHUNK: usize = 5_000;
/// Rows per INSERT request.
const INSERT_CHUNK: usize = 100_000;

pub struct ClickHouseWarehouse {
    client: reqwest::Client,
    /// `http(s)://host:port/`, without credentials.
    base: String,
    /// The URL as given, with any password removed, for messages.
    shown: String,
    user: String,
    password: String,
    database: String,
}

/// `'…'` with ClickHouse escaping (backslash and quote).
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// ClickHouse error codes that mean "try again later" (overload, timeouts, network).
const RETRYABLE_CODES: &[&str] = &["Code: 159,", "Code: 202,", "Code: 209,", "Code: 210,", "Code: 242,", "Code: 252,", "Code: 425,"];

impl ClickHouseWarehouse {
    pub fn new(url: &str, options: &WarehouseOptions) -> Result<ClickHouseWarehouse, WarehouseError> {
        let bad = |reason: String| WarehouseError::BadUrl { url: url.to_string(), reason };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing scheme".into()))?;
        let http_scheme = match scheme {
            "clickhouse" | "http" => "http",
            "clickhouses" | "https" => "https",
            other => return Err(bad(format!("unknown scheme `{other}`"))),
        };
        let parsed = reqwest::Url::parse(&format!("{http_scheme}://{rest}")).map_err(|e| bad(e.to_string()))?;
        let host = parsed.host_str().ok_or_else(|| bad("missing host".into()))?;
        let port = parsed.port().unwrap_or(if http_scheme == "https" { 8443 } else { 8123 });
        let base = format!("{http_scheme}://{host}:{port}/");
        let url_user = urlencoding_decode(parsed.username());
        let url_password = parsed.password().map(urlencoding_decode);
        let mut database = options.database.clone();
        for (k, v) in parsed.query_pairs() {
            if k == "database" {
                database = v.to_string();
            }
        }
        if database.is_empty() {
            database = "retail".into();
        }
        if !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad(format!("database name `{database}` must be letters, digits or _")));
        }
        let user = if !url_user.is_empty() {
            url_user
        } else if options.user.is_empty() {
            "default".into()
        } else {
            options.user.clone()
        };
        let password = url_password.unwrap_or_else(|| options.password.clone());
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(std::time::Duration::from_secs(3))
            .build()
            .map_err(|e| WarehouseError::Other(format!("HTTP client: {e}")))?;
        Ok(ClickHouseWarehouse { client, shown: base.clone(), base, user, password, database })
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// POST one statement. `sql_in_url` puts the statement in `?query=` and sends `body` as its
    /// data (INSERT … FORMAT JSONEachRow); otherwise the statement is the body.
    async fn post(&self, sql: &str, data: Option<Vec<u8>>, use_db: bool) -> Result<Vec<u8>, WarehouseError> {
        let mut params: Vec<(&str, &str)> = vec![
            // Return 64-bit integers as numbers, not strings (results are normalized anyway).
            ("output_format_json_quote_64bit_integers", "0"),
        ];
        if use_db {
            params.push(("database", &self.database));
        }
        let req = self.client.post(&self.base).basic_auth(&self.user, Some(&self.password));
        let req = match data {
            Some(body) => {
                params.push(("query", sql));
                req.query(&params).body(body)
            }
            None => req.query(&params).body(sql.to_string()),
        };
        let resp = req.send().await.map_err(|e| {
            WarehouseError::Unavailable(format!(
                "cannot reach ClickHouse at {} ({}) — is clickhouse-server running and the warehouse URL right?",
                self.shown,
                root_cause(&e)
            ))
        })?;
        let status = resp.status();
        let body =
            resp.bytes().await.map_err(|e| WarehouseError::Unavailable(format!("ClickHouse at {}: reading the response: {}", self.shown, root_cause(&e))))?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        let text = String::from_utf8_lossy(&body).trim().to_string();
        let short: String = text.chars().take(2000).collect();
        if RETRYABLE_CODES.iter().any(|c| text.contains(c)) || status.as_u16() == 503 {
            Err(WarehouseError::Unavailable(format!("ClickHouse at {}: {short}", self.shown)))
        } else if text.contains("Code: 192,") || text.contains("Code: 193,") || text.contains("Code: 516,") || status.as_u16() == 401 {
            Err(WarehouseError::Other(format!("ClickHouse at {} refused user `{}`: {short} — check the user and password", self.shown, self.user)))
        } else {
            Err(WarehouseError::Query(format!("ClickHouse: {short}")))
        }
    }

    /// Run one statement that returns nothing (DDL, administration).
    pub async fn execute(&self, sql: &str) -> Result<(), WarehouseError> {
        self.exec(sql).await
    }

    /// Statements built here name `database.table` explicitly, so they work before (and after)
    /// the database exists.
    async fn exec(&self, sql: &str) -> Result<(), WarehouseError> {
        self.post(sql, None, false).await.map(|_| ())
    }

    fn ddl(&self, t: &Table) -> Vec<String> {
        let db = &self.database;
        let cols: Vec<String> = t.columns.iter().map(|(n, ty)| format!("{n} {}", ty.clickhouse())).collect();
        let cols = cols.join(", ");
        let order = t.order_by.join(", ");
        let part = t.partition_by.map(|p| format!(" PARTITION BY {p}")).unwrap_or_default();
        match t.kind {
            Kind::Fact => vec![format!("CREATE TABLE IF NOT EXISTS {db}.{} ({cols}) ENGINE = ReplacingMergeTree(){part} ORDER BY ({order})", t.name)],
            Kind::Dimension => vec![format!("CREATE TABLE IF NOT EXISTS {db}.{} ({cols}) ENGINE = MergeTree(){part} ORDER BY ({order})", t.name)],
            Kind::Upsert { version } => vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {db}.{}_versions ({cols}) ENGINE = ReplacingMergeTree({}){part} ORDER BY ({order})",
                    t.name,
                    version.unwrap_or("")
                ),
                // Recreated on every init so it picks up columns a migration added.
                format!("DROP TABLE IF EXISTS {db}.{}", t.name),
                format!("CREATE VIEW {db}.{} AS SELECT * FROM {db}.{}_versions FINAL", t.name, t.name),
            ],
            Kind::Rollup => {
                let r = schema::rollup_of(t.name).expect("every rollup table has a spec");
                let keys = std::iter::once("date_key").chain(r.keys.iter().copied()).collect::<Vec<_>>().join(", ");
                // 18.16 accepts `sum(revenue) AS revenue` in a view's SELECT; a subquery in FROM
                // would hide the source table from the view.
                let measures: Vec<String> = r
                    .measures
                    .iter()
                    .map(|(out, m)| match m {
                        schema::Measure::SumInt(c) => format!("toInt64(sum({c})) AS {out}"),
                        schema::Measure::SumMoney(c) => format!("toDecimal64(sum({c}), 2) AS {out}"),
                        schema::Measure::Count => format!("toInt64(count()) AS {out}"),
                    })
                    .collect();
                let filter = if r.only_out_of_stock { " WHERE quantity_on_hand <= 0" } else { "" };
                vec![
                    format!("CREATE TABLE IF NOT EXISTS {db}.{} ({cols}) ENGINE = SummingMergeTree(){part} ORDER BY ({order})", t.name),
                    format!(
                        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{name}_mv TO {db}.{name} AS \
                         SELECT {keys}, {measures} FROM {db}.{source}{filter} GROUP BY {keys}",
                        name = t.name,
                        measures = measures.join(", "),
                        source = r.source.name,
                    ),
                ]
            }
        }
    }

    /// The physical table rows of `t` are inserted into.
    fn target(t: &Table) -> String {
        match t.kind {
            Kind::Upsert { .. } => format!("{}_versions", t.name),
            _ => t.name.to_string(),
        }
    }

    /// Add columns this build expects but an older table lacks (the only migration needed so far).
    async fn migrate_columns(&self, t: &Table) -> Result<(), WarehouseError> {
        let target = Self::target(t);
        let sql = format!("SELECT name FROM system.columns WHERE database = {} AND table = {} FORMAT TabSeparated", quote(&self.database), quote(&target));
        let body = self.post(&sql, None, false).await?;
        let have: HashSet<String> = String::from_utf8_lossy(&body).lines().map(str::to_string).collect();
        for (name, ty) in t.columns {
            if !have.contains(*name) {
                self.exec(&format!("ALTER TABLE {}.{target} ADD COLUMN {name} {}", self.database, ty.clickhouse())).await?;
            }
        }
        Ok(())
    }

    /// Rows as JSONEachRow (values already normalized: dates and times as ClickHouse text).
    fn json_each_row(batch: &RecordBatch) -> Result<Vec<u8>, WarehouseError> {
        let r = from_batches(std::slice::from_ref(batch))?;
        let mut out = Vec::with_capacity(batch.num_rows() * 200);
        for row in r.rows {
            let obj: serde_json::Map<String, serde_json::Value> = r.columns.iter().cloned().zip(row).collect();
            serde_json::to_writer(&mut out, &obj).map_err(|e| WarehouseError::Other(e.to_string()))?;
            out.push(b'\n');
        }
        Ok(out)
    }

    async fn insert_batch(&self, t: &Table, batch: RecordBatch) -> Result<(), WarehouseError> {
        let target = Self::target(t);
        let mut start = 0;
        while start < batch.num_rows() {
            let len = INSERT_CHUNK.min(batch.num_rows() - start);
            let body = Self::json_each_row(&batch.slice(start, len))?;
            self.post(&format!("INSERT INTO {}.{target} FORMAT JSONEachRow", self.database), Some(body), false).await?;
            start += len;
        }
        Ok(())
    }

    /// The rows of a fact batch whose id is neither repeated earlier in the batch nor stored.
    async fn new_facts(&self, t: &Table, batch: RecordBatch) -> Result<RecordBatch, WarehouseError> {
        let other = |e: datafusion::arrow::error::ArrowError| WarehouseError::Other(e.to_string());
        let id_col = t.key[0];
        let ids = cast(batch.column_by_name(id_col).expect("key column"), &DataType::Utf8).map_err(other)?;
        let ids = ids.as_string::<i32>();
        // Restricting to the batch's dates (the sort key's prefix) makes the lookup read only
        // those days' granules instead of the whole table.
        let date_filter = match batch.column_by_name("date_key") {
            Some(col) => {
                let dates = cast(col, &DataType::Utf8).map_err(other)?;
                let dates: BTreeSet<String> = dates.as_string::<i32>().iter().flatten().map(str::to_string).collect();
                format!("date_key IN ({}) AND ", dates.iter().map(|d| quote(d)).collect::<Vec<_>>().join(","))
            }
            None => String::new(),
        };
        let all: Vec<&str> = ids.iter().flatten().collect();
        let mut existing: HashSet<String> = HashSet::new();
        for chunk in all.chunks(LOOKUP_CHUNK) {
            let in_list = chunk.iter().map(|s| quote(s)).collect::<Vec<_>>().join(",");
            let sql = format!("SELECT {id_col} FROM {}.{} WHERE {date_filter}{id_col} IN ({in_list}) FORMAT TabSeparated", self.database, t.name);
            let body = self.post(&sql, None, false).await?;
            existing.extend(String::from_utf8_lossy(&body).lines().map(str::to_string));
        }
        let mut seen = HashSet::new();
        let mask: BooleanArray = all.iter().map(|id| Some(!existing.contains(*id) && seen.insert(*id))).collect();
        filter_record_batch(&batch, &mask).map_err(other)
    }

    async fn insert_facts(&self, t: &Table, batch: RecordBatch) -> Result<(), WarehouseError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let fresh = self.new_facts(t, batch).await?;
        if fresh.num_rows() > 0 {
            self.insert_batch(t, fresh).await?;
        }
        Ok(())
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// Percent-decoding for the user/password part of a URL.
fn urlencoding_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[async_trait]
impl Warehouse for ClickHouseWarehouse {
    fn backend(&self) -> &'static str {
        "clickhouse"
    }

    async fn init(&self) -> Result<(), WarehouseError> {
        self.post(&format!("CREATE DATABASE IF NOT EXISTS {}", self.database), None, false).await?;
        for t in TABLES {
            let stmts = self.ddl(t);
            // Base table first, then migrate it, then (re)create views over it.
            self.exec(&stmts[0]).await?;
            self.migrate_columns(t).await?;
            for s in &stmts[1..] {
                self.exec(s).await?;
            }
        }
        Ok(())
    }

    async fn load_dimensions(&self, stores: &[Store], products: &[Product], dates: &[DateRow]) -> Result<(), WarehouseError> {
        for (t, b) in [
            (&schema::DIM_STORE, rows::stores_batch(stores)?),
            (&schema::DIM_PRODUCT, rows::products_batch(products)?),
            (&schema::DIM_DATE, rows::dates_batch(dates)?),
        ] {
            if b.num_rows() == 0 {
                continue;
            }
            // Not atomic: a query in between sees an empty dimension for a moment. Modern
            // ClickHouse would load a new table and `EXCHANGE TABLES`; 18.16 has no EXCHANGE.
            self.exec(&format!("TRUNCATE TABLE {}.{}", self.database, t.name)).await?;
            self.insert_batch(t, b).await?;
        }
        Ok(())
    }

    async fn insert_sales_batch(&self, batch: RecordBatch) -> Result<(), WarehouseError> {
        self.insert_facts(&schema::FACT_SALES, batch).await
    }
    async fn insert_inventory_batch(&self, batch: RecordBatch) -> Result<(), WarehouseError> {
        self.insert_facts(&schema::FACT_INVENTORY, batch).await
    }
    async fn upsert_sales_windows_batch(&self, batch: RecordBatch) -> Result<(), WarehouseError> {
        self.insert_batch(&schema::RT_SALES_5MIN, batch).await
    }
    async fn upsert_stock_batch(&self, batch: RecordBatch) -> Result<(), WarehouseError> {
        self.insert_batch(&schema::RT_STOCK, batch).await
    }
    async fn insert_alerts(&self, rows: &[RestockAlert]) -> Result<(), WarehouseError> {
        self.insert_batch(&schema::RT_RESTOCK_ALERTS, rows::alerts_batch(rows)?).await
    }
    async fn insert_anomalies(&self, rows: &[AnomalyFlag]) -> Result<(), WarehouseError> {
        self.insert_facts(&schema::RT_ANOMALIES, rows::anomalies_batch(rows)?).await
    }
    async fn upsert_features(&self, rows: &[FeatureValue]) -> Result<(), WarehouseError> {
        self.insert_batch(&schema::FEATURE_STORE, rows::features_batch(rows)?).await
    }
    async fn upsert_predictions(&self, rows: &[Prediction]) -> Result<(), WarehouseError> {
        self.insert_batch(&schema::PREDICTIONS, rows::predictions_batch(rows)?).await
    }

    /// Every INSERT is durable when it returns; nothing is buffered here.
    async fn flush(&self) -> Result<(), WarehouseError> {
        Ok(())
    }

    async fn query(&self, sql: &str) -> Result<QueryResult, WarehouseError> {
        let sql = sql.trim().trim_end_matches(';');
        let body = self.post(&format!("{sql} FORMAT JSONCompact"), None, true).await?;
        from_clickhouse_json_compact(&body)
    }
}
