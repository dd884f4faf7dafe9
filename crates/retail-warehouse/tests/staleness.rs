//! The embedded warehouse's snapshot staleness: 0 means read-your-writes; a positive bound lets
//! a busy dashboard reuse a snapshot instead of rebuilding one per insert.

use chrono::Utc;
use retail_core::FactSale;
use retail_warehouse::{Warehouse, WarehouseOptions};
use std::time::Duration;

fn sale(id: &str) -> FactSale {
    let t = Utc::now();
    FactSale {
        sale_id: id.into(),
        date_key: t.date_naive(),
        product_key: "SKU1".into(),
        store_key: "store_001".into(),
        quantity: 1,
        revenue: 2.0,
        cost: 1.0,
        profit: 1.0,
        unit_price: 2.0,
        discount_pct: 0.0,
        basket_id: "b".into(),
        customer_id: None,
        payment_method: "cash".into(),
        event_time: t,
    }
}

async fn count(wh: &dyn Warehouse) -> String {
    let r = wh.query("SELECT COUNT(*) AS n FROM fact_sales").await.unwrap();
    r.rows[0][0].to_string()
}

#[tokio::test]
async fn zero_staleness_reads_every_insert_and_a_bound_reuses_the_snapshot() {
    let exact = retail_warehouse::open("embedded", &WarehouseOptions::default(), None).await.unwrap();
    exact.init().await.unwrap();
    exact.insert_sales(&[sale("a")]).await.unwrap();
    assert_eq!(count(&*exact).await, "1");
    exact.insert_sales(&[sale("b")]).await.unwrap();
    assert_eq!(count(&*exact).await, "2", "staleness 0: the second insert is visible at once");

    let options = WarehouseOptions { embedded_max_staleness: Duration::from_secs(3600), ..Default::default() };
    let relaxed = retail_warehouse::open("embedded", &options, None).await.unwrap();
    relaxed.init().await.unwrap();
    relaxed.insert_sales(&[sale("a")]).await.unwrap();
    assert_eq!(count(&*relaxed).await, "1");
    relaxed.insert_sales(&[sale("b")]).await.unwrap();
    assert_eq!(count(&*relaxed).await, "1", "within the bound the earlier snapshot is reused");
}
