//! A peer's [`Address`], resolved by [`Engine::lookup`](super::Engine::lookup) or taken from
//! a [`Request`](super::Request).

use super::engine::{Engine, Inner};
use super::error::hg_check;
use crate::error::{Error, Result};
use mercury_sys as hg;
use std::ffi::CString;
use std::sync::Arc;

/// A peer's address, resolved by [`Engine::lookup`](super::Engine::lookup) or taken from a
/// [`Request`](super::Request).
pub struct Address {
    pub(super) raw: hg::hg_addr_t,
    pub(super) engine: Arc<Inner>,
}

// SAFETY: Mercury addresses may be used from any thread.
unsafe impl Send for Address {}
// SAFETY: as above.
unsafe impl Sync for Address {}

impl Address {
    /// The address as a string peers can look up.
    pub(super) fn to_text(&self) -> Result<String> {
        let mut size: hg::hg_size_t = 0;
        // SAFETY: the first call asks for the size, the second fills a buffer of that size.
        unsafe {
            hg_check(
                "HG_Addr_to_string",
                hg::HG_Addr_to_string(self.engine.class, std::ptr::null_mut(), &mut size, self.raw),
            )?;
            let mut buf = vec![0u8; size as usize];
            hg_check(
                "HG_Addr_to_string",
                hg::HG_Addr_to_string(
                    self.engine.class,
                    buf.as_mut_ptr() as *mut std::ffi::c_char,
                    &mut size,
                    self.raw,
                ),
            )?;
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            buf.truncate(end);
            String::from_utf8(buf).map_err(|_| Error::Transport {
                operation: "HG_Addr_to_string".into(),
                code: hg::HG_OTHER_ERROR as i32,
                message: "address is not UTF-8".into(),
            })
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_text() {
            Ok(s) => f.write_str(&s),
            Err(_) => f.write_str("<unprintable address>"),
        }
    }
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Address({self})")
    }
}

impl Clone for Address {
    fn clone(&self) -> Self {
        let mut raw = hg::HG_ADDR_NULL;
        // SAFETY: the address is valid; duplication only fails when memory runs out.
        let ret = unsafe { hg::HG_Addr_dup(self.engine.class, self.raw, &mut raw) };
        assert_eq!(ret, hg::HG_SUCCESS, "HG_Addr_dup failed");
        Address {
            raw,
            engine: self.engine.clone(),
        }
    }
}

impl Drop for Address {
    fn drop(&mut self) {
        // SAFETY: the address is ours and freed once.
        unsafe {
            hg::HG_Addr_free(self.engine.class, self.raw);
        }
    }
}

impl Engine {
    /// This engine's own address, as a string peers can look up.
    pub fn self_address(&self) -> Result<String> {
        let mut addr = hg::HG_ADDR_NULL;
        // SAFETY: the class is valid; the address is freed by the Address guard.
        hg_check("HG_Addr_self", unsafe {
            hg::HG_Addr_self(self.inner.class, &mut addr)
        })?;
        Address {
            raw: addr,
            engine: self.inner.clone(),
        }
        .to_text()
    }

    /// Resolves a peer's address string (blocks until Mercury resolves it).
    pub fn lookup(&self, address: &str) -> Result<Address> {
        let c_addr = CString::new(address)
            .map_err(|_| Error::InvalidArgument(format!("address {address:?} contains NUL")))?;
        let mut addr = hg::HG_ADDR_NULL;
        // SAFETY: the class is valid and `c_addr` outlives the call.
        hg_check(&format!("HG_Addr_lookup({address:?})"), unsafe {
            hg::HG_Addr_lookup2(self.inner.class, c_addr.as_ptr(), &mut addr)
        })?;
        Ok(Address {
            raw: addr,
            engine: self.inner.clone(),
        })
    }
}
