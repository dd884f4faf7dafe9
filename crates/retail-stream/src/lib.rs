//! The stream processor: validates every record of the sales, inventory, price and customer
//! topics, aggregates event-time windows, tracks stock, velocity and stock-out risk, flags
//! anomalies, raises restock alerts, and writes the lake and the warehouse exactly once.
//!
//! Layers: [`validate`] (one record → typed event or reasons), [`processor`] (the pure state
//! machine), [`runner`] (poll → process → sinks → checkpoint → commit). See docs/stream.md.

pub mod config;
pub mod model;
pub mod processor;
pub mod state;
pub mod validate;

pub use config::{load_catalog, Catalog, ProcessorConfig};
pub use processor::{BatchStats, Outputs, Processor};
pub use state::PartSnapshot;
pub use validate::TopicKind;
pub mod metrics;
pub mod runner;

pub use metrics::{CountersSnapshot, Stage, StreamCounters, StreamMetrics};
pub use runner::{run, RunSummary, Runner, StreamConfig, StreamError};
