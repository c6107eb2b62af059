//! Analysis results stored in HDF5 (feature `hdf5`).
//!
//! Reads a topic of `f64` snapshots as `examples/pipeline.rs` and `examples/coupling.rs` write
//! them (metadata `{"step", "rank", "shape": [n], "dtype": "f64"}`, data: `n` little-endian
//! `f64`), computes statistics per time step over the snapshots of every rank, and writes them to
//! an HDF5 file:
//!
//! ```text
//! /steps        table of a compound type, one row per step:
//!               step (u64), snapshots (u32), values (u64), min, max, mean, std (f64)
//! /rank_means   f64 [steps x ranks]: the mean of each rank's snapshot (NaN where missing)
//! /             attributes: topic, ranks, created_by
//! ```
//!
//! It then reads the file back and checks every value against what it computed (and, for the
//! snapshots it produced itself, against the closed form of the simulated field). With
//! `--export FILE` it also exports the raw snapshots with `diaspora_stream::hdf5::export_topic`
//! and checks that the export holds every snapshot. Exits non-zero on any mismatch.
//!
//! ```text
//! cargo run --features hdf5 --example hdf5_analysis -- [--sims 2] [--steps 50] [--values 1024]
//!     [--root DIR --topic NAME] [--output stats.h5] [--export raw.h5]
//! ```
//!
//! Without `--root` it creates a topic in a temporary folder and fills it as the pipeline
//! example does (ending the stream); with `--root DIR --topic NAME` it reads an existing topic
//! until its stream ends or no event arrives for 2 seconds.

use diaspora_stream::hdf5::hdf5::{self as h5, H5Type};
use diaspora_stream::hdf5::{export_topic, ExportFile, ExportOptions};
use diaspora_stream::{DataView, Driver};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One row of `/steps`.
#[derive(H5Type, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct StepStats {
    step: u64,
    snapshots: u32,
    values: u64,
    min: f64,
    max: f64,
    mean: f64,
    std: f64,
}

struct Args {
    sims: usize,
    steps: usize,
    values: usize,
    root: Option<PathBuf>,
    topic: String,
    output: Option<PathBuf>,
    export: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        sims: 2,
        steps: 50,
        values: 1024,
        root: None,
        topic: "snapshots".into(),
        output: None,
        export: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned();
        let need = |v: Option<String>| v.ok_or_else(|| format!("{} needs a value", argv[i]));
        let number = |v: Option<String>| -> Result<usize, String> {
            need(v)?
                .parse()
                .map_err(|_| format!("{} needs a positive integer", argv[i]))
        };
        match argv[i].as_str() {
            "--sims" => a.sims = number(value)?,
            "--steps" => a.steps = number(value)?,
            "--values" => a.values = number(value)?,
            "--root" => a.root = Some(need(value)?.into()),
            "--topic" => a.topic = need(value)?,
            "--output" => a.output = Some(need(value)?.into()),
            "--export" => a.export = Some(need(value)?.into()),
            "-h" | "--help" => {
                println!(
                    "usage: hdf5_analysis [--sims N] [--steps N] [--values N] [--root DIR --topic NAME] \
                     [--output FILE] [--export FILE]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other} (try --help)")),
        }
        i += 2;
    }
    if a.sims == 0 || a.steps == 0 || a.values == 0 {
        return Err("--sims, --steps and --values must be positive".into());
    }
    Ok(a)
}

/// The value the simulated rank `rank` stores at index `i` of step `step` (as the pipeline).
fn field(rank: usize, step: usize, i: usize) -> f64 {
    (rank * 1_000_000 + step * 1000) as f64 + (i as f64).sqrt()
}

/// Running sums of one step.
#[derive(Default)]
struct Acc {
    snapshots: u32,
    values: u64,
    min: f64,
    max: f64,
    sum: f64,
    sum_sq: f64,
    rank_means: BTreeMap<usize, f64>,
}

type Failure = Box<dyn std::error::Error>;

fn main() {
    if let Err(e) = run() {
        eprintln!("hdf5_analysis: error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Failure> {
    let args = parse_args()?;
    let tmp = tempfile::tempdir()?;
    let own = args.root.is_none();
    let root = args
        .root
        .clone()
        .unwrap_or_else(|| tmp.path().join("topics"));
    let driver = Driver::new("files", &json!({"root_path": root}))?;
    if own {
        produce(&driver, &args)?;
    }
    let topic = driver.open_topic(&args.topic)?;

    // Consume every snapshot and accumulate per-step statistics.
    let consumer = topic.consumer("hdf5-analysis").build()?;
    let mut steps: BTreeMap<u64, Acc> = BTreeMap::new();
    let mut ranks = 0usize;
    let mut events = 0usize;
    for event in consumer.iter(Duration::from_secs(2)) {
        let event = event?;
        let md = event.metadata().json();
        let (Some(step), Some(rank)) = (md["step"].as_u64(), md["rank"].as_u64()) else {
            return Err(format!("event {} has no step or rank: {md}", event.id()).into());
        };
        let bytes = event.data().to_vec();
        if bytes.is_empty() || bytes.len() % 8 != 0 {
            return Err(format!(
                "step {step} of rank {rank}: {} bytes is no f64 array",
                bytes.len()
            )
            .into());
        }
        let values: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        let acc = steps.entry(step).or_insert_with(|| Acc {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            ..Acc::default()
        });
        let sum: f64 = values.iter().sum();
        acc.snapshots += 1;
        acc.values += values.len() as u64;
        acc.sum += sum;
        acc.sum_sq += values.iter().map(|v| v * v).sum::<f64>();
        acc.min = values.iter().copied().fold(acc.min, f64::min);
        acc.max = values.iter().copied().fold(acc.max, f64::max);
        if acc
            .rank_means
            .insert(rank as usize, sum / values.len() as f64)
            .is_some()
        {
            return Err(format!("step {step} of rank {rank} was delivered twice").into());
        }
        ranks = ranks.max(rank as usize + 1);
        event.acknowledge()?;
        events += 1;
    }
    if steps.is_empty() {
        return Err(format!("topic {:?} holds no snapshot", args.topic).into());
    }
    let rows: Vec<StepStats> = steps
        .iter()
        .map(|(&step, a)| {
            let n = a.values as f64;
            let mean = a.sum / n;
            StepStats {
                step,
                snapshots: a.snapshots,
                values: a.values,
                min: a.min,
                max: a.max,
                mean,
                std: (a.sum_sq / n - mean * mean).max(0.0).sqrt(),
            }
        })
        .collect();
    let mut means = vec![f64::NAN; rows.len() * ranks];
    for (row, acc) in steps.values().enumerate() {
        for (&r, &m) in &acc.rank_means {
            means[row * ranks + r] = m;
        }
    }

    // Write the results.
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| tmp.path().join("analysis.h5"));
    {
        let file = h5::File::create(&output)?;
        file.new_dataset_builder()
            .with_data(&rows[..])
            .create("steps")?;
        file.new_dataset::<f64>()
            .shape((rows.len(), ranks))
            .create("rank_means")?
            .write_raw(&means[..])?;
        let topic_name: h5::types::VarLenUnicode = args.topic.parse()?;
        file.new_attr::<h5::types::VarLenUnicode>()
            .shape(())
            .create("topic")?
            .write_scalar(&topic_name)?;
        file.new_attr::<u64>()
            .shape(())
            .create("ranks")?
            .write_scalar(&(ranks as u64))?;
        let by: h5::types::VarLenUnicode = "diaspora-stream examples/hdf5_analysis.rs".parse()?;
        file.new_attr::<h5::types::VarLenUnicode>()
            .shape(())
            .create("created_by")?
            .write_scalar(&by)?;
    }

    // Read it back and check.
    let file = h5::File::open(&output)?;
    let read: Vec<StepStats> = file.dataset("steps")?.read_raw()?;
    if read != rows {
        return Err("the /steps table read back differs from what was written".into());
    }
    let read_means: Vec<f64> = file.dataset("rank_means")?.read_raw()?;
    let same = read_means.len() == means.len()
        && read_means
            .iter()
            .zip(&means)
            .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
    if !same || file.dataset("rank_means")?.shape() != vec![rows.len(), ranks] {
        return Err("the /rank_means array read back differs from what was written".into());
    }
    let topic_attr: h5::types::VarLenUnicode = file.attr("topic")?.read_scalar()?;
    if topic_attr.as_str() != args.topic {
        return Err("the topic attribute read back differs".into());
    }
    if own {
        check_closed_form(&args, &rows)?;
    }

    // Optionally export the raw snapshots too, and check the export.
    if let Some(path) = &args.export {
        let summary = export_topic(&topic, path, &ExportOptions::default())?;
        let raw = ExportFile::open(path)?;
        let snapshots = raw
            .info()
            .partitions
            .iter()
            .map(|p| {
                raw.read_events(p.partition, 0..p.events).map(|v| {
                    v.iter()
                        .filter(|e| e.metadata.json().get("step").is_some())
                        .count()
                })
            })
            .sum::<Result<usize, _>>()?;
        if snapshots != events {
            return Err(
                format!("the export holds {snapshots} snapshots, {events} were analysed").into(),
            );
        }
        println!(
            "exported {} events ({} data bytes) to {}",
            summary.events(),
            summary.data_bytes(),
            path.display()
        );
    }

    let first = &rows[0];
    let last = &rows[rows.len() - 1];
    println!(
        "analysed {events} snapshots of {ranks} ranks over {} steps; step {}: mean {:.3}, std {:.3}; \
         step {}: mean {:.3}, std {:.3}",
        rows.len(),
        first.step,
        first.mean,
        first.std,
        last.step,
        last.mean,
        last.std
    );
    println!(
        "statistics written to {} and verified (/steps: {} rows, /rank_means: {} x {})",
        output.display(),
        rows.len(),
        rows.len(),
        ranks
    );
    Ok(())
}

/// Fills a fresh topic as the pipeline example does, then ends its stream.
fn produce(driver: &Driver, args: &Args) -> Result<(), Failure> {
    driver.create_topic(&args.topic, &json!({"num_partitions": args.sims}))?;
    let topic = driver.open_topic(&args.topic)?;
    let producer = topic.producer().build()?;
    for step in 0..args.steps {
        for rank in 0..args.sims {
            let bytes: Vec<u8> = (0..args.values)
                .flat_map(|i| field(rank, step, i).to_le_bytes())
                .collect();
            let md = json!({"step": step, "rank": rank, "shape": [args.values], "dtype": "f64"});
            producer.push_to(md, DataView::from(bytes), rank);
        }
    }
    producer.flush().wait()?;
    producer.end_of_stream(0, 1).wait()?;
    Ok(())
}

/// Checks the statistics of self-produced snapshots against the field's closed form.
fn check_closed_form(args: &Args, rows: &[StepStats]) -> Result<(), Failure> {
    if rows.len() != args.steps {
        return Err(format!("{} steps analysed, {} produced", rows.len(), args.steps).into());
    }
    for r in rows {
        let step = r.step as usize;
        let n = (args.sims * args.values) as f64;
        let mean = (0..args.sims)
            .flat_map(|rank| (0..args.values).map(move |i| field(rank, step, i)))
            .sum::<f64>()
            / n;
        let ok = r.snapshots as usize == args.sims
            && r.values as usize == args.sims * args.values
            && r.min == field(0, step, 0)
            && r.max == field(args.sims - 1, step, args.values - 1)
            && (r.mean - mean).abs() <= 1e-9 * mean.abs().max(1.0);
        if !ok {
            return Err(format!("step {step}: unexpected statistics {r:?} (mean {mean})").into());
        }
    }
    Ok(())
}
