//! `diaspora-ctl produce` and `consume`, run as a real binary.

#[path = "cli_support/mod.rs"]
mod support;

use support::*;

#[test]
fn produce_then_consume_round_trips_metadata_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "rt", 3);
    let mut input = String::new();
    for i in 0..30u64 {
        input.push_str(&line_with(i, &data_for(i)));
    }
    // A blank line, a line without data and one with non-object metadata.
    input.push('\n');
    input.push_str("{\"metadata\": [1, \"two\", null], \"partition\": 2}\n");
    input.push_str("{\"metadata\": \"just text\", \"data\": null}\n");
    assert_eq!(produce(&root, "rt", &input), 32);
    let events = consume_all(&root, "rt");
    assert_eq!(events.len(), 32);
    let mut seen: Vec<u64> = Vec::new();
    for e in &events {
        if let Some(i) = e.metadata.get("i").and_then(|v| v.as_u64()) {
            assert_eq!(e.data, data_for(i), "data of event {i}");
            seen.push(i);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..30).collect::<Vec<_>>());
    assert!(events
        .iter()
        .any(|e| e.partition == 2 && e.metadata == serde_json::json!([1, "two", null])));
    assert!(events
        .iter()
        .any(|e| e.metadata == "just text" && e.data.is_empty()));
    // Ids are dense per partition and events of a partition come in order.
    for p in 0..3 {
        let ids: Vec<u64> = events
            .iter()
            .filter(|e| e.partition == p)
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
    }
}

#[test]
fn produce_with_fixed_batches_and_explicit_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "fixed", 2);
    let mut input = String::new();
    for i in 0..10u64 {
        input.push_str(&format!(
            "{{\"metadata\":{{\"i\":{i}}},\"partition\":{}}}\n",
            i % 2
        ));
    }
    let d = files(&root);
    let o = ctl_input(
        &join(&d, &["produce", "--topic", "fixed", "--batch-size", "3"]),
        &input,
    );
    assert_ok(&o);
    assert_eq!(stdout(&o).trim(), "10");
    let events = consume_all(&root, "fixed");
    for e in &events {
        assert_eq!(e.metadata["i"].as_u64().unwrap() % 2, e.partition);
    }
    let o = ctl_input(
        &join(&d, &["produce", "--topic", "fixed", "--batch-size", "zero"]),
        "",
    );
    assert_fails_with(&o, &["batch size"]);
}

#[test]
fn a_bad_line_stops_produce_after_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "bad", 1);
    let bad_lines = [
        ("{\"metadata\": {\"i\": 3}", "invalid JSON"),
        ("[1, 2]", "JSON object"),
        ("{\"data\": \"AAAA\"}", "missing \"metadata\""),
        ("{\"metadata\": 1, \"data\": \"@@@\"}", "base64"),
        ("{\"metadata\": 1, \"data\": 12}", "base64 string"),
        ("{\"metadata\": 1, \"partition\": 1}", "out of range"),
        ("{\"metadata\": 1, \"partition\": \"0\"}", "partition"),
        ("{\"metadata\": 1, \"extra\": true}", "unknown key"),
    ];
    let mut total = 0;
    for (k, (bad, why)) in bad_lines.iter().enumerate() {
        let input = format!(
            "{}\n{}\n{bad}\n{}",
            line_with(100 + k as u64, b"ok").trim_end(),
            line_with(200 + k as u64, b"ok").trim_end(),
            line_with(999, b"after"),
        );
        let d = files(&root);
        let o = ctl_input(&join(&d, &["produce", "--topic", "bad"]), &input);
        assert_fails_with(&o, &["line 3", why, "2 event(s)"]);
        assert_eq!(stdout(&o).trim(), "2", "count of the good lines");
        total += 2;
        let events = consume_all(&root, "bad");
        assert_eq!(events.len(), total, "after bad line {bad}");
        assert!(events.iter().all(|e| e.metadata["i"] != 999));
    }
}

#[test]
fn produce_and_consume_fail_on_missing_topics_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let d = files(&root);
    let o = ctl_input(&join(&d, &["produce", "--topic", "nope"]), "");
    assert_fails_with(&o, &["topic \"nope\" does not exist"]);
    let o = ctl(&join(&d, &["consume", "--topic", "nope"]));
    assert_fails_with(&o, &["topic \"nope\" does not exist"]);
    let o = ctl_input(&join(&d, &["produce"]), "");
    assert_fails_with(&o, &["--topic"]);
    let o = ctl(&["consume", "--topic", "x"]);
    assert_fails_with(&o, &["--driver"]);
    create_topic(&root, "t", 2);
    let o = ctl(&join(
        &d,
        &["consume", "--topic", "t", "--partitions", "0,5"],
    ));
    assert_fails_with(&o, &["partition 5", "out of range"]);
    let o = ctl(&join(
        &d,
        &["consume", "--topic", "t", "--partitions", "1,1"],
    ));
    assert_fails_with(&o, &["listed twice"]);
    let o = ctl(&join(&d, &["consume", "--topic", "t", "--ack"]));
    assert_fails_with(&o, &["--ack", "--consumer"]);
    let o = ctl(&join(&d, &["consume", "--topic", "t", "--partitions", "x"]));
    assert_fails_with(&o, &["--partitions"]);
}

#[test]
fn consume_selects_partitions_and_stops_at_max() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "sel", 3);
    let mut input = String::new();
    for i in 0..12u64 {
        input.push_str(&format!(
            "{{\"metadata\":{{\"i\":{i}}},\"partition\":{}}}\n",
            i % 3
        ));
    }
    assert_eq!(produce(&root, "sel", &input), 12);
    let d = files(&root);
    let o = ctl(&join(
        &d,
        &["consume", "--topic", "sel", "--partitions", "0,2"],
    ));
    assert_ok(&o);
    let events = parse_events(&stdout(&o));
    assert_eq!(events.len(), 8);
    assert!(events.iter().all(|e| e.partition != 1));
    let o = ctl(&join(
        &d,
        &[
            "consume",
            "--topic",
            "sel",
            "--partitions",
            "1",
            "--max",
            "3",
        ],
    ));
    assert_ok(&o);
    let events = parse_events(&stdout(&o));
    assert_eq!(
        events.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn consume_with_ack_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "resume", 2);
    let mut input = String::new();
    for i in 0..20u64 {
        input.push_str(&line_with(i, &data_for(i)));
    }
    assert_eq!(produce(&root, "resume", &input), 20);
    let d = files(&root);
    let args = ["consume", "--topic", "resume", "--consumer", "me", "--ack"];
    let mut first = args.to_vec();
    first.extend(["--max", "7"]);
    let o = ctl(&join(&d, &first));
    assert_ok(&o);
    let a = parse_events(&stdout(&o));
    assert_eq!(a.len(), 7);
    // Without --ack the position does not move.
    let o = ctl(&join(
        &d,
        &[
            "consume",
            "--topic",
            "resume",
            "--consumer",
            "me",
            "--max",
            "2",
        ],
    ));
    assert_ok(&o);
    let o = ctl(&join(&d, &args));
    assert_ok(&o);
    let b = parse_events(&stdout(&o));
    assert_eq!(b.len(), 13);
    let mut all: Vec<u64> = a
        .iter()
        .chain(b.iter())
        .map(|e| e.metadata["i"].as_u64().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..20).collect::<Vec<_>>());
    // Everything is acknowledged now.
    let o = ctl(&join(&d, &args));
    assert_ok(&o);
    assert_eq!(stdout(&o), "");
}

#[test]
fn consume_follow_prints_new_events_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "live", 1);
    assert_eq!(produce(&root, "live", &line_with(0, b"zero")), 1);
    let d = files(&root);
    let mut follower = Proc::start_piped(
        &join(&d, &["consume", "--topic", "live", "--follow"]),
        dir.path(),
        "follow",
    );
    let out = follower.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let first = recv_lines(&rx, 1);
    assert_eq!(parse_events(&first[0])[0].data, b"zero");
    let mut more = String::new();
    for i in 1..5u64 {
        more.push_str(&line_with(i, &data_for(i)));
    }
    assert_eq!(produce(&root, "live", &more), 4);
    let lines = recv_lines(&rx, 4);
    for (k, l) in lines.iter().enumerate() {
        let e = &parse_events(l)[0];
        assert_eq!(e.id, k as u64 + 1);
        assert_eq!(e.data, data_for(k as u64 + 1));
    }
    follower.terminate_ok();
}

#[test]
fn consume_from_starts_where_it_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "from", 1);
    let lines: String = (0..5u64).map(|i| line_with(i, &data_for(i))).collect();
    assert_eq!(produce(&root, "from", &lines), 5);
    let d = files(&root);
    let ids = |extra: &[&str]| -> Vec<u64> {
        let mut args = vec!["consume", "--topic", "from"];
        args.extend_from_slice(extra);
        let o = ctl(&join(&d, &args));
        assert_ok(&o);
        parse_events(&stdout(&o)).iter().map(|e| e.id).collect()
    };
    // Acknowledge the first two under a name.
    assert_eq!(ids(&["--consumer", "c", "--ack", "--max", "2"]), vec![0, 1]);
    assert_eq!(ids(&["--consumer", "c"]), vec![2, 3, 4]);
    assert_eq!(
        ids(&["--consumer", "c", "--from", "beginning"]),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(ids(&["--from", "0=3"]), vec![3, 4]);
    assert!(ids(&["--from", "end"]).is_empty());
    let o = ctl(&join(
        &d,
        &["consume", "--topic", "from", "--from", "middle"],
    ));
    assert_fails_with(&o, &["--from", "expected last_ack"]);
    let o = ctl(&join(
        &d,
        &["consume", "--topic", "from", "--from", "step:1"],
    ));
    assert_fails_with(&o, &["step:1", "not closed"]);
}
