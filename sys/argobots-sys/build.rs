//! Finds Argobots with pkg-config, generates bindings for `abt.h` and compiles the shim that
//! exports the handle constants whose values depend on how Argobots was configured.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let lib = match pkg_config::Config::new()
        .atleast_version("1.1")
        .probe("argobots")
    {
        Ok(lib) => lib,
        Err(err) => {
            eprintln!(
                "argobots-sys: Argobots (pkg-config package `argobots`, version 1.1 or newer) \
                 was not found.\n\
                 Install it, for example with `spack install argobots && spack load argobots`, \
                 or build it from source with `./configure --prefix=PREFIX && make install`, \
                 then put PREFIX/lib/pkgconfig on PKG_CONFIG_PATH.\n\
                 Only the `argobots` feature of diaspora-stream needs it.\n\
                 pkg-config said: {err}"
            );
            std::process::exit(1);
        }
    };
    // Dependents read this as DEP_<links>_LIBDIR (diaspora-stream and diaspora-stream-cli turn
    // it into a run path).
    if let Ok(dirs) = env::join_paths(&lib.link_paths) {
        println!("cargo:libdir={}", dirs.to_string_lossy());
    }
    // Run paths for this crate's own tests.
    for dir in &lib.link_paths {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
    let include_args: Vec<String> = lib
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();

    let mut shim = cc::Build::new();
    shim.file("shim.c");
    for dir in &lib.include_paths {
        shim.include(dir);
    }
    shim.warnings(true).compile("argobots_sys_shim");

    let bindings = bindgen::Builder::default()
        .header_contents("wrapper.h", "#include <abt.h>\n")
        .clang_args(&include_args)
        .allowlist_function("ABT_.*")
        .allowlist_type("ABT_.*")
        .allowlist_var("ABT_.*")
        // Handles whose value is a cast of a constant are produced by the shim instead.
        .blocklist_item("ABT_.*_NULL")
        .blocklist_item("ABT_.*_INITIALIZER")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|err| {
            eprintln!("argobots-sys: bindgen could not process abt.h: {err}");
            std::process::exit(1)
        });
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("argobots-sys: could not write the bindings");
}
