//! How fast raw sales encode to Parquet under candidate writer settings (a measurement, not a
//! timed assertion): `cargo test --release -p retail-lake --test parquet_speed -- --ignored --nocapture`.

use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, Encoding};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use retail_core::{Event, EventType, PaymentMethod, SaleTransaction};
use std::time::Instant;

fn sales(n: usize) -> Vec<Event> {
    let base = chrono::DateTime::from_timestamp(1_735_725_600, 0).unwrap();
    (0..n)
        .map(|i| {
            Event::Sale(SaleTransaction {
                event_type: EventType::Sale,
                schema_version: 1,
                transaction_id: format!("00000000-0000-4000-8000-{:012}", 2 * i),
                basket_id: format!("00000000-0000-4000-9000-{:012}", i / 3),
                store_id: format!("store_{:03}", 1 + i % 200),
                product_id: format!("SKU{}", 1 + (i / 200) % 500),
                quantity: 1 + (i % 3) as i32,
                unit_price: 1.0 + (i % 40) as f64 * 0.5,
                list_price: 1.0 + (i % 40) as f64 * 0.5,
                discount_pct: 0.0,
                promotion_id: None,
                timestamp: base + chrono::Duration::milliseconds(2 * i as i64),
                customer_id: (i % 3 != 0).then(|| format!("cust_{}", i % 10_000)),
                payment_method: PaymentMethod::CreditCard,
            })
        })
        .collect()
}

#[test]
#[ignore = "measurement"]
fn parquet_encode_settings() {
    let events = sales(200_000);
    let refs: Vec<&Event> = events.iter().collect();
    let t = Instant::now();
    let batch = retail_lake::events_to_batch(retail_lake::RawKind::Sales, &refs).unwrap();
    println!("events → batch: {:.0} rows/s", refs.len() as f64 / t.elapsed().as_secs_f64());
    let candidates: Vec<(&str, WriterProperties)> = vec![
        ("snappy default", WriterProperties::builder().set_compression(Compression::SNAPPY).build()),
        ("uncompressed", WriterProperties::builder().set_compression(Compression::UNCOMPRESSED).build()),
        ("lz4_raw", WriterProperties::builder().set_compression(Compression::LZ4_RAW).build()),
        (
            "snappy, no dict for ids",
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_column_dictionary_enabled("transaction_id".into(), false)
                .set_column_dictionary_enabled("basket_id".into(), false)
                .set_column_encoding("transaction_id".into(), Encoding::PLAIN)
                .set_column_encoding("basket_id".into(), Encoding::PLAIN)
                .build(),
        ),
        (
            "snappy, no dict ids, chunk stats",
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_column_dictionary_enabled("transaction_id".into(), false)
                .set_column_dictionary_enabled("basket_id".into(), false)
                .set_statistics_enabled(EnabledStatistics::Chunk)
                .build(),
        ),
        (
            "lz4_raw, no dict ids, chunk stats",
            WriterProperties::builder()
                .set_compression(Compression::LZ4_RAW)
                .set_column_dictionary_enabled("transaction_id".into(), false)
                .set_column_dictionary_enabled("basket_id".into(), false)
                .set_statistics_enabled(EnabledStatistics::Chunk)
                .build(),
        ),
        ("snappy, no dict at all", WriterProperties::builder().set_compression(Compression::SNAPPY).set_dictionary_enabled(false).build()),
        (
            "snappy, no dict, no stats",
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_dictionary_enabled(false)
                .set_statistics_enabled(EnabledStatistics::None)
                .build(),
        ),
        (
            "lz4_raw, no dict, no stats",
            WriterProperties::builder()
                .set_compression(Compression::LZ4_RAW)
                .set_dictionary_enabled(false)
                .set_statistics_enabled(EnabledStatistics::None)
                .build(),
        ),
        (
            "uncompressed, no dict, no stats",
            WriterProperties::builder()
                .set_compression(Compression::UNCOMPRESSED)
                .set_dictionary_enabled(false)
                .set_statistics_enabled(EnabledStatistics::None)
                .build(),
        ),
        ("lake: dict where useful, no stats on strings", {
            let mut b = WriterProperties::builder().set_compression(Compression::SNAPPY).set_statistics_enabled(EnabledStatistics::Chunk);
            for c in ["transaction_id", "basket_id", "store_id", "product_id", "promotion_id", "customer_id", "payment_method"] {
                b = b.set_column_statistics_enabled(c.into(), EnabledStatistics::None);
            }
            for c in ["transaction_id", "basket_id", "timestamp"] {
                b = b.set_column_dictionary_enabled(c.into(), false);
            }
            b.build()
        }),
        ("snappy, dict, no stats", WriterProperties::builder().set_compression(Compression::SNAPPY).set_statistics_enabled(EnabledStatistics::None).build()),
        (
            "snappy, no dict ids+time+customer",
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_column_dictionary_enabled("transaction_id".into(), false)
                .set_column_dictionary_enabled("basket_id".into(), false)
                .set_column_dictionary_enabled("timestamp".into(), false)
                .set_column_dictionary_enabled("customer_id".into(), false)
                .build(),
        ),
        (
            "snappy, no dict ids+time",
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_column_dictionary_enabled("transaction_id".into(), false)
                .set_column_dictionary_enabled("basket_id".into(), false)
                .set_column_dictionary_enabled("timestamp".into(), false)
                .build(),
        ),
    ];
    for _ in 0..3 {
        let t = Instant::now();
        let bytes = retail_lake::encode_parquet(std::slice::from_ref(&batch)).unwrap();
        println!("{:<36} {:>10.0} rows/s {:>8} KiB", "encode_parquet (the lake's)", batch.num_rows() as f64 / t.elapsed().as_secs_f64(), bytes.len() / 1024);
    }
    for (name, props) in candidates {
        let t = Instant::now();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let s = t.elapsed().as_secs_f64();
        println!("{name:<36} {:>10.0} rows/s {:>8} KiB", batch.num_rows() as f64 / s, buf.len() / 1024);
    }
}
