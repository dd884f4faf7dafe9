//! One store's simulation: stock, shoppers, replenishment, shrink and injected anomalies,
//! stepped one UTC hour at a time. Stores are independent (own RNG, own sequence numbers), so
//! they can be stepped in parallel and the output does not depend on the thread count.

use crate::alias::AliasTable;
use crate::anomaly::{self, ActiveAnomaly};
use crate::demand;
use crate::hash::{event_id, hash};
use crate::truth::{DemandTruth, PurchaseOrder, Truth};
use crate::world::{World, UNITS_PER_LINE};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma, Normal, Poisson};
use rand_pcg::Pcg64Mcg;
use retail_core::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;
/// Shape of the daily gamma demand shock per store×SKU (mean 1, CV 1/√3 ≈ 0.58): makes daily
/// counts negative-binomial rather than Poisson.
const DEMAND_SHOCK_SHAPE: f64 = 3.0;
/// Service level of the reorder point (z for ~95%).
const SAFETY_Z: f64 = 1.65;
/// Every SKU is counted once per this many days (cycle counts find silent shrink).
const CYCLE_COUNT_DAYS: u64 = 30;

pub(crate) struct Cell {
    pub product: u32,
    /// Stock the system believes (what inventory events report).
    pub sys: i32,
    /// Stock physically on the shelf (≤ sys: silent shrink only ever removes).
    pub phys: i32,
    pub on_order: i32,
    pub reorder_point: i32,
    pub order_up_to: i32,
    /// Mean sale lines per ordinary day at the current traffic.
    pub base_lines: f64,
    pub shelf_cents: u32,
    pub promo: Option<(String, f64)>,
    // Today's tallies, for the ground truth.
    pub expected_lines: f64,
    pub demand_units: u32,
    pub sold: u32,
    pub lost: u32,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Delivery {
    at_ms: i64,
    cell: u32,
    quantity: i32,
    po: String,
}

/// Something that happens at an instant; processed in time order within an hour.
pub(crate) enum Happening {
    Basket {
        lines: u32,
    },
    /// One extra line of a demand spike.
    SpikeLine {
        cell: u32,
    },
    Delivery {
        cell: u32,
        quantity: i32,
        po: String,
    },
    Shrink {
        cell: u32,
        quantity: i32,
        reason: InventoryReason,
    },
    /// Stock silently gone (unrecorded theft, misplacement): physical only.
    SilentLoss {
        cell: u32,
        quantity: i32,
    },
    Return {
        cell: u32,
    },
    CycleCount {
        cell: u32,
    },
    Price {
        cell: u32,
        old_cents: u32,
        new_cents: u32,
        reason: PriceChangeReason,
        promotion_id: Option<String>,
    },
    StuckRepeat {
        cell: u32,
        repeats: u32,
        interval_ms: i64,
    },
}

pub(crate) struct DayPlan {
    pub date: NaiveDate,
    /// Local midnight, as UTC milliseconds.
    pub start_ms: i64,
    pub hour_share: [f64; 24],
    pub lines_total: f64,
    pub alias: AliasTable,
    /// Scheduled happenings of the day, sorted by time; `cursor` = next to hand out.
    pub scheduled: Vec<(i64, Happening)>,
    pub cursor: usize,
    /// Share of the day's demand hours actually simulated (a run may start mid-day).
    pub share_simulated: f64,
}

pub(crate) struct StoreSim {
    pub index: usize,
    pub store_id: String,
    pub offset_ms: i64,
    pub rng: Pcg64Mcg,
    seq: u64,
    po_seq: u64,
    pub cells: Vec<Cell>,
    deliveries: BinaryHeap<Reverse<Delivery>>,
    pub day: Option<DayPlan>,
    pub traffic: f64,
    customers: u64,
    pub anomalies: Vec<ActiveAnomaly>,
    pub label_seq: u64,
}

impl StoreSim {
    pub fn new(world: &World, index: usize, traffic: f64) -> StoreSim {
        let seed = world.config.seed;
        let mut rng = Pcg64Mcg::seed_from_u64(hash(&[seed, 0x5704e, index as u64]));
        let lines_per_day = world.lines_per_day(index, traffic);
        let cells = world
            .assortment(index)
            .iter()
            .zip(&world.demand_share[index])
            .map(|(&product, &share)| {
                let mut cell = Cell {
                    product,
                    sys: 0,
                    phys: 0,
                    on_order: 0,
                    reorder_point: 0,
                    order_up_to: 0,
                    base_lines: share as f64 * lines_per_day,
                    shelf_cents: world.product_meta[product as usize].list_price_cents,
                    promo: None,
                    expected_lines: 0.0,
                    demand_units: 0,
                    sold: 0,
                    lost: 0,
                };
                set_policy(world, &mut cell);
                let stock = rng.random_range(cell.reorder_point..=cell.order_up_to);
                cell.sys = stock;
                cell.phys = stock;
                cell
            })
            .collect();
        StoreSim {
            index,
            store_id: world.stores()[index].store_id.clone(),
            offset_ms: world.store_utc_offset_hours(index) as i64 * HOUR_MS,
            rng,
            seq: 0,
            po_seq: 0,
            cells,
            deliveries: BinaryHeap::new(),
            day: None,
            traffic,
            customers: 2_000,
            anomalies: Vec::new(),
            label_seq: 0,
        }
    }

    /// Change the traffic level (events/min while open) at `now_ms`; demand and stock policy
    /// follow. When demand rises, every SKU whose stock position is at or below its new reorder
    /// point gets an expedited order arriving at `now_ms` (a restock event), as a store does
    /// before an expected rush — otherwise stock sized for the old demand would meet the new
    /// one with a wave of stock-outs that says nothing about the store.
    pub fn set_traffic(&mut self, world: &World, traffic: f64, now_ms: i64, truth: &mut Truth) {
        let ratio = traffic / self.traffic;
        self.traffic = traffic;
        for i in 0..self.cells.len() {
            let cell = &mut self.cells[i];
            cell.base_lines *= ratio;
            set_policy(world, cell);
            let position = cell.sys + cell.on_order;
            if ratio <= 1.0 || position > cell.reorder_point {
                continue;
            }
            let quantity = cell.order_quantity(world);
            self.place_order(world, i, quantity, 0.0, now_ms, truth);
        }
        if let Some(day) = &mut self.day {
            day.lines_total *= ratio;
        }
    }

    pub fn next_id(&mut self, seed: u64) -> String {
        self.seq += 1;
        event_id(seed, self.index as u32, self.seq)
    }

    /// Simulate `[hour_start, hour_start + 1h)` (UTC ms), appending events in time order.
    pub fn step_hour(&mut self, world: &World, hour_start: i64, out: &mut Vec<Event>, truth: &mut Truth) {
        let local = hour_start + self.offset_ms;
        let local_hour = local.rem_euclid(DAY_MS) / HOUR_MS;
        let date = local_date(local);
        if self.day.as_ref().map(|d| d.date) != Some(date) {
            if self.day.is_some() {
                self.end_day(world, hour_start - local_hour * HOUR_MS, truth);
            }
            self.start_day(world, date, hour_start - local_hour * HOUR_MS, truth);
        }
        let hour_end = hour_start + HOUR_MS;
        let mut happenings: Vec<(i64, Happening)> = Vec::new();
        while let Some(Reverse(d)) = self.deliveries.peek() {
            if d.at_ms >= hour_end {
                break;
            }
            let Some(Reverse(d)) = self.deliveries.pop() else { break };
            happenings.push((d.at_ms.max(hour_start), Happening::Delivery { cell: d.cell, quantity: d.quantity, po: d.po }));
        }
        let Some(day) = self.day.as_mut() else { return };
        while day.cursor < day.scheduled.len() && day.scheduled[day.cursor].0 < hour_end {
            let (at, h) = std::mem::replace(&mut day.scheduled[day.cursor], (0, Happening::Basket { lines: 0 }));
            happenings.push((at.max(hour_start), h));
            day.cursor += 1;
        }
        let share = day.hour_share[local_hour as usize];
        day.share_simulated += share;
        let mean_lines = day.lines_total * share;
        if mean_lines > 0.0 && !day.alias.is_empty() {
            let mut lines = poisson(&mut self.rng, mean_lines);
            while lines > 0 {
                // Basket size 1 + geometric(0.4): mean 2.5 lines.
                let mut size = 1;
                while size < lines && self.rng.random::<f64>() > 0.4 {
                    size += 1;
                }
                lines -= size;
                let at = hour_start + self.rng.random_range(0..HOUR_MS);
                happenings.push((at, Happening::Basket { lines: size }));
            }
        }
        anomaly::spike_lines(self, hour_start, &mut happenings);
        // Stable: equal times keep their scheduling order; the order is a function of the seed.
        happenings.sort_by_key(|(at, _)| *at);
        for (at, h) in happenings {
            self.process(world, at, h, out);
        }
    }

    fn process(&mut self, world: &World, at: i64, happening: Happening, out: &mut Vec<Event>) {
        let seed = world.config.seed;
        let ts = to_time(at);
        match happening {
            Happening::Basket { lines } => self.basket(world, at, lines, out),
            Happening::SpikeLine { cell } => {
                let basket = self.next_id(seed);
                let quantity = line_quantity(&mut self.rng);
                self.sell(world, at, cell, quantity, &basket, None, PaymentMethod::CreditCard, out);
            }
            Happening::Delivery { cell, quantity, po } => {
                let c = &mut self.cells[cell as usize];
                c.on_order -= quantity;
                c.phys += quantity;
                let id = self.next_id(seed);
                self.stock_event(world, cell, quantity, InventoryReason::Restock, Some(po), ts, id, out);
            }
            Happening::Shrink { cell, quantity, reason } => {
                // Nothing can be damaged or stolen that is not there.
                let q = quantity.min(self.cells[cell as usize].phys);
                if q > 0 {
                    self.cells[cell as usize].phys -= q;
                    let id = self.next_id(seed);
                    self.stock_event(world, cell, -q, reason, None, ts, id, out);
                }
            }
            Happening::SilentLoss { cell, quantity } => {
                let c = &mut self.cells[cell as usize];
                c.phys -= quantity.min(c.phys);
            }
            Happening::Return { cell } => {
                self.cells[cell as usize].phys += 1;
                let id = self.next_id(seed);
                self.stock_event(world, cell, 1, InventoryReason::Return, None, ts, id, out);
            }
            Happening::CycleCount { cell } => {
                let c = &self.cells[cell as usize];
                let diff = c.phys - c.sys;
                if diff != 0 {
                    let id = self.next_id(seed);
                    let reference = Some(format!("COUNT-{}-{}", self.store_id, local_date(at + self.offset_ms).format("%Y%m%d")));
                    // The physical count becomes the system's belief.
                    self.stock_event(world, cell, diff, InventoryReason::CountCorrection, reference, ts, id, out);
                }
            }
            Happening::Price { cell, old_cents, new_cents, reason, promotion_id } => {
                let id = self.next_id(seed);
                out.push(Event::Price(PriceChange {
                    event_type: EventType::PriceChange,
                    schema_version: SCHEMA_VERSION,
                    price_change_id: id,
                    store_id: self.store_id.clone(),
                    product_id: world.products()[self.cells[cell as usize].product as usize].product_id.clone(),
                    old_price: cents(old_cents),
                    new_price: cents(new_cents),
                    reason,
                    promotion_id,
                    timestamp: ts,
                }));
            }
            Happening::StuckRepeat { cell, repeats, interval_ms } => anomaly::stuck_repeats(self, world, at, cell, repeats, interval_ms, out),
        }
    }

    /// An inventory update moving system stock by `change` (physical stock already moved).
    #[allow(clippy::too_many_arguments)]
    fn stock_event(
        &mut self,
        world: &World,
        cell: u32,
        change: i32,
        reason: InventoryReason,
        reference_id: Option<String>,
        timestamp: DateTime<Utc>,
        id: String,
        out: &mut Vec<Event>,
    ) {
        let c = &mut self.cells[cell as usize];
        let previous = c.sys;
        c.sys += change;
        out.push(Event::Inventory(InventoryUpdate {
            event_type: EventType::InventoryUpdate,
            schema_version: SCHEMA_VERSION,
            inventory_id: id,
            store_id: self.store_id.clone(),
            product_id: world.products()[c.product as usize].product_id.clone(),
            quantity_change: change,
            previous_quantity: previous,
            new_quantity: c.sys,
            reason,
            reference_id,
            timestamp,
        }));
    }

    fn basket(&mut self, world: &World, at: i64, lines: u32, out: &mut Vec<Event>) {
        let seed = world.config.seed;
        let ts = to_time(at);
        let basket = self.next_id(seed);
        let payment = payment_method(&mut self.rng);
        let number = |k: u64, index: usize| format!("cust_{}", (index as u64 + 1) * 10_000_000 + k);
        let customer = if self.rng.random::<f64>() < 0.4 {
            let k = self.rng.random_range(0..self.customers);
            let id = number(k, self.index);
            let roll = self.rng.random::<f64>();
            if roll < 0.05 {
                let points = self.rng.random_range(1..=10) * 100;
                self.customer_event(seed, &id, CustomerAction::LoyaltyRedeem, Some(points), ts, out);
            } else if roll < 0.35 {
                self.customer_event(seed, &id, CustomerAction::StoreVisit, None, ts, out);
            }
            Some(id)
        } else if self.rng.random::<f64>() < 0.02 {
            let id = number(self.customers, self.index);
            self.customers += 1;
            self.customer_event(seed, &id, CustomerAction::LoyaltySignup, Some(0), ts, out);
            Some(id)
        } else {
            None
        };
        for _ in 0..lines {
            let Some(day) = self.day.as_ref() else { return };
            if day.alias.is_empty() {
                return;
            }
            let cell = day.alias.sample(&mut self.rng) as u32;
            let quantity = line_quantity(&mut self.rng);
            self.sell(world, at, cell, quantity, &basket, customer.clone(), payment, out);
        }
    }

    fn customer_event(&mut self, seed: u64, customer: &str, action: CustomerAction, points: Option<i32>, ts: DateTime<Utc>, out: &mut Vec<Event>) {
        let id = self.next_id(seed);
        out.push(Event::Customer(CustomerEvent {
            event_type: EventType::CustomerEvent,
            schema_version: SCHEMA_VERSION,
            customer_event_id: id,
            store_id: self.store_id.clone(),
            customer_id: customer.to_string(),
            action,
            loyalty_points: points,
            timestamp: ts,
        }));
    }

    /// A customer wants `quantity` of `cell`: sell what is physically there, record the rest as
    /// a lost sale.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sell(
        &mut self,
        world: &World,
        at: i64,
        cell: u32,
        quantity: i32,
        basket: &str,
        customer_id: Option<String>,
        payment_method: PaymentMethod,
        out: &mut Vec<Event>,
    ) {
        let seed = world.config.seed;
        let c = &mut self.cells[cell as usize];
        c.demand_units += quantity as u32;
        let sold = quantity.min(c.phys);
        c.lost += (quantity - sold) as u32;
        if sold <= 0 {
            return;
        }
        c.sold += sold as u32;
        c.phys -= sold;
        let (mut list_cents, promo) = (c.shelf_cents, c.promo.clone());
        let discount = promo.as_ref().map_or(0.0, |p| p.1);
        if let Some(factor) = anomaly::price_error_factor(&self.anomalies, cell, at) {
            list_cents = ((list_cents as f64 * factor).round() as u32).max(1);
        }
        let unit_cents = ((list_cents as f64 * (1.0 - discount)).round() as u32).max(1);
        let id = self.next_id(seed);
        let ts = to_time(at);
        let product_id = world.products()[self.cells[cell as usize].product as usize].product_id.clone();
        out.push(Event::Sale(SaleTransaction {
            event_type: EventType::Sale,
            schema_version: SCHEMA_VERSION,
            transaction_id: id.clone(),
            basket_id: basket.to_string(),
            store_id: self.store_id.clone(),
            product_id,
            quantity: sold,
            unit_price: cents(unit_cents),
            list_price: cents(list_cents),
            discount_pct: discount,
            promotion_id: promo.map(|p| p.0),
            timestamp: ts,
            customer_id,
            payment_method,
        }));
        let inv = self.next_id(seed);
        self.stock_event(world, cell, -sold, InventoryReason::Sale, Some(id), ts, inv, out);
    }

    /// Local midnight: the demand plan of the day, its price changes, shrink and anomalies.
    fn start_day(&mut self, world: &World, date: NaiveDate, start_ms: i64, truth: &mut Truth) {
        let seed = world.config.seed;
        let store = &world.stores()[self.index];
        let region = world.region_of(self.index);
        let weather = world.weather(world.store_meta[self.index].region, date);
        let weekday = demand::weekday_factor(date);
        let southern = region.southern_hemisphere;
        // Everything but the promotion depends on the category only: compute once per day.
        let category_factor: Vec<f64> = crate::catalog::CATEGORIES
            .iter()
            .map(|c| weekday * demand::season_factor(c.id, date, southern) * demand::holiday_factor(c.id, date) * demand::weather_factor(c.id, weather))
            .collect();
        let mut scheduled: Vec<(i64, Happening)> = Vec::new();
        let mut weights = Vec::with_capacity(self.cells.len());
        let shock = Gamma::new(DEMAND_SHOCK_SHAPE, 1.0 / DEMAND_SHOCK_SHAPE).expect("valid gamma");
        for (i, cell) in self.cells.iter_mut().enumerate() {
            let p = cell.product as usize;
            let meta = &world.product_meta[p];
            let promo = demand::promotion(seed, p, date);
            let had = cell.promo.take();
            let mut shelf = cell.shelf_cents;
            let mut shelf_change = None;
            if demand::price_may_change(seed, p, date) {
                let (new, state) = demand::shelf_price_cents(seed, p, meta, world.slow_seller[p], date);
                if new != shelf {
                    let reason = match state {
                        demand::PriceState::Clearance => PriceChangeReason::Clearance,
                        demand::PriceState::Regular => PriceChangeReason::CostChange,
                    };
                    shelf_change = Some((new, reason));
                }
            }
            let promo_continues = shelf_change.is_none() && matches!((&had, &promo), (Some(a), Some(b)) if a.0 == b.promotion_id);
            // Price events at local midnight, in a fixed order: the old promotion ends, the
            // shelf price is revised, the new promotion starts.
            if !promo_continues {
                if let Some((id, discount)) = &had {
                    let old = promo_price(shelf, *discount);
                    scheduled.push((start_ms + 20_000, price(i, old, shelf, PriceChangeReason::PromotionEnd, Some(id.clone()))));
                }
                if let Some((new, reason)) = shelf_change {
                    scheduled.push((start_ms + 40_000, price(i, shelf, new, reason, None)));
                    shelf = new;
                }
            }
            cell.shelf_cents = shelf;
            cell.promo = match promo {
                // A discount too small to move a tiny price is no promotion.
                Some(pr) if promo_price(shelf, pr.discount_pct) < shelf => {
                    if !promo_continues {
                        let to = promo_price(shelf, pr.discount_pct);
                        scheduled.push((start_ms + 60_000, price(i, shelf, to, PriceChangeReason::Promotion, Some(pr.promotion_id.clone()))));
                    }
                    Some((pr.promotion_id, pr.discount_pct))
                }
                _ => None,
            };
            let uplift = cell.promo.as_ref().map_or(1.0, |(_, d)| (1.0 - d).powf(-demand::PROMO_ELASTICITY));
            cell.expected_lines = cell.base_lines * category_factor[meta.category as usize] * uplift;
            weights.push(cell.expected_lines * shock.sample(&mut self.rng));
        }
        let lines_total: f64 = weights.iter().sum();
        let hour_share = demand::hour_profile(store.opens_hour, store.closes_hour);
        self.schedule_store_operations(world, date, start_ms, &hour_share, &mut scheduled);
        let mut plan = DayPlan { date, start_ms, hour_share, lines_total, alias: AliasTable::new(&weights), scheduled, cursor: 0, share_simulated: 0.0 };
        anomaly::schedule(self, world, &mut plan, truth);
        plan.scheduled.sort_by_key(|(at, _)| *at);
        self.day = Some(plan);
    }

    /// Shrink, returns and cycle counts of a day, at random times in opening hours.
    fn schedule_store_operations(&mut self, world: &World, date: NaiveDate, start_ms: i64, hour_share: &[f64; 24], scheduled: &mut Vec<(i64, Happening)>) {
        let n = self.cells.len();
        if n == 0 {
            return;
        }
        let rng = &mut self.rng;
        let at = |rng: &mut Pcg64Mcg| start_ms + open_hour(rng, hour_share) * HOUR_MS + rng.random_range(0..HOUR_MS);
        for _ in 0..poisson(rng, 0.004 * n as f64) {
            let cell = rng.random_range(0..n) as u32;
            let shelf_life = world.products()[self.cells[cell as usize].product as usize].shelf_life_days.max(1);
            // Perishables are damaged (spoiled) far more often.
            if rng.random::<f64>() < (14.0 / shelf_life as f64).min(1.0) + 0.05 {
                let quantity = rng.random_range(1..=3);
                scheduled.push((at(rng), Happening::Shrink { cell, quantity, reason: InventoryReason::Damage }));
            }
        }
        for _ in 0..poisson(rng, 0.0005 * n as f64) {
            let cell = rng.random_range(0..n) as u32;
            scheduled.push((at(rng), Happening::Shrink { cell, quantity: rng.random_range(1..=2), reason: InventoryReason::Theft }));
        }
        for _ in 0..poisson(rng, 0.001 * n as f64) {
            let cell = rng.random_range(0..n) as u32;
            scheduled.push((at(rng), Happening::SilentLoss { cell, quantity: rng.random_range(1..=2) }));
        }
        let lines: f64 = self.cells.iter().map(|c| c.expected_lines).sum();
        if let Some(day_alias) = (lines > 0.0).then(|| AliasTable::new(&self.cells.iter().map(|c| c.expected_lines).collect::<Vec<_>>())) {
            for _ in 0..poisson(rng, 0.003 * lines) {
                let cell = day_alias.sample(rng) as u32;
                scheduled.push((at(rng), Happening::Return { cell }));
            }
        }
        let day_number = date.num_days_from_ce() as u64;
        for cell in 0..n {
            if (cell as u64 + day_number).is_multiple_of(CYCLE_COUNT_DAYS) {
                scheduled.push((at(rng), Happening::CycleCount { cell: cell as u32 }));
            }
        }
    }

    /// Local midnight ends the day: write its truth and review stock for replenishment.
    fn end_day(&mut self, world: &World, now_ms: i64, truth: &mut Truth) {
        let Some(day) = self.day.take() else { return };
        for i in 0..self.cells.len() {
            let cell = &mut self.cells[i];
            if world.config.demand_truth && (cell.expected_lines > 0.0 || cell.demand_units > 0) {
                truth.demand.push(DemandTruth {
                    date: day.date,
                    store_id: self.store_id.clone(),
                    product_id: world.products()[cell.product as usize].product_id.clone(),
                    expected_units: round3(cell.expected_lines * UNITS_PER_LINE * day.share_simulated),
                    demand_units: cell.demand_units,
                    sold_units: cell.sold,
                    lost_units: cell.lost,
                    on_promotion: cell.promo.is_some(),
                    closing_system_stock: cell.sys,
                    closing_physical_stock: cell.phys,
                });
            }
            cell.demand_units = 0;
            cell.sold = 0;
            cell.lost = 0;
            // Reorder point policy on the system's belief (so phantom stock delays orders).
            let position = cell.sys + cell.on_order;
            if position <= cell.reorder_point {
                let meta = &world.product_meta[cell.product as usize];
                let quantity = cell.order_quantity(world);
                let lead =
                    Normal::new(meta.lead_time_days, meta.lead_time_sd_days.max(0.01)).map(|d| d.sample(&mut self.rng)).unwrap_or(meta.lead_time_days).max(1.0);
                self.place_order(world, i, quantity, lead, now_ms, truth);
            }
        }
        self.anomalies.retain(|a| a.end_ms > now_ms);
    }

    /// Order `quantity` units for cell `i` at `now_ms`, arriving `lead_days` later: the order's
    /// truth record and its scheduled delivery (a restock event when it arrives).
    fn place_order(&mut self, world: &World, i: usize, quantity: i32, lead_days: f64, now_ms: i64, truth: &mut Truth) {
        let arrives = now_ms + (lead_days * DAY_MS as f64) as i64;
        self.po_seq += 1;
        let po = format!("PO-{}-{:07}", self.store_id, self.po_seq);
        let cell = &mut self.cells[i];
        cell.on_order += quantity;
        truth.orders.push(PurchaseOrder {
            po_id: po.clone(),
            store_id: self.store_id.clone(),
            product_id: world.products()[cell.product as usize].product_id.clone(),
            quantity,
            ordered_at: to_time(now_ms),
            lead_time_days: (lead_days * 1000.0).round() / 1000.0,
            arrives_at: to_time(arrives),
        });
        self.deliveries.push(Reverse(Delivery { at_ms: arrives, cell: i as u32, quantity, po }));
    }
}

fn price(cell: usize, old: u32, new: u32, reason: PriceChangeReason, promotion_id: Option<String>) -> Happening {
    Happening::Price { cell: cell as u32, old_cents: old, new_cents: new, reason, promotion_id }
}

fn promo_price(shelf: u32, discount: f64) -> u32 {
    ((shelf as f64 * (1.0 - discount)).round() as u32).max(1)
}

/// Reorder point and order-up-to level from expected demand over the supplier lead time.
impl Cell {
    /// Units to order now: up to the order-up-to level, in whole packs, at least one pack.
    fn order_quantity(&self, world: &World) -> i32 {
        let pack = world.product_meta[self.product as usize].pack_size.max(1);
        let position = self.sys + self.on_order;
        ((self.order_up_to - position + pack - 1) / pack).max(1) * pack
    }
}

fn set_policy(world: &World, cell: &mut Cell) {
    let meta = &world.product_meta[cell.product as usize];
    let daily_units = cell.base_lines * UNITS_PER_LINE;
    let horizon = meta.lead_time_days + 1.0;
    let mean = daily_units * horizon;
    let variance = mean * 1.5 + (daily_units * meta.lead_time_sd_days).powi(2) + daily_units.powi(2) / DEMAND_SHOCK_SHAPE * horizon;
    let pack = meta.pack_size.max(1);
    cell.reorder_point = ((mean + SAFETY_Z * variance.sqrt()).ceil() as i32).max(1);
    let cycle = ((daily_units * 7.0).ceil() as i32).max(pack);
    cell.order_up_to = cell.reorder_point + ((cycle + pack - 1) / pack) * pack;
}

/// Units on one sale line: mostly 1, sometimes a few (mean ≈ 1.3).
pub(crate) fn line_quantity<R: Rng>(rng: &mut R) -> i32 {
    let u = rng.random::<f64>();
    if u < 0.78 {
        1
    } else if u < 0.93 {
        2
    } else if u < 0.98 {
        3
    } else {
        rng.random_range(4..=6)
    }
}

fn payment_method<R: Rng>(rng: &mut R) -> PaymentMethod {
    let u = rng.random::<f64>();
    match u {
        _ if u < 0.40 => PaymentMethod::CreditCard,
        _ if u < 0.70 => PaymentMethod::DebitCard,
        _ if u < 0.85 => PaymentMethod::Cash,
        _ if u < 0.97 => PaymentMethod::Mobile,
        _ => PaymentMethod::GiftCard,
    }
}

/// A local hour drawn from the opening-hours profile.
pub(crate) fn open_hour<R: Rng>(rng: &mut R, hour_share: &[f64; 24]) -> i64 {
    crate::catalog::pick_weighted(rng, hour_share.iter().copied()) as i64
}

pub(crate) fn poisson<R: Rng>(rng: &mut R, mean: f64) -> u32 {
    if mean.is_nan() || mean <= 0.0 {
        return 0;
    }
    Poisson::new(mean).map(|d| d.sample(rng) as u32).unwrap_or(0)
}

pub(crate) fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub(crate) fn local_date(local_ms: i64) -> NaiveDate {
    to_time(local_ms).date_naive()
}

fn cents(c: u32) -> f64 {
    c as f64 / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
