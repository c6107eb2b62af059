//! RPC round-trip latency and bulk bandwidth through the safe Mercury layer, next to Mercury's
//! own `hg_rate` and `hg_bw_write` on the same transport and machine, as ratios.
//!
//! ```text
//! cargo bench --features mercury --bench mercury_rpc -- [--transport na+sm] [--rpcs 20000]
//!     [--bulk-size 1048576] [--bulk-loops 2000]
//! ```
//!
//! The server is this same program, started again with `DIASPORA_HG_BENCH_SERVER` set. Mercury's
//! tools are looked for in `$MERCURY_PERF_BIN`, then next to the library pkg-config reports
//! (`<prefix>/bin`), then on `PATH`; without them only this layer's figures are printed.
//!
//! The two sides are measured the same way: one RPC in flight at a time, a small payload, for
//! the rate; for the bandwidth, each RPC makes the server pull the client's buffer
//! `TRANSFERS_PER_RPC` times (what `hg_bw_write` does with its default of 64 transfers per
//! handle), and bandwidth is bytes moved over the client's wall time.

use diaspora_stream::mercury::{
    margo_rpc_id, BulkAccess, BulkOp, Engine, EngineOptions, LocalBulk, RemoteBulk, RemoteRegion,
    Request,
};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER_ENV: &str = "DIASPORA_HG_BENCH_SERVER";
const TRANSFERS_PER_RPC: usize = 64;

struct Options {
    transport: String,
    rpcs: usize,
    bulk_size: usize,
    bulk_loops: usize,
}

fn parse_args() -> Options {
    let mut o = Options {
        transport: "na+sm".into(),
        rpcs: 20_000,
        bulk_size: 1 << 20,
        bulk_loops: 2_000,
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
            "--bulk-size" => o.bulk_size = value("--bulk-size").parse().expect("a number"),
            "--bulk-loops" => o.bulk_loops = value("--bulk-loops").parse().expect("a number"),
            "--bench" => {}
            "-h" | "--help" => {
                println!(
                    "mercury_rpc [--transport na+sm|ofi+tcp] [--rpcs N] [--bulk-size BYTES] \
                     [--bulk-loops N]"
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
fn bulk_id() -> u64 {
    margo_rpc_id("diaspora_bench_bulk", 1)
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
    engine
        .register(rate_id(), |req: Request| {
            // Completion is reported by the progress thread; nothing to wait for here.
            drop(req.respond(&[]));
        })
        .unwrap();
    // Pulled-into buffers are reused from RPC to RPC, as hg_bw_write reuses its own.
    let cache: std::sync::Mutex<Vec<LocalBulk>> = std::sync::Mutex::new(Vec::new());
    engine
        .register(bulk_id(), move |req: Request| {
            let engine = req.engine().clone();
            let remote = RemoteBulk::deserialize(&engine, req.input()).expect("bulk handle");
            let origin = req.source().expect("source");
            let n = remote.size();
            let mut locals: Vec<LocalBulk> = std::mem::take(&mut *cache.lock().unwrap());
            locals.retain(|l| l.size() == n);
            while locals.len() < TRANSFERS_PER_RPC {
                locals
                    .push(LocalBulk::from_vec(&engine, vec![0; n], BulkAccess::WriteOnly).unwrap());
            }
            // Every transfer is started before any is waited for: several are in flight.
            let transfers: Vec<_> = locals
                .into_iter()
                .map(|l| {
                    engine.transfer(
                        BulkOp::Pull,
                        RemoteRegion::new(&origin, &remote, 0),
                        l,
                        0,
                        n,
                    )
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

fn start_server(transport: &str) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(SERVER_ENV, transport)
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

/// `(rpcs per second, microseconds per round trip)` through the layer.
fn measure_rate(
    engine: &Engine,
    target: &diaspora_stream::mercury::Address,
    n: usize,
) -> (f64, f64) {
    for _ in 0..n / 10 + 1 {
        engine.forward(target, rate_id(), &[0; 8]).wait().unwrap();
    }
    let start = Instant::now();
    for _ in 0..n {
        engine.forward(target, rate_id(), &[0; 8]).wait().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    (n as f64 / secs, secs * 1e6 / n as f64)
}

/// MiB/s moved by the server pulling the client's buffer.
fn measure_bandwidth(
    engine: &Engine,
    target: &diaspora_stream::mercury::Address,
    size: usize,
    loops: usize,
) -> f64 {
    let data = vec![0xabu8; size];
    let bulk = LocalBulk::expose(engine, vec![bytes::Bytes::from(data)]).unwrap();
    let handle = bulk.serialize().unwrap();
    engine.forward(target, bulk_id(), &handle).wait().unwrap();
    let start = Instant::now();
    for _ in 0..loops {
        engine.forward(target, bulk_id(), &handle).wait().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    (loops * TRANSFERS_PER_RPC * size) as f64 / secs / (1 << 20) as f64
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(d) = std::env::var("MERCURY_PERF_BIN") {
        dirs.push(PathBuf::from(d));
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
        "transport {} | {} RPCs, {} x {} B bulk pulls ({} per RPC)",
        o.transport,
        o.rpcs,
        o.bulk_loops * TRANSFERS_PER_RPC,
        o.bulk_size,
        TRANSFERS_PER_RPC
    );
    let (mut child, address) = start_server(&o.transport);
    let engine = Engine::new(&o.transport, EngineOptions::default()).expect("client engine");
    let target = engine.lookup(&address).expect("lookup");
    let (rate, us) = measure_rate(&engine, &target, o.rpcs);
    let bw = measure_bandwidth(&engine, &target, o.bulk_size, o.bulk_loops);
    engine.forward(&target, stop_id(), &[]).wait().unwrap();
    let _ = child.wait();
    drop(target);
    drop(engine);
    println!("diaspora-stream mercury layer: {rate:>10.0} RPC/s ({us:.2} us round trip), {bw:>9.1} MiB/s bulk");

    let hg_rate = run_mercury_tool(
        "hg_rate",
        &o.transport,
        &[
            "-l".into(),
            o.rpcs.to_string(),
            "-y".into(),
            "8".into(),
            "-z".into(),
            "8".into(),
        ],
    );
    let hg_bw = run_mercury_tool(
        "hg_bw_write",
        &o.transport,
        &[
            "-l".into(),
            o.bulk_loops.to_string(),
            "-y".into(),
            o.bulk_size.to_string(),
            "-z".into(),
            o.bulk_size.to_string(),
        ],
    );
    match (&hg_rate, &hg_bw) {
        (Some(r), Some(b)) => {
            let (m_rate, m_bw) = (r[0][1], b[0][1]);
            println!(
                "Mercury's own tools:          {m_rate:>10.0} RPC/s ({:.2} us round trip), {m_bw:>9.1} MiB/s bulk",
                r[0][2]
            );
            println!(
                "ratio (layer / Mercury):      rate {:.2}, bandwidth {:.2}",
                rate / m_rate,
                bw / m_bw
            );
        }
        _ => println!("Mercury's hg_rate/hg_bw_write not found (set MERCURY_PERF_BIN): no ratio"),
    }
}
