#!/usr/bin/env bash
# Builds the Debian package target/debian/valwatch_<version>-1_<arch>.deb:
# the release binary once, the manual pages and shell completions rendered
# by that binary, then cargo-deb packaging what was built (--no-build: it
# never compiles valwatch a second time). Needs cargo-deb
# (`cargo install --locked cargo-deb`). Prints the package's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null 2>&1 || {
  echo "cargo-deb is missing: cargo install --locked cargo-deb" >&2
  exit 1
}

# The real target directory (CARGO_TARGET_DIR or a config may move it);
# cargo-deb maps the target/release/ of its asset list onto it.
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || { echo "cannot find cargo's target directory" >&2; exit 1; }
release="$target_dir/release"

cargo build --release --locked >&2

bin="$release/valwatch"
rm -rf "$release/man" "$release/completions"
mkdir -p "$release/completions"
"$bin" man --dir "$release/man"
# Debian policy 12.1: manual pages compressed with gzip -9; -n keeps the
# package reproducible (no name or time stamp in the archive).
gzip -9n "$release"/man/*.1
"$bin" completions bash >"$release/completions/valwatch.bash"
"$bin" completions zsh >"$release/completions/_valwatch"
"$bin" completions fish >"$release/completions/valwatch.fish"

cargo deb --no-build --locked | tail -n1
