//! RPC rate and bulk bandwidth through the safe Mercury layer, next to Mercury's own perf tools
//! (`hg_rate`, `hg_bw_write`, `hg_bw_read`) run in the same run with the same parameters, as
//! ratios.
//!
//! ```text
//! cargo bench --features mercury --bench mercury_rpc -- [--transport na+sm] [--rpcs 20000]
//!     [--in-flight 1,16] [--bulk-size 1048576] [--bulk-loops 2000] [--only CASE,..]
//! ```
//!
//! `--only` runs only the cases named (`rpc`, `rpc-pool`, `bulk-write`, `bulk-read`,
//! `bulk-write-pool`, `bulk-read-pool`), and Mercury's tool for each (for profiling one case).
//!
//! The server is this same program, started again with `DIASPORA_HG_BENCH_SERVER` set. Mercury's
//! tools are looked for in `$MERCURY_PERF_DIR`, `$MERCURY_PERF_BIN`, then next to the library
//! pkg-config reports (`<prefix>/bin`), then on `PATH`; without them only this layer's figures
//! are printed.
//!
//! Both sides are measured the same way. Rate: an 8-byte request and an empty response; with N
//! in flight, N requests are sent and all N awaited, `--rpcs` times over (what `hg_rate -x N`
//! does). The server answers in the handler Mercury calls, as `hg_perf_server` does (this layer's
//! inline handlers); a second figure has the server answer from its handler pool instead.
//! Bandwidth: the client exposes `TRANSFERS_PER_RPC` buffers end to end, and each RPC makes the
//! server pull (`hg_bw_write`, "bulk-write") or push (`hg_bw_read`, "bulk-read") each of them,
//! all transfers in flight at once; bandwidth is bytes moved over the client's wall time. As in
//! `hg_perf_server`, an inline handler starts the transfers and the last one's completion
//! answers (`Engine::transfer_then`); a second figure ("-pool") has a pool handler start them,
//! wait for them all and answer. Polling, the same on both sides: a process spins after
//! activity and blocks once idle for a second. Mercury's tools without `-b` keep spinning for a
//! second after each wake-up; this layer's spin-down (`EngineOptions::progress_spindown`,
//! 100 µs by default) is set to the same second, in the client and the server, unless
//! `--spindown-us` says otherwise. (With the default 100 µs, a receiver over ofi+tcp that gets
//! no completion for a while goes back to sleep between pieces of a push.)
//!
//! The last lines, one per comparison, read
//! `ratio <rpc|rpc-pool|bulk-read|bulk-write|bulk-read-pool|bulk-write-pool> <transport>
//! <in-flight> <value>` for scripts.

use diaspora_stream::mercury::{
    margo_rpc_id, BulkAccess, BulkOp, Engine, EngineOptions, LocalBulk, RemoteBulk, RemoteRegion,
    Request,
};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SERVER_ENV: &str = "DIASPORA_HG_BENCH_SERVER";
const TRANSFERS_PER_RPC: usize = 64;

struct Options {
    transport: String,
    rpcs: usize,
    in_flight: Vec<usize>,
    bulk_size: usize,
    bulk_loops: usize,
    /// The cases to run (`--only`); empty: all.
    only: Vec<String>,
    /// This layer's spin-down, client and server (`--spindown-us`).
    spindown: Duration,
}

impl Options {
    /// Whether case `what` (`rpc`, `rpc-pool`, `bulk-write`, ..., or a Mercury tool's case
    /// `bulk-write`, `bulk-read`, `rpc`) runs: every case without `--only`; otherwise the cases
    /// named, and Mercury's tool for a named case or its `-pool` variant.
    fn runs(&self, what: &str) -> bool {
        self.only.is_empty()
            || self
                .only
                .iter()
                .any(|c| c == what || c.strip_suffix("-pool") == Some(what))
    }
}

fn parse_args() -> Options {
    let mut o = Options {
        transport: "na+sm".into(),
        rpcs: 20_000,
        in_flight: vec![1, 16],
        bulk_size: 1 << 20,
        bulk_loops: 2_000,
        only: Vec::new(),
        spindown: Duration::from_secs(1),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match a.as_str() {
            "--transport" => o.transport = value("--transport"),
            "--rpcs" => o.rpcs = value("--rpcs").parse().expect("--rpcs: a number"),
            "--in-flight" => {
                o.in_flight = value("--in-flight")
                    .split(',')
                    .map(|n| n.trim().parse().expect("--in-flight: numbers, e.g. 1,16"))
                    .collect()
            }
            "--bulk-size" => o.bulk_size = value("--bulk-size").parse().expect("a number"),
            "--bulk-loops" => o.bulk_loops = value("--bulk-loops").parse().expect("a number"),
            "--only" => {
                o.only = value("--only")
                    .split(',')
                    .map(|c| c.trim().to_string())
                    .collect()
            }
            "--spindown-us" => {
                o.spindown = Duration::from_micros(
                    value("--spindown-us")
                        .parse()
                        .expect("--spindown-us: a number"),
                )
            }
            "--bench" => {}
            "-h" | "--help" => {
                println!(
                    "mercury_rpc [--transport na+sm|ofi+tcp] [--rpcs N] [--in-flight N,M,..] \
                     [--bulk-size BYTES] [--bulk-loops N] [--only CASE,..]\n\
                     [--spindown-us 1000000]\n\
                     cases: rpc, rpc-pool, bulk-write, bulk-read, bulk-write-pool, bulk-read-pool"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?} (try --help)"),
        }
    }
    o
}

fn rate_id() -> u64 {
    margo_rpc_id("diaspora_bench_rate", 1)
}
fn rate_pool_id() -> u64 {
    margo_rpc_id("diaspora_bench_rate_pool", 1)
}
/// The bulk RPC doing `op`, answered by an inline handler (`inline`) or from the handler pool.
fn bulk_id(op: BulkOp, inline: bool) -> u64 {
    let name = match (op, inline) {
        (BulkOp::Pull, true) => "diaspora_bench_bulk_write",
        (BulkOp::Push, true) => "diaspora_bench_bulk_read",
        (BulkOp::Pull, false) => "diaspora_bench_bulk_write_pool",
        (BulkOp::Push, false) => "diaspora_bench_bulk_read_pool",
    };
    margo_rpc_id(name, 1)
}
fn stop_id() -> u64 {
    margo_rpc_id("diaspora_bench_stop", 1)
}

fn serve(transport: &str) {
    let listen = if transport.starts_with("ofi+tcp") && !transport.contains("://") {
        format!("{transport}://127.0.0.1")
    } else {
        transport.to_string()
    };
    let engine = Engine::new(
        &listen,
        EngineOptions {
            listen: true,
            handler_threads: 1,
            ..Default::default()
        },
    )
    .expect("server engine");
    // As hg_perf_server: the response is sent from the handler Mercury calls.
    engine
        .register_inline(rate_id(), |req: Request| drop(req.respond(&[])))
        .unwrap();
    engine
        .register(rate_pool_id(), |req: Request| drop(req.respond(&[])))
        .unwrap();
    for op in [BulkOp::Pull, BulkOp::Push] {
        register_bulk_inline(&engine, op);
        register_bulk(&engine, op);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    engine
        .register(stop_id(), move |req: Request| {
            req.respond(&[]).wait().expect("respond");
            let _ = tx.lock().unwrap().send(());
        })
        .unwrap();
    println!("ADDRESS {}", engine.self_address().unwrap());
    let _ = rx.recv();
}

/// Server buffers, reused from RPC to RPC as Mercury's tools reuse their own: one per
/// transfer of `n` bytes (the client exposes one buffer per transfer, end to end, as Mercury's
/// tools do), taken from `cache` and made up to `TRANSFERS_PER_RPC` when missing.
fn server_buffers(
    engine: &Engine,
    cache: &Mutex<Vec<LocalBulk>>,
    op: BulkOp,
    n: usize,
) -> Vec<LocalBulk> {
    let access = match op {
        BulkOp::Pull => BulkAccess::WriteOnly,
        BulkOp::Push => BulkAccess::ReadOnly,
    };
    let mut locals: Vec<LocalBulk> = std::mem::take(&mut *cache.lock().unwrap());
    locals.retain(|l| l.size() == n);
    while locals.len() < TRANSFERS_PER_RPC {
        locals.push(LocalBulk::from_vec(engine, vec![0x5a; n], access).unwrap());
    }
    locals
}

/// The server side of a bulk RPC as `hg_perf_server` serves it: `TRANSFERS_PER_RPC` transfers
/// of the client's whole buffer (`op` Pull: into server buffers; Push: from them), started by
/// an inline handler on the progress thread; the last one to complete answers the RPC.
fn register_bulk_inline(engine: &Engine, op: BulkOp) {
    let cache: Arc<Mutex<Vec<LocalBulk>>> = Arc::default();
    engine
        .register_inline(bulk_id(op, true), move |req: Request| {
            let engine = req.engine().clone();
            let remote = RemoteBulk::deserialize(&engine, req.input()).expect("bulk handle");
            let origin = req.source().expect("source");
            let n = remote.size() / TRANSFERS_PER_RPC;
            let locals = server_buffers(&engine, &cache, op, n);
            // The buffers back from completed transfers, and the request to answer.
            let done = Arc::new(Mutex::new((
                Vec::with_capacity(TRANSFERS_PER_RPC),
                Some(req),
            )));
            for (i, l) in locals.into_iter().enumerate() {
                let region = RemoteRegion::new(&origin, &remote, i * n);
                let (done, cache) = (done.clone(), cache.clone());
                engine.transfer_then(op, region, l, 0, n, move |local| {
                    let mut d = done.lock().unwrap();
                    d.0.push(local.expect("transfer"));
                    if d.0.len() == TRANSFERS_PER_RPC {
                        *cache.lock().unwrap() = std::mem::take(&mut d.0);
                        if let Some(req) = d.1.take() {
                            drop(req.respond(&[]));
                        }
                    }
                });
            }
        })
        .unwrap();
}

/// The server side of a bulk RPC from the handler pool: the same transfers, started by a
/// handler that then waits for them all and answers.
fn register_bulk(engine: &Engine, op: BulkOp) {
    let cache: Mutex<Vec<LocalBulk>> = Mutex::new(Vec::new());
    engine
        .register(bulk_id(op, false), move |req: Request| {
            let engine = req.engine().clone();
            let remote = RemoteBulk::deserialize(&engine, req.input()).expect("bulk handle");
            let origin = req.source().expect("source");
            let n = remote.size() / TRANSFERS_PER_RPC;
            let locals = server_buffers(&engine, &cache, op, n);
            // Every transfer is started before any is waited for: several are in flight.
            let transfers: Vec<_> = locals
                .into_iter()
                .enumerate()
                .map(|(i, l)| {
                    let region = RemoteRegion::new(&origin, &remote, i * n);
                    engine.transfer(op, region, l, 0, n)
                })
                .collect();
            let locals: Vec<LocalBulk> = transfers
                .into_iter()
                .map(|t| t.wait().expect("pull"))
                .collect();
            *cache.lock().unwrap() = locals;
            req.respond(&[]).wait().expect("respond");
        })
        .unwrap();
}

fn start_server(transport: &str, spindown: Duration) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(SERVER_ENV, transport)
        .env(
            "DIASPORA_MERCURY_SPINDOWN_US",
            spindown.as_micros().to_string(),
        )
        .env("FI_TCP_IFACE", "lo")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("ADDRESS ") => break l[8..].to_string(),
            Some(Ok(_)) => continue,
            _ => {
                let _ = child.kill();
                panic!("the server exited before printing its address");
            }
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

/// `(rpcs per second, microseconds per round of `in_flight` RPCs)` through the layer: `n`
/// rounds of `in_flight` requests sent at once and then awaited.
fn measure_rate(
    engine: &Engine,
    target: &diaspora_stream::mercury::Address,
    id: u64,
    n: usize,
    in_flight: usize,
) -> (f64, f64) {
    let round = || {
        let futures: Vec<_> = (0..in_flight)
            .map(|_| engine.forward(target, id, &[0; 8]))
            .collect();
        for f in futures {
            f.wait().unwrap();
        }
    };
    for _ in 0..n / 10 + 1 {
        round();
    }
    let start = Instant::now();
    for _ in 0..n {
        round();
    }
    let secs = start.elapsed().as_secs_f64();
    ((n * in_flight) as f64 / secs, secs * 1e6 / n as f64)
}

/// MiB/s moved by the server pulling (`BulkOp::Pull`) or pushing the client's buffer.
fn measure_bandwidth(
    engine: &Engine,
    target: &diaspora_stream::mercury::Address,
    id: u64,
    op: BulkOp,
    size: usize,
    loops: usize,
) -> f64 {
    // One buffer per transfer of an RPC, end to end, as Mercury's tools expose theirs.
    let total = size * TRANSFERS_PER_RPC;
    let bulk = match op {
        BulkOp::Pull => {
            LocalBulk::expose(engine, vec![bytes::Bytes::from(vec![0xabu8; total])]).unwrap()
        }
        BulkOp::Push => LocalBulk::from_vec(engine, vec![0; total], BulkAccess::WriteOnly).unwrap(),
    };
    let handle = bulk.serialize().unwrap();
    engine.forward(target, id, &handle).wait().unwrap();
    let start = Instant::now();
    for _ in 0..loops {
        engine.forward(target, id, &handle).wait().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    (loops * TRANSFERS_PER_RPC * size) as f64 / secs / (1 << 20) as f64
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs = Vec::new();
    for var in ["MERCURY_PERF_DIR", "MERCURY_PERF_BIN"] {
        if let Ok(d) = std::env::var(var) {
            dirs.push(PathBuf::from(d));
        }
    }
    if let Ok(out) = Command::new("pkg-config")
        .args(["--variable=prefix", "mercury"])
        .output()
    {
        let prefix = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !prefix.is_empty() {
            dirs.push(Path::new(&prefix).join("bin"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Runs Mercury's `hg_perf_server` and one client tool; returns the client's table rows.
fn run_mercury_tool(tool: &str, transport: &str, args: &[String]) -> Option<Vec<Vec<f64>>> {
    let server = find_tool("hg_perf_server")?;
    let client = find_tool(tool)?;
    let (class, protocol) = transport.split_once('+')?;
    let dir = tempfile::tempdir().ok()?;
    let mut common = vec![
        "-c".to_string(),
        class.to_string(),
        "-p".to_string(),
        protocol.to_string(),
    ];
    if class == "ofi" {
        common.extend(["-H".to_string(), "127.0.0.1".to_string()]);
    }
    let mut srv = Command::new(&server)
        .args(&common)
        .current_dir(dir.path())
        .env("FI_TCP_IFACE", "lo")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dir.path().join("port.cfg").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let out = Command::new(&client)
        .args(&common)
        .args(args)
        .current_dir(dir.path())
        .env("FI_TCP_IFACE", "lo")
        .output();
    // The client shuts the server down when it is done; make sure of it.
    for _ in 0..50 {
        if let Ok(Some(_)) = srv.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = srv.kill();
    let _ = srv.wait();
    let out = out.ok()?;
    let rows: Vec<Vec<f64>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect::<Vec<f64>>()
        })
        .filter(|r| r.len() >= 3)
        .collect();
    (!rows.is_empty()).then_some(rows)
}

fn main() {
    if let Ok(transport) = std::env::var(SERVER_ENV) {
        serve(&transport);
        return;
    }
    let o = parse_args();
    if !diaspora_stream::mercury::supports(&o.transport) {
        println!("skipped: this Mercury has no {} plugin", o.transport);
        return;
    }
    println!(
        "transport {} | {} rounds of {:?} RPCs in flight, {} x {} B bulk transfers ({} per RPC) \
         | polling: this layer spins {} us after activity, Mercury's tools 1 s after a wake-up",
        o.transport,
        o.rpcs,
        o.in_flight,
        o.bulk_loops * TRANSFERS_PER_RPC,
        o.bulk_size,
        TRANSFERS_PER_RPC,
        o.spindown.as_micros()
    );
    let (mut child, address) = start_server(&o.transport, o.spindown);
    let engine = Engine::new(
        &o.transport,
        EngineOptions {
            progress_spindown: o.spindown,
            ..Default::default()
        },
    )
    .expect("client engine");
    let target = engine.lookup(&address).expect("lookup");
    let mut ours = Vec::new();
    for &n in &o.in_flight {
        for (what, id) in [("rpc", rate_id()), ("rpc-pool", rate_pool_id())] {
            if !o.runs(what) {
                continue;
            }
            let (rate, us) = measure_rate(&engine, &target, id, o.rpcs, n);
            println!(
                "layer   {what:<10} {n:>3} in flight: {rate:>10.0} RPC/s ({us:.2} us per round)"
            );
            ours.push((what, n, rate));
        }
    }
    for (what, op, inline) in [
        ("bulk-write", BulkOp::Pull, true),
        ("bulk-read", BulkOp::Push, true),
        ("bulk-write-pool", BulkOp::Pull, false),
        ("bulk-read-pool", BulkOp::Push, false),
    ] {
        if !o.runs(what) {
            continue;
        }
        let id = bulk_id(op, inline);
        let bw = measure_bandwidth(&engine, &target, id, op, o.bulk_size, o.bulk_loops);
        println!("layer   {what:<15} 1 in flight: {bw:>10.1} MiB/s");
        ours.push((what, 1, bw));
    }
    engine.forward(&target, stop_id(), &[]).wait().unwrap();
    let _ = child.wait();
    drop(target);
    drop(engine);

    let mut ratios = Vec::new();
    for &n in &o.in_flight {
        if !o.runs("rpc") {
            break;
        }
        let args = [
            "-l",
            &o.rpcs.to_string(),
            "-y",
            "8",
            "-z",
            "8",
            "-x",
            &n.to_string(),
        ]
        .map(String::from);
        let Some(rows) = run_mercury_tool("hg_rate", &o.transport, &args) else {
            println!("Mercury's hg_rate not found (set MERCURY_PERF_DIR): no ratio");
            break;
        };
        let (rate, us) = (rows[0][1], rows[0][2]);
        println!("Mercury hg_rate    {n:>3} in flight: {rate:>10.0} RPC/s ({us:.2} us)");
        for (what, m, r) in &ours {
            if *m == n && what.starts_with("rpc") {
                ratios.push((what.to_string(), n, r / rate));
            }
        }
    }
    for (what, tool) in [("bulk-write", "hg_bw_write"), ("bulk-read", "hg_bw_read")] {
        if !o.runs(what) {
            continue;
        }
        let size = o.bulk_size.to_string();
        let args = ["-l", &o.bulk_loops.to_string(), "-y", &size, "-z", &size].map(String::from);
        let Some(rows) = run_mercury_tool(tool, &o.transport, &args) else {
            println!("Mercury's {tool} not found (set MERCURY_PERF_DIR): no ratio");
            continue;
        };
        let bw = rows[0][1];
        println!("Mercury {tool:<11}  1 in flight: {bw:>10.1} MiB/s");
        for (w, _, r) in &ours {
            if w.strip_suffix("-pool").unwrap_or(w) == what {
                ratios.push((w.to_string(), 1, r / bw));
            }
        }
    }
    for (what, n, ratio) in ratios {
        println!("ratio {what} {} {n} {ratio:.2}", o.transport);
    }
}
