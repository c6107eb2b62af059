# Spack recipe of a driver of diaspora-stream (Spack >= 1.0, package API v2.2):
#   {{crate_name}}
# Installs the library that programs load by name into prefix/lib, and puts that folder on
# DIASPORA_DRIVER_PATH, where the loader looks for it:
#   {{crate_name}}:lib{{crate_name}}.so
#
# A driver loaded by name must be built with the same Rust compiler, diaspora-stream release and
# dependency versions as the programs that load it: take both from one Spack instance, and keep
# the Cargo.lock of the crate (copied from diaspora-stream's when the crate was created).

from spack_repo.builtin.build_systems import cargo
from spack_repo.builtin.build_systems.cargo import CargoPackage

from spack.package import depends_on, install, join_path, mkdirp, version, working_dir


class {{crate_name | pascal_case}}(CargoPackage):
    """A driver of diaspora-stream: partitions as append-only files.

    Driver name: {{crate_name}}
    """

    homepage = "https://example.org/{{project-name}}"
    git = "https://example.org/{{project-name}}.git"

    version("main", branch="main")

    depends_on("rust@1.89:", type="build")
    depends_on("diaspora-stream-rs", type=("build", "run"))

    def setup_run_environment(self, env):
        env.prepend_path("DIASPORA_DRIVER_PATH", self.prefix.lib)


class CargoBuilder(cargo.CargoBuilder):
    def build(self, pkg, spec, prefix):
        """`cargo build --release --lib --locked`: the cdylib and the rlib."""
        with working_dir(self.build_directory):
            pkg.module.cargo("build", "--release", "--lib", "--locked")

    def install(self, pkg, spec, prefix):
        mkdirp(prefix.lib)
        library = "lib{{crate_name}}.so"
        install(join_path("target", "release", library), prefix.lib)
