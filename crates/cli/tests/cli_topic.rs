//! `diaspora-ctl` dispatch and `topic create | list | info`, run as a real binary: the 12
//! checks of the reference's `test-diaspora-ctl.sh` plus option layering, value typing and bad
//! inputs.

#[path = "cli_support/mod.rs"]
mod support;

use serde_json::Value;
use support::*;

fn root_args(dir: &tempfile::TempDir) -> Vec<String> {
    files(&dir.path().join("root"))
}

// ---- reference test-diaspora-ctl.sh ----

#[test]
fn ref01_help_exits_zero_for_every_command() {
    for args in [
        vec!["--help"],
        vec!["-h"],
        vec!["--version"],
        vec!["topic", "--help"],
        vec!["topic", "create", "--help"],
        vec!["topic", "list", "--help"],
        vec!["topic", "info", "--help"],
        vec!["produce", "--help"],
        vec!["consume", "--help"],
        vec!["fifo", "--help"],
        vec!["forward", "--help"],
    ] {
        let o = ctl(&args);
        assert_ok(&o);
        assert!(!stdout(&o).is_empty(), "{args:?} printed nothing");
    }
    let top = stdout(&ctl(&["--help"]));
    for cmd in ["topic", "produce", "consume", "fifo", "forward"] {
        assert!(top.contains(cmd), "usage lacks {cmd}:\n{top}");
    }
    let create = stdout(&ctl(&["topic", "create", "--help"]));
    for opt in ["--driver.", "--topic.", "--validator", "--topic-config"] {
        assert!(create.contains(opt), "create help lacks {opt}");
    }
}

#[test]
fn ref02_create_makes_the_topic_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = root_args(&dir);
    let o = ctl(&join(&d, &["topic", "create", "--name", "test-topic-1"]));
    assert_ok(&o);
    assert!(dir.path().join("root/test-topic-1").is_dir());
    assert!(stdout(&o).is_empty(), "logs must not go to stdout");
}

#[test]
fn ref03_num_partitions_creates_partition_directories() {
    let dir = tempfile::tempdir().unwrap();
    let d = root_args(&dir);
    let o = ctl(&join(
        &d,
        &[
            "topic",
            "create",
            "--name",
            "t",
            "--topic.num_partitions",
            "4",
        ],
    ));
    assert_ok(&o);
    for p in 0..4 {
        assert!(dir
            .path()
            .join(format!("root/t/partitions/{p:08}"))
            .is_dir());
    }
    assert!(!dir.path().join("root/t/partitions/00000004").exists());
}

#[test]
fn ref04_config_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("from-file");
    let dcfg = dir.path().join("driver.json");
    let tcfg = dir.path().join("topic.json");
    std::fs::write(&dcfg, serde_json::json!({"root_path": root}).to_string()).unwrap();
    std::fs::write(&tcfg, r#"{"num_partitions": 2}"#).unwrap();
    let o = ctl(&[
        "topic",
        "create",
        "--driver",
        "files",
        "--driver-config",
        dcfg.to_str().unwrap(),
        "--topic-config",
        tcfg.to_str().unwrap(),
        "--name",
        "cfg",
    ]);
    assert_ok(&o);
    assert!(root.join("cfg/partitions/00000000").is_dir());
    assert!(root.join("cfg/partitions/00000001").is_dir());
    assert!(!root.join("cfg/partitions/00000002").exists());
}

#[test]
fn ref05_component_files_are_valid_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = root_args(&dir);
    assert_ok(&ctl(&join(&d, &["topic", "create", "--name", "t"])));
    for f in [
        "validator.json",
        "serializer.json",
        "partition-selector.json",
    ] {
        let text = std::fs::read_to_string(dir.path().join("root/t").join(f)).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(v["type"], "default", "{f}");
    }
}

#[test]
fn ref06_nested_topic_options_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let d = root_args(&dir);
    let o = ctl(&join(
        &d,
        &[
            "topic",
            "create",
            "--name",
            "nested",
            "--topic.config.option1",
            "value1",
        ],
    ));
    assert_ok(&o);
    assert!(dir.path().join("root/nested").is_dir());
}

#[test]
fn ref07_missing_driver_or_name_fails() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let o = ctl(&[
        "topic",
        "create",
        "--driver.root_path",
        root.to_str().unwrap(),
        "--name",
        "t",
    ]);
    assert_fails_with(&o, &["--driver"]);
    let o = ctl(&join(&root_args(&dir), &["topic", "create"]));
    assert_fails_with(&o, &["--name"]);
    assert!(!root.join("t").exists());
}

#[test]
fn ref08_duplicate_create_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = root_args(&dir);
    assert_ok(&ctl(&join(&d, &["topic", "create", "--name", "dup"])));
    let o = ctl(&join(&d, &["topic", "create", "--name", "dup"]));
    assert_fails_with(&o, &["\"dup\" already exists"]);
}

#[test]
fn ref09_three_topics_make_three_directories() {
    let dir = tempfile::tempdir().unwrap();
    let d = root_args(&dir);
    for t in ["a", "b", "c"] {
        assert_ok(&ctl(&join(&d, &["topic", "create", "--name", t])));
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("root"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn ref10_list_prints_one_line_per_topic() {
    let dir = tempfile::tempdir().unwrap();
    let d = root_args(&dir);
    for t in ["list-topic-1", "list-topic-2"] {
        assert_ok(&ctl(&join(&d, &["topic", "create", "--name", t])));
    }
    let o = ctl(&join(&d, &["topic", "list"]));
    assert_ok(&o);
    let out = stdout(&o);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["list-topic-1", "list-topic-2"]);
}

#[test]
fn ref11_list_verbose_prints_json_documents() {
    let dir = tempfile::tempdir().unwrap();
    let d = root_args(&dir);
    assert_ok(&ctl(&join(
        &d,
        &[
            "topic",
            "create",
            "--name",
            "v",
            "--topic.num_partitions",
            "3",
        ],
    )));
    let o = ctl(&join(&d, &["topic", "list", "--verbose"]));
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains('{') && out.contains("num_partitions") && out.contains("validator"));
    let docs: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["name"], "v");
    assert_eq!(docs[0]["num_partitions"], 3);
    assert_eq!(docs[0]["serializer"]["type"], "default");
}

#[test]
fn ref12_list_of_an_empty_root_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = ctl(&join(&root_args(&dir), &["topic", "list"]));
    assert_ok(&o);
    assert_eq!(stdout(&o), "");
}

// ---- dispatch ----

#[test]
fn no_or_unknown_command_fails_with_usage() {
    let o = ctl(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Usage"), "{}", stderr(&o));
    let o = ctl(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("frobnicate"));
    let o = ctl(&["topic"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Usage"));
    let o = ctl(&["topic", "delete"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("delete"));
    let o = ctl(&["topic", "list", "--driver", "files", "--bogus"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--bogus"));
}

// ---- options ----

#[test]
fn command_line_overrides_config_files() {
    let dir = tempfile::tempdir().unwrap();
    let file_root = dir.path().join("file-root");
    let cli_root = dir.path().join("cli-root");
    let dcfg = dir.path().join("driver.json");
    let tcfg = dir.path().join("topic.json");
    std::fs::write(
        &dcfg,
        serde_json::json!({"root_path": file_root, "flush_behavior": "on_flush"}).to_string(),
    )
    .unwrap();
    std::fs::write(&tcfg, r#"{"num_partitions": 2}"#).unwrap();
    let o = ctl(&[
        "topic",
        "create",
        "--driver",
        "files",
        "--driver-config",
        dcfg.to_str().unwrap(),
        "--driver.root_path",
        cli_root.to_str().unwrap(),
        "--topic-config",
        tcfg.to_str().unwrap(),
        "--topic.num_partitions=3",
        "--name",
        "t",
    ]);
    assert_ok(&o);
    assert!(!file_root.join("t").exists());
    assert!(cli_root.join("t/partitions/00000002").is_dir());
}

#[test]
fn true_and_false_are_booleans() {
    let dir = tempfile::tempdir().unwrap();
    let d = root_args(&dir);
    // use_file_locking must be a JSON boolean for the files driver.
    assert_ok(&ctl(&join(
        &d,
        &[
            "topic",
            "create",
            "--name",
            "b",
            "--driver.use_file_locking",
            "false",
        ],
    )));
    let o = ctl(&join(
        &d,
        &[
            "topic",
            "create",
            "--name",
            "c",
            "--driver.use_file_locking",
            "yes",
        ],
    ));
    assert_fails_with(&o, &["use_file_locking", "boolean"]);
}

#[test]
fn bad_config_files_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"root_path\": ").unwrap();
    let arr = dir.path().join("array.json");
    std::fs::write(&arr, "[1, 2]").unwrap();
    let missing = dir.path().join("missing.json");
    for (file, needles) in [
        (&bad, vec!["driver config", "bad.json", "not valid JSON"]),
        (&arr, vec!["array.json", "JSON object"]),
        (&missing, vec!["cannot read", "missing.json"]),
    ] {
        let o = ctl(&[
            "topic",
            "list",
            "--driver",
            "files",
            "--driver-config",
            file.to_str().unwrap(),
        ]);
        assert_fails_with(&o, &needles);
    }
    let d = root_args(&dir);
    let o = ctl(&join(
        &d,
        &[
            "topic",
            "create",
            "--name",
            "t",
            "--topic-config",
            bad.to_str().unwrap(),
        ],
    ));
    assert_fails_with(&o, &["topic config", "not valid JSON"]);
    assert!(!dir.path().join("root/t").exists());
}

#[test]
fn unknown_driver_fails() {
    let o = ctl(&["topic", "list", "--driver", "kafka-nope"]);
    assert_fails_with(&o, &["unknown driver", "kafka-nope", "files"]);
}

#[test]
fn bad_driver_option_values_fail() {
    let dir = tempfile::tempdir().unwrap();
    let d = root_args(&dir);
    let o = ctl(&join(
        &d,
        &["topic", "list", "--driver.flush_behavior", "sometimes"],
    ));
    assert_fails_with(&o, &["flush_behavior"]);
    let o = ctl(&join(
        &d,
        &[
            "topic",
            "create",
            "--name",
            "t",
            "--topic.num_partitions",
            "zero",
        ],
    ));
    assert_fails_with(&o, &["num_partitions"]);
}

#[test]
fn hierarchical_option_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = root_args(&dir);
    // A value is required.
    let o = ctl(&["topic", "list", "--driver", "files", "--driver.root_path"]);
    assert_fails_with(&o, &["--driver.root_path", "needs a value"]);
    // Topic options mean nothing to `topic list`.
    let o = ctl(&join(&d, &["topic", "list", "--topic.num_partitions", "2"]));
    assert_fails_with(&o, &["--topic.num_partitions", "topic list"]);
    // Malformed JSON value.
    let o = ctl(&join(
        &d,
        &["topic", "create", "--name", "t", "--topic.x", "{oops"],
    ));
    assert_fails_with(&o, &["--topic.x", "JSON"]);
}

#[test]
fn schema_validator_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let d = files(&root);
    let o = ctl(&join(
        &d,
        &[
            "topic",
            "create",
            "--name",
            "checked",
            "--validator",
            "schema",
            "--validator.schema",
            r#"{"type":"object","required":["step"]}"#,
        ],
    ));
    assert_ok(&o);
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("checked/validator.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(v["type"], "schema");
    assert_eq!(v["schema"]["required"][0], "step");
    // The validator is applied by produce: line 2 is rejected, line 1 is stored.
    let o = ctl_input(
        &join(&d, &["produce", "--topic", "checked"]),
        "{\"metadata\":{\"step\":1}}\n{\"metadata\":{\"nostep\":1}}\n",
    );
    assert_fails_with(&o, &["line 2", "validator"]);
    assert_eq!(stdout(&o).trim(), "1");
    assert_eq!(count_events(&root, "checked"), 1);
}

#[test]
fn component_options_need_a_type_and_a_known_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = root_args(&dir);
    let o = ctl(&join(
        &d,
        &["topic", "create", "--name", "t", "--validator.x", "1"],
    ));
    assert_fails_with(&o, &["validator", "type"]);
    let o = ctl(&join(
        &d,
        &["topic", "create", "--name", "t", "--serializer", "nope"],
    ));
    assert_fails_with(&o, &["serializer", "nope"]);
    let o = ctl(&join(
        &d,
        &["topic", "create", "--name", "t", "--validator", "schema"],
    ));
    assert_fails_with(&o, &["validator", "schema"]);
    // Component config files, with the type inside.
    let vcfg = dir.path().join("v.json");
    std::fs::write(
        &vcfg,
        r#"{"type": "eventbridge", "schema": {"kind": ["a"]}}"#,
    )
    .unwrap();
    let o = ctl(&join(
        &d,
        &[
            "topic",
            "create",
            "--name",
            "eb",
            "--validator-config",
            vcfg.to_str().unwrap(),
            "--partition-selector",
            "default",
            "--serializer",
            "default",
        ],
    ));
    assert_ok(&o);
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("root/eb/validator.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(v["type"], "eventbridge");
    assert!(!dir.path().join("root/t").exists());
}

#[test]
fn bad_topic_names_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let d = root_args(&dir);
    for name in ["../escape", "a/b", ""] {
        let o = ctl(&join(&d, &["topic", "create", "--name", name]));
        assert_fails_with(&o, &["topic name"]);
    }
    assert!(!dir.path().join("escape").exists());
}

#[test]
fn topic_info_reports_events_bytes_and_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "info", 2);
    let mut input = String::new();
    for i in 0..5u64 {
        input.push_str(&format!(
            "{{\"metadata\":{{\"i\":{i}}},\"data\":\"AAAA\",\"partition\":{}}}\n",
            i % 2
        ));
    }
    assert_eq!(produce(&root, "info", &input), 5);
    let d = files(&root);
    // A named consumer acknowledges the first 2 events (both in partition 0 or spread).
    let o = ctl(&join(
        &d,
        &[
            "consume",
            "--topic",
            "info",
            "--consumer",
            "ana/1",
            "--ack",
            "--partitions",
            "0",
            "--max",
            "2",
        ],
    ));
    assert_ok(&o);
    assert_eq!(parse_events(&stdout(&o)).len(), 2);
    let o = ctl(&join(&d, &["topic", "info", "info"]));
    assert_ok(&o);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["name"], "info");
    assert_eq!(v["driver"], "files");
    assert_eq!(v["num_partitions"], 2);
    assert_eq!(v["events"], 5);
    assert_eq!(v["partitions"][0]["events"], 3);
    assert_eq!(v["partitions"][1]["events"], 2);
    assert_eq!(v["partitions"][0]["bytes"]["data"], 9);
    assert_eq!(v["partitions"][0]["bytes"]["index"], 96);
    assert_eq!(v["validator"]["type"], "default");
    assert_eq!(v["consumers"]["ana/1"]["next"], serde_json::json!([2, 0]));
    assert_eq!(
        v["consumers"]["ana/1"]["pending"],
        serde_json::json!([1, 2])
    );
}

#[test]
fn topic_info_of_a_missing_topic_fails() {
    let dir = tempfile::tempdir().unwrap();
    let o = ctl(&join(&root_args(&dir), &["topic", "info", "ghost"]));
    assert_fails_with(&o, &["topic \"ghost\" does not exist"]);
    let o = ctl(&join(&root_args(&dir), &["topic", "info"]));
    assert_fails_with(&o, &["TOPIC"]);
}
