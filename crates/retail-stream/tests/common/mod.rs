//! Fixture builders shared by the integration tests: valid contract JSON for each event type.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use retail_bus::{EventBus, Message, Record};
use retail_core::{topics, Event};
use retail_lake::{batches_to_events, Lake, RawKind, S3Options};
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub fn at(hms: &str) -> DateTime<Utc> {
    format!("2025-01-01T{hms}Z").parse().expect("fixture time")
}

pub fn uuid(n: u64) -> String {
    uuid_in(0, n)
}

/// Ids of one test run: the first group is the run, so runs sharing a broker stay apart.
pub fn uuid_in(run: u32, n: u64) -> String {
    format!("{run:08x}-0000-4000-8000-{n:012}")
}

#[allow(clippy::too_many_arguments)] // one argument per event field a test varies
pub fn sale_in(run: u32, n: u64, store: &str, sku: &str, qty: i32, list: f64, discount: f64, t: DateTime<Utc>, cust: Option<&str>) -> String {
    sale(n, store, sku, qty, list, discount, t, cust).replace(&uuid(n), &uuid_in(run, n)).replace(&uuid(1_000_000 + n), &uuid_in(run, 1_000_000 + n))
}

#[allow(clippy::too_many_arguments)] // one argument per event field a test varies
pub fn inventory_in(run: u32, n: u64, store: &str, sku: &str, prev: i32, change: i32, reason: &str, t: DateTime<Utc>) -> String {
    inventory(n, store, sku, prev, change, reason, t).replace(&uuid(n), &uuid_in(run, n))
}

/// A sale line; `discount` > 0 names a promotion, as the contract requires.
#[allow(clippy::too_many_arguments)] // one argument per event field a test varies
pub fn sale(n: u64, store: &str, sku: &str, qty: i32, list: f64, discount: f64, t: DateTime<Utc>, cust: Option<&str>) -> String {
    let unit = ((list * (1.0 - discount)) * 100.0).round() / 100.0;
    serde_json::json!({
        "event_type": "sale", "schema_version": 1,
        "transaction_id": uuid(n), "basket_id": uuid(1_000_000 + n),
        "store_id": store, "product_id": sku, "quantity": qty,
        "unit_price": unit, "list_price": list, "discount_pct": discount,
        "promotion_id": if discount > 0.0 { Some("promo_1") } else { None },
        "timestamp": t.to_rfc3339(), "customer_id": cust, "payment_method": "credit_card",
    })
    .to_string()
}

pub fn inventory(n: u64, store: &str, sku: &str, prev: i32, change: i32, reason: &str, t: DateTime<Utc>) -> String {
    serde_json::json!({
        "event_type": "inventory_update", "schema_version": 1,
        "inventory_id": uuid(n), "store_id": store, "product_id": sku,
        "quantity_change": change, "previous_quantity": prev, "new_quantity": prev + change,
        "reason": reason, "reference_id": null, "timestamp": t.to_rfc3339(),
    })
    .to_string()
}

pub fn price(n: u64, store: &str, sku: &str, old: f64, new: f64, t: DateTime<Utc>) -> String {
    serde_json::json!({
        "event_type": "price_change", "schema_version": 1, "price_change_id": uuid(n),
        "store_id": store, "product_id": sku, "old_price": old, "new_price": new,
        "reason": "cost_change", "promotion_id": null, "timestamp": t.to_rfc3339(),
    })
    .to_string()
}

/// A bus record that arrived one second after its event time.
pub fn msg(topic: &str, partition: i32, offset: i64, payload: &str, arrival: DateTime<Utc>) -> Message {
    Message { topic: topic.into(), partition, offset, key: None, payload: payload.as_bytes().to_vec().into(), timestamp_ms: arrival.timestamp_millis() }
}

pub fn sales_msg(offset: i64, payload: &str, t: DateTime<Utc>) -> Message {
    msg(topics::SALES, 0, offset, payload, t + chrono::Duration::seconds(1))
}

pub fn inv_msg(offset: i64, payload: &str, t: DateTime<Utc>) -> Message {
    msg(topics::INVENTORY, 0, offset, payload, t + chrono::Duration::seconds(1))
}

/// Compare `actual` with the golden file `tests/golden/<name>.json`; `RETAIL_UPDATE_GOLDEN=1`
/// rewrites it (then review the diff: the file is the specification).
pub fn golden(name: &str, actual: &serde_json::Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.json"));
    let rendered = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("RETAIL_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (RETAIL_UPDATE_GOLDEN=1 creates it)", path.display()));
    let expected: serde_json::Value = serde_json::from_str(&expected).unwrap();
    assert!(expected == *actual, "golden {name} differs.\nexpected: {}\nactual:   {rendered}", serde_json::to_string_pretty(&expected).unwrap());
}

/// What the sinks must hold at the end.
#[derive(Default)]
pub struct Expected {
    pub sale_ids: HashSet<String>,
    pub inventory_ids: HashSet<String>,
    pub revenue_cents: i64,
    pub invalid: usize,
}

/// A deterministic pseudo-random sequence (no dependency, reproducible failures).
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` records over 40 stores × 60 SKUs: sales, the inventory movements they cause, restocks,
/// and 1 % malformed records and 0.5 % re-sent duplicates mixed in.
pub fn generate(n: usize, seed: u64, run: u32) -> (Vec<(&'static str, String, String)>, Expected) {
    let uuid = |n: u64| uuid_in(run, n);
    let mut rng = Lcg(seed);
    let mut exp = Expected::default();
    let mut out: Vec<(&'static str, String, String)> = Vec::with_capacity(n);
    let mut stock: HashMap<(u64, u64), i32> = HashMap::new();
    let mut t = at("00:00:00");
    let mut id = 0u64;
    while out.len() < n {
        t += chrono::Duration::milliseconds(50);
        let store_n = 1 + rng.below(40);
        let store = format!("store_{store_n:03}");
        let sku_n = 1 + rng.below(60);
        let sku = format!("SKU{sku_n}");
        id += 1;
        match rng.below(200) {
            0 | 1 => {
                let good = sale_in(run, id, &store, &sku, 1, 3.0, 0.0, t, None);
                out.push((topics::SALES, store, good[..good.len() / 2].to_string()));
                exp.invalid += 1;
            }
            2 if !out.is_empty() => {
                // Re-send a recent record verbatim (a producer retry): must be dropped. Recent:
                // within the last 2,000 records (≤ 100 s of event time), well inside the
                // processor's dedup horizon; a re-send from further back than the horizon is
                // indistinguishable from a new event (see docs/stream.md).
                let back = rng.below(out.len().min(2_000) as u64) as usize;
                let k = out.len() - 1 - back;
                let dup = out[k].clone();
                out.push(dup);
            }
            _ => {
                let on_hand = stock.entry((store_n, sku_n)).or_insert(0);
                if *on_hand < 5 {
                    let pl = inventory_in(run, id, &store, &sku, *on_hand, 100, "restock", t);
                    exp.inventory_ids.insert(uuid(id));
                    *on_hand += 100;
                    out.push((topics::INVENTORY, store.clone(), pl));
                    id += 1;
                }
                let qty = 1 + rng.below(4) as i32;
                let list = 1.0 + (sku_n as f64) * 0.25;
                let cust = format!("cust_{}", rng.below(5000));
                out.push((topics::SALES, store.clone(), sale_in(run, id, &store, &sku, qty, list, 0.0, t, Some(&cust))));
                exp.sale_ids.insert(uuid(id));
                exp.revenue_cents += (qty as f64 * list * 100.0).round() as i64;
                id += 1;
                out.push((topics::INVENTORY, store.clone(), inventory_in(run, id, &store, &sku, *on_hand, -qty, "sale", t)));
                exp.inventory_ids.insert(uuid(id));
                *on_hand -= qty;
            }
        }
    }
    (out, exp)
}

pub async fn publish_all(bus: &Arc<dyn EventBus>, records: &[(&'static str, String, String)]) {
    for chunk in records.chunks(5000) {
        let recs: Vec<Record> = chunk.iter().map(|(t, k, p)| Record { topic: t, key: k.as_bytes(), payload: p.as_bytes() }).collect();
        bus.publish(&recs).await.expect("publish");
    }
}

pub fn spawn_worker(bus_url: &str, lake_url: &str, group: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_retail-stream-worker"))
        .args([
            "--bus",
            bus_url,
            "--lake",
            lake_url,
            "--group",
            group,
            "--checkpoint-ms",
            "150",
            "--batch",
            "2000",
            "--lake-flush",
            "7000",
            "--warehouse-flush",
            "5000",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn retail-stream-worker")
}

pub fn wait_with_deadline(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("worker did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sinks hold exactly the valid input: every id once, and the revenue sum.
pub async fn verify(lake_url: &str, exp: &Expected, run: u32) {
    let prefix = format!("{run:08x}-");
    let lake = Lake::open(lake_url, &S3Options::default()).unwrap();
    for (kind, ids) in [(RawKind::Sales, &exp.sale_ids), (RawKind::Inventory, &exp.inventory_ids)] {
        let mut rows = 0usize;
        let mut seen = HashSet::new();
        let mut revenue_cents = 0i64;
        for day in lake.raw_days(kind).await.unwrap() {
            // Raw batches as stored, without the reader's own dedup: duplicates must not exist.
            let batches = lake.read_raw_batches(kind, day).await.unwrap();
            for e in batches_to_events(kind, &batches).unwrap() {
                if !e.event_id().starts_with(&prefix) {
                    continue; // another run's records on a shared broker
                }
                rows += 1;
                seen.insert(e.event_id().to_string());
                if let Event::Sale(s) = &e {
                    revenue_cents += (s.quantity as f64 * s.unit_price * 100.0).round() as i64;
                }
            }
        }
        assert_eq!(seen.len(), ids.len(), "{kind:?}: distinct ids in the lake");
        assert_eq!(rows, ids.len(), "{kind:?}: rows in the lake (a difference is a duplicate)");
        assert!(seen == *ids, "{kind:?}: the lake holds other ids than the valid input");
        if kind == RawKind::Sales {
            assert_eq!(revenue_cents, exp.revenue_cents, "lake revenue");
        }
    }
    let wh = retail_warehouse::open("embedded", &retail_warehouse::WarehouseOptions::default(), Some(lake)).await.unwrap();
    let q = wh
        .query(&format!("SELECT COUNT(*) AS n, COUNT(DISTINCT sale_id) AS d, SUM(revenue) AS r FROM fact_sales WHERE sale_id LIKE '{prefix}%'"))
        .await
        .unwrap();
    let num = |v: &serde_json::Value| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap();
    let row = &q.rows[0];
    assert_eq!(num(&row[0]) as usize, exp.sale_ids.len(), "fact_sales rows");
    assert_eq!(num(&row[1]) as usize, exp.sale_ids.len(), "fact_sales distinct ids");
    assert_eq!((num(&row[2]) * 100.0).round() as i64, exp.revenue_cents, "fact_sales revenue");
    let q =
        wh.query(&format!("SELECT COUNT(*) AS n, COUNT(DISTINCT inventory_id) AS d FROM fact_inventory WHERE inventory_id LIKE '{prefix}%'")).await.unwrap();
    assert_eq!(num(&q.rows[0][0]) as usize, exp.inventory_ids.len(), "fact_inventory rows");
    assert_eq!(num(&q.rows[0][1]) as usize, exp.inventory_ids.len(), "fact_inventory distinct ids");
}

/// An embedded bus (topics created) and lake under `dir`: their URLs and the opened bus.
pub async fn embedded_bus_and_lake(dir: &std::path::Path) -> (String, String, Arc<dyn EventBus>) {
    let bus_url = format!("file://{}/bus", dir.display());
    let lake_url = format!("file://{}/lake", dir.display());
    let bus = retail_bus::open(&bus_url, &retail_bus::BusOptions::default()).await.unwrap();
    bus.ensure_topics().await.unwrap();
    (bus_url, lake_url, bus)
}
