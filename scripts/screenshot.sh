#!/usr/bin/env bash
# Takes docs/status-page.png, the README's picture of the status page: runs
# `valwatch demo` on a free loopback port, waits until the demo's flaky
# group is failing (its validators offline for two epochs; the slashed one
# fails too by then), opens `/` in headless Chromium and stops the demo.
#
#   scripts/screenshot.sh [VALWATCH_BINARY] [OUTPUT_PNG]
#
# Defaults: target/debug/valwatch (cargo build first), docs/status-page.png.
# Needs python3 and chromium (Debian: apt-get install -y chromium). Not run
# by CI: the picture is for people.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-target/debug/valwatch}"
out="${2:-docs/status-page.png}"
# One-second slots: an epoch every 8 s, the flaky group fails about 40 s in.
timeout_s=150

log() { printf '[screenshot] %s\n' "$*" >&2; }

[ -x "$bin" ] || { log "no valwatch binary at $bin (cargo build, or pass its path)"; exit 1; }
browser="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$browser" ] || { log "chromium is missing: apt-get install -y chromium"; exit 1; }

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
tmp="$(mktemp -d)"
demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ]; then kill "$demo_pid" 2>/dev/null || true; wait "$demo_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

log "starting the demo on 127.0.0.1:$port"
"$bin" demo --listen "127.0.0.1:$port" --data-dir "$tmp/demo" >"$tmp/demo.log" 2>&1 &
demo_pid=$!

# Wait until /status?group=flaky answers 503 (failing).
python3 - "$port" "$timeout_s" "$demo_pid" <<'PY' || { log "the demo did not get there; its log:"; tail -n 30 "$tmp/demo.log" >&2; exit 1; }
import os, sys, time, urllib.request, urllib.error
port, limit, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
deadline = time.time() + limit
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the demo exited")
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/status?group=flaky", timeout=2)
    except urllib.error.HTTPError as e:
        if e.code == 503:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit("timed out")
PY

mkdir -p "$(dirname "$out")"
log "taking $out"
# The background-networking flags keep Chromium from calling out (this
# machine has no network); a fresh profile each time.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --disable-background-networking --disable-component-update --disable-sync \
  --disable-quic --no-first-run --user-data-dir="$tmp/profile" \
  --window-size=1280,1600 --screenshot="$out" "http://127.0.0.1:$port/" \
  >"$tmp/chromium.log" 2>&1 || { log "chromium failed:"; tail -n 20 "$tmp/chromium.log" >&2; exit 1; }
[ -s "$out" ] || { log "no screenshot written"; exit 1; }
log "done: $out"
