//! The timer behind hyper's HTTP/1 header read timeout (the Slowloris guard) and the
//! upstream timeout: deadlines checked a few times per timeout, not to the millisecond.
//!
//! hyper starts that timer for every request (it also covers the idle wait between requests
//! of a keep-alive connection) and drops it as soon as the head has arrived. On tokio's timer
//! a wait that blocks joins the timer wheel under the driver's lock and leaves it when
//! dropped; callgrind put tokio's share at ~700 instructions per request, nearly all for a
//! deadline that is never reached. Here a blocked wait takes a slot in a list (given back
//! when the sleep is dropped), and one sweeper task wakes the waits whose deadline has passed,
//! every `resolution`: ~450–550 instructions less per request (`bench/RESULTS.md`). The
//! upstream timeout (`forward`) is the same kind of deadline, set for every proxied request
//! and almost never reached, so it uses a timer of its own (unboxed, [`CoarseTimer::sleep_for`]).
//!
//! A timeout never fires early, and fires at most one `resolution` (plus scheduling delay)
//! late; [`CoarseTimer::for_timeout`] makes that a tenth of the timeout, kept between 5 ms
//! and 1 s. The sweep visits every slot ever used at once (the peak number of blocked waits:
//! for the header timer at most the open connections, for the upstream timer the requests
//! waiting for their upstream at once, up to 256 per HTTP/2 connection): with 10,000 slots and
//! 1-s ticks, ~10 µs a second. Every timer is one list under one lock, taken on a wait's
//! first blocked poll and on its drop; on one core that costs less than tokio's wheel, and
//! with many cores it is a point of contention that has not been measured.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A [`hyper::rt::Timer`] with deadlines checked every `resolution`. Cloning shares the
/// sweeper.
#[derive(Clone)]
pub struct CoarseTimer {
    waits: Arc<Waits>,
    resolution: Duration,
}

/// The blocked waits, by slot. A slot belongs to one sleep from its first blocked poll until
/// it is dropped.
struct Waits {
    slots: Mutex<Slots>,
    /// When the sweeper last looked, in nanoseconds after `base` (0: not yet). A deadline at
    /// or before it has passed, so a sleep polled after that is ready without reading the
    /// clock: a clock reading is ~20 ns, and hyper's header timer and the upstream timeout
    /// poll a sleep for nearly every request.
    swept: AtomicU64,
    base: Instant,
}

impl Default for Waits {
    fn default() -> Self {
        Waits {
            slots: Mutex::default(),
            swept: AtomicU64::new(0),
            base: Instant::now(),
        }
    }
}

#[derive(Default)]
struct Slots {
    /// `(deadline, waker)`; the waker is taken when the sweeper wakes it.
    entries: Vec<Option<(Instant, Option<Waker>)>>,
    free: Vec<usize>,
}

impl Waits {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding the lock leaves the list consistent (every update is one
        // assignment), so a poisoned lock is still usable.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes each blocked wait whose deadline is at or before `now`, once.
    fn wake_due(&self, now: Instant) {
        // Published before the wake-ups, so that a woken sleep finds its deadline passed.
        let nanos = now.saturating_duration_since(self.base).as_nanos();
        self.swept.fetch_max(
            u64::try_from(nanos).unwrap_or(u64::MAX).max(1),
            Ordering::Release,
        );
        let due: Vec<Waker> = self
            .lock()
            .entries
            .iter_mut()
            .filter_map(|e| match e {
                Some((deadline, waker)) if *deadline <= now => waker.take(),
                _ => None,
            })
            .collect();
        // Woken outside the lock: a wake can run the task at once on another thread.
        due.into_iter().for_each(Waker::wake);
    }

    /// Whether the sweeper has seen `deadline` pass.
    fn passed(&self, deadline: Instant) -> bool {
        match self.swept.load(Ordering::Acquire) {
            0 => false,
            nanos => deadline <= self.base + Duration::from_nanos(nanos),
        }
    }
}

impl CoarseTimer {
    /// A timer whose sweeper runs on the current tokio runtime until the timer and every
    /// sleep it made are dropped. Must be called from within the runtime that serves the
    /// connections: on another runtime, the sweeper stops when that runtime does, and
    /// deadlines are then only noticed when hyper polls the sleep for other reasons.
    pub fn new(resolution: Duration) -> CoarseTimer {
        let waits = Arc::new(Waits::default());
        tokio::spawn(sweep(Arc::downgrade(&waits), resolution));
        CoarseTimer { waits, resolution }
    }

    /// A timer for deadlines of about `timeout`: checked every tenth of it, kept between
    /// 5 ms and 1 s. Same requirement as [`CoarseTimer::new`].
    pub fn for_timeout(timeout: Duration) -> CoarseTimer {
        CoarseTimer::new((timeout / 10).clamp(Duration::from_millis(5), Duration::from_secs(1)))
    }

    /// How often the deadlines are checked.
    pub fn resolution(&self) -> Duration {
        self.resolution
    }

    /// A wait of `duration` from now, for callers other than hyper (not boxed).
    pub fn sleep_for(&self, duration: Duration) -> CoarseSleep {
        CoarseSleep {
            deadline: deadline_after(duration),
            waits: Arc::clone(&self.waits),
            slot: None,
        }
    }
}

/// `duration` from now; a duration too long for `Instant` (a configured timeout of billions
/// of years) waits ~30 years instead of panicking, as `tokio::time` does.
fn deadline_after(duration: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(duration)
        .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365 * 30)))
        .unwrap_or(now)
}

/// Wakes the blocked waits whose deadline has passed, every `resolution`.
async fn sweep(waits: Weak<Waits>, resolution: Duration) {
    let mut ticks = tokio::time::interval(resolution);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(waits) = waits.upgrade() else { return };
        waits.wake_due(Instant::now());
    }
}

impl hyper::rt::Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(deadline_after(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(CoarseSleep {
            deadline,
            waits: Arc::clone(&self.waits),
            slot: None,
        })
    }
}

/// A wait on a [`CoarseTimer`]: ready once the sweeper has seen its deadline pass, so never
/// early and at most one resolution late (a deadline that has passed by its first poll
/// included: the clock is not read).
pub struct CoarseSleep {
    deadline: Instant,
    waits: Arc<Waits>,
    slot: Option<usize>,
}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.waits.passed(this.deadline) {
            return Poll::Ready(());
        }
        let mut slots = this.waits.lock();
        match this.slot {
            Some(i) => {
                let current = &mut slots.entries[i];
                if let Some((_, Some(waker))) = current {
                    if waker.will_wake(cx.waker()) {
                        return Poll::Pending;
                    }
                }
                // The waker replaced (or already taken by the sweeper) is dropped outside
                // the lock.
                let old = current.replace((this.deadline, Some(cx.waker().clone())));
                drop(slots);
                drop(old);
            }
            None => {
                let entry = Some((this.deadline, Some(cx.waker().clone())));
                let i = match slots.free.pop() {
                    Some(i) => {
                        slots.entries[i] = entry;
                        i
                    }
                    None => {
                        slots.entries.push(entry);
                        slots.entries.len() - 1
                    }
                };
                this.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl hyper::rt::Sleep for CoarseSleep {}

impl CoarseSleep {
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline, earlier or later; a wait already registered moves with it. Poll
    /// the sleep again after a reset: a wait the sweeper has already woken is registered anew
    /// only by its next poll.
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let Some(i) = self.slot {
            if let Some((d, _)) = &mut self.waits.lock().entries[i] {
                *d = deadline;
            }
        }
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let waker = {
                let mut slots = self.waits.lock();
                slots.free.push(i);
                slots.entries[i].take()
            };
            // The waker (a reference to the task) is dropped outside the lock.
            drop(waker);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl futures_util::task::ArcWake for Wakes {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A timer without its sweeper task: the tests call `wake_due` with the time they choose.
    fn timer() -> CoarseTimer {
        CoarseTimer {
            waits: Arc::new(Waits::default()),
            resolution: Duration::from_millis(5),
        }
    }

    #[test]
    fn a_wait_is_woken_once_its_deadline_has_passed_and_not_before() {
        let timer = timer();
        let wakes = Arc::new(Wakes::default());
        let waker = futures_util::task::waker(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut sleep = timer.sleep_until(deadline);
        assert!(sleep.as_mut().poll(&mut cx).is_pending());

        timer.waits.wake_due(deadline - Duration::from_millis(1));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0, "woken early");
        timer.waits.wake_due(deadline);
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        timer.waits.wake_due(deadline + Duration::from_secs(1));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1, "woken twice");
    }

    #[test]
    fn a_deadline_the_sweeper_has_passed_is_ready_at_once() {
        let timer = timer();
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let swept = Instant::now();
        timer.waits.wake_due(swept);
        for deadline in [swept - Duration::from_millis(1), swept] {
            let mut sleep = timer.sleep_until(deadline);
            assert!(sleep.as_mut().poll(&mut cx).is_ready());
        }
        assert!(timer.waits.lock().entries.is_empty(), "no slot taken");
    }

    #[test]
    fn a_deadline_passed_since_the_last_sweep_waits_for_the_next() {
        let timer = timer();
        let wakes = Arc::new(Wakes::default());
        let waker = futures_util::task::waker(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        // Not yet swept at all, and swept before the deadline: the clock is not read, so
        // the sleep waits for the sweep that sees its deadline pass.
        let deadline = Instant::now();
        let mut sleep = timer.sleep_until(deadline);
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        timer.waits.wake_due(deadline - Duration::from_millis(1));
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0, "woken early");
        timer.waits.wake_due(deadline + Duration::from_millis(5));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        assert!(sleep.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_dropped_sleep_gives_its_slot_back() {
        let timer = timer();
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        for _ in 0..3 {
            let mut sleep = timer.sleep(Duration::from_secs(60));
            assert!(sleep.as_mut().poll(&mut cx).is_pending());
            assert!(sleep.as_mut().poll(&mut cx).is_pending());
            drop(sleep);
        }
        let slots = timer.waits.lock();
        assert_eq!(
            slots.entries.len(),
            1,
            "one slot, kept over polls and reused"
        );
        assert!(slots.entries[0].is_none());
        assert_eq!(slots.free, vec![0]);
    }

    #[test]
    fn a_wait_polled_again_by_another_task_wakes_that_task() {
        let timer = timer();
        let (first, second) = (Arc::new(Wakes::default()), Arc::new(Wakes::default()));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut sleep = timer.sleep_until(deadline);
        for wakes in [&first, &second] {
            let waker = futures_util::task::waker(Arc::clone(wakes));
            assert!(sleep
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
        }
        timer.waits.wake_due(deadline);
        assert_eq!(first.0.load(Ordering::Relaxed), 0);
        assert_eq!(second.0.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn the_sweeper_ends_a_wait_on_a_real_runtime() {
        let timer = CoarseTimer::new(Duration::from_millis(5));
        let ended = tokio::time::timeout(
            Duration::from_secs(10),
            timer.sleep(Duration::from_millis(20)),
        )
        .await;
        assert!(ended.is_ok(), "the sweeper never woke the wait");
    }

    #[tokio::test]
    async fn a_reset_wait_ends_at_its_new_deadline_and_gives_its_slot_back() {
        let timer = CoarseTimer::new(Duration::from_millis(5));
        let started = Instant::now();
        let mut sleep = timer.sleep_for(Duration::from_secs(60));
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        // Registered with the 60-s deadline, then moved to 20 ms.
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        sleep.reset(started + Duration::from_millis(20));
        assert_eq!(sleep.deadline(), started + Duration::from_millis(20));
        let ended = tokio::time::timeout(Duration::from_secs(10), &mut sleep).await;
        assert!(ended.is_ok(), "the sweeper never woke the moved wait");
        assert!(started.elapsed() >= Duration::from_millis(20), "not early");
        // And later again: pending until then.
        sleep.reset(Instant::now() + Duration::from_secs(60));
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        drop(sleep);
        let slots = timer.waits.lock();
        assert!(slots.entries.iter().all(Option::is_none));
    }

    #[test]
    fn a_timeout_too_long_for_instant_waits_instead_of_panicking() {
        let timer = timer();
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let mut sleep = timer.sleep_for(Duration::MAX);
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        assert!(timer
            .sleep(Duration::MAX)
            .as_mut()
            .poll(&mut cx)
            .is_pending());
    }
}
