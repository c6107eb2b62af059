//! Read buffers that come back: a fetch reads a span of the data (or metadata) file into one
//! buffer and hands out slices of it; when the last slice is dropped, the buffer returns to its
//! pool and the next fetch reads into memory that is already mapped and initialised. A fresh
//! buffer for every fetch costs a page fault per 4 KiB and a pass of zeroes over memory the
//! read overwrites anyway (at 1 MiB events that was most of a consumer's time).

use bytes::Bytes;
use std::sync::{Arc, Mutex};

/// Buffers a pool keeps at most.
const MAX_KEPT: usize = 8;
/// Bytes a pool keeps at most.
const MAX_KEPT_BYTES: usize = 256 << 20;

/// A pool of initialised byte buffers, shared by the fetches of one partition.
#[derive(Clone, Default)]
pub(crate) struct BufferPool {
    free: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl BufferPool {
    /// A buffer of at least `len` initialised bytes (their contents are unspecified): the
    /// smallest free one that is large enough, or a new zeroed one.
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= len)
            .min_by_key(|(_, b)| b.len())
            .map(|(i, _)| i);
        match best {
            Some(i) => free.swap_remove(i),
            None => {
                drop(free);
                vec![0u8; len]
            }
        }
    }

    /// The first `len` bytes of `buf` as shared bytes; `buf` comes back to the pool when the
    /// last slice of them is dropped.
    pub(crate) fn share(&self, buf: Vec<u8>, len: usize) -> Bytes {
        Bytes::from_owner(Returning {
            buf,
            len,
            pool: self.clone(),
        })
    }

    fn give_back(&self, buf: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let kept: usize = free.iter().map(Vec::len).sum();
        if free.len() < MAX_KEPT && kept + buf.len() <= MAX_KEPT_BYTES {
            free.push(buf);
        }
    }
}

/// A pooled buffer owned by [`Bytes`]: the first `len` bytes are the content.
struct Returning {
    buf: Vec<u8>,
    len: usize,
    pool: BufferPool,
}

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_the_last_slice_is_dropped() {
        let pool = BufferPool::default();
        let mut buf = pool.take(1000);
        assert!(buf.len() >= 1000);
        buf[..3].copy_from_slice(b"abc");
        let ptr = buf.as_ptr();
        let bytes = pool.share(buf, 3);
        let slice = bytes.slice(1..3);
        assert_eq!(&bytes[..], b"abc");
        drop(bytes);
        // Still in use by `slice`: a new take gets another buffer.
        let other = pool.take(10);
        assert_ne!(other.as_ptr(), ptr);
        assert_eq!(&slice[..], b"bc");
        drop(slice);
        // Back in the pool: the smallest buffer that fits is reused, whatever its contents.
        let again = pool.take(500);
        assert_eq!(again.as_ptr(), ptr);
        assert!(pool.take(2000).len() >= 2000);
    }

    #[test]
    fn the_pool_keeps_a_bounded_number_of_buffers() {
        let pool = BufferPool::default();
        let shared: Vec<Bytes> = (0..MAX_KEPT + 5)
            .map(|_| pool.share(pool.take(16), 16))
            .collect();
        drop(shared);
        assert_eq!(pool.free.lock().unwrap().len(), MAX_KEPT);
    }
}
