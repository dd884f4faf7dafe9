//! `retail bench query`: latency of the dashboard queries (`retail_warehouse::queries`) on each
//! warehouse backend, over a generated year of sales, printed as a table.
//!
//! The year is generated here from the shared row types with a seeded PRNG (same flags → same
//! data), loaded through the `Warehouse` trait exactly as the stream processor loads it (one
//! batch per store-day, so ClickHouse's dedup lookups and the embedded key sets are exercised),
//! then every query runs `--iterations` times after a warm-up.

use crate::config::Config;
use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
use retail_core::{AlertStatus, AnomalyFlag, AnomalyKind, EventType, FactInventory, FactSale, Product, RestockAlert, SalesWindow, Severity, StockLevel, Store};
use retail_warehouse::{dim_date, queries, HolidayCalendar, Warehouse, WarehouseOptions};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct BenchQueryArgs {
    /// Where the year comes from: `sim` (the retail-sim world model, as `retail simulate
    /// --backfill-days N` produces it) or `synthetic` (a simpler generator, no sim needed).
    #[arg(long, default_value = "sim")]
    pub source: String,
    /// sim: mean events per minute per open store during the backfill.
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Days of history, ending on --end.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    #[arg(long, default_value = "2025-12-31")]
    pub end: NaiveDate,
    #[arg(long, default_value_t = 10)]
    pub stores: u32,
    #[arg(long, default_value_t = 500)]
    pub skus: u32,
    /// synthetic: sale lines per store on an ordinary weekday (weekends ×1.3, holidays ×1.5).
    #[arg(long, default_value_t = 400)]
    pub lines_per_store_day: u32,
    /// Timed runs of each query (after 2 warm-up runs).
    #[arg(long, default_value_t = 30)]
    pub iterations: usize,
    /// Backends to measure: embedded, clickhouse, or both (comma-separated).
    #[arg(long, default_value = "embedded,clickhouse")]
    pub backends: String,
    /// ClickHouse to measure (the scratch database `--clickhouse-database` is dropped and recreated).
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    pub clickhouse_url: String,
    #[arg(long, default_value = "retail_bench")]
    pub clickhouse_database: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// splitmix64: tiny, seeded, good enough for synthetic data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.unit() * n as f64) as u32 % n.max(1)
    }
}

struct Data {
    stores: Vec<Store>,
    products: Vec<Product>,
    /// One (sales, inventory) pair per store-day, in time order.
    batches: Vec<(Vec<FactSale>, Vec<FactInventory>)>,
    stock: Vec<StockLevel>,
    alerts: Vec<RestockAlert>,
    windows: Vec<SalesWindow>,
    anomalies: Vec<AnomalyFlag>,
    sales_rows: usize,
}

const CATEGORIES: [&str; 8] = ["produce", "dairy", "bakery", "beverages", "snacks", "household", "personal_care", "frozen"];

fn generate(a: &BenchQueryArgs, cal: &HolidayCalendar) -> Data {
    let mut rng = Rng(a.seed);
    let stores: Vec<Store> = (1..=a.stores)
        .map(|i| Store {
            store_id: format!("store_{i:03}"),
            name: format!("Store {i}"),
            region: ["north", "south", "east", "west"][(i % 4) as usize].into(),
            city: format!("City {}", i % 7),
            format: "supermarket".into(),
            size_sqm: 1000 + i * 50,
            opens_hour: 8,
            closes_hour: 22,
        })
        .collect();
    let products: Vec<Product> = (1..=a.skus)
        .map(|i| {
            let cost = 0.5 + rng.unit() * 20.0;
            Product {
                product_id: format!("SKU{i:05}"),
                sku: format!("SKU{i:05}"),
                product_name: format!("Product {i}"),
                category: CATEGORIES[(i as usize) % CATEGORIES.len()].into(),
                sub_category: "general".into(),
                brand: format!("Brand {}", i % 25),
                supplier: format!("Supplier {}", i % 12),
                unit_cost: (cost * 100.0).round() / 100.0,
                list_price: (cost * 1.6 * 100.0).round() / 100.0,
                shelf_life_days: 30,
                pack_size: 6,
                lead_time_days: 3.0,
                lead_time_sd_days: 1.0,
            }
        })
        .collect();
    let first = a.end - Duration::days(a.days as i64 - 1);
    let mut on_hand = vec![vec![30i32; products.len()]; stores.len()];
    let mut batches = Vec::new();
    let mut sales_rows = 0;
    let mut last_day_sales = Vec::new();
    for di in 0..a.days {
        let day = first + Duration::days(di as i64);
        let weekend = day.weekday().number_from_monday() >= 6;
        let factor = if cal.get(day).is_some() {
            1.5
        } else if weekend {
            1.3
        } else {
            1.0
        };
        for (si, store) in stores.iter().enumerate() {
            let n = (a.lines_per_store_day as f64 * factor * (0.8 + 0.4 * rng.unit())) as u32;
            let mut sales = Vec::with_capacity(n as usize);
            let mut inv = Vec::with_capacity(n as usize);
            for li in 0..n {
                // Skewed popularity: a few SKUs sell most.
                let pi = ((rng.unit().powi(3)) * products.len() as f64) as usize % products.len();
                let p = &products[pi];
                let qty = 1 + rng.below(4) as i32;
                let discount = if rng.below(10) == 0 { 0.2 } else { 0.0 };
                let price = ((p.list_price * (1.0 - discount)) * 100.0).round() / 100.0;
                let secs = 8 * 3600 + (li as i64 * 14 * 3600) / n.max(1) as i64;
                let t = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight")) + Duration::seconds(secs);
                let id = format!("{}-{}-{li}", store.store_id, day.format("%Y%m%d"));
                let revenue = qty as f64 * price;
                let cost = qty as f64 * p.unit_cost;
                sales.push(FactSale {
                    sale_id: id.clone(),
                    date_key: day,
                    product_key: p.product_id.clone(),
                    store_key: store.store_id.clone(),
                    quantity: qty,
                    revenue,
                    cost,
                    profit: revenue - cost,
                    unit_price: price,
                    discount_pct: discount,
                    basket_id: format!("b{id}"),
                    customer_id: if rng.below(3) == 0 { None } else { Some(format!("cust_{}", rng.below(5000))) },
                    payment_method: "credit_card".into(),
                    event_time: t,
                });
                let oh = &mut on_hand[si][pi];
                *oh = (*oh - qty).max(0);
                inv.push(FactInventory {
                    inventory_id: format!("inv-{id}"),
                    date_key: day,
                    product_key: p.product_id.clone(),
                    store_key: store.store_id.clone(),
                    quantity_on_hand: *oh,
                    reorder_point: 8,
                    safety_stock: 4,
                    quantity_change: -qty,
                    reason: "sale".into(),
                    event_time: t,
                });
                if *oh == 0 && rng.below(3) == 0 {
                    *oh = 40; // a delivery arrives some time after the stock-out
                }
            }
            sales_rows += sales.len();
            if di + 1 == a.days {
                last_day_sales.extend(sales.iter().cloned());
            }
            batches.push((sales, inv));
        }
    }
    let updated = Utc.from_utc_datetime(&a.end.and_hms_opt(22, 0, 0).expect("time"));
    let mut last: BTreeMap<(String, String), i32> = BTreeMap::new();
    for (si, s) in stores.iter().enumerate() {
        for (pi, p) in products.iter().enumerate() {
            last.insert((s.store_id.clone(), p.product_id.clone()), on_hand[si][pi]);
        }
    }
    let (stock, alerts) = derive_stock(&last, a.end);
    let anomalies = (0..200)
        .map(|i| AnomalyFlag {
            anomaly_id: format!("anom-{i}"),
            store_id: stores[i % stores.len()].store_id.clone(),
            product_id: products[i % products.len()].product_id.clone(),
            kind: [AnomalyKind::QuantityOutlier, AnomalyKind::PriceOutlier, AnomalyKind::DemandSpike][i % 3],
            score: 3.0 + (i % 7) as f64,
            detail: "synthetic".into(),
            event_id: None,
            event_time: updated - Duration::minutes(i as i64),
        })
        .collect();
    Data { stores, products, batches, stock, alerts, windows: windows_of(&last_day_sales), anomalies, sales_rows }
}

/// The year from the retail-sim world model: hourly backfill, converted to fact rows the way the
/// stream processor does (revenue = quantity × charged price, cost = quantity × unit cost).
fn simulate(a: &BenchQueryArgs) -> anyhow::Result<(Data, HolidayCalendar)> {
    use retail_core::Event;
    let config = retail_sim::WorldConfig {
        seed: a.seed,
        stores: a.stores as usize,
        products: a.skus as usize,
        skus_per_store: a.skus as usize,
        traffic_per_store_minute: a.rate,
        anomaly_rate: 1.0,
        demand_truth: false,
        threads: 2,
    };
    let world = Arc::new(retail_sim::World::generate(&config)?);
    let stores = world.stores().to_vec();
    let products = world.products().to_vec();
    let cost: std::collections::HashMap<String, f64> = products.iter().map(|p| (p.product_id.clone(), p.unit_cost)).collect();
    let first = a.end - Duration::days(a.days as i64 - 1);
    let start = Utc.from_utc_datetime(&first.and_hms_opt(0, 0, 0).expect("midnight"));
    let mut sim = retail_sim::Simulator::new(world, start)?;
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let mut batches: Vec<(Vec<FactSale>, Vec<FactInventory>)> = Vec::new();
    let mut day_batch: (Vec<FactSale>, Vec<FactInventory>) = (Vec::new(), Vec::new());
    let mut current_day = first;
    let mut on_hand: BTreeMap<(String, String), i32> = BTreeMap::new();
    let mut last_day_sales = Vec::new();
    let mut sales_rows = 0;
    let mut anomalies = Vec::new();
    for hour in sim.backfill(a.days) {
        for e in hour {
            let d = e.timestamp().date_naive();
            if d != current_day {
                sales_rows += day_batch.0.len();
                batches.push(std::mem::take(&mut day_batch));
                current_day = d;
            }
            match e {
                Event::Sale(s) => {
                    let revenue = round2(s.quantity as f64 * s.unit_price);
                    let c = round2(s.quantity as f64 * cost.get(&s.product_id).copied().unwrap_or(0.0));
                    let f = FactSale {
                        sale_id: s.transaction_id,
                        date_key: d,
                        product_key: s.product_id,
                        store_key: s.store_id,
                        quantity: s.quantity,
                        revenue,
                        cost: c,
                        profit: round2(revenue - c),
                        unit_price: s.unit_price,
                        discount_pct: s.discount_pct,
                        basket_id: s.basket_id,
                        customer_id: s.customer_id,
                        payment_method: format!("{:?}", s.payment_method).to_lowercase(),
                        event_time: s.timestamp,
                    };
                    if d == a.end {
                        last_day_sales.push(f.clone());
                    }
                    day_batch.0.push(f);
                }
                Event::Inventory(i) => {
                    on_hand.insert((i.store_id.clone(), i.product_id.clone()), i.new_quantity);
                    day_batch.1.push(FactInventory {
                        inventory_id: i.inventory_id,
                        date_key: d,
                        product_key: i.product_id,
                        store_key: i.store_id,
                        quantity_on_hand: i.new_quantity,
                        reorder_point: 0,
                        safety_stock: 0,
                        quantity_change: i.quantity_change,
                        reason: serde_json::to_value(i.reason).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
                        event_time: i.timestamp,
                    });
                }
                Event::Price(p) if anomalies.len() < 500 && p.new_price > p.old_price * 3.0 => {
                    anomalies.push(AnomalyFlag {
                        anomaly_id: p.price_change_id,
                        store_id: p.store_id,
                        product_id: p.product_id,
                        kind: AnomalyKind::PriceOutlier,
                        score: p.new_price / p.old_price.max(0.01),
                        detail: "price jump".into(),
                        event_id: None,
                        event_time: p.timestamp,
                    });
                }
                _ => {}
            }
        }
    }
    sales_rows += day_batch.0.len();
    batches.push(day_batch);
    let (stock, alerts) = derive_stock(&on_hand, a.end);
    let mut cal = HolidayCalendar::new();
    let mut d = first;
    while d <= a.end {
        if let Some(name) = retail_sim::is_holiday(d) {
            cal.add(d, name);
        }
        d += Duration::days(1);
    }
    let data = Data { stores, products, batches, stock, alerts, windows: windows_of(&last_day_sales), anomalies, sales_rows };
    Ok((data, cal))
}

/// rt_stock from the last known on-hand per store×SKU, and an open alert where it is low.
fn derive_stock(on_hand: &BTreeMap<(String, String), i32>, end: NaiveDate) -> (Vec<StockLevel>, Vec<RestockAlert>) {
    let updated = Utc.from_utc_datetime(&end.and_hms_opt(22, 0, 0).expect("time"));
    let mut stock = Vec::new();
    let mut alerts = Vec::new();
    for ((store, sku), oh) in on_hand {
        let oh = *oh;
        let risk = (1.0 - oh as f64 / 40.0).clamp(0.0, 1.0);
        stock.push(StockLevel {
            store_id: store.clone(),
            product_id: sku.clone(),
            on_hand: oh,
            reorder_point: 8,
            velocity_per_hour: 0.3,
            days_of_cover: oh as f64 / 7.2,
            stockout_risk: risk,
            updated_at: updated,
        });
        if oh < 8 {
            alerts.push(RestockAlert {
                event_type: EventType::RestockAlert,
                schema_version: retail_core::SCHEMA_VERSION,
                alert_id: format!("alert-{store}-{sku}"),
                store_id: store.clone(),
                product_id: sku.clone(),
                status: AlertStatus::Open,
                severity: if oh <= 0 { Severity::Critical } else { Severity::High },
                on_hand: oh,
                reorder_point: 8,
                velocity_per_hour: 0.3,
                days_of_cover: oh as f64 / 7.2,
                stockout_risk: risk,
                suggested_order_qty: 40 - oh,
                reason: "below reorder point".into(),
                timestamp: updated,
            });
        }
    }
    (stock, alerts)
}

/// 5-minute windows per store×SKU of some sales.
fn windows_of(sales: &[FactSale]) -> Vec<SalesWindow> {
    let mut w: BTreeMap<(String, String, i64), SalesWindow> = BTreeMap::new();
    for s in sales {
        let start = s.event_time.timestamp() / 300 * 300;
        let e = w.entry((s.store_key.clone(), s.product_key.clone(), start)).or_insert_with(|| SalesWindow {
            store_id: s.store_key.clone(),
            product_id: s.product_key.clone(),
            window_start: Utc.timestamp_opt(start, 0).unwrap(),
            window_end: Utc.timestamp_opt(start + 300, 0).unwrap(),
            units: 0,
            revenue: 0.0,
            transactions: 0,
            avg_price: 0.0,
            distinct_customers: 0,
        });
        e.units += s.quantity as i64;
        e.revenue += s.revenue;
        e.transactions += 1;
        e.avg_price = e.revenue / e.units as f64;
        e.distinct_customers += 1;
    }
    w.into_values().collect()
}

async fn load(wh: &dyn Warehouse, data: &Data, dates: &[retail_warehouse::DateRow]) -> anyhow::Result<f64> {
    let started = Instant::now();
    wh.init().await?;
    wh.load_dimensions(&data.stores, &data.products, dates).await?;
    for (sales, inv) in &data.batches {
        wh.insert_sales(sales).await?;
        wh.insert_inventory(inv).await?;
    }
    wh.upsert_stock(&data.stock).await?;
    wh.insert_alerts(&data.alerts).await?;
    wh.upsert_sales_windows(&data.windows).await?;
    wh.insert_anomalies(&data.anomalies).await?;
    wh.flush().await?;
    Ok(started.elapsed().as_secs_f64())
}

struct Stats {
    p50: f64,
    p95: f64,
    max: f64,
    rows: usize,
}

async fn measure(wh: &dyn Warehouse, qs: &[(&'static str, String)], iterations: usize) -> anyhow::Result<(Vec<Stats>, Vec<retail_warehouse::QueryResult>)> {
    let mut out = Vec::new();
    let mut answers = Vec::new();
    for (name, sql) in qs {
        let mut rows = 0;
        for _ in 0..2 {
            let r = wh.query(sql).await.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            rows = r.rows.len();
            if answers.len() < out.len() + 1 {
                answers.push(r);
            }
        }
        let mut ms = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            wh.query(sql).await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).saturating_sub(1).min(ms.len() - 1)];
        out.push(Stats { p50: pct(0.50), p95: pct(0.95), max: *ms.last().unwrap_or(&0.0), rows });
    }
    Ok((out, answers))
}

/// Equal results, numbers within a relative 1e-9 (float sums differ in the last bits).
fn same_result(a: &retail_warehouse::QueryResult, b: &retail_warehouse::QueryResult) -> bool {
    fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => a == b,
        }
    }
    a.columns == b.columns
        && a.rows.len() == b.rows.len()
        && a.rows.iter().zip(&b.rows).all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)))
}

pub async fn run(args: BenchQueryArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::ensure!(args.days >= 1 && args.stores >= 1 && args.skus >= 1 && args.iterations >= 1, "days, stores, skus and iterations must be ≥ 1");
    let first = args.end - Duration::days(args.days as i64 - 1);
    let t = Instant::now();
    let (data, cal) = match args.source.as_str() {
        "sim" => simulate(&args)?,
        "synthetic" => {
            let cal = HolidayCalendar::us_federal(first.year()..=args.end.year());
            (generate(&args, &cal), cal)
        }
        other => anyhow::bail!("unknown --source `{other}`: expected sim or synthetic"),
    };
    let dates = dim_date(first, args.end, &cal);
    let inv_rows: usize = data.batches.iter().map(|b| b.1.len()).sum();
    eprintln!(
        "{}: {} days × {} stores × {} SKUs: {} sale lines + {} inventory movements in {:.1}s",
        args.source,
        args.days,
        args.stores,
        args.skus,
        data.sales_rows,
        inv_rows,
        t.elapsed().as_secs_f64()
    );
    let since = Utc.from_utc_datetime(&args.end.and_hms_opt(0, 0, 0).expect("time"));
    let qs = queries::dashboard_set(first, args.end, since);

    let mut columns: Vec<(String, Vec<Stats>)> = Vec::new();
    let mut all_answers: Vec<Vec<retail_warehouse::QueryResult>> = Vec::new();
    for backend in args.backends.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let wh: Arc<dyn Warehouse> = match backend {
            "embedded" => retail_warehouse::open("embedded", &WarehouseOptions::default(), None).await?,
            "clickhouse" => {
                let opts = WarehouseOptions { database: args.clickhouse_database.clone(), ..Default::default() };
                let admin = retail_warehouse::clickhouse::ClickHouseWarehouse::new(&args.clickhouse_url, &opts)?;
                admin.execute(&format!("DROP DATABASE IF EXISTS {}", args.clickhouse_database)).await?;
                retail_warehouse::open(&args.clickhouse_url, &opts, None).await?
            }
            other => anyhow::bail!("unknown backend `{other}`: expected embedded or clickhouse"),
        };
        let secs = load(wh.as_ref(), &data, &dates).await?;
        eprintln!("{backend}: loaded in {secs:.1}s ({:.0} sale lines/s incl. inventory)", data.sales_rows as f64 / secs);
        let (stats, answers) = measure(wh.as_ref(), &qs, args.iterations).await?;
        columns.push((backend.to_string(), stats));
        all_answers.push(answers);
    }
    // The backends must agree, or the latencies compare different work.
    let mut disagreements = Vec::new();
    if let [first, rest @ ..] = all_answers.as_slice() {
        for other in rest {
            for (i, (name, _)) in qs.iter().enumerate() {
                if !same_result(&first[i], &other[i]) {
                    disagreements.push(*name);
                }
            }
        }
    }

    println!(
        "\nDashboard query latency, ms ({} timed runs each; {} sale lines, {} stores, {} SKUs, {} days)",
        args.iterations, data.sales_rows, args.stores, args.skus, args.days
    );
    let mut header = format!("{:<22}", "query");
    for (b, _) in &columns {
        header.push_str(&format!(" | {:>10} {:>8} {:>8} {:>6}", format!("{b} p50"), "p95", "max", "rows"));
    }
    println!("{header}");
    println!("{}", "-".repeat(header.len()));
    let mut worst_p95: Vec<f64> = vec![0.0; columns.len()];
    for (i, (name, _)) in qs.iter().enumerate() {
        let mut line = format!("{name:<22}");
        for (c, (_, stats)) in columns.iter().enumerate() {
            let s = &stats[i];
            worst_p95[c] = worst_p95[c].max(s.p95);
            line.push_str(&format!(" | {:>10.2} {:>8.2} {:>8.2} {:>6}", s.p50, s.p95, s.max, s.rows));
        }
        println!("{line}");
    }
    for (c, (b, _)) in columns.iter().enumerate() {
        let verdict = if worst_p95[c] <= 50.0 { "meets" } else { "misses" };
        println!("{b}: worst p95 {:.2} ms — {verdict} the 50 ms target", worst_p95[c]);
    }
    if columns.len() > 1 {
        if disagreements.is_empty() {
            println!("results: identical on every backend for all {} queries", qs.len());
        } else {
            println!("results DIFFER between backends on: {}", disagreements.join(", "));
        }
    }
    Ok(())
}
