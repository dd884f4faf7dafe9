//! Fast-path validation throughput on one core (a measurement, run explicitly):
//! `cargo test --release -p retail-core --test validation_speed -- --ignored --nocapture`

use retail_core::*;
use std::time::Instant;

/// Calls per second of `f`: the best of five rounds of `n / 5` calls, since the host is shared
/// and a slow round says more about the neighbours than about the code.
fn best_rate(n: usize, mut f: impl FnMut()) -> f64 {
    let round = n / 5;
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..round {
                f();
            }
            round as f64 / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

#[test]
#[ignore = "a measurement, not a check; run explicitly"]
fn validations_per_second_on_one_core() {
    let now = "2025-01-02T00:00:00Z".parse().unwrap();
    let good = include_bytes!("fixtures/sale_ok.json");
    let bad = br#"{"event_type":"sale","schema_version":1,"quantity":"2"}"#;
    let n = 1_000_000;
    let ok_rate = best_rate(n, || assert!(validate_message(topics::SALES, std::hint::black_box(good), now).is_ok()));
    let bad_rate = best_rate(n / 10, || assert!(validate_message(topics::SALES, std::hint::black_box(bad), now).is_err()));
    println!("valid sale: {ok_rate:.0}/s, rejected (detailed Avro reasons): {bad_rate:.0}/s");
    // The other hot event, shaped as the stream bench's producer writes it, and the sale read
    // into borrowed strings as the stream processor reads it.
    let inventory = br#"{"event_type":"inventory_update","schema_version":1,"inventory_id":"2c2d3e4f-5a6b-5c7d-8e9f-0a1b2c3d4e5f","store_id":"store_001","product_id":"SKU123","quantity_change":-2,"previous_quantity":999998,"new_quantity":999996,"reason":"sale","reference_id":null,"timestamp":"2025-01-01T10:30:00.050Z"}"#;
    let inventory_rate = best_rate(n, || assert!(validate_message(topics::INVENTORY, std::hint::black_box(inventory), now).is_ok()));
    let borrowed_rate = best_rate(n, || assert!(validate_message_as::<Str>(topics::SALES, std::hint::black_box(good), now).is_ok()));
    println!("valid inventory update: {inventory_rate:.0}/s, valid sale into borrowed strings: {borrowed_rate:.0}/s");
    // The same sale with its keys sorted (as `serde_json::Value` writes them), not in the
    // declaration order our producers use: the parser's general key path.
    let sorted = serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(good).unwrap()).unwrap();
    let sorted_rate = best_rate(n, || assert!(validate_message(topics::SALES, std::hint::black_box(&sorted), now).is_ok()));
    println!("valid sale, keys sorted: {sorted_rate:.0}/s");
    // The two halves of the fast path, to see which one a change moved.
    let parse_rate = best_rate(n, || assert!(serde_json::from_slice::<SaleTransaction>(std::hint::black_box(good)).is_ok()));
    let event = Event::Sale(serde_json::from_slice(good).unwrap());
    let rules_rate = best_rate(n, || assert!(validate_event(std::hint::black_box(&event), now).is_ok()));
    println!("typed parse alone (serde_json): {:.0} ns, semantic rules alone: {:.0} ns", 1e9 / parse_rate, 1e9 / rules_rate);
}
