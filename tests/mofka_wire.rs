//! Golden tests of the Mofka wire codec (`diaspora_stream::drivers::mofka::wire`) against the
//! traffic of a real Mofka 0.8.3 deployment, captured over `ofi+tcp` and `na+sm`, in
//! `../shared/fixtures/mofka-wire` (see its README.md).
//!
//! Bulk handles: the codec keeps serialized bulk handles as opaque bytes, so decoding then
//! re-encoding a captured message reproduces it byte for byte, handles included, and the
//! round-trip tests mask nothing. Handles do hold per-process virtual addresses and
//! memory-registration keys, so the tests that build messages from the scenario's values
//! (rather than from the capture) compare handles by structure: both sides go through
//! `BulkHandle::masked`, which zeroes exactly those addresses and network handles and keeps
//! sizes, flags and eager contents.

use diaspora_stream::components::DefaultSerializer;
use diaspora_stream::drivers::mofka::wire::layout::{self, MemoryLocation};
use diaspora_stream::drivers::mofka::wire::{
    bulk_flags, jenkins_hash, rpc_id, split_rpc_id, AckEventRequest, AnyRequest, AnyResponse,
    BulkDescription, BulkHandle, BulkRef, BulkSegment, Decoder, HgString, MofkaResult,
    RecvBatchRequest, RemoveConsumerRequest, Request, RequestDataRequest, RequestEventsRequest,
    RequestResult, Response, Rpc, SendBatchRequest, WireError, WireErrorKind, WireMessage,
    WireVersion, YokanStatus, NO_PARENT_RPC_ID,
};
use diaspora_stream::{DataDescriptor, Metadata};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn fixtures() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/mofka-wire");
    assert!(
        dir.join("transcript.jsonl").is_file(),
        "the Mofka wire fixtures are missing: expected {} (the `shared` folder beside the \
         checkout, with fixtures/mofka-wire/transcript.jsonl)",
        dir.display()
    );
    dir
}

fn read_fixture(name: &str) -> String {
    let path = fixtures().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn jsonl(name: &str) -> Vec<Value> {
    read_fixture(name)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect()
}

fn parse_hex_u64(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    Tcp,
    Sm,
}

impl Run {
    fn transcript(self) -> &'static str {
        match self {
            Run::Tcp => "transcript.jsonl",
            Run::Sm => "transcript-sm.jsonl",
        }
    }
    fn bulk_events(self) -> &'static str {
        match self {
            Run::Tcp => "bulk-events.jsonl",
            Run::Sm => "bulk-events-sm.jsonl",
        }
    }
}

/// One captured message.
#[derive(Clone, Debug)]
struct Msg {
    seq: u64,
    process: String,
    send: bool,
    request: bool,
    rpc: String,
    rpc_id: u64,
    provider_id: u16,
    self_addr: String,
    payload: Vec<u8>,
    wire: Vec<u8>,
    na_header_size: usize,
    payload_offset: usize,
}

fn transcript(run: Run) -> Vec<Msg> {
    jsonl(run.transcript())
        .into_iter()
        .map(|v| {
            let s = |k: &str| {
                v[k].as_str()
                    .unwrap_or_else(|| panic!("{k} in {v}"))
                    .to_string()
            };
            let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
            let payload = hex::decode(s("payload_hex")).expect("payload_hex");
            assert_eq!(payload.len() as u64, n("payload_size"), "seq {}", n("seq"));
            Msg {
                seq: n("seq"),
                process: s("process"),
                send: s("event") == "send",
                request: s("direction") == "request",
                rpc: s("rpc"),
                rpc_id: parse_hex_u64(&s("rpc_id")),
                provider_id: n("provider_id") as u16,
                self_addr: s("self_addr"),
                payload,
                wire: hex::decode(s("wire_hex")).expect("wire_hex"),
                na_header_size: n("na_header_size") as usize,
                payload_offset: n("payload_offset_in_wire") as usize,
            }
        })
        .collect()
}

fn rpc_of(m: &Msg) -> Rpc {
    Rpc::from_name(&m.rpc).unwrap_or_else(|| panic!("seq {}: unknown RPC {}", m.seq, m.rpc))
}

fn find(msgs: &[Msg], seq: u64, request: bool) -> &Msg {
    msgs.iter()
        .find(|m| m.seq == seq && m.send && m.request == request)
        .unwrap_or_else(|| panic!("no sent message with seq {seq}"))
}

fn decode_request(m: &Msg, version: WireVersion) -> Result<Request<AnyRequest>, WireError> {
    Request::<AnyRequest>::decode_payload(rpc_of(m), &m.payload, version)
}

fn decode_response(m: &Msg, version: WireVersion) -> Result<Response<AnyResponse>, WireError> {
    Response::<AnyResponse>::decode_payload(rpc_of(m), &m.payload, version)
}

/// Decodes a captured message (request or response) and re-encodes it.
fn reencode(m: &Msg, version: WireVersion) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    if m.request {
        decode_request(m, version)?.encode_payload(version, &mut out);
    } else {
        decode_response(m, version)?.encode_payload(version, &mut out);
    }
    Ok(out)
}

fn req(m: &Msg) -> Request<AnyRequest> {
    decode_request(m, WireVersion::V0_8).unwrap_or_else(|e| panic!("seq {} {}: {e}", m.seq, m.rpc))
}

fn resp(m: &Msg) -> AnyResponse {
    let r = decode_response(m, WireVersion::V0_8)
        .unwrap_or_else(|e| panic!("seq {} {}: {e}", m.seq, m.rpc));
    assert_eq!(r.hg_ret, 0);
    r.body.expect("a successful response has a body")
}

fn addr_of(msgs: &[Msg], process: &str) -> String {
    msgs.iter()
        .find(|m| m.process == process)
        .map(|m| m.self_addr.clone())
        .unwrap_or_else(|| panic!("no message from {process}"))
}

// ---------------------------------------------------------------------------------------------
// RPC ids
// ---------------------------------------------------------------------------------------------

#[test]
fn every_registered_name_hashes_to_its_margo_id() {
    let names: Value = serde_json::from_str(&read_fixture("registered-names.json")).unwrap();
    let names = names.as_object().expect("an object of names");
    assert_eq!(names.len(), 79, "registered-names.json lists 79 names");
    for (name, info) in names {
        let hash = parse_hex_u64(info["hash"].as_str().unwrap()) as u32;
        assert_eq!(jenkins_hash(name.as_bytes()), hash, "hash of {name:?}");
        assert_eq!(info["matches_margo_id"], Value::Bool(true), "{name}");
        for pid in info["provider_ids"].as_array().unwrap() {
            let pid = pid.as_u64().unwrap() as u16;
            let id = rpc_id(name, pid);
            assert_eq!(
                id,
                (u64::from(hash) << 32) | u64::from(pid),
                "{name} on {pid}"
            );
            assert_eq!(split_rpc_id(id), Some((hash, pid)));
        }
    }
    // Every RPC the codec knows is registered by the captured processes (the `_direct` Yokan
    // variants the C++ client did not use included).
    for rpc in Rpc::ALL {
        let info = names
            .get(rpc.name())
            .unwrap_or_else(|| panic!("{} is not in registered-names.json", rpc.name()));
        assert_eq!(
            u64::from(rpc.hash()),
            parse_hex_u64(info["hash"].as_str().unwrap()),
            "{}",
            rpc.name()
        );
        assert_eq!(Rpc::from_name(rpc.name()), Some(*rpc));
        assert_eq!(Rpc::from_id(rpc.id(7)), Some(*rpc));
    }
    assert_eq!(Rpc::from_name("no_such_rpc"), None);
    assert_eq!(split_rpc_id(0x1234_5678_0001_0000), None);
}

#[test]
fn rpc_ids_md_table_matches() {
    let md = read_fixture("rpc-ids.md");
    let mut rows = 0;
    for line in md.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let name = cells[0].trim_matches('`');
        let hash = parse_hex_u64(cells[1].trim_matches('`')) as u32;
        assert_eq!(jenkins_hash(name.as_bytes()), hash, "{name}");
        let rpc = Rpc::from_name(name).unwrap_or_else(|| panic!("{name} is not known"));
        for id in cells[2].split(',') {
            let id = parse_hex_u64(id.trim().trim_matches('`'));
            assert_eq!(rpc.id((id & 0xffff) as u16), id, "{name}");
        }
        rows += 1;
    }
    assert_eq!(rows, 16, "rpc-ids.md has one row per RPC seen on the wire");
    // The vectors the reference lists for RPCs that were not on the wire.
    for (name, hash) in [
        ("yk_get_direct", 0x366988e7u32),
        ("yk_doc_store_direct", 0x96b9873b),
        ("yk_doc_list_direct", 0xd39a13c0),
        ("yk_list_keys_direct", 0x2a08f4d3),
    ] {
        assert_eq!(jenkins_hash(name.as_bytes()), hash, "{name}");
    }
    assert_eq!(
        Rpc::RecvBatch.id(0),
        0xb5cb0141_00000000,
        "the server calls recv_batch on provider 0"
    );
}

#[test]
fn transcript_ids_and_mercury_framing() {
    for run in [Run::Tcp, Run::Sm] {
        for m in transcript(run) {
            let rpc = rpc_of(&m);
            assert_eq!(m.rpc_id, rpc.id(m.provider_id), "seq {}", m.seq);
            // The payload is the tail of the NA buffer; Mercury's headers come before it.
            assert_eq!(&m.wire[m.payload_offset..], &m.payload[..], "seq {}", m.seq);
            if m.request {
                // Requests: NA header, then Mercury's core header (0xd7, protocol 5, the RPC id
                // in network order), then 2 more bytes and Mercury's 4-byte header.
                let core = &m.wire[m.na_header_size..];
                assert_eq!(&core[..2], &[0xd7, 0x05], "seq {}", m.seq);
                let id = u64::from_be_bytes(core[2..10].try_into().unwrap());
                assert_eq!(id, m.rpc_id, "seq {}", m.seq);
                assert_eq!(m.payload_offset, m.na_header_size + 16, "seq {}", m.seq);
            } else {
                assert_eq!(m.payload_offset, 16, "seq {}", m.seq);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Golden round trips
// ---------------------------------------------------------------------------------------------

fn round_trip_transcript(run: Run) -> BTreeMap<String, usize> {
    let mut per_rpc = BTreeMap::new();
    for m in transcript(run) {
        // The capture comes from a Mofka 0.8 deployment.
        let again = reencode(&m, WireVersion::V0_8)
            .unwrap_or_else(|e| panic!("{run:?} seq {} {}: {e}", m.seq, m.rpc));
        assert_eq!(
            hex::encode(&again),
            hex::encode(&m.payload),
            "{run:?} seq {} {} {}: re-encoding differs",
            m.seq,
            m.rpc,
            if m.request { "request" } else { "response" }
        );
        // Only send_batch requests depend on the version.
        let v09 = reencode(&m, WireVersion::V0_9);
        if m.rpc == "mofka_producer_send_batch" && m.request {
            let e = v09.expect_err("a 0.8 send_batch is not a valid 0.9 one");
            assert_eq!(e.field, "ack_early", "{e}");
        } else {
            assert_eq!(v09.as_deref(), Ok(&m.payload[..]), "seq {}", m.seq);
        }
        *per_rpc.entry(m.rpc.clone()).or_insert(0) += 1;
    }
    per_rpc
}

#[test]
fn golden_round_trip_ofi_tcp() {
    let per_rpc = round_trip_transcript(Run::Tcp);
    assert_eq!(per_rpc.values().sum::<usize>(), 188);
    assert_eq!(per_rpc.len(), 16, "{per_rpc:?}");
    assert_eq!(per_rpc["mofka_consumer_request_data"], 32);
}

#[test]
fn golden_round_trip_na_sm() {
    let per_rpc = round_trip_transcript(Run::Sm);
    assert_eq!(per_rpc.values().sum::<usize>(), 188);
    assert_eq!(per_rpc.len(), 16, "{per_rpc:?}");
}

#[test]
fn sent_and_received_copies_decode_alike() {
    for run in [Run::Tcp, Run::Sm] {
        let msgs = transcript(run);
        for m in msgs.iter().filter(|m| !m.send) {
            let twin = msgs.iter().find(|s| {
                s.send && s.rpc_id == m.rpc_id && s.request == m.request && s.payload == m.payload
            });
            assert!(twin.is_some(), "{run:?} seq {}: no sent copy", m.seq);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------

#[test]
fn send_batch_v0_9_inserts_ack_early_after_count() {
    let msgs = transcript(Run::Tcp);
    let m = find(&msgs, 72, true);
    let parsed = req(m);
    let AnyRequest::SendBatch(body) = &parsed.body else {
        panic!("seq 72 is send_batch")
    };
    assert!(!body.ack_early, "0.8 has no ack_early; it reads as false");

    for ack in [false, true] {
        let mut v09 = Request::new(SendBatchRequest {
            ack_early: ack,
            ..body.clone()
        });
        v09.parent_rpc_id = parsed.parent_rpc_id;
        let mut bytes = Vec::new();
        v09.encode_as(WireVersion::V0_9, &mut bytes);
        // 8 (margo) + 8 + 5 ("prod1") + 8 (count) = 29: the flag goes there.
        let mut expected = m.payload.clone();
        expected.insert(29, u8::from(ack));
        assert_eq!(bytes, expected);
        let back = Request::<SendBatchRequest>::decode_as(&bytes, WireVersion::V0_9).unwrap();
        assert_eq!(back, v09);
        assert_eq!(Request::<SendBatchRequest>::decode(&bytes).unwrap(), v09);
        // 0.8 drops the flag.
        let mut v08 = Vec::new();
        v09.encode_as(WireVersion::V0_8, &mut v08);
        assert_eq!(v08, m.payload);
    }

    // A 0.8 message read as 0.9 fails on the flag: the next byte is the low byte of the
    // metadata handle's size (252).
    let e = Request::<SendBatchRequest>::decode(&m.payload).unwrap_err();
    assert_eq!((e.field.as_str(), e.offset), ("ack_early", 29), "{e}");
    assert!(matches!(e.kind, WireErrorKind::Invalid(_)));

    assert_eq!(WireVersion::default(), WireVersion::V0_9);
    assert_eq!(WireVersion::CURRENT, WireVersion::V0_9);
    assert_eq!("0.8".parse::<WireVersion>(), Ok(WireVersion::V0_8));
    assert_eq!("v0.8.3".parse::<WireVersion>(), Ok(WireVersion::V0_8));
    assert_eq!("0.9.1".parse::<WireVersion>(), Ok(WireVersion::V0_9));
    assert!("0.10".parse::<WireVersion>().is_err());
    assert!("1.0".parse::<WireVersion>().is_err());
    assert_eq!(WireVersion::V0_8.to_string(), "0.8");
    assert!(!WireVersion::V0_8.has_ack_early());
}

// ---------------------------------------------------------------------------------------------
// decoded.md
// ---------------------------------------------------------------------------------------------

struct Row {
    off: usize,
    len: usize,
    field: String,
    hex: String,
    truncated_hex: bool,
}

struct Section {
    seq: u64,
    request: bool,
    rows: Vec<Row>,
}

fn decoded_md_sections() -> Vec<Section> {
    let md = read_fixture("decoded.md");
    let mut out: Vec<Section> = Vec::new();
    for line in md.lines() {
        let header = line
            .strip_prefix("**request** — transcript seq ")
            .map(|r| (true, r))
            .or_else(|| {
                line.strip_prefix("**response** — transcript seq ")
                    .map(|r| (false, r))
            });
        if let Some((request, rest)) = header {
            let seq = rest.split(',').next().unwrap().trim().parse().unwrap();
            out.push(Section {
                seq,
                request,
                rows: Vec::new(),
            });
            continue;
        }
        let Some(section) = out.last_mut() else {
            continue;
        };
        if !line.starts_with("| ") || line.starts_with("| off") {
            continue;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells.len() < 6 {
            continue;
        }
        let (Ok(off), Ok(len)) = (cells[0].parse(), cells[1].parse()) else {
            continue;
        };
        // The hex is the last backquoted cell (the note after it may itself contain `|`).
        let Some(hex_cell) = cells[3..]
            .iter()
            .rev()
            .find(|c| c.len() >= 2 && c.starts_with('`') && c.ends_with('`'))
            .map(|c| c.trim_matches('`'))
        else {
            continue;
        };
        section.rows.push(Row {
            off,
            len,
            field: cells[2].trim_matches('`').to_string(),
            hex: hex_cell.trim_end_matches('…').to_string(),
            truncated_hex: hex_cell.ends_with('…'),
        });
    }
    out
}

/// Every field that decoded.md lists starts where the codec reads it: cutting the payload in
/// the middle of the field makes decoding fail at exactly that offset. Fields inside bulk
/// handles (opaque to the codec) make it fail at the start of the handle's bytes.
#[test]
fn decoded_md_field_offsets_match_the_decoder() {
    let msgs = transcript(Run::Tcp);
    let sections = decoded_md_sections();
    assert!(
        sections.len() >= 30,
        "decoded.md has {} sections",
        sections.len()
    );
    let mut checked = 0;
    for s in &sections {
        let m = find(&msgs, s.seq, s.request);
        assert!(!s.rows.is_empty(), "seq {}", s.seq);
        for row in &s.rows {
            let bytes = &m.payload[row.off..row.off + row.len];
            if row.truncated_hex {
                assert!(
                    hex::encode(bytes).starts_with(&row.hex),
                    "seq {} {}",
                    s.seq,
                    row.field
                );
            } else {
                assert_eq!(hex::encode(bytes), row.hex, "seq {} {}", s.seq, row.field);
            }
            if row.len == 0 {
                continue;
            }
            let cut = &m.payload[..row.off + row.len - 1];
            let e = if s.request {
                Request::<AnyRequest>::decode_payload(rpc_of(m), cut, WireVersion::V0_8).err()
            } else {
                Response::<AnyResponse>::decode_payload(rpc_of(m), cut, WireVersion::V0_8).err()
            }
            .unwrap_or_else(|| panic!("seq {} cut inside {} decoded", s.seq, row.field));
            assert!(
                matches!(e.kind, WireErrorKind::Truncated { .. }),
                "seq {} {}: {e}",
                s.seq,
                row.field
            );
            let inside_handle =
                row.field.contains("bulk.") && !row.field.ends_with("bulk.serialize_size");
            if inside_handle {
                assert!(e.offset <= row.off, "seq {} {}: {e}", s.seq, row.field);
                assert!(
                    e.field.ends_with(".serialized"),
                    "seq {} {}: {e}",
                    s.seq,
                    row.field
                );
            } else {
                assert_eq!(e.offset, row.off, "seq {} {}: {e}", s.seq, row.field);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 840, "every non-empty row of decoded.md is checked");
}

// ---------------------------------------------------------------------------------------------
// Decoded values (a representative set, from decoded.md)
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// The data plane rebuilt from the scenario
// ---------------------------------------------------------------------------------------------

/// Events of the scenario: partition `i % 2`, metadata `{"i":i}`, data `data-i`, except event 3
/// (two segments, `data-3` and `XY`) and event 5 (no data).
fn event_segments(i: u64) -> Vec<Vec<u8>> {
    match i {
        3 => vec![b"data-3".to_vec(), b"XY".to_vec()],
        5 => vec![],
        _ => vec![format!("data-{i}").into_bytes()],
    }
}

fn event_data(i: u64) -> Vec<u8> {
    event_segments(i).concat()
}

fn partition_events(p: u64) -> Vec<u64> {
    (0..10).filter(|i| i % 2 == p).collect()
}

/// Where the memory partition keeps event `i`.
fn location(i: u64) -> MemoryLocation {
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
fn batches() -> Vec<(u64, Vec<u64>, u64)> {
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
fn masked_handle(
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

fn metadata_regions(events: &[u64]) -> (Vec<u8>, Vec<u8>) {
    let metas: Vec<Metadata> = events
        .iter()
        .map(|&i| Metadata::new(json!({ "i": i })))
        .collect();
    layout::encode_metadata(&metas, &DefaultSerializer).unwrap()
}

fn handles_mut(r: &mut AnyRequest) -> Vec<&mut BulkHandle> {
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
fn masked_payload(m: &Msg) -> Vec<u8> {
    let mut r = req(m);
    for h in handles_mut(&mut r.body) {
        *h = h.masked().unwrap_or_else(|e| panic!("seq {}: {e}", m.seq));
    }
    let mut out = Vec::new();
    r.encode_payload(WireVersion::V0_8, &mut out);
    out
}

fn encode_v08<M: WireMessage>(m: &M) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode_as(WireVersion::V0_8, &mut out);
    out
}

fn sorted_hex(v: impl IntoIterator<Item = Vec<u8>>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().map(hex::encode).collect();
    v.sort();
    v
}

/// Builds every data-plane message of the scenario from first principles (names, counts, ids,
/// metadata and data of the events, memory-partition locations, the consumer's selections) and
/// checks that the captured messages are exactly those, bulk handles compared masked.
fn data_plane_from_scenario(run: Run) {
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

// ---------------------------------------------------------------------------------------------
// Bulk regions
// ---------------------------------------------------------------------------------------------

struct BulkEvent {
    proc_: String,
    create: bool,
    flags: u64,
    op: String,
    peer: String,
    segments: Vec<Vec<u8>>,
    seg_sizes: Vec<usize>,
}

fn bulk_events(name: &str) -> Vec<BulkEvent> {
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

fn event_number(m: &Metadata) -> u64 {
    let obj = m.json().as_object().expect("metadata is an object");
    assert_eq!(obj.len(), 1, "{}", m.json());
    obj["i"].as_u64().expect("i")
}

fn check_bulk_events(run: Run) {
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

// ---------------------------------------------------------------------------------------------
// Layout helpers
// ---------------------------------------------------------------------------------------------

#[test]
fn layout_helpers() {
    let (sizes, content) = layout::encode_entries(&[&b"ab"[..], b"", b"cde"]);
    assert_eq!(
        sizes,
        [2u64, 0, 3]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect::<Vec<u8>>()
    );
    assert_eq!(content, b"abcde");
    let entries = layout::decode_entries(&sizes, &content).unwrap();
    assert_eq!(entries, [&b"ab"[..], b"", b"cde"]);
    let whole = [sizes.clone(), content.clone()].concat();
    let (s, c) = layout::split_region(&whole, 3).unwrap();
    assert_eq!((s, c), (&sizes[..], &content[..]));
    assert!(layout::split_region(&whole, 10).is_err());
    assert!(layout::split_region(&whole, u64::MAX).is_err());

    let e = layout::decode_entries(&sizes, b"abcd").unwrap_err();
    assert_eq!((e.field.as_str(), e.offset), ("entries[2]", 2), "{e}");
    let e = layout::decode_entries(&sizes, b"abcdef").unwrap_err();
    assert_eq!((e.field.as_str(), e.offset), ("entries", 5), "{e}");
    assert!(layout::decode_sizes(&[0; 9]).is_err());
    let huge = u64::MAX.to_le_bytes();
    assert!(layout::decode_entries(&huge, b"x").is_err());

    // Descriptors: an empty entry is "no data"; a corrupt one is an error naming its index.
    let d = MemoryLocation { offset: 3, size: 4 }.descriptor();
    let (s, mut c) = layout::encode_descriptors(&[d.clone(), d.clone()]);
    assert_eq!(
        layout::decode_descriptors(&s, &c).unwrap(),
        [d.clone(), d.clone()]
    );
    let empty = layout::encode_sizes(&[0]);
    assert_eq!(
        layout::decode_descriptors(&empty, &[]).unwrap(),
        [DataDescriptor::none()]
    );
    c[48 + 16] = 0xff; // location length of the second descriptor
    let e = layout::decode_descriptors(&s, &c).unwrap_err();
    assert_eq!((e.field.as_str(), e.offset), ("descriptors[1]", 48), "{e}");
    let bad_meta = layout::encode_entries(&[&b"\x05\0\0\0\0\0\0\0{}"[..]]);
    let e = layout::decode_metadata(&bad_meta.0, &bad_meta.1, &DefaultSerializer).unwrap_err();
    assert_eq!(e.field, "metadata[0]", "{e}");

    let loc = MemoryLocation {
        offset: 14,
        size: 0,
    };
    assert_eq!(MemoryLocation::from_bytes(&loc.to_bytes()), Some(loc));
    assert_eq!(MemoryLocation::from_bytes(&[0; 15]), None);
}

// ---------------------------------------------------------------------------------------------
// Malformed input
// ---------------------------------------------------------------------------------------------

fn try_decode(rpc: Rpc, request: bool, bytes: &[u8]) -> Result<Vec<u8>, WireError> {
    let v = WireVersion::V0_8;
    let mut out = Vec::new();
    if request {
        Request::<AnyRequest>::decode_payload(rpc, bytes, v)?.encode_payload(v, &mut out);
    } else {
        Response::<AnyResponse>::decode_payload(rpc, bytes, v)?.encode_payload(v, &mut out);
    }
    Ok(out)
}

/// Whatever the decoder accepts, it re-encodes to the same bytes.
fn accepted_round_trips(rpc: Rpc, request: bool, bytes: &[u8]) {
    if let Ok(again) = try_decode(rpc, request, bytes) {
        assert_eq!(
            hex::encode(&again),
            hex::encode(bytes),
            "{} accepted input that does not round-trip",
            rpc.name()
        );
    }
}

#[test]
fn truncated_extended_and_corrupted_messages() {
    for run in [Run::Tcp, Run::Sm] {
        for m in transcript(run).iter().filter(|m| m.send) {
            let rpc = rpc_of(m);
            for cut in 0..m.payload.len() {
                let e = try_decode(rpc, m.request, &m.payload[..cut]).expect_err("a prefix");
                assert!(
                    matches!(e.kind, WireErrorKind::Truncated { .. }),
                    "{run:?} seq {} cut {cut}: {e}",
                    m.seq
                );
                assert!(e.offset <= cut, "{e}");
            }
            let mut longer = m.payload.clone();
            longer.push(0);
            let e = try_decode(rpc, m.request, &longer).unwrap_err();
            assert_eq!(e.kind, WireErrorKind::TrailingBytes(1), "{e}");
            assert_eq!(e.offset, m.payload.len());
            for pos in 0..m.payload.len() {
                for flip in [0xff, 0x01, 0x80] {
                    let mut bad = m.payload.clone();
                    bad[pos] ^= flip;
                    accepted_round_trips(rpc, m.request, &bad);
                }
            }
        }
    }
}

#[test]
fn random_inputs_never_panic() {
    // A small xorshift generator: deterministic, no dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let msgs = transcript(Run::Tcp);
    for &rpc in Rpc::ALL {
        for request in [true, false] {
            for _ in 0..300 {
                let len = (next() % 96) as usize;
                let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                // Small lengths and counts are more interesting than random 64-bit ones.
                if len >= 16 && next() % 2 == 0 {
                    bytes[8..16].copy_from_slice(&(next() % 8).to_le_bytes());
                }
                accepted_round_trips(rpc, request, &bytes);
            }
        }
    }
    for m in msgs.iter().filter(|m| m.send) {
        for _ in 0..40 {
            let mut bad = m.payload.clone();
            for _ in 0..1 + next() % 4 {
                let pos = (next() as usize) % bad.len();
                bad[pos] = next() as u8;
            }
            accepted_round_trips(rpc_of(m), m.request, &bad);
        }
    }
}

#[test]
fn errors_name_the_field_and_offset() {
    let msgs = transcript(Run::Tcp);
    // ack_event: margo(8) name.len(8) "cons1"(5) event_id(8)
    let ack = &find(&msgs, 176, true).payload;
    let e = Request::<AckEventRequest>::decode_as(&ack[..25], WireVersion::V0_8).unwrap_err();
    assert_eq!((e.field.as_str(), e.offset), ("event_id", 21), "{e}");
    assert_eq!(
        e.kind,
        WireErrorKind::Truncated {
            needed: 8,
            available: 4
        }
    );
    assert_eq!(
        e.to_string(),
        "event_id at byte 21: needs 8 bytes but only 4 remain"
    );
    let e = Request::<AckEventRequest>::decode_as(&ack[..19], WireVersion::V0_8).unwrap_err();
    assert_eq!((e.field.as_str(), e.offset), ("consumer_name", 16), "{e}");
    let e = Request::<AckEventRequest>::decode_as(&ack[..3], WireVersion::V0_8).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.offset),
        ("margo.parent_rpc_id", 0),
        "{e}"
    );
    let mut bad_utf8 = ack.clone();
    bad_utf8[16] = 0xff;
    let e = Request::<AckEventRequest>::decode(&bad_utf8).unwrap_err();
    assert_eq!((e.field.as_str(), e.offset), ("consumer_name", 16), "{e}");
    assert!(matches!(e.kind, WireErrorKind::Invalid(_)));
    let mut huge = ack.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let e = Request::<AckEventRequest>::decode(&huge).unwrap_err();
    assert_eq!(
        e.kind,
        WireErrorKind::Truncated {
            needed: u64::MAX,
            available: 13
        }
    );

    // A boolean that is neither 0 nor 1.
    let e = Response::<MofkaResult<()>>::decode(&[0, 0, 0, 0, 2]).unwrap_err();
    assert_eq!((e.field.as_str(), e.offset), ("success", 4), "{e}");
    // A failed Mofka result carries a message.
    let failed = Response::ok(MofkaResult::<u64>::Err("no partition".into()));
    let bytes = failed.to_bytes();
    assert_eq!(&bytes[..5], &[0, 0, 0, 0, 0]);
    assert_eq!(
        Response::<MofkaResult<u64>>::decode(&bytes).unwrap(),
        failed
    );
    assert_eq!(
        MofkaResult::<u64>::Err("x".into()).into_result(),
        Err("x".to_string())
    );
    // A Margo-level failure has no body; a body after it is refused.
    let r: Response<MofkaResult<()>> = Response::failed(11);
    assert_eq!(r.to_bytes(), [11, 0, 0, 0]);
    assert_eq!(
        Response::<MofkaResult<()>>::decode(&[11, 0, 0, 0]).unwrap(),
        r
    );
    let e = Response::<MofkaResult<()>>::decode(&[11, 0, 0, 0, 1]).unwrap_err();
    assert_eq!(e.kind, WireErrorKind::TrailingBytes(1));

    // Nested paths: a request_data vector element, a send_batch handle.
    let rd = &find(&msgs, 144, false).payload;
    let e = Response::<MofkaResult<Vec<MofkaResult<()>>>>::decode(&rd[..13]).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.offset),
        ("value.items[0].success", 13),
        "{e}"
    );
    let sb = &find(&msgs, 72, true).payload;
    let e = Request::<SendBatchRequest>::decode_as(&sb[..100], WireVersion::V0_8).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.offset),
        ("metadata.handle.serialized", 37),
        "{e}"
    );

    // Descriptors with a selection tag the codec does not know are refused.
    let mut d = Vec::new();
    MemoryLocation { offset: 0, size: 6 }
        .descriptor()
        .sub_view(1, 2)
        .save(&mut d);
    d[48] = 9; // size, base size, location length, location (16), view count: 48 bytes
    let e = DataDescriptor::decode(&d).unwrap_err();
    assert_eq!((e.field.as_str(), e.offset), ("views.tag", 48), "{e}");

    // Bulk handles whose parts do not add up.
    let mut h = Vec::new();
    let mut dec_bytes = Vec::new();
    dec_bytes.extend_from_slice(&10u64.to_le_bytes());
    dec_bytes.extend_from_slice(&1u32.to_le_bytes());
    dec_bytes.extend_from_slice(&1u32.to_le_bytes());
    dec_bytes.extend_from_slice(&[0; 8]);
    dec_bytes.extend_from_slice(&9u64.to_le_bytes());
    h.extend_from_slice(&dec_bytes);
    let e = BulkHandle::from_serialized(h).describe().unwrap_err();
    assert_eq!(e.field, "segments", "{e}");
}

#[test]
fn decoder_primitives() {
    let mut buf = Vec::new();
    let hs = HgString {
        value: Some("".into()),
        is_const: true,
        is_owned: false,
    };
    hs.encode(&mut buf);
    assert_eq!(buf, [1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(HgString::decode(&buf).unwrap(), hs);
    assert_eq!(HgString::null().to_bytes(), [0; 8]);
    let e = HgString::decode(&[2, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', 0, 0]).unwrap_err();
    assert_eq!((e.field.as_str(), e.offset), ("bytes", 8), "{e}");

    let v = vec![1u64, 2, 3];
    assert_eq!(Vec::<u64>::decode(&v.to_bytes()).unwrap(), v);
    let e = Vec::<u64>::decode(&u64::MAX.to_le_bytes()).unwrap_err();
    assert_eq!(e.field, "items[0]", "{e}");

    let mut dec = Decoder::new(&[1, 2, 3], WireVersion::V0_8);
    assert_eq!(dec.u8("a").unwrap(), 1);
    assert_eq!(dec.remaining(), 2);
    assert_eq!(dec.rest(), &[2, 3]);
    let e = dec.finish().unwrap_err();
    assert_eq!((e.offset, e.kind), (1, WireErrorKind::TrailingBytes(2)));

    let r = RequestResult {
        success: false,
        error: "boom".into(),
        value: 0u16,
    };
    assert_eq!(RequestResult::<u16>::decode(&r.to_bytes()).unwrap(), r);

    // Reference worked example: ack_event("c1", 41).
    let bytes = Request::new(AckEventRequest {
        consumer_name: "c1".into(),
        event_id: 41,
    })
    .to_bytes();
    assert_eq!(
        hex::encode(bytes),
        "ffff000000000000020000000000000063312900000000000000"
    );
}
