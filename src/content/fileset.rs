//! Which files of one index a mirror is known to have: a bitset over [`FileId`]s.
//!
//! One bit per file of the index (a million files cost 125 KiB per mirror),
//! so a scan's result can sit in every snapshot. A set is meaningful only
//! with the index it was built against: file ids are renumbered by a rescan,
//! so a new index needs new sets. This module must not know how the set was
//! filled (scan, manifest, checks).

use super::FileId;

/// A set of file ids of one index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSet {
    words: Vec<u64>,
    /// Bits set, kept so that `len` costs nothing.
    count: usize,
}

impl FileSet {
    /// An empty set with room for ids `0..n` (more grow it).
    pub fn with_capacity(n: usize) -> Self {
        FileSet {
            words: vec![0; n.div_ceil(64)],
            count: 0,
        }
    }

    /// Adds `id`; returns true if it was not there yet.
    pub fn insert(&mut self, id: FileId) -> bool {
        let (word, bit) = place(id);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        self.count += usize::from(fresh);
        fresh
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: FileId) -> bool {
        let (word, bit) = place(id);
        self.words.get(word).is_some_and(|w| w & bit != 0)
    }

    /// How many ids are in the set.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no id is in the set.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The ids in the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = FileId> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            (0..64u32)
                .filter(move |b| w & (1u64 << b) != 0)
                .map(move |b| FileId(i as u32 * 64 + b))
        })
    }

    /// Heap memory used, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.words.capacity() * std::mem::size_of::<u64>()
    }
}

impl FromIterator<FileId> for FileSet {
    fn from_iter<I: IntoIterator<Item = FileId>>(iter: I) -> Self {
        let mut set = FileSet::default();
        for id in iter {
            set.insert(id);
        }
        set
    }
}

/// The word index and the bit mask of `id`.
fn place(id: FileId) -> (usize, u64) {
    ((id.0 / 64) as usize, 1u64 << (id.0 % 64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn insert_contains_len() {
        let mut s = FileSet::with_capacity(130);
        assert!(s.is_empty());
        assert!(s.insert(FileId(0)));
        assert!(s.insert(FileId(63)));
        assert!(s.insert(FileId(64)));
        assert!(s.insert(FileId(129)));
        assert!(!s.insert(FileId(64)), "already there");
        assert_eq!(s.len(), 4);
        assert!(s.contains(FileId(63)) && s.contains(FileId(129)));
        assert!(!s.contains(FileId(1)) && !s.contains(FileId(1_000_000)));
        let ids: Vec<u32> = s.iter().map(|i| i.0).collect();
        assert_eq!(ids, [0, 63, 64, 129]);
    }

    #[test]
    fn memory_is_one_bit_per_file() {
        let s = FileSet::with_capacity(1_000_000);
        assert_eq!(s.memory_bytes(), 125_000);
    }

    #[test]
    fn ids_past_the_capacity_grow_the_set() {
        let mut s = FileSet::with_capacity(0);
        assert!(s.insert(FileId(200)));
        assert!(s.contains(FileId(200)));
        assert_eq!(s.len(), 1);
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(ids in proptest::collection::vec(0u32..5000, 0..300)) {
            let mut s = FileSet::with_capacity(1000);
            let mut model = BTreeSet::new();
            for &i in &ids {
                prop_assert_eq!(s.insert(FileId(i)), model.insert(i));
            }
            prop_assert_eq!(s.len(), model.len());
            let got: Vec<u32> = s.iter().map(|i| i.0).collect();
            let want: Vec<u32> = model.iter().copied().collect();
            prop_assert_eq!(got, want);
            for i in 0..5000 {
                prop_assert_eq!(s.contains(FileId(i)), model.contains(&i));
            }
        }
    }
}
