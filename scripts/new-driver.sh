#!/usr/bin/env bash
# Creates a new diaspora-stream driver crate from templates/driver, without cargo-generate.
#
# Usage: bash scripts/new-driver.sh NAME DIR [--published]
#
# NAME is the driver's name: one lowercase identifier (letters, digits, '_'; a letter first),
# not a Rust keyword and not the name of a built-in driver. It names the crate and its library
# (libNAME.so), the Spack package, and the driver type (NAME in PascalCase, then Driver).
# DIR must not exist or be empty. The new crate depends on this checkout by path, or with
# --published on the released crates (diaspora-stream and diaspora-stream-conformance); it gets
# this checkout's Cargo.lock, so that it builds with the dependency versions of the programs
# built here (which a driver loaded by name must share with them).
#
# `cargo generate --path templates/driver --name NAME` does the same with cargo-generate.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

usage() { sed -n '2,15s/^# \{0,1\}//p' "$0"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -ge 2 ] && [ $# -le 3 ] || { usage >&2; exit 2; }
name="$1" dir="$2" published=0
if [ $# -eq 3 ]; then
  [ "$3" = "--published" ] || { echo "new-driver: unknown option '$3' (try --help)" >&2; exit 2; }
  published=1
fi

refuse() { echo "new-driver: $*" >&2; exit 2; }
[[ "$name" =~ ^[a-z][a-z0-9_]*$ ]] ||
  refuse "'$name' is not a driver name: use one lowercase identifier (letters, digits, '_'; a letter first), e.g. 'objstore'"
case "$name" in
  as|break|const|continue|crate|else|enum|extern|false|fn|for|if|impl|in|let|loop|match|mod|move|mut|pub|ref|return|self|static|struct|super|trait|true|type|unsafe|use|where|while|async|await|dyn|abstract|become|box|do|final|macro|override|priv|typeof|unsized|virtual|yield|try|gen|test|core|std|alloc)
    refuse "'$name' is a Rust keyword or a standard crate's name: choose another driver name" ;;
  files|memory|kafka|octopus|mofka)
    refuse "'$name' is a built-in driver of diaspora-stream: choose another name" ;;
esac
if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
  refuse "$dir exists and is not empty"
fi

package="$name"
pascal="$(echo "$name" | awk -F_ '{ for (i = 1; i <= NF; i++) printf "%s%s", toupper(substr($i, 1, 1)), substr($i, 2) }')"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -n1)"
if [ "$published" = 1 ]; then
  dep="\"$version\"" kit="\"$version\""
else
  dep="{ path = \"$here\" }" kit="{ path = \"$here/crates/conformance\" }"
fi

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
src="$here/templates/driver"
(cd "$src" && find . -type f ! -path './hooks/*' ! -name cargo-generate.toml ! -path './target/*') |
  while IFS= read -r f; do
    out="${f//\{\{project-name\}\}/$package}"
    out="${out//\{\{crate_name\}\}/$name}"
    mkdir -p "$(dirname "$dir/$out")"
    NAME="$name" PACKAGE="$package" PASCAL="$pascal" DEP="$dep" KIT="$kit" \
      perl -pe 's/\{\{crate_name \| pascal_case\}\}/$ENV{PASCAL}/g;
                s/\{\{crate_name\}\}/$ENV{NAME}/g;
                s/\{\{project-name\}\}/$ENV{PACKAGE}/g;
                s/\{\{diaspora_dependency\}\}/$ENV{DEP}/g;
                s/\{\{diaspora_conformance_dependency\}\}/$ENV{KIT}/g' "$src/$f" > "$dir/$out"
    chmod --reference="$src/$f" "$dir/$out"
  done
if grep -rn '{{' "$dir" --include='*' -I >/dev/null 2>&1; then
  grep -rn '{{' "$dir" -I >&2
  echo "new-driver: placeholders left in $dir (a bug of the template)" >&2
  exit 1
fi
cp "$here/Cargo.lock" "$dir/Cargo.lock"
# The names change line lengths: let rustfmt lay the code out for this one.
if command -v cargo >/dev/null && cargo fmt --version >/dev/null 2>&1; then
  (cd "$dir" && cargo fmt)
fi
echo "new-driver: driver '$name' created in $dir (crate $package, type ${pascal}Driver)"
echo "new-driver: next: cd $dir && cargo test && cargo build --release  # target/release/lib$name.so"
