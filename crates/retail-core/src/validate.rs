//! Validation of incoming JSON events: the Avro schema of the topic plus the semantic rules.
//!
//! Two paths give one verdict:
//! - **fast path** (every message): straight into the typed event, whose shape is
//!   structurally the `.avsc` (same fields, types, enum symbols, `deny_unknown_fields`, optional
//!   = `["null", T]` with default null), then the semantic rules on the typed value. The parse
//!   is, for sales and inventory updates in their canonical form, a straight-line reader
//!   (`canonical.rs`); else the plain-shape parser (`fastjson.rs`) where it applies; else
//!   `serde_json`. The last two drive the same derived `Deserialize` impls; all three give the
//!   same value wherever they accept.
//! - **Avro path** (only when the fast path fails, and in tests): the JSON is converted field by
//!   field into an `apache_avro::types::Value` guided by the parsed `.avsc`, which `apache-avro`
//!   then validates; every mismatch on the way becomes a reason, and the semantic rules run on
//!   the fields that are well typed. This produces the detailed reasons.
//!
//! A test feeds generated and hand-made events through both and asserts the same verdict.

use crate::canonical;
use crate::events::*;
use crate::fastjson;
use crate::rules::{self, FieldValue};
use crate::schemas::schema_for;
use apache_avro::schema::Schema;
use apache_avro::types::Value as AvroValue;
use chrono::{DateTime, Utc};
use serde_json::Value as Json;

/// Larger messages are rejected before parsing (a POS event is a few hundred bytes).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Why a message was rejected: every reason found, each a sentence a person can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reasons: Vec<String>,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.reasons.join("; "))
    }
}

impl std::error::Error for Rejection {}

/// Validate one message read from `topic`: size, JSON, the topic's Avro schema, and the
/// semantic rules (`now` bounds how far in the future a timestamp may be).
/// On success, the typed event; on failure, every reason.
pub fn validate_message(topic: &str, bytes: &[u8], now: DateTime<Utc>) -> Result<Event, Rejection> {
    validate_message_as(topic, bytes, now)
}

/// [`validate_message`] into an event whose strings are of type `S`: `Str` borrows them from
/// `bytes` (no copies, no allocations), `String` owns them.
pub fn validate_message_as<'a, S>(topic: &str, bytes: &'a [u8], now: DateTime<Utc>) -> Result<Event<S>, Rejection>
where
    S: serde::Deserialize<'a> + std::ops::Deref<Target = str>,
{
    let event_type = precheck(topic, bytes)?;
    match parse_typed(event_type, bytes) {
        Ok(event) => {
            let reasons = semantic_reasons(&event, event_type, now);
            if reasons.is_empty() {
                Ok(event)
            } else {
                Err(Rejection { reasons })
            }
        }
        Err(serde_error) => {
            let mut reasons = match avro_path(event_type, bytes, now) {
                Ok(_) => Vec::new(),
                Err(r) => r.reasons,
            };
            // Only if the two paths disagree (a defect the equivalence test guards against)
            // does the serde message stand alone; a message is never accepted by default.
            if reasons.is_empty() {
                reasons.push(format!("does not match the event contract: {serde_error}"));
            }
            Err(Rejection { reasons })
        }
    }
}

/// Semantic rules on an already typed event (e.g. one the simulator or the processor built).
pub fn validate_event(event: &Event, now: DateTime<Utc>) -> Result<(), Rejection> {
    let reasons = semantic_reasons(event, event.event_type(), now);
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Rejection { reasons })
    }
}

/// The reference verdict, through `apache-avro` alone for structure: on success the Avro record
/// (ready for an Avro writer). Slower than [`validate_message`]; it gives the same verdict.
pub fn validate_with_avro(topic: &str, bytes: &[u8], now: DateTime<Utc>) -> Result<AvroValue, Rejection> {
    let event_type = precheck(topic, bytes)?;
    let record = avro_path(event_type, bytes, now)?;
    // Cross-field rules need the typed event; the structure is already proven, so this parse
    // can only fail if the schema and the Rust type diverge, which is then the reason.
    let mut reasons = Vec::new();
    match parse_typed::<String>(event_type, bytes) {
        Ok(event) => rules::check_cross_fields(&event, &mut reasons),
        Err(e) => reasons.push(format!("accepted by the Avro schema but not by the Rust type: {e}")),
    }
    if reasons.is_empty() {
        Ok(record)
    } else {
        Err(Rejection { reasons })
    }
}

fn precheck(topic: &str, bytes: &[u8]) -> Result<EventType, Rejection> {
    let mut reasons = Vec::new();
    let event_type = EventType::from_topic(topic);
    if event_type.is_none() {
        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.topic()).collect();
        reasons.push(format!("topic `{}` carries no known event type (known: {})", rules::shorten(topic), known.join(", ")));
    }
    if bytes.len() > MAX_MESSAGE_BYTES {
        reasons.push(format!("message is {} bytes, more than the {MAX_MESSAGE_BYTES}-byte limit", bytes.len()));
    }
    match event_type {
        Some(t) if reasons.is_empty() => Ok(t),
        _ => Err(Rejection { reasons }),
    }
}

fn parse_typed<'a, S: serde::Deserialize<'a>>(event_type: EventType, bytes: &'a [u8]) -> Result<Event<S>, serde_json::Error> {
    // One UTF-8 check of the whole message is much cheaper than `from_slice`'s check of every
    // string and key; invalid UTF-8 still goes through `from_slice` for its exact error.
    // Then the plain-shape parser, which yields serde_json's value or declines; serde_json
    // decides (and words) everything it declines.
    match std::str::from_utf8(bytes) {
        Ok(text) => match parse_plain(event_type, text) {
            Some(event) => Ok(event),
            None => parse_typed_from(event_type, serde_json::de::StrRead::new(text)),
        },
        Err(_) => parse_typed_from(event_type, serde_json::de::SliceRead::new(bytes)),
    }
}

fn parse_plain<'a, S: serde::Deserialize<'a>>(event_type: EventType, text: &'a str) -> Option<Event<S>> {
    Some(match event_type {
        // The hot two first try the straight-line reading of their canonical form.
        EventType::Sale => Event::Sale(canonical::sale(text).or_else(|| fastjson::from_str(text))?),
        EventType::InventoryUpdate => Event::Inventory(canonical::inventory(text).or_else(|| fastjson::from_str(text))?),
        EventType::PriceChange => Event::Price(fastjson::from_str(text)?),
        EventType::CustomerEvent => Event::Customer(fastjson::from_str(text)?),
        EventType::RestockAlert => Event::Alert(fastjson::from_str(text)?),
    })
}

fn parse_typed_from<'a, S: serde::Deserialize<'a>>(event_type: EventType, read: impl serde_json::de::Read<'a>) -> Result<Event<S>, serde_json::Error> {
    fn parse<'a, T: serde::Deserialize<'a>>(read: impl serde_json::de::Read<'a>) -> Result<T, serde_json::Error> {
        let mut de = serde_json::Deserializer::new(read);
        let value = T::deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }
    Ok(match event_type {
        EventType::Sale => Event::Sale(parse(read)?),
        EventType::InventoryUpdate => Event::Inventory(parse(read)?),
        EventType::PriceChange => Event::Price(parse(read)?),
        EventType::CustomerEvent => Event::Customer(parse(read)?),
        EventType::RestockAlert => Event::Alert(parse(read)?),
    })
}

fn semantic_reasons<S: std::ops::Deref<Target = str>>(event: &Event<S>, expected: EventType, now: DateTime<Utc>) -> Vec<String> {
    // The rules of a typed event are those of its own type, which both callers ensure is the
    // topic's.
    debug_assert_eq!(event.event_type(), expected);
    let mut reasons = Vec::new();
    rules::check_fields(event, now, &mut reasons);
    if reasons.is_empty() {
        rules::check_cross_fields(event, &mut reasons);
    }
    reasons
}

/// JSON → Avro record guided by the schema, then `apache-avro`'s own validation, then the field
/// rules on every well-typed field.
fn avro_path(event_type: EventType, bytes: &[u8], now: DateTime<Utc>) -> Result<AvroValue, Rejection> {
    let json: Json = serde_json::from_slice(bytes).map_err(|e| Rejection {
        reasons: vec![if e.is_eof() { format!("malformed JSON: the message ends too early ({e})") } else { format!("malformed JSON: {e}") }],
    })?;
    let schema = schema_for(event_type);
    let mut reasons = Vec::new();
    let Json::Object(object) = &json else {
        return Err(Rejection { reasons: vec![format!("the message must be a JSON object, found {}", describe(&json))] });
    };
    let Schema::Record(record) = schema else {
        return Err(Rejection { reasons: vec!["internal: schema is not a record".into()] });
    };
    let mut fields = Vec::with_capacity(record.fields.len());
    for field in &record.fields {
        match object.get(&field.name) {
            Some(value) => match to_avro(&field.schema, value) {
                Ok(v) => {
                    if let Some(rule) = rules::rule_for(event_type, &field.name) {
                        if let Some(view) = avro_view(&v) {
                            rules::check_field(event_type, &field.name, rule, view, now, &mut reasons);
                        }
                    }
                    fields.push((field.name.clone(), v));
                }
                Err(expected) => reasons.push(format!("field `{}` must be {expected}, found {}", field.name, describe(value))),
            },
            None => match field.default.as_ref().map(|d| to_avro(&field.schema, d)) {
                Some(Ok(v)) => fields.push((field.name.clone(), v)),
                _ => reasons.push(format!("missing field `{}` ({})", field.name, expected_words(&field.schema))),
            },
        }
    }
    for key in object.keys() {
        if !record.lookup.contains_key(key) {
            reasons.push(format!("unknown field `{}` (not in schema {} v{SCHEMA_VERSION})", rules::shorten(key), record.name.name));
        }
    }
    if !reasons.is_empty() {
        return Err(Rejection { reasons });
    }
    let value = AvroValue::Record(fields);
    if !value.validate(schema) {
        return Err(Rejection { reasons: vec![format!("apache-avro rejects the record against schema {}", record.name.name)] });
    }
    Ok(value)
}

/// Convert one JSON value to the Avro value `schema` wants; on mismatch, what was expected.
fn to_avro(schema: &Schema, json: &Json) -> Result<AvroValue, String> {
    match (schema, json) {
        (Schema::Null, Json::Null) => Ok(AvroValue::Null),
        (Schema::Boolean, Json::Bool(b)) => Ok(AvroValue::Boolean(*b)),
        (Schema::Int, Json::Number(n)) => match n.as_i64().and_then(|v| i32::try_from(v).ok()) {
            Some(v) => Ok(AvroValue::Int(v)),
            None => Err(expected_words(schema)),
        },
        (Schema::Long, Json::Number(n)) => n.as_i64().map(AvroValue::Long).ok_or_else(|| expected_words(schema)),
        (Schema::Double, Json::Number(n)) => n.as_f64().map(AvroValue::Double).ok_or_else(|| expected_words(schema)),
        (Schema::String, Json::String(s)) => Ok(AvroValue::String(s.clone())),
        (Schema::Enum(e), Json::String(s)) => match e.symbols.iter().position(|sym| sym == s) {
            Some(i) => Ok(AvroValue::Enum(i as u32, s.clone())),
            None => Err(expected_words(schema)),
        },
        (Schema::Union(u), _) => {
            for (i, variant) in u.variants().iter().enumerate() {
                if let Ok(v) = to_avro(variant, json) {
                    return Ok(AvroValue::Union(i as u32, Box::new(v)));
                }
            }
            Err(expected_words(schema))
        }
        _ => Err(expected_words(schema)),
    }
}

/// The converted value as the field rules see it (so `30` in a double field is the double 30).
fn avro_view(value: &AvroValue) -> Option<FieldValue<'_>> {
    match value {
        AvroValue::Null => Some(FieldValue::Null),
        AvroValue::Int(i) => Some(FieldValue::Int(*i as i64)),
        AvroValue::Long(i) => Some(FieldValue::Int(*i)),
        AvroValue::Double(d) => Some(FieldValue::Double(*d)),
        AvroValue::String(s) | AvroValue::Enum(_, s) => Some(FieldValue::Str(s)),
        AvroValue::Union(_, inner) => avro_view(inner),
        _ => None,
    }
}

fn expected_words(schema: &Schema) -> String {
    match schema {
        Schema::Null => "null".into(),
        Schema::Boolean => "true or false".into(),
        Schema::Int => "a whole number from -2147483648 to 2147483647".into(),
        Schema::Long => "a whole number".into(),
        Schema::Double | Schema::Float => "a number".into(),
        Schema::String => "a string".into(),
        Schema::Enum(e) => format!("one of {}", e.symbols.join(", ")),
        Schema::Union(u) => {
            let parts: Vec<String> = u.variants().iter().map(expected_words).collect();
            parts.join(" or ")
        }
        other => format!("{other:?}"),
    }
}

fn describe(json: &Json) -> String {
    match json {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("{b}"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) => format!("the string \"{}\"", rules::shorten(s)),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}
