//! The six RPCs of a Mofka partition provider.
//!
//! Five go from a client to a partition (provider id = the partition's); the server calls the
//! sixth, [`RecvBatchRequest`], back on the consumer at provider id 0.

use super::bulk::BulkRef;
use super::codec::{Decoder, Encoder, WireMessage};
use super::error::WireError;
use super::result::MofkaResult;
use crate::descriptor::DataDescriptor;
use crate::types::EventId;

/// `mofka_producer_send_batch` arguments: a producer hands a batch of events to a partition,
/// which pulls both bulks.
///
/// The metadata bulk is `[count × u64 sizes][serialized metadata]`, the data bulk
/// `[count × u64 data sizes][event data]` (see [`layout`](super::layout)); both references use
/// offset 0, the bulk's full size and the producer's own address.
///
/// Layouts: Mofka 0.9 writes `ack_early` after `count`; Mofka 0.8 has no such field, so it is
/// not written with [`WireVersion::V0_8`](super::WireVersion::V0_8) and reads as `false`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendBatchRequest {
    /// Name of the producer.
    pub producer_name: String,
    /// Number of events in the batch.
    pub count: u64,
    /// The producer's `ack_early` option (0.9 only; current servers ignore it).
    pub ack_early: bool,
    /// The metadata bulk.
    pub metadata: BulkRef,
    /// The data bulk.
    pub data: BulkRef,
}

/// `mofka_producer_send_batch` response: the id given to the first event of the batch (event
/// `i` of the batch gets `first + i`).
pub type SendBatchResponse = MofkaResult<EventId>;

impl WireMessage for SendBatchRequest {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.string(&self.producer_name);
        enc.u64(self.count);
        if enc.version().has_ack_early() {
            enc.bool(self.ack_early);
        }
        self.metadata.write(enc);
        self.data.write(enc);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        let producer_name = dec.string("producer_name")?;
        let count = dec.u64("count")?;
        let ack_early = if dec.version().has_ack_early() {
            dec.bool("ack_early")?
        } else {
            false
        };
        Ok(SendBatchRequest {
            producer_name,
            count,
            ack_early,
            metadata: dec.get("metadata")?,
            data: dec.get("data")?,
        })
    }
}

/// `mofka_consumer_request_events` arguments: a consumer subscribes to one partition. The
/// server answers at once, then keeps calling [`RecvBatchRequest`] back on the consumer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestEventsRequest {
    /// Opaque 8-byte cookie the server echoes in every callback (the C++ client sends its
    /// `this` pointer as an `intptr_t`).
    pub consumer_ctx: u64,
    /// Index of the partition in the topic.
    pub partition_index: u64,
    /// Name of the consumer (the server keeps acknowledgement cursors by name).
    pub consumer_name: String,
    /// Maximum number of events to send, 0 for no limit.
    pub count: u64,
    /// Events per callback batch (`u64::MAX` for the adaptive batch size).
    pub batch_size: u64,
}

/// `mofka_consumer_request_events` response.
pub type RequestEventsResponse = MofkaResult<()>;

impl WireMessage for RequestEventsRequest {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.u64(self.consumer_ctx);
        enc.u64(self.partition_index);
        enc.string(&self.consumer_name);
        enc.u64(self.count);
        enc.u64(self.batch_size);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(RequestEventsRequest {
            consumer_ctx: dec.u64("consumer_ctx")?,
            partition_index: dec.u64("partition_index")?,
            consumer_name: dec.string("consumer_name")?,
            count: dec.u64("count")?,
            batch_size: dec.u64("batch_size")?,
        })
    }
}

/// `mofka_consumer_recv_batch` arguments: the server hands a batch of events to a consumer
/// (server → client, provider id 0), which pulls the four windows before answering.
///
/// `metadata_sizes`/`metadata` are two windows of one server bulk laid out
/// `[count × u64][metadata]`, and so are `descriptor_sizes`/`descriptors`. A batch with
/// `count == 0` and `first_id == NO_MORE_EVENTS` tells the consumer the partition is complete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecvBatchRequest {
    /// The cookie from [`RequestEventsRequest::consumer_ctx`].
    pub consumer_ctx: u64,
    /// Index of the partition in the topic.
    pub partition_index: u64,
    /// Number of events.
    pub count: u64,
    /// Id of the first event.
    pub first_id: EventId,
    /// Window holding the `count` metadata sizes.
    pub metadata_sizes: BulkRef,
    /// Window holding the serialized metadata.
    pub metadata: BulkRef,
    /// Window holding the `count` descriptor sizes.
    pub descriptor_sizes: BulkRef,
    /// Window holding the saved data descriptors.
    pub descriptors: BulkRef,
}

/// `mofka_consumer_recv_batch` response (sent by the consumer).
pub type RecvBatchResponse = MofkaResult<()>;

impl WireMessage for RecvBatchRequest {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.u64(self.consumer_ctx);
        enc.u64(self.partition_index);
        enc.u64(self.count);
        enc.u64(self.first_id);
        self.metadata_sizes.write(enc);
        self.metadata.write(enc);
        self.descriptor_sizes.write(enc);
        self.descriptors.write(enc);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(RecvBatchRequest {
            consumer_ctx: dec.u64("consumer_ctx")?,
            partition_index: dec.u64("partition_index")?,
            count: dec.u64("count")?,
            first_id: dec.u64("first_id")?,
            metadata_sizes: dec.get("metadata_sizes")?,
            metadata: dec.get("metadata")?,
            descriptor_sizes: dec.get("descriptor_sizes")?,
            descriptors: dec.get("descriptors")?,
        })
    }
}

/// `mofka_consumer_request_data` arguments: a consumer asks the partition to push the selected
/// part of one event's data into `dest` (a write-only bulk of the consumer, offset 0, size =
/// the selected size).
///
/// The descriptor is written with [`DataDescriptor::save`] and no length prefix. Decoding
/// refuses descriptors that would not re-encode to the same bytes (unknown selection tags).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestDataRequest {
    /// The selected descriptor (size = selected bytes, base size = the event's full size).
    pub descriptor: DataDescriptor,
    /// Where to push the bytes.
    pub dest: BulkRef,
}

/// `mofka_consumer_request_data` response: one result per requested descriptor (the current
/// client always sends one).
pub type RequestDataResponse = MofkaResult<Vec<MofkaResult<()>>>;

impl WireMessage for RequestDataRequest {
    fn write(&self, enc: &mut Encoder<'_>) {
        self.descriptor.write(enc);
        self.dest.write(enc);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(RequestDataRequest {
            descriptor: dec.get("descriptor")?,
            dest: dec.get("dest")?,
        })
    }
}

/// A data descriptor in its [`DataDescriptor::save`] form, without a length prefix.
impl WireMessage for DataDescriptor {
    fn write(&self, enc: &mut Encoder<'_>) {
        let mut buf = Vec::new();
        self.save(&mut buf);
        enc.raw(&buf);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        // Walk the layout first, for precise errors (and to refuse selection tags that
        // `DataDescriptor::load` would skip, which would not re-encode the same), then let
        // `load` build the value from exactly those bytes.
        let start = dec.position();
        let all = dec.rest();
        dec.u64("size")?;
        dec.u64("base_size")?;
        dec.bytes_ref("location")?;
        let num_views = dec.u64("num_views")?;
        dec.field("views", |d| {
            for _ in 0..num_views {
                let at = d.position();
                match d.u8("tag")? {
                    1 => {
                        d.u64("offset")?;
                        d.u64("size")?;
                    }
                    2 => {
                        for f in ["offset", "num_blocks", "block_size", "gap_size"] {
                            d.u64(f)?;
                        }
                    }
                    3 => {
                        let n = d.u64("num_segments")?;
                        for _ in 0..n {
                            d.u64("segment.offset")?;
                            d.u64("segment.size")?;
                        }
                    }
                    t => return Err(d.invalid("tag", at, format!("unknown selection tag {t}"))),
                }
            }
            Ok(())
        })?;
        let bytes = &all[..dec.position() - start];
        let (descriptor, used) =
            DataDescriptor::load(bytes).map_err(|e| dec.invalid("", start, e.to_string()))?;
        let mut again = Vec::with_capacity(bytes.len());
        descriptor.save(&mut again);
        if used != bytes.len() || again != bytes {
            return Err(dec.invalid("", start, "descriptor does not re-encode to the same bytes"));
        }
        Ok(descriptor)
    }
}

/// `mofka_consumer_ack_event` arguments: the consumer named `consumer_name` has processed the
/// partition's events up to `event_id`; a consumer of that name restarts after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckEventRequest {
    /// Name of the consumer.
    pub consumer_name: String,
    /// The acknowledged event.
    pub event_id: EventId,
}

/// `mofka_consumer_ack_event` response.
pub type AckEventResponse = MofkaResult<()>;

impl WireMessage for AckEventRequest {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.string(&self.consumer_name);
        enc.u64(self.event_id);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(AckEventRequest {
            consumer_name: dec.string("consumer_name")?,
            event_id: dec.u64("event_id")?,
        })
    }
}

/// `mofka_consumer_remove_consumer` arguments: the consumer unsubscribes from a partition (the
/// server identifies the subscription by cookie, sender address and partition index).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoveConsumerRequest {
    /// The cookie from [`RequestEventsRequest::consumer_ctx`].
    pub consumer_ctx: u64,
    /// Index of the partition in the topic.
    pub partition_index: u64,
}

/// `mofka_consumer_remove_consumer` response.
pub type RemoveConsumerResponse = MofkaResult<()>;

impl WireMessage for RemoveConsumerRequest {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.u64(self.consumer_ctx);
        enc.u64(self.partition_index);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(RemoveConsumerRequest {
            consumer_ctx: dec.u64("consumer_ctx")?,
            partition_index: dec.u64("partition_index")?,
        })
    }
}
