//! Shutdown for the connections of the direct path (`conn.rs`): a flag, and
//! a waker per connection so that an idle one closes at once.
//!
//! A connection checks for shutdown every time it waits for a request, so
//! the check must be cheap: an atomic load and a waker registration. A tokio
//! `watch` or `Notify` takes a lock on every such wait, which showed in the
//! cost of an answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

/// The listener's side: says stop once.
#[derive(Default)]
pub struct Stop {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    stopped: AtomicBool,
    next_id: AtomicU64,
    /// The connections alive, by id.
    waiting: Mutex<HashMap<u64, Arc<AtomicWaker>>>,
}

impl Stop {
    /// A connection's side of the signal.
    pub fn subscribe(&self) -> StopWait {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let waker = Arc::new(AtomicWaker::new());
        self.inner
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, waker.clone());
        StopWait {
            inner: self.inner.clone(),
            id,
            waker,
        }
    }

    /// Tells every connection, present and future, to stop.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        let waiting = self
            .inner
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for w in waiting.values() {
            w.wake();
        }
    }
}

/// A connection's side: ready once the listener stops.
pub struct StopWait {
    inner: Arc<Inner>,
    id: u64,
    waker: Arc<AtomicWaker>,
}

impl StopWait {
    pub fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        // Registered before the flag is read: a stop in between still wakes.
        self.waker.register(cx.waker());
        if self.inner.stopped.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for StopWait {
    fn drop(&mut self) {
        self.inner
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn a_waiting_connection_wakes_on_stop() {
        let stop = Stop::default();
        let a = stop.subscribe();
        let waiter = tokio::spawn(async move { poll_fn(|cx| a.poll_stopped(cx)).await });
        stop.stop();
        waiter.await.unwrap();
        // One that subscribes later sees it at once.
        let b = stop.subscribe();
        poll_fn(|cx| b.poll_stopped(cx)).await;
    }

    #[test]
    fn a_finished_connection_is_forgotten() {
        let stop = Stop::default();
        let a = stop.subscribe();
        let b = stop.subscribe();
        assert_eq!(stop.inner.waiting.lock().unwrap().len(), 2);
        drop(a);
        drop(b);
        assert!(stop.inner.waiting.lock().unwrap().is_empty());
    }
}
