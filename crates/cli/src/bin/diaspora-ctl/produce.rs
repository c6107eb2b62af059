//! `produce`: JSON Lines from stdin to a topic.
//!
//! Each line is `{"metadata": <any JSON>, "data": "<base64>", "partition": <index>}` (`data` and
//! `partition` optional; blank lines skipped). Every line is checked completely (JSON, fields,
//! base64, partition range, the topic's validator) before it is pushed, so a bad line stops the
//! command with nothing of it or after it written; what came before is flushed. The number of
//! events stored is printed on stdout, also when the command fails.

use crate::common::{open_driver, open_topic, parse_batch_size, DriverArgs};
use crate::error::{CliError, CliResult};
use crate::options::Dotted;
use base64::prelude::*;
use clap::Args;
use diaspora_stream::{BatchSize, DataView, EventId, Future, Metadata};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::BufRead;

/// Help text after the options.
pub const HELP: &str = "\
Input (stdin), one event per line:
  {\"metadata\": <any JSON>, \"data\": \"<base64>\", \"partition\": <index>}
\"data\" (default: none) and \"partition\" (default: the topic's partition selector) are optional;
blank lines are skipped. A malformed line stops the command with an error naming its line number;
nothing of it or after it is written. A storage failure (a full disk, ...) stops reading; the
error then says which lines were stored, also when partitions fared differently. The number of
events stored is printed on stdout.

Driver options: --driver.KEY VALUE (see `diaspora-ctl topic create --help` for value typing).

Example:
  echo '{\"metadata\": {\"step\": 1}, \"data\": \"AAEC\"}' | \\
      diaspora-ctl produce --driver files --driver.root_path /tmp/topics --topic steps";

/// Options of `produce`.
#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    driver: DriverArgs,

    /// Topic to write to.
    #[arg(long, value_name = "TOPIC")]
    topic: String,

    /// Events per batch: a positive integer, or `adaptive`.
    #[arg(long, value_name = "N", value_parser = parse_batch_size, default_value = "adaptive")]
    batch_size: BatchSize,
}

/// One checked input line.
struct Line {
    metadata: Metadata,
    data: DataView,
    partition: Option<usize>,
}

/// Parses and checks one input line against a topic with `partitions` partitions.
fn parse_line(text: &str, partitions: usize) -> Result<Line, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err(
            "expected a JSON object {\"metadata\": ..., \"data\": \"<base64>\", \"partition\": N}"
                .into(),
        );
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "metadata" | "data" | "partition"))
    {
        return Err(format!(
            "unknown key {k:?} (expected \"metadata\", \"data\", \"partition\")"
        ));
    }
    let metadata = Metadata::new(
        obj.get("metadata")
            .cloned()
            .ok_or_else(|| "missing \"metadata\"".to_string())?,
    );
    let data = match obj.get("data") {
        None | Some(Value::Null) => DataView::new(),
        Some(Value::String(s)) => DataView::from(
            BASE64_STANDARD
                .decode(s)
                .map_err(|e| format!("\"data\" is not valid base64: {e}"))?,
        ),
        Some(_) => return Err("\"data\" must be a base64 string".into()),
    };
    let partition = match obj.get("partition") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let p = v
                .as_u64()
                .ok_or_else(|| format!("\"partition\" must be a non-negative integer, not {v}"))?;
            if p >= partitions as u64 {
                return Err(format!(
                    "partition {p} is out of range (the topic has {partitions})"
                ));
            }
            Some(p as usize)
        }
    };
    Ok(Line {
        metadata,
        data,
        partition,
    })
}

/// Line numbers as ranges: `1-3, 5, 7-9`.
fn line_ranges(lines: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let mut j = i;
        while j + 1 < lines.len() && lines[j + 1] == lines[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            lines[i].to_string()
        } else {
            format!("{}-{}", lines[i], lines[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

/// What happened to the pushed lines, in words that are true whatever the partitions did.
fn stored_report(stored: &[usize], lost: &[usize]) -> String {
    match (stored.last(), lost.first()) {
        (_, None) => format!(
            "{} event(s) from earlier lines were written, nothing after",
            stored.len()
        ),
        (None, Some(_)) => format!("no event was written (lines {} failed)", line_ranges(lost)),
        (Some(&last_stored), Some(&first_lost)) if last_stored < first_lost => format!(
            "{} event(s) were written, from lines {}; lines {} and all after them were not",
            stored.len(),
            line_ranges(stored),
            line_ranges(lost)
        ),
        _ => format!(
            "{} event(s) were written, from lines {}; lines {} were NOT written although later \
             ones were (partitions are written independently)",
            stored.len(),
            line_ranges(stored),
            line_ranges(lost)
        ),
    }
}

/// `produce`.
pub fn run(a: &ProduceArgs, dotted: &Dotted) -> CliResult<()> {
    let (driver, _) = open_driver(&a.driver, dotted)?;
    let topic = open_topic(&driver, &a.topic)?;
    let producer = topic
        .producer()
        .name("diaspora-ctl produce")
        .batch_size(a.batch_size)
        .build()
        .map_err(|e| CliError(format!("cannot create a producer: {e}")))?;
    let mut in_flight: VecDeque<(usize, Future<EventId>)> = VecDeque::new();
    // Line numbers of the events stored and of those that failed, in input order.
    let mut stored: Vec<usize> = Vec::new();
    let mut lost: Vec<usize> = Vec::new();
    let mut failure: Option<String> = None;
    let mut storage_failure: Option<String> = None;
    let settle = |lineno: usize,
                  f: Future<EventId>,
                  stored: &mut Vec<usize>,
                  lost: &mut Vec<usize>,
                  storage_failure: &mut Option<String>| match f.wait() {
        Ok(_) => stored.push(lineno),
        Err(e) => {
            lost.push(lineno);
            storage_failure.get_or_insert(format!("line {lineno}: {e}"));
        }
    };
    let stdin = std::io::stdin();
    for (i, line) in stdin.lock().lines().enumerate() {
        let lineno = i + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                failure = Some(format!("line {lineno}: cannot read stdin: {e}"));
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let ev = match parse_line(&line, topic.num_partitions()) {
            Ok(ev) => ev,
            Err(e) => {
                failure = Some(format!("line {lineno}: {e}"));
                break;
            }
        };
        if let Err(e) = topic.validator().validate(&ev.metadata, &ev.data) {
            failure = Some(format!(
                "line {lineno}: rejected by the topic's validator: {e}"
            ));
            break;
        }
        let f = match ev.partition {
            Some(p) => producer.push_to(ev.metadata, ev.data, p),
            None => producer.push(ev.metadata, ev.data),
        };
        // Failures detected before batching (e.g. a reserved key, a custom partition selector)
        // are immediate.
        if f.completed() {
            if let Err(e) = f.wait() {
                failure = Some(format!("line {lineno}: {e}"));
                break;
            }
        }
        in_flight.push_back((lineno, f));
        while in_flight.front().is_some_and(|(_, f)| f.completed()) {
            if let Some((l, f)) = in_flight.pop_front() {
                settle(l, f, &mut stored, &mut lost, &mut storage_failure);
            }
        }
        if storage_failure.is_some() {
            break;
        }
    }
    let flushed = producer.flush().wait();
    for (l, f) in in_flight {
        settle(l, f, &mut stored, &mut lost, &mut storage_failure);
    }
    drop(producer);
    stored.sort_unstable();
    lost.sort_unstable();
    println!("{}", stored.len());
    if let Some(e) = storage_failure {
        return Err(CliError(format!(
            "storing events failed: {e} ({})",
            stored_report(&stored, &lost)
        )));
    }
    if let Some(f) = failure {
        return Err(CliError(format!("{f} ({})", stored_report(&stored, &lost))));
    }
    flushed.map_err(|e| CliError(format!("flushing the producer failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let l = parse_line(
            r#"{"metadata": {"a": 1}, "data": "AAEC", "partition": 1}"#,
            2,
        )
        .unwrap();
        assert_eq!(l.metadata.json()["a"], 1);
        assert_eq!(l.data.to_vec(), vec![0, 1, 2]);
        assert_eq!(l.partition, Some(1));
        let l = parse_line(r#"{"metadata": "x"}"#, 1).unwrap();
        assert!(l.data.is_empty() && l.partition.is_none());
        for bad in [
            "{",
            "[1]",
            r#"{"data": "AA=="}"#,
            r#"{"metadata": 1, "data": "@@"}"#,
            r#"{"metadata": 1, "data": 5}"#,
            r#"{"metadata": 1, "partition": 2}"#,
            r#"{"metadata": 1, "partition": -1}"#,
            r#"{"metadata": 1, "extra": 0}"#,
        ] {
            assert!(parse_line(bad, 2).is_err(), "{bad}");
        }
    }

    #[test]
    fn reports_say_which_lines_were_stored() {
        assert_eq!(line_ranges(&[1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
        assert_eq!(line_ranges(&[]), "");
        let r = stored_report(&[1, 2, 3], &[]);
        assert!(
            r.starts_with("3 event(s)") && r.contains("nothing after"),
            "{r}"
        );
        let r = stored_report(&[1, 2], &[3, 4]);
        assert!(
            r.contains("lines 1-2") && r.contains("lines 3-4 and all after"),
            "{r}"
        );
        let r = stored_report(&[1, 3], &[2]);
        assert!(
            r.contains("lines 1, 3") && r.contains("lines 2 were NOT"),
            "{r}"
        );
        let r = stored_report(&[], &[1]);
        assert!(r.contains("no event was written"), "{r}");
    }
}
