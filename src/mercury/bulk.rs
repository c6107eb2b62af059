//! Bulk (RDMA) memory: [`LocalBulk`] exposes this process's memory, [`RemoteBulk`] describes a
//! peer's, and [`Engine::transfer`] copies between them. Both hold their Mercury handle through
//! one owned type, [`BulkHandle`], which frees it once and keeps the engine alive meanwhile.

use super::address::Address;
use super::engine::{Engine, Inner};
use super::error::{guard, hg_check, hg_error};
use super::progress::Inflight;
use crate::error::{Error, Result};
use crate::future::{Future, Promise};
use bytes::Bytes;
use mercury_sys as hg;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The peer side of a bulk transfer: whose memory, which handle, from which byte.
#[derive(Clone, Copy, Debug)]
pub struct RemoteRegion<'a> {
    /// The peer that owns the memory (often [`Request::source`](super::Request::source)).
    pub origin: &'a Address,
    /// The peer's handle.
    pub bulk: &'a RemoteBulk,
    /// First byte of the peer's memory to transfer.
    pub offset: usize,
}

impl<'a> RemoteRegion<'a> {
    /// The region of `bulk`, owned by `origin`, starting at `offset`.
    pub fn new(origin: &'a Address, bulk: &'a RemoteBulk, offset: usize) -> Self {
        RemoteRegion {
            origin,
            bulk,
            offset,
        }
    }
}

/// Direction of a bulk transfer, seen from the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkOp {
    /// Copy the peer's memory into local memory (RDMA read).
    Pull,
    /// Copy local memory into the peer's memory (RDMA write).
    Push,
}

/// What a peer may do with exposed memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkAccess {
    /// The peer may read it.
    ReadOnly,
    /// The peer may write it.
    WriteOnly,
    /// The peer may read and write it.
    ReadWrite,
}

/// One reference on a Mercury bulk handle, released when dropped, with the engine whose class
/// the handle belongs to (kept alive for as long as the handle).
struct BulkHandle {
    raw: hg::hg_bulk_t,
    _engine: Arc<Inner>,
}

// SAFETY: Mercury's bulk functions (`HG_Bulk_*`, transfers) may be called on a handle from any
// thread, and the handle is only freed once, by `Drop`; the memory it describes is the
// business of its owner (`LocalBulk`, or the peer for a `RemoteBulk`).
unsafe impl Send for BulkHandle {}
// SAFETY: as above; through a shared reference the handle is only read (its size, its
// serialization, or another reference taken for a transfer).
unsafe impl Sync for BulkHandle {}

impl BulkHandle {
    /// A handle on `segments` (empty ones are left out), which must stay valid while it lives.
    fn create(
        engine: &Engine,
        segments: &[(*mut u8, usize)],
        access: BulkAccess,
    ) -> Result<BulkHandle> {
        let segments: Vec<(*mut u8, usize)> =
            segments.iter().copied().filter(|&(_, n)| n > 0).collect();
        if segments.is_empty() {
            return Err(Error::InvalidArgument(
                "a bulk handle needs at least one non-empty segment".into(),
            ));
        }
        let mut ptrs: Vec<*mut c_void> = segments.iter().map(|&(p, _)| p as *mut c_void).collect();
        let sizes: Vec<hg::hg_size_t> = segments.iter().map(|&(_, n)| n as hg::hg_size_t).collect();
        let flags = match access {
            BulkAccess::ReadOnly => hg::HG_BULK_READ_ONLY,
            BulkAccess::WriteOnly => hg::HG_BULK_WRITE_ONLY,
            BulkAccess::ReadWrite => hg::HG_BULK_READWRITE,
        };
        let mut raw = hg::HG_BULK_NULL;
        // SAFETY: the pointers and sizes describe memory kept valid by the LocalBulk being
        // built (owned by it, or promised by the caller of `from_raw_segments`).
        hg_check("HG_Bulk_create", unsafe {
            hg::HG_Bulk_create(
                engine.inner.class,
                ptrs.len() as u32,
                ptrs.as_mut_ptr(),
                sizes.as_ptr(),
                flags as u8,
                &mut raw,
            )
        })?;
        Ok(BulkHandle {
            raw,
            _engine: engine.inner.clone(),
        })
    }

    /// A peer's handle, from the bytes [`LocalBulk::serialize`] gave it.
    fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<BulkHandle> {
        if bytes.is_empty() {
            return Err(Error::InvalidArgument("empty (null) bulk handle".into()));
        }
        let mut raw = hg::HG_BULK_NULL;
        // SAFETY: Mercury parses and validates the bytes.
        hg_check("HG_Bulk_deserialize", unsafe {
            hg::HG_Bulk_deserialize(
                engine.inner.class,
                &mut raw,
                bytes.as_ptr() as *const c_void,
                bytes.len() as hg::hg_size_t,
            )
        })?;
        Ok(BulkHandle {
            raw,
            _engine: engine.inner.clone(),
        })
    }

    /// Another reference on the same handle (Mercury counts them), for a transfer to hold.
    fn share(&self) -> BulkHandle {
        // SAFETY: the handle is valid; the new reference is released by its own `Drop`.
        unsafe {
            hg::HG_Bulk_ref_incr(self.raw);
        }
        BulkHandle {
            raw: self.raw,
            _engine: self._engine.clone(),
        }
    }

    /// The total size of the memory the handle describes.
    fn size(&self) -> usize {
        // SAFETY: the handle is valid.
        unsafe { hg::HG_Bulk_get_size(self.raw) as usize }
    }
}

impl Drop for BulkHandle {
    fn drop(&mut self) {
        // SAFETY: this reference is ours and released once, and no transfer uses it any more:
        // a transfer holds the local bulk (so its handle) by value, and its own reference on
        // the remote handle, until it completes or fails to start.
        unsafe {
            hg::HG_Bulk_free(self.raw);
        }
    }
}

/// Where a [`LocalBulk`]'s memory comes from.
enum BulkMemory {
    Shared(Vec<Bytes>),
    Owned(Vec<u8>),
    /// Memory the caller of [`LocalBulk::from_raw_segments`] keeps alive.
    Borrowed(BorrowedSegments),
}

/// The segments given to [`LocalBulk::from_raw_segments`].
struct BorrowedSegments(Vec<(*mut u8, usize)>);

// SAFETY: the caller of `from_raw_segments` promised that the memory stays valid (and, unless
// the bulk is read-only, untouched by anything else) until the bulk is dropped and its
// transfers are done, whichever thread holds it meanwhile.
unsafe impl Send for BorrowedSegments {}
// SAFETY: through a shared bulk the memory is only read (`LocalBulk::segments`); transfers
// take the bulk by value.
unsafe impl Sync for BorrowedSegments {}

/// Local memory exposed for RDMA, with the Mercury bulk handle describing it.
///
/// The memory belongs to the bulk: shared read-only [`Bytes`] segments (zero copy from a
/// [`DataView`](crate::data_view::DataView)) or an owned buffer. It is freed with the bulk,
/// after any transfer.
pub struct LocalBulk {
    /// Declared first, so that Mercury lets go of the memory before it is freed.
    handle: BulkHandle,
    memory: BulkMemory,
    access: BulkAccess,
    size: usize,
}

impl std::fmt::Debug for LocalBulk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBulk")
            .field("size", &self.size)
            .field("access", &self.access)
            .finish()
    }
}

impl LocalBulk {
    /// Exposes read-only segments (for example a [`DataView`](crate::data_view::DataView)'s)
    /// without copying them.
    pub fn expose(engine: &Engine, segments: Vec<Bytes>) -> Result<LocalBulk> {
        let raw_segments: Vec<(*mut u8, usize)> = segments
            .iter()
            .map(|s| (s.as_ptr() as *mut u8, s.len()))
            .collect();
        let handle = BulkHandle::create(engine, &raw_segments, BulkAccess::ReadOnly)?;
        Ok(LocalBulk {
            handle,
            size: segments.iter().map(Bytes::len).sum(),
            memory: BulkMemory::Shared(segments),
            access: BulkAccess::ReadOnly,
        })
    }

    /// Exposes an owned buffer that peers may write (and read, with
    /// [`BulkAccess::ReadWrite`]); get it back with [`LocalBulk::into_vec`].
    pub fn from_vec(engine: &Engine, mut buffer: Vec<u8>, access: BulkAccess) -> Result<LocalBulk> {
        let handle = BulkHandle::create(engine, &[(buffer.as_mut_ptr(), buffer.len())], access)?;
        Ok(LocalBulk {
            handle,
            size: buffer.len(),
            memory: BulkMemory::Owned(buffer),
            access,
        })
    }

    /// Exposes memory this bulk does not own, for example an application's buffer that a
    /// blocking call fills by RDMA before it returns.
    ///
    /// # Safety
    ///
    /// Every segment must stay valid (and, unless `access` is read-only, not be read or written
    /// by anything else) until the bulk is dropped and every transfer or remote operation on it
    /// has completed, including operations a peer performs with the serialized handle.
    pub unsafe fn from_raw_segments(
        engine: &Engine,
        segments: &[(*mut u8, usize)],
        access: BulkAccess,
    ) -> Result<LocalBulk> {
        let handle = BulkHandle::create(engine, segments, access)?;
        Ok(LocalBulk {
            handle,
            size: segments.iter().map(|s| s.1).sum(),
            memory: BulkMemory::Borrowed(BorrowedSegments(segments.to_vec())),
            access,
        })
    }

    /// Total size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// What peers may do with the memory.
    pub fn access(&self) -> BulkAccess {
        self.access
    }

    /// The memory's segments.
    pub fn segments(&self) -> Vec<&[u8]> {
        match &self.memory {
            BulkMemory::Shared(s) => s.iter().map(|b| b.as_ref()).collect(),
            BulkMemory::Owned(v) => vec![v.as_slice()],
            // SAFETY: the creator guarantees the memory is valid while the bulk lives.
            BulkMemory::Borrowed(segs) => segs
                .0
                .iter()
                .map(|&(p, n)| unsafe { std::slice::from_raw_parts(p as *const u8, n) })
                .collect(),
        }
    }

    /// The owned buffer, to write into between transfers (`None` for shared or borrowed
    /// memory). Holding the bulk mutably means no transfer of it is under way here; a peer
    /// that was given its handle must be done with it too.
    pub fn owned_mut(&mut self) -> Option<&mut [u8]> {
        match &mut self.memory {
            BulkMemory::Owned(v) => Some(v.as_mut_slice()),
            BulkMemory::Shared(_) | BulkMemory::Borrowed(_) => None,
        }
    }

    /// The owned buffer (`None` for shared segments).
    pub fn into_vec(self) -> Option<Vec<u8>> {
        let LocalBulk { handle, memory, .. } = self;
        // Mercury lets go of the buffer before it is handed out.
        drop(handle);
        match memory {
            BulkMemory::Owned(v) => Some(v),
            BulkMemory::Shared(_) | BulkMemory::Borrowed(_) => None,
        }
    }

    /// The handle as Mercury serializes it for a peer (the bytes `hg_proc_hg_bulk_t` writes
    /// after its `u64` size), to be sent inside an RPC payload.
    pub fn serialize(&self) -> Result<Vec<u8>> {
        let raw = self.handle.raw;
        // SAFETY: the handle is valid; the buffer has the size Mercury asked for.
        unsafe {
            let n = hg::HG_Bulk_get_serialize_size(raw, 0) as usize;
            let mut out = vec![0u8; n];
            hg_check(
                "HG_Bulk_serialize",
                hg::HG_Bulk_serialize(out.as_mut_ptr() as *mut c_void, n as hg::hg_size_t, 0, raw),
            )?;
            Ok(out)
        }
    }
}

/// A peer's memory, described by a bulk handle it sent in a payload.
pub struct RemoteBulk {
    handle: BulkHandle,
    size: usize,
}

impl std::fmt::Debug for RemoteBulk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBulk")
            .field("size", &self.size)
            .finish()
    }
}

impl RemoteBulk {
    /// Rebuilds a peer's handle from its serialized bytes (see [`LocalBulk::serialize`]).
    pub fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<RemoteBulk> {
        let handle = BulkHandle::deserialize(engine, bytes)?;
        let size = handle.size();
        Ok(RemoteBulk { handle, size })
    }

    /// Total size of the peer's memory.
    pub fn size(&self) -> usize {
        self.size
    }
}

type BulkSlot = Arc<Mutex<Option<LocalBulk>>>;

/// Who hears of a transfer's end: a waiter on its future, or a callback.
enum BulkDone {
    Promise(Arc<Promise<BulkSlot>>),
    Callback(Box<dyn FnOnce(Result<LocalBulk>) + Send>),
}

impl BulkDone {
    fn finish(self, result: Result<LocalBulk>) {
        match self {
            BulkDone::Promise(promise) => {
                promise.set(result.map(|local| Arc::new(Mutex::new(Some(local)))))
            }
            BulkDone::Callback(f) => f(result),
        }
    }
}

struct BulkState {
    done: BulkDone,
    inflight: Arc<Inflight>,
    local: Option<LocalBulk>,
    /// The transfer's own reference on the peer's handle.
    remote: BulkHandle,
    /// The peer's address, held until the transfer ends (its caller may drop its own first).
    _origin: Address,
    op_id: usize,
}

unsafe extern "C" fn bulk_done(info: *const hg::hg_cb_info) -> hg::hg_return_t {
    guard("bulk completion", || {
        // SAFETY: `arg` is the Box leaked by `Engine::transfer`, reclaimed once here.
        unsafe {
            let info = &*info;
            let ptr = info.arg as *mut BulkState;
            // Taking the lock orders this after `transfer` recorded the op id.
            let mut ops = (*ptr).inflight.bulk_ops();
            let state = Box::from_raw(ptr);
            ops.remove(&state.op_id);
            drop(ops);
            let BulkState {
                done,
                local,
                remote,
                ..
            } = *state;
            drop(remote);
            let result = hg_check("HG_Bulk_transfer", info.ret)
                .and_then(|()| local.ok_or(Error::Closed("bulk transfer")));
            done.finish(result);
            hg::HG_SUCCESS
        }
    })
}

/// A bulk transfer under way; [`BulkTransfer::wait`] gives the local bulk back.
pub struct BulkTransfer {
    future: Future<BulkSlot>,
}

impl std::fmt::Debug for BulkTransfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkTransfer")
            .field("completed", &self.future.completed())
            .finish()
    }
}

impl BulkTransfer {
    /// Waits for the transfer and returns the local bulk.
    pub fn wait(self) -> Result<LocalBulk> {
        let slot = self.future.wait()?;
        let bulk = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        bulk.ok_or(Error::Closed("bulk transfer"))
    }

    /// Waits at most `timeout`; `Ok(Err(self))` when it has not completed yet.
    pub fn wait_timeout(self, timeout: Duration) -> Result<std::result::Result<LocalBulk, Self>> {
        match self.future.wait_timeout(timeout)? {
            Some(slot) => {
                let bulk = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                bulk.map(Ok).ok_or(Error::Closed("bulk transfer"))
            }
            None => Ok(Err(self)),
        }
    }

    /// Whether the transfer has completed.
    pub fn completed(&self) -> bool {
        self.future.completed()
    }
}

impl Engine {
    /// Starts a bulk transfer between `local` and the peer memory `remote` owned by `origin`:
    /// [`BulkOp::Pull`] copies the peer's bytes into `local`, [`BulkOp::Push`] copies `local`
    /// into the peer's memory. `local` is held until the transfer completes and handed back by
    /// [`BulkTransfer::wait`].
    pub fn transfer(
        &self,
        op: BulkOp,
        remote: RemoteRegion<'_>,
        local: LocalBulk,
        local_offset: usize,
        size: usize,
    ) -> BulkTransfer {
        let (promise, future) = self.inner.driver.promise::<BulkSlot>();
        self.start_transfer(
            op,
            remote,
            local,
            local_offset,
            size,
            BulkDone::Promise(promise),
        );
        BulkTransfer { future }
    }

    /// Like [`Engine::transfer`], but calls `on_done` with the local bulk (or the error) when
    /// the transfer completes, on the thread that progresses the engine, instead of completing
    /// a future. An inline handler ([`Engine::register_inline`]) can so start transfers and
    /// answer from the last one's completion without waiting, as Mercury's own servers do:
    /// `on_done` must not block, nor wait on a future of this engine. An invalid transfer
    /// calls `on_done` at once, on the calling thread. A panic in `on_done` on the progress
    /// thread is reported on standard error.
    pub fn transfer_then(
        &self,
        op: BulkOp,
        remote: RemoteRegion<'_>,
        local: LocalBulk,
        local_offset: usize,
        size: usize,
        on_done: impl FnOnce(Result<LocalBulk>) + Send + 'static,
    ) {
        self.start_transfer(
            op,
            remote,
            local,
            local_offset,
            size,
            BulkDone::Callback(Box::new(on_done)),
        );
    }

    fn start_transfer(
        &self,
        op: BulkOp,
        remote: RemoteRegion<'_>,
        local: LocalBulk,
        local_offset: usize,
        size: usize,
        done: BulkDone,
    ) {
        let RemoteRegion {
            origin,
            bulk: remote,
            offset: remote_offset,
        } = remote;
        if op == BulkOp::Pull && local.access == BulkAccess::ReadOnly {
            done.finish(Err(Error::InvalidArgument(
                "cannot pull into a read-only bulk".into(),
            )));
            return;
        }
        if local_offset + size > local.size() || remote_offset + size > remote.size() {
            done.finish(Err(Error::InvalidArgument(format!(
                "bulk transfer of {size} bytes at local offset {local_offset} / remote offset \
                 {remote_offset} exceeds the local ({}) or remote ({}) size",
                local.size(),
                remote.size()
            ))));
            return;
        }
        let (local_raw, remote_raw) = (local.handle.raw, remote.handle.raw);
        let state = Box::into_raw(Box::new(BulkState {
            done,
            inflight: self.inner.inflight.clone(),
            local: Some(local),
            // Keeps the remote handle alive for the transfer (Mercury counts references).
            remote: remote.handle.share(),
            _origin: origin.clone(),
            op_id: 0,
        }));
        let mut op_id = hg::HG_OP_ID_NULL;
        // The op id must be in the in-flight set before the callback can remove it, so hold
        // the set's lock across the call.
        let mut ops = self.inner.inflight.bulk_ops();
        // SAFETY: both handles are valid and kept alive by `state` until `bulk_done`.
        let ret = unsafe {
            hg::HG_Bulk_transfer(
                self.inner.context,
                Some(bulk_done),
                state as *mut c_void,
                match op {
                    BulkOp::Pull => hg::HG_BULK_PULL,
                    BulkOp::Push => hg::HG_BULK_PUSH,
                },
                origin.raw,
                remote_raw,
                remote_offset as hg::hg_size_t,
                local_raw,
                local_offset as hg::hg_size_t,
                size as hg::hg_size_t,
                &mut op_id,
            )
        };
        if ret != hg::HG_SUCCESS {
            drop(ops);
            // SAFETY: the callback will not run: the state is still ours.
            let state = unsafe { Box::from_raw(state) };
            let BulkState {
                done,
                local,
                remote,
                ..
            } = *state;
            // Releases the reference on the remote handle taken above.
            drop(remote);
            drop(local);
            done.finish(Err(hg_error("HG_Bulk_transfer", ret)));
            return;
        }
        ops.insert(op_id as usize);
        // SAFETY: `state` is alive until `bulk_done`, which needs the ops lock we hold to
        // remove its id; recording the id here is therefore race-free.
        unsafe {
            (*state).op_id = op_id as usize;
        }
        drop(ops);
    }
}
