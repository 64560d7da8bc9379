//! `WEFT_CQ_STATS=1`: a diagnostic of how long posted completions wait to be reaped.
//!
//! With the variable set, every ring registers here when its owner enables it, and one
//! thread samples every ring's completion-queue indices ([`CqIndex`](super::cqindex))
//! every 200 µs. A *late episode* is a span in which completions sat posted with the
//! queue's head unmoved for over 1 ms. For each, the sampler reads the owner thread's
//! `/proc` schedstat at the 1 ms mark and when the episode ends, and files it under what
//! the owner did meanwhile: *descheduled* (more than half the time waiting on a run
//! queue: runnable, with no CPU), *running* (more than half on a CPU: busy in tasks, not
//! reaping) or *sleeping* (neither). It also notes whether the owner was parked in the
//! kernel at the 1 ms mark. Once a second it prints one line per ring to stderr:
//!
//! ```text
//! cqstats ring0 cq: late 12 desched 9 running 2 sleeping 1 parked 8 late_ms 31.2 max_ms 4.1 | taskrun: ... | taken 140
//! ```
//!
//! `cq` counts posted completions left unreaped (another thread could reap those);
//! `taskrun` spans with the kernel's `IORING_SQ_TASKRUN` flag set for over 1 ms: task work
//! queued for the owner thread, which on a `COOP_TASKRUN` ring posts a socket op's
//! completion and which only the owner can run. `taken`: op completions reaped by a thread
//! other than the owner, so far. The
//! sampler costs a CPU wake-up every 200 µs: it is for diagnosis, never on by default. On a
//! loaded machine it waits for a CPU too, so its samples come late and short episodes
//! are missed: the counts are a floor, and the split between classes is the figure.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::Shared;

/// Whether `WEFT_CQ_STATS` asks for the sampler (read once).
pub(super) fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("WEFT_CQ_STATS").is_some_and(|v| v != "0"))
}

static RINGS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Registers a ring whose owner (the calling thread) has just enabled it, and starts the
/// sampler with the first one.
pub(super) fn register(shared: &Arc<Shared>) {
    static STARTED: OnceLock<()> = OnceLock::new();
    RINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Arc::downgrade(shared));
    STARTED.get_or_init(|| {
        let _ = std::thread::Builder::new()
            .name("weft-cqstats".into())
            .spawn(sample);
    });
}

/// A thread's cumulative on-CPU and run-queue wait nanoseconds.
fn schedstat(tid: i32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let mut it = s.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some((it.next()??, it.next()??))
}

#[derive(Default)]
struct Totals {
    late: u64,
    desched: u64,
    running: u64,
    sleeping: u64,
    parked: u64,
    late_time: Duration,
    max: Duration,
}

impl Totals {
    fn line(&self) -> String {
        format!(
            "late {} desched {} running {} sleeping {} parked {} late_ms {:.1} max_ms {:.1}",
            self.late,
            self.desched,
            self.running,
            self.sleeping,
            self.parked,
            self.late_time.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3,
        )
    }
}

/// One kind of waiting work on one ring: an episode runs while `pending` holds with the
/// same `progress` (the CQ head, for posted completions).
#[derive(Default)]
struct Track {
    progress: u32,
    /// When the work was first seen pending at `progress`.
    since: Option<Instant>,
    /// Set at the 1 ms mark: when, and the owner's schedstat then.
    marked: Option<(Instant, u64, u64)>,
    totals: Totals,
}

impl Track {
    fn step(&mut self, now: Instant, pending: bool, progress: u32, tid: i32, parked: bool) {
        if progress != self.progress || !pending {
            if let Some((at, run0, wait0)) = self.marked.take() {
                let dur = now - self.since.unwrap_or(at);
                let part = (now - at).as_nanos() as u64;
                let (run1, wait1) = schedstat(tid).unwrap_or((run0, wait0));
                let tot = &mut self.totals;
                tot.late_time += dur;
                tot.max = tot.max.max(dur);
                if wait1.saturating_sub(wait0) * 2 > part {
                    tot.desched += 1;
                } else if run1.saturating_sub(run0) * 2 > part {
                    tot.running += 1;
                } else {
                    tot.sleeping += 1;
                }
            }
            self.progress = progress;
            self.since = pending.then_some(now);
            return;
        }
        if let (Some(since), None) = (self.since, self.marked) {
            if now - since > Duration::from_millis(1) {
                let (run, wait) = schedstat(tid).unwrap_or((0, 0));
                self.marked = Some((now, run, wait));
                self.totals.late += 1;
                self.totals.parked += parked as u64;
            }
        }
    }
}

fn sample() {
    // Per ring: posted completions, and the kernel's task-work flag.
    let mut tracks: Vec<(Track, Track)> = Vec::new();
    let mut last_print = Instant::now();
    loop {
        std::thread::sleep(Duration::from_micros(200));
        // Indexed as registered, so that a ring keeps its line when an earlier one is gone.
        let rings: Vec<Option<Arc<Shared>>> = RINGS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(Weak::upgrade)
            .collect();
        tracks.resize_with(rings.len(), Default::default);
        let now = Instant::now();
        for (ring, (cq, tw)) in rings.iter().zip(tracks.iter_mut()) {
            let Some((ring, cqi)) = ring.as_ref().and_then(|r| Some((r, r.cq_index.as_ref()?)))
            else {
                continue;
            };
            let tid = ring.owner_tid.load(std::sync::atomic::Ordering::Relaxed);
            let parked = ring.handshake.is_parked();
            cq.step(now, cqi.pending() > 0, cqi.head(), tid, parked);
            tw.step(now, cqi.taskrun(), 0, tid, parked);
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            for (i, (ring, (cq, tw))) in rings.iter().zip(tracks.iter_mut()).enumerate() {
                let Some(ring) = ring else {
                    continue;
                };
                let taken = ring.taken.load(std::sync::atomic::Ordering::Relaxed);
                eprintln!(
                    "cqstats ring{i} cq: {} | taskrun: {} | taken {taken}",
                    std::mem::take(&mut cq.totals).line(),
                    std::mem::take(&mut tw.totals).line(),
                );
            }
        }
    }
}
