//! `diaspora-ctl fifo`, run as a real daemon: the 4 checks of the reference's
//! `test-diaspora-ctl-fifo.sh` plus the reference bugs fixed here (escaping, hang-ups, slow
//! readers, control FIFO failures) and bad commands.

#[path = "cli_support/mod.rs"]
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use support::*;

/// A running fifo daemon on a fresh files root.
struct Fifo {
    dir: tempfile::TempDir,
    root: PathBuf,
    control: PathBuf,
    proc: Proc,
}

impl Fifo {
    fn start(topics: &[(&str, usize)]) -> Fifo {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for (t, n) in topics {
            create_topic(&root, t, *n);
        }
        let control = dir.path().join("run/control");
        let d = files(&root);
        let proc = Proc::start(
            &join(&d, &["fifo", "--control-file", control.to_str().unwrap()]),
            dir.path(),
            "fifo",
        );
        wait_until("the control FIFO", || is_fifo(&control));
        Fifo {
            dir,
            root,
            control,
            proc,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, cmd: &str) {
        echo_to_fifo(&self.control, &format!("{cmd}\n"));
    }

    /// Sends a command and waits for the daemon's answer in its log.
    fn command_logged(&self, cmd: &str, expect: &str) {
        self.command(cmd);
        wait_until(&format!("log line {expect:?}"), || {
            self.proc.stderr().contains(expect)
        });
    }

    fn events(&self, topic: &str) -> Vec<Ev> {
        consume_all(&self.root, topic)
    }

    fn wait_events(&self, topic: &str, n: u64) {
        wait_until(&format!("{n} events in {topic}"), || {
            count_events(&self.root, topic) >= n
        });
    }
}

fn strings(events: &[Ev]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e.metadata
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| e.metadata.to_string())
        })
        .collect()
}

fn register_producer(f: &Fifo, path: &Path, topic: &str, options: &str) {
    f.command_logged(
        &format!("{} -> {topic}{options}", path.display()),
        &format!("registered producer: {}", path.display()),
    );
    assert!(is_fifo(path), "producer FIFO created");
}

// ---- reference test-diaspora-ctl-fifo.sh ----

#[test]
fn ref1_producer_fifo_receives_lines_and_sigterm_stops_the_daemon() {
    let mut f = Fifo::start(&[("fifo-topic", 1)]);
    let input = f.path("input.fifo");
    register_producer(&f, &input, "fifo-topic", "");
    {
        let mut w = open_fifo_writer(&input);
        w.write_all(b"first line\nsecond line\n").unwrap();
    }
    f.wait_events("fifo-topic", 2);
    f.proc.terminate_ok();
    assert!(!f.control.exists(), "control FIFO removed at exit");
    assert!(
        !input.exists(),
        "a FIFO the daemon created is removed at exit"
    );
    assert_eq!(
        strings(&f.events("fifo-topic")),
        ["first line", "second line"]
    );
}

#[test]
fn ref2_batch_size_option_creates_the_fifo() {
    let mut f = Fifo::start(&[("t", 1)]);
    let input = f.path("batched.fifo");
    register_producer(&f, &input, "t", " (batch_size=256)");
    echo_to_fifo(&input, "one\n");
    // The hang-up (or the idle time) flushes the partial batch.
    f.wait_events("t", 1);
    f.proc.terminate_ok();
}

#[test]
fn ref3_produced_lines_come_out_of_a_consumer_fifo() {
    let mut f = Fifo::start(&[("t", 1)]);
    let input = f.path("in.fifo");
    register_producer(&f, &input, "t", "");
    for i in 1..=3 {
        // Each write is its own open/write/close, like `echo ... > fifo`.
        echo_to_fifo(&input, &format!("test message {i}\n"));
    }
    f.wait_events("t", 3);
    let output = f.path("out.fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &output,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let rx = read_fifo_lines(&output);
    f.command(&format!("{} <- t", output.display()));
    let lines = recv_lines(&rx, 3);
    assert_eq!(
        lines,
        ["test message 1", "test message 2", "test message 3"]
    );
    f.proc.terminate_ok();
    assert!(output.exists(), "a consumer FIFO made by the user is kept");
}

#[test]
fn ref4_consumer_registered_later_gets_events_of_an_open_producer() {
    let mut f = Fifo::start(&[("t", 1)]);
    let input = f.path("in.fifo");
    register_producer(&f, &input, "t", " (batch_size=1)");
    let mut w = open_fifo_writer(&input);
    for i in 1..=5 {
        writeln!(w, "concurrent_message_{i}").unwrap();
        w.flush().unwrap();
    }
    f.wait_events("t", 5);
    let output = f.path("out.fifo");
    let rx = read_fifo_lines(&output);
    // The daemon creates a missing consumer FIFO.
    f.command(&format!("{} <- t", output.display()));
    let lines = recv_lines(&rx, 5);
    assert_eq!(lines[0], "concurrent_message_1");
    assert_eq!(lines[4], "concurrent_message_5");
    drop(w);
    f.proc.terminate_ok();
    assert!(
        !output.exists(),
        "a consumer FIFO the daemon created is removed"
    );
}

// ---- fixed reference bugs ----

#[test]
fn raw_lines_are_escaped_and_json_lines_parsed() {
    let mut f = Fifo::start(&[("raw", 1), ("json", 1)]);
    let raw = f.path("raw.fifo");
    let json = f.path("json.fifo");
    register_producer(&f, &raw, "raw", " (format=raw)");
    register_producer(&f, &json, "json", " (format=json, batch_size=2)");
    let tricky = r#"quote " backslash \ tab	unicode é {"not": json}"#;
    echo_to_fifo(&raw, &format!("{tricky}\r\n"));
    echo_to_fifo(
        &json,
        "{\"a\": 1}\nnot json at all\n[true, null]\n\"a string\"\n",
    );
    f.wait_events("raw", 1);
    f.wait_events("json", 3);
    let raw_events = f.events("raw");
    assert_eq!(raw_events[0].metadata, serde_json::json!(tricky));
    let json_events = f.events("json");
    assert_eq!(
        json_events
            .iter()
            .map(|e| e.metadata.clone())
            .collect::<Vec<_>>(),
        vec![
            serde_json::json!({"a": 1}),
            serde_json::json!([true, null]),
            serde_json::json!("a string")
        ]
    );
    assert!(f.proc.stderr().contains("line skipped"));
    // A JSON-format consumer writes the JSON text; a raw one writes strings as they are.
    let out_json = f.path("out-json.fifo");
    let out_raw = f.path("out-raw.fifo");
    let rx_json = read_fifo_lines(&out_json);
    let rx_raw = read_fifo_lines(&out_raw);
    f.command(&format!("{} <- raw (format=json)", out_json.display()));
    f.command(&format!("{} <- json", out_raw.display()));
    let l = recv_lines(&rx_json, 1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&l[0]).unwrap(),
        serde_json::json!(tricky)
    );
    assert_eq!(
        recv_lines(&rx_raw, 3),
        ["{\"a\":1}", "[true,null]", "a string"]
    );
    f.proc.terminate_ok();
}

#[test]
fn producer_fifo_survives_writer_hang_ups_and_keeps_unterminated_lines() {
    let mut f = Fifo::start(&[("t", 1)]);
    let input = f.path("in.fifo");
    register_producer(&f, &input, "t", "");
    echo_to_fifo(&input, "first\n");
    f.wait_events("t", 1);
    assert!(is_fifo(&input), "still there after the writer hung up");
    echo_to_fifo(&input, "no newline at the end");
    f.wait_events("t", 2);
    echo_to_fifo(&input, "third\n");
    f.wait_events("t", 3);
    assert_eq!(
        strings(&f.events("t")),
        ["first", "no newline at the end", "third"]
    );
    f.proc.terminate_ok();
}

#[test]
fn sigterm_flushes_pending_events() {
    let mut f = Fifo::start(&[("t", 2)]);
    let input = f.path("in.fifo");
    register_producer(&f, &input, "t", " (batch_size=100000)");
    let mut w = open_fifo_writer(&input);
    for i in 0..500 {
        writeln!(w, "event {i}").unwrap();
    }
    w.flush().unwrap();
    // The writer stays connected; SIGTERM must still store all 500 events.
    f.proc.terminate_ok();
    drop(w);
    let mut got = strings(&f.events("t"));
    got.sort();
    let mut want: Vec<String> = (0..500).map(|i| format!("event {i}")).collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_slow_reader_loses_no_event() {
    let mut f = Fifo::start(&[("bulk", 1)]);
    let n = 3000u64;
    let pad = "x".repeat(200);
    let mut input = String::new();
    for i in 0..n {
        input.push_str(&format!("{{\"metadata\":\"{i} {pad}\"}}\n"));
    }
    assert_eq!(produce(&f.root, "bulk", &input), n);
    // About 600 kB: far more than a pipe holds, so the writer must wait for the reader.
    let output = f.path("slow.fifo");
    f.command_logged(
        &format!("{} <- bulk (batch_size=64)", output.display()),
        "registered consumer",
    );
    let file = std::fs::File::open(&output).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut reader = std::io::BufReader::new(file);
    let mut got = 0u64;
    let mut line = String::new();
    while got < n {
        line.clear();
        use std::io::BufRead;
        let k = reader.read_line(&mut line).unwrap();
        assert!(k > 0, "EOF after {got} lines");
        let idx: u64 = line.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(idx, got, "lines in order, none missing");
        assert!(line.ends_with(&format!("{pad}\n")));
        got += 1;
        if got.is_multiple_of(500) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    f.proc.terminate_ok();
}

#[test]
fn consumer_ack_option_persists_positions() {
    let mut f = Fifo::start(&[("t", 1)]);
    assert_eq!(
        produce(&f.root, "t", "{\"metadata\":\"a\"}\n{\"metadata\":\"b\"}\n"),
        2
    );
    let out = f.path("out.fifo");
    let rx = read_fifo_lines(&out);
    f.command(&format!(
        "{} <- t (consumer=reader, ack=true)",
        out.display()
    ));
    assert_eq!(recv_lines(&rx, 2), ["a", "b"]);
    f.proc.terminate_ok();
    let d = files(&f.root);
    let o = ctl(&join(&d, &["topic", "info", "t"]));
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["consumers"]["reader"]["next"], serde_json::json!([2]));
}

#[test]
fn bad_commands_are_rejected_and_the_daemon_goes_on() {
    let mut f = Fifo::start(&[("t", 1)]);
    let regular = f.path("regular-file");
    std::fs::write(&regular, "keep me").unwrap();
    for (cmd, expect) in [
        ("garbage without arrow".to_string(), "invalid command"),
        (
            format!("{} -> missing-topic", f.path("a").display()),
            "topic \"missing-topic\" does not exist",
        ),
        (
            format!("{} -> t (format=xml)", f.path("b").display()),
            "unknown format",
        ),
        (
            format!("{} -> t (colour=blue)", f.path("c").display()),
            "unknown option",
        ),
        (
            format!("{} -> t (batch_size=lots)", f.path("d").display()),
            "invalid batch size",
        ),
        (
            format!("{} -> t (x=1", f.path("e").display()),
            "missing ')'",
        ),
        (
            format!("{} -> t", regular.display()),
            "exists but is not a FIFO",
        ),
        (
            format!("{} <- t", regular.display()),
            "exists but is not a FIFO",
        ),
    ] {
        f.command_logged(&cmd, expect);
    }
    assert_eq!(std::fs::read_to_string(&regular).unwrap(), "keep me");
    let input = f.path("good.fifo");
    register_producer(&f, &input, "t", "");
    f.command_logged(&format!("{} -> t", input.display()), "already registered");
    echo_to_fifo(&input, "still working\n");
    f.wait_events("t", 1);
    assert!(f.proc.running());
    f.proc.terminate_ok();
}

#[test]
fn sigint_also_stops_cleanly() {
    let mut f = Fifo::start(&[("t", 1)]);
    f.proc.signal("INT");
    let s = f.proc.wait();
    assert!(s.success(), "{s:?}");
    assert!(!f.control.exists());
}

#[test]
fn control_fifo_problems_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let d = files(&root);
    // The parent "directory" is a regular file.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let bad = blocker.join("control");
    let o = ctl(&join(
        &d,
        &["fifo", "--control-file", bad.to_str().unwrap()],
    ));
    assert_fails_with(&o, &["control FIFO"]);
    // An existing regular file is not replaced.
    let file = dir.path().join("control-file");
    std::fs::write(&file, "data").unwrap();
    let o = ctl(&join(
        &d,
        &["fifo", "--control-file", file.to_str().unwrap()],
    ));
    assert_fails_with(&o, &["not a FIFO"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
    // Missing option, unknown driver.
    let o = ctl(&join(&d, &["fifo"]));
    assert_fails_with(&o, &["--control-file"]);
    let o = ctl(&[
        "fifo",
        "--driver",
        "nope",
        "--control-file",
        dir.path().join("c").to_str().unwrap(),
    ]);
    assert_fails_with(&o, &["unknown driver", "nope"]);
    assert!(!dir.path().join("c").exists());
}

#[test]
fn a_stale_control_fifo_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "t", 1);
    let control = dir.path().join("control");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &control,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let d = files(&root);
    let mut p = Proc::start(
        &join(&d, &["fifo", "--control-file", control.to_str().unwrap()]),
        dir.path(),
        "fifo",
    );
    wait_until("the daemon to listen", || p.stderr().contains("listening"));
    let input = dir.path().join("in");
    echo_to_fifo(&control, &format!("{} -> t\n", input.display()));
    wait_until("registration", || {
        p.stderr().contains("registered producer")
    });
    echo_to_fifo(&input, "hello\n");
    wait_until("the event", || count_events(&root, "t") == 1);
    p.terminate_ok();
}
