//! Packaging checks.
//!
//! - Always (fast, no network): the Spack recipe in `spack/` stays in sync with `Cargo.toml`.
//!   Every variant maps to a cargo feature through the recipe's `CARGO_FEATURES` table, every
//!   cargo feature (but `default`) has a variant, and a variant may only map to a feature that
//!   `Cargo.toml` lacks if [`PLANNED_FEATURES`] lists it. Also: the Spack >= 1.0 repository
//!   layout, the recipe's minimum Rust against `rust-version`, the test suites its check
//!   phase names, and the command-line crate (`crates/cli`) following the library's version and
//!   features.
//! - With `DIASPORA_TEST_DIST=1` only (minutes, vendors every crate): `scripts/dist.sh` builds
//!   the air-gapped source tarball, which is unpacked and built with `cargo build --frozen`
//!   under an empty `CARGO_HOME` and, where `unshare -n` works, without any network.
//!
//! Cargo.toml and package.py are read with small line scanners, not a TOML or Python parser:
//! the test adds no dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const RECIPE: &str = "spack/spack_repo/diaspora_rs/packages/diaspora_stream_rs/package.py";
const REPO_YAML: &str = "spack/spack_repo/diaspora_rs/repo.yaml";
/// The command-line tools and benchmark programs: a workspace member of their own.
const CLI_MANIFEST: &str = "crates/cli/Cargo.toml";

/// Cargo features that the recipe already has variants for but that the crate does not have
/// yet. A variant mapped to a feature missing from Cargo.toml fails the test unless it is here;
/// remove a name once its feature has landed (the test prints a reminder).
const PLANNED_FEATURES: &[&str] = &[];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Cargo.toml

/// Strips a `#` comment that is not inside a double-quoted string.
fn strip_toml_comment(line: &str) -> &str {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            '\\' if in_string && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => in_string = !in_string,
            '#' if !in_string => return &line[..i],
            _ => {}
        }
        escaped = false;
    }
    line
}

/// Opening minus closing square brackets outside double-quoted strings.
fn bracket_balance(line: &str) -> i32 {
    let mut balance = 0;
    let mut in_string = false;
    let mut escaped = false;
    for c in line.chars() {
        match c {
            '\\' if in_string && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => in_string = !in_string,
            '[' if !in_string => balance += 1,
            ']' if !in_string => balance -= 1,
            _ => {}
        }
        escaped = false;
    }
    balance
}

/// The `key = value` lines of one top-level table (`[name]`), keys unquoted. Values spanning
/// several lines (arrays) are joined; only the table's own keys are returned, not those of
/// sub-tables such as `[name.sub]`.
fn toml_table(manifest: &str, table: &str) -> BTreeMap<String, String> {
    let header = format!("[{table}]");
    let mut entries = BTreeMap::new();
    let mut in_table = false;
    let mut depth = 0i32; // open brackets of a value spanning lines
    let mut current: Option<(String, String)> = None;
    for raw in manifest.lines() {
        let line = strip_toml_comment(raw).trim();
        if depth == 0 {
            if let Some((key, value)) = current.take() {
                entries.insert(key, value);
            }
            if line.starts_with('[') {
                in_table = line == header;
                continue;
            }
        }
        if !in_table || line.is_empty() {
            continue;
        }
        if depth == 0 {
            let Some((key, value)) = line.split_once('=') else {
                panic!("Cargo.toml [{table}]: cannot read line {raw:?}");
            };
            let key = key.trim().trim_matches('"').to_string();
            current = Some((key, value.trim().to_string()));
        } else if let Some((_, value)) = current.as_mut() {
            value.push(' ');
            value.push_str(line);
        }
        depth += bracket_balance(line);
    }
    if let Some((key, value)) = current.take() {
        entries.insert(key, value);
    }
    entries
}

/// Names of the cargo features, without `default`.
fn cargo_features(manifest: &str) -> BTreeSet<String> {
    toml_table(manifest, "features")
        .into_keys()
        .filter(|name| name != "default")
        .collect()
}

fn unquote(value: &str) -> String {
    value.trim().trim_matches('"').to_string()
}

// ---------------------------------------------------------------------------------------------
// package.py

/// The quoted strings of `text`, in order (Python's escapes are not needed here).
fn quoted_strings(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Lines of a Python file without `#` comments (none of the recipe's strings holds a `#`).
fn python_code(recipe: &str) -> String {
    recipe
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names of the `variant("name", ...)` directives, in order.
fn recipe_variants(recipe: &str) -> Vec<String> {
    let code = python_code(recipe);
    let mut names = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("variant(") {
        let before = rest[..at].chars().last();
        let after = rest[at + "variant(".len()..].trim_start();
        rest = &rest[at + "variant(".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            continue; // another function whose name ends in `variant`
        }
        let name = after
            .strip_prefix('"')
            .and_then(|s| s.split_once('"'))
            .map(|(name, _)| name.to_string())
            .unwrap_or_else(|| panic!("{RECIPE}: variant( not followed by a quoted name"));
        names.push(name);
    }
    names
}

/// The text between `NAME = <open>` and the matching closing bracket.
fn python_literal<'a>(recipe: &'a str, name: &str, open: char, close: char) -> &'a str {
    let start = format!("\n{name} = {open}");
    let at = recipe
        .find(&start)
        .unwrap_or_else(|| panic!("{RECIPE}: no top-level `{name} = {open}...{close}`"));
    let body = &recipe[at + start.len()..];
    let end = body
        .find(close)
        .unwrap_or_else(|| panic!("{RECIPE}: `{name}` is not closed"));
    &body[..end]
}

/// The recipe's `CARGO_FEATURES = {"variant": "feature", ...}` table.
fn recipe_feature_map(recipe: &str) -> BTreeMap<String, String> {
    let code = python_code(recipe);
    let body = python_literal(&code, "CARGO_FEATURES", '{', '}');
    let mut map = BTreeMap::new();
    for entry in body.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let strings = quoted_strings(entry);
        assert!(
            strings.len() == 2 && entry.contains(':'),
            "{RECIPE}: CARGO_FEATURES entry {entry:?} is not \"variant\": \"feature\""
        );
        let previous = map.insert(strings[0].clone(), strings[1].clone());
        assert!(
            previous.is_none(),
            "{RECIPE}: CARGO_FEATURES lists {:?} twice",
            strings[0]
        );
    }
    map
}

// ---------------------------------------------------------------------------------------------
// The rules

/// Everything that is out of sync, one message each (empty when in sync).
fn sync_errors(
    variants: &[String],
    feature_of: &BTreeMap<String, String>,
    cargo: &BTreeSet<String>,
    planned: &[&str],
) -> Vec<String> {
    let mut errors = Vec::new();
    let declared: BTreeSet<&String> = variants.iter().collect();
    if declared.len() != variants.len() {
        errors.push(format!("a variant is declared twice: {variants:?}"));
    }
    for variant in &declared {
        if !feature_of.contains_key(*variant) {
            errors.push(format!(
                "variant {variant:?} has no entry in CARGO_FEATURES (every variant is a feature)"
            ));
        }
    }
    for (variant, feature) in feature_of {
        if !declared.contains(variant) {
            errors.push(format!(
                "CARGO_FEATURES maps {variant:?}, which is not a variant of the recipe"
            ));
        }
        if !cargo.contains(feature) && !planned.contains(&feature.as_str()) {
            errors.push(format!(
                "variant {variant:?} maps to cargo feature {feature:?}, which Cargo.toml does not \
                 have and PLANNED_FEATURES (tests/packaging.rs) does not list"
            ));
        }
    }
    let mapped: BTreeSet<&String> = feature_of.values().collect();
    for feature in cargo {
        if !mapped.contains(feature) {
            errors.push(format!(
                "cargo feature {feature:?} has no Spack variant: add variant(\"{feature}\", ...) \
                 and a CARGO_FEATURES entry to {RECIPE}"
            ));
        }
    }
    for feature in planned {
        if !feature_of.values().any(|f| f == feature) {
            errors.push(format!(
                "PLANNED_FEATURES lists {feature:?} but no variant maps to it: drop it"
            ));
        }
    }
    errors
}

/// The recipe's `PACKAGE_VARIANTS = ("python", ...)`: variants that install another part of
/// the project (the Python package), not a cargo feature of the library.
fn recipe_package_variants(recipe: &str) -> Vec<String> {
    let code = python_code(recipe);
    quoted_strings(python_literal(&code, "PACKAGE_VARIANTS", '(', ')'))
}

#[test]
fn spack_variants_match_cargo_features() {
    let recipe = read(RECIPE);
    let cargo = cargo_features(&read("Cargo.toml"));
    let all_variants = recipe_variants(&recipe);
    let feature_of = recipe_feature_map(&recipe);
    let package_variants = recipe_package_variants(&recipe);
    for v in &package_variants {
        assert!(
            all_variants.contains(v),
            "{RECIPE}: PACKAGE_VARIANTS lists {v:?}, which is not a variant"
        );
        assert!(
            !feature_of.contains_key(v),
            "{RECIPE}: {v:?} is both a package variant and a cargo feature"
        );
    }
    let variants: Vec<String> = all_variants
        .into_iter()
        .filter(|v| !package_variants.contains(v))
        .collect();
    assert!(!variants.is_empty(), "{RECIPE}: no variant found");
    assert!(!cargo.is_empty(), "Cargo.toml: no feature found");

    let errors = sync_errors(&variants, &feature_of, &cargo, PLANNED_FEATURES);
    assert!(
        errors.is_empty(),
        "the Spack recipe and Cargo.toml's features disagree:\n  {}\n(variants {variants:?}, \
         cargo features {cargo:?}, planned {PLANNED_FEATURES:?})",
        errors.join("\n  ")
    );
    for feature in PLANNED_FEATURES {
        if cargo.contains(*feature) {
            eprintln!(
                "note: cargo feature {feature:?} now exists: remove it from PLANNED_FEATURES in \
                 tests/packaging.rs"
            );
        }
    }
}

#[test]
fn sync_rules_catch_each_kind_of_drift() {
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let set = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let map = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(v, f)| (v.to_string(), f.to_string()))
            .collect::<BTreeMap<_, _>>()
    };
    let variants = names(&["mpi", "kafka", "mofka"]);
    let mapping = map(&[("mpi", "mpi"), ("kafka", "kafka"), ("mofka", "mofka")]);

    // In sync, with one planned feature.
    let ok = sync_errors(&variants, &mapping, &set(&["mpi", "kafka"]), &["mofka"]);
    assert!(ok.is_empty(), "{ok:?}");
    // A planned feature that has landed is fine.
    let landed = sync_errors(
        &variants,
        &mapping,
        &set(&["mpi", "kafka", "mofka"]),
        &["mofka"],
    );
    assert!(landed.is_empty(), "{landed:?}");

    // A variant mapped to a feature that neither exists nor is planned.
    let errors = sync_errors(&variants, &mapping, &set(&["mpi", "kafka"]), &[]);
    assert!(
        errors.len() == 1 && errors[0].contains("\"mofka\"") && errors[0].contains("does not"),
        "{errors:?}"
    );
    // A cargo feature without a variant.
    let errors = sync_errors(
        &variants,
        &mapping,
        &set(&["mpi", "kafka", "hdf5"]),
        &["mofka"],
    );
    assert!(
        errors.len() == 1 && errors[0].contains("\"hdf5\" has no Spack variant"),
        "{errors:?}"
    );
    // A variant missing from CARGO_FEATURES, and an entry without a variant.
    let errors = sync_errors(
        &names(&["mpi", "kafka", "mofka", "extra"]),
        &mapping,
        &set(&["mpi", "kafka"]),
        &["mofka"],
    );
    assert!(
        errors.len() == 1 && errors[0].contains("\"extra\" has no entry"),
        "{errors:?}"
    );
    let errors = sync_errors(
        &names(&["mpi", "kafka"]),
        &mapping,
        &set(&["mpi", "kafka"]),
        &[],
    );
    assert!(
        errors.iter().any(|e| e.contains("not a variant")),
        "{errors:?}"
    );
    // A stale planned entry.
    let errors = sync_errors(
        &variants,
        &mapping,
        &set(&["mpi", "kafka"]),
        &["mofka", "gpu"],
    );
    assert!(
        errors.len() == 1 && errors[0].contains("\"gpu\""),
        "{errors:?}"
    );
}

#[test]
fn scanners_read_the_formats() {
    let manifest = r#"
[package]
name = "x" # a comment
rust-version = "1.89"

[features]
default = ["mpi"]
mpi = ["dep:mpi", "hdf5?/mpio"]   # comment with a [bracket]
odd = ["a-[b"]
"quoted-name" = []
kafka = [
    "dep:rdkafka",
    "dep:futures-executor",
]
hdf5 = ["dep:hdf5"]

[features.not-this]
[dependencies]
serde = { version = "1", features = ["derive"] }
"#;
    assert_eq!(
        cargo_features(manifest),
        ["hdf5", "kafka", "mpi", "odd", "quoted-name"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let kafka = &toml_table(manifest, "features")["kafka"];
    assert!(kafka.contains("dep:futures-executor"), "{kafka}");
    assert_eq!(
        unquote(&toml_table(manifest, "package")["rust-version"]),
        "1.89"
    );

    let recipe = r#"
CARGO_FEATURES = {
    "mpi": "mpi",  # comment
    "kafka": "rdkafka",
}
# variant("commented", default=False)
class X(CargoPackage):
    variant("mpi", default=False, description="MPI (coupling)")
    variant(
        "kafka", default=False, description="Kafka"
    )
    def f(self):
        return self.spec.variants.variant("nope")
"#;
    assert_eq!(recipe_variants(recipe), vec!["mpi", "kafka"]);
    let map = recipe_feature_map(recipe);
    assert_eq!(map["kafka"], "rdkafka");
    assert_eq!(map.len(), 2);
}

#[test]
fn spack_repository_layout() {
    let repo = read(REPO_YAML);
    let namespace = Path::new(REPO_YAML)
        .parent()
        .and_then(Path::file_name)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        repo.lines()
            .any(|l| l.trim() == format!("namespace: {namespace}")),
        "{REPO_YAML} must declare namespace {namespace} (its folder's name):\n{repo}"
    );
    assert!(
        repo.lines().any(|l| l.trim() == "api: v2.2"),
        "{REPO_YAML} must declare the package API (api: v2.2):\n{repo}"
    );
    let recipe = read(RECIPE);
    assert!(
        recipe.contains("from spack_repo.builtin.build_systems.cargo import CargoPackage"),
        "{RECIPE}: CargoPackage must come from the builtin repository (Spack >= 1.0)"
    );
    // Spack maps the package `diaspora-stream-rs` to the folder diaspora_stream_rs and the
    // class DiasporaStreamRs.
    assert!(recipe.contains("\nclass DiasporaStreamRs(CargoPackage):"));
}

#[test]
fn spack_recipe_follows_cargo_toml() {
    let manifest = read("Cargo.toml");
    let recipe = read(RECIPE);
    let rust_version = unquote(&toml_table(&manifest, "package")["rust-version"]);
    let wanted = format!("depends_on(\"rust@{rust_version}:\", type=\"build\")");
    assert!(
        recipe.contains(&wanted),
        "{RECIPE} must require the crate's rust-version: {wanted}"
    );
    // The check phase runs these integration tests by name.
    let code = python_code(&recipe);
    let tests = quoted_strings(python_literal(&code, "CHECK_TESTS", '(', ')'));
    assert!(!tests.is_empty(), "{RECIPE}: CHECK_TESTS is empty");
    for name in tests {
        // A test target is tests/NAME.rs or a folder tests/NAME/ with its main.rs.
        let file = format!("tests/{name}.rs");
        let folder = format!("tests/{name}/main.rs");
        assert!(
            root().join(&file).is_file() || root().join(&folder).is_file(),
            "{RECIPE}: CHECK_TESTS names {name}, but neither {file} nor {folder} exists"
        );
    }
}

/// The command-line tools' crate (crates/cli) ships with the library: same version, edition,
/// minimum Rust and license, a dependency on this very version, and every library feature
/// forwarded (the Spack recipe builds it with the variants' features).
#[test]
fn cli_crate_follows_the_library() {
    let manifest = read("Cargo.toml");
    let cli = read(CLI_MANIFEST);
    let package = toml_table(&manifest, "package");
    let cli_package = toml_table(&cli, "package");
    for key in ["version", "edition", "rust-version", "license"] {
        assert_eq!(
            cli_package.get(key).map(|v| unquote(v)),
            package.get(key).map(|v| unquote(v)),
            "{CLI_MANIFEST}: [package] {key} must be the library's"
        );
    }
    let dependency = &toml_table(&cli, "dependencies")["diaspora-stream"];
    let version = unquote(&package["version"]);
    assert!(
        dependency.contains("path = \"../..\"")
            && dependency.contains(&format!("version = \"{version}\"")),
        "{CLI_MANIFEST}: diaspora-stream must be the path ../.. at version {version}: {dependency}"
    );
    let forwarded = toml_table(&cli, "features");
    for feature in cargo_features(&manifest) {
        let wanted = format!("\"diaspora-stream/{feature}\"");
        assert!(
            forwarded.get(&feature).is_some_and(|v| v.contains(&wanted)),
            "{CLI_MANIFEST}: feature {feature:?} must forward {wanted} (the recipe passes the \
             variants' features to this crate)"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The air-gapped tarball

fn run(what: &str, command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `cargo ...` in `dir` with nothing but the unpacked tarball: an empty CARGO_HOME (no registry
/// cache, no config), no network if `unshare -n` works here, and --frozen.
fn offline_cargo(dir: &Path, cargo_home: &Path, isolate: bool, args: &[&str]) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = if isolate {
        let mut c = Command::new("unshare");
        c.args(["-n", "--"]).arg(cargo);
        c
    } else {
        Command::new(cargo)
    };
    command
        .args(args)
        .current_dir(dir)
        .env("CARGO_HOME", cargo_home)
        .env("CARGO_NET_OFFLINE", "true")
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTC_WRAPPER");
    command
}

#[test]
#[ignore = "slow (cargo vendor + a full offline build): DIASPORA_TEST_DIST=1 cargo test --test \
            packaging -- --ignored"]
fn dist_tarball_builds_offline() {
    if std::env::var("DIASPORA_TEST_DIST").as_deref() != Ok("1") {
        eprintln!("skipped: set DIASPORA_TEST_DIST=1 to build and check the dist tarball");
        return;
    }
    let manifest = read("Cargo.toml");
    let version = unquote(&toml_table(&manifest, "package")["version"]);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("dist");

    let log = run(
        "scripts/dist.sh",
        Command::new("bash")
            .arg(root().join("scripts/dist.sh"))
            .arg("--output")
            .arg(&out),
    );
    eprint!("{log}");
    let name = format!("diaspora-stream-rs-{version}");
    let tarball = out.join(format!("{name}.tar.gz"));
    assert!(tarball.is_file(), "no {} after:\n{log}", tarball.display());

    let unpacked = work.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    run(
        "tar -x",
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked),
    );
    let top: Vec<PathBuf> = std::fs::read_dir(&unpacked)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(top, vec![unpacked.join(&name)], "one top folder, {name}");
    let source = unpacked.join(&name);

    // What the tarball must hold.
    let config = std::fs::read_to_string(source.join(".cargo/config.toml")).unwrap();
    assert!(
        config.contains("[source.crates-io]")
            && config.contains("replace-with = \"vendored-sources\""),
        "source replacement missing:\n{config}"
    );
    assert!(config.contains("directory = \"vendor\""), "{config}");
    let lock = std::fs::read_to_string(source.join("Cargo.lock")).unwrap();
    assert_eq!(lock, read("Cargo.lock"), "Cargo.lock must ship unchanged");
    // cargo vendor takes every crates.io package of Cargo.lock, for every platform and feature.
    let from_registry = lock.matches("\nsource = \"registry+").count();
    let vendored = std::fs::read_dir(source.join("vendor")).unwrap().count();
    assert!(
        from_registry > 0 && vendored == from_registry,
        "{vendored} crates in vendor/ for {from_registry} crates.io packages in Cargo.lock"
    );
    for absent in [".git", "target"] {
        assert!(
            !source.join(absent).exists(),
            "{absent} must not be shipped"
        );
    }
    for tracked in ["Cargo.toml", "src/lib.rs", CLI_MANIFEST, RECIPE] {
        if root().join(tracked).is_file() && is_tracked(tracked) {
            assert!(
                source.join(tracked).is_file(),
                "{tracked} missing from the tarball"
            );
        }
    }

    // Build it as an air-gapped site would.
    let cargo_home = work.path().join("empty-cargo-home");
    std::fs::create_dir(&cargo_home).unwrap();
    let isolate = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    eprintln!(
        "offline build in {} ({})",
        source.display(),
        if isolate {
            "no network: unshare -n"
        } else {
            "unshare -n unavailable: --frozen and an empty CARGO_HOME only"
        }
    );
    // Every feature resolves from vendor/ (manifests of all optional crates are there).
    run(
        "cargo metadata --all-features --frozen",
        offline_cargo(
            &source,
            &cargo_home,
            isolate,
            &[
                "metadata",
                "--all-features",
                "--frozen",
                "--format-version",
                "1",
            ],
        )
        .stdout(std::process::Stdio::null()),
    );
    let started = std::time::Instant::now();
    run(
        "cargo build --frozen",
        &mut offline_cargo(&source, &cargo_home, isolate, &["build", "--frozen"]),
    );
    eprintln!("offline build took {:.0?}", started.elapsed());
    let ctl = source.join("target/debug/diaspora-ctl");
    let help = run("diaspora-ctl --help", Command::new(&ctl).arg("--help"));
    assert!(help.contains("topic"), "{help}");
}

fn is_tracked(path: &str) -> bool {
    Command::new("git")
        .args(["ls-files", "--error-unmatch", path])
        .current_dir(root())
        .output()
        .is_ok_and(|o| o.status.success())
}
