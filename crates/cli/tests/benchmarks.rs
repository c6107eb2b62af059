//! The benchmark programs, run for real (as the reference's files-driver benchmark script does).

use diaspora_stream::Driver;
use serde_json::json;
use std::process::Command;

fn run(exe: &str, args: &[&str]) -> (i32, String, String) {
    // OpenMPI's session folder of its own: jobs started at the same moment race to create the
    // shared one (`/tmp/ompi.<host>.<uid>`) and the loser fails with "File exists".
    let session = tempfile::tempdir().unwrap();
    let out = Command::new(exe)
        .args(args)
        // Built with the `mpi` feature the programs run as a one-rank MPI job.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_orte_tmpdir_base", session.path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const PRODUCER: &str = env!("CARGO_BIN_EXE_diaspora-producer-benchmark");
const CONSUMER: &str = env!("CARGO_BIN_EXE_diaspora-consumer-benchmark");

fn setup(partitions: usize) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Driver::new("files", &json!({"root_path": data}))
        .unwrap()
        .create_topic("my_topic", &json!({"num_partitions": partitions}))
        .unwrap();
    let cfg = dir.path().join("benchmark_config.json");
    std::fs::write(&cfg, json!({"root_path": data}).to_string()).unwrap();
    let cfg = cfg.to_string_lossy().into_owned();
    (dir, cfg)
}

fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name:?} in:\n{out}"))
        .to_string()
}

#[test]
fn producer_then_consumer_like_the_reference_script() {
    let (dir, cfg) = setup(1);
    let (code, out, err) = run(
        PRODUCER,
        &[
            "-d", "files", "-c", &cfg, "-t", "my_topic", "-n", "100", "-m", "16", "-s", "128",
            "-b", "8", "-f", "10", "-p", "1",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    for (k, v) in [
        ("Driver", "files"),
        ("Topic", "my_topic"),
        ("Number of events", "100"),
        ("Data size", "128"),
        ("Metadata size", "16"),
        ("Batch size", "8"),
        ("Number of threads", "1"),
        ("Flush interval", "10"),
        ("Total events", "100"),
    ] {
        assert_eq!(field(&out, k), v, "{out}");
    }
    assert!(field(&out, "Throughput").ends_with("events/s"));
    assert!(field(&out, "Bandwidth").ends_with("MB/s"));
    // Stored: 100 events of 128 bytes with 16-byte metadata.
    let topic = Driver::new("files", &json!({"root_path": dir.path().join("data")}))
        .unwrap()
        .open_topic("my_topic")
        .unwrap();
    let stored = topic.backend().fetch(0, 0, 1000, true).unwrap();
    assert_eq!(stored.len(), 100);
    assert!(stored
        .iter()
        .all(|e| e.data_size == 128 && e.metadata.len() == 8 + 16));

    let (code, out, err) = run(
        CONSUMER,
        &[
            "-d", "files", "-c", &cfg, "-t", "my_topic", "-n", "100", "-s", "0.5", "-i", "0.8",
            "-p", "1",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(field(&out, "Total events"), "100");
    assert_eq!(field(&out, "Data interest"), "0.8");
    assert_eq!(field(&out, "Data selectivity"), "0.5");
    // Interest and selectivity are applied: some but not all events, half of each.
    let read: u64 = field(&out, "Data read")
        .trim_end_matches(" bytes")
        .parse()
        .unwrap();
    assert_eq!(read % 64, 0, "{read}");
    assert!(read > 0 && read < 100 * 64, "{read} bytes read");
}

#[test]
fn metadata_sizes_below_two_work_and_full_reads_read_everything() {
    let (_dir, cfg) = setup(2);
    for m in ["0", "1"] {
        let (code, out, err) = run(
            PRODUCER,
            &[
                "-d", "files", "-c", &cfg, "-t", "my_topic", "-n", "50", "-m", m, "-s", "10", "-f",
                "0",
            ],
        );
        assert_eq!(code, 0, "-m {m}: {out}{err}");
        assert_eq!(field(&out, "Total events"), "50");
    }
    // Both ways of taking events (one pull() each, pull_many) count the same events and bytes.
    for pull in ["each", "many"] {
        let (code, out, err) = run(
            CONSUMER,
            &[
                "-d",
                "files",
                "-c",
                &cfg,
                "-t",
                "my_topic",
                "-n",
                "1000",
                "--idle-timeout",
                "1",
                "--pull",
                pull,
            ],
        );
        assert_eq!(code, 0, "--pull {pull}: {out}{err}");
        assert_eq!(
            field(&out, "Total events"),
            "100",
            "--pull {pull}: stops when the partitions are exhausted"
        );
        assert_eq!(field(&out, "Data read"), "1000 bytes", "--pull {pull}");
    }
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let (_dir, cfg) = setup(1);
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            CONSUMER,
            vec!["-d", "files", "-c", &cfg, "-t", "my_topic", "-i", "1.5"],
            "between 0 and 1",
        ),
        (
            CONSUMER,
            vec![
                "-d",
                "files",
                "-c",
                &cfg,
                "-t",
                "my_topic",
                "--data-selectivity=-0.1",
            ],
            "between 0 and 1",
        ),
        (PRODUCER, vec!["-d", "files", "-c", &cfg], "--topic"),
        (PRODUCER, vec!["-d", "nope", "-t", "my_topic"], "nope"),
        (
            PRODUCER,
            vec!["-d", "files", "-c", &cfg, "-t", "missing"],
            "missing",
        ),
        (
            PRODUCER,
            vec!["-d", "files", "-c", "/nonexistent.json", "-t", "my_topic"],
            "nonexistent.json",
        ),
        (
            PRODUCER,
            vec!["-d", "files", "-c", &cfg, "-t", "my_topic", "-b", "0"],
            "batch-size",
        ),
        (
            PRODUCER,
            vec![
                "-d",
                "files",
                "-c",
                &cfg,
                "-t",
                "my_topic",
                "-s",
                "99999999999999",
            ],
            "not a size from 0 to 1073741824",
        ),
        (
            CONSUMER,
            vec![
                "-d",
                "files",
                "-c",
                &cfg,
                "-t",
                "my_topic",
                "--idle-timeout",
                "1e300",
            ],
            "at most one year",
        ),
    ];
    for (exe, args, needle) in cases {
        let (code, out, err) = run(exe, &args);
        assert_ne!(code, 0, "{args:?} should fail:\n{out}");
        assert!(
            err.contains(needle),
            "{args:?}: stderr lacks {needle:?}:\n{err}"
        );
    }
    // A config file that is not JSON.
    let bad = _dir.path().join("bad.json");
    std::fs::write(&bad, "{oops").unwrap();
    let (code, _, err) = run(
        PRODUCER,
        &["-d", "files", "-c", bad.to_str().unwrap(), "-t", "my_topic"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("not valid JSON"), "{err}");
}

#[test]
fn producer_on_the_memory_driver_creates_its_topic_in_process() {
    // Memory topics live in one process: the program makes its own, of the given name.
    #[rustfmt::skip]
    let args = ["-d", "memory", "-t", "in-memory", "-n", "500", "-s", "64", "-b", "16", "-p", "1"];
    let (code, out, err) = run(PRODUCER, &args);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(field(&out, "Topic"), "in-memory");
    let rate: f64 = field(&out, "Throughput")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rate > 0.0, "{out}");
}
