//! Ground truth written beside the events, so forecasts and detectors can be scored.

use chrono::{DateTime, NaiveDate, Utc};
use retail_core::AnomalyKind;
use serde::{Deserialize, Serialize};

/// Demand of one store×SKU on one local date.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DemandTruth {
    pub date: NaiveDate,
    pub store_id: String,
    pub product_id: String,
    /// What the model expected (all effects, no noise, no injected anomalies), in units.
    pub expected_units: f64,
    /// Units customers wanted (noise and demand spikes included).
    pub demand_units: u32,
    pub sold_units: u32,
    /// Wanted but not on the shelf.
    pub lost_units: u32,
    pub on_promotion: bool,
    /// Stock the system believes at the end of the day, and what is physically there.
    pub closing_system_stock: i32,
    pub closing_physical_stock: i32,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum InjectedAnomaly {
    /// Recorded theft of several high-value SKUs within a few hours.
    TheftBurst,
    /// Physical stock silently lost; the system still believes it is there (sales stop).
    PhantomInventory,
    /// Price keyed wrong at the POS (×10 or ÷10) for a few hours.
    PriceEntryError,
    /// Demand several times normal for some hours.
    DemandSpike,
    /// A POS repeating the same sale line (new ids, no stock movement).
    StuckPos,
}

impl InjectedAnomaly {
    /// The stream processor flag that should catch it.
    pub fn detector_kind(self) -> AnomalyKind {
        match self {
            InjectedAnomaly::TheftBurst => AnomalyKind::UnexplainedStockDrop,
            InjectedAnomaly::PhantomInventory => AnomalyKind::StockMismatch,
            InjectedAnomaly::PriceEntryError => AnomalyKind::PriceOutlier,
            InjectedAnomaly::DemandSpike => AnomalyKind::DemandSpike,
            InjectedAnomaly::StuckPos => AnomalyKind::StuckPos,
        }
    }
}

/// One injected anomaly on one store×SKU.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AnomalyLabel {
    pub anomaly_id: String,
    pub kind: InjectedAnomaly,
    pub detector_kind: AnomalyKind,
    pub store_id: String,
    pub product_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Units stolen or lost, price factor, demand multiplier or repeat count, per kind.
    pub magnitude: f64,
    pub detail: String,
}

/// A replenishment order and when its delivery arrives.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PurchaseOrder {
    pub po_id: String,
    pub store_id: String,
    pub product_id: String,
    pub quantity: i32,
    pub ordered_at: DateTime<Utc>,
    /// Sampled supplier lead time in days (≥ 1).
    pub lead_time_days: f64,
    pub arrives_at: DateTime<Utc>,
}

/// Weather of one region on one date (a forecasting feature).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct WeatherTruth {
    pub date: NaiveDate,
    pub region: String,
    pub temp_c: f64,
    pub rain_mm: f64,
}

/// Truth accumulated since the last `Simulator::take_truth`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Truth {
    pub demand: Vec<DemandTruth>,
    pub anomalies: Vec<AnomalyLabel>,
    pub orders: Vec<PurchaseOrder>,
    pub weather: Vec<WeatherTruth>,
}

impl Truth {
    pub fn append(&mut self, mut other: Truth) {
        self.demand.append(&mut other.demand);
        self.anomalies.append(&mut other.anomalies);
        self.orders.append(&mut other.orders);
        self.weather.append(&mut other.weather);
    }

    pub fn is_empty(&self) -> bool {
        self.demand.is_empty() && self.anomalies.is_empty() && self.orders.is_empty() && self.weather.is_empty()
    }
}
