//! Descriptions of (parts of) an event's data, used to select what a consumer reads.
//!
//! A [`DataDescriptor`] names where an event's data lives (`location`, opaque to users) and a stack
//! of selections that narrow it down: a contiguous sub-range, a strided pattern, or an explicit list
//! of ranges. Each selection is expressed **relative to the view it refines**: `sub_view(13, 26)`
//! followed by `sub_view(2, 5)` selects base bytes 15..20. (The C++ reference treats every level as
//! absolute offsets in the base data, which breaks stacked views; single-level results are the
//! same in both.) [`DataDescriptor::flatten`] turns the stack into the byte ranges of the base data
//! that a driver must read, in order.
//!
//! The binary form ([`DataDescriptor::save`] / [`DataDescriptor::load`]) is the reference's:
//! little-endian u64 fields, one tag byte per selection.

use crate::error::{Error, Result};

/// One level of selection, relative to the view below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Bytes `offset..offset+size`.
    Contiguous {
        /// First byte.
        offset: u64,
        /// Number of bytes.
        size: u64,
    },
    /// `num_blocks` blocks of `block_size` bytes, the first at `offset`, separated by `gap_size`.
    Strided {
        /// Start of the first block.
        offset: u64,
        /// Number of blocks.
        num_blocks: u64,
        /// Bytes per block.
        block_size: u64,
        /// Bytes skipped between blocks.
        gap_size: u64,
    },
    /// Explicit `(offset, size)` ranges, sorted and non-overlapping.
    Unstructured(Vec<(u64, u64)>),
}

/// Location of an event's data plus the selections applied to it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DataDescriptor {
    location: Vec<u8>,
    size: u64,
    base_size: u64,
    selections: Vec<Selection>,
}

impl DataDescriptor {
    /// A descriptor of `size` bytes at an opaque `location` (drivers set it; users pass it on).
    pub fn new(location: impl Into<Vec<u8>>, size: u64) -> Self {
        DataDescriptor {
            location: location.into(),
            size,
            base_size: size,
            selections: Vec::new(),
        }
    }

    /// The "no data" descriptor: returning it from a data selector means the event's data is
    /// not read at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Size in bytes after all selections.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Size of the underlying data.
    pub fn base_size(&self) -> u64 {
        self.base_size
    }

    /// The opaque location.
    pub fn location(&self) -> &[u8] {
        &self.location
    }

    /// The selection stack, bottom first.
    pub fn selections(&self) -> &[Selection] {
        &self.selections
    }

    /// Selects `size` bytes from `offset` of the current view. The size is clamped to the view's
    /// end; an offset past the end, or a zero size, gives the "no data" descriptor.
    pub fn sub_view(&self, offset: u64, size: u64) -> DataDescriptor {
        if offset > self.size || size == 0 || self.size == 0 {
            return DataDescriptor::none();
        }
        let size = size.min(self.size - offset);
        let mut d = self.clone();
        d.selections.push(Selection::Contiguous { offset, size });
        d.size = size;
        d
    }

    /// Selects `num_blocks` blocks of `block_size` bytes starting at `offset` with `gap_size`
    /// bytes between them. Like the reference, the gap after the last block must also fit.
    pub fn strided_view(
        &self,
        offset: u64,
        num_blocks: u64,
        block_size: u64,
        gap_size: u64,
    ) -> Result<DataDescriptor> {
        if offset > self.size || num_blocks == 0 || block_size == 0 {
            return Ok(DataDescriptor::none());
        }
        let span = block_size
            .checked_add(gap_size)
            .and_then(|b| b.checked_mul(num_blocks))
            .and_then(|s| s.checked_add(offset));
        match span {
            Some(end) if end <= self.size => {}
            _ => {
                return Err(Error::InvalidArgument(
                    "invalid strided view: would go out of bounds".into(),
                ))
            }
        }
        let mut d = self.clone();
        d.selections.push(Selection::Strided {
            offset,
            num_blocks,
            block_size,
            gap_size,
        });
        d.size = num_blocks * block_size;
        Ok(d)
    }

    /// Selects explicit `(offset, size)` ranges of the current view, which must be in increasing
    /// order and must not overlap; touching ranges are merged.
    pub fn unstructured_view(&self, segments: &[(u64, u64)]) -> Result<DataDescriptor> {
        if segments.is_empty() {
            return Ok(DataDescriptor::none());
        }
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(segments.len());
        for &(offset, size) in segments {
            if let Some(&(po, ps)) = merged.last() {
                if offset < po + ps {
                    return Err(Error::InvalidArgument(
                        "invalid unstructured view: segments overlapping or out of order".into(),
                    ));
                }
            }
            let end = offset.checked_add(size);
            if offset >= self.size || end.is_none_or(|e| e > self.size) {
                return Err(Error::InvalidArgument(
                    "invalid unstructured view: would go out of bounds".into(),
                ));
            }
            match merged.last_mut() {
                Some(last) if last.0 + last.1 == offset => last.1 += size,
                _ => merged.push((offset, size)),
            }
        }
        if merged.len() == 1 {
            return Ok(self.sub_view(merged[0].0, merged[0].1));
        }
        let mut d = self.clone();
        d.size = merged.iter().map(|s| s.1).sum();
        d.selections.push(Selection::Unstructured(merged));
        Ok(d)
    }

    /// The byte ranges `(offset, size)` of the base data that make up this view, in order.
    pub fn flatten(&self) -> Vec<(u64, u64)> {
        // The current view as absolute ranges of the base data, in logical order.
        let mut current: Vec<(u64, u64)> = vec![(0, self.base_size)];
        for sel in &self.selections {
            let mut next = Vec::new();
            let mut take = |start: u64, len: u64| map_range(&current, start, len, &mut next);
            match sel {
                Selection::Contiguous { offset, size } => take(*offset, *size),
                Selection::Strided {
                    offset,
                    num_blocks,
                    block_size,
                    gap_size,
                } => {
                    for i in 0..*num_blocks {
                        take(offset + i * (block_size + gap_size), *block_size);
                    }
                }
                Selection::Unstructured(segs) => {
                    for &(o, s) in segs {
                        take(o, s);
                    }
                }
            }
            current = next;
        }
        current
    }

    /// Appends the reference's binary encoding of this descriptor to `out`.
    pub fn save(&self, out: &mut Vec<u8>) {
        let put = |out: &mut Vec<u8>, v: u64| out.extend_from_slice(&v.to_le_bytes());
        put(out, self.size);
        put(out, self.base_size);
        put(out, self.location.len() as u64);
        out.extend_from_slice(&self.location);
        put(out, self.selections.len() as u64);
        for sel in &self.selections {
            match sel {
                Selection::Contiguous { offset, size } => {
                    out.push(1);
                    put(out, *offset);
                    put(out, *size);
                }
                Selection::Strided {
                    offset,
                    num_blocks,
                    block_size,
                    gap_size,
                } => {
                    out.push(2);
                    for v in [offset, num_blocks, block_size, gap_size] {
                        put(out, *v);
                    }
                }
                Selection::Unstructured(segs) => {
                    out.push(3);
                    put(out, segs.len() as u64);
                    for (o, s) in segs {
                        put(out, *o);
                        put(out, *s);
                    }
                }
            }
        }
    }

    /// Decodes a descriptor saved by [`DataDescriptor::save`] (or by the C++ reference) from the
    /// front of `input`; returns it and the number of bytes consumed. Unknown selection tags are
    /// skipped without payload, as the reference does.
    pub fn load(input: &[u8]) -> Result<(DataDescriptor, usize)> {
        let mut r = Reader { buf: input, pos: 0 };
        let size = r.u64()?;
        let base_size = r.u64()?;
        let loc_len = r.u64()?;
        let location = r.bytes(loc_len)?.to_vec();
        let n_sel = r.u64()?;
        let mut selections = Vec::new();
        for _ in 0..n_sel {
            match r.u8()? {
                1 => selections.push(Selection::Contiguous {
                    offset: r.u64()?,
                    size: r.u64()?,
                }),
                2 => selections.push(Selection::Strided {
                    offset: r.u64()?,
                    num_blocks: r.u64()?,
                    block_size: r.u64()?,
                    gap_size: r.u64()?,
                }),
                3 => {
                    let count = r.u64()?;
                    if count > (r.buf.len() - r.pos) as u64 / 16 {
                        return Err(r.short("unstructured selection"));
                    }
                    let mut segs = Vec::with_capacity(count as usize);
                    for _ in 0..count {
                        segs.push((r.u64()?, r.u64()?));
                    }
                    selections.push(Selection::Unstructured(segs));
                }
                _ => {}
            }
        }
        Ok((
            DataDescriptor {
                location,
                size,
                base_size,
                selections,
            },
            r.pos,
        ))
    }
}

/// Appends to `out` the absolute ranges covering logical bytes `start..start+len` of `view`.
fn map_range(view: &[(u64, u64)], start: u64, len: u64, out: &mut Vec<(u64, u64)>) {
    let end = start.saturating_add(len);
    let mut logical = 0u64;
    for &(abs, size) in view {
        let seg_end = logical + size;
        let lo = start.max(logical);
        let hi = end.min(seg_end);
        if lo < hi {
            out.push((abs + (lo - logical), hi - lo));
        }
        logical = seg_end;
        if logical >= end {
            break;
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn short(&self, what: &str) -> Error {
        Error::Decode {
            what: "data descriptor",
            reason: format!("input ends at byte {} while reading {what}", self.buf.len()),
        }
    }
    fn take(&mut self, n: u64, what: &str) -> Result<&'_ [u8]> {
        let buf = self.buf;
        match usize::try_from(n) {
            Ok(n) if buf.len() - self.pos >= n => {
                let s = &buf[self.pos..self.pos + n];
                self.pos += n;
                Ok(s)
            }
            _ => Err(self.short(what)),
        }
    }
    fn bytes(&mut self, n: u64) -> Result<&[u8]> {
        self.take(n, "location")
    }
    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8, "a u64 field")?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }
    fn u8(&mut self) -> Result<u8> {
        let b = self.take(1, "a selection tag")?;
        Ok(b[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract(d: &DataDescriptor, base: &[u8]) -> Vec<u8> {
        d.flatten()
            .iter()
            .flat_map(|&(o, s)| base[o as usize..(o + s) as usize].to_vec())
            .collect()
    }

    const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

    #[test]
    fn single_level_views_match_reference() {
        let d = DataDescriptor::new("", 52);
        assert_eq!(
            extract(&d.sub_view(13, 26), ALPHA),
            b"nopqrstuvwxyzABCDEFGHIJKLM"
        );
        assert_eq!(
            extract(&d.strided_view(13, 3, 4, 2).unwrap(), ALPHA),
            b"nopqtuvwzABC"
        );
        assert_eq!(
            extract(
                &d.unstructured_view(&[(3, 6), (15, 4), (27, 8)]).unwrap(),
                ALPHA
            ),
            b"defghipqrsBCDEFGHI"
        );
        assert_eq!(DataDescriptor::none().flatten(), vec![(0, 0)]);
    }

    #[test]
    fn stacked_views_compose_relative() {
        let d = DataDescriptor::new("", 52);
        let s = d.sub_view(13, 26).sub_view(2, 5);
        assert_eq!(s.flatten(), vec![(15, 5)]);
        let st = d.sub_view(10, 40).strided_view(0, 4, 2, 3).unwrap();
        assert_eq!(st.size(), 8);
        assert_eq!(extract(&st, ALPHA), b"klpquvzA");
        // Unstructured ranges over a strided view cross block boundaries.
        let u = d
            .strided_view(0, 4, 4, 4)
            .unwrap()
            .unstructured_view(&[(2, 4), (10, 3)])
            .unwrap();
        assert_eq!(extract(&u, ALPHA), b"cdijsty");
    }

    #[test]
    fn bounds_and_python_cases() {
        let d = DataDescriptor::new("test_location", 1024);
        let s = d.sub_view(100, 200);
        assert_eq!((s.size(), s.location()), (200, &b"test_location"[..]));
        assert_eq!(d.sub_view(1200, 200).size(), 0);
        assert_eq!(d.sub_view(900, 200).size(), 124);
        assert_eq!(d.strided_view(0, 4, 64, 192).unwrap().size(), 256);
        assert!(d.strided_view(0, 4, 128, 192).is_err());
        assert!(d.strided_view(0, u64::MAX, u64::MAX, 1).is_err());
        assert_eq!(
            d.unstructured_view(&[(0, 100), (200, 100), (400, 100)])
                .unwrap()
                .size(),
            300
        );
        assert!(d
            .unstructured_view(&[(0, 100), (200, 100), (1000, 200)])
            .is_err());
        assert!(d.unstructured_view(&[(0, 200), (100, 200)]).is_err());
        assert_eq!(s.flatten(), vec![(100, 200)]);
        let merged = d.unstructured_view(&[(0, 10), (10, 10)]).unwrap();
        assert_eq!(merged.selections().len(), 1);
        assert_eq!(merged.flatten(), vec![(0, 20)]);
    }

    #[test]
    fn save_load_round_trip_and_layout() {
        let d = DataDescriptor::new("loc", 100)
            .sub_view(10, 80)
            .strided_view(0, 2, 5, 5)
            .unwrap();
        let d = DataDescriptor {
            selections: {
                let mut s = d.selections.clone();
                s.push(Selection::Unstructured(vec![(0, 2), (4, 3)]));
                s
            },
            ..d
        };
        let mut buf = Vec::new();
        d.save(&mut buf);
        assert_eq!(&buf[0..8], &d.size().to_le_bytes());
        assert_eq!(&buf[16..24], &3u64.to_le_bytes());
        assert_eq!(&buf[24..27], b"loc");
        assert_eq!(buf[35], 1);
        let (back, used) = DataDescriptor::load(&buf).unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(back, d);
        for cut in 0..buf.len() {
            assert!(DataDescriptor::load(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }
}
