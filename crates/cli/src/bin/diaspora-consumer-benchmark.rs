//! `diaspora-consumer-benchmark`: measures how fast events can be pulled from a topic.
//!
//! Same options and report as the C++ reference's benchmark, with the data options applied:
//! `--data-interest` is the fraction of events whose data is read at all, `--data-selectivity`
//! the fraction of each such event's bytes that is read (a leading sub-range, placed straight
//! into a buffer of the benchmark). Built with the `mpi` feature, ranks split the partitions
//! round robin and the report (rank 0) gives totals over all ranks.

use clap::Parser;
use diaspora_stream::{Allocation, DataDescriptor, Event};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

#[path = "bench_support/mod.rs"]
mod bench_support;
use bench_support::{Ranks, TopicArgs};

/// Parses a duration in seconds: above 0 and at most a year.
fn seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 365.0 * 24.0 * 3600.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds above 0 and at most one year"
        )),
    }
}

fn fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("invalid value (should be between 0 and 1)".into())
    }
}

/// Pulls events from a topic and reports throughput.
#[derive(Parser, Debug)]
#[command(name = "diaspora-consumer-benchmark", version)]
struct Args {
    #[command(flatten)]
    target: TopicArgs,
    /// Events each rank reads (it stops earlier if its partitions stay empty for
    /// `--idle-timeout` seconds or end their stream).
    #[arg(short = 'n', long, default_value_t = 1000)]
    num_events: u64,
    /// Fraction of each selected event's data that is read, in [0, 1].
    #[arg(short = 's', long, default_value_t = 1.0, value_parser = fraction)]
    data_selectivity: f64,
    /// Fraction of events whose data is read, in [0, 1].
    #[arg(short = 'i', long, default_value_t = 1.0, value_parser = fraction)]
    data_interest: f64,
    /// Consumer name (acknowledged positions are kept under it when --ack is given).
    #[arg(long, default_value = "benchmark-consumer")]
    consumer: String,
    /// Acknowledge the last event read, so that a rerun continues after it.
    #[arg(long)]
    ack: bool,
    /// Seconds without any event after which a rank stops (above 0, at most a year).
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    idle_timeout: f64,
    /// Where the data goes: `library` lets the library place it (when all of every event's
    /// data is read, no selector or allocator is installed and events share the buffers the
    /// driver read them into); `per-event` installs a selector and an allocator that gives each
    /// event a fresh zeroed vector, as the C++ benchmark program's callbacks do.
    #[arg(long, value_enum, default_value_t = Placement::Library)]
    allocator: Placement,
    /// How events are taken: `each` with one `pull()` future per event, as the C++ benchmark
    /// program does; `many` up to 256 at a time with `pull_many` (one lock, no futures).
    #[arg(long, value_enum, default_value_t = Pull::Each)]
    pull: Pull,
}

/// See `--pull`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Pull {
    Each,
    Many,
}

/// Events a `--pull many` call takes at most.
const PULL_GROUP: usize = 256;

/// See `--allocator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Placement {
    Library,
    PerEvent,
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
    let (driver, topic) = args.target.open()?;
    let np = topic.num_partitions();
    let mine: Vec<usize> = (ranks.rank..np).step_by(ranks.size).collect();
    if ranks.rank == 0 {
        if np % ranks.size != 0 {
            eprintln!(
                "WARNING: the number of processes does not evenly divide the number of partitions"
            );
        }
        if np < ranks.size {
            eprintln!("WARNING: there are more processes than partitions; some read nothing");
        }
        println!("--- Benchmark Options ---");
        args.target.print();
        println!("Number of events: {}", args.num_events);
        println!("Number of threads: {}", args.target.num_threads);
        println!("Data interest: {}", args.data_interest);
        println!("Data selectivity: {}", args.data_selectivity);
        println!("Data placement: {:?}", args.allocator);
        println!("Pulls: {:?}", args.pull);
        println!("Number of processes: {}", ranks.size);
    }
    let interest = args.data_interest;
    let selectivity = args.data_selectivity;
    let (mut events, mut bytes) = (0u64, 0u64);
    let mut error = None;
    let bar = (ranks.rank == 0 && std::io::stderr().is_terminal())
        .then(|| bench_support::progress(args.num_events));
    ranks.barrier();
    let start = Instant::now();
    // Time to the last event received: the final idle wait is not part of the measure.
    let mut last_event_at = start;
    if !mine.is_empty() {
        let counter = std::sync::atomic::AtomicU64::new(ranks.rank as u64 * 1_000_003);
        let builder = topic
            .consumer(&args.consumer)
            .targets(&mine)
            .thread_pool(args.target.thread_pool(&driver)?);
        let everything = interest >= 1.0 && selectivity >= 1.0;
        let builder = if everything && args.allocator == Placement::Library {
            builder
        } else {
            builder
                .data_selector(move |_, full| {
                    // Interest picks events (a fixed pseudo-random sequence), selectivity trims bytes.
                    if interest <= 0.0 {
                        return DataDescriptor::none();
                    }
                    let k = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let pick = interest >= 1.0 || (hash(k) as f64 / u64::MAX as f64) < interest;
                    if !pick {
                        return DataDescriptor::none();
                    }
                    full.sub_view(0, (full.size() as f64 * selectivity).round() as u64)
                })
                .data_allocator(|_, sel| Allocation::single(vec![0u8; sel.size() as usize]))
        };
        let consumer = builder.build().map_err(|e| e.to_string())?;
        let idle = Duration::from_secs_f64(args.idle_timeout);
        let mut last = None;
        // Counts one event; false at the end of the stream. (A macro: as a closure called from
        // both loops below, it was not inlined, at about 30 instructions per event.)
        macro_rules! take {
            ($ev:expr) => {{
                let ev: Event = $ev;
                if ev.is_end_of_stream() {
                    false
                } else {
                    events += 1;
                    bytes += ev.data().size() as u64;
                    // The clock for the first 64 events, then every 64 and at the last one: a
                    // read per event cost a few percent of the rate; a longer run ended by the
                    // idle timeout is timed to within 63 events of its last one.
                    if events < 64 || events % 64 == 0 || events == args.num_events {
                        last_event_at = Instant::now();
                    }
                    if let Some(b) = &bar {
                        if events % 1024 == 0 {
                            b.set_position(events);
                        }
                    }
                    last = Some(ev);
                    true
                }
            }};
        }
        let mut group = Vec::with_capacity(PULL_GROUP);
        let mut taken = 0u64;
        // Both ways end at the first error, at the end of the stream, or after `idle`.
        'pulls: while taken < args.num_events {
            match args.pull {
                // The event is handled where the pull returns it, as the C++ program does.
                Pull::Each => match consumer.pull().take_timeout(idle) {
                    Ok(Some(ev)) => {
                        taken += 1;
                        if !take!(ev) {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                },
                Pull::Many => {
                    let want = (args.num_events - taken).min(PULL_GROUP as u64) as usize;
                    match consumer.pull_many(&mut group, want, Some(idle)) {
                        Ok(0) => break,
                        Ok(n) => taken += n as u64,
                        Err(e) => {
                            error = Some(e.to_string());
                            break;
                        }
                    }
                    for ev in group.drain(..) {
                        if !take!(ev) {
                            break 'pulls;
                        }
                    }
                }
            }
        }
        if args.ack {
            if let Some(ev) = last {
                if let Err(e) = ev.acknowledge() {
                    error.get_or_insert(e.to_string());
                }
            }
        }
    }
    let local_time = (last_event_at - start).as_secs_f64().max(1e-9);
    ranks.barrier();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let elapsed = ranks.max_f64(local_time);
    let failed = ranks.sum_u64(error.is_some() as u64);
    if let Some(e) = &error {
        eprintln!("error on rank {}: {e}", ranks.rank);
    }
    let total = ranks.sum_u64(events);
    let total_bytes = ranks.sum_u64(bytes);
    if failed > 0 {
        return Err(format!("pulls failed on {failed} rank(s)"));
    }
    if ranks.rank == 0 {
        println!();
        println!("--- Benchmark Results ---");
        println!("Total time: {elapsed:.6} s");
        println!("Total events: {total}");
        println!("Throughput: {:.1} events/s", total as f64 / elapsed);
        println!("Data read: {total_bytes} bytes");
    }
    Ok(())
}

fn hash(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
