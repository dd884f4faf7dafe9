//! Validation of one bus record into a typed event, or every reason it is rejected.
//!
//! The single place the processor decides validity: it delegates to
//! `retail_core::validate_message`, whose fast path is one typed parse and whose slow path
//! (only for rejected records) lists every reason.

use chrono::{DateTime, Utc};
use retail_core::{Event, EventType};

/// The input topics the processor understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum TopicKind {
    Sales,
    Inventory,
    Price,
    Customer,
}

impl TopicKind {
    pub fn from_topic(topic: &str) -> Option<TopicKind> {
        match EventType::from_topic(topic)? {
            EventType::Sale => Some(TopicKind::Sales),
            EventType::InventoryUpdate => Some(TopicKind::Inventory),
            EventType::PriceChange => Some(TopicKind::Price),
            EventType::CustomerEvent => Some(TopicKind::Customer),
            EventType::RestockAlert => None,
        }
    }
    pub fn event_type(self) -> EventType {
        match self {
            TopicKind::Sales => EventType::Sale,
            TopicKind::Inventory => EventType::InventoryUpdate,
            TopicKind::Price => EventType::PriceChange,
            TopicKind::Customer => EventType::CustomerEvent,
        }
    }
    pub fn topic(self) -> &'static str {
        self.event_type().topic()
    }
    /// The lake folder under `raw-data/`.
    pub fn lake_kind(self) -> &'static str {
        match self {
            TopicKind::Sales => "sales",
            TopicKind::Inventory => "inventory",
            TopicKind::Price | TopicKind::Customer => "events",
        }
    }
}

/// Parses and checks one record with the contracts crate's validator (Avro schema + semantic
/// rules, every reason). `arrival_ms` — the bus append time — stands for "now", so a replay
/// judges a record exactly as the first run did.
pub fn validate(kind: TopicKind, bytes: &[u8], arrival_ms: i64) -> Result<Event, Vec<String>> {
    let now = DateTime::<Utc>::from_timestamp_millis(arrival_ms).unwrap_or_default();
    retail_core::validate_message(kind.topic(), bytes, now).map_err(|r| r.reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_735_725_600_000; // 2025-01-01T10:00:00Z

    #[test]
    fn arrival_time_is_now_for_the_future_rule() {
        let sale = r#"{"event_type":"sale","schema_version":1,"transaction_id":"5f1d7c0e-2b9a-4f3e-9d61-0a7ce2b48f13","basket_id":"5f1d7c0e-2b9a-4f3e-9d61-0a7ce2b48f14","store_id":"store_001","product_id":"SKU1","quantity":2,"unit_price":10.0,"list_price":10.0,"discount_pct":0.0,"promotion_id":null,"timestamp":"2025-01-01T10:00:00Z","customer_id":"cust_1","payment_method":"cash"}"#;
        assert!(validate(TopicKind::Sales, sale.as_bytes(), NOW).is_ok());
        // The same record arriving an hour before its own timestamp is from the future.
        let r = validate(TopicKind::Sales, sale.as_bytes(), NOW - 3_600_000).unwrap_err();
        assert!(r[0].contains("future"), "{r:?}");
        assert_eq!(TopicKind::from_topic(retail_core::topics::PRICE_CHANGES), Some(TopicKind::Price));
        assert_eq!(TopicKind::from_topic(retail_core::topics::RESTOCK_ALERTS), None);
    }
}
