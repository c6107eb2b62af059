//! Records the library directories of Mercury and Argobots (found by their `-sys` crates
//! through pkg-config) as run paths of the programs and tests of this package (and of the
//! Python extension module, whose crate, crates/python, uses this script too), as the library's
//! build script does for its own, so that they start without `LD_LIBRARY_PATH` when those
//! libraries live outside the system paths (a Spack prefix, for example). Does nothing without
//! the `mercury`/`argobots` features.

fn main() {
    for var in ["DEP_MERCURY_LIBDIR", "DEP_ABT_LIBDIR"] {
        println!("cargo:rerun-if-env-changed={var}");
        if let Ok(dirs) = std::env::var(var) {
            for dir in std::env::split_paths(&dirs) {
                println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
            }
        }
    }
}
