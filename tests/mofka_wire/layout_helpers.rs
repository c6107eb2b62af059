//! Layout helpers

use super::*;

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
