//! The simulated clock over all stores: backfill hour by hour as fast as the machine allows, or
//! real time (the caller asks for the events up to "now" and paces itself).

use crate::engine::{to_time, StoreSim, DAY_MS, HOUR_MS};
use crate::truth::{Truth, WeatherTruth};
use crate::world::World;
use crate::SimError;
use chrono::{DateTime, Duration, Utc};
use retail_core::Event;
use std::collections::VecDeque;
use std::sync::Arc;

pub struct Simulator {
    world: Arc<World>,
    stores: Vec<StoreSim>,
    /// Start of the next hour to generate (UTC ms).
    next_hour_ms: i64,
    /// Generated, not yet handed out (real-time mode hands out part of an hour).
    pending: VecDeque<Event>,
    truth: Truth,
    threads: usize,
}

impl Simulator {
    /// A simulator whose clock starts at `start` (rounded down to the hour). Stock starts
    /// between each SKU's reorder point and order-up-to level.
    pub fn new(world: Arc<World>, start: DateTime<Utc>) -> Result<Simulator, SimError> {
        let ms = start.timestamp_millis();
        if !(946_684_800_000..=4_102_444_800_000).contains(&ms) {
            return Err(SimError::Clock(format!("start {start} must be between 2000 and 2100")));
        }
        let traffic = world.config.traffic_per_store_minute;
        let stores = (0..world.stores().len()).map(|i| StoreSim::new(&world, i, traffic)).collect();
        let threads = world.config.threads;
        Ok(Simulator { world, stores, next_hour_ms: ms.div_euclid(HOUR_MS) * HOUR_MS, pending: VecDeque::new(), truth: Truth::default(), threads })
    }

    pub fn world(&self) -> &Arc<World> {
        &self.world
    }

    /// The simulated time up to which events have been generated (an hour boundary).
    pub fn clock(&self) -> DateTime<Utc> {
        to_time(self.next_hour_ms)
    }

    /// Change traffic (mean events per minute per store while open) from the next generated
    /// hour on; stock policies follow the new demand, and on a rise SKUs below their new reorder
    /// point are restocked at once (expedited orders). E.g. a quiet backfill, then live at 200.
    pub fn set_traffic(&mut self, events_per_store_minute: f64) -> Result<(), SimError> {
        if !(events_per_store_minute > 0.0 && events_per_store_minute <= 100_000.0) {
            return Err(SimError::InvalidConfig(format!("traffic must be in (0, 100000], got {events_per_store_minute}")));
        }
        let world = Arc::clone(&self.world);
        for s in &mut self.stores {
            s.set_traffic(&world, events_per_store_minute, self.next_hour_ms, &mut self.truth);
        }
        Ok(())
    }

    /// All events of the next simulated hour, in time order (plus any not yet handed out by
    /// `events_until`), and advance the clock by an hour.
    pub fn next_hour(&mut self) -> Vec<Event> {
        let mut events: Vec<Event> = self.pending.drain(..).collect();
        events.extend(self.generate_hour());
        events
    }

    /// Every event with a timestamp before `t` not yet handed out, generating hours as needed.
    /// For real time: call with `Utc::now()` every second or so.
    pub fn events_until(&mut self, t: DateTime<Utc>) -> Vec<Event> {
        let t_ms = t.timestamp_millis();
        while self.next_hour_ms <= t_ms {
            let hour = self.generate_hour();
            self.pending.extend(hour);
        }
        let n = self.pending.iter().take_while(|e| e.timestamp().timestamp_millis() < t_ms).count();
        self.pending.drain(..n).collect()
    }

    /// An iterator over the next `days` simulated days, one `Vec<Event>` per hour.
    pub fn backfill(&mut self, days: u32) -> Backfill<'_> {
        Backfill { remaining: days as u64 * 24, sim: self }
    }

    /// Ground truth accumulated since the last call.
    pub fn take_truth(&mut self) -> Truth {
        std::mem::take(&mut self.truth)
    }

    fn generate_hour(&mut self) -> Vec<Event> {
        let hour = self.next_hour_ms;
        self.next_hour_ms += HOUR_MS;
        if hour.rem_euclid(DAY_MS) == 0 {
            let date = to_time(hour).date_naive();
            for (i, r) in self.world.regions().iter().enumerate() {
                let w = self.world.weather(i, date);
                self.truth.weather.push(WeatherTruth { date, region: r.name.to_string(), temp_c: w.temp_c, rain_mm: w.rain_mm });
            }
        }
        let world = &*self.world;
        let threads = self.threads.min(self.stores.len()).max(1);
        let chunk = self.stores.len().div_ceil(threads);
        let parts: Vec<(Vec<Event>, Truth)> = if threads == 1 {
            vec![step_all(world, &mut self.stores, hour)]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = self.stores.chunks_mut(chunk).map(|stores| scope.spawn(move || step_all(world, stores, hour))).collect();
                // A panicking worker is a bug; re-raise it rather than lose its stores' hour.
                handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
            })
        };
        let mut events = Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum());
        for (mut e, t) in parts {
            events.append(&mut e);
            self.truth.append(t);
        }
        // Stores in index order, then a stable sort: the order depends only on the seed.
        events.sort_by_key(|e| e.timestamp());
        events
    }
}

fn step_all(world: &World, stores: &mut [StoreSim], hour: i64) -> (Vec<Event>, Truth) {
    let mut events = Vec::new();
    let mut truth = Truth::default();
    for s in stores {
        s.step_hour(world, hour, &mut events, &mut truth);
    }
    (events, truth)
}

/// Hours of a backfill; see [`Simulator::backfill`].
pub struct Backfill<'a> {
    sim: &'a mut Simulator,
    remaining: u64,
}

impl Backfill<'_> {
    /// Hours left.
    pub fn remaining_hours(&self) -> u64 {
        self.remaining
    }

    pub fn simulator(&mut self) -> &mut Simulator {
        self.sim
    }
}

impl Iterator for Backfill<'_> {
    type Item = Vec<Event>;

    fn next(&mut self) -> Option<Vec<Event>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        Some(self.sim.next_hour())
    }
}

/// The backfill start that ends at the current hour: `days` before now, on an hour boundary.
pub fn backfill_start(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let ms = now.timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS;
    to_time(ms) - Duration::days(days as i64)
}
