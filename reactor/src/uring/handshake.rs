//! The park/unpark handshake between a ring's owner and the threads that wake it, apart from
//! the ring, so that loom can run it with an abstract eventfd (`loom_tests` below,
//! `ci/loom.sh`).
//!
//! One word, `AWAKE` / `PARKED` / `NOTIFIED`:
//!
//! 1. The owner, about to wait in the kernel, announces itself with `AWAKE → PARKED`
//!    ([`Handshake::announce_park`]). If the word is `NOTIFIED` instead, an unpark came first:
//!    the owner does not wait (it enters the kernel without waiting and reaps) and sets
//!    `AWAKE`.
//! 2. A waker swaps in `NOTIFIED` ([`Handshake::notify`]); only if it took `PARKED` out does
//!    it write the eventfd, whose read the owner keeps armed in the ring. So a busy owner
//!    costs its wakers no syscall, and a parked one gets exactly the write it needs.
//! 3. Back from the kernel (woken, timed out or with completions), the owner sets `AWAKE`
//!    ([`Handshake::awake`]) and reaps.
//!
//! No wake-up is lost: a waker that runs before step 1 leaves `NOTIFIED`, which step 1
//! sees; one that runs after it takes `PARKED` out and writes the eventfd, which completes
//! the owner's wait. The waker's own work (a queued task) is published before its swap, so
//! an owner that sees `NOTIFIED`, or is woken, sees that work too.

use crate::loom::sync::{AtomicUsize, Ordering::SeqCst};

const AWAKE: usize = 0;
const PARKED: usize = 1;
const NOTIFIED: usize = 2;

/// The handshake word; see the module docs.
pub(crate) struct Handshake {
    state: AtomicUsize,
}

impl Handshake {
    pub(crate) fn new() -> Handshake {
        Handshake {
            state: AtomicUsize::new(AWAKE),
        }
    }

    /// Step 1: `true` if the owner is now `PARKED` and may wait; `false` if an unpark came
    /// first (the word is `AWAKE` again, and the owner must not wait).
    pub(crate) fn announce_park(&self) -> bool {
        if self
            .state
            .compare_exchange(AWAKE, PARKED, SeqCst, SeqCst)
            .is_ok()
        {
            return true;
        }
        self.state.store(AWAKE, SeqCst);
        false
    }

    /// Step 2: `true` if the owner was `PARKED`, so the caller must write the eventfd.
    pub(crate) fn notify(&self) -> bool {
        self.state.swap(NOTIFIED, SeqCst) == PARKED
    }

    /// Step 3, and the end of a park that did not wait.
    pub(crate) fn awake(&self) {
        self.state.store(AWAKE, SeqCst);
    }

    /// Whether the owner is waiting in the kernel now.
    pub(crate) fn is_parked(&self) -> bool {
        self.state.load(SeqCst) == PARKED
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::{Arc, Condvar, Mutex};

    /// The eventfd with the owner's armed read: `write` adds to the counter; the owner's
    /// wait in the kernel returns when the counter is non-zero, and the read resets it.
    #[derive(Default)]
    struct Eventfd {
        count: Mutex<u64>,
        readable: Condvar,
    }

    impl Eventfd {
        fn write(&self) {
            *self.count.lock().unwrap() += 1;
            self.readable.notify_one();
        }

        /// `io_uring_enter` waiting for one completion with no timeout: only the eventfd
        /// read can complete it here.
        fn wait_and_read(&self) {
            let mut count = self.count.lock().unwrap();
            while *count == 0 {
                count = self.readable.wait(count).unwrap();
            }
            *count = 0;
        }
    }

    struct Ring {
        handshake: Handshake,
        eventfd: Eventfd,
        /// The work wakers publish before they unpark (queued tasks).
        work: AtomicUsize,
    }

    /// The owner's loop: look for work, else park (steps 1–3) with no timeout. Returns how
    /// many times it waited in the kernel. loom reports a deadlock if a wake is lost.
    fn owner(ring: &Ring, works: usize) -> usize {
        let mut waits = 0;
        let mut seen = 0;
        while seen < works {
            let new = ring.work.swap(0, SeqCst);
            if new > 0 {
                seen += new;
                continue;
            }
            if ring.handshake.announce_park() {
                ring.eventfd.wait_and_read();
                waits += 1;
            }
            ring.handshake.awake();
        }
        waits
    }

    fn waker(ring: &Ring) {
        ring.work.fetch_add(1, SeqCst);
        if ring.handshake.notify() {
            ring.eventfd.write();
        }
    }

    fn ring() -> Arc<Ring> {
        Arc::new(Ring {
            handshake: Handshake::new(),
            eventfd: Eventfd::default(),
            work: AtomicUsize::new(0),
        })
    }

    /// One waker: the owner always returns with the work seen, and waited at most once.
    #[test]
    fn loom_ring_unpark_is_never_lost() {
        loom::model(|| {
            let r = ring();
            let r2 = r.clone();
            let t = loom::thread::spawn(move || waker(&r2));
            assert!(owner(&r, 1) <= 1);
            t.join().unwrap();
            assert!(!r.handshake.is_parked());
        });
    }

    /// Two wakers racing with an owner that must see both works, so it may park twice: no
    /// interleaving leaves it waiting (a write left over from the first park, or a
    /// `NOTIFIED` left by a waker that found the owner busy, only makes a wait shorter).
    #[test]
    fn loom_ring_two_wakers_two_parks() {
        loom::model(|| {
            let r = ring();
            let (a, b) = (r.clone(), r.clone());
            let ta = loom::thread::spawn(move || waker(&a));
            let tb = loom::thread::spawn(move || waker(&b));
            assert!(owner(&r, 2) <= 2);
            ta.join().unwrap();
            tb.join().unwrap();
        });
    }
}
