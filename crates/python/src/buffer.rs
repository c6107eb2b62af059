//! Python buffers in and out of the library without copies.
//!
//! * In: [`shared_view`] turns any object with the buffer protocol (bytes, bytearray,
//!   memoryview, numpy arrays...) into a [`DataView`] that points at the object's memory and
//!   holds the buffer until the library is done with it; [`writable_allocation`] does the same
//!   for the writable buffers a data allocator returns.
//! * Out: [`memoryview_of`] exposes a segment of an event's data as a read-only `memoryview`
//!   whose base object keeps the segment alive.
//!
//! The wheel is built for the stable ABI of CPython 3.9, whose headers leave the buffer protocol
//! out of the limited API until 3.11 (PyO3 follows them). The functions and the `Py_buffer`
//! layout have not changed since Python 3.0 and every CPython exports them, and the buffer type
//! slots are accepted by `PyType_FromSpec` since 3.9, so they are declared here.
//!
//! Buffers handed to the library are released under the GIL. The library drops them on its own
//! threads (after a batch is stored), so a drop there queues the release, and the next call into
//! this module with the GIL held performs it ([`release_pending`]).

use bytes::Bytes;
use diaspora_stream::{Allocation, DataView};
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// `Py_buffer` (Include/pybuffer.h), unchanged since Python 3.0.
#[repr(C)]
struct RawBuffer {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

const PYBUF_WRITABLE: c_int = 0x0001;
const PYBUF_ND: c_int = 0x0008;
const PYBUF_STRIDES: c_int = 0x0010 | PYBUF_ND;
const PYBUF_ANY_CONTIGUOUS: c_int = 0x0080 | PYBUF_STRIDES;
/// `Py_bf_getbuffer` in the slot numbering of Python < 3.15 (`PyType_FromSpec`).
const PY_BF_GETBUFFER: c_int = 1;

extern "C" {
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut RawBuffer, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut RawBuffer);
    fn PyBuffer_FillInfo(
        view: *mut RawBuffer,
        obj: *mut ffi::PyObject,
        buf: *mut c_void,
        len: ffi::Py_ssize_t,
        readonly: c_int,
        flags: c_int,
    ) -> c_int;
}

/// A buffer obtained from a Python object, released after it is dropped, at the next
/// [`release_pending`] (the library drops it on its own threads, which do not hold the GIL).
struct HeldBuffer(RawBuffer);

const EMPTY: RawBuffer = RawBuffer {
    buf: std::ptr::null_mut(),
    obj: std::ptr::null_mut(),
    len: 0,
    itemsize: 0,
    readonly: 0,
    ndim: 0,
    format: std::ptr::null_mut(),
    shape: std::ptr::null_mut(),
    strides: std::ptr::null_mut(),
    suboffsets: std::ptr::null_mut(),
    internal: std::ptr::null_mut(),
};

// The memory belongs to the exporting object, which the held buffer keeps alive; the library
// only reads it (or, for an allocator's buffers, writes it before the event is handed out).
unsafe impl Send for HeldBuffer {}
unsafe impl Sync for HeldBuffer {}

impl HeldBuffer {
    fn get(obj: &Bound<'_, PyAny>, writable: bool) -> PyResult<HeldBuffer> {
        if PENDING_COUNT.load(Ordering::Relaxed) >= RELEASE_BATCH {
            release_pending(obj.py());
        }
        let mut raw = EMPTY;
        let flags = PYBUF_ANY_CONTIGUOUS | if writable { PYBUF_WRITABLE } else { 0 };
        // SAFETY: `raw` is a valid Py_buffer to fill; the GIL is held. (A Py_buffer may be moved
        // once filled: CPython itself copies them by value.)
        let rc = unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut raw, flags) };
        if rc != 0 {
            let cause = PyErr::take(obj.py())
                .map(|e| e.to_string())
                .unwrap_or_default();
            let type_name = obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            let need = if writable {
                "a writable, contiguous buffer"
            } else {
                "a contiguous buffer"
            };
            return Err(crate::error::exception(format!(
                "event data must be {need} (bytes, bytearray, memoryview, numpy array...); \
                 a {type_name} object gave: {cause}"
            )));
        }
        Ok(HeldBuffer(raw))
    }

    fn as_slice(&self) -> &[u8] {
        if self.0.len == 0 {
            return &[];
        }
        // SAFETY: the exporter keeps `len` bytes at `buf` valid until the buffer is released.
        unsafe { std::slice::from_raw_parts(self.0.buf as *const u8, self.0.len as usize) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.0.len == 0 {
            return &mut [];
        }
        // SAFETY: as above; the buffer was requested writable and the library is its only writer
        // until the event is handed to Python.
        unsafe { std::slice::from_raw_parts_mut(self.0.buf as *mut u8, self.0.len as usize) }
    }
}

impl AsRef<[u8]> for HeldBuffer {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsMut<[u8]> for HeldBuffer {
    fn as_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl Drop for HeldBuffer {
    fn drop(&mut self) {
        let raw = std::mem::replace(&mut self.0, EMPTY);
        let mut q = pending().lock().unwrap_or_else(|e| e.into_inner());
        q.push(PendingRelease(raw));
        // Under the lock, so that the count never runs behind a drain.
        PENDING_COUNT.fetch_add(1, Ordering::Relaxed);
    }
}

struct PendingRelease(RawBuffer);
unsafe impl Send for PendingRelease {}

/// Buffers waiting in [`pending`] (read without the lock).
static PENDING_COUNT: AtomicUsize = AtomicUsize::new(0);

/// A push releases the finished buffers once this many wait (flushes and waits release all).
const RELEASE_BATCH: usize = 256;

fn pending() -> &'static Mutex<Vec<PendingRelease>> {
    static PENDING: OnceLock<Mutex<Vec<PendingRelease>>> = OnceLock::new();
    PENDING.get_or_init(|| Mutex::new(Vec::new()))
}

/// Releases the buffers the library has finished with (the GIL is held).
pub fn release_pending(_py: Python<'_>) {
    if PENDING_COUNT.load(Ordering::Relaxed) == 0 {
        return;
    }
    let drained: Vec<PendingRelease> = {
        let mut q = pending().lock().unwrap_or_else(|e| e.into_inner());
        if q.is_empty() {
            return;
        }
        PENDING_COUNT.fetch_sub(q.len(), Ordering::Relaxed);
        std::mem::take(&mut *q)
    };
    for mut p in drained {
        // SAFETY: obtained by PyObject_GetBuffer, released once; the GIL is held.
        unsafe { PyBuffer_Release(&mut p.0) };
    }
}

/// Number of buffers waiting for [`release_pending`] (for tests of the zero-copy path).
pub fn pending_count() -> usize {
    PENDING_COUNT.load(Ordering::Relaxed)
}

/// The data of a push: `None`, one object with the buffer protocol, or a list or tuple of them
/// (read as their concatenation). The view shares the objects' memory.
pub fn shared_view(data: Option<&Bound<'_, PyAny>>) -> PyResult<DataView> {
    let Some(data) = data else {
        return Ok(DataView::new());
    };
    if data.is_none() {
        return Ok(DataView::new());
    }
    if data.is_instance_of::<pyo3::types::PyList>() || data.is_instance_of::<pyo3::types::PyTuple>()
    {
        let mut segments = Vec::new();
        for item in data.try_iter()? {
            let held = HeldBuffer::get(&item?, false)?;
            segments.push(Bytes::from_owner(held));
        }
        return Ok(DataView::from_segments(segments));
    }
    Ok(DataView::from_bytes(Bytes::from_owner(HeldBuffer::get(
        data, false,
    )?)))
}

/// The writable buffers a Python data allocator returned, as an [`Allocation`] the library
/// fills in place, with the address of the first non-empty one (where the event's data will
/// start).
pub fn writable_allocation(buffers: &Bound<'_, PyAny>) -> PyResult<(Allocation, Option<usize>)> {
    let mut alloc = Allocation::none();
    let mut first = None;
    let mut add = |item: &Bound<'_, PyAny>| -> PyResult<()> {
        let held = HeldBuffer::get(item, true)?;
        if first.is_none() && held.0.len > 0 {
            first = Some(held.0.buf as usize);
        }
        alloc.push(held);
        Ok(())
    };
    if buffers.is_instance_of::<pyo3::types::PyList>()
        || buffers.is_instance_of::<pyo3::types::PyTuple>()
    {
        for item in buffers.try_iter()? {
            add(&item?)?;
        }
    } else {
        add(buffers)?;
    }
    Ok((alloc, first))
}

/// Layout of a `_Segment` object: the object header, then the segment it exports.
#[repr(C)]
struct SegmentObject {
    head: ffi::PyObject,
    bytes: *mut Bytes,
}

unsafe extern "C" fn segment_getbuffer(
    obj: *mut ffi::PyObject,
    view: *mut RawBuffer,
    flags: c_int,
) -> c_int {
    let seg = obj as *mut SegmentObject;
    // SAFETY: `obj` is a live _Segment; its bytes stay alive as long as the object, which the
    // filled view references.
    let bytes = unsafe { &*(*seg).bytes };
    if flags & PYBUF_WRITABLE != 0 {
        // SAFETY: the GIL is held in a buffer slot.
        unsafe {
            ffi::PyErr_SetString(
                ffi::PyExc_BufferError,
                c"event data is read-only: copy it (bytearray(view)) to modify it".as_ptr(),
            )
        };
        return -1;
    }
    unsafe {
        PyBuffer_FillInfo(
            view,
            obj,
            bytes.as_ptr() as *mut c_void,
            bytes.len() as ffi::Py_ssize_t,
            1,
            flags,
        )
    }
}

unsafe extern "C" fn segment_dealloc(obj: *mut ffi::PyObject) {
    let seg = obj as *mut SegmentObject;
    // SAFETY: set once at creation from Box::into_raw, dropped once here.
    unsafe {
        let bytes = (*seg).bytes;
        if !bytes.is_null() {
            drop(Box::from_raw(bytes));
        }
        let tp = ffi::Py_TYPE(obj);
        let free = ffi::PyType_GetSlot(tp, ffi::Py_tp_free);
        let free: ffi::freefunc = std::mem::transmute(free);
        free(obj as *mut c_void);
        // Instances of heap types hold a reference to their type.
        ffi::Py_DECREF(tp as *mut ffi::PyObject);
    }
}

/// The `_Segment` heap type, created on first use.
fn segment_type(py: Python<'_>) -> PyResult<*mut ffi::PyTypeObject> {
    static TYPE: OnceLock<usize> = OnceLock::new();
    if let Some(&t) = TYPE.get() {
        return Ok(t as *mut ffi::PyTypeObject);
    }
    let mut slots = [
        ffi::PyType_Slot {
            slot: PY_BF_GETBUFFER,
            pfunc: segment_getbuffer as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_dealloc,
            pfunc: segment_dealloc as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_doc,
            pfunc: c"A read-only segment of an event's data (what its memoryview points at)."
                .as_ptr() as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: 0,
            pfunc: std::ptr::null_mut(),
        },
    ];
    let mut spec = ffi::PyType_Spec {
        name: c"diaspora_stream._native._Segment".as_ptr(),
        basicsize: std::mem::size_of::<SegmentObject>() as c_int,
        itemsize: 0,
        flags: ffi::Py_TPFLAGS_DEFAULT as _,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: the spec and slots are valid for the call; the GIL is held.
    let tp = unsafe { ffi::PyType_FromSpec(&mut spec) };
    if tp.is_null() {
        return Err(PyErr::take(py)
            .unwrap_or_else(|| PyBufferError::new_err("could not create the segment type")));
    }
    // The type lives as long as the process (its reference is never dropped).
    Ok(*TYPE.get_or_init(|| tp as usize) as *mut ffi::PyTypeObject)
}

/// A read-only `memoryview` of `bytes` that keeps them alive.
pub fn memoryview_of<'py>(py: Python<'py>, bytes: Bytes) -> PyResult<Bound<'py, PyAny>> {
    let tp = segment_type(py)?;
    // SAFETY: allocating an instance of our heap type with its own allocator; the GIL is held.
    unsafe {
        let alloc = ffi::PyType_GetSlot(tp, ffi::Py_tp_alloc);
        let alloc: ffi::allocfunc = std::mem::transmute(alloc);
        let obj = alloc(tp, 0);
        if obj.is_null() {
            return Err(PyErr::fetch(py));
        }
        (*(obj as *mut SegmentObject)).bytes = Box::into_raw(Box::new(bytes));
        let seg = Bound::from_owned_ptr(py, obj);
        let view = ffi::PyMemoryView_FromObject(seg.as_ptr());
        if view.is_null() {
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, view))
    }
}
