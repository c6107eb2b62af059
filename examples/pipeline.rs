//! Simulation -> analysis coupling on the embedded files driver, with threads standing in for
//! ranks.
//!
//! Simulation workers produce one snapshot per time step (metadata: step, worker, shape; data: an
//! array of f64), each into its own partition. Analysis workers each own a disjoint set of
//! partitions, read only every 4th value of each snapshot through a strided data selection,
//! compute statistics, acknowledge, and print a summary. Every event is checked: the program exits
//! non-zero if anything was lost, duplicated or corrupted.
//!
//! ```text
//! cargo run --release --example pipeline -- [--sims 2] [--analyses 2] [--steps 200] [--values 4096] [--root DIR]
//! ```

use diaspora_stream::{BatchSize, DataView, Driver, Event};
use serde_json::json;
use std::time::{Duration, Instant};

struct Args {
    sims: usize,
    analyses: usize,
    steps: usize,
    values: usize,
    root: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        sims: 2,
        analyses: 2,
        steps: 200,
        values: 4096,
        root: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--sims" => a.sims = value.parse().expect("--sims N"),
            "--analyses" => a.analyses = value.parse().expect("--analyses N"),
            "--steps" => a.steps = value.parse().expect("--steps N"),
            "--values" => a.values = value.parse().expect("--values N"),
            "--root" => a.root = Some(value),
            "-h" | "--help" => {
                println!("usage: pipeline [--sims N] [--analyses N] [--steps N] [--values N] [--root DIR]");
                std::process::exit(0);
            }
            other => panic!("unknown option {other} (try --help)"),
        }
        i += 2;
    }
    assert!(
        a.sims > 0 && a.analyses > 0 && a.values >= 4,
        "sizes must be positive"
    );
    a
}

/// The value a simulation worker stores at index `i` of step `step`.
fn field(worker: usize, step: usize, i: usize) -> f64 {
    (worker * 1_000_000 + step * 1000) as f64 + (i as f64).sqrt()
}

fn main() -> diaspora_stream::Result<()> {
    let args = parse_args();
    let tmp;
    let root = match &args.root {
        Some(r) => std::path::PathBuf::from(r),
        None => {
            tmp = tempfile::tempdir().expect("temporary directory");
            tmp.path().to_path_buf()
        }
    };
    let driver = Driver::new("files", &json!({"root_path": root}))?;
    driver.create_topic("snapshots", &json!({"num_partitions": args.sims}))?;
    let topic = driver.open_topic("snapshots")?;
    println!(
        "pipeline: {} simulation + {} analysis workers, {} steps of {} f64 each, topic in {}",
        args.sims,
        args.analyses,
        args.steps,
        args.values,
        root.display()
    );
    let start = Instant::now();

    let sims: Vec<_> = (0..args.sims)
        .map(|w| {
            let topic = topic.clone();
            let (steps, values) = (args.steps, args.values);
            std::thread::spawn(move || -> diaspora_stream::Result<()> {
                let producer = topic.producer().batch_size(BatchSize::Adaptive).build()?;
                let mut last = None;
                for step in 0..steps {
                    let snapshot: Vec<f64> = (0..values).map(|i| field(w, step, i)).collect();
                    let bytes: Vec<u8> = snapshot.iter().flat_map(|v| v.to_le_bytes()).collect();
                    let md = json!({"step": step, "rank": w, "shape": [values], "dtype": "f64"});
                    last = Some(producer.push_to(md, DataView::from(bytes), w));
                }
                producer.flush().wait()?;
                if let Some(f) = last {
                    f.wait()?;
                }
                Ok(())
            })
        })
        .collect();

    let expected_per_partition = args.steps;
    let analyses: Vec<_> = (0..args.analyses)
        .map(|a| {
            let topic = topic.clone();
            let owned: Vec<usize> = (0..args.sims).filter(|p| p % args.analyses == a).collect();
            let values = args.values;
            std::thread::spawn(move || -> diaspora_stream::Result<(usize, f64, f64)> {
                if owned.is_empty() {
                    return Ok((0, f64::INFINITY, f64::NEG_INFINITY));
                }
                let consumer = topic
                    .consumer("analysis")
                    .targets(&owned)
                    // Every 4th value: 8-byte blocks with 24-byte gaps.
                    .data_selector(|_, d| {
                        d.strided_view(0, d.size() / 32, 8, 24).unwrap_or_default()
                    })
                    .build()?;
                let mut seen = vec![vec![false; expected_per_partition]; owned.len()];
                let (mut count, mut min, mut max) = (0usize, f64::INFINITY, f64::NEG_INFINITY);
                let deadline = Instant::now() + Duration::from_secs(600);
                while count < owned.len() * expected_per_partition {
                    assert!(Instant::now() < deadline, "analysis {a} timed out");
                    let Some(ev): Option<Event> =
                        consumer.pull().wait_timeout(Duration::from_millis(200))?
                    else {
                        continue;
                    };
                    let md = ev.metadata().json();
                    let (step, rank) = (
                        md["step"].as_u64().unwrap() as usize,
                        md["rank"].as_u64().unwrap() as usize,
                    );
                    let slot = owned
                        .iter()
                        .position(|&p| p == ev.partition())
                        .expect("owned partition");
                    assert_eq!(rank, ev.partition(), "event in the producer's partition");
                    assert!(
                        !std::mem::replace(&mut seen[slot][step], true),
                        "duplicate step {step} of rank {rank}"
                    );
                    let data = ev.data().to_vec();
                    assert_eq!(data.len(), values / 4 * 8);
                    for (j, chunk) in data.chunks_exact(8).enumerate() {
                        let v = f64::from_le_bytes(chunk.try_into().unwrap());
                        assert_eq!(
                            v,
                            field(rank, step, j * 4),
                            "value {j} of step {step} rank {rank}"
                        );
                        min = min.min(v);
                        max = max.max(v);
                    }
                    ev.acknowledge()?;
                    count += 1;
                }
                Ok((count, min, max))
            })
        })
        .collect();

    for s in sims {
        s.join().expect("simulation thread panicked")?;
    }
    let mut total = 0;
    for (a, h) in analyses.into_iter().enumerate() {
        let (count, min, max) = h.join().expect("analysis thread panicked")?;
        println!("analysis {a}: {count} snapshots, sampled values in [{min:.3}, {max:.3}]");
        total += count;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let expected = args.sims * args.steps;
    println!(
        "pipeline: {total}/{expected} snapshots consumed exactly once in {elapsed:.2} s ({:.0} snapshots/s)",
        total as f64 / elapsed
    );
    if total != expected {
        eprintln!("pipeline: events were lost");
        std::process::exit(1);
    }
    Ok(())
}
