//! Validation of hand-made events: accepted when right, rejected with every reason when wrong,
//! and the same verdict from the fast path and from apache-avro.

use chrono::{DateTime, Utc};
use retail_core::*;
use serde_json::{json, Value};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-01-02T00:00:00Z").unwrap().with_timezone(&Utc)
}

fn sale() -> Value {
    serde_json::from_str(include_str!("fixtures/sale_ok.json")).unwrap()
}

fn inventory() -> Value {
    json!({"event_type":"inventory_update","schema_version":1,"inventory_id":"2c2d3e4f-5a6b-5c7d-8e9f-0a1b2c3d4e5f",
           "store_id":"store_001","product_id":"SKU000123","quantity_change":-2,"previous_quantity":50,
           "new_quantity":48,"reason":"sale","reference_id":"0b6c1a4e-8f0e-5d7a-9b1c-2f3e4d5c6b7a",
           "timestamp":"2025-01-01T10:30:00Z"})
}

fn price() -> Value {
    json!({"event_type":"price_change","schema_version":1,"price_change_id":"3c2d3e4f-5a6b-5c7d-8e9f-0a1b2c3d4e5f",
           "store_id":"store_002","product_id":"SKU7","old_price":4.99,"new_price":3.99,"reason":"promotion",
           "promotion_id":"PROMO-2025-0001","timestamp":"2025-01-01T06:00:00Z"})
}

fn customer() -> Value {
    json!({"event_type":"customer_event","schema_version":1,"customer_event_id":"4c2d3e4f-5a6b-5c7d-8e9f-0a1b2c3d4e5f",
           "store_id":"store_010","customer_id":"cust_99","action":"loyalty_redeem","loyalty_points":250,
           "timestamp":"2025-01-01T18:00:00Z"})
}

fn alert() -> Value {
    json!({"event_type":"restock_alert","schema_version":1,"alert_id":"5c2d3e4f-5a6b-5c7d-8e9f-0a1b2c3d4e5f",
           "store_id":"store_010","product_id":"SKU42","status":"open","severity":"high","on_hand":3,
           "reorder_point":12,"velocity_per_hour":1.5,"days_of_cover":0.2,"stockout_risk":0.8,
           "suggested_order_qty":48,"reason":"on hand 3 is below the reorder point 12","timestamp":"2025-01-01T18:00:00Z"})
}

fn good() -> Vec<(&'static str, Value)> {
    vec![
        (topics::SALES, sale()),
        (topics::INVENTORY, inventory()),
        (topics::PRICE_CHANGES, price()),
        (topics::CUSTOMER_EVENTS, customer()),
        (topics::RESTOCK_ALERTS, alert()),
    ]
}

fn with(mut v: Value, field: &str, value: Value) -> Value {
    v[field] = value;
    v
}

fn without(mut v: Value, field: &str) -> Value {
    v.as_object_mut().unwrap().remove(field);
    v
}

fn reasons(topic: &str, v: &Value) -> Vec<String> {
    let bytes = serde_json::to_vec(v).unwrap();
    validate_message(topic, &bytes, now()).expect_err("should be rejected").reasons
}

fn assert_reason(reasons: &[String], needle: &str) {
    assert!(reasons.iter().any(|r| r.contains(needle)), "no reason containing {needle:?} in {reasons:#?}");
}

#[test]
fn the_seed_shaped_events_are_accepted() {
    for (topic, v) in good() {
        let bytes = serde_json::to_vec(&v).unwrap();
        let event = validate_message(topic, &bytes, now()).unwrap_or_else(|r| panic!("{topic}: {r}"));
        assert_eq!(event.topic(), topic);
        validate_with_avro(topic, &bytes, now()).unwrap_or_else(|r| panic!("{topic}: {r}"));
    }
}

#[test]
fn absent_optional_fields_are_null() {
    let v = without(without(sale(), "customer_id"), "promotion_id");
    let Event::Sale(s) = validate_message(topics::SALES, &serde_json::to_vec(&v).unwrap(), now()).unwrap() else { panic!("not a sale") };
    assert_eq!(s.customer_id, None);
}

#[test]
fn a_bad_sale_gets_every_reason_in_words() {
    let mut v = sale();
    v["quantity"] = json!(-3);
    v["unit_price"] = json!(0);
    v["payment_method"] = json!("bitcoin");
    v["store_id"] = json!("shop-1");
    v["timestamp"] = json!("2031-01-01T00:00:00Z");
    v["extra"] = json!(1);
    let v = without(v, "basket_id");
    let r = reasons(topics::SALES, &v);
    assert_reason(&r, "field `payment_method` must be one of credit_card, debit_card, cash, mobile, gift_card, found the string \"bitcoin\"");
    assert_reason(&r, "missing field `basket_id` (a string)");
    assert_reason(&r, "unknown field `extra`");
    // Semantic reasons are reported even though the structure is also wrong.
    assert_reason(&r, "quantity must be at least 1 for a sale, got -3");
    assert_reason(&r, "unit_price must be greater than 0");
    assert_reason(&r, "store_id `shop-1` is not a store id");
    assert_reason(&r, "days in the future");
    assert_eq!(r.len(), 7, "{r:#?}");
}

#[test]
fn wrong_types_are_named() {
    let r = reasons(topics::SALES, &with(sale(), "quantity", json!("2")));
    assert_eq!(r, vec!["field `quantity` must be a whole number from -2147483648 to 2147483647, found the string \"2\"".to_string()]);
    let r = reasons(topics::SALES, &with(sale(), "quantity", json!(2.5)));
    assert_reason(&r, "found the number 2.5");
    let r = reasons(topics::SALES, &with(sale(), "quantity", json!(3_000_000_000i64)));
    assert_reason(&r, "field `quantity` must be a whole number");
    let r = reasons(topics::SALES, &with(sale(), "customer_id", json!(7)));
    assert_reason(&r, "field `customer_id` must be null or a string, found the number 7");
}

#[test]
fn malformed_oversized_and_misrouted_messages() {
    let r = validate_message(topics::SALES, b"{\"event_type\": \"sale\",", now()).unwrap_err().reasons;
    assert_reason(&r, "malformed JSON");
    let r = validate_message(topics::SALES, b"[1,2]", now()).unwrap_err().reasons;
    assert_reason(&r, "must be a JSON object, found an array");
    let r = validate_message(topics::SALES, &vec![b' '; MAX_MESSAGE_BYTES + 1], now()).unwrap_err().reasons;
    assert_reason(&r, "more than the 16384-byte limit");
    let r = validate_message("retail-nope", b"{}", now()).unwrap_err().reasons;
    assert_reason(&r, "topic `retail-nope` carries no known event type");
    let bytes = serde_json::to_vec(&inventory()).unwrap();
    let r = validate_message(topics::SALES, &bytes, now()).unwrap_err().reasons;
    assert_reason(&r, "event_type is `inventory_update` but topic retail-sales-transactions carries `sale` events");
    let r = validate_message(topics::SALES, &[0xff, 0xfe, 0x00], now()).unwrap_err().reasons;
    assert_reason(&r, "malformed JSON");
}

#[test]
fn semantic_rules_of_each_event() {
    let r = reasons(topics::INVENTORY, &with(inventory(), "new_quantity", json!(47)));
    assert_reason(&r, "new_quantity 47 is not previous_quantity 50 plus quantity_change -2");
    let r = reasons(topics::INVENTORY, &with(with(inventory(), "quantity_change", json!(2)), "new_quantity", json!(52)));
    assert_reason(&r, "wrong sign for reason \"sale\"");
    let r = reasons(topics::INVENTORY, &with(inventory(), "previous_quantity", json!(-1)));
    assert_reason(&r, "previous_quantity must not be negative, got -1");
    let r = reasons(topics::INVENTORY, &with(inventory(), "reason", json!("lost")));
    assert_reason(&r, "one of sale, restock, return, damage, theft, count_correction, transfer");
    let r = reasons(topics::PRICE_CHANGES, &with(price(), "new_price", json!(5.99)));
    assert_reason(&r, "a promotion must lower the price");
    let r = reasons(topics::PRICE_CHANGES, &with(price(), "new_price", json!(-1.0)));
    assert_reason(&r, "new_price must be greater than 0, got -1");
    let r = reasons(topics::CUSTOMER_EVENTS, &with(customer(), "customer_id", json!("bob")));
    assert_reason(&r, "customer_id `bob` is not a customer id");
    let r = reasons(topics::RESTOCK_ALERTS, &with(alert(), "stockout_risk", json!(1.5)));
    assert_reason(&r, "stockout_risk must be a probability in [0, 1], got 1.5");
    let r = reasons(topics::SALES, &with(sale(), "unit_price", json!(19.99)));
    assert_reason(&r, "unit_price 19.99 does not match list_price 29.99 less discount_pct 0");
    let r = reasons(topics::SALES, &with(sale(), "transaction_id", json!("tx-1")));
    assert_reason(&r, "transaction_id `tx-1` is not a UUID");
    let r = reasons(topics::SALES, &with(sale(), "schema_version", json!(2)));
    assert_reason(&r, "schema_version 2 is not supported");
    let r = reasons(topics::SALES, &with(sale(), "timestamp", json!("yesterday")));
    assert_reason(&r, "timestamp `yesterday` is not an RFC 3339 instant");
}

/// Hand-made variants of every event: each changes one thing. The fast path and the apache-avro
/// path must agree on every one (accept or reject).
fn corpus() -> Vec<(&'static str, Value)> {
    let mutations: Vec<(&str, Value)> = vec![
        ("quantity", json!(0)),
        ("quantity", json!("1")),
        ("quantity", json!(1.0)),
        ("unit_price", json!(30)),
        ("unit_price", json!("30")),
        ("unit_price", json!(null)),
        ("schema_version", json!(-1)),
        ("schema_version", json!(1.5)),
        ("timestamp", json!("2025-01-01 10:30:00")),
        ("timestamp", json!("2025-01-01T11:30:00+01:00")),
        ("timestamp", json!(1735727400)),
        ("promotion_id", json!(null)),
        ("promotion_id", json!(["x"])),
        ("customer_id", json!(null)),
        ("payment_method", json!("CASH")),
        ("event_type", json!("sale")),
        ("event_type", json!("refund")),
        ("reason", json!("theft")),
        ("reason", json!("clearance")),
        ("loyalty_points", json!(null)),
        ("loyalty_points", json!(-5)),
        ("stockout_risk", json!(0)),
        ("on_hand", json!(-3)),
        ("status", json!("closed")),
        ("surprise", json!(true)),
    ];
    let mut out = good();
    for (topic, base) in good() {
        for (field, value) in &mutations {
            out.push((topic, with(base.clone(), field, value.clone())));
        }
        for field in base.as_object().unwrap().keys() {
            out.push((topic, without(base.clone(), field)));
        }
    }
    out
}

#[test]
fn fast_path_and_apache_avro_give_the_same_verdict() {
    let mut rejected = 0;
    for (topic, v) in corpus() {
        let bytes = serde_json::to_vec(&v).unwrap();
        let fast = validate_message(topic, &bytes, now());
        let avro = validate_with_avro(topic, &bytes, now());
        assert_eq!(fast.is_ok(), avro.is_ok(), "{topic} {v}\nfast: {fast:?}\navro: {avro:?}");
        if let (Err(f), Err(a)) = (&fast, &avro) {
            rejected += 1;
            assert!(!f.reasons.is_empty() && !a.reasons.is_empty());
            assert!(!f.reasons.iter().any(|r| r.starts_with("does not match the event contract")), "{f:?}");
        }
    }
    assert!(rejected > 50, "the corpus must exercise rejections, got {rejected}");
}

#[test]
fn avro_records_round_trip_through_the_binary_encoding() {
    for (topic, v) in good() {
        let record = validate_with_avro(topic, &serde_json::to_vec(&v).unwrap(), now()).unwrap();
        let schema = schemas::schema_for(EventType::from_topic(topic).unwrap());
        let mut writer = apache_avro::Writer::new(schema, Vec::new());
        writer.append(record.clone()).unwrap();
        let bytes = writer.into_inner().unwrap();
        let read: Vec<_> = apache_avro::Reader::new(&bytes[..]).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(read, vec![record]);
    }
}

#[test]
fn borrowed_strings_give_the_same_verdicts_and_values_as_owned_ones() {
    let mut borrowed_events = 0;
    let mut corpus = corpus();
    // Escapes in a string: the parser cannot borrow those, the value is the unescaped text.
    corpus.push((topics::SALES, with(sale(), "customer_id", json!("cust_\u{34}56"))));
    let escaped = serde_json::to_string(&sale()).unwrap().replace("cust_456", r"cust_\u00345\u0036");
    let mut messages: Vec<(&str, Vec<u8>)> = corpus.into_iter().map(|(t, v)| (t, serde_json::to_vec(&v).unwrap())).collect();
    messages.push((topics::SALES, escaped.clone().into_bytes()));
    for (topic, bytes) in &messages {
        let owned = validate_message(topic, bytes, now());
        let borrowed = validate_message_as::<Str>(topic, bytes, now());
        match (&owned, &borrowed) {
            (Ok(o), Ok(b)) => {
                assert_eq!(o, &b.to_owned_strings(), "{}", String::from_utf8_lossy(bytes));
                // Every id of a plainly written event points into the message itself.
                if let Event::Sale(s) = b {
                    let inside = |v: &Str| matches!(v.0, std::borrow::Cow::Borrowed(_)) && bytes.as_ptr_range().contains(&v.as_ptr());
                    if !bytes.windows(2).any(|w| w == b"\\u") {
                        assert!(inside(&s.transaction_id) && inside(&s.store_id) && inside(&s.product_id), "{s:?}");
                        borrowed_events += 1;
                    }
                }
            }
            (Err(o), Err(b)) => assert_eq!(o, b),
            _ => panic!("verdicts differ for {}: {owned:?} / {borrowed:?}", String::from_utf8_lossy(bytes)),
        }
    }
    assert!(borrowed_events >= 5, "{borrowed_events}");
    let Ok(Event::Sale(s)) = validate_message_as::<Str>(topics::SALES, escaped.as_bytes(), now()) else { panic!("escaped sale rejected") };
    assert_eq!(s.customer_id.as_deref(), Some("cust_456"));
    assert!(matches!(s.customer_id.unwrap().0, std::borrow::Cow::Owned(_)), "an escaped string is unescaped into its own");
}
