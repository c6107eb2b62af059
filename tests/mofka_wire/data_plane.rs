//! The data plane rebuilt from the scenario

use super::fixtures::addr_of;
use super::fixtures::req;
use super::fixtures::transcript;
use super::fixtures::Msg;
use super::fixtures::Run;
use super::*;

/// Events of the scenario: partition `i % 2`, metadata `{"i":i}`, data `data-i`, except event 3
/// (two segments, `data-3` and `XY`) and event 5 (no data).
pub(crate) fn event_segments(i: u64) -> Vec<Vec<u8>> {
    match i {
        3 => vec![b"data-3".to_vec(), b"XY".to_vec()],
        5 => vec![],
        _ => vec![format!("data-{i}").into_bytes()],
    }
}

pub(crate) fn event_data(i: u64) -> Vec<u8> {
    event_segments(i).concat()
}

pub(crate) fn partition_events(p: u64) -> Vec<u64> {
    (0..10).filter(|i| i % 2 == p).collect()
}

/// Where the memory partition keeps event `i`.
pub(crate) fn location(i: u64) -> MemoryLocation {
    let p = i % 2;
    let offset = partition_events(p)
        .into_iter()
        .take_while(|&j| j < i)
        .map(|j| event_data(j).len() as u64)
        .sum();
    MemoryLocation {
        offset,
        size: event_data(i).len() as u64,
    }
}

/// `(partition, events, first id)` of each batch (the producer's and the server's batch size
/// is 4).
pub(crate) fn batches() -> Vec<(u64, Vec<u64>, u64)> {
    vec![
        (0, vec![0, 2, 4, 6], 0),
        (1, vec![1, 3, 5, 7], 0),
        (0, vec![8], 4),
        (1, vec![9], 4),
    ]
}

/// A handle as Mercury 2.4 builds it on each transport, already masked (addresses and network
/// handles zero): ofi registers each segment (48-byte handles), na+sm registers several
/// segments as one (flag REGV, a 24-byte handle plus 16 bytes per segment).
pub(crate) fn masked_handle(
    run: Run,
    read_only: bool,
    segments: &[usize],
    eager: Option<Vec<u8>>,
) -> BulkHandle {
    let mut flags = if read_only {
        bulk_flags::READ_ONLY
    } else {
        bulk_flags::WRITE_ONLY
    };
    if eager.is_some() {
        flags |= bulk_flags::EAGER;
    }
    let network_handles = match run {
        Run::Tcp => vec![vec![0u8; 48]; segments.len()],
        Run::Sm if segments.len() > 1 => {
            flags |= bulk_flags::REGV;
            vec![vec![0u8; 24 + 16 * segments.len()]]
        }
        Run::Sm => vec![vec![0u8; 40]],
    };
    BulkDescription {
        total_len: segments.iter().sum::<usize>() as u64,
        flags,
        segments: segments
            .iter()
            .map(|&len| BulkSegment {
                address: 0,
                len: len as u64,
            })
            .collect(),
        network_handles,
        eager_data: eager,
    }
    .to_handle()
}

pub(crate) fn metadata_regions(events: &[u64]) -> (Vec<u8>, Vec<u8>) {
    let metas: Vec<Metadata> = events
        .iter()
        .map(|&i| Metadata::new(json!({ "i": i })))
        .collect();
    layout::encode_metadata(&metas, &DefaultSerializer).unwrap()
}

pub(crate) fn handles_mut(r: &mut AnyRequest) -> Vec<&mut BulkHandle> {
    match r {
        AnyRequest::SendBatch(m) => vec![&mut m.metadata.handle, &mut m.data.handle],
        AnyRequest::RecvBatch(m) => vec![
            &mut m.metadata_sizes.handle,
            &mut m.metadata.handle,
            &mut m.descriptor_sizes.handle,
            &mut m.descriptors.handle,
        ],
        AnyRequest::RequestData(m) => vec![&mut m.dest.handle],
        AnyRequest::Get(m) => vec![&mut m.bulk],
        AnyRequest::DocStore(m) => vec![&mut m.bulk],
        AnyRequest::DocList(m) => vec![&mut m.bulk],
        _ => vec![],
    }
}

/// The captured payload with every bulk handle masked.
pub(crate) fn masked_payload(m: &Msg) -> Vec<u8> {
    let mut r = req(m);
    for h in handles_mut(&mut r.body) {
        *h = h.masked().unwrap_or_else(|e| panic!("seq {}: {e}", m.seq));
    }
    let mut out = Vec::new();
    r.encode_payload(WireVersion::V0_8, &mut out);
    out
}

pub(crate) fn encode_v08<M: WireMessage>(m: &M) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode_as(WireVersion::V0_8, &mut out);
    out
}

pub(crate) fn sorted_hex(v: impl IntoIterator<Item = Vec<u8>>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().map(hex::encode).collect();
    v.sort();
    v
}

/// Builds every data-plane message of the scenario from first principles (names, counts, ids,
/// metadata and data of the events, memory-partition locations, the consumer's selections) and
/// checks that the captured messages are exactly those, bulk handles compared masked.
pub(crate) fn data_plane_from_scenario(run: Run) {
    let msgs = transcript(run);
    let producer = addr_of(&msgs, "producer");
    let server = addr_of(&msgs, "server");
    let consumer = addr_of(&msgs, "consumer");
    let sent = |rpc: Rpc, request: bool| -> Vec<&Msg> {
        msgs.iter()
            .filter(|m| m.send && m.request == request && m.rpc == rpc.name())
            .collect()
    };
    // The consumer's cookie is a pointer of the C++ client: take it from the capture.
    let AnyRequest::RequestEvents(first) = req(sent(Rpc::RequestEvents, true)[0]).body else {
        panic!()
    };
    let ctx = first.consumer_ctx;

    // send_batch
    let mut expected = Vec::new();
    for (_, events, _) in batches() {
        let (sizes, content) = metadata_regions(&events);
        let metadata_len = sizes.len() + content.len();
        let meta_handle = masked_handle(
            run,
            true,
            &[sizes.len(), content.len()],
            Some([sizes, content].concat()),
        );
        let data: Vec<Vec<u8>> = events.iter().map(|&i| event_data(i)).collect();
        let (data_sizes, data_content) = layout::encode_entries(&data);
        let mut segs = vec![data_sizes.len()];
        segs.extend(
            events
                .iter()
                .flat_map(|&i| event_segments(i))
                .map(|s| s.len()),
        );
        let data_len = data_sizes.len() + data_content.len();
        let data_handle =
            masked_handle(run, true, &segs, Some([data_sizes, data_content].concat()));
        let body = SendBatchRequest {
            producer_name: "prod1".into(),
            count: events.len() as u64,
            ack_early: false,
            metadata: BulkRef {
                handle: meta_handle,
                offset: 0,
                size: metadata_len as u64,
                address: producer.clone(),
            },
            data: BulkRef {
                handle: data_handle,
                offset: 0,
                size: data_len as u64,
                address: producer.clone(),
            },
        };
        expected.push(encode_v08(&Request::new(body)));
    }
    let captured: Vec<Vec<u8>> = sent(Rpc::SendBatch, true)
        .into_iter()
        .map(masked_payload)
        .collect();
    assert_eq!(
        sorted_hex(captured),
        sorted_hex(expected),
        "{run:?} send_batch"
    );
    let captured: Vec<Vec<u8>> = sent(Rpc::SendBatch, false)
        .iter()
        .map(|m| m.payload.clone())
        .collect();
    let expected = batches()
        .into_iter()
        .map(|(_, _, first)| encode_v08(&Response::ok(MofkaResult::Ok(first))));
    assert_eq!(
        sorted_hex(captured),
        sorted_hex(expected),
        "{run:?} send_batch responses"
    );

    // request_events
    let expected = (0..2).map(|p| {
        encode_v08(&Request::new(RequestEventsRequest {
            consumer_ctx: ctx,
            partition_index: p,
            consumer_name: "cons1".into(),
            count: 0,
            batch_size: 4,
        }))
    });
    let captured = sent(Rpc::RequestEvents, true)
        .iter()
        .map(|m| m.payload.clone())
        .collect::<Vec<_>>();
    assert_eq!(
        sorted_hex(captured),
        sorted_hex(expected),
        "{run:?} request_events"
    );

    // recv_batch, nested in each partition's request_events handler
    let mut expected = Vec::new();
    for (p, events, first_id) in batches() {
        let n = events.len();
        let (sizes, content) = metadata_regions(&events);
        let (msz, mlen) = (sizes.len() as u64, content.len() as u64);
        let meta_handle = masked_handle(
            run,
            true,
            &[sizes.len(), content.len()],
            Some([sizes, content].concat()),
        );
        let descs: Vec<DataDescriptor> = events.iter().map(|&i| location(i).descriptor()).collect();
        let (dsizes, dcontent) = layout::encode_descriptors(&descs);
        assert_eq!(
            dcontent.len(),
            48 * n,
            "memory-partition descriptors are 48 bytes"
        );
        let (dsz, dlen) = (dsizes.len() as u64, dcontent.len() as u64);
        let desc_handle = masked_handle(
            run,
            true,
            &[dsizes.len(), dcontent.len()],
            Some([dsizes, dcontent].concat()),
        );
        let window = |handle: &BulkHandle, offset: u64, size: u64| BulkRef {
            handle: handle.clone(),
            offset,
            size,
            address: server.clone(),
        };
        let body = RecvBatchRequest {
            consumer_ctx: ctx,
            partition_index: p,
            count: n as u64,
            first_id,
            metadata_sizes: window(&meta_handle, 0, msz),
            metadata: window(&meta_handle, msz, mlen),
            descriptor_sizes: window(&desc_handle, 0, dsz),
            descriptors: window(&desc_handle, dsz, dlen),
        };
        let parent = Rpc::RequestEvents.id(5 + p as u16);
        expected.push(encode_v08(&Request::nested(parent, body)));
    }
    let captured: Vec<Vec<u8>> = sent(Rpc::RecvBatch, true)
        .into_iter()
        .map(masked_payload)
        .collect();
    assert_eq!(
        sorted_hex(captured),
        sorted_hex(expected),
        "{run:?} recv_batch"
    );

    // request_data: one per event with selected data
    let mut expected = Vec::new();
    for i in 0..10u64 {
        let base = location(i).descriptor();
        let selected = match i {
            0 => DataDescriptor::none(),
            1 => base.sub_view(1, 3),
            2 => base.strided_view(0, 2, 2, 1).unwrap(),
            3 => base.unstructured_view(&[(0, 1), (5, 3)]).unwrap(),
            _ => base,
        };
        if selected.size() == 0 {
            continue;
        }
        let size = selected.size();
        expected.push(encode_v08(&Request::new(RequestDataRequest {
            descriptor: selected,
            dest: BulkRef {
                handle: masked_handle(run, false, &[size as usize], None),
                offset: 0,
                size,
                address: consumer.clone(),
            },
        })));
    }
    assert_eq!(expected.len(), 8);
    let captured: Vec<Vec<u8>> = sent(Rpc::RequestData, true)
        .into_iter()
        .map(masked_payload)
        .collect();
    assert_eq!(
        sorted_hex(captured),
        sorted_hex(expected),
        "{run:?} request_data"
    );

    // acknowledgement and unsubscription
    let captured: Vec<Vec<u8>> = sent(Rpc::AckEvent, true)
        .iter()
        .map(|m| m.payload.clone())
        .collect();
    let ack = AckEventRequest {
        consumer_name: "cons1".into(),
        event_id: 2,
    };
    assert_eq!(captured, [encode_v08(&Request::new(ack))]);
    let captured: Vec<Vec<u8>> = sent(Rpc::RemoveConsumer, true)
        .iter()
        .map(|m| m.payload.clone())
        .collect();
    let expected = (0..2).map(|p| {
        encode_v08(&Request::new(RemoveConsumerRequest {
            consumer_ctx: ctx,
            partition_index: p,
        }))
    });
    assert_eq!(
        sorted_hex(captured),
        sorted_hex(expected),
        "{run:?} remove_consumer"
    );

    // every other data-plane response is a plain success
    let ok_void = encode_v08(&Response::ok(MofkaResult::Ok(())));
    for rpc in [
        Rpc::RequestEvents,
        Rpc::RecvBatch,
        Rpc::AckEvent,
        Rpc::RemoveConsumer,
    ] {
        for m in sent(rpc, false) {
            assert_eq!(m.payload, ok_void, "{run:?} seq {}", m.seq);
        }
    }
    let ok_data = encode_v08(&Response::ok(MofkaResult::Ok(vec![MofkaResult::Ok(())])));
    for m in sent(Rpc::RequestData, false) {
        assert_eq!(m.payload, ok_data, "{run:?} seq {}", m.seq);
    }
}

#[test]
fn data_plane_from_scenario_ofi_tcp() {
    data_plane_from_scenario(Run::Tcp);
}

#[test]
fn data_plane_from_scenario_na_sm() {
    data_plane_from_scenario(Run::Sm);
}

#[test]
fn every_captured_bulk_handle_parses_and_masks() {
    for run in [Run::Tcp, Run::Sm] {
        let mut count = 0;
        for m in transcript(run).iter().filter(|m| m.request && m.send) {
            let mut r = req(m);
            for h in handles_mut(&mut r.body) {
                let d = h
                    .describe()
                    .unwrap_or_else(|e| panic!("{run:?} seq {}: {e}", m.seq));
                assert_eq!(&d.to_handle(), &*h, "{run:?} seq {}", m.seq);
                let masked = h.masked().unwrap();
                assert_eq!(masked.as_bytes().len(), h.as_bytes().len());
                let md = masked.describe().unwrap();
                assert_eq!(md.eager_data, d.eager_data);
                assert!(md.segments.iter().all(|s| s.address == 0));
                assert_eq!(masked.masked().unwrap(), masked, "masking is idempotent");
                // Read-only handles that fit carry their contents.
                if d.flags & bulk_flags::READ_ONLY != 0 && d.total_len < 4096 {
                    assert!(d.eager_data.is_some(), "{run:?} seq {}", m.seq);
                }
                count += 1;
            }
        }
        assert_eq!(count, 2 * 4 + 4 * 4 + 8 + 4 + 2 + 4, "{run:?}");
    }
    assert!(BulkHandle::null().masked().unwrap().is_null());
}
