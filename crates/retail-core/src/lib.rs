//! Event contracts of the retail platform: types, Avro schemas and validation. Pure: no I/O.

mod canonical;
pub mod events;
mod fastjson;
pub mod rows;
mod rules;
pub mod schemas;
mod timestamp;
pub mod validate;

pub use events::*;
pub use rows::*;
pub use rules::{EARLIEST_EVENT_YEAR, MAX_FUTURE_SKEW, MAX_PRICE, MAX_SALE_QUANTITY};
pub use validate::{validate_event, validate_message, validate_message_as, validate_with_avro, Rejection, MAX_MESSAGE_BYTES};

/// Errors of this crate (validation failures are [`Rejection`]s, not errors).
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("Avro schema {file} is invalid: {reason}")]
    Schema { file: String, reason: String },
}
