//! Decoded values (a representative set, from decoded.md)

use super::fixtures::addr_of;
use super::fixtures::find;
use super::fixtures::req;
use super::fixtures::resp;
use super::fixtures::transcript;
use super::fixtures::Run;
use super::*;

#[test]
fn bedrock_and_yokan_values() {
    let msgs = transcript(Run::Tcp);

    let AnyRequest::QueryConfig(q) = req(find(&msgs, 0, true)).body else {
        panic!()
    };
    assert_eq!(q.script.len(), 332);
    assert!(q.script.starts_with("\n          $result = [];"));
    assert!(q.script.contains("mofka:master"));
    let AnyResponse::QueryConfig(r) = resp(find(&msgs, 2, false)) else {
        panic!()
    };
    assert!(r.success);
    assert_eq!(r.content, "[2]");

    let identity = req(find(&msgs, 4, true));
    assert_eq!(identity.parent_rpc_id, NO_PARENT_RPC_ID);
    let AnyResponse::Identity(id) = resp(find(&msgs, 6, false)) else {
        panic!()
    };
    assert_eq!(id.identity, HgString::new("yokan"));

    let AnyRequest::PutDirect(p) = req(find(&msgs, 8, true)).body else {
        panic!()
    };
    assert_eq!(p.mode, 0x14010);
    assert_eq!(p.timeout_ms, 0.0);
    assert_eq!(p.ksizes, [25, 24, 26]);
    assert_eq!(p.vsizes, [18, 18, 18]);
    assert_eq!(
        p.keys,
        b"MOFKA:GLOBAL:wt:validatorMOFKA:GLOBAL:wt:selectorMOFKA:GLOBAL:wt:serializer"
    );
    assert_eq!(p.vals, br#"{"type":"default"}"#.repeat(3));
    assert_eq!(
        resp(find(&msgs, 10, false)),
        AnyResponse::PutDirect(YokanStatus { ret: 0 })
    );

    let AnyRequest::CollCreate(c) = req(find(&msgs, 12, true)).body else {
        panic!()
    };
    assert_eq!(c.mode, 0);
    assert_eq!(c.coll_name.as_str(), "MOFKA:GLOBAL:wt:partitions");

    let AnyRequest::StartProvider(sp) = req(find(&msgs, 16, true)).body else {
        panic!()
    };
    let desc: Value = serde_json::from_str(&sp.description).unwrap();
    assert_eq!(desc["config"]["topic"], "wt");
    assert_eq!(desc["config"]["type"], "memory");
    assert_eq!(
        resp(find(&msgs, 22, false)),
        AnyResponse::StartProvider(RequestResult::ok(5))
    );
    assert_eq!(
        resp(find(&msgs, 34, false)),
        AnyResponse::StartProvider(RequestResult::ok(6))
    );

    // The server resolving the partition's dependency on itself, from inside start_provider.
    let lookup = req(find(&msgs, 18, true));
    assert_eq!(lookup.parent_rpc_id, rpc_id("bedrock_start_provider", 0));
    let AnyRequest::LookupProvider(l) = lookup.body else {
        panic!()
    };
    assert_eq!((l.spec.as_str(), l.timeout), ("yokan:2", 30.0));
    let AnyResponse::LookupProvider(found) = resp(find(&msgs, 20, false)) else {
        panic!()
    };
    assert!(found.success && found.error.is_empty());
    assert_eq!(found.value.name, "master");
    assert_eq!(found.value.type_name, "");
    assert_eq!(found.value.provider_id, 2);

    let AnyRequest::DocStore(ds) = req(find(&msgs, 24, true)).body else {
        panic!()
    };
    assert_eq!(
        (ds.mode, ds.count, ds.offset, ds.size),
        (0x10000, 1, 0, 117)
    );
    assert_eq!(ds.origin, HgString::null());
    let bulk = ds.bulk.describe().unwrap();
    assert_eq!(bulk.flags, bulk_flags::READ_ONLY | bulk_flags::EAGER);
    let docs = bulk.eager_segments().unwrap();
    let entries = layout::decode_entries(docs[0], docs[1]).unwrap();
    let doc: Value = serde_json::from_slice(entries[0]).unwrap();
    assert_eq!(doc["provider_id"], 5);
    assert_eq!(doc["address"], "ofi+tcp;ofi_rxm://127.0.0.1:47555");
    let AnyResponse::DocStore(ids) = resp(find(&msgs, 26, false)) else {
        panic!()
    };
    assert_eq!((ids.ret, ids.ids.as_slice()), (0, &[0u64][..]));
    let AnyResponse::DocStore(ids) = resp(find(&msgs, 38, false)) else {
        panic!()
    };
    assert_eq!(ids.ids, [1]);

    let AnyRequest::LengthDirect(ld) = req(find(&msgs, 48, true)).body else {
        panic!()
    };
    assert_eq!(
        (ld.mode, ld.sizes.as_slice()),
        (0x14000, &[25u64, 24, 26][..])
    );
    let AnyResponse::LengthDirect(lr) = resp(find(&msgs, 50, false)) else {
        panic!()
    };
    assert_eq!((lr.sizes.as_slice(), lr.ret), (&[18u64, 18, 18][..], 0));

    let AnyRequest::Get(g) = req(find(&msgs, 52, true)).body else {
        panic!()
    };
    assert_eq!((g.count, g.offset, g.size, g.packed), (3, 0, 177, false));
    let gb = g.bulk.describe().unwrap();
    assert_eq!(gb.segments.len(), 8);
    assert_eq!(gb.flags, 7, "read-write and eager");

    let AnyRequest::DocList(dl) = req(find(&msgs, 56, true)).body else {
        panic!()
    };
    assert!(dl.packed);
    assert_eq!((dl.count, dl.from_id, dl.filter_size), (32, 0, 0));
    assert_eq!((dl.offset, dl.docs_buf_size), (0, 32768));
    let db = dl.bulk.describe().unwrap();
    assert_eq!(
        (db.flags, db.total_len, db.eager_data.is_none()),
        (3, 33280, true)
    );
}

#[test]
fn mofka_values() {
    let msgs = transcript(Run::Tcp);
    let producer = addr_of(&msgs, "producer");
    let server = addr_of(&msgs, "server");
    let consumer = addr_of(&msgs, "consumer");

    let AnyRequest::SendBatch(sb) = req(find(&msgs, 72, true)).body else {
        panic!()
    };
    assert_eq!((sb.producer_name.as_str(), sb.count), ("prod1", 4));
    assert_eq!((sb.metadata.offset, sb.metadata.size), (0, 92));
    assert_eq!((sb.data.offset, sb.data.size), (0, 56));
    assert_eq!(
        (&sb.metadata.address, &sb.data.address),
        (&producer, &producer)
    );
    let md = sb.metadata.handle.describe().unwrap();
    assert_eq!(md.flags, bulk_flags::READ_ONLY | bulk_flags::EAGER);
    let seg: Vec<u64> = md.segments.iter().map(|s| s.len).collect();
    assert_eq!(seg, [32, 60]);
    let eager = md.eager_segments().unwrap();
    let metas = layout::decode_metadata(eager[0], eager[1], &DefaultSerializer).unwrap();
    let is: Vec<Value> = metas.iter().map(|m| m.json()["i"].clone()).collect();
    assert_eq!(is, [json!(0), json!(2), json!(4), json!(6)]);

    assert_eq!(
        resp(find(&msgs, 76, false)),
        AnyResponse::SendBatch(MofkaResult::Ok(0))
    );
    assert_eq!(
        resp(find(&msgs, 84, false)),
        AnyResponse::SendBatch(MofkaResult::Ok(4))
    );

    let AnyRequest::RequestEvents(re) = req(find(&msgs, 120, true)).body else {
        panic!()
    };
    assert_eq!(
        re,
        RequestEventsRequest {
            consumer_ctx: 94011925262800,
            partition_index: 0,
            consumer_name: "cons1".into(),
            count: 0,
            batch_size: 4,
        }
    );

    let rb = req(find(&msgs, 126, true));
    assert_eq!(
        rb.parent_rpc_id, 0xcd52094500000005,
        "nested in request_events"
    );
    let AnyRequest::RecvBatch(rb) = rb.body else {
        panic!()
    };
    assert_eq!((rb.consumer_ctx, rb.partition_index), (94011925262800, 0));
    assert_eq!((rb.count, rb.first_id), (4, 0));
    assert_eq!((rb.metadata_sizes.offset, rb.metadata_sizes.size), (0, 32));
    assert_eq!((rb.metadata.offset, rb.metadata.size), (32, 60));
    assert_eq!(
        (rb.descriptor_sizes.offset, rb.descriptor_sizes.size),
        (0, 32)
    );
    assert_eq!((rb.descriptors.offset, rb.descriptors.size), (32, 192));
    assert_eq!(
        rb.metadata.handle, rb.metadata_sizes.handle,
        "two windows of one bulk"
    );
    assert_eq!(rb.descriptors.address, server);
    let eager = rb.descriptors.handle.describe().unwrap();
    let eager = eager.eager_segments().unwrap();
    let descs = layout::decode_descriptors(eager[0], eager[1]).unwrap();
    let locs: Vec<MemoryLocation> = descs
        .iter()
        .map(|d| MemoryLocation::from_bytes(d.location()).unwrap())
        .collect();
    assert_eq!(
        locs.iter().map(|l| (l.offset, l.size)).collect::<Vec<_>>(),
        [(0, 6), (6, 6), (12, 6), (18, 6)]
    );
    assert_eq!(
        resp(find(&msgs, 132, false)),
        AnyResponse::RecvBatch(MofkaResult::Ok(()))
    );

    let AnyRequest::RequestData(rd) = req(find(&msgs, 149, true)).body else {
        panic!()
    };
    assert_eq!(
        rd.descriptor,
        MemoryLocation {
            offset: 12,
            size: 6
        }
        .descriptor()
    );
    assert_eq!(
        (rd.dest.offset, rd.dest.size, &rd.dest.address),
        (0, 6, &consumer)
    );
    let dest = rd.dest.handle.describe().unwrap();
    assert_eq!(
        (dest.flags, dest.eager_data.as_ref()),
        (bulk_flags::WRITE_ONLY, None)
    );

    let AnyRequest::RequestData(rd) = req(find(&msgs, 142, true)).body else {
        panic!()
    };
    let base = MemoryLocation { offset: 0, size: 6 }.descriptor();
    assert_eq!(rd.descriptor, base.sub_view(1, 3));
    let AnyRequest::RequestData(rd) = req(find(&msgs, 139, true)).body else {
        panic!()
    };
    let base = MemoryLocation { offset: 6, size: 6 }.descriptor();
    assert_eq!(rd.descriptor, base.strided_view(0, 2, 2, 1).unwrap());
    let AnyRequest::RequestData(rd) = req(find(&msgs, 154, true)).body else {
        panic!()
    };
    let base = MemoryLocation { offset: 6, size: 8 }.descriptor();
    assert_eq!(
        rd.descriptor,
        base.unstructured_view(&[(0, 1), (5, 3)]).unwrap()
    );
    assert_eq!(rd.descriptor.flatten(), [(0, 1), (5, 3)]);
    assert_eq!(
        resp(find(&msgs, 144, false)),
        AnyResponse::RequestData(MofkaResult::Ok(vec![MofkaResult::Ok(())]))
    );

    let AnyRequest::AckEvent(ack) = req(find(&msgs, 176, true)).body else {
        panic!()
    };
    assert_eq!((ack.consumer_name.as_str(), ack.event_id), ("cons1", 2));
    let AnyRequest::RemoveConsumer(rc) = req(find(&msgs, 181, true)).body else {
        panic!()
    };
    assert_eq!((rc.consumer_ctx, rc.partition_index), (94011925262800, 0));
}
