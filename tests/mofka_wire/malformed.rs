//! Malformed input

use super::fixtures::find;
use super::fixtures::rpc_of;
use super::fixtures::transcript;
use super::fixtures::Run;
use super::*;

pub(crate) fn try_decode(rpc: Rpc, request: bool, bytes: &[u8]) -> Result<Vec<u8>, WireError> {
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
pub(crate) fn accepted_round_trips(rpc: Rpc, request: bool, bytes: &[u8]) {
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
