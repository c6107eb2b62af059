//! Helpers

use super::*;

pub(crate) fn driver(root: &Path) -> Driver {
    Driver::new("files", &json!({"root_path": root})).unwrap()
}

pub(crate) fn driver_with(root: &Path, extra: Value) -> Driver {
    let mut options = json!({"root_path": root});
    for (k, v) in extra.as_object().unwrap() {
        options[k] = v.clone();
    }
    Driver::new("files", &options).unwrap()
}

pub(crate) fn pfile(root: &Path, topic: &str, p: usize, file: &str) -> PathBuf {
    root.join(topic)
        .join("partitions")
        .join(format!("{p:08}"))
        .join(file)
}

pub(crate) fn data_of(i: u64) -> Vec<u8> {
    (0..(10 + i * 3)).map(|k| (k + i * 7) as u8).collect()
}

/// Pushes events `range` (metadata `{"i": i}`, data `data_of(i)`) and returns their ids.
pub(crate) fn produce(topic: &TopicHandle, range: std::ops::Range<u64>) -> Vec<u64> {
    let producer = topic.producer().build().unwrap();
    let futures: Vec<_> = range
        .map(|i| producer.push(json!({ "i": i }), DataView::from(data_of(i))))
        .collect();
    producer.flush().wait().unwrap();
    futures.into_iter().map(|f| f.wait().unwrap()).collect()
}

/// Reads partition 0 with a fresh anonymous consumer until nothing comes: (events as (i, data)
/// pairs, errors).
pub(crate) fn read_all(topic: &TopicHandle) -> (Vec<(u64, Vec<u8>)>, Vec<Error>) {
    let consumer = topic.consumer("").build().unwrap();
    let mut evs = Vec::new();
    let mut errs = Vec::new();
    loop {
        match consumer.pull().wait_timeout(Duration::from_millis(300)) {
            Ok(Some(ev)) => {
                if ev.is_end_of_stream() {
                    break;
                }
                evs.push((
                    ev.metadata().json()["i"].as_u64().unwrap(),
                    ev.data().to_vec(),
                ));
            }
            Ok(None) => break,
            Err(e) => {
                errs.push(e);
                break;
            }
        }
    }
    (evs, errs)
}

pub(crate) fn assert_intact(evs: &[(u64, Vec<u8>)], n: u64) {
    assert_eq!(
        evs.len() as u64,
        n,
        "{:?}",
        evs.iter().map(|e| e.0).collect::<Vec<_>>()
    );
    for (k, (i, data)) in evs.iter().enumerate() {
        assert_eq!(*i, k as u64);
        assert_eq!(data, &data_of(k as u64), "data of event {k}");
    }
}

/// Every file under `dir` with its content.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    out
}

pub(crate) fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

pub(crate) fn grow(path: &Path, by: u64) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len + by).unwrap();
}

pub(crate) fn files_backend(d: &Driver) -> &FilesDriver {
    d.backend_as::<FilesDriver>().unwrap()
}
