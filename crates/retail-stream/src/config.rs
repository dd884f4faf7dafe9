//! Processor settings and the catalog it is given at start.

use retail_core::{Product, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Every knob of the processor. Times are event-time milliseconds unless said otherwise,
/// so that a replay from a checkpoint makes the same decisions as the first run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorConfig {
    /// Tumbling window length (the seed's 5 minutes).
    pub window_ms: i64,
    /// The watermark trails the highest event time seen in a partition by this much: events this
    /// far out of order still land in a window that has not yet been announced as complete.
    pub max_out_of_orderness_ms: i64,
    /// After the watermark passes a window's end, the window still accepts events for this long
    /// (re-emitting the updated row); later events are counted, routed to the dead-letter topic
    /// with reason `late_event`, and still stored as facts.
    pub allowed_lateness_ms: i64,
    /// Event ids are remembered this long behind the watermark to drop duplicates.
    pub dedup_horizon_ms: i64,
    /// Weight of the newest completed hour in the smoothed velocity (EWMA, 0..1]; its memory
    /// is ≈ 1/α hours. Lead times are days, and a slow mover sells a unit every few days, so
    /// the memory is days too (0.2, five hours, made each sale of a slow mover look like a
    /// surge: `retail bench alerts` scores the choice against the simulator's stock-outs).
    pub velocity_alpha: f64,
    /// Hours of zero demand assumed before a store×SKU's first hour (decaying like real
    /// hours): the velocity of a new store×SKU grows with evidence instead of jumping to its
    /// first hour's units.
    pub velocity_prior_hours: f64,
    /// Stock-out risk at or above which a restock alert opens.
    pub risk_threshold: f64,
    /// Service-level z-score used for the reorder point (1.645 ≈ 95 % cycle service level).
    pub service_z: f64,
    /// Minimum event time between two `open` alerts of one store×SKU.
    pub alert_cooldown_ms: i64,
    /// Lead time assumed for products missing from the catalog, in days.
    pub default_lead_time_days: f64,
    pub default_lead_time_sd_days: f64,
    /// Robust z-score beyond which a quantity or price is flagged as an outlier.
    pub outlier_z: f64,
    /// Observations of a SKU needed before outliers are flagged (the norm must exist first).
    pub outlier_min_samples: u32,
    /// Identical consecutive sale lines from one store that mark a stuck POS.
    pub stuck_pos_repeats: u32,
    /// A non-sale stock decrease at least this many units *and* this fraction of the previous
    /// on-hand is an unexplained drop.
    pub unexplained_drop_min_units: i32,
    pub unexplained_drop_fraction: f64,
    /// Recorded thefts of at least this many SKUs of one store within `theft_burst_window_ms`
    /// of event time are a burst: each of them is flagged, however small.
    pub theft_burst_skus: usize,
    pub theft_burst_window_ms: i64,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            window_ms: 5 * 60_000,
            max_out_of_orderness_ms: 30_000,
            allowed_lateness_ms: 10 * 60_000,
            dedup_horizon_ms: 2 * 3_600_000,
            velocity_alpha: 0.01,
            velocity_prior_hours: 24.0,
            risk_threshold: 0.5,
            service_z: 1.645,
            alert_cooldown_ms: 3_600_000,
            default_lead_time_days: 3.0,
            default_lead_time_sd_days: 1.0,
            outlier_z: 8.0,
            outlier_min_samples: 30,
            stuck_pos_repeats: 5,
            unexplained_drop_min_units: 10,
            unexplained_drop_fraction: 0.3,
            theft_burst_skus: 3,
            theft_burst_window_ms: 3 * 3_600_000,
        }
    }
}

/// What the processor needs to know about the world: products (cost, lead time) and stores.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub products: Vec<Product>,
    pub stores: Vec<Store>,
}

/// Per-product facts used on the hot path, looked up by product id.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ProductInfo {
    pub unit_cost: f64,
    pub list_price: f64,
    pub lead_time_days: f64,
    pub lead_time_sd_days: f64,
    pub pack_size: i32,
}

pub(crate) fn index_catalog(catalog: &Catalog) -> HashMap<Box<str>, ProductInfo> {
    catalog
        .products
        .iter()
        .map(|p| {
            (
                p.product_id.clone().into_boxed_str(),
                ProductInfo {
                    unit_cost: p.unit_cost,
                    list_price: p.list_price,
                    lead_time_days: p.lead_time_days,
                    lead_time_sd_days: p.lead_time_sd_days,
                    pack_size: p.pack_size.max(1),
                },
            )
        })
        .collect()
}

/// Read the catalog from the warehouse's `dim_product` (filled by `retail warehouse` / the
/// simulator). An empty table gives an empty catalog: products then process with cost 0 and
/// default lead times, and are counted as unknown.
pub async fn load_catalog(warehouse: &dyn retail_warehouse::Warehouse) -> Result<Catalog, retail_warehouse::WarehouseError> {
    let q = warehouse
        .query("SELECT product_key, sku, product_name, category, sub_category, brand, supplier, unit_cost, list_price, shelf_life_days, pack_size, lead_time_days, lead_time_sd_days FROM dim_product")
        .await?;
    let s = |v: &serde_json::Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    let f = |v: &serde_json::Value| v.as_f64().or_else(|| v.as_str().and_then(|x| x.parse().ok())).unwrap_or(0.0);
    let products = q
        .rows
        .iter()
        .filter(|r| r.len() == 13)
        .map(|r| Product {
            product_id: s(&r[0]),
            sku: s(&r[1]),
            product_name: s(&r[2]),
            category: s(&r[3]),
            sub_category: s(&r[4]),
            brand: s(&r[5]),
            supplier: s(&r[6]),
            unit_cost: f(&r[7]),
            list_price: f(&r[8]),
            shelf_life_days: f(&r[9]) as i32,
            pack_size: f(&r[10]) as i32,
            lead_time_days: f(&r[11]),
            lead_time_sd_days: f(&r[12]),
        })
        .collect();
    Ok(Catalog { products, stores: Vec::new() })
}
