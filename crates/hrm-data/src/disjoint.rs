//! Keeping test splits apart from training splits: a set of fingerprints of every training
//! input (original and augmented), which generated test puzzles are checked against.
//!
//! No reference counterpart: the reference builds Sudoku and Maze test sets from separate CSV
//! files and never compares them with the training inputs.
//!
//! A fingerprint is a fixed 64-bit hash of the input's tokens (the same on every run and
//! platform, so builds stay deterministic). Membership can only err one way: a test input equal
//! to a training input always has the same fingerprint, so it is always caught; an input that
//! merely shares a fingerprint with some training input (about one chance in 2^64 / N for N
//! training inputs, i.e. about 5e-14 per test puzzle for a million) is rejected too, which
//! costs one redraw and nothing else.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// The fingerprint of a token sequence: a multiply-xorshift hash over 8-byte words, with the
/// length mixed in and SplitMix64's finaliser at the end.
pub(crate) fn fingerprint(tokens: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (tokens.len() as u64).wrapping_mul(K) ^ 0x2545_F491_4F6C_DD1D;
    let mut chunks = tokens.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(K);
        h ^= h >> 29;
    }
    let mut last = [0u8; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(last)).wrapping_mul(K);
    // SplitMix64's finaliser.
    h ^= h >> 30;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// Passes a `u64` key through unchanged: fingerprints are already well mixed.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for fingerprints; fold anything else in anyway.
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The fingerprints of a split's inputs.
#[derive(Default)]
pub(crate) struct InputSet {
    set: HashSet<u64, BuildHasherDefault<IdentityHasher>>,
}

impl InputSet {
    /// An empty set with room for `n` inputs.
    pub fn with_capacity(n: usize) -> InputSet {
        InputSet {
            set: HashSet::with_capacity_and_hasher(n, Default::default()),
        }
    }

    /// Adds an input by its fingerprint.
    pub fn insert_fingerprint(&mut self, f: u64) {
        self.set.insert(f);
    }

    /// Whether `tokens` is (or, with a chance of about 2^-64 per element, collides with) an
    /// input of the set.
    pub fn contains(&self, tokens: &[u8]) -> bool {
        self.set.contains(&fingerprint(tokens))
    }

    /// Distinct fingerprints held.
    pub fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_fixed_and_tell_inputs_apart() {
        // Fixed values on every platform: a change of the hash could change which test
        // puzzles a build rejects, and so the bytes a seed gives.
        let a: Vec<u8> = (0..81).map(|i| (i % 10) as u8).collect();
        assert_eq!(fingerprint(&a), 14_900_627_240_828_213_580);
        assert_eq!(fingerprint(&[]), 11_800_389_442_521_598_120);
        let mut b = a.clone();
        b[80] = 9;
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a[..80]), fingerprint(&a));
        // A trailing zero is not the same as a shorter input.
        assert_ne!(fingerprint(&[1, 2]), fingerprint(&[1, 2, 0]));
        let mut set = InputSet::with_capacity(2);
        set.insert_fingerprint(fingerprint(&a));
        assert!(set.contains(&a) && !set.contains(&b));
        assert_eq!(set.len(), 1);
        // Many distinct short inputs get distinct fingerprints.
        let all: HashSet<u64> = (0..100_000u32)
            .map(|i| fingerprint(&i.to_le_bytes()))
            .collect();
        assert_eq!(all.len(), 100_000);
    }
}
