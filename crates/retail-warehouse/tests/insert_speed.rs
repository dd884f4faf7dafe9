//! How fast the embedded warehouse takes the stream processor's writes: `retail bench stream`'s
//! workload (1M events = 500k sales + 500k inventory updates over 200 stores × 500 SKUs, in
//! chunks of 10,000 events, windows and stock upserted again and again for the same keys), then
//! a flush to a temporary lake. Prints CPU time per row for each call (and for the flush, per event); asserts only row counts.
//!
//! `cargo test --release -p retail-warehouse --test insert_speed -- --ignored --nocapture`

use chrono::{DateTime, Utc};
use retail_core::{FactInventory, FactSale, SalesWindow, StockLevel};
use retail_lake::Lake;
use retail_warehouse::embedded::EmbeddedWarehouse;
use retail_warehouse::Warehouse;
use std::collections::HashMap;
use std::time::{Duration, Instant};

// The allocator the `retail` binary runs with, so the figures match the service's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAIRS: u64 = 500_000;
const CHUNK_PAIRS: u64 = 5_000;
const WINDOW_MS: i64 = 300_000;
const BASE_MS: i64 = 1_735_689_600_000; // 2025-01-01

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

/// One chunk's rows, filled as `retail-stream`'s processor fills them.
struct Chunk {
    sales: Vec<FactSale>,
    inventory: Vec<FactInventory>,
    windows: Vec<SalesWindow>,
    stock: Vec<StockLevel>,
}

fn chunk(from: u64, on_hand: &mut HashMap<u64, i32>, windows: &mut HashMap<(u64, i64), (i64, f64, i64)>) -> Chunk {
    let n = CHUNK_PAIRS as usize;
    let mut c = Chunk { sales: Vec::with_capacity(n), inventory: Vec::with_capacity(n), windows: Vec::with_capacity(n), stock: Vec::with_capacity(n) };
    for i in from..from + CHUNK_PAIRS {
        let store = format!("store_{:03}", 1 + i % 200);
        let sku_n = 1 + (i / 200) % 500;
        let sku = format!("SKU{sku_n}");
        let ms = BASE_MS + i as i64 * 2;
        let ts = time(ms);
        let qty = 1 + (i % 3) as i32;
        let price = 1.0 + (sku_n % 40) as f64 * 0.5;
        let revenue = (price * qty as f64 * 100.0).round() / 100.0;
        let cost = (revenue * 0.6 * 100.0).round() / 100.0;
        c.sales.push(FactSale {
            sale_id: format!("00000000-0000-4000-8000-{:012}", 2 * i),
            date_key: ts.date_naive(),
            product_key: sku.clone(),
            store_key: store.clone(),
            quantity: qty,
            revenue,
            cost,
            profit: ((revenue - cost) * 100.0).round() / 100.0,
            unit_price: price,
            discount_pct: 0.0,
            basket_id: format!("00000000-0000-4000-9000-{i:012}"),
            customer_id: Some(format!("cust_{}", i % 10_000)),
            payment_method: "credit_card".into(),
            event_time: ts,
        });
        let key = (i % 200) * 1000 + sku_n;
        let oh = on_hand.entry(key).or_insert(1_000_000);
        *oh -= qty;
        c.inventory.push(FactInventory {
            inventory_id: format!("00000000-0000-4000-8000-{:012}", 2 * i + 1),
            date_key: ts.date_naive(),
            product_key: sku.clone(),
            store_key: store.clone(),
            quantity_on_hand: *oh,
            reorder_point: 20,
            safety_stock: 8,
            quantity_change: -qty,
            reason: "sale".into(),
            event_time: ts,
        });
        let ws = ms.div_euclid(WINDOW_MS) * WINDOW_MS;
        let w = windows.entry((key, ws)).or_insert((0, 0.0, 0));
        *w = (w.0 + qty as i64, w.1 + revenue, w.2 + 1);
        c.windows.push(SalesWindow {
            store_id: store.clone(),
            product_id: sku.clone(),
            window_start: time(ws),
            window_end: time(ws + WINDOW_MS),
            units: w.0,
            revenue: (w.1 * 100.0).round() / 100.0,
            transactions: w.2,
            avg_price: w.1 / w.0 as f64,
            distinct_customers: w.2,
        });
        c.stock.push(StockLevel {
            store_id: store,
            product_id: sku,
            on_hand: *oh,
            reorder_point: 20,
            velocity_per_hour: 1.25,
            days_of_cover: 30.5,
            stockout_risk: 0.01,
            updated_at: ts,
        });
    }
    c
}

/// CPU time of the calling thread (the inserts run on it, synchronously): steadier than wall
/// time while other builds share the machine.
fn thread_cpu() -> Duration {
    schedstat("/proc/thread-self/schedstat")
}

/// CPU time of every live thread of the process (flush encodes on worker and blocking threads).
fn process_cpu() -> Duration {
    std::fs::read_dir("/proc/self/task").map_or(Duration::ZERO, |d| d.flatten().map(|t| schedstat(&format!("{}/schedstat", t.path().display()))).sum())
}

fn schedstat(path: &str) -> Duration {
    let ns = std::fs::read_to_string(path).ok().and_then(|s| s.split_whitespace().next()?.parse().ok());
    Duration::from_nanos(ns.unwrap_or(0))
}

fn rate(rows: usize, d: Duration) -> String {
    format!("{:>8.0} k rows/s ({:>6.3} s, {:.3} µs/row)", rows as f64 / d.as_secs_f64() / 1e3, d.as_secs_f64(), d.as_secs_f64() * 1e6 / rows as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --release -- --ignored --nocapture"]
async fn insert_speed() {
    let (mut on_hand, mut windows) = (HashMap::new(), HashMap::new());
    let chunks: Vec<Chunk> = (0..PAIRS / CHUNK_PAIRS).map(|k| chunk(k * CHUNK_PAIRS, &mut on_hand, &mut windows)).collect();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&format!("file://{}", dir.path().display()), &Default::default()).unwrap();
    let wh = EmbeddedWarehouse::open(Some(lake)).await.unwrap();

    let mut took = [Duration::ZERO; 4];
    let mut rows = [0usize; 4];
    let start = Instant::now();
    let start_cpu = thread_cpu();
    for c in &chunks {
        let t = thread_cpu();
        wh.insert_sales(&c.sales).await.unwrap();
        let u = thread_cpu();
        took[0] += u - t;
        wh.insert_inventory(&c.inventory).await.unwrap();
        let t = thread_cpu();
        took[1] += t - u;
        wh.upsert_sales_windows(&c.windows).await.unwrap();
        let u = thread_cpu();
        took[2] += u - t;
        wh.upsert_stock(&c.stock).await.unwrap();
        took[3] += thread_cpu() - u;
        rows[0] += c.sales.len();
        rows[1] += c.inventory.len();
        rows[2] += c.windows.len();
        rows[3] += c.stock.len();
    }
    let inserting = thread_cpu() - start_cpu;
    let inserting_wall = start.elapsed();
    let (t, cpu) = (Instant::now(), process_cpu());
    wh.flush().await.unwrap();
    let (flushing_wall, flushing) = (t.elapsed(), process_cpu() - cpu);

    for (i, name) in ["insert_sales", "insert_inventory", "upsert_sales_windows", "upsert_stock"].iter().enumerate() {
        println!("{name:<22} {}", rate(rows[i], took[i]));
    }
    let events = rows[0] + rows[1];
    println!("{:<22} {} wall {:.3} s", "all inserts / event", rate(events, inserting), inserting_wall.as_secs_f64());
    println!("{:<22} {} wall {:.3} s", "flush / event", rate(events, flushing), flushing_wall.as_secs_f64());
    println!("{:<22} {:.3} µs/event (CPU)", "total", (inserting + flushing).as_secs_f64() * 1e6 / events as f64);

    let count = |sql: &'static str| {
        let wh = &wh;
        async move { wh.query(sql).await.unwrap().rows[0][0].as_i64().unwrap() }
    };
    assert_eq!(count("SELECT COUNT(*) FROM fact_sales").await, PAIRS as i64);
    assert_eq!(count("SELECT COUNT(*) FROM fact_inventory").await, PAIRS as i64);
    assert_eq!(count("SELECT SUM(lines) FROM agg_sales_daily").await, PAIRS as i64);
    assert_eq!(count("SELECT COUNT(*) FROM rt_sales_5min").await, windows.len() as i64);
    assert_eq!(count("SELECT COUNT(*) FROM rt_stock").await, on_hand.len() as i64);
}
