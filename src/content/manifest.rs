//! The manifest: the origin's files as one text file, written on the origin
//! host by `mirrorgate manifest DIR` and read by mirrorgate nodes that have no
//! local tree.
//!
//! # Format (v1)
//!
//! ```text
//! # mirrorgate-manifest v1
//! 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 5 1700000000 hello.txt
//! - 1048576 1700000100 releases/1.0/file%20name.iso
//! ```
//!
//! The first line is exactly `# mirrorgate-manifest v1`. Then one line per
//! file, sorted bytewise by path, four fields separated by one space:
//! the SHA-256 in lowercase hex (64 digits) or `-` when unknown; the size in
//! bytes; the modification time in seconds since the Unix epoch (may be
//! negative); the path relative to the tree, `/`-separated, with `%`, space
//! and control characters percent-encoded (`%25`, `%20`, `%0A`...). Readers
//! also accept uppercase hex, CRLF line ends, empty lines and further `#`
//! comment lines, and files in any order.
//!
//! A manifest is taken whole or not at all: any bad line refuses it, with an
//! error naming the line, and the caller keeps its previous index.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use super::hasher::{HashOptions, HashOutcome, Hasher};
use super::index::{ContentIndex, FileInfo, IndexBuilder, IndexError};
use super::tree::{self, TreeError};

/// The first line of every v1 manifest.
pub const HEADER: &str = "# mirrorgate-manifest v1";
pub(crate) const HEADER_PREFIX: &str = "# mirrorgate-manifest ";

/// Bytes percent-encoded in a manifest path: those that would break the line
/// format (space, newline and other controls) and `%` itself.
const PATH_ESCAPES: &AsciiSet = &CONTROLS.add(b' ').add(b'%');

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error("expected 4 fields `<sha256|-> <size> <mtime> <path>`, found {0}")]
    Fields(usize),
    #[error("bad hash {0:?}: expected 64 hex digits or `-`")]
    Hash(String),
    #[error("bad size {0:?}: expected a whole number of bytes")]
    Size(String),
    #[error("bad modification time {0:?}: expected seconds since the Unix epoch")]
    Mtime(String),
    #[error("bad path {0:?}: percent-encoding does not decode to UTF-8")]
    Encoding(String),
    #[error("unsafe path {0:?}: {1}")]
    UnsafePath(String, &'static str),
    #[error("{0}: listed twice")]
    Duplicate(String),
}

/// Why a manifest was refused or could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("line 1: not a mirrorgate manifest (expected `{HEADER}`)")]
    Header,
    #[error("line 1: unsupported manifest version {0:?} (this build reads v1)")]
    Version(String),
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: LineProblem },
    #[error("too many files for one index")]
    TooManyFiles,
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("{path}: {error}", path = path.display())]
    Io { path: PathBuf, error: io::Error },
}

/// A path as written in a manifest line.
pub fn encode_path(path: &str) -> impl std::fmt::Display + '_ {
    utf8_percent_encode(path, PATH_ESCAPES)
}

/// Writes one file's line.
pub fn write_line(out: &mut impl Write, path: &str, info: &FileInfo) -> io::Result<()> {
    match &info.sha256 {
        Some(h) => write!(out, "{}", hex::encode(h))?,
        None => out.write_all(b"-")?,
    }
    writeln!(out, " {} {} {}", info.size, info.mtime, encode_path(path))
}

/// Writes a whole index as a manifest (files in path order).
pub fn write_index(index: &ContentIndex, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{HEADER}")?;
    for (_, path, info) in index.iter() {
        write_line(out, path, &info)?;
    }
    Ok(())
}

/// Parses a manifest into an index; any bad line refuses the whole text.
pub fn parse_manifest(text: &str) -> Result<ContentIndex, ManifestError> {
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    match lines.next() {
        Some(HEADER) => {}
        Some(l) => {
            return Err(match l.strip_prefix(HEADER_PREFIX) {
                Some(v) => ManifestError::Version(v.to_owned()),
                None => ManifestError::Header,
            })
        }
        None => return Err(ManifestError::Header),
    }
    // One line is ~100 bytes: reserve to avoid regrowing a million entries.
    let mut builder = IndexBuilder::with_capacity(text.len() / 100, text.len() / 2);
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (path, info) = parse_line(line).map_err(|problem| ManifestError::Line {
            line: line_no,
            problem,
        })?;
        builder.push(&path, info).map_err(|e| match e {
            IndexError::Duplicate(p) => ManifestError::Line {
                line: line_no,
                problem: LineProblem::Duplicate(p),
            },
            IndexError::BadPath(p) => ManifestError::Line {
                line: line_no,
                problem: LineProblem::UnsafePath(p, "not a clean relative path"),
            },
            IndexError::TooManyFiles => ManifestError::TooManyFiles,
        })?;
    }
    Ok(builder.build())
}

pub(crate) fn parse_line(line: &str) -> Result<(String, FileInfo), LineProblem> {
    let fields: Vec<&str> = line.split(' ').collect();
    let &[hash, size, mtime, path] = fields.as_slice() else {
        return Err(LineProblem::Fields(fields.len()));
    };
    let sha256 = match hash {
        "-" => None,
        h => {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out).map_err(|_| LineProblem::Hash(h.to_owned()))?;
            Some(out)
        }
    };
    let size = size
        .parse::<u64>()
        .map_err(|_| LineProblem::Size(size.to_owned()))?;
    let mtime = mtime
        .parse::<i64>()
        .map_err(|_| LineProblem::Mtime(mtime.to_owned()))?;
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| LineProblem::Encoding(path.to_owned()))?
        .into_owned();
    if let Some(why) = unsafe_reason(&decoded) {
        return Err(LineProblem::UnsafePath(decoded, why));
    }
    Ok((
        decoded,
        FileInfo {
            size,
            mtime,
            sha256,
        },
    ))
}

/// Why a decoded path must not be served, if it must not.
fn unsafe_reason(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("empty")
    } else if path.starts_with('/') {
        Some("absolute (leading `/`)")
    } else if path.split('/').any(|s| s == "..") {
        Some("contains a `..` segment")
    } else if path.contains('\0') {
        Some("contains NUL")
    } else if path.split('/').any(|s| s.is_empty() || s == ".") {
        Some("empty or `.` segment")
    } else {
        None
    }
}

/// How `write_manifest` hashes.
#[derive(Debug, Clone)]
pub struct ManifestOptions {
    /// Threads and settle time; a file not hashed (unsettled, changing,
    /// unreadable) is written with `-`.
    pub hash: HashOptions,
}

impl Default for ManifestOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
        ManifestOptions {
            hash: HashOptions {
                threads,
                // The origin host runs this after a sync: a short settle only
                // guards against an upload still being written.
                settle: Duration::from_secs(2),
                ..HashOptions::default()
            },
        }
    }
}

/// What `write_manifest` wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestStats {
    pub files: usize,
    pub bytes: u64,
    pub hashed: usize,
    /// Files written with `-`: modified within the settle time, changing, or unreadable.
    pub unhashed: usize,
    pub skipped_temp: usize,
    pub skipped_non_utf8: usize,
    pub skipped_symlinks: usize,
}

/// Walks `dir`, hashes every file, and writes the manifest to `out`.
pub fn write_manifest(
    dir: &Path,
    out: &mut impl Write,
    opts: &ManifestOptions,
) -> Result<ManifestStats, ManifestError> {
    let walk = tree::walk(dir)?;
    let mut stats = ManifestStats {
        files: walk.files.len(),
        bytes: walk.files.iter().map(|(_, s)| s.size).sum(),
        skipped_temp: walk.skipped_temp,
        skipped_non_utf8: walk.skipped_non_utf8,
        skipped_symlinks: walk.skipped_symlinks,
        ..ManifestStats::default()
    };
    let (tx, rx) = mpsc::channel();
    let paths = walk.files.iter().map(|(p, _)| p.clone()).collect();
    let hasher = Hasher::start(
        dir.to_path_buf(),
        paths,
        opts.hash.clone(),
        Arc::new(AtomicU64::new(0)),
        move |r| {
            let _ = tx.send(r);
        },
    );
    let mut builder = IndexBuilder::with_capacity(walk.files.len(), 0);
    let mut hashes = std::collections::HashMap::new();
    for r in rx {
        match r.outcome {
            HashOutcome::Hashed { stat, sha256 } => {
                hashes.insert(r.path, (stat, sha256));
            }
            HashOutcome::Failed(e) => {
                tracing::warn!(path = %dir.join(&r.path).display(), error = %e, "not hashed");
            }
            _ => {}
        }
    }
    hasher.join();
    for (path, stat) in &walk.files {
        // The stat the hash was taken with wins: the file may have changed
        // since the walk, and size, time and hash must agree.
        let (stat, sha256) = match hashes.remove(path) {
            Some((s, h)) => (s, Some(h)),
            None => (*stat, None),
        };
        let info = FileInfo {
            size: stat.size,
            mtime: stat.mtime,
            sha256,
        };
        if sha256.is_some() {
            stats.hashed += 1;
        } else {
            stats.unhashed += 1;
        }
        // The walk's paths are clean and unique; an error here would be a bug.
        builder
            .push(path, info)
            .map_err(|_| ManifestError::TooManyFiles)?;
    }
    let io_err = |error| ManifestError::Io {
        path: dir.to_path_buf(),
        error,
    };
    write_index(&builder.build(), out).map_err(io_err)?;
    out.flush().map_err(io_err)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_with_awkward_names() {
        let mut b = IndexBuilder::new();
        let h = [0xab; 32];
        for (p, sha) in [
            ("a b/c%d", Some(h)),
            ("new\nline", None),
            ("ünï/tab\there", Some(h)),
        ] {
            b.push(
                p,
                FileInfo {
                    size: 7,
                    mtime: -3,
                    sha256: sha,
                },
            )
            .unwrap();
        }
        let idx = b.build();
        let mut out = Vec::new();
        write_index(&idx, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(" a%20b/c%25d\n"), "{text}");
        assert!(text.contains("- 7 -3 new%0Aline\n"), "{text}");
        let back = parse_manifest(&text).unwrap();
        let a: Vec<_> = idx.iter().map(|(_, p, i)| (p.to_owned(), i)).collect();
        let b: Vec<_> = back.iter().map(|(_, p, i)| (p.to_owned(), i)).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn errors_name_their_line() {
        let good = "0".repeat(64);
        let cases = [
            ("".to_owned(), "line 1: not a mirrorgate manifest"),
            (
                "# mirrorgate-manifest v2\n".to_owned(),
                "line 1: unsupported manifest version \"v2\"",
            ),
            (
                format!("{HEADER}\n{good} 1 2 a\nzz 1 2 b\n"),
                "line 3: bad hash \"zz\"",
            ),
            (format!("{HEADER}\n- x 2 a\n"), "line 2: bad size \"x\""),
            (
                format!("{HEADER}\n- 1 2.5 a\n"),
                "line 2: bad modification time \"2.5\"",
            ),
            (format!("{HEADER}\n- 1 2\n"), "line 2: expected 4 fields"),
            (
                format!("{HEADER}\n\n- 1 2 a\n- 1 2 a\n"),
                "line 4: a: listed twice",
            ),
            (
                format!("{HEADER}\n- 1 2 a/../b\n"),
                "line 2: unsafe path \"a/../b\": contains a `..` segment",
            ),
            (
                format!("{HEADER}\n- 1 2 /etc/passwd\n"),
                "line 2: unsafe path \"/etc/passwd\": absolute",
            ),
            (
                format!("{HEADER}\n- 1 2 %2Fetc\n"),
                "line 2: unsafe path \"/etc\": absolute",
            ),
            (
                format!("{HEADER}\n- 1 2 a//b\n"),
                "line 2: unsafe path \"a//b\": empty",
            ),
            (format!("{HEADER}\n- 1 2 %FF\n"), "line 2: bad path \"%FF\""),
        ];
        for (text, want) in cases {
            let err = parse_manifest(&text).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }

    #[test]
    fn accepts_crlf_comments_and_any_order() {
        let text = format!("{HEADER}\r\n# note\r\n- 1 2 b\r\n- 3 4 a\r\n");
        let idx = parse_manifest(&text).unwrap();
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup("a").unwrap().1.size, 3);
    }
}
