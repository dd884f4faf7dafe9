//! The Avro schemas of the events, embedded from `schemas/*.avsc` at the repository root.
//!
//! They are parsed once (lazily) by `apache-avro`; a schema that fails to parse is a build
//! defect, caught by the tests, so `schema_for` panics only if that test would have failed.

use crate::events::{EventType, SCHEMA_VERSION};
use apache_avro::Schema;
use std::sync::OnceLock;

/// The `.avsc` text of each event type, version [`SCHEMA_VERSION`].
pub fn schema_text(event_type: EventType) -> &'static str {
    match event_type {
        EventType::Sale => include_str!("../../../schemas/sale_transaction.v1.avsc"),
        EventType::InventoryUpdate => include_str!("../../../schemas/inventory_update.v1.avsc"),
        EventType::PriceChange => include_str!("../../../schemas/price_change.v1.avsc"),
        EventType::CustomerEvent => include_str!("../../../schemas/customer_event.v1.avsc"),
        EventType::RestockAlert => include_str!("../../../schemas/restock_alert.v1.avsc"),
    }
}

/// The schema file name of each event type, as found in `schemas/`.
pub fn schema_file_name(event_type: EventType) -> String {
    let stem = match event_type {
        EventType::Sale => "sale_transaction",
        EventType::InventoryUpdate => "inventory_update",
        EventType::PriceChange => "price_change",
        EventType::CustomerEvent => "customer_event",
        EventType::RestockAlert => "restock_alert",
    };
    format!("{stem}.v{SCHEMA_VERSION}.avsc")
}

/// Parse the embedded schema of `event_type` (uncached).
pub fn parse_schema(event_type: EventType) -> Result<Schema, crate::CoreError> {
    Schema::parse_str(schema_text(event_type)).map_err(|e| crate::CoreError::Schema { file: schema_file_name(event_type), reason: e.to_string() })
}

/// The parsed schema of `event_type`, cached for the life of the process.
pub fn schema_for(event_type: EventType) -> &'static Schema {
    static CACHE: OnceLock<Vec<Schema>> = OnceLock::new();
    let all = CACHE.get_or_init(|| EventType::ALL.iter().map(|t| parse_schema(*t).unwrap_or_else(|e| panic!("embedded schema is invalid: {e}"))).collect());
    let index = EventType::ALL.iter().position(|t| *t == event_type).unwrap_or(0);
    &all[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_schema_parses_and_names_its_record() {
        for t in EventType::ALL {
            let schema = parse_schema(t).expect("schema parses");
            match schema {
                Schema::Record(r) => {
                    assert_eq!(r.name.namespace.as_deref(), Some("retail.events.v1"));
                    assert!(r.fields.iter().any(|f| f.name == "event_type"), "{t:?}");
                    assert!(r.fields.iter().any(|f| f.name == "timestamp"), "{t:?}");
                }
                other => panic!("{t:?}: expected a record, got {other:?}"),
            }
        }
    }
}
