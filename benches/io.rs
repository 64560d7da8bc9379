//! File I/O benchmarks: weft's `fs` beside tokio's and plain `std`, on one page-cached file.
//!
//! A 256 MiB data file with deterministic contents (little-endian `u64` word `k` is
//! `splitmix64(k)`) is written once to `std::env::temp_dir()` under a unique name, read once
//! with `std::fs::read` so that every bench reads from the page cache (what is timed is the
//! I/O path, not the disk), and removed when the bench exits (or panics; a killed run
//! leaves a `weft-bench-io-*` file behind). Every implementation is checked once before it
//! is measured: a full batch whose every read is compared with the file's contents at its
//! offset (a bench that reads garbage is worse than none). Runtimes have `WEFT_BENCH_WORKERS`
//! worker threads (default 2) and are built once per function, outside the timing, on the
//! function's first call: a function the command line filters out builds and checks nothing.
//!
//! ```text
//! cargo bench --bench io                         # all of it, about a minute and a half
//! cargo bench --bench io -- io/file_rand_4k      # one group
//! WEFT_BENCH_WORKERS=8 cargo bench --bench io
//! ```
//!
//! - `io/file_rand_4k`: one element = one 4 KiB read at a random 4 KiB-aligned offset. An
//!   iteration is a batch of 64 × 256 = 16 384 reads with 64 in flight: 64 tasks, each with
//!   its own xorshift generator (the same sequence every iteration) and its own reused
//!   buffer, each doing 256 reads one after another. Functions:
//!   - `weft`: `File::read_at` in tasks on the workers of an io_uring runtime
//!     (`UringMode::Auto`; the bench says on stderr if the kernel refused and it fell back).
//!     Guards the ring data path: submission batching, one `io_uring_enter` per park rather
//!     than per read, completion reaping and the waker hand-off. It should beat the others
//!     by a wide margin.
//!   - `weft_fallback`: the same on `UringMode::Disabled`, so each read is a blocking-pool job.
//!     Guards the fallback (pool queue, thread wake-ups), which is what users without
//!     io_uring get.
//!   - `tokio_fs`: `tokio::fs::File`, one handle per task, seek then read exactly 4 KiB
//!     (tokio has no positioned read; this is what `AsyncSeekExt::seek` and
//!     `AsyncReadExt::read_exact` do, spelled with `poll_fn` because the workspace's tokio
//!     has no `io-util`). Two blocking-pool trips per read: the common tokio baseline.
//!   - `tokio_spawn_blocking`: on tokio, each read is `spawn_blocking(pread)` on a shared
//!     `Arc<std::fs::File>`: the best a tokio user gets without io_uring.
//!   - `std_pread_1thread`: the same 16 384 `FileExt::read_at` calls in sequence on one
//!     thread: the bare system-call cost, the floor an async runtime must beat by
//!     overlapping reads on several workers.
//!
//!   - `std_pread_threads`: the same reads on `WEFT_BENCH_WORKERS` threads at once, task
//!     `t`'s reads on thread `t % threads`: what the machine gives with no runtime at all,
//!     the ceiling for `weft`.
//!
//!   `weft`'s time is bimodal, within a run as well as across runs: 8.4 against 11.9 ms on
//!   two idle vCPUs; 18–22 against 24–30 ms with the machine loaded by other builds and
//!   the bench at `chrt -f 10`. The cause is the machine, not the runtime: the host moves
//!   the VM's two vCPUs between cores that share a cache and cores that do not. Before and
//!   after measuring `weft` the bench prints how long a cache line takes to go from one
//!   CPU to the other and back (two pinned threads handing an atomic back and forth): on
//!   the 2-vCPU KVM guest (AMD EPYC, Linux 6.18) this was written on it is 35–105 ns
//!   ("near") or 390–890 ns ("far"), and stays in one state for seconds to minutes. In 48
//!   rounds of 10 batches each (12 processes; loaded machine, `chrt -f 10`; the round trip
//!   measured after every round, and before it too in 32 of them), the 5 near rounds ran
//!   at 17.7–21.9 ms and the 41 far ones at 23.6–29.6 ms (2 rounds saw the placement
//!   change). `std_pread_1thread` stayed at 23.6–31.6 ms in both (one thread shares
//!   nothing); `std_pread_threads` moved by about 15% (14.0–14.6 against 15.1–18.0 ms:
//!   every `pread` of a process with several threads takes and drops a reference on the
//!   shared `struct file`). `weft` moves by about 35% because its two workers share more
//!   per read: tasks are stolen between them (898–1 207 stolen tasks per worker per batch
//!   near, 1 218–1 458 far, each with the 4 KiB buffer its next read writes on the other
//!   CPU), and each read clones and drops the file's `Arc` (what keeps the descriptor
//!   open for an op whose future is dropped or forgotten) on one worker while the other
//!   does the same. Ruled out by the same rounds: the split of the reads between the two
//!   rings (47–53% in every round), io-wq (every read completes inline at submission; the
//!   process has no `iou-wrk` thread), the page cache (the file sits in 2 MiB folios in
//!   every run, and a new file for each round, 10 rounds in 3 processes, spread as one file
//!   did) and the destination buffers' addresses
//!   (the same in both modes). So read a run by its two lines: compare `weft` with
//!   `std_pread_threads` within a run whose lines agree, and across runs only when their
//!   placements match.
//!
//!   A side finding, about the buffers: on this CPU a 4 KiB copy into a buffer that starts
//!   at byte 1–31 of a page is 2.5x slower than at any other offset (1.6 against 4 µs per
//!   `pread`, loaded); the bench's buffers come from `malloc` and land elsewhere, but a
//!   program whose buffers sit at page offset 16 pays that on every read, with any runtime.
//! - `io/file_read_whole`: read the whole 256 MiB file into a new `Vec`: `weft`
//!   (`weft::fs::read` in a spawned task), `tokio` (`tokio::fs::read`), `std`
//!   (`std::fs::read`). Guards the whole-file helper against extra copies or small reads:
//!   it should match `std::fs::read`.
//! - `io/metadata`: one element = one `metadata` of a small file; an iteration is 64 tasks ×
//!   64 calls = 4 096. `weft`: `weft::fs::metadata` (`statx` on the ring) in 64 tasks on a
//!   **one-worker** io_uring runtime, so the ring batches their submissions; `tokio`:
//!   `tokio::fs::metadata` in 64 tasks on tokio (a blocking-pool job each); `std_1thread`:
//!   the same 4 096 `std::fs::metadata` calls in sequence on one thread.
//! - `io/read_dir`: list a directory of 10 000 empty files (one element = one entry),
//!   collecting each name: `weft` (`weft::fs::read_dir`, batches of entries per pool job,
//!   in a task on a worker), `tokio` (`tokio::fs::read_dir`), `std` (`std::fs::read_dir`).
//!
//! Targets (from the io_uring issue): `file_rand_4k/weft` at least 10× `tokio_fs` and 1.3×
//! `std_pread_1thread` (in a near placement); `file_read_whole/weft` at least 0.95× `std`; `metadata/weft` at least 3× `tokio` and 1.2×
//! `std_1thread`. The ratio to
//! `std_pread_1thread` assumes as many idle cores as workers: the reads are a 4 KiB kernel
//! copy each, so weft's advantage is running them on every worker at once, and another
//! process on one of the cores costs weft's workers and not the single thread.

use std::future::poll_fn;
use std::io::{self, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};

/// Size of the data file.
const FILE_LEN: u64 = 256 << 20;
/// Size and alignment of one random read.
const BLOCK: usize = 4096;
/// Blocks in the file (a power of two: offsets are masked, not reduced modulo).
const BLOCKS: u64 = FILE_LEN / BLOCK as u64;
/// Reads in flight in `file_rand_4k` (one task each).
const TASKS: usize = 64;
/// Sequential reads per task per iteration.
const READS_PER_TASK: usize = 256;
/// Reads per iteration of `file_rand_4k`.
const BATCH: u64 = (TASKS * READS_PER_TASK) as u64;

fn workers() -> usize {
    std::env::var("WEFT_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Checks that `buf` is the file's contents at `off` (8-aligned).
fn verify(off: u64, buf: &[u8]) {
    assert_eq!(off % 8, 0);
    assert_eq!(buf.len() % 8, 0, "short read at {off}: {} bytes", buf.len());
    for (i, word) in buf.chunks_exact(8).enumerate() {
        let want = splitmix64(off / 8 + i as u64).to_le_bytes();
        assert_eq!(word, want, "wrong bytes at offset {}", off + 8 * i as u64);
    }
}

/// One task's offsets: xorshift64, seeded from the task's index.
struct Offsets(u64);

impl Offsets {
    fn new(task: usize) -> Offsets {
        Offsets(splitmix64(task as u64) | 1)
    }

    fn next_offset(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        ((x >> 32) & (BLOCKS - 1)) * BLOCK as u64
    }
}

/// The data file; removed on drop.
struct DataFile {
    path: PathBuf,
}

impl DataFile {
    fn create() -> io::Result<DataFile> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("weft-bench-io-{}-{nanos}.dat", std::process::id()));
        let data = DataFile { path };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&data.path)?;
        let mut chunk = Vec::with_capacity(1 << 20);
        let mut word = 0u64;
        while word < FILE_LEN / 8 {
            chunk.clear();
            for _ in 0..(1 << 20) / 8 {
                chunk.extend_from_slice(&splitmix64(word).to_le_bytes());
                word += 1;
            }
            f.write_all(&chunk)?;
        }
        f.sync_all()?;
        drop(f);
        // Into the page cache, and a check of the generator against itself.
        let all = std::fs::read(&data.path)?;
        assert_eq!(all.len() as u64, FILE_LEN);
        verify(0, &all);
        Ok(data)
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DataFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn weft_rt(mode: weft::UringMode) -> weft::Runtime {
    weft::Runtime::builder()
        .worker_threads(workers())
        .io_uring(mode)
        .build()
        .unwrap()
}

/// tokio as a user doing file I/O builds it; `tokio::fs` needs only the blocking pool.
fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_all()
        .build()
        .unwrap()
}

fn rand_group_settings(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
}

/// One batch on a weft runtime: `TASKS` spawned tasks, each reading with its own buffer.
fn weft_batch(
    rt: &weft::Runtime,
    file: &Arc<weft::fs::File>,
    bufs: &mut Vec<Vec<u8>>,
    check: bool,
) {
    let taken = std::mem::take(bufs);
    *bufs = rt.block_on(async {
        let handles: Vec<_> = taken
            .into_iter()
            .enumerate()
            .map(|(t, mut buf)| {
                let file = file.clone();
                weft::spawn(async move {
                    let mut offs = Offsets::new(t);
                    for _ in 0..READS_PER_TASK {
                        let off = offs.next_offset();
                        let (res, b) = file.read_at(buf, off).await;
                        buf = b;
                        assert_eq!(res.unwrap(), BLOCK);
                        if check {
                            verify(off, &buf);
                        }
                    }
                    buf
                })
            })
            .collect();
        let mut back = Vec::with_capacity(TASKS);
        for h in handles {
            back.push(h.await.unwrap());
        }
        back
    });
}

/// The process's CPU affinity mask, or `None` if the kernel refuses to say.
fn affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: a zeroed `cpu_set_t` is a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `set` is a live `cpu_set_t` of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    (rc == 0).then_some(set)
}

/// Pins the calling thread to `set`; `false` if the kernel refused.
fn set_affinity(set: &libc::cpu_set_t) -> bool {
    // SAFETY: pid 0 is the calling thread; `set` is a live `cpu_set_t` of the size passed.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(set), set) == 0 }
}

/// Pins the calling thread to `cpu` alone.
fn pin_to(cpu: usize) -> bool {
    // SAFETY: a zeroed `cpu_set_t` is a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` comes from a `CPU_ISSET` scan of a `cpu_set_t`, so it is below
    // `CPU_SETSIZE`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    set_affinity(&set)
}

/// How long one cache line takes to go from CPU `a` to CPU `b` and back: two threads
/// pinned to the first two CPUs the process may use hand an atomic counter back and
/// forth. The best of five rounds of 2 000 round trips (the best, so that a round in which
/// another process took one of the CPUs does not count). `None` with fewer than two CPUs
/// or if pinning is refused.
///
/// On the 2-vCPU VM the bench was written on this is bimodal over time, about 35–105 ns or
/// about 390–890 ns, as the host moves the two vCPUs between cores that share a cache and
/// cores that do not; `file_rand_4k/weft` follows it (see the module docs).
fn cross_cpu_round_trip() -> Option<(usize, usize, Duration)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    const TRIPS: u64 = 2_000;
    const ROUNDS: u64 = 5;
    let all = affinity()?;
    // SAFETY (both calls): `c` is below `CPU_SETSIZE`, and `all` is a live set.
    let mut cpus = (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &all) });
    let (a, b) = (cpus.next()?, cpus.next()?);
    let line = AtomicU64::new(0);
    let best = std::thread::scope(|s| {
        let line = &line;
        let partner = s.spawn(move || {
            if !pin_to(b) {
                line.store(u64::MAX, Ordering::Release);
                return;
            }
            for i in 0..TRIPS * ROUNDS {
                loop {
                    let v = line.load(Ordering::Acquire);
                    if v == u64::MAX {
                        return;
                    }
                    if v == 2 * i + 1 {
                        break;
                    }
                    std::hint::spin_loop();
                }
                line.store(2 * i + 2, Ordering::Release);
            }
        });
        let mut best = None;
        let mut finished = false;
        if pin_to(a) {
            'rounds: for r in 0..ROUNDS {
                let start = std::time::Instant::now();
                for i in r * TRIPS..(r + 1) * TRIPS {
                    if line
                        .compare_exchange(2 * i, 2 * i + 1, Ordering::AcqRel, Ordering::Acquire)
                        .is_err()
                    {
                        // The partner could not pin itself.
                        break 'rounds;
                    }
                    while line.load(Ordering::Acquire) != 2 * i + 2 {
                        std::hint::spin_loop();
                    }
                }
                let t = start.elapsed() / TRIPS as u32;
                best = Some(best.map_or(t, |b: Duration| b.min(t)));
                finished = r + 1 == ROUNDS;
            }
        }
        if !finished {
            // Releases a partner still waiting for a turn.
            line.store(u64::MAX, Ordering::Release);
            best = None;
        }
        let _ = partner.join();
        best
    });
    set_affinity(&all);
    best.map(|t| (a, b, t))
}

/// `cross_cpu_round_trip`, as the line the bench prints.
fn placement_line() -> String {
    match cross_cpu_round_trip() {
        Some((a, b, t)) => {
            let kind = if t < Duration::from_nanos(200) {
                "near: the CPUs share a cache"
            } else {
                "far: the CPUs share no cache"
            };
            format!(
                "cache-line round trip CPU {a} <-> CPU {b}: {} ns ({kind})",
                t.as_nanos()
            )
        }
        None => "cache-line round trip: not measured (fewer than two CPUs, or pinning refused)"
            .to_string(),
    }
}

fn bench_weft_rand(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    data: &DataFile,
    name: &str,
    mode: weft::UringMode,
) {
    // The CPUs' placement decides `weft`'s mode (module docs); the fallback's pool threads
    // are not measured against it.
    let report_placement = mode == weft::UringMode::Auto;
    let mut state = None;
    g.bench_function(name, |b| {
        let (rt, file, bufs) = state.get_or_insert_with(|| {
            let rt = weft_rt(mode);
            let uring = rt.metrics().io_uring();
            eprintln!("io/file_rand_4k/{name}: weft workers use io_uring: {uring}");
            if mode == weft::UringMode::Auto && !uring {
                eprintln!("warning: io/file_rand_4k/{name} measures the fallback");
            }
            let path = data.path().to_path_buf();
            let file = Arc::new(rt.block_on(weft::fs::File::open(path)).unwrap());
            let mut bufs: Vec<Vec<u8>> = (0..TASKS).map(|_| Vec::with_capacity(BLOCK)).collect();
            weft_batch(&rt, &file, &mut bufs, true);
            if report_placement {
                eprintln!("io/file_rand_4k/{name}: before: {}", placement_line());
            }
            (rt, file, bufs)
        });
        b.iter(|| weft_batch(rt, file, bufs, false))
    });
    if report_placement && state.is_some() {
        eprintln!("io/file_rand_4k/{name}: after: {}", placement_line());
    }
}

/// Seek, then read exactly `buf.len()` bytes: `AsyncSeekExt::seek` and
/// `AsyncReadExt::read_exact`, without tokio's `io-util` feature.
async fn tokio_seek_read_exact(
    file: &mut tokio::fs::File,
    off: u64,
    buf: &mut [u8],
) -> io::Result<()> {
    let mut f = Pin::new(file);
    poll_fn(|cx| f.as_mut().poll_complete(cx)).await?;
    f.as_mut().start_seek(SeekFrom::Start(off))?;
    let pos = poll_fn(|cx| f.as_mut().poll_complete(cx)).await?;
    assert_eq!(pos, off);
    let mut rb = ReadBuf::new(buf);
    while rb.remaining() > 0 {
        let before = rb.filled().len();
        poll_fn(|cx| f.as_mut().poll_read(cx, &mut rb)).await?;
        if rb.filled().len() == before {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

fn tokio_fs_batch(
    rt: &tokio::runtime::Runtime,
    state: &mut Vec<(tokio::fs::File, Vec<u8>)>,
    check: bool,
) {
    let taken = std::mem::take(state);
    *state = rt.block_on(async {
        let handles: Vec<_> = taken
            .into_iter()
            .enumerate()
            .map(|(t, (mut file, mut buf))| {
                tokio::spawn(async move {
                    let mut offs = Offsets::new(t);
                    for _ in 0..READS_PER_TASK {
                        let off = offs.next_offset();
                        tokio_seek_read_exact(&mut file, off, &mut buf)
                            .await
                            .unwrap();
                        if check {
                            verify(off, &buf);
                        }
                    }
                    (file, buf)
                })
            })
            .collect();
        let mut back = Vec::with_capacity(TASKS);
        for h in handles {
            back.push(h.await.unwrap());
        }
        back
    });
}

fn tokio_spawn_blocking_batch(
    rt: &tokio::runtime::Runtime,
    file: &Arc<std::fs::File>,
    bufs: &mut Vec<Vec<u8>>,
    check: bool,
) {
    let taken = std::mem::take(bufs);
    *bufs = rt.block_on(async {
        let handles: Vec<_> = taken
            .into_iter()
            .enumerate()
            .map(|(t, mut buf)| {
                let file = file.clone();
                tokio::spawn(async move {
                    let mut offs = Offsets::new(t);
                    for _ in 0..READS_PER_TASK {
                        let off = offs.next_offset();
                        let f = file.clone();
                        let (res, b) = tokio::task::spawn_blocking(move || {
                            let r = f.read_at(&mut buf, off);
                            (r, buf)
                        })
                        .await
                        .unwrap();
                        buf = b;
                        assert_eq!(res.unwrap(), BLOCK);
                        if check {
                            verify(off, &buf);
                        }
                    }
                    buf
                })
            })
            .collect();
        let mut back = Vec::with_capacity(TASKS);
        for h in handles {
            back.push(h.await.unwrap());
        }
        back
    });
}

/// The same reads as a batch on `bufs.len()` threads at once, task `t`'s reads on thread
/// `t % bufs.len()` (threads spawned per batch, about 0.1 ms of the time).
fn std_pread_threads_batch(file: &std::fs::File, bufs: &mut [Vec<u8>], check: bool) {
    let threads = bufs.len();
    std::thread::scope(|s| {
        for (i, buf) in bufs.iter_mut().enumerate() {
            s.spawn(move || {
                for t in (i..TASKS).step_by(threads) {
                    std_pread_task(file, buf, t, check);
                }
            });
        }
    });
}

/// The same reads as a batch, in the same order per task, one after another.
fn std_pread_batch(file: &std::fs::File, buf: &mut [u8], check: bool) {
    for t in 0..TASKS {
        std_pread_task(file, buf, t, check);
    }
}

/// Task `t`'s reads, one after another, on this thread.
fn std_pread_task(file: &std::fs::File, buf: &mut [u8], t: usize, check: bool) {
    let mut offs = Offsets::new(t);
    for _ in 0..READS_PER_TASK {
        let off = offs.next_offset();
        assert_eq!(file.read_at(buf, off).unwrap(), BLOCK);
        if check {
            verify(off, buf);
        }
    }
}

// Each function builds its runtime and checks its reads on its first call, which criterion
// makes only if the function passes the command line's filter; the state is dropped at the
// end of the function's block, before the next function runs.

fn file_rand_4k(c: &mut Criterion, data: &DataFile) {
    let mut g = c.benchmark_group("io/file_rand_4k");
    rand_group_settings(&mut g);
    g.throughput(Throughput::Elements(BATCH));

    bench_weft_rand(&mut g, data, "weft", weft::UringMode::Auto);
    bench_weft_rand(&mut g, data, "weft_fallback", weft::UringMode::Disabled);

    {
        let mut state = None;
        g.bench_function("tokio_fs", |b| {
            let (rt, files) = state.get_or_insert_with(|| {
                let rt = tokio_rt();
                let mut files: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let f = rt.block_on(tokio::fs::File::open(data.path())).unwrap();
                        (f, vec![0u8; BLOCK])
                    })
                    .collect();
                tokio_fs_batch(&rt, &mut files, true);
                (rt, files)
            });
            b.iter(|| tokio_fs_batch(rt, files, false))
        });
    }

    {
        let mut state = None;
        g.bench_function("tokio_spawn_blocking", |b| {
            let (rt, file, bufs) = state.get_or_insert_with(|| {
                let rt = tokio_rt();
                let file = Arc::new(std::fs::File::open(data.path()).unwrap());
                let mut bufs: Vec<Vec<u8>> = (0..TASKS).map(|_| vec![0u8; BLOCK]).collect();
                tokio_spawn_blocking_batch(&rt, &file, &mut bufs, true);
                (rt, file, bufs)
            });
            b.iter(|| tokio_spawn_blocking_batch(rt, file, bufs, false))
        });
    }

    {
        let mut state = None;
        g.bench_function("std_pread_1thread", |b| {
            let (file, buf) = state.get_or_insert_with(|| {
                let file = std::fs::File::open(data.path()).unwrap();
                let mut buf = vec![0u8; BLOCK];
                std_pread_batch(&file, &mut buf, true);
                (file, buf)
            });
            b.iter(|| std_pread_batch(file, buf, false))
        });
    }

    {
        let mut state = None;
        g.bench_function("std_pread_threads", |b| {
            let (file, bufs) = state.get_or_insert_with(|| {
                let file = std::fs::File::open(data.path()).unwrap();
                let mut bufs: Vec<Vec<u8>> = (0..workers()).map(|_| vec![0u8; BLOCK]).collect();
                std_pread_threads_batch(&file, &mut bufs, true);
                (file, bufs)
            });
            b.iter(|| std_pread_threads_batch(file, bufs, false))
        });
    }

    g.finish();
}

fn check_whole(bytes: &[u8], full: bool) {
    assert_eq!(bytes.len() as u64, FILE_LEN);
    if full {
        verify(0, bytes);
    }
}

fn file_read_whole(c: &mut Criterion, data: &DataFile) {
    let mut g = c.benchmark_group("io/file_read_whole");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(FILE_LEN));

    {
        let mut rt = None;
        g.bench_function("weft", |b| {
            let rt = rt.get_or_insert_with(|| {
                let rt = weft_rt(weft::UringMode::Auto);
                check_whole(&weft_read(&rt, data.path()), true);
                rt
            });
            b.iter(|| weft_read(rt, data.path()))
        });
    }

    {
        let mut rt = None;
        let read = |rt: &tokio::runtime::Runtime| {
            let bytes = rt.block_on(tokio::fs::read(data.path())).unwrap();
            check_whole(&bytes, false);
            bytes
        };
        g.bench_function("tokio", |b| {
            let rt = rt.get_or_insert_with(|| {
                let rt = tokio_rt();
                check_whole(&read(&rt), true);
                rt
            });
            b.iter(|| read(rt))
        });
    }

    {
        let mut verified = false;
        let read = || {
            let bytes = std::fs::read(data.path()).unwrap();
            check_whole(&bytes, false);
            bytes
        };
        g.bench_function("std", |b| {
            if !verified {
                check_whole(&read(), true);
                verified = true;
            }
            b.iter(read)
        });
    }

    g.finish();
}

/// `weft::fs::read` in a task on a worker; checks the length.
fn weft_read(rt: &weft::Runtime, path: &Path) -> Vec<u8> {
    let path = path.to_path_buf();
    let bytes = rt
        .block_on(async { weft::spawn(weft::fs::read(path)).await })
        .unwrap()
        .unwrap();
    check_whole(&bytes, false);
    bytes
}

/// A directory under the temp dir, removed on drop.
struct TempTree(PathBuf);

impl TempTree {
    fn new(name: &str) -> TempTree {
        let p = std::env::temp_dir().join(format!("weft-bench-io-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        TempTree(p)
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Tasks, and calls per task, in an iteration of `io/metadata`.
const META_TASKS: usize = 64;
const META_PER_TASK: usize = 64;

fn metadata(c: &mut Criterion) {
    let tree = TempTree::new("metadata");
    let file = tree.0.join("f");
    std::fs::write(&file, [1u8; 100]).unwrap();
    let mut g = c.benchmark_group("io/metadata");
    rand_group_settings(&mut g);
    g.throughput(Throughput::Elements((META_TASKS * META_PER_TASK) as u64));

    {
        let mut rt = None;
        g.bench_function("weft", |b| {
            let rt = rt.get_or_insert_with(|| {
                let rt = weft::Runtime::builder()
                    .worker_threads(1)
                    .io_uring(weft::UringMode::Auto)
                    .build()
                    .unwrap();
                eprintln!("io/metadata/weft: io_uring: {}", rt.metrics().io_uring());
                rt
            });
            b.iter(|| weft_metadata_batch(rt, &file))
        });
    }
    {
        let mut rt = None;
        g.bench_function("tokio", |b| {
            let rt = rt.get_or_insert_with(tokio_rt);
            b.iter(|| {
                rt.block_on(async {
                    let handles: Vec<_> = (0..META_TASKS)
                        .map(|_| {
                            let file = file.clone();
                            tokio::spawn(async move {
                                for _ in 0..META_PER_TASK {
                                    let m = tokio::fs::metadata(&file).await.unwrap();
                                    assert_eq!(m.len(), 100);
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        h.await.unwrap();
                    }
                })
            })
        });
    }
    g.bench_function("std_1thread", |b| {
        b.iter(|| {
            for _ in 0..META_TASKS * META_PER_TASK {
                assert_eq!(std::fs::metadata(&file).unwrap().len(), 100);
            }
        })
    });
    g.finish();
}

fn weft_metadata_batch(rt: &weft::Runtime, file: &Path) {
    rt.block_on(async {
        let handles: Vec<_> = (0..META_TASKS)
            .map(|_| {
                let file = file.to_path_buf();
                weft::spawn(async move {
                    for _ in 0..META_PER_TASK {
                        assert_eq!(weft::fs::metadata(&file).await.unwrap().len(), 100);
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
}

/// Entries in the `io/read_dir` directory.
const DIR_ENTRIES: usize = 10_000;

fn read_dir(c: &mut Criterion) {
    let tree = TempTree::new("read-dir");
    for i in 0..DIR_ENTRIES {
        std::fs::write(tree.0.join(format!("entry-{i:05}")), b"").unwrap();
    }
    let dir = tree.0.clone();
    let mut g = c.benchmark_group("io/read_dir");
    rand_group_settings(&mut g);
    g.throughput(Throughput::Elements(DIR_ENTRIES as u64));

    {
        let mut rt = None;
        g.bench_function("weft", |b| {
            let rt = rt.get_or_insert_with(|| weft_rt(weft::UringMode::Auto));
            b.iter(|| {
                let dir = dir.clone();
                let names = rt
                    .block_on(async {
                        weft::spawn(async move {
                            let mut names = Vec::with_capacity(DIR_ENTRIES);
                            let mut entries = weft::fs::read_dir(&dir).await.unwrap();
                            while let Some(e) = entries.next_entry().await.unwrap() {
                                names.push(e.file_name());
                            }
                            names
                        })
                        .await
                    })
                    .unwrap();
                assert_eq!(names.len(), DIR_ENTRIES);
                names
            })
        });
    }
    {
        let mut rt = None;
        g.bench_function("tokio", |b| {
            let rt = rt.get_or_insert_with(tokio_rt);
            b.iter(|| {
                let dir = dir.clone();
                let names = rt
                    .block_on(async {
                        tokio::spawn(async move {
                            let mut names = Vec::with_capacity(DIR_ENTRIES);
                            let mut entries = tokio::fs::read_dir(&dir).await.unwrap();
                            while let Some(e) = entries.next_entry().await.unwrap() {
                                names.push(e.file_name());
                            }
                            names
                        })
                        .await
                    })
                    .unwrap();
                assert_eq!(names.len(), DIR_ENTRIES);
                names
            })
        });
    }
    g.bench_function("std", |b| {
        b.iter(|| {
            let names: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names.len(), DIR_ENTRIES);
            names
        })
    });
    g.finish();
}

/// `criterion_main!`, with the data file created before the groups and removed after.
fn main() {
    let data = DataFile::create().expect("creating the bench's data file");
    let mut c = Criterion::default().configure_from_args();
    file_rand_4k(&mut c, &data);
    file_read_whole(&mut c, &data);
    metadata(&mut c);
    read_dir(&mut c);
    c.final_summary();
    drop(data);
}
