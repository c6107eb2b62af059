//! Collective HDF5 export under MPI (features `mpi` and `hdf5`, parallel HDF5): `mpiexec -n 3`
//! on the real `diaspora-ctl export --mpi`, then the single file is checked event by event and
//! imported back.
//!
//! The launcher is `$DIASPORA_MPIEXEC` (default `mpiexec`); it must belong to the MPI the crate
//! was built against, which every rank shows by logging `rank r/3`.
#![cfg(all(feature = "mpi", feature = "hdf5"))]

use diaspora_stream::hdf5::{import_file, ExportFile, ImportOptions};
use diaspora_stream::{DataView, Driver, TopicHandle};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_diaspora-ctl");

type Stored = (u64, Value, Vec<u8>);

fn read_partition(topic: &TopicHandle, p: usize) -> Vec<Stored> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let events = topic.backend().fetch(p, from, 64, true).unwrap();
        let Some(last) = events.last() else {
            return out;
        };
        from = last.id + 1;
        for ev in events {
            let md = topic.serializer().deserialize(&ev.metadata).unwrap();
            let mut buf = vec![0u8; ev.data_size as usize];
            topic
                .backend()
                .read_data(p, &ev, &[(0, ev.data_size)], &mut [&mut buf[..]])
                .unwrap();
            out.push((ev.id, md.into_json(), buf));
        }
    }
}

/// A topic of 5 partitions with varied metadata and data up to 1 MiB.
fn make_topic(root: &Path) -> (Driver, TopicHandle) {
    let driver = Driver::new("files", &json!({"root_path": root})).unwrap();
    driver
        .create_topic("sim", &json!({"num_partitions": 5}))
        .unwrap();
    let topic = driver.open_topic("sim").unwrap();
    let producer = topic.producer().build().unwrap();
    for i in 0..47usize {
        let size = [0, 3, 1000, 1 << 20, 17][i % 5];
        let data: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
        let md = json!({"step": i, "rank": i % 3, "t": i as f64 * 0.1, "name": "ünïcödé", "big": u64::MAX - i as u64});
        producer.push_to(md, DataView::from(data), i % 5);
    }
    producer.flush().wait().unwrap();
    producer.end_of_stream(0, 1).wait().unwrap();
    (driver, topic)
}

fn mpiexec(n: usize, work: &Path, args: &[&str]) -> (bool, String, String) {
    let launcher = std::env::var("DIASPORA_MPIEXEC").unwrap_or_else(|_| "mpiexec".into());
    let out = Command::new(&launcher)
        .arg("-n")
        .arg(n.to_string())
        .arg(BIN)
        .args(args)
        .current_dir(work)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("OMPI_MCA_btl", "self,vader")
        .env("OMPI_MCA_oob_tcp_if_include", "lo")
        // A session folder of its own: concurrent jobs race to create the shared one.
        .env("OMPI_MCA_orte_tmpdir_base", work)
        .output()
        .unwrap_or_else(|e| panic!("could not run {launcher}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_every_rank_sees(stderr: &str, n: usize) {
    for r in 0..n {
        assert!(
            stderr.contains(&format!("rank {r}/{n}:")),
            "rank {r} did not report a world of {n} ranks (wrong launcher?):\n{stderr}"
        );
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect()
}

#[test]
fn three_ranks_export_every_partition_into_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("topics");
    let (driver, topic) = make_topic(&root);
    let before: Vec<Vec<Stored>> = (0..5).map(|p| read_partition(&topic, p)).collect();
    let out = dir.path().join("sim.h5");
    let root_s = root.display().to_string();
    let out_s = out.display().to_string();
    let (ok, stdout, stderr) = mpiexec(
        3,
        dir.path(),
        &[
            "export",
            "--mpi",
            "--driver",
            "files",
            "--driver.root_path",
            &root_s,
            "--topic",
            "sim",
            "--output",
            &out_s,
            "--batch-size",
            "4",
        ],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert_every_rank_sees(&stderr, 3);
    // Only rank 0 prints the summary.
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["ranks"], 3);
    assert_eq!(summary["events"], 47 + 5);
    assert!(leftovers(dir.path()).is_empty());

    let file = ExportFile::open(&out).unwrap();
    let info = file.info();
    assert_eq!(info.topic, "sim");
    assert_eq!(info.num_partitions, 5);
    assert_eq!(
        info.partitions
            .iter()
            .map(|p| p.partition)
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    for (p, events) in before.iter().enumerate() {
        file.check_partition(p).unwrap();
        let read = file.read_events(p, 0..events.len() as u64).unwrap();
        assert_eq!(read.len(), events.len());
        for (r, e) in read.iter().zip(events) {
            assert_eq!((r.id, r.metadata.json(), &r.data), (e.0, &e.1, &e.2));
        }
    }
    drop(file);
    let summary = import_file(&out, &driver, "copy", &ImportOptions::default()).unwrap();
    assert!(summary.ids_preserved);
    let copy = driver.open_topic("copy").unwrap();
    for (p, events) in before.iter().enumerate() {
        assert_eq!(&read_partition(&copy, p), events, "partition {p}");
    }
}

#[test]
fn ranks_without_partitions_and_errors_on_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("topics");
    let (_driver, topic) = make_topic(&root);
    let before: Vec<Vec<Stored>> = (0..5).map(|p| read_partition(&topic, p)).collect();
    let out = dir.path().join("part.h5");
    let root_s = root.display().to_string();
    let out_s = out.display().to_string();
    // Two partitions for three ranks: rank 2 owns none but still takes part.
    let args = [
        "export",
        "--mpi",
        "--driver",
        "files",
        "--driver.root_path",
        &root_s,
        "--topic",
        "sim",
        "--output",
        &out_s,
        "--partitions",
        "3,1",
        "--ids",
        "2..5",
    ];
    let (ok, stdout, stderr) = mpiexec(3, dir.path(), &args);
    assert!(ok, "{stdout}\n{stderr}");
    assert_every_rank_sees(&stderr, 3);
    let file = ExportFile::open(&out).unwrap();
    assert_eq!(
        file.info()
            .partitions
            .iter()
            .map(|p| (p.partition, p.events))
            .collect::<Vec<_>>(),
        vec![(1, 3), (3, 3)]
    );
    for p in [1, 3] {
        let read = file.read_events(p, 0..3).unwrap();
        for (r, e) in read.iter().zip(&before[p][2..5]) {
            assert_eq!((r.id, r.metadata.json(), &r.data), (e.0, &e.1, &e.2));
        }
    }
    drop(file);
    let size = std::fs::metadata(&out).unwrap().len();

    // The file exists now: every rank fails the same way and the file is left alone.
    let (ok, _, stderr) = mpiexec(3, dir.path(), &args);
    assert!(!ok);
    // (mpiexec stops the other ranks once one exits with an error, so not every rank may
    // have printed it.)
    assert!(
        stderr.contains("part.h5 already exists (give --force"),
        "{stderr}"
    );
    assert_eq!(std::fs::metadata(&out).unwrap().len(), size);
    // A bad partition list and a missing topic fail on every rank too.
    let other = dir.path().join("other.h5").display().to_string();
    let mut bad = args;
    bad[9] = &other;
    bad[11] = "1,9";
    let (ok, _, stderr) = mpiexec(3, dir.path(), &bad);
    assert!(!ok);
    assert!(stderr.contains("partition 9 is out of range"), "{stderr}");
    let mut missing = args;
    missing[7] = "nope";
    missing[9] = &other;
    let (ok, _, stderr) = mpiexec(3, dir.path(), &missing);
    assert!(!ok);
    assert!(stderr.contains("\"nope\" does not exist"), "{stderr}");
    assert!(leftovers(dir.path()).is_empty());
}
