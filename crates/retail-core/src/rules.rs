//! Semantic rules: what a structurally valid event must also satisfy (positive quantities and
//! prices, well-formed ids, known versions, sane timestamps, consistent arithmetic).
//!
//! Field rules are written once, as a table from field name to [`Rule`], and applied to two
//! views of an event: the typed struct (fast path, via `visit_fields`) and a JSON object (the
//! detailed path, for fields that are present and well typed). Cross-field rules need the
//! whole typed event.

use crate::events::*;
use chrono::{DateTime, Duration, Utc};

/// How far ahead of `now` an event time may be (clock skew between POS terminals and us).
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);
/// Event times before this are certainly wrong (a zeroed or mis-set clock).
pub const EARLIEST_EVENT_YEAR: i32 = 2000;
/// Largest plausible quantity on one sale line.
pub const MAX_SALE_QUANTITY: i64 = 1_000;
/// Largest plausible unit price.
pub const MAX_PRICE: f64 = 100_000.0;
/// Longest free-text or reference id accepted.
pub const MAX_TEXT_LEN: usize = 500;

/// One field's value as either view sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FieldValue<'a> {
    Int(i64),
    Double(f64),
    Str(&'a str),
    Time(DateTime<Utc>),
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Rule {
    EventType,
    SchemaVersion,
    Uuid,
    StoreId,
    ProductId,
    CustomerId,
    Reference,
    SaleQuantity,
    Price,
    Discount,
    NonZero,
    NonNegative,
    Probability,
    Timestamp,
    Text,
}

/// The rule of `field` in events of type `et`, if any.
///
/// A `const fn` so the typed path looks every rule up at compile time ([`check_fields`]);
/// `match` on strings is not allowed in one, hence the `is!` chains.
pub(crate) const fn rule_for(et: EventType, field: &str) -> Option<Rule> {
    use crate::EventType as T;
    use Rule::*;
    let f = field.as_bytes();
    macro_rules! is {
        ($($name:literal)|+) => { $(bytes_eq(f, $name.as_bytes()))||+ };
    }
    // Fields every event type shares.
    if is!("event_type") {
        return Some(EventType);
    } else if is!("schema_version") {
        return Some(SchemaVersion);
    } else if is!("store_id") {
        return Some(StoreId);
    } else if is!("product_id") {
        return Some(ProductId);
    } else if is!("timestamp") {
        return Some(Timestamp);
    } else if is!("promotion_id" | "reference_id") {
        return Some(Reference);
    } else if is!("customer_id") {
        return Some(CustomerId);
    }
    match et {
        T::Sale if is!("transaction_id" | "basket_id") => Some(Uuid),
        T::Sale if is!("quantity") => Some(SaleQuantity),
        T::Sale if is!("unit_price" | "list_price") => Some(Price),
        T::Sale if is!("discount_pct") => Some(Discount),
        T::InventoryUpdate if is!("inventory_id") => Some(Uuid),
        T::InventoryUpdate if is!("quantity_change") => Some(NonZero),
        T::InventoryUpdate if is!("previous_quantity" | "new_quantity") => Some(NonNegative),
        T::PriceChange if is!("price_change_id") => Some(Uuid),
        T::PriceChange if is!("old_price" | "new_price") => Some(Price),
        T::CustomerEvent if is!("customer_event_id") => Some(Uuid),
        T::CustomerEvent if is!("loyalty_points") => Some(NonNegative),
        T::RestockAlert if is!("alert_id") => Some(Uuid),
        T::RestockAlert if is!("reorder_point" | "suggested_order_qty" | "velocity_per_hour" | "days_of_cover") => Some(NonNegative),
        T::RestockAlert if is!("stockout_risk") => Some(Probability),
        T::RestockAlert if is!("reason") => Some(Text),
        _ => None,
    }
}

const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Apply `rule` to `field`'s value; push a reason when it fails.
///
/// Inlined so that, with a constant rule and value kind (the typed path), only that rule's
/// check remains at each call site.
#[inline(always)]
pub(crate) fn check_field(expected: EventType, field: &str, rule: Rule, value: FieldValue<'_>, now: DateTime<Utc>, reasons: &mut Vec<String>) {
    use FieldValue as V;
    match (rule, value) {
        // Optional fields that are absent have nothing to check.
        (_, V::Null) => {}
        (Rule::EventType, V::Str(s)) if s != expected.as_str() => {
            reasons.push(format!("event_type is `{s}` but topic {} carries `{}` events", expected.topic(), expected.as_str()));
        }
        (Rule::SchemaVersion, V::Int(v)) if v != SCHEMA_VERSION as i64 => {
            reasons.push(format!("schema_version {v} is not supported (this build reads version {SCHEMA_VERSION})"));
        }
        (Rule::Uuid, V::Str(s)) if !is_uuid(s) => {
            reasons.push(format!("{field} `{}` is not a UUID (expected 8-4-4-4-12 hex digits)", shorten(s)));
        }
        (Rule::StoreId, V::Str(s)) if !has_prefix_then_digits(s, "store_", 3, 6) => {
            reasons.push(format!("{field} `{}` is not a store id (expected store_ and 3 to 6 digits, e.g. store_001)", shorten(s)));
        }
        (Rule::ProductId, V::Str(s)) if !has_prefix_then_digits(s, "SKU", 1, 12) => {
            reasons.push(format!("{field} `{}` is not a SKU (expected SKU and 1 to 12 digits, e.g. SKU000123)", shorten(s)));
        }
        (Rule::CustomerId, V::Str(s)) if !has_prefix_then_digits(s, "cust_", 1, 12) => {
            reasons.push(format!("{field} `{}` is not a customer id (expected cust_ and 1 to 12 digits)", shorten(s)));
        }
        (Rule::Reference, V::Str(s)) if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) => {
            reasons.push(format!("{field} `{}` must be 1 to 64 printable characters without spaces", shorten(s)));
        }
        (Rule::Text, V::Str(s)) if s.trim().is_empty() || s.len() > MAX_TEXT_LEN => {
            reasons.push(format!("{field} must be non-empty text of at most {MAX_TEXT_LEN} bytes"));
        }
        (Rule::SaleQuantity, V::Int(q)) => {
            if q <= 0 {
                reasons.push(format!("{field} must be at least 1 for a sale, got {q}"));
            } else if q > MAX_SALE_QUANTITY {
                reasons.push(format!("{field} {q} is implausibly large for one sale line (at most {MAX_SALE_QUANTITY})"));
            }
        }
        (Rule::Price, V::Double(p)) => {
            if p.is_nan() || p <= 0.0 {
                reasons.push(format!("{field} must be greater than 0, got {p}"));
            } else if p > MAX_PRICE {
                reasons.push(format!("{field} {p} is implausibly large (at most {MAX_PRICE})"));
            }
        }
        (Rule::Discount, V::Double(d)) if !(0.0..1.0).contains(&d) => {
            reasons.push(format!("{field} must be in [0, 1) (a fraction, 0.25 = 25% off), got {d}"));
        }
        (Rule::NonZero, V::Int(0)) => {
            reasons.push(format!("{field} must not be 0 (an update that changes nothing)"));
        }
        (Rule::NonNegative, V::Int(v)) if v < 0 => {
            reasons.push(format!("{field} must not be negative, got {v}"));
        }
        (Rule::NonNegative, V::Double(v)) if v.is_nan() || v < 0.0 => {
            reasons.push(format!("{field} must not be negative, got {v}"));
        }
        (Rule::Probability, V::Double(p)) if !(0.0..=1.0).contains(&p) => {
            reasons.push(format!("{field} must be a probability in [0, 1], got {p}"));
        }
        (Rule::Timestamp, V::Time(t)) => check_time(field, t, now, reasons),
        (Rule::Timestamp, V::Str(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => check_time(field, t.with_timezone(&Utc), now, reasons),
            Err(e) => reasons.push(format!("{field} `{}` is not an RFC 3339 instant such as 2025-01-01T10:30:00Z ({e})", shorten(s))),
        },
        // A value of the wrong kind was already reported by the structural check.
        _ => {}
    }
}

fn check_time(field: &str, t: DateTime<Utc>, now: DateTime<Utc>, reasons: &mut Vec<String>) {
    use chrono::Datelike;
    if t > now + MAX_FUTURE_SKEW {
        let ahead = t - now;
        let how_far = if ahead > Duration::days(2) {
            format!("{} days", ahead.num_days())
        } else if ahead > Duration::hours(2) {
            format!("{} hours", ahead.num_hours())
        } else {
            format!("{} minutes", ahead.num_minutes())
        };
        reasons.push(format!(
            "{field} {} is {how_far} in the future (at most {} minutes ahead of now is accepted)",
            t.to_rfc3339(),
            MAX_FUTURE_SKEW.num_minutes()
        ));
    } else if t.year() < EARLIEST_EVENT_YEAR {
        reasons.push(format!("{field} {} is before {EARLIEST_EVENT_YEAR}: a mis-set clock", t.to_rfc3339()));
    }
}

/// Rules that relate several fields of one typed event.
pub(crate) fn check_cross_fields<S: std::ops::Deref<Target = str>>(event: &Event<S>, reasons: &mut Vec<String>) {
    match event {
        Event::Sale(s) => {
            let expected = s.list_price * (1.0 - s.discount_pct);
            // Rounding to cents on the POS: allow a cent, or half a percent of the price.
            let tolerance = (0.011f64).max(0.005 * s.list_price);
            if s.unit_price.is_finite() && expected.is_finite() && (s.unit_price - expected).abs() > tolerance {
                reasons.push(format!(
                    "unit_price {} does not match list_price {} less discount_pct {} (expected about {:.2})",
                    s.unit_price, s.list_price, s.discount_pct, expected
                ));
            }
            if s.discount_pct > 0.0 && s.promotion_id.is_none() {
                reasons.push("a discounted sale (discount_pct > 0) must name its promotion_id".into());
            }
        }
        Event::Inventory(u) => {
            if u.previous_quantity as i64 + u.quantity_change as i64 != u.new_quantity as i64 {
                reasons.push(format!(
                    "new_quantity {} is not previous_quantity {} plus quantity_change {}",
                    u.new_quantity, u.previous_quantity, u.quantity_change
                ));
            }
            let sign_ok = match u.reason {
                InventoryReason::Sale | InventoryReason::Damage | InventoryReason::Theft => u.quantity_change < 0,
                InventoryReason::Restock | InventoryReason::Return => u.quantity_change > 0,
                InventoryReason::CountCorrection | InventoryReason::Transfer => true,
            };
            if !sign_ok {
                let reason = serde_json::to_string(&u.reason).unwrap_or_default();
                reasons.push(format!(
                    "quantity_change {} has the wrong sign for reason {reason} (sale, damage and theft remove stock; restock and return add it)",
                    u.quantity_change
                ));
            }
        }
        Event::Price(p) => {
            let lowers = matches!(p.reason, PriceChangeReason::Promotion | PriceChangeReason::Clearance);
            if lowers && p.new_price >= p.old_price {
                reasons.push(format!(
                    "a {} must lower the price, but new_price {} is not below old_price {}",
                    if p.reason == PriceChangeReason::Promotion { "promotion" } else { "clearance" },
                    p.new_price,
                    p.old_price
                ));
            }
            if matches!(p.reason, PriceChangeReason::Promotion | PriceChangeReason::PromotionEnd) && p.promotion_id.is_none() {
                reasons.push("a promotion price change must name its promotion_id".into());
            }
        }
        Event::Customer(_) | Event::Alert(_) => {}
    }
}

/// The field rules on every field of a typed event, in schema order: each field's rule is
/// found at compile time, so the success path does no lookups, allocation or formatting.
pub(crate) fn check_fields<S: std::ops::Deref<Target = str>>(event: &Event<S>, now: DateTime<Utc>, reasons: &mut Vec<String>) {
    use crate::EventType as T;
    use FieldValue as V;
    macro_rules! field {
        ($et:expr, $name:literal, $value:expr) => {
            if let Some(rule) = const { rule_for($et, $name) } {
                check_field($et, $name, rule, $value, now, reasons);
            }
        };
    }
    match event {
        Event::Sale(e) => {
            field!(T::Sale, "event_type", V::Str(e.event_type.as_str()));
            field!(T::Sale, "schema_version", V::Int(e.schema_version as i64));
            field!(T::Sale, "transaction_id", V::Str(&e.transaction_id));
            field!(T::Sale, "basket_id", V::Str(&e.basket_id));
            field!(T::Sale, "store_id", V::Str(&e.store_id));
            field!(T::Sale, "product_id", V::Str(&e.product_id));
            field!(T::Sale, "quantity", V::Int(e.quantity as i64));
            field!(T::Sale, "unit_price", V::Double(e.unit_price));
            field!(T::Sale, "list_price", V::Double(e.list_price));
            field!(T::Sale, "discount_pct", V::Double(e.discount_pct));
            field!(T::Sale, "promotion_id", opt(&e.promotion_id));
            field!(T::Sale, "timestamp", V::Time(e.timestamp));
            field!(T::Sale, "customer_id", opt(&e.customer_id));
        }
        Event::Inventory(e) => {
            field!(T::InventoryUpdate, "event_type", V::Str(e.event_type.as_str()));
            field!(T::InventoryUpdate, "schema_version", V::Int(e.schema_version as i64));
            field!(T::InventoryUpdate, "inventory_id", V::Str(&e.inventory_id));
            field!(T::InventoryUpdate, "store_id", V::Str(&e.store_id));
            field!(T::InventoryUpdate, "product_id", V::Str(&e.product_id));
            field!(T::InventoryUpdate, "quantity_change", V::Int(e.quantity_change as i64));
            field!(T::InventoryUpdate, "previous_quantity", V::Int(e.previous_quantity as i64));
            field!(T::InventoryUpdate, "new_quantity", V::Int(e.new_quantity as i64));
            field!(T::InventoryUpdate, "reference_id", opt(&e.reference_id));
            field!(T::InventoryUpdate, "timestamp", V::Time(e.timestamp));
        }
        Event::Price(e) => {
            field!(T::PriceChange, "event_type", V::Str(e.event_type.as_str()));
            field!(T::PriceChange, "schema_version", V::Int(e.schema_version as i64));
            field!(T::PriceChange, "price_change_id", V::Str(&e.price_change_id));
            field!(T::PriceChange, "store_id", V::Str(&e.store_id));
            field!(T::PriceChange, "product_id", V::Str(&e.product_id));
            field!(T::PriceChange, "old_price", V::Double(e.old_price));
            field!(T::PriceChange, "new_price", V::Double(e.new_price));
            field!(T::PriceChange, "promotion_id", opt(&e.promotion_id));
            field!(T::PriceChange, "timestamp", V::Time(e.timestamp));
        }
        Event::Customer(e) => {
            field!(T::CustomerEvent, "event_type", V::Str(e.event_type.as_str()));
            field!(T::CustomerEvent, "schema_version", V::Int(e.schema_version as i64));
            field!(T::CustomerEvent, "customer_event_id", V::Str(&e.customer_event_id));
            field!(T::CustomerEvent, "store_id", V::Str(&e.store_id));
            field!(T::CustomerEvent, "customer_id", V::Str(&e.customer_id));
            field!(T::CustomerEvent, "loyalty_points", e.loyalty_points.map_or(V::Null, |p| V::Int(p as i64)));
            field!(T::CustomerEvent, "timestamp", V::Time(e.timestamp));
        }
        Event::Alert(e) => {
            field!(T::RestockAlert, "event_type", V::Str(e.event_type.as_str()));
            field!(T::RestockAlert, "schema_version", V::Int(e.schema_version as i64));
            field!(T::RestockAlert, "alert_id", V::Str(&e.alert_id));
            field!(T::RestockAlert, "store_id", V::Str(&e.store_id));
            field!(T::RestockAlert, "product_id", V::Str(&e.product_id));
            field!(T::RestockAlert, "reorder_point", V::Int(e.reorder_point as i64));
            field!(T::RestockAlert, "velocity_per_hour", V::Double(e.velocity_per_hour));
            field!(T::RestockAlert, "days_of_cover", V::Double(e.days_of_cover));
            field!(T::RestockAlert, "stockout_risk", V::Double(e.stockout_risk));
            field!(T::RestockAlert, "suggested_order_qty", V::Int(e.suggested_order_qty as i64));
            field!(T::RestockAlert, "reason", V::Str(&e.reason));
            field!(T::RestockAlert, "timestamp", V::Time(e.timestamp));
        }
    }
}

fn opt<S: std::ops::Deref<Target = str>>(s: &Option<S>) -> FieldValue<'_> {
    s.as_deref().map_or(FieldValue::Null, FieldValue::Str)
}

/// 8-4-4-4-12 hexadecimal digits.
pub(crate) fn is_uuid(s: &str) -> bool {
    // Branch-free over a fixed 36 bytes: each byte's class must be the one its position wants.
    const HEX: u8 = 1;
    const DASH: u8 = 2;
    const CLASS: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut c = 0;
        while c < 256 {
            t[c] = match c as u8 {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => HEX,
                b'-' => DASH,
                _ => 0,
            };
            c += 1;
        }
        t
    };
    const SHAPE: [u8; 36] = {
        let mut t = [HEX; 36];
        t[8] = DASH;
        t[13] = DASH;
        t[18] = DASH;
        t[23] = DASH;
        t
    };
    let Ok(b) = <&[u8; 36]>::try_from(s.as_bytes()) else { return false };
    b.iter().zip(&SHAPE).fold(true, |ok, (&c, &want)| ok & (CLASS[c as usize] == want))
}

fn has_prefix_then_digits(s: &str, prefix: &str, min_digits: usize, max_digits: usize) -> bool {
    match s.strip_prefix(prefix) {
        Some(rest) => (min_digits..=max_digits).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// A value quoted in a reason, cut so a huge payload does not produce a huge reason.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_shapes() {
        assert!(is_uuid("5f1d7c0e-2b9a-4f3e-9d61-0a7ce2b48f13"));
        assert!(!is_uuid("5f1d7c0e2b9a4f3e9d610a7ce2b48f13"));
        assert!(!is_uuid("5f1d7c0e-2b9a-4f3e-9d61-0a7ce2b48f1g"));
        assert!(has_prefix_then_digits("store_001", "store_", 3, 6));
        assert!(has_prefix_then_digits("store_1000", "store_", 3, 6));
        assert!(!has_prefix_then_digits("store_01", "store_", 3, 6));
        assert!(!has_prefix_then_digits("shop_001", "store_", 3, 6));
        assert!(has_prefix_then_digits("SKU123", "SKU", 1, 12));
        assert!(!has_prefix_then_digits("SKU12a", "SKU", 1, 12));
    }

    /// The table as a plain `match` (its form before it became a `const fn`).
    fn rule_for_reference(et: EventType, field: &str) -> Option<Rule> {
        use Rule::*;
        let common = match field {
            "event_type" => Some(EventType),
            "schema_version" => Some(SchemaVersion),
            "store_id" => Some(StoreId),
            "product_id" => Some(ProductId),
            "timestamp" => Some(Timestamp),
            "promotion_id" | "reference_id" => Some(Reference),
            "customer_id" => Some(CustomerId),
            _ => None,
        };
        if common.is_some() {
            return common;
        }
        use crate::EventType as T;
        match (et, field) {
            (T::Sale, "transaction_id" | "basket_id") => Some(Uuid),
            (T::Sale, "quantity") => Some(SaleQuantity),
            (T::Sale, "unit_price" | "list_price") => Some(Price),
            (T::Sale, "discount_pct") => Some(Discount),
            (T::InventoryUpdate, "inventory_id") => Some(Uuid),
            (T::InventoryUpdate, "quantity_change") => Some(NonZero),
            (T::InventoryUpdate, "previous_quantity" | "new_quantity") => Some(NonNegative),
            (T::PriceChange, "price_change_id") => Some(Uuid),
            (T::PriceChange, "old_price" | "new_price") => Some(Price),
            (T::CustomerEvent, "customer_event_id") => Some(Uuid),
            (T::CustomerEvent, "loyalty_points") => Some(NonNegative),
            (T::RestockAlert, "alert_id") => Some(Uuid),
            (T::RestockAlert, "reorder_point" | "suggested_order_qty" | "velocity_per_hour" | "days_of_cover") => Some(NonNegative),
            (T::RestockAlert, "stockout_risk") => Some(Probability),
            (T::RestockAlert, "reason") => Some(Text),
            _ => None,
        }
    }

    #[test]
    fn the_const_rule_table_is_the_table() {
        let mut names: Vec<String> = crate::EventType::ALL
            .iter()
            .flat_map(|&et| match crate::schemas::schema_for(et) {
                apache_avro::schema::Schema::Record(r) => r.fields.iter().map(|f| f.name.clone()).collect(),
                _ => Vec::new(),
            })
            .collect();
        names.extend(["", "event_typ", "event_type_", "EVENT_TYPE", "status", "on_hand"].map(String::from));
        for et in crate::EventType::ALL {
            for name in &names {
                assert_eq!(rule_for(et, name), rule_for_reference(et, name), "{et:?} {name}");
            }
        }
    }

    #[test]
    fn uuid_shape_positions() {
        let good = "5f1d7c0e-2b9a-4f3e-9d61-0a7ce2b48f13";
        for i in 0..good.len() {
            for c in ['-', '0', 'a', 'F', 'g', 'G', ' ', '/', ':', '@', '`'] {
                let mut s = good.to_string();
                s.replace_range(i..i + 1, &c.to_string());
                let reference = s.bytes().enumerate().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => c == b'-',
                    _ => c.is_ascii_hexdigit(),
                });
                assert_eq!(is_uuid(&s), reference, "{s}");
            }
        }
        assert!(!is_uuid(&format!("{good}0")));
        assert!(!is_uuid(&good[1..]));
        assert!(!is_uuid("5f1d7c0e-2b9a-4f3e-9d61-0a7ce2b48f1é"));
    }

    #[test]
    fn future_and_ancient_timestamps_are_reasons() {
        let now = DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z").unwrap().with_timezone(&Utc);
        let mut reasons = Vec::new();
        check_time("timestamp", now + Duration::minutes(4), now, &mut reasons);
        assert!(reasons.is_empty());
        check_time("timestamp", now + Duration::days(400), now, &mut reasons);
        assert!(reasons[0].contains("400 days in the future"), "{reasons:?}");
        check_time("timestamp", now - Duration::days(365 * 30), now, &mut reasons);
        assert!(reasons[1].contains("before 2000"), "{reasons:?}");
    }
}
