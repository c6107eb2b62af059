//! The main job: MPI simulation ranks stream time-step snapshots to MPI analysis ranks through a
//! topic of the embedded files driver.
//!
//! ```text
//! mpirun -n 4 target/release/examples/coupling [--sims K] [--partitions P] [--steps N]
//!        [--values V] [--root DIR] [--verbose]
//! ```
//!
//! The world is split into `K` simulation ranks (default: half) and the analysis ranks. Each
//! simulation rank writes one snapshot per step (metadata: step, rank, shape; data: `V` f64
//! values) to its own partitions and closes the step with the other simulation ranks
//! (`mpi::end_step`), then declares the end of its stream. Analysis ranks own disjoint partition
//! sets covering the topic, pull only every 4th value of each snapshot through a strided data
//! selection, check every value, and analyse step `k` (statistics of its snapshots) as soon as
//! the step marker says every simulation rank has closed it, not at the end; they acknowledge,
//! and stop at the end of the stream. Rank 0 prints the summary. The exit code is non-zero on
//! every rank if any snapshot was lost, duplicated, corrupted, or arrived after its step was
//! declared complete, or if a step was never declared complete.

use diaspora_stream::mpi::mpi::topology::Color;
use diaspora_stream::mpi::mpi::traits::*;
use diaspora_stream::mpi::{self as dmpi, PartitionMap, RankAffineSelector};
use diaspora_stream::{DataView, Driver, Result};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    sims: Option<usize>,
    partitions: Option<usize>,
    steps: usize,
    values: usize,
    root: Option<String>,
    /// Print each step's statistics as it is analysed.
    verbose: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        sims: None,
        partitions: None,
        steps: 100,
        values: 4096,
        root: None,
        verbose: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        let num = |v: &str| {
            v.parse::<usize>()
                .unwrap_or_else(|_| panic!("{} needs a number", argv[i]))
        };
        match argv[i].as_str() {
            "--sims" => a.sims = Some(num(&value)),
            "--partitions" => a.partitions = Some(num(&value)),
            "--steps" => a.steps = num(&value),
            "--values" => a.values = num(&value),
            "--root" => a.root = Some(value),
            "--verbose" => {
                a.verbose = true;
                i += 1;
                continue;
            }
            "-h" | "--help" => {
                println!("usage: mpirun -n N coupling [--sims K] [--partitions P] [--steps N] [--values V] [--root DIR] [--verbose]");
                std::process::exit(0);
            }
            other => panic!("unknown option {other} (try --help)"),
        }
        i += 2;
    }
    a
}

/// Value `i` of the snapshot of simulation rank `rank` at `step`.
fn field(rank: usize, step: usize, i: usize) -> f64 {
    (rank * 1_000_000 + step * 1000) as f64 + (i as f64).sqrt()
}

fn main() {
    let args = parse_args();
    let universe = dmpi::mpi::initialize().expect("MPI initialisation failed");
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let sims = args.sims.unwrap_or((size / 2).max(1));
    if size < 2 || sims == 0 || sims >= size {
        if rank == 0 {
            eprintln!("coupling: need at least one simulation and one analysis rank (world size {size}, --sims {sims})");
        }
        std::process::exit(2);
    }
    let partitions = args.partitions.unwrap_or(sims);
    let simulation = rank < sims;
    let group = world
        .split_by_color(Color::with_value(if simulation { 0 } else { 1 }))
        .expect("communicator split");
    println!(
        "rank {rank}/{size}: {} rank {}/{}",
        if simulation { "simulation" } else { "analysis" },
        group.rank(),
        group.size()
    );

    // Rank 0 picks the topic folder (a fresh one unless --root is given) and tells everyone.
    let mut root = args.root.clone().unwrap_or_default().into_bytes();
    let mut owned_tmp = None;
    if rank == 0 && root.is_empty() {
        let dir = tempfile::Builder::new()
            .prefix("diaspora-coupling-")
            .tempdir_in(".")
            .expect("temporary folder");
        root = dir.path().to_string_lossy().into_owned().into_bytes();
        owned_tmp = Some(dir);
    }
    let mut len = root.len() as u64;
    world.process_at_rank(0).broadcast_into(&mut len);
    root.resize(len as usize, 0);
    world.process_at_rank(0).broadcast_into(&mut root[..]);
    let root = String::from_utf8(root).expect("path");

    let start = Instant::now();
    let outcome = run(&world, &group, simulation, &args, &root, partitions);
    let (produced, consumed, duplicates, sum, count) = match &outcome {
        Ok(s) => *s,
        Err(e) => {
            eprintln!("rank {rank}: error: {e}");
            (0, 0, 0, 0.0, 0)
        }
    };
    let failed = outcome.is_err() as u64;
    let mut totals = [0u64; 5];
    world.all_reduce_into(
        &[produced, consumed, duplicates, failed, count],
        &mut totals[..],
        dmpi::mpi::collective::SystemOperation::sum(),
    );
    let mut total_sum = 0.0f64;
    world.all_reduce_into(
        &sum,
        &mut total_sum,
        dmpi::mpi::collective::SystemOperation::sum(),
    );
    let [produced, consumed, duplicates, failed, count] = totals;
    let ok = failed == 0
        && duplicates == 0
        && produced == (sims * args.steps) as u64
        && consumed == produced;
    if rank == 0 {
        println!(
            "coupling: world size {size}: {sims} simulation + {} analysis ranks, {partitions} partitions",
            size - sims
        );
        println!(
            "coupling: {consumed}/{produced} snapshots consumed exactly once ({} expected, {duplicates} duplicates, {failed} failed ranks) in {:.2} s",
            sims * args.steps,
            start.elapsed().as_secs_f64()
        );
        if count > 0 {
            println!(
                "coupling: mean of the {count} sampled values: {:.3}",
                total_sum / count as f64
            );
        }
        println!("coupling: {}", if ok { "OK" } else { "FAILED" });
    }
    world.barrier();
    drop(owned_tmp);
    if !ok {
        std::process::exit(1);
    }
}

/// This rank's part. Returns (produced, consumed, duplicates, sum of samples, sample count).
fn run<C: Communicator>(
    world: &C,
    group: &C,
    simulation: bool,
    args: &Args,
    root: &str,
    partitions: usize,
) -> Result<(u64, u64, u64, f64, u64)> {
    let driver = Driver::new("files", &json!({"root_path": root}))?;
    let topic = dmpi::create_or_open_topic(
        world,
        &driver,
        "snapshots",
        &json!({"num_partitions": partitions}),
    )?;
    let (grank, gsize) = (group.rank() as usize, group.size() as usize);
    if simulation {
        let mine = PartitionMap::Block.producer_partitions(grank, gsize, topic.num_partitions())?;
        let producer = topic
            .producer()
            .name(&format!("simulation-{grank}"))
            .partition_selector(Arc::new(RankAffineSelector::new(mine)))
            .build()?;
        let world_rank = world.rank() as usize;
        for step in 0..args.steps {
            let bytes: Vec<u8> = (0..args.values)
                .flat_map(|i| field(world_rank, step, i).to_le_bytes())
                .collect();
            let md =
                json!({"step": step, "rank": world_rank, "shape": [args.values], "dtype": "f64"});
            producer.push(md, DataView::from(bytes));
            dmpi::end_step(group, &producer, step as u64)?;
        }
        dmpi::end_of_stream(group, &producer)?;
        return Ok((args.steps as u64, 0, 0, 0.0, 0));
    }

    let mine = PartitionMap::Cyclic.consumer_partitions(grank, gsize, topic.num_partitions())?;
    // Check that the analysis ranks' partition sets are disjoint and complete.
    let mut mask = vec![0u8; topic.num_partitions()];
    for &p in &mine {
        mask[p] = 1;
    }
    let mut cover = vec![0u8; topic.num_partitions()];
    group.all_reduce_into(
        &mask[..],
        &mut cover[..],
        dmpi::mpi::collective::SystemOperation::sum(),
    );
    if cover.iter().any(|&c| c != 1) {
        return Err(diaspora_stream::Error::InvalidArgument(format!(
            "partition map is not a partition of the topic: {cover:?}"
        )));
    }
    let mut seen = HashSet::new();
    let (mut consumed, mut duplicates, mut sum, mut count) = (0u64, 0u64, 0.0f64, 0u64);
    // Snapshots of steps not analysed yet (step -> sum and count of their samples), and the
    // steps analysed as their markers arrived.
    let mut open_steps: std::collections::BTreeMap<usize, (f64, u64)> = Default::default();
    let mut analysed = 0usize;
    if !mine.is_empty() {
        let consumer = topic
            .consumer("analysis")
            .targets(&mine)
            // Every 4th f64: 8-byte blocks with 24-byte gaps.
            .data_selector(|_, d| d.strided_view(0, d.size() / 32, 8, 24).unwrap_or_default())
            .build()?;
        loop {
            let Some(event) = consumer.pull().wait_timeout(Duration::from_secs(300))? else {
                return Err(diaspora_stream::Error::InvalidArgument(
                    "no end of stream after 300 s without events".into(),
                ));
            };
            if event.is_end_of_stream() {
                break;
            }
            if let Some(k) = event.completed_step() {
                // Every simulation rank closed step k: its snapshots (and earlier ones) are all
                // here, so analyse them now.
                let done: Vec<usize> = open_steps.range(..=k as usize).map(|(s, _)| *s).collect();
                for s in done {
                    let (step_sum, step_count) = open_steps.remove(&s).unwrap_or_default();
                    if args.verbose {
                        println!(
                            "rank {}: step {s} complete: mean of {step_count} samples {:.3}",
                            world.rank(),
                            step_sum / step_count.max(1) as f64
                        );
                    }
                }
                analysed = analysed.max(k as usize + 1);
                continue;
            }
            let md = event.metadata().json();
            let (step, src) = (
                md["step"].as_u64().unwrap_or(u64::MAX) as usize,
                md["rank"].as_u64().unwrap_or(u64::MAX) as usize,
            );
            if !seen.insert((src, step)) {
                duplicates += 1;
            }
            if step < analysed {
                return Err(diaspora_stream::Error::InvalidArgument(format!(
                    "snapshot of step {step} from rank {src} arrived after step {} was complete",
                    analysed - 1
                )));
            }
            let step_stats = open_steps.entry(step).or_default();
            for (j, chunk) in event.data().to_vec().chunks_exact(8).enumerate() {
                let v = f64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                if v != field(src, step, j * 4) {
                    return Err(diaspora_stream::Error::InvalidArgument(format!(
                        "corrupt value {j} of step {step} from rank {src}"
                    )));
                }
                sum += v;
                count += 1;
                step_stats.0 += v;
                step_stats.1 += 1;
            }
            event.acknowledge()?;
            consumed += 1;
        }
        if analysed != args.steps {
            return Err(diaspora_stream::Error::InvalidArgument(format!(
                "{analysed} of {} steps were declared complete before the end of the stream",
                args.steps
            )));
        }
    }
    println!(
        "rank {}: end of stream after {consumed} snapshots from partitions {mine:?}, {} steps analysed as they completed",
        world.rank(),
        analysed
    );
    Ok((0, consumed, duplicates, sum, count))
}
