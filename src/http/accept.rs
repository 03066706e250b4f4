//! Accepting connections under a cap, for both listeners: a permit is taken
//! before each accept (past the cap, connections wait in the listen queue
//! instead of holding memory and a task each), and a failing accept (out of
//! file descriptors, say) is retried after a pause that grows while it keeps
//! failing, instead of spinning on the error. Shutdown ends either wait.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The first pause after a failed accept, and the longest.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// A listener with its connection cap.
pub(crate) struct Acceptor {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    /// The pause after the last failed accept, while they keep failing.
    backoff: Option<Duration>,
    /// Which listener, for the log.
    what: &'static str,
}

/// A connection, and its place under the cap: held until it ends.
pub(crate) type Accepted = (OwnedSemaphorePermit, TcpStream, SocketAddr);

impl Acceptor {
    pub(crate) fn new(listener: TcpListener, max_connections: usize, what: &'static str) -> Self {
        Acceptor {
            listener,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            backoff: None,
            what,
        }
    }

    /// The next connection, or `None` once `shutdown` has resolved.
    pub(crate) async fn next<F: Future<Output = ()>>(
        &mut self,
        shutdown: &mut Pin<&mut F>,
    ) -> Option<Accepted> {
        let permit = tokio::select! {
            p = self.permits.clone().acquire_owned() => p.ok()?,
            () = shutdown.as_mut() => return None,
        };
        loop {
            let failed = tokio::select! {
                r = self.listener.accept() => match r {
                    Ok((stream, peer)) => {
                        self.backoff = None;
                        return Some((permit, stream, peer));
                    }
                    Err(e) => e,
                },
                () = shutdown.as_mut() => return None,
            };
            // The pending connection stays queued for the next try.
            let wait = next_accept_backoff(self.backoff);
            self.backoff = Some(wait);
            tracing::warn!(listener = self.what, error = %failed, retry_in = ?wait, "accept failed");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.as_mut() => return None,
            }
        }
    }
}

/// The pause after a failed accept: doubling from the first while accepts
/// keep failing, up to the longest.
fn next_accept_backoff(last: Option<Duration>) -> Duration {
    let (first, longest) = ACCEPT_BACKOFF;
    last.map_or(first, |d| (d * 2).min(longest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_backoff_doubles_up_to_a_second() {
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..9 {
            let next = next_accept_backoff(d);
            seen.push(next.as_millis());
            d = Some(next);
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    }
}
