//! `diaspora-ctl export` and `import` (feature `hdf5`), run as a real binary: a round trip of
//! varied metadata and data through a file and back into topics (whole, renamed, into another
//! root, a subset appended), and errors that exit 1 without creating anything. The library's
//! export and import are tested in the root's `tests/hdf5_roundtrip.rs`.
#![cfg(feature = "hdf5")]

#[path = "cli_support/mod.rs"]
mod support;

#[path = "../../../tests/support/varied_events.rs"]
mod varied_events;
use diaspora_stream::hdf5::hdf5 as h5;
use serde_json::{json, Value};
use std::path::Path;
use support::{assert_fails_with, assert_ok, ctl, ctl_input, stdout};
use varied_events::{bytes, varied_metadata, varied_size};

/// Opens a file with the hdf5 crate, without HDF5's file locks (a `diaspora-ctl` started by
/// another test thread would inherit the descriptor and keep the lock; see `file_options` in
/// src/hdf5/layout.rs).
fn h5_file(path: &Path, mode: h5::OpenMode) -> h5::File {
    h5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open_as(path, mode)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn root_args(root: &Path) -> Vec<String> {
    vec![
        "--driver".into(),
        "files".into(),
        "--driver.root_path".into(),
        root.display().to_string(),
    ]
}

fn run(root: &Path, args: &[&str]) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(root_args(root));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    ctl(&refs)
}

fn consume_all(root: &Path, topic: &str) -> Vec<Value> {
    let o = run(root, &["consume", "--topic", topic]);
    assert_ok(&o);
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn cli_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("topics");
    let o = run(
        &root,
        &[
            "topic",
            "create",
            "--name",
            "steps",
            "--topic.num_partitions",
            "3",
        ],
    );
    assert_ok(&o);
    use base64::prelude::*;
    let mut input = String::new();
    for i in 0..30 {
        let line = json!({
            "metadata": varied_metadata(i),
            "data": BASE64_STANDARD.encode(bytes(varied_size(i) % 70_000, i as u64)),
            "partition": i % 3,
        });
        input.push_str(&line.to_string());
        input.push('\n');
    }
    let mut all: Vec<String> = vec!["produce".into(), "--topic".into(), "steps".into()];
    all.extend(root_args(&root));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let o = ctl_input(&refs, &input);
    assert_ok(&o);
    assert_eq!(stdout(&o).trim(), "30");

    let file = dir.path().join("steps.h5");
    let file_s = file.display().to_string();
    let o = run(
        &root,
        &[
            "export", "--topic", "steps", "--format", "hdf5", "--output", &file_s,
        ],
    );
    assert_ok(&o);
    let summary: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(summary["events"], 30);
    assert_eq!(summary["topic"], "steps");
    assert_eq!(summary["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(summary["partitions"][1]["events"], 10);

    let o = run(&root, &["import", "--input", &file_s, "--topic", "copy"]);
    assert_ok(&o);
    let summary: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(summary["events"], 30);
    assert_eq!(summary["created"], true);
    assert_eq!(summary["ids_preserved"], true);
    assert_eq!(consume_all(&root, "copy"), consume_all(&root, "steps"));

    // Without --topic the name recorded in the file is used, into another driver root.
    let other = dir.path().join("other");
    let o = run(&other, &["import", "-i", &file_s]);
    assert_ok(&o);
    assert_eq!(consume_all(&other, "steps"), consume_all(&root, "steps"));

    // A subset, then appended to the copy.
    let part = dir.path().join("part.h5");
    let part_s = part.display().to_string();
    let o = run(
        &root,
        &[
            "export",
            "--topic",
            "steps",
            "-o",
            &part_s,
            "--partitions",
            "1",
            "--ids",
            "2..=4",
        ],
    );
    assert_ok(&o);
    let summary: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(summary["events"], 3);
    let o = run(
        &root,
        &["import", "-i", &part_s, "--topic", "copy", "--append"],
    );
    assert_ok(&o);
    let summary: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(summary["created"], false);
    assert_eq!(summary["ids_preserved"], false);
    let copy = consume_all(&root, "copy");
    assert_eq!(copy.len(), 33);
    let help = ctl(&["export", "--help"]);
    assert_ok(&help);
    assert!(stdout(&help).contains("--ids"));
}

#[test]
fn cli_errors_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("topics");
    assert_ok(&run(
        &root,
        &[
            "topic",
            "create",
            "--name",
            "t",
            "--topic.num_partitions",
            "2",
        ],
    ));
    let file = dir.path().join("t.h5");
    let file_s = file.display().to_string();

    let o = run(&root, &["export", "--topic", "missing", "-o", &file_s]);
    assert_fails_with(&o, &["topic \"missing\" does not exist"]);
    assert!(!file.exists());
    let o = run(
        &root,
        &["export", "--topic", "t", "-o", &file_s, "--ids", "9..3"],
    );
    assert_fails_with(&o, &["--ids", "9..3"]);
    let o = run(
        &root,
        &["export", "--topic", "t", "-o", &file_s, "--ids", "abc"],
    );
    assert_fails_with(&o, &["invalid id range"]);
    let o = run(
        &root,
        &["export", "--topic", "t", "-o", &file_s, "--partitions", "5"],
    );
    assert_fails_with(&o, &["partition 5 is out of range"]);
    let o = run(
        &root,
        &["export", "--topic", "t", "-o", &file_s, "--format", "csv"],
    );
    assert_eq!(o.status.code(), Some(1));
    let o = run(
        &root,
        &["export", "--topic", "t", "-o", &file_s, "--topic.x", "1"],
    );
    assert_fails_with(&o, &["--topic.x", "not accepted"]);

    assert_ok(&run(&root, &["export", "--topic", "t", "-o", &file_s]));
    let o = run(&root, &["export", "--topic", "t", "-o", &file_s]);
    assert_fails_with(&o, &["already exists", "t.h5"]);
    assert_ok(&run(
        &root,
        &["export", "--topic", "t", "-o", &file_s, "--force"],
    ));

    let o = run(&root, &["import", "-i", &file_s]);
    assert_fails_with(&o, &["topic \"t\" already exists", "--append"]);
    let o = run(
        &root,
        &["import", "-i", &format!("{file_s}.missing"), "--topic", "u"],
    );
    assert_fails_with(&o, &["t.h5.missing"]);
    let junk = dir.path().join("junk.h5");
    std::fs::write(&junk, "{}").unwrap();
    let o = run(
        &root,
        &["import", "-i", &junk.display().to_string(), "--topic", "u"],
    );
    assert_fails_with(&o, &["junk.h5", "hdf5"]);
    let foreign = dir.path().join("foreign.h5");
    h5_file(&foreign, h5::OpenMode::Create);
    let o = run(
        &root,
        &[
            "import",
            "-i",
            &foreign.display().to_string(),
            "--topic",
            "u",
        ],
    );
    assert_fails_with(&o, &["foreign.h5", "not a diaspora-stream export"]);
    let o = run(
        &root,
        &["import", "-i", &file_s, "--topic", "u", "--partitions", "7"],
    );
    assert_fails_with(&o, &["partition 7"]);
    // Nothing was created by the failures.
    let o = run(&root, &["topic", "list"]);
    assert_ok(&o);
    assert_eq!(stdout(&o).trim(), "t");
}
