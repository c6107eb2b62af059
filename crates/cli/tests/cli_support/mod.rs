//! Helpers shared by the `cli_*` tests, which run the real `diaspora-ctl` binary.
//!
//! Included by each of them with `#[path = "cli_support/mod.rs"] mod support;`. Every process a test starts is a [`Proc`], killed on drop if it is
//! still running; every file lives in a temporary directory. Waits are generous (a loaded 2-core
//! machine) and nothing asserts on speed.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_diaspora-ctl");

/// How long a test waits for something that should happen "soon".
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A command of the binary, with stdin closed unless given.
pub fn ctl_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).stdin(Stdio::null());
    c
}

/// Runs the binary to completion.
pub fn ctl(args: &[&str]) -> Output {
    ctl_cmd(args).output().expect("run diaspora-ctl")
}

/// Runs the binary with `input` on stdin.
pub fn ctl_input(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn diaspora-ctl");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("wait for diaspora-ctl");
    let _ = writer.join();
    out
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, showing stderr otherwise.
#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "expected success, got {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Asserts exit code 1 with `error: ` and every `needles` (case-insensitive) on stderr.
#[track_caller]
pub fn assert_fails_with(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit code 1\nstdout: {}\nstderr: {err}",
        stdout(o)
    );
    let lower = err.to_lowercase();
    for n in needles {
        assert!(
            lower.contains(&n.to_lowercase()),
            "stderr should mention {n:?}:\n{err}"
        );
    }
}

/// Polls `cond` every 20 ms until it holds or `PATIENCE` passes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True if `path` is a FIFO.
pub fn is_fifo(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// A child process, killed (SIGKILL) and reaped on drop if still running.
pub struct Proc {
    pub child: Child,
    pub stderr_path: PathBuf,
}

impl Proc {
    /// Starts the binary with stdout discarded and stderr to a file in `dir`.
    pub fn start(args: &[&str], dir: &Path, tag: &str) -> Proc {
        let stderr_path = dir.join(format!("{tag}.stderr"));
        let err = std::fs::File::create(&stderr_path).expect("stderr file");
        let child = ctl_cmd(args)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn diaspora-ctl");
        Proc { child, stderr_path }
    }

    /// Starts the binary with stdout piped (for `consume --follow`).
    pub fn start_piped(args: &[&str], dir: &Path, tag: &str) -> Proc {
        let stderr_path = dir.join(format!("{tag}.stderr"));
        let err = std::fs::File::create(&stderr_path).expect("stderr file");
        let child = ctl_cmd(args)
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("spawn diaspora-ctl");
        Proc { child, stderr_path }
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`) to this process only.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits for the exit, failing the test after `PATIENCE`.
    pub fn wait(&mut self) -> ExitStatus {
        let end = Instant::now() + PATIENCE;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(
                Instant::now() < end,
                "process did not exit in time; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits; asserts exit code 0.
    pub fn terminate_ok(&mut self) {
        self.signal("TERM");
        let s = self.wait();
        assert!(
            s.success(),
            "expected exit 0 after SIGTERM, got {s:?}; stderr:\n{}",
            self.stderr()
        );
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Opens a FIFO for writing, waiting (up to `PATIENCE`) for its reader, then makes it blocking.
pub fn open_fifo_writer(path: &Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let nonblock = rustix::fs::OFlags::NONBLOCK.bits() as i32;
    let end = Instant::now() + PATIENCE;
    loop {
        if is_fifo(path) {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nonblock)
                .open(path)
            {
                Ok(f) => {
                    rustix::io::ioctl_fionbio(f.as_fd(), false).expect("make blocking");
                    return f;
                }
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {}
                Err(e) => panic!("cannot open {} for writing: {e}", path.display()),
            }
        }
        assert!(
            Instant::now() < end,
            "no reader on FIFO {} in time",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes `text` to a FIFO in one open/write/close (like `echo text > fifo`).
pub fn echo_to_fifo(path: &Path, text: &str) {
    let mut f = open_fifo_writer(path);
    f.write_all(text.as_bytes()).expect("write to FIFO");
}

/// Reads lines from a FIFO in a background thread: waits for the FIFO to exist, then opens it
/// (which blocks until a writer comes).
pub fn read_fifo_lines(path: &Path) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let end = Instant::now() + PATIENCE;
        while !is_fifo(&path) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        let Ok(f) = std::fs::File::open(&path) else {
            return;
        };
        for line in BufReader::new(f).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Receives lines until `n` have arrived, failing after `PATIENCE`.
pub fn recv_lines(rx: &mpsc::Receiver<String>, n: usize) -> Vec<String> {
    let end = Instant::now() + PATIENCE;
    let mut out = Vec::new();
    while out.len() < n {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => out.push(l),
            Err(e) => panic!("got only {} of {n} lines ({e}): {out:?}", out.len()),
        }
    }
    out
}

/// Driver arguments for a files root.
pub fn files(root: &Path) -> Vec<String> {
    vec![
        "--driver".into(),
        "files".into(),
        "--driver.root_path".into(),
        root.to_string_lossy().into_owned(),
    ]
}

/// The command words and options `cmd` followed by the driver arguments `driver`, as `&str`s.
pub fn join<'a>(driver: &'a [String], cmd: &[&'a str]) -> Vec<&'a str> {
    cmd.iter()
        .copied()
        .chain(driver.iter().map(String::as_str))
        .collect()
}

/// Creates a topic with `partitions` partitions.
pub fn create_topic(root: &Path, name: &str, partitions: usize) {
    let d = files(root);
    let n = partitions.to_string();
    assert_ok(&ctl(&join(
        &d,
        &[
            "--logging",
            "warn",
            "topic",
            "create",
            "--name",
            name,
            "--topic.num_partitions",
            &n,
        ],
    )));
}

/// One event read back by `consume`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    pub partition: u64,
    pub id: u64,
    pub metadata: Value,
    pub data: Vec<u8>,
}

/// Parses `consume` output.
pub fn parse_events(text: &str) -> Vec<Ev> {
    use base64::prelude::*;
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            Ev {
                partition: v["partition"].as_u64().expect("partition"),
                id: v["id"].as_u64().expect("id"),
                metadata: v["metadata"].clone(),
                data: BASE64_STANDARD
                    .decode(v["data"].as_str().expect("data"))
                    .expect("base64"),
            }
        })
        .collect()
}

/// Every event of a topic (anonymous consumer, nothing acknowledged).
pub fn consume_all(root: &Path, topic: &str) -> Vec<Ev> {
    let d = files(root);
    let o = ctl(&join(&d, &["consume", "--topic", topic]));
    assert_ok(&o);
    parse_events(&stdout(&o))
}

/// Number of events in a topic, from `topic info`.
pub fn count_events(root: &Path, topic: &str) -> u64 {
    let d = files(root);
    let o = ctl(&join(&d, &["topic", "info", topic]));
    assert_ok(&o);
    let v: Value = serde_json::from_str(&stdout(&o)).expect("info JSON");
    v["events"].as_u64().expect("events")
}

/// Produces JSON Lines into a topic; returns the count printed.
pub fn produce(root: &Path, topic: &str, lines: &str) -> u64 {
    let d = files(root);
    let o = ctl_input(&join(&d, &["produce", "--topic", topic]), lines);
    assert_ok(&o);
    stdout(&o).trim().parse().expect("count")
}

/// A JSON Lines input line with `{"i": i}` metadata and `data`.
pub fn line_with(i: u64, data: &[u8]) -> String {
    use base64::prelude::*;
    format!(
        "{{\"metadata\":{{\"i\":{i}}},\"data\":\"{}\"}}\n",
        BASE64_STANDARD.encode(data)
    )
}

/// Deterministic data for event `i`.
pub fn data_for(i: u64) -> Vec<u8> {
    let len = 1 + (i % 97) as usize * 7;
    (0..len).map(|k| (i as usize * 31 + k) as u8).collect()
}
