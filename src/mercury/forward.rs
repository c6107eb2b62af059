//! Sending requests: [`Engine::forward`] and its variants, which complete a future or call a
//! callback with the response, and [`ForwardToken`] to cancel a request under way.

use super::address::Address;
use super::engine::Engine;
use super::error::{guard, hg_check, hg_error};
use super::progress::Inflight;
use super::rpc::Payload;
use crate::error::{panic_message, Error, Result};
use crate::future::{Future, Promise};
use bytes::Bytes;
use mercury_sys as hg;
use std::ffi::c_void;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

/// Callback of [`Engine::forward_then`].
pub type ForwardCallback = Box<dyn FnOnce(Result<Bytes>) + Send + 'static>;

/// Identifies a request sent by [`Engine::forward_then`], to cancel it.
#[derive(Debug)]
pub struct ForwardToken {
    handle: usize,
    /// The request's number: the handle is reused by later requests once this one completes.
    request: u64,
    inflight: Weak<Inflight>,
}

impl ForwardToken {
    /// Asks Mercury to cancel the request if it has not completed: its callback then runs
    /// (on the thread that progresses) with a cancellation error. The peer may already have
    /// received and processed the request. Does nothing once the request has completed.
    pub fn cancel(&self) {
        let Some(inflight) = self.inflight.upgrade() else {
            return;
        };
        // The completion callback removes the handle under this lock before releasing it, so
        // while the lock is held and the handle is listed with this request, it carries it.
        let handles = inflight.handles();
        if handles.get(&self.handle) == Some(&self.request) {
            // SAFETY: see above; HG_Cancel may be called from any thread.
            unsafe {
                hg::HG_Cancel(self.handle as hg::hg_handle_t);
            }
        }
    }
}

/// Where a forward's result goes.
enum ForwardCompletion {
    Promise(Arc<Promise<Bytes>>),
    Callback(ForwardCallback),
}

impl ForwardCompletion {
    fn into_callback(self) -> ForwardCallback {
        match self {
            ForwardCompletion::Callback(callback) => callback,
            ForwardCompletion::Promise(promise) => Box::new(move |r| promise.set(r)),
        }
    }
}

/// What a forward's completion needs (leaked to Mercury as the callback argument).
struct ForwardState {
    completion: ForwardCompletion,
    inflight: Arc<Inflight>,
}

/// Completion of a forward.
unsafe extern "C" fn forward_done(info: *const hg::hg_cb_info) -> hg::hg_return_t {
    guard("forward completion", || {
        // SAFETY: `arg` is the Box leaked by `Engine::forward`, reclaimed once here.
        unsafe {
            let info = &*info;
            let state = Box::from_raw(info.arg as *mut ForwardState);
            let handle = info.info.forward.handle;
            let result = if info.ret == hg::HG_SUCCESS {
                let mut payload =
                    Payload::receiving(hg::HG_Get_output_payload_size(handle) as usize);
                let ret = hg::HG_Get_output(handle, &mut payload as *mut Payload as *mut c_void);
                if ret == hg::HG_SUCCESS {
                    hg::HG_Free_output(handle, &mut payload as *mut Payload as *mut c_void);
                    Ok(Bytes::from(payload.received))
                } else {
                    Err(hg_error("HG_Get_output", ret))
                }
            } else {
                Err(hg_error("HG_Forward", info.ret))
            };
            // Once out of the set, `ForwardToken::cancel` no longer touches the handle.
            state.inflight.handles().remove(&(handle as usize));
            state.inflight.put_spare(handle);
            match state.completion {
                ForwardCompletion::Promise(promise) => promise.set(result),
                ForwardCompletion::Callback(callback) => {
                    if let Err(payload) =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(result)))
                    {
                        eprintln!(
                            "diaspora-stream: a forward callback panicked: {}",
                            panic_message(&*payload)
                        );
                    }
                }
            }
            hg::HG_SUCCESS
        }
    })
}

impl Engine {
    /// Sends `payload` as a request of RPC `id` to `target`; the future gives the response
    /// payload. Waiting on it with a timeout does not cancel the request.
    pub fn forward(&self, target: &Address, id: u64, payload: &[u8]) -> Future<Bytes> {
        let (promise, future) = self.inner.driver.promise::<Bytes>();
        match self.try_forward(target, id, payload, ForwardCompletion::Promise(promise)) {
            Ok(_) => future,
            Err((e, _)) => Future::failed(e),
        }
    }

    /// Like [`Engine::forward`], with a token that cancels the request (for example when
    /// its caller stops waiting, so that an unanswered request does not stay in flight).
    pub fn forward_cancellable(
        &self,
        target: &Address,
        id: u64,
        payload: &[u8],
    ) -> (Future<Bytes>, ForwardToken) {
        let (promise, future) = self.inner.driver.promise::<Bytes>();
        let token = self.forward_then(target, id, payload, Box::new(move |r| promise.set(r)));
        (future, token)
    }

    /// Like [`Engine::forward`], but calls `callback` with the response (or the error) instead
    /// of completing a future. The callback runs on the thread that progresses the engine (its
    /// progress thread, or an application thread waiting on one of its futures): it must be
    /// quick and must not wait for other Mercury operations. It is called exactly once, also
    /// when the request cannot be sent (then before this returns).
    pub fn forward_then(
        &self,
        target: &Address,
        id: u64,
        payload: &[u8],
        callback: ForwardCallback,
    ) -> ForwardToken {
        self.try_forward_then(target, id, payload, callback)
            .unwrap_or_else(|(e, callback)| {
                callback(Err(e));
                ForwardToken {
                    handle: 0,
                    request: 0,
                    inflight: Weak::new(),
                }
            })
    }

    /// Like [`Engine::forward_then`], but a request that cannot be sent is an error returned
    /// with the callback, which then never runs.
    pub fn try_forward_then(
        &self,
        target: &Address,
        id: u64,
        payload: &[u8],
        callback: ForwardCallback,
    ) -> std::result::Result<ForwardToken, (Error, ForwardCallback)> {
        match self.try_forward(target, id, payload, ForwardCompletion::Callback(callback)) {
            Ok((handle, request)) => Ok(ForwardToken {
                handle,
                request,
                inflight: Arc::downgrade(&self.inner.inflight),
            }),
            Err((e, completion)) => Err((e, completion.into_callback())),
        }
    }

    fn try_forward(
        &self,
        target: &Address,
        id: u64,
        payload: &[u8],
        completion: ForwardCompletion,
    ) -> std::result::Result<(usize, u64), (Error, ForwardCompletion)> {
        if let Err(e) = self.register_client(id) {
            return Err((e, completion));
        }
        let injected = &self.inner.injected_forward_failures;
        if injected
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            let e = hg_error(
                format!("HG_Forward(rpc {id:#018x}, failure injected by a test)"),
                hg::HG_PROTOCOL_ERROR,
            );
            return Err((e, completion));
        }
        let handle = match self.forward_handle(target, id) {
            Ok(h) => h,
            Err(e) => return Err((e, completion)),
        };
        let state = Box::new(ForwardState {
            completion,
            inflight: self.inner.inflight.clone(),
        });
        let request = self.inner.inflight.next_request();
        self.inner
            .inflight
            .handles()
            .insert(handle as usize, request);
        let mut input = Payload::sending(payload);
        let arg = Box::into_raw(state);
        // SAFETY: the payload is encoded before HG_Forward returns; `arg` is reclaimed by
        // `forward_done`, or below if the forward could not start.
        let ret = unsafe {
            hg::HG_Forward(
                handle,
                Some(forward_done),
                arg as *mut c_void,
                &mut input as *mut Payload as *mut c_void,
            )
        };
        if ret != hg::HG_SUCCESS {
            // SAFETY: the callback will not run, so the state and the handle are still ours.
            let state = unsafe {
                let state = Box::from_raw(arg);
                self.inner.inflight.handles().remove(&(handle as usize));
                hg::HG_Destroy(handle);
                state
            };
            let e = hg_error(format!("HG_Forward(rpc {id:#018x})"), ret);
            return Err((e, state.completion));
        }
        Ok((handle as usize, request))
    }

    /// Makes the next `n` forwards fail at once, as if `HG_Forward` had refused them, so that
    /// tests can reach the paths of requests that cannot be sent.
    #[doc(hidden)]
    pub fn inject_forward_failures(&self, n: usize) {
        self.inner
            .injected_forward_failures
            .store(n, Ordering::SeqCst);
    }

    /// A handle for a request of RPC `id` to `target`: a completed one reset for it (a steady
    /// stream of requests allocates no handles), or a new one. It goes back to the spares when
    /// its forward completes, or is destroyed by the caller if the forward cannot start.
    fn forward_handle(&self, target: &Address, id: u64) -> Result<hg::hg_handle_t> {
        if let Some(handle) = self.inner.inflight.take_spare() {
            // SAFETY: a spare handle completed its forward and nothing else uses it.
            if unsafe { hg::HG_Reset(handle, target.raw, id) } == hg::HG_SUCCESS {
                return Ok(handle);
            }
            // SAFETY: as above; it could not be reset, so it goes.
            unsafe {
                hg::HG_Destroy(handle);
            }
        }
        let mut handle = hg::HG_HANDLE_NULL;
        // SAFETY: context and address are valid; the handle is released by `forward_done` or
        // by the caller on failure.
        hg_check("HG_Create", unsafe {
            hg::HG_Create(self.inner.context, target.raw, id, &mut handle)
        })?;
        Ok(handle)
    }
}
