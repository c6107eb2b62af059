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

/// Two separate jobs share a topic: an analysis job (`mpiexec -n 1 diaspora-ctl consume
/// --follow`) follows what a simulation job (`mpiexec -n 2` producer ranks) writes; one rank of
/// the simulation is killed with SIGKILL. The analysis job prints every event the simulation
/// stored, then exits non-zero naming a lost producer, instead of waiting forever.
#[test]
fn an_analysis_job_reports_a_killed_simulation_rank() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let launcher = std::env::var("DIASPORA_MPIEXEC").unwrap_or_else(|_| "mpiexec".into());
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let options = serde_json::json!({"root_path": data, "lease_interval_ms": 100});
    let driver = diaspora_stream::Driver::new("files", &options).unwrap();
    driver
        .create_topic("sim", &serde_json::json!({"num_partitions": 2}))
        .unwrap();
    let topic = driver.open_topic("sim").unwrap();
    let cfg = work.path().join("cfg.json");
    std::fs::write(&cfg, options.to_string()).unwrap();
    let cfg = cfg.to_str().unwrap();
    let job = |n: usize, program: &str, args: &[&str], tag: &str| {
        let dir = work.path().join(tag);
        std::fs::create_dir(&dir).unwrap();
        Command::new(&launcher)
            .arg("-n")
            .arg(n.to_string())
            .arg(program)
            .args(args)
            .current_dir(&dir)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
            .env("OMPI_MCA_btl", "self,vader")
            .env("OMPI_MCA_oob_tcp_if_include", "lo")
            .env("OMPI_MCA_orte_tmpdir_base", &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {launcher}: {e}"))
    };
    let analysis = job(
        1,
        env!("CARGO_BIN_EXE_diaspora-ctl"),
        &[
            "consume",
            "--driver",
            "files",
            "--driver-config",
            cfg,
            "--topic",
            "sim",
            "--follow",
            "--liveness-timeout",
            "1",
            "--logging",
            "error",
        ],
        "analysis",
    );
    let mut simulation = job(
        2,
        env!("CARGO_BIN_EXE_diaspora-producer-benchmark"),
        &[
            "-d",
            "files",
            "-c",
            cfg,
            "-t",
            "sim",
            "-n",
            "20000000",
            "-s",
            "16",
            "-b",
            "64",
            "-f",
            "1000",
            "--own-partition",
        ],
        "simulation",
    );
    // Both ranks have stored events and announced their last ids.
    let deadline = Instant::now() + Duration::from_secs(120);
    let pids = loop {
        if Instant::now() >= deadline {
            let _ = simulation.kill();
            panic!("the simulation did not start");
        }
        let producers = topic.backend().producers().unwrap().unwrap_or_default();
        if producers.len() == 2 && producers.iter().all(|(p, _)| !p.last_ids.is_empty()) {
            break producers.iter().map(|(p, _)| p.pid).collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SIGKILL one rank; the launcher then takes the job down.
    assert_eq!(unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) }, 0);
    let _ = simulation.wait();
    let stored: u64 = (0..2).map(|p| topic.backend().end_id(p).unwrap()).sum();
    let out = analysis.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the analysis job succeeded:\n{stderr}"
    );
    assert_eq!(
        stdout.lines().count() as u64,
        stored,
        "every stored event is printed before the error"
    );
    assert!(
        stderr.contains("stopped renewing")
            && pids
                .iter()
                .any(|p| stderr.contains(&format!("process {p}"))),
        "{stderr}"
    );
}
