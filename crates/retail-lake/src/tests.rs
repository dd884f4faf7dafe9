//! The lake's contract, run against a local folder and (ignored unless run by .ci/run) a real
//! S3-compatible server.

use super::*;
use chrono::{NaiveDate, TimeZone, Utc};
use retail_core::*;

fn sale(n: u32, day: u32) -> Event {
    Event::Sale(SaleTransaction {
        event_type: EventType::Sale,
        schema_version: SCHEMA_VERSION,
        transaction_id: format!("t-{day}-{n}"),
        basket_id: format!("b-{n}"),
        store_id: "store_001".into(),
        product_id: format!("SKU{:03}", n % 7),
        quantity: (n % 3 + 1) as i32,
        unit_price: 29.99,
        list_price: 34.99,
        discount_pct: 0.1428,
        promotion_id: if n.is_multiple_of(2) { Some("promo-1".into()) } else { None },
        timestamp: Utc.with_ymd_and_hms(2025, 1, day, 10, 30, n % 60).unwrap() + chrono::Duration::microseconds(123_456),
        customer_id: if n.is_multiple_of(3) { None } else { Some(format!("cust_{n}")) },
        payment_method: PaymentMethod::CreditCard,
    })
}

fn inv(n: u32, day: u32) -> Event {
    Event::Inventory(InventoryUpdate {
        event_type: EventType::InventoryUpdate,
        schema_version: SCHEMA_VERSION,
        inventory_id: format!("i-{day}-{n}"),
        store_id: "store_002".into(),
        product_id: "SKU123".into(),
        quantity_change: -2,
        previous_quantity: 50,
        new_quantity: 48,
        reason: InventoryReason::Sale,
        reference_id: Some(format!("t-{n}")),
        timestamp: Utc.with_ymd_and_hms(2025, 1, day, 11, 0, 0).unwrap(),
    })
}

fn price(n: u32, day: u32) -> Event {
    Event::Price(PriceChange {
        event_type: EventType::PriceChange,
        schema_version: SCHEMA_VERSION,
        price_change_id: format!("p-{day}-{n}"),
        store_id: "store_003".into(),
        product_id: "SKU9".into(),
        old_price: 10.0,
        new_price: 8.5,
        reason: PriceChangeReason::Promotion,
        promotion_id: Some("promo-2".into()),
        timestamp: Utc.with_ymd_and_hms(2025, 1, day, 9, 0, 0).unwrap(),
    })
}

fn alert(n: u32, day: u32) -> Event {
    Event::Alert(RestockAlert {
        event_type: EventType::RestockAlert,
        schema_version: SCHEMA_VERSION,
        alert_id: format!("a-{day}-{n}"),
        store_id: "store_003".into(),
        product_id: "SKU9".into(),
        status: AlertStatus::Open,
        severity: Severity::High,
        on_hand: 3,
        reorder_point: 10,
        velocity_per_hour: 1.5,
        days_of_cover: 0.2,
        stockout_risk: 0.9,
        suggested_order_qty: 24,
        reason: "below reorder point".into(),
        timestamp: Utc.with_ymd_and_hms(2025, 1, day, 12, 0, 0).unwrap(),
    })
}

fn customer(n: u32, day: u32) -> Event {
    Event::Customer(CustomerEvent {
        event_type: EventType::CustomerEvent,
        schema_version: SCHEMA_VERSION,
        customer_event_id: format!("c-{day}-{n}"),
        store_id: "store_001".into(),
        customer_id: "cust_1".into(),
        action: CustomerAction::StoreVisit,
        loyalty_points: None,
        timestamp: Utc.with_ymd_and_hms(2025, 1, day, 8, 0, 0).unwrap(),
    })
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, d).unwrap()
}

/// One batch spanning two days and every kind.
fn mixed_batch(range: std::ops::Range<u32>) -> Vec<Event> {
    let mut v = Vec::new();
    for n in range {
        let d = 1 + n % 2;
        v.push(sale(n, d));
        v.push(inv(n, d));
        v.push(price(n, d));
        v.push(alert(n, d));
        v.push(customer(n, d));
    }
    v
}

fn sorted_ids(events: &[Event]) -> Vec<String> {
    let mut ids: Vec<String> = events.iter().map(|e| e.event_id().to_string()).collect();
    ids.sort();
    ids
}

/// The whole contract against any lake. Keys are relative to the lake root, so each run
/// should get a fresh root (temp dir, or a unique S3 prefix).
async fn lake_contract(lake: &Lake) {
    // Small objects: put/get/overwrite/delete; missing → None.
    assert_eq!(lake.get("state/none.json").await.unwrap(), None);
    lake.put("state/stream/p0.json", Bytes::from_static(b"{\"offset\":1}")).await.unwrap();
    lake.put("state/stream/p0.json", Bytes::from_static(b"{\"offset\":2}")).await.unwrap();
    assert_eq!(lake.get("state/stream/p0.json").await.unwrap().unwrap(), Bytes::from_static(b"{\"offset\":2}"));
    lake.delete("state/stream/p0.json").await.unwrap();
    lake.delete("state/stream/p0.json").await.unwrap();
    assert_eq!(lake.get("state/stream/p0.json").await.unwrap(), None);

    // Raw layout: one file per kind and day, named after the batch.
    let batch = mixed_batch(0..10);
    lake.write_raw("retail-sales-transactions/0/0-9", &batch).await.unwrap();
    let keys: Vec<String> = lake.list("raw-data/").await.unwrap().into_iter().map(|o| o.key).collect();
    let name = safe_batch_id("retail-sales-transactions/0/0-9");
    assert!(name.starts_with("retail-sales-transactions_0_0-9-"), "{name}");
    let mut expected = Vec::new();
    for kind in ["events", "inventory", "sales"] {
        for d in ["01", "02"] {
            expected.push(format!("raw-data/{kind}/year=2025/month=01/day={d}/part-{name}.parquet"));
        }
    }
    assert_eq!(keys, expected);
    assert_eq!(lake.raw_days(RawKind::Sales).await.unwrap(), vec![day(1), day(2)]);

    // Round trip: exactly the events written, every field intact.
    let mut back = Vec::new();
    for kind in RawKind::ALL {
        for d in [day(1), day(2)] {
            back.extend(lake.read_raw(kind, d).await.unwrap());
        }
    }
    assert_eq!(back.len(), batch.len());
    for e in &batch {
        assert!(back.contains(e), "lost or altered: {e:?}");
    }

    // Same batch id again (a retry after a crash): same objects, no new rows.
    lake.write_raw("retail-sales-transactions/0/0-9", &batch).await.unwrap();
    assert_eq!(lake.list("raw-data/").await.unwrap().len(), 6);
    assert_eq!(lake.read_raw(RawKind::Sales, day(1)).await.unwrap().len(), 5);

    // A replay cut at different boundaries (5..15 overlaps 5..9): readers still see each event once.
    lake.write_raw("retail-sales-transactions/0/5-14", &mixed_batch(5..15)).await.unwrap();
    let sales_d1 = lake.read_raw(RawKind::Sales, day(1)).await.unwrap();
    assert_eq!(sales_d1.len(), 8, "{:?}", sorted_ids(&sales_d1));

    // Compaction: one file per kind and day, duplicates gone, nothing lost.
    let before: Vec<Event> = lake.read_raw(RawKind::Events, day(2)).await.unwrap();
    let report = lake.compact(day(2)).await.unwrap();
    assert_eq!(report.files_before, 6);
    assert_eq!(report.files_after, 3);
    // day 2 holds odd n in 0..15: 7 distinct per kind (sales, inventory) and 3×7 events;
    // files before held 5 + 5 per kind (the overlap 5,7,9 counted twice).
    assert_eq!(report.rows_after, 7 + 7 + 21);
    assert_eq!(report.rows_before, (5 + 5) * 5);
    let after = lake.read_raw(RawKind::Events, day(2)).await.unwrap();
    assert_eq!(sorted_ids(&before), sorted_ids(&after));
    let d2_keys: Vec<String> = lake.list(&raw_day_prefix(RawKind::Sales, day(2))).await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(d2_keys.len(), 1);
    assert!(d2_keys[0].contains("/compacted-"), "{d2_keys:?}");
    // Compacting again is a no-op.
    let again = lake.compact(day(2)).await.unwrap();
    assert_eq!((again.files_before, again.files_after, again.rows_after), (3, 3, 35));
    // Day 1 untouched.
    assert_eq!(lake.list(&raw_day_prefix(RawKind::Sales, day(1))).await.unwrap().len(), 2);

    // Models.
    assert_eq!(lake.latest_model_version("demand-forecast").await.unwrap(), None);
    lake.put_model("demand-forecast", 1, "model.json", Bytes::from_static(b"{}")).await.unwrap();
    lake.put_model("demand-forecast", 2, "model.json", Bytes::from_static(b"{}")).await.unwrap();
    assert_eq!(lake.latest_model_version("demand-forecast").await.unwrap(), Some(2));
    assert!(lake.get("models/demand-forecast/v2/model.json").await.unwrap().is_some());
}

/// Rows already in Arrow form (what the stream processor hands over: several batches, one of
/// them spanning two days) land as the same objects with the same events as `write_raw` of
/// those events.
#[tokio::test]
async fn raw_batches_land_like_the_events_they_hold() {
    let (by_events, by_batches) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let open = |dir: &tempfile::TempDir| Lake::open(&format!("file://{}", dir.path().display()), &S3Options::default()).unwrap();
    let (a, b) = (open(&by_events), open(&by_batches));
    let events = mixed_batch(0..40);
    let sales: Vec<&SaleTransaction> = events.iter().filter_map(|e| if let Event::Sale(s) = e { Some(s) } else { None }).collect();
    let inventory: Vec<&InventoryUpdate> = events.iter().filter_map(|e| if let Event::Inventory(i) = e { Some(i) } else { None }).collect();
    let (sale_events, inventory_events): (Vec<&Event>, Vec<&Event>) =
        (events.iter().filter(|e| matches!(e, Event::Sale(_))).collect(), events.iter().filter(|e| matches!(e, Event::Inventory(_))).collect());
    a.write_raw("retail-sales-transactions/0/0-39", sale_events.iter().copied()).await.unwrap();
    a.write_raw("retail-inventory-updates/0/0-39", inventory_events.iter().copied()).await.unwrap();

    // Three batches of sales (each across both days) and one of inventory, from the builders.
    let mut raw_sales = RawSales::default();
    let mut sale_batches = Vec::new();
    for chunk in sales.chunks(15) {
        chunk.iter().for_each(|s| raw_sales.push(s));
        sale_batches.push(raw_sales.finish().unwrap());
    }
    assert_eq!(sale_batches.len(), 3);
    assert!(raw_sales.is_empty(), "finish empties the builder");
    let mut raw_inventory = RawInventory::default();
    inventory.iter().for_each(|i| raw_inventory.push(i));
    b.write_raw_batches("retail-sales-transactions/0/0-39", RawKind::Sales, &sale_batches).await.unwrap();
    b.write_raw_batches("retail-inventory-updates/0/0-39", RawKind::Inventory, &[raw_inventory.finish().unwrap()]).await.unwrap();

    let keys = |lake: &Lake| {
        let lake = lake.clone();
        async move { lake.list("raw-data/").await.unwrap().into_iter().map(|o| o.key).collect::<Vec<_>>() }
    };
    let written = keys(&b).await;
    assert_eq!(written, keys(&a).await);
    assert_eq!(written.len(), 4, "two kinds × two days: {written:?}");
    for kind in [RawKind::Sales, RawKind::Inventory] {
        for d in [day(1), day(2)] {
            let (want, got) = (a.read_raw(kind, d).await.unwrap(), b.read_raw(kind, d).await.unwrap());
            assert!(!want.is_empty());
            assert_eq!(got, want, "{kind:?} {d}");
        }
    }
}

#[tokio::test]
async fn local_lake_contract() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&format!("file://{}", dir.path().display()), &S3Options::default()).unwrap();
    lake.check().await.unwrap();
    lake_contract(&lake).await;
    // Files really are in the seed's folders on disk.
    assert!(dir.path().join("raw-data/sales/year=2025/month=01/day=02").is_dir());
}

#[tokio::test]
async fn rolling_writer_rolls_by_size_and_age_with_content_ids() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&format!("file://{}", dir.path().display()), &S3Options::default()).unwrap();
    let policy = RollPolicy { max_events: 10, max_age: std::time::Duration::from_millis(50) };
    let mut w = RollingWriter::new(lake.clone(), "p0", policy);
    let sales: Vec<Event> = (0..25).map(|n| sale(n, 1)).collect();
    // 4 events: below the size limit, not yet due.
    assert_eq!(w.append(sales[0..4].iter().cloned()).await.unwrap(), None);
    assert!(!w.is_due());
    // 6 more: size limit → one file.
    let id1 = w.append(sales[4..10].iter().cloned()).await.unwrap().expect("rolled at 10");
    assert_eq!(id1, rolling::content_batch_id("p0", &sales[0..10]));
    assert_eq!(w.buffered(), 0);
    w.append(sales[10..13].iter().cloned()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    assert!(w.is_due());
    assert!(w.flush_if_due().await.unwrap().is_some());
    assert_eq!(lake.list("raw-data/sales/").await.unwrap().len(), 2);
    assert_eq!(lake.read_raw(RawKind::Sales, day(1)).await.unwrap().len(), 13);
    // A replay of the same events makes the same file, not a new one.
    let mut w2 = RollingWriter::new(lake.clone(), "p0", policy);
    assert_eq!(w2.append(sales[0..10].iter().cloned()).await.unwrap(), Some(id1));
    assert_eq!(lake.list("raw-data/sales/").await.unwrap().len(), 2);
}

#[test]
fn bad_urls_are_rejected_with_the_url() {
    for url in ["/tmp/x", "ftp://x/y", "s3://", "file://"] {
        let err = Lake::open(url, &S3Options::default()).unwrap_err();
        assert!(matches!(err, LakeError::BadUrl { .. }), "{url}: {err}");
        assert!(err.to_string().contains(url), "{err}");
    }
}

#[tokio::test]
async fn unreachable_s3_is_a_retryable_error_naming_the_url() {
    // Port 9 (discard) on localhost: nothing listens there.
    let opts = S3Options { endpoint: "http://127.0.0.1:9".into(), access_key_id: "k".into(), secret_access_key: "s".into(), ..Default::default() };
    let lake = Lake::open("s3://nobucket/p", &opts).unwrap();
    let err = lake.check().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("s3://nobucket/p"), "{err}");
}

#[test]
fn layout_helpers() {
    assert_eq!(raw_day_prefix(RawKind::Inventory, day(9)), "raw-data/inventory/year=2025/month=01/day=09/");
    assert_eq!(model_prefix("stock-optimization", 1), "models/stock-optimization/v1");
    assert_eq!(features_prefix(FeatureSet::Training, "demand"), "features/training/demand/");
    assert_eq!(day_of_key("raw-data/sales/year=2024/month=12/day=31/part-x.parquet"), NaiveDate::from_ymd_opt(2024, 12, 31));
    assert_eq!(safe_batch_id("ok-1_2.3"), "ok-1_2.3");
    assert_ne!(safe_batch_id("a/b"), safe_batch_id("a_b"));
}

/// Needs a real S3-compatible server (.ci/services/s3.sh starts s3s-fs):
/// RETAIL_TEST_S3_ENDPOINT=http://127.0.0.1:8014 RETAIL_TEST_S3_ACCESS_KEY=K
/// RETAIL_TEST_S3_SECRET_KEY=S RETAIL_TEST_S3_BUCKET=retail-test
#[tokio::test]
#[ignore = "needs an S3 server: run by .ci/run (RETAIL_TEST_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY, _BUCKET)"]
async fn s3_lake_contract() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} must be set for this test"));
    let opts = S3Options {
        endpoint: var("RETAIL_TEST_S3_ENDPOINT"),
        region: "us-east-1".into(),
        access_key_id: var("RETAIL_TEST_S3_ACCESS_KEY"),
        secret_access_key: var("RETAIL_TEST_S3_SECRET_KEY"),
        virtual_hosted_style: false,
        allow_http: true,
    };
    // A fresh prefix per run so leftovers of earlier runs do not interfere.
    let prefix = format!("test-{}", uuid::Uuid::new_v4());
    let lake = Lake::open(&format!("s3://{}/{prefix}", var("RETAIL_TEST_S3_BUCKET")), &opts).unwrap();
    lake.check().await.unwrap();
    lake_contract(&lake).await;

    // Wrong secret: refused, not retryable, and the message says what to check.
    let wrong = S3Options { secret_access_key: "wrong".into(), ..opts };
    let lake = Lake::open(&format!("s3://{}/{prefix}", var("RETAIL_TEST_S3_BUCKET")), &wrong).unwrap();
    let err = lake.check().await.unwrap_err();
    assert!(matches!(err, LakeError::Auth { .. }) && !err.is_retryable(), "{err}");
    assert!(err.to_string().contains("credentials"), "{err}");
}
