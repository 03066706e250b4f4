//! A large synthetic origin for the scale benchmark (`benches/scale.sh`): a
//! manifest in mirrorgate's format (README, "Manifest format") of a Debian-like
//! package pool, and a sample of its paths for the load generator.
//!
//! Source packages get made-up names (syllables, a quarter of them `lib*`),
//! each with its `.dsc`, `.orig.tar.xz` and `.debian.tar.xz`, and one to six
//! binary packages built for one to six architectures (or `all`):
//! `pool/main/h/hello/hello_2.10-3_amd64.deb`. Sizes run from just over 4 KiB
//! to 200 MiB (log-uniform), times from 2016 to 2025 (a package's
//! files within a minute of each other), and every file has a SHA-256: random
//! bytes, not the hash of anything, since no file exists. The output is
//! seeded: the same arguments give the same files.
//!
//! Usage: `bench-manifest OUT FILES [PATHS_OUT PATH_COUNT]`. Writes exactly
//! FILES files to OUT (sorted bytewise by path, atomically), and PATH_COUNT
//! distinct paths drawn from them to PATHS_OUT, one URL path (`/pool/...`)
//! a line, in random order.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Fixed seed: the manifest depends on the arguments only.
const SEED: u64 = 0x6d61_6e69_6665_7374;
/// The smallest and largest file, in bytes.
const MIN_SIZE: f64 = 4097.0;
const MAX_SIZE: f64 = 200.0 * 1024.0 * 1024.0;
/// 2016-01-01T00:00:00Z and 2025-01-01T00:00:00Z: the oldest and newest
/// publication (fixed, so that the manifest never changes).
const OLDEST: u64 = 1_451_606_400;
const NEWEST: u64 = 1_735_689_600;

const SYLLABLES: [&str; 32] = [
    "ba", "co", "de", "fi", "gu", "ha", "ix", "jo", "ka", "lu", "me", "no", "pa", "qu", "ro", "sa",
    "te", "vi", "wa", "xe", "yo", "zu", "an", "el", "in", "or", "um", "st", "tr", "gl", "ng", "x",
];
const COMPONENTS: [&str; 4] = ["main", "main", "contrib", "non-free"];
const ARCHES: [&str; 6] = ["amd64", "arm64", "i386", "armhf", "ppc64el", "s390x"];
const SUFFIXES: [&str; 7] = ["", "-dev", "-doc", "-common", "-utils", "-data", "-dbg"];

fn main() -> anyhow::Result<()> {
    const USAGE: &str = "usage: bench-manifest OUT FILES [PATHS_OUT PATH_COUNT]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, files, sample) = match args.as_slice() {
        [out, files] => (out, files, None),
        [out, files, paths, count] => (out, files, Some((paths, count))),
        _ => bail!(USAGE),
    };
    let files: usize = files.parse().context("FILES")?;
    let sample = match sample {
        Some((paths, count)) => {
            let count: usize = count.parse().context("PATH_COUNT")?;
            if count > files {
                bail!("PATH_COUNT ({count}) is more than FILES ({files})");
            }
            Some((PathBuf::from(paths), count))
        }
        None => None,
    };
    if SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() < NEWEST {
        bail!("this clock is before 2025: the manifest's times would not be in the past");
    }
    let mut rng = SmallRng::seed_from_u64(SEED);

    let mut entries = pool(files, &mut rng);
    entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    for pair in entries.windows(2) {
        if pair[0].path == pair[1].path {
            bail!("internal error: {} generated twice", pair[0].path);
        }
    }

    let out = PathBuf::from(out);
    write_atomically(&out, |w| {
        writeln!(w, "# mirrorgate-manifest v1")?;
        let mut hex = String::with_capacity(64);
        for e in &entries {
            hex.clear();
            for b in e.sha256 {
                let _ = write!(hex, "{b:02x}");
            }
            writeln!(w, "{hex} {} {} {}", e.size, e.mtime, e.path)?;
        }
        Ok(())
    })?;
    println!("{} files -> {}", entries.len(), out.display());

    if let Some((paths, count)) = sample {
        let mut picked = HashSet::with_capacity(count);
        let mut order = Vec::with_capacity(count);
        while order.len() < count {
            let i = rng.random_range(0..entries.len());
            if picked.insert(i) {
                order.push(i);
            }
        }
        write_atomically(&paths, |w| {
            for i in &order {
                writeln!(w, "/{}", entries[*i].path)?;
            }
            Ok(())
        })?;
        println!("{count} paths drawn from them -> {}", paths.display());
    }
    Ok(())
}

/// One file of the manifest.
struct Entry {
    path: String,
    size: u64,
    mtime: u64,
    sha256: [u8; 32],
}

/// Exactly `files` files of a package pool, in no particular order.
fn pool(files: usize, rng: &mut SmallRng) -> Vec<Entry> {
    let mut entries = Vec::with_capacity(files);
    let mut sources = HashSet::new();
    let file = |entries: &mut Vec<Entry>, path: String, mtime: u64, rng: &mut SmallRng| {
        if entries.len() < files {
            let size = (MIN_SIZE * (MAX_SIZE / MIN_SIZE).powf(rng.random::<f64>())) as u64;
            let mut sha256 = [0u8; 32];
            rng.fill(&mut sha256);
            entries.push(Entry {
                path,
                size,
                mtime: mtime + rng.random_range(0..60),
                sha256,
            });
        }
    };
    while entries.len() < files {
        // A new source package, with a name not seen yet.
        let source = loop {
            let mut name = String::new();
            if rng.random_bool(0.25) {
                name.push_str("lib");
            }
            for _ in 0..rng.random_range(2..5) {
                name.push_str(SYLLABLES[rng.random_range(0..SYLLABLES.len())]);
            }
            if rng.random_bool(0.3) {
                let _ = write!(name, "{}", rng.random_range(0..10));
            }
            if sources.insert(name.clone()) {
                break name;
            }
        };
        let component = COMPONENTS[rng.random_range(0..COMPONENTS.len())];
        let letter = if source.starts_with("lib") {
            &source[..4]
        } else {
            &source[..1]
        };
        let dir = format!("pool/{component}/{letter}/{source}");
        let upstream = match rng.random_range(0..4) {
            0 => format!("{}.{}", rng.random_range(0..10), rng.random_range(0..30)),
            1 => format!(
                "{}.{}.{}",
                rng.random_range(0..5),
                rng.random_range(0..20),
                rng.random_range(0..12)
            ),
            2 => format!(
                "{}.{}+dfsg",
                rng.random_range(0..4),
                rng.random_range(0..99)
            ),
            _ => format!(
                "{}.{}~rc{}",
                rng.random_range(1..4),
                rng.random_range(0..9),
                rng.random_range(1..4)
            ),
        };
        let version = format!("{upstream}-{}", rng.random_range(1..8));
        let mtime = rng.random_range(OLDEST..NEWEST - 60);
        file(
            &mut entries,
            format!("{dir}/{source}_{version}.dsc"),
            mtime,
            rng,
        );
        file(
            &mut entries,
            format!("{dir}/{source}_{upstream}.orig.tar.xz"),
            mtime,
            rng,
        );
        file(
            &mut entries,
            format!("{dir}/{source}_{version}.debian.tar.xz"),
            mtime,
            rng,
        );
        let binaries = rng.random_range(1..=6);
        let arches = rng.random_range(1..=ARCHES.len());
        for suffix in &SUFFIXES[..binaries] {
            if matches!(*suffix, "-doc" | "-common" | "-data") {
                file(
                    &mut entries,
                    format!("{dir}/{source}{suffix}_{version}_all.deb"),
                    mtime,
                    rng,
                );
                continue;
            }
            for arch in &ARCHES[..arches] {
                file(
                    &mut entries,
                    format!("{dir}/{source}{suffix}_{version}_{arch}.deb"),
                    mtime,
                    rng,
                );
            }
        }
    }
    entries
}

/// Writes `path` through a temporary file beside it, renamed into place.
fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    fill(&mut w)
        .and_then(|()| w.flush())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(w);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
