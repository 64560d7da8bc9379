//! The `net` kind: one 9-byte request and its 9-byte reply over loopback TCP, the article's
//! `fetch("/api/...")`.
//!
//! # The protocol
//!
//! A request is `[fail: u8][x: u64 LE]`; the reply `[status: u8][v: u64 LE]`: status 0 with
//! `v = step(x)`, or, when `fail` is 1, status 1 with `v = x`, which the client turns into
//! `SvcError(x)`. The server answers each request as it arrives, in order, per connection.
//!
//! # Per runtime
//!
//! The first `net` call on a runtime starts its [`NetSvc`]: a listener on `127.0.0.1:0` (a
//! task of that runtime accepts, and one task per connection answers) and the client's pool
//! of persistent connections, `TCP_NODELAY` on both ends. A call takes a connection from the
//! pool (connecting a new one when the pool is empty: grown on demand, never shrunk during
//! a run), makes its one request, and puts the connection back once the reply has arrived,
//! so no connection is shared by two calls in flight. The harness runs one untimed round of
//! ops before it starts the clock, which fills the pool to what the case needs.
//!
//! weft's services are found by [`weft::Handle::id`] (cached per thread); tokio's by an id
//! that `harness::tokio_runtime` (feature `tokio`) gives its worker threads
//! (a thread of another tokio runtime gets a service of its own). A service lives as long
//! as its runtime's accept task, so dropping the runtime closes its sockets.
//!
//! # Cancellation
//!
//! A future call dropped before its reply arrived closes its connection instead of
//! returning it to the pool: the reply it would have read can never reach the next call.
//! A callback call cannot be cancelled; a composite that ignores its outcome still lets it
//! finish and return its connection.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use weft::callback::{self, Callback};
use weft::net::TcpStream;

use crate::service::{SvcError, count_completed, step};

/// Bytes in a request and in a reply.
pub const MSG: usize = 9;

/// The request for `x`.
#[inline]
pub fn request(x: u64, fail: bool, buf: &mut Vec<u8>) {
    buf.clear();
    buf.push(fail as u8);
    buf.extend_from_slice(&x.to_le_bytes());
}

/// The server's answer to a request.
#[inline]
pub fn answer(req: &[u8], out: &mut Vec<u8>) {
    let x = u64::from_le_bytes(req[1..MSG].try_into().expect("9-byte request"));
    out.clear();
    if req[0] == 0 {
        out.push(0);
        out.extend_from_slice(&step(x).to_le_bytes());
    } else {
        out.push(1);
        out.extend_from_slice(&x.to_le_bytes());
    }
}

/// The service's outcome from a reply (and the call counted complete).
///
/// # Panics
///
/// On a status other than 0 or 1: the server broke the protocol.
#[inline]
pub fn decode(reply: &[u8]) -> Result<u64, SvcError> {
    let v = u64::from_le_bytes(reply[1..MSG].try_into().expect("9-byte reply"));
    count_completed();
    match reply[0] {
        0 => Ok(v),
        1 => Err(SvcError(v)),
        s => panic!("the net service replied with status {s}"),
    }
}

/// A pooled connection and its message buffer.
#[derive(Debug)]
pub struct Conn {
    stream: Arc<TcpStream>,
    buf: Vec<u8>,
}

/// One runtime's `net` service: the server's address and the client's pool.
#[derive(Debug)]
pub struct NetSvc {
    addr: SocketAddr,
    pool: Mutex<Vec<Conn>>,
    opened: std::sync::atomic::AtomicU64,
}

impl NetSvc {
    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections opened so far (the pool's growth; a cancelled call's closed connection
    /// is replaced by a new one).
    pub fn opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Connections idle in the pool now.
    pub fn idle(&self) -> usize {
        self.pool.lock().len()
    }

    fn take(&self) -> Option<Conn> {
        self.pool.lock().pop()
    }

    fn put(&self, c: Conn) {
        self.pool.lock().push(c);
    }

    fn opened_one(&self) {
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn io_panic(what: &str, addr: SocketAddr, e: io::Error) -> ! {
    panic!("the net service at {addr}: {what}: {e}")
}

// --- weft ----------------------------------------------------------------------------------

thread_local! {
    static CURRENT: RefCell<Option<(u64, Arc<NetSvc>)>> = const { RefCell::new(None) };
}

/// Every weft runtime's service, by runtime id.
static WEFT_ALL: OnceLock<Mutex<HashMap<u64, Weak<NetSvc>>>> = OnceLock::new();

/// Closes the idle connections of every runtime's pool (weft's and tokio's), and returns
/// how many. For a command that measures many cases in one process, between two of them:
/// the next case's untimed round fills its pool again. Connections in use by a call are
/// not touched.
pub fn close_idle() -> usize {
    let mut n = 0;
    if let Some(all) = WEFT_ALL.get() {
        for s in all.lock().values().filter_map(Weak::upgrade) {
            let idle = std::mem::take(&mut *s.pool.lock());
            n += idle.len();
        }
    }
    #[cfg(feature = "tokio")]
    {
        n += tokio_net::close_idle();
    }
    n
}

/// The net service of the current weft runtime, started on first use.
///
/// # Panics
///
/// Outside a weft runtime, or if the listener cannot be bound (the message says why).
pub fn weft_svc() -> Arc<NetSvc> {
    let id = weft::Handle::current().id();
    if let Some(s) = CURRENT.with_borrow(|c| c.as_ref().filter(|c| c.0 == id).map(|c| c.1.clone()))
    {
        return s;
    }
    let all = WEFT_ALL.get_or_init(Default::default);
    let svc = {
        let mut all = all.lock();
        all.retain(|_, w| w.strong_count() > 0);
        match all.get(&id).and_then(Weak::upgrade) {
            Some(s) => s,
            None => {
                let s = start_weft_server();
                all.insert(id, Arc::downgrade(&s));
                s
            }
        }
    };
    CURRENT.with_borrow_mut(|c| *c = Some((id, svc.clone())));
    svc
}

/// The listen backlog (the kernel caps it at `somaxconn`): a pool filling thousands of
/// connections at once must not overflow the accept queue, whose dropped handshakes come
/// back as resets.
const BACKLOG: u32 = 65_535;

fn start_weft_server() -> Arc<NetSvc> {
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let listener = weft::net::TcpSocket::new_v4()
        .and_then(|s| {
            s.bind(any)?;
            s.listen(BACKLOG)
        })
        .unwrap_or_else(|e| panic!("the net service cannot listen on 127.0.0.1:0: {e}"));
    let addr = listener.local_addr().expect("a bound listener's address");
    let svc = Arc::new(NetSvc {
        addr,
        pool: Mutex::new(Vec::new()),
        opened: Default::default(),
    });
    // The accept task holds the service: it lives as long as the runtime runs it.
    let held = svc.clone();
    drop(weft::spawn(async move {
        let _held = held;
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            drop(weft::spawn(serve_weft(s)));
        }
    }));
    svc
}

async fn serve_weft(s: TcpStream) {
    let mut req = Vec::with_capacity(MSG);
    let mut out = Vec::with_capacity(MSG);
    loop {
        let (r, b) = s.read_exact(req).await;
        req = b;
        if r.is_err() {
            return;
        }
        answer(&req, &mut out);
        let (r, b) = s.write_all(out).await;
        out = b;
        if r.is_err() {
            return;
        }
    }
}

/// The `net` call's future on weft.
pub type NetCall = Pin<Box<dyn Future<Output = Result<u64, SvcError>> + Send>>;

/// One `net` call as a future on weft.
pub fn weft_call(x: u64, fail: bool) -> NetCall {
    Box::pin(async move {
        let svc = weft_svc();
        let addr = svc.addr;
        let conn = match svc.take() {
            Some(c) => c,
            None => {
                let s = TcpStream::connect(addr)
                    .await
                    .unwrap_or_else(|e| io_panic("connect", addr, e));
                s.set_nodelay(true)
                    .unwrap_or_else(|e| io_panic("TCP_NODELAY", addr, e));
                svc.opened_one();
                Conn {
                    stream: Arc::new(s),
                    buf: Vec::with_capacity(MSG),
                }
            }
        };
        // Dropped before the reply (the future cancelled), `conn` closes with it.
        let Conn { stream, mut buf } = conn;
        request(x, fail, &mut buf);
        let (r, buf) = stream.write_all(buf).await;
        r.unwrap_or_else(|e| io_panic("send", addr, e));
        let (r, buf) = stream.read_exact(buf).await;
        r.unwrap_or_else(|e| io_panic("receive", addr, e));
        let out = decode(&buf);
        svc.put(Conn { stream, buf });
        out
    })
}

/// One `net` call with an error-first callback, on `weft::callback::net`: no future, no
/// task. `cb` runs from the reactor's completion (or the runtime's queues on the fallback
/// driver), never inline.
pub fn weft_call_cb(x: u64, fail: bool, cb: impl Callback<u64, SvcError>) {
    let svc = weft_svc();
    match svc.take() {
        Some(c) => exchange(svc, c, x, fail, cb),
        None => {
            let addr = svc.addr;
            callback::net::connect(addr, move |r: io::Result<TcpStream>| {
                let s = r.unwrap_or_else(|e| io_panic("connect", addr, e));
                s.set_nodelay(true)
                    .unwrap_or_else(|e| io_panic("TCP_NODELAY", addr, e));
                svc.opened_one();
                let c = Conn {
                    stream: Arc::new(s),
                    buf: Vec::with_capacity(MSG),
                };
                exchange(svc, c, x, fail, cb)
            });
        }
    }
}

fn exchange(svc: Arc<NetSvc>, c: Conn, x: u64, fail: bool, cb: impl Callback<u64, SvcError>) {
    let Conn { stream, mut buf } = c;
    request(x, fail, &mut buf);
    let s2 = stream.clone();
    callback::net::write_all(&stream, buf, move |(r, buf)| {
        let addr = svc.addr;
        r.unwrap_or_else(|e| io_panic("send", addr, e));
        let s3 = s2.clone();
        callback::net::read_exact(&s2, buf, move |(r, buf)| {
            r.unwrap_or_else(|e| io_panic("receive", addr, e));
            let out = decode(&buf);
            svc.put(Conn { stream: s3, buf });
            cb.call(out)
        });
    });
}

// --- tokio ---------------------------------------------------------------------------------

#[cfg(feature = "tokio")]
pub use tokio_net::{TokioNetCall, tokio_call, tokio_svc};

#[cfg(feature = "tokio")]
pub(crate) use tokio_net::tag_tokio_thread;

#[cfg(feature = "tokio")]
mod tokio_net {
    use super::*;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    /// A pooled tokio connection and its buffer.
    struct TConn {
        stream: tokio::net::TcpStream,
        buf: [u8; MSG],
    }

    /// One tokio runtime's `net` service.
    pub struct TokioSvc {
        addr: SocketAddr,
        pool: Mutex<Vec<TConn>>,
        /// Cleared when the accept task is dropped (its runtime shut down).
        alive: Arc<std::sync::atomic::AtomicBool>,
    }

    /// Clears the service's `alive` when the accept task is dropped.
    struct AliveGuard(Arc<std::sync::atomic::AtomicBool>);

    impl Drop for AliveGuard {
        fn drop(&mut self) {
            self.0.store(false, Relaxed);
        }
    }

    impl std::fmt::Debug for TokioSvc {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TokioSvc")
                .field("addr", &self.addr)
                .finish()
        }
    }

    static NEXT: AtomicU64 = AtomicU64::new(1);

    /// Every tokio runtime's service, by id.
    static TOKIO_ALL: OnceLock<Mutex<HashMap<u64, Weak<TokioSvc>>>> = OnceLock::new();

    /// [`close_idle`](super::close_idle) for tokio's services.
    pub(super) fn close_idle() -> usize {
        let Some(all) = TOKIO_ALL.get() else {
            return 0;
        };
        let mut n = 0;
        for s in all.lock().values().filter_map(Weak::upgrade) {
            let idle = std::mem::take(&mut *s.pool.lock());
            n += idle.len();
        }
        n
    }

    thread_local! {
        static RT_ID: Cell<u64> = const { Cell::new(0) };
        static TCURRENT: RefCell<Option<(u64, Arc<TokioSvc>)>> = const { RefCell::new(None) };
    }

    /// A hook for `on_thread_start`: every thread it runs on shares one id (one service).
    pub(crate) fn tag_tokio_thread() -> impl Fn() + Send + Sync + 'static {
        let id = NEXT.fetch_add(1, Relaxed);
        move || RT_ID.with(|c| c.set(id))
    }

    /// The net service of the current tokio runtime (see the module docs), started on
    /// first use.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or if the listener cannot be bound.
    pub fn tokio_svc() -> Arc<TokioSvc> {
        let id = RT_ID.with(|c| {
            if c.get() == 0 {
                c.set(NEXT.fetch_add(1, Relaxed));
            }
            c.get()
        });
        // A thread outside `harness::tokio_runtime` may outlive the runtime whose service
        // it cached: a dead service is replaced.
        if let Some(s) = TCURRENT.with_borrow(|c| {
            c.as_ref()
                .filter(|c| c.0 == id && c.1.alive.load(Relaxed))
                .map(|c| c.1.clone())
        }) {
            return s;
        }
        let all = TOKIO_ALL.get_or_init(Default::default);
        let svc = {
            let mut all = all.lock();
            all.retain(|_, w| w.strong_count() > 0);
            match all
                .get(&id)
                .and_then(Weak::upgrade)
                .filter(|s| s.alive.load(Relaxed))
            {
                Some(s) => s,
                None => {
                    let s = start();
                    all.insert(id, Arc::downgrade(&s));
                    s
                }
            }
        };
        TCURRENT.with_borrow_mut(|c| *c = Some((id, svc.clone())));
        svc
    }

    fn start() -> Arc<TokioSvc> {
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        let listener = tokio::net::TcpSocket::new_v4()
            .and_then(|s| {
                s.bind(any)?;
                s.listen(BACKLOG)
            })
            .unwrap_or_else(|e| panic!("the net service cannot listen on 127.0.0.1:0: {e}"));
        let addr = listener.local_addr().expect("a bound listener's address");
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let svc = Arc::new(TokioSvc {
            addr,
            pool: Mutex::new(Vec::new()),
            alive: alive.clone(),
        });
        let held = svc.clone();
        drop(tokio::spawn(async move {
            let _held = held;
            let _alive = AliveGuard(alive);
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                let _ = s.set_nodelay(true);
                drop(tokio::spawn(serve(s)));
            }
        }));
        svc
    }

    async fn serve(mut s: tokio::net::TcpStream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut req = [0u8; MSG];
        let mut out = Vec::with_capacity(MSG);
        loop {
            if s.read_exact(&mut req).await.is_err() {
                return;
            }
            answer(&req, &mut out);
            if s.write_all(&out).await.is_err() {
                return;
            }
        }
    }

    /// The `net` call's future on tokio.
    pub type TokioNetCall = Pin<Box<dyn Future<Output = Result<u64, SvcError>> + Send>>;

    /// One `net` call on tokio, with `tokio::net`; a call dropped mid-way closes its
    /// connection.
    pub fn tokio_call(x: u64, fail: bool) -> TokioNetCall {
        Box::pin(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let svc = tokio_svc();
            let addr = svc.addr;
            let popped = svc.pool.lock().pop();
            let mut c = match popped {
                Some(c) => c,
                None => {
                    let s = tokio::net::TcpStream::connect(addr)
                        .await
                        .unwrap_or_else(|e| io_panic("connect", addr, e));
                    s.set_nodelay(true)
                        .unwrap_or_else(|e| io_panic("TCP_NODELAY", addr, e));
                    TConn {
                        stream: s,
                        buf: [0; MSG],
                    }
                }
            };
            c.buf[0] = fail as u8;
            c.buf[1..].copy_from_slice(&x.to_le_bytes());
            c.stream
                .write_all(&c.buf)
                .await
                .unwrap_or_else(|e| io_panic("send", addr, e));
            c.stream
                .read_exact(&mut c.buf)
                .await
                .unwrap_or_else(|e| io_panic("receive", addr, e));
            let out = decode(&c.buf);
            svc.pool.lock().push(c);
            out
        })
    }
}
