//! The benchmark programs under a real MPI launcher (feature `mpi`): `mpiexec -n 4` producer
//! ranks and `mpiexec -n 2` consumer ranks on one topic, with totals over all ranks.
//!
//! The launcher is `$DIASPORA_MPIEXEC` (default `mpiexec`); it must belong to the MPI the programs
//! were built against (`MPICC`). The library's own MPI runs are in the root's `tests/mpi.rs`.
#![cfg(feature = "mpi")]

use std::path::PathBuf;
use std::process::Command;

fn mpiexec(n: usize, program: &PathBuf, args: &[&str]) -> (bool, String) {
    let launcher = std::env::var("DIASPORA_MPIEXEC").unwrap_or_else(|_| "mpiexec".into());
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(&launcher)
        .arg("-n")
        .arg(n.to_string())
        .arg(program)
        .args(args)
        .current_dir(work.path())
        // OpenMPI: allow root, more ranks than cores, loopback only.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("OMPI_MCA_btl", "self,vader")
        .env("OMPI_MCA_oob_tcp_if_include", "lo")
        // A session folder of its own: concurrent jobs race to create the shared one.
        .env("OMPI_MCA_orte_tmpdir_base", work.path())
        .output()
        .unwrap_or_else(|e| panic!("could not run {launcher}: {e}"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing is left behind in the working folder.
    let leftovers: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "files left behind: {leftovers:?}");
    (out.status.success(), text)
}

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
