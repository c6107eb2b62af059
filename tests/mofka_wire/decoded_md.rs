//! decoded.md

use super::fixtures::find;
use super::fixtures::read_fixture;
use super::fixtures::rpc_of;
use super::fixtures::transcript;
use super::fixtures::Run;
use super::*;

pub(crate) struct Row {
    pub(crate) off: usize,
    pub(crate) len: usize,
    pub(crate) field: String,
    pub(crate) hex: String,
    pub(crate) truncated_hex: bool,
}

pub(crate) struct Section {
    pub(crate) seq: u64,
    pub(crate) request: bool,
    pub(crate) rows: Vec<Row>,
}

pub(crate) fn decoded_md_sections() -> Vec<Section> {
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
