//! The demand model's factors. Each is a pure function of (seed, what, local date/hour), so the
//! world can be asked about any day in any order and backfill and live agree.
//!
//! expected lines(store, sku, day) = base(store, sku) × weekday × season(category) × holiday
//!                                    × weather(region, category) × promotion uplift
//! and within the day the store's hour-of-day profile spreads it over opening hours.

use crate::calendar::holiday_effect;
use crate::catalog::{category, charm_price_cents, CategoryId, ProductMeta, Region};
use crate::hash::{hash, symmetric, unit};
use chrono::{Datelike, NaiveDate};

/// Monday … Sunday. Mean 1. Weekend / weekday = 1.155 / 0.938 ≈ 1.23.
pub const WEEKDAY_FACTOR: [f64; 7] = [0.88, 0.86, 0.90, 0.95, 1.10, 1.30, 1.01];

pub fn weekday_factor(date: NaiveDate) -> f64 {
    WEEKDAY_FACTOR[date.weekday().num_days_from_monday() as usize]
}

/// Relative traffic of each local hour (lunch and after-work peaks, quiet nights).
const HOUR_SHAPE: [f64; 24] =
    [0.12, 0.08, 0.06, 0.06, 0.08, 0.15, 0.30, 0.50, 0.70, 0.80, 0.90, 1.10, 1.40, 1.30, 1.00, 1.00, 1.20, 1.60, 1.70, 1.40, 1.00, 0.70, 0.45, 0.30];

/// Share of a day's demand in each local hour, zero outside opening hours; sums to 1.
pub fn hour_profile(opens: u8, closes: u8) -> [f64; 24] {
    let mut p = [0.0; 24];
    for (h, share) in p.iter_mut().enumerate() {
        if (opens as usize..closes as usize).contains(&h) {
            *share = HOUR_SHAPE[h];
        }
    }
    let total: f64 = p.iter().sum();
    if total > 0.0 {
        p.iter_mut().for_each(|x| *x /= total);
    }
    p
}

/// Yearly seasonality of a category: 1 ± amplitude, peaking on its day of year (shifted half
/// a year south of the equator), plus the December gift season.
pub fn season_factor(cat: CategoryId, date: NaiveDate, southern: bool) -> f64 {
    let c = category(cat);
    let shift = if southern && !matches!(cat, CategoryId::Electronics | CategoryId::Seasonal | CategoryId::Bakery) { 182.0 } else { 0.0 };
    let doy = date.ordinal() as f64;
    let phase = 2.0 * std::f64::consts::PI * (doy - c.season_peak_doy - shift) / 365.25;
    let mut f = 1.0 + c.season_amplitude * phase.cos();
    if date.month() == 12 && date.day() < 24 {
        f *= 1.12;
    }
    f
}

/// One region's weather on one local date.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Weather {
    pub temp_c: f64,
    pub rain_mm: f64,
}

/// Daily weather: seasonal mean plus noise correlated over a few days (weighted sum of daily
/// hashed shocks), and rain with the region's probability.
pub fn weather(seed: u64, region_index: usize, region: &Region, date: NaiveDate) -> Weather {
    let day = date.num_days_from_ce() as i64;
    let peak = if region.southern_hemisphere { 15.0 } else { 197.0 };
    let phase = 2.0 * std::f64::consts::PI * (date.ordinal() as f64 - peak) / 365.25;
    let seasonal = region.mean_temp_c + region.temp_amplitude_c * phase.cos();
    let mut noise = 0.0;
    for (lag, w) in [0.5, 0.3, 0.2, 0.15, 0.1].iter().enumerate() {
        noise += w * symmetric(hash(&[seed, 0x77, region_index as u64, (day - lag as i64) as u64]));
    }
    let temp_c = seasonal + noise * 7.0;
    let r = hash(&[seed, 0x78, region_index as u64, day as u64]);
    let rain_mm = if unit(r) < region.rain_probability { 1.0 + 20.0 * unit(mix(r)) * unit(mix(mix(r))) } else { 0.0 };
    Weather { temp_c: (temp_c * 10.0).round() / 10.0, rain_mm: (rain_mm * 10.0).round() / 10.0 }
}

fn mix(x: u64) -> u64 {
    crate::hash::mix64(x)
}

/// How weather moves a category's demand: heat sells drinks and ice cream, cold sells soup and
/// cold remedies; heavy rain keeps some shoppers home.
pub fn weather_factor(cat: CategoryId, w: Weather) -> f64 {
    let temp = (category(cat).temperature_sensitivity * (w.temp_c - 18.0)).exp();
    let rain = if w.rain_mm > 5.0 {
        0.9
    } else if w.rain_mm > 0.0 {
        0.97
    } else {
        1.0
    };
    (temp * rain).clamp(0.4, 2.5)
}

/// Holiday multiplier of a category on a date (1 on ordinary days; 0 when stores close).
pub fn holiday_factor(cat: CategoryId, date: NaiveDate) -> f64 {
    match holiday_effect(date) {
        None => 1.0,
        Some(h) => h.multiplier * h.boosted.iter().find(|(c, _)| *c == cat).map_or(1.0, |(_, b)| *b),
    }
}

/// A chain-wide promotion on one SKU for one Monday–Sunday week.
#[derive(Clone, Debug, PartialEq)]
pub struct Promotion {
    pub promotion_id: String,
    pub discount_pct: f64,
    /// Demand multiplier: (1 − discount)^(−elasticity).
    pub uplift: f64,
}

/// Price elasticity of promoted demand.
pub const PROMO_ELASTICITY: f64 = 2.2;
/// Chance that a SKU is promoted in a given week.
pub const PROMO_WEEKLY_PROBABILITY: f64 = 0.04;
const DISCOUNTS: [f64; 6] = [0.10, 0.15, 0.20, 0.25, 0.30, 0.40];

/// Weeks since Monday 1970-01-05 (so week boundaries are Mondays).
pub fn week_index(date: NaiveDate) -> i64 {
    let days = date.num_days_from_ce() as i64 - NaiveDate::from_ymd_opt(1970, 1, 5).map_or(0, |d| d.num_days_from_ce() as i64);
    days.div_euclid(7)
}

/// The promotion running on `product` during the week of `date`, if any.
pub fn promotion(seed: u64, product: usize, date: NaiveDate) -> Option<Promotion> {
    let week = week_index(date);
    let h = hash(&[seed, 0x9a, product as u64, week as u64]);
    if unit(h) >= PROMO_WEEKLY_PROBABILITY {
        return None;
    }
    let discount_pct = DISCOUNTS[(mix(h) % DISCOUNTS.len() as u64) as usize];
    Some(Promotion { promotion_id: format!("PROMO-{:06}-W{week}", product + 1), discount_pct, uplift: (1.0 - discount_pct).powf(-PROMO_ELASTICITY) })
}

/// Length of a pricing period: list prices are revised once per period per SKU.
pub const PRICE_PERIOD_DAYS: i64 = 91;
/// Clearance markdowns run over the last days of a period.
pub const CLEARANCE_DAYS: i64 = 14;
pub const CLEARANCE_FACTOR: f64 = 0.7;

/// Why the shelf price of a SKU is what it is on a date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriceState {
    Regular,
    Clearance,
}

/// The chain's shelf price (before promotions) of `product` on `date`: a cost-driven drift
/// revised once per period (on a per-SKU phase), and, for slow sellers, sometimes a clearance
/// markdown over the period's last two weeks.
pub fn shelf_price_cents(seed: u64, product: usize, meta: &ProductMeta, slow_seller: bool, date: NaiveDate) -> (u32, PriceState) {
    let (period, day_in_period) = price_period(seed, product, date);
    let h = hash(&[seed, 0x9b, product as u64, period as u64]);
    // Period 0 is the catalog's list price; later periods drift ±4% a quarter, slightly upwards.
    let level = if period == first_period(seed, product) { 1.0 } else { (0.01 + 0.04 * symmetric(h)).exp() };
    let regular = if level == 1.0 { meta.list_price_cents } else { charm_price_cents(meta.list_price_cents as f64 / 100.0 * level) };
    let on_clearance = slow_seller && unit(mix(h)) < 0.08 && day_in_period >= PRICE_PERIOD_DAYS - CLEARANCE_DAYS;
    if on_clearance {
        (charm_price_cents(regular as f64 / 100.0 * CLEARANCE_FACTOR).min(regular.saturating_sub(10)).max(9), PriceState::Clearance)
    } else {
        (regular, PriceState::Regular)
    }
}

/// (period number, day within it) of a date for a SKU; periods start on a per-SKU phase.
pub fn price_period(seed: u64, product: usize, date: NaiveDate) -> (i64, i64) {
    let phase = (hash(&[seed, 0x9c, product as u64]) % PRICE_PERIOD_DAYS as u64) as i64;
    let day = date.num_days_from_ce() as i64 + phase;
    (day.div_euclid(PRICE_PERIOD_DAYS), day.rem_euclid(PRICE_PERIOD_DAYS))
}

/// Prices are relative to the period containing 2024-01-01, so a world's "list price" is the
/// price around the start of any realistic simulation and drift accumulates from there.
fn first_period(seed: u64, product: usize) -> i64 {
    price_period(seed, product, NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default()).0
}

/// Can the shelf price of `product` change between `date − 1` and `date`? (Cheap pre-check.)
pub fn price_may_change(seed: u64, product: usize, date: NaiveDate) -> bool {
    let (_, d) = price_period(seed, product, date);
    d == 0 || d == PRICE_PERIOD_DAYS - CLEARANCE_DAYS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_profile_sums_to_one_inside_opening_hours() {
        let p = hour_profile(7, 22);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(p[6], 0.0);
        assert_eq!(p[22], 0.0);
        assert!(p[18] > p[9]);
        assert!((hour_profile(0, 24).iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn weekday_factors_average_one() {
        assert!((WEEKDAY_FACTOR.iter().sum::<f64>() / 7.0 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn promotions_are_weekly_and_deterministic() {
        let monday = NaiveDate::from_ymd_opt(2025, 3, 3).unwrap();
        let mut promoted = 0;
        for p in 0..5_000 {
            let a = promotion(1, p, monday);
            // Same week → same promotion every day of it.
            assert_eq!(a, promotion(1, p, monday + chrono::Duration::days(6)));
            if let Some(pr) = a {
                promoted += 1;
                assert!(pr.uplift > 1.0);
            }
        }
        let share = promoted as f64 / 5_000.0;
        assert!((share - PROMO_WEEKLY_PROBABILITY).abs() < 0.015, "{share}");
    }

    #[test]
    fn weather_is_seasonal() {
        let r = &crate::catalog::REGIONS[0];
        let mean = |m| (1..=28).map(|d| weather(3, 0, r, NaiveDate::from_ymd_opt(2025, m, d).unwrap()).temp_c).sum::<f64>() / 28.0;
        assert!(mean(7) > mean(1) + 15.0, "july {} january {}", mean(7), mean(1));
    }
}
