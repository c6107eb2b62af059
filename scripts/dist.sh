#!/usr/bin/env bash
# Builds the source tarball for air-gapped sites: target/dist/diaspora-stream-rs-<version>.tar.gz
# holding the git-tracked sources, every crate of Cargo.lock in vendor/ (`cargo vendor`), and a
# .cargo/config.toml that replaces crates.io with vendor/, so that `cargo build --offline` (and
# the Spack recipe in spack/, which then passes --frozen) builds it without network. Run it on a
# machine with network; the tarball is reproducible for a given commit and Cargo.lock.
#
# Usage: bash scripts/dist.sh [options]
#   --ref REF            package the commit REF (`git archive`), e.g. a release tag; default: the
#                        git-tracked files as they are in the working tree
#   --include-untracked  also take untracked files that .gitignore does not exclude (to try a
#                        tarball before committing); not with --ref
#   --output DIR         where to write the tarball (default target/dist)
#   --mirror DIR         also copy it into DIR laid out as a Spack source mirror
#                        (DIR/diaspora-stream-rs/diaspora-stream-rs-<version>.tar.gz)
#   -h, --help           this help
# Environment: SOURCE_DATE_EPOCH (file times in the tarball; default: the commit's time),
# CARGO_NET_OFFLINE=true to vendor from cargo's local cache only.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
repo=$PWD

ref="" untracked=0 output="$repo/target/dist" mirror=""
while [ $# -gt 0 ]; do
  case "$1" in
    --ref) ref="${2:?--ref needs a commit, tag or branch}"; shift 2 ;;
    --include-untracked) untracked=1; shift ;;
    --output) output="${2:?--output needs a folder}"; shift 2 ;;
    --mirror) mirror="${2:?--mirror needs a folder}"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "dist: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$ref" ] && [ "$untracked" = 1 ]; then
  echo "dist: --include-untracked takes files from the working tree, --ref from a commit: pick one" >&2
  exit 2
fi
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || {
  echo "dist: $repo is not a git checkout (the tarball holds the git-tracked files)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "dist: cargo not found" >&2; exit 1; }

# Relative folders are taken from where the script was started.
output=$(cd "$caller" && mkdir -p "$output" && cd "$output" && pwd)
[ -z "$mirror" ] || mirror=$(cd "$caller" && mkdir -p "$mirror" && cd "$mirror" && pwd)
# Staged outside the checkout, so that cargo sees neither its workspace nor its .cargo/.
work=$(mktemp -d "${TMPDIR:-/tmp}/diaspora-dist.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage="$work/src"
mkdir "$stage"

if [ -n "$ref" ]; then
  commit=$(git rev-parse --verify "$ref^{commit}")
  echo "dist: sources of $ref ($commit)"
  git archive --format=tar "$commit" | tar -x -C "$stage"
else
  commit=$(git rev-parse HEAD)
  listing=(--cached)
  [ "$untracked" = 1 ] && listing+=(--others --exclude-standard)
  echo "dist: git-tracked files of the working tree$([ "$untracked" = 1 ] && echo ', with untracked ones')"
  # Files deleted in the working tree but not yet in the index are left out.
  git ls-files -z "${listing[@]}" |
    while IFS= read -r -d '' f; do
      if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
    done |
    tar --null --no-recursion -T - -cf - | tar -x -C "$stage"
fi
echo "dist: $(find "$stage" -type f | wc -l) source files"

[ -f "$stage/Cargo.toml" ] && [ -f "$stage/Cargo.lock" ] || {
  echo "dist: Cargo.toml and Cargo.lock must both be tracked" >&2; exit 1; }
version=$(awk '/^\[/ { pkg = ($0 == "[package]") }
               pkg && /^version[ \t]*=/ { sub(/^[^"]*"/, ""); sub(/".*/, ""); print; exit }' \
  "$stage/Cargo.toml")
[ -n "$version" ] || { echo "dist: no version in [package] of Cargo.toml" >&2; exit 1; }
name="diaspora-stream-rs-$version"
mv "$stage" "$work/$name"
stage="$work/$name"

echo "dist: cargo vendor (every crate of Cargo.lock, for every platform and feature)"
mkdir -p "$stage/.cargo"
config="$stage/.cargo/config.toml"
if [ -f "$config" ] && grep -q '^\[source\.' "$config"; then
  echo "dist: the tracked .cargo/config.toml already has a [source] table: merge by hand" >&2
  exit 1
fi
# cargo vendor prints the source replacement that points cargo at what it vendored (crates.io
# and any git dependency); --locked keeps Cargo.lock exactly as tracked.
(cd "$stage" && cargo vendor --locked vendor) >"$work/replacement.toml" 2>"$work/vendor.log" || {
  cat "$work/vendor.log" >&2; echo "dist: cargo vendor failed" >&2; exit 1; }
{
  [ -s "$config" ] && { cat "$config"; echo; }
  echo "# Added by scripts/dist.sh: take every crate from vendor/ (cargo vendor output)."
  cat "$work/replacement.toml"
} >"$work/config.toml"
mv "$work/config.toml" "$config"
grep -q '^directory = "vendor"' "$config" || {
  echo "dist: unexpected cargo vendor output:" >&2; cat "$work/replacement.toml" >&2; exit 1; }
echo "dist: $(find "$stage/vendor" -mindepth 1 -maxdepth 1 -type d | wc -l) crates vendored," \
  "$(du -sh "$stage/vendor" | cut -f1)"

epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct "$commit")}"
tarball="$output/$name.tar.gz"
echo "dist: writing $tarball"
# Sorted names, fixed times, owners and modes, no gzip timestamp: the same inputs give the same
# bytes, so a release's sha256 can be checked against a tarball rebuilt from its tag.
tar --sort=name --format=gnu --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
  --mode='u+rw,go-w,a+rX' -C "$work" -cf - "$name" | gzip -n >"$tarball.partial"
mv "$tarball.partial" "$tarball"
sha=$(sha256sum "$tarball" | cut -d' ' -f1)

if [ -n "$mirror" ]; then
  mkdir -p "$mirror/diaspora-stream-rs"
  cp "$tarball" "$mirror/diaspora-stream-rs/$name.tar.gz"
  echo "dist: copied into the Spack mirror $mirror"
fi
echo "dist: $(du -h "$tarball" | cut -f1), sha256 $sha"
echo "dist: Spack recipe line for this tarball: version(\"$version\", sha256=\"$sha\")"
echo "dist: wrote $tarball"
