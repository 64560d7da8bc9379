//! weft::process: output and exit statuses, piped stdin through `cat`, children killed or
//! dropped leave no zombie, a thousand children in parallel, and a missing program is
//! `NotFound` naming it. Most tests wait from worker tasks (`WAITID` and `POLL_ADD` on a
//! ring worker's ring) and some from `block_on` (the readiness thread). Run them with
//! `WEFT_IO_DRIVER=fallback` (the readiness thread everywhere) and `WEFT_PIDFD_WAIT=poll`
//! (exits through `POLL_ADD`, as on kernels without `WAITID`) too.

mod common;

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use weft_runtime::process::{Command, Stdio};
use weft_runtime::{Runtime, UringMode};

fn rt(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

/// Both drivers: the ring where the kernel allows it, and the fallback.
const DRIVERS: [UringMode; 2] = [UringMode::Auto, UringMode::Disabled];

/// Runs the future `make` returns as a task on a worker, once on each driver, under the
/// watchdog; returns the outputs in [`DRIVERS`] order.
fn on_worker<F, Fut>(what: &str, make: F) -> Vec<Fut::Output>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    common::hang_guard();
    common::watchdog(what, move || {
        DRIVERS
            .iter()
            .map(|&mode| {
                let rt = Runtime::builder()
                    .worker_threads(2)
                    .io_uring(mode)
                    .build()
                    .unwrap();
                let h = rt.spawn(make());
                rt.block_on(h).unwrap()
            })
            .collect()
    })
}

/// Whether `pid` is gone, or no longer a child of ours (reaped, the number reused): not a
/// zombie we left behind, and not still running.
fn reaped(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            // pid (comm) state ppid ...: comm may hold spaces, so split after the ')'.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let mut f = rest.split_whitespace();
            let _state = f.next().unwrap();
            let ppid: u32 = f.next().unwrap().parse().unwrap();
            ppid != std::process::id()
        }
    }
}

#[test]
fn echo_output_and_status() {
    for out in on_worker("echo", || async {
        Command::new("echo")
            .args(["hello", "world"])
            .output()
            .await
            .unwrap()
    }) {
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hello world\n");
        assert!(out.stderr.is_empty());
    }
}

#[test]
fn output_from_block_on_and_stderr_separately() {
    common::hang_guard();
    let out = common::watchdog("sh on block_on", || {
        rt(1).block_on(async {
            Command::new("sh")
                .args(["-c", "echo out; echo err >&2; exit 4"])
                .output()
                .await
                .unwrap()
        })
    });
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
}

#[test]
fn cat_with_piped_stdin_echoes_a_mebibyte() {
    // Larger than a pipe's buffer both ways, so reads and writes both wait for readiness.
    let data: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let expect = data.clone();
    for got in on_worker("cat", move || {
        let data = data.clone();
        async move {
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let writer = weft_runtime::spawn(async move {
                let (r, _) = stdin.write_all(data).await;
                r.unwrap();
                // stdin drops here: cat sees end of file.
            });
            let mut stdout = child.stdout.take().unwrap();
            let (r, buf) = stdout.read_to_end(Vec::new()).await;
            assert_eq!(r.unwrap(), buf.len());
            writer.await.unwrap();
            assert!(child.wait().await.unwrap().success());
            buf
        }
    }) {
        assert!(
            got == expect,
            "cat returned {} bytes, not the 1 MiB sent",
            got.len()
        );
    }
}

#[test]
fn a_childs_stdout_becomes_anothers_stdin() {
    for out in on_worker("echo | tr", || async {
        let mut echo = Command::new("echo")
            .arg("pipeline")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout: Stdio = echo.stdout.take().unwrap().try_into().unwrap();
        let out = Command::new("tr")
            .args(["a-z", "A-Z"])
            .stdin(stdout)
            .output()
            .await
            .unwrap();
        assert!(echo.wait().await.unwrap().success());
        out
    }) {
        assert!(out.status.success());
        assert_eq!(out.stdout, b"PIPELINE\n");
    }
}

#[test]
fn read_gives_what_is_there_and_zero_at_end_of_file() {
    on_worker("read", || async {
        let mut child = Command::new("printf")
            .arg("abc")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut got = Vec::new();
        let mut buf = Vec::with_capacity(2);
        loop {
            let (r, b) = out.read(buf).await;
            let n = r.unwrap();
            assert_eq!(n, b.len());
            if n == 0 {
                break;
            }
            got.extend_from_slice(&b);
            buf = b;
        }
        assert_eq!(got, b"abc");
        child.wait().await.unwrap();
    });
}

#[test]
fn exit_codes_and_signals_are_in_the_status() {
    on_worker("statuses", || async {
        let s = Command::new("sh")
            .args(["-c", "exit 7"])
            .status()
            .await
            .unwrap();
        assert_eq!(s.code(), Some(7));
        let s = Command::new("sh")
            .args(["-c", "kill -TERM $$"])
            .status()
            .await
            .unwrap();
        assert_eq!((s.code(), s.signal()), (None, Some(libc::SIGTERM)));

        let mut sleeper = Command::new("sleep").arg("1000").spawn().unwrap();
        assert!(sleeper.try_wait().unwrap().is_none());
        sleeper.kill().await.unwrap();
        let s = sleeper.wait().await.unwrap();
        assert_eq!(s.signal(), Some(libc::SIGKILL));
        assert_eq!(sleeper.id(), None);
        let e = sleeper.start_kill().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    });
}

#[test]
fn env_and_current_dir_reach_the_child() {
    for out in on_worker("env", || async {
        Command::new("/bin/sh")
            .args(["-c", "echo \"$WEFT_A-$WEFT_B-$HOME\"; pwd"])
            .env_clear()
            .envs([("WEFT_A", "a"), ("WEFT_B", "b")])
            .env("HOME", "h")
            .env_remove("WEFT_B")
            .current_dir("/")
            .output()
            .await
            .unwrap()
    }) {
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "a--h\n/\n");
    }
}

#[test]
fn a_missing_program_is_not_found_naming_it() {
    common::hang_guard();
    let e = Command::new("weft-no-such-program").spawn().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("weft-no-such-program"), "{e}");

    let e = Command::new("true")
        .current_dir("/weft-no-such-dir")
        .spawn()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("/weft-no-such-dir"), "{e}");
}

#[test]
fn a_child_killed_on_drop_leaves_no_zombie() {
    for pid in on_worker("kill on drop", || async {
        let child = Command::new("sleep")
            .arg("1000")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        child.id().unwrap()
    }) {
        common::wait_until("the killed child is reaped", || reaped(pid));
    }
}

#[test]
fn a_child_dropped_by_a_dropped_runtime_is_killed_and_reaped() {
    common::hang_guard();
    for mode in DRIVERS {
        let pid = common::watchdog("runtime drop", move || {
            let rt = Runtime::builder()
                .worker_threads(2)
                .io_uring(mode)
                .build()
                .unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            rt.spawn(async move {
                let mut child = Command::new("sleep")
                    .arg("1000")
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap();
                tx.send(child.id().unwrap()).unwrap();
                // Never completes: the runtime's drop drops this future and the child.
                child.wait().await.unwrap();
            });
            let pid = rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            drop(rt);
            pid
        });
        common::wait_until("the child of a dropped runtime is reaped", || reaped(pid));
    }
}

#[test]
fn a_dropped_child_that_exits_is_reaped_in_the_background() {
    common::hang_guard();
    let child = Command::new("sh")
        .args(["-c", "sleep 0.05"])
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    drop(child);
    common::wait_until("the dropped child is reaped", || reaped(pid));
}

#[test]
fn a_thousand_children_in_parallel() {
    let n = common::scaled(1000, 20);
    let counts = on_worker("many children", move || async move {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                weft_runtime::spawn(async move {
                    let code = (i % 3) as i32;
                    let s = Command::new("sh")
                        .args(["-c", &format!("exit {code}")])
                        .status()
                        .await
                        .unwrap();
                    s.code() == Some(code)
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.unwrap());
        }
        ok
    });
    assert_eq!(counts, [n, n]);
}
