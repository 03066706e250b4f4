use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn info(n: u64) -> FileInfo {
    FileInfo {
        size: n,
        mtime: 1_700_000_000 + n as i64,
        sha256: None,
    }
}

/// A few thousand paths shaped like a Debian pool, pushed in a shuffled order.
fn pool_paths() -> Vec<String> {
    let mut out = Vec::new();
    for pkg in 0..600 {
        let name = format!("pkg{pkg}");
        let letter = &name[..1];
        for arch in ["amd64", "arm64", "i386", "all", "source"] {
            out.push(format!(
                "pool/main/{letter}/{name}/{name}_1.{pkg}-1_{arch}.deb"
            ));
        }
    }
    out.push("README".into());
    out.push("dists/stable/Release".into());
    out.push("dists/stable-backports/Release".into());
    out.push("dists/stable.old/Release".into());
    // Deterministic shuffle: push order must not matter.
    let n = out.len();
    for i in 0..n {
        out.swap(i, (i * 7919 + 13) % n);
    }
    out
}

#[test]
fn lookup_finds_every_file_with_its_info() {
    let paths = pool_paths();
    let mut b = IndexBuilder::new();
    for (i, p) in paths.iter().enumerate() {
        b.push(p, info(i as u64)).unwrap();
    }
    let idx = b.build();
    assert_eq!(idx.len(), paths.len());
    for (i, p) in paths.iter().enumerate() {
        let (id, got) = idx.lookup(p).unwrap();
        assert_eq!(got, info(i as u64));
        assert_eq!(idx.path(id), Some(p.as_str()));
    }
    assert_eq!(idx.lookup("pool/main/p/pkg1"), None);
    assert_eq!(idx.lookup("README/"), None);
    assert_eq!(idx.lookup(""), None);
    assert_eq!(idx.path(FileId(paths.len() as u32)), None);
    assert_eq!(
        idx.newest_mtime(),
        Some(1_700_000_000 + paths.len() as i64 - 1)
    );
    assert_eq!(idx.total_bytes(), (0..paths.len() as u64).sum::<u64>());
}

#[test]
fn iter_is_in_path_order_and_ids_follow_it() {
    let paths = pool_paths();
    let mut b = IndexBuilder::new();
    for p in &paths {
        b.push(p, info(p.len() as u64)).unwrap();
    }
    let idx = b.build();
    let mut sorted = paths.clone();
    sorted.sort();
    let listed: Vec<_> = idx.iter().map(|(_, p, _)| p.to_owned()).collect();
    assert_eq!(listed, sorted);
    for (i, (id, p, inf)) in idx.iter().enumerate() {
        assert_eq!(id, FileId(i as u32));
        assert_eq!(idx.lookup(p), Some((id, inf)));
    }
}

#[test]
fn a_fingerprint_match_is_no_match_until_the_paths_compare_equal() {
    let paths = pool_paths();
    let mut b = IndexBuilder::new();
    for (i, p) in paths.iter().enumerate() {
        b.push(p, info(i as u64)).unwrap();
    }
    let idx = b.build();
    // The same index, but every file filed under one hash: every lookup
    // meets every fingerprint, and only the path compare tells them apart.
    let h = 0x5eed_0000_0000_0042;
    let mut table = Table::with_capacity(idx.len());
    for i in 0..idx.len() {
        table.insert(h, i as u32);
    }
    let forced = ContentIndex {
        files: Arc::new(Files {
            arena: idx.files.arena.clone(),
            records: idx.files.records.clone(),
            table,
            newest_mtime: idx.files.newest_mtime,
        }),
        hashes: idx.hashes.clone(),
        hashed: idx.hashed,
    };
    for p in &paths {
        assert_eq!(forced.lookup_hashed(p, h), idx.lookup(p), "{p}");
        assert!(forced.lookup_hashed(p, h).is_some());
    }
    // A prefix, a longer path and a path of the same length as a file's but
    // other bytes: none is found.
    for missing in ["READM", "README.md", "READMF", "dists/stable/Releasf"] {
        assert_eq!(forced.lookup_hashed(missing, h), None, "{missing}");
    }
}

#[test]
fn records_fit_in_one_cache_line() {
    assert_eq!(std::mem::size_of::<Record>(), 32);
    assert_eq!(std::mem::align_of::<Record>(), 32);
}

#[test]
fn is_dir_follows_path_prefixes() {
    let mut b = IndexBuilder::new();
    for p in pool_paths() {
        b.push(&p, info(1)).unwrap();
    }
    let idx = b.build();
    for d in [
        "",
        "/",
        "pool",
        "pool/",
        "pool/main/p",
        "dists/stable",
        "dists/stable/",
    ] {
        assert!(idx.is_dir(d), "{d}");
    }
    // A prefix of a name is not a directory; nor is a file.
    for d in [
        "poo",
        "pool/main/p/pkg",
        "dists/stab",
        "README",
        "dists/stable/Release",
        "zzz",
    ] {
        assert!(!idx.is_dir(d), "{d}");
    }
    assert!(!ContentIndex::empty().is_dir(""));
}

#[test]
fn push_refuses_duplicates_and_unclean_paths() {
    let mut b = IndexBuilder::new();
    b.push("a/b", info(1)).unwrap();
    assert_eq!(
        b.push("a/b", info(2)),
        Err(IndexError::Duplicate("a/b".into()))
    );
    for bad in ["", "/a", "a/", "a//b", "a/./b", "a/../b", "..", "a\0b"] {
        assert!(
            matches!(b.push(bad, info(1)), Err(IndexError::BadPath(_))),
            "{bad:?}"
        );
    }
    assert_eq!(b.build().len(), 1);
}

#[test]
fn with_hashes_shares_files_and_counts_hashes() {
    let mut b = IndexBuilder::new();
    for p in ["c", "a", "b"] {
        b.push(p, info(1)).unwrap();
    }
    let idx = b.build();
    assert_eq!(idx.hashed(), 0);
    let (a, _) = idx.lookup("a").unwrap();
    let (c, _) = idx.lookup("c").unwrap();
    let next = idx.with_hashes([(a, [1; 32]), (c, [3; 32]), (FileId(99), [9; 32])]);
    assert_eq!(next.hashed(), 2);
    assert_eq!(next.lookup("a").unwrap().1.sha256, Some([1; 32]));
    assert_eq!(next.lookup("b").unwrap().1.sha256, None);
    assert_eq!(
        idx.lookup("a").unwrap().1.sha256,
        None,
        "the old index is untouched"
    );
    let again = next.with_hashes([(a, [2; 32])]);
    assert_eq!(again.hashed(), 2);
    assert_eq!(again.info(a).unwrap().sha256, Some([2; 32]));
}

proptest! {
    /// Every pushed path is found with its info; no other path is; is_dir
    /// agrees with a naive prefix scan.
    #[test]
    fn lookup_matches_a_map(
        entries in prop::collection::btree_map("[a-c]{1,3}(/[a-c.-]{1,3}){0,3}", 0u64..1000, 0..200),
        probes in prop::collection::vec("[a-c]{1,3}(/[a-c.-]{0,3}){0,3}", 0..50),
    ) {
        let entries: BTreeMap<String, u64> = entries
            .into_iter()
            .filter(|(p, _)| is_clean_path(p))
            .collect();
        // A path cannot be both a file and a directory.
        let entries: BTreeMap<String, u64> = entries
            .iter()
            .filter(|(p, _)| !entries.keys().any(|q| q.starts_with(&format!("{p}/"))))
            .map(|(p, s)| (p.clone(), *s))
            .collect();
        let mut b = IndexBuilder::new();
        for (p, s) in entries.iter().rev() {
            b.push(p, info(*s)).unwrap();
        }
        let idx = b.build();
        prop_assert_eq!(idx.len(), entries.len());
        for (p, s) in &entries {
            let (id, got) = idx.lookup(p).unwrap();
            prop_assert_eq!(got, info(*s));
            prop_assert_eq!(idx.path(id), Some(p.as_str()));
        }
        for q in &probes {
            prop_assert_eq!(idx.lookup(q).map(|(_, i)| i), entries.get(q).map(|s| info(*s)));
            let dir = q.strip_suffix('/').unwrap_or(q);
            let naive = entries.keys().any(|p| p.starts_with(&format!("{dir}/")));
            prop_assert_eq!(idx.is_dir(q), naive, "{}", q);
        }
    }
}

#[test]
fn hashes_follow_their_files_through_the_sort() {
    let paths = pool_paths();
    let mut b = IndexBuilder::new();
    for (i, p) in paths.iter().enumerate() {
        let sha256 = (i % 4 != 0).then_some([(i % 251) as u8; 32]);
        b.push(
            p,
            FileInfo {
                sha256,
                ..info(i as u64)
            },
        )
        .unwrap();
    }
    let idx = b.build();
    assert_eq!(
        idx.hashed(),
        (0..paths.len()).filter(|i| i % 4 != 0).count()
    );
    for (i, p) in paths.iter().enumerate() {
        let (id, got) = idx.lookup(p).unwrap();
        assert_eq!(
            got.sha256,
            (i % 4 != 0).then_some([(i % 251) as u8; 32]),
            "{p}"
        );
        assert_eq!(idx.info(id), Some(got));
    }
    let listed = idx.iter().filter(|(_, _, f)| f.sha256.is_some()).count();
    assert_eq!(listed, idx.hashed());
}
