//! One test body, two backends: the same inserts (including replays) must give the same query
//! results — the golden file `tests/golden/dashboard.json` — on embedded DataFusion and on a real
//! ClickHouse. Regenerate the golden file with `RETAIL_UPDATE_GOLDEN=1` and review the diff.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use retail_core::*;
use retail_warehouse::{dim_date, open, queries, FeatureValue, HolidayCalendar, Prediction, Warehouse, WarehouseError, WarehouseOptions};
use serde_json::{json, Value};
use std::sync::Arc;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, d).unwrap()
}

fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, d, h, m, 0).unwrap()
}

fn stores() -> Vec<Store> {
    let s = |id: &str, name: &str, region: &str| Store {
        store_id: id.into(),
        name: name.into(),
        region: region.into(),
        city: "Springfield".into(),
        format: "supermarket".into(),
        size_sqm: 1200,
        opens_hour: 8,
        closes_hour: 22,
    };
    vec![s("store_001", "North Mall", "north"), s("store_002", "South Street", "south")]
}

fn products() -> Vec<Product> {
    let p = |id: &str, cat: &str, cost: f64| Product {
        product_id: id.into(),
        sku: id.into(),
        product_name: format!("Product {id}"),
        category: cat.into(),
        sub_category: "x".into(),
        brand: "B".into(),
        supplier: "S".into(),
        unit_cost: cost,
        list_price: cost * 2.5,
        shelf_life_days: 30,
        pack_size: 6,
        lead_time_days: 3.0,
        lead_time_sd_days: 1.0,
    };
    vec![p("SKU1", "food", 1.0), p("SKU2", "food", 2.0), p("SKU3", "toys", 5.0)]
}

fn sale(id: &str, d: u32, store: &str, sku: &str, qty: i32, price: f64, unit_cost: f64) -> FactSale {
    let revenue = qty as f64 * price;
    let cost = qty as f64 * unit_cost;
    FactSale {
        sale_id: id.into(),
        date_key: day(d),
        product_key: sku.into(),
        store_key: store.into(),
        quantity: qty,
        revenue,
        cost,
        profit: revenue - cost,
        unit_price: price,
        discount_pct: 0.0,
        basket_id: format!("b-{id}"),
        customer_id: None,
        payment_method: "cash".into(),
        event_time: at(d, 10, 0),
    }
}

/// Seven sale lines; hand totals: revenue 60.98, units 14, profit 31.98.
fn all_sales() -> Vec<FactSale> {
    vec![
        sale("s1", 1, "store_001", "SKU1", 2, 2.50, 1.0),
        sale("s2", 1, "store_001", "SKU3", 1, 10.00, 5.0),
        sale("s3", 1, "store_002", "SKU2", 3, 4.00, 2.0),
        sale("s4", 2, "store_001", "SKU1", 1, 2.50, 1.0),
        sale("s5", 2, "store_002", "SKU3", 2, 9.99, 5.0),
        sale("s6", 4, "store_002", "SKU1", 4, 2.25, 1.0),
        sale("s7", 1, "store_002", "SKU1", 1, 2.50, 1.0),
    ]
}

fn inv(id: &str, d: u32, store: &str, sku: &str, on_hand: i32) -> FactInventory {
    FactInventory {
        inventory_id: id.into(),
        date_key: day(d),
        product_key: sku.into(),
        store_key: store.into(),
        quantity_on_hand: on_hand,
        reorder_point: 4,
        safety_stock: 2,
        quantity_change: -1,
        reason: "sale".into(),
        event_time: at(d, 12, 0),
    }
}

fn stock(store: &str, sku: &str, on_hand: i32, risk: f64, updated: DateTime<Utc>) -> StockLevel {
    StockLevel {
        store_id: store.into(),
        product_id: sku.into(),
        on_hand,
        reorder_point: 4,
        velocity_per_hour: 0.5,
        days_of_cover: on_hand as f64 / 12.0,
        stockout_risk: risk,
        updated_at: updated,
    }
}

fn alert(id: &str, store: &str, sku: &str, status: AlertStatus, t: DateTime<Utc>, risk: f64) -> RestockAlert {
    RestockAlert {
        event_type: EventType::RestockAlert,
        schema_version: SCHEMA_VERSION,
        alert_id: id.into(),
        store_id: store.into(),
        product_id: sku.into(),
        status,
        severity: Severity::High,
        on_hand: 1,
        reorder_point: 4,
        velocity_per_hour: 0.5,
        days_of_cover: 0.1,
        stockout_risk: risk,
        suggested_order_qty: 12,
        reason: "below reorder point".into(),
        timestamp: t,
    }
}

fn window(store: &str, sku: &str, start: DateTime<Utc>, units: i64) -> SalesWindow {
    SalesWindow {
        store_id: store.into(),
        product_id: sku.into(),
        window_start: start,
        window_end: start + chrono::Duration::minutes(5),
        units,
        revenue: units as f64 * 2.5,
        transactions: units,
        avg_price: 2.5,
        distinct_customers: 1,
    }
}

fn anomaly(id: &str, kind: AnomalyKind, score: f64) -> AnomalyFlag {
    AnomalyFlag {
        anomaly_id: id.into(),
        store_id: "store_001".into(),
        product_id: "SKU1".into(),
        kind,
        score,
        detail: "test".into(),
        event_id: None,
        event_time: at(1, 10, 0),
    }
}

/// Load the fixture, with replays and out-of-order updates, through the trait only.
async fn load_fixture(wh: &dyn Warehouse) {
    wh.init().await.unwrap();
    wh.init().await.unwrap(); // idempotent
    let cal = HolidayCalendar::us_federal([2025]);
    wh.load_dimensions(&stores(), &products(), &dim_date(day(1), day(31), &cal)).await.unwrap();

    let sales = all_sales();
    wh.insert_sales(&sales[0..4]).await.unwrap();
    wh.insert_sales(&sales[2..7]).await.unwrap(); // overlaps s3, s4
    wh.insert_sales(&sales[0..4]).await.unwrap(); // replay of the first batch

    let inventory = vec![
        inv("i1", 1, "store_001", "SKU1", 0),
        inv("i2", 1, "store_002", "SKU1", 5),
        inv("i3", 2, "store_001", "SKU3", 0),
        inv("i4", 2, "store_002", "SKU2", -1),
    ];
    wh.insert_inventory(&inventory).await.unwrap();
    wh.insert_inventory(&inventory[0..1]).await.unwrap();

    wh.upsert_stock(&[stock("store_001", "SKU1", 5, 0.2, at(1, 10, 0)), stock("store_002", "SKU2", 3, 0.8, at(1, 10, 0))]).await.unwrap();
    wh.upsert_stock(&[stock("store_001", "SKU1", 0, 0.95, at(1, 11, 0)), stock("store_001", "SKU3", 10, 0.1, at(1, 11, 0))]).await.unwrap();
    // Arrives late: older than what is stored, must not win.
    wh.upsert_stock(&[stock("store_001", "SKU1", 9, 0.0, at(1, 9, 0))]).await.unwrap();

    wh.insert_alerts(&[
        alert("a1", "store_001", "SKU1", AlertStatus::Open, at(1, 10, 0), 0.9),
        alert("a2", "store_002", "SKU2", AlertStatus::Open, at(1, 10, 0), 0.8),
    ])
    .await
    .unwrap();
    wh.insert_alerts(&[alert("a3", "store_002", "SKU2", AlertStatus::Resolved, at(1, 11, 0), 0.1)]).await.unwrap();
    wh.insert_alerts(&[alert("a1", "store_001", "SKU1", AlertStatus::Open, at(1, 10, 0), 0.9)]).await.unwrap();

    wh.upsert_sales_windows(&[window("store_001", "SKU1", at(1, 10, 0), 2), window("store_002", "SKU2", at(1, 10, 5), 1)]).await.unwrap();
    wh.upsert_sales_windows(&[window("store_001", "SKU1", at(1, 10, 0), 3)]).await.unwrap(); // later emission replaces

    wh.insert_anomalies(&[anomaly("an1", AnomalyKind::QuantityOutlier, 5.0), anomaly("an2", AnomalyKind::PriceOutlier, 3.0)]).await.unwrap();
    wh.insert_anomalies(&[anomaly("an1", AnomalyKind::QuantityOutlier, 5.0)]).await.unwrap();

    let f = |v: f64, t: DateTime<Utc>| FeatureValue {
        feature_set: "demand_v1".into(),
        entity_id: "store_001|SKU1".into(),
        feature_date: day(1),
        feature_name: "sales_7d".into(),
        value: v,
        computed_at: t,
    };
    wh.upsert_features(&[f(1.0, at(2, 8, 0))]).await.unwrap();
    wh.upsert_features(&[f(2.0, at(3, 8, 0))]).await.unwrap();
    let p = |units: f64, t: DateTime<Utc>| Prediction {
        model: "demand-forecast".into(),
        model_version: 1,
        store_id: "store_001".into(),
        product_id: "SKU1".into(),
        target_date: day(5),
        predicted_units: units,
        lower_units: units - 1.0,
        upper_units: units + 1.0,
        reorder_qty: 6.0,
        created_at: t,
    };
    wh.upsert_predictions(&[p(4.0, at(3, 9, 0)), p(7.0, at(2, 9, 0))]).await.unwrap();
    wh.flush().await.unwrap();
}

fn golden_queries() -> Vec<(&'static str, String)> {
    let mut q = queries::dashboard_set(day(1), day(31), at(1, 0, 0));
    q.push(("count_sales", "SELECT COUNT(*) AS n, SUM(quantity) AS units FROM fact_sales".into()));
    q.push(("count_inventory", "SELECT COUNT(*) AS n FROM fact_inventory".into()));
    q.push(("features", "SELECT entity_id, feature_name, value FROM feature_store ORDER BY entity_id, feature_name".into()));
    q.push(("predictions", "SELECT model, store_id, product_id, target_date, predicted_units FROM predictions ORDER BY store_id".into()));
    q.push(("dim_date_january", "SELECT SUM(is_weekend) AS weekend_days, SUM(is_holiday) AS holidays, COUNT(*) AS days FROM dim_date".into()));
    q
}

/// Numbers compared with a relative tolerance (float sums may differ in the last bits).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w))),
        _ => a == b,
    }
}

async fn results(wh: &dyn Warehouse) -> Value {
    let mut out = serde_json::Map::new();
    for (name, sql) in golden_queries() {
        let r = wh.query(&sql).await.unwrap_or_else(|e| panic!("{} query {name} failed: {e}\n{sql}", wh.backend()));
        out.insert(name.to_string(), json!({"columns": r.columns, "rows": r.rows}));
    }
    Value::Object(out)
}

/// The shared body: load, check the hand-computed headline numbers, compare with the golden file.
async fn contract(wh: Arc<dyn Warehouse>) {
    load_fixture(wh.as_ref()).await;
    let got = results(wh.as_ref()).await;

    // Hand-computed from the fixture (each sale once despite the overlap and the replay).
    assert_eq!(got["count_sales"]["rows"], json!([[7, 14]]), "{}", wh.backend());
    assert_eq!(got["count_inventory"]["rows"], json!([[4]]));
    assert!(same(&got["kpis"]["rows"], &json!([[60.98, 31.98, 14, 7]])), "{}: {}", wh.backend(), got["kpis"]);
    assert!(
        same(&got["revenue_by_day"]["rows"], &json!([["2025-01-01", 29.5, 7, 15.5], ["2025-01-02", 22.48, 3, 11.48], ["2025-01-04", 9.0, 4, 5.0]])),
        "{}",
        got["revenue_by_day"]
    );
    assert!(same(&got["revenue_by_category"]["rows"], &json!([["food", 31.0, 17.0, 11], ["toys", 29.98, 14.98, 3]])), "{}", got["revenue_by_category"]);
    assert_eq!(got["current_stockouts"]["rows"], json!([["store_001", "SKU1", 0, 4, "2025-01-01 11:00:00"]]));
    assert_eq!(got["open_alerts"]["rows"].as_array().unwrap().len(), 1, "{}", got["open_alerts"]);
    assert!(
        same(&got["latest_windows"]["rows"], &json!([["2025-01-01 10:00:00", 3, 7.5, 3], ["2025-01-01 10:05:00", 1, 2.5, 1]])),
        "{}",
        got["latest_windows"]
    );
    assert!(same(&got["features"]["rows"], &json!([["store_001|SKU1", "sales_7d", 2.0]])));
    assert!(same(&got["predictions"]["rows"], &json!([["demand-forecast", "store_001", "SKU1", "2025-01-05", 4.0]])));
    // January 2025: 8 weekend days; New Year's Day and MLK Day.
    assert_eq!(got["dim_date_january"]["rows"], json!([[8, 2, 31]]));

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/dashboard.json");
    if std::env::var("RETAIL_UPDATE_GOLDEN").is_ok() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
    }
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("golden file")).unwrap();
    for (name, _) in golden_queries() {
        assert!(same(&got[name], &golden[name]), "{} differs from golden on {name}:\n got {}\nwant {}", wh.backend(), got[name], golden[name]);
    }
}

/// A batch larger than one dedup lookup (ClickHouse sends ids in chunks under its query-size
/// limit), loaded twice and then overlapped: counted once. Call after `contract` (7 sales).
async fn big_batch_replay(wh: &dyn Warehouse) {
    let big: Vec<FactSale> = (0..12_000u32)
        .map(|i| sale(&retail_core::stable_event_id(&[b"big".as_slice(), &i.to_le_bytes()]), 10 + i % 3, "store_001", "SKU2", 1, 4.0, 2.0))
        .collect();
    wh.insert_sales(&big).await.unwrap();
    wh.insert_sales(&big).await.unwrap();
    wh.insert_sales(&big[11_000..]).await.unwrap();
    wh.flush().await.unwrap();
    let r = wh.query("SELECT COUNT(*) AS n, SUM(revenue) AS r FROM fact_sales").await.unwrap();
    assert!(same(&json!(r.rows), &json!([[12_007, 60.98 + 48_000.0]])), "{}: {:?}", wh.backend(), r.rows);
    let r = wh.query("SELECT SUM(lines) AS n FROM agg_sales_daily").await.unwrap();
    assert_eq!(r.rows, vec![vec![json!(12_007)]], "{}: rollup counts each sale once", wh.backend());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_backend_contract() {
    let wh = open("embedded", &WarehouseOptions::default(), None).await.unwrap();
    assert_eq!(wh.backend(), "embedded");
    contract(wh.clone()).await;
    big_batch_replay(wh.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_is_durable_across_restarts_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let lake = retail_lake::Lake::open(&format!("file://{}", dir.path().display()), &Default::default()).unwrap();
    durable_across_restarts(lake).await;
}

/// The embedded warehouse with its lake on S3: flushed fact rows are read back from their parts
/// through the S3 object store (queries and merges), as on a local folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: run by .ci/run (RETAIL_TEST_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY, _BUCKET)"]
async fn embedded_on_an_s3_lake_is_durable_across_restarts_without_duplicates() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} must be set for this test"));
    let opts = retail_lake::S3Options {
        endpoint: var("RETAIL_TEST_S3_ENDPOINT"),
        region: "us-east-1".into(),
        access_key_id: var("RETAIL_TEST_S3_ACCESS_KEY"),
        secret_access_key: var("RETAIL_TEST_S3_SECRET_KEY"),
        virtual_hosted_style: false,
        allow_http: true,
    };
    // A fresh prefix per run so leftovers of earlier runs do not interfere.
    let prefix = format!("warehouse-test-{}-{}", std::process::id(), Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let lake = retail_lake::Lake::open(&format!("s3://{}/{prefix}", var("RETAIL_TEST_S3_BUCKET")), &opts).unwrap();
    lake.check().await.unwrap();
    durable_across_restarts(lake).await;
}

async fn durable_across_restarts(lake: retail_lake::Lake) {
    let before = {
        let wh = open("embedded", &WarehouseOptions::default(), Some(lake.clone())).await.unwrap();
        contract(wh.clone()).await;
        results(wh.as_ref()).await
    };
    // A new process: everything is back, and replaying every batch adds nothing. (Parts a
    // merge absorbed go at once here, so the file count below shows the merging.)
    let no_grace = WarehouseOptions { embedded_part_grace: std::time::Duration::ZERO, ..Default::default() };
    let wh = open("embedded", &no_grace, Some(lake.clone())).await.unwrap();
    assert!(same(&results(wh.as_ref()).await, &before));
    load_fixture(wh.as_ref()).await;
    assert!(same(&results(wh.as_ref()).await, &before));
    // Many small flushes merge into few part files.
    for i in 0..40 {
        wh.insert_sales(&[sale(&format!("x{i}"), 3, "store_001", "SKU2", 1, 1.0, 0.5)]).await.unwrap();
        wh.flush().await.unwrap();
    }
    let parts = lake.list("warehouse/fact_sales/").await.unwrap();
    assert!(parts.len() <= 17, "{} parts", parts.len());
    let wh = open("embedded", &WarehouseOptions::default(), Some(lake)).await.unwrap();
    let r = wh.query("SELECT COUNT(*) AS n FROM fact_sales").await.unwrap();
    assert_eq!(r.rows, vec![vec![json!(47)]]);
    let r = wh.query("SELECT SUM(lines) AS n FROM agg_sales_daily").await.unwrap();
    assert_eq!(r.rows, vec![vec![json!(47)]], "rollup rebuilt on load");
}

#[tokio::test]
async fn bad_and_unreachable_warehouse_urls_say_what_was_tried() {
    let err = open("postgres://x", &WarehouseOptions::default(), None).await.err().unwrap();
    assert!(matches!(err, WarehouseError::BadUrl { .. }) && err.to_string().contains("postgres://x"), "{err}");
    let wh = open("clickhouse://127.0.0.1:9", &WarehouseOptions::default(), None).await.unwrap();
    let err = wh.query("SELECT 1").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
}

#[tokio::test]
async fn empty_results_still_name_their_columns() {
    let wh = open("embedded", &WarehouseOptions::default(), None).await.unwrap();
    let r = wh.query(&queries::anomalies_by_kind(at(1, 0, 0))).await.unwrap();
    assert_eq!(r.columns, vec!["kind", "flags", "max_score"]);
    assert!(r.rows.is_empty());
}

#[tokio::test]
async fn sql_errors_are_query_errors_not_retryable() {
    let wh = open("embedded", &WarehouseOptions::default(), None).await.unwrap();
    let err = wh.query("SELECT nope FROM fact_sales").await.unwrap_err();
    assert!(matches!(err, WarehouseError::Query(_)) && !err.is_retryable(), "{err}");
}

/// Needs a real ClickHouse (.ci/services/clickhouse.sh): RETAIL_TEST_CLICKHOUSE=http://127.0.0.1:8123.
/// Uses a fresh database per run and drops it afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ClickHouse: run by .ci/run (RETAIL_TEST_CLICKHOUSE=http://127.0.0.1:8123)"]
async fn clickhouse_backend_contract() {
    let url = std::env::var("RETAIL_TEST_CLICKHOUSE").expect("RETAIL_TEST_CLICKHOUSE must be set for this test");
    let db = format!("retail_test_{}_{}", std::process::id(), Utc::now().timestamp_millis());
    let opts = WarehouseOptions { database: db.clone(), ..Default::default() };
    let wh = open(&url, &opts, None).await.unwrap();
    assert_eq!(wh.backend(), "clickhouse");
    contract(wh.clone()).await;
    wh.init().await.unwrap(); // re-init on a populated schema keeps the data
    assert_eq!(wh.query("SELECT COUNT(*) AS n FROM fact_sales").await.unwrap().rows, vec![vec![json!(7)]]);
    big_batch_replay(wh.as_ref()).await;
    let admin = retail_warehouse::clickhouse::ClickHouseWarehouse::new(&url, &opts).unwrap();
    admin.execute(&format!("DROP DATABASE {db}")).await.unwrap();
}
