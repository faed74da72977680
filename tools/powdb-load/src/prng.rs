//! SplitMix64, written here rather than taken from a crate so a seed picks
//! the same sequence of choices whatever crate versions the lock file moves
//! to (the same generator as tools/powdb-fixture).

pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed)
    }

    /// The generator for worker `index` of a run seeded `seed`: independent
    /// streams, each fixed by the run's seed.
    pub fn for_worker(seed: u64, index: u64) -> Prng {
        let mut mix = Prng::new(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Prng::new(mix.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias does not matter here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[cfg(test)]
mod tests {
    use super::Prng;

    #[test]
    fn splitmix64_reference_values() {
        let mut r = Prng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn worker_streams_differ_and_repeat() {
        let a: Vec<u64> = (0..3).map(|i| Prng::for_worker(7, i).next_u64()).collect();
        let b: Vec<u64> = (0..3).map(|i| Prng::for_worker(7, i).next_u64()).collect();
        assert_eq!(a, b);
        assert!(a[0] != a[1] && a[1] != a[2]);
    }
}
