//! RPC ids

use super::fixtures::parse_hex_u64;
use super::fixtures::read_fixture;
use super::fixtures::rpc_of;
use super::fixtures::transcript;
use super::fixtures::Run;
use super::*;

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
