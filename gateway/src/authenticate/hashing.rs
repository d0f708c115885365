//! A small pool of low-priority threads that verify passwords.
//!
//! Password hashes are slow on purpose, so a flood of wrong passwords is a flood of CPU work.
//! Verification runs here, on one thread per CPU, each at nice 15, so the scheduler gives the
//! threads that serve cached logins, anonymous routes and 401s the CPU first: a wrong-password
//! flood slows other new logins, not the users who are already verified. The queue is bounded
//! (`server.hash_queue`); when it is full, a new verification waits for room at most
//! `server.hash_wait` and is then refused as [`Busy`] (answered 503 with `Retry-After`), so a
//! flood cannot make every sign-in wait behind thousands of queued hashes.

use std::sync::{Arc, Mutex};

use thread_priority::{ThreadPriority, ThreadPriorityValue};
use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// Crossplatform priority 10 of 0..=99 maps to nice 15 on Linux (thread-priority's mapping).
/// CFS weighs nice 15 at 29 against 1024 for nice 0: a core saturated by both request
/// handling and a wrong-password flood gives hashing about 3% of it, so verified users keep
/// about 97% of their throughput (nice 9, the earlier value, gave hashing ~10%). The price:
/// on a saturated core a new sign-in's first hash takes ~35x its normal time (~2 s for
/// bcrypt-10) until the load drops.
const PRIORITY: u8 = 10;

pub struct HashPool {
    tx: mpsc::Sender<Job>,
    wait: std::time::Duration,
}

/// The pool's queue stayed full for longer than `hash_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl HashPool {
    /// Starts `threads` worker threads with room for `queue` waiting verifications.
    pub fn new(threads: usize, queue: usize, wait: std::time::Duration) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("hash-{i}"))
                .spawn(move || {
                    if let Ok(p) = ThreadPriorityValue::try_from(PRIORITY) {
                        if let Err(e) = thread_priority::set_current_thread_priority(
                            ThreadPriority::Crossplatform(p),
                        ) {
                            tracing::warn!("cannot lower the priority of hashing threads: {e:?}");
                        }
                    }
                    loop {
                        // Only one idle thread waits on the channel; the others wait for the lock.
                        let job = match rx.lock() {
                            Ok(mut rx) => rx.blocking_recv(),
                            Err(_) => None,
                        };
                        match job {
                            Some(job) => job(),
                            None => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a hashing thread: {e}");
            }
        }
        HashPool { tx, wait }
    }

    /// Runs `f` on a hashing thread and returns its result; [`Busy`] if the queue stayed full
    /// for `hash_wait` (or the pool is gone).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The request gave up while the job waited (its client went away, or the client
            // connection closed): nobody is left to use the answer, so it is not worth a hash.
            // A flood's abandoned guesses then cost no CPU after the flood stops.
            if done.is_closed() {
                return;
            }
            let _ = done.send(f());
        });
        match tokio::time::timeout(self.wait, self.tx.send(job)).await {
            Ok(Ok(())) => result.await.map_err(|_| Busy),
            _ => Err(Busy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn a_verification_nobody_waits_for_any_more_is_skipped() {
        let pool = Arc::new(HashPool::new(1, 4, std::time::Duration::from_secs(5)));
        // The one thread is busy with a first job until released.
        let (started_tx, started_rx) = oneshot::channel();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let p = Arc::clone(&pool);
        let first = tokio::spawn(async move {
            p.run(move || {
                let _ = started_tx.send(());
                let _ = hold.recv();
            })
            .await
        });
        started_rx.await.expect("the first job starts");
        // A second job is queued behind it, then its request gives up.
        let ran = Arc::new(AtomicBool::new(false));
        let (p, r) = (Arc::clone(&pool), Arc::clone(&ran));
        let second =
            tokio::spawn(async move { p.run(move || r.store(true, Ordering::SeqCst)).await });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        second.abort();
        assert!(second.await.is_err(), "the second request was cancelled");
        release.send(()).expect("release the first job");
        assert_eq!(first.await.expect("first task"), Ok(()));
        // A third job runs after the second was taken off the queue: skipped, never run.
        assert_eq!(pool.run(|| 7).await, Ok(7));
        assert!(
            !ran.load(Ordering::SeqCst),
            "an abandoned verification was hashed"
        );
    }
}
