//! Records the library directory of Mercury (found by mercury-sys through pkg-config) as a run
//! path of the Python extension module, as the library's build script does for its own, so that
//! `import diaspora_stream` works without `LD_LIBRARY_PATH` when Mercury lives outside the
//! system paths (a Spack prefix, for example). Does nothing without the `mofka` feature.

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
