//! Producer liveness for any driver that can keep one small record per producer: the files
//! driver's lease files, a side topic on Kafka, keys of Mofka's master database.
//!
//! A producer's [`Renewer`] writes its [`Heartbeat`] (who it is, the last ids it stored, and a
//! beat count) through the driver's [`HeartbeatStore`] at once, then again every interval from
//! a background thread, and withdraws it when dropped. A process killed with SIGKILL leaves its
//! last record behind, and the beat count stops moving.
//!
//! Consumers read the records back and pass them through a [`HeartbeatWatch`], which measures
//! how long each beat count has stayed the same on this process's own clock, from the moment
//! it first saw that count. No clock of another node is compared with ours, so clocks that
//! differ between nodes do not matter; the price is that a producer that died before a consumer
//! first looked is reported one liveness timeout after that first look.

use crate::backend::{ProducerInfo, ProducerLease};
use crate::error::{Error, Result};
use crate::types::EventId;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often producers renew their heartbeat unless option `lease_interval_ms` says otherwise.
pub(crate) const DEFAULT_LEASE_INTERVAL: Duration = Duration::from_secs(1);

/// The driver option `lease_interval_ms` of `driver` (default [`DEFAULT_LEASE_INTERVAL`]):
/// from 10 ms to one hour, or 0 for no leases (`None`), the same on every driver.
pub(crate) fn lease_interval(driver: &'static str, ms: Option<u64>) -> Result<Option<Duration>> {
    match ms {
        None => Ok(Some(DEFAULT_LEASE_INTERVAL)),
        Some(0) => Ok(None),
        Some(ms) if (10..=3_600_000).contains(&ms) => Ok(Some(Duration::from_millis(ms))),
        Some(ms) => Err(Error::config(
            driver,
            format!(
                "option \"lease_interval_ms\": must be 0 (no leases) or from 10 to 3600000 \
                 (milliseconds), not {ms}"
            ),
        )),
    }
}

/// One producer's liveness record, written as its [`ProducerInfo`]'s JSON object with one
/// more member, `beat`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Heartbeat {
    /// Who the producer is and what it stored.
    pub info: ProducerInfo,
    /// How many times the record was written (it moves while the producer lives).
    pub beat: u64,
}

impl Heartbeat {
    /// The record as JSON.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(&self.info).expect("producer info always encodes");
        v["beat"] = self.beat.into();
        serde_json::to_vec(&v).expect("a heartbeat always encodes")
    }

    /// A record read back from `source` (named in the error).
    #[cfg_attr(not(any(feature = "kafka", feature = "mofka")), allow(dead_code))]
    pub(crate) fn from_json(bytes: &[u8], source: &str) -> Result<Self> {
        let bad = |e: serde_json::Error| {
            Error::corrupt(source, 0, format!("not a producer heartbeat: {e}"))
        };
        let mut v: serde_json::Value = serde_json::from_slice(bytes).map_err(bad)?;
        let beat = v
            .as_object_mut()
            .and_then(|m| m.remove("beat"))
            .and_then(|b| b.as_u64())
            .unwrap_or(0);
        Ok(Heartbeat {
            info: serde_json::from_value(v).map_err(bad)?,
            beat,
        })
    }
}

/// A key naming one producer for the life of its lease: host, process id and the time it
/// started (a process may run several producers, one after the other or at once).
pub(crate) fn producer_key(info: &ProducerInfo) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{}-{nanos}-{n}", info.host, info.pid)
}

/// Where a driver keeps heartbeats: one record per producer key.
pub(crate) trait HeartbeatStore: Send + Sync + 'static {
    /// Writes (or rewrites) the record of `key`.
    fn write(&self, key: &str, beat: &Heartbeat) -> Result<()>;
    /// Removes the record of `key` (a clean end).
    fn withdraw(&self, key: &str) -> Result<()>;
}

struct Inner {
    store: Arc<dyn HeartbeatStore>,
    key: String,
    beat: Mutex<Heartbeat>,
    /// `Some(withdraw)` once the thread must stop: withdraw the record, or leave it (a crash).
    stop: Mutex<Option<bool>>,
    wake: Condvar,
}

impl Inner {
    fn write(&self) -> Result<()> {
        let beat = {
            let mut b = self.beat.lock().unwrap_or_else(|e| e.into_inner());
            b.beat += 1;
            b.clone()
        };
        self.store.write(&self.key, &beat)
    }
}

/// A producer's heartbeat, written every interval by a background thread until dropped.
pub(crate) struct Renewer {
    inner: Arc<Inner>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Renewer {
    /// Writes the heartbeat of `info` under `key` in `store`, then every `interval`.
    pub(crate) fn start(
        driver: &'static str,
        store: Arc<dyn HeartbeatStore>,
        key: String,
        info: &ProducerInfo,
        interval: Duration,
    ) -> Result<Self> {
        let inner = Arc::new(Inner {
            store,
            key,
            beat: Mutex::new(Heartbeat {
                info: info.clone(),
                beat: 0,
            }),
            stop: Mutex::new(None),
            wake: Condvar::new(),
        });
        inner.write()?;
        let i = inner.clone();
        let thread = std::thread::Builder::new()
            .name("diaspora-lease".into())
            .spawn(move || {
                let mut stop = i.stop.lock().unwrap_or_else(|e| e.into_inner());
                while stop.is_none() {
                    stop = i
                        .wake
                        .wait_timeout(stop, interval)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    if stop.is_some() {
                        break;
                    }
                    drop(stop);
                    if let Err(e) = i.write() {
                        eprintln!("diaspora-stream: cannot renew a producer's lease: {e}");
                    }
                    stop = i.stop.lock().unwrap_or_else(|e| e.into_inner());
                }
            })
            .map_err(|e| Error::Driver {
                driver,
                message: format!("cannot start the thread renewing a producer's lease: {e}"),
            })?;
        Ok(Renewer {
            inner,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the background thread; `withdraw` also removes the record.
    fn stop(&self, withdraw: bool) {
        {
            let mut stop = self.inner.stop.lock().unwrap_or_else(|e| e.into_inner());
            if stop.is_some() {
                return;
            }
            *stop = Some(withdraw);
        }
        self.inner.wake.notify_all();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
        if withdraw {
            if let Err(e) = self.inner.store.withdraw(&self.inner.key) {
                eprintln!("diaspora-stream: cannot withdraw a producer's lease: {e}");
            }
        }
    }
}

impl ProducerLease for Renewer {
    fn stored(&self, partition: usize, last_id: EventId) {
        let mut b = self.inner.beat.lock().unwrap_or_else(|e| e.into_inner());
        let e = b.info.last_ids.entry(partition).or_insert(last_id);
        *e = (*e).max(last_id);
    }

    fn ended(&self) {
        self.inner
            .beat
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .info
            .ended = true;
        // Written at once: a crash right after the end must not look like a lost producer.
        if let Err(e) = self.inner.write() {
            eprintln!("diaspora-stream: cannot record the end of a producer's stream: {e}");
        }
    }

    fn stop_renewing(&self) {
        self.stop(false);
    }

    fn withdraw(&self) {
        self.stop(true);
    }
}

impl Drop for Renewer {
    /// Withdraws the heartbeat if [`ProducerLease::withdraw`] was not called (nothing more
    /// when it was: a producer's lease may be dropped on a thread that must not block).
    fn drop(&mut self) {
        self.stop(true);
    }
}

/// How long each producer's heartbeat has stood still, as this process sees it.
#[derive(Default)]
#[cfg_attr(not(any(feature = "kafka", feature = "mofka")), allow(dead_code))]
pub(crate) struct HeartbeatWatch {
    /// Key -> (last beat count seen, when it was first seen).
    seen: Mutex<HashMap<String, (u64, Instant)>>,
}

#[cfg_attr(not(any(feature = "kafka", feature = "mofka")), allow(dead_code))]
impl HeartbeatWatch {
    /// The producers of `records` (key, record), each with how long its beat count has not
    /// moved. Keys no longer present are forgotten.
    pub(crate) fn ages(&self, records: Vec<(String, Heartbeat)>) -> Vec<(ProducerInfo, Duration)> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|k, _| records.iter().any(|(key, _)| key == k));
        records
            .into_iter()
            .map(|(key, record)| {
                let entry = seen.entry(key).or_insert((record.beat, now));
                if entry.0 != record.beat {
                    *entry = (record.beat, now);
                }
                (record.info, now - entry.1)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in memory that counts writes.
    #[derive(Default)]
    struct Memory {
        records: Mutex<HashMap<String, Heartbeat>>,
    }

    impl HeartbeatStore for Memory {
        fn write(&self, key: &str, beat: &Heartbeat) -> Result<()> {
            self.records
                .lock()
                .unwrap()
                .insert(key.to_string(), beat.clone());
            Ok(())
        }
        fn withdraw(&self, key: &str) -> Result<()> {
            self.records.lock().unwrap().remove(key);
            Ok(())
        }
    }

    impl Memory {
        fn all(&self) -> Vec<(String, Heartbeat)> {
            let r = self.records.lock().unwrap();
            r.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
    }

    /// A producer of rank `rank` renewing its heartbeat every 10 ms in a new store.
    fn renewing(rank: Option<u64>) -> (Arc<Memory>, Renewer) {
        let store = Arc::new(Memory::default());
        let info = ProducerInfo::this_process("p", rank);
        let r = Renewer::start(
            "test",
            store.clone(),
            producer_key(&info),
            &info,
            Duration::from_millis(10),
        )
        .unwrap();
        (store, r)
    }

    #[test]
    fn a_renewer_beats_until_dropped_and_then_withdraws() {
        let (store, r) = renewing(Some(3));
        r.stored(0, 7);
        r.stored(0, 5); // ids only grow
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.all()[0].1.beat < 3 {
            assert!(Instant::now() < deadline, "the lease is not renewed");
            std::thread::sleep(Duration::from_millis(5));
        }
        let (_, b) = &store.all()[0];
        assert_eq!(b.info.last_ids.get(&0), Some(&7));
        assert_eq!(b.info.rank, Some(3));
        r.ended();
        assert!(store.all()[0].1.info.ended);
        drop(r);
        assert!(store.all().is_empty(), "a clean end withdraws the lease");
    }

    #[test]
    fn a_renewer_that_stops_renewing_leaves_its_record() {
        let (store, r) = renewing(None);
        r.stop_renewing();
        let beat = store.all()[0].1.beat;
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(store.all()[0].1.beat, beat, "still renewed");
        drop(r);
        assert_eq!(store.all().len(), 1, "a crash leaves the record");
    }

    #[test]
    fn a_heartbeat_reads_back_what_it_wrote() {
        let mut info = ProducerInfo::this_process("p", Some(2));
        info.last_ids.insert(3, 17);
        let b = Heartbeat { info, beat: 9 };
        assert_eq!(Heartbeat::from_json(&b.to_json(), "test").unwrap(), b);
        let e = Heartbeat::from_json(b"[1]", "somewhere")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("somewhere") && e.contains("not a producer heartbeat"),
            "{e}"
        );
    }

    #[test]
    fn the_watch_measures_how_long_a_beat_stood_still() {
        let watch = HeartbeatWatch::default();
        let rec = |beat| Heartbeat {
            info: ProducerInfo::this_process("p", None),
            beat,
        };
        let ages = watch.ages(vec![("a".into(), rec(1))]);
        assert!(ages[0].1 < Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(60));
        let still = watch.ages(vec![("a".into(), rec(1))]);
        assert!(still[0].1 >= Duration::from_millis(60), "{still:?}");
        let moved = watch.ages(vec![("a".into(), rec(2))]);
        assert!(moved[0].1 < Duration::from_millis(50), "{moved:?}");
        // A withdrawn key is forgotten: seen again, it starts from zero.
        assert!(watch.ages(Vec::new()).is_empty());
        std::thread::sleep(Duration::from_millis(20));
        assert!(watch.ages(vec![("a".into(), rec(2))])[0].1 < Duration::from_millis(20));
    }
}
