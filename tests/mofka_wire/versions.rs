//! Versions

use super::fixtures::find;
use super::fixtures::req;
use super::fixtures::transcript;
use super::fixtures::Run;
use super::*;

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
