# Spack recipe for diaspora-stream-rs (crate `diaspora-stream`), kept in the crate's repository.
# Spack >= 1.0, package API v2.2. Checked by scripts/check-spack.sh (syntax, black, flake8) and
# tests/packaging.rs (variants and cargo features in sync).
#
# SPDX-License-Identifier: Apache-2.0

import os

from spack_repo.builtin.build_systems import cargo
from spack_repo.builtin.build_systems.cargo import CargoPackage

from spack.package import (
    EnvironmentModifications,
    Spec,
    depends_on,
    find_libraries,
    install,
    install_tree,
    join_path,
    license,
    requires,
    mkdirp,
    run_after,
    variant,
    version,
    working_dir,
)

RELEASES = "https://github.com/diaspora-project/diaspora-stream-rs/releases/download"

#: Variant -> cargo feature. Every variant of this recipe is a cargo feature: tests/packaging.rs
#: compares this table with the variants below and with the [features] table of Cargo.toml.
CARGO_FEATURES = {
    "mpi": "mpi",
    "hdf5": "hdf5",
    "kafka": "kafka",
    "msk": "msk",
    "mercury": "mercury",
    "mofka": "mofka",
    "argobots": "argobots",
    "rayon": "rayon",
}

#: Variants that install another part of the project rather than select a cargo feature of the
#: library (tests/packaging.rs keeps them out of the feature table).
PACKAGE_VARIANTS = ("python",)

#: Cargo features of the Python package (crates/python) that follow the variants of the same
#: name when +python: the MPI helpers and the drivers built into the extension module.
PYTHON_FEATURES = ("mpi", "kafka", "msk", "mofka", "rayon")

#: Variants whose crates generate bindings with bindgen, which loads libclang while building.
BINDGEN_VARIANTS = ("mpi", "mercury", "mofka", "argobots")

#: Integration tests run by `spack install --test=root`. The other suites need the C++
#: fixtures beside a git checkout, a Kafka broker, or an MPI launcher they configure themselves.
CHECK_TESTS = ("conformance", "files_driver", "multiprocess")

#: The workspace member with the programs (diaspora-ctl and the two benchmark programs); the
#: library, the root package, has none. It forwards every cargo feature to the library.
CLI_CRATE = "crates/cli"

#: Top-level entries of the source tree that are not part of the installed crate.
NOT_CRATE_SOURCE = (
    ".cargo",
    "python",
    "pyproject.toml",
    ".ci",
    ".git",
    "crates",
    "out",
    "scripts",
    "slurm",
    "spack",
    "target",
    "vendor",
)


class DiasporaStreamRs(CargoPackage):
    """Stream events between the programs of an HPC workflow through partitioned topics: a
    Rust implementation of the Diaspora Stream API, with a files driver byte-compatible with
    the C++ reference's, MPI coupling helpers and a Kafka (Octopus) driver. Installs the
    diaspora-ctl tool, the producer and consumer benchmark programs, and the crate's sources
    for Rust applications (share/diaspora-stream-rs/crate, also in $DIASPORA_STREAM_CRATE)."""

    homepage = "https://github.com/diaspora-project/diaspora-stream-rs"
    git = "https://github.com/diaspora-project/diaspora-stream-rs.git"
    url = f"{RELEASES}/v0.1.0/diaspora-stream-rs-0.1.0.tar.gz"

    license("Apache-2.0")

    # Release tarballs are made by scripts/dist.sh: the git-tracked sources plus `cargo vendor`
    # output and the .cargo/config.toml that points cargo at it, so they build without network.
    # dist.sh prints the sha256 line to put here when a release is published. Until then 0.1.0
    # has no checksum: install it from a tarball made by dist.sh placed in a Spack mirror, with
    # `spack install --no-checksum` (see spack/README.md). `main` builds from git and lets cargo
    # download the crates.
    version("main", branch="main", preferred=True)
    version("0.1.0")

    variant("mpi", default=False, description="MPI coupling helpers; MPI-aware benchmarks")
    variant("hdf5", default=False, description="Export and import topics as HDF5 files")
    variant("kafka", default=False, description="Kafka/Octopus driver (bundled librdkafka)")
    variant(
        "msk", default=False, description="Amazon MSK with IAM access control for the Kafka driver"
    )
    # MSK IAM is a way of the Kafka driver to authenticate.
    requires("+kafka", when="+msk")
    variant(
        "mercury", default=False, description="Mercury RPC and RDMA layer (under the Mofka driver)"
    )
    variant("mofka", default=False, description="Mofka driver over Mercury RPC and RDMA")
    # The Mofka driver is built on the Mercury layer.
    requires("+mercury", when="+mofka")
    variant("argobots", default=False, description="Argobots pools as thread pools")
    variant(
        "rayon",
        default=False,
        description="Thread pool on rayon; topic check verifies partitions in parallel",
    )

    variant(
        "python",
        default=False,
        description="The diaspora_stream Python package (PyO3, stable ABI of CPython 3.9+)",
    )
    depends_on("python@3.9:", type=("build", "run"), when="+python")
    depends_on("py-pip", type="build", when="+python")
    depends_on("py-maturin@1.7:1", type="build", when="+python")
    depends_on("py-mpi4py", type="run", when="+python+mpi")
    depends_on("py-numpy", type="run", when="+python")

    # Matches rust-version in Cargo.toml (tests/packaging.rs checks it).
    depends_on("rust@1.89:", type="build")
    # rustc links through the C compiler; several -sys crates compile C code.
    depends_on("c", type="build")

    # rsmpi: mpi-sys asks $MPICC for the MPI's flags.
    depends_on("mpi", when="+mpi")
    # hdf5-metno finds the library through $HDF5_DIR; with MPI it needs the parallel build.
    depends_on("hdf5@1.10:", when="+hdf5")
    depends_on("hdf5+mpi", when="+hdf5+mpi")
    # rdkafka builds its bundled librdkafka with ./configure and make, TLS through OpenSSL.
    depends_on("openssl", when="+kafka")
    # The AWS crates (credentials, SigV4) need a newer compiler than the rest.
    depends_on("rust@1.94.1:", type="build", when="+msk")
    depends_on("gmake", type="build", when="+kafka")
    depends_on("cxx", type="build", when="+kafka")
    depends_on("pkgconfig", type="build", when="+kafka")
    # Mercury (the Mofka transport) and the Argobots runtime are found through pkg-config.
    depends_on("mercury", when="+mercury")
    depends_on("pkgconfig", type="build", when="+mercury")
    depends_on("mercury", when="+mofka")
    depends_on("pkgconfig", type="build", when="+mofka")
    depends_on("argobots", when="+argobots")
    depends_on("pkgconfig", type="build", when="+argobots")
    # libclang for bindgen ($LIBCLANG_PATH); one line per entry of BINDGEN_VARIANTS.
    depends_on("llvm+clang", type="build", when="+mpi")
    depends_on("llvm+clang", type="build", when="+mercury")
    depends_on("llvm+clang", type="build", when="+mofka")
    depends_on("llvm+clang", type="build", when="+argobots")

    def url_for_version(self, version):
        return f"{RELEASES}/v{version}/diaspora-stream-rs-{version}.tar.gz"

    @property
    def crate_dir(self):
        """Where the crate's sources are installed, for `path =` dependencies."""
        return join_path(self.prefix.share, "diaspora-stream-rs", "crate")

    def vendored_sources(self):
        """True for a dist tarball: crates in vendor/ and cargo's source replacement."""
        source = self.stage.source_path
        return os.path.isdir(join_path(source, "vendor")) and os.path.isfile(
            join_path(source, ".cargo", "config.toml")
        )

    def libclang_dir(self):
        llvm = self.spec["llvm"]
        libs = find_libraries("libclang", root=llvm.prefix, shared=True, recursive=True)
        return libs.directories[0] if libs else llvm.prefix.lib

    def setup_build_environment(self, env: EnvironmentModifications) -> None:
        spec = self.spec
        if spec.satisfies("+mpi"):
            env.set("MPICC", spec["mpi"].mpicc)
        if spec.satisfies("+hdf5"):
            # Ahead of pkg-config, which could find another HDF5 (e.g. a serial system one).
            env.set("HDF5_DIR", spec["hdf5"].prefix)
        if any(spec.satisfies(f"+{name}") for name in BINDGEN_VARIANTS):
            env.set("LIBCLANG_PATH", self.libclang_dir())

    def setup_run_environment(self, env: EnvironmentModifications) -> None:
        env.set("DIASPORA_STREAM_CRATE", self.crate_dir)
        if self.spec.satisfies("+python"):
            env.prepend_path("PYTHONPATH", self.python_dir())

    def python_dir(self):
        """site-packages under the prefix, where +python installs diaspora_stream."""
        ver = self.spec["python"].version.up_to(2)
        return join_path(self.prefix.lib, f"python{ver}", "site-packages")

    @run_after("install")
    def install_python(self):
        """+python: `pip install .` of the checkout (maturin builds crates/python) into the
        prefix, with the Python package's features that the variants select."""
        if not self.spec.satisfies("+python"):
            return
        features = [f for f in PYTHON_FEATURES if self.spec.satisfies(f"+{f}")]
        env = dict(os.environ)
        if features:
            env["MATURIN_PEP517_ARGS"] = "--features " + ",".join(features)
        python = self.spec["python"].command
        with working_dir(self.stage.source_path):
            python(
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                f"--prefix={self.prefix}",
                ".",
                env=env,
            )

    def setup_dependent_build_environment(
        self, env: EnvironmentModifications, dependent_spec: Spec
    ) -> None:
        env.set("DIASPORA_STREAM_CRATE", self.crate_dir)

    @run_after("install")
    def install_crate(self):
        """Install the library the way Rust libraries are shipped, as the crate's sources (an
        .rlib only links with the very rustc that built it). Applications depend on it with
        `diaspora-stream = { path = "<prefix>/share/diaspora-stream-rs/crate" }`."""
        source = self.stage.source_path
        mkdirp(self.crate_dir)
        for entry in sorted(os.listdir(source)):
            if entry in NOT_CRATE_SOURCE or entry.startswith("spack-"):
                continue
            path = join_path(source, entry)
            if os.path.isdir(path):
                install_tree(path, join_path(self.crate_dir, entry))
            else:
                install(path, self.crate_dir)


class CargoBuilder(cargo.CargoBuilder):
    @property
    def cargo_flags(self):
        """Flags shared by `cargo install` (build) and `cargo test` (check)."""
        # From a dist tarball: no network, exactly the crates of Cargo.lock (--frozen is
        # --locked plus --offline). Otherwise cargo downloads, still following Cargo.lock.
        flags = ["--frozen"] if self.pkg.vendored_sources() else ["--locked"]
        # The variants alone choose the features, whatever Cargo.toml's defaults are.
        flags.append("--no-default-features")
        features = [
            feature
            for name, feature in sorted(CARGO_FEATURES.items())
            if self.spec.satisfies(f"+{name}")
        ]
        if features:
            flags.extend(["--features", ",".join(features)])
        return flags

    @property
    def build_args(self):
        return self.cargo_flags

    def build(self, pkg, spec, prefix):
        """`cargo install --root out --path crates/cli` from the top of the workspace (where
        Cargo.lock and a dist tarball's .cargo/config.toml are): builds and installs
        diaspora-ctl, diaspora-producer-benchmark and diaspora-consumer-benchmark, with the
        variants' features forwarded to the library."""
        args = ["--root", "out", "--path", CLI_CRATE, *self.std_build_args, *self.build_args]
        with working_dir(self.build_directory):
            pkg.module.cargo("install", *args)

    @property
    def check_args(self):
        # At the top of the workspace: the library's unit tests and CHECK_TESTS, and the unit
        # tests of the programs (the CLI crate's --bins).
        tests = [arg for name in CHECK_TESTS for arg in ("--test", name)]
        packages = ["--package", "diaspora-stream", "--package", "diaspora-stream-cli"]
        return [*self.cargo_flags, *packages, "--lib", "--bins", *tests]
