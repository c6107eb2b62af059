//! Bulk regions

use super::data_plane::batches;
use super::data_plane::event_data;
use super::data_plane::event_segments;
use super::data_plane::location;
use super::data_plane::metadata_regions;
use super::fixtures::addr_of;
use super::fixtures::jsonl;
use super::fixtures::read_fixture;
use super::fixtures::req;
use super::fixtures::transcript;
use super::fixtures::Run;
use super::*;

pub(crate) struct BulkEvent {
    pub(crate) proc_: String,
    pub(crate) create: bool,
    pub(crate) flags: u64,
    pub(crate) op: String,
    pub(crate) peer: String,
    pub(crate) segments: Vec<Vec<u8>>,
    pub(crate) seg_sizes: Vec<usize>,
}

pub(crate) fn bulk_events(name: &str) -> Vec<BulkEvent> {
    let parse_segs = |v: &Value| -> (Vec<Vec<u8>>, Vec<usize>) {
        let arr = v.as_array().cloned().unwrap_or_default();
        let bytes = arr
            .iter()
            .map(|s| hex::decode(s["hex"].as_str().unwrap_or("")).unwrap())
            .collect();
        let sizes = arr
            .iter()
            .map(|s| s["size"].as_u64().unwrap() as usize)
            .collect();
        (bytes, sizes)
    };
    jsonl(name)
        .into_iter()
        .map(|v| {
            let create = v["fn"] == "HG_Bulk_create";
            let (segments, seg_sizes) = parse_segs(if create {
                &v["segments"]
            } else {
                &v["local_segments"]
            });
            BulkEvent {
                proc_: v["proc"].as_str().unwrap().to_string(),
                create,
                flags: v["flags"].as_u64().unwrap_or(0),
                op: v["op"].as_str().unwrap_or("").to_string(),
                peer: v["peer"].as_str().unwrap_or("").to_string(),
                segments,
                seg_sizes,
            }
        })
        .collect()
}

pub(crate) fn event_number(m: &Metadata) -> u64 {
    let obj = m.json().as_object().expect("metadata is an object");
    assert_eq!(obj.len(), 1, "{}", m.json());
    obj["i"].as_u64().expect("i")
}

pub(crate) fn check_bulk_events(run: Run) {
    let events = bulk_events(run.bulk_events());

    // Producer: read-only bulks come in (metadata, data) pairs, one pair per batch.
    let producer: Vec<&BulkEvent> = events
        .iter()
        .filter(|e| e.proc_ == "producer" && e.create && e.flags == 1)
        .collect();
    assert_eq!(producer.len(), 8, "{run:?}");
    let mut seen_batches = Vec::new();
    for pair in producer.chunks(2) {
        let (meta, data) = (pair[0], pair[1]);
        assert_eq!(meta.segments.len(), 2);
        let metas =
            layout::decode_metadata(&meta.segments[0], &meta.segments[1], &DefaultSerializer)
                .unwrap_or_else(|e| panic!("{run:?}: {e}"));
        let is: Vec<u64> = metas.iter().map(event_number).collect();
        // Re-encoding gives the same regions.
        let (s, c) = metadata_regions(&is);
        assert_eq!((s, c), (meta.segments[0].clone(), meta.segments[1].clone()));
        let content = data.segments[1..].concat();
        let entries = layout::decode_entries(&data.segments[0], &content).unwrap();
        for (k, &i) in is.iter().enumerate() {
            assert_eq!(entries[k], &event_data(i)[..], "{run:?} event {i}");
        }
        // Zero-length data segments are not exposed.
        assert_eq!(
            data.segments.len() - 1,
            is.iter().map(|&i| event_segments(i).len()).sum::<usize>()
        );
        seen_batches.push(is);
    }
    let mut want: Vec<Vec<u64>> = batches().into_iter().map(|(_, e, _)| e).collect();
    want.sort();
    seen_batches.sort();
    assert_eq!(seen_batches, want, "{run:?}");

    // Server: each recv_batch exposes a metadata bulk then a descriptor bulk.
    let server_pairs: Vec<&BulkEvent> = events
        .iter()
        .filter(|e| {
            e.proc_ == "server"
                && e.create
                && e.flags == 1
                && e.segments.len() == 2
                && layout::decode_entries(&e.segments[0], &e.segments[1]).is_ok()
        })
        .collect();
    assert_eq!(server_pairs.len(), 8, "{run:?}");
    let mut described = BTreeMap::new();
    for pair in server_pairs.chunks(2) {
        let metas = layout::decode_metadata(
            &pair[0].segments[0],
            &pair[0].segments[1],
            &DefaultSerializer,
        )
        .unwrap();
        let descs = layout::decode_descriptors(&pair[1].segments[0], &pair[1].segments[1])
            .unwrap_or_else(|e| panic!("{run:?}: {e}"));
        assert_eq!(metas.len(), descs.len());
        let (s, c) = layout::encode_descriptors(&descs);
        assert_eq!(
            (s, c),
            (pair[1].segments[0].clone(), pair[1].segments[1].clone())
        );
        for (m, d) in metas.iter().zip(descs) {
            let i = event_number(m);
            assert_eq!(d, location(i).descriptor(), "{run:?} event {i}");
            described.insert(i, d);
        }
    }
    assert_eq!(
        described.len(),
        10,
        "every event was described to the consumer"
    );

    // Server → consumer pushes for request_data carry the flattened selection.
    let msgs = transcript(run);
    let consumer = addr_of(&msgs, "consumer");
    let mut expected = Vec::new();
    for m in msgs
        .iter()
        .filter(|m| m.send && m.request && m.rpc == Rpc::RequestData.name())
    {
        let AnyRequest::RequestData(rd) = req(m).body else {
            panic!()
        };
        let loc = MemoryLocation::from_bytes(rd.descriptor.location()).unwrap();
        let i = (0..10u64)
            .find(|&i| location(i) == loc)
            .expect("a known event");
        let data = event_data(i);
        let ranges = rd.descriptor.flatten();
        let bytes: Vec<u8> = ranges
            .iter()
            .flat_map(|&(o, s)| data[o as usize..(o + s) as usize].to_vec())
            .collect();
        let sizes: Vec<usize> = ranges.iter().map(|&(_, s)| s as usize).collect();
        expected.push((hex::encode(bytes), sizes));
    }
    let mut pushed: Vec<(String, Vec<usize>)> = events
        .iter()
        .filter(|e| e.proc_ == "server" && e.op == "PUSH" && e.peer == consumer)
        .filter(|e| e.seg_sizes.iter().sum::<usize>() <= 8)
        .map(|e| (hex::encode(e.segments.concat()), e.seg_sizes.clone()))
        .collect();
    expected.sort();
    pushed.sort();
    assert_eq!(pushed, expected, "{run:?}");
    let texts: Vec<String> = pushed
        .iter()
        .map(|(h, _)| String::from_utf8(hex::decode(h).unwrap()).unwrap())
        .collect();
    for want in ["ata", "daa-", "d3XY", "data-4", "data-9"] {
        assert!(
            texts.iter().any(|t| t == want),
            "{run:?}: {want} not pushed"
        );
    }
}

#[test]
fn bulk_events_decode_to_the_scenario_ofi_tcp() {
    check_bulk_events(Run::Tcp);
}

#[test]
fn bulk_events_decode_to_the_scenario_na_sm() {
    check_bulk_events(Run::Sm);
}

#[test]
fn bulk_regions_server_copies_match_producer_bulks() {
    let regions: Value = serde_json::from_str(&read_fixture("bulk-regions.json")).unwrap();
    let concat = |v: &Value, key: &str| -> Vec<u8> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| hex::decode(s["hex"].as_str().unwrap()).unwrap())
            .collect()
    };
    let pulls: Vec<Vec<u8>> = regions["server_transfer_done"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["op"] == "PULL")
        .map(|t| concat(t, "local_segments"))
        .collect();
    let mut matched = 0;
    for create in regions["producer_bulk_create"].as_array().unwrap() {
        if create["flags"] != 1 {
            continue; // read-write Yokan buffers
        }
        let bytes = concat(create, "segments");
        assert!(
            pulls.contains(&bytes),
            "no server pull of {}",
            hex::encode(&bytes)
        );
        // Each is a [N x u64][entries] region that splits exactly.
        let segs = create["segments"].as_array().unwrap();
        let first = hex::decode(segs[0]["hex"].as_str().unwrap()).unwrap();
        layout::decode_entries(&first, &bytes[first.len()..]).unwrap();
        matched += 1;
    }
    assert_eq!(matched, 8);
}
