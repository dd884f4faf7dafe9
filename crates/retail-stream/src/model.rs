//! Small pieces of the processor's state and the stock/risk arithmetic, kept free of I/O and of
//! the processor's bookkeeping so they can be tested (and documented) on their own.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// A 64-bit FNV-1a hash: how partitions checkpointed before `IdHash::Words` existed hash ids
/// (see `IdHash`). One multiply per byte: ≈ 150 cycles for a UUID.
pub fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A 64-bit hash of eight bytes at a time (multiply–rotate per word, then murmur3's finaliser),
/// ≈ 5× faster than `fnv64` on a UUID. Defined here rather than taken from a crate: its values
/// are stored in checkpoints, so they must never change with a dependency's version.
pub fn word_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(29);
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for w in words.by_ref() {
        h = mix(h, u64::from_le_bytes(w.try_into().expect("chunks of 8")));
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut last = [0u8; 8];
        last[..tail.len()].copy_from_slice(tail);
        h = mix(h, u64::from_le_bytes(last));
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// How a partition hashes event ids (dedup) and customer ids (distinct counts, stuck-POS
/// signatures). The hashes are stored in its checkpoint, so a partition restored from one keeps
/// the hash they were made with (`PartSnapshot::format` says which); new partitions use `Words`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdHash {
    /// Checkpoint format 1.
    Fnv1a,
    /// Checkpoint format 2.
    #[default]
    Words,
}

impl IdHash {
    #[inline]
    pub fn hash(self, bytes: &[u8]) -> u64 {
        match self {
            IdHash::Fnv1a => fnv64(bytes),
            IdHash::Words => word_hash(bytes),
        }
    }

    /// The checkpoint format of a partition hashing ids this way.
    pub fn format(self) -> u32 {
        match self {
            IdHash::Fnv1a => 1,
            IdHash::Words => 2,
        }
    }

    /// The hash of a checkpoint format; `None` for a format this build does not know.
    pub fn of_format(format: u32) -> Option<IdHash> {
        match format {
            1 => Some(IdHash::Fnv1a),
            2 => Some(IdHash::Words),
            _ => None,
        }
    }
}

/// Hasher for maps whose keys are already well-mixed integers (interned ids, FNV hashes):
/// SipHash would cost more than the rest of the lookup.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);
impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // One multiply spreads sequential interned ids over the table's high bits.
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8)) ^ *b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
    fn write_u32(&mut self, n: u32) {
        self.0 ^= n as u64;
    }
    fn write_i64(&mut self, n: i64) {
        self.0 ^= n as u64;
    }
}
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A store×product, as two interned ids packed in one integer.
pub type Key = u64;

/// The key of an interned store and product.
pub fn pack_key(store: u32, product: u32) -> Key {
    ((store as u64) << 32) | product as u64
}

/// Interns store and product ids so per-event state lookups hash one integer, and the strings
/// exist once however many windows and rows refer to them. Ids are process-local (checkpoints
/// store names), so a fast unkeyed-quality hash is enough: SipHash was the processor's
/// single largest hashing cost.
#[derive(Default)]
pub struct Interner {
    ids: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    names: Vec<Arc<str>>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(Arc::from(s));
        self.ids.insert(s.into(), id);
        id
    }
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
    pub fn key(&mut self, store: &str, product: &str) -> Key {
        pack_key(self.intern(store), self.intern(product))
    }
    pub fn store_of(&self, key: Key) -> &str {
        self.name((key >> 32) as u32)
    }
    pub fn product_of(&self, key: Key) -> &str {
        self.name(key as u32)
    }
}

/// One open 5-minute window of one store×SKU.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct WindowAgg {
    pub units: i64,
    pub revenue: f64,
    pub transactions: i64,
    /// Sorted FNV hashes of the customer ids seen; windows of one SKU in one store are small,
    /// so a sorted vector beats a hash set in memory and speed. The first two live inline: most
    /// windows see one or two shoppers, and a heap vector cost an allocation (and a cache miss
    /// on each update) per window. Serialised as a sequence, as the `Vec` before it was.
    pub customers: smallvec::SmallVec<[u64; 2]>,
    /// Where this window's row waits for the next flush: `PartState::dirty_windows[slot]`, valid
    /// while `epoch` is the partition's current flush epoch (0: never dirty).
    #[serde(skip)]
    pub dirty: DirtySlot,
}

/// A place in a partition's list of rows changed since the last flush, stamped with the flush
/// epoch it was taken in: a flush starts a new epoch instead of clearing every changed entry's
/// flag, so it never revisits the entries themselves (one cache miss each, in maps of ~10⁵).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DirtySlot {
    pub epoch: u32,
    pub slot: u32,
}

impl DirtySlot {
    /// Put the entry's `row` in `pending`: over its row of this `epoch` if it has one there,
    /// else at the end (and remember where). `same` recognises the entry's own row, which also
    /// covers an epoch counter that wrapped around (after 4·10⁹ flushes) onto a stale stamp.
    pub fn record<R>(&mut self, pending: &mut Vec<R>, epoch: u32, row: R, same: impl Fn(&R) -> bool) {
        if self.epoch == epoch {
            if let Some(mine) = pending.get_mut(self.slot as usize).filter(|p| same(p)) {
                *mine = row;
                return;
            }
        }
        *self = DirtySlot { epoch, slot: pending.len() as u32 };
        pending.push(row);
    }
}

impl WindowAgg {
    /// One sale line; `customer` is the customer id's hash (`IdHash`), if the shopper is known.
    pub fn add(&mut self, quantity: i32, unit_price: f64, customer: Option<u64>) {
        self.units += quantity as i64;
        self.revenue += quantity as f64 * unit_price;
        self.transactions += 1;
        if let Some(h) = customer {
            if let Err(pos) = self.customers.binary_search(&h) {
                self.customers.insert(pos, h);
            }
        }
    }
    pub fn avg_price(&self) -> f64 {
        avg_price(self.revenue, self.units)
    }
}

/// Revenue per unit, to the cent (0 for no units).
pub fn avg_price(revenue: f64, units: i64) -> f64 {
    if units == 0 {
        0.0
    } else {
        round2(revenue / units as f64)
    }
}

pub fn round2(x: f64) -> f64 {
    round(x * 100.0) / 100.0
}

/// `x.round()` (half away from zero), exactly, without the libm call the baseline x86-64
/// target compiles it to (three per sale: ≈ 1.7 % of the stream's CPU). Adding the largest
/// double below ½ and truncating is LLVM's own expansion where the CPU has the instruction;
/// from 2^52 on every double is already whole.
#[inline]
pub fn round(x: f64) -> f64 {
    if x.abs() < 4_503_599_627_370_496.0 {
        let whole = (x + 0.499_999_999_999_999_94_f64.copysign(x)) as i64 as f64;
        // Keeps the sign of a zero (`(-0.3).round()` is −0).
        whole.copysign(x)
    } else {
        x
    }
}

/// A running "normal" of a SKU's quantities or prices: exponentially weighted mean and mean
/// absolute deviation. Robust enough for flagging and O(1) per event; the MAD floor keeps a SKU
/// that always sells exactly 1 unit from flagging a 2.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Norm {
    pub n: u32,
    pub mean: f64,
    pub mad: f64,
}

impl Norm {
    const ALPHA: f64 = 0.05;

    /// The deviation score of `x` against the norm before `x` is folded in (None while the norm
    /// is still being learnt).
    pub fn score_then_update(&mut self, x: f64, min_samples: u32, floor: f64) -> Option<f64> {
        let score = (self.n >= min_samples).then(|| (x - self.mean).abs() / self.mad.max(floor));
        if self.n == 0 {
            self.mean = x;
        } else {
            let d = (x - self.mean).abs();
            self.mean += Self::ALPHA * (x - self.mean);
            self.mad += Self::ALPHA * (d - self.mad);
        }
        self.n = self.n.saturating_add(1);
        score
    }
}

/// The standard normal CDF, from the complementary error function (Numerical Recipes' erfc
/// Chebyshev fit, |error| < 1.2e-7 — far below what a risk score needs).
pub fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06 + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    0.5 * erfc
}

/// Demand over the supplier lead time of an order placed now, as mean and standard deviation.
///
/// Hourly demand has mean `v` and variance `var_h`; the lead time is `L ~ N(lead, lead_sd)` days.
/// Over `24·L` independent hours the demand D has
///   E[D] = 24·lead·v,   Var[D] = 24·lead·var_h + (24·v)²·lead_sd²
/// (the usual random-sum formula behind a reorder point).
pub fn lead_time_demand(v: f64, var_h: f64, lead_days: f64, lead_sd_days: f64) -> (f64, f64) {
    let hours = 24.0 * lead_days.max(0.0);
    let mean = v * hours;
    let var = hours * var_h.max(0.0) + (24.0 * v).powi(2) * lead_sd_days.max(0.0).powi(2);
    (mean, var.sqrt())
}

/// **Stock-out risk**: the probability that demand during the lead time of an order placed now
/// exceeds the stock on hand, i.e. that the shelf runs empty before a delivery ordered now can
/// arrive. Demand is taken as normal (with a continuity correction for whole units).
/// 1 when nothing is on hand; 0 when there is stock and no demand at all.
pub fn stockout_risk(on_hand: i32, mean: f64, sd: f64) -> f64 {
    if on_hand <= 0 {
        return 1.0;
    }
    if sd < 1e-9 {
        return if mean > on_hand as f64 { 1.0 } else { 0.0 };
    }
    let z = (on_hand as f64 + 0.5 - mean) / sd;
    (1.0 - normal_cdf(z)).clamp(0.0, 1.0)
}

/// Days the stock lasts at the current velocity (999 when nothing sells).
pub fn days_of_cover(on_hand: i32, velocity_per_hour: f64) -> f64 {
    if on_hand <= 0 {
        0.0
    } else if velocity_per_hour <= 1e-9 {
        999.0
    } else {
        round2((on_hand as f64 / (velocity_per_hour * 24.0)).min(999.0))
    }
}

#[cfg(test)]
mod round_tests {
    #[test]
    fn round_is_f64_round() {
        let mut cases = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            0.49999999999999994,
            -0.49999999999999994,
            0.3,
            -0.3,
            1e15 + 0.5,
            4.5e15,
            -4.5e15,
            9.1e18,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            123_456.785,
            2f64.powi(52) - 0.5,
            2f64.powi(51) + 0.5,
        ];
        // A spread of magnitudes and fractions, money-like and not.
        let mut x = 1e-3;
        while x < 1e17 {
            for f in [0.0, 0.25, 0.5, 0.75, 0.125, 0.999] {
                cases.push(x + f);
                cases.push(-(x + f));
                cases.push(x * 100.0 + f);
            }
            x *= 1.37;
        }
        for c in cases {
            let (got, want) = (super::round(c), c.round());
            assert_eq!(got.to_bits(), want.to_bits(), "round({c:e}) = {got:e}, want {want:e}");
        }
        assert!(super::round(f64::NAN).is_nan());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed by an independent implementation (Python) of the definition in the docs.
    const WORD_HASH_OF_ID_1: u64 = 0x5723_8792_438f_b70f;

    #[test]
    fn window_aggregates_keep_their_checkpoint_format() {
        // Checkpoints written while the customers were a `Vec` must still restore.
        #[derive(Serialize, Deserialize)]
        struct Before {
            units: i64,
            revenue: f64,
            transactions: i64,
            customers: Vec<u64>,
        }
        for customers in [vec![], vec![7], vec![1, 2], vec![1, 2, 3, u64::MAX]] {
            let before = Before { units: 3, revenue: 7.5, transactions: 2, customers: customers.clone() };
            let bytes = postcard::to_allocvec(&before).unwrap();
            let now: WindowAgg = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(now.customers.as_slice(), customers.as_slice());
            assert_eq!((now.units, now.transactions, now.revenue), (3, 2, 7.5));
            assert_eq!(postcard::to_allocvec(&now).unwrap(), bytes);
        }
    }

    #[test]
    fn id_hashes_keep_their_values_and_formats() {
        // Stored in checkpoints: a change of either function would break dedup across restarts.
        assert_eq!(fnv64(b"00000000-0000-4000-8000-000000000001"), 0xd907_52fc_7c28_d6a2);
        assert_eq!(word_hash(b"00000000-0000-4000-8000-000000000001"), WORD_HASH_OF_ID_1);
        assert_eq!(word_hash(b""), word_hash(b""));
        assert_ne!(word_hash(b""), word_hash(b"\0"), "the length is part of the hash");
        for h in [IdHash::Fnv1a, IdHash::Words] {
            assert_eq!(IdHash::of_format(h.format()), Some(h));
        }
        assert_eq!(IdHash::of_format(0), None);
        assert_eq!(IdHash::of_format(3), None);
        assert_eq!(IdHash::default(), IdHash::Words);
    }

    #[test]
    fn word_hash_does_not_collide_on_ids_that_differ_in_a_few_digits() {
        // Ids as producers make them: counters and UUIDs that differ in one or two places.
        let mut seen = std::collections::HashSet::new();
        for n in 0..1_000_000u64 {
            assert!(seen.insert(word_hash(format!("00000000-0000-4000-8000-{n:012}").as_bytes())), "collision at {n}");
            assert!(seen.insert(word_hash(format!("cust_{n}").as_bytes())), "collision at cust_{n}");
        }
        // Every bit of the output flips for about half of the one-bit input changes.
        let base = b"00000000-0000-4000-8000-000000000001".to_vec();
        let mut flips = [0u32; 64];
        for i in 0..base.len() * 8 {
            let mut v = base.clone();
            v[i / 8] ^= 1 << (i % 8);
            let d = word_hash(&base) ^ word_hash(&v);
            for (b, f) in flips.iter_mut().enumerate() {
                *f += (d >> b & 1) as u32;
            }
        }
        let n = (base.len() * 8) as u32;
        assert!(flips.iter().all(|&f| f > n / 4 && f < n * 3 / 4), "{flips:?} of {n}");
    }

    #[test]
    fn normal_cdf_matches_table_values() {
        for (z, p) in [(0.0, 0.5), (1.0, 0.841_344_7), (-1.645, 0.049_984_9), (2.326, 0.989_990_7), (-3.0, 0.001_349_9)] {
            assert!((normal_cdf(z) - p).abs() < 1e-6, "Φ({z}) = {} ≠ {p}", normal_cdf(z));
        }
    }

    #[test]
    fn risk_is_a_probability_with_the_documented_edges() {
        assert_eq!(stockout_risk(0, 0.0, 0.0), 1.0);
        assert_eq!(stockout_risk(-4, 10.0, 3.0), 1.0);
        assert_eq!(stockout_risk(5, 0.0, 0.0), 0.0);
        assert_eq!(stockout_risk(5, 6.0, 0.0), 1.0);
        // Half-way: stock equals expected demand (minus the continuity half unit) → ~0.5.
        let r = stockout_risk(100, 100.5, 10.0);
        assert!((r - 0.5).abs() < 1e-6, "{r}");
        // More stock → less risk, monotonically.
        let rs: Vec<f64> = (0..10).map(|k| stockout_risk(50 + 10 * k, 100.0, 20.0)).collect();
        assert!(rs.windows(2).all(|w| w[0] > w[1]), "{rs:?}");
    }

    #[test]
    fn lead_time_demand_combines_both_variances() {
        let (m, sd) = lead_time_demand(2.0, 4.0, 3.0, 1.0);
        assert_eq!(m, 144.0);
        // 72·4 + 48²·1 = 288 + 2304 = 2592
        assert!((sd - 2592f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn norm_learns_then_scores() {
        let mut n = Norm::default();
        for _ in 0..40 {
            assert!(n.score_then_update(2.0, 30, 0.5).is_none() || n.n >= 30);
        }
        assert!(n.score_then_update(2.0, 30, 0.5).unwrap() < 1.0);
        assert!(n.score_then_update(40.0, 30, 0.5).unwrap() > 50.0);
    }
}
