//! `diaspora-ctl forward`, run as a real daemon: the 3 checks of the reference's
//! `test-diaspora-ctl-forward.sh`, data forwarding, exactly-once across SIGTERM restarts,
//! at-least-once across `kill -9`, and bad configurations.

#[path = "cli_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

/// Two files roots, `src` and `dst`, and a config file forwarding `policies` between them.
struct Setup {
    dir: tempfile::TempDir,
    src: PathBuf,
    dst: PathBuf,
    config: PathBuf,
}

impl Setup {
    fn new(policies: &[(&str, &str)]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        let mut yaml = format!(
            "drivers:\n  source:\n    type: files\n    options:\n      root_path: \"{}\"\n  dest:\n    type: files\n    options: {{root_path: \"{}\", flush_behavior: on_flush}}\nforward:\n",
            src.display(),
            dst.display()
        );
        for (from, to) in policies {
            yaml.push_str(&format!("  - from: source/{from}\n    to: dest/{to}\n"));
        }
        let config = dir.path().join("forward.yaml");
        std::fs::write(&config, yaml).unwrap();
        Setup {
            dir,
            src,
            dst,
            config,
        }
    }

    fn start(&self, tag: &str) -> Proc {
        let p = Proc::start(
            &["forward", "--config", self.config.to_str().unwrap()],
            self.dir.path(),
            tag,
        );
        wait_until("the forward daemon to run", || {
            std::fs::read_to_string(&p.stderr_path).is_ok_and(|s| s.contains("daemon running"))
        });
        p
    }
}

/// Waits until the policy's consumer has acknowledged `total` events of `src/in` (so every
/// event was stored in the destination).
fn wait_acknowledged(src: &Path, consumer: &str, total: u64) {
    let d = files(src);
    wait_until(&format!("{total} acknowledged events"), || {
        let o = ctl(&join(&d, &["topic", "info", "in"]));
        assert_ok(&o);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        v["consumers"][consumer]["next"]
            .as_array()
            .is_some_and(|a| a.iter().filter_map(|x| x.as_u64()).sum::<u64>() == total)
    });
}

/// Metadata `i` of each event, in consume order.
fn indices(events: &[Ev]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.metadata["i"].as_u64().expect("i"))
        .collect()
}

// ---- reference test-diaspora-ctl-forward.sh ----

/// Runs a fifo daemon on `root` until the closure returns.
fn with_fifo_daemon(root: &Path, dir: &Path, tag: &str, f: impl FnOnce(&Path, &Proc)) {
    let control = dir.join(format!("{tag}.control"));
    let d = files(root);
    let mut p = Proc::start(
        &join(&d, &["fifo", "--control-file", control.to_str().unwrap()]),
        dir,
        tag,
    );
    wait_until("the control FIFO", || is_fifo(&control));
    f(&control, &p);
    p.terminate_ok();
}

#[test]
fn ref1_basic_forwarding_with_fifo_daemons() {
    let s = Setup::new(&[("source-topic", "dest-topic")]);
    create_topic(&s.src, "source-topic", 1);
    create_topic(&s.dst, "dest-topic", 1);
    // Produce 3 lines through a fifo daemon.
    with_fifo_daemon(&s.src, s.dir.path(), "fifo-in", |control, p| {
        let input = s.dir.path().join("in.fifo");
        echo_to_fifo(control, &format!("{} -> source-topic\n", input.display()));
        wait_until("registration", || {
            p.stderr().contains("registered producer")
        });
        let mut w = open_fifo_writer(&input);
        for i in 1..=3 {
            writeln!(w, "forward_test_{i}").unwrap();
        }
    });
    assert_eq!(count_events(&s.src, "source-topic"), 3);
    let mut fw = s.start("forward");
    wait_until("3 forwarded events", || {
        count_events(&s.dst, "dest-topic") == 3
    });
    fw.terminate_ok();
    // Consume the destination through a second fifo daemon.
    with_fifo_daemon(&s.dst, s.dir.path(), "fifo-out", |control, _| {
        let out = s.dir.path().join("out.fifo");
        let rx = read_fifo_lines(&out);
        echo_to_fifo(control, &format!("{} <- dest-topic\n", out.display()));
        assert_eq!(
            recv_lines(&rx, 3),
            ["forward_test_1", "forward_test_2", "forward_test_3"]
        );
    });
}

#[test]
fn ref2_two_policies_each_deliver() {
    let s = Setup::new(&[("src-a", "dst-a"), ("src-b", "dst-b")]);
    for t in ["src-a", "src-b"] {
        create_topic(&s.src, t, 1);
    }
    for t in ["dst-a", "dst-b"] {
        create_topic(&s.dst, t, 1);
    }
    produce(&s.src, "src-a", "{\"metadata\": \"message for a\"}\n");
    produce(&s.src, "src-b", "{\"metadata\": \"message for b\"}\n");
    let mut fw = s.start("forward");
    wait_until("both policies", || {
        count_events(&s.dst, "dst-a") == 1 && count_events(&s.dst, "dst-b") == 1
    });
    fw.terminate_ok();
    assert_eq!(consume_all(&s.dst, "dst-a")[0].metadata, "message for a");
    assert_eq!(consume_all(&s.dst, "dst-b")[0].metadata, "message for b");
}

#[test]
fn ref3_sigterm_exits_zero() {
    let s = Setup::new(&[("a", "b")]);
    create_topic(&s.src, "a", 1);
    create_topic(&s.dst, "b", 1);
    let mut fw = s.start("forward");
    fw.terminate_ok();
    assert!(fw.stderr().contains("daemon stopped"));
    let mut fw = s.start("forward-int");
    fw.signal("INT");
    assert!(fw.wait().success());
}

// ---- beyond the reference ----

#[test]
fn data_and_metadata_are_forwarded_intact() {
    let s = Setup::new(&[("in", "out")]);
    create_topic(&s.src, "in", 3);
    create_topic(&s.dst, "out", 2);
    let mut input = String::new();
    for i in 0..300u64 {
        input.push_str(&line_with(i, &data_for(i)));
    }
    input.push_str("{\"metadata\": {\"i\": 300, \"nested\": {\"x\": [1.5, \"s\", null]}}}\n");
    assert_eq!(produce(&s.src, "in", &input), 301);
    let mut fw = s.start("forward");
    wait_until("301 events", || count_events(&s.dst, "out") == 301);
    fw.terminate_ok();
    let events = consume_all(&s.dst, "out");
    let mut seen = indices(&events);
    seen.sort_unstable();
    assert_eq!(seen, (0..=300).collect::<Vec<_>>());
    for e in &events {
        let i = e.metadata["i"].as_u64().unwrap();
        if i < 300 {
            assert_eq!(e.data, data_for(i), "data of event {i}");
        } else {
            assert!(e.data.is_empty());
            assert_eq!(
                e.metadata["nested"]["x"],
                serde_json::json!([1.5, "s", null])
            );
        }
    }
    // The source positions of the policy's consumer are stored.
    let d = files(&s.src);
    let o = ctl(&join(&d, &["topic", "info", "in"]));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["consumers"]["source/in->dest/out"]["pending"],
        serde_json::json!([0, 0, 0])
    );
}

/// Events `from..to` (with data) as JSON Lines.
fn lines(from: u64, to: u64) -> String {
    (from..to).map(|k| line_with(k, &data_for(k))).collect()
}

/// Feeds events `from..to` into `src/in` in chunks from a background thread.
fn feed(src: &Path, from: u64, to: u64, chunk: u64) -> std::thread::JoinHandle<()> {
    let src = src.to_path_buf();
    std::thread::spawn(move || {
        let mut i = from;
        while i < to {
            let end = (i + chunk).min(to);
            assert_eq!(produce(&src, "in", &lines(i, end)), end - i);
            i = end;
            std::thread::sleep(Duration::from_millis(30));
        }
    })
}

/// Checks that `out` holds each of `0..total` exactly once (or at least once), data intact, and
/// in source order within each source partition (events were fed round robin).
fn check_destination(dst: &Path, total: u64, exactly_once: bool) {
    let events = consume_all(dst, "out");
    let mut count: BTreeMap<u64, u32> = BTreeMap::new();
    for e in &events {
        let i = e.metadata["i"].as_u64().unwrap();
        assert_eq!(e.data, data_for(i), "data of event {i}");
        *count.entry(i).or_default() += 1;
    }
    let missing: Vec<u64> = (0..total).filter(|i| !count.contains_key(i)).collect();
    assert!(missing.is_empty(), "lost events: {missing:?}");
    if exactly_once {
        let dups: Vec<u64> = count
            .iter()
            .filter(|(_, &c)| c > 1)
            .map(|(&i, _)| i)
            .collect();
        assert!(dups.is_empty(), "duplicated events: {dups:?}");
        assert_eq!(events.len() as u64, total);
    }
}

#[test]
fn sigterm_mid_stream_then_restart_loses_and_duplicates_nothing() {
    let s = Setup::new(&[("in", "out")]);
    create_topic(&s.src, "in", 2);
    create_topic(&s.dst, "out", 1);
    // A backlog the daemon needs a while to forward, plus events arriving meanwhile.
    let backlog = 30_000;
    let total = backlog + 3000;
    assert_eq!(produce(&s.src, "in", &lines(0, backlog)), backlog);
    let feeder = feed(&s.src, backlog, total, 200);
    let mut mid_stream_stops = 0;
    let mut last = 0;
    for round in 0..3 {
        let mut fw = s.start(&format!("forward-{round}"));
        wait_until("progress", || count_events(&s.dst, "out") > last);
        fw.terminate_ok();
        last = count_events(&s.dst, "out");
        let source = count_events(&s.src, "in");
        eprintln!("round {round}: stopped with {last} of {source} events forwarded");
        if last < source {
            mid_stream_stops += 1;
        }
        // Stopped: nothing more arrives.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(count_events(&s.dst, "out"), last);
    }
    assert!(mid_stream_stops > 0, "no stop happened mid-stream");
    feeder.join().unwrap();
    let mut fw = s.start("forward-final");
    wait_acknowledged(&s.src, "source/in->dest/out", total);
    fw.terminate_ok();
    check_destination(&s.dst, total, true);
}

#[test]
fn kill_9_then_restart_loses_nothing() {
    let s = Setup::new(&[("in", "out")]);
    create_topic(&s.src, "in", 2);
    create_topic(&s.dst, "out", 1);
    let backlog = 20_000;
    let total = backlog + 2000;
    assert_eq!(produce(&s.src, "in", &lines(0, backlog)), backlog);
    let feeder = feed(&s.src, backlog, total, 200);
    let mut fw = s.start("forward-killed");
    wait_until("progress", || count_events(&s.dst, "out") > 0);
    fw.signal("KILL");
    fw.wait();
    eprintln!(
        "killed with {} of {} events forwarded",
        count_events(&s.dst, "out"),
        count_events(&s.src, "in")
    );
    feeder.join().unwrap();
    let mut fw = s.start("forward-restarted");
    wait_acknowledged(&s.src, "source/in->dest/out", total);
    fw.terminate_ok();
    eprintln!("after restart: {} events", count_events(&s.dst, "out"));
    check_destination(&s.dst, total, false);
}

#[test]
fn events_the_destination_rejects_are_logged_and_skipped() {
    let s = Setup::new(&[("in", "out")]);
    create_topic(&s.src, "in", 1);
    let d = files(&s.dst);
    assert_ok(&ctl(&join(
        &d,
        &[
            "topic",
            "create",
            "--name",
            "out",
            "--validator",
            "schema",
            "--validator.schema",
            r#"{"type":"object","required":["ok"]}"#,
        ],
    )));
    let input = "{\"metadata\":{\"ok\":1,\"i\":0}}\n{\"metadata\":{\"i\":1}}\n{\"metadata\":{\"ok\":2,\"i\":2}}\n";
    assert_eq!(produce(&s.src, "in", input), 3);
    let mut fw = s.start("forward");
    wait_acknowledged(&s.src, "source/in->dest/out", 3);
    fw.terminate_ok();
    assert!(fw.stderr().contains("rejected event 1"), "{}", fw.stderr());
    assert_eq!(indices(&consume_all(&s.dst, "out")), [0, 2]);
}

#[test]
fn empty_forward_list_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("empty.yaml");
    std::fs::write(&cfg, "drivers: {}\nforward: []\n").unwrap();
    let o = ctl(&["forward", "--config", cfg.to_str().unwrap()]);
    assert_ok(&o);
}

#[test]
fn bad_configurations_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "exists", 1);
    let r = root.display();
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("drivers: [unclosed".into(), vec!["invalid YAML"]),
        ("forward: []".into(), vec!["missing 'drivers'"]),
        ("drivers: {a: {options: {}}}\nforward: []".into(), vec!["'type'"]),
        ("drivers: {a: {type: files}}".into(), vec!["missing 'forward'"]),
        (
            "drivers: {a: {type: files}}\nforward: [{from: a/x}]".into(),
            vec!["forward entry 1", "'to'"],
        ),
        (
            "drivers: {a: {type: files}}\nforward: [{from: nodriver, to: a/x}]".into(),
            vec!["driver/topic"],
        ),
        (
            "drivers: {a: {type: files}}\nforward: [{from: zz/x, to: a/x}]".into(),
            vec!["unknown driver 'zz'"],
        ),
        (
            "drivers: {a: {type: nosuchdriver}}\nforward: [{from: a/x, to: a/y}]".into(),
            vec!["driver 'a'", "unknown driver", "nosuchdriver"],
        ),
        (
            format!(
                "drivers: {{a: {{type: files, options: {{root_path: \"{r}\"}}}}}}\nforward: [{{from: a/missing, to: a/exists}}]"
            ),
            vec!["a/missing", "does not exist"],
        ),
        (
            format!(
                "drivers: {{a: {{type: files, options: {{root_path: \"{r}\"}}}}}}\nforward: [{{from: a/exists, to: a/gone}}]"
            ),
            vec!["a/gone", "does not exist"],
        ),
        (
            "drivers: {a: {type: files}}\nforward: [{from: a/x, to: a/y, data_allocator: \"l.so:f\"}]".into(),
            vec!["data_allocator", "not supported"],
        ),
    ];
    for (k, (yaml, needles)) in cases.iter().enumerate() {
        let cfg = dir.path().join(format!("bad{k}.yaml"));
        std::fs::write(&cfg, yaml).unwrap();
        let o = ctl(&["forward", "--config", cfg.to_str().unwrap()]);
        assert_fails_with(&o, needles);
        assert!(
            stderr(&o).contains(&format!("bad{k}.yaml")),
            "the message names the file: {}",
            stderr(&o)
        );
    }
    let o = ctl(&["forward"]);
    assert_fails_with(&o, &["--config"]);
    let o = ctl(&["forward", "--config", "/nonexistent/forward.yaml"]);
    assert_fails_with(&o, &["cannot read", "/nonexistent/forward.yaml"]);
    let o = ctl(&[
        "forward",
        "--config",
        "x.yaml",
        "--driver.root_path",
        "/tmp",
    ]);
    assert_fails_with(&o, &["--driver.root_path", "forward"]);
}

#[test]
fn end_of_stream_is_passed_on_and_stops_the_daemon() {
    use diaspora_stream::{DataView, Driver};
    let s = Setup::new(&[("in", "out")]);
    for (root, name) in [(&s.src, "in"), (&s.dst, "out")] {
        Driver::new("files", &serde_json::json!({"root_path": root}))
            .unwrap()
            .create_topic(name, &serde_json::json!({"num_partitions": 2}))
            .unwrap();
    }
    let src = Driver::new("files", &serde_json::json!({"root_path": &s.src}))
        .unwrap()
        .open_topic("in")
        .unwrap();
    let producer = src.producer().build().unwrap();
    for i in 0..25u64 {
        producer.push(
            serde_json::json!({"i": i}),
            DataView::from(vec![i as u8; 10]),
        );
    }
    producer.end_of_stream(0, 1).wait().unwrap();
    drop(producer);
    let mut p = s.start("forward-eos");
    // No signal: the daemon stops by itself once the source stream has ended.
    let status = p.wait();
    assert!(status.success(), "{}", p.stderr());
    assert!(
        p.stderr().contains("end of stream passed on"),
        "{}",
        p.stderr()
    );
    let dst = Driver::new("files", &serde_json::json!({"root_path": &s.dst}))
        .unwrap()
        .open_topic("out")
        .unwrap();
    let consumer = dst.consumer("check").build().unwrap();
    let mut seen = Vec::new();
    loop {
        let ev = consumer
            .pull()
            .wait_timeout(Duration::from_secs(30))
            .unwrap()
            .expect("events, then the end of stream");
        if ev.is_end_of_stream() {
            break;
        }
        assert_eq!(ev.data().to_vec().len(), 10);
        seen.push(ev.metadata().json()["i"].as_u64().unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..25).collect::<Vec<u64>>());
}
