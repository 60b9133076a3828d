#!/usr/bin/env bash
# Runs the public SCIM checker scim2-tester (PyPI) against a live `tenure serve` on a scratch
# SQLite database. Installs the checker into a virtualenv under the target directory on first
# use. Exits non-zero when any check reports an error.
#
#   scripts/scim_conformance.sh          # uses target/debug/tenure (cargo build -p tenure)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target="${CARGO_TARGET_DIR:-target}"
bin="$target/debug/tenure"
[ -x "$bin" ] || cargo build -p tenure
venv="$target/scim-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import scim2_tester, httpx2' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/scim_conformance.txt
fi

work="$(mktemp -d)"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

admin="tnr_conformance_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
TENURE_BOOTSTRAP_TOKEN="$admin" RUST_LOG=warn "$bin" serve --listen 127.0.0.1:0 \
    --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
addr=""
for _ in $(seq 1 600); do
    addr="$(sed -n 's/^tenure listening on //p' "$work/out")"
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "tenure serve did not start" >&2; cat "$work/err" >&2; exit 1; }

token="$(curl -sf -X POST "$addr/api/v1/tokens" -H "Authorization: Bearer $admin" \
    -H 'content-type: application/json' -d '{"name":"scim2-tester","scopes":["scim"]}' |
    "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
"$venv/bin/python" scripts/scim_conformance.py "$addr/scim/v2" "$token"
