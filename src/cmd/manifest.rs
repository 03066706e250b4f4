//! `manifest DIR [--output FILE]`: the origin host's manifest of its tree.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::content::hashcache::write_atomically;
use crate::content::manifest::{write_manifest, ManifestOptions, ManifestStats};

/// Writes the manifest of `dir` to `output` (atomically: readers see the old
/// manifest or the new, never a part) or to stdout; a summary goes to stderr.
pub fn manifest_command(dir: &Path, output: Option<&Path>) -> anyhow::Result<ExitCode> {
    let opts = ManifestOptions::default();
    let stats = match output {
        Some(out) => {
            let mut stats = None;
            write_atomically(out, |w| {
                stats = Some(write_manifest(dir, w, &opts).map_err(std::io::Error::other)?);
                Ok(())
            })
            .with_context(|| format!("writing {}", out.display()))?;
            stats.context("no manifest written")?
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            let stats = write_manifest(dir, &mut w, &opts)?;
            w.flush().context("writing to stdout")?;
            stats
        }
    };
    report(dir, &stats);
    Ok(ExitCode::SUCCESS)
}

fn report(dir: &Path, s: &ManifestStats) {
    eprintln!(
        "{}: {} file(s), {} byte(s), {} hashed, {} without hash (changing, just written or unreadable); \
         skipped: {} rsync temporary, {} non-UTF-8 name(s), {} symlink(s)",
        dir.display(),
        s.files,
        s.bytes,
        s.hashed,
        s.unhashed,
        s.skipped_temp,
        s.skipped_non_utf8,
        s.skipped_symlinks
    );
}
