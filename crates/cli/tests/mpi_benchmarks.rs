//! The benchmark programs under a real MPI launcher (feature `mpi`): `mpiexec -n 4` producer
//! ranks and `mpiexec -n 2` consumer ranks on one topic, with totals over all ranks.
//!
//! The launcher is `$DIASPORA_MPIEXEC` (default `mpiexec`); it must belong to the MPI the programs
//! were built against (`MPICC`). The library's own MPI runs are in the root's `tests/mpi.rs`.
#![cfg(feature = "mpi")]

#[path = "../../../tests/support/mpi_launch.rs"]
mod mpi_launch;
use mpi_launch::mpiexec;
use std::path::PathBuf;

#[test]
fn benchmarks_aggregate_over_ranks() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    diaspora_stream::Driver::new("files", &serde_json::json!({"root_path": data}))
        .unwrap()
        .create_topic("bench", &serde_json::json!({"num_partitions": 3}))
        .unwrap();
    let cfg = work.path().join("cfg.json");
    std::fs::write(&cfg, serde_json::json!({"root_path": data}).to_string()).unwrap();
    let cfg = cfg.to_str().unwrap();
    let producer = PathBuf::from(env!("CARGO_BIN_EXE_diaspora-producer-benchmark"));
    let consumer = PathBuf::from(env!("CARGO_BIN_EXE_diaspora-consumer-benchmark"));
    let (ok, text) = mpiexec(
        4,
        &producer,
        &[
            "-d", "files", "-c", cfg, "-t", "bench", "-n", "250", "-s", "64", "-m", "24", "-b",
            "16",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("Number of processes: 4"), "{text}");
    assert!(
        text.contains("Total events: 1000\n"),
        "totals over 4 ranks:\n{text}"
    );
    // 2 consumer ranks split 3 partitions round robin and together read everything once.
    let (ok, text) = mpiexec(
        2,
        &consumer,
        &[
            "-d",
            "files",
            "-c",
            cfg,
            "-t",
            "bench",
            "-n",
            "100000",
            "--idle-timeout",
            "2",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("Total events: 1000\n"), "{text}");
    assert!(text.contains("Data read: 64000 bytes"), "{text}");
    assert!(
        text.contains("WARNING"),
        "3 partitions over 2 ranks warns:\n{text}"
    );
}
