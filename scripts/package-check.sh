#!/usr/bin/env bash
# CI packaging phase (run by .ci/run after the test suite; needs root and
# Debian): builds the Debian package as the README says, checks the release
# binary's size, installs the package with dpkg -i and runs what it
# installed (version, man page, completions, check-config on the shipped
# configuration and the demo for two epochs, both as the service's user),
# verifies the systemd unit, and validates the compose stack. Purges the
# package at the end (KEEP_INSTALLED=1 keeps it). Prints each phase's time.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[package] %s\n' "$*"; }
fail() { printf '[package] FAILED: %s\n' "$*" >&2; exit 1; }

# The issue's budget for the shipped binary: 30 MB.
MAX_BINARY_BYTES=30000000

phase_start=0
phase() {
  phase_end
  phase_name=$1
  phase_start=$(date +%s)
  log "== $phase_name"
}
phase_end() {
  if [ "$phase_start" -ne 0 ]; then
    log "   $phase_name: $(( $(date +%s) - phase_start )) s"
  fi
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
}

phase "tools"
if ! command -v cargo-deb >/dev/null 2>&1; then
  # Debian has no cargo-deb package; crates.io's takes about 1.5 min to
  # build. Pinned: the version these packages were built and checked with.
  log "cargo-deb missing: cargo install --locked cargo-deb@3.8.0"
  cargo install --locked cargo-deb@3.8.0
fi
if ! command -v docker-compose >/dev/null 2>&1; then
  # Compose v1 from Debian: no Docker daemon needed to parse a stack.
  log "docker-compose missing: apt-get install docker-compose"
  apt_install docker-compose || fail "apt-get install docker-compose"
fi
cargo deb --version
docker-compose version --short

phase "build (release binary once, then cargo deb --no-build)"
deb=$(scripts/build-deb.sh)
[ -f "$deb" ] || fail "scripts/build-deb.sh printed $deb, which is not a file"
log "package: $deb ($(stat -c %s "$deb") bytes)"

phase "release binary size"
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
size=$(stat -c %s "$target_dir/release/valwatch")
log "target/release/valwatch: $size bytes (budget $MAX_BINARY_BYTES)"
[ "$size" -lt "$MAX_BINARY_BYTES" ] || fail "the release binary is over budget"

phase "install (dpkg -i)"
dpkg -i "$deb" >/dev/null
cleanup() {
  if [ "${KEEP_INSTALLED:-0}" != 1 ]; then
    dpkg --purge valwatch >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
dpkg -s valwatch | sed -n 's/^Version: /installed version: /p'
id valwatch >/dev/null || fail "no user valwatch"
[ "$(stat -c '%U:%G %a' /etc/valwatch/valwatch.toml)" = "root:valwatch 640" ] \
  || fail "/etc/valwatch/valwatch.toml: $(stat -c '%U:%G %a' /etc/valwatch/valwatch.toml)"
[ "$(stat -c '%U:%G %a' /var/lib/valwatch)" = "valwatch:valwatch 750" ] \
  || fail "/var/lib/valwatch: $(stat -c '%U:%G %a' /var/lib/valwatch)"

phase "run the installed binary"
version=$(/usr/bin/valwatch --version)
log "$version"
commit=$(git rev-parse HEAD 2>/dev/null | cut -c1-12 || true)
if [ -n "$commit" ]; then
  case "$version" in
    *"(commit $commit)"*) ;;
    *) fail "--version does not name the commit $commit" ;;
  esac
fi
man -w valwatch >/dev/null || fail "man valwatch: no page"
man -w valwatch-run >/dev/null || fail "man valwatch-run: no page"
grep -q 'valwatch' /usr/share/bash-completion/completions/valwatch \
  || fail "no bash completion"
# The shipped configuration, read as the service reads it. Its node
# (127.0.0.1:5052) is not running here: the configuration and the
# database must pass, the node check may fail.
check=$(runuser -u valwatch -- valwatch check-config -c /etc/valwatch/valwatch.toml 2>&1 || true)
printf '%s\n' "$check" | sed 's/^/    /'
printf '%s\n' "$check" | grep -q '^configuration: ok' || fail "the shipped configuration does not validate"
# check-config only reads: a fresh state directory holds no database yet,
# which it says; the service's user must be able to create one there.
printf '%s\n' "$check" | grep -Eq '^database .*: (ok|not created yet)' \
  || fail "check-config cannot read the state directory's database"
runuser -u valwatch -- test -w /var/lib/valwatch || fail "the state directory is not writable by the service's user"
# Two epochs on the simulated network, as the service's user, into a data
# directory that user owns; then the stored history read back.
demo_dir=$(mktemp -d)
chown valwatch:valwatch "$demo_dir"
runuser -u valwatch -- valwatch demo --epochs 2 --listen off --slot-ms 250 --data-dir "$demo_dir" \
  | tee "$demo_dir/demo.out" | sed 's/^/    /'
grep -q '^2 epochs judged and stored' "$demo_dir/demo.out" || fail "the demo did not judge two epochs"
runuser -u valwatch -- valwatch report --data-dir "$demo_dir" --format json >"$demo_dir/report.json"
grep -q '"attestations"' "$demo_dir/report.json" || fail "valwatch report read nothing back"
rm -rf "$demo_dir"

phase "systemd unit"
unit=/usr/lib/systemd/system/valwatch.service
[ -f "$unit" ] || fail "$unit not installed"
if command -v systemd-analyze >/dev/null 2>&1; then
  systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
  systemd-analyze security --offline=true "$unit" | tail -n1
else
  log "systemd-analyze not present: unit not verified"
fi

phase "compose stack"
(cd deploy/compose && docker-compose -f docker-compose.yml config -q \
  && docker-compose -f docker-compose.yml -f docker-compose.demo.yml config -q) \
  || fail "docker-compose config"
log "docker-compose config: both files parse"
if command -v promtool >/dev/null 2>&1; then
  promtool check config --syntax-only deploy/compose/prometheus/prometheus.yml >/dev/null \
    || fail "promtool check config deploy/compose/prometheus/prometheus.yml"
  log "promtool: deploy/compose/prometheus/prometheus.yml is valid"
fi
phase_end
log "packaging checks passed"
