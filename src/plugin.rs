//! Drivers loaded by name from shared libraries: `Driver::new("NAME:LIBRARY", options)`.
//!
//! A driver crate built as a `cdylib` exports one entry point with [`crate::export_driver!`]:
//!
//! ```ignore
//! diaspora_stream::export_driver!("simple", |options: &serde_json::Value| {
//!     Ok(std::sync::Arc::new(SimpleDriver::new(options)?) as _)
//! });
//! ```
//!
//! and a program loads it with `Driver::new("simple:libsimple.so", &options)`, or on the command
//! line with `diaspora-ctl ... --driver simple:libsimple.so`. `LIBRARY` is a path (absolute, or
//! relative to the current directory when it holds a `/`) or a bare file name, looked for in the
//! folders of `DIASPORA_DRIVER_PATH`, then of `LD_LIBRARY_PATH`, then where the system's
//! dynamic loader looks. A library is loaded once per process and never unloaded; its driver is
//! then registered under `NAME` like a built-in one. When `NAME` is a driver compiled into the
//! program (`files`, `memory`, ...), that driver is used and `LIBRARY` is ignored, so the C++
//! reference's names such as `files:libdiaspora-files-driver.so` keep working.
//!
//! # What must match
//!
//! Rust has no stable ABI: the driver and the program exchange Rust values (trait objects,
//! `serde_json::Value`, [`crate::Error`], `bytes::Bytes`) whose layout is only guaranteed for
//! one compiler and one set of crate versions. The boundary is therefore in two steps:
//!
//! 1. The entry point is a C function returning a `#[repr(C)]` [`DriverEntry`] whose first field,
//!    [`INTERFACE_VERSION`], fixes the layout of the rest. The loader reads the interface version,
//!    then calls the entry's C function that returns the driver's [`build_id`], and compares it
//!    with its own: the diaspora-stream version, the `rustc` release and commit, the target, the
//!    panic strategy, and the size and alignment of every type that crosses the boundary (which
//!    also catches a `serde_json` built with another map type). Then it compares the driver's
//!    name with the name asked for. Any difference is an [`crate::Error::DriverLibrary`] naming
//!    both sides, before a single Rust value crosses.
//! 2. Only then does it call the entry's factory and use the driver as any other.
//!
//! The rule for driver authors: build the driver with the same `rustc` and the same
//! diaspora-stream release as the programs that load it, with the dependency versions of their
//! `Cargo.lock` (the driver template copies it), and do not unload it. Both sides allocate with
//! the system allocator (Rust's default); a program that installs another `#[global_allocator]`
//! must not load drivers by name. Components a driver rebuilds from their configuration (for
//! example a validator read back from disk) are looked up in the driver library's own registry,
//! so components registered at run time by the program are not seen there: keep the instances
//! given to `create_topic` when the driver lives in the program's memory.

use crate::backend::{BatchIds, DriverFactory, EventBatch, StoredEvent};
use crate::components::TopicComponents;
use crate::data_view::DataView;
use crate::descriptor::DataDescriptor;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The version of [`DriverEntry`]'s layout. A loader refuses any other.
pub const INTERFACE_VERSION: u32 = 1;

/// The symbol [`crate::export_driver!`] defines and the loader looks up.
pub const ENTRY_SYMBOL: &str = "diaspora_stream_driver_entry";

/// What a driver library's entry point returns. The first field is read before anything else
/// and fixes the layout of the others.
#[repr(C)]
pub struct DriverEntry {
    /// [`INTERFACE_VERSION`] of the library.
    pub interface_version: u32,
    /// The library's [`build_id`], as a NUL-terminated string that lives as long as the library.
    pub build_id: extern "C" fn() -> *const c_char,
    /// The driver's name, NUL-terminated, static.
    pub name: *const c_char,
    /// Returns a `Box<DriverFactory>` as a raw pointer. Called only after the build ids match.
    pub make_factory: extern "C" fn() -> *mut c_void,
}

// SAFETY: every field is a function pointer or a pointer to static, immutable data.
unsafe impl Sync for DriverEntry {}

/// What a program and a driver library must share for Rust values to cross between them (see
/// the module documentation): this crate's version, the compiler, the target, the panic
/// strategy, and the layout of the types in the driver API.
pub fn build_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        fn layout<T>() -> String {
            format!("{}/{}", std::mem::size_of::<T>(), std::mem::align_of::<T>())
        }
        let mut map = serde_json::Map::new();
        map.insert("b".into(), serde_json::Value::Null);
        map.insert("a".into(), serde_json::Value::Null);
        let map_order = if map.keys().next().map(String::as_str) == Some("b") {
            "insertion"
        } else {
            "sorted"
        };
        format!(
            "diaspora-stream {}; {}; {}; panic={}; json map {map_order}; layouts {}",
            env!("CARGO_PKG_VERSION"),
            env!("DIASPORA_BUILD_RUSTC"),
            env!("DIASPORA_BUILD_TARGET"),
            if cfg!(panic = "unwind") {
                "unwind"
            } else {
                "abort"
            },
            [
                layout::<serde_json::Value>(),
                layout::<Error>(),
                layout::<EventBatch>(),
                layout::<StoredEvent>(),
                layout::<BatchIds>(),
                layout::<TopicComponents>(),
                layout::<Metadata>(),
                layout::<DataView>(),
                layout::<DataDescriptor>(),
                layout::<bytes::Bytes>(),
                layout::<DriverFactory>(),
            ]
            .join(",")
        )
    })
}

/// [`build_id`] as a C string, for [`DriverEntry::build_id`].
pub extern "C" fn build_id_c() -> *const c_char {
    static ID: OnceLock<CString> = OnceLock::new();
    ID.get_or_init(|| CString::new(build_id()).unwrap_or_default())
        .as_ptr()
}

/// Exports a driver from a `cdylib` so that programs load it with
/// `Driver::new("NAME:LIBRARY", options)` (see [`crate::plugin`]). `$name` is the driver's name
/// (a string literal); `$factory` builds it from its JSON options, as a
/// [`crate::backend::DriverFactory`] does.
#[macro_export]
macro_rules! export_driver {
    ($name:literal, $factory:expr) => {
        /// The entry point through which programs load this driver by name.
        #[unsafe(no_mangle)]
        pub extern "C" fn diaspora_stream_driver_entry() -> *const $crate::plugin::DriverEntry {
            extern "C" fn make_factory() -> *mut ::std::ffi::c_void {
                let factory: $crate::backend::DriverFactory = ::std::sync::Arc::new($factory);
                ::std::boxed::Box::into_raw(::std::boxed::Box::new(factory)) as *mut _
            }
            static ENTRY: $crate::plugin::DriverEntry = $crate::plugin::DriverEntry {
                interface_version: $crate::plugin::INTERFACE_VERSION,
                build_id: $crate::plugin::build_id_c,
                name: ::std::concat!($name, "\0").as_ptr() as *const ::std::ffi::c_char,
                make_factory,
            };
            &ENTRY
        }
    };
}

/// The libraries loaded so far, by the path they were found at, with the driver each holds.
fn loaded() -> &'static Mutex<HashMap<PathBuf, (String, DriverFactory)>> {
    static L: OnceLock<Mutex<HashMap<PathBuf, (String, DriverFactory)>>> = OnceLock::new();
    L.get_or_init(Default::default)
}

fn library_error(library: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::DriverLibrary {
        library: library.into(),
        reason: reason.into(),
    }
}

/// The folders a bare library name is looked for in, in order.
fn search_path() -> Vec<PathBuf> {
    ["DIASPORA_DRIVER_PATH", "LD_LIBRARY_PATH"]
        .iter()
        .filter_map(std::env::var_os)
        .flat_map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
        .filter(|d| !d.as_os_str().is_empty())
        .collect()
}

/// Where `library` is: the path itself when it holds a `/`, else the first folder of the search
/// path that has it; `None` for a bare name found nowhere (the system loader may still know it).
fn locate(library: &str) -> Result<Option<PathBuf>> {
    if library.contains('/') {
        let p = Path::new(library);
        return match p.metadata() {
            Ok(m) if m.is_file() => Ok(Some(p.to_path_buf())),
            Ok(_) => Err(library_error(library, "is not a file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(library_error(library, "no such file"))
            }
            Err(e) => Err(library_error(library, format!("cannot read it: {e}"))),
        };
    }
    Ok(search_path()
        .into_iter()
        .map(|d| d.join(library))
        .find(|p| p.is_file()))
}

/// Loads the driver `name` from `library` (once per process; never unloaded) and returns its
/// factory, which [`crate::Driver::new`] registers under `name`.
pub fn load_driver(name: &str, library: &str) -> Result<DriverFactory> {
    if library.is_empty() {
        return Err(library_error(
            "",
            format!("no library named after \"{name}:\""),
        ));
    }
    let found = locate(library)?;
    let key = match &found {
        Some(p) => p.canonicalize().unwrap_or_else(|_| p.clone()),
        None => PathBuf::from(library),
    };
    let mut loaded = loaded().lock().unwrap_or_else(|e| e.into_inner());
    if let Some((held, factory)) = loaded.get(&key) {
        return if held == name {
            Ok(factory.clone())
        } else {
            Err(library_error(
                key.display().to_string(),
                format!("holds driver {held:?}, not {name:?}"),
            ))
        };
    }
    let shown = key.display().to_string();
    let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL;
    // SAFETY: loading runs the library's initializers; a driver library is code the user asked
    // for by name, as with the C++ API. Nothing of it is called before the checks below.
    let lib = unsafe { libloading::os::unix::Library::open(Some(&key), flags) }.map_err(|e| {
        if found.is_none() {
            let dirs: Vec<String> = search_path()
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            library_error(
                library,
                format!(
                    "not found in DIASPORA_DRIVER_PATH or LD_LIBRARY_PATH ({}) nor by the \
                     system loader ({e})",
                    if dirs.is_empty() {
                        "both empty".to_string()
                    } else {
                        dirs.join(":")
                    }
                ),
            )
        } else {
            library_error(&shown, format!("cannot be loaded as a shared library: {e}"))
        }
    })?;
    // SAFETY: the symbol is declared with the type `export_driver!` gives it; a library that
    // defines it otherwise breaks the contract of this module.
    let entry: extern "C" fn() -> *const DriverEntry = unsafe {
        *lib.get::<extern "C" fn() -> *const DriverEntry>(ENTRY_SYMBOL.as_bytes())
            .map_err(|_| {
                library_error(
                    &shown,
                    format!(
                        "is not a diaspora-stream driver: it has no `{ENTRY_SYMBOL}` entry point \
                         (a driver library exports one with diaspora_stream::export_driver!)"
                    ),
                )
            })?
    };
    let entry = entry();
    if entry.is_null() {
        return Err(library_error(&shown, "its entry point returned nothing"));
    }
    // SAFETY: non-null, static, and its first field is the same in every interface version.
    let version = unsafe { (*entry).interface_version };
    if version != INTERFACE_VERSION {
        return Err(library_error(
            &shown,
            format!(
                "speaks driver interface version {version}, this program speaks version \
                 {INTERFACE_VERSION}: rebuild the driver against this program's diaspora-stream"
            ),
        ));
    }
    // SAFETY: the interface version matched, so the entry has this layout.
    let entry = unsafe { &*entry };
    let theirs = (entry.build_id)();
    if theirs.is_null() || entry.name.is_null() {
        return Err(library_error(&shown, "its entry point is incomplete"));
    }
    // SAFETY: NUL-terminated strings that live as long as the library (never unloaded).
    let theirs = unsafe { CStr::from_ptr(theirs) }.to_string_lossy();
    if theirs != build_id() {
        return Err(library_error(
            &shown,
            format!(
                "was built for [{theirs}] but this program is [{}]: build the driver with the \
                 same rustc and diaspora-stream release, and the same Cargo.lock",
                build_id()
            ),
        ));
    }
    // SAFETY: as above.
    let theirs = unsafe { CStr::from_ptr(entry.name) }.to_string_lossy();
    if theirs != name {
        return Err(library_error(
            &shown,
            format!("holds driver {theirs:?}, not {name:?}"),
        ));
    }
    let raw = (entry.make_factory)();
    if raw.is_null() {
        return Err(library_error(&shown, "its driver factory is missing"));
    }
    // SAFETY: the build ids matched, so this is the `Box<DriverFactory>` that `export_driver!`
    // made with the same compiler and crate versions.
    let factory = *unsafe { Box::from_raw(raw as *mut DriverFactory) };
    loaded.insert(key, (name.to_string(), factory.clone()));
    // The driver's code and statics must outlive every value it made: never unload.
    std::mem::forget(lib);
    Ok(factory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_id_names_what_must_match() {
        let id = build_id();
        assert!(id.starts_with("diaspora-stream "), "{id}");
        assert!(id.contains("rustc "), "{id}");
        assert!(id.contains("layouts "), "{id}");
        let c = unsafe { CStr::from_ptr(build_id_c()) };
        assert_eq!(c.to_str().unwrap(), id);
    }

    #[test]
    fn missing_files_are_named() {
        let e = load_driver("x", "./no/such/libx.so")
            .err()
            .expect("an error")
            .to_string();
        assert!(
            e.contains("./no/such/libx.so") && e.contains("no such file"),
            "{e}"
        );
        let e = load_driver("x", "libdiaspora-no-such-driver.so")
            .err()
            .expect("an error")
            .to_string();
        assert!(e.contains("not found"), "{e}");
        let e = load_driver("x", "").err().expect("an error").to_string();
        assert!(e.contains("no library"), "{e}");
    }
}
