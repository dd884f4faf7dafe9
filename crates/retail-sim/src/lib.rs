//! A deterministic retail world model that emits the POS events of `retail-core`.
//!
//! ```text
//! World::generate(&WorldConfig)      stores, catalog, assortments (dim_store, dim_product)
//! Simulator::new(world, start)       stock, prices, shoppers, replenishment, shrink, anomalies
//!   .next_hour() / .backfill(days)   simulated clock, as fast as possible
//!   .events_until(now)               real time (caller paces); continues the same state
//!   .take_truth()                    expected demand, lost sales, anomaly labels, orders, weather
//! is_holiday(date)                   the holiday calendar (for dim_date)
//! ```
//! See `docs/simulator.md` for the model and its knobs.

mod alias;
mod anomaly;
pub mod calendar;
pub mod catalog;
mod config;
pub mod demand;
mod engine;
mod error;
pub mod hash;
mod simulator;
pub mod truth;
mod world;

pub use anomaly::{DEMAND_SPIKE_RATE, PHANTOM_INVENTORY_RATE, PRICE_ENTRY_ERROR_RATE, STUCK_POS_RATE, THEFT_BURST_RATE};
pub use calendar::{holiday_effect, is_holiday, HolidayEffect};
pub use config::{WorldConfig, MAX_PRODUCTS, MAX_STORES};
pub use demand::{Promotion, Weather};
pub use error::SimError;
pub use simulator::{backfill_start, Backfill, Simulator};
pub use truth::{AnomalyLabel, DemandTruth, InjectedAnomaly, PurchaseOrder, Truth, WeatherTruth};
pub use world::{World, EVENTS_PER_LINE, UNITS_PER_LINE};
