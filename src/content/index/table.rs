//! The open-addressed table that finds a file id by the hash of its path.
//!
//! Why not `hashbrown`: its control bytes and its slots are two arrays, so a
//! probe of a large table costs two cache misses before the first id is known.
//! Here one `u64` slot holds a 32-bit fingerprint of the hash beside the id:
//! a probe reads one cache line of slots (eight of them) and yields an id only
//! when its fingerprint matches. A matching fingerprint is not a match: the
//! caller still compares full paths, so a collision costs time, never a
//! wrong answer.
//!
//! Linear probing at a load of at most 2/3: a hit reads two slots on
//! average, a miss about five, almost always within one line. The table is
//! filled once and never changes; there is no removal.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;

pub(super) struct Table {
    /// `fingerprint << 32 | (id + 1)`: 0 is an empty slot, and ids run up to
    /// `u32::MAX - 1` (the builder refuses more files).
    slots: Box<[u64]>,
    hasher: DefaultHashBuilder,
}

impl Table {
    /// A table with room for `files` ids; at least one slot always stays empty,
    /// so every probe ends.
    pub(super) fn with_capacity(files: usize) -> Table {
        let len = files.saturating_add(files / 2).saturating_add(1);
        Table {
            slots: vec![0; len].into_boxed_slice(),
            hasher: DefaultHashBuilder::default(),
        }
    }

    pub(super) fn hash(&self, path: &str) -> u64 {
        self.hasher.hash_one(path)
    }

    /// Adds `id` under `hash`. Ids must be distinct; the caller sizes the
    /// table for all of them (an insert into a full table is ignored rather
    /// than loop forever).
    pub(super) fn insert(&mut self, hash: u64, id: u32) {
        let Some(entry) = id.checked_add(1) else {
            return;
        };
        let slot = fingerprint(hash) << 32 | u64::from(entry);
        let len = self.slots.len();
        let mut i = self.home(hash);
        for _ in 0..len.saturating_sub(1) {
            if let Some(s) = self.slots.get_mut(i) {
                if *s == 0 {
                    *s = slot;
                    return;
                }
            }
            i = if i + 1 == len { 0 } else { i + 1 };
        }
    }

    /// The ids stored under a hash with this fingerprint, in probe order,
    /// up to the first empty slot. Usually one, or none for a missing path.
    pub(super) fn candidates(&self, hash: u64) -> Candidates<'_> {
        Candidates {
            slots: &self.slots,
            at: self.home(hash),
            fingerprint: fingerprint(hash),
            left: self.slots.len(),
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u64>()
    }

    /// The first slot to probe: the high bits of the hash scaled to the
    /// table's length (any length, not only powers of two), while the
    /// fingerprint is the low bits.
    fn home(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.slots.len() as u128) >> 64) as usize
    }
}

fn fingerprint(hash: u64) -> u64 {
    hash & 0xffff_ffff
}

/// See [`Table::candidates`].
pub(super) struct Candidates<'a> {
    slots: &'a [u64],
    at: usize,
    fingerprint: u64,
    /// Slots not yet read: bounds the probe even if no slot were empty.
    left: usize,
}

impl Iterator for Candidates<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        while self.left > 0 {
            let slot = *self.slots.get(self.at)?;
            if slot == 0 {
                return None;
            }
            self.left -= 1;
            self.at = if self.at + 1 == self.slots.len() {
                0
            } else {
                self.at + 1
            };
            if slot >> 32 == self.fingerprint {
                return Some((slot as u32).wrapping_sub(1));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_id_under_its_hash() {
        let mut t = Table::with_capacity(1000);
        for id in 0..1000u32 {
            t.insert(t.hash(&format!("f{id}")), id);
        }
        for id in 0..1000u32 {
            let h = t.hash(&format!("f{id}"));
            assert!(t.candidates(h).any(|c| c == id), "{id}");
        }
        // A path never inserted finds no candidate, but for a fingerprint
        // twin (about one chance in a million here).
        let twins = (0..1000)
            .filter(|k| t.candidates(t.hash(&format!("g{k}"))).next().is_some())
            .count();
        assert!(twins <= 1, "{twins} fingerprint twins in 1000");
    }

    #[test]
    fn equal_fingerprints_give_every_id_in_probe_order() {
        // Hashes chosen by hand: same fingerprint (low bits), same home slot.
        let mut t = Table::with_capacity(8);
        let h = 0x0123_0000_0000_00ab;
        for id in [5, 2, 7] {
            t.insert(h, id);
        }
        assert_eq!(t.candidates(h).collect::<Vec<_>>(), [5, 2, 7]);
        // Same home, another fingerprint: none of them.
        assert_eq!(t.candidates(h ^ 1).count(), 0);
        // Same fingerprint, another home: probing starts elsewhere and stops
        // at an empty slot before reaching them.
        assert_eq!(t.candidates(h ^ (1 << 63)).count(), 0);
    }

    #[test]
    fn probing_wraps_around_the_end() {
        let mut t = Table::with_capacity(4);
        // The highest home: the last slot.
        let last: u64 = !0xffff_ffff;
        for id in 0..4 {
            t.insert(last | 7, id);
        }
        assert_eq!(t.candidates(last | 7).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(t.candidates(last | 8).count(), 0);
    }

    #[test]
    fn an_empty_table_has_no_candidates_and_a_full_one_still_ends() {
        let t = Table::with_capacity(0);
        assert_eq!(t.candidates(42).count(), 0);
        let mut t = Table::with_capacity(2);
        for id in 0..10 {
            t.insert(3, id);
        }
        // Room for 2 files: 4 slots, one always left empty.
        assert_eq!(t.candidates(3).count(), 3);
        assert_eq!(t.heap_bytes(), 4 * 8);
    }
}
