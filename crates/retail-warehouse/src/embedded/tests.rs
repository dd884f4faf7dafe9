//! Unit tests of the embedded warehouse (a file of their own: `embedded.rs` stays readable).

use super::*;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use retail_core::{FactSale, SalesWindow, StockLevel};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn lake_in(dir: &tempfile::TempDir) -> Lake {
    Lake::open(&format!("file://{}", dir.path().display()), &Default::default()).unwrap()
}

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

fn time_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn stock(store: u32, sku: u32, on_hand: i32, updated: DateTime<Utc>) -> StockLevel {
    StockLevel {
        store_id: format!("store_{store:03}"),
        product_id: format!("SKU{sku}"),
        on_hand,
        reorder_point: 4,
        velocity_per_hour: 0.5,
        days_of_cover: 1.0,
        stockout_risk: 0.5,
        updated_at: updated,
    }
}

fn window(store: u32, sku: u32, start: DateTime<Utc>, units: i64) -> SalesWindow {
    SalesWindow {
        store_id: format!("store_{store:03}"),
        product_id: format!("SKU{sku}"),
        window_start: start,
        window_end: start + chrono::Duration::minutes(5),
        units,
        revenue: units as f64,
        transactions: 1,
        avg_price: 1.0,
        distinct_customers: 1,
    }
}

fn sale(id: &str) -> FactSale {
    FactSale {
        sale_id: id.into(),
        date_key: at(0).date_naive(),
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
        event_time: at(0),
    }
}

/// The winners a keyed table must hold: higher version wins, a tie goes to the later insert.
#[derive(Default, Clone)]
struct Model {
    stock: BTreeMap<(String, String), (i64, i32)>,
    windows: BTreeMap<(String, String, i64), i64>,
}

impl Model {
    fn upsert_stock(&mut self, rows: &[StockLevel]) {
        for r in rows {
            let v = r.updated_at.timestamp();
            let e = self.stock.entry((r.store_id.clone(), r.product_id.clone())).or_insert((v, r.on_hand));
            if e.0 <= v {
                *e = (v, r.on_hand);
            }
        }
    }

    fn upsert_windows(&mut self, rows: &[SalesWindow]) {
        for r in rows {
            self.windows.insert((r.store_id.clone(), r.product_id.clone(), r.window_start.timestamp()), r.units);
        }
    }

    fn stock_rows(&self) -> Vec<Vec<Value>> {
        self.stock.iter().map(|((s, p), (v, oh))| vec![json!(s), json!(p), json!(oh), json!(time_text(Utc.timestamp_opt(*v, 0).unwrap()))]).collect()
    }

    fn window_rows(&self) -> Vec<Vec<Value>> {
        self.windows.iter().map(|((s, p, w), u)| vec![json!(s), json!(p), json!(time_text(Utc.timestamp_opt(*w, 0).unwrap())), json!(u)]).collect()
    }

    async fn check(&self, wh: &EmbeddedWarehouse, what: &str) {
        let r = wh.query("SELECT store_id, product_id, on_hand, updated_at FROM rt_stock ORDER BY store_id, product_id").await.unwrap();
        assert_eq!(r.rows, self.stock_rows(), "rt_stock: {what}");
        let r = wh.query("SELECT store_id, product_id, window_start, units FROM rt_sales_5min ORDER BY store_id, product_id, window_start").await.unwrap();
        assert_eq!(r.rows, self.window_rows(), "rt_sales_5min: {what}");
    }
}

/// A deterministic pseudo-random workload: versions that tie and go back in time, keys
/// repeated within a batch, and windows that keep appearing (as rt_sales_5min's do).
struct Workload {
    rng: u64,
    marker: i32,
}

impl Workload {
    fn new(seed: u64) -> Workload {
        Workload { rng: seed | 1, marker: 0 }
    }

    fn next(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n
    }

    fn round(&mut self, r: u64) -> (Vec<StockLevel>, Vec<SalesWindow>) {
        let n = 1 + self.next(25);
        let stock = (0..n)
            .map(|_| {
                self.marker += 1;
                let (store, sku) = (self.next(4) as u32, self.next(6) as u32);
                stock(store, sku, self.marker, at(r as i64 / 3 + self.next(4) as i64))
            })
            .collect();
        let n = 1 + self.next(12);
        let windows = (0..n)
            .map(|_| {
                self.marker += 1;
                let w = at(5 * (r / 2 + self.next(3)) as i64);
                window(self.next(3) as u32, self.next(3) as u32, w, self.marker as i64)
            })
            .collect();
        (stock, windows)
    }
}

async fn files(lake: &Lake, table: &str) -> Vec<String> {
    lake.list(&format!("warehouse/{table}/")).await.unwrap().into_iter().map(|o| o.key).collect()
}

async fn contents(lake: &Lake) -> HashMap<String, Bytes> {
    let mut out = HashMap::new();
    for o in lake.list("warehouse/").await.unwrap() {
        out.insert(o.key.clone(), lake.get(&o.key).await.unwrap().unwrap());
    }
    out
}

/// What a crash right after a flush wrote its new part, before it deleted what that part
/// superseded, leaves behind: today's files plus every file deleted since `before`.
async fn crash_image(before: &HashMap<String, Bytes>, lake: &Lake) -> (tempfile::TempDir, Lake, usize) {
    let dir = tempfile::tempdir().unwrap();
    let image = lake_in(&dir);
    let now = contents(lake).await;
    for (k, b) in &now {
        image.put(k, b.clone()).await.unwrap();
    }
    let mut restored = 0;
    for (k, b) in before {
        if !now.contains_key(k) {
            image.put(k, b.clone()).await.unwrap();
            restored += 1;
        }
    }
    (dir, image, restored)
}

/// Fact rows held in memory (not in any part file).
fn pending_facts(wh: &EmbeddedWarehouse) -> usize {
    match wh.state.lock().unwrap().tables.get("fact_sales") {
        Some(TableState::Append(a)) => a.pending_rows,
        _ => unreachable!(),
    }
}

fn keyed<'a>(st: &'a mut State, t: &Table) -> &'a mut KeyedTable {
    match st.tables.get_mut(t.name) {
        Some(TableState::Keyed(k)) => k,
        _ => unreachable!(),
    }
}

/// (a) and (b): upserts over many flushes, with merges of parts (some into a snapshot
/// part), reopen to exactly the winners — also from the state a crash between writing a
/// merged part and deleting its inputs leaves.
#[tokio::test]
async fn keyed_tables_reopen_to_their_winners_across_flushes_merges_and_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let wh = EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap();
    let mut model = Model::default();
    let mut work = Workload::new(7);
    let (mut merges, mut snapshots, mut crash_images) = (0, 0, 0);
    for r in 0..200u64 {
        let (s, w) = work.round(r);
        wh.upsert_stock(&s).await.unwrap();
        model.upsert_stock(&s);
        wh.upsert_sales_windows(&w).await.unwrap();
        model.upsert_windows(&w);
        if r % 3 == 1 {
            // Queries between inserts compact the in-memory segments.
            model.check(&wh, &format!("round {r}, in memory")).await;
        }
        if r % 5 == 4 {
            continue; // not every round flushes
        }
        let before = contents(&lake).await;
        wh.flush().await.unwrap();
        for table in ["rt_stock", "rt_sales_5min"] {
            let now = files(&lake, table).await;
            assert!(now.len() <= MAX_PARTS, "{table}: {now:?}");
            let gone = before.keys().filter(|k| k.contains(&format!("/{table}/")) && !now.contains(k)).count();
            if gone > 0 {
                merges += 1;
                snapshots += now.iter().any(|k| !before.contains_key(k) && k.ends_with(SNAPSHOT_SUFFIX)) as usize;
            }
        }
        let (_image_dir, image, restored) = crash_image(&before, &lake).await;
        if restored > 0 {
            crash_images += 1;
            let reopened = EmbeddedWarehouse::open(Some(image)).await.unwrap();
            model.check(&reopened, &format!("round {r}, reopened after a crash before deleting {restored} merged files")).await;
        }
        if r % 20 == 0 {
            let reopened = EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap();
            model.check(&reopened, &format!("round {r}, reopened")).await;
        }
    }
    assert!(merges >= 10 && snapshots >= 2 && merges > snapshots, "merges {merges}, into snapshots {snapshots}");
    assert!(crash_images >= 10);
    wh.flush().await.unwrap();
    model.check(&wh, "in memory at the end").await;

    // A new process carries on from the lake: more upserts (older versions lose), reopen.
    let wh = EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap();
    model.check(&wh, "reopened at the end").await;
    let late = vec![stock(0, 0, -1, at(-100)), stock(1, 1, -2, at(1000))];
    wh.upsert_stock(&late).await.unwrap();
    model.upsert_stock(&late);
    wh.flush().await.unwrap();
    let wh = EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap();
    model.check(&wh, "reopened after a second life").await;
    let n = keyed(&mut wh.state.lock().unwrap(), &schema::RT_STOCK).winners.len();
    assert_eq!(n, model.stock.len());
}

/// (b) for dimensions: a replaced dimension table loses the rows the new load lacks, even
/// when a crash kept the files the replacement should have deleted — a legacy
/// `snapshot.parquet` among them.
#[tokio::test]
async fn replaced_dimensions_stay_replaced_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let store = |id: &str, name: &str| Store {
        store_id: id.into(),
        name: name.into(),
        region: "north".into(),
        city: "x".into(),
        format: "supermarket".into(),
        size_sqm: 100,
        opens_hour: 8,
        closes_hour: 22,
    };
    // An earlier build's snapshot, then this build's loads.
    let legacy = rows::stores_batch(&[store("s1", "legacy"), store("s9", "closed long ago")]).unwrap();
    lake.write_parquet("warehouse/dim_store/snapshot.parquet", &[legacy]).await.unwrap();
    let wh = EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap();
    let names = |r: QueryResult| r.rows.iter().map(|r| format!("{}={}", r[0].as_str().unwrap(), r[1].as_str().unwrap())).collect::<Vec<_>>();
    let q = "SELECT store_key, store_name FROM dim_store ORDER BY store_key";
    assert_eq!(names(wh.query(q).await.unwrap()), ["s1=legacy", "s9=closed long ago"]);

    let before = contents(&lake).await;
    wh.load_dimensions(&[store("s1", "one"), store("s2", "two"), store("s3", "three")], &[], &[]).await.unwrap();
    let want = ["s1=one", "s2=two", "s3=three"];
    assert_eq!(names(wh.query(q).await.unwrap()), want);
    let (_d, image, restored) = crash_image(&before, &lake).await;
    assert_eq!(restored, 1, "the legacy snapshot was deleted");
    assert_eq!(names(EmbeddedWarehouse::open(Some(image)).await.unwrap().query(q).await.unwrap()), want);
    assert_eq!(names(EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap().query(q).await.unwrap()), want);

    let before = contents(&lake).await;
    wh.load_dimensions(&[store("s2", "two again"), store("s4", "four")], &[], &[]).await.unwrap();
    let want = ["s2=two again", "s4=four"];
    assert_eq!(names(wh.query(q).await.unwrap()), want);
    let (_d, image, restored) = crash_image(&before, &lake).await;
    assert_eq!(restored, 1);
    assert_eq!(names(EmbeddedWarehouse::open(Some(image.clone())).await.unwrap().query(q).await.unwrap()), want);
    // The leftover is deleted by the next writer's flush, never by a reader.
    assert_eq!(files(&image, "dim_store").await.len(), 2);
    let writer = EmbeddedWarehouse::open(Some(image.clone())).await.unwrap();
    assert_eq!(files(&image, "dim_store").await.len(), 2);
    writer.flush().await.unwrap();
    assert_eq!(files(&image, "dim_store").await.len(), 1);
    assert_eq!(names(EmbeddedWarehouse::open(Some(image)).await.unwrap().query(q).await.unwrap()), want);
    // An empty slice leaves a dimension alone.
    wh.load_dimensions(&[], &[], &[]).await.unwrap();
    assert_eq!(names(EmbeddedWarehouse::open(Some(lake)).await.unwrap().query(q).await.unwrap()), want);
}

/// (c) A legacy `snapshot.parquet` loads first; new parts apply over it; a merge into a
/// snapshot part replaces it.
#[tokio::test]
async fn a_legacy_snapshot_loads_under_new_parts() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let legacy_rows: Vec<StockLevel> = (0..4).flat_map(|s| (0..6).map(move |p| stock(s, p, (100 * s + p) as i32, at(10)))).collect();
    lake.write_parquet("warehouse/rt_stock/snapshot.parquet", &[rows::stock_batch(&legacy_rows).unwrap()]).await.unwrap();
    let mut model = Model::default();
    model.upsert_stock(&legacy_rows);
    let wh = EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap();
    model.check(&wh, "legacy only").await;

    // Newer, tied (a later insert: wins) and older (loses) versions of legacy rows.
    let rows = vec![stock(0, 0, -1, at(11)), stock(0, 1, -2, at(10)), stock(0, 2, -3, at(9)), stock(9, 9, -4, at(1))];
    wh.upsert_stock(&rows).await.unwrap();
    model.upsert_stock(&rows);
    wh.flush().await.unwrap();
    let legacy = "warehouse/rt_stock/snapshot.parquet".to_string();
    assert!(files(&lake, "rt_stock").await.contains(&legacy), "a small delta does not rewrite the table");
    model.check(&EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap(), "legacy + one part").await;

    let mut work = Workload::new(3);
    for r in 0..40 {
        let (s, _) = work.round(r);
        wh.upsert_stock(&s).await.unwrap();
        model.upsert_stock(&s);
        wh.flush().await.unwrap();
        model.check(&EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap(), &format!("legacy + parts, round {r}")).await;
    }
    let now = files(&lake, "rt_stock").await;
    assert!(!now.contains(&legacy) && now.iter().any(|k| k.ends_with(SNAPSHOT_SUFFIX)), "{now:?}");
    model.check(&wh, "in memory").await;
}

/// (d) Fact dedup still drops replayed rows (also within one batch), across flushes,
/// merges of parts, reopening and a crash before merged parts were deleted.
#[tokio::test]
async fn fact_dedup_drops_replays_across_merges_and_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    // Absorbed parts are deleted by the flush that absorbs them, as a crash image expects.
    let wh = EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap().with_part_grace(std::time::Duration::ZERO);
    let count = |wh: EmbeddedWarehouse| async move {
        let n = wh.query("SELECT COUNT(*) AS n, COUNT(DISTINCT sale_id) AS d FROM fact_sales").await.unwrap().rows;
        let lines = wh.query("SELECT SUM(lines) AS n FROM agg_sales_daily").await.unwrap().rows;
        (n[0][0].as_i64().unwrap(), n[0][1].as_i64().unwrap(), lines[0][0].as_i64().unwrap())
    };
    wh.insert_sales(&[sale("a"), sale("b"), sale("a")]).await.unwrap();
    wh.insert_sales(&[sale("b"), sale("c")]).await.unwrap();
    let mut crash_images = 0;
    for i in 0..100 {
        let batch: Vec<FactSale> = (0..=i).map(|j| sale(&format!("x{j}"))).collect();
        wh.insert_sales(&batch).await.unwrap(); // all but the last were seen before
        let before = contents(&lake).await;
        wh.flush().await.unwrap();
        assert!(files(&lake, "fact_sales").await.len() <= MAX_PARTS);
        assert_eq!(pending_facts(&wh), 0, "flushed rows leave memory");
        let (_d, image, restored) = crash_image(&before, &lake).await;
        if restored > 0 {
            crash_images += 1;
            let n = 3 + i as i64 + 1;
            let after_crash = EmbeddedWarehouse::open(Some(image.clone())).await.unwrap();
            // The merged part repeats rows of the parts it absorbed: its new rows wait in
            // memory, and the next flush rewrites them and deletes it.
            assert!(pending_facts(&after_crash) > 0, "round {i}");
            assert_eq!(count(after_crash).await, (n, n, n), "after a crash, round {i}");
            let after_crash = EmbeddedWarehouse::open(Some(image.clone())).await.unwrap().with_part_grace(std::time::Duration::ZERO);
            after_crash.flush().await.unwrap();
            let reopened = EmbeddedWarehouse::open(Some(image)).await.unwrap();
            assert_eq!(pending_facts(&reopened), 0, "after the crash's flush no part repeats another, round {i}");
            assert_eq!(count(reopened).await, (n, n, n), "reopened after the crash's flush, round {i}");
        }
    }
    assert!(crash_images >= 5, "{crash_images} merges");
    let n = 3 + 100;
    let reopened = EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap();
    assert_eq!(count(reopened).await, (n, n, n));
    let reopened = EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap();
    reopened.insert_sales(&[sale("a"), sale("x7"), sale("new")]).await.unwrap();
    assert_eq!(count(reopened).await, (n + 1, n + 1, n + 1));
    assert_eq!(count(wh).await, (n, n, n));
}

/// (e) Keys are compared column by column: ("ab","c") and ("a","bc") are different rows.
#[tokio::test]
async fn keys_that_concatenate_alike_stay_apart() {
    let wh = EmbeddedWarehouse::open(None).await.unwrap();
    let f = |set: &str, entity: &str, name: &str, value: f64| FeatureValue {
        feature_set: set.into(),
        entity_id: entity.into(),
        feature_date: at(0).date_naive(),
        feature_name: name.into(),
        value,
        computed_at: at(0),
    };
    let keys = [("ab", "c", "x"), ("a", "bc", "x"), ("abc", "", "x"), ("", "abc", "x"), ("a", "b", "cx"), ("12345678", "9", "x"), ("123456789", "", "x")];
    let rows: Vec<FeatureValue> = keys.iter().enumerate().map(|(i, (s, e, n))| f(s, e, n, i as f64)).collect();
    wh.upsert_features(&rows).await.unwrap();
    wh.upsert_features(&[f("ab", "c", "x", 10.0)]).await.unwrap(); // same key, same version: replaces
    let r = wh.query("SELECT feature_set, entity_id, feature_name, value FROM feature_store ORDER BY value").await.unwrap();
    let mut want: Vec<Vec<Value>> = keys.iter().enumerate().skip(1).map(|(i, (s, e, n))| vec![json!(s), json!(e), json!(n), json!(i as f64)]).collect();
    want.push(vec![json!("ab"), json!("c"), json!("x"), json!(10.0)]);
    assert_eq!(r.rows, want);
    wh.insert_sales(&[sale("ab"), sale("a"), sale("b")]).await.unwrap();
    let r = wh.query("SELECT COUNT(*) AS n FROM fact_sales").await.unwrap();
    assert_eq!(r.rows, vec![vec![json!(3)]]);
}

/// Memory stays proportional to the winners when the same keys are upserted over and over
/// and nobody queries or flushes; the view afterwards is exact.
#[tokio::test]
async fn superseded_rows_do_not_pile_up() {
    let wh = EmbeddedWarehouse::open(None).await.unwrap();
    let keys = 5_000u32;
    let mut marker = 0;
    for round in 0..200i64 {
        let rows: Vec<StockLevel> = (0..1_000u32)
            .map(|i| {
                marker += 1;
                stock(0, (i * 7 + round as u32 * 1_013) % keys, marker, at(round))
            })
            .collect();
        wh.upsert_stock(&rows).await.unwrap();
    }
    {
        let mut st = wh.state.lock().unwrap();
        let k = keyed(&mut st, &schema::RT_STOCK);
        let held: usize = k.segments.iter().map(|s| s.len()).sum();
        assert_eq!(k.winners.len(), keys as usize);
        assert!(held <= 3 * keys as usize + 2 * COALESCE_ROWS, "{held} rows held for {keys} keys");
        assert!(k.segments.len() <= SMALL_SEGMENTS_MAX + 8, "{} segments", k.segments.len());
        assert_eq!(held - k.dead, keys as usize);
    }
    let r = wh.query("SELECT COUNT(*) AS n, COUNT(DISTINCT product_id) AS d, MIN(updated_at) AS t FROM rt_stock").await.unwrap();
    assert_eq!(r.rows, vec![vec![json!(keys), json!(keys), json!(time_text(at(199 - 5)))]]);
    let st = wh.state.lock().unwrap();
    let Some(TableState::Keyed(k)) = st.tables.get(schema::RT_STOCK.name) else { unreachable!() };
    assert_eq!((k.dead, k.segments.iter().map(|s| s.len()).sum::<usize>()), (0, keys as usize));
}

#[test]
fn merge_point_waits_for_the_bound_then_merges_size_tiered() {
    assert_eq!(merge_point(&[], 5), 0);
    assert_eq!(merge_point(&[10], 5), 1);
    assert_eq!(merge_point(&[10, 5, 5], 5), 3, "room left: no merge");
    // At the bound: the newest is absorbed even when larger, then only older ones no larger
    // than what is accumulated.
    let sizes: Vec<usize> = (1..=MAX_PARTS as u32).rev().map(|e| 1usize << e).collect();
    assert_eq!(merge_point(&sizes, 1), MAX_PARTS - 1);
    let mut sizes = vec![1_000; MAX_PARTS];
    sizes[0] = 1_000_000;
    assert_eq!(merge_point(&sizes, 1), 1, "the big oldest part stays");
    sizes[0] = 0; // e.g. a keyed part whose rows were all superseded
    assert_eq!(merge_point(&sizes, 1), 0);
    // Many flushes of one row: never more than MAX_PARTS parts, each row written a few times.
    let (mut parts, mut written) = (Vec::<usize>::new(), 0);
    for _ in 0..10_000 {
        let i = merge_point(&parts, 1);
        let merged: usize = parts.drain(i..).sum::<usize>() + 1;
        written += merged;
        parts.push(merged);
        assert!(parts.len() <= MAX_PARTS);
    }
    assert!(written <= 10_000 * 6, "{written}");
}

/// An early flush of some tables persists those only; the full flush then persists the rest.
#[tokio::test]
async fn flushing_some_tables_persists_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let wh = EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap();
    wh.insert_sales(&[sale("s-1"), sale("s-2")]).await.unwrap();
    wh.upsert_stock(&[stock(1, 1, 5, at(1))]).await.unwrap();
    wh.flush_tables(&[&schema::FACT_SALES]).await.unwrap();
    assert_eq!(files(&lake, "fact_sales").await.len(), 1);
    assert!(files(&lake, "rt_stock").await.is_empty(), "stock waits for the full flush");
    let count = |wh: EmbeddedWarehouse, table: &'static str| async move {
        wh.query(&format!("SELECT count(*) AS n FROM {table}")).await.unwrap().rows[0][0].as_i64().unwrap()
    };
    assert_eq!(count(EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap(), "fact_sales").await, 2);
    assert_eq!(count(EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap(), "rt_stock").await, 0);
    wh.flush().await.unwrap();
    assert_eq!(count(EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap(), "rt_stock").await, 1);
    assert_eq!(files(&lake, "fact_sales").await.len(), 1, "nothing new to write for the facts");
}

async fn sums(wh: &EmbeddedWarehouse) -> (i64, i64, i64) {
    let r = wh.query("SELECT count(*) AS n, sum(quantity) AS q FROM fact_sales").await.unwrap().rows;
    let f = wh.query("SELECT sum(quantity) AS q FROM fact_sales WHERE store_key = 'store_001'").await.unwrap().rows;
    (r[0][0].as_i64().unwrap(), r[0][1].as_i64().unwrap(), f[0][0].as_i64().unwrap())
}

/// Flushed fact rows leave memory; queries (filters, projections, aggregates) read them from the
/// part files together with the rows still in memory, exactly as if all were in memory.
#[tokio::test]
async fn flushed_facts_leave_memory_and_queries_read_them_from_their_parts() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let wh = EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap();
    let row = |i: i32| FactSale { quantity: 1 + i % 7, store_key: format!("store_{:03}", i % 3), ..sale(&format!("s-{i}")) };
    let all: Vec<FactSale> = (0..300).map(row).collect();
    let expect = |rows: &[FactSale]| {
        let q: i64 = rows.iter().map(|r| r.quantity as i64).sum();
        let q1: i64 = rows.iter().filter(|r| r.store_key == "store_001").map(|r| r.quantity as i64).sum();
        (rows.len() as i64, q, q1)
    };
    for (i, chunk) in all.chunks(100).enumerate() {
        wh.insert_sales(chunk).await.unwrap();
        if i < 2 {
            wh.flush().await.unwrap();
            assert_eq!(pending_facts(&wh), 0);
        }
    }
    assert_eq!(pending_facts(&wh), 100, "only the unflushed batch is in memory");
    assert_eq!(files(&lake, "fact_sales").await.len(), 2);
    assert_eq!(sums(&wh).await, expect(&all));
    // Replays of flushed rows are still recognised (their id hashes stay in memory).
    wh.insert_sales(&all[..150]).await.unwrap();
    assert_eq!(pending_facts(&wh), 100);
    assert_eq!(sums(&wh).await, expect(&all));
    // A reader opening the lake sees the persisted rows only.
    let reader = EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap();
    assert_eq!(pending_facts(&reader), 0);
    assert_eq!(sums(&reader).await, expect(&all[..200]));
}

/// A snapshot cached across flushes names parts a merge has since deleted: the query retries
/// on the current snapshot instead of failing (or, worse, silently missing rows).
#[tokio::test]
async fn a_stale_snapshot_whose_parts_were_merged_away_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let wh = EmbeddedWarehouse::open_with_staleness(Some(lake.clone()), std::time::Duration::from_secs(3600))
        .await
        .unwrap()
        .with_part_grace(std::time::Duration::ZERO);
    let count = "SELECT count(*) AS n FROM fact_sales";
    wh.insert_sales(&[sale("first")]).await.unwrap();
    wh.flush().await.unwrap();
    assert_eq!(wh.query(count).await.unwrap().rows[0][0].as_i64().unwrap(), 1);
    let first_parts = files(&lake, "fact_sales").await;
    for i in 0..2 * MAX_PARTS {
        wh.insert_sales(&[sale(&format!("s-{i}"))]).await.unwrap();
        wh.flush().await.unwrap();
    }
    assert!(!files(&lake, "fact_sales").await.contains(&first_parts[0]), "the first part was merged away");
    // Within the staleness bound the cached snapshot would answer, but its part is gone.
    assert_eq!(wh.query(count).await.unwrap().rows[0][0].as_i64().unwrap(), 1 + 2 * MAX_PARTS as i64);
}

/// Parts absorbed by a merge stay readable for a grace period, for readers that listed them.
#[tokio::test]
async fn absorbed_parts_outlive_their_merge_by_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let wh = EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap();
    for i in 0..MAX_PARTS + 1 {
        wh.insert_sales(&[sale(&format!("s-{i}"))]).await.unwrap();
        wh.flush().await.unwrap();
    }
    // A reader opened now sees the merged part and the parts it absorbed, and counts each row once.
    assert!(files(&lake, "fact_sales").await.len() > MAX_PARTS);
    let reader = EmbeddedWarehouse::open(Some(lake.clone())).await.unwrap();
    let n = reader.query("SELECT count(*) AS n, count(DISTINCT sale_id) AS d FROM fact_sales").await.unwrap().rows;
    assert_eq!((n[0][0].as_i64(), n[0][1].as_i64()), (Some(MAX_PARTS as i64 + 1), Some(MAX_PARTS as i64 + 1)));
}
