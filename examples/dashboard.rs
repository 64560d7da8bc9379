//! The article's `loadDashboard` over real HTTP: a hyper server on weft with the
//! dashboard's endpoints, and in each of the three styles a hyper client that fetches
//! `/api/user`, `/api/notifications` and `/api/activity` in parallel, checks each status as
//! the article checks `response.ok`, decodes the JSON with serde and prints the dashboard;
//! then the error path on a route that answers 500, `fetchWithRetry` against a route that
//! fails twice, and `fetchWithTimeout` against one that answers late. Last, the time one
//! dashboard load takes in each style.
//!
//! ```text
//! cargo run --release --example dashboard
//! ```
//!
//! ```js
//! async function loadDashboard() {
//!   try {
//!     const [userRes, notificationsRes, activityRes] = await Promise.all([
//!       fetch("/api/user"), fetch("/api/notifications"), fetch("/api/activity")
//!     ]);
//!     const user = await userRes.json();
//!     ...
//!     return { user, notifications, activity };
//!   } catch (error) {
//!     console.error("Dashboard failed:", error);
//!     throw error;
//!   }
//! }
//! ```
//!
//! hyper's client is future-based, so the callback style reaches it the way Node's
//! callback APIs reach libuv: `fetch_cb` is `callbackify` of one fetch (a task per
//! request), and everything above it — the parallel load, the retry, the timeout — is
//! composed with `weft::callback`'s helpers only.

#[path = "common/dashboard_http.rs"]
mod http;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{
    Client, Dashboard, FetchError, Fetched, OnWeft, User, checked, fetch_cb, load_dashboard_cb,
    load_dashboard_comb,
};
use weft::callback::{self, Callback};
use weft::promise::{PromiseExt, retry};

type WeftClient = Client<OnWeft>;

/// `fetchWithTimeout`'s limit: well under `/api/slow`'s delay.
const LIMIT: Duration = Duration::from_millis(50);

// --- callback ------------------------------------------------------------------------------

/// `fetchWithRetry(url, 3)` with callbacks: `async.retry`.
fn fetch_with_retry_cb(
    client: &Arc<WeftClient>,
    path: &'static str,
    done: impl Callback<User, FetchError>,
) {
    let client = client.clone();
    callback::retry(
        3,
        move |_attempt, part| {
            fetch_cb(&client, path, move |r: Result<Fetched, FetchError>| {
                part.call(r.and_then(Fetched::check).and_then(|f| f.json()))
            });
        },
        done,
    );
}

/// `fetchWithTimeout(url, ms)` with callbacks: `async.timeout`, the fetch aborted when
/// the limit passes first.
fn fetch_with_timeout_cb(
    client: &Arc<WeftClient>,
    path: &'static str,
    done: impl Callback<Fetched, FetchError>,
) {
    let client = client.clone();
    callback::timeout(
        LIMIT,
        move |part| fetch_cb(&client, path, part),
        move |r: Result<Result<Fetched, FetchError>, weft::time::Elapsed>| {
            done.call(r.unwrap_or(Err(FetchError::TimedOut)))
        },
    );
}

// --- combinator ----------------------------------------------------------------------------

fn fetch_with_retry_comb(
    client: &Arc<WeftClient>,
    path: &'static str,
) -> impl std::future::Future<Output = Result<User, FetchError>> + Send + use<> {
    let client = client.clone();
    retry(3, move |_attempt| {
        client
            .clone()
            .fetch(path)
            .then(checked)
            .map(|r| r.and_then(|f| f.json()))
    })
}

fn fetch_with_timeout_comb(
    client: &Arc<WeftClient>,
    path: &'static str,
) -> impl std::future::Future<Output = Result<Fetched, FetchError>> + Send + use<> {
    client
        .clone()
        .fetch(path)
        .timeout(LIMIT)
        .map(|r| r.unwrap_or(Err(FetchError::TimedOut)))
}

// --- async fn ------------------------------------------------------------------------------

async fn fetch_with_retry(client: Arc<WeftClient>, path: &'static str) -> Result<User, FetchError> {
    let mut attempt = 1;
    loop {
        let r = async { client.clone().fetch(path).await?.check()?.json() }.await;
        match r {
            Ok(user) => return Ok(user),
            Err(e) if attempt == 3 => return Err(e),
            Err(_) => attempt += 1,
        }
    }
}

async fn fetch_with_timeout(
    client: Arc<WeftClient>,
    path: &'static str,
) -> Result<Fetched, FetchError> {
    match weft::time::timeout(LIMIT, client.fetch(path)).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::TimedOut),
    }
}

/// The `async fn` error path: the article's `getUsers`, on the route that answers 500.
async fn load_broken(client: Arc<WeftClient>) -> Result<User, FetchError> {
    client.fetch("/api/broken").await?.check()?.json()
}

// --- the demo ------------------------------------------------------------------------------

fn await_cb<T: Send + 'static>(
    rt: &weft::Runtime,
    start: impl FnOnce(Box<dyn FnOnce(T) + Send>) + Send + 'static,
) -> T {
    weft_patterns::harness::await_callback(rt, start)
}

fn print_dashboard(style: &str, r: &Result<Dashboard, FetchError>) {
    match r {
        Ok(d) => {
            println!("[{style}] {:?}", d.user);
            println!("[{style}] {:?}", d.notifications);
            println!("[{style}] {:?}", d.activity);
        }
        Err(e) => eprintln!("[{style}] Dashboard failed: {e}"),
    }
}

fn check(style: &str, what: &str, ok: bool) {
    if !ok {
        eprintln!("[{style}] {what}: unexpected outcome");
        std::process::exit(1);
    }
}

/// Loads the dashboard `n` times, one after the other, in one style; the time per load.
fn time_style(rt: &weft::Runtime, client: &Arc<WeftClient>, style: &str, n: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let r = match style {
            "callback" => {
                let c = client.clone();
                await_cb(rt, move |done| load_dashboard_cb(&c, done))
            }
            "combinator" => rt.block_on(rt.spawn(load_dashboard_comb(client))).unwrap(),
            _ => rt
                .block_on(rt.spawn(client.clone().load_dashboard()))
                .unwrap(),
        };
        check(style, "timed load", r.is_ok());
    }
    start.elapsed() / n as u32
}

fn main() {
    let rt = weft::Runtime::new().expect("a weft runtime");
    let addr = rt
        .block_on(http::start_weft_server())
        .unwrap_or_else(|e| panic!("cannot start the dashboard server: {e}"));
    println!("dashboard server on http://{addr}/");
    let client = WeftClient::new(addr);
    let want = http::expected();

    // callback
    let c = client.clone();
    let r = await_cb(&rt, move |done| load_dashboard_cb(&c, done));
    print_dashboard("callback", &r);
    check("callback", "dashboard", r.as_ref().ok() == Some(&want));
    let c = client.clone();
    let r: Result<Dashboard, FetchError> = await_cb(&rt, move |done| {
        callback::parallel(
            1,
            move |_, part| {
                fetch_cb(&c, "/api/broken", move |r: Result<Fetched, FetchError>| {
                    part.call(r.and_then(Fetched::check))
                });
            },
            move |r: Result<Vec<Fetched>, FetchError>| done(r.map(|_| http::expected())),
        )
    });
    if let Err(e) = &r {
        println!("[callback] Dashboard failed: {e}");
    }
    check(
        "callback",
        "the 500 route",
        matches!(r, Err(FetchError::Status(s)) if s == 500),
    );
    let c = client.clone();
    let r = await_cb(&rt, move |done| {
        fetch_with_retry_cb(&c, "/api/flaky?key=callback", done)
    });
    println!("[callback] fetchWithRetry: {r:?}");
    check("callback", "retry", r.is_ok());
    let c = client.clone();
    let r = await_cb(&rt, move |done| {
        fetch_with_timeout_cb(&c, "/api/slow", done)
    });
    println!(
        "[callback] fetchWithTimeout: {}",
        r.as_ref()
            .map_or_else(|e| e.to_string(), |f| f.status.to_string())
    );
    check(
        "callback",
        "timeout",
        matches!(r, Err(FetchError::TimedOut)),
    );

    // combinator
    let r = rt.block_on(rt.spawn(load_dashboard_comb(&client))).unwrap();
    print_dashboard("combinator", &r);
    check("combinator", "dashboard", r.as_ref().ok() == Some(&want));
    let r = rt
        .block_on(rt.spawn(client.clone().fetch("/api/broken").then(checked)))
        .unwrap();
    if let Err(e) = &r {
        println!("[combinator] Dashboard failed: {e}");
    }
    check(
        "combinator",
        "the 500 route",
        matches!(r, Err(FetchError::Status(s)) if s == 500),
    );
    let r = rt
        .block_on(rt.spawn(fetch_with_retry_comb(&client, "/api/flaky?key=combinator")))
        .unwrap();
    println!("[combinator] fetchWithRetry: {r:?}");
    check("combinator", "retry", r.is_ok());
    let r = rt
        .block_on(rt.spawn(fetch_with_timeout_comb(&client, "/api/slow")))
        .unwrap();
    println!(
        "[combinator] fetchWithTimeout: {}",
        r.as_ref()
            .map_or_else(|e| e.to_string(), |f| f.status.to_string())
    );
    check(
        "combinator",
        "timeout",
        matches!(r, Err(FetchError::TimedOut)),
    );

    // async fn
    let r = rt
        .block_on(rt.spawn(client.clone().load_dashboard()))
        .unwrap();
    print_dashboard("async_fn", &r);
    check("async_fn", "dashboard", r.as_ref().ok() == Some(&want));
    let r = rt.block_on(rt.spawn(load_broken(client.clone()))).unwrap();
    if let Err(e) = &r {
        println!("[async_fn] Dashboard failed: {e}");
    }
    check(
        "async_fn",
        "the 500 route",
        matches!(r, Err(FetchError::Status(s)) if s == 500),
    );
    let r = rt
        .block_on(rt.spawn(fetch_with_retry(client.clone(), "/api/flaky?key=async_fn")))
        .unwrap();
    println!("[async_fn] fetchWithRetry: {r:?}");
    check("async_fn", "retry", r.is_ok());
    let r = rt
        .block_on(rt.spawn(fetch_with_timeout(client.clone(), "/api/slow")))
        .unwrap();
    println!(
        "[async_fn] fetchWithTimeout: {}",
        r.as_ref()
            .map_or_else(|e| e.to_string(), |f| f.status.to_string())
    );
    check(
        "async_fn",
        "timeout",
        matches!(r, Err(FetchError::TimedOut)),
    );

    // One dashboard load, one at a time (keep-alive connections, warmed above).
    for style in ["callback", "combinator", "async_fn"] {
        let per = time_style(&rt, &client, style, 200);
        println!(
            "{style:>10}: {:.1} µs per dashboard (3 requests in parallel)",
            per.as_secs_f64() * 1e6
        );
    }
}
