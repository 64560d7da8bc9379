//! Choosing the I/O driver: io_uring where the kernel allows it, the fallback where it does
//! not — tested for real by denying `io_uring_setup` with a seccomp filter (as Docker's
//! default profile does) in a child process.

use std::process::Command;

use weft_runtime::{Runtime, UringMode};

const CHILD_ENV: &str = "WEFT_IO_DRIVER_CHILD";

/// Runs test `name` of this binary in a child with `CHILD_ENV=case` (seccomp filters and
/// environment variables are process state: they must not leak into other tests).
fn run_child(name: &str, case: &str, extra_env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, case)
        .env_remove("WEFT_IO_DRIVER");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.success() && stdout.contains("1 passed"),
        stdout,
        stderr,
    )
}

fn child_case() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Makes `io_uring_setup` fail with EPERM for this thread and the threads it starts.
#[cfg(target_arch = "x86_64")]
fn deny_io_uring_setup() {
    deny_syscall(libc::SYS_io_uring_setup);
}

/// Makes system call `nr` fail with EPERM for this thread and the threads it starts.
#[cfg(target_arch = "x86_64")]
fn deny_syscall(nr: libc::c_long) {
    // Classic BPF opcodes: BPF_LD | BPF_W | BPF_ABS, BPF_JMP | BPF_JEQ | BPF_K,
    // BPF_RET | BPF_K.
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    let filter = [
        // A = seccomp_data.nr
        libc::sock_filter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        },
        // if A == nr: next, else skip one
        libc::sock_filter {
            code: BPF_JMP_JEQ_K,
            jt: 0,
            jf: 1,
            k: nr as u32,
        },
        libc::sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: plain prctl calls; `prog` and `filter` outlive them (the kernel copies the
    // program).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            ),
            0,
            "installing the seccomp filter failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[test]
fn io_uring_is_used_where_the_kernel_allows_it() {
    const NAME: &str = "io_uring_is_used_where_the_kernel_allows_it";
    match child_case().as_deref() {
        // The builder's choice is what is tested, so it runs in a child without
        // `WEFT_IO_DRIVER` (with `WEFT_IO_DRIVER=fallback` set, the variable would win).
        None => {
            let (ok, out, err) = run_child(NAME, "builder", &[]);
            assert!(ok, "builder child failed:\n{out}\n{err}");
            return;
        }
        Some("builder") => {}
        Some(_) => return,
    }
    // This machine allows io_uring: a test that cannot get it must fail with the reason.
    let rt = Runtime::builder()
        .worker_threads(2)
        .io_uring(UringMode::Required)
        .build()
        .unwrap_or_else(|e| panic!("io_uring should work on this machine: {e}"));
    assert!(rt.metrics().io_uring());
    let rt = Runtime::builder()
        .worker_threads(1)
        .io_uring(UringMode::Disabled)
        .build()
        .unwrap();
    assert!(!rt.metrics().io_uring());
}

#[cfg(target_arch = "x86_64")]
#[test]
fn seccomp_denied_io_uring_falls_back_or_fails_clearly() {
    const NAME: &str = "seccomp_denied_io_uring_falls_back_or_fails_clearly";
    match child_case().as_deref() {
        None => {
            let (ok, out, err) = run_child(NAME, "auto", &[]);
            assert!(ok, "auto child failed:\n{out}\n{err}");
            assert!(
                err.contains("seccomp") && err.contains("falling back"),
                "the fallback must say why, once, on stderr:\n{err}"
            );
            assert_eq!(err.matches("falling back").count(), 1, "{err}");
            let (ok, out, err) = run_child(NAME, "required", &[]);
            assert!(ok, "required child failed:\n{out}\n{err}");
            let (ok, out, err) = run_child(NAME, "env_required", &[("WEFT_IO_DRIVER", "uring")]);
            assert!(ok, "env child failed:\n{out}\n{err}");
        }
        Some("auto") => {
            deny_io_uring_setup();
            for _ in 0..2 {
                let rt = Runtime::builder().worker_threads(2).build().unwrap();
                assert!(!rt.metrics().io_uring());
                // The fallback does real work: timers and file reads.
                let len = rt.block_on(async {
                    weft_runtime::time::sleep(std::time::Duration::from_millis(1)).await;
                    weft_runtime::spawn(async {
                        let f = weft_runtime::fs::File::open("Cargo.toml").await.unwrap();
                        f.read_at(Vec::with_capacity(64), 0).await.0.unwrap()
                    })
                    .await
                    .unwrap()
                });
                assert!(len > 0);
            }
        }
        Some("required") | Some("env_required") => {
            deny_io_uring_setup();
            let mut b = Runtime::builder();
            if child_case().as_deref() == Some("required") {
                b.io_uring(UringMode::Required);
            }
            let e = b.build().unwrap_err();
            let msg = e.to_string();
            assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{msg}");
            assert!(msg.contains("seccomp"), "the cause: {msg}");
            assert!(msg.contains("WEFT_IO_DRIVER=fallback"), "the fix: {msg}");
        }
        Some(other) => panic!("unknown child case {other}"),
    }
}

/// Some container profiles allow `io_uring_setup` but deny `io_uring_enter`. That used to
/// make every worker panic at its first park, and `Uring::drop`, entering again while the
/// panic unwound, abort the process. The ring is now probed when it is built: `Auto` falls
/// back saying why, `Required` fails naming seccomp; and a ring whose enter is denied later
/// is dropped without a panic (its in-flight memory leaked and reported).
#[cfg(target_arch = "x86_64")]
#[test]
fn seccomp_denied_io_uring_enter_falls_back_or_fails_clearly() {
    const NAME: &str = "seccomp_denied_io_uring_enter_falls_back_or_fails_clearly";
    match child_case().as_deref() {
        None => {
            let (ok, out, err) = run_child(NAME, "auto", &[]);
            assert!(ok, "auto child failed:\n{out}\n{err}");
            assert!(
                err.contains("io_uring_enter")
                    && err.contains("seccomp")
                    && err.contains("falling back"),
                "the fallback must say why, on stderr:\n{err}"
            );
            let (ok, out, err) = run_child(NAME, "required", &[]);
            assert!(ok, "required child failed:\n{out}\n{err}");
            let (ok, out, err) = run_child(NAME, "drop", &[]);
            assert!(ok, "drop child failed:\n{out}\n{err}");
            assert!(err.contains("leaked"), "the leak is reported:\n{err}");
        }
        Some("auto") => {
            deny_syscall(libc::SYS_io_uring_enter);
            let rt = Runtime::builder().worker_threads(2).build().unwrap();
            assert!(!rt.metrics().io_uring());
            let len = rt.block_on(async {
                weft_runtime::time::sleep(std::time::Duration::from_millis(1)).await;
                weft_runtime::spawn(async {
                    let f = weft_runtime::fs::File::open("Cargo.toml").await.unwrap();
                    f.read_at(Vec::with_capacity(64), 0).await.0.unwrap()
                })
                .await
                .unwrap()
            });
            assert!(len > 0);
        }
        Some("required") => {
            deny_syscall(libc::SYS_io_uring_enter);
            let e = Runtime::builder()
                .io_uring(UringMode::Required)
                .build()
                .unwrap_err();
            let msg = e.to_string();
            assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{msg}");
            assert!(
                msg.contains("seccomp") && msg.contains("io_uring_enter"),
                "{msg}"
            );
            assert!(msg.contains("WEFT_IO_DRIVER=fallback"), "the fix: {msg}");
        }
        Some("drop") => {
            use weft_reactor::Driver;
            let mut ring = weft_reactor::uring::Uring::new(8).unwrap();
            // A park arms the eventfd read: the kernel holds the ring's buffer.
            ring.park(Some(std::time::Duration::ZERO)).unwrap();
            deny_syscall(libc::SYS_io_uring_enter);
            drop(ring);
        }
        Some(other) => panic!("unknown child case {other}"),
    }
}

#[test]
fn a_malformed_driver_variable_is_an_input_error() {
    const NAME: &str = "a_malformed_driver_variable_is_an_input_error";
    match child_case().as_deref() {
        None => {
            let (ok, out, err) = run_child(NAME, "bogus", &[("WEFT_IO_DRIVER", "bogus")]);
            assert!(ok, "{out}\n{err}");
        }
        Some(_) => {
            let e = Runtime::builder().build().unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains("WEFT_IO_DRIVER"), "{e}");
        }
    }
}

/// The threads of this process named `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == name)
        })
        .count()
}

/// A TCP round trip, a child's pipe and its exit, all awaited in tasks on two fallback
/// workers: the waits register on the workers' own epolls, so the process-wide poller
/// thread (which serves `block_on` threads and signals) is never started.
fn fallback_readiness_round_trip() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    assert!(!rt.metrics().io_uring());
    rt.block_on(async {
        weft_runtime::spawn(async {
            let listener = weft_runtime::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap();
            let addr = listener.local_addr().unwrap();
            let server = weft_runtime::spawn(async move {
                let (s, _) = listener.accept().await.unwrap();
                for _ in 0..100 {
                    let (r, buf) = s.read(Vec::with_capacity(64)).await;
                    assert_eq!(r.unwrap(), 5);
                    s.write_all(buf).await.0.unwrap();
                }
            });
            let c = weft_runtime::net::TcpStream::connect(addr).await.unwrap();
            for _ in 0..100 {
                c.write_all(b"hello".to_vec()).await.0.unwrap();
                let (r, buf) = c.read_exact(Vec::with_capacity(5)).await;
                r.unwrap();
                assert_eq!(buf, b"hello");
            }
            server.await.unwrap();
            let out = weft_runtime::process::Command::new("echo")
                .arg("epoll")
                .output()
                .await
                .unwrap();
            assert!(out.status.success());
            assert_eq!(out.stdout, b"epoll\n");
        })
        .await
        .unwrap();
    });
    assert_eq!(
        threads_named("weft-poller"),
        0,
        "a fallback worker's readiness wait went to the poller thread"
    );
}

#[test]
fn fallback_workers_wait_for_readiness_on_their_own_epoll() {
    const NAME: &str = "fallback_workers_wait_for_readiness_on_their_own_epoll";
    match child_case().as_deref() {
        None => {
            let (ok, out, err) = run_child(NAME, "fallback", &[("WEFT_IO_DRIVER", "fallback")]);
            assert!(ok, "fallback child failed:\n{out}\n{err}");
        }
        Some("fallback") => fallback_readiness_round_trip(),
        Some(other) => panic!("unknown child case {other}"),
    }
}

/// A kernel (or seccomp profile) without `epoll_pwait2`: the fallback parks in
/// `epoll_wait` with its millisecond timeout rounded up, so timers still never fire early
/// and sockets still work.
#[cfg(target_arch = "x86_64")]
#[test]
fn fallback_without_epoll_pwait2_rounds_timeouts_up() {
    const NAME: &str = "fallback_without_epoll_pwait2_rounds_timeouts_up";
    match child_case().as_deref() {
        None => {
            let (ok, out, err) = run_child(NAME, "denied", &[("WEFT_IO_DRIVER", "fallback")]);
            assert!(ok, "denied child failed:\n{out}\n{err}");
        }
        Some("denied") => {
            deny_syscall(libc::SYS_epoll_pwait2);
            let rt = Runtime::builder().worker_threads(2).build().unwrap();
            rt.block_on(async {
                weft_runtime::spawn(async {
                    for us in [300u64, 1_500, 2_200] {
                        let d = std::time::Duration::from_micros(us);
                        let start = std::time::Instant::now();
                        weft_runtime::time::sleep(d).await;
                        assert!(start.elapsed() >= d, "a {d:?} sleep woke early");
                    }
                })
                .await
                .unwrap();
            });
            drop(rt);
            fallback_readiness_round_trip();
        }
        Some(other) => panic!("unknown child case {other}"),
    }
}
