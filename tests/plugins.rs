//! Drivers loaded by name (`Driver::new("NAME:LIBRARY", ...)`): every way a library can be
//! wrong is a clear error, raised before any Rust value crosses the boundary.
//!
//! The libraries are small C files compiled here with the system C compiler (`cc`), each
//! exporting the entry point with one thing wrong. Loading a real driver (the template's,
//! instantiated and built as a `cdylib`) is checked by CI (`scripts/check-template.sh`), since
//! building it here would double this test's time.

use diaspora_stream::{Driver, Error};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One test at a time: one of them sets `DIASPORA_DRIVER_PATH`, which the dynamic loader of
/// the others must not read while it changes.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Compiles `source` into `dir/libNAME.so`.
fn shared_library(dir: &Path, name: &str, source: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let lib = dir.join(format!("lib{name}.so"));
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&c)
        .output()
        .expect("the tests of drivers loaded by name need a C compiler (cc)");
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

/// A C library whose entry point reports `version`, `build_id` and `name`; its factory aborts
/// the process, so a test that reached it would fail loudly.
fn entry_library(dir: &Path, lib: &str, version: u32, build_id: &str, name: &str) -> PathBuf {
    let quoted = |s: &str| format!("{s:?}"); // printable ASCII: Rust's escapes are C's
    let source = format!(
        r#"#include <stdint.h>
#include <stdlib.h>
struct entry {{ uint32_t version; const char *(*build_id)(void); const char *name; void *(*make)(void); }};
static const char *build_id(void) {{ return {}; }}
static void *make(void) {{ abort(); }}
static const struct entry ENTRY = {{ {version}u, build_id, {}, make }};
const struct entry *diaspora_stream_driver_entry(void) {{ return &ENTRY; }}
"#,
        quoted(build_id),
        quoted(name)
    );
    shared_library(dir, lib, &source)
}

fn load_error(spec: &str) -> (String, String) {
    match Driver::new(spec, &json!({})) {
        Err(Error::DriverLibrary { library, reason }) => (library, reason),
        Err(e) => panic!("{spec}: expected a DriverLibrary error, got {e}"),
        Ok(_) => panic!("{spec}: loaded"),
    }
}

#[test]
fn a_missing_file_is_named() {
    let _serial = serial();
    let (library, reason) = load_error("absent:./no/such/dir/libabsent.so");
    assert_eq!(library, "./no/such/dir/libabsent.so");
    assert!(reason.contains("no such file"), "{reason}");
    let (library, reason) = load_error("absent:libdiaspora-absent-driver.so");
    assert_eq!(library, "libdiaspora-absent-driver.so");
    assert!(
        reason.contains("not found") && reason.contains("DIASPORA_DRIVER_PATH"),
        "{reason}"
    );
}

#[test]
fn a_file_that_is_not_a_shared_library_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libtext.so");
    std::fs::write(&path, "this is not an ELF file\n").unwrap();
    let (library, reason) = load_error(&format!("text:{}", path.display()));
    assert!(library.ends_with("libtext.so"), "{library}");
    assert!(
        reason.contains("cannot be loaded as a shared library"),
        "{reason}"
    );
}

#[test]
fn a_library_without_the_entry_point_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let lib = shared_library(
        dir.path(),
        "plain",
        "int plain_function(void) { return 1; }\n",
    );
    let (_, reason) = load_error(&format!("plain:{}", lib.display()));
    assert!(
        reason.contains("no `diaspora_stream_driver_entry` entry point")
            && reason.contains("export_driver!"),
        "{reason}"
    );
}

#[test]
fn another_interface_version_is_refused_naming_both() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let lib = entry_library(dir.path(), "future", 99, "whatever", "future");
    let (_, reason) = load_error(&format!("future:{}", lib.display()));
    assert!(
        reason.contains("interface version 99") && reason.contains("version 1"),
        "{reason}"
    );
}

#[test]
fn another_build_is_refused_naming_both() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let theirs = "diaspora-stream 0.0.1; rustc 1.0.0 (0 2015-05-15); x86_64-unknown-linux-gnu";
    let lib = entry_library(dir.path(), "old", 1, theirs, "old");
    let (_, reason) = load_error(&format!("old:{}", lib.display()));
    assert!(reason.contains(theirs), "{reason}");
    assert!(
        reason.contains(diaspora_stream::plugin::build_id()),
        "{reason}"
    );
}

#[test]
fn a_library_holding_another_driver_is_refused_and_bare_names_are_searched() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ours = diaspora_stream::plugin::build_id();
    let lib = entry_library(dir.path(), "found", 1, ours, "other");
    let (_, reason) = load_error(&format!("wanted:{}", lib.display()));
    assert!(
        reason.contains("holds driver \"other\", not \"wanted\""),
        "{reason}"
    );
    // A bare file name is looked for in DIASPORA_DRIVER_PATH (this is the only test that sets
    // it).
    std::env::set_var(
        "DIASPORA_DRIVER_PATH",
        format!("/nonexistent-diaspora-dir:{}", dir.path().display()),
    );
    let (library, reason) = load_error("wanted:libfound.so");
    std::env::remove_var("DIASPORA_DRIVER_PATH");
    assert!(
        library.starts_with(&*dir.path().canonicalize().unwrap().to_string_lossy()),
        "{library}"
    );
    assert!(reason.contains("holds driver \"other\""), "{reason}");
    // A relative path (with a '/') is taken from the current directory.
    let here = tempfile::tempdir_in(".").unwrap();
    let name = here
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    std::fs::copy(&lib, here.path().join("librelative.so")).unwrap();
    let (library, reason) = load_error(&format!("wanted:./{name}/librelative.so"));
    assert!(library.ends_with("librelative.so"), "{library}");
    assert!(reason.contains("holds driver \"other\""), "{reason}");
    // Built-in drivers are used as they are, whatever library is named after them (the C++
    // reference's spelling).
    let d = Driver::new("memory:libdiaspora-memory-driver.so", &json!({})).unwrap();
    assert_eq!(d.backend().name(), "memory");
}
