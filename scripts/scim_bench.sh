#!/usr/bin/env bash
# Load figures for the SCIM server: seeds USERS users into a fresh SQLite database through
# POST /Users (the create figure), then measures GET /Users/{id}, GET /Users?filter=userName eq
# "...", and POST /Users again with all of them stored. Uses wrk (Debian package `wrk`) on
# loopback; prints wrk's report (requests/s, latency percentiles) for each.
#
#   scripts/scim_bench.sh [USERS=100000] [SECONDS=20] [CONNECTIONS=32]
#
# Runs the release binary (built if missing). Hires plan no steps here (no role templates), so
# the figures are the SCIM server's and the event ingest's, not a target system's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
users="${1:-100000}"
secs="${2:-20}"
conns="${3:-32}"
threads=2

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-target}"
bin="${TENURE_BIN:-$target/release/tenure}"
[ -x "$bin" ] || cargo build --release -p tenure

work="$(mktemp -d)"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
cat >"$work/tenure.toml" <<'TOML'
[[systems]]
id = "directory"
connector = "sandbox"
retention = "delete"
TOML
mkdir -p "$work/templates"

admin="tnr_bench_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
TENURE_BOOTSTRAP_TOKEN="$admin" RUST_LOG=warn "$bin" serve --listen 127.0.0.1:0 \
    --config "$work/tenure.toml" --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
addr=""
for _ in $(seq 1 600); do
    addr="$(sed -n 's/^tenure listening on //p' "$work/out")"
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "tenure serve did not start" >&2; exit 1; }
export SCIM_TOKEN
SCIM_TOKEN="$(curl -sf -X POST "$addr/api/v1/tokens" -H "Authorization: Bearer $admin" \
    -H 'content-type: application/json' -d '{"name":"bench","scopes":["scim"]}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
lua="scripts/scim_bench"

count_users() {
    curl -sf "$addr/scim/v2/Users?count=0" -H "Authorization: Bearer $SCIM_TOKEN" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["totalResults"])'
}
echo "== seeding $users users with POST /Users ($conns connections, $threads threads), in 10 s rounds"
round=0
total=0
while [ "$total" -lt "$users" ]; do
    round=$((round + 1))
    SCIM_PREFIX="s${round}x" wrk -t"$threads" -c"$conns" -d10s --latency -s "$lua/create.lua" "$addr" |
        grep -E 'Requests/sec|Latency|99%|requests in|Non-2xx'
    total="$(count_users)"
    echo "users stored: $total"
done

# 10,000 ids and userNames to pick from at random.
python3 - "$addr" "$work" <<'PY'
import json, os, sys, urllib.request
addr, work = sys.argv[1], sys.argv[2]
ids, names = [], []
for start in range(1, 10001, 1000):
    req = urllib.request.Request(f"{addr}/scim/v2/Users?startIndex={start}&count=1000&attributes=userName",
                                 headers={"Authorization": "Bearer " + os.environ["SCIM_TOKEN"]})
    for u in json.load(urllib.request.urlopen(req))["Resources"]:
        ids.append(u["id"]); names.append(u["userName"])
open(f"{work}/ids", "w").write("\n".join(ids) + "\n")
open(f"{work}/names", "w").write("\n".join(names) + "\n")
PY

echo "== GET /Users/{id}"
SCIM_IDS="$work/ids" wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$lua/get_by_id.lua" "$addr"
echo "== GET /Users?filter=userName eq \"...\""
SCIM_NAMES="$work/names" wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$lua/filter.lua" "$addr"
echo "== POST /Users with $total stored"
SCIM_PREFIX=v wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$lua/create.lua" "$addr"
