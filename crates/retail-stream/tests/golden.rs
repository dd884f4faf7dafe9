//! Golden tests of the processor core: fixture records in, emitted rows out, compared with
//! `tests/golden/*.json`. Time is event time carried by the fixtures (the processor reads no
//! clock), so each run is exact. The key numbers are also asserted by hand below each golden,
//! so a wrong regeneration cannot pass silently.

mod common;

use common::*;
use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::datatypes::{Int32Type, TimestampSecondType};
use datafusion::arrow::record_batch::RecordBatch;
use retail_core::{topics, AlertStatus, AnomalyKind, Product, Severity};
use retail_stream::{Catalog, Outputs, Processor, ProcessorConfig};
use serde_json::json;

/// The window rows an output holds (drains its builder).
fn windows(o: &mut Outputs) -> Vec<retail_core::SalesWindow> {
    retail_warehouse::rows::windows_from_batch(&o.windows.finish().unwrap()).unwrap()
}

/// The stock rows an output holds (drains its builder).
fn stock(o: &mut Outputs) -> Vec<retail_core::StockLevel> {
    retail_warehouse::rows::stock_from_batch(&o.stock.finish().unwrap()).unwrap()
}

/// A fact batch's column, by name.
fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"))
}

fn window_config() -> ProcessorConfig {
    ProcessorConfig { max_out_of_orderness_ms: 60_000, allowed_lateness_ms: 5 * 60_000, ..ProcessorConfig::default() }
}

fn run_batch(p: &mut Processor, msgs: &[retail_bus::Message]) -> Outputs {
    let mut out = Outputs::default();
    for m in msgs {
        p.process(m, &mut out);
    }
    p.flush(&mut out);
    out
}

#[test]
fn windows_on_time_out_of_order_duplicate_and_late() {
    let mut p = Processor::new(window_config(), &Catalog::default());
    let s = |n, qty, list, disc, t: &str, cust| sale(n, "store_001", "SKU1", qty, list, disc, at(t), cust);
    let first = vec![
        sales_msg(0, &s(1, 2, 10.0, 0.0, "10:01:00", Some("cust_1")), at("10:01:00")),
        sales_msg(1, &s(2, 1, 10.0, 0.0, "10:03:00", Some("cust_2")), at("10:03:00")),
        sales_msg(2, &s(3, 3, 10.0, 0.1, "10:04:30", Some("cust_1")), at("10:04:30")),
        sales_msg(3, &s(4, 1, 10.0, 0.0, "10:06:00", None), at("10:06:00")),
    ];
    let second = vec![
        // Out of order but within allowed lateness (window end 10:05 + 5 min > watermark 10:05).
        sales_msg(4, &s(5, 1, 10.0, 0.0, "10:04:50", Some("cust_3")), at("10:06:10")),
        // A re-send of record 1 (same event id): dropped.
        sales_msg(5, &s(2, 1, 10.0, 0.0, "10:03:00", Some("cust_2")), at("10:06:20")),
        // Another SKU pushes the watermark to 10:15.
        sales_msg(6, &sale(7, "store_001", "SKU2", 1, 4.0, 0.0, at("10:16:00"), None), at("10:16:00")),
        // Window [10:00, 10:05) closed at 10:10 < watermark: late — counted, dead-lettered, still a fact.
        sales_msg(7, &s(8, 5, 10.0, 0.0, "10:02:00", Some("cust_9")), at("10:16:05")),
        // Window [10:10, 10:15) still accepts until 10:20.
        sales_msg(8, &s(9, 2, 10.0, 0.0, "10:11:00", Some("cust_1")), at("10:16:06")),
    ];
    let mut a = run_batch(&mut p, &first);
    let a_windows = windows(&mut a);
    let mut b = run_batch(&mut p, &second);
    let facts = b.sales.finish_facts().unwrap();
    let b_windows = windows(&mut b);
    let actual = json!({
        "batch1": { "windows": a_windows, "stats": format!("{:?}", a.stats) },
        "batch2": {
            "windows": b_windows,
            "stats": format!("{:?}", b.stats),
            "dead_letters": b.dead_letters.iter().map(|d| json!({"offset": d.source_offset, "reasons": d.reasons})).collect::<Vec<_>>(),
            "facts": column(&facts, "sale_id").as_string::<i32>().iter().flatten().collect::<Vec<_>>(),
        },
    });
    golden("windows", &actual);

    // By hand: the final [10:00, 10:05) SKU1 window holds records 1, 2, 3 and 5.
    let w = b_windows.iter().find(|w| w.product_id == "SKU1" && w.window_start == at("10:00:00")).unwrap();
    assert_eq!((w.units, w.transactions, w.distinct_customers), (7, 4, 3));
    assert_eq!(w.revenue, 20.0 + 10.0 + 27.0 + 10.0);
    assert_eq!(w.avg_price, 9.57);
    assert_eq!((b.stats.duplicates, b.stats.late, b.stats.valid), (1, 1, 4));
    assert_eq!(facts.num_rows(), 4, "the late sale is still a fact; the duplicate is not");
    assert!(b.dead_letters[0].reasons[0].starts_with("late_event"));
    // Closed windows are gone from memory: only [10:10) SKU1 and [10:15) SKU2 remain open.
    assert_eq!(p.sizes().0, 2);
}

#[test]
fn replay_from_a_checkpoint_reproduces_the_same_rows() {
    let records: Vec<_> = (0..40)
        .map(|i| {
            let t = at("10:00:00") + chrono::Duration::seconds(37 * i);
            sales_msg(i, &sale(i as u64, "store_001", if i % 3 == 0 { "SKU1" } else { "SKU2" }, 1 + (i % 4) as i32, 5.0, 0.0, t, Some("cust_5")), t)
        })
        .collect();
    let mut whole = Processor::new(window_config(), &Catalog::default());
    let mut straight = Outputs::default();
    for m in &records {
        whole.process(m, &mut straight);
    }
    whole.flush(&mut straight);

    // Same input, cut at offset 17: checkpoint, "crash", restore into a fresh processor, and
    // replay from offset 10 (records already applied must be skipped).
    let mut first = Processor::new(window_config(), &Catalog::default());
    let mut out = Outputs::default();
    for m in &records[..17] {
        first.process(m, &mut out);
    }
    first.flush(&mut out); // the rows the sinks got before the crash
    let snap = first.snapshot(topics::SALES, 0).unwrap().unwrap();
    let snap: retail_stream::PartSnapshot = serde_json::from_slice(&serde_json::to_vec(&snap).unwrap()).unwrap();
    let mut second = Processor::new(window_config(), &Catalog::default());
    assert_eq!(second.assign(topics::SALES, 0, Some(snap)).unwrap(), Some(17));
    let mut replay = Outputs::default();
    for m in &records[10..] {
        second.process(m, &mut replay);
    }
    second.flush(&mut replay);
    assert_eq!(replay.stats.replayed, 7);
    let last = |o: &mut Outputs| -> std::collections::BTreeMap<(String, chrono::DateTime<chrono::Utc>), retail_core::SalesWindow> {
        let mut m = std::collections::BTreeMap::new();
        for w in windows(o) {
            m.insert((w.product_id.clone(), w.window_start), w);
        }
        m
    };
    // What the upsert table holds: the pre-crash rows, overwritten by the replay's.
    let mut sinks = last(&mut out);
    sinks.extend(last(&mut replay));
    assert_eq!(last(&mut straight), sinks);
}

fn stock_catalog() -> Catalog {
    Catalog {
        products: vec![Product {
            product_id: "SKU9".into(),
            sku: "SKU9".into(),
            product_name: "Oat milk 1l".into(),
            category: "Dairy".into(),
            sub_category: "Milk".into(),
            brand: "Oaty".into(),
            supplier: "Nordic".into(),
            unit_cost: 0.8,
            list_price: 1.9,
            shelf_life_days: 30,
            pack_size: 6,
            lead_time_days: 0.5,
            lead_time_sd_days: 0.1,
        }],
        stores: vec![],
    }
}

#[test]
fn stock_velocity_risk_alerts_and_anomalies() {
    // No prior hours of zero demand: the smoothed velocity of a constant series is then exactly
    // that constant from its first hour, which keeps the arithmetic below by hand.
    let mut p = Processor::new(ProcessorConfig { velocity_prior_hours: 0.0, ..Default::default() }, &stock_catalog());
    let mut n = 0u64;
    let mut on_hand = 0;
    let mut msgs = Vec::new();
    let mut push = |change: i32, reason: &str, t: chrono::DateTime<chrono::Utc>, prev_override: Option<i32>| {
        n += 1;
        let prev = prev_override.unwrap_or(on_hand);
        msgs.push(inv_msg(n as i64 - 1, &inventory(n, "store_001", "SKU9", prev, change, reason, t), t));
        on_hand = prev + change;
    };
    push(200, "restock", at("08:00:00"), None);
    // Ten units sold every hour: velocity 10/h, lead time 12 h → expected lead-time demand 120.
    for h in 8..19 {
        push(-10, "sale", at(&format!("{h:02}:30:00")), None);
    }
    // A theft of 80 out of 90 on hand: unexplained drop.
    push(-80, "theft", at("19:10:00"), None);
    // Restock, but the update claims previous stock 15 while the stream counted 10.
    push(190, "restock", at("19:20:00"), Some(15));
    let mut out = run_batch(&mut p, &msgs);
    let facts = out.inventory.finish_facts().unwrap();
    let stock_rows = stock(&mut out);
    let int = |name: &str, i: usize| column(&facts, name).as_primitive::<Int32Type>().value(i);
    let event_time = |i: usize| chrono::DateTime::from_timestamp(column(&facts, "event_time").as_primitive::<TimestampSecondType>().value(i), 0).unwrap();
    let actual = json!({
        "inventory": (0..facts.num_rows()).map(|i| json!([event_time(i), int("quantity_on_hand", i), int("reorder_point", i), int("safety_stock", i)])).collect::<Vec<_>>(),
        "stock": stock_rows,
        "alerts": out.alerts,
        "anomalies": out.anomalies,
    });
    golden("stock", &actual);

    // By hand. After 11 hourly sales the smoothed velocity is 10/h (a constant series), the
    // hourly variance floors at the mean (10), and over a 0.5 ± 0.1 day lead time:
    //   mean = 120, sd = sqrt(12·10 + 240²·0.01) = sqrt(696) ≈ 26.38
    //   reorder point = ceil(120 + ceil(1.645·26.38)) = 120 + 44 = 164.
    let rop_at = |i: usize| int("reorder_point", i);
    assert_eq!(rop_at(5), 164);
    let st = &stock_rows[0];
    assert_eq!(st.on_hand, 205);
    assert_eq!(st.velocity_per_hour, 10.0);
    // Risk with 205 on hand: 1 − Φ((205.5 − 120)/26.38) ≈ 0.0006.
    assert!(st.stockout_risk < 0.001, "{}", st.stockout_risk);
    // Alerts: open (Low) when stock first falls below 164, escalate once the risk passes 0.5
    // (cooldown elapsed), critical never (stock stays positive), resolved by the restock.
    let kinds: Vec<(AlertStatus, Severity, i32)> = out.alerts.iter().map(|a| (a.status, a.severity, a.on_hand)).collect();
    assert_eq!(kinds.first().map(|k| (k.0, k.1)), Some((AlertStatus::Open, Severity::Low)));
    assert_eq!(kinds.first().map(|k| k.2), Some(160));
    assert!(kinds.iter().any(|k| k.0 == AlertStatus::Open && k.1 >= Severity::Medium), "{kinds:?}");
    assert_eq!(kinds.last().map(|k| k.0), Some(AlertStatus::Resolved));
    let open = out.alerts.iter().find(|a| a.status == AlertStatus::Open).unwrap();
    assert_eq!(open.suggested_order_qty % 6, 0, "whole packs");
    let anomaly_kinds: Vec<AnomalyKind> = out.anomalies.iter().map(|a| a.kind).collect();
    assert_eq!(anomaly_kinds, vec![AnomalyKind::UnexplainedStockDrop, AnomalyKind::StockMismatch]);
}

#[test]
fn outliers_and_stuck_pos_are_flagged() {
    let mut p = Processor::new(ProcessorConfig::default(), &stock_catalog());
    let mut msgs = Vec::new();
    let mut t = at("09:00:00");
    for i in 0..60u64 {
        t += chrono::Duration::seconds(20);
        let store = format!("store_{:03}", 1 + i % 4); // rotate stores: no identical run
        msgs.push(sales_msg(i as i64, &sale(i, &store, "SKU9", 1 + (i % 2) as i32, 1.9, 0.0, t, Some(&format!("cust_{i}"))), t));
    }
    t += chrono::Duration::seconds(20);
    msgs.push(sales_msg(60, &sale(60, "store_002", "SKU9", 400, 1.9, 0.0, t, None), t));
    t += chrono::Duration::seconds(20);
    msgs.push(sales_msg(61, &sale(61, "store_002", "SKU9", 1, 95.0, 0.0, t, None), t));
    // A stuck terminal: five identical lines (new ids) in a row from store_003.
    for i in 0..5u64 {
        t += chrono::Duration::seconds(1);
        msgs.push(sales_msg(62 + i as i64, &sale(100 + i, "store_003", "SKU9", 2, 1.9, 0.0, t, Some("cust_42")), t));
    }
    let out = run_batch(&mut p, &msgs);
    let kinds: Vec<(AnomalyKind, Option<String>)> = out.anomalies.iter().map(|a| (a.kind, a.event_id.clone())).collect();
    assert_eq!(
        kinds,
        vec![(AnomalyKind::QuantityOutlier, Some(uuid(60))), (AnomalyKind::PriceOutlier, Some(uuid(61))), (AnomalyKind::StuckPos, Some(uuid(104))),]
    );
    // Replaying the same input gives the same anomaly ids (idempotent warehouse keys).
    let mut again = Processor::new(ProcessorConfig::default(), &stock_catalog());
    let out2 = run_batch(&mut again, &msgs);
    assert_eq!(out.anomalies, out2.anomalies);
}

/// Ids are remembered for `dedup_horizon_ms` (2 h) of event time behind the watermark. A re-send
/// within it is dropped; one from further back cannot be told from a new event: it is accepted
/// and counted (`beyond_dedup_horizon`), and the warehouse's id-keyed facts drop it there.
#[test]
fn resends_within_the_dedup_horizon_are_dropped_beyond_it_counted() {
    let mut p = Processor::new(window_config(), &Catalog::default());
    let early = sale(1, "store_001", "SKU1", 1, 10.0, 0.0, at("10:00:00"), None);
    let recent = sale(2, "store_001", "SKU1", 1, 10.0, 0.0, at("12:59:00"), None);
    let first = vec![sales_msg(0, &early, at("10:00:00")), sales_msg(1, &recent, at("12:59:00"))];
    let a = run_batch(&mut p, &first);
    assert_eq!((a.stats.valid, a.stats.duplicates, a.stats.beyond_dedup_horizon), (2, 0, 0));
    // The watermark is now 12:58; ids before 10:58 are forgotten.
    let resent = vec![sales_msg(2, &recent, at("13:00:00")), sales_msg(3, &early, at("13:00:01"))];
    let b = run_batch(&mut p, &resent);
    assert_eq!(b.stats.duplicates, 1, "the recent re-send is dropped");
    assert_eq!((b.stats.valid, b.stats.beyond_dedup_horizon), (1, 1), "the 3-hour-old re-send is accepted and counted");
    assert_eq!(b.stats.late, 1, "and it is late for its window");
}

/// Inventory updates out of order: the level comes from the newest update, an older one that
/// arrives after it is kept as a fact (with the level it reported then) but does not overwrite
/// the count, is not checked against it (no false mismatch) and is counted as stale.
#[test]
fn a_stale_inventory_update_does_not_overwrite_the_newer_level() {
    let mut p = Processor::new(ProcessorConfig::default(), &stock_catalog());
    let msgs = vec![
        inv_msg(0, &inventory(1, "store_001", "SKU9", 0, 200, "restock", at("08:00:00")), at("08:00:00")),
        // 10:00 arrives before 09:00; its previous level (190) already counts the 09:00 sale.
        inv_msg(1, &inventory(3, "store_001", "SKU9", 190, -5, "sale", at("10:00:00")), at("10:00:00")),
        inv_msg(2, &inventory(2, "store_001", "SKU9", 200, -10, "sale", at("09:00:00")), at("10:00:00")),
    ];
    let mut out = run_batch(&mut p, &msgs);
    let facts = out.inventory.finish_facts().unwrap();
    let on_hand: Vec<i32> = (0..facts.num_rows()).map(|i| column(&facts, "quantity_on_hand").as_primitive::<Int32Type>().value(i)).collect();
    assert_eq!(on_hand, vec![200, 185, 190], "every update is a fact, with the level it reported");
    let level = stock(&mut out);
    assert_eq!(level[0].on_hand, 185, "the newest update's level stands");
    assert_eq!(level[0].updated_at, at("10:00:00"));
    assert_eq!(out.stats.stale_inventory, 1);
    // The 10:00 update's previous level (190) disagrees with the count then (200): a movement
    // was missing at that point. The late 09:00 update is that movement, not a second mismatch.
    let mismatches = out.anomalies.iter().filter(|a| a.kind == AnomalyKind::StockMismatch).count();
    assert_eq!(mismatches, 1, "{:?}", out.anomalies);

    // An update with the same time as the newest one is not stale: arrival order decides.
    let mut out = run_batch(&mut p, &[inv_msg(3, &inventory(4, "store_001", "SKU9", 185, -1, "sale", at("10:00:00")), at("10:00:01"))]);
    assert_eq!(stock(&mut out)[0].on_hand, 184);
    assert_eq!(out.stats.stale_inventory, 0);
}

/// A record handed over without its validation verdict is validated on the spot, not a panic.
#[test]
fn a_record_without_its_verdict_is_validated_on_the_spot() {
    let mut p = Processor::new(window_config(), &Catalog::default());
    let mut out = Outputs::default();
    let good = sales_msg(0, &sale(1, "store_001", "SKU1", 2, 10.0, 0.0, at("10:00:00"), None), at("10:00:00"));
    let bad = sales_msg(1, r#"{"event_type":"sale"}"#, at("10:00:00"));
    assert!(p.process_checked(&good, &None, &mut out), "valid and new: bound for the lake");
    assert!(!p.process_checked(&bad, &None, &mut out));
    assert_eq!((out.stats.valid, out.stats.invalid, out.dead_letters.len()), (1, 1, 1));
    assert!(!p.process_checked(&good, &None, &mut out), "already applied");
    assert_eq!(out.stats.replayed, 1);
}

/// Small recorded thefts of several SKUs of one store within the burst window are flagged
/// together once the third SKU is hit; thefts spread wider than the window, or in another store,
/// are not.
#[test]
fn a_theft_burst_across_skus_is_flagged_though_each_theft_is_small() {
    let mut p = Processor::new(ProcessorConfig::default(), &Catalog::default());
    let mut n = 0u64;
    let mut level: std::collections::HashMap<(String, String), i32> = Default::default();
    let mut msg = |store: &str, sku: &str, hms: &str| {
        n += 1;
        let on_hand = level.entry((store.into(), sku.into())).or_insert(50);
        *on_hand -= 3;
        inv_msg(n as i64 - 1, &inventory(n, store, sku, *on_hand + 3, -3, "theft", at(hms)), at(hms))
    };
    let msgs = vec![
        msg("store_001", "SKU1", "10:00:00"),
        msg("store_001", "SKU2", "10:30:00"),
        msg("store_002", "SKU3", "10:40:00"), // another store
        msg("store_001", "SKU1", "11:00:00"), // the same SKU again: still two SKUs
    ];
    let out = run_batch(&mut p, &msgs);
    assert!(out.anomalies.is_empty(), "{:?}", out.anomalies);
    let out = run_batch(&mut p, &[msg("store_001", "SKU3", "12:00:00")]);
    let flagged: Vec<(&str, &str)> = out.anomalies.iter().map(|a| (a.product_id.as_str(), a.event_id.as_deref().unwrap())).collect();
    assert_eq!(flagged, vec![("SKU1", uuid(1).as_str()), ("SKU2", uuid(2).as_str()), ("SKU1", uuid(4).as_str()), ("SKU3", uuid(5).as_str())]);
    assert!(out.anomalies.iter().all(|a| a.kind == AnomalyKind::UnexplainedStockDrop && a.store_id == "store_001"));
    // A fourth SKU in the window joins the burst: only its own theft is new.
    let out = run_batch(&mut p, &[msg("store_001", "SKU4", "12:30:00")]);
    assert_eq!(out.anomalies.iter().map(|a| a.product_id.as_str()).collect::<Vec<_>>(), vec!["SKU4"]);
    // Hours later, two more SKUs are not a burst: the earlier thefts left the 3 h window.
    let out = run_batch(&mut p, &[msg("store_001", "SKU5", "18:00:00"), msg("store_001", "SKU6", "18:10:00")]);
    assert!(out.anomalies.is_empty(), "{:?}", out.anomalies);
}

/// A price keyed ten times too high (or low) at a POS is flagged against the catalog's list
/// price while the SKU has too few sales for a norm of its own.
#[test]
fn a_mistyped_price_of_a_young_sku_is_flagged_against_the_catalog() {
    let mut p = Processor::new(ProcessorConfig::default(), &stock_catalog());
    let msgs = vec![
        sales_msg(0, &sale(1, "store_001", "SKU9", 1, 1.9, 0.0, at("10:00:00"), None), at("10:00:00")),
        sales_msg(1, &sale(2, "store_001", "SKU9", 1, 19.0, 0.0, at("10:05:00"), None), at("10:05:00")),
        sales_msg(2, &sale(3, "store_001", "SKU9", 1, 0.19, 0.0, at("10:10:00"), None), at("10:10:00")),
        // A promotion (half price) is not a mistake: the shelf price is the list price.
        sales_msg(3, &sale(4, "store_001", "SKU9", 1, 1.9, 0.5, at("10:15:00"), None), at("10:15:00")),
    ];
    let out = run_batch(&mut p, &msgs);
    let flagged: Vec<(String, f64)> =
        out.anomalies.iter().filter(|a| a.kind == AnomalyKind::PriceOutlier).map(|a| (a.event_id.clone().unwrap(), a.score)).collect();
    assert_eq!(flagged, vec![(uuid(2), 10.0), (uuid(3), 0.1)]);
}

#[test]
fn a_partition_restored_from_a_format_1_checkpoint_keeps_hashing_ids_with_fnv() {
    let t = at("10:00:00");
    let sales: Vec<String> = (0..5).map(|i| sale(i, "store_001", "SKU1", 1, 5.0, 0.0, t, Some("cust_5"))).collect();
    let mut p = Processor::new(window_config(), &Catalog::default());
    run_batch(&mut p, &sales.iter().enumerate().map(|(i, s)| sales_msg(i as i64, s, t)).collect::<Vec<_>>());
    let snap = p.snapshot(topics::SALES, 0).unwrap().unwrap();
    assert_eq!(snap.format, 2, "a new partition hashes ids word-wise");
    // What a build from before format 2 stored for the same records: ids hashed with FNV-1a.
    let mut old = snap.clone();
    old.format = 1;
    assert_eq!(old.dedup.len(), 1, "one event-time bucket");
    old.dedup[0].1 = (0..5).map(|i| retail_stream::model::fnv64(uuid(i).as_bytes())).collect();

    // The same five sales again at later offsets (a producer's retry): duplicates by id.
    let again: Vec<_> = sales.iter().enumerate().map(|(i, s)| sales_msg(5 + i as i64, s, t)).collect();
    let restore = |snap: retail_stream::PartSnapshot| {
        let mut q = Processor::new(window_config(), &Catalog::default());
        q.assign(topics::SALES, 0, Some(snap)).unwrap();
        let out = run_batch(&mut q, &again);
        (out.stats.duplicates, q.snapshot(topics::SALES, 0).unwrap().unwrap().format)
    };
    assert_eq!(restore(old.clone()), (5, 1), "format 1 stays FNV-1a, in memory and in the next checkpoint");
    assert_eq!(restore(snap.clone()), (5, 2));
    // The format is what tells the two apart: FNV ids read as format 2 catch nothing.
    let mut mislabeled = old;
    mislabeled.format = 2;
    assert_eq!(restore(mislabeled).0, 0);
    // A format this build does not know is refused, not guessed.
    let mut future = snap;
    future.format = 3;
    assert!(Processor::new(window_config(), &Catalog::default()).assign(topics::SALES, 0, Some(future)).is_err());
}
