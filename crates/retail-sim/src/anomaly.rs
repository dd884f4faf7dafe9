//! Injected anomalies, each written to the ground truth as a label when scheduled.
//!
//! Default rates per store per day (times `WorldConfig::anomaly_rate`): theft burst 1%,
//! phantom inventory 2%, price-entry error 1%, demand spike 1.5%, stuck POS 0.5%.

use crate::engine::{open_hour, poisson, to_time, DayPlan, Happening, StoreSim, HOUR_MS};
use crate::hash::event_id;
use crate::truth::{AnomalyLabel, InjectedAnomaly, Truth};
use crate::world::World;
use rand::Rng;
use retail_core::*;

pub const THEFT_BURST_RATE: f64 = 0.01;
pub const PHANTOM_INVENTORY_RATE: f64 = 0.02;
pub const PRICE_ENTRY_ERROR_RATE: f64 = 0.01;
pub const DEMAND_SPIKE_RATE: f64 = 0.015;
pub const STUCK_POS_RATE: f64 = 0.005;

/// An anomaly that changes how ordinary happenings play out while it lasts.
#[derive(Clone, Debug)]
pub(crate) struct ActiveAnomaly {
    pub kind: InjectedAnomaly,
    pub cell: u32,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Price factor (price error) or extra lines per hour (spike).
    pub value: f64,
}

/// Decide today's anomalies for a store and put them in the plan and the truth.
pub(crate) fn schedule(sim: &mut StoreSim, world: &World, plan: &mut DayPlan, truth: &mut Truth) {
    let rate = world.config.anomaly_rate;
    let n = sim.cells.len();
    if rate <= 0.0 || n == 0 || plan.lines_total <= 0.0 {
        return;
    }
    let hour_share = plan.hour_share;
    let window = |sim: &mut StoreSim, max_hours: i64| {
        let start = plan.start_ms + open_hour(&mut sim.rng, &hour_share) * HOUR_MS + sim.rng.random_range(0..HOUR_MS / 2);
        (start, start + sim.rng.random_range(1..=max_hours) * HOUR_MS)
    };
    if sim.rng.random::<f64>() < THEFT_BURST_RATE * rate {
        let (start, end) = window(sim, 3);
        let targets = sim.rng.random_range(3..=8);
        for _ in 0..targets {
            let cell = pick_cell(sim, world, |w, product| crate::catalog::category(w.product_meta[product].category).high_value);
            let mut stolen = 0;
            for _ in 0..sim.rng.random_range(1..=3) {
                let quantity = sim.rng.random_range(2..=6);
                stolen += quantity;
                let at = sim.rng.random_range(start..end);
                plan.scheduled.push((at, Happening::Shrink { cell, quantity, reason: InventoryReason::Theft }));
            }
            label(
                sim,
                world,
                truth,
                InjectedAnomaly::TheftBurst,
                cell,
                start,
                end,
                stolen as f64,
                format!("up to {stolen} units stolen in recorded theft events; one of {targets} SKUs hit"),
            );
        }
    }
    if sim.rng.random::<f64>() < PHANTOM_INVENTORY_RATE * rate {
        let cell = pick_cell(sim, world, |_, _| true);
        let (at, _) = window(sim, 1);
        let quantity = (sim.cells[cell as usize].phys as f64 * sim.rng.random_range(0.6..=1.0)).ceil() as i32;
        if quantity > 0 {
            plan.scheduled.push((at, Happening::SilentLoss { cell, quantity }));
            label(
                sim,
                world,
                truth,
                InjectedAnomaly::PhantomInventory,
                cell,
                at,
                at,
                quantity as f64,
                format!("{quantity} units physically gone while the system still counts them, until the next cycle count"),
            );
        }
    }
    if sim.rng.random::<f64>() < PRICE_ENTRY_ERROR_RATE * rate {
        let cell = pick_cell(sim, world, |_, _| true);
        let (start, end) = window(sim, 6);
        let factor = if sim.rng.random::<bool>() { 10.0 } else { 0.1 };
        sim.anomalies.push(ActiveAnomaly { kind: InjectedAnomaly::PriceEntryError, cell, start_ms: start, end_ms: end, value: factor });
        label(sim, world, truth, InjectedAnomaly::PriceEntryError, cell, start, end, factor, format!("POS price keyed ×{factor}"));
    }
    if sim.rng.random::<f64>() < DEMAND_SPIKE_RATE * rate {
        let cell = pick_cell(sim, world, |_, _| true);
        let (start, end) = window(sim, 8);
        let normal_per_hour = sim.cells[cell as usize].expected_lines / 12.0;
        let multiplier = sim.rng.random_range(5.0..12.0);
        // Even a slow seller gets a visible spike: at least 3 extra lines an hour.
        let extra = (normal_per_hour * (multiplier - 1.0)).max(3.0);
        sim.anomalies.push(ActiveAnomaly { kind: InjectedAnomaly::DemandSpike, cell, start_ms: start, end_ms: end, value: extra });
        label(sim, world, truth, InjectedAnomaly::DemandSpike, cell, start, end, multiplier, format!("about {extra:.1} extra sale lines per hour"));
    }
    if sim.rng.random::<f64>() < STUCK_POS_RATE * rate {
        let cell = pick_cell(sim, world, |_, _| true);
        let hour = open_hour(&mut sim.rng, &hour_share);
        let at = plan.start_ms + hour * HOUR_MS + sim.rng.random_range(0..HOUR_MS / 2);
        let repeats = sim.rng.random_range(10..=40);
        let interval_ms = sim.rng.random_range(3_000..=15_000);
        plan.scheduled.push((at, Happening::StuckRepeat { cell, repeats, interval_ms }));
        let end = at + repeats as i64 * interval_ms;
        label(
            sim,
            world,
            truth,
            InjectedAnomaly::StuckPos,
            cell,
            at,
            end,
            repeats as f64,
            format!("the same sale line sent {repeats} times, {} s apart, with no stock movement", interval_ms / 1000),
        );
    }
}

/// A cell, preferring those `prefer` accepts (a few tries, then any).
fn pick_cell(sim: &mut StoreSim, world: &World, prefer: impl Fn(&World, usize) -> bool) -> u32 {
    let n = sim.cells.len();
    for _ in 0..20 {
        let cell = sim.rng.random_range(0..n);
        if prefer(world, sim.cells[cell].product as usize) && sim.cells[cell].phys > 0 {
            return cell as u32;
        }
    }
    sim.rng.random_range(0..n) as u32
}

#[allow(clippy::too_many_arguments)]
fn label(sim: &mut StoreSim, world: &World, truth: &mut Truth, kind: InjectedAnomaly, cell: u32, start: i64, end: i64, magnitude: f64, detail: String) {
    sim.label_seq += 1;
    truth.anomalies.push(AnomalyLabel {
        anomaly_id: event_id(world.config.seed ^ 0xa11a, sim.index as u32, sim.label_seq),
        kind,
        detector_kind: kind.detector_kind(),
        store_id: sim.store_id.clone(),
        product_id: world.products()[sim.cells[cell as usize].product as usize].product_id.clone(),
        start: to_time(start),
        end: to_time(end),
        magnitude,
        detail,
    });
}

/// The extra single-line baskets of active demand spikes in `[hour_start, +1h)`.
pub(crate) fn spike_lines(sim: &mut StoreSim, hour_start: i64, happenings: &mut Vec<(i64, Happening)>) {
    let hour_end = hour_start + HOUR_MS;
    for i in 0..sim.anomalies.len() {
        let a = &sim.anomalies[i];
        if a.kind != InjectedAnomaly::DemandSpike || a.end_ms <= hour_start || a.start_ms >= hour_end {
            continue;
        }
        let (from, to, cell, per_hour) = (a.start_ms.max(hour_start), a.end_ms.min(hour_end), a.cell, a.value);
        let lines = poisson(&mut sim.rng, per_hour * (to - from) as f64 / HOUR_MS as f64);
        for _ in 0..lines {
            happenings.push((sim.rng.random_range(from..to), Happening::SpikeLine { cell }));
        }
    }
}

/// The price factor of a price-entry error on `cell` at `at`, if one is active.
pub(crate) fn price_error_factor(active: &[ActiveAnomaly], cell: u32, at: i64) -> Option<f64> {
    active.iter().find(|a| a.kind == InjectedAnomaly::PriceEntryError && a.cell == cell && (a.start_ms..a.end_ms).contains(&at)).map(|a| a.value)
}

/// A stuck POS: the same sale line again and again (new ids, no stock movement).
pub(crate) fn stuck_repeats(sim: &mut StoreSim, world: &World, at: i64, cell: u32, repeats: u32, interval_ms: i64, out: &mut Vec<Event>) {
    let seed = world.config.seed;
    let c = &sim.cells[cell as usize];
    let product_id = world.products()[c.product as usize].product_id.clone();
    let (list, discount, promotion_id) = (c.shelf_cents, c.promo.as_ref().map_or(0.0, |p| p.1), c.promo.as_ref().map(|p| p.0.clone()));
    let unit = ((list as f64 * (1.0 - discount)).round() as u32).max(1);
    let basket = sim.next_id(seed);
    let quantity = crate::engine::line_quantity(&mut sim.rng);
    for k in 0..repeats {
        let id = sim.next_id(seed);
        out.push(Event::Sale(SaleTransaction {
            event_type: EventType::Sale,
            schema_version: SCHEMA_VERSION,
            transaction_id: id,
            basket_id: basket.clone(),
            store_id: sim.store_id.clone(),
            product_id: product_id.clone(),
            quantity,
            unit_price: unit as f64 / 100.0,
            list_price: list as f64 / 100.0,
            discount_pct: discount,
            promotion_id: promotion_id.clone(),
            timestamp: to_time(at + k as i64 * interval_ms),
            customer_id: None,
            payment_method: PaymentMethod::Cash,
        }));
    }
}
