//! The event contracts: one Rust type per event, with the seed's field names.
//!
//! Money is carried as `f64` in JSON (as the seed's examples are) and becomes
//! `Decimal(10,2)` in the warehouse. Timestamps are RFC 3339 UTC strings on the wire.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version of the event contracts written by this build. Bumped with the `.avsc` files.
pub const SCHEMA_VERSION: u32 = 1;

/// Kafka topic names, exactly as the seed names them, plus customer events and a dead-letter topic.
pub mod topics {
    pub const SALES: &str = "retail-sales-transactions";
    pub const INVENTORY: &str = "retail-inventory-updates";
    pub const RESTOCK_ALERTS: &str = "retail-restock-alerts";
    pub const PRICE_CHANGES: &str = "retail-price-changes";
    pub const CUSTOMER_EVENTS: &str = "retail-customer-events";
    pub const DEAD_LETTER: &str = "retail-dead-letter";

    /// (topic, partitions) as the seed specifies; the two the seed does not mention get 3 and 1.
    pub const ALL: [(&str, i32); 6] = [(SALES, 3), (INVENTORY, 3), (RESTOCK_ALERTS, 1), (PRICE_CHANGES, 2), (CUSTOMER_EVENTS, 3), (DEAD_LETTER, 1)];

    /// Seven days, as the seed asks.
    pub const RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
}

/// The discriminator every event carries in its `event_type` field.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Sale,
    InventoryUpdate,
    PriceChange,
    CustomerEvent,
    RestockAlert,
}

impl EventType {
    pub const ALL: [EventType; 5] = [EventType::Sale, EventType::InventoryUpdate, EventType::PriceChange, EventType::CustomerEvent, EventType::RestockAlert];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Sale => "sale",
            EventType::InventoryUpdate => "inventory_update",
            EventType::PriceChange => "price_change",
            EventType::CustomerEvent => "customer_event",
            EventType::RestockAlert => "restock_alert",
        }
    }

    /// The topic an event of this type is published on.
    pub fn topic(self) -> &'static str {
        match self {
            EventType::Sale => topics::SALES,
            EventType::InventoryUpdate => topics::INVENTORY,
            EventType::PriceChange => topics::PRICE_CHANGES,
            EventType::CustomerEvent => topics::CUSTOMER_EVENTS,
            EventType::RestockAlert => topics::RESTOCK_ALERTS,
        }
    }

    pub fn from_topic(topic: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.topic() == topic)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    CreditCard,
    DebitCard,
    Cash,
    Mobile,
    GiftCard,
}

impl PaymentMethod {
    /// The serde (wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::CreditCard => "credit_card",
            PaymentMethod::DebitCard => "debit_card",
            PaymentMethod::Cash => "cash",
            PaymentMethod::Mobile => "mobile",
            PaymentMethod::GiftCard => "gift_card",
        }
    }
}

/// A sale line at a POS. One event per product line; lines of one checkout share `basket_id`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SaleTransaction<S = String> {
    pub event_type: EventType,
    pub schema_version: u32,
    /// Globally unique, stable across replays (the event id).
    pub transaction_id: S,
    pub basket_id: S,
    pub store_id: S,
    pub product_id: S,
    pub quantity: i32,
    /// Price actually charged per unit, after any promotion.
    pub unit_price: f64,
    /// Shelf price before promotion; `unit_price < list_price` when discounted.
    pub list_price: f64,
    /// 0.0..1.0, the promotion's discount; 0 when none.
    pub discount_pct: f64,
    pub promotion_id: Option<S>,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub timestamp: DateTime<Utc>,
    /// Absent for anonymous (non-loyalty) shoppers.
    pub customer_id: Option<S>,
    pub payment_method: PaymentMethod,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum InventoryReason {
    Sale,
    Restock,
    Return,
    Damage,
    Theft,
    CountCorrection,
    Transfer,
}

impl InventoryReason {
    /// The serde (wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            InventoryReason::Sale => "sale",
            InventoryReason::Restock => "restock",
            InventoryReason::Return => "return",
            InventoryReason::Damage => "damage",
            InventoryReason::Theft => "theft",
            InventoryReason::CountCorrection => "count_correction",
            InventoryReason::Transfer => "transfer",
        }
    }
}

/// A change of on-hand stock for one store×SKU.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InventoryUpdate<S = String> {
    pub event_type: EventType,
    pub schema_version: u32,
    pub inventory_id: S,
    pub store_id: S,
    pub product_id: S,
    pub quantity_change: i32,
    pub previous_quantity: i32,
    pub new_quantity: i32,
    pub reason: InventoryReason,
    /// The sale's transaction_id, purchase order id, … that caused the change.
    pub reference_id: Option<S>,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub timestamp: DateTime<Utc>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PriceChangeReason {
    Promotion,
    PromotionEnd,
    CostChange,
    Clearance,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PriceChange<S = String> {
    pub event_type: EventType,
    pub schema_version: u32,
    pub price_change_id: S,
    pub store_id: S,
    pub product_id: S,
    pub old_price: f64,
    pub new_price: f64,
    pub reason: PriceChangeReason,
    pub promotion_id: Option<S>,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub timestamp: DateTime<Utc>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CustomerAction {
    LoyaltySignup,
    StoreVisit,
    LoyaltyRedeem,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustomerEvent<S = String> {
    pub event_type: EventType,
    pub schema_version: u32,
    pub customer_event_id: S,
    pub store_id: S,
    pub customer_id: S,
    pub action: CustomerAction,
    pub loyalty_points: Option<i32>,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub timestamp: DateTime<Utc>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Resolved,
}

/// Emitted by the stream processor when a store×SKU needs restocking, and again (status
/// `resolved`) when the condition clears.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestockAlert<S = String> {
    pub event_type: EventType,
    pub schema_version: u32,
    pub alert_id: S,
    pub store_id: S,
    pub product_id: S,
    pub status: AlertStatus,
    pub severity: Severity,
    pub on_hand: i32,
    pub reorder_point: i32,
    pub velocity_per_hour: f64,
    pub days_of_cover: f64,
    /// Probability in [0,1] of running out before the next delivery could arrive.
    pub stockout_risk: f64,
    pub suggested_order_qty: i32,
    pub reason: S,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub timestamp: DateTime<Utc>,
}

/// Any event of the contracts. `S` is the type of its string fields: owned `String`s, or
/// `Str`s borrowed from the message they were read from (the stream processor's hot path).
#[derive(Clone, Debug, PartialEq)]
pub enum Event<S = String> {
    Sale(SaleTransaction<S>),
    Inventory(InventoryUpdate<S>),
    Price(PriceChange<S>),
    Customer(CustomerEvent<S>),
    Alert(RestockAlert<S>),
}

/// A string field of an event read from a message: borrowed from the message's bytes where the
/// JSON spells it plainly (no escapes), owned otherwise. Reading an event this way copies and
/// allocates none of its ids (a sale has five).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Str<'a>(pub std::borrow::Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    // Inline across crates: the processor reads ids through this on every event.
    #[inline]
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Str<'_> {
    #[inline]
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Str<'_> {
    fn serialize<Ser: serde::Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(std::borrow::Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl<S: std::ops::Deref<Target = str>> Event<S> {
    /// The same event with its own `String`s (to keep it beyond the message it was read from).
    pub fn to_owned_strings(&self) -> Event {
        let own = |s: &S| s.to_string();
        let own_opt = |s: &Option<S>| s.as_deref().map(str::to_string);
        match self {
            Event::Sale(e) => Event::Sale(SaleTransaction {
                event_type: e.event_type,
                schema_version: e.schema_version,
                transaction_id: own(&e.transaction_id),
                basket_id: own(&e.basket_id),
                store_id: own(&e.store_id),
                product_id: own(&e.product_id),
                quantity: e.quantity,
                unit_price: e.unit_price,
                list_price: e.list_price,
                discount_pct: e.discount_pct,
                promotion_id: own_opt(&e.promotion_id),
                timestamp: e.timestamp,
                customer_id: own_opt(&e.customer_id),
                payment_method: e.payment_method,
            }),
            Event::Inventory(e) => Event::Inventory(InventoryUpdate {
                event_type: e.event_type,
                schema_version: e.schema_version,
                inventory_id: own(&e.inventory_id),
                store_id: own(&e.store_id),
                product_id: own(&e.product_id),
                quantity_change: e.quantity_change,
                previous_quantity: e.previous_quantity,
                new_quantity: e.new_quantity,
                reason: e.reason,
                reference_id: own_opt(&e.reference_id),
                timestamp: e.timestamp,
            }),
            Event::Price(e) => Event::Price(PriceChange {
                event_type: e.event_type,
                schema_version: e.schema_version,
                price_change_id: own(&e.price_change_id),
                store_id: own(&e.store_id),
                product_id: own(&e.product_id),
                old_price: e.old_price,
                new_price: e.new_price,
                reason: e.reason,
                promotion_id: own_opt(&e.promotion_id),
                timestamp: e.timestamp,
            }),
            Event::Customer(e) => Event::Customer(CustomerEvent {
                event_type: e.event_type,
                schema_version: e.schema_version,
                customer_event_id: own(&e.customer_event_id),
                store_id: own(&e.store_id),
                customer_id: own(&e.customer_id),
                action: e.action,
                loyalty_points: e.loyalty_points,
                timestamp: e.timestamp,
            }),
            Event::Alert(e) => Event::Alert(RestockAlert {
                event_type: e.event_type,
                schema_version: e.schema_version,
                alert_id: own(&e.alert_id),
                store_id: own(&e.store_id),
                product_id: own(&e.product_id),
                status: e.status,
                severity: e.severity,
                on_hand: e.on_hand,
                reorder_point: e.reorder_point,
                velocity_per_hour: e.velocity_per_hour,
                days_of_cover: e.days_of_cover,
                stockout_risk: e.stockout_risk,
                suggested_order_qty: e.suggested_order_qty,
                reason: own(&e.reason),
                timestamp: e.timestamp,
            }),
        }
    }

    pub fn event_type(&self) -> EventType {
        match self {
            Event::Sale(_) => EventType::Sale,
            Event::Inventory(_) => EventType::InventoryUpdate,
            Event::Price(_) => EventType::PriceChange,
            Event::Customer(_) => EventType::CustomerEvent,
            Event::Alert(_) => EventType::RestockAlert,
        }
    }

    pub fn topic(&self) -> &'static str {
        self.event_type().topic()
    }

    /// The globally unique id of the event (the type's own id field).
    pub fn event_id(&self) -> &str {
        match self {
            Event::Sale(e) => &e.transaction_id,
            Event::Inventory(e) => &e.inventory_id,
            Event::Price(e) => &e.price_change_id,
            Event::Customer(e) => &e.customer_event_id,
            Event::Alert(e) => &e.alert_id,
        }
    }

    /// The partitioning key: one store's events stay ordered and in one processor.
    pub fn store_id(&self) -> &str {
        match self {
            Event::Sale(e) => &e.store_id,
            Event::Inventory(e) => &e.store_id,
            Event::Price(e) => &e.store_id,
            Event::Customer(e) => &e.store_id,
            Event::Alert(e) => &e.store_id,
        }
    }

    pub fn timestamp(&self) -> DateTime<Utc> {
        match self {
            Event::Sale(e) => e.timestamp,
            Event::Inventory(e) => e.timestamp,
            Event::Price(e) => e.timestamp,
            Event::Customer(e) => e.timestamp,
            Event::Alert(e) => e.timestamp,
        }
    }

    pub fn to_json(&self) -> Vec<u8>
    where
        S: Serialize,
    {
        // Serializing these plain structs cannot fail (no maps with non-string keys).
        match self {
            Event::Sale(e) => serde_json::to_vec(e),
            Event::Inventory(e) => serde_json::to_vec(e),
            Event::Price(e) => serde_json::to_vec(e),
            Event::Customer(e) => serde_json::to_vec(e),
            Event::Alert(e) => serde_json::to_vec(e),
        }
        .expect("event serialization is infallible")
    }
}

/// A deterministic, globally unique event id: a UUID v5 over a namespace and the parts that
/// identify the event (e.g. seed, store, sequence number). Same inputs → same id, so a replay
/// re-emits the same ids and sinks can deduplicate.
pub fn stable_event_id(parts: &[&[u8]]) -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5f1d_7c0e_2b9a_4f3e_9d61_0a7c_e2b4_8f13);
    let mut buf = Vec::with_capacity(64);
    for p in parts {
        buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
        buf.extend_from_slice(p);
    }
    uuid::Uuid::new_v5(&NAMESPACE, &buf).to_string()
}
