//! An open-addressing hash table keyed by row hashes (already uniformly mixed), for the
//! embedded warehouse's per-row indexes: the fact tables' id sets and the keyed tables' winners.
//!
//! These grow to hundreds of thousands of keys, so each lookup of a new batch's row is a cache
//! miss. Knowing a batch's keys in advance, the caller prefetches the slot of the key a few rows
//! ahead (`prefetch`) so the misses overlap instead of queueing; and the table is grown for the
//! whole batch before it starts (`reserve`), so no rehash happens mid-batch. Linear probing on
//! the key's low bits; key 0 marks an empty slot, and the (rare) key 0 itself lives aside.

/// A key that is a good hash of itself.
pub trait SlotKey: Copy + Eq {
    const EMPTY: Self;
    fn bits(self) -> usize;
}

impl SlotKey for u64 {
    const EMPTY: u64 = 0;
    #[inline(always)]
    fn bits(self) -> usize {
        self as usize
    }
}

impl SlotKey for u128 {
    const EMPTY: u128 = 0;
    #[inline(always)]
    fn bits(self) -> usize {
        ((self as u64) ^ ((self >> 64) as u64)) as usize
    }
}

pub struct HashTable<K, V> {
    slots: Vec<(K, V)>,
    len: usize,
    zero: Option<V>,
}

impl<K: SlotKey, V: Copy + Default> Default for HashTable<K, V> {
    fn default() -> Self {
        HashTable { slots: Vec::new(), len: 0, zero: None }
    }
}

impl<K: SlotKey, V: Copy + Default> HashTable<K, V> {
    pub fn len(&self) -> usize {
        self.len + self.zero.is_some() as usize
    }

    /// Room for `additional` more keys without growing (load stays ≤ 3/4).
    pub fn reserve(&mut self, additional: usize) {
        let need = self.len + additional;
        if need * 4 <= self.slots.len() * 3 {
            return;
        }
        let cap = (need * 4 / 3 + 1).next_power_of_two().max(16);
        // Written, not `vec![EMPTY; cap]`: that is calloc, whose fresh pages map the shared zero
        // page on the first probe (a read) and are copied on the first insert, a second fault
        // with a TLB flush on every core, per page.
        let mut slots = Vec::with_capacity(cap);
        slots.resize(cap, (K::EMPTY, V::default()));
        let old = std::mem::replace(&mut self.slots, slots);
        let mask = cap - 1;
        for (k, v) in old {
            if k != K::EMPTY {
                let mut i = k.bits() & mask;
                while self.slots[i].0 != K::EMPTY {
                    i = (i + 1) & mask;
                }
                self.slots[i] = (k, v);
            }
        }
    }

    /// Start loading the slot where `k` would be found.
    #[inline(always)]
    pub fn prefetch(&self, k: K) {
        if self.slots.is_empty() {
            return;
        }
        let p = &self.slots[k.bits() & (self.slots.len() - 1)] as *const (K, V);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint that never faults; `p` points into `slots` anyway.
        #[allow(unused_unsafe)]
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }

    /// The value of `k` if present; otherwise `v` is inserted and `None` returned.
    #[inline]
    pub fn get_or_insert(&mut self, k: K, v: V) -> Option<&mut V> {
        if k == K::EMPTY {
            return match self.zero {
                Some(ref mut old) => Some(old),
                None => {
                    self.zero = Some(v);
                    None
                }
            };
        }
        self.reserve(1);
        let mask = self.slots.len() - 1;
        let mut i = k.bits() & mask;
        loop {
            let slot_key = self.slots[i].0;
            if slot_key == k {
                return Some(&mut self.slots[i].1);
            }
            if slot_key == K::EMPTY {
                self.slots[i] = (k, v);
                self.len += 1;
                return None;
            }
            i = (i + 1) & mask;
        }
    }
}

/// How many rows ahead a batch's lookups prefetch.
pub const PREFETCH_AHEAD: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn behaves_like_a_map_including_key_zero_and_growth() {
        let mut t: HashTable<u64, u32> = HashTable::default();
        let mut m: HashMap<u64, u32> = HashMap::new();
        let mut x = 1u64;
        for i in 0..100_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Repeats, key 0, and keys colliding on their low bits.
            let k = match i % 5 {
                0 => (x % 1_000) << 40,
                1 => 0,
                _ => x % 50_000,
            };
            if i % 1000 == 0 {
                t.reserve(i as usize % 7_000);
            }
            t.prefetch(k);
            let got = t.get_or_insert(k, i).map(|v| *v);
            assert_eq!(got, m.get(&k).copied(), "key {k}");
            m.entry(k).or_insert(i);
            if let Some(v) = t.get_or_insert(k, 0) {
                *v = v.wrapping_add(0);
            }
        }
        assert_eq!(t.len(), m.len());
        let mut w: HashTable<u128, (i64, u64)> = HashTable::default();
        assert!(w.get_or_insert(1u128 << 100, (1, 2)).is_none());
        assert_eq!(w.get_or_insert(1u128 << 100, (0, 0)).copied(), Some((1, 2)));
        assert!(w.get_or_insert(1, (3, 4)).is_none());
        assert_eq!(w.len(), 2);
    }
}
