//! SHA-256 of the origin's files, in the background, on a bounded number of
//! threads, so that a hash names the final content of a file and never a half
//! of it.
//!
//! A file is hashed only once it has settled (its modification time is at
//! least `settle` old: an upload in progress is left for a later pass). It is
//! stat'ed through the open handle before reading and by path after; when
//! size, modification time, inode or change time differ (written meanwhile,
//! or replaced by a rename), it is hashed again, at most `max_attempts` times.
//! Reading is streamed through one bounded buffer per thread.
//!
//! Owns no state but its threads; callers decide what to do with results.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::tree::FileStat;

/// Read buffer per hashing thread.
const BUFFER: usize = 256 * 1024;

/// Called after a file was read and before it is stat'ed again, with the
/// attempt number (0 first). Tests use it to change a file mid-hash.
pub type AfterRead = Arc<dyn Fn(&Path, u32) + Send + Sync>;

/// How files are hashed.
#[derive(Clone)]
pub struct HashOptions {
    /// Hashing threads (at least 1).
    pub threads: usize,
    /// A file modified less than this long ago is not hashed yet.
    pub settle: Duration,
    /// Reads of one file before giving up on it for this pass.
    pub max_attempts: u32,
    pub after_read: Option<AfterRead>,
}

impl Default for HashOptions {
    fn default() -> Self {
        HashOptions {
            threads: 2,
            settle: Duration::from_secs(5),
            max_attempts: 3,
            after_read: None,
        }
    }
}

impl std::fmt::Debug for HashOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashOptions")
            .field("threads", &self.threads)
            .field("settle", &self.settle)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// What hashing one file gave.
#[derive(Debug)]
pub enum HashOutcome {
    /// The hash of the content that had this size and time before and after reading.
    Hashed {
        stat: FileStat,
        sha256: [u8; 32],
    },
    /// Modified within the settle time: try again in a later pass.
    Unsettled,
    /// Changed during every attempt.
    Unstable,
    /// No longer a regular file at that path.
    Gone,
    Failed(io::Error),
    Cancelled,
}

/// One file's outcome, by its relative path.
#[derive(Debug)]
pub struct HashResult {
    pub path: String,
    pub outcome: HashOutcome,
}

/// Everything that decides whether two stats are of the same content.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    ino: u64,
    #[cfg(unix)]
    ctime: (i64, i64),
}

impl Fingerprint {
    fn of(m: &fs::Metadata) -> Fingerprint {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Fingerprint {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            ino: m.ino(),
            #[cfg(unix)]
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// Hashes one file so that the hash is of content that stayed put while read.
pub fn hash_stable(path: &Path, opts: &HashOptions, cancel: &AtomicBool) -> HashOutcome {
    let mut buf = vec![0u8; BUFFER];
    hash_stable_with(path, opts, cancel, &mut buf)
}

fn hash_stable_with(
    path: &Path,
    opts: &HashOptions,
    cancel: &AtomicBool,
    buf: &mut [u8],
) -> HashOutcome {
    for attempt in 0..opts.max_attempts.max(1) {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return HashOutcome::Gone,
            Err(e) => return HashOutcome::Failed(e),
        };
        let before = match file.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => return HashOutcome::Gone,
            Err(e) => return HashOutcome::Failed(e),
        };
        if !settled(&before, opts.settle) {
            return HashOutcome::Unsettled;
        }
        let mut sha = Sha256::new();
        loop {
            if cancel.load(Ordering::Relaxed) {
                return HashOutcome::Cancelled;
            }
            match file.read(buf) {
                Ok(0) => break,
                Ok(n) => sha.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return HashOutcome::Failed(e),
            }
        }
        drop(file);
        if let Some(hook) = &opts.after_read {
            hook(path, attempt);
        }
        let after = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return HashOutcome::Gone,
            Err(e) => return HashOutcome::Failed(e),
        };
        if Fingerprint::of(&before) == Fingerprint::of(&after) {
            return HashOutcome::Hashed {
                stat: FileStat::from_metadata(&before),
                sha256: sha.finalize().into(),
            };
        }
    }
    HashOutcome::Unstable
}

/// True when the file was last modified at least `settle` ago (or
/// implausibly far in the future: clock skew must not block it forever).
fn settled(meta: &fs::Metadata, settle: Duration) -> bool {
    let Ok(modified) = meta.modified() else {
        return true;
    };
    let now = SystemTime::now();
    let age = match now.duration_since(modified) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    age >= settle
}

/// Hashes a list of files on `threads` background threads; each result goes
/// to `sink` as soon as it is known. Dropping it does not stop the threads:
/// call [`Hasher::cancel`] (they stop within one buffer read) and then
/// [`Hasher::join`] where blocking is fine.
pub struct Hasher {
    cancel: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Hasher {
    /// Starts hashing `files` (paths relative to `root`). `computed` counts
    /// the files that were read to a hash.
    pub fn start(
        root: PathBuf,
        files: Vec<String>,
        opts: HashOptions,
        computed: Arc<AtomicU64>,
        sink: impl Fn(HashResult) + Send + Sync + 'static,
    ) -> Hasher {
        let cancel = Arc::new(AtomicBool::new(false));
        let files: Arc<[String]> = files.into();
        let next = Arc::new(AtomicUsize::new(0));
        let sink = Arc::new(sink);
        let root = Arc::new(root);
        let threads = (0..opts.threads.max(1).min(files.len().max(1)))
            .filter_map(|i| {
                let (cancel, files, next, sink, root, opts, computed) = (
                    Arc::clone(&cancel),
                    Arc::clone(&files),
                    Arc::clone(&next),
                    Arc::clone(&sink),
                    Arc::clone(&root),
                    opts.clone(),
                    Arc::clone(&computed),
                );
                let spawned = std::thread::Builder::new()
                    .name(format!("hasher-{i}"))
                    .spawn(move || {
                        let mut buf = vec![0u8; BUFFER];
                        while !cancel.load(Ordering::Relaxed) {
                            let Some(rel) = files.get(next.fetch_add(1, Ordering::Relaxed)) else {
                                break;
                            };
                            let outcome =
                                hash_stable_with(&root.join(rel), &opts, &cancel, &mut buf);
                            if matches!(outcome, HashOutcome::Hashed { .. }) {
                                computed.fetch_add(1, Ordering::Relaxed);
                            }
                            sink(HashResult {
                                path: rel.clone(),
                                outcome,
                            });
                        }
                    });
                match spawned {
                    Ok(h) => Some(h),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start a hashing thread");
                        None
                    }
                }
            })
            .collect();
        Hasher { cancel, threads }
    }

    /// Asks the threads to stop after their current buffer.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Waits for every thread (blocking).
    pub fn join(self) {
        for t in self.threads {
            if t.join().is_err() {
                tracing::error!("a hashing thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(settle: Duration) -> HashOptions {
        HashOptions {
            threads: 1,
            settle,
            max_attempts: 3,
            after_read: None,
        }
    }

    #[test]
    fn hashes_a_settled_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"abc").unwrap();
        let out = hash_stable(&p, &opts(Duration::ZERO), &AtomicBool::new(false));
        let HashOutcome::Hashed { stat, sha256 } = out else {
            panic!("{out:?}")
        };
        assert_eq!(stat.size, 3);
        assert_eq!(
            hex::encode(sha256),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_fresh_file_is_left_for_later() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"abc").unwrap();
        let out = hash_stable(
            &p,
            &opts(Duration::from_secs(3600)),
            &AtomicBool::new(false),
        );
        assert!(matches!(out, HashOutcome::Unsettled), "{out:?}");
        let gone = hash_stable(
            &dir.path().join("nope"),
            &opts(Duration::ZERO),
            &AtomicBool::new(false),
        );
        assert!(matches!(gone, HashOutcome::Gone), "{gone:?}");
    }

    #[test]
    fn a_file_that_never_stops_changing_is_unstable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"0").unwrap();
        let mut o = opts(Duration::ZERO);
        o.after_read = Some(Arc::new(|p: &Path, n: u32| {
            fs::write(p, format!("{n}{n}")).unwrap();
        }));
        let out = hash_stable(&p, &o, &AtomicBool::new(false));
        assert!(matches!(out, HashOutcome::Unstable), "{out:?}");
    }
}
