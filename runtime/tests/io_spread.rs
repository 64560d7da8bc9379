//! Work stealing with a ring per worker: 64 file reads kept in flight by 64 tasks on two
//! workers. Each read is submitted on the ring of the worker that polls it and reaped by
//! that worker, whichever worker the task runs on next; the reads spread over both rings.
//! With `WEFT_IO_DRIVER=fallback` there is no ring: the reads go to the blocking pool, and
//! the test checks that they still spread over both workers and that no worker counts a
//! ring submission.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use weft_runtime::{Runtime, UringMode};

#[test]
fn sixty_four_reads_in_flight_keep_both_workers_and_both_rings_busy() {
    let path = std::env::temp_dir().join(format!("weft-io-spread-{}", std::process::id()));
    let data: Vec<u8> = (0..(1u32 << 22)).map(|i| (i % 253) as u8).collect();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&data)
        .unwrap();
    let data = Arc::new(data);

    let on_fallback = std::env::var("WEFT_IO_DRIVER").is_ok_and(|v| v == "fallback");
    let mut last = String::new();
    for _attempt in 0..5 {
        let rt = Runtime::builder()
            .worker_threads(2)
            .io_uring(UringMode::Required)
            .build()
            .unwrap_or_else(|e| panic!("this test needs io_uring: {e}"));
        let done = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let file = Arc::new(weft_runtime::fs::File::open(&path).await.unwrap());
            let tasks: Vec<_> = (0..64u64)
                .map(|t| {
                    let (file, data, done) = (file.clone(), data.clone(), done.clone());
                    weft_runtime::spawn(async move {
                        let mut buf = Vec::with_capacity(4096);
                        for i in 0..64u64 {
                            let off = ((t * 64 + i) * 4096 * 7) % ((1 << 22) - 4096);
                            let (res, b) = file.read_at(buf, off).await;
                            assert_eq!(res.unwrap(), 4096);
                            assert!(b[..] == data[off as usize..off as usize + 4096]);
                            buf = b;
                            done.fetch_add(1, SeqCst);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        assert_eq!(done.load(SeqCst), 64 * 64);
        let w = rt.metrics().workers();
        let total: u64 = w.iter().map(|w| w.io_submissions).sum();
        if on_fallback {
            assert_eq!(total, 0, "the fallback has no ring to submit to: {w:?}");
            if w.iter().all(|w| w.polls > 0) {
                std::fs::remove_file(&path).unwrap();
                return;
            }
            last = format!("{w:?}");
            continue;
        }
        assert!(total >= 64 * 64, "every read went through a ring: {w:?}");
        let split: Vec<_> = w
            .iter()
            .map(|w| (w.polls, w.steals, w.io_submissions))
            .collect();
        eprintln!("per worker (polls, steals, io_submissions): {split:?}");
        if w.iter().all(|w| w.polls > 0 && w.io_submissions > 0) {
            std::fs::remove_file(&path).unwrap();
            return;
        }
        last = format!("{w:?}");
    }
    std::fs::remove_file(&path).unwrap();
    panic!("the reads never spread over both workers (and their rings): {last}");
}
