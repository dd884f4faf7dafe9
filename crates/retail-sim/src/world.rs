//! The generated, immutable world: stores, catalog, assortments, and the demand base of every
//! store×SKU. Everything that changes over time lives in the simulator, not here.

use crate::catalog::{self, ProductMeta, Region, StoreMeta, FORMATS, REGIONS};
use crate::demand::{self, Weather};
use crate::{SimError, WorldConfig};
use chrono::{DateTime, NaiveDate, Timelike, Utc};
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use retail_core::{Product, Store};

/// Mean events per sale line: the sale, its inventory update, and a share of customer events.
/// Used to turn the traffic knob (events/min) into demand (lines/min).
pub const EVENTS_PER_LINE: f64 = 2.1;
/// Mean units per sale line (see `engine::line_quantity`).
pub const UNITS_PER_LINE: f64 = 1.3;

pub struct World {
    pub(crate) config: WorldConfig,
    stores: Vec<Store>,
    pub(crate) store_meta: Vec<StoreMeta>,
    products: Vec<Product>,
    pub(crate) product_meta: Vec<ProductMeta>,
    /// Product indices carried by each store, ascending.
    assortments: Vec<Vec<u32>>,
    /// Share of each carried SKU in its store's demand (aligned with `assortments`), sums to 1.
    pub(crate) demand_share: Vec<Vec<f32>>,
    /// Bottom 40% of popularity: candidates for clearance.
    pub(crate) slow_seller: Vec<bool>,
}

impl World {
    /// Generate the world of `config` (deterministic in `config.seed`).
    pub fn generate(config: &WorldConfig) -> Result<World, SimError> {
        config.validate()?;
        let mut rng = Pcg64Mcg::seed_from_u64(crate::hash::hash(&[config.seed, 0xc0ffee]));
        let (stores, store_meta) = catalog::generate_stores(&mut rng, config.stores);
        let (products, product_meta) = catalog::generate_products(&mut rng, config.seed, config.products);
        let mut assortments = Vec::with_capacity(stores.len());
        let mut demand_share = Vec::with_capacity(stores.len());
        for meta in &store_meta {
            let size = ((config.skus_per_store as f64 * FORMATS[meta.format].assortment_share).round() as usize).clamp(1, config.products);
            let assortment = catalog::generate_assortment(&mut rng, &product_meta, size);
            // Local taste: each store likes each SKU a little more or less than the chain does.
            let mut shares: Vec<f32> =
                assortment.iter().map(|&p| (product_meta[p as usize].popularity * rand::Rng::random_range(&mut rng, 0.7..1.4)) as f32).collect();
            let total: f32 = shares.iter().sum();
            shares.iter_mut().for_each(|s| *s /= total);
            assortments.push(assortment);
            demand_share.push(shares);
        }
        let mut by_popularity: Vec<f64> = product_meta.iter().map(|m| m.popularity).collect();
        by_popularity.sort_by(|a, b| a.total_cmp(b));
        let cutoff = by_popularity[(by_popularity.len() * 2 / 5).min(by_popularity.len() - 1)];
        let slow_seller = product_meta.iter().map(|m| m.popularity < cutoff).collect();
        Ok(World { config: config.clone(), stores, store_meta, products, product_meta, assortments, demand_share, slow_seller })
    }

    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    /// `dim_store` rows.
    pub fn stores(&self) -> &[Store] {
        &self.stores
    }

    /// `dim_product` rows (`list_price` is the price at the start of 2024's first price period).
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// Product indices (into `products()`) carried by store `store`, ascending.
    pub fn assortment(&self, store: usize) -> &[u32] {
        &self.assortments[store]
    }

    /// Every (store_id, product_id) carried, for an assortment table.
    pub fn assortment_pairs(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.assortments
            .iter()
            .enumerate()
            .flat_map(move |(s, skus)| skus.iter().map(move |&p| (self.stores[s].store_id.as_str(), self.products[p as usize].product_id.as_str())))
    }

    pub fn carries(&self, store: usize, product: usize) -> bool {
        self.assortments[store].binary_search(&(product as u32)).is_ok()
    }

    /// Hours to add to UTC to get the store's local time (its region's time zone).
    pub fn store_utc_offset_hours(&self, store: usize) -> i32 {
        self.region_of(store).utc_offset_hours
    }

    /// How many stores are open at `at` (their local opening hours); outside them no sales happen.
    pub fn stores_open_at(&self, at: DateTime<Utc>) -> usize {
        (0..self.stores.len())
            .filter(|&i| {
                let local = (at.hour() as i32 + self.store_utc_offset_hours(i)).rem_euclid(24) as u8;
                let store = &self.stores[i];
                (store.opens_hour..store.closes_hour).contains(&local)
            })
            .count()
    }

    pub fn regions(&self) -> &'static [Region] {
        REGIONS
    }

    pub(crate) fn region_of(&self, store: usize) -> &'static Region {
        &REGIONS[self.store_meta[store].region]
    }

    /// The weather of a region (index into `regions()`) on a local date.
    pub fn weather(&self, region: usize, date: NaiveDate) -> Weather {
        demand::weather(self.config.seed, region, &REGIONS[region], date)
    }

    /// The promotion on a product (index) in the week of `date`, chain-wide.
    pub fn promotion(&self, product: usize, date: NaiveDate) -> Option<demand::Promotion> {
        demand::promotion(self.config.seed, product, date)
    }

    /// Shelf price in cents (before promotions) of a product on a date, chain-wide.
    pub fn shelf_price_cents(&self, product: usize, date: NaiveDate) -> u32 {
        demand::shelf_price_cents(self.config.seed, product, &self.product_meta[product], self.slow_seller[product], date).0
    }

    /// Mean sale lines per day of a store on an ordinary day at traffic `per_minute`.
    pub(crate) fn lines_per_day(&self, store: usize, per_minute: f64) -> f64 {
        let s = &self.stores[store];
        let open_minutes = (s.closes_hour.saturating_sub(s.opens_hour)) as f64 * 60.0;
        per_minute / EVENTS_PER_LINE * open_minutes * self.store_meta[store].traffic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_well_formed() {
        let config = WorldConfig { stores: 20, products: 500, skus_per_store: 300, ..Default::default() };
        let w = World::generate(&config).unwrap();
        assert_eq!(w.stores().len(), 20);
        assert_eq!(w.stores()[0].store_id, "store_001");
        assert_eq!(w.products()[499].product_id, "SKU000500");
        for (i, s) in w.stores().iter().enumerate() {
            let a = w.assortment(i);
            assert!(!a.is_empty() && a.len() <= 300, "{}", a.len());
            assert!(a.windows(2).all(|p| p[0] < p[1]));
            assert!(s.opens_hour < s.closes_hour && s.closes_hour <= 24);
            assert!((w.demand_share[i].iter().sum::<f32>() - 1.0).abs() < 1e-3);
        }
        for p in w.products() {
            assert!(p.unit_cost > 0.0 && p.unit_cost < p.list_price, "{p:?}");
            assert!(p.lead_time_days >= 2.0 && p.pack_size > 0 && p.shelf_life_days > 0);
        }
        // Not every SKU everywhere, and the popular ones are carried more often.
        assert!(w.assortment_pairs().count() < 20 * 500);
    }

    #[test]
    fn each_store_counts_as_open_for_exactly_its_opening_hours() {
        let w = World::generate(&WorldConfig { stores: 12, products: 50, skus_per_store: 50, ..Default::default() }).unwrap();
        let day: DateTime<Utc> = "2025-06-02T00:00:00Z".parse().unwrap();
        let open_store_hours: usize = (0..24).map(|h| w.stores_open_at(day + chrono::Duration::hours(h))).sum();
        let opening_hours: usize = w.stores().iter().map(|s| (s.closes_hour - s.opens_hour) as usize).sum();
        assert_eq!(open_store_hours, opening_hours);
        assert!((0..24).all(|h| w.stores_open_at(day + chrono::Duration::hours(h)) > 0));
    }

    #[test]
    fn impossible_configs_are_refused_with_every_reason() {
        let bad = WorldConfig { stores: 0, products: 10, skus_per_store: 11, ..Default::default() };
        let err = World::generate(&bad).err().unwrap().to_string();
        assert!(err.contains("stores must be between 1") && err.contains("skus_per_store 11 is more than the 10 SKUs"), "{err}");
    }

    #[test]
    fn same_seed_same_world_other_seed_other_world() {
        let c = WorldConfig { stores: 5, products: 100, skus_per_store: 80, ..Default::default() };
        let a = World::generate(&c).unwrap();
        let b = World::generate(&c).unwrap();
        assert_eq!(a.stores(), b.stores());
        assert_eq!(a.products(), b.products());
        let other = World::generate(&WorldConfig { seed: 7, ..c }).unwrap();
        assert_ne!(a.products(), other.products());
    }
}
