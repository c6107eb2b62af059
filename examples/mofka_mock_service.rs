//! Runs the Rust mock of a Mofka service (Bedrock + Yokan master database + memory partitions)
//! until SIGINT or SIGTERM, for trying the `mofka` driver, `diaspora-ctl` and the benchmark
//! programs on a machine with Mercury but no Mofka deployment.
//!
//! ```text
//! cargo run --release --features mofka --example mofka_mock_service -- \
//!     [--transport na+sm|ofi+tcp://127.0.0.1] [--wire-version 0.9|0.8] [--dir DIR]
//! ```
//!
//! It prints the path of the group file to give the driver (`{"group_file": "..."}`), written
//! into DIR (default: the current directory), then serves.

use diaspora_stream::drivers::mofka::{mock::MockService, wire::WireVersion};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn main() {
    let mut transport = "na+sm".to_string();
    let mut version = WireVersion::CURRENT;
    let mut dir = std::path::PathBuf::from(".");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next().unwrap_or_else(|| {
                eprintln!("{a} needs a value");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--transport" => transport = value(),
            "--wire-version" => {
                version = value().parse().unwrap_or_else(|e| {
                    eprintln!("{e}");
                    std::process::exit(2)
                })
            }
            "--dir" => dir = value().into(),
            "-h" | "--help" => {
                println!(
                    "mofka_mock_service [--transport na+sm|ofi+tcp://127.0.0.1] \
                     [--wire-version 0.9|0.8] [--dir DIR]"
                );
                return;
            }
            other => {
                eprintln!("unknown argument {other:?} (try --help)");
                std::process::exit(2)
            }
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Linking Mercury loads Debian's libfabric and, through it, the PSM library, whose
        // constructor installs a handler that exits with status 1; signal-hook would call it
        // after ours. Back to the default first (as diaspora-ctl does).
        // SAFETY: sets the disposition of a signal this program handles itself, before its
        // handler exists.
        if unsafe { libc::signal(sig, libc::SIG_DFL) } == libc::SIG_ERR {
            eprintln!("cannot reset the handler of signal {sig}");
            std::process::exit(1);
        }
        signal_hook::flag::register(sig, stop.clone()).expect("signal handler");
    }
    let service = MockService::start(&transport, version, &dir).unwrap_or_else(|e| {
        eprintln!("cannot start the mock service: {e}");
        std::process::exit(1)
    });
    println!("{}", service.group_file().display());
    eprintln!(
        "mofka mock service (wire {version}) at {}; stop with SIGINT or SIGTERM",
        service.address()
    );
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(service);
}
