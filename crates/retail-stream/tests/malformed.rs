//! Malformed input through the whole runner on the real embedded bus, lake and warehouse:
//! every bad record lands in `retail-dead-letter` with its bytes, its offset and its reasons;
//! the good records around it reach the lake and the warehouse untouched.

mod common;

use common::*;
use retail_bus::{BusOptions, Record};
use retail_core::{topics, DeadLetter};
use retail_lake::{Lake, RawKind, S3Options};
use retail_stream::{Catalog, StreamConfig, StreamMetrics};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_are_dead_lettered_with_reasons_and_good_ones_flow() {
    let dir = tempfile::tempdir().unwrap();
    let bus = retail_bus::open(&format!("file://{}/bus", dir.path().display()), &BusOptions::default()).await.unwrap();
    bus.ensure_topics().await.unwrap();
    let lake = Lake::open(&format!("file://{}/lake", dir.path().display()), &S3Options::default()).unwrap();
    let warehouse = retail_warehouse::open("embedded", &Default::default(), Some(lake.clone())).await.unwrap();
    warehouse.init().await.unwrap();

    // Fixture times are in the past of the append time, as real POS events are.
    let good = |n: u64| sale(n, "store_001", "SKU1", 1, 2.5, 0.0, at("10:00:00"), Some("cust_1"));
    let base = good(100);
    let patch = |f: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
        let mut v: serde_json::Value = serde_json::from_str(&base).unwrap();
        f(v.as_object_mut().unwrap());
        v.to_string()
    };
    let bad: Vec<(&str, String, &str)> = vec![
        ("truncated JSON", base[..base.len() - 20].to_string(), "malformed JSON"),
        (
            "wrong type",
            patch(&|m| {
                m.insert("quantity".into(), "two".into());
            }),
            "quantity",
        ),
        (
            "missing field",
            patch(&|m| {
                m.remove("store_id");
            }),
            "missing field `store_id`",
        ),
        (
            "negative quantity",
            patch(&|m| {
                m.insert("quantity".into(), (-3).into());
            }),
            "quantity",
        ),
        (
            "unknown enum",
            patch(&|m| {
                m.insert("payment_method".into(), "barter".into());
            }),
            "payment_method",
        ),
        (
            "absurd future time",
            patch(&|m| {
                m.insert("timestamp".into(), "2999-01-01T00:00:00Z".into());
            }),
            "future",
        ),
        (
            "absurd past time",
            patch(&|m| {
                m.insert("timestamp".into(), "1970-01-01T00:00:00Z".into());
            }),
            "before 2000",
        ),
        (
            "huge payload",
            patch(&|m| {
                m.insert("promotion_id".into(), "x".repeat(100_000).into());
            }),
            "limit",
        ),
        ("not JSON at all", "\u{0}\u{1}garbage".to_string(), "malformed JSON"),
        (
            "several problems",
            patch(&|m| {
                m.insert("quantity".into(), "x".into());
                m.remove("basket_id");
                m.insert("colour".into(), "red".into());
            }),
            "colour",
        ),
    ];
    let mut payloads: Vec<String> = Vec::new();
    for (i, (_, p, _)) in bad.iter().enumerate() {
        payloads.push(good(i as u64 * 2 + 1));
        payloads.push(p.clone());
    }
    payloads.push(good(999));
    let recs: Vec<Record> = payloads.iter().map(|p| Record { topic: topics::SALES, key: b"store_001", payload: p.as_bytes() }).collect();
    bus.publish(&recs).await.unwrap();

    let cfg = StreamConfig { stop_when_idle: true, checkpoint_interval: Duration::ZERO, ..StreamConfig::default() };
    let metrics = StreamMetrics::new();
    let counters = metrics.counters();
    let summary = retail_stream::run(cfg, bus.clone(), lake.clone(), warehouse.clone(), &Catalog::default(), metrics, CancellationToken::new()).await.unwrap();
    assert_eq!(summary.records, payloads.len() as u64);
    assert_eq!(summary.valid, bad.len() as u64 + 1);
    assert_eq!(summary.dead_letters, bad.len() as u64);
    assert_eq!(counters.snapshot().dead_letters, bad.len() as u64);

    // The dead-letter topic holds each bad record: original bytes, offset, reasons.
    let mut dlq = bus.subscribe("dlq-reader", &[topics::DEAD_LETTER]).await.unwrap();
    let mut letters: Vec<DeadLetter> = Vec::new();
    for _ in 0..20 {
        for m in dlq.poll_batch(1000, Duration::from_millis(200)).await.unwrap() {
            letters.push(serde_json::from_slice(&m.payload).unwrap());
        }
        if letters.len() >= bad.len() {
            break;
        }
    }
    letters.sort_by_key(|d| d.source_offset);
    assert_eq!(letters.len(), bad.len());
    for (i, ((what, payload, needle), letter)) in bad.iter().zip(&letters).enumerate() {
        assert_eq!(letter.source_topic, topics::SALES);
        assert_eq!(letter.source_offset, i as i64 * 2 + 1, "{what}");
        assert!(!letter.reasons.is_empty(), "{what}");
        assert!(letter.reasons.iter().any(|r| r.contains(needle)), "{what}: {:?}", letter.reasons);
        if letter.original_encoding == "utf8" {
            assert_eq!(&letter.original, payload, "{what}: original bytes kept");
        }
    }
    let several = letters.last().unwrap();
    assert!(several.reasons.len() >= 3, "every reason, not the first: {:?}", several.reasons);

    // The good records are all in the lake and the warehouse.
    let day = at("10:00:00").date_naive();
    let raw = lake.read_raw(RawKind::Sales, day).await.unwrap();
    assert_eq!(raw.len(), bad.len() + 1);
    let q = warehouse.query("SELECT COUNT(*) FROM fact_sales").await.unwrap();
    assert_eq!(q.rows[0][0].as_i64(), Some(bad.len() as i64 + 1));
}
