//! The knobs of the world model.

use crate::SimError;

/// Largest world supported: ids are `store_` + up to 4 digits and `SKU` + 6 digits.
pub const MAX_STORES: usize = 9_999;
pub const MAX_PRODUCTS: usize = 999_999;

/// Everything that defines a world. Same config (and start time) → same events, byte for byte.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorldConfig {
    pub seed: u64,
    /// Number of stores, `store_001` ….
    pub stores: usize,
    /// Number of SKUs in the catalog.
    pub products: usize,
    /// Assortment of the largest format (hypermarkets); supermarkets carry 70% of it,
    /// convenience stores 30%, express stores 20%. At most `products`.
    pub skus_per_store: usize,
    /// Mean events per minute per store while it is open (demand is calibrated to this).
    /// The seed's live range is 100–500; backfills usually run lower to stay small.
    pub traffic_per_store_minute: f64,
    /// Multiplier of the default anomaly rates (see `anomaly.rs`); 0 disables injection.
    pub anomaly_rate: f64,
    /// Record expected/realised demand per store×SKU×day in the ground truth (large).
    pub demand_truth: bool,
    /// Worker threads used to step stores in parallel (output does not depend on it).
    pub threads: usize,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            seed: 42,
            stores: 50,
            products: 2_000,
            skus_per_store: 2_000,
            traffic_per_store_minute: 10.0,
            anomaly_rate: 1.0,
            demand_truth: true,
            threads: 2,
        }
    }
}

impl WorldConfig {
    /// Every problem with the configuration, in one error.
    pub fn validate(&self) -> Result<(), SimError> {
        let mut problems = Vec::new();
        if self.stores == 0 || self.stores > MAX_STORES {
            problems.push(format!("stores must be between 1 and {MAX_STORES}, got {}", self.stores));
        }
        if self.products == 0 || self.products > MAX_PRODUCTS {
            problems.push(format!("products must be between 1 and {MAX_PRODUCTS}, got {}", self.products));
        }
        if self.skus_per_store == 0 {
            problems.push("skus_per_store must be at least 1".to_string());
        } else if self.skus_per_store > self.products {
            problems.push(format!("skus_per_store {} is more than the {} SKUs in the catalog", self.skus_per_store, self.products));
        }
        if !(self.traffic_per_store_minute > 0.0 && self.traffic_per_store_minute <= 100_000.0) {
            problems.push(format!("traffic must be more than 0 and at most 100000 events per minute per store, got {}", self.traffic_per_store_minute));
        }
        if !(self.anomaly_rate >= 0.0 && self.anomaly_rate <= 100.0) {
            problems.push(format!("anomaly_rate must be in [0, 100], got {}", self.anomaly_rate));
        }
        if self.threads == 0 || self.threads > 256 {
            problems.push(format!("threads must be between 1 and 256, got {}", self.threads));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SimError::InvalidConfig(problems.join("; ")))
        }
    }
}
