//! Finds Mercury with pkg-config, generates bindings for its public headers, and compiles C
//! wrappers for the `static inline` functions that bindgen cannot bind directly.

use std::env;
use std::path::PathBuf;

const HEADERS: &[&str] = &[
    "mercury.h",
    "mercury_bulk.h",
    "mercury_proc.h",
    "mercury_proc_bulk.h",
    "mercury_proc_string.h",
];

fn main() {
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let lib = match pkg_config::Config::new()
        .atleast_version("2.2")
        .probe("mercury")
    {
        Ok(lib) => lib,
        Err(err) => {
            eprintln!(
                "mercury-sys: Mercury (pkg-config package `mercury`, version 2.2 or newer) was \
                 not found.\n\
                 Install it, for example with `spack install mercury && spack load mercury`, or \
                 build it from source with CMake (`-DBUILD_SHARED_LIBS=ON -DNA_USE_SM=ON \
                 -DNA_USE_OFI=ON`), then put PREFIX/lib/pkgconfig on PKG_CONFIG_PATH.\n\
                 Only the `mercury` feature of diaspora-stream needs it.\n\
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
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let wrapper = out.join("mercury_sys_wrapper.h");
    let includes: String = HEADERS
        .iter()
        .map(|h| format!("#include <{h}>\n"))
        .collect();
    std::fs::write(&wrapper, includes).expect("mercury-sys: could not write the wrapper header");
    let include_args: Vec<String> = lib
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();

    let inline_wrappers = out.join("mercury_sys_inline");
    let bindings = bindgen::Builder::default()
        .header(wrapper.to_string_lossy())
        .clang_args(&include_args)
        .allowlist_function("HG_.*|hg_proc_.*|NA_Error_to_string")
        .allowlist_type("hg_.*|HG_.*|na_.*")
        .allowlist_var("HG_.*|NA_NO_BLOCK|NA_NO_RETRY")
        // The handle structures are only visible because of the inline accessors: keep them
        // opaque so that Rust code goes through the functions.
        .opaque_type("hg_class|hg_context|hg_handle|hg_proc|hg_bulk|hg_addr|hg_op_id")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(&inline_wrappers)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|err| {
            eprintln!("mercury-sys: bindgen could not process Mercury's headers: {err}");
            std::process::exit(1)
        });
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("mercury-sys: could not write the bindings");

    let mut build = cc::Build::new();
    build
        .file(inline_wrappers.with_extension("c"))
        .include(&out)
        .flag(format!("-include{}", wrapper.display()));
    for dir in &lib.include_paths {
        build.include(dir);
    }
    build.warnings(false).compile("mercury_sys_inline");
}
