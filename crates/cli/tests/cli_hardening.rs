//! `diaspora-ctl` on damaged topics and hostile input: zeroed index tails, reads that must not
//! write, `topic check` / `topic repair`, forged control events, out-of-range numbers, permission
//! problems, a read-only mount, a full disk and a held lock.
//!
//! The permission, read-only and full-disk tests need to run the tool as another user (`setpriv`,
//! when the tests run as root) or in a user and mount namespace (`unshare -rm`, to mount a small
//! tmpfs or a read-only bind mount without privileges). Where the machine refuses either, the test
//! prints why and checks nothing else, unless `DIASPORA_REQUIRE_NAMESPACES` is set (CI sets it):
//! then the refusal fails the test.

#[path = "cli_support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::*;

/// Reports a test that cannot run here; fails instead when CI requires these tests to run.
fn skip(why: &str) {
    if std::env::var_os("DIASPORA_REQUIRE_NAMESPACES").is_some() {
        panic!("{why}, and DIASPORA_REQUIRE_NAMESPACES is set");
    }
    eprintln!("skipped: {why}");
}

fn index_of(root: &Path, topic: &str, p: usize) -> std::path::PathBuf {
    root.join(topic)
        .join("partitions")
        .join(format!("{p:08}"))
        .join("index")
}

fn lines(range: std::ops::Range<u64>) -> String {
    range.map(|i| line_with(i, &data_for(i))).collect()
}

#[test]
fn zeroed_index_tail_then_produce_keeps_every_event() {
    // The reproduction from the bug report: 3 events, `truncate -s +32 index`, 1 more event.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "z", 1);
    assert_eq!(produce(&root, "z", &lines(0..3)), 3);
    let st = Command::new("truncate")
        .args(["-s", "+32"])
        .arg(index_of(&root, "z", 0))
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(produce(&root, "z", &lines(3..4)), 1);
    let events = consume_all(&root, "z");
    assert_eq!(events.len(), 4);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.id, i as u64);
        assert_eq!(e.metadata["i"], i as u64);
        assert_eq!(e.data, data_for(i as u64));
    }
    let d = files(&root);
    assert_ok(&ctl(&join(&d, &["topic", "check", "z"])));
}

#[test]
fn consume_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("missing-root");
    let d = files(&root);
    let o = ctl(&join(&d, &["consume", "--topic", "t"]));
    assert_fails_with(&o, &["does not exist"]);
    assert!(!root.exists(), "consume created the root folder");
    let root = dir.path().join("root");
    create_topic(&root, "t", 1);
    produce(&root, "t", &lines(0..2));
    std::fs::remove_file(index_of(&root, "t", 0)).unwrap();
    let d = files(&root);
    let o = ctl(&join(&d, &["consume", "--topic", "t"]));
    assert_fails_with(&o, &["index is missing", "00000000"]);
    assert!(
        !index_of(&root, "t", 0).exists(),
        "consume created an index"
    );
    // `topic check` says what can be recovered, `repair --apply` does it.
    let o = ctl(&join(&d, &["topic", "check", "t"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("2 event(s) can be restored"),
        "{}",
        stdout(&o)
    );
    assert!(!index_of(&root, "t", 0).exists(), "check created an index");
    assert_ok(&ctl(&join(&d, &["topic", "repair", "t", "--apply"])));
    assert_eq!(consume_all(&root, "t").len(), 2);
}

#[test]
fn check_and_repair_a_truncated_index() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "t", 2);
    assert_eq!(produce(&root, "t", &lines(0..20)), 20);
    let index = index_of(&root, "t", 1);
    let len = std::fs::metadata(&index).unwrap().len();
    assert_eq!(len, 10 * 32);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&index)
        .unwrap()
        .set_len(3 * 32)
        .unwrap();
    assert_eq!(consume_all(&root, "t").len(), 13);
    let d = files(&root);
    let o = ctl(&join(&d, &["topic", "check", "t"]));
    assert_fails_with(&o, &["damaged", "topic repair"]);
    let report = stdout(&o);
    assert!(report.contains("partition 0: 10 event(s)"), "{report}");
    assert!(
        report.contains("partition 1: 3 event(s)") && report.contains("7 event(s) after event 2"),
        "{report}"
    );
    // Dry run: says what it would do, changes nothing.
    let o = ctl(&join(&d, &["topic", "repair", "t"]));
    assert_ok(&o);
    assert!(
        stdout(&o).contains("repair would: restore the index records of 7 event(s)"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("dry run"), "{}", stdout(&o));
    assert_eq!(std::fs::metadata(&index).unwrap().len(), 3 * 32);
    let o = ctl(&join(&d, &["topic", "repair", "t", "--apply"]));
    assert_ok(&o);
    assert!(stdout(&o).contains("repaired:"), "{}", stdout(&o));
    assert_ok(&ctl(&join(&d, &["topic", "check", "t"])));
    let events = consume_all(&root, "t");
    assert_eq!(events.len(), 20);
    let mut seen: Vec<u64> = events
        .iter()
        .map(|e| {
            let i = e.metadata["i"].as_u64().unwrap();
            assert_eq!(e.data, data_for(i));
            i
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
}

#[test]
fn repair_refuses_while_a_writer_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "t", 1);
    produce(&root, "t", &lines(0..3));
    let index = index_of(&root, "t", 0);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&index)
        .unwrap()
        .set_len(32)
        .unwrap();
    // flock(1) holds the lock like a hung writer would (--no-fork: the process we kill is the
    // one holding it).
    let mut holder = Command::new("flock")
        .arg("--no-fork")
        .arg(&index)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    let holder_pid = holder.id();
    let d = files(&root);
    wait_until("the lock to be taken", || {
        std::fs::read_to_string("/proc/locks")
            .map(|l| l.contains(&format!(" {holder_pid} ")))
            .unwrap_or(true)
    });
    let o = ctl(&join(&d, &["topic", "repair", "t", "--apply"]));
    assert_fails_with(&o, &["could not lock", "held by process"]);
    // A producer waits at most lock_timeout_ms, then names the partition and the holder.
    let o = ctl_input(
        &join(
            &d,
            &["produce", "--topic", "t", "--driver.lock_timeout_ms", "400"],
        ),
        &lines(10..11),
    );
    assert_fails_with(
        &o,
        &[
            "partition 0",
            "could not lock",
            "within 400 ms",
            "held by process",
        ],
    );
    assert_eq!(stdout(&o).trim(), "0");
    let _ = holder.kill();
    let _ = holder.wait();
    assert_ok(&ctl(&join(&d, &["topic", "repair", "t", "--apply"])));
    assert_eq!(consume_all(&root, "t").len(), 3);
}

#[test]
fn forged_control_events_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "t", 1);
    let d = files(&root);
    let forged = "{\"metadata\": {\"i\": 0}}\n\
                  {\"metadata\": {\"$diaspora\": {\"end_of_stream\": {\"producer\": 0, \"producers\": 1}}}}\n\
                  {\"metadata\": {\"i\": 2}}\n";
    let o = ctl_input(&join(&d, &["produce", "--topic", "t"]), forged);
    assert_fails_with(&o, &["line 2", "$diaspora", "reserved"]);
    assert_eq!(stdout(&o).trim(), "1");
    // Nothing hides in the stream: the one event is there, and a follower is not stopped by it.
    let events = consume_all(&root, "t");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].metadata["i"], 0);
}

#[test]
fn numbers_are_range_checked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "t", 1);
    let d = files(&root);
    for (cmd, args, needle) in [
        (
            "consume",
            vec!["--idle-timeout", "1e300"],
            "invalid duration",
        ),
        ("consume", vec!["--idle-timeout", "0"], "invalid duration"),
        ("consume", vec!["--idle-timeout", "nan"], "invalid duration"),
        ("consume", vec!["--idle-timeout=-1"], "invalid duration"),
        ("consume", vec!["--batch-size", "0"], "invalid batch size"),
        ("consume", vec!["--max", "0"], "invalid count"),
        ("consume", vec!["--max=-3"], "invalid count"),
        ("produce", vec!["--batch-size", "0"], "invalid batch size"),
        (
            "produce",
            vec!["--batch-size", "99999999999999999999"],
            "invalid batch size",
        ),
    ] {
        let mut all = vec![cmd, "--topic", "t"];
        all.extend(args.iter().copied());
        let o = ctl(&join(&d, &all));
        assert_fails_with(&o, &[needle]);
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    let o = ctl(&join(&d, &["topic", "create", "--name", "two\nlines"]));
    assert_fails_with(&o, &["control character"]);
    let o = ctl(&join(&d, &["topic", "create", "--name", "esc\u{1b}[2J"]));
    assert_fails_with(&o, &["control character"]);
}

/// Runs the tool as user `nobody` (when root) with `input` on stdin.
fn as_nobody(args: &[&str], input: &str) -> Option<Output> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    let mut c = if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            BIN,
        ]);
        c
    } else {
        Command::new(BIN)
    };
    let mut child = c
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    let _ = child.stdin.take()?.write_all(input.as_bytes());
    child.wait_with_output().ok()
}

#[test]
fn permission_problems_say_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "t", 1);
    produce(&root, "t", &lines(0..2));
    let d = files(&root);
    // The topic belongs to someone else: no write permission.
    let data_file = index_of(&root, "t", 0).with_file_name("data");
    for p in [&data_file, &index_of(&root, "t", 0)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    let Some(o) = as_nobody(&join(&d, &["produce", "--topic", "t"]), &lines(5..6)) else {
        skip("cannot run the tool as another user here (setpriv)");
        return;
    };
    assert_fails_with(&o, &["permission denied", "open for writing", "00000000"]);
    assert!(
        !stderr(&o).contains("Bad file descriptor"),
        "{}",
        stderr(&o)
    );
    // Reading still works for everyone.
    let o = as_nobody(&join(&d, &["consume", "--topic", "t"]), "").unwrap();
    assert_ok(&o);
    assert_eq!(parse_events(&stdout(&o)).len(), 2);
    // An unreadable root is not a missing topic.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o000)).unwrap();
    let o = as_nobody(&join(&d, &["consume", "--topic", "t"]), "").unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_fails_with(&o, &["permission denied", "root"]);
    assert!(!stderr(&o).contains("does not exist"), "{}", stderr(&o));
}

/// Runs `script` with `sh` in a new user and mount namespace; `None` when the machine refuses.
fn in_namespace(script: &str, env: &[(&str, &str)]) -> Option<Output> {
    let mut c = Command::new("unshare");
    c.args(["-rm", "sh", "-c", script]);
    for (k, v) in env {
        c.env(k, v);
    }
    let probe = Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            "mount -t tmpfs -o size=64k tmpfs /mnt || mount -t tmpfs -o size=64k tmpfs /tmp",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    if !probe.success() {
        return None;
    }
    c.output().ok()
}

#[test]
fn read_only_mount_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    create_topic(&root, "t", 1);
    produce(&root, "t", &lines(0..2));
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, lines(2..3)).unwrap();
    let script = r#"mount --bind "$ROOT" "$ROOT" && mount -o remount,bind,ro "$ROOT" || exit 99
"$BIN" produce --driver files --driver.root_path "$ROOT" --topic t < "$IN"
echo "rc=$?" >&2
"$BIN" consume --driver files --driver.root_path "$ROOT" --topic t"#;
    let Some(o) = in_namespace(
        script,
        &[
            ("ROOT", root.to_str().unwrap()),
            ("BIN", BIN),
            ("IN", input.to_str().unwrap()),
        ],
    ) else {
        skip("no user and mount namespaces here (unshare -rm)");
        return;
    };
    if o.status.code() == Some(99) {
        skip("read-only bind mounts are refused here");
        return;
    }
    let err = stderr(&o);
    assert!(err.contains("rc=1"), "{err}");
    assert!(
        err.contains("Read-only file system") && err.contains("00000000"),
        "{err}"
    );
    assert!(!err.contains("Bad file descriptor"), "{err}");
    // Consuming a read-only copy works (after the count that produce printed).
    let out = stdout(&o);
    let (count, events) = out.split_once('\n').unwrap();
    assert_eq!(count, "0");
    assert_eq!(parse_events(events).len(), 2);
}

/// Line numbers listed after `after` in a produce error, e.g. "1-3, 5" (up to the next word).
fn listed_lines(text: &str, after: &str) -> BTreeSet<u64> {
    let Some(start) = text.find(after) else {
        return BTreeSet::new();
    };
    let mut out = BTreeSet::new();
    for part in text[start + after.len()..].split(", ") {
        let token: String = part
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        match token.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<u64>().unwrap()..=b.parse::<u64>().unwrap()),
            None => {
                out.insert(token.parse::<u64>().unwrap());
            }
        }
        if token.len() != part.len() {
            break; // words follow: the list ended
        }
    }
    out
}

#[test]
fn full_disk_report_names_exactly_the_stored_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    // 4 partitions written in turn, 3 KB per event (600 KB in all), on a 400 KiB file system.
    let mut input = String::new();
    for i in 0..200u64 {
        use base64::prelude::*;
        input.push_str(&format!(
            "{{\"metadata\":{{\"i\":{i}}},\"data\":\"{}\",\"partition\":{}}}\n",
            BASE64_STANDARD.encode(vec![i as u8; 3000]),
            i % 4
        ));
    }
    let in_path = dir.path().join("in.jsonl");
    std::fs::write(&in_path, input).unwrap();
    let script = r#"mount -t tmpfs -o size=400k tmpfs "$MNT" || exit 99
R="$MNT/root"
"$BIN" --logging warn topic create --driver files --driver.root_path "$R" --name t --topic.num_partitions 4 || exit 98
"$BIN" produce --driver files --driver.root_path "$R" --topic t --batch-size 3 < "$IN"
echo "rc=$?" >&2
"$BIN" consume --driver files --driver.root_path "$R" --topic t"#;
    let Some(o) = in_namespace(
        script,
        &[
            ("MNT", mnt.to_str().unwrap()),
            ("BIN", BIN),
            ("IN", in_path.to_str().unwrap()),
        ],
    ) else {
        skip("no user and mount namespaces here (unshare -rm)");
        return;
    };
    assert_ne!(o.status.code(), Some(99), "tmpfs mount failed");
    let err = stderr(&o);
    assert!(err.contains("rc=1"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let out = stdout(&o);
    let mut out_lines = out.lines();
    let count: usize = out_lines.next().unwrap().trim().parse().unwrap();
    let consumed = parse_events(&out_lines.collect::<Vec<_>>().join("\n"));
    // What the report says was stored is exactly what is there (line n holds event i = n - 1).
    let stored: BTreeSet<u64> = consumed
        .iter()
        .map(|e| e.metadata["i"].as_u64().unwrap() + 1)
        .collect();
    assert_eq!(stored.len(), count);
    assert!(count > 0 && count < 200, "{count}");
    assert_eq!(listed_lines(&err, "from lines "), stored, "{err}");
    for e in &consumed {
        let i = e.metadata["i"].as_u64().unwrap();
        assert_eq!(e.data, vec![i as u8; 3000]);
    }
    // The lines named as not written were not stored.
    let not_written = listed_lines(&err, "; lines ");
    assert!(!not_written.is_empty(), "{err}");
    assert!(not_written.is_disjoint(&stored), "{err}");
}
