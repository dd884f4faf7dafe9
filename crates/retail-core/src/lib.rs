//! Event contracts of the retail platform: types, Avro schemas and validation. Pure: no I/O.

pub mod events;

pub use events::*;
pub mod rows;

pub use rows::*;
