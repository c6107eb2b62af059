//! Golden round trips

use super::fixtures::reencode;
use super::fixtures::transcript;
use super::fixtures::Run;
use super::*;

pub(crate) fn round_trip_transcript(run: Run) -> BTreeMap<String, usize> {
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
