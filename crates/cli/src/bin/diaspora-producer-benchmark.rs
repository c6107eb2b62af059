//! `diaspora-producer-benchmark`: measures how fast events can be pushed to a topic.
//!
//! Same options and report as the C++ reference's benchmark. Built with the `mpi` feature it
//! runs under `mpirun`/`srun`: every rank pushes `--num-events` events, the timed section sits
//! between two barriers, and the report (rank 0) gives totals over all ranks.

use clap::Parser;
use diaspora_stream::{BatchSize, DataView};
use serde_json::Value;
use std::io::IsTerminal;
use std::time::Instant;

#[path = "bench_support/mod.rs"]
mod bench_support;
use bench_support::{Ranks, TopicArgs};

/// Pushes events to an existing topic and reports throughput.
#[derive(Parser, Debug)]
#[command(name = "diaspora-producer-benchmark", version)]
struct Args {
    #[command(flatten)]
    target: TopicArgs,
    /// Events pushed by each rank.
    #[arg(short = 'n', long, default_value_t = 1000)]
    num_events: u64,
    /// Bytes of data per event.
    #[arg(short = 's', long, default_value_t = 0, value_parser = size_bytes)]
    data_size: usize,
    /// Bytes of JSON metadata per event (a string of that length including quotes; 0 and 1 give
    /// the 1-byte document `0`).
    #[arg(short = 'm', long, default_value_t = 0, value_parser = size_bytes)]
    metadata_size: usize,
    /// Events per batch.
    #[arg(short = 'b', long, default_value_t = 1)]
    batch_size: usize,
    /// Flush every this many events (0: only at the end).
    #[arg(short = 'f', long, default_value_t = 1000)]
    flush_interval: u64,
    /// After the timed section, declare the end of the stream (every rank, collectively), so
    /// that consumers stop once they have read everything.
    #[arg(long)]
    end_of_stream: bool,
    /// Each rank pushes to its own partition (rank modulo the partition count) instead of
    /// spreading its events over all of them with the topic's selector.
    #[arg(long)]
    own_partition: bool,
}

/// Parses a size in bytes, at most 1 GiB (a bigger one would not fit a benchmark's memory).
fn size_bytes(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if v <= 1 << 30 => Ok(v),
        _ => Err(format!("{s:?} is not a size from 0 to 1073741824 bytes")),
    }
}

fn metadata_of_size(m: usize, seed: u64) -> Value {
    if m < 2 {
        return Value::from(0);
    }
    // m - 2 characters between the quotes, varied per event.
    let s: String = (0..m - 2)
        .map(|i| {
            let x = (seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add((i as u64).wrapping_mul(1442695040888963407)))
                >> 58;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    Value::String(s)
}

fn main() {
    let args = Args::parse();
    let ranks = Ranks::init();
    let code = match run(&args, &ranks) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    ranks.finish(code);
}

fn run(args: &Args, ranks: &Ranks) -> Result<(), String> {
    if args.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    let (driver, topic) = args.target.open()?;
    let pool = args.target.thread_pool(&driver)?;
    let producer = topic
        .producer()
        .name("benchmark-producer")
        .thread_pool(pool)
        .batch_size(BatchSize::Fixed(args.batch_size))
        .build()
        .map_err(|e| e.to_string())?;
    let n = args.num_events;
    // One buffer; event i shares bytes [i*s, (i+1)*s) of it (wrapping within 64 MiB).
    let span = (args.data_size.max(1) * n.min(1 << 16) as usize)
        .min(64 << 20)
        .max(args.data_size);
    let data = bytes::Bytes::from((0..span).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>());
    let slots = (span / args.data_size.max(1)).max(1);
    let metadata: Vec<Value> = (0..64)
        .map(|i| metadata_of_size(args.metadata_size, i))
        .collect();
    if ranks.rank == 0 {
        println!("--- Benchmark Options ---");
        args.target.print();
        println!("Number of events: {n}");
        println!("Data size: {}", args.data_size);
        println!("Metadata size: {}", args.metadata_size);
        println!("Batch size: {}", args.batch_size);
        println!("Number of threads: {}", args.target.num_threads);
        println!("Flush interval: {}", args.flush_interval);
        println!("Number of processes: {}", ranks.size);
    }
    let bar =
        (ranks.rank == 0 && std::io::stderr().is_terminal()).then(|| bench_support::progress(n));
    ranks.barrier();
    let start = Instant::now();
    let mut first_error = None;
    let mut pending = Vec::new();
    for i in 0..n {
        let at = (i as usize % slots) * args.data_size;
        let view = DataView::from(data.slice(at..at + args.data_size));
        let md = metadata[i as usize % metadata.len()].clone();
        pending.push(if args.own_partition {
            producer.push_to(md, view, ranks.rank)
        } else {
            producer.push(md, view)
        });
        if args.flush_interval > 0 && (i + 1) % args.flush_interval == 0 {
            if let Err(e) = producer.flush().wait() {
                first_error.get_or_insert(e.to_string());
            }
            for f in pending.drain(..) {
                if let Err(e) = f.wait() {
                    first_error.get_or_insert(e.to_string());
                }
            }
            if let Some(b) = &bar {
                b.set_position(i + 1);
            }
        }
    }
    if let Err(e) = producer.flush().wait() {
        first_error.get_or_insert(e.to_string());
    }
    for f in pending.drain(..) {
        if let Err(e) = f.wait() {
            first_error.get_or_insert(e.to_string());
        }
    }
    let local_time = start.elapsed().as_secs_f64();
    ranks.barrier();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let elapsed = ranks.max_f64(local_time);
    let failed = ranks.sum_u64(first_error.is_some() as u64);
    if let Some(e) = first_error {
        eprintln!("error on rank {}: {e}", ranks.rank);
    }
    if failed > 0 {
        return Err(format!("pushes failed on {failed} rank(s)"));
    }
    if args.end_of_stream {
        ranks.end_of_stream(&producer)?;
    }
    let total = ranks.sum_u64(n);
    if ranks.rank == 0 {
        let md_bytes = serde_json::to_string(&metadata[0])
            .map(|s| s.len())
            .unwrap_or(0);
        println!();
        println!("--- Benchmark Results ---");
        println!("Total time: {elapsed:.6} s");
        println!("Total events: {total}");
        println!("Throughput: {:.1} events/s", total as f64 / elapsed);
        println!(
            "Bandwidth: {:.3} MB/s",
            (args.data_size + md_bytes) as f64 * total as f64 / (1u64 << 20) as f64 / elapsed
        );
    }
    Ok(())
}
