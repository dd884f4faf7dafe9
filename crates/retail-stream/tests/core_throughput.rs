//! How fast the pure core runs (validation included), without any sink: locates the
//! bottleneck when `retail bench stream` falls short. Prints events/s; asserts only sanity.

mod common;

use common::*;
use retail_stream::{Catalog, Outputs, Processor, ProcessorConfig, TopicKind};

// The allocator the `retail` binary runs with, so the figures match the service's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[test]
#[ignore = "measurement: cargo test --release -p retail-stream --test core_throughput -- --ignored --nocapture"]
fn processor_core_events_per_second() {
    let (records, exp) = generate(400_000, 3, 9);
    let now = chrono::Utc::now();
    let msgs: Vec<retail_bus::Message> = records.iter().enumerate().map(|(i, (t, _, p))| msg(t, 0, i as i64, p, now)).collect();
    let started = std::time::Instant::now();
    let mut valid = 0;
    for m in &msgs {
        let kind = TopicKind::from_topic(&m.topic).unwrap();
        valid += retail_stream::validate::validate(kind, &m.payload, m.timestamp_ms).is_ok() as usize;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("validation alone: {valid} valid of {} in {secs:.2} s = {:.0} records/s", msgs.len(), msgs.len() as f64 / secs);
    let started = std::time::Instant::now();
    let mut parsed = 0;
    for m in &msgs {
        parsed += match TopicKind::from_topic(&m.topic).unwrap() {
            TopicKind::Sales => serde_json::from_slice::<retail_core::SaleTransaction>(&m.payload).is_ok(),
            TopicKind::Inventory => serde_json::from_slice::<retail_core::InventoryUpdate>(&m.payload).is_ok(),
            _ => false,
        } as usize;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("typed parse alone: {parsed} parsed in {secs:.2} s = {:.0} records/s", msgs.len() as f64 / secs);
    let mut p = Processor::new(ProcessorConfig::default(), &Catalog::default());
    let mut out = Outputs::default();
    let started = std::time::Instant::now();
    for chunk in msgs.chunks(20_000) {
        for m in chunk {
            p.process(m, &mut out);
        }
        p.flush(&mut out);
        assert!(out.sales.len() <= exp.sale_ids.len());
        out.clear();
    }
    let secs = started.elapsed().as_secs_f64();
    println!("processor core: {} records in {secs:.2} s = {:.0} records/s", msgs.len(), msgs.len() as f64 / secs);

    // What a checkpoint of this state costs (the runner encodes one snapshot per partition).
    let started = std::time::Instant::now();
    let snapshots: Vec<_> = p.owned().iter().filter_map(|tp| p.snapshot(&tp.topic, tp.partition)).collect();
    let taken = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let bytes: usize = snapshots.iter().map(|s| serde_json::to_vec(s).unwrap().len()).sum();
    let encoded = started.elapsed().as_secs_f64();
    assert!(bytes > 0);
    println!("checkpoint: {} partitions, snapshot {:.0} ms, JSON encode {:.0} ms, {:.1} MB", snapshots.len(), taken * 1e3, encoded * 1e3, bytes as f64 / 1e6);
}
