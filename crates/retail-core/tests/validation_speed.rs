//! Fast-path validation throughput on one core (a measurement, run explicitly):
//! `cargo test --release -p retail-core --test validation_speed -- --ignored --nocapture`

use retail_core::*;
use std::time::Instant;

#[test]
#[ignore = "a measurement, not a check; run explicitly"]
fn validations_per_second_on_one_core() {
    let now = "2025-01-02T00:00:00Z".parse().unwrap();
    let good = include_bytes!("fixtures/sale_ok.json");
    let bad = br#"{"event_type":"sale","schema_version":1,"quantity":"2"}"#;
    let n = 1_000_000;
    let t = Instant::now();
    for _ in 0..n {
        assert!(validate_message(topics::SALES, std::hint::black_box(good), now).is_ok());
    }
    let ok_rate = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..n / 10 {
        assert!(validate_message(topics::SALES, std::hint::black_box(bad), now).is_err());
    }
    let bad_rate = (n / 10) as f64 / t.elapsed().as_secs_f64();
    println!("valid sale: {ok_rate:.0}/s, rejected (detailed Avro reasons): {bad_rate:.0}/s");
    // The same sale with its keys sorted (as `serde_json::Value` writes them), not in the
    // declaration order our producers use: the parser's general key path.
    let sorted = serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(good).unwrap()).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        assert!(validate_message(topics::SALES, std::hint::black_box(&sorted), now).is_ok());
    }
    println!("valid sale, keys sorted: {:.0}/s", n as f64 / t.elapsed().as_secs_f64());
    // The two halves of the fast path, to see which one a change moved.
    let t = Instant::now();
    for _ in 0..n {
        assert!(serde_json::from_slice::<SaleTransaction>(std::hint::black_box(good)).is_ok());
    }
    let parse_ns = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    let event = Event::Sale(serde_json::from_slice(good).unwrap());
    let t = Instant::now();
    for _ in 0..n {
        assert!(validate_event(std::hint::black_box(&event), now).is_ok());
    }
    let rules_ns = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    println!("typed parse alone: {parse_ns:.0} ns, semantic rules alone: {rules_ns:.0} ns");
}
