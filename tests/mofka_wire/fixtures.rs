//! Fixtures

use super::*;

pub(crate) fn fixtures() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/mofka-wire");
    assert!(
        dir.join("transcript.jsonl").is_file(),
        "the Mofka wire fixtures are missing: expected {} (the `shared` folder beside the \
         checkout, with fixtures/mofka-wire/transcript.jsonl)",
        dir.display()
    );
    dir
}

pub(crate) fn read_fixture(name: &str) -> String {
    let path = fixtures().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub(crate) fn jsonl(name: &str) -> Vec<Value> {
    read_fixture(name)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect()
}

pub(crate) fn parse_hex_u64(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Run {
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
    pub(crate) fn bulk_events(self) -> &'static str {
        match self {
            Run::Tcp => "bulk-events.jsonl",
            Run::Sm => "bulk-events-sm.jsonl",
        }
    }
}

/// One captured message.
#[derive(Clone, Debug)]
pub(crate) struct Msg {
    pub(crate) seq: u64,
    pub(crate) process: String,
    pub(crate) send: bool,
    pub(crate) request: bool,
    pub(crate) rpc: String,
    pub(crate) rpc_id: u64,
    pub(crate) provider_id: u16,
    pub(crate) self_addr: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) wire: Vec<u8>,
    pub(crate) na_header_size: usize,
    pub(crate) payload_offset: usize,
}

pub(crate) fn transcript(run: Run) -> Vec<Msg> {
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

pub(crate) fn rpc_of(m: &Msg) -> Rpc {
    Rpc::from_name(&m.rpc).unwrap_or_else(|| panic!("seq {}: unknown RPC {}", m.seq, m.rpc))
}

pub(crate) fn find(msgs: &[Msg], seq: u64, request: bool) -> &Msg {
    msgs.iter()
        .find(|m| m.seq == seq && m.send && m.request == request)
        .unwrap_or_else(|| panic!("no sent message with seq {seq}"))
}

pub(crate) fn decode_request(
    m: &Msg,
    version: WireVersion,
) -> Result<Request<AnyRequest>, WireError> {
    Request::<AnyRequest>::decode_payload(rpc_of(m), &m.payload, version)
}

pub(crate) fn decode_response(
    m: &Msg,
    version: WireVersion,
) -> Result<Response<AnyResponse>, WireError> {
    Response::<AnyResponse>::decode_payload(rpc_of(m), &m.payload, version)
}

/// Decodes a captured message (request or response) and re-encodes it.
pub(crate) fn reencode(m: &Msg, version: WireVersion) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    if m.request {
        decode_request(m, version)?.encode_payload(version, &mut out);
    } else {
        decode_response(m, version)?.encode_payload(version, &mut out);
    }
    Ok(out)
}

pub(crate) fn req(m: &Msg) -> Request<AnyRequest> {
    decode_request(m, WireVersion::V0_8).unwrap_or_else(|e| panic!("seq {} {}: {e}", m.seq, m.rpc))
}

pub(crate) fn resp(m: &Msg) -> AnyResponse {
    let r = decode_response(m, WireVersion::V0_8)
        .unwrap_or_else(|e| panic!("seq {} {}: {e}", m.seq, m.rpc));
    assert_eq!(r.hg_ret, 0);
    r.body.expect("a successful response has a body")
}

pub(crate) fn addr_of(msgs: &[Msg], process: &str) -> String {
    msgs.iter()
        .find(|m| m.process == process)
        .map(|m| m.self_addr.clone())
        .unwrap_or_else(|| panic!("no message from {process}"))
}
