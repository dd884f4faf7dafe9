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
    let (records, exp) = generate(402_000, 3, 9);
    let now = chrono::Utc::now();
    let mut msgs: Vec<retail_bus::Message> = records.iter().enumerate().map(|(i, (t, _, p))| msg(t, 0, i as i64, p, now)).collect();
    let tail = msgs.split_off(400_000);
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

    // What a checkpoint of this state costs (the runner encodes one snapshot per partition):
    // the first carries every dedup bucket, a later one only the buckets that changed since.
    let checkpoint = |p: &mut Processor, what: &str| {
        let started = std::time::Instant::now();
        let owned = p.owned();
        let snapshots: Vec<_> = owned.iter().filter_map(|tp| p.snapshot(&tp.topic, tp.partition).expect("a snapshot")).collect();
        let taken = started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        let mut bytes = 0;
        for s in &snapshots {
            let mut buf = Vec::new();
            s.encode(&mut buf).unwrap();
            bytes += buf.len();
        }
        let encoded = started.elapsed().as_secs_f64();
        let ids: usize = snapshots.iter().flat_map(|s| &s.dedup).map(|(_, ids)| ids.len()).sum();
        println!("checkpoint, {what}: snapshot {:.0} ms, encode {:.0} ms, {:.1} MB, {ids} dedup ids", taken * 1e3, encoded * 1e3, bytes as f64 / 1e6);
        ids
    };
    let all_ids = checkpoint(&mut p, "first");
    // Two more seconds of traffic at the stream's head, then the next checkpoint.
    for m in &tail {
        p.process(m, &mut out);
    }
    p.flush(&mut out);
    let changed_ids = checkpoint(&mut p, "next");
    assert!(changed_ids < all_ids / 4, "{changed_ids} of {all_ids} ids re-encoded");
}
