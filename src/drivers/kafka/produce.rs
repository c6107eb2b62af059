//! Producing: batches handed to librdkafka, and their delivery reports routed back to them.

use super::context::{Access, Ctx};
use super::kafka_err;
use super::records::encode_record;
use crate::backend::{BatchCallback, BatchIds, EventBatch};
use crate::error::Result;
use crate::types::EventId;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, ProducerContext, ThreadedProducer};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Completion state of one batch sent to librdkafka.
pub(super) struct BatchState {
    pub(super) ids: Mutex<Vec<Option<std::result::Result<EventId, String>>>>,
    pub(super) remaining: AtomicUsize,
    pub(super) done: Mutex<Option<BatchCallback>>,
    pub(super) topic: String,
    pub(super) partition: usize,
}

impl BatchState {
    pub(super) fn record(&self, index: usize, result: std::result::Result<EventId, String>) {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(result);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }

    pub(super) fn finish(&self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        let mut out = Vec::with_capacity(ids.len());
        let mut failure = None;
        for (i, r) in ids.into_iter().enumerate() {
            match r {
                Some(Ok(id)) => out.push(id),
                Some(Err(e)) => {
                    failure.get_or_insert(format!("event {i} of the batch: {e}"));
                }
                None => {
                    failure.get_or_insert(format!("event {i} of the batch was never reported"));
                }
            }
        }
        let result = match failure {
            None => Ok(BatchIds::Each(out)),
            Some(e) => Err(kafka_err(
                format!(
                    "delivery to {} partition {} failed",
                    self.topic, self.partition
                ),
                e,
            )),
        };
        if let Some(done) = self.done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            done(result);
        }
    }
}

/// Routes delivery reports to their batch; the rest is the driver's client context (tokens,
/// authentication failures).
pub(super) struct DeliveryContext(Ctx);

impl ClientContext for DeliveryContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = Ctx::ENABLE_REFRESH_OAUTH_TOKEN;

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.0.error(error, reason);
    }

    fn generate_oauth_token(
        &self,
        oauthbearer_config: Option<&str>,
    ) -> std::result::Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        self.0.generate_oauth_token(oauthbearer_config)
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<(Arc<BatchState>, usize)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (state, index) = *opaque;
        match result {
            Ok(m) if m.offset() >= 0 => state.record(index, Ok(m.offset() as u64)),
            Ok(m) => state.record(index, Err(format!("no offset reported ({})", m.offset()))),
            Err((e, _)) => state.record(index, Err(e.to_string())),
        }
    }
}

/// The producing side of an open topic: its librdkafka producer, made on first use and shared
/// by the producers of the topic handle.
pub(super) struct Writer {
    kafka_topic: String,
    /// What the driver's clients are made from, and the producer's overrides.
    access: Access,
    overrides: BTreeMap<String, String>,
    producer: Mutex<Option<Arc<ThreadedProducer<DeliveryContext>>>>,
}

impl Writer {
    pub(super) fn new(
        kafka_topic: String,
        access: Access,
        overrides: BTreeMap<String, String>,
    ) -> Self {
        Writer {
            kafka_topic,
            access,
            overrides,
            producer: Mutex::new(None),
        }
    }

    fn producer(&self) -> Result<Arc<ThreadedProducer<DeliveryContext>>> {
        let mut w = self.producer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = w.as_ref() {
            return Ok(p.clone());
        }
        let producer: ThreadedProducer<DeliveryContext> = self.access.create_with_context(
            "a Kafka producer",
            &[
                ("allow.auto.create.topics", "false"),
                ("enable.idempotence", "true"),
            ],
            &self.overrides,
            DeliveryContext(self.access.context()),
        )?;
        let p = Arc::new(producer);
        *w = Some(p.clone());
        Ok(p)
    }

    /// Hands every record of `batch` to librdkafka for `partition` (checked by the caller);
    /// `done` runs once all are delivered (or one failed).
    pub(super) fn send_batch(&self, partition: usize, batch: EventBatch, done: BatchCallback) {
        if batch.is_empty() {
            return done(Ok(BatchIds::Each(Vec::new())));
        }
        let producer = match self.producer() {
            Ok(p) => p,
            Err(e) => return done(Err(e)),
        };
        // The cluster refuses our credentials: these records would wait for
        // message.timeout.ms and fail; say why now.
        if let Some(e) = self.access.failures.current() {
            return done(Err(e));
        }
        let state = Arc::new(BatchState {
            ids: Mutex::new(vec![None; batch.len()]),
            remaining: AtomicUsize::new(batch.len()),
            done: Mutex::new(Some(done)),
            topic: self.kafka_topic.clone(),
            partition,
        });
        for i in 0..batch.len() {
            let value = encode_record(batch.metadata_of(i), batch.data_of(i));
            let mut record = BaseRecord::<(), Vec<u8>, _>::with_opaque_to(
                &self.kafka_topic,
                Box::new((state.clone(), i)),
            )
            .partition(partition as i32)
            .payload(&value);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        // librdkafka's queue is full: let deliveries drain, then retry.
                        record = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, r)) => {
                        let (state, index) = *r.delivery_opaque;
                        state.record(index, Err(e.to_string()));
                        break;
                    }
                }
            }
        }
    }
}
