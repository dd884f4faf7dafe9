//! The server over a real (embedded, in-memory) warehouse: what is inserted is what the API,
//! the SSE stream and /metrics show.

use chrono::{TimeZone, Utc};
use retail_core::{FactSale, StockLevel};
use retail_server::{NoLiveStatus, ServerOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn sale(id: &str, store: &str, qty: i32, price: f64) -> FactSale {
    let t = Utc::now() - chrono::Duration::minutes(30);
    FactSale {
        sale_id: id.into(),
        date_key: t.date_naive(),
        product_key: "SKU000001".into(),
        store_key: store.into(),
        quantity: qty,
        revenue: qty as f64 * price,
        cost: qty as f64 * price * 0.6,
        profit: qty as f64 * price * 0.4,
        unit_price: price,
        discount_pct: 0.0,
        basket_id: format!("b-{id}"),
        customer_id: None,
        payment_method: "cash".into(),
        event_time: t,
    }
}

fn stock(store: &str, sku: &str, on_hand: i32, risk: f64) -> StockLevel {
    StockLevel {
        store_id: store.into(),
        product_id: sku.into(),
        on_hand,
        reorder_point: 10,
        velocity_per_hour: 1.5,
        days_of_cover: on_hand as f64 / 36.0,
        stockout_risk: risk,
        updated_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_snapshot_sse_and_metrics_show_the_warehouse() {
    let warehouse = retail_warehouse::open("embedded", &Default::default(), None).await.unwrap();
    warehouse.init().await.unwrap();
    warehouse.insert_sales(&[sale("s1", "store_001", 2, 5.0), sale("s2", "store_002", 3, 10.0)]).await.unwrap();
    // A replayed row must not be counted twice on the page either.
    warehouse.insert_sales(&[sale("s1", "store_001", 2, 5.0)]).await.unwrap();
    warehouse.upsert_stock(&[stock("store_001", "SKU1", 50, 0.05), stock("store_002", "SKU2", 1, 0.93), stock("store_001", "SKU3", 8, 0.4)]).await.unwrap();
    warehouse.flush().await.unwrap();

    let cancel = CancellationToken::new();
    let options = ServerOptions { listen: "127.0.0.1:0".parse().unwrap(), refresh: Duration::from_millis(100) };
    let server = retail_server::bind(options, warehouse, Arc::new(NoLiveStatus), cancel.clone()).await.unwrap();
    let base = format!("http://{}", server.local_addr);
    let serving = tokio::spawn(server.serve(cancel.clone()));
    let http = reqwest::Client::new();

    let mut snapshot = serde_json::Value::Null;
    for _ in 0..100 {
        snapshot = http.get(format!("{base}/api/snapshot")).send().await.unwrap().json().await.unwrap();
        if snapshot["generation"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(snapshot["errors"].as_array().unwrap().is_empty(), "query errors: {}", snapshot["errors"]);
    let totals = &snapshot["totals"][0];
    assert_eq!(totals["sale_lines"].as_f64(), Some(2.0), "{totals}");
    assert_eq!(totals["total_units"].as_f64(), Some(5.0), "{totals}");
    assert_eq!(totals["total_revenue"].as_f64(), Some(40.0), "{totals}");
    let risk: Vec<&str> = snapshot["riskiest"].as_array().unwrap().iter().map(|r| r["product_id"].as_str().unwrap()).collect();
    assert_eq!(risk, ["SKU2", "SKU3", "SKU1"], "riskiest first");

    let parts = http.get(format!("{base}/api/risk")).send().await.unwrap().json::<serde_json::Value>().await.unwrap();
    assert_eq!(parts.as_array().unwrap().len(), 3);

    // SSE: the first event is a full snapshot.
    let mut sse = http.get(format!("{base}/api/stream")).send().await.unwrap();
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), sse.chunk()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.starts_with("event: snapshot\ndata: {"), "{text:.200}");
    assert!(text.contains("\"sale_lines\":2"), "{text:.400}");

    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("retail_dashboard_generation_total"), "{metrics}");
    let page = http.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("/assets/chart.umd.min.js"));

    cancel.cancel();
    drop(sse);
    tokio::time::timeout(Duration::from_secs(10), serving).await.expect("graceful shutdown").unwrap().unwrap();
}
