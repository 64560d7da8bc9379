//! The comparison: every pattern x kind x in-flight x workers x style, time per op and the
//! ratio to `async_fn`, with tokio's `async fn` as the baseline.
//!
//! ```text
//! cargo run --release --example compare                 # full: about 10 minutes
//! cargo run --release --example compare -- --quick      # under 3 minutes
//! cargo run --release --example compare -- --quick --json out.json --markdown out.md --svg out.svg
//! cargo run --release --example compare -- --filter chain   # cases whose id contains "chain"
//! cargo run --release --example compare -- --kind net        # the net rows only
//! ```
//!
//! The `net` kind keeps a pool of persistent connections per runtime (at 64 in flight,
//! `all_100` holds 6400 of them, and both ends count), so the command raises its soft
//! `RLIMIT_NOFILE` to the hard limit at start and says so when even that is too low, and
//! closes the idle pooled connections whenever it switches runtimes (each run's untimed
//! round fills its own pool again before the clock starts).
//!
//! Each measurement runs the shared harness (`weft_patterns::harness`, the code
//! `benches/patterns.rs` gives to criterion): a calibration run picks an op count that
//! takes about the target time, then the four styles are run in turn, A B C D A B C D, so
//! that every ratio compares runs taken moments apart. The figure is the median ns/op over
//! the repetitions; min and max go to the JSON.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_patterns::harness::{tokio_runtime, weft_runtime};
use weft_patterns::{Kind, Latch, Runner, Style, cases};

#[path = "common/dashboard_http.rs"]
mod http;

struct Options {
    quick: bool,
    json: Option<String>,
    markdown: Option<String>,
    svg: Option<String>,
    filter: Option<String>,
    kind: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: compare [--quick] [--json PATH] [--markdown PATH] [--svg PATH] [--filter TEXT] [--kind KIND]"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        quick: false,
        json: None,
        markdown: None,
        svg: None,
        filter: None,
        kind: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--quick" => o.quick = true,
            "--json" => o.json = Some(value()),
            "--markdown" => o.markdown = Some(value()),
            "--svg" => o.svg = Some(value()),
            "--filter" => o.filter = Some(value()),
            "--kind" => o.kind = Some(value()),
            // `cargo bench`-style harness flags are ignored, so the example also runs
            // under `cargo test --examples`.
            "--bench" | "--test" => {}
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown argument {other:?}");
                usage()
            }
        }
    }
    o
}

/// One (case, kind, in-flight, workers) point: a figure per style.
struct Row {
    case: &'static dyn Runner,
    kind: Kind,
    inflight: usize,
    workers: usize,
    /// Per style in `Style::ALL` order: ns/op of each repetition.
    samples: [Vec<f64>; 4],
}

/// The median, or `None` for an empty sample.
fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        None
    } else if n % 2 == 1 {
        Some(s[n / 2])
    } else {
        Some((s[n / 2 - 1] + s[n / 2]) / 2.0)
    }
}

impl Row {
    /// The median ns/op of `style` (NaN when it has no sample: printed as `-`, never
    /// written to the JSON).
    fn ns(&self, style: Style) -> f64 {
        median(&self.samples[style_index(style)]).unwrap_or(f64::NAN)
    }
}

/// The row's kind as the table shows it: `http` for the dashboard, else the kind's name.
fn kind_label(r: &Row) -> String {
    if r.case.id() == DASHBOARD_ID {
        "http".into()
    } else {
        r.kind.name()
    }
}

fn style_index(style: Style) -> usize {
    Style::ALL.iter().position(|&s| s == style).expect("style")
}

struct Runtimes {
    weft: Vec<(usize, weft::Runtime)>,
    tokio: Vec<(usize, tokio::runtime::Runtime)>,
    /// The runtime of the last run (tokio?, workers).
    last: std::cell::Cell<Option<(bool, usize)>>,
}

impl Runtimes {
    fn run(
        &self,
        case: &dyn Runner,
        style: Style,
        kind: Kind,
        inflight: usize,
        workers: usize,
        ops: u64,
    ) -> (Duration, u64) {
        // Only one runtime's net pools hold descriptors at a time (`all_100` at 64 in
        // flight keeps 12 800 open on one runtime): switching runtimes closes the idle
        // pooled connections, and the run's untimed round refills its own pool.
        let on = Some((style == Style::TokioAsyncFn, workers));
        if self.last.replace(on) != on {
            weft_patterns::net::close_idle();
            DASHBOARD_HTTP.close_idle();
        }
        match style {
            Style::TokioAsyncFn => {
                let rt = &self
                    .tokio
                    .iter()
                    .find(|(w, _)| *w == workers)
                    .expect("rt")
                    .1;
                case.run_tokio(rt, kind, inflight, ops)
            }
            _ => {
                let rt = &self.weft.iter().find(|(w, _)| *w == workers).expect("rt").1;
                case.run_weft(rt, style, kind, inflight, ops)
            }
        }
    }
}

/// An op count that takes about `target` with `async_fn` on weft.
fn calibrate(
    rts: &Runtimes,
    case: &dyn Runner,
    kind: Kind,
    inflight: usize,
    workers: usize,
    target: Duration,
) -> u64 {
    let mut ops = inflight as u64;
    loop {
        let (d, ran) = rts.run(case, Style::AsyncFn, kind, inflight, workers, ops);
        if d >= target / 4 || ops >= 1 << 24 {
            let per_op = d.as_secs_f64() / ran as f64;
            let want = (target.as_secs_f64() / per_op.max(1e-9)) as u64;
            return want.clamp(inflight as u64, 1 << 26);
        }
        ops *= 4;
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {cores} cores, Linux {kernel}, commit {commit}")
}

fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "-".into()
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

// --- dashboard/http: the article's loadDashboard as one op ----------------------------------

/// The dashboard row's id; its kind shows as `http`.
const DASHBOARD_ID: &str = "dashboard";

/// `dashboard/http`: one op is the dashboard's three-request load (`examples/dashboard.rs`)
/// against a hyper server on the same runtime, over keep-alive connections: on weft in the
/// three styles, on tokio (hyper over `tokio::net`) in the `async fn` style. Listed under
/// the `net` kind, which the table shows as `http`.
struct DashboardHttp {
    weft: std::sync::Mutex<Vec<(u64, Arc<http::Client<http::OnWeft>>)>>,
    tokio: std::sync::Mutex<Vec<(usize, Arc<http::Client<http::OnTokio>>)>>,
}

static DASHBOARD_HTTP: DashboardHttp = DashboardHttp {
    weft: std::sync::Mutex::new(Vec::new()),
    tokio: std::sync::Mutex::new(Vec::new()),
};

fn lanes(inflight: usize, ops: u64) -> (u64, u64) {
    let inflight = inflight.max(1) as u64;
    let per = ops.div_ceil(inflight).max(1);
    (per, per * inflight)
}

fn loaded(r: Result<http::Dashboard, http::FetchError>) {
    if let Err(e) = r {
        panic!("dashboard/http: a load failed: {e}");
    }
}

/// One callback lane: `left` loads, each started from the previous one's callback.
fn callback_lane(client: Arc<http::Client<http::OnWeft>>, left: u64, latch: Arc<Latch>) {
    if left == 0 {
        return latch.count_down();
    }
    let c = client.clone();
    http::load_dashboard_cb(
        &client,
        move |r: Result<http::Dashboard, http::FetchError>| {
            loaded(r);
            callback_lane(c, left - 1, latch)
        },
    );
}

impl DashboardHttp {
    /// Closes the idle keep-alive connections of every client.
    fn close_idle(&self) {
        for (_, c) in self.weft.lock().unwrap().iter() {
            c.close_idle();
        }
        for (_, c) in self.tokio.lock().unwrap().iter() {
            c.close_idle();
        }
    }

    fn weft_client(&self, rt: &weft::Runtime) -> Arc<http::Client<http::OnWeft>> {
        let id = rt.handle().id();
        let mut all = self.weft.lock().unwrap();
        if let Some((_, c)) = all.iter().find(|(i, _)| *i == id) {
            return c.clone();
        }
        let addr = rt
            .block_on(http::start_weft_server())
            .unwrap_or_else(|e| panic!("dashboard/http: cannot start the weft server: {e}"));
        let c = http::Client::new(addr);
        all.push((id, c.clone()));
        c
    }

    fn tokio_client(&self, rt: &tokio::runtime::Runtime) -> Arc<http::Client<http::OnTokio>> {
        let id = rt as *const _ as usize;
        let mut all = self.tokio.lock().unwrap();
        if let Some((_, c)) = all.iter().find(|(i, _)| *i == id) {
            return c.clone();
        }
        let addr = rt
            .block_on(http::start_tokio_server())
            .unwrap_or_else(|e| panic!("dashboard/http: cannot start the tokio server: {e}"));
        let c = http::Client::new(addr);
        all.push((id, c.clone()));
        c
    }

    fn weft_lanes(
        &self,
        rt: &weft::Runtime,
        style: Style,
        inflight: usize,
        ops: u64,
    ) -> (Duration, u64) {
        let client = self.weft_client(rt);
        let (per, total) = lanes(inflight, ops);
        let elapsed = rt.block_on(async move {
            if style == Style::Callback {
                let latch = Latch::new(inflight as u64);
                let start = Instant::now();
                let l = latch.clone();
                weft::callback::defer(move || {
                    for _ in 0..inflight {
                        callback_lane(client.clone(), per, l.clone());
                    }
                });
                latch.wait().await;
                return start.elapsed();
            }
            let start = Instant::now();
            let lanes: Vec<_> = (0..inflight)
                .map(|_| {
                    let c = client.clone();
                    weft::spawn(async move {
                        for _ in 0..per {
                            if style == Style::Combinator {
                                loaded(http::load_dashboard_comb(&c).await);
                            } else {
                                loaded(c.clone().load_dashboard().await);
                            }
                        }
                    })
                })
                .collect();
            for l in lanes {
                l.await.expect("a dashboard lane");
            }
            start.elapsed()
        });
        (elapsed, total)
    }

    fn tokio_lanes(
        &self,
        rt: &tokio::runtime::Runtime,
        inflight: usize,
        ops: u64,
    ) -> (Duration, u64) {
        let client = self.tokio_client(rt);
        let (per, total) = lanes(inflight, ops);
        let elapsed = rt.block_on(async move {
            let start = Instant::now();
            let lanes: Vec<_> = (0..inflight)
                .map(|_| {
                    let c = client.clone();
                    tokio::spawn(async move {
                        for _ in 0..per {
                            loaded(c.clone().load_dashboard().await);
                        }
                    })
                })
                .collect();
            for l in lanes {
                l.await.expect("a dashboard lane");
            }
            start.elapsed()
        });
        (elapsed, total)
    }
}

impl Runner for DashboardHttp {
    fn id(&self) -> &'static str {
        DASHBOARD_ID
    }

    fn title(&self) -> &'static str {
        "the dashboard over real HTTP"
    }

    fn kinds(&self) -> &'static [Kind] {
        &[Kind::Net]
    }

    fn one_worker_only(&self) -> bool {
        false
    }

    fn run_weft(
        &self,
        rt: &weft::Runtime,
        style: Style,
        _kind: Kind,
        inflight: usize,
        ops: u64,
    ) -> (Duration, u64) {
        assert!(
            style != Style::TokioAsyncFn,
            "run the tokio baseline with run_tokio"
        );
        // Untimed: fills the client's connection pool, as the net kind does.
        self.weft_lanes(rt, style, inflight, inflight as u64);
        self.weft_lanes(rt, style, inflight, ops)
    }

    fn run_tokio(
        &self,
        rt: &tokio::runtime::Runtime,
        _kind: Kind,
        inflight: usize,
        ops: u64,
    ) -> (Duration, u64) {
        self.tokio_lanes(rt, inflight, inflight as u64);
        self.tokio_lanes(rt, inflight, ops)
    }

    fn outcomes(&self, rt: &weft::Runtime, _kind: Kind, _x: u64) -> [String; 3] {
        let client = self.weft_client(rt);
        let c = client.clone();
        let cb = weft_patterns::harness::await_callback(rt, move |done| {
            http::load_dashboard_cb(&c, done)
        });
        let comb = rt.block_on(http::load_dashboard_comb(&client));
        let af = rt.block_on(client.clone().load_dashboard());
        [cb, comb, af].map(|r| format!("{r:?}"))
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; warns when the hard limit is below
/// what the net rows' pools need.
fn raise_nofile_limit() {
    // Both ends of 64 lanes x 100 calls (`all_100`) on one runtime — the pools are closed
    // between rows — and slack.
    const NEED: u64 = 2 * 64 * 100 + 1024;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the live local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        eprintln!(
            "cannot read RLIMIT_NOFILE: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    let was = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads one `rlimit` from the live local.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            eprintln!(
                "cannot raise RLIMIT_NOFILE from {was} to {}: {}",
                lim.rlim_max,
                std::io::Error::last_os_error()
            );
            lim.rlim_cur = was;
        } else {
            eprintln!(
                "RLIMIT_NOFILE: soft limit raised from {was} to {}",
                lim.rlim_cur
            );
        }
    }
    if lim.rlim_cur < NEED {
        eprintln!(
            "RLIMIT_NOFILE is {} (hard {}): the net rows at 64 in flight need about {NEED} \
             descriptors and may fail; raise the hard limit (ulimit -Hn) or run --kind ready",
            lim.rlim_cur, lim.rlim_max
        );
    }
}

fn main() {
    let opts = options();
    raise_nofile_limit();
    let kind_filter = opts.kind.as_deref().map(|k| {
        Kind::parse(k).unwrap_or_else(|| {
            eprintln!("unknown kind {k:?}: ready, file, timer or net");
            usage()
        })
    });
    let (reps, target) = if opts.quick {
        (3, Duration::from_millis(25))
    } else {
        (7, Duration::from_millis(150))
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let worker_counts: Vec<usize> = if cores > 1 { vec![1, cores] } else { vec![1] };
    let rts = Runtimes {
        weft: worker_counts
            .iter()
            .map(|&w| (w, weft_runtime(w)))
            .collect(),
        tokio: worker_counts
            .iter()
            .map(|&w| (w, tokio_runtime(w)))
            .collect(),
        last: std::cell::Cell::new(None),
    };
    weft_patterns::data_file();

    let mut rows = Vec::new();
    let mut all_cases = cases();
    all_cases.push(&DASHBOARD_HTTP);
    for case in all_cases {
        if let Some(f) = &opts.filter {
            if !case.id().contains(f.as_str()) {
                continue;
            }
        }
        for &kind in case.kinds() {
            // `--kind net` keeps the dashboard (its requests are net too).
            if kind_filter.is_some_and(|k| k != kind) {
                continue;
            }
            for &inflight in &[1usize, 64] {
                for &workers in &worker_counts {
                    if case.one_worker_only() && workers > 1 {
                        continue;
                    }
                    rows.push(Row {
                        case,
                        kind,
                        inflight,
                        workers,
                        samples: Default::default(),
                    });
                }
            }
        }
    }

    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let total = rows.len();
    for (i, row) in rows.iter_mut().enumerate() {
        let label = format!(
            "{}/{} i{} w{}",
            row.case.id(),
            kind_label(row),
            row.inflight,
            row.workers
        );
        let ops = calibrate(&rts, row.case, row.kind, row.inflight, row.workers, target);
        // Warm each style once (first-touch allocations, thread wake-ups), untimed.
        for style in Style::ALL {
            rts.run(
                row.case,
                style,
                row.kind,
                row.inflight,
                row.workers,
                row.inflight as u64,
            );
        }
        for _ in 0..reps {
            for style in Style::ALL {
                let (d, ran) = rts.run(row.case, style, row.kind, row.inflight, row.workers, ops);
                row.samples[style_index(style)].push(d.as_nanos() as f64 / ran as f64);
            }
        }
        let line = format!(
            "[{:>3}/{total}] {:<36} async_fn {:>10}  callback {:>6.2}x  combinator {:>6.2}x  tokio {:>6.2}x  ({:.0} s)",
            i + 1,
            label,
            fmt_ns(row.ns(Style::AsyncFn)),
            row.ns(Style::Callback) / row.ns(Style::AsyncFn),
            row.ns(Style::Combinator) / row.ns(Style::AsyncFn),
            row.ns(Style::TokioAsyncFn) / row.ns(Style::AsyncFn),
            started.elapsed().as_secs_f64(),
        );
        if tty {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }
    if tty {
        eprintln!();
    }

    let machine = machine();
    let table = markdown(&rows, &machine);
    println!("{table}");
    eprintln!("{total} points in {:.0} s", started.elapsed().as_secs_f64());
    if let Some(p) = &opts.markdown {
        write_file(p, &table);
    }
    if let Some(p) = &opts.json {
        write_file(p, &json(&rows, &machine));
    }
    if let Some(p) = &opts.svg {
        write_file(
            p,
            &svg(&rows, &machine, *worker_counts.last().expect("workers")),
        );
    }
}

fn write_file(path: &str, contents: &str) {
    let res = std::fs::File::create(path).and_then(|mut f| f.write_all(contents.as_bytes()));
    if let Err(e) = res {
        eprintln!("cannot write {path}: {e}");
        std::process::exit(1);
    }
    eprintln!("wrote {path}");
}

fn markdown(rows: &[Row], machine: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Machine: {machine}. Time per op (median); ratio = style / async_fn on weft (below 1: faster than async_fn).\n"
    );
    let _ = writeln!(
        s,
        "| pattern | kind | in flight | workers | callback | combinator | async_fn | tokio async_fn | callback/async_fn | combinator/async_fn | tokio/async_fn |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let af = r.ns(Style::AsyncFn);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            r.case.id(),
            kind_label(r),
            r.inflight,
            r.workers,
            fmt_ns(r.ns(Style::Callback)),
            fmt_ns(r.ns(Style::Combinator)),
            fmt_ns(af),
            fmt_ns(r.ns(Style::TokioAsyncFn)),
            r.ns(Style::Callback) / af,
            r.ns(Style::Combinator) / af,
            r.ns(Style::TokioAsyncFn) / af,
        );
    }
    s
}

/// The JSON document: the machine and one entry per (row, style).
#[derive(serde::Serialize)]
struct JsonOut<'a> {
    machine: &'a str,
    rows: Vec<JsonRow>,
}

/// One style of one row. A statistic of an empty sample is `null`, never `NaN` (which is
/// not JSON).
#[derive(serde::Serialize)]
struct JsonRow {
    pattern: &'static str,
    kind: String,
    inflight: usize,
    workers: usize,
    style: &'static str,
    ns_per_op: Option<f64>,
    ops_per_sec: Option<f64>,
    ratio_to_async_fn: Option<f64>,
    min_ns_per_op: Option<f64>,
    max_ns_per_op: Option<f64>,
    reps: usize,
}

/// A finite value, else `None`.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn json_row(r: &Row, style: Style) -> JsonRow {
    let v = &r.samples[style_index(style)];
    let ns = median(v);
    let af = median(&r.samples[style_index(Style::AsyncFn)]);
    JsonRow {
        pattern: r.case.id(),
        kind: kind_label(r),
        inflight: r.inflight,
        workers: r.workers,
        style: style.name(),
        ns_per_op: ns,
        ops_per_sec: ns.and_then(|ns| finite(1e9 / ns)),
        ratio_to_async_fn: ns.zip(af).and_then(|(ns, af)| finite(ns / af)),
        min_ns_per_op: v.iter().copied().reduce(f64::min),
        max_ns_per_op: v.iter().copied().reduce(f64::max),
        reps: v.len(),
    }
}

fn json(rows: &[Row], machine: &str) -> String {
    let out = JsonOut {
        machine,
        rows: rows
            .iter()
            .flat_map(|r| Style::ALL.map(|style| json_row(r, style)))
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&out).expect("the comparison serialises");
    s.push('\n');
    s
}

/// A horizontal bar chart of each style's ratio to `async_fn` (log scale), one group of
/// bars per pattern and kind, at 64 in flight on `workers` workers.
fn svg(rows: &[Row], machine: &str, workers: usize) -> String {
    let picked: Vec<&Row> = rows
        .iter()
        .filter(|r| r.inflight == 64 && (r.workers == workers || r.case.one_worker_only()))
        .collect();
    let colours = ["#d95f02", "#7570b3", "#1b9e77", "#888888"];
    let bar = 7.0;
    let group_h = bar * 4.0 + 8.0;
    let left = 190.0;
    let width = 760.0;
    let plot_w = width - left - 30.0;
    let top = 70.0;
    let height = top + group_h * picked.len() as f64 + 40.0;
    // Log2 scale from 1/8x to 8x.
    let x_of = |ratio: f64| {
        let l = ratio.clamp(0.125, 8.0).log2();
        left + (l + 3.0) / 6.0 * plot_w
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14">Time per op relative to async_fn on weft (64 in flight, {workers} workers; log scale, left is faster)</text>"#
    );
    let _ = writeln!(
        s,
        r##"<text x="10" y="34" fill="#555">{}</text>"##,
        xml(machine)
    );
    for (i, (style, colour)) in Style::ALL.iter().zip(colours).enumerate() {
        let x = 10.0 + i as f64 * 150.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="44" width="10" height="10" fill="{colour}"/><text x="{}" y="53">{}</text>"#,
            x + 14.0,
            style.name()
        );
    }
    for tick in [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0] {
        let x = x_of(tick);
        let stroke = if tick == 1.0 { "#000" } else { "#ddd" };
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="{stroke}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{tick}x</text>"#,
            height - 30.0,
            height - 16.0
        );
    }
    for (g, r) in picked.iter().enumerate() {
        let y0 = top + g as f64 * group_h;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}/{}</text>"#,
            left - 6.0,
            y0 + group_h / 2.0,
            r.case.id(),
            kind_label(r)
        );
        let af = r.ns(Style::AsyncFn);
        for (i, style) in Style::ALL.iter().enumerate() {
            let ratio = r.ns(*style) / af;
            let (x1, x2) = (x_of(1.0), x_of(ratio));
            let (x, w) = if x2 < x1 {
                (x2, x1 - x2)
            } else {
                (x1, x2 - x1)
            };
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bar}" fill="{}"><title>{} {}/{}: {} ({ratio:.2}x)</title></rect>"#,
                y0 + i as f64 * bar,
                w.max(1.0),
                colours[i],
                style.name(),
                r.case.id(),
                kind_label(r),
                fmt_ns(r.ns(*style))
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_sample_writes_null_not_nan() {
        let case = weft_patterns::case("single").expect("the single case");
        let mut row = Row {
            case,
            kind: Kind::Ready,
            inflight: 1,
            workers: 1,
            samples: Default::default(),
        };
        // async_fn measured, callback not: its statistics and the others' ratios.
        row.samples[style_index(Style::AsyncFn)] = vec![100.0, 300.0, 200.0];
        let text = json(&[row], "test machine");
        assert!(
            !text.contains("NaN") && !text.contains("Infinity"),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let rows = v["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 4);
        let cb = &rows[style_index(Style::Callback)];
        assert_eq!(cb["style"], "callback");
        assert!(cb["ns_per_op"].is_null() && cb["ratio_to_async_fn"].is_null());
        assert!(cb["min_ns_per_op"].is_null() && cb["max_ns_per_op"].is_null());
        assert_eq!(cb["reps"], 0);
        let af = &rows[style_index(Style::AsyncFn)];
        assert_eq!(af["ns_per_op"], 200.0);
        assert_eq!(af["min_ns_per_op"], 100.0);
        assert_eq!(af["max_ns_per_op"], 300.0);
        assert_eq!(af["ratio_to_async_fn"], 1.0);
        assert_eq!(v["machine"], "test machine");
    }
}
