#!/usr/bin/env bash
# Takes the README's pictures and checks the pages they show: runs
# `valwatch demo` on a free loopback port, waits until the demo's flaky
# group is failing (its validators offline for two epochs; the slashed one
# fails too by then) and its misses are in the history strips, asserts on
# the HTML of the status page and of a failing validator's page, then takes
# both with headless Chromium and stops the demo.
#
#   scripts/screenshot.sh [VALWATCH_BINARY] [OUTPUT_DIR]
#
# Defaults: target/debug/valwatch (cargo build first), docs/. Writes
# OUTPUT_DIR/status-page.png and OUTPUT_DIR/validator-page.png.
# Needs python3 and chromium (Debian: apt-get install -y chromium). Not run
# by CI: the pictures are for people. The HTML checks run before the
# pictures, so a broken page fails the script, not just looks wrong.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-target/debug/valwatch}"
out_dir="${2:-docs}"
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

# Wait until /status?group=flaky answers 503 (failing) and the status page
# draws a missed epoch in a strip; then check both pages' HTML. Prints the
# failing validator's index.
validator="$(python3 - "$port" "$timeout_s" "$demo_pid" <<'PY'
import json, os, re, sys, time, urllib.request, urllib.error
port, limit, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
base = f"http://127.0.0.1:{port}"

def get(path):
    try:
        with urllib.request.urlopen(base + path, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()

deadline = time.time() + limit
while True:
    if time.time() > deadline:
        sys.exit("timed out waiting for the flaky group to fail with its misses drawn")
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the demo exited")
    try:
        code, _ = get("/status?group=flaky")
        if code == 503:
            code, page = get("/")
            if 'class="miss"><title>' in page:
                break
    except OSError:
        pass
    time.sleep(0.5)

problems = []
def check(ok, what):
    if not ok:
        problems.append(what)

# The status page: a strip of 64 cells per validator row, strips for the
# groups, a balance line, links to the validator pages, no external asset.
status = json.loads(get("/status")[1])
failing = [v["index"] for v in status["validators"] if v["state"] == "failing"]
check(failing, "no failing validator in /status")
for v in status["validators"][:3]:
    i = v["index"]
    m = re.search(rf'<a href="/validator/{i}">{i}</a>.*?(<svg class="strip".*?</svg>)', page)
    check(m is not None, f"no strip in the row of validator {i}")
    if m:
        check(m.group(1).count("<rect") == 64, f"validator {i}: {m.group(1).count('<rect')} cells, not 64")
groups = [g["name"] for g in status["groups"]]
for g in groups:
    m = re.search(rf'<a href="/\?group={re.escape(g)}">.*?(<svg class="strip".*?</svg>)', page)
    check(m is not None and m.group(1).count("<g>") == 64, f"group {g}: no strip of 64 epochs")
check('<svg class="spark"' in page, "no balance line")
check(".strip .miss{fill:#c62828}" in page, "missed cells are not red")
check("src=\"http" not in page and "<script" not in page, "external asset or script")
check(len(page) < 1_000_000, f"status page is {len(page)} bytes")

# The failing validator's page: 200, its strip, its rows; 404 and 400.
i = failing[0] if failing else status["validators"][0]["index"]
code, vpage = get(f"/validator/{i}")
check(code == 200, f"/validator/{i} answers {code}")
check(f"<h1>Validator {i} " in vpage, "validator page without its title")
check(vpage.count('<tr id="e') > 0, "validator page without epoch rows")
check('class="miss"' in vpage, "the failing validator's page shows no miss")
code, body = get("/validator/999999")
check(code == 404 and "is not watched" in body, f"unwatched validator: {code}")
code, _ = get("/validator/not-a-number")
check(code == 400, f"bad index: {code}")

if problems:
    sys.exit("HTML checks failed:\n  " + "\n  ".join(problems))
print(i)
PY
)" || { log "the demo's pages are not right; its log:"; tail -n 30 "$tmp/demo.log" >&2; exit 1; }
log "HTML checks passed (failing validator $validator)"

mkdir -p "$out_dir"
shoot() {
  local url="$1" png="$2" size="$3"
  log "taking $png"
  # The background-networking flags keep Chromium from calling out (this
  # machine has no network); a fresh profile each time.
  "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-quic --no-first-run --user-data-dir="$tmp/profile" \
    --window-size="$size" --screenshot="$png" "$url" \
    >"$tmp/chromium.log" 2>&1 || { log "chromium failed:"; tail -n 20 "$tmp/chromium.log" >&2; exit 1; }
  [ -s "$png" ] || { log "no screenshot written to $png"; exit 1; }
}
shoot "http://127.0.0.1:$port/" "$out_dir/status-page.png" 1600,1500
shoot "http://127.0.0.1:$port/validator/$validator" "$out_dir/validator-page.png" 1600,1100
log "done: $out_dir/status-page.png $out_dir/validator-page.png"
