//! Zero-copy scatter/gather views on event data.
//!
//! A [`DataView`] is a list of [`Bytes`] segments. `Bytes` is a reference-counted handle, so a view
//! shares the application's memory instead of copying it: a `Vec<u8>`, a `Vec<f64>` wrapped with
//! [`DataView::from_owner`], a static slice, or any buffer type the application owns. The memory
//! stays alive until the last view on it is dropped, so a producer that batches events lazily can
//! never read a dangling buffer, and nothing is copied until the driver writes the bytes out.
//!
//! On the consumer side, a data allocator hands out [`DataBuffer`]s (memory of the application's
//! choosing) that the driver fills in place; the filled buffers become the event's `DataView`
//! without another copy.

use bytes::Bytes;
use smallvec::SmallVec;
use std::fmt;

/// Event data: an ordered list of byte segments, read as their concatenation.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DataView {
    segments: SmallVec<[Bytes; 2]>,
    size: usize,
}

impl fmt::Debug for DataView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataView")
            .field("size", &self.size)
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl DataView {
    /// An empty view (no data).
    pub const fn new() -> Self {
        DataView {
            segments: SmallVec::new_const(),
            size: 0,
        }
    }

    /// One segment.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let b = bytes.into();
        let size = b.len();
        let mut segments = SmallVec::new();
        if size > 0 {
            segments.push(b);
        }
        DataView { segments, size }
    }

    /// Several segments, read in order. Empty segments are dropped.
    pub fn from_segments<I, B>(segments: I) -> Self
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        let segments: SmallVec<[Bytes; 2]> = segments
            .into_iter()
            .map(Into::into)
            .filter(|b| !b.is_empty())
            .collect();
        let size = segments.iter().map(Bytes::len).sum();
        DataView { segments, size }
    }

    /// Shares memory owned by any value that can be seen as bytes (`Vec<u8>`, a memory map, an
    /// application buffer type...). The owner is dropped when the last view on it goes away.
    pub fn from_owner<T>(owner: T) -> Self
    where
        T: AsRef<[u8]> + Send + 'static,
    {
        Self::from_bytes(Bytes::from_owner(owner))
    }

    /// Total number of bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// True when the view holds no byte.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[Bytes] {
        &self.segments
    }

    /// The bytes as one slice when the view has at most one segment (no copy).
    pub fn as_contiguous(&self) -> Option<&[u8]> {
        match self.segments.len() {
            0 => Some(&[]),
            1 => Some(&self.segments[0]),
            _ => None,
        }
    }

    /// Copies up to `dst.len()` bytes starting at logical `offset` into `dst`; returns how many
    /// bytes were copied. Copies that start inside a segment are clamped to that segment's end
    /// (the C++ reference overruns segments here).
    pub fn read(&self, dst: &mut [u8], offset: usize) -> usize {
        let mut copied = 0;
        let mut seg_start = 0;
        for seg in &self.segments {
            let seg_end = seg_start + seg.len();
            let pos = offset + copied;
            if copied == dst.len() {
                break;
            }
            if pos < seg_end && pos >= seg_start {
                let in_seg = pos - seg_start;
                let n = (seg.len() - in_seg).min(dst.len() - copied);
                dst[copied..copied + n].copy_from_slice(&seg[in_seg..in_seg + n]);
                copied += n;
            }
            seg_start = seg_end;
        }
        copied
    }

    /// All bytes concatenated into a new vector (a copy).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size);
        for s in &self.segments {
            out.extend_from_slice(s);
        }
        out
    }

    /// The bytes as one `Bytes`: free when there is one segment, a copy otherwise.
    pub fn to_bytes(&self) -> Bytes {
        match self.segments.len() {
            0 => Bytes::new(),
            1 => self.segments[0].clone(),
            _ => Bytes::from(self.to_vec()),
        }
    }
}

impl From<Vec<u8>> for DataView {
    fn from(v: Vec<u8>) -> Self {
        DataView::from_bytes(v)
    }
}

impl From<Bytes> for DataView {
    fn from(b: Bytes) -> Self {
        DataView::from_bytes(b)
    }
}

impl From<&'static [u8]> for DataView {
    fn from(b: &'static [u8]) -> Self {
        DataView::from_bytes(Bytes::from_static(b))
    }
}

impl From<&'static str> for DataView {
    fn from(s: &'static str) -> Self {
        DataView::from_bytes(Bytes::from_static(s.as_bytes()))
    }
}

impl From<String> for DataView {
    fn from(s: String) -> Self {
        DataView::from_bytes(s.into_bytes())
    }
}

/// Writable memory that a consumer's data allocator provides for the driver to fill.
///
/// Implemented for every `AsMut<[u8]> + AsRef<[u8]> + Send + 'static` type, such as `Vec<u8>`,
/// `Box<[u8]>` or `BytesMut`. An application that wants data to land inside one of its own larger
/// structures implements `AsRef`/`AsMut` on a small handle to that region.
pub trait DataBuffer: AsRef<[u8]> + AsMut<[u8]> + Send + 'static {}

impl<T: AsRef<[u8]> + AsMut<[u8]> + Send + 'static> DataBuffer for T {}

/// Memory returned by a data allocator: one or more writable segments, filled in order.
#[derive(Default)]
pub struct Allocation {
    pub(crate) buffers: Vec<Box<dyn DataBuffer>>,
}

impl fmt::Debug for Allocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Allocation")
            .field("capacity", &self.capacity())
            .field("segments", &self.buffers.len())
            .finish()
    }
}

struct BufferOwner(Box<dyn DataBuffer>);

impl AsRef<[u8]> for BufferOwner {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl Allocation {
    /// No memory: the event will carry no data.
    pub fn none() -> Self {
        Self::default()
    }

    /// One writable segment.
    pub fn single(buffer: impl DataBuffer) -> Self {
        Allocation {
            buffers: vec![Box::new(buffer)],
        }
    }

    /// Adds a segment after the existing ones.
    pub fn push(&mut self, buffer: impl DataBuffer) {
        self.buffers.push(Box::new(buffer));
    }

    /// Total bytes of all segments.
    pub fn capacity(&self) -> usize {
        self.buffers.iter().map(|b| (**b).as_ref().len()).sum()
    }

    /// Mutable slices over the segments, in order.
    pub(crate) fn slices_mut(&mut self) -> Vec<&mut [u8]> {
        self.buffers.iter_mut().map(|b| (**b).as_mut()).collect()
    }

    /// Turns the (filled) segments into a view without copying. Only the first `size` bytes are
    /// exposed; segments past that are dropped.
    pub(crate) fn into_view(self, size: usize) -> DataView {
        let mut remaining = size;
        let mut segs = Vec::with_capacity(self.buffers.len());
        for b in self.buffers {
            if remaining == 0 {
                break;
            }
            let bytes = Bytes::from_owner(BufferOwner(b));
            let take = remaining.min(bytes.len());
            segs.push(bytes.slice(0..take));
            remaining -= take;
        }
        DataView::from_segments(segs)
    }
}

/// Walks `ranges` (`(offset, size)` of some source) laid consecutively over the `dst` segments
/// and calls `copy(source_offset, piece)` for each piece of a segment to fill; ranges beyond the
/// segments' total are cut. The one scatter loop of the crate: the consumer copies from memory,
/// the files driver reads from a file; drivers written outside the crate use it in their
/// [`crate::backend::TopicBackend::read_data`].
pub fn scatter_with<E>(
    ranges: &[(u64, u64)],
    dst: &mut [&mut [u8]],
    mut copy: impl FnMut(u64, &mut [u8]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut seg = 0;
    let mut pos = 0;
    for &(o, s) in ranges {
        let mut from = o;
        let mut left = s as usize;
        while left > 0 && seg < dst.len() {
            let room = dst[seg].len() - pos;
            if room == 0 {
                seg += 1;
                pos = 0;
                continue;
            }
            let n = room.min(left);
            copy(from, &mut dst[seg][pos..pos + n])?;
            pos += n;
            from += n as u64;
            left -= n;
        }
    }
    Ok(())
}

/// Copies `ranges` of `src` consecutively over the `dst` segments (each range must lie within
/// `src`).
pub fn scatter(src: &[u8], ranges: &[(u64, u64)], dst: &mut [&mut [u8]]) {
    let _ = scatter_with(ranges, dst, |from, piece| {
        let from = from as usize;
        piece.copy_from_slice(&src[from..from + piece.len()]);
        Ok::<(), std::convert::Infallible>(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_clamps_to_segment_ends() {
        let v = DataView::from_segments(vec![b"abcdef".to_vec(), b"ghij".to_vec(), b"".to_vec()]);
        assert_eq!(v.size(), 10);
        assert_eq!(v.segments().len(), 2);
        let mut out = [0u8; 6];
        assert_eq!(v.read(&mut out, 3), 6);
        assert_eq!(&out, b"defghi");
        let mut out = [0u8; 20];
        assert_eq!(v.read(&mut out, 8), 2);
        assert_eq!(&out[..2], b"ij");
        assert_eq!(v.read(&mut out, 10), 0);
        assert_eq!(v.to_vec(), b"abcdefghij");
    }

    #[test]
    fn owner_is_shared_not_copied() {
        let data = vec![7u8; 4096];
        let ptr = data.as_ptr();
        let v = DataView::from_owner(data);
        assert_eq!(v.segments()[0].as_ptr(), ptr);
        let v2 = v.clone();
        assert_eq!(v2.as_contiguous().unwrap().as_ptr(), ptr);
    }

    #[test]
    fn allocation_becomes_view_in_place() {
        let mut a = Allocation::single(vec![0u8; 4]);
        a.push(vec![0u8; 4]);
        assert_eq!(a.capacity(), 8);
        for (i, s) in a.slices_mut().into_iter().enumerate() {
            s.fill(i as u8 + 1);
        }
        let v = a.into_view(6);
        assert_eq!(v.to_vec(), vec![1, 1, 1, 1, 2, 2]);
    }
}
