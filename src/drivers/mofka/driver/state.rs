//! The state [`Shared`](super::shared::Shared) keeps for consumers and producers: the inbox of
//! each consumer subscription, which the `recv_batch` handler fills and readers empty, and the
//! batches sent and not answered yet, with the watchdog that cancels those left without an
//! answer in time.

use super::{lock, mofka_err};
use crate::backend::{BatchCallback, BatchIds, StoredEvent};
use crate::error::Result;
use crate::mercury::ForwardToken;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Events a consumer subscription has received and not handed out yet.
#[derive(Default)]
pub(super) struct InboxState {
    /// The events of each partition, in the order they came.
    pub(super) queues: HashMap<u64, VecDeque<StoredEvent>>,
    /// The number of events in all the queues.
    pub(super) queued: usize,
    /// An error to report to the next fetch.
    pub(super) error: Option<String>,
}

/// A subscription's events, filled by the `recv_batch` handler.
#[derive(Default)]
pub(super) struct Inbox {
    pub(super) state: Mutex<InboxState>,
    /// Notified when events come in or are handed out.
    pub(super) changed: Condvar,
}

/// A batch sent asynchronously: its callback and its partition's turn, taken by whichever of
/// the answer and the watchdog comes first.
pub(super) struct PendingBatch {
    done: Mutex<Option<BatchCallback>>,
    /// The request, to cancel it when it times out.
    token: Mutex<Option<ForwardToken>>,
    timed_out: AtomicBool,
    /// The partition the batch goes to.
    pub(super) partition: usize,
}

impl PendingBatch {
    /// A batch for `partition` whose outcome goes to `done`.
    pub(super) fn new(partition: usize, done: BatchCallback) -> PendingBatch {
        PendingBatch {
            done: Mutex::new(Some(done)),
            token: Mutex::new(None),
            timed_out: AtomicBool::new(false),
            partition,
        }
    }

    /// Whether the watchdog cancelled the request.
    pub(super) fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::SeqCst)
    }

    /// Keeps the request's token, for the watchdog to cancel it.
    pub(super) fn set_token(&self, token: ForwardToken) {
        *lock(&self.token) = Some(token);
    }

    /// Reports the outcome (once).
    pub(super) fn finish(&self, result: Result<BatchIds>) {
        // An answer that made it despite the timeout stands; a cancelled request reports why.
        let result = match result {
            Err(_) if self.timed_out.load(Ordering::SeqCst) => Err(mofka_err(format!(
                "partition {} did not answer a batch in time (mofka_producer_send_batch: no \
                 response; the request was cancelled, but the service may still store the batch)",
                self.partition
            ))),
            r => r,
        };
        let done = lock(&self.done).take();
        if let Some(done) = done {
            // A panicking callback must not stop the partition's later batches.
            if let Err(payload) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done(result)))
            {
                let what = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                eprintln!("diaspora-stream: a mofka batch callback panicked: {what}");
            }
        }
    }

    /// Called by the watchdog: cancels the request. Its completion then reports the timeout
    /// and sends the partition's next batch, so that no later batch overtakes this one.
    fn expire(&self) {
        self.timed_out.store(true, Ordering::SeqCst);
        if let Some(token) = lock(&self.token).as_ref() {
            token.cancel();
        }
    }
}

/// Fails asynchronous batches that got no answer in time (their bulks stay exposed until
/// Mercury completes or cancels the request).
#[derive(Default)]
pub(super) struct Watchdog {
    pending: Mutex<Vec<(Instant, Weak<PendingBatch>, usize)>>,
    started: OnceLock<()>,
}

impl Watchdog {
    /// Cancels the request of `batch` (to `partition`) if it is still unanswered at
    /// `deadline`; the watchdog's thread starts with the first batch watched.
    pub(super) fn watch(
        self: &Arc<Self>,
        deadline: Instant,
        batch: &Arc<PendingBatch>,
        partition: usize,
    ) {
        let mut pending = lock(&self.pending);
        pending.retain(|(_, w, _)| w.strong_count() > 0);
        pending.push((deadline, Arc::downgrade(batch), partition));
        drop(pending);
        self.started.get_or_init(|| {
            let me = Arc::downgrade(self);
            let _ = std::thread::Builder::new()
                .name("diaspora-mofka-watchdog".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_millis(100));
                    let Some(me) = me.upgrade() else {
                        return;
                    };
                    let now = Instant::now();
                    let expired: Vec<(Weak<PendingBatch>, usize)> = {
                        let mut pending = lock(&me.pending);
                        let (gone, kept): (Vec<_>, Vec<_>) =
                            pending.drain(..).partition(|(d, _, _)| *d <= now);
                        *pending = kept;
                        gone.into_iter().map(|(_, w, p)| (w, p)).collect()
                    };
                    for (w, _) in expired {
                        if let Some(batch) = w.upgrade() {
                            batch.expire();
                        }
                    }
                });
        });
    }
}
