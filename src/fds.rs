//! File descriptors: the process's limit, raised at start, and the budget
//! that keeps accepting clients from starving probes and upstream
//! connections of descriptors.
//!
//! Every client connection takes one descriptor, two in proxy mode (its
//! upstream connection); probes, trace reads, idle upstream connections,
//! the listeners and the files mirrorgate reads need more. When clients
//! took them all, probes failed to connect and every healthy mirror was
//! marked down. So at start the soft `RLIMIT_NOFILE` is raised to the hard
//! limit, and the public listener's `limits.max_connections` is capped at
//! what the limit leaves after a reserve: accepting runs out first, and a
//! client past the cap waits in the listen queue instead.
//!
//! A probe or an upstream connect that still fails for lack of descriptors
//! ([`out_of_descriptors`]) says nothing about the mirror: probes report it
//! as [`crate::health::FailureReason::OutOfDescriptors`], which changes no
//! state, and the proxy's attempt counts against no mirror's health.

use std::error::Error as StdError;

use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource};

use crate::config::{Config, DeliveryMode};

/// Descriptors kept beside those of connections and the per-mirror ones:
/// the listeners, the runtime's own, logs, GeoIP databases, the origin
/// index's walk or fetch, on-demand checks, Redis, DNS.
pub const BASE_RESERVE: u64 = 64;

/// The soft and hard `RLIMIT_NOFILE`; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// The limit in force, after raising the soft limit to the hard one when
/// it was lower, and the soft limit before, when it was raised.
pub fn raise_nofile() -> (NofileLimit, Option<Option<u64>>) {
    let was = getrlimit(Resource::Nofile);
    let now = NofileLimit {
        soft: was.current,
        hard: was.maximum,
    };
    let lower = match (was.current, was.maximum) {
        (Some(soft), Some(hard)) => soft < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if !lower {
        return (now, None);
    }
    let raised = rustix::process::Rlimit {
        current: was.maximum,
        maximum: was.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => (
            NofileLimit {
                soft: was.maximum,
                hard: was.maximum,
            },
            Some(was.current),
        ),
        // Some systems refuse an unlimited soft limit; keep what there is.
        Err(_) => (now, None),
    }
}

/// A limit for logs: its number, or "unlimited".
pub fn show(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".into(), |n| n.to_string())
}

/// How the descriptor limit is shared out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft limit in force (`None`: unlimited).
    pub limit: Option<u64>,
    /// Kept for everything but public clients' connections:
    /// [`BASE_RESERVE`], two per mirror (a probe and a trace read at once),
    /// `admin.max_connections` (the admin listener's own cap, so that
    /// operators can still look in while the public side is full) and, when
    /// anything may be proxied, `proxy.idle_connections`.
    pub reserve: u64,
    /// Descriptors one client connection may hold: 2 when anything may be
    /// proxied (its upstream connection), else 1.
    pub per_connection: u64,
    /// `limits.max_connections` as configured.
    pub wanted: usize,
}

/// The descriptor limit cannot hold even one connection beside the reserve.
#[derive(Debug, thiserror::Error)]
#[error(
    "the open-file limit ({limit}) leaves no room for connections: mirrorgate keeps {reserve} \
     descriptors for probes, upstream connections and its own files ({per_connection} per \
     connection); raise it (ulimit -n, LimitNOFILE= in systemd) to at least {needed} for \
     limits.max_connections: {wanted}"
)]
pub struct FdError {
    pub limit: u64,
    pub reserve: u64,
    pub per_connection: u64,
    pub wanted: usize,
    pub needed: u64,
}

impl FdBudget {
    /// The budget of `cfg` under `limit`.
    pub fn new(limit: Option<u64>, cfg: &Config) -> FdBudget {
        let proxying = cfg.mode != DeliveryMode::Redirect
            || cfg.rules.iter().any(|r| r.mode != DeliveryMode::Redirect);
        let mirrors = cfg.mirrors.len() as u64;
        let pools = if proxying {
            cfg.proxy.idle_connections as u64
        } else {
            0
        };
        FdBudget {
            limit,
            reserve: BASE_RESERVE + 2 * mirrors + cfg.admin.max_connections as u64 + pools,
            per_connection: if proxying { 2 } else { 1 },
            wanted: cfg.limits.max_connections,
        }
    }

    /// The descriptors `wanted` connections and the reserve need.
    pub fn needed(&self) -> u64 {
        self.reserve + self.per_connection * self.wanted as u64
    }

    /// How many connections the public listener may serve at once: the
    /// configured number, or fewer when the limit cannot hold them; an
    /// error when it cannot hold one.
    pub fn max_connections(&self) -> Result<usize, FdError> {
        let Some(limit) = self.limit else {
            return Ok(self.wanted);
        };
        let fit = limit.saturating_sub(self.reserve) / self.per_connection;
        if fit == 0 {
            return Err(FdError {
                limit,
                reserve: self.reserve,
                per_connection: self.per_connection,
                wanted: self.wanted,
                needed: self.needed(),
            });
        }
        Ok(usize::try_from(fit).map_or(self.wanted, |fit| fit.min(self.wanted)))
    }
}

/// True when `err` or one of its causes is an `io::Error` for lack of file
/// descriptors (EMFILE for the process, ENFILE for the system): a local
/// condition, never the remote end's fault. Looks inside `io::Error`s,
/// whose `source` skips the error they wrap.
pub fn out_of_descriptors(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if is_fd_errno(io) {
                return true;
            }
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
                continue;
            }
        }
        next = e.source();
    }
    false
}

/// EMFILE or ENFILE.
pub fn is_fd_errno(e: &std::io::Error) -> bool {
    let fd_errnos = [Errno::MFILE.raw_os_error(), Errno::NFILE.raw_os_error()];
    e.raw_os_error().is_some_and(|n| fd_errnos.contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(extra: &str, mirrors: usize) -> Config {
        let mut y = format!("fallback: http://origin.example.org/\n{extra}\nmirrors:\n");
        for i in 0..mirrors {
            y.push_str(&format!(
                "  - name: m{i}\n    url: http://m{i}.example.org/\n"
            ));
        }
        Config::from_yaml(&y, Path::new(".")).unwrap()
    }

    #[test]
    fn redirect_mode_keeps_two_per_mirror_and_one_per_connection() {
        let c = cfg("limits:\n  max_connections: 1000", 10);
        let b = FdBudget::new(Some(1024), &c);
        assert_eq!((b.reserve, b.per_connection), (64 + 20 + 64, 1));
        assert_eq!(b.needed(), 1148);
        // 1024 - 148 fit, fewer than asked.
        assert_eq!(b.max_connections().unwrap(), 876);
        let b = FdBudget::new(Some(65536), &c);
        assert_eq!(b.max_connections().unwrap(), 1000);
        let b = FdBudget::new(None, &c);
        assert_eq!(b.max_connections().unwrap(), 1000);
    }

    #[test]
    fn proxying_keeps_the_idle_pool_and_two_per_connection() {
        let c = cfg("mode: auto\nproxy:\n  idle_connections: 100", 3);
        let b = FdBudget::new(Some(1024), &c);
        assert_eq!((b.reserve, b.per_connection), (64 + 6 + 64 + 100, 2));
        assert_eq!(b.max_connections().unwrap(), (1024 - 234) / 2);
        // A rule that proxies is enough.
        let c = cfg("rules:\n  - { pattern: \"*.xml\", mode: proxy }", 3);
        assert_eq!(FdBudget::new(Some(1024), &c).per_connection, 2);
    }

    #[test]
    fn a_limit_that_holds_no_connection_is_an_error_with_the_numbers() {
        let c = cfg("", 100);
        let b = FdBudget::new(Some(300), &c);
        let e = b.max_connections().unwrap_err();
        assert_eq!((e.limit, e.reserve, e.needed), (300, 328, 328 + 10_000));
        let msg = e.to_string();
        assert!(
            msg.contains("(300)") && msg.contains("328") && msg.contains("10328"),
            "{msg}"
        );
    }

    #[test]
    fn descriptor_errors_are_found_anywhere_in_the_chain() {
        let emfile = std::io::Error::from_raw_os_error(Errno::MFILE.raw_os_error());
        assert!(out_of_descriptors(&emfile));
        let enfile = std::io::Error::from_raw_os_error(Errno::NFILE.raw_os_error());
        let wrapped = std::io::Error::other(enfile);
        assert!(out_of_descriptors(&wrapped));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!out_of_descriptors(&refused));
    }

    #[test]
    fn raising_is_idempotent() {
        let (first, _) = raise_nofile();
        let (second, raised) = raise_nofile();
        assert_eq!(first, second);
        assert_eq!(raised, None);
    }
}
