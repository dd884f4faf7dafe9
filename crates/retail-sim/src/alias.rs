//! Walker/Vose alias table: O(1) draws from a discrete distribution, O(n) to build. Used to pick
//! which SKU each sale line is for, among a store's whole assortment.

use rand::Rng;

#[derive(Clone, Debug, Default)]
pub struct AliasTable {
    prob: Vec<f32>,
    alias: Vec<u32>,
}

impl AliasTable {
    /// Weights need not be normalised; non-finite or negative weights count as 0.
    /// Returns an empty table when every weight is 0.
    pub fn new(weights: &[f64]) -> AliasTable {
        let n = weights.len();
        let clean = |w: f64| if w.is_finite() && w > 0.0 { w } else { 0.0 };
        let total: f64 = weights.iter().map(|w| clean(*w)).sum();
        if n == 0 || total <= 0.0 {
            return AliasTable::default();
        }
        let mut scaled: Vec<f64> = weights.iter().map(|w| clean(*w) * n as f64 / total).collect();
        let mut prob = vec![0f32; n];
        let mut alias = vec![0u32; n];
        let (mut small, mut large): (Vec<u32>, Vec<u32>) = (0..n as u32).partition(|&i| scaled[i as usize] < 1.0);
        // Check both before popping: a small index popped with no large partner would be lost.
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            prob[s as usize] = scaled[s as usize] as f32;
            alias[s as usize] = l;
            scaled[l as usize] -= 1.0 - scaled[s as usize];
            if scaled[l as usize] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        for i in large.into_iter().chain(small) {
            prob[i as usize] = 1.0;
            alias[i as usize] = i;
        }
        AliasTable { prob, alias }
    }

    pub fn is_empty(&self) -> bool {
        self.prob.is_empty()
    }

    /// An index drawn with probability proportional to its weight. The table must not be empty.
    #[inline]
    pub fn sample<R: Rng>(&self, rng: &mut R) -> usize {
        let i = rng.random_range(0..self.prob.len());
        if rng.random::<f32>() < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn draws_follow_the_weights() {
        let weights = [1.0, 0.0, 3.0, 6.0];
        let table = AliasTable::new(&weights);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
        let mut counts = [0usize; 4];
        for _ in 0..100_000 {
            counts[table.sample(&mut rng)] += 1;
        }
        assert_eq!(counts[1], 0);
        for (c, w) in counts.iter().zip(weights) {
            assert!((*c as f64 / 100_000.0 - w / 10.0).abs() < 0.01, "{counts:?}");
        }
    }

    #[test]
    fn all_zero_weights_give_an_empty_table() {
        assert!(AliasTable::new(&[0.0, f64::NAN]).is_empty());
    }
}
