//! HDF5 export and import (feature `hdf5`): the file layout read with the hdf5 crate (and with
//! `h5dump` when it is installed), lossless round trips of varied metadata and data, partition
//! subsets and id ranges, bad inputs. The `diaspora-ctl export` / `import` commands are tested in
//! `crates/cli/tests/cli_hdf5.rs`.
#![cfg(feature = "hdf5")]

#[path = "support/varied_events.rs"]
mod varied_events;
use diaspora_stream::components::validator_from_config;
use diaspora_stream::hdf5::hdf5 as h5;
use diaspora_stream::hdf5::{
    export_topic, import_file, Error, ExportFile, ExportOptions, IdRange, ImportOptions,
    FORMAT_NAME,
};
use diaspora_stream::{DataView, Driver, Metadata, TopicComponents, TopicHandle};
use serde_json::{json, Value};
use std::path::Path;
use varied_events::{bytes, varied_metadata, varied_size};

/// One stored event: id, metadata, data.
type Stored = (u64, Value, Vec<u8>);

fn files_driver(root: &Path) -> Driver {
    Driver::new("files", &json!({"root_path": root})).unwrap()
}

/// Pushes `counts[p]` varied events to each partition `p`, then (optionally) an end-of-stream
/// marker to every partition.
fn fill(topic: &TopicHandle, counts: &[usize], end_of_stream: bool) {
    let producer = topic.producer().build().unwrap();
    let mut futures = Vec::new();
    let mut k = 0;
    for (p, &n) in counts.iter().enumerate() {
        for _ in 0..n {
            futures.push(producer.push_to(
                varied_metadata(k),
                DataView::from(bytes(varied_size(k), k as u64)),
                p,
            ));
            k += 1;
        }
    }
    producer.flush().wait().unwrap();
    for f in futures {
        f.wait().unwrap();
    }
    if end_of_stream {
        producer.end_of_stream(0, 1).wait().unwrap();
    }
}

/// Every event of a partition, read below the consumer engine.
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
            let data = match &ev.data {
                Some(d) if d.len() as u64 == ev.data_size => d.to_vec(),
                _ => {
                    let mut buf = vec![0u8; ev.data_size as usize];
                    topic
                        .backend()
                        .read_data(p, &ev, &[(0, ev.data_size)], &mut [&mut buf[..]])
                        .unwrap();
                    buf
                }
            };
            out.push((ev.id, md.into_json(), data));
        }
    }
}

fn read_topic(topic: &TopicHandle) -> Vec<Vec<Stored>> {
    (0..topic.num_partitions())
        .map(|p| read_partition(topic, p))
        .collect()
}

/// Opens a file with the hdf5 crate, without HDF5's file locks (a `diaspora-ctl` started by
/// another test thread would inherit the descriptor and keep the lock; see `file_options` in
/// src/hdf5/layout.rs).
fn h5_file(path: &Path, mode: h5::OpenMode) -> h5::File {
    h5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open_as(path, mode)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads a whole dataset of the file with the hdf5 crate.
fn dataset<T: h5::H5Type>(file: &h5::File, name: &str) -> Vec<T> {
    file.dataset(name)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .read_raw::<T>()
        .unwrap()
}

fn str_attr(loc: &h5::Location, name: &str) -> String {
    loc.attr(name)
        .unwrap_or_else(|e| panic!("attribute {name}: {e}"))
        .read_scalar::<h5::types::VarLenUnicode>()
        .unwrap()
        .as_str()
        .to_string()
}

fn u64_attr(loc: &h5::Location, name: &str) -> u64 {
    loc.attr(name).unwrap().read_scalar::<u64>().unwrap()
}

/// Checks the file's layout against the events of the topic it was exported from.
fn check_layout(path: &Path, topic: &TopicHandle, expected: &[(usize, Vec<Stored>)]) {
    let file = h5_file(path, h5::OpenMode::Read);
    assert_eq!(str_attr(&file, "diaspora_format"), FORMAT_NAME);
    assert_eq!(
        file.attr("format_version")
            .unwrap()
            .read_scalar::<u32>()
            .unwrap(),
        1
    );
    assert_eq!(str_attr(&file, "topic"), topic.name());
    assert_eq!(
        u64_attr(&file, "num_partitions"),
        topic.num_partitions() as u64
    );
    let validator: Value = serde_json::from_str(&str_attr(&file, "validator")).unwrap();
    assert_eq!(validator, topic.validator().metadata());
    let serializer: Value = serde_json::from_str(&str_attr(&file, "serializer")).unwrap();
    assert_eq!(serializer, topic.serializer().metadata());
    let selector: Value = serde_json::from_str(&str_attr(&file, "partition_selector")).unwrap();
    assert_eq!(selector, topic.partition_selector().metadata());
    let exported: Vec<u64> = file
        .attr("exported_partitions")
        .unwrap()
        .read_raw()
        .unwrap();
    let want: Vec<u64> = expected.iter().map(|(p, _)| *p as u64).collect();
    assert_eq!(exported, want);
    let groups = file.group("partitions").unwrap().member_names().unwrap();
    let names: Vec<String> = expected.iter().map(|(p, _)| format!("{p:08}")).collect();
    assert_eq!(groups, names);
    for (p, events) in expected {
        let g = format!("partitions/{p:08}");
        let group = file.group(&g).unwrap();
        assert_eq!(u64_attr(&group, "partition"), *p as u64);
        assert_eq!(u64_attr(&group, "num_events"), events.len() as u64);
        let ids: Vec<u64> = dataset(&file, &format!("{g}/ids"));
        let mo: Vec<u64> = dataset(&file, &format!("{g}/metadata_offsets"));
        let md: Vec<u8> = dataset(&file, &format!("{g}/metadata"));
        let dof: Vec<u64> = dataset(&file, &format!("{g}/data_offsets"));
        let data: Vec<u8> = dataset(&file, &format!("{g}/data"));
        assert_eq!(ids.len(), events.len());
        assert_eq!(mo.len(), events.len() + 1);
        assert_eq!(dof.len(), events.len() + 1);
        assert_eq!(*mo.last().unwrap() as usize, md.len());
        assert_eq!(*dof.last().unwrap() as usize, data.len());
        for name in [
            "ids",
            "metadata",
            "metadata_offsets",
            "data",
            "data_offsets",
        ] {
            assert!(
                !file.dataset(&format!("{g}/{name}")).unwrap().is_chunked(),
                "{g}/{name} is contiguous"
            );
        }
        for (i, (id, meta, bytes)) in events.iter().enumerate() {
            assert_eq!(ids[i], *id);
            let text = std::str::from_utf8(&md[mo[i] as usize..mo[i + 1] as usize]).unwrap();
            assert_eq!(
                text,
                Metadata::new(meta.clone()).dump(),
                "compact JSON text"
            );
            let parsed: Value = serde_json::from_str(text).unwrap();
            assert_eq!(&parsed, meta);
            assert_eq!(&data[dof[i] as usize..dof[i + 1] as usize], &bytes[..]);
        }
    }
}

#[test]
fn whole_topic_round_trip_is_lossless() {
    let dir = tempfile::tempdir().unwrap();
    let driver = files_driver(&dir.path().join("topics"));
    driver
        .create_topic("src", &json!({"num_partitions": 3}))
        .unwrap();
    let src = driver.open_topic("src").unwrap();
    fill(&src, &[13, 8, 0], false);
    let before = read_topic(&src);
    assert_eq!(before.iter().map(Vec::len).sum::<usize>(), 21);
    assert!(before.iter().flatten().any(|e| e.2.len() == 1 << 20));

    let path = dir.path().join("src.h5");
    let summary = export_topic(&src, &path, &ExportOptions::default()).unwrap();
    assert_eq!(summary.events(), 21);
    assert_eq!(summary.num_partitions, 3);
    assert_eq!(
        summary.data_bytes(),
        before
            .iter()
            .flatten()
            .map(|e| e.2.len() as u64)
            .sum::<u64>()
    );
    assert_eq!(summary.partitions[0].first_id, Some(0));
    assert_eq!(summary.partitions[0].last_id, Some(12));
    assert_eq!(summary.partitions[2].first_id, None);
    let expected: Vec<(usize, Vec<Stored>)> = before.iter().cloned().enumerate().collect();
    check_layout(&path, &src, &expected);
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // Exporting never moves a consumer position.
    assert_eq!(src.backend().load_offset("anyone", 0).unwrap(), 0);

    // The reader API gives the same events.
    let file = ExportFile::open(&path).unwrap();
    assert_eq!(file.info().topic, "src");
    assert_eq!(file.info().events(), 21);
    assert_eq!(file.info().ids, IdRange::ALL);
    let read = file.read_events(0, 2..5).unwrap();
    assert_eq!(read.len(), 3);
    for (r, e) in read.iter().zip(&before[0][2..5]) {
        assert_eq!((r.id, r.metadata.json(), &r.data), (e.0, &e.1, &e.2));
    }
    for p in 0..3 {
        file.check_partition(p).unwrap();
    }
    drop(file);

    let summary = import_file(&path, &driver, "dst", &ImportOptions::default()).unwrap();
    assert!(summary.created && summary.ids_preserved);
    assert_eq!(summary.events(), 21);
    let dst = driver.open_topic("dst").unwrap();
    assert_eq!(dst.num_partitions(), 3);
    assert_eq!(
        read_topic(&dst),
        before,
        "every id, metadata value and data byte"
    );
    // The events are readable through a consumer too.
    let consumer = dst.consumer("check").build().unwrap();
    let mut n = 0;
    while let Some(ev) = consumer
        .pull()
        .wait_timeout(std::time::Duration::from_secs(5))
        .unwrap()
    {
        let (id, md, data) = &before[ev.partition()][ev.id() as usize];
        assert_eq!(
            (ev.id(), ev.metadata().json(), ev.data().to_vec()),
            (*id, md, data.clone())
        );
        n += 1;
        if n == 21 {
            break;
        }
    }
    assert_eq!(n, 21);
}

#[test]
fn components_and_end_of_stream_markers_survive() {
    let dir = tempfile::tempdir().unwrap();
    let driver = files_driver(dir.path());
    let schema = json!({"type": "schema", "schema": {"type": "object", "required": ["step"]}});
    let components = TopicComponents {
        validator: validator_from_config(&schema).unwrap(),
        ..TopicComponents::default()
    };
    driver
        .create_topic_with("steps", &json!({"num_partitions": 2}), components)
        .unwrap();
    let src = driver.open_topic("steps").unwrap();
    let producer = src.producer().build().unwrap();
    for step in 0..10u64 {
        producer.push_to(
            json!({"step": step, "x": step as f64 / 3.0}),
            DataView::from(bytes(100, step)),
            (step % 2) as usize,
        );
    }
    producer.flush().wait().unwrap();
    producer.end_of_stream(0, 1).wait().unwrap();
    drop(producer);
    let before = read_topic(&src);
    assert_eq!(before[0].len(), 6, "5 events and the marker");

    let path = dir.path().join("steps.h5");
    export_topic(&src, &path, &ExportOptions::default()).unwrap();
    let info = ExportFile::open(&path).unwrap().info().clone();
    assert_eq!(info.validator, schema);
    let summary = import_file(&path, &driver, "copy", &ImportOptions::default()).unwrap();
    assert!(summary.ids_preserved);
    let copy = driver.open_topic("copy").unwrap();
    assert_eq!(copy.validator().metadata(), schema);
    assert_eq!(read_topic(&copy), before);
    // The imported stream still ends: a consumer stops at the marker.
    let consumer = copy.consumer("c").build().unwrap();
    let got: Vec<_> = consumer
        .iter(std::time::Duration::from_secs(5))
        .map(|e| e.unwrap().id())
        .collect();
    assert_eq!(got.len(), 10);
}

#[test]
fn partition_subsets_and_id_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let driver = files_driver(dir.path());
    driver
        .create_topic("src", &json!({"num_partitions": 3}))
        .unwrap();
    let src = driver.open_topic("src").unwrap();
    fill(&src, &[10, 10, 6], false);
    let before = read_topic(&src);

    let path = dir.path().join("subset.h5");
    let options = ExportOptions {
        partitions: Some(vec![2, 0]),
        ids: "3..8".parse().unwrap(),
        ..Default::default()
    };
    let summary = export_topic(&src, &path, &options).unwrap();
    let per: Vec<(usize, u64)> = summary
        .partitions
        .iter()
        .map(|p| (p.partition, p.events))
        .collect();
    assert_eq!(per, vec![(0, 5), (2, 3)]);
    let expected = vec![(0, before[0][3..8].to_vec()), (2, before[2][3..6].to_vec())];
    check_layout(&path, &src, &expected);
    let info = ExportFile::open(&path).unwrap().info().clone();
    assert_eq!(info.ids, IdRange::new(3, Some(8)).unwrap());
    assert_eq!(info.num_partitions, 3);

    // Into a new topic: same partition count, the selected events, new ids from 0.
    let summary = import_file(&path, &driver, "part", &ImportOptions::default()).unwrap();
    assert!(!summary.ids_preserved);
    let part = driver.open_topic("part").unwrap();
    assert_eq!(part.num_partitions(), 3);
    let got = read_topic(&part);
    let strip = |v: &[Stored]| {
        v.iter()
            .map(|e| (e.1.clone(), e.2.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&got[0]), strip(&before[0][3..8]));
    assert!(got[1].is_empty());
    assert_eq!(strip(&got[2]), strip(&before[2][3..6]));
    assert_eq!(
        got[0].iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );

    // Appending one partition of the file to an existing topic.
    let options = ImportOptions {
        append: true,
        partitions: Some(vec![2]),
        ..Default::default()
    };
    let summary = import_file(&path, &driver, "part", &options).unwrap();
    assert!(!summary.created);
    assert_eq!(summary.events(), 3);
    let got = read_topic(&part);
    assert_eq!(got[2].len(), 6);
    assert_eq!(strip(&got[2][3..]), strip(&before[2][3..6]));
    // A partition the file does not hold.
    let options = ImportOptions {
        append: true,
        partitions: Some(vec![1]),
        ..Default::default()
    };
    let e = import_file(&path, &driver, "part", &options).unwrap_err();
    assert!(e.to_string().contains("holds no partition 1"), "{e}");

    // An id range past the end of every partition gives empty datasets, which import fine.
    let empty = dir.path().join("empty.h5");
    let options = ExportOptions {
        ids: "100..".parse().unwrap(),
        ..Default::default()
    };
    let summary = export_topic(&src, &empty, &options).unwrap();
    assert_eq!(summary.events(), 0);
    check_layout(&empty, &src, &[(0, vec![]), (1, vec![]), (2, vec![])]);
    let summary = import_file(&empty, &driver, "nothing", &ImportOptions::default()).unwrap();
    assert_eq!(summary.events(), 0);
    assert_eq!(driver.open_topic("nothing").unwrap().num_partitions(), 3);

    // Small batches give the same file content.
    let batched = dir.path().join("batched.h5");
    let options = ExportOptions {
        batch_events: 3,
        ..Default::default()
    };
    export_topic(&src, &batched, &options).unwrap();
    let options = ImportOptions {
        batch_events: 2,
        ..Default::default()
    };
    import_file(&batched, &driver, "batched", &options).unwrap();
    assert_eq!(read_topic(&driver.open_topic("batched").unwrap()), before);
}

/// Exports a small topic and returns its file.
fn small_export(dir: &Path, driver: &Driver) -> std::path::PathBuf {
    driver
        .create_topic("small", &json!({"num_partitions": 2}))
        .unwrap();
    let t = driver.open_topic("small").unwrap();
    fill(&t, &[4, 4], false);
    let path = dir.join("small.h5");
    export_topic(&t, &path, &ExportOptions::default()).unwrap();
    path
}

#[test]
fn bad_arguments_and_targets() {
    let dir = tempfile::tempdir().unwrap();
    let driver = files_driver(&dir.path().join("topics"));
    let path = small_export(dir.path(), &driver);
    let t = driver.open_topic("small").unwrap();

    // The output exists: refused unless overwriting.
    let e = export_topic(&t, &path, &ExportOptions::default()).unwrap_err();
    assert!(matches!(e, Error::FileExists(_)), "{e}");
    assert!(e.to_string().contains("small.h5"), "{e}");
    let overwrite = ExportOptions {
        overwrite: true,
        ..Default::default()
    };
    export_topic(&t, &path, &overwrite).unwrap();
    // Missing folder, partitions out of range or twice, empty range.
    let e = export_topic(
        &t,
        dir.path().join("no/such/dir/x.h5"),
        &ExportOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    for (partitions, needle) in [
        (vec![2], "out of range"),
        (vec![1, 1], "twice"),
        (vec![], "empty"),
    ] {
        let o = ExportOptions {
            partitions: Some(partitions),
            ..Default::default()
        };
        let e = export_topic(&t, dir.path().join("y.h5"), &o).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
    let o = ExportOptions {
        ids: IdRange {
            start: 5,
            end: Some(2),
        },
        ..Default::default()
    };
    let e = export_topic(&t, dir.path().join("y.h5"), &o).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    assert!(!dir.path().join("y.h5").exists());
    assert!("9..3".parse::<IdRange>().is_err());

    // The target topic exists.
    let e = import_file(&path, &driver, "small", &ImportOptions::default()).unwrap_err();
    assert!(matches!(e, Error::TopicExists(_)), "{e}");
    // Appending to a topic with too few partitions.
    driver
        .create_topic("narrow", &json!({"num_partitions": 1}))
        .unwrap();
    let append = ImportOptions {
        append: true,
        ..Default::default()
    };
    let e = import_file(&path, &driver, "narrow", &append).unwrap_err();
    assert!(e.to_string().contains("too few"), "{e}");
    // Topic options must be an object.
    let o = ImportOptions {
        topic_options: json!(3),
        ..Default::default()
    };
    assert!(import_file(&path, &driver, "other", &o).is_err());
    assert!(!driver.topic_exists("other").unwrap());
    // A missing file.
    let e = import_file(
        dir.path().join("missing.h5"),
        &driver,
        "x",
        &ImportOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("missing.h5"), "{e}");
}

/// Copies the export, applies `damage` to the copy with the hdf5 crate, and returns the error
/// of importing it (checking that the target topic was not created).
fn import_damaged(
    dir: &Path,
    driver: &Driver,
    src: &Path,
    name: &str,
    damage: impl FnOnce(&h5::File),
) -> String {
    let path = dir.join(format!("{name}.h5"));
    std::fs::copy(src, &path).unwrap();
    {
        let file = h5_file(&path, h5::OpenMode::ReadWrite);
        damage(&file);
    }
    let e = import_file(&path, driver, name, &ImportOptions::default()).unwrap_err();
    assert!(
        !driver.topic_exists(name).unwrap(),
        "a damaged file must not create the topic ({e})"
    );
    let text = e.to_string();
    assert!(
        text.contains(&format!("{name}.h5")),
        "names the file: {text}"
    );
    text
}

#[test]
fn corrupt_and_foreign_files_are_rejected_before_the_topic_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let driver = files_driver(&dir.path().join("topics"));
    let good = small_export(dir.path(), &driver);
    let p0 = "partitions/00000000";

    // Not HDF5 at all.
    let junk = dir.path().join("junk.h5");
    std::fs::write(&junk, b"this is not an HDF5 file").unwrap();
    let e = import_file(&junk, &driver, "junk", &ImportOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Hdf5 { .. }), "{e}");
    assert!(e.to_string().contains("junk.h5"), "{e}");
    // A truncated export.
    let truncated = dir.path().join("truncated.h5");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    assert!(import_file(&truncated, &driver, "truncated", &ImportOptions::default()).is_err());
    assert!(!driver.topic_exists("truncated").unwrap());
    // An HDF5 file of someone else.
    let foreign = dir.path().join("foreign.h5");
    {
        let f = h5_file(&foreign, h5::OpenMode::Create);
        f.new_dataset::<f64>()
            .shape(4)
            .create("temperature")
            .unwrap();
    }
    let e = import_file(&foreign, &driver, "foreign", &ImportOptions::default()).unwrap_err();
    assert!(
        e.to_string().contains("not a diaspora-stream export"),
        "{e}"
    );

    let t = import_damaged(dir.path(), &driver, &good, "version", |f| {
        f.attr("format_version")
            .unwrap()
            .write_scalar(&99u32)
            .unwrap();
    });
    assert!(t.contains("format version 99"), "{t}");
    let t = import_damaged(dir.path(), &driver, &good, "nodata", |f| {
        f.group(p0).unwrap().unlink("data").unwrap();
    });
    assert!(
        t.contains(&format!("/{p0}/data")) && t.contains("missing"),
        "{t}"
    );
    let t = import_damaged(dir.path(), &driver, &good, "offsets", |f| {
        let ds = f.dataset(&format!("{p0}/data_offsets")).unwrap();
        ds.write_slice(&[0u64][..], 3..4).unwrap();
    });
    assert!(
        t.contains(&format!("/{p0}/data_offsets")) && t.contains("decrease"),
        "{t}"
    );
    let t = import_damaged(dir.path(), &driver, &good, "json", |f| {
        let ds = f.dataset(&format!("{p0}/metadata")).unwrap();
        ds.write_slice(&[b'#'][..], 0..1).unwrap();
    });
    assert!(
        t.contains(&format!("/{p0}/metadata")) && t.contains("not valid JSON"),
        "{t}"
    );
    let t = import_damaged(dir.path(), &driver, &good, "ids", |f| {
        let ds = f.dataset(&format!("{p0}/ids")).unwrap();
        ds.write_slice(&[0u64][..], 3..4).unwrap();
    });
    assert!(
        t.contains(&format!("/{p0}/ids")) && t.contains("increasing"),
        "{t}"
    );
    let t = import_damaged(dir.path(), &driver, &good, "config", |f| {
        f.delete_attr("serializer").unwrap();
    });
    assert!(t.contains("serializer") && t.contains("missing"), "{t}");
    let t = import_damaged(dir.path(), &driver, &good, "component", |f| {
        f.delete_attr("validator").unwrap();
        let v: h5::types::VarLenUnicode = "{\"type\":\"no-such-validator\"}".parse().unwrap();
        f.new_attr::<h5::types::VarLenUnicode>()
            .shape(())
            .create("validator")
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    });
    assert!(t.contains("no-such-validator"), "{t}");
}

#[test]
fn h5dump_reads_the_file() {
    if std::process::Command::new("h5dump")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("h5dump is not installed (Debian package hdf5-tools): skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let driver = files_driver(&dir.path().join("topics"));
    driver
        .create_topic("dump", &json!({"num_partitions": 2}))
        .unwrap();
    let t = driver.open_topic("dump").unwrap();
    let producer = t.producer().build().unwrap();
    for i in 0..3u8 {
        producer.push_to(json!({"i": i}), DataView::from(vec![i; 2]), 1);
    }
    producer.flush().wait().unwrap();
    let path = dir.path().join("dump.h5");
    export_topic(&t, &path, &ExportOptions::default()).unwrap();
    let out = std::process::Command::new("h5dump")
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "ATTRIBUTE \"diaspora_format\"",
        "\"diaspora-stream-hdf5\"",
        "ATTRIBUTE \"topic\"",
        "\"dump\"",
        "GROUP \"00000001\"",
        "DATASET \"metadata_offsets\"",
        "H5T_STD_U64LE",
        "H5T_STD_U8LE",
    ] {
        assert!(
            text.contains(needle),
            "h5dump output lacks {needle}:\n{text}"
        );
    }
    // The data blob of partition 1, read by h5dump alone.
    let out = std::process::Command::new("h5dump")
        .args(["-d", "/partitions/00000001/data", "-y", "-w", "0"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0, 0, 1, 1, 2, 2"), "{text}");
}

#[test]
fn analysis_example_stores_and_checks_its_results() {
    // Examples live in target/<profile>/examples, test binaries in target/<profile>/deps.
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join("hdf5_analysis");
    assert!(
        example.exists(),
        "example not built at {} (`cargo test --features hdf5` builds it, `--test hdf5_roundtrip` \
         alone does not: run `cargo build --features hdf5 --example hdf5_analysis` first)",
        example.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.h5");
    let raw = dir.path().join("raw.h5");
    let out = std::process::Command::new(&example)
        .args([
            "--sims", "3", "--steps", "12", "--values", "100", "--output",
        ])
        .arg(&stats)
        .arg("--export")
        .arg(&raw)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("analysed 36 snapshots of 3 ranks over 12 steps"),
        "{text}"
    );
    assert!(text.contains("verified"), "{text}");
    // The results file, read independently.
    let file = h5_file(&stats, h5::OpenMode::Read);
    let steps = file.dataset("steps").unwrap();
    assert_eq!(steps.shape(), vec![12]);
    let means: Vec<f64> = dataset(&file, "rank_means");
    assert_eq!(means.len(), 36);
    assert_eq!(ExportFile::open(&raw).unwrap().info().events(), 36 + 3);
}
