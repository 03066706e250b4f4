//! Scale of the origin index: a million synthetic package paths (memory,
//! build, lookup, manifest parse) and a walk of a real tree of empty files.
//! A measurement, not a test: `cargo bench --bench content_scale`
//! (`CONTENT_SCALE_FILES` and `CONTENT_SCALE_WALK` change the sizes; 0
//! skips that part: `benches/scale.sh` runs the walk of 1,000,000 files
//! alone with `CONTENT_SCALE_FILES=0 CONTENT_SCALE_WALK=1000000`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use mirrorgate::content::indexer::build_from_walk;
use mirrorgate::content::manifest::{parse_manifest, write_index};
use mirrorgate::content::tree::{FileStat, Walk};
use mirrorgate::content::{walk, ContentIndex, FileId, FileInfo, IndexBuilder};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Peak resident memory since the last `reset_peak`.
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Linux: "5" resets the peak resident size to the current one.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The `i`-th path, shaped like a Debian pool: five per package.
fn pool_path(i: usize, out: &mut String) {
    use std::fmt::Write;
    const ARCH: [&str; 5] = ["amd64", "arm64", "i386", "all", "source"];
    const SECTIONS: [&str; 4] = ["main", "main", "contrib", "non-free"];
    let pkg = i / 5;
    // A pseudo-random, stable name: "lib" prefixes and letters like a real archive.
    let h = (pkg as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    let mut name = String::new();
    if h % 4 == 0 {
        name.push_str("lib");
    }
    for k in 0..(5 + (h >> 8) % 8) {
        name.push(letters[((h >> (k * 5 + 3)) % 26) as usize] as char);
    }
    let _ = write!(name, "{}", pkg % 1000);
    let dir = if name.starts_with("lib") {
        &name[..4]
    } else {
        &name[..1]
    };
    out.clear();
    let _ = write!(
        out,
        "pool/{}/{dir}/{name}/{name}_{}.{}-{}_{}.deb",
        SECTIONS[(h % 4) as usize],
        (h >> 40) % 20,
        (h >> 45) % 30,
        (h >> 50) % 5 + 1,
        ARCH[i % 5]
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median nanoseconds per call over rounds of `per_round` calls.
fn time_ns(rounds: usize, per_round: usize, mut f: impl FnMut(usize)) -> f64 {
    let samples = (0..rounds)
        .map(|r| {
            let t = Instant::now();
            for k in 0..per_round {
                f(r * per_round + k);
            }
            t.elapsed().as_nanos() as f64 / per_round as f64
        })
        .collect();
    median(samples)
}

fn main() {
    let n: usize = std::env::var("CONTENT_SCALE_FILES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let walk_n: usize = std::env::var("CONTENT_SCALE_WALK")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);

    if n > 0 {
        index_scale(n);
    }
    if walk_n > 0 {
        walk_scale(walk_n);
    }
}

/// The index of `n` synthetic paths: memory, build, lookups, manifest, re-walk.
fn index_scale(n: usize) {
    let rss0 = rss_kib();
    let t = Instant::now();
    let mut b = IndexBuilder::new();
    let mut p = String::new();
    let mut path_bytes = 0;
    for i in 0..n {
        pool_path(i, &mut p);
        path_bytes += p.len();
        let info = FileInfo {
            size: (i as u64 * 7919) % 50_000_000,
            mtime: 1_700_000_000 + i as i64,
            sha256: None,
        };
        if b.push(&p, info).is_err() {
            // Synthetic names can collide; a real tree cannot.
            continue;
        }
    }
    let index = b.build();
    let build = t.elapsed();
    let rss_built = rss_kib();
    let peak_build = peak_kib();
    println!(
        "index: {} files, {:.1} MiB of paths (avg {} B); build {:.2} s",
        index.len(),
        path_bytes as f64 / 1048576.0,
        path_bytes / n.max(1),
        build.as_secs_f64()
    );
    println!(
        "  resident: {:.1} MiB before, {:.1} MiB after build (+{:.1} MiB, peak {:.1} MiB); index heap {:.1} MiB",
        mib(rss0),
        mib(rss_built),
        mib(rss_built.saturating_sub(rss0)),
        mib(peak_build),
        index.heap_bytes() as f64 / 1048576.0
    );

    let t = Instant::now();
    let hashed: ContentIndex =
        index.with_hashes((0..index.len() as u32).map(|i| (FileId(i), [i as u8; 32])));
    let with = t.elapsed();
    drop(index);
    let rss_hashed = rss_kib();
    println!(
        "  with_hashes (all {}): {:.0} ms; resident {:.1} MiB; index heap {:.1} MiB",
        hashed.len(),
        with.as_secs_f64() * 1000.0,
        mib(rss_hashed),
        hashed.heap_bytes() as f64 / 1048576.0
    );

    // Probe paths gathered first, so the timing is of lookups only.
    let probes: Vec<String> = (0..4096)
        .map(|k| {
            let mut s = String::new();
            pool_path((k * 2_654_435_761usize) % n.max(1), &mut s);
            s
        })
        .collect();
    let misses: Vec<String> = probes.iter().map(|s| format!("{s}.sig")).collect();
    let hit = time_ns(31, 100_000, |k| {
        black_box(hashed.lookup(black_box(&probes[k % probes.len()])));
    });
    let miss = time_ns(31, 100_000, |k| {
        black_box(hashed.lookup(black_box(&misses[k % misses.len()])));
    });
    let dirs: Vec<&str> = probes
        .iter()
        .map(|s| s.rsplit_once('/').map_or("", |(d, _)| d))
        .collect();
    let is_dir = time_ns(31, 100_000, |k| {
        black_box(hashed.is_dir(black_box(dirs[k % dirs.len()])));
    });
    println!("  lookup median: {hit:.0} ns (found), {miss:.0} ns (missing); is_dir {is_dir:.0} ns");

    let t = Instant::now();
    let mut text = Vec::with_capacity(hashed.len() * 130);
    if write_index(&hashed, &mut text).is_err() {
        return;
    }
    let write = t.elapsed();
    let Ok(text) = String::from_utf8(text) else {
        return;
    };
    // A reload: the old index is still served while the new one is parsed.
    reset_peak();
    let t = Instant::now();
    let parsed = parse_manifest(&text).map(|i| i.len());
    println!(
        "  manifest: {:.0} MiB written in {:.2} s, parsed in {:.2} s ({parsed:?} files); peak resident during the reload {:.1} MiB",
        text.len() as f64 / 1048576.0,
        write.as_secs_f64(),
        t.elapsed().as_secs_f64(),
        mib(peak_kib())
    );
    drop(text);

    // A re-walk of the same tree: the walk's list, the old index and the new one.
    let mut w = Walk::default();
    for (_, path, info) in hashed.iter() {
        let stat = FileStat {
            size: info.size,
            mtime: info.mtime,
        };
        w.files.push((path.to_owned(), stat));
    }
    let rss_walk = rss_kib();
    reset_peak();
    let t = Instant::now();
    let (rewalked, to_hash) = build_from_walk(w, &hashed);
    println!(
        "  re-walk index build: {:.2} s, {} to hash; resident {:.1} MiB with the walk's list, peak {:.1} MiB",
        t.elapsed().as_secs_f64(),
        to_hash.len(),
        mib(rss_walk),
        mib(peak_kib())
    );
    drop(rewalked);
    drop(hashed);
}

/// A walk (no hashing) of a real tree of `walk_n` empty files, in a temporary
/// directory removed afterwards.
fn walk_scale(walk_n: usize) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let t = Instant::now();
    let mut made = 0;
    let mut p = String::new();
    for i in 0..walk_n {
        pool_path(i, &mut p);
        let path = dir.path().join(&p);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if std::fs::File::create(&path).is_ok() {
            made += 1;
        }
    }
    let create = t.elapsed();
    let mut walks = Vec::new();
    let mut found = 0;
    for _ in 0..3 {
        let t = Instant::now();
        found = walk(dir.path()).map_or(0, |w| w.files.len());
        walks.push(t.elapsed());
    }
    walks.sort();
    let best: Duration = walks[0];
    println!(
        "walk: {made} empty files created in {:.1} s; walked (no hashing) in {:.2} s median, {:.2} s best; {found} found",
        create.as_secs_f64(),
        walks[1].as_secs_f64(),
        best.as_secs_f64()
    );
}
