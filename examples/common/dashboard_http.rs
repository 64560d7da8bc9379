//! The dashboard's HTTP side, shared by `examples/dashboard.rs` and the `dashboard/http`
//! row of `examples/compare.rs`: a small hyper server with the article's endpoints, and a
//! hyper client with a pool of keep-alive connections, on weft or (the baseline) tokio.
//!
//! Routes (JSON bodies):
//!
//! | path | answer |
//! |---|---|
//! | `/api/user` | `200`, a [`User`] |
//! | `/api/notifications` | `200`, a list of [`Notification`]s |
//! | `/api/activity` | `200`, a list of [`Activity`] items |
//! | `/api/broken` | `500` |
//! | `/api/flaky?key=K` | `503` for the first two requests with key `K`, then `200`, a [`User`] |
//! | `/api/slow` | `200`, a [`User`], after [`SLOW`] |
//! | anything else | `404` |
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use weft::JoinHandle;
use weft::callback::{self, Callback, Cancel};
use weft::promise::{PromiseExt, all, callbackify};

/// How late `/api/slow` answers.
pub const SLOW: Duration = Duration::from_millis(200);

/// The three endpoints the dashboard loads.
pub const DASHBOARD: [&str; 3] = ["/api/user", "/api/notifications", "/api/activity"];

/// `/api/user`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
}

/// One of `/api/notifications`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: u64,
    pub text: String,
    pub read: bool,
}

/// One of `/api/activity`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub what: String,
    pub minutes_ago: u32,
}

/// What `loadDashboard` returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Dashboard {
    pub user: User,
    pub notifications: Vec<Notification>,
    pub activity: Vec<Activity>,
}

fn user() -> User {
    User {
        id: 7,
        name: "Ada".into(),
    }
}

fn notifications() -> Vec<Notification> {
    vec![
        Notification {
            id: 1,
            text: "Your report is ready".into(),
            read: false,
        },
        Notification {
            id: 2,
            text: "Grace commented on your post".into(),
            read: true,
        },
    ]
}

fn activity() -> Vec<Activity> {
    vec![
        Activity {
            what: "signed in".into(),
            minutes_ago: 1,
        },
        Activity {
            what: "uploaded notes.txt".into(),
            minutes_ago: 12,
        },
        Activity {
            what: "changed the password".into(),
            minutes_ago: 90,
        },
    ]
}

/// The expected dashboard, for checks.
pub fn expected() -> Dashboard {
    Dashboard {
        user: user(),
        notifications: notifications(),
        activity: activity(),
    }
}

/// A fetch's failure: the article's `Error` objects.
#[derive(Debug)]
pub enum FetchError {
    /// `!response.ok`: `HTTP error: 500`.
    Status(StatusCode),
    /// The body was not the JSON expected.
    Json(serde_json::Error),
    /// The connection or the HTTP exchange failed.
    Http(String),
    /// `fetchWithTimeout`'s limit passed first: `Request timed out`.
    TimedOut,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Status(s) => write!(f, "HTTP error: {}", s.as_u16()),
            FetchError::Json(e) => write!(f, "bad JSON: {e}"),
            FetchError::Http(e) => write!(f, "request failed: {e}"),
            FetchError::TimedOut => f.write_str("Request timed out"),
        }
    }
}

impl std::error::Error for FetchError {}

/// A fetched response, its body read: `response.ok`, `response.status`, `response.json()`.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Fetched {
    /// `response.ok`: a 2xx status.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// `response.json()`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, FetchError> {
        serde_json::from_slice(&self.body).map_err(FetchError::Json)
    }

    /// `if (!response.ok) throw new Error(`HTTP error: ${response.status}`)`.
    pub fn check(self) -> Result<Fetched, FetchError> {
        if self.ok() {
            Ok(self)
        } else {
            Err(FetchError::Status(self.status))
        }
    }
}

/// [`Fetched::check`] as a future, for `.then`: one fn item, so every `.then(checked)` has
/// one type (a set for `all` must be homogeneous).
pub fn checked(r: Fetched) -> std::future::Ready<Result<Fetched, FetchError>> {
    std::future::ready(r.check())
}

/// Decodes the three dashboard responses.
pub fn decode(rs: Vec<Fetched>) -> Result<Dashboard, FetchError> {
    let [u, n, a]: [Fetched; 3] = rs
        .try_into()
        .map_err(|_| FetchError::Http("expected three responses".into()))?;
    Ok(Dashboard {
        user: u.json()?,
        notifications: n.json()?,
        activity: a.json()?,
    })
}

/// What the server and the client need from a runtime.
pub trait HttpRt: Copy + Send + Sync + 'static {
    /// A connected stream that hyper can drive.
    type Io: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static;
    /// Connects to `addr` with `TCP_NODELAY`.
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Io>> + Send;
    /// Spawns a task.
    fn spawn(f: impl Future<Output = ()> + Send + 'static);
    /// Waits `d`.
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send;
}

/// weft: `weft::net` streams (hyper's traits come with weft's `hyper` feature).
#[derive(Clone, Copy, Debug)]
pub struct OnWeft;

impl HttpRt for OnWeft {
    type Io = weft::net::TcpStream;

    async fn connect(addr: SocketAddr) -> io::Result<Self::Io> {
        let s = weft::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    fn spawn(f: impl Future<Output = ()> + Send + 'static) {
        drop(weft::spawn(f));
    }

    fn sleep(d: Duration) -> impl Future<Output = ()> + Send {
        weft::time::sleep(d)
    }
}

/// tokio: `tokio::net` streams through `hyper_util`'s `TokioIo`.
#[derive(Clone, Copy, Debug)]
pub struct OnTokio;

impl HttpRt for OnTokio {
    type Io = hyper_util::rt::TokioIo<tokio::net::TcpStream>;

    async fn connect(addr: SocketAddr) -> io::Result<Self::Io> {
        let s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(hyper_util::rt::TokioIo::new(s))
    }

    fn spawn(f: impl Future<Output = ()> + Send + 'static) {
        drop(tokio::spawn(f));
    }

    fn sleep(d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
}

// --- the server ------------------------------------------------------------------------------

/// The server's state: how often each `/api/flaky` key was asked for.
#[derive(Default)]
struct Flaky(Mutex<HashMap<String, u32>>);

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("the dashboard's types serialise")
}

async fn route<R: HttpRt>(
    req: Request<hyper::body::Incoming>,
    flaky: Arc<Flaky>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let ok = StatusCode::OK;
    Ok(match req.uri().path() {
        "/api/user" => json_response(ok, to_json(&user())),
        "/api/notifications" => json_response(ok, to_json(&notifications())),
        "/api/activity" => json_response(ok, to_json(&activity())),
        "/api/broken" => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"error":"the database is down"}"#.to_vec(),
        ),
        "/api/flaky" => {
            let key = req.uri().query().unwrap_or("").to_string();
            let n = {
                let mut m = flaky.0.lock().unwrap();
                let n = m.entry(key).or_insert(0);
                *n += 1;
                *n
            };
            if n <= 2 {
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    br#"{"error":"try again"}"#.to_vec(),
                )
            } else {
                json_response(ok, to_json(&user()))
            }
        }
        "/api/slow" => {
            R::sleep(SLOW).await;
            json_response(ok, to_json(&user()))
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            br#"{"error":"no such route"}"#.to_vec(),
        ),
    })
}

fn serve_conn<R: HttpRt>(io: R::Io, flaky: Arc<Flaky>) {
    R::spawn(async move {
        let svc = hyper::service::service_fn(move |req| route::<R>(req, flaky.clone()));
        // A client that goes away mid-request ends its connection: nothing to report.
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, svc)
            .await;
    });
}

/// Starts the server on the current weft runtime, on 127.0.0.1 at a port the kernel picks.
pub async fn start_weft_server() -> io::Result<SocketAddr> {
    let listener = weft::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let flaky = Arc::new(Flaky::default());
    weft::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            serve_conn::<OnWeft>(s, flaky.clone());
        }
    });
    Ok(addr)
}

/// Starts the same server on the current tokio runtime.
pub async fn start_tokio_server() -> io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let flaky = Arc::new(Flaky::default());
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            serve_conn::<OnTokio>(hyper_util::rt::TokioIo::new(s), flaky.clone());
        }
    });
    Ok(addr)
}

// --- the client ------------------------------------------------------------------------------

/// A hyper HTTP/1.1 client for one server: a pool of keep-alive connections, each used by
/// one request at a time (taken for the request, put back once its body is read; a fetch
/// dropped mid-way closes its connection).
pub struct Client<R: HttpRt> {
    addr: SocketAddr,
    pool: Mutex<Vec<SendRequest<Empty<Bytes>>>>,
    _rt: std::marker::PhantomData<R>,
}

impl<R: HttpRt> Client<R> {
    /// A client for the server at `addr`.
    pub fn new(addr: SocketAddr) -> Arc<Self> {
        Arc::new(Client {
            addr,
            pool: Mutex::new(Vec::new()),
            _rt: std::marker::PhantomData,
        })
    }

    /// Closes the idle pooled connections.
    pub fn close_idle(&self) {
        self.pool.lock().unwrap().clear();
    }

    async fn connection(&self) -> Result<SendRequest<Empty<Bytes>>, FetchError> {
        loop {
            let pooled = self.pool.lock().unwrap().pop();
            let Some(mut send) = pooled else { break };
            // A connection the server closed is dropped; the next one is tried.
            if send.ready().await.is_ok() {
                return Ok(send);
            }
        }
        let http = |e: &dyn fmt::Display| FetchError::Http(format!("{}: {e}", self.addr));
        let io = R::connect(self.addr).await.map_err(|e| http(&e))?;
        let (send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| http(&e))?;
        R::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    /// `fetch(path)`: GET, then the whole body. A status that is not 2xx is still `Ok`, as
    /// in the article: check [`Fetched::ok`].
    pub async fn fetch(self: Arc<Self>, path: &'static str) -> Result<Fetched, FetchError> {
        let mut send = self.connection().await?;
        let req = Request::get(path)
            .header(hyper::header::HOST, "127.0.0.1")
            .body(Empty::<Bytes>::new())
            .expect("a GET with a static path");
        let http = |e: hyper::Error| FetchError::Http(format!("GET {path}: {e}"));
        let resp = send.send_request(req).await.map_err(http)?;
        let status = resp.status();
        let body = resp.into_body().collect().await.map_err(http)?.to_bytes();
        self.pool.lock().unwrap().push(send);
        Ok(Fetched { status, body })
    }

    /// The article's `loadDashboard` in `async fn` style: the three fetches in parallel
    /// (`Promise.all`), then each checked and decoded.
    pub async fn load_dashboard(self: Arc<Self>) -> Result<Dashboard, FetchError> {
        let [u, n, a] = DASHBOARD;
        let rs = weft::promise::all([
            self.clone().fetch(u),
            self.clone().fetch(n),
            self.clone().fetch(a),
        ])
        .await?;
        let rs = rs
            .into_iter()
            .map(Fetched::check)
            .collect::<Result<Vec<_>, _>>()?;
        decode(rs)
    }
}

// --- the weft styles of loadDashboard (the example and the comparison) ----------------------

/// A fetch in flight, as the callback helpers cancel it.
pub struct Abort(JoinHandle<()>);

impl Cancel for Abort {
    fn cancel(self) {
        self.0.abort();
    }
}

/// `http.get(path, cb)`: one fetch delivered to an error-first callback.
pub fn fetch_cb(
    client: &Arc<Client<OnWeft>>,
    path: &'static str,
    cb: impl Callback<Fetched, FetchError>,
) -> Abort {
    Abort(callbackify(client.clone().fetch(path), cb))
}

/// The callback `loadDashboard`: `async.parallel` of the three fetches, each checked.
pub fn load_dashboard_cb(client: &Arc<Client<OnWeft>>, done: impl Callback<Dashboard, FetchError>) {
    let client = client.clone();
    callback::parallel(
        3,
        move |i, part| {
            fetch_cb(
                &client,
                DASHBOARD[i],
                move |r: Result<Fetched, FetchError>| part.call(r.and_then(Fetched::check)),
            );
        },
        move |r: Result<Vec<Fetched>, FetchError>| done.call(r.and_then(decode)),
    );
}

/// The promise `loadDashboard`: `Promise.all([fetch(..).then(check), ...]).then(decode)`.
pub fn load_dashboard_comb(
    client: &Arc<Client<OnWeft>>,
) -> impl std::future::Future<Output = Result<Dashboard, FetchError>> + Send + use<> {
    let f = |path| client.clone().fetch(path).then(checked);
    all([f(DASHBOARD[0]), f(DASHBOARD[1]), f(DASHBOARD[2])])
        .map(|r| r.and_then(|rs| decode(rs.into())))
}
