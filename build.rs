//! Records the library directories of Mercury and Argobots (found by their `-sys` crates
//! through pkg-config) as run paths of this package's programs, tests and benchmarks, so that
//! they start without `LD_LIBRARY_PATH` when those libraries live outside the system paths
//! (a Spack prefix, for example). Does nothing without the `mercury`/`argobots` features.
//!
//! Also records the compiler and the target this crate is built with, which drivers loaded by
//! name must share with the program that loads them (see `src/plugin.rs`).

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown rustc".into());
    println!("cargo:rustc-env=DIASPORA_BUILD_RUSTC={version}");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown target".into());
    println!("cargo:rustc-env=DIASPORA_BUILD_TARGET={target}");
    println!("cargo:rerun-if-env-changed=RUSTC");
    println!("cargo:rerun-if-changed=build.rs");
    for var in ["DEP_MERCURY_LIBDIR", "DEP_ABT_LIBDIR"] {
        println!("cargo:rerun-if-env-changed={var}");
        if let Ok(dirs) = std::env::var(var) {
            for dir in std::env::split_paths(&dirs) {
                println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
            }
        }
    }
}
