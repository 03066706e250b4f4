//! The sd_notify protocol: tells systemd (or anything that sets
//! `NOTIFY_SOCKET`) when the service is ready, reloading, stopping, how many
//! mirrors are up, and that it is alive (the watchdog).
//!
//! Messages are datagrams of `KEY=VALUE` lines sent to the socket named by
//! `NOTIFY_SOCKET`: a path, or an abstract name when it starts with `@`.
//! Everything here is best effort: a lost message is logged, never an error
//! of the service, and a send never blocks (the socket is non-blocking).
//! Nothing here runs on the request path.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::health::HealthState;
use crate::state::{Snapshot, State};

/// A datagram socket connected to the notification socket.
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` asks for, if any. A value that names no
    /// usable socket is logged and ignored: the service runs without it.
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        match Notifier::new(value.as_encoded_bytes()) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(socket = ?value, "NOTIFY_SOCKET is unusable, not notifying: {e}");
                None
            }
        }
    }

    /// A notifier for this socket: a path, or `@name` for an abstract name.
    pub fn new(name: &[u8]) -> io::Result<Notifier> {
        let addr = match name.split_first() {
            None => return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty name")),
            Some((b'@', rest)) => abstract_addr(rest)?,
            Some(_) => {
                use std::os::unix::ffi::OsStrExt;
                SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(name))?
            }
        };
        let socket = UnixDatagram::unbound()?;
        // A full queue on systemd's side must not stall the process: the
        // message is dropped (and logged) instead.
        socket.set_nonblocking(true)?;
        Ok(Notifier { socket, addr })
    }

    /// Sends one message (newline-separated assignments).
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            tracing::warn!("sd_notify: cannot send {message:?}: {e}");
        }
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket names exist only on Linux",
    ))
}

/// Half the watchdog period systemd asks for (`WATCHDOG_USEC`), when it asks
/// this process (`WATCHDOG_PID` unset or ours): pinging at half the period
/// leaves room for one late ping.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_of(&usec, pid.as_deref(), std::process::id())
}

fn watchdog_interval_of(usec: &str, pid: Option<&str>, own: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own {
            return None;
        }
    }
    let usec: u64 = usec.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// CLOCK_MONOTONIC in microseconds, which systemd compares with its own
/// clock to tell this reload from an earlier one (`MONOTONIC_USEC=`).
pub fn monotonic_usec() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec.max(0) as u64) * 1_000_000 + (t.tv_nsec.max(0) as u64) / 1_000
}

/// The `STATUS=` line: how many enabled mirrors are up.
pub fn status(snap: &Snapshot) -> String {
    let enabled = snap.mirrors.iter().filter(|e| e.mirror.enabled);
    let total = enabled.clone().count();
    let up = enabled
        .filter(|e| e.health.state == HealthState::Up)
        .count();
    let phase = if snap.ready { "serving" } else { "starting" };
    format!("STATUS={phase}: {up} of {total} mirrors up")
}

/// The service's side of the protocol, for the lifetime of `serve`: a task
/// that announces readiness and status changes and pings the watchdog, and
/// the reload and stop messages. Without `NOTIFY_SOCKET` every call does
/// nothing.
pub struct SdNotify {
    notifier: Option<Arc<Notifier>>,
    /// Set once `READY=1` was sent: a reload before that is not announced,
    /// since systemd still waits for the first readiness.
    announced: Arc<AtomicBool>,
    task: Option<JoinHandle<()>>,
}

impl SdNotify {
    /// Starts notifying as the environment asks (nothing without `NOTIFY_SOCKET`).
    pub fn start(state: &Arc<State>) -> SdNotify {
        let announced = Arc::new(AtomicBool::new(false));
        let Some(notifier) = Notifier::from_env().map(Arc::new) else {
            return SdNotify {
                notifier: None,
                announced,
                task: None,
            };
        };
        let task = tokio::spawn(watch_state(
            notifier.clone(),
            state.clone(),
            announced.clone(),
            watchdog_interval(),
        ));
        SdNotify {
            notifier: Some(notifier),
            announced,
            task: Some(task),
        }
    }

    /// Before a reload: `RELOADING=1` with the time it started.
    pub fn reloading(&self) {
        if let Some(n) = self.announced() {
            n.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
        }
    }

    /// After a reload, whether it applied or was refused (the old config
    /// keeps serving either way): `READY=1` and the status.
    pub fn reloaded(&self, state: &State, result: &Result<u64, String>) {
        if let Some(n) = self.announced() {
            let status = match result {
                Ok(_) => status(&state.load()),
                Err(_) => format!("{} (last reload refused)", status(&state.load())),
            };
            n.send(&format!("READY=1\n{status}"));
        }
    }

    /// On shutdown, before draining.
    pub fn stopping(&self) {
        if let Some(n) = &self.notifier {
            n.send("STOPPING=1\nSTATUS=draining in-flight requests");
        }
    }

    fn announced(&self) -> Option<&Notifier> {
        let n = self.notifier.as_deref()?;
        self.announced.load(Ordering::SeqCst).then_some(n)
    }
}

impl Drop for SdNotify {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Follows the published snapshots: `READY=1` when readiness latches, a new
/// `STATUS=` when the count of mirrors up changes, and `WATCHDOG=1` while the
/// state owner is alive (once it has stopped, the pings stop and systemd
/// restarts the service).
async fn watch_state(
    n: Arc<Notifier>,
    state: Arc<State>,
    announced: Arc<AtomicBool>,
    watchdog: Option<Duration>,
) {
    let mut rx = state.watch();
    let mut last_status = String::new();
    // Without a watchdog the timer still exists, but its branch is disabled.
    let mut tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (ready, line) = {
            let snap = state.load();
            (snap.ready, status(&snap))
        };
        if ready && !announced.load(Ordering::SeqCst) {
            n.send(&format!("READY=1\n{line}"));
            announced.store(true, Ordering::SeqCst);
            last_status = line;
        } else if line != last_status {
            n.send(&line);
            last_status = line;
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tick.tick(), if watchdog.is_some() => n.send("WATCHDOG=1"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_period_is_halved_and_only_for_this_process() {
        assert_eq!(
            watchdog_interval_of("30000000", None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval_of("30000000", Some("7"), 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_interval_of("30000000", Some("8"), 7), None);
        assert_eq!(watchdog_interval_of("0", None, 7), None);
        assert_eq!(watchdog_interval_of("soon", None, 7), None);
    }

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_usec();
        let b = monotonic_usec();
        assert!(a > 0 && b >= a);
    }

    #[test]
    fn path_and_abstract_names_reach_their_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(path.as_os_str().as_encoded_bytes()).unwrap();
        n.send("READY=1");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");

        let name = format!("mirrorgate-notify-test-{}", std::process::id());
        let listener = UnixDatagram::bind_addr(&abstract_addr(name.as_bytes()).unwrap()).unwrap();
        let n = Notifier::new(format!("@{name}").as_bytes()).unwrap();
        n.send("STOPPING=1");
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1");

        assert!(Notifier::new(b"").is_err());
    }
}
