#!/usr/bin/env bash
# Runs the public SCIM checker scim2-tester (PyPI) against a live `tenure serve` on a scratch
# SQLite database. Installs the checker into a virtualenv under the target directory on first
# use. Exits non-zero when any check reports an error.
#
#   scripts/scim_conformance.sh          # uses target/debug/tenure (cargo build -p tenure)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

. scripts/live_server.sh
venv="$target/scim-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import scim2_tester, httpx2' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/scim_conformance.txt
fi

start_server

token="$(curl -sf -X POST "$addr/api/v1/tokens" -H "Authorization: Bearer $admin" \
    -H 'content-type: application/json' -d '{"name":"scim2-tester","scopes":["scim"]}' |
    "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
"$venv/bin/python" scripts/scim_conformance.py "$addr/scim/v2" "$token"
